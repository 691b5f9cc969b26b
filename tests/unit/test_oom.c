/*
 * test_oom.c - out of memory at every allocation of a publish (UTF-8 and
 * Shift_JIS), of a publish of changes and deletes in several batches, and
 * of a sync's commit: an error comes back, nothing leaks, nothing is half
 * written.
 *
 * This executable defines malloc, calloc, realloc, free and the aligned
 * allocators itself, forwarding to glibc's __libc_* entry points, so every
 * allocation of the process goes through here: ours, protobuf-c's default
 * allocator, OpenSSL's, LMDB's, iconv's (jansson's and the regex
 * functions' are counted apart; see below). For n = 1, 2, ... the
 * operation runs against a fresh store with the n-th allocation refused
 * (and every later one granted), until a run finishes without reaching
 * allocation n. After each run:
 *  - the operation returned an error, or success when the refusal was
 *    absorbed (or n was past its last allocation);
 *  - the number of live allocations and open file descriptors is back to
 *    what it was before the store was opened (two unarmed runs have
 *    warmed the caches libraries keep for the life of the process, and
 *    OpenSSL's per-thread error queue is dropped before each count);
 *  - the store reopens, verify_store() finds no problem, every entry is
 *    under a signed head, and the log is where it started, at a batch
 *    boundary, or whole (whole exactly when the operation succeeded).
 * A leak prints the n to replay: MU_OOM_TRACE=n test_oom names the call
 * index, size and caller of each allocation still live; MU_OOM_VERBOSE=1
 * prints each n, MU_OOM_FROM=n starts there.
 *
 * Sanitizers bring their own allocator: under b_sanitize meson builds this
 * test to print why and skip.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "check.h"
#include "head.h"
#include "ingest.h"
#include "mu_err.h"
#include "publish.h"
#include "sig.h"
#include "store.h"
#include "testutil.h"
#include "verify.h"

#ifdef MU_OOM_SANITIZED
/* A sanitizer owns malloc in this build: nothing to interpose. */
static void skipped(void)
{
	printf("skipped: the sanitizer replaces malloc, which this test must interpose; "
	       "run it in a build without b_sanitize\n");
	exit(77);
}

CHECK_TESTS = {
	{ "out of memory (skipped under sanitizers)", skipped },
	{ NULL, NULL },
};
#else

/* ---- the allocator ---- */

void *__libc_malloc(size_t);
void *__libc_calloc(size_t, size_t);
void *__libc_realloc(void *, size_t);
void *__libc_memalign(size_t, size_t);
void __libc_free(void *);

static long oom_fail_at;      /* refuse this allocation call while armed (1-based) */
static long oom_calls;        /* allocation calls since armed */
static int oom_armed;
static int oom_quiet;         /* inside a call whose allocations are not ours to judge */
static int oom_refused;       /* the armed run reached oom_fail_at */
static void *oom_refused_at;  /* the caller of the refused allocation */
static long oom_live;         /* allocations made minus allocations freed */

/* Trace mode (MU_OOM_TRACE): remember live allocations of one run. */
#define TRACE_MAX 65536
static struct trace_rec {
	void *p;
	size_t size;
	long call;
	void *caller;
} trace[TRACE_MAX];
static size_t ntrace;
static int tracing;

/* Not inlined, so that a debugger can stop where allocation N is refused:
 * gdb -ex 'break refuse if oom_calls + 1 == N' ... */
__attribute__((noinline)) static int refuse(void)
{
	if (!oom_armed || oom_quiet)
		return 0;
	if (++oom_calls == oom_fail_at) {
		oom_refused = 1;
		return 1;
	}
	return 0;
}

static void note_alloc(void *p, size_t size, void *caller)
{
	if (p == NULL || oom_quiet)
		return;
	__atomic_add_fetch(&oom_live, 1, __ATOMIC_RELAXED);
	if (tracing && ntrace < TRACE_MAX)
		trace[ntrace++] = (struct trace_rec){ p, size, oom_calls, caller };
}

static void note_free(void *p)
{
	if (p == NULL || oom_quiet)
		return;
	__atomic_sub_fetch(&oom_live, 1, __ATOMIC_RELAXED);
	if (tracing)
		for (size_t i = ntrace; i-- > 0;)
			if (trace[i].p == p) {
				trace[i] = trace[--ntrace];
				break;
			}
}

void *malloc(size_t size)
{
	void *p;

	if (refuse()) {
		oom_refused_at = __builtin_return_address(0);
		errno = ENOMEM;
		return NULL;
	}
	p = __libc_malloc(size);
	note_alloc(p, size, __builtin_return_address(0));
	return p;
}

void *calloc(size_t n, size_t size)
{
	void *p;

	if (refuse()) {
		oom_refused_at = __builtin_return_address(0);
		errno = ENOMEM;
		return NULL;
	}
	p = __libc_calloc(n, size);
	note_alloc(p, n * size, __builtin_return_address(0));
	return p;
}

void *realloc(void *old, size_t size)
{
	void *p;

	if (old == NULL) {
		if (refuse()) {
			errno = ENOMEM;
			return NULL;
		}
		p = __libc_realloc(NULL, size);
		note_alloc(p, size, __builtin_return_address(0));
		return p;
	}
	if (size == 0) {   /* glibc frees and returns NULL */
		note_free(old);
		return __libc_realloc(old, 0);
	}
	if (refuse()) {    /* the old block stays the caller's */
		oom_refused_at = __builtin_return_address(0);
		errno = ENOMEM;
		return NULL;
	}
	p = __libc_realloc(old, size);
	if (p != NULL) {
		note_free(old);
		note_alloc(p, size, __builtin_return_address(0));
	}
	return p;
}

void *reallocarray(void *old, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(old, n * size);
}

void free(void *p)
{
	note_free(p);
	__libc_free(p);
}

static void *aligned(size_t align, size_t size, void *caller)
{
	void *p;

	if (refuse()) {
		errno = ENOMEM;
		return NULL;
	}
	p = __libc_memalign(align, size);
	note_alloc(p, size, caller);
	return p;
}

void *memalign(size_t align, size_t size)
{
	return aligned(align, size, __builtin_return_address(0));
}

void *aligned_alloc(size_t align, size_t size)
{
	return aligned(align, size, __builtin_return_address(0));
}

int posix_memalign(void **out, size_t align, size_t size)
{
	void *p = aligned(align, size, __builtin_return_address(0));

	if (p == NULL)
		return ENOMEM;
	*out = p;
	return 0;
}

void *valloc(size_t size)
{
	return aligned((size_t)sysconf(_SC_PAGESIZE), size, __builtin_return_address(0));
}

/*
 * jansson 2.14 cannot survive a refused allocation while it lexes: its
 * lex_save() drops the failure, and the lexer then asserts or writes past
 * its buffer (akheron/jansson issue 362, unfixed in the release we link).
 * Its allocations are therefore counted for leaks but never refused.
 */
static void *json_alloc(size_t size)
{
	void *p = __libc_malloc(size);

	note_alloc(p, size, __builtin_return_address(0));
	return p;
}

static void json_release(void *p)
{
	note_free(p);
	__libc_free(p);
}

/*
 * glibc's regcomp() leaks part of what it has built when a later
 * allocation of the same compilation fails (create_initial_state() drops
 * its node set on the error path), so what the regex functions do is
 * neither refused nor counted.
 */
static int (*libc_regcomp)(regex_t *, const char *, int);
static void (*libc_regfree)(regex_t *);
static int (*libc_regexec)(const regex_t *, const char *, size_t, regmatch_t *, int);

int regcomp(regex_t *restrict re, const char *restrict pattern, int flags)
{
	int rc;

	oom_quiet++;
	rc = libc_regcomp(re, pattern, flags);
	oom_quiet--;
	return rc;
}

/* regexec() caches the automaton states it builds in the pattern, for
 * regfree() to free. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Wunknown-warning-option"
#pragma GCC diagnostic ignored "-Wvla-parameter"   /* glibc declares match[nmatch] */
int regexec(const regex_t *restrict re, const char *restrict s, size_t nmatch,
	    regmatch_t *restrict match, int flags)
{
	int rc;

	oom_quiet++;
	rc = libc_regexec(re, s, nmatch, match, flags);
	oom_quiet--;
	return rc;
}
#pragma GCC diagnostic pop

void regfree(regex_t *re)
{
	oom_quiet++;
	libc_regfree(re);
	oom_quiet--;
}

/* ---- stores ---- */

#define MEMBER "012050"
#define DATASET "shelters"
#define SCHEMA "gsi_designated_shelter@1"
#define CSV MU_TEST_DATA "/designated_shelters/012050_muroran_gsi.csv"
#define ROWS 17

static struct sig_key *key;
static uint8_t key_raw[SIG_PUBKEY_LEN];
static char keydir[TU_DIR_MAX];

static int init_meta(struct store_txn *t, void *ctx)
{
	int rc;

	if ((rc = store_meta_put(t, "member", MEMBER, strlen(MEMBER))) < 0)
		return rc;
	return store_meta_put(t, "signing_pub", key_raw, sizeof(key_raw));
}

/* What a run starts from: a replica's empty store, the publisher's, or
 * the publisher's holding CSV already. */
enum { STORE_REPLICA, STORE_PUBLISHER, STORE_PUBLISHED };

static int store_new(char dir[TU_DIR_MAX], int kind, struct store **st)
{
	struct publish_opts o = { .dataset = DATASET, .schema_spec = SCHEMA, .path = CSV };
	struct publish_result res;
	int rc;

	if ((rc = tu_tmpdir(dir, "oom")) < 0)
		return rc;
	if ((rc = store_open(dir, STORE_CREATE | STORE_NOSYNC, st)) < 0 || kind == STORE_REPLICA ||
	    (rc = store_write(*st, init_meta, NULL)) < 0 || kind == STORE_PUBLISHER)
		return rc;
	rc = publish_csv(*st, key, &o, &res);
	publish_result_fini(&res);
	return rc;
}

/* Heads in the replica are the publisher's: the test key signs them all. */
static int test_key_fn(void *ctx, struct store_txn *t, const struct rec_head *h,
		       struct sig_key **out, char *why, size_t whylen)
{
	return sig_key_from_raw_public(key_raw, out);
}

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static void cleanup(void);

static void setup(void)
{
	if (key != NULL)
		return;
	REQUIRE(tu_tmpdir(keydir, "oom-key") == 0);
	atexit(cleanup);
	CHECK_OK(tu_key_new(keydir, "keys", &key, NULL));
	REQUIRE(key != NULL);
	CHECK_OK(sig_key_raw_public(key, key_raw));
	json_set_alloc_funcs(json_alloc, json_release);
	libc_regcomp = (int (*)(regex_t *, const char *, int))dlsym(RTLD_NEXT, "regcomp");
	libc_regfree = (void (*)(regex_t *))dlsym(RTLD_NEXT, "regfree");
	libc_regexec = (int (*)(const regex_t *, const char *, size_t, regmatch_t *, int))
		dlsym(RTLD_NEXT, "regexec");
	REQUIRE(libc_regcomp != NULL && libc_regfree != NULL && libc_regexec != NULL);
	/* A small first map keeps each of the thousands of stores cheap. */
	setenv("MUSUBI_MAP_INITIAL", "4194304", 1);
}

/* ---- the checks after each run ---- */

/* The log sizes a run may leave: where it started (base; 0 is also "no
 * dataset"), each batch boundary base + k * step, and full when whole. */
static struct {
	uint64_t base, step, full;
} want;

/* The store verifies, every entry is signed, and the log stands where it
 * started, at a batch boundary, or whole. Returns 1 when whole. */
static int check_store(const char *dir, verify_key_fn keyfn, long n)
{
	struct store *st = NULL;
	struct store_txn t;
	struct store_dataset ds;
	struct verify_report rep;
	int rc, whole = 0;

	rc = store_open(dir, STORE_RDONLY, &st);
	if (rc < 0) {
		fprintf(stderr, "n=%ld: the store does not reopen: %s\n", n, mu_strerror(rc));
		check_failures++;
		return 0;
	}
	rc = verify_store(st, NULL, keyfn, NULL, &rep);
	for (size_t i = 0; i < rep.nproblems; i++)
		fprintf(stderr, "n=%ld: verify: %s: %s\n", n, rep.problems[i].dataset,
			rep.problems[i].message);
	if (rc != 0) {
		fprintf(stderr, "n=%ld: verify_store: %s\n", n, mu_strerror(rc));
		check_failures++;
	}
	verify_report_fini(&rep);
	if (store_read_begin(st, &t) == 0) {
		rc = store_dataset_get(&t, MEMBER "/" DATASET, &ds);
		if (rc == 0) {
			whole = ds.size == want.full && ds.head_size == want.full;
			if (ds.head_size != ds.size || ds.size > want.full ||
			    (ds.size != 0 && ds.size != want.full &&
			     (ds.size < want.base || (ds.size - want.base) % want.step != 0))) {
				fprintf(stderr, "n=%ld: half written: size %llu, head %llu, rows %llu\n",
					n, (unsigned long long)ds.size,
					(unsigned long long)ds.head_size, (unsigned long long)ds.rows);
				check_failures++;
			}
			store_dataset_fini(&ds);
		} else if (rc != -ENOENT) {
			fprintf(stderr, "n=%ld: dataset: %s\n", n, mu_strerror(rc));
			check_failures++;
		}
		store_read_end(&t);
	}
	store_close(&st);
	return whole;
}

/*
 * One operation with the n-th allocation refused (n = 0: none). op runs
 * between opening and closing a fresh store and returns its result.
 */
typedef int (*oom_op)(struct store *st, char *why, size_t whylen);

struct oom_run {
	int rc;          /* what op returned */
	int refused;     /* the n-th allocation was reached and refused */
	long calls;      /* allocation calls op made */
	long leaked;     /* live allocations more than before */
	int fds;         /* descriptors more than before */
	int whole;       /* the store holds the whole batch */
	char why[512];
};

static void run_once(oom_op op, int kind, verify_key_fn keyfn, long n, struct oom_run *r)
{
	struct store *st = NULL;
	char dir[TU_DIR_MAX];
	long live0;
	int fds0, rc;

	memset(r, 0, sizeof(*r));
	/* OpenSSL keeps an error queue per thread (it copies each error's
	 * file and function names) and drops it here: count without it. */
	OPENSSL_thread_stop();
	fds0 = open_fds();
	live0 = oom_live;
	if ((rc = store_new(dir, kind, &st)) < 0) {
		fprintf(stderr, "cannot make a store under /tmp: %s\n", mu_strerror(rc));
		check_failures++;
		tu_rmrf(dir);
		return;
	}
	oom_calls = 0;
	oom_refused = 0;
	oom_fail_at = n;
	oom_armed = 1;
	r->rc = op(st, r->why, sizeof(r->why));
	oom_armed = 0;
	r->refused = oom_refused;
	r->calls = oom_calls;
	store_close(&st);
	OPENSSL_thread_stop();
	r->leaked = oom_live - live0;
	r->fds = open_fds() - fds0;
	r->whole = check_store(dir, keyfn, n);
	tu_rmrf(dir);
}

/* Run op with every allocation refused in turn; returns how many n. */
static long every_allocation(const char *what, oom_op op, int kind, verify_key_fn keyfn)
{
	struct oom_run r;
	long n, errors = 0, absorbed = 0;
	const char *trace_env = getenv("MU_OOM_TRACE");

	/* Warm up twice: libraries keep process-wide caches made on first use. */
	run_once(op, kind, keyfn, 0, &r);
	run_once(op, kind, keyfn, 0, &r);
	if (r.rc != 0 || !r.whole) {
		fprintf(stderr, "%s without a refusal: %s (%s)\n", what, mu_strerror(r.rc), r.why);
		check_failures++;
		return 0;
	}
	if (trace_env != NULL) {
		n = atol(trace_env);
		tracing = 1;
		ntrace = 0;
		run_once(op, kind, keyfn, n, &r);
		tracing = 0;
		printf("%s, n=%ld: rc %d (%s), %ld calls, %ld leaked\n", what, n, r.rc,
		       mu_strerror(r.rc), r.calls, r.leaked);
		for (size_t i = 0; i < ntrace; i++) {
			Dl_info info = { 0 };
			dladdr(trace[i].caller, &info);
			printf("  live: call %ld, %zu bytes, from %s+%#lx (%s)\n", trace[i].call,
			       trace[i].size, info.dli_fname ? info.dli_fname : "?",
			       (unsigned long)((char *)trace[i].caller - (char *)info.dli_fbase),
			       info.dli_sname ? info.dli_sname : "?");
		}
		return 0;
	}
	for (n = getenv("MU_OOM_FROM") ? atol(getenv("MU_OOM_FROM")) : 1;; n++) {
		if (getenv("MU_OOM_VERBOSE"))
			fprintf(stderr, "%s: n=%ld\n", what, n);
		run_once(op, kind, keyfn, n, &r);
		if (r.leaked != 0 || r.fds != 0) {
			fprintf(stderr, "%s, allocation %ld refused: %ld allocations and %d descriptors "
				"leaked (rerun with MU_OOM_TRACE=%ld)\n", what, n, r.leaked, r.fds, n);
			check_failures++;
		}
		if (r.rc == 0 && !r.whole) {
			fprintf(stderr, "%s, allocation %ld refused: success, but the batch is not "
				"all there\n", what, n);
			check_failures++;
		}
		if (r.rc < 0 && r.whole) {
			fprintf(stderr, "%s, allocation %ld refused: failed (%s), yet the batch is "
				"there\n", what, n, mu_strerror(r.rc));
			check_failures++;
		}
		if (!r.refused)
			break;   /* op made fewer than n allocations: all were exercised */
		if (r.rc < 0) {
			errors++;
		} else {
			absorbed++;
			if (getenv("MU_OOM_VERBOSE")) {   /* who went on without it */
				Dl_info info = { 0 };
				dladdr(oom_refused_at, &info);
				fprintf(stderr, "  absorbed: refused in %s+%#lx (%s)\n",
					info.dli_fname ? info.dli_fname : "?",
					(unsigned long)((char *)oom_refused_at - (char *)info.dli_fbase),
					info.dli_sname ? info.dli_sname : "?");
			}
		}
		if (check_failures > 20)
			break;
	}
	printf("%s: %ld allocations refused one at a time: %ld errors, %ld absorbed, "
	       "no leak, every log whole, untouched or at a batch boundary\n", what, n - 1, errors,
	       absorbed);
	return n - 1;
}

/* ---- the operations ---- */

static const char *publish_path = CSV;

static int op_publish(struct store *st, char *why, size_t whylen)
{
	struct publish_opts o = { .dataset = DATASET, .schema_spec = SCHEMA, .path = publish_path };
	struct publish_result res;
	int rc = publish_csv(st, key, &o, &res);

	snprintf(why, whylen, "%s", res.nkept > 0 ? res.errors[0].message : "");
	publish_result_fini(&res);
	return rc;
}

static void test_publish(void)
{
	setup();
	want.base = 0;
	want.step = want.full = ROWS;
	CHECK(every_allocation("publish of " CSV, op_publish, STORE_PUBLISHER, verify_own_key) > 0);
}

/* The same file in Shift_JIS, as many municipalities still write it:
 * iconv's allocations are refused in turn too. */
static void test_publish_sjis(void)
{
	static char path[300];
	char cmd[700];

	setup();
	snprintf(path, sizeof(path), "%s/sjis.csv", keydir);
	snprintf(cmd, sizeof(cmd), "iconv -f UTF-8 -t CP932 '%s' > '%s'", CSV, path);
	REQUIRE(system(cmd) == 0);
	publish_path = path;
	want.base = 0;
	want.step = want.full = ROWS;
	CHECK(every_allocation("publish of the file in Shift_JIS", op_publish, STORE_PUBLISHER,
			       verify_own_key) > 0);
	publish_path = CSV;
}

/* The file again with its last 5 rows gone and 2 rows moved: 7 entries
 * (2 upserts, 5 deletes), in batches of 3. */
#define CHANGED_ENTRIES 7
static char changed_csv[300];

static void make_changed(void)
{
	char line[4096];
	FILE *in = fopen(CSV, "r"), *out;
	int i = 0;

	snprintf(changed_csv, sizeof(changed_csv), "%s/changed.csv", keydir);
	out = fopen(changed_csv, "w");
	REQUIRE(in != NULL && out != NULL);
	while (fgets(line, sizeof(line), in) != NULL && i <= ROWS - 5) {
		size_t len = strcspn(line, "\r\n");
		/* Rows 2 and 4: the longitude's last digit changes. */
		if ((i == 2 || i == 4) && len > 0)
			line[len - 1] = line[len - 1] == '9' ? '0' : (char)(line[len - 1] + 1);
		fputs(line, out);
		i++;
	}
	fclose(in);
	CHECK(fclose(out) == 0);
}

static int op_republish(struct store *st, char *why, size_t whylen)
{
	struct publish_opts o = { .dataset = DATASET, .schema_spec = SCHEMA, .path = changed_csv,
				  .batch_rows = 3 };
	struct publish_result res;
	int rc = publish_csv(st, key, &o, &res);

	snprintf(why, whylen, "%s", res.nkept > 0 ? res.errors[0].message : "");
	if (rc == 0 && (res.changed != 2 || res.deleted != 5))
		rc = MU_E_CORRUPT;   /* the diff itself went wrong */
	publish_result_fini(&res);
	return rc;
}

static void test_republish(void)
{
	setup();
	make_changed();
	want.base = ROWS;
	want.step = 3;
	want.full = ROWS + CHANGED_ENTRIES;
	CHECK(every_allocation("changes and deletes in batches of 3", op_republish, STORE_PUBLISHED,
			       verify_own_key) > 0);
}

/* The batch a replica fetches: every entry and head of the dataset as a
 * publisher's node stores them, copied out before the runs begin. */
static struct {
	uint8_t *entries[ROWS];
	size_t entry_lens[ROWS];
	uint8_t *heads[8];
	size_t head_lens[8];
	size_t nheads;
} batch;

static void make_batch(void)
{
	struct publish_opts o = { .dataset = DATASET, .schema_spec = SCHEMA, .path = CSV,
				  .batch_rows = 8 };
	struct publish_result res;
	struct store *st = NULL;
	struct store_txn t;
	struct store_dataset ds;
	const uint8_t *buf;
	size_t len;
	uint64_t size = 0;
	char dir[TU_DIR_MAX];

	REQUIRE(store_new(dir, 1, &st) == 0);
	CHECK_OK(publish_csv(st, key, &o, &res));
	publish_result_fini(&res);
	REQUIRE(store_read_begin(st, &t) == 0);
	CHECK_OK(store_dataset_get(&t, MEMBER "/" DATASET, &ds));
	CHECK(ds.size == ROWS);
	for (uint64_t i = 0; i < ROWS && i < ds.size; i++) {
		CHECK_OK(store_entry_get(&t, ds.local_id, i, &buf, &len));
		batch.entries[i] = malloc(len);
		memcpy(batch.entries[i], buf, len);
		batch.entry_lens[i] = len;
	}
	while (batch.nheads < 8 && store_head_next(&t, ds.local_id, size, &size, &buf, &len) == 0) {
		batch.heads[batch.nheads] = malloc(len);
		memcpy(batch.heads[batch.nheads], buf, len);
		batch.head_lens[batch.nheads++] = len;
	}
	store_dataset_fini(&ds);
	store_read_end(&t);
	store_close(&st);
	tu_rmrf(dir);
	CHECK(batch.nheads == 3);   /* at 8, 16 and 17 entries */
}

/* What sync does with a fetched batch: judge the newest head, then
 * verify and commit entries and heads in one transaction. */
static int op_ingest(struct store *st, char *why, size_t whylen)
{
	enum ingest_verdict verdict;
	struct ingest_result res;
	uint64_t local;
	int rc;

	why[0] = '\0';
	rc = ingest_check_head(st, batch.heads[batch.nheads - 1], batch.head_lens[batch.nheads - 1],
			       MEMBER, test_key_fn, NULL, &verdict, &local, why, whylen);
	if (rc < 0)
		return rc;
	if (verdict != INGEST_NEWER || local != 0) {
		snprintf(why, whylen, "verdict %d at local size %llu", verdict,
			 (unsigned long long)local);
		return MU_E_CORRUPT;
	}
	struct ingest_batch b = {
		.dataset = MEMBER "/" DATASET, .from = 0, .n = ROWS,
		.entries = (const uint8_t *const *)batch.entries, .entry_lens = batch.entry_lens,
		.nheads = batch.nheads, .heads = (const uint8_t *const *)batch.heads,
		.head_lens = batch.head_lens,
	};
	return ingest_commit(st, &b, test_key_fn, NULL, &res, why, whylen);
}

static void test_ingest(void)
{
	setup();
	make_batch();
	REQUIRE(batch.nheads > 0);
	want.base = 0;
	want.step = want.full = ROWS;
	CHECK(every_allocation("sync of a fetched batch", op_ingest, STORE_REPLICA, test_key_fn) > 0);
}

/* At exit, so that running one case alone leaves nothing behind. */
static void cleanup(void)
{
	for (size_t i = 0; i < ROWS; i++)
		free(batch.entries[i]);
	for (size_t i = 0; i < batch.nheads; i++)
		free(batch.heads[i]);
	sig_key_destroy(&key);
	tu_rmrf(keydir);
}

CHECK_TESTS = {
	{ "publish with each allocation refused", test_publish },
	{ "Shift_JIS publish with each allocation refused", test_publish_sjis },
	{ "sync commit with each allocation refused", test_ingest },
	{ "changes and deletes with each allocation refused", test_republish },
	{ NULL, NULL },
};
#endif
