/*
 * baseline_hashput.c - the "hash+put" baseline of the publishing benchmark:
 * the least a signed log must do per row, with none of musubi's work
 * (no CSV parsing, validation, diff, Merkle tree or signature).
 *
 * Each line after the header is hashed with SHA-256 and put into a fresh
 * LMDB environment under an 8-byte big-endian sequence number, the value
 * being the 32-byte digest followed by the line. Every 10,000 rows are one
 * durable write transaction: default flags, so each commit syncs to disk
 * (no MDB_NOSYNC, no MDB_WRITEMAP), as musubi's store does.
 *
 * usage: baseline_hashput FILE.csv DIR
 * DIR must not exist; it is created and left behind for the caller to
 * remove. Prints one line: rows, seconds, rows per second.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <lmdb.h>
#include <openssl/evp.h>

#define BATCH_ROWS 10000

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi dbi = 0;
	EVP_MD *sha256 = NULL;
	EVP_MD_CTX *ctx = NULL;
	FILE *in = NULL;
	char *line = NULL;
	uint8_t *val = NULL;
	size_t cap = 0, valcap = 0;
	ssize_t len;
	uint64_t rows = 0;
	struct stat sb;
	size_t mapsize;
	int rc = 0, ret = 1;   /* rc: the last LMDB result */
	double t0 = now_s(), secs;

	if (argc != 3) {
		fprintf(stderr, "usage: baseline_hashput FILE.csv DIR\n");
		return 2;
	}
	if ((in = fopen(argv[1], "r")) == NULL) {
		fprintf(stderr, "baseline_hashput: %s: %s\n", argv[1], strerror(errno));
		goto out;
	}
	setvbuf(in, NULL, _IOFBF, 1 << 20);
	/* Address space, not disk: values are the rows plus 32 bytes, so four
	 * times the file is ample room for the B-tree. Rounded to 1 MiB. */
	if (fstat(fileno(in), &sb) < 0) {
		fprintf(stderr, "baseline_hashput: %s: %s\n", argv[1], strerror(errno));
		goto out;
	}
	mapsize = (((size_t)sb.st_size * 4 >> 20) + 64) << 20;
	if (mkdir(argv[2], 0750) < 0) {
		fprintf(stderr, "baseline_hashput: %s: %s\n", argv[2], strerror(errno));
		goto out;
	}
	/* Fetch SHA-256 once and reuse one context, as a careful caller of
	 * OpenSSL 3 would: the baseline should be hard to beat. */
	if ((sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL ||
	    (ctx = EVP_MD_CTX_new()) == NULL) {
		fprintf(stderr, "baseline_hashput: OpenSSL has no SHA-256\n");
		goto out;
	}
	if ((rc = mdb_env_create(&env)) != 0 || (rc = mdb_env_set_mapsize(env, mapsize)) != 0 ||
	    (rc = mdb_env_open(env, argv[2], 0, 0640)) != 0)
		goto out;
	if (getline(&line, &cap, in) < 0) {   /* the header is not a row */
		fprintf(stderr, "baseline_hashput: %s is empty\n", argv[1]);
		goto out;
	}
	while ((len = getline(&line, &cap, in)) > 0) {
		uint8_t key[8];
		MDB_val k = { sizeof(key), key }, v;

		if (line[len - 1] == '\n')
			len--;
		if ((size_t)len + 32 > valcap) {
			uint8_t *grown = realloc(val, (size_t)len + 32);
			if (grown == NULL) {
				fprintf(stderr, "baseline_hashput: out of memory\n");
				goto out;
			}
			val = grown;
			valcap = (size_t)len + 32;
		}
		if (EVP_DigestInit_ex2(ctx, sha256, NULL) != 1 ||
		    EVP_DigestUpdate(ctx, line, (size_t)len) != 1 ||
		    EVP_DigestFinal_ex(ctx, val, NULL) != 1) {
			fprintf(stderr, "baseline_hashput: SHA-256 failed\n");
			goto out;
		}
		memcpy(val + 32, line, (size_t)len);
		for (int i = 0; i < 8; i++)
			key[i] = (uint8_t)(rows >> (56 - 8 * i));
		v.mv_size = (size_t)len + 32;
		v.mv_data = val;
		if (txn == NULL && (rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0)
			goto out;
		if (rows == 0 && (rc = mdb_dbi_open(txn, NULL, 0, &dbi)) != 0)
			goto out;
		if ((rc = mdb_put(txn, dbi, &k, &v, 0)) != 0)
			goto out;
		if (++rows % BATCH_ROWS == 0) {
			rc = mdb_txn_commit(txn);
			txn = NULL;   /* freed by the commit, even when it fails */
			if (rc != 0)
				goto out;
		}
	}
	if (txn != NULL) {
		rc = mdb_txn_commit(txn);
		txn = NULL;
		if (rc != 0)
			goto out;
	}
	secs = now_s() - t0;
	printf("baseline_hashput: %llu rows in %.3f s (%.0f rows/s)\n", (unsigned long long)rows,
	       secs, secs > 0 ? (double)rows / secs : 0.0);
	ret = 0;
out:
	if (rc != 0)
		fprintf(stderr, "baseline_hashput: LMDB: %s\n", mdb_strerror(rc));
	if (txn != NULL)
		mdb_txn_abort(txn);
	if (env != NULL)
		mdb_env_close(env);
	EVP_MD_CTX_free(ctx);
	EVP_MD_free(sha256);
	free(val);
	free(line);
	if (in != NULL)
		fclose(in);
	return ret;
}
