/* cmd_evidence.c - musubi evidence: the forks a node has seen, and the
 * datasets it holds because of them. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "ingest.h"
#include "mu_err.h"
#include "store.h"
#include "util.h"

static const char evidence_usage[] =
	"usage: musubi evidence --dir DATADIR\n"
	"       musubi evidence --dir DATADIR --clear MEMBER/NAME\n\n"
	"Evidence is two validly signed heads of one dataset that do not extend one\n"
	"another: its publisher has shown two histories. The node keeps it forever and\n"
	"holds the dataset: it takes no new head of it, from any peer, until an\n"
	"operator clears the hold. The first form lists the held datasets and counts\n"
	"the evidence (musubi audit shows both heads and who served them). --clear\n"
	"lifts the hold on one dataset, once the publisher has explained the fork and\n"
	"carries on from the history the federation holds (OPERATIONS.md); the\n"
	"evidence stays. Exit status: 0, or 1 when a hold is listed or the dataset\n"
	"named was not held.\n";

static int list_holds(struct store *st)
{
	struct store_txn t;
	char **names = NULL, when[40];
	size_t n = 0, held = 0;
	uint64_t evidence = 0;
	int rc;

	if ((rc = store_read_begin(st, &t)) < 0)
		return rc;
	store_evidence_count(&t, &evidence);
	if ((rc = store_dataset_names(&t, &names, &n)) == 0)
		for (size_t i = 0; i < n; i++) {
			int64_t since;
			if (ingest_hold_get(&t, names[i], &since) == 0) {
				mu_format_time(since, when, sizeof(when));
				printf("held %s since %s: its publisher has shown two histories\n", names[i],
				       when);
				held++;
			}
		}
	store_read_end(&t);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (rc < 0)
		return rc;
	printf("%" PRIu64 " piece%s of evidence, %zu dataset%s held\n", evidence,
	       evidence == 1 ? "" : "s", held, held == 1 ? "" : "s");
	return held > 0;
}

int cmd_evidence(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "clear", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = NULL, *clear = NULL;
	struct store *st = NULL;
	int ch, rc, ret = EXIT_FAILURE_;

	if (cli_wants_help(argc, argv, evidence_usage))
		return EXIT_OK;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'd': dir = optarg; break;
		case 'c': clear = optarg; break;
		default: return fputs(evidence_usage, stderr), EXIT_USAGE;
		}
	}
	if (!dir || optind != argc) {
		cli_error("evidence", "--dir is required");
		return EXIT_USAGE;
	}
	if ((rc = store_open(dir, 0, &st)) < 0) {
		cli_error("evidence", "cannot open the store in %s: %s", dir, mu_strerror(rc));
		return EXIT_FAILURE_;
	}
	if (clear == NULL) {
		rc = list_holds(st);
		ret = rc < 0 ? EXIT_FAILURE_ : rc > 0 ? EXIT_PROBLEM : EXIT_OK;
		if (rc < 0)
			cli_error("evidence", "cannot read the store: %s", mu_strerror(rc));
	} else if ((rc = ingest_hold_clear(st, clear)) == -ENOENT) {
		cli_error("evidence", "%s is not held", clear);
		ret = EXIT_PROBLEM;
	} else if (rc < 0) {
		cli_error("evidence", "cannot clear the hold on %s: %s", clear, mu_strerror(rc));
	} else {
		/* The node reads the hold from the store for each head it judges:
		 * nothing to tell it. */
		printf("cleared the hold on %s: new heads of it are taken again; the evidence "
		       "stays\n", clear);
		ret = EXIT_OK;
	}
	store_close(&st);
	return ret;
}
