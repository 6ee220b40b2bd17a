/*
 * test_maxhz: subscribe_market_stream's max_hz (SPEC 2.11, hub_stream.c) through the fake
 * transport, on the hub's injected clock: ticks sooner than 1/max_hz after the last delivery
 * are merged into one pending update (newest value of each field, newest seq), which leaves
 * when the interval has run out (qc_hub_rate_fire, what the transport's wake calls), also when
 * no further tick comes. Sessions are kept (sessions.ttl_s) so that a resume can be checked.
 */
#define HUB_ENV_TTL_S 30
#include "hub_env.h"

static int64_t clock_ms;

static int64_t test_clock(void *ctx)
{
	(void)ctx;
	return clock_ms;
}

static void start(struct env *e)
{
	env_start(e);
	clock_ms = 1000000;
	qc_hub_set_clock(e->h, test_clock, NULL);
}

/* A subscriber with @payload (JSON object text) whose queue is empty after the answer. */
static struct qc_conn *subscriber(struct env *e, const char *user, const char *payload)
{
	struct qc_conn *c = env_open(e, user, 0);

	rxf(e, c,
	    "{\"type\":\"request\",\"request_id\":\"s\",\"action\":\"subscribe_market_stream\","
	    "\"payload\":%s}",
	    payload);
	expect_ok(frame(c, c->outq.count - 1), "s");
	drain(c);
	return c;
}

/* subscribe_market_stream with @payload on @c (request_id "r"); the answer is not read. */
static void subscribe_req(struct env *e, struct qc_conn *c, const char *payload)
{
	rxf(e, c,
	    "{\"type\":\"request\",\"request_id\":\"r\",\"action\":\"subscribe_market_stream\","
	    "\"payload\":%s}",
	    payload);
}

/* A connection of @user whose resume token goes to @tok; its queue is emptied. */
static struct qc_conn *open_session(struct env *e, const char *user,
                                    char tok[QC_SESSION_ID_LEN + QC_SECRET_LEN + 1])
{
	struct qc_conn *c = env_open(e, user, 0);

	snprintf(tok, QC_SESSION_ID_LEN + QC_SECRET_LEN + 1, "%s",
	         sget(expect_event(frame(c, 0), "session"), "resume_token"));
	drain(c);
	return c;
}

static void tick(struct env *e, const char *sym, const char *data)
{
	char doc[512];

	snprintf(doc, sizeof(doc), "{\"symbol\":\"%s\",\"data\":%s}", sym, data);
	publish(e, doc, 1, 0, 0);
}

/* @c holds exactly one frame: a stream_data of @sym with @seq and @flag; its data. */
static json_t *only(struct qc_conn *c, const char *sym, uint64_t seq, const char *flag)
{
	assert_int_equal(c->outq.count, 1);
	return expect_tick(last(c), sym, seq, flag);
}

/* Move the clock by @ms and fire the timer as the transport would when its wake is due. */
static void advance(struct env *e, int64_t ms)
{
	clock_ms += ms;
	qc_hub_rate_fire(e->h);
}

static void test_merge_and_last_tick(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a, *b;

	start(e);
	a = subscriber(e, "a", "{\"symbol\":\"AAPL\",\"max_hz\":4}");
	b = subscriber(e, "b", "{\"symbol\":\"AAPL\"}");
	assert_int_equal(e->f.nwake, 0);

	/* the first tick goes at once */
	tick(e, "AAPL", "{\"price\":1,\"volume\":10}");
	assert_json(only(a, "AAPL", 1, NULL), "{\"price\":1,\"volume\":10}");
	drain(a);

	/* the next ones within 250 ms wait, merged */
	clock_ms += 10;
	tick(e, "AAPL", "{\"price\":2,\"volume\":20}");
	assert_int_equal(a->outq.count, 0);
	assert_int_equal(e->f.nwake, 1);
	assert_int_equal(e->f.wake_us, 240000);
	assert_int_equal(stat_get(e, "streaming", "rate_pending"), 1);
	clock_ms += 10;
	tick(e, "AAPL", "{\"price\":3,\"bid\":5}");
	assert_int_equal(a->outq.count, 0);
	assert_int_equal(e->f.nwake, 1); /* the wake asked for still comes first */
	assert_int_equal(stat_get(e, "streaming", "total_rate_merged"), 1);
	/* the plain subscriber got every tick */
	assert_int_equal(b->outq.count, 3);

	/* a wake before the due time sends nothing */
	advance(e, 100);
	assert_int_equal(a->outq.count, 0);
	/* at 250 ms the merged update leaves although no tick came: newest value of each field */
	advance(e, 130);
	assert_json(only(a, "AAPL", 3, "conflated"), "{\"price\":3,\"volume\":20,\"bid\":5}");
	assert_int_equal(tail(a)->covers, 1); /* it stands for seq 2 too */
	assert_int_equal(stat_get(e, "streaming", "rate_pending"), 0);
	assert_int_equal(stat_get(e, "streaming", "total_rate_merged"), 1);
	drain(a);

	/* a single late tick waits for its interval and leaves as it was, without a flag */
	clock_ms += 10;
	tick(e, "AAPL", "{\"price\":4}");
	assert_int_equal(a->outq.count, 0);
	assert_int_equal(e->f.wake_us, 240000);
	advance(e, 240);
	assert_json(only(a, "AAPL", 4, NULL), "{\"price\":4}");
	drain(a);

	/* a quiet spell: the next tick goes at once again */
	clock_ms += 5000;
	tick(e, "AAPL", "{\"price\":5}");
	only(a, "AAPL", 5, NULL);
	assert_int_equal(stat_get(e, "streaming", "rate_pending"), 0);
}

/*
 * What @c was sent since the last look: counted into *@n, each checked to carry only @field,
 * the last one's data and seq kept; the queue is emptied.
 */
static void take(struct qc_conn *c, const char *field, unsigned *n, json_t **data, uint64_t *seq)
{
	for (uint32_t k = 0; k < c->outq.count; k++) {
		json_t *d = get(expect_event(frame(c, k), "stream_data"), "data");

		assert_int_equal(json_object_size(d), 1);
		assert_non_null(json_object_get(d, field));
		*data = d;
		*seq = at(c, k)->seq;
		(*n)++;
	}
	drain(c);
}

/*
 * Many ticks, two subscribers of the same symbol and field set with different rates, one with
 * another filter: each gets its own rate, the filter still applies, and each one's last
 * update has the final seq and values.
 */
static void test_rates_per_subscriber(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *slow, *fast, *bid, *all;
	unsigned nslow = 0, nfast = 0, nbid = 0;
	json_t *dslow = NULL, *dfast = NULL, *dbid = NULL;
	uint64_t sslow = 0, sfast = 0, sbid = 0;
	char data[128];

	start(e);
	slow = subscriber(e, "slow", "{\"symbol\":\"X\",\"max_hz\":2,\"fields\":[\"price\"]}");
	fast = subscriber(e, "fast", "{\"symbol\":\"X\",\"max_hz\":10.0,\"fields\":[\"price\"]}");
	bid = subscriber(e, "bid", "{\"symbol\":\"X\",\"max_hz\":0.5,\"fields\":[\"bid\"]}");
	all = subscriber(e, "all", "{\"symbol\":\"X\"}");

	/* 200 ticks, one per 10 ms (2 s); every fifth carries a bid instead of a volume */
	for (int i = 1; i <= 200; i++) {
		if (i % 5)
			snprintf(data, sizeof(data), "{\"price\":%d,\"volume\":%d}", i, i);
		else
			snprintf(data, sizeof(data), "{\"price\":%d,\"bid\":%d}", i, i);
		tick(e, "X", data);
		advance(e, 10);
		take(slow, "price", &nslow, &dslow, &sslow);
		take(fast, "price", &nfast, &dfast, &sfast);
		take(bid, "bid", &nbid, &dbid, &sbid);
	}
	assert_int_equal(all->outq.count, 200);
	/* what is still pending leaves when due, with no further tick */
	advance(e, 2000);
	take(slow, "price", &nslow, &dslow, &sslow);
	take(fast, "price", &nfast, &dfast, &sfast);
	take(bid, "bid", &nbid, &dbid, &sbid);
	assert_int_equal(stat_get(e, "streaming", "rate_pending"), 0);

	/* 2 s: one delivery per interval at most, plus the first */
	assert_true(nslow >= 4 && nslow <= 2 * 2 + 1);
	assert_true(nfast >= 19 && nfast <= 2 * 10 + 1);
	assert_true(nbid >= 2 && nbid <= 2);
	/* the last of each: the final seq that carried its fields, and the final value */
	assert_int_equal(sslow, 200);
	assert_json(dslow, "{\"price\":200}");
	assert_int_equal(sfast, 200);
	assert_json(dfast, "{\"price\":200}");
	assert_int_equal(sbid, 200);
	assert_json(dbid, "{\"bid\":200}");
	/* every tick merged away was counted: 200 ticks each for slow and fast, 40 for bid */
	assert_int_equal(stat_get(e, "streaming", "total_rate_merged"),
	                 (200 - nslow) + (200 - nfast) + (40 - nbid));
}

/* max_hz is validated: a number from 0 to 1000; the answer names it. */
static void test_validation(void **state)
{
	static const char *const bad[] = {"-1", "\"4\"", "1000.5", "true", "{}", "[]", "1e9"};
	struct env *e = env_new(state);
	struct qc_conn *c;
	json_t *d;

	start(e);
	c = env_open(e, "c", 0);
	drain(c);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rxf(e, c,
		    "{\"type\":\"request\",\"request_id\":\"v\",\"action\":"
		    "\"subscribe_market_stream\",\"payload\":{\"symbol\":\"A\",\"max_hz\":%s}}",
		    bad[i]);
		json_t *j = last(c), *err = get(j, "error");

		assert_string_equal(sget(j, "request_id"), "v");
		assert_false(bget(j, "success"));
		assert_string_equal(sget(err, "code"), "BAD_REQUEST");
		assert_non_null(strstr(sget(err, "message"), "max_hz"));
	}
	/* nothing was subscribed by a refused request */
	assert_int_equal(c->streams.count, 0);
	drain(c);
	rx(e, c,
	   "{\"type\":\"request\",\"request_id\":\"ok\",\"action\":\"subscribe_market_stream\","
	   "\"payload\":{\"symbols\":[\"A\",\"B\"],\"max_hz\":0.5}}");
	d = expect_ok(last(c), "ok");
	assert_true(json_real_value(get(json_array_get(get(d, "streams"), 1), "max_hz")) == 0.5);
	rx(e, c,
	   "{\"type\":\"request\",\"request_id\":\"ok\",\"action\":\"subscribe_market_stream\","
	   "\"payload\":{\"symbol\":\"A\",\"max_hz\":1000}}");
	expect_ok(last(c), "ok");
	/* 0 and null: unlimited, and the answer says nothing of a rate */
	rx(e, c,
	   "{\"type\":\"request\",\"request_id\":\"ok\",\"action\":\"subscribe_market_stream\","
	   "\"payload\":{\"symbol\":\"A\",\"max_hz\":0}}");
	d = expect_ok(last(c), "ok");
	assert_null(json_object_get(json_array_get(get(d, "streams"), 0), "max_hz"));
	rx(e, c,
	   "{\"type\":\"request\",\"request_id\":\"ok\",\"action\":\"subscribe_market_stream\","
	   "\"payload\":{\"symbol\":\"B\",\"max_hz\":null}}");
	expect_ok(last(c), "ok");
}

/* An unsubscribe or a closed connection takes the pending update with it. */
static void test_unsubscribe_and_close_cancel(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a, *b, *c;

	start(e);
	a = subscriber(e, "a", "{\"symbols\":[\"A\",\"B\"],\"max_hz\":1}");
	b = subscriber(e, "b", "{\"symbol\":\"A\",\"max_hz\":1}");
	c = subscriber(e, "c", "{\"symbol\":\"A\",\"max_hz\":1}");
	tick(e, "A", "{\"p\":1}");
	tick(e, "B", "{\"p\":1}");
	drain(a);
	drain(b);
	drain(c);
	tick(e, "A", "{\"p\":2}");
	tick(e, "B", "{\"p\":2}");
	assert_int_equal(stat_get(e, "streaming", "rate_pending"), 4);

	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"u\",\"action\":\"unsubscribe_market_stream\","
	   "\"payload\":{\"symbol\":\"A\"}}");
	expect_ok(last(a), "u");
	drain(a);
	assert_int_equal(stat_get(e, "streaming", "rate_pending"), 3);
	/* a suspended session's pending update goes: its resume reads the ring */
	env_drop(e, b);
	assert_true(b->suspended);
	assert_int_equal(stat_get(e, "streaming", "rate_pending"), 2);

	advance(e, 1000);
	assert_int_equal(a->outq.count, 1); /* B's update; A's went with the unsubscribe */
	expect_tick(last(a), "B", 2, NULL);
	assert_int_equal(c->outq.count, 1);
	assert_int_equal(stat_get(e, "streaming", "rate_pending"), 0);
	/* a session that ends (shutdown) frees its subscriptions with what they had pending */
	tick(e, "A", "{\"p\":3}");
	assert_int_equal(stat_get(e, "streaming", "rate_pending"), 1);
	qc_hub_shutdown(e->h);
	env_drop(e, c);
	assert_int_equal(stat_get(e, "streaming", "rate_pending"), 0);
	advance(e, 1000);
}

/* A subscribe of a symbol already subscribed changes its rate (and 0 lifts it). */
static void test_resubscribe_changes_rate(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a;

	start(e);
	a = subscriber(e, "a", "{\"symbol\":\"A\",\"max_hz\":1}");
	tick(e, "A", "{\"p\":1}");
	drain(a);
	clock_ms += 10;
	tick(e, "A", "{\"p\":2}");
	assert_int_equal(e->f.wake_us, 990000);
	/* 10 Hz: the pending update is due 100 ms after the last delivery, not 1 s */
	subscribe_req(e, a, "{\"symbol\":\"A\",\"max_hz\":10,\"snapshot\":false}");
	expect_ok(last(a), "r");
	drain(a);
	assert_int_equal(e->f.wake_us, 90000);
	advance(e, 90);
	only(a, "A", 2, NULL);
	drain(a);
	clock_ms += 10;
	tick(e, "A", "{\"p\":3}");
	assert_int_equal(a->outq.count, 0);
	/* unlimited again: what was pending goes at once, and so does every tick after it */
	subscribe_req(e, a, "{\"symbol\":\"A\",\"max_hz\":0,\"snapshot\":false}");
	assert_int_equal(a->outq.count, 2);
	expect_tick(frame(a, 0), "A", 3, NULL);
	expect_ok(frame(a, 1), "r");
	drain(a);
	tick(e, "A", "{\"p\":4}");
	tick(e, "A", "{\"p\":5}");
	assert_int_equal(a->outq.count, 2);
	assert_int_equal(stat_get(e, "streaming", "rate_pending"), 0);
	/* a re-subscribe with its snapshot: the snapshot stands for what was pending */
	drain(a);
	subscribe_req(e, a, "{\"symbol\":\"A\",\"max_hz\":2}");
	assert_int_equal(a->outq.count, 2);
	expect_tick(frame(a, 1), "A", 5, "snapshot");
	drain(a);
	tick(e, "A", "{\"p\":6}"); /* within 500 ms of the snapshot: held */
	assert_int_equal(a->outq.count, 0);
	advance(e, 500);
	expect_tick(last(a), "A", 6, NULL);
}

/*
 * Catch-up of a max_hz subscription (since_seq, a resume): the missed ticks collapse into one
 * merged replay with the newest seq. A merged update still queued when the socket went stands
 * for every seq it merged: the resume replays from before the first of them.
 */
static void test_replay_collapsed(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a, *r;
	char tok[QC_SESSION_ID_LEN + QC_SECRET_LEN + 1];
	json_t *d;

	start(e);
	tick(e, "A", "{\"p\":1,\"v\":1}");
	tick(e, "A", "{\"p\":2,\"v\":2}");
	tick(e, "A", "{\"p\":3,\"bid\":3}");
	tick(e, "A", "{\"p\":4}");
	a = open_session(e, "a", tok);
	subscribe_req(e, a, "{\"symbol\":\"A\",\"max_hz\":4,\"since_seq\":1}");
	assert_int_equal(a->outq.count, 2);
	expect_ok(frame(a, 0), "r");
	assert_json(expect_tick(frame(a, 1), "A", 4, "replay"), "{\"p\":4,\"v\":2,\"bid\":3}");
	drain(a);
	/* the replay counts as a delivery: the next tick waits */
	tick(e, "A", "{\"p\":5,\"v\":5}");
	tick(e, "A", "{\"p\":6}");
	assert_int_equal(a->outq.count, 0);
	advance(e, 250);
	assert_json(only(a, "A", 6, "conflated"), "{\"p\":6,\"v\":5}");
	/* the socket goes before that update was written: positions go back to 4 */
	env_drop(e, a);
	assert_true(a->suspended);
	tick(e, "A", "{\"p\":7}");
	advance(e, 1000);
	assert_int_equal(a->outq.count, 0);
	r = qc_hub_resume(e->h, tok, "a", 0, e);
	assert_ptr_equal(r, a);
	for (size_t i = 0; i < MAX_CONNS; i++)
		if (!e->conns[i]) {
			e->conns[i] = a;
			break;
		}
	d = expect_event(frame(a, 0), "session");
	assert_true(bget(d, "recovered"));
	assert_int_equal(a->outq.count, 2);
	/* 5..7 in one merged update: v from seq 5 is there */
	assert_json(expect_tick(frame(a, 1), "A", 7, "replay"), "{\"p\":7,\"v\":5}");
	/* the resumed subscription keeps its rate: the replay counted, the next tick waits */
	drain(a);
	tick(e, "A", "{\"p\":8}");
	assert_int_equal(a->outq.count, 0);
	advance(e, 250);
	assert_json(expect_tick(last(a), "A", 8, NULL), "{\"p\":8}");
}

/*
 * The same holds for a frame conflation merged (a slow consumer's queue): a resume replays
 * every seq it stood for, not only its newest.
 */
static void test_conflated_resume(void **state)
{
	struct env *e = env_new(state);
	char tok[QC_SESSION_ID_LEN + QC_SECRET_LEN + 1];
	struct qc_conn *a;

	e->cfg.limits.conflate_bytes = 200;
	start(e);
	a = open_session(e, "a", tok);
	subscribe_req(e, a, "{\"symbol\":\"A\"}");
	drain(a);
	tick(e, "A", "{\"p\":1,\"v\":1}");
	tick(e, "A", "{\"p\":2}");
	tick(e, "A", "{\"p\":3}");
	assert_json(only(a, "A", 3, "conflated"), "{\"p\":3,\"v\":1}");
	assert_int_equal(tail(a)->covers, 2);
	env_drop(e, a);
	assert_ptr_equal(qc_hub_resume(e->h, tok, "a", 0, e), a);
	for (size_t i = 0; i < MAX_CONNS; i++)
		if (!e->conns[i]) {
			e->conns[i] = a;
			break;
		}
	assert_int_equal(a->outq.count, 4);
	assert_json(expect_tick(frame(a, 1), "A", 1, "replay"), "{\"p\":1,\"v\":1}");
	expect_tick(frame(a, 3), "A", 3, "replay");
}

/*
 * A persisted subscription (SPEC 2.7) keeps max_hz: the streams it attaches to its user's
 * connections (now and later) are held to it; an update changes it; several of one symbol
 * give the highest (none: unlimited).
 */
static void test_persisted(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *a, *b;
	json_t *d;
	const char *id;
	json_int_t ver;

	start(e);
	a = env_open(e, "u", 0);
	drain(a);
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"c\",\"action\":\"create_subscription\","
	   "\"payload\":{\"symbol\":\"A\",\"max_hz\":-2}}");
	assert_non_null(strstr(sget(get(last(a), "error"), "message"), "max_hz"));
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"c\",\"action\":\"create_subscription\","
	   "\"payload\":{\"symbol\":\"A\",\"max_hz\":2}}");
	d = expect_ok(last(a), "c");
	assert_true(json_real_value(get(d, "max_hz")) == 2.0);
	id = sget(d, "subscription_id");
	ver = iget(d, "version");
	drain(a);
	tick(e, "A", "{\"p\":1}");
	tick(e, "A", "{\"p\":2}");
	assert_int_equal(a->outq.count, 1);
	/* a later connection of the user is attached with the same rate (its snapshot counts) */
	b = env_open(e, "u", 0);
	expect_tick(last(b), "A", 2, "snapshot");
	drain(b);
	tick(e, "A", "{\"p\":3}");
	tick(e, "A", "{\"p\":4}");
	assert_int_equal(b->outq.count, 0);
	advance(e, 500);
	assert_json(expect_tick(last(a), "A", 4, "conflated"), "{\"p\":4}");
	assert_json(expect_tick(last(b), "A", 4, "conflated"), "{\"p\":4}");
	drain(a);
	drain(b);

	/* the update lifts it (0) on every connection of the user */
	rxf(e, a,
	    "{\"type\":\"request\",\"request_id\":\"u\",\"action\":\"update_subscription\","
	    "\"payload\":{\"subscription_id\":\"%s\",\"version\":%d,\"max_hz\":0}}",
	    id, (int)ver);
	d = expect_ok(last(a), "u");
	assert_true(json_real_value(get(d, "max_hz")) == 0);
	drain(a);
	tick(e, "A", "{\"p\":5}");
	tick(e, "A", "{\"p\":6}");
	assert_int_equal(a->outq.count, 2);
	assert_int_equal(b->outq.count, 2);
	drain(a);
	drain(b);
	/* a second subscription of the symbol with a rate: the unlimited one still wins */
	rx(e, a,
	   "{\"type\":\"request\",\"request_id\":\"c\",\"action\":\"create_subscription\","
	   "\"payload\":{\"symbol\":\"A\",\"max_hz\":1}}");
	expect_ok(last(a), "c");
	drain(a);
	tick(e, "A", "{\"p\":7}");
	tick(e, "A", "{\"p\":8}");
	assert_int_equal(a->outq.count, 2);
	assert_int_equal(b->outq.count, 2);
}

/* The resume request with positions (SPEC 2.9): the same collapsed replay, the rate kept. */
static void test_resume_request(void **state)
{
	struct env *e = env_new(state);
	char tok[QC_SESSION_ID_LEN + QC_SECRET_LEN + 1], ep[32];
	struct qc_conn *a, *f;
	json_t *d;

	start(e);
	tick(e, "A", "{\"p\":1}");
	a = open_session(e, "a", tok);
	subscribe_req(e, a, "{\"symbol\":\"A\",\"max_hz\":2,\"snapshot\":false}");
	snprintf(ep, sizeof(ep), "%s",
	         sget(json_array_get(get(expect_ok(last(a), "r"), "streams"), 0), "epoch"));
	drain(a);
	env_drop(e, a);
	tick(e, "A", "{\"p\":2,\"v\":2}");
	tick(e, "A", "{\"p\":3}");
	tick(e, "A", "{\"p\":4}");
	f = env_open(e, "a", 0);
	drain(f);
	rxf(e, f,
	    "{\"type\":\"resume\",\"request_id\":\"r1\",\"token\":\"%s\",\"positions\":{"
	    "\"streams\":{\"A\":{\"seq\":1,\"epoch\":\"%s\"}}}}",
	    tok, ep);
	assert_false(a->suspended);
	d = expect_ok(frame(a, 0), "r1");
	d = get(get(d, "streams"), "A");
	assert_true(bget(d, "recovered"));
	assert_int_equal(iget(d, "replayed"), 1);
	assert_int_equal(a->outq.count, 2);
	assert_json(expect_tick(frame(a, 1), "A", 4, "replay"), "{\"p\":4,\"v\":2}");
	drain(a);
	tick(e, "A", "{\"p\":5}");
	assert_int_equal(a->outq.count, 0);
	advance(e, 500);
	expect_tick(last(a), "A", 5, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_merge_and_last_tick, teardown),
	    cmocka_unit_test_teardown(test_rates_per_subscriber, teardown),
	    cmocka_unit_test_teardown(test_validation, teardown),
	    cmocka_unit_test_teardown(test_unsubscribe_and_close_cancel, teardown),
	    cmocka_unit_test_teardown(test_resubscribe_changes_rate, teardown),
	    cmocka_unit_test_teardown(test_replay_collapsed, teardown),
	    cmocka_unit_test_teardown(test_conflated_resume, teardown),
	    cmocka_unit_test_teardown(test_persisted, teardown),
	    cmocka_unit_test_teardown(test_resume_request, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
