/* config.c - see config.h. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "mu_err.h"

void config_defaults(struct node_config *c)
{
	memset(c, 0, sizeof(*c));
	c->allow_anonymous = 1;
	c->sync_interval_ms = 5000;
	/* Enough requests that replies keep arriving while a fetched batch
	 * commits: 8 left the node waiting on its peer (tests/bench). */
	c->window = 16;
	c->batch_bytes = 1u << 20;
	c->request_timeout_ms = 10000;
	c->log_level = LOG_INFO;
	c->max_queries = 4;
	c->query_memory = (size_t)512 << 20;
	c->max_connections = 256;
}

static int set_str(char **dst, const char *v)
{
	char *s = strdup(v);

	if (s == NULL)
		return -ENOMEM;
	free(*dst);
	*dst = s;
	return 0;
}

static int add_str(char ***list, size_t *n, const char *v)
{
	char **grown = realloc(*list, (*n + 1) * sizeof(**list));

	if (grown == NULL)
		return -ENOMEM;
	*list = grown;
	if ((grown[*n] = strdup(v)) == NULL)
		return -ENOMEM;
	(*n)++;
	return 0;
}

static int parse_int(const char *v, long lo, long hi, long *out)
{
	char *end;
	long x;

	errno = 0;
	x = strtol(v, &end, 10);
	if (errno || end == v || *end != '\0' || x < lo || x > hi)
		return -1;
	*out = x;
	return 0;
}

/* A size in bytes, with an optional K, M, G or T suffix (powers of 1024). */
static int parse_size(const char *v, size_t *out)
{
	char *end;
	unsigned long long x;
	unsigned shift = 0;

	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno || end == v || v[0] == '-')
		return -1;
	switch (*end) {
	case 'K': case 'k': shift = 10; end++; break;
	case 'M': case 'm': shift = 20; end++; break;
	case 'G': case 'g': shift = 30; end++; break;
	case 'T': case 't': shift = 40; end++; break;
	default: break;
	}
	if (*end != '\0' || x > (SIZE_MAX >> shift))
		return -1;
	*out = (size_t)x << shift;
	return 0;
}

static int parse_bool(const char *v)
{
	if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "on"))
		return 1;
	if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "off"))
		return 0;
	return -1;
}

int config_set(struct node_config *c, const char *key, const char *value, char *why, size_t whylen)
{
	long x;
	int b;

	if (!strcmp(key, "dir"))
		return set_str(&c->dir, value);
	if (!strcmp(key, "listen"))
		return set_str(&c->listen, value);
	if (!strcmp(key, "pub"))
		return set_str(&c->pub, value);
	if (!strcmp(key, "metrics"))
		return set_str(&c->metrics, value);
	if (!strcmp(key, "peer"))
		return add_str(&c->peers, &c->npeers, value);
	if (!strcmp(key, "replicate"))
		return add_str(&c->replicate, &c->nreplicate, value);
	if (!strcmp(key, "anonymous")) {
		if ((b = parse_bool(value)) < 0)
			goto bad;
		c->allow_anonymous = b;
		return 0;
	}
	if (!strcmp(key, "sync-interval-ms")) {
		if (parse_int(value, 50, 3600000, &x) < 0)
			goto bad;
		c->sync_interval_ms = (int)x;
		return 0;
	}
	if (!strcmp(key, "window")) {
		if (parse_int(value, 1, 256, &x) < 0)
			goto bad;
		c->window = (int)x;
		return 0;
	}
	if (!strcmp(key, "batch-bytes")) {
		if (parse_int(value, 4096, 8 << 20, &x) < 0)
			goto bad;
		c->batch_bytes = (unsigned)x;
		return 0;
	}
	if (!strcmp(key, "request-timeout-ms")) {
		if (parse_int(value, 100, 600000, &x) < 0)
			goto bad;
		c->request_timeout_ms = (int)x;
		return 0;
	}
	if (!strcmp(key, "map-max")) {
		size_t sz;
		/* Below 1 MiB a store cannot hold its own catalogue. */
		if (parse_size(value, &sz) < 0 || (sz != 0 && sz < (1u << 20)))
			goto bad;
		c->map_max = sz;
		return 0;
	}
	if (!strcmp(key, "query-memory")) {
		size_t sz;
		if (parse_size(value, &sz) < 0 || sz < (8u << 20))
			goto bad;
		c->query_memory = sz;
		return 0;
	}
	if (!strcmp(key, "max-queries")) {
		if (parse_int(value, 1, 1024, &x) < 0)
			goto bad;
		c->max_queries = (int)x;
		return 0;
	}
	if (!strcmp(key, "max-connections")) {
		if (parse_int(value, 1, 65536, &x) < 0)
			goto bad;
		c->max_connections = (int)x;
		return 0;
	}
	if (!strcmp(key, "log-level")) {
		if ((c->log_level = log_parse_level(value)) < 0)
			goto bad;
		return 0;
	}
	snprintf(why, whylen, "unknown setting \"%s\" (see deploy/musubid.conf)", key);
	return MU_E_USAGE;
bad:
	snprintf(why, whylen, "bad value \"%s\" for %s (see deploy/musubid.conf)", value, key);
	return MU_E_USAGE;
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

int config_load(struct node_config *c, const char *path, char *why, size_t whylen)
{
	FILE *f = fopen(path, "r");
	char line[1024], inner[512];
	int lineno = 0, rc = 0;

	if (f == NULL) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *s = trim(line), *eq;
		lineno++;
		if (*s == '\0' || *s == '#')
			continue;
		if ((eq = strchr(s, '=')) == NULL) {
			snprintf(why, whylen, "%s:%d: expected \"key = value\"", path, lineno);
			rc = MU_E_USAGE;
			break;
		}
		*eq = '\0';
		if ((rc = config_set(c, trim(s), trim(eq + 1), inner, sizeof(inner))) < 0) {
			snprintf(why, whylen, "%s:%d: %s", path, lineno, inner);
			break;
		}
	}
	fclose(f);
	return rc;
}

int config_finish(struct node_config *c, char *why, size_t whylen)
{
	if (c->dir == NULL || c->listen == NULL) {
		snprintf(why, whylen, "dir and listen are required (--dir DATADIR --listen ENDPOINT, "
			 "or a --config file)");
		return MU_E_USAGE;
	}
	if (c->pub == NULL) {
		/* Default: the port after the request port, same host. */
		const char *colon = strrchr(c->listen, ':');
		long port;
		char buf[512];
		if (colon == NULL || parse_int(colon + 1, 1, 65534, &port) < 0) {
			snprintf(why, whylen, "cannot derive a pub endpoint from %s: set pub", c->listen);
			return MU_E_USAGE;
		}
		snprintf(buf, sizeof(buf), "%.*s:%ld", (int)(colon - c->listen), c->listen, port + 1);
		if (set_str(&c->pub, buf) < 0)
			return -ENOMEM;
	}
	return 0;
}

void config_fini(struct node_config *c)
{
	free(c->dir);
	free(c->listen);
	free(c->pub);
	free(c->metrics);
	for (size_t i = 0; i < c->npeers; i++)
		free(c->peers[i]);
	free(c->peers);
	for (size_t i = 0; i < c->nreplicate; i++)
		free(c->replicate[i]);
	free(c->replicate);
	memset(c, 0, sizeof(*c));
}
