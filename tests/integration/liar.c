/*
 * liar.c - a member of the federation that lies, for tests; and the raw
 * socket probes of access control that no honest client can make.
 *
 * usage:
 *   liar serve --key KEYDIR --member ID --listen EP --pub EP --lie LIE
 *              [--armed-by-signal] [--serve DATASET]... STOREDIR...
 *   liar push ENDPOINT SERVER_PUB_PEM KEYDIR|- STOREDIR
 *   liar plain ENDPOINT
 *   liar nozap
 *
 * serve: answer HELLO, LIST_HEADS, GET_HEADS, GET_ENTRIES, GET_TRUST,
 * GET_SCHEMA and STATUS from the STOREDIRs (opened read-only; the first is
 * the liar's own, whose trust list it serves), announce heads on PUB, and
 * lie in one way. KEYDIR is a member's key directory: its transport key
 * makes the liar that member to the honest node, its signing key signs the
 * heads it forges. With --armed-by-signal it tells the truth until SIGUSR1,
 * so that an honest node can first hold the real history. Every lie told
 * is logged on stderr as "liar: LIE ..." so a test knows it was heard.
 *   none           tells the truth: relays what the stores hold (heads of a
 *                  revoked or unknown member are lies of their own)
 *   badsig         heads carry 64 random bytes as their signature
 *   altered        real heads, entries each with one value changed
 *   reorder        the entries of each reply swapped in pairs
 *   duplicate      the second entry of each reply repeats the first
 *   rollback       its newest head is the oldest stored; GET_HEADS ends there
 *   fork           a second validly signed head of its own newest size, over
 *                  a history whose last entry differs
 *   backdate       one more entry of its own, under a validly signed head
 *                  dated a day before the head it extends
 *   huge           the Heads reply to LIST_HEADS claims a 64 GiB field
 *   huge-entries   the Entries reply claims a 64 GiB field
 *   huge-envelope  the reply envelope's payload claims 64 GiB
 *   version        every message is an envelope of protocol WIRE_VERSION + 1
 *
 * push: send every message type, those that carry data with real data from
 * STOREDIR, and print what came back: a node must store none of it.
 * plain: a client without CURVE sends STATUS: prints "no answer" or "answered".
 * nozap: a CURVE server socket made by wire_curve_server in a context with
 * no ZAP handler must admit nobody; the same with a handler must admit.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <zmq.h>

#include "client.h"
#include "head.h"
#include "merkle.h"
#include "mu_err.h"
#include "rec.h"
#include "sig.h"
#include "store.h"
#include "util.h"
#include "wire.h"

#define MAX_STORES 8
#define HUGE_LEN (1ull << 36)   /* what a huge length prefix claims: 64 GiB */

enum lie {
	LIE_NONE, LIE_BADSIG, LIE_ALTERED, LIE_REORDER, LIE_DUPLICATE, LIE_ROLLBACK, LIE_FORK,
	LIE_BACKDATE, LIE_HUGE, LIE_HUGE_ENTRIES, LIE_HUGE_ENVELOPE, LIE_VERSION,
};
static const char *const lie_names[] = {
	"none", "badsig", "altered", "reorder", "duplicate", "rollback", "fork", "backdate",
	"huge", "huge-entries", "huge-envelope", "version",
};

static volatile sig_atomic_t armed, stopping;

static void on_usr1(int sig) { (void)sig; armed = 1; }
static void on_term(int sig) { (void)sig; stopping = 1; }

struct liar {
	enum lie lie;
	const char *member;
	const char *pub_endpoint;
	struct store *stores[MAX_STORES];
	size_t nstores;
	char **serve;             /* datasets offered (all the stores hold when none) */
	size_t nserve;
	struct sig_key *signer;
	void *router, *pub;
	/* fork and backdate: a history of its own dataset it signs itself, the
	 * stored entries [0, forged_size - 1) and then forged_entry */
	char forged_dataset[128];
	uint64_t forged_size;
	struct rec_buf forged_head, forged_entry;
};

/* Is this lie being told now? */
static int lying(const struct liar *l, enum lie which)
{
	return l->lie == which && armed;
}

/* Is this dataset's history being forged now? */
static int forging(const struct liar *l, const char *name)
{
	return (lying(l, LIE_FORK) || lying(l, LIE_BACKDATE)) && l->forged_head.len > 0 &&
	       strcmp(name, l->forged_dataset) == 0;
}

/* A dataset looked up in the first store that holds it; t stays open. */
struct view {
	struct store_txn t;
	struct store_dataset ds;
};

static int view_open(struct liar *l, const char *name, struct view *v)
{
	for (size_t i = 0; i < l->nstores; i++) {
		if (store_read_begin(l->stores[i], &v->t) < 0)
			continue;
		if (store_dataset_get(&v->t, name, &v->ds) == 0)
			return 0;
		store_read_end(&v->t);
	}
	return -ENOENT;
}

static void view_close(struct view *v)
{
	store_dataset_fini(&v->ds);
	store_read_end(&v->t);
}

/* The size of the newest head this liar admits to. */
static uint64_t view_size(struct liar *l, struct view *v)
{
	uint64_t size = v->ds.head_size;
	const uint8_t *buf;
	size_t len;

	if (lying(l, LIE_ROLLBACK))
		store_head_next(&v->t, v->ds.local_id, 0, &size, &buf, &len);
	if (forging(l, v->ds.name))
		size = l->forged_size;
	return size;
}

/* The entry bytes with one value of its row changed (and its seq set to
 * seq): it still decodes, but its leaf hash is not the one the publisher
 * signed. */
static int alter_entry(const uint8_t *buf, size_t len, uint64_t seq, struct rec_buf *out)
{
	struct rec_entry_decoded *d = NULL;
	struct rec_row *row = NULL;
	struct rec_buf rb = { 0 };
	int rc;

	if ((rc = rec_entry_decode(buf, len, &d)) < 0)
		return rc;
	struct rec_entry e = d->e;
	e.seq = seq;
	if (e.row != NULL && (rc = rec_row_decode(e.row, e.row_len, &row)) == 0 && row->n > 0) {
		struct mu_value *val = &row->values[0];
		if (val->kind == MU_VAL_INT || val->kind == MU_VAL_BOOL) {
			val->i ^= 1;
		} else if (val->kind == MU_VAL_NUM) {
			val->d += 1;
		} else {
			val->kind = MU_VAL_TEXT;
			val->text = "forged by the liar";
			val->len = strlen(val->text);
		}
		if ((rc = rec_row_encode(row->values, row->n, &rb)) == 0) {
			e.row = rb.data;
			e.row_len = rb.len;
		}
	} else {
		e.time_us++;   /* a delete: change its time instead */
		rc = 0;
	}
	if (rc == 0)
		rc = rec_entry_encode(&e, out);
	rec_row_free(&row);
	rec_buf_fini(&rb);
	rec_entry_free(&d);
	return rc;
}

/*
 * Forge a history of its own dataset and sign it with the member's real
 * key: for fork, the stored history with its last entry changed, signed
 * now (a head any node must take as the publisher's, contradicting the
 * one it holds); for backdate, the stored history and one more entry,
 * signed with a time a day before the newest stored head.
 */
static int forge(struct liar *l, const char *name)
{
	struct view v;
	struct head_signed hs = { 0 };
	struct merkle_frontier fr;
	const uint8_t *buf;
	size_t len;
	uint64_t size;
	merkle_hash leaf;
	int rc;

	if ((rc = view_open(l, name, &v)) < 0)
		return rc;
	if ((rc = store_head_latest(&v.t, v.ds.local_id, &size, &buf, &len)) < 0 ||
	    (rc = head_decode(buf, len, &hs)) < 0)
		goto out;
	if (strcmp(hs.hd->h.publisher, l->member) != 0) {
		fprintf(stderr, "liar: %s is not its own dataset: it cannot sign for it\n", name);
		rc = MU_E_USAGE;
		goto out;
	}
	l->forged_size = l->lie == LIE_FORK ? size : size + 1;
	merkle_frontier_init(&fr);
	for (uint64_t s = 0; s < size; s++) {
		if ((rc = store_entry_get(&v.t, v.ds.local_id, s, &buf, &len)) < 0)
			goto out;
		if (s + 1 == size && (rc = alter_entry(buf, len, l->forged_size - 1, &l->forged_entry)) < 0)
			goto out;
		if (s + 1 < l->forged_size) {
			merkle_leaf_hash(buf, len, leaf);
			merkle_frontier_append(&fr, leaf, NULL, NULL);
		}
	}
	merkle_leaf_hash(l->forged_entry.data, l->forged_entry.len, leaf);
	merkle_frontier_append(&fr, leaf, NULL, NULL);
	struct rec_head h = hs.hd->h;
	h.size = l->forged_size;
	merkle_frontier_root(&fr, h.root);
	h.time_us = l->lie == LIE_FORK ? mu_now_us() : h.time_us - 86400 * 1000000LL;
	if ((rc = head_make_signed(&h, l->signer, &l->forged_head)) == 0)
		snprintf(l->forged_dataset, sizeof(l->forged_dataset), "%s", name);
out:
	head_signed_fini(&hs);
	view_close(&v);
	return rc;
}

/* A head as this liar presents it, copied into out. */
static int present_head(struct liar *l, const uint8_t *buf, size_t len, struct rec_buf *out)
{
	struct rec_signed_head_decoded *sh = NULL;
	uint8_t sig[SIG_SIGNATURE_LEN];
	int rc;

	out->len = 0;
	if (!lying(l, LIE_BADSIG)) {
		if ((rc = rec_buf_reserve(out, len)) < 0)
			return rc;
		memcpy(out->data, buf, len);
		out->len = len;
		return 0;
	}
	if ((rc = rec_signed_head_decode(buf, len, &sh)) < 0)
		return rc;
	RAND_bytes(sig, sizeof(sig));
	rc = rec_signed_head_encode(sh->head, sh->head_len, sig, out);
	rec_signed_head_free(&sh);
	return rc;
}

/* The newest head of a dataset as presented; -ENOENT if none. */
static int newest_head(struct liar *l, struct view *v, struct rec_buf *out)
{
	const uint8_t *buf;
	size_t len;
	uint64_t size;
	int rc;

	if (forging(l, v->ds.name))
		return present_head(l, l->forged_head.data, l->forged_head.len, out);
	if (lying(l, LIE_ROLLBACK))
		rc = store_head_next(&v->t, v->ds.local_id, 0, &size, &buf, &len);
	else
		rc = store_head_latest(&v->t, v->ds.local_id, &size, &buf, &len);
	return rc < 0 ? rc : present_head(l, buf, len, out);
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* The names this liar offers (the caller frees them with free_names, also
 * on failure). */
static int offered(struct liar *l, char ***names, size_t *n)
{
	*names = NULL;
	*n = 0;
	if (l->nserve > 0) {
		if ((*names = calloc(l->nserve, sizeof(**names))) == NULL)
			return -ENOMEM;
		for (size_t i = 0; i < l->nserve; i++)
			if (((*names)[(*n)++] = strdup(l->serve[i])) == NULL)
				return -ENOMEM;
		return 0;
	}
	for (size_t s = 0; s < l->nstores; s++) {
		struct store_txn t;
		char **more = NULL;
		size_t nm = 0;
		if (store_read_begin(l->stores[s], &t) < 0)
			continue;
		store_dataset_names(&t, &more, &nm);
		store_read_end(&t);
		char **grown = realloc(*names, (*n + nm + 1) * sizeof(**names));
		if (grown == NULL) {
			free_names(more, nm);
			return -ENOMEM;
		}
		*names = grown;
		memcpy(*names + *n, more, nm * sizeof(*more));
		*n += nm;
		free(more);
	}
	return 0;
}

/* Send an envelope around raw payload bytes; the version lie lives here. */
static void send_raw(struct liar *l, void *sock, const struct wire_msg *to, Musubi__MsgType type,
		     uint64_t request_id, const uint8_t *payload, size_t len)
{
	Musubi__Envelope env = MUSUBI__ENVELOPE__INIT;
	struct rec_buf b = { 0 };

	env.version = lying(l, LIE_VERSION) ? WIRE_VERSION + 1 : WIRE_VERSION;
	env.type = type;
	env.request_id = request_id;
	env.payload.data = (uint8_t *)payload;
	env.payload.len = len;
	if (lying(l, LIE_VERSION))
		fprintf(stderr, "liar: version: sent an envelope of version %u\n", env.version);
	if (rec_buf_reserve(&b, musubi__envelope__get_packed_size(&env)) < 0)
		return;
	b.len = musubi__envelope__pack(&env, b.data);
	if (to != NULL)
		zmq_send(sock, to->routing_id, to->routing_len, ZMQ_SNDMORE | ZMQ_DONTWAIT);
	zmq_send(sock, b.data, b.len, ZMQ_DONTWAIT);
	rec_buf_fini(&b);
}

static void send_msg(struct liar *l, void *sock, const struct wire_msg *to, Musubi__MsgType type,
		     const ProtobufCMessage *payload)
{
	struct rec_buf b = { 0 };

	if (payload != NULL && rec_buf_reserve(&b, protobuf_c_message_get_packed_size(payload)) < 0)
		return;
	if (payload != NULL)
		b.len = protobuf_c_message_pack(payload, b.data);
	send_raw(l, sock, to, type, to ? to->env->request_id : 0, b.data, b.len);
	rec_buf_fini(&b);
}

/* Bytes of a length-delimited field (tag byte given) that claims HUGE_LEN
 * bytes and carries 16. */
static size_t huge_field(uint8_t tag, uint8_t *out)
{
	uint64_t v = HUGE_LEN;
	size_t n = 0;

	out[n++] = tag;
	while (v >= 0x80) {
		out[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	out[n++] = (uint8_t)v;
	memset(out + n, 0, 16);
	return n + 16;
}

static void reply_huge(struct liar *l, const struct wire_msg *m, Musubi__MsgType type)
{
	uint8_t payload[32];

	fprintf(stderr, "liar: %s: a reply claiming a field of %llu bytes\n", lie_names[l->lie],
		(unsigned long long)HUGE_LEN);
	send_raw(l, l->router, m, type, m->env->request_id, payload, huge_field(0x0a, payload));
}

static void reply_error(struct liar *l, const struct wire_msg *m, Musubi__ErrorCode code,
			const char *text)
{
	Musubi__Error e = MUSUBI__ERROR__INIT;

	e.code = code;
	e.message = (char *)text;
	send_msg(l, l->router, m, MUSUBI__MSG_TYPE__MSG_ERROR, &e.base);
}

static void on_hello(struct liar *l, const struct wire_msg *m)
{
	Musubi__Hello h = MUSUBI__HELLO__INIT;
	uint32_t versions[] = { WIRE_VERSION };
	struct store_txn t;
	char buf[32];
	size_t len;

	h.member = (char *)l->member;
	h.n_versions = 1;
	h.versions = versions;
	h.software = (char *)"liar";
	h.pub_endpoint = (char *)l->pub_endpoint;
	if (store_read_begin(l->stores[0], &t) == 0) {
		if (store_meta_get(&t, "trust_version", buf, sizeof(buf), &len) == 0)
			h.trust_version = strtoull(buf, NULL, 10);
		store_read_end(&t);
	}
	send_msg(l, l->router, m, MUSUBI__MSG_TYPE__MSG_HELLO, &h.base);
}

/* Heads of every offered dataset: the reply to LIST_HEADS, and what is
 * announced. */
static int all_heads(struct liar *l, Musubi__Heads *out, struct rec_buf **bufs)
{
	char **names;
	size_t n;
	int rc;

	if ((rc = offered(l, &names, &n)) < 0) {
		free_names(names, n);
		return rc;
	}
	out->heads = calloc(n ? n : 1, sizeof(*out->heads));
	*bufs = calloc(n ? n : 1, sizeof(**bufs));
	for (size_t i = 0; out->heads && *bufs && i < n; i++) {
		struct view v;
		if (view_open(l, names[i], &v) < 0)
			continue;
		if (newest_head(l, &v, &(*bufs)[out->n_heads]) == 0) {
			Musubi__HeadInfo *hi = malloc(sizeof(*hi));
			if (hi != NULL) {
				musubi__head_info__init(hi);
				hi->dataset = strdup(names[i]);
				hi->signed_head.data = (*bufs)[out->n_heads].data;
				hi->signed_head.len = (*bufs)[out->n_heads].len;
				hi->public_ = !v.ds.members_only;
				out->heads[out->n_heads++] = hi;
			}
		}
		view_close(&v);
	}
	free_names(names, n);
	return out->heads && *bufs ? 0 : -ENOMEM;
}

static void free_heads(Musubi__Heads *h, struct rec_buf *bufs)
{
	for (size_t i = 0; i < h->n_heads; i++) {
		free(h->heads[i]->dataset);
		free(h->heads[i]);
		rec_buf_fini(&bufs[i]);
	}
	free(h->heads);
	free(bufs);
}

static void log_heads_lie(struct liar *l, const char *what)
{
	if (lying(l, LIE_NONE) || lying(l, LIE_BADSIG) || lying(l, LIE_ROLLBACK) ||
	    lying(l, LIE_FORK) || lying(l, LIE_BACKDATE))
		fprintf(stderr, "liar: %s: %s\n", lie_names[l->lie], what);
}

static void on_list_heads(struct liar *l, const struct wire_msg *m)
{
	Musubi__Heads out = MUSUBI__HEADS__INIT;
	struct rec_buf *bufs = NULL;

	if (lying(l, LIE_HUGE)) {
		reply_huge(l, m, MUSUBI__MSG_TYPE__MSG_HEADS);
		return;
	}
	if (all_heads(l, &out, &bufs) == 0) {
		log_heads_lie(l, "listed heads");
		send_msg(l, l->router, m, MUSUBI__MSG_TYPE__MSG_HEADS, &out.base);
	}
	free_heads(&out, bufs);
}

static void announce(struct liar *l)
{
	Musubi__Heads all = MUSUBI__HEADS__INIT;
	struct rec_buf *bufs = NULL;

	if (all_heads(l, &all, &bufs) == 0)
		for (size_t i = 0; i < all.n_heads; i++) {
			Musubi__Announce a = MUSUBI__ANNOUNCE__INIT;
			a.dataset = all.heads[i]->dataset;
			a.signed_head = all.heads[i]->signed_head;
			send_msg(l, l->pub, NULL, MUSUBI__MSG_TYPE__MSG_ANNOUNCE, &a.base);
		}
	free_heads(&all, bufs);
}

static void on_get_heads(struct liar *l, const struct wire_msg *m)
{
	Musubi__GetHeads *q = musubi__get_heads__unpack(NULL, m->env->payload.len, m->env->payload.data);
	Musubi__Heads out = MUSUBI__HEADS__INIT;
	Musubi__HeadInfo infos[64], *ptrs[64];
	struct rec_buf bufs[64] = { 0 };
	struct view v;

	if (q == NULL || view_open(l, q->dataset, &v) < 0) {
		reply_error(l, m, MUSUBI__ERROR_CODE__ERR_NOT_FOUND, "no such dataset here");
		goto out;
	}
	uint64_t after = q->after_size, last = view_size(l, &v), size;
	const uint8_t *buf;
	size_t len;
	int forged = forging(l, v.ds.name);
	while (out.n_heads < 64 && store_head_next(&v.t, v.ds.local_id, after, &size, &buf, &len) == 0 &&
	       size <= last && !(forged && size >= l->forged_size)) {
		if (present_head(l, buf, len, &bufs[out.n_heads]) < 0)
			break;
		after = size;
		out.n_heads++;
	}
	if (forged && l->forged_size > q->after_size && out.n_heads < 64)
		present_head(l, l->forged_head.data, l->forged_head.len, &bufs[out.n_heads++]);
	for (size_t i = 0; i < out.n_heads; i++) {
		musubi__head_info__init(&infos[i]);
		infos[i].dataset = v.ds.name;
		infos[i].signed_head.data = bufs[i].data;
		infos[i].signed_head.len = bufs[i].len;
		infos[i].public_ = !v.ds.members_only;
		ptrs[i] = &infos[i];
	}
	out.heads = ptrs;
	log_heads_lie(l, "sent head history");
	send_msg(l, l->router, m, MUSUBI__MSG_TYPE__MSG_HEADS, &out.base);
	for (size_t i = 0; i < out.n_heads; i++)
		rec_buf_fini(&bufs[i]);
	view_close(&v);
out:
	if (q)
		musubi__get_heads__free_unpacked(q, NULL);
}

static void on_get_entries(struct liar *l, const struct wire_msg *m)
{
	Musubi__GetEntries *q = musubi__get_entries__unpack(NULL, m->env->payload.len,
							     m->env->payload.data);
	Musubi__Entries out = MUSUBI__ENTRIES__INIT;
	struct rec_buf *alt = NULL;
	struct view v;
	size_t bytes = 0;

	if (q == NULL || view_open(l, q->dataset, &v) < 0) {
		reply_error(l, m, MUSUBI__ERROR_CODE__ERR_NOT_FOUND, "no such dataset here");
		goto out;
	}
	int forged = forging(l, v.ds.name);
	uint64_t to = q->to < view_size(l, &v) ? q->to : view_size(l, &v);
	uint32_t budget = q->byte_budget && q->byte_budget < WIRE_MAX_ENTRIES_REPLY ?
			  q->byte_budget : WIRE_MAX_ENTRIES_REPLY;
	if (q->from >= to) {
		reply_error(l, m, MUSUBI__ERROR_CODE__ERR_NOT_FOUND, "no such entries");
		view_close(&v);
		goto out;
	}
	if (lying(l, LIE_HUGE_ENTRIES)) {
		reply_huge(l, m, MUSUBI__MSG_TYPE__MSG_ENTRIES);
		view_close(&v);
		goto out;
	}
	size_t cap = (size_t)(to - q->from < 65536 ? to - q->from : 65536);
	out.entries = calloc(cap, sizeof(*out.entries));
	alt = calloc(cap, sizeof(*alt));
	out.dataset = v.ds.name;
	out.from = q->from;
	for (uint64_t s = q->from; out.entries && alt && s < to && out.n_entries < cap; s++) {
		const uint8_t *buf;
		size_t len;
		if (forged && s + 1 == l->forged_size) {
			buf = l->forged_entry.data;
			len = l->forged_entry.len;
		} else if (store_entry_get(&v.t, v.ds.local_id, s, &buf, &len) < 0) {
			break;
		}
		if (out.n_entries > 0 && bytes + len > budget)
			break;
		if (lying(l, LIE_ALTERED)) {
			if (alter_entry(buf, len, s, &alt[out.n_entries]) < 0)
				break;
			buf = alt[out.n_entries].data;
			len = alt[out.n_entries].len;
		}
		out.entries[out.n_entries].data = (uint8_t *)buf;
		out.entries[out.n_entries].len = len;
		out.n_entries++;
		bytes += len;
	}
	if (lying(l, LIE_REORDER))
		for (size_t i = 0; i + 1 < out.n_entries; i += 2) {
			ProtobufCBinaryData tmp = out.entries[i];
			out.entries[i] = out.entries[i + 1];
			out.entries[i + 1] = tmp;
		}
	if (lying(l, LIE_DUPLICATE) && out.n_entries > 1)
		out.entries[1] = out.entries[0];
	if (l->lie != LIE_NONE && armed)
		fprintf(stderr, "liar: %s: sent entries %" PRIu64 "..%" PRIu64 " of %s\n",
			lie_names[l->lie], q->from, q->from + out.n_entries, v.ds.name);
	send_msg(l, l->router, m, MUSUBI__MSG_TYPE__MSG_ENTRIES, &out.base);
	for (size_t i = 0; alt && i < cap; i++)
		rec_buf_fini(&alt[i]);
	free(alt);
	free(out.entries);
	view_close(&v);
out:
	if (q)
		musubi__get_entries__free_unpacked(q, NULL);
}

static void on_get_trust(struct liar *l, const struct wire_msg *m)
{
	Musubi__GetTrust *q = musubi__get_trust__unpack(NULL, m->env->payload.len, m->env->payload.data);
	Musubi__TrustLists out = MUSUBI__TRUST_LISTS__INIT;
	ProtobufCBinaryData lists[64];
	struct store_txn t;

	if (q == NULL || store_read_begin(l->stores[0], &t) < 0) {
		reply_error(l, m, MUSUBI__ERROR_CODE__ERR_BAD_REQUEST, "bad request");
		goto out;
	}
	for (uint64_t v = q->after_version + 1; out.n_lists < 64; v++) {
		const uint8_t *buf;
		size_t len;
		if (store_trust_get(&t, v, &buf, &len) < 0)
			break;
		lists[out.n_lists].data = (uint8_t *)buf;
		lists[out.n_lists++].len = len;
	}
	out.lists = lists;
	send_msg(l, l->router, m, MUSUBI__MSG_TYPE__MSG_TRUST, &out.base);
	store_read_end(&t);
out:
	if (q)
		musubi__get_trust__free_unpacked(q, NULL);
}

static void on_get_schema(struct liar *l, const struct wire_msg *m)
{
	Musubi__GetSchema *q = musubi__get_schema__unpack(NULL, m->env->payload.len, m->env->payload.data);
	char ref[200];

	if (q == NULL) {
		reply_error(l, m, MUSUBI__ERROR_CODE__ERR_BAD_REQUEST, "bad request");
		return;
	}
	snprintf(ref, sizeof(ref), "%.150s@%u", q->id, q->version);
	for (size_t i = 0; i <= l->nstores; i++) {
		struct store_txn t;
		const uint8_t *json;
		size_t len;
		if (i == l->nstores) {
			reply_error(l, m, MUSUBI__ERROR_CODE__ERR_NOT_FOUND, "no such schema");
			break;
		}
		if (store_read_begin(l->stores[i], &t) < 0)
			continue;
		if (store_schema_get(&t, ref, &json, &len) == 0) {
			Musubi__Schema out = MUSUBI__SCHEMA__INIT;
			out.id = q->id;
			out.version = q->version;
			out.json.data = (uint8_t *)json;
			out.json.len = len;
			send_msg(l, l->router, m, MUSUBI__MSG_TYPE__MSG_SCHEMA, &out.base);
			store_read_end(&t);
			break;
		}
		store_read_end(&t);
	}
	musubi__get_schema__free_unpacked(q, NULL);
}

static void serve_one(struct liar *l, const struct wire_msg *m)
{
	if (lying(l, LIE_HUGE_ENVELOPE)) {
		/* version 1, the request's type and id, then a payload field
		 * whose length prefix claims HUGE_LEN bytes */
		uint8_t env[64];
		size_t n = 0;
		uint64_t id = m->env->request_id;
		env[n++] = 0x08;
		env[n++] = WIRE_VERSION;
		env[n++] = 0x10;
		env[n++] = (uint8_t)m->env->type;
		env[n++] = 0x18;
		do {
			env[n++] = (uint8_t)((id & 0x7f) | (id >= 0x80 ? 0x80 : 0));
			id >>= 7;
		} while (id != 0);
		n += huge_field(0x22, env + n);
		fprintf(stderr, "liar: huge-envelope: an envelope claiming a payload of %llu bytes\n",
			(unsigned long long)HUGE_LEN);
		zmq_send(l->router, m->routing_id, m->routing_len, ZMQ_SNDMORE | ZMQ_DONTWAIT);
		zmq_send(l->router, env, n, ZMQ_DONTWAIT);
		return;
	}
	switch (m->env->type) {
	case MUSUBI__MSG_TYPE__MSG_HELLO: on_hello(l, m); break;
	case MUSUBI__MSG_TYPE__MSG_LIST_HEADS: on_list_heads(l, m); break;
	case MUSUBI__MSG_TYPE__MSG_GET_HEADS: on_get_heads(l, m); break;
	case MUSUBI__MSG_TYPE__MSG_GET_ENTRIES: on_get_entries(l, m); break;
	case MUSUBI__MSG_TYPE__MSG_GET_TRUST: on_get_trust(l, m); break;
	case MUSUBI__MSG_TYPE__MSG_GET_SCHEMA: on_get_schema(l, m); break;
	case MUSUBI__MSG_TYPE__MSG_STATUS: {
		Musubi__StatusReply s = MUSUBI__STATUS_REPLY__INIT;
		s.json = (char *)"{}";
		send_msg(l, l->router, m, MUSUBI__MSG_TYPE__MSG_STATUS_REPLY, &s.base);
		break;
	}
	default:
		reply_error(l, m, MUSUBI__ERROR_CODE__ERR_BAD_REQUEST, "the liar does not answer that");
		break;
	}
}

/* The liar admits anyone: CURVE without a ZAP domain. It is the honest
 * node that must defend itself. */
static void *curve_server(void *ctx, int type, const uint8_t sec[32], const char *endpoint)
{
	void *s = zmq_socket(ctx, type);
	int one = 1, linger = 0;

	if (s == NULL || zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof(one)) != 0 ||
	    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 32) != 0 ||
	    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger)) != 0 || zmq_bind(s, endpoint) != 0) {
		fprintf(stderr, "liar: cannot bind %s: %s\n", endpoint, zmq_strerror(errno));
		if (s)
			zmq_close(s);
		return NULL;
	}
	return s;
}

static int cmd_serve(int argc, char **argv)
{
	struct liar l = { .lie = LIE_NONE };
	const char *keydir = NULL, *listen = NULL;
	char path[4096];
	uint8_t pub[32], sec[32];
	int by_signal = 0, rc = 1, i;
	void *ctx = NULL;
	char *serve[16];

	l.serve = serve;
	for (i = 2; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(opt, "--armed-by-signal") == 0) {
			by_signal = 1;
			continue;
		}
		if (val == NULL)
			goto usage;
		i++;
		if (strcmp(opt, "--key") == 0)
			keydir = val;
		else if (strcmp(opt, "--member") == 0)
			l.member = val;
		else if (strcmp(opt, "--listen") == 0)
			listen = val;
		else if (strcmp(opt, "--pub") == 0)
			l.pub_endpoint = val;
		else if (strcmp(opt, "--serve") == 0 && l.nserve < 16)
			serve[l.nserve++] = (char *)val;
		else if (strcmp(opt, "--lie") == 0) {
			size_t k;
			for (k = 0; k < sizeof(lie_names) / sizeof(*lie_names); k++)
				if (strcmp(val, lie_names[k]) == 0)
					break;
			if (k == sizeof(lie_names) / sizeof(*lie_names))
				goto usage;
			l.lie = (enum lie)k;
		} else {
			goto usage;
		}
	}
	if (!keydir || !l.member || !listen || !l.pub_endpoint || i == argc)
		goto usage;
	for (; i < argc && l.nstores < MAX_STORES; i++)
		if (store_open(argv[i], STORE_RDONLY, &l.stores[l.nstores++]) < 0) {
			fprintf(stderr, "liar: cannot open the store in %s\n", argv[i]);
			goto out;
		}
	snprintf(path, sizeof(path), "%s/transport.pem", keydir);
	if (sig_transport_load(path, pub, sec) < 0)
		goto out;
	snprintf(path, sizeof(path), "%s/signing.pem", keydir);
	if (sig_key_load_private(path, &l.signer) < 0)
		goto out;
	ctx = zmq_ctx_new();
	if ((l.router = curve_server(ctx, ZMQ_ROUTER, sec, listen)) == NULL ||
	    (l.pub = curve_server(ctx, ZMQ_PUB, sec, l.pub_endpoint)) == NULL)
		goto out;
	struct sigaction sa = { .sa_handler = on_usr1 };
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	armed = !by_signal;
	fprintf(stderr, "liar: member %s on %s, lie %s%s\n", l.member, listen, lie_names[l.lie],
		by_signal ? " after SIGUSR1" : "");
	int64_t next_announce = 0;
	while (!stopping) {
		zmq_pollitem_t it = { l.router, 0, ZMQ_POLLIN, 0 };
		if (armed && (l.lie == LIE_FORK || l.lie == LIE_BACKDATE) && l.forged_head.len == 0) {
			if (l.nserve == 0 || forge(&l, l.serve[0]) < 0) {
				fprintf(stderr, "liar: %s needs --serve of its own dataset\n", lie_names[l.lie]);
				goto out;
			}
			fprintf(stderr, "liar: %s: signed a head of %s at size %" PRIu64 "\n",
				lie_names[l.lie], l.forged_dataset, l.forged_size);
		}
		if (zmq_poll(&it, 1, 100) < 0 && errno != EINTR)
			break;
		for (int k = 0; k < 64 && (it.revents & ZMQ_POLLIN); k++) {
			struct wire_msg m;
			int r = wire_recv(l.router, 1, ZMQ_DONTWAIT, &m);
			if (r == -EAGAIN)
				break;
			if (r == 0)
				serve_one(&l, &m);
			wire_msg_fini(&m);
		}
		if (mu_mono_us() >= next_announce) {
			announce(&l);
			next_announce = mu_mono_us() + 500000;
		}
	}
	rc = 0;
out:
	OPENSSL_cleanse(sec, sizeof(sec));
	if (l.router)
		zmq_close(l.router);
	if (l.pub)
		zmq_close(l.pub);
	if (ctx)
		zmq_ctx_term(ctx);
	for (size_t s = 0; s < l.nstores; s++)
		store_close(&l.stores[s]);
	sig_key_destroy(&l.signer);
	rec_buf_fini(&l.forged_head);
	rec_buf_fini(&l.forged_entry);
	return rc;
usage:
	fprintf(stderr, "usage: liar serve --key KEYDIR --member ID --listen EP --pub EP --lie LIE "
		"[--armed-by-signal] [--serve DATASET]... STOREDIR...\n");
	return 2;
}

/* What each pushed message type carries: real data a node must not take. */
struct push_data {
	Musubi__HeadInfo hi;
	Musubi__HeadInfo *hip;
	Musubi__Heads heads;
	ProtobufCBinaryData entries[16], list;
	Musubi__Entries ents;
	Musubi__TrustLists trust;
	Musubi__Schema schema;
	Musubi__Announce ann;
	Musubi__Query query;
	Musubi__Hello hello;
};

static const ProtobufCMessage *push_payload(struct push_data *d, int type)
{
	switch (type) {
	case MUSUBI__MSG_TYPE__MSG_HEADS: return &d->heads.base;
	case MUSUBI__MSG_TYPE__MSG_ENTRIES: return &d->ents.base;
	case MUSUBI__MSG_TYPE__MSG_TRUST: return &d->trust.base;
	case MUSUBI__MSG_TYPE__MSG_SCHEMA: return &d->schema.base;
	case MUSUBI__MSG_TYPE__MSG_ANNOUNCE: return &d->ann.base;
	case MUSUBI__MSG_TYPE__MSG_QUERY: return &d->query.base;
	case MUSUBI__MSG_TYPE__MSG_HELLO: return &d->hello.base;
	default: return NULL;   /* requests with their defaults, or empty */
	}
}

static int cmd_push(int argc, char **argv)
{
	struct client *c = NULL;
	struct store *st = NULL;
	struct store_txn t;
	struct push_data d;
	struct store_dataset ds = { 0 };
	char **names = NULL, ref[200];
	size_t nn = 0, len;
	uint64_t size, version;
	const uint8_t *buf;
	uint8_t key[32];
	int rc = 1;

	if (argc != 6) {
		fprintf(stderr, "usage: liar push ENDPOINT SERVER_PUB_PEM KEYDIR|- STOREDIR\n");
		return 2;
	}
	if (sig_transport_load_public(argv[3], key) < 0 ||
	    client_open(argv[2], key, strcmp(argv[4], "-") ? argv[4] : NULL, &c) < 0 ||
	    store_open(argv[5], STORE_RDONLY, &st) < 0 || store_read_begin(st, &t) < 0) {
		fprintf(stderr, "liar: cannot connect or open %s\n", argv[5]);
		client_close(&c);
		store_close(&st);
		return 2;
	}
	if (store_dataset_names(&t, &names, &nn) < 0 || nn == 0 ||
	    store_dataset_get(&t, names[0], &ds) < 0 ||
	    store_head_latest(&t, ds.local_id, &size, &buf, &len) < 0) {
		fprintf(stderr, "liar: %s holds no dataset to push\n", argv[5]);
		goto out;
	}
	musubi__head_info__init(&d.hi);
	d.hi.dataset = ds.name;
	d.hi.signed_head.data = (uint8_t *)buf;
	d.hi.signed_head.len = len;
	d.hi.public_ = 1;
	d.hip = &d.hi;
	musubi__heads__init(&d.heads);
	d.heads.n_heads = 1;
	d.heads.heads = &d.hip;
	musubi__announce__init(&d.ann);
	d.ann.dataset = ds.name;
	d.ann.signed_head = d.hi.signed_head;
	musubi__entries__init(&d.ents);
	d.ents.dataset = ds.name;
	d.ents.entries = d.entries;
	while (d.ents.n_entries < 16 && d.ents.n_entries < size &&
	       store_entry_get(&t, ds.local_id, d.ents.n_entries, &buf, &len) == 0) {
		d.entries[d.ents.n_entries].data = (uint8_t *)buf;
		d.entries[d.ents.n_entries++].len = len;
	}
	musubi__trust_lists__init(&d.trust);
	if (store_trust_latest(&t, &version, &buf, &len) == 0) {
		d.list.data = (uint8_t *)buf;
		d.list.len = len;
		d.trust.n_lists = 1;
		d.trust.lists = &d.list;
	}
	musubi__schema__init(&d.schema);
	snprintf(ref, sizeof(ref), "%s@%u", ds.schema_id ? ds.schema_id : "", ds.schema_version);
	d.schema.id = ds.schema_id;
	d.schema.version = ds.schema_version;
	if (store_schema_get(&t, ref, &buf, &len) == 0) {
		d.schema.json.data = (uint8_t *)buf;
		d.schema.json.len = len;
	}
	musubi__query__init(&d.query);
	d.query.sql = (char *)"CREATE TABLE pushed(x)";
	musubi__hello__init(&d.hello);
	d.hello.member = (char *)"liar";
	d.hello.trust_version = 1000;
	/* Every type of the enum, and one past the last. */
	int last = 0;
	for (unsigned i = 0; i < musubi__msg_type__descriptor.n_values; i++)
		if (musubi__msg_type__descriptor.values[i].value > last)
			last = musubi__msg_type__descriptor.values[i].value;
	for (int type = 0; type <= last + 1; type++) {
		struct wire_msg r;
		char why[512];
		int got = client_call(c, (Musubi__MsgType)type, push_payload(&d, type), 3000, &r, why,
				      sizeof(why));
		if (got == 0) {
			printf("type %d: reply type %d\n", type, (int)r.env->type);
			wire_msg_fini(&r);
		} else {
			printf("type %d: %s: %s\n", type, got == MU_E_TIMEOUT ? "no answer" : "error", why);
		}
	}
	printf("pushed %d message types; %s: %zu entries, its head, %zu trust list(s), its schema\n",
	       last + 2, ds.name, d.ents.n_entries, d.trust.n_lists);
	rc = 0;
out:
	for (size_t i = 0; i < nn; i++)
		free(names[i]);
	free(names);
	store_dataset_fini(&ds);
	store_read_end(&t);
	store_close(&st);
	client_close(&c);
	return rc;
}

/* A client without CURVE: the node must say nothing to it. */
static int cmd_plain(int argc, char **argv)
{
	Musubi__Envelope env = MUSUBI__ENVELOPE__INIT;
	uint8_t buf[64];
	int linger = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: liar plain ENDPOINT\n");
		return 2;
	}
	void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_DEALER);
	zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_connect(s, argv[2]);
	env.version = WIRE_VERSION;
	env.type = MUSUBI__MSG_TYPE__MSG_STATUS;
	env.request_id = 1;
	zmq_send(s, buf, musubi__envelope__pack(&env, buf), ZMQ_DONTWAIT);
	zmq_pollitem_t it = { s, 0, ZMQ_POLLIN, 0 };
	printf("plain client: %s\n", zmq_poll(&it, 1, 2000) == 1 ? "answered" : "no answer");
	zmq_close(s);
	zmq_ctx_term(ctx);
	return 0;
}

/* Does a CURVE server socket made by wire_curve_server admit a client
 * that knows its key? With a ZAP handler that says 200 it must; with no
 * handler at all it must not (ZMQ_ZAP_ENFORCE_DOMAIN). */
static int admits(int with_handler)
{
	char zpub[41], zsec[41], cpub[41], csec[41], ep[256];
	uint8_t spub[32], ssec[32], pub[32], sec[32];
	size_t eplen = sizeof(ep);
	int got = 0, linger = 0;
	void *ctx = zmq_ctx_new(), *zap = NULL;

	zmq_curve_keypair(zpub, zsec);
	zmq_curve_keypair(cpub, csec);
	zmq_z85_decode(spub, zpub);
	zmq_z85_decode(ssec, zsec);
	zmq_z85_decode(pub, cpub);
	zmq_z85_decode(sec, csec);
	if (with_handler) {
		zap = zmq_socket(ctx, ZMQ_REP);
		zmq_setsockopt(zap, ZMQ_LINGER, &linger, sizeof(linger));
		zmq_bind(zap, "inproc://zeromq.zap.01");
	}
	void *server = zmq_socket(ctx, ZMQ_ROUTER), *client = zmq_socket(ctx, ZMQ_DEALER);
	wire_curve_server(server, ssec);
	zmq_bind(server, "tcp://127.0.0.1:*");
	zmq_getsockopt(server, ZMQ_LAST_ENDPOINT, ep, &eplen);
	wire_curve_client(client, pub, sec, spub);
	zmq_connect(client, ep);
	zmq_send(client, "hello", 5, ZMQ_DONTWAIT);
	int64_t deadline = mu_mono_us() + 1500000;
	while (!got && mu_mono_us() < deadline) {
		zmq_pollitem_t it[2] = { { server, 0, ZMQ_POLLIN, 0 }, { zap, 0, ZMQ_POLLIN, 0 } };
		zmq_poll(it, zap ? 2 : 1, 100);
		if (zap && (it[1].revents & ZMQ_POLLIN)) {
			zmq_msg_t part[8];
			int n = 0, more = 1;
			size_t sz = sizeof(more);
			while (more && n < 8) {
				zmq_msg_init(&part[n]);
				zmq_msg_recv(&part[n++], zap, 0);
				zmq_getsockopt(zap, ZMQ_RCVMORE, &more, &sz);
			}
			zmq_send(zap, "1.0", 3, ZMQ_SNDMORE);
			zmq_send(zap, zmq_msg_data(&part[1]), zmq_msg_size(&part[1]), ZMQ_SNDMORE);
			zmq_send(zap, "200", 3, ZMQ_SNDMORE);
			zmq_send(zap, "OK", 2, ZMQ_SNDMORE);
			zmq_send(zap, "probe", 5, ZMQ_SNDMORE);
			zmq_send(zap, "", 0, 0);
			for (int i = 0; i < n; i++)
				zmq_msg_close(&part[i]);
		}
		if (it[0].revents & ZMQ_POLLIN)
			got = 1;
	}
	zmq_close(client);
	zmq_close(server);
	if (zap)
		zmq_close(zap);
	zmq_ctx_term(ctx);
	return got;
}

static int cmd_nozap(void)
{
	int without = admits(0), with = admits(1);

	printf("no ZAP handler: %s\n", without ? "ADMITTED" : "refused");
	printf("with a ZAP handler: %s\n", with ? "admitted" : "REFUSED");
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc >= 2 && strcmp(argv[1], "serve") == 0)
		return cmd_serve(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "push") == 0)
		return cmd_push(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "plain") == 0)
		return cmd_plain(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "nozap") == 0)
		return cmd_nozap();
	fprintf(stderr, "usage: liar serve|push|plain|nozap ... (see liar.c)\n");
	return 2;
}
