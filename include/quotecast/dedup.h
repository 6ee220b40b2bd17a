/*
 * dedup: a window of the last N message ids (layer 0).
 *
 * Answers "was this id among the last N inserted?" in O(1) with memory fixed at creation: one
 * allocation holds a FIFO ring of the N newest ids and an open-addressing table (linear
 * probing, capacity the power of two at least 2N, so never more than half full) over the
 * same entries. Nothing is allocated per insert; inserting into a full window evicts the
 * oldest id.
 *
 * Ids are not stored, only a 64-bit hash of their bytes (FNV-1a 64 followed by a 64-bit
 * finaliser mix). Two different ids with the same hash are taken for one id, so a fresh id
 * is reported as seen with a probability of about N / 2^64 per look-up: accepted here. The
 * hash is not keyed, so someone who can choose ids can craft collisions on purpose; ids come
 * from publishers, who are trusted to that extent.
 *
 * The same id may be inserted more than once; it stays seen until its newest copy leaves
 * the window.
 */
#ifndef QC_DEDUP_H
#define QC_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QC_DEDUP_WINDOW_MAX (1u << 30) /* ids; keeps the table size within 32 bits */

struct qc_dedup;

/**
 * qc_dedup_new() - an empty window of @window ids (1..QC_DEDUP_WINDOW_MAX).
 * Returns it (free with qc_dedup_free()), or NULL with errno EINVAL (a window out of range)
 * or ENOMEM. Allocates about 8 * (@window + 2 * @window rounded up to a power of two) bytes.
 */
struct qc_dedup *qc_dedup_new(uint32_t window);

/** qc_dedup_free() - free @d and everything in it; NULL is ignored. */
void qc_dedup_free(struct qc_dedup *d);

/**
 * qc_dedup_seen() - whether the @len bytes at @id (any bytes, NUL included; not copied) are
 * in the window. Changes nothing.
 */
bool qc_dedup_seen(const struct qc_dedup *d, const char *id, size_t len);

/**
 * qc_dedup_insert() - enter the @len bytes at @id as the newest id of the window, evicting
 * the oldest when the window is full. Never allocates and cannot fail. An id already in the
 * window is entered again (callers normally test qc_dedup_seen() first).
 */
void qc_dedup_insert(struct qc_dedup *d, const char *id, size_t len);

/** qc_dedup_count() - ids in the window (copies of one id each count), at most the window. */
uint32_t qc_dedup_count(const struct qc_dedup *d);

/** qc_dedup_window() - the window size given to qc_dedup_new(). */
uint32_t qc_dedup_window(const struct qc_dedup *d);

#endif
