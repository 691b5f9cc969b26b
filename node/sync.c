/*
 * sync.c - the peers: hello, anti-entropy, announcements, and the fetch
 * of missing entries with several requests in flight.
 *
 * Per dataset, a fetch goes: GET_HEADS (the signed heads after our size)
 * -> GET_ENTRIES in chunks, at most cfg->window in flight (the credit) ->
 * whenever the entries received so far reach a signed head, one
 * ingest_commit() verifies and stores them. Nothing from a peer is stored
 * before ingest has recomputed the root and checked the signature. A peer
 * that lies or breaks the protocol gets a strike and is ignored for a
 * backoff that doubles with each strike.
 */
#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "client.h"
#include "cosign.h"
#include "head.h"
#include "ingest.h"
#include "redact.h"
#include "log.h"
#include "mu_err.h"
#include "node.h"
#include "schema.h"
#include "trust.h"
#include "util.h"

#define FETCH_CHUNK 2000             /* entries asked for in one request */
#define FETCH_AHEAD 200000           /* requests stay this close to the contiguous end */
#define COMMIT_BYTES (8u << 20)      /* commit at a head once this much is buffered */
#define BACKOFF_MAX_US (300 * 1000000LL)

int sync_wants(const struct node *n, const char *dataset)
{
	if (n->cfg->nreplicate == 0)
		return 1;
	for (size_t i = 0; i < n->cfg->nreplicate; i++)
		if (fnmatch(n->cfg->replicate[i], dataset, 0) == 0)
			return 1;
	return 0;
}

static void strike(struct node *n, struct peer *p, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void strike(struct node *n, struct peer *p, const char *fmt, ...)
{
	va_list ap;
	int64_t backoff;

	va_start(ap, fmt);
	vsnprintf(p->last_error, sizeof(p->last_error), fmt, ap);
	va_end(ap);
	p->strikes++;
	backoff = 1000000LL << (p->strikes < 9 ? p->strikes : 9);
	if (backoff > BACKOFF_MAX_US)
		backoff = BACKOFF_MAX_US;
	p->backoff_until_us = mu_now_us() + backoff;
	log_warn("peer %s (%s): %s; ignored for %lld s", p->endpoint, p->member[0] ? p->member : "?",
		 p->last_error, (long long)(backoff / 1000000));
}

static void count_refusal(struct node *n, int rc)
{
	switch (rc) {
	case MU_E_BADSIG: n->stats.refused_badsig++; break;
	case MU_E_TRUST: case MU_E_KEY: n->stats.refused_trust++; break;
	case MU_E_ROOT: n->stats.refused_root++; break;
	case MU_E_DECODE: case MU_E_CORRUPT: n->stats.refused_decode++; break;
	default: n->stats.refused_proto++; break;
	}
}

static int peer_request(struct node *n, struct peer *p, Musubi__MsgType type,
			const ProtobufCMessage *payload, struct fetch *f, uint64_t from, uint64_t to)
{
	struct pending *slot;
	int rc;

	if (p->dealer == NULL || p->ninflight >= NODE_MAX_INFLIGHT)
		return -EBUSY;
	slot = &p->inflight[p->ninflight];
	slot->id = ++p->next_req;
	slot->type = type;
	slot->fetch = f;
	slot->from = from;
	slot->to = to;
	slot->sent_us = mu_now_us();
	if ((rc = wire_send(p->dealer, NULL, 0, type, slot->id, payload)) < 0)
		return rc;
	p->ninflight++;
	return 0;
}

static int take_pending(struct peer *p, uint64_t id, struct pending *out)
{
	for (int i = 0; i < p->ninflight; i++)
		if (p->inflight[i].id == id) {
			*out = p->inflight[i];
			p->inflight[i] = p->inflight[--p->ninflight];
			return 0;
		}
	return -ENOENT;
}

static void send_hello(struct node *n, struct peer *p)
{
	Musubi__Hello h = MUSUBI__HELLO__INIT;
	uint32_t versions[] = { WIRE_VERSION };
	struct store_txn t;
	char buf[32];
	size_t len;

	h.member = n->member;
	h.n_versions = 1;
	h.versions = versions;
	h.software = (char *)"musubi";
	h.pub_endpoint = n->cfg->pub;
	if (store_read_begin(n->st, &t) == 0) {
		if (store_meta_get(&t, "trust_version", buf, sizeof(buf), &len) == 0)
			h.trust_version = strtoull(buf, NULL, 10);
		store_read_end(&t);
	}
	peer_request(n, p, MUSUBI__MSG_TYPE__MSG_HELLO, &h.base, NULL, 0, 0);
}

static void send_list_heads(struct node *n, struct peer *p)
{
	Musubi__ListHeads q = MUSUBI__LIST_HEADS__INIT;

	peer_request(n, p, MUSUBI__MSG_TYPE__MSG_LIST_HEADS, &q.base, NULL, 0, 0);
}

/* Find the peer's member id and transport key in the trust list. */
static int resolve_peer(struct node *n, struct peer *p)
{
	struct store_txn t;
	int rc;

	if ((rc = store_read_begin(n->st, &t)) < 0)
		return rc;
	if (strstr(p->endpoint, "://") == NULL) {
		/* Given as a member id: its endpoint comes from the list. */
		char member[64];
		snprintf(member, sizeof(member), "%.63s", p->endpoint);
		rc = trust_member_endpoint(&t, member, p->endpoint, sizeof(p->endpoint), p->server_key);
		if (rc == 0)
			snprintf(p->member, sizeof(p->member), "%s", member);
	} else {
		rc = client_member_by_endpoint(&t, p->endpoint, p->member, sizeof(p->member),
					       p->server_key);
	}
	store_read_end(&t);
	p->have_key = rc == 0;
	return rc;
}

static int peer_connect(struct node *n, struct peer *p)
{
	int rc;

	if (!p->have_key && resolve_peer(n, p) < 0)
		return -ENOENT;
	if ((p->dealer = zmq_socket(n->zctx, ZMQ_DEALER)) == NULL)
		return -errno;
	if ((rc = wire_curve_client(p->dealer, n->pub, n->sec, p->server_key)) < 0 ||
	    zmq_connect(p->dealer, p->endpoint) != 0) {
		rc = rc < 0 ? rc : -errno;
		log_err("peer %s: cannot connect: %s", p->endpoint, zmq_strerror(-rc));
		zmq_close(p->dealer);
		p->dealer = NULL;
		return rc;
	}
	log_info("peer %s: member %s", p->endpoint, p->member);
	send_hello(n, p);
	send_list_heads(n, p);
	return 0;
}

int sync_peers_start(struct node *n)
{
	n->npeers = n->cfg->npeers;
	if (n->npeers == 0)
		return 0;
	if ((n->peers = calloc(n->npeers, sizeof(*n->peers))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n->npeers; i++) {
		struct peer *p = &n->peers[i];
		snprintf(p->endpoint, sizeof(p->endpoint), "%s", n->cfg->peers[i]);
		if (peer_connect(n, p) == -ENOENT)
			log_warn("peer %s is not a member in this node's trust list: retrying when "
				 "the list changes", p->endpoint);
	}
	return 0;
}

static struct fetch *find_fetch(struct node *n, const char *dataset)
{
	for (struct fetch *f = n->fetches; f != NULL; f = f->next)
		if (strcmp(f->dataset, dataset) == 0)
			return f;
	return NULL;
}

static void fetch_free(struct node *n, struct fetch *f)
{
	struct fetch **pp;

	for (pp = &n->fetches; *pp != NULL; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	/* Replies still in flight for this fetch are dropped on arrival. */
	for (size_t i = 0; i < n->npeers; i++)
		for (int k = 0; k < n->peers[i].ninflight; k++)
			if (n->peers[i].inflight[k].fetch == f)
				n->peers[i].inflight[k].fetch = NULL;
	for (size_t i = 0; i < f->nheads; i++)
		free(f->heads[i]);
	free(f->heads);
	free(f->head_lens);
	free(f->head_sizes);
	if (f->entries != NULL)
		for (uint64_t i = 0; i < f->target - f->base; i++)
			free(f->entries[i]);
	free(f->entries);
	free(f->entry_lens);
	free(f);
}

static void announce(struct node *n, const char *dataset, const uint8_t *sh, size_t len,
		     const struct rec_buf *cosig)
{
	Musubi__Announce a = MUSUBI__ANNOUNCE__INIT;

	a.dataset = (char *)dataset;
	a.signed_head.data = (uint8_t *)sh;
	a.signed_head.len = len;
	if (cosig != NULL && cosig->len > 0) {
		a.cosig.data = cosig->data;
		a.cosig.len = cosig->len;
	}
	wire_send(n->pubsock, NULL, 0, MUSUBI__MSG_TYPE__MSG_ANNOUNCE, 0, &a.base);
}

struct cosign_ctx {
	struct node *n;
	const char *dataset;
	uint8_t *const *heads;
	const size_t *lens;
	size_t count;
	struct rec_buf *last;    /* the newest head's cosignature, for the announcement */
};

/* Witness the heads just verified: sign and keep a cosignature of each. */
static int cosign_fn(struct store_txn *t, void *arg)
{
	struct cosign_ctx *c = arg;
	char buf[32];
	size_t len;
	uint64_t tv = 0;
	int rc;

	if (store_meta_get(t, "trust_version", buf, sizeof(buf), &len) == 0)
		tv = strtoull(buf, NULL, 10);
	for (size_t i = 0; i < c->count; i++) {
		struct head_signed hs;
		if ((rc = head_decode(c->heads[i], c->lens[i], &hs)) < 0)
			return rc;
		rc = cosign_make(c->n->signer, c->n->member, tv, c->dataset, hs.hd->h.size,
				 hs.sh->head, hs.sh->head_len, c->last);
		if (rc == 0)
			rc = store_cosig_put(t, c->dataset, hs.hd->h.size, c->n->member, c->last->data,
					     c->last->len);
		head_signed_fini(&hs);
		if (rc < 0)
			return rc;
	}
	return 0;
}

void sync_announce_changes(struct node *n)
{
	struct store_txn t;
	char **names = NULL;
	size_t nn = 0;

	if (store_read_begin(n->st, &t) < 0)
		return;
	store_dataset_names(&t, &names, &nn);
	for (size_t i = 0; i < nn; i++) {
		struct store_dataset ds;
		const uint8_t *buf;
		size_t len, k;
		uint64_t size;
		if (store_dataset_get(&t, names[i], &ds) < 0)
			continue;
		if (store_head_latest(&t, ds.local_id, &size, &buf, &len) == 0) {
			for (k = 0; k < n->nannounced; k++)
				if (strcmp(n->announced[k].dataset, ds.name) == 0)
					break;
			if (k == n->nannounced) {
				struct announced *grown = realloc(n->announced, (k + 1) * sizeof(*grown));
				if (grown == NULL) {
					store_dataset_fini(&ds);
					break;
				}
				n->announced = grown;
				snprintf(grown[k].dataset, sizeof(grown[k].dataset), "%s", ds.name);
				grown[k].size = 0;
				n->nannounced++;
			}
			if (n->announced[k].size < size) {
				announce(n, ds.name, buf, len, NULL);
				n->announced[k].size = size;
				log_debug("announced %s at size %" PRIu64, ds.name, size);
			}
		}
		store_dataset_fini(&ds);
	}
	for (size_t i = 0; i < nn; i++)
		free(names[i]);
	free(names);
	store_read_end(&t);
}

/* Ask for more entries while credit and buffer allow. */
static void fetch_pump(struct node *n, struct fetch *f)
{
	struct peer *p = f->peer;

	while (f->inflight < n->cfg->window && f->next_request < f->target &&
	       f->next_request - f->contiguous < FETCH_AHEAD &&
	       f->buffered_bytes < NODE_MAX_FETCH_BYTES) {
		Musubi__GetEntries q = MUSUBI__GET_ENTRIES__INIT;
		uint64_t to = f->next_request + FETCH_CHUNK;
		if (to > f->target)
			to = f->target;
		q.dataset = f->dataset;
		q.from = f->next_request;
		q.to = to;
		q.byte_budget = n->cfg->batch_bytes;
		if (peer_request(n, p, MUSUBI__MSG_TYPE__MSG_GET_ENTRIES, &q.base, f, q.from, to) < 0)
			break;
		f->inflight++;
		f->next_request = to;
	}
}

static void request_schema(struct node *n, struct peer *p, const char *ref)
{
	Musubi__GetSchema q = MUSUBI__GET_SCHEMA__INIT;
	char id[160];
	const char *at = strrchr(ref, '@');

	if (at == NULL)
		return;
	snprintf(id, sizeof(id), "%.*s", (int)(at - ref), ref);
	q.id = id;
	q.version = (uint32_t)strtoul(at + 1, NULL, 10);
	peer_request(n, p, MUSUBI__MSG_TYPE__MSG_GET_SCHEMA, &q.base, NULL, 0, 0);
}

/* Commit what has arrived up to the newest head it reaches, if worth it. */
static void fetch_try_commit(struct node *n, struct fetch *f)
{
	size_t j = SIZE_MAX;
	struct ingest_result res;
	char why[512];
	int rc;

	for (size_t i = 0; i < f->nheads; i++)
		if (f->head_sizes[i] > f->base && f->head_sizes[i] <= f->contiguous)
			j = i;
	if (j == SIZE_MAX)
		return;
	if (f->head_sizes[j] != f->target && f->buffered_bytes < COMMIT_BYTES &&
	    f->next_request < f->target && f->inflight > 0)
		return;   /* more is coming soon: commit in bigger steps */
	size_t first = 0;
	while (f->head_sizes[first] <= f->base)
		first++;
	struct ingest_batch b = {
		.dataset = f->dataset,
		.from = f->base,
		.n = (size_t)(f->head_sizes[j] - f->base),
		.entries = (const uint8_t *const *)f->entries,
		.entry_lens = f->entry_lens,
		.nheads = j - first + 1,
		.heads = (const uint8_t *const *)&f->heads[first],
		.head_lens = &f->head_lens[first],
	};
	rc = ingest_commit(n->st, &b, trust_head_key, n->tcache, &res, why, sizeof(why));
	if (rc < 0 && (store_space_advice(rc) != NULL || rc == -ENOMEM || rc == MU_E_STORE)) {
		/* This node's store failed, not the peer: no strike; anti-entropy
		 * fetches again, and succeeds once the store can grow. */
		log_err("cannot store %s entries %" PRIu64 "..%" PRIu64 " from %s: %s%s%s",
			f->dataset, f->base, f->head_sizes[j], f->peer->member, mu_strerror(rc),
			store_space_advice(rc) ? ": " : "",
			store_space_advice(rc) ? store_space_advice(rc) : "");
		fetch_free(n, f);
		return;
	}
	if (rc < 0) {
		count_refusal(n, rc);
		if (rc == -EAGAIN)
			log_info("%s moved on locally; fetching again later", f->dataset);
		else
			strike(n, f->peer, "refused %s entries %" PRIu64 "..%" PRIu64 ": %s",
			       f->dataset, f->base, f->head_sizes[j], why[0] ? why : mu_strerror(rc));
		fetch_free(n, f);
		return;
	}
	n->stats.entries_received += b.n;
	n->stats.heads_committed += res.heads_stored;
	f->peer->strikes = 0;
	log_info("%s: stored entries %" PRIu64 "..%" PRIu64 " from %s, verified under %zu signed "
		 "head%s", f->dataset, f->base, f->head_sizes[j] - 1, f->peer->member, res.heads_stored,
		 res.heads_stored == 1 ? "" : "s");
	/* Release what was committed: slots shift down by b.n. */
	for (size_t i = 0; i < b.n; i++) {
		f->buffered_bytes -= f->entry_lens[i];
		free(f->entries[i]);
	}
	uint64_t left = f->target - f->head_sizes[j];
	memmove(f->entries, f->entries + b.n, left * sizeof(*f->entries));
	memmove(f->entry_lens, f->entry_lens + b.n, left * sizeof(*f->entry_lens));
	memset(f->entries + left, 0, b.n * sizeof(*f->entries));
	f->base = f->head_sizes[j];
	struct rec_buf cosig = { 0 };
	struct cosign_ctx cc = { n, f->dataset, &f->heads[first], &f->head_lens[first], j - first + 1,
				 &cosig };
	if (store_write(n->st, cosign_fn, &cc) == 0)
		n->stats.cosigs_made += cc.count;
	announce(n, f->dataset, f->heads[j], f->head_lens[j], &cosig);
	rec_buf_fini(&cosig);
	if (res.missing_schema[0])
		request_schema(n, f->peer, res.missing_schema);
	if (f->base == f->target) {
		log_debug("%s: caught up at size %" PRIu64, f->dataset, f->target);
		fetch_free(n, f);
		return;
	}
	fetch_pump(n, f);
}

/* The slots are indexed from f->base (they shift down on each commit). */
static void fetch_on_entries(struct node *n, struct fetch *f, const struct pending *pd,
			     struct wire_msg *m)
{
	Musubi__Entries *e = musubi__entries__unpack(NULL, m->env->payload.len, m->env->payload.data);

	f->inflight--;
	if (e == NULL || e->from != pd->from || e->n_entries == 0 ||
	    e->n_entries > pd->to - pd->from || strcmp(e->dataset, f->dataset) != 0) {
		n->stats.refused_proto++;
		strike(n, f->peer, "sent an entries reply that does not match the request for %s "
		       "%" PRIu64 "..%" PRIu64, f->dataset, pd->from, pd->to);
		if (e)
			musubi__entries__free_unpacked(e, NULL);
		fetch_free(n, f);
		return;
	}
	for (size_t i = 0; i < e->n_entries; i++) {
		uint64_t seq = e->from + i;
		if (seq < f->base)
			continue;   /* already committed (a duplicate) */
		size_t slot = (size_t)(seq - f->base);
		if (f->entries[slot] != NULL)
			continue;
		/* Take the bytes over from the unpacked message. */
		f->entries[slot] = e->entries[i].data;
		f->entry_lens[slot] = e->entries[i].len;
		e->entries[i].data = NULL;
		e->entries[i].len = 0;
		f->buffered_bytes += f->entry_lens[slot];
	}
	uint64_t got_to = e->from + e->n_entries;
	musubi__entries__free_unpacked(e, NULL);
	while (f->contiguous < f->target && f->entries[f->contiguous - f->base] != NULL)
		f->contiguous++;
	if (got_to < pd->to) {
		/* The byte budget cut the reply short: ask for the rest now. */
		Musubi__GetEntries q = MUSUBI__GET_ENTRIES__INIT;
		q.dataset = f->dataset;
		q.from = got_to;
		q.to = pd->to;
		q.byte_budget = n->cfg->batch_bytes;
		if (peer_request(n, f->peer, MUSUBI__MSG_TYPE__MSG_GET_ENTRIES, &q.base, f, got_to,
				 pd->to) == 0)
			f->inflight++;
	}
	/* A commit may finish (and free) the fetch: look it up again by name. */
	char dataset[sizeof(f->dataset)];
	memcpy(dataset, f->dataset, sizeof(dataset));
	fetch_try_commit(n, f);
	if ((f = find_fetch(n, dataset)) != NULL)
		fetch_pump(n, f);
}

static void fetch_on_heads(struct node *n, struct fetch *f, struct wire_msg *m)
{
	Musubi__Heads *h = musubi__heads__unpack(NULL, m->env->payload.len, m->env->payload.data);
	uint64_t last = f->base;

	f->waiting_heads = 0;
	if (h == NULL || h->n_heads == 0) {
		strike(n, f->peer, "announced %s but serves no heads after size %" PRIu64, f->dataset,
		       f->base);
		goto fail;
	}
	f->heads = calloc(h->n_heads, sizeof(*f->heads));
	f->head_lens = calloc(h->n_heads, sizeof(*f->head_lens));
	f->head_sizes = calloc(h->n_heads, sizeof(*f->head_sizes));
	if (!f->heads || !f->head_lens || !f->head_sizes)
		goto fail;
	for (size_t i = 0; i < h->n_heads; i++) {
		struct head_signed hs;
		/* Decode to learn the size; signatures are checked at commit. */
		if (head_decode(h->heads[i]->signed_head.data, h->heads[i]->signed_head.len, &hs) < 0) {
			n->stats.refused_decode++;
			strike(n, f->peer, "sent a head of %s that does not decode", f->dataset);
			goto fail;
		}
		uint64_t size = hs.hd->h.size;
		int same = strcmp(hs.hd->h.dataset, f->dataset) == 0;
		head_signed_fini(&hs);
		if (!same || size <= last) {
			strike(n, f->peer, "sent heads of %s out of order", f->dataset);
			goto fail;
		}
		f->heads[f->nheads] = h->heads[i]->signed_head.data;
		f->head_lens[f->nheads] = h->heads[i]->signed_head.len;
		f->head_sizes[f->nheads] = size;
		h->heads[i]->signed_head.data = NULL;
		h->heads[i]->signed_head.len = 0;
		f->nheads++;
		last = size;
	}
	musubi__heads__free_unpacked(h, NULL);
	h = NULL;
	f->target = last;
	if (f->target - f->base > 50000000) {
		strike(n, f->peer, "offers %" PRIu64 " entries of %s at once", f->target - f->base,
		       f->dataset);
		goto fail;
	}
	f->entries = calloc(f->target - f->base, sizeof(*f->entries));
	f->entry_lens = calloc(f->target - f->base, sizeof(*f->entry_lens));
	if (f->entries == NULL || f->entry_lens == NULL)
		goto fail;
	f->contiguous = f->next_request = f->base;
	fetch_pump(n, f);
	return;
fail:
	if (h)
		musubi__heads__free_unpacked(h, NULL);
	fetch_free(n, f);
}

static uint64_t current_trust_version(struct node *n);

static struct peer_head *peer_head_find(struct peer *p, const char *dataset)
{
	for (size_t i = 0; i < p->nheads; i++)
		if (strcmp(p->heads[i].dataset, dataset) == 0)
			return &p->heads[i];
	return NULL;
}

/* Remember the newest head a peer has shown of a dataset (heads that
 * count only). Returns 1 when it is newer than any it showed before. */
static int remember_peer_head(struct peer *p, const char *dataset, uint64_t size)
{
	struct peer_head *h = peer_head_find(p, dataset);

	if (h != NULL) {
		if (size <= h->size)
			return 0;
		h->size = size;
		h->seen_us = mu_now_us();
		return 1;
	}
	struct peer_head *grown = realloc(p->heads, (p->nheads + 1) * sizeof(*grown));
	if (grown == NULL)
		return 0;
	p->heads = grown;
	snprintf(grown[p->nheads].dataset, sizeof(grown[p->nheads].dataset), "%s", dataset);
	grown[p->nheads].size = size;
	grown[p->nheads].seen_us = mu_now_us();
	p->nheads++;
	return 1;
}

/*
 * Did the peer roll back? Only what this node saw itself counts: the peer,
 * over its authenticated connection, showed a head of the dataset at size
 * N that counts, and now lists a smaller one as its newest in answer to a
 * request sent after N was learned (a store only grows, so such an answer
 * can only come from a peer whose store went back). A peer that never
 * showed N is lagging, not lying; an answer to a request sent before N was
 * learned may predate N; an announcement may overtake a reply on another
 * connection: none of these is judged. asked_us is when the request was
 * sent (0 for an announcement). Each rollback is penalised once: the
 * smaller size is remembered from then on.
 */
static int rolled_back(struct node *n, struct peer *p, const char *dataset, uint64_t size,
		       int64_t asked_us)
{
	struct peer_head *h = peer_head_find(p, dataset);

	if (asked_us == 0 || h == NULL || size >= h->size || h->seen_us >= asked_us)
		return 0;
	uint64_t before = h->size;
	h->size = size;
	h->seen_us = mu_now_us();
	n->stats.refused_proto++;
	strike(n, p, "rolled back %s: it showed a signed head at size %" PRIu64 " and now lists "
	       "size %" PRIu64 " as its newest", dataset, before, size);
	return 1;
}

/* A signed head from a peer (listed in answer to a request sent at
 * asked_us, or announced: 0): judge it, and fetch what it has that we do
 * not. */
static void on_head(struct node *n, struct peer *p, const uint8_t *sh, size_t len,
		    int64_t asked_us)
{
	struct head_signed hs;
	enum ingest_verdict verdict;
	uint64_t local;
	char why[512] = "", dataset[128], publisher[64];
	int rc;

	p->heads_seen++;
	if (head_decode(sh, len, &hs) < 0) {
		n->stats.refused_decode++;
		strike(n, p, "sent a head that does not decode");
		return;
	}
	snprintf(dataset, sizeof(dataset), "%s", hs.hd->h.dataset);
	snprintf(publisher, sizeof(publisher), "%s", hs.hd->h.publisher);
	uint64_t size = hs.hd->h.size, tv = hs.hd->h.trust_version;
	head_signed_fini(&hs);
	if (!sync_wants(n, dataset))
		return;
	rc = ingest_check_head(n->st, sh, len, p->member, trust_head_key, n->tcache, &verdict, &local,
			       why, sizeof(why));
	if (rc == MU_E_FORK) {
		n->stats.forks++;
		log_err("EVIDENCE: %s", why);
		remember_peer_head(p, dataset, size);
		/* Ingest now holds the dataset's new heads (ingest.h): what is
		 * being fetched of it is not taken either. */
		struct fetch *f = find_fetch(n, dataset);
		if (f != NULL)
			fetch_free(n, f);
		/* The publisher's own node showed the second history: struck. A
		 * relay only passed on what the publisher signed. */
		if (strcmp(p->member, publisher) == 0)
			strike(n, p, "%.255s", why);
		else
			snprintf(p->last_error, sizeof(p->last_error), "%.255s", why);
		return;
	}
	if (rc < 0 && tv > current_trust_version(n)) {
		/* Signed under a newer list than ours: no lie, fetch the list. */
		Musubi__GetTrust q = MUSUBI__GET_TRUST__INIT;
		q.after_version = current_trust_version(n);
		peer_request(n, p, MUSUBI__MSG_TYPE__MSG_GET_TRUST, &q.base, NULL, 0, 0);
		return;
	}
	if (rc < 0) {
		count_refusal(n, rc);
		strike(n, p, "refused a head of %s: %s", dataset, why[0] ? why : mu_strerror(rc));
		return;
	}
	if (rolled_back(n, p, dataset, size, asked_us))
		return;
	int newer = remember_peer_head(p, dataset, size);
	if (verdict == INGEST_HELD && newer)
		log_warn("peer %s offers %s at size %" PRIu64 ": %s", p->member, dataset, size, why);
	if (verdict != INGEST_NEWER || find_fetch(n, dataset) != NULL)
		return;
	struct fetch *f = calloc(1, sizeof(*f));
	if (f == NULL)
		return;
	snprintf(f->dataset, sizeof(f->dataset), "%s", dataset);
	f->peer = p;
	f->base = f->target = local;
	f->started_us = mu_now_us();
	f->next = n->fetches;
	n->fetches = f;
	Musubi__GetHeads q = MUSUBI__GET_HEADS__INIT;
	q.dataset = f->dataset;
	q.after_size = local;
	q.limit = WIRE_MAX_HEADS;
	if (peer_request(n, p, MUSUBI__MSG_TYPE__MSG_GET_HEADS, &q.base, f, 0, 0) < 0) {
		fetch_free(n, f);
		return;
	}
	f->waiting_heads = 1;
	log_debug("%s: fetching %" PRIu64 " -> %" PRIu64 " from %s", dataset, local, size, p->member);
}

static uint64_t current_trust_version(struct node *n)
{
	struct store_txn t;
	char buf[32];
	size_t len;
	uint64_t v = 0;

	if (store_read_begin(n->st, &t) == 0) {
		if (store_meta_get(&t, "trust_version", buf, sizeof(buf), &len) == 0)
			v = strtoull(buf, NULL, 10);
		store_read_end(&t);
	}
	return v;
}

static void on_trust_lists(struct node *n, struct peer *p, struct wire_msg *m)
{
	Musubi__TrustLists *tl = musubi__trust_lists__unpack(NULL, m->env->payload.len,
							     m->env->payload.data);
	char why[512];

	if (tl == NULL) {
		strike(n, p, "sent trust lists that do not decode");
		return;
	}
	for (size_t i = 0; i < tl->n_lists; i++) {
		struct trust_signed ts;
		/* Versions this node already has are no news, not a lie. */
		if (trust_decode(tl->lists[i].data, tl->lists[i].len, &ts, why, sizeof(why)) == 0 &&
		    ts.list.version <= current_trust_version(n)) {
			trust_signed_fini(&ts);
			continue;
		}
		trust_signed_fini(&ts);
		int rc = trust_store_list(n->st, tl->lists[i].data, tl->lists[i].len, why, sizeof(why));
		if (rc < 0 && rc != MU_E_EXISTS) {
			count_refusal(n, rc);
			strike(n, p, "sent a trust list that does not count: %s", why);
			break;
		}
		if (rc == 0)
			log_info("accepted a newer trust list from %s", p->member);
	}
	musubi__trust_lists__free_unpacked(tl, NULL);
	/* Peers not yet resolved may now be members. */
	for (size_t i = 0; i < n->npeers; i++)
		if (n->peers[i].dealer == NULL)
			peer_connect(n, &n->peers[i]);
}

struct schema_put {
	const char *ref, *json;
	size_t len;
};

static int put_schema(struct store_txn *t, void *arg)
{
	struct schema_put *sp = arg;

	return store_schema_put(t, sp->ref, sp->json, sp->len);
}

static void on_schema(struct node *n, struct peer *p, struct wire_msg *m)
{
	Musubi__Schema *s = musubi__schema__unpack(NULL, m->env->payload.len, m->env->payload.data);
	struct store_txn t;
	struct schema *parsed = NULL;
	int ok = 0;

	if (s == NULL)
		return;
	/* Keep it only if some dataset's entries name exactly these bytes. */
	if (schema_parse((const char *)s->json.data, s->json.len, &parsed, NULL) == 0 &&
	    store_read_begin(n->st, &t) == 0) {
		char **names = NULL;
		size_t nn = 0;
		store_dataset_names(&t, &names, &nn);
		for (size_t i = 0; i < nn; i++) {
			struct store_dataset ds;
			if (store_dataset_get(&t, names[i], &ds) == 0) {
				ok |= ds.schema_id && strcmp(ds.schema_id, parsed->id) == 0 &&
				      ds.schema_version == parsed->version &&
				      memcmp(ds.schema_digest, parsed->digest, 32) == 0;
				store_dataset_fini(&ds);
			}
			free(names[i]);
		}
		free(names);
		store_read_end(&t);
	}
	if (ok) {
		char ref[200];
		snprintf(ref, sizeof(ref), "%s@%u", parsed->id, parsed->version);
		struct schema_put sp = { ref, parsed->json, parsed->json_len };
		if (store_write(n->st, put_schema, &sp) == 0)
			log_info("stored schema %s from %s", ref, p->member);
	} else {
		log_warn("peer %s sent a schema no dataset here names; ignored", p->member);
	}
	schema_destroy(&parsed);
	musubi__schema__free_unpacked(s, NULL);
}

/* A peer holds more redaction notices for a dataset we replicate: ask. */
static void maybe_fetch_redactions(struct node *n, struct peer *p, const char *dataset,
				   uint64_t theirs)
{
	struct store_txn t;
	uint64_t ours = 0;

	if (theirs == 0 || !sync_wants(n, dataset) || store_read_begin(n->st, &t) < 0)
		return;
	ours = count_redactions(&t, dataset);
	store_read_end(&t);
	if (theirs > ours) {
		Musubi__GetRedactions q = MUSUBI__GET_REDACTIONS__INIT;
		q.dataset = (char *)dataset;
		peer_request(n, p, MUSUBI__MSG_TYPE__MSG_GET_REDACTIONS, &q.base, NULL, 0, 0);
	}
}

struct apply_ctx {
	struct node *n;
	const uint8_t *buf;
	size_t len;
	struct redact_notice notice;
	char why[256];
};

static int apply_fn(struct store_txn *t, void *arg)
{
	struct apply_ctx *a = arg;
	int rc = redact_check(t, a->buf, a->len, trust_head_key, a->n->tcache, &a->notice, a->why,
			      sizeof(a->why));

	return rc < 0 ? rc : redact_apply(t, a->buf, a->len, &a->notice);
}

/* Honour the publisher's signed redaction notices: payloads go, leaf
 * hashes stay. */
static void on_redactions(struct node *n, struct peer *p, struct wire_msg *m)
{
	Musubi__Redactions *r = musubi__redactions__unpack(NULL, m->env->payload.len,
							   m->env->payload.data);

	if (r == NULL) {
		strike(n, p, "sent redactions that do not decode");
		return;
	}
	for (size_t i = 0; i < r->n_notices; i++) {
		struct apply_ctx a = { .n = n, .buf = r->notices[i].data, .len = r->notices[i].len };
		int rc = store_write(n->st, apply_fn, &a);
		if (rc < 0) {
			count_refusal(n, rc);
			strike(n, p, "sent a redaction notice that does not count: %s",
			       a.why[0] ? a.why : mu_strerror(rc));
			break;
		}
		log_info("honoured the redaction of %s #%" PRIu64 " by %s: %s", a.notice.dataset,
			 a.notice.seq, a.notice.publisher, a.notice.reason);
	}
	musubi__redactions__free_unpacked(r, NULL);
}

static void on_hello_reply(struct node *n, struct peer *p, struct wire_msg *m)
{
	Musubi__Hello *h = musubi__hello__unpack(NULL, m->env->payload.len, m->env->payload.data);
	struct store_txn t;
	uint64_t ours = 0;
	char buf[32];
	size_t len;

	if (h == NULL) {
		strike(n, p, "sent a hello that does not decode");
		return;
	}
	if (p->member[0] && strcmp(h->member, p->member) != 0) {
		strike(n, p, "says it is %s, the trust list says %s", h->member, p->member);
		musubi__hello__free_unpacked(h, NULL);
		return;
	}
	p->hello_done = 1;
	if (p->sub == NULL && h->pub_endpoint[0] != '\0' && strlen(h->pub_endpoint) < 256) {
		snprintf(p->pub_endpoint, sizeof(p->pub_endpoint), "%s", h->pub_endpoint);
		if ((p->sub = zmq_socket(n->zctx, ZMQ_SUB)) != NULL &&
		    (wire_curve_client(p->sub, n->pub, n->sec, p->server_key) < 0 ||
		     zmq_setsockopt(p->sub, ZMQ_SUBSCRIBE, "", 0) != 0 ||
		     zmq_connect(p->sub, p->pub_endpoint) != 0)) {
			zmq_close(p->sub);
			p->sub = NULL;
		}
	}
	if (store_read_begin(n->st, &t) == 0) {
		if (store_meta_get(&t, "trust_version", buf, sizeof(buf), &len) == 0)
			ours = strtoull(buf, NULL, 10);
		store_read_end(&t);
	}
	if (h->trust_version > ours) {
		Musubi__GetTrust q = MUSUBI__GET_TRUST__INIT;
		q.after_version = ours;
		peer_request(n, p, MUSUBI__MSG_TYPE__MSG_GET_TRUST, &q.base, NULL, 0, 0);
	}
	musubi__hello__free_unpacked(h, NULL);
}

void sync_on_undecodable(struct node *n, struct peer *p)
{
	n->stats.refused_decode++;
	/* One strike per burst: what arrives while backed off is ignored. */
	if (p->backoff_until_us <= mu_now_us())
		strike(n, p, "sent a reply envelope that does not decode");
}

void sync_on_reply(struct node *n, struct peer *p, struct wire_msg *m)
{
	struct pending pd;
	int64_t now = mu_now_us();

	if (take_pending(p, m->env->request_id, &pd) < 0)
		return;   /* late reply to a request we gave up on */
	p->last_seen_us = now;
	if (m->env->version != WIRE_VERSION) {
		n->stats.refused_proto++;
		strike(n, p, "speaks protocol version %u; this node speaks %d: upgrade one of them",
		       m->env->version, WIRE_VERSION);
		if (pd.fetch)
			fetch_free(n, pd.fetch);
		return;
	}
	if (p->backoff_until_us > now) {
		if (pd.fetch)
			fetch_free(n, pd.fetch);
		return;   /* ignored while backed off */
	}
	if (m->env->type == MUSUBI__MSG_TYPE__MSG_ERROR) {
		Musubi__Error *e = musubi__error__unpack(NULL, m->env->payload.len, m->env->payload.data);
		snprintf(p->last_error, sizeof(p->last_error), "error: %s",
			 e && e->message ? e->message : "?");
		log_info("peer %s: %s", p->endpoint, p->last_error);
		if (e)
			musubi__error__free_unpacked(e, NULL);
		if (pd.fetch)
			fetch_free(n, pd.fetch);
		return;
	}
	switch (pd.type) {
	case MUSUBI__MSG_TYPE__MSG_HELLO:
		on_hello_reply(n, p, m);
		break;
	case MUSUBI__MSG_TYPE__MSG_LIST_HEADS: {
		Musubi__Heads *h = musubi__heads__unpack(NULL, m->env->payload.len, m->env->payload.data);
		if (h == NULL) {
			n->stats.refused_decode++;
			strike(n, p, "sent heads that do not decode");
			break;
		}
		for (size_t i = 0; i < h->n_heads && p->backoff_until_us <= now; i++) {
			on_head(n, p, h->heads[i]->signed_head.data, h->heads[i]->signed_head.len,
				pd.sent_us);
			maybe_fetch_redactions(n, p, h->heads[i]->dataset, h->heads[i]->redactions);
		}
		musubi__heads__free_unpacked(h, NULL);
		p->heads_listed = 1;
		break;
	}
	case MUSUBI__MSG_TYPE__MSG_GET_HEADS:
		if (pd.fetch)
			fetch_on_heads(n, pd.fetch, m);
		break;
	case MUSUBI__MSG_TYPE__MSG_GET_ENTRIES:
		if (pd.fetch)
			fetch_on_entries(n, pd.fetch, &pd, m);
		break;
	case MUSUBI__MSG_TYPE__MSG_GET_TRUST:
		on_trust_lists(n, p, m);
		break;
	case MUSUBI__MSG_TYPE__MSG_GET_SCHEMA:
		on_schema(n, p, m);
		break;
	case MUSUBI__MSG_TYPE__MSG_GET_REDACTIONS:
		on_redactions(n, p, m);
		break;
	default:
		break;
	}
}

struct cosig_put {
	struct cosign c;
	const uint8_t *buf;
	size_t len;
};

static int put_cosig(struct store_txn *t, void *arg)
{
	struct cosig_put *cp = arg;

	return store_cosig_put(t, cp->c.dataset, cp->c.size, cp->c.witness, cp->buf, cp->len);
}

/* A peer's cosignature of a head: keep it when it verifies, so that an
 * auditor asking this node learns every witness it has heard of. */
static void keep_cosig(struct node *n, struct peer *p, const uint8_t *buf, size_t len)
{
	struct cosig_put cp = { .buf = buf, .len = len };
	struct store_txn t;
	char why[256];
	int rc;

	if (store_read_begin(n->st, &t) < 0)
		return;
	rc = cosign_check(&t, buf, len, &cp.c, why, sizeof(why));
	store_read_end(&t);
	if (rc < 0 && cp.c.trust_version > current_trust_version(n)) {
		/* Signed under a newer list than ours: no lie, fetch the list. */
		Musubi__GetTrust q = MUSUBI__GET_TRUST__INIT;
		q.after_version = current_trust_version(n);
		peer_request(n, p, MUSUBI__MSG_TYPE__MSG_GET_TRUST, &q.base, NULL, 0, 0);
		return;
	}
	if (rc < 0) {
		count_refusal(n, rc);
		strike(n, p, "sent a cosignature that does not count: %s", why);
		return;
	}
	if (store_write(n->st, put_cosig, &cp) == 0)
		n->stats.cosigs_received++;
}

void sync_on_announce(struct node *n, struct peer *p, struct wire_msg *m)
{
	Musubi__Announce *a;

	if (m->env->type != MUSUBI__MSG_TYPE__MSG_ANNOUNCE || p->backoff_until_us > mu_now_us())
		return;
	a = musubi__announce__unpack(NULL, m->env->payload.len, m->env->payload.data);
	if (a == NULL) {
		n->stats.refused_decode++;
		return;
	}
	p->last_seen_us = mu_now_us();
	on_head(n, p, a->signed_head.data, a->signed_head.len, 0);
	if (a->cosig.len > 0)
		keep_cosig(n, p, a->cosig.data, a->cosig.len);
	musubi__announce__free_unpacked(a, NULL);
}

/* A request went unanswered: start the link to the peer afresh. libzmq
 * reconnects by itself after a broken connection, but not after a
 * protocol error (one damaged byte fails CURVE's authentication): it
 * then ends the session of a connecting socket for good, and the peer
 * would be silent until this node restarts. New sockets cost one
 * handshake; what was in flight on the old ones is given up. */
static void peer_relink(struct node *n, struct peer *p, int64_t now)
{
	while (p->ninflight > 0) {
		struct fetch *f = p->inflight[--p->ninflight].fetch;
		if (f != NULL)
			fetch_free(n, f);
	}
	zmq_close(p->dealer);
	p->dealer = NULL;
	if (p->sub != NULL) {
		zmq_close(p->sub);
		p->sub = NULL;
	}
	p->hello_done = 0;
	p->next_sync_us = now;
	log_info("peer %s (%s): no answer in %d ms; connecting again", p->endpoint,
		 p->member[0] ? p->member : "?", n->cfg->request_timeout_ms);
}

void sync_tick(struct node *n, int64_t now)
{
	int64_t timeout = (int64_t)n->cfg->request_timeout_ms * 1000;

	for (size_t i = 0; i < n->npeers; i++) {
		struct peer *p = &n->peers[i];
		if (p->dealer == NULL) {
			if (now >= p->next_sync_us) {
				p->next_sync_us = now + (int64_t)n->cfg->sync_interval_ms * 1000;
				peer_connect(n, p);
			}
			continue;
		}
		/* Requests that were never answered. */
		int timed_out = 0;
		for (int k = 0; k < p->ninflight; k++) {
			struct pending *pd = &p->inflight[k];
			if (now - pd->sent_us < timeout)
				continue;
			struct fetch *f = pd->fetch;
			snprintf(p->last_error, sizeof(p->last_error), "request timed out");
			p->inflight[k--] = p->inflight[--p->ninflight];
			if (f != NULL)
				fetch_free(n, f);
			timed_out = 1;
		}
		if (timed_out) {
			peer_relink(n, p, now);
			continue;
		}
		if (now < p->next_sync_us || now < p->backoff_until_us)
			continue;
		p->next_sync_us = now + (int64_t)n->cfg->sync_interval_ms * 1000;
		if (!p->hello_done)
			send_hello(n, p);
		send_list_heads(n, p);
	}
	if (now >= n->next_access_flush_us) {
		n->next_access_flush_us = now + ACCESS_FLUSH_US;
		access_flush(n);
	}
	if (now >= n->next_scan_us) {
		n->next_scan_us = now + (int64_t)n->cfg->sync_interval_ms * 1000;
		sync_announce_changes(n);
		catchup_check(n, now);
	}
}

void sync_fini(struct node *n)
{
	while (n->fetches != NULL)
		fetch_free(n, n->fetches);
	for (size_t i = 0; i < n->npeers; i++) {
		if (n->peers[i].dealer)
			zmq_close(n->peers[i].dealer);
		if (n->peers[i].sub)
			zmq_close(n->peers[i].sub);
		free(n->peers[i].heads);
	}
	free(n->peers);
	n->peers = NULL;
	n->npeers = 0;
}
