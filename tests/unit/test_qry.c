/*
 * test_qry.c - SQL over the store: four municipalities' real files are
 * published in four stores and replicated into one (as sync does, through
 * ingest_commit), then every query's rows must equal what plain SQLite
 * gives over the same CSV files loaded into ordinary tables. Also: the
 * indexes are used, provenance columns, as-of heads, access options, and
 * the refusals and limits.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "check.h"
#include "csv.h"
#include "ingest.h"
#include "merkle.h"
#include "mu_err.h"
#include "publish.h"
#include "qry.h"
#include "redact.h"
#include "schema.h"
#include "sig.h"
#include "store.h"
#include "util.h"

#define NPUBS 4

struct pub {
	const char *member;
	struct store *st;
	struct sig_key *key;
	uint8_t raw[32];
};

static struct pub pubs[NPUBS] = { { .member = "012025" }, { .member = "012041" }, { .member = "012050" },
				  { .member = "222127" } };
static char root[256];
static char site_v1[512], site_v2[512];   /* a custom schema in two versions */
static struct store *all;                 /* the replica of every publisher */
static sqlite3 *ref;                      /* the same files in ordinary tables */
static int ready;

/* Every file, in the order of their dataset names ("<member>/<table>"),
 * which is the order qry meets their schemas in. */
static const struct file {
	const char *table, *member, *schema, *path;
} files[] = {
	{ "designated_shelters", "012025", "gsi_designated_shelter@1",
	  "designated_shelters/012025_hakodate_gsi.csv" },
	{ "evacuation_sites", "012025", "gsi_evacuation_site@1", "evacuation_sites/012025_hakodate_gsi.csv" },
	{ "sites", "012025", "v1", "evacuation_sites/012025_hakodate_gsi.csv" },
	{ "designated_shelters", "012041", "gsi_designated_shelter@1",
	  "designated_shelters/012041_asahikawa_gsi.csv" },
	{ "evacuation_sites", "012041", "gsi_evacuation_site@1", "evacuation_sites/012041_asahikawa_gsi.csv" },
	{ "designated_shelters", "012050", "gsi_designated_shelter@1",
	  "designated_shelters/012050_muroran_gsi.csv" },
	{ "evacuation_sites", "012050", "gsi_evacuation_site@1", "evacuation_sites/012050_muroran_gsi.csv" },
	{ "sites", "012050", "v2", "evacuation_sites/012050_muroran_gsi.csv" },
	{ "aed", "222127", "aed@1", "aed/222127_yaizu.csv" },
	{ "designated_shelters", "222127", "yaizu_shelter@1", "designated_shelters/222127_yaizu.csv" },
};
#define NFILES (sizeof(files) / sizeof(files[0]))

static const char *data(const char *rel)
{
	static char buf[4][512];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", MU_TEST_DATA, rel);
	return buf[i];
}

static const char *spec(const char *s)
{
	return strcmp(s, "v1") == 0 ? site_v1 : strcmp(s, "v2") == 0 ? site_v2 : s;
}

static struct pub *pub_of(const char *member)
{
	for (int i = 0; i < NPUBS; i++)
		if (strcmp(pubs[i].member, member) == 0)
			return &pubs[i];
	return NULL;
}

static void cleanup(void)
{
	char cmd[300];

	for (int i = 0; i < NPUBS; i++) {
		store_close(&pubs[i].st);
		sig_key_destroy(&pubs[i].key);
	}
	store_close(&all);
	sqlite3_close(ref);
	if (root[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", root);
	}
}

static int put_meta(struct store_txn *t, void *ctx)
{
	struct pub *p = ctx;
	int rc = store_meta_put(t, "member", p->member, strlen(p->member));

	return rc < 0 || p->key == NULL ? rc : store_meta_put(t, "signing_pub", p->raw, 32);
}

/* The trust rule of this test: each publisher's own key. */
static int test_key(void *ctx, struct store_txn *t, const struct rec_head *h, struct sig_key **key,
		    char *why, size_t whylen)
{
	struct pub *p = pub_of(h->publisher);

	if (p == NULL) {
		snprintf(why, whylen, "unknown publisher %s", h->publisher);
		return MU_E_TRUST;
	}
	return sig_key_from_raw_public(p->raw, key);
}

struct schema_put {
	const char *ref;
	const uint8_t *json;
	size_t len;
};

static int put_schema(struct store_txn *t, void *ctx)
{
	struct schema_put *sp = ctx;

	return store_schema_put(t, sp->ref, sp->json, sp->len);
}

/* Replicate one dataset's log from its publisher into `all`, entries and
 * signed heads as sync sends them; fetch a schema the replica lacks. */
static int replicate(struct store *from, const char *name)
{
	struct store_txn t;
	struct store_dataset ds;
	const uint8_t **ents = NULL, **heads = NULL;
	size_t *elens = NULL, *hlens = NULL, nheads = 0;
	uint64_t at = 0, size;
	struct ingest_result res;
	char why[256];
	int rc;

	if ((rc = store_read_begin(from, &t)) < 0)
		return rc;
	if ((rc = store_dataset_get(&t, name, &ds)) < 0)
		goto out;
	ents = calloc(ds.size, sizeof(*ents));
	elens = calloc(ds.size, sizeof(*elens));
	heads = calloc(ds.size, sizeof(*heads));
	hlens = calloc(ds.size, sizeof(*hlens));
	rc = ents && elens && heads && hlens ? 0 : -ENOMEM;
	for (uint64_t i = 0; i < ds.size && rc == 0; i++)
		rc = store_entry_get(&t, ds.local_id, i, &ents[i], &elens[i]);
	while (rc == 0 && store_head_next(&t, ds.local_id, at, &size, &heads[nheads], &hlens[nheads]) == 0) {
		at = size;
		nheads++;
	}
	if (rc == 0) {
		struct ingest_batch b = { name, 0, ds.size, ents, elens, nheads, heads, hlens };
		rc = ingest_commit(all, &b, test_key, NULL, &res, why, sizeof(why));
		if (rc < 0)
			fprintf(stderr, "ingest %s: %s\n", name, why);
	}
	if (rc == 0 && res.missing_schema[0]) {
		struct schema_put sp = { res.missing_schema, NULL, 0 };
		if ((rc = store_schema_get(&t, sp.ref, &sp.json, &sp.len)) == 0)
			rc = store_write(all, put_schema, &sp);
	}
	store_dataset_fini(&ds);
out:
	free(ents);
	free(elens);
	free(heads);
	free(hlens);
	store_read_end(&t);
	return rc;
}

/* The custom schema: gsi_evacuation_site without 備考 (v1), and with it
 * moved into the middle (v2: a compatible evolution that adds a field). */
static int write_site_schemas(void)
{
	struct schema *gsi = NULL;
	json_t *doc, *fields, *note = NULL;
	int rc;

	if ((rc = schema_resolve("gsi_evacuation_site@1", &gsi, NULL)) < 0)
		return rc;
	doc = json_loads(gsi->json, 0, NULL);
	schema_destroy(&gsi);
	if (doc == NULL)
		return -EINVAL;
	json_object_set_new(doc, "name", json_string("qtest_site"));
	fields = json_object_get(doc, "fields");
	for (size_t i = 0; i < json_array_size(fields); i++)
		if (strcmp(json_string_value(json_object_get(json_array_get(fields, i), "name")), "備考") == 0) {
			note = json_incref(json_array_get(fields, i));
			json_array_remove(fields, i);
			break;
		}
	snprintf(site_v1, sizeof(site_v1), "%s/site_v1.json", root);
	snprintf(site_v2, sizeof(site_v2), "%s/site_v2.json", root);
	rc = json_dump_file(doc, site_v1, 0);
	json_object_set_new(doc, "version", json_integer(2));
	json_array_insert_new(fields, 3, note);
	rc |= json_dump_file(doc, site_v2, 0);
	json_decref(doc);
	return rc == 0 ? 0 : -EIO;
}

/* ---- the reference: plain SQLite over the CSV files ---- */

static const char *decl(enum schema_type t)
{
	switch (t) {
	case SCHEMA_INTEGER: case SCHEMA_YEAR: case SCHEMA_BOOLEAN: return "INTEGER";
	case SCHEMA_NUMBER: return "REAL";
	case SCHEMA_GEOPOINT: return QRY_DECLTYPE_GEOPOINT;
	default: return "TEXT";
	}
}

static int ref_exec(const char *sql)
{
	char *err = NULL;
	int rc = sqlite3_exec(ref, sql, NULL, NULL, &err);

	if (rc != SQLITE_OK)
		fprintf(stderr, "reference: %s: %s\n", sql, err);
	sqlite3_free(err);
	return rc;
}

/* One table: the union of its files' schema fields, plus _publisher. */
static int ref_table(const char *table)
{
	char *names[256];
	const char *types[256];
	size_t n = 0;
	sqlite3_str *ddl = sqlite3_str_new(ref);
	char *sql;
	int rc = 0;

	for (size_t f = 0; f < NFILES; f++) {
		struct schema *s = NULL;
		if (strcmp(files[f].table, table) != 0)
			continue;
		if ((rc = schema_resolve(spec(files[f].schema), &s, NULL)) < 0)
			break;
		for (size_t i = 0; i < s->nfields; i++) {
			size_t c = 0;
			while (c < n && sqlite3_stricmp(names[c], s->fields[i].name) != 0)
				c++;
			if (c == n) {
				names[n] = strdup(s->fields[i].name);
				types[n++] = decl(s->fields[i].type);
			} else if (strcmp(types[c], decl(s->fields[i].type)) != 0) {
				types[c] = "";
			}
		}
		schema_destroy(&s);
	}
	sqlite3_str_appendf(ddl, "CREATE TABLE \"%w\"(", table);
	for (size_t c = 0; c < n; c++) {
		sqlite3_str_appendf(ddl, "\"%w\" %s, ", names[c], types[c]);
		free(names[c]);
	}
	sqlite3_str_appendall(ddl, "_publisher TEXT)");
	sql = sqlite3_str_finish(ddl);
	if (rc == 0)
		rc = ref_exec(sql);
	sqlite3_free(sql);
	return rc;
}

/* Load one CSV file, each cell typed by the schema as publish types it. */
static int ref_load(const struct file *f)
{
	struct schema *s = NULL;
	struct csv_reader *csv = NULL;
	struct csv_record rec;
	sqlite3_stmt *ins = NULL;
	long colmap[256];
	size_t ncols;
	char why[256];
	int fd = open(data(f->path), O_RDONLY), rc;

	if (fd < 0 || (rc = schema_resolve(spec(f->schema), &s, NULL)) < 0 || (rc = csv_open_fd(fd, &csv)) < 0 ||
	    (rc = csv_next(csv, &rec)) != 1) {
		rc = -EIO;
		goto out;
	}
	ncols = rec.nfields;
	for (size_t c = 0; c < ncols && c < 256; c++)
		colmap[c] = schema_field_index(s, rec.fields[c].ptr, rec.fields[c].len);
	sqlite3_str *sql = sqlite3_str_new(ref);
	sqlite3_str_appendf(sql, "INSERT INTO \"%w\"(_publisher", f->table);
	for (size_t i = 0; i < s->nfields; i++)
		sqlite3_str_appendf(sql, ", \"%w\"", s->fields[i].name);
	sqlite3_str_appendall(sql, ") VALUES (?");
	for (size_t i = 0; i < s->nfields; i++)
		sqlite3_str_appendall(sql, ", ?");
	sqlite3_str_appendall(sql, ")");
	char *text = sqlite3_str_finish(sql);
	rc = sqlite3_prepare_v2(ref, text, -1, &ins, NULL);
	sqlite3_free(text);
	if (rc != SQLITE_OK)
		goto out;
	while ((rc = csv_next(csv, &rec)) == 1) {
		sqlite3_reset(ins);
		sqlite3_clear_bindings(ins);
		sqlite3_bind_text(ins, 1, f->member, -1, SQLITE_STATIC);
		for (size_t c = 0; c < ncols && c < rec.nfields; c++) {
			struct mu_value v;
			int p;
			if (colmap[c] < 0)
				continue;
			p = (int)colmap[c] + 2;
			if (schema_convert(&s->fields[colmap[c]], rec.fields[c].ptr, rec.fields[c].len, &v,
					   why, sizeof(why)) < 0) {
				fprintf(stderr, "%s line %" PRIu64 ": %s\n", f->path, rec.line, why);
				rc = MU_E_SCHEMA;
				goto out;
			}
			switch (v.kind) {
			case MU_VAL_TEXT: sqlite3_bind_text(ins, p, v.text, (int)v.len, SQLITE_TRANSIENT); break;
			case MU_VAL_INT: case MU_VAL_BOOL: sqlite3_bind_int64(ins, p, v.i); break;
			case MU_VAL_NUM: sqlite3_bind_double(ins, p, v.d); break;
			default: break;
			}
		}
		if (sqlite3_step(ins) != SQLITE_DONE) {
			fprintf(stderr, "reference insert: %s\n", sqlite3_errmsg(ref));
			rc = -EIO;
			goto out;
		}
	}
out:
	sqlite3_finalize(ins);
	csv_close(&csv);
	schema_destroy(&s);
	if (fd >= 0)
		close(fd);
	return rc;
}

static void setup(void)
{
	char path[600];
	struct publish_result res;

	if (ready)
		return;
	ready = -1;
	strcpy(root, "/tmp/mu-qry-XXXXXX");
	REQUIRE(mkdtemp(root) != NULL);
	atexit(cleanup);
	REQUIRE(write_site_schemas() == 0);
	for (int i = 0; i < NPUBS; i++) {
		struct pub *p = &pubs[i];
		snprintf(path, sizeof(path), "%s/%s", root, p->member);
		REQUIRE(store_open(path, STORE_CREATE, &p->st) == 0);
		snprintf(path, sizeof(path), "%s/%s/keys", root, p->member);
		REQUIRE(sig_keygen_dir(path) == 0);
		snprintf(path, sizeof(path), "%s/%s/keys/signing.pem", root, p->member);
		REQUIRE(sig_key_load_private(path, &p->key) == 0);
		REQUIRE(sig_key_raw_public(p->key, p->raw) == 0);
		REQUIRE(store_write(p->st, put_meta, p) == 0);
	}
	for (size_t f = 0; f < NFILES; f++) {
		struct publish_opts o = { .dataset = files[f].table, .schema_spec = spec(files[f].schema),
					  .path = data(files[f].path), .ignore_extra_columns = 1 };
		int rc = publish_csv(pub_of(files[f].member)->st, pub_of(files[f].member)->key, &o, &res);
		for (size_t e = 0; e < res.nkept; e++)
			fprintf(stderr, "%s: %s\n", files[f].path, res.errors[e].message);
		publish_result_fini(&res);
		REQUIRE(rc == 0);
	}
	/* A members-only dataset, for the access options. */
	struct publish_opts mo = { .dataset = "wifi", .schema_spec = "public_wireless_lan@1",
				   .path = data("public_wireless_lan/222127_yaizu.csv"),
				   .access = PUBLISH_ACCESS_MEMBERS };
	REQUIRE(publish_csv(pubs[3].st, pubs[3].key, &mo, &res) == 0);
	publish_result_fini(&res);

	static struct pub coordinator = { .member = "coordinator" };
	snprintf(path, sizeof(path), "%s/all", root);
	REQUIRE(store_open(path, STORE_CREATE, &all) == 0);
	REQUIRE(store_write(all, put_meta, &coordinator) == 0);
	for (size_t f = 0; f < NFILES; f++) {
		snprintf(path, sizeof(path), "%s/%s", files[f].member, files[f].table);
		REQUIRE(replicate(pub_of(files[f].member)->st, path) == 0);
	}
	REQUIRE(replicate(pubs[3].st, "222127/wifi") == 0);

	REQUIRE(sqlite3_open(":memory:", &ref) == SQLITE_OK);
	sqlite3_db_config(ref, SQLITE_DBCONFIG_DQS_DML, 0, (int *)NULL);
	static const char *const tables[] = { "aed", "designated_shelters", "evacuation_sites", "sites" };
	for (size_t i = 0; i < 4; i++)
		REQUIRE(ref_table(tables[i]) == 0);
	for (size_t f = 0; f < NFILES; f++)
		REQUIRE(ref_load(&files[f]) == 0);
	ready = 1;
}

/* ---- running queries ---- */

struct rows {
	char **v;
	size_t n;
	char *names;   /* the column names, joined by '|' */
};

static void rows_fini(struct rows *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i]);
	free(r->v);
	free(r->names);
	memset(r, 0, sizeof(*r));
}

/* A row as text: each value typed (i, r, t, n, b). */
static int collect(void *ctx, sqlite3_stmt *st)
{
	struct rows *r = ctx;
	char *buf = NULL;
	size_t len = 0;
	FILE *m;
	int n = sqlite3_column_count(st);

	if (r->names == NULL && (m = open_memstream(&r->names, &len)) != NULL) {
		for (int i = 0; i < n; i++)
			fprintf(m, "%s%s", i ? "|" : "", sqlite3_column_name(st, i));
		fclose(m);
	}
	if (sqlite3_data_count(st) == 0)
		return 0;
	if ((m = open_memstream(&buf, &len)) == NULL)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		if (i)
			fputc('\x1f', m);
		switch (sqlite3_column_type(st, i)) {
		case SQLITE_INTEGER: fprintf(m, "i%lld", sqlite3_column_int64(st, i)); break;
		case SQLITE_FLOAT: fprintf(m, "r%.17g", sqlite3_column_double(st, i)); break;
		case SQLITE_TEXT: fprintf(m, "t%s", sqlite3_column_text(st, i)); break;
		case SQLITE_BLOB: fprintf(m, "b%d", sqlite3_column_bytes(st, i)); break;
		default: fputc('n', m); break;
		}
	}
	fclose(m);
	char **grown = realloc(r->v, (r->n + 1) * sizeof(*grown));
	if (grown == NULL) {
		free(buf);
		return -ENOMEM;
	}
	r->v = grown;
	r->v[r->n++] = buf;
	return 0;
}

static int ref_rows(const char *sql, struct rows *r)
{
	sqlite3_stmt *st = NULL;
	int rc, n = 0;

	if (sqlite3_prepare_v2(ref, sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "reference: %s: %s\n", sql, sqlite3_errmsg(ref));
		return -EINVAL;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		collect(r, st);
		n++;
	}
	if (n == 0)
		collect(r, st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

static int q_rows(struct qry *q, const char *sql, struct rows *r)
{
	char *err = NULL;
	int rc = qry_exec(q, sql, collect, r, &err);

	if (rc < 0)
		fprintf(stderr, "qry: %s: %s\n", sql, err ? err : mu_strerror(rc));
	free(err);
	return rc;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void sort_rows(struct rows *r)
{
	if (r->n > 0)
		qsort(r->v, r->n, sizeof(*r->v), str_cmp);
}

/* Rows are equal when their values are, reals to 1e-9 relative: sums
 * over rows taken in another order may differ in the last bits. */
static int row_eq(const char *a, const char *b)
{
	while (*a && *b) {
		size_t la = strcspn(a, "\x1f"), lb = strcspn(b, "\x1f");
		if (a[0] == 'r' && b[0] == 'r') {
			double x = strtod(a + 1, NULL), y = strtod(b + 1, NULL);
			double d = x > y ? x - y : y - x, m = x < 0 ? -x : x;
			if (d > 1e-9 * (m > 1 ? m : 1))
				return 0;
		} else if (la != lb || memcmp(a, b, la) != 0) {
			return 0;
		}
		a += la + (a[la] != 0);
		b += lb + (b[lb] != 0);
	}
	return *a == *b;
}

/* The musubi tables must give exactly the reference's rows (in order
 * when ordered), and at least min_rows of them. */
static void same(struct qry *q, const char *sql, int ordered, size_t min_rows)
{
	struct rows a = { 0 }, b = { 0 };

	CHECK_OK(q_rows(q, sql, &a));
	CHECK_OK(ref_rows(sql, &b));
	if (!ordered) {
		sort_rows(&a);
		sort_rows(&b);
	}
	if (a.n < min_rows)
		fprintf(stderr, "%s: %zu rows, expected at least %zu\n", sql, a.n, min_rows);
	CHECK(a.n >= min_rows);
	CHECK(a.names != NULL && b.names != NULL && strcmp(a.names, b.names) == 0);
	if (a.n != b.n)
		fprintf(stderr, "%s: %zu rows, the reference has %zu\n", sql, a.n, b.n);
	CHECK(a.n == b.n);
	for (size_t i = 0; i < a.n && i < b.n; i++)
		if (!row_eq(a.v[i], b.v[i])) {
			fprintf(stderr, "%s: row %zu is\n  %s\nthe reference has\n  %s\n", sql, i, a.v[i], b.v[i]);
			check_failures++;
			break;
		}
	rows_fini(&a);
	rows_fini(&b);
}

/* The plan SQLite chose for the scan of table (or alias) name: EXPLAIN
 * QUERY PLAN says "SCAN name VIRTUAL TABLE INDEX idxNum:idxStr". */
static int plan_of(struct qry *q, const char *name, const char *sql)
{
	struct rows r = { 0 };
	char *eqp, want[128];
	int plan = -1;

	snprintf(want, sizeof(want), "SCAN %s VIRTUAL TABLE INDEX ", name);
	if (asprintf(&eqp, "EXPLAIN QUERY PLAN %s", sql) < 0)
		return -1;
	if (q_rows(q, eqp, &r) == 0)
		for (size_t i = 0; i < r.n && plan < 0; i++) {
			const char *at = strstr(r.v[i], want);
			if (at != NULL)
				plan = atoi(at + strlen(want));
		}
	free(eqp);
	rows_fini(&r);
	return plan;
}

static int64_t q_int(struct qry *q, const char *sql)
{
	struct rows r = { 0 };
	int64_t v = -1;

	if (q_rows(q, sql, &r) == 0 && r.n == 1 && r.v[0][0] == 'i')
		v = strtoll(r.v[0] + 1, NULL, 10);
	rows_fini(&r);
	return v;
}

static struct qry *open_all(void)
{
	struct qry_opts o = { .max_ms = 20000 };
	struct qry *q = NULL;

	if (qry_open(all, &o, &q) < 0)
		return NULL;
	return q;
}

/* ---- the cases ---- */

static void test_matches_sqlite(void)
{
	static const struct {
		const char *sql;
		int ordered;
		size_t min_rows;
	} queries[] = {
		/* filters */
		{ "SELECT \"共通ID\", \"施設・場所名\", 緯度, 経度, _publisher FROM evacuation_sites "
		  "WHERE 津波 = 1 AND 緯度 > 41.8", 0, 1 },
		{ "SELECT NO, 住所 FROM designated_shelters WHERE NO BETWEEN 10 AND 20 AND _publisher <> '012041'", 0, 10 },
		{ "SELECT 名称, 緯度 FROM aed WHERE 緯度 < 34.86 OR 名称 LIKE '%病院%'", 0, 1 },
		/* GROUP BY with aggregates */
		{ "SELECT _publisher, COUNT(*), SUM(津波), SUM(地震), MIN(NO), MAX(NO), AVG(緯度), "
		  "TOTAL(経度) FROM evacuation_sites GROUP BY _publisher", 0, 3 },
		{ "SELECT \"都道府県名及び市町村名\", 受入対象者, COUNT(*) FROM designated_shelters "
		  "GROUP BY 1, 2 HAVING COUNT(*) > 1", 0, 2 },
		/* joins of two datasets */
		{ "SELECT e.\"共通ID\", s.\"共通ID\", e.住所, s.\"施設・場所名\" FROM evacuation_sites e "
		  "JOIN designated_shelters s ON s.住所 = e.住所", 0, 50 },
		{ "SELECT e.\"施設・場所名\", s.NO FROM evacuation_sites e JOIN designated_shelters s "
		  "ON s.\"共通ID\" = e.\"共通ID\"", 0, 0 },
		{ "SELECT e._publisher, COUNT(s.NO) FROM evacuation_sites e LEFT JOIN designated_shelters s "
		  "ON s.住所 = e.住所 AND s._publisher = e._publisher GROUP BY 1", 0, 3 },
		/* ORDER BY with LIMIT */
		{ "SELECT \"施設・場所名\", 緯度 FROM evacuation_sites ORDER BY 緯度 DESC, \"共通ID\" LIMIT 10", 1, 10 },
		{ "SELECT NO, 名称 FROM designated_shelters WHERE _publisher = '222127' ORDER BY NO LIMIT 5 OFFSET 3",
		  1, 5 },
		/* DISTINCT */
		{ "SELECT DISTINCT \"都道府県名及び市町村名\" FROM evacuation_sites", 0, 3 },
		{ "SELECT DISTINCT 受入対象者, _publisher FROM designated_shelters", 0, 4 },
		/* NULL handling: Yaizu's layout has no 共通ID, the GSI one no 名称 */
		{ "SELECT COUNT(*), COUNT(\"共通ID\"), COUNT(名称), COUNT(備考), COUNT(受入対象者) "
		  "FROM designated_shelters", 0, 1 },
		{ "SELECT _publisher, COUNT(*) FROM designated_shelters WHERE \"共通ID\" IS NULL GROUP BY 1", 0, 1 },
		{ "SELECT NO, COALESCE(名称, \"施設・場所名\") FROM designated_shelters WHERE 名称 IS NOT NULL "
		  "OR 受入対象者 IS NOT NULL", 0, 56 },
		{ "SELECT 洪水, 津波, COUNT(*) FROM evacuation_sites GROUP BY 1, 2", 0, 2 },
		/* Japanese text comparison */
		{ "SELECT \"施設・場所名\" FROM evacuation_sites WHERE \"施設・場所名\" LIKE '%小学校%'", 0, 5 },
		{ "SELECT 住所 FROM evacuation_sites WHERE 住所 >= '北海道旭川市' AND 住所 < '北海道旭川市\xef\xbf\xbf'",
		  0, 10 },
		{ "SELECT \"施設・場所名\" FROM evacuation_sites WHERE \"都道府県名及び市町村名\" = '北海道函館市' "
		  "ORDER BY \"施設・場所名\" LIMIT 20", 1, 20 },
		{ "SELECT 名称 FROM designated_shelters WHERE 名称 > 'や' ORDER BY 名称", 1, 1 },
		/* publisher equality, IN */
		{ "SELECT COUNT(*), MIN(\"共通ID\") FROM evacuation_sites WHERE _publisher = '012041'", 0, 1 },
		{ "SELECT \"共通ID\" FROM evacuation_sites WHERE _publisher IN ('012025', '012050') AND 津波 = 1",
		  0, 10 },
		/* primary-key lookups and ranges: text, integer, as text */
		{ "SELECT * FROM evacuation_sites WHERE \"共通ID\" = 'E0120200001201'", 0, 1 },
		{ "SELECT 住所, 緯度 FROM evacuation_sites WHERE \"共通ID\" IN ('E0120200001201', 'E0120410002001', 'nope')",
		  0, 1 },
		{ "SELECT \"共通ID\" FROM evacuation_sites WHERE \"共通ID\" BETWEEN 'E01202' AND 'E01204'", 0, 100 },
		{ "SELECT \"共通ID\" FROM evacuation_sites WHERE \"共通ID\" > 'E0120500001' ORDER BY 1", 1, 10 },
		{ "SELECT 名称, 住所 FROM aed WHERE NO = '0000000007'", 0, 1 },
		{ "SELECT 名称 FROM aed WHERE NO >= '0000000010' AND NO < '0000000020'", 0, 10 },
		{ "SELECT NO, 名称, \"施設・場所名\" FROM designated_shelters WHERE NO = 3", 0, 2 },
		{ "SELECT NO, 名称 FROM designated_shelters WHERE NO = '3' AND _publisher = '222127'", 0, 1 },
		{ "SELECT NO FROM designated_shelters WHERE NO = 3.5 OR NO = NULL", 0, 0 },
		{ "SELECT NO, 名称 FROM designated_shelters WHERE NO > 50 AND NO <= '53.5'", 0, 3 },
		{ "SELECT NO FROM designated_shelters WHERE NO BETWEEN 2.5 AND 4 OR NO < -1 OR NO > 'x'", 0, 2 },
		/* equality on other columns: the automatic index, and operands
		 * of other types (compared as SQLite compares them) */
		{ "SELECT NO, \"施設・場所名\" FROM evacuation_sites WHERE 住所 = '北海道函館市旭町1-14'", 0, 1 },
		{ "SELECT NO FROM evacuation_sites WHERE 緯度 = 41.765666 OR 経度 = '140.727126'", 0, 2 },
		{ "SELECT \"共通ID\" FROM evacuation_sites WHERE NO = '349' OR NO = 350.0 OR NO = 'abc'", 0, 2 },
		{ "SELECT COUNT(*) FROM evacuation_sites WHERE 住所 = 5 OR 住所 = NULL", 0, 1 },
		{ "SELECT e.NO, s.\"施設・場所名\" FROM evacuation_sites e JOIN designated_shelters s "
		  "ON s.NO = e.NO", 0, 5 },
		{ "SELECT a.名称, s.名称 FROM aed a JOIN designated_shelters s ON s.緯度 = a.緯度", 0, 0 },
		/* two versions of one schema: 備考 NULL where v1 lacks it */
		{ "SELECT _publisher, COUNT(*), COUNT(備考), MAX(備考) FROM sites GROUP BY 1", 0, 2 },
		{ "SELECT * FROM sites WHERE 備考 IS NOT NULL", 0, 2 },
	};
	struct qry *q = NULL;

	setup();
	REQUIRE(ready == 1);
	REQUIRE((q = open_all()) != NULL);
	for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++) {
		char *sql = NULL;
		/* SELECT * has the provenance columns the reference lacks. */
		const char *star = strstr(queries[i].sql, "SELECT * FROM ");
		if (star != NULL) {
			const char *table = star + strlen("SELECT * FROM ");
			size_t n = strcspn(table, " ");
			struct rows cols = { 0 };
			char *list = NULL, *ptq;
			if (asprintf(&ptq, "SELECT group_concat('\"' || name || '\"', ', ') FROM "
				     "pragma_table_info('%.*s') WHERE name NOT IN ('_seq', '_hash', '_head_size')",
				     (int)n, table) < 0)
				continue;
			CHECK_OK(q_rows(q, ptq, &cols));
			free(ptq);
			if (cols.n == 1 && asprintf(&list, "%s", cols.v[0] + 1) >= 0 &&
			    asprintf(&sql, "SELECT %s%s", list, queries[i].sql + strlen("SELECT *")) < 0)
				sql = NULL;
			free(list);
			rows_fini(&cols);
		}
		same(q, sql ? sql : queries[i].sql, queries[i].ordered, queries[i].min_rows);
		free(sql);
	}
	qry_close(&q);
}

/* The constraints reach the index: plans as EXPLAIN QUERY PLAN shows them,
 * and the manifest names only what was read. */
static void test_indexes(void)
{
	struct qry *q = NULL;
	json_t *m = NULL;

	setup();
	REQUIRE(ready == 1);
	REQUIRE((q = open_all()) != NULL);
	CHECK(plan_of(q, "evacuation_sites", "SELECT * FROM evacuation_sites") == 0);
	CHECK(plan_of(q, "evacuation_sites", "SELECT * FROM evacuation_sites WHERE _publisher = '012041'") == 1);
	CHECK(plan_of(q, "evacuation_sites",
		      "SELECT * FROM evacuation_sites WHERE \"共通ID\" = 'E0120200001201'") == 2);
	CHECK(plan_of(q, "evacuation_sites", "SELECT * FROM evacuation_sites WHERE _seq = 4") == 4);
	CHECK(plan_of(q, "aed", "SELECT * FROM aed WHERE NO BETWEEN '1' AND '2'") == (8 | 16));
	CHECK(plan_of(q, "designated_shelters", "SELECT * FROM designated_shelters WHERE NO = 3") == 2);
	CHECK(plan_of(q, "designated_shelters", "SELECT * FROM designated_shelters WHERE NO > 3") == 8);
	/* A collation other than BINARY is not what the index orders by. */
	CHECK(plan_of(q, "aed", "SELECT * FROM aed WHERE NO = '1' COLLATE NOCASE") == 0);
	/* An index join: the inner table is looked up by its key. */
	CHECK(plan_of(q, "a", "SELECT * FROM evacuation_sites e CROSS JOIN aed a ON a.NO = e.\"共通ID\"") == 2);
	CHECK(plan_of(q, "s", "SELECT * FROM aed a CROSS JOIN designated_shelters s ON s.NO = a.rowid") == 2);
	/* Equality on any typed column: the automatic index, also in joins. */
	CHECK(plan_of(q, "evacuation_sites", "SELECT * FROM evacuation_sites WHERE 住所 = 'x'") == 2);
	CHECK(plan_of(q, "s", "SELECT * FROM evacuation_sites e CROSS JOIN designated_shelters s "
		      "ON s.住所 = e.住所") == 2);
	/* A key lookup is preferred to the automatic index. */
	CHECK(plan_of(q, "aed", "SELECT * FROM aed WHERE 名称 = 'x' AND NO = '1'") == 2);
	CHECK(q_int(q, "SELECT COUNT(*) FROM aed WHERE 名称 = 'x' AND NO = '0000000001'") == 0);
	/* Key and _seq together: each must hold. */
	int64_t seq1 = q_int(q, "SELECT _seq FROM aed WHERE NO = '0000000001'");
	char sql[200];
	snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM aed WHERE NO = '0000000002' AND _seq = %" PRId64, seq1);
	CHECK(q_int(q, sql) == 0);
	snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM aed WHERE NO = '0000000001' AND _seq = %" PRId64, seq1);
	CHECK(q_int(q, sql) == 1);

	CHECK(q_int(q, "SELECT COUNT(*) FROM evacuation_sites WHERE _publisher = '012041'") == 79);
	REQUIRE(qry_manifest(q, &m) == 0);
	CHECK(json_array_size(m) == 1);
	CHECK_STREQ(json_string_value(json_object_get(json_array_get(m, 0), "dataset")),
		    "012041/evacuation_sites");
	CHECK(json_integer_value(json_object_get(json_array_get(m, 0), "head_size")) == 79);
	CHECK(strlen(json_string_value(json_object_get(json_array_get(m, 0), "root"))) == 64);
	json_decref(m);

	CHECK(q_int(q, "SELECT COUNT(*) FROM evacuation_sites e JOIN aed a ON a.NO = '0000000001'") ==
	      241 + 79 + 275);
	REQUIRE(qry_manifest(q, &m) == 0);
	CHECK(json_array_size(m) == 4);
	json_decref(m);
	/* No publisher matches: nothing is read. */
	CHECK(q_int(q, "SELECT COUNT(*) FROM aed WHERE _publisher = 'nobody'") == 0);
	REQUIRE(qry_manifest(q, &m) == 0);
	CHECK(json_array_size(m) == 0);
	json_decref(m);

	/* The index path and a scan (the + 0 / || '' defeat the index) agree. */
	struct rows a = { 0 }, b = { 0 };
	CHECK_OK(q_rows(q, "SELECT _publisher, _seq, \"共通ID\" FROM evacuation_sites WHERE _seq = 7", &a));
	CHECK_OK(q_rows(q, "SELECT _publisher, _seq, \"共通ID\" FROM evacuation_sites WHERE _seq + 0 = 7", &b));
	CHECK(a.n == 3 && a.n == b.n);
	for (size_t i = 0; i < a.n && i < b.n; i++)
		CHECK_STREQ(a.v[i], b.v[i]);
	rows_fini(&a);
	rows_fini(&b);
	qry_close(&q);
}

/* _seq ranges and ORDER BY _seq read the logs in order, merged over the
 * publishers, so that a scan can be paged by _seq without sorting. */
static void test_log_order(void)
{
	struct qry *q = NULL;
	struct rows a = { 0 }, b = { 0 }, eqp = { 0 };
	int64_t last = -1, total = 0;

	setup();
	REQUIRE(ready == 1);
	REQUIRE((q = open_all()) != NULL);
	CHECK(plan_of(q, "aed", "SELECT * FROM aed ORDER BY _seq") == 32);
	CHECK(plan_of(q, "aed", "SELECT * FROM aed WHERE _seq > 10") == (32 | 64));
	CHECK(plan_of(q, "evacuation_sites", "SELECT * FROM evacuation_sites WHERE _publisher = ?1 "
		      "AND _seq > ?2 AND _seq <= ?3 ORDER BY _seq LIMIT 10") == (1 | 32 | 64 | 128));
	CHECK_OK(q_rows(q, "EXPLAIN QUERY PLAN SELECT * FROM evacuation_sites ORDER BY _seq", &eqp));
	for (size_t i = 0; i < eqp.n; i++)
		CHECK(strstr(eqp.v[i], "TEMP B-TREE") == NULL);   /* no sort */
	rows_fini(&eqp);

	/* The same rows as a scan sorted by SQLite, in _seq order. */
	CHECK_OK(q_rows(q, "SELECT _seq, _publisher, \"共通ID\", 住所 FROM evacuation_sites "
			"WHERE _seq >= 100 AND _seq < 200.5 ORDER BY _seq", &a));
	CHECK_OK(q_rows(q, "SELECT _seq, _publisher, \"共通ID\", 住所 FROM evacuation_sites "
			"WHERE _seq + 0 >= 100 AND _seq + 0 < 200.5 ORDER BY _seq + 0", &b));
	CHECK(a.n == b.n && a.n == 101 + 101);   /* Asahikawa's log ends at 79 */
	for (size_t i = 1; i < a.n; i++)
		CHECK(strtoll(a.v[i - 1] + 1, NULL, 10) <= strtoll(a.v[i] + 1, NULL, 10));
	sort_rows(&a);
	sort_rows(&b);
	for (size_t i = 0; i < a.n && i < b.n; i++)
		CHECK_STREQ(a.v[i], b.v[i]);
	rows_fini(&a);
	rows_fini(&b);
	CHECK(q_int(q, "SELECT COUNT(*) FROM aed WHERE _seq > 'x'") == 0);
	CHECK(q_int(q, "SELECT COUNT(*) FROM aed WHERE _seq < 'x' AND _seq >= -5") == 82);
	CHECK(q_int(q, "SELECT COUNT(*) FROM aed WHERE _seq > NULL") == 0);

	/* Keyset paging: ten rows at a time, each page from the last _seq. */
	for (int page = 0; page < 20; page++) {
		struct rows r = { 0 };
		char sql[160];
		snprintf(sql, sizeof(sql), "SELECT _seq FROM designated_shelters WHERE _publisher = '222127' "
			 "AND _seq > %" PRId64 " ORDER BY _seq LIMIT 10", last);
		CHECK_OK(q_rows(q, sql, &r));
		for (size_t i = 0; i < r.n; i++) {
			int64_t s = strtoll(r.v[i] + 1, NULL, 10);
			CHECK(s > last);
			last = s;
		}
		total += (int64_t)r.n;
		rows_fini(&r);
	}
	CHECK(total == 56);
	qry_close(&q);
}

/* _hash is the entry's Merkle leaf, _head_size the signed head, _seq the
 * entry that holds the row. */
static void test_provenance(void)
{
	struct qry *q = NULL;
	struct rows r = { 0 };
	struct store_txn t;
	struct store_dataset ds;
	const uint8_t *buf;
	size_t len;
	merkle_hash h;
	char hex[65], want[200];

	setup();
	REQUIRE(ready == 1);
	REQUIRE((q = open_all()) != NULL);
	CHECK_OK(q_rows(q, "SELECT _seq, _hash, _head_size, _publisher FROM aed WHERE NO = '0000000005'", &r));
	REQUIRE(r.n == 1);
	REQUIRE(store_read_begin(all, &t) == 0);
	CHECK_OK(store_dataset_get(&t, "222127/aed", &ds));
	uint64_t seq = strtoull(r.v[0] + 1, NULL, 10);
	CHECK_OK(store_entry_get(&t, ds.local_id, seq, &buf, &len));
	merkle_leaf_hash(buf, len, h);
	sig_hex(h, 32, hex);
	snprintf(want, sizeof(want), "i%" PRIu64 "\x1ft%s\x1fi%" PRIu64 "\x1ft222127", seq, hex, ds.head_size);
	CHECK_STREQ(r.v[0], want);
	store_dataset_fini(&ds);
	store_read_end(&t);
	rows_fini(&r);
	/* Types by the schema: INTEGER for booleans and integers, REAL numbers. */
	CHECK_OK(q_rows(q, "SELECT typeof(NO), typeof(津波), typeof(緯度), typeof(住所) FROM evacuation_sites "
			"WHERE 津波 IS NOT NULL LIMIT 1", &r));
	REQUIRE(r.n == 1);
	CHECK_STREQ(r.v[0], "tinteger\x1ftinteger\x1ftreal\x1fttext");
	rows_fini(&r);
	qry_close(&q);
}

static int drop_lines_fn(const char *in, const char *out)
{
	FILE *f = fopen(in, "r"), *o = fopen(out, "w");
	char line[8192];
	int n = 0;

	if (f == NULL || o == NULL) {
		if (f)
			fclose(f);
		if (o)
			fclose(o);
		return -EIO;
	}
	/* Drop data rows 3..5, rename row 9, add a copy of row 1 under a new NO. */
	while (fgets(line, sizeof(line), f) != NULL) {
		if (n >= 3 && n <= 5) {
			n++;
			continue;
		}
		if (n == 9) {
			char *c = line;
			for (int k = 0; k < 4 && c; k++)
				c = strchr(c, ',') ? strchr(c, ',') + 1 : NULL;
			if (c != NULL) {
				fwrite(line, 1, (size_t)(c - line), o);
				fputs("改", o);
				fputs(c, o);
				n++;
				continue;
			}
		}
		fputs(line, o);
		if (n == 1) {
			char *no = strstr(line, "0000000001");
			if (no != NULL) {
				fwrite(line, 1, (size_t)(no - line), o);
				fputs("0000009999", o);
				fputs(no + 10, o);
			}
		}
		n++;
	}
	fclose(f);
	return fclose(o) == 0 ? 0 : -EIO;
}

/* As-of: after a second publish the old head still answers, exactly. */
/* Redact entry seq of dataset, signed by key, as `musubi redact` does. */
struct redact_req {
	const struct sig_key *key;
	const char *dataset;
	uint64_t seq;
};

static int redact_fn(struct store_txn *t, void *arg)
{
	struct redact_req *r = arg;
	struct store_dataset ds;
	struct redact_notice n;
	struct rec_buf notice = { 0 };
	const uint8_t *buf;
	size_t len;
	merkle_hash leaf;
	char why[256];
	int rc;

	if ((rc = store_dataset_get(t, r->dataset, &ds)) < 0)
		return rc;
	if ((rc = store_entry_get(t, ds.local_id, r->seq, &buf, &len)) == 0 &&
	    (rc = redact_leaf_hash(buf, len, leaf)) == 0 &&
	    (rc = redact_make(r->key, ds.publisher, 0, ds.name, r->seq, leaf, "test", &notice)) == 0 &&
	    (rc = redact_check(t, notice.data, notice.len, verify_own_key, NULL, &n, why,
			       sizeof(why))) == 0)
		rc = redact_apply(t, notice.data, notice.len, &n);
	rec_buf_fini(&notice);
	store_dataset_fini(&ds);
	return rc;
}

static void test_as_of(void)
{
	struct qry *q = NULL;
	struct rows before = { 0 }, now = { 0 }, again = { 0 };
	json_t *m = NULL;
	char path[600], why[256] = "", oldroot[65] = "";
	struct publish_result res;
	const char *sql = "SELECT NO, 名称, 住所, 緯度 FROM aed";
	struct store *st;

	setup();
	REQUIRE(ready == 1);
	st = pubs[3].st;
	struct qry_opts plain = { .max_ms = 20000 };
	REQUIRE(qry_open(st, &plain, &q) == 0);
	CHECK_OK(q_rows(q, sql, &before));
	CHECK(before.n == 82);
	REQUIRE(qry_manifest(q, &m) == 0);
	REQUIRE(json_array_size(m) == 1);
	snprintf(oldroot, sizeof(oldroot), "%s", json_string_value(json_object_get(json_array_get(m, 0), "root")));
	json_decref(m);
	qry_close(&q);

	snprintf(path, sizeof(path), "%s/aed2.csv", root);
	REQUIRE(drop_lines_fn(data("aed/222127_yaizu.csv"), path) == 0);
	struct publish_opts o = { .dataset = "aed", .schema_spec = "aed@1", .path = path };
	REQUIRE(publish_csv(st, pubs[3].key, &o, &res) == 0);
	CHECK(res.deleted == 3 && res.changed == 1 && res.added == 1 && res.new_size == 87);
	publish_result_fini(&res);

	REQUIRE(qry_open(st, &plain, &q) == 0);
	CHECK_OK(q_rows(q, sql, &now));
	CHECK(now.n == 80);
	CHECK(q_int(q, "SELECT COUNT(*) FROM aed WHERE NO = '0000000004'") == 0);
	CHECK(q_int(q, "SELECT MAX(_head_size) FROM aed") == 87);
	qry_close(&q);

	struct qry_asof pin = { "222127/aed", 82 };
	struct qry_opts asof = { .asof = &pin, .nasof = 1, .max_ms = 20000, .why = why, .whylen = sizeof(why) };
	REQUIRE(qry_open(st, &asof, &q) == 0);
	CHECK_OK(q_rows(q, sql, &again));
	CHECK(again.n == before.n);
	sort_rows(&before);
	sort_rows(&again);
	for (size_t i = 0; i < again.n && i < before.n; i++)
		CHECK_STREQ(again.v[i], before.v[i]);
	REQUIRE(qry_manifest(q, &m) == 0);
	CHECK(json_array_size(m) == 1);
	CHECK_STREQ(json_string_value(json_object_get(json_array_get(m, 0), "root")), oldroot);
	CHECK(json_integer_value(json_object_get(json_array_get(m, 0), "head_size")) == 82);
	json_decref(m);
	CHECK(q_int(q, "SELECT CAST(COUNT(DISTINCT _head_size) || MIN(_head_size) AS INTEGER) FROM aed") == 182);
	/* Lookups, ranges and _seq on the fold agree with a scan of it. */
	CHECK(plan_of(q, "aed", "SELECT 名称 FROM aed WHERE NO = '0000000004'") == 2);
	CHECK(q_int(q, "SELECT COUNT(*) FROM aed WHERE NO = '0000000004'") == 1);
	CHECK(q_int(q, "SELECT COUNT(*) FROM aed WHERE NO = '0000009999'") == 0);
	CHECK(q_int(q, "SELECT COUNT(*) FROM aed WHERE NO BETWEEN '0000000002' AND '0000000006'") == 5);
	CHECK(q_int(q, "SELECT COUNT(*) FROM aed WHERE NO || '' BETWEEN '0000000002' AND '0000000006'") == 5);
	CHECK(q_int(q, "SELECT COUNT(*) FROM aed WHERE _seq = 3") == 1);
	CHECK(q_int(q, "SELECT COUNT(*) FROM aed a JOIN aed b ON b.住所 = a.住所") ==
	      q_int(q, "SELECT COUNT(*) FROM aed a JOIN aed b ON b.住所 || '' = a.住所"));
	CHECK(q_int(q, "SELECT COUNT(*) FROM aed a JOIN aed b ON b.住所 = a.住所") >= 82);
	CHECK(q_int(q, "SELECT COUNT(*) FROM aed WHERE _seq = 84") == 0);
	CHECK(q_int(q, "SELECT CAST(group_concat(_seq, '') AS INTEGER) FROM "
		    "(SELECT _seq FROM aed WHERE _seq >= 78 ORDER BY _seq)") == 78798081);
	CHECK(q_int(q, "SELECT COUNT(*) FROM aed WHERE _seq > 0 AND _seq < 1000") == 81);
	/* Pinned: a dataset the as-of list does not name is left out. */
	CHECK(q_int(q, "SELECT COUNT(*) FROM designated_shelters") == 0);
	qry_close(&q);

	/* A redacted entry leaves the old states too: the fold reads the
	 * stub's key, and the row it upserted is gone, not an error. */
	struct redact_req rr = { pubs[3].key, "222127/aed", 0 };
	REQUIRE(qry_open(st, &asof, &q) == 0);
	rr.seq = (uint64_t)q_int(q, "SELECT _seq FROM aed WHERE NO = '0000000004'");
	qry_close(&q);
	REQUIRE(store_write(st, redact_fn, &rr) == 0);
	REQUIRE(qry_open(st, &asof, &q) == 0);
	CHECK(q_int(q, "SELECT COUNT(*) FROM aed") == 81);
	CHECK(q_int(q, "SELECT COUNT(*) FROM aed WHERE NO = '0000000004'") == 0);
	CHECK(q_int(q, "SELECT COUNT(*) FROM aed WHERE NO = '0000000005'") == 1);
	qry_close(&q);
	REQUIRE(qry_open(st, &plain, &q) == 0);
	CHECK(q_int(q, "SELECT COUNT(*) FROM aed") == 80);
	/* In log order too (a _seq range reads the log, past the stub). */
	CHECK(q_int(q, "SELECT COUNT(*) FROM aed WHERE _seq BETWEEN 0 AND 1000") == 80);
	qry_close(&q);

	/* Heads this node cannot answer from. */
	pin.size = 50;
	CHECK_RC(qry_open(st, &asof, &q), MU_E_USAGE);
	CHECK(strstr(why, "no signed head at size 50") != NULL);
	pin.size = 1000;
	CHECK_RC(qry_open(st, &asof, &q), MU_E_USAGE);
	pin.dataset = "222127/nosuch";
	CHECK_RC(qry_open(st, &asof, &q), -ENOENT);
	CHECK(strstr(why, "222127/nosuch") != NULL);
	CHECK(q == NULL);
	rows_fini(&before);
	rows_fini(&now);
	rows_fini(&again);
}

/* members_view and only_publishers decide which datasets exist. */
static void test_access(void)
{
	struct qry *q = NULL;
	const char *only[] = { "012041" };
	struct qry_opts pub = { 0 }, members = { .members_view = 1 },
			one = { .only_publishers = only, .nonly = 1 };
	char *err = NULL;

	setup();
	REQUIRE(ready == 1);
	REQUIRE(qry_open(all, &pub, &q) == 0);
	CHECK_RC(qry_exec(q, "SELECT COUNT(*) FROM wifi", NULL, NULL, &err), MU_E_USAGE);
	CHECK(err != NULL && strstr(err, "no such table") != NULL);
	free(err);
	qry_close(&q);
	REQUIRE(qry_open(all, &members, &q) == 0);
	CHECK(q_int(q, "SELECT COUNT(*) FROM wifi") == 17);
	qry_close(&q);
	REQUIRE(qry_open(all, &one, &q) == 0);
	CHECK(q_int(q, "SELECT COUNT(*) FROM evacuation_sites") == 79);
	CHECK(q_int(q, "SELECT COUNT(DISTINCT _publisher) FROM designated_shelters") == 1);
	qry_close(&q);
}

/* Nothing but reading, one statement, bounded time and memory. */
static void test_refusals(void)
{
	static const struct {
		const char *sql;
		int rc;
		const char *msg;
	} bad[] = {
		{ "INSERT INTO aed(NO) VALUES ('x')", MU_E_DENIED, "not authorized" },
		{ "DELETE FROM aed", MU_E_DENIED, "not authorized" },
		{ "UPDATE aed SET 名称 = 'x'", MU_E_DENIED, "not authorized" },
		{ "CREATE TABLE t(x)", MU_E_DENIED, "not authorized" },
		{ "CREATE TEMP VIEW v AS SELECT 1", MU_E_DENIED, "not authorized" },
		{ "DROP TABLE aed", MU_E_DENIED, "not authorized" },
		{ "ATTACH DATABASE '/tmp/mu-qry-attached.db' AS x", MU_E_DENIED, "not authorized" },
		{ "PRAGMA writable_schema = 1", MU_E_DENIED, "not authorized" },
		{ "PRAGMA journal_mode", MU_E_DENIED, "not authorized" },
		{ "SELECT load_extension('/lib/x86_64-linux-gnu/libm.so.6')", MU_E_DENIED, "not authorized" },
		{ "BEGIN", MU_E_DENIED, "not authorized" },
		{ "UPDATE sqlite_master SET sql = 'x'", MU_E_DENIED, "not authorized" },
		{ "SELECT 1; SELECT 2", MU_E_USAGE, "one statement only" },
		{ "SELECT COUNT(*) FROM aed; DROP TABLE aed", MU_E_USAGE, "one statement only" },
		{ "SELEKT 1", MU_E_USAGE, "syntax error" },
		{ "SELECT \"no such\" FROM aed", MU_E_USAGE, "no such column" },
		{ "  -- nothing\n", MU_E_USAGE, "no SQL statement" },
	};
	struct qry *q = NULL;
	struct qry_opts o = { .max_ms = 300, .max_heap_bytes = 24 << 20 };
	char *err = NULL;

	setup();
	REQUIRE(ready == 1);
	REQUIRE(qry_open(all, &o, &q) == 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_RC(qry_exec(q, bad[i].sql, NULL, NULL, &err), bad[i].rc);
		if (err == NULL || strstr(err, bad[i].msg) == NULL)
			fprintf(stderr, "%s: message \"%s\" lacks \"%s\"\n", bad[i].sql, err ? err : "", bad[i].msg);
		CHECK(err != NULL && strstr(err, bad[i].msg) != NULL);
		free(err);
		err = NULL;
	}
	CHECK(access("/tmp/mu-qry-attached.db", F_OK) != 0);
	/* Allowed: trailing comments, reading pragmas, a recursive CTE. */
	CHECK(q_int(q, "SELECT COUNT(*) FROM aed; -- done") == 82);
	CHECK(q_int(q, "SELECT COUNT(*) FROM pragma_table_info('aed')") == 22 + 4);
	CHECK(q_int(q, "SELECT SUM(value) FROM json_each('[1, 2, 3]')") == 6);
	CHECK(q_int(q, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 100) "
		    "SELECT SUM(x) FROM c") == 5050);

	/* An endless recursive CTE stops at the time limit. */
	int64_t t0 = mu_mono_us();
	CHECK_RC(qry_exec(q, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
			  "SELECT COUNT(*) FROM c", NULL, NULL, &err), MU_E_TIMEOUT);
	CHECK_STREQ(err, "query exceeded its time limit of 300 ms");
	CHECK(mu_mono_us() - t0 < 3000000);
	free(err);
	err = NULL;
	qry_close(&q);

	/* Memory: a 30 MB value does not fit under 24 MiB. */
	o.max_ms = 60000;
	REQUIRE(qry_open(all, &o, &q) == 0);
	CHECK_RC(qry_exec(q, "SELECT length(randomblob(30000000))", NULL, NULL, &err), MU_E_TOOBIG);
	CHECK_STREQ(err, "query exceeded its memory limit of 25165824 bytes");
	free(err);
	/* The limit is lifted after the statement, and the connection still works. */
	CHECK(sqlite3_hard_heap_limit64(-1) == 0);
	CHECK(q_int(q, "SELECT COUNT(*) FROM aed") == 82);
	qry_close(&q);
}

CHECK_TESTS = {
	{ "matches sqlite", test_matches_sqlite },
	{ "indexes", test_indexes },
	{ "log order", test_log_order },
	{ "provenance", test_provenance },
	{ "as of", test_as_of },
	{ "access", test_access },
	{ "refusals", test_refusals },
	{ NULL, NULL },
};
