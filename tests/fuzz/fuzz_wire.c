/*
 * fuzz_wire.c - libFuzzer target for each wire payload message on its own:
 * the first byte picks the type (the value of the n-th Musubi__MsgType, n
 * taken modulo their number; the seeds write the type's value), the rest
 * is the payload. Invariants (fuzz_check_payload): the message re-encodes
 * to a fixed point, and the signed heads, entries, rows, cosignatures,
 * redaction notices, trust lists and schemas it carries pass their own
 * checks.
 */
#include "fuzz.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const ProtobufCEnumDescriptor *types = &musubi__msg_type__descriptor;

	if (size == 0)
		return 0;
	fuzz_check_payload(types->values[data[0] % types->n_values].value, data + 1, size - 1);
	return 0;
}
