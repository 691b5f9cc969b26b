/* test_metrics.c - the /metrics text: counters from the reactor's snapshot,
 * lag against a real store, label escaping, the duration histogram, and
 * refusal of a bad listen address. HTTP itself is tested by
 * tests/integration/metrics.sh against real musubid processes. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "metrics.h"
#include "mu_err.h"
#include "node.h"
#include "store.h"
#include "testutil.h"
#include "util.h"


static int has(const char *text, const char *line)
{
	const char *p = strstr(text, line);

	if (p == NULL)
		fprintf(stderr, "  missing: %s", line);
	return p != NULL;
}

static void test_render(void)
{
	struct node n;
	struct peer p;
	struct peer_head heads[1];
	struct metrics *m = NULL;
	char tmpdir[TU_DIR_MAX], *text;
	size_t len = 0;
	uint64_t count;
	double sec;
	int64_t now = mu_now_us();

	REQUIRE(tu_tmpdir(tmpdir, "metrics") == 0);
	memset(&n, 0, sizeof(n));
	memset(&p, 0, sizeof(p));
	memset(heads, 0, sizeof(heads));
	strcpy(heads[0].dataset, "011002/aed");
	heads[0].size = 5;
	CHECK_OK(store_open(tmpdir, STORE_CREATE, &n.st));
	REQUIRE(n.st != NULL);
	strcpy(n.member, "011002");
	n.started_us = now;
	n.stats.entries_received = 7;
	n.stats.refused_root = 2;
	n.stats.queries = 3;
	/* A peer not yet identified is named by its endpoint, which the text
	 * format must escape. */
	strcpy(p.endpoint, "tcp://a\"b\\c");
	p.hello_done = 1;
	p.last_seen_us = now;
	p.heads = heads;
	p.nheads = 1;
	n.peers = &p;
	n.npeers = 1;

	CHECK_OK(metrics_new(&n, NULL, &m));
	REQUIRE(m != NULL);
	metrics_publish(m, &n, now);
	metrics_observe(m, METRICS_QUERY, 500);          /* 0.5 ms */
	metrics_observe(m, METRICS_QUERY, 20000);        /* 20 ms */
	metrics_observe(m, METRICS_QUERY, 60000000);     /* 60 s: only +Inf */
	metrics_observe(m, METRICS_SCAN, 3000);
	metrics_totals(m, METRICS_QUERY, &count, &sec);
	CHECK(count == 3);
	CHECK(sec > 60.02 && sec < 60.021);

	text = metrics_render(m, &len);
	REQUIRE(text != NULL);
	CHECK(len == strlen(text));
	CHECK(has(text, "musubi_entries_received_total 7\n"));
	CHECK(has(text, "musubi_verify_failures_total{reason=\"root\"} 2\n"));
	CHECK(has(text, "musubi_verify_failures_total{reason=\"signature\"} 0\n"));
	CHECK(has(text, "musubi_queries_total{kind=\"query\"} 3\n"));
	CHECK(has(text, "musubi_datasets 0\n"));
	CHECK(has(text, "musubi_peers_connected 1\n"));
	/* The store holds none of the peer's 5 entries. */
	CHECK(has(text, "musubi_peer_lag_entries{peer=\"tcp://a\\\"b\\\\c\",dataset=\"011002/aed\"} 5\n"));
	CHECK(has(text, "musubi_peer_up{peer=\"tcp://a\\\"b\\\\c\"} 1\n"));
	/* Buckets are cumulative and end at +Inf = count. */
	CHECK(has(text, "musubi_query_duration_seconds_bucket{kind=\"query\",le=\"0.001\"} 1\n"));
	CHECK(has(text, "musubi_query_duration_seconds_bucket{kind=\"query\",le=\"0.01\"} 1\n"));
	CHECK(has(text, "musubi_query_duration_seconds_bucket{kind=\"query\",le=\"0.025\"} 2\n"));
	CHECK(has(text, "musubi_query_duration_seconds_bucket{kind=\"query\",le=\"30\"} 2\n"));
	CHECK(has(text, "musubi_query_duration_seconds_bucket{kind=\"query\",le=\"+Inf\"} 3\n"));
	CHECK(has(text, "musubi_query_duration_seconds_count{kind=\"query\"} 3\n"));
	CHECK(has(text, "musubi_query_duration_seconds_bucket{kind=\"scan\",le=\"0.005\"} 1\n"));
	CHECK(has(text, "musubi_lmdb_map_size_bytes "));
	free(text);

	/* Later counters reach the text only through the next publish. */
	n.stats.entries_received = 9;
	metrics_publish(m, &n, now + 1);   /* too soon: the snapshot stays */
	text = metrics_render(m, &len);
	REQUIRE(text != NULL);
	CHECK(has(text, "musubi_entries_received_total 7\n"));
	free(text);
	metrics_publish(m, &n, now + METRICS_PUBLISH_US);
	text = metrics_render(m, &len);
	REQUIRE(text != NULL);
	CHECK(has(text, "musubi_entries_received_total 9\n"));
	free(text);

	metrics_destroy(&m);
	CHECK(m == NULL);
	metrics_destroy(&m);   /* accepts NULL */
	store_close(&n.st);
	CHECK(tu_rmrf(tmpdir) == 0);
}

static void test_bad_address(void)
{
	static const char *const bad[] = { "localhost", "127.0.0.1:", ":9108", "127.0.0.1:http",
					   "[::1:9108" };
	struct node n;
	struct metrics *m = (struct metrics *)&n;

	memset(&n, 0, sizeof(n));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		m = (struct metrics *)&n;   /* metrics_new must set it to NULL */
		CHECK_RC(metrics_new(&n, bad[i], &m), MU_E_USAGE);
		CHECK(m == NULL);
	}
}

CHECK_TESTS = {
	{ "render", test_render },
	{ "bad address", test_bad_address },
	{ NULL, NULL },
};
