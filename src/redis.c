/*
 * redis: a hiredis async context driven by the lws loop (redis.h says how). This file owns the
 * connection's life: connect, the adopted dup() of its socket, the FIFO of commands waiting for
 * their answers (with the time each was sent), the answer timeout, idle PINGs and the
 * reconnect back-off. Nothing here blocks: hiredis connects non-blockingly to an address
 * literal, reads and writes only when lws says the socket is ready.
 */
#include "quotecast/redis.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/async.h>

#include "quotecast/shard.h"

#define TICK_US      (100 * LWS_US_PER_MS)
#define IDLE_PING_MS 1000

enum lstate {
	L_DOWN,       /* no connection; sul_conn will make one */
	L_CONNECTING, /* TCP connect or the first PING under way */
	L_UP,
};

struct waiting {
	qc_redis_reply_fn fn;
	void *ud;
	int64_t sent_ms;
};

struct qc_redis {
	char *ip, *name;
	uint16_t port;
	uint32_t max_inflight, timeout_ms;
	qc_redis_state_fn on_state;
	qc_redis_message_fn on_message;
	void *ud;

	struct lws_context *ctx;
	struct lws_vhost *vh;
	redisAsyncContext *ac;
	struct lws *wsi;    /* the adopted dup() of ac->c.fd; NULL when there is none */
	struct lws *cb_wsi; /* the wsi whose callback runs now, if any */
	bool close_cb_wsi;  /* close cb_wsi when its callback returns */
	bool in_writeable;
	bool stopped;
	bool drop_pending;
	const char *drop_why;
	enum lstate state;
	int64_t conn_start_ms, last_send_ms; /* the link's clock (link_ms) */
	int64_t last_tick_ms, held_ms;       /* tick_cb's last run, the loop's hold-ups (mono) */
	uint32_t backoff_step_ms;
	bool ever_up, down_logged;

	struct waiting *fifo; /* ring of max_inflight, oldest at head */
	uint32_t head, count;

	struct qc_redis_stats st;
	lws_sorted_usec_list_t sul_conn, sul_tick, sul_kick;
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * The link's clock: the monotonic clock less the time this node's loop was held up (tick_cb
 * ran late: a long pass, a SIGSTOP, a starved core). Answers are timed on it, so Redis is judged
 * on the time the node gave it: a command queued just before a hold-up, and written or answered
 * only after it, is not late.
 */
static int64_t link_ms(const struct qc_redis *l)
{
	return mono_ms() - l->held_ms;
}

static void conn_cb(lws_sorted_usec_list_t *sul);
static void kick_cb(lws_sorted_usec_list_t *sul);

static void close_wsi(struct qc_redis *l, struct lws *wsi)
{
	/* a wsi cannot be closed from inside its own callback except by returning -1 from it */
	if (wsi == l->cb_wsi)
		l->close_cb_wsi = true;
	else
		lws_set_timeout(wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
}

static void schedule_connect(struct qc_redis *l)
{
	uint32_t wait_ms;

	if (l->stopped)
		return;
	l->backoff_step_ms = qc_backoff_next(l->backoff_step_ms, (uint32_t)rand(), &wait_ms);
	lws_sul_schedule(l->ctx, 0, &l->sul_conn, conn_cb, (lws_usec_t)wait_ms * LWS_US_PER_MS);
}

/* hiredis' event hooks: lws always watches a raw file for reading; writes are asked for */
static void ev_add_read(void *p)
{
	(void)p;
}

static void ev_del_read(void *p)
{
	(void)p;
}

static void ev_add_write(void *p)
{
	struct qc_redis *l = p;

	if (!l->wsi)
		return;
	/* the raw-file role clears POLLOUT after its WRITEABLE callback: ask again from a sul */
	if (l->in_writeable)
		lws_sul_schedule(l->ctx, 0, &l->sul_kick, kick_cb, 1);
	else
		lws_callback_on_writable(l->wsi);
}

static void ev_del_write(void *p)
{
	(void)p;
}

/* hiredis is freeing the context (its own error, or redisAsyncFree): the connection is gone */
static void ev_cleanup(void *p)
{
	struct qc_redis *l = p;
	bool was_up = l->state == L_UP;

	l->ac = NULL;
	if (l->wsi) {
		close_wsi(l, l->wsi);
		l->wsi = NULL;
	}
	l->state = L_DOWN;
	if (!l->down_logged && !l->stopped)
		lwsl_warn("redis %s: connection lost%s%s: reconnecting with back-off\n", l->name,
		          l->drop_why ? ": " : "", l->drop_why ? l->drop_why : "");
	l->down_logged = true;
	l->drop_why = NULL;
	schedule_connect(l);
	if (was_up && l->on_state)
		l->on_state(l->ud, false);
}

/* Every answer of a command link, in order: the oldest waiting command's. */
static void reply_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct qc_redis *l = privdata;
	struct waiting w;

	(void)ac;
	if (!l->count)
		return; /* cannot happen: one entry per command sent */
	w = l->fifo[l->head];
	l->head = (l->head + 1) % l->max_inflight;
	l->count--;
	if (!reply)
		l->st.failed++;
	if (w.fn)
		w.fn(w.ud, reply);
}

static void sub_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct qc_redis *l = privdata;
	const redisReply *r = reply;

	(void)ac;
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
	    r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "message"))
		return;
	if (r->element[1]->type != REDIS_REPLY_STRING || r->element[2]->type != REDIS_REPLY_STRING)
		return;
	l->on_message(l->ud, r->element[1]->str, r->element[1]->len, r->element[2]->str,
	              r->element[2]->len);
}

static int send_cmd(struct qc_redis *l, qc_redis_reply_fn fn, void *ud, int argc, const char **argv,
                    const size_t *lens)
{
	struct waiting *w;

	if (!l->ac || l->drop_pending)
		return -ENOTCONN;
	if (l->count >= l->max_inflight)
		return -ENOSPC;
	if (redisAsyncCommandArgv(l->ac, reply_cb, l, argc, argv, lens) != REDIS_OK)
		return -ENOTCONN;
	w = &l->fifo[(l->head + l->count) % l->max_inflight];
	w->fn = fn;
	w->ud = ud;
	w->sent_ms = link_ms(l);
	l->last_send_ms = w->sent_ms;
	l->count++;
	l->st.sent++;
	return 0;
}

static void free_ac(struct qc_redis *l)
{
	redisAsyncContext *ac = l->ac;

	if (!ac)
		return;
	/* the waiting callbacks get NULL, then ev_cleanup */
	l->drop_pending = true;
	redisAsyncFree(ac);
	l->drop_pending = false;
}

void qc_redis_drop(struct qc_redis *l, const char *why)
{
	if (!l->ac)
		return;
	if (!l->drop_why)
		l->drop_why = why;
	/* never free the context from inside one of its callbacks: from a sul */
	l->drop_pending = true;
	lws_sul_schedule(l->ctx, 0, &l->sul_kick, kick_cb, 1);
}

static void first_pong(void *ud, const redisReply *r)
{
	struct qc_redis *l = ud;

	if (!r || l->state != L_CONNECTING)
		return;
	if (r->type == REDIS_REPLY_ERROR) {
		lwsl_warn("redis %s: PING answered %s\n", l->name, r->str);
		qc_redis_drop(l, "PING refused");
		return;
	}
	l->state = L_UP;
	l->backoff_step_ms = 0;
	l->down_logged = false;
	if (l->ever_up)
		l->st.reconnects++;
	l->ever_up = true;
	lwsl_notice("redis %s: connected\n", l->name);
	if (l->on_state)
		l->on_state(l->ud, true);
}

static void connect_cb(const redisAsyncContext *ac, int status)
{
	struct qc_redis *l = ac->ev.data;
	static const char *ping[] = {"PING"};

	if (status != REDIS_OK)
		return; /* hiredis frees the context next: ev_cleanup */
	if (send_cmd(l, first_pong, l, 1, ping, NULL))
		qc_redis_drop(l, "cannot send PING");
}

static int adopt(struct qc_redis *l)
{
	lws_adopt_desc_t info;
	struct lws *wsi;
	int fd;

	fd = fcntl(l->ac->c.fd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return -1;
	memset(&info, 0, sizeof(info));
	info.vh = l->vh;
	info.type = LWS_ADOPT_RAW_FILE_DESC;
	info.fd.filefd = fd;
	info.vh_prot_name = qc_redis_protocol.name;
	info.opaque = l;
	wsi = lws_adopt_descriptor_vhost_via_info(&info);
	if (!wsi) {
		/* lws does not close a non-socket descriptor it failed to adopt */
		close(fd);
		return -1;
	}
	l->wsi = wsi;
	return 0;
}

static void conn_cb(lws_sorted_usec_list_t *sul)
{
	struct qc_redis *l = lws_container_of(sul, struct qc_redis, sul_conn);
	redisAsyncContext *ac;

	if (l->stopped || l->ac)
		return;
	ac = redisAsyncConnect(l->ip, l->port);
	if (!ac || ac->err) {
		if (!l->down_logged)
			lwsl_warn("redis %s: cannot connect: %s\n", l->name,
			          ac ? ac->errstr : "out of memory");
		l->down_logged = true;
		if (ac)
			redisAsyncFree(ac);
		schedule_connect(l);
		return;
	}
	l->ac = ac;
	l->state = L_CONNECTING;
	l->conn_start_ms = link_ms(l);
	if (adopt(l)) {
		lwsl_err("redis %s: the event loop did not adopt the connection\n", l->name);
		l->ac = NULL;
		redisAsyncFree(ac);
		l->state = L_DOWN;
		schedule_connect(l);
		return;
	}
	ac->ev.data = l;
	ac->ev.addRead = ev_add_read;
	ac->ev.delRead = ev_del_read;
	ac->ev.addWrite = ev_add_write;
	ac->ev.delWrite = ev_del_write;
	ac->ev.cleanup = ev_cleanup;
	/* hiredis asks for writability here: the connect completes with the first write event */
	redisAsyncSetConnectCallback(ac, connect_cb);
}

static void kick_cb(lws_sorted_usec_list_t *sul)
{
	struct qc_redis *l = lws_container_of(sul, struct qc_redis, sul_kick);

	if (l->drop_pending) {
		l->drop_pending = false;
		free_ac(l);
		return;
	}
	if (l->wsi)
		lws_callback_on_writable(l->wsi);
}

static void idle_pong(void *ud, const redisReply *r)
{
	(void)ud;
	(void)r;
}

/*
 * Whether Redis has sent something this link has not read yet. A loop busy for longer than
 * cluster.timeout_ms (a heavy fan-out) can come to this timer before it reads an answer that
 * arrived in time: that is a busy node, not a stalled Redis, and dropping the link would only
 * add a reconnect to the load. poll() with no wait does not block the loop.
 */
static bool answer_waiting(const struct qc_redis *l)
{
	struct pollfd p = {.fd = l->ac->c.fd, .events = POLLIN};

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static void tick_cb(lws_sorted_usec_list_t *sul)
{
	struct qc_redis *l = lws_container_of(sul, struct qc_redis, sul_tick);
	static const char *ping[] = {"PING"};
	int64_t mono = mono_ms(), now;

	if (l->stopped)
		return;
	if (l->last_tick_ms && mono - l->last_tick_ms > TICK_US / LWS_US_PER_MS)
		l->held_ms += mono - l->last_tick_ms - TICK_US / LWS_US_PER_MS;
	l->last_tick_ms = mono;
	now = mono - l->held_ms;
	if (l->state == L_CONNECTING && now - l->conn_start_ms > l->timeout_ms) {
		l->st.timeouts++;
		l->drop_why = "connect timed out";
		free_ac(l);
	} else if (l->state == L_UP && l->count && now - l->fifo[l->head].sent_ms > l->timeout_ms &&
	           !answer_waiting(l)) {
		l->st.timeouts++;
		l->drop_why = "no answer within cluster.timeout_ms";
		free_ac(l);
	} else if (l->state == L_UP && !l->on_message && !l->count &&
	           now - l->last_send_ms >= IDLE_PING_MS) {
		send_cmd(l, idle_pong, NULL, 1, ping, NULL);
	}
	lws_sul_schedule(l->ctx, 0, &l->sul_tick, tick_cb, TICK_US);
}

static int on_io(struct qc_redis *l, struct lws *wsi, bool writeable)
{
	struct lws *outer = l->cb_wsi;
	bool outer_close = l->close_cb_wsi;
	int n;

	l->cb_wsi = wsi;
	l->close_cb_wsi = false;
	if (writeable) {
		l->in_writeable = true;
		redisAsyncHandleWrite(l->ac);
		l->in_writeable = false;
	} else {
		redisAsyncHandleRead(l->ac);
	}
	n = l->close_cb_wsi ? -1 : 0;
	l->cb_wsi = outer;
	l->close_cb_wsi = outer_close;
	return n;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
	struct qc_redis *l;

	(void)user;
	(void)in;
	(void)len;
	switch (reason) {
	case LWS_CALLBACK_RAW_RX_FILE:
	case LWS_CALLBACK_RAW_WRITEABLE_FILE:
		l = lws_get_opaque_user_data(wsi);
		if (!l || wsi != l->wsi || !l->ac)
			return -1; /* a connection already given up */
		return on_io(l, wsi, reason == LWS_CALLBACK_RAW_WRITEABLE_FILE);
	case LWS_CALLBACK_RAW_CLOSE_FILE:
		l = lws_get_opaque_user_data(wsi);
		/* an old wsi closing after a reconnect must not touch the new connection */
		if (l && wsi == l->wsi) {
			l->wsi = NULL;
			qc_redis_drop(l, "the socket was closed");
		}
		return 0;
	default:
		return 0;
	}
}

const struct lws_protocols qc_redis_protocol = {
    .name = "quotecast-redis",
    .callback = callback,
};

struct qc_redis *qc_redis_new(const struct qc_redis_opts *o)
{
	struct qc_redis *l;

	l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->ip = strdup(o->ip);
	l->name = strdup(o->name ? o->name : o->ip);
	l->max_inflight = o->max_inflight ? o->max_inflight : 1;
	l->fifo = calloc(l->max_inflight, sizeof(*l->fifo));
	if (!l->ip || !l->name || !l->fifo)
		goto fail_free;
	l->port = o->port;
	l->timeout_ms = o->timeout_ms;
	l->on_state = o->on_state;
	l->on_message = o->on_message;
	l->ud = o->ud;
	return l;

fail_free:
	free(l->fifo);
	free(l->name);
	free(l->ip);
	free(l);
	return NULL;
}

int qc_redis_start(struct qc_redis *l, struct lws_context *ctx, struct lws_vhost *vh)
{
	l->vh = vh;
	l->ctx = ctx;
	lws_sul_schedule(l->ctx, 0, &l->sul_conn, conn_cb, 1);
	lws_sul_schedule(l->ctx, 0, &l->sul_tick, tick_cb, TICK_US);
	return 0;
}

void qc_redis_stop(struct qc_redis *l)
{
	if (!l || l->stopped)
		return;
	l->stopped = true;
	if (l->ctx) {
		lws_sul_cancel(&l->sul_conn);
		lws_sul_cancel(&l->sul_tick);
		lws_sul_cancel(&l->sul_kick);
	}
	free_ac(l);
}

void qc_redis_free(struct qc_redis *l)
{
	if (!l)
		return;
	qc_redis_stop(l);
	free(l->fifo);
	free(l->name);
	free(l->ip);
	free(l);
}

bool qc_redis_up(const struct qc_redis *l)
{
	return l->state == L_UP && !l->drop_pending;
}

int qc_redis_cmd(struct qc_redis *l, qc_redis_reply_fn fn, void *ud, int argc, const char **argv,
                 const size_t *lens)
{
	if (!qc_redis_up(l))
		return -ENOTCONN;
	return send_cmd(l, fn, ud, argc, argv, lens);
}

int qc_redis_subscribe(struct qc_redis *l, const char *chan, bool on)
{
	if (!qc_redis_up(l) || !l->on_message)
		return -ENOTCONN;
	if (redisAsyncCommand(l->ac, on ? sub_cb : NULL, l, on ? "SUBSCRIBE %s" : "UNSUBSCRIBE %s",
	                      chan) != REDIS_OK)
		return -ENOTCONN;
	l->st.sent++;
	return 0;
}

void qc_redis_stats(const struct qc_redis *l, struct qc_redis_stats *st)
{
	*st = l->st;
	st->up = qc_redis_up(l);
	st->inflight = l->count;
}
