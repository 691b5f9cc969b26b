/*
 * redact.h - redaction without breaking history.
 *
 * A publisher signs a notice naming an entry (dataset, seq, leaf hash) and
 * a reason. Every node that honours it replaces the entry's bytes in its
 * store with a stub: the marker REDACT_MARKER, then a RedactedEntry
 * (proto/musubi.proto) keeping the leaf hash, the primary key and the
 * notice. Roots, heads and proofs stay verifiable because the leaf hash
 * stays; the payload is gone; the row leaves the current state.
 */
#ifndef MU_REDACT_H
#define MU_REDACT_H

#include <stddef.h>
#include <stdint.h>

#include "merkle.h"
#include "rec.h"
#include "sig.h"
#include "store.h"
#include "verify.h"

#define REDACT_MARKER "\xffMURED1\n"
#define REDACT_MARKER_LEN 8
#define SIG_CTX_REDACTION "musubi redaction v1\n"

/* The leaf hash of stored entry bytes: SHA-256(0x00 || bytes) for an
 * entry, the kept hash for a stub. Returns 0 for an entry, 1 for a stub,
 * MU_E_DECODE for a malformed stub. */
int redact_leaf_hash(const uint8_t *buf, size_t len, merkle_hash out);

struct redact_notice {
	char dataset[128];
	uint64_t seq;
	uint8_t leaf_hash[32];
	char reason[256];
	int64_t time_us;
	char publisher[64];
	uint8_t key_id[32];
	uint64_t trust_version;
};

struct redact_stub {
	char dataset[128];
	uint64_t seq;
	uint8_t leaf_hash[32];
	char *key;              /* malloc'd */
	size_t key_len;
	enum rec_op op;
	uint8_t *notice;        /* malloc'd SignedRedaction bytes */
	size_t notice_len;
};
/* Do stored entry bytes hold a stub (they start with the marker)? */
int redact_is_stub(const uint8_t *buf, size_t len);
/* Decode a stub (buf starts with the marker). */
int redact_stub_decode(const uint8_t *buf, size_t len, struct redact_stub *out);
void redact_stub_fini(struct redact_stub *s);

/* Sign a notice for entry seq of dataset whose leaf hash is leaf. */
int redact_make(const struct sig_key *key, const char *publisher, uint64_t trust_version,
		const char *dataset, uint64_t seq, const uint8_t leaf[32], const char *reason,
		struct rec_buf *out);

/* Decode a SignedRedaction and check its signature with the key the trust
 * rules give for its publisher (keyfn, as for heads). 0 or an error with
 * why set. */
int redact_check(struct store_txn *t, const uint8_t *buf, size_t len, verify_key_fn keyfn,
		 void *ctx, struct redact_notice *out, char *why, size_t whylen);

/*
 * Apply a checked notice in a write transaction: keep the notice, and if
 * the store holds that entry with that leaf hash, replace it with a stub
 * and drop its row from the state when it is the current one. Returns 0
 * (also when the entry is not stored yet: the notice waits for it), or
 * MU_E_PROOF when the stored entry's leaf hash differs from the notice's.
 */
int redact_apply(struct store_txn *t, const uint8_t *notice, size_t len,
		 const struct redact_notice *n);

/* Make a stub from entry bytes and a notice (for ingest of a notice that
 * came before the entry). */
int redact_stub_make(const uint8_t *entry, size_t len, const uint8_t *notice, size_t nlen,
		     struct rec_buf *out);

/*
 * A redacted upsert erases a row's content, not its existence: when it is
 * its key's latest entry, the key is live but unknown. It has no row in
 * the state (nothing to show), yet a later delete of it is valid. The
 * state keeps such keys under the shadow local id REDACT_LIVE_LID(lid),
 * which no reader of a dataset's rows iterates (local ids are counted up
 * from 1 and never reach bit 31); the value's seq is the redacted entry.
 *
 * redact_live_set marks key live-but-unknown (in a write transaction).
 * redact_live_take removes the mark: 1 if the key was marked, 0 if not, or
 * an error. Ingest takes the mark on every delete, so a mark present
 * means no delete came after the redacted upsert. (A publish's own deletes
 * leave it: the publisher ingests its own log only after a restore, and
 * never deletes a key without a row, so a mark left there is never used.)
 */
#define REDACT_LIVE_LID(lid) ((uint32_t)(lid) | UINT32_C(0x80000000))
int redact_live_set(struct store_txn *t, uint32_t lid, const char *key, size_t key_len,
		    uint64_t seq);
int redact_live_take(struct store_txn *t, uint32_t lid, const char *key, size_t key_len);

#endif
