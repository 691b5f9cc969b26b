/*
 * node.c - musubid's sockets and loop: set-up, the ZAP handler that
 * decides who may connect, the control socket that local publishes
 * notify, and the zmq_poll loop that feeds serve.c and sync.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <zmq.h>

#include "fedq.h"
#include "log.h"
#include "metrics.h"
#include "mu_err.h"
#include "node.h"
#include "sig.h"
#include "trust.h"
#include "util.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define MONITOR_ENDPOINT "inproc://musubid.router.monitor"

/* Take the data directory's lock: an flock held for the process's life,
 * released by the kernel however the process ends (no stale pid files). */
static int lock_datadir(const char *dir)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/musubid.lock", dir);
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640)) < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		return errno == EWOULDBLOCK ? MU_E_LOCKED : -errno;
	}
	return fd;   /* kept open on purpose */
}

static int bind_server(struct node *n, int type, const char *endpoint, void **out)
{
	void *s = zmq_socket(n->zctx, type);
	int rc;

	if (s == NULL)
		return -errno;
	if ((rc = wire_curve_server(s, n->sec)) < 0 || zmq_bind(s, endpoint) != 0) {
		rc = rc < 0 ? rc : -errno;
		log_err("cannot bind %s: %s", endpoint, zmq_strerror(-rc));
		zmq_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

int node_start(struct node *n, struct node_config *cfg)
{
	struct store_txn t;
	char path[4096];
	int rc, lockfd;

	memset(n, 0, sizeof(*n));
	n->cfg = cfg;
	n->started_us = mu_now_us();
	log_set_level(cfg->log_level);
	if ((lockfd = lock_datadir(cfg->dir)) < 0) {
		log_err("%s: %s", cfg->dir, lockfd == MU_E_LOCKED ?
			"another musubid is running on this data directory" : mu_strerror(lockfd));
		return lockfd;
	}
	if ((rc = store_open(cfg->dir, 0, &n->st)) < 0) {
		log_err("cannot open the store in %s: %s (run musubi init first)", cfg->dir,
			mu_strerror(rc));
		return rc;
	}
	if (cfg->map_max != 0 && (rc = store_set_map_max(n->st, cfg->map_max)) < 0) {
		log_err("cannot set the store's map-max: %s", mu_strerror(rc));
		return rc;
	}
	if ((rc = store_read_begin(n->st, &t)) == 0) {
		rc = store_member(&t, n->member, sizeof(n->member));
		store_read_end(&t);
	}
	if (rc < 0) {
		log_err("%s has no member id: run musubi init", cfg->dir);
		return rc;
	}
	catchup_init(n);
	snprintf(path, sizeof(path), "%s/keys/transport.pem", cfg->dir);
	if ((rc = sig_transport_load(path, n->pub, n->sec)) < 0) {
		log_err("cannot load the transport key %s: %s", path, mu_strerror(rc));
		return rc;
	}
	snprintf(path, sizeof(path), "%s/keys/signing.pem", cfg->dir);
	if ((rc = sig_key_load_private(path, &n->signer)) < 0) {
		log_err("cannot load the signing key %s: %s", path, mu_strerror(rc));
		return rc;
	}
	if ((rc = trust_cache_new(&n->tcache)) < 0)
		return rc;
	if ((n->zctx = zmq_ctx_new()) == NULL)
		return -errno;
	/* The ZAP handler must exist before any CURVE server socket binds. */
	if ((n->zap = zmq_socket(n->zctx, ZMQ_REP)) == NULL || zmq_bind(n->zap, ZAP_ENDPOINT) != 0)
		return -errno;
	if ((rc = bind_server(n, ZMQ_ROUTER, cfg->listen, &n->router)) < 0 ||
	    (rc = bind_server(n, ZMQ_PUB, cfg->pub, &n->pubsock)) < 0)
		return rc;
	/* Connections opened and closed, counted for max-connections. */
	if (zmq_socket_monitor(n->router, MONITOR_ENDPOINT,
			       ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED) != 0 ||
	    (n->monitor = zmq_socket(n->zctx, ZMQ_PAIR)) == NULL ||
	    zmq_connect(n->monitor, MONITOR_ENDPOINT) != 0)
		return -errno;
	/* Local publishes notify through a socket only this host's users
	 * with access to the data directory can reach. */
	snprintf(path, sizeof(path), "ipc://%s/musubid.sock", cfg->dir);
	if ((n->control = zmq_socket(n->zctx, ZMQ_PULL)) == NULL || zmq_bind(n->control, path) != 0) {
		log_err("cannot bind the control socket %s: %s", path, zmq_strerror(errno));
		return -errno;
	}
	if ((rc = metrics_new(n, cfg->metrics, &n->metrics)) < 0)
		return rc;
	if ((rc = sync_peers_start(n)) < 0 || (rc = fedq_start(n)) < 0)
		return rc;
	log_info("musubid for member %s: requests on %s, announcements on %s, %zu peer%s",
		 n->member, cfg->listen, cfg->pub, n->npeers, n->npeers == 1 ? "" : "s");
	return 0;
}

/* Take the ROUTER's connection events queued so far into n->connections. */
static void connections_update(struct node *n)
{
	zmq_msg_t ev;

	for (;;) {
		zmq_msg_init(&ev);
		if (zmq_msg_recv(&ev, n->monitor, ZMQ_DONTWAIT) < 0)
			break;
		/* Frame 1: event (2 bytes) and value (4 bytes); frame 2: address. */
		if (zmq_msg_size(&ev) >= 2 && zmq_msg_more(&ev)) {
			uint16_t event;
			memcpy(&event, zmq_msg_data(&ev), 2);
			if (event == ZMQ_EVENT_ACCEPTED)
				n->connections++;
			else if (event == ZMQ_EVENT_DISCONNECTED && n->connections > 0)
				n->connections--;
		}
		while (zmq_msg_more(&ev)) {
			zmq_msg_close(&ev);
			zmq_msg_init(&ev);
			if (zmq_msg_recv(&ev, n->monitor, ZMQ_DONTWAIT) < 0)
				break;
		}
		zmq_msg_close(&ev);
	}
	zmq_msg_close(&ev);
}

/* Answer one ZAP request (RFC 27): CURVE only; members of the trust list
 * by their transport key, this node's own key, else anonymous if allowed.
 * Beyond max-connections (the node's own key aside) a connection is
 * refused with status 500, which reaches the client as an authentication
 * failure it reports as "node busy" (300 would drop it without a word). */
static void zap_handle(struct node *n)
{
	zmq_msg_t parts[7];
	int nparts = 0, more = 1;
	size_t sz = sizeof(more);
	char user[64] = "";
	const char *status = "400", *text = "unknown key";

	while (more && nparts < 7) {
		zmq_msg_init(&parts[nparts]);
		if (zmq_msg_recv(&parts[nparts], n->zap, 0) < 0)
			break;
		nparts++;
		zmq_getsockopt(n->zap, ZMQ_RCVMORE, &more, &sz);
	}
	while (more) {   /* more frames than RFC 27 has: drain them */
		zmq_msg_t extra;
		zmq_msg_init(&extra);
		zmq_msg_recv(&extra, n->zap, 0);
		zmq_msg_close(&extra);
		zmq_getsockopt(n->zap, ZMQ_RCVMORE, &more, &sz);
	}
	if (nparts < 6)
		goto out;
	if (zmq_msg_size(&parts[5]) == 5 && memcmp(zmq_msg_data(&parts[5]), "CURVE", 5) == 0 &&
	    nparts == 7 && zmq_msg_size(&parts[6]) == 32) {
		const uint8_t *key = zmq_msg_data(&parts[6]);
		struct store_txn t;
		connections_update(n);
		if (memcmp(key, n->pub, 32) == 0) {
			snprintf(user, sizeof(user), "%s", n->member);
		} else if (n->connections > n->cfg->max_connections) {
			status = "500";
			text = "too many connections";
			int64_t now = mu_now_us();
			if (now - n->busy_logged_us > 10 * 1000000LL) {
				log_warn("refusing connections: %d open, max-connections is %d",
					 n->connections, n->cfg->max_connections);
				n->busy_logged_us = now;
			}
			goto reply;
		} else if (store_read_begin(n->st, &t) == 0) {
			if (trust_member_by_transport_key(&t, key, user, sizeof(user)) < 0)
				user[0] = '\0';
			store_read_end(&t);
		}
		if (user[0] != '\0') {
			status = "200";
			text = "member";
		} else if (n->cfg->allow_anonymous) {
			snprintf(user, sizeof(user), "anonymous");
			status = "200";
			text = "anonymous";
		} else {
			text = "not a member of the federation";
		}
	} else {
		text = "CURVE required";
	}
reply:
	/* Reply: version, request id, status code, status text, user id, metadata. */
	zmq_send(n->zap, "1.0", 3, ZMQ_SNDMORE);
	zmq_send(n->zap, zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]), ZMQ_SNDMORE);
	zmq_send(n->zap, status, 3, ZMQ_SNDMORE);
	zmq_send(n->zap, text, strlen(text), ZMQ_SNDMORE);
	zmq_send(n->zap, user, strlen(user), ZMQ_SNDMORE);
	zmq_send(n->zap, "", 0, 0);
	if (status[0] == '4')
		log_info("refused a connection: %s", text);
out:
	for (int i = 0; i < nparts; i++)
		zmq_msg_close(&parts[i]);
	if (nparts > 0 && nparts < 6)
		zmq_send(n->zap, "", 0, 0);   /* keep the REP socket's state machine sane */
}

static void control_handle(struct node *n)
{
	char buf[512];

	/* Any message means "a local publish committed": look and announce. */
	while (zmq_recv(n->control, buf, sizeof(buf), ZMQ_DONTWAIT) >= 0)
		;
	sync_announce_changes(n);
}

int node_run(struct node *n)
{
	while (!n->stop) {
		size_t np = 4 + n->npeers * 2;
		zmq_pollitem_t *items = calloc(np, sizeof(*items));
		int64_t now;
		int rc;

		if (items == NULL)
			return -ENOMEM;
		items[0] = (zmq_pollitem_t){ n->router, 0, ZMQ_POLLIN, 0 };
		items[1] = (zmq_pollitem_t){ n->zap, 0, ZMQ_POLLIN, 0 };
		items[2] = (zmq_pollitem_t){ n->control, 0, ZMQ_POLLIN, 0 };
		items[3] = (zmq_pollitem_t){ n->qsock, 0, ZMQ_POLLIN, 0 };
		for (size_t i = 0; i < n->npeers; i++) {
			items[4 + 2 * i] = (zmq_pollitem_t){ n->peers[i].dealer, 0,
							     n->peers[i].dealer ? ZMQ_POLLIN : 0, 0 };
			items[5 + 2 * i] = (zmq_pollitem_t){ n->peers[i].sub, 0,
							     n->peers[i].sub ? ZMQ_POLLIN : 0, 0 };
		}
		rc = zmq_poll(items, (int)np, 100);
		if (rc < 0 && errno != EINTR) {
			log_err("zmq_poll: %s", zmq_strerror(errno));
			free(items);
			return -errno;
		}
		if (rc > 0) {
			if (items[1].revents & ZMQ_POLLIN)
				zap_handle(n);
			/* Serve a bounded number of requests per turn so that
			 * sync and ZAP are never starved. */
			for (int k = 0; k < 64 && (items[0].revents & ZMQ_POLLIN); k++) {
				struct wire_msg m;
				int r = wire_recv(n->router, 1, ZMQ_DONTWAIT, &m);
				if (r == -EAGAIN)
					break;
				if (r == MU_E_VERSION) {
					wire_send_error(n->router, m.routing_id, m.routing_len,
							m.env->request_id, MUSUBI__ERROR_CODE__ERR_VERSION,
							"unsupported protocol version: upgrade musubi");
				} else if (r == 0) {
					serve_request(n, &m);
				} else {
					n->stats.refused_proto++;
				}
				wire_msg_fini(&m);
			}
			if (items[2].revents & ZMQ_POLLIN)
				control_handle(n);
			if (items[3].revents & ZMQ_POLLIN)
				fedq_relay(n);
			for (size_t i = 0; i < n->npeers; i++) {
				struct peer *p = &n->peers[i];
				for (int k = 0; k < 256 && (items[4 + 2 * i].revents & ZMQ_POLLIN); k++) {
					struct wire_msg m;
					int r = wire_recv(p->dealer, 0, ZMQ_DONTWAIT, &m);
					if (r == -EAGAIN)
						break;
					if (r == 0 || r == MU_E_VERSION)
						sync_on_reply(n, p, &m);
					else if (r == MU_E_PROTO)
						sync_on_undecodable(n, p);
					wire_msg_fini(&m);
				}
				for (int k = 0; k < 64 && (items[5 + 2 * i].revents & ZMQ_POLLIN); k++) {
					struct wire_msg m;
					int r = wire_recv(p->sub, 0, ZMQ_DONTWAIT, &m);
					if (r == -EAGAIN)
						break;
					if (r == 0)
						sync_on_announce(n, p, &m);
					wire_msg_fini(&m);
				}
			}
		}
		free(items);
		now = mu_now_us();
		sync_tick(n, now);
		connections_update(n);   /* so that closes never pile up in the queue */
		metrics_publish(n->metrics, n, now);
	}
	log_info("stopping");
	return 0;
}

void node_stop(struct node *n)
{
	fedq_stop(n);
	metrics_destroy(&n->metrics);   /* after the query worker, before the store */
	if (n->st != NULL && n->signer != NULL)
		access_flush(n);
	free(n->access);
	sync_fini(n);
	if (n->router)
		zmq_close(n->router);
	if (n->pubsock)
		zmq_close(n->pubsock);
	if (n->zap)
		zmq_close(n->zap);
	if (n->control)
		zmq_close(n->control);
	if (n->monitor)
		zmq_close(n->monitor);
	if (n->zctx)
		zmq_ctx_term(n->zctx);
	store_close(&n->st);
	sig_key_destroy(&n->signer);
	trust_cache_destroy(&n->tcache);
	free(n->announced);
	OPENSSL_cleanse(n->sec, sizeof(n->sec));
}
