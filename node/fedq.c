/*
 * fedq.c - federated queries (see fedq.h): the scan server, the worker
 * thread, and the "fed" virtual table module that fans scans out.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sqlite3.h>
#include <zmq.h>

#include "fedagg.h"
#include "fedq.h"
#include "head.h"
#include "log.h"
#include "metrics.h"
#include "mu_err.h"
#include "qry.h"
#include "rec.h"
#include "trust.h"
#include "util.h"

#define QUERY_ENDPOINT "inproc://musubi-query"

/* ---- values between SQLite and musubi.Row ---- */

static void sqlite_to_value(sqlite3_value *v, struct mu_value *out)
{
	memset(out, 0, sizeof(*out));
	switch (sqlite3_value_type(v)) {
	case SQLITE_INTEGER:
		out->kind = MU_VAL_INT;
		out->i = sqlite3_value_int64(v);
		break;
	case SQLITE_FLOAT:
		out->kind = MU_VAL_NUM;
		out->d = sqlite3_value_double(v);
		break;
	case SQLITE_TEXT:
	case SQLITE_BLOB:
		out->kind = MU_VAL_TEXT;
		out->text = (const char *)sqlite3_value_text(v);
		out->len = (size_t)sqlite3_value_bytes(v);
		break;
	default:
		out->kind = MU_VAL_NULL;
	}
}

static void result_value(sqlite3_context *ctx, const struct mu_value *v)
{
	switch (v->kind) {
	case MU_VAL_INT:
	case MU_VAL_BOOL:
		sqlite3_result_int64(ctx, v->i);
		break;
	case MU_VAL_NUM:
		sqlite3_result_double(ctx, v->d);
		break;
	case MU_VAL_TEXT:
		sqlite3_result_text(ctx, v->text, (int)v->len, SQLITE_TRANSIENT);
		break;
	default:
		sqlite3_result_null(ctx);
	}
}

/* Encode the current row of stmt (all its columns) as a musubi.Row. */
static int encode_stmt_row(sqlite3_stmt *stmt, struct rec_buf *out)
{
	int n = sqlite3_column_count(stmt);
	struct mu_value *vals = calloc(n > 0 ? (size_t)n : 1, sizeof(*vals));
	int rc;

	if (vals == NULL)
		return -ENOMEM;
	for (int i = 0; i < n; i++)
		sqlite_to_value(sqlite3_column_value(stmt, i), &vals[i]);
	rc = rec_row_encode(vals, (size_t)n, out);
	free(vals);
	return rc;
}

static const char *const ops[] = { "=", "<", "<=", ">", ">=", "!=", "IS", "IS NOT", "LIKE",
				   "GLOB" };

static int op_allowed(const char *op)
{
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (strcmp(op, ops[i]) == 0)
			return 1;
	return 0;
}

/* Append "name" quoted as an SQL identifier. */
static void quote_ident(char **sql, size_t *len, size_t *cap, const char *name)
{
	size_t need = strlen(name) * 2 + 3;

	if (*len + need + 1 > *cap) {
		size_t c = (*cap + need) * 2;
		char *g = realloc(*sql, c);
		if (g == NULL)
			return;
		*sql = g;
		*cap = c;
	}
	(*sql)[(*len)++] = '"';
	for (const char *p = name; *p; p++) {
		if (*p == '"')
			(*sql)[(*len)++] = '"';
		(*sql)[(*len)++] = *p;
	}
	(*sql)[(*len)++] = '"';
	(*sql)[*len] = '\0';
}

static void append(char **sql, size_t *len, size_t *cap, const char *s)
{
	size_t n = strlen(s);

	if (*len + n + 1 > *cap) {
		size_t c = (*cap + n) * 2 + 64;
		char *g = realloc(*sql, c);
		if (g == NULL)
			return;
		*sql = g;
		*cap = c;
	}
	memcpy(*sql + *len, s, n + 1);
	*len += n;
}

static void bind_value(sqlite3_stmt *st, int i, const Musubi__Value *v)
{
	if (v == NULL) {
		sqlite3_bind_null(st, i);
		return;
	}
	switch (v->kind_case) {
	case MUSUBI__VALUE__KIND_TEXT: sqlite3_bind_text(st, i, v->text, -1, SQLITE_STATIC); break;
	case MUSUBI__VALUE__KIND_INTEGER: sqlite3_bind_int64(st, i, v->integer); break;
	case MUSUBI__VALUE__KIND_NUMBER: sqlite3_bind_double(st, i, v->number); break;
	case MUSUBI__VALUE__KIND_BOOLEAN: sqlite3_bind_int(st, i, v->boolean); break;
	default: sqlite3_bind_null(st, i);
	}
}

/* Append " FROM table WHERE _publisher = ?1 AND <constraints as ?2...>"
 * (a column this publisher's table lacks reads as NULL). */
static int append_from_where(struct qry *q, const Musubi__Scan *s, char **sql, size_t *len,
			     size_t *cap, char *why, size_t whylen)
{
	append(sql, len, cap, " FROM ");
	quote_ident(sql, len, cap, s->table);
	append(sql, len, cap, " WHERE _publisher = ?1");
	for (size_t i = 0; i < s->n_constraints; i++) {
		if (!op_allowed(s->constraints[i]->op)) {
			snprintf(why, whylen, "operator %.20s cannot be pushed down", s->constraints[i]->op);
			return MU_E_USAGE;
		}
		char buf[32];
		append(sql, len, cap, " AND ");
		if (strcmp(s->constraints[i]->column, "_publisher") != 0 &&
		    !qry_has_column(q, s->table, s->constraints[i]->column))
			append(sql, len, cap, "NULL");
		else
			quote_ident(sql, len, cap, s->constraints[i]->column);
		snprintf(buf, sizeof(buf), " %s ?%zu", s->constraints[i]->op, i + 2);
		append(sql, len, cap, buf);
	}
	return *sql == NULL ? -ENOMEM : 0;
}

/* Room for one more row in out->rows (*cap: its allocated length). The
 * array grows with the rows, so that a scan of a few rows does not
 * allocate (and clear) room for a whole page. */
static int grow_rows(Musubi__ScanRows *out, size_t *cap)
{
	if (out->n_rows < *cap)
		return 0;
	size_t n = *cap ? *cap * 2 : 64;
	ProtobufCBinaryData *g = realloc(out->rows, n * sizeof(*g));
	if (g == NULL)
		return -ENOMEM;
	out->rows = g;
	*cap = n;
	return 0;
}

/*
 * Step st (then finalize it) into out's rows, encoded: at most limit rows
 * and about max_bytes, after which out->more is set. *head_size becomes the
 * largest value of column hcol, the signed head the rows come from.
 */
static int collect_rows(struct qry *q, sqlite3_stmt *st, Musubi__ScanRows *out, uint32_t limit,
			size_t max_bytes, int hcol, uint64_t *head_size, char *why, size_t whylen)
{
	size_t nalloc = 0, bytes = 0;
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct rec_buf b = { 0 };
		if (out->n_rows == limit || bytes > max_bytes) {
			out->more = 1;
			break;
		}
		if (grow_rows(out, &nalloc) < 0 || encode_stmt_row(st, &b) < 0) {
			rc = SQLITE_NOMEM;
			break;
		}
		if ((uint64_t)sqlite3_column_int64(st, hcol) > *head_size)
			*head_size = (uint64_t)sqlite3_column_int64(st, hcol);
		out->rows[out->n_rows].data = b.data;
		out->rows[out->n_rows].len = b.len;
		out->n_rows++;
		bytes += b.len;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		snprintf(why, whylen, "%s", sqlite3_errmsg(qry_db(q)));
		sqlite3_finalize(st);
		return MU_E_USAGE;
	}
	sqlite3_finalize(st);
	return 0;
}

/*
 * One publisher's part of one table, read from a local qry: the columns
 * asked for, then _publisher, _seq, _hash, _head_size. Rows are appended
 * to *rows (encoded). *more is set when limit cut the result.
 */
static int scan_local(struct qry *q, const Musubi__Scan *s, Musubi__ScanRows *out,
		      uint64_t *head_size, uint32_t max_rows, size_t max_bytes, char *why,
		      size_t whylen)
{
	char *sql = NULL;
	size_t len = 0, cap = 0;
	sqlite3_stmt *st = NULL;
	uint32_t limit = s->limit && s->limit < max_rows ? s->limit : max_rows;
	int rc;

	*head_size = 0;
	/* This publisher's table may lack some of the columns asked for (its
	 * schema version or layout has no such field): those read as NULL. */
	if (!qry_has_column(q, s->table, NULL)) {
		snprintf(why, whylen, "no table %s here", s->table);
		return -ENOENT;
	}
	append(&sql, &len, &cap, "SELECT ");
	for (size_t i = 0; i < s->n_columns; i++) {
		if (qry_has_column(q, s->table, s->columns[i]))
			quote_ident(&sql, &len, &cap, s->columns[i]);
		else
			append(&sql, &len, &cap, "NULL");
		append(&sql, &len, &cap, ", ");
	}
	append(&sql, &len, &cap, "_publisher, _seq, _hash, _head_size");
	if ((rc = append_from_where(q, s, &sql, &len, &cap, why, whylen)) < 0) {
		free(sql);
		return rc;
	}
	/* Pages resume after the last _seq sent: each costs its own size.
	 * The bound is a plain term (no OR), so that the table is offered it
	 * and starts reading the log there. */
	char tailbuf[96];
	size_t pn = s->n_constraints + 2;
	if (s->resume)
		snprintf(tailbuf, sizeof(tailbuf), " AND _seq > ?%zu ORDER BY _seq LIMIT ?%zu", pn,
			 pn + 1);
	else
		snprintf(tailbuf, sizeof(tailbuf), " ORDER BY _seq LIMIT ?%zu", pn + 1);
	append(&sql, &len, &cap, tailbuf);
	if (sql == NULL)
		return -ENOMEM;
	rc = sqlite3_prepare_v2(qry_db(q), sql, -1, &st, NULL);
	free(sql);
	if (rc != SQLITE_OK) {
		snprintf(why, whylen, "%s", sqlite3_errmsg(qry_db(q)));
		return -ENOENT;
	}
	sqlite3_bind_text(st, 1, s->publisher, -1, SQLITE_STATIC);
	for (size_t i = 0; i < s->n_constraints; i++)
		bind_value(st, (int)i + 2, s->constraints[i]->value);
	if (s->resume)
		sqlite3_bind_int64(st, (int)s->n_constraints + 2, (sqlite3_int64)s->after_seq);
	sqlite3_bind_int64(st, (int)s->n_constraints + 3, (sqlite3_int64)limit + 1);
	return collect_rows(q, st, out, limit, max_bytes, (int)s->n_columns + 3, head_size, why,
			    whylen);
}

static int known_column(struct qry *q, const char *table, const char *column)
{
	if (strcmp(column, "_publisher") == 0 || strcmp(column, "_seq") == 0 ||
	    strcmp(column, "_hash") == 0 || strcmp(column, "_head_size") == 0)
		return 1;
	return qry_has_column(q, table, column);
}

/*
 * Aggregate pushdown (Scan.aggregates): one row per group of the group_by
 * columns, in SQLite's order of them (none: one row), holding the keys,
 * then each aggregate, then the head size. The SQL is generated from
 * quoted identifiers and a fixed list of functions; pages go on by offset.
 */
static int scan_groups(struct qry *q, const Musubi__Scan *s, Musubi__ScanRows *out,
		       uint64_t *head_size, uint32_t max_rows, size_t max_bytes, char *why,
		       size_t whylen)
{
	static const char *const funcs[] = { "count", "sum", "total", "min", "max" };
	char *sql = NULL, buf[64];
	size_t len = 0, cap = 0, nk = s->n_group_by;
	uint32_t limit = s->limit && s->limit < max_rows ? s->limit : max_rows;
	sqlite3_stmt *st = NULL;
	int rc;

	*head_size = 0;
	if (nk > 64 || s->n_aggregates > 256) {
		snprintf(why, whylen, "too many groups or aggregates");
		return MU_E_USAGE;
	}
	if (!qry_has_column(q, s->table, NULL)) {
		snprintf(why, whylen, "no table %s here", s->table);
		return -ENOENT;
	}
	append(&sql, &len, &cap, "SELECT ");
	for (size_t i = 0; i < nk; i++) {
		if (known_column(q, s->table, s->group_by[i]))
			quote_ident(&sql, &len, &cap, s->group_by[i]);
		else
			append(&sql, &len, &cap, "NULL");
		append(&sql, &len, &cap, ", ");
	}
	for (size_t i = 0; i < s->n_aggregates; i++) {
		const Musubi__Aggregate *a = s->aggregates[i];
		size_t f;
		for (f = 0; f < sizeof(funcs) / sizeof(funcs[0]) && strcmp(a->func, funcs[f]) != 0; f++)
			;
		if (f == sizeof(funcs) / sizeof(funcs[0]) || (a->column[0] == '\0' && f != 0)) {
			snprintf(why, whylen, "aggregate %.20s cannot be pushed down", a->func);
			free(sql);
			return MU_E_USAGE;
		}
		append(&sql, &len, &cap, funcs[f]);
		append(&sql, &len, &cap, "(");
		if (a->column[0] == '\0')
			append(&sql, &len, &cap, "*");
		else if (known_column(q, s->table, a->column))
			quote_ident(&sql, &len, &cap, a->column);
		else
			append(&sql, &len, &cap, "NULL");
		append(&sql, &len, &cap, "), ");
	}
	append(&sql, &len, &cap, "max(_head_size)");
	if ((rc = append_from_where(q, s, &sql, &len, &cap, why, whylen)) < 0) {
		free(sql);
		return rc;
	}
	for (size_t i = 0; i < nk; i++) {
		snprintf(buf, sizeof(buf), "%s%zu", i ? ", " : " GROUP BY ", i + 1);
		append(&sql, &len, &cap, buf);
	}
	for (size_t i = 0; i < nk; i++) {
		snprintf(buf, sizeof(buf), "%s%zu", i ? ", " : " ORDER BY ", i + 1);
		append(&sql, &len, &cap, buf);
	}
	snprintf(buf, sizeof(buf), " LIMIT ?%zu OFFSET ?%zu", s->n_constraints + 2,
		 s->n_constraints + 3);
	append(&sql, &len, &cap, buf);
	if (sql == NULL)
		return -ENOMEM;
	rc = sqlite3_prepare_v2(qry_db(q), sql, -1, &st, NULL);
	free(sql);
	if (rc != SQLITE_OK) {
		snprintf(why, whylen, "%s", sqlite3_errmsg(qry_db(q)));
		return MU_E_USAGE;
	}
	sqlite3_bind_text(st, 1, s->publisher, -1, SQLITE_STATIC);
	for (size_t i = 0; i < s->n_constraints; i++)
		bind_value(st, (int)i + 2, s->constraints[i]->value);
	sqlite3_bind_int64(st, (int)s->n_constraints + 2, (sqlite3_int64)limit + 1);
	sqlite3_bind_int64(st, (int)s->n_constraints + 3, (sqlite3_int64)s->offset);
	out->grouped = 1;
	return collect_rows(q, st, out, limit, max_bytes, (int)(nk + s->n_aggregates), head_size,
			    why, whylen);
}

static void free_scan_rows(Musubi__ScanRows *r)
{
	for (size_t i = 0; i < r->n_rows; i++)
		free(r->rows[i].data);
	free(r->rows);
	r->rows = NULL;
	r->n_rows = 0;
}

/* The signed head of dataset at size (0: the newest), copied. */
static int head_bytes(struct store *st, const char *dataset, uint64_t size, uint8_t **buf,
		      size_t *len)
{
	struct store_txn t;
	struct store_dataset ds;
	const uint8_t *b;
	uint64_t got;
	int rc;

	*buf = NULL;
	*len = 0;
	if ((rc = store_read_begin(st, &t)) < 0)
		return rc;
	if ((rc = store_dataset_get(&t, dataset, &ds)) == 0) {
		rc = size ? store_head_get(&t, ds.local_id, size, &b, len)
			  : store_head_latest(&t, ds.local_id, &got, &b, len);
		if (rc == 0 && (*buf = malloc(*len)) != NULL)
			memcpy(*buf, b, *len);
		else if (rc == 0)
			rc = -ENOMEM;
		store_dataset_fini(&ds);
	}
	store_read_end(&t);
	return rc;
}

/* valid_at: NULL or "" for every row, else only rows in force that day. */
static int open_local(struct store *st, const char *publisher, const char *table, uint64_t as_of,
		      const char *valid_at, int members, struct qry **q, char *why, size_t whylen)
{
	char dataset[160];
	struct qry_asof asof = { dataset, as_of };
	const char *only[1] = { publisher };
	struct qry_opts o = {
		.max_ms = 10000,
		.only_publishers = only,
		.nonly = 1,
		.members_view = members,
		.valid_at = valid_at && valid_at[0] ? valid_at : NULL,
		.why = why,
		.whylen = whylen,
	};

	snprintf(dataset, sizeof(dataset), "%s/%s", publisher, table);
	if (as_of) {
		o.asof = &asof;
		o.nasof = 1;
	}
	return qry_open(st, &o, q);
}

/* A scan with no columns and no limit asks what the table's columns are
 * here (for a coordinator that holds no replica of it). */
static void describe_local(struct node *n, struct wire_msg *m, const Musubi__Scan *s,
			   int anonymous)
{
	Musubi__ScanRows out = MUSUBI__SCAN_ROWS__INIT;
	struct qry *q = NULL;
	sqlite3_stmt *st = NULL;
	char why[256] = "", *sql;
	Musubi__Column *cols = NULL;
	Musubi__Column **colp = NULL;

	if (open_local(n->st, s->publisher, s->table, 0, NULL, !anonymous, &q, why, sizeof(why)) < 0 ||
	    (sql = sqlite3_mprintf("SELECT * FROM \"%w\" LIMIT 0", s->table)) == NULL) {
		wire_send_error(n->router, m->routing_id, m->routing_len, m->env->request_id,
				MUSUBI__ERROR_CODE__ERR_NOT_FOUND, "no such table here");
		goto out;
	}
	int rc = sqlite3_prepare_v2(qry_db(q), sql, -1, &st, NULL);
	sqlite3_free(sql);
	if (rc != SQLITE_OK) {
		wire_send_error(n->router, m->routing_id, m->routing_len, m->env->request_id,
				MUSUBI__ERROR_CODE__ERR_NOT_FOUND, "no such table here");
		goto out;
	}
	int nc = sqlite3_column_count(st);
	cols = calloc(nc > 0 ? (size_t)nc : 1, sizeof(*cols));
	colp = calloc(nc > 0 ? (size_t)nc : 1, sizeof(*colp));
	for (int i = 0; cols && colp && i < nc; i++) {
		musubi__column__init(&cols[i]);
		cols[i].name = (char *)sqlite3_column_name(st, i);
		cols[i].decltype = (char *)(sqlite3_column_decltype(st, i) ?: "");
		colp[out.n_columns++] = &cols[i];
	}
	out.columns = colp;
	wire_send(n->router, m->routing_id, m->routing_len, MUSUBI__MSG_TYPE__MSG_SCAN_ROWS,
		  m->env->request_id, &out.base);
out:
	free(cols);
	free(colp);
	sqlite3_finalize(st);
	qry_close(&q);
}

void serve_scan(struct node *n, struct wire_msg *m, int anonymous)
{
	Musubi__Scan *s = musubi__scan__unpack(NULL, m->env->payload.len, m->env->payload.data);
	Musubi__ScanRows out = MUSUBI__SCAN_ROWS__INIT;
	struct qry *q = NULL;
	char why[512] = "", dataset[160];
	uint64_t head_size = 0;
	uint8_t *hb = NULL;
	size_t hl = 0;
	int rc;

	if (s == NULL || !mu_valid_member(s->publisher) || !mu_valid_dataset_name(s->table) ||
	    s->n_columns > 2000 || s->n_constraints > 64) {
		wire_send_error(n->router, m->routing_id, m->routing_len, m->env->request_id,
				MUSUBI__ERROR_CODE__ERR_BAD_REQUEST, "malformed scan");
		goto out;
	}
	snprintf(dataset, sizeof(dataset), "%s/%s", s->publisher, s->table);
	if (s->limit == 0 && s->n_columns == 0) {
		describe_local(n, m, s, anonymous);
		goto out;
	}
	access_note(n, m->user, "scan", dataset, NULL);
	if ((rc = open_local(n->st, s->publisher, s->table, s->as_of_size, s->valid_at, !anonymous,
			     &q, why, sizeof(why))) < 0 ||
	    (rc = (s->n_aggregates ? scan_groups : scan_local)(q, s, &out, &head_size, FEDQ_SCAN_PAGE,
							      WIRE_MAX_MESSAGE / 2, why,
							      sizeof(why))) < 0) {
		wire_send_error(n->router, m->routing_id, m->routing_len, m->env->request_id,
				rc == -ENOENT ? MUSUBI__ERROR_CODE__ERR_NOT_FOUND
					      : MUSUBI__ERROR_CODE__ERR_BAD_REQUEST,
				why[0] ? why : mu_strerror(rc));
		goto out;
	}
	if (head_bytes(n->st, dataset, head_size ? head_size : s->as_of_size, &hb, &hl) < 0) {
		wire_send_error(n->router, m->routing_id, m->routing_len, m->env->request_id,
				MUSUBI__ERROR_CODE__ERR_NOT_FOUND, "this node holds no such dataset");
		goto out;
	}
	out.signed_head.data = hb;
	out.signed_head.len = hl;
	wire_send(n->router, m->routing_id, m->routing_len, MUSUBI__MSG_TYPE__MSG_SCAN_ROWS,
		  m->env->request_id, &out.base);
out:
	free(hb);
	free_scan_rows(&out);
	qry_close(&q);
	if (s)
		musubi__scan__free_unpacked(s, NULL);
}

/* ---- the coordinator ---- */

struct source {
	char publisher[64];
	char endpoint[256];
	uint8_t key[32];
	int is_self;            /* this node is the publisher */
	int has_replica;        /* the local store holds publisher/table */
	uint64_t as_of;         /* pinned head size, 0: newest */
};

struct scan_cache {         /* identical scans (e.g. a join's inner loop) run once */
	char *key;
	struct rec_row **rows;
	size_t nrows;
	size_t nreq;            /* columns requested before the provenance ones */
	long *map;              /* table column -> index in a row, or -1 */
	/* Aggregate pushdown: rows are groups, ordered by their keys. */
	size_t nkeys;           /* key values first in each row, then count(*) */
	long *argidx;           /* table column -> index in parts' columns, or -1 */
	size_t nargs;
	struct fedagg_part *parts;   /* nrows x nargs partial states */
	struct scan_cache *next;
};

struct conn_pool;

struct fedq {
	struct node *n;
	void *zctx;
	struct conn_pool *pool;    /* the worker's open connections to other nodes */
	int members;            /* the asker may read members-only data */
	int local_only;
	char *valid_at;         /* Query.valid_at, passed to every scan ("": every row) */
	int64_t deadline_us;
	uint32_t timeout_ms;
	json_t *catalogue;      /* qry_tables() of the local store */
	json_t *manifest;       /* array of {table, publisher, answered_by, source, ...} */
	json_t *failures;       /* array of {table, publisher, node, reason} */
	json_t *asof;           /* an earlier manifest's entries, or NULL */
	struct trust_peer *members_list;
	size_t nmembers;
	struct scan_cache *cache;
	char *explain;
	size_t explain_len, explain_cap;
	int partial;
	/* Aggregate pushdown (fedagg.h). */
	int agg_mode;           /* xBestIndex consumes GROUP BY keys */
	struct fed_vtab *agg_vt;   /* the table xBestIndex saw, in agg_mode */
	int agg_tables;         /* distinct tables xBestIndex saw */
	int agg_keys[FEDAGG_MAX_COLS];
	size_t agg_nkeys;
	struct fedagg_plan agg;
	struct fed_cursor *agg_cur;   /* the cursor count(*) reads */
	int agg_called;         /* the SQL calls count, sum, total, avg, min or max */
};

struct fed_vtab {
	sqlite3_vtab base;
	struct fedq *fq;
	char *name;
	char **cols;            /* table columns, then _publisher, _seq, _hash, _head_size */
	size_t ncols;
};

struct fed_cursor {
	sqlite3_vtab_cursor base;
	struct scan_cache *rows;   /* borrowed from the query's cache */
	size_t pos;
};

static void explainf(struct fedq *fq, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void explainf(struct fedq *fq, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	append(&fq->explain, &fq->explain_len, &fq->explain_cap, line);
	append(&fq->explain, &fq->explain_len, &fq->explain_cap, "\n");
}

static const char *const provenance[] = { "_publisher", "_seq", "_hash", "_head_size" };

static int fed_connect(sqlite3 *db, void *aux, int argc, const char *const *argv,
		       sqlite3_vtab **out, char **err)
{
	struct fedq *fq = aux;
	struct fed_vtab *v;
	json_t *table = NULL, *t;
	size_t i;
	char *sql = NULL;
	size_t len = 0, cap = 0;

	if (argc < 4)
		return SQLITE_ERROR;
	json_array_foreach(fq->catalogue, i, t)
		if (strcmp(json_string_value(json_object_get(t, "table")), argv[3]) == 0)
			table = t;
	if (table == NULL || (v = calloc(1, sizeof(*v))) == NULL)
		return SQLITE_ERROR;
	json_t *cols = json_object_get(table, "columns");
	v->fq = fq;
	v->name = strdup(argv[3]);
	v->cols = calloc(json_array_size(cols) + 4, sizeof(*v->cols));
	append(&sql, &len, &cap, "CREATE TABLE x(");
	json_t *c;
	json_array_foreach(cols, i, c) {
		const char *name = json_string_value(json_object_get(c, "name"));
		int prov = 0;
		for (int k = 0; k < 4; k++)
			prov |= strcmp(name, provenance[k]) == 0;
		if (prov)
			continue;   /* declared last, below */
		v->cols[v->ncols] = strdup(name);
		quote_ident(&sql, &len, &cap, name);
		append(&sql, &len, &cap, " ");
		append(&sql, &len, &cap, json_string_value(json_object_get(c, "type")) ?: "");
		append(&sql, &len, &cap, ", ");
		v->ncols++;
	}
	for (int k = 0; k < 4; k++)
		v->cols[v->ncols++] = strdup(provenance[k]);
	append(&sql, &len, &cap, "_publisher TEXT, _seq INTEGER, _hash TEXT, _head_size INTEGER)");
	if (sql == NULL || sqlite3_declare_vtab(db, sql) != SQLITE_OK) {
		*err = sqlite3_mprintf("cannot declare %s", argv[3]);
		free(sql);
		return SQLITE_ERROR;
	}
	free(sql);
	*out = &v->base;
	return SQLITE_OK;
}

static int fed_disconnect(sqlite3_vtab *vt)
{
	struct fed_vtab *v = (struct fed_vtab *)vt;

	for (size_t i = 0; i < v->ncols; i++)
		free(v->cols[i]);
	free(v->cols);
	free(v->name);
	free(v);
	return SQLITE_OK;
}

static const char *op_name(unsigned char op)
{
	switch (op) {
	case SQLITE_INDEX_CONSTRAINT_EQ: return "=";
	case SQLITE_INDEX_CONSTRAINT_GT: return ">";
	case SQLITE_INDEX_CONSTRAINT_LE: return "<=";
	case SQLITE_INDEX_CONSTRAINT_LT: return "<";
	case SQLITE_INDEX_CONSTRAINT_GE: return ">=";
	case SQLITE_INDEX_CONSTRAINT_NE: return "!=";
	case SQLITE_INDEX_CONSTRAINT_LIKE: return "LIKE";
	case SQLITE_INDEX_CONSTRAINT_GLOB: return "GLOB";
	case SQLITE_INDEX_CONSTRAINT_IS: return "IS";
	case SQLITE_INDEX_CONSTRAINT_ISNOT: return "IS NOT";
	default: return NULL;
	}
}

/* The declared type of a column in the catalogue ("" when none). */
static const char *col_decltype(struct fedq *fq, const char *table, const char *column)
{
	json_t *t, *c;
	size_t i, k;

	json_array_foreach(fq->catalogue, i, t)
		if (strcmp(json_string_value(json_object_get(t, "table")), table) == 0)
			json_array_foreach(json_object_get(t, "columns"), k, c)
				if (strcmp(json_string_value(json_object_get(c, "name")) ?: "", column) == 0)
					return json_string_value(json_object_get(c, "type")) ?: "";
	return "";
}

/* Aggregate pushdown leaves no row for SQLite to check a constraint on,
 * so the node's test must be the coordinator's: LIKE and GLOB are the
 * same functions on both sides, and a comparison is when the value
 * already has the column's type (no affinity conversion on either side). */
static int exact_on_node(struct fedq *fq, struct fed_vtab *v, int col, unsigned char op,
			 sqlite3_value *rhs)
{
	if (op == SQLITE_INDEX_CONSTRAINT_LIKE || op == SQLITE_INDEX_CONSTRAINT_GLOB)
		return 1;
	if ((size_t)col >= v->ncols - 4)
		return sqlite3_value_type(rhs) == ((size_t)col == v->ncols - 4 || (size_t)col == v->ncols - 2 ?
						   SQLITE_TEXT : SQLITE_INTEGER);
	const char *t = col_decltype(fq, v->name, v->cols[col]);
	int vt = sqlite3_value_type(rhs);
	if (strstr(t, "INT") != NULL)
		return vt == SQLITE_INTEGER;
	if (strcmp(t, "REAL") == 0)
		return vt == SQLITE_FLOAT || vt == SQLITE_INTEGER;
	if (strncmp(t, "TEXT", 4) == 0)
		return vt == SQLITE_TEXT;
	return 0;
}

/* Push down constraints whose value is a constant of the statement:
 * a join's inner-loop constraints would mean one network scan per outer
 * row, so those are left to SQLite (over a cached scan). In agg_mode, a
 * GROUP BY on columns of this table (sqlite3_vtab_distinct 1) is consumed:
 * the groups will come with equal keys adjacent, and the keys are noted
 * in idxStr after '#'. */
static int fed_best_index(sqlite3_vtab *vt, sqlite3_index_info *info)
{
	struct fed_vtab *v = (struct fed_vtab *)vt;
	struct fedq *fq = v->fq;
	char *s = sqlite3_mprintf("%016llx", (unsigned long long)info->colUsed);
	int argi = 0;
	double cost = 1e6;

	if (fq->agg_mode) {
		if (fq->agg_vt != v) {
			fq->agg_vt = v;
			fq->agg_tables++;
		}
		fq->agg_nkeys = 0;
		int keys = sqlite3_vtab_distinct(info) == 1 && info->nOrderBy > 0 &&
			   info->nOrderBy <= FEDAGG_MAX_COLS;
		for (int i = 0; keys && i < info->nOrderBy; i++)
			keys = info->aOrderBy[i].iColumn >= 0;
		char *grown = s ? sqlite3_mprintf("%s#", s) : NULL;
		sqlite3_free(s);
		s = grown;
		for (int i = 0; keys && s && i < info->nOrderBy; i++) {
			fq->agg_keys[fq->agg_nkeys++] = info->aOrderBy[i].iColumn;
			grown = sqlite3_mprintf("%s%d,", s, info->aOrderBy[i].iColumn);
			sqlite3_free(s);
			s = grown;
		}
		info->orderByConsumed = keys;
	}
	for (int i = 0; i < info->nConstraint && s; i++) {
		const struct sqlite3_index_constraint *c = &info->aConstraint[i];
		sqlite3_value *rhs = NULL;
		const char *op = op_name(c->op);
		if (!c->usable || op == NULL || c->iColumn < 0 || (size_t)c->iColumn >= v->ncols ||
		    sqlite3_vtab_rhs_value(info, i, &rhs) != SQLITE_OK)
			continue;
		/* An IN list would filter once per value: not one grouped scan. */
		if (fq->agg_mode && c->op == SQLITE_INDEX_CONSTRAINT_EQ && sqlite3_vtab_in(info, i, -1))
			continue;
		info->aConstraintUsage[i].argvIndex = ++argi;
		info->aConstraintUsage[i].omit = 0;   /* SQLite checks again: exactness stays its job */
		if (fq->agg_mode && exact_on_node(fq, v, c->iColumn, c->op, rhs))
			info->aConstraintUsage[i].omit = 1;
		char *grown = sqlite3_mprintf("%s|%d,%s", s, c->iColumn, op);
		sqlite3_free(s);
		s = grown;
		cost /= c->op == SQLITE_INDEX_CONSTRAINT_EQ ? 100 : 3;
	}
	info->idxStr = s;
	info->needToFreeIdxStr = 1;
	info->estimatedCost = cost;
	info->estimatedRows = (sqlite3_int64)cost;
	return SQLITE_OK;
}

static int fed_open(sqlite3_vtab *vt, sqlite3_vtab_cursor **out)
{
	struct fed_cursor *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return SQLITE_NOMEM;
	*out = &c->base;
	return SQLITE_OK;
}

static int fed_close(sqlite3_vtab_cursor *cur)
{
	struct fedq *fq = ((struct fed_vtab *)cur->pVtab)->fq;

	if (fq->agg_cur == (struct fed_cursor *)cur)
		fq->agg_cur = NULL;
	free(cur);
	return SQLITE_OK;
}

/* The sources of a table: publishers with a local replica, and every
 * current member with the publisher role (which may publish it too). */
static size_t table_sources(struct fedq *fq, const char *table, struct source **out)
{
	struct source *src = NULL;
	size_t n = 0, i;
	json_t *t, *s;

	json_array_foreach(fq->catalogue, i, t) {
		if (strcmp(json_string_value(json_object_get(t, "table")), table) != 0)
			continue;
		size_t k;
		json_array_foreach(json_object_get(t, "sources"), k, s) {
			struct source *g = realloc(src, (n + 1) * sizeof(*g));
			if (g == NULL)
				break;
			src = g;
			memset(&src[n], 0, sizeof(src[n]));
			snprintf(src[n].publisher, sizeof(src[n].publisher), "%s",
				 json_string_value(json_object_get(s, "publisher")));
			src[n].has_replica = 1;
			n++;
		}
	}
	for (i = 0; i < fq->nmembers; i++) {
		const struct trust_peer *m = &fq->members_list[i];
		size_t k;
		if (!(m->roles & TRUST_PUBLISHER))
			continue;
		for (k = 0; k < n && strcmp(src[k].publisher, m->id) != 0; k++)
			;
		if (k == n) {
			struct source *g = realloc(src, (n + 1) * sizeof(*g));
			if (g == NULL)
				break;
			src = g;
			memset(&src[n], 0, sizeof(src[n]));
			snprintf(src[n].publisher, sizeof(src[n].publisher), "%s", m->id);
			n++;
		}
		snprintf(src[k].endpoint, sizeof(src[k].endpoint), "%s", m->endpoint);
		memcpy(src[k].key, m->transport_key, 32);
	}
	for (i = 0; i < n; i++) {
		src[i].is_self = strcmp(src[i].publisher, fq->n->member) == 0;
		if (fq->asof != NULL) {
			/* Pinned: only the publishers the manifest names, at its sizes. */
			size_t k;
			json_t *e;
			int found = 0;
			json_array_foreach(fq->asof, k, e)
				if (strcmp(json_string_value(json_object_get(e, "table")) ?: "", table) == 0 &&
				    strcmp(json_string_value(json_object_get(e, "publisher")) ?: "",
					   src[i].publisher) == 0) {
					src[i].as_of = (uint64_t)json_integer_value(json_object_get(e, "head_size"));
					found = 1;
				}
			if (!found)
				src[i].publisher[0] = '\0';   /* not in the manifest: left out */
		}
	}
	*out = src;
	return n;
}

struct pending_scan {
	struct source *src;
	void *sock;
	Musubi__Scan scan;
	uint64_t last_seq;      /* _seq of the last row received */
	int resumed;            /* a page after the first */
	int done, failed;
	char node[64];          /* who answered */
	const char *kind;       /* "publisher", "replica" */
	char reason[256];
	uint8_t *head;          /* signed head of the rows */
	size_t head_len;
	struct rec_buf *rows;   /* encoded rows received */
	size_t nrows, caprows;
	int inflight;           /* a request on sock awaits its reply */
};

static int keep_rows(struct pending_scan *p, ProtobufCBinaryData *rows, size_t n)
{
	if (p->nrows + n > FEDQ_MAX_ROWS)
		return MU_E_TOOBIG;
	if (p->nrows + n > p->caprows) {
		size_t cap = (p->nrows + n) * 2;
		struct rec_buf *g = realloc(p->rows, cap * sizeof(*g));
		if (g == NULL)
			return -ENOMEM;
		p->rows = g;
		p->caprows = cap;
	}
	for (size_t i = 0; i < n; i++) {
		p->rows[p->nrows].data = rows[i].data;   /* taken over */
		p->rows[p->nrows].len = rows[i].len;
		p->rows[p->nrows].cap = rows[i].len;
		rows[i].data = NULL;
		p->nrows++;
	}
	return 0;
}

static void set_head(struct pending_scan *p, const uint8_t *b, size_t len)
{
	free(p->head);
	p->head = NULL;
	p->head_len = 0;
	if (len > 0 && (p->head = malloc(len)) != NULL) {
		memcpy(p->head, b, len);
		p->head_len = len;
	}
}

/* Answer a scan from the local store (own data or a replica). */
static void scan_here(struct fedq *fq, struct pending_scan *p, const char *kind)
{
	struct qry *q = NULL;
	Musubi__ScanRows rows = MUSUBI__SCAN_ROWS__INIT;
	char dataset[160];
	uint64_t head_size = 0;
	int rc;

	p->failed = 0;
	p->kind = kind;
	snprintf(p->node, sizeof(p->node), "%s", fq->n->member);
	p->scan.resume = 0;
	p->scan.offset = 0;
	p->scan.limit = FEDQ_MAX_ROWS;
	if ((rc = open_local(fq->n->st, p->src->publisher, p->scan.table, p->src->as_of,
			     p->scan.valid_at, fq->members, &q, p->reason, sizeof(p->reason))) == 0 &&
	    (rc = (p->scan.n_aggregates ? scan_groups : scan_local)(q, &p->scan, &rows, &head_size,
								    FEDQ_MAX_ROWS, SIZE_MAX, p->reason,
			     sizeof(p->reason))) == 0) {
		if ((rc = keep_rows(p, rows.rows, rows.n_rows)) == 0) {
			uint8_t *hb;
			size_t hl;
			snprintf(dataset, sizeof(dataset), "%s/%s", p->src->publisher, p->scan.table);
			if (head_bytes(fq->n->st, dataset, head_size ? head_size : p->src->as_of, &hb,
				       &hl) == 0) {
				set_head(p, hb, hl);
				free(hb);
			}
		}
		if (rows.more)
			rc = MU_E_TOOBIG;
	}
	free_scan_rows(&rows);
	qry_close(&q);
	p->done = 1;
	if (rc < 0) {
		p->failed = 1;
		if (rc == -ENOENT)
			p->kind = "absent";   /* this publisher has no such table */
		if (!p->reason[0])
			snprintf(p->reason, sizeof(p->reason), "%s", mu_strerror(rc));
	}
}

/*
 * Connections to other nodes outlive a query: the worker keeps one idle
 * DEALER per node (endpoint and CURVE key), so a query does not pay a TCP
 * connect and a CURVE handshake per node. Only the worker thread uses
 * them. A socket goes back to the pool only with no request awaiting its
 * reply (a late answer can never be taken for the next query's).
 */
#define POOL_MAX 64

struct conn_pool {
	struct pooled {
		char endpoint[256];
		uint8_t key[32];
		void *sock;
	} conn[POOL_MAX];
	size_t n;
	/* Signed heads whose signature was found good under the newest trust
	 * list version then: the same bytes under the same version need no
	 * second Ed25519 check (the check depends on nothing else). */
	struct verified {
		uint64_t trust_version;
		uint8_t *head;
		size_t len;
	} seen[POOL_MAX];
	size_t nseen, next_seen;
};

static int head_seen(const struct conn_pool *pl, uint64_t nv, const uint8_t *b, size_t len)
{
	for (size_t i = 0; pl != NULL && i < pl->nseen; i++)
		if (pl->seen[i].trust_version == nv && pl->seen[i].len == len &&
		    memcmp(pl->seen[i].head, b, len) == 0)
			return 1;
	return 0;
}

static void head_seen_add(struct conn_pool *pl, uint64_t nv, const uint8_t *b, size_t len)
{
	uint8_t *copy;

	if (pl == NULL || len == 0 || (copy = malloc(len)) == NULL)
		return;
	memcpy(copy, b, len);
	size_t i = pl->nseen < POOL_MAX ? pl->nseen++ : pl->next_seen++ % POOL_MAX;
	if (i < pl->nseen && pl->seen[i].head != NULL)
		free(pl->seen[i].head);
	pl->seen[i] = (struct verified){ nv, copy, len };
}

static void *pool_take(struct fedq *fq, const char *endpoint, const uint8_t key[32])
{
	struct conn_pool *pl = fq->pool;
	void *sock;

	for (size_t i = 0; pl != NULL && i < pl->n; i++)
		if (strcmp(pl->conn[i].endpoint, endpoint) == 0 && memcmp(pl->conn[i].key, key, 32) == 0) {
			sock = pl->conn[i].sock;
			pl->conn[i] = pl->conn[--pl->n];
			return sock;
		}
	if ((sock = zmq_socket(fq->zctx, ZMQ_DEALER)) == NULL)
		return NULL;
	if (wire_curve_client(sock, fq->n->pub, fq->n->sec, key) < 0 || zmq_connect(sock, endpoint) != 0) {
		zmq_close(sock);
		return NULL;
	}
	return sock;
}

/* Give p's socket back (or close it when a reply is outstanding). */
static void pool_put(struct fedq *fq, struct pending_scan *p)
{
	struct conn_pool *pl = fq->pool;

	if (p->sock == NULL)
		return;
	if (pl != NULL && !p->inflight && pl->n < POOL_MAX) {
		struct pooled *c = &pl->conn[pl->n++];
		snprintf(c->endpoint, sizeof(c->endpoint), "%s", p->src->endpoint);
		memcpy(c->key, p->src->key, 32);
		c->sock = p->sock;
	} else {
		zmq_close(p->sock);
	}
	p->sock = NULL;
}

static void pool_close(struct conn_pool *pl)
{
	for (size_t i = 0; i < pl->n; i++)
		zmq_close(pl->conn[i].sock);
	pl->n = 0;
	for (size_t i = 0; i < pl->nseen; i++)
		free(pl->seen[i].head);
	pl->nseen = 0;
}

static int send_scan(struct fedq *fq, struct pending_scan *p)
{
	int rc;

	if (p->sock == NULL && (p->sock = pool_take(fq, p->src->endpoint, p->src->key)) == NULL)
		return errno ? -errno : -EIO;
	p->scan.resume = p->resumed;
	p->scan.after_seq = p->last_seq;
	p->scan.limit = FEDQ_SCAN_PAGE;
	if ((rc = wire_send(p->sock, NULL, 0, MUSUBI__MSG_TYPE__MSG_SCAN, 1, &p->scan.base)) == 0)
		p->inflight = 1;
	return rc;
}

/* One reply from a remote scan: keep rows, check the head, page on. */
static void on_scan_reply(struct fedq *fq, struct pending_scan *p)
{
	struct wire_msg m;
	int rc = wire_recv(p->sock, 0, ZMQ_DONTWAIT, &m);

	if (rc == -EAGAIN)
		return;
	if (rc < 0) {
		p->failed = p->done = 1;
		snprintf(p->reason, sizeof(p->reason), "broke the protocol (%s)", mu_strerror(rc));
		wire_msg_fini(&m);
		return;
	}
	p->inflight = 0;   /* the one reply to the request sent */
	if (m.env->type == MUSUBI__MSG_TYPE__MSG_ERROR) {
		Musubi__Error *e = musubi__error__unpack(NULL, m.env->payload.len, m.env->payload.data);
		p->failed = p->done = 1;
		snprintf(p->reason, sizeof(p->reason), "%s%s",
			 e && e->code == MUSUBI__ERROR_CODE__ERR_NOT_FOUND ? "not found: " : "",
			 e ? e->message : "error");
		if (e && e->code == MUSUBI__ERROR_CODE__ERR_NOT_FOUND)
			p->kind = "absent";
		if (e)
			musubi__error__free_unpacked(e, NULL);
		wire_msg_fini(&m);
		return;
	}
	Musubi__ScanRows *r = musubi__scan_rows__unpack(NULL, m.env->payload.len, m.env->payload.data);
	wire_msg_fini(&m);
	if (r == NULL) {
		p->failed = p->done = 1;
		snprintf(p->reason, sizeof(p->reason), "sent rows that do not decode");
		return;
	}
	/* The head must be the publisher's, validly signed under the trust list. */
	struct head_signed hs;
	struct sig_key *key = NULL;
	char why[256] = "";
	struct store_txn t;
	rc = head_decode(r->signed_head.data, r->signed_head.len, &hs);
	if (rc == 0) {
		if (strcmp(hs.hd->h.publisher, p->src->publisher) != 0)
			rc = MU_E_TRUST;
		else if ((rc = store_read_begin(fq->n->st, &t)) == 0) {
			const uint8_t *tl;
			size_t tlen;
			uint64_t nv = 0;
			int known = store_trust_latest(&t, &nv, &tl, &tlen) == 0;
			if (!known || !head_seen(fq->pool, nv, r->signed_head.data, r->signed_head.len)) {
				if ((rc = trust_head_key(NULL, &t, &hs.hd->h, &key, why, sizeof(why))) == 0)
					rc = head_check_signature(&hs, key);
				if (rc == 0 && known)
					head_seen_add(fq->pool, nv, r->signed_head.data, r->signed_head.len);
			}
			store_read_end(&t);
		}
		sig_key_destroy(&key);
		head_signed_fini(&hs);
	}
	if (rc < 0) {
		p->failed = p->done = 1;
		snprintf(p->reason, sizeof(p->reason), "answered from a head that does not count: %s",
			 why[0] ? why : mu_strerror(rc));
	} else if (p->scan.n_aggregates > 0 && !r->grouped) {
		p->failed = p->done = 1;
		snprintf(p->reason, sizeof(p->reason), "its node does not compute aggregates "
			 "(an older musubid): run the query with --no-pushdown");
	} else if ((rc = keep_rows(p, r->rows, r->n_rows)) < 0) {
		p->failed = p->done = 1;
		snprintf(p->reason, sizeof(p->reason), "more than %d rows: add a WHERE or LIMIT",
			 FEDQ_MAX_ROWS);
	} else {
		set_head(p, r->signed_head.data, r->signed_head.len);
		if (p->scan.n_aggregates > 0) {
			p->scan.offset = p->nrows;   /* groups page on by count */
		} else if (p->nrows > 0) {
			/* _seq is the second provenance value of every row. */
			struct rec_row *last = NULL;
			if (rec_row_decode(p->rows[p->nrows - 1].data, p->rows[p->nrows - 1].len, &last) == 0) {
				if (last->n >= p->scan.n_columns + 2)
					p->last_seq = (uint64_t)last->values[p->scan.n_columns + 1].i;
				rec_row_free(&last);
			}
			p->resumed = 1;
		}
		if (r->more) {
			/* Page on, pinned to the head the first page came from. */
			struct head_signed h2;
			if (head_decode(r->signed_head.data, r->signed_head.len, &h2) == 0) {
				p->src->as_of = h2.hd->h.size;
				head_signed_fini(&h2);
			}
			p->scan.as_of_size = p->src->as_of;
			if (send_scan(fq, p) < 0) {
				p->failed = p->done = 1;
				snprintf(p->reason, sizeof(p->reason), "cannot ask for more rows");
			}
		} else {
			p->done = 1;
		}
	}
	musubi__scan_rows__free_unpacked(r, NULL);
}

static void manifest_add(struct fedq *fq, const char *table, struct pending_scan *p)
{
	json_t *e;
	size_t i;
	struct head_signed hs;

	/* One entry per table and publisher, however often it was scanned. */
	json_array_foreach(fq->manifest, i, e)
		if (strcmp(json_string_value(json_object_get(e, "table")), table) == 0 &&
		    strcmp(json_string_value(json_object_get(e, "publisher")), p->src->publisher) == 0)
			return;
	e = json_pack("{s:s,s:s,s:s,s:s,s:I}", "table", table, "publisher", p->src->publisher,
		      "answered_by", p->node, "source", p->kind, "rows", (json_int_t)p->nrows);
	if (p->head && head_decode(p->head, p->head_len, &hs) == 0) {
		char root[65], when[32];
		sig_hex(hs.hd->h.root, 32, root);
		mu_format_time(hs.hd->h.time_us, when, sizeof(when));
		json_object_set_new(e, "dataset", json_string(hs.hd->h.dataset));
		json_object_set_new(e, "head_size", json_integer((json_int_t)hs.hd->h.size));
		json_object_set_new(e, "root", json_string(root));
		json_object_set_new(e, "head_time", json_string(when));
		json_object_set_new(e, "age_s", json_integer((mu_now_us() - hs.hd->h.time_us) / 1000000));
		head_signed_fini(&hs);
	}
	json_array_append_new(fq->manifest, e);
}

/* Constraints on _publisher are decided here: no scan is sent to a
 * publisher they exclude. */
static int publisher_matches(const char *publisher, Musubi__Constraint **cons, int n)
{
	for (int i = 0; i < n; i++) {
		const Musubi__Value *v = cons[i]->value;
		if (strcmp(cons[i]->column, "_publisher") != 0 || v == NULL ||
		    v->kind_case != MUSUBI__VALUE__KIND_TEXT)
			continue;
		int eq = strcmp(publisher, v->text) == 0;
		if ((strcmp(cons[i]->op, "=") == 0 && !eq) || (strcmp(cons[i]->op, "!=") == 0 && eq))
			return 0;
	}
	return 1;
}

struct group_ref {
	struct rec_row *r;
	size_t i;               /* position as received, publisher by publisher */
};

static int group_cmp(const void *pa, const void *pb, void *arg)
{
	const struct group_ref *a = pa, *b = pb;
	size_t nkeys = *(const size_t *)arg;
	static const struct mu_value null = { .kind = MU_VAL_NULL };

	for (size_t k = 0; k < nkeys; k++) {
		int c = fedagg_value_cmp(k < a->r->n ? &a->r->values[k] : &null,
					 k < b->r->n ? &b->r->values[k] : &null);
		if (c != 0)
			return c;
	}
	/* Equal keys keep the publishers' order: merges add in the same
	 * order on every run. */
	return a->i < b->i ? -1 : a->i > b->i;
}

static const struct mu_value *row_value(const struct rec_row *r, int pos)
{
	return pos >= 0 && (size_t)pos < r->n ? &r->values[pos] : NULL;
}

/*
 * The groups of every publisher, as SQLite will read them: sorted by key
 * so that equal keys are adjacent (the GROUP BY order the table
 * consumed), groups of no rows left out, and each aggregated column's
 * partial state decoded once.
 */
static int groups_build(struct scan_cache *sc, const struct fedq *fq, const struct fed_vtab *v,
			size_t nkeys, int aggpos[][5])
{
	size_t n = 0;
	struct group_ref *refs = malloc((sc->nrows ? sc->nrows : 1) * sizeof(*refs));

	if (refs == NULL)
		return -ENOMEM;
	for (size_t r = 0; r < sc->nrows; r++) {
		const struct mu_value *cnt = row_value(sc->rows[r], (int)nkeys);
		if (cnt == NULL || cnt->i <= 0) {
			rec_row_free(&sc->rows[r]);
			continue;
		}
		refs[n].r = sc->rows[r];
		refs[n].i = n;
		n++;
	}
	if (n > 1)   /* refs may be NULL when no group came */
		qsort_r(refs, n, sizeof(*refs), group_cmp, &nkeys);
	for (size_t i = 0; i < n; i++)
		sc->rows[i] = refs[i].r;
	sc->nrows = n;
	free(refs);
	sc->nkeys = nkeys;
	sc->nargs = fq->agg.nargs;
	sc->argidx = malloc(v->ncols * sizeof(*sc->argidx));
	sc->parts = calloc((n ? n : 1) * (sc->nargs ? sc->nargs : 1), sizeof(*sc->parts));
	if (sc->argidx == NULL || sc->parts == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < v->ncols; i++)
		sc->argidx[i] = -1;
	for (size_t j = 0; j < sc->nargs; j++)
		sc->argidx[fq->agg.args[j]] = (long)j;
	for (size_t r = 0; r < n; r++)
		for (size_t j = 0; j < sc->nargs; j++) {
			struct fedagg_part *p = &sc->parts[r * sc->nargs + j];
			const struct mu_value *x;
			if ((x = row_value(sc->rows[r], aggpos[j][0])) != NULL)
				p->cnt = x->i;
			if ((x = row_value(sc->rows[r], aggpos[j][1])) != NULL) {
				p->sum_kind = x->kind == MU_VAL_NUM ? 2 : x->kind == MU_VAL_NULL ? 0 : 1;
				p->isum = x->i;
			}
			if ((x = row_value(sc->rows[r], aggpos[j][2])) != NULL)
				p->total = x->kind == MU_VAL_NUM ? x->d : (double)x->i;
			p->min = row_value(sc->rows[r], aggpos[j][3]);
			p->max = row_value(sc->rows[r], aggpos[j][4]);
		}
	return 0;
}

static int fed_filter(sqlite3_vtab_cursor *cur, int idxNum, const char *idxStr, int argc,
		      sqlite3_value **argv)
{
	struct fed_cursor *c = (struct fed_cursor *)cur;
	struct fed_vtab *v = (struct fed_vtab *)cur->pVtab;
	struct fedq *fq = v->fq;
	unsigned long long used = strtoull(idxStr, NULL, 16);
	char *key = NULL;
	size_t klen = 0, kcap = 0;
	struct source *src = NULL;
	size_t nsrc;
	int rc = SQLITE_OK;

	/* The cache key: the table, the plan, and the constant values. */
	append(&key, &klen, &kcap, v->name);
	append(&key, &klen, &kcap, idxStr);
	for (int i = 0; i < argc; i++) {
		append(&key, &klen, &kcap, "\x1f");
		append(&key, &klen, &kcap, (const char *)sqlite3_value_text(argv[i]) ?: "\x1eNULL");
	}
	for (struct scan_cache *sc = fq->cache; sc != NULL; sc = sc->next)
		if (strcmp(sc->key, key) == 0) {
			c->rows = sc;
			goto ready;
		}

	/* Columns wanted: those used; beyond bit 62, all of them. */
	size_t ntable = v->ncols - 4;
	char **want = calloc(v->ncols, sizeof(*want));
	long *map = calloc(v->ncols, sizeof(*map));
	size_t nwant = 0;
	for (size_t i = 0; want && map && i < ntable; i++) {
		int usedbit = i >= 63 ? (used >> 63) & 1 : (used >> i) & 1;
		map[i] = -1;
		if (usedbit) {
			map[i] = (long)nwant;
			want[nwant++] = v->cols[i];
		}
	}
	for (int k = 0; map && k < 4; k++)
		map[ntable + k] = (long)nwant + k;
	/* Aggregate pushdown ('#' in idxStr): the group keys are the columns,
	 * then count(*) and the partial aggregates the plan needs. */
	const char *hash = strchr(idxStr, '#');
	static const char *const partf[5] = { "count", "sum", "total", "min", "max" };
	Musubi__Aggregate aggs[1 + 5 * FEDAGG_MAX_COLS];
	Musubi__Aggregate *aggp[1 + 5 * FEDAGG_MAX_COLS];
	int aggpos[FEDAGG_MAX_COLS][5];
	size_t naggs = 0;
	if (hash != NULL && want && map) {
		nwant = 0;
		for (size_t i = 0; i < v->ncols; i++)
			map[i] = -1;
		for (const char *k = hash + 1; *k >= '0' && *k <= '9' && strchr(k, ','); k = strchr(k, ',') + 1) {
			int col = atoi(k);
			if ((size_t)col < v->ncols && map[col] < 0) {
				map[col] = (long)nwant;
				want[nwant++] = v->cols[col];
			}
		}
		musubi__aggregate__init(&aggs[0]);
		aggs[0].func = (char *)"count";
		aggs[0].column = (char *)"";
		aggp[naggs++] = &aggs[0];
		for (size_t j = 0; j < fq->agg.nargs; j++) {
			unsigned nd = fq->agg.needs[j];
			unsigned parts[5] = { nd & (FEDAGG_COUNT | FEDAGG_SUM | FEDAGG_AVG), nd & FEDAGG_SUM,
					      nd & (FEDAGG_SUM | FEDAGG_AVG | FEDAGG_TOTAL),
					      nd & FEDAGG_MIN, nd & FEDAGG_MAX };
			for (int f = 0; f < 5; f++) {
				aggpos[j][f] = -1;
				if (!parts[f])
					continue;
				aggpos[j][f] = (int)(nwant + naggs);
				musubi__aggregate__init(&aggs[naggs]);
				aggs[naggs].func = (char *)partf[f];
				aggs[naggs].column = v->cols[fq->agg.args[j]];
				aggp[naggs] = &aggs[naggs];
				naggs++;
			}
		}
	}
	/* Constraints: "|col,op" pairs in idxStr, values in argv. */
	Musubi__Constraint *cons = calloc(argc ? (size_t)argc : 1, sizeof(*cons));
	Musubi__Constraint **consp = calloc(argc ? (size_t)argc : 1, sizeof(*consp));
	Musubi__Value *vals = calloc(argc ? (size_t)argc : 1, sizeof(*vals));
	struct mu_value mv;
	const char *p = strchr(idxStr, '|');
	for (int i = 0; cons && consp && vals && p != NULL && i < argc; i++, p = strchr(p + 1, '|')) {
		int col = atoi(p + 1);
		const char *op = strchr(p, ',') + 1;
		const char *end = strchr(op, '|');
		static char opbuf[64][16];
		snprintf(opbuf[i % 64], sizeof(opbuf[0]), "%.*s",
			 end ? (int)(end - op) < 15 ? (int)(end - op) : 15 : (int)strnlen(op, 15), op);
		musubi__constraint__init(&cons[i]);
		musubi__value__init(&vals[i]);
		cons[i].column = v->cols[col];
		cons[i].op = opbuf[i % 64];
		sqlite_to_value(argv[i], &mv);
		switch (mv.kind) {
		case MU_VAL_INT: vals[i].kind_case = MUSUBI__VALUE__KIND_INTEGER; vals[i].integer = mv.i; break;
		case MU_VAL_NUM: vals[i].kind_case = MUSUBI__VALUE__KIND_NUMBER; vals[i].number = mv.d; break;
		case MU_VAL_TEXT: vals[i].kind_case = MUSUBI__VALUE__KIND_TEXT; vals[i].text = (char *)mv.text; break;
		default: break;
		}
		cons[i].value = &vals[i];
		consp[i] = &cons[i];
	}

	nsrc = table_sources(fq, v->name, &src);
	struct pending_scan *ps = calloc(nsrc ? nsrc : 1, sizeof(*ps));
	int local_later = 0;
	for (size_t i = 0; ps && i < nsrc; i++) {
		ps[i].src = &src[i];
		musubi__scan__init(&ps[i].scan);
		ps[i].scan.table = v->name;
		ps[i].scan.publisher = src[i].publisher;
		ps[i].scan.n_columns = nwant;
		ps[i].scan.columns = want;
		if (hash != NULL) {
			ps[i].scan.n_columns = 0;
			ps[i].scan.columns = NULL;
			ps[i].scan.n_group_by = nwant;
			ps[i].scan.group_by = want;
			ps[i].scan.n_aggregates = naggs;
			ps[i].scan.aggregates = aggp;
		}
		ps[i].scan.n_constraints = (size_t)argc;
		ps[i].scan.constraints = consp;
		ps[i].scan.as_of_size = src[i].as_of;
		ps[i].scan.valid_at = fq->valid_at;
		ps[i].kind = "publisher";
		snprintf(ps[i].node, sizeof(ps[i].node), "%s", src[i].publisher);
		if (src[i].publisher[0] == '\0' || !publisher_matches(src[i].publisher, consp, argc)) {
			ps[i].done = 1;   /* left out by --as-of or by a _publisher constraint */
			ps[i].kind = "absent";
		} else if (src[i].is_self || fq->local_only || src[i].endpoint[0] == '\0') {
			if (src[i].is_self || src[i].has_replica)
				local_later = 1;   /* below, once every remote scan is asked */
			else {
				ps[i].done = ps[i].failed = 1;
				snprintf(ps[i].reason, sizeof(ps[i].reason), fq->local_only ?
					 "no local replica (--local)" : "no endpoint in the trust list");
			}
		} else if (send_scan(fq, &ps[i]) < 0) {
			ps[i].failed = ps[i].done = 1;
			snprintf(ps[i].reason, sizeof(ps[i].reason), "cannot connect to %s", src[i].endpoint);
		}
	}
	/* The scans answered here run while the other nodes work on theirs. */
	for (size_t i = 0; local_later && ps && i < nsrc; i++)
		if (!ps[i].done && ps[i].sock == NULL &&
		    (src[i].is_self || fq->local_only || src[i].endpoint[0] == '\0'))
			scan_here(fq, &ps[i], src[i].is_self ? "publisher" : "replica");
	/* Wait for every remote scan, until the deadline. */
	for (;;) {
		size_t waiting = 0;
		zmq_pollitem_t *items = calloc(nsrc ? nsrc : 1, sizeof(*items));
		size_t *idx = calloc(nsrc ? nsrc : 1, sizeof(*idx));
		for (size_t i = 0; items && idx && i < nsrc; i++)
			if (!ps[i].done && ps[i].sock) {
				items[waiting] = (zmq_pollitem_t){ ps[i].sock, 0, ZMQ_POLLIN, 0 };
				idx[waiting++] = i;
			}
		int64_t left = (fq->deadline_us - mu_now_us()) / 1000;
		if (waiting == 0 || left <= 0) {
			free(items);
			free(idx);
			break;
		}
		if (zmq_poll(items, (int)waiting, (long)left) > 0)
			for (size_t k = 0; k < waiting; k++)
				if (items[k].revents & ZMQ_POLLIN)
					on_scan_reply(fq, &ps[idx[k]]);
		free(items);
		free(idx);
	}
	/* Whoever failed: a replica here answers for it, if there is one. */
	struct scan_cache *sc = calloc(1, sizeof(*sc));
	for (size_t i = 0; sc && i < nsrc; i++) {
		struct pending_scan *q = &ps[i];
		if (!q->done) {
			q->failed = 1;
			snprintf(q->reason, sizeof(q->reason), "no answer within %u ms", fq->timeout_ms);
		}
		if (q->failed && strcmp(q->kind, "absent") != 0 && q->src->has_replica) {
			char first[256];
			snprintf(first, sizeof(first), "%s", q->reason);
			for (size_t r = 0; r < q->nrows; r++)
				free(q->rows[r].data);
			q->nrows = 0;
			scan_here(fq, q, "replica");
			if (!q->failed)
				explainf(fq, "  %s: publisher %s's node failed (%s); local replica answered",
					 v->name, q->src->publisher, first);
		}
		if (q->failed && strcmp(q->kind, "absent") != 0) {
			json_array_append_new(fq->failures, json_pack("{s:s,s:s,s:s,s:s}", "table", v->name,
				"publisher", q->src->publisher, "node", q->src->endpoint, "reason", q->reason));
			fq->partial = 1;
		} else if (!q->failed && strcmp(q->kind, "absent") != 0) {
			manifest_add(fq, v->name, q);
			explainf(fq, "  %s: publisher %s -> %s (%s), %zu %s", v->name, q->src->publisher,
				 q->node, q->kind, q->nrows, hash ? "groups" : "rows");
			/* Keep the rows, decoded once. (Never realloc to 0 bytes: that
			 * frees the block and returns NULL, leaving sc->rows dangling.) */
			struct rec_row **g = realloc(sc->rows, (sc->nrows + q->nrows + 1) * sizeof(*g));
			if (g != NULL) {
				sc->rows = g;
				for (size_t r = 0; r < q->nrows; r++)
					if (rec_row_decode(q->rows[r].data, q->rows[r].len,
							   &sc->rows[sc->nrows]) == 0)
						sc->nrows++;
			}
		}
		for (size_t r = 0; r < q->nrows; r++)
			free(q->rows[r].data);
		free(q->rows);
		free(q->head);
		pool_put(fq, q);
	}
	if (sc != NULL) {
		sc->key = key;
		key = NULL;
		sc->map = map;
		map = NULL;
		sc->nreq = nwant;
		sc->next = fq->cache;
		fq->cache = sc;
		c->rows = sc;
		if (hash != NULL && groups_build(sc, fq, v, nwant, aggpos) < 0)
			rc = SQLITE_NOMEM;
		/* What was pushed down, for --explain. */
		char cols[512] = "";
		for (size_t i = 0; i < nwant && strlen(cols) < 400; i++)
			snprintf(cols + strlen(cols), sizeof(cols) - strlen(cols), "%s%s", i ? "," : "", want[i]);
		char pushed[512] = "";
		for (int i = 0; i < argc && strlen(pushed) < 400; i++)
			snprintf(pushed + strlen(pushed), sizeof(pushed) - strlen(pushed), "%s%s %s %s",
				 i ? " AND " : "", cons[i].column, cons[i].op,
				 sqlite3_value_text(argv[i]) ? (const char *)sqlite3_value_text(argv[i]) : "NULL");
		if (hash != NULL) {
			char parts[512] = "";
			for (size_t i = 0; i < naggs && strlen(parts) < 400; i++)
				snprintf(parts + strlen(parts), sizeof(parts) - strlen(parts), "%s%s(%s)",
					 i ? ", " : "", aggs[i].func, aggs[i].column[0] ? aggs[i].column : "*");
			explainf(fq, "scan %s: aggregate pushed down: GROUP BY [%s], each node computes "
				 "%s; WHERE pushed down: %s", v->name, cols, parts, argc ? pushed : "nothing");
		} else {
			explainf(fq, "scan %s: columns [%s]; WHERE pushed down: %s", v->name, cols,
				 argc ? pushed : "nothing");
		}
	} else {
		rc = SQLITE_NOMEM;
	}
	free(ps);
	free(src);
	free(cons);
	free(consp);
	free(vals);
	free(want);
	free(map);
	free(key);
	(void)idxNum;
	if (rc != SQLITE_OK)
		return rc;
ready:
	c->pos = 0;
	if (c->rows != NULL && c->rows->argidx != NULL)
		fq->agg_cur = c;   /* count(*) reads the weight of its row */
	return SQLITE_OK;
}

static int fed_next(sqlite3_vtab_cursor *cur)
{
	((struct fed_cursor *)cur)->pos++;
	return SQLITE_OK;
}

static int fed_eof(sqlite3_vtab_cursor *cur)
{
	struct fed_cursor *c = (struct fed_cursor *)cur;

	return c->rows == NULL || c->pos >= c->rows->nrows;
}

static int fed_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int col)
{
	struct fed_cursor *c = (struct fed_cursor *)cur;
	struct rec_row *row = c->rows->rows[c->pos];
	long i = c->rows->map ? c->rows->map[col] : -1;

	if (c->rows->argidx != NULL && c->rows->argidx[col] >= 0) {
		fedagg_result_part(ctx, &c->rows->parts[c->pos * c->rows->nargs +
							 (size_t)c->rows->argidx[col]]);
		return SQLITE_OK;
	}
	if (i < 0 || (size_t)i >= row->n)
		sqlite3_result_null(ctx);
	else
		result_value(ctx, &row->values[i]);
	return SQLITE_OK;
}

static int fed_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *rowid)
{
	*rowid = (sqlite3_int64)((struct fed_cursor *)cur)->pos;
	return SQLITE_OK;
}

static const sqlite3_module fed_module = {
	.iVersion = 0,
	.xCreate = fed_connect,
	.xConnect = fed_connect,
	.xBestIndex = fed_best_index,
	.xDisconnect = fed_disconnect,
	.xDestroy = fed_disconnect,
	.xOpen = fed_open,
	.xClose = fed_close,
	.xFilter = fed_filter,
	.xNext = fed_next,
	.xEof = fed_eof,
	.xColumn = fed_column,
	.xRowid = fed_rowid,
};

/*
 * A table this node holds no replica of: ask every publisher's node what
 * its columns are, and add the union to the catalogue. 0 when some node
 * knows the table.
 */
static int describe_remote(struct fedq *fq, const char *table)
{
	json_t *cols = json_array();
	size_t found = 0, n = 0;
	int64_t deadline = mu_now_us() + (int64_t)fq->timeout_ms * 1000;
	void **socks = calloc(fq->nmembers ? fq->nmembers : 1, sizeof(*socks));
	zmq_pollitem_t *items = calloc(fq->nmembers ? fq->nmembers : 1, sizeof(*items));

	/* Ask every publisher's node at once; union what they say. */
	for (size_t i = 0; socks && items && i < fq->nmembers; i++) {
		const struct trust_peer *mem = &fq->members_list[i];
		Musubi__Scan q = MUSUBI__SCAN__INIT;
		void *sock;
		if (!(mem->roles & TRUST_PUBLISHER) || mem->endpoint[0] == '\0' ||
		    strcmp(mem->id, fq->n->member) == 0)
			continue;
		q.table = (char *)table;
		q.publisher = (char *)mem->id;
		if ((sock = zmq_socket(fq->zctx, ZMQ_DEALER)) == NULL)
			continue;
		if (wire_curve_client(sock, fq->n->pub, fq->n->sec, mem->transport_key) < 0 ||
		    zmq_connect(sock, mem->endpoint) != 0 ||
		    wire_send(sock, NULL, 0, MUSUBI__MSG_TYPE__MSG_SCAN, 1, &q.base) < 0) {
			zmq_close(sock);
			continue;
		}
		socks[n] = sock;
		items[n] = (zmq_pollitem_t){ sock, 0, ZMQ_POLLIN, 0 };
		n++;
	}
	for (size_t waiting = n; waiting > 0;) {
		int64_t left = (deadline - mu_now_us()) / 1000;
		if (left <= 0 || zmq_poll(items, (int)n, (long)left) <= 0)
			break;
		for (size_t k = 0; k < n; k++) {
			struct wire_msg m;
			if (!(items[k].revents & ZMQ_POLLIN) || wire_recv(socks[k], 0, 0, &m) != 0)
				continue;
			items[k].events = 0;   /* one answer each */
			waiting--;
			Musubi__ScanRows *r = m.env->type == MUSUBI__MSG_TYPE__MSG_SCAN_ROWS ?
				musubi__scan_rows__unpack(NULL, m.env->payload.len, m.env->payload.data) : NULL;
			for (size_t c = 0; r && c < r->n_columns; c++) {
				size_t j;
				json_t *col;
				int have = 0;
				json_array_foreach(cols, j, col)
					have |= strcmp(json_string_value(json_object_get(col, "name")),
						       r->columns[c]->name) == 0;
				if (!have)
					json_array_append_new(cols, json_pack("{s:s,s:s}", "name",
						r->columns[c]->name, "type", r->columns[c]->decltype));
			}
			found += r != NULL && r->n_columns > 0;
			if (r)
				musubi__scan_rows__free_unpacked(r, NULL);
			wire_msg_fini(&m);
		}
	}
	for (size_t k = 0; k < n; k++)
		zmq_close(socks[k]);
	free(socks);
	free(items);
	if (found == 0) {
		json_decref(cols);
		return -ENOENT;
	}
	json_array_append_new(fq->catalogue, json_pack("{s:s,s:o,s:[]}", "table", table, "columns",
						       cols, "sources"));
	return 0;
}

/* Deny everything a read-only question does not need. Note whether the
 * statement calls an aggregate that could be pushed down (ctx: fedq). */
static int authorize(void *ctx, int action, const char *a, const char *b, const char *c,
		     const char *d)
{
	static const char *const aggs[] = { "count", "sum", "total", "avg", "min", "max" };
	struct fedq *fq = ctx;

	(void)a; (void)c; (void)d;
	for (size_t i = 0; fq && action == SQLITE_FUNCTION && b && i < 6; i++)
		fq->agg_called |= sqlite3_stricmp(b, aggs[i]) == 0;
	switch (action) {
	case SQLITE_SELECT:
	case SQLITE_READ:
	case SQLITE_FUNCTION:
	case SQLITE_RECURSIVE:
		return SQLITE_OK;
	default:
		return SQLITE_DENY;
	}
}

/* count(*)'s share of the current row of the grouped scan. */
static int agg_weight(void *ctx, int64_t *n)
{
	struct fedq *fq = ctx;
	struct fed_cursor *c = fq->agg_cur;
	const struct mu_value *w;

	if (c == NULL || c->rows == NULL || c->pos >= c->rows->nrows ||
	    (w = row_value(c->rows->rows[c->pos], (int)c->rows->nkeys)) == NULL)
		return -1;
	*n = w->i;
	return 0;
}

/* Every table of the catalogue, as a "fed" virtual table of db. */
static int register_tables(struct fedq *fq, sqlite3 *db, char *why, size_t whylen)
{
	json_t *tab;
	size_t i;

	json_array_foreach(fq->catalogue, i, tab) {
		const char *name = json_string_value(json_object_get(tab, "table"));
		char *sql = sqlite3_mprintf("CREATE VIRTUAL TABLE temp.\"%w\" USING fed(%w)", name, name);
		int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
		sqlite3_free(sql);
		if (rc != SQLITE_OK) {
			snprintf(why, whylen, "cannot register table %s: %s", name, sqlite3_errmsg(db));
			return MU_E_STORE;
		}
	}
	return 0;
}

/*
 * Decide whether the statement's aggregates can be pushed down: on a
 * probe connection with the same tables and the merging aggregates, read
 * the program SQLite compiles with the GROUP BY consumed, and check it
 * (fedagg_check). 1: the merging aggregates are now installed on db and
 * fq->agg holds the plan; 0: nothing changed, rows will be streamed.
 */
static int agg_try(struct fedq *fq, sqlite3 *db, const char *sql)
{
	struct fedagg_prog prog;
	sqlite3 *probe = NULL;
	char why[256] = "";
	int ok = 0;

	fq->agg_mode = 1;
	fq->agg_vt = NULL;
	fq->agg_tables = 0;
	fq->agg_nkeys = 0;
	if (sqlite3_open_v2(":memory:", &probe, SQLITE_OPEN_READWRITE | SQLITE_OPEN_MEMORY, NULL) !=
		    SQLITE_OK ||
	    sqlite3_create_module_v2(probe, "fed", &fed_module, fq, NULL) != SQLITE_OK ||
	    register_tables(fq, probe, why, sizeof(why)) < 0 ||
	    fedagg_functions(probe, agg_weight, fq) < 0) {
		snprintf(why, sizeof(why), "cannot set up SQLite");
	} else {
		sqlite3_set_authorizer(probe, authorize, NULL);
		if (fedagg_prog_load(probe, sql, &prog) < 0) {
			snprintf(why, sizeof(why), "%s", sqlite3_errmsg(probe));
		} else {
			if (fq->agg_tables != 1)
				snprintf(why, sizeof(why), "not one federated table");
			else
				ok = fedagg_check(&prog, fq->agg_keys, fq->agg_nkeys,
						  (const char *const *)fq->agg_vt->cols, fq->agg_vt->ncols,
						  &fq->agg, why, sizeof(why));
			fedagg_prog_fini(&prog);
		}
	}
	sqlite3_close(probe);
	fq->agg_vt = NULL;   /* the probe's table is gone */
	if (ok && fedagg_functions(db, agg_weight, fq) < 0) {
		ok = 0;
		snprintf(why, sizeof(why), "cannot set up SQLite");
	}
	fq->agg_mode = ok;
	if (!ok)
		explainf(fq, "aggregates computed here over streamed rows: %s", why);
	return ok;
}

static int progress(void *ctx)
{
	const struct fedq *fq = ctx;

	/* Local work gets the scan deadline plus as long again. */
	return mu_now_us() > fq->deadline_us + (int64_t)fq->timeout_ms * 1000;
}

static void fedq_free(struct fedq *fq)
{
	while (fq->cache != NULL) {
		struct scan_cache *sc = fq->cache;
		fq->cache = sc->next;
		for (size_t i = 0; i < sc->nrows; i++)
			rec_row_free(&sc->rows[i]);
		free(sc->rows);
		free(sc->key);
		free(sc->map);
		free(sc->argidx);
		free(sc->parts);
		free(sc);
	}
	json_decref(fq->catalogue);
	json_decref(fq->manifest);
	json_decref(fq->failures);
	json_decref(fq->asof);
	free(fq->members_list);
	free(fq->explain);
}

/* Run one query; fill res, or return an error code and message. */
static int run_query(struct fedq *fq, const Musubi__Query *q, Musubi__QueryResult *res,
		     struct rec_buf **rowbufs, char *why, size_t whylen)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	struct qry *local = NULL;
	struct qry_opts lo = { .members_view = fq->members, .why = why, .whylen = whylen,
			       .catalogue_only = 1 };
	struct store_txn t;
	const char *tail;
	size_t nrows = 0;
	int rc, ret = 0;

	/* The tables: every dataset name this node knows (its replicas). */
	if ((rc = qry_open(fq->n->st, &lo, &local)) < 0)
		return rc;
	rc = qry_tables(local, &fq->catalogue);
	qry_close(&local);
	if (rc < 0)
		return rc;
	if (store_read_begin(fq->n->st, &t) == 0) {
		if (trust_members_current(&t, mu_now_us(), &fq->members_list, &fq->nmembers) < 0)
			fq->nmembers = 0;
		store_read_end(&t);
	}
	/* Sorting and grouping stay in memory, under query-memory, rather
	 * than spilling to temporary files without bound. */
	if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_MEMORY, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, "PRAGMA temp_store = MEMORY", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_create_module_v2(db, "fed", &fed_module, fq, NULL) != SQLITE_OK) {
		snprintf(why, whylen, "cannot set up SQLite");
		ret = MU_E_STORE;
		goto out;
	}
	sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, NULL);
	sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	if ((ret = register_tables(fq, db, why, whylen)) < 0)
		goto out;
	sqlite3_progress_handler(db, 10000, progress, fq);
	sqlite3_limit(db, SQLITE_LIMIT_SQL_LENGTH, QRY_MAX_SQL);
	/* No value larger than a reply: bounds what one query can allocate. */
	sqlite3_limit(db, SQLITE_LIMIT_LENGTH, (int)(WIRE_MAX_MESSAGE));
	/* Tables this node has no replica of are learnt from their publishers. */
	for (int tries = 0;; tries++) {
		sqlite3_set_authorizer(db, authorize, fq);
		if (sqlite3_prepare_v2(db, q->sql, -1, &st, &tail) == SQLITE_OK)
			break;
		const char *msg = sqlite3_errmsg(db), *prefix = "no such table: ";
		char table[128];
		snprintf(why, whylen, "%s", msg);
		if (tries >= 8 || q->local || strncmp(msg, prefix, strlen(prefix)) != 0 ||
		    snprintf(table, sizeof(table), "%s", msg + strlen(prefix)) >= (int)sizeof(table) ||
		    !mu_valid_dataset_name(table) || describe_remote(fq, table) < 0) {
			ret = MU_E_USAGE;
			goto out;
		}
		sqlite3_set_authorizer(db, NULL, NULL);
		char *sql = sqlite3_mprintf("CREATE VIRTUAL TABLE temp.\"%w\" USING fed(%w)", table,
					    table);
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
		sqlite3_free(sql);
		if (rc != SQLITE_OK) {
			snprintf(why, whylen, "cannot register table %s: %s", table, sqlite3_errmsg(db));
			ret = MU_E_STORE;
			goto out;
		}
	}
	if (st == NULL || (tail && strspn(tail, " \t\r\n;") != strlen(tail))) {
		snprintf(why, whylen, st ? "one statement only" : "no statement");
		ret = MU_E_USAGE;
		goto out;
	}
	if (!sqlite3_stmt_readonly(st)) {
		snprintf(why, whylen, "queries cannot write");
		ret = MU_E_DENIED;
		goto out;
	}
	/* Aggregates that decompose go to the nodes: the same SQL, prepared
	 * again with the merging aggregates and the GROUP BY consumed. */
	if (!q->no_pushdown && fq->agg_called && agg_try(fq, db, q->sql)) {
		sqlite3_finalize(st);
		st = NULL;
		if (sqlite3_prepare_v2(db, q->sql, -1, &st, NULL) != SQLITE_OK) {
			snprintf(why, whylen, "%s", sqlite3_errmsg(db));
			ret = MU_E_USAGE;
			goto out;
		}
	}
	int ncols = sqlite3_column_count(st);
	res->columns = calloc(ncols > 0 ? (size_t)ncols : 1, sizeof(*res->columns));
	Musubi__Column *cols = calloc(ncols > 0 ? (size_t)ncols : 1, sizeof(*cols));
	if (res->columns == NULL || cols == NULL) {
		free(cols);
		ret = -ENOMEM;
		goto out;
	}
	for (int c = 0; c < ncols; c++) {
		musubi__column__init(&cols[c]);
		cols[c].name = strdup(sqlite3_column_name(st, c));
		cols[c].decltype = strdup(sqlite3_column_decltype(st, c) ?: "");
		res->columns[c] = &cols[c];
	}
	res->n_columns = (size_t)ncols;
	size_t cap = 0, bytes = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (nrows == cap) {
			cap = cap ? cap * 2 : 256;
			struct rec_buf *g = realloc(*rowbufs, cap * sizeof(*g));
			if (g == NULL) {
				ret = -ENOMEM;
				goto out;
			}
			*rowbufs = g;
		}
		memset(&(*rowbufs)[nrows], 0, sizeof(**rowbufs));
		if (encode_stmt_row(st, &(*rowbufs)[nrows]) < 0) {
			ret = -ENOMEM;
			goto out;
		}
		bytes += (*rowbufs)[nrows].len + 8;
		nrows++;
		if (nrows > FEDQ_MAX_ROWS || bytes > WIRE_MAX_MESSAGE - (1u << 20)) {
			snprintf(why, whylen, "the result is larger than one reply (%zu rows so far): "
				 "add a WHERE, GROUP BY or LIMIT", nrows);
			ret = MU_E_TOOBIG;
			goto out;
		}
	}
	if (rc != SQLITE_DONE) {
		if (rc == SQLITE_NOMEM)
			snprintf(why, whylen, "query exceeded the node's query memory (query-memory %zu "
				 "bytes): narrow it with WHERE or LIMIT, or raise query-memory in "
				 "musubid.conf", fq->n->cfg->query_memory);
		else
			snprintf(why, whylen, "%s", rc == SQLITE_INTERRUPT ?
				 "the query ran past its time limit" : sqlite3_errmsg(db));
		ret = rc == SQLITE_INTERRUPT ? MU_E_TIMEOUT : rc == SQLITE_NOMEM ? MU_E_TOOBIG : MU_E_USAGE;
		goto out;
	}
	res->rows = calloc(nrows ? nrows : 1, sizeof(*res->rows));
	for (size_t r = 0; res->rows && r < nrows; r++) {
		res->rows[r].data = (*rowbufs)[r].data;
		res->rows[r].len = (*rowbufs)[r].len;
	}
	res->n_rows = res->rows ? nrows : 0;
out:
	if (ret < 0) {
		for (size_t r = 0; *rowbufs && r < nrows; r++)
			rec_buf_fini(&(*rowbufs)[r]);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return ret;
}

struct worker {
	struct node *n;
	void *sock;
	struct conn_pool pool;
};

/* The heads a manifest names, as [{table, publisher, head_size}]: from its
 * "heads" (dataset "<member>/<name>", head_size) as musubi query writes it. */
static json_t *pins_from_manifest(const char *text)
{
	json_t *m = json_loads(text, 0, NULL), *out = NULL, *h;
	json_t *heads = m ? json_object_get(m, "heads") : NULL;
	size_t i;

	if (!json_is_array(heads))
		goto out;
	out = json_array();
	json_array_foreach(heads, i, h) {
		const char *ds = json_string_value(json_object_get(h, "dataset"));
		const char *slash = ds ? strchr(ds, '/') : NULL;
		json_int_t size = json_integer_value(json_object_get(h, "head_size"));
		if (slash == NULL || size <= 0) {
			json_decref(out);
			out = NULL;
			goto out;
		}
		json_array_append_new(out, json_pack("{s:s,s:s%,s:I}", "table", slash + 1,
						     "publisher", ds, (size_t)(slash - ds),
						     "head_size", size));
	}
out:
	json_decref(m);
	return out;
}

static void worker_answer(struct worker *w, void *sock, zmq_msg_t *rid, const char *user,
			  const uint8_t *env_buf, size_t env_len)
{
	Musubi__Envelope *env = musubi__envelope__unpack(NULL, env_len, env_buf);
	Musubi__Query *q = env ? musubi__query__unpack(NULL, env->payload.len, env->payload.data) : NULL;
	Musubi__QueryResult res = MUSUBI__QUERY_RESULT__INIT;
	struct fedq fq = { .n = w->n, .pool = &w->pool };
	struct rec_buf *rowbufs = NULL;
	char why[512] = "";
	int rc;

	/* Reply frames: routing id, then the envelope, as the reactor relays. */
	zmq_msg_send(rid, sock, ZMQ_SNDMORE);
	if (q == NULL || q->sql == NULL || q->sql[0] == '\0') {
		wire_send_error(sock, NULL, 0, env ? env->request_id : 0,
				MUSUBI__ERROR_CODE__ERR_BAD_REQUEST, "a query needs SQL");
		goto out;
	}
	fq.zctx = w->n->zctx;
	fq.members = user[0] && strcmp(user, "anonymous") != 0;
	fq.local_only = q->local;
	fq.valid_at = q->valid_at;
	fq.timeout_ms = q->timeout_ms ? q->timeout_ms : 5000;
	fq.deadline_us = mu_now_us() + (int64_t)fq.timeout_ms * 1000;
	fq.manifest = json_array();
	fq.failures = json_array();
	if (q->as_of && q->as_of[0] && (fq.asof = pins_from_manifest(q->as_of)) == NULL) {
		wire_send_error(sock, NULL, 0, env->request_id, MUSUBI__ERROR_CODE__ERR_BAD_REQUEST,
				"--as-of needs a manifest written by musubi query --manifest");
		goto out;
	}
	rc = run_query(&fq, q, &res, &rowbufs, why, sizeof(why));
	if (rc == 0 && q->require_all && fq.partial) {
		snprintf(why, sizeof(why), "--require-all: %zu publisher(s) did not answer (first: %s, %s)",
			 json_array_size(fq.failures),
			 json_string_value(json_object_get(json_array_get(fq.failures, 0), "publisher")),
			 json_string_value(json_object_get(json_array_get(fq.failures, 0), "reason")));
		rc = MU_E_TIMEOUT;
	}
	if (rc < 0) {
		wire_send_error(sock, NULL, 0, env->request_id,
				rc == MU_E_DENIED ? MUSUBI__ERROR_CODE__ERR_DENIED
				: rc == MU_E_TIMEOUT ? MUSUBI__ERROR_CODE__ERR_INCOMPLETE
						     : MUSUBI__ERROR_CODE__ERR_BAD_REQUEST,
				why[0] ? why : mu_strerror(rc));
	} else {
		json_t *man = json_pack("{s:s,s:s,s:s,s:b,s:O,s:O}", "query", q->sql, "coordinator",
					w->n->member, "time", "", "partial", fq.partial, "sources",
					fq.manifest, "failures", fq.failures);
		char when[32];
		mu_format_time(mu_now_us(), when, sizeof(when));
		json_object_set_new(man, "time", json_string(when));
		res.manifest = json_dumps(man, JSON_COMPACT);
		json_decref(man);
		res.partial = fq.partial;
		if (q->explain)
			res.explain = fq.explain ? fq.explain : (char *)"";
		wire_send(sock, NULL, 0, MUSUBI__MSG_TYPE__MSG_QUERY_RESULT, env->request_id, &res.base);
		free(res.manifest);
	}
	for (size_t r = 0; r < res.n_rows; r++)
		free(rowbufs[r].data);
	free(rowbufs);
	free(res.rows);
	for (size_t c = 0; c < res.n_columns; c++) {
		free(res.columns[c]->name);
		free(res.columns[c]->decltype);
	}
	if (res.n_columns)
		free(res.columns[0]);
	free(res.columns);
out:
	fedq_free(&fq);
	if (q)
		musubi__query__free_unpacked(q, NULL);
	if (env)
		musubi__envelope__free_unpacked(env, NULL);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (;;) {
		zmq_msg_t rid, user, env;
		zmq_msg_init(&rid);
		zmq_msg_init(&user);
		zmq_msg_init(&env);
		int got;
		while ((got = zmq_msg_recv(&rid, w->sock, 0)) < 0 && errno == EINTR)
			;
		if (got < 0) {
			zmq_msg_close(&rid);
			zmq_msg_close(&user);
			zmq_msg_close(&env);
			break;   /* the context is terminating */
		}
		if (zmq_msg_size(&rid) == 0) {   /* the stop message */
			zmq_msg_close(&rid);
			zmq_msg_close(&user);
			zmq_msg_close(&env);
			break;
		}
		zmq_msg_recv(&user, w->sock, 0);
		zmq_msg_recv(&env, w->sock, 0);
		char u[64];
		snprintf(u, sizeof(u), "%.*s", (int)zmq_msg_size(&user), (char *)zmq_msg_data(&user));
		int64_t t0 = mu_now_us();
		worker_answer(w, w->sock, &rid, u, zmq_msg_data(&env), zmq_msg_size(&env));
		metrics_observe(w->n->metrics, METRICS_QUERY, mu_now_us() - t0);
		zmq_msg_close(&rid);
		zmq_msg_close(&user);
		zmq_msg_close(&env);
	}
	pool_close(&w->pool);
	zmq_close(w->sock);
	free(w);
	return NULL;
}

int fedq_start(struct node *n)
{
	struct worker *w = calloc(1, sizeof(*w));
	pthread_t tid;

	if (w == NULL)
		return -ENOMEM;
	w->n = n;
	/* One bound on SQLite's memory for every query this node runs or
	 * serves: a hard heap limit is process-wide, and only SQLite uses it. */
	sqlite3_hard_heap_limit64((sqlite3_int64)n->cfg->query_memory);
	if ((n->qsock = zmq_socket(n->zctx, ZMQ_PAIR)) == NULL || zmq_bind(n->qsock, QUERY_ENDPOINT) != 0 ||
	    (w->sock = zmq_socket(n->zctx, ZMQ_PAIR)) == NULL || zmq_connect(w->sock, QUERY_ENDPOINT) != 0) {
		free(w);
		return -errno;
	}
	/* The worker must never take SIGTERM/SIGINT: those are the reactor's,
	 * which then stops the worker itself. The mask is inherited. */
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	int err = pthread_create(&tid, NULL, worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err != 0) {
		zmq_close(w->sock);
		free(w);
		return -EAGAIN;
	}
	n->qthread = tid;
	n->qthread_started = 1;
	return 0;
}

void fedq_stop(struct node *n)
{
	if (n->qthread_started) {
		zmq_send(n->qsock, "", 0, ZMQ_DONTWAIT);
		pthread_join(n->qthread, NULL);
		n->qthread_started = 0;
	}
	if (n->qsock)
		zmq_close(n->qsock);
	n->qsock = NULL;
}

void fedq_submit(struct node *n, struct wire_msg *m)
{
	Musubi__Envelope env = *m->env;
	uint8_t *buf;
	size_t len;

	if (n->queries_queued >= n->cfg->max_queries) {
		char busy[160];
		snprintf(busy, sizeof(busy), "node busy: %d queries running or waiting (max-queries "
			 "%d), try again shortly", n->queries_queued, n->cfg->max_queries);
		wire_send_error(n->router, m->routing_id, m->routing_len, m->env->request_id,
				MUSUBI__ERROR_CODE__ERR_BUSY, busy);
		return;
	}
	len = musubi__envelope__get_packed_size(&env);
	if ((buf = malloc(len)) == NULL)
		return;
	musubi__envelope__pack(&env, buf);
	zmq_send(n->qsock, m->routing_id, m->routing_len, ZMQ_SNDMORE);
	zmq_send(n->qsock, m->user, strlen(m->user), ZMQ_SNDMORE);
	zmq_send(n->qsock, buf, len, 0);
	free(buf);
	Musubi__Query *q = musubi__query__unpack(NULL, m->env->payload.len, m->env->payload.data);
	access_note(n, m->user, "query", NULL, q ? q->sql : NULL);
	if (q)
		musubi__query__free_unpacked(q, NULL);
	n->queries_queued++;
	n->stats.queries++;
}

void fedq_relay(struct node *n)
{
	zmq_msg_t part;
	int more = 1;
	size_t sz = sizeof(more);

	/* routing id + envelope: straight to the ROUTER. */
	while (more) {
		zmq_msg_init(&part);
		if (zmq_msg_recv(&part, n->qsock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&part);
			return;
		}
		zmq_getsockopt(n->qsock, ZMQ_RCVMORE, &more, &sz);
		zmq_msg_send(&part, n->router, more ? ZMQ_SNDMORE : 0);
	}
	if (n->queries_queued > 0)
		n->queries_queued--;
}
