/*
 * node.h - the musubid reactor: one thread, one zmq_poll loop, sockets
 * only here. Requests arrive on a ROUTER socket and are answered from the
 * store (serve.c); peers are driven by the sync state machine (sync.c),
 * which only judges and commits through registry/ingest.h.
 */
#ifndef MU_NODE_H
#define MU_NODE_H

#include <pthread.h>
#include <stdint.h>

#include "config.h"
#include "sig.h"
#include "store.h"
#include "wire.h"

#define NODE_MAX_INFLIGHT 256
#define NODE_MAX_FETCH_BYTES (256u << 20)  /* buffered entries of one dataset */

struct fetch;

struct pending {
	uint64_t id;
	Musubi__MsgType type;
	struct fetch *fetch;      /* for entries and heads requests */
	uint64_t from, to;
	int64_t sent_us;
};

struct peer {
	char endpoint[256];
	char member[64];          /* from the trust list; "" until known */
	uint8_t server_key[32];
	int have_key;
	void *dealer, *sub;
	int hello_done;
	char pub_endpoint[256];
	int64_t next_sync_us;
	int64_t backoff_until_us;
	int strikes;
	int64_t last_seen_us;
	char last_error[256];
	uint64_t next_req;
	struct pending inflight[NODE_MAX_INFLIGHT];
	int ninflight;
	uint64_t heads_seen;      /* heads received, for status */
	int heads_listed;         /* it has answered a list-heads request */
	/* the peer's newest head size per dataset, for lag in status, and
	 * when it was learned, to tell a rollback from a reply in flight */
	struct peer_head { char dataset[128]; uint64_t size; int64_t seen_us; } *heads;
	size_t nheads;
};

/* A peer counts as connected once it said hello and while it is heard
 * from: status and metrics share this rule. */
#define PEER_SILENT_US (30 * 1000000LL)
static inline int peer_connected(const struct peer *p, int64_t now_us)
{
	return p->hello_done && now_us - p->last_seen_us < PEER_SILENT_US;
}

/* One dataset being fetched from one peer. */
struct fetch {
	char dataset[128];
	struct peer *peer;
	uint64_t base;            /* local size: entries[0] is seq base */
	uint64_t target;          /* size of the newest head to reach */
	uint8_t **heads;          /* signed heads with size in (base, target], ascending */
	size_t *head_lens;
	uint64_t *head_sizes;
	size_t nheads;
	uint8_t **entries;        /* target - base slots; NULL until received */
	size_t *entry_lens;
	uint64_t contiguous;      /* entries [base, contiguous) are all here */
	uint64_t next_request;    /* first seq not yet asked for */
	size_t buffered_bytes;
	int waiting_heads;        /* GET_HEADS sent, no answer yet */
	int inflight;
	int64_t started_us;
	struct fetch *next;
};

struct node_stats {
	uint64_t entries_received, entries_served, heads_committed;
	uint64_t refused_badsig, refused_trust, refused_root, refused_proto, refused_decode;
	uint64_t forks, requests, denied, cosigs_made, cosigs_received, queries;
	uint64_t scans;           /* scans answered for coordinators (fedq.c) */
};

struct node {
	struct node_config *cfg;
	struct store *st;
	char member[64];
	uint8_t pub[32], sec[32];       /* transport (CURVE) key pair */
	struct sig_key *signer;         /* signs cosignatures of verified heads */
	struct trust_cache *tcache;     /* decoded trust lists (reactor thread only) */
	void *zctx, *router, *pubsock, *zap, *control;
	void *monitor;                  /* the ROUTER's connection events */
	int connections;                /* open on the ROUTER (max-connections) */
	int64_t busy_logged_us;         /* last "too many connections" log line */
	struct peer *peers;
	size_t npeers;
	struct fetch *fetches;
	struct node_stats stats;
	int64_t started_us;
	int64_t next_scan_us;
	/* own datasets' head sizes as last announced */
	struct announced { char dataset[128]; uint64_t size; } *announced;
	size_t nannounced;
	/* access records waiting to be appended to <member>/access_log */
	struct access_rec { int64_t us; char client[64], action[16], dataset[160], detail[512]; } *access;
	size_t naccess;
	uint64_t access_dropped;        /* records dropped while they could not be written */
	int64_t next_access_flush_us;
	void *qsock;                    /* the query worker's end (fedq.c) */
	pthread_t qthread;
	int qthread_started;
	int queries_queued;
	int restore_pending;            /* restored from a backup, not caught up (catchup.c) */
	struct metrics *metrics;        /* counters for /metrics and status (metrics.h) */
	volatile int stop;
};

int node_start(struct node *n, struct node_config *cfg);
int node_run(struct node *n);
void node_stop(struct node *n);

/* access.c: note who read what; flushed as signed entries every few seconds. */
#define ACCESS_FLUSH_US (5 * 1000000LL)
#define ACCESS_MAX_PENDING 2000
void access_note(struct node *n, const char *client, const char *action, const char *dataset,
		 const char *detail);
void access_flush(struct node *n);

/* serve.c */
void serve_request(struct node *n, struct wire_msg *m);
/* How many redaction notices the store holds for dataset. */
uint64_t count_redactions(struct store_txn *t, const char *dataset);
/* The node's status as a JSON string (caller frees). */
char *serve_status_json(struct node *n);

/* sync.c */
int sync_peers_start(struct node *n);
/* Called on every loop turn: timers, timeouts, anti-entropy. */
void sync_tick(struct node *n, int64_t now);
void sync_on_reply(struct node *n, struct peer *p, struct wire_msg *m);
void sync_on_announce(struct node *n, struct peer *p, struct wire_msg *m);
/* A reply from p that wire_recv could not decode (its request id unknown):
 * counted, and p struck. */
void sync_on_undecodable(struct node *n, struct peer *p);
/* Announce the newest heads of datasets that grew since last announced. */
void sync_announce_changes(struct node *n);
void sync_fini(struct node *n);
/* Does the node replicate this dataset (config replicate patterns)? */
int sync_wants(const struct node *n, const char *dataset);

/* catchup.c: the restore guard (backup.h). catchup_init reads the mark at
 * start; catchup_check clears it once this member's datasets are at least
 * at the sizes every answering peer listed. */
void catchup_init(struct node *n);
void catchup_check(struct node *n, int64_t now);

#endif
