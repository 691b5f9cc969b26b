/*
 * test_schema.c - schemas: every built-in parses and resolves; every real
 * file in deploy/data that follows a shipped schema maps its header and
 * converts every cell (and Yaizu's ○ flags fail evacuation_space@1 as they
 * should); each type's accepted and refused spellings with canonical forms;
 * each constraint; format/convert round trips; each schema_parse error with
 * its message; header matching; schema_compat's verdicts and reasons.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "check.h"
#include "csv.h"
#include "schema.h"

/* A one-field-or-more schema "t@1" from the JSON text of its fields; the
 * first field is the primary key. */
static struct schema *mk_version(unsigned version, const char *fields, char **why)
{
	char doc[4096];
	struct schema *s = NULL;
	const char *name = strstr(fields, "\"name\": \"");

	snprintf(doc, sizeof(doc), "{\"name\": \"t\", \"version\": %u, \"fields\": [%s], "
		 "\"primaryKey\": \"%.*s\"}", version, fields,
		 name != NULL ? (int)strcspn(name + 9, "\"") : 0, name != NULL ? name + 9 : "");
	if (schema_parse(doc, strlen(doc), &s, why) != 0)
		return NULL;
	return s;
}

static struct schema *mk(const char *fields)
{
	char *why = NULL;
	struct schema *s = mk_version(1, fields, &why);
	if (s == NULL)
		fprintf(stderr, "schema for %s: %s\n", fields, why);
	free(why);
	return s;
}

/* ---- built-ins ---- */

static const char *const shipped[] = {
	"aed@1", "care_service@1", "medical_institution@1", "cultural_property@1",
	"tourism@1", "event@1", "public_wireless_lan@1", "public_toilet@1",
	"fire_hydrant@1", "evacuation_space@1", "population@1", "public_facility@1",
	"child_care_facility@1", "opendata_list@1", "covid19_patients@1",
	"covid19_test_people@1", "covid19_test_count@1", "covid19_confirm_negative@1",
	"covid19_call_center@1", "covid19_support_system@1", "gsi_evacuation_site@1",
	"gsi_designated_shelter@1", "yaizu_shelter@1", "public_toilet@2", "fire_hydrant@2",
	"evacuation_space@2", "aed@2", "covid19_patients@2",
	"address@1", "covid19_hokkaido_patients@1", "access_log@1", "address@2",
};
#define NSHIPPED (sizeof(shipped) / sizeof(shipped[0]))

static void test_builtins(void)
{
	size_t found = 0;

	CHECK(schema_builtin_count() == NSHIPPED);
	CHECK(schema_builtin_json(schema_builtin_count()) == NULL);
	for (size_t i = 0; i < schema_builtin_count(); i++) {
		const char *json = schema_builtin_json(i);
		struct schema *s = NULL, *r = NULL;
		char *why = NULL, spec[96];

		CHECK_OK(schema_parse(json, strlen(json), &s, &why));
		if (s == NULL) {
			fprintf(stderr, "built-in %zu: %s\n", i, why);
			free(why);
			continue;
		}
		snprintf(spec, sizeof(spec), "%s@%u", s->id, s->version);
		CHECK_OK(schema_resolve(spec, &r, &why));
		REQUIRE(r != NULL);
		CHECK(memcmp(r->digest, s->digest, 32) == 0);
		CHECK(s->title != NULL && s->description != NULL && s->npk > 0);
		for (size_t k = 0; k < NSHIPPED; k++)
			found += strcmp(shipped[k], spec) == 0;
		schema_destroy(&s);
		schema_destroy(&r);
		CHECK(r == NULL);
	}
	CHECK(found == NSHIPPED);
}

static void test_document_kept(void)
{
	struct schema *s = NULL;
	uint8_t d[32];
	char *why = NULL;

	CHECK_OK(schema_resolve("aed@1", &s, &why));
	REQUIRE(s != NULL);
	CHECK_STREQ(s->id, "aed");
	CHECK(s->version == 1);
	CHECK_STREQ(s->title, "AED設置箇所一覧");
	CHECK(s->nfields == 22 && s->npk == 1);
	CHECK_STREQ(s->fields[s->pk[0]].name, "NO");
	CHECK(s->fields[s->pk[0]].required);
	CHECK(strlen(s->json) == s->json_len);
	CHECK(EVP_Digest(s->json, s->json_len, d, NULL, EVP_sha256(), NULL) == 1);
	CHECK(memcmp(d, s->digest, 32) == 0);
	/* 緯度 got its range, 小児対応設備の有無 the standard's enum */
	const struct schema_field *lat = &s->fields[schema_field_index(s, "緯度", strlen("緯度"))];
	CHECK(lat->type == SCHEMA_NUMBER && lat->has_minimum && lat->minimum == -90);
	long e = schema_field_index(s, "小児対応設備の有無", strlen("小児対応設備の有無"));
	REQUIRE(e >= 0);
	CHECK(s->fields[e].nenum == 2 && strcmp(s->fields[e].enum_values[0], "有") == 0);
	schema_destroy(&s);
	schema_destroy(&s);  /* a second destroy is a no-op */
}

static void test_resolve(void)
{
	struct schema *s = NULL;
	char *why = NULL, dir[] = "/tmp/test_schema.XXXXXX", path[128];
	const char *doc = "{\"name\": \"local\", \"version\": 3, \"fields\": "
			  "[{\"name\": \"k\"}], \"primaryKey\": [\"k\"]}";
	FILE *f;

	CHECK_RC(schema_resolve("aed@9", &s, &why), -ENOENT);
	CHECK_STREQ(why, "no built-in schema aed@9");
	free(why);
	CHECK_RC(schema_resolve("aed", &s, &why), MU_E_USAGE);
	free(why);
	CHECK_RC(schema_resolve("aed@1x", &s, &why), MU_E_USAGE);
	free(why);
	CHECK_RC(schema_resolve("@1", &s, &why), MU_E_USAGE);
	free(why);
	CHECK(s == NULL);

	REQUIRE(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/local.json", dir);
	REQUIRE((f = fopen(path, "w")) != NULL);
	fputs(doc, f);
	fclose(f);
	CHECK_OK(schema_resolve(path, &s, &why));
	CHECK(s != NULL && s->version == 3 && strcmp(s->id, "local") == 0);
	schema_destroy(&s);
	snprintf(path, sizeof(path), "%s/missing.json", dir);
	CHECK_RC(schema_resolve(path, &s, &why), -ENOENT);
	CHECK(why != NULL && strstr(why, "cannot open") != NULL);
	free(why);
	snprintf(path, sizeof(path), "%s/local.json", dir);
	unlink(path);
	rmdir(dir);
}

/* ---- real files ---- */

struct real_file {
	const char *pattern;   /* under MU_TEST_DATA */
	const char *spec;
	size_t rows;           /* data rows over all matching files */
	size_t extra_columns;  /* columns of each file outside the schema */
};

static const struct real_file real_files[] = {
	{ "aed/222127_yaizu.csv", "aed@1", 82, 0 },
	{ "child_care_facility/222127_yaizu.csv", "child_care_facility@1", 60, 0 },
	{ "public_wireless_lan/222127_yaizu.csv", "public_wireless_lan@1", 17, 0 },
	{ "tourism/222127_yaizu.csv", "tourism@1", 205, 20 },
	{ "public_toilet/222127_yaizu.csv", "public_toilet@2", 112, 0 },
	{ "fire_hydrant/222127_yaizu.csv", "fire_hydrant@2", 193, 0 },
	{ "designated_shelters/222127_yaizu.csv", "yaizu_shelter@1", 56, 0 },
	{ "evacuation_sites/*_gsi.csv", "gsi_evacuation_site@1", 1651, 0 },
	{ "designated_shelters/*_gsi.csv", "gsi_designated_shelter@1", 935, 0 },
	{ "addresses/*.csv", "address@1", 5384, 0 },
	{ "covid19/010006_hokkaido_patients_20200329.csv", "covid19_hokkaido_patients@1", 172, 0 },
};

static int strp_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

struct file_report {
	size_t rows, errors, extra, duplicate_keys;
	char first_error[256];
	int all_same_error;
};

/*
 * Read one file with the CSV reader, map its header onto s, convert every
 * cell; count errors (all equal to first_error?), data rows, columns
 * outside the schema and repeated primary keys. Also checks that each
 * value formats to text that converts back to the same text.
 */
static int check_file(const char *path, const struct schema *s, struct file_report *rep)
{
	struct csv_reader *r = NULL;
	struct csv_record rec;
	long *col = NULL;   /* schema field -> CSV column */
	char **keys = NULL;
	size_t nkeys = 0, cap = 0;
	int fd = open(path, O_RDONLY), rc, ok = 0;

	memset(rep, 0, sizeof(*rep));
	rep->all_same_error = 1;
	if (fd < 0 || csv_open_fd(fd, &r) != 0 || csv_next(r, &rec) != 1)
		goto out;
	col = malloc(s->nfields * sizeof(*col));
	for (size_t i = 0; i < s->nfields; i++)
		col[i] = -1;
	for (size_t c = 0; c < rec.nfields; c++) {
		long i = schema_field_index(s, rec.fields[c].ptr, rec.fields[c].len);
		if (i < 0)
			rep->extra++;
		else if (col[i] < 0)
			col[i] = (long)c;
	}
	for (size_t i = 0; i < s->nfields; i++)
		if (col[i] < 0) {
			fprintf(stderr, "%s: no column for field %s\n", path, s->fields[i].name);
			goto out;
		}
	while ((rc = csv_next(r, &rec)) == 1) {
		char key[1024] = "";
		rep->rows++;
		for (size_t i = 0; i < s->nfields; i++) {
			const struct csv_field *cell = &rec.fields[col[i]];
			struct mu_value v, back;
			char why[256], text[1024];
			if ((size_t)col[i] >= rec.nfields) {
				rep->errors++;
				continue;
			}
			if (schema_convert(&s->fields[i], cell->ptr, cell->len, &v, why, sizeof(why)) != 0) {
				if (rep->errors++ == 0)
					snprintf(rep->first_error, sizeof(rep->first_error), "%s", why);
				else if (strcmp(why, rep->first_error) != 0)
					rep->all_same_error = 0;
				continue;
			}
			size_t n = schema_format(&v, text, sizeof(text));
			if (n < sizeof(text) &&
			    (schema_convert(&s->fields[i], text, n, &back, why, sizeof(why)) != 0 ||
			     back.kind != v.kind)) {
				fprintf(stderr, "%s line %llu: %s -> \"%s\" does not convert back\n", path,
					(unsigned long long)rec.line, s->fields[i].name, text);
				goto out;
			}
		}
		for (size_t k = 0; k < s->npk; k++) {
			const struct csv_field *cell = &rec.fields[col[s->pk[k]]];
			size_t o = strlen(key);
			snprintf(key + o, sizeof(key) - o, "%s%s", k > 0 ? "\x1f" : "", cell->ptr);
		}
		if (nkeys == cap) {
			cap = cap ? 2 * cap : 256;
			keys = realloc(keys, cap * sizeof(*keys));
		}
		keys[nkeys++] = strdup(key);
	}
	if (rc != 0)
		goto out;
	qsort(keys, nkeys, sizeof(*keys), strp_cmp);
	for (size_t i = 1; i < nkeys; i++)
		rep->duplicate_keys += strcmp(keys[i - 1], keys[i]) == 0;
	ok = 1;
out:
	for (size_t i = 0; i < nkeys; i++)
		free(keys[i]);
	free(keys);
	free(col);
	csv_close(&r);
	if (fd >= 0)
		close(fd);
	return ok;
}

static void test_real_files(void)
{
	for (size_t t = 0; t < sizeof(real_files) / sizeof(real_files[0]); t++) {
		const struct real_file *rf = &real_files[t];
		struct schema *s = NULL;
		char *why = NULL, pat[512];
		glob_t g;
		size_t rows = 0;

		CHECK_OK(schema_resolve(rf->spec, &s, &why));
		REQUIRE(s != NULL);
		snprintf(pat, sizeof(pat), "%s/%s", MU_TEST_DATA, rf->pattern);
		REQUIRE(glob(pat, 0, NULL, &g) == 0);
		for (size_t i = 0; i < g.gl_pathc; i++) {
			struct file_report rep;
			CHECK(check_file(g.gl_pathv[i], s, &rep));
			if (rep.errors > 0)
				fprintf(stderr, "%s against %s: %zu errors, first: %s\n", g.gl_pathv[i],
					rf->spec, rep.errors, rep.first_error);
			CHECK(rep.errors == 0);
			CHECK(rep.extra == rf->extra_columns);
			CHECK(rep.duplicate_keys == 0);
			rows += rep.rows;
		}
		if (rows != rf->rows)
			fprintf(stderr, "%s: %zu rows, wanted %zu\n", rf->pattern, rows, rf->rows);
		CHECK(rows == rf->rows);
		globfree(&g);
		schema_destroy(&s);
	}
}

/* Yaizu writes its evacuation flags as ○, which the standard's enum refuses:
 * a mapping has to fix that, not the schema. */
static void test_yaizu_flags_refused(void)
{
	struct schema *s = NULL;
	struct file_report rep;
	char *why = NULL;

	CHECK_OK(schema_resolve("evacuation_space@1", &s, &why));
	REQUIRE(s != NULL);
	CHECK(check_file(MU_TEST_DATA "/evacuation_sites/222127_yaizu.csv", s, &rep));
	CHECK(rep.rows == 31);
	CHECK(rep.errors == 62);  /* 地震 26, 津波 26, 崖崩れ 5, 指定避難所との重複 5 */
	CHECK(rep.all_same_error);
	CHECK_STREQ(rep.first_error, "\"○\" is not one of the allowed values: \"1\", \"\"");
	schema_destroy(&s);
}

/* ---- header matching ---- */

static void test_field_index(void)
{
	struct schema *s = NULL;
	char *why = NULL;
	long fee;

	CHECK_OK(schema_resolve("tourism@1", &s, &why));
	REQUIRE(s != NULL);
	fee = schema_field_index(s, "料金(基本)", strlen("料金(基本)"));
	CHECK(fee >= 0 && strcmp(s->fields[fee].name, "料金(基本)") == 0);
	/* full-width parentheses, as Yaizu writes them */
	CHECK(schema_field_index(s, "料金（基本）", strlen("料金（基本）")) == fee);
	/* ASCII, ideographic and no-break spaces, and a stray BOM, are trimmed */
	CHECK(schema_field_index(s, " \t料金(基本)\xe3\x80\x80\xc2\xa0", strlen(" \t料金(基本)") + 5) == fee);
	CHECK(schema_field_index(s, "\xef\xbb\xbf名称", strlen("名称") + 3) ==
	      schema_field_index(s, "名称", strlen("名称")));
	CHECK(schema_field_index(s, "ＵＲＬ", strlen("ＵＲＬ")) == schema_field_index(s, "URL", 3));
	/* a length, not the NUL, ends the header */
	CHECK(schema_field_index(s, "URLx", 3) == schema_field_index(s, "URL", 3));
	CHECK(schema_field_index(s, "料金", strlen("料金")) == -1);
	CHECK(schema_field_index(s, "", 0) == -1);
	CHECK(schema_field_index(s, "url", 3) == -1);  /* no case folding */
	schema_destroy(&s);

	CHECK_OK(schema_resolve("child_care_facility@1", &s, &why));
	REQUIRE(s != NULL);
	CHECK(schema_field_index(s, "都道府県コ―ド又は市区町村コ―ド",
				 strlen("都道府県コ―ド又は市区町村コ―ド")) == 0);
	CHECK(schema_field_index(s, "都道府県コード又は市区町村コード",
				 strlen("都道府県コード又は市区町村コード")) == 0);
	schema_destroy(&s);
}

/* ---- types ---- */

struct conv_case {
	const char *field;   /* JSON of the field */
	const char *in;
	const char *want;    /* canonical text, or the message when refused */
	int ok;
};

/* A field named f of each type; FIELD(name, T) for schemas of several. */
#define FIELD(name, type) "{\"name\": \"" name "\", " type "}"
#define T_INT "\"type\": \"integer\""
#define T_NUM "\"type\": \"number\""
#define T_BOOL "\"type\": \"boolean\""
#define T_MARU "\"type\": \"boolean\", \"trueValues\": [\"○\"], \"falseValues\": []"
#define T_DATE "\"type\": \"date\""
#define T_DT "\"type\": \"datetime\""
#define T_GEO "\"type\": \"geopoint\""
#define T_STR "\"type\": \"string\""
#define INT FIELD("f", T_INT)
#define NUM FIELD("f", T_NUM)
#define BOOL FIELD("f", T_BOOL)
#define MARU FIELD("f", T_MARU)
#define DATE FIELD("f", T_DATE)
#define DT FIELD("f", T_DT)
#define TIME FIELD("f", "\"type\": \"time\"")
#define YEAR FIELD("f", "\"type\": \"year\"")
#define GEO FIELD("f", T_GEO)
#define STR FIELD("f", T_STR)

static const struct conv_case conv_cases[] = {
	{ STR, "焼津市", "焼津市", 1 },
	{ STR, "a\"b,c", "a\"b,c", 1 },
	{ STR, "\xff", "\"\xff\" is not valid UTF-8", 0 },
	{ STR, "\xe3\x81", "\"\xe3\x81\" is not valid UTF-8", 0 },
	{ STR, "\xed\xa0\x80", "\"\xed\xa0\x80\" is not valid UTF-8", 0 },  /* a surrogate */
	{ STR, "\xc0\xaf", "\"\xc0\xaf\" is not valid UTF-8", 0 },          /* overlong */

	{ INT, "0", "0", 1 },
	{ INT, "-12", "-12", 1 },
	{ INT, "+7", "7", 1 },
	{ INT, "007", "7", 1 },
	{ INT, "9223372036854775807", "9223372036854775807", 1 },
	{ INT, "-9223372036854775808", "-9223372036854775808", 1 },
	{ INT, "9223372036854775808", "\"9223372036854775808\" is out of range for an integer", 0 },
	{ INT, "-9223372036854775809", "\"-9223372036854775809\" is out of range for an integer", 0 },
	{ INT, "1.5", "\"1.5\" is not an integer", 0 },
	{ INT, "12a", "\"12a\" is not an integer", 0 },
	{ INT, "-", "\"-\" is not an integer", 0 },
	{ INT, " 1", "\" 1\" is not an integer", 0 },
	{ INT, "1e3", "\"1e3\" is not an integer", 0 },
	{ INT, "１２", "\"１２\" is not an integer", 0 },

	{ NUM, "34.866918", "34.866918", 1 },
	{ NUM, "-0.5", "-0.5", 1 },
	{ NUM, ".5", "0.5", 1 },
	{ NUM, "5.", "5", 1 },
	{ NUM, "+3", "3", 1 },
	{ NUM, "1e3", "1000", 1 },
	{ NUM, "1E-2", "0.01", 1 },
	{ NUM, "0.1", "0.1", 1 },
	{ NUM, "0.30000000000000004", "0.30000000000000004", 1 },
	{ NUM, "123456789012345678901", "1.2345678901234568e+20", 1 },
	{ NUM, "1e999", "\"1e999\" is out of range for a number", 0 },
	{ NUM, "nan", "\"nan\" is not a number", 0 },
	{ NUM, "inf", "\"inf\" is not a number", 0 },
	{ NUM, "-Infinity", "\"-Infinity\" is not a number", 0 },
	{ NUM, "0x1p3", "\"0x1p3\" is not a number", 0 },
	{ NUM, "1,5", "\"1,5\" is not a number", 0 },
	{ NUM, "1.2.3", "\"1.2.3\" is not a number", 0 },
	{ NUM, ".", "\".\" is not a number", 0 },
	{ NUM, "e5", "\"e5\" is not a number", 0 },
	{ NUM, "1e", "\"1e\" is not a number", 0 },
	{ NUM, "1 ", "\"1 \" is not a number", 0 },

	{ BOOL, "true", "true", 1 },
	{ BOOL, "True", "true", 1 },
	{ BOOL, "TRUE", "true", 1 },
	{ BOOL, "1", "true", 1 },
	{ BOOL, "false", "false", 1 },
	{ BOOL, "FALSE", "false", 1 },
	{ BOOL, "0", "false", 1 },
	{ BOOL, "yes", "\"yes\" is not a boolean (true: \"true\", \"True\", \"TRUE\", \"1\"; "
		       "false: \"false\", \"False\", \"FALSE\", \"0\")", 0 },
	{ MARU, "○", "true", 1 },
	{ MARU, "true", "true", 1 },   /* what schema_format writes */
	{ MARU, "false", "false", 1 },
	{ MARU, "1", "\"1\" is not a boolean (true: \"○\"; false: )", 0 },

	{ DATE, "2020-03-29", "2020-03-29", 1 },
	{ DATE, "2020/3/9", "2020-03-09", 1 },
	{ DATE, "2020/03/29", "2020-03-29", 1 },
	{ DATE, "2024-02-29", "2024-02-29", 1 },
	{ DATE, "2000-02-29", "2000-02-29", 1 },
	{ DATE, "2023-02-29", "\"2023-02-29\" is not a date: 2023-02 has no day 29", 0 },
	{ DATE, "1900-02-29", "\"1900-02-29\" is not a date: 1900-02 has no day 29", 0 },
	{ DATE, "2020-04-31", "\"2020-04-31\" is not a date: 2020-04 has no day 31", 0 },
	{ DATE, "2020-13-01", "\"2020-13-01\" is not a date: there is no month 13", 0 },
	{ DATE, "2020-00-10", "\"2020-00-10\" is not a date: there is no month 0", 0 },
	{ DATE, "2020-03/29", "\"2020-03/29\" is not a date (YYYY-MM-DD or YYYY/M/D)", 0 },
	{ DATE, "20200329", "\"20200329\" is not a date (YYYY-MM-DD or YYYY/M/D)", 0 },
	{ DATE, "20-3-29", "\"20-3-29\" is not a date (YYYY-MM-DD or YYYY/M/D)", 0 },
	{ DATE, "2020-03-29T00:00", "\"2020-03-29T00:00\" is not a date (YYYY-MM-DD or YYYY/M/D)", 0 },

	{ DT, "2020-01-28T00:00", "2020-01-28T00:00:00", 1 },
	{ DT, "2020-01-28T09:05:07Z", "2020-01-28T09:05:07Z", 1 },
	{ DT, "2020-01-28T09:05:07+09:00", "2020-01-28T09:05:07+09:00", 1 },
	{ DT, "2020-01-28T09:05:07+0900", "2020-01-28T09:05:07+09:00", 1 },
	{ DT, "2020-01-28T09:05:07-03", "2020-01-28T09:05:07-03:00", 1 },
	{ DT, "2020-01-28 09:05:07", "2020-01-28T09:05:07", 1 },
	{ DT, "2020/1/28 9:05", "2020-01-28T09:05:00", 1 },
	{ DT, "2020/01/28 09:05:30", "2020-01-28T09:05:30", 1 },
	{ DT, "2020-02-30T00:00", "\"2020-02-30T00:00\" is not a date: 2020-02 has no day 30", 0 },
	{ DT, "2020-01-28", "\"2020-01-28\" is not a datetime (YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM] "
			    "or YYYY/MM/DD HH:MM[:SS])", 0 },
	{ DT, "2020-01-28T24:00", NULL, 0 },
	{ DT, "2020-01-28T09:05:07.5", NULL, 0 },
	{ DT, "2020-01-28T09:05+25:00", NULL, 0 },
	{ DT, "2020-01-28T09:05Z ", NULL, 0 },

	{ TIME, "9:00", "09:00:00", 1 },
	{ TIME, "09:00", "09:00:00", 1 },
	{ TIME, "23:59:59", "23:59:59", 1 },
	{ TIME, "24:00", "24:00:00", 1 },
	{ TIME, "24:01", "\"24:01\" is not a time (HH:MM[:SS])", 0 },
	{ TIME, "25:00", "\"25:00\" is not a time (HH:MM[:SS])", 0 },
	{ TIME, "09:60", "\"09:60\" is not a time (HH:MM[:SS])", 0 },
	{ TIME, "09:00:60", "\"09:00:60\" is not a time (HH:MM[:SS])", 0 },
	{ TIME, "9:5", "\"9:5\" is not a time (HH:MM[:SS])", 0 },
	{ TIME, "0900", "\"0900\" is not a time (HH:MM[:SS])", 0 },
	{ TIME, "09：00", "\"09：00\" is not a time (HH:MM[:SS])", 0 },

	{ YEAR, "2020", "2020", 1 },
	{ YEAR, "0999", "999", 1 },
	{ YEAR, "20201", "\"20201\" is not a year", 0 },
	{ YEAR, "-1", "\"-1\" is not a year", 0 },
	{ YEAR, "20.5", "\"20.5\" is not a year", 0 },

	{ GEO, "34.86,138.32", "34.86,138.32", 1 },
	{ GEO, "34.86, 138.32", "34.86,138.32", 1 },
	{ GEO, "-90,180", "-90,180", 1 },
	{ GEO, "91,0", "\"91,0\" is not a geopoint: latitude must be in [-90, 90] and "
		       "longitude in [-180, 180]", 0 },
	{ GEO, "0,-181", NULL, 0 },
	{ GEO, "34.86", "\"34.86\" is not a geopoint (lat,lon)", 0 },
	{ GEO, "a,b", "\"a,b\" is not a geopoint (lat,lon)", 0 },
	{ GEO, "34.86,138.32,1", "\"34.86,138.32,1\" is not a geopoint (lat,lon)", 0 },
};

/* Each case converts to its canonical text, or is refused with its reason
 * (a NULL reason: any "is not a ..."). */
static void check_conversions(const char *what, const struct conv_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct conv_case *c = &cases[i];
		struct schema *s = mk(c->field);
		struct mu_value v;
		char why[512] = "", text[128];
		int rc;

		REQUIRE(s != NULL);
		rc = schema_convert(&s->fields[0], c->in, strlen(c->in), &v, why, sizeof(why));
		if (c->ok) {
			if (rc != 0)
				fprintf(stderr, "%s %zu: \"%s\" refused: %s\n", what, i, c->in, why);
			CHECK_OK(rc);
			schema_format(&v, text, sizeof(text));
			CHECK_STREQ(text, c->want);
		} else {
			CHECK_RC(rc, MU_E_SCHEMA);
			if (rc == 0)
				fprintf(stderr, "%s %zu: \"%s\" accepted\n", what, i, c->in);
			if (c->want != NULL)
				CHECK_STREQ(why, c->want);
			else
				CHECK(strstr(why, "is not a") != NULL);
		}
		schema_destroy(&s);
	}
}

static void test_types(void)
{
	check_conversions("case", conv_cases, sizeof(conv_cases) / sizeof(conv_cases[0]));
}

static void test_value_kinds(void)
{
	struct schema *s = mk(FIELD("i", T_INT) "," FIELD("n", T_NUM) "," FIELD("b", T_BOOL) ","
			      FIELD("d", T_DATE) "," FIELD("s", T_STR));
	struct mu_value v;
	char why[128];

	REQUIRE(s != NULL);
	CHECK_OK(schema_convert(&s->fields[0], "-42", 3, &v, why, sizeof(why)));
	CHECK(v.kind == MU_VAL_INT && v.i == -42);
	CHECK_OK(schema_convert(&s->fields[1], "2.5e-1", 6, &v, why, sizeof(why)));
	CHECK(v.kind == MU_VAL_NUM && v.d == 0.25);
	CHECK_OK(schema_convert(&s->fields[2], "0", 1, &v, why, sizeof(why)));
	CHECK(v.kind == MU_VAL_BOOL && v.i == 0);
	CHECK_OK(schema_convert(&s->fields[3], "2020/3/1", 8, &v, why, sizeof(why)));
	CHECK(v.kind == MU_VAL_TEXT && v.text == v.buf && v.len == 10 && v.text[10] == '\0');
	/* strings borrow the input; the length, not a NUL, bounds them */
	const char *in = "abcdef";
	CHECK_OK(schema_convert(&s->fields[4], in, 3, &v, why, sizeof(why)));
	CHECK(v.kind == MU_VAL_TEXT && v.text == in && v.len == 3);
	/* the empty cell is NULL */
	for (size_t i = 0; i < s->nfields; i++) {
		CHECK_OK(schema_convert(&s->fields[i], "", 0, &v, why, sizeof(why)));
		CHECK(v.kind == MU_VAL_NULL);
	}
	/* a NULL or short why buffer is fine */
	CHECK_RC(schema_convert(&s->fields[0], "x", 1, &v, NULL, 0), MU_E_SCHEMA);
	CHECK_RC(schema_convert(&s->fields[0], "xyz", 3, &v, why, 5), MU_E_SCHEMA);
	CHECK_STREQ(why, "\"xyz");
	schema_destroy(&s);
}

/* ---- constraints ---- */

static const struct conv_case constraint_cases[] = {
	{ "{\"name\": \"f\", \"constraints\": {\"required\": true}}", "", "value is required", 0 },
	{ "{\"name\": \"f\", \"type\": \"integer\", \"constraints\": {\"required\": true}}", "",
	  "value is required", 0 },
	{ "{\"name\": \"f\", \"constraints\": {\"required\": true}}", "x", "x", 1 },
	{ "{\"name\": \"f\", \"constraints\": {\"required\": false}}", "", "", 1 },

	{ "{\"name\": \"f\", \"type\": \"number\", \"constraints\": {\"minimum\": -90, \"maximum\": 90}}",
	  "-90", "-90", 1 },
	{ "{\"name\": \"f\", \"type\": \"number\", \"constraints\": {\"minimum\": -90, \"maximum\": 90}}",
	  "-90.5", "\"-90.5\" is below the minimum -90", 0 },
	{ "{\"name\": \"f\", \"type\": \"number\", \"constraints\": {\"minimum\": -90, \"maximum\": 90}}",
	  "90.000001", "\"90.000001\" is above the maximum 90", 0 },
	{ "{\"name\": \"f\", \"type\": \"integer\", \"constraints\": {\"minimum\": 0.5}}",
	  "0", "\"0\" is below the minimum 0.5", 0 },
	{ "{\"name\": \"f\", \"type\": \"year\", \"constraints\": {\"maximum\": 2030}}",
	  "2031", "\"2031\" is above the maximum 2030", 0 },

	{ "{\"name\": \"f\", \"constraints\": {\"maxLength\": 3}}", "焼津市", "焼津市", 1 },
	{ "{\"name\": \"f\", \"constraints\": {\"maxLength\": 3}}", "焼津市役所",
	  "\"焼津市役所\" is longer than maxLength 3 (5 characters)", 0 },
	{ "{\"name\": \"f\", \"constraints\": {\"minLength\": 2}}", "焼", 
	  "\"焼\" is shorter than minLength 2 (1 characters)", 0 },
	{ "{\"name\": \"f\", \"constraints\": {\"minLength\": 2}}", "焼津", "焼津", 1 },

	{ "{\"name\": \"f\", \"constraints\": {\"pattern\": \"[0-9]{6}\"}}", "222127", "222127", 1 },
	{ "{\"name\": \"f\", \"constraints\": {\"pattern\": \"[0-9]{6}\"}}", "22212",
	  "\"22212\" does not match the pattern [0-9]{6}", 0 },
	{ "{\"name\": \"f\", \"constraints\": {\"pattern\": \"[0-9]{6}\"}}", "2221270",
	  "\"2221270\" does not match the pattern [0-9]{6}", 0 },
	{ "{\"name\": \"f\", \"constraints\": {\"pattern\": \"[0-9]{6}\"}}", "x222127",
	  "\"x222127\" does not match the pattern [0-9]{6}", 0 },
	/* anchored around the whole alternation, not just its ends */
	{ "{\"name\": \"f\", \"constraints\": {\"pattern\": \"a|b\"}}", "ab",
	  "\"ab\" does not match the pattern a|b", 0 },
	{ "{\"name\": \"f\", \"constraints\": {\"pattern\": \"a|b\"}}", "b", "b", 1 },
	{ "{\"name\": \"f\", \"type\": \"integer\", \"constraints\": {\"pattern\": \"[1-9][0-9]*\"}}",
	  "012", "\"012\" does not match the pattern [1-9][0-9]*", 0 },

	{ "{\"name\": \"f\", \"constraints\": {\"enum\": [\"1\", \"\"]}}", "1", "1", 1 },
	{ "{\"name\": \"f\", \"constraints\": {\"enum\": [\"1\", \"\"]}}", "", "", 1 },
	{ "{\"name\": \"f\", \"constraints\": {\"enum\": [\"1\", \"\"]}}", "○",
	  "\"○\" is not one of the allowed values: \"1\", \"\"", 0 },
	{ "{\"name\": \"f\", \"constraints\": {\"enum\": [\"有\", \"無\"]}}", "有 ",
	  "\"有 \" is not one of the allowed values: \"有\", \"無\"", 0 },
	/* typed enums compare canonical values */
	{ "{\"name\": \"f\", \"type\": \"integer\", \"constraints\": {\"enum\": [1, \"2\"]}}", "+02", "2", 1 },
	{ "{\"name\": \"f\", \"type\": \"integer\", \"constraints\": {\"enum\": [1, \"2\"]}}", "3",
	  "\"3\" is not one of the allowed values: \"1\", \"2\"", 0 },
	{ "{\"name\": \"f\", \"type\": \"date\", \"constraints\": {\"enum\": [\"2020-03-01\"]}}",
	  "2020/3/1", "2020-03-01", 1 },
	{ "{\"name\": \"f\", \"type\": \"number\", \"constraints\": {\"enum\": [0.5, 1]}}", "0.50", "0.5", 1 },
	{ "{\"name\": \"f\", \"type\": \"boolean\", \"constraints\": {\"enum\": [true]}}", "0",
	  "\"0\" is not one of the allowed values: \"true\"", 0 },
	/* the type is checked before the constraints */
	{ "{\"name\": \"f\", \"type\": \"integer\", \"constraints\": {\"minimum\": 0}}", "-x",
	  "\"-x\" is not an integer", 0 },
};

static void test_constraints(void)
{
	check_conversions("constraint case", constraint_cases,
			  sizeof(constraint_cases) / sizeof(constraint_cases[0]));
}

static void test_long_value_quoted(void)
{
	struct schema *s = mk("{\"name\": \"f\", \"type\": \"integer\"}");
	char in[300], why[512];
	struct mu_value v;

	REQUIRE(s != NULL);
	/* 99 three-byte characters and a newline: cut on a character boundary */
	for (int i = 0; i < 99; i++)
		memcpy(in + 3 * i, "焼", 3);
	in[297] = '\n';
	in[298] = '\0';
	CHECK_RC(schema_convert(&s->fields[0], in, 298, &v, why, sizeof(why)), MU_E_SCHEMA);
	CHECK(strncmp(why, "\"焼焼", 7) == 0);
	CHECK(strstr(why, "...\" is not an integer") != NULL);
	CHECK(strlen(why) < 100);
	schema_destroy(&s);
}

static void test_pattern_edges(void)
{
	struct schema *s = mk("{\"name\": \"f\", \"constraints\": {\"pattern\": \"[0-9]{6}|x+\"}}");
	char in[1000], why[256];
	struct mu_value v;

	REQUIRE(s != NULL);
	/* the length bounds the match: text after a NUL still counts, and the
	 * cell need not be NUL-terminated */
	CHECK_RC(schema_convert(&s->fields[0], "222127\0x", 8, &v, why, sizeof(why)), MU_E_SCHEMA);
	CHECK_OK(schema_convert(&s->fields[0], "2221279", 6, &v, why, sizeof(why)));
	/* a cell longer than the stack copy */
	memset(in, 'x', sizeof(in));
	CHECK_OK(schema_convert(&s->fields[0], in, sizeof(in), &v, why, sizeof(why)));
	in[999] = 'y';
	CHECK_RC(schema_convert(&s->fields[0], in, sizeof(in), &v, why, sizeof(why)), MU_E_SCHEMA);
	CHECK(strstr(why, "...\" does not match the pattern [0-9]{6}|x+") != NULL);
	schema_destroy(&s);
}

/* ---- format ---- */

static void test_format_round_trip(void)
{
	static const char *const nums[] = { "0.1", "1e21", "-0", "34.866918", "0.3333333333333333",
					    "5e-324", "1.7976931348623157e308", "-123.456", "100" };
	struct schema *s = mk(FIELD("n", T_NUM) "," FIELD("i", T_INT) "," FIELD("b", T_MARU) ","
			      FIELD("t", T_DT) "," FIELD("g", T_GEO));
	struct mu_value v, back;
	char text[64], why[256];
	size_t n;

	REQUIRE(s != NULL);
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		CHECK_OK(schema_convert(&s->fields[0], nums[i], strlen(nums[i]), &v, why, sizeof(why)));
		n = schema_format(&v, text, sizeof(text));
		CHECK(n == strlen(text));
		CHECK_OK(schema_convert(&s->fields[0], text, n, &back, why, sizeof(why)));
		CHECK(back.kind == MU_VAL_NUM && memcmp(&back.d, &v.d, sizeof(double)) == 0);
	}
	/* integers print plain; booleans as true/false, which convert back even
	 * for a field whose own spelling is ○ */
	v = (struct mu_value){ .kind = MU_VAL_INT, .i = INT64_MIN };
	schema_format(&v, text, sizeof(text));
	CHECK_STREQ(text, "-9223372036854775808");
	CHECK_OK(schema_convert(&s->fields[1], text, strlen(text), &back, why, sizeof(why)));
	CHECK(back.i == INT64_MIN);
	for (int b = 0; b <= 1; b++) {
		v = (struct mu_value){ .kind = MU_VAL_BOOL, .i = b };
		n = schema_format(&v, text, sizeof(text));
		CHECK_OK(schema_convert(&s->fields[2], text, n, &back, why, sizeof(why)));
		CHECK(back.kind == MU_VAL_BOOL && back.i == b);
	}
	/* canonical text formats to itself */
	CHECK_OK(schema_convert(&s->fields[3], "2020/1/2 3:04", 13, &v, why, sizeof(why)));
	n = schema_format(&v, text, sizeof(text));
	CHECK_OK(schema_convert(&s->fields[3], text, n, &back, why, sizeof(why)));
	CHECK_STREQ(back.text, "2020-01-02T03:04:00");
	CHECK_OK(schema_convert(&s->fields[4], "-33.5, 151.25", 13, &v, why, sizeof(why)));
	n = schema_format(&v, text, sizeof(text));
	CHECK_OK(schema_convert(&s->fields[4], text, n, &back, why, sizeof(why)));
	CHECK_STREQ(back.text, "-33.5,151.25");
	/* NULL is the empty cell; a small buffer truncates and reports the need */
	v = (struct mu_value){ .kind = MU_VAL_NULL };
	CHECK(schema_format(&v, text, sizeof(text)) == 0 && text[0] == '\0');
	v = (struct mu_value){ .kind = MU_VAL_TEXT, .text = "abcdef", .len = 6 };
	CHECK(schema_format(&v, text, 4) == 6);
	CHECK_STREQ(text, "abc");
	CHECK(schema_format(&v, NULL, 0) == 6);
	schema_destroy(&s);
}

/* ---- schema_parse errors ---- */

struct parse_case {
	const char *doc;
	const char *why;    /* the message, or a part of it */
};

#define F1 "\"fields\": [{\"name\": \"a\"}], \"primaryKey\": \"a\""
#define DOC(fields) "{\"name\": \"t\", \"version\": 1, \"fields\": [" fields "], \"primaryKey\": \"a\"}"

static const struct parse_case parse_cases[] = {
	{ "{\"name\": ", "invalid JSON at line 1" },
	{ "{\"name\": \"t\", \"name\": \"u\", \"version\": 1, " F1 "}", "duplicate object key" },
	{ "[]", "a schema must be a JSON object" },
	{ "{\"version\": 1, " F1 "}", "missing \"name\" (the schema id)" },
	{ "{\"name\": \"Bad-Id\", \"version\": 1, " F1 "}", "\"name\" must be a schema id" },
	{ "{\"name\": \"t\", " F1 "}", "missing \"version\"" },
	{ "{\"name\": \"t\", \"version\": 0, " F1 "}", "\"version\" must be a positive integer" },
	{ "{\"name\": \"t\", \"version\": \"1\", " F1 "}", "\"version\" must be a positive integer" },
	{ "{\"name\": \"t\", \"version\": 1.5, " F1 "}", "\"version\" must be a positive integer" },
	{ "{\"name\": \"t\", \"version\": 1, \"title\": 5, " F1 "}", "the schema: \"title\" must be a string" },
	{ "{\"name\": \"t\", \"version\": 1, \"primaryKey\": \"a\"}", "\"fields\" must be a non-empty array" },
	{ "{\"name\": \"t\", \"version\": 1, \"fields\": [], \"primaryKey\": \"a\"}",
	  "\"fields\" must be a non-empty array" },
	{ "{\"name\": \"t\", \"version\": 1, \"fields\": [{\"name\": \"a\"}]}", "missing \"primaryKey\"" },
	{ "{\"name\": \"t\", \"version\": 1, \"missingValues\": [\"\", \"NA\"], " F1 "}",
	  "\"missingValues\" must be [\"\"]" },
	{ DOC("{\"name\": \"a\"}, 3"), "field 2 is not an object" },
	{ DOC("{\"name\": \"a\"}, {\"type\": \"string\"}"), "field 2 has no \"name\"" },
	{ DOC("{\"name\": \"a\", \"type\": \"text\"}"), "field 1 (\"a\"): unknown type \"text\"" },
	{ DOC("{\"name\": \"a\", \"type\": 1}"), "field 1 (\"a\"): \"type\" must be a string" },
	{ DOC("{\"name\": \"a\", \"format\": 1}"), "field 1 (\"a\"): \"format\" must be a string" },
	{ DOC("{\"name\": \"a\", \"type\": \"geopoint\", \"format\": \"array\"}"),
	  "a geopoint's format must be \"default\"" },
	{ DOC("{\"name\": \"a\", \"description\": []}"), "\"description\" must be a string" },
	{ DOC("{\"name\": \"a\"}, {\"name\": \"a\"}"), "fields 1 and 2 are both named \"a\"" },
	{ DOC("{\"name\": \"a\"}, {\"name\": \"ａ \"}"),
	  "fields \"a\" and \"ａ \" would both match the header" },
	{ DOC("{\"name\": \"a\"}, {\"name\": \"b\", \"x-aliases\": [\"a\"]}"),
	  "fields \"a\" and \"b\" would both match the header \"a\"" },
	{ DOC("{\"name\": \"a\", \"x-aliases\": \"b\"}"), "\"x-aliases\" must be an array of strings" },
	{ DOC("{\"name\": \"a\", \"x-aliases\": [\"\"]}"), "\"x-aliases\" must hold non-empty strings" },
	{ "{\"name\": \"t\", \"version\": 1, \"fields\": [{\"name\": \"a\"}], \"primaryKey\": \"zz\"}",
	  "\"primaryKey\" names \"zz\", which is not a field" },
	{ "{\"name\": \"t\", \"version\": 1, \"fields\": [{\"name\": \"a\"}], \"primaryKey\": [\"a\", \"a\"]}",
	  "\"primaryKey\" names \"a\" twice" },
	{ "{\"name\": \"t\", \"version\": 1, \"fields\": [{\"name\": \"a\"}], \"primaryKey\": []}",
	  "\"primaryKey\" must be a field name or a non-empty array of them" },
	{ "{\"name\": \"t\", \"version\": 1, \"fields\": [{\"name\": \"a\"}], \"primaryKey\": [1]}",
	  "\"primaryKey\" must be a field name or a non-empty array of them" },
	{ DOC("{\"name\": \"a\", \"constraints\": []}"), "field 1 (\"a\"): \"constraints\" must be an object" },
	{ DOC("{\"name\": \"a\", \"constraints\": {\"required\": \"yes\"}}"),
	  "field 1 (\"a\"): constraint required must be true or false" },
	{ DOC("{\"name\": \"a\", \"constraints\": {\"unique\": 1}}"), "constraint unique must be true or false" },
	{ DOC("{\"name\": \"a\", \"type\": \"number\", \"constraints\": {\"minimum\": \"5\"}}"),
	  "field 1 (\"a\"): constraint minimum must be a number" },
	{ DOC("{\"name\": \"a\", \"constraints\": {\"maximum\": 5}}"),
	  "constraint maximum applies only to integer, number and year fields" },
	{ DOC("{\"name\": \"a\", \"type\": \"integer\", \"constraints\": {\"minimum\": 5, \"maximum\": 4}}"),
	  "field 1 (\"a\"): minimum is greater than maximum" },
	{ DOC("{\"name\": \"a\", \"constraints\": {\"minLength\": -1}}"),
	  "constraint minLength must be a non-negative integer" },
	{ DOC("{\"name\": \"a\", \"constraints\": {\"maxLength\": 2.5}}"),
	  "constraint maxLength must be a non-negative integer" },
	{ DOC("{\"name\": \"a\", \"type\": \"integer\", \"constraints\": {\"maxLength\": 2}}"),
	  "constraint maxLength applies only to string fields" },
	{ DOC("{\"name\": \"a\", \"constraints\": {\"minLength\": 3, \"maxLength\": 2}}"),
	  "minLength is greater than maxLength" },
	{ DOC("{\"name\": \"a\", \"constraints\": {\"pattern\": 5}}"), "constraint pattern must be a string" },
	{ DOC("{\"name\": \"a\", \"constraints\": {\"pattern\": \"[0-9\"}}"),
	  "field 1 (\"a\"): pattern [0-9 does not compile" },
	{ DOC("{\"name\": \"a\", \"constraints\": {\"pattern\": \"a{3,2}\"}}"), "pattern a{3,2} does not compile" },
	{ DOC("{\"name\": \"a\", \"constraints\": {\"pattern\": \"a)|(b\"}}"),
	  "pattern a)|(b is refused: a ')' has no matching '('" },
	{ DOC("{\"name\": \"a\", \"constraints\": {\"pattern\": \"(a)\\\\1\"}}"),
	  "is refused: back-references are not supported" },
	{ DOC("{\"name\": \"a\", \"constraints\": {\"pattern\": \"((a{100}){100}){100}\"}}"),
	  "is refused: its {m,n} bounds expand too far" },
	{ DOC("{\"name\": \"a\", \"constraints\": {\"pattern\": \"a++++++++++++++++\"}}"),
	  "is refused: a quantifier follows a quantifier" },
	{ DOC("{\"name\": \"a\", \"constraints\": {\"exclusiveMinimum\": 1}}"),
	  "field 1 (\"a\"): unknown constraint \"exclusiveMinimum\"" },
	{ DOC("{\"name\": \"a\", \"constraints\": {\"enum\": []}}"), "enum must be a non-empty array" },
	{ DOC("{\"name\": \"a\", \"constraints\": {\"enum\": \"x\"}}"), "enum must be a non-empty array" },
	{ DOC("{\"name\": \"a\", \"constraints\": {\"enum\": [1]}}"),
	  "enum values of a string field must be strings" },
	{ DOC("{\"name\": \"a\", \"type\": \"integer\", \"constraints\": {\"enum\": [\"x\"]}}"),
	  "field 1 (\"a\"): enum value \"x\" is not an integer" },
	{ DOC("{\"name\": \"a\", \"type\": \"date\", \"constraints\": {\"enum\": [\"2021-02-29\"]}}"),
	  "enum value \"2021-02-29\" is not a date: 2021-02 has no day 29" },
	{ DOC("{\"name\": \"a\", \"type\": \"integer\", \"constraints\": {\"enum\": [null]}}"),
	  "enum value 1 is not a string, number or boolean" },
	{ DOC("{\"name\": \"a\", \"trueValues\": [\"y\"]}"),
	  "trueValues and falseValues apply only to boolean fields" },
	{ DOC("{\"name\": \"a\", \"type\": \"boolean\", \"trueValues\": [\"1\"], \"falseValues\": [\"1\"]}"),
	  "field 1 (\"a\"): \"1\" is both true and false" },
	{ DOC("{\"name\": \"a\", \"type\": \"boolean\", \"falseValues\": [\"true\"]}"),
	  "\"true\" is both true and false" },
	{ DOC("{\"name\": \"a\", \"type\": \"boolean\", \"trueValues\": [1]}"),
	  "\"trueValues\" must hold non-empty strings" },
};

static void test_parse_errors(void)
{
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		const struct parse_case *c = &parse_cases[i];
		struct schema *s = (struct schema *)&s;  /* must be reset to NULL */
		char *why = NULL;

		CHECK_RC(schema_parse(c->doc, strlen(c->doc), &s, &why), MU_E_SCHEMA);
		CHECK(s == NULL);
		if (why == NULL || strstr(why, c->why) == NULL) {
			fprintf(stderr, "parse case %zu: got \"%s\", wanted \"%s\"\n", i,
				why ? why : "(null)", c->why);
			CHECK(0);
		}
		free(why);
		/* why may be NULL */
		CHECK_RC(schema_parse(c->doc, strlen(c->doc), &s, NULL), MU_E_SCHEMA);
	}
}

static void test_parse_accepts(void)
{
	/* defaults and every optional property at once */
	const char *doc = "{\"name\": \"t_2\", \"version\": 4294967295, \"title\": \"T\", "
			  "\"x-anything\": {\"kept\": true}, \"missingValues\": [\"\"], \"fields\": ["
			  "{\"name\": \"k\", \"title\": \"K\", \"description\": \"d\", \"format\": \"default\","
			  " \"constraints\": {\"required\": true, \"unique\": true, \"minLength\": 1,"
			  " \"maxLength\": 9, \"pattern\": \"[a-z]+\", \"enum\": [\"ab\", \"cd\"]}},"
			  "{\"name\": \"b\", \"type\": \"boolean\"},"
			  "{\"name\": \"n\", \"type\": \"number\", \"constraints\": {\"minimum\": 1e-3}},"
			  "{\"name\": \"g\", \"type\": \"geopoint\", \"format\": \"default\"}],"
			  "\"primaryKey\": [\"k\", \"g\"]}";
	struct schema *s = NULL;
	char *why = NULL;

	CHECK_OK(schema_parse(doc, strlen(doc), &s, &why));
	REQUIRE(s != NULL);
	CHECK(s->version == 4294967295u && s->nfields == 4 && s->npk == 2 && s->pk[1] == 3);
	CHECK(s->fields[0].type == SCHEMA_STRING && s->fields[0].unique && s->fields[0].required);
	CHECK(s->fields[0].min_length == 1 && s->fields[0].max_length == 9);
	CHECK_STREQ(s->fields[0].pattern, "[a-z]+");
	CHECK(s->fields[1].ntrue == 4 && s->fields[1].nfalse == 4);
	CHECK(s->fields[2].has_minimum && !s->fields[2].has_maximum && s->fields[2].minimum == 1e-3);
	CHECK(s->fields[3].min_length == -1 && s->fields[3].pattern == NULL);
	CHECK_STREQ(schema_type_name(s->fields[3].type), "geopoint");
	CHECK_STREQ(schema_type_name((enum schema_type)99), "unknown");
	schema_destroy(&s);
	/* a version past 32 bits is refused */
	const char *big = "{\"name\": \"t\", \"version\": 4294967296, " F1 "}";
	CHECK_RC(schema_parse(big, strlen(big), &s, &why), MU_E_SCHEMA);
	free(why);
}

/* ---- compatibility ---- */

#define BASE "{\"name\": \"a\", \"constraints\": {\"required\": true}}," \
	     "{\"name\": \"b\", \"type\": \"integer\", \"constraints\": {\"minimum\": 0, \"maximum\": 10}}," \
	     "{\"name\": \"c\", \"constraints\": {\"enum\": [\"x\", \"y\"], \"maxLength\": 5}}," \
	     "{\"name\": \"d\", \"type\": \"boolean\", \"trueValues\": [\"1\", \"○\"], \"x-aliases\": [\"D\"]}"

struct compat_case {
	const char *fields;  /* of version 2 */
	const char *why;     /* NULL: compatible */
};

static const struct compat_case compat_cases[] = {
	/* loosened constraints and an optional new field */
	{ "{\"name\": \"a\", \"constraints\": {\"required\": true}},"
	  "{\"name\": \"b\", \"type\": \"integer\", \"constraints\": {\"minimum\": -5}},"
	  "{\"name\": \"c\", \"constraints\": {\"enum\": [\"x\", \"y\", \"z\"], \"maxLength\": 6}},"
	  "{\"name\": \"d\", \"type\": \"boolean\", \"trueValues\": [\"1\", \"○\", \"yes\"], "
	  "\"x-aliases\": [\"D\", \"DD\"]},"
	  "{\"name\": \"e\", \"type\": \"date\"}", NULL },
	{ "{\"name\": \"a\", \"constraints\": {\"required\": true}},"
	  "{\"name\": \"c\", \"constraints\": {\"enum\": [\"x\", \"y\"], \"maxLength\": 5}},"
	  "{\"name\": \"d\", \"type\": \"boolean\", \"trueValues\": [\"1\", \"○\"], \"x-aliases\": [\"D\"]}",
	  "field \"b\" is removed" },
	{ "{\"name\": \"a\", \"constraints\": {\"required\": true}},"
	  "{\"name\": \"b\", \"type\": \"number\", \"constraints\": {\"minimum\": 0, \"maximum\": 10}},"
	  "{\"name\": \"c\", \"constraints\": {\"enum\": [\"x\", \"y\"], \"maxLength\": 5}},"
	  "{\"name\": \"d\", \"type\": \"boolean\", \"trueValues\": [\"1\", \"○\"], \"x-aliases\": [\"D\"]}",
	  "field \"b\" changes type from integer to number" },
	{ "{\"name\": \"a\", \"constraints\": {\"required\": true}},"
	  "{\"name\": \"b\", \"type\": \"integer\", \"constraints\": {\"minimum\": 1, \"maximum\": 9, \"required\": true, \"unique\": true}},"
	  "{\"name\": \"c\", \"constraints\": {\"enum\": [\"x\"], \"maxLength\": 4, \"minLength\": 1, \"pattern\": \"[a-z]\"}},"
	  "{\"name\": \"d\", \"type\": \"boolean\", \"trueValues\": [\"1\"], \"falseValues\": [\"0\"]},"
	  "{\"name\": \"e\", \"constraints\": {\"required\": true}}",
	  "field \"b\" becomes required\n"
	  "field \"b\" becomes unique\n"
	  "field \"b\" raises its minimum from 0 to 1\n"
	  "field \"b\" lowers its maximum from 10 to 9\n"
	  "field \"c\" raises minLength to 1\n"
	  "field \"c\" lowers maxLength to 4\n"
	  "field \"c\" gets the pattern [a-z]\n"
	  "field \"c\" no longer accepts \"y\" (enum)\n"
	  "field \"d\" no longer accepts \"○\" as true\n"
	  "field \"d\" no longer accepts \"false\" as false\n"
	  "field \"d\" no longer accepts \"False\" as false\n"
	  "field \"d\" no longer accepts \"FALSE\" as false\n"
	  "field \"d\" no longer accepts \"D\" as a header (x-aliases)\n"
	  "new field \"e\" is required" },
	{ "{\"name\": \"a\", \"constraints\": {\"required\": true}},"
	  "{\"name\": \"b\", \"type\": \"integer\", \"constraints\": {\"minimum\": 0, \"maximum\": 10}},"
	  "{\"name\": \"c\", \"constraints\": {\"maxLength\": 5, \"pattern\": \"[xy]\"}},"
	  "{\"name\": \"d\", \"type\": \"boolean\", \"trueValues\": [\"1\", \"○\"], \"x-aliases\": [\"D\"]}",
	  "field \"c\" gets the pattern [xy]" },
};

static void test_compat(void)
{
	struct schema *v1 = mk(BASE), *v2, *other;
	char *why = (char *)"stale";

	REQUIRE(v1 != NULL);
	for (size_t i = 0; i < sizeof(compat_cases) / sizeof(compat_cases[0]); i++) {
		char *perr = NULL;
		v2 = mk_version(2, compat_cases[i].fields, &perr);
		free(perr);
		REQUIRE(v2 != NULL);
		if (compat_cases[i].why == NULL) {
			CHECK_OK(schema_compat(v1, v2, &why));
			CHECK(why == NULL);
		} else {
			CHECK_RC(schema_compat(v1, v2, &why), MU_E_INCOMPAT);
			CHECK_STREQ(why, compat_cases[i].why);
			free(why);
		}
		schema_destroy(&v2);
	}

	/* the same version, another id, another primary key: all reasons at once */
	const char *doc = "{\"name\": \"u\", \"version\": 1, \"fields\": [" BASE "], \"primaryKey\": [\"b\", \"a\"]}";
	CHECK_OK(schema_parse(doc, strlen(doc), &other, NULL));
	REQUIRE(other != NULL);
	CHECK_RC(schema_compat(v1, other, &why), MU_E_INCOMPAT);
	CHECK_STREQ(why, "the schema id changes from t to u\n"
			 "version 1 is not higher than 1\n"
			 "the primary key changes from (a) to (b, a)");
	free(why);
	CHECK_RC(schema_compat(v1, other, NULL), MU_E_INCOMPAT);
	schema_destroy(&other);
	schema_destroy(&v1);
}

/* Yaizu's 自治体標準 layout is a version 2 of the same id, but not one that
 * old data or old files can move to without a mapping. */
static void test_compat_public_toilet(void)
{
	static const char *const reasons[] = {
		"the primary key changes from (NO) to (ID)\n",
		"field \"NO\" is removed\n",
		"field \"住所\" is removed\n",
		"field \"多機能トイレ数\" is removed\n",
		"field \"男性トイレ総数\" changes type from number to integer\n",
		"field \"男性トイレ総数\" gains a minimum of 0\n",
		"new field \"ID\" is required",
		"new field \"バリアフリートイレ数\" is required",
	};
	struct schema *v1 = NULL, *v2 = NULL, *fh1 = NULL, *fh2 = NULL;
	char *why = NULL;

	CHECK_OK(schema_resolve("public_toilet@1", &v1, NULL));
	CHECK_OK(schema_resolve("public_toilet@2", &v2, NULL));
	REQUIRE(v1 != NULL && v2 != NULL);
	CHECK_RC(schema_compat(v1, v2, &why), MU_E_INCOMPAT);
	REQUIRE(why != NULL);
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
		if (strstr(why, reasons[i]) == NULL) {
			fprintf(stderr, "public_toilet@1 -> @2: no reason %s\n", reasons[i]);
			CHECK(0);
		}
	}
	/* 名称_カナ is required in both; id and version are fine */
	CHECK(strstr(why, "名称_カナ") == NULL);
	CHECK(strstr(why, "version") == NULL && strstr(why, "schema id") == NULL);
	free(why);
	/* and no way back */
	CHECK_RC(schema_compat(v2, v1, &why), MU_E_INCOMPAT);
	CHECK(strstr(why, "version 1 is not higher than 2") != NULL);
	free(why);

	CHECK_OK(schema_resolve("fire_hydrant@1", &fh1, NULL));
	CHECK_OK(schema_resolve("fire_hydrant@2", &fh2, NULL));
	REQUIRE(fh1 != NULL && fh2 != NULL);
	CHECK_RC(schema_compat(fh1, fh2, &why), MU_E_INCOMPAT);
	CHECK(strstr(why, "the primary key changes from (NO) to (ID)\n") != NULL);
	CHECK(strstr(why, "field \"住所\" is removed") != NULL);
	free(why);
	schema_destroy(&v1);
	schema_destroy(&v2);
	schema_destroy(&fh1);
	schema_destroy(&fh2);
}

/* evacuation_space@2, aed@2 and covid19_patients@2 only stop requiring
 * what the real GSI, Takamatsu and Hokkaido layouts lack: a compatible
 * evolution of @1 (the same columns, so one table unites both), and no
 * way back. */
static void test_compat_relaxed(void)
{
	static const struct {
		const char *v1, *v2, *dropped[2];
	} cases[] = {
		{ "evacuation_space@1", "evacuation_space@2", { "名称_カナ", "電話番号" } },
		{ "aed@1", "aed@2", { "名称_カナ", "設置位置" } },
		{ "covid19_patients@1", "covid19_patients@2", { "市区町村名", "市区町村名" } },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct schema *a = NULL, *b = NULL;
		char *why = NULL;
		CHECK_OK(schema_resolve(cases[i].v1, &a, NULL));
		CHECK_OK(schema_resolve(cases[i].v2, &b, NULL));
		REQUIRE(a != NULL && b != NULL);
		CHECK_OK(schema_compat(a, b, &why));
		CHECK(why == NULL);
		CHECK(a->nfields == b->nfields);
		for (size_t f = 0; f < a->nfields; f++) {
			int dropped = strcmp(a->fields[f].name, cases[i].dropped[0]) == 0 ||
				      strcmp(a->fields[f].name, cases[i].dropped[1]) == 0;
			CHECK_STREQ(b->fields[f].name, a->fields[f].name);
			CHECK(b->fields[f].type == a->fields[f].type);
			CHECK(b->fields[f].required == (a->fields[f].required && !dropped));
		}
		CHECK_RC(schema_compat(b, a, &why), MU_E_INCOMPAT);
		CHECK(why != NULL && strstr(why, cases[i].dropped[0]) != NULL &&
		      strstr(why, "becomes required") != NULL);
		free(why);
		schema_destroy(&a);
		schema_destroy(&b);
	}
}

CHECK_TESTS = {
	{ "builtins", test_builtins },
	{ "document kept", test_document_kept },
	{ "resolve", test_resolve },
	{ "real files", test_real_files },
	{ "yaizu flags refused", test_yaizu_flags_refused },
	{ "field index", test_field_index },
	{ "types", test_types },
	{ "value kinds", test_value_kinds },
	{ "constraints", test_constraints },
	{ "long value quoted", test_long_value_quoted },
	{ "pattern edges", test_pattern_edges },
	{ "format round trip", test_format_round_trip },
	{ "parse errors", test_parse_errors },
	{ "parse accepts", test_parse_accepts },
	{ "compat", test_compat },
	{ "compat public_toilet", test_compat_public_toilet },
	{ "compat relaxed standards", test_compat_relaxed },
	{ NULL, NULL },
};
