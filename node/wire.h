/*
 * wire.h - musubi's wire protocol on ZeroMQ: envelopes in, envelopes out.
 *
 * Every ZeroMQ message is one frame holding one Envelope (proto/wire.proto);
 * the protobuf-c types of the payloads are used directly by the node and
 * client, since they are the protocol. Every byte received is hostile:
 * wire_recv() refuses frames over WIRE_MAX_MESSAGE (ZMQ_MAXMSGSIZE also
 * stops them in libzmq), envelopes that do not decode, and versions we do
 * not speak; payload decoders are called by the handlers, each checking
 * its own per-type limits.
 */
#ifndef MU_WIRE_H
#define MU_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "wire.pb-c.h"

/* Bump whenever a message changes meaning (docs/PROTOCOL.md). */
#define WIRE_VERSION 1
#define WIRE_MAX_MESSAGE (16u << 20)       /* bytes of one frame */
#define WIRE_MAX_ENTRIES_REPLY (4u << 20)  /* byte budget a server grants at most */
#define WIRE_MAX_HEADS 10000               /* heads in one reply */

/* A received message: the envelope, and for ROUTER sockets the routing id
 * of the peer and the ZAP user id (member id, or "anonymous"). */
struct wire_msg {
	Musubi__Envelope *env;
	uint8_t routing_id[256];
	size_t routing_len;
	char user[64];
};

/*
 * Receive one message from sock (non-blocking when flags has ZMQ_DONTWAIT).
 * router: the socket is a ROUTER (a routing-id frame comes first).
 * Returns 0 with m filled (free with wire_msg_fini), -EAGAIN when nothing
 * is waiting, MU_E_PROTO for a malformed message (consumed and dropped),
 * MU_E_VERSION for an envelope of another protocol version (m filled, so
 * the caller can answer with ERR_VERSION).
 */
int wire_recv(void *sock, int router, int flags, struct wire_msg *m);
void wire_msg_fini(struct wire_msg *m);

/*
 * Send an envelope of `type` with a packed payload message (may be NULL
 * for an empty payload). For ROUTER sockets pass the routing id to reply
 * to. Never blocks: a full queue drops the message (-EAGAIN).
 */
int wire_send(void *sock, const uint8_t *routing_id, size_t routing_len, Musubi__MsgType type,
	      uint64_t request_id, const ProtobufCMessage *payload);

/* Send MSG_ERROR with a code and a sentence. */
int wire_send_error(void *sock, const uint8_t *routing_id, size_t routing_len,
		    uint64_t request_id, Musubi__ErrorCode code, const char *message);

/* Apply CURVE and the usual limits to a socket. server: act as CURVE
 * server with secret key sec; client: connect to a server whose public
 * key is server_pub, with our pub/sec. Keys are raw 32 bytes. */
int wire_curve_server(void *sock, const uint8_t sec[32]);
int wire_curve_client(void *sock, const uint8_t pub[32], const uint8_t sec[32],
		      const uint8_t server_pub[32]);

/* Z85 text of a raw 32-byte key (41 bytes with the NUL). */
void wire_z85(const uint8_t key[32], char out[41]);

#endif
