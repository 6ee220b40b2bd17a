/*
 * test_throttle: failed attempts per key with an injected clock: the window, the count that
 * starts again after it, clearing, keys that differ only in where the parts split, a clock
 * that goes back or is near the ends of int64, free and ended records taken before live ones,
 * eviction of the record whose window ends first, and a flood of made-up keys that never grows
 * the table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>

#include "quotecast/throttle.h"

#define MAX    3
#define WINDOW 60000u

static void test_window(void **state)
{
	struct qc_throttle *t = qc_throttle_new(64, 42);
	int64_t now = 1000;

	(void)state;
	assert_non_null(t);
	for (int i = 0; i < MAX; i++) {
		assert_int_equal(qc_throttle_check(t, "alice", "room", MAX, WINDOW, now), 0);
		qc_throttle_fail(t, "alice", "room", WINDOW, now);
		now += 100;
	}
	/* the window began at 1000: refused until 61000 */
	assert_int_equal(qc_throttle_check(t, "alice", "room", MAX, WINDOW, now), 61000 - now);
	assert_int_equal(qc_throttle_check(t, "alice", "room", MAX, WINDOW, 60999), 1);
	/* other users, other rooms: not affected */
	assert_int_equal(qc_throttle_check(t, "bob", "room", MAX, WINDOW, now), 0);
	assert_int_equal(qc_throttle_check(t, "alice", "room2", MAX, WINDOW, now), 0);
	/* a higher limit (a reload) lets it try again */
	assert_int_equal(qc_throttle_check(t, "alice", "room", MAX + 1, WINDOW, now), 0);

	/* after the window: allowed, and the count starts again */
	assert_int_equal(qc_throttle_check(t, "alice", "room", MAX, WINDOW, 61000), 0);
	qc_throttle_fail(t, "alice", "room", WINDOW, 61000);
	assert_int_equal(qc_throttle_check(t, "alice", "room", MAX, WINDOW, 61001), 0);
	qc_throttle_fail(t, "alice", "room", WINDOW, 61001);
	assert_int_equal(qc_throttle_check(t, "alice", "room", MAX, WINDOW, 61002), 0);
	qc_throttle_fail(t, "alice", "room", WINDOW, 61002);
	assert_int_equal(qc_throttle_check(t, "alice", "room", MAX, WINDOW, 61003), WINDOW - 3);
	assert_int_equal(qc_throttle_live(t, WINDOW, 61003), 1);
	assert_int_equal(qc_throttle_live(t, WINDOW, 61000 + WINDOW), 0);
	assert_int_equal(qc_throttle_evicted(t), 0);
	qc_throttle_free(t);
}

static void test_clear(void **state)
{
	struct qc_throttle *t = qc_throttle_new(64, 1);

	(void)state;
	for (int i = 0; i < MAX; i++)
		qc_throttle_fail(t, "u", "r", WINDOW, 0);
	assert_true(qc_throttle_check(t, "u", "r", MAX, WINDOW, 0) > 0);
	qc_throttle_clear(t, "u", "r");
	assert_int_equal(qc_throttle_check(t, "u", "r", MAX, WINDOW, 0), 0);
	assert_int_equal(qc_throttle_live(t, WINDOW, 0), 0);
	qc_throttle_clear(t, "never", "seen");
	qc_throttle_free(t);
}

/* "ab"+"c" and "a"+"bc" are different keys; so are "", "x" and "x", "". */
static void test_key_parts(void **state)
{
	struct qc_throttle *t = qc_throttle_new(64, 7);

	(void)state;
	for (int i = 0; i < MAX; i++) {
		qc_throttle_fail(t, "ab", "c", WINDOW, 0);
		qc_throttle_fail(t, "", "x", WINDOW, 0);
	}
	assert_true(qc_throttle_check(t, "ab", "c", MAX, WINDOW, 0) > 0);
	assert_int_equal(qc_throttle_check(t, "a", "bc", MAX, WINDOW, 0), 0);
	assert_true(qc_throttle_check(t, "", "x", MAX, WINDOW, 0) > 0);
	assert_int_equal(qc_throttle_check(t, "x", "", MAX, WINDOW, 0), 0);
	qc_throttle_free(t);
}

/* A clock that went back starts a new window; times near the ends of int64 do not overflow. */
static void test_clock_edges(void **state)
{
	struct qc_throttle *t = qc_throttle_new(64, 3);
	int64_t big = INT64_MAX - 10;

	(void)state;
	for (int i = 0; i < MAX; i++)
		qc_throttle_fail(t, "u", "r", WINDOW, 5000);
	assert_true(qc_throttle_check(t, "u", "r", MAX, WINDOW, 5000) > 0);
	assert_int_equal(qc_throttle_check(t, "u", "r", MAX, WINDOW, 4999), 0);
	qc_throttle_fail(t, "u", "r", WINDOW, 4999); /* a new window at 4999 */
	assert_int_equal(qc_throttle_check(t, "u", "r", MAX, WINDOW, 5000), 0);

	for (int i = 0; i < MAX; i++)
		qc_throttle_fail(t, "v", "r", UINT32_MAX, big);
	assert_int_equal(qc_throttle_check(t, "v", "r", MAX, UINT32_MAX, INT64_MAX),
	                 (int64_t)UINT32_MAX - 10);
	assert_int_equal(qc_throttle_check(t, "v", "r", MAX, UINT32_MAX, INT64_MIN), 0);

	for (int i = 0; i < MAX; i++)
		qc_throttle_fail(t, "w", "r", WINDOW, INT64_MIN);
	assert_int_equal(qc_throttle_check(t, "w", "r", MAX, WINDOW, INT64_MIN), WINDOW);
	assert_int_equal(qc_throttle_check(t, "w", "r", MAX, WINDOW, INT64_MAX), 0);
	qc_throttle_free(t);
}

/*
 * One set (8 records): ended records are taken before live ones; when all are live the one
 * whose window ends first goes (counted), the others stay throttled.
 */
static void test_one_set(void **state)
{
	struct qc_throttle *t = qc_throttle_new(1, 9);
	char user[16];

	(void)state;
	assert_int_equal(qc_throttle_capacity(t), QC_THROTTLE_WAYS);
	for (int i = 0; i < QC_THROTTLE_WAYS; i++) {
		snprintf(user, sizeof(user), "old%d", i);
		for (int j = 0; j < MAX; j++)
			qc_throttle_fail(t, user, "r", WINDOW, 0);
	}
	/* all ended: the new ones reuse them, nothing is evicted */
	for (int i = 0; i < QC_THROTTLE_WAYS; i++) {
		snprintf(user, sizeof(user), "u%d", i);
		for (int j = 0; j < MAX; j++)
			qc_throttle_fail(t, user, "r", WINDOW, WINDOW + i);
	}
	assert_int_equal(qc_throttle_evicted(t), 0);
	assert_int_equal(qc_throttle_live(t, WINDOW, WINDOW + 8), QC_THROTTLE_WAYS);
	for (int i = 0; i < QC_THROTTLE_WAYS; i++) {
		snprintf(user, sizeof(user), "u%d", i);
		assert_true(qc_throttle_check(t, user, "r", MAX, WINDOW, WINDOW + 8) > 0);
	}
	/* a ninth key: u0 (its window began first) makes way */
	qc_throttle_fail(t, "new", "r", WINDOW, WINDOW + 9);
	assert_int_equal(qc_throttle_evicted(t), 1);
	assert_int_equal(qc_throttle_check(t, "u0", "r", MAX, WINDOW, WINDOW + 9), 0);
	for (int i = 1; i < QC_THROTTLE_WAYS; i++) {
		snprintf(user, sizeof(user), "u%d", i);
		assert_true(qc_throttle_check(t, user, "r", MAX, WINDOW, WINDOW + 9) > 0);
	}
	assert_int_equal(qc_throttle_live(t, WINDOW, WINDOW + 9), QC_THROTTLE_WAYS);
	qc_throttle_free(t);
}

/* 200,000 made-up users: the table keeps its size; a key throttled just now stays throttled. */
static void test_flood(void **state)
{
	struct qc_throttle *t = qc_throttle_new(4096, 11);
	uint32_t cap = qc_throttle_capacity(t);
	char user[32];

	(void)state;
	assert_int_equal(cap, 4096);
	for (int i = 0; i < 200000; i++) {
		snprintf(user, sizeof(user), "made-up-%d", i);
		qc_throttle_fail(t, user, "room", WINDOW, i / 100);
	}
	assert_int_equal(qc_throttle_capacity(t), cap);
	assert_int_equal(qc_throttle_live(t, WINDOW, 2000), cap);
	assert_true(qc_throttle_evicted(t) >= 200000 - cap);
	for (int j = 0; j < MAX; j++)
		qc_throttle_fail(t, "real", "room", WINDOW, 2000);
	assert_true(qc_throttle_check(t, "real", "room", MAX, WINDOW, 2000) > 0);
	qc_throttle_free(t);

	/* sizes: rounded up to whole sets, capped */
	t = qc_throttle_new(0, 0);
	assert_int_equal(qc_throttle_capacity(t), QC_THROTTLE_WAYS);
	qc_throttle_free(t);
	t = qc_throttle_new(4097, 0);
	assert_int_equal(qc_throttle_capacity(t), 8192);
	qc_throttle_free(t);
	t = qc_throttle_new(UINT32_MAX, 0);
	assert_int_equal(qc_throttle_capacity(t), 1u << 20);
	qc_throttle_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_window),    cmocka_unit_test(test_clear),
	    cmocka_unit_test(test_key_parts), cmocka_unit_test(test_clock_edges),
	    cmocka_unit_test(test_one_set),   cmocka_unit_test(test_flood),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
