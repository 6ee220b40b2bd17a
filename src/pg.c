/*
 * pg: owns the PostgreSQL connection, the FIFO of statements waiting for it, the FIFO of
 * statements in flight, and the timers that fail late statements and reconnect.
 *
 * Start-up is plain blocking libpq (connect, migrate, load). After qc_pg_go_async() libpq is
 * only used in non-blocking pipeline mode: a dup() of its socket is adopted into the lws loop
 * as a raw file, so lws says when to read (PQconsumeInput) and when to write again (PQflush)
 * and libpq does the I/O itself. Up to PIPELINE_MAX statements are in flight, each sent with
 * its own Sync, so each is its own implicit transaction and a failing one does not abort the
 * next. Results are matched to the in-flight FIFO: a statement owns every result up to and
 * including the next PGRES_PIPELINE_SYNC (the server's ReadyForQuery, after its commit), and
 * its callback runs only then, so a success means committed. New statements join the pipeline
 * only while the server keeps answering (nothing in flight, or the oldest sent less than
 * PIPELINE_WAIT_US ago): when it stops, those behind wait in the queue, where they can time out.
 * A 100 ms sul tick fails statements that waited in the queue past timeout_ms; another sul
 * drives reconnection (PQconnectStartParams, then PQconnectPoll whenever poll() with a zero
 * timeout says the socket is ready, so that libpq never waits) and the back-off between
 * attempts. lws closes what it adopts, libpq closes its own socket: they never share an fd.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "quotecast/pg.h"

#define TICK_US            (100 * LWS_US_PER_MS)
#define CONNECT_POLL_US    (20 * LWS_US_PER_MS)
#define CONNECT_GIVE_UP_US (5 * LWS_US_PER_SEC)
#define CONNECT_POLL_STEPS 8
#define BACKOFF_MIN_MS     100
#define BACKOFF_MAX_MS     5000
#define PIPELINE_MAX       64
#define PIPELINE_WAIT_US   (50 * LWS_US_PER_MS)
/* pg_advisory_xact_lock key for migrations: "quotecas" as a big-endian int64 */
#define MIGRATION_LOCK_SQL "SELECT pg_advisory_xact_lock(8175563244268904819)"

#define MSG_LOST     "store connection lost"
#define MSG_TIMEOUT  "store did not answer in time"
#define MSG_STOPPED  "store is shutting down"
#define MSG_EXISTS   "already exists"
#define MSG_NOREF    "a referenced row does not exist"
#define MSG_SQL      "store statement failed"
#define MSG_BADREPLY "store answer could not be read"
#define MSG_DESYNC   "store answers out of step with the statements sent"

enum pg_state {
	PG_NEW,        /* qc_pg_start() not done (or failed) */
	PG_SYNC,       /* connected and blocking, before qc_pg_go_async() */
	PG_CONNECTED,  /* on the loop */
	PG_CONNECTING, /* a reconnect attempt is under way */
	PG_DOWN,       /* waiting for the next attempt */
	PG_STOPPED,
};

struct stmt {
	struct stmt *next;
	qc_store_cb cb;
	void *arg;
	lws_usec_t queued_at;
	lws_usec_t sent_at;
	int nparams;
	bool send_failed;    /* libpq refused it: answered INTERNAL in its turn, no results */
	const char *sql;     /* in the same allocation */
	const char **params; /* idem; NULL entries are SQL NULL */
};

/* A FIFO of statements: appended at the tail, taken from the head. */
struct stmt_list {
	struct stmt *head;
	struct stmt **tailp;
	uint32_t n;
};

struct qc_pg {
	char *url;
	uint32_t max_pending;
	uint32_t timeout_ms;
	enum pg_state state;
	PGconn *conn;

	struct lws_context *ctx;
	struct lws_vhost *vh;
	struct lws *wsi;        /* the adopted dup() of PQsocket(); NULL when there is none */
	struct lws *cb_wsi;     /* the wsi whose lws callback we are inside, if any */
	bool close_cb_wsi;      /* ... and that callback must return -1 */
	bool in_writeable;      /* inside its LWS_CALLBACK_RAW_WRITEABLE_FILE */
	bool rearm_write;       /* PQflush() has more to send: ask for POLLOUT from kick_cb */
	struct qc_pg **vh_slot; /* the vhost's pointer to us, for LWS_CALLBACK_PROTOCOL_DESTROY */

	struct stmt_list queued; /* not sent yet */
	struct stmt_list sent;   /* in flight, oldest first; results go to the head */
	enum qc_err res_err;     /* the outcome of the oldest statement in flight so far */
	const char *res_msg;
	json_t *res_rows;
	bool null_seen; /* the last PQgetResult() returned NULL */
	bool overdue_logged;

	lws_sorted_usec_list_t sul_kick;
	lws_sorted_usec_list_t sul_tick;
	lws_sorted_usec_list_t sul_conn;
	bool tick_armed;
	uint32_t backoff_ms;
	lws_usec_t attempt_started;
	PostgresPollingStatusType want;
	bool attempt_logged;

	uint64_t failed;
	struct qc_histo lat; /* submit to answer of each statement the server answered */
};

static void lost(struct qc_pg *pg, const char *why);
static void conn_cb(lws_sorted_usec_list_t *sul);

/* The first line of a libpq message, for logs and operator messages. */
static const char *oneline(const char *s, char *buf, size_t len)
{
	size_t n;

	if (!s)
		s = "";
	n = strcspn(s, "\n");
	if (n >= len)
		n = len - 1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return buf;
}

static int trimmed_len(const char *s)
{
	size_t n = strlen(s);

	while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
		n--;
	return (int)n;
}

/* Server notices: "relation already exists, skipping" is noise, a WARNING is not. */
static void notice(void *arg, const PGresult *r)
{
	const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *msg = PQresultErrorMessage(r);

	(void)arg;
	if (sev && !strcmp(sev, "WARNING"))
		lwsl_warn("store: %.*s\n", trimmed_len(msg), msg);
	else
		lwsl_info("store: %.*s\n", trimmed_len(msg), msg);
}

/*
 * Keywords for both connects. application_name and gssencmode come before the URL so that the
 * URL can override them (gssencmode=prefer would read Kerberos files on every reconnect, on
 * the loop); client_encoding after it, because rows become JSON strings and must be UTF-8.
 */
static PGconn *connect_params(const char *url, const char *timeout_s, bool blocking)
{
	const char *const kw[] = {"application_name", "gssencmode",      "dbname",
	                          "client_encoding",  "connect_timeout", NULL};
	const char *const val[] = {"quotecast", "disable", url, "UTF8", timeout_s, NULL};
	PGconn *c;

	c = blocking ? PQconnectdbParams(kw, val, 1) : PQconnectStartParams(kw, val, 1);
	if (c)
		PQsetNoticeReceiver(c, notice, NULL);
	return c;
}

static json_t *result_rows(const PGresult *r)
{
	int nrows = PQntuples(r), ncols = PQnfields(r), i, j;
	json_t *rows, *row, *v;

	rows = json_array();
	if (!rows)
		return NULL;
	for (i = 0; i < nrows; i++) {
		row = json_array();
		if (json_array_append_new(rows, row))
			goto fail;
		for (j = 0; j < ncols; j++) {
			if (PQgetisnull(r, i, j))
				v = json_null();
			else
				v = json_stringn(PQgetvalue(r, i, j), (size_t)PQgetlength(r, i, j));
			if (json_array_append_new(row, v))
				goto fail;
		}
	}
	return rows;

fail:
	json_decref(rows);
	return NULL;
}

static struct stmt *stmt_new(const char *sql, int nparams, const char *const *params)
{
	size_t size, sqllen = strlen(sql) + 1, len;
	struct stmt *s;
	char *p;
	int i;

	size = sizeof(*s) + (size_t)nparams * sizeof(char *) + sqllen;
	for (i = 0; i < nparams; i++)
		if (params[i])
			size += strlen(params[i]) + 1;
	s = malloc(size);
	if (!s)
		return NULL;
	memset(s, 0, sizeof(*s));
	s->nparams = nparams;
	s->params = nparams ? (const char **)(s + 1) : NULL;
	p = (char *)((const char **)(s + 1) + nparams);
	memcpy(p, sql, sqllen);
	s->sql = p;
	p += sqllen;
	for (i = 0; i < nparams; i++) {
		if (!params[i]) {
			s->params[i] = NULL;
			continue;
		}
		len = strlen(params[i]) + 1;
		memcpy(p, params[i], len);
		s->params[i] = p;
		p += len;
	}
	return s;
}

/* Runs the statement's callback and frees it. The callback may submit (or stop). */
static void answer(struct qc_pg *pg, struct stmt *s, enum qc_err err, const char *msg, json_t *rows)
{
	if (err != QC_OK)
		pg->failed++;
	s->cb(s->arg, err, err == QC_OK ? NULL : msg, err == QC_OK ? rows : NULL);
	free(s);
}

static void list_init(struct stmt_list *l)
{
	l->head = NULL;
	l->tailp = &l->head;
	l->n = 0;
}

static void list_push(struct stmt_list *l, struct stmt *s)
{
	s->next = NULL;
	*l->tailp = s;
	l->tailp = &s->next;
	l->n++;
}

static struct stmt *list_pop(struct stmt_list *l)
{
	struct stmt *s = l->head;

	l->head = s->next;
	if (!l->head)
		l->tailp = &l->head;
	l->n--;
	s->next = NULL;
	return s;
}

static void reset_result(struct qc_pg *pg)
{
	json_decref(pg->res_rows);
	pg->res_rows = NULL;
	pg->res_err = QC_OK;
	pg->res_msg = NULL;
	pg->null_seen = false;
}

static void answer_list(struct qc_pg *pg, struct stmt *list, const char *msg)
{
	struct stmt *next;

	for (; list; list = next) {
		next = list->next;
		answer(pg, list, QC_E_UNAVAILABLE, msg, NULL);
	}
}

/* The state is no longer PG_CONNECTED: callbacks that submit get -ENOTCONN. */
static void fail_all(struct qc_pg *pg, const char *msg)
{
	struct stmt *sent = pg->sent.head, *queued = pg->queued.head;

	list_init(&pg->sent);
	list_init(&pg->queued);
	pg->overdue_logged = false;
	reset_result(pg);
	/* in submission order: those sent came first */
	answer_list(pg, sent, msg);
	answer_list(pg, queued, msg);
}

/* A wsi cannot be closed from inside its own callback except by returning -1 from it. */
static void close_wsi(struct qc_pg *pg, struct lws *wsi)
{
	if (wsi == pg->cb_wsi)
		pg->close_cb_wsi = true;
	else
		lws_set_timeout(wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
}

static void arm_tick(struct qc_pg *pg);
static void kick_cb(lws_sorted_usec_list_t *sul);

/*
 * PQflush() left data unsent. The raw-file role clears POLLOUT after the WRITEABLE callback
 * returns, which would undo a request made inside it: from there, ask again from a sul.
 */
static void want_write(struct qc_pg *pg)
{
	if (pg->in_writeable) {
		pg->rearm_write = true;
		lws_sul_schedule(pg->ctx, 0, &pg->sul_kick, kick_cb, 1);
	} else {
		lws_callback_on_writable(pg->wsi);
	}
}

static void tick_cb(lws_sorted_usec_list_t *sul)
{
	struct qc_pg *pg = lws_container_of(sul, struct qc_pg, sul_tick);
	lws_usec_t now = lws_now_usecs(), limit = (lws_usec_t)pg->timeout_ms * LWS_US_PER_MS;
	uint32_t n = 0;

	pg->tick_armed = false;
	/* FIFO: the oldest are at the head */
	while (pg->state == PG_CONNECTED && pg->queued.head &&
	       now - pg->queued.head->queued_at >= limit) {
		answer(pg, list_pop(&pg->queued), QC_E_UNAVAILABLE, MSG_TIMEOUT, NULL);
		n++;
	}
	if (pg->state != PG_CONNECTED)
		return;
	if (!pg->overdue_logged &&
	    (n || (pg->sent.head && now - pg->sent.head->sent_at >= limit))) {
		lwsl_warn("store: no answer for over %u ms: statements waiting longer fail "
		          "(%u failed now, %u queued)\n",
		          pg->timeout_ms, n, pg->queued.n);
		pg->overdue_logged = true;
	}
	arm_tick(pg);
}

static void arm_tick(struct qc_pg *pg)
{
	if (pg->tick_armed || !pg->timeout_ms || pg->state != PG_CONNECTED ||
	    (!pg->queued.head && !pg->sent.head))
		return;
	pg->tick_armed = true;
	lws_sul_schedule(pg->ctx, 0, &pg->sul_tick, tick_cb, TICK_US);
}

static void schedule_attempt(struct qc_pg *pg)
{
	if (!pg->backoff_ms)
		pg->backoff_ms = BACKOFF_MIN_MS;
	else if (pg->backoff_ms < BACKOFF_MAX_MS / 2)
		pg->backoff_ms *= 2;
	else
		pg->backoff_ms = BACKOFF_MAX_MS;
	lws_sul_schedule(pg->ctx, 0, &pg->sul_conn, conn_cb,
	                 (lws_usec_t)pg->backoff_ms * LWS_US_PER_MS);
}

/*
 * The connection is gone or unusable: close it, fail everything with UNAVAILABLE (an in-flight
 * statement's outcome is unknown) and reconnect with back-off.
 */
static void lost(struct qc_pg *pg, const char *why)
{
	struct lws *wsi = pg->wsi;
	char line[256];

	if (pg->state != PG_CONNECTED)
		return;
	oneline(why, line, sizeof(line));
	lwsl_warn("store: connection lost (%s): failing %u statement(s), reconnecting\n", line,
	          pg->queued.n + pg->sent.n);
	pg->state = PG_DOWN;
	pg->wsi = NULL;
	if (wsi)
		close_wsi(pg, wsi);
	PQfinish(pg->conn);
	pg->conn = NULL;
	lws_sul_cancel(&pg->sul_kick);
	lws_sul_cancel(&pg->sul_tick);
	pg->tick_armed = false;
	pg->rearm_write = false;
	pg->backoff_ms = 0;
	pg->attempt_logged = false;
	schedule_attempt(pg);
	fail_all(pg, MSG_LOST);
}

/* An error result. Returns true when it says the connection is going away. */
static bool collect_error(struct qc_pg *pg, const PGresult *r)
{
	const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *msg = PQresultErrorMessage(r);

	if (PQstatus(pg->conn) != CONNECTION_OK)
		return true;
	/* FATAL: the server ends the session; 08: connection exception; 57P0x: shutting down */
	if (sev && (!strcmp(sev, "FATAL") || !strcmp(sev, "PANIC")))
		return true;
	if (code && (!strncmp(code, "08", 2) || !strncmp(code, "57P0", 4)))
		return true;
	if (pg->res_err != QC_OK)
		return false;
	json_decref(pg->res_rows);
	pg->res_rows = NULL;
	if (code && !strcmp(code, "23505")) {
		pg->res_err = QC_E_ALREADY_EXISTS;
		pg->res_msg = MSG_EXISTS;
	} else if (code && !strcmp(code, "23503")) {
		pg->res_err = QC_E_NOT_FOUND;
		pg->res_msg = MSG_NOREF;
	} else {
		lwsl_err("store: statement failed: %.*s\n", trimmed_len(msg), msg);
		pg->res_err = QC_E_INTERNAL;
		pg->res_msg = MSG_SQL;
	}
	return false;
}

/*
 * One result of the oldest statement in flight (before its PGRES_PIPELINE_SYNC). Returns true
 * when the connection must be dropped.
 */
static bool collect(struct qc_pg *pg, const PGresult *r)
{
	switch (PQresultStatus(r)) {
	case PGRES_TUPLES_OK:
	case PGRES_SINGLE_TUPLE:
		if (pg->res_err != QC_OK)
			return false;
		json_decref(pg->res_rows);
		pg->res_rows = result_rows(r);
		if (!pg->res_rows) {
			lwsl_err("store: a result could not be turned into JSON\n");
			pg->res_err = QC_E_INTERNAL;
			pg->res_msg = MSG_BADREPLY;
		}
		return false;
	case PGRES_COMMAND_OK:
	case PGRES_EMPTY_QUERY:
		return false;
	case PGRES_PIPELINE_ABORTED:
		/* an error earlier before the same Sync: cannot happen with a Sync per statement */
		if (pg->res_err == QC_OK) {
			lwsl_err("store: a statement was skipped in an aborted pipeline\n");
			json_decref(pg->res_rows);
			pg->res_rows = NULL;
			pg->res_err = QC_E_INTERNAL;
			pg->res_msg = MSG_SQL;
		}
		return false;
	case PGRES_COPY_IN:
	case PGRES_COPY_OUT:
	case PGRES_COPY_BOTH:
		/* the protocol is now in a state we never drive: start afresh */
		lwsl_err("store: COPY statements are not supported\n");
		return true;
	default:
		return collect_error(pg, r);
	}
}

/* Answers the oldest statement in flight with what was collected for it. */
static void complete(struct qc_pg *pg)
{
	struct stmt *s = list_pop(&pg->sent);
	enum qc_err err = pg->res_err;
	const char *msg = pg->res_msg;
	json_t *rows = pg->res_rows;

	pg->res_rows = NULL;
	reset_result(pg);
	if (s->send_failed) {
		err = QC_E_INTERNAL;
		msg = MSG_SQL;
		json_decref(rows);
		rows = NULL;
	}
	qc_histo_observe(&pg->lat, lws_now_usecs() - s->queued_at);
	if (pg->overdue_logged) {
		lwsl_user("store: answering again\n");
		pg->overdue_logged = false;
	}
	if (err == QC_OK && !rows) {
		rows = json_array();
		if (!rows) {
			err = QC_E_INTERNAL;
			msg = MSG_BADREPLY;
		}
	}
	answer(pg, s, err, msg, rows);
	json_decref(rows);
}

/*
 * Sends the head of the queue with a Sync of its own. Returns false when the connection was
 * lost (the statement is answered with the rest).
 */
static bool send_head(struct qc_pg *pg, lws_usec_t now)
{
	struct stmt *s = list_pop(&pg->queued);

	s->sent_at = now;
	list_push(&pg->sent, s);
	if (!PQsendQueryParams(pg->conn, s->sql, s->nparams, NULL, s->params, NULL, NULL, 0)) {
		if (PQstatus(pg->conn) != CONNECTION_OK) {
			lost(pg, PQerrorMessage(pg->conn));
			return false;
		}
		/* nothing reaches the server: answered in its turn, after those sent before it */
		lwsl_err("store: cannot send a statement: %.*s\n",
		         trimmed_len(PQerrorMessage(pg->conn)), PQerrorMessage(pg->conn));
		s->send_failed = true;
		return true;
	}
	/* without its Sync the next statement would join its transaction: start afresh */
	if (!PQpipelineSync(pg->conn)) {
		lost(pg, PQerrorMessage(pg->conn));
		return false;
	}
	return true;
}

/*
 * Moves queued statements into the pipeline while the server keeps answering. Returns false
 * when the connection was lost.
 */
static bool fill(struct qc_pg *pg)
{
	lws_usec_t now = lws_now_usecs();
	bool sent = false;
	int n;

	while (pg->queued.head && pg->sent.n < PIPELINE_MAX &&
	       (!pg->sent.head || now - pg->sent.head->sent_at < PIPELINE_WAIT_US)) {
		if (!send_head(pg, now))
			return false;
		sent = true;
	}
	if (!sent)
		return true;
	n = PQflush(pg->conn);
	if (n < 0) {
		lost(pg, PQerrorMessage(pg->conn));
		return false;
	}
	if (n > 0)
		want_write(pg);
	arm_tick(pg);
	return true;
}

/*
 * Fills the pipeline and collects what libpq has buffered for the statements in flight.
 * Callbacks run from here may submit (queued, sent by this loop) or stop (the state changes
 * and the loop ends).
 */
static void service(struct qc_pg *pg)
{
	PGresult *r;
	bool bad;

	while (pg->state == PG_CONNECTED) {
		if (!fill(pg))
			return;
		if (!pg->sent.head)
			return;
		if (pg->sent.head->send_failed) {
			complete(pg);
			continue;
		}
		if (PQisBusy(pg->conn))
			return;
		r = PQgetResult(pg->conn);
		if (!r) {
			if (PQstatus(pg->conn) != CONNECTION_OK) {
				lost(pg, PQerrorMessage(pg->conn));
				return;
			}
			/*
			 * A NULL ends each statement's results, and is followed by more (its Sync
			 * at least). Two in a row: libpq has nothing queued that we wait for.
			 */
			if (pg->null_seen) {
				lost(pg, MSG_DESYNC);
				return;
			}
			pg->null_seen = true;
			continue;
		}
		pg->null_seen = false;
		if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
			PQclear(r);
			complete(pg);
			continue;
		}
		bad = collect(pg, r);
		PQclear(r);
		if (bad) {
			lost(pg, PQerrorMessage(pg->conn));
			return;
		}
	}
}

static void kick_cb(lws_sorted_usec_list_t *sul)
{
	struct qc_pg *pg = lws_container_of(sul, struct qc_pg, sul_kick);

	if (pg->rearm_write && pg->state == PG_CONNECTED)
		lws_callback_on_writable(pg->wsi);
	pg->rearm_write = false;
	service(pg);
}

static int adopt(struct qc_pg *pg)
{
	lws_adopt_desc_t info;
	struct lws *wsi;
	int fd;

	fd = fcntl(PQsocket(pg->conn), F_DUPFD_CLOEXEC, 3);
	if (fd < 0) {
		lwsl_err("store: dup of the connection's socket failed: %s\n", strerror(errno));
		return -1;
	}
	memset(&info, 0, sizeof(info));
	info.vh = pg->vh;
	info.type = LWS_ADOPT_RAW_FILE_DESC;
	info.fd.filefd = fd;
	info.vh_prot_name = qc_pg_protocol.name;
	info.opaque = pg;
	wsi = lws_adopt_descriptor_vhost_via_info(&info);
	if (!wsi) {
		/* lws does not close a non-socket descriptor it failed to adopt */
		close(fd);
		lwsl_err("store: the event loop did not adopt the connection\n");
		return -1;
	}
	pg->wsi = wsi;
	return 0;
}

static void attempt_failed(struct qc_pg *pg, const char *why)
{
	char line[256];

	oneline(why, line, sizeof(line));
	if (!pg->attempt_logged)
		lwsl_warn("store: reconnecting failed (%s): retrying with back-off\n", line);
	else
		lwsl_info("store: reconnecting failed (%s)\n", line);
	pg->attempt_logged = true;
	PQfinish(pg->conn);
	pg->conn = NULL;
	pg->state = PG_DOWN;
	schedule_attempt(pg);
}

static void attempt_succeeded(struct qc_pg *pg)
{
	if (PQsetnonblocking(pg->conn, 1) || !PQenterPipelineMode(pg->conn) || adopt(pg)) {
		attempt_failed(pg, "cannot put the connection on the event loop");
		return;
	}
	pg->state = PG_CONNECTED;
	pg->backoff_ms = 0;
	lwsl_user("store: reconnected\n");
	service(pg);
}

/*
 * PQconnectPoll() is only called when the socket is ready for what it last asked: called
 * early, libpq would take an unfinished TCP connect for done and then wait in send().
 */
static void poll_attempt(struct qc_pg *pg)
{
	struct pollfd pfd;
	int i, n;

	for (i = 0; i < CONNECT_POLL_STEPS; i++) {
		if (lws_now_usecs() - pg->attempt_started > CONNECT_GIVE_UP_US) {
			attempt_failed(pg, "no answer within 5 s");
			return;
		}
		pfd.fd = PQsocket(pg->conn);
		pfd.events = pg->want == PGRES_POLLING_READING ? POLLIN : POLLOUT;
		pfd.revents = 0;
		if (pfd.fd < 0) {
			attempt_failed(pg, PQerrorMessage(pg->conn));
			return;
		}
		n = poll(&pfd, 1, 0);
		if (n < 0 && errno != EINTR) {
			attempt_failed(pg, strerror(errno));
			return;
		}
		if (n <= 0)
			break;
		switch (PQconnectPoll(pg->conn)) {
		case PGRES_POLLING_OK:
			attempt_succeeded(pg);
			return;
		case PGRES_POLLING_FAILED:
			attempt_failed(pg, PQerrorMessage(pg->conn));
			return;
		case PGRES_POLLING_READING:
			pg->want = PGRES_POLLING_READING;
			break;
		default:
			pg->want = PGRES_POLLING_WRITING;
			break;
		}
	}
	lws_sul_schedule(pg->ctx, 0, &pg->sul_conn, conn_cb, CONNECT_POLL_US);
}

static void conn_cb(lws_sorted_usec_list_t *sul)
{
	struct qc_pg *pg = lws_container_of(sul, struct qc_pg, sul_conn);

	if (pg->state == PG_DOWN) {
		pg->conn = connect_params(pg->url, NULL, false);
		if (!pg->conn || PQstatus(pg->conn) == CONNECTION_BAD) {
			attempt_failed(pg, pg->conn ? PQerrorMessage(pg->conn) : "out of memory");
			return;
		}
		pg->state = PG_CONNECTING;
		pg->want = PGRES_POLLING_WRITING;
		pg->attempt_started = lws_now_usecs();
	}
	if (pg->state == PG_CONNECTING)
		poll_attempt(pg);
}

static int on_io(struct qc_pg *pg, struct lws *wsi, bool writeable)
{
	struct lws *outer = pg->cb_wsi;
	bool outer_close = pg->close_cb_wsi;
	PGnotify *nfy;
	int n;

	pg->cb_wsi = wsi;
	pg->close_cb_wsi = false;
	if (writeable) {
		pg->in_writeable = true;
		n = PQflush(pg->conn);
		if (n < 0) {
			lost(pg, PQerrorMessage(pg->conn));
		} else {
			if (n > 0)
				want_write(pg);
			/* a flush may have read input into libpq's buffer */
			service(pg);
		}
		pg->in_writeable = false;
	} else if (!PQconsumeInput(pg->conn)) {
		lost(pg, PQerrorMessage(pg->conn));
	} else {
		while ((nfy = PQnotifies(pg->conn)))
			PQfreemem(nfy);
		service(pg);
	}
	n = pg->close_cb_wsi ? -1 : 0;
	pg->cb_wsi = outer;
	pg->close_cb_wsi = outer_close;
	return n;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
	struct qc_pg *pg, **slot;

	(void)user;
	(void)in;
	(void)len;
	switch (reason) {
	case LWS_CALLBACK_PROTOCOL_DESTROY:
		/* the context is going away: its timers with it, so ours must be cancelled now */
		slot = lws_protocol_vh_priv_get(lws_get_vhost(wsi), lws_get_protocol(wsi));
		if (slot && *slot)
			qc_pg_stop(*slot);
		return 0;
	case LWS_CALLBACK_RAW_RX_FILE:
	case LWS_CALLBACK_RAW_WRITEABLE_FILE:
		pg = lws_get_opaque_user_data(wsi);
		if (!pg || wsi != pg->wsi)
			return -1; /* a connection already given up */
		return on_io(pg, wsi, reason == LWS_CALLBACK_RAW_WRITEABLE_FILE);
	case LWS_CALLBACK_RAW_CLOSE_FILE:
		pg = lws_get_opaque_user_data(wsi);
		/* an old wsi closing after a reconnect must not touch the new connection */
		if (pg && wsi == pg->wsi) {
			pg->wsi = NULL;
			lost(pg, "the socket was closed");
		}
		return 0;
	default:
		return 0;
	}
}

const struct lws_protocols qc_pg_protocol = {
    .name = "quotecast-pg",
    .callback = callback,
};

struct qc_pg *qc_pg_new(const char *url, uint32_t max_pending, uint32_t timeout_ms)
{
	struct qc_pg *pg;

	pg = calloc(1, sizeof(*pg));
	if (!pg)
		return NULL;
	pg->url = strdup(url ? url : "");
	if (!pg->url)
		goto fail_free;
	pg->max_pending = max_pending;
	pg->timeout_ms = timeout_ms;
	list_init(&pg->queued);
	list_init(&pg->sent);
	return pg;

fail_free:
	free(pg);
	return NULL;
}

void qc_pg_free(struct qc_pg *pg)
{
	if (!pg)
		return;
	qc_pg_stop(pg);
	free(pg->url);
	free(pg);
}

/* A statement at start-up; NULL with @err set unless it returned COMMAND_OK or TUPLES_OK. */
static PGresult *run_sync(PGconn *c, const char *sql, int nparams, const char *const *params,
                          const char *what, char *err, size_t errlen)
{
	PGresult *r;
	char line[256];

	if (nparams)
		r = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
	else
		r = PQexec(c, sql);
	if (r && (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK))
		return r;
	snprintf(err, errlen, "store %s failed: %s", what,
	         oneline(r ? PQresultErrorMessage(r) : PQerrorMessage(c), line, sizeof(line)));
	PQclear(r);
	return NULL;
}

static void rollback(PGconn *c)
{
	PQclear(PQexec(c, "ROLLBACK"));
}

/* Applies the missing migrations in one transaction, under an advisory lock. */
static int migrate(PGconn *c, char *err, size_t errlen)
{
	const int last = qc_nmigrations ? qc_migrations[qc_nmigrations - 1].version : 0;
	char applied[256] = "", ver[16], at[32], what[96];
	const char *params[3] = {ver, NULL, at};
	const struct qc_migration *m;
	struct timespec ts;
	size_t used = 0;
	PGresult *r;
	int cur, i;

	r = run_sync(c, "BEGIN", 0, NULL, "BEGIN", err, errlen);
	if (!r)
		return -1;
	PQclear(r);
	r = run_sync(c, MIGRATION_LOCK_SQL, 0, NULL, "taking the migration lock", err, errlen);
	if (!r)
		goto fail_rollback;
	PQclear(r);
	r = run_sync(c,
	             "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
	             "name text NOT NULL, applied_at bigint NOT NULL)",
	             0, NULL, "creating schema_migrations", err, errlen);
	if (!r)
		goto fail_rollback;
	PQclear(r);
	r = run_sync(c, "SELECT max(version) FROM schema_migrations", 0, NULL,
	             "reading schema_migrations", err, errlen);
	if (!r)
		goto fail_rollback;
	cur = PQntuples(r) && !PQgetisnull(r, 0, 0) ? atoi(PQgetvalue(r, 0, 0)) : 0;
	PQclear(r);
	if (cur > last) {
		snprintf(err, errlen,
		         "database schema version %d is newer than this quotecast (%d): upgrade "
		         "quotecast or use another database",
		         cur, last);
		goto fail_rollback;
	}

	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(at, sizeof(at), "%lld",
	         (long long)ts.tv_sec * 1000 + (long long)(ts.tv_nsec / 1000000));
	for (i = 0; i < qc_nmigrations; i++) {
		m = &qc_migrations[i];
		if (m->version <= cur)
			continue;
		snprintf(what, sizeof(what), "migration %d (%s)", m->version, m->name);
		r = run_sync(c, m->sql, 0, NULL, what, err, errlen);
		if (!r)
			goto fail_rollback;
		PQclear(r);
		snprintf(ver, sizeof(ver), "%d", m->version);
		params[1] = m->name;
		r = run_sync(c,
		             "INSERT INTO schema_migrations (version, name, applied_at) "
		             "VALUES ($1, $2, $3)",
		             3, params, "recording a migration", err, errlen);
		if (!r)
			goto fail_rollback;
		PQclear(r);
		if (used < sizeof(applied))
			used += (size_t)snprintf(applied + used, sizeof(applied) - used, "%s%d %s",
			                         used ? ", " : "", m->version, m->name);
	}
	r = run_sync(c, "COMMIT", 0, NULL, "COMMIT of the migrations", err, errlen);
	if (!r)
		goto fail_rollback;
	PQclear(r);
	lwsl_user("store: schema at version %d (applied: %s)\n", cur > last ? cur : last,
	          used ? applied : "none");
	return 0;

fail_rollback:
	rollback(c);
	return -1;
}

int qc_pg_start(struct qc_pg *pg, uint32_t connect_timeout_s, char *err, size_t errlen)
{
	char tmo[16], line[256];

	if (pg->state != PG_NEW) {
		snprintf(err, errlen, "store already started");
		return -1;
	}
	snprintf(tmo, sizeof(tmo), "%u", connect_timeout_s);
	pg->conn = connect_params(pg->url, tmo, true);
	if (!pg->conn) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (PQstatus(pg->conn) != CONNECTION_OK) {
		snprintf(err, errlen, "cannot connect to the store: %s",
		         oneline(PQerrorMessage(pg->conn), line, sizeof(line)));
		goto fail_finish;
	}
	if (migrate(pg->conn, err, errlen))
		goto fail_finish;
	pg->state = PG_SYNC;
	return 0;

fail_finish:
	PQfinish(pg->conn);
	pg->conn = NULL;
	return -1;
}

int qc_pg_query_sync(struct qc_pg *pg, const char *sql, int nparams, const char *const *params,
                     json_t **rows, char *err, size_t errlen)
{
	const char *msg;
	PGresult *r;

	*rows = NULL;
	if (pg->state != PG_SYNC) {
		snprintf(err, errlen, "synchronous store queries only at start-up");
		return -1;
	}
	/* PQexecParams even without parameters: it refuses several statements in one string */
	r = PQexecParams(pg->conn, sql, nparams, NULL, params, NULL, NULL, 0);
	if (r && (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK)) {
		*rows = result_rows(r);
		PQclear(r);
		if (!*rows) {
			snprintf(err, errlen, "%s", MSG_BADREPLY);
			return -1;
		}
		return 0;
	}
	msg = r ? PQresultErrorMessage(r) : PQerrorMessage(pg->conn);
	snprintf(err, errlen, "store query failed: %.*s", trimmed_len(msg), msg);
	PQclear(r);
	return -1;
}

int qc_pg_go_async(struct qc_pg *pg, struct lws_vhost *vhost)
{
	struct qc_pg **slot;

	if (pg->state != PG_SYNC || !vhost)
		return -1;
	if (PQsetnonblocking(pg->conn, 1))
		return -1;
	if (!PQenterPipelineMode(pg->conn))
		goto fail_blocking;
	pg->vh = vhost;
	if (adopt(pg))
		goto fail_pipeline;
	/* lws 4.1 has no vhost-to-context call: the adopted wsi knows it */
	pg->ctx = lws_get_context(pg->wsi);
	/* one store per vhost: the slot is the vhost's, lws frees it with the vhost */
	slot = lws_protocol_vh_priv_get(vhost, lws_get_protocol(pg->wsi));
	if (!slot)
		slot = lws_protocol_vh_priv_zalloc(vhost, &qc_pg_protocol, sizeof(*slot));
	if (slot) {
		*slot = pg;
		pg->vh_slot = slot;
	}
	pg->state = PG_CONNECTED;
	return 0;

fail_pipeline:
	PQexitPipelineMode(pg->conn);
fail_blocking:
	PQsetnonblocking(pg->conn, 0);
	return -1;
}

static int submit(void *ctx, const char *sql, int nparams, const char *const *params,
                  qc_store_cb cb, void *arg)
{
	struct qc_pg *pg = ctx;
	struct stmt *s;

	if (pg->state != PG_CONNECTED)
		return -ENOTCONN;
	if (!sql || !cb || nparams < 0 || (nparams && !params))
		return -EINVAL;
	if (pg->queued.n >= pg->max_pending)
		return -EAGAIN;
	s = stmt_new(sql, nparams, params);
	if (!s)
		return -ENOMEM;
	s->cb = cb;
	s->arg = arg;
	s->queued_at = lws_now_usecs();
	list_push(&pg->queued, s);
	/* never send (nor fail) from inside submit: the callback must run later */
	if (pg->sent.n < PIPELINE_MAX)
		lws_sul_schedule(pg->ctx, 0, &pg->sul_kick, kick_cb, 1);
	arm_tick(pg);
	return 0;
}

struct qc_store qc_pg_store(struct qc_pg *pg)
{
	struct qc_store st = {.submit = submit, .ctx = pg};

	return st;
}

const struct qc_histo *qc_pg_latency(const struct qc_pg *pg)
{
	return &pg->lat;
}

void qc_pg_stats(const struct qc_pg *pg, struct qc_store_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->configured = true;
	st->pending = pg->queued.n + pg->sent.n;
	st->failed = pg->failed;
	switch (pg->state) {
	case PG_SYNC:
		st->connected = true;
		st->state = "connected";
		break;
	case PG_CONNECTED:
		st->connected = true;
		st->state = "connected";
		if (pg->timeout_ms && pg->sent.head &&
		    lws_now_usecs() - pg->sent.head->sent_at >=
		        (lws_usec_t)pg->timeout_ms * LWS_US_PER_MS)
			st->state = "stalled";
		break;
	case PG_NEW:
	case PG_CONNECTING:
		st->state = "connecting";
		break;
	case PG_DOWN:
	case PG_STOPPED:
		st->state = "down";
		break;
	}
}

void qc_pg_stop(struct qc_pg *pg)
{
	struct lws *wsi;

	if (!pg || pg->state == PG_STOPPED)
		return;
	pg->state = PG_STOPPED;
	lws_sul_cancel(&pg->sul_kick);
	lws_sul_cancel(&pg->sul_tick);
	lws_sul_cancel(&pg->sul_conn);
	pg->tick_armed = false;
	if (pg->vh_slot) {
		*pg->vh_slot = NULL;
		pg->vh_slot = NULL;
	}
	wsi = pg->wsi;
	pg->wsi = NULL;
	if (wsi) {
		lws_set_opaque_user_data(wsi, NULL);
		close_wsi(pg, wsi);
	}
	if (pg->conn) {
		PQfinish(pg->conn);
		pg->conn = NULL;
	}
	fail_all(pg, MSG_STOPPED);
}
