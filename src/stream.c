/*
 * stream: per-symbol market streams.
 *
 * Owns the streams (a uthash by symbol), and in each stream with ticks its ring of ticks (an
 * array of pointers, allocated with the first tick and grown by doubling up to buffer_size
 * slots, so a stream that has had few ticks holds little), the ticks themselves, its message-id
 * window (src/dedup.c) and its snapshot; in every stream its filter groups (a uthash keyed by the
 * canonical field set) and the subscriptions in them. A subscription is also linked into the
 * connection's struct qc_sub_set (a uthash keyed by the stream pointer), which is the caller's
 * memory but whose hash table uthash allocates here. Connections are borrowed.
 *
 * Lifetimes: a subscribe-only stream (no ring) is freed by the unsubscribe that leaves it
 * without subscribers. A stream with ticks and no subscriber is idle: it sits in the idle FIFO
 * (utlist DL, oldest first) stamped with the time it became idle; a tick moves it to the tail
 * with a new stamp, a subscribe takes it out, and qc_streams_sweep() frees from the head while
 * the head's stamp is older than the TTL. So the sweep touches only what it frees, and the
 * publish path pays one list move (no allocation) per tick of a stream nobody subscribes to;
 * the fan-out pays nothing.
 *
 * A tick is one allocation: its data as a compact object (cobj.h: the compact JSON text and
 * an index of its members), then its timestamp (8 bytes) and its message id as it is sent
 * (JSON-escaped, NUL-terminated) after the index. Its seq is its place in the ring (the seqs in
 * the ring are consecutive). Frames take references to a tick's data (conflation reads them),
 * so a tick outlives its slot while queued; it never changes. The snapshot is a compact object
 * the stream owns alone (refs 0) with room to grow: each accepted tick is merged into a scratch
 * buffer and copied back, so a failed merge leaves it as it was, and nothing is allocated while
 * it fits. Its jansson form, for the alert filters, is made only when asked for.
 *
 * A group's canonical key is one byte with the number of fields followed by the fields,
 * sorted by bytes, deduplicated, each with its NUL; the group's field array points into it.
 * The empty set (all fields) is the key "\0".
 *
 * uthash is built here with HASH_NONFATAL_OOM so that a failed table allocation is reported
 * as -ENOMEM instead of exiting the process.
 */
#define HASH_NONFATAL_OOM 1

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <utlist.h>

#include "quotecast/dedup.h"
#include "quotecast/stream.h"

#define KEY_MAX (1 + QC_FIELDS_MAX * (QC_FIELD_MAX + 1))

struct qc_group {
	struct qc_sub *subs; /* head of the member list */
	uint32_t nsubs;
	size_t nfields;
	size_t keylen;
	char *key;
	UT_hash_handle hh;    /* in qc_stream.groups */
	const char *fields[]; /* nfields pointers into key, then the key bytes */
};

struct qc_stream {
	struct qc_streams *ss;
	uint64_t id;
	uint32_t nsubs;
	bool idle;       /* in the idle FIFO: has ticks, no subscriber */
	int64_t idle_ms; /* when it became idle, or its last tick since */
	struct qc_stream *idle_prev;
	struct qc_stream *idle_next;
	uint64_t last_seq;
	bool has_version;
	int64_t last_version;
	struct qc_cobj *snapshot; /* NULL while subscribe-only; refs 0, snapshot_cap bytes */
	uint32_t snapshot_cap;
	int64_t snapshot_time;
	json_t *snapshot_json; /* qc_stream_snapshot_json(), until the next change */
	struct qc_cobj **ring; /* NULL while subscribe-only */
	uint32_t ring_cap;     /* slots allocated: grows to buffer_size */
	uint32_t ring_start;   /* slot of the oldest tick */
	uint32_t ring_count;
	struct qc_dedup *dedup;
	struct qc_group *groups; /* uthash head, insertion order */
	UT_hash_handle hh;       /* in qc_streams.by_symbol */
	char symbol[QC_SYMBOL_MAX + 1];
	char epoch[QC_STREAM_EPOCH_MAX + 1]; /* the broker's (cluster mode); "" when none */
};

struct qc_streams {
	struct qc_stream *by_symbol; /* uthash head */
	struct qc_stream *idle_head; /* the idle FIFO, oldest first (utlist DL) */
	struct qc_streams_opts o;
	uint32_t count;
	uint32_t nticks; /* streams with ticks */
	uint32_t nidle;
	uint64_t next_id;
	uint64_t nsubs;
	uint64_t idle_freed;
	uint64_t subscribe_only_freed;
	struct qc_cobj *empty; /* the snapshot of a subscribe-only stream */
	json_t *empty_json;
	void *merge;      /* scratch for snapshot merges */
	size_t merge_cap; /* its bytes */
};

#define RING_FIRST     8   /* slots of a new ring */
#define SNAPSHOT_FIRST 256 /* bytes of a new snapshot */

/* A canonical field set, built on the stack before anything changes. */
struct fieldset {
	size_t n;
	const char *f[QC_FIELDS_MAX];
	size_t keylen;
	char key[KEY_MAX];
};

bool qc_symbol_valid(const char *s)
{
	size_t i;

	if (!s || !*s)
		return false;
	for (i = 0; s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		if (i == QC_SYMBOL_MAX)
			return false;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '.' || c == '_' || c == ':' || c == '-')
			continue;
		return false;
	}
	return true;
}

bool qc_field_valid(const char *s)
{
	size_t i;

	if (!s || !*s)
		return false;
	for (i = 0; s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		if (i == QC_FIELD_MAX || c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

static int64_t monotonic_ms(void *ctx)
{
	struct timespec ts;

	(void)ctx;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct qc_streams *qc_streams_new(const struct qc_streams_opts *o)
{
	struct qc_streams *ss;

	if (!o->buffer_size || !o->dedup_window || !o->max_symbols ||
	    o->dedup_window > QC_DEDUP_WINDOW_MAX) {
		errno = EINVAL;
		return NULL;
	}
	ss = calloc(1, sizeof(*ss));
	if (!ss)
		goto fail;
	ss->empty = qc_cobj_from_text("{}", 2);
	if (!ss->empty)
		goto fail_free;
	ss->empty->refs = 0; /* the registry's: filters copy it */
	ss->empty_json = json_object();
	if (!ss->empty_json)
		goto fail_empty;
	ss->o = *o;
	if (!ss->o.clock)
		ss->o.clock = monotonic_ms;
	ss->next_id = 1;
	return ss;

fail_empty:
	free(ss->empty);
fail_free:
	free(ss);
fail:
	errno = ENOMEM;
	return NULL;
}

static int64_t now_ms(const struct qc_streams *ss)
{
	return ss->o.clock(ss->o.clock_ctx);
}

static void idle_enter(struct qc_streams *ss, struct qc_stream *s)
{
	s->idle = true;
	s->idle_ms = now_ms(ss);
	DL_APPEND2(ss->idle_head, s, idle_prev, idle_next);
	ss->nidle++;
}

static void idle_leave(struct qc_streams *ss, struct qc_stream *s)
{
	DL_DELETE2(ss->idle_head, s, idle_prev, idle_next);
	s->idle_prev = s->idle_next = NULL;
	s->idle = false;
	ss->nidle--;
}

static void free_group(struct qc_stream *s, struct qc_group *g)
{
	HASH_DELETE(hh, s->groups, g);
	free(g);
}

/* Unlinks @sub from its group, its set and the counters; frees neither @sub nor the group. */
static void unlink_sub(struct qc_sub *sub)
{
	struct qc_group *g = sub->group;
	struct qc_stream *s = sub->stream;

	if (sub->group_prev)
		sub->group_prev->group_next = sub->group_next;
	else
		g->subs = sub->group_next;
	if (sub->group_next)
		sub->group_next->group_prev = sub->group_prev;
	g->nsubs--;

	HASH_DELETE(hh, sub->set->by_stream, sub);
	sub->set->count--;

	s->nsubs--;
	s->ss->nsubs--;
}

/* Removes @sub, and its group when that was the last member. */
static void remove_sub(struct qc_sub *sub)
{
	struct qc_group *g = sub->group;
	struct qc_stream *s = sub->stream;

	if (sub->rate && s->ss->o.sub_gone)
		s->ss->o.sub_gone(s->ss->o.sub_ctx, sub);
	unlink_sub(sub);
	free(sub);
	if (!g->nsubs)
		free_group(s, g);
}

static void free_stream(struct qc_streams *ss, struct qc_stream *s)
{
	struct qc_group *g, *tmp;
	uint32_t i, n;

	/*
	 * The subscriptions leave the connections' sets too: that frees the sets' hash tables,
	 * which uthash allocated, and leaves the sets consistent. The last removal in a group
	 * frees the group.
	 */
	HASH_ITER (hh, s->groups, g, tmp) {
		for (n = g->nsubs; n; n--)
			remove_sub(g->subs);
	}
	for (i = 0; i < s->ring_count; i++)
		qc_cobj_unref(&s->ring[(s->ring_start + i) % ss->o.buffer_size]);
	if (s->idle)
		idle_leave(ss, s);
	if (s->ring)
		ss->nticks--;
	HASH_DELETE(hh, ss->by_symbol, s);
	ss->count--;
	qc_dedup_free(s->dedup);
	free(s->snapshot);
	json_decref(s->snapshot_json);
	free(s->ring);
	free(s);
}

void qc_streams_free(struct qc_streams *ss)
{
	struct qc_stream *s, *tmp;

	if (!ss)
		return;
	HASH_ITER (hh, ss->by_symbol, s, tmp) {
		free_stream(ss, s);
	}
	free(ss->empty);
	json_decref(ss->empty_json);
	free(ss->merge);
	free(ss);
}

struct qc_stream *qc_streams_find(const struct qc_streams *ss, const char *symbol)
{
	struct qc_stream *s;
	size_t len;

	if (!symbol)
		return NULL;
	len = strnlen(symbol, QC_SYMBOL_MAX + 1);
	if (!len || len > QC_SYMBOL_MAX)
		return NULL;
	HASH_FIND(hh, ss->by_symbol, symbol, len, s);
	return s;
}

/* A new subscribe-only stream of @symbol (valid, @len bytes, not in the registry). */
static struct qc_stream *new_stream(struct qc_streams *ss, const char *symbol, size_t len)
{
	struct qc_stream *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->ss = ss;
	memcpy(s->symbol, symbol, len);
	HASH_ADD_KEYPTR(hh, ss->by_symbol, s->symbol, len, s);
	if (!s->hh.tbl) {
		free(s);
		return NULL;
	}
	s->id = ss->next_id++;
	ss->count++;
	return s;
}

/*
 * Give subscribe-only @s its ring, window and snapshot. 0, -ENOSPC (max_symbols streams have
 * ticks) or -ENOMEM, with @s unchanged.
 */
static int give_ticks(struct qc_streams *ss, struct qc_stream *s)
{
	if (ss->nticks >= ss->o.max_symbols)
		return -ENOSPC;
	s->ring_cap = ss->o.buffer_size < RING_FIRST ? ss->o.buffer_size : RING_FIRST;
	s->ring = calloc(s->ring_cap, sizeof(*s->ring));
	if (!s->ring)
		goto fail;
	s->dedup = qc_dedup_new(ss->o.dedup_window);
	if (!s->dedup)
		goto fail_ring;
	s->snapshot = malloc(SNAPSHOT_FIRST);
	if (!s->snapshot)
		goto fail_dedup;
	s->snapshot_cap = SNAPSHOT_FIRST;
	memcpy(s->snapshot, ss->empty, qc_cobj_size(2, 0));
	ss->nticks++;
	if (!s->nsubs)
		idle_enter(ss, s);
	return 0;

fail_dedup:
	qc_dedup_free(s->dedup);
	s->dedup = NULL;
fail_ring:
	free(s->ring);
	s->ring = NULL;
	s->ring_cap = 0;
fail:
	return -ENOMEM;
}

struct qc_stream *qc_streams_get(struct qc_streams *ss, const char *symbol)
{
	struct qc_stream *s;
	size_t len;

	if (!qc_symbol_valid(symbol)) {
		errno = EINVAL;
		return NULL;
	}
	len = strlen(symbol);
	HASH_FIND(hh, ss->by_symbol, symbol, len, s);
	if (s)
		return s;
	if (ss->count - ss->nticks >= ss->o.max_subscribe_only) {
		errno = ENOSPC;
		return NULL;
	}
	s = new_stream(ss, symbol, len);
	if (!s)
		errno = ENOMEM;
	return s;
}

struct qc_stream *qc_streams_get_live(struct qc_streams *ss, const char *symbol)
{
	struct qc_stream *s;
	size_t len;
	int err;

	if (!qc_symbol_valid(symbol)) {
		errno = EINVAL;
		return NULL;
	}
	len = strlen(symbol);
	HASH_FIND(hh, ss->by_symbol, symbol, len, s);
	if (s && s->ring)
		return s;
	if (!s) {
		if (ss->nticks >= ss->o.max_symbols) {
			errno = ENOSPC;
			return NULL;
		}
		s = new_stream(ss, symbol, len);
		if (!s) {
			errno = ENOMEM;
			return NULL;
		}
	}
	err = give_ticks(ss, s);
	if (err) {
		qc_streams_release(ss, s);
		errno = -err;
		return NULL;
	}
	return s;
}

void qc_streams_release(struct qc_streams *ss, struct qc_stream *s)
{
	if (s && !s->nsubs && !s->ring)
		free_stream(ss, s);
}

/* @s lost its last subscriber: a subscribe-only stream goes, one with ticks becomes idle. */
static void unsubscribed(struct qc_streams *ss, struct qc_stream *s)
{
	if (s->nsubs)
		return;
	if (s->ring) {
		idle_enter(ss, s);
		return;
	}
	ss->subscribe_only_freed++;
	free_stream(ss, s);
}

uint32_t qc_streams_sweep(struct qc_streams *ss, uint32_t budget)
{
	int64_t ttl = (int64_t)ss->o.idle_ttl_s * 1000, now;
	uint32_t freed = 0, cost;
	struct qc_stream *s;

	if (!ttl || !ss->idle_head)
		return 0;
	now = now_ms(ss);
	while ((s = ss->idle_head) && now - s->idle_ms >= ttl) {
		cost = 1 + s->ring_count;
		if (freed && cost > budget)
			break;
		budget = cost > budget ? 0 : budget - cost;
		free_stream(ss, s);
		ss->idle_freed++;
		freed++;
	}
	return freed;
}

uint32_t qc_streams_count(const struct qc_streams *ss)
{
	return ss->count;
}

uint64_t qc_streams_nsubs(const struct qc_streams *ss)
{
	return ss->nsubs;
}

void qc_streams_counts(const struct qc_streams *ss, struct qc_streams_counts *out)
{
	out->streams = ss->count;
	out->with_ticks = ss->nticks;
	out->subscribe_only = ss->count - ss->nticks;
	out->idle = ss->nidle;
	out->subscriptions = ss->nsubs;
	out->idle_freed = ss->idle_freed;
	out->subscribe_only_freed = ss->subscribe_only_freed;
}

static size_t message_id_len(const char *message_id)
{
	return message_id ? strnlen(message_id, QC_MESSAGE_ID_MAX) : 0;
}

/*
 * Merge @data into the snapshot: written into the registry's scratch, then copied over the
 * snapshot (grown when it must), so that a failure changes nothing.
 */
static int merge_snapshot(struct qc_stream *s, const struct qc_cobj *data)
{
	struct qc_streams *ss = s->ss;
	size_t need;
	void *p;

	if (qc_cobj_same_keys(s->snapshot, data)) {
		/* the usual tick: every field of the snapshot, in its order; it is the new one */
		need = qc_cobj_size(data->len, data->n);
		if (need > s->snapshot_cap) {
			p = realloc(s->snapshot, need + need / 4);
			if (!p)
				return -ENOMEM;
			s->snapshot = p;
			s->snapshot_cap = (uint32_t)(need + need / 4);
		}
		memcpy(s->snapshot, data, need);
		s->snapshot->refs = 0;
		s->snapshot->spare = 0;
		goto changed;
	}
	need = qc_cobj_merge_size(s->snapshot, data);
	if (!need)
		return -ENOMEM;
	if (need > ss->merge_cap) {
		p = realloc(ss->merge, need);
		if (!p)
			return -ENOMEM;
		ss->merge = p;
		ss->merge_cap = need;
	}
	qc_cobj_merge_to(ss->merge, s->snapshot, data);
	if (need > s->snapshot_cap) {
		size_t cap = need + need / 4;

		p = realloc(s->snapshot, cap);
		if (!p)
			return -ENOMEM;
		s->snapshot = p;
		s->snapshot_cap = (uint32_t)cap;
	}
	memcpy(s->snapshot, ss->merge, need);
changed:
	json_decref(s->snapshot_json);
	s->snapshot_json = NULL;
	return 0;
}

/* Make room for one more tick while the ring is still filling up; 0 or -ENOMEM. */
static int ring_reserve(struct qc_stream *s)
{
	uint32_t size = s->ss->o.buffer_size, cap;
	struct qc_cobj **p;

	if (s->ring_count < s->ring_cap || s->ring_cap == size)
		return 0;
	/* not yet full, so never wrapped: the slots are in order from 0 */
	cap = s->ring_cap > size / 2 ? size : s->ring_cap * 2;
	p = realloc(s->ring, (size_t)cap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	s->ring = p;
	s->ring_cap = cap;
	return 0;
}

/* Store @t as the newest tick (the ring has room: ring_reserve()), dropping the oldest if full. */
static void ring_append(struct qc_stream *s, struct qc_cobj *t)
{
	uint32_t size = s->ss->o.buffer_size;

	if (s->ring_count < size) {
		s->ring[(s->ring_start + s->ring_count) % size] = t;
		s->ring_count++;
		return;
	}
	qc_cobj_unref(&s->ring[s->ring_start]);
	s->ring[s->ring_start] = t;
	s->ring_start = s->ring_start + 1 == size ? 0 : s->ring_start + 1;
}

void qc_tick_view(struct qc_cobj *t, uint64_t seq, struct qc_tick *out)
{
	const char *x = qc_cobj_extra(t);

	out->seq = seq;
	memcpy(&out->timestamp, x, sizeof(out->timestamp));
	out->message_id = x + sizeof(out->timestamp);
	out->data = t;
}

int qc_stream_apply(struct qc_stream *s, const struct qc_tick_in *in, struct qc_tick *out)
{
	size_t idlen = message_id_len(in->message_id), esclen;
	char esc[6 * QC_MESSAGE_ID_MAX + 1];
	uint64_t hash = 0;
	struct qc_streams *ss = s->ss;
	struct qc_cobj *t;
	char *x;
	int err;

	if (!in->data || !in->data->n)
		return -EINVAL;
	if (!s->ring) {
		err = give_ticks(ss, s);
		if (err)
			return err;
	}
	if (idlen) {
		hash = qc_dedup_hash(in->message_id, idlen);
		if (qc_dedup_seen_hash(s->dedup, hash))
			return QC_TICK_DUPLICATE;
	}
	if (in->has_version && s->has_version && in->version <= s->last_version)
		return QC_TICK_STALE;

	esclen = qc_json_escape(esc, idlen ? in->message_id : "", idlen);
	esc[esclen] = '\0';
	t = qc_cobj_copy(in->data, sizeof(int64_t) + esclen + 1);
	if (!t || ring_reserve(s) || (idlen && qc_dedup_reserve(s->dedup)) ||
	    merge_snapshot(s, in->data)) {
		qc_cobj_unref(&t);
		return -ENOMEM;
	}
	x = qc_cobj_extra(t);
	memcpy(x, &in->timestamp, sizeof(in->timestamp));
	memcpy(x + sizeof(in->timestamp), esc, esclen + 1);

	s->last_seq++;
	if (in->has_version) {
		s->has_version = true;
		s->last_version = in->version;
	}
	s->snapshot_time = in->timestamp;
	ring_append(s, t);

	if (idlen)
		qc_dedup_insert_hash(s->dedup, hash);
	if (s->idle) {
		/* nobody subscribes: the TTL counts from this tick */
		s->idle_ms = now_ms(ss);
		if (s->idle_next) {
			DL_DELETE2(ss->idle_head, s, idle_prev, idle_next);
			DL_APPEND2(ss->idle_head, s, idle_prev, idle_next);
		}
	}
	if (out)
		qc_tick_view(t, s->last_seq, out);
	return QC_TICK_ACCEPTED;
}

static void ring_empty(struct qc_stream *s)
{
	for (uint32_t i = 0; i < s->ring_count; i++)
		qc_cobj_unref(&s->ring[(s->ring_start + i) % s->ss->o.buffer_size]);
	s->ring_start = 0;
	s->ring_count = 0;
}

int qc_stream_apply_seq(struct qc_stream *s, const struct qc_tick_in *in, uint64_t seq,
                        struct qc_tick *out)
{
	size_t idlen = message_id_len(in->message_id), esclen;
	char esc[6 * QC_MESSAGE_ID_MAX + 1];
	uint64_t hash = 0;
	struct qc_streams *ss = s->ss;
	struct qc_cobj *t;
	int err;

	if (!in->data || !in->data->n || !seq)
		return -EINVAL;
	if (!s->ring) {
		err = give_ticks(ss, s);
		if (err)
			return err;
	}
	if (idlen)
		hash = qc_dedup_hash(in->message_id, idlen);

	/* the broker checked duplicates and versions for the cluster: the tick is taken as is */
	esclen = qc_json_escape(esc, idlen ? in->message_id : "", idlen);
	esc[esclen] = '\0';
	t = qc_cobj_copy(in->data, sizeof(int64_t) + esclen + 1);
	if (!t || ring_reserve(s) || (idlen && qc_dedup_reserve(s->dedup)) ||
	    merge_snapshot(s, in->data)) {
		qc_cobj_unref(&t);
		return -ENOMEM;
	}
	memcpy(qc_cobj_extra(t), &in->timestamp, sizeof(in->timestamp));
	memcpy(qc_cobj_extra(t) + sizeof(in->timestamp), esc, esclen + 1);

	if (seq != s->last_seq + 1)
		ring_empty(
		    s); /* a gap, or a log that began again: the ring keeps consecutive seqs */
	s->last_seq = seq;
	if (in->has_version) {
		s->has_version = true;
		s->last_version = in->version;
	}
	s->snapshot_time = in->timestamp;
	ring_append(s, t);

	if (idlen && !qc_dedup_seen_hash(s->dedup, hash))
		qc_dedup_insert_hash(s->dedup, hash);
	if (s->idle) {
		s->idle_ms = now_ms(ss);
		if (s->idle_next) {
			DL_DELETE2(ss->idle_head, s, idle_prev, idle_next);
			DL_APPEND2(ss->idle_head, s, idle_prev, idle_next);
		}
	}
	if (out)
		qc_tick_view(t, seq, out);
	return QC_TICK_ACCEPTED;
}

void qc_stream_prefetch(const struct qc_stream *s, int stage, const char *message_id)
{
	size_t idlen;

	switch (stage) {
	case 0:
		__builtin_prefetch(s);
		__builtin_prefetch((const char *)s + 64);
		return;
	case 1:
		if (!s->ring)
			return;
		__builtin_prefetch(s->dedup);
		__builtin_prefetch(s->snapshot, 1);
		__builtin_prefetch(&s->ring[(s->ring_start + s->ring_count) % s->ss->o.buffer_size],
		                   1);
		return;
	default:
		idlen = message_id_len(message_id);
		if (s->ring && idlen)
			qc_dedup_prefetch(s->dedup, qc_dedup_hash(message_id, idlen));
		return;
	}
}

bool qc_stream_seen(const struct qc_stream *s, const char *message_id)
{
	size_t idlen = message_id_len(message_id);

	return idlen && s->dedup && qc_dedup_seen(s->dedup, message_id, idlen);
}

const char *qc_stream_symbol(const struct qc_stream *s)
{
	return s->symbol;
}

uint64_t qc_stream_id(const struct qc_stream *s)
{
	return s->id;
}

const char *qc_stream_epoch(const struct qc_stream *s)
{
	return s->epoch;
}

void qc_stream_set_epoch(struct qc_stream *s, const char *epoch)
{
	if (!strcmp(s->epoch, epoch))
		return;
	if (s->epoch[0]) {
		/* the broker's log began again: its seqs and versions with it */
		ring_empty(s);
		s->last_seq = 0;
		s->has_version = false;
	}
	snprintf(s->epoch, sizeof(s->epoch), "%s", epoch);
}

bool qc_stream_has_ticks(const struct qc_stream *s)
{
	return s->ring != NULL;
}

uint64_t qc_stream_last_seq(const struct qc_stream *s)
{
	return s->last_seq;
}

const struct qc_cobj *qc_stream_snapshot(const struct qc_stream *s)
{
	return s->snapshot ? s->snapshot : s->ss->empty;
}

json_t *qc_stream_snapshot_json(struct qc_stream *s)
{
	if (!s->snapshot)
		return s->ss->empty_json;
	if (!s->snapshot_json)
		s->snapshot_json = qc_cobj_to_json(s->snapshot);
	return s->snapshot_json;
}

int64_t qc_stream_snapshot_time(const struct qc_stream *s)
{
	return s->snapshot_time;
}

/* Every accepted tick enters the ring, so the seqs in it are consecutive up to last_seq. */
uint64_t qc_stream_oldest_seq(const struct qc_stream *s)
{
	return s->ring_count ? s->last_seq - s->ring_count + 1 : 0;
}

bool qc_stream_tick(const struct qc_stream *s, uint64_t seq, struct qc_tick *out)
{
	uint64_t oldest = qc_stream_oldest_seq(s);

	if (!s->ring_count || seq < oldest || seq > s->last_seq)
		return false;
	qc_tick_view(s->ring[(s->ring_start + (seq - oldest)) % s->ss->o.buffer_size], seq, out);
	return true;
}

/*
 * Sorts and deduplicates @fields into @fs by insertion (at most QC_FIELDS_MAX distinct, so no
 * allocation), then writes the key. -EINVAL on a bad name or too many distinct names.
 */
static int canonical_fields(struct fieldset *fs, const char *const *fields, size_t nfields)
{
	size_t i, lo, hi, mid, len;
	char *p;
	int cmp;

	fs->n = 0;
	if (nfields && !fields)
		return -EINVAL;
	for (i = 0; i < nfields; i++) {
		if (!qc_field_valid(fields[i]))
			return -EINVAL;
		lo = 0;
		hi = fs->n;
		cmp = 1;
		while (lo < hi) {
			mid = lo + (hi - lo) / 2;
			cmp = strcmp(fields[i], fs->f[mid]);
			if (!cmp)
				break;
			if (cmp < 0)
				hi = mid;
			else
				lo = mid + 1;
		}
		if (!cmp)
			continue;
		if (fs->n == QC_FIELDS_MAX)
			return -EINVAL;
		memmove(&fs->f[lo + 1], &fs->f[lo], (fs->n - lo) * sizeof(fs->f[0]));
		fs->f[lo] = fields[i];
		fs->n++;
	}

	p = fs->key;
	*p++ = (char)fs->n;
	for (i = 0; i < fs->n; i++) {
		len = strlen(fs->f[i]) + 1;
		memcpy(p, fs->f[i], len);
		p += len;
	}
	fs->keylen = (size_t)(p - fs->key);
	return 0;
}

/* The group of @fs in @s, created (with no member) when there is none; NULL on ENOMEM. */
static struct qc_group *get_group(struct qc_stream *s, const struct fieldset *fs)
{
	struct qc_group *g;
	const char *f;
	size_t i;

	HASH_FIND(hh, s->groups, fs->key, fs->keylen, g);
	if (g)
		return g;

	g = calloc(1, sizeof(*g) + fs->n * sizeof(g->fields[0]) + fs->keylen);
	if (!g)
		return NULL;
	g->nfields = fs->n;
	g->keylen = fs->keylen;
	g->key = (char *)&g->fields[fs->n];
	memcpy(g->key, fs->key, fs->keylen);
	f = g->key + 1;
	for (i = 0; i < fs->n; i++) {
		g->fields[i] = f;
		f += strlen(f) + 1;
	}
	HASH_ADD_KEYPTR(hh, s->groups, g->key, g->keylen, g);
	if (!g->hh.tbl) {
		free(g);
		return NULL;
	}
	return g;
}

static void link_sub(struct qc_group *g, struct qc_sub *sub)
{
	sub->group = g;
	sub->group_prev = NULL;
	sub->group_next = g->subs;
	if (g->subs)
		g->subs->group_prev = sub;
	g->subs = sub;
	g->nsubs++;
}

int qc_stream_subscribe(struct qc_streams *ss, struct qc_stream *s, struct qc_sub_set *set,
                        void *conn, const char *const *fields, size_t nfields, struct qc_sub **out)
{
	struct fieldset fs;
	struct qc_group *g;
	struct qc_sub *sub;
	int err;

	err = canonical_fields(&fs, fields, nfields);
	if (err)
		return err;
	HASH_FIND_PTR(set->by_stream, &s, sub);
	if (sub)
		return -EEXIST;

	g = get_group(s, &fs);
	if (!g)
		return -ENOMEM;
	sub = calloc(1, sizeof(*sub));
	if (!sub)
		goto fail_group;
	sub->stream = s;
	sub->conn = conn;
	sub->set = set;
	HASH_ADD_PTR(set->by_stream, stream, sub);
	if (!sub->hh.tbl)
		goto fail_free;
	set->count++;

	link_sub(g, sub);
	s->nsubs++;
	ss->nsubs++;
	if (s->idle)
		idle_leave(ss, s);
	if (out)
		*out = sub;
	return 0;

fail_free:
	free(sub);
fail_group:
	if (!g->nsubs)
		free_group(s, g);
	return -ENOMEM;
}

int qc_stream_set_filter(struct qc_streams *ss, struct qc_sub *sub, const char *const *fields,
                         size_t nfields)
{
	struct qc_group *old = sub->group, *g;
	struct fieldset fs;
	int err;

	(void)ss;
	err = canonical_fields(&fs, fields, nfields);
	if (err)
		return err;
	if (fs.keylen == old->keylen && !memcmp(fs.key, old->key, fs.keylen))
		return 0;
	g = get_group(sub->stream, &fs);
	if (!g)
		return -ENOMEM;

	if (sub->group_prev)
		sub->group_prev->group_next = sub->group_next;
	else
		old->subs = sub->group_next;
	if (sub->group_next)
		sub->group_next->group_prev = sub->group_prev;
	old->nsubs--;
	if (!old->nsubs)
		free_group(sub->stream, old);
	link_sub(g, sub);
	return 0;
}

int qc_stream_unsubscribe(struct qc_streams *ss, struct qc_stream *s, struct qc_sub_set *set)
{
	struct qc_sub *sub;

	HASH_FIND_PTR(set->by_stream, &s, sub);
	if (!sub)
		return -ENOENT;
	remove_sub(sub);
	unsubscribed(ss, s);
	return 0;
}

void qc_stream_unsubscribe_all(struct qc_streams *ss, struct qc_sub_set *set)
{
	struct qc_sub *sub, *tmp;
	struct qc_stream *s;

	HASH_ITER (hh, set->by_stream, sub, tmp) {
		s = sub->stream;
		remove_sub(sub);
		unsubscribed(ss, s);
	}
}

struct qc_sub *qc_sub_set_find(const struct qc_sub_set *set, const struct qc_stream *s)
{
	struct qc_sub *sub;

	HASH_FIND_PTR(set->by_stream, &s, sub);
	return sub;
}

uint32_t qc_stream_nsubs(const struct qc_stream *s)
{
	return s->nsubs;
}

struct qc_group *qc_stream_groups(const struct qc_stream *s)
{
	return s->groups;
}

struct qc_group *qc_group_next(const struct qc_group *g)
{
	return g->hh.next;
}

struct qc_sub *qc_group_subs(const struct qc_group *g)
{
	return g->subs;
}

uint32_t qc_group_nsubs(const struct qc_group *g)
{
	return g->nsubs;
}

size_t qc_group_nfields(const struct qc_group *g)
{
	return g->nfields;
}

const char *const *qc_group_fields(const struct qc_group *g)
{
	return g->fields;
}

json_t *qc_fields_filter(const char *const *fields, size_t nfields, json_t *data)
{
	json_t *out = NULL, *value;
	size_t i;

	if (!nfields)
		return json_incref(data);
	for (i = 0; i < nfields; i++) {
		value = json_object_get(data, fields[i]);
		if (!value)
			continue;
		if (!out) {
			out = json_object();
			if (!out)
				return NULL;
		}
		/* The name equals a key of @data, so it is valid UTF-8 already. */
		if (json_object_set_nocheck(out, fields[i], value))
			goto fail_out;
	}
	return out;

fail_out:
	json_decref(out);
	return NULL;
}

struct qc_cobj *qc_group_filter(const struct qc_group *g, struct qc_cobj *data)
{
	return qc_cobj_filter(data, g->fields, g->nfields);
}
