/*
 * test_histo: the latency histograms of /metrics: each observation lands in the first bucket
 * whose bound is at or above it (bounds inclusive, as Prometheus' le), past the last in +Inf;
 * cumulative counts, sum and count; negative durations count as 0; the outq's sample (its
 * oldest tick among the first frames) and the build time stamped on every frame.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "quotecast/histo.h"
#include "quotecast/msg.h"
#include "quotecast/outq.h"

static void test_buckets(void **state)
{
	struct qc_histo h = {0};

	(void)state;
	for (unsigned int i = 1; i < QC_HISTO_BUCKETS; i++)
		assert_true(qc_histo_bounds_us[i] > qc_histo_bounds_us[i - 1]);
	qc_histo_observe(&h, 0);        /* bucket 0 (<= 50 us) */
	qc_histo_observe(&h, 50);       /* bound inclusive: bucket 0 */
	qc_histo_observe(&h, 51);       /* bucket 1 (<= 100 us) */
	qc_histo_observe(&h, -7);       /* a clock that went back: 0 */
	qc_histo_observe(&h, 1000);     /* <= 1 ms: bucket 4 */
	qc_histo_observe(&h, 10000000); /* the last bound, 10 s */
	qc_histo_observe(&h, 10000001); /* +Inf */
	assert_int_equal(h.counts[0], 3);
	assert_int_equal(h.counts[1], 1);
	assert_int_equal(h.counts[4], 1);
	assert_int_equal(h.counts[QC_HISTO_BUCKETS - 1], 1);
	assert_int_equal(h.counts[QC_HISTO_BUCKETS], 1);
	assert_int_equal(h.count, 7);
	assert_int_equal(h.sum_us, 50 + 51 + 1000 + 10000000 + 10000001);
	assert_int_equal(qc_histo_cumulative(&h, 0), 3);
	assert_int_equal(qc_histo_cumulative(&h, 1), 4);
	assert_int_equal(qc_histo_cumulative(&h, 4), 5);
	assert_int_equal(qc_histo_cumulative(&h, QC_HISTO_BUCKETS - 1), 6);
	assert_int_equal(qc_histo_cumulative(&h, QC_HISTO_BUCKETS), 7);
	/* past +Inf is +Inf */
	assert_int_equal(qc_histo_cumulative(&h, QC_HISTO_BUCKETS + 5), 7);
}

static void test_every_bound(void **state)
{
	(void)state;
	for (unsigned int i = 0; i < QC_HISTO_BUCKETS; i++) {
		struct qc_histo h = {0};

		qc_histo_observe(&h, qc_histo_bounds_us[i]);
		qc_histo_observe(&h, (int64_t)qc_histo_bounds_us[i] + 1);
		assert_int_equal(h.counts[i], 1);
		assert_int_equal(h.counts[i + 1], 1);
	}
}

static void test_frames_and_sample(void **state)
{
	struct qc_outq q;
	struct qc_msg *ctl, *tick, *tick2;
	int64_t t0 = qc_histo_mono_us();

	(void)state;
	qc_outq_init(&q);
	ctl = qc_msg_new_text("{}", 2);
	tick = qc_msg_new_text("{\"t\":1}", 7);
	tick2 = qc_msg_new_text("{\"t\":2}", 7);
	assert_non_null(ctl);
	assert_non_null(tick);
	assert_non_null(tick2);
	/* every frame carries when it was built, on the monotonic clock */
	assert_true(tick->born_us >= t0);
	assert_true(tick->born_us <= qc_histo_mono_us());
	tick->kind = QC_MSG_TICK;
	tick2->kind = QC_MSG_TICK;
	assert_null(qc_outq_oldest_tick(&q, 8));
	qc_outq_push(&q, ctl);
	assert_null(qc_outq_oldest_tick(&q, 8));
	qc_outq_push(&q, tick);
	qc_outq_push(&q, tick2);
	assert_ptr_equal(qc_outq_oldest_tick(&q, 8), tick);
	/* only the first @max frames are looked at */
	assert_null(qc_outq_oldest_tick(&q, 1));
	qc_outq_pop(&q);
	qc_outq_pop(&q);
	assert_ptr_equal(qc_outq_oldest_tick(&q, 1), tick2);
	qc_outq_clear(&q);
	qc_msg_unref(&ctl);
	qc_msg_unref(&tick);
	qc_msg_unref(&tick2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_buckets),
	    cmocka_unit_test(test_every_bound),
	    cmocka_unit_test(test_frames_and_sample),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
