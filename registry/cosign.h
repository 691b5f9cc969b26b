/*
 * cosign.h - witnesses: a node's signed statement that it verified a head.
 *
 * A cosignature names the witness (a member id), the dataset, the size,
 * the SHA-256 of the TreeHead bytes it verified, and when. It is signed
 * with the witness's Ed25519 signing key over SIG_CTX_COSIGN || bytes.
 * Heads cosigned by k independent members cannot have been shown
 * differently to them without one of them holding proof of it.
 */
#ifndef MU_COSIGN_H
#define MU_COSIGN_H

#include <stddef.h>
#include <stdint.h>

#include "rec.h"
#include "sig.h"
#include "store.h"

struct cosign {
	char witness[64];
	char dataset[128];
	uint64_t size;
	uint8_t head_sha256[32];
	int64_t time_us;
	uint64_t trust_version;
	uint8_t key_id[32];
};

/* Make SignedCosignature bytes for the TreeHead bytes head (len) of
 * dataset at size, by witness with key, into out. */
int cosign_make(const struct sig_key *key, const char *witness, uint64_t trust_version,
		const char *dataset, uint64_t size, const uint8_t *head, size_t len,
		struct rec_buf *out);

/* Decode SignedCosignature bytes into c without checking the signature. */
int cosign_decode(const uint8_t *buf, size_t len, struct cosign *c);

/*
 * Decode and check: trust_check_cosig (trust.h: the rule the auditor
 * applies too) against the store's list of the cosignature's
 * trust_version and its newest list names the key, and the signature
 * verifies under it. A cosignature naming trust version 0 or one the
 * store does not hold is refused (MU_E_TRUST; c is filled, so the caller
 * can tell it from a lie by c->trust_version). 0, or MU_E_DECODE /
 * MU_E_TRUST / MU_E_BADSIG with why set.
 */
int cosign_check(struct store_txn *t, const uint8_t *buf, size_t len, struct cosign *c,
		 char *why, size_t whylen);

#endif
