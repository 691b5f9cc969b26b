/*
 * baseline_zmq.c - the baseline of the replication benchmark: the work a
 * replica has to do, with no protocol around it.
 *
 * Two processes. The sender (a forked child) reads a dataset's Entry bytes
 * and signed heads from a node's store, exactly as stored, and pushes them
 * over ZeroMQ with CURVE in the batches musubid serves (at most 2000
 * entries and BATCH_BYTES of them a message, default 1 MiB). The receiver
 * (the parent) hashes each entry as a Merkle leaf, appends it to the
 * frontier and puts it into LMDB under its 8-byte big-endian seq; when the
 * frontier reaches a signed head (the publisher signs one per 25,000
 * entries), it compares the root, verifies the one Ed25519 signature and
 * commits the batch in one durable write transaction (default LMDB flags,
 * as musubi's store). No requests, no envelopes, no trust list: what is
 * left is what any verifying replica must do.
 *
 * A message is two frames: the entries, each as a 4-byte big-endian
 * length and the bytes; then the signed heads reached by the entries sent
 * so far, in the same form (often empty). An empty first frame ends the
 * stream. Both sockets keep at most WINDOW messages queued, a credit like
 * musubid's window.
 *
 * usage: baseline_zmq DATADIR DATASET OUTDIR [BATCH_BYTES]
 * DATADIR is the publisher's data directory (its keys/signing.pub.pem
 * checks the heads); OUTDIR must not exist and is left for the caller to
 * remove. Prints one line: entries, seconds, entries per second, and the
 * CPU time of each process.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>
#include <zmq.h>

#include "head.h"
#include "merkle.h"
#include "mu_err.h"
#include "sig.h"
#include "store.h"

#define CHUNK_ENTRIES 2000              /* node/sync.c FETCH_CHUNK */
#define DEFAULT_BATCH_BYTES (1u << 20)  /* musubid's batch-bytes default */
#define WINDOW 16                       /* musubid's window default */
#define MAX_HEADS 4096
#define MAP_SIZE ((size_t)64 << 30)     /* address space, not disk */

struct keys {
	char server_pub[41], server_sec[41], client_pub[41], client_sec[41];
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(const struct rusage *ru)
{
	return (double)(ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) +
	       (double)(ru->ru_utime.tv_usec + ru->ru_stime.tv_usec) / 1e6;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Append len-prefixed bytes to buf (capacity checked by the caller). */
static size_t put_item(uint8_t *buf, size_t at, const uint8_t *data, size_t len)
{
	put_be32(buf + at, (uint32_t)len);
	memcpy(buf + at + 4, data, len);
	return at + 4 + len;
}

/* The child: push every signed entry of DATASET to endpoint, then an
 * empty message. Returns 0 or a negative code. */
static int send_all(const char *datadir, const char *dataset, const char *endpoint,
		    const struct keys *k, size_t budget)
{
	struct store *st = NULL;
	struct store_txn t = { 0 };
	struct store_dataset ds = { 0 };
	void *ctx = NULL, *sock = NULL;
	uint8_t *ebuf = NULL, *hbuf = NULL;
	size_t ecap = budget + 65536 + 4 * CHUNK_ENTRIES, hcap = 65536;
	uint64_t seq = 0, head_after = 0, head_size = 0;
	const uint8_t *head = NULL;
	size_t head_len = 0;
	int hwm = WINDOW, linger = -1, rc;

	if ((rc = store_open(datadir, STORE_RDONLY, &st)) < 0 ||
	    (rc = store_read_begin(st, &t)) < 0 || (rc = store_dataset_get(&t, dataset, &ds)) < 0) {
		fprintf(stderr, "baseline_zmq: no dataset %s in %s\n", dataset, datadir);
		goto out;
	}
	if ((ebuf = malloc(ecap)) == NULL || (hbuf = malloc(hcap)) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if ((ctx = zmq_ctx_new()) == NULL || (sock = zmq_socket(ctx, ZMQ_PUSH)) == NULL ||
	    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof(hwm)) != 0 ||
	    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger)) != 0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, k->server_pub, 40) != 0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, k->client_pub, 40) != 0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, k->client_sec, 40) != 0 ||
	    zmq_connect(sock, endpoint) != 0) {
		rc = -errno;
		goto out;
	}
	if (store_head_next(&t, ds.local_id, head_after, &head_size, &head, &head_len) < 0)
		head_size = UINT64_MAX;
	while (seq < ds.head_size) {
		size_t elen = 0, hlen = 0, bytes = 0;
		unsigned n = 0;
		/* The same cut as musubid's server: at least one entry, then
		 * stop before the budget would be exceeded. */
		while (seq < ds.head_size && n < CHUNK_ENTRIES) {
			const uint8_t *buf;
			size_t len;
			if ((rc = store_entry_get(&t, ds.local_id, seq, &buf, &len)) < 0)
				goto out;
			if (n > 0 && bytes + len > budget)
				break;
			if (elen + 4 + len > ecap) {
				rc = -E2BIG;
				goto out;
			}
			elen = put_item(ebuf, elen, buf, len);
			bytes += len;
			n++;
			seq++;
		}
		while (head_size <= seq) {
			if (hlen + 4 + head_len > hcap) {
				rc = -E2BIG;
				goto out;
			}
			hlen = put_item(hbuf, hlen, head, head_len);
			head_after = head_size;
			if (store_head_next(&t, ds.local_id, head_after, &head_size, &head, &head_len) < 0)
				head_size = UINT64_MAX;
		}
		if (zmq_send(sock, ebuf, elen, ZMQ_SNDMORE) < 0 || zmq_send(sock, hbuf, hlen, 0) < 0) {
			rc = -errno;
			goto out;
		}
	}
	rc = zmq_send(sock, "", 0, ZMQ_SNDMORE) < 0 || zmq_send(sock, "", 0, 0) < 0 ? -errno : 0;
out:
	if (rc < 0)
		fprintf(stderr, "baseline_zmq: sender: %s\n", mu_strerror(rc));
	if (sock != NULL)
		zmq_close(sock);   /* linger -1: the queued messages still go out */
	if (ctx != NULL)
		zmq_ctx_term(ctx);
	free(ebuf);
	free(hbuf);
	store_dataset_fini(&ds);
	if (t.txn != NULL)
		store_read_end(&t);
	store_close(&st);
	return rc;
}

struct receiver {
	MDB_env *env;
	MDB_dbi dbi;
	MDB_txn *txn;                     /* the open batch, or NULL */
	struct sig_key *key;              /* the publisher's */
	struct merkle_frontier fr;
	struct head_signed heads[MAX_HEADS];
	size_t nheads, next_head;         /* heads received; the next to reach */
	uint64_t committed, bytes;
};

/* The frontier reached heads[next_head]: check it and commit the batch. */
static int commit_batch(struct receiver *r)
{
	struct head_signed *hs = &r->heads[r->next_head];
	merkle_hash root;
	int rc;

	merkle_frontier_root(&r->fr, root);
	if (memcmp(root, hs->hd->h.root, MERKLE_HASH_LEN) != 0) {
		fprintf(stderr, "baseline_zmq: entries up to %llu do not give the signed root\n",
			(unsigned long long)r->fr.size);
		return MU_E_ROOT;
	}
	if ((rc = head_check_signature(hs, r->key)) < 0)
		return rc;
	rc = mdb_txn_commit(r->txn);
	r->txn = NULL;   /* freed by the commit, even when it fails */
	if (rc != 0) {
		fprintf(stderr, "baseline_zmq: LMDB: %s\n", mdb_strerror(rc));
		return MU_E_STORE;
	}
	head_signed_fini(hs);
	r->next_head++;
	r->committed = r->fr.size;
	return 0;
}

/* One message: remember its heads, then take in its entries. Returns 1
 * when it was the end of the stream, 0, or a negative code. */
static int take_message(struct receiver *r, const uint8_t *e, size_t elen, const uint8_t *h,
			size_t hlen)
{
	size_t at;
	int rc;

	if (elen == 0)
		return 1;
	for (at = 0; at + 4 <= hlen; at += 4 + get_be32(h + at)) {
		uint32_t len = get_be32(h + at);
		if (len > hlen - at - 4 || r->nheads == MAX_HEADS)
			return MU_E_DECODE;
		if ((rc = head_decode(h + at + 4, len, &r->heads[r->nheads])) < 0)
			return rc;
		r->nheads++;
	}
	for (at = 0; at + 4 <= elen; at += 4 + get_be32(e + at)) {
		uint32_t len = get_be32(e + at);
		uint8_t k[8];
		merkle_hash leaf;
		MDB_val key = { sizeof(k), k }, val = { len, (void *)(e + at + 4) };
		if (len > elen - at - 4)
			return MU_E_DECODE;
		for (int i = 0; i < 8; i++)
			k[i] = (uint8_t)(r->fr.size >> (56 - 8 * i));
		if (r->txn == NULL && (rc = mdb_txn_begin(r->env, NULL, 0, &r->txn)) != 0)
			goto lmdb;
		if ((rc = mdb_put(r->txn, r->dbi, &key, &val, 0)) != 0)
			goto lmdb;
		merkle_leaf_hash(e + at + 4, len, leaf);
		if ((rc = merkle_frontier_append(&r->fr, leaf, NULL, NULL)) < 0)
			return rc;
		r->bytes += len;
		if (r->next_head < r->nheads && r->heads[r->next_head].hd->h.size == r->fr.size &&
		    (rc = commit_batch(r)) < 0)
			return rc;
	}
	return 0;
lmdb:
	fprintf(stderr, "baseline_zmq: LMDB: %s\n", mdb_strerror(rc));
	return MU_E_STORE;
}

/* Wait until sock has a message; -ECHILD if the sender exited first
 * (it has then been reaped: *child becomes -1). */
static int wait_readable(void *sock, pid_t *child)
{
	zmq_pollitem_t it = { sock, 0, ZMQ_POLLIN, 0 };
	int n, status;

	while ((n = zmq_poll(&it, 1, 200)) == 0)
		if (waitpid(*child, &status, WNOHANG) == *child) {
			*child = -1;
			return -ECHILD;
		}
	return n < 0 ? -errno : 0;
}

/* The parent: bind, start the sender, take everything in. */
static int receive_all(int argc, char **argv, struct keys *k, double t0)
{
	struct receiver r = { 0 };
	void *ctx = NULL, *sock = NULL;
	zmq_msg_t em, hm;
	char endpoint[256], path[4096];
	size_t eplen = sizeof(endpoint), budget = DEFAULT_BATCH_BYTES;
	int hwm = WINDOW, one = 1, linger = 0, pipefd[2] = { -1, -1 }, rc, done = 0;
	pid_t child = -1;
	uint64_t messages = 0;

	zmq_msg_init(&em);
	zmq_msg_init(&hm);
	if (argc == 5)
		budget = strtoul(argv[4], NULL, 10);
	snprintf(path, sizeof(path), "%s/keys/signing.pub.pem", argv[1]);
	if ((rc = sig_key_load_public(path, &r.key)) < 0)
		goto out;
	if (mkdir(argv[3], 0750) < 0) {
		rc = -errno;
		goto out;
	}
	/* Fork before any ZeroMQ context or LMDB environment exists; the
	 * child learns the endpoint (an ephemeral port) through a pipe. */
	if (pipe(pipefd) < 0 || (child = fork()) < 0) {
		rc = -errno;
		goto out;
	}
	if (child == 0) {
		ssize_t got;
		close(pipefd[1]);
		got = read(pipefd[0], endpoint, sizeof(endpoint) - 1);
		endpoint[got > 0 ? got : 0] = '\0';
		_exit(got > 0 && send_all(argv[1], argv[2], endpoint, k, budget) == 0 ? 0 : 1);
	}
	close(pipefd[0]);
	pipefd[0] = -1;
	if ((rc = mdb_env_create(&r.env)) != 0 || (rc = mdb_env_set_mapsize(r.env, MAP_SIZE)) != 0 ||
	    (rc = mdb_env_open(r.env, argv[3], 0, 0640)) != 0 ||
	    (rc = mdb_txn_begin(r.env, NULL, 0, &r.txn)) != 0 ||
	    (rc = mdb_dbi_open(r.txn, NULL, 0, &r.dbi)) != 0) {
		fprintf(stderr, "baseline_zmq: LMDB: %s\n", mdb_strerror(rc));
		rc = MU_E_STORE;
		goto out;
	}
	merkle_frontier_init(&r.fr);
	if ((ctx = zmq_ctx_new()) == NULL || (sock = zmq_socket(ctx, ZMQ_PULL)) == NULL ||
	    zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof(hwm)) != 0 ||
	    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger)) != 0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof(one)) != 0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, k->server_sec, 40) != 0 ||
	    zmq_bind(sock, "tcp://127.0.0.1:*") != 0 ||
	    zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, endpoint, &eplen) != 0) {
		rc = -errno;
		goto out;
	}
	if (write(pipefd[1], endpoint, strlen(endpoint)) < 0) {
		rc = -errno;
		goto out;
	}
	while (!done) {
		if ((rc = wait_readable(sock, &child)) < 0)
			goto out;
		if (zmq_msg_recv(&em, sock, 0) < 0 || zmq_msg_recv(&hm, sock, 0) < 0) {
			rc = -errno;
			goto out;
		}
		rc = take_message(&r, zmq_msg_data(&em), zmq_msg_size(&em), zmq_msg_data(&hm),
				  zmq_msg_size(&hm));
		if (rc < 0)
			goto out;
		done = rc;
		messages++;
	}
	if (r.committed != r.fr.size || r.committed == 0) {
		fprintf(stderr, "baseline_zmq: the stream ended at %llu entries, the last signed head "
			"at %llu\n", (unsigned long long)r.fr.size, (unsigned long long)r.committed);
		rc = MU_E_PROTO;
		goto out;
	}
	double secs = now_s() - t0;
	int status;
	struct rusage self, sender;
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		child = -1;
		rc = MU_E_PROTO;
		goto out;
	}
	child = -1;
	getrusage(RUSAGE_SELF, &self);
	getrusage(RUSAGE_CHILDREN, &sender);
	printf("baseline_zmq: %llu entries (%.1f MB, %zu signed heads, %llu messages) in %.3f s "
	       "(%.0f entries/s); cpu %.2f s receiver + %.2f s sender\n",
	       (unsigned long long)r.committed, (double)r.bytes / 1048576, r.next_head,
	       (unsigned long long)messages - 1, secs, (double)r.committed / secs, cpu_s(&self),
	       cpu_s(&sender));
	rc = 0;
out:
	if (rc < 0)
		fprintf(stderr, "baseline_zmq: receiver: %s\n", mu_strerror(rc));
	zmq_msg_close(&em);
	zmq_msg_close(&hm);
	if (sock != NULL)
		zmq_close(sock);
	if (ctx != NULL)
		zmq_ctx_term(ctx);
	for (int i = 0; i < 2; i++)
		if (pipefd[i] >= 0)
			close(pipefd[i]);
	if (child > 0) {   /* only after an error */
		kill(child, SIGTERM);
		waitpid(child, NULL, 0);
	}
	if (r.txn != NULL)
		mdb_txn_abort(r.txn);
	if (r.env != NULL)
		mdb_env_close(r.env);
	for (size_t i = r.next_head; i < r.nheads; i++)
		head_signed_fini(&r.heads[i]);
	sig_key_destroy(&r.key);
	return rc;
}

int main(int argc, char **argv)
{
	struct keys k;
	double t0 = now_s();

	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: baseline_zmq DATADIR DATASET OUTDIR [BATCH_BYTES]\n");
		return 2;
	}
	if (zmq_curve_keypair(k.server_pub, k.server_sec) != 0 ||
	    zmq_curve_keypair(k.client_pub, k.client_sec) != 0) {
		fprintf(stderr, "baseline_zmq: this libzmq has no CURVE\n");
		return 1;
	}
	return receive_all(argc, argv, &k, t0) == 0 ? 0 : 1;
}
