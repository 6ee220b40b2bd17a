/*
 * redis: one Redis connection through hiredis on the lws event loop (layer 2).
 *
 * hiredis 0.14's async API does its own reads, writes and reply parsing and asks an event
 * library to watch its socket through five hooks (ev.addRead ... ev.cleanup); it has no timers.
 * A link supplies those hooks from lws: a dup() of the hiredis socket is adopted as a raw file
 * (protocol "quotecast-redis", as pg.c does for libpq: lws closes what it adopts, hiredis its
 * own fd), readable -> redisAsyncHandleRead, writable -> redisAsyncHandleWrite. Sul timers
 * connect (non-blocking, to an IP address: nothing is resolved on the loop), reconnect with
 * back-off (shard.h), and watch the answers: commands are pipelined (sent as they come, answered
 * in order), at most max_inflight wait, and when the oldest has waited timeout_ms (a stalled
 * or SIGSTOPped Redis), or the connect has, the link drops the connection: everything waiting
 * gets its callback with a NULL reply (UNAVAILABLE), and it reconnects by itself. An idle link
 * PINGs every second so a stall is seen without traffic.
 */
#ifndef QC_REDIS_H
#define QC_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <libwebsockets.h>

struct qc_redis;

/** The raw-file protocol entry to put in the vhost's protocol list (before the terminator). */
extern const struct lws_protocols qc_redis_protocol;

/**
 * A command's answer: @r is hiredis' reply (valid during the call only), or NULL when the link
 * went down before it came (answer UNAVAILABLE).
 */
typedef void (*qc_redis_reply_fn)(void *ud, const redisReply *r);

/** The link came up (after its first PING answered) or went down. */
typedef void (*qc_redis_state_fn)(void *ud, bool up);

/**
 * A message on a subscribed channel (subscriber links only). @chan and @payload are valid
 * during the call only.
 */
typedef void (*qc_redis_message_fn)(void *ud, const char *chan, size_t chanlen, const char *payload,
                                    size_t len);

struct qc_redis_opts {
	const char *ip; /* an address literal, IPv4 or IPv6 (resolved before the loop runs) */
	uint16_t port;
	const char *name;      /* for logs: the URL */
	uint32_t max_inflight; /* commands waiting for an answer: -ENOSPC past it */
	uint32_t timeout_ms;   /* connect and answer bound */
	qc_redis_state_fn on_state;
	qc_redis_message_fn on_message; /* non-NULL: a subscriber link (SUBSCRIBE only) */
	void *ud;
};

struct qc_redis_stats {
	bool up;
	uint32_t inflight;
	uint64_t sent;       /* commands sent */
	uint64_t failed;     /* commands answered UNAVAILABLE (link down or dropped) */
	uint64_t timeouts;   /* connections dropped because Redis did not answer in time */
	uint64_t reconnects; /* connections made after the first */
};

/** qc_redis_new() - a link (not connected yet); @o's strings are copied. NULL on ENOMEM. */
struct qc_redis *qc_redis_new(const struct qc_redis_opts *o);

/**
 * qc_redis_start() - connect from the loop of @ctx and its vhost @vh (which carries
 * qc_redis_protocol), and keep connected until qc_redis_free(). Returns 0.
 */
int qc_redis_start(struct qc_redis *l, struct lws_context *ctx, struct lws_vhost *vh);

/** qc_redis_stop() - drop the connection (waiting callbacks get NULL) and stay down. */
void qc_redis_stop(struct qc_redis *l);

/** qc_redis_free() - drop the connection (waiting callbacks get NULL) and free. NULL: no-op. */
void qc_redis_free(struct qc_redis *l);

/** qc_redis_up() - connected and answering. */
bool qc_redis_up(const struct qc_redis *l);

/**
 * qc_redis_cmd() - send one command (@argc arguments, binary-safe); @fn gets the answer.
 * Returns 0 (@fn will run exactly once, maybe with NULL), -ENOTCONN (the link is down: answer
 * UNAVAILABLE now) or -ENOSPC (max_inflight commands wait). @fn never runs from inside this call.
 */
int qc_redis_cmd(struct qc_redis *l, qc_redis_reply_fn fn, void *ud, int argc, const char **argv,
                 const size_t *lens);

/**
 * qc_redis_subscribe() - (subscriber link) SUBSCRIBE or UNSUBSCRIBE @chan; messages come to
 * on_message. Returns 0 or -ENOTCONN. The caller subscribes again after each reconnect
 * (on_state up).
 */
int qc_redis_subscribe(struct qc_redis *l, const char *chan, bool on);

/** qc_redis_drop() - drop the connection now (reconnects with back-off), e.g. when a sibling
 * link found Redis stalled. */
void qc_redis_drop(struct qc_redis *l, const char *why);

/** qc_redis_stats() - its figures. */
void qc_redis_stats(const struct qc_redis *l, struct qc_redis_stats *st);

#endif
