/*
 * Unit tests for the message-id window (src/dedup.c): membership before and after insert,
 * eviction order, ids inserted twice, tiny windows, binary ids, argument limits, growth from
 * a few ids to the window, and long random runs checked answer by answer against a plain-array
 * model.
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

#include "quotecast/dedup.h"

static bool seen(const struct qc_dedup *d, const char *id)
{
	return qc_dedup_seen(d, id, strlen(id));
}

static void insert(struct qc_dedup *d, const char *id)
{
	qc_dedup_insert(d, id, strlen(id));
}

static void test_new_limits(void **state)
{
	struct qc_dedup *d;

	(void)state;
	errno = 0;
	assert_null(qc_dedup_new(0));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(qc_dedup_new(QC_DEDUP_WINDOW_MAX + 1));
	assert_int_equal(errno, EINVAL);

	d = qc_dedup_new(5);
	assert_non_null(d);
	assert_int_equal(qc_dedup_window(d), 5);
	assert_int_equal(qc_dedup_count(d), 0);
	assert_false(seen(d, "a"));
	assert_false(seen(d, ""));
	qc_dedup_free(d);
	qc_dedup_free(NULL);
}

static void test_seen_after_insert(void **state)
{
	struct qc_dedup *d = qc_dedup_new(8);

	(void)state;
	assert_non_null(d);
	assert_false(seen(d, "m1"));
	insert(d, "m1");
	assert_true(seen(d, "m1"));
	assert_false(seen(d, "m2"));
	assert_false(seen(d, "m"));
	assert_false(seen(d, "m11"));
	insert(d, "m2");
	assert_true(seen(d, "m1"));
	assert_true(seen(d, "m2"));
	assert_int_equal(qc_dedup_count(d), 2);
	qc_dedup_free(d);
}

static void test_eviction_of_oldest(void **state)
{
	struct qc_dedup *d = qc_dedup_new(3);
	char id[16];
	int i;

	(void)state;
	assert_non_null(d);
	insert(d, "a");
	insert(d, "b");
	insert(d, "c");
	assert_int_equal(qc_dedup_count(d), 3);
	assert_true(seen(d, "a"));

	insert(d, "d"); /* window + 1: "a" leaves */
	assert_int_equal(qc_dedup_count(d), 3);
	assert_false(seen(d, "a"));
	assert_true(seen(d, "b"));
	assert_true(seen(d, "c"));
	assert_true(seen(d, "d"));

	insert(d, "e");
	assert_false(seen(d, "b"));
	assert_true(seen(d, "c"));

	/* An evicted id comes back as new, and is then evicted again in its turn. */
	insert(d, "a");
	assert_true(seen(d, "a"));
	assert_false(seen(d, "c"));
	assert_true(seen(d, "d"));
	assert_true(seen(d, "e"));
	insert(d, "f");
	insert(d, "g");
	assert_true(seen(d, "a"));
	insert(d, "h");
	assert_false(seen(d, "a"));

	/* Many rounds through the ring keep exactly the last three. */
	for (i = 0; i < 100; i++) {
		snprintf(id, sizeof(id), "x%d", i);
		insert(d, id);
	}
	for (i = 0; i < 100; i++) {
		snprintf(id, sizeof(id), "x%d", i);
		assert_int_equal(seen(d, id), i >= 97);
	}
	qc_dedup_free(d);
}

static void test_same_id_twice(void **state)
{
	struct qc_dedup *d = qc_dedup_new(3);

	(void)state;
	assert_non_null(d);
	insert(d, "a");
	insert(d, "b");
	insert(d, "a"); /* ring: a b a */
	assert_int_equal(qc_dedup_count(d), 3);
	insert(d, "c"); /* the older "a" leaves; the newer stays */
	assert_true(seen(d, "a"));
	assert_true(seen(d, "b"));
	assert_true(seen(d, "c"));
	insert(d, "d"); /* "b" leaves */
	assert_false(seen(d, "b"));
	assert_true(seen(d, "a"));
	insert(d, "e"); /* the newer "a" leaves */
	assert_false(seen(d, "a"));
	assert_true(seen(d, "c"));
	assert_true(seen(d, "d"));
	assert_true(seen(d, "e"));

	/* A window full of one id. */
	insert(d, "z");
	insert(d, "z");
	insert(d, "z");
	assert_false(seen(d, "e"));
	assert_true(seen(d, "z"));
	insert(d, "y");
	insert(d, "y");
	assert_true(seen(d, "z"));
	insert(d, "y");
	assert_false(seen(d, "z"));
	assert_true(seen(d, "y"));
	qc_dedup_free(d);
}

static void test_window_of_one(void **state)
{
	struct qc_dedup *d = qc_dedup_new(1);

	(void)state;
	assert_non_null(d);
	insert(d, "a");
	assert_true(seen(d, "a"));
	insert(d, "a");
	assert_true(seen(d, "a"));
	assert_int_equal(qc_dedup_count(d), 1);
	insert(d, "b");
	assert_false(seen(d, "a"));
	assert_true(seen(d, "b"));
	insert(d, "a");
	assert_true(seen(d, "a"));
	assert_false(seen(d, "b"));
	qc_dedup_free(d);
}

static void test_binary_ids(void **state)
{
	struct qc_dedup *d = qc_dedup_new(4);

	(void)state;
	assert_non_null(d);
	qc_dedup_insert(d, "a\0b", 3);
	assert_true(qc_dedup_seen(d, "a\0b", 3));
	assert_false(qc_dedup_seen(d, "a\0c", 3));
	assert_false(qc_dedup_seen(d, "a", 1));
	assert_false(qc_dedup_seen(d, "a\0", 2));
	/* Only @len bytes count. */
	qc_dedup_insert(d, "prefix-and-more", 6);
	assert_true(qc_dedup_seen(d, "prefix", 6));
	assert_false(seen(d, "prefix-and-more"));
	/* The empty id is an id like any other. */
	assert_false(qc_dedup_seen(d, "", 0));
	qc_dedup_insert(d, "", 0);
	assert_true(qc_dedup_seen(d, "", 0));
	qc_dedup_free(d);
}

/*
 * Random ids drawn from @range values against a model: the ring of the last @window values
 * and a count per value. Small ranges make repeats (and ids inserted twice) frequent; small
 * windows make the table crowded with long clusters, which exercises backward shifts.
 */
static void run_model(uint32_t window, uint32_t range, uint32_t ops, unsigned int seed)
{
	struct qc_dedup *d = qc_dedup_new(window);
	uint32_t *ring = calloc(window, sizeof(*ring));
	uint32_t *counts = calloc(range, sizeof(*counts));
	uint32_t next = 0, n = 0, i, v, probe;
	char id[32];
	int len;
	bool expect;

	assert_non_null(d);
	assert_non_null(ring);
	assert_non_null(counts);
	srand(seed);
	for (i = 0; i < ops; i++) {
		v = (uint32_t)rand() % range;
		len = snprintf(id, sizeof(id), "msg-%u", v);
		expect = counts[v] > 0;
		assert_int_equal(qc_dedup_seen(d, id, (size_t)len), expect);

		/* Mostly insert only new ids, as the stream does; sometimes insert anyway. */
		if (!expect || rand() % 4 == 0) {
			qc_dedup_insert(d, id, (size_t)len);
			if (n == window)
				counts[ring[next]]--;
			else
				n++;
			ring[next] = v;
			counts[v]++;
			next = (next + 1) % window;
		}
		assert_int_equal(qc_dedup_count(d), n);

		/* And a look-up of some other value, which must not change anything. */
		probe = (uint32_t)rand() % range;
		len = snprintf(id, sizeof(id), "msg-%u", probe);
		assert_int_equal(qc_dedup_seen(d, id, (size_t)len), counts[probe] > 0);
	}
	/* Every value of the range, at the end. */
	for (v = 0; v < range; v++) {
		len = snprintf(id, sizeof(id), "msg-%u", v);
		assert_int_equal(qc_dedup_seen(d, id, (size_t)len), counts[v] > 0);
	}
	free(counts);
	free(ring);
	qc_dedup_free(d);
}

/* The window starts small and grows while it fills: every id stays seen across each growth. */
static void test_grows_to_the_window(void **state)
{
	struct qc_dedup *d = qc_dedup_new(1000);
	char id[16];
	int i, j;

	(void)state;
	assert_non_null(d);
	for (i = 0; i < 1000; i++) {
		snprintf(id, sizeof(id), "g%d", i);
		assert_int_equal(qc_dedup_reserve(d), 0);
		assert_int_equal(qc_dedup_insert(d, id, strlen(id)), 0);
		if ((i & (i + 1)) == 0 || i == 999) {
			for (j = 0; j <= i; j++) {
				snprintf(id, sizeof(id), "g%d", j);
				assert_true(seen(d, id));
			}
			assert_false(seen(d, "g-1"));
		}
	}
	assert_int_equal(qc_dedup_count(d), 1000);
	insert(d, "g1000");
	assert_false(seen(d, "g0"));
	assert_true(seen(d, "g1"));
	assert_true(seen(d, "g1000"));
	assert_int_equal(qc_dedup_count(d), 1000);
	qc_dedup_free(d);
}

static void test_stress_against_model(void **state)
{
	(void)state;
	run_model(1000, 3000, 100000, 1);
	run_model(1024, 100000, 100000, 2);
	run_model(7, 20, 20000, 3);
	run_model(1, 3, 5000, 4);
	run_model(64, 64, 20000, 5); /* every value fits: long runs of repeats */
	/* past 32767 slots the home slot no longer fits an entry's tag: read from the ring */
	run_model(40000, 120000, 200000, 6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_new_limits),          cmocka_unit_test(test_seen_after_insert),
	    cmocka_unit_test(test_eviction_of_oldest),  cmocka_unit_test(test_same_id_twice),
	    cmocka_unit_test(test_window_of_one),       cmocka_unit_test(test_binary_ids),
	    cmocka_unit_test(test_grows_to_the_window), cmocka_unit_test(test_stress_against_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
