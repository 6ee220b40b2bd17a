/*
 * histo: a latency histogram with fixed buckets, for /metrics (a Prometheus histogram):
 * observing is a few compares and two additions, no allocation, no clock read.
 */
#ifndef QC_HISTO_H
#define QC_HISTO_H

#include <stdint.h>

/* Upper bounds in microseconds, 50 us to 10 s; one more bucket (+Inf) after them. */
#define QC_HISTO_BUCKETS 18
extern const uint32_t qc_histo_bounds_us[QC_HISTO_BUCKETS];

struct qc_histo {
	uint64_t counts[QC_HISTO_BUCKETS + 1]; /* per bucket, not cumulative; the last is +Inf */
	uint64_t count;                        /* observations */
	uint64_t sum_us;                       /* their sum */
};

/** qc_histo_observe() - count one observation of @us microseconds (negative counts as 0). */
void qc_histo_observe(struct qc_histo *h, int64_t us);

/** qc_histo_cumulative() - observations at or below bucket @i's bound (@i up to QC_HISTO_BUCKETS:
 * +Inf). */
uint64_t qc_histo_cumulative(const struct qc_histo *h, unsigned int i);

/** qc_histo_mono_us() - the monotonic clock (CLOCK_MONOTONIC, the one lws uses) in microseconds. */
int64_t qc_histo_mono_us(void);

#endif
