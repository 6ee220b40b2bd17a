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

#include "hub_priv.h"

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
	h->st.started_ms = qc_now_ms();
	/* opened once at start-up; read (pread, procfs, no disk) only when stats are asked for */
	h->statm_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	return h;

fail_streams:
	qc_hub_streams_free(h);
fail_rooms:
	qc_rooms_free(h->rooms);
fail_free:
	free(h);
	return NULL;
}

void qc_hub_free(struct qc_hub *h)
{
	if (!h)
		return;
	qc_hub_sessions_free(h);
	qc_conns_free(&h->conns);
	qc_hub_streams_free(h);
	qc_hub_rooms_teardown(h);
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

int qc_hub_admit(struct qc_hub *h)
{
	if (h->shutting_down) {
		h->st.rejected_total++;
		return -ESHUTDOWN;
	}
	if (qc_hub_nconns(h) >= h->cfg->limits.max_connections) {
		h->st.rejected_total++;
		return -EBUSY;
	}
	return 0;
}

void qc_hub_reject(struct qc_hub *h)
{
	h->st.rejected_total++;
}

void qc_hub_close(struct qc_hub *h, struct qc_conn *c, uint16_t code, int how)
{
	if (c->closing) {
		/* a hard close may overtake a pending graceful one, never the reverse */
		if (how == QC_CLOSE_NOW && c->closing != QC_CLOSE_NOW) {
			c->closing = QC_CLOSE_NOW;
			c->close_code = code;
			h->t.close(h->t.ctx, c);
		}
		return;
	}
	c->closing = (uint8_t)how;
	c->close_code = code;
	h->t.close(h->t.ctx, c);
}

int qc_hub_send(struct qc_hub *h, struct qc_conn *c, struct qc_msg *m)
{
	bool was_empty = qc_outq_empty(&c->outq);

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
	if (c->outq.bytes + m->len > h->cfg->limits.max_send_queue_bytes) {
		h->st.slow_consumer_closes++;
		qc_hub_close(h, c, 4008, QC_CLOSE_NOW);
		if (h->cfg->sessions.ttl_s) {
			/* its queue becomes the session buffer: bounded like one from now on */
			qc_hub_keep_for_resume(c);
			qc_hub_buffer(h, c, m);
		}
		return -EPIPE;
	}
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

int qc_hub_send_json(struct qc_hub *h, struct qc_conn *c, json_t *j)
{
	struct qc_msg *m;
	int ret;

	if (!j)
		return -ENOMEM;
	m = qc_msg_new_json(j);
	json_decref(j);
	if (!m) {
		qc_hub_close(h, c, 1011, QC_CLOSE_NOW);
		return -ENOMEM;
	}
	ret = qc_hub_send(h, c, m);
	qc_msg_unref(&m);
	return ret;
}

static void reply_ok(struct qc_hub *h, struct qc_conn *c, const struct qc_cmd *cmd, json_t *data)
{
	qc_hub_send_json(h, c,
	                 qc_codec_response_ok(cmd->request_id, cmd->trace_id, data, qc_now_ms()));
}

/*
 * Answer an error: as a response when the frame carried a request_id, else as an "error"
 * message. Malformed frames count against the bad-message budget.
 */
static void reply_err(struct qc_hub *h, struct qc_conn *c, const struct qc_cmd *cmd, enum qc_err e,
                      const char *msg)
{
	json_t *j;

	if (cmd && cmd->request_id)
		j = qc_codec_response_err(cmd->request_id, cmd->trace_id, e, msg, qc_now_ms());
	else
		j = qc_codec_error(e, msg);
	qc_hub_send_json(h, c, j);
	if (e == QC_E_BAD_JSON || e == QC_E_BAD_REQUEST) {
		h->st.bad_messages++;
		if (++c->bad_messages >= h->cfg->limits.max_bad_messages)
			qc_hub_close(h, c, 1008, QC_CLOSE_AFTER_DRAIN);
	}
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

int qc_hub_open(struct qc_hub *h, struct qc_conn *c)
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
	qc_rate_init(&c->rate, h->cfg->limits.rate_burst, now);
	ret = qc_conns_add(&h->conns, c);
	if (ret)
		return ret;
	h->st.accepted_total++;
	if (qc_hub_nconns(h) > h->st.peak)
		h->st.peak = qc_hub_nconns(h);
	if (qc_hub_send_json(h, c, qc_hub_session_event(h, c, false, true, 0)) == -ENOMEM)
		return -ENOMEM;
	qc_hub_offline_deliver(h, c);
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
	free(c->rx);
	qc_conns_remove(&h->conns, c);
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
	if (h->cfg->sessions.ttl_s && !h->shutting_down && !c->no_resume && !qc_hub_suspend(h, c))
		return;
	qc_hub_destroy(h, c);
}

static void handle_room_cmd(struct qc_hub *h, struct qc_conn *c, const struct qc_cmd *cmd)
{
	const char *emsg = NULL;
	json_t *data = NULL;
	enum qc_err e;

	if (cmd->type == QC_CMD_SUBSCRIBE)
		e = qc_hub_subscribe(h, c, cmd->room, cmd->password, &data, &emsg);
	else
		e = qc_hub_unsubscribe(h, c, cmd->room, &data, &emsg);
	if (e == QC_OK)
		reply_ok(h, c, cmd, data);
	else
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
    {"subscribe_market_stream", qc_act_subscribe_stream, qc_after_subscribe_stream},
    {"unsubscribe_market_stream", qc_act_unsubscribe_stream, NULL},
    {"update_stream_filter", qc_act_update_filter, NULL},
    {"get_buffered_data", qc_act_get_buffered, NULL},
    {"get_market_data", qc_act_get_market_data, NULL},
    {"publish_market_data", qc_act_publish, NULL},
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
			if (actions[i].after)
				actions[i].after(h, c, cmd->payload);
		} else
			reply_err(h, c, cmd, e, emsg);
		return;
	}
	reply_err(h, c, cmd, QC_E_UNKNOWN_ACTION, "unknown action");
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
		e = QC_E_BAD_REQUEST;
		emsg = "binary frames are not accepted";
	} else {
		e = qc_codec_parse(buf, len, &cmd, &emsg);
	}

	if (!qc_rate_take(&c->rate, h->cfg->limits.rate_per_s, h->cfg->limits.rate_burst, now)) {
		h->st.rate_limited++;
		reply_err(h, c, &cmd, QC_E_RATE_LIMITED, "rate limit exceeded: slow down");
		if (++c->rate_warned >= h->cfg->limits.rate_burst)
			qc_hub_close(h, c, 4029, QC_CLOSE_AFTER_DRAIN);
		goto out;
	}
	c->rate_warned = 0;

	if (e != QC_OK) {
		reply_err(h, c, &cmd, e, emsg);
		goto out;
	}
	switch (cmd.type) {
	case QC_CMD_PING:
		qc_hub_send_json(h, c,
		                 qc_codec_pong(cmd.timestamp, cmd.request_id, cmd.trace_id, now));
		break;
	case QC_CMD_SUBSCRIBE:
	case QC_CMD_UNSUBSCRIBE:
		handle_room_cmd(h, c, &cmd);
		break;
	case QC_CMD_REQUEST:
		handle_request(h, c, &cmd);
		break;
	}
out:
	qc_cmd_release(&cmd);
}

bool qc_hub_ready(struct qc_hub *h, const char **reason)
{
	if (h->shutting_down) {
		*reason = "shutting down";
		return false;
	}
	return true;
}

uint32_t qc_hub_shutdown(struct qc_hub *h)
{
	struct qc_conn *c, *tmp;

	h->shutting_down = true;
	HASH_ITER (hh, h->conns.by_id, c, tmp)
		if (!c->suspended)
			qc_hub_close(h, c, 1001, QC_CLOSE_AFTER_DRAIN);
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

json_t *qc_hub_stats(struct qc_hub *h)
{
	uint32_t active = 0, users_in_rooms = 0;
	uint64_t members = 0;
	struct qc_user *u, *utmp;
	struct qc_conn *c;

	/* cold path: walk users once for the figures the hot path does not keep */
	HASH_ITER (hh, h->conns.users, u, utmp) {
		for (c = u->conns; c; c = c->user_next)
			if (c->rooms.count) {
				users_in_rooms++;
				break;
			}
	}
	qc_hub_room_counts(h, &active, &members);

	return json_pack(
	    "{s:{s:s, s:I, s:s, s:I}, s:I, s:I, s:I,"
	    " s:{s:I, s:I, s:I, s:I},"
	    " s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I},"
	    " s:o,"
	    " s:{s:I, s:I, s:I, s:I, s:I},"
	    " s:{s:I, s:I, s:I, s:I},"
	    " s:{s:b, s:b, s:i, s:i}}",
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
	    "offline", "users", (json_int_t)qc_hub_offline_users(h), "queued",
	    (json_int_t)h->offline_queued, "delivered", (json_int_t)h->st.offline_delivered,
	    "evicted", (json_int_t)h->st.offline_evicted, "store", "configured", 0, "connected", 0,
	    "pending", 0, "failed", 0);
}
