/*
 * fuzz_entry.c - libFuzzer target for stored and received log entries
 * (rec_entry_decode) and the row each carries (rec_row_decode).
 * Invariant: decode -> encode -> decode gives the same fields, and a
 * second encode gives the same bytes.
 */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_check_entry(data, size);
	return 0;
}
