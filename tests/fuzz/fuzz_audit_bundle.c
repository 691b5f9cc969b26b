/*
 * fuzz_audit_bundle.c - libFuzzer target for the row-proof reader behind
 * musubi audit --check (audit_proof_decode) and the check after it
 * (audit_proof_check, against the test trust list as the auditor's own).
 * Invariants: any bytes are refused with a reason or read without reading
 * past them; a proof read encodes to a document that reads back to the
 * same proof and encodes again to the same bytes (a fixed point); the
 * check says the same of the proof read back; a proof that checks names
 * its dataset's member as the publisher and a head that covers its entry.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "fuzz.h"
#include "mu_err.h"

static struct rec_buf pin;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (fuzz_trust_list(&pin) < 0) {
		fprintf(stderr, "fuzz_audit_bundle: cannot make the test trust list\n");
		exit(1);
	}
	return 0;
}

static int same_blob(const struct audit_blob *a, const struct audit_blob *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static int same(const struct audit_row_proof *a, const struct audit_row_proof *b)
{
	if (strcmp(a->dataset, b->dataset) != 0 || a->seq != b->seq ||
	    !same_blob(&a->entry, &b->entry) || memcmp(a->leaf, b->leaf, sizeof(a->leaf)) != 0 ||
	    a->npath != b->npath || (a->npath > 0 &&
				     memcmp(a->path, b->path, a->npath * sizeof(*a->path)) != 0) ||
	    !same_blob(&a->signed_head, &b->signed_head) || strcmp(a->key_pem, b->key_pem) != 0 ||
	    a->ntrust != b->ntrust)
		return 0;
	for (size_t i = 0; i < a->ntrust; i++)
		if (!same_blob(&a->trust[i], &b->trust[i]))
			return 0;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct audit_row_proof p, q;
	struct audit_proof_info ip, iq;
	struct audit_blob pb = { pin.data, pin.len };
	char why[512] = "", *once = NULL, *twice = NULL;
	int rc = audit_proof_decode(data, size, &p, why, sizeof(why));

	if (rc < 0) {
		FUZZ_CHECK(rc == MU_E_DECODE || rc == MU_E_TOOBIG || rc == -ENOMEM);
		FUZZ_CHECK(rc == -ENOMEM || why[0] != '\0');
		audit_proof_fini(&p);
		return 0;
	}
	FUZZ_CHECK(audit_proof_encode(&p, &once) == 0);
	FUZZ_CHECK(audit_proof_decode((const uint8_t *)once, strlen(once), &q, why, sizeof(why)) == 0);
	FUZZ_CHECK(same(&p, &q));
	FUZZ_CHECK(audit_proof_encode(&q, &twice) == 0 && strcmp(once, twice) == 0);

	rc = audit_proof_check(&p, &pb, &ip, why, sizeof(why));
	FUZZ_CHECK(audit_proof_check(&q, &pb, &iq, why, sizeof(why)) == rc);
	if (rc == 0) {
		size_t n = strlen(ip.publisher);
		FUZZ_CHECK(strncmp(p.dataset, ip.publisher, n) == 0 && p.dataset[n] == '/');
		FUZZ_CHECK(p.seq < ip.size && ip.pinned);
		FUZZ_CHECK(memcmp(&ip, &iq, sizeof(ip)) == 0);
	}
	free(once);
	free(twice);
	audit_proof_fini(&p);
	audit_proof_fini(&q);
	return 0;
}
