/*
 * store.c - the LMDB environment of a node (layout in store.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pthread.h>


#include "musubi.pb-c.h"
#include "merkle.h"
#include "mu_err.h"
#include "redact.h"
#include "store.h"

enum { DB_META, DB_DATASETS, DB_ENTRIES, DB_NODES, DB_HEADS, DB_STATE, DB_SCHEMAS, DB_TRUST,
       DB_EVIDENCE, DB_COSIGS, DB_REDACTIONS, DB_COUNT };
static const char *const db_names[DB_COUNT] = {
	"meta", "datasets", "entries", "nodes", "heads", "state", "schemas", "trust", "evidence",
	"cosigs", "redactions",
};

struct store {
	MDB_env *env;
	/* Read transactions hold this shared; growing the map takes it
	 * exclusively, as LMDB requires no transaction to be active in the
	 * process while the map is resized (a node reads from two threads). */
	pthread_rwlock_t resize;
	MDB_dbi dbi[DB_COUNT];
	char *datadir;
	unsigned flags;
	size_t map_max;   /* the map never grows past this (store_set_map_max) */
};

int store_err(int mdb_rc)
{
	switch (mdb_rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_MAP_FULL:
		return MU_E_MAPFULL;
	case MDB_KEYEXIST:
		return MU_E_EXISTS;
	default:
		if (mdb_rc > 0)
			return -mdb_rc;   /* LMDB passes system errors as errno */
		fprintf(stderr, "musubi: LMDB: %s\n", mdb_strerror(mdb_rc));
		return MU_E_STORE;
	}
}

static void be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}

static void be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int mkdir_p(const char *path, mode_t mode)
{
	if (mkdir(path, mode) == 0 || errno == EEXIST)
		return 0;
	return -errno;
}

/* Grow the map when less than a quarter of it is free, so that most
 * writes never meet MDB_MAP_FULL. Only called with no transaction open. */
static int store_grow(struct store *st, int force)
{
	MDB_envinfo info;
	MDB_stat stat;
	size_t used, want;
	int rc;

	mdb_env_info(st->env, &info);
	mdb_env_stat(st->env, &stat);
	used = (info.me_last_pgno + 1) * (size_t)stat.ms_psize;
	if (!force && info.me_mapsize - used > info.me_mapsize / 4)
		return 0;
	want = info.me_mapsize * 2;
	if (want > st->map_max)
		want = st->map_max;
	/* At the limit the early grow has nothing to do (the write may still
	 * fit); a write that did not fit fails for good. */
	if (want <= info.me_mapsize)
		return force ? MU_E_MAPFULL : 0;
	/* Never wait for readers here: a reader in this very thread would
	 * deadlock. Without the lock the map stays as it is; when it is
	 * really full the write fails with MU_E_MAPFULL and can be retried. */
	if (pthread_rwlock_trywrlock(&st->resize) != 0)
		return force ? MU_E_MAPFULL : 0;
	rc = mdb_env_set_mapsize(st->env, want);
	pthread_rwlock_unlock(&st->resize);
	return store_err(rc);
}

static int txn_begin(struct store *st, unsigned flags, MDB_txn **txn)
{
	int rc = mdb_txn_begin(st->env, NULL, flags, txn);

	if (rc == MDB_MAP_RESIZED) {
		/* Another process grew the map: adopt its size and retry. */
		if ((rc = mdb_env_set_mapsize(st->env, 0)) != 0)
			return store_err(rc);
		rc = mdb_txn_begin(st->env, NULL, flags, txn);
	}
	return store_err(rc);
}

static int check_format(struct store *st, int creating)
{
	struct store_txn t = { st, NULL };
	char buf[16];
	size_t len;
	int rc;

	if ((rc = txn_begin(st, creating ? 0 : MDB_RDONLY, &t.txn)) < 0)
		return rc;
	rc = store_meta_get(&t, "format", buf, sizeof(buf), &len);
	if (rc == -ENOENT && creating) {
		snprintf(buf, sizeof(buf), "%d", STORE_FORMAT_VERSION);
		if ((rc = store_meta_put(&t, "format", buf, strlen(buf))) == 0)
			rc = store_err(mdb_txn_commit(t.txn));
		t.txn = NULL;
	} else if (rc == 0 && atoi(buf) != STORE_FORMAT_VERSION) {
		fprintf(stderr, "musubi: %s holds store format %s; this musubi reads format %d. "
			"Run the musubi version that wrote it, or restore a backup.\n",
			st->datadir, buf, STORE_FORMAT_VERSION);
		rc = MU_E_VERSION;
	} else if (rc == -ENOENT) {
		fprintf(stderr, "musubi: %s is not an initialised store (run musubi init)\n",
			st->datadir);
		rc = MU_E_CORRUPT;
	}
	if (t.txn != NULL)
		mdb_txn_abort(t.txn);
	return rc;
}

int store_open(const char *datadir, unsigned flags, struct store **out)
{
	struct store *st = NULL;
	char path[4096];
	MDB_txn *txn = NULL;
	unsigned envflags = MDB_NOTLS;
	int rc;

	*out = NULL;
	if (snprintf(path, sizeof(path), "%s/store", datadir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	if (flags & STORE_CREATE) {
		if ((rc = mkdir_p(datadir, 0750)) < 0 || (rc = mkdir_p(path, 0750)) < 0)
			return rc;
	} else if (access(path, F_OK) != 0) {
		return -ENOENT;
	}
	if ((st = calloc(1, sizeof(*st))) == NULL || (st->datadir = strdup(datadir)) == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	st->flags = flags;
	pthread_rwlock_init(&st->resize, NULL);
	if (flags & STORE_RDONLY)
		envflags |= MDB_RDONLY;
	if (flags & STORE_NOSYNC)
		envflags |= MDB_NOSYNC;
	if ((rc = store_err(mdb_env_create(&st->env))) < 0)
		goto fail;
	mdb_env_set_maxdbs(st->env, DB_COUNT + 8);
	/* MUSUBI_MAP_INITIAL (bytes) lets small installations and tests start
	 * with a smaller map; it grows on demand either way, up to
	 * MUSUBI_MAP_MAX (bytes) when that is set. */
	const char *initial = getenv("MUSUBI_MAP_INITIAL"), *max = getenv("MUSUBI_MAP_MAX");
	size_t first = initial ? (size_t)strtoull(initial, NULL, 10) : STORE_MAP_INITIAL;
	st->map_max = max && strtoull(max, NULL, 10) > 0 ? (size_t)strtoull(max, NULL, 10)
						       : STORE_MAP_MAX;
	mdb_env_set_mapsize(st->env, first < st->map_max ? first : st->map_max);
	if ((rc = mdb_env_open(st->env, path, envflags, 0640)) != 0) {
		rc = store_err(rc);
		goto fail;
	}
	/* A store that has grown past the initial size opens at its own size
	 * (within the maximum). */
	mdb_env_set_mapsize(st->env, 0);
	store_set_map_max(st, st->map_max);
	if ((rc = txn_begin(st, (flags & STORE_RDONLY) ? MDB_RDONLY : 0, &txn)) < 0)
		goto fail;
	for (int i = 0; i < DB_COUNT; i++) {
		unsigned dbflags = (flags & STORE_RDONLY) ? 0 : MDB_CREATE;
		if ((rc = mdb_dbi_open(txn, db_names[i], dbflags, &st->dbi[i])) != 0) {
			rc = rc == MDB_NOTFOUND ? MU_E_CORRUPT : store_err(rc);
			goto fail;
		}
	}
	if ((rc = store_err(mdb_txn_commit(txn))) < 0) {
		txn = NULL;
		goto fail;
	}
	txn = NULL;
	if ((rc = check_format(st, (flags & STORE_CREATE) && !(flags & STORE_RDONLY))) < 0)
		goto fail;
	*out = st;
	return 0;
fail:
	if (txn != NULL)
		mdb_txn_abort(txn);
	store_close(&st);
	return rc;
}

void store_close(struct store **stp)
{
	struct store *st = *stp;

	if (st == NULL)
		return;
	if (st->env != NULL)
		mdb_env_close(st->env);
	pthread_rwlock_destroy(&st->resize);
	free(st->datadir);
	free(st);
	*stp = NULL;
}

const char *store_datadir(const struct store *st)
{
	return st->datadir;
}

int store_read_begin(struct store *st, struct store_txn *t)
{
	int rc;

	t->st = st;
	t->txn = NULL;
	pthread_rwlock_rdlock(&st->resize);
	if ((rc = txn_begin(st, MDB_RDONLY, &t->txn)) < 0) {
		pthread_rwlock_unlock(&st->resize);
		t->txn = NULL;
	}
	return rc;
}

void store_read_end(struct store_txn *t)
{
	if (t->txn != NULL) {
		mdb_txn_abort(t->txn);
		pthread_rwlock_unlock(&t->st->resize);
	}
	t->txn = NULL;
}

int store_write(struct store *st, store_write_fn fn, void *ctx)
{
	struct store_txn t = { st, NULL };
	int rc;

	if ((rc = store_grow(st, 0)) < 0)
		return rc;
	for (;;) {
		if ((rc = txn_begin(st, 0, &t.txn)) < 0)
			return rc;
		rc = fn(&t, ctx);
		if (rc == 0) {
			rc = store_err(mdb_txn_commit(t.txn));
		} else {
			mdb_txn_abort(t.txn);
		}
		t.txn = NULL;
		if (rc != MU_E_MAPFULL)
			return rc;
		if ((rc = store_grow(st, 1)) < 0)
			return rc;
	}
}

int store_set_map_max(struct store *st, size_t max)
{
	MDB_envinfo info;

	st->map_max = max > 0 && max < STORE_MAP_MAX ? max : STORE_MAP_MAX;
	mdb_env_info(st->env, &info);
	if (info.me_mapsize <= st->map_max)
		return 0;
	/* Shrink a larger map to the limit; LMDB keeps it at least as large
	 * as the pages in use. */
	if (pthread_rwlock_trywrlock(&st->resize) != 0)
		return -EBUSY;
	int rc = store_err(mdb_env_set_mapsize(st->env, st->map_max));
	pthread_rwlock_unlock(&st->resize);
	return rc;
}

const char *store_space_advice(int rc)
{
	switch (rc) {
	case -ENOSPC:
	case -EDQUOT:
		return "the file system holding the data directory is full: free space there (or "
		       "move the data directory to a larger disk), then try again";
	case -EIO:   /* LMDB's word for a short write: a disk that filled mid-write */
		return "writing to the data directory failed: its disk may be full or over a "
		       "quota or file-size limit, or failing (df, dmesg): fix that, then try again";
	case -EFBIG:
		return "the process may not write a file this large (a file-size limit: ulimit -f, "
		       "LimitFSIZE=): raise the limit, then try again";
	case MU_E_MAPFULL:
		return "raise map-max (musubid, then restart it) or $MUSUBI_MAP_MAX (musubi), "
		       "then try again";
	default:
		return NULL;
	}
}

int store_map_usage(struct store *st, size_t *used, size_t *mapsize)
{
	MDB_envinfo info;
	MDB_stat stat;

	mdb_env_info(st->env, &info);
	mdb_env_stat(st->env, &stat);
	*used = (info.me_last_pgno + 1) * (size_t)stat.ms_psize;
	*mapsize = info.me_mapsize;
	return 0;
}

static int db_get(struct store_txn *t, int db, const void *k, size_t klen, MDB_val *v)
{
	MDB_val key = { klen, (void *)k };
	return store_err(mdb_get(t->txn, t->st->dbi[db], &key, v));
}

static int db_put(struct store_txn *t, int db, const void *k, size_t klen, const void *v,
		  size_t vlen, unsigned flags)
{
	MDB_val key = { klen, (void *)k }, val = { vlen, (void *)v };
	return store_err(mdb_put(t->txn, t->st->dbi[db], &key, &val, flags));
}

int store_meta_get(struct store_txn *t, const char *key, void *buf, size_t cap, size_t *len)
{
	MDB_val v;
	int rc;

	if ((rc = db_get(t, DB_META, key, strlen(key), &v)) < 0)
		return rc;
	*len = v.mv_size;
	if (v.mv_size > cap)
		return -ENOSPC;
	memcpy(buf, v.mv_data, v.mv_size);
	if (v.mv_size < cap)
		((char *)buf)[v.mv_size] = '\0';
	return 0;
}

int store_meta_put(struct store_txn *t, const char *key, const void *val, size_t len)
{
	return db_put(t, DB_META, key, strlen(key), val, len, 0);
}

int store_meta_del(struct store_txn *t, const char *key)
{
	MDB_val k = { strlen(key), (void *)key };

	return store_err(mdb_del(t->txn, t->st->dbi[DB_META], &k, NULL));
}

int store_member(struct store_txn *t, char *buf, size_t cap)
{
	size_t len;
	int rc = store_meta_get(t, "member", buf, cap, &len);

	if (rc == 0 && len >= cap)
		rc = -ENOSPC;
	return rc;
}

/* A copy of s, or NULL when s is empty; *oom is set when the copy could
 * not be made (a NULL that does not mean "empty"). */
static char *dup_or_null(const char *s, int *oom)
{
	char *d;

	if (s == NULL || s[0] == '\0')
		return NULL;
	if ((d = strdup(s)) == NULL)
		*oom = 1;
	return d;
}

int store_dataset_get(struct store_txn *t, const char *name, struct store_dataset *d)
{
	Musubi__DatasetInfo *m;
	MDB_val v;
	int rc, oom = 0;

	memset(d, 0, sizeof(*d));
	if (name[0] == '\0')
		return -ENOENT;   /* LMDB refuses empty keys */
	if ((rc = db_get(t, DB_DATASETS, name, strlen(name), &v)) < 0)
		return rc;
	if ((m = musubi__dataset_info__unpack(NULL, v.mv_size, v.mv_data)) == NULL)
		return MU_E_CORRUPT;
	d->name = strdup(m->name);
	d->local_id = m->local_id;
	d->publisher = dup_or_null(m->publisher, &oom);
	if (m->schema != NULL) {
		d->schema_id = dup_or_null(m->schema->id, &oom);
		d->schema_version = m->schema->version;
		if (m->schema->digest.len == 32)
			memcpy(d->schema_digest, m->schema->digest.data, 32);
	}
	d->size = m->size;
	d->rows = m->rows;
	d->head_size = m->head_size;
	d->created_us = m->created_us;
	d->updated_us = m->updated_us;
	d->title = dup_or_null(m->title, &oom);
	d->description = dup_or_null(m->description, &oom);
	d->license = dup_or_null(m->license, &oom);
	d->update_frequency = dup_or_null(m->update_frequency, &oom);
	d->members_only = m->members_only;
	musubi__dataset_info__free_unpacked(m, NULL);
	if (d->name == NULL || oom) {
		store_dataset_fini(d);
		return -ENOMEM;
	}
	return 0;
}

static int next_local_id(struct store_txn *t, uint32_t *lid)
{
	uint8_t buf[4];
	size_t len;
	int rc = store_meta_get(t, "next_local_id", buf, sizeof(buf), &len);

	if (rc == -ENOENT) {
		*lid = 1;
	} else if (rc < 0) {
		return rc;
	} else if (len != 4) {
		return MU_E_CORRUPT;
	} else {
		*lid = get_be32(buf);
	}
	be32(buf, *lid + 1);
	return store_meta_put(t, "next_local_id", buf, 4);
}

static char *str_or_empty(const char *s)
{
	return (char *)(s != NULL ? s : "");
}

int store_dataset_put(struct store_txn *t, struct store_dataset *d)
{
	Musubi__DatasetInfo m = MUSUBI__DATASET_INFO__INIT;
	Musubi__SchemaRef sref = MUSUBI__SCHEMA_REF__INIT;
	uint8_t *buf;
	size_t len;
	int rc;

	if (d->local_id == 0 && (rc = next_local_id(t, &d->local_id)) < 0)
		return rc;
	m.name = d->name;
	m.local_id = d->local_id;
	m.publisher = str_or_empty(d->publisher);
	if (d->schema_id != NULL) {
		sref.id = d->schema_id;
		sref.version = d->schema_version;
		sref.digest.data = d->schema_digest;
		sref.digest.len = 32;
		m.schema = &sref;
	}
	m.size = d->size;
	m.rows = d->rows;
	m.head_size = d->head_size;
	m.created_us = d->created_us;
	m.updated_us = d->updated_us;
	m.title = str_or_empty(d->title);
	m.description = str_or_empty(d->description);
	m.license = str_or_empty(d->license);
	m.update_frequency = str_or_empty(d->update_frequency);
	m.members_only = d->members_only;
	len = musubi__dataset_info__get_packed_size(&m);
	if ((buf = malloc(len)) == NULL)
		return -ENOMEM;
	musubi__dataset_info__pack(&m, buf);
	rc = db_put(t, DB_DATASETS, d->name, strlen(d->name), buf, len, 0);
	free(buf);
	return rc;
}

void store_dataset_fini(struct store_dataset *d)
{
	free(d->name);
	free(d->publisher);
	free(d->schema_id);
	free(d->title);
	free(d->description);
	free(d->license);
	free(d->update_frequency);
	memset(d, 0, sizeof(*d));
}

int store_dataset_names(struct store_txn *t, char ***names, size_t *n)
{
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	char **list = NULL;
	size_t count = 0;
	int rc, mrc;

	*names = NULL;
	*n = 0;
	if ((rc = store_err(mdb_cursor_open(t->txn, t->st->dbi[DB_DATASETS], &cur))) < 0)
		return rc;
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
	     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		char **grown = realloc(list, (count + 1) * sizeof(*list));
		if (grown == NULL || (grown[count] = strndup(k.mv_data, k.mv_size)) == NULL) {
			list = grown != NULL ? grown : list;
			rc = -ENOMEM;
			goto out;
		}
		list = grown;
		count++;
	}
	if (mrc != MDB_NOTFOUND)
		rc = store_err(mrc);
out:
	mdb_cursor_close(cur);
	if (rc < 0) {
		for (size_t i = 0; i < count; i++)
			free(list[i]);
		free(list);
		return rc;
	}
	*names = list;
	*n = count;
	return 0;
}

int store_entry_put(struct store_txn *t, uint32_t lid, uint64_t seq, const void *buf, size_t len)
{
	uint8_t k[12];

	be32(k, lid);
	be64(k + 4, seq);
	/* A log grows at its end, so the key is usually the database's last:
	 * MDB_APPEND then fills each page instead of splitting it in half (half
	 * the pages to write at commit). It refuses with MDB_KEYEXIST when
	 * another dataset's entries sort after this one: put it in its place. */
	int rc = db_put(t, DB_ENTRIES, k, sizeof(k), buf, len, MDB_APPEND);
	if (rc != MU_E_EXISTS)
		return rc;
	return db_put(t, DB_ENTRIES, k, sizeof(k), buf, len, MDB_NOOVERWRITE);
}

int store_entry_replace(struct store_txn *t, uint32_t lid, uint64_t seq, const void *buf,
			size_t len)
{
	uint8_t k[12];

	be32(k, lid);
	be64(k + 4, seq);
	return db_put(t, DB_ENTRIES, k, sizeof(k), buf, len, 0);
}

int store_redaction_put(struct store_txn *t, const char *dataset, uint64_t seq, const void *buf,
			size_t len)
{
	uint8_t k[256 + 9];
	size_t n = strlen(dataset);

	if (n > 256)
		return MU_E_USAGE;
	memcpy(k, dataset, n);
	k[n] = '\0';
	be64(k + n + 1, seq);
	return db_put(t, DB_REDACTIONS, k, n + 9, buf, len, 0);
}

int store_redaction_iter(struct store_txn *t, const char *dataset,
			 int (*fn)(void *ctx, uint64_t seq, const uint8_t *buf, size_t len), void *ctx)
{
	MDB_cursor *cur;
	uint8_t k[257];
	size_t n = strlen(dataset);
	MDB_val kv = { n + 1, k }, v;
	int rc, mrc;

	if (n > 256)
		return MU_E_USAGE;
	memcpy(k, dataset, n);
	k[n] = '\0';
	if ((rc = store_err(mdb_cursor_open(t->txn, t->st->dbi[DB_REDACTIONS], &cur))) < 0)
		return rc;
	for (mrc = mdb_cursor_get(cur, &kv, &v, MDB_SET_RANGE); mrc == 0 && rc == 0;
	     mrc = mdb_cursor_get(cur, &kv, &v, MDB_NEXT)) {
		if (kv.mv_size != n + 9 || memcmp(kv.mv_data, k, n + 1) != 0)
			break;
		rc = fn(ctx, get_be64((const uint8_t *)kv.mv_data + n + 1), v.mv_data, v.mv_size);
	}
	mdb_cursor_close(cur);
	return rc < 0 ? rc : 0;
}

int store_entry_get(struct store_txn *t, uint32_t lid, uint64_t seq, const uint8_t **buf, size_t *len)
{
	uint8_t k[12];
	MDB_val v;
	int rc;

	be32(k, lid);
	be64(k + 4, seq);
	if ((rc = db_get(t, DB_ENTRIES, k, sizeof(k), &v)) < 0)
		return rc;
	*buf = v.mv_data;
	*len = v.mv_size;
	return 0;
}

int store_entry_iter_begin(struct store_txn *t, uint32_t lid, uint64_t from, struct store_iter *it)
{
	it->lid = lid;
	it->started = 0;
	it->from = from;
	return store_err(mdb_cursor_open(t->txn, t->st->dbi[DB_ENTRIES], &it->cur));
}

/* The first (from the key start, klen bytes) or next row of an iterator's
 * dataset: 1 with *kv and *v, 0 past its rows, or an error. Rows of a
 * dataset are the keys that start with its local id. */
static int iter_step(struct store_iter *it, uint8_t *start, size_t klen, MDB_val *kv, MDB_val *v)
{
	int rc;

	if (!it->started) {
		*kv = (MDB_val){ klen, start };
		rc = mdb_cursor_get(it->cur, kv, v, MDB_SET_RANGE);
		it->started = 1;
	} else {
		/* After mdb_cursor_del, LMDB's MDB_NEXT yields the row that
		 * followed the deleted one, so deleting while iterating is safe. */
		rc = mdb_cursor_get(it->cur, kv, v, MDB_NEXT);
	}
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return store_err(rc);
	return kv->mv_size >= 4 && get_be32(kv->mv_data) == it->lid;
}

int store_entry_iter_next(struct store_iter *it, uint64_t *seq, const uint8_t **buf, size_t *len)
{
	uint8_t k[12];
	MDB_val kv, v;
	int rc;

	be32(k, it->lid);
	be64(k + 4, it->from);
	if ((rc = iter_step(it, k, sizeof(k), &kv, &v)) <= 0)
		return rc;
	if (kv.mv_size != sizeof(k))
		return 0;
	*seq = get_be64((const uint8_t *)kv.mv_data + 4);
	*buf = v.mv_data;
	*len = v.mv_size;
	return 1;
}

static void node_key(uint8_t k[13], uint32_t lid, unsigned level, uint64_t index)
{
	be32(k, lid);
	k[4] = (uint8_t)level;
	be64(k + 5, index);
}

int store_tree_get(void *ctx, unsigned level, uint64_t index, merkle_hash out)
{
	struct store_tree *tr = ctx;
	int rc;

	if (level >= STORE_NODE_MIN_LEVEL) {
		uint8_t k[13];
		MDB_val v;
		node_key(k, tr->lid, level, index);
		if ((rc = db_get(tr->t, DB_NODES, k, sizeof(k), &v)) < 0)
			return rc == -ENOENT ? MU_E_CORRUPT : rc;
		if (v.mv_size != MERKLE_HASH_LEN)
			return MU_E_CORRUPT;
		memcpy(out, v.mv_data, MERKLE_HASH_LEN);
		return 0;
	}
	if (level == 0) {
		const uint8_t *buf;
		size_t len;
		if ((rc = store_entry_get(tr->t, tr->lid, index, &buf, &len)) < 0)
			return rc == -ENOENT ? MU_E_CORRUPT : rc;
		/* A redacted entry keeps its leaf hash in its stub. */
		return redact_leaf_hash(buf, len, out) < 0 ? MU_E_CORRUPT : 0;
	}
	merkle_hash l, r;
	if ((rc = store_tree_get(ctx, level - 1, index * 2, l)) < 0 ||
	    (rc = store_tree_get(ctx, level - 1, index * 2 + 1, r)) < 0)
		return rc;
	merkle_node_hash(l, r, out);
	return 0;
}

int store_tree_done(void *ctx, unsigned level, uint64_t index, const merkle_hash h)
{
	struct store_tree *tr = ctx;
	uint8_t k[13];

	if (level < STORE_NODE_MIN_LEVEL)
		return 0;
	node_key(k, tr->lid, level, index);
	return db_put(tr->t, DB_NODES, k, sizeof(k), h, MERKLE_HASH_LEN, 0);
}

int store_head_put(struct store_txn *t, uint32_t lid, uint64_t size, const void *buf, size_t len)
{
	uint8_t k[12];

	be32(k, lid);
	be64(k + 4, size);
	return db_put(t, DB_HEADS, k, sizeof(k), buf, len, 0);
}

int store_head_get(struct store_txn *t, uint32_t lid, uint64_t size, const uint8_t **buf, size_t *len)
{
	uint8_t k[12];
	MDB_val v;
	int rc;

	be32(k, lid);
	be64(k + 4, size);
	if ((rc = db_get(t, DB_HEADS, k, sizeof(k), &v)) < 0)
		return rc;
	*buf = v.mv_data;
	*len = v.mv_size;
	return 0;
}

/* Position a cursor on heads of lid at or after `from`; -ENOENT if none. */
static int head_seek(struct store_txn *t, uint32_t lid, uint64_t from, int want_last,
		     uint64_t *size, const uint8_t **buf, size_t *len)
{
	MDB_cursor *cur;
	uint8_t k[12];
	MDB_val key = { sizeof(k), k }, v;
	int rc;

	if ((rc = store_err(mdb_cursor_open(t->txn, t->st->dbi[DB_HEADS], &cur))) < 0)
		return rc;
	if (want_last) {
		/* Seek past the last possible key of lid, then step back. */
		be32(k, lid + 1);
		memset(k + 4, 0, 8);
		rc = mdb_cursor_get(cur, &key, &v, MDB_SET_RANGE);
		rc = mdb_cursor_get(cur, &key, &v, rc == 0 ? MDB_PREV : MDB_LAST);
	} else {
		be32(k, lid);
		be64(k + 4, from);
		rc = mdb_cursor_get(cur, &key, &v, MDB_SET_RANGE);
	}
	if (rc == 0 && (key.mv_size != 12 || get_be32(key.mv_data) != lid))
		rc = MDB_NOTFOUND;
	if (rc == 0) {
		*size = get_be64((const uint8_t *)key.mv_data + 4);
		*buf = v.mv_data;
		*len = v.mv_size;
	}
	mdb_cursor_close(cur);
	return store_err(rc);
}

int store_head_next(struct store_txn *t, uint32_t lid, uint64_t after, uint64_t *size,
		    const uint8_t **buf, size_t *len)
{
	return head_seek(t, lid, after + 1, 0, size, buf, len);
}

int store_head_latest(struct store_txn *t, uint32_t lid, uint64_t *size, const uint8_t **buf,
		      size_t *len)
{
	return head_seek(t, lid, 0, 1, size, buf, len);
}

/* State key: lid, then the key inline or 0xFF + SHA-256(key). */
static size_t state_key(uint8_t *k, uint32_t lid, const char *key, size_t key_len)
{
	be32(k, lid);
	if (key_len <= STORE_KEY_INLINE) {
		memcpy(k + 4, key, key_len);
		return 4 + key_len;
	}
	k[4] = 0xFF;
	merkle_sha256(key, key_len, k + 5);
	return 5 + 32;
}

int store_state_get(struct store_txn *t, uint32_t lid, const char *key, size_t key_len,
		    struct store_state_val *sv)
{
	uint8_t k[4 + STORE_KEY_INLINE];
	MDB_val v;
	int rc;

	if ((rc = db_get(t, DB_STATE, k, state_key(k, lid, key, key_len), &v)) < 0)
		return rc;
	if (v.mv_size != 40)
		return MU_E_CORRUPT;
	sv->seq = get_be64(v.mv_data);
	memcpy(sv->row_sha256, (const uint8_t *)v.mv_data + 8, 32);
	return 0;
}

int store_state_put(struct store_txn *t, uint32_t lid, const char *key, size_t key_len,
		    const struct store_state_val *sv)
{
	uint8_t k[4 + STORE_KEY_INLINE], v[40];

	be64(v, sv->seq);
	memcpy(v + 8, sv->row_sha256, 32);
	return db_put(t, DB_STATE, k, state_key(k, lid, key, key_len), v, sizeof(v), 0);
}

int store_state_upsert(struct store_txn *t, uint32_t lid, const char *key, size_t key_len,
		       const struct store_state_val *sv, int *added)
{
	uint8_t k[4 + STORE_KEY_INLINE], v[40];
	MDB_val key_val = { state_key(k, lid, key, key_len), k }, val = { sizeof(v), v };
	MDB_cursor *cur;
	int rc;

	be64(v, sv->seq);
	memcpy(v + 8, sv->row_sha256, 32);
	if ((rc = store_err(mdb_cursor_open(t->txn, t->st->dbi[DB_STATE], &cur))) < 0)
		return rc;
	/* A refused MDB_NOOVERWRITE leaves the cursor on the existing key:
	 * MDB_CURRENT then replaces its value without a second search. */
	rc = mdb_cursor_put(cur, &key_val, &val, MDB_NOOVERWRITE);
	*added = rc == MDB_SUCCESS;
	if (rc == MDB_KEYEXIST) {
		val.mv_size = sizeof(v);
		val.mv_data = v;
		rc = mdb_cursor_put(cur, &key_val, &val, MDB_CURRENT);
	}
	mdb_cursor_close(cur);
	return store_err(rc);
}

int store_state_del(struct store_txn *t, uint32_t lid, const char *key, size_t key_len)
{
	uint8_t k[4 + STORE_KEY_INLINE];
	MDB_val key_val = { state_key(k, lid, key, key_len), k };

	return store_err(mdb_del(t->txn, t->st->dbi[DB_STATE], &key_val, NULL));
}

int store_state_iter_begin(struct store_txn *t, uint32_t lid, struct store_iter *it)
{
	it->lid = lid;
	it->started = 0;
	return store_err(mdb_cursor_open(t->txn, t->st->dbi[DB_STATE], &it->cur));
}

int store_state_iter_next(struct store_iter *it, const uint8_t **key, size_t *key_len,
			  struct store_state_val *sv)
{
	uint8_t k[4];
	MDB_val kv, v;
	int rc;

	be32(k, it->lid);
	if ((rc = iter_step(it, k, sizeof(k), &kv, &v)) <= 0)
		return rc;
	if (v.mv_size != 40)
		return MU_E_CORRUPT;
	*key = (const uint8_t *)kv.mv_data + 4;
	*key_len = kv.mv_size - 4;
	sv->seq = get_be64(v.mv_data);
	memcpy(sv->row_sha256, (const uint8_t *)v.mv_data + 8, 32);
	return 1;
}

int store_iter_del(struct store_iter *it)
{
	return store_err(mdb_cursor_del(it->cur, 0));
}

void store_iter_end(struct store_iter *it)
{
	if (it->cur != NULL)
		mdb_cursor_close(it->cur);
	it->cur = NULL;
}

int store_evidence_put(struct store_txn *t, const char *dataset, int64_t found_us,
		       const void *buf, size_t len)
{
	uint8_t k[256 + 8];
	size_t n = strlen(dataset);

	if (n > 256)
		return MU_E_USAGE;
	memcpy(k, dataset, n);
	be64(k + n, (uint64_t)found_us);
	return db_put(t, DB_EVIDENCE, k, n + 8, buf, len, 0);
}

int store_evidence_count(struct store_txn *t, uint64_t *count)
{
	MDB_stat s;
	int rc = store_err(mdb_stat(t->txn, t->st->dbi[DB_EVIDENCE], &s));

	*count = rc == 0 ? s.ms_entries : 0;
	return rc;
}

int store_evidence_iter(struct store_txn *t, int (*fn)(void *ctx, const uint8_t *buf, size_t len),
			void *ctx)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc, mrc;

	if ((rc = store_err(mdb_cursor_open(t->txn, t->st->dbi[DB_EVIDENCE], &cur))) < 0)
		return rc;
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0 && rc == 0;
	     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		rc = fn(ctx, v.mv_data, v.mv_size);
	mdb_cursor_close(cur);
	return rc;
}

/* Cosignature key: dataset NUL size(8) witness. */
static size_t cosig_key(uint8_t *k, const char *dataset, uint64_t size, const char *witness)
{
	size_t n = strlen(dataset), w = strlen(witness);

	memcpy(k, dataset, n);
	k[n] = '\0';
	be64(k + n + 1, size);
	memcpy(k + n + 9, witness, w);
	return n + 9 + w;
}

int store_cosig_put(struct store_txn *t, const char *dataset, uint64_t size, const char *witness,
		    const void *buf, size_t len)
{
	uint8_t k[512];

	if (strlen(dataset) + strlen(witness) + 9 > sizeof(k))
		return MU_E_USAGE;
	return db_put(t, DB_COSIGS, k, cosig_key(k, dataset, size, witness), buf, len, 0);
}

int store_cosig_iter(struct store_txn *t, const char *dataset, uint64_t size,
		     int (*fn)(void *ctx, uint64_t size, const uint8_t *buf, size_t len), void *ctx)
{
	MDB_cursor *cur;
	uint8_t k[512];
	size_t n = strlen(dataset), klen;
	MDB_val kv, v;
	int rc, mrc;

	if (n + 9 > sizeof(k))
		return MU_E_USAGE;
	klen = cosig_key(k, dataset, size, "");
	if (size == 0)
		klen = n + 1;   /* every size */
	kv.mv_size = klen;
	kv.mv_data = k;
	if ((rc = store_err(mdb_cursor_open(t->txn, t->st->dbi[DB_COSIGS], &cur))) < 0)
		return rc;
	for (mrc = mdb_cursor_get(cur, &kv, &v, MDB_SET_RANGE); mrc == 0 && rc == 0;
	     mrc = mdb_cursor_get(cur, &kv, &v, MDB_NEXT)) {
		if (kv.mv_size < n + 9 || memcmp(kv.mv_data, k, klen) != 0)
			break;
		rc = fn(ctx, get_be64((const uint8_t *)kv.mv_data + n + 1), v.mv_data, v.mv_size);
	}
	mdb_cursor_close(cur);
	return rc;
}

int store_schema_put(struct store_txn *t, const char *id_at_version, const void *json, size_t len)
{
	return db_put(t, DB_SCHEMAS, id_at_version, strlen(id_at_version), json, len, 0);
}

int store_schema_get(struct store_txn *t, const char *id_at_version, const uint8_t **json, size_t *len)
{
	MDB_val v;
	int rc;

	if ((rc = db_get(t, DB_SCHEMAS, id_at_version, strlen(id_at_version), &v)) < 0)
		return rc;
	*json = v.mv_data;
	*len = v.mv_size;
	return 0;
}

int store_trust_put(struct store_txn *t, uint64_t version, const void *buf, size_t len)
{
	uint8_t k[8];

	be64(k, version);
	return db_put(t, DB_TRUST, k, sizeof(k), buf, len, MDB_NOOVERWRITE);
}

int store_trust_get(struct store_txn *t, uint64_t version, const uint8_t **buf, size_t *len)
{
	uint8_t k[8];
	MDB_val v;
	int rc;

	be64(k, version);
	if ((rc = db_get(t, DB_TRUST, k, sizeof(k), &v)) < 0)
		return rc;
	*buf = v.mv_data;
	*len = v.mv_size;
	return 0;
}

int store_trust_latest(struct store_txn *t, uint64_t *version, const uint8_t **buf, size_t *len)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if ((rc = store_err(mdb_cursor_open(t->txn, t->st->dbi[DB_TRUST], &cur))) < 0)
		return rc;
	/* Big-endian keys: the last key is the highest version. */
	rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	if (rc == 0 && k.mv_size != 8)
		rc = MU_E_CORRUPT;
	else if (rc == 0) {
		*version = get_be64(k.mv_data);
		*buf = v.mv_data;
		*len = v.mv_size;
	} else {
		rc = store_err(rc);
	}
	mdb_cursor_close(cur);
	return rc;
}
