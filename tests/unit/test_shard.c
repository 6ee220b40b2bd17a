/*
 * test_shard: the consistent-hash ring of cluster.redis (stable assignment, an even spread,
 * few keys moving when a shard is added), Redis URL parsing and the reconnect back-off.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "quotecast/shard.h"

#define NKEYS 20000

static const char *const urls[] = {"redis://10.0.0.1:6379", "redis://10.0.0.2:6379",
                                   "redis://10.0.0.3:6379", "redis://10.0.0.4:6379"};

static uint32_t pick(const struct qc_shard_ring *r, int i)
{
	char key[32];
	int len = snprintf(key, sizeof(key), "qc:s:SYM%d", i);

	return qc_shard_pick(r, key, (size_t)len);
}

static void test_stable(void **state)
{
	struct qc_shard_ring a, b;
	int i;

	(void)state;
	assert_int_equal(qc_shard_ring_init(&a, urls, 3), 0);
	assert_int_equal(qc_shard_ring_init(&b, urls, 3), 0);
	for (i = 0; i < 1000; i++) {
		assert_int_equal(pick(&a, i), pick(&b, i)); /* the same on every node */
		assert_true(pick(&a, i) < 3);
	}
	qc_shard_ring_free(&a);
	qc_shard_ring_free(&b);
	assert_int_equal(qc_shard_ring_init(&a, urls, 0), -EINVAL);
	/* one shard: everything on it */
	assert_int_equal(qc_shard_ring_init(&a, urls, 1), 0);
	for (i = 0; i < 100; i++)
		assert_int_equal(pick(&a, i), 0);
	qc_shard_ring_free(&a);
}

static void test_balanced(void **state)
{
	struct qc_shard_ring r;
	uint32_t n, count[4];
	int i;

	(void)state;
	for (n = 2; n <= 4; n++) {
		memset(count, 0, sizeof(count));
		assert_int_equal(qc_shard_ring_init(&r, urls, n), 0);
		for (i = 0; i < NKEYS; i++)
			count[pick(&r, i)]++;
		/* each within 25 % of its fair share with 160 points per shard */
		for (i = 0; i < (int)n; i++) {
			assert_true(count[i] > NKEYS / n * 3 / 4);
			assert_true(count[i] < NKEYS / n * 5 / 4);
		}
		qc_shard_ring_free(&r);
	}
}

static void test_minimal_movement(void **state)
{
	struct qc_shard_ring three, four;
	uint32_t before, after;
	int i, moved = 0;

	(void)state;
	assert_int_equal(qc_shard_ring_init(&three, urls, 3), 0);
	assert_int_equal(qc_shard_ring_init(&four, urls, 4), 0);
	for (i = 0; i < NKEYS; i++) {
		before = pick(&three, i);
		after = pick(&four, i);
		if (before != after) {
			/* a key moves only to the new shard, never between the old ones */
			assert_int_equal(after, 3);
			moved++;
		}
	}
	/* about a quarter moves (a modulo would move three quarters) */
	assert_true(moved > NKEYS / 4 * 3 / 4);
	assert_true(moved < NKEYS / 4 * 5 / 4);
	qc_shard_ring_free(&three);
	qc_shard_ring_free(&four);
}

static void test_url(void **state)
{
	char host[64];
	uint16_t port;
	const char *why = NULL;

	(void)state;
	assert_int_equal(
	    qc_redis_url_parse("redis://127.0.0.1:6380", host, sizeof(host), &port, &why), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 6380);
	assert_int_equal(qc_redis_url_parse("redis://cache", host, sizeof(host), &port, &why), 0);
	assert_string_equal(host, "cache");
	assert_int_equal(port, 6379);
	assert_int_equal(qc_redis_url_parse("redis://[::1]:7000", host, sizeof(host), &port, &why),
	                 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 7000);
	assert_int_equal(qc_redis_url_parse("http://x:1", host, sizeof(host), &port, &why),
	                 -EINVAL);
	assert_string_equal(why, "must start with redis://");
	assert_int_equal(qc_redis_url_parse("redis://u:p@h:1", host, sizeof(host), &port, &why),
	                 -EINVAL);
	assert_int_equal(qc_redis_url_parse("redis://h:1/0", host, sizeof(host), &port, &why),
	                 -EINVAL);
	assert_int_equal(qc_redis_url_parse("redis://h:0", host, sizeof(host), &port, &why),
	                 -EINVAL);
	assert_int_equal(qc_redis_url_parse("redis://h:65536", host, sizeof(host), &port, &why),
	                 -EINVAL);
	assert_int_equal(qc_redis_url_parse("redis://h:", host, sizeof(host), &port, &why),
	                 -EINVAL);
	assert_int_equal(qc_redis_url_parse("redis://:1", host, sizeof(host), &port, &why),
	                 -EINVAL);
	assert_int_equal(qc_redis_url_parse("redis://[::1", host, sizeof(host), &port, &why),
	                 -EINVAL);
	/* found by fuzz_config_set: other bytes in the host made a config with no JSON form */
	assert_int_equal(qc_redis_url_parse("redis://h\x8b:1", host, sizeof(host), &port, &why),
	                 -EINVAL);
	assert_non_null(strstr(why, "the host may only have"));
	assert_int_equal(qc_redis_url_parse("redis://a:b:1", host, sizeof(host), &port, &why),
	                 -EINVAL);
	assert_int_equal(qc_redis_url_parse("redis://h x", host, sizeof(host), &port, &why),
	                 -EINVAL);
}

static void test_backoff(void **state)
{
	uint32_t step = 0, wait, i, r;

	(void)state;
	step = qc_backoff_next(0, 0, &wait);
	assert_int_equal(step, QC_BACKOFF_MIN_MS);
	assert_int_equal(wait, QC_BACKOFF_MIN_MS / 2);
	step = qc_backoff_next(step, 0xffffffffu, &wait);
	assert_int_equal(step, 200);
	assert_true(wait >= 100 && wait <= 200);
	for (i = 0; i < 20; i++) {
		r = i * 2654435761u;
		step = qc_backoff_next(step, r, &wait);
		assert_true(step <= QC_BACKOFF_MAX_MS);
		assert_true(wait >= step / 2 && wait <= step);
	}
	assert_int_equal(step, QC_BACKOFF_MAX_MS); /* capped */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_stable),           cmocka_unit_test(test_balanced),
	    cmocka_unit_test(test_minimal_movement), cmocka_unit_test(test_url),
	    cmocka_unit_test(test_backoff),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
