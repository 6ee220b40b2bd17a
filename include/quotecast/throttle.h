/*
 * throttle: failed attempts per key (a user and a room), in a table of fixed size.
 *
 * A key that has failed @max times within @window_ms of its first counted failure is refused
 * until that window ends; then its count starts again. The table never grows: it holds
 * QC_THROTTLE_WAYS records per set, and a new key in a full set takes the place of the record
 * whose window ends first (counted as an eviction), so a flood of made-up keys costs no memory,
 * only the early release of some throttled keys. Keys are hashed with a per-table seed, so a
 * client cannot aim its keys at one set. The clock is the caller's (@now_ms).
 */
#ifndef QC_THROTTLE_H
#define QC_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>

#define QC_THROTTLE_WAYS 8 /* records per set */

struct qc_throttle;

/**
 * qc_throttle_new() - a table of at least @records records (a power of two of sets of
 * QC_THROTTLE_WAYS; at most 1,048,576 records, 24 MiB) hashed with @seed. NULL on ENOMEM.
 */
struct qc_throttle *qc_throttle_new(uint32_t records, uint64_t seed);
void qc_throttle_free(struct qc_throttle *t);

/**
 * qc_throttle_check() - may key (@a, @b) try now? Returns 0 when it may, else the
 * milliseconds until its window ends (at least 1): it failed @max times within @window_ms.
 */
int64_t qc_throttle_check(struct qc_throttle *t, const char *a, const char *b, uint32_t max,
                          uint32_t window_ms, int64_t now_ms);

/** qc_throttle_fail() - count one failure of key (@a, @b) at @now_ms. */
void qc_throttle_fail(struct qc_throttle *t, const char *a, const char *b, uint32_t window_ms,
                      int64_t now_ms);

/** qc_throttle_clear() - forget key (@a, @b) (it succeeded). */
void qc_throttle_clear(struct qc_throttle *t, const char *a, const char *b);

/** Records held whose window has not ended at @now_ms; records in all; evictions so far. */
uint32_t qc_throttle_live(const struct qc_throttle *t, uint32_t window_ms, int64_t now_ms);
uint32_t qc_throttle_capacity(const struct qc_throttle *t);
uint64_t qc_throttle_evicted(const struct qc_throttle *t);

#endif
