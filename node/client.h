/*
 * client.h - the client side of the wire protocol, for the musubi command:
 * one DEALER socket with CURVE, one request at a time, with a deadline.
 */
#ifndef MU_CLIENT_H
#define MU_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

struct client;

/*
 * Connect to a node at endpoint whose CURVE public key is server_key.
 * keydir: a key directory whose transport.pem identifies us as a member;
 * NULL makes a throwaway key (an anonymous client: public data only).
 */
int client_open(const char *endpoint, const uint8_t server_key[32], const char *keydir,
		struct client **out);
void client_close(struct client **c);

/*
 * Send a request and wait up to timeout_ms for its reply. Returns 0 with
 * reply filled (free with wire_msg_fini; MSG_ERROR replies are returned
 * as MU_E_DENIED / -ENOENT / MU_E_PROTO with why set from the node's
 * message), MU_E_TIMEOUT when the node did not answer in time, -EBUSY
 * when it refused the connection because it has max-connections open, or
 * MU_E_DENIED when it refused our key (why says which).
 */
int client_call(struct client *c, Musubi__MsgType type, const ProtobufCMessage *req,
		int timeout_ms, struct wire_msg *reply, char *why, size_t whylen);

/*
 * The CURVE key of the node at endpoint: from server_key_pem (a
 * transport.pub.pem) if given, else from the trust list in DATADIR's store
 * (the member whose endpoint it is), else DATADIR's own transport key.
 */
int client_server_key(const char *endpoint, const char *server_key_pem, const char *datadir,
		      uint8_t key[32], char *why, size_t whylen);

/* The current member of the store's trust list whose endpoint this is:
 * its id and transport key. -ENOENT if none. */
struct store_txn;
int client_member_by_endpoint(struct store_txn *t, const char *endpoint, char *member,
			      size_t cap, uint8_t key[32]);

/* Tell a musubid running on datadir that a local publish committed, so it
 * announces the new head at once. Silent when no node runs there. */
void client_notify_local(const char *datadir, const char *dataset);

#endif
