/*
 * test_hub_room: the bounds on created rooms (issue 11), through the hub with the fake
 * transport: rooms per owner (admins exempt, deleting frees the slot, loaded rooms count),
 * rooms in total, members per room on every path that makes one (add_member, a protected
 * room's password, a public created room's subscribe) next to a room's own capacity, requests
 * still with the store counting against each bound (a fake store answers when told), and the
 * room-password throttle: wrong passwords per user and room, then RATE_LIMITED even for the
 * right one, and the server-wide budget of password hashes.
 */
#include "hub_env.h"

#include "quotecast/store.h"

/* ---- a fake store that answers when the test says so ------------------------------------- */

#define MAX_STMTS 64

struct stmt {
	qc_store_cb cb;
	void *arg;
};

static struct {
	struct stmt q[MAX_STMTS];
	int head, tail;
	struct stmt logs[MAX_STMTS]; /* writes of the rooms' logs (SPEC 2.9): answered aside */
	int nlogs;
} fs;

static int fs_submit(void *ctx, const char *sql, int n, const char *const *params, qc_store_cb cb,
                     void *arg)
{
	(void)ctx;
	(void)n;
	(void)params;
	if (strstr(sql, "room_history") || strstr(sql, "log_epoch =")) {
		assert_true(fs.nlogs < MAX_STMTS);
		fs.logs[fs.nlogs++] = (struct stmt){cb, arg};
		return 0;
	}
	assert_true(fs.tail < MAX_STMTS);
	fs.q[fs.tail++] = (struct stmt){cb, arg};
	return 0;
}

/* The rooms' log writes are committed. */
static void logs_done(void)
{
	json_t *rows = json_array();

	while (fs.nlogs) {
		struct stmt s = fs.logs[--fs.nlogs];

		s.cb(s.arg, QC_OK, NULL, rows);
	}
	json_decref(rows);
}

static void fs_stats(void *ctx, struct qc_store_stats *st)
{
	(void)ctx;
	memset(st, 0, sizeof(*st));
	st->configured = st->connected = true;
	st->state = "connected";
}

/* Answer the oldest statement: committed (no rows), or failed with @err. */
static void complete(enum qc_err err)
{
	struct stmt s;
	json_t *rows = json_array();

	logs_done();
	assert_true(fs.head < fs.tail);
	s = fs.q[fs.head++];
	s.cb(s.arg, err, err == QC_OK ? NULL : "store says no", err == QC_OK ? rows : NULL);
	json_decref(rows);
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
	while (fs.head < fs.tail)
		complete(QC_E_UNAVAILABLE);
	logs_done();
	return teardown(state);
}

/* ---- helpers ----------------------------------------------------------------------------- */

static json_int_t refused(struct env *e, const char *key)
{
	json_t *s = qc_hub_stats(e->h);
	json_t *v = json_object_get(json_object_get(json_object_get(s, "limits"), "refused"), key);
	json_int_t n;

	if (!json_is_integer(v))
		fail_msg("stats limits.refused.%s is not an integer", key);
	n = json_integer_value(v);
	json_decref(s);
	return n;
}

static void expect_err(json_t *j, const char *rid, const char *code, const char *prefix)
{
	const char *msg;

	assert_string_equal(sget(j, "type"), "response");
	assert_string_equal(sget(j, "request_id"), rid);
	assert_false(bget(j, "success"));
	assert_string_equal(sget(get(j, "error"), "code"), code);
	msg = sget(get(j, "error"), "message");
	if (prefix && strncmp(msg, prefix, strlen(prefix)))
		fail_msg("message \"%s\" does not start with \"%s\"", msg, prefix);
}

static void create(struct env *e, struct qc_conn *c, const char *rid, const char *room,
                   const char *extra)
{
	rxf(e, c,
	    "{\"type\":\"request\",\"request_id\":\"%s\",\"action\":\"create_room\","
	    "\"payload\":{\"room\":\"%s\"%s}}",
	    rid, room, extra ? extra : "");
}

static void delete_room(struct env *e, struct qc_conn *c, const char *rid, const char *room)
{
	rxf(e, c,
	    "{\"type\":\"request\",\"request_id\":\"%s\",\"action\":\"delete_room\","
	    "\"payload\":{\"room\":\"%s\"}}",
	    rid, room);
}

static void add_member(struct env *e, struct qc_conn *c, const char *rid, const char *room,
                       const char *user)
{
	rxf(e, c,
	    "{\"type\":\"request\",\"request_id\":\"%s\",\"action\":\"add_member\","
	    "\"payload\":{\"room\":\"%s\",\"user_id\":\"%s\"}}",
	    rid, room, user);
}

static void subscribe(struct env *e, struct qc_conn *c, const char *rid, const char *room,
                      const char *password)
{
	if (password)
		rxf(e, c,
		    "{\"type\":\"subscribe\",\"request_id\":\"%s\",\"room\":\"%s\","
		    "\"password\":\"%s\"}",
		    rid, room, password);
	else
		rxf(e, c, "{\"type\":\"subscribe\",\"request_id\":\"%s\",\"room\":\"%s\"}", rid,
		    room);
}

static json_int_t members(struct env *e, struct qc_conn *c, const char *room)
{
	rxf(e, c,
	    "{\"type\":\"request\",\"request_id\":\"gm\",\"action\":\"get_room\","
	    "\"payload\":{\"room\":\"%s\"}}",
	    room);
	return iget(expect_ok(last(c), "gm"), "members");
}

/* ---- rooms ------------------------------------------------------------------------------- */

static void test_rooms_per_owner(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a, *a2, *b, *adm;

	e->cfg.rooms.max_per_owner = 3;
	env_start(e);
	a = env_open(e, "alice", 0);
	a2 = env_open(e, "alice", 0); /* the same user on a second connection */
	b = env_open(e, "bob", 0);
	adm = env_open(e, "root", QC_ROLE_ADMIN);

	create(e, a, "1", "a1", NULL);
	expect_ok(last(a), "1");
	create(e, a2, "2", "a2", NULL);
	expect_ok(last(a2), "2");
	create(e, a, "3", "a3", ",\"type\":\"protected\",\"password\":\"pw\"");
	expect_ok(last(a), "3");
	create(e, a2, "4", "a4", NULL);
	expect_err(last(a2), "4", "LIMIT_EXCEEDED", "rooms.max_per_owner: ");
	assert_int_equal(refused(e, "rooms.max_per_owner"), 1);
	/* others are not affected */
	create(e, b, "5", "b1", NULL);
	expect_ok(last(b), "5");
	/* an admin may delete alice's room: her slot is free again */
	delete_room(e, adm, "6", "a1");
	expect_ok(last(adm), "6");
	create(e, a, "7", "a4", NULL);
	expect_ok(last(a), "7");
	create(e, a, "8", "a5", NULL);
	expect_err(last(a), "8", "LIMIT_EXCEEDED", "rooms.max_per_owner: ");
	/* server admins are exempt */
	for (int i = 0; i < 5; i++) {
		char name[16];

		snprintf(name, sizeof(name), "adm%d", i);
		create(e, adm, "9", name, NULL);
		expect_ok(last(adm), "9");
	}
	assert_int_equal(refused(e, "rooms.max_per_owner"), 2);
	assert_int_equal(stat_get(e, NULL, "total_rooms"), 9);
}

static void test_rooms_total(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a, *b, *adm;

	e->cfg.rooms.max_total = 3;
	env_start(e);
	a = env_open(e, "alice", 0);
	b = env_open(e, "bob", 0);
	adm = env_open(e, "root", QC_ROLE_ADMIN);
	create(e, a, "1", "r1", NULL);
	create(e, a, "2", "r2", NULL);
	create(e, b, "3", "r3", NULL);
	expect_ok(last(b), "3");
	create(e, b, "4", "r4", NULL);
	expect_err(last(b), "4", "LIMIT_EXCEEDED", "rooms.max_total: ");
	create(e, adm, "5", "r4", NULL); /* admins too */
	expect_err(last(adm), "5", "LIMIT_EXCEEDED", "rooms.max_total: ");
	assert_int_equal(refused(e, "rooms.max_total"), 2);
	/* implicit rooms are not created rooms: they do not count */
	subscribe(e, b, "6", "chat", NULL);
	expect_ok(last(b), "6");
	delete_room(e, a, "7", "r1");
	expect_ok(last(a), "7");
	create(e, b, "8", "r4", NULL);
	expect_ok(last(b), "8");
}

/* Creations still with the store count; a failed one gives its slot back. */
static void test_rooms_pending(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a;

	e->cfg.rooms.max_per_owner = 2;
	env_store(e);
	a = env_open(e, "alice", 0);
	drain(a);
	create(e, a, "1", "p1", NULL);
	create(e, a, "2", "p2", NULL);
	assert_int_equal(a->outq.count, 0);
	create(e, a, "3", "p3", NULL);
	expect_err(last(a), "3", "LIMIT_EXCEEDED", "rooms.max_per_owner: ");
	complete(QC_E_UNAVAILABLE); /* p1 was not made */
	expect_err(last(a), "1", "UNAVAILABLE", NULL);
	create(e, a, "4", "p3", NULL);
	complete(QC_OK); /* p2 */
	expect_ok(last(a), "2");
	complete(QC_E_ALREADY_EXISTS); /* p3: someone else's in the database */
	expect_err(last(a), "4", "ALREADY_EXISTS", NULL);
	create(e, a, "5", "p4", NULL);
	complete(QC_OK);
	expect_ok(last(a), "5");
	create(e, a, "6", "p5", NULL);
	expect_err(last(a), "6", "LIMIT_EXCEEDED", "rooms.max_per_owner: ");
	assert_int_equal(fs.head, fs.tail);
}

static const char *const room_rows =
    "[[\"l1\",\"alice\",\"public\",\"active\",null,null,null,\"1000\"],"
    "[\"l2\",\"alice\",\"private\",\"active\",null,null,null,\"1001\"],"
    "[\"l3\",\"bob\",\"public\",\"active\",null,null,null,\"1002\"]]";

static int fake_load(void *ctx, const char *sql, json_t **rows, char *err, size_t errlen)
{
	(void)ctx;
	(void)err;
	(void)errlen;
	if (strstr(sql, "FROM rooms"))
		*rows = json_loads(room_rows, 0, NULL);
	else if (strstr(sql, "FROM room_members"))
		*rows = json_loads("[[\"l1\",\"alice\",\"owner\",\"1000\"],"
		                   "[\"l2\",\"alice\",\"owner\",\"1001\"],"
		                   "[\"l3\",\"bob\",\"owner\",\"1002\"]]",
		                   0, NULL);
	else
		*rows = json_array();
	return *rows ? 0 : -1;
}

/* Rooms loaded at start count toward their owner's bound and the total. */
static void test_loaded_rooms_count(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a, *b, *c;
	char err[256];

	e->cfg.rooms.max_per_owner = 2;
	e->cfg.rooms.max_total = 4;
	env_store(e);
	assert_int_equal(qc_hub_load(e->h, fake_load, NULL, err, sizeof(err)), 0);
	a = env_open(e, "alice", 0);
	b = env_open(e, "bob", 0);
	c = env_open(e, "carol", 0);
	create(e, a, "1", "x", NULL);
	expect_err(last(a), "1", "LIMIT_EXCEEDED", "rooms.max_per_owner: ");
	create(e, b, "2", "y", NULL);
	complete(QC_OK);
	expect_ok(last(b), "2");
	create(e, c, "3", "z", NULL);
	expect_err(last(c), "3", "LIMIT_EXCEEDED", "rooms.max_total: ");
	delete_room(e, a, "4", "l1");
	complete(QC_OK);
	expect_ok(last(a), "4");
	create(e, a, "5", "x", NULL);
	complete(QC_OK);
	expect_ok(last(a), "5");
}

/* ---- members ----------------------------------------------------------------------------- */

static void test_members_per_room(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *o, *u, *v, *w, *adm;

	e->cfg.rooms.max_members = 3;
	e->cfg.rooms.password_hashes_per_s = 1000;
	e->cfg.limits.rate_burst = 1000;
	env_start(e);
	o = env_open(e, "owner", 0);
	u = env_open(e, "u", 0);
	v = env_open(e, "v", 0);
	w = env_open(e, "w", 0);
	adm = env_open(e, "root", QC_ROLE_ADMIN);

	/* add_member: the owner and two more */
	create(e, o, "1", "priv", ",\"type\":\"private\"");
	add_member(e, o, "2", "priv", "m1");
	expect_ok(last(o), "2");
	add_member(e, o, "3", "priv", "m2");
	expect_ok(last(o), "3");
	add_member(e, o, "4", "priv", "m3");
	expect_err(last(o), "4", "LIMIT_EXCEEDED", "rooms.max_members: ");
	add_member(e, adm, "5", "priv", "m3"); /* admins too */
	expect_err(last(adm), "5", "LIMIT_EXCEEDED", "rooms.max_members: ");
	assert_int_equal(members(e, o, "priv"), 3);
	/* removing one frees the place */
	rx(e, o,
	   "{\"type\":\"request\",\"request_id\":\"6\",\"action\":\"remove_member\","
	   "\"payload\":{\"room\":\"priv\",\"user_id\":\"m2\"}}");
	expect_ok(last(o), "6");
	add_member(e, o, "7", "priv", "m3");
	expect_ok(last(o), "7");

	/* a public created room: subscribing makes a member */
	create(e, o, "8", "pub", NULL);
	subscribe(e, u, "9", "pub", NULL);
	expect_ok(last(u), "9");
	subscribe(e, v, "10", "pub", NULL);
	expect_ok(last(v), "10");
	subscribe(e, w, "11", "pub", NULL);
	expect_err(last(w), "11", "LIMIT_EXCEEDED", "rooms.max_members: ");
	/* members already in are not refused again */
	rx(e, u, "{\"type\":\"unsubscribe\",\"request_id\":\"12\",\"room\":\"pub\"}");
	expect_ok(last(u), "12");
	subscribe(e, u, "12", "pub", NULL);
	expect_ok(last(u), "12");

	/* a protected room: the right password makes a member, up to the bound */
	create(e, o, "13", "prot", ",\"type\":\"protected\",\"password\":\"pw\"");
	subscribe(e, u, "14", "prot", "pw");
	expect_ok(last(u), "14");
	subscribe(e, v, "15", "prot", "pw");
	expect_ok(last(v), "15");
	subscribe(e, w, "16", "prot", "pw");
	expect_err(last(w), "16", "LIMIT_EXCEEDED", "rooms.max_members: ");

	/* the room's own smaller capacity answers ROOM_FULL first */
	create(e, o, "17", "small", ",\"type\":\"private\",\"max_members\":2");
	add_member(e, o, "18", "small", "m1");
	expect_ok(last(o), "18");
	add_member(e, o, "19", "small", "m2");
	expect_err(last(o), "19", "ROOM_FULL", NULL);
	assert_int_equal(refused(e, "rooms.max_members"), 4);
}

/* Members still with the store count, on both paths; a failed one gives its place back. */
static void test_members_pending(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *o, *u, *v;

	e->cfg.rooms.max_members = 3;
	env_store(e);
	o = env_open(e, "owner", 0);
	u = env_open(e, "u", 0);
	v = env_open(e, "v", 0);
	create(e, o, "1", "pub", NULL);
	complete(QC_OK);
	expect_ok(last(o), "1");
	drain(o);
	add_member(e, o, "2", "pub", "m1");
	subscribe(e, u, "3", "pub", NULL);
	assert_int_equal(o->outq.count, 0);
	add_member(e, o, "4", "pub", "m2");
	expect_err(last(o), "4", "LIMIT_EXCEEDED", "rooms.max_members: ");
	subscribe(e, v, "5", "pub", NULL);
	expect_err(last(v), "5", "LIMIT_EXCEEDED", "rooms.max_members: ");
	complete(QC_E_UNAVAILABLE); /* m1 was not added */
	expect_err(last(o), "2", "UNAVAILABLE", NULL);
	subscribe(e, v, "6", "pub", NULL);
	complete(QC_OK); /* u joins */
	expect_ok(last(u), "3");
	complete(QC_OK); /* v joins */
	expect_ok(last(v), "6");
	add_member(e, o, "7", "pub", "m2");
	expect_err(last(o), "7", "LIMIT_EXCEEDED", "rooms.max_members: ");
	assert_int_equal(members(e, o, "pub"), 3);
	assert_int_equal(fs.head, fs.tail);
}

/* ---- room passwords ---------------------------------------------------------------------- */

static void test_password_attempts(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *o, *m, *m2, *n;

	e->cfg.rooms.password_attempts = 3;
	e->cfg.rooms.password_hashes_per_s = 1000;
	e->cfg.limits.rate_burst = 1000;
	env_start(e);
	o = env_open(e, "owner", 0);
	m = env_open(e, "mallory", 0);
	m2 = env_open(e, "mallory", 0);
	n = env_open(e, "nina", 0);
	create(e, o, "1", "vault", ",\"type\":\"protected\",\"password\":\"right\"");
	expect_ok(last(o), "1");
	create(e, o, "2", "safe", ",\"type\":\"protected\",\"password\":\"right\"");

	/* a missing password is no attempt: nothing to hash */
	subscribe(e, m, "3", "vault", NULL);
	expect_err(last(m), "3", "WRONG_PASSWORD", NULL);
	for (int i = 0; i < 3; i++) {
		subscribe(e, i % 2 ? m2 : m, "4", "vault", "guess");
		expect_err(last(i % 2 ? m2 : m), "4", "WRONG_PASSWORD", NULL);
	}
	/* the user (on any connection) is refused now, even with the right password */
	subscribe(e, m, "5", "vault", "right");
	expect_err(last(m), "5", "RATE_LIMITED", "rooms.password_attempts: ");
	subscribe(e, m2, "6", "vault", "guess");
	expect_err(last(m2), "6", "RATE_LIMITED", "rooms.password_attempts: ");
	assert_int_equal(refused(e, "rooms.password_attempts"), 2);
	assert_int_equal(m->bad_messages, 0);
	/* another room, another user: not affected */
	subscribe(e, m, "7", "safe", "right");
	expect_ok(last(m), "7");
	subscribe(e, n, "8", "vault", "right");
	expect_ok(last(n), "8");

	/* the right password before the limit forgets the wrong ones */
	for (int i = 0; i < 2; i++) {
		subscribe(e, n, "9", "safe", "guess");
		expect_err(last(n), "9", "WRONG_PASSWORD", NULL);
	}
	subscribe(e, n, "10", "safe", "right");
	expect_ok(last(n), "10");
	rx(e, o,
	   "{\"type\":\"request\",\"request_id\":\"11\",\"action\":\"remove_member\","
	   "\"payload\":{\"room\":\"safe\",\"user_id\":\"nina\"}}");
	expect_ok(last(o), "11");
	for (int i = 0; i < 3; i++) {
		subscribe(e, n, "12", "safe", "guess");
		expect_err(last(n), "12", "WRONG_PASSWORD", NULL);
	}
	subscribe(e, n, "13", "safe", "right");
	expect_err(last(n), "13", "RATE_LIMITED", "rooms.password_attempts: ");
	/* members give no password, so they are never throttled */
	subscribe(e, m, "14", "safe", "anything");
	expect_ok(last(m), "14");
	assert_int_equal(refused(e, "rooms.password_attempts"), 3);
}

/* The server-wide budget of password hashes: checks and protected creations share it. */
static void test_password_hash_budget(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *o, *u, *v;

	e->cfg.rooms.password_hashes_per_s = 1; /* one at a time, one a second */
	env_start(e);
	o = env_open(e, "owner", 0);
	u = env_open(e, "u", 0);
	v = env_open(e, "v", 0);
	create(e, o, "1", "vault", ",\"type\":\"protected\",\"password\":\"right\"");
	expect_ok(last(o), "1");
	/* that hash spent the budget */
	subscribe(e, u, "2", "vault", "right");
	expect_err(last(u), "2", "RATE_LIMITED", "rooms.password_hashes_per_s: ");
	create(e, o, "3", "vault2", ",\"type\":\"protected\",\"password\":\"right\"");
	expect_err(last(o), "3", "RATE_LIMITED", "rooms.password_hashes_per_s: ");
	/* not a wrong password: no attempt is counted against u */
	subscribe(e, v, "4", "vault", NULL);
	expect_err(last(v), "4", "WRONG_PASSWORD", NULL);
	/* public rooms need no hash */
	create(e, o, "5", "open", NULL);
	expect_ok(last(o), "5");
	assert_int_equal(refused(e, "rooms.password_hashes_per_s"), 2);
	assert_int_equal(refused(e, "rooms.password_attempts"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_rooms_per_owner, teardown),
	    cmocka_unit_test_teardown(test_rooms_total, teardown),
	    cmocka_unit_test_teardown(test_rooms_pending, teardown_store),
	    cmocka_unit_test_teardown(test_loaded_rooms_count, teardown_store),
	    cmocka_unit_test_teardown(test_members_per_room, teardown),
	    cmocka_unit_test_teardown(test_members_pending, teardown_store),
	    cmocka_unit_test_teardown(test_password_attempts, teardown),
	    cmocka_unit_test_teardown(test_password_hash_budget, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
