/* client.c - see client.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <zmq.h>

#include "client.h"
#include "mu_err.h"
#include "sig.h"
#include "store.h"
#include "trust.h"
#include "util.h"

struct client {
	void *ctx, *sock;
	void *monitor;   /* handshake failures: the node refused us */
	uint64_t next_id;
};

#define CLIENT_MONITOR "inproc://musubi.client.monitor"

int client_open(const char *endpoint, const uint8_t server_key[32], const char *keydir,
		struct client **out)
{
	struct client *c = calloc(1, sizeof(*c));
	uint8_t pub[32], sec[32];
	char zpub[41], zsec[41];
	int rc;

	*out = NULL;
	if (c == NULL)
		return -ENOMEM;
	if (keydir != NULL) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/transport.pem", keydir);
		if ((rc = sig_transport_load(path, pub, sec)) < 0)
			goto fail;
	} else {
		/* A fresh key for this call: the node sees an anonymous client. */
		if (zmq_curve_keypair(zpub, zsec) != 0 || zmq_z85_decode(pub, zpub) == NULL ||
		    zmq_z85_decode(sec, zsec) == NULL) {
			rc = MU_E_CRYPTO;
			goto fail;
		}
		OPENSSL_cleanse(zsec, sizeof(zsec));
	}
	if ((c->ctx = zmq_ctx_new()) == NULL || (c->sock = zmq_socket(c->ctx, ZMQ_DEALER)) == NULL) {
		rc = -errno;
		goto fail;
	}
	if ((rc = wire_curve_client(c->sock, pub, sec, server_key)) < 0)
		goto fail;
	if (zmq_socket_monitor(c->sock, CLIENT_MONITOR, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0 ||
	    (c->monitor = zmq_socket(c->ctx, ZMQ_PAIR)) == NULL ||
	    zmq_connect(c->monitor, CLIENT_MONITOR) != 0 || zmq_connect(c->sock, endpoint) != 0) {
		rc = -errno;
		goto fail;
	}
	OPENSSL_cleanse(sec, sizeof(sec));
	*out = c;
	return 0;
fail:
	OPENSSL_cleanse(sec, sizeof(sec));
	client_close(&c);
	return rc;
}

void client_close(struct client **cp)
{
	struct client *c = *cp;

	if (c == NULL)
		return;
	if (c->sock)
		zmq_close(c->sock);
	if (c->monitor)
		zmq_close(c->monitor);
	if (c->ctx)
		zmq_ctx_term(c->ctx);
	free(c);
	*cp = NULL;
}

/* Did the node refuse our handshake? Its ZAP status says why: 500 is
 * musubid's "too many connections", 400 a key it does not accept. */
static int client_refused(struct client *c, char *why, size_t whylen)
{
	zmq_msg_t ev;
	uint32_t value = 0;
	int refused = 0;

	zmq_msg_init(&ev);
	while (zmq_msg_recv(&ev, c->monitor, ZMQ_DONTWAIT) >= 0) {
		if (zmq_msg_size(&ev) == 6 && zmq_msg_more(&ev)) {
			memcpy(&value, (uint8_t *)zmq_msg_data(&ev) + 2, 4);
			refused = 1;
		}
		zmq_msg_close(&ev);
		zmq_msg_init(&ev);
	}
	zmq_msg_close(&ev);
	if (!refused)
		return 0;
	if (value == 500) {
		snprintf(why, whylen, "node busy: it has as many connections as it accepts "
			 "(max-connections), try again shortly");
		return -EBUSY;
	}
	snprintf(why, whylen, "the node refused this client's key (status %u): not a member "
		 "of its federation, or it does not serve anonymous clients", value);
	return MU_E_DENIED;
}

int client_call(struct client *c, Musubi__MsgType type, const ProtobufCMessage *req,
		int timeout_ms, struct wire_msg *reply, char *why, size_t whylen)
{
	uint64_t id = ++c->next_id;
	int64_t deadline = mu_mono_us() + (int64_t)timeout_ms * 1000;
	int rc;

	why[0] = '\0';
	memset(reply, 0, sizeof(*reply));
	/* The first send may find no connection yet: retry until the deadline. */
	while ((rc = wire_send(c->sock, NULL, 0, type, id, req)) == -EAGAIN) {
		if ((rc = client_refused(c, why, whylen)) < 0)
			return rc;
		if (mu_mono_us() > deadline)
			goto timeout;
		zmq_pollitem_t it = { c->sock, 0, ZMQ_POLLOUT, 0 };
		zmq_poll(&it, 1, 50);
	}
	if (rc < 0)
		return rc;
	for (;;) {
		int64_t left = (deadline - mu_mono_us()) / 1000;
		zmq_pollitem_t it[2] = { { c->sock, 0, ZMQ_POLLIN, 0 }, { c->monitor, 0, ZMQ_POLLIN, 0 } };
		if (left <= 0)
			goto timeout;
		if (zmq_poll(it, 2, (long)left) < 0 && errno != EINTR)
			return -errno;
		if ((it[1].revents & ZMQ_POLLIN) && (rc = client_refused(c, why, whylen)) < 0)
			return rc;
		if (!(it[0].revents & ZMQ_POLLIN))
			continue;
		rc = wire_recv(c->sock, 0, ZMQ_DONTWAIT, reply);
		if (rc == -EAGAIN)
			continue;
		if (rc == MU_E_VERSION) {
			snprintf(why, whylen, "the node speaks protocol version %u, this musubi "
				 "speaks %d: upgrade the older one", reply->env->version, WIRE_VERSION);
			wire_msg_fini(reply);
			return rc;
		}
		if (rc < 0)
			return rc;
		if (reply->env->request_id != id) {
			wire_msg_fini(reply);
			continue;
		}
		if (reply->env->type == MUSUBI__MSG_TYPE__MSG_ERROR) {
			Musubi__Error *e = musubi__error__unpack(NULL, reply->env->payload.len,
								 reply->env->payload.data);
			rc = MU_E_PROTO;
			if (e != NULL) {
				snprintf(why, whylen, "%s", e->message);
				if (e->code == MUSUBI__ERROR_CODE__ERR_DENIED)
					rc = MU_E_DENIED;
				else if (e->code == MUSUBI__ERROR_CODE__ERR_NOT_FOUND)
					rc = -ENOENT;
				else if (e->code == MUSUBI__ERROR_CODE__ERR_VERSION)
					rc = MU_E_VERSION;
				else if (e->code == MUSUBI__ERROR_CODE__ERR_INCOMPLETE)
					rc = MU_E_TIMEOUT;
				else if (e->code == MUSUBI__ERROR_CODE__ERR_BUSY)
					rc = -EBUSY;
				musubi__error__free_unpacked(e, NULL);
			}
			wire_msg_fini(reply);
			return rc;
		}
		return 0;
	}
timeout:
	snprintf(why, whylen, "no answer within %d ms (is musubid running there, and is the "
		 "server key right?)", timeout_ms);
	return MU_E_TIMEOUT;
}

int client_member_by_endpoint(struct store_txn *t, const char *endpoint, char *member,
			      size_t cap, uint8_t key[32])
{
	struct trust_peer *peers = NULL;
	size_t n = 0;
	int rc = trust_members_current(t, mu_now_us(), &peers, &n);

	if (rc < 0)
		return rc;
	rc = -ENOENT;
	for (size_t i = 0; i < n; i++)
		if (strcmp(peers[i].endpoint, endpoint) == 0) {
			snprintf(member, cap, "%s", peers[i].id);
			memcpy(key, peers[i].transport_key, 32);
			rc = 0;
			break;
		}
	free(peers);
	return rc;
}

int client_server_key(const char *endpoint, const char *server_key_pem, const char *datadir,
		      uint8_t key[32], char *why, size_t whylen)
{
	char path[4096], member[64];
	struct store *st = NULL;
	struct store_txn t;
	int rc;

	if (server_key_pem != NULL) {
		if ((rc = sig_transport_load_public(server_key_pem, key)) < 0)
			snprintf(why, whylen, "cannot read the server key %s: %s", server_key_pem,
				 mu_strerror(rc));
		return rc;
	}
	if (datadir == NULL) {
		snprintf(why, whylen, "the node's transport key is needed: pass --server-key "
			 "FILE.pub.pem, or --dir DATADIR of a node that has the trust list");
		return MU_E_USAGE;
	}
	if (store_open(datadir, STORE_RDONLY, &st) == 0) {
		rc = store_read_begin(st, &t);
		if (rc == 0) {
			rc = client_member_by_endpoint(&t, endpoint, member, sizeof(member), key);
			store_read_end(&t);
		}
		store_close(&st);
		if (rc == 0)
			return 0;
	}
	snprintf(path, sizeof(path), "%s/keys/transport.pub.pem", datadir);
	if ((rc = sig_transport_load_public(path, key)) < 0)
		snprintf(why, whylen, "%s is not in the trust list of %s, and %s cannot be read",
			 endpoint, datadir, path);
	return rc;
}

void client_notify_local(const char *datadir, const char *dataset)
{
	char path[4096];
	struct stat sb;
	void *ctx, *sock;
	int one = 1, linger = 200;

	snprintf(path, sizeof(path), "%s/musubid.sock", datadir);
	if (stat(path, &sb) != 0)
		return;   /* no node runs on this directory */
	if ((ctx = zmq_ctx_new()) == NULL)
		return;
	if ((sock = zmq_socket(ctx, ZMQ_PUSH)) != NULL) {
		snprintf(path, sizeof(path), "ipc://%s/musubid.sock", datadir);
		zmq_setsockopt(sock, ZMQ_IMMEDIATE, &one, sizeof(one));
		zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger));
		if (zmq_connect(sock, path) == 0) {
			zmq_pollitem_t it = { sock, 0, ZMQ_POLLOUT, 0 };
			if (zmq_poll(&it, 1, 500) == 1)
				zmq_send(sock, dataset, strlen(dataset), ZMQ_DONTWAIT);
		}
		zmq_close(sock);
	}
	zmq_ctx_term(ctx);
}
