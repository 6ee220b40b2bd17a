/*
 * test_ratelimit: burst, exact refill, the burst cap, unlimited rate, clocks going backwards and
 * elapsed times large enough to overflow a naive multiplication.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "quotecast/ratelimit.h"

static void test_init(void **state)
{
	struct qc_rate r;

	(void)state;
	qc_rate_init(&r, 5, 1234);
	assert_int_equal(r.last_ms, 1234);
	assert_int_equal(r.milli, 5000);
	qc_rate_init(&r, UINT32_MAX, -7);
	assert_int_equal(r.last_ms, -7);
	assert_int_equal(r.milli, (uint64_t)UINT32_MAX * 1000);
}

static void test_burst_then_refuse(void **state)
{
	struct qc_rate r;
	int i;

	(void)state;
	qc_rate_init(&r, 5, 0);
	for (i = 0; i < 5; i++)
		assert_true(qc_rate_take(&r, 1, 5, 0));
	assert_false(qc_rate_take(&r, 1, 5, 0));
	assert_false(qc_rate_take(&r, 1, 5, 0));
	assert_int_equal(r.milli, 0);
}

static void test_refill(void **state)
{
	struct qc_rate r;

	(void)state;
	qc_rate_init(&r, 1, 0);
	assert_true(qc_rate_take(&r, 10, 1, 0));
	assert_false(qc_rate_take(&r, 10, 1, 0));

	/* 10 tokens/s is one token per 100 ms, counted exactly. */
	assert_false(qc_rate_take(&r, 10, 1, 99));
	assert_int_equal(r.milli, 990);
	assert_int_equal(r.last_ms, 99);
	assert_true(qc_rate_take(&r, 10, 1, 100));
	assert_int_equal(r.milli, 0);
	assert_false(qc_rate_take(&r, 10, 1, 150));
	assert_true(qc_rate_take(&r, 10, 1, 200));

	/* Sustained: 1 token/s gives exactly one take per second. */
	qc_rate_init(&r, 0, 0);
	assert_false(qc_rate_take(&r, 1, 2, 999));
	assert_true(qc_rate_take(&r, 1, 2, 1000));
	assert_false(qc_rate_take(&r, 1, 2, 1999));
	assert_true(qc_rate_take(&r, 1, 2, 2000));
}

static void test_cap_at_burst(void **state)
{
	struct qc_rate r;
	int i;

	(void)state;
	qc_rate_init(&r, 3, 0);
	for (i = 0; i < 3; i++)
		assert_true(qc_rate_take(&r, 1000, 3, 0));
	assert_false(qc_rate_take(&r, 1000, 3, 0));

	/* Ten seconds at 1000/s would be 10000 tokens; only 3 fit. */
	assert_true(qc_rate_take(&r, 1000, 3, 10000));
	assert_int_equal(r.milli, 2000);
	assert_true(qc_rate_take(&r, 1000, 3, 10000));
	assert_true(qc_rate_take(&r, 1000, 3, 10000));
	assert_false(qc_rate_take(&r, 1000, 3, 10000));

	/* A burst lowered after init caps the bucket on the next call. */
	qc_rate_init(&r, 10, 0);
	assert_true(qc_rate_take(&r, 1, 2, 0));
	assert_int_equal(r.milli, 1000);
	assert_true(qc_rate_take(&r, 1, 2, 0));
	assert_false(qc_rate_take(&r, 1, 2, 0));

	/* A burst of 0 with a rate refuses everything. */
	qc_rate_init(&r, 0, 0);
	assert_false(qc_rate_take(&r, 5, 0, 0));
	assert_false(qc_rate_take(&r, 5, 0, 1000000));
}

static void test_rate_zero_unlimited(void **state)
{
	struct qc_rate r;
	int i;

	(void)state;
	qc_rate_init(&r, 0, 50);
	for (i = 0; i < 10000; i++)
		assert_true(qc_rate_take(&r, 0, 0, 50));
	assert_true(qc_rate_take(&r, 0, 1, -1000));
	/* Unlimited does not touch the bucket. */
	assert_int_equal(r.milli, 0);
	assert_int_equal(r.last_ms, 50);
}

static void test_time_backwards(void **state)
{
	struct qc_rate r;

	(void)state;
	qc_rate_init(&r, 1, 1000);
	assert_true(qc_rate_take(&r, 1, 1, 1000));

	/* Going back refills nothing and does not move last_ms back. */
	assert_false(qc_rate_take(&r, 1, 1, 0));
	assert_int_equal(r.last_ms, 1000);
	assert_int_equal(r.milli, 0);
	assert_false(qc_rate_take(&r, 1, 1, INT64_MIN));
	assert_int_equal(r.last_ms, 1000);

	/* Had last_ms moved back, returning to 1000 would have refilled a token. */
	assert_false(qc_rate_take(&r, 1, 1, 1000));
	assert_false(qc_rate_take(&r, 1, 1, 1999));
	assert_true(qc_rate_take(&r, 1, 1, 2000));
}

static void test_large_elapsed(void **state)
{
	struct qc_rate r;
	uint64_t full = (uint64_t)UINT32_MAX * 1000;

	(void)state;
	/* The signed difference overflows and elapsed * rate overflows 64 bits. */
	qc_rate_init(&r, 0, INT64_MIN);
	assert_true(qc_rate_take(&r, UINT32_MAX, UINT32_MAX, INT64_MAX));
	assert_int_equal(r.milli, full - 1000);
	assert_int_equal(r.last_ms, INT64_MAX);

	/* 2^63 ms at 2 tokens/s is 2^64 milli-tokens, which wraps to 0 if multiplied first. */
	qc_rate_init(&r, 0, INT64_MIN);
	assert_true(qc_rate_take(&r, 2, 1, 0));
	assert_int_equal(r.milli, 0);

	/* Just one ms at the highest rate overshoots a small burst: capped, not wrapped. */
	qc_rate_init(&r, 0, 0);
	assert_true(qc_rate_take(&r, UINT32_MAX, 1, 1));
	assert_int_equal(r.milli, 0);

	/* A large but exact refill: 1e6 ms at 4 tokens/s is 4000 tokens, under the burst. */
	qc_rate_init(&r, 0, 0);
	assert_true(qc_rate_take(&r, 4, 5000, 1000000));
	assert_int_equal(r.milli, 4000000 - 1000);

	/* The exact boundary: the refill that just fills the bucket is not capped early. */
	qc_rate_init(&r, 0, 0);
	assert_true(qc_rate_take(&r, 3, 3, 1000));
	assert_int_equal(r.milli, 2000);
	qc_rate_init(&r, 0, 0);
	assert_true(qc_rate_take(&r, 3, 3, 999));
	assert_int_equal(r.milli, 2997 - 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_init),
	    cmocka_unit_test(test_burst_then_refuse),
	    cmocka_unit_test(test_refill),
	    cmocka_unit_test(test_cap_at_burst),
	    cmocka_unit_test(test_rate_zero_unlimited),
	    cmocka_unit_test(test_time_backwards),
	    cmocka_unit_test(test_large_elapsed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
