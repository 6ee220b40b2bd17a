/*
 * server: the lws context, its vhost and protocols, the event loop, signals, the graceful
 * shutdown and systemd notification. Owns struct qc_server for the life of the process.
 */
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "quotecast/cluster.h"
#include "quotecast/pg.h"
#include "quotecast/redis.h"
#include "quotecast/server.h"

#define STOP_GRACE_MS 5000 /* how long a shutdown waits for connections to drain */
#define QC_RX_BUFFER  512  /* per-connection read buffer of subscribers (memory per idle conn) */

static volatile sig_atomic_t signalled; /* poll loop: set by the signal handler */
static struct qc_server *the_server;    /* for the libuv/libev signal callback */

struct qc_server *qc_server_get(struct lws *wsi)
{
	return lws_context_user(lws_get_context(wsi));
}

static void finish(struct qc_server *srv)
{
	uint32_t left = qc_hub_nconns(srv->hub);

	if (srv->done)
		return;
	srv->done = true;
	lws_sul_cancel(&srv->sul_stop);
	lws_sul_cancel(&srv->sul_watchdog);
	lws_sul_cancel(&srv->sul_demo);
	lws_sul_cancel(&srv->sul_expire);
	lws_sul_cancel(&srv->sul_rate);
	if (srv->pg)
		qc_pg_stop(srv->pg);
	qc_cluster_stop(srv->cluster);
	if (left)
		lwsl_warn("quotecast: %u connection(s) still open after %d ms: dropping them, "
		          "exiting\n",
		          left, STOP_GRACE_MS);
	else
		lwsl_user("quotecast: all connections closed, exiting\n");
	if (srv->uv_like)
		lws_context_destroy(srv->ctx); /* makes lws_service() return */
	else
		lws_cancel_service(srv->ctx);
}

static void stop_tick(lws_sorted_usec_list_t *sul)
{
	struct qc_server *srv = lws_container_of(sul, struct qc_server, sul_stop);

	struct qc_store_stats st = {0};

	if (srv->pg)
		qc_pg_stats(srv->pg, &st);
	/* connections gone and the store's queue written (or nothing more will be) */
	if ((!qc_hub_nconns(srv->hub) && !srv->nhandshakes && (!st.pending || !st.connected)) ||
	    qc_now_ms() >= srv->stop_deadline_ms) {
		finish(srv);
		return;
	}
	lws_sul_schedule(srv->ctx, 0, &srv->sul_stop, stop_tick, 50 * LWS_US_PER_MS);
}

void qc_server_begin_stop(struct qc_server *srv)
{
	uint32_t open;

	if (srv->stopping)
		return;
	srv->stopping = true;
	sd_notify(0, "STOPPING=1");
	open = qc_hub_shutdown(srv->hub);
	qc_ws_stop_handshakes(srv);
	lwsl_user("quotecast: stopping, closing %u connection(s) with 1001\n", open);
	srv->stop_deadline_ms = qc_now_ms() + STOP_GRACE_MS;
	lws_sul_schedule(srv->ctx, 0, &srv->sul_stop, stop_tick, 1);
	/*
	 * We may be in the event library's signal callback, outside any lws service pass: the
	 * loop's timer is only re-armed when lws services something, so wake it.
	 */
	lws_cancel_service(srv->ctx);
}

void qc_server_conn_gone(struct qc_server *srv)
{
	if (srv->stopping && !srv->done && !qc_hub_nconns(srv->hub) && !srv->nhandshakes)
		lws_sul_schedule(srv->ctx, 0, &srv->sul_stop, stop_tick, 1);
}

static void watchdog_tick(lws_sorted_usec_list_t *sul)
{
	struct qc_server *srv = lws_container_of(sul, struct qc_server, sul_watchdog);

	sd_notify(0, "WATCHDOG=1");
	lws_sul_schedule(srv->ctx, 0, &srv->sul_watchdog, watchdog_tick,
	                 (lws_usec_t)srv->watchdog_usec / 2);
}

static void demo_tick(lws_sorted_usec_list_t *sul)
{
	struct qc_server *srv = lws_container_of(sul, struct qc_server, sul_demo);
	uint32_t next_ms = qc_hub_demo_tick(srv->hub);

	if (next_ms && !srv->stopping)
		lws_sul_schedule(srv->ctx, 0, &srv->sul_demo, demo_tick,
		                 (lws_usec_t)next_ms * LWS_US_PER_MS);
}

/* Suspended sessions whose TTL ran out end here, once a second. */
static void expire_tick(lws_sorted_usec_list_t *sul)
{
	struct qc_server *srv = lws_container_of(sul, struct qc_server, sul_expire);

	qc_hub_expire(srv->hub);
	if (!srv->stopping)
		lws_sul_schedule(srv->ctx, 0, &srv->sul_expire, expire_tick, LWS_US_PER_SEC);
}

/* libuv / libev: lws watches SIGINT/SIGTERM itself and calls this on the loop. */
static void evlib_signal(void *handle, int signum)
{
	if (the_server && (signum == SIGINT || signum == SIGTERM))
		qc_server_begin_stop(the_server);
}

static void term_to_int(int signum)
{
	kill(getpid(), SIGINT);
}

/* Whether lws can load an event-library plugin (it dlopen()s it by this name). */
static bool evlib_available(const char *name)
{
	void *h = dlopen(name, RTLD_LAZY | RTLD_LOCAL);

	if (!h)
		return false;
	dlclose(h);
	return true;
}

static void on_signal(int signum)
{
	signalled = signum;
}

static const struct lws_protocol_vhost_options pvo_default = {NULL, NULL, "default", "1"};
static const struct lws_protocol_vhost_options pvo = {NULL, &pvo_default, "quotecast", ""};

static int log_mask(enum qc_log_level l)
{
	switch (l) {
	case QC_LOG_ERROR:
		return LLL_ERR;
	case QC_LOG_WARN:
		return LLL_ERR | LLL_WARN;
	case QC_LOG_INFO:
		return LLL_ERR | LLL_WARN | LLL_USER | LLL_NOTICE;
	case QC_LOG_DEBUG:
	default:
		return LLL_ERR | LLL_WARN | LLL_USER | LLL_NOTICE | LLL_INFO;
	}
}

static struct lws_context *create_context(struct qc_server *srv, struct lws_protocols *protocols,
                                          const lws_retry_bo_t *retry, uint64_t loop_option)
{
	const struct qc_config *cfg = srv->cfg;
	struct lws_context_creation_info info;

	memset(&info, 0, sizeof(info));
	info.port = (int)cfg->listen_port;
	info.iface = cfg->listen_host[0] && strcmp(cfg->listen_host, "0.0.0.0") &&
	                     strcmp(cfg->listen_host, "::")
	                 ? cfg->listen_host
	                 : NULL;
	info.protocols = protocols;
	info.pvo = &pvo;
	info.vhost_name = "default";
	info.user = srv;
	info.options = loop_option | LWS_SERVER_OPTION_DISABLE_IPV6;
	if (!strcmp(cfg->listen_host, "::"))
		info.options &= ~(uint64_t)LWS_SERVER_OPTION_DISABLE_IPV6;
	info.signal_cb = evlib_signal;
	info.retry_and_idle_policy = retry;
	info.timeout_secs = 10;
	/* one shared read buffer per service thread: a busy publisher is read in big gulps */
	info.pt_serv_buf_size = QC_PUBLISHER_RX;
	info.keepalive_timeout = 30;
	/* a JWT as long in ?token= as in the Authorization header, and the rest of the request */
	info.max_http_header_data = QC_HTTP_HEADER_MAX;
	info.alpn = "http/1.1"; /* pre-framed raw writes rule out ws over h2 */
	if (cfg->tls_cert[0]) {
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		info.ssl_cert_filepath = cfg->tls_cert;
		info.ssl_private_key_filepath = cfg->tls_key;
	}
	return lws_create_context(&info);
}

static void store_stats(void *ctx, struct qc_store_stats *st)
{
	qc_pg_stats(ctx, st);
}

static int load_query(void *ctx, const char *sql, json_t **rows, char *err, size_t errlen)
{
	return qc_pg_query_sync(ctx, sql, 0, NULL, rows, err, errlen);
}

/*
 * Start-up, before there is a loop or a listening socket: connect, migrate and load
 * (blocking, bounded by store.connect_timeout_s). A store that cannot be reached stops the
 * start: the unit restarts us, and nothing runs half-loaded.
 */
static int load_store(struct qc_server *srv)
{
	const struct qc_config *cfg = srv->cfg;
	char err[512];

	srv->pg = qc_pg_new(cfg->store_url, cfg->store.max_pending, cfg->store.timeout_ms);
	if (!srv->pg) {
		lwsl_err("quotecast: store: out of memory\n");
		return -1;
	}
	if (qc_pg_start(srv->pg, cfg->store.connect_timeout_s, err, sizeof(err)) ||
	    qc_hub_load(srv->hub, load_query, srv->pg, err, sizeof(err))) {
		lwsl_err("quotecast: store: %s\n", err);
		return -1;
	}
	return 0;
}

/* Then the loaded connection goes to the loop. */
static int start_store(struct qc_server *srv)
{
	struct qc_store st;

	if (qc_pg_go_async(srv->pg, lws_get_vhost_by_name(srv->ctx, "default"))) {
		lwsl_err("quotecast: store: cannot watch the PostgreSQL socket on the loop\n");
		return -1;
	}
	st = qc_pg_store(srv->pg);
	st.stats = store_stats;
	st.ctx = srv->pg;
	qc_hub_set_store(srv->hub, &st);
	return 0;
}

/*
 * The static files (web console, JavaScript client) into memory, before the loop serves
 * anyone: serving them never reads the disk. A missing directory is said, not fatal.
 */
static void load_web(struct qc_server *srv)
{
	const char *root = srv->cfg->web.root[0] ? srv->cfg->web.root : QC_DATADIR;
	static const struct {
		const char *dir, *prefix;
	} parts[] = {{"web", ""}, {"client", "/client"}};
	char dir[PATH_MAX];
	int n;

	if (!srv->cfg->web.enabled)
		return;
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		snprintf(dir, sizeof(dir), "%s/%s", root, parts[i].dir);
		n = qc_webfiles_load_dir(&srv->web, dir, parts[i].prefix);
		if (n < 0)
			lwsl_warn("quotecast: web.root: cannot load %s: %s\n", dir, strerror(-n));
	}
	lwsl_notice("quotecast: %u static files (%zu bytes) from %s\n", srv->web.count,
	            srv->web.bytes, root);
}

int qc_server_run(const struct qc_config *cfg)
{
	struct lws_protocols protocols[] = {
	    {"http", qc_http_callback, qc_http_pss_size(), 0, 0, NULL, 0},
	    /*
	     * rx_buffer_size is allocated for every connection: small (most client messages
	     * are small; larger ones are reassembled only while incomplete).
	     */
	    {"quotecast", qc_ws_callback, qc_ws_pss_size(), QC_RX_BUFFER, 0, NULL,
	     QC_TX_CHUNK + LWS_PRE},
	    /*
	     * Feed handlers ask for this subprotocol. lws reads a ws connection at most
	     * rx_buffer_size bytes per loop pass, and a pass that fans out to 10,000
	     * subscribers is long: a publisher must be read in big gulps to keep up.
	     */
	    {QC_PUBLISHER_PROTOCOL, qc_ws_callback, qc_ws_pss_size(), QC_PUBLISHER_RX, 0, NULL,
	     QC_TX_CHUNK + LWS_PRE},
	    qc_pg_protocol,
	    qc_redis_protocol,
	    {NULL, NULL, 0, 0, 0, NULL, 0},
	};
	lws_retry_bo_t retry = {
	    .secs_since_valid_ping =
	        (uint16_t)(cfg->limits.idle_timeout_s / 2 ? cfg->limits.idle_timeout_s / 2 : 1),
	    .secs_since_valid_hangup = (uint16_t)cfg->limits.idle_timeout_s,
	};
	struct qc_transport transport = qc_ws_transport;
	struct qc_server *srv;
	struct sigaction old_segv, old_fpe;
	struct rlimit rl;
	int n = 0, status = 0;

	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return 1;
	srv->cfg = cfg;
	transport.ctx = srv;
	srv->hub = qc_hub_new(cfg, &transport);
	if (!srv->hub) {
		free(srv);
		return 1;
	}
	the_server = srv;
	lws_set_log_level(log_mask(cfg->log_level), NULL);
	if (cfg->store_url[0] && load_store(srv)) {
		the_server = NULL;
		qc_hub_free(srv->hub);
		qc_pg_free(srv->pg);
		free(srv);
		return 1;
	}

	if (cfg->cluster.nredis) {
		char err[512];

		srv->cluster = qc_cluster_new(cfg, srv->hub, err, sizeof(err));
		if (!srv->cluster) {
			lwsl_err("quotecast: %s\n", err);
			the_server = NULL;
			qc_hub_free(srv->hub);
			qc_pg_free(srv->pg);
			free(srv);
			return 1;
		}
	}

	load_web(srv);

	/* lws sizes its fd table from the soft limit: take the whole hard limit */
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	sigaction(SIGSEGV, NULL, &old_segv);
	sigaction(SIGFPE, NULL, &old_fpe);
	switch (cfg->event_loop) {
	case QC_LOOP_AUTO:
	case QC_LOOP_LIBUV:
		if (cfg->event_loop == QC_LOOP_AUTO &&
		    !evlib_available("libwebsockets-evlib_uv.so")) {
			lwsl_warn("quotecast: libuv event library plugin not installed "
			          "(libwebsockets-evlib-uv): using poll\n");
			goto use_poll;
		}
		srv->ctx = create_context(srv, protocols, &retry, LWS_SERVER_OPTION_LIBUV);
		srv->loop_name = "libuv";
		srv->uv_like = true;
		break;
	case QC_LOOP_POLL:
	use_poll:
		srv->ctx = create_context(srv, protocols, &retry, 0);
		srv->loop_name = "poll";
		srv->uv_like = false;
		break;
	case QC_LOOP_LIBEV:
		srv->ctx = create_context(srv, protocols, &retry, LWS_SERVER_OPTION_LIBEV);
		srv->loop_name = "libev";
		srv->uv_like = true;
		break;
	}
	if (!srv->ctx) {
		lwsl_err("quotecast: cannot start the server on %s:%u (event loop %s)\n",
		         cfg->listen_host, cfg->listen_port, srv->loop_name);
		status = 1;
		goto out;
	}
	qc_hub_set_event_loop(srv->hub, srv->loop_name);
	if (cfg->store_url[0] && start_store(srv)) {
		status = 1;
		goto out;
	}
	if (srv->cluster) {
		struct lws_vhost *vh = lws_get_vhost_by_name(srv->ctx, "default");

		if (!vh || qc_cluster_start(srv->cluster, srv->ctx, vh,
		                            (unsigned int)lws_get_vhost_listen_port(vh))) {
			lwsl_err("quotecast: cluster: cannot start\n");
			status = 1;
			goto out;
		}
	}
	/*
	 * libuv also watches SIGSEGV and SIGFPE; a watcher would turn a crash into a loop that
	 * re-faults forever. Put back what was there before (the default, or the sanitizer's).
	 */
	sigaction(SIGSEGV, &old_segv, NULL);
	sigaction(SIGFPE, &old_fpe, NULL);
	if (cfg->event_loop == QC_LOOP_LIBEV) {
		/* lws' libev glue watches SIGINT only: turn SIGTERM into SIGINT */
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = term_to_int;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGTERM, &sa, NULL);
	}
	if (!srv->uv_like) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_signal;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
	}
	signal(SIGPIPE, SIG_IGN);

	lwsl_user("quotecast %s listening on %s:%u (%s%s, event loop %s)\n", QC_VERSION,
	          cfg->listen_host, cfg->listen_port, cfg->tls_cert[0] ? "wss/https" : "ws/http",
	          "", srv->loop_name);
	if (!cfg->store_url[0])
		lwsl_warn(
		    "quotecast: store.url is empty: MEMORY ONLY, rooms, subscriptions, alerts "
		    "and offline messages do not survive a restart\n");
	if (cfg->auth_mode == QC_AUTH_NONE)
		lwsl_warn(
		    "quotecast: auth.mode is none: ANYONE CAN BE ANYONE (?user_id=, ?roles=)\n");

	if (sd_watchdog_enabled(0, &srv->watchdog_usec) > 0)
		lws_sul_schedule(srv->ctx, 0, &srv->sul_watchdog, watchdog_tick, 1);
	if (cfg->demo_feed.enabled) {
		if (qc_hub_demo_start(srv->hub)) {
			lwsl_err("quotecast: cannot start the demo feed\n");
			status = 1;
			goto out;
		}
		lwsl_user("quotecast: demo feed on: %u ticks/s over %zu symbols\n",
		          cfg->demo_feed.rate_per_s, cfg->demo_feed.nsymbols);
		lws_sul_schedule(srv->ctx, 0, &srv->sul_demo, demo_tick, 1);
	}
	lws_sul_schedule(srv->ctx, 0, &srv->sul_expire, expire_tick, LWS_US_PER_SEC);
	sd_notify(0, "READY=1");

	while (n >= 0 && !srv->done) {
		n = lws_service(srv->ctx, 0);
		if (signalled && !srv->stopping)
			qc_server_begin_stop(srv);
	}
out:
	/* its timers live in the context: cancelled before it goes (finish() may not have run) */
	qc_cluster_stop(srv->cluster);
	if (srv->ctx)
		lws_context_destroy(srv->ctx);
	the_server = NULL;
	qc_hub_free(srv->hub);
	qc_pg_free(srv->pg);
	qc_cluster_free(srv->cluster);
	qc_http_free(srv);
	qc_webfiles_free(&srv->web);
	qc_tally_free(&srv->http_by_ip);
	qc_tally_free(&srv->by_ip);
	qc_tally_free(&srv->by_user);
	free(srv);
	return status;
}
