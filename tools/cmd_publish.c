/* cmd_publish.c - musubi publish: a CSV file into a dataset's signed log. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "backup.h"
#include "cli.h"
#include "client.h"
#include "mu_err.h"
#include "publish.h"
#include "sig.h"

static const char publish_usage[] =
	"usage: musubi publish --dir DATADIR --dataset NAME --schema ID@VERSION|FILE.json\n"
	"                      [--mapping NAME|FILE.json] [--license URL|NAME]\n"
	"                      [--dry-run] [--ignore-extra-columns] [--max-errors N]\n"
	"                      [--batch-rows N] [--access public|members] [--after-restore]\n"
	"                      [--json] FILE.csv\n\n"
	"Validate FILE.csv (UTF-8 or Shift_JIS) against the schema, compare it with the\n"
	"dataset's current rows, and append only what changed (new, changed and deleted\n"
	"rows), signed by the node's key. Any error in the file appends nothing: the\n"
	"errors name the line, the column, the value and the rule. FILE.csv may be -\n"
	"for standard input.\n\n"
	"  --mapping NAME|FILE     bring the file's layout onto the schema first (a built-in\n"
	"                          mapping, e.g. gsi-to-evacuation_space, or a mapping file;\n"
	"                          see docs/DATA.md); --schema defaults to the mapping's\n"
	"  --license URL|NAME      the data's licence, shown in the DCAT catalogue\n"
	"  --dry-run               validate and show what would change, with sample keys;\n"
	"                          write nothing\n"
	"  --ignore-extra-columns  drop columns that the schema does not have\n"
	"  --max-errors N          list at most N errors (default 20)\n"
	"  --batch-rows N          entries per signed batch (default 25000)\n"
	"  --access public|members who may read the dataset from other nodes (default:\n"
	"                          public for a new dataset, unchanged for an existing one)\n"
	"  --after-restore         publish from a data directory restored from a backup\n"
	"                          before its node has fetched its own history back from\n"
	"                          its peers; only when no peer holds anything published\n"
	"                          after the backup (otherwise the publish forks the log)\n"
	"  --json                  print the result as one JSON object\n";

static void print_json(const struct publish_result *r, int rc, int dry_run)
{
	char root[65];
	json_t *errs = json_array();

	sig_hex(r->root, 32, root);
	for (size_t i = 0; i < r->nkept; i++)
		json_array_append_new(errs, json_pack("{s:I,s:i,s:s}", "line", (json_int_t)r->errors[i].line,
						      "column", (int)r->errors[i].column,
						      "message", r->errors[i].message));
	json_t *o = json_pack("{s:s,s:b,s:b,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s,s:I,s:o}",
			      "dataset", r->dataset, "ok", rc == 0, "dry_run", dry_run,
			      "encoding", csv_encoding_name(r->encoding),
			      "rows", (json_int_t)r->rows, "added", (json_int_t)r->added,
			      "changed", (json_int_t)r->changed, "deleted", (json_int_t)r->deleted,
			      "unchanged", (json_int_t)r->unchanged,
			      "old_size", (json_int_t)r->old_size, "new_size", (json_int_t)r->new_size,
			      "batches", (json_int_t)r->batches, "root", root,
			      "error_count", (json_int_t)r->nerrors, "errors", errs);
	if (o != NULL && r->has_mapping) {
		char msha[65];
		sig_hex(r->mapping_sha256, 32, msha);
		json_object_set_new(o, "mapping_sha256", json_string(msha));
	}
	if (o != NULL && dry_run) {
		json_t *samples = json_object();
		for (size_t i = 0; i < r->nsamples; i++) {
			const char *kind = r->samples[i].op == 'a' ? "added" :
					   r->samples[i].op == 'c' ? "changed" : "deleted";
			json_t *list = json_object_get(samples, kind);
			if (list == NULL)
				json_object_set_new(samples, kind, list = json_array());
			json_array_append_new(list, json_string(r->samples[i].key));
		}
		json_object_set_new(o, "sample_keys", samples);
	}
	char *s = json_dumps(o, JSON_COMPACT);
	if (s != NULL)
		puts(s);
	free(s);
	json_decref(o);
}

static void print_text(const struct publish_result *r, int rc, const char *path, int dry_run)
{
	char root[65];

	if (rc < 0) {
		fprintf(stderr, "musubi publish: %s: nothing was appended to %s.\n", path,
			r->dataset[0] ? r->dataset : "the dataset");
		for (size_t i = 0; i < r->nkept; i++) {
			const struct publish_error *e = &r->errors[i];
			if (e->line && e->column)
				fprintf(stderr, "  line %llu, column %u: %s\n",
					(unsigned long long)e->line, e->column, e->message);
			else if (e->line)
				fprintf(stderr, "  line %llu: %s\n", (unsigned long long)e->line,
					e->message);
			else
				fprintf(stderr, "  %s\n", e->message);
		}
		if (r->nerrors > r->nkept)
			fprintf(stderr, "  ... and %llu more errors (see --max-errors)\n",
				(unsigned long long)(r->nerrors - r->nkept));
		return;
	}
	sig_hex(r->root, 32, root);
	printf("%s%s: %llu rows read (%s): %llu new, %llu changed, %llu deleted, %llu unchanged\n",
	       dry_run ? "dry run, nothing written: " : "", r->dataset,
	       (unsigned long long)r->rows, csv_encoding_name(r->encoding),
	       (unsigned long long)r->added, (unsigned long long)r->changed,
	       (unsigned long long)r->deleted, (unsigned long long)r->unchanged);
	if (dry_run) {
		static const struct {
			char op;
			const char *label;
		} kinds[] = { { 'a', "new" }, { 'c', "changed" }, { 'd', "deleted" } };
		for (size_t k = 0; k < 3; k++) {
			int first = 1;
			for (size_t i = 0; i < r->nsamples; i++) {
				if (r->samples[i].op != kinds[k].op)
					continue;
				if (first)
					printf("  %s, for example: %s", kinds[k].label, r->samples[i].key);
				else
					printf("; %s", r->samples[i].key);
				first = 0;
			}
			if (!first)
				printf("\n");
		}
		return;
	}
	if (r->batches == 0)
		printf("nothing to append: the log stays at %llu entries\n",
		       (unsigned long long)r->old_size);
	else
		printf("log %llu -> %llu entries in %llu signed batch%s; root %s\n",
		       (unsigned long long)r->old_size, (unsigned long long)r->new_size,
		       (unsigned long long)r->batches, r->batches == 1 ? "" : "es", root);
}
/* A store restored from a backup publishes only once its node has caught up
 * with its peers (backup.h), or when the operator says no peer is ahead:
 * then 1, and the mark goes once the publish has succeeded. */
static int restore_guard(struct store *st, const char *dir, int after_restore)
{
	struct store_txn t;
	char when[64] = "";
	int rc = store_read_begin(st, &t);

	if (rc == 0) {
		rc = backup_restored(&t, when, sizeof(when));
		store_read_end(&t);
	}
	if (rc < 0) {
		cli_error("publish", "cannot read the store in %s: %s", dir, mu_strerror(rc));
		return rc;
	}
	if (rc == 0)
		return 0;
	if (after_restore)
		return 1;
	cli_error("publish", "%s was restored from a backup taken %s and its node has not yet "
		  "fetched back from its peers what was published since: a publish now would fork "
		  "this member's logs. Start musubid and wait until `musubi status --dir %s` no "
		  "longer says \"restored\" (it needs a peer to answer), or, if no peer holds "
		  "anything published after the backup, publish with --after-restore",
		  dir, when, dir);
	return MU_E_USAGE;
}

int cmd_publish(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "dataset", required_argument, NULL, 'n' },
		{ "schema", required_argument, NULL, 's' },
		{ "dry-run", no_argument, NULL, 'D' },
		{ "ignore-extra-columns", no_argument, NULL, 'I' },
		{ "max-errors", required_argument, NULL, 'E' },
		{ "batch-rows", required_argument, NULL, 'B' },
		{ "json", no_argument, NULL, 'j' },
		{ "access", required_argument, NULL, 'A' },
		{ "mapping", required_argument, NULL, 'm' },
		{ "license", required_argument, NULL, 'L' },
		{ "after-restore", no_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct publish_opts o = { .show_progress = 1 };
	struct publish_result res;
	const char *dir = NULL;
	struct store *st = NULL;
	struct sig_key *key = NULL;
	char keypath[4096];
	int c, rc, json = 0, after_restore = 0, ret = EXIT_FAILURE_;

	if (cli_wants_help(argc, argv, publish_usage))
		return EXIT_OK;
	while ((c = getopt_long(argc, argv, "d:n:s:", opts, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'n': o.dataset = optarg; break;
		case 's': o.schema_spec = optarg; break;
		case 'D': o.dry_run = 1; break;
		case 'I': o.ignore_extra_columns = 1; break;
		case 'E': o.max_errors = strtoul(optarg, NULL, 10); break;
		case 'B': o.batch_rows = strtoull(optarg, NULL, 10); break;
		case 'j': json = 1; break;
		case 'm': o.mapping_spec = optarg; break;
		case 'L': o.license = optarg; break;
		case 'R': after_restore = 1; break;
		case 'A':
			if (strcmp(optarg, "public") == 0) {
				o.access = PUBLISH_ACCESS_PUBLIC;
			} else if (strcmp(optarg, "members") == 0) {
				o.access = PUBLISH_ACCESS_MEMBERS;
			} else {
				cli_error("publish", "--access takes public or members");
				return EXIT_USAGE;
			}
			break;
		default: return fputs(publish_usage, stderr), EXIT_USAGE;
		}
	}
	if (dir == NULL || o.dataset == NULL || (o.schema_spec == NULL && o.mapping_spec == NULL) ||
	    optind + 1 != argc) {
		cli_error("publish", "--dir, --dataset, --schema (or a --mapping that names one) and "
			  "one FILE.csv are required (see --help)");
		return EXIT_USAGE;
	}
	o.path = argv[optind];
	if ((rc = store_open(dir, o.dry_run ? STORE_RDONLY : 0, &st)) < 0) {
		cli_error("publish", "cannot open the store in %s: %s%s", dir, mu_strerror(rc),
			  rc == -ENOENT ? " (run musubi init first)" : "");
		return EXIT_FAILURE_;
	}
	int clear_restored = 0;
	if (!o.dry_run && (clear_restored = restore_guard(st, dir, after_restore)) < 0) {
		ret = clear_restored == MU_E_USAGE ? EXIT_PROBLEM : EXIT_FAILURE_;
		goto out;
	}
	snprintf(keypath, sizeof(keypath), "%s/keys/signing.pem", dir);
	if (!o.dry_run && (rc = sig_key_load_private(keypath, &key)) < 0) {
		cli_error("publish", "cannot load the node's signing key %s: %s", keypath,
			  mu_strerror(rc));
		goto out;
	}
	rc = publish_csv(st, key, &o, &res);
	if (json)
		print_json(&res, rc, o.dry_run);
	else
		print_text(&res, rc, o.path, o.dry_run);
	if (rc == 0 && res.batches > 0)
		client_notify_local(dir, res.dataset);
	if (rc == 0 && clear_restored == 1 && (rc = backup_clear_restored(st)) < 0)
		cli_error("publish", "published, but cannot clear the restored-from-backup mark in "
			  "%s: %s", dir, mu_strerror(rc));
	ret = rc == 0 ? EXIT_OK : (rc == MU_E_SCHEMA || rc == MU_E_CSV || rc == MU_E_ENCODING ||
				   rc == MU_E_USAGE) ? EXIT_PROBLEM : EXIT_FAILURE_;
	publish_result_fini(&res);
out:
	sig_key_destroy(&key);
	store_close(&st);
	return ret;
}
