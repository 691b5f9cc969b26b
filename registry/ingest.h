/*
 * ingest.h - heads and entries from another node: judged, then stored.
 *
 * Nothing a peer sends is trusted: a head counts only when its signature
 * verifies under the trust rules (a verify_key_fn) and it names its
 * dataset's own publisher; entries are stored only when the root
 * recomputed from the local log plus the new entries equals the root of a
 * signed head, so a stored replica always extends what was stored before.
 * Each commit is one LMDB write transaction: entries, tree nodes, state,
 * heads and the dataset record, all or nothing.
 */
#ifndef MU_INGEST_H
#define MU_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "verify.h"

enum ingest_verdict {
	INGEST_NEWER = 1,   /* extends past the local log: fetch entries */
	INGEST_SAME,        /* the local log has exactly this head's tree */
	INGEST_OLDER,       /* an older head of the local log, consistent */
	INGEST_HELD,        /* would extend it, but the dataset is held (below) */
};

/*
 * A fork holds its dataset. When evidence that a dataset's publisher signed
 * two histories is first stored, the dataset is held: ingest_check_head
 * answers INGEST_HELD (why says so) for every head that would extend the
 * local log, so no new head of it is taken from anyone until an operator,
 * having heard the publisher out, clears the hold (`musubi evidence
 * --clear`). The evidence itself stays. Holds live in the meta database
 * under "hold/<dataset>" (the time the fork was found, in decimal us).
 *
 * ingest_hold_get: 0 with *since_us when dataset is held, -ENOENT if not.
 * ingest_hold_clear: 0, or -ENOENT when dataset was not held.
 */
int ingest_hold_get(struct store_txn *t, const char *dataset, int64_t *since_us);
int ingest_hold_clear(struct store *st, const char *dataset);

/*
 * Judge a signed head received from `from` (a member id, for evidence).
 * Returns 0 with *verdict (INGEST_HELD with why set when held), and
 * *local_size set to the local log's size;
 * MU_E_DECODE, MU_E_TRUST, MU_E_BADSIG or MU_E_KEY when the head does not
 * count (why says which rule); or MU_E_FORK when it is validly signed but
 * conflicts with the local log: then Evidence holding both heads has been
 * stored and why describes the fork.
 */
int ingest_check_head(struct store *st, const uint8_t *signed_head, size_t len, const char *from,
		      verify_key_fn keyfn, void *ctx, enum ingest_verdict *verdict,
		      uint64_t *local_size, char *why, size_t whylen);

struct ingest_batch {
	const char *dataset;
	uint64_t from;                  /* seq of entries[0]: the local size */
	size_t n;
	const uint8_t *const *entries;
	const size_t *entry_lens;
	size_t nheads;                  /* signed heads covering the entries, */
	const uint8_t *const *heads;    /* ascending; the last one's size is */
	const size_t *head_lens;        /* exactly from + n */
};

struct ingest_result {
	uint64_t new_size;
	size_t heads_stored;
	char missing_schema[160];       /* "id@version" of an unknown schema, or "" */
};

/*
 * Verify and store a batch. Returns 0, or an error with why naming the
 * entry or head that failed (MU_E_ROOT: entries do not give the signed
 * root; MU_E_DECODE; MU_E_TRUST/MU_E_BADSIG; MU_E_CORRUPT: entries that
 * break the log's rules; -EAGAIN: the local log moved, fetch again).
 */
int ingest_commit(struct store *st, const struct ingest_batch *b, verify_key_fn keyfn, void *ctx,
		  struct ingest_result *res, char *why, size_t whylen);

#endif
