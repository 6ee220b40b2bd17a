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
 * Streams are never removed while the process runs (their ring and snapshot are the state
 * that recovery and get_market_data need); their number is capped by max_symbols.
 */
#ifndef QC_STREAM_H
#define QC_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uthash.h>

#define QC_SYMBOL_MAX     32 /* bytes: [A-Za-z0-9._:-]+ */
#define QC_FIELD_MAX      64 /* bytes of one field name */
#define QC_FIELDS_MAX     32 /* fields in one filter */
#define QC_MESSAGE_ID_MAX 128

struct qc_streams;
struct qc_stream;
struct qc_group;

/* One accepted tick, as kept in the ring. */
struct qc_tick {
	uint64_t seq;
	int64_t timestamp;                      /* ms, from the tick or the time it was accepted */
	json_t *data;                           /* a reference owned by the ring */
	char message_id[QC_MESSAGE_ID_MAX + 1]; /* "" when the tick had none */
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

/** qc_streams_new() - an empty registry; NULL on ENOMEM or a zero size. */
struct qc_streams *qc_streams_new(uint32_t buffer_size, uint32_t dedup_window,
                                  uint32_t max_symbols);
/** qc_streams_free() - free every stream, tick, group and subscription. */
void qc_streams_free(struct qc_streams *ss);

/** qc_streams_find() - the stream of @symbol (borrowed) or NULL. */
struct qc_stream *qc_streams_find(const struct qc_streams *ss, const char *symbol);

/**
 * qc_streams_get() - find or create the stream of @symbol. NULL with errno EINVAL (bad
 * symbol), ENOSPC (max_symbols streams exist) or ENOMEM.
 */
struct qc_stream *qc_streams_get(struct qc_streams *ss, const char *symbol);

uint32_t qc_streams_count(const struct qc_streams *ss);
uint64_t qc_streams_nsubs(const struct qc_streams *ss); /* subscriptions, all streams */

/**
 * qc_stream_apply() - offer one tick. @data must be a non-empty object (borrowed; the ring
 * takes its own reference). @message_id may be NULL; @has_version says whether @version
 * counts. On QC_TICK_ACCEPTED: seq assigned, data merged into the snapshot, appended to the
 * ring (the oldest dropped when full), message id entered in the window, and *@out (if not
 * NULL) points to the ring entry (valid until the next apply on this stream).
 * Returns the verdict, or -ENOMEM (nothing changed).
 */
int qc_stream_apply(struct qc_stream *s, json_t *data, const char *message_id, bool has_version,
                    int64_t version, int64_t timestamp, const struct qc_tick **out);

/**
 * qc_stream_seen() - whether @message_id is in the window (no change). For validating a batch
 * before applying it.
 */
bool qc_stream_seen(const struct qc_stream *s, const char *message_id);

const char *qc_stream_symbol(const struct qc_stream *s);
uint32_t qc_stream_id(const struct qc_stream *s);       /* 1.. unique in the registry */
uint64_t qc_stream_last_seq(const struct qc_stream *s); /* 0 before the first tick */
/** The merged snapshot: an object (borrowed), empty before the first tick. */
json_t *qc_stream_snapshot(const struct qc_stream *s);
int64_t qc_stream_snapshot_time(const struct qc_stream *s);

/** qc_stream_oldest_seq() - the oldest seq still in the ring; 0 when the ring is empty. */
uint64_t qc_stream_oldest_seq(const struct qc_stream *s);
/** qc_stream_tick() - the ring entry of @seq (borrowed) or NULL when not in the ring. */
const struct qc_tick *qc_stream_tick(const struct qc_stream *s, uint64_t seq);

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

/** qc_stream_unsubscribe() - remove the subscription of @set to @s. 0 or -ENOENT. */
int qc_stream_unsubscribe(struct qc_streams *ss, struct qc_stream *s, struct qc_sub_set *set);

/** qc_stream_unsubscribe_all() - remove every subscription of @set. */
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
 * qc_fields_filter() - what a subscriber with @fields receives of @data: a new reference to
 * @data itself when @nfields is 0, else a new object with the listed fields that @data
 * carries; NULL when it carries none of them (the tick is not sent to that subscriber).
 */
json_t *qc_fields_filter(const char *const *fields, size_t nfields, json_t *data);

/** qc_group_filter() - qc_fields_filter() with the group's fields. */
json_t *qc_group_filter(const struct qc_group *g, json_t *data);

#endif
