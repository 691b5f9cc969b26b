/*
 * trust.h - the trust registry: a federation's signed, versioned list of
 * members and their keys, and the rules that decide which signatures count.
 *
 * A trust list (proto/trust.proto) names the members (id, display name,
 * Ed25519 signing key, X25519 transport key, endpoint, roles, validity
 * period, revocation), the signing keys members have retired, the anchor
 * keys and the threshold of anchor signatures the next version needs.
 * A file and a stored value are one SignedTrustList: the TrustList bytes
 * exactly as the anchors signed them (SIG_CTX_TRUST_LIST) and the
 * signatures.
 *
 * The rules (docs/TRUST.md says them for people):
 *  - A first list counts when at least `threshold` distinct anchor keys
 *    of its own signed it.
 *  - A next list counts when its version is higher than the current one,
 *    it names the same federation, and it carries valid signatures of at
 *    least the CURRENT threshold of distinct anchors named in the CURRENT
 *    list (so the anchors can rotate, as TUF rotates its root) and of at
 *    least its own threshold of its own anchors (so a new anchor set has
 *    shown that it can sign before anyone depends on it). Signatures by
 *    other keys are ignored and counted in the message.
 *  - A tree head counts when, in the list of the head's trust_version, its
 *    publisher is a member with the publisher role, the head's time is in
 *    the member's validity period, and the head's key is the member's
 *    signing key, or one of its retired keys if the head is dated before
 *    that key was retired; and when, in the NEWEST list, the member is
 *    still there, valid at the head's time, not revoked at or before it,
 *    and the key not retired at or before it. A head is dated by its
 *    publisher (time_us).
 *  - A cosignature counts by trust_check_cosig below, for nodes and the
 *    auditor alike.
 *
 * Every refusal returns MU_E_TRUST (MU_E_DECODE for bytes that are not a
 * well-formed list) with one sentence in `why` naming the rule that failed.
 * Times are microseconds since the Unix epoch, UTC.
 *
 * The decoded structs own copies of everything (no pointer into the input),
 * so that the anchor's tools can edit a list and encode it again.
 */
#ifndef MU_TRUST_H
#define MU_TRUST_H

#include <stddef.h>
#include <stdint.h>

#include "rec.h"
#include "sig.h"
#include "store.h"

#define TRUST_MAX_BYTES ((size_t)16 << 20)   /* largest trust list file taken */
#define TRUST_ENDPOINT_MAX 255

/* Roles a member can hold. Lists may carry roles this build does not know:
 * they are kept and shown, and grant nothing here. */
#define TRUST_ROLE_PUBLISHER "publisher"
#define TRUST_ROLE_SCHEMA_AUTHORITY "schema-authority"
#define TRUST_ROLE_AUDITOR "auditor"
#define TRUST_ROLE_RELAY "relay"

enum trust_role_bit {
	TRUST_PUBLISHER = 1,
	TRUST_SCHEMA_AUTHORITY = 2,
	TRUST_AUDITOR = 4,
	TRUST_RELAY = 8,
};

struct trust_member {
	char *id, *name, *endpoint, *revoked_reason;
	uint8_t signing_key[SIG_PUBKEY_LEN];
	uint8_t transport_key[32];
	char **roles;
	size_t nroles;
	int64_t valid_from_us;    /* 0: from the beginning */
	int64_t valid_until_us;   /* 0: open ended */
	int64_t revoked_us;       /* 0: not revoked */
};

struct trust_retired {
	char *member, *reason;
	uint8_t signing_key[SIG_PUBKEY_LEN];
	int64_t retired_us;
};

struct trust_list {
	uint64_t version;
	int64_t issued_us;
	char *federation;
	struct trust_member *members;
	size_t nmembers;
	uint8_t (*anchors)[SIG_PUBKEY_LEN];
	size_t nanchors;
	unsigned threshold;
	struct trust_retired *retired;
	size_t nretired;
};

struct trust_signature {
	uint8_t key_id[SIG_KEYID_LEN];   /* SHA-256 of the anchor's raw key */
	uint8_t sig[SIG_SIGNATURE_LEN];
};

struct trust_signed {
	struct trust_list list;   /* decoded from bytes */
	uint8_t *bytes;           /* the TrustList bytes exactly as signed */
	size_t len;
	struct trust_signature *sigs;
	size_t nsigs;
};

/*
 * Decode a SignedTrustList from buf (any bytes: they are treated as
 * hostile) into *out, which the caller frees with trust_signed_fini() in
 * every case. MU_E_DECODE (why says what is wrong) for bytes that do not
 * decode or a list that breaks trust_list_check(); MU_E_TOOBIG past
 * TRUST_MAX_BYTES. Signatures are NOT checked here: see trust_accept_*.
 */
int trust_decode(const uint8_t *buf, size_t len, struct trust_signed *out, char *why,
		 size_t whylen);
void trust_signed_fini(struct trust_signed *s);

/* Encode s (its bytes as they are, and its signatures) as a
 * SignedTrustList into out (reset first). */
int trust_encode(const struct trust_signed *s, struct rec_buf *out);

/*
 * Is l well formed? version >= 1; 1 <= threshold <= anchors; anchors
 * distinct; member ids valid (mu_valid_member) and distinct; no signing or
 * transport key shared by two members; validity periods not empty;
 * endpoints at most TRUST_ENDPOINT_MAX bytes; retired keys name valid
 * member ids, carry a retirement time and are no member's current key.
 * 0 or MU_E_DECODE with why.
 */
int trust_list_check(const struct trust_list *l, char *why, size_t whylen);

/*
 * After an edit of s->list: check it, set issued_us to now_us, and encode
 * the list into s->bytes again. If s carried signatures, the edit starts
 * the next version: version + 1 and signatures cleared (*next_version = 1,
 * else 0). MU_E_DECODE with why if the edited list is not well formed.
 */
int trust_redraft(struct trust_signed *s, int64_t now_us, int *next_version, char *why,
		  size_t whylen);

/* Add anchor's signature over s->bytes. MU_E_EXISTS if that key signed
 * already. Whether it counts is for trust_accept_* to say. */
int trust_sign(struct trust_signed *s, const struct sig_key *anchor);

/* The member with id, or NULL. Borrowed from l. */
struct trust_member *trust_find_member(const struct trust_list *l, const char *id);
/* 1 if m holds role (a TRUST_ROLE_* string). */
int trust_has_role(const struct trust_member *m, const char *role);
/* The TRUST_* bit of a known role name, 0 for any other. */
unsigned trust_role_bit(const char *role);

/*
 * The rules for lists. Both return 0 when s (next) counts and then say in
 * why how many valid signatures it has; MU_E_TRUST with the failed rule
 * otherwise; MU_E_CRYPTO if OpenSSL failed.
 */
int trust_accept_first(const struct trust_signed *s, char *why, size_t whylen);
int trust_accept_next(const struct trust_signed *cur, const struct trust_signed *next,
		      char *why, size_t whylen);

/*
 * The rule for heads, pure: `at` is the list of version h->trust_version,
 * `newest` the newest list the node has (may be `at`). 0 with the raw
 * signing key that must have signed h in key, or MU_E_TRUST with why.
 * The signature itself is the caller's to check (head_check_signature).
 */
int trust_check_head(const struct trust_list *at, const struct trust_list *newest,
		     const struct rec_head *h, uint8_t key[SIG_PUBKEY_LEN], char *why,
		     size_t whylen);

/*
 * The rule for cosignatures (cosign.h), pure: the one rule by which a node
 * (cosign_check, before it keeps a peer's cosignature) and the auditor
 * (audit_run, counting witnesses) decide which key may sign a witness's
 * cosignature. `at` is the list of the cosignature's own trust_version
 * (the newest list its witness had when it signed), `newest` the newest
 * list the checker has (may be `at`); a cosignature naming a version the
 * checker does not hold, or 0, is the caller's to refuse. A cosignature by
 * witness, dated time_us (by the witness, when it signed), with the key
 * of key_id, counts when:
 *  - the witness is a member of `at` and of `newest` (any member may
 *    witness: no role is needed);
 *  - in `newest`, the witness is valid at time_us and was not revoked at
 *    or before it: a revocation reaches back to cosignatures dated from
 *    its time on, and leaves those dated before it counting;
 *  - the key is one `newest` retired for the witness AFTER time_us (a
 *    rotation leaves the old key good for what it signed before the
 *    retirement time, under whichever list version; from that time on it
 *    counts under none), or else the witness's signing key in `at` or in
 *    `newest`.
 * 0 with the raw key that must have signed it in key, or MU_E_TRUST with
 * why. The signature itself is the caller's to check (SIG_CTX_COSIGN).
 */
int trust_check_cosig(const struct trust_list *at, const struct trust_list *newest,
		      const char *witness, int64_t time_us, const uint8_t key_id[SIG_KEYID_LEN],
		      uint8_t key[SIG_PUBKEY_LEN], char *why, size_t whylen);

/* ---- backed by a node's store ("trust" database, meta "trust_version") ---- */

/*
 * Give the node a trust list: the bytes of a SignedTrustList. With no list
 * stored yet it must pass trust_accept_first, else trust_accept_next
 * against the newest stored one. Then it is stored under its version and
 * meta "trust_version" (decimal text) names it: the publisher signs new
 * heads under it. MU_E_EXISTS when exactly this list is already the newest;
 * MU_E_TRUST / MU_E_DECODE with why when refused. _txn does the same
 * inside the caller's write transaction.
 */
int trust_store_list(struct store *st, const uint8_t *buf, size_t len, char *why, size_t whylen);
int trust_store_list_txn(struct store_txn *t, const uint8_t *buf, size_t len, char *why,
			 size_t whylen);

/* Decode the stored list of version (0: the newest) into *out (caller
 * frees with trust_signed_fini). -ENOENT if there is none. */
int trust_load(struct store_txn *t, uint64_t version, struct trust_signed *out);

/*
 * Decoded lists by version, so that checking many heads decodes each list
 * once. Stored lists never change, so a cache stays right for the life of
 * its store; use one cache per store.
 */
struct trust_cache;
int trust_cache_new(struct trust_cache **out);
void trust_cache_destroy(struct trust_cache **c);

/*
 * A verify_key_fn (verify.h) applying the head rule above against the
 * store's lists. ctx is a struct trust_cache, or NULL to decode the lists
 * at every call. With no trust list stored, and for heads of this node's
 * own member signed under trust_version 0 (before it joined a federation),
 * it is verify_own_key. *key is the caller's to destroy.
 */
int trust_head_key(void *ctx, struct store_txn *t, const struct rec_head *h,
		   struct sig_key **key, char *why, size_t whylen);

/*
 * Members as the node sees them now (newest list; "current" = valid at
 * now_us and not revoked at or before it). For ZeroMQ: which member a
 * CURVE client key belongs to, and whom to connect to.
 */
struct trust_peer {
	char id[33];
	char endpoint[TRUST_ENDPOINT_MAX + 1];   /* "" when the member has none */
	uint8_t transport_key[32];
	unsigned roles;                          /* TRUST_* bits */
};
/* 0 and the member id if a current member has that transport key; -ENOENT
 * otherwise (also when the store holds no trust list); -ENOSPC if cap is
 * too small. */
int trust_member_by_transport_key(struct store_txn *t, const uint8_t key[32], char *member,
				  size_t cap);
/* The endpoint and transport key of a current member; -ENOENT if it is not
 * one. */
int trust_member_endpoint(struct store_txn *t, const char *member, char *endpoint, size_t cap,
			  uint8_t transport_key[32]);
/* Every current member, in list order, into *out (the caller frees it with
 * free()); *n = 0 and -ENOENT without a trust list. */
int trust_members_current(struct store_txn *t, int64_t now_us, struct trust_peer **out,
			  size_t *n);

/* ---- files and times ---- */

/* Read a whole trust list file (at most TRUST_MAX_BYTES: else MU_E_TOOBIG)
 * into *buf (the caller frees it). */
int trust_file_read(const char *path, uint8_t **buf, size_t *len);
/* Write a file atomically: temp file, fsync, rename (or, without replace,
 * link: MU_E_EXISTS if path exists), fsync of the directory. Mode 0644. */
int trust_file_write(const char *path, const void *buf, size_t len, int replace);

/* ISO 8601 to microseconds: "2026-04-01", "2026-04-01T09:30:00Z",
 * "2026-04-01T09:30:00.250Z", "2026-04-01T18:30:00+09:00" (fractions to
 * the microsecond), or "now". MU_E_USAGE if not one of those. */
int trust_parse_time(const char *s, int64_t now_us, int64_t *us);
/* "2026-04-01T09:30:00Z", with ".ffffff" when the time has microseconds,
 * into buf (at least 32 bytes). */
void trust_format_time(int64_t us, char *buf, size_t cap);

#endif
