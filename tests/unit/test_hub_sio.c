/*
 * test_hub_sio: Socket.IO connection state recovery (hub_sio.c) through the fake transport of
 * hub_env.h: Socket.IO records opened with qc_hub_open(), dropped with qc_hub_closed() (which
 * suspends them), taken over with qc_hub_sio_resume() as ws.c does at a CONNECT. Covers the
 * pid and offsets on the wire (one offset per message, shared by every receiver), the
 * history each session keeps, what a resume replays for a given offset, and the resumes that
 * must not claim recovery (evicted history, a stream ring that no longer reaches back, wrong
 * pid or user, bad offset).
 */
#define HUB_ENV_TTL_S 30
#include "hub_env.h"

#include <inttypes.h>

#include "quotecast/sio.h"

/* struct qc_sio_state: the history is what this test is about */
#include "../../src/hub_priv.h"

#define PID_LEN (QC_SESSION_ID_LEN + QC_SECRET_LEN)

static struct qc_conn *track(struct env *e, struct qc_conn *c)
{
	size_t i;

	for (i = 0; i < MAX_CONNS; i++)
		if (e->conns[i] == c)
			return c; /* taken over while live: tracked already */
	for (i = 0; i < MAX_CONNS && e->conns[i]; i++)
		;
	assert_true(i < MAX_CONNS);
	e->conns[i] = c;
	return c;
}

/* A Socket.IO connection of @user that has sent its CONNECT. */
static struct qc_conn *sio_open(struct env *e, const char *user)
{
	struct qc_conn *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	snprintf(c->user_id, sizeof(c->user_id), "%s", user);
	c->enc = QC_ENC_SIO;
	c->transport = e;
	assert_int_equal(qc_hub_open(e->h, c), 0);
	return track(e, c);
}

/* The Socket.IO packet text of frame @i of @c. */
static const char *text(const struct qc_conn *c, uint32_t i, size_t *len)
{
	struct qc_msg *m = at(c, i);

	*len = qc_msg_payload_len(m);
	return (const char *)qc_msg_payload(m);
}

/* Frame @i of @c as JSON after its packet prefix @prefix ("40", "42"). */
static json_t *packet(const struct qc_conn *c, uint32_t i, const char *prefix)
{
	size_t len, n = strlen(prefix);
	const char *t = text(c, i, &len);
	json_t *j;

	assert_true(len > n);
	assert_memory_equal(t, prefix, n);
	j = json_loadb(t + n, len - n, 0, NULL);
	assert_non_null(j);
	return keep(j);
}

/* Event frame @i of @c: checks its name; *@offset gets its offset (0: none). */
static json_t *sio_event(const struct qc_conn *c, uint32_t i, const char *name, uint64_t *offset)
{
	json_t *a = packet(c, i, "42"), *last;

	assert_true(json_is_array(a));
	assert_string_equal(json_string_value(json_array_get(a, 0)), name);
	last = json_array_get(a, json_array_size(a) - 1);
	*offset = 0;
	if (json_array_size(a) == 3) {
		assert_true(json_is_string(last));
		*offset = strtoull(json_string_value(last), NULL, 10);
		assert_true(*offset > 0);
	}
	return json_array_get(a, 1);
}

/* A reconnect's CONNECT: a new record presents @pid and @offset (NULL: none). */
static struct qc_conn *reconnect(struct env *e, const char *user, const char *pid,
                                 const char *offset)
{
	struct qc_conn *fresh = calloc(1, sizeof(*fresh)), *c;
	json_t *auth = json_pack("{s:s, s:s}", "user_id", user, "pid", pid);

	assert_non_null(fresh);
	if (offset)
		json_object_set_new(auth, "offset", json_string(offset));
	snprintf(fresh->user_id, sizeof(fresh->user_id), "%s", user);
	fresh->enc = QC_ENC_SIO;
	fresh->transport = e;
	c = qc_hub_sio_resume(e->h, fresh, auth);
	json_decref(auth);
	free(fresh);
	if (c)
		track(e, c);
	return c;
}

static void pid_of(struct qc_conn *c, char pid[PID_LEN + 1])
{
	json_t *j = packet(c, 0, "40");

	assert_string_equal(json_string_value(json_object_get(j, "sid")), c->session_id);
	assert_true(is_hex(json_string_value(json_object_get(j, "pid")), PID_LEN));
	snprintf(pid, PID_LEN + 1, "%s", json_string_value(json_object_get(j, "pid")));
}

static void expect_room_msg_native(json_t *j, const char *content)
{
	assert_string_equal(sget(expect_event(j, "room_message"), "content"), content);
}

static void subscribe(struct env *e, struct qc_conn *c, const char *room)
{
	rxf(e, c, "42[\"subscribe\",{\"room\":\"%s\"}]", room);
}

static void test_offsets_on_the_wire(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a, *b, *n;
	uint64_t o1, o2, o;
	char pid[PID_LEN + 1];

	env_start(e);
	a = sio_open(e, "alice");
	b = sio_open(e, "bob");
	n = env_open(e, "nat", 0);
	pid_of(a, pid);
	/* the pid: the session id and its secret (what a reconnect must present) */
	assert_memory_equal(pid, a->session_id, QC_SESSION_ID_LEN);
	assert_string_equal(pid + QC_SESSION_ID_LEN, a->secret);
	/* the session event carries no offset: it is not replayed */
	sio_event(a, 1, "session", &o);
	assert_int_equal(o, 0);
	subscribe(e, a, "r");
	subscribe(e, b, "r");
	rx(e, n, "{\"type\":\"subscribe\",\"room\":\"r\"}");
	/* nor do answers */
	sio_event(a, 2, "response", &o);
	assert_int_equal(o, 0);
	drain(a);
	drain(b);
	drain(n);

	assert_int_equal(broadcast(e, "r", "m1"), 3);
	assert_int_equal(broadcast(e, "r", "m2"), 3);
	/* one frame per message for every Socket.IO receiver: the same offset */
	assert_ptr_equal(at(a, 0), at(b, 0));
	assert_ptr_equal(at(a, 1), at(b, 1));
	assert_string_equal(sget(sio_event(a, 0, "room_message", &o1), "content"), "m1");
	assert_string_equal(sget(sio_event(a, 1, "room_message", &o2), "content"), "m2");
	assert_true(o1 > 0 && o2 > o1);
	sio_event(b, 1, "room_message", &o);
	assert_int_equal(o, o2);
	/* the native receiver's frame is the native event */
	expect_room_msg_native(last(n), "m2");
	/* each session keeps what it was written, as it is written */
	assert_int_equal(a->sio->hist.count, 0);
	write_out(a);
	assert_int_equal(a->sio->hist.count, 2);
	assert_null(n->sio);
}

/*
 * A dropped session replays exactly what came after the client's offset: the rest of what it
 * was sent (written or not), what it was sent while suspended, then each stream's missed ticks
 * from the ring; the CONNECT answer keeps sid and pid.
 */
static void test_resume_after_offset(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a, *r;
	char pid[PID_LEN + 1], off[24];
	uint64_t o, o2 = 0, prev = 0;
	json_t *d;

	env_start(e);
	publish(e, "{\"symbol\":\"AAPL\",\"data\":{\"price\":1}}", 1, 0, 0);
	a = sio_open(e, "alice");
	pid_of(a, pid);
	subscribe(e, a, "r");
	rxf(e, a, "42[\"subscribe_market_stream\",{\"symbol\":\"AAPL\",\"snapshot\":false}]");
	drain(a);
	for (int i = 1; i <= 4; i++) {
		char m[8];

		snprintf(m, sizeof(m), "m%d", i);
		broadcast(e, "r", m);
	}
	publish(e, "{\"symbol\":\"AAPL\",\"data\":{\"price\":2}}", 1, 0, 0);
	sio_event(a, 1, "room_message", &o2);
	write_out(a); /* all written: the socket dies with some of it unread */
	env_drop(e, a);
	assert_true(a->suspended);
	assert_int_equal(a->outq.count, 0);
	assert_int_equal(a->sio->hist.count, 5);
	assert_int_equal(stat_get(e, "reconnection", "suspended"), 1);
	/* while suspended: a room message is kept, a tick is not (the ring has it) */
	broadcast(e, "r", "m5");
	publish(e, "{\"symbol\":\"AAPL\",\"data\":{\"price\":3}}", 1, 0, 0);
	assert_int_equal(a->sio->hist.count, 6);

	/* the client processed m2 */
	snprintf(off, sizeof(off), "%" PRIu64, o2);
	r = reconnect(e, "alice", pid, off);
	assert_ptr_equal(r, a);
	assert_false(a->suspended);
	assert_int_equal(stat_get(e, "reconnection", "suspended"), 0);
	assert_int_equal(stat_get(e, "reconnection", "resumed"), 1);
	assert_int_equal(stat_get(e, "reconnection", "replayed"), 4);
	while (qc_hub_refill(e->h, a))
		;
	/* 40 (same sid, pid), session, m3, m4, tick 2, m5, tick 3 (replay) */
	assert_int_equal(a->outq.count, 7);
	{
		char again[PID_LEN + 1];

		pid_of(a, again);
		assert_string_equal(again, pid);
	}
	d = sio_event(a, 1, "session", &o);
	assert_int_equal(o, 0);
	assert_true(bget(d, "resumed"));
	assert_true(bget(d, "recovered"));
	assert_int_equal(iget(d, "replayed"), 4);
	assert_string_equal(sget(sio_event(a, 2, "room_message", &o), "content"), "m3");
	assert_true(o > o2);
	prev = o;
	assert_string_equal(sget(sio_event(a, 3, "room_message", &o), "content"), "m4");
	assert_true(o > prev);
	prev = o;
	d = sio_event(a, 4, "stream_data", &o);
	assert_int_equal(iget(d, "seq"), 2);
	assert_null(json_object_get(d, "replay"));
	assert_true(o > prev);
	prev = o;
	assert_string_equal(sget(sio_event(a, 5, "room_message", &o), "content"), "m5");
	assert_true(o > prev);
	prev = o;
	d = sio_event(a, 6, "stream_data", &o);
	assert_int_equal(iget(d, "seq"), 3);
	assert_true(bget(d, "replay"));
	assert_true(o > prev);
	/* what the client had is let go; what it is written now is kept (the caught-up tick too) */
	assert_int_equal(a->sio->hist.count, 0);
	write_out(a);
	assert_int_equal(a->sio->hist.count, 5);

	/* dropped again at once: nothing new processed, the same offset still recovers */
	env_drop(e, a);
	r = reconnect(e, "alice", pid, off);
	assert_ptr_equal(r, a);
	while (qc_hub_refill(e->h, a))
		;
	assert_int_equal(a->outq.count, 7);
	assert_string_equal(sget(sio_event(a, 2, "room_message", &o), "content"), "m3");
	d = sio_event(a, 6, "stream_data", &o);
	assert_int_equal(iget(d, "seq"), 3);
	drain(a);
	/* live again: in the room, in the stream */
	broadcast(e, "r", "m6");
	assert_string_equal(sget(sio_event(a, 0, "room_message", &o), "content"), "m6");
	assert_int_equal(stat_get(e, "reconnection", "not_recovered"), 0);
}

/* No offset (the client never processed an event): everything since the session began. */
static void test_resume_without_offset(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a;
	char pid[PID_LEN + 1];
	uint64_t o;

	env_start(e);
	a = sio_open(e, "alice");
	pid_of(a, pid);
	subscribe(e, a, "r");
	broadcast(e, "r", "m1");
	write_out(a);
	env_drop(e, a);
	assert_ptr_equal(reconnect(e, "alice", pid, NULL), a);
	while (qc_hub_refill(e->h, a))
		;
	assert_int_equal(a->outq.count, 3);
	assert_string_equal(sget(sio_event(a, 2, "room_message", &o), "content"), "m1");
}

/*
 * Resumes that cannot be exact give a fresh session: the history no longer reaches back to
 * the offset, a stream's ring does not, a bad offset; a wrong secret or another user are not
 * the session's (it stays suspended).
 */
static void test_resume_refused(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a, *b;
	char pid[PID_LEN + 1], bad[PID_LEN + 1], off[24];
	uint64_t o1;

	e->cfg.sessions.buffer_messages = 3;
	e->cfg.streams.buffer_size = 2;
	env_start(e);
	a = sio_open(e, "alice");
	pid_of(a, pid);
	subscribe(e, a, "r");
	drain(a);
	broadcast(e, "r", "m1");
	sio_event(a, 0, "room_message", &o1);
	snprintf(off, sizeof(off), "%" PRIu64, o1);
	write_out(a);
	env_drop(e, a);

	snprintf(bad, sizeof(bad), "%s", pid);
	bad[PID_LEN - 1] = bad[PID_LEN - 1] == '0' ? '1' : '0';
	assert_null(reconnect(e, "alice", bad, off));
	assert_null(reconnect(e, "bob", pid, off));
	assert_null(reconnect(e, "alice", "", off));
	assert_null(reconnect(e, "alice", a->session_id, off));
	assert_true(a->suspended); /* not theirs: it waits */
	assert_int_equal(stat_get(e, "reconnection", "not_recovered"), 4);

	/* three more while away: the history still reaches back to the client's m1 */
	broadcast(e, "r", "m2");
	broadcast(e, "r", "m3");
	broadcast(e, "r", "m4");
	assert_int_equal(a->sio->hist.count, 3);
	assert_int_equal(a->sio->floor, o1);
	/* one more: m2, which the client never had, has been evicted */
	broadcast(e, "r", "m5");
	assert_true(a->sio->floor > o1);
	assert_null(reconnect(e, "alice", pid, off));
	/* the session has ended: its pid names nothing now */
	assert_int_equal(stat_get(e, "reconnection", "suspended"), 0);
	assert_int_equal(stat_get(e, "reconnection", "not_recovered"), 5);

	/* a stream whose ring no longer reaches back */
	b = sio_open(e, "bob");
	pid_of(b, pid);
	publish(e, "{\"symbol\":\"MSFT\",\"data\":{\"price\":1}}", 1, 0, 0);
	rxf(e, b, "42[\"subscribe_market_stream\",{\"symbol\":\"MSFT\",\"snapshot\":false}]");
	write_out(b);
	env_drop(e, b);
	for (int i = 2; i <= 4; i++) {
		char t[64];

		snprintf(t, sizeof(t), "{\"symbol\":\"MSFT\",\"data\":{\"price\":%d}}", i);
		publish(e, t, 1, 0, 0);
	}
	assert_null(reconnect(e, "bob", pid, NULL));
	assert_int_equal(stat_get(e, "reconnection", "suspended"), 0);

	/* a bad offset */
	b = sio_open(e, "bob");
	pid_of(b, pid);
	write_out(b);
	env_drop(e, b);
	assert_null(reconnect(e, "bob", pid, "12x"));
	assert_int_equal(stat_get(e, "reconnection", "suspended"), 0);
	assert_int_equal(stat_get(e, "reconnection", "resumed"), 0);
}

/*
 * A reconnect before the server saw the old socket go (a half-open TCP connection after a
 * network change): the session is taken over from that socket, which is let go.
 */
static void test_takeover_live(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a;
	char pid[PID_LEN + 1], off[24];
	uint64_t o1, o;

	env_start(e);
	a = sio_open(e, "alice");
	pid_of(a, pid);
	subscribe(e, a, "r");
	drain(a);
	broadcast(e, "r", "m1");
	broadcast(e, "r", "m2");
	sio_event(a, 0, "room_message", &o1);
	write_out(a);
	broadcast(e, "r", "m3"); /* queued, never written */
	snprintf(off, sizeof(off), "%" PRIu64, o1);
	assert_ptr_equal(reconnect(e, "alice", pid, off), a);
	assert_non_null(a->transport);
	assert_int_equal(stat_get(e, "connections", "closed_total"), 1);
	assert_int_equal(stat_get(e, "reconnection", "resumed"), 1);
	while (qc_hub_refill(e->h, a))
		;
	/* 40, session, m2, m3: each once */
	assert_int_equal(a->outq.count, 4);
	assert_string_equal(sget(sio_event(a, 2, "room_message", &o), "content"), "m2");
	assert_string_equal(sget(sio_event(a, 3, "room_message", &o), "content"), "m3");
	assert_int_equal(qc_hub_nconns(e->h), 1);

	/* a session closing for a reason a reconnect must not undo is not taken over */
	a->no_resume = 1;
	assert_null(reconnect(e, "alice", pid, NULL));
	assert_ptr_equal(a->transport, e);
}

/*
 * A socket closing (here a hard close, as for a slow consumer): what was written, what was
 * still queued and what comes before the suspension are kept in that order.
 */
static void test_closing_keeps_order(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a;
	char pid[PID_LEN + 1], off[24];
	uint64_t o1, o, prev;

	e->cfg.sessions.buffer_messages = 20;
	env_start(e);
	a = sio_open(e, "alice");
	pid_of(a, pid);
	subscribe(e, a, "r");
	drain(a);
	broadcast(e, "r", "m1");
	broadcast(e, "r", "m2");
	sio_event(a, 0, "room_message", &o1);
	write_out(a);
	broadcast(e, "r", "m3"); /* queued */
	qc_hub_close(e->h, a, 4008, QC_CLOSE_NOW);
	broadcast(e, "r", "m4"); /* while it closes */
	env_drop(e, a);
	broadcast(e, "r", "m5"); /* suspended */
	assert_int_equal(a->sio->hist.count, 5);
	snprintf(off, sizeof(off), "%" PRIu64, o1);
	assert_ptr_equal(reconnect(e, "alice", pid, off), a);
	while (qc_hub_refill(e->h, a))
		;
	assert_int_equal(a->outq.count, 6);
	prev = o1;
	for (int i = 2; i <= 5; i++) {
		char want[8];

		snprintf(want, sizeof(want), "m%d", i);
		assert_string_equal(sget(sio_event(a, (uint32_t)i, "room_message", &o), "content"),
		                    want);
		assert_true(o > prev);
		prev = o;
	}
	write_out(a);

	/* a close that lasts: what arrives meanwhile is held to sessions.buffer_messages */
	qc_hub_close(e->h, a, 4008, QC_CLOSE_NOW);
	for (uint32_t i = 0; i <= e->cfg.sessions.buffer_messages; i++)
		broadcast(e, "r", "late");
	assert_int_equal(a->sio->late.count, 0);
	assert_true(a->sio->broken);
	env_drop(e, a);
	assert_null(reconnect(e, "alice", pid, NULL));
	assert_int_equal(stat_get(e, "reconnection", "not_recovered"), 1);
}

/* A slow consumer (4008): the message that did not fit is kept too, after what was queued. */
static void test_slow_consumer(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a;
	char pid[PID_LEN + 1];
	uint64_t o;
	int n = 0;

	e->cfg.limits.conflate_bytes = 100;
	e->cfg.limits.max_send_queue_bytes = 400;
	env_start(e);
	a = sio_open(e, "alice");
	pid_of(a, pid);
	subscribe(e, a, "r");
	write_out(a);
	while (!a->closing) {
		char m[16];

		snprintf(m, sizeof(m), "m%d", ++n);
		broadcast(e, "r", m);
	}
	assert_int_equal(last_close(&e->f, a)->code, 4008);
	env_drop(e, a);
	assert_int_equal(a->sio->hist.count, (uint32_t)n);
	assert_ptr_equal(reconnect(e, "alice", pid, NULL), a);
	while (qc_hub_refill(e->h, a))
		;
	assert_int_equal(a->outq.count, (uint32_t)n + 2);
	for (int i = 1; i <= n; i++) {
		char want[16];

		snprintf(want, sizeof(want), "m%d", i);
		assert_string_equal(
		    sget(sio_event(a, (uint32_t)i + 1, "room_message", &o), "content"), want);
	}
}

/* socket.disconnect() (no_resume) ends the session; without a TTL nothing is kept at all. */
static void test_no_recovery(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a;
	uint64_t o;

	e->cfg.sessions.ttl_s = 0;
	env_start(e);
	a = sio_open(e, "alice");
	/* no pid in the CONNECT answer, no offsets */
	assert_null(json_object_get(packet(a, 0, "40"), "pid"));
	assert_null(a->sio);
	subscribe(e, a, "r");
	drain(a);
	broadcast(e, "r", "m1");
	sio_event(a, 0, "room_message", &o);
	assert_int_equal(o, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_offsets_on_the_wire, teardown),
	    cmocka_unit_test_teardown(test_resume_after_offset, teardown),
	    cmocka_unit_test_teardown(test_resume_without_offset, teardown),
	    cmocka_unit_test_teardown(test_resume_refused, teardown),
	    cmocka_unit_test_teardown(test_takeover_live, teardown),
	    cmocka_unit_test_teardown(test_closing_keeps_order, teardown),
	    cmocka_unit_test_teardown(test_slow_consumer, teardown),
	    cmocka_unit_test_teardown(test_no_recovery, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
