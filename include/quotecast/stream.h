/*
 * stream: per-symbol market streams (layer 0).
 *
 * For each symbol: a sequence counter (seq from 1 per accepted tick), the last accepted
 * version, a ring of the last buffer_size accepted ticks, a de-duplication window of the
 * last dedup_window message ids (bounded memory, O(1) look-up), and the merged snapshot (the
 * newest value of every field). Subscribers of a symbol are grouped by their field set, so a
 * tick is filtered and encoded once per distinct field set, never once per subscriber.
 *
 * A subscription is one node linked both ways, like a room membership: into its group's list
 * and into the connection's own set (a hash keyed by stream), so subscribe, unsubscribe,
 * filter changes and disconnect cleanup are O(1) per subscription (plus the group look-up).
 *
 * A stream lives in one of two states. Subscribe-only: created by a subscribe to a symbol that
 * has had no tick; only the record and its subscriptions (no ring, window or snapshot), at
 * most max_subscribe_only of them, freed as soon as its last subscriber leaves. With ticks:
 * its first accepted tick allocates the ring, window and snapshot, at most max_symbols such
 * streams; one without subscribers is idle and freed by qc_streams_sweep() once it has had
 * neither a subscriber nor a tick for idle_ttl_s. The two bounds are separate, so symbols that
 * are only subscribed can never take the room of symbols that publishers feed.
 *
 * A freed stream that is created again starts a new life: seq restarts at 1 and it has a new
 * qc_stream_id() (64 bits, never reused), which is what a position's epoch can be made of.
 */
#ifndef QC_STREAM_H
#define QC_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uthash.h>

#include "quotecast/cobj.h"

#define QC_SYMBOL_MAX       32 /* bytes: [A-Za-z0-9._:-]+ */
#define QC_FIELD_MAX        64 /* bytes of one field name */
#define QC_FIELDS_MAX       32 /* fields in one filter */
#define QC_MESSAGE_ID_MAX   128
#define QC_STREAM_EPOCH_MAX 12 /* bytes of a broker's epoch (the hub's QC_EPOCH_LEN) */

struct qc_streams;
struct qc_stream;
struct qc_group;

/*
 * One accepted tick as the ring holds it, seen through a view filled by qc_stream_tick() or
 * qc_stream_apply() (valid until the next apply on that stream). The ring keeps each tick in one
 * allocation: its data as a compact object (cobj.h) with the timestamp and the message id
 * after the index; the seq is its place in the ring.
 */
struct qc_tick {
	uint64_t seq;
	int64_t timestamp;      /* ms, from the tick or the time it was accepted */
	const char *message_id; /* as it is sent: JSON-escaped, without quotes; "" when none */
	struct qc_cobj *data;   /* the ring's (borrowed): qc_cobj_ref() it to keep it */
};

/* A tick offered to a stream (borrowed; what the ring needs is copied). */
struct qc_tick_in {
	const struct qc_cobj *data; /* a non-empty object */
	const char *message_id; /* NULL or "" when none; at most QC_MESSAGE_ID_MAX bytes count */
	bool has_version;       /* whether @version counts */
	int64_t version;
	int64_t timestamp; /* ms */
};

struct qc_sub_set;

struct qc_sub {
	struct qc_stream *stream;
	struct qc_group *group;
	void *conn; /* the caller's connection, borrowed */
	struct qc_sub_set *set;
	struct qc_sub *group_prev;
	struct qc_sub *group_next;
	uint64_t last_seq; /* the newest seq queued to the connection (the hub's, for resume) */
	void *rate;        /* the caller's per-subscription state (the hub's max_hz), or NULL */
	UT_hash_handle hh; /* in the connection's set, keyed by stream pointer */
};

/* Embedded in each connection: its stream subscriptions. All zero is empty. */
struct qc_sub_set {
	struct qc_sub *by_stream;
	uint32_t count;
};

enum qc_tick_verdict {
	QC_TICK_ACCEPTED = 0,
	QC_TICK_DUPLICATE, /* message_id seen in the symbol's window */
	QC_TICK_STALE,     /* version not above the last accepted one */
};

/** qc_symbol_valid() - 1-32 bytes of [A-Za-z0-9._:-]. */
bool qc_symbol_valid(const char *s);

/** qc_field_valid() - 1-64 bytes, no control characters. */
bool qc_field_valid(const char *s);

/* What a registry is made with (copied). */
struct qc_streams_opts {
	uint32_t buffer_size;        /* ticks in the ring of a stream with ticks (>= 1) */
	uint32_t dedup_window;       /* message ids remembered per stream with ticks (>= 1) */
	uint32_t max_symbols;        /* streams with ticks (>= 1) */
	uint32_t max_subscribe_only; /* streams that are only subscribed (0: none may exist) */
	uint32_t idle_ttl_s;         /* an idle stream with ticks is freed after this; 0: never */
	/* milliseconds on any steady scale, for the idle TTL; NULL: CLOCK_MONOTONIC */
	int64_t (*clock)(void *ctx);
	void *clock_ctx;
	/* optional: a subscription whose @rate is set is about to be freed (it may be NULLed) */
	void (*sub_gone)(void *ctx, struct qc_sub *sub);
	void *sub_ctx;
};

/* Figures for the stats. */
struct qc_streams_counts {
	uint32_t streams;              /* all of them */
	uint32_t with_ticks;           /* bounded by max_symbols */
	uint32_t subscribe_only;       /* bounded by max_subscribe_only */
	uint32_t idle;                 /* with ticks, without subscribers: waiting out the TTL */
	uint64_t subscriptions;        /* over all streams */
	uint64_t idle_freed;           /* streams with ticks freed by qc_streams_sweep() */
	uint64_t subscribe_only_freed; /* subscribe-only streams freed by their last unsubscribe */
};

/** qc_streams_new() - an empty registry; NULL with errno EINVAL (a zero size) or ENOMEM. */
struct qc_streams *qc_streams_new(const struct qc_streams_opts *o);
/** qc_streams_free() - free every stream, tick, group and subscription. */
void qc_streams_free(struct qc_streams *ss);

/** qc_streams_find() - the stream of @symbol (borrowed) or NULL. */
struct qc_stream *qc_streams_find(const struct qc_streams *ss, const char *symbol);

/**
 * qc_streams_get() - find the stream of @symbol, or create it subscribe-only (for a
 * subscribe). NULL with errno EINVAL (bad symbol), ENOSPC (max_subscribe_only subscribe-only
 * streams exist) or ENOMEM. A stream created here that gets no subscriber must be handed to
 * qc_streams_release().
 */
struct qc_stream *qc_streams_get(struct qc_streams *ss, const char *symbol);

/**
 * qc_streams_get_live() - find or create the stream of @symbol with its ring, window and
 * snapshot (for a publish): a subscribe-only one is given them. NULL with errno EINVAL,
 * ENOSPC (max_symbols streams with ticks exist) or ENOMEM.
 */
struct qc_stream *qc_streams_get_live(struct qc_streams *ss, const char *symbol);

/**
 * qc_streams_release() - free @s if nothing holds it: subscribe-only with no subscriber (after
 * a subscribe that failed). A stream with ticks stays (it is idle, the sweep frees it).
 */
void qc_streams_release(struct qc_streams *ss, struct qc_stream *s);

/**
 * qc_streams_sweep() - free idle streams whose TTL has run out, oldest first, spending at
 * most about @budget units of work (a stream costs 1 plus the ticks in its ring; at least one
 * stream is freed when one is due). Returns how many were freed. Cheap when none is due: the
 * idle streams are a FIFO by the time they became idle.
 */
uint32_t qc_streams_sweep(struct qc_streams *ss, uint32_t budget);

uint32_t qc_streams_count(const struct qc_streams *ss);
uint64_t qc_streams_nsubs(const struct qc_streams *ss); /* subscriptions, all streams */
void qc_streams_counts(const struct qc_streams *ss, struct qc_streams_counts *out);

/**
 * qc_stream_apply() - offer one tick (@in, borrowed). On QC_TICK_ACCEPTED: seq assigned, data
 * merged into the snapshot, copied into the ring (the oldest dropped when full), message id
 * entered in the window, and *@out (if not NULL) is the ring entry. A subscribe-only stream is
 * first given its ring, window and snapshot, as by qc_streams_get_live(). An idle stream's TTL
 * starts again.
 * Returns the verdict, or -EINVAL (data not a non-empty object), -ENOSPC (max_symbols) or
 * -ENOMEM with no tick applied.
 */
int qc_stream_apply(struct qc_stream *s, const struct qc_tick_in *in, struct qc_tick *out);

/**
 * qc_stream_prefetch() - start loading what qc_stream_apply() of a tick with @message_id will
 * touch, in three stages a few ticks apart (0: the stream, 1: its window, snapshot and ring
 * slot, 2: the window's table slot of the id), so that a batch over many symbols does not wait
 * for memory tick after tick. Changes nothing.
 */
void qc_stream_prefetch(const struct qc_stream *s, int stage, const char *message_id);

/**
 * qc_stream_apply_seq() - a tick that a broker (cluster mode) accepted and numbered @seq, which
 * checked duplicates and versions for the whole cluster: applied as qc_stream_apply() does
 * with that seq. A @seq that does not follow the last one (this node was not listening to the
 * symbol in between, or the broker's log started again) empties the ring first, so the ring
 * still holds consecutive seqs. @in (borrowed) as for qc_stream_apply(): its data compact,
 * copied into the ring and merged into the snapshot in place, its message id entered in the
 * window. Returns QC_TICK_ACCEPTED, or -EINVAL / -ENOSPC / -ENOMEM.
 */
int qc_stream_apply_seq(struct qc_stream *s, const struct qc_tick_in *in, uint64_t seq,
                        struct qc_tick *out);

/**
 * qc_stream_seen() - whether @message_id is in the window (no change). For validating a batch
 * before applying it.
 */
bool qc_stream_seen(const struct qc_stream *s, const char *message_id);

const char *qc_stream_symbol(const struct qc_stream *s);
/* 1.., never reused in the registry: names one life of the stream (seq restarts per life) */
uint64_t qc_stream_id(const struct qc_stream *s);
uint64_t qc_stream_last_seq(const struct qc_stream *s); /* 0 before the first tick */
/** qc_stream_epoch() - the broker's name for the life of @s's log (cluster mode), "" if none. */
const char *qc_stream_epoch(const struct qc_stream *s);
/**
 * qc_stream_set_epoch() - (cluster mode) the life of the broker's log that @s follows (at most
 * QC_STREAM_EPOCH_MAX bytes). When @s followed another one, that log is gone (Redis lost it):
 * the ring is emptied and seq and version start again; the snapshot stays (its values are
 * still the newest known).
 */
void qc_stream_set_epoch(struct qc_stream *s, const char *epoch);
/** qc_stream_has_ticks() - false while the stream is subscribe-only. */
bool qc_stream_has_ticks(const struct qc_stream *s);
/**
 * qc_stream_snapshot() - the merged snapshot (the newest value of every field, in the order the
 * fields first came): borrowed, not refcounted (qc_cobj_filter() with no fields copies it),
 * valid until the next apply; empty before the first tick.
 */
const struct qc_cobj *qc_stream_snapshot(const struct qc_stream *s);
/**
 * qc_stream_snapshot_json() - the same as a jansson object (borrowed, not to be changed), made
 * on first use after each change; NULL on ENOMEM. For the alert filters (expr.c).
 */
json_t *qc_stream_snapshot_json(struct qc_stream *s);
int64_t qc_stream_snapshot_time(const struct qc_stream *s);

/** qc_stream_oldest_seq() - the oldest seq still in the ring; 0 when the ring is empty. */
uint64_t qc_stream_oldest_seq(const struct qc_stream *s);
/** qc_stream_tick() - fill *@out with the ring entry of @seq; false when not in the ring. */
bool qc_stream_tick(const struct qc_stream *s, uint64_t seq, struct qc_tick *out);
/**
 * qc_tick_view() - fill *@out with ring entry @t (a struct qc_tick's data, kept alive by a
 * reference after the ring let it go) as seq @seq.
 */
void qc_tick_view(struct qc_cobj *t, uint64_t seq, struct qc_tick *out);

/**
 * qc_stream_subscribe() - subscribe the connection of @set to @s with a field filter
 * (@nfields 0 = all fields; duplicates are ignored; order does not matter).
 * Returns 0, -EEXIST (already subscribed), -EINVAL (a bad field name or more than
 * QC_FIELDS_MAX) or -ENOMEM. *@out (if not NULL) is the new subscription.
 */
int qc_stream_subscribe(struct qc_streams *ss, struct qc_stream *s, struct qc_sub_set *set,
                        void *conn, const char *const *fields, size_t nfields, struct qc_sub **out);

/** qc_stream_set_filter() - move @sub to the group of the new field set. 0/-EINVAL/-ENOMEM. */
int qc_stream_set_filter(struct qc_streams *ss, struct qc_sub *sub, const char *const *fields,
                         size_t nfields);

/**
 * qc_stream_unsubscribe() - remove the subscription of @set to @s. 0 or -ENOENT. When it was
 * the last one, a subscribe-only @s is freed at once (the caller must not use @s again) and
 * one with ticks becomes idle.
 */
int qc_stream_unsubscribe(struct qc_streams *ss, struct qc_stream *s, struct qc_sub_set *set);

/** qc_stream_unsubscribe_all() - remove every subscription of @set (as qc_stream_unsubscribe). */
void qc_stream_unsubscribe_all(struct qc_streams *ss, struct qc_sub_set *set);

/** qc_sub_set_find() - the subscription of @set to @s, or NULL. */
struct qc_sub *qc_sub_set_find(const struct qc_sub_set *set, const struct qc_stream *s);

uint32_t qc_stream_nsubs(const struct qc_stream *s);

/** Groups of a stream (one per distinct field set with at least one subscriber). */
struct qc_group *qc_stream_groups(const struct qc_stream *s);
struct qc_group *qc_group_next(const struct qc_group *g);
struct qc_sub *qc_group_subs(const struct qc_group *g); /* iterate with ->group_next */
uint32_t qc_group_nsubs(const struct qc_group *g);
/** The group's fields, sorted, deduplicated; 0 fields = all fields. */
size_t qc_group_nfields(const struct qc_group *g);
const char *const *qc_group_fields(const struct qc_group *g);

/**
 * qc_fields_filter() - the tree form of qc_cobj_filter(): a new reference to @data itself when
 * @nfields is 0, else a new object with the listed fields that @data carries; NULL when it
 * carries none of them. For jansson objects (the alert filters' snapshot).
 */
json_t *qc_fields_filter(const char *const *fields, size_t nfields, json_t *data);

/** qc_group_filter() - qc_cobj_filter() of @data with the group's fields. */
struct qc_cobj *qc_group_filter(const struct qc_group *g, struct qc_cobj *data);

#endif
