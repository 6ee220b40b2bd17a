/*
 * hub_session: sessions that outlive their socket (SPEC 2.8).
 *
 * A closed connection's record stays in every index, suspended, for sessions.ttl_s: room and
 * direct messages that reach it are kept in its outq (the session buffer, at most
 * sessions.buffer_messages, oldest dropped first), market ticks are not (a resume recovers
 * them from the stream rings by seq, with the filter kept). ?resume=<token> by the same user
 * hands the record to the new socket, which gets the buffer and the missed ticks as a replay
 * paced by what the socket takes (qc_hub_refill). Suspended sessions are a FIFO by expiry (the
 * TTL is the same for all) plus a table by session id; their number (in total and per user)
 * and the bytes they buffer are bounded.
 *
 * Users with no session at all get their messages through the offline queue (hub_offline.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <utlist.h>

#include "hub_priv.h"

#define REPLAY_ON       QC_REPLAY_ON
#define REPLAY_BUILDING QC_REPLAY_BUILDING

static void fifo_unlink(struct qc_hub *h, struct qc_conn *c)
{
	DL_DELETE2(h->susp_head, c, susp_prev, susp_next);
	c->susp_prev = c->susp_next = NULL;
}

void qc_hub_unsuspend(struct qc_hub *h, struct qc_conn *c)
{
	fifo_unlink(h, c);
	HASH_DELETE(hh_session, h->by_session, c);
	h->nsuspended--;
	h->buffered_bytes -= c->outq.bytes + qc_hub_sio_bytes(c);
	c->suspended = 0;
}

static void expire_one(struct qc_hub *h, struct qc_conn *c)
{
	qc_hub_unsuspend(h, c);
	h->st.expired++;
	qc_hub_destroy(h, c);
}

/* Drop the oldest buffered message of @c; false when there is none. */
static bool drop_oldest(struct qc_hub *h, struct qc_conn *c)
{
	struct qc_msg *m = qc_outq_peek(&c->outq);

	if (!m)
		return false;
	if (c->suspended)
		h->buffered_bytes -= m->len;
	qc_outq_pop(&c->outq);
	c->dropped = 1;
	h->st.buffer_dropped++;
	return true;
}

/*
 * Keep @m for a session that cannot be written to: suspended, or closing towards suspension
 * (its bytes count in the global bound once it is suspended).
 */
int qc_hub_buffer(struct qc_hub *h, struct qc_conn *c, struct qc_msg *m)
{
	const struct qc_config *cfg = h->cfg;

	if (c->sio) { /* Socket.IO with recovery: its events are kept in its history */
		if (m->offset)
			qc_hub_sio_keep(h, c, m);
		return 0;
	}
	/* ticks are recovered from the rings on resume; responses have no one to answer */
	if (m->kind != QC_MSG_ROOM)
		return 0;
	if (!cfg->sessions.buffer_messages) {
		c->dropped = 1;
		h->st.buffer_dropped++;
		return 0;
	}
	if (qc_outq_push(&c->outq, m))
		return -ENOMEM;
	if (c->suspended)
		h->buffered_bytes += m->len;
	while (c->outq.count > cfg->sessions.buffer_messages && drop_oldest(h, c))
		;
	while (c->suspended && h->buffered_bytes > cfg->sessions.max_buffered_bytes &&
	       drop_oldest(h, c))
		qc_hub_refused(h, QC_LIM_SESSION_BYTES);
	return 0;
}

/* The seq each subscription has really been sent up to: ticks still in @q never left. */
static void rewind_streams(struct qc_conn *c, const struct qc_outq *q)
{
	struct qc_sub *sub, *tmp;

	for (uint32_t i = 0; i < q->count; i++) {
		struct qc_msg *m = q->slot[(q->head + i) & (q->cap - 1)];

		if (m->kind != QC_MSG_TICK)
			continue;
		HASH_ITER (hh, c->streams.by_stream, sub, tmp) {
			if (qc_stream_id(sub->stream) == m->stream_id && m->seq &&
			    m->seq - 1 < sub->last_seq)
				sub->last_seq = m->seq - 1;
		}
	}
}

/* Move the room messages of @from to the end of @to, dropping the rest. */
static void keep_room(struct qc_conn *c, struct qc_outq *to, struct qc_outq *from)
{
	struct qc_msg *m;

	while ((m = qc_outq_peek(from))) {
		if (m->kind == QC_MSG_ROOM && qc_outq_push(to, m))
			c->dropped = 1;
		qc_outq_pop(from);
	}
	qc_outq_clear(from);
}

/* Once the resumed session's event has left the queue, the token used to resume is spent. */
static void session_event_check(struct qc_conn *c)
{
	if (c->session_msg && qc_outq_peek(&c->outq) != c->session_msg) {
		qc_msg_unref(&c->session_msg);
		c->prev_valid = 0;
	}
}

void qc_hub_keep_for_resume(struct qc_conn *c)
{
	struct qc_outq keep = {0};

	if (c->sio) {
		qc_hub_sio_drop_queues(c); /* what matters is in its history */
		return;
	}
	session_event_check(c);

	rewind_streams(c, &c->outq);
	rewind_streams(c, &c->replay);
	/* what was queued and not sent, then what the replay had not queued yet, in order */
	keep_room(c, &keep, &c->outq);
	keep_room(c, &keep, &c->replay);
	c->outq = keep;
	c->replaying = 0;
	c->replay_old = 0;
	c->replay_live = 0;
	qc_msg_unref(&c->session_msg);
}

int qc_hub_replay_push(struct qc_hub *h, struct qc_conn *c, struct qc_msg *m)
{
	bool was_empty = qc_outq_empty(&c->outq);

	/*
	 * Only what arrives after the resume counts against the bound (the replay was bounded
	 * when it was buffered, and what the resume queues itself by the rings); answers are
	 * counted until the replay ends, though they go ahead of it.
	 */
	if (c->replaying == REPLAY_ON &&
	    c->replay_live + m->len > h->cfg->limits.max_send_queue_bytes)
		return qc_hub_slow_consumer(h, c, m);
	if (qc_outq_push(m->kind == QC_MSG_CONTROL ? &c->outq : &c->replay, m)) {
		qc_hub_close(h, c, 1011, QC_CLOSE_NOW);
		return -EPIPE;
	}
	c->replay_live += m->len;
	c->msgs_out++;
	h->st.msgs_out++;
	if (was_empty && (!qc_outq_empty(&c->outq) || qc_hub_refill(h, c)))
		h->t.want_write(h->t.ctx, c);
	return 0;
}

bool qc_hub_refill(struct qc_hub *h, struct qc_conn *c)
{
	bool moved = false;
	struct qc_msg *m;

	session_event_check(c);
	if (!c->replaying || c->closing == QC_CLOSE_NOW)
		return false;
	while ((m = qc_outq_peek(&c->replay)) && c->outq.bytes < QC_REPLAY_CHUNK) {
		if (qc_outq_push(&c->outq, m))
			break; /* ENOMEM: the next write tries again */
		if (c->replay_old)
			c->replay_old--;
		else
			c->replay_live -= m->len;
		qc_outq_pop(&c->replay);
		moved = true;
	}
	if (qc_outq_empty(&c->replay)) {
		/* the replay is over: from now on everything goes straight to the queue */
		qc_outq_clear(&c->replay);
		c->replaying = 0;
		c->replay_old = 0;
		c->replay_live = 0;
	}
	return moved;
}

/* The oldest suspended session of @c's user other than @c, and how many the user has. */
static struct qc_conn *oldest_of_user(struct qc_conn *c, uint32_t *n)
{
	struct qc_conn *oldest = NULL;

	*n = 0;
	for (struct qc_conn *o = c->user ? c->user->conns : NULL; o; o = o->user_next) {
		if (!o->suspended || o == c)
			continue;
		(*n)++;
		if (!oldest || o->expires_ms < oldest->expires_ms)
			oldest = o;
	}
	return oldest;
}

int qc_hub_suspend(struct qc_hub *h, struct qc_conn *c)
{
	const struct qc_config *cfg = h->cfg;
	struct qc_conn *old;
	uint32_t mine;

	if (!cfg->sessions.max_per_user || !cfg->sessions.max_suspended) {
		qc_hub_refused(h, cfg->sessions.max_per_user ? QC_LIM_SUSPENDED
		                                             : QC_LIM_SESSIONS_PER_USER);
		return -ENOSPC;
	}
	/* the user's oldest makes room, then the oldest of all */
	old = oldest_of_user(c, &mine);
	if (mine >= cfg->sessions.max_per_user) {
		qc_hub_refused(h, QC_LIM_SESSIONS_PER_USER);
		expire_one(h, old);
	}
	if (h->nsuspended >= cfg->sessions.max_suspended) {
		qc_hub_refused(h, QC_LIM_SUSPENDED);
		expire_one(h, h->susp_head);
	}
	/*
	 * Events written to the socket that just died may never have been read (bytes the kernel
	 * took die with it): without the client's positions (SPEC 2.9) the server cannot know,
	 * so a resume of this session does not claim recovered:true.
	 */
	if (c->outq.events_out)
		c->dropped = 1;
	c->outq.events_out = 0;
	qc_hub_keep_for_resume(c);
	c->closing = 0;
	c->close_code = 0;
	c->close_sent = 0;
	c->suspended = 1;
	c->expires_ms = qc_now_ms() + (int64_t)cfg->sessions.ttl_s * 1000;
	DL_APPEND2(h->susp_head, c, susp_prev, susp_next);
	HASH_ADD(hh_session, h->by_session, session_id, QC_SESSION_ID_LEN, c);
	h->nsuspended++;
	h->buffered_bytes += c->outq.bytes;
	while (c->outq.count > cfg->sessions.buffer_messages && drop_oldest(h, c))
		;
	while (h->buffered_bytes > cfg->sessions.max_buffered_bytes && drop_oldest(h, c))
		qc_hub_refused(h, QC_LIM_SESSION_BYTES);
	if (c->sio)
		qc_hub_sio_suspended(h, c);
	return 0;
}

/*
 * Engine.IO heartbeat: a ping every socketio.ping_interval_ms; a client that has not answered
 * within socketio.ping_timeout_ms is gone (1000 after what is queued; its session is kept).
 */
static void sio_heartbeat(struct qc_hub *h, struct qc_conn *c, int64_t now)
{
	struct qc_msg *m;

	if (c->sio_ping_ms) {
		if (now - c->sio_ping_ms > h->cfg->socketio.ping_timeout_ms)
			qc_hub_close(h, c, 1000, QC_CLOSE_NOW);
		return;
	}
	if (now < c->sio_next_ping_ms)
		return;
	m = qc_msg_new_text("2", 1);
	if (!m)
		return;
	qc_hub_send(h, c, m);
	qc_msg_unref(&m);
	c->sio_ping_ms = now;
	c->sio_next_ping_ms = now + h->cfg->socketio.ping_interval_ms;
}

void qc_hub_expire(struct qc_hub *h)
{
	int64_t now = qc_now_ms();
	struct qc_conn *c, *tmp;

	if (h->backlog)
		qc_hub_store_flush(h);
	while (h->susp_head && h->susp_head->expires_ms <= now)
		expire_one(h, h->susp_head);
	qc_hub_streams_sweep(h);
	HASH_ITER (hh, h->conns.by_id, c, tmp) {
		if (c->suspended || c->closing)
			continue;
		/* a connection does not outlive its token: 4001, and no resume */
		if (c->token_exp_ms && c->token_exp_ms <= now) {
			c->no_resume = 1;
			qc_hub_close(h, c, 4001, QC_CLOSE_NOW);
			continue;
		}
		if (c->enc == QC_ENC_SIO)
			sio_heartbeat(h, c, now);
	}
}

struct qc_conn *qc_hub_resume(struct qc_hub *h, const char *token, const char *user_id,
                              uint32_t roles, void *transport)
{
	const char *secret = token + QC_SESSION_ID_LEN;
	struct qc_sub *sub, *stmp;
	struct qc_conn *c = NULL;
	struct qc_msg *m;
	bool recovered;
	uint32_t replayed;
	json_t *ev;

	if (strlen(token) != QC_SESSION_ID_LEN + QC_SECRET_LEN)
		return NULL;
	HASH_FIND(hh_session, h->by_session, token, QC_SESSION_ID_LEN, c);
	/* a session's buffered frames are in its own encoding: native sessions resume here */
	if (!c || strcmp(c->user_id, user_id) || c->expires_ms <= qc_now_ms() ||
	    c->enc != QC_ENC_NATIVE)
		return NULL;
	/* the current token, or the one the last resume used if its answer never left */
	if (CRYPTO_memcmp(c->secret, secret, QC_SECRET_LEN) &&
	    (!c->prev_valid || CRYPTO_memcmp(c->prev_secret, secret, QC_SECRET_LEN)))
		return NULL;
	if (qc_hub_nconns(h) >= h->cfg->limits.max_connections)
		return NULL;

	qc_hub_unsuspend(h, c);
	c->transport = transport;
	c->roles = roles;
	c->last_activity_ms = qc_now_ms();
	c->bad_messages = 0;
	c->rate_warned = 0;
	qc_rate_init(&c->rate, h->cfg->limits.rate_burst, c->last_activity_ms);
	/*
	 * A new secret: the token just used stops working once the session event carrying the
	 * new one has left (qc_hub_refill); should this connection fail before, it still resumes.
	 */
	memcpy(c->prev_secret, secret, QC_SECRET_LEN);
	c->prev_secret[QC_SECRET_LEN] = '\0';
	c->prev_valid = 1;
	qc_random_hex(c->secret, QC_SECRET_LEN / 2);

	recovered = !c->dropped;
	HASH_ITER (hh, c->streams.by_stream, sub, stmp)
		recovered = recovered && qc_hub_stream_recoverable(sub->stream, sub->last_seq);
	replayed = c->outq.count;

	/*
	 * The session event first, then the replay: the buffer in order, then each stream's
	 * missed ticks, then what arrives meanwhile. The replay is bounded already (the buffer by
	 * sessions.*, the ticks by the rings): it reaches the queue as the socket takes it, and is
	 * never held to max_send_queue_bytes.
	 */
	c->replay = c->outq;
	memset(&c->outq, 0, sizeof(c->outq));
	c->replaying = REPLAY_BUILDING;
	c->replay_live = 0;
	ev = qc_hub_session_event(h, c, true, recovered, replayed);
	m = ev ? qc_msg_new_json(ev) : NULL;
	json_decref(ev);
	if (!m || qc_outq_push(&c->outq, m)) {
		qc_msg_unref(&m);
		qc_hub_close(h, c, 1011, QC_CLOSE_NOW); /* suspended again, the old token valid */
		return c;
	}
	m->kind = QC_MSG_CONTROL;
	c->session_msg = m; /* the queue holds its own reference */
	HASH_ITER (hh, c->streams.by_stream, sub, stmp)
		qc_hub_stream_catch_up(h, c, sub, true, true, sub->last_seq);
	c->replay_old = c->replay.count;
	c->replay_live = 0;
	c->replaying = REPLAY_ON;
	qc_hub_refill(h, c);
	if (!qc_outq_empty(&c->outq))
		h->t.want_write(h->t.ctx, c);
	c->dropped = 0;
	h->st.resumed++;
	h->st.replayed += replayed;
	if (qc_hub_nconns(h) > h->st.peak)
		h->st.peak = qc_hub_nconns(h);
	return c;
}

void qc_hub_sessions_free(struct qc_hub *h)
{
	while (h->susp_head)
		expire_one(h, h->susp_head);
}
