/*
 * serve.c - answers to requests on the ROUTER socket, read straight from
 * the store. Every request is checked for size and range before use; a
 * members-only dataset is never served to an anonymous client.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fedq.h"
#include "head.h"
#include "ingest.h"
#include "log.h"
#include "metrics.h"
#include "musubi_config.h"
#include "mu_err.h"
#include "node.h"
#include "trust.h"
#include "util.h"

struct req {
	struct node *n;
	struct wire_msg *m;
	struct store_txn t;
	int anonymous;
};

static void reply(struct req *r, Musubi__MsgType type, const ProtobufCMessage *payload)
{
	int rc = wire_send(r->n->router, r->m->routing_id, r->m->routing_len, type,
			   r->m->env->request_id, payload);
	if (rc < 0 && rc != -EAGAIN)
		log_warn("reply to %s failed: %s", r->m->user, mu_strerror(rc));
}

static void fail(struct req *r, Musubi__ErrorCode code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void fail(struct req *r, Musubi__ErrorCode code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (code == MUSUBI__ERROR_CODE__ERR_DENIED)
		r->n->stats.denied++;
	wire_send_error(r->n->router, r->m->routing_id, r->m->routing_len, r->m->env->request_id,
			code, msg);
}

/* Look up a dataset the client may read. 0, or an error already sent. */
static int readable(struct req *r, const char *name, struct store_dataset *ds)
{
	int rc = store_dataset_get(&r->t, name, ds);

	if (rc == -ENOENT) {
		fail(r, MUSUBI__ERROR_CODE__ERR_NOT_FOUND, "this node holds no dataset %.128s", name);
		return rc;
	}
	if (rc < 0) {
		fail(r, MUSUBI__ERROR_CODE__ERR_INTERNAL, "store: %s", mu_strerror(rc));
		return rc;
	}
	if (ds->members_only && r->anonymous) {
		store_dataset_fini(ds);
		fail(r, MUSUBI__ERROR_CODE__ERR_DENIED, "%.128s is for members of the federation only",
		     name);
		return MU_E_DENIED;
	}
	return 0;
}

#define UNPACK(type, lower)                                                                   \
	type *q = lower##__unpack(NULL, r->m->env->payload.len, r->m->env->payload.data);     \
	if (q == NULL) {                                                                      \
		fail(r, MUSUBI__ERROR_CODE__ERR_BAD_REQUEST, "payload does not decode");      \
		return;                                                                       \
	}

static void on_hello(struct req *r)
{
	Musubi__Hello h = MUSUBI__HELLO__INIT;
	uint32_t versions[] = { WIRE_VERSION };
	char buf[32];
	size_t len;

	h.member = r->n->member;
	if (store_meta_get(&r->t, "trust_version", buf, sizeof(buf), &len) == 0)
		h.trust_version = strtoull(buf, NULL, 10);
	h.n_versions = 1;
	h.versions = versions;
	h.software = (char *)"musubi/" MUSUBI_VERSION;
	h.pub_endpoint = r->n->cfg->pub;
	reply(r, MUSUBI__MSG_TYPE__MSG_HELLO, &h.base);
}

static int count_one(void *ctx, uint64_t seq, const uint8_t *buf, size_t len)
{
	(*(uint64_t *)ctx)++;
	return 0;
}

uint64_t count_redactions(struct store_txn *t, const char *dataset)
{
	uint64_t n = 0;

	store_redaction_iter(t, dataset, count_one, &n);
	return n;
}

struct notice_list {
	ProtobufCBinaryData *items;
	size_t n, cap;
};

static int add_notice(void *ctx, uint64_t seq, const uint8_t *buf, size_t len)
{
	struct notice_list *l = ctx;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		ProtobufCBinaryData *g = realloc(l->items, cap * sizeof(*g));
		if (g == NULL)
			return -ENOMEM;
		l->items = g;
		l->cap = cap;
	}
	l->items[l->n].data = (uint8_t *)buf;
	l->items[l->n++].len = len;
	return l->n >= 10000;   /* one reply's worth */
}

static void on_get_redactions(struct req *r)
{
	UNPACK(Musubi__GetRedactions, musubi__get_redactions);
	Musubi__Redactions out = MUSUBI__REDACTIONS__INIT;
	struct store_dataset ds;
	struct notice_list l = { 0 };

	if (readable(r, q->dataset, &ds) == 0) {
		store_redaction_iter(&r->t, ds.name, add_notice, &l);
		out.n_notices = l.n;
		out.notices = l.items;
		reply(r, MUSUBI__MSG_TYPE__MSG_REDACTIONS, &out.base);
		store_dataset_fini(&ds);
	}
	free(l.items);
	musubi__get_redactions__free_unpacked(q, NULL);
}

static void on_list_heads(struct req *r)
{
	UNPACK(Musubi__ListHeads, musubi__list_heads);
	Musubi__Heads out = MUSUBI__HEADS__INIT;
	char **names = NULL;
	size_t n = 0;

	if (q->n_datasets > 0) {
		names = calloc(q->n_datasets, sizeof(*names));
		for (size_t i = 0; names && i < q->n_datasets; i++)
			names[n++] = strdup(q->datasets[i]);
	} else {
		store_dataset_names(&r->t, &names, &n);
	}
	out.heads = calloc(n ? n : 1, sizeof(*out.heads));
	Musubi__HeadInfo *infos = calloc(n ? n : 1, sizeof(*infos));
	for (size_t i = 0; out.heads && infos && i < n && i < WIRE_MAX_HEADS; i++) {
		struct store_dataset ds;
		const uint8_t *buf;
		size_t len;
		uint64_t size;
		if (names[i] == NULL || store_dataset_get(&r->t, names[i], &ds) < 0)
			continue;
		if (!(ds.members_only && r->anonymous) &&
		    store_head_latest(&r->t, ds.local_id, &size, &buf, &len) == 0) {
			Musubi__HeadInfo *hi = &infos[out.n_heads];
			musubi__head_info__init(hi);
			hi->dataset = names[i];
			hi->signed_head.data = (uint8_t *)buf;
			hi->signed_head.len = len;
			hi->public_ = !ds.members_only;
			hi->redactions = count_redactions(&r->t, ds.name);
			out.heads[out.n_heads++] = hi;
		}
		store_dataset_fini(&ds);
	}
	reply(r, MUSUBI__MSG_TYPE__MSG_HEADS, &out.base);
	free(infos);
	free(out.heads);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	musubi__list_heads__free_unpacked(q, NULL);
}

static void on_get_heads(struct req *r)
{
	UNPACK(Musubi__GetHeads, musubi__get_heads);
	Musubi__Heads out = MUSUBI__HEADS__INIT;
	struct store_dataset ds;
	uint32_t limit = q->limit && q->limit < WIRE_MAX_HEADS ? q->limit : WIRE_MAX_HEADS;
	size_t bytes = 0;

	if (readable(r, q->dataset, &ds) < 0)
		goto out;
	out.heads = calloc(limit, sizeof(*out.heads));
	Musubi__HeadInfo *infos = calloc(limit, sizeof(*infos));
	uint64_t after = q->after_size, size;
	const uint8_t *buf;
	size_t len;
	while (out.heads && infos && out.n_heads < limit && bytes < WIRE_MAX_ENTRIES_REPLY &&
	       store_head_next(&r->t, ds.local_id, after, &size, &buf, &len) == 0) {
		Musubi__HeadInfo *hi = &infos[out.n_heads];
		musubi__head_info__init(hi);
		hi->dataset = ds.name;
		hi->signed_head.data = (uint8_t *)buf;
		hi->signed_head.len = len;
		hi->public_ = !ds.members_only;
		out.heads[out.n_heads++] = hi;
		bytes += len + 64;
		after = size;
	}
	reply(r, MUSUBI__MSG_TYPE__MSG_HEADS, &out.base);
	free(infos);
	free(out.heads);
	store_dataset_fini(&ds);
out:
	musubi__get_heads__free_unpacked(q, NULL);
}

static void on_get_entries(struct req *r)
{
	UNPACK(Musubi__GetEntries, musubi__get_entries);
	Musubi__Entries out = MUSUBI__ENTRIES__INIT;
	struct store_dataset ds;
	uint32_t budget = q->byte_budget && q->byte_budget < WIRE_MAX_ENTRIES_REPLY ?
			  q->byte_budget : WIRE_MAX_ENTRIES_REPLY;
	size_t bytes = 0, cap;

	if (readable(r, q->dataset, &ds) < 0)
		goto out;
	/* Only signed entries are served: never past the newest head. */
	uint64_t to = q->to < ds.head_size ? q->to : ds.head_size;
	if (q->from >= to) {
		fail(r, MUSUBI__ERROR_CODE__ERR_NOT_FOUND, "%s has %" PRIu64 " signed entries; "
		     "asked for %" PRIu64 "..%" PRIu64, ds.name, ds.head_size, q->from, q->to);
		store_dataset_fini(&ds);
		goto out;
	}
	cap = (size_t)(to - q->from < 65536 ? to - q->from : 65536);
	out.entries = calloc(cap, sizeof(*out.entries));
	out.dataset = ds.name;
	out.from = q->from;
	for (uint64_t s = q->from; out.entries && s < to && out.n_entries < cap; s++) {
		const uint8_t *buf;
		size_t len;
		if (store_entry_get(&r->t, ds.local_id, s, &buf, &len) < 0)
			break;
		if (out.n_entries > 0 && bytes + len > budget)
			break;
		out.entries[out.n_entries].data = (uint8_t *)buf;
		out.entries[out.n_entries].len = len;
		out.n_entries++;
		bytes += len;
	}
	r->n->stats.entries_served += out.n_entries;
	/* Replicating an access log is not a read worth recording: it would
	 * make every log grow forever. */
	const char *slash = strchr(ds.name, '/');
	if (ds.members_only && !(slash && strcmp(slash, "/access_log") == 0))
		access_note(r->n, r->m->user, "entries", ds.name, NULL);
	reply(r, MUSUBI__MSG_TYPE__MSG_ENTRIES, &out.base);
	free(out.entries);
	store_dataset_fini(&ds);
out:
	musubi__get_entries__free_unpacked(q, NULL);
}

static void send_proof(struct req *r, merkle_hash *proof, size_t n)
{
	Musubi__Proof out = MUSUBI__PROOF__INIT;
	ProtobufCBinaryData h[MERKLE_MAX_DEPTH];

	for (size_t i = 0; i < n; i++) {
		h[i].data = proof[i];
		h[i].len = MERKLE_HASH_LEN;
	}
	out.n_hashes = n;
	out.hashes = h;
	reply(r, MUSUBI__MSG_TYPE__MSG_PROOF, &out.base);
}

static void on_get_proof(struct req *r, int consistency)
{
	merkle_hash proof[MERKLE_MAX_DEPTH];
	struct store_dataset ds;
	size_t n = 0;
	uint64_t a, b;
	const char *name;
	int rc;
	Musubi__GetConsistency *qc = NULL;
	Musubi__GetInclusion *qi = NULL;

	if (consistency)
		qc = musubi__get_consistency__unpack(NULL, r->m->env->payload.len,
						     r->m->env->payload.data);
	else
		qi = musubi__get_inclusion__unpack(NULL, r->m->env->payload.len,
						   r->m->env->payload.data);
	if (qc == NULL && qi == NULL) {
		fail(r, MUSUBI__ERROR_CODE__ERR_BAD_REQUEST, "payload does not decode");
		return;
	}
	name = consistency ? qc->dataset : qi->dataset;
	a = consistency ? qc->old_size : qi->index;
	b = consistency ? qc->new_size : qi->size;
	if (readable(r, name, &ds) == 0) {
		struct store_tree tree = { &r->t, ds.local_id };
		if (b > ds.head_size || (consistency && (a == 0 || a > b)) || (!consistency && a >= b)) {
			fail(r, MUSUBI__ERROR_CODE__ERR_BAD_REQUEST, "sizes out of range: %s has %"
			     PRIu64 " signed entries", ds.name, ds.head_size);
		} else {
			rc = consistency ? merkle_consistency_proof(a, b, store_tree_get, &tree, proof, &n)
					 : merkle_inclusion_proof(a, b, store_tree_get, &tree, proof, &n);
			if (rc < 0)
				fail(r, MUSUBI__ERROR_CODE__ERR_INTERNAL, "proof: %s", mu_strerror(rc));
			else
				send_proof(r, proof, n);
		}
		store_dataset_fini(&ds);
	}
	if (qc)
		musubi__get_consistency__free_unpacked(qc, NULL);
	if (qi)
		musubi__get_inclusion__free_unpacked(qi, NULL);
}

static void on_get_schema(struct req *r)
{
	UNPACK(Musubi__GetSchema, musubi__get_schema);
	Musubi__Schema out = MUSUBI__SCHEMA__INIT;
	char ref[200];
	const uint8_t *json;
	size_t len;

	snprintf(ref, sizeof(ref), "%.150s@%u", q->id, q->version);
	if (store_schema_get(&r->t, ref, &json, &len) < 0) {
		fail(r, MUSUBI__ERROR_CODE__ERR_NOT_FOUND, "this node has no schema %s", ref);
	} else {
		out.id = q->id;
		out.version = q->version;
		out.json.data = (uint8_t *)json;
		out.json.len = len;
		reply(r, MUSUBI__MSG_TYPE__MSG_SCHEMA, &out.base);
	}
	musubi__get_schema__free_unpacked(q, NULL);
}

static void on_get_trust(struct req *r)
{
	UNPACK(Musubi__GetTrust, musubi__get_trust);
	Musubi__TrustLists out = MUSUBI__TRUST_LISTS__INIT;
	ProtobufCBinaryData lists[64];
	uint64_t v = q->after_version;

	while (out.n_lists < 64) {
		const uint8_t *buf;
		size_t len;
		if (store_trust_get(&r->t, ++v, &buf, &len) < 0)
			break;
		lists[out.n_lists].data = (uint8_t *)buf;
		lists[out.n_lists].len = len;
		out.n_lists++;
	}
	out.lists = lists;
	reply(r, MUSUBI__MSG_TYPE__MSG_TRUST, &out.base);
	musubi__get_trust__free_unpacked(q, NULL);
}

struct cosig_list {
	ProtobufCBinaryData *items;
	size_t n, cap, bytes;
};

static int add_cosig(void *ctx, uint64_t size, const uint8_t *buf, size_t len)
{
	struct cosig_list *l = ctx;

	if (l->bytes + len > WIRE_MAX_ENTRIES_REPLY)
		return 1;   /* enough for one reply */
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		ProtobufCBinaryData *grown = realloc(l->items, cap * sizeof(*grown));
		if (grown == NULL)
			return -ENOMEM;
		l->items = grown;
		l->cap = cap;
	}
	l->items[l->n].data = (uint8_t *)buf;
	l->items[l->n].len = len;
	l->n++;
	l->bytes += len;
	return 0;
}

static void on_get_cosigs(struct req *r)
{
	UNPACK(Musubi__GetCosigs, musubi__get_cosigs);
	Musubi__Cosigs out = MUSUBI__COSIGS__INIT;
	struct store_dataset ds;
	struct cosig_list l = { 0 };

	if (readable(r, q->dataset, &ds) == 0) {
		if (store_cosig_iter(&r->t, ds.name, q->size, add_cosig, &l) < 0) {
			fail(r, MUSUBI__ERROR_CODE__ERR_INTERNAL, "cannot read cosignatures");
		} else {
			out.n_cosigs = l.n;
			out.cosigs = l.items;
			reply(r, MUSUBI__MSG_TYPE__MSG_COSIGS, &out.base);
		}
		store_dataset_fini(&ds);
	}
	free(l.items);
	musubi__get_cosigs__free_unpacked(q, NULL);
}

char *serve_status_json(struct node *n)
{
	struct store_txn t;
	json_t *o = json_object(), *peers = json_array(), *dsets = json_array(), *held = json_array();
	char **names = NULL, when[32], buf[32];
	size_t nn = 0, used = 0, mapsize = 0, len;
	uint64_t evidence = 0, tv = 0;
	int64_t now = mu_now_us();
	char *out;

	for (size_t i = 0; i < n->npeers; i++) {
		struct peer *p = &n->peers[i];
		json_t *lag = json_object();
		for (size_t k = 0; k < p->nheads; k++) {
			struct store_dataset ds;
			uint64_t local = 0;
			if (store_read_begin(n->st, &t) == 0) {
				if (store_dataset_get(&t, p->heads[k].dataset, &ds) == 0) {
					local = ds.size;
					store_dataset_fini(&ds);
				}
				store_read_end(&t);
			}
			json_object_set_new(lag, p->heads[k].dataset,
					    json_integer(p->heads[k].size > local ?
							 (json_int_t)(p->heads[k].size - local) : 0));
		}
		json_array_append_new(peers, json_pack(
			"{s:s,s:s,s:b,s:I,s:i,s:I,s:s,s:o}", "endpoint", p->endpoint,
			"member", p->member, "connected", peer_connected(p, now),
			"last_seen_ms", (json_int_t)(p->last_seen_us ? (now - p->last_seen_us) / 1000 : -1),
			"strikes", p->strikes,
			"backoff_ms", (json_int_t)(p->backoff_until_us > now ? (p->backoff_until_us - now) / 1000 : 0),
			"last_error", p->last_error, "lag", lag));
	}
	if (store_read_begin(n->st, &t) == 0) {
		store_dataset_names(&t, &names, &nn);
		for (size_t i = 0; i < nn; i++) {
			struct store_dataset ds;
			const uint8_t *hb;
			size_t hl;
			uint64_t size;
			char root[65] = "";
			when[0] = '\0';
			if (store_dataset_get(&t, names[i], &ds) < 0)
				continue;
			if (store_head_latest(&t, ds.local_id, &size, &hb, &hl) == 0) {
				struct head_signed hs;
				if (head_decode(hb, hl, &hs) == 0) {
					mu_format_time(hs.hd->h.time_us, when, sizeof(when));
					sig_hex(hs.hd->h.root, 32, root);
					head_signed_fini(&hs);
				}
			}
			snprintf(buf, sizeof(buf), "%s@%u", ds.schema_id ? ds.schema_id : "?",
				 ds.schema_version);
			json_array_append_new(dsets, json_pack(
				"{s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:s,s:b}", "dataset", ds.name,
				"publisher", ds.publisher ? ds.publisher : "", "schema", buf,
				"entries", (json_int_t)ds.size, "rows", (json_int_t)ds.rows,
				"head_size", (json_int_t)ds.head_size, "head_time", when, "root", root,
				"members_only", ds.members_only));
			int64_t since;
			if (ingest_hold_get(&t, ds.name, &since) == 0) {
				mu_format_time(since, when, sizeof(when));
				json_array_append_new(held, json_pack("{s:s,s:s,s:s}", "dataset", ds.name,
								      "publisher", ds.publisher ? ds.publisher : "",
								      "since", when));
			}
			store_dataset_fini(&ds);
		}
		store_evidence_count(&t, &evidence);
		if (store_meta_get(&t, "trust_version", buf, sizeof(buf), &len) == 0)
			tv = strtoull(buf, NULL, 10);
		store_read_end(&t);
	}
	for (size_t i = 0; i < nn; i++)
		free(names[i]);
	free(names);
	store_map_usage(n->st, &used, &mapsize);
	json_object_set_new(o, "member", json_string(n->member));
	json_object_set_new(o, "software", json_string("musubi/" MUSUBI_VERSION));
	json_object_set_new(o, "listen", json_string(n->cfg->listen));
	json_object_set_new(o, "pub", json_string(n->cfg->pub));
	json_object_set_new(o, "trust_version", json_integer((json_int_t)tv));
	json_object_set_new(o, "uptime_s", json_integer((now - n->started_us) / 1000000));
	json_object_set_new(o, "evidence", json_integer((json_int_t)evidence));
	json_object_set_new(o, "held", held);   /* datasets held by a fork (ingest.h) */
	json_object_set_new(o, "map_used", json_integer((json_int_t)used));
	json_object_set_new(o, "map_size", json_integer((json_int_t)mapsize));
	json_object_set_new(o, "peers", peers);
	json_object_set_new(o, "datasets", dsets);
	json_object_set_new(o, "counters", json_pack(
		"{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
		"entries_received", (json_int_t)n->stats.entries_received,
		"entries_served", (json_int_t)n->stats.entries_served,
		"heads_committed", (json_int_t)n->stats.heads_committed,
		"refused_badsig", (json_int_t)n->stats.refused_badsig,
		"refused_trust", (json_int_t)n->stats.refused_trust,
		"refused_root", (json_int_t)n->stats.refused_root,
		"refused_proto", (json_int_t)n->stats.refused_proto,
		"refused_decode", (json_int_t)n->stats.refused_decode,
		"forks", (json_int_t)n->stats.forks, "requests", (json_int_t)n->stats.requests,
		"denied", (json_int_t)n->stats.denied));
	json_object_set_new(json_object_get(o, "counters"), "cosigs_made",
			    json_integer((json_int_t)n->stats.cosigs_made));
	json_object_set_new(json_object_get(o, "counters"), "cosigs_received",
			    json_integer((json_int_t)n->stats.cosigs_received));
	json_object_set_new(json_object_get(o, "counters"), "queries",
			    json_integer((json_int_t)n->stats.queries));
	json_object_set_new(json_object_get(o, "counters"), "scans",
			    json_integer((json_int_t)n->stats.scans));
	/* The same timings as musubi_query_duration_seconds, as count and sum. */
	json_t *lat = json_object();
	for (int k = 0; k < METRICS_NKINDS; k++) {
		uint64_t cnt;
		double sec;
		metrics_totals(n->metrics, (enum metrics_kind)k, &cnt, &sec);
		json_object_set_new(lat, k == METRICS_QUERY ? "query" : "scan",
				    json_pack("{s:I,s:f}", "count", (json_int_t)cnt, "seconds", sec));
	}
	json_object_set_new(o, "latency", lat);
	out = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return out;
}

static void on_status(struct req *r)
{
	Musubi__StatusReply out = MUSUBI__STATUS_REPLY__INIT;

	/* serve_status_json opens its own read transactions. */
	store_read_end(&r->t);
	out.json = serve_status_json(r->n);
	if (out.json == NULL) {
		fail(r, MUSUBI__ERROR_CODE__ERR_INTERNAL, "out of memory");
		return;
	}
	reply(r, MUSUBI__MSG_TYPE__MSG_STATUS_REPLY, &out.base);
	free(out.json);
}

void serve_request(struct node *n, struct wire_msg *m)
{
	struct req r = { .n = n, .m = m };
	int rc;

	n->stats.requests++;
	r.anonymous = m->user[0] == '\0' || strcmp(m->user, "anonymous") == 0;
	if ((rc = store_read_begin(n->st, &r.t)) < 0) {
		fail(&r, MUSUBI__ERROR_CODE__ERR_INTERNAL, "store: %s", mu_strerror(rc));
		return;
	}
	switch (m->env->type) {
	case MUSUBI__MSG_TYPE__MSG_HELLO: on_hello(&r); break;
	case MUSUBI__MSG_TYPE__MSG_LIST_HEADS: on_list_heads(&r); break;
	case MUSUBI__MSG_TYPE__MSG_GET_HEADS: on_get_heads(&r); break;
	case MUSUBI__MSG_TYPE__MSG_GET_ENTRIES: on_get_entries(&r); break;
	case MUSUBI__MSG_TYPE__MSG_GET_CONSISTENCY: on_get_proof(&r, 1); break;
	case MUSUBI__MSG_TYPE__MSG_GET_INCLUSION: on_get_proof(&r, 0); break;
	case MUSUBI__MSG_TYPE__MSG_GET_SCHEMA: on_get_schema(&r); break;
	case MUSUBI__MSG_TYPE__MSG_GET_TRUST: on_get_trust(&r); break;
	case MUSUBI__MSG_TYPE__MSG_STATUS: on_status(&r); break;
	case MUSUBI__MSG_TYPE__MSG_GET_COSIGS: on_get_cosigs(&r); break;
	case MUSUBI__MSG_TYPE__MSG_GET_REDACTIONS: on_get_redactions(&r); break;
	case MUSUBI__MSG_TYPE__MSG_SCAN: {
		int64_t t0 = mu_now_us();
		serve_scan(n, m, r.anonymous);
		n->stats.scans++;
		metrics_observe(n->metrics, METRICS_SCAN, mu_now_us() - t0);
		break;
	}
	case MUSUBI__MSG_TYPE__MSG_QUERY: fedq_submit(n, m); break;
	default:
		fail(&r, MUSUBI__ERROR_CODE__ERR_BAD_REQUEST, "message type %d is not a request",
		     (int)m->env->type);
		break;
	}
	store_read_end(&r.t);
}
