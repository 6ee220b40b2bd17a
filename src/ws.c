/*
 * ws: the WebSocket transport. lws' per-session data points at the connection record, which
 * this file allocates when a connection is established (or takes over from a suspended session
 * named by ?resume=) and hands to the hub. It reassembles incoming messages within
 * limits.max_message_bytes, passes them to the hub, and drains each connection's outq: queued
 * frames already carry their WebSocket headers, so as many as fit are copied back to back and
 * leave in one LWS_WRITE_RAW write, once per loop pass (the flush list below) or, when lws
 * still holds part of an earlier write, from the WRITEABLE callback.
 *
 * On /socket.io/ it also runs the Engine.IO / Socket.IO handshake. The Engine.IO open packet
 * leaves at once; until the client's Socket.IO CONNECT (whose auth object names the user, or
 * carries the JWT) the connection record is this file's alone and not in the hub. The CONNECT
 * hands it to the hub, which from then on serves it like a native one, in Socket.IO encoding.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <utlist.h>

#include "quotecast/auth.h"
#include "quotecast/server.h"
#include "quotecast/sio.h"
#include "quotecast/utf8.h"

/* A Socket.IO client has this long after the upgrade to send its CONNECT. */
#define SIO_CONNECT_TIMEOUT_S 10
/*
 * The hub sends Engine.IO pings from qc_hub_expire(), which server.c runs once a second, so a
 * ping can come up to a second after pingInterval. Engine.IO clients give up when no ping came
 * within pingInterval + pingTimeout: the pingTimeout we announce includes that second.
 */
#define SIO_PING_SLACK_MS 1000

_Static_assert(QC_MSG_HEADROOM >= LWS_PRE, "msg headroom must cover LWS_PRE");

static void flush_conn(struct qc_server *srv, struct qc_conn *c);

/*
 * The per-session data lws keeps for a WebSocket. The connection record itself is separate
 * (allocated at ESTABLISHED, owned by the hub): a suspended session outlives its socket.
 */
struct ws_pss {
	struct qc_conn *c;
	struct lws *wsi;
	lws_sorted_usec_list_t sul_connect; /* Socket.IO: the deadline of the CONNECT */
	const char *close_why;              /* the close reason when not close_text()'s ... */
	uint16_t close_why_code;            /* ... for a close with this code */
	lws_usec_t valid_us;                /* when lws last heard that the peer is alive */
	struct qc_tally_entry *by_ip;       /* counted in srv->by_ip from ESTABLISHED ... */
	struct qc_tally_entry *by_user;     /* ... in srv->by_user once the user is named */
	uint8_t publisher;                  /* counted in srv->publishers */
	uint8_t sio;                        /* on /socket.io/ */
	uint8_t sio_waiting;                /* no Socket.IO CONNECT yet: c is not in the hub */
	struct ws_pss *hs_prev;             /* while sio_waiting: srv->handshakes (utlist) */
	struct ws_pss *hs_next;
};

/* A Socket.IO connection leaves the handshake (connected, or gone). */
static void handshake_done(struct qc_server *srv, struct ws_pss *pss)
{
	if (!pss->sio_waiting)
		return;
	DL_DELETE2(srv->handshakes, pss, hs_prev, hs_next);
	srv->nhandshakes--;
	pss->sio_waiting = 0;
}

/*
 * Count @pss's connection against limits.max_connections_per_user (checked at the upgrade,
 * or at the Socket.IO CONNECT). Out of memory only loses the count of this one connection.
 */
static void count_user(struct qc_server *srv, struct ws_pss *pss)
{
	if (!pss->by_user)
		pss->by_user = qc_tally_take(&srv->by_user, pss->c->user_id);
}

/*
 * Output is not written from inside the publish that queued it: the connection joins the
 * flush list, and one flush per loop pass writes each listed connection's queue in one
 * lws_write. Waiting for POLLOUT instead would cost two epoll_ctl calls per write under libuv
 * (measured: half the throughput); the socket is almost always writeable anyway, and when it
 * is not (lws holds a partial write), we fall back to the WRITEABLE callback.
 */
static void flush_cb(lws_sorted_usec_list_t *sul)
{
	struct qc_server *srv = lws_container_of(sul, struct qc_server, sul_flush);
	struct qc_conn *c;

	while ((c = srv->dirty)) {
		qc_ws_forget(srv, c);
		flush_conn(srv, c);
	}
}

void qc_ws_forget(struct qc_server *srv, struct qc_conn *c)
{
	if (!c->dirty)
		return;
	DL_DELETE2(srv->dirty, c, dirty_prev, dirty_next);
	c->dirty_prev = c->dirty_next = NULL;
	c->dirty = 0;
}

static void ws_want_write(void *ctx, struct qc_conn *c)
{
	struct qc_server *srv = ctx;

	if (!c->transport || c->dirty)
		return;
	if (!srv->dirty)
		lws_sul_schedule(srv->ctx, 0, &srv->sul_flush, flush_cb, 1);
	c->dirty = 1;
	DL_PREPEND2(srv->dirty, c, dirty_prev, dirty_next);
}

static void ws_close(void *ctx, struct qc_conn *c)
{
	if (!c->transport)
		return;
	lws_callback_on_writable(c->transport);
	/*
	 * A peer that stopped reading never makes its socket writeable again: give the close
	 * frame a few seconds, then drop the connection without it.
	 */
	if (c->closing == QC_CLOSE_NOW)
		lws_set_timeout(c->transport, PENDING_TIMEOUT_CLOSE_SEND, 3);
}

/*
 * A Socket.IO reconnect took @c over while its old socket still looked alive (a client that
 * changed networks: the old TCP connection may stay half-open until the ping timeout): that
 * socket no longer has a record and is closed.
 */
static void ws_abandon(void *ctx, struct qc_conn *c)
{
	struct lws *wsi = c->transport;
	struct ws_pss *pss = wsi ? lws_wsi_user(wsi) : NULL;

	qc_ws_forget(ctx, c);
	c->transport = NULL;
	if (!wsi)
		return;
	if (pss && pss->c == c)
		pss->c = NULL;
	lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
}

/* A resume request: the suspended session @to takes over @from's socket (SPEC 2.9). */
static void ws_rebind(void *ctx, struct qc_conn *from, struct qc_conn *to)
{
	struct ws_pss *pss = from->transport ? lws_wsi_user(from->transport) : NULL;

	qc_ws_forget(ctx, from);
	if (pss && pss->c == from)
		pss->c = to;
	to->publisher = from->publisher;
}

static void rate_cb(lws_sorted_usec_list_t *sul)
{
	struct qc_server *srv = lws_container_of(sul, struct qc_server, sul_rate);

	qc_hub_rate_fire(srv->hub);
}

/* One timer for every max_hz subscription: the hub asks for the earliest due (replacing). */
static void ws_wake(void *ctx, int64_t delay_us)
{
	struct qc_server *srv = ctx;

	if (srv->done || !srv->ctx)
		return;
	lws_sul_schedule(srv->ctx, 0, &srv->sul_rate, rate_cb, delay_us > 0 ? delay_us : 1);
}

const struct qc_transport qc_ws_transport = {
    .want_write = ws_want_write,
    .close = ws_close,
    .abandon = ws_abandon,
    .rebind = ws_rebind,
    .wake = ws_wake,
};

static bool is_publisher(struct lws *wsi)
{
	const struct lws_protocols *p = lws_get_protocol(wsi);

	return p && p->name && !strcmp(p->name, QC_PUBLISHER_PROTOCOL);
}

/* The role named by the @n bytes at @name: exact names only ("superadmin" is not "admin"). */
static uint32_t role_bit(const char *name, size_t n)
{
	if (n == 5 && !strncmp(name, "admin", 5))
		return QC_ROLE_ADMIN;
	if (n == 9 && !strncmp(name, "publisher", 9))
		return QC_ROLE_PUBLISHER;
	return 0;
}

uint32_t qc_ws_parse_roles(const char *list)
{
	uint32_t roles = 0;

	while (*list) {
		size_t n = strcspn(list, ",");

		roles |= role_bit(list, n);
		list += n;
		if (*list == ',')
			list++;
	}
	return roles;
}

/* Read ?user_id=, ?roles=, ?batch= from the upgrade request. */
static void read_args(struct lws *wsi, struct qc_server *srv, struct qc_conn *c)
{
	char arg[QC_ARG_MAX + 1];
	int n;

	/* the one longer argument (token=) does not fit: qc_http_arg_at() skips it */
	for (int i = 0; (n = qc_http_arg_at(wsi, i, arg, sizeof(arg))) != -1; i++) {
		if (n < 0)
			continue;
		if (!strncmp(arg, "user_id=", 8) && srv->cfg->auth_mode == QC_AUTH_NONE) {
			/* the length was checked in qc_http_confirm_upgrade() */
			snprintf(c->user_id, sizeof(c->user_id), "%.*s", QC_USER_ID_MAX, arg + 8);
		} else if (!strncmp(arg, "roles=", 6) && srv->cfg->auth_mode == QC_AUTH_NONE) {
			c->roles = qc_ws_parse_roles(arg + 6);
		} else if (!strcmp(arg, "batch=1")) {
			c->batch = 1;
		}
	}
}

static const char *close_text(uint16_t code)
{
	switch (code) {
	case 1000:
		return "";
	case 1001:
		return "server shutting down";
	case 1008:
		return "too many malformed messages";
	case 1007:
		return "text frame is not valid UTF-8";
	case 1009:
		return "message too large";
	case 4008:
		return "slow consumer: send queue full";
	case 4029:
		return "rate limited";
	case 4001:
		return "token expired";
	default:
		return "internal error";
	}
}

/*
 * Send the close frame ourselves, pre-framed like every other frame. lws_close_reason()
 * followed by a -1 from WRITEABLE did not put the frame on the wire here (seen with strace),
 * so we do not rely on it.
 */
static void send_close(struct lws *wsi, struct qc_server *srv, uint16_t code, const char *why)
{
	unsigned char *p = srv->scratch + LWS_PRE;
	size_t wlen;

	if (!why)
		why = close_text(code);
	wlen = strlen(why);
	if (wlen > 123)
		wlen = 123; /* a control frame's payload is at most 125 bytes */

	p[0] = 0x88; /* FIN + close */
	p[1] = (unsigned char)(2 + wlen);
	p[2] = (unsigned char)(code >> 8);
	p[3] = (unsigned char)(code & 0xff);
	memcpy(p + 4, why, wlen);
	lws_write(wsi, p, 4 + wlen, LWS_WRITE_RAW);
}

/* Close @pss's connection with @code, and the reason text @why (NULL: close_text()'s). */
static void close_with(struct qc_server *srv, struct ws_pss *pss, uint16_t code, const char *why,
                       int how)
{
	struct qc_conn *c = pss->c;

	/* the same rule as qc_hub_close(): only a first close, or a hard one overtaking, counts */
	if (!c->closing || (how == QC_CLOSE_NOW && c->closing != QC_CLOSE_NOW)) {
		pss->close_why = why;
		pss->close_why_code = code;
	}
	qc_hub_close(srv->hub, c, code, how);
}

/* Queue @m (stolen; NULL when building it failed) on a connection that is not in the hub yet. */
static void early_send(struct qc_server *srv, struct ws_pss *pss, struct qc_msg *m)
{
	if (m)
		m->kind = QC_MSG_CONTROL;
	if (!m || qc_outq_push(&pss->c->outq, m))
		close_with(srv, pss, 1011, NULL, QC_CLOSE_NOW);
	else
		ws_want_write(srv, pss->c);
	qc_msg_unref(&m);
}

static void set_identity(struct qc_conn *c, const struct qc_identity *id)
{
	snprintf(c->user_id, sizeof(c->user_id), "%s", id->user_id);
	c->roles = (id->roles & QC_AUTH_ROLE_ADMIN ? QC_ROLE_ADMIN : 0) |
	           (id->roles & QC_AUTH_ROLE_PUBLISHER ? QC_ROLE_PUBLISHER : 0);
	c->token_exp_ms = id->exp_ms; /* saturated: exp may be near 2^63 */
}

/*
 * The identity a Socket.IO CONNECT's @auth (an object or NULL) gives @c: auth.token in auth
 * mode jwt, checked like ?token=; else auth.user_id and auth.roles, like ?user_id= and ?roles=.
 * 0, or a negative errno with a static reason in *@why.
 */
static int sio_identify(const struct qc_config *cfg, struct qc_conn *c, json_t *auth,
                        const char **why)
{
	struct qc_identity id;
	json_t *v, *r;
	size_t i, n;

	if (cfg->auth_mode == QC_AUTH_JWT) {
		v = json_object_get(auth, "token");
		if (!json_is_string(v) || !json_string_length(v)) {
			*why = "a token is required (auth: {token})";
			return -EACCES;
		}
		if (qc_http_verify_token(cfg, json_string_value(v), &id, why))
			return -EACCES;
		set_identity(c, &id);
		return 0;
	}
	v = json_object_get(auth, "user_id");
	if (v && !json_is_null(v)) {
		n = json_string_length(v);
		if (!json_is_string(v) || !n || n > QC_USER_ID_MAX ||
		    strlen(json_string_value(v)) != n) {
			*why = "user_id must be a string of 1 to 64 bytes";
			return -EINVAL;
		}
		memcpy(c->user_id, json_string_value(v), n + 1);
	}
	v = json_object_get(auth, "roles");
	if (json_is_string(v)) {
		c->roles = qc_ws_parse_roles(json_string_value(v));
	} else if (json_is_array(v)) {
		json_array_foreach (v, i, r) {
			if (!json_is_string(r))
				goto bad_roles;
			c->roles |= role_bit(json_string_value(r), json_string_length(r));
		}
	} else if (v && !json_is_null(v)) {
		goto bad_roles;
	}
	return 0;

bad_roles:
	*why = "roles must be a comma-separated string or an array of strings";
	return -EINVAL;
}

/* Answer the CONNECT with 44{"message":@why}, then close with @code once it is out. */
static void sio_refuse(struct qc_server *srv, struct ws_pss *pss, const char *why, uint16_t code,
                       const char *close_why)
{
	early_send(srv, pss, qc_sio_connect_error_msg(why));
	close_with(srv, pss, code, close_why, QC_CLOSE_AFTER_DRAIN);
}

/* The Socket.IO CONNECT to "/": authenticate, admit, hand the connection to the hub. */
static void sio_connect(struct qc_server *srv, struct ws_pss *pss, json_t *auth)
{
	struct qc_conn *c = pss->c, *resumed;
	const char *why = NULL;
	char msg[256];
	uint32_t limit;
	bool named;
	int ret;

	if (sio_identify(srv->cfg, c, auth, &why)) {
		qc_hub_reject(srv->hub);
		snprintf(msg, sizeof(msg), "unauthorized: %s", why);
		sio_refuse(srv, pss, msg, 4001, "unauthorized");
		return;
	}
	/*
	 * The handshake was counted at the upgrade: it only changes places (the other handshakes
	 * still count). A refusal here means a shutdown began meanwhile.
	 */
	ret = qc_hub_admit(srv->hub, srv->nhandshakes - 1);
	if (ret == -EBUSY) {
		sio_refuse(srv, pss, "unavailable: limits.max_connections reached", 1013,
		           "limits.max_connections reached");
		return;
	}
	if (ret) {
		sio_refuse(srv, pss, "unavailable: shutting down", 1001, NULL);
		return;
	}
	/* the user is named now (auth.token or auth.user_id): its bound holds here */
	limit = srv->cfg->limits.max_connections_per_user;
	if (c->user_id[0] && limit && qc_tally_count(&srv->by_user, c->user_id) >= limit) {
		qc_hub_reject(srv->hub);
		qc_hub_refused(srv->hub, QC_LIM_CONNECTIONS_PER_USER);
		sio_refuse(srv, pss, "unavailable: limits.max_connections_per_user reached", 1008,
		           "limits.max_connections_per_user reached");
		return;
	}
	named = c->user_id[0];
	lws_sul_cancel(&pss->sul_connect);
	handshake_done(srv, pss);
	c->bad_messages = 0;
	/* connection state recovery: a pid (and offset) names the session to take over */
	resumed = qc_hub_sio_resume(srv->hub, c, auth);
	if (resumed) {
		qc_ws_forget(srv, c);
		free(c);
		pss->c = resumed;
	} else if (qc_hub_open(srv->hub, c)) {
		close_with(srv, pss, 1011, NULL, QC_CLOSE_NOW);
		return;
	}
	if (named)
		count_user(srv, pss);
}

/*
 * A frame before the Socket.IO CONNECT. Only the CONNECT itself is served (another namespace
 * gets socket.io's own "Invalid namespace" refusal, up to max_bad_messages times), Engine.IO
 * pings and pongs are let pass (the heartbeat starts with the session), an Engine.IO close
 * closes; anything else closes with 1008.
 */
static void sio_handshake(struct qc_server *srv, struct ws_pss *pss, const char *buf, size_t len,
                          bool binary)
{
	char frame[QC_SIO_NSP_MAX + 64];
	struct qc_sio_packet p;
	const char *msg;
	int n;

	if (binary) {
		close_with(srv, pss, 1008, "binary frame before the Socket.IO CONNECT",
		           QC_CLOSE_AFTER_DRAIN);
		return;
	}
	if (qc_sio_parse(buf, len, &p, &msg) != QC_OK) {
		close_with(srv, pss, 1008, "malformed packet before the Socket.IO CONNECT",
		           QC_CLOSE_AFTER_DRAIN);
	} else if (p.eio == QC_EIO_PING || p.eio == QC_EIO_PONG) {
		/* nothing to do */
	} else if (p.eio == QC_EIO_CLOSE) {
		close_with(srv, pss, 1000, NULL, QC_CLOSE_AFTER_DRAIN);
	} else if (p.eio != QC_EIO_MESSAGE || p.sio != QC_SIO_CONNECT) {
		close_with(srv, pss, 1008, "Socket.IO CONNECT expected", QC_CLOSE_AFTER_DRAIN);
	} else if (strcmp(p.nsp, "/")) {
		n = snprintf(frame, sizeof(frame), "44%s,{\"message\":\"Invalid namespace\"}",
		             p.nsp);
		early_send(srv, pss, qc_msg_new_text(frame, (size_t)n));
		if (++pss->c->bad_messages >= srv->cfg->limits.max_bad_messages)
			close_with(srv, pss, 1008, "too many refused CONNECTs",
			           QC_CLOSE_AFTER_DRAIN);
	} else {
		sio_connect(srv, pss, p.data);
	}
	qc_sio_packet_release(&p);
}

/*
 * Any frame from the client proves it alive, not only the pong lws waits for: tell lws' idle
 * policy (limits.idle_timeout_s: a ping at half of it, the close at all of it). At most once a
 * second per connection, because each call re-sorts the connection's timer in lws' list of
 * timers, which is as long as the number of connections.
 */
static void alive(struct lws *wsi, struct ws_pss *pss)
{
	lws_usec_t now = lws_now_usecs();

	if (now - pss->valid_us < LWS_US_PER_SEC)
		return;
	pss->valid_us = now;
	lws_validity_confirmed(wsi);
}

/* One complete message from the client. */
static void deliver(struct qc_server *srv, struct ws_pss *pss, const char *buf, size_t len,
                    bool binary)
{
	/* RFC 6455 8.1: a text frame that is not UTF-8 fails the connection, with 1007 */
	if (!binary && !qc_utf8_valid(buf, len)) {
		close_with(srv, pss, 1007, NULL, QC_CLOSE_NOW);
		return;
	}
	if (pss->sio_waiting) {
		sio_handshake(srv, pss, buf, len, binary);
		return;
	}
	/* Engine.IO close, or Socket.IO DISCONNECT from "/": the client is leaving */
	if (pss->sio && !binary &&
	    ((len == 1 && buf[0] == '1') || (len == 2 && buf[0] == '4' && buf[1] == '1'))) {
		pss->c->no_resume =
		    1; /* socket.disconnect(): the session ends, nothing to recover */
		close_with(srv, pss, 1000, NULL, QC_CLOSE_AFTER_DRAIN);
		return;
	}
	qc_hub_rx(srv->hub, pss->c, buf, len, binary);
}

static int on_receive(struct lws *wsi, struct qc_server *srv, struct ws_pss *pss, const char *in,
                      size_t len)
{
	struct qc_conn *c = pss->c;
	size_t remaining = lws_remaining_packet_payload(wsi);
	bool complete = lws_is_final_fragment(wsi) && !remaining;
	/* publishers (role publisher) send batches of up to 10,000 ticks: their own bound */
	size_t max = c->roles & QC_ROLE_PUBLISHER ? srv->cfg->limits.publisher_max_message_bytes
	                                          : srv->cfg->limits.max_message_bytes;
	unsigned char *grown;

	if (c->closing)
		return 0; /* a close is on its way: what else arrives is not read */
	if (c->rx_len + len + remaining > max) {
		free(c->rx);
		c->rx = NULL;
		c->rx_len = 0;
		qc_hub_close(srv->hub, c, 1009, QC_CLOSE_NOW);
		return 0;
	}

	if (complete && !c->rx) {
		/* the common case: the whole message is in lws' rx buffer, no copy */
		deliver(srv, pss, in, len, lws_frame_is_binary(wsi));
		return 0;
	}
	/* fragmented or larger than the rx buffer: reassemble only while incomplete */
	grown = realloc(c->rx, c->rx_len + len + 1);
	if (!grown) {
		qc_hub_close(srv->hub, c, 1011, QC_CLOSE_NOW);
		return 0;
	}
	c->rx = grown;
	memcpy(c->rx + c->rx_len, in, len);
	c->rx_len += len;
	if (!complete)
		return 0;
	/*
	 * the message is ours from here: a Socket.IO CONNECT or a resume request may hand the
	 * socket to another record
	 */
	grown = c->rx;
	len = c->rx_len;
	c->rx = NULL;
	c->rx_len = 0;
	deliver(srv, pss, (const char *)grown, len, lws_frame_is_binary(wsi));
	free(grown);
	return 0;
}

/*
 * Write as much of the queue as one coalesced write takes, then let the hub top the queue up
 * from a resume's replay (so a replay goes at the pace the socket takes). -1 when the write
 * failed.
 */
static int write_queue(struct lws *wsi, struct qc_server *srv, struct qc_conn *c)
{
	const struct qc_msg *tick = qc_outq_oldest_tick(&c->outq, 8);
	struct qc_msg *m;
	size_t n;

	/*
	 * /metrics' publish-to-write latency: one sample per write (its oldest tick, the one that
	 * waited longest), so one clock read per send(), never one per frame
	 */
	if (tick)
		qc_histo_observe(&srv->lat_write, qc_histo_mono_us() - tick->born_us);
	n = qc_outq_fill(&c->outq, srv->scratch + LWS_PRE, QC_TX_CHUNK);
	if (n) {
		if (lws_write(wsi, srv->scratch + LWS_PRE, n, LWS_WRITE_RAW) < (int)n)
			return -1;
	} else if ((m = qc_outq_peek(&c->outq))) {
		/* one frame bigger than the scratch: write it from its own (headroomed) buffer */
		if (lws_write(wsi, (unsigned char *)qc_msg_frame(m), m->len, LWS_WRITE_RAW) <
		    (int)m->len)
			return -1;
		if (m->kind != QC_MSG_CONTROL)
			c->outq.events_out++;
		qc_outq_pop_written(&c->outq);
	}
	if (c->in_table) {
		qc_hub_sio_written(srv->hub, c);
		qc_hub_refill(srv->hub, c);
	}
	return 0;
}

static void flush_conn(struct qc_server *srv, struct qc_conn *c)
{
	struct lws *wsi = c->transport;

	if (c->closing || lws_partial_buffered(wsi)) {
		lws_callback_on_writable(wsi);
		return;
	}
	if (write_queue(wsi, srv, c)) {
		qc_hub_close(srv->hub, c, 1011, QC_CLOSE_NOW);
		return;
	}
	if (!qc_outq_empty(&c->outq))
		lws_callback_on_writable(wsi);
}

static int on_writeable(struct lws *wsi, struct qc_server *srv, struct ws_pss *pss)
{
	struct qc_conn *c = pss->c;

	if (c->close_sent)
		return 0;
	if (c->closing == QC_CLOSE_NOW || (c->closing && qc_outq_empty(&c->outq))) {
		/* what is still queued is not sent: it stays as the session's buffer */
		send_close(wsi, srv, c->close_code,
		           pss->close_why_code == c->close_code ? pss->close_why : NULL);
		/*
		 * Keep reading (and discarding) until the peer answers with its own close: closing
		 * the socket with unread input would reset it, and the peer would never see our
		 * close code. A peer that does not answer is dropped after 3 s.
		 */
		c->close_sent = 1;
		lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_ACK, 3);
		return 0;
	}
	if (qc_outq_empty(&c->outq))
		return 0; /* an extra writeable callback: nothing to do */

	if (write_queue(wsi, srv, c))
		return -1;
	if (!qc_outq_empty(&c->outq) || c->closing)
		lws_callback_on_writable(wsi);
	return 0;
}

size_t qc_ws_pss_size(void)
{
	return sizeof(struct ws_pss);
}

/* The identity of the upgrade request into @c: JWT claims, or ?user_id=&roles= in mode none. */
static int identify(struct lws *wsi, struct qc_server *srv, struct qc_conn *c)
{
	struct qc_identity id;
	const char *why;

	read_args(wsi, srv, c);
	if (srv->cfg->auth_mode != QC_AUTH_JWT)
		return 0;
	if (qc_http_identity(wsi, srv->cfg, &id, &why))
		return -1;
	set_identity(c, &id);
	return 0;
}

const char *qc_ws_peer(struct lws *wsi, char *buf, size_t len)
{
	if (!lws_get_peer_simple(wsi, buf, len))
		snprintf(buf, len, "?");
	return buf;
}

/*
 * ?inbox_seq=N&inbox_epoch=E (SPEC 2.9): the client's position in its user's inbox log, read
 * back right after the session event. False when not both are there and well formed.
 */
#define INBOX_EPOCH_MAX 32 /* epochs are shorter: a longer one names no life of the log */

static bool inbox_position(struct lws *wsi, struct qc_inbox_pos *pos, char *epoch)
{
	char arg[QC_ARG_MAX + 1], *end;
	const char *v;

	v = qc_http_arg(wsi, "inbox_epoch=", arg, sizeof(arg));
	if (!v || !v[0] || strlen(v) > INBOX_EPOCH_MAX)
		return false;
	memcpy(epoch, v, strlen(v) + 1);
	v = qc_http_arg(wsi, "inbox_seq=", arg, sizeof(arg));
	if (!v || *v < '0' || *v > '9')
		return false;
	errno = 0;
	pos->seq = strtoull(v, &end, 10);
	if (errno || *end)
		return false;
	pos->epoch = epoch;
	return true;
}

/*
 * A fresh connection record, or the suspended one that ?resume= names (then @c is freed).
 * *@named: the upgrade named the user (a JWT, ?user_id=); an anonymous one is its own user.
 */
static struct qc_conn *establish(struct lws *wsi, struct qc_server *srv, bool *named)
{
	struct qc_conn *c = calloc(1, sizeof(*c)), *old;
	char arg[QC_ARG_MAX + 1]; /* the upgrade gate refused longer query parameters */
	char epoch[INBOX_EPOCH_MAX + 1];
	struct qc_inbox_pos pos;
	const char *token;

	if (!c)
		return NULL;
	if (identify(wsi, srv, c)) {
		free(c);
		return NULL;
	}
	*named = c->user_id[0];
	c->publisher = is_publisher(wsi);
	token = qc_http_arg(wsi, "resume=", arg, sizeof(arg));
	if (token && token[0]) {
		old = qc_hub_resume(srv->hub, token, c->user_id, c->roles, wsi);
		if (old) {
			old->token_exp_ms = c->token_exp_ms; /* the new token's */
			old->publisher = c->publisher;
			free(c);
			return old;
		}
	}
	c->transport = wsi;
	if (token && token[0]
	        ? qc_hub_open_resume(srv->hub, c, token,
	                             inbox_position(wsi, &pos, epoch) ? &pos : NULL)
	        : qc_hub_open_at(srv->hub, c, inbox_position(wsi, &pos, epoch) ? &pos : NULL)) {
		free(c);
		return NULL;
	}
	return c;
}

static void sio_connect_timeout(lws_sorted_usec_list_t *sul)
{
	struct ws_pss *pss = lws_container_of(sul, struct ws_pss, sul_connect);

	if (pss->c && pss->sio_waiting && !pss->c->closing)
		close_with(qc_server_get(pss->wsi), pss, 1008, "no Socket.IO CONNECT within 10 s",
		           QC_CLOSE_NOW);
}

/*
 * A /socket.io/ connection: a record of its own, not in the hub until the CONNECT, with the
 * Engine.IO open packet queued.
 */
static struct qc_conn *establish_sio(struct lws *wsi, struct qc_server *srv, struct ws_pss *pss)
{
	const struct qc_config *cfg = srv->cfg;
	struct qc_conn *c = calloc(1, sizeof(*c));
	struct qc_msg *m;
	char sid[21];

	if (!c)
		return NULL;
	if (qc_random_hex(sid, 10))
		goto fail_free;
	m = qc_eio_open_msg(sid, cfg->socketio.ping_interval_ms,
	                    cfg->socketio.ping_timeout_ms + SIO_PING_SLACK_MS,
	                    cfg->limits.max_message_bytes);
	if (!m)
		goto fail_free;
	m->kind = QC_MSG_CONTROL;
	if (qc_outq_push(&c->outq, m)) {
		qc_msg_unref(&m);
		goto fail_free;
	}
	qc_msg_unref(&m);
	c->enc = QC_ENC_SIO;
	c->transport = wsi;
	pss->sio_waiting = 1;
	DL_APPEND2(srv->handshakes, pss, hs_prev, hs_next);
	srv->nhandshakes++;
	lws_sul_schedule(srv->ctx, 0, &pss->sul_connect, sio_connect_timeout,
	                 SIO_CONNECT_TIMEOUT_S * LWS_US_PER_SEC);
	ws_want_write(srv, c);
	return c;

fail_free:
	free(c);
	return NULL;
}

int qc_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len)
{
	struct qc_server *srv = qc_server_get(wsi);
	struct ws_pss *pss = user;
	struct qc_conn *c = pss ? pss->c : NULL;

	switch (reason) {
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		return qc_http_confirm_upgrade(wsi);

	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		/* the path, limits and token were checked in qc_http_confirm_upgrade() (http.c) */
		memset(pss, 0, sizeof(*pss));
		pss->wsi = wsi;
		pss->sio = qc_http_is_sio(wsi);
		if (is_publisher(wsi)) {
			/* the role and the free slot were checked at CONFIRM_UPGRADE: here we count
			 */
			if (srv->publishers >= srv->cfg->limits.max_publishers) {
				qc_hub_reject(srv->hub);
				qc_hub_refused(srv->hub, QC_LIM_PUBLISHERS);
				return -1;
			}
			srv->publishers++;
			pss->publisher = 1;
		}
		return 0;

	case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
		/* a new TCP connection: lws gives it to the default protocol, this one */
		return qc_http_accepted(wsi);

	case LWS_CALLBACK_ESTABLISHED: {
		char ip[64];
		bool named = false;

		qc_http_upgraded(wsi);

		/* checked at CONFIRM_UPGRADE; given back at CLOSED, which follows ESTABLISHED */
		pss->by_ip = qc_tally_take(&srv->by_ip, qc_ws_peer(wsi, ip, sizeof(ip)));
		pss->c = pss->sio ? establish_sio(wsi, srv, pss) : establish(wsi, srv, &named);
		if (!pss->c) {
			send_close(wsi, srv, 1011, NULL);
			return -1;
		}
		if (named)
			count_user(srv, pss);
		return 0;
	}

	case LWS_CALLBACK_RECEIVE:
		if (!c || !c->transport)
			return -1;
		alive(wsi, pss);
		return on_receive(wsi, srv, pss, in, len);

	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (!c || !c->transport)
			return -1;
		return on_writeable(wsi, srv, pss);

	case LWS_CALLBACK_CLOSED:
		lws_sul_cancel(&pss->sul_connect);
		handshake_done(srv, pss);
		qc_tally_put(&srv->by_ip, &pss->by_ip);
		qc_tally_put(&srv->by_user, &pss->by_user);
		if (pss->publisher) {
			srv->publishers--;
			pss->publisher = 0;
		}
		if (c) {
			qc_ws_forget(srv, c);
			c->transport = NULL;
			pss->c = NULL;
			/* a Socket.IO handshake that never reached the hub: its queue is ours */
			if (!c->in_table)
				qc_outq_clear(&c->outq);
			/*
			 * A Socket.IO session without connection state recovery cannot resume: it
			 * would hold the user's messages away from the offline queue until it
			 * expired.
			 */
			if (c->enc == QC_ENC_SIO && !c->sio)
				c->no_resume = 1;
			qc_hub_closed(srv->hub, c); /* suspends or frees it */
			qc_server_conn_gone(srv);
		}
		return 0;

	default:
		return 0;
	}
}

void qc_ws_stop_handshakes(struct qc_server *srv)
{
	struct ws_pss *pss;

	DL_FOREACH2 (srv->handshakes, pss, hs_next)
		if (!pss->c->closing)
			close_with(srv, pss, 1001, NULL, QC_CLOSE_AFTER_DRAIN);
}
