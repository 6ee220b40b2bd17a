/*
 * The compact tick form against the tree form it replaced: every stream_data frame the hub
 * queues (live fan-out per filter group, snapshots, replays, conflated frames) in both
 * encodings, and the get_buffered_data and get_market_data answers, must be byte for byte what
 * the tree form gave: jansson trees packed as hub_stream.c packed them (the reference encoder
 * below is that code), for data with escaped keys and strings, unicode, nested objects and
 * arrays, and numbers as they travel. Each scenario runs with ticks published as trees
 * (qc_hub_publish) and as frames on a publisher connection (the ingest scanner, or its
 * fallback for what it does not take).
 */
#include "hub_env.h"

#include "quotecast/codec.h"
#include "quotecast/sio.h"

#define SYM "X.1"

/* Tick data: keys and strings with escapes, unicode, nesting, numbers of every kind. */
static const char *const datas[] = {
    "{\"price\":1850.31,\"bid\":1850.30,\"ask\":1850.32,\"volume\":100,\"é\":\"ü\","
    "\"k\\\"q\":\"a\\\"b\\\\c\\n\\u0001\",\"nested\":{\"a\":[1,2.50,{\"b\":null}]},"
    "\"big\":1e300,\"neg0\":-0.0,\"r\":0.1}",
    "{\"price\":1850.4,\"newf\":true,\"volume\":-9223372036854775808}",
    "{\"bid\":1e-7,\"é\":\"贵州茅台\",\"s\":\"\\u00e9\\/\\ud83d\\ude00\"}",
    "{\"price\":12345678901234567890.5,\"arr\":[[],{}],\"k\\\"q\":false}",
    "{\"volume\":7,\"price\":100.000,\"x\":1E3,\"y\":0.00001}",
    "{\"nested\":{\"a\":[\"}\",\"]\",\",\"]},\"price\":-1.5,\"b\\\\s\":\"\"}",
    "{\"price\":0.30000000000000004,\"ask\":1850.33}",
    /* these two are in the ingest scanner's form: read without a tree when framed */
    "{\"price\":1850.30,\"volume\":100,\"é\":\"贵州茅台\",\"flag\":true,\"none\":null,"
    "\"r\":0.0001}",
    "{ \"price\" : 1.5 ,\n\t\"bid\" :2, \"ask\": -0.0, \"k\":\"}{,:\" }",
};
#define NDATA (sizeof(datas) / sizeof(datas[0]))

/* Message ids, some needing escapes; NULL: none. */
static const char *const mids[] = {"m1",      "q\\\"2", NULL, "é4", "back\\\\5",
                                   "ctl\\t6", "m7",     "m8", NULL};

/* Subscriber field sets (the canonical group order is sorted, deduplicated). */
static const char *const f_none[] = {NULL};
static const char *const f_pb[] = {"price", "bid", "price"};
static const char *const f_esc[] = {"k\"q", "é", "nested", "b\\s"};
static const char *const f_miss[] = {"missing"};
static const struct {
	const char *const *f;
	size_t n;
	const char *json;
} sets[] = {
    {f_none, 0, ""},
    {f_pb, 3, ",\"fields\":[\"price\",\"bid\",\"price\"]"},
    {f_esc, 4, ",\"fields\":[\"k\\\"q\",\"é\",\"nested\",\"b\\\\s\"]"},
    {f_miss, 1, ",\"fields\":[\"missing\"]"},
};
#define NSETS (sizeof(sets) / sizeof(sets[0]))

enum how { BY_TREE, BY_FRAME };

/* ---- the tree form (hub_stream.c before the compact form) -------------------------------- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The group's canonical fields: sorted, deduplicated. */
static size_t canon(const char *const *f, size_t n, const char **out)
{
	size_t k = 0;

	memcpy(out, f, n * sizeof(*f));
	qsort(out, n, sizeof(*out), cmp_str);
	for (size_t i = 0; i < n; i++)
		if (!k || strcmp(out[k - 1], out[i]))
			out[k++] = out[i];
	return k;
}

static json_t *tree_filter(const char *const *fields, size_t nfields, json_t *data)
{
	json_t *out = NULL, *value;

	if (!nfields)
		return json_incref(data);
	for (size_t i = 0; i < nfields; i++) {
		value = json_object_get(data, fields[i]);
		if (!value)
			continue;
		if (!out)
			out = json_object();
		json_object_set_nocheck(out, fields[i], value);
	}
	return out;
}

/* The stream's epoch, as its subscribe answer gave it (one stream life per scenario). */
static char epoch[32];

static void take_epoch(struct qc_conn *c)
{
	json_t *st = json_array_get(get(expect_ok(last(c), "s"), "streams"), 0);

	assert_non_null(st);
	snprintf(epoch, sizeof(epoch), "%s", sget(st, "epoch"));
}

static json_t *tree_tick(json_t *data, uint64_t seq, int64_t ts, const char *mid, const char *flag)
{
	json_t *d = json_pack("{s:s, s:O, s:I, s:I, s:s}", "symbol", SYM, "data", data, "timestamp",
	                      (json_int_t)ts, "seq", (json_int_t)seq, "epoch", epoch);

	assert_non_null(d);
	if (mid && mid[0])
		json_object_set_new(d, "message_id", json_string(mid));
	if (flag)
		json_object_set_new(d, flag, json_true());
	return d;
}

/* ... framed for @enc with the Socket.IO offset that @got carries (one per event). */
static struct qc_msg *tree_frame(const struct qc_msg *got, uint8_t enc, json_t *data, uint64_t seq,
                                 int64_t ts, const char *mid, const char *flag)
{
	json_t *ev = qc_codec_event("stream_data", tree_tick(data, seq, ts, mid, flag));
	struct qc_msg *m;

	assert_non_null(ev);
	m = enc == QC_ENC_SIO ? qc_sio_from_native_at(ev, got->offset) : qc_msg_new_json(ev);
	json_decref(ev);
	assert_non_null(m);
	return m;
}

static unsigned sio_offsets; /* Socket.IO frames checked that carried an offset */

static void assert_same_frame(const struct qc_msg *got, struct qc_msg *want)
{
	sio_offsets += got->offset != 0;
	if (got->len != want->len || memcmp(qc_msg_frame(got), qc_msg_frame(want), got->len))
		fail_msg("frame differs from the tree form:\n got  %.*s\n want %.*s",
		         (int)qc_msg_payload_len(got), qc_msg_payload(got),
		         (int)qc_msg_payload_len(want), qc_msg_payload(want));
	qc_msg_unref(&want);
}

static void assert_same_dump(json_t *got, json_t *want)
{
	char *g = json_dumps(got, JSON_COMPACT | JSON_REAL_PRECISION(15));
	char *w = json_dumps(want, JSON_COMPACT | JSON_REAL_PRECISION(15));

	assert_non_null(g);
	assert_non_null(w);
	if (strcmp(g, w))
		fail_msg("answer differs from the tree form:\n got  %s\n want %s", g, w);
	free(g);
	free(w);
}

/* ---- the scenario ------------------------------------------------------------------------ */

struct model {
	json_t *data[NDATA]; /* as parsed from the publish */
	char *mid[NDATA];    /* decoded */
	json_t *snap;
	int64_t snap_ts;
};

static void model_init(struct model *md)
{
	char buf[64];

	md->snap = json_object();
	for (size_t i = 0; i < NDATA; i++) {
		md->data[i] = json_loads(datas[i], JSON_REJECT_DUPLICATES, NULL);
		assert_non_null(md->data[i]);
		md->mid[i] = NULL;
		if (mids[i]) {
			json_t *s;

			snprintf(buf, sizeof(buf), "\"%s\"", mids[i]);
			s = json_loads(buf, JSON_DECODE_ANY, NULL);
			assert_non_null(s);
			md->mid[i] = strdup(json_string_value(s));
			json_decref(s);
		}
	}
}

static void model_free(struct model *md)
{
	for (size_t i = 0; i < NDATA; i++) {
		json_decref(md->data[i]);
		free(md->mid[i]);
	}
	json_decref(md->snap);
}

static struct qc_conn *open_enc(struct env *e, const char *user, uint8_t enc, uint32_t roles)
{
	struct qc_conn *c = calloc(1, sizeof(*c));
	size_t i;

	assert_non_null(c);
	snprintf(c->user_id, sizeof(c->user_id), "%s", user);
	c->roles = roles;
	c->enc = enc;
	c->transport = e;
	assert_int_equal(qc_hub_open(e->h, c), 0);
	for (i = 0; i < MAX_CONNS && e->conns[i]; i++)
		;
	assert_true(i < MAX_CONNS);
	e->conns[i] = c;
	drain(c);
	return c;
}

/* Subscribe @c to SYM with field set @k; a Socket.IO connection sends the same as an event. */
static void subscribe(struct env *e, struct qc_conn *c, size_t k, const char *extra)
{
	if (c->enc == QC_ENC_SIO)
		rxf(e, c,
		    "42[\"request\",{\"action\":\"subscribe_market_stream\",\"request_id\":\"s\","
		    "\"payload\":{\"symbol\":\"" SYM "\"%s%s}}]",
		    sets[k].json, extra);
	else
		rxf(e, c,
		    "{\"type\":\"request\",\"request_id\":\"s\",\"action\":\"subscribe_market_"
		    "stream\","
		    "\"payload\":{\"symbol\":\"" SYM "\"%s%s}}",
		    sets[k].json, extra);
}

/*
 * Publish tick @i (timestamp 1000 + i) with message id @mid (JSON text without quotes; NULL:
 * none) as a tree or as a frame of @pub.
 */
static void publish_tick(struct env *e, struct qc_conn *pub, enum how how, size_t i,
                         const char *mid)
{
	char doc[2048];

	snprintf(doc, sizeof(doc), "{\"symbol\":\"" SYM "\",\"data\":%s%s%s%s,\"timestamp\":%zu}",
	         datas[i], mid ? ",\"message_id\":\"" : "", mid ? mid : "", mid ? "\"" : "",
	         1000 + i);
	if (how == BY_TREE) {
		publish(e, doc, 1, 0, 0);
		return;
	}
	rxf(e, pub,
	    "{\"type\":\"request\",\"action\":\"publish_market_data\","
	    "\"payload\":{\"ticks\":[%s]}}",
	    doc);
	assert_json(expect_ok(last(pub), NULL), "{\"accepted\":1,\"duplicates\":0,\"stale\":0}");
	drain(pub);
}

/* A queued stream_data frame's event data (either encoding); *@root is to be freed. */
static json_t *event_data(const struct qc_msg *m, json_t **root)
{
	const char *p = (const char *)qc_msg_payload(m);
	size_t n = qc_msg_payload_len(m);
	bool sio = n > 2 && p[0] == '4' && p[1] == '2';

	*root = sio ? json_loadb(p + 2, n - 2, 0, NULL) : json_loadb(p, n, 0, NULL);
	assert_non_null(*root);
	return sio ? json_array_get(*root, 1) : get(*root, "data");
}

/* @ttl_s: sessions.ttl_s; set, Socket.IO events carry their recovery offsets. */
static void run_fanout(void **state, enum how how, uint32_t ttl_s)
{
	struct env *e = env_new(state);
	struct qc_conn *subs[2][NSETS], *pub, *late;
	const char *canonf[NSETS][8];
	size_t ncanon[NSETS];
	struct model md;

	e->cfg.streams.buffer_size = 5;
	e->cfg.sessions.ttl_s = ttl_s;
	env_start(e);
	model_init(&md);
	pub = open_enc(e, "pub", QC_ENC_NATIVE, QC_ROLE_PUBLISHER);
	for (size_t k = 0; k < NSETS; k++) {
		ncanon[k] = canon(sets[k].f, sets[k].n, canonf[k]);
		for (uint8_t enc = 0; enc < 2; enc++) {
			subs[enc][k] = open_enc(e, "sub", enc, 0);
			subscribe(e, subs[enc][k], k, "");
			if (!k && enc == QC_ENC_NATIVE)
				take_epoch(subs[enc][k]);
			drain(subs[enc][k]);
		}
	}

	/* live: each group's filtered frame, per encoding */
	for (size_t i = 0; i < NDATA; i++) {
		publish_tick(e, pub, how, i, mids[i]);
		json_object_update(md.snap, md.data[i]);
		md.snap_ts = 1000 + (int64_t)i;
		for (size_t k = 0; k < NSETS; k++) {
			json_t *want = tree_filter(canonf[k], ncanon[k], md.data[i]);

			for (uint8_t enc = 0; enc < 2; enc++) {
				struct qc_conn *c = subs[enc][k];

				if (!want) {
					assert_int_equal(c->outq.count, 0);
					continue;
				}
				assert_int_equal(c->outq.count, 1);
				assert_same_frame(tail(c), tree_frame(tail(c), enc, want, i + 1,
				                                      1000 + i, md.mid[i], NULL));
				drain(c);
			}
			json_decref(want);
		}
	}

	/* a new subscriber: the snapshot; with since_seq: the replay from the ring of five */
	for (size_t k = 0; k < NSETS; k++) {
		char since[32];

		json_t *want = tree_filter(canonf[k], ncanon[k], md.snap);

		for (uint8_t enc = 0; enc < 2; enc++) {
			struct qc_msg *got;
			uint32_t q = 1;

			late = open_enc(e, "late", enc, 0);
			subscribe(e, late, k, "");
			if (want) {
				assert_int_equal(late->outq.count, 2);
				assert_same_frame(at(late, 1),
				                  tree_frame(at(late, 1), enc, want, NDATA,
				                             md.snap_ts, NULL, "snapshot"));
			} else {
				assert_int_equal(late->outq.count, 1);
			}
			env_drop(e, late);

			late = open_enc(e, "late", enc, 0);
			/* the ring holds seq NDATA - 4 .. NDATA: after NDATA - 4, all there */
			snprintf(since, sizeof(since), ",\"since_seq\":%zu", NDATA - 4);
			subscribe(e, late, k, since);
			for (size_t i = NDATA - 4; i < NDATA; i++) {
				json_t *w = tree_filter(canonf[k], ncanon[k], md.data[i]);

				if (!w)
					continue;
				assert_true(q < late->outq.count);
				got = at(late, q++);
				assert_same_frame(got, tree_frame(got, enc, w, i + 1, 1000 + i,
				                                  md.mid[i], "replay"));
				json_decref(w);
			}
			assert_int_equal(late->outq.count, q);
			env_drop(e, late);
		}
		json_decref(want);
	}

	/* get_buffered_data (the subscriber's filter) and get_market_data (the request's) */
	for (size_t k = 0; k < NSETS; k++) {
		struct qc_conn *c = subs[QC_ENC_NATIVE][k];
		json_t *msgs = json_array(), *want, *got;
		char fields[256];

		for (size_t i = NDATA - 4; i < NDATA; i++) {
			json_t *w = tree_filter(canonf[k], ncanon[k], md.data[i]);

			if (w)
				json_array_append_new(
				    msgs, tree_tick(w, i + 1, 1000 + i, md.mid[i], NULL));
			json_decref(w);
		}
		want = json_pack("{s:s, s:o, s:I, s:I, s:s}", "symbol", SYM, "messages", msgs,
		                 "oldest_seq", (json_int_t)(NDATA - 4), "last_seq",
		                 (json_int_t)NDATA, "epoch", epoch);
		rxf(e, c,
		    "{\"type\":\"request\",\"request_id\":\"b\",\"action\":\"get_buffered_data\","
		    "\"payload\":{\"symbol\":\"" SYM "\",\"since_seq\":%zu}}",
		    NDATA - 4);
		got = expect_ok(last(c), "b");
		assert_same_dump(got, want);
		json_decref(want);
		drain(c);

		/* the request's own fields, unsorted and repeated as the client sent them */
		snprintf(fields, sizeof(fields), "%s", sets[k].json);
		rxf(e, c,
		    "{\"type\":\"request\",\"request_id\":\"g\",\"action\":\"get_market_data\","
		    "\"payload\":{\"symbol\":\"" SYM "\"%s}}",
		    fields);
		{
			json_t *d = tree_filter(sets[k].f, sets[k].n, md.snap);

			want = json_pack("{s:s, s:o, s:I, s:I}", "symbol", SYM, "data",
			                 d ? d : json_object(), "seq", (json_int_t)NDATA,
			                 "timestamp", (json_int_t)md.snap_ts);
		}
		got = expect_ok(last(c), "g");
		assert_same_dump(got, want);
		json_decref(want);
		drain(c);
	}
	model_free(&md);
}

static void test_fanout_by_tree(void **state)
{
	run_fanout(state, BY_TREE, 0);
}

static void test_fanout_by_frame(void **state)
{
	run_fanout(state, BY_FRAME, 0);
}

static void test_fanout_with_sio_offsets(void **state)
{
	run_fanout(state, BY_FRAME, 60);
	assert_true(sio_offsets > 20);
}

/*
 * The data of each queued tick frame, in queue order (parsed: they were checked before), in
 * one array (to be freed).
 */
static json_t *queued_ticks(struct qc_conn *c)
{
	json_t *out = json_array(), *root;

	for (uint32_t i = 0; i < c->outq.count; i++) {
		struct qc_msg *m = at(c, i);

		if (m->kind != QC_MSG_TICK)
			continue;
		json_array_append(out, get(event_data(m, &root), "data"));
		json_decref(root);
	}
	return out;
}

/*
 * Slow subscribers: once their queue passes conflate_bytes, every new tick merges the queued
 * ones (newest value per field, newest seq) exactly as json_object_update() did.
 */
static void run_conflation(void **state, enum how how)
{
	struct env *e = env_new(state);
	struct qc_conn *subs[2][NSETS], *pub;
	const char *canonf[NSETS][8];
	size_t ncanon[NSETS], conflated = 0;
	struct model md;

	e->cfg.limits.conflate_bytes = 700;
	e->cfg.limits.max_send_queue_bytes = 1u << 20;
	env_start(e);
	model_init(&md);
	pub = open_enc(e, "pub", QC_ENC_NATIVE, QC_ROLE_PUBLISHER);
	for (size_t k = 0; k < NSETS; k++) {
		ncanon[k] = canon(sets[k].f, sets[k].n, canonf[k]);
		for (uint8_t enc = 0; enc < 2; enc++) {
			subs[enc][k] = open_enc(e, "slow", enc, 0);
			subscribe(e, subs[enc][k], k, "");
			if (!k && enc == QC_ENC_NATIVE)
				take_epoch(subs[enc][k]);
			drain(subs[enc][k]);
		}
	}
	for (int round = 0; round < 3; round++) {
		for (size_t i = 0; i < NDATA; i++) {
			json_t *before[2][NSETS];
			char mid[32];

			for (size_t k = 0; k < NSETS; k++)
				for (uint8_t enc = 0; enc < 2; enc++)
					before[enc][k] = queued_ticks(subs[enc][k]);
			/* the same data each round: new message ids */
			snprintf(mid, sizeof(mid), "r%d-%zu", round, i);
			publish_tick(e, pub, how, i, mid);
			for (size_t k = 0; k < NSETS; k++) {
				json_t *want = tree_filter(canonf[k], ncanon[k], md.data[i]);
				uint64_t seq = (uint64_t)round * NDATA + i + 1;

				for (uint8_t enc = 0; enc < 2; enc++) {
					struct qc_conn *c = subs[enc][k];
					struct qc_msg *m;
					json_t *root, *acc, *v;
					size_t q;

					if (!want) {
						json_decref(before[enc][k]);
						continue;
					}
					m = tail(c);
					if (!json_object_get(event_data(m, &root), "conflated")) {
						assert_same_frame(m,
						                  tree_frame(m, enc, want, seq,
						                             1000 + i, mid, NULL));
						json_decref(root);
						json_decref(before[enc][k]);
						continue;
					}
					json_decref(root);
					conflated++;
					acc = json_object();
					json_array_foreach (before[enc][k], q, v)
						json_object_update(acc, v);
					json_object_update(acc, want);
					assert_same_frame(m, tree_frame(m, enc, acc, seq, 1000 + i,
					                                mid, "conflated"));
					json_decref(acc);
					json_decref(before[enc][k]);
				}
				json_decref(want);
			}
		}
	}
	assert_true(conflated > 20);
	assert_int_equal(e->f.nclose, 0);
	model_free(&md);
}

static void test_conflation_by_tree(void **state)
{
	run_conflation(state, BY_TREE);
}

static void test_conflation_by_frame(void **state)
{
	run_conflation(state, BY_FRAME);
}

/*
 * A publisher's frames: a plain publish is read by the scanner and answered like any request
 * (ids echoed, verdicts counted); everything else takes the usual path with its usual answers.
 */
static void test_publisher_frames(void **state)
{
	struct env *e = env_new(state);
	struct qc_conn *pub, *other;
	json_t *j, *err;

	env_start(e);
	pub = open_enc(e, "pub", QC_ENC_NATIVE, QC_ROLE_PUBLISHER);
	other = open_enc(e, "other", QC_ENC_NATIVE, 0);

	rx(e, pub,
	   "{\"type\":\"request\",\"action\":\"publish_market_data\",\"request_id\":\"r1\","
	   "\"trace_id\":\"t1\",\"payload\":{\"ticks\":[{\"symbol\":\"A\",\"data\":{\"p\":1},"
	   "\"message_id\":\"m1\",\"version\":2},{\"symbol\":\"A\",\"data\":{\"p\":2},"
	   "\"message_id\":\"m1\"},{\"symbol\":\"A\",\"data\":{\"p\":3},\"version\":2}]}}");
	j = last(pub);
	assert_string_equal(sget(j, "trace_id"), "t1");
	assert_json(expect_ok(j, "r1"), "{\"accepted\":1,\"duplicates\":1,\"stale\":1}");
	drain(pub);

	/* refused by the publish checks: the tree path's own error, for the whole batch */
	rx(e, pub,
	   "{\"type\":\"request\",\"action\":\"publish_market_data\",\"request_id\":\"r2\","
	   "\"payload\":{\"ticks\":[{\"symbol\":\"B\",\"data\":{\"p\":1}},{\"symbol\":\"bad one\","
	   "\"data\":{\"p\":1}}]}}");
	j = last(pub);
	assert_string_equal(sget(j, "request_id"), "r2");
	assert_false(bget(j, "success"));
	err = get(j, "error");
	assert_string_equal(sget(err, "code"), "BAD_REQUEST");
	assert_string_equal(sget(err, "message"),
	                    "ticks[1]: \"symbol\" must be 1-32 characters of A-Z a-z 0-9 . _ : -");
	drain(pub);
	assert_int_equal(stat_get(e, "streaming", "active_streams"), 1); /* A only */

	/* other requests and pings of a publisher */
	rx(e, pub, "{\"type\":\"ping\",\"timestamp\":5}");
	assert_string_equal(sget(last(pub), "type"), "pong");
	rx(e, pub,
	   "{\"type\":\"request\",\"request_id\":\"g\",\"action\":\"get_market_data\","
	   "\"payload\":{\"symbol\":\"A\"}}");
	assert_json(get(expect_ok(last(pub), "g"), "data"), "{\"p\":1}");
	rx(e, pub, "{\"type\":\"request\",\"action\":\"publish_market_data\"");
	assert_string_equal(sget(get(last(pub), "error"), "code"), "BAD_JSON");
	drain(pub);

	/* the same plain publish from a connection without the role: refused, nothing applied */
	rx(e, other,
	   "{\"type\":\"request\",\"action\":\"publish_market_data\",\"request_id\":\"r3\","
	   "\"payload\":{\"symbol\":\"A\",\"data\":{\"p\":9}}}");
	assert_string_equal(sget(get(last(other), "error"), "code"), "FORBIDDEN");
	assert_int_equal(stat_get(e, "streaming", "total_messages"), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_fanout_by_tree, teardown),
	    cmocka_unit_test_teardown(test_fanout_by_frame, teardown),
	    cmocka_unit_test_teardown(test_fanout_with_sio_offsets, teardown),
	    cmocka_unit_test_teardown(test_conflation_by_tree, teardown),
	    cmocka_unit_test_teardown(test_conflation_by_frame, teardown),
	    cmocka_unit_test_teardown(test_publisher_frames, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
