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
#include <openssl/evp.h>

#include <utlist.h>

#include "hub_priv.h"

#define REPLAY_ON       QC_REPLAY_ON
#define REPLAY_BUILDING QC_REPLAY_BUILDING

static void rewind_logs(struct qc_conn *c, const struct qc_outq *q);
static bool in_read_logs(struct qc_conn *c, const struct qc_msg *m);

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
	qc_hub_session_note(h, c, QC_SESSION_LIVE);
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
	c->lost++;
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
		c->lost++;
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
		/* a merged tick stands for the @covers seqs before its own too */
		uint64_t before = m->seq > m->covers ? m->seq - m->covers - 1 : 0;

		HASH_ITER (hh, c->streams.by_stream, sub, tmp) {
			if (qc_stream_id(sub->stream) == m->stream_id && m->seq &&
			    before < sub->last_seq)
				sub->last_seq = before;
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
	/* while a replay is being built, its answer is not queued yet: nothing may overtake it */
	if (!c->replaying || c->replaying == REPLAY_BUILDING || c->closing == QC_CLOSE_NOW)
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

bool qc_hub_replay_begin(struct qc_hub *h, struct qc_conn *c)
{
	(void)h;
	if (c->replaying || c->suspended || c->closing)
		return false;
	c->replaying = REPLAY_BUILDING;
	c->replay_live = 0;
	return true;
}

void qc_hub_replay_end(struct qc_hub *h, struct qc_conn *c, bool began)
{
	if (!began || c->replaying != REPLAY_BUILDING)
		return;
	/* all of it was bounded by its logs: none of it counts against the send queue bound */
	c->replay_old = c->replay.count;
	c->replay_live = 0;
	c->replaying = REPLAY_ON;
	qc_hub_refill(h, c);
	if (!qc_outq_empty(&c->outq))
		h->t.want_write(h->t.ctx, c);
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
	qc_hub_streams_suspended(h, c);
	/*
	 * Positions, not copies (SPEC 2.9): each log's position is what left for the socket, and
	 * the buffer keeps only what no log of the session can give back.
	 */
	if (!c->sio) {
		struct qc_outq keep = {0};
		struct qc_msg *m;

		rewind_logs(c, &c->outq);
		while ((m = qc_outq_peek(&c->outq))) {
			if (!in_read_logs(c, m) && qc_outq_push(&keep, m))
				c->dropped = 1;
			qc_outq_pop(&c->outq);
		}
		qc_outq_clear(&c->outq);
		c->outq = keep;
	}
	c->closing = 0;
	c->close_code = 0;
	c->close_sent = 0;
	c->resuming = 0; /* a resume that waited for Redis is given up: this is the fresh session */
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
	qc_hub_session_note(h, c, QC_SESSION_SUSPENDED);
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

static json_t *read_all(struct qc_hub *h, struct qc_conn *c, json_t *positions, bool *all,
                        uint32_t *msgs);

/*
 * The suspended session that @token names for @user, or NULL: native sessions only (their
 * buffered frames are in their own encoding), and the current token or the one the last resume
 * used if its answer never left.
 */
static struct qc_conn *session_lookup(struct qc_hub *h, const char *token, const char *user)
{
	const char *secret = token + QC_SESSION_ID_LEN;
	struct qc_conn *c = NULL;

	if (strlen(token) != QC_SESSION_ID_LEN + QC_SECRET_LEN)
		return NULL;
	HASH_FIND(hh_session, h->by_session, token, QC_SESSION_ID_LEN, c);
	if (!c || strcmp(c->user_id, user) || c->expires_ms <= qc_now_ms() ||
	    c->enc != QC_ENC_NATIVE)
		return NULL;
	if (CRYPTO_memcmp(c->secret, secret, QC_SECRET_LEN) &&
	    (!c->prev_valid || CRYPTO_memcmp(c->prev_secret, secret, QC_SECRET_LEN)))
		return NULL;
	return c;
}

struct qc_conn *qc_hub_resume(struct qc_hub *h, const char *token, const char *user_id,
                              uint32_t roles, void *transport)
{
	const char *secret = token + QC_SESSION_ID_LEN;
	struct qc_conn *c = session_lookup(h, token, user_id);
	struct qc_msg *m;
	bool recovered;
	uint32_t replayed;
	json_t *ev;

	if (!c || qc_hub_nconns(h) >= h->cfg->limits.max_connections)
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

	/*
	 * The session event first, then the replay: what the buffer holds that no log gives back,
	 * then each log from the server's record of what left for the socket (rooms, the inbox,
	 * streams), then what arrives meanwhile. The replay is bounded already (by the logs): it
	 * reaches the queue as the socket takes it, and is never held to max_send_queue_bytes.
	 */
	json_decref(read_all(h, c, NULL, &recovered, &replayed));
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

/* ---- resume with positions (SPEC 2.9) ---------------------------------------------------- */

/* A position {"seq":N,"epoch":"..."} of @positions[@kind][@name] (@name NULL: the inbox). */
struct position {
	bool given;
	uint64_t seq;
	const char *epoch;
};

static enum qc_err read_position(json_t *p, struct position *pos, const char **emsg)
{
	json_t *js, *je;

	memset(pos, 0, sizeof(*pos));
	if (!p || json_is_null(p))
		return QC_OK;
	js = json_object_get(p, "seq");
	je = json_object_get(p, "epoch");
	if (!json_is_object(p) || !json_is_integer(js) || json_integer_value(js) < 0 ||
	    (je && !json_is_null(je) && !json_is_string(je))) {
		*emsg = "a position must be {\"seq\": a non-negative integer, \"epoch\": a string}";
		return QC_E_BAD_REQUEST;
	}
	pos->given = true;
	pos->seq = (uint64_t)json_integer_value(js);
	pos->epoch = json_string_value(je);
	return QC_OK;
}

static enum qc_err check_positions(json_t *positions, const char **emsg)
{
	static const char *const kinds[] = {"streams", "rooms"};
	struct position pos;
	const char *k;
	json_t *v;

	if (!positions || json_is_null(positions))
		return QC_OK;
	if (!json_is_object(positions)) {
		*emsg = "\"positions\" must be an object";
		return QC_E_BAD_REQUEST;
	}
	for (size_t i = 0; i < 2; i++) {
		json_t *o = json_object_get(positions, kinds[i]);

		if (o && !json_is_null(o) && !json_is_object(o)) {
			*emsg = "\"positions.streams\" and \"positions.rooms\" must be objects";
			return QC_E_BAD_REQUEST;
		}
		json_object_foreach (o, k, v)
			if (read_position(v, &pos, emsg) != QC_OK)
				return QC_E_BAD_REQUEST;
	}
	return read_position(json_object_get(positions, "inbox"), &pos, emsg);
}

/*
 * What the server knows was handed to the socket for each log: the last seq queued, less what
 * still waits in @q (never written).
 */
static void rewind_logs(struct qc_conn *c, const struct qc_outq *q)
{
	struct qc_log *inbox = c->user ? c->user->inbox : NULL;

	for (uint32_t i = 0; i < q->count; i++) {
		struct qc_msg *m = q->slot[(q->head + i) & (q->cap - 1)];
		struct qc_membership *mb, *tmp;

		if (m->kind != QC_MSG_ROOM || !m->stream_id || !m->seq)
			continue;
		if (inbox && m->stream_id == inbox->id) {
			if (m->seq - 1 < c->inbox_seq)
				c->inbox_seq = m->seq - 1;
			continue;
		}
		HASH_ITER (hh, c->rooms.by_room, mb, tmp) {
			struct qc_log *l = qc_room_log(mb->room);

			if (l && l->id == m->stream_id && m->seq - 1 < mb->seq)
				mb->seq = m->seq - 1;
		}
	}
}

/* Whether buffered frame @m is an entry of a log the resume reads back (so it goes). */
static bool in_read_logs(struct qc_conn *c, const struct qc_msg *m)
{
	struct qc_membership *mb, *tmp;

	if (m->kind != QC_MSG_ROOM || !m->stream_id)
		return false;
	if (c->user && c->user->inbox && c->user->inbox->id == m->stream_id)
		return true;
	HASH_ITER (hh, c->rooms.by_room, mb, tmp) {
		struct qc_log *l = qc_room_log(mb->room);

		if (l && l->id == m->stream_id)
			return true;
	}
	return false;
}

/*
 * Read one log back for @c after @pos (or the server's record @mine when the client gave none):
 * its entries addressed to @c (@room NULL: the inbox, all of them) go to the replay. Returns
 * the log's part of the answer.
 */
static json_t *read_back(struct qc_hub *h, struct qc_conn *c, struct qc_log *l,
                         struct qc_room *room, const struct position *pos, uint64_t *mine,
                         bool *all)
{
	uint64_t since = pos->given ? pos->seq : *mine;
	const char *epoch = pos->given ? pos->epoch : l->epoch;
	bool rec = qc_log_reaches(l, epoch ? epoch : "", since);
	uint32_t n = 0;
	struct qc_lentry *e;

	/* the server's own record cannot know what a dead socket's reader got */
	if (!pos->given && c->dropped)
		rec = false;
	/* a foreign epoch: nothing of this life can be placed after it, live only */
	if (epoch && !strcmp(epoch, l->epoch) && since <= l->last_seq) {
		for (uint32_t i = 0; (e = qc_log_after(l, since, i)); i++) {
			if (room && !qc_hub_room_addressed(room, e, c))
				continue;
			qc_hub_send_frames(h, c, &e->f);
			n++;
		}
	}
	*mine = l->last_seq;
	*all = *all && rec;
	h->log_replayed[l->kind] += n;
	return json_pack("{s:b, s:I, s:s, s:I}", "recovered", rec, "seq", (json_int_t)l->last_seq,
	                 "epoch", l->epoch, "replayed", (json_int_t)n);
}

/* A stream's part of a resume: its ticks after the position, or a snapshot. */
static json_t *stream_back(struct qc_hub *h, struct qc_conn *c, struct qc_sub *sub,
                           const struct position *pos, bool *all)
{
	char epoch[QC_EPOCH_LEN + 1];
	uint32_t before = c->replay.count;
	bool rec;

	qc_hub_stream_epoch(h, sub->stream, epoch);
	if (pos->given && (!pos->epoch || !strcmp(pos->epoch, epoch))) {
		rec = qc_hub_stream_catch_up(h, c, sub, true, true, pos->seq);
	} else if (pos->given) {
		/* another life of the stream: a snapshot of this one */
		qc_hub_stream_catch_up(h, c, sub, true, false, 0);
		rec = false;
	} else {
		rec = qc_hub_stream_catch_up(h, c, sub, true, true, sub->last_seq) && !c->dropped;
	}
	*all = *all && rec;
	return json_pack("{s:b, s:I, s:s, s:I}", "recovered", rec, "seq",
	                 (json_int_t)qc_stream_last_seq(sub->stream), "epoch", epoch, "replayed",
	                 (json_int_t)(c->replay.count - before));
}

/* @s takes over @fresh's socket; @fresh goes without a trace. */
static void take_over(struct qc_hub *h, struct qc_conn *fresh, struct qc_conn *s)
{
	qc_hub_unsuspend(h, s);
	s->transport = fresh->transport;
	s->roles = fresh->roles;
	s->batch = fresh->batch;
	s->token_exp_ms = fresh->token_exp_ms;
	s->last_activity_ms = qc_now_ms();
	s->bad_messages = 0;
	s->rate_warned = 0;
	s->rate = fresh->rate;
	s->requested = 1;
	if (h->t.rebind)
		h->t.rebind(h->t.ctx, fresh, s);
	fresh->transport = NULL;
	qc_hub_destroy(h, fresh);
}

/*
 * The replay of a resumed session @c, built in c->replay (REPLAY_BUILDING: nothing leaves until
 * the caller has queued the answer): what its buffer holds that no log gives back, then each
 * log after the client's position (@positions, or the server's record where it gives none):
 * rooms, the inbox, streams. Returns the per-log report {rooms, streams, inbox}; *@all is
 * false when any log did not reach back; *@msgs counts what is not a tick.
 */
static json_t *read_all(struct qc_hub *h, struct qc_conn *c, json_t *positions, bool *all,
                        uint32_t *msgs)
{
	struct qc_membership *mb, *mtmp;
	struct qc_sub *sub, *stmp;
	struct qc_outq keep = {0};
	struct position pos;
	const char *emsg;
	json_t *data, *rooms, *streams;
	struct qc_msg *m;
	uint32_t kept;

	*all = true;
	rewind_logs(c, &c->outq);
	while ((m = qc_outq_peek(&c->outq))) {
		if (!in_read_logs(c, m) && qc_outq_push(&keep, m))
			c->dropped = 1;
		qc_outq_pop(&c->outq);
	}
	qc_outq_clear(&c->outq);
	kept = keep.count;
	c->replay = keep;
	c->replaying = REPLAY_BUILDING;
	c->replay_live = 0;

	data = json_pack("{s:o, s:o}", "rooms", json_object(), "streams", json_object());
	rooms = json_object_get(data, "rooms");
	streams = json_object_get(data, "streams");
	HASH_ITER (hh, c->rooms.by_room, mb, mtmp) {
		struct qc_log *l = qc_hub_room_log_of(h, mb->room);
		const char *name = qc_room_name(mb->room);

		if (!l)
			continue;
		read_position(json_object_get(json_object_get(positions, "rooms"), name), &pos,
		              &emsg);
		json_object_set_new(rooms, name, read_back(h, c, l, mb->room, &pos, &mb->seq, all));
	}
	if (c->user && qc_hub_inbox(h, c->user)) {
		read_position(json_object_get(positions, "inbox"), &pos, &emsg);
		json_object_set_new(
		    data, "inbox", read_back(h, c, c->user->inbox, NULL, &pos, &c->inbox_seq, all));
	}
	*msgs = c->replay.count;
	HASH_ITER (hh, c->streams.by_stream, sub, stmp) {
		read_position(json_object_get(json_object_get(positions, "streams"),
		                              qc_stream_symbol(sub->stream)),
		              &pos, &emsg);
		json_object_set_new(streams, qc_stream_symbol(sub->stream),
		                    stream_back(h, c, sub, &pos, all));
	}
	if (c->dropped && kept)
		*all = false;
	return data;
}

/*
 * @c (the resumed session, on its socket) with the client's @positions: a new secret (the
 * token's, @secret, works until the answer has left), the replay built, the answer queued
 * ahead of it.
 */
static void resume_answer(struct qc_hub *h, struct qc_conn *c, const char *secret,
                          json_t *positions, const char *request_id, const char *trace_id,
                          bool event)
{
	char tok[QC_SESSION_ID_LEN + QC_SECRET_LEN + 1];
	uint32_t msgs = 0;
	bool all = true;
	struct qc_msg *m;
	json_t *data;

	memcpy(c->prev_secret, secret, QC_SECRET_LEN);
	c->prev_secret[QC_SECRET_LEN] = '\0';
	c->prev_valid = 1;
	qc_random_hex(c->secret, QC_SECRET_LEN / 2);
	data = read_all(h, c, positions, &all, &msgs);
	snprintf(tok, sizeof(tok), "%s%s", c->session_id, c->secret);
	json_object_set_new(data, "session_id", json_string(c->session_id));
	json_object_set_new(data, "user_id", json_string(c->user_id));
	json_object_set_new(data, "resumed", json_true());
	json_object_set_new(data, "resume_token", json_string(tok));
	json_object_set_new(data, "recovered", json_boolean(all));
	json_object_set_new(data, "replayed", json_integer(msgs));
	/*
	 * the answer first (or for ?resume= the session event): it carries the new token, and
	 * the old one works until it has left
	 */
	if (event) {
		json_decref(data);
		data = qc_hub_session_event(h, c, true, all, msgs);
	} else {
		data = qc_codec_response_ok(request_id, trace_id, data, qc_now_ms());
	}
	m = data ? qc_msg_new_json(data) : NULL;
	json_decref(data);
	if (!m || qc_outq_push(&c->outq, m)) {
		qc_msg_unref(&m);
		qc_hub_close(h, c, 1011, QC_CLOSE_NOW);
		return;
	}
	m->kind = QC_MSG_CONTROL;
	qc_msg_unref(&c->session_msg);
	c->session_msg = m;
	c->replay_old = c->replay.count;
	c->replay_live = 0;
	c->replaying = REPLAY_ON;
	h->st.resumed++;
	h->st.replayed += msgs;
	if (!event)
		h->resumed_positions++;
	c->dropped = 0;
	c->outq.events_out = 0;
	qc_hub_refill(h, c);
	h->t.want_write(h->t.ctx, c);
}

/* ---- resume on another node (cluster mode, SPEC 2.10) ------------------------------------ */

/* The SHA-256 of @secret in hex (a session record's verifier: Redis never holds a secret). */
static void verifier(const char *secret, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (!EVP_Digest(secret, strlen(secret), md, &n, EVP_sha256(), NULL) || n != 32) {
		out[0] = '\0';
		return;
	}
	for (unsigned int i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

json_t *qc_hub_session_record(struct qc_hub *h, uint64_t conn_id)
{
	struct qc_conn *c = qc_conns_find(&h->conns, conn_id);
	struct qc_membership *mb, *mtmp;
	struct qc_sub *sub, *stmp;
	json_t *rooms, *streams, *f;
	char v[65], pv[65];

	/* native sessions only: a Socket.IO one recovers through its own pid */
	if (!c || c->enc != QC_ENC_NATIVE || c->no_resume)
		return NULL;
	rooms = json_array();
	streams = json_object();
	HASH_ITER (hh, c->rooms.by_room, mb, mtmp)
		json_array_append_new(rooms, json_string(qc_room_name(mb->room)));
	HASH_ITER (hh, c->streams.by_stream, sub, stmp) {
		f = json_array();
		for (size_t i = 0; i < qc_group_nfields(sub->group); i++)
			json_array_append_new(f, json_string(qc_group_fields(sub->group)[i]));
		json_object_set_new(
		    streams, qc_stream_symbol(sub->stream),
		    json_pack("{s:o, s:f}", "fields", f, "max_hz", qc_hub_sub_max_hz(sub)));
	}
	verifier(c->secret, v);
	if (c->prev_valid)
		verifier(c->prev_secret, pv);
	return json_pack("{s:s, s:s, s:s?, s:o, s:o}", "user", c->user_id, "v", v, "pv",
	                 c->prev_valid ? pv : NULL, "rooms", rooms, "streams", streams);
}

/* A local connection (live or suspended) of session @sid, or NULL. */
static struct qc_conn *by_session_id(struct qc_hub *h, const char *sid)
{
	struct qc_conn *c, *tmp;

	HASH_FIND(hh_session, h->by_session, sid, QC_SESSION_ID_LEN, c);
	if (c)
		return c;
	HASH_ITER (hh, h->conns.by_id, c, tmp)
		if (!strcmp(c->session_id, sid))
			return c;
	return NULL;
}

void qc_hub_session_replaced(struct qc_hub *h, const char *sid)
{
	struct qc_conn *c = by_session_id(h, sid);

	if (!c)
		return;
	c->no_resume = 1; /* its record is another node's: nothing of it is written any more */
	if (c->suspended) {
		fifo_unlink(h, c);
		HASH_DELETE(hh_session, h->by_session, c);
		h->nsuspended--;
		h->buffered_bytes -= c->outq.bytes + qc_hub_sio_bytes(c);
		c->suspended = 0;
		qc_hub_destroy(h, c);
		return;
	}
	h->sessions_replaced++;
	qc_hub_close(h, c, 1000, QC_CLOSE_NOW);
}

/* A resume request waiting for the session's record in Redis. */
struct remote_resume {
	struct qc_hub *h;
	uint64_t conn_id;
	int64_t ack_id;
	char sid[QC_SESSION_ID_LEN + 1];
	char secret[QC_SECRET_LEN + 1];
	char *request_id;
	char *trace_id;
	json_t *positions; /* the client's (a copy), or NULL */
	bool inbox_given;
	uint64_t inbox_since;
	char inbox_epoch[QC_EPOCH_LEN + 1];
	bool upgrade; /* ?resume=: no request to answer; a fresh session when it fails */
	/* the record found, while its streams' logs are read here (remote_found) */
	json_t *rec, *entries;
	json_t *held; /* names of the rooms whose logs were read here (held until freed) */
	char found_epoch[QC_EPOCH_LEN + 1];
	uint64_t found_last;
	uint32_t loads;
	bool submitting;
};

static void remote_free(struct remote_resume *rr)
{
	json_t *v;
	size_t i;

	json_array_foreach (rr->held, i, v)
		qc_hub_room_unload(rr->h, json_string_value(v));
	json_decref(rr->held);
	free(rr->request_id);
	free(rr->trace_id);
	json_decref(rr->positions);
	json_decref(rr->rec);
	json_decref(rr->entries);
	free(rr);
}

/* Whether @secret is the current or the previous secret of record @rec. */
static bool record_admits(json_t *rec, const char *secret)
{
	const char *v = json_string_value(json_object_get(rec, "v"));
	const char *pv = json_string_value(json_object_get(rec, "pv"));
	char mine[65];

	verifier(secret, mine);
	if (!mine[0])
		return false;
	return (v && strlen(v) == 64 && !CRYPTO_memcmp(v, mine, 64)) ||
	       (pv && strlen(pv) == 64 && !CRYPTO_memcmp(pv, mine, 64));
}

/* @positions with every log of @c that the client gave no position for as another life's. */
static json_t *remote_positions(struct qc_conn *c, json_t *given)
{
	json_t *p = json_is_object(given) ? json_deep_copy(given) : json_object(), *k;
	struct qc_membership *mb, *mtmp;
	struct qc_sub *sub, *stmp;

	if (!p)
		return NULL;
	if (!json_is_object(json_object_get(p, "rooms")))
		json_object_set_new(p, "rooms", json_object());
	if (!json_is_object(json_object_get(p, "streams")))
		json_object_set_new(p, "streams", json_object());
	/* the server's record of what left for the socket died with the other node */
	k = json_object_get(p, "rooms");
	HASH_ITER (hh, c->rooms.by_room, mb, mtmp)
		if (!json_object_get(k, qc_room_name(mb->room)))
			json_object_set_new(k, qc_room_name(mb->room),
			                    json_pack("{s:i, s:s}", "seq", 0, "epoch", ""));
	k = json_object_get(p, "streams");
	HASH_ITER (hh, c->streams.by_stream, sub, stmp)
		if (!json_object_get(k, qc_stream_symbol(sub->stream)))
			json_object_set_new(k, qc_stream_symbol(sub->stream),
			                    json_pack("{s:i, s:s}", "seq", 0, "epoch", ""));
	if (!json_object_get(p, "inbox") || json_is_null(json_object_get(p, "inbox")))
		json_object_set_new(p, "inbox", json_pack("{s:i, s:s}", "seq", 0, "epoch", ""));
	return p;
}

/*
 * This node's copy of @c's inbox log made to reach back to the client's position, from what
 * Redis had after it (@entries, ending at @last of @epoch), before the replay reads it.
 */
static void remote_inbox(struct qc_hub *h, struct qc_conn *c, struct remote_resume *rr,
                         const char *epoch, uint64_t last, json_t *entries)
{
	struct qc_log *l = c->user ? qc_hub_inbox(h, c->user) : NULL;
	bool mine = rr->inbox_given && !strcmp(rr->inbox_epoch, epoch) && rr->inbox_since <= last;
	json_t *e;
	size_t i;

	if (!l || strlen(epoch) != QC_EPOCH_LEN)
		return;
	if (!l->based || strcmp(l->epoch, epoch) ||
	    (mine && !qc_log_reaches(l, epoch, rr->inbox_since) && c->user->nconns == 1)) {
		qc_log_reset(l, epoch, mine ? rr->inbox_since : last);
		l->based = 1;
	}
	json_array_foreach (entries, i, e)
		qc_hub_inbox_entry(
		    h, c->user_id, epoch, (uint64_t)json_integer_value(json_array_get(e, 0)),
		    json_string_value(json_array_get(e, 1)), json_array_get(e, 2), true);
}

/* The client's position in room @name (of @positions) as a subscribe's since_seq/epoch. */
static json_t *room_opts(json_t *positions, const char *name)
{
	json_t *p = json_object_get(json_object_get(positions, "rooms"), name);
	json_t *seq = json_object_get(p, "seq"), *epoch = json_object_get(p, "epoch");

	if (!json_is_integer(seq) || json_integer_value(seq) < 0)
		return NULL;
	return json_pack("{s:O, s:O?}", "since_seq", seq, "epoch",
	                 json_is_string(epoch) ? epoch : NULL);
}

static void remote_loaded(void *arg, int rc);
static void remote_rebuild(struct remote_resume *rr);
static void remote_refuse(struct remote_resume *rr, struct qc_conn *c, enum qc_err e,
                          const char *emsg);

static void remote_found(void *arg, int status, json_t *rec, const char *inbox_epoch,
                         uint64_t inbox_last, json_t *entries)
{
	struct remote_resume *rr = arg;
	struct qc_hub *h = rr->h;
	struct qc_conn *c = qc_conns_find(&h->conns, rr->conn_id);
	const char *emsg = NULL, *k;
	enum qc_err e = QC_E_NOT_FOUND;
	json_t *v;
	size_t i;

	if (!c || c->suspended || c->closing) {
		remote_free(rr);
		return;
	}
	if (status < 0) {
		e = QC_E_UNAVAILABLE;
		emsg = "Redis (cluster.redis) is unavailable: the session could not be looked up";
		goto fail;
	}
	if (status == 0 || !record_admits(rec, rr->secret) ||
	    strcmp(json_string_value(json_object_get(rec, "user")) ?: "", c->user_id) ||
	    by_session_id(h, rr->sid)) {
		emsg = "no suspended session for that token (unknown, expired, or another user's)";
		goto fail;
	}
	rr->rec = json_incref(rec);
	rr->entries = json_incref(entries);
	snprintf(rr->found_epoch, sizeof(rr->found_epoch), "%s", inbox_epoch ? inbox_epoch : "");
	rr->found_last = inbox_last;
	/*
	 * The streams' logs are read here first (cluster mode: this node may not hold them), so
	 * the replay from the client's positions is exact; then the session is rebuilt at once,
	 * with nothing sent to this connection in between (nothing is attached yet).
	 */
	rr->submitting = true;
	json_object_foreach (json_object_get(rec, "streams"), k, v)
		if (h->broker.load && !h->broker.load(h->broker.ctx, k, remote_loaded, rr))
			rr->loads++;
	/* and the rooms' logs, back to the client's positions (none: their positions only) */
	rr->held = json_array();
	json_array_foreach (json_object_get(rec, "rooms"), i, v)
		if (json_is_string(v) && rr->held) {
			json_t *opts = room_opts(rr->positions, json_string_value(v));

			if (!qc_hub_room_load(h, json_string_value(v), opts, remote_loaded, rr)) {
				rr->loads++;
				json_array_append(rr->held, v);
			}
			json_decref(opts);
		}
	rr->submitting = false;
	if (!rr->loads)
		remote_rebuild(rr);
	return;
fail:
	remote_refuse(rr, c, e, emsg);
}

/* A stream's log read (or not: the replay says so) for a resume waiting in remote_found. */
static void remote_loaded(void *arg, int rc)
{
	struct remote_resume *rr = arg;

	(void)rc;
	if (!--rr->loads && !rr->submitting)
		remote_rebuild(rr);
}

static void remote_rebuild(struct remote_resume *rr)
{
	struct qc_hub *h = rr->h;
	struct qc_conn *c = qc_conns_find(&h->conns, rr->conn_id);
	char fresh[QC_SESSION_ID_LEN + 1];
	const char *emsg = NULL, *k;
	json_t *v, *positions, *rec = rr->rec;
	size_t i;

	if (!c || c->suspended || c->closing) {
		remote_free(rr);
		return;
	}
	if (by_session_id(h, rr->sid)) {
		/* resumed here by another connection while the logs were read */
		remote_refuse(rr, c, QC_E_NOT_FOUND,
		              "no suspended session for that token (unknown, expired, or another "
		              "user's)");
		return;
	}
	/* this connection is the resumed session now */
	memcpy(fresh, c->session_id, sizeof(fresh));
	memcpy(c->session_id, rr->sid, sizeof(c->session_id));
	/* rooms rejoined as a subscribe would (today's permissions), streams with their fields */
	json_array_foreach (json_object_get(rec, "rooms"), i, v) {
		json_t *d = NULL;

		if (json_is_string(v) &&
		    qc_hub_subscribe(h, c, json_string_value(v), NULL, NULL, &d, &emsg) != QC_OK)
			h->resume_rooms_lost++;
		json_decref(d);
	}
	json_object_foreach (json_object_get(rec, "streams"), k, v) {
		json_t *f = json_object_get(v, "fields");
		double hz = json_number_value(json_object_get(v, "max_hz"));
		const char *fields[QC_FIELDS_MAX];
		size_t n = 0;

		for (i = 0; i < json_array_size(f) && n < QC_FIELDS_MAX; i++)
			if (json_is_string(json_array_get(f, i)))
				fields[n++] = json_string_value(json_array_get(f, i));
		qc_hub_stream_attach_ex(h, c, k, fields, n, hz > 0 && hz <= QC_MAX_HZ ? hz : 0,
		                        false);
	}
	c->resuming = 0;
	remote_inbox(h, c, rr, rr->found_epoch, rr->found_last, rr->entries);
	/* its record is this node's (the node that had it is told), the fresh session goes */
	h->ibroker.session(h->ibroker.ctx, c->user_id, c->session_id, c->id, QC_SESSION_LIVE, true);
	h->ibroker.session(h->ibroker.ctx, c->user_id, fresh, c->id, QC_SESSION_GONE, false);
	positions = remote_positions(c, rr->positions);
	c->dropped = 0;
	h->resumed_remote++;
	resume_answer(h, c, rr->secret, positions, rr->request_id, rr->trace_id, rr->upgrade);
	json_decref(positions);
	remote_free(rr);
}

static void remote_refuse(struct remote_resume *rr, struct qc_conn *c, enum qc_err e,
                          const char *emsg)
{
	struct qc_hub *h = rr->h;

	c->resuming = 0;
	if (rr->upgrade) {
		/* as when ?resume= names no session here: a fresh one */
		struct qc_inbox_pos pos = {rr->inbox_since, rr->inbox_epoch};

		if (qc_hub_open_finish(h, c, rr->inbox_given ? &pos : NULL))
			qc_hub_close(h, c, 1011, QC_CLOSE_NOW);
	} else {
		h->resume_refused++;
		qc_hub_answer(h, c, rr->request_id, rr->trace_id, rr->ack_id, e, emsg, NULL);
	}
	remote_free(rr);
}

/* A token this node does not know: its session's record is looked up in Redis. */
static enum qc_err remote_resume(struct qc_hub *h, struct qc_conn *c, const struct qc_cmd *cmd,
                                 const char *token, json_t *positions)
{
	struct remote_resume *rr = calloc(1, sizeof(*rr));
	struct position pos;
	const char *emsg;
	int rc;

	if (!rr)
		return QC_E_INTERNAL;
	rr->h = h;
	rr->conn_id = c->id;
	rr->ack_id = cmd->ack_id;
	memcpy(rr->sid, token, QC_SESSION_ID_LEN);
	memcpy(rr->secret, token + QC_SESSION_ID_LEN, QC_SECRET_LEN);
	rr->request_id = cmd->request_id ? strdup(cmd->request_id) : NULL;
	rr->trace_id = cmd->trace_id ? strdup(cmd->trace_id) : NULL;
	rr->positions = positions ? json_deep_copy(positions) : NULL;
	read_position(json_object_get(positions, "inbox"), &pos, &emsg);
	if (pos.given && pos.epoch && strlen(pos.epoch) == QC_EPOCH_LEN) {
		rr->inbox_given = true;
		rr->inbox_since = pos.seq;
		memcpy(rr->inbox_epoch, pos.epoch, QC_EPOCH_LEN + 1);
	}
	rc = h->ibroker.lookup(h->ibroker.ctx, c->user_id, rr->sid,
	                       rr->inbox_given ? (int64_t)rr->inbox_since : -1, remote_found, rr);
	if (rc) {
		remote_free(rr);
		return QC_E_UNAVAILABLE;
	}
	c->requested = 1;
	c->resuming = 1;
	return QC_ASYNC;
}

int qc_hub_remote_upgrade(struct qc_hub *h, struct qc_conn *c, const char *token,
                          const struct qc_inbox_pos *inbox)
{
	struct remote_resume *rr = calloc(1, sizeof(*rr));

	if (!rr)
		return -1;
	rr->h = h;
	rr->conn_id = c->id;
	rr->upgrade = true;
	memcpy(rr->sid, token, QC_SESSION_ID_LEN);
	memcpy(rr->secret, token + QC_SESSION_ID_LEN, QC_SECRET_LEN);
	if (inbox && inbox->epoch && strlen(inbox->epoch) == QC_EPOCH_LEN) {
		rr->inbox_given = true;
		rr->inbox_since = inbox->seq;
		memcpy(rr->inbox_epoch, inbox->epoch, QC_EPOCH_LEN + 1);
		rr->positions = json_pack("{s:{s:I, s:s}}", "inbox", "seq", (json_int_t)inbox->seq,
		                          "epoch", inbox->epoch);
	}
	if (h->ibroker.lookup(h->ibroker.ctx, c->user_id, rr->sid,
	                      rr->inbox_given ? (int64_t)rr->inbox_since : -1, remote_found, rr)) {
		remote_free(rr);
		return -1;
	}
	c->resuming = 1;
	return 0;
}

void qc_hub_resume_request(struct qc_hub *h, struct qc_conn *c, const struct qc_cmd *cmd)
{
	const char *token = json_string_value(json_object_get(cmd->root, "token"));
	json_t *positions = json_object_get(cmd->root, "positions");
	const char *emsg = NULL;
	struct qc_conn *s;
	enum qc_err e;

	if (c->requested || c->enc != QC_ENC_NATIVE) {
		e = QC_E_BAD_REQUEST;
		emsg = c->requested ? "resume must be the first request on a connection"
		                    : "resume requests are for the native protocol";
		goto fail;
	}
	if (!token || !token[0]) {
		e = QC_E_BAD_REQUEST;
		emsg = "\"token\" must be a resume token";
		goto fail;
	}
	e = check_positions(positions, &emsg);
	if (e != QC_OK)
		goto fail;
	s = session_lookup(h, token, c->user_id);
	if (!s && h->ibroker.lookup && strlen(token) == QC_SESSION_ID_LEN + QC_SECRET_LEN) {
		e = remote_resume(h, c, cmd, token, positions);
		if (e == QC_ASYNC)
			return;
		emsg = "Redis (cluster.redis) is unavailable: the session could not be looked up";
		goto fail;
	}
	if (!s || s == c) {
		e = QC_E_NOT_FOUND;
		emsg = "no suspended session for that token (unknown, expired, or another user's)";
		goto fail;
	}
	take_over(h, c, s);
	resume_answer(h, s, token + QC_SESSION_ID_LEN, positions, cmd->request_id, cmd->trace_id,
	              false);
	return;
fail:
	h->resume_refused++;
	c->requested = 1;
	qc_hub_answer(h, c, cmd->request_id, cmd->trace_id, cmd->ack_id, e, emsg, NULL);
}
