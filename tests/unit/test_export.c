/*
 * test_export.c - datasets and catalogues out of the store: CSV that
 * publishes back to nothing new, older heads (as-of), JSON Lines and
 * GeoJSON, the DCAT and Data Package documents; valid time in exports and
 * queries; foreign keys checked at publish and joined in queries.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "check.h"
#include "export.h"
#include "head.h"
#include "mu_err.h"
#include "publish.h"
#include "qry.h"
#include "sig.h"
#include "store.h"
#include "testutil.h"

static char tmpdir[TU_DIR_MAX];
static struct store *st;
static struct sig_key *key;

static void node_drop(void)
{
	CHECK_OK(tu_node_drop(tmpdir, &st, &key));
}

static void node_new(const char *member)
{
	CHECK_OK(tu_node_new(tmpdir, "export", member, &st, &key));
}

static int publish_full(const char *dataset, const char *schema, const char *mapping,
			const char *license, const char *path, struct publish_result *res)
{
	struct publish_opts o = { .dataset = dataset, .schema_spec = schema,
				  .mapping_spec = mapping, .license = license, .path = path };
	return tu_publish(st, key, &o, res);
}

/* Publish and return what was appended (-1 on failure). */
static long long publish(const char *dataset, const char *schema, const char *mapping,
			 const char *path)
{
	struct publish_result res;
	int rc = publish_full(dataset, schema, mapping, NULL, path, &res);
	long long n = rc == 0 ? (long long)(res.added + res.changed + res.deleted) : -1;

	publish_result_fini(&res);
	return n;
}

/* Export to a file under tmpdir; its path, or NULL. */
static const char *export_to(const char *name, const char *dataset, enum export_format fmt,
			     uint64_t as_of, const char *valid_at, uint64_t *rows)
{
	struct export_opts o = { .dataset = dataset, .format = fmt, .as_of = as_of,
				 .valid_at = valid_at };
	const char *path = tu_path(tmpdir, name);
	char why[256];
	FILE *f = fopen(path, "w");
	int rc;

	if (f == NULL)
		return NULL;
	rc = export_dataset(st, &o, f, rows, why, sizeof(why));
	fclose(f);
	if (rc < 0)
		fprintf(stderr, "export %s: %s\n", dataset, why);
	return rc == 0 ? path : NULL;
}

static int same_file(const char *a, const char *b)
{
	size_t la, lb;
	char *x = tu_slurp(a, &la), *y = tu_slurp(b, &lb);
	int same = x && y && la == lb && memcmp(x, y, la) == 0;

	free(x);
	free(y);
	return same;
}

/* ---- dataset exports ---- */

/* Every kind of real file exports to CSV that publishes back to nothing:
 * direct publishes, a mapped one, a file with 20 extra columns dropped,
 * multi-line cells, booleans, dates and numbers. */
static void test_csv_round_trip(void)
{
	static const struct {
		const char *dataset, *schema, *mapping, *file;
		int ignore_extra;
	} files[] = {
		{ "aed", "aed@1", NULL, "aed/222127_yaizu.csv", 0 },
		{ "evacuation_space", NULL, "yaizu-to-evacuation_space", "evacuation_sites/222127_yaizu.csv", 0 },
		{ "tourism", "tourism@1", NULL, "tourism/222127_yaizu.csv", 1 },
		{ "toilets", "public_toilet@2", NULL, "public_toilet/222127_yaizu.csv", 0 },
		{ "gsi", "gsi_evacuation_site@1", NULL, "evacuation_sites/012025_hakodate_gsi.csv", 0 },
		{ "child_care", "child_care_facility@1", NULL, "child_care_facility/222127_yaizu.csv", 0 },
		{ "patients", "covid19_hokkaido_patients@1", NULL,
		  "covid19/010006_hokkaido_patients_20200329.csv", 0 },
	};

	node_new("222127");
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		struct publish_opts o = { .dataset = files[i].dataset, .schema_spec = files[i].schema,
					  .mapping_spec = files[i].mapping, .path = tu_data(files[i].file),
					  .ignore_extra_columns = files[i].ignore_extra };
		struct publish_result res;
		char ds[64], name[80];
		uint64_t rows = 0;

		CHECK_OK(publish_csv(st, key, &o, &res));
		uint64_t published = res.rows;
		publish_result_fini(&res);
		snprintf(ds, sizeof(ds), "222127/%s", files[i].dataset);
		snprintf(name, sizeof(name), "%s.csv", files[i].dataset);
		const char *out = export_to(name, ds, EXPORT_CSV, 0, NULL, &rows);
		REQUIRE(out != NULL);
		CHECK(rows == published);
		/* back in, with the schema alone: nothing appended */
		struct publish_opts back = { .dataset = files[i].dataset, .path = out,
					     .schema_spec = files[i].schema ? files[i].schema :
							    "evacuation_space@1" };
		CHECK_OK(publish_csv(st, key, &back, &res));
		if (res.unchanged != published)
			fprintf(stderr, "%s: %llu unchanged of %llu\n", ds,
				(unsigned long long)res.unchanged, (unsigned long long)published);
		CHECK(res.unchanged == published && res.batches == 0);
		publish_result_fini(&res);
	}
	node_drop();
}

/* As-of: the head of an older size gives the rows it had, in the same
 * bytes as an export taken then; a head that does not exist is refused. */
static void test_as_of(void)
{
	const char *v1 = "id,名称,緯度,開設日,ok\n1,中央,43.0,2020-04-01,1\n2,北,43.1,,0\n3,南,42.9,2021/5/6,\n";
	const char *v2 = "id,名称,緯度,開設日,ok\n1,中央(改),43.0,2020-04-01,1\n3,南,42.9,2021/5/6,\n4,西,43.2,,1\n";
	const char *schema;
	uint64_t rows;
	char why[256];

	node_new("011002");
	schema = tu_write(tmpdir, "sites.json",
		"{\"name\":\"sites\",\"version\":1,\"primaryKey\":\"id\",\"fields\":["
		"{\"name\":\"id\",\"type\":\"integer\"},{\"name\":\"名称\",\"type\":\"string\"},"
		"{\"name\":\"緯度\",\"type\":\"number\"},{\"name\":\"開設日\",\"type\":\"date\"},"
		"{\"name\":\"ok\",\"type\":\"boolean\",\"trueValues\":[\"1\"],\"falseValues\":[\"0\"]}]}");
	char sch[512];
	snprintf(sch, sizeof(sch), "%s", schema);
	CHECK(publish("sites", sch, NULL, tu_write(tmpdir, "v1.csv", v1)) == 3);
	const char *then = export_to("then.csv", "011002/sites", EXPORT_CSV, 0, NULL, &rows);
	REQUIRE(then != NULL);
	char then_path[512];
	snprintf(then_path, sizeof(then_path), "%s", then);
	CHECK(rows == 3);
	char *text = tu_slurp(then_path, NULL);
	CHECK(text != NULL && strcmp(text, "id,名称,緯度,開設日,ok\r\n1,中央,43,2020-04-01,true\r\n"
				 "2,北,43.1,,false\r\n3,南,42.9,2021-05-06,\r\n") == 0);
	free(text);
	CHECK(publish("sites", sch, NULL, tu_write(tmpdir, "v2.csv", v2)) == 3);  /* 1 changed, 4 new, 2 gone */
	const char *old = export_to("old.csv", "011002/sites", EXPORT_CSV, 3, NULL, &rows);
	CHECK(old != NULL && same_file(old, then_path));
	const char *now = export_to("now.csv", "011002/sites", EXPORT_CSV, 0, NULL, &rows);
	CHECK(now != NULL && rows == 3);
	text = now ? tu_slurp(now, NULL) : NULL;
	CHECK(text != NULL && strstr(text, "1,中央(改),43,") != NULL && strstr(text, "\r\n2,") == NULL &&
	      strstr(text, "4,西,43.2,,true") != NULL);
	free(text);
	/* 5 is not a signed head (the log went 3 -> 6); 7 is past the end */
	struct export_opts o = { .dataset = "011002/sites", .as_of = 5 };
	FILE *sink = fopen("/dev/null", "w");
	CHECK_RC(export_dataset(st, &o, sink, NULL, why, sizeof(why)), MU_E_USAGE);
	CHECK(strstr(why, "no signed head at size 5") != NULL);
	o.as_of = 7;
	CHECK_RC(export_dataset(st, &o, sink, NULL, why, sizeof(why)), MU_E_USAGE);
	o.dataset = "011002/nosuch";
	o.as_of = 0;
	CHECK_RC(export_dataset(st, &o, sink, NULL, why, sizeof(why)), -ENOENT);
	CHECK(strstr(why, "011002/nosuch") != NULL);
	/* GeoJSON needs points: this schema has 緯度 but no 経度 */
	o.dataset = "011002/sites";
	o.format = EXPORT_GEOJSON;
	CHECK_RC(export_dataset(st, &o, sink, NULL, why, sizeof(why)), MU_E_USAGE);
	fclose(sink);
	node_drop();
}

static void test_jsonl_and_geojson(void)
{
	uint64_t rows;
	json_error_t jerr;

	node_new("222127");
	CHECK(publish("aed", "aed@1", NULL, tu_data("aed/222127_yaizu.csv")) == 82);
	const char *jl = export_to("aed.jsonl", "222127/aed", EXPORT_JSONL, 0, NULL, &rows);
	REQUIRE(jl != NULL);
	CHECK(rows == 82);
	FILE *f = fopen(jl, "r");
	char line[8192];
	size_t n = 0;
	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		json_t *o = json_loads(line, 0, &jerr);
		CHECK(o != NULL && json_object_size(o) == 22);
		if (n == 0) {
			CHECK(json_is_real(json_object_get(o, "緯度")) &&
			      json_real_value(json_object_get(o, "緯度")) == 34.866918);
			CHECK_STREQ(json_string_value(json_object_get(o, "NO")), "0000000001");
			CHECK(json_is_null(json_object_get(o, "方書")));
		}
		json_decref(o);
		n++;
	}
	if (f)
		fclose(f);
	CHECK(n == 82);
	const char *gj = export_to("aed.geojson", "222127/aed", EXPORT_GEOJSON, 0, NULL, &rows);
	REQUIRE(gj != NULL);
	json_t *fc = json_load_file(gj, 0, &jerr);
	REQUIRE(fc != NULL);
	CHECK_STREQ(json_string_value(json_object_get(fc, "type")), "FeatureCollection");
	json_t *feats = json_object_get(fc, "features");
	CHECK(json_array_size(feats) == 82);
	json_t *c = json_object_get(json_object_get(json_array_get(feats, 0), "geometry"), "coordinates");
	CHECK(json_real_value(json_array_get(c, 0)) == 138.323171 &&
	      json_real_value(json_array_get(c, 1)) == 34.866918);
	json_decref(fc);
	node_drop();
}

/* ---- catalogues ---- */

/* Forget a dataset's local catalogue record of its licence, as a replica
 * that never saw the publish has none. */
static int forget_license(struct store_txn *t, void *ctx)
{
	struct store_dataset ds;
	int rc = store_dataset_get(t, ctx, &ds);

	if (rc < 0)
		return rc;
	free(ds.license);
	ds.license = NULL;
	rc = store_dataset_put(t, &ds);
	store_dataset_fini(&ds);
	return rc;
}

/* The licence the newest signed head of a dataset carries ("" if none). */
static void head_license(const char *dataset, char *out, size_t cap)
{
	struct store_txn t;
	struct store_dataset ds;
	struct head_signed hs;
	const uint8_t *buf;
	size_t len;
	uint64_t size;

	out[0] = '\0';
	REQUIRE(store_read_begin(st, &t) == 0);
	if (store_dataset_get(&t, dataset, &ds) == 0) {
		if (store_head_latest(&t, ds.local_id, &size, &buf, &len) == 0 &&
		    head_decode(buf, len, &hs) == 0) {
			snprintf(out, cap, "%s", hs.hd->h.license ? hs.hd->h.license : "");
			head_signed_fini(&hs);
		}
		store_dataset_fini(&ds);
	}
	store_read_end(&t);
}

static void test_dcat(void)
{
	struct publish_result res;
	char root[65], why[256];
	json_error_t jerr;

	node_new("222127");
	CHECK_OK(publish_full("aed", "aed@1", NULL, "https://creativecommons.org/licenses/by/4.0/",
			      tu_data("aed/222127_yaizu.csv"), &res));
	publish_result_fini(&res);
	CHECK_OK(publish_full("patients", "covid19_hokkaido_patients@1", NULL, "CC BY",
			      tu_data("covid19/010006_hokkaido_patients_20200329.csv"), &res));
	sig_hex(res.root, 32, root);
	publish_result_fini(&res);
	const char *path = tu_path(tmpdir, "catalog.jsonld");
	FILE *f = fopen(path, "w");
	REQUIRE(f != NULL);
	CHECK_OK(export_dcat(st, "https://yaizu.example/musubi/", f, why, sizeof(why)));
	fclose(f);
	json_t *doc = json_load_file(path, 0, &jerr), *graph = json_object_get(doc, "@graph");
	REQUIRE(doc != NULL);
	CHECK_STREQ(json_string_value(json_object_get(json_object_get(doc, "@context"), "dcat")),
		    "http://www.w3.org/ns/dcat#");
	CHECK(json_array_size(graph) == 3);
	json_t *cat = json_array_get(graph, 0);
	CHECK_STREQ(json_string_value(json_object_get(cat, "@type")), "dcat:Catalog");
	CHECK(json_array_size(json_object_get(cat, "dcat:dataset")) == 2);
	json_t *aed = json_array_get(graph, 1), *pat = json_array_get(graph, 2);
	CHECK_STREQ(json_string_value(json_object_get(aed, "@id")),
		    "https://yaizu.example/musubi/dataset/222127/aed");
	CHECK_STREQ(json_string_value(json_object_get(json_object_get(aed, "dct:license"), "@id")),
		    "https://creativecommons.org/licenses/by/4.0/");
	CHECK(json_object_get(aed, "dct:spatial") != NULL);
	CHECK(json_object_get(aed, "dct:temporal") == NULL);   /* no date field */
	json_t *dist = json_array_get(json_object_get(pat, "dcat:distribution"), 0);
	CHECK_STREQ(json_string_value(json_object_get(json_object_get(dist, "spdx:checksum"),
						      "spdx:checksumValue")), root);
	CHECK_STREQ(json_string_value(json_object_get(json_object_get(dist, "dcat:mediaType"), "@id")),
		    "https://www.iana.org/assignments/media-types/text/csv");
	json_t *tmp = json_object_get(pat, "dct:temporal");
	CHECK_STREQ(json_string_value(json_object_get(json_object_get(tmp, "dcat:startDate"), "@value")),
		    "2020-01-28T00:00:00");
	CHECK_STREQ(json_string_value(json_object_get(json_object_get(tmp, "dcat:endDate"), "@value")),
		    "2020-03-28T00:00:00");
	CHECK_STREQ(json_string_value(json_object_get(json_object_get(pat, "dct:license"), "rdfs:label")),
		    "CC BY");
	CHECK(json_integer_value(json_object_get(pat, "musubi:rows")) == 172);
	json_decref(doc);

	/* The publisher signs the licence into its heads; a node without the
	 * catalogue record (a replica) names the licence from the head. */
	char lic[128];
	head_license("222127/aed", lic, sizeof(lic));
	CHECK_STREQ(lic, "https://creativecommons.org/licenses/by/4.0/");
	CHECK_OK(store_write(st, forget_license, (void *)"222127/aed"));
	f = fopen(path, "w");
	REQUIRE(f != NULL);
	CHECK_OK(export_dcat(st, "https://yaizu.example/musubi/", f, why, sizeof(why)));
	fclose(f);
	doc = json_load_file(path, 0, &jerr);
	REQUIRE(doc != NULL);
	aed = json_array_get(json_object_get(doc, "@graph"), 1);
	CHECK_STREQ(json_string_value(json_object_get(json_object_get(aed, "dct:license"), "@id")),
		    "https://creativecommons.org/licenses/by/4.0/");
	json_decref(doc);
	/* A publish without --license keeps signing the licence it had. */
	CHECK_OK(publish_full("patients", NULL, "hokkaido-patients-raw-to-covid19_hokkaido_patients",
			      NULL, tu_data("covid19/010006_hokkaido_patients_raw_20200309.csv"), &res));
	CHECK(res.batches == 1);
	publish_result_fini(&res);
	head_license("222127/patients", lic, sizeof(lic));
	CHECK_STREQ(lic, "CC BY");
	node_drop();
}

static void test_datapackage(void)
{
	char why[256], path[600], hex[65];
	json_error_t jerr;
	uint8_t digest[32];
	size_t len;

	node_new("222127");
	CHECK(publish("aed", "aed@1", NULL, tu_data("aed/222127_yaizu.csv")) == 82);
	CHECK(publish("toilets", "public_toilet@2", NULL, tu_data("public_toilet/222127_yaizu.csv")) == 112);
	CHECK_OK(export_datapackage(st, tu_path(tmpdir, "pkg"), why, sizeof(why)));
	snprintf(path, sizeof(path), "%s/pkg/datapackage.json", tmpdir);
	json_t *pkg = json_load_file(path, 0, &jerr), *res = json_object_get(pkg, "resources");
	REQUIRE(pkg != NULL);
	CHECK_STREQ(json_string_value(json_object_get(pkg, "profile")), "tabular-data-package");
	CHECK(json_array_size(res) == 2);
	for (size_t i = 0; i < json_array_size(res); i++) {
		json_t *r = json_array_get(res, i);
		snprintf(path, sizeof(path), "%s/pkg/%s", tmpdir,
			 json_string_value(json_object_get(r, "path")));
		char *csv = tu_slurp(path, &len);
		REQUIRE(csv != NULL);
		EVP_Digest(csv, len, digest, NULL, EVP_sha256(), NULL);
		sig_hex(digest, 32, hex);
		CHECK(strncmp(json_string_value(json_object_get(r, "hash")), "sha256:", 7) == 0 &&
		      strcmp(json_string_value(json_object_get(r, "hash")) + 7, hex) == 0);
		CHECK(json_integer_value(json_object_get(r, "bytes")) == (json_int_t)len);
		size_t lines = 0;
		for (size_t k = 0; k < len; k++)
			lines += csv[k] == '\n';
		json_int_t rows = json_integer_value(json_object_get(json_object_get(r, "musubi"), "rows"));
		CHECK(rows == (i == 0 ? 82 : 112));
		if (i == 0)
			CHECK(lines == 83);   /* no cell of the AED file spans lines */
		/* booleans keep no trueValues the canonical CSV would break */
		json_t *fields = json_object_get(json_object_get(r, "schema"), "fields");
		for (size_t k = 0; k < json_array_size(fields); k++)
			CHECK(json_object_get(json_array_get(fields, k), "trueValues") == NULL);
		free(csv);
	}
	json_decref(pkg);
	node_drop();
}

/* ---- valid time ---- */

struct count {
	long long n;
};

static int count_row(void *ctx, sqlite3_stmt *stmt)
{
	struct count *c = ctx;

	if (sqlite3_data_count(stmt) > 0)
		c->n = sqlite3_column_int64(stmt, 0);
	return 0;
}

static long long query_count(const char *valid_at, const char *sql)
{
	struct qry_opts o = { .valid_at = valid_at };
	struct qry *q = NULL;
	struct count c = { -1 };
	char *err = NULL;

	if (qry_open(st, &o, &q) < 0)
		return -2;
	if (qry_exec(q, sql, count_row, &c, &err) < 0) {
		fprintf(stderr, "query: %s\n", err ? err : "");
		c.n = -3;
	}
	free(err);
	qry_close(&q);
	return c.n;
}

/* address@2 marks 効力発生日 / 廃止日: a town abolished on 2024-04-01 is
 * in force the day before and not that day; a town made that day the
 * other way round; the real towns (no dates) are in force at any date. */
static void test_valid_time(void)
{
	char *csv = tu_slurp(tu_data("addresses/012025_hakodate.csv"), NULL), *more = NULL;
	uint64_t rows;

	node_new("012025");
	REQUIRE(csv != NULL);
	/* the file's header gains the two date columns, every row two blanks */
	FILE *m = open_memstream(&more, &(size_t){ 0 });
	for (char *line = strtok(csv, "\n"); line != NULL; line = strtok(NULL, "\n")) {
		size_t n = strlen(line);
		if (n > 0 && line[n - 1] == '\r')
			line[--n] = '\0';
		fprintf(m, "%s,%s\n", line, strncmp(line, "市区町村コード", 21) == 0 ? "効力発生日,廃止日" : ",");
	}
	fputs("012025,北海道,函館市,旧町,,,,1970-01-01,2024-04-01\n", m);
	fputs("012025,北海道,函館市,新町,,,,2024-04-01,\n", m);
	fclose(m);
	free(csv);
	CHECK(publish("address", "address@2", NULL, tu_write(tmpdir, "addr.csv", more)) == 209);
	free(more);
	CHECK(export_to("all.csv", "012025/address", EXPORT_CSV, 0, NULL, &rows) && rows == 209);
	CHECK(export_to("d1.csv", "012025/address", EXPORT_CSV, 0, "2024-03-31", &rows) && rows == 208);
	CHECK(export_to("d2.csv", "012025/address", EXPORT_CSV, 0, "2024-04-01", &rows) && rows == 208);
	CHECK(export_to("d3.csv", "012025/address", EXPORT_CSV, 0, "1969-12-31", &rows) && rows == 207);
	CHECK(query_count(NULL, "SELECT count(*) FROM address") == 209);
	CHECK(query_count("2024-03-31", "SELECT count(*) FROM address WHERE 町丁目 = '旧町'") == 1);
	CHECK(query_count("2024-04-01", "SELECT count(*) FROM address WHERE 町丁目 = '旧町'") == 0);
	CHECK(query_count("2024-04-01", "SELECT count(*) FROM address WHERE 町丁目 = '新町'") == 1);
	CHECK(query_count("2024-04-01", "SELECT count(*) FROM address") == 208);
	/* the documented SQL idiom says the same without the option */
	CHECK(query_count(NULL, "SELECT count(*) FROM address WHERE (効力発生日 IS NULL OR 効力発生日 <= "
			  "'2024-04-01') AND (廃止日 IS NULL OR 廃止日 > '2024-04-01')") == 208);
	node_drop();
}

/* ---- references between registries ---- */

static const char facility_schema[] =
	"{\"name\":\"facility\",\"version\":1,\"primaryKey\":\"ID\",\"fields\":["
	"{\"name\":\"ID\",\"type\":\"string\"},{\"name\":\"名称\",\"type\":\"string\"},"
	"{\"name\":\"市区町村コード\",\"type\":\"string\"},{\"name\":\"町丁目\",\"type\":\"string\"}],"
	"\"foreignKeys\":[{\"fields\":[\"市区町村コード\",\"町丁目\"],"
	"\"reference\":{\"resource\":\"%s\",\"fields\":[\"市区町村コード\",\"町丁目\"]}}]}";

static void test_foreign_keys(void)
{
	struct publish_result res;
	char schema[1024], path[600];

	node_new("012025");
	snprintf(schema, sizeof(schema), facility_schema, "address");
	snprintf(path, sizeof(path), "%s", tu_write(tmpdir, "facility.json", schema));
	const char *good = tu_write(tmpdir, "good.csv", "ID,名称,市区町村コード,町丁目\n"
				     "f1,市役所,012025,東雲町\nf2,駅,012025,若松町\nf3,未定,,\n");
	/* no address registry on this node yet */
	CHECK_RC(publish_full("facility", path, NULL, NULL, good, &res), MU_E_SCHEMA);
	CHECK(res.nkept > 0 && strstr(res.errors[0].message, "does not hold") != NULL &&
	      strstr(res.errors[0].message, "address") != NULL);
	publish_result_fini(&res);
	CHECK(publish("address", "address@1", NULL, tu_data("addresses/012025_hakodate.csv")) == 207);
	CHECK(publish("facility", path, NULL, good) == 3);
	const char *bad = tu_write(tmpdir, "bad.csv", "ID,名称,市区町村コード,町丁目\n"
				    "f1,市役所,012025,東雲町\nf2,駅,012025,若松町九丁目\n"
				    "f4,港,011002,東雲町\n");
	CHECK_RC(publish_full("facility", path, NULL, NULL, bad, &res), MU_E_SCHEMA);
	CHECK(res.nerrors == 2);
	CHECK(res.nkept == 2 && res.errors[0].line == 3 && res.errors[0].column == 3 &&
	      strstr(res.errors[0].message, "\"012025,若松町九丁目\"") != NULL &&
	      strstr(res.errors[0].message, "no such key in any publisher's address") != NULL);
	CHECK(res.nkept == 2 && res.errors[1].line == 4);
	publish_result_fini(&res);
	/* a reference to one publisher's dataset */
	snprintf(schema, sizeof(schema), facility_schema, "011002/address");
	snprintf(path, sizeof(path), "%s", tu_write(tmpdir, "facility2.json", schema));
	CHECK_RC(publish_full("facility2", path, NULL, NULL, good, &res), MU_E_SCHEMA);
	CHECK(res.nkept > 0 && strstr(res.errors[0].message, "011002/address") != NULL);
	publish_result_fini(&res);
	/* the join, as docs/DATA.md writes it */
	CHECK(query_count(NULL, "SELECT count(*) FROM facility f JOIN address a ON "
			  "a.市区町村コード = f.市区町村コード AND a.町丁目 = f.町丁目 AND a.小字 IS NULL "
			  "WHERE a.緯度 IS NOT NULL") == 2);
	node_drop();
}

CHECK_TESTS = {
	{ "csv round trip", test_csv_round_trip },
	{ "as of an older head", test_as_of },
	{ "jsonl and geojson", test_jsonl_and_geojson },
	{ "dcat", test_dcat },
	{ "datapackage", test_datapackage },
	{ "valid time", test_valid_time },
	{ "foreign keys", test_foreign_keys },
	{ NULL, NULL },
};
