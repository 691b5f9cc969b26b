/*
 * qry.h - SQL (SQLite's dialect) over the store, on this node alone.
 *
 * qry_open() makes an in-memory SQLite connection with one read-only
 * virtual table per dataset NAME (the part after "<member>/"): the union of
 * that dataset across every publisher the store holds. Rows are read
 * straight from LMDB inside one read transaction held until qry_close(),
 * so every statement sees one consistent snapshot; nothing is copied.
 *
 * Columns: the union of the fields of every schema version the table's
 * datasets use (one column per name, compared case-insensitively as SQLite
 * does; NULL where a row's version lacks the field), typed by the schema:
 * integer and year INTEGER, number REAL, boolean INTEGER 0/1, geopoint
 * QRY_DECLTYPE_GEOPOINT ("lat,lon" text), everything else TEXT. A name two
 * schemas type differently has no declared type. Then the provenance
 * columns:
 *   _publisher  the member id that published the row
 *   _seq        the seq of the log entry that holds the row
 *   _hash       hex SHA-256(0x00 || entry bytes): the entry's Merkle leaf
 *   _head_size  the size of the signed head the row was answered from
 *
 * Rows are answered at a signed head: the current state when the log ends
 * on one (always, after a publish or an ingest), otherwise - and for
 * as-of queries - the fold of the log's first SIZE entries (latest upsert
 * per key, minus deletes), built in memory on first use.
 *
 * Valid time: with valid_at, a table whose schemas mark an effective-from
 * and/or effective-until field ("x-valid") answers only rows where
 * from IS NULL OR from <= valid_at, and until IS NULL OR until > valid_at
 * (dates compare as their canonical text); other tables answer every row.
 *
 * Indexes: equality on _publisher reads only that publisher; equality on
 * a one-field primary key is a state lookup (integer keys by their
 * canonical text); ranges on a text primary key are a cursor range, on an
 * integer key a scan of the keys alone; _seq equality is one entry; _seq
 * ranges and ORDER BY _seq read the logs in seq order, merged over the
 * publishers (ORDER BY consumed: page a scan with "_seq > ? ORDER BY _seq
 * LIMIT n", not OFFSET). Equality on any other typed column builds, on
 * its second lookup in a statement (a join), an in-memory index of that
 * column kept until qry_close(). Everything else is a scan. Entries are
 * read and decoded only for rows whose data columns or _hash SQLite asks
 * for.
 *
 * Safety: statements cannot write (no xUpdate, and an authorizer that
 * allows only SELECT, reading, functions other than load_extension, and
 * the PRAGMAs table_info, table_xinfo and table_list), extension loading
 * is off, SQLITE_DBCONFIG_DEFENSIVE is on, double-quoted strings are
 * identifiers only, temporary storage stays in memory, and sqlite3_limit()
 * caps statement length, string length, expression depth and more.
 * max_ms bounds each qry_exec() (a progress handler); max_heap_bytes is
 * passed to sqlite3_hard_heap_limit64(), which is PROCESS-WIDE: it counts
 * every SQLite connection of the process and is set for the duration of
 * qry_exec() then restored. Memory the virtual tables allocate for as-of
 * folds is not SQLite's and is not counted.
 *
 * Not thread-safe: one struct qry is used by one thread at a time.
 */
#ifndef MU_QRY_H
#define MU_QRY_H

#include <jansson.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* Declared type of geopoint columns: TEXT affinity ("POINT" would contain
 * "INT" and give INTEGER affinity), recognisable by output formats. */
#define QRY_DECLTYPE_GEOPOINT "TEXT LATLON"

#define QRY_MAX_SQL 100000          /* bytes of one statement */

/* Answer dataset "<member>/<name>" from its signed head at size. */
struct qry_asof {
	const char *dataset;
	uint64_t size;
};

struct qry_opts {
	/* Pinned heads. When nasof > 0 the query is pinned: every dataset
	 * named is read at that size, and datasets not named are left out,
	 * as at a time they did not exist. */
	const struct qry_asof *asof;
	size_t nasof;
	int64_t max_ms;             /* per qry_exec(); 0: no limit */
	int64_t max_heap_bytes;     /* sqlite3_hard_heap_limit64 during qry_exec(); 0: none */
	const char *const *only_publishers;   /* when nonly > 0, only these members */
	size_t nonly;
	int members_view;           /* 0 hides members-only datasets */
	const char *valid_at;       /* "YYYY-MM-DD" (or a datetime): only rows in
	                             * force then, by the fields a schema marks
	                             * "x-valid" (schema.h); NULL: every row */
	char *why;                  /* optional: qry_open() writes why it failed */
	size_t whylen;
	int catalogue_only;         /* 1: no SQL connection is set up, only
	                             * qry_tables() answers (qry_exec() fails
	                             * with MU_E_USAGE, qry_db() is NULL) */
};

struct qry;

/*
 * Open the tables over st. Returns 0 with *out (qry_close() it), or:
 * -ENOENT an as-of dataset this store does not hold, MU_E_DENIED one the
 * options hide, MU_E_USAGE an as-of size that is not a signed head of the
 * local log, or a store / SQLite / -ENOMEM error. st must outlive *out.
 */
int qry_open(struct store *st, const struct qry_opts *o, struct qry **out);
void qry_close(struct qry **q);

/*
 * Row callback. For each result row fn gets the statement with
 * sqlite3_data_count(stmt) > 0 (read it with sqlite3_column_*, valid until
 * fn returns). A statement that returns no rows gives one call with
 * sqlite3_data_count(stmt) == 0, so that column names can still be read.
 * Return 0 to go on, > 0 to stop early (qry_exec returns 0), or < 0 to
 * stop with that error.
 */
typedef int (*qry_row_fn)(void *ctx, sqlite3_stmt *stmt);

/*
 * Run one read-only statement. Returns 0, or: MU_E_USAGE (SQL error, more
 * than one statement, too long), MU_E_DENIED (it would write, attach,
 * load an extension or use another refused PRAGMA), MU_E_TIMEOUT (over
 * max_ms), MU_E_TOOBIG (over max_heap_bytes), a store error, or what fn
 * returned. On error *err (when err != NULL) is a sentence the caller
 * frees, e.g. "query exceeded its time limit of 500 ms".
 * The manifest (qry_manifest) is reset at each call.
 */
int qry_exec(struct qry *q, const char *sql, qry_row_fn fn, void *ctx, char **err);

/* The connection, for a caller that registers more tables of its own
 * (as eponymous virtual tables: the authorizer refuses CREATE). Borrowed. */
sqlite3 *qry_db(struct qry *q);

/* 1 if q has a table named table and, unless column is NULL, a column of
 * that name in it (a data or provenance column; names compare as SQLite
 * compares them, without case), else 0. No SQL is compiled. */
int qry_has_column(struct qry *q, const char *table, const char *column);

/*
 * What the last qry_exec() read: an array with one object per dataset and
 * publisher it scanned or looked up, {dataset, publisher, head_size, root
 * (hex), head_time (ISO 8601 UTC), head_time_us}. Caller owns *out.
 */
int qry_manifest(struct qry *q, json_t **out);

/*
 * The catalogue: an array of {table, columns: [{name, type}], sources:
 * [{dataset, publisher, head_size, rows}]}, tables sorted by name.
 * Caller owns *out.
 */
int qry_tables(struct qry *q, json_t **out);

#endif
