/*
 * fuzz_cosign.c - libFuzzer target for cosignatures (cosign_decode, and
 * cosign_check against a store holding the test trust list, in which
 * member FUZZ_MEMBER signs with the test key). Invariants: the check and
 * the decoder agree on what decodes and on its fields; only the test
 * member's signatures are accepted; the same statement made again with
 * cosign_make decodes to what was said and passes the check exactly when
 * its witness is the test member.
 */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz.h"
#include "mu_err.h"
#include "trust.h"

static struct store *st;
static char dir[256];

static void drop(void)
{
	fuzz_store_drop(dir, &st);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct rec_buf list = { 0 };
	char why[256];

	if (fuzz_store_new(dir, sizeof(dir), &st) < 0 || fuzz_trust_list(&list) < 0 ||
	    trust_store_list(st, list.data, list.len, why, sizeof(why)) < 0) {
		fprintf(stderr, "fuzz_cosign: cannot set up the trust store\n");
		exit(1);
	}
	rec_buf_fini(&list);
	atexit(drop);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_check_cosign(data, size, st);
	return 0;
}
