/* verify.c - see verify.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "head.h"
#include "redact.h"
#include "mu_err.h"
#include "util.h"
#include "verify.h"

#define DELETED_BIT (UINT64_C(1) << 63)
/* A redacted upsert: the key is live, its row unknown (redact.h). */
#define REDACTED_BIT (UINT64_C(1) << 62)
#define NO_ROW (DELETED_BIT | REDACTED_BIT)

static void problem(struct verify_report *rep, const char *dataset, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void problem(struct verify_report *rep, const char *dataset, const char *fmt, ...)
{
	struct verify_problem *p = realloc(rep->problems, (rep->nproblems + 1) * sizeof(*p));
	va_list ap;
	char *msg = NULL;

	if (p == NULL)
		return;
	rep->problems = p;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	p[rep->nproblems].dataset = dataset ? strdup(dataset) : NULL;
	p[rep->nproblems].message = msg;
	rep->nproblems++;
}

int verify_own_key(void *ctx, struct store_txn *t, const struct rec_head *h,
		   struct sig_key **key, char *why, size_t whylen)
{
	uint8_t raw[SIG_PUBKEY_LEN];
	char member[64];
	size_t len;
	int rc;

	if ((rc = store_member(t, member, sizeof(member))) < 0)
		return rc;
	if (strcmp(h->publisher, member) != 0) {
		snprintf(why, whylen, "head names publisher %s, and this node (%s) has no trust "
			 "list to tell whose key that is", h->publisher, member);
		return MU_E_TRUST;
	}
	if ((rc = store_meta_get(t, "signing_pub", raw, sizeof(raw), &len)) < 0 || len != sizeof(raw)) {
		snprintf(why, whylen, "the store holds no signing key of its own");
		return MU_E_KEY;
	}
	return sig_key_from_raw_public(raw, key);
}

struct tree_check {
	struct store_tree tree;
	struct verify_report *rep;
	const char *name;
};

/* Called for each perfect subtree the recomputation closes: the stored
 * copy (when this level is stored) must agree. */
static int check_node(void *ctx, unsigned level, uint64_t index, const merkle_hash h)
{
	struct tree_check *tc = ctx;
	merkle_hash stored;
	int rc;

	if (level < STORE_NODE_MIN_LEVEL)
		return 0;
	rc = store_tree_get(&tc->tree, level, index, stored);
	if (rc < 0 || memcmp(stored, h, MERKLE_HASH_LEN) != 0)
		problem(tc->rep, tc->name, "stored subtree hash at level %u index %" PRIu64
			" %s", level, index, rc < 0 ? "is missing" : "differs from the entries");
	return 0;
}

static void check_head(struct store_txn *t, struct verify_report *rep, const char *name,
		       const uint8_t *buf, size_t len, uint64_t size, const merkle_hash root,
		       int64_t *last_time, verify_key_fn keyfn, void *ctx)
{
	struct head_signed hs;
	struct sig_key *key = NULL;
	char why[256] = "";
	int rc;

	rep->heads++;
	if (head_decode(buf, len, &hs) < 0) {
		problem(rep, name, "head at size %" PRIu64 " does not decode", size);
		return;
	}
	const struct rec_head *h = &hs.hd->h;
	if (strcmp(h->dataset, name) != 0 || h->size != size)
		problem(rep, name, "head stored at size %" PRIu64 " claims %s at size %" PRIu64,
			size, h->dataset, h->size);
	if (memcmp(h->root, root, 32) != 0)
		problem(rep, name, "head at size %" PRIu64 " signs a root that the entries do not "
			"give: the entries or the head were altered", size);
	if (h->time_us < *last_time)
		problem(rep, name, "head at size %" PRIu64 " is dated before the head before it", size);
	*last_time = h->time_us;
	if ((rc = keyfn(ctx, t, h, &key, why, sizeof(why))) < 0)
		problem(rep, name, "head at size %" PRIu64 " does not count: %s", size,
			why[0] ? why : mu_strerror(rc));
	else if (head_check_signature(&hs, key) < 0)
		problem(rep, name, "head at size %" PRIu64 " has a signature that does not verify "
			"under publisher %s's key", size, h->publisher);
	sig_key_destroy(&key);
	head_signed_fini(&hs);
}

/* The state must be the fold of the log: compare row by row. */
static void check_state(struct store_txn *t, struct verify_report *rep,
			const struct store_dataset *ds, const struct keyset *fold, uint64_t live)
{
	struct store_iter it = { 0 };
	const uint8_t *k;
	size_t klen;
	struct store_state_val sv;
	uint64_t rows = 0, tag;
	int rc;

	if (store_state_iter_begin(t, ds->local_id, &it) < 0)
		return;
	while ((rc = store_state_iter_next(&it, &k, &klen, &sv)) == 1) {
		uint8_t digest[16];
		rows++;
		if (klen == 33 && k[0] == 0xFF)
			memcpy(digest, k + 1, 16);
		else
			keyset_digest(k, klen, digest);
		if (!keyset_get(fold, digest, &tag) || (tag & DELETED_BIT) || tag != sv.seq) {
			problem(rep, ds->name, "state row for entry %" PRIu64 " is not the latest "
				"upsert of its key in the log", sv.seq);
			continue;
		}
		const uint8_t *buf;
		size_t len;
		struct rec_entry_decoded *d = NULL;
		merkle_hash rowhash;
		if (store_entry_get(t, ds->local_id, sv.seq, &buf, &len) == 0 &&
		    rec_entry_decode(buf, len, &d) == 0) {
			merkle_leaf_hash(d->e.row, d->e.row_len, rowhash);
			if (memcmp(rowhash, sv.row_sha256, 32) != 0)
				problem(rep, ds->name, "state row for entry %" PRIu64
					" does not match the entry's values", sv.seq);
		}
		rec_entry_free(&d);
	}
	store_iter_end(&it);
	if (rc < 0)
		problem(rep, ds->name, "state cannot be read: %s", mu_strerror(rc));
	if (rows != live)
		problem(rep, ds->name, "state holds %" PRIu64 " rows, the log folds to %" PRIu64,
			rows, live);
	if (ds->rows != live)
		problem(rep, ds->name, "dataset record counts %" PRIu64 " rows, the log folds to %"
			PRIu64, ds->rows, live);
}

/* A redacted entry: the notice must be the publisher's and name exactly
 * this leaf; for the fold, a redacted upsert leaves its key live without a
 * row (a later delete of it is valid), a redacted delete deletes. */
static void check_stub(struct store_txn *t, struct verify_report *rep, const char *name,
		       uint64_t seq, const uint8_t *buf, size_t len, verify_key_fn keyfn, void *ctx,
		       struct keyset *fold, uint64_t *live)
{
	struct redact_stub s;
	struct redact_notice n;
	char why[256];
	uint8_t digest[16];
	uint64_t old;

	if (redact_stub_decode(buf, len, &s) < 0) {
		problem(rep, name, "entry %" PRIu64 " is a malformed redaction stub", seq);
		return;
	}
	rep->redacted++;
	if (s.seq != seq || strcmp(s.dataset, name) != 0)
		problem(rep, name, "redacted entry %" PRIu64 " claims to be %s #%" PRIu64, seq,
			s.dataset, s.seq);
	if (redact_check(t, s.notice, s.notice_len, keyfn, ctx, &n, why, sizeof(why)) < 0)
		problem(rep, name, "entry %" PRIu64 " was redacted without a valid notice: %s", seq, why);
	else if (n.seq != seq || memcmp(n.leaf_hash, s.leaf_hash, 32) != 0 ||
		 strcmp(n.dataset, name) != 0)
		problem(rep, name, "the redaction notice of entry %" PRIu64 " names another entry", seq);
	keyset_digest(s.key, s.key_len, digest);
	int was_live = keyset_get(fold, digest, &old) && !(old & NO_ROW);
	if (was_live)
		(*live)--;
	keyset_put(fold, digest, seq | (s.op == REC_DELETE ? DELETED_BIT : REDACTED_BIT));
	redact_stub_fini(&s);
}

static int verify_dataset(struct store_txn *t, const char *name, verify_key_fn keyfn, void *ctx,
			  struct verify_report *rep)
{
	struct store_dataset ds;
	struct merkle_frontier fr;
	struct keyset fold;
	struct tree_check tc = { { t, 0 }, rep, name };
	uint64_t next_head = 0, head_size = 0, live = 0, last_head = 0;
	const uint8_t *hbuf = NULL;
	size_t hlen = 0;
	int64_t last_time = INT64_MIN;
	int rc;

	if ((rc = store_dataset_get(t, name, &ds)) < 0) {
		if (rc == -ENOENT)
			problem(rep, name, "no such dataset on this node");
		return rc == -ENOENT ? 0 : rc;
	}
	rep->datasets++;
	tc.tree.lid = ds.local_id;
	merkle_frontier_init(&fr);
	keyset_init(&fold);
	rc = store_head_next(t, ds.local_id, 0, &next_head, &hbuf, &hlen);
	if (rc == -ENOENT)
		next_head = 0;
	for (uint64_t seq = 0;; seq++) {
		const uint8_t *buf;
		size_t len;
		struct rec_entry_decoded *d = NULL;
		merkle_hash leaf, root;

		/* A head covers the entries before it: check it when reached. */
		while (next_head != 0 && next_head == fr.size) {
			merkle_frontier_root(&fr, root);
			check_head(t, rep, name, hbuf, hlen, next_head, root, &last_time, keyfn, ctx);
			last_head = next_head;
			rc = store_head_next(t, ds.local_id, next_head, &next_head, &hbuf, &hlen);
			if (rc == -ENOENT)
				next_head = 0;
		}
		if ((rc = store_entry_get(t, ds.local_id, seq, &buf, &len)) == -ENOENT)
			break;
		if (rc < 0)
			goto out;
		rep->entries++;
		int stub = redact_leaf_hash(buf, len, leaf);
		if (stub < 0) {
			problem(rep, name, "entry %" PRIu64 " is a malformed redaction stub", seq);
			memset(leaf, 0, sizeof(leaf));
		}
		merkle_frontier_append(&fr, leaf, check_node, &tc);
		if (stub == 1) {
			check_stub(t, rep, name, seq, buf, len, keyfn, ctx, &fold, &live);
			continue;
		}
		if (rec_entry_decode(buf, len, &d) < 0) {
			problem(rep, name, "entry %" PRIu64 " does not decode", seq);
			continue;
		}
		if (strcmp(d->e.dataset, name) != 0 || d->e.seq != seq)
			problem(rep, name, "entry %" PRIu64 " claims to be %s #%" PRIu64, seq,
				d->e.dataset, d->e.seq);
		uint8_t digest[16];
		uint64_t old;
		keyset_digest(d->e.key, d->e.key_len, digest);
		int known = keyset_get(&fold, digest, &old);
		int was_live = known && !(old & NO_ROW);
		if (d->e.op == REC_DELETE) {
			if (was_live)
				live--;
			else if (!known || !(old & REDACTED_BIT))
				problem(rep, name, "entry %" PRIu64 " deletes a key that is not there", seq);
			keyset_put(&fold, digest, seq | DELETED_BIT);
		} else {
			live += !was_live;
			keyset_put(&fold, digest, seq);
		}
		rec_entry_free(&d);
	}
	if (next_head != 0)
		problem(rep, name, "a head at size %" PRIu64 " covers entries that are not stored",
			next_head);
	if (fr.size != ds.size)
		problem(rep, name, "the log holds %" PRIu64 " entries, the dataset record says %"
			PRIu64, fr.size, ds.size);
	if (last_head != fr.size)
		problem(rep, name, "entries %" PRIu64 " to %" PRIu64 " are covered by no signed head",
			last_head, fr.size);
	head_size = last_head;
	if (ds.head_size != head_size)
		problem(rep, name, "the dataset record names head size %" PRIu64 ", the newest "
			"stored head is %" PRIu64, ds.head_size, head_size);
	check_state(t, rep, &ds, &fold, live);
	rc = 0;
out:
	keyset_fini(&fold);
	store_dataset_fini(&ds);
	return rc;
}

int verify_store(struct store *st, const char *dataset, verify_key_fn keyfn, void *ctx,
		 struct verify_report *rep)
{
	struct store_txn t;
	char **names = NULL;
	size_t n = 0;
	int rc;

	memset(rep, 0, sizeof(*rep));
	if ((rc = store_read_begin(st, &t)) < 0)
		return rc;
	if (dataset != NULL) {
		rc = verify_dataset(&t, dataset, keyfn, ctx, rep);
	} else if ((rc = store_dataset_names(&t, &names, &n)) == 0) {
		for (size_t i = 0; i < n && rc == 0; i++)
			rc = verify_dataset(&t, names[i], keyfn, ctx, rep);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	store_read_end(&t);
	if (rc < 0)
		return rc;
	return rep->nproblems > 0 ? MU_E_CORRUPT : 0;
}

void verify_report_fini(struct verify_report *rep)
{
	for (size_t i = 0; i < rep->nproblems; i++) {
		free(rep->problems[i].dataset);
		free(rep->problems[i].message);
	}
	free(rep->problems);
	memset(rep, 0, sizeof(*rep));
}
