/*
 * demo: the demo feed's tick generator (layer 0). Random-walk prices for a list of symbols at
 * a fixed total rate; the hub publishes what it makes through the ordinary ingest path.
 */
#ifndef QC_DEMO_H
#define QC_DEMO_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct qc_demo;

/**
 * qc_demo_new() - a generator for @nsymbols symbols (copied) at @rate_per_s ticks per second
 * in total, starting at @now_ms, deterministic for a given @seed. NULL on ENOMEM or bad input.
 */
struct qc_demo *qc_demo_new(char *const *symbols, size_t nsymbols, uint32_t rate_per_s,
                            uint64_t seed, int64_t now_ms);
void qc_demo_free(struct qc_demo *d);

/** qc_demo_due() - ticks due at @now_ms that were not made yet (at most one second's worth). */
uint32_t qc_demo_due(struct qc_demo *d, int64_t now_ms);

/**
 * qc_demo_next() - the next tick, round robin over the symbols:
 * {"symbol","data":{"price","bid","ask","volume"},"message_id","version","timestamp"}.
 * New reference, NULL on ENOMEM.
 */
json_t *qc_demo_next(struct qc_demo *d, int64_t now_ms);

#endif
