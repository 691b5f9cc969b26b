/* cmd_keys.c - musubi keygen and musubi init. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "mu_err.h"
#include "sig.h"
#include "store.h"
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
	const char *out = NULL;
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
	"copied into DATADIR/keys. Without --trust the node trusts its own key only.\n";

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
};

static int init_fn(struct store_txn *t, void *arg)
{
	struct init_ctx *ic = arg;
	char have[64];
	int rc = store_member(t, have, sizeof(have));

	if (rc == 0)
		return strcmp(have, ic->member) == 0 ? MU_E_EXISTS : MU_E_USAGE;
	if ((rc = store_meta_put(t, "member", ic->member, strlen(ic->member))) < 0)
		return rc;
	return store_meta_put(t, "signing_pub", ic->pub, sizeof(ic->pub));
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
	struct init_ctx ic;
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
	if (trust != NULL) {
		cli_error("init", "--trust: this build of musubi has no trust registry yet");
		return EXIT_USAGE;
	}
	snprintf(from, sizeof(from), "%s/signing.pem", keydir);
	if ((rc = sig_key_load_private(from, &key)) < 0) {
		cli_error("init", "cannot load the signing key %s: %s (make one with musubi keygen "
			  "--out %s)", from, mu_strerror(rc), keydir);
		return EXIT_FAILURE_;
	}
	ic.member = member;
	sig_key_raw_public(key, ic.pub);
	sig_key_destroy(&key);
	if ((rc = store_open(dir, STORE_CREATE, &st)) < 0) {
		cli_error("init", "cannot create a store in %s: %s", dir, mu_strerror(rc));
		return EXIT_FAILURE_;
	}
	rc = store_write(st, init_fn, &ic);
	if (rc == MU_E_EXISTS) {
		printf("%s is already initialised for member %s\n", dir, member);
		ret = EXIT_OK;
		goto out;
	}
	if (rc == MU_E_USAGE) {
		cli_error("init", "%s is already initialised for another member", dir);
		goto out;
	}
	if (rc < 0) {
		cli_error("init", "cannot write to the store: %s", mu_strerror(rc));
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
	printf("initialised %s for member %s\n", dir, member);
	ret = EXIT_OK;
out:
	store_close(&st);
	return ret;
}
