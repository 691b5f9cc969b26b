/*
 * musubid.c - the musubi node: arguments, signals, run, clean up.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "musubi_config.h"
#include "mu_err.h"
#include "node.h"

static struct node node;

static const char usage[] =
	"usage: musubid --config FILE\n"
	"       musubid --dir DATADIR --listen ENDPOINT [--peer ENDPOINT|MEMBER]...\n"
	"               [--pub ENDPOINT] [--replicate PATTERN]... [--anonymous yes|no]\n"
	"               [--sync-interval-ms N] [--window N] [--log-level LEVEL]\n"
	"               [--metrics HOST:PORT] [--map-max SIZE] [--max-queries N]\n"
	"               [--max-connections N] [--query-memory SIZE]\n\n"
	"Run a musubi node: serve this municipality's signed logs and replicate other\n"
	"members' logs over ZeroMQ (CURVE-encrypted, members checked against the trust\n"
	"list). Flags override the config file; deploy/musubid.conf explains each setting.\n\n"
	"  --config FILE          settings file (key = value)\n"
	"  --dir DATADIR          the data directory made by 'musubi init'\n"
	"  --listen ENDPOINT      where requests arrive, e.g. tcp://127.0.0.1:7101\n"
	"  --pub ENDPOINT         where announcements go out (default: listen port + 1)\n"
	"  --peer ENDPOINT|MEMBER a peer to sync with (repeat)\n"
	"  --replicate PATTERN    replicate datasets matching PATTERN, e.g. '011002/*' or\n"
	"                         '*/evacuation_sites' (repeat; default: all)\n"
	"  --anonymous yes|no     let clients outside the federation read public data\n"
	"  --sync-interval-ms N   how often to ask peers for their heads (default 5000)\n"
	"  --window N             entry requests in flight per dataset (default 16)\n"
	"  --log-level LEVEL      error, warn, info (default) or debug\n"
	"  --metrics HOST:PORT    serve Prometheus /metrics and /healthz over HTTP there,\n"
	"                         e.g. 127.0.0.1:9108 (no key: keep it on loopback)\n"
	"  --map-max SIZE         the store never grows past SIZE (e.g. 64G; default 1T)\n"
	"  --max-queries N        federated queries running or waiting at once (default 4)\n"
	"  --max-connections N    peers and clients connected at once (default 256)\n"
	"  --query-memory SIZE    SQLite memory for all queries the node runs or serves\n"
	"                         (default 512M; at least 8M)\n";

static void on_signal(int sig)
{
	(void)sig;
	node.stop = 1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "dir", required_argument, NULL, 'd' },
		{ "listen", required_argument, NULL, 'l' },
		{ "pub", required_argument, NULL, 'p' },
		{ "peer", required_argument, NULL, 'P' },
		{ "replicate", required_argument, NULL, 'r' },
		{ "anonymous", required_argument, NULL, 'a' },
		{ "sync-interval-ms", required_argument, NULL, 's' },
		{ "window", required_argument, NULL, 'w' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "metrics", required_argument, NULL, 'm' },
		{ "map-max", required_argument, NULL, 'M' },
		{ "max-queries", required_argument, NULL, 'Q' },
		{ "max-connections", required_argument, NULL, 'C' },
		{ "query-memory", required_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const keys[128] = {
		['d'] = "dir", ['l'] = "listen", ['p'] = "pub", ['P'] = "peer",
		['r'] = "replicate", ['a'] = "anonymous", ['s'] = "sync-interval-ms",
		['w'] = "window", ['L'] = "log-level", ['m'] = "metrics",
		['M'] = "map-max", ['Q'] = "max-queries", ['C'] = "max-connections",
		['q'] = "query-memory",
	};
	struct node_config cfg;
	struct sigaction sa;
	char why[512];
	int c, rc;

	config_defaults(&cfg);
	/* The config file first, so that flags override it. */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(usage, stdout);
			config_fini(&cfg);
			return 0;
		}
		if (strcmp(argv[i], "--version") == 0) {
			printf("musubid %s (protocol %d)\n", MUSUBI_VERSION, WIRE_VERSION);
			config_fini(&cfg);
			return 0;
		}
		const char *file = NULL;
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			file = argv[i + 1];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			file = argv[i] + 9;
		if (file != NULL && config_load(&cfg, file, why, sizeof(why)) < 0) {
			fprintf(stderr, "musubid: %s\n", why);
			goto bad_usage;
		}
	}
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'c')
			continue;
		if (c < 0 || c >= 128 || keys[c] == NULL) {
			fputs(usage, stderr);
			goto bad_usage;
		}
		if (config_set(&cfg, keys[c], optarg, why, sizeof(why)) < 0) {
			fprintf(stderr, "musubid: %s\n", why);
			goto bad_usage;
		}
	}
	if (optind != argc || config_finish(&cfg, why, sizeof(why)) < 0) {
		fprintf(stderr, "musubid: %s\n", optind != argc ? "unexpected argument" : why);
		fputs(usage, stderr);
		goto bad_usage;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* A file-size limit makes store writes fail with EFBIG (logged, reads
	 * go on) instead of killing the node. */
	signal(SIGXFSZ, SIG_IGN);
	if ((rc = node_start(&node, &cfg)) < 0) {
		node_stop(&node);
		config_fini(&cfg);
		return 1;
	}
	rc = node_run(&node);
	node_stop(&node);
	config_fini(&cfg);
	return rc < 0 ? 1 : 0;
bad_usage:
	config_fini(&cfg);
	return 2;
}
