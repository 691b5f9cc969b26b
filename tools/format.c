/* format.c - query results as a table, CSV, JSON lines or GeoJSON (see format.h). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "cli.h"
#include "format.h"
#include "mu_err.h"
#include "qry.h"

const char fmt_geojson_hint[] =
	"GeoJSON needs coordinates: select columns named 緯度 and 経度 (or latitude/longitude, "
	"lat/lon, lat/lng), or a geopoint column";

struct fmt {
	enum fmt_kind kind;
	FILE *out;
	size_t ncols;
	char **names;          /* JSON keys: the column names made unique */
	struct cli_table *tab;
	long lat, lon, geo;    /* GeoJSON coordinate columns, or -1 */
	uint64_t rows, skipped;
	int begun;             /* the header (or the document's start) is out */
};

int fmt_kind_parse(const char *name, enum fmt_kind *out)
{
	static const char *const names[] = { "table", "csv", "jsonl", "geojson" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i]) == 0) {
			*out = (enum fmt_kind)i;
			return 0;
		}
	return MU_E_USAGE;
}

int fmt_new(enum fmt_kind kind, FILE *out, struct fmt **f)
{
	if ((*f = calloc(1, sizeof(**f))) == NULL)
		return -ENOMEM;
	(*f)->kind = kind;
	(*f)->out = out;
	(*f)->lat = (*f)->lon = (*f)->geo = -1;
	return 0;
}

void fmt_destroy(struct fmt **fp)
{
	struct fmt *f = *fp;

	if (f == NULL)
		return;
	for (size_t i = 0; i < f->ncols && f->names; i++)
		free(f->names[i]);
	free(f->names);
	cli_table_free(&f->tab);
	free(f);
	*fp = NULL;
}

/* The shortest of %.15g..%.17g that reads back as d; integral values
 * keep a ".0" so that they still read as reals (as SQLite writes them). */
static int real_text(double d, char *buf, size_t cap)
{
	int p = 15;

	for (; p < 17; p++) {
		snprintf(buf, cap, "%.*g", p, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	snprintf(buf, cap, "%.*g", p, d);
	if (isfinite(d) && strpbrk(buf, ".e") == NULL)
		strncat(buf, ".0", cap - strlen(buf) - 1);
	return p;
}

static char *hex(const void *data, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *p = data;
	char *s = malloc(2 * len + 1);

	if (s == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		s[2 * i] = digits[p[i] >> 4];
		s[2 * i + 1] = digits[p[i] & 15];
	}
	s[2 * len] = '\0';
	return s;
}

/* A cell as text (NULL for SQL NULL); *owned tells whether to free it. */
static const char *cell_text(const struct fmt_cell *c, char *buf, size_t cap, char **owned)
{
	*owned = NULL;
	switch (c->type) {
	case FMT_INT:
		snprintf(buf, cap, "%" PRId64, c->i);
		return buf;
	case FMT_REAL:
		real_text(c->d, buf, cap);
		return buf;
	case FMT_TEXT:
		if (c->len == 0)
			return "";
		if (memchr(c->s, '\0', c->len) == NULL && (*owned = strndup(c->s, c->len)) != NULL)
			return *owned;
		/* embedded NUL: show it as bytes */
		__attribute__((fallthrough));
	case FMT_BLOB:
		return (*owned = hex(c->s, c->len));
	default:
		return NULL;
	}
}

/* Degrees from a cell: numbers, or text that is one number. */
static int cell_number(const struct fmt_cell *c, double *v)
{
	char buf[64], *end;

	switch (c->type) {
	case FMT_INT:
		*v = (double)c->i;
		return 1;
	case FMT_REAL:
		*v = c->d;
		return isfinite(*v);
	case FMT_TEXT:
		if (c->len == 0 || c->len >= sizeof(buf))
			return 0;
		memcpy(buf, c->s, c->len);
		buf[c->len] = '\0';
		*v = strtod(buf, &end);
		while (*end == ' ')
			end++;
		return end != buf && *end == '\0' && isfinite(*v);
	default:
		return 0;
	}
}

/* "lat,lon" of a geopoint cell. */
static int cell_geopoint(const struct fmt_cell *c, double *lat, double *lon)
{
	char buf[96], *end, *comma;

	if (c->type != FMT_TEXT || c->len >= sizeof(buf))
		return 0;
	memcpy(buf, c->s, c->len);
	buf[c->len] = '\0';
	if ((comma = strchr(buf, ',')) == NULL)
		return 0;
	*comma = '\0';
	*lat = strtod(buf, &end);
	if (end == buf || *end != '\0')
		return 0;
	*lon = strtod(comma + 1, &end);
	while (*end == ' ')
		end++;
	return end != comma + 1 && *end == '\0' && isfinite(*lat) && isfinite(*lon);
}

static long find_name(size_t n, const char *const *names, const char *const *want)
{
	for (const char *const *w = want; *w; w++)
		for (size_t i = 0; i < n; i++)
			if (names[i] != NULL && strcasecmp(names[i], *w) == 0)
				return (long)i;
	return -1;
}

static int taken(char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return 1;
	return 0;
}

static void put_csv_field(FILE *out, const char *s)
{
	if (s == NULL)
		return;
	if (*s != '\0' && strpbrk(s, ",\"\r\n") == NULL) {
		fputs(s, out);
		return;
	}
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', out);
		fputc(*s, out);
	}
	fputc('"', out);
}

int fmt_begin(struct fmt *f, size_t ncols, const char *const *names, const char *const *types)
{
	static const char *const lat_names[] = { "緯度", "latitude", "lat", NULL };
	static const char *const lon_names[] = { "経度", "longitude", "lon", "lng", NULL };

	f->ncols = ncols;
	if ((f->names = calloc(ncols ? ncols : 1, sizeof(*f->names))) == NULL)
		return -ENOMEM;
	/* Unique keys for JSON: a second "x" becomes "x_2". */
	for (size_t i = 0; i < ncols; i++) {
		const char *base = names[i] ? names[i] : "";
		char *name = strdup(base);
		for (int k = 2; name != NULL && taken(f->names, i, name); k++) {
			free(name);
			if (asprintf(&name, "%s_%d", base, k) < 0)
				name = NULL;
		}
		if ((f->names[i] = name) == NULL)
			return -ENOMEM;
	}
	switch (f->kind) {
	case FMT_TABLE:
		if ((f->tab = cli_table_new(ncols, names)) == NULL)
			return -ENOMEM;
		break;
	case FMT_CSV:
		for (size_t i = 0; i < ncols; i++) {
			if (i)
				fputc(',', f->out);
			put_csv_field(f->out, names[i] ? names[i] : "");
		}
		fputs("\r\n", f->out);
		break;
	case FMT_JSONL:
		break;
	case FMT_GEOJSON:
		f->lat = find_name(ncols, names, lat_names);
		f->lon = find_name(ncols, names, lon_names);
		if (f->lat < 0 || f->lon < 0) {
			f->lat = f->lon = -1;
			for (size_t i = 0; i < ncols && types && f->geo < 0; i++)
				if (types[i] && strcmp(types[i], QRY_DECLTYPE_GEOPOINT) == 0)
					f->geo = (long)i;
			if (f->geo < 0)
				return MU_E_USAGE;
		}
		fputs("{\"type\":\"FeatureCollection\",\"features\":[", f->out);
		break;
	}
	f->begun = 1;
	return ferror(f->out) ? -EIO : 0;
}

/* A cell as a JSON value; *prec grows to the digits a real needs. */
static json_t *cell_json(const struct fmt_cell *c, int *prec)
{
	char buf[40], *h;
	json_t *v;

	switch (c->type) {
	case FMT_INT:
		return json_integer(c->i);
	case FMT_REAL: {
		if (!isfinite(c->d))
			return json_null();
		int p = real_text(c->d, buf, sizeof(buf));
		*prec = p > *prec ? p : *prec;
		return json_real(c->d);
	}
	case FMT_TEXT:
		if ((v = json_stringn(c->s, c->len)) != NULL)
			return v;
		/* not UTF-8: as hex, like a blob */
		__attribute__((fallthrough));
	case FMT_BLOB:
		h = hex(c->s, c->len);
		v = h ? json_string(h) : NULL;
		free(h);
		return v;
	default:
		return json_null();
	}
}

static int dump_line(struct fmt *f, json_t *doc, int prec)
{
	int rc = json_dumpf(doc, f->out, JSON_COMPACT | JSON_REAL_PRECISION(prec));

	json_decref(doc);
	return rc < 0 ? -EIO : 0;
}

static int row_geojson(struct fmt *f, const struct fmt_cell *cells)
{
	double lat, lon;
	int prec = 15, ok;
	json_t *props, *feat;

	if (f->geo >= 0)
		ok = cell_geopoint(&cells[f->geo], &lat, &lon);
	else
		ok = cell_number(&cells[f->lat], &lat) && cell_number(&cells[f->lon], &lon);
	if (!ok || lat < -90 || lat > 90 || lon < -180 || lon > 180) {
		f->skipped++;
		return 0;
	}
	props = json_object();
	for (size_t i = 0; i < f->ncols; i++)
		if ((long)i != f->lat && (long)i != f->lon && (long)i != f->geo)
			json_object_set_new(props, f->names[i], cell_json(&cells[i], &prec));
	struct fmt_cell clat = { .type = FMT_REAL, .d = lat }, clon = { .type = FMT_REAL, .d = lon };
	feat = json_pack("{s:s,s:{s:s,s:[o,o]},s:o}", "type", "Feature", "geometry", "type", "Point",
			 "coordinates", cell_json(&clon, &prec), cell_json(&clat, &prec),
			 "properties", props);
	if (feat == NULL)
		return -ENOMEM;
	if (f->rows - f->skipped > 1)
		fputc(',', f->out);
	fputc('\n', f->out);
	return dump_line(f, feat, prec);
}

int fmt_row(struct fmt *f, const struct fmt_cell *cells)
{
	char buf[40], *owned;
	int rc = 0;

	f->rows++;
	switch (f->kind) {
	case FMT_TABLE: {
		const char **row = calloc(f->ncols ? f->ncols : 1, sizeof(*row));
		char **own = calloc(f->ncols ? f->ncols : 1, sizeof(*own));
		char (*nums)[40] = calloc(f->ncols ? f->ncols : 1, sizeof(*nums));
		if (row == NULL || own == NULL || nums == NULL) {
			rc = -ENOMEM;
		} else {
			for (size_t i = 0; i < f->ncols; i++) {
				row[i] = cell_text(&cells[i], nums[i], sizeof(nums[i]), &own[i]);
				/* One line per row: line breaks in a cell become spaces. */
				for (char *p = own[i]; p && *p; p++)
					if (*p == '\n' || *p == '\r' || *p == '\t')
						*p = ' ';
			}
			cli_table_add(f->tab, row);
			for (size_t i = 0; i < f->ncols; i++)
				free(own[i]);
		}
		free(row);
		free(own);
		free(nums);
		break;
	}
	case FMT_CSV:
		for (size_t i = 0; i < f->ncols; i++) {
			const char *s = cell_text(&cells[i], buf, sizeof(buf), &owned);
			if (i)
				fputc(',', f->out);
			put_csv_field(f->out, s);
			free(owned);
		}
		fputs("\r\n", f->out);
		break;
	case FMT_JSONL: {
		json_t *o = json_object();
		int prec = 15;
		if (o == NULL)
			return -ENOMEM;
		for (size_t i = 0; i < f->ncols; i++)
			json_object_set_new(o, f->names[i], cell_json(&cells[i], &prec));
		if ((rc = dump_line(f, o, prec)) == 0)
			fputc('\n', f->out);
		break;
	}
	case FMT_GEOJSON:
		rc = row_geojson(f, cells);
		break;
	}
	if (rc == 0 && ferror(f->out))
		rc = -EIO;
	return rc;
}

int fmt_begin_stmt(struct fmt *f, sqlite3_stmt *st)
{
	int n = sqlite3_column_count(st), rc;
	const char **names = calloc(n ? (size_t)n : 1, sizeof(*names));
	const char **types = calloc(n ? (size_t)n : 1, sizeof(*types));

	if (names == NULL || types == NULL) {
		rc = -ENOMEM;
	} else {
		for (int i = 0; i < n; i++) {
			names[i] = sqlite3_column_name(st, i);
			types[i] = sqlite3_column_decltype(st, i);
		}
		rc = fmt_begin(f, (size_t)n, names, types);
	}
	free(names);
	free(types);
	return rc;
}

int fmt_row_stmt(struct fmt *f, sqlite3_stmt *st)
{
	struct fmt_cell *cells = calloc(f->ncols ? f->ncols : 1, sizeof(*cells));
	int rc;

	if (cells == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < f->ncols; i++) {
		int c = (int)i;
		switch (sqlite3_column_type(st, c)) {
		case SQLITE_INTEGER:
			cells[i].type = FMT_INT;
			cells[i].i = sqlite3_column_int64(st, c);
			break;
		case SQLITE_FLOAT:
			cells[i].type = FMT_REAL;
			cells[i].d = sqlite3_column_double(st, c);
			break;
		case SQLITE_TEXT:
			cells[i].type = FMT_TEXT;
			cells[i].s = (const char *)sqlite3_column_text(st, c);
			cells[i].len = (size_t)sqlite3_column_bytes(st, c);
			break;
		case SQLITE_BLOB:
			cells[i].type = FMT_BLOB;
			cells[i].s = sqlite3_column_blob(st, c);
			cells[i].len = (size_t)sqlite3_column_bytes(st, c);
			break;
		default:
			cells[i].type = FMT_NULL;
			break;
		}
	}
	rc = fmt_row(f, cells);
	free(cells);
	return rc;
}

int fmt_end(struct fmt *f)
{
	if (!f->begun)
		return 0;
	switch (f->kind) {
	case FMT_TABLE:
		if (f->tab != NULL)
			cli_table_print(f->tab, f->out);
		fprintf(f->out, "(%" PRIu64 " row%s)\n", f->rows, f->rows == 1 ? "" : "s");
		break;
	case FMT_GEOJSON:
		fputs("\n]}\n", f->out);
		break;
	default:
		break;
	}
	return fflush(f->out) != 0 || ferror(f->out) ? -EIO : 0;
}

uint64_t fmt_rows(const struct fmt *f)
{
	return f->rows;
}

uint64_t fmt_skipped(const struct fmt *f)
{
	return f->skipped;
}
