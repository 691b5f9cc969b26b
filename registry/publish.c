/*
 * publish.c - CSV to signed log entries, in two passes (see publish.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "musubi_config.h"
#include "head.h"
#include "mapping.h"
#include "mu_err.h"
#include "publish.h"
#include "rec.h"
#include "schema.h"
#include "trust.h"
#include "util.h"

#define TOOL_NAME "musubi/" MUSUBI_VERSION

struct publish {
	struct store *st;
	const struct sig_key *signer;
	const struct publish_opts *o;
	struct publish_result *res;
	struct schema *schema;
	struct mapping *mapping;    /* NULL without --mapping */
	struct mapping_run *mrun;
	struct keyset *refs;        /* per foreign key: digests of the referenced keys */
	char **ref_names;           /* per foreign key: the datasets searched, for messages */
	char member[64];
	char schema_ref[160];       /* "id@version" */
	const char *source_name;
	uint8_t source_sha256[32];
	int64_t now_us;
	struct keyset keys;         /* primary-key digests seen in the file */
	struct keyset *uniques;     /* one per field, for "unique" constraints */
	FILE *spool;
	/* pass 2 */
	long batch_start;           /* spool offset where the next batch starts */
	uint64_t old_rows;          /* live rows before this publish */
	int spool_done;             /* every spooled row is committed */
	uint64_t trust_version;
	/* per-batch counters, added to res after a commit */
	uint64_t b_added, b_changed, b_deleted, b_unchanged;
	long b_end;                 /* spool offset after this batch */
	int b_finished;             /* this batch also did the deletes */
	int b_signed;               /* this batch signed a head */
	struct rec_buf entry, row, key;
	struct progress bar;
};

/* Record an error; keep the first max_errors. Never fails: an error list
 * that cannot grow just stops growing, the count stays right. */
static void add_error(struct publish *p, uint64_t line, unsigned column, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void add_error(struct publish *p, uint64_t line, unsigned column, const char *fmt, ...)
{
	struct publish_result *res = p->res;
	size_t max = p->o->max_errors ? p->o->max_errors : PUBLISH_DEFAULT_MAX_ERRORS;
	va_list ap;
	char *msg;

	res->nerrors++;
	if (res->nkept >= max)
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (msg == NULL)
		return;
	struct publish_error *e = realloc(res->errors, (res->nkept + 1) * sizeof(*e));
	if (e == NULL) {
		free(msg);
		return;
	}
	res->errors = e;
	e[res->nkept].line = line;
	e[res->nkept].column = column;
	e[res->nkept].message = msg;
	res->nkept++;
}

static int spool_open(struct publish *p)
{
	char dir[4096];
	int fd;

	snprintf(dir, sizeof(dir), "%s/tmp", store_datadir(p->st));
	if (mkdir(dir, 0750) < 0 && errno != EEXIST)
		return -errno;
	/* An unnamed file: nothing to clean up after a crash. */
	if ((fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)) < 0)
		return -errno;
	if ((p->spool = fdopen(fd, "w+")) == NULL) {
		close(fd);
		return -errno;
	}
	setvbuf(p->spool, NULL, _IOFBF, 1 << 20);
	return 0;
}

static int spool_write(struct publish *p, const void *key, uint32_t klen, const void *row,
		       uint32_t rlen, uint64_t line)
{
	if (fwrite_unlocked(&klen, 4, 1, p->spool) != 1 || fwrite_unlocked(key, 1, klen, p->spool) != klen ||
	    fwrite_unlocked(&rlen, 4, 1, p->spool) != 1 || fwrite_unlocked(row, 1, rlen, p->spool) != rlen ||
	    fwrite_unlocked(&line, 8, 1, p->spool) != 1)
		return -errno ? -errno : -EIO;
	return 0;
}

/* Read one spooled row into p->key / p->row. 1: a row, 0: end, <0 error. */
static int spool_read(struct publish *p, uint64_t *line)
{
	uint32_t klen, rlen;
	int rc;

	if (fread_unlocked(&klen, 4, 1, p->spool) != 1)
		return feof(p->spool) ? 0 : -EIO;
	p->key.len = 0;
	if ((rc = rec_buf_reserve(&p->key, klen + 1)) < 0)
		return rc;
	if (fread_unlocked(p->key.data, 1, klen, p->spool) != klen || fread_unlocked(&rlen, 4, 1, p->spool) != 1)
		return MU_E_CORRUPT;
	p->key.data[klen] = '\0';
	p->key.len = klen;
	p->row.len = 0;
	if ((rc = rec_buf_reserve(&p->row, rlen)) < 0)
		return rc;
	if (fread_unlocked(p->row.data, 1, rlen, p->spool) != rlen || fread_unlocked(line, 8, 1, p->spool) != 1)
		return MU_E_CORRUPT;
	p->row.len = rlen;
	return 1;
}

/* The 1-based input column that record column c came from. */
static unsigned src_col(const struct publish *p, size_t c)
{
	return p->mrun != NULL ? mapping_source_column(p->mrun, c) : (unsigned)c + 1;
}

/* The next record, through the mapping when there is one: 1 a record
 * (the header first), 0 end of input, 2 a record the mapping refused
 * (reported), or a read error. */
static int next_record(struct publish *p, struct csv_reader *csv, struct csv_record *rec)
{
	struct csv_record in;
	struct mapping_error me;
	int rc;

	if (p->mrun == NULL)
		return csv_next(csv, rec);
	while ((rc = csv_next(csv, &in)) == 1) {
		if ((rc = mapping_apply(p->mrun, &in, rec, &me)) == MAPPING_SKIP)
			continue;
		if (rc >= 0)
			return 1;
		if (rc == -ENOMEM)
			return rc;
		add_error(p, in.line, me.column, "%s", me.message);
		return 2;
	}
	return rc;
}

/* Map each CSV column to a schema field (or -1 to drop it). */
static int map_header(struct publish *p, const struct csv_record *hdr, long **colmap)
{
	const struct schema *s = p->schema;
	long *map = calloc(hdr->nfields, sizeof(*map));
	unsigned char *present = calloc(s->nfields ? s->nfields : 1, 1);
	int bad = 0;

	if (map == NULL || present == NULL) {
		free(map);
		free(present);
		return -ENOMEM;
	}
	for (size_t c = 0; c < hdr->nfields; c++) {
		const struct csv_field *f = &hdr->fields[c];
		long idx = schema_field_index(s, f->ptr, f->len);
		map[c] = idx;
		if (idx < 0) {
			if (!p->o->ignore_extra_columns) {
				add_error(p, hdr->line, src_col(p, c),
					  "column \"%s\" is not a field of schema %s (rename it, "
					  "or pass --ignore-extra-columns to drop it)",
					  f->ptr, p->schema_ref);
				bad = 1;
			}
		} else if (present[idx]) {
			add_error(p, hdr->line, src_col(p, c),
				  "column \"%s\" appears twice (field \"%s\")", f->ptr,
				  s->fields[idx].name);
			bad = 1;
			map[c] = -1;
		} else {
			present[idx] = 1;
		}
	}
	for (size_t i = 0; i < s->nfields; i++)
		if (!present[i] && s->fields[i].required) {
			if (p->mapping != NULL)
				add_error(p, hdr->line, 0, "the header has no column for required field "
					  "\"%s\" of schema %s, and mapping %s makes none: add the "
					  "column to the file, or extend the mapping", s->fields[i].name,
					  p->schema_ref, mapping_name(p->mapping));
			else
				add_error(p, hdr->line, 0, "the header has no column for required "
					  "field \"%s\" of schema %s", s->fields[i].name, p->schema_ref);
			bad = 1;
		}
	free(present);
	*colmap = map;
	return bad ? MU_E_SCHEMA : 0;
}

/* ---- foreign keys ---- */

/* The canonical text of values[idx[0..n)] joined by U+001F into b; 0 when
 * one of them is NULL (such a key refers to nothing and is not checked). */
static int key_text(const struct mu_value *values, size_t nvalues, const size_t *idx, size_t n,
		    struct rec_buf *b)
{
	b->len = 0;
	for (size_t k = 0; k < n; k++) {
		if (idx[k] >= nvalues || values[idx[k]].kind == MU_VAL_NULL)
			return 0;
		size_t need = schema_format(&values[idx[k]], NULL, 0);
		if (rec_buf_reserve(b, need + 2) < 0)
			return -ENOMEM;
		if (k > 0)
			b->data[b->len++] = 0x1f;
		schema_format(&values[idx[k]], (char *)b->data + b->len, need + 1);
		b->len += need;
	}
	return 1;
}

/* Add the keys of one referenced dataset's current rows to set. */
static int load_ref_dataset(struct publish *p, struct store_txn *t, const char *name,
			    const struct schema_fkey *fk, struct keyset *set)
{
	struct store_dataset ds;
	struct store_iter it = { 0 };
	struct schema *rs = NULL;
	const uint8_t *k, *buf;
	size_t klen, len, idx[16];
	struct store_state_val sv;
	char ref[160];
	int rc;

	if ((rc = store_dataset_get(t, name, &ds)) < 0)
		return rc;
	snprintf(ref, sizeof(ref), "%s@%u", ds.schema_id, ds.schema_version);
	if ((rc = store_schema_get(t, ref, &buf, &len)) < 0 ||
	    (rc = schema_parse((const char *)buf, len, &rs, NULL)) < 0) {
		add_error(p, 0, 0, "foreign key into %s: this node does not hold its schema %s", name, ref);
		rc = MU_E_SCHEMA;
		goto out;
	}
	for (size_t j = 0; j < fk->nfields; j++) {
		long f = schema_field_index(rs, fk->ref_fields[j], strlen(fk->ref_fields[j]));
		if (f < 0) {
			add_error(p, 0, 0, "foreign key into %s: its schema %s has no field \"%s\"",
				  name, ref, fk->ref_fields[j]);
			rc = MU_E_SCHEMA;
			goto out;
		}
		idx[j] = (size_t)f;
	}
	if ((rc = store_state_iter_begin(t, ds.local_id, &it)) < 0)
		goto out;
	while ((rc = store_state_iter_next(&it, &k, &klen, &sv)) == 1) {
		struct rec_entry_decoded *d = NULL;
		struct rec_row *row = NULL;
		uint8_t digest[16];
		if ((rc = store_entry_get(t, ds.local_id, sv.seq, &buf, &len)) < 0 ||
		    (rc = rec_entry_decode(buf, len, &d)) < 0 ||
		    (rc = rec_row_decode(d->e.row, d->e.row_len, &row)) < 0 ||
		    (rc = key_text(row->values, row->n, idx, fk->nfields, &p->entry)) < 0) {
			rec_row_free(&row);
			rec_entry_free(&d);
			break;
		}
		if (rc == 1) {
			keyset_digest(p->entry.data, p->entry.len, digest);
			rc = keyset_put(set, digest, 0);
		}
		rec_row_free(&row);
		rec_entry_free(&d);
		if (rc < 0)
			break;
	}
out:
	store_iter_end(&it);
	store_dataset_fini(&ds);
	schema_destroy(&rs);
	return rc < 0 ? rc : 0;
}

/* Load the referenced keys of every foreign key: the datasets named by
 * the reference ("name": every publisher's; "<member>/<name>": that one). */
static int load_refs(struct publish *p)
{
	const struct schema *s = p->schema;
	struct store_txn t;
	char **names = NULL;
	size_t n = 0;
	int rc;

	if (s->nfkeys == 0)
		return 0;
	if ((p->refs = calloc(s->nfkeys, sizeof(*p->refs))) == NULL ||
	    (p->ref_names = calloc(s->nfkeys, sizeof(char *))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < s->nfkeys; i++)
		keyset_init(&p->refs[i]);
	if ((rc = store_read_begin(p->st, &t)) < 0)
		return rc;
	if ((rc = store_dataset_names(&t, &names, &n)) < 0)
		goto out;
	for (size_t i = 0; i < s->nfkeys && rc == 0; i++) {
		const struct schema_fkey *fk = &s->fkeys[i];
		int bare = strchr(fk->resource, '/') == NULL, found = 0;
		for (size_t j = 0; j < n && rc == 0; j++) {
			const char *slash = strchr(names[j], '/');
			if (strcmp(bare ? (slash ? slash + 1 : "") : names[j], fk->resource) != 0)
				continue;
			found = 1;
			rc = load_ref_dataset(p, &t, names[j], fk, &p->refs[i]);
		}
		if (rc == 0 && asprintf(&p->ref_names[i], "%s%s", bare ? "any publisher's " : "",
					fk->resource) < 0) {
			p->ref_names[i] = NULL;
			rc = -ENOMEM;
		}
		if (rc == 0 && !found) {
			add_error(p, 0, 0, "schema %s refers to dataset %s (foreign key on \"%s\"), "
				  "which this node does not hold: publish or replicate it first",
				  p->schema_ref, fk->resource, s->fields[fk->fields[0]].name);
			rc = MU_E_SCHEMA;
		}
	}
out:
	for (size_t j = 0; j < n; j++)
		free(names[j]);
	free(names);
	store_read_end(&t);
	return rc;
}

/* One error for each foreign key of the row that finds no referenced key. */
static int check_refs(struct publish *p, const struct mu_value *vals, const long *colmap,
		      size_t ncols, uint64_t line)
{
	const struct schema *s = p->schema;
	int rc;

	for (size_t i = 0; i < s->nfkeys; i++) {
		const struct schema_fkey *fk = &s->fkeys[i];
		uint8_t digest[16];
		size_t c = 0;
		if ((rc = key_text(vals, s->nfields, fk->fields, fk->nfields, &p->entry)) <= 0) {
			if (rc < 0)
				return rc;
			continue;
		}
		keyset_digest(p->entry.data, p->entry.len, digest);
		if (keyset_has(&p->refs[i], digest))
			continue;
		while (c < ncols && colmap[c] != (long)fk->fields[0])
			c++;
		for (size_t b = 0; b < p->entry.len; b++)
			if (p->entry.data[b] == 0x1f)
				p->entry.data[b] = ',';
		char names[256];
		size_t o = 0;
		for (size_t j = 0; j < fk->nfields && o < sizeof(names); j++)
			o += (size_t)snprintf(names + o, sizeof(names) - o, "%s%s", j ? ", " : "",
					      s->fields[fk->fields[j]].name);
		add_error(p, line, c < ncols ? src_col(p, c) : 0, "%s \"%s\": value \"%.*s\": no such "
			  "key in %s", fk->nfields > 1 ? "fields" : "field", names, (int)p->entry.len,
			  (const char *)p->entry.data, p->ref_names[i]);
	}
	return 0;
}

/* Pass 1: validate and spool. */
static int pass_validate(struct publish *p)
{
	const struct schema *s = p->schema;
	struct csv_reader *csv = NULL;
	struct csv_record rec;
	struct mu_value *vals = NULL;
	long *colmap = NULL;
	size_t ncols = 0;
	struct stat sb;
	int fd = -1, rc;
	char why[512];

	if (strcmp(p->o->path, "-") == 0) {
		fd = dup(STDIN_FILENO);
	} else {
		fd = open(p->o->path, O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0) {
		rc = -errno;
		add_error(p, 0, 0, "cannot open %s: %s", p->o->path, strerror(errno));
		return rc;
	}
	progress_init(&p->bar, "reading", fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) ?
			  (uint64_t)sb.st_size : 0);
	p->bar.tty &= p->o->show_progress;
	if ((rc = csv_open_fd(fd, &csv)) < 0)
		goto out;
	if ((vals = calloc(s->nfields ? s->nfields : 1, sizeof(*vals))) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = next_record(p, csv, &rec)) != 1) {
		if (rc == 0) {
			add_error(p, 0, 0, "%s is empty: a header line is expected", p->o->path);
			rc = MU_E_CSV;
		} else if (rc == 2) {
			rc = MU_E_SCHEMA;   /* the mapping refused the header */
		} else if (rc != -ENOMEM) {
			add_error(p, 0, 0, "%s", csv_error(csv));
		}
		goto out;
	}
	ncols = rec.nfields;
	if ((rc = map_header(p, &rec, &colmap)) < 0) {
		if (rc == -ENOMEM)
			goto out;
	}
	while ((rc = next_record(p, csv, &rec)) == 1 || rc == 2) {
		int row_bad = 0;

		p->res->rows++;
		progress_update(&p->bar, csv_bytes_read(csv));
		if (rc == 2)
			continue;   /* the mapping refused it: reported */
		if (rec.nfields != ncols) {
			add_error(p, rec.line, 0, "line has %zu fields, the header has %zu",
				  rec.nfields, ncols);
			continue;
		}
		for (size_t i = 0; i < s->nfields; i++)
			vals[i].kind = MU_VAL_NULL;
		for (size_t c = 0; c < ncols; c++) {
			long fi = colmap[c];
			if (fi < 0)
				continue;
			const struct csv_field *cell = &rec.fields[c];
			if (schema_convert(&s->fields[fi], cell->ptr, cell->len, &vals[fi], why,
					   sizeof(why)) < 0) {
				add_error(p, rec.line, src_col(p, c), "field \"%s\": %s",
					  s->fields[fi].name, why);
				row_bad = 1;
			}
		}
		/* Fields with no column are NULL; a required one was reported
		 * once, at the header. */
		if (row_bad)
			continue;
		/* The primary key: canonical text of its fields joined by U+001F. */
		p->key.len = 0;
		for (size_t k = 0; k < s->npk; k++) {
			const struct mu_value *v = &vals[s->pk[k]];
			size_t need = schema_format(v, NULL, 0);
			if ((rc = rec_buf_reserve(&p->key, need + 2)) < 0)
				goto out;
			if (k > 0)
				p->key.data[p->key.len++] = 0x1f;
			schema_format(v, (char *)p->key.data + p->key.len, need + 1);
			p->key.len += need;
		}
		uint8_t digest[16];
		uint64_t first;
		keyset_digest(p->key.data, p->key.len, digest);
		if ((rc = keyset_add(&p->keys, digest, rec.line, &first)) < 0)
			goto out;
		if (rc == 0) {
			add_error(p, rec.line, 0, "primary key %s is repeated (first on line %llu)",
				  s->npk == 1 ? "value" : "values", (unsigned long long)first);
			continue;
		}
		for (size_t i = 0; i < s->nfields; i++) {
			if (!s->fields[i].unique || vals[i].kind == MU_VAL_NULL)
				continue;
			size_t n = schema_format(&vals[i], NULL, 0);
			if ((rc = rec_buf_reserve(&p->entry, n + 1)) < 0)
				goto out;
			schema_format(&vals[i], (char *)p->entry.data, n + 1);
			keyset_digest(p->entry.data, n, digest);
			if ((rc = keyset_add(&p->uniques[i], digest, rec.line, &first)) < 0)
				goto out;
			if (rc == 0)
				add_error(p, rec.line, 0,
					  "field \"%s\" must be unique; the value is also on line %llu",
					  s->fields[i].name, (unsigned long long)first);
		}
		if ((rc = check_refs(p, vals, colmap, ncols, rec.line)) < 0)
			goto out;
		if (p->res->nerrors > 0)
			continue;   /* keep validating, stop spooling */
		if ((rc = rec_row_encode(vals, s->nfields, &p->row)) < 0 ||
		    (rc = spool_write(p, p->key.data, (uint32_t)p->key.len, p->row.data,
				      (uint32_t)p->row.len, rec.line)) < 0)
			goto out;
	}
	if (rc < 0) {
		add_error(p, 0, 0, "%s", csv_error(csv));
		goto out;
	}
	progress_done(&p->bar);
	p->res->encoding = csv_encoding(csv);
	csv_input_sha256(csv, p->source_sha256);
	rc = p->res->nerrors > 0 ? MU_E_SCHEMA : 0;
	if (rc == 0 && fflush(p->spool) != 0)
		rc = -errno;
out:
	if (csv != NULL)
		p->res->encoding = csv_encoding(csv);
	csv_close(&csv);
	if (fd >= 0)
		close(fd);
	free(colmap);
	free(vals);
	return rc;
}

static int ensure_dataset(struct publish *p, struct store_txn *t, struct store_dataset *ds)
{
	int rc = store_dataset_get(t, p->res->dataset, ds);

	if (rc == -ENOENT) {
		memset(ds, 0, sizeof(*ds));
		if ((ds->name = strdup(p->res->dataset)) == NULL ||
		    (ds->publisher = strdup(p->member)) == NULL ||
		    (ds->schema_id = strdup(p->schema->id)) == NULL ||
		    (p->schema->title && (ds->title = strdup(p->schema->title)) == NULL))
			return -ENOMEM;
		ds->schema_version = p->schema->version;
		memcpy(ds->schema_digest, p->schema->digest, 32);
		ds->created_us = p->now_us;
		ds->members_only = p->o->access == PUBLISH_ACCESS_MEMBERS;
		return 0;
	}
	return rc;
}

/* Append one entry to the log and the frontier. */
static int append_entry(struct publish *p, struct store_txn *t, struct store_dataset *ds,
			struct merkle_frontier *fr, enum rec_op op, const char *key, size_t key_len,
			uint64_t line)
{
	struct store_tree tree = { t, ds->local_id };
	struct rec_entry e = {
		.dataset = ds->name,
		.seq = ds->size,
		.op = op,
		.key = key,
		.key_len = key_len,
		.schema_id = p->schema->id,
		.schema_version = p->schema->version,
		.schema_digest = p->schema->digest,
		.row = op == REC_UPSERT ? p->row.data : NULL,
		.row_len = op == REC_UPSERT ? p->row.len : 0,
		.time_us = p->now_us,
		.prov = { .has_source = 1, .source_name = p->source_name, .tool = TOOL_NAME,
			  .source_line = line, .has_mapping = p->mapping != NULL },
	};
	merkle_hash leaf;
	int rc;

	memcpy(e.prov.source_sha256, p->source_sha256, 32);
	if (p->mapping != NULL)
		memcpy(e.prov.mapping_sha256, mapping_digest(p->mapping), 32);
	if ((rc = rec_entry_encode(&e, &p->entry)) < 0 ||
	    (rc = store_entry_put(t, ds->local_id, ds->size, p->entry.data, p->entry.len)) < 0)
		return rc;
	merkle_leaf_hash(p->entry.data, p->entry.len, leaf);
	if ((rc = merkle_frontier_append(fr, leaf, store_tree_done, &tree)) < 0)
		return rc;
	ds->size++;
	return 0;
}

/* Keep the first few keys of each kind a dry run finds (p->key). */
static void note_sample(struct publish *p, char op)
{
	struct publish_result *res = p->res;
	size_t have = 0;
	char *k;

	for (size_t i = 0; i < res->nsamples; i++)
		have += res->samples[i].op == op;
	if (have >= PUBLISH_SAMPLES || res->nsamples >= sizeof(res->samples) / sizeof(res->samples[0]))
		return;
	if ((k = malloc(2 * p->key.len + 1)) == NULL)
		return;
	size_t o = 0;
	for (size_t i = 0; i < p->key.len; i++) {
		if (p->key.data[i] == 0x1f) {
			k[o++] = ',';
			k[o++] = ' ';
		} else {
			k[o++] = (char)p->key.data[i];
		}
	}
	k[o] = '\0';
	res->samples[res->nsamples++] = (struct publish_sample){ op, k };
}

/* The deletes: every key of the state that the file no longer has. */
static int apply_deletes(struct publish *p, struct store_txn *t, struct store_dataset *ds,
			 struct merkle_frontier *fr)
{
	struct store_iter it = { 0 };
	const uint8_t *k;
	size_t klen;
	struct store_state_val sv;
	int rc;

	if ((rc = store_state_iter_begin(t, ds->local_id, &it)) < 0)
		return rc;
	while ((rc = store_state_iter_next(&it, &k, &klen, &sv)) == 1) {
		uint8_t digest[16];
		int hashed = klen == 33 && k[0] == 0xFF;

		if (hashed)
			memcpy(digest, k + 1, 16);
		else
			keyset_digest(k, klen, digest);
		if (keyset_has(&p->keys, digest))
			continue;
		/* The key text: inline, or from the entry that holds the row. */
		p->key.len = 0;
		if (hashed) {
			struct rec_entry_decoded *d = NULL;
			const uint8_t *buf;
			size_t len;
			if ((rc = store_entry_get(t, ds->local_id, sv.seq, &buf, &len)) < 0 ||
			    (rc = rec_entry_decode(buf, len, &d)) < 0)
				break;
			rc = rec_buf_reserve(&p->key, d->e.key_len + 1);
			if (rc == 0) {
				memcpy(p->key.data, d->e.key, d->e.key_len);
				p->key.len = d->e.key_len;
			}
			rec_entry_free(&d);
		} else if ((rc = rec_buf_reserve(&p->key, klen + 1)) == 0) {
			memcpy(p->key.data, k, klen);
			p->key.len = klen;
		}
		if (rc < 0)
			break;
		p->key.data[p->key.len] = '\0';
		if (p->o->dry_run) {
			p->b_deleted++;
			note_sample(p, 'd');
			continue;
		}
		if ((rc = store_iter_del(&it)) < 0 ||
		    (rc = append_entry(p, t, ds, fr, REC_DELETE, (const char *)p->key.data,
				       p->key.len, 0)) < 0)
			break;
		p->b_deleted++;
		ds->rows--;
	}
	store_iter_end(&it);
	return rc < 0 ? rc : 0;
}

/* One batch: one write transaction (or, for a dry run, a read one).
 * Re-runnable from the start: store_write() may call it again after
 * growing the map. */
static int batch_fn(struct store_txn *t, void *ctx)
{
	struct publish *p = ctx;
	uint64_t limit = p->o->batch_rows ? p->o->batch_rows : PUBLISH_DEFAULT_BATCH;
	struct store_dataset ds = { 0 };
	struct merkle_frontier fr;
	struct store_tree tree = { t, 0 };
	uint64_t start_size, line;
	int rc;

	p->b_added = p->b_changed = p->b_deleted = p->b_unchanged = 0;
	p->b_finished = p->b_signed = 0;
	if (fseek(p->spool, p->batch_start, SEEK_SET) != 0)
		return -errno;
	if ((rc = ensure_dataset(p, t, &ds)) < 0)
		goto out;
	/* Every replica refuses a head dated before the one it extends (and
	 * `musubi verify` flags it): signed after a clock stepped back, it
	 * would stall the dataset for good. Say so and append nothing. */
	if (!p->o->dry_run && ds.head_size > 0 && p->now_us < ds.updated_us) {
		char was[40], now[40];
		mu_format_time(ds.updated_us, was, sizeof(was));
		mu_format_time(p->now_us, now, sizeof(now));
		add_error(p, 0, 0, "this machine's clock says %s, before %s's newest head (%s): a "
			  "head may not be dated before the one it extends; set the clock right "
			  "and publish again", now, ds.name, was);
		rc = MU_E_USAGE;
		goto out;
	}
	tree.lid = ds.local_id;
	start_size = ds.size;
	if (p->batch_start == 0)
		p->old_rows = ds.rows;
	if (ds.local_id != 0 && (rc = merkle_frontier_load(&fr, ds.size, store_tree_get, &tree)) < 0)
		goto out;
	if (ds.local_id == 0)
		merkle_frontier_init(&fr);
	if (!p->o->dry_run && ds.local_id == 0) {
		/* A new dataset: register it (assigns its local id). */
		if ((rc = store_dataset_put(t, &ds)) < 0)
			goto out;
		tree.lid = ds.local_id;
	}
	/* The schema the new entries name, also after a compatible evolution. */
	if (!p->o->dry_run &&
	    (rc = store_schema_put(t, p->schema_ref, p->schema->json, p->schema->json_len)) < 0)
		goto out;
	while (ds.size - start_size < limit) {
		struct store_state_val sv, nv;
		if ((rc = spool_read(p, &line)) < 0)
			goto out;
		if (rc == 0) {
			/* Every old row seen again (changed or not): nothing to
			 * delete, and no need to walk the whole state. */
			uint64_t seen = p->res->changed + p->res->unchanged + p->b_changed +
					p->b_unchanged;
			if (seen != p->old_rows && (rc = apply_deletes(p, t, &ds, &fr)) < 0)
				goto out;
			p->b_finished = 1;
			break;
		}
		merkle_leaf_hash(p->row.data, p->row.len, nv.row_sha256);  /* content id */
		/* Keys are unique within the file, so over an empty state every
		 * lookup would miss. */
		rc = ds.local_id && p->old_rows > 0 ?
		     store_state_get(t, ds.local_id, (const char *)p->key.data, p->key.len, &sv) :
		     -ENOENT;
		if (rc == 0 && memcmp(sv.row_sha256, nv.row_sha256, 32) == 0) {
			p->b_unchanged++;
			continue;
		}
		if (rc < 0 && rc != -ENOENT)
			goto out;
		if (rc == 0)
			p->b_changed++;
		else
			p->b_added++;
		if (p->o->dry_run) {
			note_sample(p, rc == 0 ? 'c' : 'a');
			continue;
		}
		nv.seq = ds.size;
		if ((rc = append_entry(p, t, &ds, &fr, REC_UPSERT, (const char *)p->key.data,
				       p->key.len, line)) < 0 ||
		    (rc = store_state_put(t, ds.local_id, (const char *)p->key.data, p->key.len, &nv)) < 0)
			goto out;
	}
	ds.rows += p->b_added;
	p->b_end = ftell(p->spool);
	if (p->o->dry_run || ds.size == start_size) {
		rc = 0;
		goto out;
	}
	/* Sign one head over everything this batch appended. */
	struct rec_head h = {
		.dataset = ds.name,
		.size = ds.size,
		.time_us = p->now_us,
		.trust_version = p->trust_version,
		.publisher = p->member,
	};
	if (p->o->access != PUBLISH_ACCESS_KEEP)
		ds.members_only = p->o->access == PUBLISH_ACCESS_MEMBERS;
	h.members_only = ds.members_only;
	/* The head carries the licence, signed, so that replicas' catalogues
	 * name it too; license_fn() records it locally after the batches. */
	h.license = p->o->license != NULL ? p->o->license : ds.license;
	merkle_frontier_root(&fr, h.root);
	if ((rc = head_make_signed(&h, p->signer, &p->entry)) < 0 ||
	    (rc = store_head_put(t, ds.local_id, ds.size, p->entry.data, p->entry.len)) < 0)
		goto out;
	ds.head_size = ds.size;
	ds.updated_us = p->now_us;
	p->b_signed = 1;
	if (ds.schema_version != p->schema->version || strcmp(ds.schema_id, p->schema->id) != 0) {
		free(ds.schema_id);
		if ((ds.schema_id = strdup(p->schema->id)) == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		ds.schema_version = p->schema->version;
		memcpy(ds.schema_digest, p->schema->digest, 32);
	}
	if ((rc = store_dataset_put(t, &ds)) < 0)
		goto out;
	memcpy(p->res->root, h.root, 32);
out:
	if (rc == 0 && !p->o->dry_run)
		p->res->new_size = ds.size;
	store_dataset_fini(&ds);
	return rc;
}

/* Refuse a schema that does not fit the dataset's existing one. */
static int check_schema_binding(struct publish *p)
{
	struct store_txn t;
	struct store_dataset ds;
	struct schema *old = NULL;
	char *why = NULL;
	int rc;

	if ((rc = store_read_begin(p->st, &t)) < 0)
		return rc;
	rc = store_dataset_get(&t, p->res->dataset, &ds);
	if (rc == -ENOENT) {
		rc = 0;
		goto out;
	}
	if (rc < 0)
		goto out;
	p->res->old_size = ds.size;
	if (strcmp(ds.schema_id, p->schema->id) != 0) {
		add_error(p, 0, 0, "dataset %s uses schema %s@%u, not %s: publish it with --schema "
			  "%s@VERSION, or into a new dataset name", ds.name, ds.schema_id,
			  ds.schema_version, p->schema_ref, ds.schema_id);
		rc = MU_E_SCHEMA;
	} else if (memcmp(ds.schema_digest, p->schema->digest, 32) != 0) {
		char ref[160];
		const uint8_t *json;
		size_t len;
		snprintf(ref, sizeof(ref), "%s@%u", ds.schema_id, ds.schema_version);
		if ((rc = store_schema_get(&t, ref, &json, &len)) == 0 &&
		    (rc = schema_parse((const char *)json, len, &old, NULL)) == 0 &&
		    (rc = schema_compat(old, p->schema, &why)) < 0) {
			add_error(p, 0, 0, "schema %s is not a compatible evolution of %s, which "
				  "dataset %s uses: %s", p->schema_ref, ref, ds.name,
				  why ? why : "");
			rc = MU_E_SCHEMA;
		}
	}
	store_dataset_fini(&ds);
out:
	store_read_end(&t);
	schema_destroy(&old);
	free(why);
	return rc;
}

static int load_node_identity(struct publish *p)
{
	struct store_txn t;
	char buf[32];
	size_t len;
	int rc;

	if ((rc = store_read_begin(p->st, &t)) < 0)
		return rc;
	rc = store_member(&t, p->member, sizeof(p->member));
	if (rc == 0 && store_meta_get(&t, "trust_version", buf, sizeof(buf), &len) == 0)
		p->trust_version = strtoull(buf, NULL, 10);
	store_read_end(&t);
	return rc;
}

/* Would a head signed now count under the node's trust list? Refuse to
 * publish what every other node would refuse. */
static int check_own_standing(struct publish *p)
{
	struct store_txn t;
	struct sig_key *key = NULL;
	struct rec_head h = { .dataset = p->res->dataset, .time_us = p->now_us,
			      .trust_version = p->trust_version, .publisher = p->member };
	char why[256] = "";
	int rc;

	if ((rc = sig_key_id(p->signer, h.key_id)) < 0 || (rc = store_read_begin(p->st, &t)) < 0)
		return rc;
	rc = trust_head_key(NULL, &t, &h, &key, why, sizeof(why));
	store_read_end(&t);
	if (rc == 0) {
		uint8_t id[SIG_KEYID_LEN];
		if (sig_key_id(key, id) == 0 && memcmp(id, h.key_id, SIG_KEYID_LEN) != 0) {
			snprintf(why, sizeof(why), "the signing key in use is not the key the node "
				 "is known by");
			rc = MU_E_TRUST;
		}
	}
	sig_key_destroy(&key);
	if (rc < 0) {
		add_error(p, 0, 0, "heads signed now would not count: %s (see docs/TRUST.md)",
			  why[0] ? why : mu_strerror(rc));
		return MU_E_TRUST;
	}
	return 0;
}

/* The licence into the dataset's catalog record, when it changes. */
static int license_fn(struct store_txn *t, void *ctx)
{
	struct publish *p = ctx;
	struct store_dataset ds;
	int rc = store_dataset_get(t, p->res->dataset, &ds);

	if (rc < 0)
		return rc == -ENOENT ? 0 : rc;   /* nothing was published */
	if (ds.license == NULL || strcmp(ds.license, p->o->license) != 0) {
		free(ds.license);
		rc = (ds.license = strdup(p->o->license)) != NULL ? store_dataset_put(t, &ds) : -ENOMEM;
	}
	store_dataset_fini(&ds);
	return rc;
}

int publish_csv(struct store *st, const struct sig_key *key, const struct publish_opts *o,
		struct publish_result *res)
{
	struct publish p = { .st = st, .signer = key, .o = o, .res = res };
	const char *schema_spec;
	char *why = NULL;
	int rc;

	memset(res, 0, sizeof(*res));
	keyset_init(&p.keys);
	p.now_us = mu_now_us();
	if (!mu_valid_dataset_name(o->dataset)) {
		add_error(&p, 0, 0, "dataset name \"%s\" is not valid: use 1 to 64 of a-z, 0-9 and _",
			  o->dataset);
		rc = MU_E_USAGE;
		goto out;
	}
	if ((rc = load_node_identity(&p)) < 0) {
		add_error(&p, 0, 0, "the store has no member id: run musubi init first");
		goto out;
	}
	snprintf(res->dataset, sizeof(res->dataset), "%s/%s", p.member, o->dataset);
	if (!o->dry_run && (rc = check_own_standing(&p)) < 0)
		goto out;
	if (o->mapping_spec != NULL) {
		if ((rc = mapping_resolve(o->mapping_spec, &p.mapping, &why)) < 0) {
			add_error(&p, 0, 0, "mapping %s: %s", o->mapping_spec, why ? why : mu_strerror(rc));
			if (rc != -ENOMEM)
				rc = MU_E_SCHEMA;
			goto out;
		}
		if ((rc = mapping_run_new(p.mapping, &p.mrun)) < 0)
			goto out;
		res->has_mapping = 1;
		memcpy(res->mapping_sha256, mapping_digest(p.mapping), 32);
		free(why);
		why = NULL;
	}
	schema_spec = o->schema_spec ? o->schema_spec : p.mapping ? mapping_schema(p.mapping) : NULL;
	if (schema_spec == NULL) {
		add_error(&p, 0, 0, "no schema: name one with --schema%s",
			  p.mapping ? " (the mapping names none)" : "");
		rc = MU_E_USAGE;
		goto out;
	}
	if ((rc = schema_resolve(schema_spec, &p.schema, &why)) < 0) {
		add_error(&p, 0, 0, "schema %s: %s (musubi schema list shows the built-in ones)",
			  schema_spec, why ? why : mu_strerror(rc));
		if (rc != -ENOMEM)
			rc = MU_E_SCHEMA;
		goto out;
	}
	if (p.schema->npk == 0) {
		add_error(&p, 0, 0, "schema %s has no primaryKey: musubi needs one to tell rows apart",
			  schema_spec);
		rc = MU_E_SCHEMA;
		goto out;
	}
	snprintf(p.schema_ref, sizeof(p.schema_ref), "%s@%u", p.schema->id, p.schema->version);
	p.source_name = strrchr(o->path, '/') ? strrchr(o->path, '/') + 1 : o->path;
	if ((p.uniques = calloc(p.schema->nfields, sizeof(*p.uniques))) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = check_schema_binding(&p)) < 0 || (rc = load_refs(&p)) < 0 ||
	    (rc = spool_open(&p)) < 0 || (rc = pass_validate(&p)) < 0)
		goto out;

	progress_init(&p.bar, "writing", res->rows);
	p.bar.tty &= o->show_progress;
	res->new_size = res->old_size;
	for (;;) {
		if (o->dry_run) {
			struct store_txn t;
			if ((rc = store_read_begin(st, &t)) < 0)
				goto out;
			rc = batch_fn(&t, &p);
			store_read_end(&t);
		} else {
			rc = store_write(st, batch_fn, &p);
		}
		if (rc < 0)
			goto out;
		res->added += p.b_added;
		res->changed += p.b_changed;
		res->deleted += p.b_deleted;
		res->unchanged += p.b_unchanged;
		res->batches += p.b_signed;
		p.batch_start = p.b_end;
		progress_update(&p.bar, res->added + res->changed + res->unchanged);
		if (p.b_finished)
			break;
	}
	progress_done(&p.bar);
	rc = o->license != NULL && !o->dry_run ? store_write(st, license_fn, &p) : 0;
out:
	if (rc < 0 && res->nerrors == 0)
		add_error(&p, 0, 0, "%s%s%s", mu_strerror(rc), store_space_advice(rc) ? ": " : "",
			  store_space_advice(rc) ? store_space_advice(rc) : "");
	if (p.spool != NULL)
		fclose(p.spool);
	for (size_t i = 0; p.refs != NULL && i < p.schema->nfkeys; i++) {
		keyset_fini(&p.refs[i]);
		if (p.ref_names != NULL)
			free(p.ref_names[i]);
	}
	free(p.refs);
	free(p.ref_names);
	mapping_run_destroy(&p.mrun);
	mapping_destroy(&p.mapping);
	if (p.uniques != NULL)
		for (size_t i = 0; i < p.schema->nfields; i++)
			keyset_fini(&p.uniques[i]);
	free(p.uniques);
	keyset_fini(&p.keys);
	schema_destroy(&p.schema);
	rec_buf_fini(&p.entry);
	rec_buf_fini(&p.row);
	rec_buf_fini(&p.key);
	free(why);
	return rc;
}

void publish_result_fini(struct publish_result *res)
{
	for (size_t i = 0; i < res->nsamples; i++)
		free(res->samples[i].key);
	res->nsamples = 0;
	for (size_t i = 0; i < res->nkept; i++)
		free(res->errors[i].message);
	free(res->errors);
	res->errors = NULL;
	res->nkept = 0;
}

/* ---- appending rows a program makes (not a file): access records ---- */

struct append_ctx {
	struct publish *p;
	const struct mu_value *values;
	size_t nrows;
};

static int append_fn(struct store_txn *t, void *arg)
{
	struct append_ctx *a = arg;
	struct publish *p = a->p;
	const struct schema *s = p->schema;
	struct store_dataset ds = { 0 };
	struct merkle_frontier fr;
	struct store_tree tree = { t, 0 };
	int rc;

	if ((rc = ensure_dataset(p, t, &ds)) < 0)
		goto out;
	if (ds.local_id == 0) {
		if ((rc = store_dataset_put(t, &ds)) < 0 ||
		    (rc = store_schema_put(t, p->schema_ref, s->json, s->json_len)) < 0)
			goto out;
		merkle_frontier_init(&fr);
	} else {
		tree.lid = ds.local_id;
		if ((rc = merkle_frontier_load(&fr, ds.size, store_tree_get, &tree)) < 0)
			goto out;
	}
	for (size_t r = 0; r < a->nrows; r++) {
		const struct mu_value *vals = a->values + r * s->nfields;
		struct store_state_val sv, nv;
		p->key.len = 0;
		for (size_t k = 0; k < s->npk; k++) {
			size_t need = schema_format(&vals[s->pk[k]], NULL, 0);
			if ((rc = rec_buf_reserve(&p->key, need + 2)) < 0)
				goto out;
			if (k > 0)
				p->key.data[p->key.len++] = 0x1f;
			schema_format(&vals[s->pk[k]], (char *)p->key.data + p->key.len, need + 1);
			p->key.len += need;
		}
		if ((rc = rec_row_encode(vals, s->nfields, &p->row)) < 0)
			goto out;
		merkle_leaf_hash(p->row.data, p->row.len, nv.row_sha256);
		rc = store_state_get(t, ds.local_id, (const char *)p->key.data, p->key.len, &sv);
		if (rc < 0 && rc != -ENOENT)
			goto out;
		ds.rows += rc == -ENOENT;
		nv.seq = ds.size;
		if ((rc = append_entry(p, t, &ds, &fr, REC_UPSERT, (const char *)p->key.data,
				       p->key.len, 0)) < 0 ||
		    (rc = store_state_put(t, ds.local_id, (const char *)p->key.data, p->key.len, &nv)) < 0)
			goto out;
	}
	/* Appends (the node's own records) must not stop when the clock steps
	 * back, and replicas refuse a head dated before the one it extends:
	 * such a head takes its predecessor's time. */
	int64_t when = p->now_us > ds.updated_us ? p->now_us : ds.updated_us;
	struct rec_head h = {
		.dataset = ds.name,
		.size = ds.size,
		.time_us = when,
		.trust_version = p->trust_version,
		.publisher = p->member,
		.members_only = ds.members_only,
		.license = ds.license,
	};
	merkle_frontier_root(&fr, h.root);
	if ((rc = head_make_signed(&h, p->signer, &p->entry)) < 0 ||
	    (rc = store_head_put(t, ds.local_id, ds.size, p->entry.data, p->entry.len)) < 0)
		goto out;
	ds.head_size = ds.size;
	ds.updated_us = when;
	rc = store_dataset_put(t, &ds);
out:
	store_dataset_fini(&ds);
	return rc;
}

int publish_append(struct store *st, const struct sig_key *key, const char *dataset,
		   const char *schema_spec, int members_only, const struct mu_value *values,
		   size_t nrows, char *why, size_t whylen)
{
	struct publish_opts o = { .dataset = dataset, .schema_spec = schema_spec,
				  .access = members_only ? PUBLISH_ACCESS_MEMBERS : PUBLISH_ACCESS_PUBLIC };
	struct publish_result res = { 0 };
	struct publish p = { .st = st, .signer = key, .o = &o, .res = &res };
	struct append_ctx a = { &p, values, nrows };
	char *swhy = NULL;
	int rc;

	why[0] = '\0';
	p.now_us = mu_now_us();
	p.source_name = "musubid";
	if (nrows == 0)
		return 0;
	if ((rc = load_node_identity(&p)) < 0)
		return rc;
	snprintf(res.dataset, sizeof(res.dataset), "%s/%s", p.member, dataset);
	if ((rc = schema_resolve(schema_spec, &p.schema, &swhy)) < 0) {
		snprintf(why, whylen, "%s", swhy ? swhy : mu_strerror(rc));
		free(swhy);
		return rc;
	}
	snprintf(p.schema_ref, sizeof(p.schema_ref), "%s@%u", p.schema->id, p.schema->version);
	rc = store_write(st, append_fn, &a);
	if (rc < 0)
		snprintf(why, whylen, "%s%s%s", mu_strerror(rc), store_space_advice(rc) ? ": " : "",
			 store_space_advice(rc) ? store_space_advice(rc) : "");
	schema_destroy(&p.schema);
	rec_buf_fini(&p.entry);
	rec_buf_fini(&p.row);
	rec_buf_fini(&p.key);
	return rc;
}
