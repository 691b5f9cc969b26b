/*
 * rec.h - musubi's records (entries, rows, tree heads) to and from bytes.
 *
 * The protobuf-c types stay behind this header: callers see plain structs.
 * Encoders write into a caller-owned growable buffer (struct rec_buf) so
 * the hot publish path allocates nothing per row. Decoders take (buf, len)
 * from anywhere - disk or network - and treat every byte as hostile: they
 * return MU_E_DECODE on anything malformed and never read past len.
 *
 * A decoded record's pointers borrow from the decoded message and live
 * until the matching rec_*_free().
 */
#ifndef MU_REC_H
#define MU_REC_H

#include <stddef.h>
#include <stdint.h>

#include "schema.h"

#define REC_KEY_SEP "\x1f"   /* joins the values of a composite primary key */

struct rec_buf {
	uint8_t *data;
	size_t len, cap;
};
void rec_buf_fini(struct rec_buf *b);
/* Make room for n more bytes. */
int rec_buf_reserve(struct rec_buf *b, size_t n);

enum rec_op { REC_UPSERT = 0, REC_DELETE = 1 };

struct rec_provenance {
	uint8_t source_sha256[32];
	int has_source;
	const char *source_name;
	const char *tool;
	uint8_t mapping_sha256[32];
	int has_mapping;
	uint64_t source_line;
};

struct rec_entry {
	const char *dataset;
	uint64_t seq;
	enum rec_op op;
	const char *key;
	size_t key_len;
	const char *schema_id;
	unsigned schema_version;
	const uint8_t *schema_digest;  /* 32 bytes or NULL */
	const uint8_t *row;            /* encoded Row, NULL for deletes */
	size_t row_len;
	int64_t time_us;
	struct rec_provenance prov;
};

struct rec_head {
	const char *dataset;
	uint64_t size;
	uint8_t root[32];
	int64_t time_us;
	uint64_t trust_version;
	const char *publisher;
	uint8_t key_id[32];
	int members_only;
	const char *license;   /* the licence published under; NULL or "": none */
};

/* Row: encode n typed values (positional, schema order) into out (reset first). */
int rec_row_encode(const struct mu_value *values, size_t n, struct rec_buf *out);

/* A decoded row: values[i].text points into the decoded message. */
struct rec_row {
	size_t n;
	struct mu_value *values;
	void *msg_;     /* owned protobuf message */
};
int rec_row_decode(const uint8_t *buf, size_t len, struct rec_row **out);
void rec_row_free(struct rec_row **r);

/* Entry: encode into out (reset first). */
int rec_entry_encode(const struct rec_entry *e, struct rec_buf *out);

struct rec_entry_decoded {
	struct rec_entry e;
	void *msg_;
};
int rec_entry_decode(const uint8_t *buf, size_t len, struct rec_entry_decoded **out);
void rec_entry_free(struct rec_entry_decoded **d);

/*
 * Decoding a batch of entries one after another: the decoded fields live in
 * an arena that each decode reuses, so an entry costs no malloc or free per
 * field. The rec_entry filled by rec_entry_decode_in() points into the arena
 * and stays valid until the next decode with it or rec_arena_fini(). Start
 * from a zeroed struct.
 */
struct rec_arena {
	uint8_t *buf;
	size_t cap, used;
	size_t spilled;     /* bytes that did not fit since the last reset */
	void *extra;        /* their blocks, a list freed at the next reset */
};
int rec_entry_decode_in(struct rec_arena *a, const uint8_t *buf, size_t len, struct rec_entry *out);
/* The same for a Row: out->values and their texts point into the arena,
 * valid until the next decode with it; out is the caller's (never pass it
 * to rec_row_free). Use another arena than the entry's the row came from. */
int rec_row_decode_in(struct rec_arena *a, const uint8_t *buf, size_t len, struct rec_row *out);
void rec_arena_fini(struct rec_arena *a);

/* Tree head: encode the TreeHead bytes that get signed. */
int rec_head_encode(const struct rec_head *h, struct rec_buf *out);
struct rec_head_decoded {
	struct rec_head h;
	void *msg_;
};
int rec_head_decode(const uint8_t *buf, size_t len, struct rec_head_decoded **out);
void rec_head_free(struct rec_head_decoded **d);

/* SignedHead: wrap head bytes and a 64-byte signature. */
int rec_signed_head_encode(const uint8_t *head, size_t head_len, const uint8_t sig[64],
			   struct rec_buf *out);
struct rec_signed_head_decoded {
	const uint8_t *head;   /* the TreeHead bytes exactly as signed */
	size_t head_len;
	const uint8_t *sig;
	size_t sig_len;
	void *msg_;
};
int rec_signed_head_decode(const uint8_t *buf, size_t len, struct rec_signed_head_decoded **out);
void rec_signed_head_free(struct rec_signed_head_decoded **d);

#endif
