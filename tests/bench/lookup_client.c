/*
 * lookup_client.c - the primary-key lookup of bench_fedquery.sh as issue 5
 * measures it: N lookups issued one after another by one client session
 * (one CURVE connection to the node asked), each timed from the request
 * to its reply. Prints every answer as a tab-separated line on stdout (for
 * the comparison with sqlite3) and the latencies on stderr:
 *   lookups N median MS p90 MS min MS max MS
 *
 * usage: lookup_client ENDPOINT DATADIR N ROWS
 * The ids asked are spread over 1..ROWS (id = 1 + (i * 7919) % ROWS);
 * DATADIR gives the node's CURVE key (as musubi query --dir does).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "mu_err.h"
#include "rec.h"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void print_row(const struct rec_row *row)
{
	for (size_t k = 0; k < row->n; k++) {
		const struct mu_value *v = &row->values[k];
		if (k)
			putchar('\t');
		if (v->kind == MU_VAL_INT || v->kind == MU_VAL_BOOL)
			printf("%" PRId64, v->i);
		else if (v->kind == MU_VAL_NUM)
			printf("%.17g", v->d);
		else if (v->kind == MU_VAL_TEXT)
			printf("%.*s", (int)v->len, v->text);
	}
	putchar('\n');
}

int main(int argc, char **argv)
{
	struct client *c = NULL;
	uint8_t key[32];
	char why[512] = "", sql[256];
	double *lat;
	long n, rows;
	int rc;

	if (argc != 5 || (n = atol(argv[3])) <= 0 || (rows = atol(argv[4])) <= 0) {
		fprintf(stderr, "usage: lookup_client ENDPOINT DATADIR N ROWS\n");
		return 2;
	}
	if ((lat = calloc((size_t)n, sizeof(*lat))) == NULL)
		return 1;
	if ((rc = client_server_key(argv[1], NULL, argv[2], key, why, sizeof(why))) < 0 ||
	    (rc = client_open(argv[1], key, NULL, &c)) < 0) {
		fprintf(stderr, "lookup_client: %s\n", why[0] ? why : mu_strerror(rc));
		return 1;
	}
	for (long i = 0; i < n; i++) {
		Musubi__Query q = MUSUBI__QUERY__INIT;
		struct wire_msg reply;
		long id = 1 + (long)(((int64_t)i * 7919) % rows);

		snprintf(sql, sizeof(sql),
			 "SELECT id, 名称, 住所, 収容人数 FROM sites WHERE id = %ld", id);
		q.sql = sql;
		q.timeout_ms = 10000;
		double t0 = now_ms();
		rc = client_call(c, MUSUBI__MSG_TYPE__MSG_QUERY, &q.base, 20000, &reply, why,
				 sizeof(why));
		lat[i] = now_ms() - t0;
		if (rc < 0) {
			fprintf(stderr, "lookup_client: id %ld: %s\n", id, why[0] ? why : mu_strerror(rc));
			client_close(&c);
			return 1;
		}
		Musubi__QueryResult *res = musubi__query_result__unpack(NULL, reply.env->payload.len,
									reply.env->payload.data);
		wire_msg_fini(&reply);
		if (res == NULL || res->partial) {
			fprintf(stderr, "lookup_client: id %ld: %s\n", id,
				res ? "partial result" : "reply does not decode");
			client_close(&c);
			return 1;
		}
		for (size_t r = 0; r < res->n_rows; r++) {
			struct rec_row *row = NULL;
			if (rec_row_decode(res->rows[r].data, res->rows[r].len, &row) == 0)
				print_row(row);
			rec_row_free(&row);
		}
		musubi__query_result__free_unpacked(res, NULL);
	}
	client_close(&c);
	qsort(lat, (size_t)n, sizeof(*lat), cmp_double);
	/* median: the middle value (mean of the two middle ones when n is even);
	 * p90: nearest rank. */
	double med = n % 2 ? lat[n / 2] : (lat[n / 2 - 1] + lat[n / 2]) / 2;
	long r90 = (long)((n * 90 + 99) / 100);
	fprintf(stderr, "lookups %ld median %.3f p90 %.3f min %.3f max %.3f\n", n, med,
		lat[r90 - 1], lat[0], lat[n - 1]);
	free(lat);
	return 0;
}
