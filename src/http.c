/*
 * http: the HTTP endpoints on the WebSocket port (/healthz, /readyz, /api/stats, /metrics and
 * /api/connections with the admin token, POST /api/broadcast and /api/publish) and the gate in
 * front of every WebSocket upgrade (path, capacity, token; for /socket.io/ the Engine.IO version
 * and transport). Socket.IO is served over the websocket transport only: every other request under
 * /socket.io/ (long-polling) is refused with 400. Every answer is one small JSON or text document
 * written with its exact Content-Length, so keep-alive works.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "quotecast/auth.h"
#include "quotecast/chunked.h"
#include "quotecast/pg.h"
#include "quotecast/server.h"

enum route {
	R_NONE = 0,
	R_BROADCAST,
	R_PUBLISH,
};

struct qc_http_pss {
	enum route route;
	char *body; /* request body while it arrives */
	size_t len;
	size_t limit; /* the most body bytes this route takes */
	bool chunked; /* Transfer-Encoding: chunked: the body is framed by chunk sizes ... */
	uint64_t raw; /* ... and this many raw bytes of it came so far */
	struct qc_chunked dec;
	/* a publish waiting for the broker (cluster mode): answered from HTTP_WRITEABLE */
	struct pub_wait *wait;
	bool answered;
	bool close_after; /* a chunked body: lws would wait for more, so the answer ends it */
	enum qc_err ans_e;
	char ans_msg[256];
	json_t *ans_out;
};

/* Links a publish in the broker to its request; the request may go first (wsi = NULL). */
struct pub_wait {
	struct lws *wsi;
	struct qc_http_pss *pss;
};

/*
 * An accepted TCP connection that is not a WebSocket (yet): counted from its accept to its
 * upgrade or its end. Kept in a table by wsi, because lws tells of its end (WSI_DESTROY) with
 * no per-session data we could mark: one may not exist yet.
 */
struct qc_http_sock {
	struct lws *wsi;
	struct qc_tally_entry *ip;
	UT_hash_handle hh;
};

int qc_http_accepted(struct lws *wsi)
{
	struct qc_server *srv = qc_server_get(wsi);
	const struct qc_config *cfg = srv->cfg;
	struct qc_http_sock *hs;
	enum qc_limit l;
	char ip[64];

	qc_ws_peer(wsi, ip, sizeof(ip));
	if (srv->nhttp >= cfg->limits.max_http_connections)
		l = QC_LIM_HTTP_CONNECTIONS;
	else if (cfg->limits.max_connections_per_ip &&
	         qc_tally_count(&srv->http_by_ip, ip) >= cfg->limits.max_connections_per_ip)
		l = QC_LIM_CONNECTIONS_PER_IP;
	else
		goto take;
	/* before any request: there is nothing to answer, the socket is just closed */
	qc_hub_reject(srv->hub);
	qc_hub_refused(srv->hub, l);
	return -1;

take:
	hs = calloc(1, sizeof(*hs));
	if (!hs)
		return -1;
	hs->wsi = wsi;
	hs->ip = qc_tally_take(&srv->http_by_ip, ip);
	if (!hs->ip) {
		free(hs);
		return -1;
	}
	HASH_ADD_PTR(srv->http_socks, wsi, hs);
	srv->nhttp++;
	return 0;
}

static void http_sock_drop(struct qc_server *srv, struct qc_http_sock *hs)
{
	HASH_DEL(srv->http_socks, hs);
	qc_tally_put(&srv->http_by_ip, &hs->ip);
	srv->nhttp--;
	free(hs);
}

/* @wsi is gone or upgraded: if it was counted as an HTTP connection, it is no longer. */
static void http_sock_gone(struct qc_server *srv, struct lws *wsi)
{
	struct qc_http_sock *hs;

	HASH_FIND_PTR(srv->http_socks, &wsi, hs);
	if (hs)
		http_sock_drop(srv, hs);
}

void qc_http_upgraded(struct lws *wsi)
{
	http_sock_gone(qc_server_get(wsi), wsi);
}

void qc_http_free(struct qc_server *srv)
{
	struct qc_http_sock *hs, *tmp;

	HASH_ITER (hh, srv->http_socks, hs, tmp)
		http_sock_drop(srv, hs);
}

size_t qc_http_pss_size(void)
{
	return sizeof(struct qc_http_pss);
}

/* Write status, headers and body in one go. Returns 0, or -1 when the write failed. */
static int respond(struct lws *wsi, unsigned int status, const char *ctype, const char *body,
                   size_t blen)
{
	size_t cap = LWS_PRE + 1024 + blen;
	unsigned char *buf = malloc(cap), *start, *p, *end;
	int ret = -1;

	if (!buf)
		return -1;
	start = p = buf + LWS_PRE;
	end = buf + cap;
	if (lws_add_http_common_headers(wsi, status, ctype, (lws_filepos_t)blen, &p, end) ||
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
	                                 (const unsigned char *)"no-store", 8, &p, end) ||
	    lws_finalize_http_header(wsi, &p, end))
		goto out;
	memcpy(p, body, blen);
	p += blen;
	if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) >= 0)
		ret = 0;
out:
	free(buf);
	return ret;
}

/*
 * What the console's pages may load: nothing but this server (scripts, styles, images, the
 * WebSocket back to it); no inline script, no framing.
 */
static const char csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; "
                          "img-src 'self' data:; connect-src 'self'; font-src 'self'; "
                          "manifest-src 'self'; base-uri 'none'; form-action 'self'; "
                          "frame-ancestors 'none'";

static int add_header(struct lws *wsi, const char *name, const char *value, unsigned char **p,
                      unsigned char *end)
{
	return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
	                                   (const unsigned char *)value, (int)strlen(value), p,
	                                   end);
}

/*
 * A static file (webfiles.c): revalidated on every use (Cache-Control: no-cache with a strong
 * ETag, 304 when If-None-Match names it), so a new build shows at once and an unchanged file
 * costs no body. @head: headers only.
 */
static int serve_file(struct lws *wsi, const struct qc_webfile *f, bool head)
{
	char inm[128];
	bool same = lws_hdr_copy(wsi, inm, sizeof(inm), WSI_TOKEN_HTTP_IF_NONE_MATCH) > 0 &&
	            strstr(inm, f->etag);
	size_t blen = same || head ? 0 : f->len;
	size_t cap = LWS_PRE + 2048 + blen;
	unsigned char *buf = malloc(cap), *start, *p, *end;
	int ret = -1;

	if (!buf)
		return -1;
	start = p = buf + LWS_PRE;
	end = buf + cap;
	if (lws_add_http_common_headers(wsi, same ? 304 : 200, f->ctype,
	                                same ? LWS_ILLEGAL_HTTP_CONTENT_LEN : (lws_filepos_t)f->len,
	                                &p, end) ||
	    add_header(wsi, "etag:", f->etag, &p, end) ||
	    add_header(wsi, "cache-control:", "no-cache", &p, end) ||
	    add_header(wsi, "content-security-policy:", csp, &p, end) ||
	    add_header(wsi, "x-content-type-options:", "nosniff", &p, end) ||
	    add_header(wsi, "referrer-policy:", "no-referrer", &p, end) ||
	    lws_finalize_http_header(wsi, &p, end))
		goto out;
	memcpy(p, f->body, blen);
	p += blen;
	if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) >= 0)
		ret = 0;
out:
	free(buf);
	return ret;
}

/* Answer with @j (stolen) as JSON. */
static int respond_json(struct lws *wsi, unsigned int status, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
	int ret;

	json_decref(j);
	if (!s)
		return -1;
	ret = respond(wsi, status, "application/json", s, strlen(s));
	free(s);
	return ret;
}

static int respond_err(struct lws *wsi, enum qc_err e, const char *msg)
{
	return respond_json(wsi, (unsigned int)qc_err_http_status(e), qc_codec_http_error(e, msg));
}

/* Finish the transaction: 0 keeps the connection, -1 closes it. */
static int done(struct lws *wsi, int wrote)
{
	struct qc_http_pss *pss = lws_wsi_user(wsi);

	if (wrote)
		return -1;
	/*
	 * lws still waits for the rest of a body without a Content-Length (it takes one of 100
	 * MiB): after such a request the connection cannot carry another one.
	 */
	if (pss && pss->chunked)
		return -1;
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static void too_large(struct lws *wsi)
{
	struct qc_http_pss *pss = lws_wsi_user(wsi);

	respond_err(wsi, QC_E_TOO_LARGE,
	            pss && pss->route == R_PUBLISH ? "body over limits.publisher_max_message_bytes"
	                                           : "body over limits.max_http_body_bytes");
}

/*
 * How the body of a POST ends: at its Content-Length, or at its last chunk (Transfer-Encoding:
 * chunked, read by chunked.c). Anything else has no end lws could find (it would wait for 100
 * MiB, then for its 10 s timeout) and is answered at once: 411 without either header, 400 with
 * both (a request-smuggling shape) or with another transfer coding. 0 to go on, -1 when
 * answered (the connection then closes).
 */
static int body_framing(struct lws *wsi, struct qc_http_pss *pss)
{
	bool clen = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0;
	char te[64];
	int n = lws_hdr_copy(wsi, te, sizeof(te), WSI_TOKEN_HTTP_TRANSFER_ENCODING);

	if (n == 0) {
		if (clen)
			return 0;
		respond_json(wsi, 411,
		             qc_codec_http_error(QC_E_BAD_REQUEST,
		                                 "Content-Length required (or Transfer-Encoding: "
		                                 "chunked)"));
		return -1;
	}
	if (n < 0 || strcasecmp(te, "chunked")) {
		respond_err(wsi, QC_E_BAD_REQUEST, "Transfer-Encoding other than chunked");
		return -1;
	}
	if (clen) {
		respond_err(wsi, QC_E_BAD_REQUEST,
		            "both Content-Length and Transfer-Encoding: chunked");
		return -1;
	}
	pss->chunked = true;
	return 0;
}

int qc_http_arg_at(struct lws *wsi, int i, char *buf, size_t len)
{
	/* lws answers -1 both past the last argument and for one too long for @buf: tell apart */
	if (lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i) >= (int)len)
		return -2;
	return lws_hdr_copy_fragment(wsi, buf, (int)len, WSI_TOKEN_HTTP_URI_ARGS, i);
}

const char *qc_http_arg(struct lws *wsi, const char *name, char *buf, size_t len)
{
	size_t nlen = strlen(name);
	int n;

	for (int i = 0; (n = qc_http_arg_at(wsi, i, buf, len)) != -1; i++)
		if (n >= 0 && !strncmp(buf, name, nlen))
			return buf + nlen;
	return NULL;
}

/* The bearer token of the Authorization header into @buf; its length, or -1 when none. */
static int bearer(struct lws *wsi, char *buf, size_t len)
{
	int n = lws_hdr_copy(wsi, buf, (int)len, WSI_TOKEN_HTTP_AUTHORIZATION);

	if (n < 8 || strncasecmp(buf, "Bearer ", 7))
		return -1;
	memmove(buf, buf + 7, (size_t)n - 6);
	return n - 7;
}

int qc_http_verify_token(const struct qc_config *cfg, const char *token, struct qc_identity *id,
                         const char **why)
{
	return qc_jwt_verify(token, cfg->auth_jwt_secret, qc_now_ms() / 1000, id, why);
}

int qc_http_identity(struct lws *wsi, const struct qc_config *cfg, struct qc_identity *id,
                     const char **why)
{
	char tok[QC_TOKEN_MAX + 8]; /* "Bearer " or "token=", the token, NUL */
	int n = -1;

	if (qc_http_arg(wsi, "token=", tok, sizeof(tok))) {
		n = (int)strlen(tok + 6);
		memmove(tok, tok + 6, (size_t)n + 1);
	} else {
		n = bearer(wsi, tok, sizeof(tok));
	}
	if (n <= 0) {
		*why = "a token is required (?token= or Authorization: Bearer)";
		return -EACCES;
	}
	return qc_http_verify_token(cfg, tok, id, why);
}

/*
 * May this request use an admin or publish endpoint? Yes with the configured token
 * (compared in constant time), or in jwt mode with a token carrying @role. With no token
 * configured, auth mode none leaves the endpoint open.
 */
static bool authorized(struct lws *wsi, const struct qc_config *cfg, const char *token,
                       uint32_t role)
{
	struct qc_identity id;
	const char *why;
	char tok[QC_TOKEN_MAX + 8]; /* "Bearer " or "token=", the token, NUL */
	int n;

	if (!token[0] && cfg->auth_mode == QC_AUTH_NONE)
		return true;
	n = bearer(wsi, tok, sizeof(tok));
	if (n <= 0)
		return false;
	if (token[0] && qc_token_equal(tok, (size_t)n, token))
		return true;
	return cfg->auth_mode == QC_AUTH_JWT && !qc_http_verify_token(cfg, tok, &id, &why) &&
	       (id.roles & role);
}

/*
 * /metrics: an explicit list of what is exported, each with its Prometheus name (units as
 * suffixes, counters ending in _total), help and type, and where its value is in the stats
 * document (which stays as it is: clients read it). A figure added to the stats document is
 * exported only once it is listed here.
 */
enum mtype {
	M_GAUGE,
	M_COUNTER,
};

struct mdef {
	const char *name;
	enum mtype type;
	const char *path; /* in the stats document, parts joined with '.' */
	const char *help;
};

static const struct mdef mdefs[] = {
    {"quotecast_uptime_seconds", M_GAUGE, "server.uptime_s", "Seconds since the server started."},
    {"quotecast_resident_memory_bytes", M_GAUGE, "server.rss_bytes",
     "Resident memory of the process (from /proc/self/statm)."},
    {"quotecast_connections", M_GAUGE, "total_connections",
     "WebSocket connections open now (native and Socket.IO)."},
    {"quotecast_users", M_GAUGE, "total_users", "Distinct user ids among the open connections."},
    {"quotecast_connections_peak", M_GAUGE, "connections.peak",
     "The most WebSocket connections open at once since start."},
    {"quotecast_connections_accepted_total", M_COUNTER, "connections.accepted_total",
     "WebSocket connections opened."},
    {"quotecast_connections_closed_total", M_COUNTER, "connections.closed_total",
     "WebSocket connections closed."},
    {"quotecast_connections_rejected_total", M_COUNTER, "connections.rejected_total",
     "Connections refused: at the upgrade, at the Socket.IO CONNECT or as they were accepted."},
    {"quotecast_rooms", M_GAUGE, "rooms.total_rooms",
     "Rooms that exist now, implicit and created."},
    {"quotecast_rooms_active", M_GAUGE, "rooms.active_rooms",
     "Implicit rooms plus created rooms whose status is active."},
    {"quotecast_room_members", M_GAUGE, "rooms.total_members",
     "Members of created rooms, counted by user per room."},
    {"quotecast_room_subscriptions", M_GAUGE, "rooms.total_subscriptions",
     "Room subscriptions now, counted by connection."},
    {"quotecast_room_users", M_GAUGE, "rooms.total_users",
     "Distinct users with a connection subscribed to a room."},
    {"quotecast_rooms_created_total", M_COUNTER, "rooms.rooms_created",
     "Rooms made: implicit (first subscribe) and create_room."},
    {"quotecast_rooms_deleted_total", M_COUNTER, "rooms.rooms_deleted",
     "Rooms gone: implicit rooms left empty and delete_room."},
    {"quotecast_room_joins_total", M_COUNTER, "rooms.total_join_events",
     "Connection subscribes to rooms."},
    {"quotecast_room_leaves_total", M_COUNTER, "rooms.total_leave_events",
     "Connection unsubscribes from rooms (unsubscribe, disconnect, kick, close, delete)."},
    {"quotecast_streams", M_GAUGE, "streaming.active_streams",
     "Symbols with a stream now (with ticks, or subscribed only)."},
    {"quotecast_streams_subscribe_only", M_GAUGE, "streaming.subscribe_only",
     "Symbols subscribed that have had no tick yet."},
    {"quotecast_streams_idle", M_GAUGE, "streaming.idle_streams",
     "Symbols with ticks and no subscriber, freed after streams.idle_ttl_s."},
    {"quotecast_stream_subscriptions", M_GAUGE, "streaming.total_subscribers",
     "Stream subscriptions now (connection-symbol pairs)."},
    {"quotecast_ticks_published_total", M_COUNTER, "streaming.total_published",
     "Ticks offered by publishers: accepted, duplicate and stale."},
    {"quotecast_ticks_accepted_total", M_COUNTER, "streaming.total_messages", "Ticks accepted."},
    {"quotecast_ticks_stale_total", M_COUNTER, "streaming.total_dropped",
     "Ticks dropped as stale (version not above the last)."},
    {"quotecast_ticks_duplicate_total", M_COUNTER, "streaming.total_deduplicated",
     "Ticks dropped as duplicates (message_id seen)."},
    {"quotecast_ticks_conflated_total", M_COUNTER, "streaming.total_conflated",
     "Queued stream_data frames merged away for slow subscribers."},
    {"quotecast_ticks_rate_merged_total", M_COUNTER, "streaming.total_rate_merged",
     "Ticks merged into a max_hz subscription's pending update instead of sent alone."},
    {"quotecast_rate_pending", M_GAUGE, "streaming.rate_pending",
     "max_hz subscriptions with an update waiting for its interval."},
    {"quotecast_tick_deliveries_total", M_COUNTER, "streaming.total_deliveries",
     "Live stream_data frames queued for subscribers."},
    {"quotecast_streams_idle_freed_total", M_COUNTER, "streaming.idle_freed",
     "Idle streams freed after streams.idle_ttl_s."},
    {"quotecast_streams_subscribe_only_freed_total", M_COUNTER, "streaming.subscribe_only_freed",
     "Subscribe-only streams freed by their last unsubscribe."},
    {"quotecast_sessions_suspended", M_GAUGE, "reconnection.suspended",
     "Sessions waiting for a resume."},
    {"quotecast_sessions_resumed_total", M_COUNTER, "reconnection.resumed", "Sessions resumed."},
    {"quotecast_sessions_expired_total", M_COUNTER, "reconnection.expired",
     "Suspended sessions ended (TTL, or pushed out by a bound)."},
    {"quotecast_session_messages_replayed_total", M_COUNTER, "reconnection.replayed",
     "Buffered messages replayed on resume."},
    {"quotecast_session_messages_dropped_total", M_COUNTER, "reconnection.buffer_dropped",
     "Messages dropped because a session buffer was full."},
    {"quotecast_offline_users", M_GAUGE, "offline.users", "Users with offline messages waiting."},
    {"quotecast_offline_deliveries_waiting", M_GAUGE, "offline.queued",
     "Offline deliveries waiting (one per recipient)."},
    {"quotecast_offline_messages", M_GAUGE, "offline.messages",
     "Messages stored for offline users, each once."},
    {"quotecast_offline_bytes", M_GAUGE, "offline.bytes",
     "What the offline messages weigh (bounded by offline.max_total_bytes)."},
    {"quotecast_offline_delivered_total", M_COUNTER, "offline.delivered",
     "Offline deliveries made."},
    {"quotecast_offline_evicted_total", M_COUNTER, "offline.evicted",
     "Offline deliveries lost to offline.max_per_user or offline.max_total_bytes."},
    {"quotecast_store_configured", M_GAUGE, "store.configured", "1 when a store.url is set."},
    {"quotecast_store_up", M_GAUGE, "store.connected", "1 while the PostgreSQL connection is up."},
    {"quotecast_cluster_up", M_GAUGE, "cluster.connected",
     "1 while every Redis shard of cluster.redis is connected and answering (cluster only)."},
    {"quotecast_cluster_nodes", M_GAUGE, "cluster.node_count",
     "Nodes of the cluster alive in the last membership beat, this one included."},
    {"quotecast_cluster_redis_inflight", M_GAUGE, "cluster.inflight",
     "Redis commands sent and not yet answered, over all shards."},
    {"quotecast_cluster_redis_commands_total", M_COUNTER, "cluster.commands",
     "Redis commands sent, over all shards."},
    {"quotecast_cluster_redis_failed_total", M_COUNTER, "cluster.failed",
     "Redis commands answered UNAVAILABLE because their connection went down."},
    {"quotecast_cluster_redis_timeouts_total", M_COUNTER, "cluster.timeouts",
     "Redis connections dropped because an answer or the connect took longer than "
     "cluster.timeout_ms."},
    {"quotecast_cluster_redis_reconnects_total", M_COUNTER, "cluster.reconnects",
     "Redis connections made again after a loss."},
    {"quotecast_store_pending_statements", M_GAUGE, "store.pending",
     "Store statements queued or in flight."},
    {"quotecast_store_failed_statements_total", M_COUNTER, "store.failed",
     "Store statements answered with an error (SQL error, timeout, connection lost)."},
    {"quotecast_store_backlog_writes", M_GAUGE, "store.backlog",
     "Writes waiting for the store (offline messages, alerts, their bookkeeping)."},
    {"quotecast_store_dropped_writes_total", M_COUNTER, "store.dropped",
     "Writes given up (the backlog was full)."},
    {"quotecast_subscriptions", M_GAUGE, "subscriptions.subscriptions",
     "Persisted subscriptions in memory."},
    {"quotecast_subscription_users", M_GAUGE, "subscriptions.users",
     "Users with persisted subscriptions."},
    {"quotecast_alerts_raised_total", M_COUNTER, "subscriptions.alerts_raised", "Alerts raised."},
    {"quotecast_alerts_dropped_total", M_COUNTER, "subscriptions.alerts_dropped",
     "Alerts lost because the store refused their row."},
};

static const char *const store_states[] = {"connected", "connecting", "down", "stalled",
                                           "memory-only"};

/* The text being built: grows as needed; @oom once an allocation failed. */
struct obuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void __attribute__((format(printf, 2, 3))) emit(struct obuf *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			o->oom = true;
			return;
		}
		if ((size_t)n < o->cap - o->len)
			break;
		size_t ncap = (o->cap + (size_t)n + 1) * 2;
		char *grown = realloc(o->p, ncap);

		if (!grown) {
			o->oom = true;
			return;
		}
		o->p = grown;
		o->cap = ncap;
	}
	o->len += (size_t)n;
}

static void header(struct obuf *o, const char *name, const char *type, const char *help)
{
	emit(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The value at @path ("a.b") of @j, or NULL. */
static json_t *at_path(json_t *j, const char *path)
{
	char part[64];

	while (j && *path) {
		size_t n = strcspn(path, ".");

		if (n >= sizeof(part))
			return NULL;
		memcpy(part, path, n);
		part[n] = '\0';
		j = json_object_get(j, part);
		path += n + (path[n] == '.');
	}
	return j;
}

static void value(struct obuf *o, json_t *v)
{
	if (json_is_integer(v))
		emit(o, "%lld", (long long)json_integer_value(v));
	else if (json_is_boolean(v))
		emit(o, "%d", json_is_true(v) ? 1 : 0);
	else
		emit(o, "%.17g", json_number_value(v));
}

/* Microseconds as seconds, without trailing zeros ("0.00005", "2.5", "10"). */
static void seconds(struct obuf *o, uint64_t us)
{
	char b[32];
	size_t n = (size_t)snprintf(b, sizeof(b), "%llu.%06llu", (unsigned long long)(us / 1000000),
	                            (unsigned long long)(us % 1000000));

	while (n > 1 && b[n - 1] == '0')
		n--;
	if (b[n - 1] == '.')
		n--;
	emit(o, "%.*s", (int)n, b);
}

static void histogram(struct obuf *o, const char *name, const char *help, const struct qc_histo *h)
{
	static const struct qc_histo none;

	if (!h)
		h = &none;
	header(o, name, "histogram", help);
	for (unsigned int i = 0; i < QC_HISTO_BUCKETS; i++) {
		emit(o, "%s_bucket{le=\"", name);
		seconds(o, qc_histo_bounds_us[i]);
		emit(o, "\"} %llu\n", (unsigned long long)qc_histo_cumulative(h, i));
	}
	emit(o, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum ", name, (unsigned long long)h->count, name);
	seconds(o, h->sum_us);
	emit(o, "\n%s_count %llu\n", name, (unsigned long long)h->count);
}

/* A label value as the exposition format wants it: \\, \" and \n escaped. */
static void label_value(struct obuf *o, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			emit(o, "\\%c", *s);
		else if (*s == '\n')
			emit(o, "\\n");
		else
			emit(o, "%c", *s);
	}
}

static int serve_metrics(struct lws *wsi, struct qc_server *srv)
{
	json_t *stats = qc_hub_stats(srv->hub), *v, *refused;
	struct obuf o = {.cap = 16384};
	const char *key, *state;
	int ret;

	o.p = malloc(o.cap);
	if (!stats || !o.p) {
		json_decref(stats);
		free(o.p);
		return respond_err(wsi, QC_E_INTERNAL, "out of memory");
	}
	o.p[0] = '\0';
	header(&o, "quotecast_build_info", "gauge",
	       "Always 1; the version and the event loop as labels.");
	emit(&o, "quotecast_build_info{version=\"");
	label_value(&o, QC_VERSION);
	emit(&o, "\",event_loop=\"");
	label_value(&o, srv->loop_name ? srv->loop_name : "");
	emit(&o, "\"} 1\n");
	for (size_t i = 0; i < sizeof(mdefs) / sizeof(mdefs[0]); i++) {
		v = at_path(stats, mdefs[i].path);
		if (!json_is_number(v) && !json_is_boolean(v))
			continue;
		header(&o, mdefs[i].name, mdefs[i].type == M_COUNTER ? "counter" : "gauge",
		       mdefs[i].help);
		emit(&o, "%s ", mdefs[i].name);
		value(&o, v);
		emit(&o, "\n");
	}
	header(&o, "quotecast_http_connections", "gauge",
	       "TCP connections not (yet) upgraded to WebSocket (limits.max_http_connections).");
	emit(&o, "quotecast_http_connections %u\n", srv->nhttp);

	state = json_string_value(at_path(stats, "store.state"));
	header(&o, "quotecast_store_state", "gauge",
	       "1 for the store's current state (memory-only: no store.url), 0 for the others.");
	for (size_t i = 0; i < sizeof(store_states) / sizeof(store_states[0]); i++)
		emit(&o, "quotecast_store_state{state=\"%s\"} %d\n", store_states[i],
		     state && !strcmp(state, store_states[i]));

	refused = at_path(stats, "limits.refused");
	header(&o, "quotecast_limit_refusals_total", "counter",
	       "Requests refused by a bound, labelled with the setting that bit.");
	json_object_foreach (refused, key, v) {
		emit(&o, "quotecast_limit_refusals_total{limit=\"");
		label_value(&o, key);
		emit(&o, "\"} ");
		value(&o, v);
		emit(&o, "\n");
	}
	histogram(
	    &o, "quotecast_publish_to_write_seconds",
	    "From a tick's fan-out (its frame built, right after it was accepted) to the write "
	    "of that frame to a subscriber's socket; one sample per write, its oldest tick.",
	    &srv->lat_write);
	histogram(
	    &o, "quotecast_store_statement_seconds",
	    "Store statements from submit to PostgreSQL's answer (answered ones; failures are "
	    "in quotecast_store_failed_statements_total).",
	    srv->pg ? qc_pg_latency(srv->pg) : NULL);
	json_decref(stats);
	if (o.oom) {
		free(o.p);
		return respond_err(wsi, QC_E_INTERNAL, "out of memory");
	}
	ret = respond(wsi, 200, "text/plain; version=0.0.4; charset=utf-8", o.p, o.len);
	free(o.p);
	return ret;
}

/* GET /api/connections: the lag view of ?sort=&limit= (lag.h), or 400 naming the parameter. */
static int serve_connections(struct lws *wsi, struct qc_server *srv)
{
	char arg[64];
	const char *emsg = NULL;
	struct qc_lag_query q;
	int n;

	qc_lag_query_init(&q);
	for (int i = 0; (n = qc_http_arg_at(wsi, i, arg, sizeof(arg))) != -1; i++) {
		if (n == -2)
			return respond_err(wsi, QC_E_BAD_REQUEST, "query parameter too long");
		if (qc_lag_query_arg(&q, arg, &emsg))
			return respond_err(wsi, QC_E_BAD_REQUEST, emsg);
	}
	return respond_json(wsi, 200, qc_hub_connections(srv->hub, q.sort, q.limit));
}

static int serve_stats(struct lws *wsi, struct qc_server *srv)
{
	return respond_json(wsi, 200, qc_hub_stats(srv->hub));
}

/* The GET endpoints that need the admin token (or a JWT with role admin). */
static const struct {
	const char *path;
	int (*serve)(struct lws *wsi, struct qc_server *srv);
} admin_gets[] = {
    {"/api/stats", serve_stats},
    {"/metrics", serve_metrics},
    {"/api/connections", serve_connections},
};

/* Engine.IO's error codes (engine.io Server.errors) used in our refusals. */
#define EIO_ERR_BAD_REQUEST 3
#define EIO_ERR_BAD_VERSION 5

static const char sio_ws_only[] =
    "quotecast serves Socket.IO over WebSocket only: use transports: ['websocket']";

/* Whether @path is the Socket.IO endpoint (@under: or anything below it). */
static bool sio_path(const char *path, bool under)
{
	if (!strcmp(path, "/socket.io"))
		return true;
	if (strncmp(path, "/socket.io/", 11))
		return false;
	return under || !path[11];
}

bool qc_http_is_sio(struct lws *wsi)
{
	char uri[128];

	return lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) > 0 && sio_path(uri, false);
}

/*
 * A 400 in engine.io's own error shape, {"code":N,"message":"..."} (what its clients parse),
 * with our usual "error" member beside it.
 */
static int respond_eio_err(struct lws *wsi, int code, const char *msg)
{
	json_t *j = qc_codec_http_error(QC_E_BAD_REQUEST, msg);

	if (j && (json_object_set_new(j, "code", json_integer(code)) ||
	          json_object_set_new(j, "message", json_string(msg)))) {
		json_decref(j);
		j = NULL;
	}
	return respond_json(wsi, 400, j);
}

static int method_is(struct lws *wsi, enum lws_token_indexes tok)
{
	return lws_hdr_total_length(wsi, tok) > 0;
}

static int on_http(struct lws *wsi, struct qc_server *srv, struct qc_http_pss *pss,
                   const char *path)
{
	bool get = method_is(wsi, WSI_TOKEN_GET_URI), post = method_is(wsi, WSI_TOKEN_POST_URI);
	const char *reason = NULL;
	int clen;

	pss->route = R_NONE;
	pss->chunked = false;
	pss->raw = 0;
	memset(&pss->dec, 0, sizeof(pss->dec));
	/* a POST's body must have a known end, or the connection would wait for it forever */
	if (post && body_framing(wsi, pss))
		return -1;
	/* long-polling (or anything under /socket.io/ that is not a websocket upgrade) */
	if (sio_path(path, true))
		return done(wsi, respond_eio_err(wsi, EIO_ERR_BAD_REQUEST, sio_ws_only));
	if (!strcmp(path, "/healthz")) {
		if (!get)
			goto bad_method;
		return done(wsi, respond(wsi, 200, "application/json", "{\"status\":\"ok\"}", 15));
	}
	if (!strcmp(path, "/readyz")) {
		if (!get)
			goto bad_method;
		if (qc_hub_ready(srv->hub, &reason))
			return done(wsi,
			            respond_json(wsi, 200, json_pack("{s:s}", "status", "ready")));
		return done(wsi, respond_json(wsi, 503,
		                              json_pack("{s:s, s:s}", "status", "unavailable",
		                                        "reason", reason)));
	}
	/* the figures of the hub, each with the admin token: the same rule for all */
	for (size_t i = 0; i < sizeof(admin_gets) / sizeof(admin_gets[0]); i++) {
		if (strcmp(path, admin_gets[i].path))
			continue;
		if (!get)
			goto bad_method;
		if (!authorized(wsi, srv->cfg, srv->cfg->auth_admin_token, QC_AUTH_ROLE_ADMIN))
			return done(wsi,
			            respond_err(wsi, QC_E_UNAUTHORIZED, "admin token required"));
		return done(wsi, admin_gets[i].serve(wsi, srv));
	}
	if (!strcmp(path, "/api/broadcast") || !strcmp(path, "/api/publish")) {
		bool publish = path[5] == 'p';

		if (!post)
			goto bad_method;
		if (!authorized(wsi, srv->cfg,
		                publish ? srv->cfg->auth_publish_token : srv->cfg->auth_admin_token,
		                publish ? QC_AUTH_ROLE_PUBLISHER : QC_AUTH_ROLE_ADMIN))
			return done(wsi, respond_err(wsi, QC_E_UNAUTHORIZED,
			                             publish ? "publish token required"
			                                     : "admin token required"));
		/* a publisher's batch of 10,000 ticks is over 1 MiB: publishers have their own
		 * bound */
		pss->limit = publish ? srv->cfg->limits.publisher_max_message_bytes
		                     : srv->cfg->limits.max_http_body_bytes;
		pss->route = publish ? R_PUBLISH : R_BROADCAST;
		clen = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
		if (clen > 0) {
			char v[32];

			lws_hdr_copy(wsi, v, sizeof(v), WSI_TOKEN_HTTP_CONTENT_LENGTH);
			if (strtoull(v, NULL, 10) > pss->limit) {
				/* the body is never read: answer and close the connection */
				too_large(wsi);
				return -1;
			}
		}
		return 0; /* the body follows in LWS_CALLBACK_HTTP_BODY */
	}
	if (get || method_is(wsi, WSI_TOKEN_HEAD_URI)) {
		const struct qc_webfile *f = qc_webfiles_find(&srv->web, path);

		if (f)
			return done(wsi, serve_file(wsi, f, !get));
	}
	return done(wsi, respond_err(wsi, QC_E_NOT_FOUND, "no such endpoint"));

bad_method:
	return done(wsi, respond_json(wsi, 405,
	                              qc_codec_http_error(QC_E_BAD_REQUEST, "method not allowed")));
}

/* @len more bytes of the body: -ENOSPC past the route's limit. */
static int body_append(void *arg, const char *in, size_t len)
{
	struct qc_http_pss *pss = arg;
	char *grown;

	if (!len)
		return 0;
	if (pss->len + len > pss->limit)
		return -ENOSPC;
	grown = realloc(pss->body, pss->len + len + 1);
	if (!grown)
		return -ENOMEM;
	pss->body = grown;
	memcpy(pss->body + pss->len, in, len);
	pss->len += len;
	pss->body[pss->len] = '\0';
	return 0;
}

static int body_complete(struct lws *wsi, struct qc_server *srv, struct qc_http_pss *pss);

static int on_body(struct lws *wsi, struct qc_server *srv, struct qc_http_pss *pss, const void *in,
                   size_t len)
{
	int ret;

	if (pss->route == R_NONE)
		return 0;
	if (!pss->chunked) {
		ret = body_append(pss, in, len);
	} else {
		/* the framing may not grow without bound either: chunks of a byte are 6x the data
		 */
		pss->raw += len;
		if (pss->raw > 8 * (uint64_t)pss->limit + 65536)
			ret = -ENOSPC;
		else
			ret = qc_chunked_feed(&pss->dec, in, len, NULL, body_append, pss);
		if (ret == 1) {
			if (body_complete(wsi, srv, pss) == 1) {
				pss->close_after = true;
				return 0;
			}
			return -1; /* lws would wait for more: see done() */
		}
		if (ret == -EINVAL) {
			respond_err(wsi, QC_E_BAD_REQUEST, "malformed chunked body");
			return -1;
		}
	}
	if (ret == -ENOSPC)
		too_large(wsi);
	return ret ? -1 : 0;
}

static void http_published(void *arg, enum qc_err e, const char *emsg, json_t *out)
{
	struct pub_wait *w = arg;
	struct qc_http_pss *pss = w->pss;

	if (!w->wsi) {
		json_decref(out); /* the client went */
		free(w);
		return;
	}
	pss->wait = NULL;
	pss->answered = true;
	pss->ans_e = e;
	snprintf(pss->ans_msg, sizeof(pss->ans_msg), "%s", emsg ? emsg : "");
	pss->ans_out = out;
	lws_callback_on_writable(w->wsi);
	free(w);
}

/* The answer of a publish that waited for the broker. */
static int answer_waited(struct lws *wsi, struct qc_http_pss *pss)
{
	json_t *out = pss->ans_out;
	int wrote;

	if (!pss->answered)
		return 0;
	pss->answered = false;
	pss->ans_out = NULL;
	if (pss->ans_e == QC_OK)
		wrote = respond_json(wsi, 200, out);
	else
		wrote = respond_err(wsi, pss->ans_e, pss->ans_msg);
	if (pss->close_after)
		return -1;
	return done(wsi, wrote);
}

/*
 * The whole body is in: run the route, answer. 0, -1 when the answer could not be written, or
 * 1 when the answer comes later (a publish waiting for the broker).
 */
static int body_complete(struct lws *wsi, struct qc_server *srv, struct qc_http_pss *pss)
{
	struct pub_wait *w;
	json_error_t jerr;
	const char *msg = NULL;
	json_t *body, *out = NULL;
	enum qc_err e;
	int wrote;

	if (pss->route == R_PUBLISH) {
		/* read without a tree when the ingest scanner can (hub_stream.c); in cluster mode
		 * the answer may wait for the broker */
		w = calloc(1, sizeof(*w));
		if (!w) {
			e = QC_E_INTERNAL;
			msg = "out of memory";
		} else {
			w->wsi = wsi;
			w->pss = pss;
			e = qc_hub_publish_text_async(srv->hub, pss->body ? pss->body : "",
			                              pss->len, http_published, w, &out, &msg);
		}
		free(pss->body);
		pss->body = NULL;
		pss->len = 0;
		pss->route = R_NONE;
		if (e == QC_ASYNC) {
			pss->wait = w;
			return 1;
		}
		free(w);
		return done(wsi,
		            e != QC_OK ? respond_err(wsi, e, msg) : respond_json(wsi, 200, out));
	}
	body = json_loadb(pss->body ? pss->body : "", pss->len,
	                  JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	free(pss->body);
	pss->body = NULL;
	pss->len = 0;
	if (!body)
		return respond_err(wsi, QC_E_BAD_JSON, "body is not valid JSON");
	switch (pss->route) {
	case R_BROADCAST:
		/* in cluster mode a broadcast (to a room or to_users) waits for Redis, as a
		 * publish does */
		w = calloc(1, sizeof(*w));
		if (!w) {
			e = QC_E_INTERNAL;
			msg = "out of memory";
			break;
		}
		w->wsi = wsi;
		w->pss = pss;
		e = qc_hub_broadcast_async(srv->hub, body, http_published, w, &out, &msg);
		if (e == QC_ASYNC) {
			json_decref(body);
			pss->route = R_NONE;
			pss->wait = w;
			return 1;
		}
		free(w);
		break;
	default:
		e = QC_E_NOT_FOUND;
		msg = "no such endpoint";
		break;
	}
	json_decref(body);
	pss->route = R_NONE;
	if (e != QC_OK)
		wrote = respond_err(wsi, e, msg);
	else
		wrote = respond_json(wsi, 200, out);
	return wrote;
}

/*
 * /socket.io/ upgrades: Engine.IO v4 on the websocket transport only. 0, or 1 when refused
 * (answered and counted).
 */
static int sio_gate(struct lws *wsi, struct qc_server *srv)
{
	char v[32];
	const char *eio = qc_http_arg(wsi, "EIO=", v, sizeof(v)), *transport;

	if (!eio || strcmp(eio, "4")) {
		qc_hub_reject(srv->hub);
		respond_eio_err(
		    wsi, EIO_ERR_BAD_VERSION,
		    "unsupported protocol version: quotecast serves EIO=4 (Engine.IO v4, "
		    "Socket.IO v3 and later clients) only");
		return 1;
	}
	transport = qc_http_arg(wsi, "transport=", v, sizeof(v));
	if (!transport || strcmp(transport, "websocket")) {
		qc_hub_reject(srv->hub);
		respond_eio_err(wsi, EIO_ERR_BAD_REQUEST, sio_ws_only);
		return 1;
	}
	return 0;
}

/*
 * The subprotocol lws is going to bind the upgrade to: the first name in Sec-WebSocket-Protocol
 * that names a protocol of the vhost, found the way lws_process_ws_upgrade() finds it (no
 * header: the vhost default, "quotecast"). *@publisher when it is the publisher one. -1 when
 * it is none of ours: the list is malformed, names nothing we serve (lws would drop the
 * connection unanswered), or names an internal protocol ("http", "quotecast-pg").
 */
static int subprotocol(struct lws *wsi, bool *publisher)
{
	const struct lws_protocols *p = NULL;
	struct lws_tokenize ts;
	lws_tokenize_elem e;
	char buf[128], name[64];
	int n;

	*publisher = false;
	n = lws_hdr_copy(wsi, buf, sizeof(buf) - 1, WSI_TOKEN_PROTOCOL);
	if (n < 0)
		return -1;
	if (!n)
		return 0;
	lws_tokenize_init(&ts, buf,
	                  LWS_TOKENIZE_F_COMMA_SEP_LIST | LWS_TOKENIZE_F_MINUS_NONTERM |
	                      LWS_TOKENIZE_F_DOT_NONTERM | LWS_TOKENIZE_F_RFC7230_DELIMS);
	ts.len = (size_t)n;
	do {
		e = lws_tokenize(&ts);
		if (e == LWS_TOKZE_TOKEN) {
			if (lws_tokenize_cstr(&ts, name, sizeof(name)))
				return -1;
			p = lws_vhost_name_to_protocol(lws_get_vhost(wsi), name);
			if (p)
				break;
		} else if (e != LWS_TOKZE_DELIMITER && e != LWS_TOKZE_ENDED) {
			return -1;
		}
	} while (e > 0);
	if (!p)
		return -1;
	if (!strcmp(p->name, QC_PUBLISHER_PROTOCOL)) {
		*publisher = true;
		return 0;
	}
	return strcmp(p->name, "quotecast") ? -1 : 0;
}

/*
 * Does @key already hold @max (0: no bound) connections in @t? Then the upgrade is refused
 * with 429 naming the limit @l, and counted.
 */
static bool over(struct lws *wsi, struct qc_server *srv, const struct qc_tally *t, const char *key,
                 uint32_t max, enum qc_limit l)
{
	char msg[96];

	if (!max || qc_tally_count(t, key) < max)
		return false;
	qc_hub_reject(srv->hub);
	qc_hub_refused(srv->hub, l);
	snprintf(msg, sizeof(msg), "%s reached", qc_limit_name(l));
	respond_json(wsi, 429, qc_codec_http_error(QC_E_LIMIT_EXCEEDED, msg));
	return true;
}

int qc_http_confirm_upgrade(struct lws *wsi)
{
	struct qc_server *srv = qc_server_get(wsi);
	char uri[128], arg[QC_TOKEN_ARG_MAX + 1], user[QC_USER_ID_MAX + 1] = "", ip[64];
	bool sio, publisher = false;
	uint32_t roles = 0;
	int ret;

	/*
	 * lws asks the same question for an "Upgrade: h2c": allowed, it would turn the connection
	 * into cleartext HTTP/2, which our pre-framed writes do not survive (TLS pins ALPN to
	 * http/1.1 for the same reason).
	 */
	if (lws_hdr_copy(wsi, arg, sizeof(arg), WSI_TOKEN_UPGRADE) <= 0 ||
	    strcasecmp(arg, "websocket")) {
		qc_hub_reject(srv->hub);
		respond_err(wsi, QC_E_BAD_REQUEST, "only WebSocket upgrades are served");
		return 1;
	}
	if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0)
		uri[0] = '\0';
	sio = sio_path(uri, false);
	if (!sio && strcmp(uri, "/ws") && strcmp(uri, "/ws/")) {
		qc_hub_reject(srv->hub);
		respond_err(wsi, QC_E_NOT_FOUND, "WebSocket endpoints are /ws and /socket.io/");
		return 1;
	}
	/*
	 * Query parameters: a token may be as long as in the Authorization header (browsers
	 * have only the query), every other one is short; user_id must fit the connection record.
	 */
	for (int i = 0, n; (n = qc_http_arg_at(wsi, i, arg, sizeof(arg))) != -1; i++) {
		if (n == -2 || (strncmp(arg, "token=", 6) && (size_t)n > QC_ARG_MAX)) {
			qc_hub_reject(srv->hub);
			respond_err(wsi, QC_E_BAD_REQUEST,
			            "query parameter too long (token: 4096 bytes, others: 255)");
			return 1;
		}
		if (!strncmp(arg, "user_id=", 8) && (!arg[8] || strlen(arg + 8) > QC_USER_ID_MAX)) {
			qc_hub_reject(srv->hub);
			respond_err(wsi, QC_E_BAD_REQUEST, "user_id must be 1 to 64 bytes");
			return 1;
		}
	}
	if (sio && sio_gate(wsi, srv))
		return 1;
	if (subprotocol(wsi, &publisher)) {
		qc_hub_reject(srv->hub);
		respond_err(wsi, QC_E_BAD_REQUEST,
		            "subprotocol: quotecast (the default) or quotecast-publisher");
		return 1;
	}
	if (publisher && sio) {
		qc_hub_reject(srv->hub);
		respond_err(wsi, QC_E_BAD_REQUEST,
		            "the quotecast-publisher subprotocol is for /ws");
		return 1;
	}
	/* Socket.IO clients present their token in the CONNECT packet (ws.c) */
	if (srv->cfg->auth_mode == QC_AUTH_JWT && !sio) {
		struct qc_identity id;
		const char *why;

		if (qc_http_identity(wsi, srv->cfg, &id, &why)) {
			qc_hub_reject(srv->hub);
			respond_err(wsi, QC_E_UNAUTHORIZED, why);
			return 1;
		}
		roles = id.roles & QC_AUTH_ROLE_PUBLISHER ? QC_ROLE_PUBLISHER : 0;
		memcpy(user, id.user_id, sizeof(user));
	} else if (!sio) {
		if (qc_http_arg(wsi, "roles=", arg, sizeof(arg)))
			roles = qc_ws_parse_roles(arg + 6);
		if (qc_http_arg(wsi, "user_id=", arg, sizeof(arg)))
			snprintf(user, sizeof(user), "%.*s", QC_USER_ID_MAX, arg + 8);
	}
	/*
	 * The publisher subprotocol reads in 1 MiB gulps and its slots are few: only publishers
	 * get one, and that is decided here, before a slot is taken.
	 */
	if (publisher && !(roles & QC_ROLE_PUBLISHER)) {
		qc_hub_reject(srv->hub);
		respond_err(wsi, QC_E_FORBIDDEN,
		            "the quotecast-publisher subprotocol needs role publisher");
		return 1;
	}
	if (publisher && srv->publishers >= srv->cfg->limits.max_publishers) {
		qc_hub_reject(srv->hub);
		qc_hub_refused(srv->hub, QC_LIM_PUBLISHERS);
		respond_json(
		    wsi, 503,
		    qc_codec_http_error(QC_E_UNAVAILABLE, "limits.max_publishers reached"));
		return 1;
	}
	/*
	 * Per source address and per user (ws.c counts them at ESTABLISHED, in the same pass).
	 * A Socket.IO connection names its user in the CONNECT: ws.c checks that bound there.
	 */
	if (over(wsi, srv, &srv->by_ip, qc_ws_peer(wsi, ip, sizeof(ip)),
	         srv->cfg->limits.max_connections_per_ip, QC_LIM_CONNECTIONS_PER_IP))
		return 1;
	if (user[0] && over(wsi, srv, &srv->by_user, user,
	                    srv->cfg->limits.max_connections_per_user, QC_LIM_CONNECTIONS_PER_USER))
		return 1;
	/* every upgraded socket counts: Socket.IO handshakes (not in the hub yet) too */
	ret = qc_hub_admit(srv->hub, srv->nhandshakes);
	if (ret) {
		respond_json(wsi, 503,
		             qc_codec_http_error(QC_E_UNAVAILABLE,
		                                 ret == -EBUSY ? "limits.max_connections reached"
		                                               : "shutting down"));
		return 1;
	}
	return 0;
}

int qc_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len)
{
	struct qc_server *srv = qc_server_get(wsi);
	struct qc_http_pss *pss = user;
	int n;

	switch (reason) {
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		return qc_http_confirm_upgrade(wsi);
	case LWS_CALLBACK_HTTP:
		return on_http(wsi, srv, pss, (const char *)in);
	case LWS_CALLBACK_HTTP_BODY:
		return on_body(wsi, srv, pss, in, len);
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		/* Content-Length bodies only: lws never sees the end of a chunked one */
		if (pss->route == R_NONE)
			return 0; /* answered already (a Content-Length: 0 POST that was refused) */
		if (pss->chunked)
			return -1;
		n = body_complete(wsi, srv, pss);
		return n == 1 ? 0 : done(wsi, n);
	case LWS_CALLBACK_HTTP_WRITEABLE:
		if (pss && pss->answered)
			return answer_waited(wsi, pss);
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
		/* lws gives it to the vhost's default protocol ("quotecast", ws.c): not here */
		return qc_http_accepted(wsi);
	case LWS_CALLBACK_WSI_DESTROY:
		/* every wsi of the vhost ends here (protocols[0]); @user is not ours to read */
		http_sock_gone(srv, wsi);
		return 0;
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
	case LWS_CALLBACK_CLOSED_HTTP:
		if (pss) {
			free(pss->body);
			pss->body = NULL;
			pss->len = 0;
			if (pss->wait)
				pss->wait->wsi = NULL; /* its answer finds nobody */
			pss->wait = NULL;
			json_decref(pss->ans_out);
			pss->ans_out = NULL;
			pss->answered = false;
		}
		return 0;
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}
