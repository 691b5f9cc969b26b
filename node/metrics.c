/*
 * metrics.c - Prometheus metrics and /healthz on libmicrohttpd's thread
 * (see metrics.h). The reactor's figures arrive as a snapshot; the store's
 * are read here in one read transaction; nothing else is shared.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "log.h"
#include "metrics.h"
#include "mu_err.h"
#include "musubi_config.h"
#include "node.h"
#include "store.h"
#include "util.h"

/* Upper bounds (seconds) of the duration histogram's buckets; +Inf is added. */
static const double bucket_le[] = { 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
				    1, 2.5, 5, 10, 30 };
#define NBUCKETS (sizeof(bucket_le) / sizeof(bucket_le[0]))
static const char *const kind_name[METRICS_NKINDS] = { "query", "scan" };

struct histogram {
	uint64_t bucket[NBUCKETS];   /* not cumulative; above the last: count - sum of these */
	uint64_t count;
	double sum;
};

/* A peer as the reactor saw it at the snapshot. */
struct snap_peer {
	char name[256];              /* member id, or the endpoint until it is known */
	int connected, strikes;
	int64_t last_seen_us;
	struct peer_head *heads;     /* copies */
	size_t nheads;
};

struct snapshot {
	struct node_stats stats;
	struct snap_peer *peers;
	size_t npeers;
	int queries_queued;
	int64_t at_us;
};

struct metrics {
	struct node *n;              /* n->st, n->member, n->started_us: fixed once started */
	struct MHD_Daemon *daemon;
	struct sockaddr_storage addr;
	pthread_mutex_t lock;        /* guards snap */
	struct snapshot snap;
	pthread_mutex_t hlock;       /* guards hist */
	struct histogram hist[METRICS_NKINDS];
	_Atomic int64_t last_turn_us;
	int64_t next_publish_us;     /* reactor only */
};

/* ---- the reactor's side ---- */

static void snapshot_fini(struct snapshot *s)
{
	for (size_t i = 0; i < s->npeers; i++)
		free(s->peers[i].heads);
	free(s->peers);
	s->peers = NULL;
	s->npeers = 0;
}

void metrics_publish(struct metrics *m, const struct node *n, int64_t now_us)
{
	struct snapshot s = { 0 };

	if (m == NULL)
		return;
	atomic_store(&m->last_turn_us, now_us);
	if (now_us < m->next_publish_us)
		return;
	/* Build outside the lock, then swap: the HTTP thread holds the lock
	 * while it renders, and the reactor must never wait for that. */
	s.stats = n->stats;
	s.queries_queued = n->queries_queued;
	s.at_us = now_us;
	if (n->npeers > 0 && (s.peers = calloc(n->npeers, sizeof(*s.peers))) == NULL)
		return;
	for (size_t i = 0; i < n->npeers; i++) {
		const struct peer *p = &n->peers[i];
		struct snap_peer *sp = &s.peers[s.npeers++];
		snprintf(sp->name, sizeof(sp->name), "%s", p->member[0] ? p->member : p->endpoint);
		sp->connected = peer_connected(p, now_us);
		sp->strikes = p->strikes;
		sp->last_seen_us = p->last_seen_us;
		if (p->nheads > 0 && (sp->heads = malloc(p->nheads * sizeof(*sp->heads))) != NULL) {
			memcpy(sp->heads, p->heads, p->nheads * sizeof(*sp->heads));
			sp->nheads = p->nheads;
		}
	}
	if (pthread_mutex_trylock(&m->lock) != 0) {
		snapshot_fini(&s);   /* a scrape is rendering: publish next turn */
		return;
	}
	snapshot_fini(&m->snap);
	m->snap = s;
	pthread_mutex_unlock(&m->lock);
	m->next_publish_us = now_us + METRICS_PUBLISH_US;
}

void metrics_observe(struct metrics *m, enum metrics_kind kind, int64_t us)
{
	double sec = us > 0 ? us / 1e6 : 0;
	struct histogram *h;

	if (m == NULL || kind < 0 || kind >= METRICS_NKINDS)
		return;
	pthread_mutex_lock(&m->hlock);
	h = &m->hist[kind];
	for (size_t i = 0; i < NBUCKETS; i++)
		if (sec <= bucket_le[i]) {
			h->bucket[i]++;
			break;
		}
	h->count++;
	h->sum += sec;
	pthread_mutex_unlock(&m->hlock);
}

void metrics_totals(struct metrics *m, enum metrics_kind kind, uint64_t *count, double *seconds)
{
	*count = 0;
	*seconds = 0;
	if (m == NULL || kind < 0 || kind >= METRICS_NKINDS)
		return;
	pthread_mutex_lock(&m->hlock);
	*count = m->hist[kind].count;
	*seconds = m->hist[kind].sum;
	pthread_mutex_unlock(&m->hlock);
}

/* ---- rendering ---- */

struct local_ds {
	char *name;
	uint64_t size, rows;
};

/* What the store says, read in one transaction. */
struct local {
	struct local_ds *ds;
	size_t nds;
	uint64_t evidence;
	size_t map_used, map_size;
};

static void local_fini(struct local *l)
{
	for (size_t i = 0; i < l->nds; i++)
		free(l->ds[i].name);
	free(l->ds);
}

static int local_read(struct store *st, struct local *l)
{
	struct store_txn t;
	char **names = NULL;
	size_t nn = 0;
	int rc;

	memset(l, 0, sizeof(*l));
	if ((rc = store_read_begin(st, &t)) < 0)
		return rc;
	if ((rc = store_dataset_names(&t, &names, &nn)) == 0 && nn > 0 &&
	    (l->ds = calloc(nn, sizeof(*l->ds))) == NULL)
		rc = -ENOMEM;
	for (size_t i = 0; i < nn; i++) {
		struct store_dataset d;
		if (rc == 0 && store_dataset_get(&t, names[i], &d) == 0) {
			l->ds[l->nds++] = (struct local_ds){ names[i], d.size, d.rows };
			names[i] = NULL;   /* now l's */
			store_dataset_fini(&d);
		}
		free(names[i]);
	}
	free(names);
	if (rc == 0)
		rc = store_evidence_count(&t, &l->evidence);
	store_read_end(&t);
	store_map_usage(st, &l->map_used, &l->map_size);
	return rc;
}

/* The local size of dataset (names are sorted), 0 when not held. */
static uint64_t local_size(const struct local *l, const char *dataset)
{
	size_t lo = 0, hi = l->nds;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(l->ds[mid].name, dataset);
		if (c == 0)
			return l->ds[mid].size;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

/* A label value as the text format wants it: \, " and newline escaped. */
static void label(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fputc('\\', f);
		if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(FILE *f, const char *name, const char *type, const char *help, uint64_t v)
{
	head(f, name, type, help);
	fprintf(f, "%s %llu\n", name, (unsigned long long)v);
}

static void render_histograms(FILE *f, const struct histogram *hist)
{
	head(f, "musubi_query_duration_seconds", "histogram",
	     "Time to answer a federated query (kind=query) or a scan for a coordinator (kind=scan).");
	for (int k = 0; k < METRICS_NKINDS; k++) {
		uint64_t cum = 0;
		for (size_t i = 0; i < NBUCKETS; i++) {
			cum += hist[k].bucket[i];
			fprintf(f, "musubi_query_duration_seconds_bucket{kind=\"%s\",le=\"%g\"} %llu\n",
				kind_name[k], bucket_le[i], (unsigned long long)cum);
		}
		fprintf(f, "musubi_query_duration_seconds_bucket{kind=\"%s\",le=\"+Inf\"} %llu\n",
			kind_name[k], (unsigned long long)hist[k].count);
		fprintf(f, "musubi_query_duration_seconds_sum{kind=\"%s\"} %.6f\n", kind_name[k],
			hist[k].sum);
		fprintf(f, "musubi_query_duration_seconds_count{kind=\"%s\"} %llu\n", kind_name[k],
			(unsigned long long)hist[k].count);
	}
}

static void render_snapshot(FILE *f, const struct snapshot *s, const struct local *l, int64_t now)
{
	const struct node_stats *st = &s->stats;
	static const char *const reasons[] = { "signature", "trust", "root", "decode", "protocol" };
	const uint64_t refused[] = { st->refused_badsig, st->refused_trust, st->refused_root,
				     st->refused_decode, st->refused_proto };
	size_t connected = 0;

	one(f, "musubi_entries_received_total", "counter",
	    "Entries received from peers, verified and committed.", st->entries_received);
	one(f, "musubi_entries_served_total", "counter", "Entries sent to peers and clients.",
	    st->entries_served);
	one(f, "musubi_heads_committed_total", "counter",
	    "Signed tree heads received from peers and committed.", st->heads_committed);
	head(f, "musubi_verify_failures_total", "counter",
	     "Data from peers refused, by reason: signature (does not verify), trust (the trust "
	     "list does not allow the key), root (Merkle root differs from the signed one), decode "
	     "(bytes do not decode), protocol (anything else a peer got wrong).");
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		fprintf(f, "musubi_verify_failures_total{reason=\"%s\"} %llu\n", reasons[i],
			(unsigned long long)refused[i]);
	one(f, "musubi_forks_total", "counter",
	    "Forks found: two signed heads of one dataset that do not extend one another.", st->forks);
	one(f, "musubi_requests_total", "counter", "Requests answered on the request socket.",
	    st->requests);
	one(f, "musubi_requests_denied_total", "counter", "Requests refused by access control.",
	    st->denied);
	one(f, "musubi_cosignatures_made_total", "counter",
	    "Cosignatures this node made of heads it verified.", st->cosigs_made);
	one(f, "musubi_cosignatures_received_total", "counter",
	    "Cosignatures received from other witnesses.", st->cosigs_received);
	head(f, "musubi_queries_total", "counter",
	     "Federated queries accepted (kind=query) and scans answered (kind=scan).");
	fprintf(f, "musubi_queries_total{kind=\"query\"} %llu\n", (unsigned long long)st->queries);
	fprintf(f, "musubi_queries_total{kind=\"scan\"} %llu\n", (unsigned long long)st->scans);
	one(f, "musubi_queries_queued", "gauge", "Queries waiting for or running on the query worker.",
	    (uint64_t)(s->queries_queued > 0 ? s->queries_queued : 0));

	for (size_t i = 0; i < s->npeers; i++)
		connected += s->peers[i].connected != 0;
	one(f, "musubi_peers", "gauge", "Peers configured.", s->npeers);
	one(f, "musubi_peers_connected", "gauge",
	    "Peers that said hello and were heard from in the last 30 s.", connected);
	head(f, "musubi_peer_up", "gauge", "1 when the peer is connected, else 0.");
	for (size_t i = 0; i < s->npeers; i++) {
		fputs("musubi_peer_up{peer=", f);
		label(f, s->peers[i].name);
		fprintf(f, "} %d\n", s->peers[i].connected ? 1 : 0);
	}
	head(f, "musubi_peer_last_seen_seconds", "gauge",
	     "Seconds since the peer was last heard from (peers heard from at least once).");
	for (size_t i = 0; i < s->npeers; i++) {
		if (s->peers[i].last_seen_us == 0)
			continue;
		fputs("musubi_peer_last_seen_seconds{peer=", f);
		label(f, s->peers[i].name);
		fprintf(f, "} %.3f\n", (now - s->peers[i].last_seen_us) / 1e6);
	}
	head(f, "musubi_peer_strikes", "gauge",
	     "Consecutive failures of the peer; each doubles its back-off.");
	for (size_t i = 0; i < s->npeers; i++) {
		fputs("musubi_peer_strikes{peer=", f);
		label(f, s->peers[i].name);
		fprintf(f, "} %d\n", s->peers[i].strikes);
	}
	head(f, "musubi_peer_lag_entries", "gauge",
	     "Entries the peer's newest head has that this node does not hold yet.");
	for (size_t i = 0; i < s->npeers; i++)
		for (size_t k = 0; k < s->peers[i].nheads; k++) {
			const struct peer_head *h = &s->peers[i].heads[k];
			uint64_t have = local_size(l, h->dataset);
			fputs("musubi_peer_lag_entries{peer=", f);
			label(f, s->peers[i].name);
			fputs(",dataset=", f);
			label(f, h->dataset);
			fprintf(f, "} %llu\n", (unsigned long long)(h->size > have ? h->size - have : 0));
		}
}

char *metrics_render(struct metrics *m, size_t *len)
{
	struct histogram hist[METRICS_NKINDS];
	struct local l;
	char *buf = NULL;
	int64_t now = mu_now_us();
	int stored = local_read(m->n->st, &l) == 0;
	FILE *f = open_memstream(&buf, len);

	if (f == NULL) {
		local_fini(&l);
		return NULL;
	}
	head(f, "musubi_build_info", "gauge", "The musubi version; always 1.");
	fputs("musubi_build_info{version=", f);
	label(f, MUSUBI_VERSION);
	fputs(",member=", f);
	label(f, m->n->member);
	fputs("} 1\n", f);
	one(f, "musubi_uptime_seconds", "gauge", "Seconds since musubid started.",
	    (uint64_t)((now - m->n->started_us) / 1000000));
	one(f, "musubi_store_readable", "gauge",
	    "1 when this scrape could read the store, else 0 (store figures are then absent).",
	    (uint64_t)stored);
	if (stored) {
		one(f, "musubi_datasets", "gauge", "Datasets held: own and replicated.", l.nds);
		head(f, "musubi_entries_stored_total", "counter",
		     "Entries in the dataset's log held by this node (logs only grow).");
		for (size_t i = 0; i < l.nds; i++) {
			fputs("musubi_entries_stored_total{dataset=", f);
			label(f, l.ds[i].name);
			fprintf(f, "} %llu\n", (unsigned long long)l.ds[i].size);
		}
		head(f, "musubi_dataset_rows", "gauge", "Current rows of the dataset (the fold of its log).");
		for (size_t i = 0; i < l.nds; i++) {
			fputs("musubi_dataset_rows{dataset=", f);
			label(f, l.ds[i].name);
			fprintf(f, "} %llu\n", (unsigned long long)l.ds[i].rows);
		}
		one(f, "musubi_evidence_total", "counter",
		    "Evidence records kept: proofs that a publisher forked its history.", l.evidence);
		one(f, "musubi_lmdb_map_used_bytes", "gauge", "Bytes of the LMDB map in use.", l.map_used);
		one(f, "musubi_lmdb_map_size_bytes", "gauge",
		    "Size of the LMDB map now (it doubles when it fills).", l.map_size);
	}
	pthread_mutex_lock(&m->lock);
	render_snapshot(f, &m->snap, &l, now);
	pthread_mutex_unlock(&m->lock);
	pthread_mutex_lock(&m->hlock);
	memcpy(hist, m->hist, sizeof(hist));
	pthread_mutex_unlock(&m->hlock);
	render_histograms(f, hist);
	local_fini(&l);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* ---- HTTP ---- */

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, const char *type,
			       char *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
	enum MHD_Result ret;

	if (r == NULL) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result text(struct MHD_Connection *c, unsigned status, const char *msg)
{
	return respond(c, status, "text/plain; charset=utf-8", (char *)msg, strlen(msg),
		       MHD_RESPMEM_PERSISTENT);
}

static enum MHD_Result healthz(struct metrics *m, struct MHD_Connection *c)
{
	struct store_txn t;
	int64_t idle = mu_now_us() - atomic_load(&m->last_turn_us);

	if (store_read_begin(m->n->st, &t) < 0)
		return text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "the store cannot be read\n");
	store_read_end(&t);
	if (idle > METRICS_STALL_US)
		return text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "the node's loop is stalled\n");
	return text(c, MHD_HTTP_OK, "ok\n");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct metrics *m = cls;

	/* Answer at once, before any body: nothing here takes one. */
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
	if (strcmp(url, "/healthz") == 0)
		return healthz(m, c);
	if (strcmp(url, "/metrics") == 0) {
		size_t len = 0;
		char *body = metrics_render(m, &len);
		if (body == NULL)
			return text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
		return respond(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len,
			       MHD_RESPMEM_MUST_FREE);
	}
	return text(c, MHD_HTTP_NOT_FOUND, "not found: try /metrics or /healthz\n");
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t len;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	len = strlen(msg);
	while (len > 0 && msg[len - 1] == '\n')
		msg[--len] = '\0';
	log_warn("metrics: %s", msg);
}

/* "host:port" or "[v6]:port" into *out. */
static int parse_listen(const char *listen, struct sockaddr_storage *out)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV | AI_PASSIVE }, *res = NULL;
	char host[256];
	const char *colon = strrchr(listen, ':');
	size_t hl;
	int rc;

	if (colon == NULL || colon == listen || colon[1] == '\0')
		return MU_E_USAGE;
	hl = (size_t)(colon - listen);
	if (listen[0] == '[' && hl >= 2 && listen[hl - 1] == ']') {
		listen++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return MU_E_USAGE;
	memcpy(host, listen, hl);
	host[hl] = '\0';
	if ((rc = getaddrinfo(host, colon + 1, &hints, &res)) != 0)
		return MU_E_USAGE;
	memcpy(out, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

static int is_loopback(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127;
	return a->ss_family == AF_INET6 &&
	       IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)a)->sin6_addr);
}

int metrics_new(struct node *n, const char *listen, struct metrics **out)
{
	struct metrics *m = calloc(1, sizeof(*m));
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
	sigset_t block, old;
	int rc;

	*out = NULL;
	if (m == NULL)
		return -ENOMEM;
	m->n = n;
	pthread_mutex_init(&m->lock, NULL);
	pthread_mutex_init(&m->hlock, NULL);
	atomic_store(&m->last_turn_us, mu_now_us());
	if (listen == NULL || listen[0] == '\0') {
		*out = m;
		return 0;
	}
	if ((rc = parse_listen(listen, &m->addr)) < 0) {
		log_err("metrics = %s: not host:port with a numeric port (e.g. 127.0.0.1:9108)", listen);
		metrics_destroy(&m);
		return rc;
	}
	if (!is_loopback(&m->addr))
		log_warn("metrics = %s is not a loopback address: the metrics need no key, so "
			 "firewall that port", listen);
	if (m->addr.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* The HTTP thread must not take SIGTERM/SIGINT: they are the
	 * reactor's, which then stops this thread itself. The mask is
	 * inherited by the thread MHD_start_daemon creates. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	m->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, m,
				     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&m->addr,
				     MHD_OPTION_CONNECTION_LIMIT, 16U,
				     MHD_OPTION_CONNECTION_TIMEOUT, 10U,
				     MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
				     MHD_OPTION_END);
	rc = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (m->daemon == NULL) {
		/* libmicrohttpd has logged why (through mhd_log) just before. */
		log_err("cannot serve metrics on %s", listen);
		metrics_destroy(&m);
		return rc > 0 ? -rc : -EADDRINUSE;
	}
	log_info("metrics on http://%s/metrics", listen);
	*out = m;
	return 0;
}

void metrics_destroy(struct metrics **mp)
{
	struct metrics *m = *mp;

	if (m == NULL)
		return;
	if (m->daemon != NULL)
		MHD_stop_daemon(m->daemon);
	snapshot_fini(&m->snap);
	pthread_mutex_destroy(&m->lock);
	pthread_mutex_destroy(&m->hlock);
	free(m);
	*mp = NULL;
}
