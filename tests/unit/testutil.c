/*
 * testutil.c - setup the unit tests share; the contract is in testutil.h.
 */
#include "testutil.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mu_err.h"
#include "publish.h"
#include "sig.h"
#include "store.h"
#include "trust.h"
#include "util.h"

int tu_tmpdir(char dir[TU_DIR_MAX], const char *tag)
{
	snprintf(dir, TU_DIR_MAX, "/tmp/mu-%s-XXXXXX", tag);
	if (mkdtemp(dir) == NULL) {
		int rc = -errno;
		fprintf(stderr, "mkdtemp %s: %s\n", dir, strerror(errno));
		dir[0] = '\0';
		return rc;
	}
	return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	if (remove(path) != 0) {
		fprintf(stderr, "cannot remove %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

int tu_rmrf(char dir[TU_DIR_MAX])
{
	int rc = 0;

	if (dir[0] == '\0')
		return 0;
	if (nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
		rc = errno ? -errno : -EIO;
	dir[0] = '\0';
	return rc;
}

const char *tu_data(const char *rel)
{
	static char buf[TU_NPATHS][512];
	static int i;

	i = (i + 1) % TU_NPATHS;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", MU_TEST_DATA, rel);
	return buf[i];
}

const char *tu_path(const char *dir, const char *name)
{
	static char buf[TU_NPATHS][512];
	static int i;

	i = (i + 1) % TU_NPATHS;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

const char *tu_write(const char *dir, const char *name, const char *text)
{
	const char *path = tu_path(dir, name);
	FILE *f = fopen(path, "w");

	if (f == NULL) {
		fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
		return NULL;
	}
	fputs(text, f);
	return fclose(f) == 0 ? path : NULL;
}

char *tu_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb"), *m;
	char *buf = NULL;
	size_t n = 0;
	int c;

	if (f == NULL)
		return NULL;
	if ((m = open_memstream(&buf, &n)) == NULL) {
		fclose(f);
		return NULL;
	}
	while ((c = fgetc(f)) != EOF)
		fputc(c, m);
	fclose(m);
	fclose(f);
	if (len)
		*len = n;
	return buf;
}

int tu_key_new(const char *dir, const char *sub, struct sig_key **key, uint8_t transport[32])
{
	char path[512];
	int rc;

	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	if ((rc = sig_keygen_dir(path)) < 0)
		goto fail;
	snprintf(path, sizeof(path), "%s/%s/signing.pem", dir, sub);
	if ((rc = sig_key_load_private(path, key)) < 0)
		goto fail;
	snprintf(path, sizeof(path), "%s/%s/transport.pub.pem", dir, sub);
	if (transport != NULL && (rc = sig_transport_load_public(path, transport)) < 0)
		goto fail;
	return 0;
fail:
	fprintf(stderr, "key %s: %s\n", path, mu_strerror(rc));
	return rc;
}

int tu_keys_new(const char *dir, size_t n, struct sig_key **keys, uint8_t (*transport)[32])
{
	char sub[32];
	int rc;

	for (size_t i = 0; i < n; i++) {
		snprintf(sub, sizeof(sub), "k%zu", i);
		if ((rc = tu_key_new(dir, sub, &keys[i], transport ? transport[i] : NULL)) < 0)
			return rc;
	}
	return 0;
}

struct node_meta {
	const char *member;
	const struct sig_key *key;
};

static int node_meta(struct store_txn *t, void *ctx)
{
	const struct node_meta *nm = ctx;
	uint8_t raw[SIG_PUBKEY_LEN];
	int rc;

	if ((rc = sig_key_raw_public(nm->key, raw)) < 0 ||
	    (rc = store_meta_put(t, "member", nm->member, strlen(nm->member))) < 0)
		return rc;
	return store_meta_put(t, "signing_pub", raw, sizeof(raw));
}

int tu_node_meta(struct store *st, const char *member, const struct sig_key *key)
{
	int rc = store_write(st, node_meta, &(struct node_meta){ member, key });

	if (rc < 0)
		fprintf(stderr, "meta of %s: %s\n", member, mu_strerror(rc));
	return rc;
}

int tu_node_new(char dir[TU_DIR_MAX], const char *tag, const char *member, struct store **st,
		struct sig_key **key)
{
	int dropped = tu_node_drop(dir, st, key), rc;

	if ((rc = tu_tmpdir(dir, tag)) < 0 || (rc = tu_key_new(dir, "keys", key, NULL)) < 0)
		return rc;
	if ((rc = store_open(dir, STORE_CREATE, st)) < 0) {
		fprintf(stderr, "store in %s: %s\n", dir, mu_strerror(rc));
		return rc;
	}
	rc = tu_node_meta(*st, member, *key);
	return rc < 0 ? rc : dropped;
}

int tu_node_drop(char dir[TU_DIR_MAX], struct store **st, struct sig_key **key)
{
	store_close(st);
	sig_key_destroy(key);
	return tu_rmrf(dir);
}

int tu_publish(struct store *st, const struct sig_key *key, const struct publish_opts *o,
	       struct publish_result *res)
{
	int rc = publish_csv(st, key, o, res);

	if (rc < 0 && getenv("MU_VERBOSE"))
		for (size_t e = 0; e < res->nkept; e++)
			fprintf(stderr, "  %s line %llu col %u: %s\n", o->dataset,
				(unsigned long long)res->errors[e].line, res->errors[e].column,
				res->errors[e].message);
	return rc;
}

int64_t tu_day_ago_us(void)
{
	return (mu_now_us() / 1000000 - 86400) * 1000000;
}

struct trust_member *tu_member_add(struct trust_signed *s, const char *id, const char *name,
				   const char *endpoint, const struct sig_key *key,
				   const uint8_t transport[32], const char *role)
{
	struct trust_member *m;

	s->list.members = realloc(s->list.members, (s->list.nmembers + 1) * sizeof(*m));
	m = &s->list.members[s->list.nmembers++];
	memset(m, 0, sizeof(*m));
	m->id = strdup(id);
	m->name = strdup(name);
	m->endpoint = strdup(endpoint);
	m->revoked_reason = strdup("");
	sig_key_raw_public(key, m->signing_key);
	memcpy(m->transport_key, transport, 32);
	m->roles = calloc(1, sizeof(char *));
	m->roles[0] = strdup(role);
	m->nroles = 1;
	return m;
}
