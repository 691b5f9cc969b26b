/*
 * mapping.h - column mappings: a declarative JSON file that brings a CSV
 * layout onto a schema, applied record by record between the CSV reader
 * and the schema (docs/DATA.md shows the real files they were made for).
 *
 * A mapping document is a JSON object:
 *   "name"            the mapping's name, 1..64 of [a-z0-9_-]: how a
 *                     built-in mapping is asked for (--mapping NAME)
 *   "title", "description"   for people (optional)
 *   "schema"          "id@version" it was written for: the default target
 *                     when the publisher names none (optional)
 *   "skip_prefix"     records whose first cell starts with this text are
 *                     metadata and skipped, before and after the header
 *                     (LinkData "#" lines)
 *   "header_line"     the header is the record whose first cell is exactly
 *                     this (LinkData "#property"); without it, the first
 *                     record not skipped
 *   "header_replace"  {"from": "to"}: text replaced in every header cell
 *                     (a look-alike character), before "rename"
 *   "rename"          {"old": "new"}: header cells renamed
 *   "drop"            ["name"]: columns left out (a split's part too:
 *                     the time of a datetime split at "T")
 *   "normalize"       {"digits", "ascii", "nbsp", "newlines", "trim": true,
 *                     "columns": ["name"]}: full-width digits (or all of
 *                     full-width ASCII) to ASCII, U+00A0 to a space, each
 *                     run of CR/LF inside a cell to one space, leading and
 *                     trailing spaces (ASCII, U+3000, U+00A0) removed; in
 *                     every cell, or in the listed columns only
 *   "split"           [{"column", "into": ["a", "b"], "separator"}]: one
 *                     column becomes several; an empty cell gives empty
 *                     parts, any other cell must have exactly that many
 *   "join"            [{"columns": ["a", "b"], "into", "separator"}]: the
 *                     non-empty cells joined into one column
 *   "values"          [{"columns": ["name"], "map": {"○": "1"},
 *                     "other": "keep"|"blank"|"error"}]: cell values
 *                     replaced; a value not in the map is kept (default),
 *                     blanked, or refused
 *   "constant"        {"name": "value"}: a column with one value in every
 *                     row (e.g. the publisher's 市区町村コード)
 * Every name but those of header_replace and rename's keys is a column
 * name after header_replace and rename. Per row: normalize, then split and
 * join, then values (on the columns the mapping outputs), then constants.
 * The output columns are the input columns not dropped, split or joined,
 * in their order, then split parts, joins and constants in document order.
 * A name the mapping uses that the file's header lacks is an error that
 * names it: a mapping is written for one layout and refuses another.
 *
 * Built-in mappings (the JSON files in registry/mappings) are compiled into the
 * program like the built-in schemas; mapping_resolve() takes their name,
 * or a path to a mapping file. The SHA-256 of the document's bytes is what
 * an entry's provenance records (mapping_sha256).
 *
 * Errors: MU_E_SCHEMA with a sentence (a document that is not a valid
 * mapping; a header or cell the mapping cannot take), -ENOMEM.
 * Ownership: mappings and runs are the caller's (mapping_destroy,
 * mapping_run_destroy); `why` strings returned through char ** are the
 * caller's to free().
 */
#ifndef MU_MAPPING_H
#define MU_MAPPING_H

#include <stddef.h>
#include <stdint.h>

#include "csv.h"

#define MAPPING_FILE_MAX (1u << 20)   /* a larger mapping file is refused */

struct mapping;

/* Parse a mapping document; MU_E_SCHEMA with *why on a bad one. */
int mapping_parse(const char *json, size_t len, struct mapping **out, char **why);
/* A built-in mapping's name, or a path to a mapping file (anything with a
 * '/' or ending in ".json"). -ENOENT with *why for an unknown name. */
int mapping_resolve(const char *spec, struct mapping **out, char **why);
void mapping_destroy(struct mapping **m);

const char *mapping_name(const struct mapping *m);
/* The target "id@version" the document names, or NULL. */
const char *mapping_schema(const struct mapping *m);
/* SHA-256 of the document's bytes (32 bytes, borrowed). */
const uint8_t *mapping_digest(const struct mapping *m);

/* Built-in mappings: how many, and the JSON of the i-th (static). */
size_t mapping_builtin_count(void);
const char *mapping_builtin_json(size_t i);

/* ---- applying a mapping to a stream of CSV records ---- */

struct mapping_run;

enum { MAPPING_SKIP = 0, MAPPING_HEADER = 1, MAPPING_ROW = 2 };

struct mapping_error {
	unsigned column;     /* 1-based input column, 0 when not about one cell */
	char message[512];
};

/* A run of m over one file. m must outlive the run. */
int mapping_run_new(const struct mapping *m, struct mapping_run **out);
void mapping_run_destroy(struct mapping_run **r);

/*
 * Feed the next record the CSV reader gave. Returns MAPPING_SKIP (a
 * metadata record: nothing comes out), MAPPING_HEADER or MAPPING_ROW with
 * *out filled (fields borrowed from the run, valid until the next call;
 * out->line is in->line), or MU_E_SCHEMA with *err (a header the mapping
 * does not fit, a row with another number of fields than the header, a
 * cell the mapping cannot take), or -ENOMEM. A header error is final:
 * every later call returns it again.
 */
int mapping_apply(struct mapping_run *r, const struct csv_record *in, struct csv_record *out,
		  struct mapping_error *err);

/* The input column (1-based) output column i comes from, for messages: the
 * split or the first joined column; 0 for a constant. Valid after the
 * header. */
unsigned mapping_source_column(const struct mapping_run *r, size_t i);

#endif
