/*
 * format.h - query results as text: an aligned table, CSV, JSON lines or
 * GeoJSON. Rows come as typed cells, so the same writer serves rows read
 * from a local SQLite statement and rows that arrive from a node.
 *
 *   table    columns aligned by display width (Japanese text is two cells
 *            wide); NULL is blank. Buffers every row: it needs the widths.
 *   csv      RFC 4180: a header line, CRLF, fields quoted when they hold a
 *            comma, quote, CR or LF; NULL is an empty field and the empty
 *            string is "" so the two stay apart. Streams.
 *   jsonl    one JSON object per row, values typed (numbers, strings,
 *            null); repeated column names get _2, _3... Streams.
 *   geojson  a FeatureCollection of Points, coordinates from columns named
 *            緯度/経度, latitude/longitude, lat/lon or lat/lng, or from a
 *            geopoint column ("lat,lon", declared QRY_DECLTYPE_GEOPOINT);
 *            the other columns are the properties. Rows without valid
 *            coordinates are skipped and counted (fmt_skipped). Streams.
 *
 * Blobs are written as hex; text that is not UTF-8 goes to JSON as hex.
 */
#ifndef MU_FORMAT_H
#define MU_FORMAT_H

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>

enum fmt_kind { FMT_TABLE = 0, FMT_CSV, FMT_JSONL, FMT_GEOJSON };

/* "table", "csv", "jsonl" or "geojson": 0, or MU_E_USAGE. */
int fmt_kind_parse(const char *name, enum fmt_kind *out);

enum fmt_type { FMT_NULL = 0, FMT_INT, FMT_REAL, FMT_TEXT, FMT_BLOB };

/* One value; s/len for text and blobs, borrowed for the call. */
struct fmt_cell {
	enum fmt_type type;
	int64_t i;
	double d;
	const char *s;
	size_t len;
};

/* What fmt_begin() says when GeoJSON finds no coordinate columns. */
extern const char fmt_geojson_hint[];

struct fmt;

/* A writer to out (borrowed; not closed). */
int fmt_new(enum fmt_kind kind, FILE *out, struct fmt **f);
void fmt_destroy(struct fmt **f);

/*
 * The columns, once, before any row: names, and declared types (types or
 * any entry may be NULL). GeoJSON without coordinate columns is MU_E_USAGE.
 */
int fmt_begin(struct fmt *f, size_t ncols, const char *const *names, const char *const *types);
/* One row of ncols cells. 0, or -errno when writing fails. */
int fmt_row(struct fmt *f, const struct fmt_cell *cells);
/* The same for a statement: its column names and declared types, its
 * current row. */
int fmt_begin_stmt(struct fmt *f, sqlite3_stmt *st);
int fmt_row_stmt(struct fmt *f, sqlite3_stmt *st);
/* Write what is buffered and close the document. 0 or -errno. */
int fmt_end(struct fmt *f);

uint64_t fmt_rows(const struct fmt *f);     /* rows given to fmt_row */
uint64_t fmt_skipped(const struct fmt *f);  /* GeoJSON rows without coordinates */

#endif
