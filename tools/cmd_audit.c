/*
 * cmd_audit.c - musubi audit: fetch a dataset's whole signed history from
 * one or more nodes and check it (registry/audit.c decides; this file only
 * asks the nodes and reports), --export a bundle that stock openssl and a
 * POSIX shell script can check, --prove a row and --check such a proof
 * offline. docs/AUDIT.md says what each check and each file means.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "audit.h"
#include "cli.h"
#include "client.h"
#include "head.h"
#include "musubi_config.h"
#include "mu_err.h"
#include "store.h"
#include "trust.h"
#include "util.h"

/* deploy/audit/verify-bundle.sh, compiled in at build time (tools/meson.build):
 * the binary carries the one copy an export ships. */
extern const char audit_verify_bundle_sh[];
extern const size_t audit_verify_bundle_sh_len;

#define MAX_HEADS ((size_t)1 << 24)   /* a node serving more is not believed */
#define MAX_TRUST 4096

static const char audit_usage[] =
	"usage: musubi audit --node ENDPOINT [--node ENDPOINT...] --dataset MEMBER/NAME\n"
	"                    [--dir DATADIR | --server-key FILE...] [--key KEYDIR]\n"
	"                    [--trust FILE] [--min-witnesses K] [--export DIR]\n"
	"                    [--timeout MS] [--json]\n"
	"       musubi audit --node ENDPOINT --prove MEMBER/NAME:SEQ [--out FILE]\n"
	"                    [--dir DATADIR | --server-key FILE] [--key KEYDIR] [--trust FILE]\n"
	"       musubi audit --check FILE [--trust FILE | --dir DATADIR] [--json]\n\n"
	"Fetch a dataset's whole signed history from each node (heads, entries, trust\n"
	"lists, consistency proofs, cosignatures) and check it: every head's signature\n"
	"under the trust list of its time, every entry against the roots, each node's\n"
	"consistency proofs, that heads only grow, that the nodes were shown one\n"
	"history (a fork is two signed heads that do not extend one another), and\n"
	"who witnessed each head. Exit 1 when anything is wrong.\n\n"
	"  --trust FILE      the trust list you trust (the federation's first); by\n"
	"                    default the oldest one in DATADIR's store, else the node's\n"
	"  --server-key FILE a node's transport.pub.pem, once per --node in order;\n"
	"                    or --dir DATADIR whose trust list names the nodes\n"
	"  --min-witnesses K fail every head with fewer than K witnesses\n"
	"  --export DIR      write a bundle that stock openssl checks (DIR/README)\n"
	"  --prove D:SEQ     write a proof of entry SEQ of dataset D (a query row's\n"
	"                    _publisher/_seq) in the newest head, to stdout or --out\n"
	"  --check FILE      verify such a proof with no node\n";

/* ---- fetching ---- */

struct blobs {
	struct audit_blob *v;
	size_t n, cap;
};

static int push(struct blobs *b, const void *data, size_t len)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 64;
		struct audit_blob *g = realloc(b->v, cap * sizeof(*g));
		if (g == NULL)
			return -ENOMEM;
		b->v = g;
		b->cap = cap;
	}
	if ((b->v[b->n].data = malloc(len ? len : 1)) == NULL)
		return -ENOMEM;
	memcpy(b->v[b->n].data, data, len);
	b->v[b->n++].len = len;
	return 0;
}

static int blob_copy(struct audit_blob *out, const ProtobufCBinaryData *b)
{
	if ((out->data = malloc(b->len ? b->len : 1)) == NULL)
		return -ENOMEM;
	memcpy(out->data, b->data, b->len);
	out->len = b->len;
	return 0;
}

static void blobs_fini(struct blobs *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->v[i].data);
	free(b->v);
	memset(b, 0, sizeof(*b));
}

/* What one node served. */
struct fetched {
	const char *endpoint;
	struct blobs heads, entries, trust, cosigs;
	struct audit_consistency *proofs;
	size_t nproofs;
	char error[600];
	int no_cosigs;   /* the node does not serve cosignatures (an older musubid) */
};

static void fetched_fini(struct fetched *f)
{
	blobs_fini(&f->heads);
	blobs_fini(&f->entries);
	blobs_fini(&f->trust);
	blobs_fini(&f->cosigs);
	for (size_t i = 0; i < f->nproofs; i++) {
		free(f->proofs[i].hashes);
		free((char *)f->proofs[i].error);
	}
	free(f->proofs);
}

static struct audit_source source_of(const struct fetched *f)
{
	return (struct audit_source){
		.name = f->endpoint, .error = f->error[0] ? f->error : NULL,
		.heads = f->heads.v, .nheads = f->heads.n,
		.entries = f->entries.v, .nentries = f->entries.n,
		.trust = f->trust.v, .ntrust = f->trust.n,
		.proofs = f->proofs, .nproofs = f->nproofs,
		.cosigs = f->cosigs.v, .ncosigs = f->cosigs.n,
	};
}

struct conn {
	struct client *c;
	int timeout_ms;
	char why[512];
};

/* One request; on failure *why holds the node's words or ours. */
static int call(struct conn *k, Musubi__MsgType type, const ProtobufCMessage *req,
		struct wire_msg *reply)
{
	int rc = client_call(k->c, type, req, k->timeout_ms, reply, k->why, sizeof(k->why));

	if (rc < 0 && k->why[0] == '\0')
		snprintf(k->why, sizeof(k->why), "%s", mu_strerror(rc));
	return rc;
}

#define UNPACK_REPLY(type, lower, reply) \
	((type *)lower##__unpack(NULL, (reply)->env->payload.len, (reply)->env->payload.data))

static int fetch_heads(struct conn *k, const char *dataset, struct fetched *f)
{
	uint64_t after = 0;
	int rc;

	for (;;) {
		Musubi__GetHeads q = MUSUBI__GET_HEADS__INIT;
		struct wire_msg reply;
		int progressed = 0;
		q.dataset = (char *)dataset;
		q.after_size = after;
		if ((rc = call(k, MUSUBI__MSG_TYPE__MSG_GET_HEADS, &q.base, &reply)) == -ENOENT)
			return 0;   /* the node does not hold the dataset */
		if (rc < 0)
			return rc;
		Musubi__Heads *h = UNPACK_REPLY(Musubi__Heads, musubi__heads, &reply);
		rc = h == NULL ? MU_E_PROTO : 0;
		for (size_t i = 0; h != NULL && i < h->n_heads && rc == 0; i++) {
			struct head_signed hs;
			rc = f->heads.n >= MAX_HEADS ? MU_E_TOOBIG
			     : push(&f->heads, h->heads[i]->signed_head.data, h->heads[i]->signed_head.len);
			if (rc == 0 && head_decode(h->heads[i]->signed_head.data,
						   h->heads[i]->signed_head.len, &hs) == 0) {
				if (hs.hd->h.size > after) {
					after = hs.hd->h.size;
					progressed = 1;
				}
				head_signed_fini(&hs);
			}
		}
		if (h)
			musubi__heads__free_unpacked(h, NULL);
		wire_msg_fini(&reply);
		if (rc < 0) {
			snprintf(k->why, sizeof(k->why), "its heads: %s", mu_strerror(rc));
			return rc;
		}
		/* A node that stops moving forward has nothing more to give. */
		if (!progressed)
			return 0;
	}
}

/* Entries [0, to): a node that stops early leaves the audit to say the
 * history is truncated. */
static int fetch_entries(struct conn *k, const char *dataset, uint64_t to, struct fetched *f)
{
	while (f->entries.n < to) {
		Musubi__GetEntries q = MUSUBI__GET_ENTRIES__INIT;
		struct wire_msg reply;
		int rc;
		q.dataset = (char *)dataset;
		q.from = f->entries.n;
		q.to = to;
		q.byte_budget = WIRE_MAX_ENTRIES_REPLY;
		if ((rc = call(k, MUSUBI__MSG_TYPE__MSG_GET_ENTRIES, &q.base, &reply)) == -ENOENT)
			return 0;
		if (rc < 0)
			return rc;
		Musubi__Entries *e = UNPACK_REPLY(Musubi__Entries, musubi__entries, &reply);
		size_t before = f->entries.n;
		rc = e == NULL ? MU_E_PROTO : 0;
		for (size_t i = 0; e != NULL && e->from == before && i < e->n_entries && rc == 0 &&
				   f->entries.n < to; i++)
			rc = push(&f->entries, e->entries[i].data, e->entries[i].len);
		if (e)
			musubi__entries__free_unpacked(e, NULL);
		wire_msg_fini(&reply);
		if (rc < 0) {
			snprintf(k->why, sizeof(k->why), "its entries: %s", mu_strerror(rc));
			return rc;
		}
		if (f->entries.n == before)
			return 0;
	}
	return 0;
}

static int fetch_trust(struct conn *k, struct blobs *out)
{
	uint64_t after = 0;

	for (;;) {
		Musubi__GetTrust q = MUSUBI__GET_TRUST__INIT;
		struct wire_msg reply;
		int rc;
		q.after_version = after;
		if ((rc = call(k, MUSUBI__MSG_TYPE__MSG_GET_TRUST, &q.base, &reply)) < 0)
			return rc;
		Musubi__TrustLists *t = UNPACK_REPLY(Musubi__TrustLists, musubi__trust_lists, &reply);
		size_t n = t ? t->n_lists : 0;
		rc = t == NULL ? MU_E_PROTO : 0;
		for (size_t i = 0; i < n && rc == 0; i++)
			rc = out->n >= MAX_TRUST ? MU_E_TOOBIG
						  : push(out, t->lists[i].data, t->lists[i].len);
		if (t)
			musubi__trust_lists__free_unpacked(t, NULL);
		wire_msg_fini(&reply);
		if (rc < 0) {
			snprintf(k->why, sizeof(k->why), "its trust lists: %s", mu_strerror(rc));
			return rc;
		}
		if (n == 0)
			return 0;
		after += n;
	}
}

/* A Proof reply's hashes into *hashes (the caller frees). */
static int proof_hashes(const struct wire_msg *reply, merkle_hash **hashes, size_t *n)
{
	Musubi__Proof *p = UNPACK_REPLY(Musubi__Proof, musubi__proof, reply);
	int rc = p == NULL || p->n_hashes > MERKLE_MAX_DEPTH ? MU_E_PROTO : 0;

	*hashes = NULL;
	*n = 0;
	if (rc == 0 && (*hashes = calloc(p->n_hashes + 1, sizeof(**hashes))) == NULL)
		rc = -ENOMEM;
	for (size_t i = 0; rc == 0 && i < p->n_hashes; i++) {
		if (p->hashes[i].len != MERKLE_HASH_LEN) {
			rc = MU_E_PROTO;
			break;
		}
		memcpy((*hashes)[(*n)++], p->hashes[i].data, MERKLE_HASH_LEN);
	}
	if (p)
		musubi__proof__free_unpacked(p, NULL);
	return rc;
}

/* The node's consistency proof between each two successive heads. A
 * refusal is kept with the proof for the audit to judge. */
static int fetch_proofs(struct conn *k, const char *dataset, const uint64_t *sizes, size_t n,
			struct fetched *f)
{
	if ((f->proofs = calloc(n + 1, sizeof(*f->proofs))) == NULL)
		return -ENOMEM;
	for (size_t i = 1; i < n; i++) {
		Musubi__GetConsistency q = MUSUBI__GET_CONSISTENCY__INIT;
		struct audit_consistency *p = &f->proofs[f->nproofs];
		struct wire_msg reply;
		int rc;
		if (sizes[i - 1] == 0)
			continue;
		q.dataset = (char *)dataset;
		q.old_size = p->old_size = sizes[i - 1];
		q.new_size = p->new_size = sizes[i];
		f->nproofs++;
		rc = call(k, MUSUBI__MSG_TYPE__MSG_GET_CONSISTENCY, &q.base, &reply);
		if (rc == MU_E_TIMEOUT)
			return rc;
		if (rc == 0) {
			rc = proof_hashes(&reply, &p->hashes, &p->n);
			wire_msg_fini(&reply);
			if (rc < 0)
				snprintf(k->why, sizeof(k->why), "the proof does not decode");
		}
		if (rc < 0 && (p->error = strdup(k->why)) == NULL)
			return -ENOMEM;
	}
	return 0;
}

static int fetch_cosigs(struct conn *k, const char *dataset, struct fetched *f)
{
	Musubi__GetCosigs q = MUSUBI__GET_COSIGS__INIT;
	struct wire_msg reply;
	int rc;

	q.dataset = (char *)dataset;
	q.size = 0;
	if ((rc = call(k, MUSUBI__MSG_TYPE__MSG_GET_COSIGS, &q.base, &reply)) == MU_E_TIMEOUT)
		return rc;
	if (rc < 0) {
		/* An older node does not know the request: it holds none. */
		f->no_cosigs = 1;
		return 0;
	}
	Musubi__Cosigs *cs = UNPACK_REPLY(Musubi__Cosigs, musubi__cosigs, &reply);
	rc = cs == NULL ? MU_E_PROTO : 0;
	for (size_t i = 0; cs != NULL && i < cs->n_cosigs && rc == 0; i++)
		rc = push(&f->cosigs, cs->cosigs[i].data, cs->cosigs[i].len);
	if (cs)
		musubi__cosigs__free_unpacked(cs, NULL);
	wire_msg_fini(&reply);
	if (rc < 0)
		snprintf(k->why, sizeof(k->why), "its cosignatures: %s", mu_strerror(rc));
	return rc;
}

struct opts {
	const char *endpoints[AUDIT_MAX_SOURCES], *server_keys[AUDIT_MAX_SOURCES];
	size_t nnodes, nkeys;
	const char *dataset, *dir, *keydir, *trust, *export_dir, *prove, *out, *check;
	unsigned min_witnesses;
	int timeout_ms, json;
};

/* Connect to node i. A key that cannot be found is the command line's
 * fault: 0 / EXIT_USAGE-worthy MU_E_USAGE; a node that cannot be reached
 * is a finding of the audit. */
static int connect_node(const struct opts *o, size_t i, struct conn *k)
{
	uint8_t key[32];
	const char *pem = o->nkeys == 0 ? NULL : o->server_keys[o->nkeys == 1 ? 0 : i];
	int rc;

	memset(k, 0, sizeof(*k));
	k->timeout_ms = o->timeout_ms;
	if ((rc = client_server_key(o->endpoints[i], pem, o->dir, key, k->why, sizeof(k->why))) < 0) {
		cli_error("audit", "%s", k->why);
		return MU_E_USAGE;
	}
	if ((rc = client_open(o->endpoints[i], key, o->keydir, &k->c)) < 0)
		snprintf(k->why, sizeof(k->why), "cannot connect: %s", mu_strerror(rc));
	return rc;
}

static int fetch(const struct opts *o, size_t i, struct fetched *f)
{
	struct conn k;
	uint64_t *sizes = NULL;
	size_t nsizes = 0;
	int rc;

	f->endpoint = o->endpoints[i];
	if ((rc = connect_node(o, i, &k)) == MU_E_USAGE)
		return rc;
	if (rc == 0 && (rc = fetch_heads(&k, o->dataset, f)) == 0 &&
	    (rc = audit_head_sizes(f->heads.v, f->heads.n, &sizes, &nsizes)) == 0 &&
	    (rc = fetch_entries(&k, o->dataset, nsizes ? sizes[nsizes - 1] : 0, f)) == 0 &&
	    (rc = fetch_trust(&k, &f->trust)) == 0 &&
	    (rc = fetch_proofs(&k, o->dataset, sizes, nsizes, f)) == 0)
		rc = fetch_cosigs(&k, o->dataset, f);
	if (rc == -ENOMEM) {
		cli_error("audit", "out of memory");
	} else if (rc < 0) {
		snprintf(f->error, sizeof(f->error), "%s", k.why);
		rc = 0;
	}
	free(sizes);
	client_close(&k.c);
	return rc;
}

/* The list the auditor trusts: --trust FILE, else the oldest list in
 * DATADIR's store. *what says which, for the report. */
static int pinned_list(const struct opts *o, struct audit_blob *out, const char **what)
{
	struct store *st = NULL;
	struct store_txn t;
	const uint8_t *buf;
	size_t len;
	uint64_t newest;
	int rc;

	memset(out, 0, sizeof(*out));
	*what = NULL;
	if (o->trust != NULL) {
		if ((rc = trust_file_read(o->trust, &out->data, &out->len)) < 0)
			cli_error("audit", "cannot read %s: %s", o->trust, mu_strerror(rc));
		*what = o->trust;
		return rc;
	}
	if (o->dir == NULL || store_open(o->dir, STORE_RDONLY, &st) < 0)
		return 0;
	if ((rc = store_read_begin(st, &t)) == 0) {
		if (store_trust_latest(&t, &newest, &buf, &len) == 0)
			for (uint64_t v = 1; v <= newest; v++)
				if (store_trust_get(&t, v, &buf, &len) == 0) {
					struct blobs b = { 0 };
					if ((rc = push(&b, buf, len)) == 0) {
						*out = b.v[0];
						free(b.v);
						*what = o->dir;
					}
					break;
				}
		store_read_end(&t);
	}
	store_close(&st);
	return rc;
}

/* ---- the report ---- */

/* The first 8 bytes of a key id in hex: what people compare. */
static const char *short_key(const uint8_t *id, char out[17])
{
	sig_hex(id, 8, out);
	return out;
}

static const char *state_name(enum audit_head_state s)
{
	return s == AUDIT_HEAD_VERIFIED ? "verified" : s == AUDIT_HEAD_FORKED ? "forked" : "unchecked";
}

static void join_witnesses(const struct audit_head *h, char *buf, size_t cap)
{
	size_t len = (size_t)snprintf(buf, cap, "%zu", h->witnessed);

	for (size_t i = 0; i < h->nwitnesses && len < cap; i++)
		len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? ", " : " (", h->witnesses[i]);
	if (h->nwitnesses > 0 && len < cap)
		snprintf(buf + len, cap - len, ")");
}

static void print_text(const struct opts *o, const struct audit_report *r,
		       const struct fetched *f, const char *anchor)
{
	char when[32], kid[17], buf[256];

	printf("dataset     %s\n", o->dataset);
	printf("publisher   %s%s%s%s\n", r->publisher, r->publisher_name ? " (" : "",
	       r->publisher_name ? r->publisher_name : "", r->publisher_name ? ")" : "");
	if (r->ntrust > 0)
		printf("trust       lists %" PRIu64 " to %" PRIu64 ", anchored on %s\n", r->trust_first,
		       r->trust_newest, r->trust_pinned ? anchor : "the node's oldest list");
	printf("entries     %" PRIu64 " verified against the signed roots\n\n", r->entries);

	static const char *const nh[] = { "node", "newest head", "entries", "verified", "cosigs",
					  "state" };
	struct cli_table *t = cli_table_new(6, nh);
	for (size_t s = 0; s < r->nnodes; s++) {
		char nw[24], en[24], ve[24], co[24];
		snprintf(nw, sizeof(nw), "%" PRIu64, r->nodes[s].newest);
		snprintf(en, sizeof(en), "%" PRIu64, r->nodes[s].entries);
		snprintf(ve, sizeof(ve), "%" PRIu64, r->nodes[s].verified);
		snprintf(co, sizeof(co), f[s].no_cosigs ? "-" : "%zu", r->nodes[s].cosigs);
		const char *cells[] = { f[s].endpoint, nw, en, ve, co,
					f[s].error[0] ? "unreachable" : r->nodes[s].behind ? "behind" : "ok" };
		cli_table_add(t, cells);
	}
	cli_table_print(t, stdout);
	cli_table_free(&t);

	static const char *const hh[] = { "size", "time", "trust", "key", "witnesses", "nodes",
					  "state" };
	t = cli_table_new(7, hh);
	for (size_t h = 0; h < r->nheads; h++) {
		const struct audit_head *hd = &r->heads[h];
		char size[24], tv[24], nodes[8], wit[200];
		unsigned seen = 0;
		for (uint64_t b = hd->seen_by; b; b &= b - 1)
			seen++;
		snprintf(size, sizeof(size), "%" PRIu64, hd->size);
		snprintf(tv, sizeof(tv), "%" PRIu64, hd->trust_version);
		snprintf(nodes, sizeof(nodes), "%u", seen);
		trust_format_time(hd->time_us, when, sizeof(when));
		join_witnesses(hd, wit, sizeof(wit));
		const char *cells[] = { size, when, tv, short_key(hd->key_id, kid), wit, nodes,
					state_name(hd->state) };
		cli_table_add(t, cells);
	}
	printf("\n");
	cli_table_print(t, stdout);
	cli_table_free(&t);

	printf("\nschema versions\n");
	for (size_t i = 0; i < r->nschemas; i++)
		printf("  %-32s entries %" PRIu64 " to %" PRIu64 " (%" PRIu64 ")\n", r->schemas[i].ref,
		       r->schemas[i].first_seq, r->schemas[i].last_seq, r->schemas[i].entries);
	printf("keys\n");
	for (size_t i = 0; i < r->nkeys; i++) {
		sig_hex(r->keys[i].key_id, SIG_KEYID_LEN, buf);
		printf("  %s  %" PRIu64 " heads, sizes %" PRIu64 " to %" PRIu64 "\n", buf,
		       r->keys[i].heads, r->keys[i].first_size, r->keys[i].last_size);
	}
	printf("cosignatures: %zu valid, %zu invalid, %zu naming heads no node served\n",
	       r->cosigs_valid, r->cosigs_invalid, r->cosigs_unmatched);
	for (size_t i = 0; i < r->nnotes; i++)
		printf("note: %s\n", r->notes[i]);
	for (size_t s = 0; s < r->nnodes; s++)
		if (f[s].no_cosigs)
			printf("note: %s does not serve cosignatures (an older musubid)\n", f[s].endpoint);
	if (r->nproblems == 0) {
		printf("\nno problems found\n");
		return;
	}
	printf("\n%zu problem%s:\n", r->nproblems, r->nproblems == 1 ? "" : "s");
	for (size_t i = 0; i < r->nproblems; i++)
		printf("  %-16s %s\n", audit_kind_name(r->problems[i].kind), r->problems[i].message);
}

static json_t *json_hexstr(const uint8_t *b, size_t n)
{
	char buf[2 * SIG_KEYID_LEN + 1];

	sig_hex(b, n, buf);
	return json_string(buf);
}

static void print_json(const struct opts *o, const struct audit_report *r,
		       const struct fetched *f, const char *anchor)
{
	json_t *doc = json_object(), *nodes = json_array(), *heads = json_array(),
	       *schemas = json_array(), *keys = json_array(), *problems = json_array(),
	       *notes = json_array();
	char when[32];

	for (size_t s = 0; s < r->nnodes; s++)
		json_array_append_new(nodes, json_pack("{s:s,s:I,s:I,s:I,s:I,s:b,s:b,s:s?}",
			"node", f[s].endpoint, "newest", (json_int_t)r->nodes[s].newest,
			"entries", (json_int_t)r->nodes[s].entries,
			"verified", (json_int_t)r->nodes[s].verified,
			"cosigs", (json_int_t)r->nodes[s].cosigs, "behind", r->nodes[s].behind,
			"serves_cosigs", !f[s].no_cosigs, "error", f[s].error[0] ? f[s].error : NULL));
	for (size_t h = 0; h < r->nheads; h++) {
		const struct audit_head *hd = &r->heads[h];
		json_t *w = json_array(), *seen = json_array();
		for (size_t i = 0; i < hd->nwitnesses; i++)
			json_array_append_new(w, json_string(hd->witnesses[i]));
		for (size_t s = 0; s < r->nnodes; s++)
			if (hd->seen_by & (UINT64_C(1) << s))
				json_array_append_new(seen, json_string(f[s].endpoint));
		trust_format_time(hd->time_us, when, sizeof(when));
		json_array_append_new(heads, json_pack("{s:I,s:o,s:s,s:I,s:I,s:o,s:o,s:o,s:I,s:o,s:s,s:b}",
			"size", (json_int_t)hd->size, "root", json_hexstr(hd->root, 32), "time", when,
			"time_us", (json_int_t)hd->time_us, "trust_version", (json_int_t)hd->trust_version,
			"key_id", json_hexstr(hd->key_id, SIG_KEYID_LEN),
			"head_sha256", json_hexstr(hd->sha256, 32), "witnesses", w,
			"witnessed", (json_int_t)hd->witnessed, "nodes", seen, "state", state_name(hd->state),
			"history", hd->history));
	}
	for (size_t i = 0; i < r->nschemas; i++)
		json_array_append_new(schemas, json_pack("{s:s,s:I,s:I,s:I}", "schema", r->schemas[i].ref,
			"entries", (json_int_t)r->schemas[i].entries,
			"first_seq", (json_int_t)r->schemas[i].first_seq,
			"last_seq", (json_int_t)r->schemas[i].last_seq));
	for (size_t i = 0; i < r->nkeys; i++)
		json_array_append_new(keys, json_pack("{s:o,s:I,s:I,s:I}",
			"key_id", json_hexstr(r->keys[i].key_id, SIG_KEYID_LEN),
			"heads", (json_int_t)r->keys[i].heads,
			"first_size", (json_int_t)r->keys[i].first_size,
			"last_size", (json_int_t)r->keys[i].last_size));
	for (size_t i = 0; i < r->nproblems; i++) {
		const struct audit_problem *p = &r->problems[i];
		json_array_append_new(problems, json_pack("{s:s,s:s?,s:I,s:s}", "kind",
			audit_kind_name(p->kind), "node", p->source >= 0 ? f[p->source].endpoint : NULL,
			"size", (json_int_t)p->size, "message", p->message));
	}
	for (size_t i = 0; i < r->nnotes; i++)
		json_array_append_new(notes, json_string(r->notes[i]));
	json_object_set_new(doc, "dataset", json_string(o->dataset));
	json_object_set_new(doc, "ok", json_boolean(r->nproblems == 0));
	json_object_set_new(doc, "publisher", json_string(r->publisher));
	json_object_set_new(doc, "publisher_name", r->publisher_name ? json_string(r->publisher_name)
								    : json_null());
	json_object_set_new(doc, "trust", json_pack("{s:I,s:I,s:s?}", "first",
		(json_int_t)r->trust_first, "newest", (json_int_t)r->trust_newest, "anchored_on",
		r->trust_pinned ? anchor : NULL));
	json_object_set_new(doc, "entries", json_integer((json_int_t)r->entries));
	json_object_set_new(doc, "nodes", nodes);
	json_object_set_new(doc, "heads", heads);
	json_object_set_new(doc, "schemas", schemas);
	json_object_set_new(doc, "keys", keys);
	json_object_set_new(doc, "cosignatures", json_pack("{s:I,s:I,s:I}",
		"valid", (json_int_t)r->cosigs_valid, "invalid", (json_int_t)r->cosigs_invalid,
		"unmatched", (json_int_t)r->cosigs_unmatched));
	json_object_set_new(doc, "problems", problems);
	json_object_set_new(doc, "notes", notes);
	json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	putchar('\n');
	json_decref(doc);
}

/* ---- the bundle ---- */

static int write_file(const char *dir, const char *name, const void *a, size_t alen,
		      const void *b, size_t blen)
{
	char path[4096];
	FILE *fp;
	int rc = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((fp = fopen(path, "wb")) == NULL)
		return -errno;
	if ((alen && fwrite(a, 1, alen, fp) != alen) || (blen && fwrite(b, 1, blen, fp) != blen))
		rc = -EIO;
	if (fclose(fp) != 0 && rc == 0)
		rc = -errno;
	return rc;
}

/* base.signed, base.msg (prefix || TreeHead) and base.sig of a head. */
static int write_head(const char *dir, const char *base, const struct audit_blob *signed_head)
{
	struct rec_signed_head_decoded *d = NULL;
	char name[256];
	int rc;

	if ((rc = rec_signed_head_decode(signed_head->data, signed_head->len, &d)) < 0)
		return rc;
	snprintf(name, sizeof(name), "%s.signed", base);
	if ((rc = write_file(dir, name, signed_head->data, signed_head->len, NULL, 0)) == 0) {
		snprintf(name, sizeof(name), "%s.msg", base);
		rc = write_file(dir, name, SIG_CTX_TREE_HEAD, strlen(SIG_CTX_TREE_HEAD), d->head,
				d->head_len);
	}
	if (rc == 0) {
		snprintf(name, sizeof(name), "%s.sig", base);
		rc = write_file(dir, name, d->sig, d->sig_len, NULL, 0);
	}
	rec_signed_head_free(&d);
	return rc;
}

static const char *key_file(const uint8_t key_id[SIG_KEYID_LEN], char *buf, size_t cap)
{
	char kid[17];

	snprintf(buf, cap, "keys/%s.pub.pem", short_key(key_id, kid));
	return buf;
}

static int mkdir_in(const char *dir, const char *sub)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	return mkdir(path, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

static void write_readme(FILE *fp, const struct opts *o, const struct audit_report *r,
			 uint64_t newest, size_t nheads)
{
	char when[32];

	trust_format_time(mu_now_us(), when, sizeof(when));
	fprintf(fp,
		"musubi audit bundle: %s\n"
		"made by musubi %s at %s from %s%s\n"
		"%" PRIu64 " entries, %zu signed heads, the newest at size %" PRIu64 "%s\n\n",
		o->dataset, MUSUBI_VERSION, when, o->endpoints[0], o->nnodes > 1 ? " and others" : "",
		r->entries, nheads, newest,
		r->nproblems ? "\nTHE AUDIT FOUND PROBLEMS: see its report." : "");
	fprintf(fp,
		"Files\n"
		"  entries/NNNNNNNN.bin  each entry of the log exactly as signed, entry 0 first\n"
		"  heads/SIZE.signed     each signed tree head as nodes keep it (a SignedHead)\n"
		"  heads/SIZE.msg        exactly the bytes the publisher signed:\n"
		"                        \"musubi tree head v1\\n\" followed by the TreeHead\n"
		"  heads/SIZE.sig        the 64-byte Ed25519 signature over heads/SIZE.msg\n"
		"  roots.txt             one line per head: SIZE ROOT KEYFILE (root in hex)\n"
		"  publisher.pub.pem     the key that signed the newest head\n"
		"  keys/ID.pub.pem       every key that signed a head (ID: first 8 bytes of its id)\n"
		"  trust/VERSION.tl      the trust lists that name the publisher's keys\n"
		"  fork/                 only when the publisher signed two histories: for\n"
		"                        each pair N, N.a.* and N.b.* (as heads/) and N.keys\n"
		"  verify-bundle.sh      recomputes every leaf hash and root with openssl alone\n"
		"                        and checks every signature: sh verify-bundle.sh\n\n");
	fprintf(fp,
		"Check one signature with stock OpenSSL (3.0 or later):\n\n"
		"  openssl pkeyutl -verify -pubin -inkey publisher.pub.pem -rawin \\\n"
		"      -in heads/%" PRIu64 ".msg -sigfile heads/%" PRIu64 ".sig\n\n"
		"Check everything (POSIX sh, od, awk and openssl; no musubi needed):\n\n"
		"  sh verify-bundle.sh\n\n"
		"A leaf hash is SHA-256(0x00 || entry bytes):\n\n"
		"  printf '\\000' | cat - entries/00000000.bin | openssl dgst -sha256\n\n"
		"and a node hash SHA-256(0x01 || left || right) (RFC 9162). The script\n"
		"believes the key files it is given: compare publisher.pub.pem with the key\n"
		"that the federation's trust list names for member %s (musubi trust show\n"
		"trust/%" PRIu64 ".tl, or docs/AUDIT.md for the byte format). docs/AUDIT.md\n"
		"of musubi describes every byte format, so a verifier can be written in any\n"
		"language.\n",
		newest, newest, r->publisher, r->trust_newest);
}

static int export_bundle(const char *dir, const struct opts *o, const struct audit_report *r,
			 const struct fetched *f)
{
	static const char *const subdirs[] = { "entries", "heads", "keys", "trust", "fork" };
	const struct audit_head *newest = NULL;
	char name[4200], kf[64], hex[65];
	struct sig_key *key = NULL;
	FILE *roots = NULL, *fp = NULL;
	size_t nheads = 0;
	DIR *d;
	int rc = 0;

	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	if ((d = opendir(dir)) == NULL)
		return -errno;
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			rc = MU_E_EXISTS;
	closedir(d);
	for (size_t i = 0; rc == 0 && i < sizeof(subdirs) / sizeof(subdirs[0]); i++)
		if (strcmp(subdirs[i], "fork") != 0 || r->nforks > 0)
			rc = mkdir_in(dir, subdirs[i]);
	for (uint64_t seq = 0; rc == 0 && seq < r->entries; seq++) {
		const struct audit_blob *e = &f[r->reference].entries.v[seq];
		snprintf(name, sizeof(name), "entries/%08" PRIu64 ".bin", seq);
		rc = write_file(dir, name, e->data, e->len, NULL, 0);
	}
	for (size_t i = 0; rc == 0 && i < r->nkeys; i++)
		if ((rc = sig_key_from_raw_public(r->keys[i].raw, &key)) == 0) {
			snprintf(name, sizeof(name), "%s/%s", dir, key_file(r->keys[i].key_id, kf,
									    sizeof(kf)));
			rc = sig_key_write_public_pem(key, name);
			sig_key_destroy(&key);
		}
	snprintf(name, sizeof(name), "%s/roots.txt", dir);
	if (rc == 0 && (roots = fopen(name, "w")) == NULL)
		rc = -errno;
	for (size_t h = 0; rc == 0 && h < r->nheads; h++) {
		const struct audit_head *hd = &r->heads[h];
		if (!hd->history)
			continue;
		snprintf(name, sizeof(name), "heads/%" PRIu64, hd->size);
		rc = write_head(dir, name, hd->signed_head);
		sig_hex(hd->root, 32, hex);
		fprintf(roots, "%" PRIu64 " %s %s\n", hd->size, hex, key_file(hd->key_id, kf,
									       sizeof(kf)));
		newest = hd;
		nheads++;
	}
	if (roots != NULL && fclose(roots) != 0 && rc == 0)
		rc = -errno;
	for (size_t i = 0; rc == 0 && i < r->nforks; i++) {
		const struct audit_head *a = &r->heads[r->forks[i].a], *b = &r->heads[r->forks[i].b];
		char ka[64], kb[64], line[160];
		snprintf(name, sizeof(name), "fork/%zu.a", i + 1);
		if ((rc = write_head(dir, name, a->signed_head)) < 0)
			break;
		snprintf(name, sizeof(name), "fork/%zu.b", i + 1);
		if ((rc = write_head(dir, name, b->signed_head)) < 0)
			break;
		snprintf(name, sizeof(name), "fork/%zu.keys", i + 1);
		snprintf(line, sizeof(line), "%s %s\n", key_file(a->key_id, ka, sizeof(ka)),
			 key_file(b->key_id, kb, sizeof(kb)));
		rc = write_file(dir, name, line, strlen(line), NULL, 0);
	}
	for (size_t i = 0; rc == 0 && i < r->ntrust; i++) {
		struct trust_signed s;
		char why[256];
		if ((rc = trust_decode(r->trust[i]->data, r->trust[i]->len, &s, why, sizeof(why))) == 0) {
			snprintf(name, sizeof(name), "trust/%" PRIu64 ".tl", s.list.version);
			rc = write_file(dir, name, r->trust[i]->data, r->trust[i]->len, NULL, 0);
		}
		trust_signed_fini(&s);
	}
	for (size_t i = 0; rc == 0 && newest != NULL && i < r->nkeys; i++)
		if (memcmp(r->keys[i].key_id, newest->key_id, SIG_KEYID_LEN) == 0 &&
		    (rc = sig_key_from_raw_public(r->keys[i].raw, &key)) == 0) {
			snprintf(name, sizeof(name), "%s/publisher.pub.pem", dir);
			rc = sig_key_write_public_pem(key, name);
			sig_key_destroy(&key);
		}
	if (rc == 0)
		rc = write_file(dir, "verify-bundle.sh", audit_verify_bundle_sh,
				audit_verify_bundle_sh_len, NULL, 0);
	snprintf(name, sizeof(name), "%s/verify-bundle.sh", dir);
	if (rc == 0 && chmod(name, 0755) < 0)
		rc = -errno;
	snprintf(name, sizeof(name), "%s/README", dir);
	if (rc == 0 && (fp = fopen(name, "w")) == NULL)
		rc = -errno;
	if (rc == 0) {
		write_readme(fp, o, r, newest ? newest->size : 0, nheads);
		if (fclose(fp) != 0)
			rc = -errno;
	}
	return rc;
}

/* ---- row proofs ---- */

static int prove(const struct opts *o, const struct audit_blob *pin)
{
	const char *colon = strrchr(o->prove, ':');
	char *dataset = NULL, *end, why[600], *json = NULL, when[32];
	struct audit_blob sh = { 0 }, entry = { 0 };
	struct audit_row_proof pr = { 0 };
	struct blobs trust = { 0 };
	merkle_hash *path = NULL;
	size_t npath = 0;
	uint64_t seq, size = 0;
	struct wire_msg reply;
	struct head_signed hs;
	struct conn k = { 0 };
	int rc, ret = EXIT_FAILURE_;

	if (colon == NULL || colon == o->prove || colon[1] < '0' || colon[1] > '9' ||
	    (seq = strtoull(colon + 1, &end, 10), *end != '\0')) {
		cli_error("audit", "--prove wants MEMBER/NAME:SEQ (the _publisher/_seq of a row)");
		return EXIT_USAGE;
	}
	if ((dataset = strndup(o->prove, (size_t)(colon - o->prove))) == NULL)
		goto out;
	if ((rc = connect_node(o, 0, &k)) < 0) {
		if (rc != MU_E_USAGE)
			cli_error("audit", "%s: %s", o->endpoints[0], k.why);
		goto out;
	}
	/* The newest head, the entry, its inclusion proof in that head. */
	Musubi__ListHeads lq = MUSUBI__LIST_HEADS__INIT;
	lq.n_datasets = 1;
	lq.datasets = &dataset;
	if ((rc = call(&k, MUSUBI__MSG_TYPE__MSG_LIST_HEADS, &lq.base, &reply)) == 0) {
		Musubi__Heads *h = UNPACK_REPLY(Musubi__Heads, musubi__heads, &reply);
		for (size_t i = 0; h != NULL && i < h->n_heads && sh.data == NULL; i++)
			if (strcmp(h->heads[i]->dataset, dataset) == 0)
				rc = blob_copy(&sh, &h->heads[i]->signed_head);
		if (h)
			musubi__heads__free_unpacked(h, NULL);
		wire_msg_fini(&reply);
	}
	if (rc < 0 || sh.data == NULL || head_decode(sh.data, sh.len, &hs) < 0) {
		cli_error("audit", "%s serves no signed head of %s%s%s", o->endpoints[0], dataset,
			  rc < 0 ? ": " : "", rc < 0 ? k.why : "");
		goto out;
	}
	size = hs.hd->h.size;
	trust_format_time(hs.hd->h.time_us, when, sizeof(when));
	head_signed_fini(&hs);
	if (seq >= size) {
		cli_error("audit", "the newest signed head of %s covers %" PRIu64 " entries: entry %"
			  PRIu64 " is not signed yet", dataset, size, seq);
		goto out;
	}
	Musubi__GetEntries eq = MUSUBI__GET_ENTRIES__INIT;
	eq.dataset = dataset;
	eq.from = seq;
	eq.to = seq + 1;
	if ((rc = call(&k, MUSUBI__MSG_TYPE__MSG_GET_ENTRIES, &eq.base, &reply)) == 0) {
		Musubi__Entries *e = UNPACK_REPLY(Musubi__Entries, musubi__entries, &reply);
		rc = e != NULL && e->from == seq && e->n_entries > 0 ? blob_copy(&entry, &e->entries[0])
								     : MU_E_PROTO;
		if (e)
			musubi__entries__free_unpacked(e, NULL);
		wire_msg_fini(&reply);
	}
	Musubi__GetInclusion iq = MUSUBI__GET_INCLUSION__INIT;
	iq.dataset = dataset;
	iq.index = seq;
	iq.size = size;
	if (rc == 0 && (rc = call(&k, MUSUBI__MSG_TYPE__MSG_GET_INCLUSION, &iq.base, &reply)) == 0) {
		rc = proof_hashes(&reply, &path, &npath);
		wire_msg_fini(&reply);
	}
	if (rc == 0)
		rc = fetch_trust(&k, &trust);
	if (rc < 0) {
		cli_error("audit", "%s: %s", o->endpoints[0], k.why[0] ? k.why : mu_strerror(rc));
		goto out;
	}
	/* Never hand out a proof that does not hold. */
	if ((rc = audit_proof_make(dataset, seq, &entry, path, npath, &sh, trust.v, trust.n,
				   pin->data ? pin : NULL, &pr, why, sizeof(why))) < 0) {
		cli_error("audit", "what %s serves does not prove %s #%" PRIu64 ": %s",
			  o->endpoints[0], dataset, seq, why);
		ret = EXIT_PROBLEM;
		goto out;
	}
	if ((rc = audit_proof_encode(&pr, &json)) < 0)
		goto out;
	if (o->out != NULL) {
		if ((rc = trust_file_write(o->out, json, strlen(json), 1)) < 0) {
			cli_error("audit", "cannot write %s: %s", o->out, mu_strerror(rc));
			goto out;
		}
		fprintf(stderr, "proof of %s #%" PRIu64 " in the head at size %" PRIu64 " (signed %s) "
			"written to %s\n", dataset, seq, size, when, o->out);
	} else {
		printf("%s\n", json);
	}
	ret = EXIT_OK;
out:
	free(json);
	audit_proof_fini(&pr);
	blobs_fini(&trust);
	free(path);
	free(entry.data);
	free(sh.data);
	free(dataset);
	client_close(&k.c);
	return ret;
}

static int check(const struct opts *o, const struct audit_blob *pin, const char *anchor)
{
	struct audit_row_proof pr = { 0 };
	struct audit_proof_info info = { 0 };
	uint8_t *buf = NULL;
	size_t len;
	char why[600], ht[32], et[32], kid[17];
	int rc;

	if ((rc = trust_file_read(o->check, &buf, &len)) < 0) {
		cli_error("audit", "cannot read %s: %s", o->check, mu_strerror(rc));
		return EXIT_FAILURE_;
	}
	if ((rc = audit_proof_decode(buf, len, &pr, why, sizeof(why))) == 0)
		rc = audit_proof_check(&pr, pin->data ? pin : NULL, &info, why, sizeof(why));
	free(buf);
	if (rc == -ENOMEM) {
		cli_error("audit", "out of memory");
		audit_proof_fini(&pr);
		return EXIT_FAILURE_;
	}
	trust_format_time(info.head_time_us, ht, sizeof(ht));
	trust_format_time(info.entry_time_us, et, sizeof(et));
	if (o->json) {
		json_t *doc = rc < 0 ? json_pack("{s:b,s:s}", "ok", 0, "error", why)
			: json_pack("{s:b,s:s,s:I,s:s,s:s,s:b,s:s,s:s,s:I,s:s,s:o,s:I,s:I,s:I,s:s?}",
				"ok", 1, "dataset", pr.dataset, "seq", (json_int_t)pr.seq,
				"key", info.key, "schema", info.schema, "deleted", info.deleted,
				"entry_time", et, "publisher", info.publisher, "size", (json_int_t)info.size,
				"head_time", ht, "key_id", json_hexstr(info.key_id, SIG_KEYID_LEN),
				"trust_version", (json_int_t)info.trust_version,
				"trust_first", (json_int_t)info.trust_first,
				"trust_newest", (json_int_t)info.trust_newest,
				"anchored_on", info.pinned ? anchor : NULL);
		json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		putchar('\n');
		json_decref(doc);
	} else if (rc < 0) {
		printf("FAILED: %s does not hold: %s\n", o->check, why);
	} else {
		printf("ok: %s #%" PRIu64 " is in the log that %s signed\n", pr.dataset, pr.seq,
		       info.publisher);
		printf("  row    key %s%s, schema %s, published %s\n", info.key,
		       info.deleted ? " (deleted)" : "", info.schema[0] ? info.schema : "-", et);
		printf("  head   size %" PRIu64 ", signed %s by key %s under trust list version %" PRIu64
		       "\n", info.size, ht, short_key(info.key_id, kid), info.trust_version);
		printf("  trust  lists %" PRIu64 " to %" PRIu64 ", anchored on %s\n", info.trust_first,
		       info.trust_newest, info.pinned ? anchor
			: "the proof's own first list (give --trust FILE to anchor on yours)");
	}
	audit_proof_fini(&pr);
	return rc < 0 ? EXIT_PROBLEM : EXIT_OK;
}

/* ---- the command ---- */

static int audit(const struct opts *o, const struct audit_blob *pin, const char *anchor)
{
	struct fetched *f = calloc(o->nnodes, sizeof(*f));
	struct audit_source src[AUDIT_MAX_SOURCES];
	struct audit_params p = { o->dataset, pin->data ? pin : NULL, o->min_witnesses };
	struct audit_report r = { 0 };
	int rc = f == NULL ? -ENOMEM : 0, ret = EXIT_FAILURE_;

	for (size_t i = 0; rc == 0 && i < o->nnodes; i++)
		if ((rc = fetch(o, i, &f[i])) == 0)
			src[i] = source_of(&f[i]);
	if (rc < 0)
		goto out;
	rc = audit_run(&p, src, o->nnodes, &r);
	if (rc < 0 && rc != MU_E_CORRUPT) {
		cli_error("audit", "%s", mu_strerror(rc));
		goto out;
	}
	if (o->json)
		print_json(o, &r, f, anchor);
	else
		print_text(o, &r, f, anchor);
	ret = r.nproblems > 0 ? EXIT_PROBLEM : EXIT_OK;
	if (o->export_dir == NULL)
		goto out;
	if (r.reference < 0) {
		cli_error("audit", "no node served entries that give a signed root: nothing to export");
		ret = EXIT_FAILURE_;
	} else if ((rc = export_bundle(o->export_dir, o, &r, f)) < 0) {
		cli_error("audit", "cannot write the bundle in %s: %s", o->export_dir,
			  rc == MU_E_EXISTS ? "the directory is not empty" : mu_strerror(rc));
		ret = EXIT_FAILURE_;
	} else {
		fprintf(stderr, "bundle written to %s (check it with: sh %s/verify-bundle.sh)\n",
			o->export_dir, o->export_dir);
	}
out:
	audit_report_fini(&r);
	for (size_t i = 0; f != NULL && i < o->nnodes; i++)
		fetched_fini(&f[i]);
	free(f);
	return ret;
}

int cmd_audit(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "node", required_argument, NULL, 'n' },
		{ "dataset", required_argument, NULL, 'D' },
		{ "dir", required_argument, NULL, 'd' },
		{ "server-key", required_argument, NULL, 'S' },
		{ "key", required_argument, NULL, 'k' },
		{ "trust", required_argument, NULL, 'T' },
		{ "min-witnesses", required_argument, NULL, 'w' },
		{ "export", required_argument, NULL, 'e' },
		{ "prove", required_argument, NULL, 'p' },
		{ "out", required_argument, NULL, 'o' },
		{ "check", required_argument, NULL, 'c' },
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .timeout_ms = 10000 };
	struct audit_blob pin = { 0 };
	const char *anchor = NULL;
	char *end;
	int c, ret;

	if (cli_wants_help(argc, argv, audit_usage))
		return EXIT_OK;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (o.nnodes == AUDIT_MAX_SOURCES)
				goto usage;
			o.endpoints[o.nnodes++] = optarg;
			break;
		case 'S':
			if (o.nkeys == AUDIT_MAX_SOURCES)
				goto usage;
			o.server_keys[o.nkeys++] = optarg;
			break;
		case 'D': o.dataset = optarg; break;
		case 'd': o.dir = optarg; break;
		case 'k': o.keydir = optarg; break;
		case 'T': o.trust = optarg; break;
		case 'e': o.export_dir = optarg; break;
		case 'p': o.prove = optarg; break;
		case 'o': o.out = optarg; break;
		case 'c': o.check = optarg; break;
		case 'j': o.json = 1; break;
		case 't':
			o.timeout_ms = (int)strtol(optarg, &end, 10);
			if (*end != '\0' || o.timeout_ms <= 0)
				goto usage;
			break;
		case 'w':
			o.min_witnesses = (unsigned)strtoul(optarg, &end, 10);
			if (*end != '\0' || optarg[0] == '-')
				goto usage;
			break;
		default:
			goto usage;
		}
	}
	if (optind != argc || (o.nkeys > 0 && o.nkeys != o.nnodes))
		goto usage;
	if (o.check != NULL ? (o.nnodes || o.dataset || o.prove || o.export_dir || o.min_witnesses)
	    : o.prove != NULL ? (o.nnodes != 1 || o.dataset || o.export_dir || o.min_witnesses)
	    : (o.nnodes == 0 || o.dataset == NULL || strchr(o.dataset, '/') == NULL || o.out))
		goto usage;
	if (pinned_list(&o, &pin, &anchor) < 0)
		return EXIT_FAILURE_;
	ret = o.check ? check(&o, &pin, anchor) : o.prove ? prove(&o, &pin) : audit(&o, &pin, anchor);
	free(pin.data);
	return ret;
usage:
	fputs(audit_usage, stderr);
	return EXIT_USAGE;
}
