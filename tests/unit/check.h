/*
 * check.h - the unit-test harness: named cases in a table, assertions that
 * print file, line, expression and the error text, and a main() that runs
 * every case (or those named on the command line).
 *
 *   static void test_root_sizes(void) { CHECK(x == 1); CHECK_RC(f(), MU_E_PROOF); }
 *   CHECK_TESTS = { { "root sizes", test_root_sizes }, { NULL, NULL } };
 */
#ifndef MU_CHECK_H
#define MU_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mu_err.h"

struct check_case {
	const char *name;
	void (*fn)(void);
};

static int check_failures;

#define CHECK(expr)                                                              \
	do {                                                                     \
		if (!(expr)) {                                                   \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,    \
				__LINE__, #expr);                                \
			check_failures++;                                        \
		}                                                                \
	} while (0)

/* Assert that expr returns exactly `want` (0 or a negative code). */
#define CHECK_RC(expr, want)                                                     \
	do {                                                                     \
		int check_rc_ = (expr);                                          \
		int check_want_ = (want);                                        \
		if (check_rc_ != check_want_) {                                  \
			fprintf(stderr, "%s:%d: %s returned %d (%s), wanted %d (%s)\n", \
				__FILE__, __LINE__, #expr, check_rc_,            \
				mu_strerror(check_rc_), check_want_,             \
				mu_strerror(check_want_));                       \
			check_failures++;                                        \
		}                                                                \
	} while (0)

#define CHECK_OK(expr) CHECK_RC((expr), 0)

#define CHECK_STREQ(a, b)                                                        \
	do {                                                                     \
		const char *check_a_ = (a), *check_b_ = (b);                     \
		if (check_a_ == NULL || check_b_ == NULL ||                      \
		    strcmp(check_a_, check_b_) != 0) {                           \
			fprintf(stderr, "%s:%d: %s is \"%s\", wanted \"%s\"\n",   \
				__FILE__, __LINE__, #a,                          \
				check_a_ ? check_a_ : "(null)",                  \
				check_b_ ? check_b_ : "(null)");                 \
			check_failures++;                                        \
		}                                                                \
	} while (0)

/* A fatal precondition: stop this case when it fails. */
#define REQUIRE(expr)                                                            \
	do {                                                                     \
		if (!(expr)) {                                                   \
			fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__,  \
				__LINE__, #expr);                                \
			check_failures++;                                        \
			return;                                                  \
		}                                                                \
	} while (0)

#define CHECK_TESTS static const struct check_case check_cases[]

static const struct check_case check_cases[];

int main(int argc, char **argv)
{
	int failed_cases = 0, ran = 0;

	for (const struct check_case *c = check_cases; c->name != NULL; c++) {
		int before = check_failures;
		int wanted = argc < 2;
		for (int i = 1; i < argc; i++)
			wanted |= strcmp(argv[i], c->name) == 0;
		if (!wanted)
			continue;
		ran++;
		c->fn();
		if (check_failures != before) {
			failed_cases++;
			fprintf(stderr, "FAIL: %s\n", c->name);
		} else {
			printf("ok: %s\n", c->name);
		}
	}
	printf("%d cases, %d failed\n", ran, failed_cases);
	return failed_cases == 0 && ran > 0 ? 0 : 1;
}

#endif
