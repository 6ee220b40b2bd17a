/*
 * test_store: the hub's durable side against a fake store (no database): requests answered only
 * after their commit, memory unchanged on failure, offline messages and alerts written before
 * they count, loading at start; and the subscriptions, filters and alerts themselves (memory
 * only). Also the per-encoding frames (native and Socket.IO connections side by side).
 */
#include "hub_env.h"

#include "quotecast/store.h"

#define MAX_STMTS 256

struct stmt {
	char *sql;
	int n;
	char *params[16];
	qc_store_cb cb;
	void *arg;
};

struct fake_store {
	struct stmt q[MAX_STMTS];
	int head;
	int tail;
	int refuse; /* submit returns this (0: accept) */
	/* writes of the rooms' logs (SPEC 2.9): answered aside, tested in test_logs */
	qc_store_cb log_cb[MAX_STMTS];
	void *log_arg[MAX_STMTS];
	int nlogs;
	bool inbox; /* the inboxes' writes (SPEC 2.9) queue with the rest, else they go aside */
};

static struct fake_store fs;

static int fs_submit(void *ctx, const char *sql, int n, const char *const *params, qc_store_cb cb,
                     void *arg)
{
	struct stmt *s;

	(void)ctx;
	if (fs.refuse)
		return fs.refuse;
	if (strstr(sql, "room_history") || strstr(sql, "log_epoch =") ||
	    (!fs.inbox && strstr(sql, "inbox_history"))) {
		assert_true(fs.nlogs < MAX_STMTS);
		fs.log_cb[fs.nlogs] = cb;
		fs.log_arg[fs.nlogs++] = arg;
		return 0;
	}
	assert_true(fs.tail < MAX_STMTS && n <= 16);
	s = &fs.q[fs.tail++];
	s->sql = strdup(sql);
	s->n = n;
	for (int i = 0; i < n; i++)
		s->params[i] = params[i] ? strdup(params[i]) : NULL;
	s->cb = cb;
	s->arg = arg;
	return 0;
}

static void fs_stats(void *ctx, struct qc_store_stats *st)
{
	(void)ctx;
	memset(st, 0, sizeof(*st));
	st->configured = true;
	st->connected = !fs.refuse;
	st->pending = (uint32_t)(fs.tail - fs.head);
	st->state = fs.refuse ? "down" : "connected";
}

static void stmt_free(struct stmt *s)
{
	free(s->sql);
	for (int i = 0; i < s->n; i++)
		free(s->params[i]);
	memset(s, 0, sizeof(*s));
}

/* The oldest unanswered statement; fails when there is none. */
static struct stmt *pending_stmt(void)
{
	assert_true(fs.head < fs.tail);
	return &fs.q[fs.head];
}

/* The rooms' log writes are committed. */
static void logs_done(void)
{
	json_t *rows = json_array();

	while (fs.nlogs) {
		fs.nlogs--;
		fs.log_cb[fs.nlogs](fs.log_arg[fs.nlogs], QC_OK, NULL, rows);
	}
	json_decref(rows);
}

/* Answer the oldest statement with @err and @rows (a JSON text or NULL). */
static void complete(enum qc_err err, const char *rows)
{
	logs_done();
	struct stmt *s = pending_stmt();
	json_t *r = rows ? json_loads(rows, 0, NULL) : (err == QC_OK ? json_array() : NULL);

	fs.head++;
	s->cb(s->arg, err, err == QC_OK ? NULL : "store says no", r);
	json_decref(r);
	stmt_free(s);
}

/* Answer everything queued with success and no rows (bookkeeping writes). */
static void complete_all(void)
{
	while (fs.head < fs.tail)
		complete(QC_OK, NULL);
}

static void env_store(struct env *e)
{
	struct qc_store st = {fs_submit, fs_stats, NULL};

	memset(&fs, 0, sizeof(fs));
	env_start(e);
	qc_hub_set_store(e->h, &st);
}

static int teardown_store(void **state)
{
	struct env *e = *state;

	fs.refuse = 0;
	/* connections going write too (a user's position in the offline logs) */
	for (size_t i = 0; e && i < MAX_CONNS; i++)
		if (e->conns[i])
			env_drop(e, e->conns[i]);
	/* what is still queued is answered as a shutdown would: UNAVAILABLE */
	while (fs.head < fs.tail)
		complete(QC_E_UNAVAILABLE, NULL);
	logs_done();
	return teardown(state);
}

static json_t *expect_err(json_t *j, const char *rid, const char *code)
{
	assert_string_equal(sget(j, "type"), "response");
	assert_string_equal(sget(j, "request_id"), rid);
	assert_false(bget(j, "success"));
	assert_string_equal(sget(get(j, "error"), "code"), code);
	return get(j, "error");
}

/* ---- durable requests -------------------------------------------------------------------- */

static void test_answer_after_commit(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a;
	struct stmt *s;

	env_store(e);
	a = env_open(e, "alice", 0);
	drain(a);
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"c1\",\"action\":\"create_room\","
	   "\"payload\":{\"room\":\"r'; DROP TABLE rooms; --\",\"type\":\"public\"}}");
	/* nothing answered, nothing in memory, one parameterised statement */
	assert_int_equal(a->outq.count, 0);
	s = pending_stmt();
	assert_null(strstr(s->sql, "DROP"));
	assert_string_equal(s->params[0], "r'; DROP TABLE rooms; --");
	assert_string_equal(s->params[1], "alice");
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"g1\",\"action\":\"get_room\","
	   "\"payload\":{\"room\":\"r'; DROP TABLE rooms; --\"}}");
	expect_err(last(a), "g1", "NOT_FOUND");
	drain(a);

	complete(QC_OK, NULL);
	assert_string_equal(sget(expect_ok(last(a), "c1"), "owner"), "alice");
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"g2\",\"action\":\"get_room\","
	   "\"payload\":{\"room\":\"r'; DROP TABLE rooms; --\"}}");
	assert_int_equal(iget(expect_ok(last(a), "g2"), "members"), 1);
	assert_int_equal(stat_get(e, "store", "pending"), 0);
}

static void test_failure_changes_nothing(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a;

	env_store(e);
	a = env_open(e, "alice", 0);
	drain(a);
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"c1\",\"action\":\"create_room\","
	   "\"payload\":{\"room\":\"x\"}}");
	complete(QC_E_UNAVAILABLE, NULL);
	expect_err(last(a), "c1", "UNAVAILABLE");
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"g\",\"action\":\"get_room\","
	   "\"payload\":{\"room\":\"x\"}}");
	expect_err(last(a), "g", "NOT_FOUND");

	/* the store refuses at once (down, or its queue is full) */
	fs.refuse = -ENOTCONN;
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"c2\",\"action\":\"create_room\","
	   "\"payload\":{\"room\":\"x\"}}");
	expect_err(last(a), "c2", "UNAVAILABLE");
	fs.refuse = -EAGAIN;
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"c3\",\"action\":\"create_room\","
	   "\"payload\":{\"room\":\"x\"}}");
	assert_non_null(strstr(sget(expect_err(last(a), "c3", "UNAVAILABLE"), "message"), "busy"));
	fs.refuse = 0;

	/* a unique violation seen by the store */
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"c4\",\"action\":\"create_room\","
	   "\"payload\":{\"room\":\"x\"}}");
	complete(QC_E_ALREADY_EXISTS, NULL);
	expect_err(last(a), "c4", "ALREADY_EXISTS");
	assert_int_equal(stat_get(e, "rooms", "rooms_created"), 0);
}

/* The requester left before the commit: memory follows the store all the same. */
static void test_commit_after_requester_left(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a, *b;

	env_store(e);
	a = env_open(e, "alice", 0);
	b = env_open(e, "bob", 0);
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"c1\",\"action\":\"create_room\","
	   "\"payload\":{\"room\":\"kept\"}}");
	env_drop(e, a);
	complete(QC_OK, NULL);
	drain(b);
	rx(e, b,
	   "{\"type\":\"request\",\"request_id\":\"g\",\"action\":\"get_room\","
	   "\"payload\":{\"room\":\"kept\"}}");
	assert_string_equal(sget(expect_ok(last(b), "g"), "owner"), "alice");
}

/* Membership changes and the join of a created room wait for the store too. */
static void test_membership_durable(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a, *b;

	env_store(e);
	a = env_open(e, "alice", 0);
	b = env_open(e, "bob", 0);
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"c\",\"action\":\"create_room\","
	   "\"payload\":{\"room\":\"club\"}}");
	complete(QC_OK, NULL);
	drain(b);
	rx(e, b, "{\"type\":\"subscribe\",\"request_id\":\"s\",\"room\":\"club\"}");
	assert_int_equal(b->outq.count, 0);
	assert_non_null(strstr(pending_stmt()->sql, "room_members"));
	assert_string_equal(pending_stmt()->params[1], "bob");
	complete(QC_OK, NULL);
	assert_string_equal(sget(expect_ok(last(b), "s"), "room"), "club");
	assert_int_equal(b->rooms.count, 1);

	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"r\",\"action\":\"set_member_role\","
	   "\"payload\":{\"room\":\"club\",\"user_id\":\"bob\",\"role\":\"moderator\"}}");
	complete(QC_E_UNAVAILABLE, NULL);
	expect_err(last(a), "r", "UNAVAILABLE");
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"m\",\"action\":\"get_room_members\","
	   "\"payload\":{\"room\":\"club\"}}");
	{
		json_t *list = get(expect_ok(last(a), "m"), "members"), *v;
		size_t i;

		json_array_foreach (list, i, v)
			if (!strcmp(sget(v, "user_id"), "bob"))
				assert_string_equal(sget(v, "role"), "member");
	}
}

/* ---- offline messages and alerts are written before they count --------------------------- */

static void test_offline_written_first(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a, *b, *r;
	struct stmt *st;
	json_t *d;

	env_store(e);
	a = env_open(e, "alice", 0);
	r = env_open(e, "root", QC_ROLE_ADMIN);
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"c\",\"action\":\"create_room\","
	   "\"payload\":{\"room\":\"club\"}}");
	complete(QC_OK, NULL);
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"m\",\"action\":\"add_member\","
	   "\"payload\":{\"room\":\"club\",\"user_id\":\"bob\"}}");
	complete(QC_OK, NULL);
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"s\",\"action\":\"send_message\","
	   "\"payload\":{\"room\":\"club\",\"content\":\"hi\"}}");
	/* the message is answered at once; it is one row of the room's log, not one per member */
	expect_ok(last(a), "s");
	st = pending_stmt();
	if (!strstr(st->sql, "INSERT INTO room_log"))
		fail_msg("pending: %s", st->sql);
	assert_non_null(strstr(st->sql, "ON CONFLICT (gseq) DO NOTHING"));
	assert_string_equal(st->params[1], "club");
	assert_non_null(strstr(st->params[3], "\"hi\""));
	assert_null(st->params[4]); /* no target_role */
	assert_null(st->params[5]); /* no target_users */
	assert_int_equal(stat_get(e, "offline", "queued"), 1);
	complete(QC_OK, NULL);

	/* a direct message for someone with no session is written before it counts */
	rx(e, r,
	   "{\"type\":\"request\",\"request_id\":\"d\",\"action\":\"send_to_user\","
	   "\"payload\":{\"user_id\":\"bob\",\"content\":\"psst\"}}");
	expect_ok(last(r), "d");
	assert_non_null(strstr(pending_stmt()->sql, "INSERT INTO offline_messages"));
	assert_string_equal(pending_stmt()->params[0], "bob");
	assert_int_equal(stat_get(e, "offline", "queued"), 1);
	complete(QC_OK, "[[\"42\"]]");
	assert_int_equal(stat_get(e, "offline", "queued"), 2);

	b = env_open(e, "bob", 0);
	d = expect_event(frame(b, 1), "room_message");
	assert_true(bget(d, "offline"));
	assert_string_equal(sget(d, "content"), "hi");
	d = expect_event(frame(b, 2), "direct_message");
	assert_true(bget(d, "offline"));
	/* delivered: bob's position is stored, the rows nobody waits for go */
	assert_non_null(strstr(pending_stmt()->sql, "INSERT INTO offline_cursors"));
	assert_string_equal(pending_stmt()->params[0], "bob");
	complete(QC_OK, NULL);
	assert_non_null(strstr(pending_stmt()->sql, "DELETE FROM offline_messages"));
	assert_string_equal(pending_stmt()->params[0], "{42}");
	complete(QC_OK, NULL);
	assert_non_null(strstr(pending_stmt()->sql, "DELETE FROM room_log"));
	complete_all();
	assert_int_equal(stat_get(e, "offline", "queued"), 0);
	assert_int_equal(stat_get(e, "offline", "messages"), 0);

	/*
	 * bob leaves: his position is where the log is, so what was sent while he was here is not
	 * his. The store goes away mid-statement: the writes wait in the backlog, with those made
	 * while the store refuses everything behind them, and all go out, in order, once it is
	 * back.
	 */
	env_drop(e, b);
	complete_all();
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"s2\",\"action\":\"send_message\","
	   "\"payload\":{\"room\":\"club\",\"content\":\"first\"}}");
	complete(QC_E_UNAVAILABLE, NULL);
	fs.refuse = -ENOTCONN;
	rx(e, r,
	   "{\"type\":\"request\",\"request_id\":\"d2\",\"action\":\"send_to_user\","
	   "\"payload\":{\"user_id\":\"bob\",\"content\":\"second\"}}");
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"s3\",\"action\":\"send_message\","
	   "\"payload\":{\"room\":\"club\",\"content\":\"third\"}}");
	/* and "third"'s entry of the room's history (SPEC 2.9), answered aside */
	assert_int_equal(stat_get(e, "store", "backlog"), 4);
	/* the room messages count at once, the direct message once its row is there */
	assert_int_equal(stat_get(e, "offline", "queued"), 2);
	qc_hub_expire(e->h); /* still down: nothing moves */
	assert_int_equal(stat_get(e, "store", "backlog"), 4);
	fs.refuse = 0;
	qc_hub_expire(e->h);
	assert_int_equal(stat_get(e, "store", "backlog"), 0);
	assert_non_null(strstr(pending_stmt()->params[3], "first"));
	complete(QC_OK, NULL);
	/* the key makes the repeat of a statement that may have committed harmless */
	assert_non_null(strstr(pending_stmt()->sql, "ON CONFLICT (key)"));
	assert_non_null(strstr(pending_stmt()->params[2], "second"));
	complete(QC_OK, "[[\"43\"]]");
	assert_non_null(strstr(pending_stmt()->params[3], "third"));
	complete(QC_OK, NULL);
	assert_int_equal(stat_get(e, "offline", "queued"), 3);
	assert_int_equal(stat_get(e, "store", "dropped"), 0);
	b = env_open(e, "bob", 0);
	assert_string_equal(sget(expect_event(frame(b, 1), "room_message"), "content"), "first");
	assert_string_equal(sget(expect_event(frame(b, 2), "direct_message"), "content"), "second");
	assert_string_equal(sget(expect_event(frame(b, 3), "room_message"), "content"), "third");
	assert_int_equal(b->outq.count, 4);
	complete_all();
}

static const char sub_crossing[] =
    "{\"type\":\"request\",\"request_id\":\"cs\",\"action\":\"create_subscription\","
    "\"payload\":{\"name\":\"big\",\"symbol\":\"AAPL\",\"fields\":[\"price\"],"
    "\"filter\":{\"op\":\"and\",\"conditions\":[{\"field\":\"price\",\"cmp\":\"crosses_above\","
    "\"value\":100}]},\"alert\":{\"priority\":\"high\"}}}";

static void test_alert_row_then_event(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a;
	struct stmt *s;
	json_t *d;

	env_store(e);
	a = env_open(e, "alice", 0);
	rx(e, a, sub_crossing);
	s = pending_stmt();
	assert_non_null(strstr(s->sql, "INSERT INTO subscriptions"));
	assert_non_null(strstr(s->sql, "filter_conditions"));
	assert_string_equal(s->params[7], "[[0,null,\"and\",0]]");
	assert_string_equal(s->params[8], "[[0,0,\"price\",\"crosses_above\",100]]");
	complete(QC_OK, "[[\"x\"]]");
	expect_ok(last(a), "cs");
	drain(a);

	publish(e,
	        "[{\"symbol\":\"AAPL\",\"data\":{\"price\":90}},"
	        "{\"symbol\":\"AAPL\",\"data\":{\"price\":110}}]",
	        2, 0, 0);
	/* two ticks queued, the alert waits for its row */
	assert_int_equal(a->outq.count, 2);
	s = pending_stmt();
	assert_non_null(strstr(s->sql, "INSERT INTO alerts"));
	assert_string_equal(s->params[4], "high");
	assert_string_equal(s->params[5], "{\"price\":110}");
	complete(QC_OK, NULL);
	d = expect_event(last(a), "alert");
	assert_string_equal(sget(d, "symbol"), "AAPL");
	assert_string_equal(sget(d, "priority"), "high");
	assert_int_equal(iget(get(d, "data"), "price"), 110);
	/* then marked delivered */
	assert_non_null(strstr(pending_stmt()->sql, "delivery = 'delivered'"));
	complete_all();

	/*
	 * An alert raised while the store is down waits and goes out once its row is written; a
	 * repeat that finds the row already there (ALREADY_EXISTS) counts as written.
	 */
	drain(a);
	fs.refuse = -ENOTCONN;
	publish(e,
	        "[{\"symbol\":\"AAPL\",\"data\":{\"price\":90}},"
	        "{\"symbol\":\"AAPL\",\"data\":{\"price\":120}}]",
	        2, 0, 0);
	assert_int_equal(stat_get(e, "store", "backlog"), 1);
	assert_int_equal(a->outq.count, 2); /* the ticks only */
	fs.refuse = 0;
	qc_hub_expire(e->h);
	assert_non_null(strstr(pending_stmt()->sql, "INSERT INTO alerts"));
	complete(QC_E_ALREADY_EXISTS, NULL);
	assert_int_equal(iget(get(expect_event(last(a), "alert"), "data"), "price"), 120);
	complete_all();
	assert_int_equal(stat_get(e, "subscriptions", "alerts_dropped"), 0);
}

/* ---- subscriptions and alerts (memory only) ---------------------------------------------- */

static void test_alert_edges_memory(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a, *b;
	json_t *d;
	const char *id;
	size_t alerts = 0;

	env_start(e);
	a = env_open(e, "alice", 0);
	rx(e, a, sub_crossing);
	d = expect_ok(last(a), "cs");
	assert_int_equal(iget(d, "version"), 1);
	assert_true(bget(d, "active"));
	assert_string_equal(sget(get(d, "alert"), "priority"), "high");
	drain(a);
	/* crosses: 90 → 110 edge; 120 none; 90 → 130 edge */
	publish(e,
	        "[{\"symbol\":\"AAPL\",\"data\":{\"price\":90}},"
	        "{\"symbol\":\"AAPL\",\"data\":{\"price\":110}},"
	        "{\"symbol\":\"AAPL\",\"data\":{\"price\":120}},"
	        "{\"symbol\":\"AAPL\",\"data\":{\"price\":90}},"
	        "{\"symbol\":\"AAPL\",\"data\":{\"price\":130}}]",
	        5, 0, 0);
	for (uint32_t i = 0; i < a->outq.count; i++) {
		json_t *j = frame(a, i);

		if (!strcmp(sget(j, "event"), "alert"))
			alerts++;
	}
	assert_int_equal(alerts, 2);
	assert_int_equal(stat_get(e, "subscriptions", "alerts_raised"), 2);

	/* a user with no session gets it on the next connection, offline */
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"l\",\"action\":\"list_alerts\",\"payload\":{}}");
	d = get(expect_ok(last(a), "l"), "alerts");
	assert_int_equal(json_array_size(d), 2);
	id = sget(json_array_get(d, 0), "alert_id");
	rxf(e, a,
	    "{\"type\":\"request\",\"request_id\":\"k\",\"action\":\"ack_alert\","
	    "\"payload\":{\"alert_id\":\"%s\"}}",
	    id);
	assert_true(bget(expect_ok(last(a), "k"), "acknowledged"));
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"k2\",\"action\":\"ack_alert\","
	   "\"payload\":{\"alert_id\":\"nope\"}}");
	expect_err(last(a), "k2", "NOT_FOUND");
	env_drop(e, a);
	publish(e,
	        "[{\"symbol\":\"AAPL\",\"data\":{\"price\":50}},"
	        "{\"symbol\":\"AAPL\",\"data\":{\"price\":150}}]",
	        2, 0, 0);
	b = env_open(e, "alice", 0);
	/* session, the offline alert, then the attached subscription's snapshot */
	d = expect_event(frame(b, 1), "alert");
	assert_true(bget(d, "offline"));
	assert_int_equal(iget(get(d, "data"), "price"), 150);
	expect_tick(frame(b, 2), "AAPL", 7, "snapshot");
	/* the filter holds now (150 > 100 was crossed), and a price below turns it off */
	rx(e, b,
	   "{\"type\":\"request\",\"request_id\":\"ls\",\"action\":\"list_subscriptions\","
	   "\"payload\":{}}");
	d = json_array_get(get(expect_ok(last(b), "ls"), "subscriptions"), 0);
	assert_true(bget(d, "matching"));
	publish(e, "{\"symbol\":\"AAPL\",\"data\":{\"price\":99}}", 1, 0, 0);
	rx(e, b,
	   "{\"type\":\"request\",\"request_id\":\"ls2\",\"action\":\"list_subscriptions\","
	   "\"payload\":{}}");
	d = json_array_get(get(expect_ok(last(b), "ls2"), "subscriptions"), 0);
	assert_false(bget(d, "matching"));
}

static void test_subscription_versions(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a, *b;
	json_t *d;
	char id[64];

	env_start(e);
	a = env_open(e, "alice", 0);
	b = env_open(e, "bob", 0);
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"c\",\"action\":\"create_subscription\","
	   "\"payload\":{\"symbol\":\"MSFT\",\"fields\":[\"price\"]}}");
	snprintf(id, sizeof(id), "%s", sget(expect_ok(last(a), "c"), "subscription_id"));
	/* attached to the requester: it gets MSFT ticks with its fields */
	publish(e, "{\"symbol\":\"MSFT\",\"data\":{\"price\":1,\"volume\":2}}", 1, 0, 0);
	assert_json(expect_tick(last(a), "MSFT", 1, NULL), "{\"price\":1}");
	rxf(e, a,
	    "{\"type\":\"request\",\"request_id\":\"u0\",\"action\":\"update_subscription\","
	    "\"payload\":{\"subscription_id\":\"%s\",\"version\":7,\"name\":\"x\"}}",
	    id);
	expect_err(last(a), "u0", "CONFLICT");
	rxf(e, a,
	    "{\"type\":\"request\",\"request_id\":\"u1\",\"action\":\"update_subscription\","
	    "\"payload\":{\"subscription_id\":\"%s\",\"version\":1,\"fields\":[\"volume\"]}}",
	    id);
	d = expect_ok(last(a), "u1");
	assert_int_equal(iget(d, "version"), 2);
	publish(e, "{\"symbol\":\"MSFT\",\"data\":{\"price\":3,\"volume\":4}}", 1, 0, 0);
	assert_json(expect_tick(last(a), "MSFT", 2, NULL), "{\"volume\":4}");
	/* someone else's subscription is not there for them */
	rxf(e, b,
	    "{\"type\":\"request\",\"request_id\":\"d\",\"action\":\"delete_subscription\","
	    "\"payload\":{\"subscription_id\":\"%s\"}}",
	    id);
	expect_err(last(b), "d", "NOT_FOUND");
	rxf(e, a,
	    "{\"type\":\"request\",\"request_id\":\"d\",\"action\":\"delete_subscription\","
	    "\"payload\":{\"subscription_id\":\"%s\"}}",
	    id);
	assert_true(bget(expect_ok(last(a), "d"), "deleted"));
	assert_int_equal(a->streams.count, 0);
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"l\",\"action\":\"list_subscriptions\","
	   "\"payload\":{}}");
	assert_int_equal(iget(expect_ok(last(a), "l"), "total"), 0);
}

static void test_subscription_errors(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a;

	env_start(e);
	a = env_open(e, "alice", 0);
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"1\",\"action\":\"create_subscription\","
	   "\"payload\":{\"symbol\":\"A\",\"filter\":{\"op\":\"and\",\"conditions\":[{\"field\":"
	   "\"price\",\"cmp\":\"gtx\",\"value\":1}]}}}");
	assert_non_null(strstr(sget(expect_err(last(a), "1", "BAD_REQUEST"), "message"),
	                       "filter.conditions[0].cmp"));
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"2\",\"action\":\"create_subscription\","
	   "\"payload\":{\"symbol\":\"A\",\"alert\":{\"priority\":\"high\"}}}");
	expect_err(last(a), "2", "BAD_REQUEST");
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"3\",\"action\":\"create_subscription\","
	   "\"payload\":{\"symbol\":\"A B\"}}");
	expect_err(last(a), "3", "BAD_REQUEST");
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"4\",\"action\":\"create_subscription\","
	   "\"payload\":{\"symbol\":\"A\",\"filter\":{\"op\":\"or\",\"conditions\":[{\"field\":"
	   "\"p\",\"cmp\":\"gt\",\"value\":1}]},\"alert\":{\"priority\":\"urgent\"}}}");
	expect_err(last(a), "4", "BAD_REQUEST");
	assert_int_equal(stat_get(e, "subscriptions", "subscriptions"), 0);
}

/* ---- persisted subscriptions: subscriptions.max_per_user and .max_total ------------------ */

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

static void create_sub(struct env *e, struct qc_conn *c, const char *rid, const char *sym)
{
	rxf(e, c,
	    "{\"type\":\"request\",\"request_id\":\"%s\",\"action\":\"create_subscription\","
	    "\"payload\":{\"symbol\":\"%s\"}}",
	    rid, sym);
}

static void expect_limit(json_t *j, const char *rid, const char *key)
{
	const char *msg = sget(expect_err(j, rid, "LIMIT_EXCEEDED"), "message");

	if (strncmp(msg, key, strlen(key)))
		fail_msg("message \"%s\" does not start with %s", msg, key);
}

/* Issue 11: 1,000 made-up users could fill the one global cap; each cap is its own setting. */
static void test_subscription_caps(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a, *b, *c;
	char id[64];

	e->cfg.subscriptions.max_per_user = 2;
	e->cfg.subscriptions.max_total = 3;
	env_start(e);
	a = env_open(e, "alice", 0);
	b = env_open(e, "bob", 0);
	c = env_open(e, "carol", 0);
	create_sub(e, a, "a1", "A1");
	snprintf(id, sizeof(id), "%s", sget(expect_ok(last(a), "a1"), "subscription_id"));
	create_sub(e, a, "a2", "A2");
	expect_ok(last(a), "a2");
	create_sub(e, a, "a3", "A3");
	expect_limit(last(a), "a3", "subscriptions.max_per_user");
	assert_int_equal(refused(e, "subscriptions.max_per_user"), 1);
	/* another user has their own places, until the total is reached */
	create_sub(e, b, "b1", "B1");
	expect_ok(last(b), "b1");
	create_sub(e, c, "c1", "C1");
	expect_limit(last(c), "c1", "subscriptions.max_total");
	assert_int_equal(refused(e, "subscriptions.max_total"), 1);
	assert_int_equal(stat_get(e, "subscriptions", "subscriptions"), 3);
	assert_int_equal(stat_get(e, "subscriptions", "users"), 2);
	/* a delete frees a place in both */
	rxf(e, a,
	    "{\"type\":\"request\",\"request_id\":\"d\",\"action\":\"delete_subscription\","
	    "\"payload\":{\"subscription_id\":\"%s\"}}",
	    id);
	expect_ok(last(a), "d");
	create_sub(e, c, "c2", "C1");
	expect_ok(last(c), "c2");
	create_sub(e, a, "a4", "A4");
	expect_limit(last(a), "a4", "subscriptions.max_total");
	assert_int_equal(stat_get(e, "subscriptions", "subscriptions"), 3);
	assert_int_equal(stat_get(e, "subscriptions", "users"), 3);
}

/*
 * Creates waiting for the store hold their places: a user cannot pass the cap by sending them
 * back to back. A create that fails gives its place back; one that commits keeps it.
 */
static void test_subscription_caps_in_flight(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a;

	e->cfg.subscriptions.max_per_user = 2;
	env_store(e);
	a = env_open(e, "alice", 0);
	create_sub(e, a, "1", "S1");
	create_sub(e, a, "2", "S2");
	assert_int_equal(fs.tail - fs.head, 2);
	create_sub(e, a, "3", "S3");
	expect_limit(last(a), "3", "subscriptions.max_per_user");
	assert_int_equal(fs.tail - fs.head, 2);
	complete(QC_E_UNAVAILABLE, NULL); /* "1" fails: its place is free again */
	expect_err(last(a), "1", "UNAVAILABLE");
	create_sub(e, a, "4", "S4");
	assert_int_equal(fs.tail - fs.head, 2);
	complete(QC_OK, "[[\"x\"]]"); /* "2" */
	expect_ok(last(a), "2");
	complete(QC_OK, "[[\"x\"]]"); /* "4" */
	expect_ok(last(a), "4");
	assert_int_equal(stat_get(e, "subscriptions", "subscriptions"), 2);
	create_sub(e, a, "5", "S5");
	expect_limit(last(a), "5", "subscriptions.max_per_user");
	assert_int_equal(fs.tail - fs.head, 0);
	assert_int_equal(refused(e, "subscriptions.max_per_user"), 2);
}

/* ---- start-up load ----------------------------------------------------------------------- */

/* the stored inboxes fake_load gives (user_id, epoch, last_seq; user_id, seq, event, data, at) */
static const char *load_inbox_logs = "[]";
static const char *load_inbox_history = "[]";

static int fake_load(void *ctx, const char *sql, json_t **rows, char *err, size_t errlen)
{
	(void)ctx;
	(void)err;
	(void)errlen;
	if (strstr(sql, "FROM rooms"))
		*rows = json_loads("[[\"club\",\"alice\",\"public\",\"active\",null,\"5\","
		                   "\"{\\\"k\\\":\\\"v\\\"}\",\"1000\"]]",
		                   0, NULL);
	else if (strstr(sql, "FROM room_members"))
		*rows = json_loads("[[\"club\",\"alice\",\"owner\",\"1000\"],"
		                   "[\"club\",\"bob\",\"moderator\",\"1001\"],"
		                   "[\"club\",\"carol\",\"member\",\"1\"]]",
		                   0, NULL);
	else if (strstr(sql, "FROM subscriptions"))
		*rows = json_loads("[[\"sub-1\",\"bob\",null,\"AAPL\",\"[\\\"price\\\"]\",\"low\","
		                   "\"3\",\"t\",\"10\",\"20\"]]",
		                   0, NULL);
	else if (strstr(sql, "FROM filter_expressions"))
		*rows = json_loads("[[\"sub-1\",\"0\",null,\"or\",\"0\"]]", 0, NULL);
	else if (strstr(sql, "FROM filter_conditions"))
		*rows = json_loads("[[\"sub-1\",\"0\",\"0\",\"price\",\"gt\",\"5\"]]", 0, NULL);
	else if (strstr(sql, "FROM room_history"))
		*rows = json_array();
	else if (strstr(sql, "FROM inbox_logs"))
		*rows = json_loads(load_inbox_logs, 0, NULL);
	else if (strstr(sql, "FROM inbox_history"))
		*rows = json_loads(load_inbox_history, 0, NULL);
	else if (strstr(sql, "FROM offline_cursors"))
		/* bob had everything up to 2 s when he left (order numbers are microseconds) */
		*rows = json_loads("[[\"bob\",\"2000000\"]]", 0, NULL);
	else
		/* kind, user_id, room, event, data, id, alert_id, gseq, target_role, target_users
		 */
		*rows = json_loads(
		    "[[\"r\",null,\"club\",\"room_message\",\"{\\\"content\\\":\\\"old\\\"}\",null,"
		    "null,"
		    "\"500\",null,null],"
		    "[\"r\",null,\"club\",\"room_message\",\"{\\\"content\\\":\\\"all\\\"}\",null,"
		    "null,"
		    "\"1500000\",null,null],"
		    "[\"u\",\"bob\",null,\"direct_message\",\"{\\\"content\\\":\\\"one\\\"}\","
		    "\"7\","
		    "null,\"2500000\",null,null],"
		    "[\"r\",null,\"club\",\"room_message\",\"{\\\"content\\\":\\\"mods\\\"}\",null,"
		    "null,\"2600000\",\"moderator\",null],"
		    "[\"u\",\"bob\",null,\"alert\",\"{\\\"alert_id\\\":\\\"al-1\\\"}\",null,\"al-"
		    "1\","
		    "\"2700000\",null,null],"
		    "[\"r\",null,\"club\",\"room_message\",\"{\\\"content\\\":\\\"carol\\\"}\","
		    "null,"
		    "null,\"2800000\",null,\"[\\\"carol\\\"]\"]]",
		    0, NULL);
	return *rows ? 0 : -1;
}

static void test_load(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *b;
	char err[256];
	json_t *d;

	env_store(e);
	assert_int_equal(qc_hub_load(e->h, fake_load, NULL, err, sizeof(err)), 0);
	/*
	 * The room's log: "old" predates everyone's position (nobody waits for it: forgotten once
	 * the store is there); "all" is alice's and carol's (bob had it before he left), "mods" is
	 * bob's (a moderator), "carol" is carol's; bob's inbox has a message and an alert.
	 */
	assert_int_equal(stat_get(e, "offline", "queued"), 6);
	assert_int_equal(stat_get(e, "offline", "messages"), 5);
	assert_int_equal(stat_get(e, "offline", "users"), 3);
	qc_hub_set_store(e->h, &(struct qc_store){fs_submit, fs_stats, NULL});
	assert_non_null(strstr(pending_stmt()->sql, "DELETE FROM room_log"));
	assert_string_equal(pending_stmt()->params[0], "{500}");
	complete(QC_OK, NULL);
	b = env_open(e, "bob", 0);
	assert_true(bget(expect_event(frame(b, 1), "direct_message"), "offline"));
	assert_string_equal(sget(expect_event(frame(b, 2), "room_message"), "content"), "mods");
	assert_string_equal(sget(expect_event(frame(b, 3), "alert"), "alert_id"), "al-1");
	assert_int_equal(stat_get(e, "offline", "queued"), 3);
	assert_int_equal(stat_get(e, "offline", "users"), 2);
	complete_all(); /* the delivered rows' bookkeeping */
	rx(e, b,
	   "{\"type\":\"request\",\"request_id\":\"l\",\"action\":\"list_subscriptions\","
	   "\"payload\":{}}");
	d = json_array_get(get(expect_ok(last(b), "l"), "subscriptions"), 0);
	assert_int_equal(iget(d, "version"), 3);
	assert_json(
	    get(d, "filter"),
	    "{\"op\":\"or\",\"conditions\":[{\"field\":\"price\",\"cmp\":\"gt\",\"value\":5}]}");
	assert_int_equal(b->streams.count, 1); /* attached */
	rx(e, b,
	   "{\"type\":\"request\",\"request_id\":\"m\",\"action\":\"get_room_members\","
	   "\"payload\":{\"room\":\"club\"}}");
	assert_int_equal(json_array_size(get(expect_ok(last(b), "m"), "members")), 3);
}

/* ---- durable inboxes (SPEC 2.9) ---------------------------------------------------------- */

/* A connection of @user that presents inbox position @seq/@epoch on its upgrade. */
static struct qc_conn *env_open_at(struct env *e, const char *user, uint64_t seq, const char *epoch)
{
	struct qc_conn *c = calloc(1, sizeof(*c));
	struct qc_inbox_pos pos = {seq, epoch};
	size_t i;

	assert_non_null(c);
	snprintf(c->user_id, sizeof(c->user_id), "%s", user);
	c->transport = e;
	assert_int_equal(qc_hub_open_at(e->h, c, &pos), 0);
	for (i = 0; i < MAX_CONNS && e->conns[i]; i++)
		;
	assert_true(i < MAX_CONNS);
	e->conns[i] = c;
	return c;
}

/* The session event's inbox report: @rec, the log's last @seq, @replayed entries. */
static void check_inbox(json_t *d, bool rec, json_int_t seq, json_int_t replayed)
{
	char *dump = json_dumps(d, JSON_COMPACT);

	assert_true(json_is_object(d));
	if (bget(d, "recovered") != rec || iget(d, "seq") != seq || iget(d, "replayed") != replayed)
		fail_msg("inbox report %s", dump ? dump : "?");
	free(dump);
	assert_int_equal(iget(d, "seq"), seq);
	assert_int_equal(iget(d, "replayed"), replayed);
	assert_int_equal(json_string_length(json_object_get(d, "epoch")), 12);
}

/* Everything @c was sent, its replay included, as parsed frames (the queue is emptied). */
static json_t *collect(struct env *e, struct qc_conn *c)
{
	json_t *all = keep(json_array());

	do {
		while (!qc_outq_empty(&c->outq)) {
			json_array_append(all, parse_msg(qc_outq_peek(&c->outq)));
			qc_outq_pop(&c->outq);
		}
	} while (qc_hub_refill(e->h, c));
	return all;
}

static void test_inbox_written(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a, *r;
	char epoch[16];
	struct stmt *st;
	json_t *got, *d;

	e->cfg.inbox.history_size = 10;
	env_store(e);
	fs.inbox = true;
	a = env_open(e, "alice", 0);
	r = env_open(e, "root", QC_ROLE_ADMIN);
	complete_all();
	rx(e, r,
	   "{\"type\":\"request\",\"request_id\":\"d\",\"action\":\"send_to_user\","
	   "\"payload\":{\"user_id\":\"alice\",\"content\":\"one\"}}");
	d = expect_event(last(a), "direct_message");
	assert_int_equal(iget(d, "seq"), 1);
	snprintf(epoch, sizeof(epoch), "%s", sget(d, "epoch"));
	/* one repeatable statement: the entry with its seq, and the log's epoch and last seq */
	st = pending_stmt();
	assert_non_null(strstr(st->sql, "INSERT INTO inbox_logs"));
	assert_non_null(strstr(st->sql, "INSERT INTO inbox_history"));
	assert_non_null(strstr(st->sql, "ON CONFLICT (user_id, seq) DO UPDATE"));
	assert_string_equal(st->params[0], "alice");
	assert_string_equal(st->params[1], epoch);
	assert_string_equal(st->params[2], "1");
	assert_string_equal(st->params[3], "direct_message");
	assert_non_null(strstr(st->params[4], "\"content\":\"one\""));
	assert_non_null(strstr(st->params[4], "\"seq\":1"));
	complete(QC_OK, NULL);
	/* the stored log is trimmed every 64 entries to inbox.history_size */
	for (int i = 2; i <= 64; i++) {
		rxf(e, r,
		    "{\"type\":\"request\",\"request_id\":\"d%d\",\"action\":\"send_to_user\","
		    "\"payload\":{\"user_id\":\"alice\",\"content\":\"m%d\"}}",
		    i, i);
		st = pending_stmt();
		assert_non_null(strstr(st->sql, "INSERT INTO inbox_history"));
		complete(QC_OK, NULL);
		if (i < 64)
			assert_int_equal(fs.tail - fs.head, 0);
	}
	st = pending_stmt();
	assert_non_null(strstr(st->sql, "DELETE FROM inbox_history"));
	assert_string_equal(st->params[0], "alice");
	assert_string_equal(st->params[1], "54");
	complete(QC_OK, NULL);
	drain(a);

	/* alice's last session ends: her log stays, with its epoch */
	env_drop(e, a);
	complete_all();
	assert_int_equal(stat_get(e, "inbox", "logs"), 1);
	a = env_open_at(e, "alice", 60, epoch);
	got = collect(e, a);
	d = expect_event(json_array_get(got, 0), "session");
	check_inbox(get(d, "inbox"), true, 64, 4);
	assert_int_equal(json_array_size(got), 5);
	for (int i = 0; i < 4; i++) {
		d = expect_event(json_array_get(got, (size_t)i + 1), "direct_message");
		assert_int_equal(iget(d, "seq"), 61 + i);
		assert_string_equal(sget(d, "epoch"), epoch);
	}
	/* older than what the log keeps (55..64): what it keeps, recovered false */
	env_drop(e, a);
	a = env_open_at(e, "alice", 3, epoch);
	got = collect(e, a);
	assert_false(
	    bget(get(expect_event(json_array_get(got, 0), "session"), "inbox"), "recovered"));
	/* another epoch: live only */
	env_drop(e, a);
	a = env_open_at(e, "alice", 60, "0123456789ab");
	got = collect(e, a);
	d = get(expect_event(json_array_get(got, 0), "session"), "inbox");
	assert_false(bget(d, "recovered"));
	assert_int_equal(iget(d, "replayed"), 0);
	assert_string_equal(sget(d, "epoch"), epoch);
	assert_int_equal(json_array_size(got), 1);
	/* and the next entry goes on from the log's seq */
	rx(e, r,
	   "{\"type\":\"request\",\"request_id\":\"n\",\"action\":\"send_to_user\","
	   "\"payload\":{\"user_id\":\"alice\",\"content\":\"next\"}}");
	assert_int_equal(iget(expect_event(last(a), "direct_message"), "seq"), 65);
	complete_all();
}

static void test_inbox_memory(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a, *r;
	char epoch[16];
	json_t *got, *d;

	env_start(e);
	a = env_open(e, "alice", 0);
	r = env_open(e, "root", QC_ROLE_ADMIN);
	rx(e, r,
	   "{\"type\":\"request\",\"request_id\":\"d\",\"action\":\"send_to_user\","
	   "\"payload\":{\"user_id\":\"alice\",\"content\":\"one\"}}");
	d = expect_event(last(a), "direct_message");
	snprintf(epoch, sizeof(epoch), "%s", sget(d, "epoch"));
	/* a second session of alice's reads the inbox back while the first holds it */
	got = collect(e, env_open_at(e, "alice", 0, epoch));
	check_inbox(get(expect_event(json_array_get(got, 0), "session"), "inbox"), true, 1, 1);
	assert_string_equal(sget(expect_event(json_array_get(got, 1), "direct_message"), "content"),
	                    "one");
	/* memory only, the log goes with the user's last session: a new epoch */
	for (size_t i = 0; i < MAX_CONNS; i++)
		if (e->conns[i] && e->conns[i] != r)
			env_drop(e, e->conns[i]);
	got = collect(e, env_open_at(e, "alice", 1, epoch));
	d = get(expect_event(json_array_get(got, 0), "session"), "inbox");
	assert_false(bget(d, "recovered"));
	assert_string_not_equal(sget(d, "epoch"), epoch);
	assert_int_equal(stat_get(e, "inbox", "logs"), 1);
}

static void test_inbox_load(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *b;
	char err[256];
	json_t *got;

	env_store(e);
	fs.inbox = true;
	load_inbox_logs = "[[\"bob\",\"abcdefabcdef\",\"3\"],[\"dan\",\"000000000000\",\"9\"]]";
	load_inbox_history =
	    "[[\"bob\",\"2\",\"direct_message\",\"{\\\"content\\\":\\\"two\\\"}\",\"1000\"],"
	    "[\"bob\",\"3\",\"alert\",\"{\\\"alert_id\\\":\\\"al-0\\\"}\",\"1000\"],"
	    "[\"dan\",\"7\",\"direct_message\",\"{\\\"content\\\":\\\"gone\\\"}\",\"1000\"]]";
	assert_int_equal(qc_hub_load(e->h, fake_load, NULL, err, sizeof(err)), 0);
	load_inbox_logs = load_inbox_history = "[]";
	qc_hub_set_store(e->h, &(struct qc_store){fs_submit, fs_stats, NULL});
	complete_all();
	assert_int_equal(stat_get(e, "inbox", "logs"), 2);
	assert_int_equal(stat_get(e, "inbox", "history_entries"), 2); /* dan's 8 and 9 are gone */
	/*
	 * bob comes back with his position 1: the inbox's 2 and 3 first, then what waited offline
	 * (fake_load: a direct message, a room message of club, an alert), each appended to the
	 * inbox as it is delivered: 4, 5, 6. Nothing twice.
	 */
	b = env_open_at(e, "bob", 1, "abcdefabcdef");
	got = collect(e, b);
	check_inbox(get(expect_event(json_array_get(got, 0), "session"), "inbox"), true, 3, 2);
	assert_int_equal(json_array_size(got), 6);
	assert_string_equal(sget(expect_event(json_array_get(got, 1), "direct_message"), "content"),
	                    "two");
	assert_int_equal(iget(get(json_array_get(got, 1), "data"), "seq"), 2);
	assert_int_equal(iget(expect_event(json_array_get(got, 2), "alert"), "seq"), 3);
	for (size_t i = 3; i < 6; i++) {
		json_t *d = get(json_array_get(got, i), "data");

		assert_true(bget(d, "offline"));
		assert_int_equal(iget(d, "seq"), (json_int_t)i + 1);
		assert_string_equal(sget(d, "epoch"), "abcdefabcdef");
	}
	/* the offline deliveries are written to the inbox with their seqs before their rows go */
	assert_non_null(strstr(pending_stmt()->sql, "INSERT INTO inbox_history"));
	assert_string_equal(pending_stmt()->params[2], "4");
	complete_all();
	/* dan's log goes on from its stored seq, though its newest entries are gone */
	b = env_open_at(e, "dan", 9, "000000000000");
	got = collect(e, b);
	check_inbox(get(expect_event(json_array_get(got, 0), "session"), "inbox"), true, 9, 0);
	b = env_open_at(e, "dan", 7, "000000000000");
	got = collect(e, b);
	assert_false(
	    bget(get(expect_event(json_array_get(got, 0), "session"), "inbox"), "recovered"));
}

/* ---- encodings --------------------------------------------------------------------------- */

static void test_frames_per_encoding(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *n1, *n2, *s1, *s2;
	struct qc_msg *m;

	env_start(e);
	n1 = env_open(e, "n1", 0);
	n2 = env_open(e, "n2", 0);
	s1 = calloc(1, sizeof(*s1));
	s2 = calloc(1, sizeof(*s2));
	assert_non_null(s1);
	assert_non_null(s2);
	for (int i = 0; i < 2; i++) {
		struct qc_conn *s = i ? s2 : s1;

		snprintf(s->user_id, sizeof(s->user_id), "sio%d", i);
		s->enc = QC_ENC_SIO;
		s->transport = e;
		assert_int_equal(qc_hub_open(e->h, s), 0);
		e->conns[4 + i] = s;
		/* the Socket.IO CONNECT answer first, then the session event */
		m = at(s, 0);
		assert_int_equal(qc_msg_payload_len(m), 2 + 8 + QC_SESSION_ID_LEN + 2);
		assert_memory_equal(qc_msg_payload(m), "40{\"sid\":\"", 10);
		m = at(s, 1);
		assert_memory_equal(qc_msg_payload(m), "42[\"session\",", 13);
	}
	rx(e, n1, "{\"type\":\"subscribe\",\"room\":\"r\"}");
	rx(e, n2, "{\"type\":\"subscribe\",\"room\":\"r\"}");
	rx(e, s1, "42[\"subscribe\",{\"room\":\"r\"}]");
	rx(e, s2, "421[\"subscribe\",\"r\"]");
	/* with an ack id the answer is the ack */
	m = tail(s2);
	assert_memory_equal(qc_msg_payload(m), "431[{\"type\":\"response\"", 22);
	rx(e, n1,
	   "{\"type\":\"request\",\"action\":\"send_message\",\"payload\":{\"room\":\"r\","
	   "\"content\":\"x\"}}");
	/* one frame per encoding, shared by the receivers of that encoding */
	assert_ptr_equal(tail(n2), at(n1, n1->outq.count - 2));
	assert_ptr_equal(tail(s1), tail(s2));
	assert_ptr_not_equal(tail(s1), tail(n2));
	assert_memory_equal(qc_msg_payload(tail(s1)), "42[\"room_message\",", 18);
	/* an Engine.IO pong is not a message */
	rx(e, s1, "3");
	assert_int_equal(stat_get(e, NULL, "total_connections"), 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_answer_after_commit, teardown_store),
	    cmocka_unit_test_teardown(test_failure_changes_nothing, teardown_store),
	    cmocka_unit_test_teardown(test_commit_after_requester_left, teardown_store),
	    cmocka_unit_test_teardown(test_membership_durable, teardown_store),
	    cmocka_unit_test_teardown(test_offline_written_first, teardown_store),
	    cmocka_unit_test_teardown(test_alert_row_then_event, teardown_store),
	    cmocka_unit_test_teardown(test_alert_edges_memory, teardown),
	    cmocka_unit_test_teardown(test_subscription_versions, teardown),
	    cmocka_unit_test_teardown(test_subscription_errors, teardown),
	    cmocka_unit_test_teardown(test_subscription_caps, teardown),
	    cmocka_unit_test_teardown(test_subscription_caps_in_flight, teardown_store),
	    cmocka_unit_test_teardown(test_load, teardown_store),
	    cmocka_unit_test_teardown(test_frames_per_encoding, teardown),
	    cmocka_unit_test_teardown(test_inbox_written, teardown_store),
	    cmocka_unit_test_teardown(test_inbox_memory, teardown),
	    cmocka_unit_test_teardown(test_inbox_load, teardown_store),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
