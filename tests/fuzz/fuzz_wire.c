/*
 * fuzz_wire.c - libFuzzer target for each wire payload message on its own:
 * the first byte picks the type (its value modulo 20 is a Musubi__MsgType),
 * the rest is the payload. Invariants (fuzz_check_payload): the message
 * re-encodes to a fixed point, and the signed heads, entries, rows,
 * cosignatures, trust lists and schemas it carries pass their own checks.
 */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	fuzz_check_payload(data[0] % 20, data + 1, size - 1);
	return 0;
}
