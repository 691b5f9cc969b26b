/* cmd_keys.c - musubi keygen and musubi init. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "mu_err.h"
#include "sig.h"
#include "store.h"
#include "trust.h"
#include "util.h"

static const char keygen_usage[] =
	"usage: musubi keygen --out DIR\n\n"
	"Make a key directory: signing.pem (Ed25519, signs tree heads) and transport.pem\n"
	"(X25519, encrypts ZeroMQ links), each with its .pub.pem. Private files are\n"
	"mode 0600; existing keys are never overwritten.\n";

int cmd_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *out = NULL;
	char path[4096];
	int c, rc;

	if (cli_wants_help(argc, argv, keygen_usage))
		return EXIT_OK;
	while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
		if (c == 'o')
			out = optarg;
		else
			return fputs(keygen_usage, stderr), EXIT_USAGE;
	}
	if (out == NULL || optind != argc) {
		cli_error("keygen", "--out DIR is required");
		return EXIT_USAGE;
	}
	/* Parents first, as mkdir -p would (the key directory itself is
	 * made 0700 by sig_keygen_dir). */
	for (char *p = strchr(out + 1, '/'); p != NULL; p = strchr(p + 1, '/')) {
		*p = '\0';
		if (mkdir(out, 0755) < 0 && errno != EEXIST) {
			cli_error("keygen", "cannot create %s: %s", out, strerror(errno));
			*p = '/';
			return EXIT_FAILURE_;
		}
		*p = '/';
	}
	if ((rc = sig_keygen_dir(out)) < 0) {
		if (rc == MU_E_EXISTS)
			cli_error("keygen", "%s already holds keys; choose another directory", out);
		else
			cli_error("keygen", "cannot create keys in %s: %s", out, mu_strerror(rc));
		return EXIT_FAILURE_;
	}
	snprintf(path, sizeof(path), "%s/signing.pub.pem", out);
	printf("keys written to %s (public signing key: %s)\n", out, path);
	return EXIT_OK;
}

static const char init_usage[] =
	"usage: musubi init --dir DATADIR --member CODE --key DIR [--trust FILE]\n\n"
	"Create a node's data directory. CODE is the member id: the 6-digit local\n"
	"government code of a municipality (e.g. 011002), or a short name for another\n"
	"authority. DIR is a key directory made by 'musubi keygen'; its files are\n"
	"copied into DATADIR/keys.\n\n"
	"FILE is the federation's trust list, as its anchors signed it (version 1, or\n"
	"any version that enough of its own anchors signed); newer versions follow with\n"
	"musubi trust update. Without --trust the node trusts its own key only; it can\n"
	"join a federation later by running musubi init again with --trust.\n";

/* Copy a key file with the given mode, refusing to overwrite. */
static int copy_file(const char *from, const char *to, mode_t mode)
{
	char buf[8192];
	int in = -1, out = -1, rc = 0;
	ssize_t n;

	if ((in = open(from, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	if ((out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)) < 0) {
		rc = -errno;
		goto out;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			rc = -EIO;
			goto out;
		}
	if (n < 0 || fsync(out) < 0)
		rc = -errno;
out:
	explicit_bzero(buf, sizeof(buf));
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return rc;
}

struct init_ctx {
	const char *member;
	uint8_t pub[SIG_PUBKEY_LEN];
	const uint8_t *trust;   /* the first trust list's bytes, or NULL */
	size_t trust_len;
	int joined;             /* an existing store took its first trust list */
	char why[512];
};

static int init_fn(struct store_txn *t, void *arg)
{
	struct init_ctx *ic = arg;
	const uint8_t *buf;
	size_t len;
	uint64_t v;
	char have[64];
	int rc = store_member(t, have, sizeof(have));

	ic->joined = 0;
	if (rc < 0 && rc != -ENOENT)
		return rc;
	if (rc == 0) {
		if (strcmp(have, ic->member) != 0)
			return MU_E_USAGE;
		/* Initialised already; a node outside any federation may join one. */
		if (ic->trust == NULL || store_trust_latest(t, &v, &buf, &len) == 0)
			return MU_E_EXISTS;
		ic->joined = 1;
	} else if ((rc = store_meta_put(t, "member", ic->member, strlen(ic->member))) < 0 ||
		   (rc = store_meta_put(t, "signing_pub", ic->pub, sizeof(ic->pub))) < 0) {
		return rc;
	}
	if (ic->trust == NULL)
		return 0;
	return trust_store_list_txn(t, ic->trust, ic->trust_len, ic->why, sizeof(ic->why));
}

/* Read the first trust list and check it before anything is created. */
static int init_trust(const char *path, struct init_ctx *ic, uint8_t **buf,
		      struct trust_signed *ts)
{
	int rc;

	if ((rc = trust_file_read(path, buf, &ic->trust_len)) < 0) {
		cli_error("init", "cannot read the trust list %s: %s", path, mu_strerror(rc));
		return EXIT_FAILURE_;
	}
	if (trust_decode(*buf, ic->trust_len, ts, ic->why, sizeof(ic->why)) < 0 ||
	    trust_accept_first(ts, ic->why, sizeof(ic->why)) < 0) {
		cli_error("init", "%s is refused: %s", path, ic->why);
		return EXIT_PROBLEM;
	}
	ic->trust = *buf;
	return EXIT_OK;
}

int cmd_init(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "member", required_argument, NULL, 'm' },
		{ "key", required_argument, NULL, 'k' },
		{ "trust", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const key_files[] = { "signing.pem", "signing.pub.pem",
						 "transport.pem", "transport.pub.pem" };
	const char *dir = NULL, *member = NULL, *keydir = NULL, *trust = NULL;
	struct init_ctx ic = { 0 };
	struct trust_signed ts = { 0 };
	uint8_t *trust_buf = NULL;
	struct sig_key *key = NULL;
	struct store *st = NULL;
	char from[4096], to[4096];
	int c, rc, ret = EXIT_FAILURE_;

	if (cli_wants_help(argc, argv, init_usage))
		return EXIT_OK;
	while ((c = getopt_long(argc, argv, "d:m:k:t:", opts, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'm': member = optarg; break;
		case 'k': keydir = optarg; break;
		case 't': trust = optarg; break;
		default: return fputs(init_usage, stderr), EXIT_USAGE;
		}
	}
	if (dir == NULL || member == NULL || keydir == NULL || optind != argc) {
		cli_error("init", "--dir, --member and --key are required (see --help)");
		return EXIT_USAGE;
	}
	if (!mu_valid_member(member)) {
		cli_error("init", "member id \"%s\" is not valid: use the 6-digit local government "
			  "code, or 2 to 32 of a-z, 0-9, _ and -", member);
		return EXIT_USAGE;
	}
	if (trust != NULL && (ret = init_trust(trust, &ic, &trust_buf, &ts)) != EXIT_OK)
		goto out;
	ret = EXIT_FAILURE_;
	snprintf(from, sizeof(from), "%s/signing.pem", keydir);
	if ((rc = sig_key_load_private(from, &key)) < 0) {
		cli_error("init", "cannot load the signing key %s: %s (make one with musubi keygen "
			  "--out %s)", from, mu_strerror(rc), keydir);
		goto out;
	}
	ic.member = member;
	sig_key_raw_public(key, ic.pub);
	sig_key_destroy(&key);
	if (trust != NULL)
		cli_trust_identity_warn("init", &ts.list, member, ic.pub);
	if ((rc = store_open(dir, STORE_CREATE, &st)) < 0) {
		cli_error("init", "cannot create a store in %s: %s", dir, mu_strerror(rc));
		goto out;
	}
	rc = store_write(st, init_fn, &ic);
	if (rc == MU_E_EXISTS) {
		printf("%s is already initialised for member %s%s\n", dir, member, trust == NULL ? "" :
		       " and has a trust list (newer versions go in with musubi trust update)");
		ret = EXIT_OK;
		goto out;
	}
	if (rc == MU_E_USAGE) {
		cli_error("init", "%s is already initialised for another member", dir);
		goto out;
	}
	if (rc == MU_E_TRUST || rc == MU_E_DECODE) {
		cli_error("init", "%s is refused: %s", trust, ic.why);
		ret = EXIT_PROBLEM;
		goto out;
	}
	if (rc < 0) {
		cli_error("init", "cannot write to the store: %s", mu_strerror(rc));
		goto out;
	}
	if (ic.joined) {
		printf("%s (member %s) joined federation \"%s\" with trust list version %" PRIu64
		       "; heads it signed before stay its own\n", dir, member, ts.list.federation,
		       ts.list.version);
		ret = EXIT_OK;
		goto out;
	}
	snprintf(to, sizeof(to), "%s/keys", dir);
	if (mkdir(to, 0700) < 0 && errno != EEXIST) {
		cli_error("init", "cannot create %s: %s", to, strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < sizeof(key_files) / sizeof(key_files[0]); i++) {
		snprintf(from, sizeof(from), "%s/%s", keydir, key_files[i]);
		snprintf(to, sizeof(to), "%s/keys/%s", dir, key_files[i]);
		rc = copy_file(from, to, strstr(key_files[i], ".pub") ? 0644 : 0600);
		if (rc < 0 && rc != -EEXIST) {
			cli_error("init", "cannot copy %s to %s: %s", from, to, mu_strerror(rc));
			goto out;
		}
	}
	if (trust != NULL)
		printf("initialised %s for member %s in federation \"%s\" (trust list version %"
		       PRIu64 ")\n", dir, member, ts.list.federation, ts.list.version);
	else
		printf("initialised %s for member %s\n", dir, member);
	ret = EXIT_OK;
out:
	store_close(&st);
	trust_signed_fini(&ts);
	free(trust_buf);
	return ret;
}
