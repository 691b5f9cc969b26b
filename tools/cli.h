/*
 * cli.h - what the musubi subcommands share: exit codes, error printing,
 * and the aligned table writer.
 */
#ifndef MU_CLI_H
#define MU_CLI_H

#include <stdio.h>

/* Exit codes of every subcommand. */
enum {
	EXIT_OK = 0,
	EXIT_PROBLEM = 1,   /* the command ran and found something wrong */
	EXIT_USAGE = 2,     /* the command line is wrong */
	EXIT_FAILURE_ = 3,  /* the command could not run (IO, store, ...) */
};

/* "musubi SUBCOMMAND: message" on stderr. */
void cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The subcommands. */
int cmd_keygen(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_publish(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_schema(int argc, char **argv);
int cmd_redact(int argc, char **argv);
int cmd_evidence(int argc, char **argv);
int cmd_trust(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_query(int argc, char **argv);

/* Warn on stderr when trust list l does not let member publish with the
 * signing key pub: not a member, another key, no publisher role, revoked
 * (cmd_trust.c; for musubi init --trust and musubi trust update). */
struct trust_list;
void cli_trust_identity_warn(const char *cmd, const struct trust_list *l, const char *member,
			     const unsigned char pub[32]);

/* musubi status --node ENDPOINT (cmd_node.c). */
int cmd_status_node(int argc, char **argv);

/* Options every command that talks to a node shares. */
struct cli_node {
	const char *endpoint;     /* --node */
	const char *server_key;   /* --server-key: the node's transport.pub.pem */
	const char *dir;          /* --dir: a data directory whose trust list names the node */
	const char *keydir;       /* --key: connect as this member */
	int timeout_ms;           /* --timeout */
	int json;                 /* --json */
};
struct client;
/* Parse the shared options; prints usage and returns -1 on a bad line. */
int cli_node_options(int argc, char **argv, struct cli_node *o, const char *usage);
/* Resolve the node's key and connect; prints the error and returns < 0. */
int cli_node_connect(const char *cmd, const struct cli_node *o, struct client **c);

/* Columns in display cells (East Asian wide characters count two). */
int cli_display_width(const char *s);

/* A table: add rows of strings, print with columns aligned by display
 * width. Cells are copied. */
struct cli_table;
struct cli_table *cli_table_new(size_t ncols, const char *const *headers);
void cli_table_add(struct cli_table *t, const char *const *cells);
void cli_table_print(const struct cli_table *t, FILE *out);
void cli_table_free(struct cli_table **t);

/* Colour: --color=auto|always|never (bare --color is always). Removes the
 * option from argv (updating *argc) so the command's own parser never sees
 * it. auto colours only when out is a terminal and NO_COLOR is unset or
 * empty (no-color.org). Returns 1 to colour, 0 not to, -1 on a bad value
 * (after printing why). */
int cli_color_option(int *argc, char **argv, FILE *out);
/* ANSI colours for status: ok green, warn yellow, bad red; all "" when off.
 * Table cells may hold them: cli_display_width skips escape sequences. */
struct cli_palette { const char *ok, *warn, *bad, *off; };
struct cli_palette cli_palette(int on);

/* Is --help among the arguments? Prints usage text and returns 1 if so. */
int cli_wants_help(int argc, char **argv, const char *usage);

#endif
