/*
 * qry.c - SQLite virtual tables over the store's state (see qry.h).
 *
 * qry_open() gathers, in one read transaction, every dataset the options
 * let the caller see, groups them by name into tables, unions their schema
 * fields into columns and registers one virtual table per name. A cursor
 * walks the table's sources (one per publisher) in turn; within a source it
 * reads the state index (or an in-memory fold of the log for as-of heads)
 * by scan, key lookup, key range, entry seq or an automatic index, and
 * decodes an entry only when SQLite asks for a column that needs it. In
 * log order (P_LOG) it instead merges the sources' logs by seq.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "head.h"
#include "merkle.h"
#include "mu_err.h"
#include "qry.h"
#include "redact.h"
#include "rec.h"
#include "schema.h"
#include "sig.h"
#include "util.h"

#define MAX_VERSIONS 256      /* schema versions looked up per dataset */
#define FOLD_CHECK_EVERY 1024 /* entries between deadline checks in a fold */
#define AUTOIDX_MAX_ROWS 2000000  /* larger sources are scanned, not indexed */

/* Provenance columns follow the data columns, in this order. */
enum { PROV_PUBLISHER, PROV_SEQ, PROV_HASH, PROV_HEAD_SIZE, NPROV };
static const char *const prov_names[NPROV] = { "_publisher", "_seq", "_hash", "_head_size" };
static const char *const prov_types[NPROV] = { "TEXT", "INTEGER", "TEXT", "INTEGER" };

/* Column classes: how SQLite compares the column, and how a key of that
 * type is written in the state index. */
enum cls { CLS_NONE = 0, CLS_TEXT, CLS_INT, CLS_REAL, CLS_GEO };

/* One schema version rows of a table may use. */
struct variant {
	char *ref;                 /* "id@version" */
	struct schema *s;          /* the schema cache's when shared, else ours */
	int shared;
	int *col;                  /* field index -> table column, or -1 */
};

/* The key of each live row of a log's first `size` entries, sorted by
 * key bytes (BINARY collation order). */
struct fold_row {
	size_t off, len;           /* the key in keys */
	uint64_t seq;
};
struct fold {
	uint8_t *keys;
	struct fold_row *rows;
	size_t n;
};

/* An equality index on one column of one source, built on a statement's
 * second lookup of that column (SQLite's automatic index, for a virtual
 * table): the column's values as keys (text bytes, or a number's double),
 * sorted, each with the seq of its row. */
struct autoidx {
	int col;
	struct fold ix;
	struct autoidx *next;
};

/* One publisher's dataset within a table. */
struct source {
	char *dataset, *publisher;
	uint32_t lid;
	uint64_t size;             /* the signed head the answer is read at */
	uint64_t rows;             /* estimate, for the planner */
	int from_state;            /* size is the whole log: read the state index */
	uint8_t root[32];
	int64_t head_time_us;
	char *schema_ref;          /* the dataset's current "id@version" */
	char *pk_name;             /* its one-field primary key, or NULL */
	int pk_col;                /* table column of that key, or -1 */
	enum cls pk_cls;           /* CLS_TEXT or CLS_INT when indexable */
	unsigned char *has_col;    /* some version of its schema has the column */
	char *broken;              /* why it cannot be read, or NULL */
	int left_out;              /* pinned out: gives columns, never rows */
	struct fold *fold;         /* as-of: built on first use */
	struct autoidx *aidx;      /* built on first use, per column */
	int touched;
};

struct table {
	char *name;
	size_t ncols;              /* data columns; provenance follows */
	char **cols;
	enum cls *cls;
	struct source *src;
	size_t nsrc;
	struct variant *var;
	size_t nvar;
	int valid_col[2];          /* columns marked x-valid from / until, or -1 */
	size_t last_var;           /* the variant of the last row decoded */
	struct qry *q;
};

struct qry {
	struct store *st;
	struct store_txn t;
	sqlite3 *db;
	struct table *tab;
	size_t ntab;
	int64_t max_ms, max_heap;
	int64_t deadline_us;       /* 0: none */
	int timed_out;
	int vt_rc;                 /* a musubi error a virtual table met */
	char *valid_at;            /* qry_opts.valid_at, or NULL */
};

struct vtab {
	sqlite3_vtab base;
	struct table *tab;
};

enum mode { M_CLOSED = 0, M_EMPTY, M_ONE, M_STATE, M_LIST };
enum plan { P_PUB = 1, P_KEY = 2, P_SEQ = 4, P_LO = 8, P_HI = 16, P_LOG = 32, P_SEQLO = 64,
	    P_SEQHI = 128 };

/* P_LOG: one source's next live row in log order, decoded. */
struct logpos {
	uint64_t next;             /* the next seq to look at */
	int have, done;            /* ent holds the live row at next; no more */
	struct rec_entry_decoded *ent;   /* NULL or &ent_mem, decoded into arena */
	struct rec_entry_decoded ent_mem;
	struct rec_arena arena;
	struct store_iter it;      /* the entries from next on, once begun */
};

/* A numeric operand: an integer, or a real. */
struct nbound {
	int set, isint;
	int64_t i;
	double d;
};

struct cursor {
	sqlite3_vtab_cursor base;
	struct table *tab;
	/* the constraints of this scan */
	char *pub;                 /* P_PUB with a text argument */
	int key_col;
	sqlite3_value *key;        /* P_KEY argument */
	int key_uses, last_key_col;   /* xFilter calls in a row with P_KEY on one column */
	int has_seq;
	uint64_t seq;
	char *lo, *hi;             /* text bounds, inclusive (SQLite re-checks) */
	size_t lolen, hilen;
	struct nbound nlo, nhi;    /* numeric bounds, inclusive, for integer keys */
	int nrange;                /* the open source filters its keys by them */
	int log;                   /* P_LOG: rows in _seq order, merged over sources */
	uint64_t slo, shi;         /* its _seq range, inclusive */
	struct logpos *lp;         /* one per source */
	int empty;                 /* no row can match */
	/* position */
	size_t isrc;
	enum mode mode;
	struct store_iter it;
	int it_end, tail, pending;
	const uint8_t *pkey;
	size_t pklen;
	uint64_t pseq;
	const struct fold *list;   /* M_LIST: rows fpos..fend of a fold or index */
	size_t fpos, fend;
	int eof;
	/* the current row, decoded on demand; ent and row point to ent_mem
	 * and row_mem (decoded into the arenas, reused row after row, no
	 * malloc per field) or to a logpos's ent_mem */
	uint64_t row_seq;
	int loaded;
	struct rec_entry_decoded *ent;
	struct rec_row *row;
	const struct mu_value **vals;
	struct rec_entry_decoded ent_mem;
	struct rec_row row_mem;
	struct rec_arena ent_arena, row_arena;
};

static void set_why(const struct qry_opts *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void set_why(const struct qry_opts *o, const char *fmt, ...)
{
	va_list ap;

	if (o->why == NULL || o->whylen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(o->why, o->whylen, fmt, ap);
	va_end(ap);
}

static int vt_error(sqlite3_vtab *vt, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int vt_error(sqlite3_vtab *vt, const char *fmt, ...)
{
	va_list ap;

	sqlite3_free(vt->zErrMsg);
	va_start(ap, fmt);
	vt->zErrMsg = sqlite3_vmprintf(fmt, ap);
	va_end(ap);
	return SQLITE_ERROR;
}

/* A musubi error met inside a virtual table: keep the code for qry_exec. */
static int vt_fail(struct cursor *c, int rc, const char *what)
{
	struct qry *q = c->tab->q;

	if (rc == MU_E_TIMEOUT) {
		q->timed_out = 1;
		return SQLITE_INTERRUPT;
	}
	q->vt_rc = rc;
	return vt_error(c->base.pVtab, "%s: %s", what, mu_strerror(rc));
}

static int over_time(struct qry *q)
{
	if (q->deadline_us != 0 && mu_mono_us() > q->deadline_us)
		q->timed_out = 1;
	return q->timed_out;
}

static enum cls type_cls(enum schema_type t)
{
	switch (t) {
	case SCHEMA_INTEGER:
	case SCHEMA_YEAR:
	case SCHEMA_BOOLEAN:
		return CLS_INT;
	case SCHEMA_NUMBER:
		return CLS_REAL;
	case SCHEMA_GEOPOINT:
		return CLS_GEO;
	default:
		return CLS_TEXT;
	}
}

static const char *cls_decl(enum cls c)
{
	switch (c) {
	case CLS_TEXT: return "TEXT";
	case CLS_INT: return "INTEGER";
	case CLS_REAL: return "REAL";
	case CLS_GEO: return QRY_DECLTYPE_GEOPOINT;
	default: return "";
	}
}

/* ---- building the tables ---- */

/* The Table Schema of ref: as the store holds it, else a built-in one (only
 * for plain ids, so a hostile ref never names a file, and only when its
 * digest is the one the dataset records, when that is known). */
/*
 * Parsed schemas of stores, shared by every qry of the process: parsing
 * is a good part of a small query's cost (a federated lookup opens a qry
 * on every node). An entry is found by its reference and its exact JSON
 * bytes, so a schema stored anew under the same reference is parsed
 * anew. Entries are never changed or freed once made (qry only reads a
 * schema); past SCHEMA_CACHE_MAX, schemas are parsed for each qry.
 */
#define SCHEMA_CACHE_MAX 64

static struct schema_cached {
	char *ref;
	uint8_t *json;
	size_t len;
	struct schema *s;
} schema_cache[SCHEMA_CACHE_MAX];
static size_t schema_cache_n;
static pthread_mutex_t schema_cache_lock = PTHREAD_MUTEX_INITIALIZER;

/* The schema of json under ref: *shared 1 when the cache holds it (never
 * destroy it), 0 when it is the caller's. */
static int schema_parse_cached(const char *ref, const uint8_t *json, size_t len,
			       struct schema **out, int *shared)
{
	struct schema_cached *c;
	int rc;

	*shared = 0;
	pthread_mutex_lock(&schema_cache_lock);
	for (size_t i = 0; i < schema_cache_n; i++) {
		c = &schema_cache[i];
		if (c->len == len && strcmp(c->ref, ref) == 0 && memcmp(c->json, json, len) == 0) {
			*out = c->s;
			*shared = 1;
			pthread_mutex_unlock(&schema_cache_lock);
			return 0;
		}
	}
	rc = schema_parse((const char *)json, len, out, NULL);
	if (rc == 0 && schema_cache_n < SCHEMA_CACHE_MAX) {
		c = &schema_cache[schema_cache_n];
		if ((c->ref = strdup(ref)) != NULL && (c->json = malloc(len ? len : 1)) != NULL) {
			memcpy(c->json, json, len);
			c->len = len;
			c->s = *out;
			schema_cache_n++;
			*shared = 1;
		} else {
			free(c->ref);
			c->ref = NULL;
		}
	}
	pthread_mutex_unlock(&schema_cache_lock);
	return rc;
}

static int load_schema(struct qry *q, const char *ref, const uint8_t *digest, struct schema **out,
		       int *shared)
{
	const uint8_t *json;
	size_t len;
	char id[160];
	const char *at = strrchr(ref, '@');
	int rc;

	*out = NULL;
	*shared = 0;
	if ((rc = store_schema_get(&q->t, ref, &json, &len)) == 0)
		return schema_parse_cached(ref, json, len, out, shared);
	if (rc != -ENOENT)
		return rc;
	if (at == NULL || (size_t)(at - ref) >= sizeof(id))
		return -ENOENT;
	memcpy(id, ref, (size_t)(at - ref));
	id[at - ref] = '\0';
	if (!mu_valid_dataset_name(id) || schema_resolve(ref, out, NULL) < 0)
		return -ENOENT;
	if (digest != NULL && memcmp((*out)->digest, digest, 32) != 0) {
		schema_destroy(out);
		return -ENOENT;
	}
	return 0;
}

static long find_col(const struct table *t, const char *name)
{
	for (size_t i = 0; i < t->ncols; i++)
		if (sqlite3_stricmp(t->cols[i], name) == 0)
			return (long)i;
	return -1;
}

/* Map a variant's fields onto the table's columns. */
static int map_variant(struct table *t, struct variant *v)
{
	if ((v->col = calloc(v->s->nfields ? v->s->nfields : 1, sizeof(*v->col))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < v->s->nfields; i++)
		v->col[i] = (int)find_col(t, v->s->fields[i].name);
	return 0;
}

static struct variant *find_variant(struct table *t, const char *ref)
{
	for (size_t i = 0; i < t->nvar; i++)
		if (strcmp(t->var[i].ref, ref) == 0)
			return &t->var[i];
	return NULL;
}

/* Add ref to t's variants (once). 0, -ENOENT when no schema is found. */
static int add_variant(struct qry *q, struct table *t, const char *ref, const uint8_t *digest,
		       struct variant **out)
{
	struct variant *v = find_variant(t, ref), *grown;
	struct schema *s = NULL;
	int rc, shared = 0;

	if (v != NULL) {
		*out = v;
		return 0;
	}
	if ((rc = load_schema(q, ref, digest, &s, &shared)) < 0)
		return rc;
	if ((grown = realloc(t->var, (t->nvar + 1) * sizeof(*grown))) == NULL) {
		if (!shared)
			schema_destroy(&s);
		return -ENOMEM;
	}
	t->var = grown;
	v = &t->var[t->nvar];
	memset(v, 0, sizeof(*v));
	if ((v->ref = strdup(ref)) == NULL) {
		if (!shared)
			schema_destroy(&s);
		return -ENOMEM;
	}
	v->s = s;
	v->shared = shared;
	t->nvar++;
	*out = v;
	return 0;
}

static struct table *get_table(struct qry *q, const char *name)
{
	struct table *grown;

	for (size_t i = 0; i < q->ntab; i++)
		if (strcmp(q->tab[i].name, name) == 0)
			return &q->tab[i];
	if ((grown = realloc(q->tab, (q->ntab + 1) * sizeof(*grown))) == NULL)
		return NULL;
	q->tab = grown;
	memset(&q->tab[q->ntab], 0, sizeof(q->tab[0]));
	if ((q->tab[q->ntab].name = strdup(name)) == NULL)
		return NULL;
	q->tab[q->ntab].q = q;
	return &q->tab[q->ntab++];
}

static int listed(const char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], s) == 0)
			return 1;
	return 0;
}

/* The head at s->size: root and time (read, not re-verified: only
 * verified heads are ever stored). */
static int read_head(struct qry *q, struct source *s)
{
	struct head_signed hs;
	const uint8_t *buf;
	size_t len;
	int rc;

	if ((rc = store_head_get(&q->t, s->lid, s->size, &buf, &len)) < 0)
		return rc;
	if ((rc = head_decode(buf, len, &hs)) < 0)
		return rc;
	memcpy(s->root, hs.hd->h.root, 32);
	s->head_time_us = hs.hd->h.time_us;
	head_signed_fini(&hs);
	return 0;
}

/* Add dataset ds as a source of its table, if the options let it in. */
static int add_source(struct qry *q, const struct qry_opts *o, struct store_dataset *ds,
		      unsigned char *asof_seen)
{
	const char *slash = strchr(ds->name, '/');
	const struct qry_asof *pin = NULL;
	struct source *s, *grown;
	struct table *t;
	uint64_t size = ds->head_size;
	int left_out = 0, rc;

	for (size_t i = 0; i < o->nasof; i++)
		if (strcmp(o->asof[i].dataset, ds->name) == 0) {
			pin = &o->asof[i];
			asof_seen[i] = 1;
		}
	if (slash == NULL || ds->publisher == NULL || ds->schema_id == NULL)
		return 0;
	if ((ds->members_only && !o->members_view) ||
	    (o->nonly > 0 && !listed(o->only_publishers, o->nonly, ds->publisher))) {
		if (pin != NULL) {
			set_why(o, "dataset %s is not readable here", ds->name);
			return MU_E_DENIED;
		}
		return 0;
	}
	if (o->nasof > 0 && pin != NULL)
		size = pin->size;
	else if (o->nasof > 0)
		left_out = 1;   /* the table keeps its columns */
	if (size == 0)
		return 0;   /* nothing signed yet */
	if (size > ds->size) {
		set_why(o, "this node holds %" PRIu64 " entries of %s, not %" PRIu64, ds->size,
			ds->name, size);
		return MU_E_USAGE;
	}
	if ((t = get_table(q, slash + 1)) == NULL)
		return -ENOMEM;
	if ((grown = realloc(t->src, (t->nsrc + 1) * sizeof(*grown))) == NULL)
		return -ENOMEM;
	t->src = grown;
	s = &t->src[t->nsrc++];
	memset(s, 0, sizeof(*s));
	s->lid = ds->local_id;
	s->size = size;
	s->from_state = size == ds->size;
	s->rows = left_out ? 0 : ds->rows;
	s->left_out = left_out;
	s->pk_col = -1;
	if ((s->dataset = strdup(ds->name)) == NULL || (s->publisher = strdup(ds->publisher)) == NULL ||
	    asprintf(&s->schema_ref, "%s@%u", ds->schema_id, ds->schema_version) < 0) {
		s->schema_ref = NULL;
		return -ENOMEM;
	}
	if (!left_out && (rc = read_head(q, s)) < 0) {
		if (rc == -ENOENT) {
			set_why(o, "%s has no signed head at size %" PRIu64, ds->name, size);
			return MU_E_USAGE;
		}
		return rc;
	}
	/* Every version up to the current one the store knows: the union of
	 * their fields makes the columns. */
	unsigned first = ds->schema_version > MAX_VERSIONS ? ds->schema_version - MAX_VERSIONS + 1 : 1;
	for (unsigned v = first; v <= ds->schema_version; v++) {
		char ref[200];
		struct variant *var;
		int cur = v == ds->schema_version;
		snprintf(ref, sizeof(ref), "%s@%u", ds->schema_id, v);
		rc = add_variant(q, t, ref, cur ? ds->schema_digest : NULL, &var);
		if (rc == -ENOENT && cur) {
			if (asprintf(&s->broken, "dataset %s uses schema %s, which this node does not "
				     "hold", ds->name, ref) < 0)
				s->broken = NULL;
		} else if (rc < 0 && rc != -ENOENT) {
			return rc;
		} else if (rc == 0 && cur && var->s->npk == 1) {
			const struct schema_field *f = &var->s->fields[var->s->pk[0]];
			enum cls c = type_cls(f->type);
			/* Keys the index orders or finds as SQLite compares
			 * them: text, and integers by their canonical text. */
			if (c == CLS_TEXT || c == CLS_GEO || (c == CLS_INT && f->type != SCHEMA_BOOLEAN)) {
				if ((s->pk_name = strdup(f->name)) == NULL)
					return -ENOMEM;
				s->pk_cls = c == CLS_INT ? CLS_INT : CLS_TEXT;
			}
		}
	}
	return 0;
}

/* Columns: the union of every variant's fields, in first-seen order. */
static int build_columns(struct table *t)
{
	for (size_t v = 0; v < t->nvar; v++) {
		const struct schema *s = t->var[v].s;
		for (size_t i = 0; i < s->nfields; i++) {
			enum cls c = type_cls(s->fields[i].type);
			long at = find_col(t, s->fields[i].name);
			if (at >= 0) {
				enum cls *have = &t->cls[at];
				if (*have != c)
					*have = (*have == CLS_INT && c == CLS_REAL) ||
						(*have == CLS_REAL && c == CLS_INT) ? CLS_REAL : CLS_NONE;
				continue;
			}
			char **cols = realloc(t->cols, (t->ncols + 1) * sizeof(*cols));
			enum cls *cls = cols ? realloc(t->cls, (t->ncols + 1) * sizeof(*cls)) : NULL;
			if (cols)
				t->cols = cols;
			if (cls == NULL)
				return -ENOMEM;
			t->cls = cls;
			if ((t->cols[t->ncols] = strdup(s->fields[i].name)) == NULL)
				return -ENOMEM;
			t->cls[t->ncols++] = c;
		}
	}
	for (size_t v = 0; v < t->nvar; v++)
		if (map_variant(t, &t->var[v]) < 0)
			return -ENOMEM;
	t->valid_col[0] = t->valid_col[1] = -1;
	for (size_t v = 0; v < t->nvar; v++)
		for (size_t f = 0; f < t->var[v].s->nfields; f++) {
			int kind = t->var[v].s->fields[f].valid;
			if (kind != SCHEMA_VALID_NONE && t->var[v].col[f] >= 0)
				t->valid_col[kind == SCHEMA_VALID_UNTIL] = t->var[v].col[f];
		}
	for (size_t i = 0; i < t->nsrc; i++) {
		struct source *s = &t->src[i];
		const char *at = strrchr(s->schema_ref, '@');
		size_t idlen = (size_t)(at - s->schema_ref) + 1;   /* "id@" */
		if ((s->has_col = calloc(t->ncols ? t->ncols : 1, 1)) == NULL)
			return -ENOMEM;
		for (size_t v = 0; v < t->nvar; v++) {
			if (strncmp(t->var[v].ref, s->schema_ref, idlen) != 0)
				continue;
			for (size_t f = 0; f < t->var[v].s->nfields; f++)
				if (t->var[v].col[f] >= 0)
					s->has_col[t->var[v].col[f]] = 1;
		}
		if (s->pk_name != NULL)
			s->pk_col = (int)find_col(t, s->pk_name);
	}
	return 0;
}

static void fold_free(struct fold **f)
{
	if (*f == NULL)
		return;
	free((*f)->keys);
	free((*f)->rows);
	free(*f);
	*f = NULL;
}

static void table_fini(struct table *t)
{
	for (size_t i = 0; i < t->nsrc; i++) {
		struct source *s = &t->src[i];
		free(s->dataset);
		free(s->publisher);
		free(s->schema_ref);
		free(s->pk_name);
		free(s->has_col);
		free(s->broken);
		fold_free(&s->fold);
		while (s->aidx != NULL) {
			struct autoidx *next = s->aidx->next;
			free(s->aidx->ix.keys);
			free(s->aidx->ix.rows);
			free(s->aidx);
			s->aidx = next;
		}
	}
	for (size_t i = 0; i < t->nvar; i++) {
		free(t->var[i].ref);
		if (!t->var[i].shared)
			schema_destroy(&t->var[i].s);
		free(t->var[i].col);
	}
	for (size_t i = 0; i < t->ncols; i++)
		free(t->cols[i]);
	free(t->cols);
	free(t->cls);
	free(t->src);
	free(t->var);
	free(t->name);
}

/* ---- the fold of a log prefix (as-of) ---- */

struct fold_tmp {
	size_t off, len;
	uint64_t seq;
	int del;
};

static int key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	return c != 0 ? c : (alen > blen) - (alen < blen);
}

static int fold_tmp_cmp(const void *pa, const void *pb, void *arg)
{
	const struct fold_tmp *a = pa, *b = pb;
	const uint8_t *keys = arg;
	int c = key_cmp(keys + a->off, a->len, keys + b->off, b->len);

	return c != 0 ? c : (a->seq > b->seq) - (a->seq < b->seq);
}

/* Append key to keys and describe it in *t. */
static int fold_key(struct rec_buf *keys, struct fold_tmp *t, const uint8_t *key, size_t len,
		    uint64_t seq, int del)
{
	int rc = rec_buf_reserve(keys, len);

	if (rc < 0)
		return rc;
	memcpy(keys->data + keys->len, key, len);
	*t = (struct fold_tmp){ keys->len, len, seq, del };
	keys->len += len;
	return 0;
}

static int fold_build(struct qry *q, struct source *s, struct fold **out)
{
	struct rec_buf keys = { 0 };
	struct fold_tmp *tmp = NULL;
	struct fold *f = NULL;
	int rc = 0;

	*out = NULL;
	if (s->size > 0 && (tmp = malloc(s->size * sizeof(*tmp))) == NULL)
		return -ENOMEM;
	for (uint64_t seq = 0; seq < s->size; seq++) {
		const uint8_t *buf;
		size_t len;
		struct rec_entry_decoded *d = NULL;
		if (seq % FOLD_CHECK_EVERY == 0 && over_time(q)) {
			rc = MU_E_TIMEOUT;
			goto out;
		}
		if ((rc = store_entry_get(&q->t, s->lid, seq, &buf, &len)) < 0)
			goto out;
		if (redact_is_stub(buf, len)) {
			/* A redacted entry keeps its key; its row is gone from every
			 * state, so it folds as a delete would. */
			struct redact_stub stub;
			if ((rc = redact_stub_decode(buf, len, &stub)) < 0)
				goto out;
			rc = fold_key(&keys, &tmp[seq], (const uint8_t *)stub.key, stub.key_len, seq, 1);
			redact_stub_fini(&stub);
		} else {
			if ((rc = rec_entry_decode(buf, len, &d)) < 0)
				goto out;
			rc = fold_key(&keys, &tmp[seq], (const uint8_t *)d->e.key, d->e.key_len, seq,
				      d->e.op == REC_DELETE);
			rec_entry_free(&d);
		}
		if (rc < 0)
			goto out;
	}
	if (s->size > 1)   /* tmp is NULL for an empty log */
		qsort_r(tmp, s->size, sizeof(*tmp), fold_tmp_cmp, keys.data);
	if ((f = calloc(1, sizeof(*f))) == NULL ||
	    (s->size > 0 && (f->rows = malloc(s->size * sizeof(*f->rows))) == NULL)) {
		rc = -ENOMEM;
		goto out;
	}
	/* The last entry of each key decides: an upsert is a live row. */
	for (uint64_t i = 0; i < s->size; i++) {
		int last = i + 1 == s->size || key_cmp(keys.data + tmp[i].off, tmp[i].len,
						       keys.data + tmp[i + 1].off, tmp[i + 1].len) != 0;
		if (last && !tmp[i].del)
			f->rows[f->n++] = (struct fold_row){ tmp[i].off, tmp[i].len, tmp[i].seq };
	}
	f->keys = keys.data;
	keys.data = NULL;
	*out = f;
	f = NULL;
out:
	fold_free(&f);
	rec_buf_fini(&keys);
	free(tmp);
	return rc;
}

/* First fold row whose key is >= key (or > key when after). */
static size_t fold_bound(const struct fold *f, const uint8_t *key, size_t len, int after)
{
	size_t lo = 0, hi = f->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = key_cmp(f->keys + f->rows[mid].off, f->rows[mid].len, key, len);
		if (c < 0 || (after && c == 0))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The seq of key's live row at the source's head: 1 found, 0 not, < 0 error. */
static int current_seq(struct qry *q, struct source *s, const uint8_t *key, size_t len,
		       uint64_t *seq)
{
	if (s->from_state) {
		struct store_state_val sv;
		int rc = store_state_get(&q->t, s->lid, (const char *)key, len, &sv);
		if (rc < 0)
			return rc == -ENOENT ? 0 : rc;
		*seq = sv.seq;
		return 1;
	}
	size_t i = fold_bound(s->fold, key, len, 0);
	if (i == s->fold->n || key_cmp(s->fold->keys + s->fold->rows[i].off, s->fold->rows[i].len,
				       key, len) != 0)
		return 0;
	*seq = s->fold->rows[i].seq;
	return 1;
}

/* ---- the virtual table ---- */

static int vt_connect(sqlite3 *db, void *aux, int argc, const char *const *argv,
		      sqlite3_vtab **out, char **err)
{
	struct qry *q = aux;
	struct table *t = NULL;
	struct vtab *vt;
	sqlite3_str *ddl;
	char *sql;
	int rc;

	for (size_t i = 0; i < q->ntab && argc >= 3; i++)
		if (strcmp(q->tab[i].name, argv[2]) == 0)
			t = &q->tab[i];
	if (t == NULL) {
		*err = sqlite3_mprintf("no dataset is named %s", argc >= 3 ? argv[2] : "?");
		return SQLITE_ERROR;
	}
	ddl = sqlite3_str_new(db);
	sqlite3_str_appendall(ddl, "CREATE TABLE x(");
	for (size_t i = 0; i < t->ncols; i++)
		sqlite3_str_appendf(ddl, "\"%w\" %s, ", t->cols[i], cls_decl(t->cls[i]));
	for (int i = 0; i < NPROV; i++)
		sqlite3_str_appendf(ddl, "%s %s%s", prov_names[i], prov_types[i],
				    i + 1 < NPROV ? ", " : ")");
	if ((sql = sqlite3_str_finish(ddl)) == NULL)
		return SQLITE_NOMEM;
	rc = sqlite3_declare_vtab(db, sql);
	sqlite3_free(sql);
	if (rc != SQLITE_OK) {
		*err = sqlite3_mprintf("table %s: %s", t->name, sqlite3_errmsg(db));
		return rc;
	}
	if ((vt = sqlite3_malloc(sizeof(*vt))) == NULL)
		return SQLITE_NOMEM;
	memset(vt, 0, sizeof(*vt));
	vt->tab = t;
	*out = &vt->base;
	return SQLITE_OK;
}

static int vt_disconnect(sqlite3_vtab *vt)
{
	sqlite3_free(vt->zErrMsg);
	sqlite3_free(vt);
	return SQLITE_OK;
}

static uint64_t col_bit(size_t i)
{
	return i < 63 ? UINT64_C(1) << i : UINT64_C(1) << 63;
}

/* Can the index answer a constraint on data column col? A key of class
 * cls on that column in at least one source. */
/* Can an index serve equality (or, with range, a range) on data column
 * col? Equality: a primary key or the automatic index. Ranges: a primary
 * key, in key order (text) or by its canonical text read as a number
 * (integers), which saves decoding the rows outside the range. */
static int indexable(const struct table *t, int col, int range)
{
	for (size_t i = 0; i < t->nsrc; i++)
		if (t->src[i].pk_col == col)
			return 1;
	return !range && t->cls[col] != CLS_NONE;
}

/* Rows an equality on column col visits: one per key lookup, a few per
 * automatic-index lookup, none in sources without the column. */
static double eq_rows(const struct table *t, int col)
{
	double rows = 0;

	for (size_t i = 0; i < t->nsrc; i++) {
		const struct source *s = &t->src[i];
		if (s->pk_col == col)
			rows += 1;
		else if (s->has_col[col])
			rows += t->cls[col] != CLS_NONE && s->rows <= AUTOIDX_MAX_ROWS ?
				1 + (double)s->rows / 20 : (double)s->rows;
	}
	return rows;
}

/* Equality on a key column is exact when every source either indexes
 * that column or lacks it (NULL never equals), the column's declared
 * type compares as the key does, and (for text) the operand is a text
 * constant: then SQLite's comparison rules and the index agree. */
static int key_eq_exact(const struct table *t, int col, sqlite3_index_info *info, int i)
{
	sqlite3_value *rhs = NULL;
	enum cls kc = CLS_NONE;

	for (size_t s = 0; s < t->nsrc; s++) {
		if (!t->src[s].has_col[col])
			continue;
		if (t->src[s].pk_col != col || (kc != CLS_NONE && kc != t->src[s].pk_cls))
			return 0;
		kc = t->src[s].pk_cls;
	}
	if (kc == CLS_INT)
		return t->cls[col] == CLS_INT || t->cls[col] == CLS_REAL;
	return (t->cls[col] == CLS_TEXT || t->cls[col] == CLS_GEO) &&
	       sqlite3_vtab_rhs_value(info, i, &rhs) == SQLITE_OK && rhs != NULL &&
	       sqlite3_value_type(rhs) == SQLITE_TEXT;
}

static int is_binary(sqlite3_index_info *info, int i)
{
	const char *coll = sqlite3_vtab_collation(info, i);

	return coll == NULL || sqlite3_stricmp(coll, "BINARY") == 0;
}

static int vt_best_index(sqlite3_vtab *vtp, sqlite3_index_info *info)
{
	struct table *t = ((struct vtab *)vtp)->tab;
	int pubcol = (int)t->ncols + PROV_PUBLISHER, seqcol = (int)t->ncols + PROV_SEQ;
	int pub = -1, seq = -1, key = -1, lo = -1, hi = -1, key_col = -1, plan = 0, argv = 0;
	int slo = -1, shi = -1;
	uint64_t data_mask = 0;

	/* Equality first: a key column chosen by equality wins over ranges. */
	for (int i = 0; i < info->nConstraint; i++) {
		const struct sqlite3_index_constraint *c = &info->aConstraint[i];
		if (!c->usable || c->op != SQLITE_INDEX_CONSTRAINT_EQ)
			continue;
		if (c->iColumn == pubcol && pub < 0 && is_binary(info, i))
			pub = i;
		else if (c->iColumn == seqcol && seq < 0)
			seq = i;
		else if (c->iColumn >= 0 && c->iColumn < (int)t->ncols && indexable(t, c->iColumn, 0) &&
			 is_binary(info, i) && (key < 0 || eq_rows(t, c->iColumn) < eq_rows(t, key_col))) {
			key = i;
			key_col = c->iColumn;
		}
	}
	for (int i = 0; i < info->nConstraint && key < 0; i++) {
		const struct sqlite3_index_constraint *c = &info->aConstraint[i];
		int low = c->op == SQLITE_INDEX_CONSTRAINT_GT || c->op == SQLITE_INDEX_CONSTRAINT_GE;
		int high = c->op == SQLITE_INDEX_CONSTRAINT_LT || c->op == SQLITE_INDEX_CONSTRAINT_LE;
		if (!c->usable || (!low && !high) || c->iColumn < 0 || c->iColumn >= (int)t->ncols ||
		    (key_col >= 0 && c->iColumn != key_col) || !indexable(t, c->iColumn, 1) ||
		    !is_binary(info, i))
			continue;
		key_col = c->iColumn;
		if (low && lo < 0)
			lo = i;
		if (high && hi < 0)
			hi = i;
	}
	/* Log order: for _seq ranges and ORDER BY _seq, when no key or entry
	 * lookup serves better. */
	for (int i = 0; i < info->nConstraint; i++) {
		const struct sqlite3_index_constraint *c = &info->aConstraint[i];
		if (!c->usable || c->iColumn != seqcol)
			continue;
		if ((c->op == SQLITE_INDEX_CONSTRAINT_GT || c->op == SQLITE_INDEX_CONSTRAINT_GE) && slo < 0)
			slo = i;
		if ((c->op == SQLITE_INDEX_CONSTRAINT_LT || c->op == SQLITE_INDEX_CONSTRAINT_LE) && shi < 0)
			shi = i;
	}
	int by_seq = info->nOrderBy == 1 && info->aOrderBy[0].iColumn == seqcol && !info->aOrderBy[0].desc;
	if (seq >= 0 || key >= 0 || lo >= 0 || hi >= 0 || (slo < 0 && shi < 0 && !by_seq))
		slo = shi = -1, by_seq = 0;
	else
		plan |= P_LOG;
	if (pub >= 0) {
		plan |= P_PUB;
		info->aConstraintUsage[pub].argvIndex = ++argv;
		sqlite3_value *rhs = NULL;
		info->aConstraintUsage[pub].omit = sqlite3_vtab_rhs_value(info, pub, &rhs) == SQLITE_OK &&
						   rhs != NULL && sqlite3_value_type(rhs) == SQLITE_TEXT;
	}
	if (key >= 0) {
		plan |= P_KEY;
		info->aConstraintUsage[key].argvIndex = ++argv;
		/* With _seq too, the entry is read by seq and the key not
		 * checked: SQLite must check it. */
		info->aConstraintUsage[key].omit = seq < 0 && key_eq_exact(t, key_col, info, key);
	}
	if (seq >= 0) {
		/* _seq compares numerically whatever the operand: exact. */
		plan |= P_SEQ;
		info->aConstraintUsage[seq].argvIndex = ++argv;
		info->aConstraintUsage[seq].omit = 1;
	}
	if (lo >= 0) {
		plan |= P_LO;
		info->aConstraintUsage[lo].argvIndex = ++argv;
	}
	if (hi >= 0) {
		plan |= P_HI;
		info->aConstraintUsage[hi].argvIndex = ++argv;
	}
	if (slo >= 0) {
		plan |= P_SEQLO;
		info->aConstraintUsage[slo].argvIndex = ++argv;
	}
	if (shi >= 0) {
		plan |= P_SEQHI;
		info->aConstraintUsage[shi].argvIndex = ++argv;
	}
	/* Rows come in _seq order, whatever the sources (SQLite itself
	 * drops this when an IN constraint splits the scan). */
	info->orderByConsumed = by_seq;

	/* Cost: rows visited, each dearer when its entry must be decoded. */
	for (size_t i = 0; i < t->ncols; i++)
		data_mask |= col_bit(i);
	double per_row = 1.0 + ((info->colUsed & data_mask) ? 8.0 : 0.0) +
			 ((info->colUsed & col_bit(t->ncols + PROV_HASH)) ? 2.0 : 0.0);
	double rows = 0, lookups = 0, keys_read = 0, entries = 0;
	for (size_t i = 0; i < t->nsrc; i++) {
		const struct source *s = &t->src[i];
		double n = (double)s->rows;
		if (key_col >= 0 && !s->has_col[key_col])
			n = 0;
		else if (plan & P_SEQ)
			n = 1, lookups++;
		else if ((plan & P_KEY) && s->pk_col == key_col)
			n = 1, lookups++;
		else if ((plan & P_KEY) && t->cls[key_col] != CLS_NONE && s->rows <= AUTOIDX_MAX_ROWS)
			n = 1 + n / 20, lookups++;
		else if ((plan & (P_LO | P_HI)) && s->pk_col == key_col)
			n = n / ((plan & P_LO) && (plan & P_HI) ? 8 : 3), lookups++;
		else if (plan & (P_SEQLO | P_SEQHI))
			n = n / ((plan & P_SEQLO) && (plan & P_SEQHI) ? 8 : 3);
		if (plan & P_LOG)
			entries += n;   /* every entry decoded, live or not */
		if ((plan & (P_LO | P_HI)) && s->pk_col == key_col && s->pk_cls == CLS_INT)
			keys_read += (double)s->rows;   /* every key, no entry */
		rows += n;
	}
	if ((plan & P_PUB) && t->nsrc > 0) {
		rows /= (double)t->nsrc;
		lookups /= (double)t->nsrc;
		keys_read /= (double)t->nsrc;
		entries /= (double)t->nsrc;
	}
	info->idxNum = plan;
	info->idxStr = sqlite3_mprintf("%d", key_col);
	info->needToFreeIdxStr = 1;
	info->estimatedRows = (sqlite3_int64)(rows < 1 ? 1 : rows);
	info->estimatedCost = 10.0 + rows * per_row + lookups * 4.0 + keys_read * 0.05 + entries * 5.0;
	if ((plan & P_SEQ) && (plan & P_PUB))
		info->idxFlags |= SQLITE_INDEX_SCAN_UNIQUE;
	return SQLITE_OK;
}

static int vt_open(sqlite3_vtab *vtp, sqlite3_vtab_cursor **out)
{
	struct table *t = ((struct vtab *)vtp)->tab;
	struct cursor *c = sqlite3_malloc(sizeof(*c));

	if (c == NULL)
		return SQLITE_NOMEM;
	memset(c, 0, sizeof(*c));
	c->tab = t;
	c->key_col = c->last_key_col = -1;
	c->eof = 1;
	if ((c->vals = calloc(t->ncols ? t->ncols : 1, sizeof(*c->vals))) == NULL) {
		sqlite3_free(c);
		return SQLITE_NOMEM;
	}
	*out = &c->base;
	return SQLITE_OK;
}

static void row_clear(struct cursor *c)
{
	/* Arena memory: nothing to free, the next decode reuses it. */
	c->row = NULL;
	c->ent = NULL;
	c->loaded = 0;
}

static void source_close(struct cursor *c)
{
	store_iter_end(&c->it);
	c->mode = M_CLOSED;
	c->it_end = c->tail = c->pending = 0;
}

static void plan_clear(struct cursor *c)
{
	source_close(c);
	row_clear(c);
	free(c->pub);
	free(c->lo);
	free(c->hi);
	sqlite3_value_free(c->key);
	c->pub = c->lo = c->hi = NULL;
	c->key = NULL;
	c->key_col = -1;
	c->has_seq = c->empty = c->nrange = 0;
	c->nlo.set = c->nhi.set = 0;
	for (size_t i = 0; c->lp != NULL && i < c->tab->nsrc; i++) {
		rec_arena_fini(&c->lp[i].arena);
		store_iter_end(&c->lp[i].it);
	}
	free(c->lp);
	c->lp = NULL;
	c->log = 0;
}

static int vt_close(sqlite3_vtab_cursor *cur)
{
	struct cursor *c = (struct cursor *)cur;

	plan_clear(c);
	rec_arena_fini(&c->ent_arena);
	rec_arena_fini(&c->row_arena);
	free(c->vals);
	sqlite3_free(c);
	return SQLITE_OK;
}

/* The argument as an integer, under the numeric affinity SQLite applies
 * when comparing it with an INTEGER column: 1 with *v, 0 if no integer
 * can equal it. */
static int arg_integer(sqlite3_value *arg, int64_t *v)
{
	sqlite3_value *d = sqlite3_value_dup(arg);
	int ok = 0;

	if (d == NULL)
		return 0;
	switch (sqlite3_value_numeric_type(d)) {
	case SQLITE_INTEGER:
		*v = sqlite3_value_int64(d);
		ok = 1;
		break;
	case SQLITE_FLOAT: {
		double x = sqlite3_value_double(d);
		if (x >= -9223372036854775808.0 && x < 9223372036854775808.0 &&
		    (double)(int64_t)x == x) {
			*v = (int64_t)x;
			ok = 1;
		}
		break;
	}
	default:
		break;
	}
	sqlite3_value_free(d);
	return ok;
}

static int decode_row(struct table *t, struct source *s, uint64_t seq,
		      struct rec_entry_decoded **ent, struct rec_row **row,
		      const struct mu_value **vals, struct cursor *c);

/* The key of a value in the equality index of a column of class cls:
 * text bytes, or a number as a double (SQLite compares integers and
 * reals by value; a double shared by two integers only adds a candidate,
 * which SQLite then rejects). 0 for values no lookup can find. */
static int value_key(enum cls cls, const struct mu_value *v, double *num, const uint8_t **key,
		     size_t *len)
{
	if (v == NULL)
		return 0;
	if (cls == CLS_TEXT || cls == CLS_GEO) {
		if (v->kind != MU_VAL_TEXT)
			return 0;   /* a number never equals a text operand */
		*key = (const uint8_t *)v->text;
		*len = v->len;
		return 1;
	}
	if (v->kind == MU_VAL_INT || v->kind == MU_VAL_BOOL)
		*num = (double)v->i;
	else if (v->kind == MU_VAL_NUM)
		*num = v->d;
	else
		return 0;
	if (*num == 0)
		*num = 0;   /* -0.0 equals 0.0 */
	*key = (const uint8_t *)num;
	*len = sizeof(*num);
	return 1;
}

/* The key a lookup of arg finds in that index: 1 with key, 0 when no value
 * of the column can equal arg, -1 when only a scan can tell (a number
 * compared with a text column may be compared as a number). */
static int arg_key(enum cls cls, sqlite3_value *arg, double *num, const uint8_t **key, size_t *len)
{
	sqlite3_value *d;
	int type = sqlite3_value_type(arg);

	if (type == SQLITE_NULL)
		return 0;
	if (cls == CLS_TEXT || cls == CLS_GEO) {
		if (type != SQLITE_TEXT || (*key = sqlite3_value_text(arg)) == NULL)
			return -1;
		*len = (size_t)sqlite3_value_bytes(arg);
		return 1;
	}
	/* A numeric column applies numeric affinity to the operand. */
	if ((d = sqlite3_value_dup(arg)) == NULL)
		return -1;
	type = sqlite3_value_numeric_type(d);
	*num = type == SQLITE_INTEGER ? (double)sqlite3_value_int64(d) : sqlite3_value_double(d);
	sqlite3_value_free(d);
	if (type != SQLITE_INTEGER && type != SQLITE_FLOAT)
		return 0;
	if (*num == 0)
		*num = 0;
	*key = (const uint8_t *)num;
	*len = sizeof(*num);
	return 1;
}

/* The equality index of column col in source s: 0 with *out, 1 when it
 * is not built and build is 0, or the source is too large to index (scan
 * it), or an error. Built from every row once per qry, which holds one
 * snapshot, and kept. */
static int autoidx_get(struct table *t, struct source *s, int col, int build,
		       const struct fold **out)
{
	struct qry *q = t->q;
	struct autoidx *a;
	struct rec_buf keys = { 0 };
	struct fold_tmp *tmp = NULL;
	struct store_iter it = { 0 };
	const struct mu_value **vals = NULL;
	size_t n = 0, i = 0, cap = s->from_state ? s->rows : s->fold->n;
	int rc;

	for (a = s->aidx; a != NULL; a = a->next)
		if (a->col == col) {
			*out = &a->ix;
			return 0;
		}
	if (!build || cap > AUTOIDX_MAX_ROWS)
		return 1;
	if ((vals = calloc(t->ncols, sizeof(*vals))) == NULL ||
	    (tmp = malloc((cap + 1) * sizeof(*tmp))) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if (s->from_state && (rc = store_state_iter_begin(&q->t, s->lid, &it)) < 0)
		goto out;
	for (;;) {
		struct rec_entry_decoded *ent = NULL;
		struct rec_row *row = NULL;
		struct store_state_val sv;
		const uint8_t *k;
		size_t klen;
		double num;
		if (s->from_state) {
			if ((rc = store_state_iter_next(&it, &k, &klen, &sv)) <= 0)
				break;
		} else if (i < s->fold->n) {
			sv.seq = s->fold->rows[i].seq;
		} else {
			rc = 0;
			break;
		}
		if (++i % FOLD_CHECK_EVERY == 0 && over_time(q)) {
			rc = MU_E_TIMEOUT;
			break;
		}
		if (n == cap) {
			rc = MU_E_CORRUPT;   /* more rows than the dataset counts */
			break;
		}
		rc = decode_row(t, s, sv.seq, &ent, &row, vals, NULL);
		if (rc == 0 && value_key(t->cls[col], vals[col], &num, &k, &klen) &&
		    (rc = rec_buf_reserve(&keys, klen)) == 0) {
			memcpy(keys.data + keys.len, k, klen);
			tmp[n++] = (struct fold_tmp){ keys.len, klen, sv.seq, 0 };
			keys.len += klen;
		}
		rec_row_free(&row);
		rec_entry_free(&ent);
		if (rc < 0)
			break;
	}
	if (rc < 0)
		goto out;
	if ((a = calloc(1, sizeof(*a))) == NULL ||
	    (a->ix.rows = malloc((n + 1) * sizeof(*a->ix.rows))) == NULL) {
		free(a);
		rc = -ENOMEM;
		goto out;
	}
	if (n > 0)
		qsort_r(tmp, n, sizeof(*tmp), fold_tmp_cmp, keys.data);
	for (size_t j = 0; j < n; j++)
		a->ix.rows[j] = (struct fold_row){ tmp[j].off, tmp[j].len, tmp[j].seq };
	a->ix.n = n;
	a->ix.keys = keys.data;
	keys.data = NULL;
	a->col = col;
	a->next = s->aidx;
	s->aidx = a;
	*out = &a->ix;
out:
	store_iter_end(&it);
	rec_buf_fini(&keys);
	free(tmp);
	free(vals);
	return rc;
}

/* The operand as a number under numeric affinity, into *b (b->set 0 if
 * it is none). */
static void arg_number(sqlite3_value *arg, struct nbound *b)
{
	sqlite3_value *d = sqlite3_value_dup(arg);
	int type = d ? sqlite3_value_numeric_type(d) : SQLITE_NULL;

	b->set = type == SQLITE_INTEGER || type == SQLITE_FLOAT;
	b->isint = type == SQLITE_INTEGER;
	b->i = b->isint ? sqlite3_value_int64(d) : 0;
	b->d = type == SQLITE_FLOAT ? sqlite3_value_double(d) : 0;
	sqlite3_value_free(d);
}

/* Compare integer v with bound b: -1, 0, 1, or 2 when a double cannot
 * tell (|v| > 2^53 against a real). */
static int ncmp(int64_t v, const struct nbound *b)
{
	if (b->isint)
		return (v > b->i) - (v < b->i);
	if (v > ((int64_t)1 << 53) || v < -((int64_t)1 << 53))
		return 2;
	return ((double)v > b->d) - ((double)v < b->d);
}

/* Is an integer key (its canonical text) within the numeric bounds?
 * Anything that does not read as an integer stays in: SQLite judges. */
static int key_in_nrange(const struct cursor *c, const uint8_t *k, size_t len)
{
	char buf[24], *end;
	long long v;

	if (len == 0 || len >= sizeof(buf))
		return 1;
	memcpy(buf, k, len);
	buf[len] = '\0';
	errno = 0;
	v = strtoll(buf, &end, 10);
	if (*end != '\0' || errno != 0)
		return 1;
	return !(c->nlo.set && ncmp(v, &c->nlo) == -1) && !(c->nhi.set && ncmp(v, &c->nhi) == 1);
}

/* The key text a lookup of the P_KEY argument finds in source s:
 * 1 with buf/key, 0 when no row of s can match, -1 when only a scan can
 * tell (a number compared with a text key may be compared as a number). */
static int lookup_key(const struct cursor *c, const struct source *s, char *buf, size_t cap,
		      const uint8_t **key, size_t *len)
{
	int64_t v;

	if (sqlite3_value_type(c->key) == SQLITE_NULL)
		return 0;
	if (s->pk_cls == CLS_INT) {
		if (!arg_integer(c->key, &v))
			return 0;
		*len = (size_t)snprintf(buf, cap, "%" PRId64, v);
		*key = (const uint8_t *)buf;
		return 1;
	}
	if (sqlite3_value_type(c->key) != SQLITE_TEXT)
		return -1;
	*key = sqlite3_value_text(c->key);
	*len = (size_t)sqlite3_value_bytes(c->key);
	return *key != NULL ? 1 : -1;
}

/* Position the state cursor at the source's first key >= key. */
static int state_seek(struct cursor *c, struct source *s, const uint8_t *key, size_t len)
{
	struct qry *q = c->tab->q;
	struct store_state_val sv;
	uint8_t *k = malloc(4 + len);
	MDB_val kv = { 4 + len, k }, v;
	int rc;

	if (k == NULL)
		return -ENOMEM;
	k[0] = (uint8_t)(s->lid >> 24);
	k[1] = (uint8_t)(s->lid >> 16);
	k[2] = (uint8_t)(s->lid >> 8);
	k[3] = (uint8_t)s->lid;
	memcpy(k + 4, key, len);
	rc = mdb_cursor_get(c->it.cur, &kv, &v, MDB_SET_RANGE);
	free(k);
	c->it.started = 1;   /* store_state_iter_next goes on from here */
	if (rc == MDB_NOTFOUND) {
		c->it_end = 1;
		return 0;
	}
	if (rc != 0)
		return store_err(rc);
	const uint8_t *p = kv.mv_data;
	if (kv.mv_size < 4 || ((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]) !=
	    s->lid) {
		c->it_end = 1;
		return 0;
	}
	if ((rc = store_state_get(&q->t, s->lid, (const char *)p + 4, kv.mv_size - 4, &sv)) < 0)
		return rc;
	c->pending = 1;
	c->pkey = p + 4;
	c->pklen = kv.mv_size - 4;
	c->pseq = sv.seq;
	return 0;
}

/* Open source s for this scan. */
static int source_open(struct cursor *c, struct source *s)
{
	struct qry *q = c->tab->q;
	char buf[32];
	const uint8_t *key;
	size_t len;
	int rc, range = (c->lo || c->hi) && s->pk_col == c->key_col && s->pk_cls == CLS_TEXT;

	c->mode = M_EMPTY;
	c->nrange = (c->nlo.set || c->nhi.set) && c->key == NULL && s->pk_col == c->key_col &&
		    s->pk_cls == CLS_INT;
	if (c->key_col >= 0 && !s->has_col[c->key_col])
		return 0;   /* the column is NULL in every row: nothing matches */
	if (!s->from_state && s->fold == NULL && (rc = fold_build(q, s, &s->fold)) < 0)
		return rc;
	if (c->has_seq) {
		const uint8_t *ebuf;
		size_t elen;
		struct rec_entry_decoded *d = NULL;
		uint64_t cur;
		if (c->seq >= s->size)
			return 0;
		if ((rc = store_entry_get(&q->t, s->lid, c->seq, &ebuf, &elen)) < 0 ||
		    (rc = rec_entry_decode(ebuf, elen, &d)) < 0)
			return rc;
		rc = d->e.op == REC_UPSERT ?
			current_seq(q, s, (const uint8_t *)d->e.key, d->e.key_len, &cur) : 0;
		rec_entry_free(&d);
		if (rc < 0)
			return rc;
		if (rc == 1 && cur == c->seq) {
			c->mode = M_ONE;
			c->pseq = c->seq;
		}
		return 0;
	}
	if (c->key != NULL && s->pk_col == c->key_col) {
		rc = lookup_key(c, s, buf, sizeof(buf), &key, &len);
		if (rc == 0)
			return 0;
		if (rc == 1) {
			if ((rc = current_seq(q, s, key, len, &c->pseq)) < 0)
				return rc;
			if (rc == 1)
				c->mode = M_ONE;
			return 0;
		}
		range = 0;   /* only a scan can tell */
	} else if (c->key != NULL) {
		/* Equality on another column: the automatic index, built when
		 * a second lookup shows the scan is in a loop (a join); one
		 * lookup alone is cheaper as a scan. */
		const struct fold *ix;
		double num;
		int ak = arg_key(c->tab->cls[c->key_col], c->key, &num, &key, &len);
		if (ak == 0)
			return 0;
		if (ak == 1 && (rc = autoidx_get(c->tab, s, c->key_col, c->key_uses > 1, &ix)) < 0)
			return rc;
		if (ak == 1 && rc == 0) {
			c->mode = M_LIST;
			c->list = ix;
			c->fpos = fold_bound(ix, key, len, 0);
			c->fend = fold_bound(ix, key, len, 1);
			return 0;
		}
	}
	if (!s->from_state) {
		c->mode = M_LIST;
		c->list = s->fold;
		c->fpos = range && c->lo ? fold_bound(s->fold, (const uint8_t *)c->lo, c->lolen, 0) : 0;
		c->fend = range && c->hi ? fold_bound(s->fold, (const uint8_t *)c->hi, c->hilen, 1) :
			  s->fold->n;
		return 0;
	}
	if ((rc = store_state_iter_begin(&q->t, s->lid, &c->it)) < 0)
		return rc;
	c->mode = M_STATE;
	c->tail = !range || c->hi == NULL;   /* no upper bound to watch */
	if (range && c->lo != NULL)
		return state_seek(c, s, (const uint8_t *)c->lo, c->lolen);
	return 0;
}

/* Next row of the open source: 1 with c->row_seq, 0 at its end. */
static int source_next(struct cursor *c, struct source *s)
{
	const uint8_t *k;
	size_t klen;
	struct store_state_val sv;
	int rc;

	switch (c->mode) {
	case M_ONE:
		c->mode = M_EMPTY;
		c->row_seq = c->pseq;
		return 1;
	case M_LIST:
		for (; c->fpos < c->fend; c->fpos++) {
			const struct fold_row *r = &c->list->rows[c->fpos];
			if (c->nrange && !key_in_nrange(c, c->list->keys + r->off, r->len))
				continue;
			c->row_seq = r->seq;
			c->fpos++;
			return 1;
		}
		return 0;
	case M_STATE:
		for (;;) {
			if (c->pending) {
				c->pending = 0;
				k = c->pkey;
				klen = c->pklen;
				sv.seq = c->pseq;
			} else if (c->it_end) {
				return 0;
			} else if ((rc = store_state_iter_next(&c->it, &k, &klen, &sv)) <= 0) {
				return rc;
			}
			/* Past the upper bound, only keys stored by their hash
			 * (0xFF + SHA-256, after all text) may still be in range. */
			if (!c->tail && (klen == 0 || k[0] != 0xFF) &&
			    key_cmp(k, klen, (const uint8_t *)c->hi, c->hilen) > 0) {
				static const uint8_t hashed = 0xFF;
				c->tail = 1;
				if ((rc = state_seek(c, s, &hashed, 1)) < 0)
					return rc;
				continue;
			}
			if (c->nrange && !key_in_nrange(c, k, klen))
				continue;
			c->row_seq = sv.seq;
			return 1;
		}
	default:
		return 0;
	}
}

static int source_wanted(const struct cursor *c, const struct source *s)
{
	return !c->empty && !s->left_out && (c->pub == NULL || strcmp(c->pub, s->publisher) == 0);
}

static int load_row(struct cursor *c);

/* Is the current row in force at valid_at? 1 yes (or no valid time asked
 * for), 2 no, < 0 error. */
static int in_force(struct cursor *c)
{
	const struct table *t = c->tab;
	const char *at = t->q->valid_at;
	int rc;

	if (at == NULL || (t->valid_col[0] < 0 && t->valid_col[1] < 0))
		return 1;
	if ((rc = load_row(c)) < 0)
		return rc;
	for (int k = 0; k < 2; k++) {
		const struct mu_value *v = t->valid_col[k] >= 0 ? c->vals[t->valid_col[k]] : NULL;
		if (v == NULL || v->kind != MU_VAL_TEXT)
			continue;   /* NULL: open */
		size_t n = strlen(at);
		int cmp = memcmp(v->text, at, v->len < n ? v->len : n);
		if (cmp == 0)
			cmp = (v->len > n) - (v->len < n);
		if (k == 0 ? cmp > 0 : cmp <= 0)
			return 2;
	}
	return 1;
}

/* Source i's next live row in log order from lp[i].next, decoded into
 * lp[i].ent: 1, 0 at the end of its range, or an error. */
static int log_peek(struct cursor *c, size_t i)
{
	struct source *s = &c->tab->src[i];
	struct logpos *p = &c->lp[i];
	struct qry *q = c->tab->q;
	const uint8_t *buf;
	size_t len;
	uint64_t cur, got;
	int rc;
	/* At the head of a log with as many live rows as entries, every
	 * entry is the live row of its key: no lookup needed. */
	int all_live = s->from_state && s->rows == s->size;

	if (!s->from_state && s->fold == NULL && (rc = fold_build(q, s, &s->fold)) < 0)
		return rc;
	if (p->it.cur == NULL && p->next < s->size &&
	    (rc = store_entry_iter_begin(&q->t, s->lid, p->next, &p->it)) < 0)
		return rc;
	for (; p->next < s->size && p->next <= c->shi; p->next++) {
		if (p->next % FOLD_CHECK_EVERY == 0 && over_time(q))
			return MU_E_TIMEOUT;
		p->ent = NULL;
		/* The cursor steps with p->next: entries are seqs 0..size-1. */
		if ((rc = store_entry_iter_next(&p->it, &got, &buf, &len)) < 0)
			return rc;
		if (rc == 0 || got != p->next)
			return MU_E_CORRUPT;
		if (redact_is_stub(buf, len))
			continue;   /* redacted: its row is gone from every state */
		if ((rc = rec_entry_decode_in(&p->arena, buf, len, &p->ent_mem.e)) < 0)
			return rc;
		p->ent = &p->ent_mem;
		if (all_live && p->ent->e.op == REC_UPSERT)
			return 1;
		rc = p->ent->e.op == REC_UPSERT ?
			current_seq(q, s, (const uint8_t *)p->ent->e.key, p->ent->e.key_len, &cur) : 0;
		if (rc < 0)
			return rc;
		if (rc == 1 && cur == p->next)
			return 1;   /* live at the head: its row */
		p->ent = NULL;
	}
	return 0;
}

/* P_LOG: the live row with the lowest seq over the wanted sources. */
static int advance_log(struct cursor *c)
{
	struct table *t = c->tab;
	int rc;

	for (;;) {
		size_t best = t->nsrc;
		for (size_t i = 0; i < t->nsrc; i++) {
			struct logpos *p = &c->lp[i];
			if (p->done || !source_wanted(c, &t->src[i]))
				continue;
			if (!p->have && (rc = log_peek(c, i)) <= 0) {
				if (rc < 0)
					return vt_fail(c, rc, t->src[i].dataset);
				p->done = 1;
				continue;
			}
			p->have = 1;
			if (best == t->nsrc || p->next < c->lp[best].next)
				best = i;
		}
		if (best == t->nsrc) {
			c->eof = 1;
			return SQLITE_OK;
		}
		struct logpos *p = &c->lp[best];
		c->isrc = best;
		c->row_seq = p->next++;
		c->ent = p->ent;   /* the row's entry, decoded once */
		p->ent = NULL;
		p->have = 0;
		if ((rc = in_force(c)) < 0)
			return vt_fail(c, rc, t->src[best].dataset);
		if (rc == 1)
			return SQLITE_OK;
		row_clear(c);
	}
}

/* Move to the next row, opening sources as needed. */
static int advance(struct cursor *c)
{
	struct table *t = c->tab;
	int rc;

	row_clear(c);
	if (c->log)
		return advance_log(c);
	for (;;) {
		if (c->mode != M_CLOSED) {
			if ((rc = source_next(c, &t->src[c->isrc])) < 0 ||
			    (rc == 1 && (rc = in_force(c)) < 0))
				return vt_fail(c, rc, t->src[c->isrc].dataset);
			if (rc == 1)
				return SQLITE_OK;
			if (rc == 2) {
				row_clear(c);
				continue;
			}
			source_close(c);
			c->isrc++;
		}
		if (c->isrc >= t->nsrc) {
			c->eof = 1;
			return SQLITE_OK;
		}
		if (!source_wanted(c, &t->src[c->isrc])) {
			c->isrc++;
			continue;
		}
		if ((rc = source_open(c, &t->src[c->isrc])) < 0)
			return vt_fail(c, rc, t->src[c->isrc].dataset);
	}
}

/* A _seq bound (inclusive, so a superset: SQLite checks the rest) from
 * an operand compared with the INTEGER column: 0 when no seq can satisfy
 * it. An operand that stays text is above every number. */
static int seq_bound(sqlite3_value *v, int upper, uint64_t *out)
{
	struct nbound b;

	if (sqlite3_value_type(v) == SQLITE_NULL)
		return 0;
	arg_number(v, &b);
	if (!b.set)
		return upper;   /* _seq < 'text' always holds, _seq > 'text' never */
	if (b.isint ? b.i < 0 : b.d < 0)
		return !upper;  /* every seq is above it */
	if (b.isint)
		*out = (uint64_t)b.i;
	else
		*out = b.d >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)b.d;
	return 1;
}

static char *arg_text(sqlite3_value *v, size_t *len)
{
	const unsigned char *s = sqlite3_value_text(v);
	char *copy;

	*len = (size_t)sqlite3_value_bytes(v);
	if (s == NULL || (copy = malloc(*len + 1)) == NULL)
		return NULL;
	memcpy(copy, s, *len);
	copy[*len] = '\0';
	return copy;
}

static int vt_filter(sqlite3_vtab_cursor *cur, int plan, const char *idx, int argc,
		     sqlite3_value **argv)
{
	struct cursor *c = (struct cursor *)cur;
	struct table *t = c->tab;
	int a = 0;
	size_t len;

	plan_clear(c);
	c->eof = 0;
	c->isrc = 0;
	if (plan & (P_KEY | P_LO | P_HI))
		c->key_col = idx ? atoi(idx) : -1;
	c->key_uses = (plan & P_KEY) && c->key_col == c->last_key_col ? c->key_uses + 1 : 1;
	c->last_key_col = plan & P_KEY ? c->key_col : -1;
	if (plan & P_PUB) {
		sqlite3_value *v = argv[a++];
		/* A text operand narrows to one publisher; others (numbers
		 * that SQLite may compare as numbers) leave SQLite to judge. */
		if (sqlite3_value_type(v) == SQLITE_NULL)
			c->empty = 1;
		else if (sqlite3_value_type(v) == SQLITE_TEXT && (c->pub = arg_text(v, &len)) == NULL)
			return SQLITE_NOMEM;
	}
	if ((plan & P_KEY) && (c->key = sqlite3_value_dup(argv[a++])) == NULL)
		return SQLITE_NOMEM;
	if (plan & P_SEQ) {
		int64_t s;
		c->has_seq = 1;
		if (arg_integer(argv[a++], &s) && s >= 0)
			c->seq = (uint64_t)s;
		else
			c->empty = 1;
	}
	for (int bound = P_LO; bound <= P_HI; bound <<= 1) {
		if (!(plan & bound))
			continue;
		sqlite3_value *v = argv[a++];
		char **dst = bound == P_LO ? &c->lo : &c->hi;
		if (sqlite3_value_type(v) == SQLITE_NULL)
			c->empty = 1;   /* no comparison with NULL is true */
		else if (sqlite3_value_type(v) == SQLITE_TEXT &&
			 (*dst = arg_text(v, bound == P_LO ? &c->lolen : &c->hilen)) == NULL)
			return SQLITE_NOMEM;
		/* An operand that is no number after numeric affinity
		 * bounds nothing a number could be: no narrowing. */
		arg_number(v, bound == P_LO ? &c->nlo : &c->nhi);
	}
	c->slo = 0;
	c->shi = UINT64_MAX;
	if ((plan & P_SEQLO) && !seq_bound(argv[a++], 0, &c->slo))
		c->empty = 1;
	if ((plan & P_SEQHI) && !seq_bound(argv[a++], 1, &c->shi))
		c->empty = 1;
	if (a != argc)
		return vt_error(cur->pVtab, "internal: %d arguments for plan %d", argc, plan);
	if ((plan & P_LOG) && !c->empty) {
		if ((c->lp = calloc(t->nsrc ? t->nsrc : 1, sizeof(*c->lp))) == NULL)
			return SQLITE_NOMEM;
		for (size_t i = 0; i < t->nsrc; i++)
			c->lp[i].next = c->slo;
		c->log = 1;
	}
	for (size_t i = 0; i < t->nsrc; i++) {
		struct source *s = &t->src[i];
		if (!source_wanted(c, s))
			continue;
		if (s->broken != NULL)
			return vt_error(cur->pVtab, "%s", s->broken);
		s->touched = 1;
	}
	return advance(c);
}

static int vt_next(sqlite3_vtab_cursor *cur)
{
	return advance((struct cursor *)cur);
}

static int vt_eof(sqlite3_vtab_cursor *cur)
{
	return ((struct cursor *)cur)->eof;
}

/* Is ref "<id>@<version>"? */
static int ref_is(const char *ref, const char *id, unsigned version)
{
	size_t n = strlen(id);
	char *end;

	return strncmp(ref, id, n) == 0 && ref[n] == '@' &&
	       strtoul(ref + n + 1, &end, 10) == version && *end == '\0';
}

/* Decode entry seq of s (unless *ent holds it already) and map its values
 * onto t's columns: vals[col] points into *row (NULL where the row's
 * version lacks the column). With a cursor c, the entry and the row are
 * decoded into its arenas (*ent, *row: its ent_mem, row_mem), else onto
 * the heap (the caller frees them). */
static int decode_row(struct table *t, struct source *s, uint64_t seq,
		      struct rec_entry_decoded **ent, struct rec_row **row,
		      const struct mu_value **vals, struct cursor *c)
{
	struct qry *q = t->q;
	struct variant *v = NULL;
	const uint8_t *buf;
	size_t len;
	char ref[200];
	int rc;

	if (*ent == NULL) {
		if ((rc = store_entry_get(&q->t, s->lid, seq, &buf, &len)) < 0)
			return rc == -ENOENT ? MU_E_CORRUPT : rc;
		if (c == NULL) {
			rc = rec_entry_decode(buf, len, ent);
		} else if ((rc = rec_entry_decode_in(&c->ent_arena, buf, len, &c->ent_mem.e)) == 0) {
			c->ent_mem.msg_ = NULL;
			*ent = &c->ent_mem;
		}
		if (rc < 0)
			return rc;
	}
	const struct rec_entry *e = &(*ent)->e;
	if (e->op != REC_UPSERT || e->row == NULL || e->schema_id == NULL)
		return MU_E_CORRUPT;
	/* Rows of a source mostly share one schema version: try the last one
	 * found before formatting a reference to look up. */
	if (t->last_var < t->nvar && ref_is(t->var[t->last_var].ref, e->schema_id, e->schema_version))
		v = &t->var[t->last_var];
	if (v == NULL)
		snprintf(ref, sizeof(ref), "%s@%u", e->schema_id, e->schema_version);
	if (v == NULL && (v = find_variant(t, ref)) == NULL) {
		/* A version outside the ones the columns were made from: map
		 * what fits (compatible versions only add fields). */
		if ((rc = add_variant(q, t, ref, e->schema_digest, &v)) < 0 ||
		    (rc = map_variant(t, v)) < 0)
			return rc == -ENOENT ? MU_E_SCHEMA : rc;
	}
	t->last_var = (size_t)(v - t->var);
	if (c == NULL) {
		if ((rc = rec_row_decode(e->row, e->row_len, row)) < 0)
			return rc;
	} else {
		if ((rc = rec_row_decode_in(&c->row_arena, e->row, e->row_len, &c->row_mem)) < 0)
			return rc;
		*row = &c->row_mem;
	}
	memset(vals, 0, t->ncols * sizeof(*vals));
	for (size_t i = 0; i < (*row)->n && i < v->s->nfields; i++)
		if (v->col[i] >= 0)
			vals[v->col[i]] = &(*row)->values[i];
	return 0;
}

/* Decode the current row, once. */
static int load_row(struct cursor *c)
{
	int rc;

	if (c->loaded)
		return 0;
	if ((rc = decode_row(c->tab, &c->tab->src[c->isrc], c->row_seq, &c->ent, &c->row,
			     c->vals, c)) < 0)
		return rc;
	c->loaded = 1;
	return 0;
}

static int vt_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int col)
{
	struct cursor *c = (struct cursor *)cur;
	struct table *t = c->tab;
	struct source *s = &t->src[c->isrc];
	int rc;

	if ((size_t)col >= t->ncols) {
		switch (col - (int)t->ncols) {
		case PROV_PUBLISHER:
			sqlite3_result_text(ctx, s->publisher, -1, SQLITE_STATIC);
			return SQLITE_OK;
		case PROV_SEQ:
			sqlite3_result_int64(ctx, (sqlite3_int64)c->row_seq);
			return SQLITE_OK;
		case PROV_HEAD_SIZE:
			sqlite3_result_int64(ctx, (sqlite3_int64)s->size);
			return SQLITE_OK;
		case PROV_HASH: {
			const uint8_t *buf;
			size_t len;
			merkle_hash h;
			char hex[2 * MERKLE_HASH_LEN + 1];
			if ((rc = store_entry_get(&t->q->t, s->lid, c->row_seq, &buf, &len)) < 0)
				return vt_fail(c, rc == -ENOENT ? MU_E_CORRUPT : rc, s->dataset);
			merkle_leaf_hash(buf, len, h);
			sig_hex(h, MERKLE_HASH_LEN, hex);
			sqlite3_result_text(ctx, hex, -1, SQLITE_TRANSIENT);
			return SQLITE_OK;
		}
		default:
			return vt_error(cur->pVtab, "no column %d", col);
		}
	}
	if ((rc = load_row(c)) < 0) {
		if (rc == MU_E_SCHEMA)
			return vt_error(cur->pVtab, "entry %" PRIu64 " of %s uses schema %s@%u, which "
					"this node does not hold", c->row_seq, s->dataset,
					c->ent->e.schema_id, c->ent->e.schema_version);
		return vt_fail(c, rc, s->dataset);
	}
	const struct mu_value *v = c->vals[col];
	switch (v ? v->kind : MU_VAL_NULL) {
	case MU_VAL_TEXT:
		sqlite3_result_text(ctx, v->text, (int)v->len, SQLITE_TRANSIENT);
		break;
	case MU_VAL_INT:
	case MU_VAL_BOOL:
		sqlite3_result_int64(ctx, v->i);
		break;
	case MU_VAL_NUM:
		sqlite3_result_double(ctx, v->d);
		break;
	default:
		sqlite3_result_null(ctx);
		break;
	}
	return SQLITE_OK;
}

static int vt_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *rowid)
{
	struct cursor *c = (struct cursor *)cur;

	/* Unique within the table: source index above a 48-bit seq. */
	*rowid = (sqlite3_int64)(((uint64_t)c->isrc << 48) | (c->row_seq & ((UINT64_C(1) << 48) - 1)));
	return SQLITE_OK;
}

static const sqlite3_module qry_module = {
	.iVersion = 1,
	.xCreate = vt_connect,
	.xConnect = vt_connect,
	.xBestIndex = vt_best_index,
	.xDisconnect = vt_disconnect,
	.xDestroy = vt_disconnect,
	.xOpen = vt_open,
	.xClose = vt_close,
	.xFilter = vt_filter,
	.xNext = vt_next,
	.xEof = vt_eof,
	.xColumn = vt_column,
	.xRowid = vt_rowid,
};

/* ---- the connection ---- */

static int authorize(void *ctx, int action, const char *a, const char *b, const char *db,
		     const char *trigger)
{
	switch (action) {
	case SQLITE_SELECT:
	case SQLITE_READ:
	case SQLITE_RECURSIVE:
		return SQLITE_OK;
	case SQLITE_UPDATE:
		/* SQLite itself asks this when it first connects an eponymous
		 * table (json_each, pragma_table_info): it parses the table's
		 * declaration as if updating the schema table. A statement
		 * that really writes there is stopped by DEFENSIVE, and any
		 * writing statement by qry_exec's read-only check. */
		return a != NULL && sqlite3_stricmp(a, "sqlite_master") == 0 && trigger == NULL ?
		       SQLITE_OK : SQLITE_DENY;
	case SQLITE_FUNCTION:
		return b != NULL && sqlite3_stricmp(b, "load_extension") == 0 ? SQLITE_DENY : SQLITE_OK;
	case SQLITE_PRAGMA:
		/* Only those that describe tables, never one that sets. */
		return a != NULL && (sqlite3_stricmp(a, "table_info") == 0 ||
				     sqlite3_stricmp(a, "table_xinfo") == 0 ||
				     sqlite3_stricmp(a, "table_list") == 0) ? SQLITE_OK : SQLITE_DENY;
	default:
		return SQLITE_DENY;
	}
}

static int progress(void *ctx)
{
	return over_time(ctx);
}

static const struct {
	int id, value;
} limits[] = {
	{ SQLITE_LIMIT_LENGTH, 64 << 20 },
	{ SQLITE_LIMIT_SQL_LENGTH, QRY_MAX_SQL },
	{ SQLITE_LIMIT_EXPR_DEPTH, 200 },
	{ SQLITE_LIMIT_COMPOUND_SELECT, 100 },
	{ SQLITE_LIMIT_VDBE_OP, 250000 },
	{ SQLITE_LIMIT_FUNCTION_ARG, 64 },
	{ SQLITE_LIMIT_ATTACHED, 0 },
	{ SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 1000 },
	{ SQLITE_LIMIT_VARIABLE_NUMBER, 1000 },
	{ SQLITE_LIMIT_TRIGGER_DEPTH, 1 },
	{ SQLITE_LIMIT_WORKER_THREADS, 0 },
};

static int db_setup(struct qry *q, const struct qry_opts *o)
{
	static const int off[] = { SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, SQLITE_DBCONFIG_TRUSTED_SCHEMA,
				   SQLITE_DBCONFIG_DQS_DML, SQLITE_DBCONFIG_DQS_DDL,
				   SQLITE_DBCONFIG_ENABLE_TRIGGER };
	int rc;

	if ((rc = sqlite3_open_v2(":memory:", &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				  SQLITE_OPEN_NOMUTEX, NULL)) != SQLITE_OK)
		goto fail;
	for (size_t i = 0; i < sizeof(off) / sizeof(off[0]); i++)
		sqlite3_db_config(q->db, off[i], 0, (int *)NULL);
	sqlite3_db_config(q->db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
	/* Sorts and temporary b-trees stay in memory, under the heap limit,
	 * instead of spilling into files. */
	if ((rc = sqlite3_exec(q->db, "PRAGMA temp_store = MEMORY", NULL, NULL, NULL)) != SQLITE_OK ||
	    (rc = sqlite3_create_module_v2(q->db, "musubi", &qry_module, q, NULL)) != SQLITE_OK)
		goto fail;
	for (size_t i = 0; i < q->ntab; i++) {
		char *sql = sqlite3_mprintf("CREATE VIRTUAL TABLE \"%w\" USING musubi", q->tab[i].name);
		rc = sql ? sqlite3_exec(q->db, sql, NULL, NULL, NULL) : SQLITE_NOMEM;
		sqlite3_free(sql);
		if (rc != SQLITE_OK) {
			set_why(o, "table %s: %s", q->tab[i].name, sqlite3_errmsg(q->db));
			return MU_E_SCHEMA;
		}
	}
	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++)
		sqlite3_limit(q->db, limits[i].id, limits[i].value);
	sqlite3_set_authorizer(q->db, authorize, q);
	return 0;
fail:
	set_why(o, "SQLite: %s", q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc));
	return rc == SQLITE_NOMEM ? -ENOMEM : MU_E_STORE;
}

static int table_name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct table *)a)->name, ((const struct table *)b)->name);
}

int qry_open(struct store *st, const struct qry_opts *o, struct qry **out)
{
	struct qry *q = calloc(1, sizeof(*q));
	unsigned char *asof_seen = calloc(o->nasof ? o->nasof : 1, 1);
	char **names = NULL;
	size_t n = 0;
	int rc;

	*out = NULL;
	if (q == NULL || asof_seen == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	q->st = st;
	if (o->valid_at != NULL && (q->valid_at = strdup(o->valid_at)) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	q->max_ms = o->max_ms;
	q->max_heap = o->max_heap_bytes;
	if ((rc = store_read_begin(st, &q->t)) < 0 || (rc = store_dataset_names(&q->t, &names, &n)) < 0) {
		set_why(o, "cannot read the store: %s", mu_strerror(rc));
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct store_dataset ds;
		if ((rc = store_dataset_get(&q->t, names[i], &ds)) < 0)
			goto out;
		rc = add_source(q, o, &ds, asof_seen);
		store_dataset_fini(&ds);
		if (rc < 0)
			goto out;
	}
	for (size_t i = 0; i < o->nasof; i++)
		if (!asof_seen[i]) {
			set_why(o, "this node holds no dataset %s", o->asof[i].dataset);
			rc = -ENOENT;
			goto out;
		}
	if (q->ntab > 1)   /* tab is NULL when no dataset is visible */
		qsort(q->tab, q->ntab, sizeof(*q->tab), table_name_cmp);
	for (size_t i = 0; i < q->ntab; i++)
		if ((rc = build_columns(&q->tab[i])) < 0)
			goto out;
	if (!o->catalogue_only && (rc = db_setup(q, o)) < 0)
		goto out;
	*out = q;
	q = NULL;
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(asof_seen);
	qry_close(&q);
	return rc;
}

void qry_close(struct qry **qp)
{
	struct qry *q = *qp;

	if (q == NULL)
		return;
	/* Cursors and tables go with the connection, before their data. */
	sqlite3_close(q->db);
	for (size_t i = 0; i < q->ntab; i++)
		table_fini(&q->tab[i]);
	free(q->tab);
	if (q->t.txn != NULL)
		store_read_end(&q->t);
	free(q->valid_at);
	free(q);
	*qp = NULL;
}

int qry_has_column(struct qry *q, const char *table, const char *column)
{
	for (size_t i = 0; i < q->ntab; i++) {
		const struct table *t = &q->tab[i];
		if (sqlite3_stricmp(t->name, table) != 0)
			continue;
		if (column == NULL)
			return 1;
		for (int k = 0; k < NPROV; k++)
			if (sqlite3_stricmp(prov_names[k], column) == 0)
				return 1;
		return find_col(t, column) >= 0;
	}
	return 0;
}

sqlite3 *qry_db(struct qry *q)
{
	return q->db;
}

static int fail(char **err, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char **err, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL) {
		free(*err);
		va_start(ap, fmt);
		if (vasprintf(err, fmt, ap) < 0)
			*err = NULL;
		va_end(ap);
	}
	return rc;
}

/* Translate how a statement ended. */
static int sql_error(struct qry *q, int src, char **err)
{
	const char *msg = sqlite3_errmsg(q->db);

	if (q->timed_out || src == SQLITE_INTERRUPT)
		return fail(err, MU_E_TIMEOUT, "query exceeded its time limit of %" PRId64 " ms",
			    q->max_ms);
	if (src == SQLITE_NOMEM)
		return q->max_heap > 0 ? fail(err, MU_E_TOOBIG, "query exceeded its memory limit of %"
					      PRId64 " bytes", q->max_heap) :
					 fail(err, -ENOMEM, "out of memory");
	/* A refused function is SQLITE_ERROR "not authorized to use
	 * function", and writes to a virtual table without xUpdate fail
	 * before the authorizer is asked. */
	if (src == SQLITE_AUTH || strncmp(msg, "not authorized", 14) == 0 ||
	    strstr(msg, "may not be modified") != NULL)
		return fail(err, MU_E_DENIED, "not authorized: a query can only read (%s)", msg);
	if (q->vt_rc != 0)
		return fail(err, q->vt_rc, "%s", msg);
	if (src == SQLITE_TOOBIG)
		return fail(err, MU_E_TOOBIG, "%s", msg);
	return fail(err, MU_E_USAGE, "%s", msg);
}

int qry_exec(struct qry *q, const char *sql, qry_row_fn fn, void *ctx, char **err)
{
	sqlite3_stmt *stmt = NULL, *more = NULL;
	const char *tail = NULL;
	sqlite3_int64 old_heap = -1;
	uint64_t rows = 0;
	int rc = 0, src;

	if (err != NULL)
		*err = NULL;
	if (q->db == NULL)
		return fail(err, MU_E_USAGE, "this qry was opened for its catalogue only");
	for (size_t i = 0; i < q->ntab; i++)
		for (size_t j = 0; j < q->tab[i].nsrc; j++)
			q->tab[i].src[j].touched = 0;
	q->timed_out = 0;
	q->vt_rc = 0;
	q->deadline_us = q->max_ms > 0 ? mu_mono_us() + q->max_ms * 1000 : 0;
	if (q->max_ms > 0)
		sqlite3_progress_handler(q->db, 1000, progress, q);
	if (q->max_heap > 0)
		old_heap = sqlite3_hard_heap_limit64(q->max_heap);
	if ((src = sqlite3_prepare_v3(q->db, sql, -1, 0, &stmt, &tail)) != SQLITE_OK) {
		rc = sql_error(q, src, err);
		goto out;
	}
	if (stmt == NULL) {
		rc = fail(err, MU_E_USAGE, "no SQL statement");
		goto out;
	}
	/* Whatever follows must be blank or comments. */
	if (tail != NULL && *tail != '\0' &&
	    (sqlite3_prepare_v3(q->db, tail, -1, 0, &more, NULL) != SQLITE_OK || more != NULL)) {
		rc = fail(err, MU_E_USAGE, "one statement only: the text goes on after the first "
			  "statement ends (\"%.40s\")", tail);
		goto out;
	}
	if (!sqlite3_stmt_readonly(stmt)) {
		rc = fail(err, MU_E_DENIED, "not authorized: a query can only read");
		goto out;
	}
	while ((src = sqlite3_step(stmt)) == SQLITE_ROW) {
		rows++;
		if (fn != NULL && (rc = fn(ctx, stmt)) != 0)
			break;
	}
	if (rc > 0)
		rc = 0;
	else if (rc == 0 && src != SQLITE_DONE)
		rc = sql_error(q, src, err);
	else if (rc == 0 && rows == 0 && fn != NULL && (rc = fn(ctx, stmt)) > 0)
		rc = 0;   /* the header-only call */
out:
	sqlite3_finalize(more);
	sqlite3_finalize(stmt);
	if (q->max_heap > 0)
		sqlite3_hard_heap_limit64(old_heap);
	sqlite3_progress_handler(q->db, 0, NULL, NULL);
	return rc;
}

int qry_manifest(struct qry *q, json_t **out)
{
	json_t *a = json_array();

	if (a == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < q->ntab; i++)
		for (size_t j = 0; j < q->tab[i].nsrc; j++) {
			const struct source *s = &q->tab[i].src[j];
			char root[65], when[32];
			if (!s->touched)
				continue;
			sig_hex(s->root, 32, root);
			mu_format_time(s->head_time_us, when, sizeof(when));
			if (json_array_append_new(a, json_pack("{s:s,s:s,s:I,s:s,s:s,s:I}", "dataset",
							       s->dataset, "publisher", s->publisher,
							       "head_size", (json_int_t)s->size,
							       "root", root, "head_time", when,
							       "head_time_us",
							       (json_int_t)s->head_time_us)) < 0) {
				json_decref(a);
				return -ENOMEM;
			}
		}
	*out = a;
	return 0;
}

int qry_tables(struct qry *q, json_t **out)
{
	json_t *a = json_array();

	if (a == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < q->ntab; i++) {
		const struct table *t = &q->tab[i];
		json_t *cols = json_array(), *srcs = json_array();
		for (size_t c = 0; c < t->ncols; c++)
			json_array_append_new(cols, json_pack("{s:s,s:s}", "name", t->cols[c], "type",
							      cls_decl(t->cls[c])));
		for (int p = 0; p < NPROV; p++)
			json_array_append_new(cols, json_pack("{s:s,s:s}", "name", prov_names[p],
							      "type", prov_types[p]));
		for (size_t s = 0; s < t->nsrc; s++)
			if (!t->src[s].left_out)
				json_array_append_new(srcs, json_pack("{s:s,s:s,s:I,s:I}", "dataset",
							      t->src[s].dataset, "publisher",
							      t->src[s].publisher, "head_size",
							      (json_int_t)t->src[s].size, "rows",
							      (json_int_t)t->src[s].rows));
		if (json_array_append_new(a, json_pack("{s:s,s:o,s:o}", "table", t->name, "columns",
						       cols, "sources", srcs)) < 0) {
			json_decref(a);
			return -ENOMEM;
		}
	}
	*out = a;
	return 0;
}
