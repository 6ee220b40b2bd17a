/*
 * server: the lws adapters (layer 2). One context, one vhost, one service loop; the ws
 * protocol (ws.c) and the HTTP endpoints (http.c) share it. Only adapter files include this.
 */
#ifndef QC_SERVER_H
#define QC_SERVER_H

#include <signal.h>
#include <stdbool.h>

#include <libwebsockets.h>

#include "quotecast/config.h"
#include "quotecast/histo.h"
#include "quotecast/hub.h"
#include "quotecast/msg.h"
#include "quotecast/tally.h"
#include "quotecast/webfiles.h"

/*
 * The subprotocol of publisher connections (role publisher only, at most
 * limits.max_publishers), and their read size.
 */
#define QC_PUBLISHER_PROTOCOL "quotecast-publisher"
#define QC_PUBLISHER_RX       (1024 * 1024)

/*
 * Query parameters of an upgrade: "token=" and a JWT as long as one in the Authorization
 * header (QC_TOKEN_MAX), every other "key=value" at most QC_ARG_MAX bytes. lws keeps every
 * header of a request in one buffer of QC_HTTP_HEADER_MAX bytes: room for one such token and
 * the rest of the request.
 */
#define QC_TOKEN_MAX       4096
#define QC_TOKEN_ARG_MAX   (6 + QC_TOKEN_MAX)
#define QC_ARG_MAX         255
#define QC_HTTP_HEADER_MAX (QC_TOKEN_MAX + 4096)

/* One coalesced write: frames are copied back to back into this much scratch space. */
#define QC_TX_CHUNK (64 * 1024)

struct qc_server {
	struct lws_context *ctx;
	struct qc_hub *hub;
	const struct qc_config *cfg;
	const char *loop_name; /* "libuv", "libev" or "poll" */
	bool uv_like;          /* lws owns a foreign-style loop: stop through lws_context_destroy */
	bool stopping;
	bool done;
	int64_t stop_deadline_ms;
	lws_sorted_usec_list_t sul_stop;
	lws_sorted_usec_list_t sul_watchdog;
	lws_sorted_usec_list_t sul_demo;
	lws_sorted_usec_list_t sul_flush;
	lws_sorted_usec_list_t sul_expire;
	lws_sorted_usec_list_t sul_rate; /* the hub's max_hz wake (qc_hub_rate_fire) */
	struct qc_pg *pg;                /* the store; NULL when memory only */
	struct qc_cluster *cluster;      /* cluster.redis; NULL on a single node */
	struct qc_conn *dirty;     /* connections whose new output is written by the next flush */
	struct ws_pss *handshakes; /* Socket.IO connections before their CONNECT (not in the hub) */
	uint32_t nhandshakes;
	uint32_t publishers;             /* connections on the publisher subprotocol */
	struct qc_http_sock *http_socks; /* accepted sockets not (yet) upgraded (http.c) */
	uint32_t nhttp;
	struct qc_tally http_by_ip; /* the same, per source address */
	struct qc_tally by_ip;      /* upgraded connections per source address */
	struct qc_tally by_user;    /* connections per named user */
	struct qc_webfiles web;     /* GET /, /client/quotecast.js (webfiles.c; web.root) */
	uint64_t watchdog_usec;
	struct qc_histo lat_write; /* a tick frame's build to its write (ws.c), for /metrics */
	unsigned char scratch[LWS_PRE + QC_TX_CHUNK];
};

/** qc_server_run() - create the context, serve until stopped. Returns the exit status. */
int qc_server_run(const struct qc_config *cfg);

/** qc_server_get() - the server a wsi belongs to. */
struct qc_server *qc_server_get(struct lws *wsi);

/** qc_server_begin_stop() - start the graceful shutdown (idempotent). */
void qc_server_begin_stop(struct qc_server *srv);

/** qc_server_conn_gone() - a ws connection closed; finishes a shutdown when it was the last. */
void qc_server_conn_gone(struct qc_server *srv);

/* ws.c */
size_t qc_ws_pss_size(void);
/** qc_ws_stop_handshakes() - at shutdown: close Socket.IO handshakes with 1001. */
void qc_ws_stop_handshakes(struct qc_server *srv);
/** qc_ws_parse_roles() - QC_ROLE_* bits of a comma-separated list ("admin,publisher"). */
uint32_t qc_ws_parse_roles(const char *list);
/** qc_ws_peer() - the source address of @wsi as text into @buf ("?" when unknown); @buf. */
const char *qc_ws_peer(struct lws *wsi, char *buf, size_t len);
/** qc_ws_forget() - drop a closing connection from the flush list. */
void qc_ws_forget(struct qc_server *srv, struct qc_conn *c);
int qc_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len);
extern const struct qc_transport qc_ws_transport;

/* http.c */
struct qc_http_pss;
size_t qc_http_pss_size(void);
/**
 * qc_http_confirm_upgrade() - the gate in front of every WebSocket upgrade (path, capacity,
 * token; EIO=4 and transport=websocket on /socket.io/, whose token comes later, in the
 * Socket.IO CONNECT): 0 to allow, 1 when it answered with an HTTP error. lws asks whichever
 * protocol the connection is bound to (the vhost's default, "quotecast"), so ws.c forwards it here.
 */
int qc_http_confirm_upgrade(struct lws *wsi);

struct qc_identity;
/**
 * qc_http_identity() - verify the JWT of a request (?token= or Authorization: Bearer) in auth
 * mode jwt. Returns 0 with @id filled, or a negative errno with a static reason in *@why.
 */
int qc_http_identity(struct lws *wsi, const struct qc_config *cfg, struct qc_identity *id,
                     const char **why);

/**
 * qc_http_verify_token() - verify the JWT string @token against the configured secret, now:
 * what ?token=, Authorization: Bearer and a Socket.IO CONNECT's auth.token all go through.
 * Returns 0 with @id filled, or a negative errno with a static reason in *@why.
 */
int qc_http_verify_token(const struct qc_config *cfg, const char *token, struct qc_identity *id,
                         const char **why);

/**
 * qc_http_arg_at() - query argument @i ("key=value") of @wsi's request into @buf (@len bytes,
 * NUL-terminated). Returns its length, -2 when it does not fit (it exists: go on with the
 * next), or -1 past the last one.
 */
int qc_http_arg_at(struct lws *wsi, int i, char *buf, size_t len);

/**
 * qc_http_arg() - the value of the first query argument starting with @name ("resume="),
 * copied into @buf: a pointer into @buf, or NULL. Arguments too long for @buf are skipped (lws'
 * own lws_get_urlarg_by_name() stops at the first one).
 */
const char *qc_http_arg(struct lws *wsi, const char *name, char *buf, size_t len);

/**
 * qc_http_accepted() - a TCP connection was accepted (SERVER_NEW_CLIENT_INSTANTIATED): count it
 * as an HTTP connection, or refuse it (-1: lws closes it) past limits.max_http_connections or
 * limits.max_connections_per_ip HTTP connections of its address. 0 when counted.
 */
int qc_http_accepted(struct lws *wsi);

/** qc_http_upgraded() - @wsi became a WebSocket: it is no longer an HTTP connection. */
void qc_http_upgraded(struct lws *wsi);

/** qc_http_free() - at exit: forget the HTTP connections still counted. */
void qc_http_free(struct qc_server *srv);

/** qc_http_is_sio() - whether the upgrade request of @wsi is for /socket.io/ (Socket.IO). */
bool qc_http_is_sio(struct lws *wsi);
int qc_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len);

#endif
