/* redact.c - see redact.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "musubi.pb-c.h"
#include "mu_err.h"
#include "redact.h"
#include "util.h"

int redact_is_stub(const uint8_t *buf, size_t len)
{
	return len >= REDACT_MARKER_LEN && memcmp(buf, REDACT_MARKER, REDACT_MARKER_LEN) == 0;
}

int redact_stub_decode(const uint8_t *buf, size_t len, struct redact_stub *out)
{
	Musubi__RedactedEntry *m;

	memset(out, 0, sizeof(*out));
	if (!redact_is_stub(buf, len))
		return MU_E_DECODE;
	m = musubi__redacted_entry__unpack(NULL, len - REDACT_MARKER_LEN, buf + REDACT_MARKER_LEN);
	if (m == NULL || m->leaf_hash.len != 32 || strlen(m->dataset) >= sizeof(out->dataset)) {
		if (m)
			musubi__redacted_entry__free_unpacked(m, NULL);
		return MU_E_DECODE;
	}
	snprintf(out->dataset, sizeof(out->dataset), "%s", m->dataset);
	out->seq = m->seq;
	memcpy(out->leaf_hash, m->leaf_hash.data, 32);
	out->key_len = strlen(m->key);
	out->key = strdup(m->key);
	out->op = m->op == MUSUBI__OP__OP_DELETE ? REC_DELETE : REC_UPSERT;
	out->notice_len = m->notice.len;
	out->notice = malloc(m->notice.len ? m->notice.len : 1);
	if (out->notice && m->notice.len > 0)
		memcpy(out->notice, m->notice.data, m->notice.len);
	musubi__redacted_entry__free_unpacked(m, NULL);
	if (out->key == NULL || out->notice == NULL) {
		redact_stub_fini(out);
		return -ENOMEM;
	}
	return 0;
}

void redact_stub_fini(struct redact_stub *s)
{
	free(s->key);
	free(s->notice);
	memset(s, 0, sizeof(*s));
}

int redact_leaf_hash(const uint8_t *buf, size_t len, merkle_hash out)
{
	Musubi__RedactedEntry *m;

	if (!redact_is_stub(buf, len)) {
		merkle_leaf_hash(buf, len, out);
		return 0;
	}
	m = musubi__redacted_entry__unpack(NULL, len - REDACT_MARKER_LEN, buf + REDACT_MARKER_LEN);
	if (m == NULL || m->leaf_hash.len != 32) {
		if (m)
			musubi__redacted_entry__free_unpacked(m, NULL);
		return MU_E_DECODE;
	}
	memcpy(out, m->leaf_hash.data, 32);
	musubi__redacted_entry__free_unpacked(m, NULL);
	return 1;
}

int redact_make(const struct sig_key *key, const char *publisher, uint64_t trust_version,
		const char *dataset, uint64_t seq, const uint8_t leaf[32], const char *reason,
		struct rec_buf *out)
{
	Musubi__RedactionNotice n = MUSUBI__REDACTION_NOTICE__INIT;
	Musubi__SignedRedaction s = MUSUBI__SIGNED_REDACTION__INIT;
	uint8_t kid[32], sig[SIG_SIGNATURE_LEN], *nb;
	size_t nlen;
	int rc;

	if ((rc = sig_key_id(key, kid)) < 0)
		return rc;
	n.dataset = (char *)dataset;
	n.seq = seq;
	n.leaf_hash.data = (uint8_t *)leaf;
	n.leaf_hash.len = 32;
	n.reason = (char *)reason;
	n.time_us = mu_now_us();
	n.publisher = (char *)publisher;
	n.key_id.data = kid;
	n.key_id.len = 32;
	n.trust_version = trust_version;
	nlen = musubi__redaction_notice__get_packed_size(&n);
	if ((nb = malloc(nlen)) == NULL)
		return -ENOMEM;
	musubi__redaction_notice__pack(&n, nb);
	if ((rc = sig_sign(key, SIG_CTX_REDACTION, nb, nlen, sig)) == 0) {
		s.notice.data = nb;
		s.notice.len = nlen;
		s.signature.data = sig;
		s.signature.len = sizeof(sig);
		out->len = 0;
		if ((rc = rec_buf_reserve(out, musubi__signed_redaction__get_packed_size(&s))) == 0)
			out->len = musubi__signed_redaction__pack(&s, out->data);
	}
	free(nb);
	return rc;
}

int redact_check(struct store_txn *t, const uint8_t *buf, size_t len, verify_key_fn keyfn,
		 void *ctx, struct redact_notice *out, char *why, size_t whylen)
{
	Musubi__SignedRedaction *s = musubi__signed_redaction__unpack(NULL, len, buf);
	Musubi__RedactionNotice *n = NULL;
	struct sig_key *key = NULL;
	int rc = MU_E_DECODE;

	memset(out, 0, sizeof(*out));
	snprintf(why, whylen, "redaction notice does not decode");
	if (s == NULL)
		return rc;
	n = musubi__redaction_notice__unpack(NULL, s->notice.len, s->notice.data);
	if (n == NULL || n->leaf_hash.len != 32 || n->key_id.len != 32 ||
	    strlen(n->dataset) >= sizeof(out->dataset) || strlen(n->publisher) >= sizeof(out->publisher))
		goto out;
	snprintf(out->dataset, sizeof(out->dataset), "%s", n->dataset);
	out->seq = n->seq;
	memcpy(out->leaf_hash, n->leaf_hash.data, 32);
	snprintf(out->reason, sizeof(out->reason), "%s", n->reason);
	out->time_us = n->time_us;
	snprintf(out->publisher, sizeof(out->publisher), "%s", n->publisher);
	memcpy(out->key_id, n->key_id.data, 32);
	out->trust_version = n->trust_version;
	/* The dataset must be the signer's own. */
	size_t plen = strlen(out->publisher);
	if (strncmp(out->dataset, out->publisher, plen) != 0 || out->dataset[plen] != '/') {
		snprintf(why, whylen, "a redaction of %s signed by %s, who does not publish it",
			 out->dataset, out->publisher);
		rc = MU_E_TRUST;
		goto out;
	}
	struct rec_head h = { .dataset = out->dataset, .time_us = out->time_us,
			      .trust_version = out->trust_version, .publisher = out->publisher };
	memcpy(h.key_id, out->key_id, 32);
	why[0] = '\0';
	if ((rc = keyfn(ctx, t, &h, &key, why, whylen)) < 0)
		goto out;
	uint8_t kid[32];
	if ((rc = sig_key_id(key, kid)) == 0 && memcmp(kid, out->key_id, 32) != 0)
		rc = MU_E_BADSIG;
	if (rc == 0)
		rc = sig_verify(key, SIG_CTX_REDACTION, s->notice.data, s->notice.len, s->signature.data,
				s->signature.len);
	if (rc < 0)
		snprintf(why, whylen, "the redaction notice for %s #%" PRIu64 " does not verify under "
			 "%s's key", out->dataset, out->seq, out->publisher);
out:
	sig_key_destroy(&key);
	if (n)
		musubi__redaction_notice__free_unpacked(n, NULL);
	musubi__signed_redaction__free_unpacked(s, NULL);
	return rc;
}

int redact_stub_make(const uint8_t *entry, size_t len, const uint8_t *notice, size_t nlen,
		     struct rec_buf *out)
{
	Musubi__RedactedEntry m = MUSUBI__REDACTED_ENTRY__INIT;
	struct rec_entry_decoded *d = NULL;
	uint8_t leaf[32];
	int rc;

	if ((rc = rec_entry_decode(entry, len, &d)) < 0)
		return rc;
	merkle_leaf_hash(entry, len, leaf);
	m.dataset = (char *)d->e.dataset;
	m.seq = d->e.seq;
	m.leaf_hash.data = leaf;
	m.leaf_hash.len = 32;
	m.key = (char *)d->e.key;
	m.op = d->e.op == REC_DELETE ? MUSUBI__OP__OP_DELETE : MUSUBI__OP__OP_UPSERT;
	m.notice.data = (uint8_t *)notice;
	m.notice.len = nlen;
	out->len = 0;
	if ((rc = rec_buf_reserve(out, REDACT_MARKER_LEN + musubi__redacted_entry__get_packed_size(&m))) == 0) {
		memcpy(out->data, REDACT_MARKER, REDACT_MARKER_LEN);
		out->len = REDACT_MARKER_LEN + musubi__redacted_entry__pack(&m, out->data + REDACT_MARKER_LEN);
	}
	rec_entry_free(&d);
	return rc;
}

int redact_live_set(struct store_txn *t, uint32_t lid, const char *key, size_t key_len,
		    uint64_t seq)
{
	struct store_state_val v = { .seq = seq };

	return store_state_put(t, REDACT_LIVE_LID(lid), key, key_len, &v);
}

int redact_live_take(struct store_txn *t, uint32_t lid, const char *key, size_t key_len)
{
	int rc = store_state_del(t, REDACT_LIVE_LID(lid), key, key_len);

	return rc == 0 ? 1 : rc == -ENOENT ? 0 : rc;
}

int redact_apply(struct store_txn *t, const uint8_t *notice, size_t len,
		 const struct redact_notice *n)
{
	struct store_dataset ds;
	struct rec_buf stub = { 0 };
	const uint8_t *buf;
	size_t blen;
	merkle_hash leaf;
	int rc;

	if ((rc = store_redaction_put(t, n->dataset, n->seq, notice, len)) < 0)
		return rc;
	if ((rc = store_dataset_get(t, n->dataset, &ds)) < 0)
		return rc == -ENOENT ? 0 : rc;
	if ((rc = store_entry_get(t, ds.local_id, n->seq, &buf, &blen)) < 0) {
		rc = rc == -ENOENT ? 0 : rc;   /* not replicated yet: applied on arrival */
		goto out;
	}
	if ((rc = redact_leaf_hash(buf, blen, leaf)) != 0) {
		rc = rc == 1 ? 0 : rc;        /* already a stub */
		goto out;
	}
	if (memcmp(leaf, n->leaf_hash, 32) != 0) {
		rc = MU_E_PROOF;
		goto out;
	}
	if ((rc = redact_stub_make(buf, blen, notice, len, &stub)) < 0)
		goto out;
	struct redact_stub s;
	if ((rc = redact_stub_decode(stub.data, stub.len, &s)) < 0)
		goto out;
	/* The current row goes if it is this entry's. */
	struct store_state_val sv;
	if (store_state_get(t, ds.local_id, s.key, s.key_len, &sv) == 0 && sv.seq == n->seq) {
		/* The key stays live, its content unknown: a later delete of it
		 * (replicated from a publisher that deleted it before redacting)
		 * must still count. */
		if ((rc = store_state_del(t, ds.local_id, s.key, s.key_len)) == 0 &&
		    (rc = redact_live_set(t, ds.local_id, s.key, s.key_len, n->seq)) == 0) {
			ds.rows--;
			rc = store_dataset_put(t, &ds);
		}
	}
	redact_stub_fini(&s);
	if (rc == 0)
		rc = store_entry_replace(t, ds.local_id, n->seq, stub.data, stub.len);
out:
	rec_buf_fini(&stub);
	store_dataset_fini(&ds);
	return rc;
}
