/* util.c - see util.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


#include "merkle.h"
#include "util.h"

#define KS_SLOT 24

void keyset_init(struct keyset *s)
{
	memset(s, 0, sizeof(*s));
}

void keyset_fini(struct keyset *s)
{
	free(s->slots);
	memset(s, 0, sizeof(*s));
}

static const uint8_t zero16[16];

static size_t ks_probe(const uint8_t *slots, size_t cap, const uint8_t digest[16])
{
	uint64_t h;

	memcpy(&h, digest, sizeof(h));   /* the digest is already uniform */
	for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1)) {
		const uint8_t *slot = slots + i * KS_SLOT;
		if (memcmp(slot, digest, 16) == 0 || memcmp(slot, zero16, 16) == 0)
			return i;
	}
}

static int ks_grow(struct keyset *s)
{
	size_t cap = s->cap ? s->cap * 2 : 1024;
	uint8_t *slots = calloc(cap, KS_SLOT);

	if (slots == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < s->cap; i++) {
		const uint8_t *old = s->slots + i * KS_SLOT;
		if (memcmp(old, zero16, 16) != 0)
			memcpy(slots + ks_probe(slots, cap, old) * KS_SLOT, old, KS_SLOT);
	}
	free(s->slots);
	s->slots = slots;
	s->cap = cap;
	return 0;
}

int keyset_add(struct keyset *s, const uint8_t digest[16], uint64_t tag, uint64_t *old_tag)
{
	uint8_t *slot;
	int rc;

	if (memcmp(digest, zero16, 16) == 0) {
		if (s->has_zero) {
			*old_tag = s->zero_tag;
			return 0;
		}
		s->has_zero = 1;
		s->zero_tag = tag;
		return 1;
	}
	if ((s->n + 1) * 4 > s->cap * 3 && (rc = ks_grow(s)) < 0)
		return rc;
	slot = s->slots + ks_probe(s->slots, s->cap, digest) * KS_SLOT;
	if (memcmp(slot, digest, 16) == 0) {
		memcpy(old_tag, slot + 16, 8);
		return 0;
	}
	memcpy(slot, digest, 16);
	memcpy(slot + 16, &tag, 8);
	s->n++;
	return 1;
}

int keyset_has(const struct keyset *s, const uint8_t digest[16])
{
	if (memcmp(digest, zero16, 16) == 0)
		return s->has_zero;
	if (s->cap == 0)
		return 0;
	return memcmp(s->slots + ks_probe(s->slots, s->cap, digest) * KS_SLOT, digest, 16) == 0;
}

int keyset_put(struct keyset *s, const uint8_t digest[16], uint64_t tag)
{
	uint64_t old;
	int rc = keyset_add(s, digest, tag, &old);

	if (rc != 0)
		return rc < 0 ? rc : 0;
	if (memcmp(digest, zero16, 16) == 0)
		s->zero_tag = tag;
	else
		memcpy(s->slots + ks_probe(s->slots, s->cap, digest) * KS_SLOT + 16, &tag, 8);
	return 0;
}

int keyset_get(const struct keyset *s, const uint8_t digest[16], uint64_t *tag)
{
	const uint8_t *slot;

	if (memcmp(digest, zero16, 16) == 0) {
		*tag = s->zero_tag;
		return s->has_zero;
	}
	if (s->cap == 0)
		return 0;
	slot = s->slots + ks_probe(s->slots, s->cap, digest) * KS_SLOT;
	if (memcmp(slot, digest, 16) != 0)
		return 0;
	memcpy(tag, slot + 16, 8);
	return 1;
}

void keyset_digest(const void *key, size_t len, uint8_t digest[16])
{
	uint8_t full[32];

	merkle_sha256(key, len, full);
	memcpy(digest, full, 16);
}

int64_t mu_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t mu_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void mu_format_time(int64_t us, char *buf, size_t cap)
{
	time_t secs = (time_t)(us / 1000000);
	struct tm tm;

	gmtime_r(&secs, &tm);
	strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int mu_valid_member(const char *s)
{
	size_t n = strlen(s);

	if (n < 2 || n > 32)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '_' || s[i] == '-'))
			return 0;
	return 1;
}

int mu_valid_dataset_name(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

void progress_init(struct progress *p, const char *label, uint64_t total)
{
	memset(p, 0, sizeof(*p));
	p->label = label;
	p->total = total;
	p->tty = isatty(STDERR_FILENO);
}

void progress_update(struct progress *p, uint64_t done)
{
	int64_t now;
	int width = 30, filled;

	if (!p->tty || p->total == 0)
		return;
	now = mu_mono_us();
	if (p->drawn && now - p->last_us < 100000)
		return;
	p->last_us = now;
	p->drawn = 1;
	if (done > p->total)
		done = p->total;
	filled = (int)(done * (uint64_t)width / p->total);
	fprintf(stderr, "\r%-10s [", p->label);
	for (int i = 0; i < width; i++)
		fputc(i < filled ? '#' : '.', stderr);
	fprintf(stderr, "] %3d%%", (int)(done * 100 / p->total));
	fflush(stderr);
}

void progress_done(struct progress *p)
{
	if (!p->tty || !p->drawn)
		return;
	p->drawn = 0;   /* bypass the rate limit for the final 100% */
	progress_update(p, p->total);
	fputc('\n', stderr);
}
