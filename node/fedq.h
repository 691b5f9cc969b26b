/*
 * fedq.h - federated queries: a worker thread that coordinates one SQL
 * question across the federation, and the scans that answer its parts.
 *
 * The reactor hands a MSG_QUERY to the worker over an inproc socket and
 * relays the worker's reply, so the loop keeps serving (including the
 * scans this very query sends to this node). The worker runs the SQL in
 * its own SQLite connection whose virtual tables, one per dataset name,
 * fan each scan out to every publisher's node in parallel, pushing down
 * the columns used and the WHERE constraints; SQLite does joins,
 * aggregates, ordering and limits. Aggregates that decompose go to the
 * nodes too, which answer one row per group (fedagg.h; Query.no_pushdown
 * turns that off). A publisher whose node does not answer
 * in time is answered for by a verified local replica when there is one;
 * the manifest says who answered, from which signed head, and what failed.
 */
#ifndef MU_FEDQ_H
#define MU_FEDQ_H

#include "node.h"

#define FEDQ_MAX_ROWS 200000         /* rows of one result */
#define FEDQ_SCAN_PAGE 20000         /* rows of one scan reply */

/* Start the worker; n->qsock is the reactor's end. */
int fedq_start(struct node *n);
void fedq_stop(struct node *n);
/* Reactor: a MSG_QUERY arrived on the ROUTER. */
void fedq_submit(struct node *n, struct wire_msg *m);
/* Reactor: the worker has a reply ready on n->qsock. */
void fedq_relay(struct node *n);

/* Reactor: answer a MSG_SCAN from the local store. */
void serve_scan(struct node *n, struct wire_msg *m, int anonymous);

#endif
