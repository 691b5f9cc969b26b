/*
 * fuzz_ingest.c - libFuzzer target for what a peer sends to be stored:
 * batches of signed heads and entries fed to ingest_check_head() and
 * ingest_commit() against a fresh store, with a key resolver that names
 * the test key for every head (so heads from the seeds verify, and
 * nothing else can).
 *
 * Input: up to 8 frames, each a Heads message and an Entries message (the
 * two replies sync turns into a batch), each preceded by its length as
 * 2 bytes little-endian (cut to what is left of the input).
 *
 * Invariants, after every frame: a head is judged good (or a fork) only
 * when its signature verifies under the test key; a refused batch changes
 * nothing in the store and says why; a stored batch is exactly the bytes
 * sent, covered by its heads; and verify_store() finds no problem in what
 * the store holds, ever.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "head.h"
#include "ingest.h"
#include "mu_err.h"
#include "verify.h"
#include "wire.h"

#define MAX_FRAMES 8

/* Take the next length-prefixed piece of the input. */
static const uint8_t *piece(const uint8_t **p, const uint8_t *end, size_t *len)
{
	const uint8_t *at;

	if (end - *p < 2) {
		*len = 0;
		return NULL;
	}
	*len = (size_t)(*p)[0] | (size_t)(*p)[1] << 8;
	at = *p + 2;
	if (*len > (size_t)(end - at))
		*len = (size_t)(end - at);
	*p = at + *len;
	return at;
}

static int head_verifies(const uint8_t *buf, size_t len)
{
	struct head_signed hs;
	int ok = head_decode(buf, len, &hs) == 0 && head_check_signature(&hs, fuzz_key()) == 0;

	head_signed_fini(&hs);
	return ok;
}

/* Everything a refused batch must leave as it was, as bytes. */
static void snapshot(struct store *st, struct rec_buf *out)
{
	struct store_txn t;
	char **names = NULL;
	size_t n = 0;
	uint64_t count = 0;

	out->len = 0;
	FUZZ_CHECK(store_read_begin(st, &t) == 0);
	FUZZ_CHECK(store_evidence_count(&t, &count) == 0);
	FUZZ_CHECK(store_dataset_names(&t, &names, &n) == 0);
	for (size_t i = 0; i < n; i++) {
		struct store_dataset ds;
		const uint8_t *head = NULL;
		size_t hlen = 0;
		uint64_t hsize = 0;
		FUZZ_CHECK(store_dataset_get(&t, names[i], &ds) == 0);
		store_head_latest(&t, ds.local_id, &hsize, &head, &hlen);
		uint64_t nums[] = { ds.local_id, ds.size, ds.rows, ds.head_size, hsize, hlen };
		size_t nlen = strlen(names[i]) + 1;
		FUZZ_CHECK(rec_buf_reserve(out, nlen + sizeof(nums) + hlen) == 0);
		memcpy(out->data + out->len, names[i], nlen);
		memcpy(out->data + out->len + nlen, nums, sizeof(nums));
		if (hlen > 0)
			memcpy(out->data + out->len + nlen + sizeof(nums), head, hlen);
		out->len += nlen + sizeof(nums) + hlen;
		store_dataset_fini(&ds);
		free(names[i]);
	}
	free(names);
	FUZZ_CHECK(rec_buf_reserve(out, sizeof(count)) == 0);
	memcpy(out->data + out->len, &count, sizeof(count));
	out->len += sizeof(count);
	store_read_end(&t);
}

/* A committed batch: its entries are stored as sent, and its last head
 * is the dataset's newest. */
static void check_stored(struct store *st, const struct ingest_batch *b)
{
	struct store_txn t;
	struct store_dataset ds;
	const uint8_t *buf;
	size_t len;
	uint64_t size;

	FUZZ_CHECK(store_read_begin(st, &t) == 0);
	FUZZ_CHECK(store_dataset_get(&t, b->dataset, &ds) == 0);
	FUZZ_CHECK(ds.size == b->from + b->n && ds.head_size == ds.size);
	for (size_t i = 0; i < b->n; i++) {
		FUZZ_CHECK(store_entry_get(&t, ds.local_id, b->from + i, &buf, &len) == 0);
		FUZZ_CHECK(len == b->entry_lens[i] && memcmp(buf, b->entries[i], len) == 0);
	}
	FUZZ_CHECK(store_head_latest(&t, ds.local_id, &size, &buf, &len) == 0 && size == ds.size);
	FUZZ_CHECK(len == b->head_lens[b->nheads - 1] && memcmp(buf, b->heads[b->nheads - 1], len) == 0);
	store_dataset_fini(&ds);
	store_read_end(&t);
}

static void verified(struct store *st)
{
	struct verify_report rep;
	int rc = verify_store(st, NULL, fuzz_key_fn, NULL, &rep);

	for (size_t i = 0; i < rep.nproblems; i++)
		fprintf(stderr, "verify: %s: %s\n", rep.problems[i].dataset ? rep.problems[i].dataset : "-",
			rep.problems[i].message);
	FUZZ_CHECK(rc == 0 && rep.nproblems == 0);
	verify_report_fini(&rep);
}

static void frame(struct store *st, const Musubi__Heads *h, const Musubi__Entries *e)
{
	const uint8_t **heads = calloc(h->n_heads + 1, sizeof(*heads));
	const uint8_t **entries = calloc(e->n_entries + 1, sizeof(*entries));
	size_t *head_lens = calloc(h->n_heads + 1, sizeof(*head_lens));
	size_t *entry_lens = calloc(e->n_entries + 1, sizeof(*entry_lens));
	struct rec_buf before = { 0 }, after = { 0 };
	struct ingest_result res;
	char why[512];
	int rc;

	FUZZ_CHECK(heads && entries && head_lens && entry_lens);
	for (size_t i = 0; i < h->n_heads; i++) {
		enum ingest_verdict verdict;
		uint64_t local;
		heads[i] = h->heads[i]->signed_head.data;
		head_lens[i] = h->heads[i]->signed_head.len;
		why[0] = '\0';
		rc = ingest_check_head(st, heads[i], head_lens[i], "fuzz", fuzz_key_fn, NULL, &verdict,
				       &local, why, sizeof(why));
		FUZZ_CHECK((rc != 0 && rc != MU_E_FORK) || head_verifies(heads[i], head_lens[i]));
		FUZZ_CHECK(rc == 0 || why[0] != '\0');
	}
	for (size_t i = 0; i < e->n_entries; i++) {
		entries[i] = e->entries[i].data;
		entry_lens[i] = e->entries[i].len;
	}
	struct ingest_batch b = {
		.dataset = e->dataset, .from = e->from, .n = e->n_entries,
		.entries = entries, .entry_lens = entry_lens,
		.nheads = h->n_heads, .heads = heads, .head_lens = head_lens,
	};
	snapshot(st, &before);
	rc = ingest_commit(st, &b, fuzz_key_fn, NULL, &res, why, sizeof(why));
	if (rc == 0) {
		FUZZ_CHECK(res.new_size == b.from + b.n && res.heads_stored == b.nheads);
		for (size_t i = 0; i < b.nheads; i++)
			FUZZ_CHECK(head_verifies(heads[i], head_lens[i]));
		check_stored(st, &b);
	} else {
		FUZZ_CHECK(why[0] != '\0');
		snapshot(st, &after);
		FUZZ_CHECK(after.len == before.len && memcmp(after.data, before.data, after.len) == 0);
	}
	verified(st);
	rec_buf_fini(&before);
	rec_buf_fini(&after);
	free(heads);
	free(entries);
	free(head_lens);
	free(entry_lens);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;
	struct store *st = NULL;
	char dir[256];
	int rc;

	if ((rc = fuzz_store_new(dir, sizeof(dir), &st)) < 0) {   /* the machine, not the input */
		fprintf(stderr, "fuzz_ingest: cannot make a store under $TMPDIR: %s\n", mu_strerror(rc));
		exit(1);
	}
	for (int f = 0; f < MAX_FRAMES && p < end; f++) {
		size_t hlen, elen;
		const uint8_t *hb = piece(&p, end, &hlen), *eb = piece(&p, end, &elen);
		Musubi__Heads *h = hb ? musubi__heads__unpack(NULL, hlen, hb) : NULL;
		Musubi__Entries *e = eb ? musubi__entries__unpack(NULL, elen, eb) : NULL;
		if (h != NULL && e != NULL)
			frame(st, h, e);
		if (h != NULL)
			musubi__heads__free_unpacked(h, NULL);
		if (e != NULL)
			musubi__entries__free_unpacked(e, NULL);
	}
	fuzz_store_drop(dir, &st);
	return 0;
}
