/*
 * wire_probe.c - a small client for tests that speaks (or breaks) the wire
 * protocol against a real musubid, and prints what came back.
 *
 * usage: wire_probe ENDPOINT SERVER_PUB_PEM KEYDIR|- COMMAND [ARGS]
 *   heads                         LIST_HEADS: one "dataset size" line per head
 *   entries DATASET FROM TO       GET_ENTRIES: "entries N" or "error CODE: message"
 *   garbage                       a frame of random bytes, then a STATUS request
 *   oversize                      a 20 MiB frame, then a STATUS request
 *   version                       an envelope of protocol version 99
 *   query SQL [local|require-all]  MSG_QUERY: "columns ...", one line per row, "manifest {...}"
 * Exit 0 when the node answered as printed, 1 on a timeout or error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "client.h"
#include "head.h"
#include "mu_err.h"
#include "rec.h"
#include "schema.h"
#include "sig.h"

static int status_ok(struct client *c)
{
	struct wire_msg r;
	char why[256];
	int rc = client_call(c, MUSUBI__MSG_TYPE__MSG_STATUS, NULL, 5000, &r, why, sizeof(why));

	printf("status after: %s\n", rc == 0 ? "answered" : why);
	if (rc == 0)
		wire_msg_fini(&r);
	return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct client *c = NULL;
	uint8_t key[32];
	struct wire_msg r;
	char why[512];
	int rc;

	if (argc < 5) {
		fprintf(stderr, "usage: wire_probe ENDPOINT SERVER_PUB_PEM KEYDIR|- COMMAND [ARGS]\n");
		return 2;
	}
	if (sig_transport_load_public(argv[2], key) < 0 ||
	    client_open(argv[1], key, strcmp(argv[3], "-") ? argv[3] : NULL, &c) < 0) {
		fprintf(stderr, "cannot connect\n");
		return 2;
	}
	const char *cmd = argv[4];
	if (strcmp(cmd, "heads") == 0) {
		Musubi__ListHeads q = MUSUBI__LIST_HEADS__INIT;
		if ((rc = client_call(c, MUSUBI__MSG_TYPE__MSG_LIST_HEADS, &q.base, 5000, &r, why,
				      sizeof(why))) < 0) {
			printf("error: %s\n", why);
			return 1;
		}
		Musubi__Heads *h = musubi__heads__unpack(NULL, r.env->payload.len, r.env->payload.data);
		for (size_t i = 0; h && i < h->n_heads; i++) {
			struct head_signed hs;
			if (head_decode(h->heads[i]->signed_head.data, h->heads[i]->signed_head.len, &hs) == 0) {
				printf("%s %llu\n", hs.hd->h.dataset, (unsigned long long)hs.hd->h.size);
				head_signed_fini(&hs);
			}
		}
		if (h)
			musubi__heads__free_unpacked(h, NULL);
		wire_msg_fini(&r);
	} else if (strcmp(cmd, "entries") == 0 && argc == 8) {
		Musubi__GetEntries q = MUSUBI__GET_ENTRIES__INIT;
		q.dataset = argv[5];
		q.from = strtoull(argv[6], NULL, 10);
		q.to = strtoull(argv[7], NULL, 10);
		rc = client_call(c, MUSUBI__MSG_TYPE__MSG_GET_ENTRIES, &q.base, 5000, &r, why, sizeof(why));
		if (rc < 0) {
			printf("error %s: %s\n", rc == MU_E_DENIED ? "denied" : mu_strerror(rc), why);
			client_close(&c);
			return rc == MU_E_TIMEOUT ? 1 : 0;
		}
		Musubi__Entries *e = musubi__entries__unpack(NULL, r.env->payload.len, r.env->payload.data);
		printf("entries %zu\n", e ? e->n_entries : 0);
		if (e)
			musubi__entries__free_unpacked(e, NULL);
		wire_msg_fini(&r);
	} else if (strcmp(cmd, "query") == 0 && argc >= 6) {
		Musubi__Query q = MUSUBI__QUERY__INIT;
		q.sql = argv[5];
		q.timeout_ms = 3000;
		q.local = argc > 6 && strcmp(argv[6], "local") == 0;
		q.require_all = argc > 6 && strcmp(argv[6], "require-all") == 0;
		q.explain = 1;
		rc = client_call(c, MUSUBI__MSG_TYPE__MSG_QUERY, &q.base, 20000, &r, why, sizeof(why));
		if (rc < 0) {
			printf("error %s: %s\n", mu_strerror(rc), why);
			client_close(&c);
			return 0;
		}
		Musubi__QueryResult *res = musubi__query_result__unpack(NULL, r.env->payload.len,
									 r.env->payload.data);
		for (size_t i = 0; res && i < res->n_rows; i++) {
			struct rec_row *row = NULL;
			if (rec_row_decode(res->rows[i].data, res->rows[i].len, &row) < 0)
				continue;
			for (size_t k = 0; k < row->n; k++) {
				char buf[256];
				schema_format(&row->values[k], buf, sizeof(buf));
				printf("%s%s", k ? "|" : "", buf);
			}
			printf("\n");
			rec_row_free(&row);
		}
		if (res) {
			printf("partial %d\nmanifest %s\nexplain %s\n", res->partial, res->manifest,
			       res->explain);
			musubi__query_result__free_unpacked(res, NULL);
		}
		wire_msg_fini(&r);
	} else if (strcmp(cmd, "garbage") == 0 || strcmp(cmd, "oversize") == 0 ||
		   strcmp(cmd, "version") == 0) {
		/* Reach under the client for the raw socket: open a second one. */
		void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_DEALER);
		char zpub[41], zsec[41];
		uint8_t pub[32], sec[32];
		zmq_curve_keypair(zpub, zsec);
		zmq_z85_decode(pub, zpub);
		zmq_z85_decode(sec, zsec);
		wire_curve_client(s, pub, sec, key);
		zmq_connect(s, argv[1]);
		if (strcmp(cmd, "version") == 0) {
			Musubi__Envelope env = MUSUBI__ENVELOPE__INIT;
			uint8_t buf[64];
			env.version = 99;
			env.type = MUSUBI__MSG_TYPE__MSG_STATUS;
			env.request_id = 7;
			size_t len = musubi__envelope__pack(&env, buf);
			zmq_send(s, buf, len, 0);
			zmq_pollitem_t it = { s, 0, ZMQ_POLLIN, 0 };
			struct wire_msg m;
			if (zmq_poll(&it, 1, 5000) == 1 && wire_recv(s, 0, 0, &m) == 0 &&
			    m.env->type == MUSUBI__MSG_TYPE__MSG_ERROR) {
				Musubi__Error *e = musubi__error__unpack(NULL, m.env->payload.len, m.env->payload.data);
				printf("error %d: %s\n", e ? (int)e->code : -1, e ? e->message : "");
				if (e)
					musubi__error__free_unpacked(e, NULL);
				wire_msg_fini(&m);
			} else {
				printf("no error reply\n");
			}
		} else {
			size_t len = strcmp(cmd, "garbage") == 0 ? 4096 : (20u << 20);
			char *junk = malloc(len);
			for (size_t i = 0; i < len; i++)
				junk[i] = (char)(rand() & 0xff);
			zmq_send(s, junk, len, 0);
			free(junk);
		}
		zmq_close(s);
		zmq_ctx_term(ctx);
		rc = status_ok(c);
		client_close(&c);
		return rc;
	} else {
		fprintf(stderr, "unknown command %s\n", cmd);
		return 2;
	}
	client_close(&c);
	return 0;
}
