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

/* Columns in display cells (East Asian wide characters count two). */
int cli_display_width(const char *s);

/* A table: add rows of strings, print with columns aligned by display
 * width. Cells are copied. */
struct cli_table;
struct cli_table *cli_table_new(size_t ncols, const char *const *headers);
void cli_table_add(struct cli_table *t, const char *const *cells);
void cli_table_print(const struct cli_table *t, FILE *out);
void cli_table_free(struct cli_table **t);

/* Is --help among the arguments? Prints usage text and returns 1 if so. */
int cli_wants_help(int argc, char **argv, const char *usage);

#endif
