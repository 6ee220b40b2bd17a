/*
 * hub_sio: Socket.IO connection state recovery (SPEC 2.9, 5), as socket.io-client 4.6+ expects
 * it.
 *
 * The CONNECT answer gives a recovering session its pid (session id and secret: what a
 * reconnect must present) besides its sid. Every event it is sent carries an offset as its last
 * argument: one number per outgoing message, from the hub's counter, put into the message's
 * single Socket.IO encoding (qc_frames_get), so all receivers share it. The client remembers the
 * last offset it processed and presents pid and offset in the CONNECT of its reconnect.
 *
 * Each recovering session keeps references to the offset-bearing frames queued to it, live or
 * suspended (hist: a ring of at most sessions.buffer_messages pointers; the frames are shared).
 * A session's offsets ascend in the order its frames are queued, so "everything after the
 * client's offset" is the tail of hist, and it is complete when nothing newer than that offset
 * has been taken out of it (floor). Market ticks published while it is suspended are not queued
 * to it: the resume catches each stream up from its ring by seq, as the native resume does.
 * A resume that cannot be exact is refused: the session ends and the client gets a new one
 * (its socket.recovered is then false), with what waits in the offline queue.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <utlist.h>

#include "hub_priv.h"
#include "quotecast/sio.h"

#define PID_LEN (QC_SESSION_ID_LEN + QC_SECRET_LEN)

bool qc_hub_sio_recovery(const struct qc_hub *h)
{
	return h->cfg->sessions.ttl_s && h->cfg->sessions.buffer_messages;
}

int qc_hub_sio_open(struct qc_hub *h, struct qc_conn *c)
{
	if (!qc_hub_sio_recovery(h) || c->sio)
		return 0;
	c->sio = calloc(1, sizeof(*c->sio));
	if (!c->sio)
		return -ENOMEM;
	/* what the transport writes moves to the history instead of being dropped */
	c->outq.written = &c->sio->hist;
	return 0;
}

const char *qc_hub_sio_pid(const struct qc_conn *c, char *out)
{
	if (!c->sio)
		return NULL;
	memcpy(out, c->session_id, QC_SESSION_ID_LEN);
	memcpy(out + QC_SESSION_ID_LEN, c->secret, QC_SECRET_LEN);
	out[PID_LEN] = '\0';
	return out;
}

size_t qc_hub_sio_bytes(const struct qc_conn *c)
{
	return c->sio ? c->sio->hist.bytes : 0;
}

/* Take the oldest frame out of @c's history (sessions.* bounds): it can no longer be replayed. */
static void evict(struct qc_hub *h, struct qc_conn *c)
{
	struct qc_sio_state *s = c->sio;
	struct qc_msg *m = qc_outq_peek(&s->hist);

	/*
	 * Not counted as buffer_dropped: the client may well have had it. Whether it had is known
	 * at the reconnect (reconnection.not_recovered).
	 */
	s->floor = m->offset;
	if (c->suspended)
		h->buffered_bytes -= m->len;
	qc_outq_pop(&s->hist);
}

/* Move @q's events to the end of @c's history, in order; drop the rest. */
static void gather(struct qc_conn *c, struct qc_outq *q)
{
	struct qc_msg *m;

	while ((m = qc_outq_peek(q))) {
		if (m->offset && qc_outq_push(&c->sio->hist, m))
			c->sio->broken = true;
		qc_outq_pop(q);
	}
	qc_outq_clear(q);
}

/* Hold @c's history to sessions.buffer_messages (and, suspended, the bytes bound). */
static void trim(struct qc_hub *h, struct qc_conn *c)
{
	const struct qc_config *cfg = h->cfg;
	struct qc_sio_state *s = c->sio;

	while (s->hist.count > cfg->sessions.buffer_messages)
		evict(h, c);
	while (c->suspended && h->buffered_bytes > cfg->sessions.max_buffered_bytes &&
	       !qc_outq_empty(&s->hist)) {
		qc_hub_refused(h, QC_LIM_SESSION_BYTES);
		evict(h, c);
	}
}

void qc_hub_sio_keep(struct qc_hub *h, struct qc_conn *c, struct qc_msg *m)
{
	struct qc_sio_state *s = c->sio;

	if (s->broken)
		return; /* it cannot be recovered: nothing to keep */
	if (!c->suspended) {
		/*
		 * closing: it follows what the queues still hold (gathered at the suspension). A
		 * drain that takes long (a peer that stopped reading) keeps at most the bound.
		 */
		if (s->late.count >= h->cfg->sessions.buffer_messages ||
		    qc_outq_push(&s->late, m)) {
			s->broken = true;
			qc_outq_clear(&s->late);
		}
		return;
	}
	if (qc_outq_push(&s->hist, m)) {
		s->broken = true;
		return;
	}
	h->buffered_bytes += m->len;
	trim(h, c);
}

void qc_hub_sio_written(struct qc_hub *h, struct qc_conn *c)
{
	if (c->sio)
		trim(h, c);
}

void qc_hub_sio_drop_queues(struct qc_conn *c)
{
	/* written, then queued, then the rest of a replay, then what came while closing */
	gather(c, &c->outq);
	gather(c, &c->replay);
	gather(c, &c->sio->late);
	c->sio->broken |= c->outq.written_lost;
	c->replaying = 0;
	c->replay_old = 0;
	c->replay_live = 0;
	qc_msg_unref(&c->session_msg);
}

void qc_hub_sio_suspended(struct qc_hub *h, struct qc_conn *c)
{
	h->buffered_bytes += c->sio->hist.bytes;
	trim(h, c);
}

void qc_hub_sio_free(struct qc_conn *c)
{
	if (!c->sio)
		return;
	c->outq.written = NULL;
	qc_outq_clear(&c->sio->hist);
	qc_outq_clear(&c->sio->late);
	free(c->sio);
	c->sio = NULL;
}

/* The client's offset: absent (nothing received yet) is 0; 1-20 digits; else false. */
static bool read_offset(json_t *v, uint64_t *out)
{
	const char *s = json_string_value(v);
	size_t n;
	char *end;

	*out = 0;
	if (!v || json_is_null(v))
		return true;
	n = json_string_length(v);
	if (!s || !n || n > 20 || strspn(s, "0123456789") != n)
		return false;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return !errno && *end == '\0';
}

/*
 * Whether @c can give a client that processed everything up to @offset exactly what came
 * after: its history reaches back there, and each stream's ring reaches back to the last tick
 * queued to it.
 */
static bool recoverable(struct qc_conn *c, uint64_t offset)
{
	struct qc_sub *sub, *tmp;

	const struct qc_outq *q = &c->sio->hist;
	uint64_t prev = c->sio->floor;

	if (c->sio->broken || offset < c->sio->floor)
		return false;
	/* offsets ascend in the order frames were queued; anything else makes positions unsure */
	for (uint32_t i = 0; i < q->count; i++) {
		uint64_t o = q->slot[(q->head + i) & (q->cap - 1)]->offset;

		if (o <= prev)
			return false;
		prev = o;
	}
	HASH_ITER (hh, c->streams.by_stream, sub, tmp)
		if (!qc_hub_stream_recoverable(sub->stream, sub->last_seq))
			return false;
	return true;
}

/* A live session of @fresh's user with the session id at the start of @pid, or NULL. */
static struct qc_conn *live_session(struct qc_hub *h, const struct qc_conn *fresh, const char *pid)
{
	struct qc_user *u = fresh->user_id[0] ? qc_conns_user(&h->conns, fresh->user_id) : NULL;
	struct qc_conn *c;

	if (!fresh->user_id[0]) {
		/* anonymous: its user id names its session */
		char anon[QC_USER_ID_MAX + 1];

		snprintf(anon, sizeof(anon), "anon-%.12s", pid);
		u = qc_conns_user(&h->conns, anon);
	}
	for (c = u ? u->conns : NULL; c; c = c->user_next)
		if (!c->suspended && !memcmp(c->session_id, pid, QC_SESSION_ID_LEN))
			return c;
	return NULL;
}

/* Whether @fresh (just identified) is @c's user: the same name, or both anonymous. */
static bool same_user(const struct qc_conn *c, const struct qc_conn *fresh)
{
	if (fresh->user_id[0])
		return !strcmp(c->user_id, fresh->user_id);
	return !strncmp(c->user_id, "anon-", 5) &&
	       !strncmp(c->user_id + 5, c->session_id, strlen(c->user_id + 5));
}

/*
 * The recovering session @pid names, if @fresh may take it over; else NULL. Suspended, or
 * still live: a client reconnects when its transport died, which the server may not have seen
 * yet (a half-open TCP connection after a network change lasts until the ping timeout).
 */
static struct qc_conn *find(struct qc_hub *h, const struct qc_conn *fresh, const char *pid)
{
	struct qc_conn *c = NULL;

	if (strlen(pid) != PID_LEN || strspn(pid, "0123456789abcdef") != PID_LEN)
		return NULL;
	HASH_FIND(hh_session, h->by_session, pid, QC_SESSION_ID_LEN, c);
	if (!c)
		c = live_session(h, fresh, pid);
	/* no_resume: ended for a reason a reconnect must not undo (socket.disconnect(), exp) */
	if (!c || !c->sio || c->enc != QC_ENC_SIO || c->no_resume ||
	    CRYPTO_memcmp(c->secret, pid + QC_SESSION_ID_LEN, QC_SECRET_LEN) ||
	    !same_user(c, fresh))
		return NULL;
	if (c->suspended ? c->expires_ms <= qc_now_ms() : !c->transport || !h->t.abandon)
		return NULL;
	return c;
}

/* Queue control frame @m (stolen) on @c's outq. */
static int push_control(struct qc_conn *c, struct qc_msg *m)
{
	int ret;

	if (!m)
		return -ENOMEM;
	m->kind = QC_MSG_CONTROL;
	ret = qc_outq_push(&c->outq, m);
	qc_msg_unref(&m);
	return ret;
}

/* @c takes over @fresh's socket and what the handshake left queued in it. */
static void take_over(struct qc_hub *h, struct qc_conn *c, struct qc_conn *fresh)
{
	int64_t now = qc_now_ms();
	struct qc_msg *m;

	c->transport = fresh->transport;
	c->roles = fresh->roles;
	c->token_exp_ms = fresh->token_exp_ms;
	c->last_activity_ms = now;
	c->bad_messages = 0;
	c->rate_warned = 0;
	qc_rate_init(&c->rate, h->cfg->limits.rate_burst, now);
	c->sio_ping_ms = 0;
	c->sio_next_ping_ms = now + h->cfg->socketio.ping_interval_ms;
	while ((m = qc_outq_peek(&fresh->outq))) {
		if (qc_outq_push(&c->outq, m))
			break;
		qc_outq_pop(&fresh->outq);
	}
	qc_outq_clear(&fresh->outq);
}

struct qc_conn *qc_hub_sio_resume(struct qc_hub *h, struct qc_conn *fresh, json_t *auth)
{
	json_t *jpid = json_object_get(auth, "pid");
	char pid[PID_LEN + 1];
	struct qc_sub *sub, *tmp;
	struct qc_sio_state *s;
	struct qc_conn *c;
	uint64_t offset;
	uint32_t replayed;

	if (!qc_hub_sio_recovery(h) || !json_is_string(jpid))
		return NULL;
	c = find(h, fresh, json_string_value(jpid));
	/* a live session's socket is about to be let go: what it held joins the history */
	if (c && !c->suspended)
		qc_hub_sio_drop_queues(c);
	if (!c || !read_offset(json_object_get(auth, "offset"), &offset) ||
	    !recoverable(c, offset)) {
		/* the client will start afresh (recovered false): its old session has no use */
		if (c && c->suspended) {
			qc_hub_unsuspend(h, c);
			qc_hub_destroy(h, c);
		} else if (c) {
			c->no_resume = 1;
			qc_hub_close(h, c, 1000, QC_CLOSE_NOW);
		}
		h->sio_not_recovered++;
		return NULL;
	}

	if (c->suspended) {
		qc_hub_unsuspend(h, c);
	} else {
		/* its old socket is let go: whatever it held unsent is in the history */
		h->t.abandon(h->t.ctx, c);
		free(c->rx);
		c->rx = NULL;
		c->rx_len = 0;
		c->closing = 0;
		c->close_code = 0;
		c->close_sent = 0;
		h->st.closed_total++;
	}
	take_over(h, c, fresh);
	s = c->sio;
	/* what the client has processed is acknowledged: only what came after it is kept */
	while (qc_outq_peek(&s->hist) && qc_outq_peek(&s->hist)->offset <= offset) {
		s->floor = qc_outq_peek(&s->hist)->offset;
		qc_outq_pop(&s->hist);
	}
	if (offset > s->floor)
		s->floor = offset;

	/*
	 * The CONNECT answer with the same sid and pid (socket.recovered), the session event, then
	 * the replay: the history after the offset, each stream's ticks since the last one queued
	 * to it (new frames, kept in the history like live ones), then live data. The replay is
	 * bounded already (sessions.buffer_messages, the rings): it reaches the queue as the
	 * socket takes it (qc_hub_refill) and is not held to max_send_queue_bytes.
	 */
	/* they are kept again as they are written */
	while (qc_outq_peek(&s->hist)) {
		if (qc_outq_push(&c->replay, qc_outq_peek(&s->hist)))
			goto fail;
		qc_outq_pop(&s->hist);
	}
	replayed = c->replay.count;
	c->replaying = QC_REPLAY_BUILDING;
	c->replay_live = 0;
	if (push_control(c, qc_sio_connect_msg(c->session_id, qc_hub_sio_pid(c, pid))))
		goto fail;
	{
		json_t *ev = qc_hub_session_event(h, c, true, true, replayed);
		struct qc_msg *m = ev ? qc_sio_from_native(ev, -1) : NULL;

		json_decref(ev);
		if (push_control(c, m))
			goto fail;
	}
	HASH_ITER (hh, c->streams.by_stream, sub, tmp)
		qc_hub_stream_catch_up(h, c, sub, false, true, sub->last_seq);
	c->replay_old = c->replay.count;
	c->replay_live = 0;
	c->replaying = QC_REPLAY_ON;
	qc_hub_refill(h, c);
	if (!qc_outq_empty(&c->outq))
		h->t.want_write(h->t.ctx, c);
	c->dropped = 0;
	h->st.resumed++;
	h->st.replayed += replayed;
	if (qc_hub_nconns(h) > h->st.peak)
		h->st.peak = qc_hub_nconns(h);
	return c;

fail:
	/* out of memory: suspended again when the socket closes, the history intact */
	qc_hub_close(h, c, 1011, QC_CLOSE_NOW);
	return c;
}
