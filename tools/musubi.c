/*
 * musubi.c - the musubi command: git-style subcommands over a node's data
 * directory, the federation's trust list and its schemas.
 */
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "musubi_config.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "keygen", cmd_keygen, "make a signing key and a transport key" },
	{ "init", cmd_init, "create a node's data directory" },
	{ "publish", cmd_publish, "validate a CSV file and append it to a dataset's signed log" },
	{ "status", cmd_status, "show the node's datasets, sizes and heads" },
	{ "verify", cmd_verify, "recompute every root and check every signature" },
	{ "schema", cmd_schema, "list, show and compare table schemas" },
	{ "redact", cmd_redact, "remove an entry's payload, keeping every proof" },
	{ "evidence", cmd_evidence, "list forks seen and held datasets; clear a hold" },
	{ "trust", cmd_trust, "keep the federation's trust list: members, keys, anchors" },
	{ "export", cmd_export, "write a dataset as CSV/JSONL/GeoJSON, or the catalogue as DCAT or a Data Package" },
	{ "audit", cmd_audit, "check a dataset's signed history across nodes; prove rows" },
	{ "backup", cmd_backup, "copy a data directory consistently while the node runs" },
	{ "query", cmd_query, "SQL over the datasets, with the signed heads that answered" },
};

static void usage(FILE *out)
{
	fprintf(out, "usage: musubi COMMAND [OPTIONS]\n\n"
		"musubi publishes a municipality's datasets as signed, verifiable logs.\n\n"
		"Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\nRun 'musubi COMMAND --help' for the options of a command.\n");
}

int main(int argc, char **argv)
{
	/* Display widths of Japanese text need a UTF-8 character type; the
	 * rest of the program stays in the C locale (numbers, sorting). */
	if (setlocale(LC_CTYPE, "C.UTF-8") == NULL)
		setlocale(LC_CTYPE, "");
	/* Past a file-size limit a write fails with EFBIG, which the store
	 * reports with advice, instead of SIGXFSZ killing the process. */
	signal(SIGXFSZ, SIG_IGN);
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("musubi %s\n", MUSUBI_VERSION);
		return EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "musubi: '%s' is not a command.\n\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
