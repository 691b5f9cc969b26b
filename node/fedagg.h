/*
 * fedagg.h - aggregate pushdown for federated queries: deciding from the
 * statement SQLite compiled whether its aggregates decompose, and merging
 * the partial aggregates the nodes computed.
 *
 * The user's SQL is never parsed nor rewritten. The coordinator prepares
 * it twice: once as "EXPLAIN <sql>" on a probe connection, to read the
 * program SQLite compiled, once to run. Both preparations see the
 * overrides installed by
 * fedagg_functions(): count(*), and count, sum, total, avg, min and max of
 * one argument, replaced on that connection by aggregates that merge
 * partial states. In pushdown mode the federated table yields one row per
 * (publisher, group): the group's key columns as plain values, every
 * aggregated column as a pointer to the group's partial state
 * (fedagg_result_part), rows ordered so that equal keys are adjacent
 * (the table consumes the GROUP BY order). SQLite then groups, merges
 * through the overrides, and does HAVING, ORDER BY, LIMIT and every
 * expression over the aggregates as it always does.
 *
 * fedagg_check() accepts a program only in the case where that is provably
 * the same answer as aggregating every row: one federated table scanned
 * once; every column read in the scan loop either a GROUP BY key or the
 * sole argument of one of the overridden aggregates, read right before it;
 * the only other aggregate count(*); nothing in the scan loop but reading
 * columns, comparing keys and stepping aggregates (no subquery, DISTINCT,
 * sorter, other table or WHERE term left over). Anything else is answered
 * by streaming rows, as without pushdown.
 */
#ifndef MU_FEDAGG_H
#define MU_FEDAGG_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "schema.h"

#define FEDAGG_MAX_COLS 64          /* key or aggregated columns of one plan */

/* What a plan needs of an aggregated column (bits). */
#define FEDAGG_COUNT 1u
#define FEDAGG_SUM 2u
#define FEDAGG_TOTAL 4u
#define FEDAGG_AVG 8u
#define FEDAGG_MIN 16u
#define FEDAGG_MAX 32u

/* One instruction of an EXPLAIN listing. */
struct fedagg_op {
	char opcode[24];
	int p1, p2, p3, p5;
	char p4[48];
};

struct fedagg_prog {
	struct fedagg_op *ops;
	size_t n;
};

/* The accepted shape: which columns are aggregated, and how. */
struct fedagg_plan {
	size_t nargs;
	int args[FEDAGG_MAX_COLS];          /* table column index */
	unsigned needs[FEDAGG_MAX_COLS];    /* FEDAGG_* bits of args[i] */
	int count_star;
};

/* A node's partial aggregates of one column over one group. Values and
 * the text they point to are borrowed from the rows received. */
struct fedagg_part {
	int64_t cnt;                /* count(x) */
	int sum_kind;               /* 0 sum(x) was NULL, 1 integer, 2 real */
	int64_t isum;
	double total;               /* total(x) */
	const struct mu_value *min, *max;   /* NULL: not asked, or NULL */
};

/*
 * Install the merging overrides on db, for good: SQLite cannot give the
 * built-ins back (a deleted override leaves "wrong number of arguments"),
 * so decide on a separate connection first. weight(ctx, &n) gives
 * count(*)'s share of the row the scan is on: return 0 with *n, or < 0
 * when no row is current (a plan that steps aggregates outside the scan:
 * the statement then fails, loudly). Returns 0 or MU_E_STORE.
 */
int fedagg_functions(sqlite3 *db, int (*weight)(void *ctx, int64_t *n), void *ctx);

/* Prepare "EXPLAIN sql" on db and read its program into *p (free with
 * fedagg_prog_fini). Returns 0, or MU_E_USAGE when it does not prepare. */
int fedagg_prog_load(sqlite3 *db, const char *sql, struct fedagg_prog *p);
void fedagg_prog_fini(struct fedagg_prog *p);

/*
 * Decide: keys are the table columns the federated table consumed as
 * GROUP BY keys (nkeys may be 0: no GROUP BY, or not only columns);
 * colnames (ncols of them) name the table's columns in why.
 * Returns 1 with *plan filled when the aggregates can be pushed down,
 * else 0 with why (a short phrase for --explain).
 */
int fedagg_check(const struct fedagg_prog *p, const int *keys, size_t nkeys,
		 const char *const *colnames, size_t ncols, struct fedagg_plan *plan, char *why,
		 size_t whylen);

/* Give a column's value as a pointer to its partial state (xColumn). */
void fedagg_result_part(sqlite3_context *ctx, const struct fedagg_part *part);

/* SQLite's order of values (BINARY collation): NULL, numbers, text. */
int fedagg_value_cmp(const struct mu_value *a, const struct mu_value *b);

#endif
