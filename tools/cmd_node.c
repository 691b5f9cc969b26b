/* cmd_node.c - musubi status --node: a running node's state, over the wire. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "client.h"
#include "mu_err.h"

static const char status_node_usage[] =
	"usage: musubi status --node ENDPOINT [--server-key FILE | --dir DATADIR]\n"
	"                     [--key KEYDIR] [--timeout MS] [--json]\n"
	"                     [--color=auto|always|never]\n\n"
	"Ask a running musubid for its member id, peers (connected, last seen, lag per\n"
	"dataset, errors), datasets with sizes and head times, evidence count, store\n"
	"use, entries received and refused by reason, and queries with their mean time:\n"
	"the figures its /metrics serves (docs/OPERATIONS.md). On a terminal, unless\n"
	"NO_COLOR is set, good figures are green, lag yellow, refusals and evidence red.\n"
	"The node's transport key comes from --server-key (its transport.pub.pem), or\n"
	"from the trust list in --dir DATADIR. --key KEYDIR connects as that member;\n"
	"without it the client is anonymous.\n";

int cli_node_options(int argc, char **argv, struct cli_node *o, const char *usage)
{
	static const struct option opts[] = {
		{ "node", required_argument, NULL, 'n' },
		{ "server-key", required_argument, NULL, 'S' },
		{ "dir", required_argument, NULL, 'd' },
		{ "key", required_argument, NULL, 'k' },
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->timeout_ms = 5000;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'n': o->endpoint = optarg; break;
		case 'S': o->server_key = optarg; break;
		case 'd': o->dir = optarg; break;
		case 'k': o->keydir = optarg; break;
		case 't': o->timeout_ms = atoi(optarg); break;
		case 'j': o->json = 1; break;
		default: fputs(usage, stderr); return -1;
		}
	}
	if (o->endpoint == NULL || optind != argc || o->timeout_ms <= 0) {
		fputs(usage, stderr);
		return -1;
	}
	return 0;
}

int cli_node_connect(const char *cmd, const struct cli_node *o, struct client **c)
{
	uint8_t key[32];
	char why[512];
	int rc;

	if ((rc = client_server_key(o->endpoint, o->server_key, o->dir, key, why, sizeof(why))) < 0) {
		cli_error(cmd, "%s", why);
		return rc;
	}
	if ((rc = client_open(o->endpoint, key, o->keydir, c)) < 0)
		cli_error(cmd, "cannot connect to %s: %s", o->endpoint, mu_strerror(rc));
	return rc;
}

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

static json_int_t num(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

/* "N (mean X ms)" of one kind in the status's latency object. */
static void latency(char *buf, size_t len, json_t *lat, const char *kind)
{
	json_t *o = json_object_get(lat, kind);
	json_int_t n = num(o, "count");
	double sec = json_number_value(json_object_get(o, "seconds"));

	if (n > 0)
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT " answered, mean %.1f ms", n, sec * 1000 / n);
	else
		snprintf(buf, len, "none answered");
}

static void print_status(json_t *st, int color)
{
	struct cli_palette c = cli_palette(color);
	json_t *cnt = json_object_get(st, "counters"), *lat = json_object_get(st, "latency");
	json_int_t refused = num(cnt, "refused_badsig") + num(cnt, "refused_trust") +
			     num(cnt, "refused_root") + num(cnt, "refused_decode") +
			     num(cnt, "refused_proto");
	char ql[64], sl[64];
	json_t *peers = json_object_get(st, "peers"), *dsets = json_object_get(st, "datasets");
	json_int_t evidence = json_integer_value(json_object_get(st, "evidence"));
	size_t i;
	json_t *v;

	printf("member     %s\nsoftware   %s\nlisten     %s (announcements %s)\n", str(st, "member"),
	       str(st, "software"), str(st, "listen"), str(st, "pub"));
	printf("trust list version %" JSON_INTEGER_FORMAT ", up %" JSON_INTEGER_FORMAT " s\n",
	       json_integer_value(json_object_get(st, "trust_version")),
	       json_integer_value(json_object_get(st, "uptime_s")));
	printf("evidence   %s%" JSON_INTEGER_FORMAT "%s\n", evidence ? c.bad : c.ok, evidence, c.off);
	json_array_foreach(json_object_get(st, "held"), i, v)
		printf("held       %s%s%s since %s: no new heads until musubi evidence --clear\n", c.bad,
		       str(v, "dataset"), c.off, str(v, "since"));
	printf("store      %.1f MiB used of a %.0f MiB map\n", num(st, "map_used") / 1048576.0,
	       num(st, "map_size") / 1048576.0);
	printf("received   %" JSON_INTEGER_FORMAT " entries under %" JSON_INTEGER_FORMAT
	       " signed head%s; served %" JSON_INTEGER_FORMAT " entries; %" JSON_INTEGER_FORMAT
	       " requests, %" JSON_INTEGER_FORMAT " denied\n", num(cnt, "entries_received"),
	       num(cnt, "heads_committed"), num(cnt, "heads_committed") == 1 ? "" : "s",
	       num(cnt, "entries_served"), num(cnt, "requests"), num(cnt, "denied"));
	printf("refused    %s%" JSON_INTEGER_FORMAT "%s", refused ? c.bad : c.ok, refused, c.off);
	if (refused)
		printf(" (signature %" JSON_INTEGER_FORMAT ", trust %" JSON_INTEGER_FORMAT ", root %"
		       JSON_INTEGER_FORMAT ", decode %" JSON_INTEGER_FORMAT ", protocol %"
		       JSON_INTEGER_FORMAT ")", num(cnt, "refused_badsig"), num(cnt, "refused_trust"),
		       num(cnt, "refused_root"), num(cnt, "refused_decode"), num(cnt, "refused_proto"));
	latency(ql, sizeof(ql), lat, "query");
	latency(sl, sizeof(sl), lat, "scan");
	printf("\nqueries    %" JSON_INTEGER_FORMAT " (%s); scans %" JSON_INTEGER_FORMAT " (%s)\n\n",
	       num(cnt, "queries"), ql, num(cnt, "scans"), sl);

	static const char *const ph[] = { "peer", "member", "state", "last seen", "lag", "last error" };
	struct cli_table *t = cli_table_new(6, ph);
	json_array_foreach(peers, i, v) {
		char seen[32], lag[64], state[48];
		json_int_t ms = json_integer_value(json_object_get(v, "last_seen_ms")), total = 0;
		const char *k;
		json_t *l;
		json_object_foreach(json_object_get(v, "lag"), k, l)
			total += json_integer_value(l);
		snprintf(seen, sizeof(seen), ms < 0 ? "never" : "%.1f s ago", ms / 1000.0);
		snprintf(lag, sizeof(lag), "%s%" JSON_INTEGER_FORMAT " entries%s", total ? c.warn : c.ok,
			 total, c.off);
		int up = json_is_true(json_object_get(v, "connected"));
		snprintf(state, sizeof(state), "%s%s%s", up ? c.ok : c.bad, up ? "connected" : "unreachable",
			 c.off);
		const char *cells[] = { str(v, "endpoint"), str(v, "member"), state, seen, lag,
					str(v, "last_error") };
		cli_table_add(t, cells);
	}
	if (json_array_size(peers) > 0) {
		cli_table_print(t, stdout);
		printf("\n");
	}
	cli_table_free(&t);

	static const char *const dh[] = { "dataset", "schema", "rows", "entries", "head time", "access" };
	t = cli_table_new(6, dh);
	if (json_array_size(dsets) == 0)
		printf("no datasets yet: publish one with musubi publish --dir DATADIR ...\n");
	json_array_foreach(dsets, i, v) {
		char rows[32], entries[32];
		snprintf(rows, sizeof(rows), "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(v, "rows")));
		snprintf(entries, sizeof(entries), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(json_object_get(v, "entries")));
		const char *cells[] = { str(v, "dataset"), str(v, "schema"), rows, entries,
					str(v, "head_time"),
					json_is_true(json_object_get(v, "members_only")) ? "members" : "public" };
		cli_table_add(t, cells);
	}
	if (json_array_size(dsets) > 0)
		cli_table_print(t, stdout);
	cli_table_free(&t);
}

int cmd_status_node(int argc, char **argv)
{
	struct cli_node o;
	struct client *c = NULL;
	struct wire_msg reply;
	char why[512];
	int rc, ret = EXIT_FAILURE_, color;

	if (cli_wants_help(argc, argv, status_node_usage))
		return EXIT_OK;
	if ((color = cli_color_option(&argc, argv, stdout)) < 0)
		return EXIT_USAGE;
	if (cli_node_options(argc, argv, &o, status_node_usage) < 0)
		return EXIT_USAGE;
	if (cli_node_connect("status", &o, &c) < 0)
		return EXIT_FAILURE_;
	rc = client_call(c, MUSUBI__MSG_TYPE__MSG_STATUS, NULL, o.timeout_ms, &reply, why, sizeof(why));
	if (rc < 0) {
		cli_error("status", "%s: %s", o.endpoint, why[0] ? why : mu_strerror(rc));
		goto out;
	}
	Musubi__StatusReply *sr = musubi__status_reply__unpack(NULL, reply.env->payload.len,
								reply.env->payload.data);
	json_t *st = sr ? json_loads(sr->json, 0, NULL) : NULL;
	if (st == NULL) {
		cli_error("status", "%s sent a status that does not decode", o.endpoint);
	} else {
		if (o.json)
			puts(sr->json);
		else
			print_status(st, color);
		ret = EXIT_OK;
	}
	json_decref(st);
	if (sr)
		musubi__status_reply__free_unpacked(sr, NULL);
	wire_msg_fini(&reply);
out:
	client_close(&c);
	return ret;
}
