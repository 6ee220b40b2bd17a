/*
 * hub_env: what the hub's unit tests share: a fake transport that records want_write and
 * close requests (no sockets), connection records opened with qc_hub_open(), and helpers that
 * read what the hub queued by walking a connection's outq. Included by test_hub.c and
 * test_session.c; define HUB_ENV_TTL_S before including to choose sessions.ttl_s.
 */
#ifndef QC_TEST_HUB_ENV_H
#define QC_TEST_HUB_ENV_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "quotecast/config.h"
#include "quotecast/conn.h"
#include "quotecast/hub.h"
#include "quotecast/msg.h"
#include "quotecast/outq.h"

#ifndef HUB_ENV_TTL_S
#define HUB_ENV_TTL_S 0
#endif

#define MAX_CALLS 4096
#define MAX_CONNS 16
#define MAX_KEPT  512

/* ---- the fake transport ------------------------------------------------------------------ */

struct close_call {
	struct qc_conn *c;
	uint16_t code;   /* c->close_code when close was requested */
	uint8_t how;     /* c->closing then */
	uint32_t queued; /* c->outq.count then */
};

struct want_tally {
	struct qc_conn *c;
	unsigned n;
};

struct fake {
	struct want_tally want[MAX_CONNS * 2];
	struct close_call close[MAX_CALLS];
	size_t nclose;
	unsigned nwake;  /* wake requests (max_hz) */
	int64_t wake_us; /* the delay of the last one */
};

static inline void fake_want_write(void *ctx, struct qc_conn *c)
{
	struct fake *f = ctx;
	size_t i;

	/* the hub asks only once something is queued */
	assert_false(qc_outq_empty(&c->outq));
	for (i = 0; i < MAX_CONNS * 2 && f->want[i].c && f->want[i].c != c; i++)
		;
	assert_true(i < MAX_CONNS * 2);
	f->want[i].c = c;
	f->want[i].n++;
}

static inline void fake_close(void *ctx, struct qc_conn *c)
{
	struct fake *f = ctx;

	assert_true(c->closing == QC_CLOSE_AFTER_DRAIN || c->closing == QC_CLOSE_NOW);
	assert_true(f->nclose < MAX_CALLS);
	f->close[f->nclose].c = c;
	f->close[f->nclose].code = c->close_code;
	f->close[f->nclose].how = c->closing;
	f->close[f->nclose].queued = c->outq.count;
	f->nclose++;
}

/* A Socket.IO reconnect took the session over from its (still open) socket. */
static inline void fake_abandon(void *ctx, struct qc_conn *c)
{
	(void)ctx;
	assert_non_null(c->transport);
	c->transport = NULL;
}

/* The hub wants qc_hub_rate_fire() in @delay_us (a test calls it after moving its clock). */
static inline void fake_wake(void *ctx, int64_t delay_us)
{
	struct fake *f = ctx;

	assert_true(delay_us >= 0);
	f->nwake++;
	f->wake_us = delay_us;
}

static inline unsigned wants(const struct fake *f, const struct qc_conn *c)
{
	for (size_t i = 0; i < MAX_CONNS * 2 && f->want[i].c; i++)
		if (f->want[i].c == c)
			return f->want[i].n;
	return 0;
}

static inline unsigned closes(const struct fake *f, const struct qc_conn *c)
{
	unsigned n = 0;

	for (size_t i = 0; i < f->nclose; i++)
		n += f->close[i].c == c;
	return n;
}

static inline const struct close_call *last_close(const struct fake *f, const struct qc_conn *c)
{
	for (size_t i = f->nclose; i > 0; i--)
		if (f->close[i - 1].c == c)
			return &f->close[i - 1];
	fail_msg("no close was requested for the connection");
	return NULL;
}

/* ---- the environment: config, hub, connections ------------------------------------------ */

struct env {
	struct qc_config cfg;
	struct fake f;
	struct qc_hub *h;
	struct qc_conn *conns[MAX_CONNS];
};

/* Parsed frames and documents, freed by env_done(). */
static json_t *kept[MAX_KEPT];
static size_t nkept;

static inline json_t *keep(json_t *j)
{
	assert_non_null(j);
	assert_true(nkept < MAX_KEPT);
	kept[nkept++] = j;
	return j;
}

/* The test's environment; the teardown frees it even when an assertion failed. */
static inline struct env *env_new(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	*state = e;
	assert_int_equal(qc_config_defaults(&e->cfg), 0);
	/* test_hub sees a closed connection go at once; test_session suspends it */
	e->cfg.sessions.ttl_s = HUB_ENV_TTL_S;
	return e;
}

/* A resume request: the suspended session @to takes @from's place (and socket). */
static inline void fake_rebind(void *ctx, struct qc_conn *from, struct qc_conn *to)
{
	struct env *e = (struct env *)((char *)ctx - offsetof(struct env, f));

	for (size_t i = 0; i < MAX_CONNS; i++)
		if (e->conns[i] == from)
			e->conns[i] = to;
	for (size_t i = 0; i < MAX_CONNS * 2; i++)
		if (e->f.want[i].c == from)
			e->f.want[i].n = 0;
}

/* Create the hub once the test has adjusted e->cfg. */
static inline void env_start(struct env *e)
{
	struct qc_transport t = {fake_want_write, fake_close,  &e->f,
	                         fake_abandon,    fake_rebind, fake_wake};
	char err[256] = "";

	/* only settings the server itself would accept */
	if (qc_config_validate(&e->cfg, err, sizeof(err)))
		fail_msg("test config refused: %s", err);
	e->h = qc_hub_new(&e->cfg, &t);
	assert_non_null(e->h);
}

static inline struct qc_conn *env_open(struct env *e, const char *user, uint32_t roles)
{
	struct qc_conn *c = calloc(1, sizeof(*c));
	size_t i;

	assert_non_null(c);
	if (user)
		snprintf(c->user_id, sizeof(c->user_id), "%s", user);
	c->roles = roles;
	c->transport = e; /* any non-NULL handle */
	assert_int_equal(qc_hub_open(e->h, c), 0);
	for (i = 0; i < MAX_CONNS && e->conns[i]; i++)
		;
	assert_true(i < MAX_CONNS);
	e->conns[i] = c;
	return c;
}

/*
 * The transport saw the connection go: tell the hub, which suspends the record (it stays the
 * hub's, freed by expiry or qc_hub_free) or, without a TTL, frees it.
 */
static inline void env_drop(struct env *e, struct qc_conn *c)
{
	for (size_t i = 0; i < MAX_CONNS; i++)
		if (e->conns[i] == c)
			e->conns[i] = NULL;
	qc_hub_closed(e->h, c);
	/* a later calloc may reuse the address: forget what was recorded for this one */
	for (size_t i = 0; i < MAX_CONNS * 2; i++)
		if (e->f.want[i].c == c)
			e->f.want[i].n = 0;
	for (size_t i = 0; i < e->f.nclose; i++)
		if (e->f.close[i].c == c)
			e->f.close[i].c = NULL;
}

static inline void env_done(struct env *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < MAX_CONNS; i++)
		if (e->conns[i])
			env_drop(e, e->conns[i]);
	assert_int_equal(qc_hub_nconns(e->h), 0);
	qc_hub_free(e->h);
	qc_config_free(&e->cfg);
	free(e);
	while (nkept)
		json_decref(kept[--nkept]);
}

static inline int teardown(void **state)
{
	env_done(*state);
	*state = NULL;
	return 0;
}

static inline void rx(struct env *e, struct qc_conn *c, const char *text)
{
	qc_hub_rx(e->h, c, text, strlen(text), false);
}

static inline void rxf(struct env *e, struct qc_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline void rxf(struct env *e, struct qc_conn *c, const char *fmt, ...)
{
	char buf[8192];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < sizeof(buf));
	qc_hub_rx(e->h, c, buf, (size_t)n, false);
}

/* Pop everything, as the transport does once the frames are written. */
static inline void drain(struct qc_conn *c)
{
	while (!qc_outq_empty(&c->outq))
		qc_outq_pop(&c->outq);
	assert_int_equal(c->outq.bytes, 0);
}

/* Write everything as ws.c does (qc_outq_fill into a scratch buffer): counted as written. */
static inline void write_out(struct qc_conn *c)
{
	static unsigned char scratch[1 << 20];

	while (!qc_outq_empty(&c->outq))
		assert_true(qc_outq_fill(&c->outq, scratch, sizeof(scratch)) > 0);
}

/* ---- reading queues and documents -------------------------------------------------------- */

static inline struct qc_msg *at(const struct qc_conn *c, uint32_t i)
{
	const struct qc_outq *q = &c->outq;

	assert_true(i < q->count);
	return q->slot[(q->head + i) & (q->cap - 1)];
}

static inline struct qc_msg *tail(const struct qc_conn *c)
{
	assert_true(c->outq.count > 0);
	return at(c, c->outq.count - 1);
}

static inline json_t *parse_msg(const struct qc_msg *m)
{
	json_error_t err;
	json_t *j = json_loadb((const char *)qc_msg_payload(m), qc_msg_payload_len(m), 0, &err);

	if (!j)
		fail_msg("queued payload is not JSON: %s", err.text);
	return keep(j);
}

static inline json_t *frame(const struct qc_conn *c, uint32_t i)
{
	return parse_msg(at(c, i));
}

static inline json_t *last(const struct qc_conn *c)
{
	return parse_msg(tail(c));
}

static inline json_t *get(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	if (!v)
		fail_msg("member \"%s\" is missing", k);
	return v;
}

static inline const char *sget(json_t *o, const char *k)
{
	json_t *v = get(o, k);

	assert_true(json_is_string(v));
	return json_string_value(v);
}

static inline json_int_t iget(json_t *o, const char *k)
{
	json_t *v = get(o, k);

	assert_true(json_is_integer(v));
	return json_integer_value(v);
}

static inline bool bget(json_t *o, const char *k)
{
	json_t *v = get(o, k);

	assert_true(json_is_boolean(v));
	return json_is_true(v);
}

static inline void assert_json(json_t *got, const char *expected)
{
	json_t *want = json_loads(expected, 0, NULL);
	char *dump;

	assert_non_null(want);
	if (!json_equal(got, want)) {
		dump = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
		fail_msg("got %s, expected %s", dump ? dump : "?", expected);
	}
	json_decref(want);
}

/* A successful response to @rid (NULL: none); returns its data. */
static inline json_t *expect_ok(json_t *j, const char *rid)
{
	assert_string_equal(sget(j, "type"), "response");
	if (rid)
		assert_string_equal(sget(j, "request_id"), rid);
	else
		assert_null(json_object_get(j, "request_id"));
	assert_true(bget(j, "success"));
	assert_null(json_object_get(j, "error"));
	return get(j, "data");
}

static inline json_t *expect_event(json_t *j, const char *name)
{
	assert_string_equal(sget(j, "type"), "event");
	assert_string_equal(sget(j, "event"), name);
	return get(j, "data");
}

/*
 * A stream_data event of @sym with @seq and exactly the flag @flag ("snapshot", "replay",
 * "conflated" or NULL) set; returns its field data.
 */
static inline json_t *expect_tick(json_t *j, const char *sym, uint64_t seq, const char *flag)
{
	static const char *const flags[] = {"snapshot", "replay", "conflated"};
	json_t *d = expect_event(j, "stream_data");

	assert_string_equal(sget(d, "symbol"), sym);
	assert_int_equal(iget(d, "seq"), seq);
	assert_true(iget(d, "timestamp") >= 0);
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		if (flag && !strcmp(flag, flags[i]))
			assert_true(bget(d, flags[i]));
		else
			assert_null(json_object_get(d, flags[i]));
	}
	assert_true(json_is_object(get(d, "data")));
	return get(d, "data");
}

static inline json_int_t stat_get(struct env *e, const char *block, const char *key)
{
	json_t *s = qc_hub_stats(e->h), *b;
	json_int_t v;

	assert_non_null(s);
	b = block ? json_object_get(s, block) : s;
	assert_true(json_is_object(b));
	if (!json_is_integer(json_object_get(b, key)))
		fail_msg("stats %s.%s is not an integer", block ? block : "", key);
	v = json_integer_value(json_object_get(b, key));
	json_decref(s);
	return v;
}

static inline void publish(struct env *e, const char *doc, int accepted, int dups, int stale)
{
	json_t *j = json_loads(doc, 0, NULL), *out = NULL;
	const char *emsg = NULL;
	enum qc_err err;

	assert_non_null(j);
	err = qc_hub_publish(e->h, j, &out, &emsg);
	if (err != QC_OK)
		fail_msg("publish refused (%s): %s", qc_err_code(err), emsg ? emsg : "");
	assert_non_null(out);
	assert_int_equal(iget(out, "accepted"), accepted);
	assert_int_equal(iget(out, "duplicates"), dups);
	assert_int_equal(iget(out, "stale"), stale);
	json_decref(out);
	json_decref(j);
}

/* POST /api/broadcast of a string; returns "delivered". */
static inline json_int_t broadcast(struct env *e, const char *room, const char *content)
{
	json_t *body = json_pack("{s:s, s:s}", "room", room, "content", content), *out = NULL;
	const char *emsg = NULL;
	json_int_t n;

	assert_non_null(body);
	assert_int_equal(qc_hub_broadcast(e->h, body, &out, &emsg), QC_OK);
	assert_string_equal(sget(out, "room"), room);
	n = iget(out, "delivered");
	json_decref(out);
	json_decref(body);
	return n;
}

static inline bool is_hex(const char *s, size_t len)
{
	if (strlen(s) != len)
		return false;
	for (; *s; s++)
		if (!isxdigit((unsigned char)*s) || isupper((unsigned char)*s))
			return false;
	return true;
}

#endif
