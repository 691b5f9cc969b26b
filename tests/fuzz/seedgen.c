/*
 * seedgen.c - writes the fuzz seed corpora from real messages: it
 * publishes rows of a real municipal file (Yaizu's public wireless LAN
 * spots) into throw-away nodes through the real publish pipeline, signed
 * with the test key as member FUZZ_MEMBER of the test trust list, redacts
 * one entry, then dumps what the store holds (entries, a redaction stub,
 * rows, signed heads, proofs) and builds from them every wire message a
 * node sends, as the node builds them, and a row proof as musubi audit
 * exports it.
 *
 * usage: fuzz_seedgen OUTDIR DATADIR     (run by tests/fuzz/make-corpus)
 * Writes OUTDIR/{entry,row,head,cosign,trust,wire,envelope,ingest,
 * audit_bundle}/.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "audit.h"
#include "cosign.h"
#include "fuzz.h"
#include "head.h"
#include "merkle.h"
#include "mu_err.h"
#include "publish.h"
#include "redact.h"
#include "schema.h"
#include "trust.h"
#include "wire.h"

#define DATASET FUZZ_MEMBER "/public_wireless_lan"
#define NAME "public_wireless_lan"
#define SCHEMA "public_wireless_lan@1"
#define MAX_LOG 16

static const char *outdir;

static _Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static _Noreturn void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "fuzz_seedgen: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* Write a || b to OUTDIR/sub/name. */
static void save(const char *sub, const char *name, const void *a, size_t alen, const void *b,
		 size_t blen)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", outdir, sub);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		die("mkdir %s: %s", path, strerror(errno));
	snprintf(path, sizeof(path), "%s/%s/%s", outdir, sub, name);
	if ((f = fopen(path, "wb")) == NULL || fwrite(a, 1, alen, f) != alen ||
	    (blen > 0 && fwrite(b, 1, blen, f) != blen) || fclose(f) != 0)
		die("cannot write %s", path);
}

static void pack(const ProtobufCMessage *m, struct rec_buf *out)
{
	out->len = 0;
	if (rec_buf_reserve(out, protobuf_c_message_get_packed_size(m) + 1) < 0)
		die("out of memory");
	out->len = protobuf_c_message_pack(m, out->data);
}

/* ---- nodes ---- */

struct node {
	char dir[256];
	struct store *st;
};

static int init_meta(struct store_txn *t, void *ctx)
{
	int rc = store_meta_put(t, "member", FUZZ_MEMBER, strlen(FUZZ_MEMBER));

	return rc < 0 ? rc : store_meta_put(t, "signing_pub", fuzz_key_raw(), SIG_PUBKEY_LEN);
}

/* A node of member FUZZ_MEMBER in the test trust list: its heads are
 * signed under trust list version 1. */
static void node_new(struct node *n)
{
	struct rec_buf list = { 0 };
	char why[256];

	if (fuzz_store_new(n->dir, sizeof(n->dir), &n->st) < 0 ||
	    store_write(n->st, init_meta, NULL) < 0 || fuzz_trust_list(&list) < 0 ||
	    trust_store_list(n->st, list.data, list.len, why, sizeof(why)) < 0)
		die("cannot make a node under $TMPDIR");
	rec_buf_fini(&list);
}

struct redaction {
	struct rec_buf notice;
	uint64_t seq;
};

static int redact_fn(struct store_txn *t, void *ctx)
{
	struct redaction *r = ctx;
	struct redact_notice n;
	char why[256];
	int rc = redact_check(t, r->notice.data, r->notice.len, fuzz_key_fn, NULL, &n, why,
			      sizeof(why));

	return rc < 0 ? rc : redact_apply(t, r->notice.data, r->notice.len, &n);
}

/* Redact entry seq of the node's log as its publisher does. */
static void redact(struct node *n, uint64_t seq, struct redaction *r)
{
	struct store_txn t;
	struct store_dataset ds;
	const uint8_t *buf;
	size_t len;
	merkle_hash leaf;

	if (store_read_begin(n->st, &t) < 0 || store_dataset_get(&t, DATASET, &ds) < 0 ||
	    store_entry_get(&t, ds.local_id, seq, &buf, &len) < 0)
		die("no entry %llu to redact", (unsigned long long)seq);
	merkle_leaf_hash(buf, len, leaf);
	store_dataset_fini(&ds);
	store_read_end(&t);
	r->seq = seq;
	if (redact_make(fuzz_key(), FUZZ_MEMBER, 1, DATASET, seq, leaf,
			"personal data published by mistake", &r->notice) < 0 ||
	    store_write(n->st, redact_fn, r) < 0)
		die("cannot redact entry %llu", (unsigned long long)seq);
}

/* Publish the header and data rows first..last (1-based) of the source
 * file, leaving out rows skip1 and skip2 (0: none), in batches of 4. */
static void publish_rows(struct node *n, const char *src, int first, int last, int skip1,
			 int skip2)
{
	char path[512], line[8192];
	struct publish_result res;
	struct publish_opts o = { .dataset = NAME, .schema_spec = SCHEMA, .batch_rows = 4 };
	FILE *in = fopen(src, "r"), *out;
	int row = 0, rc;

	snprintf(path, sizeof(path), "%s/rows.csv", n->dir);
	if (in == NULL || (out = fopen(path, "w")) == NULL)
		die("cannot read %s", src);
	while (fgets(line, sizeof(line), in) != NULL) {
		if (row == 0 || (row >= first && row <= last && row != skip1 && row != skip2))
			fputs(line, out);
		row++;
	}
	fclose(in);
	if (fclose(out) != 0)
		die("cannot write %s", path);
	o.path = path;
	if ((rc = publish_csv(n->st, fuzz_key(), &o, &res)) < 0)
		die("publish %s: %s", src, mu_strerror(rc));
	publish_result_fini(&res);
}

/* A node's log, copied out of the store. */
struct log {
	uint8_t *entry[MAX_LOG];
	size_t entry_len[MAX_LOG], n;
	uint8_t *head[MAX_LOG];
	size_t head_len[MAX_LOG];
	uint64_t head_size[MAX_LOG];
	size_t nheads;
	merkle_hash incl[MERKLE_MAX_DEPTH], cons[MERKLE_MAX_DEPTH];
	size_t nincl, ncons;
	uint64_t redactions;
};

static uint8_t *copy(const uint8_t *p, size_t len)
{
	uint8_t *c = malloc(len + 1);

	if (c == NULL)
		die("out of memory");
	memcpy(c, p, len);
	return c;
}

static void dump(struct node *n, struct log *l)
{
	struct store_txn t;
	struct store_dataset ds;
	const uint8_t *buf;
	size_t len;
	uint64_t size = 0;

	memset(l, 0, sizeof(*l));
	if (store_read_begin(n->st, &t) < 0 || store_dataset_get(&t, DATASET, &ds) < 0)
		die("no dataset %s", DATASET);
	if (ds.size > MAX_LOG)
		die("the log grew past %d entries", MAX_LOG);
	for (; l->n < ds.size; l->n++) {
		if (store_entry_get(&t, ds.local_id, l->n, &buf, &len) < 0)
			die("entry %zu missing", l->n);
		l->entry[l->n] = copy(buf, len);
		l->entry_len[l->n] = len;
	}
	while (l->nheads < MAX_LOG && store_head_next(&t, ds.local_id, size, &size, &buf, &len) == 0) {
		l->head[l->nheads] = copy(buf, len);
		l->head_len[l->nheads] = len;
		l->head_size[l->nheads++] = size;
	}
	struct store_tree tree = { &t, ds.local_id };
	if (ds.size >= 8 &&
	    (merkle_inclusion_proof(2, 8, store_tree_get, &tree, l->incl, &l->nincl) < 0 ||
	     merkle_consistency_proof(4, 8, store_tree_get, &tree, l->cons, &l->ncons) < 0))
		die("no proofs of %s", DATASET);
	store_dataset_fini(&ds);
	store_read_end(&t);
}

/* ---- messages ---- */

/* The head of l at size, or die. */
static size_t head_at(const struct log *l, uint64_t size)
{
	for (size_t i = 0; i < l->nheads; i++)
		if (l->head_size[i] == size)
			return i;
	die("no head at size %llu", (unsigned long long)size);
}

static void heads_msg(const struct log *l, const uint64_t *sizes, size_t n, Musubi__Heads *h,
		      Musubi__HeadInfo *info, Musubi__HeadInfo **ptrs)
{
	musubi__heads__init(h);
	for (size_t i = 0; i < n; i++) {
		size_t k = head_at(l, sizes[i]);
		musubi__head_info__init(&info[i]);
		info[i].dataset = DATASET;
		info[i].signed_head.data = l->head[k];
		info[i].signed_head.len = l->head_len[k];
		info[i].public_ = 1;
		info[i].redactions = l->redactions;
		ptrs[i] = &info[i];
	}
	h->n_heads = n;
	h->heads = ptrs;
}

static void entries_msg(const struct log *l, uint64_t from, uint64_t to, Musubi__Entries *e,
			ProtobufCBinaryData *bins)
{
	musubi__entries__init(e);
	e->dataset = DATASET;
	e->from = from;
	for (uint64_t s = from; s < to; s++)
		bins[s - from] = (ProtobufCBinaryData){ l->entry_len[s], l->entry[s] };
	e->n_entries = (size_t)(to - from);
	e->entries = bins;
}

static void payload(const char *name, Musubi__MsgType type, const ProtobufCMessage *m)
{
	static uint64_t request_id;
	Musubi__Envelope env = MUSUBI__ENVELOPE__INIT;
	struct rec_buf p = { 0 }, e = { 0 };
	uint8_t t = (uint8_t)type;

	if (m != NULL)
		pack(m, &p);
	save("wire", name, &t, 1, p.data, p.len);
	env.version = WIRE_VERSION;
	env.type = type;
	env.request_id = ++request_id;
	env.payload.data = p.data;
	env.payload.len = p.len;
	pack(&env.base, &e);
	save("envelope", name, e.data, e.len, NULL, 0);
	rec_buf_fini(&p);
	rec_buf_fini(&e);
}

/* Append one ingest frame: Heads of sizes, Entries from..to. */
static void frame(struct rec_buf *in, const struct log *l, const uint64_t *sizes, size_t nsizes,
		  uint64_t from, uint64_t to)
{
	Musubi__Heads h;
	Musubi__HeadInfo info[MAX_LOG], *ptrs[MAX_LOG];
	Musubi__Entries e;
	ProtobufCBinaryData bins[MAX_LOG];
	const ProtobufCMessage *parts[2];
	struct rec_buf b = { 0 };

	heads_msg(l, sizes, nsizes, &h, info, ptrs);
	entries_msg(l, from, to, &e, bins);
	parts[0] = &h.base;
	parts[1] = &e.base;
	for (int i = 0; i < 2; i++) {
		pack(parts[i], &b);
		if (b.len > 0xffff || rec_buf_reserve(in, b.len + 2) < 0)
			die("an ingest frame does not fit");
		in->data[in->len++] = (uint8_t)(b.len & 0xff);
		in->data[in->len++] = (uint8_t)(b.len >> 8);
		memcpy(in->data + in->len, b.data, b.len);
		in->len += b.len;
	}
	rec_buf_fini(&b);
}

static void ingest_seed(const char *name, struct rec_buf *in)
{
	save("ingest", name, in->data, in->len, NULL, 0);
	in->len = 0;
}

static void cosig(const struct log *l, size_t k, const char *witness, struct rec_buf *out)
{
	struct head_signed hs;

	if (head_decode(l->head[k], l->head_len[k], &hs) < 0 ||
	    cosign_make(fuzz_key(), witness, 1, DATASET, l->head_size[k], hs.sh->head,
			hs.sh->head_len, out) < 0)
		die("cannot cosign");
	head_signed_fini(&hs);
}

static void records(const struct log *a, const struct log *b, const struct redaction *red)
{
	struct rec_entry_decoded *d;
	struct head_signed hs;
	struct rec_buf c = { 0 }, r = { 0 };
	const size_t pick[] = { 0, 1, 5, a->n - 1 };   /* the last is a delete */
	char name[64];

	for (size_t i = 0; i < sizeof(pick) / sizeof(pick[0]); i++) {
		snprintf(name, sizeof(name), "seq%zu", pick[i]);
		save("entry", name, a->entry[pick[i]], a->entry_len[pick[i]], NULL, 0);
		if (rec_entry_decode(a->entry[pick[i]], a->entry_len[pick[i]], &d) < 0)
			die("entry %zu does not decode", pick[i]);
		if (d->e.row != NULL)
			save("row", name, d->e.row, d->e.row_len, NULL, 0);
		rec_entry_free(&d);
	}
	save("entry", "fork-seq0", b->entry[0], b->entry_len[0], NULL, 0);
	snprintf(name, sizeof(name), "stub-seq%llu", (unsigned long long)red->seq);
	save("entry", name, a->entry[red->seq], a->entry_len[red->seq], NULL, 0);
	/* A row of every kind of value, as rec_row_encode writes it. */
	struct mu_value v[6] = { { .kind = MU_VAL_NULL }, { .kind = MU_VAL_TEXT, .text = "焼津市",
		.len = 9 }, { .kind = MU_VAL_INT, .i = -222127 }, { .kind = MU_VAL_NUM, .d = 34.863094 },
		{ .kind = MU_VAL_BOOL, .i = 1 }, { .kind = MU_VAL_TEXT, .text = "", .len = 0 } };
	if (rec_row_encode(v, 6, &r) < 0)
		die("cannot encode a row");
	save("row", "kinds", r.data, r.len, NULL, 0);
	for (size_t k = 0; k < a->nheads; k++) {
		snprintf(name, sizeof(name), "size%llu", (unsigned long long)a->head_size[k]);
		save("head", name, a->head[k], a->head_len[k], NULL, 0);
	}
	save("head", "fork-size4", b->head[0], b->head_len[0], NULL, 0);
	if (head_decode(a->head[0], a->head_len[0], &hs) < 0)
		die("head does not decode");
	save("head", "treehead-size4", hs.sh->head, hs.sh->head_len, NULL, 0);
	head_signed_fini(&hs);
	cosig(a, 0, FUZZ_MEMBER, &c);
	save("cosign", "member-size4", c.data, c.len, NULL, 0);
	cosig(a, a->nheads - 1, FUZZ_MEMBER, &c);
	save("cosign", "member-last", c.data, c.len, NULL, 0);
	cosig(a, 1, "011002", &c);
	save("cosign", "stranger-size8", c.data, c.len, NULL, 0);
	if (fuzz_trust_list(&c) < 0)
		die("no trust list");
	save("trust", "fuzz-v1", c.data, c.len, NULL, 0);
	rec_buf_fini(&c);
	rec_buf_fini(&r);
}

/* A row proof of entry 2 in the head at size 8, as musubi audit exports
 * it, pinned to the test trust list. */
static void audit_seed(const struct log *a)
{
	struct rec_buf list = { 0 };
	struct audit_row_proof p;
	size_t k = head_at(a, 8);
	char why[512], *json = NULL;

	if (fuzz_trust_list(&list) < 0)
		die("no trust list");
	struct audit_blob entry = { a->entry[2], a->entry_len[2] };
	struct audit_blob head = { a->head[k], a->head_len[k] };
	struct audit_blob trust = { list.data, list.len };
	if (audit_proof_make(DATASET, 2, &entry, a->incl, a->nincl, &head, &trust, 1, &trust, &p,
			     why, sizeof(why)) < 0 || audit_proof_encode(&p, &json) < 0)
		die("cannot make a row proof: %s", why);
	save("audit_bundle", "row-proof-seq2.json", json, strlen(json), NULL, 0);
	free(json);
	audit_proof_fini(&p);
	rec_buf_fini(&list);
}

static void messages(const struct log *a, const struct redaction *red)
{
	static uint32_t one[] = { WIRE_VERSION };
	static char *datasets[] = { DATASET };
	struct rec_buf cs1 = { 0 }, cs2 = { 0 }, list = { 0 };
	struct schema *s = NULL;
	char *why = NULL;

	Musubi__Error err = MUSUBI__ERROR__INIT;
	err.code = MUSUBI__ERROR_CODE__ERR_VERSION;
	err.message = "protocol version 99 is not spoken here";
	err.n_supported_versions = 1;
	err.supported_versions = one;
	payload("error", MUSUBI__MSG_TYPE__MSG_ERROR, &err.base);

	Musubi__Hello hello = MUSUBI__HELLO__INIT;
	hello.member = FUZZ_MEMBER;
	hello.trust_version = 1;
	hello.n_versions = 1;
	hello.versions = one;
	hello.software = "musubi/0.1.0";
	hello.pub_endpoint = "tcp://127.0.0.1:7102";
	payload("hello", MUSUBI__MSG_TYPE__MSG_HELLO, &hello.base);

	Musubi__ListHeads lh = MUSUBI__LIST_HEADS__INIT;
	lh.n_datasets = 1;
	lh.datasets = datasets;
	payload("list-heads", MUSUBI__MSG_TYPE__MSG_LIST_HEADS, &lh.base);

	Musubi__Heads heads;
	Musubi__HeadInfo info[MAX_LOG], *ptrs[MAX_LOG];
	const uint64_t sizes[] = { 4, 8 };
	heads_msg(a, sizes, 2, &heads, info, ptrs);
	payload("heads", MUSUBI__MSG_TYPE__MSG_HEADS, &heads.base);

	Musubi__GetHeads gh = MUSUBI__GET_HEADS__INIT;
	gh.dataset = DATASET;
	gh.after_size = 4;
	gh.limit = WIRE_MAX_HEADS;
	payload("get-heads", MUSUBI__MSG_TYPE__MSG_GET_HEADS, &gh.base);

	Musubi__GetEntries ge = MUSUBI__GET_ENTRIES__INIT;
	ge.dataset = DATASET;
	ge.from = 0;
	ge.to = 8;
	ge.byte_budget = 1u << 20;
	payload("get-entries", MUSUBI__MSG_TYPE__MSG_GET_ENTRIES, &ge.base);

	Musubi__Entries ent;
	ProtobufCBinaryData bins[MAX_LOG];
	entries_msg(a, 0, 4, &ent, bins);
	payload("entries", MUSUBI__MSG_TYPE__MSG_ENTRIES, &ent.base);

	Musubi__GetConsistency gc = MUSUBI__GET_CONSISTENCY__INIT;
	gc.dataset = DATASET;
	gc.old_size = 4;
	gc.new_size = 8;
	payload("get-consistency", MUSUBI__MSG_TYPE__MSG_GET_CONSISTENCY, &gc.base);

	Musubi__GetInclusion gi = MUSUBI__GET_INCLUSION__INIT;
	gi.dataset = DATASET;
	gi.index = 2;
	gi.size = 8;
	payload("get-inclusion", MUSUBI__MSG_TYPE__MSG_GET_INCLUSION, &gi.base);

	Musubi__Proof proof = MUSUBI__PROOF__INIT;
	ProtobufCBinaryData hashes[MERKLE_MAX_DEPTH];
	for (size_t i = 0; i < a->nincl; i++)
		hashes[i] = (ProtobufCBinaryData){ MERKLE_HASH_LEN, (uint8_t *)a->incl[i] };
	proof.n_hashes = a->nincl;
	proof.hashes = hashes;
	payload("proof-inclusion", MUSUBI__MSG_TYPE__MSG_PROOF, &proof.base);
	for (size_t i = 0; i < a->ncons; i++)
		hashes[i] = (ProtobufCBinaryData){ MERKLE_HASH_LEN, (uint8_t *)a->cons[i] };
	proof.n_hashes = a->ncons;
	payload("proof-consistency", MUSUBI__MSG_TYPE__MSG_PROOF, &proof.base);

	Musubi__GetTrust gt = MUSUBI__GET_TRUST__INIT;
	payload("get-trust", MUSUBI__MSG_TYPE__MSG_GET_TRUST, &gt.base);

	if (fuzz_trust_list(&list) < 0)
		die("no trust list");
	Musubi__TrustLists tl = MUSUBI__TRUST_LISTS__INIT;
	ProtobufCBinaryData lists[] = { { list.len, list.data } };
	tl.n_lists = 1;
	tl.lists = lists;
	payload("trust", MUSUBI__MSG_TYPE__MSG_TRUST, &tl.base);

	Musubi__GetSchema gs = MUSUBI__GET_SCHEMA__INIT;
	gs.id = NAME;
	gs.version = 1;
	payload("get-schema", MUSUBI__MSG_TYPE__MSG_GET_SCHEMA, &gs.base);

	if (schema_resolve(SCHEMA, &s, &why) < 0)
		die("no schema %s", SCHEMA);
	Musubi__Schema sm = MUSUBI__SCHEMA__INIT;
	sm.id = s->id;
	sm.version = s->version;
	sm.json = (ProtobufCBinaryData){ s->json_len, (uint8_t *)s->json };
	payload("schema", MUSUBI__MSG_TYPE__MSG_SCHEMA, &sm.base);

	cosig(a, 0, FUZZ_MEMBER, &cs1);
	cosig(a, 1, FUZZ_MEMBER, &cs2);
	Musubi__Announce an = MUSUBI__ANNOUNCE__INIT;
	an.dataset = DATASET;
	an.signed_head = (ProtobufCBinaryData){ a->head_len[0], a->head[0] };
	an.cosig = (ProtobufCBinaryData){ cs1.len, cs1.data };
	payload("announce", MUSUBI__MSG_TYPE__MSG_ANNOUNCE, &an.base);

	payload("status", MUSUBI__MSG_TYPE__MSG_STATUS, NULL);

	Musubi__StatusReply sr = MUSUBI__STATUS_REPLY__INIT;
	sr.json = "{\"member\":\"" FUZZ_MEMBER "\",\"datasets\":[{\"name\":\"" DATASET "\","
		  "\"size\":10,\"head_size\":10}],\"peers\":[]}";
	payload("status-reply", MUSUBI__MSG_TYPE__MSG_STATUS_REPLY, &sr.base);

	Musubi__GetCosigs gcs = MUSUBI__GET_COSIGS__INIT;
	gcs.dataset = DATASET;
	gcs.size = 4;
	payload("get-cosigs", MUSUBI__MSG_TYPE__MSG_GET_COSIGS, &gcs.base);

	Musubi__Cosigs cos = MUSUBI__COSIGS__INIT;
	ProtobufCBinaryData cbins[] = { { cs1.len, cs1.data }, { cs2.len, cs2.data } };
	cos.n_cosigs = 2;
	cos.cosigs = cbins;
	payload("cosigs", MUSUBI__MSG_TYPE__MSG_COSIGS, &cos.base);

	Musubi__GetRedactions gr = MUSUBI__GET_REDACTIONS__INIT;
	gr.dataset = DATASET;
	payload("get-redactions", MUSUBI__MSG_TYPE__MSG_GET_REDACTIONS, &gr.base);

	Musubi__Redactions rs = MUSUBI__REDACTIONS__INIT;
	ProtobufCBinaryData notices[] = { { red->notice.len, red->notice.data } };
	rs.n_notices = 1;
	rs.notices = notices;
	payload("redactions", MUSUBI__MSG_TYPE__MSG_REDACTIONS, &rs.base);

	Musubi__Query q = MUSUBI__QUERY__INIT;
	q.sql = "SELECT 名称, 緯度, 経度 FROM " NAME " WHERE 緯度 > 34.8 ORDER BY _seq";
	q.timeout_ms = 5000;
	q.explain = 1;
	payload("query", MUSUBI__MSG_TYPE__MSG_QUERY, &q.base);

	/* rows as a scan sends them: the columns asked for, then _publisher,
	 * _seq, _hash, _head_size */
	struct rec_buf row = { 0 };
	uint8_t hash[32];
	char hex[65];
	merkle_leaf_hash(a->entry[0], a->entry_len[0], hash);
	sig_hex(hash, sizeof(hash), hex);
	struct mu_value v[6] = {
		{ .kind = MU_VAL_TEXT, .text = "市役所アトレ庁舎１階", .len = 30 },
		{ .kind = MU_VAL_NUM, .d = 34.863094 },
		{ .kind = MU_VAL_TEXT, .text = FUZZ_MEMBER, .len = 6 },
		{ .kind = MU_VAL_INT, .i = 0 },
		{ .kind = MU_VAL_TEXT, .text = hex, .len = 64 },
		{ .kind = MU_VAL_INT, .i = 10 },
	};
	if (rec_row_encode(v, 6, &row) < 0)
		die("cannot encode a row");
	ProtobufCBinaryData rows[] = { { row.len, row.data } };

	Musubi__Column col_name = MUSUBI__COLUMN__INIT, col_lat = MUSUBI__COLUMN__INIT;
	Musubi__Column *cols[] = { &col_name, &col_lat };
	col_name.name = "名称";
	col_name.decltype = "TEXT";
	col_lat.name = "緯度";
	col_lat.decltype = "REAL";
	Musubi__QueryResult qr = MUSUBI__QUERY_RESULT__INIT;
	qr.n_columns = 2;
	qr.columns = cols;
	qr.n_rows = 1;
	qr.rows = rows;
	qr.manifest = "{\"tables\":{\"" NAME "\":[{\"publisher\":\"" FUZZ_MEMBER "\","
		      "\"node\":\"local\",\"head_size\":10}]},\"partial\":false}";
	payload("query-result", MUSUBI__MSG_TYPE__MSG_QUERY_RESULT, &qr.base);

	Musubi__Value lat = MUSUBI__VALUE__INIT;
	lat.kind_case = MUSUBI__VALUE__KIND_NUMBER;
	lat.number = 34.8;
	Musubi__Constraint con = MUSUBI__CONSTRAINT__INIT, *cons[] = { &con };
	con.column = "緯度";
	con.op = ">";
	con.value = &lat;
	static char *wanted[] = { "名称", "緯度" };
	Musubi__Scan sc = MUSUBI__SCAN__INIT;
	sc.table = NAME;
	sc.publisher = FUZZ_MEMBER;
	sc.n_columns = 2;
	sc.columns = wanted;
	sc.n_constraints = 1;
	sc.constraints = cons;
	sc.limit = 1000;
	payload("scan", MUSUBI__MSG_TYPE__MSG_SCAN, &sc.base);

	Musubi__ScanRows sr2 = MUSUBI__SCAN_ROWS__INIT;
	size_t last = a->nheads - 1;
	sr2.n_rows = 1;
	sr2.rows = rows;
	sr2.signed_head = (ProtobufCBinaryData){ a->head_len[last], a->head[last] };
	payload("scan-rows", MUSUBI__MSG_TYPE__MSG_SCAN_ROWS, &sr2.base);
	rec_buf_fini(&row);

	/* An envelope of a protocol version nobody speaks. */
	Musubi__Envelope env = MUSUBI__ENVELOPE__INIT;
	struct rec_buf e = { 0 };
	env.version = 99;
	env.type = MUSUBI__MSG_TYPE__MSG_STATUS;
	env.request_id = 7;
	pack(&env.base, &e);
	save("envelope", "version99", e.data, e.len, NULL, 0);

	rec_buf_fini(&e);
	rec_buf_fini(&cs1);
	rec_buf_fini(&cs2);
	rec_buf_fini(&list);
	schema_destroy(&s);
}

/* Batches as sync sends them: one and several heads, in steps, the
 * deletes and a redacted entry, a batch sent twice, a fork, and a log
 * whose redacted upsert is deleted later. */
static void ingest(const struct log *a, const struct log *b, const struct log *c)
{
	struct rec_buf in = { 0 };
	const uint64_t s4 = 4, s8 = 8, s48[] = { 4, 8 }, s10 = 10;

	frame(&in, a, s48, 2, 0, 8);
	ingest_seed("two-heads", &in);
	frame(&in, a, &s4, 1, 0, 4);
	frame(&in, a, &s8, 1, 4, 8);
	frame(&in, a, &s10, 1, 8, 10);
	ingest_seed("steps-with-deletes", &in);
	frame(&in, a, &s4, 1, 0, 4);
	frame(&in, a, &s4, 1, 0, 4);
	ingest_seed("twice", &in);
	frame(&in, a, &s4, 1, 0, 4);
	frame(&in, b, &s4, 1, 4, 4);
	frame(&in, b, &s8, 1, 4, 8);
	ingest_seed("fork", &in);
	frame(&in, c, &c->head_size[c->nheads - 1], 1, 0, c->n);
	ingest_seed("redacted-then-deleted", &in);
	rec_buf_fini(&in);
}

int main(int argc, char **argv)
{
	struct node a = { 0 }, b = { 0 }, c = { 0 };
	struct redaction red = { 0 }, red_c = { 0 };
	struct log la, lb, lc;
	char src[512];

	if (argc != 3) {
		fprintf(stderr, "usage: fuzz_seedgen OUTDIR DATADIR\n");
		return 2;
	}
	outdir = argv[1];
	snprintf(src, sizeof(src), "%s/public_wireless_lan/222127_yaizu.csv", argv[2]);
	/* Node a: rows 1..8 (heads at 4 and 8), then rows 3 and 6 gone (two
	 * deletes, head at 10), then entry 4 redacted. Node b, the same key:
	 * rows 9..16, a second history of the same dataset (a fork). Node c:
	 * rows 1..2, then row 2 deleted, then its upsert redacted. */
	node_new(&a);
	publish_rows(&a, src, 1, 8, 0, 0);
	publish_rows(&a, src, 1, 8, 3, 6);
	redact(&a, 4, &red);
	node_new(&b);
	publish_rows(&b, src, 9, 16, 0, 0);
	node_new(&c);
	publish_rows(&c, src, 1, 2, 0, 0);
	publish_rows(&c, src, 1, 1, 0, 0);
	redact(&c, 1, &red_c);
	dump(&a, &la);
	dump(&b, &lb);
	dump(&c, &lc);
	if (la.n != 10 || la.nheads != 3 || lb.nheads != 2)
		die("unexpected logs: %zu entries, %zu and %zu heads", la.n, la.nheads, lb.nheads);
	la.redactions = 1;
	records(&la, &lb, &red);
	messages(&la, &red);
	audit_seed(&la);
	ingest(&la, &lb, &lc);
	fuzz_store_drop(a.dir, &a.st);
	fuzz_store_drop(b.dir, &b.st);
	fuzz_store_drop(c.dir, &c.st);
	for (size_t i = 0; i < la.n; i++)
		free(la.entry[i]);
	for (size_t i = 0; i < lb.n; i++)
		free(lb.entry[i]);
	for (size_t i = 0; i < la.nheads; i++)
		free(la.head[i]);
	for (size_t i = 0; i < lb.nheads; i++)
		free(lb.head[i]);
	for (size_t i = 0; i < lc.n; i++)
		free(lc.entry[i]);
	for (size_t i = 0; i < lc.nheads; i++)
		free(lc.head[i]);
	rec_buf_fini(&red.notice);
	rec_buf_fini(&red_c.notice);
	return 0;
}
