/*
 * export.h - what a node holds, in the formats the open-data world reads:
 * one dataset as CSV, JSON Lines or GeoJSON; the whole catalogue as DCAT
 * (JSON-LD, DCAT-AP style, for CKAN's DCAT harvester) or as a Frictionless
 * Data Package (datapackage.json plus one CSV per dataset).
 *
 * A dataset is exported at a signed head: the newest, or the head of size
 * as_of, as the fold of the log's first as_of entries (the latest upsert
 * of each key, minus deletes and redacted entries), in log order. Columns
 * are the fields of the dataset's current schema, in schema order; rows
 * an older schema version wrote are matched by field name (NULL where the
 * version lacks the field).
 *
 * CSV is what publish reads back to the same rows: a header of the field
 * names, cells in schema_format()'s canonical text, NULL as an empty cell,
 * quotes (RFC 4180) only where a cell needs them, CRLF line ends. So
 * publishing an exported CSV into its dataset appends nothing.
 * JSON Lines: one object per row, values typed (string, number, boolean,
 * null). GeoJSON: a FeatureCollection of Points from the first geopoint
 * field, else from the number fields 緯度/経度 (or lat/lon, latitude/
 * longitude); a row without a point has a null geometry.
 *
 * valid_at keeps only the rows in force that day, by the fields the schema
 * marks "x-valid" (schema.h), as qry.h's valid_at does.
 *
 * Errors: -ENOENT (no such dataset), MU_E_USAGE (as_of is not a signed
 * head of the local log; GeoJSON of a dataset without coordinates), store,
 * decode and -errno codes; `why` (whylen bytes) says what in a sentence.
 */
#ifndef MU_EXPORT_H
#define MU_EXPORT_H

#include <stdint.h>
#include <stdio.h>

#include "store.h"

enum export_format { EXPORT_CSV = 0, EXPORT_JSONL, EXPORT_GEOJSON };

struct export_opts {
	const char *dataset;        /* "<member>/<name>" */
	enum export_format format;
	uint64_t as_of;             /* a signed head's size; 0: the newest head */
	const char *valid_at;       /* "YYYY-MM-DD"; NULL: every row */
};

/* Write dataset o->dataset to out. *rows (when not NULL) gets the number
 * of rows written. */
int export_dataset(struct store *st, const struct export_opts *o, FILE *out, uint64_t *rows,
		   char *why, size_t whylen);

/*
 * The DCAT catalogue of every dataset with a signed head, as JSON-LD: a
 * dcat:Catalog, and per dataset a dcat:Dataset with dct:identifier,
 * dct:title, dct:description, dct:publisher (a foaf:Agent named as the
 * node's trust list names the member), dct:license (when the publisher
 * gave one), dct:conformsTo (the schema), dct:modified (the newest head's
 * time), dct:temporal (the range of the schema's effective-from field, else
 * of its first date field), dct:spatial (the bounding box of its points),
 * dcat:keyword and one dcat:Distribution (dcat:mediaType text/csv, an
 * accessURL under base_url, and spdx:checksum: the signed head's Merkle
 * root, SHA-256, with the head's size). base_url ("https://node.example/")
 * makes the identifiers; NULL gives "urn:musubi:" ones.
 */
int export_dcat(struct store *st, const char *base_url, FILE *out, char *why, size_t whylen);

/*
 * A Frictionless Data Package in directory dir (created if missing):
 * datapackage.json with one tabular-data-resource per dataset (its Table
 * Schema as the exported CSV follows it, the file's sha256 hash and size,
 * licence when known) and data/<member>_<name>.csv as export_dataset
 * writes it.
 */
int export_datapackage(struct store *st, const char *dir, char *why, size_t whylen);

#endif
