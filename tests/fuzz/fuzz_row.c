/*
 * fuzz_row.c - libFuzzer target for encoded rows (rec_row_decode), which
 * the query side reads out of every entry. Invariants: every value formats
 * to text of the length schema_format() says, and decode -> encode ->
 * decode gives the same typed values (numbers bit for bit).
 */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_check_row(data, size);
	return 0;
}
