/*
 * fuzz_entry.c - libFuzzer target for log entries as stored and served:
 * an Entry (rec_entry_decode, and the row it carries) or a redaction stub
 * (redact_stub_decode, redact_leaf_hash, and the notice it carries).
 * Invariants: an entry decodes, encodes and decodes to the same fields,
 * and encodes again to the same bytes; the leaf hash of anything but a
 * stub is SHA-256(0x00 || bytes), of a stub the hash it keeps; a stub's
 * notice passes the redaction checks.
 */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_check_entry(data, size);
	return 0;
}
