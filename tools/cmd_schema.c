/* cmd_schema.c - musubi schema list|show|check. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mu_err.h"
#include "schema.h"

static const char schema_usage[] =
	"usage: musubi schema list\n"
	"       musubi schema show ID@VERSION|FILE.json\n"
	"       musubi schema check OLD NEW\n\n"
	"list   the built-in schemas (the standard municipal datasets and the real\n"
	"       layouts that have no standard)\n"
	"show   a schema's fields, types and constraints; --json prints the Table Schema\n"
	"check  whether NEW is a compatible evolution of OLD, and why not\n";

static int load(const char *spec, struct schema **s)
{
	char *why = NULL;
	int rc = schema_resolve(spec, s, &why);

	if (rc < 0)
		cli_error("schema", "%s: %s", spec, why ? why : mu_strerror(rc));
	free(why);
	return rc;
}

static int schema_list(void)
{
	static const char *const headers[] = { "schema", "fields", "primary key", "title" };
	struct cli_table *tab = cli_table_new(4, headers);

	for (size_t i = 0; i < schema_builtin_count(); i++) {
		const char *json = schema_builtin_json(i);
		struct schema *s = NULL;
		char ref[160], nf[16], pk[256] = "";

		if (schema_parse(json, strlen(json), &s, NULL) < 0)
			continue;
		snprintf(ref, sizeof(ref), "%s@%u", s->id, s->version);
		snprintf(nf, sizeof(nf), "%zu", s->nfields);
		for (size_t k = 0; k < s->npk; k++) {
			if (k)
				strncat(pk, ",", sizeof(pk) - strlen(pk) - 1);
			strncat(pk, s->fields[s->pk[k]].name, sizeof(pk) - strlen(pk) - 1);
		}
		const char *cells[] = { ref, nf, pk, s->title ? s->title : "" };
		cli_table_add(tab, cells);
		schema_destroy(&s);
	}
	cli_table_print(tab, stdout);
	cli_table_free(&tab);
	return EXIT_OK;
}

static int schema_show(const char *spec, int json)
{
	static const char *const headers[] = { "field", "type", "required", "constraints" };
	struct schema *s = NULL;
	struct cli_table *tab;

	if (load(spec, &s) < 0)
		return EXIT_PROBLEM;
	if (json) {
		fputs(s->json, stdout);
		if (s->json_len == 0 || s->json[s->json_len - 1] != '\n')
			fputc('\n', stdout);
		schema_destroy(&s);
		return EXIT_OK;
	}
	printf("%s@%u  %s\n", s->id, s->version, s->title ? s->title : "");
	if (s->description)
		printf("%s\n", s->description);
	printf("\n");
	tab = cli_table_new(4, headers);
	for (size_t i = 0; i < s->nfields; i++) {
		const struct schema_field *f = &s->fields[i];
		char cons[512] = "";
		size_t off = 0;
		int pk = 0;
		for (size_t k = 0; k < s->npk; k++)
			pk |= s->pk[k] == i;
		if (pk)
			off += snprintf(cons + off, sizeof(cons) - off, "primary key ");
		if (f->unique && off < sizeof(cons))
			off += snprintf(cons + off, sizeof(cons) - off, "unique ");
		if (f->has_minimum && off < sizeof(cons))
			off += snprintf(cons + off, sizeof(cons) - off, ">=%g ", f->minimum);
		if (f->has_maximum && off < sizeof(cons))
			off += snprintf(cons + off, sizeof(cons) - off, "<=%g ", f->maximum);
		if (f->pattern && off < sizeof(cons))
			off += snprintf(cons + off, sizeof(cons) - off, "pattern %s ", f->pattern);
		for (size_t e = 0; e < f->nenum && off < sizeof(cons); e++)
			off += snprintf(cons + off, sizeof(cons) - off, "%s\"%s\"", e ? "|" : "enum ",
					f->enum_values[e]);
		const char *cells[] = { f->name, schema_type_name(f->type), f->required ? "yes" : "",
					cons };
		cli_table_add(tab, cells);
	}
	cli_table_print(tab, stdout);
	cli_table_free(&tab);
	schema_destroy(&s);
	return EXIT_OK;
}

static int schema_check(const char *a, const char *b)
{
	struct schema *prev = NULL, *next = NULL;
	char *why = NULL;
	int rc, ret = EXIT_PROBLEM;

	if (load(a, &prev) < 0 || load(b, &next) < 0)
		goto out;
	rc = schema_compat(prev, next, &why);
	if (rc == 0) {
		printf("%s@%u is a compatible evolution of %s@%u\n", next->id, next->version,
		       prev->id, prev->version);
		ret = EXIT_OK;
	} else {
		printf("%s@%u is NOT a compatible evolution of %s@%u:\n%s\n", next->id,
		       next->version, prev->id, prev->version, why ? why : mu_strerror(rc));
	}
out:
	free(why);
	schema_destroy(&prev);
	schema_destroy(&next);
	return ret;
}

int cmd_schema(int argc, char **argv)
{
	int json = 0, nargs = 0;
	const char *args[3] = { NULL, NULL, NULL };

	if (cli_wants_help(argc, argv, schema_usage))
		return EXIT_OK;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (nargs < 3)
			args[nargs++] = argv[i];
		else
			nargs = 4;
	}
	if (nargs >= 1 && strcmp(args[0], "list") == 0 && nargs == 1)
		return schema_list();
	if (nargs == 2 && strcmp(args[0], "show") == 0)
		return schema_show(args[1], json);
	if (nargs == 3 && strcmp(args[0], "check") == 0)
		return schema_check(args[1], args[2]);
	fputs(schema_usage, stderr);
	return EXIT_USAGE;
}
