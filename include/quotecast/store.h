/*
 * store: the durable store as the hub sees it (layer 1 asks, layer 2 pg.c does the I/O).
 *
 * One parameterised SQL statement per call; it runs as its own transaction (a statement that
 * touches several tables uses data-modifying CTEs), so a successful callback means the
 * transaction committed. Calls are queued in order and answered in order. The callback runs
 * exactly once, always later from the event loop, never from inside qc_store_submit().
 */
#ifndef QC_STORE_H
#define QC_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "quotecast/codec.h"

/**
 * qc_store_cb - the outcome of one statement.
 * @err: QC_OK (committed), QC_E_UNAVAILABLE (the store went down or the statement waited in
 *       the queue past store.timeout_ms; an in-flight statement's outcome is then unknown),
 *       QC_E_ALREADY_EXISTS (unique violation, SQLSTATE 23505), QC_E_NOT_FOUND (foreign key
 *       violation, 23503) or QC_E_INTERNAL (any other SQL error).
 * @msg: a static or short-lived human message when @err is not QC_OK, else NULL.
 * @rows: QC_OK only: an array of rows, each an array of column values as JSON strings (the
 *        text form) or null; borrowed for the duration of the call. NULL otherwise.
 */
typedef void (*qc_store_cb)(void *arg, enum qc_err err, const char *msg, json_t *rows);

struct qc_store_stats {
	bool configured;
	bool connected;
	uint32_t pending;  /* queued + in flight */
	uint64_t failed;   /* statements answered with an error */
	const char *state; /* "connected", "connecting", "down", "stalled" (an answer is overdue) */
};

struct qc_store {
	/*
	 * Queue @sql with @nparams text parameters (copied; a NULL entry is SQL NULL).
	 * Returns 0 (@cb will run), -ENOTCONN (the store is down: answer UNAVAILABLE), -EAGAIN
	 * (store.max_pending statements are waiting) or -ENOMEM. On error @cb never runs.
	 */
	int (*submit)(void *ctx, const char *sql, int nparams, const char *const *params,
	              qc_store_cb cb, void *arg);
	/* the state, for /api/stats, /metrics and /readyz */
	void (*stats)(void *ctx, struct qc_store_stats *st);
	void *ctx;
};

/* Migrations: the schema, in order; version i + 1 is qc_migrations[i]. schema.c. */
struct qc_migration {
	int version;
	const char *name;
	const char *sql; /* may hold several statements; applied inside one transaction */
};

extern const struct qc_migration qc_migrations[];
extern const int qc_nmigrations;

#endif
