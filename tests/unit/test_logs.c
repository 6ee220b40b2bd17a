/*
 * test_logs: the logs of SPEC 2.9 (hub_log.c) as clients see them through the hub's fake
 * transport: room events and inbox events with seq and epoch, the bounds of a room log by size
 * and by age (an injected clock), targeting applied on read-back, epochs (a foreign one is
 * never replayed), room read-back by subscribe with since_seq, and the resume request with
 * positions: the suspended session takes the fresh connection's place and each log is read
 * back from the client's position, exactly once, rooms then inbox then streams.
 */
#define HUB_ENV_TTL_S 30
#include "hub_env.h"

#include "../../src/hub_priv.h"

#define TOKEN_LEN (QC_SESSION_ID_LEN + QC_SECRET_LEN)

static int64_t fake_now;

static int64_t test_clock(void *ctx)
{
	(void)ctx;
	return fake_now;
}

static void say(struct env *e, struct qc_conn *c, const char *room, const char *content)
{
	rxf(e, c,
	    "{\"type\":\"request\",\"request_id\":\"s\",\"action\":\"send_message\","
	    "\"payload\":{\"room\":\"%s\",\"content\":\"%s\"}}",
	    room, content);
	expect_ok(last(c), "s");
}

static void dm(struct env *e, struct qc_conn *admin, const char *user, const char *content)
{
	rxf(e, admin,
	    "{\"type\":\"request\",\"request_id\":\"d\",\"action\":\"send_to_user\","
	    "\"payload\":{\"user_id\":\"%s\",\"content\":\"%s\"}}",
	    user, content);
	expect_ok(last(admin), "d");
}

/* The room_message at frame @i of @c: its content, seq and epoch. */
static json_int_t room_msg(const struct qc_conn *c, uint32_t i, const char *content,
                           const char **epoch)
{
	json_t *d = expect_event(frame(c, i), "room_message");

	assert_string_equal(sget(d, "content"), content);
	assert_true(is_hex(sget(d, "epoch"), 12));
	if (epoch)
		*epoch = sget(d, "epoch");
	return iget(d, "seq");
}

static void token_of(const struct qc_conn *c, uint32_t i, char tok[TOKEN_LEN + 1])
{
	json_t *d = expect_event(frame(c, i), "session");

	snprintf(tok, TOKEN_LEN + 1, "%s", sget(d, "resume_token"));
}

/* ---- room logs --------------------------------------------------------------------------- */

/*
 * Cluster mode: entries put with the broker's seq and epoch (qc_log_put) and older ones put
 * in front (qc_log_prepend), as a node reading a room's log from Redis does.
 */
static void test_log_put_prepend(void **state)
{
	struct env *e = env_new(state);
	struct qc_log *l;
	bool dup;

	env_start(e);
	l = qc_log_new(e->h, QC_LOG_ROOM, 4, 0, "aaaaaaaaaaaa", 0);
	assert_non_null(l);
	/* the broker's log is at 10: a first put takes its epoch and seq */
	assert_non_null(qc_log_put(l, 11, "bbbbbbbbbbbb", "m", json_object(), NULL, 0, 0, &dup));
	assert_string_equal(l->epoch, "bbbbbbbbbbbb");
	assert_int_equal(l->last_seq, 11);
	assert_int_equal(qc_log_first(l), 11);
	/* a seq already kept is ignored; the next one follows */
	assert_null(qc_log_put(l, 11, "bbbbbbbbbbbb", "m", json_object(), NULL, 0, 0, &dup));
	assert_true(dup);
	assert_non_null(qc_log_put(l, 12, "bbbbbbbbbbbb", "m", json_object(), NULL, 0, 0, &dup));
	assert_false(dup);
	/* older entries go in front, only the one just before the oldest */
	assert_int_equal(qc_log_prepend(l, 9, "m", json_object(), NULL, 0, 0), -ERANGE);
	assert_int_equal(qc_log_prepend(l, 10, "m", json_object(), NULL, 0, 0), 0);
	assert_int_equal(qc_log_prepend(l, 9, "m", json_object(), NULL, 0, 0), 0);
	assert_int_equal(qc_log_first(l), 9);
	assert_true(qc_log_reaches(l, "bbbbbbbbbbbb", 8));
	for (uint32_t i = 0; i < 4; i++)
		assert_int_equal(qc_log_after(l, 8, i)->seq, 9 + i);
	/* full: nothing more in front */
	assert_int_equal(qc_log_prepend(l, 8, "m", json_object(), NULL, 0, 0), -ERANGE);
	/* a gap empties the log: what was before it cannot be read back */
	assert_non_null(qc_log_put(l, 20, "bbbbbbbbbbbb", "m", json_object(), NULL, 0, 0, &dup));
	assert_int_equal(qc_log_first(l), 20);
	assert_false(qc_log_reaches(l, "bbbbbbbbbbbb", 12));
	/* another epoch (Redis restarted empty): a new life from its seq */
	assert_non_null(qc_log_put(l, 1, "cccccccccccc", "m", json_object(), NULL, 0, 0, &dup));
	assert_string_equal(l->epoch, "cccccccccccc");
	assert_int_equal(qc_log_first(l), 1);
	assert_int_equal(l->last_seq, 1);
	qc_log_free(l);
}

static void test_room_seq_epoch(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a, *b;
	const char *ep1, *ep2;
	json_t *d;

	env_start(e);
	a = env_open(e, "alice", 0);
	b = env_open(e, "bob", 0);
	rx(e, a, "{\"type\":\"subscribe\",\"request_id\":\"j\",\"room\":\"lobby\"}");
	d = expect_ok(last(a), "j");
	assert_int_equal(iget(d, "seq"), 0);
	assert_true(is_hex(sget(d, "epoch"), 12));
	assert_null(json_object_get(d, "recovered"));
	rx(e, b, "{\"type\":\"subscribe\",\"room\":\"lobby\"}");
	drain(a);
	drain(b);
	say(e, a, "lobby", "m1");
	say(e, b, "lobby", "m2");
	assert_int_equal(room_msg(a, 0, "m1", &ep1), 1);
	assert_int_equal(room_msg(a, 2, "m2", &ep2), 2);
	assert_string_equal(ep1, ep2);
	assert_string_equal(ep1, sget(d, "epoch"));
	assert_int_equal(room_msg(b, 0, "m1", NULL), 1);
	assert_int_equal(room_msg(b, 1, "m2", NULL), 2);
	assert_int_equal(stat_get(e, "rooms", "history_entries"), 2);
}

static void test_room_bound_size(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a, *b;
	const char *ep;
	char epoch[16];
	json_t *d;

	e->cfg.rooms.history_size = 3;
	env_start(e);
	a = env_open(e, "alice", 0);
	rx(e, a, "{\"type\":\"subscribe\",\"room\":\"lobby\"}");
	drain(a);
	for (int i = 1; i <= 5; i++) {
		char m[8];

		snprintf(m, sizeof(m), "m%d", i);
		say(e, a, "lobby", m);
	}
	room_msg(a, 0, "m1", &ep);
	snprintf(epoch, sizeof(epoch), "%s", ep);
	assert_int_equal(stat_get(e, "rooms", "history_entries"), 3);

	/* seqs 3..5 are kept: a position at 1 does not reach back, at 2 it does */
	b = env_open(e, "bob", 0);
	drain(b);
	rxf(e, b,
	    "{\"type\":\"subscribe\",\"request_id\":\"j\",\"room\":\"lobby\",\"since_seq\":1,"
	    "\"epoch\":\"%s\"}",
	    epoch);
	assert_int_equal(b->outq.count, 1);
	d = expect_ok(last(b), "j");
	assert_false(bget(d, "recovered"));
	assert_int_equal(iget(d, "seq"), 5);
	rx(e, b, "{\"type\":\"unsubscribe\",\"room\":\"lobby\"}");
	drain(b);
	rxf(e, b,
	    "{\"type\":\"subscribe\",\"request_id\":\"k\",\"room\":\"lobby\",\"since_seq\":2,"
	    "\"epoch\":\"%s\"}",
	    epoch);
	assert_int_equal(b->outq.count, 4);
	assert_true(bget(expect_ok(frame(b, 0), "k"), "recovered"));
	assert_int_equal(room_msg(b, 1, "m3", NULL), 3);
	assert_int_equal(room_msg(b, 2, "m4", NULL), 4);
	assert_int_equal(room_msg(b, 3, "m5", NULL), 5);
	assert_int_equal(stat_get(e, "rooms", "history_replayed"), 3);
}

static void test_room_bound_ttl(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a, *b;
	const char *ep;
	char epoch[16];

	e->cfg.rooms.history_ttl_s = 10;
	env_start(e);
	fake_now = 1000000;
	qc_hub_set_clock(e->h, test_clock, NULL);
	a = env_open(e, "alice", 0);
	rx(e, a, "{\"type\":\"subscribe\",\"room\":\"lobby\"}");
	drain(a);
	say(e, a, "lobby", "old1");
	say(e, a, "lobby", "old2");
	room_msg(a, 0, "old1", &ep);
	snprintf(epoch, sizeof(epoch), "%s", ep);
	fake_now += 10001;
	say(e, a, "lobby", "new");

	b = env_open(e, "bob", 0);
	drain(b);
	rxf(e, b,
	    "{\"type\":\"subscribe\",\"request_id\":\"j\",\"room\":\"lobby\",\"since_seq\":0,"
	    "\"epoch\":\"%s\"}",
	    epoch);
	assert_false(bget(expect_ok(last(b), "j"), "recovered"));
	assert_int_equal(b->outq.count, 1);
	assert_int_equal(stat_get(e, "rooms", "history_entries"), 1);
	rx(e, b, "{\"type\":\"unsubscribe\",\"room\":\"lobby\"}");
	drain(b);
	rxf(e, b,
	    "{\"type\":\"subscribe\",\"request_id\":\"k\",\"room\":\"lobby\",\"since_seq\":2,"
	    "\"epoch\":\"%s\"}",
	    epoch);
	assert_true(bget(expect_ok(frame(b, 0), "k"), "recovered"));
	assert_int_equal(b->outq.count, 2);
	assert_int_equal(room_msg(b, 1, "new", NULL), 3);
}

static void test_room_readback_targeting(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a, *b, *b2;
	const char *ep;
	char epoch[16];

	env_start(e);
	a = env_open(e, "alice", 0);
	b = env_open(e, "bob", 0);
	rx(e, a, "{\"type\":\"subscribe\",\"room\":\"lobby\"}");
	rx(e, b, "{\"type\":\"subscribe\",\"room\":\"lobby\"}");
	drain(a);
	drain(b);
	say(e, a, "lobby", "all");
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"s\",\"action\":\"send_message\",\"payload\":"
	   "{\"room\":\"lobby\",\"content\":\"to-alice\",\"target_users\":[\"alice\"]}}");
	rx(e, b,
	   "{\"type\":\"request\",\"request_id\":\"s\",\"action\":\"send_message\",\"payload\":"
	   "{\"room\":\"lobby\",\"content\":\"not-bob\",\"exclude_self\":true}}");
	say(e, a, "lobby", "last");
	room_msg(b, 0, "all", &ep);
	snprintf(epoch, sizeof(epoch), "%s", ep);
	/* live, bob saw 1 and 4: the gap is what was not addressed to him */
	assert_int_equal(room_msg(b, 0, "all", NULL), 1);
	expect_ok(frame(b, 1), "s");
	assert_int_equal(room_msg(b, 2, "last", NULL), 4);

	/* bob's other connection reads back: a second connection is not the excluded sender */
	b2 = env_open(e, "bob", 0);
	drain(b2);
	rxf(e, b2,
	    "{\"type\":\"subscribe\",\"request_id\":\"j\",\"room\":\"lobby\",\"since_seq\":0,"
	    "\"epoch\":\"%s\"}",
	    epoch);
	assert_true(bget(expect_ok(frame(b2, 0), "j"), "recovered"));
	assert_int_equal(b2->outq.count, 4);
	assert_int_equal(room_msg(b2, 1, "all", NULL), 1);
	assert_int_equal(room_msg(b2, 2, "not-bob", NULL), 3);
	assert_int_equal(room_msg(b2, 3, "last", NULL), 4);
}

static void test_room_foreign_epoch(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a, *b;
	json_t *d;

	env_start(e);
	a = env_open(e, "alice", 0);
	rx(e, a, "{\"type\":\"subscribe\",\"room\":\"lobby\"}");
	say(e, a, "lobby", "m1");
	say(e, a, "lobby", "m2");
	b = env_open(e, "bob", 0);
	drain(b);
	rx(e, b,
	   "{\"type\":\"subscribe\",\"request_id\":\"j\",\"room\":\"lobby\",\"since_seq\":0,"
	   "\"epoch\":\"000000000000\"}");
	d = expect_ok(last(b), "j");
	assert_false(bget(d, "recovered"));
	assert_int_equal(iget(d, "seq"), 2);
	assert_int_equal(b->outq.count, 1);
	/* bad types are refused */
	rx(e, b, "{\"type\":\"subscribe\",\"request_id\":\"x\",\"room\":\"r2\",\"since_seq\":-1}");
	assert_string_equal(sget(get(last(b), "error"), "code"), "BAD_REQUEST");
	rx(e, b, "{\"type\":\"subscribe\",\"request_id\":\"x\",\"room\":\"r2\",\"epoch\":5}");
	assert_string_equal(sget(get(last(b), "error"), "code"), "BAD_REQUEST");
}

/* A new implicit room after the old one was gone: a new epoch, the old position is foreign. */
static void test_room_new_life(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a;
	char epoch[16];
	json_t *d;

	e->cfg.sessions.ttl_s = 0;
	env_start(e);
	a = env_open(e, "alice", 0);
	rx(e, a, "{\"type\":\"subscribe\",\"request_id\":\"j\",\"room\":\"lobby\"}");
	snprintf(epoch, sizeof(epoch), "%s", sget(expect_ok(last(a), "j"), "epoch"));
	say(e, a, "lobby", "m1");
	rx(e, a, "{\"type\":\"unsubscribe\",\"room\":\"lobby\"}");
	drain(a);
	rxf(e, a,
	    "{\"type\":\"subscribe\",\"request_id\":\"j\",\"room\":\"lobby\",\"since_seq\":1,"
	    "\"epoch\":\"%s\"}",
	    epoch);
	d = expect_ok(last(a), "j");
	assert_false(bget(d, "recovered"));
	assert_int_equal(iget(d, "seq"), 0);
	assert_string_not_equal(sget(d, "epoch"), epoch);
}

/* ---- streams ----------------------------------------------------------------------------- */

/* subscribe_market_stream with since_seq and epoch: the same life replays, another snapshots. */
static void test_stream_epoch(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a, *b;
	char epoch[16];
	json_t *d;

	env_start(e);
	a = env_open(e, "alice", 0);
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"t\",\"action\":"
	   "\"subscribe_market_stream\",\"payload\":{\"symbol\":\"AAPL\"}}");
	d = expect_ok(last(a), "t");
	snprintf(epoch, sizeof(epoch), "%s", sget(json_array_get(get(d, "streams"), 0), "epoch"));
	assert_true(is_hex(epoch, 12));
	publish(e, "{\"symbol\":\"AAPL\",\"data\":{\"price\":1}}", 1, 0, 0);
	publish(e, "{\"symbol\":\"AAPL\",\"data\":{\"price\":2}}", 1, 0, 0);
	assert_string_equal(sget(expect_event(last(a), "stream_data"), "epoch"), epoch);

	b = env_open(e, "bob", 0);
	drain(b);
	rxf(e, b,
	    "{\"type\":\"request\",\"request_id\":\"t\",\"action\":\"subscribe_market_stream\","
	    "\"payload\":{\"symbol\":\"AAPL\",\"since_seq\":1,\"epoch\":\"%s\"}}",
	    epoch);
	assert_true(bget(expect_ok(frame(b, 0), "t"), "recovered"));
	assert_int_equal(b->outq.count, 2);
	expect_tick(frame(b, 1), "AAPL", 2, "replay");
	rx(e, b,
	   "{\"type\":\"request\",\"request_id\":\"u\",\"action\":"
	   "\"unsubscribe_market_stream\",\"payload\":{\"symbol\":\"AAPL\"}}");
	drain(b);
	/* a position in another life of the stream: never replayed from; a snapshot */
	rx(e, b,
	   "{\"type\":\"request\",\"request_id\":\"t\",\"action\":"
	   "\"subscribe_market_stream\",\"payload\":{\"symbol\":\"AAPL\",\"since_seq\":1,"
	   "\"epoch\":\"0123456789ab\"}}");
	assert_false(bget(expect_ok(frame(b, 0), "t"), "recovered"));
	assert_int_equal(b->outq.count, 2);
	expect_tick(frame(b, 1), "AAPL", 2, "snapshot");
}

/* ---- inbox ------------------------------------------------------------------------------- */

static void test_inbox_seq(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *adm, *a, *a2;
	json_t *d1, *d2;

	env_start(e);
	adm = env_open(e, "ops", QC_ROLE_ADMIN);
	a = env_open(e, "alice", 0);
	a2 = env_open(e, "alice", 0);
	drain(a);
	drain(a2);
	dm(e, adm, "alice", "d1");
	dm(e, adm, "alice", "d2");
	d1 = expect_event(frame(a, 0), "direct_message");
	d2 = expect_event(frame(a, 1), "direct_message");
	assert_int_equal(iget(d1, "seq"), 1);
	assert_int_equal(iget(d2, "seq"), 2);
	assert_true(is_hex(sget(d1, "epoch"), 12));
	assert_string_equal(sget(d1, "epoch"), sget(d2, "epoch"));
	/* one log per user: both connections see the same positions, one frame shared */
	assert_ptr_equal(at(a, 0), at(a2, 0));
	assert_int_equal(stat_get(e, "inbox", "history_entries"), 2);
}

/* ---- resume with positions --------------------------------------------------------------- */

/*
 * alice in "lobby" and on stream AAPL; @a is dropped abruptly having got m1 (seq 1), d1
 * (inbox 1) and tick 1; more flows while she is away. Returns the suspended record.
 */
static struct qc_conn *away(struct env *e, struct qc_conn **adm, char tok[TOKEN_LEN + 1],
                            char rep[16], char iep[16], char sep[16])
{
	struct qc_conn *a, *b;
	json_t *d;

	*adm = env_open(e, "ops", QC_ROLE_ADMIN);
	b = env_open(e, "bob", 0);
	a = env_open(e, "alice", 0);
	token_of(a, 0, tok);
	rx(e, a, "{\"type\":\"subscribe\",\"request_id\":\"j\",\"room\":\"lobby\"}");
	snprintf(rep, 16, "%s", sget(expect_ok(last(a), "j"), "epoch"));
	rx(e, b, "{\"type\":\"subscribe\",\"room\":\"lobby\"}");
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"t\",\"action\":\"subscribe_market_stream\","
	   "\"payload\":{\"symbol\":\"AAPL\"}}");
	publish(e, "{\"symbol\":\"AAPL\",\"data\":{\"price\":1}}", 1, 0, 0);
	say(e, b, "lobby", "m1");
	dm(e, *adm, "alice", "d1");
	d = expect_event(last(a), "direct_message");
	snprintf(iep, 16, "%s", sget(d, "epoch"));
	d = expect_event(frame(a, a->outq.count - 3), "stream_data");
	snprintf(sep, 16, "%s", sget(d, "epoch"));
	/* all of it written, and more the client never read: the socket dies */
	say(e, b, "lobby", "m2");
	dm(e, *adm, "alice", "d2");
	publish(e, "{\"symbol\":\"AAPL\",\"data\":{\"price\":2}}", 1, 0, 0);
	write_out(a);
	env_drop(e, a);
	/* while away */
	say(e, b, "lobby", "m3");
	dm(e, *adm, "alice", "d3");
	publish(e, "{\"symbol\":\"AAPL\",\"data\":{\"price\":3}}", 1, 0, 0);
	return a;
}

static void test_resume_positions(void **state)
{
	struct env *e = env_new(state);
	char tok[TOKEN_LEN + 1], rep[16], iep[16], sep[16];
	struct qc_conn *adm, *s, *f;
	json_t *d, *r;

	env_start(e);
	s = away(e, &adm, tok, rep, iep, sep);
	f = env_open(e, "alice", 0);
	drain(f);
	rxf(e, f,
	    "{\"type\":\"resume\",\"request_id\":\"r1\",\"token\":\"%s\",\"positions\":{"
	    "\"rooms\":{\"lobby\":{\"seq\":1,\"epoch\":\"%s\"}},"
	    "\"inbox\":{\"seq\":1,\"epoch\":\"%s\"},"
	    "\"streams\":{\"AAPL\":{\"seq\":1,\"epoch\":\"%s\"}}}}",
	    tok, rep, iep, sep);
	/* the suspended record took the fresh one's place */
	for (size_t i = 0; i < MAX_CONNS; i++)
		assert_ptr_not_equal(e->conns[i], f);
	assert_false(s->suspended);
	assert_int_equal(stat_get(e, "reconnection", "suspended"), 0);

	d = expect_ok(frame(s, 0), "r1");
	assert_true(bget(d, "resumed"));
	assert_true(bget(d, "recovered"));
	assert_string_equal(sget(d, "user_id"), "alice");
	assert_string_not_equal(sget(d, "resume_token"), tok);
	r = get(get(d, "rooms"), "lobby");
	assert_true(bget(r, "recovered"));
	assert_int_equal(iget(r, "seq"), 3);
	assert_int_equal(iget(r, "replayed"), 2);
	r = get(d, "inbox");
	assert_true(bget(r, "recovered"));
	assert_int_equal(iget(r, "seq"), 3);
	assert_int_equal(iget(r, "replayed"), 2);
	r = get(get(d, "streams"), "AAPL");
	assert_true(bget(r, "recovered"));
	assert_string_equal(sget(r, "epoch"), sep);
	assert_int_equal(iget(r, "replayed"), 2);

	/* exactly what followed each position: rooms, inbox, streams */
	assert_int_equal(s->outq.count, 7);
	assert_int_equal(room_msg(s, 1, "m2", NULL), 2);
	assert_int_equal(room_msg(s, 2, "m3", NULL), 3);
	assert_int_equal(iget(expect_event(frame(s, 3), "direct_message"), "seq"), 2);
	assert_int_equal(iget(expect_event(frame(s, 4), "direct_message"), "seq"), 3);
	expect_tick(frame(s, 5), "AAPL", 2, "replay");
	expect_tick(frame(s, 6), "AAPL", 3, "replay");
	assert_int_equal(stat_get(e, "reconnection", "resumed_positions"), 1);

	/* live from here on */
	drain(s);
	say(e, adm, "lobby", "m4");
	assert_int_equal(s->outq.count, 1);
	assert_int_equal(room_msg(s, 0, "m4", NULL), 4);
}

/* Without positions: the server's record (what was written), honest about the dead socket. */
static void test_resume_record(void **state)
{
	struct env *e = env_new(state);
	char tok[TOKEN_LEN + 1], rep[16], iep[16], sep[16];
	struct qc_conn *adm, *s, *f;
	json_t *d;

	env_start(e);
	s = away(e, &adm, tok, rep, iep, sep);
	f = env_open(e, "alice", 0);
	drain(f);
	rxf(e, f, "{\"type\":\"resume\",\"request_id\":\"r1\",\"token\":\"%s\"}", tok);
	d = expect_ok(frame(s, 0), "r1");
	assert_false(bget(d, "recovered"));
	assert_false(bget(get(get(d, "rooms"), "lobby"), "recovered"));
	/* only what had not been written before the drop: m3, d3, tick 3 */
	assert_int_equal(s->outq.count, 4);
	assert_int_equal(room_msg(s, 1, "m3", NULL), 3);
	assert_int_equal(iget(expect_event(frame(s, 2), "direct_message"), "seq"), 3);
	expect_tick(frame(s, 3), "AAPL", 3, "replay");
}

static void test_resume_foreign_epochs(void **state)
{
	struct env *e = env_new(state);
	char tok[TOKEN_LEN + 1], rep[16], iep[16], sep[16];
	struct qc_conn *adm, *s, *f;
	json_t *d;

	env_start(e);
	s = away(e, &adm, tok, rep, iep, sep);
	f = env_open(e, "alice", 0);
	drain(f);
	rxf(e, f,
	    "{\"type\":\"resume\",\"request_id\":\"r1\",\"token\":\"%s\",\"positions\":{"
	    "\"rooms\":{\"lobby\":{\"seq\":1,\"epoch\":\"aaaaaaaaaaaa\"}},"
	    "\"streams\":{\"AAPL\":{\"seq\":1,\"epoch\":\"bbbbbbbbbbbb\"}}}}",
	    tok);
	d = expect_ok(frame(s, 0), "r1");
	assert_false(bget(d, "recovered"));
	assert_false(bget(get(get(d, "rooms"), "lobby"), "recovered"));
	assert_false(bget(get(get(d, "streams"), "AAPL"), "recovered"));
	/* the room: live only; the inbox from the record (d3); the stream: a snapshot */
	assert_int_equal(s->outq.count, 3);
	assert_int_equal(iget(expect_event(frame(s, 1), "direct_message"), "seq"), 3);
	expect_tick(frame(s, 2), "AAPL", 3, "snapshot");
}

static void test_resume_refused(void **state)
{
	struct env *e = env_new(state);
	char tok[TOKEN_LEN + 1], rep[16], iep[16], sep[16];
	struct qc_conn *adm, *s, *f, *g;
	json_t *err;

	env_start(e);
	s = away(e, &adm, tok, rep, iep, sep);
	/* another user's token */
	g = env_open(e, "mallory", 0);
	drain(g);
	rxf(e, g, "{\"type\":\"resume\",\"request_id\":\"r1\",\"token\":\"%s\"}", tok);
	err = get(last(g), "error");
	assert_string_equal(sget(err, "code"), "NOT_FOUND");
	assert_true(s->suspended);
	/* not the first request */
	f = env_open(e, "alice", 0);
	rx(e, f, "{\"type\":\"subscribe\",\"room\":\"x\"}");
	rxf(e, f, "{\"type\":\"resume\",\"request_id\":\"r2\",\"token\":\"%s\"}", tok);
	assert_string_equal(sget(get(last(f), "error"), "code"), "BAD_REQUEST");
	assert_true(s->suspended);
	/* malformed positions */
	f = env_open(e, "alice", 0);
	rxf(e, f,
	    "{\"type\":\"resume\",\"request_id\":\"r3\",\"token\":\"%s\",\"positions\":"
	    "{\"rooms\":{\"lobby\":{\"seq\":\"x\"}}}}",
	    tok);
	assert_string_equal(sget(get(last(f), "error"), "code"), "BAD_REQUEST");
	assert_true(s->suspended);
}

/* A resumed connection that fails before its answer left: suspended again, both tokens work. */
static void test_resume_fails_midway(void **state)
{
	struct env *e = env_new(state);
	char tok[TOKEN_LEN + 1], rep[16], iep[16], sep[16], tok2[TOKEN_LEN + 1];
	struct qc_conn *adm, *s, *f;

	env_start(e);
	s = away(e, &adm, tok, rep, iep, sep);
	f = env_open(e, "alice", 0);
	drain(f);
	rxf(e, f, "{\"type\":\"resume\",\"request_id\":\"r1\",\"token\":\"%s\"}", tok);
	snprintf(tok2, sizeof(tok2), "%s", sget(expect_ok(frame(s, 0), "r1"), "resume_token"));
	env_drop(e, s);
	assert_true(s->suspended);
	f = env_open(e, "alice", 0);
	drain(f);
	rxf(e, f, "{\"type\":\"resume\",\"request_id\":\"r2\",\"token\":\"%s\"}", tok2);
	expect_ok(frame(s, 0), "r2");
	assert_false(s->suspended);
}

/*
 * A suspended session holds positions, not copies; kicked from a room while away, what it had
 * not read of that room (and the kick) is copied to its buffer then, and a resume gives it back.
 */
static void test_kicked_while_away(void **state)
{
	struct env *e = env_new(state);
	char tok[TOKEN_LEN + 1];
	struct qc_conn *o, *a, *f;
	json_t *d;

	env_start(e);
	o = env_open(e, "olga", 0);
	a = env_open(e, "alice", 0);
	token_of(a, 0, tok);
	rx(e, o,
	   "{\"type\":\"request\",\"request_id\":\"c\",\"action\":\"create_room\","
	   "\"payload\":{\"room\":\"club\"}}");
	rx(e, a, "{\"type\":\"subscribe\",\"room\":\"club\"}");
	rx(e, a, "{\"type\":\"subscribe\",\"room\":\"lobby\"}");
	drain(a);
	env_drop(e, a);
	say(e, o, "club", "m1");
	say(e, o, "lobby", "l1");
	assert_int_equal(a->outq.count, 0);
	rx(e, o,
	   "{\"type\":\"request\",\"request_id\":\"k\",\"action\":\"remove_member\","
	   "\"payload\":{\"room\":\"club\",\"user_id\":\"alice\"}}");
	expect_ok(last(o), "k");
	/* copied when it left the room: m1 and the kick */
	assert_int_equal(a->outq.count, 2);
	f = env_open(e, "alice", 0);
	drain(f);
	rxf(e, f, "{\"type\":\"resume\",\"request_id\":\"r\",\"token\":\"%s\"}", tok);
	d = expect_ok(frame(a, 0), "r");
	assert_true(bget(d, "recovered"));
	assert_null(json_object_get(get(d, "rooms"), "club"));
	assert_int_equal(a->outq.count, 4);
	/* seq 1 was alice's own member_joined */
	assert_int_equal(room_msg(a, 1, "m1", NULL), 2);
	assert_int_equal(iget(d, "replayed"), 3);
	expect_event(frame(a, 2), "kicked");
	assert_string_equal(sget(expect_event(frame(a, 3), "room_message"), "content"), "l1");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_log_put_prepend, teardown),
	    cmocka_unit_test_teardown(test_room_seq_epoch, teardown),
	    cmocka_unit_test_teardown(test_room_bound_size, teardown),
	    cmocka_unit_test_teardown(test_room_bound_ttl, teardown),
	    cmocka_unit_test_teardown(test_room_readback_targeting, teardown),
	    cmocka_unit_test_teardown(test_room_foreign_epoch, teardown),
	    cmocka_unit_test_teardown(test_room_new_life, teardown),
	    cmocka_unit_test_teardown(test_stream_epoch, teardown),
	    cmocka_unit_test_teardown(test_inbox_seq, teardown),
	    cmocka_unit_test_teardown(test_resume_positions, teardown),
	    cmocka_unit_test_teardown(test_resume_record, teardown),
	    cmocka_unit_test_teardown(test_resume_foreign_epochs, teardown),
	    cmocka_unit_test_teardown(test_resume_refused, teardown),
	    cmocka_unit_test_teardown(test_resume_fails_midway, teardown),
	    cmocka_unit_test_teardown(test_kicked_while_away, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
