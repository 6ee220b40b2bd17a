/*
 * ws: the WebSocket transport. lws' per-session data points at the connection record, which
 * this file allocates when a connection is established (or takes over from a suspended session
 * named by ?resume=) and hands to the hub. It reassembles incoming messages within
 * limits.max_message_bytes, passes them to the hub, and drains each connection's outq: queued
 * frames already carry their WebSocket headers, so as many as fit are copied back to back and
 * leave in one LWS_WRITE_RAW write, once per loop pass (the flush list below) or, when lws
 * still holds part of an earlier write, from the WRITEABLE callback.
 */
#include <string.h>

#include "quotecast/auth.h"
#include "quotecast/server.h"

_Static_assert(QC_MSG_HEADROOM >= LWS_PRE, "msg headroom must cover LWS_PRE");

static void flush_conn(struct qc_server *srv, struct qc_conn *c);

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
	if (c->dirty_prev)
		c->dirty_prev->dirty_next = c->dirty_next;
	else
		srv->dirty = c->dirty_next;
	if (c->dirty_next)
		c->dirty_next->dirty_prev = c->dirty_prev;
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
	c->dirty_prev = NULL;
	c->dirty_next = srv->dirty;
	if (srv->dirty)
		srv->dirty->dirty_prev = c;
	srv->dirty = c;
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

const struct qc_transport qc_ws_transport = {
    .want_write = ws_want_write,
    .close = ws_close,
};

static bool is_publisher(struct lws *wsi)
{
	const struct lws_protocols *p = lws_get_protocol(wsi);

	return p && p->name && !strcmp(p->name, QC_PUBLISHER_PROTOCOL);
}

/* A comma-separated role list: exact names only ("superadmin" is not "admin"). */
static uint32_t parse_roles(const char *list)
{
	uint32_t roles = 0;

	while (*list) {
		size_t n = strcspn(list, ",");

		if (n == 5 && !strncmp(list, "admin", 5))
			roles |= QC_ROLE_ADMIN;
		else if (n == 9 && !strncmp(list, "publisher", 9))
			roles |= QC_ROLE_PUBLISHER;
		list += n;
		if (*list == ',')
			list++;
	}
	return roles;
}

/* Read ?user_id=, ?roles=, ?batch= from the upgrade request. */
static void read_args(struct lws *wsi, struct qc_server *srv, struct qc_conn *c)
{
	char arg[256];

	for (int i = 0;
	     lws_hdr_copy_fragment(wsi, arg, sizeof(arg), WSI_TOKEN_HTTP_URI_ARGS, i) > 0; i++) {
		if (!strncmp(arg, "user_id=", 8) && srv->cfg->auth_mode == QC_AUTH_NONE) {
			/* the length was checked in qc_http_confirm_upgrade() */
			snprintf(c->user_id, sizeof(c->user_id), "%.*s", QC_USER_ID_MAX, arg + 8);
		} else if (!strncmp(arg, "roles=", 6) && srv->cfg->auth_mode == QC_AUTH_NONE) {
			c->roles = parse_roles(arg + 6);
		} else if (!strcmp(arg, "batch=1")) {
			c->batch = 1;
		}
	}
}

static const char *close_text(uint16_t code)
{
	switch (code) {
	case 1001:
		return "server shutting down";
	case 1008:
		return "too many malformed messages";
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
static void send_close(struct lws *wsi, struct qc_server *srv, uint16_t code)
{
	const char *why = close_text(code);
	size_t wlen = strlen(why);
	unsigned char *p = srv->scratch + LWS_PRE;

	p[0] = 0x88; /* FIN + close */
	p[1] = (unsigned char)(2 + wlen);
	p[2] = (unsigned char)(code >> 8);
	p[3] = (unsigned char)(code & 0xff);
	memcpy(p + 4, why, wlen);
	lws_write(wsi, p, 4 + wlen, LWS_WRITE_RAW);
}

static int on_receive(struct lws *wsi, struct qc_server *srv, struct qc_conn *c, const char *in,
                      size_t len)
{
	size_t remaining = lws_remaining_packet_payload(wsi);
	bool complete = lws_is_final_fragment(wsi) && !remaining;
	size_t max = srv->cfg->limits.max_message_bytes;
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
		qc_hub_rx(srv->hub, c, in, len, lws_frame_is_binary(wsi));
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
	qc_hub_rx(srv->hub, c, (const char *)c->rx, c->rx_len, lws_frame_is_binary(wsi));
	free(c->rx);
	c->rx = NULL;
	c->rx_len = 0;
	return 0;
}

/* Write as much of the queue as one coalesced write takes. -1 when the write failed. */
static int write_queue(struct lws *wsi, struct qc_server *srv, struct qc_conn *c)
{
	struct qc_msg *m;
	size_t n;

	n = qc_outq_fill(&c->outq, srv->scratch + LWS_PRE, QC_TX_CHUNK);
	if (n)
		return lws_write(wsi, srv->scratch + LWS_PRE, n, LWS_WRITE_RAW) < (int)n ? -1 : 0;
	/* one frame bigger than the scratch: write it from its own (headroomed) buffer */
	m = qc_outq_peek(&c->outq);
	if (!m)
		return 0;
	if (lws_write(wsi, (unsigned char *)qc_msg_frame(m), m->len, LWS_WRITE_RAW) < (int)m->len)
		return -1;
	qc_outq_pop(&c->outq);
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

static int on_writeable(struct lws *wsi, struct qc_server *srv, struct qc_conn *c)
{
	if (c->close_sent)
		return 0;
	if (c->closing == QC_CLOSE_NOW || (c->closing && qc_outq_empty(&c->outq))) {
		/* what is still queued is not sent: it stays as the session's buffer */
		send_close(wsi, srv, c->close_code);
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

/*
 * The per-session data lws keeps for a WebSocket. The connection record itself is separate
 * (allocated at ESTABLISHED, owned by the hub): a suspended session outlives its socket.
 */
struct ws_pss {
	struct qc_conn *c;
	uint8_t publisher; /* counted in srv->publishers */
};

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
	snprintf(c->user_id, sizeof(c->user_id), "%s", id.user_id);
	c->roles = (id.roles & QC_AUTH_ROLE_ADMIN ? QC_ROLE_ADMIN : 0) |
	           (id.roles & QC_AUTH_ROLE_PUBLISHER ? QC_ROLE_PUBLISHER : 0);
	c->token_exp_ms = id.exp * 1000;
	return 0;
}

/* A fresh connection record, or the suspended one that ?resume= names (then @c is freed). */
static struct qc_conn *establish(struct lws *wsi, struct qc_server *srv)
{
	struct qc_conn *c = calloc(1, sizeof(*c)), *old;
	char arg[256]; /* the upgrade gate refused longer query parameters */
	const char *token;

	if (!c)
		return NULL;
	if (identify(wsi, srv, c)) {
		free(c);
		return NULL;
	}
	token = lws_get_urlarg_by_name(wsi, "resume=", arg, sizeof(arg));
	if (token && token[0]) {
		old = qc_hub_resume(srv->hub, token, c->user_id, c->roles, wsi);
		if (old) {
			old->token_exp_ms = c->token_exp_ms; /* the new token's */
			free(c);
			return old;
		}
	}
	c->transport = wsi;
	if (qc_hub_open(srv->hub, c)) {
		free(c);
		return NULL;
	}
	return c;
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
		if (is_publisher(wsi)) {
			/* each holds a big read buffer: their number is bounded */
			if (srv->publishers >= QC_PUBLISHERS_MAX) {
				lwsl_warn("quotecast: publisher connection refused: %d open\n",
				          QC_PUBLISHERS_MAX);
				qc_hub_reject(srv->hub);
				return -1;
			}
			srv->publishers++;
			pss->publisher = 1;
		}
		return 0;

	case LWS_CALLBACK_ESTABLISHED:
		pss->c = establish(wsi, srv);
		if (!pss->c) {
			send_close(wsi, srv, 1011);
			return -1;
		}
		return 0;

	case LWS_CALLBACK_RECEIVE:
		if (!c || !c->transport)
			return -1;
		return on_receive(wsi, srv, c, in, len);

	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (!c || !c->transport)
			return -1;
		return on_writeable(wsi, srv, c);

	case LWS_CALLBACK_CLOSED:
		if (pss->publisher) {
			srv->publishers--;
			pss->publisher = 0;
		}
		if (c) {
			qc_ws_forget(srv, c);
			c->transport = NULL;
			pss->c = NULL;
			qc_hub_closed(srv->hub, c); /* suspends or frees it */
			qc_server_conn_gone(srv);
		}
		return 0;

	default:
		return 0;
	}
}
