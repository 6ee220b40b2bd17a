/*
 * tickbench: what one stream_data delivery costs inside the hub. N native receivers subscribe
 * to one symbol (the first @rated of them with max_hz @hz); each of M ticks is published
 * through qc_hub_publish_text (the ingest scanner, the fan-out) and every queue is written out
 * as ws.c does (qc_outq_fill into a scratch buffer) after each tick, without sockets. The
 * hub's clock stands still, so a max_hz receiver merges every tick after its first. Prints
 * nanoseconds per tick and receiver, the best of 5 rounds.
 *
 *   build/tickbench [receivers] [ticks] [rated] [hz]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "quotecast/config.h"
#include "quotecast/conn.h"
#include "quotecast/hub.h"
#include "quotecast/outq.h"

#include "inhub.h"

static int64_t still(void *ctx)
{
	(void)ctx;
	return 1000;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1000, ticks = argc > 2 ? atoi(argv[2]) : 2000;
	int rated = argc > 3 ? atoi(argv[3]) : 0;
	const char *hz = argc > 4 ? argv[4] : "4";
	struct qc_transport t = {.want_write = nop, .close = nop};
	struct qc_conn **cs = calloc((size_t)n, sizeof(*cs));
	double best = 1e30;
	struct qc_config cfg;
	struct qc_hub *h;
	char buf[256];
	int seq = 0;

	if (!cs || qc_config_defaults(&cfg))
		return 1;
	cfg.limits.rate_per_s = 0;
	h = qc_hub_new(&cfg, &t);
	if (!h)
		return 1;
	qc_hub_set_clock(h, still, NULL);
	for (int i = 0; i < n; i++) {
		cs[i] = calloc(1, sizeof(*cs[i]));
		if (!cs[i])
			return 1;
		snprintf(cs[i]->user_id, sizeof(cs[i]->user_id), "u%d", i);
		cs[i]->transport = h;
		if (qc_hub_open(h, cs[i]))
			return 1;
		if (i < rated)
			snprintf(buf, sizeof(buf),
			         "{\"type\":\"request\",\"action\":\"subscribe_market_stream\","
			         "\"payload\":{\"symbol\":\"B0\",\"max_hz\":%s}}",
			         hz);
		else
			snprintf(buf, sizeof(buf),
			         "{\"type\":\"request\",\"action\":\"subscribe_market_stream\","
			         "\"payload\":{\"symbol\":\"B0\"}}");
		qc_hub_rx(h, cs[i], buf, strlen(buf), false);
		write_out(cs[i]);
	}
	for (int round = 0; round < 5; round++) {
		double t0 = now_ns(), ns;

		for (int m = 0; m < ticks; m++) {
			json_t *out = NULL;
			const char *emsg;
			int len = snprintf(buf, sizeof(buf),
			                   "{\"symbol\":\"B0\",\"data\":{\"price\":%d.25,"
			                   "\"volume\":%d,\"ts\":1699267202000123}}",
			                   seq + 1, (seq + 1) * 10);

			seq++;
			if (qc_hub_publish_text(h, buf, (size_t)len, &out, &emsg))
				return 1;
			json_decref(out);
			for (int i = 0; i < n; i++)
				write_out(cs[i]);
		}
		ns = (now_ns() - t0) / ((double)ticks * n);
		if (ns < best)
			best = ns;
	}
	printf("%d receivers (%d with max_hz %s), %d ticks: %.1f ns per tick and receiver "
	       "(best of 5)\n",
	       n, rated, hz, ticks, best);
	inhub_done(h, cs, n, &cfg);
	return 0;
}
