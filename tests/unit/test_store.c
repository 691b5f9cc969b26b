/* test_store.c - the LMDB store: meta, datasets, log, tree, heads, state,
 * map growth and format checks; entries decoded in bulk. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "mu_err.h"
#include "rec.h"
#include "store.h"
#include "testutil.h"

static char tmpdir[TU_DIR_MAX];

static void fresh_dir(void)
{
	CHECK_OK(tu_rmrf(tmpdir));
	CHECK_OK(tu_tmpdir(tmpdir, "store"));
}

static int put_member(struct store_txn *t, void *ctx)
{
	return store_meta_put(t, "member", ctx, strlen(ctx));
}

static void test_open_create_and_reopen(void)
{
	struct store *st = NULL;
	struct store_txn t;
	char member[64];

	fresh_dir();
	char missing[300];
	snprintf(missing, sizeof(missing), "%s/none", tmpdir);
	CHECK_RC(store_open(missing, 0, &st), -ENOENT);
	CHECK_OK(store_open(tmpdir, STORE_CREATE, &st));
	REQUIRE(st != NULL);
	CHECK_OK(store_write(st, put_member, "011002"));
	store_close(&st);
	CHECK(st == NULL);
	CHECK_OK(store_open(tmpdir, STORE_RDONLY, &st));
	REQUIRE(st != NULL);
	CHECK_OK(store_read_begin(st, &t));
	CHECK_OK(store_member(&t, member, sizeof(member)));
	CHECK_STREQ(member, "011002");
	store_read_end(&t);
	store_close(&st);
}

static int put_format(struct store_txn *t, void *ctx)
{
	return store_meta_put(t, "format", "99", 2);
}

static void test_refuses_other_format(void)
{
	struct store *st = NULL;

	fresh_dir();
	CHECK_OK(store_open(tmpdir, STORE_CREATE, &st));
	CHECK_OK(store_write(st, put_format, NULL));
	store_close(&st);
	CHECK_RC(store_open(tmpdir, 0, &st), MU_E_VERSION);
	CHECK(st == NULL);
}

struct ds_ctx {
	uint32_t lids[3];
};

static int make_datasets(struct store_txn *t, void *arg)
{
	struct ds_ctx *c = arg;
	const char *names[] = { "011002/b", "011002/a", "222127/aed" };
	int rc;

	for (int i = 0; i < 3; i++) {
		struct store_dataset d = { 0 };
		d.name = (char *)names[i];
		d.schema_id = (char *)"aed";
		d.schema_version = 1;
		d.size = 7 + i;
		d.title = (char *)"AED設置箇所一覧";
		if ((rc = store_dataset_put(t, &d)) < 0)
			return rc;
		c->lids[i] = d.local_id;
	}
	return 0;
}

static void test_datasets(void)
{
	struct store *st = NULL;
	struct store_txn t;
	struct ds_ctx c;
	struct store_dataset d;
	char **names;
	size_t n;

	fresh_dir();
	CHECK_OK(store_open(tmpdir, STORE_CREATE, &st));
	CHECK_OK(store_write(st, make_datasets, &c));
	CHECK(c.lids[0] != 0 && c.lids[0] != c.lids[1] && c.lids[1] != c.lids[2]);
	CHECK_OK(store_read_begin(st, &t));
	CHECK_OK(store_dataset_names(&t, &names, &n));
	REQUIRE(n == 3);
	CHECK_STREQ(names[0], "011002/a");
	CHECK_STREQ(names[2], "222127/aed");
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	CHECK_OK(store_dataset_get(&t, "222127/aed", &d));
	CHECK(d.local_id == c.lids[2] && d.size == 9 && d.schema_version == 1);
	CHECK_STREQ(d.title, "AED設置箇所一覧");
	store_dataset_fini(&d);
	CHECK_RC(store_dataset_get(&t, "222127/none", &d), -ENOENT);
	store_read_end(&t);
	store_close(&st);
}

/* Append n leaves to dataset lid through the frontier, as publish does. */
struct log_ctx {
	uint32_t lid;
	uint64_t n;
	merkle_hash root;
};

static int append_log(struct store_txn *t, void *arg)
{
	struct log_ctx *c = arg;
	struct store_tree tree = { t, c->lid };
	struct merkle_frontier f;
	int rc;

	merkle_frontier_init(&f);
	for (uint64_t i = 0; i < c->n; i++) {
		char buf[64];
		merkle_hash leaf;
		int len = snprintf(buf, sizeof(buf), "entry %llu", (unsigned long long)i);
		if ((rc = store_entry_put(t, c->lid, i, buf, (size_t)len)) < 0)
			return rc;
		merkle_leaf_hash(buf, (size_t)len, leaf);
		if ((rc = merkle_frontier_append(&f, leaf, store_tree_done, &tree)) < 0)
			return rc;
	}
	merkle_frontier_root(&f, c->root);
	return 0;
}

static void test_tree_from_store(void)
{
	struct store *st = NULL;
	struct store_txn t;
	struct log_ctx c = { .lid = 5, .n = 1000 };
	struct store_tree tree;
	struct merkle_frontier f;
	merkle_hash root, proof[MERKLE_MAX_DEPTH], leaf;
	size_t np;

	fresh_dir();
	CHECK_OK(store_open(tmpdir, STORE_CREATE, &st));
	CHECK_OK(store_write(st, append_log, &c));
	CHECK_OK(store_read_begin(st, &t));
	tree.t = &t;
	tree.lid = 5;
	/* Reloading the frontier from stored and recomputed subtrees gives
	 * the same root as appending did. */
	for (uint64_t size = 1; size <= 1000; size += 37) {
		CHECK_OK(merkle_frontier_load(&f, size, store_tree_get, &tree));
		CHECK(f.size == size);
	}
	CHECK_OK(merkle_frontier_load(&f, 1000, store_tree_get, &tree));
	merkle_frontier_root(&f, root);
	CHECK(memcmp(root, c.root, 32) == 0);
	/* Inclusion proofs served from the store verify against that root. */
	for (uint64_t i = 0; i < 1000; i += 111) {
		char buf[64];
		int len = snprintf(buf, sizeof(buf), "entry %llu", (unsigned long long)i);
		merkle_leaf_hash(buf, (size_t)len, leaf);
		CHECK_OK(merkle_inclusion_proof(i, 1000, store_tree_get, &tree, proof, &np));
		CHECK_OK(merkle_verify_inclusion(leaf, i, 1000, proof, np, root));
	}
	/* A missing entry is reported as corruption, not a crash. */
	CHECK_RC(merkle_frontier_load(&f, 1001, store_tree_get, &tree), MU_E_CORRUPT);
	store_read_end(&t);
	store_close(&st);
}

static int put_heads(struct store_txn *t, void *arg)
{
	int rc;

	for (uint64_t s = 10; s <= 30; s += 10)
		if ((rc = store_head_put(t, 2, s, &s, sizeof(s))) < 0)
			return rc;
	/* Another dataset's heads must not leak into lid 2's history. */
	uint64_t x = 99;
	if ((rc = store_head_put(t, 3, 5, &x, sizeof(x))) < 0)
		return rc;
	return store_head_put(t, 1, 50, &x, sizeof(x));
}

static void test_head_history(void)
{
	struct store *st = NULL;
	struct store_txn t;
	const uint8_t *buf;
	size_t len;
	uint64_t size, v;

	fresh_dir();
	CHECK_OK(store_open(tmpdir, STORE_CREATE, &st));
	CHECK_OK(store_write(st, put_heads, NULL));
	CHECK_OK(store_read_begin(st, &t));
	CHECK_OK(store_head_latest(&t, 2, &size, &buf, &len));
	CHECK(size == 30);
	memcpy(&v, buf, sizeof(v));
	CHECK(v == 30);
	CHECK_OK(store_head_next(&t, 2, 0, &size, &buf, &len));
	CHECK(size == 10);
	CHECK_OK(store_head_next(&t, 2, 10, &size, &buf, &len));
	CHECK(size == 20);
	CHECK_RC(store_head_next(&t, 2, 30, &size, &buf, &len), -ENOENT);
	CHECK_OK(store_head_latest(&t, 3, &size, &buf, &len));
	CHECK(size == 5);
	CHECK_RC(store_head_latest(&t, 4, &size, &buf, &len), -ENOENT);
	CHECK_OK(store_head_latest(&t, 1, &size, &buf, &len));
	CHECK(size == 50);
	store_read_end(&t);
	store_close(&st);
}

static int state_ops(struct store_txn *t, void *arg)
{
	char longkey[1000];
	struct store_state_val v = { 0 };
	int rc;

	memset(longkey, 'k', sizeof(longkey));
	for (int i = 0; i < 10; i++) {
		char k[8];
		snprintf(k, sizeof(k), "key%d", i);
		v.seq = (uint64_t)i;
		v.row_sha256[0] = (uint8_t)i;
		if ((rc = store_state_put(t, 7, k, strlen(k), &v)) < 0)
			return rc;
	}
	v.seq = 77;
	if ((rc = store_state_put(t, 7, longkey, sizeof(longkey), &v)) < 0 ||
	    (rc = store_state_put(t, 8, "other", 5, &v)) < 0)
		return rc;
	return store_state_del(t, 7, "key3", 4);
}

static int delete_odd(struct store_txn *t, void *arg)
{
	struct store_iter it;
	const uint8_t *k;
	size_t klen;
	struct store_state_val v;
	int rc;

	if ((rc = store_state_iter_begin(t, 7, &it)) < 0)
		return rc;
	while ((rc = store_state_iter_next(&it, &k, &klen, &v)) == 1)
		if (v.seq % 2 == 1 && (rc = store_iter_del(&it)) < 0)
			break;
	store_iter_end(&it);
	return rc;
}

static void test_state(void)
{
	struct store *st = NULL;
	struct store_txn t;
	struct store_state_val v;
	struct store_iter it;
	const uint8_t *k;
	size_t klen;
	char longkey[1000];
	int n = 0, hashed = 0;

	fresh_dir();
	memset(longkey, 'k', sizeof(longkey));
	CHECK_OK(store_open(tmpdir, STORE_CREATE, &st));
	CHECK_OK(store_write(st, state_ops, NULL));
	CHECK_OK(store_read_begin(st, &t));
	CHECK_OK(store_state_get(&t, 7, "key5", 4, &v));
	CHECK(v.seq == 5 && v.row_sha256[0] == 5);
	CHECK_RC(store_state_get(&t, 7, "key3", 4, &v), -ENOENT);
	CHECK_OK(store_state_get(&t, 7, longkey, sizeof(longkey), &v));
	CHECK(v.seq == 77);
	CHECK_OK(store_state_iter_begin(&t, 7, &it));
	while (store_state_iter_next(&it, &k, &klen, &v) == 1) {
		n++;
		hashed += klen == 33 && k[0] == 0xFF;
	}
	store_iter_end(&it);
	CHECK(n == 10);   /* 9 short keys + 1 long, none of lid 8 */
	CHECK(hashed == 1);
	store_read_end(&t);
	/* Deleting while iterating visits every row once. */
	CHECK_OK(store_write(st, delete_odd, NULL));
	CHECK_OK(store_read_begin(st, &t));
	CHECK_OK(store_state_get(&t, 7, "key4", 4, &v));
	CHECK_RC(store_state_get(&t, 7, "key5", 4, &v), -ENOENT);
	CHECK_RC(store_state_get(&t, 7, "key9", 4, &v), -ENOENT);
	CHECK_OK(store_state_get(&t, 8, "other", 5, &v));
	store_read_end(&t);
	store_close(&st);
}

/* Entries go in at the end of the database (MDB_APPEND) when they can, and
 * in their place when another dataset's entries sort after them. */
static int entries_interleaved(struct store_txn *t, void *arg)
{
	char buf[32];
	int rc, len;

	for (uint32_t lid = 2; lid >= 1; lid--)
		for (uint64_t s = 0; s < 300; s++) {
			len = snprintf(buf, sizeof(buf), "%u:%llu", lid, (unsigned long long)s);
			if ((rc = store_entry_put(t, lid, s, buf, (size_t)len)) < 0)
				return rc;
		}
	len = snprintf(buf, sizeof(buf), "2:300");
	if ((rc = store_entry_put(t, 2, 300, buf, (size_t)len)) < 0)
		return rc;
	/* A log is append-only: a seq already there stays as it was. */
	CHECK_RC(store_entry_put(t, 1, 7, "again", 5), MU_E_EXISTS);
	CHECK_RC(store_entry_put(t, 2, 300, "again", 5), MU_E_EXISTS);
	return 0;
}

static void test_entries_interleaved(void)
{
	struct store *st = NULL;
	struct store_txn t;
	const uint8_t *buf;
	size_t len;
	char want[32];

	fresh_dir();
	CHECK_OK(store_open(tmpdir, STORE_CREATE, &st));
	CHECK_OK(store_write(st, entries_interleaved, NULL));
	CHECK_OK(store_read_begin(st, &t));
	for (uint32_t lid = 1; lid <= 2; lid++)
		for (uint64_t s = 0; s <= 300; s++) {
			if (lid == 1 && s == 300) {
				CHECK_RC(store_entry_get(&t, lid, s, &buf, &len), -ENOENT);
				continue;
			}
			snprintf(want, sizeof(want), "%u:%llu", lid, (unsigned long long)s);
			CHECK_OK(store_entry_get(&t, lid, s, &buf, &len));
			CHECK(len == strlen(want) && memcmp(buf, want, len) == 0);
		}
	store_read_end(&t);
	store_close(&st);
}

static int state_upserts(struct store_txn *t, void *arg)
{
	char longkey[1000];
	struct store_state_val v = { .seq = 1 };
	int added = -1;

	memset(longkey, 'k', sizeof(longkey));
	CHECK_OK(store_state_upsert(t, 7, "a", 1, &v, &added));
	CHECK(added == 1);
	v.seq = 2;
	v.row_sha256[31] = 2;
	CHECK_OK(store_state_upsert(t, 7, "a", 1, &v, &added));
	CHECK(added == 0);
	CHECK_OK(store_state_upsert(t, 8, "a", 1, &v, &added));   /* another dataset's row */
	CHECK(added == 1);
	CHECK_OK(store_state_upsert(t, 7, longkey, sizeof(longkey), &v, &added));
	CHECK(added == 1);
	v.seq = 3;
	CHECK_OK(store_state_upsert(t, 7, longkey, sizeof(longkey), &v, &added));
	CHECK(added == 0);
	return 0;
}

static void test_state_upsert(void)
{
	struct store *st = NULL;
	struct store_txn t;
	struct store_state_val v;
	char longkey[1000];

	fresh_dir();
	memset(longkey, 'k', sizeof(longkey));
	CHECK_OK(store_open(tmpdir, STORE_CREATE, &st));
	CHECK_OK(store_write(st, state_upserts, NULL));
	CHECK_OK(store_read_begin(st, &t));
	CHECK_OK(store_state_get(&t, 7, "a", 1, &v));
	CHECK(v.seq == 2 && v.row_sha256[31] == 2);
	CHECK_OK(store_state_get(&t, 7, longkey, sizeof(longkey), &v));
	CHECK(v.seq == 3);
	store_read_end(&t);
	store_close(&st);
}

/* Entries decoded in bulk through a reused arena read the same as one by
 * one, including one larger than the arena was. */
static void test_entry_decode_arena(void)
{
	static uint8_t row[20000];
	const uint8_t digest[32] = { 9 };
	struct rec_entry e = { .dataset = "011002/aed", .seq = 41, .op = REC_UPSERT, .key = "0042",
			       .key_len = 4, .schema_id = "aed", .schema_version = 3,
			       .schema_digest = digest, .row = row, .time_us = 1700000000000000,
			       .prov = { .source_name = "aed.csv", .tool = "musubi", .source_line = 43 } };
	struct rec_buf small = { 0 }, big = { 0 };
	struct rec_arena a = { 0 };
	struct rec_entry d;

	memset(row, 'r', sizeof(row));
	e.row_len = 100;
	CHECK_OK(rec_entry_encode(&e, &small));
	e.row_len = sizeof(row);
	CHECK_OK(rec_entry_encode(&e, &big));
	for (int round = 0; round < 2; round++) {
		CHECK_OK(rec_entry_decode_in(&a, small.data, small.len, &d));
		CHECK(d.seq == 41 && d.op == REC_UPSERT && d.key_len == 4 && d.row_len == 100);
		CHECK_STREQ(d.dataset, "011002/aed");
		CHECK_STREQ(d.key, "0042");
		CHECK_STREQ(d.schema_id, "aed");
		CHECK(d.schema_version == 3 && d.schema_digest && d.schema_digest[0] == 9);
		CHECK_STREQ(d.prov.source_name, "aed.csv");
		CHECK(d.prov.source_line == 43);
		CHECK(memcmp(d.row, row, 100) == 0);
		CHECK_OK(rec_entry_decode_in(&a, big.data, big.len, &d));
		CHECK(d.row_len == sizeof(row) && memcmp(d.row, row, sizeof(row)) == 0);
		CHECK_STREQ(d.key, "0042");
		/* The second time the arena has grown: nothing spills. */
		CHECK(round == 0 || a.extra == NULL);
	}
	CHECK_RC(rec_entry_decode_in(&a, (const uint8_t *)"\xff\xff\xff", 3, &d), MU_E_DECODE);
	CHECK_OK(rec_entry_decode_in(&a, small.data, small.len, &d));
	CHECK_STREQ(d.key, "0042");
	rec_arena_fini(&a);
	rec_buf_fini(&small);
	rec_buf_fini(&big);
}

/* Writes far beyond the initial map make it grow instead of failing. */
struct grow_ctx {
	int round;
	int calls;
};

static int big_write(struct store_txn *t, void *arg)
{
	struct grow_ctx *g = arg;
	static char blob[1 << 16];
	int rc;

	g->calls++;
	memset(blob, g->round, sizeof(blob));
	for (uint64_t i = 0; i < 128; i++)
		if ((rc = store_entry_put(t, 9, (uint64_t)g->round * 1000 + i, blob, sizeof(blob))) < 0)
			return rc;
	return 0;
}

static void test_map_grows(void)
{
	struct store *st = NULL;
	struct grow_ctx g = { 0, 0 };
	size_t used, map;

	fresh_dir();
	setenv("MUSUBI_MAP_INITIAL", "4194304", 1);
	CHECK_OK(store_open(tmpdir, STORE_CREATE, &st));
	unsetenv("MUSUBI_MAP_INITIAL");
	REQUIRE(st != NULL);
	/* 5 transactions of 8 MiB each: well past the 4 MiB map. */
	for (g.round = 1; g.round <= 5; g.round++)
		CHECK_OK(store_write(st, big_write, &g));
	store_map_usage(st, &used, &map);
	CHECK(map >= (size_t)40 << 20);
	CHECK(used > (size_t)40 << 20);
	store_close(&st);
	/* The grown store reopens at its own size. */
	CHECK_OK(store_open(tmpdir, STORE_RDONLY, &st));
	store_close(&st);
}

static void cleanup(void)
{
	CHECK_OK(tu_rmrf(tmpdir));
}

CHECK_TESTS = {
	{ "open, create and reopen", test_open_create_and_reopen },
	{ "refuses another format version", test_refuses_other_format },
	{ "datasets", test_datasets },
	{ "tree from store", test_tree_from_store },
	{ "head history", test_head_history },
	{ "state", test_state },
	{ "entries of two datasets interleaved", test_entries_interleaved },
	{ "state upsert", test_state_upsert },
	{ "entries decoded in an arena", test_entry_decode_arena },
	{ "map grows", test_map_grows },
	{ "cleanup", cleanup },
	{ NULL, NULL },
};
