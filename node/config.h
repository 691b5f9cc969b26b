/*
 * config.h - musubid's settings, from a file and from flags.
 *
 * The file has one "key = value" a line; '#' starts a comment; peer and
 * replicate may repeat. Flags override the file; repeated flags add to
 * the lists. deploy/musubid.conf explains every key.
 */
#ifndef MU_CONFIG_H
#define MU_CONFIG_H

#include <stddef.h>

struct node_config {
	char *dir;             /* data directory (required) */
	char *listen;          /* ROUTER endpoint, e.g. tcp://127.0.0.1:7101 (required) */
	char *pub;             /* PUB endpoint; default: the listen port + 1 */
	char **peers;          /* endpoints or member ids */
	size_t npeers;
	char **replicate;      /* fnmatch patterns over "<member>/<name>"; none: all */
	size_t nreplicate;
	int allow_anonymous;   /* anonymous clients may read public datasets */
	int sync_interval_ms;  /* anti-entropy period */
	int window;            /* entry requests in flight per dataset */
	unsigned batch_bytes;  /* byte budget of one entries request */
	int request_timeout_ms;
	int log_level;
	char *metrics;         /* host:port of the metrics HTTP listener, or NULL */
	size_t map_max;        /* the store's largest map in bytes; 0: STORE_MAP_MAX */
	int max_queries;       /* federated queries running or waiting at once */
	size_t query_memory;   /* SQLite's heap across every query the node runs or serves */
	int max_connections;   /* peers and clients connected at once */
};

void config_defaults(struct node_config *c);
/* Read FILE into c. Returns 0, or -errno / MU_E_USAGE with why set to
 * "FILE:LINE: ..." naming the bad line. */
int config_load(struct node_config *c, const char *path, char *why, size_t whylen);
/* Set one key (as in the file). MU_E_USAGE with why on a bad key/value. */
int config_set(struct node_config *c, const char *key, const char *value, char *why, size_t whylen);
/* Fill derived values and check required ones. */
int config_finish(struct node_config *c, char *why, size_t whylen);
void config_fini(struct node_config *c);

#endif
