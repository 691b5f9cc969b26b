/*
 * fedagg.c - aggregate pushdown (see fedagg.h): the program check, and
 * the aggregates that merge partial states, with SQLite 3.40's semantics
 * of count, sum, total, avg, min and max.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedagg.h"
#include "mu_err.h"

#define PART_TYPE "musubi_fedagg_part"

/* ---- the order of values ---- */

static int kind_class(const struct mu_value *v)
{
	switch (v->kind) {
	case MU_VAL_NULL: return 0;
	case MU_VAL_INT:
	case MU_VAL_BOOL:
	case MU_VAL_NUM: return 1;
	default: return 2;
	}
}

/* An integer against a real, exactly (as sqlite3IntFloatCompare). */
static int int_real_cmp(int64_t i, double r)
{
	if (r < -9223372036854775808.0)
		return 1;
	if (r >= 9223372036854775808.0)
		return -1;
	int64_t y = (int64_t)r;
	if (i < y)
		return -1;
	if (i > y)
		return 1;
	double s = (double)i;
	return s < r ? -1 : s > r ? 1 : 0;
}

int fedagg_value_cmp(const struct mu_value *a, const struct mu_value *b)
{
	int ca = kind_class(a), cb = kind_class(b);

	if (ca != cb)
		return ca < cb ? -1 : 1;
	if (ca == 0)
		return 0;
	if (ca == 1) {
		int ar = a->kind == MU_VAL_NUM, br = b->kind == MU_VAL_NUM;
		if (!ar && !br)
			return a->i < b->i ? -1 : a->i > b->i;
		if (ar && br)
			return a->d < b->d ? -1 : a->d > b->d;
		return ar ? -int_real_cmp(b->i, a->d) : int_real_cmp(a->i, b->d);
	}
	size_t n = a->len < b->len ? a->len : b->len;
	int c = n ? memcmp(a->text, b->text, n) : 0;
	if (c != 0)
		return c < 0 ? -1 : 1;
	return a->len < b->len ? -1 : a->len > b->len;
}

/* ---- the merging aggregates ---- */

struct acc {
	int stepped;
	int64_t cnt;
	int64_t isum;
	int approx, overflow;
	double rsum;
	const struct mu_value *min, *max;
};

struct fn_ctx {
	int (*weight)(void *ctx, int64_t *n);
	void *ctx;
};

void fedagg_result_part(sqlite3_context *ctx, const struct fedagg_part *part)
{
	sqlite3_result_pointer(ctx, (void *)part, PART_TYPE, NULL);
}

/* One partial state into the accumulator. SQLite's sum() adds integers
 * exactly until one overflows or a real comes, and sums every value as a
 * double alongside (total() and avg() are that double): a node's sum(x)
 * says which case it was in, its total(x) is its share of the double. */
static void part_step(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const struct fedagg_part *p = sqlite3_value_pointer(argv[0], PART_TYPE);
	struct acc *a = sqlite3_aggregate_context(ctx, sizeof(*a));

	(void)argc;
	if (p == NULL) {
		/* The program check lets no other value reach these. */
		sqlite3_result_error(ctx, "aggregate pushdown met a plain value: "
				     "run the query with --no-pushdown and report it", -1);
		return;
	}
	if (a == NULL) {
		sqlite3_result_error_nomem(ctx);
		return;
	}
	a->stepped = 1;
	a->cnt += p->cnt;
	a->rsum += p->total;
	if (p->sum_kind == 1) {
		if ((a->approx | a->overflow) == 0 && __builtin_add_overflow(a->isum, p->isum, &a->isum))
			a->approx = a->overflow = 1;
	} else if (p->sum_kind == 2) {
		a->approx = 1;
	}
	if (p->min && p->min->kind != MU_VAL_NULL && (a->min == NULL || fedagg_value_cmp(a->min, p->min) > 0))
		a->min = p->min;
	if (p->max && p->max->kind != MU_VAL_NULL && (a->max == NULL || fedagg_value_cmp(a->max, p->max) < 0))
		a->max = p->max;
}

static struct acc *acc_get(sqlite3_context *ctx)
{
	return sqlite3_aggregate_context(ctx, 0);
}

static void count_final(sqlite3_context *ctx)
{
	struct acc *a = acc_get(ctx);

	sqlite3_result_int64(ctx, a ? a->cnt : 0);
}

static void sum_final(sqlite3_context *ctx)
{
	struct acc *a = acc_get(ctx);

	if (a == NULL || a->cnt == 0)
		return;   /* NULL */
	if (a->overflow)
		sqlite3_result_error(ctx, "integer overflow", -1);
	else if (a->approx)
		sqlite3_result_double(ctx, a->rsum);
	else
		sqlite3_result_int64(ctx, a->isum);
}

static void total_final(sqlite3_context *ctx)
{
	struct acc *a = acc_get(ctx);

	sqlite3_result_double(ctx, a ? a->rsum : 0.0);
}

static void avg_final(sqlite3_context *ctx)
{
	struct acc *a = acc_get(ctx);

	if (a != NULL && a->cnt > 0)
		sqlite3_result_double(ctx, a->rsum / (double)a->cnt);
}

static void value_result(sqlite3_context *ctx, const struct mu_value *v)
{
	if (v == NULL)
		return;
	switch (v->kind) {
	case MU_VAL_INT:
	case MU_VAL_BOOL: sqlite3_result_int64(ctx, v->i); break;
	case MU_VAL_NUM: sqlite3_result_double(ctx, v->d); break;
	case MU_VAL_TEXT: sqlite3_result_text(ctx, v->text, (int)v->len, SQLITE_TRANSIENT); break;
	default: break;
	}
}

static void min_final(sqlite3_context *ctx)
{
	struct acc *a = acc_get(ctx);

	value_result(ctx, a ? a->min : NULL);
}

static void max_final(sqlite3_context *ctx)
{
	struct acc *a = acc_get(ctx);

	value_result(ctx, a ? a->max : NULL);
}

/* count(*): each row stands for a group's worth of rows. */
static void star_step(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	struct fn_ctx *f = sqlite3_user_data(ctx);
	struct acc *a = sqlite3_aggregate_context(ctx, sizeof(*a));
	int64_t n;

	(void)argc;
	(void)argv;
	if (a == NULL) {
		sqlite3_result_error_nomem(ctx);
		return;
	}
	if (f->weight(f->ctx, &n) < 0) {
		sqlite3_result_error(ctx, "aggregate pushdown: count(*) outside the scan: "
				     "run the query with --no-pushdown and report it", -1);
		return;
	}
	a->cnt += n;
}

static const struct {
	const char *name;
	void (*final)(sqlite3_context *);
} overrides[] = {
	{ "count", count_final }, { "sum", sum_final }, { "total", total_final },
	{ "avg", avg_final }, { "min", min_final }, { "max", max_final },
};

int fedagg_functions(sqlite3 *db, int (*weight)(void *ctx, int64_t *n), void *ctx)
{
	int rc = SQLITE_OK;

	for (size_t i = 0; i < sizeof(overrides) / sizeof(overrides[0]) && rc == SQLITE_OK; i++)
		rc = sqlite3_create_function_v2(db, overrides[i].name, 1, SQLITE_UTF8, NULL, NULL,
						part_step, overrides[i].final, NULL);
	if (rc == SQLITE_OK) {
		struct fn_ctx *f = sqlite3_malloc(sizeof(*f));
		if (f == NULL)
			return MU_E_STORE;
		f->weight = weight;
		f->ctx = ctx;
		/* SQLite calls the destructor itself if this fails. */
		rc = sqlite3_create_function_v2(db, "count", 0, SQLITE_UTF8, f, NULL, star_step,
						count_final, sqlite3_free);
	}
	return rc == SQLITE_OK ? 0 : MU_E_STORE;
}

/* ---- reading the program ---- */

int fedagg_prog_load(sqlite3 *db, const char *sql, struct fedagg_prog *p)
{
	char *ex = sqlite3_mprintf("EXPLAIN %s", sql);
	sqlite3_stmt *st = NULL;
	size_t cap = 0;
	int rc;

	memset(p, 0, sizeof(*p));
	if (ex == NULL)
		return -ENOMEM;
	rc = sqlite3_prepare_v2(db, ex, -1, &st, NULL);
	sqlite3_free(ex);
	if (rc != SQLITE_OK)
		return MU_E_USAGE;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (p->n == cap) {
			struct fedagg_op *g = realloc(p->ops, (cap = cap * 2 + 64) * sizeof(*g));
			if (g == NULL) {
				rc = SQLITE_NOMEM;
				break;
			}
			p->ops = g;
		}
		/* addr, opcode, p1, p2, p3, p4, p5, comment */
		struct fedagg_op *o = &p->ops[p->n++];
		const char *s = (const char *)sqlite3_column_text(st, 1);
		snprintf(o->opcode, sizeof(o->opcode), "%s", s ? s : "");
		o->p1 = sqlite3_column_int(st, 2);
		o->p2 = sqlite3_column_int(st, 3);
		o->p3 = sqlite3_column_int(st, 4);
		s = (const char *)sqlite3_column_text(st, 5);
		snprintf(o->p4, sizeof(o->p4), "%s", s ? s : "");
		o->p5 = sqlite3_column_int(st, 6);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		fedagg_prog_fini(p);
		return MU_E_USAGE;
	}
	return 0;
}

void fedagg_prog_fini(struct fedagg_prog *p)
{
	free(p->ops);
	p->ops = NULL;
	p->n = 0;
}

/* ---- the check ---- */

static int is(const struct fedagg_op *o, const char *name)
{
	return strcmp(o->opcode, name) == 0;
}

/* "sum(1)" -> FEDAGG_SUM; 0 for any other function. */
static unsigned func_bit(const char *p4)
{
	static const struct {
		const char *name;
		unsigned bit;
	} f[] = {
		{ "count(1)", FEDAGG_COUNT }, { "sum(1)", FEDAGG_SUM }, { "total(1)", FEDAGG_TOTAL },
		{ "avg(1)", FEDAGG_AVG }, { "min(1)", FEDAGG_MIN }, { "max(1)", FEDAGG_MAX },
	};

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (strcmp(p4, f[i].name) == 0)
			return f[i].bit;
	return 0;
}

/* What may run in the scan loop: reading this table's columns, stepping
 * the aggregates, comparing group keys, calling output subroutines, and
 * scalar work on key values (a WHERE term on a key, which SQLite then
 * applies to whole groups). No cursor, sorter, subquery or jump back. */
static int loop_opcode_ok(const struct fedagg_op *o)
{
	static const char *const ok[] = {
		"VColumn", "AggStep", "Compare", "Jump", "Move", "Copy", "SCopy", "Gosub",
		"IfPos", "If", "IfNot", "Integer", "Int64", "Real", "String8", "String", "Null",
		"Noop", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "IsNull", "NotNull", "IsTrue", "Not",
		"And", "Or", "Add", "Subtract", "Multiply", "Divide", "Remainder", "Concat",
		"BitAnd", "BitOr", "ShiftLeft", "ShiftRight", "BitNot", "Cast", "Affinity",
		"Function", "PureFunc", "CollSeq", "Goto", "ElseEq",
	};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (is(o, ok[i]))
			return 1;
	return 0;
}

static int why_not(char *why, size_t whylen, const char *text)
{
	snprintf(why, whylen, "%s", text);
	return 0;
}

int fedagg_check(const struct fedagg_prog *p, const int *keys, size_t nkeys,
		 const char *const *colnames, size_t ncols, struct fedagg_plan *plan, char *why,
		 size_t whylen)
{
	long vopen = -1, vfilter = -1, vnext = -1;
	int cur = -1, nstar = 0, naggs = 0;
	char *stepped = calloc(p->n ? p->n : 1, 1);

	memset(plan, 0, sizeof(*plan));
	if (stepped == NULL)
		return why_not(why, whylen, "out of memory");
	for (size_t i = 0; i < p->n; i++) {
		const struct fedagg_op *o = &p->ops[i];
		if (is(o, "VOpen")) {
			if (vopen >= 0)
				goto more_tables;
			vopen = (long)i;
			cur = o->p1;
		} else if (is(o, "OpenRead") || is(o, "OpenWrite") || is(o, "OpenDup") ||
			   is(o, "ReopenIdx") || is(o, "OpenAutoindex")) {
			goto more_tables;
		} else if (is(o, "AggInverse") || is(o, "AggValue")) {
			free(stepped);
			return why_not(why, whylen, "window functions");
		}
	}
	if (vopen < 0) {
		free(stepped);
		return why_not(why, whylen, "no federated table");
	}
	for (size_t i = 0; i < p->n; i++) {
		const struct fedagg_op *o = &p->ops[i];
		if ((is(o, "VFilter") || is(o, "VNext")) && o->p1 != cur)
			goto more_tables;
		if (is(o, "VFilter")) {
			if (vfilter >= 0)
				goto twice;
			vfilter = (long)i;
		} else if (is(o, "VNext")) {
			if (vnext >= 0)
				goto twice;
			vnext = (long)i;
		}
	}
	if (vfilter < 0 || vnext <= vfilter)
		goto twice;
	for (size_t i = 0; i < p->n; i++) {
		const struct fedagg_op *o = &p->ops[i];
		/* A jump back over the scan's start is a loop around it (an IN
		 * list, a correlated subquery): the table would be scanned again. */
		if ((is(o, "Next") || is(o, "Prev") || is(o, "SorterNext") || is(o, "VNext") ||
		     is(o, "Goto")) && (long)i > vfilter && o->p2 <= vfilter && (long)i != vnext &&
		    !((long)i > vnext && is(o, "Goto") && o->p2 < vopen))
			goto twice;
		if ((long)i > vfilter && (long)i < vnext && !loop_opcode_ok(o)) {
			free(stepped);
			snprintf(why, whylen, "the scan loop runs %s (a subquery, DISTINCT, sorting "
				 "or another table)", o->opcode);
			return 0;
		}
		if (is(o, "VRowid")) {
			free(stepped);
			return why_not(why, whylen, "rowid is read");
		}
		if (!is(o, "VColumn"))
			continue;
		if (o->p1 != cur)
			goto more_tables;
		int key = 0;
		for (size_t k = 0; k < nkeys; k++)
			key |= keys[k] == o->p2;
		if (key)
			continue;
		/* Not a key: its one use is as the argument of the next step. */
		const struct fedagg_op *next = i + 1 < p->n ? &p->ops[i + 1] : NULL;
		unsigned bit = next && is(next, "AggStep") && next->p2 == o->p3 && next->p5 == 1 ?
			func_bit(next->p4) : 0;
		if (bit == 0) {
			free(stepped);
			snprintf(why, whylen, "%s is read other than as the one argument of count, "
				 "sum, total, avg, min or max (in an expression, a DISTINCT, a WHERE term "
				 "left here, or neither grouped nor aggregated)",
				 o->p2 >= 0 && (size_t)o->p2 < ncols ? colnames[o->p2] : "a column");
			return 0;
		}
		stepped[i + 1] = 1;
		size_t a;
		for (a = 0; a < plan->nargs && plan->args[a] != o->p2; a++)
			;
		if (a == plan->nargs) {
			if (a == FEDAGG_MAX_COLS) {
				free(stepped);
				return why_not(why, whylen, "too many aggregated columns");
			}
			plan->args[plan->nargs++] = o->p2;
		}
		plan->needs[a] |= bit;
	}
	for (size_t i = 0; i < p->n; i++) {
		const struct fedagg_op *o = &p->ops[i];
		if (!is(o, "AggStep") && !is(o, "AggStep1"))
			continue;
		naggs++;
		if ((long)i <= vfilter || (long)i >= vnext) {
			free(stepped);
			return why_not(why, whylen, "an aggregate is stepped outside the scan "
				       "(a subquery, or grouping by an expression)");
		}
		if (o->p5 == 0 && strcmp(o->p4, "count(0)") == 0) {
			nstar++;
			continue;
		}
		if (!stepped[i]) {
			free(stepped);
			snprintf(why, whylen, "an aggregate other than count, sum, total, avg, min or "
				 "max of one column: %s", o->p4);
			return 0;
		}
	}
	free(stepped);
	if (naggs == 0)
		return why_not(why, whylen, "no aggregate");
	if (nstar > 1)
		return why_not(why, whylen, "count(*) of more than one query");
	plan->count_star = nstar;
	return 1;
more_tables:
	free(stepped);
	return why_not(why, whylen, "more than one table, or a table other than a federated one");
twice:
	free(stepped);
	return why_not(why, whylen, "the table is scanned more than once");
}
