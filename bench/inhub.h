/*
 * inhub: what the in-hub benchmarks (siobench, tickbench) share: a transport callback that
 * does nothing, a monotonic clock in nanoseconds, and writing a connection's queue out as
 * ws.c does (qc_outq_fill into a scratch buffer), without sockets; the end of a run.
 */
#ifndef QC_BENCH_INHUB_H
#define QC_BENCH_INHUB_H

#include <stdlib.h>
#include <time.h>

#include "quotecast/config.h"
#include "quotecast/conn.h"
#include "quotecast/hub.h"
#include "quotecast/outq.h"

static unsigned char scratch[1 << 16];

static inline void nop(void *ctx, struct qc_conn *c)
{
	(void)ctx;
	(void)c;
}

static inline double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static inline void write_out(struct qc_conn *c)
{
	while (!qc_outq_empty(&c->outq))
		qc_outq_fill(&c->outq, scratch, sizeof(scratch));
}

/* The end of a run: @n connections @cs closed (and freed by the hub), the hub freed. */
static inline void inhub_done(struct qc_hub *h, struct qc_conn **cs, int n, struct qc_config *cfg)
{
	for (int i = 0; i < n; i++)
		qc_hub_closed(h, cs[i]);
	qc_hub_free(h);
	qc_config_free(cfg);
	free(cs);
}

#endif
