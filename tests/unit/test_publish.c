/*
 * test_publish.c - CSV files become signed logs: real municipal files,
 * diffs, deletes, Shift_JIS, malformed input that appends nothing, and
 * verification that catches tampering.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "head.h"
#include "ingest.h"
#include "mu_err.h"
#include "publish.h"
#include "rec.h"
#include "redact.h"
#include "sig.h"
#include "store.h"
#include "testutil.h"
#include "verify.h"

static char tmpdir[TU_DIR_MAX];
static struct store *st;
static struct sig_key *key;

/* A fresh node for member: store, keys, identity. */
static void node_new(const char *member)
{
	CHECK_OK(tu_node_new(tmpdir, "publish", member, &st, &key));
}

static int publish(const char *dataset, const char *schema, const char *path,
		   struct publish_result *res)
{
	struct publish_opts o = { .dataset = dataset, .schema_spec = schema, .path = path };
	return tu_publish(st, key, &o, res);
}

/* Store s verifies under its own key; any problems on stderr. */
static void expect_verified(struct store *s)
{
	struct verify_report rep;
	int rc = verify_store(s, NULL, verify_own_key, NULL, &rep);

	for (size_t i = 0; i < rep.nproblems; i++)
		fprintf(stderr, "verify: %s: %s\n", rep.problems[i].dataset, rep.problems[i].message);
	CHECK_OK(rc);
	verify_report_fini(&rep);
}

static uint64_t count_lines(const char *path)
{
	char cmd[600], out[64] = "";
	FILE *p;

	/* Data rows of a file without quoted newlines: lines - header. */
	snprintf(cmd, sizeof(cmd), "grep -c . '%s'", path);
	p = popen(cmd, "r");
	if (p == NULL || fgets(out, sizeof(out), p) == NULL)
		out[0] = '\0';
	if (p)
		pclose(p);
	return strtoull(out, NULL, 10) - 1;
}

/* Real files of three municipalities and three schemas publish, verify,
 * and publish again without appending anything. */
static void test_real_files(void)
{
	static const struct {
		const char *dataset, *schema, *file;
	} files[] = {
		{ "evacuation_sites", "gsi_evacuation_site@1", "evacuation_sites/011002_sapporo_gsi.csv" },
		{ "aed", "aed@1", "aed/222127_yaizu.csv" },
		{ "public_toilet", "public_toilet@2", "public_toilet/222127_yaizu.csv" },
		{ "shelters", "gsi_designated_shelter@1", "designated_shelters/012025_hakodate_gsi.csv" },
		{ "fire_hydrant", "fire_hydrant@2", "fire_hydrant/222127_yaizu.csv" },
	};
	struct publish_result res;

	node_new("222127");
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		uint64_t rows = count_lines(tu_data(files[i].file));
		int rc = publish(files[i].dataset, files[i].schema, tu_data(files[i].file), &res);
		for (size_t e = 0; e < res.nkept; e++)
			fprintf(stderr, "%s line %llu col %u: %s\n", files[i].file,
				(unsigned long long)res.errors[e].line, res.errors[e].column,
				res.errors[e].message);
		CHECK_OK(rc);
		CHECK(res.rows == rows);
		CHECK(res.added == rows && res.changed == 0 && res.deleted == 0);
		CHECK(res.old_size == 0 && res.new_size == rows && res.batches == 1);
		publish_result_fini(&res);
		/* Again: nothing appended, no new head. */
		CHECK_OK(publish(files[i].dataset, files[i].schema, tu_data(files[i].file), &res));
		CHECK(res.unchanged == rows && res.added == 0 && res.batches == 0);
		CHECK(res.new_size == rows);
		publish_result_fini(&res);
	}
	expect_verified(st);
}

static const char small_schema[] =
	"{\"name\":\"sites\",\"version\":1,\"title\":\"test sites\",\"primaryKey\":[\"id\"],"
	"\"fields\":[{\"name\":\"id\",\"type\":\"integer\",\"constraints\":{\"required\":true}},"
	"{\"name\":\"名称\",\"type\":\"string\",\"constraints\":{\"required\":true}},"
	"{\"name\":\"緯度\",\"type\":\"number\",\"constraints\":{\"minimum\":-90,\"maximum\":90}},"
	"{\"name\":\"開設日\",\"type\":\"date\"},"
	"{\"name\":\"code\",\"type\":\"string\",\"constraints\":{\"unique\":true}}]}";

static void test_diff_changes_and_deletes(void)
{
	struct publish_result res;
	char schema[600];

	node_new("011002");
	snprintf(schema, sizeof(schema), "%s", tu_write(tmpdir, "sites.json", small_schema));
	const char *v1 = "id,名称,緯度,開設日,code\n1,中央,43.0,2020-04-01,a\n2,北,43.1,,b\n3,南,42.9,2021/5/6,c\n";
	CHECK_OK(publish("sites", schema, tu_write(tmpdir, "v1.csv", v1), &res));
	CHECK(res.added == 3 && res.new_size == 3);
	publish_result_fini(&res);
	/* Row 2 changes, row 3 goes, row 4 comes. Columns may be reordered. */
	const char *v2 = "名称,id,緯度,開設日,code\n中央,1,43.0,2020-04-01,a\n北二,2,43.1,,b\n東,4,43.2,,d\n";
	CHECK_OK(publish("sites", schema, tu_write(tmpdir, "v2.csv", v2), &res));
	CHECK(res.added == 1 && res.changed == 1 && res.deleted == 1 && res.unchanged == 1);
	CHECK(res.old_size == 3 && res.new_size == 6 && res.batches == 1);
	publish_result_fini(&res);
	/* A dry run shows the same diff and writes nothing. */
	struct publish_opts o = { .dataset = "sites", .schema_spec = schema,
				  .path = tu_write(tmpdir, "v1b.csv", v1), .dry_run = 1 };
	CHECK_OK(publish_csv(st, key, &o, &res));
	CHECK(res.added == 1 && res.changed == 1 && res.deleted == 1);
	CHECK(res.new_size == 6);
	publish_result_fini(&res);
	expect_verified(st);

	struct store_txn t;
	struct store_dataset ds;
	CHECK_OK(store_read_begin(st, &t));
	CHECK_OK(store_dataset_get(&t, "011002/sites", &ds));
	CHECK(ds.rows == 3 && ds.size == 6 && ds.head_size == 6);
	/* The delete entry is in the log, signed, with its key. */
	const uint8_t *buf;
	size_t len;
	struct rec_entry_decoded *d = NULL;
	int found_delete = 0;
	for (uint64_t s = 3; s < 6; s++) {
		CHECK_OK(store_entry_get(&t, ds.local_id, s, &buf, &len));
		CHECK_OK(rec_entry_decode(buf, len, &d));
		if (d != NULL && d->e.op == REC_DELETE) {
			CHECK_STREQ(d->e.key, "3");
			found_delete = 1;
		}
		rec_entry_free(&d);
	}
	CHECK(found_delete);
	store_dataset_fini(&ds);
	store_read_end(&t);
}

/* Malformed input: each case fails with the expected code and message,
 * and the log stays exactly as it was. */
static void test_bad_input_appends_nothing(void)
{
	static const struct {
		const char *csv, *needle;
		int rc;
		uint64_t line;
	} cases[] = {
		{ "id,名称,緯度,開設日,code\n1,a,95,,x\n", "maximum", MU_E_SCHEMA, 2 },
		{ "id,名称,緯度,開設日,code\nx1,a,1,,x\n", "integer", MU_E_SCHEMA, 2 },
		{ "id,名称,緯度,開設日,code\n1,,1,,x\n", "required", MU_E_SCHEMA, 2 },
		{ "id,名称,緯度,開設日,code\n1,a,1,2020-02-30,x\n", "date", MU_E_SCHEMA, 2 },
		{ "id,名称,緯度,開設日,code\n1,a,1,,x\n1,b,1,,y\n", "repeated", MU_E_SCHEMA, 3 },
		{ "id,名称,緯度,開設日,code\n1,a,1,,x\n2,b,1,,x\n", "unique", MU_E_SCHEMA, 3 },
		{ "id,名称,緯度,開設日,code\n1,a,1,,x,extra\n", "fields", MU_E_SCHEMA, 2 },
		{ "id,名称,緯度,開設日,code,謎\n1,a,1,,x,?\n", "not a field", MU_E_SCHEMA, 1 },
		{ "id,緯度,開設日,code\n1,1,,x\n", "required field", MU_E_SCHEMA, 1 },
		{ "id,名称,緯度,開設日,code\n1,\"a,1,,x\n", "quote", MU_E_CSV, 0 },
		{ "", "empty", MU_E_CSV, 0 },
		{ "id,id,名称,緯度,開設日,code\n1,1,a,1,,x\n", "twice", MU_E_SCHEMA, 1 },
	};
	struct publish_result res;
	char schema[600];

	node_new("011002");
	snprintf(schema, sizeof(schema), "%s", tu_write(tmpdir, "sites.json", small_schema));
	CHECK_OK(publish("sites", schema,
			 tu_write(tmpdir, "good.csv", "id,名称,緯度,開設日,code\n9,既存,40,,z\n"), &res));
	publish_result_fini(&res);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = publish("sites", schema, tu_write(tmpdir, "bad.csv", cases[i].csv), &res);
		CHECK_RC(rc, cases[i].rc);
		CHECK(res.nerrors >= 1 && res.nkept >= 1);
		if (res.nkept >= 1) {
			if (strstr(res.errors[0].message, cases[i].needle) == NULL) {
				fprintf(stderr, "case %zu: \"%s\" lacks \"%s\"\n", i,
					res.errors[0].message, cases[i].needle);
				CHECK(0);
			}
			if (cases[i].line)
				CHECK(res.errors[0].line == cases[i].line);
		}
		CHECK(res.new_size == 1 || res.new_size == 0);
		publish_result_fini(&res);
	}
	struct store_txn t;
	struct store_dataset ds;
	CHECK_OK(store_read_begin(st, &t));
	CHECK_OK(store_dataset_get(&t, "011002/sites", &ds));
	CHECK(ds.size == 1 && ds.rows == 1);
	store_dataset_fini(&ds);
	store_read_end(&t);
	expect_verified(st);
}

/* Many errors: all counted, the first max_errors kept, in file order. */
static void test_error_limit(void)
{
	struct publish_result res;
	struct publish_opts o = { .dataset = "sites", .max_errors = 5 };
	char schema[600], csv[8192];
	size_t off;

	node_new("011002");
	snprintf(schema, sizeof(schema), "%s", tu_write(tmpdir, "sites.json", small_schema));
	o.schema_spec = schema;
	off = (size_t)snprintf(csv, sizeof(csv), "id,名称,緯度,開設日,code\n");
	for (int i = 0; i < 50; i++)
		off += (size_t)snprintf(csv + off, sizeof(csv) - off, "%d,n,999,,c%d\n", i, i);
	o.path = tu_write(tmpdir, "many.csv", csv);
	CHECK_RC(publish_csv(st, key, &o, &res), MU_E_SCHEMA);
	CHECK(res.nerrors == 50 && res.nkept == 5);
	CHECK(res.nkept == 5 && res.errors[4].line == 6 && res.errors[0].column == 3);
	publish_result_fini(&res);
}

/* The same rows in Shift_JIS give the same log state as in UTF-8. */
static void test_shift_jis(void)
{
	struct publish_result res;
	char cmd[1200], sjis[600];
	uint8_t root_utf8[32];

	node_new("222127");
	CHECK_OK(publish("aed", "aed@1", tu_data("aed/222127_yaizu.csv"), &res));
	CHECK(res.encoding == CSV_ENC_UTF8);
	memcpy(root_utf8, res.root, 32);
	uint64_t rows = res.added;
	publish_result_fini(&res);
	snprintf(sjis, sizeof(sjis), "%s/aed_sjis.csv", tmpdir);
	snprintf(cmd, sizeof(cmd), "iconv -f UTF-8 -t CP932 '%s' > '%s'", tu_data("aed/222127_yaizu.csv"),
		 sjis);
	REQUIRE(system(cmd) == 0);
	/* Same content in another encoding: nothing changes. */
	CHECK_OK(publish("aed", "aed@1", sjis, &res));
	CHECK(res.encoding == CSV_ENC_CP932);
	CHECK(res.unchanged == rows && res.added == 0 && res.changed == 0 && res.batches == 0);
	publish_result_fini(&res);
	/* And into a fresh dataset it publishes every row. */
	CHECK_OK(publish("aed_sjis", "aed@1", sjis, &res));
	CHECK(res.added == rows);
	publish_result_fini(&res);
	expect_verified(st);
}

/* Small batches: one signed head per batch, all verifiable. */
static void test_batches(void)
{
	struct publish_result res;
	struct publish_opts o = { .dataset = "evac", .schema_spec = "gsi_evacuation_site@1",
				  .batch_rows = 100 };

	node_new("011002");
	o.path = tu_data("evacuation_sites/011002_sapporo_gsi.csv");
	CHECK_OK(publish_csv(st, key, &o, &res));
	CHECK(res.added == 348 && res.batches == 4 && res.new_size == 348);
	publish_result_fini(&res);
	struct store_txn t;
	struct store_dataset ds;
	const uint8_t *buf;
	size_t len;
	uint64_t size = 0;
	int heads = 0;
	CHECK_OK(store_read_begin(st, &t));
	CHECK_OK(store_dataset_get(&t, "011002/evac", &ds));
	while (store_head_next(&t, ds.local_id, size, &size, &buf, &len) == 0)
		heads++;
	CHECK(heads == 4);
	store_dataset_fini(&ds);
	store_read_end(&t);
	expect_verified(st);
}

/* A dataset bound to one schema refuses another schema id. */
static void test_schema_binding(void)
{
	struct publish_result res;

	node_new("222127");
	CHECK_OK(publish("aed", "aed@1", tu_data("aed/222127_yaizu.csv"), &res));
	publish_result_fini(&res);
	CHECK_RC(publish("aed", "public_wireless_lan@1",
			 tu_data("public_wireless_lan/222127_yaizu.csv"), &res), MU_E_SCHEMA);
	CHECK(res.nkept == 1 && strstr(res.errors[0].message, "uses schema aed@1") != NULL);
	publish_result_fini(&res);
	CHECK_RC(publish("Bad Name", "aed@1", tu_data("aed/222127_yaizu.csv"), &res), MU_E_USAGE);
	publish_result_fini(&res);
	CHECK_RC(publish("aed2", "nosuch@1", tu_data("aed/222127_yaizu.csv"), &res), MU_E_SCHEMA);
	publish_result_fini(&res);
}

/* Tampering with a stored entry or head is found by verify. */
struct tamper {
	int what;   /* 0: entry bytes, 1: head signature, 2: state row */
};

static int tamper_fn(struct store_txn *t, void *arg)
{
	struct tamper *tp = arg;
	struct store_dataset ds;
	const uint8_t *buf;
	size_t len;
	uint8_t copy[4096];
	int rc;

	if ((rc = store_dataset_get(t, "222127/aed", &ds)) < 0)
		return rc;
	if (tp->what == 0) {
		if ((rc = store_entry_get(t, ds.local_id, 5, &buf, &len)) == 0 && len <= sizeof(copy)) {
			memcpy(copy, buf, len);
			copy[len - 3] ^= 1;
			/* Replace in place: delete then put. */
			MDB_dbi dbi;
			mdb_dbi_open(t->txn, "entries", 0, &dbi);
			uint8_t k[12] = { 0 };
			k[3] = (uint8_t)ds.local_id;
			k[11] = 5;
			MDB_val kv = { 12, k }, vv = { len, copy };
			rc = store_err(mdb_put(t->txn, dbi, &kv, &vv, 0));
		}
	} else if (tp->what == 1) {
		uint64_t size;
		if ((rc = store_head_latest(t, ds.local_id, &size, &buf, &len)) == 0 &&
		    len <= sizeof(copy)) {
			memcpy(copy, buf, len);
			copy[len - 1] ^= 0x80;   /* the signature is the last field */
			rc = store_head_put(t, ds.local_id, size, copy, len);
		}
	} else {
		struct store_state_val v = { .seq = 3 };
		rc = store_state_put(t, ds.local_id, "0000000001", 10, &v);
	}
	store_dataset_fini(&ds);
	return rc;
}

static struct sig_key *resign_key;

/* Replace the newest head with the same head signed by another key. */
static int resign_fn(struct store_txn *t, void *arg)
{
	struct store_dataset ds;
	const uint8_t *buf;
	size_t len;
	uint64_t size;
	struct head_signed hs;
	struct rec_buf out = { 0 };
	int rc;

	(void)arg;
	if ((rc = store_dataset_get(t, "222127/aed", &ds)) < 0)
		return rc;
	if ((rc = store_head_latest(t, ds.local_id, &size, &buf, &len)) == 0 &&
	    (rc = head_decode(buf, len, &hs)) == 0) {
		struct rec_head h = hs.hd->h;
		if ((rc = head_make_signed(&h, resign_key, &out)) == 0)
			rc = store_head_put(t, ds.local_id, size, out.data, out.len);
		head_signed_fini(&hs);
	}
	rec_buf_fini(&out);
	store_dataset_fini(&ds);
	return rc;
}

static void test_verify_catches_tampering(void)
{
	static const char *const expect[] = { "root", "signature", "state row" };

	for (int what = 0; what < 3; what++) {
		struct publish_result res;
		struct verify_report rep;
		struct tamper tp = { what };
		int found = 0;

		node_new("222127");
		CHECK_OK(publish("aed", "aed@1", tu_data("aed/222127_yaizu.csv"), &res));
		publish_result_fini(&res);
		expect_verified(st);
		CHECK_OK(store_write(st, tamper_fn, &tp));
		CHECK_RC(verify_store(st, NULL, verify_own_key, NULL, &rep), MU_E_CORRUPT);
		for (size_t i = 0; i < rep.nproblems; i++)
			found |= strstr(rep.problems[i].message, expect[what]) != NULL;
		if (!found)
			fprintf(stderr, "tamper %d: no problem mentions \"%s\"\n", what, expect[what]);
		CHECK(found);
		verify_report_fini(&rep);
	}
}

/* A head signed by another key does not verify under the node's key. */
static void test_foreign_key_refused(void)
{
	struct publish_result res;
	struct verify_report rep;
	struct sig_key *other = NULL;

	node_new("222127");
	CHECK_OK(tu_key_new(tmpdir, "other", &other, NULL));
	resign_key = other;
	struct publish_opts o = { .dataset = "aed", .schema_spec = "aed@1",
				  .path = tu_data("aed/222127_yaizu.csv") };
	/* Publishing refuses to sign heads no one would accept... */
	CHECK_RC(publish_csv(st, other, &o, &res), MU_E_TRUST);
	CHECK(res.nkept == 1 && strstr(res.errors[0].message, "not the key") != NULL);
	publish_result_fini(&res);
	/* ...and a head that got into the store anyway fails verification. */
	CHECK_OK(publish_csv(st, key, &o, &res));
	publish_result_fini(&res);
	struct tamper tp = { 3 };
	CHECK_OK(store_write(st, resign_fn, &tp));
	(void)other;
	CHECK_RC(verify_store(st, NULL, verify_own_key, NULL, &rep), MU_E_CORRUPT);
	CHECK(rep.nproblems >= 1 && strstr(rep.problems[0].message, "signature") != NULL);
	verify_report_fini(&rep);
	sig_key_destroy(&other);
}

/* A store beside the publisher's, at tmpdir/NAME, that counts the same
 * publisher's heads (verify_own_key): a replica, for ingest. */
static struct store *replica_new(const char *name)
{
	struct store *r = NULL;
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	CHECK_OK(store_open(path, STORE_CREATE, &r));
	if (r != NULL)
		CHECK_OK(tu_node_meta(r, "011002", key));
	return r;
}

struct redact_one {
	uint64_t seq;
	struct rec_buf notice;
};

static int redact_one_fn(struct store_txn *t, void *arg)
{
	struct redact_one *r = arg;
	struct store_dataset ds;
	struct redact_notice n;
	const uint8_t *buf;
	size_t len;
	merkle_hash leaf;
	char why[256];
	int rc;

	if ((rc = store_dataset_get(t, "011002/sites", &ds)) < 0)
		return rc;
	if ((rc = store_entry_get(t, ds.local_id, r->seq, &buf, &len)) == 0 &&
	    (rc = redact_leaf_hash(buf, len, leaf)) == 0 &&
	    (rc = redact_make(key, "011002", 0, ds.name, r->seq, leaf, "personal data", &r->notice)) == 0 &&
	    (rc = redact_check(t, r->notice.data, r->notice.len, verify_own_key, NULL, &n, why,
			       sizeof(why))) == 0)
		rc = redact_apply(t, r->notice.data, r->notice.len, &n);
	store_dataset_fini(&ds);
	return rc;
}

/* An already redacted notice, honoured by a replica (as GET_REDACTIONS does). */
static int honour_fn(struct store_txn *t, void *arg)
{
	struct redact_one *r = arg;
	struct redact_notice n;
	char why[256];
	int rc = redact_check(t, r->notice.data, r->notice.len, verify_own_key, NULL, &n, why,
			      sizeof(why));

	return rc < 0 ? rc : redact_apply(t, r->notice.data, r->notice.len, &n);
}

/* Entries [from, to) of 011002/sites as st holds them, under its one head
 * at size to, into replica r. */
static int replicate(struct store *r, uint64_t from, uint64_t to, char *why, size_t whylen)
{
	struct store_txn t;
	struct store_dataset ds;
	const uint8_t *entries[8], *head;
	size_t lens[8], hlen;
	struct ingest_result res;
	int rc;

	if ((rc = store_read_begin(st, &t)) < 0)
		return rc;
	if ((rc = store_dataset_get(&t, "011002/sites", &ds)) == 0) {
		for (uint64_t s = from; rc == 0 && s < to; s++)
			rc = store_entry_get(&t, ds.local_id, s, &entries[s - from], &lens[s - from]);
		uint64_t size = 0;
		if (rc == 0 && (rc = store_head_next(&t, ds.local_id, to - 1, &size, &head, &hlen)) == 0 &&
		    size != to)
			rc = -ENOENT;
		if (rc == 0) {
			struct ingest_batch b = { "011002/sites", from, (size_t)(to - from), entries, lens,
						  1, &head, &hlen };
			rc = ingest_commit(r, &b, verify_own_key, NULL, &res, why, whylen);
		}
		store_dataset_fini(&ds);
	}
	store_read_end(&t);
	return rc;
}

/* Rows 1 and 2, then only 1 (2 is deleted), then the upsert of 2 is
 * redacted: its content is erased, not its existence, so the delete that
 * came after it stays valid, on the publisher and on every replica, however
 * the notice and the entries reach it. A second delete of 2 still is not. */
static void test_redacted_then_deleted(void)
{
	struct publish_result res;
	struct redact_one red = { .seq = 1 };
	char schema[600], why[512] = "";

	node_new("011002");
	snprintf(schema, sizeof(schema), "%s", tu_write(tmpdir, "sites.json", small_schema));
	CHECK_OK(publish("sites", schema, tu_write(tmpdir, "ab.csv", "id,名称,緯度,開設日,code\n1,a,43.0,,a\n2,b,43.1,,b\n"), &res));
	publish_result_fini(&res);
	CHECK_OK(publish("sites", schema, tu_write(tmpdir, "a.csv", "id,名称,緯度,開設日,code\n1,a,43.0,,a\n"), &res));
	CHECK(res.deleted == 1 && res.new_size == 3);
	publish_result_fini(&res);

	/* r1 holds both rows before the redaction; the notice reaches it
	 * before the delete does. */
	struct store *r1 = replica_new("r1"), *r2 = replica_new("r2");
	REQUIRE(r1 != NULL && r2 != NULL);
	CHECK_OK(replicate(r1, 0, 2, why, sizeof(why)));

	CHECK_OK(store_write(st, redact_one_fn, &red));
	expect_verified(st);

	CHECK_OK(store_write(r1, honour_fn, &red));
	why[0] = '\0';
	CHECK_OK(replicate(r1, 2, 3, why, sizeof(why)));
	if (why[0])
		fprintf(stderr, "r1: %s\n", why);
	expect_verified(r1);

	/* r2 gets the stub in the log, then the delete in a later commit. */
	CHECK_OK(replicate(r2, 0, 2, why, sizeof(why)));
	why[0] = '\0';
	CHECK_OK(replicate(r2, 2, 3, why, sizeof(why)));
	if (why[0])
		fprintf(stderr, "r2: %s\n", why);
	expect_verified(r2);

	struct store_txn t;
	struct store_dataset ds;
	CHECK_OK(store_read_begin(r2, &t));
	CHECK_OK(store_dataset_get(&t, "011002/sites", &ds));
	CHECK(ds.rows == 1 && ds.size == 3);
	store_dataset_fini(&ds);
	store_read_end(&t);

	/* The publisher signs a second delete of 2: that one deletes nothing. */
	const uint8_t *buf, *entries[1], *heads[1];
	size_t len, lens[1], hlens[1];
	struct rec_entry_decoded *d = NULL;
	struct rec_buf again = { 0 }, head = { 0 };
	struct head_signed hs = { 0 };
	struct merkle_frontier fr;
	merkle_hash leaf;
	CHECK_OK(store_read_begin(st, &t));
	CHECK_OK(store_dataset_get(&t, "011002/sites", &ds));
	merkle_frontier_init(&fr);
	for (uint64_t s = 0; s < 3; s++) {
		CHECK_OK(store_entry_get(&t, ds.local_id, s, &buf, &len));
		CHECK(redact_leaf_hash(buf, len, leaf) >= 0);
		merkle_frontier_append(&fr, leaf, NULL, NULL);
	}
	CHECK_OK(rec_entry_decode(buf, len, &d));
	REQUIRE(d != NULL && d->e.op == REC_DELETE);
	struct rec_entry e = d->e;
	e.seq = 3;
	CHECK_OK(rec_entry_encode(&e, &again));
	merkle_leaf_hash(again.data, again.len, leaf);
	merkle_frontier_append(&fr, leaf, NULL, NULL);
	CHECK_OK(store_head_latest(&t, ds.local_id, &len, &buf, &hlens[0]));
	CHECK_OK(head_decode(buf, hlens[0], &hs));
	struct rec_head h = hs.hd->h;
	h.size = 4;
	h.time_us++;
	merkle_frontier_root(&fr, h.root);
	CHECK_OK(head_make_signed(&h, key, &head));
	entries[0] = again.data;
	lens[0] = again.len;
	heads[0] = head.data;
	hlens[0] = head.len;
	struct ingest_batch b = { "011002/sites", 3, 1, entries, lens, 1, heads, hlens };
	struct ingest_result ir;
	why[0] = '\0';
	CHECK_RC(ingest_commit(r2, &b, verify_own_key, NULL, &ir, why, sizeof(why)), MU_E_CORRUPT);
	CHECK(strstr(why, "deletes a key that is not there") != NULL);
	head_signed_fini(&hs);
	rec_entry_free(&d);
	rec_buf_fini(&again);
	rec_buf_fini(&head);
	store_dataset_fini(&ds);
	store_read_end(&t);
	expect_verified(r2);

	rec_buf_fini(&red.notice);
	store_close(&r1);
	store_close(&r2);
}

/* A fork holds its dataset: the evidence is stored, and no newer head of
 * the dataset counts until the hold is cleared; showing the same fork again
 * does not hold it again. */
static void test_fork_holds_dataset(void)
{
	struct publish_result res;
	char schema[600], why[512] = "";

	node_new("011002");
	snprintf(schema, sizeof(schema), "%s", tu_write(tmpdir, "sites.json", small_schema));
	CHECK_OK(publish("sites", schema, tu_write(tmpdir, "v1.csv", "id,名称,緯度,開設日,code\n1,a,43.0,,a\n2,b,43.1,,b\n"), &res));
	publish_result_fini(&res);
	CHECK_OK(publish("sites", schema, tu_write(tmpdir, "v2.csv", "id,名称,緯度,開設日,code\n1,a,43.0,,a\n2,b,43.1,,b\n3,c,43.2,,c\n"), &res));
	publish_result_fini(&res);
	struct store *r = replica_new("r");
	REQUIRE(r != NULL);
	CHECK_OK(replicate(r, 0, 2, why, sizeof(why)));

	/* The publisher signs another root at size 2, and its real head at 3. */
	struct store_txn t;
	struct store_dataset ds;
	struct head_signed hs = { 0 };
	struct rec_buf forged = { 0 }, newer = { 0 };
	const uint8_t *buf;
	size_t len;
	uint64_t size;
	CHECK_OK(store_read_begin(st, &t));
	CHECK_OK(store_dataset_get(&t, "011002/sites", &ds));
	CHECK_OK(store_head_next(&t, ds.local_id, 0, &size, &buf, &len));
	CHECK(size == 2);
	CHECK_OK(head_decode(buf, len, &hs));
	struct rec_head h = hs.hd->h;
	h.root[0] ^= 1;
	h.time_us++;
	CHECK_OK(head_make_signed(&h, key, &forged));
	head_signed_fini(&hs);
	CHECK_OK(store_head_latest(&t, ds.local_id, &size, &buf, &len));
	CHECK(size == 3);
	CHECK_OK(rec_buf_reserve(&newer, len));
	memcpy(newer.data, buf, len);
	newer.len = len;
	store_dataset_fini(&ds);
	store_read_end(&t);

	enum ingest_verdict v = 0;
	uint64_t local;
	int64_t since;
	CHECK_RC(ingest_check_head(r, forged.data, forged.len, "012025", verify_own_key, NULL, &v,
				   &local, why, sizeof(why)), MU_E_FORK);
	CHECK(strstr(why, "two histories") != NULL);
	CHECK_OK(ingest_check_head(r, newer.data, newer.len, "012025", verify_own_key, NULL, &v,
				   &local, why, sizeof(why)));
	CHECK(v == INGEST_HELD && local == 2);
	CHECK(strstr(why, "held") != NULL && strstr(why, "011002") != NULL);

	CHECK_OK(ingest_hold_clear(r, "011002/sites"));
	CHECK_RC(ingest_hold_clear(r, "011002/sites"), -ENOENT);
	CHECK_OK(ingest_check_head(r, newer.data, newer.len, "012025", verify_own_key, NULL, &v,
				   &local, why, sizeof(why)));
	CHECK(v == INGEST_NEWER);
	/* The same fork shown again is kept once and holds nothing new. */
	CHECK_RC(ingest_check_head(r, forged.data, forged.len, "012025", verify_own_key, NULL, &v,
				   &local, why, sizeof(why)), MU_E_FORK);
	CHECK_OK(store_read_begin(r, &t));
	CHECK_RC(ingest_hold_get(&t, "011002/sites", &since), -ENOENT);
	uint64_t evidence = 0;
	CHECK_OK(store_evidence_count(&t, &evidence));
	CHECK(evidence == 1);
	store_read_end(&t);
	CHECK_OK(replicate(r, 2, 3, why, sizeof(why)));
	expect_verified(r);

	rec_buf_fini(&forged);
	rec_buf_fini(&newer);
	store_close(&r);
}

static void cleanup(void)
{
	CHECK_OK(tu_node_drop(tmpdir, &st, &key));
}

CHECK_TESTS = {
	{ "real files of three municipalities", test_real_files },
	{ "diff: changes and deletes", test_diff_changes_and_deletes },
	{ "bad input appends nothing", test_bad_input_appends_nothing },
	{ "error limit", test_error_limit },
	{ "shift_jis", test_shift_jis },
	{ "batches", test_batches },
	{ "schema binding", test_schema_binding },
	{ "verify catches tampering", test_verify_catches_tampering },
	{ "foreign key refused", test_foreign_key_refused },
	{ "redacted, then deleted", test_redacted_then_deleted },
	{ "a fork holds the dataset", test_fork_holds_dataset },
	{ "cleanup", cleanup },
	{ NULL, NULL },
};
