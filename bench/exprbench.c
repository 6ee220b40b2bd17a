/*
 * exprbench: what one alert filter costs per tick. Compiles a filter like the ones in
 * docs/protocol.md, then steps it against a merged snapshot whose price moves every step (so
 * crossings and edges happen), and prints nanoseconds per step. A tick of a symbol with N
 * filtered subscriptions costs about N steps; nothing here allocates after the compile.
 *
 *   build/exprbench [steps]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <jansson.h>

#include "quotecast/expr.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	long steps = argc > 1 ? atol(argv[1]) : 10000000;
	const char *const trees[] = {
	    "{\"op\":\"and\",\"conditions\":[{\"field\":\"price\",\"cmp\":\"crosses_above\","
	    "\"value\":1900}]}",
	    "{\"op\":\"and\",\"conditions\":[{\"field\":\"price\",\"cmp\":\"gt\",\"value\":1900},"
	    "{\"op\":\"or\",\"conditions\":[{\"field\":\"volume\",\"cmp\":\"gte\",\"value\":1000},"
	    "{\"field\":\"halted\",\"cmp\":\"eq\",\"value\":false}]}]}",
	};
	json_t *snap = json_pack("{s:f, s:i, s:b, s:s, s:i}", "price", 1850.0, "volume", 900,
	                         "halted", 0, "venue", "XSHG", "bid_size", 3);
	json_t *price = json_object_get(snap, "price");

	if (steps <= 0 || !snap)
		return 2;
	for (size_t t = 0; t < sizeof(trees) / sizeof(trees[0]); t++) {
		json_t *tree = json_loads(trees[t], 0, NULL);
		struct qc_expr *e = qc_expr_compile(tree, NULL, 0);
		long edges = 0;
		double t0, dt;

		if (!e)
			return 1;
		t0 = now_s();
		for (long i = 0; i < steps; i++) {
			/* the price walks 1850..1949 and back: a crossing of 1900 every 100 steps
			 */
			json_real_set(price, 1850.0 + (double)(i % 100));
			edges += qc_expr_step(e, snap);
		}
		dt = now_s() - t0;
		printf("filter %zu: %ld steps in %.3f s: %.1f ns per step, %ld edges\n", t + 1,
		       steps, dt, dt * 1e9 / (double)steps, edges);
		qc_expr_free(e);
		json_decref(tree);
	}
	json_decref(snap);
	return 0;
}
