/* cmd_backup.c - musubi backup: copy a live data directory, check a copy. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>

#include "backup.h"
#include "cli.h"
#include "mu_err.h"
#include "store.h"
#include "trust.h"
#include "verify.h"

static const char backup_usage[] =
	"usage: musubi backup --dir DATADIR OUT\n"
	"       musubi backup --verify OUT\n\n"
	"Copy a node's data directory into OUT while musubid and publishes go on: the\n"
	"store as one consistent, compacted LMDB snapshot (OUT/store), the key files\n"
	"(OUT/keys, modes kept) and OUT/MANIFEST.json, written last, naming what the\n"
	"copy holds. Then check that the copy opens and matches its manifest. OUT must\n"
	"not exist. Run it as the user musubid runs as (it registers as a reader of\n"
	"the store). OUT is itself a data directory: musubi status and musubi verify\n"
	"read it as it is.\n\n"
	"To restore, stop musubid, put OUT in place of the data directory (owned by\n"
	"musubid's user) and start musubid: it fetches from its peers what was\n"
	"published since the backup. Publish from it again only once it has caught up.\n\n"
	"  --dir DATADIR   the data directory to copy\n"
	"  --verify OUT    check a backup: the manifest matches the store and the key\n"
	"                  files, then every root and signature as musubi verify does\n";

/* The full check of a backup: manifest, then roots and signatures. */
static int verify_backup(const char *out)
{
	struct backup_info info;
	struct verify_report rep;
	struct trust_cache *cache = NULL;
	struct store *st = NULL;
	char why[512] = "";
	int rc;

	if ((rc = backup_check(out, &info, why, sizeof(why))) < 0) {
		cli_error("backup", "%s is not a good backup: %s", out, why[0] ? why : mu_strerror(rc));
		return rc == MU_E_CORRUPT || rc == -ENOENT ? EXIT_PROBLEM : EXIT_FAILURE_;
	}
	printf("%s: backup of member %s, matches its manifest (%" PRIu64 " datasets, %u key files)\n",
	       out, info.member, info.datasets, info.keys);
	if ((rc = store_open(out, STORE_RDONLY, &st)) < 0 || (rc = trust_cache_new(&cache)) < 0) {
		cli_error("backup", "cannot open %s: %s", out, mu_strerror(rc));
		store_close(&st);
		return EXIT_FAILURE_;
	}
	rc = verify_store(st, NULL, trust_head_key, cache, &rep);
	trust_cache_destroy(&cache);
	store_close(&st);
	if (rc < 0 && rc != MU_E_CORRUPT) {
		cli_error("backup", "verification could not run: %s", mu_strerror(rc));
		verify_report_fini(&rep);
		return EXIT_FAILURE_;
	}
	for (size_t i = 0; i < rep.nproblems; i++)
		printf("PROBLEM %s: %s\n", rep.problems[i].dataset ? rep.problems[i].dataset : "-",
		       rep.problems[i].message ? rep.problems[i].message : "?");
	printf("%s: %" PRIu64 " entries, %" PRIu64 " signed heads checked; %zu problem%s\n",
	       rep.nproblems == 0 ? "verified" : "NOT VERIFIED", rep.entries, rep.heads,
	       rep.nproblems, rep.nproblems == 1 ? "" : "s");
	rc = rep.nproblems == 0 ? EXIT_OK : EXIT_PROBLEM;
	verify_report_fini(&rep);
	return rc;
}

int cmd_backup(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "verify", required_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = NULL, *check = NULL;
	struct backup_info info;
	char why[512] = "";
	int c, rc;

	if (cli_wants_help(argc, argv, backup_usage))
		return EXIT_OK;
	while ((c = getopt_long(argc, argv, "d:", opts, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'v': check = optarg; break;
		default: return fputs(backup_usage, stderr), EXIT_USAGE;
		}
	}
	if (check != NULL && dir == NULL && optind == argc)
		return verify_backup(check);
	if (dir == NULL || check != NULL || optind + 1 != argc) {
		cli_error("backup", "give --dir DATADIR OUT, or --verify OUT (see --help)");
		return EXIT_USAGE;
	}
	if ((rc = backup_create(dir, argv[optind], &info, why, sizeof(why))) < 0) {
		cli_error("backup", "%s", why[0] ? why : mu_strerror(rc));
		return EXIT_FAILURE_;
	}
	printf("backup of member %s in %s: %" PRIu64 " datasets, %" PRIu64 " entries, %u key files, "
	       "store %.1f MiB compacted; it opens and matches its manifest\n", info.member,
	       argv[optind], info.datasets, info.entries, info.keys, info.store_bytes / 1048576.0);
	return EXIT_OK;
}
