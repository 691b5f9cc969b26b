/* head.c - signed tree heads (see head.h). */
#include <string.h>

#include "head.h"
#include "mu_err.h"

int head_make_signed(struct rec_head *h, const struct sig_key *key, struct rec_buf *out)
{
	struct rec_buf hb = { 0 };
	uint8_t sig[SIG_SIGNATURE_LEN];
	int rc;

	if ((rc = sig_key_id(key, h->key_id)) < 0 || (rc = rec_head_encode(h, &hb)) < 0 ||
	    (rc = sig_sign(key, SIG_CTX_TREE_HEAD, hb.data, hb.len, sig)) < 0)
		goto out;
	rc = rec_signed_head_encode(hb.data, hb.len, sig, out);
out:
	rec_buf_fini(&hb);
	return rc;
}

int head_decode(const uint8_t *buf, size_t len, struct head_signed *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = rec_signed_head_decode(buf, len, &out->sh)) < 0 ||
	    (rc = rec_head_decode(out->sh->head, out->sh->head_len, &out->hd)) < 0) {
		head_signed_fini(out);
		return rc;
	}
	return 0;
}

void head_signed_fini(struct head_signed *hs)
{
	rec_signed_head_free(&hs->sh);
	rec_head_free(&hs->hd);
}

int head_check_signature(const struct head_signed *hs, const struct sig_key *key)
{
	uint8_t id[SIG_KEYID_LEN];
	int rc;

	if ((rc = sig_key_id(key, id)) < 0)
		return rc;
	if (memcmp(id, hs->hd->h.key_id, SIG_KEYID_LEN) != 0)
		return MU_E_BADSIG;
	return sig_verify(key, SIG_CTX_TREE_HEAD, hs->sh->head, hs->sh->head_len, hs->sh->sig,
			  hs->sh->sig_len);
}
