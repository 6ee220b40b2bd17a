/*
 * test_inbox_broker: the hub's side of users' inboxes and sessions across nodes (broker.h's
 * struct qc_inbox_broker; cluster_session.c is the Redis side), driven through hub_env's fake
 * transport with a fake broker that records what the hub asks and answers when the test says:
 * send_to_user waits for the broker's verdict (sessions, none: offline, no answer:
 * UNAVAILABLE); entries numbered elsewhere reach a user's connections in seq order, once, and
 * a hole is reported instead of skipped; the broker hears where sessions are; the session
 * record; a resume request for a token this node does not know rebuilds the session from the
 * record the broker finds (or fails NOT_FOUND / UNAVAILABLE).
 */
#define HUB_ENV_TTL_S 30
#include "hub_env.h"

#include <openssl/evp.h>

#include "quotecast/broker.h"

#define MAX_PENDING 16

struct pending {
	char user[QC_USER_ID_MAX + 1];
	char name[32];
	json_t *data;
	qc_inbox_append_cb cb;
	void *arg;
};

static struct {
	struct pending p[MAX_PENDING];
	size_t n;
	enum qc_session_state state[MAX_PENDING];
	char sid[MAX_PENDING][QC_SESSION_ID_LEN + 1];
	bool take[MAX_PENDING];
	size_t nsess;
	qc_session_found_cb found;
	void *found_arg;
	int64_t since;
} fb;

static int fb_append(void *ctx, const char *user, const char *name, json_t *data,
                     qc_inbox_append_cb cb, void *arg)
{
	struct pending *p = &fb.p[fb.n++];

	(void)ctx;
	assert_true(fb.n <= MAX_PENDING);
	snprintf(p->user, sizeof(p->user), "%s", user);
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->data = json_deep_copy(data);
	p->cb = cb;
	p->arg = arg;
	return 0;
}

static void fb_session(void *ctx, const char *user, const char *sid, uint64_t conn_id,
                       enum qc_session_state state, bool take)
{
	(void)ctx;
	(void)user;
	(void)conn_id;
	if (fb.nsess == MAX_PENDING)
		return;
	fb.state[fb.nsess] = state;
	fb.take[fb.nsess] = take;
	snprintf(fb.sid[fb.nsess++], QC_SESSION_ID_LEN + 1, "%s", sid);
}

static int fb_lookup(void *ctx, const char *user, const char *sid, int64_t inbox_since,
                     qc_session_found_cb cb, void *arg)
{
	(void)ctx;
	(void)user;
	(void)sid;
	fb.found = cb;
	fb.found_arg = arg;
	fb.since = inbox_since;
	return 0;
}

/* The broker answers entry @i with @sessions (the entry gets seq @seq). */
static void answer(size_t i, int sessions, uint64_t seq)
{
	struct pending *p = &fb.p[i];

	if (p->cb)
		p->cb(p->arg, sessions, seq);
	p->cb = NULL;
	json_decref(p->data);
	p->data = NULL;
}

static struct env *start(void **state)
{
	struct env *e = env_new(state);
	struct qc_inbox_broker b = {
	    .append = fb_append, .session = fb_session, .lookup = fb_lookup, .ctx = NULL};

	for (size_t i = 0; i < fb.n; i++)
		json_decref(fb.p[i].data);
	memset(&fb, 0, sizeof(fb));
	env_start(e);
	qc_hub_set_inbox_broker(e->h, &b);
	return e;
}

static void send_dm(struct env *e, struct qc_conn *admin, const char *user)
{
	rxf(e, admin,
	    "{\"type\":\"request\",\"request_id\":\"d\",\"action\":\"send_to_user\","
	    "\"payload\":{\"user_id\":\"%s\",\"content\":\"hi\"}}",
	    user);
}

/* send_to_user is answered once the broker has: sessions, none (offline), or no answer. */
static void test_send_waits_for_broker(void **state)
{
	struct env *e = start(state);
	struct qc_conn *admin = env_open(e, "admin", QC_ROLE_ADMIN);
	json_t *d;

	drain(admin);
	send_dm(e, admin, "bob");
	assert_int_equal(fb.n, 1);
	assert_string_equal(fb.p[0].user, "bob");
	assert_string_equal(fb.p[0].name, "direct_message");
	assert_int_equal(admin->outq.count, 0); /* nothing before the broker's verdict */
	answer(0, 2, 7);
	d = expect_ok(last(admin), "d");
	assert_int_equal(iget(d, "delivered"), 2);
	assert_int_equal(json_array_size(get(d, "offline")), 0);

	drain(admin);
	send_dm(e, admin, "carol");
	answer(1, 0, 0);
	d = expect_ok(last(admin), "d");
	assert_string_equal(json_string_value(json_array_get(get(d, "offline"), 0)), "carol");

	drain(admin);
	send_dm(e, admin, "dave");
	answer(2, -ENOTCONN, 0);
	assert_string_equal(sget(get(last(admin), "error"), "code"), "UNAVAILABLE");
}

/* Entries numbered elsewhere: in seq order, once; a hole is reported; a new epoch restarts. */
static void test_entries_in_order(void **state)
{
	struct env *e = start(state);
	struct qc_conn *a = env_open(e, "alice", 0);
	json_t *data = json_pack("{s:s}", "content", "x");
	json_t *d;

	drain(a);
	qc_hub_inbox_base(e->h, "alice", "aaaaaaaaaaaa", 4);
	assert_int_equal(
	    qc_hub_inbox_entry(e->h, "alice", "aaaaaaaaaaaa", 5, "direct_message", data, false), 0);
	d = expect_event(last(a), "direct_message");
	assert_int_equal(iget(d, "seq"), 5);
	assert_string_equal(sget(d, "epoch"), "aaaaaaaaaaaa");
	/* a repeat is not sent again */
	qc_hub_inbox_entry(e->h, "alice", "aaaaaaaaaaaa", 5, "direct_message", data, false);
	assert_int_equal(a->outq.count, 1);
	/* a hole: where this node is, nothing sent */
	assert_int_equal(
	    qc_hub_inbox_entry(e->h, "alice", "aaaaaaaaaaaa", 8, "direct_message", data, false), 5);
	assert_int_equal(a->outq.count, 1);
	/* read back from the log: 6, 7, 8 in order */
	for (uint64_t s = 6; s <= 8; s++)
		qc_hub_inbox_entry(e->h, "alice", "aaaaaaaaaaaa", s, "direct_message", data, true);
	assert_int_equal(a->outq.count, 4);
	assert_int_equal(iget(expect_event(last(a), "direct_message"), "seq"), 8);
	assert_false(a->dropped);
	/* a hole the log cannot fill: delivered, and no resume claims it is complete */
	qc_hub_inbox_entry(e->h, "alice", "aaaaaaaaaaaa", 12, "direct_message", data, true);
	assert_int_equal(a->outq.count, 5);
	assert_true(a->dropped);
	/* Redis lost the log: a new epoch from its first seq */
	qc_hub_inbox_entry(e->h, "alice", "bbbbbbbbbbbb", 1, "direct_message", data, false);
	d = expect_event(last(a), "direct_message");
	assert_int_equal(iget(d, "seq"), 1);
	assert_string_equal(sget(d, "epoch"), "bbbbbbbbbbbb");
	/* nobody of that user here: nothing */
	qc_hub_inbox_entry(e->h, "zed", "aaaaaaaaaaaa", 1, "direct_message", data, false);
	json_decref(data);
}

/* The broker hears where sessions are, and the record holds what a resume rebuilds. */
static void test_session_notes_and_record(void **state)
{
	struct env *e = start(state);
	struct qc_conn *a = env_open(e, "alice", 0);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	char sid[QC_SESSION_ID_LEN + 1], v[65];
	json_t *rec;

	snprintf(sid, sizeof(sid), "%s", a->session_id);
	assert_int_equal(fb.nsess, 1);
	assert_int_equal(fb.state[0], QC_SESSION_LIVE);
	assert_string_equal(fb.sid[0], sid);
	rx(e, a, "{\"type\":\"subscribe\",\"request_id\":\"s\",\"room\":\"lobby\"}");
	assert_int_equal(fb.state[fb.nsess - 1], QC_SESSION_LIVE); /* changed */
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"m\",\"action\":\"subscribe_market_stream\","
	   "\"payload\":{\"symbol\":\"AAPL\",\"fields\":[\"price\"],\"max_hz\":5}}");
	rec = keep(qc_hub_session_record(e->h, a->id));
	assert_json(get(rec, "streams"), "{\"AAPL\":{\"fields\":[\"price\"],\"max_hz\":5.0}}");
	assert_string_equal(sget(rec, "user"), "alice");
	assert_string_equal(json_string_value(json_array_get(get(rec, "rooms"), 0)), "lobby");
	assert_true(EVP_Digest(a->secret, strlen(a->secret), md, &n, EVP_sha256(), NULL));
	for (unsigned int i = 0; i < n; i++)
		snprintf(v + 2 * i, 3, "%02x", md[i]);
	assert_string_equal(sget(rec, "v"), v);
	env_drop(e, a);
	assert_int_equal(fb.state[fb.nsess - 1], QC_SESSION_SUSPENDED);
	assert_string_equal(fb.sid[fb.nsess - 1], sid);
}

/* A token this node does not know: the record found in Redis is rebuilt here. */
static void test_remote_resume(void **state)
{
	struct env *e = start(state);
	struct qc_conn *c = env_open(e, "alice", 0), *d;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	char sid[QC_SESSION_ID_LEN + 1], secret[QC_SECRET_LEN + 1], v[65];
	json_t *rec, *data, *ents;

	memset(sid, 'a', QC_SESSION_ID_LEN);
	sid[QC_SESSION_ID_LEN] = '\0';
	memset(secret, 'b', QC_SECRET_LEN);
	secret[QC_SECRET_LEN] = '\0';
	assert_true(EVP_Digest(secret, QC_SECRET_LEN, md, &n, EVP_sha256(), NULL));
	for (unsigned int i = 0; i < n; i++)
		snprintf(v + 2 * i, 3, "%02x", md[i]);
	drain(c);
	rxf(e, c,
	    "{\"type\":\"resume\",\"request_id\":\"r\",\"token\":\"%s%s\",\"positions\":"
	    "{\"inbox\":{\"seq\":1,\"epoch\":\"cccccccccccc\"}}}",
	    sid, secret);
	assert_non_null(fb.found);
	assert_int_equal(fb.since, 1);
	assert_int_equal(c->outq.count, 0); /* waits for Redis */
	rec = json_pack("{s:s, s:s, s:[s], s:{s:{s:[s], s:f}}}", "user", "alice", "v", v, "rooms",
	                "lobby", "streams", "MSFT", "fields", "bid", "max_hz", 2.0);
	ents = json_pack("[[I, s, {s:s}], [I, s, {s:s}]]", (json_int_t)2, "direct_message",
	                 "content", "two", (json_int_t)3, "direct_message", "content", "three");
	fb.found(fb.found_arg, 1, rec, "cccccccccccc", 3, ents);
	json_decref(rec);
	json_decref(ents);
	data = expect_ok(frame(c, 0), "r");
	assert_true(bget(data, "resumed"));
	assert_string_equal(sget(data, "session_id"), sid);
	assert_true(bget(get(data, "inbox"), "recovered"));
	assert_false(bget(get(get(data, "rooms"), "lobby"), "recovered")); /* no position */
	/* the inbox after the position, behind the answer */
	assert_int_equal(iget(expect_event(frame(c, 1), "direct_message"), "seq"), 2);
	assert_int_equal(iget(expect_event(frame(c, 2), "direct_message"), "seq"), 3);
	/* the stream is back with its fields and rate, the room too */
	rec = keep(qc_hub_session_record(e->h, c->id));
	assert_json(get(rec, "streams"), "{\"MSFT\":{\"fields\":[\"bid\"],\"max_hz\":2.0}}");
	assert_json(get(rec, "rooms"), "[\"lobby\"]");
	/* the broker took the record over for this node, and forgot the fresh session */
	assert_true(fb.take[fb.nsess - 2]);
	assert_string_equal(fb.sid[fb.nsess - 2], sid);
	assert_int_equal(fb.state[fb.nsess - 1], QC_SESSION_GONE);

	/* another secret: NOT_FOUND; Redis silent: UNAVAILABLE */
	d = env_open(e, "alice", 0);
	drain(d);
	rxf(e, d, "{\"type\":\"resume\",\"request_id\":\"r2\",\"token\":\"%s%s\"}", sid, secret);
	rec = json_pack("{s:s, s:s}", "user", "alice", "v", "00");
	fb.found(fb.found_arg, 1, rec, "", 0, NULL);
	json_decref(rec);
	assert_string_equal(sget(get(last(d), "error"), "code"), "NOT_FOUND");
	d = env_open(e, "alice", 0);
	drain(d);
	rxf(e, d, "{\"type\":\"resume\",\"request_id\":\"r3\",\"token\":\"%s%s\"}", sid, secret);
	fb.found(fb.found_arg, -ENOTCONN, NULL, "", 0, NULL);
	assert_string_equal(sget(get(last(d), "error"), "code"), "UNAVAILABLE");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_send_waits_for_broker, teardown),
	    cmocka_unit_test_teardown(test_entries_in_order, teardown),
	    cmocka_unit_test_teardown(test_session_notes_and_record, teardown),
	    cmocka_unit_test_teardown(test_remote_resume, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
