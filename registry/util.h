/*
 * util.h - small shared pieces: a set of key digests, clocks, name checks,
 * and a progress bar that draws only on a terminal.
 */
#ifndef MU_UTIL_H
#define MU_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * keyset: an open-addressing set of 16-byte digests (truncated SHA-256 of
 * a key), each with a 64-bit tag (the input line where it was first seen).
 * 24 bytes a member plus slack: the only memory a publish needs that grows
 * with the number of rows.
 */
struct keyset {
	uint8_t *slots;   /* cap * 24 bytes; an all-zero digest marks a free slot */
	size_t cap, n;
	int has_zero;     /* the all-zero digest itself is a member */
	uint64_t zero_tag;
};
void keyset_init(struct keyset *s);
void keyset_fini(struct keyset *s);
/* Add digest. Returns 1 if added, 0 if it was there (then *tag is the tag
 * stored with it), or -ENOMEM. */
int keyset_add(struct keyset *s, const uint8_t digest[16], uint64_t tag, uint64_t *old_tag);
int keyset_has(const struct keyset *s, const uint8_t digest[16]);
/* Insert digest or replace its tag. 0 or -ENOMEM. */
int keyset_put(struct keyset *s, const uint8_t digest[16], uint64_t tag);
/* The tag of digest: 1 if present (then *tag is set), 0 if not. */
int keyset_get(const struct keyset *s, const uint8_t digest[16], uint64_t *tag);
/* digest = first 16 bytes of SHA-256(key). */
void keyset_digest(const void *key, size_t len, uint8_t digest[16]);

/* Microseconds since the Unix epoch (CLOCK_REALTIME) and a monotonic clock. */
int64_t mu_now_us(void);
int64_t mu_mono_us(void);
/* "2026-11-25T11:48:19Z" (UTC) into buf of at least 32 bytes. */
void mu_format_time(int64_t us, char *buf, size_t cap);

/* A member id: a 6-digit local government code, or 2..32 of [a-z0-9_-]. */
int mu_valid_member(const char *s);
/* A dataset name: 1..64 of [a-z0-9_]. */
int mu_valid_dataset_name(const char *s);

/* Progress bar on stderr, drawn only when stderr is a terminal (and at most
 * ten times a second). */
struct progress {
	const char *label;
	uint64_t total;
	int tty;
	int64_t last_us;
	int drawn;
};
void progress_init(struct progress *p, const char *label, uint64_t total);
void progress_update(struct progress *p, uint64_t done);
void progress_done(struct progress *p);

#endif
