/* wire.c - envelopes over ZeroMQ (see wire.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "mu_err.h"
#include "wire.h"

#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
/* libzmq 4.3 implements this option; its header lists it among the draft
 * API only. Without it, a missing ZAP handler would let everyone in. */
#define ZMQ_ZAP_ENFORCE_DOMAIN 93
#endif

void wire_msg_fini(struct wire_msg *m)
{
	if (m->env != NULL)
		musubi__envelope__free_unpacked(m->env, NULL);
	m->env = NULL;
}

/* Drain the rest of a multipart message we are refusing. */
static void drain(void *sock, zmq_msg_t *part)
{
	int more;
	size_t sz = sizeof(more);

	while (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz) == 0 && more) {
		zmq_msg_close(part);
		zmq_msg_init(part);
		if (zmq_msg_recv(part, sock, 0) < 0)
			break;
	}
}

int wire_recv(void *sock, int router, int flags, struct wire_msg *m)
{
	zmq_msg_t part;
	int rc = 0;

	memset(m, 0, sizeof(*m));
	zmq_msg_init(&part);
	if (zmq_msg_recv(&part, sock, flags) < 0) {
		rc = -errno;
		zmq_msg_close(&part);
		return rc;
	}
	if (router) {
		size_t n = zmq_msg_size(&part);
		if (n > sizeof(m->routing_id) || !zmq_msg_more(&part)) {
			drain(sock, &part);
			zmq_msg_close(&part);
			return MU_E_PROTO;
		}
		memcpy(m->routing_id, zmq_msg_data(&part), n);
		m->routing_len = n;
		zmq_msg_close(&part);
		zmq_msg_init(&part);
		if (zmq_msg_recv(&part, sock, 0) < 0) {
			rc = -errno;
			zmq_msg_close(&part);
			return rc;
		}
	}
	/* The ZAP user id rides on the frames the peer sent, not on the
	 * routing-id frame a ROUTER makes up. */
	const char *user = zmq_msg_gets(&part, "User-Id");
	snprintf(m->user, sizeof(m->user), "%s", user ? user : "");
	if (zmq_msg_more(&part) || zmq_msg_size(&part) > WIRE_MAX_MESSAGE) {
		drain(sock, &part);
		zmq_msg_close(&part);
		return MU_E_PROTO;
	}
	m->env = musubi__envelope__unpack(NULL, zmq_msg_size(&part), zmq_msg_data(&part));
	zmq_msg_close(&part);
	if (m->env == NULL)
		return MU_E_PROTO;
	if (m->env->version != WIRE_VERSION)
		return MU_E_VERSION;
	return 0;
}

int wire_send(void *sock, const uint8_t *routing_id, size_t routing_len, Musubi__MsgType type,
	      uint64_t request_id, const ProtobufCMessage *payload)
{
	Musubi__Envelope env = MUSUBI__ENVELOPE__INIT;
	uint8_t *pbuf = NULL;
	zmq_msg_t msg;
	size_t len;
	int rc = 0;

	env.version = WIRE_VERSION;
	env.type = type;
	env.request_id = request_id;
	if (payload != NULL) {
		len = protobuf_c_message_get_packed_size(payload);
		if (len > WIRE_MAX_MESSAGE - 64)
			return MU_E_TOOBIG;
		if ((pbuf = malloc(len ? len : 1)) == NULL)
			return -ENOMEM;
		protobuf_c_message_pack(payload, pbuf);
		env.payload.data = pbuf;
		env.payload.len = len;
	}
	len = musubi__envelope__get_packed_size(&env);
	if (zmq_msg_init_size(&msg, len) != 0) {
		free(pbuf);
		return -ENOMEM;
	}
	musubi__envelope__pack(&env, zmq_msg_data(&msg));
	free(pbuf);
	if (routing_id != NULL &&
	    zmq_send(sock, routing_id, routing_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
		rc = -errno;
		zmq_msg_close(&msg);
		return rc;
	}
	if (zmq_msg_send(&msg, sock, ZMQ_DONTWAIT) < 0) {
		rc = -errno;
		zmq_msg_close(&msg);
	}
	return rc;
}

int wire_send_error(void *sock, const uint8_t *routing_id, size_t routing_len,
		    uint64_t request_id, Musubi__ErrorCode code, const char *message)
{
	Musubi__Error e = MUSUBI__ERROR__INIT;
	uint32_t versions[] = { WIRE_VERSION };

	e.code = code;
	e.message = (char *)message;
	if (code == MUSUBI__ERROR_CODE__ERR_VERSION) {
		e.n_supported_versions = 1;
		e.supported_versions = versions;
	}
	return wire_send(sock, routing_id, routing_len, MUSUBI__MSG_TYPE__MSG_ERROR, request_id,
			 &e.base);
}

static int set_limits(void *sock)
{
	int64_t max = WIRE_MAX_MESSAGE;
	int linger = 0, hwm = 1000;

	if (zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &max, sizeof(max)) != 0 ||
	    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger)) != 0 ||
	    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof(hwm)) != 0 ||
	    zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof(hwm)) != 0)
		return -errno;
	return 0;
}

int wire_curve_server(void *sock, const uint8_t sec[32])
{
	int one = 1, rc;

	if ((rc = set_limits(sock)) < 0)
		return rc;
	if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof(one)) != 0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, sec, 32) != 0 ||
	    /* Fail closed: no ZAP handler means no connection. */
	    zmq_setsockopt(sock, ZMQ_ZAP_ENFORCE_DOMAIN, &one, sizeof(one)) != 0 ||
	    zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "musubi", 6) != 0)
		return -errno;
	return 0;
}

int wire_curve_client(void *sock, const uint8_t pub[32], const uint8_t sec[32],
		      const uint8_t server_pub[32])
{
	int rc;

	if ((rc = set_limits(sock)) < 0)
		return rc;
	if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_pub, 32) != 0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, pub, 32) != 0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, sec, 32) != 0)
		return -errno;
	return 0;
}

void wire_z85(const uint8_t key[32], char out[41])
{
	zmq_z85_encode(out, key, 32);
}
