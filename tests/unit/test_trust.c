/*
 * test_trust.c - the trust registry: k-of-n anchor signatures, anchor
 * rotation, downgrades, key rotation, revocation, expiry, roles, damaged
 * files, and the store-backed head resolver, with real keys, real signed
 * heads and a real store in a temporary directory.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "head.h"
#include "mu_err.h"
#include "rec.h"
#include "sig.h"
#include "store.h"
#include "testutil.h"
#include "trust.h"
#include "trust.pb-c.h"
#include "util.h"

#define HOUR ((int64_t)3600 * 1000000)

static char tmpdir[TU_DIR_MAX];
static struct store *st;
static int64_t t0;   /* a whole second, a day ago: every time below is relative */

/* Keys of anchors a1..a4, two rogue keys and members' keys, made once. */
enum { A1, A2, A3, A4, ROGUE1, ROGUE2, SAPPORO, SAPPORO_NEW, HAKODATE, YAIZU, NKEYS };
static struct sig_key *keys[NKEYS];
static uint8_t transport[NKEYS][32];
static struct rec_buf bufs[4];

static void cleanup(void);

static void setup(void)
{
	if (tmpdir[0] != '\0')
		return;
	if (tu_tmpdir(tmpdir, "trust") < 0 || tu_keys_new(tmpdir, NKEYS, keys, transport) < 0)
		exit(1);
	t0 = tu_day_ago_us();
	atexit(cleanup);
}

/* A fresh node store for member 011002 (the SAPPORO key). */
static void node_new(void)
{
	static int n;
	char path[512];

	setup();
	store_close(&st);
	snprintf(path, sizeof(path), "%s/node%d", tmpdir, n++);
	if (store_open(path, STORE_CREATE, &st) < 0 || tu_node_meta(st, "011002", keys[SAPPORO]) < 0)
		exit(1);
}

/* ---- building lists ---- */

static void list_new(struct trust_signed *s, uint64_t version, const int *anchors, size_t n,
		     unsigned threshold)
{
	memset(s, 0, sizeof(*s));
	s->list.version = version;
	s->list.federation = strdup("test-federation");
	s->list.threshold = threshold;
	s->list.anchors = calloc(n, sizeof(*s->list.anchors));
	s->list.nanchors = n;
	for (size_t i = 0; i < n; i++)
		sig_key_raw_public(keys[anchors[i]], s->list.anchors[i]);
}

static struct trust_member *member_add(struct trust_signed *s, const char *id, int key,
				       const char *role)
{
	return tu_member_add(s, id, id, "tcp://127.0.0.1:7101", keys[key], transport[key], role);
}

/* Move member id's signing key to the retired keys and give it key. */
static void member_rotate(struct trust_signed *s, const char *id, int key, int64_t at)
{
	struct trust_member *m = trust_find_member(&s->list, id);
	struct trust_retired *r;

	s->list.retired = realloc(s->list.retired, (s->list.nretired + 1) * sizeof(*r));
	r = &s->list.retired[s->list.nretired++];
	r->member = strdup(id);
	r->reason = strdup("rotated");
	memcpy(r->signing_key, m->signing_key, 32);
	r->retired_us = at;
	sig_key_raw_public(keys[key], m->signing_key);
	memcpy(m->transport_key, transport[key], 32);
}

/* Encode the edited list, keeping its version (it carries no signature). */
static void seal(struct trust_signed *s)
{
	char why[256];
	int next;

	CHECK_OK(trust_redraft(s, t0, &next, why, sizeof(why)));
	CHECK(next == 0);
}

static void sign_by(struct trust_signed *s, const int *signers, size_t n)
{
	for (size_t i = 0; i < n; i++)
		CHECK_OK(trust_sign(s, keys[signers[i]]));
}

/* Encode s as a file would hold it (into a static buffer of rec_bufs). */
static struct rec_buf *encoded(const struct trust_signed *s)
{
	static int i;

	i = (i + 1) % 4;
	CHECK_OK(trust_encode(s, &bufs[i]));
	return &bufs[i];
}

static int store_list(const struct trust_signed *s, char *why, size_t whylen)
{
	struct rec_buf *b = encoded(s);
	return trust_store_list(st, b->data, b->len, why, whylen);
}

/* ---- heads ---- */

/* Sign a head of publisher with key under trust_version dated time_us, and
 * ask the store's resolver about it: its result, its reason in why, and
 * when it names a key, that key must verify the head's signature. */
static int head_check(struct trust_cache *cache, const char *publisher, int key,
		      uint64_t trust_version, int64_t time_us, char *why, size_t whylen)
{
	char dataset[64];
	struct rec_head h = { .size = 1, .time_us = time_us, .trust_version = trust_version,
			      .publisher = publisher };
	struct rec_buf b = { 0 };
	struct head_signed hs;
	struct store_txn t;
	struct sig_key *resolved = NULL;
	int rc;

	snprintf(dataset, sizeof(dataset), "%s/aed", publisher);
	h.dataset = dataset;
	memset(h.root, 7, sizeof(h.root));
	why[0] = '\0';
	if (head_make_signed(&h, keys[key], &b) < 0 || head_decode(b.data, b.len, &hs) < 0) {
		rec_buf_fini(&b);
		return -1000;
	}
	if ((rc = store_read_begin(st, &t)) == 0) {
		rc = trust_head_key(cache, &t, &hs.hd->h, &resolved, why, whylen);
		if (rc == 0)
			CHECK_OK(head_check_signature(&hs, resolved));
		store_read_end(&t);
	}
	sig_key_destroy(&resolved);
	head_signed_fini(&hs);
	rec_buf_fini(&b);
	return rc;
}

static const char *when(int64_t us)
{
	static char buf[4][32];
	static int i;

	i = (i + 1) % 4;
	trust_format_time(us, buf[i], sizeof(buf[i]));
	return buf[i];
}

static const char *kid(int key)
{
	static char buf[4][17];
	static int i;
	uint8_t id[32];

	i = (i + 1) % 4;
	sig_key_id(keys[key], id);
	sig_hex(id, 8, buf[i]);
	return buf[i];
}

/* ---- cases ---- */

static void test_threshold(void)
{
	static const int anchors[] = { A1, A2, A3 };
	struct trust_signed s;
	char why[512];

	setup();
	list_new(&s, 1, anchors, 3, 2);
	member_add(&s, "011002", SAPPORO, TRUST_ROLE_PUBLISHER);
	seal(&s);
	CHECK_RC(trust_accept_first(&s, why, sizeof(why)), MU_E_TRUST);
	CHECK_STREQ(why, "threshold not met: trust list version 1 has 0 valid signatures by its "
		    "own anchor keys and needs 2");

	/* k-1 of n: refused. */
	sign_by(&s, (const int[]){ A1 }, 1);
	CHECK_RC(trust_accept_first(&s, why, sizeof(why)), MU_E_TRUST);
	CHECK_STREQ(why, "threshold not met: trust list version 1 has 1 valid signature by its "
		    "own anchor keys and needs 2");

	/* One anchor twice: trust_sign refuses, and a copied signature counts once. */
	CHECK_RC(trust_sign(&s, keys[A1]), MU_E_EXISTS);
	s.sigs = realloc(s.sigs, 2 * sizeof(*s.sigs));
	s.sigs[1] = s.sigs[0];
	s.nsigs = 2;
	CHECK_RC(trust_accept_first(&s, why, sizeof(why)), MU_E_TRUST);
	CHECK_STREQ(why, "threshold not met: trust list version 1 has 1 valid signature by its "
		    "own anchor keys and needs 2; 1 repeated signature by one anchor counted once");
	s.nsigs = 1;

	/* A key that is not an anchor is ignored, and said so. */
	sign_by(&s, (const int[]){ ROGUE1 }, 1);
	CHECK_RC(trust_accept_first(&s, why, sizeof(why)), MU_E_TRUST);
	CHECK_STREQ(why, "threshold not met: trust list version 1 has 1 valid signature by its "
		    "own anchor keys and needs 2; 1 signature by a key that is not one of those "
		    "anchors was ignored");

	/* An anchor's signature that does not verify does not count. */
	sign_by(&s, (const int[]){ A2 }, 1);
	s.sigs[2].sig[10] ^= 1;
	CHECK_RC(trust_accept_first(&s, why, sizeof(why)), MU_E_TRUST);
	CHECK_STREQ(why, "threshold not met: trust list version 1 has 1 valid signature by its "
		    "own anchor keys and needs 2; 1 signature by a key that is not one of those "
		    "anchors was ignored; 1 signature by those anchors does not verify");
	s.sigs[2].sig[10] ^= 1;

	/* k of n: accepted, the unknown signer still ignored. */
	CHECK_OK(trust_accept_first(&s, why, sizeof(why)));
	CHECK_STREQ(why, "trust list version 1 has 2 valid signatures by its own anchor keys "
		    "(threshold 2)");
	sign_by(&s, (const int[]){ A3 }, 1);
	CHECK_OK(trust_accept_first(&s, why, sizeof(why)));
	CHECK_STREQ(why, "trust list version 1 has 3 valid signatures by its own anchor keys "
		    "(threshold 2)");
	trust_signed_fini(&s);
}

static void test_unknown_signer(void)
{
	static const int anchors[] = { A1, A2 };
	struct trust_signed s, rogue;
	struct store_txn t;
	const uint8_t *buf;
	size_t len;
	uint64_t v;
	char why[512];

	node_new();
	list_new(&s, 1, anchors, 2, 2);
	member_add(&s, "011002", SAPPORO, TRUST_ROLE_PUBLISHER);
	seal(&s);
	sign_by(&s, (const int[]){ ROGUE1, ROGUE2 }, 2);
	CHECK_RC(store_list(&s, why, sizeof(why)), MU_E_TRUST);
	CHECK_STREQ(why, "threshold not met: trust list version 1 has 0 valid signatures by its "
		    "own anchor keys and needs 2; 2 signatures by keys that are not among those "
		    "anchors were ignored");
	CHECK_OK(store_read_begin(st, &t));
	CHECK_RC(store_trust_latest(&t, &v, &buf, &len), -ENOENT);
	store_read_end(&t);

	/* The real v1, then a v2 made and signed by the rogue keys as its own
	 * anchors: they are not the anchors of version 1, so it is refused. */
	trust_signed_fini(&s);
	list_new(&s, 1, anchors, 2, 2);
	seal(&s);
	sign_by(&s, (const int[]){ A1, A2 }, 2);
	CHECK_OK(store_list(&s, why, sizeof(why)));
	list_new(&rogue, 2, (const int[]){ ROGUE1, ROGUE2 }, 2, 2);
	member_add(&rogue, "011002", ROGUE1, TRUST_ROLE_PUBLISHER);
	seal(&rogue);
	sign_by(&rogue, (const int[]){ ROGUE1, ROGUE2 }, 2);
	CHECK_RC(store_list(&rogue, why, sizeof(why)), MU_E_TRUST);
	CHECK_STREQ(why, "threshold not met: trust list version 2 has 0 valid signatures by the "
		    "anchor keys of version 1 and needs 2; 2 signatures by keys that are not among "
		    "those anchors were ignored");
	trust_signed_fini(&s);
	trust_signed_fini(&rogue);
}

static void test_anchor_rotation(void)
{
	struct trust_signed v1, v2, v3;
	struct store_txn t;
	char why[512], tv[32];
	size_t len;

	node_new();
	list_new(&v1, 1, (const int[]){ A1, A2 }, 2, 2);
	member_add(&v1, "011002", SAPPORO, TRUST_ROLE_PUBLISHER);
	seal(&v1);
	sign_by(&v1, (const int[]){ A1, A2 }, 2);
	CHECK_OK(store_list(&v1, why, sizeof(why)));

	/* v2 hands over from {a1, a2} to {a2, a3}. Signed by v1's anchors
	 * only, the new anchor a3 has not shown it can sign: refused. */
	list_new(&v2, 2, (const int[]){ A2, A3 }, 2, 2);
	member_add(&v2, "011002", SAPPORO, TRUST_ROLE_PUBLISHER);
	seal(&v2);
	sign_by(&v2, (const int[]){ A1, A2 }, 2);
	CHECK_RC(store_list(&v2, why, sizeof(why)), MU_E_TRUST);
	CHECK_STREQ(why, "threshold not met: trust list version 2 has 1 valid signature by its "
		    "own anchor keys and needs 2; 1 signature by a key that is not one of those "
		    "anchors was ignored");
	sign_by(&v2, (const int[]){ A3 }, 1);
	CHECK_OK(store_list(&v2, why, sizeof(why)));
	CHECK_STREQ(why, "trust list version 2 has 2 valid signatures by the anchor keys of "
		    "version 1 (threshold 2) and 2 by its own (threshold 2)");

	/* v3 signed by v1's anchors a1 and a2: a1 is no anchor of v2. */
	list_new(&v3, 3, (const int[]){ A2, A3 }, 2, 2);
	member_add(&v3, "011002", SAPPORO, TRUST_ROLE_PUBLISHER);
	seal(&v3);
	sign_by(&v3, (const int[]){ A1, A2 }, 2);
	CHECK_RC(store_list(&v3, why, sizeof(why)), MU_E_TRUST);
	CHECK_STREQ(why, "threshold not met: trust list version 3 has 1 valid signature by the "
		    "anchor keys of version 2 and needs 2; 1 signature by a key that is not one of "
		    "those anchors was ignored");
	v3.nsigs = 0;
	sign_by(&v3, (const int[]){ A3, A2 }, 2);
	CHECK_OK(store_list(&v3, why, sizeof(why)));

	/* The node now signs under version 3. */
	CHECK_OK(store_read_begin(st, &t));
	CHECK_OK(store_meta_get(&t, "trust_version", tv, sizeof(tv), &len));
	CHECK_STREQ(tv, "3");
	store_read_end(&t);
	trust_signed_fini(&v1);
	trust_signed_fini(&v2);
	trust_signed_fini(&v3);
}

static void test_downgrade(void)
{
	struct trust_signed v1, v2, v2b, other;
	char why[512];

	node_new();
	list_new(&v1, 1, (const int[]){ A1, A2 }, 2, 2);
	seal(&v1);
	sign_by(&v1, (const int[]){ A1, A2 }, 2);
	CHECK_OK(store_list(&v1, why, sizeof(why)));
	list_new(&v2, 2, (const int[]){ A1, A2 }, 2, 2);
	member_add(&v2, "011002", SAPPORO, TRUST_ROLE_PUBLISHER);
	seal(&v2);
	sign_by(&v2, (const int[]){ A1, A2 }, 2);
	CHECK_OK(store_list(&v2, why, sizeof(why)));

	/* The old list again: a replay. */
	CHECK_RC(store_list(&v1, why, sizeof(why)), MU_E_TRUST);
	CHECK_STREQ(why, "downgrade or replay: version 1 is not newer than 2");
	/* The same list twice is no change. */
	CHECK_RC(store_list(&v2, why, sizeof(why)), MU_E_EXISTS);
	CHECK_STREQ(why, "this node already has trust list version 2");
	/* Another list under the same number, however well signed. */
	list_new(&v2b, 2, (const int[]){ A1, A2 }, 2, 2);
	member_add(&v2b, "012025", HAKODATE, TRUST_ROLE_PUBLISHER);
	seal(&v2b);
	sign_by(&v2b, (const int[]){ A1, A2 }, 2);
	CHECK_RC(store_list(&v2b, why, sizeof(why)), MU_E_TRUST);
	CHECK_STREQ(why, "downgrade or replay: version 2 is not newer than 2");
	/* A well-signed list of another federation of the same anchors. */
	list_new(&other, 3, (const int[]){ A1, A2 }, 2, 2);
	free(other.list.federation);
	other.list.federation = strdup("staging");
	seal(&other);
	sign_by(&other, (const int[]){ A1, A2 }, 2);
	CHECK_RC(store_list(&other, why, sizeof(why)), MU_E_TRUST);
	CHECK_STREQ(why, "wrong federation: the list is of federation \"staging\", and version 2 "
		    "is of \"test-federation\"");
	trust_signed_fini(&v1);
	trust_signed_fini(&v2);
	trust_signed_fini(&v2b);
	trust_signed_fini(&other);
}

/* v1 with members 011002 (publisher), 012025 (publisher), 222127
 * (auditor only), stored in a fresh node. */
static void federation_v1(struct trust_signed *v1)
{
	char why[512];

	node_new();
	list_new(v1, 1, (const int[]){ A1, A2 }, 2, 2);
	member_add(v1, "011002", SAPPORO, TRUST_ROLE_PUBLISHER);
	member_add(v1, "012025", HAKODATE, TRUST_ROLE_PUBLISHER);
	member_add(v1, "222127", YAIZU, TRUST_ROLE_AUDITOR);
	seal(v1);
	sign_by(v1, (const int[]){ A1, A2 }, 2);
	CHECK_OK(store_list(v1, why, sizeof(why)));
}

/* The next version of s, edited by edit, signed by a1 and a2, stored. */
static void next_version(struct trust_signed *s, void (*edit)(struct trust_signed *, int64_t),
			 int64_t at)
{
	char why[512];
	int next;

	edit(s, at);
	CHECK_OK(trust_redraft(s, t0, &next, why, sizeof(why)));
	CHECK(next == 1 && s->nsigs == 0);
	sign_by(s, (const int[]){ A1, A2 }, 2);
	CHECK_OK(store_list(s, why, sizeof(why)));
}

static void rotate_sapporo(struct trust_signed *s, int64_t at)
{
	member_rotate(s, "011002", SAPPORO_NEW, at);
}

static void test_key_rotation(void)
{
	struct trust_signed s;
	int64_t retire = t0 + 2 * HOUR;
	char why[512], want[512];

	federation_v1(&s);
	CHECK_OK(head_check(NULL, "011002", SAPPORO, 1, t0 + HOUR, why, sizeof(why)));
	next_version(&s, rotate_sapporo, retire);
	CHECK(s.list.version == 2);

	/* Heads of the old key from before the rotation stay valid... */
	CHECK_OK(head_check(NULL, "011002", SAPPORO, 1, t0 + HOUR, why, sizeof(why)));
	CHECK_OK(head_check(NULL, "011002", SAPPORO, 2, retire - 1, why, sizeof(why)));
	/* ...later ones are refused, under either version. */
	snprintf(want, sizeof(want), "key %s of member 011002 was retired at %s (rotated) in trust "
		 "list version 2; heads it signs dated from then on do not count, and this one is "
		 "dated %s", kid(SAPPORO), when(retire), when(retire));
	CHECK_RC(head_check(NULL, "011002", SAPPORO, 1, retire, why, sizeof(why)), MU_E_TRUST);
	CHECK_STREQ(why, want);
	CHECK_RC(head_check(NULL, "011002", SAPPORO, 2, retire, why, sizeof(why)), MU_E_TRUST);
	CHECK_STREQ(why, want);
	/* The new key counts under version 2, not under version 1. */
	CHECK_OK(head_check(NULL, "011002", SAPPORO_NEW, 2, retire + HOUR, why, sizeof(why)));
	CHECK_RC(head_check(NULL, "011002", SAPPORO_NEW, 1, retire + HOUR, why, sizeof(why)),
		 MU_E_TRUST);
	snprintf(want, sizeof(want), "the head was signed by key %s, which is not a key of member "
		 "011002 in trust list version 1", kid(SAPPORO_NEW));
	CHECK_STREQ(why, want);
	/* Another member's key is no key of 011002. */
	CHECK_RC(head_check(NULL, "011002", HAKODATE, 2, retire + HOUR, why, sizeof(why)),
		 MU_E_TRUST);
	trust_signed_fini(&s);
}

static int64_t revoke_at;

static void revoke_hakodate(struct trust_signed *s, int64_t at)
{
	struct trust_member *m = trust_find_member(&s->list, "012025");

	m->revoked_us = at;
	free(m->revoked_reason);
	m->revoked_reason = strdup("signing key stolen");
}

static void test_revocation(void)
{
	struct trust_signed s;
	struct store_txn t;
	struct trust_cache *cache = NULL;
	char why[512], want[512], member[64];

	revoke_at = t0 + 3 * HOUR + 250000;
	federation_v1(&s);
	next_version(&s, revoke_hakodate, revoke_at);
	CHECK_OK(trust_cache_new(&cache));
	for (int pass = 0; pass < 2; pass++) {
		struct trust_cache *c = pass ? cache : NULL;
		/* Before the revocation: valid, under the version it was signed in. */
		CHECK_OK(head_check(c, "012025", HAKODATE, 1, revoke_at - 1, why, sizeof(why)));
		CHECK_OK(head_check(c, "012025", HAKODATE, 1, t0, why, sizeof(why)));
		/* At and after: refused, under any version. */
		snprintf(want, sizeof(want), "member 012025 was revoked at %s (signing key stolen) in "
			 "trust list version 2; heads dated from then on do not count, and this one "
			 "is dated %s", when(revoke_at), when(revoke_at));
		CHECK_RC(head_check(c, "012025", HAKODATE, 1, revoke_at, why, sizeof(why)), MU_E_TRUST);
		CHECK_STREQ(why, want);
		CHECK_RC(head_check(c, "012025", HAKODATE, 2, revoke_at + HOUR, why, sizeof(why)),
			 MU_E_TRUST);
		CHECK(strstr(why, "member 012025 was revoked at") == why);
		/* Other members are untouched. */
		CHECK_OK(head_check(c, "011002", SAPPORO, 2, revoke_at + HOUR, why, sizeof(why)));
	}
	trust_cache_destroy(&cache);
	CHECK(cache == NULL);

	/* The node no longer takes the revoked member's transport key. */
	CHECK_OK(store_read_begin(st, &t));
	CHECK_RC(trust_member_by_transport_key(&t, transport[HAKODATE], member, sizeof(member)),
		 -ENOENT);
	CHECK_OK(trust_member_by_transport_key(&t, transport[SAPPORO], member, sizeof(member)));
	CHECK_STREQ(member, "011002");
	store_read_end(&t);
	trust_signed_fini(&s);
}

static void expire_hakodate(struct trust_signed *s, int64_t at)
{
	trust_find_member(&s->list, "012025")->valid_until_us = at;
	trust_find_member(&s->list, "011002")->valid_from_us = at;
}

static void test_expired_member(void)
{
	struct trust_signed s;
	int64_t until = t0 + 5 * HOUR;
	char why[512], want[512];

	federation_v1(&s);
	next_version(&s, expire_hakodate, until);
	CHECK_OK(head_check(NULL, "012025", HAKODATE, 2, until - 1, why, sizeof(why)));
	CHECK_RC(head_check(NULL, "012025", HAKODATE, 2, until, why, sizeof(why)), MU_E_TRUST);
	snprintf(want, sizeof(want), "member 012025's validity ended at %s in trust list version 2, "
		 "and the head is dated %s", when(until), when(until));
	CHECK_STREQ(why, want);
	/* The end of a membership in the newest list reaches back to heads
	 * signed under version 1. */
	CHECK_RC(head_check(NULL, "012025", HAKODATE, 1, until + HOUR, why, sizeof(why)), MU_E_TRUST);
	/* Not yet valid. */
	CHECK_RC(head_check(NULL, "011002", SAPPORO, 2, until - 1, why, sizeof(why)), MU_E_TRUST);
	snprintf(want, sizeof(want), "member 011002 is valid from %s in trust list version 2, and "
		 "the head is dated %s", when(until), when(until - 1));
	CHECK_STREQ(why, want);
	trust_signed_fini(&s);
}

static void test_roles_and_membership(void)
{
	struct trust_signed s;
	char why[512], want[512];

	federation_v1(&s);
	CHECK_RC(head_check(NULL, "222127", YAIZU, 1, t0, why, sizeof(why)), MU_E_TRUST);
	CHECK_STREQ(why, "member 222127 does not hold the publisher role in trust list version 1");
	CHECK_RC(head_check(NULL, "372013", ROGUE1, 1, t0, why, sizeof(why)), MU_E_TRUST);
	CHECK_STREQ(why, "publisher 372013 is not a member in trust list version 1");
	CHECK_RC(head_check(NULL, "011002", SAPPORO, 5, t0, why, sizeof(why)), MU_E_TRUST);
	CHECK_STREQ(why, "head was signed under trust list version 5, which this node does not "
		    "have (its newest is 1)");
	/* Heads from before the federation: this node's own count, others' do not. */
	CHECK_OK(head_check(NULL, "011002", SAPPORO, 0, t0, why, sizeof(why)));
	CHECK_RC(head_check(NULL, "012025", HAKODATE, 0, t0, why, sizeof(why)), MU_E_TRUST);
	CHECK_STREQ(why, "the head of publisher 012025 was signed under no trust list (trust "
		    "version 0); only this node's own heads from before it joined the federation "
		    "count that way");
	/* A member signing with a rogue key. */
	CHECK_RC(head_check(NULL, "011002", ROGUE2, 1, t0, why, sizeof(why)), MU_E_TRUST);
	snprintf(want, sizeof(want), "the head was signed by key %s, which is not a key of member "
		 "011002 in trust list version 1", kid(ROGUE2));
	CHECK_STREQ(why, want);
	trust_signed_fini(&s);
}

static void test_no_trust_list(void)
{
	char why[512];

	node_new();
	CHECK_OK(head_check(NULL, "011002", SAPPORO, 0, t0, why, sizeof(why)));
	CHECK_RC(head_check(NULL, "012025", HAKODATE, 0, t0, why, sizeof(why)), MU_E_TRUST);
	CHECK(strstr(why, "has no trust list") != NULL);
}

static void test_damaged_files(void)
{
	struct trust_signed s, d;
	struct rec_buf *b;
	uint8_t *buf, *hit;
	size_t len;
	char path[512], why[512];
	FILE *f;

	node_new();
	list_new(&s, 1, (const int[]){ A1, A2 }, 2, 2);
	member_add(&s, "011002", SAPPORO, TRUST_ROLE_PUBLISHER);
	seal(&s);
	sign_by(&s, (const int[]){ A1, A2 }, 2);
	b = encoded(&s);
	snprintf(path, sizeof(path), "%s/list.bin", tmpdir);
	CHECK_OK(trust_file_write(path, b->data, b->len, 1));
	CHECK_RC(trust_file_write(path, b->data, b->len, 0), MU_E_EXISTS);
	CHECK_OK(trust_file_read(path, &buf, &len));
	REQUIRE(len == b->len && memcmp(buf, b->data, len) == 0);

	/* Whole: decodes and counts. */
	CHECK_OK(trust_decode(buf, len, &d, why, sizeof(why)));
	CHECK_OK(trust_accept_first(&d, why, sizeof(why)));
	trust_signed_fini(&d);

	/* Cut in the middle of the list: does not decode, and nothing is stored. */
	CHECK_RC(trust_decode(buf, len / 2, &d, why, sizeof(why)), MU_E_DECODE);
	trust_signed_fini(&d);
	char want[200];
	snprintf(want, sizeof(want), "not a signed trust list: the %zu bytes do not decode "
		 "(truncated, damaged, or another kind of file)", len / 2);
	CHECK_STREQ(why, want);
	CHECK_RC(trust_store_list(st, buf, len / 2, why, sizeof(why)), MU_E_DECODE);
	CHECK_STREQ(why, want);
	/* Cut before the last signature: decodes, and falls short of the threshold. */
	CHECK_RC(trust_store_list(st, buf, len - 2 - SIG_KEYID_LEN - 2 - SIG_SIGNATURE_LEN - 2, why,
				  sizeof(why)), MU_E_TRUST);
	CHECK_STREQ(why, "threshold not met: trust list version 1 has 1 valid signature by its "
		    "own anchor keys and needs 2");
	/* Empty, and text. */
	CHECK_RC(trust_decode(buf, 0, &d, why, sizeof(why)), MU_E_DECODE);
	trust_signed_fini(&d);
	CHECK_RC(trust_decode((const uint8_t *)"hello, world", 12, &d, why, sizeof(why)), MU_E_DECODE);
	trust_signed_fini(&d);
	/* One letter of the federation name changed: signatures fail. */
	REQUIRE((hit = memmem(buf, len, "test-federation", 15)) != NULL);
	hit[0] = 'b';
	CHECK_RC(trust_store_list(st, buf, len, why, sizeof(why)), MU_E_TRUST);
	CHECK_STREQ(why, "threshold not met: trust list version 1 has 0 valid signatures by its "
		    "own anchor keys and needs 2; 2 signatures by those anchors do not verify");
	hit[0] = 't';
	CHECK_OK(trust_store_list(st, buf, len, why, sizeof(why)));
	free(buf);

	/* Well-formed protobuf, malformed list: a 31-byte anchor key. */
	uint8_t short_key[31] = { 0 }, packed[128], outer[160];
	ProtobufCBinaryData anchor = { sizeof(short_key), short_key };
	Musubi__TrustList tl = MUSUBI__TRUST_LIST__INIT;
	Musubi__SignedTrustList stl = MUSUBI__SIGNED_TRUST_LIST__INIT;
	tl.version = 1;
	tl.threshold = 1;
	tl.n_anchor_keys = 1;
	tl.anchor_keys = &anchor;
	stl.list.len = musubi__trust_list__pack(&tl, packed);
	stl.list.data = packed;
	len = musubi__signed_trust_list__pack(&stl, outer);
	CHECK_RC(trust_decode(outer, len, &d, why, sizeof(why)), MU_E_DECODE);
	CHECK_STREQ(why, "the key of an anchor is 31 bytes, not 32");
	trust_signed_fini(&d);

	/* Not there, and too big. */
	snprintf(path, sizeof(path), "%s/none.bin", tmpdir);
	CHECK_RC(trust_file_read(path, &buf, &len), -ENOENT);
	snprintf(path, sizeof(path), "%s/big.bin", tmpdir);
	REQUIRE((f = fopen(path, "w")) != NULL);
	CHECK(fseek(f, (long)TRUST_MAX_BYTES + 1, SEEK_SET) == 0 && fputc(0, f) == 0);
	fclose(f);
	CHECK_RC(trust_file_read(path, &buf, &len), MU_E_TOOBIG);
	unlink(path);
	trust_signed_fini(&s);
}

static void test_malformed_lists(void)
{
	struct trust_signed s;
	char why[512];
	int next;

	setup();
	list_new(&s, 1, (const int[]){ A1, A2 }, 2, 3);
	CHECK_RC(trust_redraft(&s, t0, &next, why, sizeof(why)), MU_E_DECODE);
	CHECK_STREQ(why, "threshold 3 is not between 1 and the number of anchor keys (2)");
	s.list.threshold = 2;
	member_add(&s, "011002", SAPPORO, TRUST_ROLE_PUBLISHER);
	member_add(&s, "011002", HAKODATE, TRUST_ROLE_PUBLISHER);
	CHECK_RC(trust_redraft(&s, t0, &next, why, sizeof(why)), MU_E_DECODE);
	CHECK_STREQ(why, "member 011002 is listed twice");
	free(s.list.members[1].id);
	s.list.members[1].id = strdup("012025");
	sig_key_raw_public(keys[SAPPORO], s.list.members[1].signing_key);
	CHECK_RC(trust_redraft(&s, t0, &next, why, sizeof(why)), MU_E_DECODE);
	CHECK_STREQ(why, "members 011002 and 012025 have the same signing key");
	sig_key_raw_public(keys[HAKODATE], s.list.members[1].signing_key);
	free(s.list.members[1].id);
	s.list.members[1].id = strdup("Hakodate!");
	CHECK_RC(trust_redraft(&s, t0, &next, why, sizeof(why)), MU_E_DECODE);
	CHECK(strstr(why, "member id \"Hakodate!\" is not valid") == why);
	free(s.list.members[1].id);
	s.list.members[1].id = strdup("012025");
	s.list.members[1].valid_from_us = t0;
	s.list.members[1].valid_until_us = t0;
	CHECK_RC(trust_redraft(&s, t0, &next, why, sizeof(why)), MU_E_DECODE);
	CHECK_STREQ(why, "member 012025's validity period ends before it begins");
	s.list.members[1].valid_until_us = 0;

	/* An unsigned draft keeps its version; a signed one starts the next. */
	CHECK_OK(trust_redraft(&s, t0 + 5, &next, why, sizeof(why)));
	CHECK(next == 0 && s.list.version == 1 && s.list.issued_us == t0 + 5);
	sign_by(&s, (const int[]){ A1 }, 1);
	CHECK_OK(trust_redraft(&s, t0 + 6, &next, why, sizeof(why)));
	CHECK(next == 1 && s.list.version == 2 && s.nsigs == 0 && s.list.issued_us == t0 + 6);
	/* And what was encoded decodes to the same list. */
	struct trust_signed d;
	struct rec_buf *b = encoded(&s);
	CHECK_OK(trust_decode(b->data, b->len, &d, why, sizeof(why)));
	CHECK(d.list.version == 2 && d.list.nmembers == 2 && d.list.threshold == 2 &&
	      d.list.nanchors == 2 && d.len == s.len && memcmp(d.bytes, s.bytes, s.len) == 0);
	CHECK_STREQ(d.list.members[1].id, "012025");
	CHECK_STREQ(d.list.members[1].roles[0], "publisher");
	CHECK(memcmp(d.list.members[1].transport_key, transport[HAKODATE], 32) == 0);
	trust_signed_fini(&d);
	trust_signed_fini(&s);
}

static void test_current_members(void)
{
	struct trust_signed s;
	struct trust_peer *p = NULL;
	struct store_txn t;
	size_t n = 9;
	uint8_t tk[32];
	char ep[64];

	node_new();
	CHECK_OK(store_read_begin(st, &t));
	CHECK_RC(trust_members_current(&t, mu_now_us(), &p, &n), -ENOENT);
	CHECK(n == 0 && p == NULL);
	CHECK_RC(trust_member_by_transport_key(&t, transport[SAPPORO], ep, sizeof(ep)), -ENOENT);
	store_read_end(&t);

	federation_v1(&s);
	next_version(&s, revoke_hakodate, t0);
	CHECK_OK(store_read_begin(st, &t));
	CHECK_OK(trust_members_current(&t, mu_now_us(), &p, &n));
	REQUIRE(n == 2);
	CHECK_STREQ(p[0].id, "011002");
	CHECK(p[0].roles == TRUST_PUBLISHER);
	CHECK_STREQ(p[1].id, "222127");
	CHECK(p[1].roles == TRUST_AUDITOR);
	CHECK_STREQ(p[1].endpoint, "tcp://127.0.0.1:7101");
	free(p);
	/* Before the revocation, 012025 was current. */
	CHECK_OK(trust_members_current(&t, t0 - 1, &p, &n));
	CHECK(n == 3);
	free(p);
	CHECK_OK(trust_member_endpoint(&t, "222127", ep, sizeof(ep), tk));
	CHECK_STREQ(ep, "tcp://127.0.0.1:7101");
	CHECK(memcmp(tk, transport[YAIZU], 32) == 0);
	CHECK_RC(trust_member_endpoint(&t, "012025", ep, sizeof(ep), tk), -ENOENT);
	CHECK_RC(trust_member_endpoint(&t, "222127", ep, 4, tk), -ENOSPC);
	store_read_end(&t);
	trust_signed_fini(&s);
}

static void test_times(void)
{
	int64_t us;
	char buf[32];

	CHECK_OK(trust_parse_time("2026-04-01T09:30:00Z", 0, &us));
	CHECK(us == INT64_C(1775035800) * 1000000);
	CHECK_OK(trust_parse_time("2026-04-01T18:30:00+09:00", 0, &us));
	CHECK(us == INT64_C(1775035800) * 1000000);
	CHECK_OK(trust_parse_time("2026-04-01T09:30:00.25Z", 0, &us));
	CHECK(us == INT64_C(1775035800) * 1000000 + 250000);
	trust_format_time(us, buf, sizeof(buf));
	CHECK_STREQ(buf, "2026-04-01T09:30:00.250000Z");
	CHECK_OK(trust_parse_time("2026-04-01", 0, &us));
	trust_format_time(us, buf, sizeof(buf));
	CHECK_STREQ(buf, "2026-04-01T00:00:00Z");
	CHECK_OK(trust_parse_time("now", 42, &us));
	CHECK(us == 42);
	CHECK_RC(trust_parse_time("2026-04-01T09:30:00", 0, &us), MU_E_USAGE);
	CHECK_RC(trust_parse_time("2026-04-01 09:30:00Z", 0, &us), MU_E_USAGE);
	CHECK_RC(trust_parse_time("2026-04-01T09:30:00.Z", 0, &us), MU_E_USAGE);
	CHECK_RC(trust_parse_time("yesterday", 0, &us), MU_E_USAGE);
	CHECK_RC(trust_parse_time("2026-04-01T09:30:00Zjunk", 0, &us), MU_E_USAGE);
}

static void cleanup(void)
{
	store_close(&st);
	for (int i = 0; i < NKEYS; i++)
		sig_key_destroy(&keys[i]);
	for (int i = 0; i < 4; i++)
		rec_buf_fini(&bufs[i]);
	tu_rmrf(tmpdir);
}

CHECK_TESTS = {
	{ "threshold signatures", test_threshold },
	{ "unknown signer refused", test_unknown_signer },
	{ "anchor rotation across three versions", test_anchor_rotation },
	{ "downgrade and replay refused", test_downgrade },
	{ "key rotation keeps old heads", test_key_rotation },
	{ "revocation before and after", test_revocation },
	{ "expired member", test_expired_member },
	{ "roles and membership", test_roles_and_membership },
	{ "no trust list: own key only", test_no_trust_list },
	{ "truncated and garbled files", test_damaged_files },
	{ "malformed lists and redraft", test_malformed_lists },
	{ "current members for the node", test_current_members },
	{ "ISO times", test_times },
	{ NULL, NULL },
};
