/*
 * merkle.h - RFC 9162 Merkle trees, pure logic with no IO.
 *
 * Leaf hash:  SHA-256(0x00 || leaf bytes)
 * Node hash:  SHA-256(0x01 || left || right)
 * Empty tree: SHA-256("")
 *
 * Storage is abstracted by a callback that returns the hash of a perfect,
 * aligned subtree: level L, index i covers leaves [i * 2^L, (i+1) * 2^L).
 * Level 0 is the leaf hashes. The store keeps some levels and recomputes
 * the rest, so the callback may itself do work.
 *
 * The frontier is the incremental state of an append-only tree: the roots
 * of the perfect subtrees that make up a tree of `size` leaves (one per set
 * bit of size). Appending is O(log n) hashing and reads nothing.
 */
#ifndef MU_MERKLE_H
#define MU_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#define MERKLE_HASH_LEN 32
#define MERKLE_MAX_DEPTH 64  /* a proof never has more hashes than this */

typedef uint8_t merkle_hash[MERKLE_HASH_LEN];

/* Fill `out` with SHA-256(0x00 || data). */
void merkle_leaf_hash(const void *data, size_t len, merkle_hash out);
/* Fill `out` with SHA-256(0x01 || left || right). */
void merkle_node_hash(const merkle_hash left, const merkle_hash right, merkle_hash out);
/* Plain SHA-256, on the same path. None of these allocate or fail. */
void merkle_sha256(const void *data, size_t len, uint8_t out[MERKLE_HASH_LEN]);
/* Fill `out` with SHA-256 of no bytes: the root of the empty tree. */
void merkle_empty_root(merkle_hash out);

/* Return 0 and fill `out` with the perfect subtree (level, index), or a
 * negative error code which the caller passes on unchanged. */
typedef int (*merkle_get_fn)(void *ctx, unsigned level, uint64_t index, merkle_hash out);

struct merkle_frontier {
	uint64_t size;                        /* leaves appended so far */
	merkle_hash peaks[MERKLE_MAX_DEPTH];  /* peaks[L] valid iff bit L of size */
};

/* Reset to the empty tree. */
void merkle_frontier_init(struct merkle_frontier *f);

/*
 * Append one leaf hash. For each perfect subtree completed by this append
 * (level 0 is the leaf itself, then every level it closes), call `done`
 * (when not NULL) with its level, index and hash so the caller may store
 * it. Returns 0, or the first negative value `done` returned.
 */
typedef int (*merkle_done_fn)(void *ctx, unsigned level, uint64_t index, const merkle_hash h);
int merkle_frontier_append(struct merkle_frontier *f, const merkle_hash leaf,
			   merkle_done_fn done, void *ctx);

/* The root of the tree the frontier describes. */
void merkle_frontier_root(const struct merkle_frontier *f, merkle_hash out);

/* Rebuild a frontier for a tree of `size` leaves from stored subtrees
 * (log2(size) callback reads). */
int merkle_frontier_load(struct merkle_frontier *f, uint64_t size, merkle_get_fn get, void *ctx);

/* MTH(D[begin:end]) computed from perfect subtrees. begin < end. */
int merkle_range_hash(uint64_t begin, uint64_t end, merkle_get_fn get, void *ctx, merkle_hash out);

/*
 * Inclusion proof (RFC 9162 2.1.3.1) for leaf `index` in a tree of `size`.
 * Writes at most MERKLE_MAX_DEPTH hashes into `proof` and their count into
 * *n. Returns MU_E_USAGE if index >= size.
 */
int merkle_inclusion_proof(uint64_t index, uint64_t size, merkle_get_fn get, void *ctx,
			   merkle_hash proof[MERKLE_MAX_DEPTH], size_t *n);

/*
 * Consistency proof (RFC 9162 2.1.4.1) from old_size to new_size,
 * 0 < old_size <= new_size. An old_size equal to new_size gives an empty proof.
 */
int merkle_consistency_proof(uint64_t old_size, uint64_t new_size, merkle_get_fn get, void *ctx,
			     merkle_hash proof[MERKLE_MAX_DEPTH], size_t *n);

/* RFC 9162 2.1.3.2. Returns 0 when the proof binds leaf to root, else MU_E_PROOF. */
int merkle_verify_inclusion(const merkle_hash leaf, uint64_t index, uint64_t size,
			    const merkle_hash *proof, size_t n, const merkle_hash root);

/* RFC 9162 2.1.4.2. Returns 0 when new_root extends old_root, else MU_E_PROOF. */
int merkle_verify_consistency(uint64_t old_size, uint64_t new_size,
			      const merkle_hash old_root, const merkle_hash new_root,
			      const merkle_hash *proof, size_t n);

#endif
