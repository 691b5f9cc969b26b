/* cmd_status.c - musubi status and musubi verify over a data directory. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "backup.h"
#include "cli.h"
#include "head.h"
#include "mu_err.h"
#include "store.h"
#include "trust.h"
#include "util.h"
#include "verify.h"

static const char status_usage[] =
	"usage: musubi status --dir DATADIR [--json] [--color=auto|always|never]\n"
	"       musubi status --node ENDPOINT [...]   (a running node; see --node --help)\n\n"
	"Show the node's member id, store use, evidence count and, for each dataset,\n"
	"its schema, rows, log size, newest head time and root. On a terminal, and\n"
	"unless NO_COLOR is set, good figures are green, waits yellow and evidence of\n"
	"a fork red.\n";

static int open_store(const char *cmd, const char *dir, struct store **st)
{
	int rc = store_open(dir, STORE_RDONLY, st);

	if (rc < 0)
		cli_error(cmd, "cannot open the store in %s: %s%s", dir, mu_strerror(rc),
			  rc == -ENOENT ? " (is it a data directory made by musubi init?)" : "");
	return rc;
}

/* Parse --dir DATADIR [--json] [--dataset NAME]. */
static int parse_dir_opts(int argc, char **argv, const char *usage, const char **dir,
			  int *json, const char **dataset)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "json", no_argument, NULL, 'j' },
		{ "dataset", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "d:", opts, NULL)) != -1) {
		switch (c) {
		case 'd': *dir = optarg; break;
		case 'j': *json = 1; break;
		case 'n':
			if (dataset == NULL)
				return -1;
			*dataset = optarg;
			break;
		default: return -1;
		}
	}
	return *dir == NULL || optind != argc ? -1 : 0;
}

int cmd_status(int argc, char **argv)
{
	const char *dir = NULL;
	int json = 0, rc, ret = EXIT_FAILURE_, color;
	uint64_t evidence = 0;
	struct store *st = NULL;
	struct store_txn t = { 0 };
	char member[64] = "", **names = NULL;
	size_t n = 0, used = 0, mapsize = 0;
	json_t *jds = NULL;
	struct cli_table *tab = NULL;
	static const char *const headers[] = { "dataset", "schema", "rows", "entries",
					       "head time", "root" };

	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--node") == 0 || strncmp(argv[i], "--node=", 7) == 0)
			return cmd_status_node(argc, argv);
	if (cli_wants_help(argc, argv, status_usage))
		return EXIT_OK;
	if ((color = cli_color_option(&argc, argv, stdout)) < 0)
		return EXIT_USAGE;
	if (parse_dir_opts(argc, argv, status_usage, &dir, &json, NULL) < 0) {
		fputs(status_usage, stderr);
		return EXIT_USAGE;
	}
	if (open_store("status", dir, &st) < 0)
		return EXIT_FAILURE_;
	if ((rc = store_read_begin(st, &t)) < 0 || (rc = store_member(&t, member, sizeof(member))) < 0 ||
	    (rc = store_dataset_names(&t, &names, &n)) < 0) {
		cli_error("status", "cannot read the store: %s", mu_strerror(rc));
		goto out;
	}
	store_map_usage(st, &used, &mapsize);
	store_evidence_count(&t, &evidence);
	char restored[64] = "";
	if (backup_restored(&t, restored, sizeof(restored)) <= 0)
		restored[0] = '\0';
	jds = json_array();
	tab = cli_table_new(6, headers);
	for (size_t i = 0; i < n; i++) {
		struct store_dataset ds;
		char schema[160], rows[32], entries[32], when[32] = "-", root[65] = "-";
		const uint8_t *buf;
		size_t len;
		uint64_t size;

		if (store_dataset_get(&t, names[i], &ds) < 0)
			continue;
		if (store_head_latest(&t, ds.local_id, &size, &buf, &len) == 0) {
			struct head_signed hs;
			if (head_decode(buf, len, &hs) == 0) {
				mu_format_time(hs.hd->h.time_us, when, sizeof(when));
				sig_hex(hs.hd->h.root, 32, root);
				head_signed_fini(&hs);
			}
		}
		snprintf(schema, sizeof(schema), "%s@%u", ds.schema_id ? ds.schema_id : "?",
			 ds.schema_version);
		snprintf(rows, sizeof(rows), "%" PRIu64, ds.rows);
		snprintf(entries, sizeof(entries), "%" PRIu64, ds.size);
		json_array_append_new(jds, json_pack("{s:s,s:s,s:I,s:I,s:I,s:s,s:s}", "dataset", ds.name,
						     "schema", schema, "rows", (json_int_t)ds.rows,
						     "entries", (json_int_t)ds.size,
						     "head_size", (json_int_t)ds.head_size,
						     "head_time", when, "root", root));
		root[16] = '\0';   /* the table shows a prefix; --json has it all */
		const char *cells[] = { ds.name, schema, rows, entries, when, root };
		cli_table_add(tab, cells);
		store_dataset_fini(&ds);
	}
	if (json) {
		json_t *o = json_pack("{s:s,s:s,s:I,s:I,s:I,s:s?,s:O}", "member", member, "dir", dir,
				      "map_used", (json_int_t)used, "map_size", (json_int_t)mapsize,
				      "evidence", (json_int_t)evidence,
				      "restored_from_backup", restored[0] ? restored : NULL,
				      "datasets", jds);
		char *s = json_dumps(o, JSON_COMPACT);
		puts(s ? s : "{}");
		free(s);
		json_decref(o);
	} else {
		struct cli_palette c = cli_palette(color);
		printf("member   %s\ndata     %s\nstore    %.1f MiB used of a %.0f MiB map\n", member,
		       dir, used / 1048576.0, mapsize / 1048576.0);
		printf("evidence %s%" PRIu64 "%s%s\n\n", evidence ? c.bad : c.ok, evidence, c.off,
		       evidence ? " (a publisher forked its log: see musubi audit)" : "");
		if (restored[0])
			printf("%srestored from a backup taken %s, not yet caught up with its peers:%s\n"
			       "         start musubid and wait before publishing (docs/OPERATIONS.md)\n\n",
			       c.warn, restored, c.off);
		if (n == 0)
			printf("no datasets yet: publish one with musubi publish\n");
		else
			cli_table_print(tab, stdout);
	}
	ret = EXIT_OK;
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	json_decref(jds);
	cli_table_free(&tab);
	store_read_end(&t);
	store_close(&st);
	return ret;
}

static const char verify_usage[] =
	"usage: musubi verify --dir DATADIR [--dataset MEMBER/NAME] [--json]\n\n"
	"Recompute every Merkle root from the stored entries, check every head's\n"
	"signature and that each head extends the one before, and check that the\n"
	"current rows are exactly the fold of the log. Exits 1 and says what is wrong\n"
	"where when anything does not hold.\n\n"
	"Once the node has a trust list, a head counts only if the list lets its\n"
	"publisher sign it with that key at that time (docs/TRUST.md); the datasets\n"
	"whose newest head no longer counts are named with the rule that refuses it.\n";

/* The datasets (one, or all) whose newest head the trust list refuses, as
 * a JSON array of {dataset, head_size, reason}. */
static json_t *stale_heads(struct store *st, const char *dataset, struct trust_cache *cache,
			   uint64_t *trust_version)
{
	json_t *out = json_array();
	struct store_txn t;
	char **names = NULL, why[512];
	size_t n = 0, len;
	const uint8_t *buf;

	*trust_version = 0;
	if (store_read_begin(st, &t) < 0)
		return out;
	store_trust_latest(&t, trust_version, &buf, &len);
	if (dataset != NULL) {
		if ((names = calloc(1, sizeof(*names))) != NULL && (names[0] = strdup(dataset)) != NULL)
			n = 1;
	} else if (store_dataset_names(&t, &names, &n) < 0) {
		n = 0;
	}
	for (size_t i = 0; i < n; i++) {
		struct store_dataset ds;
		struct head_signed hs;
		struct sig_key *key = NULL;
		uint64_t size;
		if (store_dataset_get(&t, names[i], &ds) == 0 &&
		    store_head_latest(&t, ds.local_id, &size, &buf, &len) == 0 &&
		    head_decode(buf, len, &hs) == 0) {
			why[0] = '\0';
			int rc = trust_head_key(cache, &t, &hs.hd->h, &key, why, sizeof(why));
			if (rc < 0)
				json_array_append_new(out, json_pack("{s:s,s:I,s:s}", "dataset", names[i],
								     "head_size", (json_int_t)size,
								     "reason", why[0] ? why : mu_strerror(rc)));
			sig_key_destroy(&key);
			head_signed_fini(&hs);
		}
		store_dataset_fini(&ds);
		free(names[i]);
	}
	free(names);
	store_read_end(&t);
	return out;
}

int cmd_verify(int argc, char **argv)
{
	const char *dir = NULL, *dataset = NULL;
	int json = 0, rc;
	struct store *st = NULL;
	struct trust_cache *cache = NULL;
	struct verify_report rep;
	json_t *stale;
	uint64_t tv;

	if (cli_wants_help(argc, argv, verify_usage))
		return EXIT_OK;
	if (parse_dir_opts(argc, argv, verify_usage, &dir, &json, &dataset) < 0) {
		fputs(verify_usage, stderr);
		return EXIT_USAGE;
	}
	if (open_store("verify", dir, &st) < 0)
		return EXIT_FAILURE_;
	if (trust_cache_new(&cache) < 0) {
		store_close(&st);
		return EXIT_FAILURE_;
	}
	/* trust_head_key is verify_own_key until the node has a trust list. */
	rc = verify_store(st, dataset, trust_head_key, cache, &rep);
	stale = stale_heads(st, dataset, cache, &tv);
	trust_cache_destroy(&cache);
	store_close(&st);
	if (rc < 0 && rc != MU_E_CORRUPT) {
		cli_error("verify", "verification could not run: %s", mu_strerror(rc));
		verify_report_fini(&rep);
		json_decref(stale);
		return EXIT_FAILURE_;
	}
	if (json) {
		json_t *probs = json_array();
		for (size_t i = 0; i < rep.nproblems; i++)
			json_array_append_new(probs, json_pack("{s:s?,s:s?}", "dataset",
							       rep.problems[i].dataset, "problem",
							       rep.problems[i].message));
		json_t *o = json_pack("{s:b,s:I,s:I,s:I,s:I,s:o,s:O}", "ok", rep.nproblems == 0,
				      "datasets", (json_int_t)rep.datasets,
				      "entries", (json_int_t)rep.entries,
				      "heads", (json_int_t)rep.heads,
				      "trust_version", (json_int_t)tv, "problems", probs,
				      "newest_head_refused", stale);
		char *s = json_dumps(o, JSON_COMPACT);
		puts(s ? s : "{}");
		free(s);
		json_decref(o);
	} else {
		if (tv > 0)
			printf("checked against trust list version %" PRIu64 "\n", tv);
		for (size_t i = 0; i < rep.nproblems; i++)
			printf("PROBLEM %s: %s\n", rep.problems[i].dataset ? rep.problems[i].dataset : "-",
			       rep.problems[i].message ? rep.problems[i].message : "?");
		for (size_t i = 0; i < json_array_size(stale); i++) {
			json_t *x = json_array_get(stale, i);
			printf("NEWEST HEAD DOES NOT COUNT %s (size %" JSON_INTEGER_FORMAT "): %s\n",
			       json_string_value(json_object_get(x, "dataset")),
			       json_integer_value(json_object_get(x, "head_size")),
			       json_string_value(json_object_get(x, "reason")));
		}
		printf("%s: %" PRIu64 " datasets, %" PRIu64 " entries, %" PRIu64 " signed heads checked; "
		       "%zu problem%s\n", rep.nproblems == 0 ? "verified" : "NOT VERIFIED",
		       rep.datasets, rep.entries, rep.heads, rep.nproblems,
		       rep.nproblems == 1 ? "" : "s");
	}
	rc = rep.nproblems == 0 ? EXIT_OK : EXIT_PROBLEM;
	verify_report_fini(&rep);
	json_decref(stale);
	return rc;
}
