/* test_fedagg.c - aggregate pushdown's pieces, against SQLite itself: the
 * order of values equals SQLite's comparison, the program check accepts
 * exactly the decomposable shapes (over a small virtual table that
 * consumes GROUP BY as the federated one does), and the merging
 * aggregates give SQLite's answers from partial states. End to end, with
 * real nodes: tests/integration/fedagg.sh. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "check.h"
#include "fedagg.h"

/* ---- a table of three rows: a TEXT key, b INTEGER, x and y ---- */

struct row {
	const char *a;
	int64_t b, weight;
	struct fedagg_part x;
};

static struct mu_value v1 = { .kind = MU_VAL_INT, .i = 1 };
static struct mu_value v4 = { .kind = MU_VAL_INT, .i = 4 };
static struct mu_value v2 = { .kind = MU_VAL_NUM, .d = 2.5 };

static struct row rows[3];
static int nkeys, keys[8];
static int cur_row = -1;

struct tv {
	sqlite3_vtab base;
};
struct tc {
	sqlite3_vtab_cursor base;
	int i;
};

static int t_connect(sqlite3 *db, void *aux, int argc, const char *const *argv, sqlite3_vtab **out,
		     char **err)
{
	(void)aux; (void)argc; (void)argv; (void)err;
	if (sqlite3_declare_vtab(db, "CREATE TABLE x(a TEXT, b INTEGER, x REAL, y INTEGER)") != SQLITE_OK)
		return SQLITE_ERROR;
	*out = calloc(1, sizeof(struct tv));
	return *out ? SQLITE_OK : SQLITE_NOMEM;
}

static int t_disconnect(sqlite3_vtab *v)
{
	free(v);
	return SQLITE_OK;
}

/* As the federated table: GROUP BY columns consumed, constraints pushed. */
static int t_best_index(sqlite3_vtab *v, sqlite3_index_info *info)
{
	int argi = 0;

	(void)v;
	nkeys = 0;
	if (sqlite3_vtab_distinct(info) == 1 && info->nOrderBy > 0 && info->nOrderBy <= 8) {
		for (int i = 0; i < info->nOrderBy; i++)
			keys[nkeys++] = info->aOrderBy[i].iColumn;
		info->orderByConsumed = 1;
	}
	for (int i = 0; i < info->nConstraint; i++)
		if (info->aConstraint[i].usable && info->aConstraint[i].op == SQLITE_INDEX_CONSTRAINT_GT) {
			info->aConstraintUsage[i].argvIndex = ++argi;
			info->aConstraintUsage[i].omit = 1;
		}
	return SQLITE_OK;
}

static int t_open(sqlite3_vtab *v, sqlite3_vtab_cursor **out)
{
	(void)v;
	*out = calloc(1, sizeof(struct tc));
	return *out ? SQLITE_OK : SQLITE_NOMEM;
}

static int t_close(sqlite3_vtab_cursor *c)
{
	cur_row = -1;
	free(c);
	return SQLITE_OK;
}

static int t_filter(sqlite3_vtab_cursor *c, int n, const char *s, int argc, sqlite3_value **argv)
{
	(void)n; (void)s; (void)argc; (void)argv;
	cur_row = ((struct tc *)c)->i = 0;
	return SQLITE_OK;
}

static int t_next(sqlite3_vtab_cursor *c)
{
	cur_row = ++((struct tc *)c)->i;
	return SQLITE_OK;
}

static int t_eof(sqlite3_vtab_cursor *c)
{
	return ((struct tc *)c)->i >= 3;
}

static int t_column(sqlite3_vtab_cursor *c, sqlite3_context *ctx, int col)
{
	struct row *r = &rows[((struct tc *)c)->i];

	if (col == 0)
		sqlite3_result_text(ctx, r->a, -1, SQLITE_STATIC);
	else if (col == 1)
		sqlite3_result_int64(ctx, r->b);
	else
		fedagg_result_part(ctx, &r->x);
	return SQLITE_OK;
}

static int t_rowid(sqlite3_vtab_cursor *c, sqlite3_int64 *id)
{
	*id = ((struct tc *)c)->i;
	return SQLITE_OK;
}

static const sqlite3_module t_module = {
	.xCreate = t_connect, .xConnect = t_connect, .xBestIndex = t_best_index,
	.xDisconnect = t_disconnect, .xDestroy = t_disconnect, .xOpen = t_open, .xClose = t_close,
	.xFilter = t_filter, .xNext = t_next, .xEof = t_eof, .xColumn = t_column, .xRowid = t_rowid,
};

static int weight(void *ctx, int64_t *n)
{
	(void)ctx;
	if (cur_row < 0 || cur_row >= 3)
		return -1;
	*n = rows[cur_row].weight;
	return 0;
}

static sqlite3 *open_db(void)
{
	sqlite3 *db = NULL;

	if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
	    sqlite3_create_module(db, "t", &t_module, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, "CREATE VIRTUAL TABLE temp.t USING t; CREATE VIRTUAL TABLE temp.u USING t",
			 NULL, NULL, NULL) != SQLITE_OK ||
	    fedagg_functions(db, weight, NULL) < 0) {
		fprintf(stderr, "cannot set up: %s\n", db ? sqlite3_errmsg(db) : "no memory");
		exit(1);
	}
	return db;
}

/* ---- cases ---- */

static void test_value_order(void)
{
	struct mu_value vals[] = {
		{ .kind = MU_VAL_NULL }, { .kind = MU_VAL_INT, .i = -3 }, { .kind = MU_VAL_INT, .i = 2 },
		{ .kind = MU_VAL_NUM, .d = 2.0 }, { .kind = MU_VAL_NUM, .d = 2.5 },
		{ .kind = MU_VAL_INT, .i = INT64_MAX }, { .kind = MU_VAL_NUM, .d = 9.3e18 },
		{ .kind = MU_VAL_NUM, .d = -1e300 }, { .kind = MU_VAL_TEXT, .text = "", .len = 0 },
		{ .kind = MU_VAL_TEXT, .text = "10", .len = 2 }, { .kind = MU_VAL_TEXT, .text = "9", .len = 1 },
		{ .kind = MU_VAL_TEXT, .text = "ab", .len = 2 }, { .kind = MU_VAL_TEXT, .text = "abc", .len = 3 },
		{ .kind = MU_VAL_TEXT, .text = "避難", .len = strlen("避難") },
	};
	size_t n = sizeof(vals) / sizeof(vals[0]);
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	CHECK(sqlite3_open(":memory:", &db) == SQLITE_OK);
	/* NULLs compare as equal in GROUP BY (IS), the rest as < and =. */
	CHECK(sqlite3_prepare_v2(db, "SELECT ?1 < ?2 OR (?1 IS NULL AND ?2 IS NOT NULL), ?1 IS ?2", -1,
				 &st, NULL) == SQLITE_OK);
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < n; j++) {
			for (int k = 0; k < 2; k++) {
				const struct mu_value *v = k ? &vals[j] : &vals[i];
				if (v->kind == MU_VAL_INT)
					sqlite3_bind_int64(st, k + 1, v->i);
				else if (v->kind == MU_VAL_NUM)
					sqlite3_bind_double(st, k + 1, v->d);
				else if (v->kind == MU_VAL_TEXT)
					sqlite3_bind_text(st, k + 1, v->text, (int)v->len, SQLITE_STATIC);
				else
					sqlite3_bind_null(st, k + 1);
			}
			CHECK(sqlite3_step(st) == SQLITE_ROW);
			int want = sqlite3_column_int(st, 1) ? 0 : sqlite3_column_int(st, 0) ? -1 : 1;
			int got = fedagg_value_cmp(&vals[i], &vals[j]);
			got = got < 0 ? -1 : got > 0;
			if (got != want)
				fprintf(stderr, "  values %zu and %zu: %d, SQLite says %d\n", i, j, got, want);
			CHECK(got == want);
			sqlite3_reset(st);
		}
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static int accepts(sqlite3 *db, const char *sql, struct fedagg_plan *plan)
{
	static const char *const names[] = { "a", "b", "x", "y" };
	struct fedagg_prog p;
	char why[256] = "";
	int ok;

	nkeys = 0;
	if (fedagg_prog_load(db, sql, &p) < 0)
		return -1;   /* not even compiled: neither accepted nor refused */
	ok = fedagg_check(&p, keys, (size_t)nkeys, names, 4, plan, why, sizeof(why));
	fedagg_prog_fini(&p);
	return ok;
}

static void test_check(void)
{
	static const char *const streamed[] = {
		"SELECT a, x, count(*) FROM t GROUP BY a",
		"SELECT count(DISTINCT x) FROM t",
		"SELECT a, count(DISTINCT x) FROM t GROUP BY a",
		"SELECT sum(x + y) FROM t",
		"SELECT count(*) FROM t GROUP BY substr(a, 1, 2)",
		"SELECT a, count(a) FROM t GROUP BY a",
		"SELECT a, group_concat(x) FROM t GROUP BY a",
		"SELECT t.a, count(*) FROM t JOIN u ON t.a = u.a GROUP BY 1",
		"SELECT a, count(*) FROM t GROUP BY a HAVING count(*) > (SELECT count(*) FROM u)",
		"SELECT count(*) FROM t WHERE x < y",
		"SELECT a FROM t",
		"SELECT count(*), sum(n) FROM (SELECT a, count(*) AS n FROM t GROUP BY a)",
	};
	struct fedagg_plan plan;
	sqlite3 *db = open_db();

	CHECK(accepts(db, "SELECT a, count(*), sum(x), max(x), avg(y) FROM t WHERE b > 3 GROUP BY a "
			  "HAVING count(*) > 1 ORDER BY 2 DESC LIMIT 3", &plan) == 1);
	CHECK(plan.count_star == 1);
	CHECK(plan.nargs == 2 && plan.args[0] == 2 && plan.args[1] == 3);
	CHECK(plan.needs[0] == (FEDAGG_SUM | FEDAGG_MAX) && plan.needs[1] == FEDAGG_AVG);
	CHECK(accepts(db, "SELECT count(*), total(y), min(x) FROM t", &plan) == 1);
	CHECK(accepts(db, "SELECT a, b, upper(a), count(x) FROM t GROUP BY a, b", &plan) == 1);
	CHECK(plan.count_star == 0);
	for (size_t i = 0; i < sizeof(streamed) / sizeof(streamed[0]); i++) {
		int got = accepts(db, streamed[i], &plan);
		if (got != 0)
			fprintf(stderr, "  %s: %s\n", got > 0 ? "accepted" : "did not compile", streamed[i]);
		CHECK(got == 0);
	}
	sqlite3_close(db);
}

static void test_merge(void)
{
	sqlite3 *db = open_db();
	sqlite3_stmt *st = NULL;

	/* Two partial states of group p (weights 3 and 2), one empty one of q. */
	rows[0] = (struct row){ "p", 1, 3, { 2, 1, 5, 5.0, &v1, &v4 } };
	rows[1] = (struct row){ "p", 2, 2, { 1, 2, 0, 2.5, &v2, &v2 } };
	rows[2] = (struct row){ "q", 3, 4, { 0, 0, 0, 0.0, NULL, NULL } };
	CHECK(sqlite3_prepare_v2(db, "SELECT a, count(*), count(x), sum(x), total(x), avg(x), min(x), "
				 "max(x), typeof(sum(y)) FROM t GROUP BY a", -1, &st, NULL) == SQLITE_OK);
	CHECK(sqlite3_step(st) == SQLITE_ROW);
	CHECK_STREQ((const char *)sqlite3_column_text(st, 0), "p");
	CHECK(sqlite3_column_int64(st, 1) == 5);
	CHECK(sqlite3_column_int64(st, 2) == 3);
	CHECK(sqlite3_column_type(st, 3) == SQLITE_FLOAT && sqlite3_column_double(st, 3) == 7.5);
	CHECK(sqlite3_column_double(st, 4) == 7.5);
	CHECK(fabs(sqlite3_column_double(st, 5) - 2.5) < 1e-12);
	CHECK(sqlite3_column_type(st, 6) == SQLITE_INTEGER && sqlite3_column_int64(st, 6) == 1);
	CHECK(sqlite3_column_type(st, 7) == SQLITE_INTEGER && sqlite3_column_int64(st, 7) == 4);
	CHECK(sqlite3_step(st) == SQLITE_ROW);
	CHECK_STREQ((const char *)sqlite3_column_text(st, 0), "q");
	CHECK(sqlite3_column_int64(st, 1) == 4);
	CHECK(sqlite3_column_int64(st, 2) == 0);
	CHECK(sqlite3_column_type(st, 3) == SQLITE_NULL);
	CHECK(sqlite3_column_type(st, 4) == SQLITE_FLOAT && sqlite3_column_double(st, 4) == 0.0);
	CHECK(sqlite3_column_type(st, 5) == SQLITE_NULL);
	CHECK(sqlite3_column_type(st, 6) == SQLITE_NULL && sqlite3_column_type(st, 7) == SQLITE_NULL);
	CHECK(sqlite3_step(st) == SQLITE_DONE);
	sqlite3_finalize(st);

	/* Integer sums stay integers, and overflow is an error as in SQLite. */
	rows[1].x.sum_kind = 1;
	rows[1].x.isum = 2;
	CHECK(sqlite3_prepare_v2(db, "SELECT sum(x) FROM t WHERE b > 0", -1, &st, NULL) == SQLITE_OK);
	CHECK(sqlite3_step(st) == SQLITE_ROW);
	CHECK(sqlite3_column_type(st, 0) == SQLITE_INTEGER && sqlite3_column_int64(st, 0) == 7);
	sqlite3_finalize(st);
	rows[1].x.isum = INT64_MAX;
	CHECK(sqlite3_prepare_v2(db, "SELECT sum(x) FROM t", -1, &st, NULL) == SQLITE_OK);
	CHECK(sqlite3_step(st) == SQLITE_ERROR);
	CHECK(strstr(sqlite3_errmsg(db), "integer overflow") != NULL);
	sqlite3_finalize(st);

	/* A plain value reaching a merging aggregate fails loudly. */
	CHECK(sqlite3_prepare_v2(db, "SELECT sum(b) FROM t", -1, &st, NULL) == SQLITE_OK);
	CHECK(sqlite3_step(st) == SQLITE_ERROR);
	CHECK(strstr(sqlite3_errmsg(db), "--no-pushdown") != NULL);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

CHECK_TESTS = {
	{ "value order", test_value_order },
	{ "check", test_check },
	{ "merge", test_merge },
	{ NULL, NULL },
};
