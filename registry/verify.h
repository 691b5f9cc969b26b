/*
 * verify.h - recompute and check everything a store claims about its logs.
 *
 * For each dataset: every entry decodes and names its dataset and place;
 * the Merkle root recomputed from the entries equals the root of every
 * stored head at that size; every head's signature verifies under the key
 * the resolver names; heads only grow; the stored subtree hashes equal the
 * recomputed ones; the state is exactly the fold of the log (latest upsert
 * per key, minus deletes); no entry is left unsigned.
 *
 * Problems are reported in plain words, each naming the dataset and the
 * entry or head where it was found. Verification goes on after a problem.
 */
#ifndef MU_VERIFY_H
#define MU_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "rec.h"
#include "sig.h"
#include "store.h"

/*
 * Find the key that must have signed head h. Returns 0 with *key (the
 * caller destroys it), or a negative code with why set to the rule that
 * refused it (e.g. "member 011002 was revoked at ...").
 */
typedef int (*verify_key_fn)(void *ctx, struct store_txn *t, const struct rec_head *h,
			     struct sig_key **key, char *why, size_t whylen);

/* The resolver of a node outside any federation: heads must be signed by
 * the node's own key (meta "signing_pub") and name the node's member id. */
int verify_own_key(void *ctx, struct store_txn *t, const struct rec_head *h,
		   struct sig_key **key, char *why, size_t whylen);

struct verify_problem {
	char *dataset;
	char *message;
};

struct verify_report {
	uint64_t datasets, entries, heads, redacted;
	size_t nproblems;
	struct verify_problem *problems;
};

/* Verify one dataset (name) or all (NULL). Returns 0 when no problem was
 * found, MU_E_CORRUPT when some were (listed in rep), or another error when
 * verification itself could not run. */
int verify_store(struct store *st, const char *dataset, verify_key_fn keyfn, void *ctx,
		 struct verify_report *rep);
void verify_report_fini(struct verify_report *rep);

#endif
