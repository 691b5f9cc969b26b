/*
 * backup.c - copy a live data directory (layout and guarantees in backup.h).
 *
 * The store is copied by LMDB itself (mdb_env_copyfd2 with MDB_CP_COMPACT):
 * it walks the B-trees of one read transaction, so the copy is one
 * committed state however many writers commit meanwhile, and free pages
 * are left out. The manifest is made from the copy once it is written.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <lmdb.h>

#include "backup.h"
#include "head.h"
#include "musubi_config.h"
#include "mu_err.h"
#include "sig.h"
#include "store.h"
#include "util.h"

#define KEY_FILE_MAX 16384   /* key files are PEM of a few hundred bytes */
#define COPY_ATTEMPTS 5      /* a writer may grow the map under the copy */

static int join(char *buf, const char *a, const char *b)
{
	return snprintf(buf, PATH_MAX, "%s/%s", a, b) >= PATH_MAX ? -ENAMETOOLONG : 0;
}

static int fsync_path(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	remove(path);
	return 0;
}

/* The store: a compacted snapshot into OUT/store/data.mdb, on disk before
 * anything names it. */
static int copy_store(const char *datadir, const char *out, char *why, size_t whylen)
{
	char src[PATH_MAX], dir[PATH_MAX], dst[PATH_MAX];
	MDB_env *env = NULL;
	int fd = -1, rc;

	if ((rc = join(src, datadir, "store")) < 0 || (rc = join(dir, out, "store")) < 0 ||
	    (rc = join(dst, dir, "data.mdb")) < 0)
		return rc;
	if (mkdir(dir, 0750) < 0)
		return -errno;
	if ((rc = mdb_env_create(&env)) != 0 ||
	    (rc = mdb_env_open(env, src, MDB_RDONLY | MDB_NOTLS, 0)) != 0 ||
	    (rc = mdb_env_set_mapsize(env, 0)) != 0) {
		snprintf(why, whylen, "cannot open %s: %s", src, mdb_strerror(rc));
		rc = store_err(rc);
		goto out;
	}
	for (int i = 0; i < COPY_ATTEMPTS; i++) {
		if (fd >= 0)
			close(fd);
		if ((fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640)) < 0) {
			rc = -errno;
			snprintf(why, whylen, "cannot create %s: %s", dst, strerror(errno));
			goto out;
		}
		rc = mdb_env_copyfd2(env, fd, MDB_CP_COMPACT);
		if (rc != MDB_MAP_RESIZED)
			break;
		/* A writer grew the map since we opened it: adopt its size and
		 * start the copy again (the truncating open drops the first try). */
		mdb_env_set_mapsize(env, 0);
	}
	if (rc != 0) {
		snprintf(why, whylen, "copying %s: %s", src, mdb_strerror(rc));
		rc = store_err(rc);
		goto out;
	}
	if (fsync(fd) < 0 || (rc = fsync_path(dir, O_RDONLY | O_DIRECTORY)) < 0) {
		rc = rc < 0 ? rc : -errno;
		snprintf(why, whylen, "cannot sync %s: %s", dst, mu_strerror(rc));
	}
out:
	if (fd >= 0)
		close(fd);
	mdb_env_close(env);
	return rc;
}

static int read_small(const char *path, uint8_t *buf, size_t cap, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;
	ssize_t n;

	if (fd < 0)
		return -errno;
	*len = 0;
	while ((n = read(fd, buf + *len, cap - *len)) > 0)
		*len += (size_t)n;
	if (n < 0)
		rc = -errno;
	else if (*len == cap)
		rc = MU_E_TOOBIG;
	close(fd);
	return rc;
}

/*
 * Digest every regular file of FROM/keys into digests (name -> SHA-256 hex);
 * with to set, copy each into TO/keys as well, keeping its mode.
 */
static int each_key(const char *from, const char *to, json_t *digests, unsigned *count, char *why,
		    size_t whylen)
{
	char sdir[PATH_MAX], ddir[PATH_MAX], src[PATH_MAX], dst[PATH_MAX], hex[65];
	uint8_t buf[KEY_FILE_MAX], digest[32];
	struct dirent *e;
	DIR *d = NULL;
	int rc = 0, fd;

	*count = 0;
	if ((rc = join(sdir, from, "keys")) < 0 || (to != NULL && (rc = join(ddir, to, "keys")) < 0))
		return rc;
	if (to != NULL && mkdir(ddir, 0700) < 0) {
		rc = -errno;
		goto out;
	}
	if ((d = opendir(sdir)) == NULL) {
		rc = -errno;
		goto out;
	}
	while ((e = readdir(d)) != NULL) {
		struct stat sb;
		size_t len = 0;
		if (e->d_name[0] == '.')
			continue;
		if ((rc = join(src, sdir, e->d_name)) < 0)
			break;
		if (lstat(src, &sb) < 0) {
			rc = -errno;
			break;
		}
		if (!S_ISREG(sb.st_mode))
			continue;
		if ((rc = read_small(src, buf, sizeof(buf), &len)) < 0)
			break;
		sig_sha256(buf, len, digest);
		sig_hex(digest, sizeof(digest), hex);
		json_object_set_new(digests, e->d_name, json_string(hex));
		(*count)++;
		if (to == NULL)
			continue;
		if ((rc = join(dst, ddir, e->d_name)) < 0)
			break;
		if ((fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
			rc = -errno;
			break;
		}
		/* fchmod: the mode as it was, whatever the umask says. */
		if ((rc = write_all(fd, buf, len)) == 0 && (fchmod(fd, sb.st_mode & 07777) < 0 ||
							     fsync(fd) < 0))
			rc = -errno;
		close(fd);
		if (rc < 0)
			break;
	}
	if (rc == 0 && to != NULL)
		rc = fsync_path(ddir, O_RDONLY | O_DIRECTORY);
out:
	explicit_bzero(buf, sizeof(buf));
	if (d != NULL)
		closedir(d);
	if (rc < 0)
		snprintf(why, whylen, "key files %s: %s", to != NULL ? "not copied" : "not read",
			 mu_strerror(rc));
	return rc;
}

int backup_restored(struct store_txn *t, char *when, size_t cap)
{
	size_t len;
	int rc = store_meta_get(t, BACKUP_RESTORED_KEY, when, cap, &len);

	if (rc == -ENOENT)
		return 0;
	return rc < 0 ? rc : 1;
}

int backup_mark_restored(struct store_txn *t, const char *when)
{
	if (when != NULL)
		return store_meta_put(t, BACKUP_RESTORED_KEY, when, strlen(when));
	int rc = store_meta_del(t, BACKUP_RESTORED_KEY);
	return rc == -ENOENT ? 0 : rc;
}

static int mark_fn(struct store_txn *t, void *ctx)
{
	return backup_mark_restored(t, ctx);
}

int backup_clear_restored(struct store *st)
{
	return store_write(st, mark_fn, NULL);
}

/* Mark the copy in out as restored-from-backup (above), before the
 * manifest describes it. */
static int mark_copy(const char *out, const char *when, char *why, size_t whylen)
{
	struct store *st = NULL;
	int rc = store_open(out, 0, &st);

	if (rc == 0)
		rc = store_write(st, mark_fn, (void *)when);
	store_close(&st);
	if (rc < 0)
		snprintf(why, whylen, "cannot mark the copy in %s as a backup: %s", out,
			 mu_strerror(rc));
	return rc;
}

/* The "store" object of the manifest, made from the store in dir. */
static int describe_store(const char *dir, json_t **out, struct backup_info *info, char *why,
			  size_t whylen)
{
	struct store *st = NULL;
	struct store_txn t = { 0 };
	char **names = NULL, path[PATH_MAX];
	size_t n = 0, len;
	const uint8_t *buf;
	json_t *datasets = json_object();
	struct stat sb;
	int rc;

	*out = NULL;
	if ((rc = store_open(dir, STORE_RDONLY, &st)) < 0) {
		snprintf(why, whylen, "the store in %s does not open: %s", dir, mu_strerror(rc));
		goto out;
	}
	if ((rc = store_read_begin(st, &t)) < 0 ||
	    (rc = store_member(&t, info->member, sizeof(info->member))) < 0 ||
	    (rc = store_dataset_names(&t, &names, &n)) < 0) {
		snprintf(why, whylen, "the store in %s does not read: %s", dir, mu_strerror(rc));
		goto out;
	}
	if (store_trust_latest(&t, &info->trust_version, &buf, &len) < 0)
		info->trust_version = 0;
	info->datasets = n;
	info->entries = 0;
	for (size_t i = 0; i < n; i++) {
		struct store_dataset d;
		struct head_signed hs;
		char root[65] = "";
		uint64_t size;
		if ((rc = store_dataset_get(&t, names[i], &d)) < 0) {
			snprintf(why, whylen, "dataset %s does not read: %s", names[i], mu_strerror(rc));
			goto out;
		}
		if (store_head_latest(&t, d.local_id, &size, &buf, &len) == 0 &&
		    head_decode(buf, len, &hs) == 0) {
			sig_hex(hs.hd->h.root, 32, root);
			head_signed_fini(&hs);
		}
		json_object_set_new(datasets, names[i],
				    json_pack("{s:I,s:I,s:I,s:s}", "entries", (json_int_t)d.size,
					      "rows", (json_int_t)d.rows, "head_size",
					      (json_int_t)d.head_size, "root", root));
		info->entries += d.size;
		store_dataset_fini(&d);
	}
	if ((rc = join(path, dir, "store/data.mdb")) < 0 || stat(path, &sb) < 0) {
		rc = rc < 0 ? rc : -errno;
		goto out;
	}
	info->store_bytes = (uint64_t)sb.st_size;
	*out = json_pack("{s:s,s:i,s:I,s:O}", "member", info->member, "format", STORE_FORMAT_VERSION,
			 "trust_version", (json_int_t)info->trust_version, "datasets", datasets);
	if (*out == NULL)
		rc = -ENOMEM;
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	json_decref(datasets);
	store_read_end(&t);
	store_close(&st);
	return rc;
}

static int write_manifest(const char *out, json_t *m, char *why, size_t whylen)
{
	char tmp[PATH_MAX], path[PATH_MAX];
	char *text = json_dumps(m, JSON_INDENT(2) | JSON_SORT_KEYS);
	int fd = -1, rc;

	if (text == NULL)
		return -ENOMEM;
	if ((rc = join(path, out, BACKUP_MANIFEST)) < 0 || (rc = join(tmp, out, ".manifest.tmp")) < 0)
		goto out;
	/* Written aside and renamed: the manifest is there whole or not at all. */
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640)) < 0 ||
	    (rc = write_all(fd, text, strlen(text))) < 0 || (rc = write_all(fd, "\n", 1)) < 0 ||
	    fsync(fd) < 0 || rename(tmp, path) < 0) {
		rc = rc < 0 ? rc : -errno;
		goto out;
	}
	rc = fsync_path(out, O_RDONLY | O_DIRECTORY);
out:
	if (fd >= 0)
		close(fd);
	if (rc < 0)
		snprintf(why, whylen, "cannot write %s/%s: %s", out, BACKUP_MANIFEST, mu_strerror(rc));
	free(text);
	return rc;
}

int backup_create(const char *datadir, const char *out, struct backup_info *info, char *why,
		  size_t whylen)
{
	struct store *st = NULL;
	json_t *keys = json_object(), *desc = NULL, *m = NULL;
	char src[PATH_MAX], when[32];
	int rc, made = 0;

	memset(info, 0, sizeof(*info));
	/* Refuse a store this musubi cannot read before copying anything. */
	if ((rc = store_open(datadir, STORE_RDONLY, &st)) < 0) {
		snprintf(why, whylen, "cannot open the store in %s: %s%s", datadir, mu_strerror(rc),
			 rc == -EACCES ? " (run the backup as the user musubid runs as, e.g. "
					 "sudo -u musubi)" : "");
		goto out;
	}
	store_close(&st);
	if (mkdir(out, 0700) < 0) {
		rc = errno == EEXIST ? MU_E_EXISTS : -errno;
		snprintf(why, whylen, "%s: %s", out, errno == EEXIST ?
			 "exists already (a backup never overwrites one)" : strerror(errno));
		goto out;
	}
	made = 1;
	mu_format_time(mu_now_us(), when, sizeof(when));
	if ((rc = copy_store(datadir, out, why, whylen)) < 0 ||
	    (rc = mark_copy(out, when, why, whylen)) < 0 ||
	    (rc = each_key(datadir, out, keys, &info->keys, why, whylen)) < 0 ||
	    (rc = describe_store(out, &desc, info, why, whylen)) < 0)
		goto out;
	if (realpath(datadir, src) == NULL)
		snprintf(src, sizeof(src), "%s", datadir);
	m = json_pack("{s:i,s:s,s:s,s:s,s:O,s:O}", "musubi_backup", BACKUP_FORMAT,
		      "software", "musubi/" MUSUBI_VERSION, "created", when, "source", src,
		      "store", desc, "keys", keys);
	if (m == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = write_manifest(out, m, why, whylen)) < 0)
		goto out;
	rc = backup_check(out, info, why, whylen);
out:
	if (rc < 0 && made)
		nftw(out, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	json_decref(keys);
	json_decref(desc);
	json_decref(m);
	return rc;
}

/* Compare two objects of named values (datasets, key files): the first
 * name missing, different or extra, in words. */
static int diff_named(json_t *want, json_t *have, const char *what, char *why, size_t whylen)
{
	const char *name;
	json_t *v;

	json_object_foreach(want, name, v) {
		json_t *h = json_object_get(have, name);
		if (h == NULL || !json_equal(v, h)) {
			snprintf(why, whylen, "%s %s %s", what, name, h == NULL ?
				 "is named in the manifest but missing" : "differs from the manifest");
			return MU_E_CORRUPT;
		}
	}
	json_object_foreach(have, name, v) {
		if (json_object_get(want, name) == NULL) {
			snprintf(why, whylen, "%s %s is not in the manifest", what, name);
			return MU_E_CORRUPT;
		}
	}
	return 0;
}

int backup_check(const char *out, struct backup_info *info, char *why, size_t whylen)
{
	json_t *m = NULL, *desc = NULL, *keys = json_object(), *want;
	json_error_t jerr;
	char path[PATH_MAX];
	const char *field;
	json_t *v;
	int rc;

	memset(info, 0, sizeof(*info));
	if ((rc = join(path, out, BACKUP_MANIFEST)) < 0)
		goto out;
	if ((m = json_load_file(path, 0, &jerr)) == NULL) {
		rc = access(path, F_OK) == 0 ? MU_E_CORRUPT : -ENOENT;
		if (rc == -ENOENT)
			snprintf(why, whylen, "%s has no %s: not a backup, or one that did not finish",
				 out, BACKUP_MANIFEST);
		else
			snprintf(why, whylen, "%s: %s", path, jerr.text);
		goto out;
	}
	if (json_integer_value(json_object_get(m, "musubi_backup")) != BACKUP_FORMAT) {
		snprintf(why, whylen, "%s is not a backup of format %d (made by a newer musubi?)", path,
			 BACKUP_FORMAT);
		rc = MU_E_VERSION;
		goto out;
	}
	want = json_object_get(m, "store");
	if (!json_is_object(want) || !json_is_object(json_object_get(want, "datasets")) ||
	    !json_is_object(json_object_get(m, "keys"))) {
		snprintf(why, whylen, "%s does not describe a store and its keys", path);
		rc = MU_E_CORRUPT;
		goto out;
	}
	if ((rc = describe_store(out, &desc, info, why, whylen)) < 0 ||
	    (rc = each_key(out, NULL, keys, &info->keys, why, whylen)) < 0)
		goto out;
	json_object_foreach(want, field, v) {
		if (strcmp(field, "datasets") != 0 && !json_equal(v, json_object_get(desc, field))) {
			snprintf(why, whylen, "the store's %s differs from the manifest", field);
			rc = MU_E_CORRUPT;
			goto out;
		}
	}
	if ((rc = diff_named(json_object_get(want, "datasets"), json_object_get(desc, "datasets"),
			     "dataset", why, whylen)) == 0)
		rc = diff_named(json_object_get(m, "keys"), keys, "key file", why, whylen);
out:
	json_decref(m);
	json_decref(desc);
	json_decref(keys);
	return rc;
}
