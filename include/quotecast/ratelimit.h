/*
 * ratelimit: a token bucket per connection, integer arithmetic, no allocation.
 */
#ifndef QC_RATELIMIT_H
#define QC_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct qc_rate {
	int64_t last_ms; /* time of the last refill */
	uint64_t milli;  /* tokens x 1000 */
};

/** qc_rate_init() - a full bucket of @burst tokens at @now_ms. */
void qc_rate_init(struct qc_rate *r, uint32_t burst, int64_t now_ms);

/**
 * qc_rate_take() - refill at @rate_per_s tokens/s (capped at @burst), then take one token.
 * Returns true when a token was taken, false when the bucket is empty. A @rate_per_s of 0
 * means unlimited (always true). Time going backwards refills nothing.
 */
bool qc_rate_take(struct qc_rate *r, uint32_t rate_per_s, uint32_t burst, int64_t now_ms);

#endif
