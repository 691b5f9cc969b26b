/*
 * publish.h - a CSV file becomes signed entries of a dataset's log.
 *
 * Two passes, so that bad input appends nothing:
 *  1. Read and validate the whole file (CSV, header against the schema,
 *     every cell, primary key and unique constraints), encoding each good
 *     row into a spool file under DATADIR/tmp. Any error: stop here.
 *  2. Diff the spool against the dataset's state and append only upserts
 *     (new or changed rows) and deletes (keys no longer in the file), in
 *     batches of at most batch_rows entries. Each batch is one LMDB write
 *     transaction that also stores the tree nodes, the state and one
 *     signed head: each batch is there whole or not at all.
 * Publishing the same file twice appends nothing and signs no new head.
 *
 * Memory: the CSV is streamed; the only thing that grows with the file is
 * the set of primary-key digests (24 bytes a row, plus slack) that finds
 * duplicates and deletes.
 */
#ifndef MU_PUBLISH_H
#define MU_PUBLISH_H

#include <stddef.h>
#include <stdint.h>

#include "csv.h"
#include "schema.h"
#include "sig.h"
#include "store.h"

#define PUBLISH_DEFAULT_BATCH 25000
#define PUBLISH_DEFAULT_MAX_ERRORS 20

struct publish_opts {
	const char *dataset;       /* name without the member: "evacuation_sites" */
	const char *schema_spec;   /* "aed@1" or a Table Schema JSON path; NULL: the
	                            * schema the mapping names */
	const char *mapping_spec;  /* a column mapping (mapping.h): a built-in name or
	                            * a JSON path; NULL for none */
	const char *license;       /* the data's licence (a URL or a name), kept in the
	                            * dataset's catalog record; NULL leaves it */
	const char *path;          /* the CSV file; "-" reads standard input */
	int dry_run;               /* validate and diff, write nothing */
	int ignore_extra_columns;  /* columns not in the schema are dropped */
	size_t max_errors;         /* errors kept in the result (0: default) */
	uint64_t batch_rows;       /* entries per signed batch (0: default) */
	int show_progress;         /* draw progress bars on a terminal */
	enum { PUBLISH_ACCESS_KEEP = 0, PUBLISH_ACCESS_PUBLIC, PUBLISH_ACCESS_MEMBERS } access;
	                           /* who may read it, signed into the next head */
};

struct publish_error {
	uint64_t line;       /* 0 when not about one line */
	unsigned column;     /* 1-based CSV column, 0 when not about one cell */
	char *message;       /* a sentence naming the field, value and rule */
};

/* A few keys a publish adds, changes or deletes, for people to check a
 * dry run by ('a', 'c' or 'd'; the key's fields joined by ", "). */
#define PUBLISH_SAMPLES 3
struct publish_sample {
	char op;
	char *key;
};

struct publish_result {
	char dataset[128];          /* "<member>/<name>" */
	enum csv_encoding encoding;
	uint64_t rows;              /* data rows in the file */
	uint64_t added, changed, deleted, unchanged;
	uint64_t old_size, new_size;
	uint64_t batches;           /* signed heads written */
	uint8_t root[32];           /* root at new_size */
	uint64_t nerrors;           /* errors found (may exceed those kept) */
	struct publish_error *errors;
	size_t nkept;
	struct publish_sample samples[3 * PUBLISH_SAMPLES];  /* dry runs only */
	size_t nsamples;
	uint8_t mapping_sha256[32]; /* of the mapping applied, when has_mapping */
	int has_mapping;
};

/*
 * Publish o->path into the dataset o->dataset of the node whose store is
 * st, signing with key. Returns 0 on success (including "nothing changed"),
 * MU_E_SCHEMA or MU_E_CSV or MU_E_ENCODING with res->errors listing what is
 * wrong, or another negative code. res is filled in every case; free it
 * with publish_result_fini().
 *
 * With a mapping, every record goes through it before the schema sees it;
 * errors name the line and the column of the input file, and each entry's
 * provenance carries the mapping's SHA-256. Foreign keys of the schema
 * ("foreignKeys") are checked against the datasets the store holds: each
 * row whose key fields are all set must find its values in the referenced
 * dataset (every publisher's, for a bare name), else one error per row
 * names the line, column, value and dataset.
 */
int publish_csv(struct store *st, const struct sig_key *key, const struct publish_opts *o,
		struct publish_result *res);
void publish_result_fini(struct publish_result *res);

/*
 * Append rows a program made (not a file) to dataset: nrows rows of
 * schema->nfields typed values each, as upserts (no diff, no deletes), in
 * one write transaction with one signed head. The node's access records
 * use it. Returns 0 or an error with why set.
 */
int publish_append(struct store *st, const struct sig_key *key, const char *dataset,
		   const char *schema_spec, int members_only, const struct mu_value *values,
		   size_t nrows, char *why, size_t whylen);

#endif
