/*
 * test_audit.c - the auditor's checks over hand-made logs: real keys, real
 * trust lists, entries from rec_entry_encode, heads from head_make_signed,
 * proofs from merkle.c. Each failure class (tampered, swapped, truncated,
 * wrong key, bad signature, revoked key, rolled back, forked, bad proof,
 * conflicting trust lists) must be caught with its own reason; witnesses
 * are counted; row proofs round-trip and refuse a flipped byte.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "check.h"
#include "cosign.h"
#include "head.h"
#include "merkle.h"
#include "musubi.pb-c.h"
#include "mu_err.h"
#include "rec.h"
#include "sig.h"
#include "store.h"
#include "testutil.h"
#include "trust.h"
#include "util.h"

#define HOUR ((int64_t)3600 * 1000000)
#define DS "011002/aed"
#define NMAX 16
#define HMAX 8

enum { ANCHOR, PUB, ROGUE, W1, W2, W3, NKEYS };
static struct sig_key *keys[NKEYS];
static uint8_t transport[NKEYS][32];
static char tmpdir[TU_DIR_MAX];
static int64_t t0;

/* Trust lists: tl1 (version 1), tl2 (version 2: 011002 revoked at
 * t0 + 150 min), other1 (another version 1 of the same anchor). */
static struct rec_buf tl1, tl2, other1;

/* ---- keys and trust lists ---- */

static void cleanup(void)
{
	for (int i = 0; i < NKEYS; i++)
		sig_key_destroy(&keys[i]);
	rec_buf_fini(&tl1);
	rec_buf_fini(&tl2);
	rec_buf_fini(&other1);
	tu_rmrf(tmpdir);
}

static void member_add(struct trust_signed *s, const char *id, int key, const char *role)
{
	tu_member_add(s, id, strcmp(id, "011002") == 0 ? "Sapporo" : id, "", keys[key],
		      transport[key], role);
}

static void make_list(struct rec_buf *out, uint64_t version, const char *federation,
		      int64_t revoked_us)
{
	struct trust_signed s;
	char why[256];
	int next;

	memset(&s, 0, sizeof(s));
	s.list.version = version;
	s.list.federation = strdup(federation);
	s.list.threshold = 1;
	s.list.anchors = calloc(1, sizeof(*s.list.anchors));
	s.list.nanchors = 1;
	sig_key_raw_public(keys[ANCHOR], s.list.anchors[0]);
	member_add(&s, "011002", PUB, TRUST_ROLE_PUBLISHER);
	member_add(&s, "012025", W1, TRUST_ROLE_PUBLISHER);
	member_add(&s, "012033", W2, TRUST_ROLE_RELAY);
	member_add(&s, "012041", W3, TRUST_ROLE_PUBLISHER);
	s.list.members[0].revoked_us = revoked_us;
	if (trust_redraft(&s, t0, &next, why, sizeof(why)) < 0 || trust_sign(&s, keys[ANCHOR]) < 0 ||
	    trust_encode(&s, out) < 0) {
		fprintf(stderr, "cannot make a trust list: %s\n", why);
		exit(1);
	}
	trust_signed_fini(&s);
}

static void setup(void)
{
	if (tmpdir[0] != '\0')
		return;
	if (tu_tmpdir(tmpdir, "audit") < 0)
		exit(1);
	atexit(cleanup);
	if (tu_keys_new(tmpdir, NKEYS, keys, transport) < 0)
		exit(1);
	t0 = tu_day_ago_us();
	make_list(&tl1, 1, "test", 0);
	make_list(&tl2, 2, "test", t0 + 150 * 60 * (int64_t)1000000);
	make_list(&other1, 1, "elsewhere", 0);
}

/* ---- logs ---- */

struct log {
	struct rec_buf entries[NMAX];
	merkle_hash leaves[NMAX];
	size_t n;
	struct rec_buf heads[HMAX];
	size_t nheads;
};

static void log_fini(struct log *l)
{
	for (size_t i = 0; i < NMAX; i++)
		rec_buf_fini(&l->entries[i]);
	for (size_t i = 0; i < HMAX; i++)
		rec_buf_fini(&l->heads[i]);
	memset(l, 0, sizeof(*l));
}

/* n entries of DS; rows say variant (two histories differ by it from
 * entry `from` on). Entries 6 and later use schema aed@2. */
static void log_entries(struct log *l, size_t n, const char *variant, size_t from)
{
	for (size_t i = 0; i < n; i++) {
		char key[32], row[96];
		snprintf(key, sizeof(key), "k%zu", i);
		snprintf(row, sizeof(row), "row:%s:%zu", i >= from ? variant : "a", i);
		struct rec_entry e = { .dataset = DS, .seq = i, .key = key, .key_len = strlen(key),
				       .schema_id = "aed", .schema_version = i < 6 ? 1 : 2,
				       .row = (const uint8_t *)row, .row_len = strlen(row),
				       .time_us = t0 + (int64_t)i };
		if (rec_entry_encode(&e, &l->entries[i]) < 0)
			exit(1);
		merkle_leaf_hash(l->entries[i].data, l->entries[i].len, l->leaves[i]);
	}
	l->n = n;
}

static void root_of(const struct log *l, uint64_t size, merkle_hash out)
{
	struct merkle_frontier f;

	merkle_frontier_init(&f);
	for (uint64_t i = 0; i < size; i++)
		merkle_frontier_append(&f, l->leaves[i], NULL, NULL);
	merkle_frontier_root(&f, out);
}

/* Sign a head of the log's first `size` entries with key, dated t0 + hours. */
static void log_head(struct log *l, uint64_t size, double hours, int key, uint64_t tv)
{
	struct rec_head h = { .dataset = DS, .size = size, .time_us = t0 + (int64_t)(hours * HOUR),
			      .trust_version = tv, .publisher = "011002" };

	root_of(l, size, h.root);
	if (head_make_signed(&h, keys[key], &l->heads[l->nheads++]) < 0)
		exit(1);
}

/* The usual log: 10 entries, heads at 4, 7, 10 one hour apart. */
static void log_usual(struct log *l, const char *variant, size_t from)
{
	log_entries(l, 10, variant, from);
	log_head(l, 4, 1, PUB, 1);
	log_head(l, 7, 2, PUB, 1);
	log_head(l, 10, 3, PUB, 1);
}

static int mem_get(void *ctx, unsigned level, uint64_t index, merkle_hash out)
{
	const struct log *l = ctx;
	merkle_hash a, b;

	if (level == 0) {
		memcpy(out, l->leaves[index], MERKLE_HASH_LEN);
		return 0;
	}
	mem_get(ctx, level - 1, 2 * index, a);
	mem_get(ctx, level - 1, 2 * index + 1, b);
	merkle_node_hash(a, b, out);
	return 0;
}

/* What one node serves: a log's heads, its first nentries entries, the
 * trust lists given, and the proofs the node would give. */
struct tsrc {
	struct audit_source s;
	struct audit_blob heads[HMAX], entries[NMAX], trust[4], cosigs[16];
	struct audit_consistency proofs[HMAX];
	merkle_hash hashes[HMAX][MERKLE_MAX_DEPTH];
	uint8_t copies[NMAX][256];   /* room for entries a test alters */
};

static void src_from(struct tsrc *t, const char *name, const struct log *l, size_t nentries,
		     const struct rec_buf *tl, size_t ntl)
{
	uint64_t *sizes;
	size_t n;

	memset(t, 0, sizeof(*t));
	t->s.name = name;
	for (size_t i = 0; i < l->nheads; i++)
		t->heads[i] = (struct audit_blob){ l->heads[i].data, l->heads[i].len };
	for (size_t i = 0; i < nentries; i++) {
		memcpy(t->copies[i], l->entries[i].data, l->entries[i].len);
		t->entries[i] = (struct audit_blob){ t->copies[i], l->entries[i].len };
	}
	for (size_t i = 0; i < ntl; i++)
		t->trust[i] = (struct audit_blob){ tl[i].data, tl[i].len };
	t->s.heads = t->heads;
	t->s.nheads = l->nheads;
	t->s.entries = t->entries;
	t->s.nentries = nentries;
	t->s.trust = t->trust;
	t->s.ntrust = ntl;
	t->s.cosigs = t->cosigs;
	t->s.proofs = t->proofs;
	if (audit_head_sizes(t->heads, l->nheads, &sizes, &n) < 0)
		exit(1);
	for (size_t i = 1; i < n; i++) {
		struct audit_consistency *p = &t->proofs[t->s.nproofs++];
		p->old_size = sizes[i - 1];
		p->new_size = sizes[i];
		p->hashes = t->hashes[i];
		if (merkle_consistency_proof(p->old_size, p->new_size, mem_get, (void *)l, p->hashes,
					     &p->n) < 0)
			exit(1);
	}
	free(sizes);
}

static struct audit_report rep;

/* Audit the sources (their struct audit_source are copied). */
static int run(const struct audit_blob *pinned, unsigned min_witnesses, struct tsrc *a,
	       struct tsrc *b)
{
	struct audit_source src[2];
	struct audit_params p = { DS, pinned, min_witnesses };
	int rc;

	audit_report_fini(&rep);
	src[0] = a->s;
	if (b != NULL)
		src[1] = b->s;
	rc = audit_run(&p, src, b ? 2 : 1, &rep);
	if (getenv("VERBOSE"))
		for (size_t i = 0; i < rep.nproblems; i++)
			printf("  | %s: %s\n", audit_kind_name(rep.problems[i].kind),
			       rep.problems[i].message);
	return rc;
}

/* The kinds of problem found, as bits. */
static unsigned kinds(void)
{
	unsigned k = 0;

	for (size_t i = 0; i < rep.nproblems; i++)
		k |= 1u << rep.problems[i].kind;
	return k;
}

/* The first problem of kind about size (UINT64_MAX: any), or NULL. */
static const struct audit_problem *found(enum audit_kind kind, uint64_t size)
{
	for (size_t i = 0; i < rep.nproblems; i++)
		if (rep.problems[i].kind == kind && (size == UINT64_MAX || rep.problems[i].size == size))
			return &rep.problems[i];
	return NULL;
}

static int says(enum audit_kind kind, uint64_t size, const char *text)
{
	const struct audit_problem *p = found(kind, size);
	return p != NULL && strstr(p->message, text) != NULL;
}

static struct audit_blob blob(const struct rec_buf *b)
{
	return (struct audit_blob){ b->data, b->len };
}

/* ---- cases ---- */

static void test_good_log(void)
{
	struct log l = { 0 };
	struct tsrc a;
	uint8_t raw[32];

	setup();
	log_usual(&l, "a", 0);
	src_from(&a, "A", &l, 10, &tl1, 1);
	struct audit_blob pin = blob(&tl1);
	CHECK_OK(run(&pin, 0, &a, NULL));
	CHECK(rep.nproblems == 0);
	REQUIRE(rep.nheads == 3);
	for (size_t h = 0; h < 3; h++)
		CHECK(rep.heads[h].state == AUDIT_HEAD_VERIFIED && rep.heads[h].history &&
		      rep.heads[h].seen_by == 1);
	CHECK(rep.heads[0].size == 4 && rep.heads[2].size == 10);
	CHECK(rep.reference == 0 && rep.entries == 10);
	CHECK_STREQ(rep.publisher, "011002");
	CHECK_STREQ(rep.publisher_name, "Sapporo");
	CHECK(rep.trust_first == 1 && rep.trust_newest == 1 && rep.trust_pinned && rep.ntrust == 1);
	REQUIRE(rep.nkeys == 1);
	sig_key_raw_public(keys[PUB], raw);
	CHECK(memcmp(rep.keys[0].raw, raw, 32) == 0 && rep.keys[0].heads == 3);
	REQUIRE(rep.nschemas == 2);
	CHECK_STREQ(rep.schemas[0].ref, "aed@1");
	CHECK(rep.schemas[0].entries == 6 && rep.schemas[0].first_seq == 0 && rep.schemas[0].last_seq == 5);
	CHECK_STREQ(rep.schemas[1].ref, "aed@2");
	CHECK(rep.schemas[1].entries == 4 && rep.schemas[1].last_seq == 9);
	CHECK(rep.nnotes == 0);

	/* Without a list of the auditor's own, the node's first one anchors the
	 * chain, and the report says so. */
	CHECK_OK(run(NULL, 0, &a, NULL));
	CHECK(!rep.trust_pinned && rep.nnotes == 1 && strstr(rep.notes[0], "--trust") != NULL);
	log_fini(&l);
}

static void test_behind(void)
{
	struct log l = { 0 }, part = { 0 };
	struct tsrc a, b;

	setup();
	log_usual(&l, "a", 0);
	log_entries(&part, 7, "a", 0);
	log_head(&part, 4, 1, PUB, 1);
	log_head(&part, 7, 2, PUB, 1);
	src_from(&a, "A", &l, 10, &tl1, 1);
	src_from(&b, "B", &part, 7, &tl1, 1);
	CHECK_OK(run(NULL, 0, &a, &b));
	REQUIRE(rep.nheads == 3);
	CHECK(rep.heads[0].seen_by == 3 && rep.heads[1].seen_by == 3 && rep.heads[2].seen_by == 1);
	CHECK(!rep.nodes[0].behind && rep.nodes[1].behind && rep.nodes[1].newest == 7);
	CHECK(rep.reference == 0);
	log_fini(&l);
	log_fini(&part);
}

/* Change "row:" of entry i into "rXw:": the entry still decodes. */
static void tamper(struct tsrc *t, size_t i)
{
	uint8_t *p = memmem(t->entries[i].data, t->entries[i].len, "row:", 4);
	if (p == NULL)
		exit(1);
	p[1] = 'X';
}

static void test_tampered_entry(void)
{
	struct log l = { 0 };
	struct tsrc a, b;

	setup();
	log_usual(&l, "a", 0);
	src_from(&a, "A", &l, 10, &tl1, 1);
	src_from(&b, "B", &l, 10, &tl1, 1);
	tamper(&b, 5);
	CHECK_RC(run(NULL, 0, &b, NULL), MU_E_CORRUPT);
	CHECK(kinds() == 1u << AUDIT_ROOT);
	CHECK(says(AUDIT_ROOT, 7, "entries 4 to 6 were altered"));
	CHECK(says(AUDIT_ROOT, 0, "later heads"));
	CHECK(rep.heads[0].state == AUDIT_HEAD_VERIFIED && rep.heads[1].state == AUDIT_HEAD_UNCHECKED);

	/* Beside a node that serves the log as signed: the entry is named. */
	CHECK_RC(run(NULL, 0, &a, &b), MU_E_CORRUPT);
	CHECK(kinds() == 1u << AUDIT_ROOT);
	CHECK(says(AUDIT_ROOT, 7, "entry 5 differs from what A serves"));
	REQUIRE(rep.nproblems > 0);
	CHECK(rep.problems[0].source == 1);
	CHECK(rep.reference == 0 && rep.heads[2].state == AUDIT_HEAD_VERIFIED);
	log_fini(&l);
}

static void test_swapped_entries(void)
{
	struct log l = { 0 };
	struct tsrc a;

	setup();
	log_usual(&l, "a", 0);
	src_from(&a, "A", &l, 10, &tl1, 1);
	struct audit_blob t = a.entries[2];
	a.entries[2] = a.entries[3];
	a.entries[3] = t;
	CHECK_RC(run(NULL, 0, &a, NULL), MU_E_CORRUPT);
	CHECK(kinds() == ((1u << AUDIT_ENTRY) | (1u << AUDIT_ROOT)));
	CHECK(says(AUDIT_ENTRY, 2, "entry 2 claims to be 011002/aed #3: entries were swapped"));
	CHECK(says(AUDIT_ENTRY, 3, "claims to be 011002/aed #2"));
	CHECK(says(AUDIT_ROOT, 4, "entries 0 to 3"));
	log_fini(&l);
}

static void test_truncated(void)
{
	struct log l = { 0 };
	struct tsrc a;

	setup();
	log_usual(&l, "a", 0);
	src_from(&a, "A", &l, 6, &tl1, 1);
	CHECK_RC(run(NULL, 0, &a, NULL), MU_E_CORRUPT);
	CHECK(kinds() == 1u << AUDIT_TRUNCATED);
	CHECK(says(AUDIT_TRUNCATED, 10, "serves 6 entries, but its newest head covers 10"));
	CHECK(rep.heads[0].state == AUDIT_HEAD_VERIFIED && rep.heads[2].state == AUDIT_HEAD_UNCHECKED);
	CHECK(rep.entries == 4);
	log_fini(&l);
}

static void test_wrong_key(void)
{
	struct log l = { 0 };
	struct tsrc a;

	setup();
	log_entries(&l, 10, "a", 0);
	log_head(&l, 4, 1, PUB, 1);
	log_head(&l, 7, 2, PUB, 1);
	log_head(&l, 10, 3, ROGUE, 1);
	src_from(&a, "A", &l, 10, &tl1, 1);
	CHECK_RC(run(NULL, 0, &a, NULL), MU_E_CORRUPT);
	CHECK(kinds() == 1u << AUDIT_TRUST);
	CHECK(says(AUDIT_TRUST, 10, "which is not a key of member 011002"));
	CHECK(rep.nheads == 2);

	/* A signature that does not verify: the node serves what the publisher
	 * did not sign. The signature is the last 64 bytes of a SignedHead. */
	l.heads[1].data[l.heads[1].len - 1] ^= 1;
	CHECK_RC(run(NULL, 0, &a, NULL), MU_E_CORRUPT);
	CHECK(says(AUDIT_SIGNATURE, 7, "signature does not verify"));
	log_fini(&l);
}

static void test_revoked_key(void)
{
	struct log l = { 0 };
	struct tsrc a;
	struct rec_buf both[2] = { tl1, tl2 };

	setup();
	log_usual(&l, "a", 0);
	src_from(&a, "A", &l, 10, both, 2);
	CHECK_RC(run(NULL, 0, &a, NULL), MU_E_CORRUPT);
	CHECK(kinds() == 1u << AUDIT_TRUST);
	CHECK(says(AUDIT_TRUST, 10, "was revoked at"));
	CHECK(found(AUDIT_TRUST, 7) == NULL);
	CHECK(rep.trust_newest == 2 && rep.nheads == 2);
	log_fini(&l);
}

static void test_rolled_back(void)
{
	struct log l = { 0 };
	struct tsrc a;

	setup();
	/* A newer head with a smaller size, served after the larger one. */
	log_entries(&l, 10, "a", 0);
	log_head(&l, 4, 1, PUB, 1);
	log_head(&l, 10, 2, PUB, 1);
	log_head(&l, 7, 3, PUB, 1);
	src_from(&a, "A", &l, 10, &tl1, 1);
	CHECK_RC(run(NULL, 0, &a, NULL), MU_E_CORRUPT);
	CHECK(kinds() == 1u << AUDIT_ROLLBACK);
	CHECK(says(AUDIT_ROLLBACK, 7, "serves the head at size 7 after the head at size 10"));
	CHECK(says(AUDIT_ROLLBACK, 10, "the head at size 7"));
	log_fini(&l);

	/* Served in order of size, but the time goes backwards. */
	log_entries(&l, 10, "a", 0);
	log_head(&l, 4, 1, PUB, 1);
	log_head(&l, 7, 3, PUB, 1);
	log_head(&l, 10, 2, PUB, 1);
	src_from(&a, "A", &l, 10, &tl1, 1);
	CHECK_RC(run(NULL, 0, &a, NULL), MU_E_CORRUPT);
	CHECK(kinds() == 1u << AUDIT_ROLLBACK);
	CHECK(says(AUDIT_ROLLBACK, 10, "rolled back, or its time went backwards"));
	log_fini(&l);
}

static void test_fork(void)
{
	struct log l = { 0 }, other = { 0 };
	struct tsrc a, b;

	setup();
	/* The publisher shows A one history and B another from entry 5 on. */
	log_usual(&l, "a", 0);
	log_usual(&other, "b", 5);
	src_from(&a, "A", &l, 10, &tl1, 1);
	src_from(&b, "B", &other, 10, &tl1, 1);
	CHECK_OK(run(NULL, 0, &b, NULL));
	CHECK_RC(run(NULL, 0, &a, &b), MU_E_CORRUPT);
	CHECK(kinds() == 1u << AUDIT_FORK);
	CHECK(says(AUDIT_FORK, 7, "two different heads at size 7"));
	CHECK(says(AUDIT_FORK, 10, "two different heads at size 10"));
	REQUIRE(rep.nheads == 5);
	CHECK(rep.heads[0].state == AUDIT_HEAD_VERIFIED && rep.heads[0].seen_by == 3);
	CHECK(rep.heads[1].state == AUDIT_HEAD_FORKED && rep.heads[4].state == AUDIT_HEAD_FORKED);
	CHECK(rep.nforks == 2);
	log_fini(&other);

	/* B's history is shorter and ends at another size: A's entries show
	 * that B's head is not a prefix of A's. */
	log_entries(&other, 8, "b", 5);
	log_head(&other, 4, 1, PUB, 1);
	log_head(&other, 8, 2.5, PUB, 1);
	src_from(&b, "B", &other, 8, &tl1, 1);
	CHECK_RC(run(NULL, 0, &a, &b), MU_E_CORRUPT);
	CHECK(kinds() == 1u << AUDIT_FORK);
	CHECK(says(AUDIT_FORK, 8, "is not a prefix of the head at size 10"));
	CHECK(rep.reference == 0);
	/* B is not behind A: it was shown another history. */
	CHECK(!rep.nodes[1].behind && rep.nnotes == 1);
	log_fini(&l);
	log_fini(&other);
}

static void test_bad_consistency_proof(void)
{
	struct log l = { 0 };
	struct tsrc a;

	setup();
	log_usual(&l, "a", 0);
	src_from(&a, "A", &l, 10, &tl1, 1);
	REQUIRE(a.s.nproofs == 2 && a.proofs[0].n > 0);
	a.proofs[0].hashes[0][0] ^= 1;
	CHECK_RC(run(NULL, 0, &a, NULL), MU_E_CORRUPT);
	CHECK(kinds() == 1u << AUDIT_CONSISTENCY);
	CHECK(says(AUDIT_CONSISTENCY, 7, "from size 4 to 7 that does not verify"));
	a.proofs[0].hashes[0][0] ^= 1;
	a.s.nproofs = 1;
	CHECK_RC(run(NULL, 0, &a, NULL), MU_E_CORRUPT);
	CHECK(says(AUDIT_CONSISTENCY, 10, "gave no consistency proof from size 7 to 10"));
	a.s.nproofs = 2;
	a.proofs[1].error = "busy";
	CHECK_RC(run(NULL, 0, &a, NULL), MU_E_CORRUPT);
	CHECK(says(AUDIT_CONSISTENCY, 10, "did not serve the consistency proof from size 7 to 10: busy"));
	log_fini(&l);
}

static void test_trust_lists(void)
{
	struct log l = { 0 };
	struct tsrc a, b;

	setup();
	log_usual(&l, "a", 0);
	src_from(&a, "A", &l, 10, &tl1, 1);
	src_from(&b, "B", &l, 10, &other1, 1);
	CHECK_RC(run(NULL, 0, &a, &b), MU_E_CORRUPT);
	CHECK(kinds() == 1u << AUDIT_TRUST_LIST);
	CHECK(says(AUDIT_TRUST_LIST, 1, "A and B serve two different trust lists of version 1"));

	/* The auditor trusts another list than the node serves. */
	struct audit_blob pin = blob(&other1);
	CHECK_RC(run(&pin, 0, &a, NULL), MU_E_CORRUPT);
	CHECK(says(AUDIT_TRUST_LIST, 0, "differs from the one you trust"));

	/* No trust list at all: nothing counts. */
	a.s.ntrust = 0;
	CHECK_RC(run(NULL, 0, &a, NULL), MU_E_CORRUPT);
	CHECK(says(AUDIT_TRUST_LIST, 0, "no trust list"));
	CHECK(says(AUDIT_TRUST, 4, "no accepted trust list"));
	log_fini(&l);
}

/* A SignedCosignature by witness (signed with key) of the log's head h. */
static struct audit_blob cosign_by(struct rec_buf *out, const char *witness, int key,
				   const struct rec_buf *signed_head, const char *dataset,
				   uint64_t trust_version, int64_t time_us)
{
	Musubi__Cosignature co = MUSUBI__COSIGNATURE__INIT;
	Musubi__SignedCosignature sc = MUSUBI__SIGNED_COSIGNATURE__INIT;
	struct head_signed hs;
	uint8_t sha[32], id[32], sig[64];
	uint8_t *cb;

	if (head_decode(signed_head->data, signed_head->len, &hs) < 0)
		exit(1);
	sig_sha256(hs.sh->head, hs.sh->head_len, sha);
	sig_key_id(keys[key], id);
	co.witness = (char *)witness;
	co.dataset = (char *)dataset;
	co.size = hs.hd->h.size;
	co.head_sha256 = (ProtobufCBinaryData){ 32, sha };
	co.time_us = time_us != 0 ? time_us : hs.hd->h.time_us + 1000;
	co.trust_version = trust_version;
	co.key_id = (ProtobufCBinaryData){ 32, id };
	head_signed_fini(&hs);
	cb = malloc(musubi__cosignature__get_packed_size(&co));
	size_t n = musubi__cosignature__pack(&co, cb);
	if (sig_sign(keys[key], SIG_CTX_COSIGN, cb, n, sig) < 0)
		exit(1);
	sc.cosig = (ProtobufCBinaryData){ n, cb };
	sc.signature = (ProtobufCBinaryData){ 64, sig };
	rec_buf_fini(out);
	out->data = malloc(musubi__signed_cosignature__get_packed_size(&sc));
	out->len = out->cap = musubi__signed_cosignature__pack(&sc, out->data);
	free(cb);
	return blob(out);
}

/* The same, under trust version 1, dated just after the head. */
static struct audit_blob cosign(struct rec_buf *out, const char *witness, int key,
				const struct rec_buf *signed_head, const char *dataset)
{
	return cosign_by(out, witness, key, signed_head, dataset, 1, 0);
}

static void test_witnesses(void)
{
	struct log l = { 0 }, other = { 0 };
	struct tsrc a, b;
	struct rec_buf cs[10] = { { 0 } };

	setup();
	log_usual(&l, "a", 0);
	log_entries(&other, 5, "b", 0);
	log_head(&other, 5, 1.5, PUB, 1);
	src_from(&a, "A", &l, 10, &tl1, 1);
	src_from(&b, "B", &l, 10, &tl1, 1);
	a.cosigs[a.s.ncosigs++] = cosign(&cs[0], "012025", W1, &l.heads[2], DS);      /* valid */
	a.cosigs[a.s.ncosigs++] = cosign(&cs[1], "012033", W2, &l.heads[2], DS);      /* valid */
	a.cosigs[a.s.ncosigs++] = cosign(&cs[2], "012033", W2, &l.heads[1], DS);      /* valid */
	b.cosigs[b.s.ncosigs++] = blob(&cs[1]);                                        /* duplicate */
	a.cosigs[a.s.ncosigs++] = cosign(&cs[3], "012041", ROGUE, &l.heads[2], DS);   /* wrong key */
	a.cosigs[a.s.ncosigs++] = cosign(&cs[4], "011002", PUB, &l.heads[2], DS);     /* publisher */
	a.cosigs[a.s.ncosigs++] = cosign(&cs[5], "999999", ROGUE, &l.heads[2], DS);   /* no member */
	a.cosigs[a.s.ncosigs++] = cosign(&cs[6], "012025", W1, &l.heads[2], "011002/x"); /* other */
	a.cosigs[a.s.ncosigs++] = cosign(&cs[7], "012025", W1, &other.heads[0], DS);  /* size 5 */
	cs[8] = cs[0];
	cs[8].data = malloc(cs[0].len);
	memcpy(cs[8].data, cs[0].data, cs[0].len);
	cs[8].data[cs[8].len - 1] ^= 1;                                                /* bad sig */
	b.cosigs[b.s.ncosigs++] = blob(&cs[8]);

	CHECK_OK(run(NULL, 2, &b, &a));
	REQUIRE(rep.nheads == 3);
	REQUIRE(rep.heads[2].nwitnesses == 2);
	CHECK_STREQ(rep.heads[2].witnesses[0], "012025");
	CHECK_STREQ(rep.heads[2].witnesses[1], "012033");
	REQUIRE(rep.heads[1].nwitnesses == 1);
	CHECK_STREQ(rep.heads[1].witnesses[0], "012033");
	CHECK(rep.heads[0].nwitnesses == 0);
	/* A later head of the history vouches for its prefixes. */
	CHECK(rep.heads[2].witnessed == 2 && rep.heads[1].witnessed == 2 && rep.heads[0].witnessed == 2);
	CHECK(rep.cosigs_valid == 4);      /* W1, W2 twice, and the publisher's own */
	CHECK(rep.cosigs_invalid == 4);    /* bad signature, wrong key, no member, other dataset */
	CHECK(rep.cosigs_unmatched == 1);
	CHECK(rep.nodes[0].cosigs == 2 && rep.nodes[1].cosigs == 8);

	CHECK_RC(run(NULL, 3, &a, &b), MU_E_CORRUPT);
	CHECK(kinds() == 1u << AUDIT_WITNESSES);
	CHECK(says(AUDIT_WITNESSES, 4, "has 2 witnesses, fewer than the 3 asked for"));
	CHECK(found(AUDIT_WITNESSES, 10) != NULL);

	/* A witness that cosigned another head of a size the nodes served was
	 * shown another history. */
	log_fini(&other);
	log_usual(&other, "b", 5);
	b.cosigs[b.s.ncosigs++] = cosign(&cs[9], "012041", W3, &other.heads[2], DS);
	CHECK_RC(run(NULL, 0, &a, &b), MU_E_CORRUPT);
	CHECK(kinds() == 1u << AUDIT_WITNESS_CONFLICT);
	CHECK(says(AUDIT_WITNESS_CONFLICT, 10, "witness 012041 cosigned a head at size 10"));
	for (size_t i = 0; i < 10; i++)
		rec_buf_fini(&cs[i]);
	log_fini(&l);
	log_fini(&other);
}

/* The next version of the list in buf, edited by edit, signed and encoded
 * into out. */
static void next_list(const struct rec_buf *buf, int64_t issued_us,
		      void (*edit)(struct trust_list *), struct rec_buf *out)
{
	struct trust_signed s;
	char why[256];
	int next;

	REQUIRE(trust_decode(buf->data, buf->len, &s, why, sizeof(why)) == 0);
	edit(&s.list);
	CHECK_OK(trust_redraft(&s, issued_us, &next, why, sizeof(why)));
	CHECK(next == 1);
	CHECK_OK(trust_sign(&s, keys[ANCHOR]));
	CHECK_OK(trust_encode(&s, out));
	trust_signed_fini(&s);
}

/* 012025 rotates from key W1 to key ROGUE, retiring W1 at t0 + 2 h. */
static void rotate_012025(struct trust_list *l)
{
	struct trust_member *m = trust_find_member(l, "012025");
	struct trust_retired *r;

	l->retired = realloc(l->retired, (l->nretired + 1) * sizeof(*r));
	r = &l->retired[l->nretired++];
	r->member = strdup("012025");
	r->reason = strdup("rotated");
	memcpy(r->signing_key, m->signing_key, SIG_PUBKEY_LEN);
	r->retired_us = t0 + 2 * HOUR;
	sig_key_raw_public(keys[ROGUE], m->signing_key);
}

/* 012033 is revoked at t0 + 3 h. */
static void revoke_012033(struct trust_list *l)
{
	trust_find_member(l, "012033")->revoked_us = t0 + 3 * HOUR;
}

static int put_lists(struct store_txn *t, void *arg)
{
	const struct rec_buf *tl = arg;
	char why[256];
	int rc = 0;

	for (int i = 0; i < 3 && rc == 0; i++)
		if ((rc = trust_store_list_txn(t, tl[i].data, tl[i].len, why, sizeof(why))) < 0)
			fprintf(stderr, "trust list %d refused: %s\n", i + 1, why);
	return rc;
}

/*
 * One rule for witnesses: a node (cosign_check, holding trust lists 1 to 3)
 * and the auditor (served the same lists) must take and refuse the same
 * cosignatures. wants: 1 if both must count it. The node's reason for a
 * refusal must name `reason`.
 */
static void judged_alike(struct store *st, const struct rec_buf *tl, const struct log *l,
			 const struct audit_blob *c, int wants, const char *reason)
{
	struct store_txn t;
	struct cosign co;
	struct tsrc a;
	char why[512] = "";
	int rc;

	REQUIRE(store_read_begin(st, &t) == 0);
	rc = cosign_check(&t, c->data, c->len, &co, why, sizeof(why));
	store_read_end(&t);
	if (wants) {
		CHECK_OK(rc);
	} else {
		CHECK_RC(rc, MU_E_TRUST);
		CHECK(reason == NULL || strstr(why, reason) != NULL);
		if (reason != NULL && strstr(why, reason) == NULL)
			fprintf(stderr, "  node said: %s\n", why);
	}
	src_from(&a, "A", l, 10, tl, 3);
	a.cosigs[a.s.ncosigs++] = *c;
	CHECK_OK(run(NULL, 0, &a, NULL));
	CHECK(rep.cosigs_valid == (wants ? 1u : 0u));
	CHECK(rep.cosigs_invalid == (wants ? 0u : 1u));
	CHECK(rep.heads[2].nwitnesses == (wants ? 1u : 0u));
}

static void test_witness_rotation(void)
{
	struct log l = { 0 };
	struct rec_buf tl[3] = { { 0 } }, cs = { 0 };
	struct store *st = NULL;
	char path[TU_DIR_MAX + 32];

	setup();
	log_usual(&l, "a", 0);
	tl[0] = tl1;
	next_list(&tl1, t0 + 2 * HOUR, rotate_012025, &tl[1]);
	next_list(&tl[1], t0 + 3 * HOUR, revoke_012033, &tl[2]);
	snprintf(path, sizeof(path), "%s/witness-node", tmpdir);
	REQUIRE(store_open(path, STORE_CREATE, &st) == 0);
	REQUIRE(store_write(st, put_lists, tl) == 0);

	/* The old key, under the old list, before its retirement: both count
	 * it, though the node's newest list (3) names another key. */
	struct audit_blob c = cosign_by(&cs, "012025", W1, &l.heads[2], DS, 1, t0 + HOUR);
	judged_alike(st, tl, &l, &c, 1, NULL);
	/* The new key under the rotation's list. */
	c = cosign_by(&cs, "012025", ROGUE, &l.heads[2], DS, 2, t0 + 5 * HOUR / 2);
	judged_alike(st, tl, &l, &c, 1, NULL);
	/* The old key under the rotation's list, after its retirement. */
	c = cosign_by(&cs, "012025", W1, &l.heads[2], DS, 2, t0 + 5 * HOUR / 2);
	judged_alike(st, tl, &l, &c, 0, "was retired at");
	/* The old key after its retirement, naming the old list. */
	c = cosign_by(&cs, "012025", W1, &l.heads[2], DS, 1, t0 + 5 * HOUR / 2);
	judged_alike(st, tl, &l, &c, 0, "was retired at");
	/* The new key under the old list: the key of the newest list. */
	c = cosign_by(&cs, "012025", ROGUE, &l.heads[2], DS, 1, t0 + 5 * HOUR / 2);
	judged_alike(st, tl, &l, &c, 1, NULL);
	/* A revoked witness: before its revocation it counts, after it not,
	 * whichever list it names. */
	c = cosign_by(&cs, "012033", W2, &l.heads[2], DS, 2, t0 + 5 * HOUR / 2);
	judged_alike(st, tl, &l, &c, 1, NULL);
	c = cosign_by(&cs, "012033", W2, &l.heads[2], DS, 3, t0 + 7 * HOUR / 2);
	judged_alike(st, tl, &l, &c, 0, "was revoked at");
	c = cosign_by(&cs, "012033", W2, &l.heads[2], DS, 1, t0 + 7 * HOUR / 2);
	judged_alike(st, tl, &l, &c, 0, "was revoked at");
	/* A list version the node does not hold, and none. */
	c = cosign_by(&cs, "012025", ROGUE, &l.heads[2], DS, 4, t0 + 5 * HOUR / 2);
	judged_alike(st, tl, &l, &c, 0, "which this node does not have");
	c = cosign_by(&cs, "012025", W1, &l.heads[2], DS, 0, t0 + HOUR);
	judged_alike(st, tl, &l, &c, 0, "which this node does not have");

	store_close(&st);
	rec_buf_fini(&cs);
	rec_buf_fini(&tl[1]);
	rec_buf_fini(&tl[2]);
	log_fini(&l);
	audit_report_fini(&rep);
}

static void test_fetch_error(void)
{
	struct log l = { 0 };
	struct tsrc a, b;

	setup();
	log_usual(&l, "a", 0);
	src_from(&a, "A", &l, 10, &tl1, 1);
	memset(&b, 0, sizeof(b));
	b.s.name = "B";
	b.s.error = "no answer within 5000 ms";
	CHECK_RC(run(NULL, 0, &a, &b), MU_E_CORRUPT);
	CHECK(kinds() == 1u << AUDIT_FETCH);
	CHECK(says(AUDIT_FETCH, 0, "B: no answer within 5000 ms"));
	CHECK(rep.reference == 0 && rep.entries == 10);
	/* Nothing served anywhere. */
	b.s.error = NULL;
	CHECK_RC(run(NULL, 0, &b, NULL), MU_E_CORRUPT);
	CHECK(says(AUDIT_FETCH, 0, "no node served any head"));
	log_fini(&l);
}

static void test_head_sizes(void)
{
	struct log l = { 0 };
	struct audit_blob h[4];
	uint64_t *sizes;
	size_t n;
	uint8_t junk[3] = { 0xff, 0xff, 0xff };

	setup();
	log_entries(&l, 10, "a", 0);
	log_head(&l, 7, 1, PUB, 1);
	log_head(&l, 4, 2, PUB, 1);
	h[0] = blob(&l.heads[0]);
	h[1] = blob(&l.heads[1]);
	h[2] = (struct audit_blob){ junk, sizeof(junk) };
	h[3] = blob(&l.heads[0]);
	CHECK_OK(audit_head_sizes(h, 4, &sizes, &n));
	CHECK(n == 2 && sizes[0] == 4 && sizes[1] == 7);
	free(sizes);
	log_fini(&l);
}

/* Flip one hex digit: the one `at` digits after the first occurrence of
 * `after` (a field name, or hex a value holds). */
static void flip_json(char *json, const char *after, size_t at)
{
	char *p = strstr(json, after);

	if (p == NULL)
		exit(1);
	if (after[0] == '"')
		p = strchr(p + strlen(after), '"') + 1;
	p += at;
	*p = *p == '0' ? '1' : '0';
}

static void test_row_proof(void)
{
	struct log l = { 0 };
	struct audit_row_proof pr, back;
	struct audit_proof_info info;
	merkle_hash path[MERKLE_MAX_DEPTH];
	size_t npath;
	char why[512], *json = NULL, *bad;

	setup();
	log_usual(&l, "a", 0);
	REQUIRE(merkle_inclusion_proof(5, 10, mem_get, &l, path, &npath) == 0);
	struct audit_blob entry = blob(&l.entries[5]), sh = blob(&l.heads[2]), pin = blob(&tl1),
			  wrong = blob(&other1), tl[2] = { blob(&tl1), blob(&tl2) };
	CHECK_OK(audit_proof_make(DS, 5, &entry, path, npath, &sh, tl, 1, &pin, &pr, why, sizeof(why)));
	REQUIRE(pr.key_pem != NULL && strstr(pr.key_pem, "BEGIN PUBLIC KEY") != NULL);
	CHECK_OK(audit_proof_encode(&pr, &json));
	REQUIRE(json != NULL);
	CHECK_OK(audit_proof_decode((const uint8_t *)json, strlen(json), &back, why, sizeof(why)));
	CHECK_OK(audit_proof_check(&back, &pin, &info, why, sizeof(why)));
	CHECK_STREQ(info.publisher, "011002");
	CHECK(info.size == 10 && info.trust_version == 1 && info.pinned && !info.deleted);
	CHECK(info.head_time_us == t0 + 3 * HOUR && info.entry_time_us == t0 + 5);
	CHECK_STREQ(info.schema, "aed@1");
	CHECK_STREQ(info.key, "k5");
	audit_proof_fini(&back);
	/* Anchored on the proof's own list when the checker brings none. */
	CHECK_OK(audit_proof_decode((const uint8_t *)json, strlen(json), &back, why, sizeof(why)));
	CHECK_OK(audit_proof_check(&back, NULL, &info, why, sizeof(why)));
	CHECK(!info.pinned && info.trust_first == 1);
	/* ... but not when the checker trusts another list. */
	CHECK_RC(audit_proof_check(&back, &wrong, &info, why, sizeof(why)), MU_E_TRUST);
	audit_proof_fini(&back);

	/* One flipped byte anywhere that matters fails the check. */
	const struct { const char *after; size_t at; int rc; } flips[] = {
		{ "726f773a", 9, MU_E_PROOF },     /* "row:a" of the entry: the leaf hash differs */
		{ "\"leaf_hash\":", 0, MU_E_PROOF },
		{ "\"inclusion\":", 0, MU_E_PROOF },
		{ "\"signed_head\":", 2 * sh.len - 1, MU_E_BADSIG },  /* the signature's last byte */
	};
	for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
		bad = strdup(json);
		flip_json(bad, flips[i].after, flips[i].at);
		CHECK_OK(audit_proof_decode((const uint8_t *)bad, strlen(bad), &back, why, sizeof(why)));
		CHECK_RC(audit_proof_check(&back, &pin, &info, why, sizeof(why)), flips[i].rc);
		audit_proof_fini(&back);
		free(bad);
	}

	/* The proof's public key must be the one the trust list names. */
	CHECK_OK(audit_proof_decode((const uint8_t *)json, strlen(json), &back, why, sizeof(why)));
	free(back.key_pem);
	char path_pem[128];
	snprintf(path_pem, sizeof(path_pem), "%s/k%d/signing.pub.pem", tmpdir, ROGUE);
	FILE *f = fopen(path_pem, "r");
	REQUIRE(f != NULL);
	back.key_pem = calloc(1, 4096);
	CHECK(fread(back.key_pem, 1, 4095, f) > 0);
	fclose(f);
	CHECK_RC(audit_proof_check(&back, &pin, &info, why, sizeof(why)), MU_E_TRUST);
	CHECK(strstr(why, "public key") != NULL);
	audit_proof_fini(&back);

	/* A head signed after the publisher was revoked does not count. */
	audit_proof_fini(&pr);
	CHECK_RC(audit_proof_make(DS, 5, &entry, path, npath, &sh, tl, 2, &pin, &pr, why,
				  sizeof(why)), MU_E_TRUST);
	CHECK(strstr(why, "revoked") != NULL);
	audit_proof_fini(&pr);

	/* Not a proof at all. */
	CHECK_RC(audit_proof_decode((const uint8_t *)"{\"format\": 1}", 13, &back, why, sizeof(why)),
		 MU_E_DECODE);
	audit_proof_fini(&back);
	CHECK_RC(audit_proof_decode((const uint8_t *)"[", 1, &back, why, sizeof(why)), MU_E_DECODE);
	audit_proof_fini(&back);
	free(json);
	log_fini(&l);
	audit_report_fini(&rep);
}

CHECK_TESTS = {
	{ "good log", test_good_log },
	{ "behind", test_behind },
	{ "tampered entry", test_tampered_entry },
	{ "swapped entries", test_swapped_entries },
	{ "truncated", test_truncated },
	{ "wrong key", test_wrong_key },
	{ "revoked key", test_revoked_key },
	{ "rolled back", test_rolled_back },
	{ "fork", test_fork },
	{ "bad consistency proof", test_bad_consistency_proof },
	{ "trust lists", test_trust_lists },
	{ "witnesses", test_witnesses },
	{ "witness key rotation", test_witness_rotation },
	{ "fetch error", test_fetch_error },
	{ "head sizes", test_head_sizes },
	{ "row proof", test_row_proof },
	{ NULL, NULL },
};
