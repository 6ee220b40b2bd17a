/*
 * test_hub: the hub (layer 1) driven through a fake transport that records want_write and close
 * requests; no sockets. Connections are calloc'ed records opened with qc_hub_open(), fed with
 * qc_hub_rx() and read by walking their outq. Covers the session event, the want_write edge,
 * shared room frames, stream fan-out grouping, snapshot/replay ordering, conflation, the slow
 * consumer close, the bad-message budget, the rate limit, room limits and cleanup, admission and
 * shutdown, and all-or-nothing publishing. Tests marked "HUB BUG" fail on purpose until the hub
 * is fixed.
 */
#include "hub_env.h"
#include "quotecast/broker.h"

/* A failure: a response when @rid is set, else an "error" message. */
static void expect_err(json_t *j, const char *rid, const char *code)
{
	json_t *err;

	if (rid) {
		assert_string_equal(sget(j, "type"), "response");
		assert_string_equal(sget(j, "request_id"), rid);
		assert_false(bget(j, "success"));
		assert_null(json_object_get(j, "data"));
	} else {
		assert_string_equal(sget(j, "type"), "error");
		assert_null(json_object_get(j, "request_id"));
		assert_null(json_object_get(j, "success"));
	}
	err = get(j, "error");
	assert_string_equal(sget(err, "code"), code);
	assert_true(strlen(sget(err, "message")) > 0);
}
/* ---- tests ------------------------------------------------------------------------------- */

static void test_session_first_and_want_write_edge(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *c, *anon;
	int64_t before, after;
	json_t *d, *j;

	e->cfg.limits.idle_timeout_s = 40;
	env_start(e);
	before = qc_now_ms();
	c = env_open(e, "alice", QC_ROLE_ADMIN);
	after = qc_now_ms();

	assert_int_equal(c->outq.count, 1);
	assert_int_equal(at(c, 0)->kind, QC_MSG_CONTROL);
	d = expect_event(frame(c, 0), "session");
	assert_true(is_hex(sget(d, "session_id"), QC_SESSION_ID_LEN));
	assert_string_equal(sget(d, "session_id"), c->session_id);
	assert_true(is_hex(sget(d, "resume_token"), strlen(sget(d, "resume_token"))));
	assert_true(strlen(sget(d, "resume_token")) >= 32);
	assert_string_equal(sget(d, "user_id"), "alice");
	assert_true(iget(d, "server_time") >= before && iget(d, "server_time") <= after);
	assert_int_equal(iget(d, "heartbeat_interval_ms"), 20000);
	assert_false(bget(d, "resumed"));
	assert_int_equal(json_object_size(d), 6);
	assert_int_equal(wants(&e->f, c), 1);

	/* more frames on a non-empty queue: no further want_write */
	rx(e, c, "{\"type\":\"ping\",\"timestamp\":123,\"request_id\":\"p1\",\"trace_id\":\"t1\"}");
	rx(e, c, "{\"type\":\"ping\",\"timestamp\":\"abc\"}");
	assert_int_equal(c->outq.count, 3);
	j = frame(c, 1);
	assert_string_equal(sget(j, "type"), "pong");
	assert_int_equal(iget(j, "timestamp"), 123);
	assert_string_equal(sget(j, "request_id"), "p1");
	assert_string_equal(sget(j, "trace_id"), "t1");
	assert_true(iget(j, "server_time") >= before);
	j = frame(c, 2);
	assert_string_equal(sget(j, "timestamp"), "abc");
	assert_null(json_object_get(j, "request_id"));
	assert_int_equal(wants(&e->f, c), 1);

	/* drained, then non-empty again: exactly one more */
	drain(c);
	rx(e, c, "{\"type\":\"ping\",\"timestamp\":1}");
	rx(e, c, "{\"type\":\"ping\",\"timestamp\":2}");
	assert_int_equal(c->outq.count, 2);
	assert_int_equal(wants(&e->f, c), 2);

	/* without a user id: anon-<...>, and a session id of its own */
	anon = env_open(e, NULL, 0);
	d = expect_event(frame(anon, 0), "session");
	assert_int_equal(strncmp(sget(d, "user_id"), "anon-", 5), 0);
	assert_true(strlen(sget(d, "user_id")) > 5);
	assert_string_not_equal(sget(d, "session_id"), c->session_id);
	assert_int_equal(wants(&e->f, anon), 1);
	assert_int_equal(wants(&e->f, c), 2);
	assert_int_equal(e->f.nclose, 0);
	assert_int_equal(stat_get(e, NULL, "total_connections"), 2);
	assert_int_equal(stat_get(e, NULL, "total_users"), 2);
}

static void test_room_message_encoded_once(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a, *b, *c, *d;
	struct qc_msg *m;
	json_t *resp, *ev;

	env_start(e);
	a = env_open(e, "alice", 0);
	b = env_open(e, "bob", 0);
	c = env_open(e, "carol", 0);
	d = env_open(e, "dave", 0);
	rx(e, a, "{\"type\":\"subscribe\",\"request_id\":\"j1\",\"room\":\"lobby\"}");
	rx(e, b, "{\"type\":\"subscribe\",\"request_id\":\"j2\",\"room\":\"lobby\"}");
	rx(e, c, "{\"type\":\"subscribe\",\"request_id\":\"j3\",\"room\":\"lobby\"}");
	rx(e, d, "{\"type\":\"subscribe\",\"request_id\":\"j4\",\"room\":\"other\"}");
	assert_int_equal(iget(expect_ok(last(c), "j3"), "members"), 3);
	assert_int_equal(iget(expect_ok(last(d), "j4"), "members"), 1);
	drain(a);
	drain(b);
	drain(c);
	drain(d);

	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"s1\",\"action\":\"send_message\","
	   "\"payload\":{\"room\":\"lobby\",\"content\":{\"x\":[1,2]},\"message_type\":\"alert\"}"
	   "}");

	/* the sender is a member: its room_message, then the response */
	assert_int_equal(a->outq.count, 2);
	assert_int_equal(b->outq.count, 1);
	assert_int_equal(c->outq.count, 1);
	m = at(a, 0);
	assert_ptr_equal(tail(b), m);
	assert_ptr_equal(tail(c), m);
	assert_int_equal(m->refs, 4); /* three queues and the room's log */
	assert_int_equal(m->kind, QC_MSG_ROOM);
	assert_int_equal(d->outq.count, 0);

	ev = expect_event(parse_msg(m), "room_message");
	assert_string_equal(sget(ev, "room"), "lobby");
	assert_string_equal(sget(ev, "from"), "alice");
	assert_string_equal(sget(ev, "message_type"), "alert");
	assert_json(get(ev, "content"), "{\"x\":[1,2]}");
	assert_true(iget(ev, "timestamp") > 0);
	resp = expect_ok(last(a), "s1");
	assert_string_equal(sget(resp, "room"), "lobby");
	assert_int_equal(iget(resp, "delivered"), 3);
	assert_string_equal(sget(resp, "message_id"), sget(ev, "message_id"));

	/* each holder owns one reference */
	qc_outq_pop(&b->outq);
	assert_int_equal(m->refs, 3);

	/* a second message gets a new id; default type text */
	rx(e, d,
	   "{\"type\":\"request\",\"request_id\":\"s2\",\"action\":\"send_message\","
	   "\"payload\":{\"room\":\"lobby\",\"content\":\"hi\"}}");
	resp = expect_ok(last(d), "s2");
	assert_int_equal(iget(resp, "delivered"), 3);
	assert_int_equal(d->outq.count, 1); /* a non-member sender gets only the response */
	ev = expect_event(last(c), "room_message");
	assert_string_equal(sget(ev, "message_type"), "text");
	assert_string_equal(sget(ev, "from"), "dave");
	assert_string_equal(sget(ev, "message_id"), sget(resp, "message_id"));
	assert_string_not_equal(sget(ev, "message_id"),
	                        sget(expect_ok(frame(a, 1), "s1"), "message_id"));
}

static void test_send_message_errors(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a;
	uint32_t n;

	env_start(e);
	a = env_open(e, "alice", 0);
	rx(e, a, "{\"type\":\"subscribe\",\"room\":\"lobby\"}");
	expect_ok(last(a), NULL);
	drain(a);

	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"e1\",\"action\":\"send_message\","
	   "\"payload\":{\"room\":\"nowhere\",\"content\":1}}");
	expect_err(last(a), "e1", "NOT_FOUND");
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"e2\",\"action\":\"send_message\","
	   "\"payload\":{\"room\":\"lobby\"}}");
	expect_err(last(a), "e2", "BAD_REQUEST");
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"e3\",\"action\":\"send_message\","
	   "\"payload\":{\"room\":\"lobby\",\"content\":null}}");
	expect_err(last(a), "e3", "BAD_REQUEST");
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"e4\",\"action\":\"send_message\","
	   "\"payload\":{\"room\":\"lobby\",\"content\":1,\"message_type\":\"shout\"}}");
	expect_err(last(a), "e4", "BAD_REQUEST");
	rx(e, a, "{\"type\":\"request\",\"request_id\":\"e5\",\"action\":\"get_stats\"}");
	expect_err(last(a), "e5", "FORBIDDEN");
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"e6\",\"action\":\"fly\",\"trace_id\":\"t\"}");
	expect_err(last(a), "e6", "UNKNOWN_ACTION");
	assert_string_equal(sget(last(a), "trace_id"), "t");
	/* none of the refused sends reached the room */
	n = a->outq.count;
	for (uint32_t i = 0; i < n; i++)
		assert_string_equal(sget(frame(a, i), "type"), "response");
	assert_int_equal(n, 6);
	assert_false(a->closing);
}

static void test_stream_fanout_groups(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *s1, *s2, *s3, *s4, *s5;
	struct qc_msg *m1, *m3, *m5;

	env_start(e);
	s1 = env_open(e, "s1", 0);
	s2 = env_open(e, "s2", 0);
	s3 = env_open(e, "s3", 0);
	s4 = env_open(e, "s4", 0);
	s5 = env_open(e, "s5", 0);
	rx(e, s1,
	   "{\"type\":\"request\",\"request_id\":\"a\",\"action\":\"subscribe_market_stream\","
	   "\"payload\":{\"symbol\":\"AAPL\",\"fields\":[\"price\",\"bid\"]}}");
	rx(e, s2,
	   "{\"type\":\"request\",\"request_id\":\"b\",\"action\":\"subscribe_market_stream\","
	   "\"payload\":{\"symbol\":\"AAPL\",\"fields\":[\"bid\",\"price\",\"bid\",\"price\"]}}");
	rx(e, s3,
	   "{\"type\":\"request\",\"request_id\":\"c\",\"action\":\"subscribe_market_stream\","
	   "\"payload\":{\"symbols\":[\"AAPL\"],\"fields\":[\"volume\",\"price\"]}}");
	rx(e, s4,
	   "{\"type\":\"request\",\"request_id\":\"d\",\"action\":\"subscribe_market_stream\","
	   "\"payload\":{\"symbol\":\"AAPL\",\"fields\":[\"ask\"]}}");
	rx(e, s5,
	   "{\"type\":\"request\",\"request_id\":\"e\",\"action\":\"subscribe_market_stream\","
	   "\"payload\":{\"symbol\":\"AAPL\"}}");
	/* no data yet: response only, no snapshot */
	assert_int_equal(s1->outq.count, 2);
	assert_json(get(expect_ok(last(s1), "a"), "subscribed"), "[\"AAPL\"]");
	assert_int_equal(s5->outq.count, 2);
	expect_ok(last(s5), "e");
	drain(s1);
	drain(s2);
	drain(s3);
	drain(s4);
	drain(s5);

	publish(e,
	        "{\"symbol\":\"AAPL\",\"data\":{\"price\":10.5,\"bid\":10.25,\"volume\":300},"
	        "\"message_id\":\"t1\"}",
	        1, 0, 0);

	assert_int_equal(s1->outq.count, 1);
	assert_int_equal(s2->outq.count, 1);
	assert_int_equal(s3->outq.count, 1);
	assert_int_equal(s4->outq.count, 0); /* carries none of its fields */
	assert_int_equal(s5->outq.count, 1);
	m1 = tail(s1);
	m3 = tail(s3);
	m5 = tail(s5);
	assert_ptr_equal(tail(s2), m1);
	assert_ptr_not_equal(m3, m1);
	assert_ptr_not_equal(m5, m1);
	assert_ptr_not_equal(m5, m3);
	assert_int_equal(m1->refs, 2);
	assert_int_equal(m3->refs, 1);
	assert_int_equal(m1->kind, QC_MSG_TICK);
	assert_int_equal(m1->seq, 1);
	assert_int_equal(m1->stream_id, m3->stream_id);

	assert_json(expect_tick(parse_msg(m1), "AAPL", 1, NULL), "{\"price\":10.5,\"bid\":10.25}");
	assert_string_equal(sget(get(parse_msg(m1), "data"), "message_id"), "t1");
	assert_json(expect_tick(parse_msg(m3), "AAPL", 1, NULL), "{\"price\":10.5,\"volume\":300}");
	assert_json(expect_tick(parse_msg(m5), "AAPL", 1, NULL),
	            "{\"price\":10.5,\"bid\":10.25,\"volume\":300}");

	/* a tick with only ask: s4 and s5 only; its seq is simply skipped for the others */
	publish(e, "{\"symbol\":\"AAPL\",\"data\":{\"ask\":11}}", 1, 0, 0);
	assert_int_equal(s1->outq.count, 1);
	assert_int_equal(s3->outq.count, 1);
	assert_int_equal(s4->outq.count, 1);
	assert_json(expect_tick(last(s4), "AAPL", 2, NULL), "{\"ask\":11}");
	assert_null(json_object_get(get(last(s4), "data"), "message_id"));
	assert_int_equal(s5->outq.count, 2);

	assert_int_equal(stat_get(e, "streaming", "total_messages"), 2);
	assert_int_equal(stat_get(e, "streaming", "total_subscribers"), 5);
	assert_int_equal(stat_get(e, "streaming", "active_streams"), 1);
	assert_int_equal(stat_get(e, "streaming", "total_deliveries"), 4 + 2);

	/* unsubscribing twice: the second is NOT_FOUND */
	rx(e, s4,
	   "{\"type\":\"request\",\"request_id\":\"u1\",\"action\":\"unsubscribe_market_stream\","
	   "\"payload\":{\"symbol\":\"AAPL\"}}");
	assert_json(get(expect_ok(last(s4), "u1"), "unsubscribed"), "[\"AAPL\"]");
	rx(e, s4,
	   "{\"type\":\"request\",\"request_id\":\"u2\",\"action\":\"unsubscribe_market_stream\","
	   "\"payload\":{\"symbol\":\"AAPL\"}}");
	expect_err(last(s4), "u2", "NOT_FOUND");
	assert_int_equal(stat_get(e, "streaming", "total_subscribers"), 4);
}

static void test_stream_snapshot_and_replay(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *x, *y, *n, *z, *w, *v;
	json_t *d, *st;

	e->cfg.streams.buffer_size = 4;
	env_start(e);
	publish(e,
	        "{\"ticks\":[{\"symbol\":\"AAPL\",\"data\":{\"price\":1,\"volume\":10}},"
	        "{\"symbol\":\"AAPL\",\"data\":{\"price\":2},\"message_id\":\"m2\"},"
	        "{\"symbol\":\"AAPL\",\"data\":{\"price\":3,\"bid\":2}}]}",
	        3, 0, 0);

	/* since_seq inside the ring: response, complete replay, no snapshot */
	x = env_open(e, "x", 0);
	drain(x);
	rx(e, x,
	   "{\"type\":\"request\",\"request_id\":\"x1\",\"action\":\"subscribe_market_stream\","
	   "\"payload\":{\"symbol\":\"AAPL\",\"since_seq\":1}}");
	assert_int_equal(x->outq.count, 3);
	d = expect_ok(frame(x, 0), "x1");
	assert_true(bget(d, "recovered"));
	st = json_array_get(get(d, "streams"), 0);
	assert_non_null(st);
	assert_string_equal(sget(st, "symbol"), "AAPL");
	assert_int_equal(iget(st, "last_seq"), 3);
	assert_int_equal(iget(st, "oldest_seq"), 1);
	assert_true(bget(st, "recovered"));
	assert_json(expect_tick(frame(x, 1), "AAPL", 2, "replay"), "{\"price\":2}");
	assert_string_equal(sget(get(frame(x, 1), "data"), "message_id"), "m2");
	assert_json(expect_tick(frame(x, 2), "AAPL", 3, "replay"), "{\"price\":3,\"bid\":2}");

	/* no since_seq: response then the merged, filtered snapshot */
	y = env_open(e, "y", 0);
	drain(y);
	rx(e, y,
	   "{\"type\":\"request\",\"request_id\":\"y1\",\"action\":\"subscribe_market_stream\","
	   "\"payload\":{\"symbol\":\"AAPL\",\"fields\":[\"price\",\"volume\"]}}");
	assert_int_equal(y->outq.count, 2);
	d = expect_ok(frame(y, 0), "y1");
	assert_null(json_object_get(d, "recovered"));
	assert_json(expect_tick(frame(y, 1), "AAPL", 3, "snapshot"), "{\"price\":3,\"volume\":10}");

	/* snapshot:false: the response alone */
	n = env_open(e, "n", 0);
	drain(n);
	rx(e, n,
	   "{\"type\":\"request\",\"request_id\":\"n1\",\"action\":\"subscribe_market_stream\","
	   "\"payload\":{\"symbol\":\"AAPL\",\"snapshot\":false}}");
	assert_int_equal(n->outq.count, 1);
	expect_ok(frame(n, 0), "n1");

	/* live ticks come after the catch-up */
	publish(e, "{\"symbol\":\"AAPL\",\"data\":{\"price\":4}}", 1, 0, 0);
	assert_int_equal(y->outq.count, 3);
	assert_json(expect_tick(frame(y, 2), "AAPL", 4, NULL), "{\"price\":4}");
	assert_int_equal(x->outq.count, 4);
	expect_tick(frame(x, 3), "AAPL", 4, NULL);
	assert_int_equal(n->outq.count, 2);

	/* the ring (4) now holds 3..6 */
	publish(e,
	        "[{\"symbol\":\"AAPL\",\"data\":{\"price\":5}},"
	        "{\"symbol\":\"AAPL\",\"data\":{\"price\":6,\"ask\":7}}]",
	        2, 0, 0);

	/* since_seq 1: seq 2 is gone -> recovered:false, replay 3..6, then the snapshot */
	z = env_open(e, "z", 0);
	drain(z);
	rx(e, z,
	   "{\"type\":\"request\",\"request_id\":\"z1\",\"action\":\"subscribe_market_stream\","
	   "\"payload\":{\"symbol\":\"AAPL\",\"since_seq\":1}}");
	assert_int_equal(z->outq.count, 6);
	d = expect_ok(frame(z, 0), "z1");
	assert_false(bget(d, "recovered"));
	st = json_array_get(get(d, "streams"), 0);
	assert_false(bget(st, "recovered"));
	assert_int_equal(iget(st, "oldest_seq"), 3);
	assert_int_equal(iget(st, "last_seq"), 6);
	for (uint32_t i = 0; i < 4; i++)
		expect_tick(frame(z, 1 + i), "AAPL", 3 + i, "replay");
	assert_json(expect_tick(frame(z, 5), "AAPL", 6, "snapshot"),
	            "{\"price\":6,\"volume\":10,\"bid\":2,\"ask\":7}");

	/* since_seq 2: the ring still reaches back (3 is the oldest) */
	w = env_open(e, "w", 0);
	drain(w);
	rx(e, w,
	   "{\"type\":\"request\",\"request_id\":\"w1\",\"action\":\"subscribe_market_stream\","
	   "\"payload\":{\"symbol\":\"AAPL\",\"since_seq\":2,\"fields\":[\"ask\"]}}");
	d = expect_ok(frame(w, 0), "w1");
	assert_true(bget(d, "recovered"));
	/* filtered replay: only seq 6 carries ask; no snapshot after a complete replay */
	assert_int_equal(w->outq.count, 2);
	assert_json(expect_tick(frame(w, 1), "AAPL", 6, "replay"), "{\"ask\":7}");

	/* since_seq == last_seq: nothing to replay, nothing to snapshot */
	v = env_open(e, "v", 0);
	drain(v);
	rx(e, v,
	   "{\"type\":\"request\",\"request_id\":\"v1\",\"action\":\"subscribe_market_stream\","
	   "\"payload\":{\"symbol\":\"AAPL\",\"since_seq\":6}}");
	assert_int_equal(v->outq.count, 1);
	assert_true(bget(expect_ok(frame(v, 0), "v1"), "recovered"));
}

static void test_conflation(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *c, *d;
	struct qc_msg *r0, *r1, *x1;
	char big[601];

	e->cfg.limits.conflate_bytes = 800;
	e->cfg.limits.max_send_queue_bytes = 1u << 20;
	env_start(e);
	c = env_open(e, "slow", 0);
	d = env_open(e, "fast", 0);
	rx(e, c,
	   "{\"type\":\"request\",\"request_id\":\"s\",\"action\":\"subscribe_market_stream\","
	   "\"payload\":{\"symbols\":[\"AAPL\",\"MSFT\"]}}");
	rx(e, c, "{\"type\":\"subscribe\",\"room\":\"news\"}");
	rx(e, d,
	   "{\"type\":\"request\",\"request_id\":\"s\",\"action\":\"subscribe_market_stream\","
	   "\"payload\":{\"symbol\":\"AAPL\"}}");
	drain(c);
	drain(d);

	assert_int_equal(broadcast(e, "news", "r0"), 1);
	r0 = tail(c);
	publish(e,
	        "{\"symbol\":\"AAPL\",\"data\":{\"price\":1,\"volume\":100},\"message_id\":\"a1\"}",
	        1, 0, 0);
	publish(e, "{\"symbol\":\"MSFT\",\"data\":{\"last\":50}}", 1, 0, 0);
	x1 = tail(c);
	publish(e, "{\"symbol\":\"AAPL\",\"data\":{\"price\":2},\"message_id\":\"a2\"}", 1, 0, 0);
	/* below the threshold everything queues as it is */
	assert_int_equal(c->outq.count, 4);
	assert_true(c->outq.bytes <= e->cfg.limits.conflate_bytes);
	expect_tick(frame(c, 1), "AAPL", 1, NULL);
	expect_tick(frame(c, 3), "AAPL", 2, NULL);
	assert_int_equal(stat_get(e, "streaming", "total_conflated"), 0);

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(broadcast(e, "news", big), 1);
	r1 = tail(c);
	assert_int_equal(c->outq.count, 5);
	assert_true(c->outq.bytes > e->cfg.limits.conflate_bytes);

	drain(d);
	publish(e, "{\"symbol\":\"AAPL\",\"data\":{\"price\":3,\"bid\":2.5},\"message_id\":\"a3\"}",
	        1, 0, 0);
	/* T1 and T2 merged with T3 into one frame at the tail */
	assert_int_equal(c->outq.count, 4);
	assert_int_equal(stat_get(e, "streaming", "total_conflated"), 2);
	assert_json(expect_tick(last(c), "AAPL", 3, "conflated"),
	            "{\"price\":3,\"volume\":100,\"bid\":2.5}");
	/* the subscriber with an empty queue got the plain tick, not the merged frame */
	assert_int_equal(d->outq.count, 1);
	assert_ptr_not_equal(tail(d), tail(c));
	assert_json(expect_tick(last(d), "AAPL", 3, NULL), "{\"price\":3,\"bid\":2.5}");

	publish(e, "{\"symbol\":\"AAPL\",\"data\":{\"price\":4},\"message_id\":\"a4\"}", 1, 0, 0);
	assert_int_equal(c->outq.count, 4);
	assert_int_equal(stat_get(e, "streaming", "total_conflated"), 3);

	/* room messages and the other symbol's tick keep their order, untouched */
	assert_ptr_equal(at(c, 0), r0);
	assert_ptr_equal(at(c, 1), x1);
	assert_ptr_equal(at(c, 2), r1);
	assert_string_equal(sget(expect_event(frame(c, 0), "room_message"), "content"), "r0");
	assert_json(expect_tick(frame(c, 1), "MSFT", 1, NULL), "{\"last\":50}");
	assert_string_equal(sget(expect_event(frame(c, 2), "room_message"), "content"), big);
	assert_json(expect_tick(frame(c, 3), "AAPL", 4, "conflated"),
	            "{\"price\":4,\"volume\":100,\"bid\":2.5}");
	assert_string_equal(sget(get(frame(c, 3), "data"), "message_id"), "a4");
	assert_int_equal(at(c, 3)->kind, QC_MSG_TICK);
	assert_int_equal(at(c, 3)->seq, 4);

	/* the queue's byte count still matches its frames */
	{
		size_t bytes = 0;

		for (uint32_t i = 0; i < c->outq.count; i++)
			bytes += at(c, i)->len;
		assert_int_equal(bytes, c->outq.bytes);
	}
	assert_false(c->closing);
	assert_int_equal(e->f.nclose, 0);
	assert_int_equal(stat_get(e, "streaming", "total_messages"), 5);

	/* the lag view: what each receiver had merged away, the slow one first */
	assert_int_equal(c->conflated, 3);
	assert_int_equal(d->conflated, 0);
	{
		json_t *v = keep(qc_hub_connections(e->h, QC_LAG_SORT_LAG, 1));
		json_t *list = get(v, "connections"), *first = json_array_get(list, 0);
		struct qc_conn *a = env_open(e, "ops", QC_ROLE_ADMIN);

		assert_int_equal(iget(v, "total"), 2);
		assert_int_equal(json_array_size(list), 1);
		assert_int_equal(iget(first, "connection_id"), c->id);
		assert_string_equal(sget(first, "user_id"), "slow");
		assert_string_equal(sget(first, "transport"), "ws");
		assert_int_equal(iget(first, "queued_bytes"), c->outq.bytes);
		assert_int_equal(iget(first, "conflated"), 3);
		assert_int_equal(iget(first, "dropped"), 0);
		assert_int_equal(iget(first, "rooms"), 1);
		assert_int_equal(iget(first, "streams"), 2);
		assert_int_equal(iget(first, "connected_at"), c->connected_at_ms);
		/* the action: role admin only; the same document */
		drain(a);
		rx(e, d,
		   "{\"type\":\"request\",\"request_id\":\"g\",\"action\":\"get_connections\"}");
		assert_string_equal(sget(get(last(d), "error"), "code"), "FORBIDDEN");
		rx(e, a,
		   "{\"type\":\"request\",\"request_id\":\"g\",\"action\":\"get_connections\","
		   "\"payload\":{\"sort\":\"lag\",\"limit\":2}}");
		v = expect_ok(last(a), "g");
		assert_int_equal(iget(v, "total"), 3);
		assert_int_equal(json_array_size(get(v, "connections")), 2);
		assert_int_equal(iget(json_array_get(get(v, "connections"), 0), "connection_id"),
		                 c->id);
	}
}

static void test_slow_consumer_closed(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *v, *s;
	const struct close_call *cc;
	char content[201];
	json_int_t n;
	uint32_t count;
	int i;

	e->cfg.limits.max_send_queue_bytes = 2048;
	e->cfg.limits.conflate_bytes = 1024;
	env_start(e);
	v = env_open(e, "victim", 0);
	s = env_open(e, "sender", 0);
	rx(e, v, "{\"type\":\"subscribe\",\"room\":\"flood\"}");
	rx(e, v,
	   "{\"type\":\"request\",\"action\":\"subscribe_market_stream\","
	   "\"payload\":{\"symbol\":\"AAPL\"}}");
	rx(e, s, "{\"type\":\"subscribe\",\"room\":\"flood\"}");
	drain(s);
	memset(content, 'y', sizeof(content) - 1);
	content[sizeof(content) - 1] = '\0';

	for (i = 0; i < 100 && !v->closing; i++) {
		/* the broadcast that closes the victim is not delivered to it */
		n = broadcast(e, "flood", content);
		assert_int_equal(n, v->closing ? 1 : 2);
		assert_true(v->outq.bytes <= e->cfg.limits.max_send_queue_bytes);
		drain(s);
	}
	assert_true(i > 1 && i < 100);
	assert_int_equal(v->closing, QC_CLOSE_NOW);
	assert_int_equal(v->close_code, 4008);
	assert_int_equal(closes(&e->f, v), 1);
	cc = last_close(&e->f, v);
	assert_int_equal(cc->code, 4008);
	assert_int_equal(cc->how, QC_CLOSE_NOW);
	assert_false(s->closing);
	assert_int_equal(closes(&e->f, s), 0);

	/* nothing more is queued: rooms, streams, answers */
	count = v->outq.count;
	assert_int_equal(broadcast(e, "flood", "after"), 1);
	publish(e, "{\"symbol\":\"AAPL\",\"data\":{\"price\":1}}", 1, 0, 0);
	rx(e, v, "{\"type\":\"ping\",\"request_id\":\"p\"}");
	rx(e, v, "not json");
	assert_int_equal(v->outq.count, count);
	assert_int_equal(s->outq.count, 1);

	/* a later graceful close does not downgrade it or ask again */
	qc_hub_close(e->h, v, 1000, QC_CLOSE_AFTER_DRAIN);
	assert_int_equal(v->closing, QC_CLOSE_NOW);
	assert_int_equal(v->close_code, 4008);
	assert_int_equal(closes(&e->f, v), 1);
	assert_int_equal(qc_hub_send(e->h, v, tail(s)), -EPIPE);
	assert_int_equal(v->outq.count, count);

	/* the transport closes it: it leaves the room */
	env_drop(e, v);
	assert_int_equal(broadcast(e, "flood", "later"), 1);
}

static void test_bad_message_budget(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *c;
	const struct close_call *cc;
	uint32_t count;

	e->cfg.limits.max_bad_messages = 3;
	env_start(e);
	c = env_open(e, "bad", 0);
	drain(c);

	rx(e, c, "this is not json");
	expect_err(last(c), NULL, "BAD_JSON");
	qc_hub_rx(e->h, c, "{}", 2, true);
	expect_err(last(c), NULL, "BAD_REQUEST");
	assert_int_equal(closes(&e->f, c), 0);

	/* UNKNOWN_ACTION and good frames do not count */
	rx(e, c, "{\"type\":\"dance\"}");
	expect_err(last(c), NULL, "UNKNOWN_ACTION");
	rx(e, c, "{\"type\":\"request\",\"request_id\":\"u\",\"action\":\"dance\"}");
	expect_err(last(c), "u", "UNKNOWN_ACTION");
	rx(e, c, "{\"type\":\"ping\",\"timestamp\":5}");
	assert_string_equal(sget(last(c), "type"), "pong");
	assert_int_equal(closes(&e->f, c), 0);
	assert_false(c->closing);

	/* the third: still answered (as a response: it has a string request_id), then closed */
	rx(e, c, "{\"request_id\":\"q3\",\"type\":5}");
	expect_err(last(c), "q3", "BAD_REQUEST");
	count = c->outq.count;
	assert_int_equal(count, 6);
	assert_int_equal(closes(&e->f, c), 1);
	cc = last_close(&e->f, c);
	assert_int_equal(cc->code, 1008);
	assert_int_equal(cc->how, QC_CLOSE_AFTER_DRAIN);
	assert_int_equal(cc->queued, count); /* the error was queued before the close */
	assert_int_equal(c->closing, QC_CLOSE_AFTER_DRAIN);
	assert_int_equal(c->close_code, 1008);

	/* closing: later frames are not answered */
	rx(e, c, "{\"type\":\"ping\"}");
	rx(e, c, "garbage");
	assert_int_equal(c->outq.count, count);
	assert_int_equal(closes(&e->f, c), 1);
}

static void test_bad_frame_answers(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *c;

	e->cfg.limits.max_bad_messages = 100;
	env_start(e);
	c = env_open(e, "bad", 0);
	drain(c);

	rx(e, c, "[1,2]");
	expect_err(last(c), NULL, "BAD_REQUEST");
	rx(e, c, "\"\xff\"");
	expect_err(last(c), NULL, "BAD_JSON");
	rx(e, c, "{\"type\":\"ping\",\"request_id\":7}");
	expect_err(last(c), NULL, "BAD_REQUEST");
	rx(e, c, "{\"request_id\":\"r1\"}");
	expect_err(last(c), "r1", "BAD_REQUEST");
	rx(e, c, "{\"type\":\"subscribe\",\"request_id\":\"r2\",\"room\":\"\"}");
	expect_err(last(c), "r2", "BAD_REQUEST");
	rx(e, c, "{\"type\":\"subscribe\",\"room\":7}");
	expect_err(last(c), NULL, "BAD_REQUEST");
	rx(e, c, "{\"type\":\"request\",\"request_id\":\"r3\"}");
	expect_err(last(c), "r3", "BAD_REQUEST");
	rx(e, c,
	   "{\"type\":\"request\",\"request_id\":\"r4\",\"action\":\"get_stats\",\"payload\":[]}");
	expect_err(last(c), "r4", "BAD_REQUEST");
	rx(e, c, "{\"type\":\"nope\",\"request_id\":\"r5\",\"trace_id\":\"tr\"}");
	expect_err(last(c), "r5", "UNKNOWN_ACTION");
	assert_string_equal(sget(last(c), "trace_id"), "tr");
	rxf(e, c, "{\"type\":\"subscribe\",\"request_id\":\"r6\",\"room\":\"%0129d\"}", 0);
	expect_err(last(c), "r6", "BAD_REQUEST");
	rxf(e, c, "{\"type\":\"subscribe\",\"request_id\":\"r7\",\"room\":\"%0128d\"}", 0);
	assert_int_equal(iget(expect_ok(last(c), "r7"), "members"), 1);
	assert_int_equal(c->outq.count, 11);
	assert_false(c->closing);
}

static void test_rate_limit(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *c;
	const struct close_call *cc;
	uint32_t count;

	e->cfg.limits.rate_per_s = 1;
	e->cfg.limits.rate_burst = 2;
	env_start(e);
	c = env_open(e, "fast", 0);
	drain(c);

	rx(e, c, "{\"type\":\"subscribe\",\"request_id\":\"s1\",\"room\":\"r1\"}");
	expect_ok(last(c), "s1");
	rx(e, c, "{\"type\":\"subscribe\",\"request_id\":\"s2\",\"room\":\"r2\"}");
	expect_ok(last(c), "s2");
	rx(e, c, "{\"type\":\"subscribe\",\"request_id\":\"s3\",\"room\":\"r3\"}");
	expect_err(last(c), "s3", "RATE_LIMITED");
	assert_int_equal(c->outq.count, 3);
	assert_int_equal(stat_get(e, NULL, "total_rooms"), 2); /* r3 was not joined */
	assert_int_equal(c->rooms.count, 2);
	assert_int_equal(closes(&e->f, c), 0);

	/* a second later the bucket holds a token again, and the refusals start over */
	c->rate.last_ms -= 1000;
	rx(e, c, "{\"type\":\"subscribe\",\"request_id\":\"s4\",\"room\":\"r4\"}");
	expect_ok(last(c), "s4");
	assert_int_equal(stat_get(e, NULL, "total_rooms"), 3);
	rx(e, c, "{\"type\":\"ping\"}");
	expect_err(last(c), NULL, "RATE_LIMITED");
	assert_int_equal(closes(&e->f, c), 0);
	assert_false(c->closing);

	/* rate_burst (2) consecutive refusals: closed with 4029 after the answer */
	rx(e, c, "{\"type\":\"subscribe\",\"request_id\":\"s5\",\"room\":\"r5\"}");
	expect_err(last(c), "s5", "RATE_LIMITED");
	count = c->outq.count;
	assert_int_equal(closes(&e->f, c), 1);
	cc = last_close(&e->f, c);
	assert_int_equal(cc->code, 4029);
	assert_int_equal(cc->how, QC_CLOSE_AFTER_DRAIN);
	assert_int_equal(cc->queued, count);
	assert_int_equal(stat_get(e, NULL, "total_rooms"), 3);

	rx(e, c, "{\"type\":\"ping\"}");
	assert_int_equal(c->outq.count, count);

	/* a refused frame is not a bad message: the budget is untouched */
	assert_int_equal(c->bad_messages, 0);
}

/*
 * Publishers (role publisher) have their own rate (limits.publisher_rate_per_s, 0 = unlimited
 * by default): a feed handler sending 1,000 messages a second was cut to the subscribers' 100.
 */
/* The one frame queued for @c is a pong (without keeping a parsed copy of it). */
static void expect_pong(struct qc_conn *c)
{
	struct qc_msg *m = tail(c);

	assert_int_equal(c->outq.count, 1);
	assert_non_null(memmem(qc_msg_frame(m), m->len, "\"type\":\"pong\"", 13));
}

static void test_publisher_rate(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *pub, *sub;
	json_t *st;

	env_start(e); /* the defaults: rate_per_s 100, rate_burst 200, publishers unlimited */
	pub = env_open(e, "feed", QC_ROLE_PUBLISHER);
	sub = env_open(e, "reader", 0);
	drain(pub);
	drain(sub);
	sub->rate.last_ms += 3600 * 1000; /* no refill while the loop runs: the bucket alone */
	for (int i = 0; i < 1000; i++) {
		rx(e, pub, "{\"type\":\"ping\"}");
		expect_pong(pub);
		drain(pub);
	}
	for (int i = 0; i < 200; i++) {
		rx(e, sub, "{\"type\":\"ping\"}");
		drain(sub);
	}
	rx(e, sub, "{\"type\":\"ping\"}");
	expect_err(last(sub), NULL, "RATE_LIMITED");
	assert_int_equal(closes(&e->f, pub), 0);
	env_drop(e, pub);
	env_drop(e, sub);

	/* a publisher rate, when set, is its own: its bucket holds a second of it */
	e->cfg.limits.publisher_rate_per_s = 300;
	pub = env_open(e, "feed", QC_ROLE_PUBLISHER);
	drain(pub);
	pub->rate.last_ms += 3600 * 1000;
	for (int i = 0; i < 300; i++) {
		rx(e, pub, "{\"type\":\"ping\"}");
		expect_pong(pub);
		drain(pub);
	}
	rx(e, pub, "{\"type\":\"ping\"}");
	expect_err(last(pub), NULL, "RATE_LIMITED");
	st = qc_hub_stats(e->h);
	assert_int_equal(json_integer_value(json_object_get(
	                     json_object_get(json_object_get(st, "limits"), "refused"),
	                     "limits.publisher_rate_per_s")),
	                 1);
	json_decref(st);
}

/*
 * HUB BUG (kept on purpose, reported): behaviour.md says every client frame costs a token,
 * but qc_hub_rx() answers a binary frame before it calls qc_rate_take(), so binary frames are
 * never refused with RATE_LIMITED and never count towards the 4029 close.
 */
static void test_rate_limit_binary_frames(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *c;

	e->cfg.limits.rate_per_s = 1;
	e->cfg.limits.rate_burst = 2;
	e->cfg.limits.max_bad_messages = 100;
	env_start(e);
	c = env_open(e, "bin", 0);
	drain(c);

	rx(e, c, "{\"type\":\"ping\"}");
	rx(e, c, "{\"type\":\"ping\"}");
	assert_string_equal(sget(last(c), "type"), "pong");
	qc_hub_rx(e->h, c, "\x01\x02", 2, true);
	expect_err(last(c), NULL, "RATE_LIMITED");
	qc_hub_rx(e->h, c, "\x01\x02", 2, true);
	expect_err(last(c), NULL, "RATE_LIMITED");
	assert_int_equal(closes(&e->f, c), 1);
	assert_int_equal(last_close(&e->f, c)->code, 4029);
}

/*
 * HUB BUG (kept on purpose, reported): limits.max_bad_messages accepts up to 1000000, but
 * struct qc_conn counts bad frames in a uint16_t, so past 65535 the count wraps and the 1008
 * close never comes.
 */
static void test_bad_message_budget_above_16_bits(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *c;
	uint32_t i, budget = 65537;

	e->cfg.limits.max_bad_messages = budget;
	e->cfg.limits.rate_per_s = 0;
	env_start(e);
	c = env_open(e, "bad", 0);
	for (i = 1; i < budget; i++) {
		qc_hub_rx(e->h, c, "x", 1, false);
		drain(c);
	}
	assert_int_equal(closes(&e->f, c), 0);
	qc_hub_rx(e->h, c, "x", 1, false);
	expect_err(last(c), NULL, "BAD_JSON");
	assert_int_equal(closes(&e->f, c), 1);
	assert_int_equal(last_close(&e->f, c)->code, 1008);
}

static void test_room_limits_and_cleanup(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a, *b, *c;
	json_t *d;

	e->cfg.limits.max_rooms_per_connection = 2;
	env_start(e);
	a = env_open(e, "alice", 0);
	b = env_open(e, "bob", 0);
	c = env_open(e, "carol", 0);

	rx(e, a, "{\"type\":\"subscribe\",\"request_id\":\"1\",\"room\":\"r1\"}");
	d = expect_ok(last(a), "1");
	assert_string_equal(sget(d, "room"), "r1");
	assert_int_equal(iget(d, "members"), 1);
	assert_null(json_object_get(d, "already"));
	rx(e, a, "{\"type\":\"subscribe\",\"request_id\":\"2\",\"room\":\"r2\"}");
	expect_ok(last(a), "2");
	rx(e, a, "{\"type\":\"subscribe\",\"request_id\":\"3\",\"room\":\"r1\"}");
	d = expect_ok(last(a), "3");
	assert_true(bget(d, "already"));
	assert_int_equal(iget(d, "members"), 1);
	rx(e, a, "{\"type\":\"subscribe\",\"request_id\":\"4\",\"room\":\"r3\"}");
	expect_err(last(a), "4", "LIMIT_EXCEEDED");
	assert_int_equal(stat_get(e, NULL, "total_rooms"), 2);
	assert_int_equal(a->rooms.count, 2);

	rx(e, a, "{\"type\":\"unsubscribe\",\"request_id\":\"5\",\"room\":\"r3\"}");
	expect_err(last(a), "5", "NOT_FOUND");
	rx(e, b, "{\"type\":\"unsubscribe\",\"request_id\":\"6\",\"room\":\"r1\"}");
	expect_err(last(b), "6", "NOT_FOUND"); /* the room exists, bob is not in it */
	assert_int_equal(b->bad_messages, 0);

	rx(e, b, "{\"type\":\"subscribe\",\"request_id\":\"7\",\"room\":\"r2\"}");
	assert_int_equal(iget(expect_ok(last(b), "7"), "members"), 2);

	/* the last member leaves: the room goes */
	rx(e, a, "{\"type\":\"unsubscribe\",\"request_id\":\"8\",\"room\":\"r1\"}");
	assert_json(expect_ok(last(a), "8"), "{\"room\":\"r1\"}");
	assert_int_equal(stat_get(e, NULL, "total_rooms"), 1);
	rx(e, c,
	   "{\"type\":\"request\",\"request_id\":\"9\",\"action\":\"send_message\","
	   "\"payload\":{\"room\":\"r1\",\"content\":1}}");
	expect_err(last(c), "9", "NOT_FOUND");

	/* below the limit again */
	rx(e, a, "{\"type\":\"subscribe\",\"request_id\":\"10\",\"room\":\"r3\"}");
	expect_ok(last(a), "10");
	assert_int_equal(stat_get(e, NULL, "total_rooms"), 2);
	assert_int_equal(broadcast(e, "r2", "to r2"), 2);
	assert_int_equal(broadcast(e, "r3", "to r3"), 1);

	/* a disconnect leaves every room: r3 (alice alone) goes, r2 (bob too) stays */
	env_drop(e, a);
	assert_int_equal(stat_get(e, NULL, "total_rooms"), 1);
	assert_int_equal(stat_get(e, "rooms", "total_users"), 1);
	assert_int_equal(broadcast(e, "r2", "to r2 again"), 1);
	assert_int_equal(b->rooms.count, 1);
	rx(e, b, "{\"type\":\"unsubscribe\",\"request_id\":\"11\",\"room\":\"r2\"}");
	expect_ok(last(b), "11");
	assert_int_equal(stat_get(e, NULL, "total_rooms"), 0);

	rx(e, c, "{\"type\":\"subscribe\",\"request_id\":\"12\",\"room\":\"r9\"}");
	assert_int_equal(stat_get(e, NULL, "total_rooms"), 1);
	env_drop(e, c);
	assert_int_equal(stat_get(e, NULL, "total_rooms"), 0);

	assert_int_equal(stat_get(e, "rooms", "rooms_created"), 4);
	assert_int_equal(stat_get(e, "rooms", "rooms_deleted"), 4);
	assert_int_equal(stat_get(e, "rooms", "total_join_events"), 5);
	assert_int_equal(stat_get(e, "rooms", "total_leave_events"), 5);
	assert_int_equal(stat_get(e, "connections", "closed_total"), 2);
	assert_int_equal(stat_get(e, NULL, "total_connections"), 1);
}

static void test_admit_and_shutdown(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a, *b;
	const struct close_call *cc;
	const char *reason = NULL;

	e->cfg.limits.max_connections = 2;
	env_start(e);
	assert_int_equal(qc_hub_admit(e->h, 0), 0);
	a = env_open(e, "a", 0);
	assert_int_equal(qc_hub_admit(e->h, 0), 0);
	b = env_open(e, "b", 0);
	assert_int_equal(qc_hub_admit(e->h, 0), -EBUSY);
	assert_int_equal(stat_get(e, "connections", "rejected_total"), 1);
	env_drop(e, b);
	assert_int_equal(qc_hub_admit(e->h, 0), 0);
	assert_int_equal(stat_get(e, "connections", "rejected_total"), 1);
	/* connections the transport holds outside the hub (Socket.IO handshakes) count too */
	assert_int_equal(qc_hub_admit(e->h, 1), -EBUSY);
	assert_int_equal(stat_get(e, "connections", "rejected_total"), 2);
	{
		json_t *st = qc_hub_stats(e->h);
		json_t *refused = json_object_get(json_object_get(st, "limits"), "refused");

		assert_int_equal(
		    json_integer_value(json_object_get(refused, "limits.max_connections")), 2);
		json_decref(st);
	}
	b = env_open(e, "b", 0);
	qc_hub_reject(e->h);
	assert_int_equal(stat_get(e, "connections", "rejected_total"), 3);
	assert_int_equal(stat_get(e, "connections", "accepted_total"), 3);
	assert_int_equal(stat_get(e, "connections", "peak"), 2);
	assert_true(qc_hub_ready(e->h, &reason));
	assert_int_equal(e->f.nclose, 0);

	assert_int_equal(qc_hub_shutdown(e->h), 2);
	assert_int_equal(e->f.nclose, 2);
	assert_int_equal(closes(&e->f, a), 1);
	assert_int_equal(closes(&e->f, b), 1);
	cc = last_close(&e->f, a);
	assert_int_equal(cc->code, 1001);
	assert_int_equal(cc->how, QC_CLOSE_AFTER_DRAIN);
	cc = last_close(&e->f, b);
	assert_int_equal(cc->code, 1001);
	assert_int_equal(cc->how, QC_CLOSE_AFTER_DRAIN);
	/* the session events are still there to be sent */
	assert_int_equal(a->outq.count, 1);

	assert_int_equal(qc_hub_admit(e->h, 0), -ESHUTDOWN);
	assert_int_equal(stat_get(e, "connections", "rejected_total"), 4);
	assert_false(qc_hub_ready(e->h, &reason));
	assert_non_null(reason);
	env_drop(e, a);
	assert_int_equal(qc_hub_admit(e->h, 0), -ESHUTDOWN);
}

/* A fake cluster behind struct qc_cluster_ops: its block in the stats, its say in readiness. */
struct fake_cluster {
	bool up;
	int stats_calls;
};

static json_t *fake_cluster_stats(void *ctx)
{
	struct fake_cluster *fc = ctx;

	fc->stats_calls++;
	return json_pack("{s:b, s:b}", "enabled", 1, "connected", fc->up);
}

static bool fake_cluster_ready(void *ctx, const char **reason)
{
	struct fake_cluster *fc = ctx;

	if (!fc->up)
		*reason = "Redis (cluster.redis) is not connected or not answering";
	return fc->up;
}

static void test_cluster_ops(void **state)
{
	struct env *e = env_new(state);
	struct fake_cluster fc = {.up = true};
	struct qc_cluster_ops ops = {
	    .stats = fake_cluster_stats, .ready = fake_cluster_ready, .ctx = &fc};
	const char *reason = NULL;
	json_t *st;

	env_start(e);
	/* a single node: no block, ready */
	st = qc_hub_stats(e->h);
	assert_null(json_object_get(st, "cluster"));
	json_decref(st);
	assert_true(qc_hub_ready(e->h, &reason));

	qc_hub_set_cluster(e->h, &ops);
	st = qc_hub_stats(e->h);
	assert_true(json_is_true(json_object_get(json_object_get(st, "cluster"), "connected")));
	json_decref(st);
	assert_int_equal(fc.stats_calls, 1);
	assert_true(qc_hub_ready(e->h, &reason));

	fc.up = false;
	assert_false(qc_hub_ready(e->h, &reason));
	assert_string_equal(reason, "Redis (cluster.redis) is not connected or not answering");
	st = qc_hub_stats(e->h);
	assert_true(json_is_false(json_object_get(json_object_get(st, "cluster"), "connected")));
	json_decref(st);
	fc.up = true;
	assert_true(qc_hub_ready(e->h, &reason));
}

/* A fake broker: keeps what it is given; the test answers for it. */
#define FB_MAX 8
struct fake_broker {
	int fail; /* append returns this when not 0 */
	int n;
	char symbol[FB_MAX][16], mid[FB_MAX][16], data[FB_MAX][64];
	qc_broker_append_cb cb[FB_MAX];
	void *arg[FB_MAX];
	int watched;
	char last_watch[16];
};

static int fb_append(void *ctx, const struct qc_broker_tick *t, qc_broker_append_cb cb, void *arg)
{
	struct fake_broker *fb = ctx;

	if (fb->fail)
		return fb->fail;
	assert_true(fb->n < FB_MAX);
	snprintf(fb->symbol[fb->n], sizeof(fb->symbol[0]), "%s", t->symbol);
	snprintf(fb->mid[fb->n], sizeof(fb->mid[0]), "%s", t->message_id ? t->message_id : "");
	snprintf(fb->data[fb->n], sizeof(fb->data[0]), "%.*s", (int)t->data->len, t->data->text);
	fb->cb[fb->n] = cb;
	fb->arg[fb->n] = arg;
	fb->n++;
	return 0;
}

static void fb_watch(void *ctx, const char *symbol)
{
	struct fake_broker *fb = ctx;

	fb->watched++;
	snprintf(fb->last_watch, sizeof(fb->last_watch), "%s", symbol);
}

static void test_broker_publish(void **state)
{
	struct env *e = env_new(state);
	struct fake_broker fb = {0};
	struct qc_broker b = {.append = fb_append, .watch = fb_watch, .ctx = &fb};
	struct qc_conn *pub, *sub;
	json_t *d, *data;

	env_start(e);
	qc_hub_set_broker(e->h, &b);
	sub = env_open(e, "sub", 0);
	pub = env_open(e, "pub", QC_ROLE_PUBLISHER);
	drain(sub);
	drain(pub);
	rx(e, sub,
	   "{\"type\":\"request\",\"request_id\":\"s\",\"action\":\"subscribe_market_stream\","
	   "\"payload\":{\"symbol\":\"ZZ\"}}");
	expect_ok(last(sub), "s");
	drain(sub);
	assert_int_equal(fb.watched, 1);
	assert_string_equal(fb.last_watch, "ZZ");
	assert_true(qc_hub_stream_watched(e->h, "ZZ"));
	assert_false(qc_hub_stream_watched(e->h, "YY"));

	/* the publish waits for the broker: no answer, nothing delivered yet */
	rx(e, pub,
	   "{\"type\":\"request\",\"request_id\":\"p\",\"action\":\"publish_market_data\","
	   "\"payload\":{\"ticks\":[{\"symbol\":\"ZZ\",\"data\":{\"price\":1},"
	   "\"message_id\":\"m1\"},{\"symbol\":\"ZZ\",\"data\":{\"price\":2},"
	   "\"message_id\":\"m2\"}]}}");
	assert_int_equal(pub->outq.count, 0);
	assert_int_equal(sub->outq.count, 0);
	assert_int_equal(fb.n, 2);
	assert_string_equal(fb.mid[0], "m1");
	/* the scanner's compact data reaches the broker as it is: its text is what goes on */
	assert_string_equal(fb.data[0], "{\"price\":1}");
	assert_string_equal(fb.data[1], "{\"price\":2}");
	/* verdicts: answered once the last is in */
	fb.cb[0](fb.arg[0], QC_TICK_ACCEPTED, 7);
	assert_int_equal(pub->outq.count, 0);
	fb.cb[1](fb.arg[1], QC_TICK_DUPLICATE, 0);
	d = expect_ok(last(pub), "p");
	assert_int_equal(iget(d, "accepted"), 1);
	assert_int_equal(iget(d, "duplicates"), 1);
	drain(pub);
	/* the tick comes back from the broker with its seq: delivered with it */
	data = json_pack("{s:i}", "price", 1);
	qc_hub_broker_tick(e->h, "ZZ", "0123456789ab", data, "m1", 7, 1000, false);
	d = expect_event(last(sub), "stream_data");
	assert_int_equal(iget(d, "seq"), 7);
	assert_string_equal(sget(d, "message_id"), "m1");
	/* the broker's epoch: the same on every node */
	assert_string_equal(sget(d, "epoch"), "0123456789ab");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(d, "data"), "price")),
	                 1);
	drain(sub);
	/* a seq the stream has (the log read back overlaps the channel): skipped */
	qc_hub_broker_tick(e->h, "ZZ", "0123456789ab", data, "m1", 7, 1000, false);
	assert_int_equal(sub->outq.count, 0);
	/* another epoch: the log began again (Redis lost it), seq 1 is taken */
	qc_hub_broker_tick(e->h, "ZZ", "ba9876543210", data, "m1", 1, 1001, false);
	d = expect_event(last(sub), "stream_data");
	assert_int_equal(iget(d, "seq"), 1);
	assert_string_equal(sget(d, "epoch"), "ba9876543210");
	drain(sub);
	json_decref(data);

	/* a broker that went away before answering: UNAVAILABLE */
	fb.n = 0;
	rx(e, pub,
	   "{\"type\":\"request\",\"request_id\":\"q\",\"action\":\"publish_market_data\","
	   "\"payload\":{\"symbol\":\"ZZ\",\"data\":{\"price\":3}}}");
	fb.cb[0](fb.arg[0], -ENOTCONN, 0);
	expect_err(last(pub), "q", "UNAVAILABLE");
	drain(pub);
	/* a new symbol past streams.max_symbols (counted in Redis): LIMIT_EXCEEDED, counted once */
	fb.n = 0;
	rx(e, pub,
	   "{\"type\":\"request\",\"request_id\":\"v\",\"action\":\"publish_market_data\","
	   "\"payload\":{\"ticks\":[{\"symbol\":\"NEW1\",\"data\":{\"price\":1}},"
	   "{\"symbol\":\"NEW2\",\"data\":{\"price\":1}}]}}");
	fb.cb[0](fb.arg[0], -ENOSPC, 0);
	fb.cb[1](fb.arg[1], -ENOSPC, 0);
	expect_err(last(pub), "v", "LIMIT_EXCEEDED");
	assert_non_null(strstr(sget(get(last(pub), "error"), "message"), "streams.max_symbols: "));
	d = qc_hub_stats(e->h);
	assert_int_equal(
	    json_integer_value(json_object_get(
	        json_object_get(json_object_get(d, "limits"), "refused"), "streams.max_symbols")),
	    1);
	json_decref(d);
	drain(pub);
	/* a broker that is down: UNAVAILABLE at once; too many waiting: LIMIT_EXCEEDED */
	fb.fail = -ENOTCONN;
	rx(e, pub,
	   "{\"type\":\"request\",\"request_id\":\"r\",\"action\":\"publish_market_data\","
	   "\"payload\":{\"symbol\":\"ZZ\",\"data\":{\"price\":3}}}");
	expect_err(last(pub), "r", "UNAVAILABLE");
	drain(pub);
	fb.fail = -ENOSPC;
	rx(e, pub,
	   "{\"type\":\"request\",\"request_id\":\"t\",\"action\":\"publish_market_data\","
	   "\"payload\":{\"symbol\":\"ZZ\",\"data\":{\"price\":3}}}");
	expect_err(last(pub), "t", "LIMIT_EXCEEDED");
	assert_non_null(strstr(sget(get(last(pub), "error"), "message"), "cluster.max_inflight"));
	drain(pub);
	/* a publisher that left before the verdict: nothing to answer, nothing leaks */
	fb.fail = 0;
	fb.n = 0;
	rx(e, pub,
	   "{\"type\":\"request\",\"request_id\":\"u\",\"action\":\"publish_market_data\","
	   "\"payload\":{\"symbol\":\"ZZ\",\"data\":{\"price\":4}}}");
	env_drop(e, pub);
	fb.cb[0](fb.arg[0], QC_TICK_ACCEPTED, 8);
}

/* A fake broker's loads: answered by the test. */
struct fake_loads {
	int rc; /* load returns this */
	int n;
	char symbol[FB_MAX][16];
	qc_broker_load_cb cb[FB_MAX];
	void *arg[FB_MAX];
};

static int fl_load(void *ctx, const char *symbol, qc_broker_load_cb cb, void *arg)
{
	struct fake_loads *fl = ctx;

	if (fl->rc)
		return fl->rc;
	assert_true(fl->n < FB_MAX);
	snprintf(fl->symbol[fl->n], sizeof(fl->symbol[0]), "%s", symbol);
	fl->cb[fl->n] = cb;
	fl->arg[fl->n] = arg;
	fl->n++;
	return 0;
}

static void fl_watch(void *ctx, const char *symbol)
{
	(void)ctx;
	(void)symbol;
}

/*
 * Cluster mode: a stream request on a node whose stream is not current waits for the broker to
 * read the log back, then is answered from it; the log unreadable: UNAVAILABLE for what needs
 * it, a plain subscribe goes on.
 */
static void test_broker_load(void **state)
{
	struct env *e = env_new(state);
	struct fake_loads fl = {0};
	struct qc_broker b = {.append = fb_append, .watch = fl_watch, .load = fl_load, .ctx = &fl};
	struct qc_conn *c;
	json_t *d, *data;

	env_start(e);
	qc_hub_set_broker(e->h, &b);
	c = env_open(e, "c", 0);
	drain(c);
	rx(e, c,
	   "{\"type\":\"request\",\"request_id\":\"m\",\"action\":\"get_market_data\","
	   "\"payload\":{\"symbol\":\"LL\"}}");
	assert_int_equal(c->outq.count, 0);
	assert_int_equal(fl.n, 1);
	assert_string_equal(fl.symbol[0], "LL");
	/* the log read back: two ticks, then the load is done */
	data = json_pack("{s:i, s:i}", "price", 5, "volume", 9);
	qc_hub_broker_tick(e->h, "LL", "0123456789ab", data, "x1", 41, 1000, false);
	json_decref(data);
	data = json_pack("{s:i}", "price", 6);
	qc_hub_broker_tick(e->h, "LL", "0123456789ab", data, "x2", 42, 1001, false);
	json_decref(data);
	fl.cb[0](fl.arg[0], 0);
	d = expect_ok(last(c), "m");
	assert_int_equal(iget(d, "seq"), 42);
	assert_int_equal(iget(get(d, "data"), "price"), 6);
	assert_int_equal(iget(get(d, "data"), "volume"), 9);
	drain(c);

	/* a subscribe with a position: replayed from the loaded log */
	rx(e, c,
	   "{\"type\":\"request\",\"request_id\":\"s\",\"action\":\"subscribe_market_stream\","
	   "\"payload\":{\"symbol\":\"LL\",\"since_seq\":41,\"epoch\":\"0123456789ab\"}}");
	assert_int_equal(c->outq.count, 0);
	fl.cb[1](fl.arg[1], 0);
	d = expect_ok(frame(c, 0), "s");
	assert_true(json_is_true(get(d, "recovered")));
	d = expect_event(last(c), "stream_data");
	assert_int_equal(iget(d, "seq"), 42);
	drain(c);

	/* the log cannot be read: UNAVAILABLE for what needs it */
	rx(e, c,
	   "{\"type\":\"request\",\"request_id\":\"g\",\"action\":\"get_buffered_data\","
	   "\"payload\":{\"symbol\":\"MM\"}}");
	fl.cb[2](fl.arg[2], -ENOTCONN);
	expect_err(last(c), "g", "UNAVAILABLE");
	drain(c);
	fl.rc = -ENOTCONN;
	rx(e, c,
	   "{\"type\":\"request\",\"request_id\":\"h\",\"action\":\"subscribe_market_stream\","
	   "\"payload\":{\"symbol\":\"MM\",\"since_seq\":3}}");
	expect_err(last(c), "h", "UNAVAILABLE");
	drain(c);
	/* a plain subscribe goes on (live ticks when Redis is back) */
	rx(e, c,
	   "{\"type\":\"request\",\"request_id\":\"p\",\"action\":\"subscribe_market_stream\","
	   "\"payload\":{\"symbol\":\"MM\"}}");
	expect_ok(last(c), "p");
	drain(c);
	/* its log read back later: history, not news; then a snapshot of it */
	data = json_pack("{s:i}", "price", 7);
	qc_hub_broker_tick(e->h, "MM", "0123456789ab", data, "y1", 3, 1000, true);
	json_decref(data);
	data = json_pack("{s:i}", "volume", 8);
	qc_hub_broker_tick(e->h, "MM", "0123456789ab", data, "y2", 4, 1001, true);
	json_decref(data);
	assert_int_equal(c->outq.count, 0);
	qc_hub_broker_loaded(e->h, "MM");
	d = expect_event(last(c), "stream_data");
	assert_true(json_is_true(get(d, "snapshot")));
	assert_int_equal(iget(d, "seq"), 4);
	assert_int_equal(iget(get(d, "data"), "price"), 7);
	assert_int_equal(iget(get(d, "data"), "volume"), 8);
	drain(c);
	/* up to date: nothing more */
	qc_hub_broker_loaded(e->h, "MM");
	assert_int_equal(c->outq.count, 0);
	/* current already: answered at once */
	fl.rc = 1;
	rx(e, c,
	   "{\"type\":\"request\",\"request_id\":\"n\",\"action\":\"get_market_data\","
	   "\"payload\":{\"symbol\":\"LL\"}}");
	expect_ok(last(c), "n");
	drain(c);
	/* a requester that left before the load was done: nothing to answer, nothing leaks */
	fl.rc = 0;
	rx(e, c,
	   "{\"type\":\"request\",\"request_id\":\"q\",\"action\":\"get_market_data\","
	   "\"payload\":{\"symbol\":\"LL\"}}");
	env_drop(e, c);
	fl.cb[3](fl.arg[3], 0);
}

static void expect_publish_refused(struct env *e, const char *doc, enum qc_err want,
                                   const char *mention)
{
	json_t *j = json_loads(doc, JSON_DECODE_ANY, NULL), *out = NULL;
	const char *emsg = NULL;

	assert_non_null(j);
	assert_int_equal(qc_hub_publish(e->h, j, &out, &emsg), want);
	assert_null(out);
	assert_non_null(emsg);
	if (mention && !strstr(emsg, mention))
		fail_msg("message \"%s\" does not name %s", emsg, mention);
	json_decref(j);
}

static void test_publish_all_or_nothing(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *c, *p;

	env_start(e);
	c = env_open(e, "sub", 0);
	rx(e, c,
	   "{\"type\":\"request\",\"request_id\":\"s\",\"action\":\"subscribe_market_stream\","
	   "\"payload\":{\"symbol\":\"AAPL\"}}");
	drain(c);

	expect_publish_refused(e,
	                       "{\"ticks\":[{\"symbol\":\"AAPL\",\"data\":{\"price\":1}},"
	                       "{\"symbol\":\"NEW1\",\"data\":{\"price\":2}},"
	                       "{\"symbol\":\"AAPL\",\"data\":{}}]}",
	                       QC_E_BAD_REQUEST, "ticks[2]");
	expect_publish_refused(e,
	                       "[{\"symbol\":\"AAPL\",\"data\":{\"price\":1}},"
	                       "{\"symbol\":\"bad sym!\",\"data\":{\"price\":2}}]",
	                       QC_E_BAD_REQUEST, "ticks[1]");
	expect_publish_refused(e,
	                       "[{\"symbol\":\"AAPL\",\"data\":{\"price\":1}},"
	                       "{\"symbol\":\"AAPL\",\"data\":{\"price\":2},\"version\":\"x\"}]",
	                       QC_E_BAD_REQUEST, "ticks[1]");
	expect_publish_refused(e,
	                       "[{\"symbol\":\"AAPL\",\"data\":{\"price\":1}},"
	                       "{\"symbol\":\"AAPL\",\"data\":{\"price\":2},\"timestamp\":-1}]",
	                       QC_E_BAD_REQUEST, "ticks[1]");
	expect_publish_refused(e, "[{\"symbol\":\"AAPL\",\"data\":{\"price\":1}}, 5]",
	                       QC_E_BAD_REQUEST, "ticks[1]");
	expect_publish_refused(e, "[]", QC_E_BAD_REQUEST, NULL);
	expect_publish_refused(e, "\"AAPL\"", QC_E_BAD_REQUEST, NULL);

	/* nothing of any refused batch was applied */
	assert_int_equal(c->outq.count, 0);
	assert_int_equal(stat_get(e, "streaming", "total_messages"), 0);
	assert_int_equal(stat_get(e, "streaming", "total_published"), 0);
	assert_int_equal(stat_get(e, "streaming", "active_streams"),
	                 1); /* AAPL, from the subscribe */
	rx(e, c,
	   "{\"type\":\"request\",\"request_id\":\"g\",\"action\":\"get_market_data\","
	   "\"payload\":{\"symbol\":\"AAPL\"}}");
	expect_err(last(c), "g", "NOT_FOUND");
	drain(c);

	/* the same batch without the bad tick goes through */
	publish(e,
	        "{\"ticks\":[{\"symbol\":\"AAPL\",\"data\":{\"price\":1},\"message_id\":\"k1\","
	        "\"version\":5},{\"symbol\":\"NEW1\",\"data\":{\"price\":2}}]}",
	        2, 0, 0);
	assert_int_equal(c->outq.count, 1);
	expect_tick(last(c), "AAPL", 1, NULL);
	assert_int_equal(stat_get(e, "streaming", "active_streams"), 2);
	/* duplicates and stale versions consume no seq and reach no one */
	publish(e,
	        "[{\"symbol\":\"AAPL\",\"data\":{\"price\":9},\"message_id\":\"k1\"},"
	        "{\"symbol\":\"AAPL\",\"data\":{\"price\":9},\"version\":5},"
	        "{\"symbol\":\"AAPL\",\"data\":{\"price\":7},\"version\":6}]",
	        1, 1, 1);
	assert_int_equal(c->outq.count, 2);
	assert_json(expect_tick(last(c), "AAPL", 2, NULL), "{\"price\":7}");
	assert_int_equal(stat_get(e, "streaming", "total_messages"), 3);
	assert_int_equal(stat_get(e, "streaming", "total_published"), 5);
	assert_int_equal(stat_get(e, "streaming", "total_deduplicated"), 1);
	assert_int_equal(stat_get(e, "streaming", "total_dropped"), 1);

	/* over the socket: role publisher required */
	rx(e, c,
	   "{\"type\":\"request\",\"request_id\":\"p1\",\"action\":\"publish_market_data\","
	   "\"payload\":{\"symbol\":\"AAPL\",\"data\":{\"price\":8}}}");
	expect_err(last(c), "p1", "FORBIDDEN");
	assert_int_equal(stat_get(e, "streaming", "total_messages"), 3);
	p = env_open(e, "pub", QC_ROLE_PUBLISHER);
	rx(e, p,
	   "{\"type\":\"request\",\"request_id\":\"p2\",\"action\":\"publish_market_data\","
	   "\"payload\":{\"ticks\":[{\"symbol\":\"AAPL\",\"data\":{\"price\":8}},"
	   "{\"symbol\":\"AAPL\",\"data\":[]}]}}");
	expect_err(last(p), "p2", "BAD_REQUEST");
	assert_int_equal(stat_get(e, "streaming", "total_messages"), 3);
	rx(e, p,
	   "{\"type\":\"request\",\"request_id\":\"p3\",\"action\":\"publish_market_data\","
	   "\"payload\":{\"symbol\":\"AAPL\",\"data\":{\"price\":8}}}");
	assert_json(expect_ok(last(p), "p3"), "{\"accepted\":1,\"duplicates\":0,\"stale\":0}");
	assert_json(expect_tick(last(c), "AAPL", 3, NULL), "{\"price\":8}");
}

/* ---- stream lifetimes: subscribe-only symbols, idle streams ----------------------------- */

static int64_t test_clock_ms;

static int64_t test_clock(void *ctx)
{
	(void)ctx;
	return test_clock_ms;
}

static json_int_t refused(struct env *e, const char *key)
{
	json_t *s = qc_hub_stats(e->h);
	json_t *v = json_object_get(json_object_get(json_object_get(s, "limits"), "refused"), key);
	json_int_t n;

	if (!json_is_integer(v))
		fail_msg("stats limits.refused.%s is missing", key);
	n = json_integer_value(v);
	json_decref(s);
	return n;
}

static void expect_limit(json_t *j, const char *rid, const char *key)
{
	const char *msg;

	expect_err(j, rid, "LIMIT_EXCEEDED");
	msg = sget(get(j, "error"), "message");
	if (strncmp(msg, key, strlen(key)))
		fail_msg("message \"%s\" does not start with %s", msg, key);
}

/*
 * issue 11: one connection subscribing to fresh symbols and unsubscribing, over and over, used
 * up streams.max_symbols for everyone. Subscribe-only symbols are now freed with their last
 * subscriber and bounded apart (streams.max_subscribe_only), so publishers keep their room.
 */
static void test_subscribe_only_symbols_bounded(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *x, *y, *p;

	e->cfg.streams.max_symbols = 2;
	e->cfg.streams.max_subscribe_only = 3;
	env_start(e);
	x = env_open(e, "mallory", 0);
	y = env_open(e, "bob", 0);
	p = env_open(e, "feed", QC_ROLE_PUBLISHER);
	for (int round = 0; round < 50; round++) {
		char rid[16];

		rxf(e, x,
		    "{\"type\":\"request\",\"request_id\":\"s%d\",\"action\":"
		    "\"subscribe_market_stream\",\"payload\":{\"symbols\":[\"R%d.0\",\"R%d.1\","
		    "\"R%d.2\"]}}",
		    round, round, round, round);
		snprintf(rid, sizeof(rid), "s%d", round);
		expect_ok(last(x), rid);
		assert_int_equal(stat_get(e, "streaming", "subscribe_only"), 3);
		rxf(e, x,
		    "{\"type\":\"request\",\"request_id\":\"u%d\",\"action\":"
		    "\"unsubscribe_market_stream\",\"payload\":{\"symbols\":[\"R%d.0\",\"R%d.1\","
		    "\"R%d.2\"]}}",
		    round, round, round, round);
		snprintf(rid, sizeof(rid), "u%d", round);
		expect_ok(last(x), rid);
		drain(x);
	}
	assert_int_equal(stat_get(e, "streaming", "active_streams"), 0);
	assert_int_equal(stat_get(e, "streaming", "subscribe_only"), 0);
	assert_int_equal(stat_get(e, "streaming", "subscribe_only_freed"), 150);

	/* holding max_subscribe_only of them: a fourth is refused, counted, nothing subscribed */
	rx(e, x,
	   "{\"type\":\"request\",\"request_id\":\"h\",\"action\":\"subscribe_market_stream\","
	   "\"payload\":{\"symbols\":[\"H0\",\"H1\",\"H2\"]}}");
	expect_ok(last(x), "h");
	rx(e, x,
	   "{\"type\":\"request\",\"request_id\":\"h4\",\"action\":\"subscribe_market_stream\","
	   "\"payload\":{\"symbols\":[\"H3\"]}}");
	expect_limit(last(x), "h4", "streams.max_subscribe_only");
	assert_int_equal(refused(e, "streams.max_subscribe_only"), 1);
	assert_int_equal(refused(e, "streams.max_symbols"), 0);
	assert_int_equal(x->streams.count, 3);

	/* the feed still publishes new symbols, up to streams.max_symbols */
	rx(e, p,
	   "{\"type\":\"request\",\"request_id\":\"p1\",\"action\":\"publish_market_data\","
	   "\"payload\":{\"ticks\":[{\"symbol\":\"LIVE1\",\"data\":{\"p\":1}},{\"symbol\":"
	   "\"LIVE2\",\"data\":{\"p\":2}}]}}");
	assert_json(expect_ok(last(p), "p1"), "{\"accepted\":2,\"duplicates\":0,\"stale\":0}");
	/* and another client subscribes to them although subscribe-only symbols are full */
	rx(e, y,
	   "{\"type\":\"request\",\"request_id\":\"y\",\"action\":\"subscribe_market_stream\","
	   "\"payload\":{\"symbols\":[\"LIVE1\",\"LIVE2\"]}}");
	expect_ok(frame(y, 1), "y");
	expect_tick(last(y), "LIVE2", 1, "snapshot");
	/* max_symbols itself still holds, for new symbols and for a held one's first tick */
	rx(e, p,
	   "{\"type\":\"request\",\"request_id\":\"p2\",\"action\":\"publish_market_data\","
	   "\"payload\":{\"symbol\":\"LIVE3\",\"data\":{\"p\":3}}}");
	expect_limit(last(p), "p2", "streams.max_symbols");
	rx(e, p,
	   "{\"type\":\"request\",\"request_id\":\"p3\",\"action\":\"publish_market_data\","
	   "\"payload\":{\"symbol\":\"H0\",\"data\":{\"p\":3}}}");
	expect_limit(last(p), "p3", "streams.max_symbols");
	assert_int_equal(refused(e, "streams.max_symbols"), 2);
	assert_int_equal(stat_get(e, "streaming", "active_streams"), 5);
	assert_int_equal(stat_get(e, "streaming", "subscribe_only"), 3);
}

/*
 * A stream with ticks and no subscriber is freed streams.idle_ttl_s after its last subscriber
 * or tick (qc_hub_expire sweeps, on the hub's clock). A resubscribe starts a new life: seq
 * from 1, and a since_seq of the old life is answered recovered:false.
 */
static void test_idle_stream_freed(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a, *b;
	json_t *d;

	e->cfg.streams.idle_ttl_s = 10;
	env_start(e);
	test_clock_ms = 1000000;
	qc_hub_set_clock(e->h, test_clock, NULL);
	a = env_open(e, "alice", 0);
	b = env_open(e, "bob", 0);
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"s\",\"action\":\"subscribe_market_stream\","
	   "\"payload\":{\"symbol\":\"IDL\"}}");
	expect_ok(last(a), "s");
	assert_int_equal(stat_get(e, "streaming", "subscribe_only"), 1);
	publish(e, "{\"symbol\":\"IDL\",\"data\":{\"p\":1}}", 1, 0, 0);
	publish(e, "{\"symbol\":\"IDL\",\"data\":{\"p\":2}}", 1, 0, 0);
	publish(e, "{\"symbol\":\"IDL\",\"data\":{\"p\":3}}", 1, 0, 0);
	expect_tick(last(a), "IDL", 3, NULL);
	assert_int_equal(stat_get(e, "streaming", "subscribe_only"), 0);
	assert_int_equal(stat_get(e, "streaming", "idle_streams"), 0);

	/* subscribed, it is never idle, however long */
	test_clock_ms += 1000000;
	qc_hub_expire(e->h);
	assert_int_equal(stat_get(e, "streaming", "active_streams"), 1);
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"u\",\"action\":\"unsubscribe_market_stream\","
	   "\"payload\":{\"symbol\":\"IDL\"}}");
	expect_ok(last(a), "u");
	assert_int_equal(stat_get(e, "streaming", "idle_streams"), 1);
	test_clock_ms += 9000;
	qc_hub_expire(e->h);
	/* still there for recovery and get_market_data; a tick restarts its TTL */
	rx(e, b,
	   "{\"type\":\"request\",\"request_id\":\"g\",\"action\":\"get_market_data\","
	   "\"payload\":{\"symbol\":\"IDL\"}}");
	assert_int_equal(iget(expect_ok(last(b), "g"), "seq"), 3);
	publish(e, "{\"symbol\":\"IDL\",\"data\":{\"p\":4}}", 1, 0, 0);
	test_clock_ms += 9999;
	qc_hub_expire(e->h);
	assert_int_equal(stat_get(e, "streaming", "active_streams"), 1);
	test_clock_ms += 1;
	qc_hub_expire(e->h);
	assert_int_equal(stat_get(e, "streaming", "active_streams"), 0);
	assert_int_equal(stat_get(e, "streaming", "idle_streams"), 0);
	assert_int_equal(stat_get(e, "streaming", "idle_freed"), 1);
	rx(e, b,
	   "{\"type\":\"request\",\"request_id\":\"g2\",\"action\":\"get_market_data\","
	   "\"payload\":{\"symbol\":\"IDL\"}}");
	expect_err(last(b), "g2", "NOT_FOUND");

	/* a client resuming at seq 4 of the old life: not recovered, nothing replayed */
	drain(a);
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"r\",\"action\":\"subscribe_market_stream\","
	   "\"payload\":{\"symbol\":\"IDL\",\"since_seq\":4}}");
	assert_int_equal(a->outq.count, 1);
	d = expect_ok(last(a), "r");
	assert_false(bget(d, "recovered"));
	assert_int_equal(iget(json_array_get(get(d, "streams"), 0), "last_seq"), 0);
	/* the new life counts from 1 */
	publish(e, "{\"symbol\":\"IDL\",\"data\":{\"p\":5}}", 1, 0, 0);
	assert_json(expect_tick(last(a), "IDL", 1, NULL), "{\"p\":5}");
	/* still behind the old position: not recovered either; the snapshot brings it up */
	drain(b);
	rx(e, b,
	   "{\"type\":\"request\",\"request_id\":\"r2\",\"action\":\"subscribe_market_stream\","
	   "\"payload\":{\"symbol\":\"IDL\",\"since_seq\":4}}");
	assert_false(bget(expect_ok(frame(b, 0), "r2"), "recovered"));
	assert_json(expect_tick(last(b), "IDL", 1, "snapshot"), "{\"p\":5}");
}

/*
 * A suspended session holds its streams through its subscriptions: however long the idle TTL
 * runs meanwhile, its streams stay, and the resume recovers the missed ticks from the ring.
 */
static void test_suspended_session_holds_streams(void **state)
{
	struct env *e = env_new(state);
	char tok[QC_SESSION_ID_LEN + QC_SECRET_LEN + 1];
	struct qc_conn *a, *r;
	json_t *d;

	e->cfg.sessions.ttl_s = 30;
	e->cfg.streams.idle_ttl_s = 5;
	env_start(e);
	test_clock_ms = 0;
	qc_hub_set_clock(e->h, test_clock, NULL);
	a = env_open(e, "alice", 0);
	snprintf(tok, sizeof(tok), "%s",
	         sget(expect_event(frame(a, 0), "session"), "resume_token"));
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"s\",\"action\":\"subscribe_market_stream\","
	   "\"payload\":{\"symbols\":[\"HLD\",\"PEND\"]}}");
	expect_ok(last(a), "s");
	publish(e, "{\"symbol\":\"HLD\",\"data\":{\"p\":1}}", 1, 0, 0);
	drain(a);
	env_drop(e, a);
	assert_int_equal(stat_get(e, "reconnection", "suspended"), 1);
	publish(e, "{\"symbol\":\"HLD\",\"data\":{\"p\":2}}", 1, 0, 0);
	publish(e, "{\"symbol\":\"HLD\",\"data\":{\"p\":3}}", 1, 0, 0);
	test_clock_ms += 1000000; /* the streams' clock only: the session is not expired */
	qc_hub_expire(e->h);
	assert_int_equal(stat_get(e, "streaming", "active_streams"), 2);
	assert_int_equal(stat_get(e, "streaming", "subscribe_only"), 1);
	assert_int_equal(stat_get(e, "streaming", "idle_freed"), 0);

	r = qc_hub_resume(e->h, tok, "alice", 0, e);
	assert_ptr_equal(r, a);
	e->conns[0] = r;
	d = expect_event(frame(r, 0), "session");
	assert_true(bget(d, "resumed"));
	assert_true(bget(d, "recovered"));
	assert_json(expect_tick(frame(r, 1), "HLD", 2, "replay"), "{\"p\":2}");
	assert_json(expect_tick(frame(r, 2), "HLD", 3, "replay"), "{\"p\":3}");
	/* let go, the stream with ticks waits out its TTL; the other one goes at once */
	rx(e, r,
	   "{\"type\":\"request\",\"request_id\":\"u\",\"action\":\"unsubscribe_market_stream\","
	   "\"payload\":{\"symbols\":[\"HLD\",\"PEND\"]}}");
	expect_ok(last(r), "u");
	assert_int_equal(stat_get(e, "streaming", "subscribe_only"), 0);
	assert_int_equal(stat_get(e, "streaming", "idle_streams"), 1);
	test_clock_ms += 5000;
	qc_hub_expire(e->h);
	assert_int_equal(stat_get(e, "streaming", "active_streams"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_session_first_and_want_write_edge, teardown),
	    cmocka_unit_test_teardown(test_cluster_ops, teardown),
	    cmocka_unit_test_teardown(test_broker_publish, teardown),
	    cmocka_unit_test_teardown(test_broker_load, teardown),
	    cmocka_unit_test_teardown(test_room_message_encoded_once, teardown),
	    cmocka_unit_test_teardown(test_send_message_errors, teardown),
	    cmocka_unit_test_teardown(test_stream_fanout_groups, teardown),
	    cmocka_unit_test_teardown(test_stream_snapshot_and_replay, teardown),
	    cmocka_unit_test_teardown(test_conflation, teardown),
	    cmocka_unit_test_teardown(test_slow_consumer_closed, teardown),
	    cmocka_unit_test_teardown(test_bad_message_budget, teardown),
	    cmocka_unit_test_teardown(test_bad_frame_answers, teardown),
	    cmocka_unit_test_teardown(test_rate_limit, teardown),
	    cmocka_unit_test_teardown(test_rate_limit_binary_frames, teardown),
	    cmocka_unit_test_teardown(test_publisher_rate, teardown),
	    cmocka_unit_test_teardown(test_bad_message_budget_above_16_bits, teardown),
	    cmocka_unit_test_teardown(test_room_limits_and_cleanup, teardown),
	    cmocka_unit_test_teardown(test_admit_and_shutdown, teardown),
	    cmocka_unit_test_teardown(test_publish_all_or_nothing, teardown),
	    cmocka_unit_test_teardown(test_subscribe_only_symbols_bounded, teardown),
	    cmocka_unit_test_teardown(test_idle_stream_freed, teardown),
	    cmocka_unit_test_teardown(test_suspended_session_holds_streams, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
