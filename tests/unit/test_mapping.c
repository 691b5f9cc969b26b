/*
 * test_mapping.c - column mappings: documents that are refused, records
 * mapped one by one, and every real layout of deploy/data that has a
 * shipped mapping published through it, with row counts and values
 * checked against the source files and the mapping's SHA-256 in each
 * entry's provenance. Layouts that miss a column evacuation_space@1 or
 * aed@1 requires fail naming it, and publish onto their @2; both Hokkaido
 * patient layouts publish onto covid19_patients@2.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "mapping.h"
#include "mu_err.h"
#include "publish.h"
#include "rec.h"
#include "schema.h"
#include "sig.h"
#include "store.h"
#include "testutil.h"

static char tmpdir[TU_DIR_MAX];
static struct store *st;
static struct sig_key *key;

static int publish(const char *dataset, const char *schema, const char *mapping, const char *path,
		   struct publish_result *res)
{
	struct publish_opts o = { .dataset = dataset, .schema_spec = schema,
				  .mapping_spec = mapping, .path = path };
	return tu_publish(st, key, &o, res);
}

/* Some error of res mentions every one of the texts (NULL-terminated). */
static int has_error(const struct publish_result *res, const char *const *texts)
{
	for (size_t e = 0; e < res->nkept; e++) {
		int all = 1;
		for (size_t k = 0; texts[k] != NULL; k++)
			all &= strstr(res->errors[e].message, texts[k]) != NULL;
		if (all)
			return 1;
	}
	return 0;
}

/*
 * The value of field `name` in the row of key `pk` of dataset (canonical
 * text, "" for NULL or no row), and the entry's provenance mapping hash.
 */
static int row_value(const char *dataset, const char *pk, const char *name, char *out, size_t cap,
		     uint8_t mapping_sha[32])
{
	struct store_txn t;
	struct store_dataset ds;
	struct store_state_val sv;
	struct rec_entry_decoded *d = NULL;
	struct rec_row *row = NULL;
	struct schema *s = NULL;
	const uint8_t *buf;
	size_t len;
	char ref[160];
	int rc;

	out[0] = '\0';
	if ((rc = store_read_begin(st, &t)) < 0)
		return rc;
	if ((rc = store_dataset_get(&t, dataset, &ds)) < 0)
		goto out;
	snprintf(ref, sizeof(ref), "%s@%u", ds.schema_id, ds.schema_version);
	if ((rc = store_state_get(&t, ds.local_id, pk, strlen(pk), &sv)) == 0 &&
	    (rc = store_entry_get(&t, ds.local_id, sv.seq, &buf, &len)) == 0 &&
	    (rc = rec_entry_decode(buf, len, &d)) == 0 &&
	    (rc = rec_row_decode(d->e.row, d->e.row_len, &row)) == 0 &&
	    (rc = store_schema_get(&t, ref, &buf, &len)) == 0 &&
	    (rc = schema_parse((const char *)buf, len, &s, NULL)) == 0) {
		long f = schema_field_index(s, name, strlen(name));
		if (f < 0 || (size_t)f >= row->n)
			rc = -ENOENT;
		else
			schema_format(&row->values[f], out, cap);
		if (mapping_sha != NULL)
			memcpy(mapping_sha, d->e.prov.has_mapping ? d->e.prov.mapping_sha256 :
			       (const uint8_t *)"", d->e.prov.has_mapping ? 32 : 1);
	}
	store_dataset_fini(&ds);
out:
	schema_destroy(&s);
	rec_row_free(&row);
	rec_entry_free(&d);
	store_read_end(&t);
	return rc;
}

/* Cell `col` (0-based) of the data record whose first cell is `first`,
 * read from a real file with the project's CSV reader, after skipping
 * `skip` records. */
static int source_cell(const char *path, size_t skip, const char *first, size_t col, char *out,
		       size_t cap)
{
	FILE *f = fopen(path, "rb");
	struct csv_reader *r = NULL;
	struct csv_record rec;
	int rc, found = 0;

	if (f == NULL || csv_open_fd(fileno(f), &r) < 0) {
		if (f)
			fclose(f);
		return 0;
	}
	while (!found && (rc = csv_next(r, &rec)) == 1) {
		if (skip > 0) {
			skip--;
			continue;
		}
		if (strcmp(rec.fields[0].ptr, first) == 0 && col < rec.nfields) {
			snprintf(out, cap, "%s", rec.fields[col].ptr);
			found = 1;
		}
	}
	csv_close(&r);
	fclose(f);
	return found;
}

/* Data records of a real file as the project's CSV reader counts them:
 * every record after the first `skip` (metadata lines and the header). */
static uint64_t source_rows(const char *path, size_t skip)
{
	FILE *f = fopen(path, "rb");
	struct csv_reader *r = NULL;
	struct csv_record rec;
	uint64_t n = 0;

	if (f == NULL || csv_open_fd(fileno(f), &r) < 0) {
		if (f)
			fclose(f);
		return 0;
	}
	while (csv_next(r, &rec) == 1) {
		if (skip > 0)
			skip--;
		else
			n++;
	}
	csv_close(&r);
	fclose(f);
	return n;
}

/* The schema a dataset's rows were published under, as "id@version". */
static void dataset_schema(const char *dataset, char *out, size_t cap)
{
	struct store_txn t;
	struct store_dataset ds;

	out[0] = '\0';
	if (store_read_begin(st, &t) < 0)
		return;
	if (store_dataset_get(&t, dataset, &ds) == 0) {
		snprintf(out, cap, "%s@%u", ds.schema_id, ds.schema_version);
		store_dataset_fini(&ds);
	}
	store_read_end(&t);
}

/* ---- documents ---- */

static void test_refused_documents(void)
{
	static const struct {
		const char *json, *why;
	} cases[] = {
		{ "[]", "must be a JSON object" },
		{ "{\"title\":\"x\"}", "\"name\" is missing" },
		{ "{\"name\":\"Bad Name\"}", "1 to 64 of a-z" },
		{ "{\"name\":\"m\",\"renam\":{}}", "unknown key \"renam\"" },
		{ "{\"name\":\"m\",\"normalize\":{\"digit\":true}}", "unknown option \"digit\"" },
		{ "{\"name\":\"m\",\"normalize\":{\"trim\":1}}", "must be true or false" },
		{ "{\"name\":\"m\",\"split\":[{\"column\":\"a\",\"into\":[\"b\"],\"separator\":\",\"}]}",
		  "at least two columns" },
		{ "{\"name\":\"m\",\"split\":[{\"column\":\"a\",\"into\":[\"b\",\"c\"]}]}",
		  "\"separator\" is missing" },
		{ "{\"name\":\"m\",\"join\":[{\"columns\":[\"a\",\"b\"]}]}", "\"into\" is missing" },
		{ "{\"name\":\"m\",\"values\":[{\"columns\":[\"a\"],\"map\":{}}]}", "non-empty object" },
		{ "{\"name\":\"m\",\"values\":[{\"columns\":[\"a\"],\"map\":{\"x\":\"1\"},\"other\":\"drop\"}]}",
		  "\"other\" must be" },
		{ "{\"name\":\"m\",\"rename\":{\"a\":\"\"}}", "non-empty string" },
		{ "{\"name\":\"m\",\"skip_prefix\":\"\"}", "skip every line" },
		{ "{\"name\":\"m\",\"name\":\"n\"}", "invalid JSON" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mapping *m = NULL;
		char *why = NULL;
		CHECK_RC(mapping_parse(cases[i].json, strlen(cases[i].json), &m, &why), MU_E_SCHEMA);
		CHECK(m == NULL);
		if (why == NULL || strstr(why, cases[i].why) == NULL)
			fprintf(stderr, "case %zu: why is \"%s\", wanted \"%s\"\n", i, why ? why : "(null)",
				cases[i].why);
		CHECK(why != NULL && strstr(why, cases[i].why) != NULL);
		free(why);
	}
}

/* Every built-in parses, has a unique name, names a built-in schema, and
 * resolves by its name to the same bytes (same digest). */
static void test_builtins(void)
{
	size_t n = mapping_builtin_count();
	char *why = NULL;
	struct mapping *m = NULL;

	CHECK(n >= 6);
	for (size_t i = 0; i < n; i++) {
		const char *json = mapping_builtin_json(i);
		struct mapping *a = NULL, *b = NULL;
		struct schema *s = NULL;
		CHECK_OK(mapping_parse(json, strlen(json), &a, &why));
		REQUIRE(a != NULL);
		CHECK_OK(mapping_resolve(mapping_name(a), &b, &why));
		REQUIRE(b != NULL);
		CHECK(memcmp(mapping_digest(a), mapping_digest(b), 32) == 0);
		CHECK(mapping_schema(a) != NULL);
		CHECK_OK(schema_resolve(mapping_schema(a), &s, NULL));
		for (size_t k = 0; k < i; k++) {
			struct mapping *c = NULL;
			const char *other = mapping_builtin_json(k);
			CHECK_OK(mapping_parse(other, strlen(other), &c, NULL));
			CHECK(c != NULL && strcmp(mapping_name(c), mapping_name(a)) != 0);
			mapping_destroy(&c);
		}
		schema_destroy(&s);
		mapping_destroy(&a);
		mapping_destroy(&b);
	}
	CHECK_RC(mapping_resolve("no-such-mapping", &m, &why), -ENOENT);
	CHECK(why != NULL && strstr(why, "no-such-mapping") != NULL);
	free(why);
	CHECK(mapping_builtin_json(n) == NULL);
}

/* ---- records ---- */

/* Feed CSV text through a mapping; the output records as "a|b|c" lines. */
static int run_text(const char *mapping_json, const char *csv, char *out, size_t cap,
		    struct mapping_error *err)
{
	struct mapping *m = NULL;
	struct mapping_run *r = NULL;
	struct csv_reader *rd = NULL;
	struct csv_record in, rec;
	char *why = NULL;
	size_t o = 0;
	int rc;

	out[0] = '\0';
	if ((rc = mapping_parse(mapping_json, strlen(mapping_json), &m, &why)) < 0) {
		fprintf(stderr, "mapping: %s\n", why ? why : "");
		free(why);
		return rc;
	}
	if ((rc = mapping_run_new(m, &r)) < 0 || (rc = csv_open_mem(csv, strlen(csv), &rd)) < 0)
		goto out;
	while ((rc = csv_next(rd, &in)) == 1) {
		if ((rc = mapping_apply(r, &in, &rec, err)) < 0)
			goto out;
		if (rc == MAPPING_SKIP)
			continue;
		for (size_t i = 0; i < rec.nfields; i++)
			o += (size_t)snprintf(out + o, cap - o, "%s%s", i ? "|" : "", rec.fields[i].ptr);
		o += (size_t)snprintf(out + o, cap - o, "\n");
	}
out:
	csv_close(&rd);
	mapping_run_destroy(&r);
	mapping_destroy(&m);
	return rc;
}

static void test_linkdata_record_by_record(void)
{
	static const char map[] =
		"{\"name\":\"t\",\"skip_prefix\":\"#\",\"header_line\":\"#property\","
		"\"rename\":{\"#property\":\"NO\",\"name\":\"名称\"},\"drop\":[\"note\"],"
		"\"normalize\":{\"digits\":true,\"nbsp\":true,\"trim\":true,\"newlines\":true},"
		"\"split\":[{\"column\":\"location\",\"into\":[\"緯度\",\"経度\"],\"separator\":\",\"}],"
		"\"join\":[{\"columns\":[\"addr\",\"room\"],\"into\":\"住所\",\"separator\":\" \"}],"
		"\"values\":[{\"columns\":[\"flag\"],\"map\":{\"○\":\"1\",\"△\":\"\",\"\":\"\"},\"other\":\"error\"}],"
		"\"constant\":{\"市区町村コード\":\"372013\"}}";
	static const char csv[] =
		"\xEF\xBB\xBF#LINK,,,,,,\n"
		"#license,http://creativecommons.org/licenses/by/3.0/deed.ja,,,,,\n"
		"#property,name,location,flag,note,addr,room\n"
		"#object_type_xsd,string,string,string,string,string,string\n"
		"１,\"日新\xC2\xA0\",\"34.3475, 134.03\",○,x,高松市瀬戸内町１８-２,\n"
		"２,\"栗林\r\n公園\",,△,y,高松市栗林町,２階\n";
	char out[1024];
	struct mapping_error err;

	CHECK_OK(run_text(map, csv, out, sizeof(out), &err));
	CHECK_STREQ(out, "NO|名称|flag|緯度|経度|住所|市区町村コード\n"
			 "1|日新|1|34.3475|134.03|高松市瀬戸内町18-2|372013\n"
			 "2|栗林 公園||||高松市栗林町 2階|372013\n");

	/* A mark the values map does not know is refused, naming the column. */
	static const char bad[] = "#property,name,location,flag,note,addr,room\n"
				  "1,a,\"1,2\",◎,,b,\n";
	CHECK_RC(run_text(map, bad, out, sizeof(out), &err), MU_E_SCHEMA);
	CHECK(err.column == 4);
	CHECK(strstr(err.message, "\"◎\"") != NULL && strstr(err.message, "flag") != NULL);
	/* A location without its comma cannot be split. */
	static const char nosplit[] = "#property,name,location,flag,note,addr,room\n"
				      "1,a,34.3,○,,b,\n";
	CHECK_RC(run_text(map, nosplit, out, sizeof(out), &err), MU_E_SCHEMA);
	CHECK(err.column == 3 && strstr(err.message, "does not split into 2 parts") != NULL);
	/* Another layout: the header misses what the mapping names. */
	static const char other[] = "#property,name,lat,lon\n1,a,34,134\n";
	CHECK_RC(run_text(map, other, out, sizeof(out), &err), MU_E_SCHEMA);
	CHECK(strstr(err.message, "\"location\" (split)") != NULL);
	CHECK(strstr(err.message, "\"note\" (dropped)") != NULL);
	CHECK(strstr(err.message, "\"addr\" (joined)") != NULL);
	/* No #property line before the data. */
	CHECK_RC(run_text(map, "1,a,b\n", out, sizeof(out), &err), MU_E_SCHEMA);
	CHECK(strstr(err.message, "#property") != NULL);
	/* A short row. */
	static const char shortrow[] = "#property,name,location,flag,note,addr,room\n1,a\n";
	CHECK_RC(run_text(map, shortrow, out, sizeof(out), &err), MU_E_SCHEMA);
	CHECK(strstr(err.message, "2 fields, the header has 7") != NULL);
}

static void test_header_lookalike_and_twice(void)
{
	char out[256];
	struct mapping_error err;

	CHECK_OK(run_text("{\"name\":\"h\",\"header_replace\":{\"―\":\"ー\"}}",
			  "都道府県コ―ド, 名称 \n1,a\n", out, sizeof(out), &err));
	CHECK_STREQ(out, "都道府県コード|名称\n1|a\n");
	/* Renaming onto a name the file already has makes two columns. */
	CHECK_RC(run_text("{\"name\":\"h\",\"rename\":{\"a\":\"b\"}}", "a,b\n1,2\n", out, sizeof(out),
			  &err), MU_E_SCHEMA);
	CHECK(strstr(err.message, "two columns would be named \"b\"") != NULL);
	/* Swapping two names is one step, not two. */
	CHECK_OK(run_text("{\"name\":\"h\",\"rename\":{\"a\":\"b\",\"b\":\"a\"}}", "a,b\n1,2\n", out,
			  sizeof(out), &err));
	CHECK_STREQ(out, "b|a\n1|2\n");
	/* Normalizing only some columns; all of full-width ASCII. */
	CHECK_OK(run_text("{\"name\":\"h\",\"normalize\":{\"ascii\":true,\"columns\":[\"x\"]}}",
			  "x,y\nＡ１（２）,Ａ１\n", out, sizeof(out), &err));
	CHECK_STREQ(out, "x|y\nA1(2)|Ａ１\n");
	/* A split's part may be dropped: the time of a datetime. */
	CHECK_OK(run_text("{\"name\":\"h\",\"drop\":[\"t\"],\"split\":[{\"column\":\"at\","
			  "\"into\":[\"d\",\"t\"],\"separator\":\"T\"}]}",
			  "k,at\n1,2020-01-28T00:00\n2,\n", out, sizeof(out), &err));
	CHECK_STREQ(out, "k|d\n1|2020-01-28\n2|\n");
}

/* ---- real files ---- */

struct real {
	const char *file, *mapping, *schema, *dataset;
	uint64_t rows;
};

/* The layouts whose mapping brings them onto their standard schema as it
 * is: row counts, and values compared with the source files. */
static void test_real_layouts_publish(void)
{
	static const struct real files[] = {
		{ "evacuation_sites/222127_yaizu.csv", "yaizu-to-evacuation_space", NULL,
		  "evacuation_space", 31 },
		{ "child_care_facility/222127_yaizu.csv", "yaizu-to-child_care_facility", NULL,
		  "child_care_facility", 60 },
		{ "covid19/010006_hokkaido_patients_raw_20200309.csv",
		  "hokkaido-patients-raw-to-covid19_hokkaido_patients", NULL, "patients_raw", 108 },
		/* both patient layouts onto the 項目定義書's 陽性患者属性 too */
		{ "covid19/010006_hokkaido_patients_20200329.csv", "hokkaido-patients-to-covid19_patients",
		  NULL, "patients_std", 172 },
		{ "covid19/010006_hokkaido_patients_raw_20200309.csv",
		  "hokkaido-patients-raw-to-covid19_patients", NULL, "patients_raw_std", 108 },
	};
	struct publish_result res;
	struct mapping *m = NULL;
	uint8_t sha[32];
	char v[256], src[256];

	CHECK_OK(tu_node_new(tmpdir, "mapping", "222127", &st, &key));
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		CHECK_OK(publish(files[i].dataset, files[i].schema, files[i].mapping,
				 tu_data(files[i].file), &res));
		CHECK(res.rows == files[i].rows && res.added == files[i].rows);
		CHECK(res.has_mapping);
		publish_result_fini(&res);
		/* the same file again appends nothing */
		CHECK_OK(publish(files[i].dataset, files[i].schema, files[i].mapping,
				 tu_data(files[i].file), &res));
		CHECK(res.unchanged == files[i].rows && res.batches == 0);
		publish_result_fini(&res);
	}
	/* Yaizu: ○ became 1, blanks stayed NULL, other cells as in the file;
	 * the entry records the mapping's SHA-256. */
	CHECK_OK(mapping_resolve("yaizu-to-evacuation_space", &m, NULL));
	REQUIRE(m != NULL);
	CHECK_OK(row_value("222127/evacuation_space", "1", "災害種別_地震", v, sizeof(v), sha));
	CHECK_STREQ(v, "1");
	CHECK(memcmp(sha, mapping_digest(m), 32) == 0);
	mapping_destroy(&m);
	CHECK_OK(row_value("222127/evacuation_space", "1", "災害種別_洪水", v, sizeof(v), NULL));
	CHECK_STREQ(v, "");
	CHECK(source_cell(tu_data("evacuation_sites/222127_yaizu.csv"), 1, "31", 1, src, sizeof(src)));
	CHECK_OK(row_value("222127/evacuation_space", "31", "名称", v, sizeof(v), NULL));
	CHECK_STREQ(v, src);
	CHECK(source_cell(tu_data("evacuation_sites/222127_yaizu.csv"), 1, "31", 6, src, sizeof(src)));
	CHECK_OK(row_value("222127/evacuation_space", "31", "経度", v, sizeof(v), NULL));
	CHECK(strtod(v, NULL) == strtod(src, NULL));
	static const struct {
		const char *dataset, *pk, *field, *want;
	} std[] = {
		/* child care: the look-alike header column holds its values */
		{ "child_care_facility", "0013010001", "都道府県コード又は市区町村コード", "222127" },
		/* the raw COVID file: full-width No., trailing NBSP and newlines gone */
		{ "patients_raw", "1", "居住地", "中国 （武漢市）" },
		{ "patients_raw", "106", "年代", "50代" },
		{ "patients_raw", "108", "性別", "女性" },
		{ "patients_raw", "2", "濃厚接触者の状況", "札幌市公表中" },
		{ "patients_raw", "3", "周囲の状況", "No.5" },
		{ "patients_raw", "3", "リリース日", "2020-02-18T00:00:00+09:00" },
		/* 陽性患者属性 (covid19_patients@2): the date of リリース日, the
		 * 項目定義書's words, blanks for 非公表, no 市区町村名 for a prefecture */
		{ "patients_std", "1", "公表_年月日", "2020-01-28" },
		{ "patients_std", "1", "患者_居住地", "中国武漢市" },
		{ "patients_std", "1", "患者_職業", "" },          /* － */
		{ "patients_std", "1", "全国地方公共団体コード", "010006" },
		{ "patients_std", "1", "都道府県名", "北海道" },
		{ "patients_std", "1", "市区町村名", "" },
		{ "patients_std", "10", "備考", "2/27死亡" },       /* 補足 */
		{ "patients_std", "38", "患者_性別", "" },          /* 非公表 */
		{ "patients_std", "67", "患者_年代", "90歳以上" },  /* 90代 */
		{ "patients_std", "95", "患者_状態", "重症" },      /* 重症　会話不可 */
		{ "patients_std", "124", "患者_状態", "軽症" },
		{ "patients_std", "124", "患者_年代", "" },
		{ "patients_std", "172", "患者_居住地", "旭川市" },
		{ "patients_raw_std", "1", "公表_年月日", "2020-01-28" },
		{ "patients_raw_std", "1", "患者_居住地", "中国 （武漢市）" },
		{ "patients_raw_std", "38", "患者_性別", "" },
		{ "patients_raw_std", "108", "患者_性別", "女性" },
	};
	for (size_t i = 0; i < sizeof(std) / sizeof(std[0]); i++) {
		char ds[64];
		snprintf(ds, sizeof(ds), "222127/%s", std[i].dataset);
		CHECK_OK(row_value(ds, std[i].pk, std[i].field, v, sizeof(v), NULL));
		if (strcmp(v, std[i].want) != 0)
			fprintf(stderr, "%s %s %s: \"%s\", wanted \"%s\"\n", ds, std[i].pk, std[i].field, v,
				std[i].want);
		CHECK_STREQ(v, std[i].want);
	}
	dataset_schema("222127/patients_std", v, sizeof(v));
	CHECK_STREQ(v, "covid19_patients@2");
}

/* GSI and Takamatsu lack columns that evacuation_space@1 and aed@1
 * require: asked for @1, the publish stops at the header naming each and
 * appends nothing; through their mappings, every row publishes onto the
 * shipped evacuation_space@2 and aed@2, which do not require them. */
static void test_layouts_missing_required_columns(void)
{
	static const char *const evac_missing[] = { "名称_カナ", "電話番号", NULL };
	static const char *const aed_missing[] = { "名称_カナ", "設置位置", NULL };
	static const struct {
		const char *file, *mapping, *spec;
		const char *const *missing;   /* required fields the layout has no column for */
		size_t nmissing;
		uint64_t rows;
	} files[] = {
		{ "evacuation_sites/011002_sapporo_gsi.csv", "gsi-to-evacuation_space",
		  "evacuation_space@1", evac_missing, 2, 348 },
		{ "evacuation_sites/372013_takamatsu_nonstandard.csv",
		  "takamatsu-linkdata-to-evacuation_space", "evacuation_space@1", evac_missing, 1, 193 },
		{ "aed/372013_takamatsu_nonstandard.csv", "takamatsu-linkdata-to-aed", "aed@1",
		  aed_missing, 1, 514 },
	};
	struct publish_result res;
	char v[256], src[256];

	CHECK_OK(tu_node_new(tmpdir, "mapping", "372013", &st, &key));
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		CHECK_RC(publish("x", files[i].spec, files[i].mapping, tu_data(files[i].file), &res),
			 MU_E_SCHEMA);
		for (size_t k = 0; k < files[i].nmissing; k++) {
			const char *want[] = { files[i].missing[k], "required", files[i].mapping,
					       "add the column", NULL };
			CHECK(has_error(&res, want));
		}
		CHECK(res.new_size == 0);
		publish_result_fini(&res);
	}
	/* Takamatsu's AED file also leaves 設置位置 empty in 134 rows: each
	 * is reported at its line and its column in the file (4). */
	struct publish_opts all = { .dataset = "x", .schema_spec = "aed@1",
				    .mapping_spec = "takamatsu-linkdata-to-aed",
				    .path = tu_data(files[2].file), .max_errors = 1000 };
	CHECK_RC(publish_csv(st, key, &all, &res), MU_E_SCHEMA);
	CHECK(res.nerrors == 1 + 134);
	size_t at_col4 = 0;
	for (size_t e = 0; e < res.nkept; e++)
		at_col4 += res.errors[e].column == 4 && res.errors[e].line > 9 &&
			   strstr(res.errors[e].message, "設置位置\": value is required") != NULL;
	CHECK(at_col4 == 134);
	publish_result_fini(&res);

	/* Through the mappings onto @2 (the schema each names): every row of
	 * every file, values as in the source. */
	static const char *const gsi[] = { "011002_sapporo", "012025_hakodate", "012033_otaru",
					   "012041_asahikawa", "012050_muroran", "012068_kushiro",
					   "012076_obihiro", "012084_kitami", "012173_ebetsu" };
	uint64_t total = 0;
	for (size_t i = 0; i < sizeof(gsi) / sizeof(gsi[0]); i++) {
		char file[128], ds[32];
		snprintf(file, sizeof(file), "evacuation_sites/%s_gsi.csv", gsi[i]);
		snprintf(ds, sizeof(ds), "evac_%.6s", gsi[i]);
		CHECK_OK(publish(ds, NULL, "gsi-to-evacuation_space", tu_data(file), &res));
		CHECK(res.rows == source_rows(tu_data(file), 1) && res.added == res.rows && res.rows > 0);
		total += res.rows;
		publish_result_fini(&res);
	}
	CHECK(total == 1651);
	dataset_schema("372013/evac_011002", v, sizeof(v));
	CHECK_STREQ(v, "evacuation_space@2");
	/* Sapporo's first site: 共通ID is the key, flags carried over. */
	CHECK(source_cell(tu_data("evacuation_sites/011002_sapporo_gsi.csv"), 1, "011002", 4, src,
			  sizeof(src)));
	CHECK_OK(row_value("372013/evac_011002", "E0110000001202", "名称", v, sizeof(v), NULL));
	CHECK_STREQ(v, src);
	CHECK_OK(row_value("372013/evac_011002", "E0110000001202", "災害種別_崖崩れ、土石流及び地滑り",
			   v, sizeof(v), NULL));
	CHECK_STREQ(v, "1");
	CHECK_OK(row_value("372013/evac_011002", "E0110000001202", "災害種別_高潮", v, sizeof(v), NULL));
	CHECK_STREQ(v, "");
	CHECK_OK(row_value("372013/evac_011002", "E0110000001202", "指定避難所との重複", v, sizeof(v),
			   NULL));
	CHECK_STREQ(v, "1");
	CHECK_OK(row_value("372013/evac_011002", "E0110000001202", "市区町村コード", v, sizeof(v), NULL));
	CHECK_STREQ(v, "011002");

	/* Takamatsu evacuation: 193 rows; the lat,lon cell split; ○ is 1,
	 * △ and × blank; a telephone number of "-" blank. */
	CHECK_OK(publish("evac", NULL, "takamatsu-linkdata-to-evacuation_space",
			 tu_data(files[1].file), &res));
	CHECK(res.rows == 193 && res.added == 193 && source_rows(tu_data(files[1].file), 9) == 193);
	publish_result_fini(&res);
	CHECK_OK(row_value("372013/evac", "1", "緯度", v, sizeof(v), NULL));
	CHECK_STREQ(v, "34.34753333");
	CHECK_OK(row_value("372013/evac", "1", "経度", v, sizeof(v), NULL));
	CHECK_STREQ(v, "134.03003917");
	CHECK_OK(row_value("372013/evac", "1", "災害種別_洪水", v, sizeof(v), NULL));
	CHECK_STREQ(v, "1");
	CHECK_OK(row_value("372013/evac", "1", "災害種別_高潮", v, sizeof(v), NULL));
	CHECK_STREQ(v, "");   /* △ in the file */
	CHECK_OK(row_value("372013/evac", "1", "市区町村コード", v, sizeof(v), NULL));
	CHECK_STREQ(v, "372013");
	CHECK(source_cell(tu_data(files[1].file), 9, "193", 1, src, sizeof(src)));
	CHECK_OK(row_value("372013/evac", "193", "名称", v, sizeof(v), NULL));
	CHECK_STREQ(v, src);

	/* Takamatsu AED: 514 rows, full-width digits of addresses folded. */
	CHECK_OK(publish("aed", NULL, "takamatsu-linkdata-to-aed", tu_data(files[2].file), &res));
	CHECK(res.rows == 514 && res.added == 514 && source_rows(tu_data(files[2].file), 9) == 514);
	dataset_schema("372013/aed", v, sizeof(v));
	CHECK_STREQ(v, "aed@2");
	publish_result_fini(&res);
	CHECK_OK(row_value("372013/aed", "1", "住所", v, sizeof(v), NULL));
	CHECK_STREQ(v, "高松市番町1丁目10-16");
	CHECK_OK(row_value("372013/aed", "2", "緯度", v, sizeof(v), NULL));
	CHECK_STREQ(v, "34.35215833");
	CHECK_OK(row_value("372013/aed", "1", "都道府県コード又は市区町村コード", v, sizeof(v), NULL));
	CHECK_STREQ(v, "372013");
	CHECK(source_cell(tu_data(files[2].file), 9, "514", 1, src, sizeof(src)));
	CHECK_OK(row_value("372013/aed", "514", "名称", v, sizeof(v), NULL));
	CHECK_STREQ(v, src);
	/* 設置位置 (column 4): empty in the file exactly where NULL here */
	size_t empty = 0, seen = 0;
	for (unsigned no = 1; no <= 520; no++) {   /* the file's NOs, with gaps */
		char pk[16];
		snprintf(pk, sizeof(pk), "%u", no);
		if (!source_cell(tu_data(files[2].file), 9, pk, 3, src, sizeof(src)))
			continue;
		seen++;
		CHECK_OK(row_value("372013/aed", pk, "設置位置", v, sizeof(v), NULL));
		empty += v[0] == '\0';
		CHECK((v[0] == '\0') == (strspn(src, " ") == strlen(src)));
	}
	CHECK(empty == 134 && seen == 514);
	CHECK_OK(row_value("372013/aed", "2", "設置位置", v, sizeof(v), NULL));
	CHECK_STREQ(v, "1階ロビー");   /* １階ロビー in the file */
	CHECK_OK(tu_node_drop(tmpdir, &st, &key));
}

CHECK_TESTS = {
	{ "refused documents", test_refused_documents },
	{ "built-in mappings", test_builtins },
	{ "LinkData record by record", test_linkdata_record_by_record },
	{ "header look-alike, renames", test_header_lookalike_and_twice },
	{ "real layouts publish", test_real_layouts_publish },
	{ "layouts missing required columns", test_layouts_missing_required_columns },
	{ NULL, NULL },
};
