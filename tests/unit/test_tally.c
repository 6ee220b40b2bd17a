/*
 * test_tally: counts by key (the connection bounds per user and per address): take and put,
 * entries freed at zero, many keys, keys that differ only in length, free with entries left.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>

#include "quotecast/tally.h"

static void test_take_put(void **state)
{
	struct qc_tally t;
	struct qc_tally_entry *a1, *a2, *b;

	(void)state;
	qc_tally_init(&t);
	assert_int_equal(qc_tally_count(&t, "alice"), 0);
	a1 = qc_tally_take(&t, "alice");
	a2 = qc_tally_take(&t, "alice");
	b = qc_tally_take(&t, "bob");
	assert_ptr_equal(a1, a2);
	assert_int_equal(qc_tally_count(&t, "alice"), 2);
	assert_int_equal(qc_tally_count(&t, "bob"), 1);
	assert_int_equal(qc_tally_count(&t, "alic"), 0);
	assert_int_equal(qc_tally_count(&t, "alice2"), 0);
	assert_int_equal(t.nkeys, 2);

	qc_tally_put(&t, &a1);
	assert_null(a1);
	assert_int_equal(qc_tally_count(&t, "alice"), 1);
	qc_tally_put(&t, &a1); /* NULL: nothing */
	assert_int_equal(qc_tally_count(&t, "alice"), 1);
	qc_tally_put(&t, &a2);
	assert_int_equal(qc_tally_count(&t, "alice"), 0);
	assert_int_equal(t.nkeys, 1); /* freed at zero */
	qc_tally_put(&t, &b);
	assert_int_equal(t.nkeys, 0);
	assert_null(t.by_key);
}

static void test_many(void **state)
{
	static struct qc_tally_entry *held[2000];
	struct qc_tally t;
	char key[48];

	(void)state;
	qc_tally_init(&t);
	for (int i = 0; i < 2000; i++) {
		snprintf(key, sizeof(key), "10.0.%d.%d", i % 500 / 250, i % 250);
		held[i] = qc_tally_take(&t, key);
		assert_non_null(held[i]);
	}
	assert_int_equal(t.nkeys, 500);
	assert_int_equal(qc_tally_count(&t, "10.0.1.7"), 4);
	assert_int_equal(qc_tally_count(&t, "10.0.2.7"), 0);
	for (int i = 0; i < 2000; i++)
		qc_tally_put(&t, &held[i]);
	assert_int_equal(t.nkeys, 0);
	/* free with entries left over */
	qc_tally_take(&t, "x");
	qc_tally_take(&t, "y");
	qc_tally_free(&t);
	assert_int_equal(t.nkeys, 0);
	assert_null(t.by_key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_take_put),
	    cmocka_unit_test(test_many),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
