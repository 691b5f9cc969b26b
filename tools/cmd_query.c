/*
 * cmd_query.c - musubi query: SQL over a data directory's datasets, with a
 * manifest of the signed heads that answered, re-runnable with --as-of;
 * an interactive shell when no SQL is given on a terminal.
 *
 * Rows reach the output through a query_source (exec + heads), so that a
 * source that asks a node instead of the local store reuses the output,
 * the summary and the manifest as they are.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <editline/readline.h>
#include <jansson.h>

#include "cli.h"
#include "client.h"
#include "rec.h"
#include "format.h"
#include "mu_err.h"
#include "qry.h"
#include "store.h"
#include "util.h"

#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_MAX_HEAP ((int64_t)1 << 30)
#define MANIFEST_VERSION 1

static const char query_usage[] =
	"usage: musubi query --dir DATADIR [--format table|csv|jsonl|geojson]\n"
	"                    [--manifest FILE] [--as-of MANIFEST] [--valid-at YYYY-MM-DD]\n"
	"                    [--timeout MS] [SQL]\n"
	"       musubi query --node ENDPOINT [--dir DATADIR | --server-key FILE] [--key KEYDIR]\n"
	"                    [--require-all] [--local] [--explain] [--no-pushdown]\n"
	"                    [same options] [SQL]\n\n"
	"With --node, the node asked coordinates: every publisher's node answers for\n"
	"its own data (columns and WHERE constraints pushed down, in parallel), a\n"
	"verified replica answers for a node that does not, and the result says when\n"
	"it is partial. --require-all makes a partial result an error; --local\n"
	"answers from the node's replicas only; --explain shows what went where.\n"
	"COUNT, SUM, TOTAL, AVG, MIN and MAX over GROUP BY columns are computed by\n"
	"each node when the query allows it (one row per group comes back);\n"
	"--no-pushdown streams every row to the node asked instead.\n\n"
	"Run one SQL SELECT (SQLite's dialect) over the datasets of DATADIR. Each\n"
	"dataset name is a table holding every publisher's rows, with the columns of\n"
	"its schema and _publisher, _seq, _hash, _head_size. With no SQL: an\n"
	"interactive shell on a terminal (.tables, .schema NAME, .format FMT, .quit),\n"
	"else the SQL is read from standard input.\n\n"
	"  --format FMT      table (default), csv, jsonl or geojson\n"
	"  --manifest FILE   write the query, its time and every signed head it read\n"
	"  --as-of MANIFEST  answer from exactly the heads an earlier manifest names\n"
	"                    (and its query, when no SQL is given)\n"
	"  --valid-at DATE   only rows in force on DATE (YYYY-MM-DD) in tables whose\n"
	"                    schema marks effective-from/until fields (x-valid), as\n"
	"                    address@2's 効力発生日 and 廃止日; other tables answer all rows\n"
	"  --timeout MS      stop a query after MS milliseconds (default 30000; 0: none)\n\n"
	"The heads that answered are listed on standard error. See docs/QUERY.md.\n";

struct query_args {
	const char *node, *server_key, *keydir;
	int require_all, local, explain;
	int no_pushdown;
	const char *dir;
	enum fmt_kind fmt;
	const char *manifest_out;
	const char *as_of;
	const char *valid_at;  /* YYYY-MM-DD, or NULL: every row */
	int64_t timeout_ms;
	const char *sql;
};

/* Where rows come from. exec runs sql and feeds out (fmt_begin once,
 * then fmt_row for each row), returning 0 or an error with *err (a
 * sentence the caller frees, or NULL); heads gives the signed heads the
 * last exec read (an array as qry_manifest() makes it). */
struct query_source {
	int (*exec)(void *ctx, const char *sql, struct fmt *out, char **err);
	int (*heads)(void *ctx, json_t **out);
	const char *answered_by;
	void *ctx;
	const int *partial;   /* set by exec when some publisher is missing (remote) */
};

/* ---- the local source: this data directory's store ---- */

struct local {
	struct store *st;
	struct qry_opts o;
	json_t *heads;        /* of the last exec */
	char why[512];
};

struct local_feed {
	struct fmt *out;
	int begun;
};

static int local_row(void *ctx, sqlite3_stmt *st)
{
	struct local_feed *lf = ctx;
	int rc;

	if (!lf->begun) {
		if ((rc = fmt_begin_stmt(lf->out, st)) < 0)
			return rc;
		lf->begun = 1;
	}
	return sqlite3_data_count(st) > 0 ? fmt_row_stmt(lf->out, st) : 0;
}

static int local_exec(void *ctx, const char *sql, struct fmt *out, char **err)
{
	struct local *l = ctx;
	struct qry *q = NULL;
	struct local_feed lf = { out, 0 };
	int rc;

	*err = NULL;
	json_decref(l->heads);
	l->heads = NULL;
	l->why[0] = '\0';
	/* A fresh snapshot for each statement: the shell sees new data. */
	if ((rc = qry_open(l->st, &l->o, &q)) < 0) {
		*err = strdup(l->why[0] ? l->why : mu_strerror(rc));
		/* With pinned heads, these say a head is not here. */
		return l->o.nasof > 0 && (rc == MU_E_USAGE || rc == MU_E_DENIED) ? -ENOENT : rc;
	}
	rc = qry_exec(q, sql, local_row, &lf, err);
	if (qry_manifest(q, &l->heads) < 0)
		l->heads = NULL;
	qry_close(&q);
	return rc;
}

static int local_heads(void *ctx, json_t **out)
{
	struct local *l = ctx;

	*out = l->heads ? json_incref(l->heads) : json_array();
	return *out ? 0 : -ENOMEM;
}

/* ---- output, summary and manifest, whatever the source ---- */

static void print_summary(const json_t *heads, uint64_t rows)
{
	static const char *const hdr[] = { "dataset", "head", "root", "signed" };
	struct cli_table *t;
	size_t i;
	json_t *h;

	fprintf(stderr, "%" PRIu64 " row%s", rows, rows == 1 ? "" : "s");
	if (json_array_size(heads) == 0) {
		fprintf(stderr, "; no dataset was read\n");
		return;
	}
	fprintf(stderr, ", answered from %zu signed head%s:\n", json_array_size(heads),
		json_array_size(heads) == 1 ? "" : "s");
	if ((t = cli_table_new(4, hdr)) == NULL)
		return;
	json_array_foreach(heads, i, h) {
		char size[32], root[17];
		const char *ds = json_string_value(json_object_get(h, "dataset"));
		snprintf(size, sizeof(size), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(json_object_get(h, "head_size")));
		snprintf(root, sizeof(root), "%s", json_string_value(json_object_get(h, "root")));
		const char *row[] = { ds, size, root, json_string_value(json_object_get(h, "head_time")) };
		cli_table_add(t, row);
	}
	cli_table_print(t, stderr);
	cli_table_free(&t);
}

/* Every head the run read must be the one the pinned manifest names:
 * same size is not enough, the root must agree too. */
static int check_pinned(const json_t *pinned, const json_t *heads)
{
	size_t i, j;
	json_t *h, *p;
	int bad = 0;

	json_array_foreach(heads, i, h) {
		const char *ds = json_string_value(json_object_get(h, "dataset"));
		json_array_foreach(pinned, j, p) {
			if (ds == NULL || !json_equal(json_object_get(p, "dataset"), json_object_get(h, "dataset")))
				continue;
			if (!json_equal(json_object_get(p, "root"), json_object_get(h, "root"))) {
				cli_error("query", "%s at size %" JSON_INTEGER_FORMAT " has root %s here, "
					  "the manifest names %s: the logs differ", ds,
					  json_integer_value(json_object_get(h, "head_size")),
					  json_string_value(json_object_get(h, "root")),
					  json_string_value(json_object_get(p, "root")));
				bad = 1;
			}
		}
	}
	return bad ? MU_E_ROOT : 0;
}

static int write_manifest(const char *path, const char *sql, const char *valid_at, const char *by,
			  uint64_t rows, json_t *heads, int complete)
{
	char when[32], *text;
	int64_t now = mu_now_us();
	json_t *m;
	FILE *f;
	int rc;

	mu_format_time(now, when, sizeof(when));
	m = json_pack("{s:i,s:s,s:s,s:I,s:s,s:I,s:b,s:O}", "musubi_manifest", MANIFEST_VERSION,
		      "query", sql, "time", when, "time_us", (json_int_t)now, "answered_by", by,
		      "rows", (json_int_t)rows, "complete", complete, "heads", heads);
	/* so that --as-of re-runs the query for the same day */
	if (m != NULL && valid_at != NULL)
		json_object_set_new(m, "valid_at", json_string(valid_at));
	if (m == NULL || (text = json_dumps(m, JSON_INDENT(2))) == NULL) {
		json_decref(m);
		return -ENOMEM;
	}
	if ((f = fopen(path, "w")) == NULL) {
		rc = -errno;
	} else {
		fprintf(f, "%s\n", text);
		rc = ferror(f) ? -EIO : 0;
		if (fclose(f) != 0 && rc == 0)
			rc = -errno;
	}
	free(text);
	json_decref(m);
	return rc;
}

static int exit_code(int rc)
{
	switch (rc) {
	case MU_E_USAGE:
		return EXIT_USAGE;
	case MU_E_DENIED:
	case MU_E_TIMEOUT:
	case MU_E_TOOBIG:
	case MU_E_ROOT:
	case -ENOENT:
		return EXIT_PROBLEM;
	default:
		return EXIT_FAILURE_;
	}
}

/* Run sql from src into stdout in a's format; summary to stderr; manifest
 * to a->manifest_out when asked; against pinned heads when pinned. */
static int run_query(const struct query_source *src, const char *sql, const struct query_args *a,
		     const json_t *pinned)
{
	struct fmt *f = NULL;
	json_t *heads = NULL;
	char *err = NULL;
	int rc;

	if ((rc = fmt_new(a->fmt, stdout, &f)) < 0)
		goto out;
	if ((rc = src->exec(src->ctx, sql, f, &err)) < 0) {
		if (err == NULL && rc == MU_E_USAGE && a->fmt == FMT_GEOJSON)
			cli_error("query", "%s", fmt_geojson_hint);
		else
			cli_error("query", "%s", err ? err : mu_strerror(rc));
		fmt_end(f);
		goto out;
	}
	if ((rc = fmt_end(f)) < 0) {
		cli_error("query", "cannot write the result: %s", mu_strerror(rc));
		goto out;
	}
	if (fmt_skipped(f) > 0)
		fprintf(stderr, "%" PRIu64 " row%s without valid coordinates left out of the GeoJSON\n",
			fmt_skipped(f), fmt_skipped(f) == 1 ? "" : "s");
	if ((rc = src->heads(src->ctx, &heads)) < 0)
		goto out;
	print_summary(heads, fmt_rows(f));
	if (pinned != NULL && (rc = check_pinned(pinned, heads)) < 0)
		goto out;
	if (a->manifest_out != NULL &&
	    (rc = write_manifest(a->manifest_out, sql, a->valid_at, src->answered_by, fmt_rows(f), heads,
				 src->partial == NULL || !*src->partial)) < 0)
		cli_error("query", "cannot write the manifest %s: %s", a->manifest_out, mu_strerror(rc));
out:
	free(err);
	json_decref(heads);
	fmt_destroy(&f);
	return rc;
}

/* ---- --as-of ---- */

struct pins {
	json_t *doc;
	json_t *heads;
	struct qry_asof *asof;
	size_t n;
};

static int load_pins(const char *path, struct pins *p)
{
	json_error_t jerr;
	size_t i;
	json_t *h;

	memset(p, 0, sizeof(*p));
	if ((p->doc = json_load_file(path, 0, &jerr)) == NULL) {
		cli_error("query", "%s: %s (line %d)", path, jerr.text, jerr.line);
		return MU_E_USAGE;
	}
	p->heads = json_object_get(p->doc, "heads");
	if (json_integer_value(json_object_get(p->doc, "musubi_manifest")) != MANIFEST_VERSION ||
	    !json_is_array(p->heads)) {
		cli_error("query", "%s is not a musubi query manifest (version %d)", path,
			  MANIFEST_VERSION);
		return MU_E_USAGE;
	}
	if ((p->asof = calloc(json_array_size(p->heads) + 1, sizeof(*p->asof))) == NULL)
		return -ENOMEM;
	json_array_foreach(p->heads, i, h) {
		const char *ds = json_string_value(json_object_get(h, "dataset"));
		json_int_t size = json_integer_value(json_object_get(h, "head_size"));
		if (ds == NULL || size <= 0) {
			cli_error("query", "%s: head %zu lacks a dataset or a size", path, i + 1);
			return MU_E_USAGE;
		}
		p->asof[p->n].dataset = ds;
		p->asof[p->n++].size = (uint64_t)size;
	}
	return 0;
}

static void pins_fini(struct pins *p)
{
	free(p->asof);
	json_decref(p->doc);
	memset(p, 0, sizeof(*p));
}

/* ---- the shell ---- */

static void shell_tables(struct local *l)
{
	static const char *const hdr[] = { "table", "publishers", "rows", "columns" };
	struct qry *q = NULL;
	json_t *cat = NULL, *t;
	struct cli_table *tab;
	size_t i, j;

	if (qry_open(l->st, &l->o, &q) < 0 || qry_tables(q, &cat) < 0) {
		cli_error("query", "cannot read the tables: %s", l->why);
		qry_close(&q);
		return;
	}
	tab = cli_table_new(4, hdr);
	json_array_foreach(cat, i, t) {
		char pubs[16], rows[32], cols[16];
		json_int_t total = 0;
		json_t *s;
		json_array_foreach(json_object_get(t, "sources"), j, s)
			total += json_integer_value(json_object_get(s, "rows"));
		snprintf(pubs, sizeof(pubs), "%zu", json_array_size(json_object_get(t, "sources")));
		snprintf(rows, sizeof(rows), "%" JSON_INTEGER_FORMAT, total);
		snprintf(cols, sizeof(cols), "%zu", json_array_size(json_object_get(t, "columns")));
		const char *row[] = { json_string_value(json_object_get(t, "table")), pubs, rows, cols };
		cli_table_add(tab, row);
	}
	cli_table_print(tab, stdout);
	cli_table_free(&tab);
	json_decref(cat);
	qry_close(&q);
}

static void shell_schema(struct local *l, const char *name)
{
	static const char *const chdr[] = { "column", "type" };
	static const char *const shdr[] = { "dataset", "head", "rows" };
	struct qry *q = NULL;
	json_t *cat = NULL, *t, *e;
	size_t i, j;

	if (qry_open(l->st, &l->o, &q) < 0 || qry_tables(q, &cat) < 0) {
		cli_error("query", "cannot read the tables: %s", l->why);
		qry_close(&q);
		return;
	}
	json_array_foreach(cat, i, t) {
		if (strcmp(json_string_value(json_object_get(t, "table")), name) != 0)
			continue;
		struct cli_table *ct = cli_table_new(2, chdr), *st = cli_table_new(3, shdr);
		json_array_foreach(json_object_get(t, "columns"), j, e) {
			const char *row[] = { json_string_value(json_object_get(e, "name")),
					      json_string_value(json_object_get(e, "type")) };
			cli_table_add(ct, row);
		}
		json_array_foreach(json_object_get(t, "sources"), j, e) {
			char size[32], rows[32];
			snprintf(size, sizeof(size), "%" JSON_INTEGER_FORMAT,
				 json_integer_value(json_object_get(e, "head_size")));
			snprintf(rows, sizeof(rows), "%" JSON_INTEGER_FORMAT,
				 json_integer_value(json_object_get(e, "rows")));
			const char *row[] = { json_string_value(json_object_get(e, "dataset")), size, rows };
			cli_table_add(st, row);
		}
		cli_table_print(ct, stdout);
		putchar('\n');
		cli_table_print(st, stdout);
		cli_table_free(&ct);
		cli_table_free(&st);
		break;
	}
	if (i == json_array_size(cat))
		printf("no table %s (.tables lists them)\n", name);
	json_decref(cat);
	qry_close(&q);
}

static const char shell_help[] =
	".tables          the tables: publishers, rows, columns\n"
	".schema NAME     a table's columns and the datasets it unites\n"
	".format FMT      table, csv, jsonl or geojson\n"
	".quit            leave (so does Ctrl-D)\n"
	"Anything else is SQL, run when a line ends the statement with ';'.\n";

/* A dot command; returns 1 to leave the shell. */
static int shell_command(struct local *l, struct query_args *a, char *line)
{
	char *cmd = strtok(line, " \t"), *arg = strtok(NULL, " \t");

	if (strcmp(cmd, ".quit") == 0 || strcmp(cmd, ".exit") == 0)
		return 1;
	if (strcmp(cmd, ".tables") == 0)
		shell_tables(l);
	else if (strcmp(cmd, ".schema") == 0 && arg != NULL)
		shell_schema(l, arg);
	else if (strcmp(cmd, ".format") == 0 && arg != NULL && fmt_kind_parse(arg, &a->fmt) == 0)
		;
	else
		fputs(shell_help, stdout);
	return 0;
}

static int shell(const struct query_source *src, struct local *l, struct query_args *a)
{
	char history[PATH_MAX] = "", *line, *stmt = NULL;
	const char *home = getenv("HOME");
	size_t len = 0;

	if (home != NULL && snprintf(history, sizeof(history), "%s/.musubi_history", home) <
				    (int)sizeof(history))
		read_history(history);
	stifle_history(1000);
	printf("musubi query on %s: SQL ending with ';', or .help\n", a->dir);
	while ((line = readline(stmt ? "   ...> " : "musubi> ")) != NULL) {
		if (stmt == NULL && line[0] == '.') {
			add_history(line);
			int quit = shell_command(l, a, line);
			free(line);
			if (quit)
				break;
			continue;
		}
		char *grown = realloc(stmt, len + strlen(line) + 2);
		if (grown == NULL) {
			free(line);
			break;
		}
		stmt = grown;
		len += (size_t)sprintf(stmt + len, "%s%s", len ? "\n" : "", line);
		free(line);
		if (!sqlite3_complete(stmt))
			continue;
		if (strspn(stmt, " \t\n;") < len) {
			add_history(stmt);
			run_query(src, stmt, a, NULL);
		}
		free(stmt);
		stmt = NULL;
		len = 0;
	}
	free(stmt);
	if (history[0] != '\0')
		write_history(history);
	return EXIT_OK;
}

/* ---- the command ---- */

static int parse_args(int argc, char **argv, struct query_args *a)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "format", required_argument, NULL, 'f' },
		{ "manifest", required_argument, NULL, 'm' },
		{ "as-of", required_argument, NULL, 'a' },
		{ "timeout", required_argument, NULL, 't' },
		{ "node", required_argument, NULL, 'n' },
		{ "server-key", required_argument, NULL, 'S' },
		{ "key", required_argument, NULL, 'k' },
		{ "require-all", no_argument, NULL, 'R' },
		{ "local", no_argument, NULL, 'L' },
		{ "explain", no_argument, NULL, 'E' },
		{ "no-pushdown", no_argument, NULL, 'P' },
		{ "valid-at", required_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "d:", opts, NULL)) != -1) {
		switch (c) {
		case 'd': a->dir = optarg; break;
		case 'm': a->manifest_out = optarg; break;
		case 'a': a->as_of = optarg; break;
		case 'n': a->node = optarg; break;
		case 'S': a->server_key = optarg; break;
		case 'k': a->keydir = optarg; break;
		case 'R': a->require_all = 1; break;
		case 'L': a->local = 1; break;
		case 'E': a->explain = 1; break;
		case 'P': a->no_pushdown = 1; break;
		case 'V': {
			/* Dates compare as their canonical text: only YYYY-MM-DD will do. */
			struct tm tm = { 0 };
			const char *e = strptime(optarg, "%Y-%m-%d", &tm);
			if (e == NULL || *e != '\0' || strlen(optarg) != 10) {
				cli_error("query", "--valid-at %s: a date as YYYY-MM-DD", optarg);
				return -1;
			}
			a->valid_at = optarg;
			break;
		}
		case 'f':
			if (fmt_kind_parse(optarg, &a->fmt) < 0) {
				cli_error("query", "--format %s: use table, csv, jsonl or geojson", optarg);
				return -1;
			}
			break;
		case 't':
			a->timeout_ms = strtoll(optarg, &end, 10);
			if (*end != '\0' || a->timeout_ms < 0) {
				cli_error("query", "--timeout %s: a number of milliseconds", optarg);
				return -1;
			}
			break;
		default:
			return -1;
		}
	}
	if (optind < argc)
		a->sql = argv[optind++];
	return (a->dir == NULL && a->node == NULL) || optind != argc ? -1 : 0;
}

/* All of standard input, as the SQL. */
static char *read_stdin(void)
{
	char *buf = NULL;
	size_t cap = 0, len = 0, n;

	do {
		if (len + 4096 > cap) {
			char *grown = realloc(buf, cap = cap * 2 + 4096);
			if (grown == NULL) {
				free(buf);
				return NULL;
			}
			buf = grown;
		}
		n = fread(buf + len, 1, cap - len - 1, stdin);
		len += n;
	} while (n > 0 && len < QRY_MAX_SQL + 1);
	buf[len] = '\0';
	return buf;
}

/* ---- the remote source: a node coordinates the federation ---- */

struct remote {
	struct client *c;
	const struct query_args *a;
	char *as_of_text;     /* the manifest --as-of names, sent as it is */
	json_t *heads;        /* the manifest's sources */
	int partial;
};

static int remote_exec(void *ctx, const char *sql, struct fmt *out, char **err)
{
	struct remote *r = ctx;
	Musubi__Query q = MUSUBI__QUERY__INIT;
	Musubi__QueryResult *res = NULL;
	struct wire_msg reply;
	char why[512];
	int rc;

	*err = NULL;
	json_decref(r->heads);
	r->heads = NULL;
	q.sql = (char *)sql;
	q.timeout_ms = r->a->timeout_ms > 0 && r->a->timeout_ms < 600000 ? (uint32_t)r->a->timeout_ms / 2 : 5000;
	q.require_all = r->a->require_all;
	q.local = r->a->local;
	q.explain = r->a->explain;
	q.no_pushdown = r->a->no_pushdown;
	q.as_of = r->as_of_text;
	q.valid_at = (char *)r->a->valid_at;
	rc = client_call(r->c, MUSUBI__MSG_TYPE__MSG_QUERY, &q.base,
			 (int)(r->a->timeout_ms > 0 ? r->a->timeout_ms : 600000), &reply, why, sizeof(why));
	if (rc < 0) {
		*err = strdup(why[0] ? why : mu_strerror(rc));
		return rc == MU_E_PROTO ? MU_E_USAGE : rc;
	}
	res = musubi__query_result__unpack(NULL, reply.env->payload.len, reply.env->payload.data);
	wire_msg_fini(&reply);
	if (res == NULL) {
		*err = strdup("the node sent a result that does not decode");
		return MU_E_PROTO;
	}
	const char **names = calloc(res->n_columns + 1, sizeof(*names));
	const char **types = calloc(res->n_columns + 1, sizeof(*types));
	struct fmt_cell *cells = calloc(res->n_columns + 1, sizeof(*cells));
	if (names == NULL || types == NULL || cells == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < res->n_columns; i++) {
		names[i] = res->columns[i]->name;
		types[i] = res->columns[i]->decltype;
	}
	if ((rc = fmt_begin(out, res->n_columns, names, types)) < 0)
		goto out;
	for (size_t i = 0; i < res->n_rows && rc == 0; i++) {
		struct rec_row *row = NULL;
		if ((rc = rec_row_decode(res->rows[i].data, res->rows[i].len, &row)) < 0)
			break;
		for (size_t k = 0; k < res->n_columns; k++) {
			const struct mu_value *v = k < row->n ? &row->values[k] : NULL;
			memset(&cells[k], 0, sizeof(cells[k]));
			if (v == NULL || v->kind == MU_VAL_NULL) {
				cells[k].type = FMT_NULL;
			} else if (v->kind == MU_VAL_INT || v->kind == MU_VAL_BOOL) {
				cells[k].type = FMT_INT;
				cells[k].i = v->i;
			} else if (v->kind == MU_VAL_NUM) {
				cells[k].type = FMT_REAL;
				cells[k].d = v->d;
			} else {
				cells[k].type = FMT_TEXT;
				cells[k].s = v->text;
				cells[k].len = v->len;
			}
		}
		rc = fmt_row(out, cells);
		rec_row_free(&row);
	}
	json_t *m = json_loads(res->manifest, 0, NULL);
	r->heads = json_incref(json_object_get(m, "sources"));
	r->partial = res->partial;
	if (res->partial) {
		size_t i;
		json_t *f;
		fprintf(stderr, "PARTIAL RESULT: these publishers did not answer and no replica "
			"answered for them:\n");
		json_array_foreach(json_object_get(m, "failures"), i, f)
			fprintf(stderr, "  %s of %s (%s): %s\n",
				json_string_value(json_object_get(f, "table")),
				json_string_value(json_object_get(f, "publisher")),
				json_string_value(json_object_get(f, "node")),
				json_string_value(json_object_get(f, "reason")));
	}
	size_t i;
	json_t *s;
	json_array_foreach(r->heads, i, s)
		if (strcmp(json_string_value(json_object_get(s, "source")) ?: "", "replica") == 0)
			fprintf(stderr, "%s of %s: answered by %s from a verified replica\n",
				json_string_value(json_object_get(s, "table")),
				json_string_value(json_object_get(s, "publisher")),
				json_string_value(json_object_get(s, "answered_by")));
	json_decref(m);
	if (r->a->explain && res->explain)
		fprintf(stderr, "plan (SQLite joins, aggregates and orders at the coordinator):\n%s",
			res->explain);
out:
	free(names);
	free(types);
	free(cells);
	musubi__query_result__free_unpacked(res, NULL);
	return rc;
}

static int remote_heads(void *ctx, json_t **out)
{
	struct remote *r = ctx;

	*out = r->heads ? json_incref(r->heads) : json_array();
	return *out ? 0 : -ENOMEM;
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && n < (1 << 24) &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = calloc(1, (size_t)n + 1)) != NULL &&
	    fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

static int query_remote(struct query_args *a)
{
	struct cli_node o = { .endpoint = a->node, .server_key = a->server_key, .dir = a->dir,
			      .keydir = a->keydir };
	struct remote r = { .a = a };
	struct pins pins = { 0 };
	const char *sql = a->sql;
	char *input = NULL;
	int rc, ret = EXIT_FAILURE_;

	if (a->as_of != NULL) {
		if ((rc = load_pins(a->as_of, &pins)) < 0 || (r.as_of_text = read_file(a->as_of)) == NULL) {
			ret = EXIT_USAGE;
			goto out;
		}
		if (sql == NULL)
			sql = json_string_value(json_object_get(pins.doc, "query"));
		if (a->valid_at == NULL)
			a->valid_at = json_string_value(json_object_get(pins.doc, "valid_at"));
	}
	if (sql == NULL && (sql = input = read_stdin()) == NULL) {
		cli_error("query", "cannot read the SQL from standard input");
		goto out;
	}
	if (cli_node_connect("query", &o, &r.c) < 0)
		goto out;
	struct query_source src = { remote_exec, remote_heads, a->node, &r, &r.partial };
	rc = run_query(&src, sql, a, pins.heads);
	ret = rc < 0 ? exit_code(rc) : EXIT_OK;
out:
	client_close(&r.c);
	json_decref(r.heads);
	free(r.as_of_text);
	free(input);
	pins_fini(&pins);
	return ret;
}

int cmd_query(int argc, char **argv)
{
	struct query_args a = { .fmt = FMT_TABLE, .timeout_ms = DEFAULT_TIMEOUT_MS };
	struct local l = { 0 };
	struct pins pins = { 0 };
	struct store_txn t;
	char member[64] = "?", *input = NULL;
	const char *sql;
	int rc, ret = EXIT_FAILURE_;

	if (cli_wants_help(argc, argv, query_usage))
		return EXIT_OK;
	if (parse_args(argc, argv, &a) < 0) {
		fputs(query_usage, stderr);
		return EXIT_USAGE;
	}
	if (a.node != NULL)
		return query_remote(&a);
	if ((rc = store_open(a.dir, STORE_RDONLY, &l.st)) < 0) {
		cli_error("query", "cannot open the store in %s: %s", a.dir, mu_strerror(rc));
		return EXIT_FAILURE_;
	}
	if (store_read_begin(l.st, &t) == 0) {
		store_member(&t, member, sizeof(member));
		store_read_end(&t);
	}
	l.o = (struct qry_opts){ .max_ms = a.timeout_ms, .max_heap_bytes = DEFAULT_MAX_HEAP,
				 .members_view = 1, .why = l.why, .whylen = sizeof(l.why) };
	if (a.as_of != NULL) {
		if ((rc = load_pins(a.as_of, &pins)) < 0) {
			ret = exit_code(rc);
			goto out;
		}
		l.o.asof = pins.asof;
		l.o.nasof = pins.n;
		if (a.valid_at == NULL)
			a.valid_at = json_string_value(json_object_get(pins.doc, "valid_at"));
	}
	l.o.valid_at = a.valid_at;
	struct query_source src = { local_exec, local_heads, member, &l, NULL };
	sql = a.sql;
	if (sql == NULL && pins.doc != NULL)
		sql = json_string_value(json_object_get(pins.doc, "query"));
	if (sql == NULL && isatty(STDIN_FILENO)) {
		ret = shell(&src, &l, &a);
		goto out;
	}
	if (sql == NULL && (sql = input = read_stdin()) == NULL) {
		cli_error("query", "cannot read the SQL from standard input");
		goto out;
	}
	rc = run_query(&src, sql, &a, pins.heads);
	ret = rc < 0 ? exit_code(rc) : EXIT_OK;
out:
	free(input);
	pins_fini(&pins);
	json_decref(l.heads);
	store_close(&l.st);
	return ret;
}
