/*
 * merkle.c - RFC 9162 Merkle tree hashing, the append frontier, and
 * inclusion / consistency proofs built from stored perfect subtrees.
 *
 * Proof generation walks the RFC's recursive definitions top-down, keeping
 * only the leaf ranges whose hashes the proof needs, then asks for each range
 * in the RFC's output order (the node nearest the leaf first). The ranges a
 * proof needs are aligned and at most one of them is not a perfect subtree,
 * so a proof costs O(log size) callback reads.
 */

/* SHA256_Init/Update/Final are deprecated in OpenSSL 3 in favour of EVP,
 * but EVP in OpenSSL 3.0 allocates a provider context on every digest
 * init, and these functions have no error return: a failed allocation
 * would have to end the process. The low-level calls hash in a context on
 * the stack (the same code underneath) and cannot fail. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "merkle.h"
#include "mu_err.h"

/* out = SHA-256(prefix || a || b). `out` may alias a or b: it is written
 * only after both are read. */
static void hash_prefixed(uint8_t prefix, const void *a, size_t alen, const void *b, size_t blen,
			  uint8_t *out)
{
	SHA256_CTX ctx;

	SHA256_Init(&ctx);
	SHA256_Update(&ctx, &prefix, 1);
	SHA256_Update(&ctx, a, alen);
	SHA256_Update(&ctx, b, blen);
	SHA256_Final(out, &ctx);
}

void merkle_sha256(const void *data, size_t len, uint8_t out[MERKLE_HASH_LEN])
{
	SHA256_CTX ctx;

	SHA256_Init(&ctx);
	SHA256_Update(&ctx, data, len);
	SHA256_Final(out, &ctx);
}

void merkle_leaf_hash(const void *data, size_t len, merkle_hash out)
{
	hash_prefixed(0x00, data, len, NULL, 0, out);
}

void merkle_node_hash(const merkle_hash left, const merkle_hash right, merkle_hash out)
{
	hash_prefixed(0x01, left, MERKLE_HASH_LEN, right, MERKLE_HASH_LEN, out);
}

void merkle_empty_root(merkle_hash out)
{
	merkle_sha256("", 0, out);
}

/* The RFC's k: the largest power of two smaller than n, for n >= 2. */
static uint64_t split_point(uint64_t n)
{
	return UINT64_C(1) << (63 - __builtin_clzll(n - 1));
}

void merkle_frontier_init(struct merkle_frontier *f)
{
	f->size = 0;
}

/* The frontier is only written once every `done` call has succeeded, so a
 * failed append leaves it as it was and the caller may retry. */
int merkle_frontier_append(struct merkle_frontier *f, const merkle_hash leaf,
			   merkle_done_fn done, void *ctx)
{
	merkle_hash h;
	uint64_t index = f->size;
	unsigned level = 0;
	int rc;

	/* Appending to a full tree would need a 65th peak. */
	if (f->size == UINT64_MAX)
		return MU_E_TOOBIG;
	memcpy(h, leaf, MERKLE_HASH_LEN);
	for (;;) {
		if (done != NULL && (rc = done(ctx, level, index, h)) < 0)
			return rc;
		/* An odd index is a right child: it closes its parent. */
		if ((index & 1) == 0)
			break;
		merkle_node_hash(f->peaks[level], h, h);
		index >>= 1;
		level++;
	}
	memcpy(f->peaks[level], h, MERKLE_HASH_LEN);
	f->size++;
	return 0;
}

/* MTH splits at the largest power of two, so the root folds the peaks
 * from the smallest (rightmost) to the largest (leftmost). */
void merkle_frontier_root(const struct merkle_frontier *f, merkle_hash out)
{
	merkle_hash h;
	unsigned level;

	if (f->size == 0) {
		merkle_empty_root(out);
		return;
	}
	level = (unsigned)__builtin_ctzll(f->size);
	memcpy(h, f->peaks[level], MERKLE_HASH_LEN);
	for (level++; level < MERKLE_MAX_DEPTH; level++)
		if ((f->size >> level) & 1)
			merkle_node_hash(f->peaks[level], h, h);
	memcpy(out, h, MERKLE_HASH_LEN);
}

int merkle_frontier_load(struct merkle_frontier *f, uint64_t size, merkle_get_fn get, void *ctx)
{
	struct merkle_frontier t = { .size = size };
	int rc;

	/* The peak at level L ends where the tree ends: index (size >> L) - 1. */
	for (unsigned level = 0; level < MERKLE_MAX_DEPTH; level++)
		if (((size >> level) & 1) &&
		    (rc = get(ctx, level, (size >> level) - 1, t.peaks[level])) < 0)
			return rc;
	*f = t;
	return 0;
}

/*
 * MTH(D[begin:begin+n]) by the RFC recursion, cut short wherever the range
 * is an aligned perfect subtree. Ranges from proofs start on a multiple of
 * a power of two at least n, so every piece is aligned; any other range
 * still hashes right, only with more reads.
 */
static int range_hash(uint64_t begin, uint64_t n, merkle_get_fn get, void *ctx, uint8_t *out)
{
	merkle_hash left;
	uint64_t k;
	int rc;

	if ((n & (n - 1)) == 0 && (begin & (n - 1)) == 0)
		return get(ctx, (unsigned)__builtin_ctzll(n), begin >> __builtin_ctzll(n), out);
	k = split_point(n);
	if ((rc = range_hash(begin, k, get, ctx, left)) < 0 ||
	    (rc = range_hash(begin + k, n - k, get, ctx, out)) < 0)
		return rc;
	merkle_node_hash(left, out, out);
	return 0;
}

int merkle_range_hash(uint64_t begin, uint64_t end, merkle_get_fn get, void *ctx, merkle_hash out)
{
	if (begin >= end)
		return MU_E_USAGE;
	return range_hash(begin, end - begin, get, ctx, out);
}

struct range {
	uint64_t begin, end;
};

/* Hash the ranges collected top-down into proof[], innermost first. */
static int emit_proof(const struct range *r, size_t count, merkle_get_fn get, void *ctx,
		      merkle_hash proof[MERKLE_MAX_DEPTH], size_t *n)
{
	int rc;

	for (size_t i = 0; i < count; i++) {
		const struct range *x = &r[count - 1 - i];
		if ((rc = range_hash(x->begin, x->end - x->begin, get, ctx, proof[i])) < 0)
			return rc;
	}
	*n = count;
	return 0;
}

/* PATH(m, D[n]) of RFC 9162 2.1.3.1. A tree under 2^64 leaves is at most
 * 64 levels deep, so the path fits. */
int merkle_inclusion_proof(uint64_t index, uint64_t size, merkle_get_fn get, void *ctx,
			   merkle_hash proof[MERKLE_MAX_DEPTH], size_t *n)
{
	struct range r[MERKLE_MAX_DEPTH];
	uint64_t lo = 0, hi = size;
	size_t count = 0;

	*n = 0;
	if (index >= size)
		return MU_E_USAGE;
	while (hi - lo > 1) {
		uint64_t k = split_point(hi - lo);
		if (index < lo + k) {
			r[count++] = (struct range){ lo + k, hi };
			hi = lo + k;
		} else {
			r[count++] = (struct range){ lo, lo + k };
			lo += k;
		}
	}
	return emit_proof(r, count, get, ctx, proof, n);
}

/*
 * PROOF(m, D[n]) = SUBPROOF(m, D[n], true) of RFC 9162 2.1.4.1. The proof
 * has at most ceil(log2(new_size)) + 1 hashes: one more than fits for some
 * trees over 2^63 leaves, which get MU_E_TOOBIG.
 */
int merkle_consistency_proof(uint64_t old_size, uint64_t new_size, merkle_get_fn get, void *ctx,
			     merkle_hash proof[MERKLE_MAX_DEPTH], size_t *n)
{
	struct range r[MERKLE_MAX_DEPTH];
	uint64_t lo = 0, hi = new_size;
	size_t count = 0;
	bool whole = true; /* the RFC's b: the old tree is still the left edge */

	*n = 0;
	if (old_size == 0 || old_size > new_size)
		return MU_E_USAGE;
	/* Invariant: lo < old_size <= hi. */
	while (old_size != hi) {
		uint64_t k = split_point(hi - lo);
		if (count == MERKLE_MAX_DEPTH)
			return MU_E_TOOBIG;
		if (old_size - lo <= k) {
			r[count++] = (struct range){ lo + k, hi };
			hi = lo + k;
		} else {
			r[count++] = (struct range){ lo, lo + k };
			lo += k;
			whole = false;
		}
	}
	/* A subtree the old tree ends on, unless it is the whole old tree,
	 * which the verifier already holds as old_root. */
	if (!whole) {
		if (count == MERKLE_MAX_DEPTH)
			return MU_E_TOOBIG;
		r[count++] = (struct range){ lo, hi };
	}
	return emit_proof(r, count, get, ctx, proof, n);
}

static bool hash_eq(const uint8_t *a, const uint8_t *b)
{
	return memcmp(a, b, MERKLE_HASH_LEN) == 0;
}

/*
 * The verifiers read proof[i] only after checking that the sizes still
 * call for another hash (sn != 0), so however large n is, they never read
 * past the proof that the sizes describe.
 */
int merkle_verify_inclusion(const merkle_hash leaf, uint64_t index, uint64_t size,
			    const merkle_hash *proof, size_t n, const merkle_hash root)
{
	merkle_hash r;
	uint64_t fn = index, sn;

	if (index >= size || n > MERKLE_MAX_DEPTH)
		return MU_E_PROOF;
	sn = size - 1;
	memcpy(r, leaf, MERKLE_HASH_LEN);
	for (size_t i = 0; i < n; i++) {
		if (sn == 0)
			return MU_E_PROOF;
		if ((fn & 1) || fn == sn) {
			merkle_node_hash(proof[i], r, r);
			while ((fn & 1) == 0 && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else {
			merkle_node_hash(r, proof[i], r);
		}
		fn >>= 1;
		sn >>= 1;
	}
	return sn == 0 && hash_eq(r, root) ? 0 : MU_E_PROOF;
}

int merkle_verify_consistency(uint64_t old_size, uint64_t new_size,
			      const merkle_hash old_root, const merkle_hash new_root,
			      const merkle_hash *proof, size_t n)
{
	merkle_hash fr, sr;
	uint64_t fn, sn;
	size_t i = 0;

	if (old_size > new_size || n > MERKLE_MAX_DEPTH)
		return MU_E_PROOF;
	if (old_size == new_size)
		return n == 0 && hash_eq(old_root, new_root) ? 0 : MU_E_PROOF;
	/* Every tree extends the empty tree, whose root is fixed. */
	if (old_size == 0) {
		merkle_empty_root(fr);
		return n == 0 && hash_eq(old_root, fr) ? 0 : MU_E_PROOF;
	}
	/* An old tree of 2^k leaves is a node of the new tree: the proof leaves
	 * its hash out, and the RFC puts old_root in its place. */
	if ((old_size & (old_size - 1)) == 0)
		memcpy(fr, old_root, MERKLE_HASH_LEN);
	else if (n == 0)
		return MU_E_PROOF;
	else
		memcpy(fr, proof[i++], MERKLE_HASH_LEN);
	memcpy(sr, fr, MERKLE_HASH_LEN);
	fn = old_size - 1;
	sn = new_size - 1;
	while (fn & 1) {
		fn >>= 1;
		sn >>= 1;
	}
	for (; i < n; i++) {
		if (sn == 0)
			return MU_E_PROOF;
		if ((fn & 1) || fn == sn) {
			merkle_node_hash(proof[i], fr, fr);
			merkle_node_hash(proof[i], sr, sr);
			while ((fn & 1) == 0 && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else {
			merkle_node_hash(sr, proof[i], sr);
		}
		fn >>= 1;
		sn >>= 1;
	}
	return sn == 0 && hash_eq(fr, old_root) && hash_eq(sr, new_root) ? 0 : MU_E_PROOF;
}
