/*
 * hub_stream: market data in the hub. Validates and applies published ticks (all or nothing),
 * fans each accepted tick out once per distinct field set among its subscribers, conflates a
 * slow subscriber's pending ticks of one symbol, holds back and merges the ticks of
 * subscriptions with max_hz, serves the stream actions (subscribe with snapshot and recovery
 * by seq, filters, buffered data, market data, publish), and frees idle streams once a second.
 *
 * Symbols are bounded twice (stream.c): a publish may give up to streams.max_symbols symbols
 * their ticks, a subscribe may name up to streams.max_subscribe_only symbols that have none.
 * A subscribe never counts against the first bound, so subscribers cannot lock a feed out.
 */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hub_priv.h"
#include "quotecast/ingest.h"

#define BUFFERED_DEFAULT 100 /* get_buffered_data without limit */
#define PREFETCH_AHEAD   4   /* ticks between the stages of qc_stream_prefetch() */
/*
 * Ring entries released per sweep (once a second): freeing a full ring of 1000 three-field
 * ticks took 0.2 ms here, so a pass stays near 4 ms and frees ~20 such streams.
 */
#define SWEEP_BUDGET 20000
#define NOT_QUEUED   UINT32_MAX /* struct qc_hz.idx outside the heap */

static void rate_gone(void *ctx, struct qc_sub *sub);

static int64_t stream_clock(void *ctx)
{
	struct qc_hub *h = ctx;
	struct timespec ts;

	if (h->clock)
		return h->clock(h->clock_ctx);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int qc_hub_streams_init(struct qc_hub *h)
{
	const struct qc_config *cfg = h->cfg;
	struct qc_streams_opts o = {
	    .buffer_size = cfg->streams.buffer_size,
	    .dedup_window = cfg->streams.dedup_window,
	    .max_symbols = cfg->streams.max_symbols,
	    .max_subscribe_only = cfg->streams.max_subscribe_only,
	    .idle_ttl_s = cfg->streams.idle_ttl_s,
	    .clock = stream_clock,
	    .clock_ctx = h,
	    .sub_gone = rate_gone,
	    .sub_ctx = h,
	};

	h->streams = qc_streams_new(&o);
	return h->streams ? 0 : -ENOMEM;
}

void qc_hub_set_clock(struct qc_hub *h, int64_t (*now_ms)(void *ctx), void *ctx)
{
	h->clock = now_ms;
	h->clock_ctx = ctx;
}

void qc_hub_streams_sweep(struct qc_hub *h)
{
	qc_streams_sweep(h->streams, SWEEP_BUDGET);
}

/*
 * The batch being published (single-threaded: one at a time): read by the scanner from a
 * publisher's frame or an HTTP body, or converted from checked tick trees. Its memory is kept
 * for the next one.
 */
static struct qc_ingest batch = {.request_id = SIZE_MAX, .trace_id = SIZE_MAX};

void qc_hub_streams_free(struct qc_hub *h)
{
	qc_streams_free(h->streams); /* every subscription's max_hz state leaves the heap */
	free(h->rate_heap);
	h->rate_heap = NULL;
	qc_demo_free(h->demo);
	qc_ingest_free(&batch); /* the next publish grows it again */
}

void qc_hub_streams_closed(struct qc_hub *h, struct qc_conn *c)
{
	qc_stream_unsubscribe_all(h->streams, &c->streams);
}

json_t *qc_hub_streaming_stats(struct qc_hub *h)
{
	struct qc_streams_counts n;

	qc_streams_counts(h->streams, &n);
	return json_pack(
	    "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
	    "active_streams", (json_int_t)n.streams, "total_subscribers",
	    (json_int_t)n.subscriptions, "total_messages", (json_int_t)h->st.ticks_accepted,
	    "total_dropped", (json_int_t)h->st.ticks_stale, "total_deduplicated",
	    (json_int_t)h->st.ticks_duplicate, "total_conflated", (json_int_t)h->st.ticks_conflated,
	    "total_rate_merged", (json_int_t)h->st.ticks_rate_merged, "rate_pending",
	    (json_int_t)h->rate_n, "total_deliveries", (json_int_t)h->st.tick_deliveries,
	    "total_published", (json_int_t)h->st.ticks_published, "subscribe_only",
	    (json_int_t)n.subscribe_only, "idle_streams", (json_int_t)n.idle, "idle_freed",
	    (json_int_t)n.idle_freed, "subscribe_only_freed", (json_int_t)n.subscribe_only_freed);
}

/* ---- encoding ---------------------------------------------------------------------------- */

/*
 * A stream's epoch names one life of its log (SPEC 2.9): the stream id (never reused in this
 * process) mixed with the process's random node id (splitmix64), 48 bits in hex. A restart or
 * a stream freed and made again gives another; nothing needs storing. In cluster mode the
 * broker's log has the epoch (qc_stream_epoch(), set by qc_hub_broker_tick()).
 */
void qc_hub_stream_epoch(const struct qc_hub *h, const struct qc_stream *s, char *out)
{
	static const char hex[] = "0123456789abcdef";
	uint64_t z = strtoull(h->node, NULL, 16) + qc_stream_id(s) * 0x9e3779b97f4a7c15ULL;

	/* cluster mode: the broker's log names its life, the same on every node */
	if (qc_stream_epoch(s)[0]) {
		snprintf(out, QC_EPOCH_LEN + 1, "%s", qc_stream_epoch(s));
		return;
	}

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	for (int i = QC_EPOCH_LEN - 1; i >= 0; i--, z >>= 4)
		out[i] = hex[z & 15];
	out[QC_EPOCH_LEN] = '\0';
}

/* Decimal digits of @v into @out (at least 20 bytes); their count. */
static size_t fmt_u64(char *out, uint64_t v)
{
	char tmp[20];
	size_t n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

static int put_i64(int64_t v)
{
	char buf[21];
	size_t n = 0;

	if (v < 0) {
		buf[n++] = '-';
		n += fmt_u64(buf + n, v == INT64_MIN ? (uint64_t)INT64_MAX + 1 : (uint64_t)-v);
	} else {
		n = fmt_u64(buf, (uint64_t)v);
	}
	return qc_msg_build_put(buf, n);
}

#define PUT(lit) qc_msg_build_put(lit, sizeof(lit) - 1)

/*
 * One stream_data event for @enc, written as jansson would print the tree the protocol
 * describes (codec.c's event envelope around {"symbol","data","timestamp","seq","epoch",
 * "message_id"?, @flag?}; sio.c's 42["stream_data",...[,"@offset"]] for Socket.IO): the
 * symbol and the epoch need no escaping (qc_symbol_valid(), hex), the data and the message id
 * are kept as they are sent. A new field of the event goes here, once for both encodings.
 */
static struct qc_msg *encode_tick(const struct qc_hub *h, uint8_t enc, const struct qc_stream *s,
                                  const struct qc_cobj *data, uint64_t seq, int64_t ts,
                                  const char *mid, const char *flag, uint64_t offset)
{
	const char *sym = qc_stream_symbol(s);
	char epoch[QC_EPOCH_LEN + 1];

	qc_hub_stream_epoch(h, s, epoch);
	qc_msg_build_start();
	if (enc == QC_ENC_SIO ? PUT("42[\"stream_data\",{\"symbol\":\"")
	                      : PUT("{\"type\":\"event\",\"event\":\"stream_data\",\"data\":"
	                            "{\"symbol\":\""))
		return NULL;
	if (qc_msg_build_put(sym, strlen(sym)) || PUT("\",\"data\":") ||
	    qc_msg_build_put(data->text, data->len) || PUT(",\"timestamp\":") || put_i64(ts) ||
	    PUT(",\"seq\":") || put_i64((int64_t)seq) || PUT(",\"epoch\":\"") ||
	    qc_msg_build_put(epoch, QC_EPOCH_LEN) || PUT("\""))
		return NULL;
	if (mid && mid[0] &&
	    (PUT(",\"message_id\":\"") || qc_msg_build_put(mid, strlen(mid)) || PUT("\"")))
		return NULL;
	if (flag && (PUT(",\"") || qc_msg_build_put(flag, strlen(flag)) || PUT("\":true")))
		return NULL;
	if (enc != QC_ENC_SIO)
		return PUT("}}") ? NULL : qc_msg_build_finish();
	/* Socket.IO connection state recovery: the event's offset as its last argument */
	if (PUT("}") || (offset && (PUT(",\"") || put_i64((int64_t)offset) || PUT("\""))) ||
	    PUT("]"))
		return NULL;
	return qc_msg_build_finish();
}

/*
 * One stream_data event for many receivers, framed per encoding on first use. Each frame keeps
 * a reference to the (filtered) data it carries, so that conflation can merge queued ticks
 * without parsing them.
 */
struct tick_frames {
	struct qc_hub *h;
	const struct qc_stream *s;
	struct qc_cobj *data; /* borrowed */
	uint64_t seq;
	int64_t ts;
	const char *mid;
	const char *flag;
	uint16_t covers;     /* a merged tick: the seqs before @seq it stands for (qc_msg) */
	struct qc_msg *m[2]; /* by enum qc_enc */
};

static void tick_frames_init(struct tick_frames *f, struct qc_hub *h, const struct qc_stream *s,
                             struct qc_cobj *data, uint64_t seq, int64_t ts, const char *mid,
                             const char *flag)
{
	*f = (struct tick_frames){
	    .h = h, .s = s, .data = data, .seq = seq, .ts = ts, .mid = mid, .flag = flag};
}

static struct qc_msg *tick_frame(struct tick_frames *f, uint8_t enc)
{
	uint64_t offset = 0;
	struct qc_msg *m;

	if (enc > QC_ENC_SIO)
		return NULL;
	if (f->m[enc])
		return f->m[enc];
	/* one offset per event, in its one Socket.IO encoding shared by every receiver */
	if (enc == QC_ENC_SIO)
		offset = qc_hub_next_offset(f->h, QC_MSG_TICK);
	m = encode_tick(f->h, enc, f->s, f->data, f->seq, f->ts, f->mid, f->flag, offset);
	if (!m)
		return NULL;
	m->offset = offset;
	m->kind = QC_MSG_TICK;
	m->stream_id = qc_stream_id(f->s);
	m->seq = f->seq;
	m->covers = f->covers;
	m->meta = qc_cobj_filter(f->data, NULL, 0); /* a reference (a copy if not refcounted) */
	if (!m->meta) {
		qc_msg_unref(&m);
		return NULL;
	}
	f->m[enc] = m;
	return m;
}

static void tick_frames_release(struct tick_frames *f)
{
	qc_msg_unref(&f->m[0]);
	qc_msg_unref(&f->m[1]);
}

/* One stream_data event for one receiver. @data is borrowed; @covers as in qc_msg. */
static int send_tick(struct qc_hub *h, struct qc_conn *c, const struct qc_stream *s,
                     struct qc_cobj *data, uint64_t seq, int64_t ts, const char *mid,
                     const char *flag, uint64_t covers)
{
	struct tick_frames f;
	struct qc_msg *m;
	int ret;

	tick_frames_init(&f, h, s, data, seq, ts, mid, flag);
	f.covers = covers > UINT16_MAX ? UINT16_MAX : (uint16_t)covers;
	m = tick_frame(&f, c->enc);
	if (!m) {
		qc_hub_close(h, c, 1011, QC_CLOSE_NOW);
		return -ENOMEM;
	}
	ret = qc_hub_send(h, c, m);
	tick_frames_release(&f);
	return ret;
}

/*
 * *@acc updated with @b: the newest value of each field, @b's fields after @acc's. The one
 * merge of queued ticks (conflation), of a max_hz subscription's pending ticks and of a
 * collapsed replay. A tick with the same keys in the same order simply replaces what was
 * there. 0 or -ENOMEM (*@acc unchanged).
 */
static int merge_into(struct qc_cobj **acc, struct qc_cobj *b)
{
	struct qc_cobj *next;

	if (!*acc || qc_cobj_same_keys(*acc, b))
		next = qc_cobj_ref(b);
	else
		next = qc_cobj_merge(*acc, b);
	if (!next)
		return -ENOMEM;
	qc_cobj_unref(acc);
	*acc = next;
	return 0;
}

/* ---- fan-out ----------------------------------------------------------------------------- */

/*
 * The receiver's queue is past limits.conflate_bytes: merge its queued ticks of this stream
 * with the new one (@f) into a single frame (newest value per field, newest seq) made for it
 * alone. Room and direct messages in the queue are untouched.
 */
static __attribute__((noinline)) int conflate(struct qc_hub *h, struct qc_conn *c,
                                              const struct qc_stream *s, struct tick_frames *f)
{
	struct qc_outq *q = &c->outq;
	uint64_t sid = qc_stream_id(s), from = f->seq - f->covers;
	struct qc_cobj *acc = NULL;
	uint32_t removed;
	int ret;

	for (uint32_t i = 0; i < q->count; i++) {
		struct qc_msg *qm = q->slot[(q->head + i) & (q->cap - 1)];

		if (qm->kind != QC_MSG_TICK || qm->stream_id != sid || !qm->meta)
			continue;
		if (merge_into(&acc, qm->meta)) {
			qc_cobj_unref(&acc);
			return -ENOMEM;
		}
		if (qm->seq - qm->covers < from)
			from = qm->seq - qm->covers;
	}
	if (!acc) {
		/* nothing of this stream is queued: nothing to merge with */
		struct qc_msg *m = tick_frame(f, c->enc);

		return m ? qc_hub_send(h, c, m) : -ENOMEM;
	}
	if (merge_into(&acc, f->data)) {
		qc_cobj_unref(&acc);
		return -ENOMEM;
	}
	removed = qc_outq_remove_stream(q, sid);
	h->st.ticks_conflated += removed;
	c->conflated += removed;
	ret = send_tick(h, c, s, acc, f->seq, f->ts, f->mid, "conflated", f->seq - from);
	qc_cobj_unref(&acc);
	return ret;
}

/*
 * Queue @f for @c: conflated with its queued ticks of @s when its queue is past the bound.
 * Inlined into the fan-out's loop (a call here cost ~25 instructions a delivery, measured with
 * bench/tickbench under cachegrind); conflate() and rate_hold() are kept out of it.
 */
static inline __attribute__((always_inline)) int
queue_tick(struct qc_hub *h, struct qc_conn *c, const struct qc_stream *s, struct tick_frames *f)
{
	struct qc_msg *m = tick_frame(f, c->enc);

	if (!m)
		return -ENOMEM;
	if (c->outq.bytes + m->len > h->cfg->limits.conflate_bytes)
		return conflate(h, c, s, f);
	return qc_hub_send(h, c, m);
}

/* ---- max_hz ------------------------------------------------------------------------------ */

/*
 * A subscription with max_hz (SPEC 2.11) is sent at most one stream_data event per 1/max_hz.
 * A tick that comes sooner after the last one sent becomes the subscription's pending update,
 * and the ticks after it are merged into it (merge_into(), as conflation merges: the newest
 * value of each field, the newest seq, flagged "conflated" when it holds more than one tick).
 * The pending update leaves when the interval has run out, whether or not another tick comes:
 * subscriptions with one are a min-heap by due time, and the hub asks the transport for one
 * wake, for the earliest (qc_hub_rate_fire() pops only what is due). A subscription without
 * max_hz has no state (sub->rate NULL) and costs the fan-out one test.
 */
struct qc_hz {
	struct qc_sub *sub;
	double hz;
	int64_t interval_us;
	int64_t next_us;        /* no delivery before this (the hub's clock, microseconds) */
	uint32_t idx;           /* in h->rate_heap while an update is pending, else NOT_QUEUED */
	uint32_t merged;        /* ticks in the pending update (0: none) */
	uint64_t seq;           /* the newest seq it holds */
	struct qc_cobj *data;   /* its data (filtered), or NULL */
	struct qc_cobj *newest; /* the newest tick's ring entry: its timestamp and message id */
};

/* The hub's steady clock in microseconds (qc_hub_set_clock's milliseconds in tests). */
static int64_t now_us(const struct qc_hub *h)
{
	struct timespec ts;

	if (h->clock)
		return h->clock(h->clock_ctx) * 1000;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void heap_set(struct qc_hub *h, uint32_t i, struct qc_hz *r)
{
	h->rate_heap[i] = r;
	r->idx = i;
}

static void heap_up(struct qc_hub *h, uint32_t i)
{
	struct qc_hz *r = h->rate_heap[i];

	while (i) {
		uint32_t p = (i - 1) / 2;

		if (h->rate_heap[p]->next_us <= r->next_us)
			break;
		heap_set(h, i, h->rate_heap[p]);
		i = p;
	}
	heap_set(h, i, r);
}

static void heap_down(struct qc_hub *h, uint32_t i)
{
	struct qc_hz *r = h->rate_heap[i];

	for (;;) {
		uint32_t k = 2 * i + 1;

		if (k >= h->rate_n)
			break;
		if (k + 1 < h->rate_n && h->rate_heap[k + 1]->next_us < h->rate_heap[k]->next_us)
			k++;
		if (r->next_us <= h->rate_heap[k]->next_us)
			break;
		heap_set(h, i, h->rate_heap[k]);
		i = k;
	}
	heap_set(h, i, r);
}

static int heap_push(struct qc_hub *h, struct qc_hz *r)
{
	if (h->rate_n == h->rate_cap) {
		uint32_t cap = h->rate_cap ? h->rate_cap * 2 : 64;
		struct qc_hz **p = realloc(h->rate_heap, (size_t)cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		h->rate_heap = p;
		h->rate_cap = cap;
	}
	heap_set(h, h->rate_n++, r);
	heap_up(h, r->idx);
	return 0;
}

static void heap_remove(struct qc_hub *h, struct qc_hz *r)
{
	uint32_t i = r->idx;
	struct qc_hz *last;

	if (i == NOT_QUEUED)
		return;
	r->idx = NOT_QUEUED;
	last = h->rate_heap[--h->rate_n];
	if (last == r)
		return;
	heap_set(h, i, last);
	heap_up(h, i);
	heap_down(h, last->idx);
}

/* Ask the transport to wake the hub when the earliest pending update is due. */
static void rate_arm(struct qc_hub *h)
{
	int64_t due, now;

	if (!h->rate_n || !h->t.wake)
		return;
	due = h->rate_heap[0]->next_us;
	if (h->rate_wake_us && h->rate_wake_us <= due)
		return; /* a wake is coming no later than that */
	now = now_us(h);
	h->rate_wake_us = due;
	h->t.wake(h->t.ctx, due > now ? due - now : 0);
}

/* Forget @r's pending update (it is out of the heap). */
static void rate_drop(struct qc_hz *r)
{
	qc_cobj_unref(&r->data);
	qc_cobj_unref(&r->newest);
	r->merged = 0;
	r->seq = 0;
}

/*
 * Queue @r's pending update now (unless its connection cannot take it: a suspended session
 * gets those ticks from the ring when it resumes, since its last_seq stays) and start the next
 * interval.
 */
static void rate_flush(struct qc_hub *h, struct qc_hz *r, int64_t now)
{
	struct qc_sub *sub = r->sub;
	struct qc_conn *c = sub->conn;
	struct tick_frames f;
	struct qc_tick t;

	heap_remove(h, r);
	r->next_us = now + r->interval_us;
	if (r->merged && !c->closing && !c->suspended) {
		qc_tick_view(r->newest, r->seq, &t);
		tick_frames_init(&f, h, sub->stream, r->data, r->seq, t.timestamp, t.message_id,
		                 r->merged > 1 ? "conflated" : NULL);
		/* what it stands for since the last seq queued, for a rewind (hub_session.c) */
		if (r->seq > sub->last_seq + 1)
			f.covers = r->seq - sub->last_seq - 1 > UINT16_MAX
			               ? UINT16_MAX
			               : (uint16_t)(r->seq - sub->last_seq - 1);
		if (!queue_tick(h, c, sub->stream, &f)) {
			sub->last_seq = r->seq;
			h->st.tick_deliveries++;
		}
		tick_frames_release(&f);
	}
	rate_drop(r);
}

/*
 * @t (its data for this subscription: @f->data) for a subscription with max_hz: false when it
 * may go now (the interval has run out and nothing is pending), true when it was taken into
 * the pending update (sent now if that is overdue, else when it is due). *@now is the clock,
 * read on first use (0: not yet) and kept for the rest of the tick's fan-out.
 */
static __attribute__((noinline)) bool rate_hold(struct qc_hub *h, struct qc_sub *sub,
                                                struct tick_frames *f, const struct qc_tick *t,
                                                int64_t *pnow)
{
	struct qc_hz *r = sub->rate;
	int64_t now = *pnow ? *pnow : (*pnow = now_us(h));

	if (!r->merged && now >= r->next_us) {
		r->next_us = now + r->interval_us;
		return false;
	}
	if (merge_into(&r->data, f->data)) {
		/* ENOMEM: better too soon than lost or out of order */
		if (r->merged)
			rate_flush(h, r, now);
		return false;
	}
	if (r->merged++)
		h->st.ticks_rate_merged++;
	qc_cobj_unref(&r->newest);
	r->newest = qc_cobj_ref(t->data);
	r->seq = t->seq;
	if (now >= r->next_us || (r->idx == NOT_QUEUED && heap_push(h, r)))
		rate_flush(h, r, now); /* overdue (a late wake), or no room to wait */
	else
		rate_arm(h);
	return true;
}

void qc_hub_rate_fire(struct qc_hub *h)
{
	int64_t now = now_us(h);

	h->rate_wake_us = 0;
	while (h->rate_n && h->rate_heap[0]->next_us <= now)
		rate_flush(h, h->rate_heap[0], now);
	rate_arm(h);
}

/* stream.c frees @sub: its pending update goes with it. */
static void rate_gone(void *ctx, struct qc_sub *sub)
{
	struct qc_hz *r = sub->rate;

	heap_remove(ctx, r);
	rate_drop(r);
	free(r);
	sub->rate = NULL;
}

/*
 * Give @sub @hz (0: unlimited). A pending update is re-timed for the new interval, or sent at
 * once when the subscription becomes unlimited. 0 or -ENOMEM.
 */
double qc_hub_sub_max_hz(const struct qc_sub *sub)
{
	const struct qc_hz *r = sub->rate;

	return r ? r->hz : 0;
}

static int rate_set(struct qc_hub *h, struct qc_sub *sub, double hz)
{
	struct qc_hz *r = sub->rate;
	int64_t interval;

	if (hz <= 0) {
		if (r && r->merged)
			rate_flush(h, r, now_us(h));
		if (r)
			rate_gone(h, sub);
		return 0;
	}
	interval = (int64_t)(1e6 / hz + 0.999); /* rounded up: never more than @hz a second */
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return -ENOMEM;
		r->sub = sub;
		r->idx = NOT_QUEUED;
		sub->rate = r;
	} else {
		r->next_us += interval - r->interval_us;
	}
	r->hz = hz;
	r->interval_us = interval;
	if (r->idx != NOT_QUEUED) {
		heap_remove(h, r);
		if (heap_push(h, r)) {
			rate_flush(h, r, now_us(h));
			return 0;
		}
		rate_arm(h);
	}
	return 0;
}

/* @sub's field set changed: what is pending keeps only the fields it has now. */
static void rate_refilter(struct qc_hub *h, struct qc_sub *sub)
{
	struct qc_hz *r = sub->rate;
	struct qc_cobj *d;

	if (!r || !r->merged)
		return;
	d = qc_group_filter(sub->group, r->data);
	if (!d) {
		heap_remove(h, r);
		rate_drop(r);
		return;
	}
	qc_cobj_unref(&r->data);
	r->data = d;
}

/* Whether a snapshot or a replay was just queued for @sub: it stands for what was pending. */
static void rate_caught_up(struct qc_hub *h, struct qc_sub *sub, bool sent)
{
	struct qc_hz *r = sub->rate;

	if (!r || !sent)
		return;
	heap_remove(h, r);
	rate_drop(r);
	r->next_us = now_us(h) + r->interval_us;
}

void qc_hub_streams_suspended(struct qc_hub *h, struct qc_conn *c)
{
	struct qc_sub *sub, *tmp;

	HASH_ITER (hh, c->streams.by_stream, sub, tmp) {
		if (sub->rate) {
			heap_remove(h, sub->rate);
			rate_drop(sub->rate);
		}
	}
}

enum qc_err qc_hub_read_max_hz(struct qc_hub *h, json_t *p, double *out, const char **emsg)
{
	json_t *v = json_object_get(p, "max_hz");
	double hz;

	*out = 0;
	if (!v || json_is_null(v))
		return QC_OK;
	hz = json_number_value(v);
	if (!json_is_number(v) || !(hz >= 0 && hz <= QC_MAX_HZ))
		return qc_hub_fail(h, emsg, QC_E_BAD_REQUEST,
		                   "\"max_hz\" must be a number from 0 (unlimited) to %d "
		                   "(updates per second)",
		                   QC_MAX_HZ);
	*out = hz;
	return QC_OK;
}

static void deliver(struct qc_hub *h, struct qc_sub *sub, const struct qc_stream *s,
                    struct tick_frames *f, const struct qc_tick *t, int64_t *now)
{
	struct qc_conn *c = sub->conn;

	/* a suspended session gets its missed ticks from the ring when it resumes */
	if (c->closing || c->suspended)
		return;
	if (sub->rate && rate_hold(h, sub, f, t, now))
		return;
	if (!queue_tick(h, c, s, f)) {
		sub->last_seq = t->seq;
		h->st.tick_deliveries++;
	}
}

static void fan_out(struct qc_hub *h, const struct qc_stream *s, const struct qc_tick *t)
{
	int64_t now = 0; /* max_hz: the clock, read once for the tick */

	for (struct qc_group *g = qc_stream_groups(s); g; g = qc_group_next(g)) {
		struct qc_cobj *data = qc_group_filter(g, t->data);
		struct tick_frames f;

		if (!data)
			continue; /* the tick carries none of this group's fields */
		tick_frames_init(&f, h, s, data, t->seq, t->timestamp, t->message_id, NULL);
		for (struct qc_sub *sub = qc_group_subs(g); sub; sub = sub->group_next)
			deliver(h, sub, s, &f, t, &now);
		tick_frames_release(&f);
		qc_cobj_unref(&data);
	}
}

/* ---- ingest ------------------------------------------------------------------------------ */

/* The symbol of element @i of @arr: the element itself, or its member @key when @key is set. */
static const char *symbol_at(json_t *arr, size_t i, const char *key)
{
	json_t *v = json_array_get(arr, i);

	return json_string_value(key ? json_object_get(v, key) : v);
}

/* Whether @sym's stream exists (@ticks: and has ticks). */
static bool known(struct qc_hub *h, const char *sym, bool ticks)
{
	struct qc_stream *s = qc_streams_find(h->streams, sym);

	return s && (!ticks || qc_stream_has_ticks(s));
}

/*
 * How many distinct symbols of @arr (strings, or objects whose @key holds one) are not known()
 * yet: what a batch adds against streams.max_symbols (@ticks), or a subscribe against
 * streams.max_subscribe_only.
 */
static uint32_t new_symbols(struct qc_hub *h, json_t *arr, const char *key, bool ticks)
{
	size_t n = json_array_size(arr), i, j;
	uint32_t fresh = 0;

	for (i = 0; i < n; i++) {
		const char *sym = symbol_at(arr, i, key);

		if (known(h, sym, ticks))
			continue;
		for (j = 0; j < i; j++)
			if (!strcmp(sym, symbol_at(arr, j, key)))
				break;
		if (j == i)
			fresh++;
	}
	return fresh;
}

/* Check one tick's shape; nothing is applied. */
static enum qc_err check_tick(struct qc_hub *h, json_t *tick, size_t i, const char **emsg)
{
	json_t *sym, *data, *mid, *ver, *ts;

	if (!json_is_object(tick))
		return qc_hub_fail(h, emsg, QC_E_BAD_REQUEST,
		                   "ticks[%zu]: a tick must be an object", i);
	sym = json_object_get(tick, "symbol");
	if (!json_is_string(sym) || !qc_symbol_valid(json_string_value(sym)))
		return qc_hub_fail(
		    h, emsg, QC_E_BAD_REQUEST,
		    "ticks[%zu]: \"symbol\" must be 1-32 characters of A-Z a-z 0-9 . _ : -", i);
	data = json_object_get(tick, "data");
	if (!json_is_object(data) || !json_object_size(data))
		return qc_hub_fail(h, emsg, QC_E_BAD_REQUEST,
		                   "ticks[%zu]: \"data\" must be a non-empty object", i);
	if (json_object_size(data) > 256)
		return qc_hub_fail(h, emsg, QC_E_BAD_REQUEST, "ticks[%zu]: more than 256 fields",
		                   i);
	{
		const char *k;
		json_t *v;

		json_object_foreach (data, k, v) {
			if (!qc_field_valid(k))
				return qc_hub_fail(h, emsg, QC_E_BAD_REQUEST,
				                   "ticks[%zu]: bad field name in \"data\"", i);
		}
	}
	mid = json_object_get(tick, "message_id");
	if (mid && !json_is_null(mid) &&
	    (!json_is_string(mid) || strlen(json_string_value(mid)) > QC_MESSAGE_ID_MAX))
		return qc_hub_fail(
		    h, emsg, QC_E_BAD_REQUEST,
		    "ticks[%zu]: \"message_id\" must be a string of at most 128 bytes", i);
	ver = json_object_get(tick, "version");
	if (ver && !json_is_null(ver) && !json_is_integer(ver))
		return qc_hub_fail(h, emsg, QC_E_BAD_REQUEST,
		                   "ticks[%zu]: \"version\" must be an integer", i);
	ts = json_object_get(tick, "timestamp");
	if (ts && !json_is_null(ts) && (!json_is_integer(ts) || json_integer_value(ts) < 0))
		return qc_hub_fail(h, emsg, QC_E_BAD_REQUEST,
		                   "ticks[%zu]: \"timestamp\" must be a non-negative integer (ms)",
		                   i);
	return QC_OK;
}

static enum qc_err publish_broker(struct qc_hub *h, struct qc_ingest *in, qc_publish_done_fn done,
                                  void *arg, const char **emsg);

/* How many distinct symbols of @in have no stream with ticks yet (quadratic: rarely needed). */
static uint32_t new_batch_symbols(struct qc_hub *h, const struct qc_ingest *in)
{
	uint32_t fresh = 0;
	size_t i, j;

	for (i = 0; i < in->n; i++) {
		const char *sym = qc_ingest_symbol(in, i);

		if (known(h, sym, true))
			continue;
		for (j = 0; j < i; j++)
			if (!strcmp(sym, qc_ingest_symbol(in, j)))
				break;
		if (j == i)
			fresh++;
	}
	return fresh;
}

/*
 * Publish the checked ticks of @in: refuse the whole batch when it would take more symbols
 * than streams.max_symbols allows, else apply each and fan out what was accepted. In cluster
 * mode the broker numbers them instead: QC_ASYNC, @done answers when it has (NULL: nobody
 * waits).
 */
static enum qc_err publish_batch(struct qc_hub *h, struct qc_ingest *in, qc_publish_done_fn done,
                                 void *arg, json_t **out, const char **emsg)
{
	uint64_t accepted = 0, dup = 0, stale = 0;
	int64_t now = qc_now_ms();
	struct qc_streams_counts cnt;
	size_t i, fresh = 0;

	/* each tick's stream, when it has one with ticks: looked up once, used below */
	for (i = 0; i < in->n; i++) {
		struct qc_stream *s = qc_streams_find(h->streams, qc_ingest_symbol(in, i));

		in->ticks[i].stream = s && qc_stream_has_ticks(s) ? s : NULL;
		if (!in->ticks[i].stream)
			fresh++; /* an upper bound: a new symbol may repeat in the batch */
	}
	/* cluster mode: the broker numbers the ticks; they come back through qc_hub_broker_tick */
	if (h->broker.append)
		return publish_broker(h, in, done, arg, emsg);
	/*
	 * Symbols with ticks only: subscribe-only ones do not count. Count exactly (quadratic in
	 * the batch) only when the upper bound says it might not fit.
	 */
	qc_streams_counts(h->streams, &cnt);
	if (fresh && cnt.with_ticks + fresh > h->cfg->streams.max_symbols &&
	    cnt.with_ticks + new_batch_symbols(h, in) > h->cfg->streams.max_symbols)
		return qc_hub_limit(h, emsg, QC_LIM_MAX_SYMBOLS, "%u symbols would be exceeded",
		                    h->cfg->streams.max_symbols);

	for (i = 0; i < in->n; i++) {
		struct qc_stream *s = in->ticks[i].stream;
		struct qc_tick_in tin;
		struct qc_tick t;
		int v;

		/* over many symbols each tick's stream is cold: load the next ones' meanwhile */
		for (size_t k = 0; k < 3; k++) {
			size_t ahead = i + PREFETCH_AHEAD * (3 - k);

			if (ahead < in->n && in->ticks[ahead].stream)
				qc_stream_prefetch(in->ticks[ahead].stream, (int)k,
				                   qc_ingest_message_id(in, ahead));
		}
		/* a symbol new to this batch: made by its first tick, found by the next ones */
		if (!s)
			s = qc_streams_get_live(h->streams, qc_ingest_symbol(in, i));

		/* the check above makes this unreachable; if it ever is not, still a counted
		 * refusal */
		if (!s && errno == ENOSPC)
			return qc_hub_limit(h, emsg, QC_LIM_MAX_SYMBOLS, "%u symbols reached",
			                    h->cfg->streams.max_symbols);
		if (!s)
			return qc_hub_fail(h, emsg, QC_E_INTERNAL, "out of memory");
		qc_ingest_tick_in(in, i, now, &tin);
		v = qc_stream_apply(s, &tin, &t);
		h->st.ticks_published++;
		if (v == QC_TICK_ACCEPTED) {
			accepted++;
			h->st.ticks_accepted++;
			fan_out(h, s, &t);
			qc_hub_subs_tick(h, s);
		} else if (v == QC_TICK_DUPLICATE) {
			dup++;
			h->st.ticks_duplicate++;
		} else if (v == QC_TICK_STALE) {
			stale++;
			h->st.ticks_stale++;
		}
	}
	*out = json_pack("{s:I, s:I, s:I}", "accepted", (json_int_t)accepted, "duplicates",
	                 (json_int_t)dup, "stale", (json_int_t)stale);
	return QC_OK;
}

/*
 * Publish @ticks (an array of trees, borrowed): validate all first, refuse the whole batch on
 * the first fault, then publish them as a batch.
 */
static enum qc_err publish(struct qc_hub *h, json_t *ticks, qc_publish_done_fn done, void *arg,
                           json_t **out, const char **emsg)
{
	size_t n = json_array_size(ticks), i;
	json_t *tick;

	if (!n)
		return qc_hub_fail(h, emsg, QC_E_BAD_REQUEST, "no ticks");
	if (n > QC_INGEST_MAX_TICKS)
		return qc_hub_fail(h, emsg, QC_E_TOO_LARGE, "at most %d ticks in one publish",
		                   QC_INGEST_MAX_TICKS);
	json_array_foreach (ticks, i, tick) {
		enum qc_err e = check_tick(h, tick, i, emsg);

		if (e != QC_OK)
			return e;
	}
	qc_ingest_reset(&batch);
	json_array_foreach (ticks, i, tick) {
		if (qc_ingest_add_json(&batch, tick))
			return qc_hub_fail(h, emsg, QC_E_INTERNAL, "out of memory");
	}
	return publish_batch(h, &batch, done, arg, out, emsg);
}

enum qc_err qc_hub_publish_async(struct qc_hub *h, json_t *doc, qc_publish_done_fn done, void *arg,
                                 json_t **out, const char **emsg)
{
	enum qc_err e;
	json_t *arr;

	if (json_is_array(doc))
		return publish(h, doc, done, arg, out, emsg);
	if (json_is_object(doc) && json_is_array(json_object_get(doc, "ticks")))
		return publish(h, json_object_get(doc, "ticks"), done, arg, out, emsg);
	if (!json_is_object(doc))
		return qc_hub_fail(h, emsg, QC_E_BAD_REQUEST,
		                   "expected a tick, an array of ticks or "
		                   "{\"ticks\":[...]}");
	arr = json_array();
	if (!arr || json_array_append(arr, doc)) {
		json_decref(arr);
		return qc_hub_fail(h, emsg, QC_E_INTERNAL, "out of memory");
	}
	e = publish(h, arr, done, arg, out, emsg);
	json_decref(arr);
	return e;
}

enum qc_err qc_hub_publish(struct qc_hub *h, json_t *doc, json_t **out, const char **emsg)
{
	return qc_hub_publish_async(h, doc, NULL, NULL, out, emsg);
}

enum qc_err qc_hub_publish_text_async(struct qc_hub *h, const char *body, size_t len,
                                      qc_publish_done_fn done, void *arg, json_t **out,
                                      const char **emsg)
{
	enum qc_err e;
	json_t *doc;

	if (qc_ingest_scan_body(&batch, body, len))
		return publish_batch(h, &batch, done, arg, out, emsg);
	doc = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
	if (!doc)
		return qc_hub_fail(h, emsg, QC_E_BAD_JSON, "body is not valid JSON");
	e = qc_hub_publish_async(h, doc, done, arg, out, emsg);
	json_decref(doc);
	return e;
}

enum qc_err qc_hub_publish_text(struct qc_hub *h, const char *body, size_t len, json_t **out,
                                const char **emsg)
{
	return qc_hub_publish_text_async(h, body, len, NULL, NULL, out, emsg);
}

bool qc_hub_scan_publish(struct qc_hub *h, const char *buf, size_t len, struct qc_cmd *cmd)
{
	(void)h;
	if (!qc_ingest_scan_request(&batch, buf, len))
		return false;
	memset(cmd, 0, sizeof(*cmd));
	cmd->type = QC_CMD_REQUEST;
	cmd->action = "publish_market_data";
	cmd->request_id = qc_ingest_id(&batch, batch.request_id);
	cmd->trace_id = qc_ingest_id(&batch, batch.trace_id);
	cmd->ack_id = -1;
	return true; /* payload NULL: the batch above (qc_act_publish) */
}

enum qc_err qc_act_publish(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                           const char **e)
{
	struct qc_waiter *pa;
	enum qc_err err;

	if (!(c->roles & QC_ROLE_PUBLISHER))
		return qc_hub_fail(h, e, QC_E_FORBIDDEN, "role publisher required");
	if (!h->broker.append || !h->cur) {
		if (!p)
			return publish_batch(h, &batch, NULL, NULL, d, e); /* qc_hub_scan_publish */
		return qc_hub_publish(h, p, d, e);
	}
	pa = qc_waiter_new(h, c);
	if (!pa)
		return qc_hub_fail(h, e, QC_E_INTERNAL, "out of memory");
	err = p ? qc_hub_publish_async(h, p, qc_waiter_answer, pa, d, e)
	        : publish_batch(h, &batch, qc_waiter_answer, pa, d, e);
	if (err != QC_ASYNC)
		qc_waiter_free(pa);
	return err;
}

/* ---- through the broker (cluster mode, broker.h) ----------------------------------------- */

/* One publish's ticks in the broker: answered when the last verdict is in. */
struct pubbatch {
	struct qc_hub *h;
	qc_publish_done_fn done; /* NULL: nobody waits (the demo feed) */
	void *arg;
	uint32_t left;
	bool submitting;
	uint64_t n, accepted, dup, stale, lost, refused;
	uint64_t full; /* not sent: cluster.max_inflight commands were waiting already */
};

static void pubbatch_finish(struct pubbatch *b)
{
	char msg[256];

	/* counted once per publish, as a publish refused here is */
	if (b->refused)
		qc_hub_refused(b->h, QC_LIM_MAX_SYMBOLS);
	if (b->done && b->refused) {
		snprintf(msg, sizeof(msg),
		         "%s: %u symbols would be exceeded: %llu of %llu tick(s) refused "
		         "(%llu accepted, %llu duplicates, %llu stale, %llu not confirmed)",
		         qc_limit_name(QC_LIM_MAX_SYMBOLS), b->h->cfg->streams.max_symbols,
		         (unsigned long long)b->refused, (unsigned long long)b->n,
		         (unsigned long long)b->accepted, (unsigned long long)b->dup,
		         (unsigned long long)b->stale, (unsigned long long)b->lost);
		b->done(b->arg, QC_E_LIMIT_EXCEEDED, msg, NULL);
	} else if (b->done && b->full) {
		/* counted per command by the cluster (qc_cluster_cmd) */
		snprintf(msg, sizeof(msg),
		         "cluster.max_inflight: Redis has too many commands waiting: %llu of %llu "
		         "tick(s) not sent (%llu accepted, %llu duplicates, %llu stale, %llu not "
		         "confirmed)",
		         (unsigned long long)b->full, (unsigned long long)b->n,
		         (unsigned long long)b->accepted, (unsigned long long)b->dup,
		         (unsigned long long)b->stale, (unsigned long long)(b->lost - b->full));
		b->done(b->arg, QC_E_LIMIT_EXCEEDED, msg, NULL);
	} else if (b->done && b->lost) {
		snprintf(msg, sizeof(msg),
		         "Redis (cluster.redis) is unavailable: %llu of %llu tick(s) not confirmed "
		         "(%llu accepted, %llu duplicates, %llu stale)",
		         (unsigned long long)b->lost, (unsigned long long)b->n,
		         (unsigned long long)b->accepted, (unsigned long long)b->dup,
		         (unsigned long long)b->stale);
		b->done(b->arg, QC_E_UNAVAILABLE, msg, NULL);
	} else if (b->done) {
		b->done(b->arg, QC_OK, NULL,
		        json_pack("{s:I, s:I, s:I}", "accepted", (json_int_t)b->accepted,
		                  "duplicates", (json_int_t)b->dup, "stale", (json_int_t)b->stale));
	}
	free(b);
}

static void appended(void *arg, int verdict, uint64_t seq)
{
	struct pubbatch *b = arg;
	struct qc_hub *h = b->h;

	(void)seq;
	h->st.ticks_published++;
	if (verdict == QC_TICK_ACCEPTED) {
		b->accepted++;
		h->st.ticks_accepted++;
	} else if (verdict == QC_TICK_DUPLICATE) {
		b->dup++;
		h->st.ticks_duplicate++;
	} else if (verdict == QC_TICK_STALE) {
		b->stale++;
		h->st.ticks_stale++;
	} else if (verdict == -ENOSPC) {
		b->refused++;
	} else {
		b->lost++;
	}
	if (!--b->left && !b->submitting)
		pubbatch_finish(b);
}

static enum qc_err publish_broker(struct qc_hub *h, struct qc_ingest *in, qc_publish_done_fn done,
                                  void *arg, const char **emsg)
{
	struct pubbatch *b = calloc(1, sizeof(*b));
	int64_t now = qc_now_ms();
	size_t i;
	int rc;

	if (!b)
		return qc_hub_fail(h, emsg, QC_E_INTERNAL, "out of memory");
	b->h = h;
	b->done = done;
	b->arg = arg;
	b->submitting = true;
	for (i = 0; i < in->n; i++) {
		struct qc_tick_in tin;
		struct qc_broker_tick bt;

		/* the compact data as it is: the broker sends its text on */
		qc_ingest_tick_in(in, i, now, &tin);
		bt = (struct qc_broker_tick){
		    .symbol = qc_ingest_symbol(in, i),
		    .data = tin.data,
		    .message_id = tin.message_id,
		    .has_version = tin.has_version,
		    .version = tin.version,
		    .timestamp = tin.timestamp,
		};
		rc = h->broker.append(h->broker.ctx, &bt, appended, b);
		b->n++;
		b->left++;
		if (rc) {
			b->left--;
			b->lost++;
			h->st.ticks_published++;
			if (rc == -ENOSPC)
				b->full++;
		}
	}
	b->submitting = false;
	if (b->left)
		return QC_ASYNC;
	/* nothing reached the broker: answer now */
	if (b->lost == b->n) {
		uint64_t n = b->n, refused = b->full;

		free(b);
		if (refused)
			return qc_hub_fail(
			    h, emsg, QC_E_LIMIT_EXCEEDED,
			    "cluster.max_inflight: Redis has too many commands waiting");
		return qc_hub_fail(
		    h, emsg, QC_E_UNAVAILABLE,
		    "Redis (cluster.redis) is unavailable: %llu tick(s) not published",
		    (unsigned long long)n);
	}
	pubbatch_finish(b); /* cannot happen: every verdict comes later */
	return QC_ASYNC;
}

void qc_hub_set_broker(struct qc_hub *h, const struct qc_broker *b)
{
	h->broker = *b;
}

void qc_hub_broker_tick(struct qc_hub *h, const char *symbol, const char *epoch, json_t *data,
                        const char *message_id, uint64_t seq, int64_t timestamp, bool history)
{
	struct qc_stream *s = qc_streams_get_live(h->streams, symbol);
	struct qc_tick_in tin = {.message_id = message_id, .timestamp = timestamp};
	struct qc_cobj *d;
	struct qc_tick t;
	int v;

	if (!s || strlen(epoch) != QC_EPOCH_LEN)
		return;
	qc_stream_set_epoch(s, epoch);
	if (seq <= qc_stream_last_seq(s))
		return; /* had it: the log read back and the channel overlap */
	/* the channel's data is a tree: compact, as a publish here makes it (ingest.c) */
	d = json_is_object(data) ? qc_cobj_from_json(data) : NULL;
	if (!d)
		return;
	tin.data = d;
	v = qc_stream_apply_seq(s, &tin, seq, &t);
	qc_cobj_unref(&d);
	if (v != QC_TICK_ACCEPTED)
		return;
	if (!history)
		fan_out(h, s, &t);
	/* history too: every node's filters step through the same ticks (one edge per seq) */
	qc_hub_subs_tick(h, s);
}

void qc_hub_broker_loaded(struct qc_hub *h, const char *symbol)
{
	struct qc_stream *s = qc_streams_find(h->streams, symbol);

	if (!s || !qc_stream_last_seq(s))
		return;
	for (struct qc_group *g = qc_stream_groups(s); g; g = qc_group_next(g))
		for (struct qc_sub *sub = qc_group_subs(g); sub; sub = sub->group_next) {
			struct qc_conn *c = sub->conn;

			if (sub->last_seq == qc_stream_last_seq(s) || c->closing || c->suspended)
				continue;
			/* nothing yet: a snapshot; behind: what followed, or a snapshot */
			qc_hub_stream_catch_up(h, c, sub, true, sub->last_seq != 0, sub->last_seq);
		}
}

bool qc_hub_stream_watched(struct qc_hub *h, const char *symbol)
{
	struct qc_stream *s = qc_streams_find(h->streams, symbol);

	return s && qc_stream_nsubs(s);
}

/* ---- the demo feed ----------------------------------------------------------------------- */

int qc_hub_demo_start(struct qc_hub *h)
{
	const struct qc_config *cfg = h->cfg;
	uint64_t seed;

	if (!cfg->demo_feed.enabled)
		return 0;
	seed = (uint64_t)qc_now_ms() ^ 0x5bd1e995ULL;
	h->demo = qc_demo_new(cfg->demo_feed.symbols, cfg->demo_feed.nsymbols,
	                      cfg->demo_feed.rate_per_s, seed, qc_now_ms());
	return h->demo ? 0 : -ENOMEM;
}

uint32_t qc_hub_demo_tick(struct qc_hub *h)
{
	int64_t now = qc_now_ms();
	uint32_t due, interval;
	const char *emsg;
	json_t *ticks, *out = NULL;

	if (!h->demo)
		return 0;
	due = qc_demo_due(h->demo, now);
	if (due) {
		ticks = json_array();
		for (uint32_t i = 0; ticks && i < due; i++)
			json_array_append_new(ticks, qc_demo_next(h->demo, now));
		if (ticks && publish(h, ticks, NULL, NULL, &out, &emsg) == QC_OK)
			json_decref(out);
		json_decref(ticks);
	}
	interval = 1000 / h->cfg->demo_feed.rate_per_s;
	return interval < 10 ? 10 : interval > 1000 ? 1000 : interval;
}

/* ---- stream actions ---------------------------------------------------------------------- */

/*
 * Cluster mode: a stream request that reads a stream's log (a subscribe's snapshot or replay,
 * buffered data, market data) on a node whose stream is not current (it did not watch the
 * symbol, or was not listening for a while) waits until the broker has read the log back, then
 * runs again (h->log_rerun) and is answered; the connection is found again by id. Redis down:
 * UNAVAILABLE for a request that needs the log (@need), the others run on what is here.
 */
struct log_wait {
	struct qc_hub *h;
	struct qc_waiter *la; /* the request, run again through the dispatcher */
	char *action;
	json_t *payload;
	uint32_t left;
	bool submitting, failed, need;
};

static void log_wait_free(struct log_wait *w)
{
	qc_waiter_free(w->la);
	free(w->action);
	json_decref(w->payload);
	free(w);
}

static void log_wait_finish(struct log_wait *w)
{
	struct qc_hub *h = w->h;
	struct qc_conn *c = qc_waiter_conn(w->la);

	if (c && w->failed && w->need) {
		qc_waiter_answer(
		    w->la, QC_E_UNAVAILABLE,
		    "Redis (cluster.redis) is unavailable: the stream's log cannot be read", NULL);
		w->la = NULL; /* answered and freed */
	} else if (c) {
		/* as it was handled the first time: answered, its session noted, its after step */
		h->log_rerun = true;
		qc_waiter_request(w->la, c, w->action, w->payload);
		h->log_rerun = false;
	}
	log_wait_free(w);
}

static void log_loaded(void *arg, int rc)
{
	struct log_wait *w = arg;

	if (rc < 0)
		w->failed = true;
	if (!--w->left && !w->submitting)
		log_wait_finish(w);
}

/*
 * Whether the request (h->cur, with payload @p) may go on now over the symbols @syms (an array
 * of strings, or one string): QC_OK, or QC_ASYNC (it waits and runs again, answered then), or
 * an error (the logs cannot be read and @need).
 */
static enum qc_err wait_logs(struct qc_hub *h, struct qc_conn *c, json_t *syms, bool need,
                             json_t *p, const char **emsg)
{
	const struct qc_cmd *cmd = h->cur;
	struct log_wait *w;
	size_t i, n = json_is_array(syms) ? json_array_size(syms) : 1;
	int rc;

	if (!h->broker.load || h->log_rerun || !cmd || !cmd->action)
		return QC_OK;
	w = calloc(1, sizeof(*w));
	if (!w || !(w->la = qc_waiter_new(h, c)) || !(w->action = strdup(cmd->action))) {
		if (w)
			log_wait_free(w);
		return qc_hub_fail(h, emsg, QC_E_INTERNAL, "out of memory");
	}
	w->h = h;
	w->payload = json_incref(p);
	w->need = need;
	w->submitting = true;
	for (i = 0; i < n; i++) {
		json_t *v = json_is_array(syms) ? json_array_get(syms, i) : syms;

		rc = h->broker.load(h->broker.ctx, json_string_value(v), log_loaded, w);
		if (!rc)
			w->left++;
		else if (rc < 0)
			w->failed = true;
	}
	w->submitting = false;
	if (w->left)
		return QC_ASYNC;
	rc = w->failed && need;
	log_wait_free(w);
	if (rc)
		return qc_hub_fail(h, emsg, QC_E_UNAVAILABLE,
		                   "Redis (cluster.redis) is unavailable: the stream's log cannot "
		                   "be read");
	return QC_OK;
}

/*
 * Read "fields" (absent, null or [] = all) into @out (borrowed strings). Returns the count or
 * -1 with the error set.
 */
int qc_hub_read_fields(struct qc_hub *h, json_t *p, const char **out, const char **emsg)
{
	json_t *f = json_object_get(p, "fields"), *v;
	size_t i;

	if (!f || json_is_null(f))
		return 0;
	if (!json_is_array(f) || json_array_size(f) > QC_FIELDS_MAX) {
		qc_hub_fail(h, emsg, QC_E_BAD_REQUEST,
		            "\"fields\" must be an array of at most %d names", QC_FIELDS_MAX);
		return -1;
	}
	json_array_foreach (f, i, v) {
		if (!json_is_string(v) || !qc_field_valid(json_string_value(v))) {
			qc_hub_fail(h, emsg, QC_E_BAD_REQUEST, "fields[%zu] must be a field name",
			            i);
			return -1;
		}
		out[i] = json_string_value(v);
	}
	return (int)json_array_size(f);
}

static bool symbol_ok(json_t *sym)
{
	return json_is_string(sym) && qc_symbol_valid(json_string_value(sym));
}

/* Read "symbol" or "symbols" into *@out, a new array of valid symbol strings. */
static enum qc_err read_symbols(struct qc_hub *h, json_t *p, json_t **out, const char **emsg)
{
	json_t *one = json_object_get(p, "symbol"), *many = json_object_get(p, "symbols"), *v;
	size_t i;

	*out = NULL;
	if (one && !json_is_null(one)) {
		if (!json_is_string(one) || !qc_symbol_valid(json_string_value(one)))
			return qc_hub_fail(h, emsg, QC_E_BAD_REQUEST,
			                   "\"symbol\" must be a valid symbol");
		*out = json_pack("[O]", one);
		return *out ? QC_OK : qc_hub_fail(h, emsg, QC_E_INTERNAL, "out of memory");
	}
	if (!json_is_array(many) || !json_array_size(many))
		return qc_hub_fail(h, emsg, QC_E_BAD_REQUEST,
		                   "\"symbol\" or a non-empty \"symbols\" array is required");
	if (json_array_size(many) > h->cfg->limits.max_streams_per_connection)
		return qc_hub_limit(h, emsg, QC_LIM_STREAMS_PER_CONNECTION, "more than %u symbols",
		                    h->cfg->limits.max_streams_per_connection);
	json_array_foreach (many, i, v) {
		if (!json_is_string(v) || !qc_symbol_valid(json_string_value(v)))
			return qc_hub_fail(h, emsg, QC_E_BAD_REQUEST,
			                   "symbols[%zu] must be a valid symbol", i);
	}
	*out = json_copy(many);
	return *out ? QC_OK : qc_hub_fail(h, emsg, QC_E_INTERNAL, "out of memory");
}

/*
 * Whether a replay after @since is complete from the ring. A @since beyond the last seq is a
 * position from another life of the stream (it was freed and created again, or the server
 * restarted): not recoverable. A position from an earlier life that is not beyond the current
 * last seq cannot be told apart here; that needs the stream's epoch in the position (the
 * stream id names the life: qc_stream_id()).
 */
bool qc_hub_stream_recoverable(const struct qc_stream *s, uint64_t since)
{
	uint64_t last = qc_stream_last_seq(s), oldest = qc_stream_oldest_seq(s);

	if (since > last)
		return false;
	return since == last || (oldest && since + 1 >= oldest);
}

/*
 * After a subscribe: the snapshot and/or the replay of the ring after @since. Queued right
 * behind the response, in the same loop pass as the subscription itself, so nothing published
 * later can slip in between: no gap and no duplicate between replay and live.
 */
bool qc_hub_stream_catch_up(struct qc_hub *h, struct qc_conn *c, struct qc_sub *sub, bool snapshot,
                            bool has_since, uint64_t since)
{
	const struct qc_stream *s = sub->stream;
	const char *const *fields = qc_group_fields(sub->group);
	size_t nfields = qc_group_nfields(sub->group);
	uint64_t last = qc_stream_last_seq(s), oldest = qc_stream_oldest_seq(s);
	bool recovered = true, sent = false;
	struct qc_cobj *d, *acc = NULL;
	struct qc_tick t, newest = {0};

	if (has_since && since != last) {
		uint64_t from = since + 1;

		recovered = qc_hub_stream_recoverable(s, since);
		if (!recovered)
			from = oldest ? oldest : last + 1;
		for (uint64_t seq = from; seq && seq <= last; seq++) {
			if (!qc_stream_tick(s, seq, &t))
				continue;
			d = qc_cobj_filter(t.data, fields, nfields);
			if (!d)
				continue;
			if (sub->rate) {
				/* max_hz: the missed ticks collapse into one merged update */
				if (!merge_into(&acc, d))
					newest = t;
			} else {
				send_tick(h, c, s, d, t.seq, t.timestamp, t.message_id, "replay",
				          0);
				sent = true;
			}
			qc_cobj_unref(&d);
		}
		if (acc) {
			send_tick(h, c, s, acc, newest.seq, newest.timestamp, newest.message_id,
			          "replay", newest.seq - from);
			qc_cobj_unref(&acc);
			sent = true;
		}
	}
	/* a snapshot when asked for, unless a complete replay made it pointless */
	if (snapshot && last && (!has_since || !recovered)) {
		d = qc_cobj_filter((struct qc_cobj *)qc_stream_snapshot(s), fields, nfields);
		if (d) {
			send_tick(h, c, s, d, last, qc_stream_snapshot_time(s), NULL, "snapshot",
			          0);
			qc_cobj_unref(&d);
			sent = true;
		}
	}
	sub->last_seq = last; /* everything up to here is queued or summed up by the snapshot */
	rate_caught_up(h, sub, sent);
	return recovered;
}

int qc_hub_stream_attach(struct qc_hub *h, struct qc_conn *c, const char *symbol,
                         const char *const *fields, size_t nfields, double max_hz)
{
	return qc_hub_stream_attach_ex(h, c, symbol, fields, nfields, max_hz, true);
}

int qc_hub_stream_attach_ex(struct qc_hub *h, struct qc_conn *c, const char *symbol,
                            const char *const *fields, size_t nfields, double max_hz, bool snapshot)
{
	struct qc_stream *s;
	struct qc_sub *sub;
	int ret;

	if (c->closing || c->suspended)
		return 0;
	s = qc_streams_find(h->streams, symbol);
	sub = s ? qc_sub_set_find(&c->streams, s) : NULL;
	if (sub) {
		ret = qc_stream_set_filter(h->streams, sub, fields, nfields);
		rate_refilter(h, sub);
		return ret ? ret : rate_set(h, sub, max_hz);
	}
	if (c->streams.count >= h->cfg->limits.max_streams_per_connection) {
		qc_hub_refused(h, QC_LIM_STREAMS_PER_CONNECTION);
		return -ENOSPC;
	}
	s = qc_streams_get(h->streams, symbol);
	if (!s) {
		if (errno == ENOSPC)
			qc_hub_refused(h, QC_LIM_SUBSCRIBE_ONLY);
		return -errno;
	}
	ret = qc_stream_subscribe(h->streams, s, &c->streams, c, fields, nfields, &sub);
	if (ret) {
		qc_streams_release(h->streams, s);
		return ret;
	}
	ret = rate_set(h, sub, max_hz);
	if (snapshot)
		qc_hub_stream_catch_up(h, c, sub, true, false, 0);
	if (h->broker.watch)
		h->broker.watch(h->broker.ctx, symbol);
	return ret;
}

/* Whether @jepoch (absent: any) names the current life of @s. */
static bool same_life(const struct qc_hub *h, const struct qc_stream *s, json_t *jepoch)
{
	char epoch[QC_EPOCH_LEN + 1];

	if (!json_is_string(jepoch))
		return true;
	qc_hub_stream_epoch(h, s, epoch);
	return !strcmp(epoch, json_string_value(jepoch));
}

static json_t *list_of(json_t *result)
{
	return json_object_get(result, "streams");
}

enum qc_err qc_act_subscribe_stream(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                    const char **e)
{
	const char *fields[QC_FIELDS_MAX];
	json_t *syms, *v, *jsince = json_object_get(p, "since_seq");
	json_t *jsnap = json_object_get(p, "snapshot"), *result, *list;
	json_t *jepoch = json_object_get(p, "epoch");
	char epoch[QC_EPOCH_LEN + 1];
	struct qc_streams_counts cnt;
	uint32_t fresh = 0;
	bool has_since = false;
	enum qc_err err;
	uint64_t since = 0;
	double max_hz;
	int nfields;
	size_t i;

	nfields = qc_hub_read_fields(h, p, fields, e);
	if (nfields < 0)
		return QC_E_BAD_REQUEST;
	err = qc_hub_read_max_hz(h, p, &max_hz, e);
	if (err != QC_OK)
		return err;
	if (jsince && !json_is_null(jsince)) {
		if (!json_is_integer(jsince) || json_integer_value(jsince) < 0)
			return qc_hub_fail(h, e, QC_E_BAD_REQUEST,
			                   "\"since_seq\" must be a non-negative integer");
		has_since = true;
		since = (uint64_t)json_integer_value(jsince);
	}
	if (jepoch && !json_is_null(jepoch) && !json_is_string(jepoch))
		return qc_hub_fail(h, e, QC_E_BAD_REQUEST, "\"epoch\" must be a string");
	if (jsnap && !json_is_null(jsnap)) {
		if (!json_is_boolean(jsnap))
			return qc_hub_fail(h, e, QC_E_BAD_REQUEST,
			                   "\"snapshot\" must be a boolean");
	}
	err = read_symbols(h, p, &syms, e);
	if (err != QC_OK)
		return err;

	/* all or nothing: count what is new before changing anything */
	json_array_foreach (syms, i, v) {
		struct qc_stream *s = qc_streams_find(h->streams, json_string_value(v));

		if (!s || !qc_sub_set_find(&c->streams, s))
			fresh++;
	}
	if (c->streams.count + fresh > h->cfg->limits.max_streams_per_connection) {
		json_decref(syms);
		return qc_hub_limit(h, e, QC_LIM_STREAMS_PER_CONNECTION, "%u streams",
		                    h->cfg->limits.max_streams_per_connection);
	}
	err = wait_logs(h, c, syms, has_since, p, e);
	if (err != QC_OK) {
		json_decref(syms);
		return err;
	}
	/* symbols nobody has published yet: bounded apart from those with ticks */
	qc_streams_counts(h->streams, &cnt);
	if (cnt.subscribe_only + new_symbols(h, syms, NULL, false) >
	    h->cfg->streams.max_subscribe_only) {
		json_decref(syms);
		return qc_hub_limit(h, e, QC_LIM_SUBSCRIBE_ONLY,
		                    "%u symbols without ticks are subscribed",
		                    h->cfg->streams.max_subscribe_only);
	}

	result = json_object();
	list = json_array();
	if (!result || !list)
		goto nomem;
	json_array_foreach (syms, i, v) {
		struct qc_stream *s = qc_streams_get(h->streams, json_string_value(v));
		struct qc_sub *sub;
		json_t *ent;
		int ret;

		if (!s) {
			json_decref(syms);
			json_decref(result);
			json_decref(list);
			if (errno == ENOSPC)
				return qc_hub_limit(h, e, QC_LIM_SUBSCRIBE_ONLY, "%u reached",
				                    h->cfg->streams.max_subscribe_only);
			return qc_hub_fail(h, e, QC_E_INTERNAL, "out of memory");
		}
		sub = qc_sub_set_find(&c->streams, s);
		if (sub) {
			ret = qc_stream_set_filter(h->streams, sub, fields, (size_t)nfields);
			rate_refilter(h, sub);
		} else {
			ret = qc_stream_subscribe(h->streams, s, &c->streams, c, fields,
			                          (size_t)nfields, &sub);
		}
		if (ret) {
			qc_streams_release(h->streams, s);
			goto nomem;
		}
		if (rate_set(h, sub, max_hz))
			goto nomem;
		if (h->broker.watch)
			h->broker.watch(h->broker.ctx, qc_stream_symbol(s));
		qc_hub_stream_epoch(h, s, epoch);
		ent = json_pack("{s:s, s:I, s:I, s:s}", "symbol", qc_stream_symbol(s), "last_seq",
		                (json_int_t)qc_stream_last_seq(s), "oldest_seq",
		                (json_int_t)qc_stream_oldest_seq(s), "epoch", epoch);
		if (ent && max_hz > 0)
			json_object_set_new(ent, "max_hz", json_real(max_hz));
		json_array_append_new(list, ent);
	}
	json_object_set_new(result, "subscribed", json_copy(syms));
	json_object_set_new(result, "streams", list);
	list = NULL;

	/* recovery is judged now; the replay itself follows the response (after hook) */
	if (has_since) {
		bool all = true;
		json_t *ent;

		json_array_foreach (list_of(result), i, ent) {
			struct qc_stream *s = qc_streams_find(
			    h->streams, json_string_value(json_object_get(ent, "symbol")));
			bool rec = same_life(h, s, jepoch) && qc_hub_stream_recoverable(s, since);

			json_object_set_new(ent, "recovered", json_boolean(rec));
			all = all && rec;
		}
		json_object_set_new(result, "recovered", json_boolean(all));
	}
	json_decref(syms);
	*d = result;
	return QC_OK;

nomem:
	json_decref(syms);
	json_decref(result);
	json_decref(list);
	return qc_hub_fail(h, e, QC_E_INTERNAL, "out of memory");
}

/*
 * After the subscribe response is queued: snapshot and replay for each symbol, in the same
 * loop pass, so nothing published later can slip in between.
 */
void qc_after_subscribe_stream(struct qc_hub *h, struct qc_conn *c, json_t *p)
{
	json_t *jsince = json_object_get(p, "since_seq"), *jsnap = json_object_get(p, "snapshot");
	const char *emsg;
	json_t *syms, *v;
	size_t i;

	if (read_symbols(h, p, &syms, &emsg) != QC_OK)
		return;
	json_array_foreach (syms, i, v) {
		struct qc_stream *s = qc_streams_find(h->streams, json_string_value(v));
		struct qc_sub *sub = s ? qc_sub_set_find(&c->streams, s) : NULL;

		if (sub && json_is_integer(jsince) && !same_life(h, s, json_object_get(p, "epoch")))
			/* a position in another life of the stream: a snapshot, no replay */
			qc_hub_stream_catch_up(h, c, sub, !json_is_false(jsnap), false, 0);
		else if (sub)
			qc_hub_stream_catch_up(
			    h, c, sub, !json_is_false(jsnap), json_is_integer(jsince),
			    json_is_integer(jsince) ? (uint64_t)json_integer_value(jsince) : 0);
	}
	json_decref(syms);
}

enum qc_err qc_act_unsubscribe_stream(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                      const char **e)
{
	json_t *syms, *done, *v;
	enum qc_err err = read_symbols(h, p, &syms, e);
	size_t i;

	if (err != QC_OK)
		return err;
	done = json_array();
	json_array_foreach (syms, i, v) {
		struct qc_stream *s = qc_streams_find(h->streams, json_string_value(v));

		if (s && !qc_stream_unsubscribe(h->streams, s, &c->streams))
			json_array_append(done, v);
	}
	json_decref(syms);
	if (!json_array_size(done)) {
		json_decref(done);
		return qc_hub_fail(h, e, QC_E_NOT_FOUND, "not subscribed to that stream");
	}
	*d = json_pack("{s:o}", "unsubscribed", done);
	return QC_OK;
}

enum qc_err qc_act_update_filter(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                 const char **e)
{
	const char *fields[QC_FIELDS_MAX];
	json_t *sym = json_object_get(p, "symbol");
	struct qc_stream *s;
	struct qc_sub *sub;
	int nfields;

	if (!symbol_ok(sym))
		return qc_hub_fail(h, e, QC_E_BAD_REQUEST, "\"symbol\" must be a valid symbol");
	nfields = qc_hub_read_fields(h, p, fields, e);
	if (nfields < 0)
		return QC_E_BAD_REQUEST;
	s = qc_streams_find(h->streams, json_string_value(sym));
	sub = s ? qc_sub_set_find(&c->streams, s) : NULL;
	if (!sub)
		return qc_hub_fail(h, e, QC_E_NOT_FOUND, "not subscribed to that stream");
	if (qc_stream_set_filter(h->streams, sub, fields, (size_t)nfields))
		return qc_hub_fail(h, e, QC_E_INTERNAL, "out of memory");
	rate_refilter(h, sub);
	*d = json_pack("{s:O, s:o}", "symbol", sym, "fields", json_array());
	for (int i = 0; i < nfields; i++)
		json_array_append_new(json_object_get(*d, "fields"), json_string(fields[i]));
	return QC_OK;
}

/* A ring entry's message id (kept as it is sent, JSON-escaped) as a jansson string. */
static json_t *message_id_json(const char *esc)
{
	char buf[6 * QC_MESSAGE_ID_MAX + 2];
	size_t n = strlen(esc);

	if (!strchr(esc, '\\'))
		return json_string(esc);
	if (n > sizeof(buf) - 2)
		return NULL;
	buf[0] = '"';
	memcpy(buf + 1, esc, n);
	buf[n + 1] = '"';
	return json_loadb(buf, n + 2, JSON_DECODE_ANY, NULL);
}

/* The stream_data shape (without the event envelope) of one ring entry, filtered. */
static json_t *tick_json(const struct qc_hub *h, const struct qc_stream *s, const struct qc_tick *t,
                         const char *const *fields, size_t nfields)
{
	struct qc_cobj *d = qc_cobj_filter(t->data, fields, nfields);
	json_t *data = d ? qc_cobj_to_json(d) : NULL, *j;
	char epoch[QC_EPOCH_LEN + 1];

	qc_cobj_unref(&d);
	if (!data)
		return NULL;
	qc_hub_stream_epoch(h, s, epoch);
	j = json_pack("{s:s, s:o, s:I, s:I, s:s}", "symbol", qc_stream_symbol(s), "data", data,
	              "timestamp", (json_int_t)t->timestamp, "seq", (json_int_t)t->seq, "epoch",
	              epoch);
	if (j && t->message_id[0])
		json_object_set_new(j, "message_id", message_id_json(t->message_id));
	return j;
}

enum qc_err qc_act_get_buffered(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                const char **e)
{
	json_t *sym = json_object_get(p, "symbol"), *jsince = json_object_get(p, "since_seq");
	json_t *jlimit = json_object_get(p, "limit"), *msgs;
	const char *const *fields = NULL;
	uint64_t since = 0, last, oldest, from;
	size_t nfields = 0, limit = BUFFERED_DEFAULT;
	char epoch[QC_EPOCH_LEN + 1];
	struct qc_stream *s;
	struct qc_sub *sub;
	enum qc_err err;

	if (!symbol_ok(sym))
		return qc_hub_fail(h, e, QC_E_BAD_REQUEST, "\"symbol\" must be a valid symbol");
	if (jsince && !json_is_null(jsince) &&
	    (!json_is_integer(jsince) || json_integer_value(jsince) < 0))
		return qc_hub_fail(h, e, QC_E_BAD_REQUEST,
		                   "\"since_seq\" must be a non-negative integer");
	if (jlimit && !json_is_null(jlimit) &&
	    (!json_is_integer(jlimit) || json_integer_value(jlimit) < 1))
		return qc_hub_fail(h, e, QC_E_BAD_REQUEST, "\"limit\" must be a positive integer");
	if (json_is_integer(jlimit))
		limit = (size_t)json_integer_value(jlimit);
	if (limit > h->cfg->streams.buffer_size)
		limit = h->cfg->streams.buffer_size;
	err = wait_logs(h, c, sym, true, p, e);
	if (err != QC_OK)
		return err;
	s = qc_streams_find(h->streams, json_string_value(sym));
	if (!s)
		return qc_hub_fail(h, e, QC_E_NOT_FOUND, "no data for that symbol");
	sub = qc_sub_set_find(&c->streams, s);
	if (sub) {
		fields = qc_group_fields(sub->group);
		nfields = qc_group_nfields(sub->group);
	}
	last = qc_stream_last_seq(s);
	oldest = qc_stream_oldest_seq(s);
	if (json_is_integer(jsince)) {
		since = (uint64_t)json_integer_value(jsince);
		from = since + 1 < oldest ? oldest : since + 1;
	} else {
		from = last >= limit ? last - limit + 1 : 1;
		if (from < oldest)
			from = oldest;
	}
	msgs = json_array();
	for (uint64_t seq = from; msgs && oldest && seq <= last && json_array_size(msgs) < limit;
	     seq++) {
		struct qc_tick t;
		json_t *j =
		    qc_stream_tick(s, seq, &t) ? tick_json(h, s, &t, fields, nfields) : NULL;

		if (j)
			json_array_append_new(msgs, j);
	}
	qc_hub_stream_epoch(h, s, epoch);
	*d = json_pack("{s:O, s:o, s:I, s:I, s:s}", "symbol", sym, "messages", msgs, "oldest_seq",
	               (json_int_t)oldest, "last_seq", (json_int_t)last, "epoch", epoch);
	return QC_OK;
}

enum qc_err qc_act_get_market_data(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                   const char **e)
{
	const char *fields[QC_FIELDS_MAX];
	json_t *sym = json_object_get(p, "symbol"), *data;
	struct qc_stream *s;
	struct qc_cobj *cd;
	enum qc_err err;
	int nfields;

	if (!symbol_ok(sym))
		return qc_hub_fail(h, e, QC_E_BAD_REQUEST, "\"symbol\" must be a valid symbol");
	nfields = qc_hub_read_fields(h, p, fields, e);
	if (nfields < 0)
		return QC_E_BAD_REQUEST;
	err = wait_logs(h, c, sym, true, p, e);
	if (err != QC_OK)
		return err;
	s = qc_streams_find(h->streams, json_string_value(sym));
	if (!s || !qc_stream_last_seq(s))
		return qc_hub_fail(h, e, QC_E_NOT_FOUND, "no data for that symbol");
	cd = qc_cobj_filter((struct qc_cobj *)qc_stream_snapshot(s), fields, (size_t)nfields);
	data = cd ? qc_cobj_to_json(cd) : json_object();
	qc_cobj_unref(&cd);
	*d = json_pack("{s:O, s:o, s:I, s:I}", "symbol", sym, "data", data, "seq",
	               (json_int_t)qc_stream_last_seq(s), "timestamp",
	               (json_int_t)qc_stream_snapshot_time(s));
	return QC_OK;
}
