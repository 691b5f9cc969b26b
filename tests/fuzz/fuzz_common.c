/*
 * fuzz_common.c - the fixed test key, throw-away stores and the decoder
 * invariants shared by the fuzz targets and the seed generator (fuzz.h).
 */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "cosign.h"
#include "fuzz.h"
#include "head.h"
#include "merkle.h"
#include "mu_err.h"
#include "redact.h"
#include "schema.h"
#include "trust.h"
#include "wire.h"

/* 2026-01-01T00:00:00Z: the issue time of the test trust list, fixed so
 * that regenerated seeds are the same bytes. */
#define FUZZ_TRUST_ISSUED_US INT64_C(1767225600000000)

void fuzz_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: invariant broken: %s\n", file, line, what);
	abort();
}

static struct sig_key *key;
static uint8_t key_raw[SIG_PUBKEY_LEN], key_id[SIG_KEYID_LEN];

static const char *tmpdir(void)
{
	const char *t = getenv("TMPDIR");

	return t != NULL && t[0] != '\0' ? t : "/tmp";
}

/* OpenSSL makes the key from its seed; sig_ reads keys only from PEM
 * files, so it passes through a temporary one. */
const struct sig_key *fuzz_key(void)
{
	static const char phrase[] = "musubi fuzz test key: not a secret";
	uint8_t seed[32];
	char path[256];
	EVP_PKEY *pk;
	FILE *f = NULL;
	int fd, ok;

	if (key != NULL)
		return key;
	sig_sha256(phrase, strlen(phrase), seed);
	snprintf(path, sizeof(path), "%s/mu-fuzz-key-XXXXXX", tmpdir());
	pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, sizeof(seed));
	fd = pk != NULL ? mkstemp(path) : -1;
	if (fd >= 0 && (f = fdopen(fd, "w")) == NULL)
		close(fd);
	ok = f != NULL && PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL) == 1;
	if (f != NULL)
		ok &= fclose(f) == 0;
	ok = ok && sig_key_load_private(path, &key) == 0 && sig_key_raw_public(key, key_raw) == 0 &&
	     sig_key_id(key, key_id) == 0;
	if (fd >= 0)
		unlink(path);
	EVP_PKEY_free(pk);
	if (!ok) {
		fprintf(stderr, "fuzz: cannot make the test key in %s\n", tmpdir());
		exit(1);
	}
	return key;
}

const uint8_t *fuzz_key_raw(void)
{
	fuzz_key();
	return key_raw;
}

const uint8_t *fuzz_key_id(void)
{
	fuzz_key();
	return key_id;
}

int fuzz_key_fn(void *ctx, struct store_txn *t, const struct rec_head *h, struct sig_key **out,
		char *why, size_t whylen)
{
	return sig_key_from_raw_public(fuzz_key_raw(), out);
}

int fuzz_trust_list(struct rec_buf *out)
{
	struct trust_signed s = { 0 };
	struct trust_member *m;
	char why[256];
	int next, rc = -ENOMEM;

	s.list.version = 1;
	s.list.threshold = 1;
	if ((s.list.federation = strdup("fuzz")) == NULL ||
	    (s.list.anchors = calloc(1, sizeof(*s.list.anchors))) == NULL ||
	    (s.list.members = calloc(1, sizeof(*s.list.members))) == NULL)
		goto out;
	memcpy(s.list.anchors[s.list.nanchors++], fuzz_key_raw(), SIG_PUBKEY_LEN);
	m = &s.list.members[s.list.nmembers++];
	memcpy(m->signing_key, fuzz_key_raw(), SIG_PUBKEY_LEN);
	sig_sha256("fuzz transport key", 18, m->transport_key);
	if ((m->id = strdup(FUZZ_MEMBER)) == NULL || (m->name = strdup("焼津市")) == NULL ||
	    (m->endpoint = strdup("tcp://127.0.0.1:7101")) == NULL ||
	    (m->revoked_reason = strdup("")) == NULL ||
	    (m->roles = calloc(2, sizeof(*m->roles))) == NULL ||
	    (m->roles[m->nroles++] = strdup(TRUST_ROLE_PUBLISHER)) == NULL ||
	    (m->roles[m->nroles++] = strdup(TRUST_ROLE_RELAY)) == NULL)
		goto out;
	if ((rc = trust_redraft(&s, FUZZ_TRUST_ISSUED_US, &next, why, sizeof(why))) < 0 ||
	    (rc = trust_sign(&s, fuzz_key())) < 0)
		goto out;
	rc = trust_encode(&s, out);
out:
	if (rc < 0)
		fprintf(stderr, "fuzz: cannot make the test trust list: %s\n", mu_strerror(rc));
	trust_signed_fini(&s);
	return rc;
}

int fuzz_store_new(char *dir, size_t cap, struct store **st)
{
	int rc;

	/* A small first map: a fuzz store holds a few entries. */
	setenv("MUSUBI_MAP_INITIAL", "8388608", 0);
	snprintf(dir, cap, "%s/mu-fuzz-XXXXXX", tmpdir());
	if (mkdtemp(dir) == NULL)
		return -errno;
	if ((rc = store_open(dir, STORE_CREATE | STORE_NOSYNC, st)) < 0)
		rmdir(dir);
	return rc;
}

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

void fuzz_store_drop(char *dir, struct store **st)
{
	store_close(st);
	nftw(dir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
}

static struct store *trust_st;
static char trust_dir[256];

static void trust_store_drop(void)
{
	fuzz_store_drop(trust_dir, &trust_st);
}

struct store *fuzz_trust_store(void)
{
	struct rec_buf list = { 0 };
	char why[256];

	if (trust_st != NULL)
		return trust_st;
	int rc = fuzz_store_new(trust_dir, sizeof(trust_dir), &trust_st);

	if (rc < 0 || (rc = fuzz_trust_list(&list)) < 0 ||
	    (rc = trust_store_list(trust_st, list.data, list.len, why, sizeof(why))) < 0) {
		fprintf(stderr, "fuzz: cannot make the trust store under %s: %s\n", tmpdir(),
			mu_strerror(rc));
		exit(1);
	}
	rec_buf_fini(&list);
	atexit(trust_store_drop);
	return trust_st;
}

/* ---- rows and entries ---- */

static int same_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static const char *str(const char *s)
{
	return s != NULL ? s : "";
}

static void values_equal(const struct mu_value *a, const struct mu_value *b)
{
	FUZZ_CHECK(a->kind == b->kind);
	switch (a->kind) {
	case MU_VAL_TEXT:
		FUZZ_CHECK(same_bytes(a->text, a->len, b->text, b->len));
		break;
	case MU_VAL_INT:
	case MU_VAL_BOOL:
		FUZZ_CHECK(a->i == b->i);
		break;
	case MU_VAL_NUM:   /* bit for bit: NaNs and -0.0 travel unchanged */
		FUZZ_CHECK(memcmp(&a->d, &b->d, sizeof(a->d)) == 0);
		break;
	case MU_VAL_NULL:
		break;
	}
}

void fuzz_check_row(const uint8_t *buf, size_t len)
{
	struct rec_row *r = NULL, *r2 = NULL;
	struct rec_buf b1 = { 0 }, b2 = { 0 };
	char text[64];

	if (rec_row_decode(buf, len, &r) < 0) {
		FUZZ_CHECK(r == NULL);
		return;
	}
	for (size_t i = 0; i < r->n; i++) {
		const struct mu_value *v = &r->values[i];
		size_t n = schema_format(v, text, sizeof(text));
		FUZZ_CHECK(v->kind != MU_VAL_TEXT || strlen(v->text) == v->len);
		FUZZ_CHECK(strlen(text) == (n < sizeof(text) ? n : sizeof(text) - 1));
	}
	FUZZ_CHECK(rec_row_encode(r->values, r->n, &b1) == 0);
	FUZZ_CHECK(rec_row_decode(b1.data, b1.len, &r2) == 0);
	FUZZ_CHECK(r2->n == r->n);
	for (size_t i = 0; i < r->n; i++)
		values_equal(&r->values[i], &r2->values[i]);
	FUZZ_CHECK(rec_row_encode(r2->values, r2->n, &b2) == 0);
	FUZZ_CHECK(same_bytes(b1.data, b1.len, b2.data, b2.len));
	rec_row_free(&r);
	rec_row_free(&r2);
	rec_buf_fini(&b1);
	rec_buf_fini(&b2);
}

static void entries_equal(const struct rec_entry *a, const struct rec_entry *b)
{
	FUZZ_CHECK(strcmp(a->dataset, b->dataset) == 0 && a->seq == b->seq && a->op == b->op);
	FUZZ_CHECK(same_bytes(a->key, a->key_len, b->key, b->key_len));
	FUZZ_CHECK((a->schema_id == NULL) == (b->schema_id == NULL));
	FUZZ_CHECK(a->schema_id == NULL || (strcmp(a->schema_id, b->schema_id) == 0 &&
					    a->schema_version == b->schema_version));
	FUZZ_CHECK((a->schema_digest == NULL) == (b->schema_digest == NULL));
	FUZZ_CHECK(a->schema_digest == NULL || memcmp(a->schema_digest, b->schema_digest, 32) == 0);
	FUZZ_CHECK((a->row == NULL) == (b->row == NULL));
	FUZZ_CHECK(same_bytes(a->row, a->row_len, b->row, b->row_len));
	FUZZ_CHECK(a->time_us == b->time_us);
	FUZZ_CHECK(a->prov.has_source == b->prov.has_source && a->prov.has_mapping == b->prov.has_mapping);
	FUZZ_CHECK(!a->prov.has_source || memcmp(a->prov.source_sha256, b->prov.source_sha256, 32) == 0);
	FUZZ_CHECK(!a->prov.has_mapping ||
		   memcmp(a->prov.mapping_sha256, b->prov.mapping_sha256, 32) == 0);
	FUZZ_CHECK(strcmp(str(a->prov.source_name), str(b->prov.source_name)) == 0);
	FUZZ_CHECK(strcmp(str(a->prov.tool), str(b->prov.tool)) == 0);
	FUZZ_CHECK(a->prov.source_line == b->prov.source_line);
}

static void check_plain_entry(const uint8_t *buf, size_t len)
{
	struct rec_entry_decoded *d = NULL, *d2 = NULL;
	struct rec_buf b1 = { 0 }, b2 = { 0 };

	if (rec_entry_decode(buf, len, &d) < 0) {
		FUZZ_CHECK(d == NULL);
		return;
	}
	FUZZ_CHECK(strlen(d->e.key) == d->e.key_len);
	FUZZ_CHECK(rec_entry_encode(&d->e, &b1) == 0);
	FUZZ_CHECK(rec_entry_decode(b1.data, b1.len, &d2) == 0);
	entries_equal(&d->e, &d2->e);
	FUZZ_CHECK(rec_entry_encode(&d2->e, &b2) == 0);
	FUZZ_CHECK(same_bytes(b1.data, b1.len, b2.data, b2.len));
	if (d->e.row != NULL)
		fuzz_check_row(d->e.row, d->e.row_len);
	rec_entry_free(&d);
	rec_entry_free(&d2);
	rec_buf_fini(&b1);
	rec_buf_fini(&b2);
}

static void check_stub(const uint8_t *buf, size_t len, int stub, const merkle_hash leaf)
{
	struct redact_stub s;

	FUZZ_CHECK(stub == 1 || stub == MU_E_DECODE);
	if (redact_stub_decode(buf, len, &s) < 0)
		return;
	FUZZ_CHECK(stub == 1 && memcmp(leaf, s.leaf_hash, MERKLE_HASH_LEN) == 0);
	FUZZ_CHECK(strlen(s.key) == s.key_len && memchr(s.dataset, '\0', sizeof(s.dataset)) != NULL);
	fuzz_check_redaction(s.notice, s.notice_len);
	redact_stub_fini(&s);
}

void fuzz_check_entry(const uint8_t *buf, size_t len)
{
	merkle_hash leaf, plain;
	int stub = redact_leaf_hash(buf, len, leaf);

	if (len >= REDACT_MARKER_LEN && memcmp(buf, REDACT_MARKER, REDACT_MARKER_LEN) == 0) {
		check_stub(buf, len, stub, leaf);
		return;
	}
	/* anything else is an entry, hashed as it is */
	merkle_leaf_hash(buf, len, plain);
	FUZZ_CHECK(stub == 0 && memcmp(leaf, plain, MERKLE_HASH_LEN) == 0);
	check_plain_entry(buf, len);
}

/* ---- heads ---- */

static void heads_equal(const struct rec_head *a, const struct rec_head *b)
{
	FUZZ_CHECK(strcmp(a->dataset, b->dataset) == 0 && a->size == b->size);
	FUZZ_CHECK(memcmp(a->root, b->root, 32) == 0 && memcmp(a->key_id, b->key_id, 32) == 0);
	FUZZ_CHECK(a->time_us == b->time_us && a->trust_version == b->trust_version);
	FUZZ_CHECK(strcmp(a->publisher, b->publisher) == 0);
	FUZZ_CHECK((a->members_only != 0) == (b->members_only != 0));
}

void fuzz_check_tree_head(const uint8_t *buf, size_t len)
{
	struct rec_head_decoded *d = NULL, *d2 = NULL;
	struct rec_buf b1 = { 0 }, b2 = { 0 };

	if (rec_head_decode(buf, len, &d) < 0) {
		FUZZ_CHECK(d == NULL);
		return;
	}
	FUZZ_CHECK(d->h.dataset[0] != '\0');
	FUZZ_CHECK(rec_head_encode(&d->h, &b1) == 0);
	FUZZ_CHECK(rec_head_decode(b1.data, b1.len, &d2) == 0);
	heads_equal(&d->h, &d2->h);
	FUZZ_CHECK(rec_head_encode(&d2->h, &b2) == 0);
	FUZZ_CHECK(same_bytes(b1.data, b1.len, b2.data, b2.len));
	rec_head_free(&d);
	rec_head_free(&d2);
	rec_buf_fini(&b1);
	rec_buf_fini(&b2);
}

void fuzz_check_signed_head(const uint8_t *buf, size_t len)
{
	struct rec_signed_head_decoded *sh = NULL;
	struct rec_head_decoded *hd = NULL;
	struct head_signed hs, hs2;
	struct rec_buf b = { 0 };
	int rc = head_decode(buf, len, &hs);

	/* head_decode is exactly its two layers. */
	if (rec_signed_head_decode(buf, len, &sh) == 0) {
		FUZZ_CHECK((rec_head_decode(sh->head, sh->head_len, &hd) == 0) == (rc == 0));
		rec_head_free(&hd);
	} else {
		FUZZ_CHECK(rc < 0);
	}
	rec_signed_head_free(&sh);
	if (rc < 0) {
		FUZZ_CHECK(hs.sh == NULL && hs.hd == NULL);
		return;
	}
	fuzz_check_tree_head(hs.sh->head, hs.sh->head_len);
	if (hs.sh->sig_len == SIG_SIGNATURE_LEN) {
		FUZZ_CHECK(rec_signed_head_encode(hs.sh->head, hs.sh->head_len, hs.sh->sig, &b) == 0);
		FUZZ_CHECK(head_decode(b.data, b.len, &hs2) == 0);
		FUZZ_CHECK(same_bytes(hs.sh->head, hs.sh->head_len, hs2.sh->head, hs2.sh->head_len));
		FUZZ_CHECK(memcmp(hs.sh->sig, hs2.sh->sig, SIG_SIGNATURE_LEN) == 0);
		head_signed_fini(&hs2);
	}
	rc = head_check_signature(&hs, fuzz_key());
	FUZZ_CHECK(rc == 0 || rc == MU_E_BADSIG);
	if (rc == 0) {
		/* Only seeds carry the test key's signature, and those bytes
		 * came from rec_head_encode: decoding loses nothing of them. */
		FUZZ_CHECK(rec_head_encode(&hs.hd->h, &b) == 0);
		FUZZ_CHECK(same_bytes(b.data, b.len, hs.sh->head, hs.sh->head_len));
	}
	head_signed_fini(&hs);
	rec_buf_fini(&b);
}

/* ---- cosignatures ---- */

static void cosigns_equal(const struct cosign *a, const struct cosign *b)
{
	FUZZ_CHECK(strcmp(a->witness, b->witness) == 0 && strcmp(a->dataset, b->dataset) == 0);
	FUZZ_CHECK(a->size == b->size && a->time_us == b->time_us &&
		   a->trust_version == b->trust_version);
	FUZZ_CHECK(memcmp(a->head_sha256, b->head_sha256, 32) == 0 &&
		   memcmp(a->key_id, b->key_id, 32) == 0);
}

static int check_on(const uint8_t *buf, size_t len, struct cosign *c)
{
	struct store_txn t;
	char why[256] = "";
	int rc;

	FUZZ_CHECK(store_read_begin(fuzz_trust_store(), &t) == 0);
	rc = cosign_check(&t, buf, len, c, why, sizeof(why));
	store_read_end(&t);
	FUZZ_CHECK(rc == 0 || rc == MU_E_DECODE || rc == MU_E_TRUST || rc == MU_E_BADSIG);
	FUZZ_CHECK(rc == 0 || why[0] != '\0');
	return rc;
}

void fuzz_check_cosign(const uint8_t *buf, size_t len)
{
	struct cosign c, c2, made;
	struct rec_buf b = { 0 };
	uint8_t sha[32];
	int rc = cosign_decode(buf, len, &c), rc2 = check_on(buf, len, &c2);

	FUZZ_CHECK((rc2 == MU_E_DECODE) == (rc < 0));
	if (rc < 0)
		return;
	cosigns_equal(&c, &c2);
	if (rc2 == 0)
		FUZZ_CHECK(strcmp(c2.witness, FUZZ_MEMBER) == 0 &&
			   memcmp(c2.key_id, fuzz_key_id(), 32) == 0);
	FUZZ_CHECK(memchr(c.witness, '\0', sizeof(c.witness)) != NULL &&
		   memchr(c.dataset, '\0', sizeof(c.dataset)) != NULL);
	/* The same statement made again by the test key, over the input as
	 * the head bytes: it decodes to what was said, and counts exactly
	 * when its witness is the test member and it names the one trust
	 * list version the store holds (trust_check_cosig's rule). */
	FUZZ_CHECK(cosign_make(fuzz_key(), c.witness, c.trust_version, c.dataset, c.size, buf, len,
			       &b) == 0);
	FUZZ_CHECK(cosign_decode(b.data, b.len, &made) == 0);
	sig_sha256(buf, len, sha);
	FUZZ_CHECK(strcmp(made.witness, c.witness) == 0 && strcmp(made.dataset, c.dataset) == 0);
	FUZZ_CHECK(made.size == c.size && made.trust_version == c.trust_version);
	FUZZ_CHECK(memcmp(made.head_sha256, sha, 32) == 0 &&
		   memcmp(made.key_id, fuzz_key_id(), 32) == 0);
	rc2 = check_on(b.data, b.len, &c2);
	FUZZ_CHECK(rc2 == (strcmp(c.witness, FUZZ_MEMBER) == 0 && c.trust_version == 1 ? 0 :
			   MU_E_TRUST));
	rec_buf_fini(&b);
}

/* ---- redaction notices ---- */

/* The dataset is the publisher's own: "<publisher>/<name>". */
static int owns(const char *dataset, const char *publisher)
{
	size_t n = strlen(publisher);

	return strncmp(dataset, publisher, n) == 0 && dataset[n] == '/';
}

static int redaction_on(const uint8_t *buf, size_t len, struct redact_notice *n)
{
	struct store_txn t;
	char why[256] = "";
	int rc;

	FUZZ_CHECK(store_read_begin(fuzz_trust_store(), &t) == 0);
	rc = redact_check(&t, buf, len, fuzz_key_fn, NULL, n, why, sizeof(why));
	store_read_end(&t);
	FUZZ_CHECK(rc == 0 || rc == MU_E_DECODE || rc == MU_E_TRUST || rc == MU_E_BADSIG);
	FUZZ_CHECK(rc == 0 || why[0] != '\0');
	return rc;
}

void fuzz_check_redaction(const uint8_t *buf, size_t len)
{
	struct redact_notice n, again;
	struct rec_buf b = { 0 };
	int rc = redaction_on(buf, len, &n);

	if (rc == MU_E_DECODE)
		return;
	FUZZ_CHECK(rc != 0 || (owns(n.dataset, n.publisher) &&
			       memcmp(n.key_id, fuzz_key_id(), 32) == 0));
	/* The same notice signed again by the test key: it reads back the
	 * same and counts exactly when the dataset is its publisher's. */
	FUZZ_CHECK(redact_make(fuzz_key(), n.publisher, n.trust_version, n.dataset, n.seq,
			       n.leaf_hash, n.reason, &b) == 0);
	rc = redaction_on(b.data, b.len, &again);
	FUZZ_CHECK(rc == (owns(n.dataset, n.publisher) ? 0 : MU_E_TRUST));
	FUZZ_CHECK(strcmp(again.dataset, n.dataset) == 0 && again.seq == n.seq &&
		   strcmp(again.publisher, n.publisher) == 0 && strcmp(again.reason, n.reason) == 0);
	FUZZ_CHECK(memcmp(again.leaf_hash, n.leaf_hash, 32) == 0 &&
		   again.trust_version == n.trust_version &&
		   memcmp(again.key_id, fuzz_key_id(), 32) == 0);
	rec_buf_fini(&b);
}

/* ---- trust lists ---- */

static void members_equal(const struct trust_member *a, const struct trust_member *b)
{
	FUZZ_CHECK(strcmp(a->id, b->id) == 0 && strcmp(a->name, b->name) == 0);
	FUZZ_CHECK(strcmp(a->endpoint, b->endpoint) == 0 &&
		   strcmp(a->revoked_reason, b->revoked_reason) == 0);
	FUZZ_CHECK(memcmp(a->signing_key, b->signing_key, SIG_PUBKEY_LEN) == 0 &&
		   memcmp(a->transport_key, b->transport_key, 32) == 0);
	FUZZ_CHECK(a->nroles == b->nroles);
	for (size_t i = 0; i < a->nroles; i++)
		FUZZ_CHECK(strcmp(a->roles[i], b->roles[i]) == 0);
	FUZZ_CHECK(a->valid_from_us == b->valid_from_us && a->valid_until_us == b->valid_until_us &&
		   a->revoked_us == b->revoked_us);
}

static void trust_equal(const struct trust_signed *a, const struct trust_signed *b)
{
	const struct trust_list *x = &a->list, *y = &b->list;

	FUZZ_CHECK(same_bytes(a->bytes, a->len, b->bytes, b->len));
	FUZZ_CHECK(a->nsigs == b->nsigs);
	FUZZ_CHECK(a->nsigs == 0 || memcmp(a->sigs, b->sigs, a->nsigs * sizeof(*a->sigs)) == 0);
	FUZZ_CHECK(x->version == y->version && x->issued_us == y->issued_us &&
		   x->threshold == y->threshold && strcmp(x->federation, y->federation) == 0);
	FUZZ_CHECK(x->nmembers == y->nmembers && x->nanchors == y->nanchors &&
		   x->nretired == y->nretired);
	for (size_t i = 0; i < x->nmembers; i++)
		members_equal(&x->members[i], &y->members[i]);
	FUZZ_CHECK(x->nanchors == 0 ||
		   memcmp(x->anchors, y->anchors, x->nanchors * sizeof(*x->anchors)) == 0);
	for (size_t i = 0; i < x->nretired; i++) {
		const struct trust_retired *r = &x->retired[i], *s = &y->retired[i];
		FUZZ_CHECK(strcmp(r->member, s->member) == 0 && strcmp(r->reason, s->reason) == 0);
		FUZZ_CHECK(memcmp(r->signing_key, s->signing_key, SIG_PUBKEY_LEN) == 0 &&
			   r->retired_us == s->retired_us);
	}
}

void fuzz_check_trust(const uint8_t *buf, size_t len)
{
	struct trust_signed s, s2;
	struct rec_buf b1 = { 0 }, b2 = { 0 };
	char why[512] = "";
	int rc = trust_decode(buf, len, &s, why, sizeof(why));

	if (rc < 0) {
		FUZZ_CHECK(why[0] != '\0');   /* every refusal says why */
		trust_signed_fini(&s);
		return;
	}
	FUZZ_CHECK(trust_list_check(&s.list, why, sizeof(why)) == 0);
	for (size_t i = 0; i < s.list.nmembers; i++)
		FUZZ_CHECK(trust_find_member(&s.list, s.list.members[i].id) == &s.list.members[i]);
	FUZZ_CHECK(trust_encode(&s, &b1) == 0);
	FUZZ_CHECK(trust_decode(b1.data, b1.len, &s2, why, sizeof(why)) == 0);
	trust_equal(&s, &s2);
	FUZZ_CHECK(trust_encode(&s2, &b2) == 0);
	FUZZ_CHECK(same_bytes(b1.data, b1.len, b2.data, b2.len));
	rc = trust_accept_first(&s, why, sizeof(why));
	FUZZ_CHECK(rc == 0 || rc == MU_E_TRUST || rc == MU_E_CRYPTO);
	FUZZ_CHECK(rc != 0 || s.nsigs >= s.list.threshold);
	trust_signed_fini(&s);
	trust_signed_fini(&s2);
	rec_buf_fini(&b1);
	rec_buf_fini(&b2);
}

/* ---- wire payloads ---- */

static const ProtobufCMessageDescriptor *payload_descriptor(int type)
{
	switch (type) {
	case MUSUBI__MSG_TYPE__MSG_ERROR: return &musubi__error__descriptor;
	case MUSUBI__MSG_TYPE__MSG_HELLO: return &musubi__hello__descriptor;
	case MUSUBI__MSG_TYPE__MSG_LIST_HEADS: return &musubi__list_heads__descriptor;
	case MUSUBI__MSG_TYPE__MSG_HEADS: return &musubi__heads__descriptor;
	case MUSUBI__MSG_TYPE__MSG_GET_HEADS: return &musubi__get_heads__descriptor;
	case MUSUBI__MSG_TYPE__MSG_GET_ENTRIES: return &musubi__get_entries__descriptor;
	case MUSUBI__MSG_TYPE__MSG_ENTRIES: return &musubi__entries__descriptor;
	case MUSUBI__MSG_TYPE__MSG_GET_CONSISTENCY: return &musubi__get_consistency__descriptor;
	case MUSUBI__MSG_TYPE__MSG_GET_INCLUSION: return &musubi__get_inclusion__descriptor;
	case MUSUBI__MSG_TYPE__MSG_PROOF: return &musubi__proof__descriptor;
	case MUSUBI__MSG_TYPE__MSG_GET_TRUST: return &musubi__get_trust__descriptor;
	case MUSUBI__MSG_TYPE__MSG_TRUST: return &musubi__trust_lists__descriptor;
	case MUSUBI__MSG_TYPE__MSG_GET_SCHEMA: return &musubi__get_schema__descriptor;
	case MUSUBI__MSG_TYPE__MSG_SCHEMA: return &musubi__schema__descriptor;
	case MUSUBI__MSG_TYPE__MSG_ANNOUNCE: return &musubi__announce__descriptor;
	case MUSUBI__MSG_TYPE__MSG_STATUS_REPLY: return &musubi__status_reply__descriptor;
	case MUSUBI__MSG_TYPE__MSG_GET_COSIGS: return &musubi__get_cosigs__descriptor;
	case MUSUBI__MSG_TYPE__MSG_COSIGS: return &musubi__cosigs__descriptor;
	case MUSUBI__MSG_TYPE__MSG_QUERY: return &musubi__query__descriptor;
	case MUSUBI__MSG_TYPE__MSG_QUERY_RESULT: return &musubi__query_result__descriptor;
	case MUSUBI__MSG_TYPE__MSG_SCAN: return &musubi__scan__descriptor;
	case MUSUBI__MSG_TYPE__MSG_SCAN_ROWS: return &musubi__scan_rows__descriptor;
	case MUSUBI__MSG_TYPE__MSG_GET_REDACTIONS: return &musubi__get_redactions__descriptor;
	case MUSUBI__MSG_TYPE__MSG_REDACTIONS: return &musubi__redactions__descriptor;
	}
	return NULL;   /* no payload (MSG_STATUS) or not a type */
}

/* Does m, or a message inside it, hold an unknown field of number 0?
 * protobuf-c 1.4 refuses field number 0 only when the tag is one byte: it
 * takes the same tag written longer (0x80 0x00), keeps it as an unknown
 * field, packs it back as one byte, and then refuses its own output. */
static int has_field0(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	for (unsigned i = 0; i < m->n_unknown_fields; i++)
		if (m->unknown_fields[i].tag == 0)
			return 1;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *at = (const char *)m + f->offset;
		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
			ProtobufCMessage *const *sub = *(ProtobufCMessage *const *const *)at;
			for (size_t k = 0; k < n; k++)
				if (has_field0(sub[k]))
					return 1;
			continue;
		}
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)((const char *)m + f->quantifier_offset) != f->id)
			continue;
		const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)at;
		if (sub != NULL && has_field0(sub))
			return 1;
	}
	return 0;
}

ProtobufCMessage *fuzz_unpack(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len)
{
	ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, buf), *m2;
	uint8_t *p1, *p2;
	size_t n;

	if (m == NULL)
		return NULL;
	FUZZ_CHECK(protobuf_c_message_check(m));
	if (has_field0(m))
		return m;   /* protobuf-c's own inconsistency, not ours */
	n = protobuf_c_message_get_packed_size(m);
	FUZZ_CHECK((p1 = malloc(n + 1)) != NULL && (p2 = malloc(n + 1)) != NULL);
	FUZZ_CHECK(protobuf_c_message_pack(m, p1) == n);
	FUZZ_CHECK((m2 = protobuf_c_message_unpack(d, NULL, n, p1)) != NULL);
	FUZZ_CHECK(protobuf_c_message_get_packed_size(m2) == n);
	FUZZ_CHECK(protobuf_c_message_pack(m2, p2) == n && memcmp(p1, p2, n) == 0);
	protobuf_c_message_free_unpacked(m2, NULL);
	free(p1);
	free(p2);
	return m;
}

/* A proof as the auditor's client takes it: RFC 9162 verification answers
 * yes or no for any hashes and sizes, and a single-leaf tree's root is its
 * leaf. */
static void check_proof(const Musubi__Proof *p)
{
	merkle_hash h[MERKLE_MAX_DEPTH], leaf, root;
	uint64_t a = 0, b = 0;
	int rc;

	if (p->n_hashes == 0 || p->n_hashes > MERKLE_MAX_DEPTH)
		return;
	for (size_t i = 0; i < p->n_hashes; i++) {
		if (p->hashes[i].len != MERKLE_HASH_LEN)
			return;
		memcpy(h[i], p->hashes[i].data, MERKLE_HASH_LEN);
	}
	memcpy(&a, h[0], sizeof(a));
	memcpy(&b, h[0] + 8, sizeof(b));
	memcpy(leaf, h[0], sizeof(leaf));
	memcpy(root, h[p->n_hashes - 1], sizeof(root));
	rc = merkle_verify_inclusion(leaf, a, b, (const merkle_hash *)h + 1, p->n_hashes - 1, root);
	FUZZ_CHECK(rc == 0 || rc == MU_E_PROOF);
	rc = merkle_verify_consistency(a, b, leaf, root, (const merkle_hash *)h + 1, p->n_hashes - 1);
	FUZZ_CHECK(rc == 0 || rc == MU_E_PROOF);
	FUZZ_CHECK(merkle_verify_inclusion(leaf, 0, 1, (const merkle_hash *)h, 0, leaf) == 0);
}

static void check_schema(const Musubi__Schema *s)
{
	struct schema *parsed = NULL;
	char *why = NULL;
	uint8_t sha[32];

	if (schema_parse((const char *)s->json.data, s->json.len, &parsed, &why) != 0) {
		FUZZ_CHECK(why != NULL);
		free(why);
		return;
	}
	/* The node stores parsed->json and compares parsed->digest with the
	 * entries' SchemaRef: both must be of the bytes received. */
	sig_sha256(s->json.data, s->json.len, sha);
	FUZZ_CHECK(same_bytes(parsed->json, parsed->json_len, s->json.data, s->json.len));
	FUZZ_CHECK(memcmp(parsed->digest, sha, 32) == 0);
	schema_destroy(&parsed);
}

void fuzz_check_payload(int type, const uint8_t *buf, size_t len)
{
	const ProtobufCMessageDescriptor *d = payload_descriptor(type);
	ProtobufCMessage *m;

	if (d == NULL || (m = fuzz_unpack(d, buf, len)) == NULL)
		return;
	switch (type) {
	case MUSUBI__MSG_TYPE__MSG_HEADS: {
		const Musubi__Heads *h = (const Musubi__Heads *)m;
		for (size_t i = 0; i < h->n_heads; i++)
			fuzz_check_signed_head(h->heads[i]->signed_head.data, h->heads[i]->signed_head.len);
		break;
	}
	case MUSUBI__MSG_TYPE__MSG_ENTRIES: {
		const Musubi__Entries *e = (const Musubi__Entries *)m;
		for (size_t i = 0; i < e->n_entries; i++)
			fuzz_check_entry(e->entries[i].data, e->entries[i].len);
		break;
	}
	case MUSUBI__MSG_TYPE__MSG_PROOF:
		check_proof((const Musubi__Proof *)m);
		break;
	case MUSUBI__MSG_TYPE__MSG_TRUST: {
		const Musubi__TrustLists *t = (const Musubi__TrustLists *)m;
		for (size_t i = 0; i < t->n_lists; i++)
			fuzz_check_trust(t->lists[i].data, t->lists[i].len);
		break;
	}
	case MUSUBI__MSG_TYPE__MSG_SCHEMA:
		check_schema((const Musubi__Schema *)m);
		break;
	case MUSUBI__MSG_TYPE__MSG_ANNOUNCE: {
		const Musubi__Announce *a = (const Musubi__Announce *)m;
		fuzz_check_signed_head(a->signed_head.data, a->signed_head.len);
		if (a->cosig.len > 0)
			fuzz_check_cosign(a->cosig.data, a->cosig.len);
		break;
	}
	case MUSUBI__MSG_TYPE__MSG_COSIGS: {
		const Musubi__Cosigs *c = (const Musubi__Cosigs *)m;
		for (size_t i = 0; i < c->n_cosigs; i++)
			fuzz_check_cosign(c->cosigs[i].data, c->cosigs[i].len);
		break;
	}
	case MUSUBI__MSG_TYPE__MSG_REDACTIONS: {
		const Musubi__Redactions *r = (const Musubi__Redactions *)m;
		for (size_t i = 0; i < r->n_notices; i++)
			fuzz_check_redaction(r->notices[i].data, r->notices[i].len);
		break;
	}
	case MUSUBI__MSG_TYPE__MSG_QUERY:
		/* a manifest from an earlier result, JSON */
		json_decref(json_loads(((const Musubi__Query *)m)->as_of, 0, NULL));
		break;
	case MUSUBI__MSG_TYPE__MSG_QUERY_RESULT: {
		const Musubi__QueryResult *r = (const Musubi__QueryResult *)m;
		for (size_t i = 0; i < r->n_rows; i++)
			fuzz_check_row(r->rows[i].data, r->rows[i].len);
		json_decref(json_loads(r->manifest, 0, NULL));
		break;
	}
	case MUSUBI__MSG_TYPE__MSG_SCAN_ROWS: {
		const Musubi__ScanRows *r = (const Musubi__ScanRows *)m;
		for (size_t i = 0; i < r->n_rows; i++)
			fuzz_check_row(r->rows[i].data, r->rows[i].len);
		fuzz_check_signed_head(r->signed_head.data, r->signed_head.len);
		break;
	}
	case MUSUBI__MSG_TYPE__MSG_STATUS_REPLY:
		/* musubi status reads it with jansson */
		json_decref(json_loads(((const Musubi__StatusReply *)m)->json, 0, NULL));
		break;
	default:   /* requests, hello, error: the fixed point is their check */
		break;
	}
	protobuf_c_message_free_unpacked(m, NULL);
}
