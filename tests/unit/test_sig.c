/*
 * test_sig.c - sig_: key files that stock `openssl` accepts, signatures that
 * stock `openssl` verifies, rejection of every kind of tampering and wrong
 * key file, and the Wycheproof Ed25519 vectors.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "check.h"
#include "sig.h"
#include "testutil.h"

#define MSG "tree head: 011002/evacuation_sites size 42"

static char tmp_root[TU_DIR_MAX];

static void rm_tmp_root(void)
{
	tu_rmrf(tmp_root);
}

/* A path under this run's temp directory, which is removed at exit. */
static const char *tmp_path(const char *name)
{
	if (tmp_root[0] == '\0') {
		if (tu_tmpdir(tmp_root, "sig") < 0)
			exit(1);
		atexit(rm_tmp_root);
	}
	return tu_path(tmp_root, name);
}

/* Run a shell command; its exit status, or -1 if it did not exit. */
__attribute__((format(printf, 1, 2))) static int run(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int write_file(const char *path, const void *data, size_t len)
{
	FILE *fp = fopen(path, "wb");
	int ok;

	if (fp == NULL)
		return -1;
	ok = fwrite(data, 1, len, fp) == len;
	return fclose(fp) == 0 && ok ? 0 : -1;
}

static size_t read_file(const char *path, void *buf, size_t cap)
{
	FILE *fp = fopen(path, "rb");
	size_t n;

	if (fp == NULL)
		return 0;
	n = fread(buf, 1, cap, fp);
	fclose(fp);
	return n;
}

static mode_t file_mode(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_mode & 07777 : (mode_t)-1;
}

static void test_keygen_files(void)
{
	char dir[512], path[600];
	const char *names[] = { "signing.pem", "signing.pub.pem", "transport.pem",
				"transport.pub.pem" };
	const mode_t modes[] = { 0600, 0644, 0600, 0644 };
	char head[64] = "";
	int count = 0;
	FILE *ls;

	snprintf(dir, sizeof(dir), "%s", tmp_path("keygen"));
	CHECK_OK(sig_keygen_dir(dir));
	CHECK(file_mode(dir) == 0700);
	for (int i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		CHECK(file_mode(path) == modes[i]);
	}
	/* Nothing else is left behind: the temp files were all renamed away. */
	snprintf(path, sizeof(path), "ls -A %s", dir);
	REQUIRE((ls = popen(path, "r")) != NULL);
	while (fgets(path, sizeof(path), ls) != NULL)
		count++;
	pclose(ls);
	CHECK(count == 4);
	/* Unencrypted PKCS#8, the form `openssl genpkey` writes. */
	snprintf(path, sizeof(path), "%s/signing.pem", dir);
	read_file(path, head, sizeof(head) - 1);
	CHECK(strncmp(head, "-----BEGIN PRIVATE KEY-----\n", 28) == 0);
}

static void test_openssl_reads_keys(void)
{
	char dir[512];

	snprintf(dir, sizeof(dir), "%s", tmp_path("pkey"));
	REQUIRE(sig_keygen_dir(dir) == 0);
	CHECK(run("openssl pkey -in %s/signing.pem -noout", dir) == 0);
	CHECK(run("openssl pkey -pubin -in %s/signing.pub.pem -noout", dir) == 0);
	CHECK(run("openssl pkey -in %s/transport.pem -noout", dir) == 0);
	CHECK(run("openssl pkey -pubin -in %s/transport.pub.pem -noout", dir) == 0);
	/* and they are the key types the contract promises */
	CHECK(run("openssl pkey -in %s/signing.pem -text -noout | grep -q '^ED25519 Private-Key'",
		  dir) == 0);
	CHECK(run("openssl pkey -in %s/transport.pem -text -noout | grep -q '^X25519 Private-Key'",
		  dir) == 0);
}

static void test_openssl_verifies(void)
{
	char dir[512], msg_path[600], sig_path[600], path[600];
	struct sig_key *key = NULL;
	uint8_t sig[SIG_SIGNATURE_LEN], theirs[SIG_SIGNATURE_LEN + 1];
	const char *tbs = SIG_CTX_TREE_HEAD MSG;

	snprintf(dir, sizeof(dir), "%s", tmp_path("pkeyutl"));
	snprintf(msg_path, sizeof(msg_path), "%s/msg", dir);
	snprintf(sig_path, sizeof(sig_path), "%s/sig", dir);
	REQUIRE(sig_keygen_dir(dir) == 0);
	snprintf(path, sizeof(path), "%s/signing.pem", dir);
	REQUIRE(sig_key_load_private(path, &key) == 0);
	CHECK_OK(sig_sign(key, SIG_CTX_TREE_HEAD, MSG, strlen(MSG), sig));
	REQUIRE(write_file(msg_path, tbs, strlen(tbs)) == 0);
	REQUIRE(write_file(sig_path, sig, sizeof(sig)) == 0);
	CHECK(run("openssl pkeyutl -verify -pubin -inkey %s/signing.pub.pem -rawin -in %s "
		  "-sigfile %s >/dev/null",
		  dir, msg_path, sig_path) == 0);
	/* Ed25519 is deterministic: openssl signing prefix||msg gives our bytes. */
	CHECK(run("openssl pkeyutl -sign -inkey %s/signing.pem -rawin -in %s -out %s/theirs", dir,
		  msg_path, dir) == 0);
	snprintf(path, sizeof(path), "%s/theirs", dir);
	CHECK(read_file(path, theirs, sizeof(theirs)) == SIG_SIGNATURE_LEN);
	CHECK(memcmp(theirs, sig, SIG_SIGNATURE_LEN) == 0);

	sig[17] ^= 0x01;
	REQUIRE(write_file(sig_path, sig, sizeof(sig)) == 0);
	CHECK(run("openssl pkeyutl -verify -pubin -inkey %s/signing.pub.pem -rawin -in %s "
		  "-sigfile %s >/dev/null 2>&1",
		  dir, msg_path, sig_path) != 0);
	sig_key_destroy(&key);
	CHECK(key == NULL);
}

static void test_verify(void)
{
	char dir[512], other[512], path[600];
	struct sig_key *priv = NULL, *pub = NULL, *raw_pub = NULL, *stranger = NULL;
	uint8_t sig[SIG_SIGNATURE_LEN], bad[SIG_SIGNATURE_LEN + 1], raw[SIG_PUBKEY_LEN];
	char msg[] = MSG;
	size_t len = strlen(msg), big_len = 1 << 20;
	uint8_t *big = malloc(big_len);

	REQUIRE(big != NULL);
	snprintf(dir, sizeof(dir), "%s", tmp_path("verify"));
	snprintf(other, sizeof(other), "%s", tmp_path("verify-other"));
	REQUIRE(sig_keygen_dir(dir) == 0 && sig_keygen_dir(other) == 0);
	snprintf(path, sizeof(path), "%s/signing.pem", dir);
	REQUIRE(sig_key_load_private(path, &priv) == 0);
	snprintf(path, sizeof(path), "%s/signing.pub.pem", dir);
	REQUIRE(sig_key_load_public(path, &pub) == 0);
	snprintf(path, sizeof(path), "%s/signing.pub.pem", other);
	REQUIRE(sig_key_load_public(path, &stranger) == 0);
	REQUIRE(sig_key_raw_public(pub, raw) == 0);
	REQUIRE(sig_key_from_raw_public(raw, &raw_pub) == 0);

	CHECK_OK(sig_sign(priv, SIG_CTX_TREE_HEAD, msg, len, sig));
	CHECK_OK(sig_verify(pub, SIG_CTX_TREE_HEAD, msg, len, sig, sizeof(sig)));
	CHECK_OK(sig_verify(raw_pub, SIG_CTX_TREE_HEAD, msg, len, sig, sizeof(sig)));
	CHECK_OK(sig_verify(priv, SIG_CTX_TREE_HEAD, msg, len, sig, sizeof(sig)));

	memcpy(bad, sig, sizeof(sig));
	bad[40] ^= 0x80;
	CHECK_RC(sig_verify(pub, SIG_CTX_TREE_HEAD, msg, len, bad, sizeof(sig)), MU_E_BADSIG);
	msg[3] ^= 0x01;
	CHECK_RC(sig_verify(pub, SIG_CTX_TREE_HEAD, msg, len, sig, sizeof(sig)), MU_E_BADSIG);
	msg[3] ^= 0x01;
	CHECK_RC(sig_verify(pub, SIG_CTX_TRUST_LIST, msg, len, sig, sizeof(sig)), MU_E_BADSIG);
	CHECK_RC(sig_verify(pub, SIG_CTX_COSIGN, msg, len, sig, sizeof(sig)), MU_E_BADSIG);
	CHECK_RC(sig_verify(stranger, SIG_CTX_TREE_HEAD, msg, len, sig, sizeof(sig)), MU_E_BADSIG);
	/* The prefix is really part of what is signed, not a separate field. */
	CHECK_RC(sig_verify_raw(raw, sizeof(raw), msg, len, sig, sizeof(sig)), MU_E_BADSIG);

	memcpy(bad, sig, sizeof(sig));
	bad[SIG_SIGNATURE_LEN] = 0;
	CHECK_RC(sig_verify(pub, SIG_CTX_TREE_HEAD, msg, len, bad, SIG_SIGNATURE_LEN - 1),
		 MU_E_BADSIG);
	CHECK_RC(sig_verify(pub, SIG_CTX_TREE_HEAD, msg, len, bad, SIG_SIGNATURE_LEN + 1),
		 MU_E_BADSIG);
	CHECK_RC(sig_verify(pub, SIG_CTX_TREE_HEAD, msg, len, bad, 0), MU_E_BADSIG);
	CHECK_RC(sig_verify(pub, SIG_CTX_TREE_HEAD, msg, len, NULL, SIG_SIGNATURE_LEN),
		 MU_E_BADSIG);
	CHECK_RC(sig_verify_raw(raw, 31, msg, len, sig, sizeof(sig)), MU_E_BADSIG);
	CHECK_RC(sig_verify_raw(raw, 33, msg, len, sig, sizeof(sig)), MU_E_BADSIG);
	CHECK_RC(sig_verify_raw(NULL, 32, msg, len, sig, sizeof(sig)), MU_E_BADSIG);
	CHECK_RC(sig_verify_raw(raw, 32, msg, len, sig, 63), MU_E_BADSIG);
	CHECK_RC(sig_verify_raw(raw, 32, msg, len, NULL, 64), MU_E_BADSIG);

	/* empty and large messages */
	CHECK_OK(sig_sign(priv, SIG_CTX_COSIGN, NULL, 0, sig));
	CHECK_OK(sig_verify(pub, SIG_CTX_COSIGN, "", 0, sig, sizeof(sig)));
	REQUIRE(RAND_bytes(big, (int)big_len) == 1);
	CHECK_OK(sig_sign(priv, SIG_CTX_TREE_HEAD, big, big_len, sig));
	CHECK_OK(sig_verify(pub, SIG_CTX_TREE_HEAD, big, big_len, sig, sizeof(sig)));
	big[big_len - 1] ^= 0x01;
	CHECK_RC(sig_verify(pub, SIG_CTX_TREE_HEAD, big, big_len, sig, sizeof(sig)), MU_E_BADSIG);

	/* a public key cannot sign */
	CHECK_RC(sig_sign(pub, SIG_CTX_TREE_HEAD, msg, len, sig), MU_E_CRYPTO);
	CHECK_RC(sig_sign(priv, NULL, msg, len, sig), MU_E_USAGE);

	free(big);
	sig_key_destroy(&priv);
	sig_key_destroy(&pub);
	sig_key_destroy(&raw_pub);
	sig_key_destroy(&stranger);
	sig_key_destroy(&stranger);  /* a second destroy is a no-op */
}

static void test_write_public_pem(void)
{
	char dir[512], path[600];
	struct sig_key *priv = NULL, *pub = NULL;
	uint8_t a[SIG_PUBKEY_LEN], b[SIG_PUBKEY_LEN];

	snprintf(dir, sizeof(dir), "%s", tmp_path("writepub"));
	REQUIRE(sig_keygen_dir(dir) == 0);
	snprintf(path, sizeof(path), "%s/signing.pem", dir);
	REQUIRE(sig_key_load_private(path, &priv) == 0);
	snprintf(path, sizeof(path), "%s/exported.pub.pem", dir);
	CHECK_OK(sig_key_write_public_pem(priv, path));
	CHECK(file_mode(path) == 0644);
	CHECK(run("openssl pkey -pubin -in %s -noout", path) == 0);
	REQUIRE(sig_key_load_public(path, &pub) == 0);
	CHECK_OK(sig_key_raw_public(priv, a));
	CHECK_OK(sig_key_raw_public(pub, b));
	CHECK(memcmp(a, b, sizeof(a)) == 0);
	sig_key_destroy(&priv);
	sig_key_destroy(&pub);
}

static void test_keygen_no_overwrite(void)
{
	char dir[512], path[600];
	struct sig_key *key = NULL;
	uint8_t before[SIG_KEYID_LEN], after[SIG_KEYID_LEN];

	snprintf(dir, sizeof(dir), "%s", tmp_path("nooverwrite"));
	REQUIRE(sig_keygen_dir(dir) == 0);
	snprintf(path, sizeof(path), "%s/signing.pem", dir);
	REQUIRE(sig_key_load_private(path, &key) == 0);
	CHECK_OK(sig_key_id(key, before));
	sig_key_destroy(&key);

	CHECK_RC(sig_keygen_dir(dir), MU_E_EXISTS);
	REQUIRE(sig_key_load_private(path, &key) == 0);
	CHECK_OK(sig_key_id(key, after));
	CHECK(memcmp(before, after, sizeof(before)) == 0);
	sig_key_destroy(&key);

	/* One key left over is enough to refuse, and the gap is not filled. */
	CHECK(unlink(path) == 0);
	snprintf(path, sizeof(path), "%s/signing.pub.pem", dir);
	CHECK(unlink(path) == 0);
	snprintf(path, sizeof(path), "%s/transport.pem", dir);
	CHECK(unlink(path) == 0);
	CHECK_RC(sig_keygen_dir(dir), MU_E_EXISTS);
	snprintf(path, sizeof(path), "%s/signing.pem", dir);
	CHECK(access(path, F_OK) != 0);
}

static void test_bad_key_files(void)
{
	const char *garbage = "-----BEGIN PRIVATE KEY-----\nnot base64 at all!\n";
	char dir[512], path[600];
	struct sig_key *key = NULL;
	uint8_t pub[32], sec[32];
	EVP_PKEY *rsa;
	FILE *fp;

	snprintf(dir, sizeof(dir), "%s", tmp_path("badkeys"));
	REQUIRE(sig_keygen_dir(dir) == 0);

	snprintf(path, sizeof(path), "%s/missing.pem", dir);
	CHECK_RC(sig_key_load_private(path, &key), MU_E_KEY);
	CHECK_RC(sig_key_load_public(path, &key), MU_E_KEY);
	CHECK_RC(sig_transport_load(path, pub, sec), MU_E_KEY);

	snprintf(path, sizeof(path), "%s/garbage.pem", dir);
	REQUIRE(write_file(path, garbage, strlen(garbage)) == 0);
	CHECK_RC(sig_key_load_private(path, &key), MU_E_KEY);
	CHECK_RC(sig_key_load_public(path, &key), MU_E_KEY);

	/* the right file for the wrong use */
	snprintf(path, sizeof(path), "%s/transport.pem", dir);
	CHECK_RC(sig_key_load_private(path, &key), MU_E_KEY);
	snprintf(path, sizeof(path), "%s/transport.pub.pem", dir);
	CHECK_RC(sig_key_load_public(path, &key), MU_E_KEY);
	snprintf(path, sizeof(path), "%s/signing.pem", dir);
	CHECK_RC(sig_transport_load(path, pub, sec), MU_E_KEY);
	CHECK_RC(sig_key_load_public(path, &key), MU_E_KEY);
	snprintf(path, sizeof(path), "%s/signing.pub.pem", dir);
	CHECK_RC(sig_transport_load_public(path, pub), MU_E_KEY);
	CHECK_RC(sig_key_load_private(path, &key), MU_E_KEY);

	snprintf(path, sizeof(path), "%s/rsa.pem", dir);
	REQUIRE((rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024)) != NULL);
	REQUIRE((fp = fopen(path, "w")) != NULL);
	CHECK(PEM_write_PrivateKey(fp, rsa, NULL, NULL, 0, NULL, NULL) == 1);
	fclose(fp);
	EVP_PKEY_free(rsa);
	CHECK_RC(sig_key_load_private(path, &key), MU_E_KEY);
	CHECK(key == NULL);
}

static void test_transport_keys(void)
{
	char dir[512], path[600];
	uint8_t pub[32], sec[32], pub2[32], derived[32];
	size_t len = sizeof(derived);
	EVP_PKEY *pkey;

	snprintf(dir, sizeof(dir), "%s", tmp_path("transport"));
	REQUIRE(sig_keygen_dir(dir) == 0);
	snprintf(path, sizeof(path), "%s/transport.pem", dir);
	REQUIRE(sig_transport_load(path, pub, sec) == 0);
	snprintf(path, sizeof(path), "%s/transport.pub.pem", dir);
	REQUIRE(sig_transport_load_public(path, pub2) == 0);
	CHECK(memcmp(pub, pub2, 32) == 0);

	/* The public half is X25519(secret, base point), as CURVE expects. */
	pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, sec, sizeof(sec));
	OPENSSL_cleanse(sec, sizeof(sec));
	REQUIRE(pkey != NULL);
	CHECK(EVP_PKEY_get_raw_public_key(pkey, derived, &len) == 1 && len == 32);
	CHECK(memcmp(derived, pub, 32) == 0);
	EVP_PKEY_free(pkey);
}

static void test_key_id(void)
{
	char dir[512], path[600], hex[65];
	struct sig_key *priv = NULL, *pub = NULL;
	uint8_t raw[SIG_PUBKEY_LEN], id[SIG_KEYID_LEN], id2[SIG_KEYID_LEN], want[32];

	/* FIPS 180-2 example, so sig_sha256 itself is pinned to SHA-256 */
	sig_sha256("abc", 3, want);
	sig_hex(want, 32, hex);
	CHECK_STREQ(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	sig_sha256(NULL, 0, want);
	sig_hex(want, 32, hex);
	CHECK_STREQ(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

	snprintf(dir, sizeof(dir), "%s", tmp_path("keyid"));
	REQUIRE(sig_keygen_dir(dir) == 0);
	snprintf(path, sizeof(path), "%s/signing.pem", dir);
	REQUIRE(sig_key_load_private(path, &priv) == 0);
	snprintf(path, sizeof(path), "%s/signing.pub.pem", dir);
	REQUIRE(sig_key_load_public(path, &pub) == 0);
	CHECK_OK(sig_key_raw_public(pub, raw));
	CHECK_OK(sig_key_id(pub, id));
	CHECK_OK(sig_key_id(priv, id2));
	sig_sha256(raw, sizeof(raw), want);
	CHECK(memcmp(id, want, 32) == 0);
	CHECK(memcmp(id2, want, 32) == 0);
	/* and the raw bytes are the last 32 of the SubjectPublicKeyInfo DER */
	sig_hex(raw, sizeof(raw), hex);
	CHECK(run("openssl pkey -pubin -in %s -outform DER | tail -c 32 | od -An -tx1 | "
		  "tr -d ' \\n' | grep -qx %s",
		  path, hex) == 0);
	sig_key_destroy(&priv);
	sig_key_destroy(&pub);
}

static void test_hex(void)
{
	uint8_t data[37], back[37], three[3];
	char hex[2 * sizeof(data) + 1];

	REQUIRE(RAND_bytes(data, sizeof(data)) == 1);
	sig_hex(data, sizeof(data), hex);
	CHECK(strlen(hex) == 2 * sizeof(data));
	CHECK(strspn(hex, "0123456789abcdef") == 2 * sizeof(data));
	CHECK_OK(sig_unhex(hex, back, sizeof(back)));
	CHECK(memcmp(data, back, sizeof(data)) == 0);

	sig_hex((const uint8_t *)"\x00\xff\x1a", 3, hex);
	CHECK_STREQ(hex, "00ff1a");
	CHECK_OK(sig_unhex("00FF1a", three, 3));
	CHECK(memcmp(three, "\x00\xff\x1a", 3) == 0);
	sig_hex(data, 0, hex);
	CHECK_STREQ(hex, "");
	CHECK_OK(sig_unhex("", three, 0));

	memcpy(three, "xyz", 3);
	CHECK_RC(sig_unhex("00ff1", three, 3), MU_E_USAGE);
	CHECK_RC(sig_unhex("00ff1a2b", three, 3), MU_E_USAGE);
	CHECK_RC(sig_unhex("00ff", three, 3), MU_E_USAGE);
	CHECK_RC(sig_unhex("00fg1a", three, 3), MU_E_USAGE);
	CHECK_RC(sig_unhex("00 f1a", three, 3), MU_E_USAGE);
	CHECK_RC(sig_unhex("0x001a", three, 3), MU_E_USAGE);
	CHECK_RC(sig_unhex(NULL, three, 3), MU_E_USAGE);
	CHECK(memcmp(three, "xyz", 3) == 0);  /* untouched on failure */
}

/* Hex string field `name` of obj decoded into a new buffer; NULL if bad. */
static uint8_t *json_hex(json_t *obj, const char *name, size_t *len)
{
	const char *hex = json_string_value(json_object_get(obj, name));
	uint8_t *buf;

	if (hex == NULL || strlen(hex) % 2 != 0)
		return NULL;
	*len = strlen(hex) / 2;
	if ((buf = malloc(*len + 1)) == NULL || sig_unhex(hex, buf, *len) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static void test_wycheproof(void)
{
	json_error_t jerr;
	json_t *root = json_load_file(MU_TEST_DATA "/vectors/wycheproof_ed25519_test.json", 0, &jerr);
	json_t *group, *tc;
	size_t gi, ti, checked = 0, valid = 0;

	if (root == NULL)
		fprintf(stderr, "wycheproof: %s line %d: %s\n", jerr.source, jerr.line, jerr.text);
	REQUIRE(root != NULL);
	json_array_foreach(json_object_get(root, "testGroups"), gi, group) {
		size_t pub_len = 0;
		uint8_t *pub = json_hex(json_object_get(group, "publicKey"), "pk", &pub_len);

		CHECK(pub != NULL && pub_len == SIG_PUBKEY_LEN);
		json_array_foreach(json_object_get(group, "tests"), ti, tc) {
			const char *result = json_string_value(json_object_get(tc, "result"));
			size_t msg_len = 0, sig_len = 0;
			uint8_t *msg = json_hex(tc, "msg", &msg_len);
			uint8_t *sig = json_hex(tc, "sig", &sig_len);
			int rc;

			if (pub == NULL || msg == NULL || sig == NULL || result == NULL) {
				fprintf(stderr, "wycheproof tcId %lld: bad vector\n",
					(long long)json_integer_value(json_object_get(tc, "tcId")));
				check_failures++;
			} else {
				rc = sig_verify_raw(pub, pub_len, msg, msg_len, sig, sig_len);
				/* "acceptable" leaves the verdict to the implementation */
				if (strcmp(result, "acceptable") != 0 &&
				    rc != (strcmp(result, "valid") == 0 ? 0 : MU_E_BADSIG)) {
					fprintf(stderr, "wycheproof tcId %lld (%s): expected %s, got %s\n",
						(long long)json_integer_value(json_object_get(tc, "tcId")),
						json_string_value(json_object_get(tc, "comment")),
						result, mu_strerror(rc));
					check_failures++;
				}
				checked++;
				valid += rc == 0;
			}
			free(msg);
			free(sig);
		}
		free(pub);
	}
	printf("wycheproof: %zu vectors checked, %zu valid\n", checked, valid);
	CHECK(checked == (size_t)json_integer_value(json_object_get(root, "numberOfTests")));
	CHECK(checked == 151);
	json_decref(root);
}

CHECK_TESTS = {
	{ "keygen files", test_keygen_files },
	{ "openssl reads keys", test_openssl_reads_keys },
	{ "openssl verifies", test_openssl_verifies },
	{ "verify", test_verify },
	{ "write public pem", test_write_public_pem },
	{ "keygen no overwrite", test_keygen_no_overwrite },
	{ "bad key files", test_bad_key_files },
	{ "transport keys", test_transport_keys },
	{ "key id", test_key_id },
	{ "hex", test_hex },
	{ "wycheproof", test_wycheproof },
	{ NULL, NULL },
};
