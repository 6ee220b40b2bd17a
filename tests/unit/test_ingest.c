/*
 * Unit tests for the publish scanner (src/ingest.c). Whenever it reads a publish, each tick's
 * data must be what jansson prints for the same text (QC_JSON_DUMP), with the same symbol,
 * message id, version and timestamp; whenever jansson would refuse the text, or the publish
 * checks would refuse a tick, it must give up (false) so that the jansson path answers.
 * Random numbers and strings check the first two against jansson itself; a list of frames
 * outside its form checks that it gives up.
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

#include "quotecast/cobj.h"
#include "quotecast/ingest.h"

#define FLAGS (JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15))

static struct qc_ingest in;

static int setup(void **state)
{
	(void)state;
	qc_ingest_init(&in);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	qc_ingest_free(&in);
	return 0;
}

static bool scan_frame(const char *payload)
{
	char buf[65536];
	int n = snprintf(buf, sizeof(buf),
	                 "{\"type\":\"request\",\"action\":\"publish_market_data\",\"payload\":%s}",
	                 payload);

	assert_true(n > 0 && (size_t)n < sizeof(buf));
	return qc_ingest_scan_request(&in, buf, (size_t)n);
}

/* Tick @i's data is what jansson prints for @data_text, member by member too. */
static void assert_data(size_t i, const char *data_text)
{
	json_t *j = json_loads(data_text, JSON_REJECT_DUPLICATES, NULL), *v;
	struct qc_tick_in t;
	char *want;
	const char *key;
	size_t m = 0;

	assert_non_null(j);
	want = json_dumps(j, FLAGS);
	qc_ingest_tick_in(&in, i, 0, &t);
	if (t.data->len != strlen(want) || memcmp(t.data->text, want, t.data->len))
		fail_msg("got %.*s, want %s", (int)t.data->len, t.data->text, want);
	assert_int_equal(t.data->n, json_object_size(j));
	json_object_foreach (j, key, v) {
		char *vt = json_dumps(v, FLAGS);
		size_t klen, vlen;
		const char *k = qc_cobj_key(t.data, m, &klen),
		           *val = qc_cobj_value(t.data, m, &vlen);

		assert_int_equal(klen, strlen(key));
		assert_memory_equal(k, key, klen);
		assert_int_equal(vlen, strlen(vt));
		assert_memory_equal(val, vt, vlen);
		free(vt);
		m++;
	}
	free(want);
	json_decref(j);
}

static void test_plain_ticks(void **state)
{
	static const char *const datas[] = {
	    "{\"price\":1850.31,\"bid\":1850.30,\"ask\":1850.32,\"volume\":100}",
	    "{\"price\":100.000,\"volume\":-5,\"flag\":true,\"off\":false,\"none\":null}",
	    "{\"r\":0.0001,\"z\":-0.0,\"o\":0.0,\"n\":0,\"neg\":-0.5,\"i\":-123456789012345678}",
	    "{\"big\":123456789012345.0,\"x\":0.123456789012345,\"y\":9.99,\"w\":99999999999999.9}",
	    "{\"é\":\"ü\",\"name\":\"贵州茅台\",\"emoji\":\"😀\",\"del\":\"a\x7f b/\",\"sp "
	    "ace\":\"\"}",
	    "{ \"price\" : 1.5 ,\n\t\"bid\" :2\r\n}",
	    "{\"k\":\"}{][,:\"}",
	};
	char payload[4096];

	(void)state;
	for (size_t i = 0; i < sizeof(datas) / sizeof(datas[0]); i++) {
		struct qc_tick_in t;

		snprintf(payload, sizeof(payload),
		         "{\"ticks\":[{\"symbol\":\"S.1\",\"data\":%s,\"message_id\":\"m-%zu\","
		         "\"version\":-3,\"timestamp\":17},{\"data\":%s,\"symbol\":\"T\"}]}",
		         datas[i], i, datas[i]);
		if (!scan_frame(payload))
			fail_msg("refused %s", datas[i]);
		assert_int_equal(in.n, 2);
		assert_string_equal(qc_ingest_symbol(&in, 0), "S.1");
		assert_string_equal(qc_ingest_symbol(&in, 1), "T");
		assert_data(0, datas[i]);
		assert_data(1, datas[i]);
		qc_ingest_tick_in(&in, 0, 99, &t);
		assert_true(t.has_version);
		assert_int_equal(t.version, -3);
		assert_int_equal(t.timestamp, 17);
		assert_non_null(t.message_id);
		qc_ingest_tick_in(&in, 1, 99, &t);
		assert_false(t.has_version);
		assert_int_equal(t.timestamp, 99);
		assert_null(t.message_id);
		assert_null(qc_ingest_id(&in, in.request_id));
	}
}

static void test_envelopes_and_bodies(void **state)
{
	static const char tick[] = "{\"symbol\":\"A\",\"data\":{\"p\":1}}";
	char buf[1024];
	struct qc_tick_in t;
	int n;

	(void)state;
	/* keys in any order, ids, nulls, whitespace */
	n = snprintf(buf, sizeof(buf),
	             " { \"request_id\" : \"r1\", \"payload\": {\"ticks\": [ %s , %s ] },"
	             "\"trace_id\":null,\"action\":\"publish_market_data\",\"type\":\"request\"}\n",
	             tick, tick);
	assert_true(qc_ingest_scan_request(&in, buf, (size_t)n));
	assert_int_equal(in.n, 2);
	assert_string_equal(qc_ingest_id(&in, in.request_id), "r1");
	assert_null(qc_ingest_id(&in, in.trace_id));
	/* one tick as the payload */
	n = snprintf(buf, sizeof(buf),
	             "{\"type\":\"request\",\"action\":\"publish_market_data\",\"trace_id\":\"t\","
	             "\"payload\":{\"symbol\":\"A\",\"message_id\":null,\"version\":null,"
	             "\"timestamp\":null,\"data\":{\"p\":1}}}");
	assert_true(qc_ingest_scan_request(&in, buf, (size_t)n));
	assert_int_equal(in.n, 1);
	assert_string_equal(qc_ingest_id(&in, in.trace_id), "t");
	qc_ingest_tick_in(&in, 0, 5, &t);
	assert_null(t.message_id);
	assert_false(t.has_version);
	assert_int_equal(t.timestamp, 5);
	/* HTTP bodies */
	n = snprintf(buf, sizeof(buf), "[%s,%s,%s]", tick, tick, tick);
	assert_true(qc_ingest_scan_body(&in, buf, (size_t)n));
	assert_int_equal(in.n, 3);
	n = snprintf(buf, sizeof(buf), "{\"ticks\":[%s]}", tick);
	assert_true(qc_ingest_scan_body(&in, buf, (size_t)n));
	assert_int_equal(in.n, 1);
	assert_true(qc_ingest_scan_body(&in, tick, strlen(tick)));
	assert_int_equal(in.n, 1);
	/* a request frame is not a body, nor the other way round */
	assert_false(qc_ingest_scan_request(&in, tick, strlen(tick)));
	n = snprintf(buf, sizeof(buf),
	             "{\"type\":\"request\",\"action\":\"publish_market_data\",\"payload\":%s}",
	             tick);
	assert_false(qc_ingest_scan_body(&in, buf, (size_t)n));
}

/* Everything here is left to jansson: outside the scanner's form, or refused by it. */
static void test_gives_up(void **state)
{
	static const char *const payloads[] = {
	    /* escapes, nesting, exponents, numbers printed otherwise */
	    "{\"symbol\":\"A\",\"data\":{\"p\":\"a\\\"b\"}}",
	    "{\"symbol\":\"A\",\"data\":{\"p\\u0041\":1}}",
	    "{\"symbol\":\"A\",\"data\":{\"p\":{\"x\":1}}}",
	    "{\"symbol\":\"A\",\"data\":{\"p\":[1]}}",
	    "{\"symbol\":\"A\",\"data\":{\"p\":1e5}}",
	    "{\"symbol\":\"A\",\"data\":{\"p\":1.5E-3}}",
	    "{\"symbol\":\"A\",\"data\":{\"p\":-0}}",
	    "{\"symbol\":\"A\",\"data\":{\"p\":0.00001}}",
	    "{\"symbol\":\"A\",\"data\":{\"p\":1234567890123456.0}}",
	    "{\"symbol\":\"A\",\"data\":{\"p\":0.1234567890123456}}",
	    "{\"symbol\":\"A\",\"data\":{\"p\":1234567890123456789}}",
	    "{\"symbol\":\"A\",\"data\":{\"p\":99999999999999999999999}}",
	    /* not JSON */
	    "{\"symbol\":\"A\",\"data\":{\"p\":01}}",
	    "{\"symbol\":\"A\",\"data\":{\"p\":1.}}",
	    "{\"symbol\":\"A\",\"data\":{\"p\":.5}}",
	    "{\"symbol\":\"A\",\"data\":{\"p\":+1}}",
	    "{\"symbol\":\"A\",\"data\":{\"p\":tru}}",
	    "{\"symbol\":\"A\",\"data\":{\"p\":truex}}",
	    "{\"symbol\":\"A\",\"data\":{\"p\":1,}}",
	    "{\"symbol\":\"A\",\"data\":{\"p\":\"\x01\"}}",
	    "{\"symbol\":\"A\",\"data\":{\"p\":\"\xc3\"}}",
	    "{\"symbol\":\"A\",\"data\":{\"p\":\"\xc0\x80\"}}",
	    "{\"symbol\":\"A\",\"data\":{\"p\":\"\xed\xa0\x80\"}}",
	    "{\"symbol\":\"A\",\"data\":{\"p\":\"\xf4\x90\x80\x80\"}}",
	    "{\"symbol\":\"A\",\"data\":{\"p\":\"\xff\"}}",
	    /* duplicates (jansson refuses them), unknown keys */
	    "{\"symbol\":\"A\",\"data\":{\"p\":1,\"p\":2}}",
	    "{\"symbol\":\"A\",\"symbol\":\"B\",\"data\":{\"p\":1}}",
	    "{\"symbol\":\"A\",\"data\":{\"p\":1},\"extra\":1}",
	    "{\"ticks\":[{\"symbol\":\"A\",\"data\":{\"p\":1}}],\"other\":1}",
	    /* ticks the publish checks refuse */
	    "{\"symbol\":\"A\",\"data\":{}}",
	    "{\"symbol\":\"A\"}",
	    "{\"data\":{\"p\":1}}",
	    "{\"symbol\":\"bad symbol\",\"data\":{\"p\":1}}",
	    "{\"symbol\":\"\",\"data\":{\"p\":1}}",
	    "{\"symbol\":\"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456\",\"data\":{\"p\":1}}",
	    "{\"symbol\":1,\"data\":{\"p\":1}}",
	    "{\"symbol\":\"A\",\"data\":{\"\":1}}",
	    "{\"symbol\":\"A\",\"data\":{\"a\x7f\":1}}",
	    "{\"symbol\":\"A\",\"data\":{\"p\":1},\"message_id\":5}",
	    "{\"symbol\":\"A\",\"data\":{\"p\":1},\"version\":1.5}",
	    "{\"symbol\":\"A\",\"data\":{\"p\":1},\"version\":\"1\"}",
	    "{\"symbol\":\"A\",\"data\":{\"p\":1},\"version\":9223372036854775808}",
	    "{\"symbol\":\"A\",\"data\":{\"p\":1},\"timestamp\":-1}",
	    "{\"symbol\":\"A\",\"data\":[1]}",
	    "{\"ticks\":[]}",
	    "{\"ticks\":{}}",
	    "{}",
	    "null",
	    "[]",
	};
	static const char *const frames[] = {
	    "{\"type\":\"request\",\"action\":\"send_message\",\"payload\":{}}",
	    "{\"type\":\"ping\"}",
	    "{\"type\":\"request\",\"action\":\"publish_market_data\"}",
	    "{\"type\":\"request\",\"action\":\"publish_market_data\",\"payload\":null}",
	    "{\"type\":\"request\",\"action\":\"publish_market_data\",\"payload\":{\"symbol\":"
	    "\"A\",\"data\":{\"p\":1}},\"request_id\":7}",
	    "{\"type\":\"request\",\"action\":\"publish_market_data\",\"payload\":{\"symbol\":"
	    "\"A\",\"data\":{\"p\":1}},\"x\":1}",
	    "{\"type\":\"request\",\"type\":\"request\",\"action\":\"publish_market_data\","
	    "\"payload\":{\"symbol\":\"A\",\"data\":{\"p\":1}}}",
	    "{\"type\":\"request\",\"action\":\"publish_market_data\",\"payload\":{\"symbol\":"
	    "\"A\",\"data\":{\"p\":1}}} x",
	    "\xef\xbb\xbf{\"type\":\"request\",\"action\":\"publish_market_data\",\"payload\":{"
	    "\"symbol\":\"A\",\"data\":{\"p\":1}}}",
	};
	char big[40000], *p;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++)
		if (scan_frame(payloads[i]))
			fail_msg("took %s", payloads[i]);
	for (i = 0; i < sizeof(frames) / sizeof(frames[0]); i++)
		assert_false(qc_ingest_scan_request(&in, frames[i], strlen(frames[i])));
	/* a NUL byte inside */
	assert_false(qc_ingest_scan_request(&in, "{\"type\":\"req\0uest\"}", 20));

	/* 257 fields, a 65-byte field name, a 129-byte message id */
	p = big + sprintf(big, "{\"symbol\":\"A\",\"data\":{");
	for (i = 0; i < 257; i++)
		p += sprintf(p, "%s\"f%zu\":1", i ? "," : "", i);
	sprintf(p, "}}");
	assert_false(scan_frame(big));
	sprintf(big, "{\"symbol\":\"A\",\"data\":{\"%065d\":1}}", 0);
	assert_false(scan_frame(big));
	sprintf(big, "{\"symbol\":\"A\",\"data\":{\"%064d\":1}}", 0);
	assert_true(scan_frame(big));
	sprintf(big, "{\"symbol\":\"A\",\"data\":{\"p\":1},\"message_id\":\"%0129d\"}", 0);
	assert_false(scan_frame(big));
	sprintf(big, "{\"symbol\":\"A\",\"data\":{\"p\":1},\"message_id\":\"%0128d\"}", 0);
	assert_true(scan_frame(big));
	/* 256 fields are fine */
	p = big + sprintf(big, "{\"symbol\":\"A\",\"data\":{");
	for (i = 0; i < 256; i++)
		p += sprintf(p, "%s\"f%zu\":1", i ? "," : "", i);
	sprintf(p, "}}");
	assert_true(scan_frame(big));
}

static uint64_t rng = 0x2545f4914f6cdd1dULL;

static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

/*
 * Random number texts (some not JSON): when the scanner takes one, its text must be what
 * jansson prints for it; when jansson refuses one, so must the scanner.
 */
static void test_random_numbers(void **state)
{
	char num[128], payload[256];
	int taken = 0;

	(void)state;
	for (int round = 0; round < 200000; round++) {
		size_t n = 0, k;

		if (rnd(4) == 0)
			num[n++] = '-';
		k = rnd(5) == 0 ? 1 : rnd(20) + 1;
		for (size_t i = 0; i < k; i++)
			num[n++] = (char)('0' + (i == 0 && k > 1 && rnd(8) ? rnd(9) + 1 : rnd(10)));
		if (rnd(3)) {
			num[n++] = '.';
			k = rnd(20);
			for (size_t i = 0; i < k; i++)
				num[n++] = (char)(rnd(3) == 0 ? '0' : '0' + rnd(10));
		}
		if (rnd(20) == 0) {
			num[n++] = rnd(2) ? 'e' : 'E';
			n += (size_t)sprintf(num + n, "%d", (int)rnd(40) - 20);
		}
		num[n] = '\0';
		snprintf(payload, sizeof(payload), "{\"symbol\":\"A\",\"data\":{\"v\":%s}}", num);
		{
			char doc[160];
			json_t *j;

			snprintf(doc, sizeof(doc), "{\"v\":%s}", num);
			j = json_loads(doc, 0, NULL);
			if (!scan_frame(payload)) {
				json_decref(j);
				continue;
			}
			if (!j)
				fail_msg("took %s, which jansson refuses", num);
			taken++;
			assert_data(0, doc);
			json_decref(j);
		}
	}
	assert_true(taken > 50000);
}

/* Random strings of awkward bytes: taken ones print as jansson prints them. */
static void test_random_strings(void **state)
{
	static const unsigned char pool[] = {'a',  ' ',  '"',  '\\', 0x01, 0x1f, 0x7f, 0x80, 0xbf,
	                                     0xc2, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xed, 0xa0, 0xf0,
	                                     0x9f, 0x98, 0x80, 0xf4, 0x8f, 0xbf, 0xc0, 0xff, '/'};
	char str[64], payload[256], doc[128];
	int taken = 0;

	(void)state;
	for (int round = 0; round < 100000; round++) {
		size_t n = rnd(8), i;
		json_t *j;

		for (i = 0; i < n; i++)
			str[i] = (char)(rnd(3) ? pool[rnd(sizeof(pool))] : 'a' + rnd(26));
		str[n] = '\0';
		snprintf(payload, sizeof(payload), "{\"symbol\":\"A\",\"data\":{\"s\":\"%s\"}}",
		         str);
		snprintf(doc, sizeof(doc), "{\"s\":\"%s\"}", str);
		j = json_loads(doc, 0, NULL);
		if (scan_frame(payload)) {
			if (!j)
				fail_msg("took a string jansson refuses");
			taken++;
			assert_data(0, doc);
		}
		json_decref(j);
	}
	assert_true(taken > 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain_ticks),    cmocka_unit_test(test_envelopes_and_bodies),
	    cmocka_unit_test(test_gives_up),       cmocka_unit_test(test_random_numbers),
	    cmocka_unit_test(test_random_strings),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
