/*
 * head.h - signed tree heads: make them, open them.
 *
 * A signed head is SignedHead{ head: TreeHead bytes, signature } where the
 * signature is Ed25519 over SIG_CTX_TREE_HEAD || head bytes. The head bytes
 * are kept exactly as signed; head_open() decodes them only after the
 * signature has been checked against the key the caller trusts.
 */
#ifndef MU_HEAD_H
#define MU_HEAD_H

#include "rec.h"
#include "sig.h"

/* Encode h, sign it with key, and write the SignedHead bytes into out.
 * h->key_id is filled from the key. */
int head_make_signed(struct rec_head *h, const struct sig_key *key, struct rec_buf *out);

/*
 * Decode SignedHead bytes without trusting them: *out holds the claimed
 * head (publisher, key id, size, root, ...) so the caller can find the key
 * that should have signed it. Then call head_check_signature().
 */
struct head_signed {
	struct rec_signed_head_decoded *sh;
	struct rec_head_decoded *hd;
};
int head_decode(const uint8_t *buf, size_t len, struct head_signed *out);
void head_signed_fini(struct head_signed *hs);
/* 0 if the signature over the head bytes verifies under key and the key's
 * id is the one the head names; MU_E_BADSIG otherwise. */
int head_check_signature(const struct head_signed *hs, const struct sig_key *key);

#endif
