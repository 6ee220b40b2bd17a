/*
 * pg: PostgreSQL through libpq on the lws event loop (layer 2).
 *
 * Start-up (before the loop serves anyone) is synchronous: connect, apply the migrations of
 * store.h inside one transaction, and let the caller load its state with qc_pg_query_sync().
 * Then qc_pg_go_async() puts the connection in non-blocking mode and adopts a dup() of its
 * socket into the loop as a raw file (protocol "quotecast-pg"); from then on statements are
 * queued by qc_store.submit and sent in libpq pipeline mode, in order, each followed by a sync
 * (its own transaction; answered at its sync, so an answer means committed): up to 64 in flight,
 * and a new one joins only while the oldest in flight was sent less than 50 ms ago (a database
 * that stopped answering holds only what was sent before it stopped; the rest times out in the
 * queue). When the connection breaks, what
 * is queued or in flight fails with UNAVAILABLE, and a sul timer reconnects with back-off
 * (PQconnectStartParams/PQconnectPoll driven by the timer, adopted again once CONNECTION_OK).
 */
#ifndef QC_PG_H
#define QC_PG_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <libwebsockets.h>

#include "quotecast/histo.h"
#include "quotecast/store.h"

struct qc_pg;

/** The raw-file protocol entry to put in the vhost's protocol list (before the terminator). */
extern const struct lws_protocols qc_pg_protocol;

/**
 * qc_pg_new() - a store for @url (copied). @max_pending bounds queued statements (-EAGAIN past
 * it), @timeout_ms fails a statement still queued (not yet sent) after that long and makes the
 * state "stalled" when the oldest statement in flight is older. NULL on ENOMEM.
 */
struct qc_pg *qc_pg_new(const char *url, uint32_t max_pending, uint32_t timeout_ms);
void qc_pg_free(struct qc_pg *pg);

/**
 * qc_pg_start() - blocking, at start-up only: connect (giving up after @connect_timeout_s),
 * then apply the pending migrations in one transaction under an advisory lock. A database
 * whose schema_migrations holds a version newer than the binary's last is refused.
 * Returns 0, or -1 with a message for the operator in @err.
 */
int qc_pg_start(struct qc_pg *pg, uint32_t connect_timeout_s, char *err, size_t errlen);

/**
 * qc_pg_query_sync() - blocking, at start-up only (after qc_pg_start, before qc_pg_go_async):
 * one parameterised statement; *@rows as in qc_store_cb (new reference). 0 or -1 with @err.
 */
int qc_pg_query_sync(struct qc_pg *pg, const char *sql, int nparams, const char *const *params,
                     json_t **rows, char *err, size_t errlen);

/**
 * qc_pg_go_async() - hand the connection to the loop of @vhost (the vhost must carry
 * qc_pg_protocol). 0 or -1.
 */
int qc_pg_go_async(struct qc_pg *pg, struct lws_vhost *vhost);

/** qc_pg_store() - the submit interface for the hub. */
struct qc_store qc_pg_store(struct qc_pg *pg);

/**
 * qc_pg_latency() - the histogram of statement latency, from submit to the answer, of every
 * statement the server answered (success or SQL error); failed ones (timeout, connection
 * lost) are in qc_pg_stats()'s failed. For /metrics.
 */
const struct qc_histo *qc_pg_latency(const struct qc_pg *pg);

/** qc_pg_stats() - for /api/stats, /metrics and /readyz. */
void qc_pg_stats(const struct qc_pg *pg, struct qc_store_stats *st);

/**
 * qc_pg_stop() - at shutdown: fail what is queued with UNAVAILABLE, stop reconnecting, close
 * the adopted descriptor. Safe to call twice. qc_pg_free() after the context is destroyed.
 */
void qc_pg_stop(struct qc_pg *pg);

#endif
