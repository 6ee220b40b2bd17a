/*
 * Unit tests for the market streams (src/stream.c): symbol and field names, the registry and
 * its cap, seq and the dedup / stale verdicts, the ring and its wrap, the snapshot merge and
 * json reference counts, subscriptions and their filter groups (both directions of every
 * link), field filtering, and a random run of subscription changes checked against a model.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "quotecast/stream.h"

struct fake_conn {
	int id;
	struct qc_sub_set subs;
};

/* A registry as the hub makes it, without an idle TTL: at most @max streams of each kind. */
static struct qc_streams *new_reg(uint32_t buffer_size, uint32_t dedup_window, uint32_t max)
{
	struct qc_streams_opts o = {
	    .buffer_size = buffer_size,
	    .dedup_window = dedup_window,
	    .max_symbols = max,
	    .max_subscribe_only = max,
	};

	return qc_streams_new(&o);
}

static json_t *obj(const char *text)
{
	json_error_t err;
	json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &err);

	assert_non_null(j);
	return j;
}

/* The compact form of @text. */
static struct qc_cobj *cobj(const char *text)
{
	json_t *j = obj(text);
	struct qc_cobj *o = qc_cobj_from_json(j);

	assert_non_null(o);
	json_decref(j);
	return o;
}

/* Offers @data as a tick; *@out (if not NULL) the ring entry; returns the verdict. */
static int apply_cobj(struct qc_stream *s, const struct qc_cobj *data, const char *id,
                      bool has_version, int64_t version, int64_t ts, struct qc_tick *out)
{
	struct qc_tick_in in = {
	    .data = data,
	    .message_id = id,
	    .has_version = has_version,
	    .version = version,
	    .timestamp = ts,
	};

	return qc_stream_apply(s, &in, out);
}

/* Applies @text as data; returns the verdict. */
static int apply(struct qc_stream *s, const char *text, const char *id, bool has_version,
                 int64_t version, int64_t ts)
{
	struct qc_cobj *data = cobj(text);
	int ret = apply_cobj(s, data, id, has_version, version, ts, NULL);

	qc_cobj_unref(&data);
	return ret;
}

/* @o's text is exactly what jansson prints for @text (key order counts). */
static void assert_cobj(const struct qc_cobj *o, const char *text)
{
	json_t *j = obj(text);
	char *want = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(15));

	assert_non_null(want);
	if (o->len != strlen(want) || memcmp(o->text, want, o->len)) {
		print_error("got %.*s, want %s\n", (int)o->len, o->text, want);
		free(want);
		json_decref(j);
		fail();
	}
	free(want);
	json_decref(j);
}

static void assert_json(json_t *j, const char *text)
{
	json_t *want = obj(text);

	if (!json_equal(j, want)) {
		char *got = json_dumps(j, JSON_SORT_KEYS);

		print_error("got %s, want %s\n", got ? got : "NULL", text);
		free(got);
		json_decref(want);
		fail();
	}
	json_decref(want);
}

static size_t count_groups(const struct qc_stream *s)
{
	const struct qc_group *g;
	size_t n = 0;

	for (g = qc_stream_groups(s); g; g = qc_group_next(g))
		n++;
	return n;
}

/* Checks a group's member list both ways; returns its length. */
static uint32_t check_group(const struct qc_stream *s, const struct qc_group *g)
{
	const struct qc_sub *sub, *prev = NULL;
	uint32_t n = 0;
	size_t i;

	for (sub = qc_group_subs(g); sub; sub = sub->group_next) {
		assert_ptr_equal(sub->group, g);
		assert_ptr_equal(sub->stream, s);
		assert_ptr_equal(sub->group_prev, prev);
		assert_non_null(sub->set);
		assert_ptr_equal(qc_sub_set_find(sub->set, s), sub);
		prev = sub;
		n++;
	}
	assert_int_equal(n, qc_group_nsubs(g));
	assert_true(n > 0);
	for (i = 1; i < qc_group_nfields(g); i++)
		assert_true(strcmp(qc_group_fields(g)[i - 1], qc_group_fields(g)[i]) < 0);
	return n;
}

/* Checks every group of @s; returns the number of subscriptions seen. */
static uint32_t check_stream(const struct qc_stream *s)
{
	const struct qc_group *g;
	uint32_t n = 0;

	for (g = qc_stream_groups(s); g; g = qc_group_next(g))
		n += check_group(s, g);
	assert_int_equal(n, qc_stream_nsubs(s));
	return n;
}

static const struct qc_group *group_of(const struct qc_stream *s, const struct fake_conn *c)
{
	const struct qc_sub *sub = qc_sub_set_find(&c->subs, s);

	assert_non_null(sub);
	return sub->group;
}

static void assert_fields(const struct qc_group *g, const char *const *want, size_t n)
{
	size_t i;

	assert_int_equal(qc_group_nfields(g), n);
	for (i = 0; i < n; i++)
		assert_string_equal(qc_group_fields(g)[i], want[i]);
}

static void test_names(void **state)
{
	char s33[34], s32[33], f65[66], f64[65];

	(void)state;
	memset(s33, 'A', 33);
	s33[33] = '\0';
	memcpy(s32, s33, 32);
	s32[32] = '\0';
	memset(f65, 'f', 65);
	f65[65] = '\0';
	memcpy(f64, f65, 64);
	f64[64] = '\0';

	assert_true(qc_symbol_valid("600519"));
	assert_true(qc_symbol_valid("BTC-USD"));
	assert_true(qc_symbol_valid("a.b_c:d-E9"));
	assert_true(qc_symbol_valid(s32));
	assert_false(qc_symbol_valid(s33));
	assert_false(qc_symbol_valid(""));
	assert_false(qc_symbol_valid(NULL));
	assert_false(qc_symbol_valid("BTC USD"));
	assert_false(qc_symbol_valid("BTC/USD"));
	assert_false(qc_symbol_valid("a\n"));
	assert_false(qc_symbol_valid("\xc3\xa9"));

	assert_true(qc_field_valid("price"));
	assert_true(qc_field_valid("bid price/1 \xc3\xa9"));
	assert_true(qc_field_valid(f64));
	assert_false(qc_field_valid(f65));
	assert_false(qc_field_valid(""));
	assert_false(qc_field_valid(NULL));
	assert_false(qc_field_valid("a\tb"));
	assert_false(qc_field_valid("a\nb"));
	assert_false(qc_field_valid("\x1f"));
	assert_false(qc_field_valid("a\x7f"));
}

static void test_registry(void **state)
{
	struct qc_streams *ss;
	struct qc_stream *a, *b, *c;

	struct qc_tick t;

	(void)state;
	errno = 0;
	assert_null(new_reg(0, 4, 4));
	assert_int_equal(errno, EINVAL);
	assert_null(new_reg(4, 0, 4));
	assert_null(new_reg(4, 4, 0));

	ss = new_reg(4, 4, 2);
	assert_non_null(ss);
	assert_int_equal(qc_streams_count(ss), 0);
	assert_null(qc_streams_find(ss, "AAA"));

	a = qc_streams_get(ss, "AAA");
	assert_non_null(a);
	assert_int_equal(qc_stream_id(a), 1);
	assert_string_equal(qc_stream_symbol(a), "AAA");
	assert_int_equal(qc_stream_last_seq(a), 0);
	assert_int_equal(qc_stream_oldest_seq(a), 0);
	assert_false(qc_stream_tick(a, 0, &t));
	assert_false(qc_stream_tick(a, 1, &t));
	assert_cobj(qc_stream_snapshot(a), "{}");
	assert_int_equal(json_object_size(qc_stream_snapshot_json(a)), 0);
	assert_true(json_is_object(qc_stream_snapshot_json(a)));
	assert_null(qc_stream_groups(a));
	assert_int_equal(qc_stream_nsubs(a), 0);
	assert_ptr_equal(qc_streams_get(ss, "AAA"), a);
	assert_ptr_equal(qc_streams_find(ss, "AAA"), a);
	assert_null(qc_streams_find(ss, "AA"));
	assert_null(qc_streams_find(ss, "AAAA"));
	assert_int_equal(qc_streams_count(ss), 1);

	errno = 0;
	assert_null(qc_streams_get(ss, "bad symbol"));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(qc_streams_get(ss, ""));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(qc_streams_get(ss, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456"));
	assert_int_equal(errno, EINVAL);
	assert_null(qc_streams_find(ss, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456"));
	assert_null(qc_streams_find(ss, NULL));
	assert_int_equal(qc_streams_count(ss), 1);

	b = qc_streams_get(ss, "BBB");
	assert_non_null(b);
	assert_int_equal(qc_stream_id(b), 2);
	errno = 0;
	c = qc_streams_get(ss, "CCC");
	assert_null(c);
	assert_int_equal(errno, ENOSPC);
	assert_null(qc_streams_find(ss, "CCC"));
	/* Existing streams are still found at the cap. */
	assert_ptr_equal(qc_streams_get(ss, "BBB"), b);
	assert_ptr_equal(qc_streams_get(ss, "AAA"), a);
	assert_int_equal(qc_streams_count(ss), 2);
	qc_streams_free(ss);
	qc_streams_free(NULL);
}

static void test_seq_and_verdicts(void **state)
{
	struct qc_streams *ss = new_reg(16, 16, 4);
	struct qc_stream *s;
	struct qc_tick t = {0}, t2;
	struct qc_cobj *data;

	(void)state;
	assert_non_null(ss);
	s = qc_streams_get_live(ss, "S");
	assert_non_null(s);

	data = cobj("{\"p\":1}");
	assert_int_equal(apply_cobj(s, data, "m1", true, 10, 1000, &t), QC_TICK_ACCEPTED);
	assert_int_equal(t.seq, 1);
	assert_int_equal(t.timestamp, 1000);
	assert_ptr_not_equal(t.data, data); /* the ring keeps its own copy */
	assert_cobj(t.data, "{\"p\":1}");
	assert_int_equal(t.data->refs, 1);
	assert_int_equal(data->refs, 1);
	assert_string_equal(t.message_id, "m1");
	assert_true(qc_stream_tick(s, 1, &t2));
	assert_ptr_equal(t2.data, t.data);
	assert_int_equal(t2.seq, 1);
	assert_int_equal(t2.timestamp, 1000);
	assert_string_equal(t2.message_id, "m1");
	qc_cobj_unref(&data);
	assert_int_equal(qc_stream_last_seq(s), 1);
	assert_true(qc_stream_seen(s, "m1"));
	assert_false(qc_stream_seen(s, "m2"));
	assert_false(qc_stream_seen(s, NULL));
	assert_false(qc_stream_seen(s, ""));

	/* Duplicates and stale ticks consume no seq and change nothing. */
	t.data = NULL;
	data = cobj("{\"p\":2}");
	assert_int_equal(apply_cobj(s, data, "m1", true, 11, 2000, &t), QC_TICK_DUPLICATE);
	assert_null(t.data);
	assert_int_equal(data->refs, 1);
	qc_cobj_unref(&data);
	assert_int_equal(apply(s, "{\"p\":3}", "m2", true, 9, 3000), QC_TICK_STALE);
	assert_int_equal(apply(s, "{\"p\":4}", "m3", true, 10, 4000), QC_TICK_STALE); /* equal */
	/* A stale tick's id does not enter the window. */
	assert_false(qc_stream_seen(s, "m2"));
	assert_false(qc_stream_seen(s, "m3"));
	/* Seen id and stale version: a duplicate. */
	assert_int_equal(apply(s, "{\"p\":5}", "m1", true, 1, 5000), QC_TICK_DUPLICATE);
	assert_int_equal(qc_stream_last_seq(s), 1);
	assert_int_equal(qc_stream_oldest_seq(s), 1);
	assert_false(qc_stream_tick(s, 2, &t));
	assert_cobj(qc_stream_snapshot(s), "{\"p\":1}");
	assert_int_equal(qc_stream_snapshot_time(s), 1000);

	assert_int_equal(apply(s, "{\"p\":6}", "m3", true, 11, 6000), QC_TICK_ACCEPTED);
	assert_int_equal(qc_stream_last_seq(s), 2);
	/* Ticks without a version are never stale, before or after versioned ones. */
	assert_int_equal(apply(s, "{\"p\":7}", NULL, false, 0, 7000), QC_TICK_ACCEPTED);
	assert_int_equal(apply(s, "{\"p\":8}", "", false, -5, 8000), QC_TICK_ACCEPTED);
	assert_int_equal(qc_stream_last_seq(s), 4);
	assert_true(qc_stream_tick(s, 3, &t));
	assert_string_equal(t.message_id, "");
	assert_true(qc_stream_tick(s, 4, &t));
	assert_string_equal(t.message_id, "");
	/* The last accepted version is still 11. */
	assert_int_equal(apply(s, "{\"p\":9}", "m9", true, 11, 9000), QC_TICK_STALE);
	assert_int_equal(apply(s, "{\"p\":9}", "m9", true, 12, 9000), QC_TICK_ACCEPTED);
	assert_int_equal(qc_stream_last_seq(s), 5);

	/* Ticks without ids are never duplicates. */
	assert_int_equal(apply(s, "{\"p\":10}", NULL, false, 0, 10000), QC_TICK_ACCEPTED);
	assert_int_equal(apply(s, "{\"p\":10}", NULL, false, 0, 10000), QC_TICK_ACCEPTED);
	assert_int_equal(qc_stream_last_seq(s), 7);

	/* Not an object, or an empty one: refused, nothing changed. */
	assert_int_equal(apply(s, "{}", "x1", false, 0, 1), -EINVAL);
	assert_int_equal(apply_cobj(s, NULL, "x2", false, 0, 1, NULL), -EINVAL);
	assert_false(qc_stream_seen(s, "x1"));
	assert_int_equal(qc_stream_last_seq(s), 7);
	qc_streams_free(ss);
}

static void test_versions_start_anywhere(void **state)
{
	struct qc_streams *ss = new_reg(4, 4, 4);
	struct qc_stream *s;

	(void)state;
	assert_non_null(ss);
	s = qc_streams_get_live(ss, "S");
	assert_non_null(s);
	/* Before any version is accepted, no version is stale, not even a negative one. */
	assert_int_equal(apply(s, "{\"p\":1}", NULL, false, 0, 1), QC_TICK_ACCEPTED);
	assert_int_equal(apply(s, "{\"p\":1}", NULL, true, -100, 1), QC_TICK_ACCEPTED);
	assert_int_equal(apply(s, "{\"p\":1}", NULL, true, -100, 1), QC_TICK_STALE);
	assert_int_equal(apply(s, "{\"p\":1}", NULL, true, -99, 1), QC_TICK_ACCEPTED);
	assert_int_equal(qc_stream_last_seq(s), 3);
	qc_streams_free(ss);
}

static void test_dedup_window(void **state)
{
	struct qc_streams *ss = new_reg(8, 2, 4);
	struct qc_stream *s, *other;

	(void)state;
	assert_non_null(ss);
	s = qc_streams_get_live(ss, "S");
	other = qc_streams_get_live(ss, "T");
	assert_non_null(s);
	assert_non_null(other);
	assert_int_equal(apply(s, "{\"p\":1}", "m1", false, 0, 1), QC_TICK_ACCEPTED);
	assert_int_equal(apply(s, "{\"p\":1}", "m2", false, 0, 1), QC_TICK_ACCEPTED);
	assert_int_equal(apply(s, "{\"p\":1}", "m1", false, 0, 1), QC_TICK_DUPLICATE);
	/* Windows are per symbol. */
	assert_int_equal(apply(other, "{\"p\":1}", "m1", false, 0, 1), QC_TICK_ACCEPTED);
	/* Ticks without ids do not push ids out of the window. */
	assert_int_equal(apply(s, "{\"p\":1}", NULL, false, 0, 1), QC_TICK_ACCEPTED);
	assert_int_equal(apply(s, "{\"p\":1}", "m1", false, 0, 1), QC_TICK_DUPLICATE);
	assert_int_equal(apply(s, "{\"p\":1}", "m3", false, 0, 1), QC_TICK_ACCEPTED);
	/* m1 has left the window of two. */
	assert_false(qc_stream_seen(s, "m1"));
	assert_int_equal(apply(s, "{\"p\":1}", "m1", false, 0, 1), QC_TICK_ACCEPTED);
	assert_int_equal(apply(s, "{\"p\":1}", "m2", false, 0, 1), QC_TICK_ACCEPTED);
	assert_int_equal(qc_stream_last_seq(s), 6);
	qc_streams_free(ss);
}

static void test_long_message_id(void **state)
{
	struct qc_streams *ss = new_reg(4, 4, 4);
	struct qc_stream *s;
	struct qc_tick t;
	char id[QC_MESSAGE_ID_MAX + 40];
	struct qc_cobj *data = cobj("{\"p\":1}");

	(void)state;
	assert_non_null(ss);
	s = qc_streams_get_live(ss, "S");
	assert_non_null(s);
	memset(id, 'x', sizeof(id) - 1);
	id[sizeof(id) - 1] = '\0';
	assert_int_equal(apply_cobj(s, data, id, false, 0, 1, &t), QC_TICK_ACCEPTED);
	assert_int_equal(strlen(t.message_id), QC_MESSAGE_ID_MAX);
	assert_memory_equal(t.message_id, id, QC_MESSAGE_ID_MAX);
	assert_true(qc_stream_seen(s, id));
	/* Only the first QC_MESSAGE_ID_MAX bytes count. */
	id[QC_MESSAGE_ID_MAX + 5] = 'y';
	assert_true(qc_stream_seen(s, id));
	id[QC_MESSAGE_ID_MAX] = '\0';
	assert_true(qc_stream_seen(s, id));
	id[QC_MESSAGE_ID_MAX - 1] = 'y';
	assert_false(qc_stream_seen(s, id));
	qc_cobj_unref(&data);
	qc_streams_free(ss);
}

static void test_ring_wrap(void **state)
{
	struct qc_streams *ss = new_reg(4, 16, 4);
	struct qc_stream *s;
	struct qc_tick t;
	struct qc_cobj *data[10], *held[10];
	char text[32], id[8];
	int i;

	(void)state;
	assert_non_null(ss);
	s = qc_streams_get_live(ss, "S");
	assert_non_null(s);
	for (i = 0; i < 10; i++) {
		snprintf(text, sizeof(text), "{\"n\":%d}", i + 1);
		snprintf(id, sizeof(id), "m%d", i + 1);
		data[i] = cobj(text);
		assert_int_equal(apply_cobj(s, data[i], id, true, i + 1, 100 + i, &t),
		                 QC_TICK_ACCEPTED);
		assert_int_equal(t.seq, (uint64_t)i + 1);
		held[i] = qc_cobj_ref(t.data); /* as a queued frame holds it */
		assert_int_equal(qc_stream_oldest_seq(s), i < 4 ? 1 : i - 2);
	}
	assert_int_equal(qc_stream_last_seq(s), 10);
	assert_int_equal(qc_stream_oldest_seq(s), 7);
	assert_false(qc_stream_tick(s, 0, &t));
	assert_false(qc_stream_tick(s, 6, &t));
	assert_false(qc_stream_tick(s, 11, &t));
	for (i = 7; i <= 10; i++) {
		assert_true(qc_stream_tick(s, (uint64_t)i, &t));
		assert_int_equal(t.seq, (uint64_t)i);
		assert_int_equal(t.timestamp, 100 + i - 1);
		assert_ptr_equal(t.data, held[i - 1]);
		assert_memory_equal(t.data->text, data[i - 1]->text, data[i - 1]->len);
		snprintf(id, sizeof(id), "m%d", i);
		assert_string_equal(t.message_id, id);
	}
	/* The ring let go of the ticks it dropped and holds the others. */
	for (i = 0; i < 6; i++)
		assert_int_equal(held[i]->refs, 1);
	for (i = 6; i < 10; i++)
		assert_int_equal(held[i]->refs, 2);
	/* A tick the ring dropped is still whole for whoever holds it. */
	assert_cobj(held[0], "{\"n\":1}");
	assert_cobj(qc_stream_snapshot(s), "{\"n\":10}");
	for (i = 0; i < 10; i++) {
		qc_cobj_unref(&data[i]);
		qc_cobj_unref(&held[i]);
	}
	qc_streams_free(ss);
}

/* Offers @text as a tick the broker numbered @seq (cluster mode); *@out the ring entry. */
static int apply_seq(struct qc_stream *s, const char *text, const char *id, uint64_t seq,
                     int64_t ts, struct qc_tick *out)
{
	struct qc_cobj *data = cobj(text);
	struct qc_tick_in in = {.data = data, .message_id = id, .timestamp = ts};
	int ret = qc_stream_apply_seq(s, &in, seq, out);

	qc_cobj_unref(&data);
	return ret;
}

/*
 * Ticks a broker numbered (cluster mode), in the compact form: consecutive, then a gap, then a
 * log that restarted; the data is copied into the ring and merged into the snapshot in place.
 */
static void test_apply_seq(void **state)
{
	struct qc_streams *ss = new_reg(4, 16, 4);
	struct qc_stream *s;
	struct qc_tick t;
	struct qc_cobj *empty;
	struct qc_tick_in in = {.timestamp = 1};

	(void)state;
	assert_non_null(ss);
	s = qc_streams_get(ss, "S"); /* subscribe-only: given its ring by the first tick */
	assert_non_null(s);
	assert_int_equal(apply_seq(s, "{\"n\":0,\"a\":\"x\"}", "a", 41, 1000, &t),
	                 QC_TICK_ACCEPTED);
	assert_int_equal(t.seq, 41);
	assert_int_equal(t.timestamp, 1000);
	assert_string_equal(t.message_id, "a");
	assert_cobj(t.data, "{\"n\":0,\"a\":\"x\"}");
	assert_int_equal(qc_stream_oldest_seq(s), 41);
	assert_int_equal(apply_seq(s, "{\"n\":1}", "b", 42, 1001, &t), QC_TICK_ACCEPTED);
	assert_int_equal(qc_stream_last_seq(s), 42);
	assert_int_equal(qc_stream_oldest_seq(s), 41);
	assert_true(qc_stream_seen(s, "b"));
	assert_true(qc_stream_tick(s, 41, &t));
	assert_cobj(t.data, "{\"n\":0,\"a\":\"x\"}");
	assert_cobj(qc_stream_snapshot(s), "{\"n\":1,\"a\":\"x\"}");
	/* the broker decided: an id seen before is taken again, and stays in the window once */
	assert_int_equal(apply_seq(s, "{\"n\":2}", "b", 43, 1002, &t), QC_TICK_ACCEPTED);
	assert_true(qc_stream_seen(s, "b"));
	/* a gap: the ring starts again at the new seq (it holds consecutive seqs only) */
	assert_int_equal(apply_seq(s, "{\"n\":3}", NULL, 50, 1003, &t), QC_TICK_ACCEPTED);
	assert_int_equal(qc_stream_oldest_seq(s), 50);
	assert_int_equal(qc_stream_last_seq(s), 50);
	assert_false(qc_stream_tick(s, 42, &t));
	assert_int_equal(apply_seq(s, "{\"n\":4}", NULL, 51, 1004, &t), QC_TICK_ACCEPTED);
	/* the broker's log began again (Redis restarted empty): so does the ring */
	assert_int_equal(apply_seq(s, "{\"n\":5}", NULL, 1, 1005, &t), QC_TICK_ACCEPTED);
	assert_int_equal(qc_stream_oldest_seq(s), 1);
	assert_int_equal(qc_stream_last_seq(s), 1);
	assert_true(qc_stream_tick(s, 1, &t));
	assert_cobj(t.data, "{\"n\":5}");
	/* the snapshot merged every tick */
	assert_cobj(qc_stream_snapshot(s), "{\"n\":5,\"a\":\"x\"}");
	assert_int_equal(qc_stream_snapshot_time(s), 1005);
	/* seq 0 and empty data are refused, changing nothing */
	assert_int_equal(apply_seq(s, "{\"n\":6}", NULL, 0, 1006, &t), -EINVAL);
	empty = cobj("{}");
	in.data = empty;
	assert_int_equal(qc_stream_apply_seq(s, &in, 2, &t), -EINVAL);
	qc_cobj_unref(&empty);
	assert_int_equal(qc_stream_last_seq(s), 1);
	assert_int_equal(qc_stream_oldest_seq(s), 1);
	qc_streams_free(ss);
}

static void test_ring_of_one(void **state)
{
	struct qc_streams *ss = new_reg(1, 4, 4);
	struct qc_stream *s;

	struct qc_tick t;

	(void)state;
	assert_non_null(ss);
	s = qc_streams_get_live(ss, "S");
	assert_non_null(s);
	assert_int_equal(apply(s, "{\"n\":1}", NULL, false, 0, 1), QC_TICK_ACCEPTED);
	assert_int_equal(apply(s, "{\"n\":2}", NULL, false, 0, 2), QC_TICK_ACCEPTED);
	assert_int_equal(qc_stream_oldest_seq(s), 2);
	assert_false(qc_stream_tick(s, 1, &t));
	assert_true(qc_stream_tick(s, 2, &t));
	assert_cobj(t.data, "{\"n\":2}");
	qc_streams_free(ss);
}

static void test_snapshot_merge(void **state)
{
	struct qc_streams *ss = new_reg(2, 4, 4);
	struct qc_stream *s;
	(void)state;
	assert_non_null(ss);
	s = qc_streams_get_live(ss, "S");
	assert_non_null(s);
	assert_int_equal(
	    apply(s, "{\"price\":1.5,\"volume\":100,\"bid\":{\"p\":1}}", "a", false, 0, 1000),
	    QC_TICK_ACCEPTED);
	assert_cobj(qc_stream_snapshot(s), "{\"price\":1.5,\"volume\":100,\"bid\":{\"p\":1}}");
	assert_int_equal(qc_stream_snapshot_time(s), 1000);
	assert_int_equal(apply(s, "{\"price\":1.6,\"ask\":2}", "b", false, 0, 2000),
	                 QC_TICK_ACCEPTED);
	assert_cobj(qc_stream_snapshot(s),
	            "{\"price\":1.6,\"volume\":100,\"bid\":{\"p\":1},\"ask\":2}");
	assert_json(qc_stream_snapshot_json(s),
	            "{\"price\":1.6,\"volume\":100,\"bid\":{\"p\":1},\"ask\":2}");
	assert_int_equal(qc_stream_snapshot_time(s), 2000);
	assert_int_equal(apply(s, "{\"volume\":null}", "c", false, 0, 1500), QC_TICK_ACCEPTED);
	assert_cobj(qc_stream_snapshot(s),
	            "{\"price\":1.6,\"volume\":null,\"bid\":{\"p\":1},\"ask\":2}");
	assert_int_equal(qc_stream_snapshot_time(s), 1500);

	/* The first tick has left the ring of two; the snapshot keeps the "bid" value it carried.
	 */
	assert_int_equal(qc_stream_oldest_seq(s), 2);
	assert_cobj(qc_stream_snapshot(s),
	            "{\"price\":1.6,\"volume\":null,\"bid\":{\"p\":1},\"ask\":2}");

	/* Refused ticks leave the snapshot alone. */
	assert_int_equal(apply(s, "{\"price\":9,\"new\":1}", "b", false, 0, 9000),
	                 QC_TICK_DUPLICATE);
	assert_cobj(qc_stream_snapshot(s),
	            "{\"price\":1.6,\"volume\":null,\"bid\":{\"p\":1},\"ask\":2}");
	assert_int_equal(qc_stream_snapshot_time(s), 1500);
	qc_streams_free(ss);
}

/*
 * malloc and realloc fail once the countdown reaches zero (negative: never). The test binary
 * is linked with --wrap=malloc,--wrap=realloc (CMakeLists.txt), so this reaches stream.c and
 * cobj.c.
 */
static int alloc_countdown = -1;

void *__real_malloc(size_t size);
void *__real_realloc(void *p, size_t size);

void *__wrap_malloc(size_t size)
{
	if (alloc_countdown == 0)
		return NULL;
	if (alloc_countdown > 0)
		alloc_countdown--;
	return __real_malloc(size);
}

void *__wrap_realloc(void *p, size_t size)
{
	if (alloc_countdown == 0)
		return NULL;
	if (alloc_countdown > 0)
		alloc_countdown--;
	return __real_realloc(p, size);
}

/*
 * A tick bringing new fields grows the snapshot (and the merge scratch) and a tick filling
 * the ring grows it; whichever allocation fails, apply answers -ENOMEM and leaves seq, ring,
 * window, version and snapshot as they were.
 */
static void test_apply_enomem_changes_nothing(void **state)
{
	struct qc_streams *ss = new_reg(16, 16, 4);
	struct qc_stream *s;
	struct qc_cobj *data, *before;
	char text[1024];
	int n, failures = 0, ret = -ENOMEM, i;
	size_t len = 0;

	(void)state;
	assert_non_null(ss);
	s = qc_streams_get_live(ss, "S");
	assert_non_null(s);
	assert_int_equal(apply(s, "{\"old\":1,\"k0\":0}", "m1", true, 5, 100), QC_TICK_ACCEPTED);
	for (i = 2; i <= 8; i++) {
		snprintf(text, sizeof(text), "{\"old\":%d}", i);
		snprintf(text + 100, 16, "m%d", i);
		assert_int_equal(apply(s, text, text + 100, true, 4 + i, 100 * i),
		                 QC_TICK_ACCEPTED);
	}
	before = qc_cobj_copy(qc_stream_snapshot(s), 0);
	assert_non_null(before);

	/* Forty new fields with long values, and one it has; the ring of 8 slots is full. */
	len += (size_t)snprintf(text + len, sizeof(text) - len, "{\"old\":9");
	for (i = 0; i < 40; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len, ",\"k%d\":\"%08d\"", i, i);
	snprintf(text + len, sizeof(text) - len, "}");
	data = cobj(text);

	for (n = 0; ret == -ENOMEM; n++) {
		alloc_countdown = n;
		ret = apply_cobj(s, data, "m9", true, 13, 900, NULL);
		alloc_countdown = -1;
		if (ret != -ENOMEM)
			break;
		failures++;
		assert_int_equal(qc_stream_snapshot(s)->len, before->len);
		assert_memory_equal(qc_stream_snapshot(s)->text, before->text, before->len);
		assert_int_equal(qc_stream_snapshot_time(s), 800);
		assert_int_equal(qc_stream_last_seq(s), 8);
		assert_int_equal(qc_stream_oldest_seq(s), 1);
		assert_false(qc_stream_seen(s, "m9"));
		assert_int_equal(data->refs, 1);
	}
	assert_true(failures >= 3);
	assert_int_equal(ret, QC_TICK_ACCEPTED);
	assert_int_equal(qc_stream_last_seq(s), 9);
	assert_int_equal(qc_stream_snapshot(s)->n, 41);
	assert_int_equal(json_integer_value(json_object_get(qc_stream_snapshot_json(s), "old")), 9);
	assert_string_equal(json_string_value(json_object_get(qc_stream_snapshot_json(s), "k39")),
	                    "00000039");
	assert_int_equal(apply(s, "{\"old\":4}", "m10", true, 13, 400), QC_TICK_STALE);
	qc_cobj_unref(&before);
	qc_cobj_unref(&data);
	qc_streams_free(ss);
}

static void test_subscribe_groups(void **state)
{
	static const char *const f_pv[] = {"price", "volume"};
	static const char *const f_vp[] = {"volume", "price", "volume"};
	static const char *const f_b[] = {"bid"};
	struct qc_streams *ss = new_reg(4, 4, 4);
	struct fake_conn c[4] = {{.id = 0}, {.id = 1}, {.id = 2}, {.id = 3}};
	struct qc_stream *s, *t;
	struct qc_sub *sub = NULL;
	const struct qc_group *g;

	(void)state;
	assert_non_null(ss);
	s = qc_streams_get_live(ss, "S");
	t = qc_streams_get_live(ss, "T");
	assert_non_null(s);
	assert_non_null(t);

	assert_int_equal(qc_stream_subscribe(ss, s, &c[0].subs, &c[0], f_pv, 2, &sub), 0);
	assert_non_null(sub);
	assert_ptr_equal(sub->conn, &c[0]);
	assert_ptr_equal(sub->stream, s);
	assert_ptr_equal(sub->set, &c[0].subs);
	assert_ptr_equal(qc_sub_set_find(&c[0].subs, s), sub);
	assert_null(qc_sub_set_find(&c[0].subs, t));
	assert_int_equal(c[0].subs.count, 1);

	/* Same fields in another order, with a duplicate: the same group. */
	assert_int_equal(qc_stream_subscribe(ss, s, &c[1].subs, &c[1], f_vp, 3, NULL), 0);
	assert_int_equal(count_groups(s), 1);
	g = group_of(s, &c[0]);
	assert_ptr_equal(group_of(s, &c[1]), g);
	assert_int_equal(qc_group_nsubs(g), 2);
	assert_fields(g, f_pv, 2);
	/* Head insertion: the newest member first. */
	assert_ptr_equal(qc_group_subs(g)->conn, &c[1]);

	/* Other fields: a second group. */
	assert_int_equal(qc_stream_subscribe(ss, s, &c[2].subs, &c[2], f_b, 1, NULL), 0);
	assert_int_equal(count_groups(s), 2);
	assert_ptr_not_equal(group_of(s, &c[2]), g);
	assert_fields(group_of(s, &c[2]), f_b, 1);

	/* No fields: the all-fields group, a third. */
	assert_int_equal(qc_stream_subscribe(ss, s, &c[3].subs, &c[3], NULL, 0, NULL), 0);
	assert_int_equal(count_groups(s), 3);
	assert_int_equal(qc_group_nfields(group_of(s, &c[3])), 0);
	assert_int_equal(check_stream(s), 4);
	assert_int_equal(qc_stream_nsubs(s), 4);
	assert_int_equal(qc_streams_nsubs(ss), 4);

	/* One connection on two streams. */
	assert_int_equal(qc_stream_subscribe(ss, t, &c[0].subs, &c[0], NULL, 0, NULL), 0);
	assert_int_equal(c[0].subs.count, 2);
	assert_int_equal(qc_streams_nsubs(ss), 5);
	assert_int_equal(qc_stream_nsubs(t), 1);
	assert_int_equal(check_stream(t), 1);

	/* Already subscribed, even with other fields: -EEXIST and nothing changes. */
	assert_int_equal(qc_stream_subscribe(ss, s, &c[0].subs, &c[0], f_b, 1, NULL), -EEXIST);
	assert_ptr_equal(group_of(s, &c[0]), g);
	assert_int_equal(qc_streams_nsubs(ss), 5);

	/* Unsubscribe: the group goes with its last member. */
	assert_int_equal(qc_stream_unsubscribe(ss, s, &c[2].subs), 0);
	assert_int_equal(qc_stream_unsubscribe(ss, s, &c[2].subs), -ENOENT);
	assert_int_equal(count_groups(s), 2);
	assert_null(c[2].subs.by_stream);
	assert_int_equal(c[2].subs.count, 0);
	assert_int_equal(qc_stream_unsubscribe(ss, s, &c[0].subs), 0);
	assert_int_equal(count_groups(s), 2);
	assert_int_equal(qc_group_nsubs(group_of(s, &c[1])), 1);
	assert_int_equal(check_stream(s), 2);
	assert_int_equal(c[0].subs.count, 1);
	assert_non_null(qc_sub_set_find(&c[0].subs, t));

	qc_stream_unsubscribe_all(ss, &c[0].subs);
	qc_stream_unsubscribe_all(ss, &c[1].subs);
	qc_stream_unsubscribe_all(ss, &c[3].subs);
	qc_stream_unsubscribe_all(ss, &c[3].subs);
	assert_null(qc_stream_groups(s));
	assert_null(qc_stream_groups(t));
	assert_int_equal(qc_stream_nsubs(s), 0);
	assert_int_equal(qc_stream_nsubs(t), 0);
	assert_int_equal(qc_streams_nsubs(ss), 0);
	assert_int_equal(c[0].subs.count, 0);
	assert_null(c[0].subs.by_stream);
	assert_int_equal(qc_stream_unsubscribe(ss, t, &c[0].subs), -ENOENT);
	qc_streams_free(ss);
}

static void test_bad_fields(void **state)
{
	static const char *const bad1[] = {"price", ""};
	static const char *const bad2[] = {"pri\nce"};
	static const char *const bad3[] = {"price", NULL};
	static const char *const ok[] = {"price"};
	struct qc_streams *ss = new_reg(4, 4, 4);
	struct fake_conn c = {.id = 0};
	const char *many[QC_FIELDS_MAX + 8];
	char names[QC_FIELDS_MAX + 1][8];
	struct qc_stream *s;
	struct qc_sub *sub = NULL;
	size_t i;

	(void)state;
	assert_non_null(ss);
	s = qc_streams_get_live(ss, "S");
	assert_non_null(s);
	for (i = 0; i <= QC_FIELDS_MAX; i++)
		snprintf(names[i], sizeof(names[i]), "f%zu", i);

	assert_int_equal(qc_stream_subscribe(ss, s, &c.subs, &c, bad1, 2, NULL), -EINVAL);
	assert_int_equal(qc_stream_subscribe(ss, s, &c.subs, &c, bad2, 1, NULL), -EINVAL);
	assert_int_equal(qc_stream_subscribe(ss, s, &c.subs, &c, bad3, 2, NULL), -EINVAL);
	assert_int_equal(qc_stream_subscribe(ss, s, &c.subs, &c, NULL, 1, NULL), -EINVAL);
	for (i = 0; i <= QC_FIELDS_MAX; i++)
		many[i] = names[i];
	assert_int_equal(qc_stream_subscribe(ss, s, &c.subs, &c, many, QC_FIELDS_MAX + 1, NULL),
	                 -EINVAL);
	assert_null(qc_stream_groups(s));
	assert_int_equal(c.subs.count, 0);
	assert_int_equal(qc_streams_nsubs(ss), 0);

	/* More names than the maximum, but no more distinct ones: fine. */
	for (i = 0; i < QC_FIELDS_MAX + 8; i++)
		many[i] = names[(i * 7) % QC_FIELDS_MAX];
	assert_int_equal(qc_stream_subscribe(ss, s, &c.subs, &c, many, QC_FIELDS_MAX + 8, &sub), 0);
	assert_int_equal(qc_group_nfields(sub->group), QC_FIELDS_MAX);
	assert_int_equal(check_stream(s), 1);

	/* A bad new filter changes nothing. */
	assert_int_equal(qc_stream_set_filter(ss, sub, bad2, 1), -EINVAL);
	for (i = 0; i <= QC_FIELDS_MAX; i++)
		many[i] = names[i];
	assert_int_equal(qc_stream_set_filter(ss, sub, many, QC_FIELDS_MAX + 1), -EINVAL);
	assert_int_equal(qc_group_nfields(sub->group), QC_FIELDS_MAX);
	assert_int_equal(count_groups(s), 1);
	assert_int_equal(qc_stream_set_filter(ss, sub, ok, 1), 0);
	assert_fields(sub->group, ok, 1);
	assert_int_equal(count_groups(s), 1);
	qc_streams_free(ss);
	/* Freeing the registry emptied the connection's set. */
	assert_int_equal(c.subs.count, 0);
	assert_null(c.subs.by_stream);
}

static void test_set_filter(void **state)
{
	static const char *const f_a[] = {"a"};
	static const char *const f_ab[] = {"a", "b"};
	static const char *const f_ba[] = {"b", "a", "b"};
	struct qc_streams *ss = new_reg(4, 4, 4);
	struct fake_conn c[3] = {{.id = 0}, {.id = 1}, {.id = 2}};
	struct qc_sub *sub[3];
	const struct qc_group *ga, *gab;
	struct qc_stream *s;
	int i;

	(void)state;
	assert_non_null(ss);
	s = qc_streams_get_live(ss, "S");
	assert_non_null(s);
	for (i = 0; i < 3; i++)
		assert_int_equal(qc_stream_subscribe(ss, s, &c[i].subs, &c[i], f_a, 1, &sub[i]), 0);
	ga = sub[0]->group;
	assert_int_equal(count_groups(s), 1);

	/* The same set in another spelling: no change at all. */
	assert_int_equal(qc_stream_set_filter(ss, sub[0], f_a, 1), 0);
	assert_ptr_equal(sub[0]->group, ga);
	assert_int_equal(qc_group_nsubs(ga), 3);

	/* Moving to a new set makes its group; moving back into an existing one reuses it. */
	assert_int_equal(qc_stream_set_filter(ss, sub[0], f_ab, 2), 0);
	gab = sub[0]->group;
	assert_ptr_not_equal(gab, ga);
	assert_fields(gab, f_ab, 2);
	assert_int_equal(qc_group_nsubs(ga), 2);
	assert_int_equal(qc_group_nsubs(gab), 1);
	assert_int_equal(count_groups(s), 2);
	assert_int_equal(qc_stream_set_filter(ss, sub[1], f_ba, 3), 0);
	assert_ptr_equal(sub[1]->group, gab);
	assert_int_equal(qc_stream_set_filter(ss, sub[1], f_ba, 3), 0);
	assert_ptr_equal(sub[1]->group, gab);
	assert_int_equal(check_stream(s), 3);

	/* The last member leaving a group frees it. */
	assert_int_equal(qc_stream_set_filter(ss, sub[2], NULL, 0), 0);
	assert_int_equal(count_groups(s), 2);
	assert_int_equal(qc_group_nfields(sub[2]->group), 0);
	for (i = 0; i < 3; i++)
		assert_ptr_not_equal(sub[i]->group, ga);
	assert_int_equal(check_stream(s), 3);
	assert_int_equal(qc_stream_set_filter(ss, sub[0], NULL, 0), 0);
	assert_int_equal(qc_stream_set_filter(ss, sub[1], NULL, 0), 0);
	assert_int_equal(count_groups(s), 1);
	assert_int_equal(qc_group_nsubs(qc_stream_groups(s)), 3);
	assert_int_equal(check_stream(s), 3);
	/* Filters do not change the counts of subscriptions. */
	assert_int_equal(qc_streams_nsubs(ss), 3);
	assert_int_equal(c[0].subs.count, 1);

	for (i = 0; i < 3; i++)
		qc_stream_unsubscribe_all(ss, &c[i].subs);
	assert_null(qc_stream_groups(s));
	assert_int_equal(qc_streams_nsubs(ss), 0);
	qc_streams_free(ss);
}

static void test_fields_filter(void **state)
{
	static const char *const f_pv[] = {"price", "volume"};
	static const char *const f_px[] = {"price", "missing"};
	static const char *const f_x[] = {"missing", "other"};
	struct qc_streams *ss = new_reg(4, 4, 4);
	struct fake_conn c = {.id = 0};
	json_t *data = obj("{\"price\":1.5,\"volume\":100,\"bid\":{\"p\":1}}");
	struct qc_cobj *cdata = cobj("{\"price\":1.5,\"volume\":100,\"bid\":{\"p\":1}}"), *cout;
	struct qc_sub *sub = NULL;
	struct qc_stream *s;
	json_t *out;

	(void)state;
	/* the tree form, for the alert filters' snapshot */
	out = qc_fields_filter(f_pv, 2, data);
	assert_json(out, "{\"price\":1.5,\"volume\":100}");
	assert_ptr_not_equal(out, data);
	/* Values are shared, not copied. */
	assert_ptr_equal(json_object_get(out, "price"), json_object_get(data, "price"));
	json_decref(out);

	out = qc_fields_filter(f_px, 2, data);
	assert_json(out, "{\"price\":1.5}");
	json_decref(out);

	assert_null(qc_fields_filter(f_x, 2, data));

	out = qc_fields_filter(NULL, 0, data);
	assert_ptr_equal(out, data);
	assert_int_equal(data->refcount, 2);
	json_decref(out);
	assert_int_equal(data->refcount, 1);

	/* Through a group, on the compact form. */
	assert_non_null(ss);
	s = qc_streams_get_live(ss, "S");
	assert_non_null(s);
	assert_int_equal(qc_stream_subscribe(ss, s, &c.subs, &c, f_px, 2, &sub), 0);
	cout = qc_group_filter(sub->group, cdata);
	assert_cobj(cout, "{\"price\":1.5}");
	qc_cobj_unref(&cout);
	assert_int_equal(qc_stream_set_filter(ss, sub, f_pv, 2), 0);
	cout = qc_group_filter(sub->group, cdata);
	assert_cobj(cout, "{\"price\":1.5,\"volume\":100}");
	qc_cobj_unref(&cout);
	assert_int_equal(qc_stream_set_filter(ss, sub, f_x, 2), 0);
	assert_null(qc_group_filter(sub->group, cdata));
	assert_int_equal(qc_stream_set_filter(ss, sub, NULL, 0), 0);
	cout = qc_group_filter(sub->group, cdata);
	assert_ptr_equal(cout, cdata);
	assert_int_equal(cdata->refs, 2);
	qc_cobj_unref(&cout);
	assert_int_equal(cdata->refs, 1);
	qc_cobj_unref(&cdata);
	json_decref(data);
	qc_stream_unsubscribe_all(ss, &c.subs);
	qc_streams_free(ss);
}

/*
 * Random subscribe / unsubscribe / set_filter / unsubscribe_all over a few streams and field
 * sets, checked against a model (which set each connection has on each stream) and by
 * counting distinct sets per stream against the groups.
 */
#define NCONN   40
#define NSTREAM 3
#define NSET    5

static const char *const sets[NSET][3] = {
    {NULL}, {"a"}, {"a", "b"}, {"b", "a"}, {"c", "b", "c"},
};
static const size_t set_len[NSET] = {0, 1, 2, 2, 3};
static const int set_class[NSET] = {0, 1, 2, 2, 3}; /* equal field sets share a class */
static const size_t class_nfields[4] = {0, 1, 2, 2};

static void test_random_subscriptions(void **state)
{
	struct qc_streams *ss = new_reg(4, 4, NSTREAM);
	struct fake_conn *c = calloc(NCONN, sizeof(*c));
	int model[NCONN][NSTREAM]; /* set index + 1, 0 = not subscribed */
	struct qc_stream *st[NSTREAM];
	int i, j, k, op, round, ci, si, cls, used[4];
	uint64_t total;
	uint32_t per_stream, groups;
	struct qc_sub *sub;

	(void)state;
	assert_non_null(ss);
	assert_non_null(c);
	memset(model, 0, sizeof(model));
	for (i = 0; i < NSTREAM; i++) {
		char sym[8];

		snprintf(sym, sizeof(sym), "S%d", i);
		st[i] = qc_streams_get_live(ss, sym);
		assert_non_null(st[i]);
	}
	srand(7);
	for (round = 0; round < 20000; round++) {
		ci = rand() % NCONN;
		si = rand() % NSTREAM;
		k = rand() % NSET;
		op = rand() % 10;
		if (op < 5) {
			int ret = qc_stream_subscribe(ss, st[si], &c[ci].subs, &c[ci], sets[k],
			                              set_len[k], NULL);

			assert_int_equal(ret, model[ci][si] ? -EEXIST : 0);
			if (!ret)
				model[ci][si] = k + 1;
		} else if (op < 8) {
			assert_int_equal(qc_stream_unsubscribe(ss, st[si], &c[ci].subs),
			                 model[ci][si] ? 0 : -ENOENT);
			model[ci][si] = 0;
		} else if (op < 9) {
			sub = qc_sub_set_find(&c[ci].subs, st[si]);
			assert_int_equal(sub != NULL, model[ci][si] != 0);
			if (sub) {
				assert_int_equal(qc_stream_set_filter(ss, sub, sets[k], set_len[k]),
				                 0);
				model[ci][si] = k + 1;
			}
		} else if (rand() % 8 == 0) {
			qc_stream_unsubscribe_all(ss, &c[ci].subs);
			for (j = 0; j < NSTREAM; j++)
				model[ci][j] = 0;
		}

		if (round % 50)
			continue;
		total = 0;
		for (j = 0; j < NSTREAM; j++) {
			memset(used, 0, sizeof(used));
			per_stream = 0;
			for (i = 0; i < NCONN; i++) {
				if (!model[i][j]) {
					assert_null(qc_sub_set_find(&c[i].subs, st[j]));
					continue;
				}
				cls = set_class[model[i][j] - 1];
				used[cls]++;
				per_stream++;
				sub = qc_sub_set_find(&c[i].subs, st[j]);
				assert_non_null(sub);
				assert_ptr_equal(sub->conn, &c[i]);
				assert_int_equal(qc_group_nfields(sub->group), class_nfields[cls]);
			}
			groups = 0;
			for (i = 0; i < 4; i++)
				groups += used[i] ? 1 : 0;
			assert_int_equal(count_groups(st[j]), groups);
			assert_int_equal(check_stream(st[j]), per_stream);
			total += per_stream;
		}
		assert_int_equal(qc_streams_nsubs(ss), total);
		for (i = 0; i < NCONN; i++) {
			uint32_t n = 0;

			for (j = 0; j < NSTREAM; j++)
				n += model[i][j] ? 1 : 0;
			assert_int_equal(c[i].subs.count, n);
		}
	}
	/* Leave some subscriptions in place: freeing the registry must release them. */
	qc_streams_free(ss);
	for (i = 0; i < NCONN; i++) {
		assert_int_equal(c[i].subs.count, 0);
		assert_null(c[i].subs.by_stream);
	}
	free(c);
}

/* ---- lifetimes: subscribe-only streams, idle streams and the sweep ---------------------- */

struct fake_clock {
	int64_t now;
	unsigned reads;
};

static int64_t fake_now(void *ctx)
{
	struct fake_clock *k = ctx;

	k->reads++;
	return k->now;
}

static struct qc_streams *new_timed(struct fake_clock *k, uint32_t max_symbols,
                                    uint32_t max_subscribe_only, uint32_t ttl_s)
{
	struct qc_streams_opts o = {
	    .buffer_size = 8,
	    .dedup_window = 8,
	    .max_symbols = max_symbols,
	    .max_subscribe_only = max_subscribe_only,
	    .idle_ttl_s = ttl_s,
	    .clock = fake_now,
	    .clock_ctx = k,
	};
	struct qc_streams *ss = qc_streams_new(&o);

	assert_non_null(ss);
	return ss;
}

static struct qc_streams_counts counts(const struct qc_streams *ss)
{
	struct qc_streams_counts n;

	qc_streams_counts(ss, &n);
	assert_int_equal(n.streams, n.with_ticks + n.subscribe_only);
	assert_int_equal(n.streams, qc_streams_count(ss));
	assert_int_equal(n.subscriptions, qc_streams_nsubs(ss));
	return n;
}

/*
 * A subscribe builds no ring, window or snapshot; the first tick does. Subscribe-only streams
 * go with their last subscriber, and both kinds are bounded apart: subscribe-only streams at
 * their cap leave the publish room untouched, and the other way round.
 */
static void test_subscribe_only_streams(void **state)
{
	struct fake_clock k = {.now = 1000};
	struct qc_streams *ss = new_timed(&k, 2, 3, 60);
	struct fake_conn a = {.id = 1}, b = {.id = 2};
	struct qc_stream *s[4], *p, *q;
	struct qc_streams_counts n;
	struct qc_tick t;
	uint64_t id;
	char sym[8];
	int i;

	(void)state;
	for (i = 0; i < 3; i++) {
		snprintf(sym, sizeof(sym), "W%d", i);
		s[i] = qc_streams_get(ss, sym);
		assert_non_null(s[i]);
		assert_false(qc_stream_has_ticks(s[i]));
		assert_int_equal(qc_stream_subscribe(ss, s[i], &a.subs, &a, NULL, 0, NULL), 0);
		/* what recovery and get_market_data read is there, empty */
		assert_int_equal(qc_stream_last_seq(s[i]), 0);
		assert_int_equal(qc_stream_oldest_seq(s[i]), 0);
		assert_false(qc_stream_tick(s[i], 1, &t));
		assert_cobj(qc_stream_snapshot(s[i]), "{}");
		assert_int_equal(json_object_size(qc_stream_snapshot_json(s[i])), 0);
		assert_false(qc_stream_seen(s[i], "m1"));
	}
	n = counts(ss);
	assert_int_equal(n.subscribe_only, 3);
	assert_int_equal(n.with_ticks, 0);
	assert_int_equal(n.idle, 0);

	/* at max_subscribe_only: no new subscribe-only symbol ... */
	errno = 0;
	assert_null(qc_streams_get(ss, "W3"));
	assert_int_equal(errno, ENOSPC);
	assert_null(qc_streams_find(ss, "W3"));
	/* ... but a publisher still creates streams, up to max_symbols */
	p = qc_streams_get_live(ss, "P0");
	assert_non_null(p);
	assert_true(qc_stream_has_ticks(p));
	assert_int_equal(apply(p, "{\"x\":1}", "m1", false, 0, 1), QC_TICK_ACCEPTED);
	/* a subscribe-only symbol gets its ring with its first tick (the same stream, seq 1) */
	id = qc_stream_id(s[0]);
	assert_int_equal(apply(s[0], "{\"x\":2}", "m1", false, 0, 2), QC_TICK_ACCEPTED);
	assert_true(qc_stream_has_ticks(s[0]));
	assert_int_equal(qc_stream_id(s[0]), id);
	assert_int_equal(qc_stream_last_seq(s[0]), 1);
	assert_true(qc_stream_seen(s[0], "m1"));
	assert_cobj(qc_stream_snapshot(s[0]), "{\"x\":2}");
	n = counts(ss);
	assert_int_equal(n.with_ticks, 2);
	assert_int_equal(n.subscribe_only, 2);
	assert_int_equal(n.idle, 1); /* P0: ticks, no subscriber */
	/* max_symbols streams have ticks: no third one, by publish or by a first tick */
	errno = 0;
	assert_null(qc_streams_get_live(ss, "P1"));
	assert_int_equal(errno, ENOSPC);
	assert_null(qc_streams_find(ss, "P1"));
	assert_int_equal(apply(s[1], "{\"x\":3}", NULL, false, 0, 3), -ENOSPC);
	assert_false(qc_stream_has_ticks(s[1]));
	errno = 0;
	assert_null(qc_streams_get_live(ss, "W1"));
	assert_int_equal(errno, ENOSPC);
	assert_ptr_equal(qc_streams_find(ss, "W1"), s[1]); /* still there, subscribed */
	/* and a subscribe-only slot came free with W0's first tick */
	q = qc_streams_get(ss, "W3");
	assert_non_null(q);
	assert_int_equal(qc_stream_subscribe(ss, q, &b.subs, &b, NULL, 0, NULL), 0);

	/* the last subscriber of a subscribe-only stream takes it along */
	assert_int_equal(qc_stream_subscribe(ss, s[1], &b.subs, &b, NULL, 0, NULL), 0);
	assert_int_equal(qc_stream_unsubscribe(ss, s[1], &a.subs), 0);
	assert_ptr_equal(qc_streams_find(ss, "W1"), s[1]); /* b still holds it */
	assert_int_equal(qc_stream_unsubscribe(ss, s[1], &b.subs), 0);
	assert_null(qc_streams_find(ss, "W1"));
	n = counts(ss);
	assert_int_equal(n.subscribe_only_freed, 1);
	assert_int_equal(n.subscribe_only, 2); /* W2, W3 */
	/* unsubscribe_all too; a stream with ticks stays, idle */
	qc_stream_unsubscribe_all(ss, &a.subs); /* W0 (ticks), W2 */
	assert_null(qc_streams_find(ss, "W2"));
	assert_ptr_equal(qc_streams_find(ss, "W0"), s[0]);
	n = counts(ss);
	assert_int_equal(n.subscribe_only_freed, 2);
	assert_int_equal(n.subscribe_only, 1);
	assert_int_equal(n.idle, 2);
	assert_int_equal(n.idle_freed, 0);

	/* a stream got for a subscribe that did not happen is released; others are not */
	p = qc_streams_get(ss, "W9");
	assert_non_null(p);
	assert_int_equal(
	    qc_stream_subscribe(ss, p, &b.subs, &b, (const char *const[]){""}, 1, NULL), -EINVAL);
	qc_streams_release(ss, p);
	assert_null(qc_streams_find(ss, "W9"));
	qc_streams_release(ss, s[0]); /* has ticks: stays */
	qc_streams_release(ss, q);    /* subscribed: stays */
	assert_ptr_equal(qc_streams_find(ss, "W0"), s[0]);
	assert_ptr_equal(qc_streams_find(ss, "W3"), q);

	/* with max_subscribe_only 0 nothing can be subscribed before it has ticks */
	qc_streams_free(ss);
	assert_int_equal(b.subs.count, 0);
	ss = new_timed(&k, 2, 0, 60);
	errno = 0;
	assert_null(qc_streams_get(ss, "W0"));
	assert_int_equal(errno, ENOSPC);
	p = qc_streams_get_live(ss, "W0");
	assert_non_null(p);
	assert_ptr_equal(qc_streams_get(ss, "W0"), p);
	qc_streams_free(ss);
}

/*
 * A stream with ticks and no subscriber is freed idle_ttl_s after its last subscriber or tick,
 * by the sweep, and not before; a subscriber keeps it however long; a new life of the symbol
 * starts at seq 1 with a new id.
 */
static void test_idle_ttl(void **state)
{
	struct fake_clock k = {.now = 5000};
	struct qc_streams *ss = new_timed(&k, 10, 10, 30);
	struct fake_conn a = {.id = 1};
	struct qc_stream *s, *t, *u;
	struct qc_streams_counts n;
	uint64_t sid;

	(void)state;
	s = qc_streams_get_live(ss, "S"); /* published at 5 s, nobody subscribes */
	assert_int_equal(apply(s, "{\"p\":1}", "a", false, 0, 1), QC_TICK_ACCEPTED);
	t = qc_streams_get(ss, "T"); /* subscribed, then published */
	assert_int_equal(qc_stream_subscribe(ss, t, &a.subs, &a, NULL, 0, NULL), 0);
	assert_int_equal(apply(t, "{\"p\":1}", NULL, false, 0, 1), QC_TICK_ACCEPTED);
	assert_int_equal(counts(ss).idle, 1);
	sid = qc_stream_id(s);

	k.now = 5000 + 29999;
	assert_int_equal(qc_streams_sweep(ss, 1000), 0);
	assert_ptr_equal(qc_streams_find(ss, "S"), s);
	/* a tick restarts the TTL */
	assert_int_equal(apply(s, "{\"p\":2}", "b", false, 0, 2), QC_TICK_ACCEPTED);
	k.now += 29999;
	assert_int_equal(qc_streams_sweep(ss, 1000), 0);
	/* so does a subscriber, for as long as it stays */
	assert_int_equal(qc_stream_subscribe(ss, s, &a.subs, &a, NULL, 0, NULL), 0);
	assert_int_equal(counts(ss).idle, 0);
	k.now += 1000000;
	assert_int_equal(qc_streams_sweep(ss, 1000), 0);
	assert_int_equal(qc_stream_unsubscribe(ss, s, &a.subs), 0);
	assert_int_equal(counts(ss).idle, 1);
	k.now += 29999;
	assert_int_equal(qc_streams_sweep(ss, 1000), 0);
	k.now += 1;
	assert_int_equal(qc_streams_sweep(ss, 1000), 1);
	assert_null(qc_streams_find(ss, "S"));
	n = counts(ss);
	assert_int_equal(n.idle_freed, 1);
	assert_int_equal(n.idle, 0);
	assert_int_equal(n.with_ticks, 1); /* T, subscribed */

	/* the symbol again: a new life, seq from 1, nothing of the old ring or window */
	u = qc_streams_get_live(ss, "S");
	assert_non_null(u);
	assert_true(qc_stream_id(u) > sid);
	assert_int_equal(qc_stream_last_seq(u), 0);
	assert_false(qc_stream_seen(u, "a"));
	assert_int_equal(apply(u, "{\"q\":1}", "a", false, 0, 3), QC_TICK_ACCEPTED);
	assert_int_equal(qc_stream_last_seq(u), 1);
	assert_cobj(qc_stream_snapshot(u), "{\"q\":1}");
	/* and resubscribing after a free works like the first time */
	assert_int_equal(qc_stream_subscribe(ss, u, &a.subs, &a, NULL, 0, NULL), 0);
	assert_int_equal(qc_stream_unsubscribe(ss, t, &a.subs), 0);
	qc_stream_unsubscribe_all(ss, &a.subs);
	assert_int_equal(counts(ss).idle, 2);
	k.now += 30000;
	assert_int_equal(qc_streams_sweep(ss, 1000), 2);
	assert_int_equal(qc_streams_count(ss), 0);
	qc_streams_free(ss);
}

/* idle_ttl_s 0: never freed. The sweep reads no clock when nothing is idle. */
static void test_idle_ttl_off(void **state)
{
	struct fake_clock k = {.now = 1};
	struct qc_streams *ss = new_timed(&k, 10, 10, 0);
	struct qc_stream *s;

	(void)state;
	assert_int_equal(qc_streams_sweep(ss, 1000), 0);
	assert_int_equal(k.reads, 0);
	s = qc_streams_get_live(ss, "S");
	assert_int_equal(apply(s, "{\"p\":1}", NULL, false, 0, 1), QC_TICK_ACCEPTED);
	k.now = INT64_MAX / 2;
	assert_int_equal(qc_streams_sweep(ss, 1000), 0);
	assert_ptr_equal(qc_streams_find(ss, "S"), s);
	qc_streams_free(ss);

	k.reads = 0;
	ss = new_timed(&k, 10, 10, 1);
	assert_int_equal(qc_streams_sweep(ss, 1000), 0);
	assert_int_equal(k.reads, 0);
	qc_streams_free(ss);
}

/*
 * The sweep frees oldest first and spends about its budget (1 + the ticks of each ring), at
 * least one stream per call; what is left goes on the next call.
 */
static void test_sweep_budget(void **state)
{
	struct fake_clock k = {.now = 0};
	struct qc_streams *ss = new_timed(&k, 10, 10, 1);
	struct qc_stream *s;
	char sym[8];

	(void)state;
	for (int i = 0; i < 5; i++) {
		snprintf(sym, sizeof(sym), "B%d", i);
		s = qc_streams_get_live(ss, sym);
		for (int j = 0; j < 3; j++) /* 3 ticks: each costs 4 */
			assert_int_equal(apply(s, "{\"p\":1}", NULL, false, 0, j),
			                 QC_TICK_ACCEPTED);
		k.now += 10;
	}
	k.now = 1000 + 25; /* B0 .. B2 are due */
	assert_int_equal(qc_streams_sweep(ss, 8), 2);
	assert_null(qc_streams_find(ss, "B0"));
	assert_null(qc_streams_find(ss, "B1"));
	assert_int_equal(qc_streams_sweep(ss, 1), 1); /* at least one */
	assert_null(qc_streams_find(ss, "B2"));
	assert_int_equal(qc_streams_sweep(ss, 1000), 0);
	k.now = 1000 + 40;
	assert_int_equal(qc_streams_sweep(ss, 1000), 2);
	assert_int_equal(qc_streams_count(ss), 0);
	assert_int_equal(counts(ss).idle_freed, 5);
	qc_streams_free(ss);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_registry),
	    cmocka_unit_test(test_seq_and_verdicts),
	    cmocka_unit_test(test_apply_seq),
	    cmocka_unit_test(test_versions_start_anywhere),
	    cmocka_unit_test(test_dedup_window),
	    cmocka_unit_test(test_long_message_id),
	    cmocka_unit_test(test_ring_wrap),
	    cmocka_unit_test(test_ring_of_one),
	    cmocka_unit_test(test_apply_enomem_changes_nothing),
	    cmocka_unit_test(test_snapshot_merge),
	    cmocka_unit_test(test_subscribe_groups),
	    cmocka_unit_test(test_bad_fields),
	    cmocka_unit_test(test_set_filter),
	    cmocka_unit_test(test_fields_filter),
	    cmocka_unit_test(test_random_subscriptions),
	    cmocka_unit_test(test_subscribe_only_streams),
	    cmocka_unit_test(test_idle_ttl),
	    cmocka_unit_test(test_idle_ttl_off),
	    cmocka_unit_test(test_sweep_budget),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
