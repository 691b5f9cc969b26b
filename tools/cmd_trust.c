/*
 * cmd_trust.c - musubi trust: the trust anchor's work on a federation's
 * trust list (init, add, revoke, rotate, anchors, sign), reading one (show,
 * verify), and giving a node a newer one (update). The rules are in
 * registry/trust.c; this file is arguments, files and words.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "cli.h"
#include "mu_err.h"
#include "sig.h"
#include "store.h"
#include "trust.h"
#include "util.h"

static const char time_forms[] =
	"use ISO 8601 in UTC or with an offset, e.g. 2026-04-01T09:30:00Z, "
	"2026-04-01T18:30:00.5+09:00 or 2026-04-01 (midnight UTC), or now";

/* ---- files ---- */

/* A trust list file as read: its bytes and the list they decode to. */
struct list_file {
	const char *path;
	uint8_t *raw;
	size_t rawlen;
	struct trust_signed s;
};

static int list_open(const char *cmd, const char *path, struct list_file *lf)
{
	char why[512];
	int rc;

	memset(lf, 0, sizeof(*lf));
	lf->path = path;
	if ((rc = trust_file_read(path, &lf->raw, &lf->rawlen)) < 0) {
		cli_error(cmd, "cannot read %s: %s%s", path, mu_strerror(rc),
			  rc == -ENOENT ? " (a draft is made with musubi trust init)" : "");
		return EXIT_FAILURE_;
	}
	if ((rc = trust_decode(lf->raw, lf->rawlen, &lf->s, why, sizeof(why))) < 0) {
		cli_error(cmd, "%s is refused: %s", path, why);
		return EXIT_PROBLEM;
	}
	return EXIT_OK;
}

static void list_close(struct list_file *lf)
{
	free(lf->raw);
	trust_signed_fini(&lf->s);
	memset(lf, 0, sizeof(*lf));
}

static int list_save(const char *cmd, const char *path, const struct trust_signed *s, int replace)
{
	struct rec_buf b = { 0 };
	int rc;

	if ((rc = trust_encode(s, &b)) == 0)
		rc = trust_file_write(path, b.data, b.len, replace);
	rec_buf_fini(&b);
	if (rc < 0)
		cli_error(cmd, "cannot write %s: %s%s", path, mu_strerror(rc),
			  rc == MU_E_EXISTS ? " (choose another name; trust lists are never "
			  "overwritten by init)" : "");
	return rc < 0 ? EXIT_FAILURE_ : EXIT_OK;
}

/*
 * The list in lf was edited: encode it again and write it over the file.
 * A list that carried signatures becomes the draft of the next version; the
 * signed one is kept beside it as FILE.vN, since nodes hold it and the next
 * version is checked against it.
 */
static int list_commit(const char *cmd, struct list_file *lf)
{
	char why[512], keep[4096], when[32];
	uint64_t old = lf->s.list.version;
	size_t nsigs = lf->s.nsigs;
	int next, rc;

	if ((rc = trust_redraft(&lf->s, mu_now_us(), &next, why, sizeof(why))) < 0) {
		cli_error(cmd, "the edited list would not be valid: %s; %s is unchanged", why,
			  lf->path);
		return EXIT_USAGE;
	}
	if (next) {
		snprintf(keep, sizeof(keep), "%s.v%" PRIu64, lf->path, old);
		if ((rc = trust_file_write(keep, lf->raw, lf->rawlen, 1)) < 0) {
			cli_error(cmd, "cannot keep the signed version %" PRIu64 " as %s: %s; %s is "
				  "unchanged", old, keep, mu_strerror(rc), lf->path);
			return EXIT_FAILURE_;
		}
	}
	if ((rc = list_save(cmd, lf->path, &lf->s, 1)) != EXIT_OK)
		return rc;
	trust_format_time(lf->s.list.issued_us, when, sizeof(when));
	if (next)
		printf("%s carried %zu signature%s of version %" PRIu64 ": this edit starts version %"
		       PRIu64 " (signatures cleared, issued %s); the signed version %" PRIu64
		       " is kept as %s\n", lf->path, nsigs, nsigs == 1 ? "" : "s", old,
		       lf->s.list.version, when, old, keep);
	printf("%s: draft version %" PRIu64 ", %zu member%s; each anchor now signs it with musubi "
	       "trust sign\n", lf->path, lf->s.list.version, lf->s.list.nmembers,
	       lf->s.list.nmembers == 1 ? "" : "s");
	return EXIT_OK;
}

/* ---- keys ---- */

/* An Ed25519 public key from a PEM file, or from DIR/signing.pub.pem. */
static int load_pub(const char *cmd, const char *path, uint8_t raw[SIG_PUBKEY_LEN])
{
	struct sig_key *key = NULL;
	char file[4096];
	struct stat sb;
	int rc;

	if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
		snprintf(file, sizeof(file), "%s/signing.pub.pem", path);
	else
		snprintf(file, sizeof(file), "%s", path);
	if ((rc = sig_key_load_public(file, &key)) == 0)
		rc = sig_key_raw_public(key, raw);
	sig_key_destroy(&key);
	if (rc < 0)
		cli_error(cmd, "cannot load the public key %s: %s (give an Ed25519 public key PEM, "
			  "e.g. KEYDIR/signing.pub.pem made by musubi keygen)", file, mu_strerror(rc));
	return rc;
}

/* A member's key directory: signing.pub.pem and transport.pub.pem. */
static int load_member_keys(const char *cmd, const char *dir, uint8_t signing[SIG_PUBKEY_LEN],
			    uint8_t transport[32])
{
	char file[4096];
	int rc;

	if ((rc = load_pub(cmd, dir, signing)) < 0)
		return rc;
	snprintf(file, sizeof(file), "%s/transport.pub.pem", dir);
	if ((rc = sig_transport_load_public(file, transport)) < 0)
		cli_error(cmd, "cannot load the transport key %s: %s (KEYDIR is a directory made by "
			  "musubi keygen)", file, mu_strerror(rc));
	return rc;
}

static void short_id(const uint8_t raw[SIG_PUBKEY_LEN], char out[17])
{
	uint8_t id[SIG_KEYID_LEN];

	sig_sha256(raw, SIG_PUBKEY_LEN, id);
	sig_hex(id, 8, out);
}

static int parse_time(const char *cmd, const char *opt, const char *s, int64_t *us)
{
	if (trust_parse_time(s, mu_now_us(), us) == 0)
		return 0;
	cli_error(cmd, "%s: \"%s\" is not a time: %s", opt, s, time_forms);
	return -1;
}

static char *dup_str(const char *s)
{
	char *d = strdup(s != NULL ? s : "");

	if (d == NULL) {
		fputs("musubi: out of memory\n", stderr);
		exit(EXIT_FAILURE_);
	}
	return d;
}

/* Parse "publisher,relay" into m's roles: known names, each once. */
static int parse_roles(const char *cmd, const char *csv, struct trust_member *m)
{
	char *copy = dup_str(csv), *save = NULL;
	unsigned seen = 0;
	int rc = 0;

	for (char *r = strtok_r(copy, ",", &save); r != NULL; r = strtok_r(NULL, ",", &save)) {
		unsigned bit = trust_role_bit(r);
		if (bit == 0) {
			cli_error(cmd, "unknown role \"%s\": roles are publisher, schema-authority, "
				  "auditor and relay", r);
			rc = -1;
			break;
		}
		if (seen & bit)
			continue;
		seen |= bit;
		m->roles = realloc(m->roles, (m->nroles + 1) * sizeof(*m->roles));
		if (m->roles == NULL) {
			fputs("musubi: out of memory\n", stderr);
			exit(EXIT_FAILURE_);
		}
		m->roles[m->nroles++] = dup_str(r);
	}
	if (rc == 0 && m->nroles == 0) {
		cli_error(cmd, "--roles names no role");
		rc = -1;
	}
	free(copy);
	return rc;
}

/* ---- warnings for a node's own identity ---- */

void cli_trust_identity_warn(const char *cmd, const struct trust_list *l, const char *member,
			     const unsigned char pub[32])
{
	const struct trust_member *m = trust_find_member(l, member);
	char have[17], want[17];

	if (m == NULL) {
		fprintf(stderr, "musubi %s: warning: member %s is not in trust list version %" PRIu64
			": other members will not count its heads until the anchor adds it\n", cmd,
			member, l->version);
		return;
	}
	if (memcmp(m->signing_key, pub, SIG_PUBKEY_LEN) != 0) {
		short_id(pub, have);
		short_id(m->signing_key, want);
		fprintf(stderr, "musubi %s: warning: this node signs with key %s, and trust list "
			"version %" PRIu64 " names key %s for member %s: its new heads will not count "
			"(use the key directory the anchor registered)\n", cmd, have, l->version, want,
			member);
	}
	if (!trust_has_role(m, TRUST_ROLE_PUBLISHER))
		fprintf(stderr, "musubi %s: warning: member %s does not hold the publisher role in "
			"trust list version %" PRIu64 ": its heads will not count\n", cmd, member,
			l->version);
	if (m->revoked_us != 0) {
		char when[32];
		trust_format_time(m->revoked_us, when, sizeof(when));
		fprintf(stderr, "musubi %s: warning: member %s is revoked from %s (%s): heads it "
			"signs dated from then on do not count\n", cmd, member, when,
			m->revoked_reason[0] ? m->revoked_reason : "no reason given");
	}
}

/* ---- init ---- */

static const char init_usage[] =
	"usage: musubi trust init --out FILE --anchor PUBPEM [--anchor PUBPEM ...]\n"
	"                         --threshold K [--federation NAME]\n\n"
	"Start a federation's trust list: a draft of version 1 with no members yet.\n"
	"Each --anchor is an anchor's Ed25519 public key (a .pem file, or a key directory\n"
	"made by musubi keygen). K is how many anchors must sign each version: version 1\n"
	"needs K of its own anchors, and every later version K of the anchors of the\n"
	"version before it. FILE is never overwritten.\n";

static int trust_init(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "anchor", required_argument, NULL, 'a' },
		{ "threshold", required_argument, NULL, 't' },
		{ "federation", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = "trust init", *out = NULL, *fed = "";
	struct trust_signed s = { 0 };
	char why[512];
	long threshold = 0;
	int c, next, ret = EXIT_USAGE;

	if (cli_wants_help(argc, argv, init_usage))
		return EXIT_OK;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'o': out = optarg; break;
		case 'f': fed = optarg; break;
		case 't': threshold = strtol(optarg, NULL, 10); break;
		case 'a':
			s.list.anchors = realloc(s.list.anchors, (s.list.nanchors + 1) *
						 sizeof(*s.list.anchors));
			if (s.list.anchors == NULL || load_pub(cmd, optarg, s.list.anchors[s.list.nanchors++]) < 0)
				goto out;
			break;
		default:
			fputs(init_usage, stderr);
			goto out;
		}
	}
	if (out == NULL || s.list.nanchors == 0 || threshold <= 0 || optind != argc) {
		cli_error(cmd, "--out, at least one --anchor and --threshold K (K >= 1) are required "
			  "(see --help)");
		goto out;
	}
	if ((size_t)threshold > s.list.nanchors) {
		cli_error(cmd, "--threshold %ld is more than the %zu anchor keys given", threshold,
			  s.list.nanchors);
		goto out;
	}
	s.list.version = 1;
	s.list.threshold = (unsigned)threshold;
	s.list.federation = dup_str(fed);
	if (trust_redraft(&s, mu_now_us(), &next, why, sizeof(why)) < 0) {
		cli_error(cmd, "%s", why);
		goto out;
	}
	if ((ret = list_save(cmd, out, &s, 0)) != EXIT_OK)
		goto out;
	printf("%s: draft trust list version 1%s%s%s with %zu anchor key%s, threshold %ld; add "
	       "members with musubi trust add, then each anchor signs with musubi trust sign\n",
	       out, fed[0] ? " of federation \"" : "", fed, fed[0] ? "\"" : "", s.list.nanchors,
	       s.list.nanchors == 1 ? "" : "s", threshold);
out:
	trust_signed_fini(&s);
	return ret;
}

/* ---- add ---- */

static const char add_usage[] =
	"usage: musubi trust add FILE --member ID --name NAME --key KEYDIR --roles ROLE[,ROLE...]\n"
	"                        [--endpoint ENDPOINT] [--valid-from TIME] [--valid-until TIME]\n\n"
	"Add a member to the trust list FILE. ID is the 6-digit local government code of a\n"
	"municipality (e.g. 011002), or a short name of another authority. KEYDIR is the\n"
	"member's key directory made by musubi keygen (its public files are enough:\n"
	"signing.pub.pem and transport.pub.pem). ROLEs: publisher, schema-authority,\n"
	"auditor, relay. ENDPOINT is where its node listens, e.g. tcp://192.0.2.10:7101.\n"
	"Without --valid-from/--valid-until the membership is open on both ends.\n"
	"Editing a signed list starts its next version (see musubi trust --help).\n";

static int trust_add(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "member", required_argument, NULL, 'm' },
		{ "name", required_argument, NULL, 'n' },
		{ "key", required_argument, NULL, 'k' },
		{ "endpoint", required_argument, NULL, 'e' },
		{ "roles", required_argument, NULL, 'r' },
		{ "valid-from", required_argument, NULL, 'F' },
		{ "valid-until", required_argument, NULL, 'U' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = "trust add", *id = NULL, *name = NULL, *keydir = NULL, *ep = "",
		   *roles = NULL, *from = NULL, *until = NULL;
	struct trust_member m = { 0 };
	struct list_file lf = { 0 };
	int c, ret = EXIT_USAGE;

	if (cli_wants_help(argc, argv, add_usage))
		return EXIT_OK;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'm': id = optarg; break;
		case 'n': name = optarg; break;
		case 'k': keydir = optarg; break;
		case 'e': ep = optarg; break;
		case 'r': roles = optarg; break;
		case 'F': from = optarg; break;
		case 'U': until = optarg; break;
		default: return fputs(add_usage, stderr), EXIT_USAGE;
		}
	}
	if (optind + 1 != argc || id == NULL || name == NULL || keydir == NULL || roles == NULL) {
		cli_error(cmd, "FILE, --member, --name, --key and --roles are required (see --help)");
		return EXIT_USAGE;
	}
	if (!mu_valid_member(id)) {
		cli_error(cmd, "member id \"%s\" is not valid: use the 6-digit local government code, "
			  "or 2 to 32 of a-z, 0-9, _ and -", id);
		return EXIT_USAGE;
	}
	if (ep[0] != '\0' && (strstr(ep, "://") == NULL || strlen(ep) > TRUST_ENDPOINT_MAX)) {
		cli_error(cmd, "--endpoint \"%s\" is not a ZeroMQ endpoint such as "
			  "tcp://192.0.2.10:7101", ep);
		return EXIT_USAGE;
	}
	if (parse_roles(cmd, roles, &m) < 0 ||
	    (from != NULL && parse_time(cmd, "--valid-from", from, &m.valid_from_us) < 0) ||
	    (until != NULL && parse_time(cmd, "--valid-until", until, &m.valid_until_us) < 0))
		goto out;
	if (m.valid_until_us != 0 && m.valid_until_us <= m.valid_from_us) {
		cli_error(cmd, "--valid-until must be later than --valid-from");
		goto out;
	}
	ret = EXIT_FAILURE_;
	if (load_member_keys(cmd, keydir, m.signing_key, m.transport_key) < 0)
		goto out;
	if ((ret = list_open(cmd, argv[optind], &lf)) != EXIT_OK)
		goto out;
	ret = EXIT_USAGE;
	if (trust_find_member(&lf.s.list, id) != NULL) {
		cli_error(cmd, "member %s is already in %s (to give it a new key, use musubi trust "
			  "rotate)", id, lf.path);
		goto out;
	}
	for (size_t i = 0; i < lf.s.list.nmembers; i++)
		if (memcmp(lf.s.list.members[i].signing_key, m.signing_key, SIG_PUBKEY_LEN) == 0 ||
		    memcmp(lf.s.list.members[i].transport_key, m.transport_key, 32) == 0) {
			cli_error(cmd, "the keys in %s are member %s's already: every member has keys "
				  "of its own (make them with musubi keygen)", keydir,
				  lf.s.list.members[i].id);
			goto out;
		}
	m.id = dup_str(id);
	m.name = dup_str(name);
	m.endpoint = dup_str(ep);
	m.revoked_reason = dup_str("");
	struct trust_member *grown = realloc(lf.s.list.members, (lf.s.list.nmembers + 1) *
					     sizeof(*grown));
	if (grown == NULL) {
		ret = EXIT_FAILURE_;
		goto out;
	}
	lf.s.list.members = grown;
	lf.s.list.members[lf.s.list.nmembers++] = m;
	memset(&m, 0, sizeof(m));   /* the list owns it now */
	printf("added member %s (%s) with roles %s\n", id, name, roles);
	ret = list_commit(cmd, &lf);
out:
	for (size_t i = 0; i < m.nroles; i++)
		free(m.roles[i]);
	free(m.roles);
	free(m.id);
	free(m.name);
	free(m.endpoint);
	free(m.revoked_reason);
	list_close(&lf);
	return ret;
}

/* ---- revoke ---- */

static const char revoke_usage[] =
	"usage: musubi trust revoke FILE --member ID --reason TEXT [--at TIME]\n\n"
	"Revoke a member from TIME on (default: now). Its heads dated before TIME stay\n"
	"valid; heads dated at or after TIME no longer count on any node that has the new\n"
	"version. Set TIME to when things went wrong (e.g. when a key was stolen), not\n"
	"when you found out. To replace only a member's key, use musubi trust rotate.\n"
	"Editing a signed list starts its next version (see musubi trust --help).\n";

static int trust_revoke(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "member", required_argument, NULL, 'm' },
		{ "reason", required_argument, NULL, 'r' },
		{ "at", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = "trust revoke", *id = NULL, *reason = NULL, *at = "now";
	struct list_file lf = { 0 };
	struct trust_member *m;
	char was[32], when[32];
	int64_t us;
	int c, ret;

	if (cli_wants_help(argc, argv, revoke_usage))
		return EXIT_OK;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'm': id = optarg; break;
		case 'r': reason = optarg; break;
		case 'a': at = optarg; break;
		default: return fputs(revoke_usage, stderr), EXIT_USAGE;
		}
	}
	if (optind + 1 != argc || id == NULL || reason == NULL || reason[0] == '\0') {
		cli_error(cmd, "FILE, --member and --reason are required (see --help)");
		return EXIT_USAGE;
	}
	if (parse_time(cmd, "--at", at, &us) < 0)
		return EXIT_USAGE;
	if ((ret = list_open(cmd, argv[optind], &lf)) != EXIT_OK)
		goto out;
	if ((m = trust_find_member(&lf.s.list, id)) == NULL) {
		cli_error(cmd, "member %s is not in %s", id, lf.path);
		ret = EXIT_USAGE;
		goto out;
	}
	trust_format_time(us, when, sizeof(when));
	if (m->revoked_us != 0) {
		trust_format_time(m->revoked_us, was, sizeof(was));
		printf("member %s was revoked from %s (%s); the revocation now takes effect at %s\n",
		       id, was, m->revoked_reason, when);
	}
	m->revoked_us = us;
	free(m->revoked_reason);
	m->revoked_reason = dup_str(reason);
	printf("revoked member %s at %s (%s): its heads dated from then on no longer count; "
	       "heads dated before stay valid\n", id, when, reason);
	ret = list_commit(cmd, &lf);
out:
	list_close(&lf);
	return ret;
}

/* ---- rotate ---- */

static const char rotate_usage[] =
	"usage: musubi trust rotate FILE --member ID --key NEWKEYDIR [--at TIME] [--reason TEXT]\n\n"
	"Give a member new keys (signing and transport, from NEWKEYDIR made by musubi\n"
	"keygen). The old signing key is kept as retired from TIME on (default: now):\n"
	"heads it signed dated before TIME stay valid, later ones are refused. For a\n"
	"stolen key, set TIME to when it may have been stolen and --reason to say so.\n"
	"Editing a signed list starts its next version (see musubi trust --help).\n";

static int trust_rotate(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "member", required_argument, NULL, 'm' },
		{ "key", required_argument, NULL, 'k' },
		{ "at", required_argument, NULL, 'a' },
		{ "reason", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = "trust rotate", *id = NULL, *keydir = NULL, *at = "now",
		   *reason = "key rotated";
	struct list_file lf = { 0 };
	struct trust_member *m;
	struct trust_retired *r;
	uint8_t signing[SIG_PUBKEY_LEN], transport[32];
	char old_id[17], new_id[17], when[32];
	int64_t us;
	int c, ret;

	if (cli_wants_help(argc, argv, rotate_usage))
		return EXIT_OK;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'm': id = optarg; break;
		case 'k': keydir = optarg; break;
		case 'a': at = optarg; break;
		case 'r': reason = optarg; break;
		default: return fputs(rotate_usage, stderr), EXIT_USAGE;
		}
	}
	if (optind + 1 != argc || id == NULL || keydir == NULL) {
		cli_error(cmd, "FILE, --member and --key are required (see --help)");
		return EXIT_USAGE;
	}
	if (parse_time(cmd, "--at", at, &us) < 0)
		return EXIT_USAGE;
	if (load_member_keys(cmd, keydir, signing, transport) < 0)
		return EXIT_FAILURE_;
	if ((ret = list_open(cmd, argv[optind], &lf)) != EXIT_OK)
		goto out;
	ret = EXIT_USAGE;
	if ((m = trust_find_member(&lf.s.list, id)) == NULL) {
		cli_error(cmd, "member %s is not in %s (add it with musubi trust add)", id, lf.path);
		goto out;
	}
	if (memcmp(m->signing_key, signing, SIG_PUBKEY_LEN) == 0) {
		cli_error(cmd, "%s holds member %s's current key: rotate to a new key directory made "
			  "by musubi keygen", keydir, id);
		goto out;
	}
	r = realloc(lf.s.list.retired, (lf.s.list.nretired + 1) * sizeof(*r));
	if (r == NULL) {
		ret = EXIT_FAILURE_;
		goto out;
	}
	lf.s.list.retired = r;
	r = &lf.s.list.retired[lf.s.list.nretired++];
	r->member = dup_str(id);
	r->reason = dup_str(reason);
	memcpy(r->signing_key, m->signing_key, SIG_PUBKEY_LEN);
	r->retired_us = us;
	short_id(m->signing_key, old_id);
	short_id(signing, new_id);
	memcpy(m->signing_key, signing, SIG_PUBKEY_LEN);
	memcpy(m->transport_key, transport, 32);
	trust_format_time(us, when, sizeof(when));
	printf("member %s: key %s retired at %s (%s), new key %s; heads of the old key dated "
	       "before %s stay valid\n", id, old_id, when, reason, new_id, when);
	ret = list_commit(cmd, &lf);
out:
	list_close(&lf);
	return ret;
}

/* ---- anchors ---- */

static const char anchors_usage[] =
	"usage: musubi trust anchors FILE [--add PUBPEM ...] [--remove PUBPEM ...]\n"
	"                            [--threshold K]\n\n"
	"Change the anchors and the threshold. The version that makes the change must\n"
	"still be signed by the threshold of the anchors of the version before it, and\n"
	"by its own threshold of its own anchors (so new anchors show they can sign\n"
	"before anyone depends on them). Later versions need the new anchors.\n"
	"Editing a signed list starts its next version (see musubi trust --help).\n";

static int trust_anchors(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "add", required_argument, NULL, 'a' },
		{ "remove", required_argument, NULL, 'r' },
		{ "threshold", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = "trust anchors";
	struct { int op; const char *path; } *ops = calloc((size_t)argc, sizeof(*ops));
	size_t nops = 0;
	struct list_file lf = { 0 };
	struct trust_list *l;
	uint8_t key[SIG_PUBKEY_LEN];
	char kid[17];
	long threshold = 0;
	int c, ret = EXIT_USAGE;

	if (cli_wants_help(argc, argv, anchors_usage)) {
		free(ops);
		return EXIT_OK;
	}
	if (ops == NULL)
		return EXIT_FAILURE_;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'a' || c == 'r') {
			ops[nops].op = c;
			ops[nops++].path = optarg;
		} else if (c == 't' && (threshold = strtol(optarg, NULL, 10)) <= 0) {
			cli_error(cmd, "--threshold must be at least 1");
			goto out;
		} else if (c != 't') {
			fputs(anchors_usage, stderr);
			goto out;
		}
	}
	if (optind + 1 != argc || (nops == 0 && threshold == 0)) {
		cli_error(cmd, "give FILE and at least one of --add, --remove, --threshold");
		goto out;
	}
	if ((ret = list_open(cmd, argv[optind], &lf)) != EXIT_OK)
		goto out;
	l = &lf.s.list;
	ret = EXIT_USAGE;
	for (size_t k = 0; k < nops; k++) {
		size_t i = 0;
		if (load_pub(cmd, ops[k].path, key) < 0) {
			ret = EXIT_FAILURE_;
			goto out;
		}
		short_id(key, kid);
		while (i < l->nanchors && memcmp(l->anchors[i], key, SIG_PUBKEY_LEN) != 0)
			i++;
		if (ops[k].op == 'a' && i < l->nanchors) {
			cli_error(cmd, "%s (key %s) is an anchor already", ops[k].path, kid);
			goto out;
		}
		if (ops[k].op == 'r' && i == l->nanchors) {
			cli_error(cmd, "%s (key %s) is not an anchor of %s", ops[k].path, kid, lf.path);
			goto out;
		}
		if (ops[k].op == 'a') {
			uint8_t (*grown)[SIG_PUBKEY_LEN] = realloc(l->anchors, (l->nanchors + 1) *
								   sizeof(*grown));
			if (grown == NULL) {
				ret = EXIT_FAILURE_;
				goto out;
			}
			l->anchors = grown;
			memcpy(l->anchors[l->nanchors++], key, SIG_PUBKEY_LEN);
			printf("added anchor %s\n", kid);
		} else {
			memmove(l->anchors[i], l->anchors[i + 1], (l->nanchors - i - 1) * SIG_PUBKEY_LEN);
			l->nanchors--;
			printf("removed anchor %s\n", kid);
		}
	}
	if (threshold > 0)
		l->threshold = (unsigned)threshold;
	if (l->nanchors == 0 || l->threshold > l->nanchors) {
		cli_error(cmd, "%zu anchor%s and threshold %u: the threshold must be between 1 and "
			  "the number of anchors; %s is unchanged", l->nanchors,
			  l->nanchors == 1 ? "" : "s", l->threshold, lf.path);
		goto out;
	}
	printf("%zu anchor%s, threshold %u\n", l->nanchors, l->nanchors == 1 ? "" : "s",
	       l->threshold);
	ret = list_commit(cmd, &lf);
out:
	free(ops);
	list_close(&lf);
	return ret;
}

/* ---- sign ---- */

static const char sign_usage[] =
	"usage: musubi trust sign FILE --key ANCHORKEYDIR\n\n"
	"Add one anchor's signature to FILE (the anchor's signing.pem in ANCHORKEYDIR, or\n"
	"the path of that .pem). Anchors sign in turn, each with its own key, until the\n"
	"threshold is reached; musubi trust verify says when it is. Signing changes\n"
	"nothing else in the list.\n";

static int trust_sign_cmd(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = "trust sign", *keyarg = NULL;
	struct list_file lf = { 0 };
	struct sig_key *key = NULL;
	uint8_t raw[SIG_PUBKEY_LEN];
	char file[4096], kid[17];
	struct stat sb;
	int c, rc, ret, is_anchor = 0;

	if (cli_wants_help(argc, argv, sign_usage))
		return EXIT_OK;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'k')
			return fputs(sign_usage, stderr), EXIT_USAGE;
		keyarg = optarg;
	}
	if (optind + 1 != argc || keyarg == NULL) {
		cli_error(cmd, "FILE and --key ANCHORKEYDIR are required (see --help)");
		return EXIT_USAGE;
	}
	if (stat(keyarg, &sb) == 0 && S_ISDIR(sb.st_mode))
		snprintf(file, sizeof(file), "%s/signing.pem", keyarg);
	else
		snprintf(file, sizeof(file), "%s", keyarg);
	if ((rc = sig_key_load_private(file, &key)) < 0 || (rc = sig_key_raw_public(key, raw)) < 0) {
		cli_error(cmd, "cannot load the anchor's private key %s: %s", file, mu_strerror(rc));
		sig_key_destroy(&key);
		return EXIT_FAILURE_;
	}
	short_id(raw, kid);
	if ((ret = list_open(cmd, argv[optind], &lf)) != EXIT_OK)
		goto out;
	if ((rc = trust_sign(&lf.s, key)) < 0) {
		if (rc == MU_E_EXISTS)
			cli_error(cmd, "%s is already signed by key %s: the next signature must come from "
				  "another anchor", lf.path, kid);
		else
			cli_error(cmd, "cannot sign: %s", mu_strerror(rc));
		ret = rc == MU_E_EXISTS ? EXIT_PROBLEM : EXIT_FAILURE_;
		goto out;
	}
	if ((ret = list_save(cmd, lf.path, &lf.s, 1)) != EXIT_OK)
		goto out;
	for (size_t i = 0; i < lf.s.list.nanchors; i++)
		is_anchor |= memcmp(lf.s.list.anchors[i], raw, SIG_PUBKEY_LEN) == 0;
	printf("signed %s (version %" PRIu64 ") with key %s: %zu signature%s; version %" PRIu64
	       " names threshold %u\n", lf.path, lf.s.list.version, kid, lf.s.nsigs,
	       lf.s.nsigs == 1 ? "" : "s", lf.s.list.version, lf.s.list.threshold);
	if (!is_anchor)
		printf("note: key %s is not an anchor of version %" PRIu64 "; its signature counts "
		       "only as an anchor of the version before\n", kid, lf.s.list.version);
out:
	sig_key_destroy(&key);
	list_close(&lf);
	return ret;
}

/* ---- show ---- */

static const char show_usage[] =
	"usage: musubi trust show FILE [--json]\n\n"
	"Print a trust list: its version, anchors and signatures, a table of the members\n"
	"(id, name, roles, validity, revocation, signing key id, endpoint) and the\n"
	"retired keys; or all of it as one JSON object.\n";

/* How a signature of s stands against s's own anchors. */
static const char *sig_status(const struct trust_signed *s, const struct trust_signature *sg)
{
	for (size_t i = 0; i < s->list.nanchors; i++) {
		uint8_t id[SIG_KEYID_LEN];
		struct sig_key *key = NULL;
		int rc;
		sig_sha256(s->list.anchors[i], SIG_PUBKEY_LEN, id);
		if (memcmp(id, sg->key_id, SIG_KEYID_LEN) != 0)
			continue;
		if (sig_key_from_raw_public(s->list.anchors[i], &key) < 0)
			return "cannot be checked";
		rc = sig_verify(key, SIG_CTX_TRUST_LIST, s->bytes, s->len, sg->sig, SIG_SIGNATURE_LEN);
		sig_key_destroy(&key);
		return rc == 0 ? "valid" : "does not verify";
	}
	return "not an anchor of this version";
}

static json_t *jtime(int64_t us)
{
	char buf[32];

	if (us == 0)
		return json_null();
	trust_format_time(us, buf, sizeof(buf));
	return json_string(buf);
}

static json_t *jhex(const uint8_t *b, size_t n)
{
	char hex[2 * SIG_KEYID_LEN + 1];

	sig_hex(b, n, hex);
	return json_string(hex);
}

static int show_json(const struct trust_signed *s)
{
	const struct trust_list *l = &s->list;
	json_t *anchors = json_array(), *sigs = json_array(), *members = json_array(),
	       *retired = json_array();
	uint8_t id[SIG_KEYID_LEN];
	int ok = 1;

	for (size_t i = 0; i < l->nanchors; i++) {
		sig_sha256(l->anchors[i], SIG_PUBKEY_LEN, id);
		ok &= json_array_append_new(anchors, json_pack("{s:o,s:o}", "key_id", jhex(id, 32),
							       "key", jhex(l->anchors[i], 32))) == 0;
	}
	for (size_t i = 0; i < s->nsigs; i++)
		ok &= json_array_append_new(sigs, json_pack("{s:o,s:s}", "key_id",
							    jhex(s->sigs[i].key_id, 32), "status",
							    sig_status(s, &s->sigs[i]))) == 0;
	for (size_t i = 0; i < l->nmembers; i++) {
		const struct trust_member *m = &l->members[i];
		json_t *roles = json_array();
		for (size_t r = 0; r < m->nroles; r++)
			json_array_append_new(roles, json_string(m->roles[r]));
		sig_sha256(m->signing_key, SIG_PUBKEY_LEN, id);
		ok &= json_array_append_new(members, json_pack(
			"{s:s,s:s,s:o,s:o,s:o,s:o,s:s,s:o,s:o,s:o,s:s}", "id", m->id, "name", m->name,
			"roles", roles, "signing_key", jhex(m->signing_key, 32), "key_id", jhex(id, 32),
			"transport_key", jhex(m->transport_key, 32), "endpoint", m->endpoint,
			"valid_from", jtime(m->valid_from_us), "valid_until", jtime(m->valid_until_us),
			"revoked", jtime(m->revoked_us), "revoked_reason", m->revoked_reason)) == 0;
	}
	for (size_t i = 0; i < l->nretired; i++) {
		const struct trust_retired *r = &l->retired[i];
		sig_sha256(r->signing_key, SIG_PUBKEY_LEN, id);
		ok &= json_array_append_new(retired, json_pack(
			"{s:s,s:o,s:o,s:o,s:s}", "member", r->member, "signing_key",
			jhex(r->signing_key, 32), "key_id", jhex(id, 32), "retired",
			jtime(r->retired_us), "reason", r->reason)) == 0;
	}
	json_t *o = json_pack("{s:s,s:I,s:o,s:I,s:i,s:o,s:o,s:o,s:o}", "federation", l->federation,
			      "version", (json_int_t)l->version, "issued", jtime(l->issued_us),
			      "issued_us", (json_int_t)l->issued_us, "threshold", (int)l->threshold,
			      "anchors", anchors, "signatures", sigs, "members", members,
			      "retired_keys", retired);
	char *text = ok && o != NULL ? json_dumps(o, JSON_INDENT(2)) : NULL;
	if (text != NULL)
		puts(text);
	free(text);
	json_decref(o);
	return text != NULL ? 0 : -1;
}

static void show_text(const char *path, const struct trust_signed *s)
{
	static const char *const mh[] = { "member", "name", "roles", "valid", "revoked", "key",
					  "endpoint" };
	static const char *const rh[] = { "member", "retired key", "retired at", "reason" };
	const struct trust_list *l = &s->list;
	struct cli_table *t = cli_table_new(7, mh);
	char when[32], a[32], b[32], kid[17], valid[80], revoked[200], roles[200];

	trust_format_time(l->issued_us, when, sizeof(when));
	printf("trust list  %s\nfederation  %s\nversion     %" PRIu64 ", issued %s\n", path,
	       l->federation[0] ? l->federation : "-", l->version, when);
	printf("anchors     %zu, threshold %u (signatures the next version needs from them)\n",
	       l->nanchors, l->threshold);
	for (size_t i = 0; i < l->nanchors; i++) {
		short_id(l->anchors[i], kid);
		printf("            %s\n", kid);
	}
	printf("signatures  %zu%s\n", s->nsigs, s->nsigs ? "" : " (a draft: anchors sign it with "
	       "musubi trust sign)");
	for (size_t i = 0; i < s->nsigs; i++) {
		sig_hex(s->sigs[i].key_id, 8, kid);
		printf("            %s  %s\n", kid, sig_status(s, &s->sigs[i]));
	}
	putchar('\n');
	for (size_t i = 0; i < l->nmembers; i++) {
		const struct trust_member *m = &l->members[i];
		size_t n = 0;
		roles[0] = '\0';
		for (size_t r = 0; r < m->nroles && n < sizeof(roles); r++)
			n += (size_t)snprintf(roles + n, sizeof(roles) - n, "%s%s", r ? "," : "",
					      m->roles[r]);
		trust_format_time(m->valid_from_us, a, sizeof(a));
		trust_format_time(m->valid_until_us, b, sizeof(b));
		if (m->valid_from_us == 0 && m->valid_until_us == 0)
			snprintf(valid, sizeof(valid), "always");
		else if (m->valid_until_us == 0)
			snprintf(valid, sizeof(valid), "from %s", a);
		else if (m->valid_from_us == 0)
			snprintf(valid, sizeof(valid), "until %s", b);
		else
			snprintf(valid, sizeof(valid), "%s .. %s", a, b);
		trust_format_time(m->revoked_us, a, sizeof(a));
		if (m->revoked_us == 0)
			snprintf(revoked, sizeof(revoked), "-");
		else
			snprintf(revoked, sizeof(revoked), "%s (%s)", a, m->revoked_reason);
		short_id(m->signing_key, kid);
		const char *cells[] = { m->id, m->name, roles, valid, revoked, kid,
					m->endpoint[0] ? m->endpoint : "-" };
		cli_table_add(t, cells);
	}
	if (l->nmembers == 0)
		printf("no members yet: add them with musubi trust add\n");
	else
		cli_table_print(t, stdout);
	cli_table_free(&t);
	if (l->nretired == 0)
		return;
	printf("\nretired keys\n");
	t = cli_table_new(4, rh);
	for (size_t i = 0; i < l->nretired; i++) {
		short_id(l->retired[i].signing_key, kid);
		trust_format_time(l->retired[i].retired_us, a, sizeof(a));
		const char *cells[] = { l->retired[i].member, kid, a, l->retired[i].reason };
		cli_table_add(t, cells);
	}
	cli_table_print(t, stdout);
	cli_table_free(&t);
}

static int trust_show(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct list_file lf;
	int c, json = 0, ret;

	if (cli_wants_help(argc, argv, show_usage))
		return EXIT_OK;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'j')
			return fputs(show_usage, stderr), EXIT_USAGE;
		json = 1;
	}
	if (optind + 1 != argc) {
		cli_error("trust show", "FILE is required (see --help)");
		return EXIT_USAGE;
	}
	if ((ret = list_open("trust show", argv[optind], &lf)) == EXIT_OK) {
		if (!json)
			show_text(lf.path, &lf.s);
		else if (show_json(&lf.s) < 0) {
			cli_error("trust show", "cannot write %s as JSON (is every name valid UTF-8?)",
				  lf.path);
			ret = EXIT_PROBLEM;
		}
	}
	list_close(&lf);
	return ret;
}

/* ---- verify ---- */

static const char verify_usage[] =
	"usage: musubi trust verify FILE [--prev PREVFILE]\n\n"
	"Check that FILE is a trust list a node would take: as a first list (enough\n"
	"signatures of its own anchors), or with --prev as the version after PREVFILE\n"
	"(a higher version, the same federation, enough signatures of PREVFILE's anchors\n"
	"and of its own). Exits 0 if it would, 1 with the rule that fails if not.\n";

static int trust_verify(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "prev", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = "trust verify", *prev = NULL;
	struct list_file lf = { 0 }, pf = { 0 };
	char why[512];
	int c, ret;

	if (cli_wants_help(argc, argv, verify_usage))
		return EXIT_OK;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'p')
			return fputs(verify_usage, stderr), EXIT_USAGE;
		prev = optarg;
	}
	if (optind + 1 != argc) {
		cli_error(cmd, "FILE is required (see --help)");
		return EXIT_USAGE;
	}
	if ((ret = list_open(cmd, argv[optind], &lf)) != EXIT_OK ||
	    (prev != NULL && (ret = list_open(cmd, prev, &pf)) != EXIT_OK))
		goto out;
	if ((prev ? trust_accept_next(&pf.s, &lf.s, why, sizeof(why))
		  : trust_accept_first(&lf.s, why, sizeof(why))) < 0) {
		cli_error(cmd, "%s is refused: %s", lf.path, why);
		ret = EXIT_PROBLEM;
		goto out;
	}
	printf("%s: accepted%s%s: %s\n", lf.path, prev ? " after " : " as a first list",
	       prev ? prev : "", why);
out:
	list_close(&lf);
	list_close(&pf);
	return ret;
}

/* ---- update ---- */

static const char update_usage[] =
	"usage: musubi trust update --dir DATADIR FILE [FILE ...]\n\n"
	"Give a node newer versions of its federation's trust list, oldest first. Each\n"
	"must follow the rules against the newest the node has (musubi trust verify\n"
	"--prev says the same ahead of time); the node keeps every version, signs new\n"
	"heads under the newest, and checks every head against it from now on.\n";

static int trust_update(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = "trust update", *dir = NULL;
	struct store *st = NULL;
	struct store_txn t = { 0 };
	struct list_file lf = { 0 };
	char why[512], member[64];
	uint8_t pub[SIG_PUBKEY_LEN];
	size_t len;
	int c, rc, ret = EXIT_FAILURE_;

	if (cli_wants_help(argc, argv, update_usage))
		return EXIT_OK;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'd')
			return fputs(update_usage, stderr), EXIT_USAGE;
		dir = optarg;
	}
	if (dir == NULL || optind >= argc) {
		cli_error(cmd, "--dir DATADIR and at least one FILE are required (see --help)");
		return EXIT_USAGE;
	}
	if ((rc = store_open(dir, 0, &st)) < 0) {
		cli_error(cmd, "cannot open the store in %s: %s%s", dir, mu_strerror(rc),
			  rc == -ENOENT ? " (is it a data directory made by musubi init?)" : "");
		return EXIT_FAILURE_;
	}
	for (int i = optind; i < argc; i++) {
		if ((ret = list_open(cmd, argv[i], &lf)) != EXIT_OK)
			goto out;
		rc = trust_store_list(st, lf.raw, lf.rawlen, why, sizeof(why));
		if (rc == MU_E_EXISTS) {
			printf("%s: %s\n", dir, why);
		} else if (rc == MU_E_TRUST || rc == MU_E_DECODE) {
			cli_error(cmd, "%s is refused: %s; the node keeps its trust list", lf.path, why);
			ret = EXIT_PROBLEM;
			goto out;
		} else if (rc < 0) {
			cli_error(cmd, "cannot store %s: %s", lf.path, mu_strerror(rc));
			ret = EXIT_FAILURE_;
			goto out;
		} else {
			printf("%s now follows trust list version %" PRIu64 "%s%s%s; its new heads are "
			       "signed under it\n", dir, lf.s.list.version,
			       lf.s.list.federation[0] ? " of federation \"" : "", lf.s.list.federation,
			       lf.s.list.federation[0] ? "\"" : "");
		}
		if (store_read_begin(st, &t) == 0 && store_member(&t, member, sizeof(member)) == 0 &&
		    store_meta_get(&t, "signing_pub", pub, sizeof(pub), &len) == 0 && len == sizeof(pub))
			cli_trust_identity_warn(cmd, &lf.s.list, member, pub);
		store_read_end(&t);
		list_close(&lf);
	}
	ret = EXIT_OK;
out:
	list_close(&lf);
	store_close(&st);
	return ret;
}

/* ---- the command ---- */

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} subs[] = {
	{ "init", trust_init, "start a federation's trust list (a draft of version 1)" },
	{ "add", trust_add, "add a member with its keys, endpoint, roles and validity" },
	{ "revoke", trust_revoke, "revoke a member from a given time on" },
	{ "rotate", trust_rotate, "give a member a new key; the old one is retired" },
	{ "anchors", trust_anchors, "add or remove anchor keys, change the threshold" },
	{ "sign", trust_sign_cmd, "add one anchor's signature" },
	{ "show", trust_show, "print a trust list as a table, or as JSON" },
	{ "verify", trust_verify, "check that a list follows the rules" },
	{ "update", trust_update, "give a node a newer trust list" },
};

static void usage(FILE *out)
{
	fprintf(out, "usage: musubi trust SUBCOMMAND [OPTIONS]\n\n"
		"The trust list says who is a member of the federation, with which keys, valid\n"
		"when. Its anchors keep it; every node and auditor decides from it which\n"
		"signatures count. See docs/TRUST.md.\n\nSubcommands:\n");
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		fprintf(out, "  %-8s %s\n", subs[i].name, subs[i].summary);
	fprintf(out, "\nEditing a list that already carries signatures (add, revoke, rotate,\n"
		"anchors) starts its next version: the version number goes up by one, the\n"
		"signatures are cleared, and the signed file is kept as FILE.vN.\n"
		"Times are ISO 8601 to the microsecond, e.g. 2026-04-01T09:30:00Z or\n"
		"2026-04-01T18:30:00.250+09:00.\n"
		"\nRun 'musubi trust SUBCOMMAND --help' for its options.\n");
}

int cmd_trust(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		if (strcmp(argv[1], subs[i].name) == 0)
			return subs[i].fn(argc - 1, argv + 1);
	cli_error("trust", "'%s' is not a subcommand", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
