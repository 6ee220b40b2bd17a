/*
 * ratelimit: the token-bucket arithmetic behind per-connection command limits.
 *
 * The bucket counts milli-tokens so that refill stays exact in integers: at R tokens per second
 * a bucket gains exactly R milli-tokens per millisecond. Nothing is allocated; the caller embeds
 * struct qc_rate and passes its limits on every call, so a configuration reload applies at once.
 */
#include "quotecast/ratelimit.h"

#define MILLI_PER_TOKEN 1000

void qc_rate_init(struct qc_rate *r, uint32_t burst, int64_t now_ms)
{
	r->last_ms = now_ms;
	r->milli = (uint64_t)burst * MILLI_PER_TOKEN;
}

bool qc_rate_take(struct qc_rate *r, uint32_t rate_per_s, uint32_t burst, int64_t now_ms)
{
	uint64_t full = (uint64_t)burst * MILLI_PER_TOKEN;
	uint64_t elapsed, room;

	if (!rate_per_s)
		return true;

	/* A lowered burst (configuration reload) takes effect on the next call. */
	if (r->milli > full)
		r->milli = full;

	if (now_ms > r->last_ms) {
		/* Unsigned subtraction: the signed one overflows for far-apart times. */
		elapsed = (uint64_t)now_ms - (uint64_t)r->last_ms;
		room = full - r->milli;
		/* Compare before multiplying so a huge elapsed time cannot overflow. */
		if (elapsed > room / rate_per_s)
			r->milli = full;
		else
			r->milli += elapsed * rate_per_s;
		r->last_ms = now_ms;
	}

	if (r->milli < MILLI_PER_TOKEN)
		return false;
	r->milli -= MILLI_PER_TOKEN;
	return true;
}
