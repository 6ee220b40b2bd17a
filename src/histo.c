/*
 * histo: fixed-bucket latency histograms (see the header). The bounds follow Prometheus'
 * usual 1-2.5-5 steps from 50 us to 10 s: a fan-out write is tens of microseconds to a few
 * milliseconds, a store statement a millisecond to seconds.
 */
#include <time.h>

#include "quotecast/histo.h"

const uint32_t qc_histo_bounds_us[QC_HISTO_BUCKETS] = {
    50,    100,    250,    500,    1000,    2500,    5000,    10000,   25000,
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 7500000, 10000000,
};

void qc_histo_observe(struct qc_histo *h, int64_t us)
{
	unsigned int lo = 0, hi = QC_HISTO_BUCKETS;

	if (us < 0)
		us = 0;
	/* the first bound >= us; QC_HISTO_BUCKETS (+Inf) when none */
	while (lo < hi) {
		unsigned int mid = (lo + hi) / 2;

		if ((uint64_t)us <= qc_histo_bounds_us[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	h->counts[lo]++;
	h->count++;
	h->sum_us += (uint64_t)us;
}

uint64_t qc_histo_cumulative(const struct qc_histo *h, unsigned int i)
{
	uint64_t n = 0;

	for (unsigned int b = 0; b <= i && b <= QC_HISTO_BUCKETS; b++)
		n += h->counts[b];
	return n;
}

int64_t qc_histo_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
