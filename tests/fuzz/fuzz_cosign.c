/*
 * fuzz_cosign.c - libFuzzer target for cosignatures: cosign_decode, and
 * cosign_check against a store holding the test trust list, in which
 * member FUZZ_MEMBER signs with the test key. Invariants: the check and
 * the decoder agree on what decodes and on its fields; only the test
 * member's signatures are accepted; the same statement made again with
 * cosign_make decodes to what was said and passes the check exactly when
 * its witness is the test member.
 */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_check_cosign(data, size);
	return 0;
}
