/*
 * audit.h - an auditor's verification of a dataset's signed history, over
 * material fetched from one or more nodes. Pure: no IO, no sockets, no
 * store, so every failure class is unit-testable with hand-made logs.
 *
 * What one node served is a struct audit_source: its head history
 * (SignedHead bytes), its entries (seq 0, 1, ...), its trust lists, the
 * consistency proofs it gave between its successive heads, and the
 * cosignatures it holds. audit_run() checks, for every source and across
 * them:
 *  - every head decodes, names the dataset and its publisher, counts under
 *    the trust list of its time (trust.h: trust_check_head with the list of
 *    the head's trust_version and the newest list of the verified chain),
 *    and its signature verifies;
 *  - the trust lists form a chain from the list the auditor trusts (or,
 *    without one, the oldest list served), each accepted by
 *    trust_accept_next; no two nodes serve different lists of one version;
 *  - every entry decodes and names its dataset and place; the Merkle root
 *    of the first SIZE entries equals the root of every head of that size
 *    (this is consistency recomputed from the entries: the older tree is a
 *    prefix of the newer by construction), and the node's own consistency
 *    proof between each two of its successive heads verifies;
 *  - heads only grow: sorted by size, times never go backwards, and a node
 *    never serves a smaller head after a larger one;
 *  - across nodes: two validly signed heads that do not extend one another
 *    (same size and another root, or a head whose root differs from the
 *    root at its size of entries that reproduce a later signed head) are a
 *    fork; a node whose newest head is older than another's is behind,
 *    which is not a problem;
 *  - cosignatures: a witness counts for a head when its SignedCosignature
 *    verifies under its key in the trust lists (member of the list of the
 *    cosignature's trust_version and of the newest, not revoked, key not
 *    retired at its time), names this dataset, size and SHA-256 of the
 *    TreeHead bytes, and the witness is not the publisher. A validly signed
 *    cosignature of another head at a size we saw is a witness conflict.
 *
 * Problems are collected, each with a kind and a sentence; verification
 * goes on after a problem. The report borrows the sources' bytes: keep the
 * sources alive until audit_report_fini().
 *
 * Row proofs: the entry, its RFC 9162 inclusion proof, the signed head,
 * the publisher's key and the trust lists, as one JSON document that
 * audit_proof_check() verifies with no node (docs/AUDIT.md).
 */
#ifndef MU_AUDIT_H
#define MU_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "merkle.h"
#include "sig.h"

#define AUDIT_MAX_SOURCES 64
#define AUDIT_PROOF_MAX_BYTES ((size_t)64 << 20)  /* largest proof file read */

/* Bytes as a node served them. The audit never writes through data. */
struct audit_blob {
	uint8_t *data;
	size_t len;
};

/* A consistency proof a node gave from old_size to new_size. */
struct audit_consistency {
	uint64_t old_size, new_size;
	merkle_hash *hashes;
	size_t n;
	const char *error;   /* non-NULL: the node refused or failed, and why */
};

/* Everything one node served for the dataset. */
struct audit_source {
	const char *name;              /* e.g. its endpoint */
	const char *error;             /* non-NULL: fetching stopped early, and why */
	struct audit_blob *heads;      /* SignedHead bytes, in the order served */
	size_t nheads;
	struct audit_blob *entries;    /* Entry bytes, entries[i] served as seq i */
	size_t nentries;
	struct audit_blob *trust;      /* SignedTrustList bytes */
	size_t ntrust;
	struct audit_consistency *proofs;
	size_t nproofs;
	struct audit_blob *cosigs;     /* SignedCosignature bytes */
	size_t ncosigs;
};

struct audit_params {
	const char *dataset;               /* "MEMBER/NAME" */
	const struct audit_blob *pinned;   /* a trust list the auditor trusts, or NULL */
	unsigned min_witnesses;            /* 0: no minimum */
};

enum audit_kind {
	AUDIT_FETCH,            /* a node could not be asked everything */
	AUDIT_DECODE,           /* a head does not decode or names another dataset */
	AUDIT_ENTRY,            /* an entry does not decode or is out of place */
	AUDIT_ROOT,             /* entries do not give the signed root */
	AUDIT_SIGNATURE,        /* a head's signature does not verify */
	AUDIT_TRUST,            /* a head does not count under the trust lists */
	AUDIT_TRUST_LIST,       /* the trust lists do not form one accepted chain */
	AUDIT_CONSISTENCY,      /* a node's consistency proof is missing or wrong */
	AUDIT_TRUNCATED,        /* a node serves fewer entries than its heads cover */
	AUDIT_ROLLBACK,         /* a head smaller than an earlier one, or dated back */
	AUDIT_FORK,             /* two signed heads that do not extend one another */
	AUDIT_WITNESS_CONFLICT, /* a witness cosigned another head of a size we saw */
	AUDIT_WITNESSES,        /* a head has fewer witnesses than asked for */
};
/* "fetch", "decode", "entry", "root", "signature", "trust", "trust-list",
 * "consistency", "truncated", "rollback", "fork", "witness-conflict",
 * "witnesses": stable names for --json and scripts. */
const char *audit_kind_name(enum audit_kind k);

struct audit_problem {
	enum audit_kind kind;
	int source;      /* index of the source it concerns, -1 for none */
	uint64_t size;   /* the head size or entry number concerned */
	char *message;
};

enum audit_head_state {
	AUDIT_HEAD_VERIFIED,   /* the entries of some node give its root */
	AUDIT_HEAD_UNCHECKED,  /* validly signed, but no node served its entries */
	AUDIT_HEAD_FORKED,     /* part of a fork */
};

/* A validly signed head, once however many nodes served it. */
struct audit_head {
	uint64_t size;
	uint8_t root[32];
	int64_t time_us;
	uint64_t trust_version;
	uint8_t key_id[SIG_KEYID_LEN];
	uint8_t sha256[32];              /* of the TreeHead bytes: what witnesses name */
	const struct audit_blob *signed_head;  /* borrowed: as the first node served it */
	uint64_t seen_by;                /* bit i: source i served it */
	enum audit_head_state state;
	int history;                     /* on the history the report's entries give */
	char **witnesses;                /* distinct valid cosigners, sorted, not the publisher */
	size_t nwitnesses;
	size_t witnessed;                /* distinct witnesses of this or a later head of the
					    history (a later head proves this one its prefix) */
};

struct audit_key {
	uint8_t key_id[SIG_KEYID_LEN];
	uint8_t raw[SIG_PUBKEY_LEN];
	uint64_t heads, first_size, last_size;
};

struct audit_schema {
	char *ref;   /* "id@version" ("-" for entries without a schema) */
	uint64_t entries, first_seq, last_seq;
};

struct audit_node {
	uint64_t newest;     /* size of its newest validly signed head */
	uint64_t entries;    /* entries it served */
	uint64_t verified;   /* its entries give signed roots up to this size */
	size_t cosigs;       /* cosignatures it served */
	int behind;          /* its newest head is older than another node's */
};

/* Two validly signed heads that do not extend one another (indexes into
 * audit_report.heads; a is the smaller or, at one size, the first). */
struct audit_fork {
	size_t a, b;
};

struct audit_report {
	char *publisher;             /* the member of the dataset name */
	char *publisher_name;        /* its name in the newest trust list, or NULL */
	int reference;               /* the source whose entries the report shows, -1: none */
	uint64_t entries;            /* entries of that history (its verified size) */
	uint64_t trust_first, trust_newest;  /* the accepted chain (0, 0: none) */
	int trust_pinned;            /* the chain starts at params->pinned */
	const struct audit_blob **trust;     /* the accepted chain, oldest first (borrowed) */
	size_t ntrust;
	struct audit_head *heads;    /* sorted by size, then root */
	size_t nheads;
	struct audit_fork *forks;
	size_t nforks;
	struct audit_key *keys;      /* keys that signed valid heads, in order of first use */
	size_t nkeys;
	struct audit_schema *schemas;  /* of the reference history, in order of first use */
	size_t nschemas;
	struct audit_node *nodes;    /* one per source */
	size_t nnodes;
	size_t cosigs_valid, cosigs_invalid, cosigs_unmatched;
	struct audit_problem *problems;
	size_t nproblems;
	char **notes;                /* things worth saying that are not problems */
	size_t nnotes;
};

/*
 * Audit params->dataset over what nsrc (1..AUDIT_MAX_SOURCES) sources
 * served. Returns 0 when no problem was found, MU_E_CORRUPT when some were
 * (listed in rep), MU_E_USAGE for bad arguments, -ENOMEM. rep is the
 * caller's to free with audit_report_fini() in every case.
 */
int audit_run(const struct audit_params *p, const struct audit_source *src, size_t nsrc,
	      struct audit_report *rep);
void audit_report_fini(struct audit_report *rep);

/* The sorted distinct sizes of the heads that decode: a fetcher asks for
 * the entries up to the largest and a consistency proof between each two
 * successive ones. *sizes is the caller's to free. 0 or -ENOMEM. */
int audit_head_sizes(const struct audit_blob *heads, size_t n, uint64_t **sizes, size_t *nsizes);

/* ---- row proofs ---- */

struct audit_row_proof {
	char *dataset;
	uint64_t seq;
	struct audit_blob entry;          /* Entry bytes */
	merkle_hash leaf;                 /* SHA-256(0x00 || entry) */
	merkle_hash *path;                /* inclusion proof in the tree of the head */
	size_t npath;
	struct audit_blob signed_head;    /* SignedHead bytes */
	char *key_pem;                    /* the key that signed the head, SubjectPublicKeyInfo PEM */
	struct audit_blob *trust;         /* the trust lists from the first to the newest */
	size_t ntrust;
};

/* What a proof showed, for people. */
struct audit_proof_info {
	char publisher[64];
	uint64_t size;                /* of the signed head */
	int64_t head_time_us, entry_time_us;
	uint64_t trust_version, trust_first, trust_newest;
	int pinned;                   /* the chain started at the caller's list */
	uint8_t key_id[SIG_KEYID_LEN];
	char schema[160];             /* "id@version" */
	char key[256];                /* the row's primary key, U+001F shown as '|' */
	int deleted;                  /* the entry is a delete */
};

/*
 * Make a proof that entry (seq of dataset) is in the tree of signed_head:
 * copies everything into *out (free with audit_proof_fini), fills the
 * leaf hash and the key PEM from the trust lists, then checks it as
 * audit_proof_check does. 0, or the check's error with why.
 */
int audit_proof_make(const char *dataset, uint64_t seq, const struct audit_blob *entry,
		     const merkle_hash *path, size_t npath, const struct audit_blob *signed_head,
		     const struct audit_blob *trust, size_t ntrust, const struct audit_blob *pinned,
		     struct audit_row_proof *out, char *why, size_t whylen);

/*
 * Verify a proof with no node: the entry decodes and names dataset and
 * seq; its leaf hash is the one given; the inclusion proof binds it to the
 * head's root at the head's size; the trust lists form an accepted chain
 * (starting at pinned, which must then be among them byte for byte, when
 * pinned is not NULL); the head counts under the list of its
 * trust_version and the newest; the key PEM is that key; the signature
 * verifies. 0 with info filled, or MU_E_DECODE / MU_E_PROOF / MU_E_TRUST /
 * MU_E_BADSIG with why.
 */
int audit_proof_check(const struct audit_row_proof *p, const struct audit_blob *pinned,
		      struct audit_proof_info *info, char *why, size_t whylen);

/* The proof as a JSON document (docs/AUDIT.md); *json is the caller's to
 * free. 0 or -ENOMEM. */
int audit_proof_encode(const struct audit_row_proof *p, char **json);
/* Read a proof document (any bytes: hostile) into *out, which the caller
 * frees with audit_proof_fini in every case. 0, MU_E_DECODE with why, or
 * MU_E_TOOBIG past AUDIT_PROOF_MAX_BYTES. Nothing is verified here. */
int audit_proof_decode(const uint8_t *buf, size_t len, struct audit_row_proof *out, char *why,
		       size_t whylen);
void audit_proof_fini(struct audit_row_proof *p);

#endif
