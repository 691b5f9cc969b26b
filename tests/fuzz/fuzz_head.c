/*
 * fuzz_head.c - libFuzzer target for signed tree heads (head_decode,
 * rec_signed_head_decode, head_check_signature) and, reading the same
 * bytes as a bare TreeHead, rec_head_decode. Invariants: head_decode
 * accepts exactly what its two layers accept; both layers re-encode to
 * the same fields; a head that verifies under the test key re-encodes to
 * exactly the signed bytes.
 */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_check_signed_head(data, size);
	fuzz_check_tree_head(data, size);
	return 0;
}
