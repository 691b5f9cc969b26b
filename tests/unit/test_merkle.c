/*
 * test_merkle.c - merkle_ against a naive reference written straight from
 * RFC 9162 section 2.1 (MTH, PATH, PROOF over an in-memory array of leaves),
 * against the Certificate Transparency reference vectors, and against
 * tampered proofs. The store behind the get callback holds exactly what the
 * frontier's `done` callback reported, as the real store will.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "merkle.h"

#define MAXN 330  /* leaves in the test tree: TOP plus room for size + 1 */
#define TOP 320   /* every tree size 1..TOP is checked */
#define ALLPAIRS 130  /* every consistency pair up to this size */
#define NEG 64    /* every tampering case up to this size, a sample above */
#define LEVELS 9  /* 2^9 > MAXN */

struct tree {
	size_t n;
	merkle_hash leaf[MAXN];            /* leaf hashes, by the reference */
	merkle_hash mth[MAXN + 1][MAXN + 1];  /* memo of MTH(D[lo:hi]) */
	bool have[MAXN + 1][MAXN + 1];
	merkle_hash sub[LEVELS][MAXN];     /* the store: what `done` reported */
	bool stored[LEVELS][MAXN];
};

static struct tree T, CT;

/* ---- the reference, RFC 9162 section 2.1 ---------------------------- */

static void ref_sha256(const void *buf, size_t len, uint8_t *out)
{
	REQUIRE(EVP_Digest(buf, len, out, NULL, EVP_sha256(), NULL) == 1);
}

static void ref_leaf(const void *data, size_t len, uint8_t *out)
{
	uint8_t buf[1 + 64];

	REQUIRE(len <= 64);
	buf[0] = 0x00;
	memcpy(buf + 1, data, len);
	ref_sha256(buf, 1 + len, out);
}

static void ref_node(const uint8_t *left, const uint8_t *right, uint8_t *out)
{
	uint8_t buf[1 + 2 * MERKLE_HASH_LEN];

	buf[0] = 0x01;
	memcpy(buf + 1, left, MERKLE_HASH_LEN);
	memcpy(buf + 1 + MERKLE_HASH_LEN, right, MERKLE_HASH_LEN);
	ref_sha256(buf, sizeof(buf), out);
}

/* "the largest power of two smaller than n" */
static uint64_t ref_split(uint64_t n)
{
	uint64_t k = 1;

	while (k < n - k)
		k <<= 1;
	return k;
}

/* MTH(D[lo:hi]), memoised so that thousands of proofs stay cheap. */
static const uint8_t *ref_mth(struct tree *t, size_t lo, size_t hi)
{
	if (!t->have[lo][hi]) {
		size_t n = hi - lo, k;
		if (n == 0) {
			ref_sha256("", 0, t->mth[lo][hi]);
		} else if (n == 1) {
			memcpy(t->mth[lo][hi], t->leaf[lo], MERKLE_HASH_LEN);
		} else {
			k = ref_split(n);
			ref_node(ref_mth(t, lo, lo + k), ref_mth(t, lo + k, hi), t->mth[lo][hi]);
		}
		t->have[lo][hi] = true;
	}
	return t->mth[lo][hi];
}

/* A proof with its shape: per hash 'L' or 'R' for the side of the current
 * node it joins, 'T' for the subtree a consistency proof starts from. */
struct ref_proof {
	merkle_hash h[MERKLE_MAX_DEPTH + 1];
	char shape[MERKLE_MAX_DEPTH + 2];
	size_t n;
};

static void ref_push(struct tree *t, size_t lo, size_t hi, char side, struct ref_proof *p)
{
	memcpy(p->h[p->n], ref_mth(t, lo, hi), MERKLE_HASH_LEN);
	p->shape[p->n++] = side;
	p->shape[p->n] = '\0';
}

/* PATH(m, D[lo:hi]), m counted from lo. */
static void ref_path(struct tree *t, size_t m, size_t lo, size_t hi, struct ref_proof *p)
{
	size_t k;

	if (hi - lo == 1)
		return;
	k = ref_split(hi - lo);
	if (m < k) {
		ref_path(t, m, lo, lo + k, p);
		ref_push(t, lo + k, hi, 'R', p);
	} else {
		ref_path(t, m - k, lo + k, hi, p);
		ref_push(t, lo, lo + k, 'L', p);
	}
}

/* SUBPROOF(m, D[lo:hi], b), m counted from lo. */
static void ref_subproof(struct tree *t, size_t m, size_t lo, size_t hi, bool b,
			 struct ref_proof *p)
{
	size_t k;

	if (m == hi - lo) {
		if (!b)
			ref_push(t, lo, hi, 'T', p);
		return;
	}
	k = ref_split(hi - lo);
	if (m <= k) {
		ref_subproof(t, m, lo, lo + k, b, p);
		ref_push(t, lo + k, hi, 'R', p);
	} else {
		ref_subproof(t, m - k, lo + k, hi, false, p);
		ref_push(t, lo, lo + k, 'L', p);
	}
}

static void ref_inclusion(struct tree *t, size_t m, size_t n, struct ref_proof *p)
{
	p->n = 0;
	p->shape[0] = '\0';
	ref_path(t, m, 0, n, p);
}

static void ref_consistency(struct tree *t, size_t m, size_t n, struct ref_proof *p)
{
	p->n = 0;
	p->shape[0] = '\0';
	ref_subproof(t, m, 0, n, true, p);
}

/* ---- the store behind merkle_get_fn --------------------------------- */

/* What a get callback may be asked: subtrees inside [lo, hi). */
struct view {
	struct tree *t;
	uint64_t lo, hi;
	long budget;  /* successful reads left before -EIO; negative: no limit */
	unsigned long calls;
};

static struct view view(struct tree *t, uint64_t lo, uint64_t hi)
{
	return (struct view){ .t = t, .lo = lo, .hi = hi, .budget = -1 };
}

static bool in_view(const struct view *v, unsigned level, uint64_t index)
{
	return level < 64 && index < (v->hi >> level) && (index << level) >= v->lo;
}

static int tree_get(void *ctx, unsigned level, uint64_t index, merkle_hash out)
{
	struct view *v = ctx;
	bool ok;

	v->calls++;
	if (v->budget == 0)
		return -EIO;
	if (v->budget > 0)
		v->budget--;
	ok = in_view(v, level, index) && level < LEVELS && v->t->stored[level][index];
	CHECK(ok);
	if (!ok)
		return -ENOENT;
	memcpy(out, v->t->sub[level][index], MERKLE_HASH_LEN);
	return 0;
}

static int store_done(void *ctx, unsigned level, uint64_t index, const merkle_hash h)
{
	struct tree *t = ctx;

	if (level >= LEVELS || index >= MAXN)
		return -ERANGE;
	memcpy(t->sub[level][index], h, MERKLE_HASH_LEN);
	t->stored[level][index] = true;
	return 0;
}

/* Hash the leaves with the reference and store what the frontier reports. */
static void tree_build(struct tree *t, const uint8_t *const *data, const size_t *len, size_t n)
{
	struct merkle_frontier f;

	memset(t, 0, sizeof(*t));
	t->n = n;
	merkle_frontier_init(&f);
	for (size_t i = 0; i < n; i++) {
		ref_leaf(data[i], len[i], t->leaf[i]);
		CHECK_OK(merkle_frontier_append(&f, t->leaf[i], store_done, t));
	}
}

static struct tree *test_tree(void)
{
	static bool built;
	static char text[MAXN][24];
	static const uint8_t *data[MAXN];
	static size_t len[MAXN];

	if (!built) {
		for (size_t i = 0; i < MAXN; i++) {
			len[i] = (size_t)snprintf(text[i], sizeof(text[i]), "entry %zu%.*s", i,
						  (int)(i % 5), "#####");
			data[i] = (const uint8_t *)text[i];
		}
		tree_build(&T, data, len, MAXN);
		built = true;
	}
	return &T;
}

static bool eq(const uint8_t *a, const uint8_t *b)
{
	return memcmp(a, b, MERKLE_HASH_LEN) == 0;
}

static void flip(uint8_t *h, size_t salt)
{
	h[salt % MERKLE_HASH_LEN] ^= (uint8_t)(1u << (salt % 8));
}

static unsigned ceil_log2(uint64_t n)
{
	unsigned d = 0;

	while (d < 64 && (UINT64_C(1) << d) < n)
		d++;
	return d;
}

static uint64_t lcg_state = 9162;

static uint64_t lcg(uint64_t bound)
{
	lcg_state = lcg_state * 6364136223846793005u + 1442695040888963407u;
	return (lcg_state >> 33) % bound;
}

/* ---- hashing and the frontier ---------------------------------------- */

static void test_hashes(void)
{
	static const char empty_hex[] =
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
	merkle_hash got, want, a, b;
	char hex[2 * MERKLE_HASH_LEN + 1];

	merkle_empty_root(got);
	for (size_t i = 0; i < MERKLE_HASH_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", got[i]);
	CHECK_STREQ(hex, empty_hex);

	merkle_leaf_hash("abc", 3, got);
	ref_leaf("abc", 3, want);
	CHECK(eq(got, want));
	merkle_leaf_hash(NULL, 0, got);
	ref_leaf("", 0, want);
	CHECK(eq(got, want));

	ref_leaf("a", 1, a);
	ref_leaf("b", 1, b);
	merkle_node_hash(a, b, got);
	ref_node(a, b, want);
	CHECK(eq(got, want));
	ref_node(b, a, want);
	CHECK(!eq(got, want));
	/* out may be one of the inputs, as the frontier relies on */
	merkle_node_hash(a, b, a);
	CHECK(eq(a, got));
}

struct done_log {
	size_t count;
	unsigned level[MERKLE_MAX_DEPTH + 1];
	uint64_t index[MERKLE_MAX_DEPTH + 1];
	merkle_hash h[MERKLE_MAX_DEPTH + 1];
	size_t fail_at;  /* return -EIO on this call; SIZE_MAX: never */
};

static int log_done(void *ctx, unsigned level, uint64_t index, const merkle_hash h)
{
	struct done_log *log = ctx;

	if (log->count > MERKLE_MAX_DEPTH)
		return -ERANGE;
	log->level[log->count] = level;
	log->index[log->count] = index;
	memcpy(log->h[log->count], h, MERKLE_HASH_LEN);
	return log->count++ == log->fail_at ? -EIO : 0;
}

static bool same_frontier(const struct merkle_frontier *a, const struct merkle_frontier *b)
{
	if (a->size != b->size)
		return false;
	for (unsigned l = 0; l < MERKLE_MAX_DEPTH; l++)
		if (((a->size >> l) & 1) && !eq(a->peaks[l], b->peaks[l]))
			return false;
	return true;
}

static void test_frontier(void)
{
	struct tree *t = test_tree();
	struct merkle_frontier f, g;
	merkle_hash root;

	merkle_frontier_init(&f);
	merkle_frontier_root(&f, root);
	CHECK(eq(root, ref_mth(t, 0, 0)));
	for (size_t n = 1; n <= TOP; n++) {
		struct done_log log = { .fail_at = SIZE_MAX };
		unsigned closes = 0;

		CHECK_OK(merkle_frontier_append(&f, t->leaf[n - 1], log_done, &log));
		CHECK(f.size == n);
		merkle_frontier_root(&f, root);
		CHECK(eq(root, ref_mth(t, 0, n)));

		/* Exactly the perfect subtrees that end at leaf n: every level
		 * 2^L divides n, lowest first. */
		while ((n >> closes) % 2 == 0)
			closes++;
		CHECK(log.count == closes + 1);
		for (size_t j = 0; j < log.count && j <= closes; j++) {
			uint64_t idx = (n >> j) - 1;
			CHECK(log.level[j] == j);
			CHECK(log.index[j] == idx);
			CHECK(eq(log.h[j], ref_mth(t, idx << j, (idx + 1) << j)));
		}

		struct view v = view(t, 0, n);
		CHECK_OK(merkle_frontier_load(&g, n, tree_get, &v));
		CHECK(same_frontier(&f, &g));
		CHECK(v.calls == (unsigned long)__builtin_popcountll(n));
	}
}

/* A loaded frontier keeps growing into the same tree. */
static void test_frontier_resume(void)
{
	static const size_t starts[] = { 0, 1, 2, 5, 64, 100, 255, 256, 319 };
	struct tree *t = test_tree();
	struct merkle_frontier f;
	merkle_hash root;

	for (size_t s = 0; s < sizeof(starts) / sizeof(starts[0]); s++) {
		struct view v = view(t, 0, starts[s]);
		CHECK_OK(merkle_frontier_load(&f, starts[s], tree_get, &v));
		for (size_t i = starts[s]; i < TOP; i++)
			CHECK_OK(merkle_frontier_append(&f, t->leaf[i], NULL, NULL));
		merkle_frontier_root(&f, root);
		CHECK(eq(root, ref_mth(t, 0, TOP)));
	}
}

/* A failing `done` is passed on, stops the calls, and leaves the frontier. */
static void test_done_error(void)
{
	struct tree *t = test_tree();
	struct merkle_frontier f;
	struct done_log log = { .fail_at = 2 };
	merkle_hash root;
	struct view v = view(t, 0, 7);

	CHECK_OK(merkle_frontier_load(&f, 7, tree_get, &v));
	/* leaf 7 closes levels 0..3; fail on level 2 */
	CHECK_RC(merkle_frontier_append(&f, t->leaf[7], log_done, &log), -EIO);
	CHECK(log.count == 3);
	CHECK(f.size == 7);
	CHECK_OK(merkle_frontier_append(&f, t->leaf[7], NULL, NULL));
	merkle_frontier_root(&f, root);
	CHECK(eq(root, ref_mth(t, 0, 8)));
}

/* ---- range hashes ---------------------------------------------------- */

static void check_range(struct tree *t, uint64_t a, uint64_t b)
{
	merkle_hash got;
	struct view v = view(t, a, b);

	CHECK_OK(merkle_range_hash(a, b, tree_get, &v, got));
	CHECK(eq(got, ref_mth(t, a, b)));
}

static void test_range_hash(void)
{
	struct tree *t = test_tree();
	merkle_hash h;
	struct view v = view(t, 0, TOP);

	for (uint64_t b = 1; b <= 70; b++)
		for (uint64_t a = 0; a < b; a++)
			check_range(t, a, b);
	for (uint64_t n = 71; n <= TOP; n++) {
		uint64_t a = lcg(n);
		check_range(t, 0, n);
		check_range(t, n - 1, n);
		check_range(t, n / 2, n);
		check_range(t, a, a + 1 + lcg(n - a));
	}
	CHECK_RC(merkle_range_hash(5, 5, tree_get, &v, h), MU_E_USAGE);
	CHECK_RC(merkle_range_hash(6, 5, tree_get, &v, h), MU_E_USAGE);
}

/* ---- inclusion proofs ------------------------------------------------ */

/*
 * Whether proof p for leaf (i, n) must verify as leaf (i2, n2). A proof is
 * opaque hashes: it also verifies for any other (index, size) whose path
 * has the same shape, e.g. leaf 0 of 5 and of 6 leaves. The tree head
 * binds the size; the proof alone cannot.
 */
static bool inclusion_binds(struct tree *t, const struct ref_proof *p, uint64_t i2, uint64_t n2)
{
	struct ref_proof q;

	if (i2 >= n2)
		return false;
	ref_inclusion(t, i2, n2, &q);
	return strcmp(p->shape, q.shape) == 0;
}

static void tamper_inclusion(struct tree *t, uint64_t i, uint64_t n, const struct ref_proof *p)
{
	const uint8_t *root = ref_mth(t, 0, n), *leaf = t->leaf[i];
	merkle_hash bad, proof[MERKLE_MAX_DEPTH + 1];
	merkle_hash *exact;
	size_t cnt = p->n;
	const int64_t d[] = { -1, 1 };

	memcpy(bad, leaf, MERKLE_HASH_LEN);
	flip(bad, i);
	CHECK_RC(merkle_verify_inclusion(bad, i, n, p->h, cnt, root), MU_E_PROOF);
	memcpy(bad, root, MERKLE_HASH_LEN);
	flip(bad, n);
	CHECK_RC(merkle_verify_inclusion(leaf, i, n, p->h, cnt, bad), MU_E_PROOF);

	for (size_t k = 0; k < 2; k++) {
		uint64_t i2 = i + (uint64_t)d[k], n2 = n + (uint64_t)d[k];
		CHECK_RC(merkle_verify_inclusion(leaf, i2, n, p->h, cnt, root),
			 inclusion_binds(t, p, i2, n) ? 0 : MU_E_PROOF);
		CHECK_RC(merkle_verify_inclusion(leaf, i, n2, p->h, cnt, root),
			 inclusion_binds(t, p, i, n2) ? 0 : MU_E_PROOF);
	}

	for (size_t j = 0; j < cnt; j++) {
		memcpy(proof, p->h, cnt * MERKLE_HASH_LEN);
		flip(proof[j], j + i);
		CHECK_RC(merkle_verify_inclusion(leaf, i, n, proof, cnt, root), MU_E_PROOF);
	}
	for (size_t j = 0; j + 1 < cnt; j++) {
		memcpy(proof, p->h, cnt * MERKLE_HASH_LEN);
		memcpy(proof[j], p->h[j + 1], MERKLE_HASH_LEN);
		memcpy(proof[j + 1], p->h[j], MERKLE_HASH_LEN);
		CHECK_RC(merkle_verify_inclusion(leaf, i, n, proof, cnt, root), MU_E_PROOF);
	}
	for (size_t len = 0; len < cnt; len++)
		CHECK_RC(merkle_verify_inclusion(leaf, i, n, p->h, len, root), MU_E_PROOF);
	memcpy(proof, p->h, cnt * MERKLE_HASH_LEN);
	memset(proof[cnt], 0, MERKLE_HASH_LEN);
	CHECK_RC(merkle_verify_inclusion(leaf, i, n, proof, cnt + 1, root), MU_E_PROOF);
	memcpy(proof[cnt], root, MERKLE_HASH_LEN);
	CHECK_RC(merkle_verify_inclusion(leaf, i, n, proof, cnt + 1, root), MU_E_PROOF);

	/* An overstated count must not make the verifier read past the proof:
	 * ASan watches this exact-size copy. */
	exact = malloc(cnt ? cnt * MERKLE_HASH_LEN : 1);
	REQUIRE(exact != NULL);
	memcpy(exact, p->h, cnt * MERKLE_HASH_LEN);
	CHECK_OK(merkle_verify_inclusion(leaf, i, n, exact, cnt, root));
	CHECK_RC(merkle_verify_inclusion(leaf, i, n, exact, cnt + 1, root), MU_E_PROOF);
	CHECK_RC(merkle_verify_inclusion(leaf, i, n, exact, cnt + 40, root), MU_E_PROOF);
	CHECK_RC(merkle_verify_inclusion(leaf, i, n, exact, SIZE_MAX, root), MU_E_PROOF);
	free(exact);
}

static void test_inclusion(void)
{
	struct tree *t = test_tree();
	merkle_hash proof[MERKLE_MAX_DEPTH];
	struct ref_proof want;
	size_t cnt;

	for (uint64_t n = 1; n <= TOP; n++) {
		const uint8_t *root = ref_mth(t, 0, n);
		for (uint64_t i = 0; i < n; i++) {
			struct view v = view(t, 0, n);
			CHECK_OK(merkle_inclusion_proof(i, n, tree_get, &v, proof, &cnt));
			ref_inclusion(t, i, n, &want);
			CHECK(cnt == want.n);
			CHECK(cnt == want.n && memcmp(proof, want.h, cnt * MERKLE_HASH_LEN) == 0);
			CHECK(v.calls <= 2 * ceil_log2(n));
			CHECK_OK(merkle_verify_inclusion(t->leaf[i], i, n, proof, cnt, root));
			if (n <= NEG || i == 0 || i == n / 2 || i == n - 1)
				tamper_inclusion(t, i, n, &want);
		}
	}
}

static void test_inclusion_usage(void)
{
	struct tree *t = test_tree();
	merkle_hash proof[MERKLE_MAX_DEPTH];
	size_t cnt = 99;
	struct view v = view(t, 0, 10);

	CHECK_RC(merkle_inclusion_proof(10, 10, tree_get, &v, proof, &cnt), MU_E_USAGE);
	CHECK_RC(merkle_inclusion_proof(11, 10, tree_get, &v, proof, &cnt), MU_E_USAGE);
	CHECK_RC(merkle_inclusion_proof(0, 0, tree_get, &v, proof, &cnt), MU_E_USAGE);
	CHECK(v.calls == 0);
	/* a one-leaf tree: the leaf is the root, the proof is empty */
	CHECK_OK(merkle_inclusion_proof(0, 1, tree_get, &v, proof, &cnt));
	CHECK(cnt == 0);
	CHECK_OK(merkle_verify_inclusion(t->leaf[0], 0, 1, NULL, 0, t->leaf[0]));
	CHECK_RC(merkle_verify_inclusion(t->leaf[0], 0, 0, NULL, 0, t->leaf[0]), MU_E_PROOF);
	CHECK_RC(merkle_verify_inclusion(t->leaf[0], 1, 1, NULL, 0, t->leaf[0]), MU_E_PROOF);
}

/* ---- consistency proofs ---------------------------------------------- */

/* Whether proof p for (m, n) with roots old, new must verify as (m2, n2);
 * as for inclusion, an equal shape cannot be told apart. */
static bool consistency_binds(struct tree *t, const struct ref_proof *p, uint64_t m2, uint64_t n2,
			      const uint8_t *old, const uint8_t *new)
{
	struct ref_proof q;

	if (m2 > n2)
		return false;
	if (m2 == n2)
		return p->n == 0 && eq(old, new);
	if (m2 == 0)
		return p->n == 0 && eq(old, ref_mth(t, 0, 0));
	ref_consistency(t, m2, n2, &q);
	return strcmp(p->shape, q.shape) == 0;
}

static void tamper_consistency(struct tree *t, uint64_t m, uint64_t n, const struct ref_proof *p)
{
	const uint8_t *old = ref_mth(t, 0, m), *new = ref_mth(t, 0, n);
	merkle_hash bad, proof[MERKLE_MAX_DEPTH + 1];
	merkle_hash *exact;
	size_t cnt = p->n;
	const int64_t d[] = { -1, 1 };

	memcpy(bad, old, MERKLE_HASH_LEN);
	flip(bad, m);
	CHECK_RC(merkle_verify_consistency(m, n, bad, new, p->h, cnt), MU_E_PROOF);
	memcpy(bad, new, MERKLE_HASH_LEN);
	flip(bad, n);
	CHECK_RC(merkle_verify_consistency(m, n, old, bad, p->h, cnt), MU_E_PROOF);
	if (m < n)
		CHECK_RC(merkle_verify_consistency(n, m, new, old, p->h, cnt), MU_E_PROOF);

	for (size_t k = 0; k < 2; k++) {
		uint64_t m2 = m + (uint64_t)d[k], n2 = n + (uint64_t)d[k];
		CHECK_RC(merkle_verify_consistency(m2, n, old, new, p->h, cnt),
			 consistency_binds(t, p, m2, n, old, new) ? 0 : MU_E_PROOF);
		CHECK_RC(merkle_verify_consistency(m, n2, old, new, p->h, cnt),
			 consistency_binds(t, p, m, n2, old, new) ? 0 : MU_E_PROOF);
	}

	for (size_t j = 0; j < cnt; j++) {
		memcpy(proof, p->h, cnt * MERKLE_HASH_LEN);
		flip(proof[j], j + m);
		CHECK_RC(merkle_verify_consistency(m, n, old, new, proof, cnt), MU_E_PROOF);
	}
	for (size_t j = 0; j + 1 < cnt; j++) {
		memcpy(proof, p->h, cnt * MERKLE_HASH_LEN);
		memcpy(proof[j], p->h[j + 1], MERKLE_HASH_LEN);
		memcpy(proof[j + 1], p->h[j], MERKLE_HASH_LEN);
		CHECK_RC(merkle_verify_consistency(m, n, old, new, proof, cnt), MU_E_PROOF);
	}
	for (size_t len = 0; len < cnt; len++)
		CHECK_RC(merkle_verify_consistency(m, n, old, new, p->h, len), MU_E_PROOF);
	memcpy(proof, p->h, cnt * MERKLE_HASH_LEN);
	memset(proof[cnt], 0, MERKLE_HASH_LEN);
	CHECK_RC(merkle_verify_consistency(m, n, old, new, proof, cnt + 1), MU_E_PROOF);
	memcpy(proof[cnt], old, MERKLE_HASH_LEN);
	CHECK_RC(merkle_verify_consistency(m, n, old, new, proof, cnt + 1), MU_E_PROOF);

	exact = malloc(cnt ? cnt * MERKLE_HASH_LEN : 1);
	REQUIRE(exact != NULL);
	memcpy(exact, p->h, cnt * MERKLE_HASH_LEN);
	CHECK_OK(merkle_verify_consistency(m, n, old, new, exact, cnt));
	CHECK_RC(merkle_verify_consistency(m, n, old, new, exact, cnt + 1), MU_E_PROOF);
	CHECK_RC(merkle_verify_consistency(m, n, old, new, exact, SIZE_MAX), MU_E_PROOF);
	free(exact);
}

static void check_consistency(struct tree *t, uint64_t m, uint64_t n, bool tamper)
{
	merkle_hash proof[MERKLE_MAX_DEPTH];
	struct ref_proof want;
	size_t cnt;
	struct view v = view(t, 0, n);

	CHECK_OK(merkle_consistency_proof(m, n, tree_get, &v, proof, &cnt));
	ref_consistency(t, m, n, &want);
	CHECK(cnt == want.n);
	CHECK(cnt == want.n && memcmp(proof, want.h, cnt * MERKLE_HASH_LEN) == 0);
	CHECK(v.calls <= 2 * ceil_log2(n) + 1);
	CHECK_OK(merkle_verify_consistency(m, n, ref_mth(t, 0, m), ref_mth(t, 0, n), proof, cnt));
	if (tamper)
		tamper_consistency(t, m, n, &want);
}

static void test_consistency(void)
{
	struct tree *t = test_tree();

	for (uint64_t n = 1; n <= ALLPAIRS; n++)
		for (uint64_t m = 1; m <= n; m++)
			check_consistency(t, m, n, n <= NEG || m % 7 == 0 || m == n);
	for (uint64_t n = ALLPAIRS + 1; n <= TOP; n++) {
		const uint64_t ms[] = { 1, n / 3, n / 2, n - 1, n, 128, 1 + lcg(n) };
		for (size_t j = 0; j < sizeof(ms) / sizeof(ms[0]); j++)
			check_consistency(t, ms[j], n, true);
	}
}

static void test_consistency_edges(void)
{
	struct tree *t = test_tree();
	merkle_hash proof[MERKLE_MAX_DEPTH], empty;
	size_t cnt = 99;
	struct view v = view(t, 0, 20);
	const uint8_t *r5 = ref_mth(t, 0, 5), *r20 = ref_mth(t, 0, 20);

	CHECK_RC(merkle_consistency_proof(0, 20, tree_get, &v, proof, &cnt), MU_E_USAGE);
	CHECK_RC(merkle_consistency_proof(21, 20, tree_get, &v, proof, &cnt), MU_E_USAGE);
	CHECK(v.calls == 0);
	CHECK_OK(merkle_consistency_proof(20, 20, tree_get, &v, proof, &cnt));
	CHECK(cnt == 0);

	/* the same tree: an empty proof and equal roots, nothing else */
	CHECK_OK(merkle_verify_consistency(20, 20, r20, r20, NULL, 0));
	CHECK_RC(merkle_verify_consistency(20, 20, r5, r20, NULL, 0), MU_E_PROOF);
	CHECK_RC(merkle_verify_consistency(20, 20, r20, r20, &t->mth[0][20], 1), MU_E_PROOF);

	/* every tree extends the empty one, with an empty proof only */
	merkle_empty_root(empty);
	CHECK_OK(merkle_verify_consistency(0, 20, empty, r20, NULL, 0));
	CHECK_OK(merkle_verify_consistency(0, 0, empty, empty, NULL, 0));
	CHECK_RC(merkle_verify_consistency(0, 20, r5, r20, NULL, 0), MU_E_PROOF);
	CHECK_OK(merkle_consistency_proof(5, 20, tree_get, &v, proof, &cnt));
	CHECK_RC(merkle_verify_consistency(0, 20, empty, r20, proof, cnt), MU_E_PROOF);
	CHECK_RC(merkle_verify_consistency(0, 20, empty, r20, proof, 1), MU_E_PROOF);

	/* old_size > new_size, whatever the proof */
	CHECK_RC(merkle_verify_consistency(21, 20, r5, r20, proof, cnt), MU_E_PROOF);
	CHECK_RC(merkle_verify_consistency(21, 20, r20, r20, NULL, 0), MU_E_PROOF);
}

/* ---- errors from the store ------------------------------------------- */

/* Four ways to read the store over a tree of 300 leaves. */
static int read_store(int op, struct view *v)
{
	merkle_hash h, proof[MERKLE_MAX_DEPTH];
	struct merkle_frontier f;
	size_t cnt;

	switch (op) {
	case 0:
		return merkle_range_hash(3, 300, tree_get, v, h);
	case 1:
		return merkle_inclusion_proof(77, 300, tree_get, v, proof, &cnt);
	case 2:
		return merkle_consistency_proof(77, 300, tree_get, v, proof, &cnt);
	default:
		return merkle_frontier_load(&f, 299, tree_get, v);
	}
}

static void test_get_error(void)
{
	struct tree *t = test_tree();

	for (int op = 0; op < 4; op++) {
		struct view probe = view(t, 0, 300);

		CHECK_OK(read_store(op, &probe));
		CHECK(probe.calls >= 4);
		/* fail each read in turn: the error comes back, and stops the work */
		for (unsigned long b = 0; b < probe.calls; b++) {
			struct view v = view(t, 0, 300);
			v.budget = (long)b;
			CHECK_RC(read_store(op, &v), -EIO);
			CHECK(v.calls == b + 1);
		}
	}
}

/* ---- Certificate Transparency reference vectors ---------------------- */

static void unhex(const char *s, uint8_t *out)
{
	for (size_t i = 0; i < MERKLE_HASH_LEN; i++)
		sscanf(s + 2 * i, "%2hhx", &out[i]);
}

/* RFC 6962 test data as used by certificate-transparency and
 * transparency-dev/merkle: eight leaves and the roots of sizes 1..8. */
static void test_ct_vectors(void)
{
	static const uint8_t l3[] = { 0x20, 0x21 }, l4[] = { 0x30, 0x31 },
			     l5[] = { 0x40, 0x41, 0x42, 0x43 },
			     l6[] = { 0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57 },
			     l7[] = { 0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67,
				      0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f };
	static const uint8_t *const data[] = { (const uint8_t *)"", (const uint8_t *)"\x00",
					       (const uint8_t *)"\x10", l3, l4, l5, l6, l7 };
	static const size_t len[] = { 0, 1, 1, 2, 2, 4, 8, 16 };
	static const char *const roots[] = {
		"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
		"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
		"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
		"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
		"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
		"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
		"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
		"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
	};
	static const struct {
		int inclusion;  /* else consistency */
		uint64_t a, size;
		size_t n;
		const char *hex[3];
	} proofs[] = {
		{ 1, 5, 8, 3, { "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
				"ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
				"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7" } },
		{ 0, 1, 8, 3, { "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
				"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
				"6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4" } },
		{ 0, 6, 8, 3, { "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
				"ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
				"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7" } },
		{ 0, 2, 5, 2, { "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
				"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b" } },
	};
	struct merkle_frontier f;
	merkle_hash want, leaf, root, proof[MERKLE_MAX_DEPTH];
	size_t cnt;

	tree_build(&CT, data, len, 8);
	merkle_frontier_init(&f);
	for (size_t i = 0; i < 8; i++) {
		merkle_leaf_hash(data[i], len[i], leaf);
		CHECK_OK(merkle_frontier_append(&f, leaf, NULL, NULL));
		merkle_frontier_root(&f, root);
		unhex(roots[i], want);
		CHECK(eq(root, want));
	}
	for (size_t p = 0; p < sizeof(proofs) / sizeof(proofs[0]); p++) {
		struct view v = view(&CT, 0, proofs[p].size);
		if (proofs[p].inclusion)
			CHECK_OK(merkle_inclusion_proof(proofs[p].a, proofs[p].size, tree_get, &v,
							proof, &cnt));
		else
			CHECK_OK(merkle_consistency_proof(proofs[p].a, proofs[p].size, tree_get, &v,
							  proof, &cnt));
		CHECK(cnt == proofs[p].n);
		for (size_t j = 0; j < cnt && j < proofs[p].n; j++) {
			unhex(proofs[p].hex[j], want);
			CHECK(eq(proof[j], want));
		}
	}
}

/* ---- trees near 2^64 leaves ------------------------------------------ */

/* A tree whose leaves are all equal needs no storage: the subtree at level
 * L is the same everywhere. */
static merkle_hash uni[64];

static int uniform_get(void *ctx, unsigned level, uint64_t index, merkle_hash out)
{
	struct view *v = ctx;

	v->calls++;
	CHECK(in_view(v, level, index));
	if (!in_view(v, level, index))
		return -ENOENT;
	memcpy(out, uni[level], MERKLE_HASH_LEN);
	return 0;
}

/* MTH of n equal leaves, by the RFC recursion. */
static void ref_uniform_mth(uint64_t n, uint8_t *out)
{
	uint64_t k;
	merkle_hash right;

	if ((n & (n - 1)) == 0) {
		memcpy(out, uni[ceil_log2(n)], MERKLE_HASH_LEN);
		return;
	}
	k = ref_split(n);
	ref_uniform_mth(n - k, right);
	ref_node(uni[ceil_log2(k)], right, out);
}

static void test_huge(void)
{
	const uint64_t max = UINT64_MAX, half = UINT64_C(1) << 63;
	const uint64_t idx[] = { 0, 1, half - 1, half, max - 2, max - 1 };
	const uint64_t pairs[][2] = { { half, max }, { max - 1, max }, { 1, max },
				      { (half >> 1) + 1, half }, { 3, half } };
	struct merkle_frontier f;
	merkle_hash root, want, proof[MERKLE_MAX_DEPTH], old;
	size_t cnt;
	struct view v = view(NULL, 0, max);

	ref_leaf("x", 1, uni[0]);
	for (unsigned l = 1; l < 64; l++)
		ref_node(uni[l - 1], uni[l - 1], uni[l]);

	ref_uniform_mth(max, want);
	CHECK_OK(merkle_frontier_load(&f, max, uniform_get, &v));
	merkle_frontier_root(&f, root);
	CHECK(eq(root, want));
	CHECK_OK(merkle_range_hash(0, max, uniform_get, &v, root));
	CHECK(eq(root, want));
	CHECK_RC(merkle_frontier_append(&f, uni[0], NULL, NULL), MU_E_TOOBIG);
	CHECK(f.size == max);

	for (size_t j = 0; j < sizeof(idx) / sizeof(idx[0]); j++) {
		CHECK_OK(merkle_inclusion_proof(idx[j], max, uniform_get, &v, proof, &cnt));
		CHECK(cnt <= MERKLE_MAX_DEPTH);
		CHECK_OK(merkle_verify_inclusion(uni[0], idx[j], max, proof, cnt, want));
		CHECK_RC(merkle_verify_inclusion(uni[0], idx[j], max, proof, cnt, uni[63]),
			 MU_E_PROOF);
	}
	CHECK_OK(merkle_inclusion_proof(0, max, uniform_get, &v, proof, &cnt));
	CHECK(cnt == 64);
	CHECK_RC(merkle_verify_inclusion(uni[0], max, max, proof, cnt, want), MU_E_PROOF);

	for (size_t j = 0; j < sizeof(pairs) / sizeof(pairs[0]); j++) {
		ref_uniform_mth(pairs[j][0], old);
		ref_uniform_mth(pairs[j][1], root);
		CHECK_OK(merkle_consistency_proof(pairs[j][0], pairs[j][1], uniform_get, &v, proof,
						  &cnt));
		CHECK_OK(merkle_verify_consistency(pairs[j][0], pairs[j][1], old, root, proof, cnt));
	}
	/* ceil(log2 n) + 1 hashes: one more than a proof may hold */
	CHECK_RC(merkle_consistency_proof(half + 1, max, uniform_get, &v, proof, &cnt), MU_E_TOOBIG);
	CHECK_RC(merkle_consistency_proof(3, half + 5, uniform_get, &v, proof, &cnt), MU_E_TOOBIG);

	/* carrying through all 63 levels */
	CHECK_OK(merkle_frontier_load(&f, half - 1, uniform_get, &v));
	CHECK_OK(merkle_frontier_append(&f, uni[0], NULL, NULL));
	merkle_frontier_root(&f, root);
	CHECK(eq(root, uni[63]));
	CHECK_OK(merkle_frontier_append(&f, uni[0], NULL, NULL));
	merkle_frontier_root(&f, root);
	ref_uniform_mth(half + 1, want);
	CHECK(eq(root, want));
}

CHECK_TESTS = {
	{ "hashes", test_hashes },
	{ "frontier", test_frontier },
	{ "frontier resume", test_frontier_resume },
	{ "done error", test_done_error },
	{ "range hash", test_range_hash },
	{ "inclusion", test_inclusion },
	{ "inclusion usage", test_inclusion_usage },
	{ "consistency", test_consistency },
	{ "consistency edges", test_consistency_edges },
	{ "get error", test_get_error },
	{ "ct vectors", test_ct_vectors },
	{ "huge trees", test_huge },
	{ NULL, NULL },
};
