/*
 * fuzz_trust.c - libFuzzer target for the trust list decoder: any bytes
 * either decode to a well-formed list or are refused with a reason. A list
 * that decodes must encode back to bytes that decode to the same list, and
 * the signature rules must run over it, and name a rule when they refuse.
 * Seed it with real list files (musubi trust init/add/sign).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mu_err.h"
#include "trust.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct trust_signed s, again;
	struct rec_buf b = { 0 };
	char why[512] = "";
	int rc;

	if ((rc = trust_decode(data, size, &s, why, sizeof(why))) < 0) {
		if (why[0] == '\0')
			abort();
		trust_signed_fini(&s);
		return 0;
	}
	if (trust_list_check(&s.list, why, sizeof(why)) < 0)
		abort();
	if (trust_encode(&s, &b) < 0 || trust_decode(b.data, b.len, &again, why, sizeof(why)) < 0)
		abort();
	if (again.len != s.len || memcmp(again.bytes, s.bytes, s.len) != 0 ||
	    again.nsigs != s.nsigs || again.list.version != s.list.version ||
	    again.list.nmembers != s.list.nmembers || again.list.nanchors != s.list.nanchors ||
	    again.list.nretired != s.list.nretired)
		abort();
	for (size_t i = 0; i < s.list.nmembers; i++)
		if (strcmp(again.list.members[i].id, s.list.members[i].id) != 0)
			abort();
	why[0] = '\0';
	rc = trust_accept_first(&s, why, sizeof(why));
	if ((rc != 0 && rc != MU_E_TRUST) || why[0] == '\0')
		abort();
	why[0] = '\0';
	rc = trust_accept_next(&s, &again, why, sizeof(why));
	if (rc != MU_E_TRUST || strncmp(why, "downgrade or replay", 19) != 0)
		abort();
	trust_signed_fini(&again);
	trust_signed_fini(&s);
	rec_buf_fini(&b);
	return 0;
}
