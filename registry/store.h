/*
 * store.h - the node's LMDB environment: one per data directory.
 *
 * Layout of DATADIR:
 *   store/data.mdb, store/lock.mdb   the LMDB environment
 *   keys/                            the node's key files (see sig.h)
 *   tmp/                             spool files of publishes in progress
 *
 * Named databases and their keys (all integers big-endian so that LMDB's
 * byte order is numeric order):
 *   meta      text key -> bytes       format version, member id, public key
 *   datasets  "<member>/<name>" -> DatasetInfo (proto)
 *   entries   lid(4) seq(8) -> Entry bytes exactly as hashed
 *   nodes     lid(4) level(1) index(8) -> 32-byte subtree hash, for levels
 *             >= STORE_NODE_MIN_LEVEL only; lower levels are recomputed
 *             from at most 2^STORE_NODE_MIN_LEVEL entries, which keeps
 *             appends to one extra put per 16 entries
 *   heads     lid(4) size(8) -> SignedHead bytes exactly as signed (history)
 *   state     lid(4) key -> seq(8) row_sha256(32); key is the primary key
 *             text, or 0xFF followed by its SHA-256 when it is longer than
 *             STORE_KEY_INLINE bytes (0xFF never occurs in UTF-8)
 *   schemas   "id@version" -> Table Schema JSON as registered
 *   trust     version(8) -> signed trust list bytes
 *   evidence  dataset found_us(8) -> Evidence (proto): two signed heads of
 *             one dataset that do not extend one another
 *   cosigs    dataset NUL size(8) witness -> SignedCosignature (proto)
 *   redactions dataset NUL seq(8) -> SignedRedaction (proto); the entry's
 *             bytes are then a stub (redact.h)
 *
 * Durable by default (no MDB_NOSYNC, no MDB_WRITEMAP). The map starts at
 * STORE_MAP_INITIAL (or $MUSUBI_MAP_INITIAL bytes) and doubles when it fills,
 * up to STORE_MAP_MAX or a smaller maximum (store_set_map_max).
 *
 * Views returned by getters borrow LMDB memory: valid only until the end of
 * the transaction or the next write in it.
 */
#ifndef MU_STORE_H
#define MU_STORE_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

#include "merkle.h"

#define STORE_FORMAT_VERSION 1
#define STORE_NODE_MIN_LEVEL 4
#define STORE_KEY_INLINE 400
#define STORE_MAP_INITIAL ((size_t)1 << 30)
#define STORE_MAP_MAX ((size_t)1 << 40)

enum store_flags {
	STORE_RDONLY = 1,   /* open read-only */
	STORE_CREATE = 2,   /* create DATADIR and the environment if missing */
	STORE_NOSYNC = 4,   /* MDB_NOSYNC: only when a user asks for it knowingly */
};

struct store;

struct store_txn {
	struct store *st;
	MDB_txn *txn;
};

/* Open DATADIR's store. Without STORE_CREATE a missing store is -ENOENT.
 * A store of another format version is MU_E_VERSION. */
int store_open(const char *datadir, unsigned flags, struct store **out);
void store_close(struct store **st);
const char *store_datadir(const struct store *st);

/* Read transactions. */
int store_read_begin(struct store *st, struct store_txn *t);
void store_read_end(struct store_txn *t);

/*
 * Run fn inside one write transaction: commit if it returns 0, abort if it
 * returns an error (passed back). If the map fills at any point the
 * transaction is aborted, the map grown, and fn run again from the start:
 * fn must reset its own state and have no effect outside the transaction.
 */
typedef int (*store_write_fn)(struct store_txn *t, void *ctx);
int store_write(struct store *st, store_write_fn fn, void *ctx);

/* Map use, for status and metrics. */
int store_map_usage(struct store *st, size_t *used, size_t *mapsize);

/* The map never grows past max bytes (0: STORE_MAP_MAX; the default is
 * $MUSUBI_MAP_MAX when set): a write that needs more fails with
 * MU_E_MAPFULL and writes nothing. A larger map shrinks to max, or to what
 * the store already uses. Call with no transaction open. */
int store_set_map_max(struct store *st, size_t max);

/* What an operator should do about rc when it means the store cannot grow
 * (-ENOSPC, -EDQUOT, -EFBIG, MU_E_MAPFULL, and -EIO, which LMDB returns for
 * a short write); NULL for any other error. */
const char *store_space_advice(int rc);

/* meta: small named values. -ENOENT when missing; -ENOSPC when cap is too
 * small. Text values are written without a NUL; *len excludes it and the
 * buffer is NUL-terminated when room allows. */
int store_meta_get(struct store_txn *t, const char *key, void *buf, size_t cap, size_t *len);
int store_meta_put(struct store_txn *t, const char *key, const void *val, size_t len);
/* Remove a meta value: 0, or -ENOENT when there was none. */
int store_meta_del(struct store_txn *t, const char *key);

/* The node's member id (from meta) into buf. */
int store_member(struct store_txn *t, char *buf, size_t cap);

struct store_dataset {
	char *name;          /* "<member>/<name>" */
	uint32_t local_id;
	char *publisher;     /* member id */
	char *schema_id;
	unsigned schema_version;
	uint8_t schema_digest[32];
	uint64_t size, rows, head_size;
	int64_t created_us, updated_us;
	char *title, *description, *license, *update_frequency;
	int members_only;    /* readable by members of the federation only */
};

/* Fill *d (fields are malloc'd: store_dataset_fini). -ENOENT if unknown. */
int store_dataset_get(struct store_txn *t, const char *name, struct store_dataset *d);
/* Insert or replace; assigns a fresh local_id when d->local_id is 0. */
int store_dataset_put(struct store_txn *t, struct store_dataset *d);
void store_dataset_fini(struct store_dataset *d);
/* All dataset names, sorted. Caller frees each and the array. */
int store_dataset_names(struct store_txn *t, char ***names, size_t *n);

/* The log. */
int store_entry_put(struct store_txn *t, uint32_t lid, uint64_t seq, const void *buf, size_t len);
int store_entry_get(struct store_txn *t, uint32_t lid, uint64_t seq, const uint8_t **buf, size_t *len);
/* Overwrite a stored entry: only for a redaction stub (redact.h). */
int store_entry_replace(struct store_txn *t, uint32_t lid, uint64_t seq, const void *buf,
			size_t len);
int store_redaction_put(struct store_txn *t, const char *dataset, uint64_t seq, const void *buf,
			size_t len);
/* Call fn for each redaction notice of dataset in seq order; count with a
 * counting fn. */
int store_redaction_iter(struct store_txn *t, const char *dataset,
			 int (*fn)(void *ctx, uint64_t seq, const uint8_t *buf, size_t len), void *ctx);

/* merkle_get_fn / merkle_done_fn over one dataset's tree; ctx is a
 * struct store_tree. */
struct store_tree {
	struct store_txn *t;
	uint32_t lid;
};
int store_tree_get(void *ctx, unsigned level, uint64_t index, merkle_hash out);
int store_tree_done(void *ctx, unsigned level, uint64_t index, const merkle_hash h);

int store_head_put(struct store_txn *t, uint32_t lid, uint64_t size, const void *buf, size_t len);
int store_head_get(struct store_txn *t, uint32_t lid, uint64_t size, const uint8_t **buf, size_t *len);
/* The first stored head with size > after (after = 0 gives the oldest). */
int store_head_next(struct store_txn *t, uint32_t lid, uint64_t after, uint64_t *size,
		    const uint8_t **buf, size_t *len);
/* The newest head. -ENOENT if none. */
int store_head_latest(struct store_txn *t, uint32_t lid, uint64_t *size, const uint8_t **buf,
		      size_t *len);

/* State: the current row of each primary key. */
struct store_state_val {
	uint64_t seq;
	uint8_t row_sha256[32];
};
int store_state_get(struct store_txn *t, uint32_t lid, const char *key, size_t key_len,
		    struct store_state_val *v);
int store_state_put(struct store_txn *t, uint32_t lid, const char *key, size_t key_len,
		    const struct store_state_val *v);
int store_state_del(struct store_txn *t, uint32_t lid, const char *key, size_t key_len);
/* store_state_put in one lookup of the key; *added is 1 when the key had no
 * row before (the dataset gains a row), 0 when its row was replaced. */
int store_state_upsert(struct store_txn *t, uint32_t lid, const char *key, size_t key_len,
		       const struct store_state_val *v, int *added);

/* Iterate the state of one dataset in key order. store_iter_next returns 1
 * with a row, 0 at the end, or an error. key is the stored form (inline
 * text, or 0xFF + hash). store_iter_del deletes the current row. */
struct store_iter {
	MDB_cursor *cur;
	uint32_t lid;
	int started;
	uint64_t from;       /* store_entry_iter_begin's first seq */
};
int store_state_iter_begin(struct store_txn *t, uint32_t lid, struct store_iter *it);
int store_state_iter_next(struct store_iter *it, const uint8_t **key, size_t *key_len,
			  struct store_state_val *v);
int store_iter_del(struct store_iter *it);
void store_iter_end(struct store_iter *it);
/* A log's entries in seq order from seq `from`, through a cursor (cheaper
 * than a store_entry_get per seq): store_entry_iter_next returns 1 with
 * *seq, *buf, *len (valid as store_entry_get's), 0 past the log's last
 * entry, or an error. End with store_iter_end(). */
int store_entry_iter_begin(struct store_txn *t, uint32_t lid, uint64_t from, struct store_iter *it);
int store_entry_iter_next(struct store_iter *it, uint64_t *seq, const uint8_t **buf, size_t *len);

/* Evidence of forks: stored forever, counted for status. */
int store_evidence_put(struct store_txn *t, const char *dataset, int64_t found_us,
		       const void *buf, size_t len);
int store_evidence_count(struct store_txn *t, uint64_t *count);
/* Call fn with each piece of evidence until it returns non-zero. */
int store_evidence_iter(struct store_txn *t, int (*fn)(void *ctx, const uint8_t *buf, size_t len),
			void *ctx);

/* Cosignatures of heads, by witness. */
int store_cosig_put(struct store_txn *t, const char *dataset, uint64_t size, const char *witness,
		    const void *buf, size_t len);
/* Call fn for each cosignature of dataset's head at size (0: every size),
 * in size order, until it returns non-zero. */
int store_cosig_iter(struct store_txn *t, const char *dataset, uint64_t size,
		     int (*fn)(void *ctx, uint64_t size, const uint8_t *buf, size_t len), void *ctx);

/* Schemas and trust lists: opaque bytes by key. */
int store_schema_put(struct store_txn *t, const char *id_at_version, const void *json, size_t len);
int store_schema_get(struct store_txn *t, const char *id_at_version, const uint8_t **json, size_t *len);

/* Translate an LMDB return code to musubi's style (MDB_NOTFOUND -> -ENOENT,
 * MDB_MAP_FULL -> MU_E_MAPFULL, others MU_E_STORE after logging). */
int store_err(int mdb_rc);

/* Trust lists (trust.h): SignedTrustList bytes by version, stored once
 * (MU_E_EXISTS if that version is there already). Views as above. */
int store_trust_put(struct store_txn *t, uint64_t version, const void *buf, size_t len);
/* -ENOENT if that version is not stored. */
int store_trust_get(struct store_txn *t, uint64_t version, const uint8_t **buf, size_t *len);
/* The highest stored version; -ENOENT if the node has no trust list. */
int store_trust_latest(struct store_txn *t, uint64_t *version, const uint8_t **buf, size_t *len);

#endif
