/*
 * trust.c - the trust registry (see trust.h): trust lists to and from
 * bytes, the rules for new lists and for heads, and the store-backed
 * resolver that verify and the node use.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mu_err.h"
#include "trust.h"
#include "trust.pb-c.h"
#include "util.h"
#include "verify.h"

/* Write the reason into why (which may be NULL) and pass rc on. */
static int say(char *why, size_t whylen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int say(char *why, size_t whylen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (why != NULL && whylen > 0) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* The first 16 hex digits of SHA-256(raw key): how people see a key. */
static void key_short(const uint8_t raw[SIG_PUBKEY_LEN], char out[17])
{
	uint8_t id[SIG_KEYID_LEN];

	sig_sha256(raw, SIG_PUBKEY_LEN, id);
	sig_hex(id, 8, out);
}

static const char *plural(unsigned n)
{
	return n == 1 ? "" : "s";
}

/* ---- decoding and encoding ---- */

static void list_fini(struct trust_list *l)
{
	for (size_t i = 0; i < l->nmembers; i++) {
		struct trust_member *m = &l->members[i];
		free(m->id);
		free(m->name);
		free(m->endpoint);
		free(m->revoked_reason);
		for (size_t r = 0; r < m->nroles; r++)
			free(m->roles[r]);
		free(m->roles);
	}
	for (size_t i = 0; i < l->nretired; i++) {
		free(l->retired[i].member);
		free(l->retired[i].reason);
	}
	free(l->members);
	free(l->anchors);
	free(l->retired);
	free(l->federation);
	memset(l, 0, sizeof(*l));
}

void trust_signed_fini(struct trust_signed *s)
{
	list_fini(&s->list);
	free(s->bytes);
	free(s->sigs);
	memset(s, 0, sizeof(*s));
}

/* Copy a 32-byte key field, or say which one is not 32 bytes. */
static int copy_key(uint8_t out[32], const ProtobufCBinaryData *b, const char *what,
		    const char *whose, char *why, size_t whylen)
{
	if (b->len != 32)
		return say(why, whylen, MU_E_DECODE, "the %s of %s is %zu bytes, not 32", what,
			   whose, b->len);
	memcpy(out, b->data, 32);
	return 0;
}

static int copy_member(struct trust_member *m, const Musubi__Member *pm, char *why, size_t whylen)
{
	int rc;

	if ((m->id = strdup(pm->id)) == NULL || (m->name = strdup(pm->name)) == NULL ||
	    (m->endpoint = strdup(pm->endpoint)) == NULL ||
	    (m->revoked_reason = strdup(pm->revoked_reason)) == NULL ||
	    (pm->n_roles > 0 && (m->roles = calloc(pm->n_roles, sizeof(*m->roles))) == NULL))
		return -ENOMEM;
	for (; m->nroles < pm->n_roles; m->nroles++)
		if ((m->roles[m->nroles] = strdup(pm->roles[m->nroles])) == NULL)
			return -ENOMEM;
	if ((rc = copy_key(m->signing_key, &pm->signing_key, "signing key", pm->id, why, whylen)) < 0 ||
	    (rc = copy_key(m->transport_key, &pm->transport_key, "transport key", pm->id, why,
			   whylen)) < 0)
		return rc;
	m->valid_from_us = pm->valid_from_us;
	m->valid_until_us = pm->valid_until_us;
	m->revoked_us = pm->revoked_us;
	return 0;
}

static int copy_list(struct trust_list *l, const Musubi__TrustList *pl, char *why, size_t whylen)
{
	int rc;

	l->version = pl->version;
	l->issued_us = pl->issued_us;
	l->threshold = pl->threshold;
	if ((l->federation = strdup(pl->federation)) == NULL ||
	    (pl->n_members && (l->members = calloc(pl->n_members, sizeof(*l->members))) == NULL) ||
	    (pl->n_anchor_keys && (l->anchors = calloc(pl->n_anchor_keys, sizeof(*l->anchors))) == NULL) ||
	    (pl->n_retired_keys && (l->retired = calloc(pl->n_retired_keys, sizeof(*l->retired))) == NULL))
		return -ENOMEM;
	/* Count each element before filling it, so that list_fini frees a
	 * half-copied one too. */
	while (l->nmembers < pl->n_members) {
		size_t i = l->nmembers++;
		if ((rc = copy_member(&l->members[i], pl->members[i], why, whylen)) < 0)
			return rc;
	}
	for (; l->nanchors < pl->n_anchor_keys; l->nanchors++)
		if ((rc = copy_key(l->anchors[l->nanchors], &pl->anchor_keys[l->nanchors], "key",
				   "an anchor", why, whylen)) < 0)
			return rc;
	while (l->nretired < pl->n_retired_keys) {
		const Musubi__RetiredKey *pr = pl->retired_keys[l->nretired];
		struct trust_retired *r = &l->retired[l->nretired++];
		if ((r->member = strdup(pr->member)) == NULL || (r->reason = strdup(pr->reason)) == NULL)
			return -ENOMEM;
		if ((rc = copy_key(r->signing_key, &pr->signing_key, "retired key", pr->member, why,
				   whylen)) < 0)
			return rc;
		r->retired_us = pr->retired_us;
	}
	return 0;
}

int trust_decode(const uint8_t *buf, size_t len, struct trust_signed *out, char *why,
		 size_t whylen)
{
	Musubi__SignedTrustList *sm = NULL;
	Musubi__TrustList *lm = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	if (len > TRUST_MAX_BYTES)
		return say(why, whylen, MU_E_TOOBIG, "a trust list of %zu bytes is larger than the "
			   "%zu that musubi takes", len, TRUST_MAX_BYTES);
	if ((sm = musubi__signed_trust_list__unpack(NULL, len, buf)) == NULL || sm->list.len == 0) {
		rc = say(why, whylen, MU_E_DECODE, "not a signed trust list: the %zu bytes do not "
			 "decode (truncated, damaged, or another kind of file)", len);
		goto out;
	}
	if ((lm = musubi__trust_list__unpack(NULL, sm->list.len, sm->list.data)) == NULL) {
		rc = say(why, whylen, MU_E_DECODE, "the signed trust list carries a list that does "
			 "not decode (damaged)");
		goto out;
	}
	if ((out->bytes = malloc(sm->list.len)) == NULL ||
	    (sm->n_signatures && (out->sigs = calloc(sm->n_signatures, sizeof(*out->sigs))) == NULL)) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(out->bytes, sm->list.data, sm->list.len);
	out->len = sm->list.len;
	for (; out->nsigs < sm->n_signatures; out->nsigs++) {
		const Musubi__AnchorSignature *as = sm->signatures[out->nsigs];
		if (as->key_id.len != SIG_KEYID_LEN || as->signature.len != SIG_SIGNATURE_LEN) {
			rc = say(why, whylen, MU_E_DECODE, "signature %zu is malformed: a %zu-byte key "
				 "id and %zu-byte signature, not 32 and 64", out->nsigs + 1,
				 as->key_id.len, as->signature.len);
			goto out;
		}
		memcpy(out->sigs[out->nsigs].key_id, as->key_id.data, SIG_KEYID_LEN);
		memcpy(out->sigs[out->nsigs].sig, as->signature.data, SIG_SIGNATURE_LEN);
	}
	if ((rc = copy_list(&out->list, lm, why, whylen)) < 0)
		goto out;
	rc = trust_list_check(&out->list, why, whylen);
out:
	if (sm != NULL)
		musubi__signed_trust_list__free_unpacked(sm, NULL);
	if (lm != NULL)
		musubi__trust_list__free_unpacked(lm, NULL);
	if (rc == -ENOMEM)
		say(why, whylen, rc, "out of memory");
	return rc;
}

static int pack_into(const ProtobufCMessage *m, struct rec_buf *out)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	int rc;

	out->len = 0;
	if ((rc = rec_buf_reserve(out, len + 1)) < 0)
		return rc;
	out->len = protobuf_c_message_pack(m, out->data);
	return 0;
}

static int encode_list(const struct trust_list *l, struct rec_buf *out)
{
	Musubi__TrustList pl = MUSUBI__TRUST_LIST__INIT;
	Musubi__Member *pm = calloc(l->nmembers + 1, sizeof(*pm));
	Musubi__Member **pmp = calloc(l->nmembers + 1, sizeof(*pmp));
	Musubi__RetiredKey *pr = calloc(l->nretired + 1, sizeof(*pr));
	Musubi__RetiredKey **prp = calloc(l->nretired + 1, sizeof(*prp));
	ProtobufCBinaryData *pa = calloc(l->nanchors + 1, sizeof(*pa));
	int rc = -ENOMEM;

	if (pm == NULL || pmp == NULL || pr == NULL || prp == NULL || pa == NULL)
		goto out;
	pl.version = l->version;
	pl.issued_us = l->issued_us;
	pl.federation = l->federation != NULL ? l->federation : "";
	pl.threshold = l->threshold;
	for (size_t i = 0; i < l->nmembers; i++) {
		const struct trust_member *m = &l->members[i];
		musubi__member__init(&pm[i]);
		pm[i].id = m->id;
		pm[i].name = m->name != NULL ? m->name : "";
		pm[i].signing_key = (ProtobufCBinaryData){ 32, (uint8_t *)m->signing_key };
		pm[i].transport_key = (ProtobufCBinaryData){ 32, (uint8_t *)m->transport_key };
		pm[i].endpoint = m->endpoint != NULL ? m->endpoint : "";
		pm[i].n_roles = m->nroles;
		pm[i].roles = m->roles;
		pm[i].valid_from_us = m->valid_from_us;
		pm[i].valid_until_us = m->valid_until_us;
		pm[i].revoked_us = m->revoked_us;
		pm[i].revoked_reason = m->revoked_reason != NULL ? m->revoked_reason : "";
		pmp[i] = &pm[i];
	}
	pl.n_members = l->nmembers;
	pl.members = pmp;
	for (size_t i = 0; i < l->nanchors; i++)
		pa[i] = (ProtobufCBinaryData){ 32, (uint8_t *)l->anchors[i] };
	pl.n_anchor_keys = l->nanchors;
	pl.anchor_keys = pa;
	for (size_t i = 0; i < l->nretired; i++) {
		const struct trust_retired *r = &l->retired[i];
		musubi__retired_key__init(&pr[i]);
		pr[i].member = r->member;
		pr[i].signing_key = (ProtobufCBinaryData){ 32, (uint8_t *)r->signing_key };
		pr[i].retired_us = r->retired_us;
		pr[i].reason = r->reason != NULL ? r->reason : "";
		prp[i] = &pr[i];
	}
	pl.n_retired_keys = l->nretired;
	pl.retired_keys = prp;
	rc = pack_into(&pl.base, out);
out:
	free(pm);
	free(pmp);
	free(pr);
	free(prp);
	free(pa);
	return rc;
}

int trust_encode(const struct trust_signed *s, struct rec_buf *out)
{
	Musubi__SignedTrustList sm = MUSUBI__SIGNED_TRUST_LIST__INIT;
	Musubi__AnchorSignature *as = calloc(s->nsigs + 1, sizeof(*as));
	Musubi__AnchorSignature **asp = calloc(s->nsigs + 1, sizeof(*asp));
	int rc = -ENOMEM;

	if (as == NULL || asp == NULL)
		goto out;
	sm.list = (ProtobufCBinaryData){ s->len, s->bytes };
	for (size_t i = 0; i < s->nsigs; i++) {
		musubi__anchor_signature__init(&as[i]);
		as[i].key_id = (ProtobufCBinaryData){ SIG_KEYID_LEN, (uint8_t *)s->sigs[i].key_id };
		as[i].signature = (ProtobufCBinaryData){ SIG_SIGNATURE_LEN, (uint8_t *)s->sigs[i].sig };
		asp[i] = &as[i];
	}
	sm.n_signatures = s->nsigs;
	sm.signatures = asp;
	rc = pack_into(&sm.base, out);
out:
	free(as);
	free(asp);
	return rc;
}

/* ---- well-formedness ---- */

int trust_list_check(const struct trust_list *l, char *why, size_t whylen)
{
	char k[17];

	if (l->version == 0)
		return say(why, whylen, MU_E_DECODE, "version 0 is not a trust list version: the "
			   "first is 1");
	if (l->nanchors == 0)
		return say(why, whylen, MU_E_DECODE, "the list names no anchor keys");
	if (l->threshold == 0 || l->threshold > l->nanchors)
		return say(why, whylen, MU_E_DECODE, "threshold %u is not between 1 and the number "
			   "of anchor keys (%zu)", l->threshold, l->nanchors);
	for (size_t i = 0; i < l->nanchors; i++)
		for (size_t j = i + 1; j < l->nanchors; j++)
			if (memcmp(l->anchors[i], l->anchors[j], SIG_PUBKEY_LEN) == 0) {
				key_short(l->anchors[i], k);
				return say(why, whylen, MU_E_DECODE, "anchor key %s is listed twice", k);
			}
	for (size_t i = 0; i < l->nmembers; i++) {
		const struct trust_member *m = &l->members[i];
		if (!mu_valid_member(m->id))
			return say(why, whylen, MU_E_DECODE, "member id \"%s\" is not valid: a 6-digit "
				   "local government code, or 2 to 32 of a-z, 0-9, _ and -", m->id);
		if (m->valid_until_us != 0 && m->valid_until_us <= m->valid_from_us)
			return say(why, whylen, MU_E_DECODE, "member %s's validity period ends before "
				   "it begins", m->id);
		if (strlen(m->endpoint) > TRUST_ENDPOINT_MAX)
			return say(why, whylen, MU_E_DECODE, "member %s's endpoint is longer than %d "
				   "bytes", m->id, TRUST_ENDPOINT_MAX);
		for (size_t j = i + 1; j < l->nmembers; j++) {
			const struct trust_member *o = &l->members[j];
			if (strcmp(m->id, o->id) == 0)
				return say(why, whylen, MU_E_DECODE, "member %s is listed twice", m->id);
			if (memcmp(m->signing_key, o->signing_key, SIG_PUBKEY_LEN) == 0)
				return say(why, whylen, MU_E_DECODE, "members %s and %s have the same "
					   "signing key", m->id, o->id);
			if (memcmp(m->transport_key, o->transport_key, 32) == 0)
				return say(why, whylen, MU_E_DECODE, "members %s and %s have the same "
					   "transport key", m->id, o->id);
		}
	}
	for (size_t i = 0; i < l->nretired; i++) {
		const struct trust_retired *r = &l->retired[i];
		if (!mu_valid_member(r->member))
			return say(why, whylen, MU_E_DECODE, "a retired key names member id \"%s\", "
				   "which is not valid", r->member);
		key_short(r->signing_key, k);
		if (r->retired_us == 0)
			return say(why, whylen, MU_E_DECODE, "retired key %s of member %s has no "
				   "retirement time", k, r->member);
		for (size_t j = 0; j < l->nmembers; j++)
			if (memcmp(r->signing_key, l->members[j].signing_key, SIG_PUBKEY_LEN) == 0)
				return say(why, whylen, MU_E_DECODE, "key %s is retired and yet member "
					   "%s's current signing key", k, l->members[j].id);
	}
	return 0;
}

/* ---- editing and signing ---- */

int trust_redraft(struct trust_signed *s, int64_t now_us, int *next_version, char *why,
		  size_t whylen)
{
	struct rec_buf b = { 0 };
	int rc;

	if ((rc = trust_list_check(&s->list, why, whylen)) < 0)
		return rc;
	*next_version = s->nsigs > 0;
	s->list.version += (uint64_t)*next_version;
	s->list.issued_us = now_us;
	if ((rc = encode_list(&s->list, &b)) < 0) {
		s->list.version -= (uint64_t)*next_version;
		return rc;
	}
	free(s->bytes);
	s->bytes = b.data;
	s->len = b.len;
	if (*next_version) {
		free(s->sigs);
		s->sigs = NULL;
		s->nsigs = 0;
	}
	return 0;
}

int trust_sign(struct trust_signed *s, const struct sig_key *anchor)
{
	struct trust_signature sg, *grown;
	int rc;

	if ((rc = sig_key_id(anchor, sg.key_id)) < 0)
		return rc;
	for (size_t i = 0; i < s->nsigs; i++)
		if (memcmp(s->sigs[i].key_id, sg.key_id, SIG_KEYID_LEN) == 0)
			return MU_E_EXISTS;
	if ((rc = sig_sign(anchor, SIG_CTX_TRUST_LIST, s->bytes, s->len, sg.sig)) < 0)
		return rc;
	if ((grown = realloc(s->sigs, (s->nsigs + 1) * sizeof(*grown))) == NULL)
		return -ENOMEM;
	s->sigs = grown;
	s->sigs[s->nsigs++] = sg;
	return 0;
}

/* ---- lookups ---- */

struct trust_member *trust_find_member(const struct trust_list *l, const char *id)
{
	for (size_t i = 0; i < l->nmembers; i++)
		if (strcmp(l->members[i].id, id) == 0)
			return &l->members[i];
	return NULL;
}

int trust_has_role(const struct trust_member *m, const char *role)
{
	for (size_t i = 0; i < m->nroles; i++)
		if (strcmp(m->roles[i], role) == 0)
			return 1;
	return 0;
}

unsigned trust_role_bit(const char *role)
{
	static const struct { const char *name; unsigned bit; } roles[] = {
		{ TRUST_ROLE_PUBLISHER, TRUST_PUBLISHER },
		{ TRUST_ROLE_SCHEMA_AUTHORITY, TRUST_SCHEMA_AUTHORITY },
		{ TRUST_ROLE_AUDITOR, TRUST_AUDITOR },
		{ TRUST_ROLE_RELAY, TRUST_RELAY },
	};

	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
		if (strcmp(roles[i].name, role) == 0)
			return roles[i].bit;
	return 0;
}

/* The retired entry of member's key with key_id, or NULL. */
static const struct trust_retired *find_retired(const struct trust_list *l, const char *member,
						const uint8_t key_id[SIG_KEYID_LEN])
{
	uint8_t id[SIG_KEYID_LEN];

	for (size_t i = 0; i < l->nretired; i++) {
		if (strcmp(l->retired[i].member, member) != 0)
			continue;
		sig_sha256(l->retired[i].signing_key, SIG_PUBKEY_LEN, id);
		if (memcmp(id, key_id, SIG_KEYID_LEN) == 0)
			return &l->retired[i];
	}
	return NULL;
}

/* ---- the rules for lists ---- */

struct sig_count {
	unsigned valid, unknown, invalid, repeated;
};

/* Count the signatures over s by distinct keys of anchors. */
static int count_sigs(const struct trust_list *anchors_of, const struct trust_signed *s,
		      struct sig_count *c)
{
	size_t n = anchors_of->nanchors;
	uint8_t (*ids)[SIG_KEYID_LEN] = calloc(n + 1, sizeof(*ids));
	unsigned char *counted = calloc(n + 1, 1);
	int rc = 0;

	memset(c, 0, sizeof(*c));
	if (ids == NULL || counted == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		sig_sha256(anchors_of->anchors[i], SIG_PUBKEY_LEN, ids[i]);
	for (size_t j = 0; j < s->nsigs; j++) {
		size_t i = 0;
		while (i < n && memcmp(ids[i], s->sigs[j].key_id, SIG_KEYID_LEN) != 0)
			i++;
		if (i == n) {
			c->unknown++;
			continue;
		}
		if (counted[i]) {
			c->repeated++;
			continue;
		}
		struct sig_key *key = NULL;
		if ((rc = sig_key_from_raw_public(anchors_of->anchors[i], &key)) < 0)
			goto out;
		rc = sig_verify(key, SIG_CTX_TRUST_LIST, s->bytes, s->len, s->sigs[j].sig,
				SIG_SIGNATURE_LEN);
		sig_key_destroy(&key);
		if (rc == MU_E_BADSIG) {
			c->invalid++;
		} else if (rc < 0) {
			goto out;
		} else {
			counted[i] = 1;
			c->valid++;
		}
	}
	rc = 0;
out:
	free(ids);
	free(counted);
	return rc;
}

/* Refuse when c does not reach need: the rule, the count and what was
 * ignored. `whose` names the anchors ("its own anchor keys"). */
static int threshold_rule(const struct trust_signed *s, const char *whose,
			  const struct sig_count *c, unsigned need, char *why, size_t whylen)
{
	char extra[256] = "";
	size_t n = 0;

	if (c->valid >= need)
		return 0;
	if (c->unknown == 1)
		n += (size_t)snprintf(extra, sizeof(extra), "; 1 signature by a key that is not "
				      "one of those anchors was ignored");
	else if (c->unknown > 1)
		n += (size_t)snprintf(extra, sizeof(extra), "; %u signatures by keys that are not "
				      "among those anchors were ignored", c->unknown);
	if (c->invalid && n < sizeof(extra))
		n += (size_t)snprintf(extra + n, sizeof(extra) - n, "; %u signature%s by those "
				      "anchors %s not verify", c->invalid, plural(c->invalid),
				      c->invalid == 1 ? "does" : "do");
	if (c->repeated && n < sizeof(extra))
		snprintf(extra + n, sizeof(extra) - n, "; %u repeated signature%s by one anchor "
			 "counted once", c->repeated, plural(c->repeated));
	return say(why, whylen, MU_E_TRUST, "threshold not met: trust list version %" PRIu64
		   " has %u valid signature%s by %s and needs %u%s", s->list.version, c->valid,
		   plural(c->valid), whose, need, extra);
}

int trust_accept_first(const struct trust_signed *s, char *why, size_t whylen)
{
	struct sig_count c;
	int rc;

	if ((rc = count_sigs(&s->list, s, &c)) < 0 ||
	    (rc = threshold_rule(s, "its own anchor keys", &c, s->list.threshold, why, whylen)) < 0)
		return rc;
	return say(why, whylen, 0, "trust list version %" PRIu64 " has %u valid signature%s by "
		   "its own anchor keys (threshold %u)", s->list.version, c.valid, plural(c.valid),
		   s->list.threshold);
}

int trust_accept_next(const struct trust_signed *cur, const struct trust_signed *next,
		      char *why, size_t whylen)
{
	struct sig_count by_cur, by_own;
	char whose[64];
	int rc;

	if (next->list.version <= cur->list.version)
		return say(why, whylen, MU_E_TRUST, "downgrade or replay: version %" PRIu64 " is not "
			   "newer than %" PRIu64, next->list.version, cur->list.version);
	if (strcmp(next->list.federation, cur->list.federation) != 0)
		return say(why, whylen, MU_E_TRUST, "wrong federation: the list is of federation "
			   "\"%s\", and version %" PRIu64 " is of \"%s\"", next->list.federation,
			   cur->list.version, cur->list.federation);
	snprintf(whose, sizeof(whose), "the anchor keys of version %" PRIu64, cur->list.version);
	if ((rc = count_sigs(&cur->list, next, &by_cur)) < 0 ||
	    (rc = threshold_rule(next, whose, &by_cur, cur->list.threshold, why, whylen)) < 0 ||
	    (rc = count_sigs(&next->list, next, &by_own)) < 0 ||
	    (rc = threshold_rule(next, "its own anchor keys", &by_own, next->list.threshold, why,
				 whylen)) < 0)
		return rc;
	return say(why, whylen, 0, "trust list version %" PRIu64 " has %u valid signature%s by %s "
		   "(threshold %u) and %u by its own (threshold %u)", next->list.version, by_cur.valid,
		   plural(by_cur.valid), whose, cur->list.threshold, by_own.valid,
		   next->list.threshold);
}

/* ---- the rule for heads ---- */

static void reason_part(const char *reason, char *buf, size_t cap)
{
	if (reason != NULL && reason[0] != '\0')
		snprintf(buf, cap, " (%s)", reason);
	else
		buf[0] = '\0';
}

/* Is h's time in m's validity period (list version v)? */
static int validity_rule(const struct trust_member *m, uint64_t v, const struct rec_head *h,
			 char *why, size_t whylen)
{
	char when[32], edge[32];

	trust_format_time(h->time_us, when, sizeof(when));
	if (h->time_us < m->valid_from_us) {
		trust_format_time(m->valid_from_us, edge, sizeof(edge));
		return say(why, whylen, MU_E_TRUST, "member %s is valid from %s in trust list version "
			   "%" PRIu64 ", and the head is dated %s", m->id, edge, v, when);
	}
	if (m->valid_until_us != 0 && h->time_us >= m->valid_until_us) {
		trust_format_time(m->valid_until_us, edge, sizeof(edge));
		return say(why, whylen, MU_E_TRUST, "member %s's validity ended at %s in trust list "
			   "version %" PRIu64 ", and the head is dated %s", m->id, edge, v, when);
	}
	return 0;
}

/* Is the key with h->key_id usable at h's time by member m of list l?
 * Copies the raw key to key when it is. */
static int key_rule(const struct trust_list *l, const struct trust_member *m,
		    const struct rec_head *h, uint8_t key[SIG_PUBKEY_LEN], char *why, size_t whylen)
{
	const struct trust_retired *r;
	uint8_t id[SIG_KEYID_LEN];
	char k[17], when[32], at[32], reason[160];

	sig_sha256(m->signing_key, SIG_PUBKEY_LEN, id);
	sig_hex(h->key_id, 8, k);
	if (memcmp(id, h->key_id, SIG_KEYID_LEN) == 0) {
		memcpy(key, m->signing_key, SIG_PUBKEY_LEN);
		return 0;
	}
	if ((r = find_retired(l, m->id, h->key_id)) == NULL)
		return say(why, whylen, MU_E_TRUST, "the head was signed by key %s, which is not a key "
			   "of member %s in trust list version %" PRIu64, k, m->id, l->version);
	if (h->time_us >= r->retired_us) {
		trust_format_time(h->time_us, when, sizeof(when));
		trust_format_time(r->retired_us, at, sizeof(at));
		reason_part(r->reason, reason, sizeof(reason));
		return say(why, whylen, MU_E_TRUST, "key %s of member %s was retired at %s%s in trust "
			   "list version %" PRIu64 "; heads it signs dated from then on do not count, "
			   "and this one is dated %s", k, m->id, at, reason, l->version, when);
	}
	memcpy(key, r->signing_key, SIG_PUBKEY_LEN);
	return 0;
}

int trust_check_head(const struct trust_list *at, const struct trust_list *newest,
		     const struct rec_head *h, uint8_t key[SIG_PUBKEY_LEN], char *why,
		     size_t whylen)
{
	const struct trust_member *m = trust_find_member(at, h->publisher), *nm;
	uint8_t again[SIG_PUBKEY_LEN];
	char when[32], rev[32], reason[160];
	int rc;

	if (m == NULL)
		return say(why, whylen, MU_E_TRUST, "publisher %s is not a member in trust list "
			   "version %" PRIu64, h->publisher, at->version);
	if (!trust_has_role(m, TRUST_ROLE_PUBLISHER))
		return say(why, whylen, MU_E_TRUST, "member %s does not hold the publisher role in "
			   "trust list version %" PRIu64, m->id, at->version);
	if ((rc = validity_rule(m, at->version, h, why, whylen)) < 0 ||
	    (rc = key_rule(at, m, h, key, why, whylen)) < 0)
		return rc;
	/* What the newest list says overrides: revocations, retirements and
	 * ends of membership reach back to heads signed under older lists. */
	if ((nm = trust_find_member(newest, h->publisher)) == NULL)
		return say(why, whylen, MU_E_TRUST, "member %s is not in trust list version %" PRIu64
			   ", the newest this node has", h->publisher, newest->version);
	if (nm->revoked_us != 0 && h->time_us >= nm->revoked_us) {
		trust_format_time(h->time_us, when, sizeof(when));
		trust_format_time(nm->revoked_us, rev, sizeof(rev));
		reason_part(nm->revoked_reason, reason, sizeof(reason));
		return say(why, whylen, MU_E_TRUST, "member %s was revoked at %s%s in trust list "
			   "version %" PRIu64 "; heads dated from then on do not count, and this one "
			   "is dated %s", nm->id, rev, reason, newest->version, when);
	}
	if ((rc = validity_rule(nm, newest->version, h, why, whylen)) < 0 ||
	    (rc = key_rule(newest, nm, h, again, why, whylen)) < 0)
		return rc;
	return 0;
}

/* ---- the rule for cosignatures ---- */

int trust_check_cosig(const struct trust_list *at, const struct trust_list *newest,
		      const char *witness, int64_t time_us, const uint8_t key_id[SIG_KEYID_LEN],
		      uint8_t key[SIG_PUBKEY_LEN], char *why, size_t whylen)
{
	const struct trust_member *m, *nm;
	const struct trust_retired *r;
	uint8_t id[SIG_KEYID_LEN];
	char when[32], edge[32], k[17], reason[160];

	trust_format_time(time_us, when, sizeof(when));
	if ((m = trust_find_member(at, witness)) == NULL)
		return say(why, whylen, MU_E_TRUST, "witness %.40s is not a member in trust list "
			   "version %" PRIu64 ", the one its cosignature names", witness, at->version);
	if ((nm = trust_find_member(newest, witness)) == NULL)
		return say(why, whylen, MU_E_TRUST, "witness %s is not in trust list version %" PRIu64
			   ", the newest", witness, newest->version);
	if (nm->revoked_us != 0 && time_us >= nm->revoked_us) {
		trust_format_time(nm->revoked_us, edge, sizeof(edge));
		reason_part(nm->revoked_reason, reason, sizeof(reason));
		return say(why, whylen, MU_E_TRUST, "witness %s was revoked at %s%s in trust list "
			   "version %" PRIu64 "; cosignatures dated from then on do not count, and "
			   "this one is dated %s", witness, edge, reason, newest->version, when);
	}
	if (time_us < nm->valid_from_us || (nm->valid_until_us != 0 && time_us >= nm->valid_until_us)) {
		trust_format_time(time_us < nm->valid_from_us ? nm->valid_from_us : nm->valid_until_us,
				  edge, sizeof(edge));
		return say(why, whylen, MU_E_TRUST, "witness %s is %s %s in trust list version %"
			   PRIu64 ", and the cosignature is dated %s", witness,
			   time_us < nm->valid_from_us ? "valid from" : "no longer valid from", edge,
			   newest->version, when);
	}
	sig_hex(key_id, 8, k);
	if ((r = find_retired(newest, witness, key_id)) != NULL) {
		if (time_us >= r->retired_us) {
			trust_format_time(r->retired_us, edge, sizeof(edge));
			reason_part(r->reason, reason, sizeof(reason));
			return say(why, whylen, MU_E_TRUST, "key %s of witness %s was retired at %s%s "
				   "in trust list version %" PRIu64 "; cosignatures it signs dated from "
				   "then on do not count, and this one is dated %s", k, witness, edge,
				   reason, newest->version, when);
		}
		memcpy(key, r->signing_key, SIG_PUBKEY_LEN);
		return 0;
	}
	for (int i = 0; i < 2; i++) {
		const uint8_t *cand = i == 0 ? m->signing_key : nm->signing_key;
		sig_sha256(cand, SIG_PUBKEY_LEN, id);
		if (memcmp(id, key_id, SIG_KEYID_LEN) == 0) {
			memcpy(key, cand, SIG_PUBKEY_LEN);
			return 0;
		}
	}
	if (at->version == newest->version)
		return say(why, whylen, MU_E_TRUST, "the cosignature was signed by key %s, which is "
			   "not a key of witness %s in trust list version %" PRIu64, k, witness,
			   at->version);
	return say(why, whylen, MU_E_TRUST, "the cosignature was signed by key %s, which is not a key "
		   "of witness %s in trust list version %" PRIu64 " (its own) or %" PRIu64
		   " (the newest)", k, witness, at->version, newest->version);
}

/* ---- the store ---- */

int trust_load(struct store_txn *t, uint64_t version, struct trust_signed *out)
{
	const uint8_t *buf;
	size_t len;
	uint64_t have = version;
	char why[256];
	int rc;

	memset(out, 0, sizeof(*out));
	rc = version == 0 ? store_trust_latest(t, &have, &buf, &len)
			  : store_trust_get(t, version, &buf, &len);
	if (rc < 0)
		return rc;
	if ((rc = trust_decode(buf, len, out, why, sizeof(why))) < 0 || out->list.version != have) {
		/* Only accepted lists are stored: this is damage, not input. */
		fprintf(stderr, "musubi: stored trust list version %" PRIu64 " is damaged: %s\n", have,
			rc < 0 ? why : "it holds another version");
		trust_signed_fini(out);
		return rc == -ENOMEM ? rc : MU_E_CORRUPT;
	}
	return 0;
}

int trust_store_list_txn(struct store_txn *t, const uint8_t *buf, size_t len, char *why,
			 size_t whylen)
{
	struct trust_signed next, cur = { 0 };
	const uint8_t *cbuf;
	size_t clen;
	uint64_t cv;
	char text[24];
	int rc;

	if ((rc = trust_decode(buf, len, &next, why, whylen)) < 0)
		goto out;
	rc = store_trust_latest(t, &cv, &cbuf, &clen);
	if (rc == -ENOENT) {
		rc = trust_accept_first(&next, why, whylen);
	} else if (rc == 0 && cv == next.list.version && clen == len && memcmp(cbuf, buf, len) == 0) {
		rc = say(why, whylen, MU_E_EXISTS, "this node already has trust list version %"
			 PRIu64, cv);
	} else if (rc == 0 && (rc = trust_load(t, cv, &cur)) == 0) {
		rc = trust_accept_next(&cur, &next, why, whylen);
	}
	if (rc < 0)
		goto out;
	snprintf(text, sizeof(text), "%" PRIu64, next.list.version);
	if ((rc = store_trust_put(t, next.list.version, buf, len)) < 0 ||
	    (rc = store_meta_put(t, "trust_version", text, strlen(text))) < 0)
		goto out;
out:
	trust_signed_fini(&next);
	trust_signed_fini(&cur);
	return rc;
}

struct store_list_ctx {
	const uint8_t *buf;
	size_t len;
	char *why;
	size_t whylen;
};

static int store_list_fn(struct store_txn *t, void *arg)
{
	struct store_list_ctx *c = arg;

	return trust_store_list_txn(t, c->buf, c->len, c->why, c->whylen);
}

int trust_store_list(struct store *st, const uint8_t *buf, size_t len, char *why, size_t whylen)
{
	struct store_list_ctx c = { buf, len, why, whylen };

	return store_write(st, store_list_fn, &c);
}

struct trust_cache {
	struct trust_signed **lists;
	size_t n;
};

int trust_cache_new(struct trust_cache **out)
{
	return (*out = calloc(1, sizeof(**out))) == NULL ? -ENOMEM : 0;
}

void trust_cache_destroy(struct trust_cache **cp)
{
	struct trust_cache *c = *cp;

	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n; i++) {
		trust_signed_fini(c->lists[i]);
		free(c->lists[i]);
	}
	free(c->lists);
	free(c);
	*cp = NULL;
}

/* The stored list of version: from the cache c, or without a cache
 * decoded into *own (the caller finis it). */
static int list_get(struct trust_cache *c, struct store_txn *t, uint64_t version,
		    struct trust_signed *own, const struct trust_signed **out)
{
	struct trust_signed *s = own, **grown;
	int rc;

	for (size_t i = 0; c != NULL && i < c->n; i++)
		if (c->lists[i]->list.version == version) {
			*out = c->lists[i];
			return 0;
		}
	if (c != NULL && (s = calloc(1, sizeof(*s))) == NULL)
		return -ENOMEM;
	if ((rc = trust_load(t, version, s)) < 0)
		goto fail;
	if (c != NULL) {
		if ((grown = realloc(c->lists, (c->n + 1) * sizeof(*grown))) == NULL) {
			trust_signed_fini(s);
			rc = -ENOMEM;
			goto fail;
		}
		c->lists = grown;
		c->lists[c->n++] = s;
	}
	*out = s;
	return 0;
fail:
	if (s != own)
		free(s);
	return rc;
}

int trust_head_key(void *ctx, struct store_txn *t, const struct rec_head *h,
		   struct sig_key **key, char *why, size_t whylen)
{
	struct trust_signed own_at = { 0 }, own_newest = { 0 };
	const struct trust_signed *at, *newest;
	const uint8_t *buf;
	size_t len;
	uint64_t nv;
	uint8_t raw[SIG_PUBKEY_LEN];
	char member[64];
	int rc;

	*key = NULL;
	rc = store_trust_latest(t, &nv, &buf, &len);
	if (rc == -ENOENT)
		return verify_own_key(NULL, t, h, key, why, whylen);
	if (rc < 0)
		return rc;
	if (h->trust_version == 0) {
		if ((rc = store_member(t, member, sizeof(member))) < 0)
			return rc;
		if (strcmp(member, h->publisher) == 0)
			return verify_own_key(NULL, t, h, key, why, whylen);
		return say(why, whylen, MU_E_TRUST, "the head of publisher %s was signed under no "
			   "trust list (trust version 0); only this node's own heads from before it "
			   "joined the federation count that way", h->publisher);
	}
	if (h->trust_version > nv || store_trust_get(t, h->trust_version, &buf, &len) == -ENOENT)
		return say(why, whylen, MU_E_TRUST, "head was signed under trust list version %"
			   PRIu64 ", which this node does not have (its newest is %" PRIu64 ")",
			   h->trust_version, nv);
	if ((rc = list_get(ctx, t, nv, &own_newest, &newest)) < 0 ||
	    (rc = list_get(ctx, t, h->trust_version, &own_at, &at)) < 0 ||
	    (rc = trust_check_head(&at->list, &newest->list, h, raw, why, whylen)) < 0)
		goto out;
	rc = sig_key_from_raw_public(raw, key);
out:
	trust_signed_fini(&own_at);
	trust_signed_fini(&own_newest);
	return rc;
}

static int is_current(const struct trust_member *m, int64_t now_us)
{
	return now_us >= m->valid_from_us && (m->valid_until_us == 0 || now_us < m->valid_until_us) &&
	       (m->revoked_us == 0 || now_us < m->revoked_us);
}

int trust_members_current(struct store_txn *t, int64_t now_us, struct trust_peer **out,
			  size_t *n)
{
	struct trust_signed s;
	struct trust_peer *p;
	int rc;

	*out = NULL;
	*n = 0;
	if ((rc = trust_load(t, 0, &s)) < 0)
		return rc;
	if ((p = calloc(s.list.nmembers + 1, sizeof(*p))) == NULL) {
		trust_signed_fini(&s);
		return -ENOMEM;
	}
	for (size_t i = 0; i < s.list.nmembers; i++) {
		const struct trust_member *m = &s.list.members[i];
		if (!is_current(m, now_us))
			continue;
		struct trust_peer *q = &p[(*n)++];
		/* trust_list_check bounds both lengths. */
		snprintf(q->id, sizeof(q->id), "%s", m->id);
		snprintf(q->endpoint, sizeof(q->endpoint), "%s", m->endpoint);
		memcpy(q->transport_key, m->transport_key, 32);
		for (size_t r = 0; r < m->nroles; r++)
			q->roles |= trust_role_bit(m->roles[r]);
	}
	trust_signed_fini(&s);
	*out = p;
	return 0;
}

int trust_member_by_transport_key(struct store_txn *t, const uint8_t key[32], char *member,
				  size_t cap)
{
	struct trust_peer *p;
	size_t n;
	int rc = trust_members_current(t, mu_now_us(), &p, &n);

	if (rc < 0)
		return rc;
	rc = -ENOENT;
	for (size_t i = 0; i < n && rc == -ENOENT; i++)
		if (memcmp(p[i].transport_key, key, 32) == 0)
			rc = snprintf(member, cap, "%s", p[i].id) < (int)cap ? 0 : -ENOSPC;
	free(p);
	return rc;
}

int trust_member_endpoint(struct store_txn *t, const char *member, char *endpoint, size_t cap,
			  uint8_t transport_key[32])
{
	struct trust_peer *p;
	size_t n;
	int rc = trust_members_current(t, mu_now_us(), &p, &n);

	if (rc < 0)
		return rc;
	rc = -ENOENT;
	for (size_t i = 0; i < n && rc == -ENOENT; i++)
		if (strcmp(p[i].id, member) == 0) {
			rc = snprintf(endpoint, cap, "%s", p[i].endpoint) < (int)cap ? 0 : -ENOSPC;
			memcpy(transport_key, p[i].transport_key, 32);
		}
	free(p);
	return rc;
}

/* ---- files ---- */

int trust_file_read(const char *path, uint8_t **buf, size_t *len)
{
	uint8_t *b = NULL, *grown;
	size_t n = 0, cap = 0;
	ssize_t got;
	int fd, rc = 0;

	*buf = NULL;
	*len = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	for (;;) {
		if (n == cap) {
			if (cap > TRUST_MAX_BYTES) {
				rc = MU_E_TOOBIG;
				break;
			}
			cap = cap ? cap * 2 : 65536;
			if ((grown = realloc(b, cap)) == NULL) {
				rc = -ENOMEM;
				break;
			}
			b = grown;
		}
		if ((got = read(fd, b + n, cap - n)) < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	close(fd);
	if (rc == 0 && n > TRUST_MAX_BYTES)
		rc = MU_E_TOOBIG;
	if (rc < 0) {
		free(b);
		return rc;
	}
	*buf = b;
	*len = n;
	return 0;
}

int trust_file_write(const char *path, const void *buf, size_t len, int replace)
{
	char *tmp = NULL, *dir = NULL;
	const uint8_t *p = buf;
	int fd = -1, dfd = -1, have_tmp = 0, rc = 0;

	if (asprintf(&tmp, "%s.tmpXXXXXX", path) < 0) {
		tmp = NULL;
		return -ENOMEM;
	}
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0 || fchmod(fd, 0644) < 0) {
		rc = -errno;
		goto out;
	}
	have_tmp = 1;
	for (size_t off = 0; off < len;) {
		ssize_t w = write(fd, p + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			rc = -errno;
			goto out;
		}
		off += (size_t)w;
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		fd = -1;
		rc = -errno;
		goto out;
	}
	fd = -1;
	/* link() does not replace: an existing file is refused, not lost. */
	if ((replace ? rename(tmp, path) : link(tmp, path)) < 0) {
		rc = errno == EEXIST ? MU_E_EXISTS : -errno;
		goto out;
	}
	if (!replace)
		unlink(tmp);
	have_tmp = 0;
	if ((dir = strdup(path)) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if ((dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 || fsync(dfd) < 0)
		rc = -errno;
out:
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	if (have_tmp)
		unlink(tmp);
	free(tmp);
	free(dir);
	return rc;
}

/* ---- times ---- */

int trust_parse_time(const char *s, int64_t now_us, int64_t *us)
{
	struct tm tm;
	const char *p;
	int64_t frac = 0, offset = 0;
	int digits = 0;

	if (strcmp(s, "now") == 0) {
		*us = now_us;
		return 0;
	}
	memset(&tm, 0, sizeof(tm));
	if ((p = strptime(s, "%Y-%m-%d", &tm)) == NULL)
		return MU_E_USAGE;
	if (*p != '\0') {
		if (*p != 'T' || (p = strptime(p + 1, "%H:%M:%S", &tm)) == NULL)
			return MU_E_USAGE;
		if (*p == '.') {
			for (p++; isdigit((unsigned char)*p); p++, digits++)
				if (digits < 6)
					frac = frac * 10 + (*p - '0');
			if (digits == 0)
				return MU_E_USAGE;
			for (int i = digits; i < 6; i++)
				frac *= 10;
		}
		if (*p == 'Z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			int hh, mm, n = 0;
			if (sscanf(p + 1, "%2d:%2d%n", &hh, &mm, &n) != 2 || n != 5 || hh > 23 || mm > 59)
				return MU_E_USAGE;
			offset = (*p == '-' ? -1 : 1) * (int64_t)(hh * 3600 + mm * 60);
			p += 1 + n;
		} else {
			return MU_E_USAGE;   /* a time without a zone means nothing */
		}
		if (*p != '\0')
			return MU_E_USAGE;
	}
	*us = ((int64_t)timegm(&tm) - offset) * 1000000 + frac;
	return 0;
}

void trust_format_time(int64_t us, char *buf, size_t cap)
{
	int64_t secs = us / 1000000, frac = us % 1000000;
	time_t t;
	struct tm tm;
	size_t n;

	if (frac < 0) {
		frac += 1000000;
		secs--;
	}
	t = (time_t)secs;
	gmtime_r(&t, &tm);
	n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
	if (frac != 0)
		snprintf(buf + n, cap - n, ".%06" PRId64 "Z", frac);
	else
		snprintf(buf + n, cap - n, "Z");
}
