/*
 * fuzz_csv.c - libFuzzer target for the CSV reader (also builds with
 * AFL++'s afl-clang-fast in libFuzzer mode): reads every record of the
 * input from memory and touches every byte of every field, checking what
 * the contract promises: NUL-terminated fields without inner NULs, lines
 * that never go back, and errors that stay.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct csv_reader *r = NULL;
	struct csv_record rec;
	uint64_t last_line = 0;
	int rc;

	if (csv_open_mem(data, size, &r) < 0)
		return 0;
	while ((rc = csv_next(r, &rec)) == 1) {
		if (rec.line <= last_line || rec.nfields == 0 || rec.nfields > CSV_MAX_FIELDS)
			abort();
		last_line = rec.line;
		for (size_t i = 0; i < rec.nfields; i++) {
			const struct csv_field *f = &rec.fields[i];
			if (strlen(f->ptr) != f->len)
				abort();
		}
	}
	if (rc < 0 && (csv_error(r)[0] == '\0' || csv_next(r, &rec) != rc))
		abort();
	if (rc == 0 && (csv_error(r)[0] != '\0' || csv_bytes_read(r) != size))
		abort();
	csv_close(&r);
	return 0;
}
