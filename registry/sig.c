/*
 * sig.c - Ed25519 signatures, X25519 transport keys and their PEM files,
 * all through OpenSSL 3's EVP API. OpenSSL failures are reported once here
 * (the error queue drained to stderr) and leave as MU_E_CRYPTO.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "merkle.h"
#include "mu_err.h"
#include "sig.h"

struct sig_key {
	EVP_PKEY *pkey;
};

static int crypto_fail(const char *what)
{
	fprintf(stderr, "sig: %s failed\n", what);
	ERR_print_errors_fp(stderr);
	return MU_E_CRYPTO;
}

/* Never let OpenSSL fall back to prompting on the terminal for a passphrase:
 * musubi keys are unencrypted, so an encrypted one is simply the wrong file. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

static int fsync_parent(const char *path)
{
	char *copy = strdup(path);
	int fd, rc = 0;

	if (copy == NULL)
		return -ENOMEM;
	if ((fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 || fsync(fd) < 0)
		rc = -errno;
	if (fd >= 0)
		close(fd);
	free(copy);
	return rc;
}

/*
 * Write pkey (its private half if `private`) as PEM to path, atomically: the
 * bytes go to a temp file in the same directory, are fsynced, and only then
 * take the final name. Without `replace` the final step is link(), which
 * fails with EEXIST instead of silently overwriting an existing key.
 */
static int write_pem(const char *path, EVP_PKEY *pkey, int private, mode_t mode, int replace)
{
	char iobuf[4096];  /* our own stdio buffer, so the PEM text can be wiped */
	char *tmp = NULL;
	FILE *fp = NULL;
	int fd = -1, have_tmp = 0, rc;

	if (asprintf(&tmp, "%s.tmpXXXXXX", path) < 0) {
		tmp = NULL;
		rc = -ENOMEM;
		goto out;
	}
	/* mkostemp creates the file 0600, so a private key is never readable
	 * by others, not even before the fchmod. */
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
		rc = -errno;
		goto out;
	}
	have_tmp = 1;
	if (fchmod(fd, mode) < 0 || (fp = fdopen(fd, "w")) == NULL) {
		rc = -errno;
		goto out;
	}
	fd = -1;
	setvbuf(fp, iobuf, _IOFBF, sizeof(iobuf));
	if (!(private ? PEM_write_PrivateKey(fp, pkey, NULL, NULL, 0, NULL, NULL)
		      : PEM_write_PUBKEY(fp, pkey))) {
		rc = crypto_fail("PEM_write");
		goto out;
	}
	if (fflush(fp) != 0 || fsync(fileno(fp)) < 0) {
		rc = -errno;
		goto out;
	}
	rc = fclose(fp) != 0 ? -errno : 0;
	fp = NULL;
	if (rc < 0)
		goto out;
	if ((replace ? rename(tmp, path) : link(tmp, path)) < 0) {
		rc = errno == EEXIST ? MU_E_EXISTS : -errno;
		goto out;
	}
	if (!replace)
		unlink(tmp);  /* the key now lives under its final name */
	have_tmp = 0;
	rc = fsync_parent(path);
out:
	if (fp != NULL)
		fclose(fp);
	if (fd >= 0)
		close(fd);
	OPENSSL_cleanse(iobuf, sizeof(iobuf));
	if (have_tmp)
		unlink(tmp);
	if (rc < 0)
		fprintf(stderr, "sig: cannot write %s: %s\n", path, mu_strerror(rc));
	free(tmp);
	return rc;
}

/* Read a PEM key of type `type` (an OpenSSL key type name) from path. */
static int load_pem(const char *path, int private, const char *type, EVP_PKEY **out)
{
	char iobuf[4096];  /* our own stdio buffer, so the PEM text can be wiped */
	EVP_PKEY *pkey;
	FILE *fp;

	if ((fp = fopen(path, "re")) == NULL) {
		fprintf(stderr, "sig: cannot open key file %s: %s\n", path, strerror(errno));
		return MU_E_KEY;
	}
	setvbuf(fp, iobuf, _IOFBF, sizeof(iobuf));
	pkey = private ? PEM_read_PrivateKey(fp, NULL, no_passphrase, NULL)
		       : PEM_read_PUBKEY(fp, NULL, no_passphrase, NULL);
	fclose(fp);
	OPENSSL_cleanse(iobuf, sizeof(iobuf));
	if (pkey == NULL) {
		/* The queue only says "no start line" or the like; the file
		 * name and what was expected tell the operator more. */
		ERR_clear_error();
		fprintf(stderr, "sig: %s is not an unencrypted PEM %s key\n", path,
			private ? "private" : "public");
		return MU_E_KEY;
	}
	if (!EVP_PKEY_is_a(pkey, type)) {
		const char *found = EVP_PKEY_get0_type_name(pkey);

		fprintf(stderr, "sig: %s holds key type %s, expected %s\n", path,
			found != NULL ? found : "unknown", type);
		EVP_PKEY_free(pkey);
		return MU_E_KEY;
	}
	*out = pkey;
	return 0;
}

/* Wrap pkey (taken over, freed on failure) into a new sig_key. */
static int key_wrap(EVP_PKEY *pkey, struct sig_key **out)
{
	struct sig_key *key = calloc(1, sizeof(*key));

	if (key == NULL) {
		EVP_PKEY_free(pkey);
		return -ENOMEM;
	}
	key->pkey = pkey;
	*out = key;
	return 0;
}

int sig_keygen_dir(const char *dir)
{
	static const char *const names[] = {
		"signing.pem", "signing.pub.pem", "transport.pem", "transport.pub.pem",
	};
	char *paths[4] = { NULL };
	EVP_PKEY *signing = NULL, *transport = NULL;
	struct stat st;
	int rc = 0;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		rc = -errno;
		fprintf(stderr, "sig: cannot create %s: %s\n", dir, strerror(errno));
		goto out;
	}
	/* Check all four first, so that a directory holding any key is left
	 * exactly as it was rather than half-filled with new ones. */
	for (int i = 0; i < 4; i++) {
		if (asprintf(&paths[i], "%s/%s", dir, names[i]) < 0) {
			paths[i] = NULL;
			rc = -ENOMEM;
			goto out;
		}
		if (lstat(paths[i], &st) == 0)
			rc = MU_E_EXISTS;
		else if (errno != ENOENT)
			rc = -errno;
		if (rc < 0) {
			fprintf(stderr, "sig: %s: %s, not overwriting\n", paths[i], mu_strerror(rc));
			goto out;
		}
	}
	if ((signing = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")) == NULL) {
		rc = crypto_fail("Ed25519 key generation");
		goto out;
	}
	if ((transport = EVP_PKEY_Q_keygen(NULL, NULL, "X25519")) == NULL) {
		rc = crypto_fail("X25519 key generation");
		goto out;
	}
	if ((rc = write_pem(paths[0], signing, 1, 0600, 0)) < 0 ||
	    (rc = write_pem(paths[1], signing, 0, 0644, 0)) < 0 ||
	    (rc = write_pem(paths[2], transport, 1, 0600, 0)) < 0 ||
	    (rc = write_pem(paths[3], transport, 0, 0644, 0)) < 0)
		goto out;
out:
	EVP_PKEY_free(signing);
	EVP_PKEY_free(transport);
	for (int i = 0; i < 4; i++)
		free(paths[i]);
	return rc;
}

int sig_key_load_private(const char *path, struct sig_key **out)
{
	EVP_PKEY *pkey;
	int rc;

	if ((rc = load_pem(path, 1, "ED25519", &pkey)) < 0)
		return rc;
	return key_wrap(pkey, out);
}

int sig_key_load_public(const char *path, struct sig_key **out)
{
	EVP_PKEY *pkey;
	int rc;

	if ((rc = load_pem(path, 0, "ED25519", &pkey)) < 0)
		return rc;
	return key_wrap(pkey, out);
}

int sig_key_from_raw_public(const uint8_t raw[SIG_PUBKEY_LEN], struct sig_key **out)
{
	EVP_PKEY *pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, SIG_PUBKEY_LEN);

	if (pkey == NULL)
		return crypto_fail("EVP_PKEY_new_raw_public_key");
	return key_wrap(pkey, out);
}

void sig_key_destroy(struct sig_key **key)
{
	if (key == NULL || *key == NULL)
		return;
	EVP_PKEY_free((*key)->pkey);  /* OpenSSL wipes the private half */
	free(*key);
	*key = NULL;
}

int sig_key_raw_public(const struct sig_key *key, uint8_t out[SIG_PUBKEY_LEN])
{
	size_t len = SIG_PUBKEY_LEN;

	if (EVP_PKEY_get_raw_public_key(key->pkey, out, &len) != 1 || len != SIG_PUBKEY_LEN)
		return crypto_fail("EVP_PKEY_get_raw_public_key");
	return 0;
}

int sig_key_id(const struct sig_key *key, uint8_t out[SIG_KEYID_LEN])
{
	uint8_t raw[SIG_PUBKEY_LEN];
	int rc;

	if ((rc = sig_key_raw_public(key, raw)) < 0)
		return rc;
	sig_sha256(raw, sizeof(raw), out);
	return 0;
}

int sig_key_write_public_pem(const struct sig_key *key, const char *path)
{
	return write_pem(path, key->pkey, 0, 0644, 1);
}

/*
 * prefix || msg in one new buffer (at least 1 byte, so an empty message
 * still has a valid pointer). Ed25519 hashes the message twice, so OpenSSL
 * only offers it one-shot: there is no update call to feed two pieces.
 */
static int concat(const char *prefix, const void *msg, size_t len, uint8_t **out, size_t *out_len)
{
	size_t plen;

	if (prefix == NULL || (msg == NULL && len > 0))
		return MU_E_USAGE;
	plen = strlen(prefix);
	if (len > SIZE_MAX - plen - 1)
		return MU_E_TOOBIG;
	if ((*out = malloc(plen + len + 1)) == NULL)
		return -ENOMEM;
	memcpy(*out, prefix, plen);
	if (len > 0)
		memcpy(*out + plen, msg, len);
	*out_len = plen + len;
	return 0;
}

int sig_sign(const struct sig_key *key, const char *prefix, const void *msg, size_t len,
	     uint8_t sig[SIG_SIGNATURE_LEN])
{
	EVP_MD_CTX *ctx = NULL;
	uint8_t *tbs = NULL;
	size_t tbs_len, sig_len = SIG_SIGNATURE_LEN;
	int rc;

	if ((rc = concat(prefix, msg, len, &tbs, &tbs_len)) < 0)
		goto out;
	/* A NULL digest: Ed25519 does its own hashing (PureEdDSA). */
	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestSignInit(ctx, NULL, NULL, NULL, key->pkey) != 1 ||
	    EVP_DigestSign(ctx, sig, &sig_len, tbs, tbs_len) != 1 ||
	    sig_len != SIG_SIGNATURE_LEN) {
		rc = crypto_fail("Ed25519 signing");
		goto out;
	}
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	free(tbs);
	return rc;
}

/* 0 if sig (already known to be 64 bytes) is a valid Ed25519 signature by
 * pkey over tbs, else MU_E_BADSIG. */
static int verify_pkey(EVP_PKEY *pkey, const void *tbs, size_t tbs_len, const uint8_t *sig,
		       size_t sig_len)
{
	EVP_MD_CTX *ctx;
	int ok;

	if ((ctx = EVP_MD_CTX_new()) == NULL || EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) != 1) {
		EVP_MD_CTX_free(ctx);
		return crypto_fail("Ed25519 verify setup");
	}
	ok = EVP_DigestVerify(ctx, sig, sig_len, tbs, tbs_len);
	EVP_MD_CTX_free(ctx);
	/* A forged or malformed signature is an answer, not an OpenSSL
	 * failure: drop whatever it queued so it is not blamed on a later call. */
	ERR_clear_error();
	return ok == 1 ? 0 : MU_E_BADSIG;
}

int sig_verify(const struct sig_key *key, const char *prefix, const void *msg, size_t len,
	       const uint8_t *sig, size_t sig_len)
{
	uint8_t *tbs = NULL;
	size_t tbs_len;
	int rc;

	if (sig == NULL || sig_len != SIG_SIGNATURE_LEN)
		return MU_E_BADSIG;
	if ((rc = concat(prefix, msg, len, &tbs, &tbs_len)) < 0)
		return rc;
	rc = verify_pkey(key->pkey, tbs, tbs_len, sig, sig_len);
	free(tbs);
	return rc;
}

int sig_verify_raw(const uint8_t *pub, size_t pub_len, const void *msg, size_t len,
		   const uint8_t *sig, size_t sig_len)
{
	static const uint8_t empty;
	EVP_PKEY *pkey;
	int rc;

	if (pub == NULL || pub_len != SIG_PUBKEY_LEN || sig == NULL || sig_len != SIG_SIGNATURE_LEN)
		return MU_E_BADSIG;
	if (msg == NULL && len > 0)
		return MU_E_USAGE;
	/* OpenSSL takes any 32 bytes here; a point that does not decode is
	 * caught by the verification itself. */
	if ((pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, pub_len)) == NULL) {
		ERR_clear_error();
		return MU_E_BADSIG;
	}
	rc = verify_pkey(pkey, msg != NULL ? msg : &empty, len, sig, sig_len);
	EVP_PKEY_free(pkey);
	return rc;
}

int sig_transport_load(const char *path, uint8_t pub[32], uint8_t sec[32])
{
	EVP_PKEY *pkey;
	size_t pub_len = 32, sec_len = 32;
	int rc = 0;

	if ((rc = load_pem(path, 1, "X25519", &pkey)) < 0)
		return rc;
	if (EVP_PKEY_get_raw_public_key(pkey, pub, &pub_len) != 1 ||
	    EVP_PKEY_get_raw_private_key(pkey, sec, &sec_len) != 1 || pub_len != 32 || sec_len != 32) {
		OPENSSL_cleanse(sec, 32);
		rc = crypto_fail("reading the raw X25519 key");
	}
	EVP_PKEY_free(pkey);
	return rc;
}

int sig_transport_load_public(const char *path, uint8_t pub[32])
{
	EVP_PKEY *pkey;
	size_t len = 32;
	int rc = 0;

	if ((rc = load_pem(path, 0, "X25519", &pkey)) < 0)
		return rc;
	if (EVP_PKEY_get_raw_public_key(pkey, pub, &len) != 1 || len != 32)
		rc = crypto_fail("reading the raw X25519 public key");
	EVP_PKEY_free(pkey);
	return rc;
}

void sig_sha256(const void *data, size_t len, uint8_t out[32])
{
	static const uint8_t empty;

	/* merkle.c keeps the fast path (and stops the process if OpenSSL
	 * cannot hash: a wrong digest would be worse). */
	merkle_sha256(data != NULL ? data : &empty, len, out);
}

void sig_hex(const uint8_t *data, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[data[i] >> 4];
		out[2 * i + 1] = digits[data[i] & 0x0f];
	}
	out[2 * len] = '\0';
}

static int nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int sig_unhex(const char *hex, uint8_t *out, size_t len)
{
	/* Check everything before writing, so out is untouched on failure. */
	if (hex == NULL || strspn(hex, "0123456789abcdefABCDEF") != 2 * len || hex[2 * len] != '\0')
		return MU_E_USAGE;
	for (size_t i = 0; i < len; i++)
		out[i] = (uint8_t)(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
	return 0;
}
