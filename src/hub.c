/*
 * hub: connections, rooms, routing and limits (layer 1).
 *
 * Everything here runs on the event loop thread and never blocks. Outgoing messages are
 * encoded once (msg.c) and queued by reference on each receiver's outq; the transport is asked
 * for a writeable callback only when a queue goes from empty to non-empty.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <utlist.h>

#include "hub_priv.h"
#include "quotecast/sio.h"

int64_t qc_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int qc_random_hex(char *out, size_t nbytes)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[64];

	if (nbytes > sizeof(raw) || RAND_bytes(raw, (int)nbytes) != 1)
		return -EIO;
	for (size_t i = 0; i < nbytes; i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[2 * nbytes] = '\0';
	return 0;
}

struct qc_hub *qc_hub_new(const struct qc_config *cfg, const struct qc_transport *t)
{
	struct qc_hub *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->cfg = cfg;
	h->t = *t;
	h->event_loop = "poll";
	qc_conns_init(&h->conns);
	h->rooms = qc_rooms_new();
	if (!h->rooms)
		goto fail_free;
	if (qc_hub_streams_init(h))
		goto fail_rooms;
	if (qc_random_hex(h->node, 8))
		goto fail_streams;
	if (qc_hub_subs_init(h))
		goto fail_streams;
	if (qc_hub_rooms_init(h))
		goto fail_subs;
	h->st.started_ms = qc_now_ms();
	/* opened once at start-up; read (pread, procfs, no disk) only when stats are asked for */
	h->statm_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	return h;

fail_subs:
	qc_hub_subs_free(h);
fail_streams:
	qc_hub_streams_free(h);
fail_rooms:
	qc_rooms_free(h->rooms);
fail_free:
	free(h);
	return NULL;
}

static void backlog_drop(struct qc_hub *h);

void qc_hub_free(struct qc_hub *h)
{
	if (!h)
		return;
	h->freeing = true;
	backlog_drop(h);
	qc_hub_sessions_free(h);
	qc_hub_subs_free(h);
	for (struct qc_user *u = h->conns.users; u; u = u->hh.next) {
		if (u->inbox && !u->inbox->durable)
			qc_log_free(u->inbox);
		u->inbox = NULL;
	}
	qc_hub_inboxes_free(h);
	qc_conns_free(&h->conns);
	qc_hub_streams_free(h);
	qc_hub_rooms_teardown(h);
	qc_hub_offline_free(h);
	qc_rooms_free(h->rooms);
	if (h->statm_fd >= 0)
		close(h->statm_fd);
	free(h);
}

void qc_hub_set_event_loop(struct qc_hub *h, const char *name)
{
	h->event_loop = name;
}

uint32_t qc_hub_nconns(const struct qc_hub *h)
{
	return h->conns.count - h->nsuspended;
}

int qc_hub_admit(struct qc_hub *h, uint32_t outside)
{
	if (h->shutting_down) {
		h->st.rejected_total++;
		return -ESHUTDOWN;
	}
	if ((uint64_t)qc_hub_nconns(h) + outside >= h->cfg->limits.max_connections) {
		h->st.rejected_total++;
		h->st.refused[QC_LIM_MAX_CONNECTIONS]++;
		return -EBUSY;
	}
	return 0;
}

void qc_hub_reject(struct qc_hub *h)
{
	h->st.rejected_total++;
}

static const char *const limit_names[QC_LIM__COUNT] = {
    [QC_LIM_MAX_CONNECTIONS] = "limits.max_connections",
    [QC_LIM_CONNECTIONS_PER_USER] = "limits.max_connections_per_user",
    [QC_LIM_CONNECTIONS_PER_IP] = "limits.max_connections_per_ip",
    [QC_LIM_PUBLISHERS] = "limits.max_publishers",
    [QC_LIM_PUBLISHER_RATE] = "limits.publisher_rate_per_s",
    [QC_LIM_MAX_SYMBOLS] = "streams.max_symbols",
    [QC_LIM_ROOMS_PER_CONNECTION] = "limits.max_rooms_per_connection",
    [QC_LIM_STREAMS_PER_CONNECTION] = "limits.max_streams_per_connection",
    [QC_LIM_ROOMS_PER_OWNER] = "rooms.max_per_owner",
    [QC_LIM_MEMBERS_PER_ROOM] = "rooms.max_members",
    [QC_LIM_PASSWORD_ATTEMPTS] = "rooms.password_attempts",
    [QC_LIM_SUBSCRIPTIONS_PER_USER] = "subscriptions.max_per_user",
    [QC_LIM_SUSPENDED] = "sessions.max_suspended",
    [QC_LIM_OFFLINE_PER_USER] = "offline.max_per_user",
    [QC_LIM_OFFLINE_TOTAL] = "offline.max_total_bytes",
    [QC_LIM_SUBSCRIBE_ONLY] = "streams.max_subscribe_only",
    [QC_LIM_SUBSCRIPTIONS_TOTAL] = "subscriptions.max_total",
    [QC_LIM_ROOMS_TOTAL] = "rooms.max_total",
    [QC_LIM_PASSWORD_HASHES] = "rooms.password_hashes_per_s",
    [QC_LIM_SESSIONS_PER_USER] = "sessions.max_per_user",
    [QC_LIM_SESSION_BYTES] = "sessions.max_buffered_bytes",
    [QC_LIM_HTTP_CONNECTIONS] = "limits.max_http_connections",
    [QC_LIM_CLUSTER_INFLIGHT] = "cluster.max_inflight",
};

const char *qc_limit_name(enum qc_limit l)
{
	return (unsigned)l < QC_LIM__COUNT && limit_names[l] ? limit_names[l] : "unknown";
}

void qc_hub_refused(struct qc_hub *h, enum qc_limit l)
{
	if ((unsigned)l < QC_LIM__COUNT)
		h->st.refused[l]++;
}

/* stats "limits": {"refused": {key: count}} for every counted limit */
static json_t *limits_stats(struct qc_hub *h)
{
	json_t *refused = json_object();

	for (int l = 0; l < QC_LIM__COUNT; l++)
		json_object_set_new(refused, qc_limit_name(l),
		                    json_integer((json_int_t)h->st.refused[l]));
	return json_pack("{s:o}", "refused", refused);
}

void qc_hub_close(struct qc_hub *h, struct qc_conn *c, uint16_t code, int how)
{
	if (c->closing) {
		/* a hard close may overtake a pending graceful one, never the reverse */
		if (how == QC_CLOSE_NOW && c->closing != QC_CLOSE_NOW) {
			c->closing = QC_CLOSE_NOW;
			c->close_code = code;
			if (c->replaying)
				qc_hub_keep_for_resume(c);
			h->t.close(h->t.ctx, c);
		}
		return;
	}
	c->closing = (uint8_t)how;
	c->close_code = code;
	/* nothing queued is written any more: a replay's rest is the session buffer again */
	if (how == QC_CLOSE_NOW && c->replaying)
		qc_hub_keep_for_resume(c);
	h->t.close(h->t.ctx, c);
}

int qc_hub_slow_consumer(struct qc_hub *h, struct qc_conn *c, struct qc_msg *m)
{
	h->st.slow_consumer_closes++;
	qc_hub_close(h, c, 4008, QC_CLOSE_NOW);
	if (h->cfg->sessions.ttl_s) {
		/* its queue becomes the session buffer: bounded like one from now on */
		qc_hub_keep_for_resume(c);
		qc_hub_buffer(h, c, m);
	}
	return -EPIPE;
}

int qc_hub_send(struct qc_hub *h, struct qc_conn *c, struct qc_msg *m)
{
	bool was_empty = qc_outq_empty(&c->outq);

	/*
	 * a recovering Socket.IO session keeps the events it is sent while it has no socket (it
	 * keeps what it is written as it is written: outq.written)
	 */
	if (m->offset && c->sio && (c->suspended || c->closing)) {
		qc_hub_sio_keep(h, c, m);
		return c->suspended ? 0 : -EPIPE;
	}

	if (c->suspended)
		return qc_hub_buffer(h, c, m);
	if (c->closing == QC_CLOSE_NOW) {
		/*
		 * Nothing more is written to it, but its session may be suspended in a moment:
		 * room and direct messages wait in the queue as the session buffer.
		 */
		if (h->cfg->sessions.ttl_s)
			qc_hub_buffer(h, c, m);
		return -EPIPE;
	}
	if (c->closing) {
		c->dropped = 1; /* draining towards a close: a resume cannot be complete */
		return -EPIPE;
	}
	if (c->replaying)
		return qc_hub_replay_push(h, c, m);
	if (c->outq.bytes + m->len > h->cfg->limits.max_send_queue_bytes)
		return qc_hub_slow_consumer(h, c, m);
	if (qc_outq_push(&c->outq, m)) {
		qc_hub_close(h, c, 1011, QC_CLOSE_NOW);
		return -EPIPE;
	}
	c->msgs_out++;
	h->st.msgs_out++;
	if (was_empty)
		h->t.want_write(h->t.ctx, c);
	return 0;
}

enum qc_err qc_hub_fail(struct qc_hub *h, const char **emsg, enum qc_err e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(h->errbuf, sizeof(h->errbuf), fmt, ap);
	va_end(ap);
	*emsg = h->errbuf;
	return e;
}

enum qc_err qc_hub_limit(struct qc_hub *h, const char **emsg, enum qc_limit l, const char *fmt, ...)
{
	size_t n;
	va_list ap;

	qc_hub_refused(h, l);
	n = (size_t)snprintf(h->errbuf, sizeof(h->errbuf), "%s: ", qc_limit_name(l));
	if (n >= sizeof(h->errbuf))
		n = sizeof(h->errbuf) - 1;
	va_start(ap, fmt);
	vsnprintf(h->errbuf + n, sizeof(h->errbuf) - n, fmt, ap);
	va_end(ap);
	*emsg = h->errbuf;
	return QC_E_LIMIT_EXCEEDED;
}

/* ---- encoding: one native message, framed once per encoding ------------------------------ */

void qc_frames_init(struct qc_frames *f, json_t *ev, uint8_t kind)
{
	memset(f, 0, sizeof(*f));
	f->ev = ev;
	f->kind = kind;
}

uint64_t qc_hub_next_offset(struct qc_hub *h, uint8_t kind)
{
	return kind != QC_MSG_CONTROL && qc_hub_sio_recovery(h) ? ++h->sio_offset : 0;
}

struct qc_msg *qc_frames_get(struct qc_hub *h, struct qc_frames *f, uint8_t enc)
{
	uint64_t offset = 0;
	struct qc_msg *m;

	if (enc > QC_ENC_SIO)
		return NULL;
	if (f->m[enc])
		return f->m[enc];
	/* a log entry keeps only its native frame (qc_log_compact): its JSON is parsed back */
	if (!f->ev && f->m[QC_ENC_NATIVE])
		f->ev = json_loadb((const char *)qc_msg_payload(f->m[QC_ENC_NATIVE]),
		                   qc_msg_payload_len(f->m[QC_ENC_NATIVE]), 0, NULL);
	if (!f->ev)
		return NULL;
	/* one offset per message, in its one Socket.IO encoding shared by every receiver */
	if (enc == QC_ENC_SIO)
		offset = qc_hub_next_offset(h, f->kind);
	m = enc == QC_ENC_SIO ? qc_sio_from_native_at(f->ev, offset) : qc_msg_new_json(f->ev);
	if (!m)
		return NULL;
	m->offset = offset;
	m->kind = f->kind;
	m->stream_id = f->stream_id;
	m->seq = f->seq;
	f->m[enc] = m;
	return m;
}

void qc_frames_release(struct qc_frames *f)
{
	qc_msg_unref(&f->m[0]);
	qc_msg_unref(&f->m[1]);
	json_decref(f->ev);
	f->ev = NULL;
}

int qc_hub_send_frames(struct qc_hub *h, struct qc_conn *c, struct qc_frames *f)
{
	struct qc_msg *m = qc_frames_get(h, f, c->enc);

	if (!m) {
		qc_hub_close(h, c, 1011, QC_CLOSE_NOW);
		return -ENOMEM;
	}
	return qc_hub_send(h, c, m);
}

/*
 * Native message @j (borrowed) for Socket.IO receiver @c: an event other than "session" sent
 * to one receiver (an offline delivery) is an event like any other, with an offset when @c
 * recovers; answers, pongs, errors and the session event are not replayed and carry none.
 */
static struct qc_msg *sio_native(struct qc_hub *h, struct qc_conn *c, json_t *j, int64_t ack_id)
{
	const char *type = json_string_value(json_object_get(j, "type"));
	const char *name = json_string_value(json_object_get(j, "event"));
	uint64_t offset = 0;
	struct qc_msg *m;

	if (ack_id < 0 && c->sio && type && !strcmp(type, "event") && name &&
	    strcmp(name, "session"))
		offset = qc_hub_next_offset(h, QC_MSG_ROOM);
	m = offset ? qc_sio_from_native_at(j, offset) : qc_sio_from_native(j, ack_id);
	if (m && offset) {
		m->kind = QC_MSG_ROOM;
		m->offset = offset;
	}
	return m;
}

/* Queue native message @j (stolen) for @c; a Socket.IO ack when @ack_id >= 0. */
static int send_native(struct qc_hub *h, struct qc_conn *c, json_t *j, int64_t ack_id)
{
	struct qc_msg *m;
	int ret;

	if (!j)
		return -ENOMEM;
	m = c->enc == QC_ENC_SIO ? sio_native(h, c, j, ack_id) : qc_msg_new_json(j);
	json_decref(j);
	if (!m) {
		qc_hub_close(h, c, 1011, QC_CLOSE_NOW);
		return -ENOMEM;
	}
	ret = qc_hub_send(h, c, m);
	qc_msg_unref(&m);
	return ret;
}

int qc_hub_send_json(struct qc_hub *h, struct qc_conn *c, json_t *j)
{
	return send_native(h, c, j, -1);
}

void qc_hub_answer(struct qc_hub *h, struct qc_conn *c, const char *request_id,
                   const char *trace_id, int64_t ack_id, enum qc_err e, const char *emsg,
                   json_t *data)
{
	json_t *j;

	if (e == QC_OK)
		j = qc_codec_response_ok(request_id, trace_id, data, qc_now_ms());
	else if (request_id || ack_id >= 0)
		j = qc_codec_response_err(request_id, trace_id, e, emsg, qc_now_ms());
	else
		j = qc_codec_error(e, emsg);
	if (e != QC_OK)
		json_decref(data);
	send_native(h, c, j, ack_id);
}

static void reply_ok(struct qc_hub *h, struct qc_conn *c, const struct qc_cmd *cmd, json_t *data)
{
	qc_hub_answer(h, c, cmd->request_id, cmd->trace_id, cmd->ack_id, QC_OK, NULL, data);
}

/*
 * Answer an error: as a response when the frame carried a request_id (or asked for an ack),
 * else as an "error" message. Malformed frames count against the bad-message budget.
 */
static void reply_err(struct qc_hub *h, struct qc_conn *c, const struct qc_cmd *cmd, enum qc_err e,
                      const char *msg)
{
	qc_hub_answer(h, c, cmd->request_id, cmd->trace_id, cmd->ack_id, e, msg, NULL);
	if (e == QC_E_BAD_JSON || e == QC_E_BAD_REQUEST) {
		h->st.bad_messages++;
		if (++c->bad_messages >= h->cfg->limits.max_bad_messages)
			qc_hub_close(h, c, 1008, QC_CLOSE_AFTER_DRAIN);
	}
}

static void handle_room_cmd(struct qc_hub *h, struct qc_conn *c, const struct qc_cmd *cmd);

/* ---- durable changes: answered after the store has committed ---------------------------- */

struct pending {
	struct qc_hub *h;
	uint64_t conn_id;
	int64_t ack_id;
	char *request_id;
	char *trace_id;
	qc_commit_fn commit;
	const char *announce;
	void (*after)(struct qc_hub *h, struct qc_conn *c, json_t *args);
	void (*settled)(struct qc_hub *h, json_t *args);
	json_t *args;
	json_t *data; /* the answer, while the change is announced */
};

static void pending_free(struct pending *p)
{
	free(p->request_id);
	free(p->trace_id);
	json_decref(p->args);
	json_decref(p->data);
	free(p);
}

/* Answer @p's requester, if still here, with @err / @data (stolen), and free @p. */
static void pending_answer(struct pending *p, enum qc_err err, const char *emsg, json_t *data)
{
	struct qc_hub *h = p->h;
	struct qc_conn *c = qc_conns_find(&h->conns, p->conn_id);

	if (c && (c->suspended || c->closing))
		c = NULL;
	if (c)
		qc_hub_answer(h, c, p->request_id, p->trace_id, p->ack_id, err, emsg, data);
	else
		json_decref(data);
	if (c && err == QC_OK && p->after)
		p->after(h, c, p->args);
	if (p->settled)
		p->settled(h, p->args);
	pending_free(p);
}

/* The other nodes were told (or Redis could not tell them: they ask the store when needed). */
static void pending_announced(void *arg, int rc, uint64_t seq)
{
	struct pending *p = arg;
	json_t *data = p->data;

	(void)rc;
	(void)seq;
	p->data = NULL;
	pending_answer(p, QC_OK, NULL, data);
}

/*
 * Commit @p to memory (@rows: the statement's result) and answer its requester, if still here;
 * in a cluster, a room change once the other nodes are told.
 */
static void pending_finish(struct pending *p, enum qc_err err, const char *emsg, json_t *rows)
{
	struct qc_hub *h = p->h;
	struct qc_conn *c = qc_conns_find(&h->conns, p->conn_id);
	json_t *data = NULL;

	if (c && (c->suspended || c->closing))
		c = NULL;
	if (err == QC_OK)
		err = p->commit(h, c, p->args, rows, &data, &emsg);
	if (err == QC_OK && p->announce) {
		p->data = data;
		if (!qc_hub_room_announce(h, p->announce, p->args, pending_announced, p))
			return;
		p->data = NULL;
	}
	pending_answer(p, err, emsg, data);
}

static void durable_done(void *arg, enum qc_err err, const char *msg, json_t *rows)
{
	pending_finish(arg, err, msg, rows);
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

enum qc_err qc_hub_durable(struct qc_hub *h, struct qc_conn *c, struct qc_durable *d)
{
	struct pending *p = d->args ? calloc(1, sizeof(*p)) : NULL;
	const struct qc_cmd *cmd = h->cur;
	int ret;

	if (!p) {
		if (d->settled && d->args)
			d->settled(h, d->args);
		json_decref(d->args);
		if (cmd)
			qc_hub_answer(h, c, cmd->request_id, cmd->trace_id, cmd->ack_id,
			              QC_E_INTERNAL, "out of memory", NULL);
		return QC_ASYNC;
	}
	p->h = h;
	p->conn_id = c->id;
	p->ack_id = cmd ? cmd->ack_id : -1;
	p->request_id = cmd ? dup_or_null(cmd->request_id) : NULL;
	p->trace_id = cmd ? dup_or_null(cmd->trace_id) : NULL;
	p->commit = d->commit;
	p->announce = d->announce;
	p->after = d->after;
	p->settled = d->settled;
	p->args = d->args;
	d->args = NULL;
	if (!qc_hub_persistent(h)) {
		pending_finish(p, QC_OK, NULL, NULL);
		return QC_ASYNC;
	}
	ret = h->store.submit(h->store.ctx, d->sql, d->nparams, d->params, durable_done, p);
	if (ret) {
		pending_finish(p, ret == -ENOMEM ? QC_E_INTERNAL : QC_E_UNAVAILABLE,
		               ret == -EAGAIN   ? "the store is busy: try again"
		               : ret == -ENOMEM ? "out of memory"
		                                : "the store is unavailable: nothing was changed",
		               NULL);
	}
	return QC_ASYNC;
}

/*
 * ---- writes that must not be lost ----------------------------------------------------------
 *
 * Offline messages, alerts and their bookkeeping are not answers to anyone: when the store is
 * down they wait in a backlog, in order, and go out when it takes statements again (every
 * write that finds a backlog joins its tail, so the order holds). A statement that failed in
 * flight is sent again: the statements are written to be repeatable (alert ids are keys,
 * offline rows carry a key, bookkeeping is idempotent). The backlog is bounded in bytes; past
 * it a write is given up and counted (store.dropped).
 */
#define BACKLOG_MAX_BYTES (64u << 20)

struct qc_write {
	struct qc_write *prev; /* the backlog (utlist DL) */
	struct qc_write *next;
	struct qc_hub *h;
	const char *sql; /* static text */
	int n;
	char *params[QC_DURABLE_PARAMS];
	size_t bytes;
	qc_store_cb cb; /* NULL: bookkeeping, nothing to tell */
	void *arg;
};

static void write_free(struct qc_write *w)
{
	for (int i = 0; i < w->n; i++)
		free(w->params[i]);
	free(w);
}

/* The final outcome of @w: tell its owner (or count a failed bookkeeping write). */
static void write_end(struct qc_write *w, enum qc_err err, const char *msg, json_t *rows)
{
	if (w->cb)
		w->cb(w->arg, err, msg, rows);
	else if (err != QC_OK)
		w->h->store_dropped++;
	write_free(w);
}

static void backlog_push(struct qc_hub *h, struct qc_write *w)
{
	if (h->backlog_bytes + w->bytes > BACKLOG_MAX_BYTES) {
		write_end(w, QC_E_UNAVAILABLE, "the store's backlog is full", NULL);
		return;
	}
	DL_APPEND(h->backlog, w);
	h->backlog_bytes += w->bytes;
	h->nbacklog++;
}

static void write_done(void *arg, enum qc_err err, const char *msg, json_t *rows)
{
	struct qc_write *w = arg;
	struct qc_hub *h = w->h;

	if (err == QC_E_UNAVAILABLE && !h->freeing) {
		backlog_push(h, w); /* lost in flight, or timed out in the queue: again later */
		return;
	}
	write_end(w, err, msg, rows);
	if (err == QC_OK)
		qc_hub_store_flush(h);
}

static int write_submit(struct qc_hub *h, struct qc_write *w)
{
	return h->store.submit(h->store.ctx, w->sql, w->n, (const char *const *)w->params,
	                       write_done, w);
}

void qc_hub_store_keep(struct qc_hub *h, const char *sql, int n, const char *const *params,
                       qc_store_cb cb, void *arg)
{
	struct qc_write *w = calloc(1, sizeof(*w));

	if (!w || n > QC_DURABLE_PARAMS) {
		free(w);
		if (cb)
			cb(arg, QC_E_INTERNAL, "out of memory", NULL);
		else
			h->store_dropped++;
		return;
	}
	w->h = h;
	w->sql = sql;
	w->cb = cb;
	w->arg = arg;
	w->bytes = sizeof(*w);
	for (w->n = 0; w->n < n; w->n++) {
		const char *v = params[w->n];

		if (v && !(w->params[w->n] = strdup(v))) {
			write_end(w, QC_E_INTERNAL, "out of memory", NULL);
			return;
		}
		w->bytes += v ? strlen(v) + 1 : 0;
	}
	if (!h->backlog && !write_submit(h, w))
		return;
	backlog_push(h, w);
}

void qc_hub_store_flush(struct qc_hub *h)
{
	struct qc_write *w;

	while ((w = h->backlog)) {
		if (write_submit(h, w))
			return;
		DL_DELETE(h->backlog, w);
		h->backlog_bytes -= w->bytes;
		h->nbacklog--;
	}
}

/* At the end: what still waits is given up (its owners free what they hold). */
static void backlog_drop(struct qc_hub *h)
{
	struct qc_write *w;

	while ((w = h->backlog)) {
		DL_DELETE(h->backlog, w);
		h->nbacklog--;
		write_end(w, QC_E_UNAVAILABLE, "the server stopped", NULL);
	}
	h->backlog_bytes = 0;
}

struct qc_row_event *qc_row_event_new(struct qc_hub *h, const char *user, json_t *ev)
{
	struct qc_row_event *w = calloc(1, sizeof(*w));

	if (!w) {
		json_decref(ev);
		return NULL;
	}
	w->h = h;
	snprintf(w->user, sizeof(w->user), "%s", user);
	w->ev = ev;
	return w;
}

void qc_row_event_free(struct qc_row_event *w)
{
	if (!w)
		return;
	json_decref(w->ev);
	free(w);
}

void qc_hub_store_write(struct qc_hub *h, const char *sql, int n, const char *const *params)
{
	if (qc_hub_persistent(h))
		qc_hub_store_keep(h, sql, n, params, NULL, NULL);
}

/* A request whose answer waits (for a broker): who asked, found again by id when it answers. */
struct qc_waiter {
	struct qc_hub *h;
	uint64_t conn_id;
	int64_t ack_id;
	char *request_id;
	char *trace_id;
};

struct qc_waiter *qc_waiter_new(struct qc_hub *h, struct qc_conn *c)
{
	const struct qc_cmd *cmd = h->cur;
	struct qc_waiter *w = cmd ? calloc(1, sizeof(*w)) : NULL;

	if (!w)
		return NULL;
	w->h = h;
	w->conn_id = c->id;
	w->ack_id = cmd->ack_id;
	w->request_id = cmd->request_id ? strdup(cmd->request_id) : NULL;
	w->trace_id = cmd->trace_id ? strdup(cmd->trace_id) : NULL;
	return w;
}

void qc_waiter_free(struct qc_waiter *w)
{
	if (!w)
		return;
	free(w->request_id);
	free(w->trace_id);
	free(w);
}

struct qc_conn *qc_waiter_conn(struct qc_waiter *w)
{
	struct qc_conn *c = qc_conns_find(&w->h->conns, w->conn_id);

	return c && !c->suspended && !c->closing ? c : NULL;
}

void qc_waiter_answer(void *arg, enum qc_err e, const char *emsg, json_t *out)
{
	struct qc_waiter *w = arg;
	struct qc_conn *c = qc_waiter_conn(w);

	if (c)
		qc_hub_answer(w->h, c, w->request_id, w->trace_id, w->ack_id, e, emsg, out);
	else
		json_decref(out);
	qc_waiter_free(w);
}

void qc_waiter_subscribe(struct qc_waiter *w, struct qc_conn *c, const char *room,
                         const char *password, json_t *opts)
{
	struct qc_cmd cmd = {
	    .type = QC_CMD_SUBSCRIBE,
	    .request_id = w->request_id,
	    .trace_id = w->trace_id,
	    .room = room,
	    .password = password,
	    .ack_id = w->ack_id,
	    .root = opts,
	};
	const struct qc_cmd *was = w->h->cur;

	w->h->cur = &cmd;
	handle_room_cmd(w->h, c, &cmd);
	w->h->cur = was;
}

static void handle_request(struct qc_hub *h, struct qc_conn *c, const struct qc_cmd *cmd);

void qc_waiter_request(struct qc_waiter *w, struct qc_conn *c, const char *action, json_t *payload)
{
	struct qc_cmd cmd = {
	    .type = QC_CMD_REQUEST,
	    .request_id = w->request_id,
	    .trace_id = w->trace_id,
	    .action = action,
	    .payload = payload,
	    .ack_id = w->ack_id,
	};
	const struct qc_cmd *was = w->h->cur;

	w->h->cur = &cmd;
	handle_request(w->h, c, &cmd);
	w->h->cur = was;
}

/* The session event of @c (a fresh session, or a resumed one with its recovery figures). */
json_t *qc_hub_session_event(struct qc_hub *h, struct qc_conn *c, bool resumed, bool recovered,
                             uint32_t replayed)
{
	char token[QC_SESSION_ID_LEN + QC_SECRET_LEN + 1];
	json_t *data;

	snprintf(token, sizeof(token), "%s%s", c->session_id, c->secret);
	data = json_pack("{s:s, s:s, s:s, s:I, s:I, s:b}", "session_id", c->session_id,
	                 "resume_token", token, "user_id", c->user_id, "server_time",
	                 (json_int_t)qc_now_ms(), "heartbeat_interval_ms",
	                 (json_int_t)h->cfg->limits.idle_timeout_s * 1000 / 2, "resumed", resumed);
	if (data && resumed) {
		json_object_set_new(data, "recovered", json_boolean(recovered));
		json_object_set_new(data, "replayed", json_integer(replayed));
	}
	return qc_codec_event("session", data);
}

/*
 * The token bucket of @c: publishers (role publisher, SPEC 2.11) have their own rate, 0 by
 * default (unlimited), so a feed handler is never cut to a subscriber's 100 messages a second.
 */
static uint32_t rate_burst(const struct qc_hub *h, const struct qc_conn *c)
{
	uint32_t burst = h->cfg->limits.rate_burst, rate = h->cfg->limits.publisher_rate_per_s;

	return c->roles & QC_ROLE_PUBLISHER && rate > burst ? rate : burst;
}

static bool rate_take(struct qc_hub *h, struct qc_conn *c, int64_t now)
{
	bool publisher = c->roles & QC_ROLE_PUBLISHER;
	uint32_t rate = publisher ? h->cfg->limits.publisher_rate_per_s : h->cfg->limits.rate_per_s;

	if (qc_rate_take(&c->rate, rate, rate_burst(h, c), now))
		return true;
	if (publisher)
		qc_hub_refused(h, QC_LIM_PUBLISHER_RATE);
	return false;
}

/* Whether action @fn answered QC_OK changed its session's record (streams, fields). */
static bool action_changes_session(qc_action_fn fn)
{
	return fn == qc_act_subscribe_stream || fn == qc_act_unsubscribe_stream ||
	       fn == qc_act_update_filter;
}

void qc_hub_session_note(struct qc_hub *h, struct qc_conn *c, enum qc_session_state state)
{
	if (!h->ibroker.session || !c->in_table)
		return;
	/*
	 * Shutting down, its record stays (a live session's outlives the node by sessions.ttl_s):
	 * it resumes on another node. Replaced, it is another node's now: only this node's part
	 * of it goes.
	 */
	if (state == QC_SESSION_GONE ? h->shutting_down : c->no_resume)
		return;
	h->ibroker.session(h->ibroker.ctx, c->user_id, c->session_id, c->id, state, false);
}

static int open_begin(struct qc_hub *h, struct qc_conn *c);

int qc_hub_open(struct qc_hub *h, struct qc_conn *c)
{
	return qc_hub_open_at(h, c, NULL);
}

int qc_hub_open_at(struct qc_hub *h, struct qc_conn *c, const struct qc_inbox_pos *inbox)
{
	int ret = open_begin(h, c);

	return ret ? ret : qc_hub_open_finish(h, c, inbox);
}

int qc_hub_open_resume(struct qc_hub *h, struct qc_conn *c, const char *token,
                       const struct qc_inbox_pos *inbox)
{
	int ret;

	if (!h->ibroker.lookup || c->enc != QC_ENC_NATIVE ||
	    strlen(token) != QC_SESSION_ID_LEN + QC_SECRET_LEN)
		return qc_hub_open_at(h, c, inbox);
	ret = open_begin(h, c);
	if (ret)
		return ret;
	/* the session event waits for Redis: the resumed session's, or this fresh one's */
	if (qc_hub_remote_upgrade(h, c, token, inbox))
		return qc_hub_open_finish(h, c, inbox);
	return 0;
}

/* qc_hub_open_at() up to the session event: the ids, the tables, Socket.IO's CONNECT. */
static int open_begin(struct qc_hub *h, struct qc_conn *c)
{
	int64_t now = qc_now_ms();
	int ret;

	if (qc_random_hex(c->session_id, QC_SESSION_ID_LEN / 2) ||
	    qc_random_hex(c->secret, QC_SECRET_LEN / 2))
		return -EIO;
	if (!c->user_id[0])
		snprintf(c->user_id, sizeof(c->user_id), "anon-%.12s", c->session_id);
	c->connected_at_ms = now;
	c->last_activity_ms = now;
	qc_rate_init(&c->rate, rate_burst(h, c), now);
	ret = qc_conns_add(&h->conns, c);
	if (ret)
		return ret;
	qc_hub_session_note(h, c, QC_SESSION_LIVE);
	if (c->enc == QC_ENC_SIO) {
		/* the Socket.IO CONNECT answer comes before everything else */
		char pid[QC_SESSION_ID_LEN + QC_SECRET_LEN + 1];
		struct qc_msg *m;

		if (qc_hub_sio_open(h, c))
			return -ENOMEM;
		m = qc_sio_connect_msg(c->session_id, qc_hub_sio_pid(c, pid));

		if (!m)
			return -ENOMEM;
		m->kind = QC_MSG_CONTROL;
		qc_hub_send(h, c, m);
		qc_msg_unref(&m);
		c->sio_next_ping_ms = now + h->cfg->socketio.ping_interval_ms;
	}
	h->st.accepted_total++;
	if (qc_hub_nconns(h) > h->st.peak)
		h->st.peak = qc_hub_nconns(h);
	return 0;
}

int qc_hub_open_finish(struct qc_hub *h, struct qc_conn *c, const struct qc_inbox_pos *inbox)
{
	json_t *ev = qc_hub_session_event(h, c, false, true, 0);

	/* a position in the user's inbox (SPEC 2.9): what followed it comes right after the event
	 */
	if (ev && inbox && c->enc == QC_ENC_NATIVE)
		json_object_set_new(json_object_get(ev, "data"), "inbox",
		                    qc_hub_inbox_report(h, c, inbox->seq, inbox->epoch));
	if (qc_hub_send_json(h, c, ev) == -ENOMEM)
		return -ENOMEM;
	if (inbox && c->enc == QC_ENC_NATIVE)
		qc_hub_inbox_readback(h, c, inbox->seq, inbox->epoch);
	/* the user's first session: what waited for them comes first (after the inbox's past) */
	if (c->user && c->user->nconns == 1)
		qc_hub_offline_online(h, c);
	qc_hub_subs_attach(h, c);
	return 0;
}

/* Free everything @c holds and @c itself. */
void qc_hub_destroy(struct qc_hub *h, struct qc_conn *c)
{
	struct qc_membership *m, *tmp;

	HASH_ITER (hh, c->rooms.by_room, m, tmp)
		qc_hub_leave_room(h, c, m->room);
	qc_hub_streams_closed(h, c);
	qc_outq_clear(&c->outq);
	qc_outq_clear(&c->replay);
	qc_msg_unref(&c->session_msg);
	qc_hub_sio_free(c);
	free(c->rx);
	/*
	 * the user's last session: a memory inbox log goes with it (a new session, a new epoch);
	 * a durable one stays (hub_inbox.c)
	 */
	if (c->user && c->user->nconns == 1) {
		if (c->user->inbox && !c->user->inbox->durable)
			qc_log_free(c->user->inbox);
		c->user->inbox = NULL;
	}
	qc_hub_session_note(h, c, QC_SESSION_GONE);
	qc_conns_remove(&h->conns, c);
	if (!qc_conns_user(&h->conns, c->user_id))
		qc_hub_offline_gone(h, c->user_id);
	free(c);
}

void qc_hub_closed(struct qc_hub *h, struct qc_conn *c)
{
	c->transport = NULL;
	free(c->rx);
	c->rx = NULL;
	c->rx_len = 0;
	if (!c->in_table) {
		free(c);
		return;
	}
	h->st.closed_total++;
	/* a session outlives its socket unless the server is going away */
	/* Socket.IO sessions without recovery cannot resume: their messages go offline */
	if (h->cfg->sessions.ttl_s && !h->shutting_down && !c->no_resume &&
	    (c->enc == QC_ENC_NATIVE || c->sio) && !qc_hub_suspend(h, c))
		return;
	qc_hub_destroy(h, c);
}

static void handle_room_cmd(struct qc_hub *h, struct qc_conn *c, const struct qc_cmd *cmd)
{
	const char *emsg = NULL;
	json_t *data = NULL;
	enum qc_err e;

	if (cmd->type == QC_CMD_SUBSCRIBE)
		e = qc_hub_subscribe(h, c, cmd->room, cmd->password, cmd->root, &data, &emsg);
	else
		e = qc_hub_unsubscribe(h, c, cmd->room, &data, &emsg);
	if (e == QC_OK) {
		reply_ok(h, c, cmd, data);
		qc_hub_session_note(h, c, QC_SESSION_LIVE); /* its record changed */
		if (cmd->type == QC_CMD_SUBSCRIBE)
			qc_hub_room_readback(h, c, cmd->room, cmd->root);
	} else if (e != QC_ASYNC)
		reply_err(h, c, cmd, e, emsg);
}

static enum qc_err act_get_stats(struct qc_hub *h, struct qc_conn *c, json_t *payload,
                                 json_t **data, const char **emsg)
{
	if (!(c->roles & QC_ROLE_ADMIN)) {
		*emsg = "role admin required";
		return QC_E_FORBIDDEN;
	}
	*data = qc_hub_stats(h);
	return QC_OK;
}

/*
 * Every request action. @after, when set, runs once the success response is queued (so a
 * subscribe's snapshot and replay reach the client after its response).
 */
static const struct {
	const char *name;
	qc_action_fn fn;
	void (*after)(struct qc_hub *h, struct qc_conn *c, json_t *payload);
} actions[] = {
    {"send_message", qc_act_send_message, NULL},
    {"send_to_user", qc_act_send_to_user, NULL},
    {"create_room", qc_act_create_room, NULL},
    {"delete_room", qc_act_delete_room, NULL},
    {"get_room", qc_act_get_room, NULL},
    {"list_rooms", qc_act_list_rooms, NULL},
    {"get_room_members", qc_act_get_room_members, NULL},
    {"set_room_status", qc_act_set_room_status, NULL},
    {"add_member", qc_act_add_member, NULL},
    {"remove_member", qc_act_remove_member, NULL},
    {"set_member_role", qc_act_set_member_role, NULL},
    {"get_stats", act_get_stats, NULL},
    {"get_connections", qc_act_get_connections, NULL},
    {"subscribe_market_stream", qc_act_subscribe_stream, qc_after_subscribe_stream},
    {"unsubscribe_market_stream", qc_act_unsubscribe_stream, NULL},
    {"update_stream_filter", qc_act_update_filter, NULL},
    {"get_buffered_data", qc_act_get_buffered, NULL},
    {"get_market_data", qc_act_get_market_data, NULL},
    {"publish_market_data", qc_act_publish, NULL},
    {"create_subscription", qc_act_create_subscription, NULL},
    {"update_subscription", qc_act_update_subscription, NULL},
    {"delete_subscription", qc_act_delete_subscription, NULL},
    {"list_subscriptions", qc_act_list_subscriptions, NULL},
    {"list_alerts", qc_act_list_alerts, NULL},
    {"ack_alert", qc_act_ack_alert, NULL},
};

static void handle_request(struct qc_hub *h, struct qc_conn *c, const struct qc_cmd *cmd)
{
	const char *emsg = NULL;
	json_t *data = NULL;
	enum qc_err e;

	for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++) {
		if (strcmp(cmd->action, actions[i].name))
			continue;
		e = actions[i].fn(h, c, cmd->payload, &data, &emsg);
		if (e == QC_OK) {
			reply_ok(h, c, cmd, data);
			if (action_changes_session(actions[i].fn))
				qc_hub_session_note(h, c, QC_SESSION_LIVE); /* its record changed */
			if (actions[i].after)
				actions[i].after(h, c, cmd->payload);
		} else if (e != QC_ASYNC) {
			reply_err(h, c, cmd, e, emsg);
		}
		return;
	}
	reply_err(h, c, cmd, QC_E_UNKNOWN_ACTION, "unknown action");
}

/*
 * A Socket.IO frame after the handshake (ws.c answers Engine.IO pings and the CONNECT): an
 * EVENT becomes the same command a native frame would; an ACK from the client is nothing to
 * do (QC_CMD_NONE).
 */
static enum qc_err sio_parse(const char *buf, size_t len, struct qc_cmd *cmd, const char **emsg)
{
	struct qc_sio_packet p;
	enum qc_err e = qc_sio_parse(buf, len, &p, emsg);

	memset(cmd, 0, sizeof(*cmd));
	cmd->ack_id = -1;
	if (e == QC_OK) {
		if (p.eio != QC_EIO_MESSAGE || p.sio == QC_SIO_ACK) {
			cmd->type = QC_CMD_NONE;
		} else if (p.sio != QC_SIO_EVENT) {
			e = QC_E_BAD_REQUEST;
			*emsg = "only EVENT packets are expected here";
		} else if (strcmp(p.nsp, "/")) {
			e = QC_E_BAD_REQUEST;
			*emsg = "only the namespace \"/\" is served";
		} else {
			e = qc_sio_to_cmd(&p, cmd, emsg);
		}
	}
	qc_sio_packet_release(&p);
	return e;
}

void qc_hub_rx(struct qc_hub *h, struct qc_conn *c, const char *buf, size_t len, bool binary)
{
	const char *emsg = NULL;
	struct qc_cmd cmd;
	enum qc_err e;
	int64_t now = qc_now_ms();

	c->last_activity_ms = now;
	c->msgs_in++;
	h->st.msgs_in++;
	if (c->closing)
		return;

	/* binary frames are refused, but only after they have paid for their token */
	if (binary) {
		memset(&cmd, 0, sizeof(cmd));
		cmd.ack_id = -1;
		e = QC_E_BAD_REQUEST;
		emsg = "binary frames are not accepted";
	} else if (c->enc == QC_ENC_SIO) {
		if (len == 1 && buf[0] == '3') {
			c->sio_ping_ms =
			    0; /* the Engine.IO pong: not a message, not rate limited */
			return;
		}
		e = sio_parse(buf, len, &cmd, &emsg);
	} else if ((c->roles & QC_ROLE_PUBLISHER) && qc_hub_scan_publish(h, buf, len, &cmd)) {
		e = QC_OK; /* a publish read without a tree (hub_stream.c) */
	} else {
		e = qc_codec_parse(buf, len, &cmd, &emsg);
	}

	if (!rate_take(h, c, now)) {
		h->st.rate_limited++;
		reply_err(h, c, &cmd, QC_E_RATE_LIMITED, "rate limit exceeded: slow down");
		if (++c->rate_warned >= rate_burst(h, c))
			qc_hub_close(h, c, 4029, QC_CLOSE_AFTER_DRAIN);
		goto out;
	}
	c->rate_warned = 0;

	if (e != QC_OK) {
		reply_err(h, c, &cmd, e, emsg);
		goto out;
	}
	h->cur = &cmd;
	switch (cmd.type) {
	case QC_CMD_NONE:
		break;
	case QC_CMD_PING:
		send_native(h, c, qc_codec_pong(cmd.timestamp, cmd.request_id, cmd.trace_id, now),
		            cmd.ack_id);
		break;
	case QC_CMD_SUBSCRIBE:
	case QC_CMD_UNSUBSCRIBE:
		handle_room_cmd(h, c, &cmd);
		break;
	case QC_CMD_REQUEST:
		handle_request(h, c, &cmd);
		break;
	case QC_CMD_RESUME:
		/* @c may be gone after this: the session it names took its socket over */
		qc_hub_resume_request(h, c, &cmd);
		h->cur = NULL;
		goto out;
	}
	if (cmd.type != QC_CMD_NONE && cmd.type != QC_CMD_PING)
		c->requested = 1;
	h->cur = NULL;
out:
	qc_cmd_release(&cmd);
}

bool qc_hub_ready(struct qc_hub *h, const char **reason)
{
	struct qc_store_stats st = {0};

	if (h->shutting_down) {
		*reason = "shutting down";
		return false;
	}
	if (h->cluster.ready && !h->cluster.ready(h->cluster.ctx, reason))
		return false;
	if (!qc_hub_persistent(h))
		return true;
	h->store.stats(h->store.ctx, &st);
	if (!st.connected) {
		*reason = "the store (PostgreSQL) is not connected";
		return false;
	}
	if (st.state && !strcmp(st.state, "stalled")) {
		*reason = "the store (PostgreSQL) is not answering";
		return false;
	}
	return true;
}

void qc_hub_set_store(struct qc_hub *h, const struct qc_store *s)
{
	h->store = *s;
	qc_hub_offline_store_ready(h);
	qc_hub_rooms_store_ready(h);
}

static const char *const load_sql[] = {
    "SELECT name, owner, type, status, password_hash, max_members, metadata::text, created_at,"
    " log_epoch FROM rooms ORDER BY created_at, name",
    "SELECT room, user_id, role, joined_at FROM room_members ORDER BY joined_at",
    "SELECT id, user_id, name, symbol, fields::text, alert_priority, version, active, created_at,"
    " updated_at, max_hz::text FROM subscriptions ORDER BY created_at, id",
    "SELECT subscription_id, idx, parent, op, position FROM filter_expressions",
    "SELECT subscription_id, expression_idx, position, field, cmp, value::text"
    " FROM filter_conditions",
    /*
     * what waits offline, in order: the rooms' logs, and per user undelivered direct messages
     * and alerts (rows from before schema 3 have no order number: their time stands in)
     */
    "SELECT kind, user_id, room, event, data, id, alert_id, gseq::text, target_role,"
    " target_users FROM ("
    " SELECT 'u' AS kind, user_id, NULL AS room, event, data::text AS data, id::text AS id,"
    " NULL AS alert_id, COALESCE(gseq, created_at * 1000) AS gseq, NULL AS target_role,"
    " NULL AS target_users, 0 AS k, id AS n FROM offline_messages"
    " UNION ALL SELECT 'u', user_id, NULL, 'alert', json_build_object('alert_id', id,"
    " 'subscription_id', subscription_id, 'symbol', symbol, 'priority', priority, 'data', data,"
    " 'seq', seq, 'timestamp', created_at)::text, NULL, id, created_at * 1000, NULL, NULL, 1, 0"
    " FROM alerts WHERE delivery = 'pending'"
    " UNION ALL SELECT 'r', NULL, room, event, data::text, NULL, NULL, gseq, target_role,"
    " target_users::text, 2, 0 FROM room_log) q ORDER BY gseq, k, n, alert_id",
    "SELECT user_id, gseq::text FROM offline_cursors",
    "SELECT room, seq::text, event, data::text, target_role, target_users::text,"
    " created_at::text FROM room_history ORDER BY room, seq",
    "SELECT user_id, epoch, last_seq::text FROM inbox_logs",
    "SELECT user_id, seq::text, event, data::text, created_at::text FROM inbox_history"
    " ORDER BY user_id, seq",
};

int qc_hub_load(struct qc_hub *h, qc_load_query_fn query, void *ctx, char *err, size_t errlen)
{
	json_t *rows[sizeof(load_sql) / sizeof(load_sql[0])] = {0};
	const size_t n = sizeof(load_sql) / sizeof(load_sql[0]);
	int ret = -1;
	size_t i;

	for (i = 0; i < n; i++)
		if (query(ctx, load_sql[i], &rows[i], err, errlen))
			goto out;
	h->loading = true;
	if (qc_hub_rooms_load(h, rows[0], rows[1], err, errlen) ||
	    qc_hub_rooms_history_load(h, rows[0], rows[7], err, errlen) ||
	    qc_hub_subs_load(h, rows[2], rows[3], rows[4], err, errlen) ||
	    qc_hub_inbox_load(h, rows[8], rows[9], err, errlen) ||
	    qc_hub_offline_load(h, rows[5], rows[6], err, errlen))
		goto out;
	ret = 0;
out:
	h->loading = false;
	for (i = 0; i < n; i++)
		json_decref(rows[i]);
	return ret;
}

uint32_t qc_hub_shutdown(struct qc_hub *h)
{
	struct qc_conn *c, *tmp;

	h->shutting_down = true;
	HASH_ITER (hh, h->conns.by_id, c, tmp)
		if (!c->suspended)
			qc_hub_close(h, c, 1001, QC_CLOSE_AFTER_DRAIN);
	qc_hub_offline_shutdown(h);
	return qc_hub_nconns(h);
}

static uint64_t rss_bytes(const struct qc_hub *h)
{
	char buf[128];
	unsigned long long size, resident;
	ssize_t n;

	if (h->statm_fd < 0)
		return 0;
	n = pread(h->statm_fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if (sscanf(buf, "%llu %llu", &size, &resident) != 2)
		return 0;
	return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static json_t *store_stats(struct qc_hub *h)
{
	struct qc_store_stats st = {0};

	if (qc_hub_persistent(h))
		h->store.stats(h->store.ctx, &st);
	return json_pack("{s:b, s:b, s:I, s:I, s:s, s:I, s:I}", "configured", st.configured,
	                 "connected", st.connected, "pending", (json_int_t)st.pending, "failed",
	                 (json_int_t)st.failed, "state", st.state ? st.state : "memory-only",
	                 "backlog", (json_int_t)h->nbacklog, "dropped",
	                 (json_int_t)h->store_dropped);
}

json_t *qc_hub_stats(struct qc_hub *h)
{
	uint32_t active = 0, users_in_rooms = 0;
	uint64_t members = 0;
	struct qc_user *u, *utmp;
	struct qc_conn *c;
	json_t *doc, *o;

	/* cold path: walk users once for the figures the hot path does not keep */
	HASH_ITER (hh, h->conns.users, u, utmp) {
		for (c = u->conns; c; c = c->user_next)
			if (c->rooms.count) {
				users_in_rooms++;
				break;
			}
	}
	qc_hub_room_counts(h, &active, &members);

	doc = json_pack(
	    "{s:{s:s, s:I, s:s, s:I}, s:I, s:I, s:I,"
	    " s:{s:I, s:I, s:I, s:I},"
	    " s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I},"
	    " s:o,"
	    " s:{s:I, s:I, s:I, s:I, s:I},"
	    " s:o,"
	    " s:o, s:o, s:o}",
	    "server", "version", QC_VERSION, "uptime_s",
	    (json_int_t)((qc_now_ms() - h->st.started_ms) / 1000), "event_loop", h->event_loop,
	    "rss_bytes", (json_int_t)rss_bytes(h), "total_connections",
	    (json_int_t)qc_hub_nconns(h), "total_users", (json_int_t)h->conns.nusers, "total_rooms",
	    (json_int_t)qc_rooms_count(h->rooms), "connections", "accepted_total",
	    (json_int_t)h->st.accepted_total, "closed_total", (json_int_t)h->st.closed_total,
	    "rejected_total", (json_int_t)h->st.rejected_total, "peak", (json_int_t)h->st.peak,
	    "rooms", "total_rooms", (json_int_t)qc_rooms_count(h->rooms), "active_rooms",
	    (json_int_t)active, "total_members", (json_int_t)members, "total_subscriptions",
	    (json_int_t)qc_rooms_memberships(h->rooms), "total_users", (json_int_t)users_in_rooms,
	    "rooms_created", (json_int_t)h->st.rooms_created, "rooms_deleted",
	    (json_int_t)h->st.rooms_deleted, "total_join_events", (json_int_t)h->st.join_events,
	    "total_leave_events", (json_int_t)h->st.leave_events, "streaming",
	    qc_hub_streaming_stats(h), "reconnection", "suspended", (json_int_t)h->nsuspended,
	    "resumed", (json_int_t)h->st.resumed, "expired", (json_int_t)h->st.expired, "replayed",
	    (json_int_t)h->st.replayed, "buffer_dropped", (json_int_t)h->st.buffer_dropped,
	    "offline", qc_hub_offline_stats(h), "store", store_stats(h), "subscriptions",
	    qc_hub_subs_stats(h), "limits", limits_stats(h));
	if (!doc)
		return NULL;
	/* the logs of SPEC 2.9 */
	o = json_object_get(doc, "rooms");
	json_object_set_new(o, "history_logs", json_integer(h->logs[QC_LOG_ROOM]));
	json_object_set_new(o, "history_entries",
	                    json_integer((json_int_t)h->log_entries[QC_LOG_ROOM]));
	json_object_set_new(o, "history_replayed",
	                    json_integer((json_int_t)h->log_replayed[QC_LOG_ROOM]));
	/* cluster mode: room events the broker did not log (Redis down) or sent malformed */
	if (h->room_broker.append) {
		json_object_set_new(o, "events_lost",
		                    json_integer((json_int_t)h->room_events_lost));
		json_object_set_new(o, "events_malformed",
		                    json_integer((json_int_t)h->room_events_bad));
		json_object_set_new(o, "gap_reads", json_integer((json_int_t)h->room_gap_reads));
		json_object_set_new(o, "gaps_lost", json_integer((json_int_t)h->room_gaps_lost));
	}
	json_object_set_new(doc, "inbox",
	                    json_pack("{s:I, s:I, s:I}", "logs", (json_int_t)h->logs[QC_LOG_INBOX],
	                              "history_entries", (json_int_t)h->log_entries[QC_LOG_INBOX],
	                              "history_replayed",
	                              (json_int_t)h->log_replayed[QC_LOG_INBOX]));
	o = json_object_get(doc, "reconnection");
	json_object_set_new(o, "resumed_positions", json_integer((json_int_t)h->resumed_positions));
	json_object_set_new(o, "resume_refused", json_integer((json_int_t)h->resume_refused));
	/* cluster mode: resumed from another node's record, rooms not rejoined, replaced here */
	json_object_set_new(o, "resumed_remote", json_integer((json_int_t)h->resumed_remote));
	json_object_set_new(o, "resume_rooms_lost", json_integer((json_int_t)h->resume_rooms_lost));
	json_object_set_new(o, "replaced", json_integer((json_int_t)h->sessions_replaced));
	/* Socket.IO reconnects that named a session (pid) and got a fresh one (hub_sio.c) */
	json_object_set_new(o, "not_recovered", json_integer((json_int_t)h->sio_not_recovered));
	if (h->cluster.stats)
		json_object_set_new(doc, "cluster", h->cluster.stats(h->cluster.ctx));
	return doc;
}

void qc_hub_set_cluster(struct qc_hub *h, const struct qc_cluster_ops *ops)
{
	h->cluster = *ops;
}
