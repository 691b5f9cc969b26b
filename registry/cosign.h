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
 * Decode and check: the witness is a member in the store's newest trust
 * list, the key id is its signing key, and the signature verifies. 0, or
 * MU_E_DECODE / MU_E_TRUST / MU_E_BADSIG with why set.
 */
int cosign_check(struct store_txn *t, const uint8_t *buf, size_t len, struct cosign *c,
		 char *why, size_t whylen);

#endif
