/*
 * export.c - datasets and the catalogue out of the store (see export.h).
 *
 * A view is one dataset at one signed head. Its rows are found in two
 * passes over the log's first `size` entries: the first keeps, per key
 * digest, the seq of the key's last entry; the second yields each upsert
 * that is the last of its key. Memory grows with the number of keys (24
 * bytes each, as in publish), never with the rows' contents.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "export.h"
#include "head.h"
#include "mu_err.h"
#include "rec.h"
#include "redact.h"
#include "schema.h"
#include "sig.h"
#include "trust.h"
#include "util.h"

__attribute__((format(printf, 4, 5)))
static int failw(char *why, size_t whylen, int rc, const char *fmt, ...)
{
	if (why != NULL && whylen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* ---- a dataset at a head ---- */

/* How the fields of one schema version land on the current schema's. */
struct version_map {
	char *ref;
	long *to;       /* entry field index -> current field index, or -1 */
	size_t n;
};

struct view {
	struct store_txn *t;
	struct store_dataset ds;
	struct schema *s;            /* the dataset's current schema */
	uint64_t size;               /* the head the rows are read at */
	uint8_t root[32];
	int64_t head_time_us;
	struct keyset last;          /* key digest -> seq of the key's last entry */
	struct version_map *vm;
	size_t nvm;
	const struct mu_value **vals;   /* per current field; NULL is NULL */
	long valid[2];               /* fields marked x-valid from / until, or -1 */
	struct rec_buf text;         /* scratch for formatted cells */
};

/* The schema "id@version": as the store holds it, else a built-in one. */
static int load_schema(struct store_txn *t, const char *ref, struct schema **out)
{
	const uint8_t *json;
	size_t len;
	int rc = store_schema_get(t, ref, &json, &len);

	if (rc == 0)
		return schema_parse((const char *)json, len, out, NULL);
	if (rc != -ENOENT || strchr(ref, '/') != NULL)
		return rc;
	return schema_resolve(ref, out, NULL);
}

static void view_close(struct view *v)
{
	store_dataset_fini(&v->ds);
	schema_destroy(&v->s);
	keyset_fini(&v->last);
	for (size_t i = 0; i < v->nvm; i++) {
		free(v->vm[i].ref);
		free(v->vm[i].to);
	}
	free(v->vm);
	free(v->vals);
	rec_buf_fini(&v->text);
	memset(v, 0, sizeof(*v));
}

/* The key and operation of entry seq (an entry or a redaction stub). With
 * d != NULL and an entry that is no stub, *d is the decoded entry. */
static int entry_at(struct view *v, uint64_t seq, struct rec_entry_decoded **d, uint8_t digest[16],
		    int *live_op)
{
	const uint8_t *buf;
	size_t len;
	int rc;

	*d = NULL;
	if ((rc = store_entry_get(v->t, v->ds.local_id, seq, &buf, &len)) < 0)
		return rc == -ENOENT ? MU_E_CORRUPT : rc;
	if (redact_is_stub(buf, len)) {
		struct redact_stub stub;
		if ((rc = redact_stub_decode(buf, len, &stub)) < 0)
			return rc;
		keyset_digest(stub.key, stub.key_len, digest);
		redact_stub_fini(&stub);
		*live_op = 0;   /* its row is gone */
		return 0;
	}
	if ((rc = rec_entry_decode(buf, len, d)) < 0)
		return rc;
	keyset_digest((*d)->e.key, (*d)->e.key_len, digest);
	*live_op = (*d)->e.op == REC_UPSERT && (*d)->e.row != NULL;
	return 0;
}

static int view_open(struct store_txn *t, const char *dataset, uint64_t as_of, struct view *v,
		     char *why, size_t whylen)
{
	struct head_signed hs;
	const uint8_t *buf;
	size_t len;
	char ref[160];
	int rc;

	memset(v, 0, sizeof(*v));
	v->t = t;
	keyset_init(&v->last);
	v->valid[0] = v->valid[1] = -1;
	if ((rc = store_dataset_get(t, dataset, &v->ds)) < 0)
		return failw(why, whylen, rc, "this node holds no dataset %s", dataset);
	v->size = as_of ? as_of : v->ds.head_size;
	if (v->size == 0 || v->size > v->ds.size ||
	    store_head_get(t, v->ds.local_id, v->size, &buf, &len) < 0)
		return failw(why, whylen, MU_E_USAGE, "%s has no signed head at size %" PRIu64
			     " (the log has %" PRIu64 " entries; its newest head is at %" PRIu64 ")",
			     dataset, v->size, v->ds.size, v->ds.head_size);
	if ((rc = head_decode(buf, len, &hs)) < 0)
		return failw(why, whylen, rc, "the head of %s at %" PRIu64 " does not decode", dataset,
			     v->size);
	memcpy(v->root, hs.hd->h.root, 32);
	v->head_time_us = hs.hd->h.time_us;
	/* A replica has no catalogue record of its own: the licence is the
	 * one the publisher signed into its head. */
	if ((v->ds.license == NULL || v->ds.license[0] == '\0') && hs.hd->h.license != NULL &&
	    hs.hd->h.license[0] != '\0') {
		free(v->ds.license);
		if ((v->ds.license = strdup(hs.hd->h.license)) == NULL) {
			head_signed_fini(&hs);
			return -ENOMEM;
		}
	}
	head_signed_fini(&hs);
	snprintf(ref, sizeof(ref), "%s@%u", v->ds.schema_id, v->ds.schema_version);
	if ((rc = load_schema(t, ref, &v->s)) < 0)
		return failw(why, whylen, rc == -ENOENT ? MU_E_SCHEMA : rc,
			     "%s uses schema %s, which this node does not hold", dataset, ref);
	if ((v->vals = calloc(v->s->nfields + 1, sizeof(*v->vals))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < v->s->nfields; i++)
		if (v->s->fields[i].valid != SCHEMA_VALID_NONE)
			v->valid[v->s->fields[i].valid == SCHEMA_VALID_UNTIL] = (long)i;
	for (uint64_t seq = 0; seq < v->size; seq++) {
		struct rec_entry_decoded *d;
		uint8_t digest[16];
		int live;
		if ((rc = entry_at(v, seq, &d, digest, &live)) < 0)
			return failw(why, whylen, rc, "entry %" PRIu64 " of %s: %s", seq, dataset,
				     mu_strerror(rc));
		rec_entry_free(&d);
		if ((rc = keyset_put(&v->last, digest, seq)) < 0)
			return rc;
	}
	return 0;
}

/* The map from fields of schema ref (an entry's) onto the current ones. */
static int version_map(struct view *v, const char *id, unsigned version, const struct version_map **out)
{
	struct version_map *grown, *m;
	struct schema *s = NULL;
	char ref[160];
	int rc;

	snprintf(ref, sizeof(ref), "%s@%u", id, version);
	for (size_t i = 0; i < v->nvm; i++)
		if (strcmp(v->vm[i].ref, ref) == 0) {
			*out = &v->vm[i];
			return 0;
		}
	if ((rc = load_schema(v->t, ref, &s)) < 0)
		return rc == -ENOENT ? MU_E_SCHEMA : rc;
	if ((grown = realloc(v->vm, (v->nvm + 1) * sizeof(*grown))) == NULL) {
		schema_destroy(&s);
		return -ENOMEM;
	}
	v->vm = grown;
	m = &v->vm[v->nvm];
	m->n = s->nfields;
	m->ref = strdup(ref);
	m->to = calloc(s->nfields + 1, sizeof(long));
	if (m->ref == NULL || m->to == NULL) {
		free(m->ref);
		free(m->to);
		schema_destroy(&s);
		return -ENOMEM;
	}
	for (size_t i = 0; i < s->nfields; i++)
		m->to[i] = schema_field_index(v->s, s->fields[i].name, strlen(s->fields[i].name));
	schema_destroy(&s);
	v->nvm++;
	*out = m;
	return 0;
}

/* Is the row (v->vals) in force on day `at`? NULL bounds are open. */
static int in_force(const struct view *v, const char *at)
{
	size_t n = strlen(at);

	for (int k = 0; k < 2; k++) {
		const struct mu_value *x = v->valid[k] >= 0 ? v->vals[v->valid[k]] : NULL;
		if (x == NULL || x->kind != MU_VAL_TEXT)
			continue;
		int cmp = memcmp(x->text, at, x->len < n ? x->len : n);
		if (cmp == 0)
			cmp = (x->len > n) - (x->len < n);
		if (k == 0 ? cmp > 0 : cmp <= 0)
			return 0;
	}
	return 1;
}

typedef int (*row_fn)(void *ctx, struct view *v);

/* Call fn for each row of the view, in log order, with v->vals set. */
static int each_row(struct view *v, const char *valid_at, row_fn fn, void *ctx)
{
	int rc = 0;

	for (uint64_t seq = 0; seq < v->size && rc == 0; seq++) {
		struct rec_entry_decoded *d;
		struct rec_row *row = NULL;
		const struct version_map *m;
		uint8_t digest[16];
		uint64_t last;
		int live;

		if ((rc = entry_at(v, seq, &d, digest, &live)) < 0)
			break;
		if (!live || !keyset_get(&v->last, digest, &last) || last != seq) {
			rec_entry_free(&d);
			continue;
		}
		if ((rc = version_map(v, d->e.schema_id, d->e.schema_version, &m)) == 0 &&
		    (rc = rec_row_decode(d->e.row, d->e.row_len, &row)) == 0) {
			memset(v->vals, 0, v->s->nfields * sizeof(*v->vals));
			for (size_t i = 0; i < row->n && i < m->n; i++)
				if (m->to[i] >= 0 && row->values[i].kind != MU_VAL_NULL)
					v->vals[m->to[i]] = &row->values[i];
			if (valid_at == NULL || in_force(v, valid_at))
				rc = fn(ctx, v);
		}
		rec_row_free(&row);
		rec_entry_free(&d);
	}
	return rc;
}

/* A value's canonical text, borrowed from v->text until the next call. */
static const char *text_of(struct view *v, const struct mu_value *x, size_t *len)
{
	size_t n = schema_format(x, NULL, 0);

	v->text.len = 0;
	if (rec_buf_reserve(&v->text, n + 1) < 0)
		return NULL;
	schema_format(x, (char *)v->text.data, n + 1);
	*len = n;
	return (const char *)v->text.data;
}

/* ---- CSV, JSON Lines, GeoJSON ---- */

static void csv_cell(FILE *out, const char *s, size_t len)
{
	if (strpbrk(s, ",\"\r\n") == NULL) {
		fwrite(s, 1, len, out);
		return;
	}
	fputc('"', out);
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"')
			fputc('"', out);
		fputc(s[i], out);
	}
	fputc('"', out);
}

struct sink {
	FILE *out;
	uint64_t rows;
	long geo, lat, lon;          /* GeoJSON: field indexes, or -1 */
};

static int write_csv_row(void *ctx, struct view *v)
{
	struct sink *k = ctx;

	for (size_t i = 0; i < v->s->nfields; i++) {
		size_t len;
		const char *s;
		if (i > 0)
			fputc(',', k->out);
		if (v->vals[i] == NULL)
			continue;
		if ((s = text_of(v, v->vals[i], &len)) == NULL)
			return -ENOMEM;
		csv_cell(k->out, s, len);
	}
	fputs("\r\n", k->out);
	k->rows++;
	return ferror(k->out) ? -EIO : 0;
}

static json_t *json_value(const struct mu_value *x)
{
	switch (x != NULL ? x->kind : MU_VAL_NULL) {
	case MU_VAL_TEXT:
		return json_stringn(x->text, x->len);
	case MU_VAL_INT:
		return json_integer(x->i);
	case MU_VAL_NUM:
		return json_real(x->d);
	case MU_VAL_BOOL:
		return json_boolean(x->i);
	default:
		return json_null();
	}
}

static json_t *row_object(struct view *v)
{
	json_t *o = json_object();

	for (size_t i = 0; o != NULL && i < v->s->nfields; i++)
		if (json_object_set_new(o, v->s->fields[i].name, json_value(v->vals[i])) < 0) {
			json_decref(o);
			return NULL;
		}
	return o;
}

static int dump_line(FILE *out, json_t *o, const char *sep)
{
	/* 15 significant digits: what a coordinate needs, without the
	 * binary noise of 17 (34.866917999999998) */
	char *s = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
	int rc = s != NULL ? 0 : -ENOMEM;

	if (s != NULL)
		fprintf(out, "%s%s", sep, s);
	free(s);
	json_decref(o);
	return rc;
}

static int write_jsonl_row(void *ctx, struct view *v)
{
	struct sink *k = ctx;
	int rc = dump_line(k->out, row_object(v), "");

	fputc('\n', k->out);
	k->rows++;
	return rc < 0 ? rc : ferror(k->out) ? -EIO : 0;
}

/* The point of the current row: 1 with lat/lon, 0 when it has none. */
static int row_point(const struct view *v, const struct sink *k, double *lat, double *lon)
{
	if (k->geo >= 0) {
		const struct mu_value *x = v->vals[k->geo];
		return x != NULL && x->kind == MU_VAL_TEXT && sscanf(x->text, "%lf,%lf", lat, lon) == 2;
	}
	const struct mu_value *a = v->vals[k->lat], *b = v->vals[k->lon];
	if (a == NULL || b == NULL)
		return 0;
	*lat = a->kind == MU_VAL_NUM ? a->d : (double)a->i;
	*lon = b->kind == MU_VAL_NUM ? b->d : (double)b->i;
	return 1;
}

static int write_geojson_row(void *ctx, struct view *v)
{
	struct sink *k = ctx;
	double lat, lon;
	json_t *f = json_pack("{s:s,s:o,s:o}", "type", "Feature", "geometry",
			      row_point(v, k, &lat, &lon) ?
				      json_pack("{s:s,s:[f,f]}", "type", "Point", "coordinates", lon, lat) :
				      json_null(),
			      "properties", row_object(v));
	int rc = dump_line(k->out, f, k->rows ? ",\n" : "\n");

	k->rows++;
	return rc < 0 ? rc : ferror(k->out) ? -EIO : 0;
}

/* Where the points are: a geopoint field, else 緯度/経度-like numbers. */
static int find_geo(const struct schema *s, struct sink *k)
{
	static const char *const pairs[][2] = { { "緯度", "経度" }, { "lat", "lon" },
						 { "latitude", "longitude" } };

	k->geo = k->lat = k->lon = -1;
	for (size_t i = 0; i < s->nfields; i++)
		if (s->fields[i].type == SCHEMA_GEOPOINT) {
			k->geo = (long)i;
			return 1;
		}
	for (size_t p = 0; p < sizeof(pairs) / sizeof(pairs[0]); p++) {
		k->lat = schema_field_index(s, pairs[p][0], strlen(pairs[p][0]));
		k->lon = schema_field_index(s, pairs[p][1], strlen(pairs[p][1]));
		if (k->lat >= 0 && k->lon >= 0 &&
		    (s->fields[k->lat].type == SCHEMA_NUMBER || s->fields[k->lat].type == SCHEMA_INTEGER) &&
		    (s->fields[k->lon].type == SCHEMA_NUMBER || s->fields[k->lon].type == SCHEMA_INTEGER))
			return 1;
	}
	k->lat = k->lon = -1;
	return 0;
}

static int write_view(struct view *v, const struct export_opts *o, FILE *out, uint64_t *rows,
		      char *why, size_t whylen)
{
	struct sink k = { .out = out };
	int rc;

	switch (o->format) {
	case EXPORT_CSV:
		for (size_t i = 0; i < v->s->nfields; i++) {
			if (i > 0)
				fputc(',', out);
			csv_cell(out, v->s->fields[i].name, strlen(v->s->fields[i].name));
		}
		fputs("\r\n", out);
		rc = each_row(v, o->valid_at, write_csv_row, &k);
		break;
	case EXPORT_JSONL:
		rc = each_row(v, o->valid_at, write_jsonl_row, &k);
		break;
	case EXPORT_GEOJSON:
		if (!find_geo(v->s, &k))
			return failw(why, whylen, MU_E_USAGE, "%s has no geopoint field and no 緯度/経度 "
				     "fields: export it as csv or jsonl", v->ds.name);
		fputs("{\"type\":\"FeatureCollection\",\"features\":[", out);
		rc = each_row(v, o->valid_at, write_geojson_row, &k);
		fputs("\n]}\n", out);
		break;
	default:
		return failw(why, whylen, MU_E_USAGE, "unknown export format");
	}
	if (rows != NULL)
		*rows = k.rows;
	if (rc == 0 && (fflush(out) != 0 || ferror(out)))
		rc = -EIO;
	if (rc < 0 && why != NULL && why[0] == '\0')
		failw(why, whylen, rc, "%s: %s", v->ds.name, mu_strerror(rc));
	return rc;
}

int export_dataset(struct store *st, const struct export_opts *o, FILE *out, uint64_t *rows,
		   char *why, size_t whylen)
{
	struct store_txn t;
	struct view v;
	int rc;

	if (why != NULL && whylen > 0)
		why[0] = '\0';
	if ((rc = store_read_begin(st, &t)) < 0)
		return failw(why, whylen, rc, "cannot read the store: %s", mu_strerror(rc));
	if ((rc = view_open(&t, o->dataset, o->as_of, &v, why, whylen)) == 0)
		rc = write_view(&v, o, out, rows, why, whylen);
	view_close(&v);
	store_read_end(&t);
	return rc;
}

/* ---- the catalogue ---- */

/* What a catalogue says about a dataset's rows. */
struct stats {
	uint64_t rows;
	struct sink geo;
	int has_box;
	double south, west, north, east;
	long time_field;             /* the field that dates rows, or -1 */
	char first[48], last[48];    /* its smallest and largest value */
};

static int stats_row(void *ctx, struct view *v)
{
	struct stats *s = ctx;
	double lat, lon;

	s->rows++;
	if ((s->geo.geo >= 0 || s->geo.lat >= 0) && row_point(v, &s->geo, &lat, &lon) &&
	    isfinite(lat) && isfinite(lon)) {
		if (!s->has_box) {
			s->south = s->north = lat;
			s->west = s->east = lon;
			s->has_box = 1;
		}
		s->south = lat < s->south ? lat : s->south;
		s->north = lat > s->north ? lat : s->north;
		s->west = lon < s->west ? lon : s->west;
		s->east = lon > s->east ? lon : s->east;
	}
	const struct mu_value *x = s->time_field >= 0 ? v->vals[s->time_field] : NULL;
	if (x != NULL && x->kind == MU_VAL_TEXT && x->len < sizeof(s->first)) {
		if (s->first[0] == '\0' || strncmp(x->text, s->first, sizeof(s->first)) < 0)
			snprintf(s->first, sizeof(s->first), "%.*s", (int)x->len, x->text);
		if (strncmp(x->text, s->last, sizeof(s->last)) > 0)
			snprintf(s->last, sizeof(s->last), "%.*s", (int)x->len, x->text);
	}
	return 0;
}

static int view_stats(struct view *v, struct stats *s)
{
	memset(s, 0, sizeof(*s));
	find_geo(v->s, &s->geo);
	s->time_field = v->valid[0];
	for (size_t i = 0; s->time_field < 0 && i < v->s->nfields; i++)
		if (v->s->fields[i].type == SCHEMA_DATE || v->s->fields[i].type == SCHEMA_DATETIME)
			s->time_field = (long)i;
	return each_row(v, NULL, stats_row, s);
}

/* The member's name in the node's newest trust list, else its id. */
static char *member_name(struct store_txn *t, const char *member)
{
	struct trust_signed ts;
	char *name = NULL;

	memset(&ts, 0, sizeof(ts));
	if (trust_load(t, 0, &ts) == 0) {
		const struct trust_member *m = trust_find_member(&ts.list, member);
		if (m != NULL && m->name != NULL && m->name[0] != '\0')
			name = strdup(m->name);
	}
	trust_signed_fini(&ts);
	return name != NULL ? name : strdup(member);
}

static json_t *typed(const char *value, const char *type)
{
	return json_pack("{s:s,s:s}", "@value", value, "@type", type);
}

static json_t *literal_ja(const char *text)
{
	return json_pack("{s:s,s:s}", "@value", text, "@language", "ja");
}

static void iso_time(int64_t us, char *buf, size_t cap)
{
	mu_format_time(us, buf, cap);
}

static json_t *dcat_dataset(struct store_txn *t, struct view *v, const char *base)
{
	const char *slash = strchr(v->ds.name, '/');
	char id[512], dist[512], agent[256], when[40], root[65], modified[40], schema_uri[256];
	char *publisher = member_name(t, v->ds.publisher), *title = NULL;
	struct stats s;
	json_t *d = NULL, *kw;

	if (publisher == NULL || view_stats(v, &s) < 0)
		goto out;
	snprintf(id, sizeof(id), "%sdataset/%s", base, v->ds.name);
	snprintf(dist, sizeof(dist), "%sdataset/%s.csv", base, v->ds.name);
	snprintf(agent, sizeof(agent), "%smember/%s", base, v->ds.publisher);
	sig_hex(v->root, 32, root);
	iso_time(v->head_time_us, modified, sizeof(modified));
	if (asprintf(&title, "%s (%s)", v->ds.title && v->ds.title[0] ? v->ds.title :
		     v->s->title ? v->s->title : slash + 1, publisher) < 0) {
		title = NULL;
		goto out;
	}
	kw = json_array();
	const char *words[] = { v->s->id, slash + 1, v->s->title, publisher };
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		int dup = words[i] == NULL;
		for (size_t k = 0; !dup && k < json_array_size(kw); k++)
			dup = strcmp(json_string_value(json_array_get(kw, k)), words[i]) == 0;
		if (!dup)
			json_array_append_new(kw, json_string(words[i]));
	}
	snprintf(schema_uri, sizeof(schema_uri), "%sschema/%s@%u", base, v->s->id, v->s->version);
	d = json_pack("{s:s,s:s,s:s,s:o,s:o,s:{s:s,s:s,s:s,s:s},s:o,s:{s:s},s:o}",
		      "@id", id, "@type", "dcat:Dataset", "dct:identifier", v->ds.name,
		      "dct:title", literal_ja(title),
		      "dct:description", literal_ja(v->ds.description && v->ds.description[0] ?
						    v->ds.description :
						    v->s->description ? v->s->description : title),
		      "dct:publisher", "@id", agent, "@type", "foaf:Agent", "foaf:name", publisher,
		      "dct:identifier", v->ds.publisher,
		      "dct:modified", typed(modified, "xsd:dateTime"),
		      "dct:conformsTo", "@id", schema_uri, "dcat:keyword", kw);
	if (d == NULL)
		goto out;
	if (v->ds.license != NULL && v->ds.license[0] != '\0')
		json_object_set_new(d, "dct:license",
				    strncmp(v->ds.license, "http", 4) == 0 ?
					    json_pack("{s:s}", "@id", v->ds.license) :
					    json_pack("{s:s,s:s}", "@type", "dct:LicenseDocument",
						      "rdfs:label", v->ds.license));
	if (s.first[0] != '\0') {
		const char *type = strchr(s.first, 'T') ? "xsd:dateTime" : "xsd:date";
		json_object_set_new(d, "dct:temporal",
				    json_pack("{s:s,s:o,s:o}", "@type", "dct:PeriodOfTime",
					      "dcat:startDate", typed(s.first, type),
					      "dcat:endDate", typed(s.last, strchr(s.last, 'T') ?
								    "xsd:dateTime" : "xsd:date")));
	}
	if (s.has_box) {
		char wkt[256];
		snprintf(wkt, sizeof(wkt), "POLYGON((%.6f %.6f,%.6f %.6f,%.6f %.6f,%.6f %.6f,%.6f %.6f))",
			 s.west, s.south, s.east, s.south, s.east, s.north, s.west, s.north, s.west,
			 s.south);
		json_object_set_new(d, "dct:spatial",
				    json_pack("{s:s,s:o}", "@type", "dct:Location", "dcat:bbox",
					      typed(wkt, "gsp:wktLiteral")));
	}
	iso_time(v->ds.created_us, when, sizeof(when));
	json_object_set_new(d, "dct:issued", typed(when, "xsd:dateTime"));
	json_object_set_new(d, "dcat:distribution",
		json_pack("[{s:s,s:s,s:o,s:{s:s},s:s,s:{s:s},s:{s:s},s:{s:s,s:{s:s},s:s},s:I,s:o}]",
			  "@id", dist, "@type", "dcat:Distribution",
			  "dct:title", literal_ja(title),
			  "dcat:mediaType", "@id", "https://www.iana.org/assignments/media-types/text/csv",
			  "dct:format", "CSV",
			  "dcat:accessURL", "@id", dist,
			  "dcat:downloadURL", "@id", dist,
			  "spdx:checksum", "@type", "spdx:Checksum", "spdx:algorithm", "@id",
			  "spdx:checksumAlgorithm_sha256", "spdx:checksumValue", root,
			  "musubi:headSize", (json_int_t)v->size,
			  "dct:modified", typed(modified, "xsd:dateTime")));
	json_object_set_new(d, "musubi:rows", json_integer((json_int_t)s.rows));
out:
	free(publisher);
	free(title);
	return d;
}

/* Every dataset with a signed head, as views opened one after another. */
typedef int (*view_fn)(void *ctx, struct store_txn *t, struct view *v);

static int each_dataset(struct store *st, view_fn fn, void *ctx, char *why, size_t whylen)
{
	struct store_txn t;
	char **names = NULL;
	size_t n = 0;
	int rc;

	if ((rc = store_read_begin(st, &t)) < 0)
		return failw(why, whylen, rc, "cannot read the store: %s", mu_strerror(rc));
	if ((rc = store_dataset_names(&t, &names, &n)) < 0)
		failw(why, whylen, rc, "cannot list the datasets: %s", mu_strerror(rc));
	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct view v;
		struct store_dataset ds;
		if (store_dataset_get(&t, names[i], &ds) == 0) {
			uint64_t head = ds.head_size;
			store_dataset_fini(&ds);
			if (head == 0)
				continue;   /* nothing signed yet */
		}
		if ((rc = view_open(&t, names[i], 0, &v, why, whylen)) == 0)
			rc = fn(ctx, &t, &v);
		view_close(&v);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	store_read_end(&t);
	return rc;
}

struct dcat_ctx {
	const char *base;
	json_t *graph, *catalog;
};

static int dcat_add(void *ctx, struct store_txn *t, struct view *v)
{
	struct dcat_ctx *c = ctx;
	json_t *d = dcat_dataset(t, v, c->base);

	if (d == NULL)
		return -ENOMEM;
	json_array_append_new(json_object_get(c->catalog, "dcat:dataset"),
			      json_pack("{s:O}", "@id", json_object_get(d, "@id")));
	return json_array_append_new(c->graph, d) < 0 ? -ENOMEM : 0;
}

int export_dcat(struct store *st, const char *base_url, FILE *out, char *why, size_t whylen)
{
	struct dcat_ctx c = { .base = base_url ? base_url : "urn:musubi:" };
	struct store_txn t;
	char member[64] = "", when[40], cat_id[512], agent[256];
	char *name = NULL, *text = NULL;
	json_t *doc = NULL;
	int rc;

	if (why != NULL && whylen > 0)
		why[0] = '\0';
	if ((rc = store_read_begin(st, &t)) < 0)
		return failw(why, whylen, rc, "cannot read the store: %s", mu_strerror(rc));
	rc = store_member(&t, member, sizeof(member));
	name = rc == 0 ? member_name(&t, member) : NULL;
	store_read_end(&t);
	if (rc < 0 || name == NULL)
		return failw(why, whylen, rc < 0 ? rc : -ENOMEM, "the store has no member id");
	iso_time(mu_now_us(), when, sizeof(when));
	snprintf(cat_id, sizeof(cat_id), "%scatalog/%s", c.base, member);
	snprintf(agent, sizeof(agent), "%smember/%s", c.base, member);
	c.graph = json_array();
	c.catalog = json_pack("{s:s,s:s,s:o,s:o,s:{s:s,s:s,s:s},s:o,s:[]}",
			      "@id", cat_id, "@type", "dcat:Catalog",
			      "dct:title", literal_ja(name),
			      "dct:description", literal_ja("musubi node catalogue: the datasets this "
							    "node holds, each a signed log"),
			      "dct:publisher", "@id", agent, "@type", "foaf:Agent", "foaf:name", name,
			      "dct:modified", typed(when, "xsd:dateTime"), "dcat:dataset");
	if (c.graph == NULL || c.catalog == NULL || json_array_append(c.graph, c.catalog) < 0) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = each_dataset(st, dcat_add, &c, why, whylen)) < 0)
		goto out;
	doc = json_pack("{s:{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s},s:O}",
			"@context",
			"dcat", "http://www.w3.org/ns/dcat#",
			"dct", "http://purl.org/dc/terms/",
			"foaf", "http://xmlns.com/foaf/0.1/",
			"spdx", "http://spdx.org/rdf/terms#",
			"xsd", "http://www.w3.org/2001/XMLSchema#",
			"gsp", "http://www.opengis.net/ont/geosparql#",
			"locn", "http://www.w3.org/ns/locn#",
			"rdfs", "http://www.w3.org/2000/01/rdf-schema#",
			"vcard", "http://www.w3.org/2006/vcard/ns#",
			"musubi", "urn:musubi:ns#",
			"@graph", c.graph);
	if (doc == NULL || (text = json_dumps(doc, JSON_INDENT(1))) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if (fputs(text, out) < 0 || fputc('\n', out) < 0 || fflush(out) != 0)
		rc = failw(why, whylen, -EIO, "cannot write the catalogue");
out:
	free(text);
	free(name);
	json_decref(doc);
	json_decref(c.catalog);
	json_decref(c.graph);
	return rc;
}

/* ---- Frictionless Data Package ---- */

/* The Table Schema as the exported CSV follows it: canonical cells, so no
 * header aliases, booleans as true/false, and geopoints as "lat,lon" text
 * (Frictionless reads a default geopoint as "lon, lat"). Foreign keys name
 * datasets, not resources of the package: they stay out. */
static json_t *package_schema(const struct schema *s)
{
	json_t *root = json_loads(s->json, 0, NULL), *fields = json_object_get(root, "fields");

	for (size_t i = 0; i < json_array_size(fields); i++) {
		json_t *f = json_array_get(fields, i);
		json_object_del(f, "x-aliases");
		json_object_del(f, "trueValues");
		json_object_del(f, "falseValues");
		if (i < s->nfields && s->fields[i].type == SCHEMA_GEOPOINT) {
			json_object_set_new(f, "type", json_string("string"));
			json_object_del(f, "format");
		}
	}
	json_object_del(root, "foreignKeys");
	return root;
}

struct dp_ctx {
	const char *dir;
	json_t *resources;
	char *why;
	size_t whylen;
};

/* One resource: the CSV is made in memory, hashed, then written out. */
static int dp_add(void *ctx, struct store_txn *t, struct view *v)
{
	struct dp_ctx *c = ctx;
	const char *slash = strchr(v->ds.name, '/');
	struct export_opts o = { .dataset = v->ds.name, .format = EXPORT_CSV };
	char rel[256], path[4096], hex[65], name[200];
	uint8_t digest[32];
	char *buf = NULL;
	size_t len = 0;
	uint64_t rows = 0;
	FILE *mem = open_memstream(&buf, &len), *f = NULL;
	int rc;

	(void)t;
	if (mem == NULL)
		return -errno;
	rc = write_view(v, &o, mem, &rows, c->why, c->whylen);
	fclose(mem);
	if (rc < 0)
		goto out;
	snprintf(name, sizeof(name), "%.*s_%s", (int)(slash - v->ds.name), v->ds.name, slash + 1);
	snprintf(rel, sizeof(rel), "data/%s.csv", name);
	snprintf(path, sizeof(path), "%s/%s", c->dir, rel);
	if ((f = fopen(path, "w")) == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
		rc = failw(c->why, c->whylen, -errno ? -errno : -EIO, "cannot write %s", path);
		f = NULL;
		goto out;
	}
	f = NULL;
	if (EVP_Digest(buf, len, digest, NULL, EVP_sha256(), NULL) != 1) {
		rc = MU_E_CRYPTO;
		goto out;
	}
	sig_hex(digest, 32, hex);
	char hash[80], root[65];
	snprintf(hash, sizeof(hash), "sha256:%s", hex);
	sig_hex(v->root, 32, root);
	json_t *r = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:o,s:{s:s,s:s,s:I,s:s,s:I}}",
			      "name", name, "path", rel, "profile", "tabular-data-resource",
			      "title", v->ds.title ? v->ds.title : v->s->title ? v->s->title : name,
			      "format", "csv", "mediatype", "text/csv", "encoding", "utf-8",
			      "bytes", (json_int_t)len, "schema", package_schema(v->s),
			      "musubi", "dataset", v->ds.name, "publisher", v->ds.publisher,
			      "head_size", (json_int_t)v->size, "root", root, "rows", (json_int_t)rows);
	if (r == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	json_object_set_new(r, "hash", json_string(hash));
	json_object_set_new(r, "dialect", json_pack("{s:s,s:b}", "lineTerminator", "\r\n",
						    "header", 1));
	if (v->ds.license != NULL && v->ds.license[0] != '\0')
		json_object_set_new(r, "licenses",
				    json_pack("[{s:s}]", strncmp(v->ds.license, "http", 4) == 0 ?
					      "path" : "title", v->ds.license));
	rc = json_array_append_new(c->resources, r) < 0 ? -ENOMEM : 0;
out:
	free(buf);
	return rc;
}

int export_datapackage(struct store *st, const char *dir, char *why, size_t whylen)
{
	struct dp_ctx c = { .dir = dir, .why = why, .whylen = whylen };
	struct store_txn t;
	char path[4096], member[64] = "", when[40];
	json_t *pkg = NULL;
	int rc;

	if (why != NULL && whylen > 0)
		why[0] = '\0';
	snprintf(path, sizeof(path), "%s/data", dir);
	if ((mkdir(dir, 0755) < 0 && errno != EEXIST) || (mkdir(path, 0755) < 0 && errno != EEXIST))
		return failw(why, whylen, -errno, "cannot create %s: %s", path, strerror(errno));
	if ((rc = store_read_begin(st, &t)) < 0)
		return failw(why, whylen, rc, "cannot read the store: %s", mu_strerror(rc));
	rc = store_member(&t, member, sizeof(member));
	store_read_end(&t);
	if (rc < 0)
		return failw(why, whylen, rc, "the store has no member id");
	if ((c.resources = json_array()) == NULL)
		return -ENOMEM;
	if ((rc = each_dataset(st, dp_add, &c, why, whylen)) < 0)
		goto out;
	iso_time(mu_now_us(), when, sizeof(when));
	char pname[80];
	snprintf(pname, sizeof(pname), "musubi-%s", member);
	pkg = json_pack("{s:s,s:s,s:s,s:s,s:O}", "profile", "tabular-data-package", "name", pname,
			"title", "musubi node catalogue", "created", when, "resources", c.resources);
	snprintf(path, sizeof(path), "%s/datapackage.json", dir);
	if (pkg == NULL)
		rc = -ENOMEM;
	else if (json_dump_file(pkg, path, JSON_INDENT(1)) != 0)
		rc = failw(why, whylen, -EIO, "cannot write %s", path);
out:
	json_decref(pkg);
	json_decref(c.resources);
	return rc;
}
