/*
 * access.c - access records: which member (or anonymous client) read which
 * dataset, when. Kept in memory for a few seconds, then appended to the
 * node's own <member>/access_log dataset as one signed batch, so that the
 * record is as verifiable as any published data.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mu_err.h"
#include "node.h"
#include "publish.h"
#include "util.h"

void access_note(struct node *n, const char *client, const char *action, const char *dataset,
		 const char *detail)
{
	struct access_rec *r;

	if (n->naccess >= ACCESS_MAX_PENDING)
		access_flush(n);
	if (n->naccess >= ACCESS_MAX_PENDING) {
		/* Not flushed (a failed write, or a restored node not yet caught
		 * up): drop rather than grow without bound, and say so once. */
		if (n->access_dropped++ == 0)
			log_warn("access records are not being written (%s): dropping new ones",
				 n->restore_pending ? "restored from a backup, not caught up yet" :
				 "the access log cannot be appended to");
		return;
	}
	r = realloc(n->access, (n->naccess + 1) * sizeof(*r));
	if (r == NULL)
		return;
	n->access = r;
	r = &n->access[n->naccess++];
	r->us = mu_now_us();
	snprintf(r->client, sizeof(r->client), "%s", client && client[0] ? client : "anonymous");
	snprintf(r->action, sizeof(r->action), "%s", action);
	snprintf(r->dataset, sizeof(r->dataset), "%s", dataset ? dataset : "");
	snprintf(r->detail, sizeof(r->detail), "%.500s", detail ? detail : "");
}

static void text(struct mu_value *v, const char *s)
{
	memset(v, 0, sizeof(*v));
	if (s[0] == '\0')
		return;   /* NULL */
	v->kind = MU_VAL_TEXT;
	v->text = s;
	v->len = strlen(s);
}

void access_flush(struct node *n)
{
	enum { NF = 6 };
	struct mu_value *vals;
	char (*ids)[40], (*times)[32];
	char why[256];
	int rc;

	/* Restored from a backup: appending now would fork the access log
	 * that peers hold (catchup.c); keep the records until caught up. */
	if (n->naccess == 0 || n->restore_pending)
		return;
	vals = calloc(n->naccess * NF, sizeof(*vals));
	ids = calloc(n->naccess, sizeof(*ids));
	times = calloc(n->naccess, sizeof(*times));
	if (vals == NULL || ids == NULL || times == NULL)
		goto out;
	for (size_t i = 0; i < n->naccess; i++) {
		struct access_rec *r = &n->access[i];
		struct mu_value *v = vals + i * NF;
		snprintf(ids[i], sizeof(ids[i]), "%lld-%zu", (long long)r->us, i);
		mu_format_time(r->us, times[i], sizeof(times[i]));
		text(&v[0], ids[i]);
		text(&v[1], times[i]);
		text(&v[2], r->client);
		text(&v[3], r->action);
		text(&v[4], r->dataset);
		text(&v[5], r->detail);
	}
	/* Members-only: who reads what is for the federation, not the world. */
	rc = publish_append(n->st, n->signer, "access_log", "access_log@1", 1, vals, n->naccess,
			    why, sizeof(why));
	if (rc < 0)
		log_warn("cannot append %zu access records: %s", n->naccess, why);
	else
		n->naccess = 0;
out:
	free(vals);
	free(ids);
	free(times);
}
