/* cli.c - shared helpers of the musubi subcommands (see cli.h). */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wchar.h>

#include "cli.h"

void cli_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "musubi %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_display_width(const char *s)
{
	mbstate_t st;
	size_t len = strlen(s);
	int width = 0;

	memset(&st, 0, sizeof(st));
	while (len > 0) {
		wchar_t wc;
		if (s[0] == '\033' && len > 1 && s[1] == '[') {
			/* A colour (CSI) sequence takes no cells: skip to its final byte. */
			size_t k = 2;
			while (k < len && !(s[k] >= 0x40 && s[k] <= 0x7e))
				k++;
			k += k < len;
			s += k;
			len -= k;
			continue;
		}
		size_t n = mbrtowc(&wc, s, len, &st);
		if (n == (size_t)-1 || n == (size_t)-2) {
			/* Not UTF-8 in this locale: count the byte as one cell. */
			memset(&st, 0, sizeof(st));
			n = 1;
			width++;
		} else {
			if (n == 0)
				break;
			int w = wcwidth(wc);
			width += w > 0 ? w : 0;
		}
		s += n;
		len -= n;
	}
	return width;
}

struct cli_table {
	size_t ncols, nrows;
	char **cells;   /* (nrows + 1) * ncols, the header first */
};

struct cli_table *cli_table_new(size_t ncols, const char *const *headers)
{
	struct cli_table *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->ncols = ncols;
	cli_table_add(t, headers);
	t->nrows = 0;
	return t;
}

void cli_table_add(struct cli_table *t, const char *const *cells)
{
	size_t base = (t->cells == NULL ? 0 : t->nrows + 1) * t->ncols;
	char **grown = realloc(t->cells, (base + t->ncols) * sizeof(*grown));

	if (grown == NULL)
		return;
	t->cells = grown;
	for (size_t i = 0; i < t->ncols; i++)
		t->cells[base + i] = strdup(cells[i] ? cells[i] : "");
	if (base > 0)
		t->nrows++;
}

void cli_table_print(const struct cli_table *t, FILE *out)
{
	int *w = calloc(t->ncols, sizeof(*w));

	if (w == NULL)
		return;
	for (size_t r = 0; r <= t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			int cw = cli_display_width(t->cells[r * t->ncols + c]);
			w[c] = cw > w[c] ? cw : w[c];
		}
	for (size_t r = 0; r <= t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			fputs(s, out);
			if (c + 1 < t->ncols)
				fprintf(out, "%*s", w[c] - cli_display_width(s) + 2, "");
		}
		fputc('\n', out);
		if (r == 0) {
			for (size_t c = 0; c < t->ncols; c++) {
				for (int i = 0; i < w[c]; i++)
					fputs("─", out);
				if (c + 1 < t->ncols)
					fputs("  ", out);
			}
			fputc('\n', out);
		}
	}
	free(w);
}

void cli_table_free(struct cli_table **tp)
{
	struct cli_table *t = *tp;

	if (t == NULL)
		return;
	for (size_t i = 0; i < (t->nrows + 1) * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
	*tp = NULL;
}

int cli_wants_help(int argc, char **argv, const char *usage)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(usage, stdout);
			return 1;
		}
	}
	return 0;
}

int cli_color_option(int *argc, char **argv, FILE *out)
{
	const char *when = NULL, *nc;
	int j = 1;

	for (int i = 1; i < *argc; i++) {
		if (strcmp(argv[i], "--") == 0) {   /* keep it and everything after */
			while (i < *argc)
				argv[j++] = argv[i++];
			break;
		}
		if (strcmp(argv[i], "--color") == 0)
			when = "always";
		else if (strncmp(argv[i], "--color=", 8) == 0)
			when = argv[i] + 8;
		else
			argv[j++] = argv[i];
	}
	*argc = j;
	argv[j] = NULL;
	if (when == NULL || strcmp(when, "auto") == 0) {
		nc = getenv("NO_COLOR");
		return (nc == NULL || nc[0] == '\0') && isatty(fileno(out));
	}
	if (strcmp(when, "always") == 0)
		return 1;
	if (strcmp(when, "never") == 0)
		return 0;
	fprintf(stderr, "musubi: --color takes auto, always or never, not '%s'\n", when);
	return -1;
}

struct cli_palette cli_palette(int on)
{
	if (on)
		return (struct cli_palette){ "\033[32m", "\033[33m", "\033[31m", "\033[0m" };
	return (struct cli_palette){ "", "", "", "" };
}
