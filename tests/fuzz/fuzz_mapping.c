/*
 * fuzz_mapping.c - libFuzzer target for column mappings. The input is a
 * mapping document, a NUL byte, then CSV text; without a NUL, the first
 * byte picks a built-in mapping and the rest is the CSV. Every record goes
 * through the mapping, checking what publish relies on: output cells are
 * NUL-terminated with their length, every row has as many cells as the
 * header, source columns name input columns, errors say something, and a
 * refused header stays refused.
 *
 *   clang -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iregistry -I. \
 *     tests/fuzz/fuzz_mapping.c registry/mapping.c registry/csv.c registry/mu_err.c \
 *     -lcrypto -llmdb -ljansson -o fuzz_mapping   (with mappings_builtin.h in .)
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "mapping.h"
#include "mu_err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	const char *csv = (const char *)data;
	size_t csvlen = size, nout = 0;
	struct mapping *m = NULL;
	struct mapping_run *r = NULL;
	struct csv_reader *rd = NULL;
	struct csv_record in, out;
	struct mapping_error err;
	int rc, header = 0, refused = 0;

	if (nul != NULL) {
		if (mapping_parse((const char *)data, (size_t)(nul - data), &m, NULL) < 0)
			return 0;
		csv = (const char *)nul + 1;
		csvlen = size - (size_t)(nul - data) - 1;
	} else {
		if (size == 0 || mapping_builtin_count() == 0)
			return 0;
		const char *json = mapping_builtin_json(data[0] % mapping_builtin_count());
		if (mapping_parse(json, strlen(json), &m, NULL) < 0)
			abort();   /* a built-in always parses */
		csv++;
		csvlen--;
	}
	if (mapping_run_new(m, &r) < 0 || csv_open_mem(csv, csvlen, &rd) < 0)
		goto out;
	while (csv_next(rd, &in) == 1) {
		memset(&err, 0, sizeof(err));
		rc = mapping_apply(r, &in, &out, &err);
		if (rc < 0) {
			if (rc != MU_E_SCHEMA && rc != -ENOMEM)
				abort();
			/* a repeated header refusal names the header's column */
			if (rc == MU_E_SCHEMA &&
			    (err.message[0] == '\0' || (!refused && err.column > in.nfields)))
				abort();
			if (!header)
				refused = 1;
			continue;
		}
		if (refused)
			abort();   /* a refused header is final */
		if (rc == MAPPING_SKIP)
			continue;
		if (rc == MAPPING_HEADER) {
			if (header)
				abort();
			header = 1;
			nout = out.nfields;
			for (size_t i = 0; i < nout; i++)
				if (mapping_source_column(r, i) > in.nfields)
					abort();
		} else if (rc != MAPPING_ROW || !header || out.nfields != nout || out.line != in.line) {
			abort();
		}
		for (size_t i = 0; i < out.nfields; i++)
			if (strlen(out.fields[i].ptr) != out.fields[i].len)
				abort();
	}
out:
	csv_close(&rd);
	mapping_run_destroy(&r);
	mapping_destroy(&m);
	return 0;
}
