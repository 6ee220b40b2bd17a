/*
 * demo: random-walk market data for the demo feed. Owns one price per symbol and a counter of
 * ticks made; pacing is by elapsed time, so a late timer catches up (bounded to one second).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quotecast/demo.h"

struct qc_demo {
	char **symbols;
	double *price;
	size_t nsymbols;
	uint32_t rate;
	uint64_t rng;
	int64_t start_ms;
	uint64_t made;
	size_t next;
};

/* xorshift64*: fast, deterministic, good enough for a demo walk */
static uint64_t rnd(struct qc_demo *d)
{
	d->rng ^= d->rng >> 12;
	d->rng ^= d->rng << 25;
	d->rng ^= d->rng >> 27;
	return d->rng * 0x2545F4914F6CDD1DULL;
}

static double unit(struct qc_demo *d)
{
	return (double)(rnd(d) >> 11) / 9007199254740992.0; /* [0, 1) */
}

struct qc_demo *qc_demo_new(char *const *symbols, size_t nsymbols, uint32_t rate_per_s,
                            uint64_t seed, int64_t now_ms)
{
	struct qc_demo *d;

	if (!nsymbols || !rate_per_s)
		return NULL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->symbols = calloc(nsymbols, sizeof(*d->symbols));
	d->price = calloc(nsymbols, sizeof(*d->price));
	if (!d->symbols || !d->price)
		goto fail;
	d->nsymbols = nsymbols;
	d->rate = rate_per_s;
	d->rng = seed ? seed : 0x9E3779B97F4A7C15ULL;
	d->start_ms = now_ms;
	for (size_t i = 0; i < nsymbols; i++) {
		d->symbols[i] = strdup(symbols[i]);
		if (!d->symbols[i])
			goto fail;
		d->price[i] = 50.0 + 1950.0 * unit(d);
	}
	return d;
fail:
	qc_demo_free(d);
	return NULL;
}

void qc_demo_free(struct qc_demo *d)
{
	if (!d)
		return;
	for (size_t i = 0; d->symbols && i < d->nsymbols; i++)
		free(d->symbols[i]);
	free(d->symbols);
	free(d->price);
	free(d);
}

uint32_t qc_demo_due(struct qc_demo *d, int64_t now_ms)
{
	int64_t elapsed = now_ms - d->start_ms;
	uint64_t target;

	if (elapsed <= 0)
		return 0;
	target = (uint64_t)elapsed * d->rate / 1000;
	if (target <= d->made)
		return 0;
	if (target - d->made > d->rate) {
		/* the loop was stalled: skip ahead rather than flood */
		d->made = target - d->rate;
	}
	return (uint32_t)(target - d->made);
}

json_t *qc_demo_next(struct qc_demo *d, int64_t now_ms)
{
	size_t i = d->next;
	double p, spread;
	char id[48];

	d->next = (d->next + 1) % d->nsymbols;
	d->made++;
	/* a step of up to +-0.2 %, rounded to cents */
	p = d->price[i] * (1.0 + (unit(d) - 0.5) * 0.004);
	if (p < 0.01)
		p = 0.01;
	p = round(p * 100.0) / 100.0;
	d->price[i] = p;
	spread = round(p * 0.0005 * 100.0) / 100.0;
	if (spread < 0.01)
		spread = 0.01;
	snprintf(id, sizeof(id), "demo-%" PRIu64, d->made);
	return json_pack("{s:s, s:{s:f, s:f, s:f, s:I}, s:s, s:I, s:I}", "symbol", d->symbols[i],
	                 "data", "price", p, "bid", p - spread, "ask", p + spread, "volume",
	                 (json_int_t)(100 + rnd(d) % 10000), "message_id", id, "version",
	                 (json_int_t)d->made, "timestamp", (json_int_t)now_ms);
}
