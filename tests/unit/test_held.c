/*
 * test_held: the queue of numbered messages held behind a read-back: order, copies of the
 * bytes (binary, empty), the bound, epochs too long, reuse after clear and after emptying.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quotecast/held.h"

static void test_order_and_copies(void **state)
{
	struct qc_held q;
	char buf[16];
	struct qc_held_msg *m;

	(void)state;
	qc_held_init(&q, 10);
	for (int i = 1; i <= 5; i++) {
		int n = snprintf(buf, sizeof(buf), "m%d", i);

		assert_int_equal(qc_held_push(&q, (uint64_t)i + 100, "ep1", buf, (size_t)n), 0);
		buf[0] = 'X'; /* a copy was kept */
	}
	assert_int_equal(q.n, 5);
	for (int i = 1; i <= 5; i++) {
		m = qc_held_pop(&q);
		assert_non_null(m);
		assert_int_equal(m->seq, (uint64_t)i + 100);
		assert_string_equal(m->epoch, "ep1");
		snprintf(buf, sizeof(buf), "m%d", i);
		assert_int_equal(m->len, strlen(buf));
		assert_memory_equal(m->data, buf, m->len);
		assert_null(m->next);
		free(m);
	}
	assert_null(qc_held_pop(&q));
	assert_int_equal(q.n, 0);
	/* usable again once empty: the tail was reset */
	assert_int_equal(qc_held_push(&q, 7, "e", "a\0b", 3), 0);
	m = qc_held_pop(&q);
	assert_int_equal(m->len, 3);
	assert_memory_equal(m->data, "a\0b", 3);
	free(m);
	assert_int_equal(qc_held_push(&q, 8, "", NULL, 0), 0);
	m = qc_held_pop(&q);
	assert_int_equal(m->len, 0);
	assert_string_equal(m->epoch, "");
	free(m);
}

static void test_bounds(void **state)
{
	char epoch[QC_HELD_EPOCH_MAX + 2];
	struct qc_held q;

	(void)state;
	qc_held_init(&q, 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(qc_held_push(&q, (uint64_t)i, "e", "x", 1), 0);
	assert_int_equal(qc_held_push(&q, 9, "e", "x", 1), -ENOSPC);
	assert_int_equal(q.n, 3);
	free(qc_held_pop(&q));
	assert_int_equal(qc_held_push(&q, 9, "e", "x", 1), 0);
	memset(epoch, 'a', sizeof(epoch) - 1);
	epoch[sizeof(epoch) - 1] = '\0';
	qc_held_clear(&q);
	assert_int_equal(qc_held_push(&q, 1, epoch, "x", 1), -EINVAL);
	epoch[QC_HELD_EPOCH_MAX] = '\0';
	assert_int_equal(qc_held_push(&q, 1, epoch, "x", 1), 0);
	qc_held_clear(&q);
	assert_int_equal(q.n, 0);
	assert_null(q.head);
	/* cleared, it takes messages again */
	assert_int_equal(qc_held_push(&q, 2, "e", "y", 1), 0);
	qc_held_clear(&q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_order_and_copies),
	    cmocka_unit_test(test_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
