/* cmd_redact.c - musubi redact: remove an entry's payload, keep its proof. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "client.h"
#include "mu_err.h"
#include "redact.h"
#include "store.h"
#include "trust.h"

static const char redact_usage[] =
	"usage: musubi redact --dir DATADIR --dataset NAME --seq N --reason TEXT\n\n"
	"Remove the payload of entry N of this node's dataset NAME (for example\n"
	"personal data published by mistake). The node signs a redaction notice;\n"
	"every node that replicates the dataset honours it and drops the payload.\n"
	"The entry's leaf hash stays, so every root, head and proof still verifies,\n"
	"and audits show what was redacted, when, by whom and why. The row leaves the\n"
	"current state: remove it from your CSV too, or the next publish adds it back.\n";

struct redact_ctx {
	const char *dataset;
	uint64_t seq;
	const char *reason;
	const struct sig_key *key;
	char member[64];
	uint64_t trust_version;
	char why[256];
};

static int redact_fn(struct store_txn *t, void *arg)
{
	struct redact_ctx *c = arg;
	struct store_dataset ds;
	struct rec_buf notice = { 0 };
	struct redact_notice n;
	const uint8_t *buf;
	size_t len;
	merkle_hash leaf;
	int rc;

	if ((rc = store_dataset_get(t, c->dataset, &ds)) < 0) {
		snprintf(c->why, sizeof(c->why), "this node holds no dataset %s", c->dataset);
		return rc;
	}
	if (c->seq >= ds.head_size) {
		snprintf(c->why, sizeof(c->why), "%s has %" PRIu64 " signed entries", c->dataset,
			 ds.head_size);
		rc = MU_E_USAGE;
	} else if ((rc = store_entry_get(t, ds.local_id, c->seq, &buf, &len)) == 0 &&
		   (rc = redact_leaf_hash(buf, len, leaf)) == 1) {
		snprintf(c->why, sizeof(c->why), "entry %" PRIu64 " is already redacted", c->seq);
		rc = MU_E_EXISTS;
	} else if (rc == 0 &&
		   (rc = redact_make(c->key, c->member, c->trust_version, c->dataset, c->seq, leaf,
				     c->reason, &notice)) == 0 &&
		   (rc = redact_check(t, notice.data, notice.len, trust_head_key, NULL, &n, c->why,
				      sizeof(c->why))) == 0) {
		rc = redact_apply(t, notice.data, notice.len, &n);
	}
	rec_buf_fini(&notice);
	store_dataset_fini(&ds);
	return rc;
}

int cmd_redact(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "dataset", required_argument, NULL, 'n' },
		{ "seq", required_argument, NULL, 's' },
		{ "reason", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct redact_ctx c = { 0 };
	const char *dir = NULL, *name = NULL, *seq = NULL;
	struct store *st = NULL;
	struct sig_key *key = NULL;
	struct store_txn t;
	char path[4096], full[192], buf[32];
	size_t len;
	int ch, rc, ret = EXIT_FAILURE_;

	if (cli_wants_help(argc, argv, redact_usage))
		return EXIT_OK;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'd': dir = optarg; break;
		case 'n': name = optarg; break;
		case 's': seq = optarg; break;
		case 'r': c.reason = optarg; break;
		default: return fputs(redact_usage, stderr), EXIT_USAGE;
		}
	}
	if (!dir || !name || !seq || !c.reason || !c.reason[0] || optind != argc) {
		cli_error("redact", "--dir, --dataset, --seq and a --reason are required");
		return EXIT_USAGE;
	}
	c.seq = strtoull(seq, NULL, 10);
	if ((rc = store_open(dir, 0, &st)) < 0) {
		cli_error("redact", "cannot open the store in %s: %s", dir, mu_strerror(rc));
		return EXIT_FAILURE_;
	}
	snprintf(path, sizeof(path), "%s/keys/signing.pem", dir);
	if ((rc = sig_key_load_private(path, &key)) < 0) {
		cli_error("redact", "cannot load %s: %s", path, mu_strerror(rc));
		goto out;
	}
	if ((rc = store_read_begin(st, &t)) == 0) {
		rc = store_member(&t, c.member, sizeof(c.member));
		if (store_meta_get(&t, "trust_version", buf, sizeof(buf), &len) == 0)
			c.trust_version = strtoull(buf, NULL, 10);
		store_read_end(&t);
	}
	if (rc < 0)
		goto out;
	/* Only the publisher redacts: the dataset is this node's own. */
	snprintf(full, sizeof(full), "%s/%s", c.member, name);
	c.dataset = strchr(name, '/') ? name : full;
	c.key = key;
	rc = store_write(st, redact_fn, &c);
	if (rc < 0) {
		cli_error("redact", "%s", c.why[0] ? c.why : mu_strerror(rc));
		ret = rc == MU_E_USAGE || rc == MU_E_EXISTS || rc == -ENOENT ? EXIT_PROBLEM : EXIT_FAILURE_;
		goto out;
	}
	printf("redacted %s #%" PRIu64 ": the payload is gone, the leaf hash and every proof stay; "
	       "peers honour the signed notice at their next sync\n", c.dataset, c.seq);
	client_notify_local(dir, c.dataset);
	ret = EXIT_OK;
out:
	sig_key_destroy(&key);
	store_close(&st);
	return ret;
}
