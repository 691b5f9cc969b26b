/* cosign.c - see cosign.h. */
#include <errno.h>
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
	int rc = unpack(buf, len, &sc, &m);

	if (rc < 0) {
		snprintf(why, whylen, "cosignature does not decode");
		return rc;
	}
	fill(c, m);
	rc = MU_E_TRUST;
	snprintf(why, whylen, "witness %s is not a current member of the trust list", c->witness);
	/* The witness's signing key, from the newest trust list. */
	uint64_t version = 0;
	char vbuf[32];
	size_t vlen;
	struct trust_signed ts = { 0 };
	if (store_meta_get(t, "trust_version", vbuf, sizeof(vbuf), &vlen) == 0)
		version = strtoull(vbuf, NULL, 10);
	if (version > 0 && trust_load(t, version, &ts) == 0) {
		struct trust_member *mem = trust_find_member(&ts.list, c->witness);
		if (mem != NULL && mem->revoked_us == 0) {
			struct sig_key *key = NULL;
			uint8_t kid[32];
			sig_sha256(mem->signing_key, SIG_PUBKEY_LEN, kid);
			if (memcmp(kid, c->key_id, 32) != 0) {
				snprintf(why, whylen, "cosignature of %s is not by its current key",
					 c->witness);
			} else if (sig_key_from_raw_public(mem->signing_key, &key) == 0) {
				rc = sig_verify(key, SIG_CTX_COSIGN, sc->cosig.data, sc->cosig.len,
						sc->signature.data, sc->signature.len);
				if (rc < 0)
					snprintf(why, whylen, "cosignature by %s does not verify",
						 c->witness);
				sig_key_destroy(&key);
			}
		}
	}
	trust_signed_fini(&ts);
	musubi__cosignature__free_unpacked(m, NULL);
	musubi__signed_cosignature__free_unpacked(sc, NULL);
	return rc;
}
