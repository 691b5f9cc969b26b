/*
 * powerloss_shim.c - an LD_PRELOAD library that makes the disk under an
 * LMDB store fail or lose power after the k-th sync, as SQLite's test
 * harness does for its own files (test_vfs.c, crash tests).
 *
 * What counts as a sync of the tracked file (PL_FILE, default data.mdb):
 * fsync, fdatasync or msync of it, and every write to a descriptor of it
 * opened with O_DSYNC or O_SYNC (LMDB writes its meta page that way: the
 * write is the commit). The first PL_K syncs are honoured. After them,
 * PL_MODE says what the disk does:
 *   eio    every later write and sync of the file fails with EIO
 *          (PL_PERSIST=1), or only the first one does (PL_PERSIST=0)
 *   drop   writes still reach the page cache, so the process reads them
 *          back, but no sync makes them durable: the power goes at sync
 *          PL_K + PL_MORE (PL_MORE=0: when the process exits) and every
 *          write since sync PL_K is lost
 *   torn   the power goes at sync PL_K + 1, before it: each 4 KiB page
 *          written since sync PL_K survives or is lost at random (PL_SEED),
 *          as unsynced writes reach a disk in any order
 *   lie    a disk no store can survive, as a control for the checks: syncs
 *          after PL_K are ignored, and at exit each page written since
 *          survives or is lost at random, across many commits
 *   count  nothing fails: only count the syncs
 * The scheme for losing writes: from sync PL_K on, the pre-image of every
 * page is saved (read back from the file) before its first overwrite;
 * losing power writes the pre-images back (all, or a random half for
 * torn), truncates what grew since, and kills the process with SIGKILL.
 * The page cache then holds exactly what a disk would after the cut.
 * lock.mdb is not tracked: it is LMDB's shared memory for readers and the
 * writer mutex, rebuilt by the first process that opens the environment;
 * powerloss.sh fills it with random bytes after a cut to show that.
 *
 * PL_LOG names a file that gets one line per event: "durable txnid T at
 * sync K" (the newest LMDB meta page as of sync PL_K, so a test can check
 * the store comes back at exactly that transaction), "cut: ...", "syncs N"
 * at exit.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
/* The build passes -D_FILE_OFFSET_BITS=64, which renames open to open64
 * and so on: this file defines both names itself (off_t is 64-bit here
 * either way). */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define PAGE 4096
#define MAX_FD 1024
#define LMDB_MAGIC 0xBEEFC0DEu
#define META_MAGIC_AT 16    /* after the page header */
#define META_TXNID_AT 144   /* mm_txnid in MDB_meta (LMDB 0.9, 64-bit) */

enum mode { M_COUNT, M_EIO, M_DROP, M_TORN, M_LIE };

struct undo {
	uint64_t page;
	int used, hole;         /* hole: the page lay past the end of the file */
	uint8_t pre[PAGE];
};

static struct {
	int ready;
	pthread_mutex_t mu;
	const char *suffix;
	enum mode mode;
	long k, more;
	int persist, failed, cut;
	unsigned seed;
	int logfd;
	long syncs;
	unsigned char fds[MAX_FD];   /* 0 untracked, 1 tracked, 2 tracked and O_DSYNC */
	char path[4096];
	int snapped;                 /* sync k has happened: keep pre-images */
	off_t size_at_k;
	struct undo *undo;           /* open addressing by page number */
	size_t nundo, capundo;
} pl = { .mu = PTHREAD_MUTEX_INITIALIZER, .logfd = -1 };

static int (*real_open)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_close)(int);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_msync)(void *, size_t, int);

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
	va_list ap;

	if (pl.logfd < 0)
		return;
	va_start(ap, fmt);
	vdprintf(pl.logfd, fmt, ap);
	va_end(ap);
}

static void setup(void)
{
	const char *v;

	if (pl.ready)
		return;
	real_open = dlsym(RTLD_NEXT, "open");
	real_openat = dlsym(RTLD_NEXT, "openat");
	real_close = dlsym(RTLD_NEXT, "close");
	real_write = dlsym(RTLD_NEXT, "write");
	real_pwrite = dlsym(RTLD_NEXT, "pwrite");
	real_writev = dlsym(RTLD_NEXT, "writev");
	real_pwritev = dlsym(RTLD_NEXT, "pwritev");
	real_fsync = dlsym(RTLD_NEXT, "fsync");
	real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
	real_msync = dlsym(RTLD_NEXT, "msync");
	pl.suffix = (v = getenv("PL_FILE")) ? v : "/data.mdb";
	pl.k = (v = getenv("PL_K")) ? atol(v) : 0;
	pl.more = (v = getenv("PL_MORE")) ? atol(v) : 0;
	pl.persist = (v = getenv("PL_PERSIST")) ? atoi(v) : 1;
	pl.seed = (v = getenv("PL_SEED")) ? (unsigned)atol(v) : 1;
	v = getenv("PL_MODE");
	pl.mode = !v ? M_COUNT : !strcmp(v, "eio") ? M_EIO : !strcmp(v, "drop") ? M_DROP :
		  !strcmp(v, "torn") ? M_TORN : !strcmp(v, "lie") ? M_LIE : M_COUNT;
	if ((v = getenv("PL_LOG")) != NULL)
		pl.logfd = real_open(v, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	pl.ready = 1;
}

static int tracked(int fd)
{
	return fd >= 0 && fd < MAX_FD && pl.fds[fd];
}

static void track(int fd, const char *path, int flags)
{
	size_t n = strlen(path), s = strlen(pl.suffix);

	if (fd < 0 || fd >= MAX_FD)
		return;
	pl.fds[fd] = 0;
	if (n >= s && strcmp(path + n - s, pl.suffix) == 0) {
		pl.fds[fd] = (flags & (O_DSYNC | O_SYNC)) ? 2 : 1;
		snprintf(pl.path, sizeof(pl.path), "%s", path);
	}
}

/* The newest LMDB transaction the file's meta pages name. */
static uint64_t file_txnid(int fd)
{
	uint64_t best = 0;

	for (int m = 0; m < 2; m++) {
		uint8_t buf[META_TXNID_AT + 8];
		uint32_t magic;
		uint64_t txnid;
		if (pread(fd, buf, sizeof(buf), (off_t)m * PAGE) != (ssize_t)sizeof(buf))
			continue;
		memcpy(&magic, buf + META_MAGIC_AT, 4);
		memcpy(&txnid, buf + META_TXNID_AT, 8);
		if (magic == LMDB_MAGIC && txnid > best)
			best = txnid;
	}
	return best;
}

/* Sync k is done: what the file holds now is durable. */
static void snapshot(void)
{
	struct stat sb;
	int fd = real_open(pl.path, O_RDONLY | O_CLOEXEC);

	pl.snapped = 1;
	if (fd < 0)
		return;
	pl.size_at_k = fstat(fd, &sb) == 0 ? sb.st_size : 0;
	logf_("durable txnid %llu at sync %ld\n", (unsigned long long)file_txnid(fd), pl.syncs);
	real_close(fd);
}

static struct undo *undo_slot(uint64_t page)
{
	if (pl.nundo * 2 >= pl.capundo) {
		size_t cap = pl.capundo ? pl.capundo * 2 : 1024;
		struct undo *grown = calloc(cap, sizeof(*grown)), *old = pl.undo;
		if (grown == NULL)
			abort();   /* a test harness: no way to go on honestly */
		pl.undo = grown;
		pl.capundo = cap;
		pl.nundo = 0;
		for (size_t i = 0; old && i < cap / 2; i++)
			if (old[i].used)
				*undo_slot(old[i].page) = old[i];
		free(old);
	}
	size_t i = (size_t)(page * 0x9E3779B97F4A7C15ull) & (pl.capundo - 1);
	while (pl.undo[i].used && pl.undo[i].page != page)
		i = (i + 1) & (pl.capundo - 1);
	if (!pl.undo[i].used)
		pl.nundo++;
	return &pl.undo[i];
}

/* Keep the pre-image of every page [off, off+len) touches, once. */
static void save_pages(off_t off, size_t len)
{
	int fd = -1;

	if (len == 0)
		return;
	for (uint64_t p = (uint64_t)off / PAGE; p <= ((uint64_t)off + len - 1) / PAGE; p++) {
		struct undo *u = undo_slot(p);
		if (u->used)
			continue;
		if (fd < 0 && (fd = real_open(pl.path, O_RDONLY | O_CLOEXEC)) < 0)
			abort();
		u->used = 1;
		u->page = p;
		ssize_t got = pread(fd, u->pre, PAGE, (off_t)(p * PAGE));
		u->hole = got <= 0;
		if (got > 0 && got < PAGE)
			memset(u->pre + got, 0, PAGE - (size_t)got);
	}
	if (fd >= 0)
		real_close(fd);
}

/* The power goes: put back what the disk would not have, then die. */
static void cut(const char *when)
{
	static const uint8_t zero[PAGE];
	int fd;
	size_t lost = 0, kept = 0;
	off_t size = pl.size_at_k;

	if (pl.cut || !pl.snapped)
		return;
	pl.cut = 1;
	if ((fd = real_open(pl.path, O_RDWR | O_CLOEXEC)) < 0)
		abort();
	for (size_t i = 0; i < pl.capundo; i++) {
		struct undo *u = &pl.undo[i];
		if (!u->used)
			continue;
		if ((pl.mode == M_TORN || pl.mode == M_LIE) && rand_r(&pl.seed) % 2) {
			kept++;
			if ((off_t)((u->page + 1) * PAGE) > size)
				size = (off_t)((u->page + 1) * PAGE);
			continue;
		}
		lost++;
		real_pwrite(fd, u->hole ? zero : u->pre, PAGE, (off_t)(u->page * PAGE));
	}
	if (ftruncate(fd, size) != 0)
		abort();
	real_close(fd);
	logf_("cut %s after sync %ld: %zu page(s) written since were lost, %zu kept\n", when, pl.k,
	      lost, kept);
	raise(SIGKILL);
}

/* A sync of the tracked file: 0 to do it for real, 1 to pretend, -1 to
 * fail with EIO. */
static int on_sync(void)
{
	long n = pl.syncs + 1;

	if (pl.mode == M_COUNT || n <= pl.k) {
		pl.syncs = n;
		return 0;
	}
	if (!pl.snapped)
		snapshot();
	switch (pl.mode) {
	case M_EIO:
		if (pl.persist || !pl.failed) {
			pl.failed = 1;
			logf_("EIO at sync %ld\n", n);
			return -1;
		}
		pl.syncs = n;
		return 0;
	case M_TORN:
		cut("at the next sync");
		return -1;
	default:   /* M_DROP, M_LIE */
		pl.syncs = n;
		if (pl.mode == M_DROP && pl.more > 0 && n >= pl.k + pl.more)
			cut("at a later sync");
		return 1;
	}
}

static int after_sync(int rc)
{
	if (rc == 0 && pl.mode != M_COUNT && pl.syncs == pl.k && !pl.snapped)
		snapshot();
	return rc;
}

/* Before a write of [off, off+len) to a tracked fd: 0 to go ahead, -1 to
 * fail it with EIO. (A write to an O_DSYNC descriptor is then also a sync.) */
static int before_write(int fd, off_t off, size_t len)
{
	if (pl.mode == M_COUNT || pl.syncs < pl.k)
		return 0;
	if (!pl.snapped)
		snapshot();
	if (pl.mode == M_EIO) {
		if (pl.persist || !pl.failed) {
			pl.failed = 1;
			logf_("EIO at a write after sync %ld\n", pl.syncs);
			return -1;
		}
		return 0;
	}
	if (pl.mode == M_TORN && pl.fds[fd] == 2)
		cut("at the next sync");   /* this write is that sync */
	save_pages(off, len);
	return 0;
}

static void at_exit_cut(void) __attribute__((destructor));
static void at_exit_cut(void)
{
	if (!pl.ready)
		return;
	logf_("syncs %ld\n", pl.syncs);
	if (pl.mode == M_DROP || pl.mode == M_TORN || pl.mode == M_LIE)
		cut("at exit");
}

/* ---- the interposed calls ---- */

static int do_open(int dirfd, const char *path, int flags, mode_t mode, int at)
{
	int fd;

	setup();
	fd = at ? real_openat(dirfd, path, flags, mode) : real_open(path, flags, mode);
	if (fd >= 0) {
		pthread_mutex_lock(&pl.mu);
		track(fd, path, flags);
		pthread_mutex_unlock(&pl.mu);
	}
	return fd;
}

#define MODE_ARG(flags, mode)                                   \
	do {                                                    \
		if ((flags) & (O_CREAT | O_TMPFILE)) {          \
			va_list ap;                             \
			va_start(ap, flags);                    \
			mode = va_arg(ap, mode_t);              \
			va_end(ap);                             \
		}                                               \
	} while (0)

int open(const char *path, int flags, ...)
{
	mode_t mode = 0;

	MODE_ARG(flags, mode);
	return do_open(AT_FDCWD, path, flags, mode, 0);
}

int open64(const char *path, int flags, ...)
{
	mode_t mode = 0;

	MODE_ARG(flags, mode);
	return do_open(AT_FDCWD, path, flags, mode, 0);
}

int openat(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;

	MODE_ARG(flags, mode);
	return do_open(dirfd, path, flags, mode, 1);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;

	MODE_ARG(flags, mode);
	return do_open(dirfd, path, flags, mode, 1);
}

int close(int fd)
{
	setup();
	if (fd >= 0 && fd < MAX_FD)
		pl.fds[fd] = 0;
	return real_close(fd);
}

/* Run a write through the disk model. off < 0: at the file position. */
static ssize_t model_write(int fd, off_t off, size_t len, ssize_t (*doit)(void *), void *arg)
{
	ssize_t rc;
	int r = 0;

	setup();
	if (!tracked(fd))
		return doit(arg);
	pthread_mutex_lock(&pl.mu);
	if (off < 0)
		off = lseek(fd, 0, SEEK_CUR);
	if (before_write(fd, off, len) < 0) {
		pthread_mutex_unlock(&pl.mu);
		errno = EIO;
		return -1;
	}
	if (pl.fds[fd] == 2 && (r = on_sync()) < 0) {
		pthread_mutex_unlock(&pl.mu);
		errno = EIO;
		return -1;
	}
	rc = doit(arg);
	if (pl.fds[fd] == 2 && r == 0)
		after_sync(rc < 0 ? -1 : 0);
	pthread_mutex_unlock(&pl.mu);
	return rc;
}

struct wargs {
	int fd;
	const void *buf;
	const struct iovec *iov;
	int iovcnt;
	size_t len;
	off_t off;
};

static ssize_t w_write(void *a) { struct wargs *w = a; return real_write(w->fd, w->buf, w->len); }
static ssize_t w_pwrite(void *a) { struct wargs *w = a; return real_pwrite(w->fd, w->buf, w->len, w->off); }
static ssize_t w_writev(void *a) { struct wargs *w = a; return real_writev(w->fd, w->iov, w->iovcnt); }
static ssize_t w_pwritev(void *a) { struct wargs *w = a; return real_pwritev(w->fd, w->iov, w->iovcnt, w->off); }

static size_t iov_len(const struct iovec *iov, int n)
{
	size_t len = 0;

	for (int i = 0; i < n; i++)
		len += iov[i].iov_len;
	return len;
}

ssize_t write(int fd, const void *buf, size_t len)
{
	struct wargs w = { .fd = fd, .buf = buf, .len = len };
	return model_write(fd, -1, len, w_write, &w);
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off)
{
	struct wargs w = { .fd = fd, .buf = buf, .len = len, .off = off };
	return model_write(fd, off, len, w_pwrite, &w);
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off_t off)
{
	return pwrite(fd, buf, len, off);
}

ssize_t writev(int fd, const struct iovec *iov, int n)
{
	struct wargs w = { .fd = fd, .iov = iov, .iovcnt = n };
	return model_write(fd, -1, iov_len(iov, n), w_writev, &w);
}

ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
	struct wargs w = { .fd = fd, .iov = iov, .iovcnt = n, .off = off };
	return model_write(fd, off, iov_len(iov, n), w_pwritev, &w);
}

static int model_sync(int fd, int (*real)(int))
{
	int r, rc;

	setup();
	if (!tracked(fd))
		return real(fd);
	pthread_mutex_lock(&pl.mu);
	r = on_sync();
	rc = r < 0 ? -1 : r > 0 ? 0 : after_sync(real(fd));
	pthread_mutex_unlock(&pl.mu);
	if (r < 0)
		errno = EIO;
	return rc;
}

int fsync(int fd) { return model_sync(fd, real_fsync); }
int fdatasync(int fd) { return model_sync(fd, real_fdatasync); }

int msync(void *addr, size_t len, int flags)
{
	int r = 0, any = 0;

	setup();
	pthread_mutex_lock(&pl.mu);
	for (int i = 0; i < MAX_FD; i++)
		any |= pl.fds[i];
	if (any && (flags & MS_SYNC))
		r = on_sync();
	pthread_mutex_unlock(&pl.mu);
	if (r < 0) {
		errno = EIO;
		return -1;
	}
	if (r > 0)
		return 0;
	int rc = real_msync(addr, len, flags);
	if (any && (flags & MS_SYNC)) {
		pthread_mutex_lock(&pl.mu);
		after_sync(rc);
		pthread_mutex_unlock(&pl.mu);
	}
	return rc;
}
