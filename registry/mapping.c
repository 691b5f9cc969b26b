/*
 * mapping.c - column mappings (see mapping.h): parse the JSON document,
 * work out at the header which output column comes from where, then turn
 * each input record into an output record in two reusable buffers, so a
 * row costs no allocation once the buffers have grown.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "mapping.h"
#include "mu_err.h"

/* The built-in mappings, generated at build time from the JSON files in registry/mappings
 * by the script that embeds the schemas; its table gets our names here. */
#define schema_builtin_table mapping_builtin_table
#define schema_builtin_table_len mapping_builtin_table_len
#include "mappings_builtin.h"
#undef schema_builtin_table
#undef schema_builtin_table_len

#define QUOTE_MAX 48

enum { N_DIGITS = 1, N_ASCII = 2, N_NBSP = 4, N_NEWLINES = 8, N_TRIM = 16 };
enum other { OTHER_KEEP = 0, OTHER_BLANK, OTHER_ERROR };

struct pair {
	char *from, *to;
};

struct strv {
	char **v;
	size_t n;
};

struct split {
	char *column, *sep;
	struct strv into;
};

struct join {
	struct strv columns;
	char *into, *sep;
};

struct vmap {
	struct strv columns;
	struct pair *map;
	size_t n;
	enum other other;
};

struct mapping {
	char *name, *title, *description, *schema;
	char *skip_prefix, *header_line;
	struct pair *hrepl, *rename, *constant;
	size_t nhrepl, nrename, nconstant;
	struct strv drop, norm_cols;
	unsigned norm;
	struct split *split;
	size_t nsplit;
	struct join *join;
	size_t njoin;
	struct vmap *values;
	size_t nvalues;
	uint8_t digest[32];
};

enum out_kind { OUT_COPY, OUT_SPLIT, OUT_JOIN, OUT_CONST };

struct out_col {
	enum out_kind kind;
	const char *name;
	size_t src;                /* input column (COPY, SPLIT; first of a JOIN) */
	size_t part;               /* SPLIT: which part */
	const struct split *sp;
	const struct join *jn;
	size_t *jsrc;              /* JOIN: input columns */
	const char *value;         /* CONST */
	const struct vmap *vm;     /* values map, or NULL */
};

struct buf {
	char *p;
	size_t len, cap;
};

struct mapping_run {
	const struct mapping *m;
	int state;                 /* 0 before the header, 1 after, -1 bad header */
	struct mapping_error header_err;
	size_t nin;
	char **in_names;
	unsigned char *norm_col;   /* per input column: normalize it */
	struct out_col *out;
	size_t nout;
	size_t *in_off, *out_off;
	struct csv_field *fields;
	struct buf nbuf, obuf;     /* normalized input cells; output cells */
	struct buf jbuf;           /* a join being made */
};

/* ---- small pieces ---- */

__attribute__((format(printf, 2, 3)))
static int fail(char **why, const char *fmt, ...)
{
	if (why != NULL) {
		va_list ap;
		va_start(ap, fmt);
		free(*why);
		if (vasprintf(why, fmt, ap) < 0)
			*why = NULL;
		va_end(ap);
	}
	return MU_E_SCHEMA;
}

__attribute__((format(printf, 3, 4)))
static int row_fail(struct mapping_error *err, unsigned column, const char *fmt, ...)
{
	va_list ap;

	err->column = column;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return MU_E_SCHEMA;
}

/* A cell for a message: cut on a character boundary, controls as spaces. */
static const char *quote(char *dst, size_t cap, const char *s, size_t len)
{
	size_t n = len < QUOTE_MAX ? len : QUOTE_MAX, o = 0;

	while (n < len && n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	for (size_t i = 0; i < n && o + 4 < cap; i++)
		dst[o++] = (unsigned char)s[i] < 0x20 ? ' ' : s[i];
	if (n < len && o + 4 < cap) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
	return dst;
}

static int buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (p == NULL)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static void strv_free(struct strv *v)
{
	for (size_t i = 0; i < v->n; i++)
		free(v->v[i]);
	free(v->v);
	v->v = NULL;
	v->n = 0;
}

static int strv_has(const struct strv *v, const char *s)
{
	for (size_t i = 0; i < v->n; i++)
		if (strcmp(v->v[i], s) == 0)
			return 1;
	return 0;
}

static void pairs_free(struct pair *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(p[i].from);
		free(p[i].to);
	}
	free(p);
}

/* ---- the document ---- */

static int get_string(json_t *obj, const char *key, int need, char **out, const char *where,
		      char **why)
{
	json_t *v = json_object_get(obj, key);

	if (v == NULL)
		return need ? fail(why, "%s: \"%s\" is missing", where, key) : 0;
	if (!json_is_string(v) || (need && json_string_length(v) == 0))
		return fail(why, "%s: \"%s\" must be a%s string", where, key, need ? " non-empty" : "");
	return (*out = strdup(json_string_value(v))) != NULL ? 0 : -ENOMEM;
}

/* A string or an array of non-empty strings. */
static int get_names(json_t *v, struct strv *out, const char *where, const char *key, char **why)
{
	size_t n = json_is_string(v) ? 1 : json_array_size(v);

	if (v == NULL || (!json_is_string(v) && !json_is_array(v)) || n == 0)
		return fail(why, "%s: \"%s\" must be a column name or a non-empty array of them",
			    where, key);
	if ((out->v = calloc(n, sizeof(char *))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_is_string(v) ? v : json_array_get(v, i);
		if (!json_is_string(e) || json_string_length(e) == 0)
			return fail(why, "%s: \"%s\" must hold non-empty column names", where, key);
		if ((out->v[i] = strdup(json_string_value(e))) == NULL)
			return -ENOMEM;
		out->n++;
	}
	return 0;
}

/* {"a": "b", ...} into pairs; PAIR_EMPTY_KEY / PAIR_EMPTY_VALUE allow "". */
enum { PAIR_EMPTY_KEY = 1, PAIR_EMPTY_VALUE = 2 };
static int get_pairs(json_t *obj, const char *key, unsigned empty, struct pair **out, size_t *n,
		     char **why)
{
	json_t *v = json_object_get(obj, key), *val;
	const char *k;

	if (v == NULL)
		return 0;
	if (!json_is_object(v))
		return fail(why, "\"%s\" must be an object of strings", key);
	if ((*out = calloc(json_object_size(v) + 1, sizeof(**out))) == NULL)
		return -ENOMEM;
	json_object_foreach(v, k, val) {
		if (k[0] == '\0' && !(empty & PAIR_EMPTY_KEY))
			return fail(why, "\"%s\": a name must not be empty", key);
		if (!json_is_string(val) || (!(empty & PAIR_EMPTY_VALUE) && json_string_length(val) == 0))
			return fail(why, "\"%s\": \"%s\" must map to a%s string", key, k,
				    (empty & PAIR_EMPTY_VALUE) ? "" : " non-empty");
		(*out)[*n].from = strdup(k);
		(*out)[*n].to = strdup(json_string_value(val));
		(*n)++;
		if ((*out)[*n - 1].from == NULL || (*out)[*n - 1].to == NULL)
			return -ENOMEM;
	}
	return 0;
}

static int parse_normalize(struct mapping *m, json_t *v, char **why)
{
	static const struct {
		const char *key;
		unsigned bit;
	} opts[] = { { "digits", N_DIGITS }, { "ascii", N_ASCII }, { "nbsp", N_NBSP },
		     { "newlines", N_NEWLINES }, { "trim", N_TRIM } };
	const char *k;
	json_t *val;

	if (v == NULL)
		return 0;
	if (!json_is_object(v))
		return fail(why, "\"normalize\" must be an object");
	json_object_foreach(v, k, val) {
		size_t i;
		if (strcmp(k, "columns") == 0) {
			int rc = get_names(val, &m->norm_cols, "\"normalize\"", "columns", why);
			if (rc < 0)
				return rc;
			continue;
		}
		for (i = 0; i < sizeof(opts) / sizeof(opts[0]) && strcmp(opts[i].key, k) != 0; i++)
			;
		if (i == sizeof(opts) / sizeof(opts[0]))
			return fail(why, "\"normalize\": unknown option \"%s\" (digits, ascii, nbsp, "
				    "newlines, trim, columns)", k);
		if (!json_is_boolean(val))
			return fail(why, "\"normalize\": \"%s\" must be true or false", k);
		if (json_is_true(val))
			m->norm |= opts[i].bit;
	}
	return 0;
}

/* Each element of an array-valued key, as an object, with a label. */
static int each_object(json_t *root, const char *key, size_t size, void **out, size_t *n,
		       int (*fn)(json_t *o, void *elem, const char *where, char **why), char **why)
{
	json_t *v = json_object_get(root, key);
	char where[64];
	int rc;

	if (v == NULL)
		return 0;
	if (!json_is_array(v))
		return fail(why, "\"%s\" must be an array of objects", key);
	if ((*out = calloc(json_array_size(v) + 1, size)) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < json_array_size(v); i++) {
		json_t *o = json_array_get(v, i);
		snprintf(where, sizeof(where), "\"%s\" item %zu", key, i + 1);
		if (!json_is_object(o))
			return fail(why, "%s is not an object", where);
		(*n)++;   /* counted first: destroy frees a half-parsed item */
		if ((rc = fn(o, (char *)*out + i * size, where, why)) < 0)
			return rc;
	}
	return 0;
}

static int parse_split(json_t *o, void *elem, const char *where, char **why)
{
	struct split *s = elem;
	int rc;

	if ((rc = get_string(o, "column", 1, &s->column, where, why)) < 0 ||
	    (rc = get_string(o, "separator", 1, &s->sep, where, why)) < 0 ||
	    (rc = get_names(json_object_get(o, "into"), &s->into, where, "into", why)) < 0)
		return rc;
	return s->into.n < 2 ? fail(why, "%s: \"into\" must name at least two columns", where) : 0;
}

static int parse_join(json_t *o, void *elem, const char *where, char **why)
{
	struct join *j = elem;
	int rc;

	if ((rc = get_names(json_object_get(o, "columns"), &j->columns, where, "columns", why)) < 0 ||
	    (rc = get_string(o, "into", 1, &j->into, where, why)) < 0 ||
	    (rc = get_string(o, "separator", 0, &j->sep, where, why)) < 0)
		return rc;
	if (j->sep == NULL && (j->sep = strdup("")) == NULL)
		return -ENOMEM;
	return j->columns.n < 2 ? fail(why, "%s: \"columns\" must name at least two columns",
				       where) : 0;
}

static int parse_values(json_t *o, void *elem, const char *where, char **why)
{
	struct vmap *vm = elem;
	json_t *other = json_object_get(o, "other");
	int rc;

	if ((rc = get_names(json_object_get(o, "columns"), &vm->columns, where, "columns", why)) < 0 ||
	    (rc = get_pairs(o, "map", PAIR_EMPTY_KEY | PAIR_EMPTY_VALUE, &vm->map, &vm->n, why)) < 0)
		return rc;
	if (vm->n == 0)
		return fail(why, "%s: \"map\" must be a non-empty object of strings", where);
	if (other == NULL)
		return 0;
	const char *s = json_string_value(other);
	if (s != NULL && strcmp(s, "keep") == 0)
		vm->other = OTHER_KEEP;
	else if (s != NULL && strcmp(s, "blank") == 0)
		vm->other = OTHER_BLANK;
	else if (s != NULL && strcmp(s, "error") == 0)
		vm->other = OTHER_ERROR;
	else
		return fail(why, "%s: \"other\" must be \"keep\", \"blank\" or \"error\"", where);
	return 0;
}

static int valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
		      s[i] == '-'))
			return 0;
	return 1;
}

static const char *const known_keys[] = {
	"name", "title", "description", "schema", "skip_prefix", "header_line", "header_replace",
	"rename", "drop", "normalize", "split", "join", "values", "constant",
};

int mapping_parse(const char *json, size_t len, struct mapping **out, char **why)
{
	struct mapping *m = NULL;
	json_error_t jerr;
	json_t *root, *v;
	const char *k;
	int rc;

	*out = NULL;
	if (why != NULL)
		*why = NULL;
	if ((root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL)
		return fail(why, "invalid JSON at line %d, column %d: %s", jerr.line, jerr.column,
			    jerr.text);
	if (!json_is_object(root)) {
		rc = fail(why, "a mapping must be a JSON object");
		goto out;
	}
	json_object_foreach(root, k, v) {
		size_t i;
		for (i = 0; i < sizeof(known_keys) / sizeof(known_keys[0]) &&
			    strcmp(known_keys[i], k) != 0; i++)
			;
		if (i == sizeof(known_keys) / sizeof(known_keys[0])) {
			rc = fail(why, "unknown key \"%s\" (see docs/DATA.md for what a mapping "
				  "may say)", k);
			goto out;
		}
	}
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = get_string(root, "name", 1, &m->name, "the mapping", why)) < 0)
		goto out;
	if (!valid_name(m->name)) {
		rc = fail(why, "\"name\" must be 1 to 64 of a-z, 0-9, _ and -");
		goto out;
	}
	if ((rc = get_string(root, "title", 0, &m->title, "the mapping", why)) < 0 ||
	    (rc = get_string(root, "description", 0, &m->description, "the mapping", why)) < 0 ||
	    (rc = get_string(root, "schema", 0, &m->schema, "the mapping", why)) < 0 ||
	    (rc = get_string(root, "skip_prefix", 0, &m->skip_prefix, "the mapping", why)) < 0 ||
	    (rc = get_string(root, "header_line", 0, &m->header_line, "the mapping", why)) < 0 ||
	    (rc = get_pairs(root, "header_replace", PAIR_EMPTY_VALUE, &m->hrepl, &m->nhrepl, why)) < 0 ||
	    (rc = get_pairs(root, "rename", 0, &m->rename, &m->nrename, why)) < 0 ||
	    (rc = get_pairs(root, "constant", PAIR_EMPTY_VALUE, &m->constant, &m->nconstant, why)) < 0 ||
	    (rc = parse_normalize(m, json_object_get(root, "normalize"), why)) < 0 ||
	    (rc = each_object(root, "split", sizeof(struct split), (void **)&m->split, &m->nsplit,
			      parse_split, why)) < 0 ||
	    (rc = each_object(root, "join", sizeof(struct join), (void **)&m->join, &m->njoin,
			      parse_join, why)) < 0 ||
	    (rc = each_object(root, "values", sizeof(struct vmap), (void **)&m->values, &m->nvalues,
			      parse_values, why)) < 0)
		goto out;
	if ((v = json_object_get(root, "drop")) != NULL &&
	    (rc = get_names(v, &m->drop, "the mapping", "drop", why)) < 0)
		goto out;
	if (m->skip_prefix != NULL && m->skip_prefix[0] == '\0') {
		rc = fail(why, "\"skip_prefix\" must not be empty: it would skip every line");
		goto out;
	}
	if (EVP_Digest(json, len, m->digest, NULL, EVP_sha256(), NULL) != 1) {
		rc = MU_E_CRYPTO;
		goto out;
	}
	*out = m;
	m = NULL;
	rc = 0;
out:
	if (rc == -ENOMEM && why != NULL && *why == NULL)
		fail(why, "out of memory");
	mapping_destroy(&m);
	json_decref(root);
	return rc;
}

void mapping_destroy(struct mapping **mp)
{
	struct mapping *m = *mp;

	if (m == NULL)
		return;
	free(m->name);
	free(m->title);
	free(m->description);
	free(m->schema);
	free(m->skip_prefix);
	free(m->header_line);
	pairs_free(m->hrepl, m->nhrepl);
	pairs_free(m->rename, m->nrename);
	pairs_free(m->constant, m->nconstant);
	strv_free(&m->drop);
	strv_free(&m->norm_cols);
	for (size_t i = 0; i < m->nsplit; i++) {
		free(m->split[i].column);
		free(m->split[i].sep);
		strv_free(&m->split[i].into);
	}
	free(m->split);
	for (size_t i = 0; i < m->njoin; i++) {
		strv_free(&m->join[i].columns);
		free(m->join[i].into);
		free(m->join[i].sep);
	}
	free(m->join);
	for (size_t i = 0; i < m->nvalues; i++) {
		strv_free(&m->values[i].columns);
		pairs_free(m->values[i].map, m->values[i].n);
	}
	free(m->values);
	free(m);
	*mp = NULL;
}

const char *mapping_name(const struct mapping *m)
{
	return m->name;
}

const char *mapping_schema(const struct mapping *m)
{
	return m->schema;
}

const uint8_t *mapping_digest(const struct mapping *m)
{
	return m->digest;
}

size_t mapping_builtin_count(void)
{
	return mapping_builtin_table_len;
}

const char *mapping_builtin_json(size_t i)
{
	return i < mapping_builtin_table_len ? mapping_builtin_table[i] : NULL;
}

static int read_file(const char *path, char **buf, size_t *len, char **why)
{
	FILE *fp = fopen(path, "rb");
	int rc = 0;

	*buf = NULL;
	if (fp == NULL) {
		rc = -errno;
		fail(why, "cannot open %s: %s", path, strerror(errno));
		return rc;
	}
	if ((*buf = malloc(MAPPING_FILE_MAX + 1)) == NULL) {
		rc = -ENOMEM;
	} else {
		*len = fread(*buf, 1, MAPPING_FILE_MAX + 1, fp);
		if (ferror(fp)) {
			fail(why, "cannot read %s", path);
			rc = -EIO;
		} else if (*len > MAPPING_FILE_MAX) {
			fail(why, "%s is larger than %u bytes", path, MAPPING_FILE_MAX);
			rc = MU_E_TOOBIG;
		}
	}
	fclose(fp);
	if (rc < 0) {
		free(*buf);
		*buf = NULL;
	}
	return rc;
}

int mapping_resolve(const char *spec, struct mapping **out, char **why)
{
	size_t n = strlen(spec);

	*out = NULL;
	if (why != NULL)
		*why = NULL;
	if (strchr(spec, '/') != NULL || (n >= 5 && strcmp(spec + n - 5, ".json") == 0)) {
		char *buf;
		size_t len = 0;
		int rc = read_file(spec, &buf, &len, why);
		if (rc < 0)
			return rc;
		rc = mapping_parse(buf, len, out, why);
		free(buf);
		return rc;
	}
	for (size_t i = 0; i < mapping_builtin_table_len; i++) {
		json_t *root = json_loads(mapping_builtin_table[i], 0, NULL);
		const char *name = json_string_value(json_object_get(root, "name"));
		int match = name != NULL && strcmp(name, spec) == 0;
		json_decref(root);
		if (match)
			return mapping_parse(mapping_builtin_table[i], strlen(mapping_builtin_table[i]),
					     out, why);
	}
	fail(why, "no built-in mapping is named \"%s\"", spec);
	return -ENOENT;
}

/* ---- cells ---- */

static size_t space_at(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;

	if (len >= 1 && (p[0] == ' ' || p[0] == '\t' || p[0] == '\r' || p[0] == '\n'))
		return 1;
	if (len >= 2 && p[0] == 0xC2 && p[1] == 0xA0)
		return 2;
	if (len >= 3 && p[0] == 0xE3 && p[1] == 0x80 && p[2] == 0x80)
		return 3;
	return 0;
}

static size_t space_before(const char *s, size_t len)
{
	for (size_t n = 1; n <= 3 && n <= len; n++)
		if (space_at(s + len - n, n) == n)
			return n;
	return 0;
}

/* Cut spaces from both ends of s[0..len): new start in *start. */
static size_t trim(const char *s, size_t len, size_t *start)
{
	size_t a = 0, n;

	while (a < len && (n = space_at(s + a, len - a)) > 0)
		a += n;
	while (len > a && (n = space_before(s + a, len - a)) > 0)
		len -= n;
	*start = a;
	return len - a;
}

/* Append cell s, normalized under flags, to b (NUL-terminated). */
static int norm_cell(unsigned flags, const char *s, size_t len, struct buf *b)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t begin = b->len, i = 0, start;
	int rc = 0;

	while (i < len && rc == 0) {
		if ((flags & (N_DIGITS | N_ASCII)) && p[i] == 0xEF && len - i >= 3 &&
		    (p[i + 1] == 0xBC || p[i + 1] == 0xBD) && (p[i + 2] & 0xC0) == 0x80) {
			unsigned cp = 0xF000u | (unsigned)(p[i + 1] & 0x3F) << 6 | (p[i + 2] & 0x3F);
			int fold = (flags & N_ASCII) ? cp >= 0xFF01 && cp <= 0xFF5E :
						      cp >= 0xFF10 && cp <= 0xFF19;
			if (fold) {
				char c = (char)(cp - 0xFEE0);
				rc = buf_add(b, &c, 1);
				i += 3;
				continue;
			}
		}
		if ((flags & N_NBSP) && p[i] == 0xC2 && len - i >= 2 && p[i + 1] == 0xA0) {
			rc = buf_add(b, " ", 1);
			i += 2;
			continue;
		}
		if ((flags & N_NEWLINES) && (p[i] == '\r' || p[i] == '\n')) {
			while (i < len && (p[i] == '\r' || p[i] == '\n'))
				i++;
			rc = buf_add(b, " ", 1);
			continue;
		}
		rc = buf_add(b, s + i, 1);
		i++;
	}
	/* An empty first cell leaves the buffer unallocated: nothing to trim. */
	if (rc == 0 && (flags & N_TRIM) && b->len > begin) {
		size_t n = trim(b->p + begin, b->len - begin, &start);
		memmove(b->p + begin, b->p + begin + start, n);
		b->len = begin + n;
	}
	return rc < 0 ? rc : buf_add(b, "", 0);
}

/* ---- the header ---- */

void mapping_run_destroy(struct mapping_run **rp)
{
	struct mapping_run *r = *rp;

	if (r == NULL)
		return;
	for (size_t i = 0; i < r->nin; i++)
		free(r->in_names[i]);
	free(r->in_names);
	for (size_t i = 0; i < r->nout; i++)
		free(r->out[i].jsrc);
	free(r->out);
	free(r->norm_col);
	free(r->in_off);
	free(r->out_off);
	free(r->fields);
	free(r->nbuf.p);
	free(r->obuf.p);
	free(r->jbuf.p);
	free(r);
	*rp = NULL;
}

int mapping_run_new(const struct mapping *m, struct mapping_run **out)
{
	if ((*out = calloc(1, sizeof(**out))) == NULL)
		return -ENOMEM;
	(*out)->m = m;
	return 0;
}

/* A header cell with the look-alike fixes, trimmed, then renamed. */
static char *header_name(const struct mapping *m, const char *cell, size_t len)
{
	struct buf b = { 0 };
	size_t start, n;
	char *name;

	if (buf_add(&b, cell, len) < 0)
		return NULL;
	for (size_t i = 0; i < m->nhrepl; i++) {
		const char *from = m->hrepl[i].from, *to = m->hrepl[i].to;
		size_t fl = strlen(from), tl = strlen(to);
		struct buf nb = { 0 };
		const char *p = b.p, *hit;
		while ((hit = strstr(p, from)) != NULL) {
			if (buf_add(&nb, p, (size_t)(hit - p)) < 0 || buf_add(&nb, to, tl) < 0)
				goto nomem;
			p = hit + fl;
		}
		if (buf_add(&nb, p, strlen(p)) < 0) {
nomem:
			free(nb.p);
			free(b.p);
			return NULL;
		}
		free(b.p);
		b = nb;
	}
	n = trim(b.p, b.len, &start);
	for (size_t i = 0; i < m->nrename; i++)
		if (strlen(m->rename[i].from) == n && memcmp(m->rename[i].from, b.p + start, n) == 0) {
			free(b.p);
			return strdup(m->rename[i].to);
		}
	name = strndup(b.p + start, n);
	free(b.p);
	return name;
}

static long in_col(const struct mapping_run *r, const char *name)
{
	for (size_t i = 0; i < r->nin; i++)
		if (strcmp(r->in_names[i], name) == 0)
			return (long)i;
	return -1;
}

/* Names the mapping uses that the header lacks, into msg. */
static void want(const struct mapping_run *r, const char *name, const char *role, FILE *msg,
		 int *missing)
{
	if (in_col(r, name) >= 0)
		return;
	fprintf(msg, "%s\"%s\" (%s)", (*missing)++ ? ", " : "", name, role);
}

/* Add an output column; two of one name are the mapping's mistake (or
 * the file's, when a copied column is named twice). */
static int add_out(struct mapping_run *r, struct out_col oc, struct mapping_error *err)
{
	for (size_t i = 0; i < r->nout; i++)
		if (strcmp(r->out[i].name, oc.name) == 0)
			return row_fail(err, oc.kind == OUT_CONST ? 0 : (unsigned)oc.src + 1,
					"mapping %s: two columns would be named \"%s\"", r->m->name,
					oc.name);
	r->out[r->nout++] = oc;
	return 0;
}

/* Does a split of m make a column of this name? */
static int split_makes(const struct mapping *m, const char *name)
{
	for (size_t i = 0; i < m->nsplit; i++)
		if (strv_has(&m->split[i].into, name))
			return 1;
	return 0;
}

static int build_header(struct mapping_run *r, const struct csv_record *in, struct mapping_error *err)
{
	const struct mapping *m = r->m;
	char *text = NULL;
	size_t tlen = 0, nmax;
	FILE *msg;
	int missing = 0, rc;

	r->nin = in->nfields;
	if ((r->in_names = calloc(r->nin, sizeof(char *))) == NULL ||
	    (r->norm_col = calloc(r->nin, 1)) == NULL || (r->in_off = calloc(r->nin, sizeof(size_t))) == NULL)
		return -ENOMEM;
	for (size_t c = 0; c < r->nin; c++)
		if ((r->in_names[c] = header_name(m, in->fields[c].ptr, in->fields[c].len)) == NULL)
			return -ENOMEM;
	/* Every name the mapping reads must be in the header. */
	if ((msg = open_memstream(&text, &tlen)) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < m->nrename; i++)
		if (in_col(r, m->rename[i].to) < 0)
			fprintf(msg, "%s\"%s\" (renamed to %s)", missing++ ? ", " : "",
				m->rename[i].from, m->rename[i].to);
	for (size_t i = 0; i < m->drop.n; i++)
		if (!split_makes(m, m->drop.v[i]))   /* a split part dropped: "T" of a datetime */
			want(r, m->drop.v[i], "dropped", msg, &missing);
	for (size_t i = 0; i < m->norm_cols.n; i++)
		want(r, m->norm_cols.v[i], "normalized", msg, &missing);
	for (size_t i = 0; i < m->nsplit; i++)
		want(r, m->split[i].column, "split", msg, &missing);
	for (size_t i = 0; i < m->njoin; i++)
		for (size_t k = 0; k < m->join[i].columns.n; k++)
			want(r, m->join[i].columns.v[k], "joined", msg, &missing);
	fclose(msg);
	if (missing) {
		rc = row_fail(err, 0, "mapping %s does not fit this file: its header has no column %s",
			      m->name, text ? text : "");
		free(text);
		return rc;
	}
	free(text);

	nmax = r->nin + m->nconstant + m->njoin;
	for (size_t i = 0; i < m->nsplit; i++)
		nmax += m->split[i].into.n;
	if ((r->out = calloc(nmax, sizeof(*r->out))) == NULL)
		return -ENOMEM;
	for (size_t c = 0; c < r->nin; c++) {
		const char *n = r->in_names[c];
		int used = strv_has(&m->drop, n);
		r->norm_col[c] = m->norm_cols.n == 0 || strv_has(&m->norm_cols, n);
		for (size_t i = 0; i < m->nsplit; i++)
			used |= strcmp(m->split[i].column, n) == 0;
		for (size_t i = 0; i < m->njoin; i++)
			used |= strv_has(&m->join[i].columns, n);
		if (!used && (rc = add_out(r, (struct out_col){ .kind = OUT_COPY, .name = n, .src = c },
					   err)) < 0)
			return rc;
	}
	for (size_t i = 0; i < m->nsplit; i++)
		for (size_t k = 0; k < m->split[i].into.n; k++)
			if (!strv_has(&m->drop, m->split[i].into.v[k]) &&
			    (rc = add_out(r, (struct out_col){ .kind = OUT_SPLIT,
							       .name = m->split[i].into.v[k],
							       .src = (size_t)in_col(r, m->split[i].column),
							       .part = k, .sp = &m->split[i] }, err)) < 0)
				return rc;
	for (size_t i = 0; i < m->njoin; i++) {
		const struct join *j = &m->join[i];
		size_t *src = calloc(j->columns.n, sizeof(*src));
		if (src == NULL)
			return -ENOMEM;
		for (size_t k = 0; k < j->columns.n; k++)
			src[k] = (size_t)in_col(r, j->columns.v[k]);
		if ((rc = add_out(r, (struct out_col){ .kind = OUT_JOIN, .name = j->into, .src = src[0],
						       .jn = j, .jsrc = src }, err)) < 0) {
			free(src);
			return rc;
		}
	}
	for (size_t i = 0; i < m->nconstant; i++)
		if ((rc = add_out(r, (struct out_col){ .kind = OUT_CONST, .name = m->constant[i].from,
						       .value = m->constant[i].to }, err)) < 0)
			return rc;
	for (size_t i = 0; i < m->nvalues; i++)
		for (size_t k = 0; k < m->values[i].columns.n; k++) {
			size_t j;
			for (j = 0; j < r->nout && strcmp(r->out[j].name, m->values[i].columns.v[k]) != 0; j++)
				;
			if (j == r->nout)
				return row_fail(err, 0, "mapping %s does not fit this file: it maps the "
						"values of column \"%s\", which the file does not have",
						m->name, m->values[i].columns.v[k]);
			r->out[j].vm = &m->values[i];
		}
	if ((r->out_off = calloc(r->nout + 1, sizeof(size_t))) == NULL ||
	    (r->fields = calloc(r->nout + 1, sizeof(*r->fields))) == NULL)
		return -ENOMEM;
	return 0;
}

/* ---- rows ---- */

/* Part k of a split cell: an empty cell gives empty parts, any other must
 * have exactly as many parts as the split names. Spaces around a part go. */
static int split_part(const struct out_col *oc, const char *s, size_t len, const char **part,
		      size_t *plen, struct mapping_error *err)
{
	const char *sep = oc->sp->sep, *p = s, *end = s + len, *hit;
	size_t seplen = strlen(sep), n = 1, start;
	char q[QUOTE_MAX + 8];

	*plen = 0;
	*part = s;
	if (len == 0)
		return 0;
	for (const char *x = s; (hit = strstr(x, sep)) != NULL && hit < end; x = hit + seplen)
		n++;
	if (n != oc->sp->into.n)
		return row_fail(err, (unsigned)oc->src + 1, "\"%s\" does not split into %zu parts at "
				"\"%s\" (mapping splits column \"%s\")", quote(q, sizeof(q), s, len),
				oc->sp->into.n, sep, oc->sp->column);
	for (size_t k = 0; k < oc->part; k++)
		p = strstr(p, sep) + seplen;
	hit = strstr(p, sep);
	*plen = trim(p, (size_t)((hit != NULL && hit < end ? hit : end) - p), &start);
	*part = p + start;
	return 0;
}

static int map_value(const struct out_col *oc, const char **s, size_t *len, struct mapping_error *err)
{
	const struct vmap *vm = oc->vm;
	char q[QUOTE_MAX + 8], known[160];
	size_t o = 0;

	for (size_t i = 0; i < vm->n; i++)
		if (strlen(vm->map[i].from) == *len && memcmp(vm->map[i].from, *s, *len) == 0) {
			*s = vm->map[i].to;
			*len = strlen(vm->map[i].to);
			return 0;
		}
	if (vm->other == OTHER_BLANK)
		*len = 0;
	if (vm->other != OTHER_ERROR)
		return 0;
	known[0] = '\0';
	for (size_t i = 0; i < vm->n && o + 8 < sizeof(known); i++) {
		int w = snprintf(known + o, sizeof(known) - o, "%s\"%s\"", i ? ", " : "", vm->map[i].from);
		o = w < 0 || (size_t)w >= sizeof(known) - o ? sizeof(known) : o + (size_t)w;
	}
	return row_fail(err, oc->kind == OUT_CONST ? 0 : (unsigned)oc->src + 1,
			"column \"%s\": value \"%s\" is not one the mapping knows (%s)", oc->name,
			quote(q, sizeof(q), *s, *len), known);
}

static int map_row(struct mapping_run *r, const struct csv_record *in, struct mapping_error *err)
{
	const struct mapping *m = r->m;
	int rc;

	if (in->nfields != r->nin)
		return row_fail(err, 0, "line has %zu fields, the header has %zu", in->nfields, r->nin);
	r->nbuf.len = 0;
	for (size_t c = 0; c < r->nin; c++) {
		r->in_off[c] = r->nbuf.len;
		if ((rc = norm_cell(r->norm_col[c] ? m->norm : 0, in->fields[c].ptr, in->fields[c].len,
				    &r->nbuf)) < 0)
			return rc;
		r->nbuf.len++;   /* keep the NUL: cells are C strings */
	}
	r->obuf.len = 0;
	for (size_t j = 0; j < r->nout; j++) {
		const struct out_col *oc = &r->out[j];
		const char *s = oc->kind == OUT_CONST ? oc->value : r->nbuf.p + r->in_off[oc->src];
		size_t len = strlen(s);

		if (oc->kind == OUT_SPLIT && (rc = split_part(oc, s, len, &s, &len, err)) < 0)
			return rc;
		if (oc->kind == OUT_JOIN) {
			r->jbuf.len = 0;
			for (size_t k = 0; k < oc->jn->columns.n; k++) {
				const char *part = r->nbuf.p + r->in_off[oc->jsrc[k]];
				if (part[0] == '\0')
					continue;
				if ((r->jbuf.len > 0 && (rc = buf_add(&r->jbuf, oc->jn->sep,
								      strlen(oc->jn->sep))) < 0) ||
				    (rc = buf_add(&r->jbuf, part, strlen(part))) < 0)
					return rc;
			}
			s = r->jbuf.p != NULL ? r->jbuf.p : "";
			len = r->jbuf.len;
		}
		if (oc->vm != NULL && (rc = map_value(oc, &s, &len, err)) < 0)
			return rc;
		r->out_off[j] = r->obuf.len;
		if ((rc = buf_add(&r->obuf, s, len)) < 0)
			return rc;
		r->obuf.len++;
	}
	for (size_t j = 0; j < r->nout; j++) {
		r->fields[j].ptr = r->obuf.p + r->out_off[j];
		r->fields[j].len = strlen(r->fields[j].ptr);
		r->fields[j].quoted = 0;
	}
	return 0;
}

int mapping_apply(struct mapping_run *r, const struct csv_record *in, struct csv_record *out,
		  struct mapping_error *err)
{
	const struct mapping *m = r->m;
	const char *first = in->nfields > 0 ? in->fields[0].ptr : "";
	int rc;

	if (r->state < 0) {
		*err = r->header_err;
		return MU_E_SCHEMA;
	}
	if (r->state == 0 && m->header_line != NULL && strcmp(first, m->header_line) == 0) {
		/* the header line itself may start with the skip prefix */
	} else if (m->skip_prefix != NULL && strncmp(first, m->skip_prefix, strlen(m->skip_prefix)) == 0) {
		return MAPPING_SKIP;
	} else if (r->state == 0 && m->header_line != NULL) {
		r->state = -1;
		row_fail(&r->header_err, 0, "mapping %s expects the header on the line whose first cell "
			 "is \"%s\", but line %llu comes first", m->name, m->header_line,
			 (unsigned long long)in->line);
		*err = r->header_err;
		return MU_E_SCHEMA;
	}
	out->line = in->line;
	if (r->state == 0) {
		if ((rc = build_header(r, in, &r->header_err)) < 0) {
			if (rc == MU_E_SCHEMA) {
				r->state = -1;
				*err = r->header_err;
			}
			return rc;
		}
		r->state = 1;
		for (size_t j = 0; j < r->nout; j++) {
			r->fields[j].ptr = r->out[j].name;
			r->fields[j].len = strlen(r->out[j].name);
			r->fields[j].quoted = 0;
		}
		out->nfields = r->nout;
		out->fields = r->fields;
		return MAPPING_HEADER;
	}
	if ((rc = map_row(r, in, err)) < 0)
		return rc;
	out->nfields = r->nout;
	out->fields = r->fields;
	return MAPPING_ROW;
}

unsigned mapping_source_column(const struct mapping_run *r, size_t i)
{
	if (i >= r->nout || r->out[i].kind == OUT_CONST)
		return 0;
	return (unsigned)r->out[i].src + 1;
}
