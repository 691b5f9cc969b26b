/*
 * catchup.c - the restore guard on the node's side (backup.h). A data
 * directory put back from a backup is marked; until this node has fetched
 * its own logs back from its peers, neither `musubi publish` nor the node
 * itself (access records) may append to them, or the new heads would fork
 * what the peers already hold. The node clears the mark once a peer has
 * listed its heads and every dataset of this member is at least at the size
 * every answering peer holds.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "backup.h"
#include "log.h"
#include "mu_err.h"
#include "node.h"
#include "store.h"
#include "util.h"

void catchup_init(struct node *n)
{
	struct store_txn t;
	char when[64];

	n->restore_pending = 0;
	if (store_read_begin(n->st, &t) < 0)
		return;
	if (backup_restored(&t, when, sizeof(when)) > 0) {
		n->restore_pending = 1;
		log_warn("this data directory was restored from a backup taken %s: this node appends "
			 "nothing to its own datasets until it has fetched them back from a peer", when);
	}
	store_read_end(&t);
}

/* Is one of this member's datasets behind a size a peer listed? */
static int own_behind(struct node *n, struct store_txn *t, const struct peer *p)
{
	size_t mlen = strlen(n->member);

	for (size_t i = 0; i < p->nheads; i++) {
		const struct peer_head *h = &p->heads[i];
		struct store_dataset d;
		uint64_t have = 0;

		if (strncmp(h->dataset, n->member, mlen) != 0 || h->dataset[mlen] != '/')
			continue;
		if (store_dataset_get(t, h->dataset, &d) == 0) {
			have = d.size;
			store_dataset_fini(&d);
		}
		if (have < h->size) {
			log_debug("restored: %s is at %" PRIu64 ", peer %s holds %" PRIu64, h->dataset,
				  have, p->endpoint, h->size);
			return 1;
		}
	}
	return 0;
}

void catchup_check(struct node *n, int64_t now)
{
	struct store_txn t;
	size_t answered = 0;
	int behind = 0;

	if (!n->restore_pending || store_read_begin(n->st, &t) < 0)
		return;
	for (size_t i = 0; i < n->npeers && !behind; i++) {
		const struct peer *p = &n->peers[i];
		if (!p->heads_listed || p->backoff_until_us > now)
			continue;   /* no word from it, or not believed */
		answered++;
		behind = own_behind(n, &t, p);
	}
	store_read_end(&t);
	if (answered == 0 || behind)
		return;
	int rc = backup_clear_restored(n->st);
	if (rc < 0) {
		log_err("cannot clear the restored-from-backup mark: %s", mu_strerror(rc));
		return;
	}
	n->restore_pending = 0;
	log_info("restored data directory caught up with %zu peer(s): publishing is allowed again",
		 answered);
}
