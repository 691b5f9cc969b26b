/*
 * redirect_shim.c - an LD_PRELOAD library that sends a process's outgoing
 * TCP connections to other addresses, for tests that put a fault proxy or
 * a network namespace on each link between nodes.
 *
 * A node reaches a peer at the endpoint the trust list names, and its
 * announcements at the endpoint the peer's HELLO names: one address per
 * member, the same for every node. To damage the link from A to B without
 * touching the link from C to B, A alone must dial something else: this
 * shim rewrites connect() in A's process only, by a table in MU_REDIRECT:
 *   MU_REDIRECT="127.0.0.1:7000=127.0.0.1:9000 127.0.0.1:7001=10.7.0.2:7001"
 * (IPv4 only, separated by spaces or commas). A connect to an address not
 * in the table goes where it was meant to.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_RULES 64

struct rule {
	struct sockaddr_in from, to;
};

static struct rule rules[MAX_RULES];
static int nrules;
static int (*real_connect)(int, const struct sockaddr *, socklen_t);

static int parse_addr(const char *s, struct sockaddr_in *a)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	char *end;
	long port;

	if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port <= 0 || port > 65535)
		return -1;
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_port = htons((unsigned short)port);
	return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

/* Runs once when the library loads, before any thread of the program:
 * the table is read-only afterwards, so connect() needs no lock. */
__attribute__((constructor)) static void redirect_init(void)
{
	const char *env = getenv("MU_REDIRECT");
	char *copy, *tok, *save = NULL;

	real_connect = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
	if (env == NULL || (copy = strdup(env)) == NULL)
		return;
	for (tok = strtok_r(copy, " ,", &save); tok != NULL && nrules < MAX_RULES;
	     tok = strtok_r(NULL, " ,", &save)) {
		char *eq = strchr(tok, '=');
		if (eq == NULL)
			goto bad;
		*eq = '\0';
		if (parse_addr(tok, &rules[nrules].from) < 0 || parse_addr(eq + 1, &rules[nrules].to) < 0)
			goto bad;
		nrules++;
		continue;
bad:
		fprintf(stderr, "redirect_shim: ignoring bad rule in MU_REDIRECT: %s\n", tok);
	}
	free(copy);
}

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	if (real_connect == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (addr != NULL && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
		for (int i = 0; i < nrules; i++)
			if (rules[i].from.sin_port == in->sin_port &&
			    rules[i].from.sin_addr.s_addr == in->sin_addr.s_addr)
				return real_connect(fd, (const struct sockaddr *)&rules[i].to,
						    sizeof(rules[i].to));
	}
	return real_connect(fd, addr, len);
}
