/*
 * audit.c - an auditor's checks over what nodes served (see audit.h):
 * the trust chain, every head's signature under the list of its time,
 * entries against roots, the nodes' consistency proofs, heads that only
 * grow, forks across nodes, witnesses; and row proofs checked offline.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "audit.h"
#include "head.h"
#include "musubi.pb-c.h"
#include "mu_err.h"
#include "redact.h"
#include "util.h"
#include "rec.h"
#include "trust.h"

#define ENTRY_PROBLEMS_MAX 10   /* out-of-place entries named one by one, per node */
#define FORK_PROBLEMS_MAX 10    /* forks named one by one; the rest are counted */
#define PROOF_FORMAT "musubi row proof v1"
#define PROOF_MAX_TRUST 256     /* trust lists in one proof */

static const char *const kind_names[] = {
	[AUDIT_FETCH] = "fetch",
	[AUDIT_DECODE] = "decode",
	[AUDIT_ENTRY] = "entry",
	[AUDIT_ROOT] = "root",
	[AUDIT_SIGNATURE] = "signature",
	[AUDIT_TRUST] = "trust",
	[AUDIT_TRUST_LIST] = "trust-list",
	[AUDIT_CONSISTENCY] = "consistency",
	[AUDIT_TRUNCATED] = "truncated",
	[AUDIT_ROLLBACK] = "rollback",
	[AUDIT_FORK] = "fork",
	[AUDIT_WITNESS_CONFLICT] = "witness-conflict",
	[AUDIT_WITNESSES] = "witnesses",
};

const char *audit_kind_name(enum audit_kind k)
{
	return (unsigned)k < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[k] : "?";
}

static int say(char *why, size_t whylen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int say(char *why, size_t whylen, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return rc;
}

/* The first 8 bytes in hex: enough for people to tell roots and keys apart. */
static const char *short_hex(const uint8_t *b, char out[17])
{
	sig_hex(b, 8, out);
	return out;
}

static int same_blob(const struct audit_blob *a, const struct audit_blob *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* ---- the trust chain ---- */

/* A decoded trust list and where it came from. */
struct tl {
	struct trust_signed s;
	const struct audit_blob *blob;
	int source;
};

/* Accepted lists, oldest first (borrowed from the tl they were built from). */
struct chain {
	const struct trust_signed **l;
	const struct audit_blob **blob;
	size_t n;
};

static void chain_fini(struct chain *ch)
{
	free(ch->l);
	free(ch->blob);
	memset(ch, 0, sizeof(*ch));
}

/*
 * Accept lists into ch: pin (the list the auditor trusts) when given, else
 * the oldest of tl; then each later version of tl (sorted by version, one
 * per version) that trust_accept_next takes. Lists older than the first are
 * not used: nothing the auditor trusts vouches for them. 0, or MU_E_TRUST
 * with why when a list is refused (ch keeps what came before it).
 */
static int chain_build(struct chain *ch, const struct tl *pin, const struct tl *tl, size_t n,
		       char *why, size_t whylen)
{
	const struct tl *first = pin != NULL ? pin : n > 0 ? &tl[0] : NULL;
	char inner[512];
	int rc;

	memset(ch, 0, sizeof(*ch));
	if (first == NULL)
		return say(why, whylen, MU_E_TRUST, "no trust list was served to check the heads "
			   "against");
	if ((ch->l = calloc(n + 1, sizeof(*ch->l))) == NULL ||
	    (ch->blob = calloc(n + 1, sizeof(*ch->blob))) == NULL)
		return -ENOMEM;
	if ((rc = trust_accept_first(&first->s, inner, sizeof(inner))) < 0)
		return rc == -ENOMEM ? rc : say(why, whylen, MU_E_TRUST, "trust list version %" PRIu64
						 " %s does not count: %s", first->s.list.version,
						 pin ? "(the one you trust)" : "(the oldest served)",
						 inner);
	ch->l[0] = &first->s;
	ch->blob[0] = first->blob;
	ch->n = 1;
	for (size_t i = 0; i < n; i++) {
		const struct trust_signed *last = ch->l[ch->n - 1];
		uint64_t v = tl[i].s.list.version;
		if (&tl[i] == first || v < last->list.version)
			continue;
		if (v == last->list.version) {
			if (same_blob(tl[i].blob, ch->blob[ch->n - 1]))
				continue;
			return say(why, whylen, MU_E_TRUST, "trust list version %" PRIu64 " as served "
				   "differs from the one you trust", v);
		}
		if ((rc = trust_accept_next(last, &tl[i].s, inner, sizeof(inner))) < 0)
			return rc == -ENOMEM ? rc : say(why, whylen, MU_E_TRUST, "trust list version %"
							 PRIu64 " does not follow version %" PRIu64
							 ": %s", v, last->list.version, inner);
		ch->l[ch->n] = &tl[i].s;
		ch->blob[ch->n++] = tl[i].blob;
	}
	return 0;
}

static const struct trust_signed *chain_at(const struct chain *ch, uint64_t version)
{
	for (size_t i = 0; i < ch->n; i++)
		if (ch->l[i]->list.version == version)
			return ch->l[i];
	return NULL;
}

/* Does h count as a head of publisher's dataset? 0 with the raw key that
 * must have signed it, or MU_E_TRUST with why. */
static int head_key(const struct chain *ch, const char *publisher, const struct rec_head *h,
		    uint8_t raw[SIG_PUBKEY_LEN], char *why, size_t whylen)
{
	const struct trust_signed *at;

	if (strcmp(h->publisher, publisher) != 0)
		return say(why, whylen, MU_E_TRUST, "it is signed by %.40s, not by the dataset's "
			   "publisher %s", h->publisher, publisher);
	if (ch->n == 0)
		return say(why, whylen, MU_E_TRUST, "there is no accepted trust list to check it "
			   "against");
	if (h->trust_version == 0)
		return say(why, whylen, MU_E_TRUST, "it was signed under no trust list (trust "
			   "version 0)");
	if ((at = chain_at(ch, h->trust_version)) == NULL)
		return say(why, whylen, MU_E_TRUST, "it was signed under trust list version %" PRIu64
			   ", which is not in the verified chain (versions %" PRIu64 " to %" PRIu64 ")",
			   h->trust_version, ch->l[0]->list.version, ch->l[ch->n - 1]->list.version);
	return trust_check_head(&at->list, &ch->l[ch->n - 1]->list, h, raw, why, whylen);
}

/*
 * Which key must have signed cosignature co? trust_check_cosig (trust.h)
 * says, against the list of the cosignature's trust_version in the
 * verified chain and the newest list of the chain: the rule a node applies
 * before it keeps a cosignature (cosign_check), so that the node and the
 * audit count the same witnesses.
 */
static int witness_key(const struct chain *ch, const Musubi__Cosignature *co,
		       uint8_t raw[SIG_PUBKEY_LEN])
{
	const struct trust_signed *at = chain_at(ch, co->trust_version);
	char why[512];

	if (at == NULL || co->key_id.len != SIG_KEYID_LEN)
		return MU_E_TRUST;
	return trust_check_cosig(&at->list, &ch->l[ch->n - 1]->list, co->witness, co->time_us,
				 co->key_id.data, raw, why, sizeof(why));
}

static int verify_with(const uint8_t raw[SIG_PUBKEY_LEN], const char *prefix, const void *msg,
		       size_t len, const uint8_t *sig, size_t sig_len)
{
	struct sig_key *key = NULL;
	int rc;

	if ((rc = sig_key_from_raw_public(raw, &key)) == 0)
		rc = sig_verify(key, prefix, msg, len, sig, sig_len);
	sig_key_destroy(&key);
	return rc;
}

/* ---- the audit ---- */

/* One validly signed head as one source served it. */
struct cand {
	uint64_t size, trust_version;
	int64_t time_us;
	uint8_t root[32], key_id[SIG_KEYID_LEN], sha256[32], raw[SIG_PUBKEY_LEN];
	const struct audit_blob *blob;
	int source;
	size_t served;   /* its place in the source's history: sorts equal heads */
};

/* What the audit learns about one source. */
struct work {
	uint64_t *decoded;     /* sorted distinct sizes of its heads that decode */
	size_t ndecoded;
	merkle_hash *roots;    /* roots[k]: root of its first sizes[k] entries */
	size_t nroots;         /* roots known for k < nroots */
	int anchored_any;      /* its entries give the root of some signed head */
	uint64_t anchored;     /* ... up to this size */
	size_t anchor;         /* the head they give there */
	size_t entry_problems;
};

struct conflict {
	char *witness;
	uint64_t size;
};

struct ctx {
	const struct audit_params *p;
	const struct audit_source *src;
	size_t nsrc;
	struct audit_report *rep;
	struct tl *tl;           /* served trust lists, one per version, sorted */
	size_t ntl;
	struct tl pin;
	int has_pin;
	struct chain ch;
	struct work *w;
	uint64_t *sizes;         /* distinct sizes of the report's heads */
	size_t nsizes;
	size_t *size_of;         /* report head -> index in sizes */
	uint8_t (*raw)[SIG_PUBKEY_LEN];  /* report head -> the key that signed it */
	struct conflict *conflicts;
	size_t nconflicts;
	int nomem;
};

static void vproblem(struct ctx *c, enum audit_kind k, int source, uint64_t size, const char *fmt,
		     va_list ap) __attribute__((format(printf, 5, 0)));
static void vproblem(struct ctx *c, enum audit_kind k, int source, uint64_t size, const char *fmt,
		     va_list ap)
{
	struct audit_report *rep = c->rep;
	struct audit_problem *p;
	char *msg = NULL;

	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	p = msg ? realloc(rep->problems, (rep->nproblems + 1) * sizeof(*p)) : NULL;
	if (p == NULL) {
		free(msg);
		c->nomem = 1;
		return;
	}
	rep->problems = p;
	p[rep->nproblems++] = (struct audit_problem){ k, source, size, msg };
}

static void problem(struct ctx *c, enum audit_kind k, int source, uint64_t size, const char *fmt,
		    ...) __attribute__((format(printf, 5, 6)));
static void problem(struct ctx *c, enum audit_kind k, int source, uint64_t size, const char *fmt,
		    ...)
{
	va_list ap;

	va_start(ap, fmt);
	vproblem(c, k, source, size, fmt, ap);
	va_end(ap);
}

static void note(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct ctx *c, const char *fmt, ...)
{
	struct audit_report *rep = c->rep;
	char *msg = NULL, **p;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	p = msg ? realloc(rep->notes, (rep->nnotes + 1) * sizeof(*p)) : NULL;
	if (p == NULL) {
		free(msg);
		c->nomem = 1;
		return;
	}
	rep->notes = p;
	p[rep->nnotes++] = msg;
}

static const char *sname(const struct ctx *c, int s)
{
	return c->src[s].name ? c->src[s].name : "a node";
}

/* The names of the sources in bits, joined by ", ". */
static const char *seen_names(const struct ctx *c, uint64_t bits, char *buf, size_t cap)
{
	size_t len = 0;

	buf[0] = '\0';
	for (size_t s = 0; s < c->nsrc && len < cap; s++)
		if (bits & (UINT64_C(1) << s))
			len += (size_t)snprintf(buf + len, cap - len, "%s%s", len ? ", " : "",
						sname(c, (int)s));
	return buf;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static size_t sort_unique(uint64_t *v, size_t n)
{
	size_t k = 0;

	if (n > 1)   /* v may be NULL when n is 0 */
		qsort(v, n, sizeof(*v), cmp_u64);
	for (size_t i = 0; i < n; i++)
		if (k == 0 || v[i] != v[k - 1])
			v[k++] = v[i];
	return k;
}

static int cmp_tl(const void *a, const void *b)
{
	const struct tl *x = a, *y = b;
	if (x->s.list.version != y->s.list.version)
		return x->s.list.version < y->s.list.version ? -1 : 1;
	return x->source - y->source;
}

static int trust_lists(struct ctx *c)
{
	size_t n = 0, k = 0;
	char why[512];
	int rc;

	for (size_t s = 0; s < c->nsrc; s++)
		n += c->src[s].ntrust;
	if ((c->tl = calloc(n + 1, sizeof(*c->tl))) == NULL)
		return -ENOMEM;
	for (size_t s = 0; s < c->nsrc; s++)
		for (size_t i = 0; i < c->src[s].ntrust; i++) {
			struct tl *t = &c->tl[c->ntl];
			const struct audit_blob *b = &c->src[s].trust[i];
			if ((rc = trust_decode(b->data, b->len, &t->s, why, sizeof(why))) < 0) {
				trust_signed_fini(&t->s);
				if (rc == -ENOMEM)
					return rc;
				problem(c, AUDIT_TRUST_LIST, (int)s, 0, "%s serves a trust list that "
					"does not decode: %s", sname(c, (int)s), why);
				continue;
			}
			t->blob = b;
			t->source = (int)s;
			c->ntl++;
		}
	if (c->ntl > 1)   /* tl may be NULL when ntl is 0 */
		qsort(c->tl, c->ntl, sizeof(*c->tl), cmp_tl);
	/* One list per version: two lists of one version are two federations. */
	for (size_t i = 0; i < c->ntl; i++) {
		if (k > 0 && c->tl[i].s.list.version == c->tl[k - 1].s.list.version) {
			if (!same_blob(c->tl[i].blob, c->tl[k - 1].blob))
				problem(c, AUDIT_TRUST_LIST, c->tl[i].source, c->tl[i].s.list.version,
					"%s and %s serve two different trust lists of version %" PRIu64,
					sname(c, c->tl[k - 1].source), sname(c, c->tl[i].source),
					c->tl[i].s.list.version);
			trust_signed_fini(&c->tl[i].s);
			continue;
		}
		c->tl[k++] = c->tl[i];
	}
	c->ntl = k;
	if (c->p->pinned != NULL) {
		rc = trust_decode(c->p->pinned->data, c->p->pinned->len, &c->pin.s, why, sizeof(why));
		if (rc == -ENOMEM)
			return rc;
		if (rc < 0) {
			problem(c, AUDIT_TRUST_LIST, -1, 0, "the trust list you gave does not decode: %s",
				why);
		} else {
			c->pin.blob = c->p->pinned;
			c->pin.source = -1;
			c->has_pin = 1;
		}
	}
	if (c->p->pinned != NULL && !c->has_pin)
		return 0;
	rc = chain_build(&c->ch, c->has_pin ? &c->pin : NULL, c->tl, c->ntl, why, sizeof(why));
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0)
		problem(c, AUDIT_TRUST_LIST, -1, 0, "%s", why);
	if (c->ch.n == 0)
		return 0;
	const struct trust_signed *newest = c->ch.l[c->ch.n - 1];
	const struct trust_member *m = trust_find_member(&newest->list, c->rep->publisher);
	if ((c->rep->trust = calloc(c->ch.n, sizeof(*c->rep->trust))) == NULL ||
	    (m != NULL && (c->rep->publisher_name = strdup(m->name)) == NULL))
		return -ENOMEM;
	memcpy(c->rep->trust, c->ch.blob, c->ch.n * sizeof(*c->rep->trust));
	c->rep->ntrust = c->ch.n;
	c->rep->trust_first = c->ch.l[0]->list.version;
	c->rep->trust_newest = newest->list.version;
	c->rep->trust_pinned = c->has_pin;
	if (!c->has_pin)
		note(c, "the trust lists are anchored on version %" PRIu64 " as %s served it; "
		     "give --trust FILE to anchor them on a copy you trust", c->rep->trust_first,
		     sname(c, c->tl[0].source));
	return 0;
}

static int cmp_cand(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	int d;

	if (x->size != y->size)
		return x->size < y->size ? -1 : 1;
	if ((d = memcmp(x->root, y->root, 32)) != 0 || (d = memcmp(x->sha256, y->sha256, 32)) != 0)
		return d;
	if (x->source != y->source)
		return x->source - y->source;
	return x->served < y->served ? -1 : x->served > y->served;
}

/* Check one served head. 1 and *out filled when it is validly signed. */
static int check_head(struct ctx *c, int s, size_t i, struct cand *out, uint64_t *size_decoded)
{
	const struct audit_blob *b = &c->src[s].heads[i];
	struct head_signed hs;
	struct sig_key *key = NULL;
	char why[512], kid[17];
	int rc, valid = 0;

	if ((rc = head_decode(b->data, b->len, &hs)) < 0) {
		if (rc == -ENOMEM)
			return rc;
		problem(c, AUDIT_DECODE, s, 0, "%s serves a head (number %zu of its history) that "
			"does not decode", sname(c, s), i + 1);
		return 0;
	}
	const struct rec_head *h = &hs.hd->h;
	if (strcmp(h->dataset, c->p->dataset) != 0) {
		problem(c, AUDIT_DECODE, s, h->size, "%s serves a head of %.80s among the heads of %s",
			sname(c, s), h->dataset, c->p->dataset);
		goto out;
	}
	*size_decoded = h->size;
	rc = head_key(&c->ch, c->rep->publisher, h, out->raw, why, sizeof(why));
	if (rc == -ENOMEM)
		goto out;
	if (rc < 0) {
		problem(c, AUDIT_TRUST, s, h->size, "%s: the head at size %" PRIu64 " does not "
			"count: %s", sname(c, s), h->size, why);
	} else if ((rc = sig_key_from_raw_public(out->raw, &key)) < 0 ||
		   head_check_signature(&hs, key) < 0) {
		problem(c, AUDIT_SIGNATURE, s, h->size, "%s serves a head at size %" PRIu64 " whose "
			"signature does not verify under %s's key %s: the publisher did not sign it "
			"as served", sname(c, s), h->size, h->publisher, short_hex(h->key_id, kid));
	} else {
		out->size = h->size;
		out->trust_version = h->trust_version;
		out->time_us = h->time_us;
		memcpy(out->root, h->root, 32);
		memcpy(out->key_id, h->key_id, SIG_KEYID_LEN);
		sig_sha256(hs.sh->head, hs.sh->head_len, out->sha256);
		out->blob = b;
		out->source = s;
		out->served = i;
		valid = 1;
	}
	rc = 0;
out:
	sig_key_destroy(&key);
	head_signed_fini(&hs);
	return rc < 0 ? rc : valid;
}

static int heads(struct ctx *c)
{
	struct audit_report *rep = c->rep;
	struct cand *cand = NULL;
	size_t ncand = 0, total = 0;
	int rc = -ENOMEM;

	for (size_t s = 0; s < c->nsrc; s++)
		total += c->src[s].nheads;
	if ((cand = calloc(total + 1, sizeof(*cand))) == NULL)
		return -ENOMEM;
	for (size_t s = 0; s < c->nsrc; s++) {
		const struct audit_source *src = &c->src[s];
		struct work *w = &c->w[s];
		uint64_t prev = 0;
		int have_prev = 0;
		if ((w->decoded = calloc(src->nheads + 1, sizeof(uint64_t))) == NULL)
			goto out;
		for (size_t i = 0; i < src->nheads; i++) {
			uint64_t size = UINT64_MAX;
			if ((rc = check_head(c, (int)s, i, &cand[ncand], &size)) < 0)
				goto out;
			if (size != UINT64_MAX)
				w->decoded[w->ndecoded++] = size;
			if (rc == 0)
				continue;
			if (have_prev && size < prev)
				problem(c, AUDIT_ROLLBACK, (int)s, size, "%s serves the head at size %"
					PRIu64 " after the head at size %" PRIu64 ": a newer head with a "
					"smaller size, the history was rolled back", sname(c, (int)s),
					size, prev);
			prev = have_prev && prev > size ? prev : size;
			have_prev = 1;
			ncand++;
		}
		w->ndecoded = sort_unique(w->decoded, w->ndecoded);
	}
	if (ncand > 1)   /* cand may be NULL when ncand is 0 */
		qsort(cand, ncand, sizeof(*cand), cmp_cand);
	rc = -ENOMEM;
	if ((rep->heads = calloc(ncand + 1, sizeof(*rep->heads))) == NULL ||
	    (c->raw = calloc(ncand + 1, sizeof(*c->raw))) == NULL ||
	    (c->size_of = calloc(ncand + 1, sizeof(*c->size_of))) == NULL ||
	    (c->sizes = calloc(ncand + 1, sizeof(*c->sizes))) == NULL)
		goto out;
	for (size_t i = 0; i < ncand; i++) {
		const struct cand *x = &cand[i];
		struct audit_head *h = &rep->heads[rep->nheads - (rep->nheads > 0)];
		if (rep->nheads == 0 || h->size != x->size || memcmp(h->sha256, x->sha256, 32) != 0) {
			h = &rep->heads[rep->nheads];
			h->size = x->size;
			memcpy(h->root, x->root, 32);
			h->time_us = x->time_us;
			h->trust_version = x->trust_version;
			memcpy(h->key_id, x->key_id, SIG_KEYID_LEN);
			memcpy(h->sha256, x->sha256, 32);
			h->signed_head = x->blob;
			h->state = AUDIT_HEAD_UNCHECKED;
			memcpy(c->raw[rep->nheads], x->raw, SIG_PUBKEY_LEN);
			if (c->nsizes == 0 || c->sizes[c->nsizes - 1] != x->size)
				c->sizes[c->nsizes++] = x->size;
			c->size_of[rep->nheads++] = c->nsizes - 1;
		}
		h->seen_by |= UINT64_C(1) << x->source;
	}
	rc = 0;
out:
	free(cand);
	return rc;
}

static void entry_problem(struct ctx *c, int s, uint64_t seq, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void entry_problem(struct ctx *c, int s, uint64_t seq, const char *fmt, ...)
{
	va_list ap;

	if (c->w[s].entry_problems++ >= ENTRY_PROBLEMS_MAX)
		return;
	va_start(ap, fmt);
	vproblem(c, AUDIT_ENTRY, s, seq, fmt, ap);
	va_end(ap);
}

/* Decode every entry of every source, and the root of its first SIZE
 * entries for every head size. */
/* A redacted entry: its leaf hash stays (so roots still verify); say what
 * was redacted, when, by whom and why, and check the stub is in place. */
static void redacted(struct ctx *c, int s, uint64_t seq, const struct audit_blob *b)
{
	struct redact_stub st;
	Musubi__SignedRedaction *sr;
	Musubi__RedactionNotice *n = NULL;

	if (redact_stub_decode(b->data, b->len, &st) < 0) {
		entry_problem(c, s, seq, "%s: entry %" PRIu64 " is a malformed redaction stub",
			      sname(c, s), seq);
		return;
	}
	if (st.seq != seq || strcmp(st.dataset, c->p->dataset) != 0)
		entry_problem(c, s, seq, "%s: redacted entry %" PRIu64 " claims another place",
			      sname(c, s), seq);
	sr = musubi__signed_redaction__unpack(NULL, st.notice_len, st.notice);
	if (sr != NULL)
		n = musubi__redaction_notice__unpack(NULL, sr->notice.len, sr->notice.data);
	if (n == NULL || n->seq != seq || n->leaf_hash.len != 32 ||
	    memcmp(n->leaf_hash.data, st.leaf_hash, 32) != 0) {
		entry_problem(c, s, seq, "%s: entry %" PRIu64 " was redacted without a notice that "
			      "names it", sname(c, s), seq);
	} else if (s == 0) {
		char when[32];
		mu_format_time(n->time_us, when, sizeof(when));
		note(c, "entry %" PRIu64 " was redacted by %.64s at %s: %.200s (its leaf hash stays "
		     "in every root)", seq, n->publisher, when, n->reason);
	}
	if (n)
		musubi__redaction_notice__free_unpacked(n, NULL);
	if (sr)
		musubi__signed_redaction__free_unpacked(sr, NULL);
	redact_stub_fini(&st);
}

static int entries(struct ctx *c)
{
	for (size_t si = 0; si < c->nsrc; si++) {
		const struct audit_source *src = &c->src[si];
		struct work *w = &c->w[si];
		struct merkle_frontier fr;
		int s = (int)si;
		size_t k = 0;

		if ((w->roots = calloc(c->nsizes + 1, sizeof(*w->roots))) == NULL)
			return -ENOMEM;
		merkle_frontier_init(&fr);
		for (uint64_t seq = 0;; seq++) {
			struct rec_entry_decoded *d = NULL;
			merkle_hash leaf;
			int rc;
			while (k < c->nsizes && c->sizes[k] == fr.size)
				merkle_frontier_root(&fr, w->roots[k++]);
			if (seq == src->nentries)
				break;
			rc = redact_leaf_hash(src->entries[seq].data, src->entries[seq].len, leaf);
			if (rc < 0) {
				entry_problem(c, s, seq, "%s: entry %" PRIu64 " is a malformed redaction "
					      "stub", sname(c, s), seq);
				memset(leaf, 0, sizeof(leaf));
			}
			merkle_frontier_append(&fr, leaf, NULL, NULL);
			if (rc == 1) {
				redacted(c, s, seq, &src->entries[seq]);
				continue;
			}
			rc = rec_entry_decode(src->entries[seq].data, src->entries[seq].len, &d);
			if (rc == -ENOMEM)
				return rc;
			if (rc < 0)
				entry_problem(c, s, seq, "%s: entry %" PRIu64 " does not decode",
					      sname(c, s), seq);
			else if (strcmp(d->e.dataset, c->p->dataset) != 0 || d->e.seq != seq)
				entry_problem(c, s, seq, "%s: entry %" PRIu64 " claims to be %.80s #%"
					      PRIu64 ": entries were swapped, moved or altered",
					      sname(c, s), seq, d->e.dataset, d->e.seq);
			rec_entry_free(&d);
		}
		w->nroots = k;
		if (w->entry_problems > ENTRY_PROBLEMS_MAX)
			problem(c, AUDIT_ENTRY, s, 0, "%s: %zu more entries are out of place or do "
				"not decode", sname(c, s), w->entry_problems - ENTRY_PROBLEMS_MAX);
	}
	return 0;
}

static int gives(const struct ctx *c, int s, size_t h)
{
	const struct work *w = &c->w[s];
	size_t k = c->size_of[h];

	return k < w->nroots && memcmp(w->roots[k], c->rep->heads[h].root, 32) == 0;
}

/* Which signed heads do each source's entries give? */
static void anchors(struct ctx *c)
{
	for (size_t h = 0; h < c->rep->nheads; h++)
		for (size_t s = 0; s < c->nsrc; s++) {
			struct work *w = &c->w[s];
			if (!gives(c, (int)s, h))
				continue;
			c->rep->heads[h].state = AUDIT_HEAD_VERIFIED;
			w->anchored_any = 1;
			w->anchored = c->rep->heads[h].size;
			w->anchor = h;
		}
}

/* The first entry in [from, to) where s and t serve different bytes. */
static uint64_t first_difference(const struct ctx *c, int s, int t, uint64_t from, uint64_t to)
{
	for (uint64_t i = from; i < to; i++)
		if (!same_blob(&c->src[s].entries[i], &c->src[t].entries[i]))
			return i;
	return to;
}

/* Each source's own heads against its own entries (a head its entries do
 * not give, below a head they do give, is a fork: see forks()). */
static void roots(struct ctx *c)
{
	for (size_t si = 0; si < c->nsrc; si++) {
		const struct work *w = &c->w[si];
		int s = (int)si, reported = 0;
		uint64_t last_ok = 0, newest = 0;
		size_t more = 0;
		char hint[256];

		for (size_t h = 0; h < c->rep->nheads; h++) {
			const struct audit_head *hd = &c->rep->heads[h];
			if (gives(c, s, h)) {
				last_ok = hd->size;
				continue;
			}
			if (!(hd->seen_by & (UINT64_C(1) << s)))
				continue;
			if (c->size_of[h] >= w->nroots || (w->anchored_any && hd->size <= w->anchored))
				continue;
			if (reported++) {
				more++;
				continue;
			}
			hint[0] = '\0';
			for (size_t t = 0; t < c->nsrc; t++) {
				if (t == si || !c->w[t].anchored_any || c->w[t].anchored < hd->size)
					continue;
				uint64_t d = first_difference(c, s, (int)t, last_ok, hd->size);
				if (d < hd->size)
					snprintf(hint, sizeof(hint), " (entry %" PRIu64 " differs from what "
						 "%s serves)", d, sname(c, (int)t));
				break;
			}
			problem(c, AUDIT_ROOT, s, hd->size, "%s: its entries do not give the signed "
				"root of the head at size %" PRIu64 ": entries %" PRIu64 " to %" PRIu64
				" were altered, swapped, inserted or removed%s", sname(c, s), hd->size,
				last_ok, hd->size - 1, hint);
		}
		for (size_t h = 0; h < c->rep->nheads; h++)
			if (c->rep->heads[h].seen_by & (UINT64_C(1) << s))
				newest = c->rep->heads[h].size;
		if (more > 0)
			problem(c, AUDIT_ROOT, s, 0, "%s: nor do they give the roots of its %zu later "
				"heads", sname(c, s), more);
		if (newest > c->src[si].nentries)
			problem(c, AUDIT_TRUNCATED, s, newest, "%s serves %zu entries, but its newest "
				"head covers %" PRIu64 ": the history is truncated", sname(c, s),
				c->src[si].nentries, newest);
	}
}

static void add_fork(struct ctx *c, size_t a, size_t b, int by)
{
	struct audit_report *rep = c->rep;
	struct audit_fork *f;
	char ra[17], rb[17], rx[17], sa[256], sb[256];

	if (rep->heads[a].size > rep->heads[b].size || (rep->heads[a].size == rep->heads[b].size && a > b)) {
		size_t t = a;
		a = b;
		b = t;
	}
	for (size_t i = 0; i < rep->nforks; i++)
		if (rep->forks[i].a == a && rep->forks[i].b == b)
			return;
	if ((f = realloc(rep->forks, (rep->nforks + 1) * sizeof(*f))) == NULL) {
		c->nomem = 1;
		return;
	}
	rep->forks = f;
	f[rep->nforks++] = (struct audit_fork){ a, b };
	const struct audit_head *x = &rep->heads[a], *y = &rep->heads[b];
	rep->heads[a].state = rep->heads[b].state = AUDIT_HEAD_FORKED;
	if (rep->nforks > FORK_PROBLEMS_MAX)
		return;
	seen_names(c, x->seen_by, sa, sizeof(sa));
	seen_names(c, y->seen_by, sb, sizeof(sb));
	if (x->size == y->size)
		problem(c, AUDIT_FORK, -1, x->size, "the publisher signed two different heads at "
			"size %" PRIu64 ": root %s (served by %s) and root %s (served by %s)", x->size,
			short_hex(x->root, ra), sa, short_hex(y->root, rb), sb);
	else
		problem(c, AUDIT_FORK, -1, x->size, "the publisher signed two histories: the head at "
			"size %" PRIu64 " (root %s, served by %s) is not a prefix of the head at size %"
			PRIu64 " (root %s, served by %s), whose entries as %s serves them give root %s "
			"at size %" PRIu64, x->size, short_hex(x->root, ra), sa, y->size,
			short_hex(y->root, rb), sb, sname(c, by),
			short_hex(c->w[by].roots[c->size_of[a]], rx), x->size);
}

static void forks(struct ctx *c)
{
	struct audit_report *rep = c->rep;

	for (size_t h = 1; h < rep->nheads; h++)
		for (size_t g = h; g-- > 0 && rep->heads[g].size == rep->heads[h].size;)
			if (memcmp(rep->heads[g].root, rep->heads[h].root, 32) != 0) {
				add_fork(c, g, h, -1);
				break;
			}
	for (size_t h = 0; h < rep->nheads; h++)
		for (size_t s = 0; s < c->nsrc; s++) {
			const struct work *w = &c->w[s];
			/* Once both are known to be forked, the pair adds nothing. */
			if (w->anchored_any && rep->heads[h].size <= w->anchored && !gives(c, (int)s, h) &&
			    rep->heads[h].size != rep->heads[w->anchor].size &&
			    (rep->heads[h].state != AUDIT_HEAD_FORKED ||
			     rep->heads[w->anchor].state != AUDIT_HEAD_FORKED))
				add_fork(c, h, w->anchor, (int)s);
		}
	if (rep->nforks > FORK_PROBLEMS_MAX)
		problem(c, AUDIT_FORK, -1, 0, "and %zu more pairs of signed heads that do not extend "
			"one another", rep->nforks - FORK_PROBLEMS_MAX);
}

/* The history the report shows: the source whose entries give the largest
 * signed head. */
static void reference(struct ctx *c)
{
	int best = -1;

	for (size_t s = 0; s < c->nsrc; s++)
		if (c->w[s].anchored_any && (best < 0 || c->w[s].anchored > c->w[best].anchored))
			best = (int)s;
	c->rep->reference = best;
	if (best < 0)
		return;
	c->rep->entries = c->w[best].anchored;
	for (size_t h = 0; h < c->rep->nheads; h++)
		c->rep->heads[h].history = c->rep->heads[h].size <= c->w[best].anchored &&
					   gives(c, best, h);
}

/* Sorted by size, heads must not go back in time: a smaller head dated
 * after a larger one is a rollback. Heads of a fork are left out: two
 * histories need not agree on time, and the fork says more. */
static void rollback(struct ctx *c)
{
	const struct audit_report *rep = c->rep;
	size_t latest = SIZE_MAX, i = 0;
	char a[32], b[32];

	while (i < rep->nheads) {
		size_t j = i, group_latest = SIZE_MAX;
		for (; j < rep->nheads && rep->heads[j].size == rep->heads[i].size; j++) {
			const struct audit_head *h = &rep->heads[j];
			if (h->state == AUDIT_HEAD_FORKED)
				continue;
			if (latest != SIZE_MAX && h->time_us < rep->heads[latest].time_us) {
				trust_format_time(rep->heads[latest].time_us, a, sizeof(a));
				trust_format_time(h->time_us, b, sizeof(b));
				problem(c, AUDIT_ROLLBACK, -1, h->size, "the head at size %" PRIu64
					" (dated %s) is newer than the head at size %" PRIu64 " (dated %s): "
					"the history was rolled back, or its time went backwards",
					rep->heads[latest].size, a, h->size, b);
			}
			if (group_latest == SIZE_MAX || h->time_us > rep->heads[group_latest].time_us)
				group_latest = j;
		}
		if (group_latest != SIZE_MAX && (latest == SIZE_MAX ||
		    rep->heads[group_latest].time_us > rep->heads[latest].time_us))
			latest = group_latest;
		i = j;
	}
}

/* The first report head of at least size (heads are sorted by size). */
static size_t lower_bound(const struct audit_report *rep, uint64_t size)
{
	size_t lo = 0, hi = rep->nheads;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (rep->heads[mid].size < size)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The report head of size that source s served validly, or SIZE_MAX. */
static size_t head_at(const struct ctx *c, int s, uint64_t size)
{
	for (size_t h = lower_bound(c->rep, size); h < c->rep->nheads && c->rep->heads[h].size == size;
	     h++)
		if (c->rep->heads[h].seen_by & (UINT64_C(1) << s))
			return h;
	return SIZE_MAX;
}

/* Each node's proof between each two of its successive heads. */
static void consistency(struct ctx *c)
{
	for (size_t si = 0; si < c->nsrc; si++) {
		const struct audit_source *src = &c->src[si];
		const struct work *w = &c->w[si];
		int s = (int)si;
		for (size_t i = 1; i < w->ndecoded; i++) {
			uint64_t a = w->decoded[i - 1], b = w->decoded[i];
			size_t ha = head_at(c, s, a), hb = head_at(c, s, b);
			const struct audit_consistency *pr = NULL;
			if (a == 0 || ha == SIZE_MAX || hb == SIZE_MAX)
				continue;
			for (size_t k = 0; k < src->nproofs && pr == NULL; k++)
				if (src->proofs[k].old_size == a && src->proofs[k].new_size == b)
					pr = &src->proofs[k];
			if (pr == NULL)
				problem(c, AUDIT_CONSISTENCY, s, b, "%s gave no consistency proof from "
					"size %" PRIu64 " to %" PRIu64, sname(c, s), a, b);
			else if (pr->error != NULL)
				problem(c, AUDIT_CONSISTENCY, s, b, "%s did not serve the consistency "
					"proof from size %" PRIu64 " to %" PRIu64 ": %s", sname(c, s), a, b,
					pr->error);
			else if (merkle_verify_consistency(a, b, c->rep->heads[ha].root,
							   c->rep->heads[hb].root,
							   (const merkle_hash *)pr->hashes, pr->n) < 0)
				problem(c, AUDIT_CONSISTENCY, s, b, "%s serves a consistency proof from "
					"size %" PRIu64 " to %" PRIu64 " that does not verify against the "
					"signed roots", sname(c, s), a, b);
		}
	}
}

static void nodes(struct ctx *c)
{
	struct audit_report *rep = c->rep;
	uint64_t newest = 0;
	size_t served = 0, *last = calloc(c->nsrc, sizeof(*last));

	if (last == NULL) {
		c->nomem = 1;
		return;
	}
	for (size_t s = 0; s < c->nsrc; s++) {
		struct audit_node *n = &rep->nodes[s];
		last[s] = SIZE_MAX;
		for (size_t h = 0; h < rep->nheads; h++)
			if (rep->heads[h].seen_by & (UINT64_C(1) << s)) {
				n->newest = rep->heads[h].size;
				last[s] = h;
			}
		n->entries = c->src[s].nentries;
		n->verified = c->w[s].anchored;
		n->cosigs = c->src[s].ncosigs;
		newest = n->newest > newest ? n->newest : newest;
		served += c->src[s].nheads;
		if (c->src[s].nheads == 0 && c->src[s].error == NULL)
			note(c, "%s holds no head of %s", sname(c, (int)s), c->p->dataset);
	}
	/* Behind: its newest head is a prefix of another node's; a node on the
	 * other side of a fork is not behind, it was shown another history. */
	for (size_t s = 0; s < c->nsrc; s++)
		if (rep->nodes[s].newest < newest && last[s] != SIZE_MAX &&
		    rep->heads[last[s]].state != AUDIT_HEAD_FORKED) {
			rep->nodes[s].behind = 1;
			note(c, "%s is behind: its newest head is at size %" PRIu64 ", another node's "
			     "at %" PRIu64, sname(c, (int)s), rep->nodes[s].newest, newest);
		}
	free(last);
	if (served == 0)
		problem(c, AUDIT_FETCH, -1, 0, "no node served any head of %s", c->p->dataset);
}

static void keys(struct ctx *c)
{
	struct audit_report *rep = c->rep;

	for (size_t h = 0; h < rep->nheads; h++) {
		struct audit_key *k = NULL;
		for (size_t i = 0; i < rep->nkeys && k == NULL; i++)
			if (memcmp(rep->keys[i].key_id, rep->heads[h].key_id, SIG_KEYID_LEN) == 0)
				k = &rep->keys[i];
		if (k == NULL) {
			if ((k = realloc(rep->keys, (rep->nkeys + 1) * sizeof(*k))) == NULL) {
				c->nomem = 1;
				return;
			}
			rep->keys = k;
			k = &rep->keys[rep->nkeys++];
			memset(k, 0, sizeof(*k));
			memcpy(k->key_id, rep->heads[h].key_id, SIG_KEYID_LEN);
			memcpy(k->raw, c->raw[h], SIG_PUBKEY_LEN);
			k->first_size = rep->heads[h].size;
		}
		k->heads++;
		k->last_size = rep->heads[h].size;
	}
}

static void schemas(struct ctx *c)
{
	struct audit_report *rep = c->rep;
	struct audit_schema *last = NULL;

	if (rep->reference < 0)
		return;
	for (uint64_t seq = 0; seq < rep->entries; seq++) {
		const struct audit_blob *b = &c->src[rep->reference].entries[seq];
		struct rec_entry_decoded *d = NULL;
		char ref[160];
		if (rec_entry_decode(b->data, b->len, &d) < 0)
			continue;
		if (d->e.schema_id != NULL)
			snprintf(ref, sizeof(ref), "%.140s@%u", d->e.schema_id, d->e.schema_version);
		else
			snprintf(ref, sizeof(ref), "-");
		rec_entry_free(&d);
		if (last == NULL || strcmp(last->ref, ref) != 0) {
			last = NULL;
			for (size_t i = 0; i < rep->nschemas && last == NULL; i++)
				if (strcmp(rep->schemas[i].ref, ref) == 0)
					last = &rep->schemas[i];
		}
		if (last == NULL) {
			struct audit_schema *n = realloc(rep->schemas, (rep->nschemas + 1) * sizeof(*n));
			char *r = n ? strdup(ref) : NULL;
			if (r == NULL) {
				if (n)
					rep->schemas = n;
				c->nomem = 1;
				return;
			}
			rep->schemas = n;
			last = &n[rep->nschemas++];
			*last = (struct audit_schema){ r, 0, seq, seq };
		}
		last->entries++;
		last->last_seq = seq;
	}
}

static int has_witness(const struct audit_head *h, const char *w)
{
	for (size_t i = 0; i < h->nwitnesses; i++)
		if (strcmp(h->witnesses[i], w) == 0)
			return 1;
	return 0;
}

/* Insert w into the sorted list of h's witnesses. */
static int add_witness(struct audit_head *h, const char *w)
{
	char **n = realloc(h->witnesses, (h->nwitnesses + 1) * sizeof(*n));
	size_t i;

	if (n == NULL)
		return -ENOMEM;
	h->witnesses = n;
	for (i = h->nwitnesses; i > 0 && strcmp(n[i - 1], w) > 0; i--)
		n[i] = n[i - 1];
	if ((n[i] = strdup(w)) == NULL) {
		memmove(&n[i], &n[i + 1], (h->nwitnesses - i) * sizeof(*n));
		return -ENOMEM;
	}
	h->nwitnesses++;
	return 0;
}

/* A validly signed cosignature of a head we did not see at a size we saw. */
static void witness_conflict(struct ctx *c, int s, const Musubi__Cosignature *co, size_t first)
{
	struct conflict *n;
	char sha[17], seen[256];

	for (size_t i = 0; i < c->nconflicts; i++)
		if (c->conflicts[i].size == co->size && strcmp(c->conflicts[i].witness, co->witness) == 0)
			return;
	if ((n = realloc(c->conflicts, (c->nconflicts + 1) * sizeof(*n))) == NULL) {
		c->nomem = 1;
		return;
	}
	c->conflicts = n;
	if ((n[c->nconflicts].witness = strdup(co->witness)) == NULL) {
		c->nomem = 1;
		return;
	}
	n[c->nconflicts++].size = co->size;
	problem(c, AUDIT_WITNESS_CONFLICT, s, co->size, "witness %.40s cosigned a head at size %"
		PRIu64 " (TreeHead SHA-256 %s) that is not the one %s served: it was shown another "
		"history (cosignature served by %s)", co->witness, co->size,
		short_hex(co->head_sha256.data, sha), seen_names(c, c->rep->heads[first].seen_by, seen,
								 sizeof(seen)), sname(c, s));
}

static void cosig(struct ctx *c, int s, const struct audit_blob *b)
{
	struct audit_report *rep = c->rep;
	Musubi__SignedCosignature *sc = musubi__signed_cosignature__unpack(NULL, b->len, b->data);
	Musubi__Cosignature *co = sc ? musubi__cosignature__unpack(NULL, sc->cosig.len, sc->cosig.data)
				     : NULL;
	uint8_t raw[SIG_PUBKEY_LEN];
	size_t first = SIZE_MAX, match = SIZE_MAX;

	if (co == NULL || strcmp(co->dataset, c->p->dataset) != 0 || co->head_sha256.len != 32) {
		rep->cosigs_invalid++;
		goto out;
	}
	for (size_t h = lower_bound(rep, co->size);
	     h < rep->nheads && rep->heads[h].size == co->size && match == SIZE_MAX; h++) {
		first = first == SIZE_MAX ? h : first;
		if (memcmp(rep->heads[h].sha256, co->head_sha256.data, 32) == 0)
			match = h;
	}
	if (first == SIZE_MAX) {
		rep->cosigs_unmatched++;
		goto out;
	}
	/* The same statement again (from another node, or made twice) adds nothing. */
	if (match != SIZE_MAX && has_witness(&rep->heads[match], co->witness))
		goto out;
	if (c->ch.n == 0 || witness_key(&c->ch, co, raw) < 0 ||
	    verify_with(raw, SIG_CTX_COSIGN, sc->cosig.data, sc->cosig.len, sc->signature.data,
			sc->signature.len) < 0) {
		rep->cosigs_invalid++;
		goto out;
	}
	rep->cosigs_valid++;
	if (match == SIZE_MAX)
		witness_conflict(c, s, co, first);
	else if (strcmp(co->witness, rep->publisher) != 0 &&
		 add_witness(&rep->heads[match], co->witness) < 0)
		c->nomem = 1;
out:
	if (co)
		musubi__cosignature__free_unpacked(co, NULL);
	if (sc)
		musubi__signed_cosignature__free_unpacked(sc, NULL);
}

/* Witnesses of a head of the history: its own, and those of every later
 * head of the history, which the entries prove it a prefix of. */
static void witnesses(struct ctx *c)
{
	struct audit_report *rep = c->rep;
	const char **acc = calloc(1, sizeof(*acc));
	size_t nacc = 0;

	for (size_t s = 0; s < c->nsrc; s++)
		for (size_t i = 0; i < c->src[s].ncosigs; i++)
			cosig(c, (int)s, &c->src[s].cosigs[i]);
	for (size_t h = rep->nheads; h-- > 0;) {
		struct audit_head *hd = &rep->heads[h];
		hd->witnessed = hd->nwitnesses;
		if (!hd->history || acc == NULL)
			continue;
		for (size_t i = 0; i < hd->nwitnesses; i++) {
			size_t k = 0;
			while (k < nacc && strcmp(acc[k], hd->witnesses[i]) != 0)
				k++;
			if (k == nacc) {
				const char **n = realloc(acc, (nacc + 1) * sizeof(*n));
				if (n == NULL) {
					c->nomem = 1;
					break;
				}
				acc = n;
				acc[nacc++] = hd->witnesses[i];
			}
		}
		hd->witnessed = nacc;
	}
	if (acc == NULL)
		c->nomem = 1;
	free(acc);
	if (c->p->min_witnesses == 0)
		return;
	for (size_t h = 0; h < rep->nheads; h++)
		if (rep->heads[h].witnessed < c->p->min_witnesses)
			problem(c, AUDIT_WITNESSES, -1, rep->heads[h].size, "the head at size %" PRIu64
				" has %zu witness%s, fewer than the %u asked for", rep->heads[h].size,
				rep->heads[h].witnessed, rep->heads[h].witnessed == 1 ? "" : "es",
				c->p->min_witnesses);
}

static void ctx_fini(struct ctx *c)
{
	for (size_t s = 0; c->w != NULL && s < c->nsrc; s++) {
		free(c->w[s].decoded);
		free(c->w[s].roots);
	}
	free(c->w);
	for (size_t i = 0; i < c->ntl; i++)
		trust_signed_fini(&c->tl[i].s);
	free(c->tl);
	if (c->has_pin || c->p->pinned != NULL)
		trust_signed_fini(&c->pin.s);
	chain_fini(&c->ch);
	free(c->sizes);
	free(c->size_of);
	free(c->raw);
	for (size_t i = 0; i < c->nconflicts; i++)
		free(c->conflicts[i].witness);
	free(c->conflicts);
}

int audit_run(const struct audit_params *p, const struct audit_source *src, size_t nsrc,
	      struct audit_report *rep)
{
	struct ctx c = { .p = p, .src = src, .nsrc = nsrc, .rep = rep };
	const char *slash;
	int rc;

	memset(rep, 0, sizeof(*rep));
	rep->reference = -1;
	if (p == NULL || p->dataset == NULL || nsrc == 0 || nsrc > AUDIT_MAX_SOURCES ||
	    (slash = strchr(p->dataset, '/')) == NULL)
		return MU_E_USAGE;
	if ((rep->publisher = strndup(p->dataset, (size_t)(slash - p->dataset))) == NULL ||
	    (rep->nodes = calloc(nsrc, sizeof(*rep->nodes))) == NULL ||
	    (c.w = calloc(nsrc, sizeof(*c.w))) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	rep->nnodes = nsrc;
	for (size_t s = 0; s < nsrc; s++)
		if (src[s].error != NULL)
			problem(&c, AUDIT_FETCH, (int)s, 0, "%s: %s", sname(&c, (int)s), src[s].error);
	if ((rc = trust_lists(&c)) < 0 || (rc = heads(&c)) < 0 || (rc = entries(&c)) < 0)
		goto out;
	anchors(&c);
	roots(&c);
	forks(&c);
	reference(&c);
	rollback(&c);
	consistency(&c);
	nodes(&c);
	keys(&c);
	schemas(&c);
	witnesses(&c);
	rc = c.nomem ? -ENOMEM : rep->nproblems > 0 ? MU_E_CORRUPT : 0;
out:
	ctx_fini(&c);
	return rc;
}

void audit_report_fini(struct audit_report *rep)
{
	free(rep->publisher);
	free(rep->publisher_name);
	free(rep->trust);
	for (size_t h = 0; h < rep->nheads; h++) {
		for (size_t i = 0; i < rep->heads[h].nwitnesses; i++)
			free(rep->heads[h].witnesses[i]);
		free(rep->heads[h].witnesses);
	}
	free(rep->heads);
	free(rep->forks);
	free(rep->keys);
	for (size_t i = 0; i < rep->nschemas; i++)
		free(rep->schemas[i].ref);
	free(rep->schemas);
	free(rep->nodes);
	for (size_t i = 0; i < rep->nproblems; i++)
		free(rep->problems[i].message);
	free(rep->problems);
	for (size_t i = 0; i < rep->nnotes; i++)
		free(rep->notes[i]);
	free(rep->notes);
	memset(rep, 0, sizeof(*rep));
	rep->reference = -1;
}

int audit_head_sizes(const struct audit_blob *heads, size_t n, uint64_t **sizes, size_t *nsizes)
{
	uint64_t *v = calloc(n + 1, sizeof(*v));
	size_t k = 0;

	*sizes = NULL;
	*nsizes = 0;
	if (v == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct head_signed hs;
		if (head_decode(heads[i].data, heads[i].len, &hs) < 0)
			continue;
		v[k++] = hs.hd->h.size;
		head_signed_fini(&hs);
	}
	*nsizes = sort_unique(v, k);
	*sizes = v;
	return 0;
}

/* ---- row proofs ---- */

static int key_pem(const uint8_t raw[SIG_PUBKEY_LEN], char **pem)
{
	EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, SIG_PUBKEY_LEN);
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	long len;
	int rc = MU_E_CRYPTO;

	*pem = NULL;
	if (k != NULL && b != NULL && PEM_write_bio_PUBKEY(b, k) == 1 &&
	    (len = BIO_get_mem_data(b, &data)) > 0) {
		rc = (*pem = strndup(data, (size_t)len)) == NULL ? -ENOMEM : 0;
	}
	BIO_free(b);
	EVP_PKEY_free(k);
	ERR_clear_error();
	return rc;
}

static int key_from_pem(const char *pem, uint8_t raw[SIG_PUBKEY_LEN])
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = b ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL) : NULL;
	size_t len = SIG_PUBKEY_LEN;
	int rc = MU_E_KEY;

	if (k != NULL && EVP_PKEY_get_id(k) == EVP_PKEY_ED25519 &&
	    EVP_PKEY_get_raw_public_key(k, raw, &len) == 1 && len == SIG_PUBKEY_LEN)
		rc = 0;
	EVP_PKEY_free(k);
	BIO_free(b);
	/* Hostile PEM leaves reasons on OpenSSL's queue: not ours to keep. */
	ERR_clear_error();
	return rc;
}

static int blob_dup(struct audit_blob *out, const void *data, size_t len)
{
	out->len = 0;
	if ((out->data = malloc(len ? len : 1)) == NULL)
		return -ENOMEM;
	if (len > 0)
		memcpy(out->data, data, len);
	out->len = len;
	return 0;
}

/* Everything audit_proof_check does; the key PEM only when there is one.
 * raw receives the key the trust lists name. */
static int proof_verify(const struct audit_row_proof *p, const struct audit_blob *pinned,
			struct audit_proof_info *info, uint8_t raw[SIG_PUBKEY_LEN], char *why,
			size_t whylen)
{
	struct rec_entry_decoded *d = NULL;
	struct head_signed hs = { 0 };
	struct tl *tl = NULL, pin = { 0 };
	struct chain ch = { 0 };
	struct sig_key *key = NULL;
	merkle_hash leaf;
	uint8_t pem_raw[SIG_PUBKEY_LEN];
	const char *slash;
	char inner[512], publisher[64];
	size_t ntl = 0;
	int rc;

	memset(info, 0, sizeof(*info));
	if (p->dataset == NULL || (slash = strchr(p->dataset, '/')) == NULL ||
	    (size_t)(slash - p->dataset) >= sizeof(publisher)) {
		rc = say(why, whylen, MU_E_DECODE, "the proof names no dataset MEMBER/NAME");
		goto out;
	}
	snprintf(publisher, sizeof(publisher), "%.*s", (int)(slash - p->dataset), p->dataset);
	if ((rc = rec_entry_decode(p->entry.data, p->entry.len, &d)) < 0) {
		say(why, whylen, rc, "the entry does not decode");
		goto out;
	}
	if (strcmp(d->e.dataset, p->dataset) != 0 || d->e.seq != p->seq) {
		rc = say(why, whylen, MU_E_PROOF, "the entry is %.80s #%" PRIu64 ", not %s #%" PRIu64,
			 d->e.dataset, d->e.seq, p->dataset, p->seq);
		goto out;
	}
	merkle_leaf_hash(p->entry.data, p->entry.len, leaf);
	if (memcmp(leaf, p->leaf, sizeof(leaf)) != 0) {
		rc = say(why, whylen, MU_E_PROOF, "the leaf hash is not SHA-256(0x00 || entry)");
		goto out;
	}
	if ((rc = head_decode(p->signed_head.data, p->signed_head.len, &hs)) < 0) {
		say(why, whylen, rc, "the signed head does not decode");
		goto out;
	}
	const struct rec_head *h = &hs.hd->h;
	if (strcmp(h->dataset, p->dataset) != 0) {
		rc = say(why, whylen, MU_E_PROOF, "the signed head is one of %.80s", h->dataset);
		goto out;
	}
	if (merkle_verify_inclusion(leaf, p->seq, h->size, (const merkle_hash *)p->path, p->npath,
				    h->root) < 0) {
		rc = say(why, whylen, MU_E_PROOF, "the inclusion proof does not bind entry %" PRIu64
			 " to the root of the signed head at size %" PRIu64, p->seq, h->size);
		goto out;
	}
	if ((tl = calloc(p->ntrust + 1, sizeof(*tl))) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (; ntl < p->ntrust; ntl++) {
		if ((rc = trust_decode(p->trust[ntl].data, p->trust[ntl].len, &tl[ntl].s, inner,
				       sizeof(inner))) < 0) {
			trust_signed_fini(&tl[ntl].s);
			say(why, whylen, rc, "trust list %zu of the proof does not decode: %s", ntl + 1,
			    inner);
			goto out;
		}
		tl[ntl].blob = &p->trust[ntl];
		if (ntl > 0 && tl[ntl].s.list.version <= tl[ntl - 1].s.list.version) {
			ntl++;
			rc = say(why, whylen, MU_E_DECODE, "the proof's trust lists are not in "
				 "ascending versions");
			goto out;
		}
	}
	if (pinned != NULL) {
		if ((rc = trust_decode(pinned->data, pinned->len, &pin.s, inner, sizeof(inner))) < 0) {
			say(why, whylen, rc, "the trust list you gave does not decode: %s", inner);
			goto out;
		}
		pin.blob = pinned;
	}
	if ((rc = chain_build(&ch, pinned ? &pin : NULL, tl, ntl, why, whylen)) < 0)
		goto out;
	if (pinned != NULL) {
		int found = 0;
		for (size_t i = 0; i < ntl; i++)
			found |= same_blob(&p->trust[i], pinned);
		if (!found) {
			rc = say(why, whylen, MU_E_TRUST, "the trust list you trust (version %" PRIu64
				 ") is not among the proof's", pin.s.list.version);
			goto out;
		}
	}
	if ((rc = head_key(&ch, publisher, h, raw, inner, sizeof(inner))) < 0) {
		say(why, whylen, rc, "the head does not count: %s", inner);
		goto out;
	}
	if (p->key_pem != NULL && (key_from_pem(p->key_pem, pem_raw) < 0 ||
				   memcmp(pem_raw, raw, SIG_PUBKEY_LEN) != 0)) {
		rc = say(why, whylen, MU_E_TRUST, "the proof's public key is not the key the trust "
			 "lists give %s", publisher);
		goto out;
	}
	if ((rc = sig_key_from_raw_public(raw, &key)) < 0 ||
	    (rc = head_check_signature(&hs, key)) < 0) {
		say(why, whylen, rc, "the head's signature does not verify under %s's key", publisher);
		goto out;
	}
	snprintf(info->publisher, sizeof(info->publisher), "%s", publisher);
	info->size = h->size;
	info->head_time_us = h->time_us;
	info->entry_time_us = d->e.time_us;
	info->trust_version = h->trust_version;
	info->trust_first = ch.l[0]->list.version;
	info->trust_newest = ch.l[ch.n - 1]->list.version;
	info->pinned = pinned != NULL;
	memcpy(info->key_id, h->key_id, SIG_KEYID_LEN);
	if (d->e.schema_id != NULL)
		snprintf(info->schema, sizeof(info->schema), "%.140s@%u", d->e.schema_id,
			 d->e.schema_version);
	snprintf(info->key, sizeof(info->key), "%s", d->e.key);
	for (char *k = info->key; *k; k++)
		if (*k == REC_KEY_SEP[0])
			*k = '|';
	info->deleted = d->e.op == REC_DELETE;
out:
	sig_key_destroy(&key);
	chain_fini(&ch);
	for (size_t i = 0; i < ntl; i++)
		trust_signed_fini(&tl[i].s);
	free(tl);
	if (pinned != NULL)
		trust_signed_fini(&pin.s);
	head_signed_fini(&hs);
	rec_entry_free(&d);
	return rc;
}

int audit_proof_check(const struct audit_row_proof *p, const struct audit_blob *pinned,
		      struct audit_proof_info *info, char *why, size_t whylen)
{
	uint8_t raw[SIG_PUBKEY_LEN];

	if (p->key_pem == NULL)
		return say(why, whylen, MU_E_DECODE, "the proof carries no public key");
	return proof_verify(p, pinned, info, raw, why, whylen);
}

int audit_proof_make(const char *dataset, uint64_t seq, const struct audit_blob *entry,
		     const merkle_hash *path, size_t npath, const struct audit_blob *signed_head,
		     const struct audit_blob *trust, size_t ntrust, const struct audit_blob *pinned,
		     struct audit_row_proof *out, char *why, size_t whylen)
{
	struct audit_proof_info info;
	uint8_t raw[SIG_PUBKEY_LEN];
	int rc;

	memset(out, 0, sizeof(*out));
	if (npath > MERKLE_MAX_DEPTH)
		return say(why, whylen, MU_E_PROOF, "the inclusion proof is too long");
	if ((out->dataset = strdup(dataset)) == NULL || blob_dup(&out->entry, entry->data, entry->len) < 0 ||
	    blob_dup(&out->signed_head, signed_head->data, signed_head->len) < 0 ||
	    (out->path = calloc(npath + 1, sizeof(*out->path))) == NULL ||
	    (out->trust = calloc(ntrust + 1, sizeof(*out->trust))) == NULL)
		return -ENOMEM;
	out->seq = seq;
	memcpy(out->path, path, npath * sizeof(*path));
	out->npath = npath;
	for (; out->ntrust < ntrust; out->ntrust++)
		if (blob_dup(&out->trust[out->ntrust], trust[out->ntrust].data, trust[out->ntrust].len) < 0)
			return -ENOMEM;
	merkle_leaf_hash(entry->data, entry->len, out->leaf);
	if ((rc = proof_verify(out, pinned, &info, raw, why, whylen)) < 0 ||
	    (rc = key_pem(raw, &out->key_pem)) < 0)
		return rc;
	return audit_proof_check(out, pinned, &info, why, whylen);
}

void audit_proof_fini(struct audit_row_proof *p)
{
	free(p->dataset);
	free(p->entry.data);
	free(p->path);
	free(p->signed_head.data);
	free(p->key_pem);
	for (size_t i = 0; i < p->ntrust; i++)
		free(p->trust[i].data);
	free(p->trust);
	memset(p, 0, sizeof(*p));
}

static json_t *json_hex(const uint8_t *data, size_t len)
{
	char *hex = malloc(2 * len + 1);
	json_t *v;

	if (hex == NULL)
		return NULL;
	sig_hex(data, len, hex);
	v = json_stringn_nocheck(hex, 2 * len);
	free(hex);
	return v;
}

/* json_object_set_new and json_array_append_new that also catch a NULL
 * value (an allocation that failed while building it). */
static int put(json_t *o, const char *k, json_t *v)
{
	return v == NULL ? -1 : json_object_set_new(o, k, v);
}

static int append(json_t *a, json_t *v)
{
	return v == NULL ? -1 : json_array_append_new(a, v);
}

int audit_proof_encode(const struct audit_row_proof *p, char **json)
{
	json_t *o = json_object(), *inc = json_array(), *tl = json_array();
	int bad = o == NULL || inc == NULL || tl == NULL;

	*json = NULL;
	for (size_t i = 0; !bad && i < p->npath; i++)
		bad |= append(inc, json_hex(p->path[i], MERKLE_HASH_LEN)) < 0;
	for (size_t i = 0; !bad && i < p->ntrust; i++)
		bad |= append(tl, json_hex(p->trust[i].data, p->trust[i].len)) < 0;
	if (!bad)
		bad = put(o, "format", json_string(PROOF_FORMAT)) < 0 ||
		      put(o, "dataset", json_string(p->dataset)) < 0 ||
		      put(o, "seq", json_integer((json_int_t)p->seq)) < 0 ||
		      put(o, "entry", json_hex(p->entry.data, p->entry.len)) < 0 ||
		      put(o, "leaf_hash", json_hex(p->leaf, MERKLE_HASH_LEN)) < 0 ||
		      put(o, "inclusion", json_incref(inc)) < 0 ||
		      put(o, "signed_head", json_hex(p->signed_head.data, p->signed_head.len)) < 0 ||
		      put(o, "publisher_key_pem", json_string(p->key_pem ? p->key_pem : "")) < 0 ||
		      put(o, "trust_lists", json_incref(tl)) < 0;
	if (!bad)
		*json = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(inc);
	json_decref(tl);
	json_decref(o);
	return *json == NULL ? -ENOMEM : 0;
}

/* A hex string field into out: exactly `exact` bytes unless exact is 0. */
static int hex_field(json_t *v, struct audit_blob *out, size_t exact)
{
	const char *s = json_string_value(v);
	size_t len = s ? json_string_length(v) : 0;

	if (s == NULL || len % 2 != 0 || (exact != 0 && len != 2 * exact) ||
	    (out->data = malloc(len / 2 + 1)) == NULL)
		return MU_E_DECODE;
	if (sig_unhex(s, out->data, len / 2) < 0)
		return MU_E_DECODE;
	out->len = len / 2;
	return 0;
}

int audit_proof_decode(const uint8_t *buf, size_t len, struct audit_row_proof *out, char *why,
		       size_t whylen)
{
	json_error_t err;
	json_t *o = NULL, *inc, *tl, *v;
	struct audit_blob leaf = { 0 };
	const char *f;
	size_t i;
	int rc = MU_E_DECODE;

	memset(out, 0, sizeof(*out));
	if (len > AUDIT_PROOF_MAX_BYTES)
		return say(why, whylen, MU_E_TOOBIG, "a proof file is at most %zu bytes",
			   AUDIT_PROOF_MAX_BYTES);
	if ((o = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &err)) == NULL) {
		say(why, whylen, rc, "not JSON: %s (line %d)", err.text, err.line);
		goto out;
	}
	if (!json_is_object(o) || (f = json_string_value(json_object_get(o, "format"))) == NULL ||
	    strcmp(f, PROOF_FORMAT) != 0) {
		say(why, whylen, rc, "not a musubi row proof (\"format\": \"%s\")", PROOF_FORMAT);
		goto out;
	}
	v = json_object_get(o, "seq");
	if ((f = json_string_value(json_object_get(o, "dataset"))) == NULL || f[0] == '\0' ||
	    !json_is_integer(v) || json_integer_value(v) < 0) {
		say(why, whylen, rc, "\"dataset\" and \"seq\" are missing or wrong");
		goto out;
	}
	if ((out->dataset = strdup(f)) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	out->seq = (uint64_t)json_integer_value(v);
	if (hex_field(json_object_get(o, "entry"), &out->entry, 0) < 0 ||
	    hex_field(json_object_get(o, "leaf_hash"), &leaf, MERKLE_HASH_LEN) < 0 ||
	    hex_field(json_object_get(o, "signed_head"), &out->signed_head, 0) < 0) {
		say(why, whylen, rc, "\"entry\", \"leaf_hash\" or \"signed_head\" is not hex of the "
		    "right length");
		goto out;
	}
	memcpy(out->leaf, leaf.data, MERKLE_HASH_LEN);
	inc = json_object_get(o, "inclusion");
	tl = json_object_get(o, "trust_lists");
	if (!json_is_array(inc) || json_array_size(inc) > MERKLE_MAX_DEPTH || !json_is_array(tl) ||
	    json_array_size(tl) == 0 || json_array_size(tl) > PROOF_MAX_TRUST ||
	    (f = json_string_value(json_object_get(o, "publisher_key_pem"))) == NULL) {
		say(why, whylen, rc, "\"inclusion\", \"trust_lists\" or \"publisher_key_pem\" is "
		    "missing or wrong");
		goto out;
	}
	if ((out->key_pem = strdup(f)) == NULL ||
	    (out->path = calloc(json_array_size(inc) + 1, sizeof(*out->path))) == NULL ||
	    (out->trust = calloc(json_array_size(tl), sizeof(*out->trust))) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	json_array_foreach(inc, i, v) {
		struct audit_blob h = { 0 };
		int bad = hex_field(v, &h, MERKLE_HASH_LEN) < 0;
		if (!bad)
			memcpy(out->path[out->npath++], h.data, MERKLE_HASH_LEN);
		free(h.data);
		if (bad) {
			say(why, whylen, rc, "inclusion hash %zu is not 32 bytes of hex", i + 1);
			goto out;
		}
	}
	json_array_foreach(tl, i, v) {
		if (hex_field(v, &out->trust[out->ntrust], 0) < 0) {
			free(out->trust[out->ntrust].data);
			say(why, whylen, rc, "trust list %zu is not hex", i + 1);
			goto out;
		}
		out->ntrust++;
	}
	rc = 0;
out:
	free(leaf.data);
	json_decref(o);
	return rc;
}
