/*
 * siobench: what one Socket.IO room-message delivery costs inside the hub, with and without
 * connection state recovery. N Socket.IO receivers join one room; each of M room messages is
 * broadcast and every queue is then written out as ws.c does (qc_outq_fill into a scratch
 * buffer) after every @batch messages (a loop pass under load carries several), without
 * sockets. Prints nanoseconds per delivery, the best of 5 rounds. With recovery (ttl_s > 0)
 * each delivery also keeps a reference in the receiver's history ring.
 *
 *   build/siobench [receivers] [messages] [ttl_s] [batch]
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

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1000, msgs = argc > 2 ? atoi(argv[2]) : 500;
	struct qc_transport t = {nop, nop, NULL, NULL, NULL, NULL};
	static const char sub[] = "42[\"subscribe\",{\"room\":\"r\"}]";
	struct qc_conn **cs = calloc((size_t)n, sizeof(*cs));
	int batch = argc > 4 && atoi(argv[4]) > 0 ? atoi(argv[4]) : 1;
	double best = 1e30;
	struct qc_config cfg;
	struct qc_hub *h;
	char content[64];

	if (!cs || qc_config_defaults(&cfg))
		return 1;
	cfg.sessions.ttl_s = argc > 3 ? (uint32_t)atoi(argv[3]) : 120;
	cfg.limits.rate_per_s = 0;
	h = qc_hub_new(&cfg, &t);
	if (!h)
		return 1;
	for (int i = 0; i < n; i++) {
		cs[i] = calloc(1, sizeof(*cs[i]));
		if (!cs[i])
			return 1;
		snprintf(cs[i]->user_id, sizeof(cs[i]->user_id), "u%d", i);
		cs[i]->enc = QC_ENC_SIO;
		cs[i]->transport = h;
		if (qc_hub_open(h, cs[i]))
			return 1;
		qc_hub_rx(h, cs[i], sub, strlen(sub), false);
		write_out(cs[i]);
	}
	for (int round = 0; round < 5; round++) {
		double t0 = now_ns(), ns;

		for (int m = 0; m < msgs; m++) {
			json_t *body, *out = NULL;
			const char *emsg;

			snprintf(content, sizeof(content), "message number %d of the run", m);
			body = json_pack("{s:s, s:s}", "room", "r", "content", content);
			qc_hub_broadcast(h, body, &out, &emsg);
			json_decref(out);
			json_decref(body);
			if ((m + 1) % batch && m + 1 < msgs)
				continue;
			for (int i = 0; i < n; i++)
				write_out(cs[i]);
		}
		ns = (now_ns() - t0) / ((double)msgs * n);
		if (ns < best)
			best = ns;
	}
	printf("%d Socket.IO receivers, %d messages written %d at a time, sessions.ttl_s %u "
	       "(recovery %s): %.1f ns per delivery (best of 5)\n",
	       n, msgs, batch, cfg.sessions.ttl_s, cfg.sessions.ttl_s ? "on" : "off", best);
	inhub_done(h, cs, n, &cfg);
	return 0;
}
