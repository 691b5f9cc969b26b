/*
 * metrics.h - musubid's Prometheus metrics and health check over HTTP.
 *
 * libmicrohttpd answers on a thread of its own, so a slow or stuck scraper
 * never holds up the ZeroMQ reactor, and musubi writes no HTTP parser.
 * The reactor keeps owning its counters (struct node_stats) and its peers:
 * each loop turn it calls metrics_publish(), which every METRICS_PUBLISH_US
 * copies them into a snapshot under a mutex it only try-locks (the reactor
 * never waits for a scrape). The HTTP thread renders that snapshot, plus
 * what it reads itself in one LMDB read transaction (dataset sizes, lag,
 * evidence, map use), so one scrape is one consistent picture.
 *
 *   GET /metrics   Prometheus text format 0.0.4; docs/OPERATIONS.md lists
 *                  every metric
 *   GET /healthz   200 "ok" when the store opens a read transaction and the
 *                  reactor turned within METRICS_STALL_US, else 503 saying why
 *   other paths    404; methods other than GET and HEAD: 405
 *
 * The listener needs no key: keep it on a loopback address (a warning is
 * logged for any other) or behind a firewall.
 *
 * Query durations are observed by whichever thread ran the query
 * (metrics_observe is thread-safe) and also feed musubi status.
 */
#ifndef MU_METRICS_H
#define MU_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define METRICS_PUBLISH_US (250 * 1000LL)
#define METRICS_STALL_US (10 * 1000000LL)

struct node;
struct metrics;

enum metrics_kind {
	METRICS_QUERY = 0,   /* a federated SQL query this node coordinated */
	METRICS_SCAN,        /* a scan this node answered for a coordinator */
	METRICS_NKINDS
};

/* Make n's metrics (always: musubi status uses the query timings). When
 * listen ("host:port", "[v6]:port") is not NULL, also serve HTTP there;
 * a bad address or a port in use is logged and returned (-errno or
 * MU_E_USAGE). n must stay valid, and n->st open, until metrics_destroy.
 * Caller owns *out. */
int metrics_new(struct node *n, const char *listen, struct metrics **out);
/* Stop the HTTP thread (waits for it) and free; NULLs *m; accepts NULL. */
void metrics_destroy(struct metrics **m);

/* Reactor, every loop turn: note the turn; now and then copy counters and
 * peers for the HTTP thread. */
void metrics_publish(struct metrics *m, const struct node *n, int64_t now_us);

/* Any thread: one finished query or scan that took us microseconds. */
void metrics_observe(struct metrics *m, enum metrics_kind kind, int64_t us);
/* Count and total seconds observed so far of one kind. */
void metrics_totals(struct metrics *m, enum metrics_kind kind, uint64_t *count, double *seconds);

/* The /metrics text as the HTTP thread would serve it (caller frees), for
 * tests. NULL when out of memory. */
char *metrics_render(struct metrics *m, size_t *len);

#endif
