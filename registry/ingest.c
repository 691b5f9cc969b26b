/* ingest.c - see ingest.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "head.h"
#include "ingest.h"
#include "musubi.pb-c.h"
#include "mu_err.h"
#include "redact.h"
#include "schema.h"
#include "util.h"

/* The member a dataset name belongs to: "011002/aed" -> "011002". */
static int dataset_owner(const char *dataset, char *out, size_t cap)
{
	const char *slash = strchr(dataset, '/');
	size_t n = slash ? (size_t)(slash - dataset) : 0;

	if (n == 0 || n >= cap || !mu_valid_dataset_name(slash + 1))
		return MU_E_DECODE;
	memcpy(out, dataset, n);
	out[n] = '\0';
	return mu_valid_member(out) ? 0 : MU_E_DECODE;
}

/* Decode a head, check it names its dataset's publisher, and check its
 * signature under the trust rules. */
static int judge_head(struct store_txn *t, const uint8_t *buf, size_t len, verify_key_fn keyfn,
		      void *ctx, struct head_signed *hs, char *why, size_t whylen)
{
	struct sig_key *key = NULL;
	char owner[64];
	int rc;

	if ((rc = head_decode(buf, len, hs)) < 0) {
		snprintf(why, whylen, "head does not decode");
		return rc;
	}
	if (dataset_owner(hs->hd->h.dataset, owner, sizeof(owner)) < 0) {
		snprintf(why, whylen, "head names an invalid dataset \"%.80s\"", hs->hd->h.dataset);
		rc = MU_E_DECODE;
	} else if (strcmp(owner, hs->hd->h.publisher) != 0) {
		snprintf(why, whylen, "head of %s is signed by %.40s, not by its publisher %s",
			 hs->hd->h.dataset, hs->hd->h.publisher, owner);
		rc = MU_E_TRUST;
	} else if ((rc = keyfn(ctx, t, &hs->hd->h, &key, why, whylen)) < 0) {
		/* why says which trust rule refused it */
	} else if ((rc = head_check_signature(hs, key)) < 0) {
		snprintf(why, whylen, "head of %s at size %" PRIu64 " has a signature that does not "
			 "verify under %s's key", hs->hd->h.dataset, hs->hd->h.size, owner);
	}
	sig_key_destroy(&key);
	if (rc < 0)
		head_signed_fini(hs);
	return rc;
}

struct evidence_ctx {
	const char *dataset;
	const uint8_t *a, *b;
	size_t alen, blen;
	const char *from_a, *from_b, *reason;
};

static int store_evidence_fn(struct store_txn *t, void *arg)
{
	struct evidence_ctx *e = arg;
	Musubi__Evidence m = MUSUBI__EVIDENCE__INIT;
	uint8_t *buf;
	size_t len;
	int rc;

	m.dataset = (char *)e->dataset;
	m.head_a.data = (uint8_t *)e->a;
	m.head_a.len = e->alen;
	m.head_b.data = (uint8_t *)e->b;
	m.head_b.len = e->blen;
	m.from_a = (char *)e->from_a;
	m.from_b = (char *)e->from_b;
	m.found_us = mu_now_us();
	m.reason = (char *)e->reason;
	len = musubi__evidence__get_packed_size(&m);
	if ((buf = malloc(len)) == NULL)
		return -ENOMEM;
	musubi__evidence__pack(&m, buf);
	rc = store_evidence_put(t, e->dataset, m.found_us, buf, len);
	free(buf);
	if (rc == 0) {
		char key[160], since[32];
		snprintf(key, sizeof(key), "hold/%s", e->dataset);
		snprintf(since, sizeof(since), "%" PRId64, m.found_us);
		rc = store_meta_put(t, key, since, strlen(since));
	}
	return rc;
}

int ingest_hold_get(struct store_txn *t, const char *dataset, int64_t *since_us)
{
	char key[160], buf[32];
	size_t len;
	int rc;

	snprintf(key, sizeof(key), "hold/%s", dataset);
	if ((rc = store_meta_get(t, key, buf, sizeof(buf), &len)) < 0)
		return rc;
	*since_us = strtoll(buf, NULL, 10);
	return 0;
}

static int hold_clear_fn(struct store_txn *t, void *arg)
{
	char key[160];

	snprintf(key, sizeof(key), "hold/%s", (const char *)arg);
	return store_meta_del(t, key);
}

int ingest_hold_clear(struct store *st, const char *dataset)
{
	return store_write(st, hold_clear_fn, (void *)dataset);
}

struct same_evidence {
	const uint8_t *head;
	size_t len;
	int found;
};

static int find_same(void *ctx, const uint8_t *buf, size_t len)
{
	struct same_evidence *s = ctx;
	Musubi__Evidence *m = musubi__evidence__unpack(NULL, len, buf);

	if (m != NULL) {
		s->found |= m->head_b.len == s->len && memcmp(m->head_b.data, s->head, s->len) == 0;
		musubi__evidence__free_unpacked(m, NULL);
	}
	return s->found;
}

/* Store both heads as evidence, once; `ours` is a copy of the local head. */
static int record_fork(struct store *st, const char *dataset, const uint8_t *ours, size_t olen,
		       const uint8_t *theirs, size_t tlen, const char *from, const char *reason)
{
	struct evidence_ctx e = { dataset, ours, theirs, olen, tlen, "local", from, reason };
	struct same_evidence same = { theirs, tlen, 0 };
	struct store_txn t;
	int rc;

	if (store_read_begin(st, &t) == 0) {
		store_evidence_iter(&t, find_same, &same);
		store_read_end(&t);
	}
	if (same.found)
		return MU_E_FORK;   /* known already: kept once */
	rc = store_write(st, store_evidence_fn, &e);

	fprintf(stderr, "musubi: FORK of %s: %s (from %s); evidence stored\n", dataset, reason, from);
	return rc < 0 ? rc : MU_E_FORK;
}

/* Is signed_head, byte for byte, a head this store holds? Then it was
 * judged when it was stored, and its verdict is SAME or OLDER. Every
 * anti-entropy round lists every head again: checking each signature anew
 * would cost peers x datasets verifications a round (at 179 members, most
 * of a node's CPU). Returns 1 (verdict set), 0 (not held), or an error. */
static int held_head(struct store_txn *t, const uint8_t *signed_head, size_t len,
		     enum ingest_verdict *verdict, uint64_t *local_size)
{
	struct head_signed hs;
	struct store_dataset ds;
	const uint8_t *buf;
	size_t blen;
	int rc, held = 0;

	if (head_decode(signed_head, len, &hs) < 0)
		return 0;   /* judge_head says why */
	rc = store_dataset_get(t, hs.hd->h.dataset, &ds);
	if (rc == 0) {
		if (hs.hd->h.size <= ds.size &&
		    store_head_get(t, ds.local_id, hs.hd->h.size, &buf, &blen) == 0 && blen == len &&
		    memcmp(buf, signed_head, len) == 0) {
			*verdict = hs.hd->h.size == ds.size ? INGEST_SAME : INGEST_OLDER;
			*local_size = ds.size;
			held = 1;
		}
		store_dataset_fini(&ds);
	}
	head_signed_fini(&hs);
	return rc < 0 && rc != -ENOENT ? rc : held;
}

int ingest_check_head(struct store *st, const uint8_t *signed_head, size_t len, const char *from,
		      verify_key_fn keyfn, void *ctx, enum ingest_verdict *verdict,
		      uint64_t *local_size, char *why, size_t whylen)
{
	struct store_txn t;
	struct head_signed hs = { 0 };
	struct store_dataset ds = { 0 };
	uint8_t *ours = NULL;
	size_t olen = 0;
	int rc, fork = 0;

	*local_size = 0;
	if ((rc = store_read_begin(st, &t)) < 0)
		return rc;
	if ((rc = held_head(&t, signed_head, len, verdict, local_size)) != 0) {
		rc = rc > 0 ? 0 : rc;
		goto out;
	}
	if ((rc = judge_head(&t, signed_head, len, keyfn, ctx, &hs, why, whylen)) < 0)
		goto out;
	const struct rec_head *h = &hs.hd->h;
	rc = store_dataset_get(&t, h->dataset, &ds);
	if (rc == -ENOENT) {
		*verdict = INGEST_NEWER;
		rc = 0;
		goto out;
	}
	if (rc < 0)
		goto out;
	*local_size = ds.size;
	int64_t since;
	if (h->size > ds.size && ingest_hold_get(&t, h->dataset, &since) == 0) {
		char when[40];
		mu_format_time(since, when, sizeof(when));
		snprintf(why, whylen, "new heads of %s are held: its publisher %s has shown two "
			 "histories (found %s); an operator clears the hold with musubi evidence "
			 "--clear %s", h->dataset, h->publisher, when, h->dataset);
		*verdict = INGEST_HELD;
		goto out;
	}
	if (h->size > ds.size) {
		*verdict = INGEST_NEWER;
		goto out;
	}
	/* The local log covers this size: the roots must agree. */
	struct store_tree tree = { &t, ds.local_id };
	merkle_hash root;
	if (h->size == 0)
		merkle_empty_root(root);
	else if ((rc = merkle_range_hash(0, h->size, store_tree_get, &tree, root)) < 0)
		goto out;
	if (memcmp(root, h->root, 32) == 0) {
		*verdict = h->size == ds.size ? INGEST_SAME : INGEST_OLDER;
		goto out;
	}
	/* A validly signed head whose tree differs from ours: a fork. The
	 * local head that proves it is the first stored at or after h->size. */
	const uint8_t *buf;
	uint64_t size;
	if (store_head_next(&t, ds.local_id, h->size - (h->size > 0), &size, &buf, &olen) == 0 &&
	    (ours = malloc(olen)) != NULL)
		memcpy(ours, buf, olen);
	snprintf(why, whylen, "a head of %s at size %" PRIu64 " signed by %s has a root that the "
		 "stored log does not give: the publisher has shown two histories",
		 h->dataset, h->size, h->publisher);
	fork = 1;
out:
	store_read_end(&t);
	if (fork)
		rc = record_fork(st, ds.name, ours, olen, signed_head, len, from, why);
	free(ours);
	store_dataset_fini(&ds);
	head_signed_fini(&hs);
	return rc;
}

struct commit_ctx {
	const struct ingest_batch *b;
	verify_key_fn keyfn;
	void *kctx;
	struct ingest_result *res;
	char *why;
	size_t whylen;
};

static int fold_entry(struct store_txn *t, struct store_dataset *ds, const struct rec_entry *e,
		      char *why, size_t whylen)
{
	struct store_state_val sv;
	int rc, added;

	if (e->op == REC_DELETE) {
		rc = store_state_get(t, ds->local_id, e->key, e->key_len, &sv);
		if (rc < 0 && rc != -ENOENT)
			return rc;
		/* Every delete takes the key's live-but-unknown mark (redact.h):
		 * without a row, the mark is what makes the delete valid. */
		int marked = redact_live_take(t, ds->local_id, e->key, e->key_len);
		if (marked < 0)
			return marked;
		if (rc == -ENOENT && marked)
			return 0;   /* its upsert was redacted: the row went then */
		if (rc == -ENOENT) {
			snprintf(why, whylen, "entry %" PRIu64 " of %s deletes a key that is not there",
				 e->seq, ds->name);
			return MU_E_CORRUPT;
		}
		ds->rows--;
		return store_state_del(t, ds->local_id, e->key, e->key_len);
	}
	if (e->row == NULL || e->schema_id == NULL) {
		snprintf(why, whylen, "entry %" PRIu64 " of %s is an upsert without a row or schema",
			 e->seq, ds->name);
		return MU_E_CORRUPT;
	}
	sv.seq = e->seq;
	merkle_leaf_hash(e->row, e->row_len, sv.row_sha256);
	if ((rc = store_state_upsert(t, ds->local_id, e->key, e->key_len, &sv, &added)) == 0)
		ds->rows += added;
	return rc;
}

/* Remember the schema of the newest upsert, and fetch its JSON from the
 * built-ins when the store does not have it. *looked says the store was
 * already asked for ds's schema in this commit: the entries of a batch
 * mostly share one schema, and asking for each costs a formatted ref and a
 * read per entry. */
static int note_schema(struct store_txn *t, struct store_dataset *ds, const struct rec_entry *e,
		       struct ingest_result *res, int *looked)
{
	char ref[160];
	const uint8_t *json;
	size_t len;

	if (ds->schema_id == NULL || strcmp(ds->schema_id, e->schema_id) != 0 ||
	    ds->schema_version != e->schema_version) {
		free(ds->schema_id);
		if ((ds->schema_id = strdup(e->schema_id)) == NULL)
			return -ENOMEM;
		ds->schema_version = e->schema_version;
		if (e->schema_digest)
			memcpy(ds->schema_digest, e->schema_digest, 32);
		*looked = 0;
	}
	if (*looked)
		return 0;
	*looked = 1;
	snprintf(ref, sizeof(ref), "%s@%u", e->schema_id, e->schema_version);
	/* Already found missing in this commit: do not hash every built-in
	 * again for each of its upserts. */
	if (strcmp(res->missing_schema, ref) == 0 || store_schema_get(t, ref, &json, &len) == 0)
		return 0;
	for (size_t i = 0; i < schema_builtin_count(); i++) {
		const char *b = schema_builtin_json(i);
		uint8_t digest[32];
		sig_sha256(b, strlen(b), digest);
		if (e->schema_digest && memcmp(digest, e->schema_digest, 32) == 0)
			return store_schema_put(t, ref, b, strlen(b));
	}
	snprintf(res->missing_schema, sizeof(res->missing_schema), "%s", ref);
	return 0;
}

/* A redacted entry from a peer: its notice must be the publisher's and name
 * this leaf; a redacted upsert leaves its key without a row, but live. */
static int ingest_stub(struct store_txn *t, struct store_dataset *ds, const struct ingest_batch *b,
		       size_t i, struct commit_ctx *c)
{
	struct redact_stub s;
	struct redact_notice n;
	struct store_state_val sv;
	int rc;

	if ((rc = redact_stub_decode(b->entries[i], b->entry_lens[i], &s)) < 0) {
		snprintf(c->why, c->whylen, "entry %" PRIu64 " of %s is a malformed redaction stub",
			 b->from + i, b->dataset);
		return rc;
	}
	if (s.seq != b->from + i || strcmp(s.dataset, b->dataset) != 0) {
		snprintf(c->why, c->whylen, "redacted entry %" PRIu64 " of %s claims another place",
			 b->from + i, b->dataset);
		rc = MU_E_CORRUPT;
	} else if ((rc = redact_check(t, s.notice, s.notice_len, c->keyfn, c->kctx, &n, c->why,
				      c->whylen)) < 0) {
		/* why names the rule */
	} else if (n.seq != s.seq || memcmp(n.leaf_hash, s.leaf_hash, 32) != 0) {
		snprintf(c->why, c->whylen, "the redaction notice of %s #%" PRIu64 " names another "
			 "entry", b->dataset, s.seq);
		rc = MU_E_CORRUPT;
	} else if ((rc = store_redaction_put(t, b->dataset, s.seq, s.notice, s.notice_len)) == 0) {
		/* The stub is its key's latest entry: a redacted delete deletes
		 * (taking the mark as a delete does), a redacted upsert leaves the
		 * key live but unknown, so that a later delete of it counts. */
		if (store_state_get(t, ds->local_id, s.key, s.key_len, &sv) == 0) {
			ds->rows--;
			rc = store_state_del(t, ds->local_id, s.key, s.key_len);
		}
		if (rc == 0 && s.op == REC_DELETE)
			rc = redact_live_take(t, ds->local_id, s.key, s.key_len);
		else if (rc == 0)
			rc = redact_live_set(t, ds->local_id, s.key, s.key_len, s.seq);
		rc = rc > 0 ? 0 : rc;
	}
	redact_stub_fini(&s);
	return rc;
}

static int commit_fn(struct store_txn *t, void *arg)
{
	struct commit_ctx *c = arg;
	const struct ingest_batch *b = c->b;
	struct store_dataset ds = { 0 };
	struct merkle_frontier fr;
	struct store_tree tree = { t, 0 };
	size_t next_head = 0;
	uint64_t *sizes = NULL;
	char owner[64];
	struct rec_arena arena = { 0 };   /* the decoded entry, reused entry after entry */
	int rc, schema_looked = 0;

	c->res->heads_stored = 0;
	c->res->missing_schema[0] = '\0';
	if ((rc = dataset_owner(b->dataset, owner, sizeof(owner))) < 0) {
		snprintf(c->why, c->whylen, "invalid dataset name");
		return rc;
	}
	rc = store_dataset_get(t, b->dataset, &ds);
	if (rc == -ENOENT) {
		if ((ds.name = strdup(b->dataset)) == NULL || (ds.publisher = strdup(owner)) == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		ds.created_us = mu_now_us();
		rc = store_dataset_put(t, &ds);
	}
	if (rc < 0)
		goto out;
	if (ds.size != b->from) {
		snprintf(c->why, c->whylen, "the local log of %s has %" PRIu64 " entries, the batch "
			 "starts at %" PRIu64, b->dataset, ds.size, b->from);
		rc = -EAGAIN;
		goto out;
	}
	tree.lid = ds.local_id;
	if ((rc = merkle_frontier_load(&fr, ds.size, store_tree_get, &tree)) < 0)
		goto out;
	/* The heads' sizes first: they must climb strictly within the batch. */
	sizes = calloc(b->nheads ? b->nheads : 1, sizeof(*sizes));
	if (sizes == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t k = 0; k < b->nheads; k++) {
		struct head_signed hs;
		if ((rc = head_decode(b->heads[k], b->head_lens[k], &hs)) < 0) {
			snprintf(c->why, c->whylen, "head %zu of the batch for %s does not decode", k,
				 b->dataset);
			goto out;
		}
		sizes[k] = hs.hd->h.size;
		int same = strcmp(hs.hd->h.dataset, b->dataset) == 0;
		head_signed_fini(&hs);
		if (!same || sizes[k] <= b->from || sizes[k] > b->from + b->n ||
		    (k > 0 && sizes[k] <= sizes[k - 1])) {
			snprintf(c->why, c->whylen, "head %zu of the batch for %s is out of order "
				 "or outside it", k, b->dataset);
			rc = MU_E_PROTO;
			goto out;
		}
	}
	for (size_t i = 0; i <= b->n; i++) {
		/* A head that ends here: its root must be the recomputed one, and
		 * its signature must count. */
		if (next_head < b->nheads && sizes[next_head] == fr.size) {
			struct head_signed hs;
			merkle_hash root;
			if ((rc = judge_head(t, b->heads[next_head], b->head_lens[next_head], c->keyfn,
					     c->kctx, &hs, c->why, c->whylen)) < 0) {
				goto out;
			}
			if (hs.hd->h.time_us < ds.updated_us) {
				snprintf(c->why, c->whylen, "the head of %s at size %" PRIu64 " is dated "
					 "before the head it extends", b->dataset, fr.size);
				head_signed_fini(&hs);
				rc = MU_E_CORRUPT;
				goto out;
			}
			merkle_frontier_root(&fr, root);
			if (memcmp(root, hs.hd->h.root, 32) != 0) {
				snprintf(c->why, c->whylen, "entries %" PRIu64 "..%" PRIu64 " of %s do not "
					 "give the root signed at size %" PRIu64, b->from, fr.size - 1,
					 b->dataset, fr.size);
				head_signed_fini(&hs);
				rc = MU_E_ROOT;
				goto out;
			}
			ds.members_only = hs.hd->h.members_only;
			ds.head_size = fr.size;
			ds.updated_us = hs.hd->h.time_us;
			rc = store_head_put(t, ds.local_id, fr.size, b->heads[next_head],
					    b->head_lens[next_head]);
			head_signed_fini(&hs);
			if (rc < 0) {
				goto out;
			}
			c->res->heads_stored++;
			next_head++;
		}
		if (i == b->n)
			break;
		struct rec_entry e;
		merkle_hash leaf;
		int stub = redact_leaf_hash(b->entries[i], b->entry_lens[i], leaf);
		if (stub == 1) {
			if ((rc = ingest_stub(t, &ds, b, i, c)) < 0)
				goto out;
			goto append;
		}
		if (stub < 0 || rec_entry_decode_in(&arena, b->entries[i], b->entry_lens[i], &e) < 0) {
			snprintf(c->why, c->whylen, "entry %" PRIu64 " of %s does not decode",
				 b->from + i, b->dataset);
			rc = MU_E_DECODE;
			goto out;
		}
		if (strcmp(e.dataset, b->dataset) != 0 || e.seq != b->from + i) {
			snprintf(c->why, c->whylen, "entry %" PRIu64 " of %s claims to be %.80s #%" PRIu64,
				 b->from + i, b->dataset, e.dataset, e.seq);
			rc = MU_E_CORRUPT;
			goto out;
		}
		rc = fold_entry(t, &ds, &e, c->why, c->whylen);
		if (rc == 0 && e.op == REC_UPSERT)
			rc = note_schema(t, &ds, &e, c->res, &schema_looked);
		if (rc < 0)
			goto out;
append:
		if ((rc = store_entry_put(t, ds.local_id, ds.size, b->entries[i], b->entry_lens[i])) < 0)
			goto out;
		if ((rc = merkle_frontier_append(&fr, leaf, store_tree_done, &tree)) < 0)
			goto out;
		ds.size++;
	}
	if (next_head != b->nheads || b->nheads == 0 || ds.head_size != ds.size) {
		snprintf(c->why, c->whylen, "the batch for %s does not end on a signed head", b->dataset);
		rc = MU_E_PROTO;
		goto out;
	}
	rc = store_dataset_put(t, &ds);
	c->res->new_size = ds.size;
out:
	free(sizes);
	rec_arena_fini(&arena);
	store_dataset_fini(&ds);
	return rc;
}

int ingest_commit(struct store *st, const struct ingest_batch *b, verify_key_fn keyfn, void *ctx,
		  struct ingest_result *res, char *why, size_t whylen)
{
	struct commit_ctx c = { b, keyfn, ctx, res, why, whylen };

	memset(res, 0, sizeof(*res));
	why[0] = '\0';
	return store_write(st, commit_fn, &c);
}
