/*
 * fuzz.h - what the fuzz targets and the seed generator share: a fixed
 * test key, throw-away stores, and the invariants of every decoder that
 * reads outside bytes, each checked on any input.
 *
 * The checks abort (through FUZZ_CHECK) when an invariant breaks, so that
 * libFuzzer and AFL++ report it as a crash with the input that caused it.
 */
#ifndef MU_FUZZ_H
#define MU_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "rec.h"
#include "sig.h"
#include "store.h"

/* The member whose signing key is the test key, in fuzz_trust_list(); the
 * seed generator publishes as this member, so that seeds verify. */
#define FUZZ_MEMBER "222127"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) ((cond) ? (void)0 : fuzz_fail(__FILE__, __LINE__, #cond))
_Noreturn void fuzz_fail(const char *file, int line, const char *what);

/* The test signing key, made from a fixed seed on first use and kept for
 * the life of the process (it is no secret). Exits if OpenSSL cannot make
 * it. */
const struct sig_key *fuzz_key(void);
const uint8_t *fuzz_key_raw(void);   /* raw public key, 32 bytes */
const uint8_t *fuzz_key_id(void);    /* SHA-256 of it */

/* A verify_key_fn that names the test key for every head. */
int fuzz_key_fn(void *ctx, struct store_txn *t, const struct rec_head *h, struct sig_key **key,
		char *why, size_t whylen);

/* Trust list version 1 whose only anchor is the test key, naming member
 * FUZZ_MEMBER (publisher, relay) with the test key as its signing key,
 * signed by that anchor: SignedTrustList bytes into out. */
int fuzz_trust_list(struct rec_buf *out);

/* A store holding fuzz_trust_list(), made on first use in a temporary
 * directory that is removed at exit; only read from. */
struct store *fuzz_trust_store(void);

/* A new store without fsync in a fresh directory under $TMPDIR (dir is
 * written, at least 64 bytes); fuzz_store_drop closes it and removes the
 * directory. */
int fuzz_store_new(char *dir, size_t cap, struct store **st);
void fuzz_store_drop(char *dir, struct store **st);

/*
 * Unpack a protobuf message of any type and check that packing it gives
 * bytes that unpack and pack again to the same bytes (so, the same
 * fields). The message, or NULL when buf does not decode, is the caller's
 * to free with protobuf_c_message_free_unpacked().
 */
ProtobufCMessage *fuzz_unpack(const ProtobufCMessageDescriptor *d, const uint8_t *buf,
			      size_t len);

/*
 * The invariants. Decoders must refuse or accept without reading past
 * len, and what they accept must encode back into bytes that decode to
 * the same fields (and re-encode to the same bytes: a fixed point).
 * Records carried inside others (the row of an entry, the heads of a
 * Heads reply, ...) are checked in turn.
 */
void fuzz_check_row(const uint8_t *buf, size_t len);
/* Entry bytes as stored and served: an Entry, or a redaction stub
 * (REDACT_MARKER, then a RedactedEntry) whose notice is checked too. */
void fuzz_check_entry(const uint8_t *buf, size_t len);
void fuzz_check_tree_head(const uint8_t *buf, size_t len);
/* Also: a head whose signature verifies under the test key re-encodes to
 * exactly the bytes that were signed. */
void fuzz_check_signed_head(const uint8_t *buf, size_t len);
/* cosign_check (on fuzz_trust_store()) agrees with cosign_decode and
 * accepts exactly the test member's signatures. */
void fuzz_check_cosign(const uint8_t *buf, size_t len);
/* A SignedRedaction: redact_check, with a resolver that names the test
 * key, accepts a notice exactly when the test key signed it for a dataset
 * of its publisher. */
void fuzz_check_redaction(const uint8_t *buf, size_t len);
void fuzz_check_trust(const uint8_t *buf, size_t len);
/* The payload of an envelope of type (a Musubi__MsgType value). */
void fuzz_check_payload(int type, const uint8_t *buf, size_t len);

#endif
