/* cosign.c - see cosign.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cosign.h"
#include "musubi.pb-c.h"
#include "mu_err.h"
#include "trust.h"
#include "util.h"

int cosign_make(const struct sig_key *key, const char *witness, uint64_t trust_version,
		const char *dataset, uint64_t size, const uint8_t *head, size_t len,
		struct rec_buf *out)
{
	Musubi__Cosignature c = MUSUBI__COSIGNATURE__INIT;
	Musubi__SignedCosignature sc = MUSUBI__SIGNED_COSIGNATURE__INIT;
	uint8_t hsha[32], kid[32], sig[SIG_SIGNATURE_LEN];
	uint8_t *cb = NULL;
	size_t clen;
	int rc;

	if ((rc = sig_key_id(key, kid)) < 0)
		return rc;
	sig_sha256(head, len, hsha);
	c.witness = (char *)witness;
	c.dataset = (char *)dataset;
	c.size = size;
	c.head_sha256.data = hsha;
	c.head_sha256.len = 32;
	c.time_us = mu_now_us();
	c.trust_version = trust_version;
	c.key_id.data = kid;
	c.key_id.len = 32;
	clen = musubi__cosignature__get_packed_size(&c);
	if ((cb = malloc(clen)) == NULL)
		return -ENOMEM;
	musubi__cosignature__pack(&c, cb);
	if ((rc = sig_sign(key, SIG_CTX_COSIGN, cb, clen, sig)) < 0)
		goto out;
	sc.cosig.data = cb;
	sc.cosig.len = clen;
	sc.signature.data = sig;
	sc.signature.len = sizeof(sig);
	out->len = 0;
	if ((rc = rec_buf_reserve(out, musubi__signed_cosignature__get_packed_size(&sc))) < 0)
		goto out;
	out->len = musubi__signed_cosignature__pack(&sc, out->data);
out:
	free(cb);
	return rc;
}

/* Unpack both layers; *m and *sc are the caller's to free. */
static int unpack(const uint8_t *buf, size_t len, Musubi__SignedCosignature **sc,
		  Musubi__Cosignature **m)
{
	*m = NULL;
	if ((*sc = musubi__signed_cosignature__unpack(NULL, len, buf)) == NULL)
		return MU_E_DECODE;
	*m = musubi__cosignature__unpack(NULL, (*sc)->cosig.len, (*sc)->cosig.data);
	if (*m == NULL || (*m)->head_sha256.len != 32 || (*m)->key_id.len != 32 ||
	    strlen((*m)->witness) >= 64 || strlen((*m)->dataset) >= 128) {
		if (*m)
			musubi__cosignature__free_unpacked(*m, NULL);
		musubi__signed_cosignature__free_unpacked(*sc, NULL);
		*m = NULL;
		*sc = NULL;
		return MU_E_DECODE;
	}
	return 0;
}

static void fill(struct cosign *c, const Musubi__Cosignature *m)
{
	snprintf(c->witness, sizeof(c->witness), "%s", m->witness);
	snprintf(c->dataset, sizeof(c->dataset), "%s", m->dataset);
	c->size = m->size;
	memcpy(c->head_sha256, m->head_sha256.data, 32);
	c->time_us = m->time_us;
	c->trust_version = m->trust_version;
	memcpy(c->key_id, m->key_id.data, 32);
}

int cosign_decode(const uint8_t *buf, size_t len, struct cosign *c)
{
	Musubi__SignedCosignature *sc;
	Musubi__Cosignature *m;
	int rc = unpack(buf, len, &sc, &m);

	if (rc < 0)
		return rc;
	fill(c, m);
	musubi__cosignature__free_unpacked(m, NULL);
	musubi__signed_cosignature__free_unpacked(sc, NULL);
	return 0;
}

int cosign_check(struct store_txn *t, const uint8_t *buf, size_t len, struct cosign *c,
		 char *why, size_t whylen)
{
	Musubi__SignedCosignature *sc;
	Musubi__Cosignature *m;
	struct trust_signed at = { 0 }, newest = { 0 };
	const uint8_t *lbuf;
	size_t llen;
	uint64_t nv;
	uint8_t raw[SIG_PUBKEY_LEN];
	struct sig_key *key = NULL;
	int rc = unpack(buf, len, &sc, &m);

	if (rc < 0) {
		snprintf(why, whylen, "cosignature does not decode");
		return rc;
	}
	fill(c, m);
	/* The lists the rule needs: that of the cosignature's version and the
	 * newest, as trust_head_key takes them for heads. */
	rc = store_trust_latest(t, &nv, &lbuf, &llen);
	if (rc == -ENOENT) {
		rc = MU_E_TRUST;
		snprintf(why, whylen, "this node has no trust list to check the cosignature of %s "
			 "against", c->witness);
		goto out;
	}
	if (rc < 0)
		goto out;
	if (c->trust_version == 0 || c->trust_version > nv ||
	    store_trust_get(t, c->trust_version, &lbuf, &llen) == -ENOENT) {
		rc = MU_E_TRUST;
		snprintf(why, whylen, "cosignature of %s was signed under trust list version %" PRIu64
			 ", which this node does not have (its newest is %" PRIu64 ")", c->witness,
			 c->trust_version, nv);
		goto out;
	}
	if ((rc = trust_load(t, nv, &newest)) < 0 ||
	    (c->trust_version != nv && (rc = trust_load(t, c->trust_version, &at)) < 0))
		goto out;
	rc = trust_check_cosig(c->trust_version != nv ? &at.list : &newest.list, &newest.list,
			       c->witness, c->time_us, c->key_id, raw, why, whylen);
	if (rc < 0)
		goto out;
	if ((rc = sig_key_from_raw_public(raw, &key)) < 0)
		goto out;
	rc = sig_verify(key, SIG_CTX_COSIGN, sc->cosig.data, sc->cosig.len, sc->signature.data,
			sc->signature.len);
	if (rc < 0)
		snprintf(why, whylen, "cosignature by %s does not verify", c->witness);
	sig_key_destroy(&key);
out:
	trust_signed_fini(&at);
	trust_signed_fini(&newest);
	musubi__cosignature__free_unpacked(m, NULL);
	musubi__signed_cosignature__free_unpacked(sc, NULL);
	return rc;
}
