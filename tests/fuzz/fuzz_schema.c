/*
 * fuzz_schema.c - libFuzzer target for schema documents. The input is a
 * Table Schema; when it parses, each field converts a set of cells (and the
 * input itself), and the invariants that callers rely on are checked:
 * a converted value formats to text that converts back to the same text,
 * every field's own name finds that field, and a schema is never a
 * compatible evolution of itself.
 *
 *   clang -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iregistry \
 *     tests/fuzz/fuzz_schema.c registry/schema.c registry/mu_err.c \
 *     schemas_builtin.c -lcrypto -llmdb -ljansson -o fuzz_schema
 *   ./fuzz_schema -max_total_time=20 corpus/   (seeded with registry/schemas)
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mu_err.h"
#include "schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const cells[] = {
	"1", "-0.5", "007", "1e999", "9223372036854775808", "2020/3/9", "2020-02-29",
	"2020-01-28T00:00", "2020/1/28 9:05:07+0900", "24:00", "○", "true", "FALSE",
	"34.8,138.3", "焼津市", "有", "222127", "\xff",
};

/* Convert, format, convert again with the type alone: same canonical text. */
static void round_trip(const struct schema_field *f, const char *text, size_t len)
{
	struct schema_field bare = *f;
	struct mu_value v, back;
	char why[256], out[128], again[128];
	size_t n;

	if (schema_convert(f, text, len, &v, why, sizeof(why)) != 0)
		return;
	/* constraints look at the cell as written, not at its canonical form */
	bare.required = 0;
	bare.pattern = NULL;
	bare.enum_values = NULL;
	bare.nenum = 0;
	bare.has_minimum = bare.has_maximum = 0;
	bare.min_length = bare.max_length = -1;
	n = schema_format(&v, out, sizeof(out));
	if (n >= sizeof(out))
		return;
	if (schema_convert(&bare, out, n, &back, why, sizeof(why)) != 0 || back.kind != v.kind)
		abort();
	if (schema_format(&back, again, sizeof(again)) != n || memcmp(out, again, n) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct schema *s = NULL;
	char *why = NULL;

	if (schema_parse((const char *)data, size, &s, &why) != 0) {
		if (why == NULL)
			abort();  /* every refusal says why */
		free(why);
		return 0;
	}
	for (size_t i = 0; i < s->nfields; i++) {
		const struct schema_field *f = &s->fields[i];
		for (size_t k = 0; k < sizeof(cells) / sizeof(cells[0]); k++)
			round_trip(f, cells[k], strlen(cells[k]));
		round_trip(f, (const char *)data, size < 64 ? size : 64);
		if (schema_field_index(s, f->name, strlen(f->name)) != (long)i)
			abort();
	}
	if (schema_compat(s, s, &why) != MU_E_INCOMPAT || why == NULL)
		abort();
	free(why);
	schema_destroy(&s);
	return 0;
}
