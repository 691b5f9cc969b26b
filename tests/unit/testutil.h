/*
 * testutil.h - setup the unit tests share: temporary directories, signing
 * keys, a node (store + key) in a fresh directory, paths of bundled data
 * files, small files under a directory, publishing with the errors shown,
 * and trust-list members.
 *
 * Contract:
 * - Nothing here asserts or exits: each function returns 0 (or a pointer)
 *   on success and a negative code (mu_err.h or -errno) or NULL on
 *   failure, having said on stderr what failed. The test decides whether
 *   that is a CHECK or a REQUIRE (check.h stays the only harness).
 * - Returned paths live in static buffers that rotate: the last
 *   TU_NPATHS returned by tu_data() (and, separately, by tu_path() and
 *   tu_write()) stay valid. Not thread-safe.
 * - Directories are made under /tmp as mu-<tag>-XXXXXX; tu_rmrf() removes
 *   what tu_tmpdir() made and empties the name, so that a second call is
 *   a no-op.
 */
#ifndef MU_TESTUTIL_H
#define MU_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

struct publish_opts;
struct publish_result;
struct sig_key;
struct store;
struct trust_member;
struct trust_signed;

#define TU_DIR_MAX 256
#define TU_NPATHS 4

/* Make a fresh directory /tmp/mu-<tag>-XXXXXX, its name into dir. */
int tu_tmpdir(char dir[TU_DIR_MAX], const char *tag);

/* Remove the tree dir names (nothing when dir is ""), then empty dir. */
int tu_rmrf(char dir[TU_DIR_MAX]);

/* MU_TEST_DATA/rel: a bundled data file. */
const char *tu_data(const char *rel);

/* dir/name, and the same path after writing text to it (NULL if not). */
const char *tu_path(const char *dir, const char *name);
const char *tu_write(const char *dir, const char *name, const char *text);

/* A whole file, NUL-terminated, in malloc'd memory; its length in *len
 * when len is not NULL. */
char *tu_slurp(const char *path, size_t *len);

/*
 * Key pair directory dir/sub made by sig_keygen_dir, its signing key
 * loaded into *key and, when transport is not NULL, its transport public
 * key into transport.
 */
int tu_key_new(const char *dir, const char *sub, struct sig_key **key, uint8_t transport[32]);

/* n of them, in dir/k0 .. dir/k<n-1>. */
int tu_keys_new(const char *dir, size_t n, struct sig_key **keys, uint8_t (*transport)[32]);

/*
 * A fresh node for member: tu_node_drop() of what dir, *st and *key held
 * (a failure there is returned, but the node is still made), then a new
 * directory (tu_tmpdir with tag), keys in dir/keys, and a store in dir
 * whose meta (tu_node_meta) names member and the key's public half.
 */
int tu_node_new(char dir[TU_DIR_MAX], const char *tag, const char *member, struct store **st,
		struct sig_key **key);

/* Write a node's meta into st: member, and key's public half. */
int tu_node_meta(struct store *st, const char *member, const struct sig_key *key);

/* Close *st, destroy *key, remove dir (tu_rmrf). */
int tu_node_drop(char dir[TU_DIR_MAX], struct store **st, struct sig_key **key);

/* publish_csv, and with MU_VERBOSE set in the environment the kept errors
 * of a failed publish on stderr. */
int tu_publish(struct store *st, const struct sig_key *key, const struct publish_opts *o,
	       struct publish_result *res);

/* A day ago, to the whole second (µs): a base for times in trust lists. */
int64_t tu_day_ago_us(void);

/* Append a member to s's list: id, name, endpoint, key's signing public
 * half and transport, one role; every other field zero. */
struct trust_member *tu_member_add(struct trust_signed *s, const char *id, const char *name,
				   const char *endpoint, const struct sig_key *key,
				   const uint8_t transport[32], const char *role);

#endif
