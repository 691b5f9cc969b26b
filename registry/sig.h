/*
 * sig.h - Ed25519 signatures and key files through OpenSSL 3 (EVP).
 *
 * Key files are standard PEM (PKCS#8 private, SubjectPublicKeyInfo public),
 * readable by `openssl pkey`. A key directory made by sig_keygen_dir holds:
 *   signing.pem        Ed25519 private key (mode 0600)
 *   signing.pub.pem    Ed25519 public key
 *   transport.pem      X25519 private key, used as the ZeroMQ CURVE secret (0600)
 *   transport.pub.pem  X25519 public key
 *
 * Everything signed carries a domain-separation prefix chosen by the caller
 * (e.g. SIG_CTX_TREE_HEAD) so that a signature over one kind of message can
 * never be replayed as another. The signed message is prefix || bytes.
 *
 * Errors: MU_E_KEY (missing/wrong file), MU_E_CRYPTO (OpenSSL failure, the
 * OpenSSL error queue is drained into stderr), MU_E_BADSIG, -errno.
 */
#ifndef MU_SIG_H
#define MU_SIG_H

#include <stddef.h>
#include <stdint.h>

#define SIG_PUBKEY_LEN 32
#define SIG_SIGNATURE_LEN 64
#define SIG_KEYID_LEN 32

#define SIG_CTX_TREE_HEAD "musubi tree head v1\n"
#define SIG_CTX_TRUST_LIST "musubi trust list v1\n"
#define SIG_CTX_COSIGN "musubi cosignature v1\n"

struct sig_key;   /* opaque; holds an EVP_PKEY */

/* Create a new key directory (mode 0700, created if missing) with fresh
 * signing and transport key pairs. Refuses (MU_E_EXISTS) to overwrite keys. */
int sig_keygen_dir(const char *dir);

/* Load an Ed25519 private key from a PEM file. Caller owns *out and frees it
 * with sig_key_destroy(). */
int sig_key_load_private(const char *path, struct sig_key **out);
/* Load an Ed25519 public key from a PEM file. */
int sig_key_load_public(const char *path, struct sig_key **out);
/* Make a public key from its raw 32 bytes. */
int sig_key_from_raw_public(const uint8_t raw[SIG_PUBKEY_LEN], struct sig_key **out);
void sig_key_destroy(struct sig_key **key);

/* The raw 32-byte public key. */
int sig_key_raw_public(const struct sig_key *key, uint8_t out[SIG_PUBKEY_LEN]);
/* key id = SHA-256(raw public key). */
int sig_key_id(const struct sig_key *key, uint8_t out[SIG_KEYID_LEN]);
/* Write the public key as PEM to path (mode 0644). */
int sig_key_write_public_pem(const struct sig_key *key, const char *path);

/* Sign prefix || msg. `prefix` is a NUL-terminated SIG_CTX_* string. */
int sig_sign(const struct sig_key *key, const char *prefix, const void *msg, size_t len,
	     uint8_t sig[SIG_SIGNATURE_LEN]);
/* Verify. Returns 0 if valid, MU_E_BADSIG if not. */
int sig_verify(const struct sig_key *key, const char *prefix, const void *msg, size_t len,
	       const uint8_t *sig, size_t sig_len);
/* Verify a raw Ed25519 signature over msg with no prefix (test vectors).
 * pub_len must be 32 and sig_len 64 for a valid result; anything else is
 * MU_E_BADSIG, never a crash. */
int sig_verify_raw(const uint8_t *pub, size_t pub_len, const void *msg, size_t len,
		   const uint8_t *sig, size_t sig_len);

/* Load the X25519 transport key pair of a key directory's transport.pem as
 * raw 32-byte public and secret keys (ZeroMQ CURVE takes them raw). The
 * secret is the caller's to wipe with OPENSSL_cleanse(). */
int sig_transport_load(const char *path, uint8_t pub[32], uint8_t sec[32]);
/* Read a transport public key PEM into raw bytes. */
int sig_transport_load_public(const char *path, uint8_t pub[32]);

/* SHA-256 of a buffer, one call. */
void sig_sha256(const void *data, size_t len, uint8_t out[32]);

/* Lowercase hex of len bytes into out (2*len+1 bytes, NUL-terminated). */
void sig_hex(const uint8_t *data, size_t len, char *out);
/* Parse exactly 2*len hex digits. Returns 0 or MU_E_USAGE. */
int sig_unhex(const char *hex, uint8_t *out, size_t len);

#endif
