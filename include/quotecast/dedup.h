/*
 * dedup: a window of the last N message ids (layer 0).
 *
 * Answers "was this id among the last N inserted?" in O(1) with bounded memory: a FIFO ring of
 * the newest ids (their hashes) and an open-addressing table of 32-bit ring slots (linear
 * probing, capacity the power of two at least twice the ring's, so never more than half full)
 * over the same entries. Both start small and double as ids arrive, up to N, so a window that
 * has seen few ids holds little: about 16-24 bytes per id. Once N ids are in, nothing is
 * allocated any more and inserting evicts the oldest id.
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
 * or ENOMEM. Full, it holds 8 * @window bytes of ring and 4 * (2 * @window rounded up to a
 * power of two) bytes of table; it starts with room for 8 ids.
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
 * qc_dedup_reserve() - make sure the next qc_dedup_insert() needs no allocation (the window
 * grows while it is not yet full). 0 or -ENOMEM (nothing changed).
 */
int qc_dedup_reserve(struct qc_dedup *d);

/**
 * qc_dedup_insert() - enter the @len bytes at @id as the newest id of the window, evicting
 * the oldest when the window is full. An id already in the window is entered again (callers
 * normally test qc_dedup_seen() first). 0, or -ENOMEM when the window had to grow and could
 * not (nothing changed); never fails right after a successful qc_dedup_reserve().
 */
int qc_dedup_insert(struct qc_dedup *d, const char *id, size_t len);

/** qc_dedup_hash() - the hash the window keeps of the @len bytes at @id. */
uint64_t qc_dedup_hash(const char *id, size_t len);
/** qc_dedup_seen_hash(), qc_dedup_insert_hash() - the same with the id's hash already made. */
bool qc_dedup_seen_hash(const struct qc_dedup *d, uint64_t h);
int qc_dedup_insert_hash(struct qc_dedup *d, uint64_t h);

/** qc_dedup_prefetch() - start loading what a look-up and insert of @h will touch. */
void qc_dedup_prefetch(const struct qc_dedup *d, uint64_t h);

/** qc_dedup_count() - ids in the window (copies of one id each count), at most the window. */
uint32_t qc_dedup_count(const struct qc_dedup *d);

/** qc_dedup_window() - the window size given to qc_dedup_new(). */
uint32_t qc_dedup_window(const struct qc_dedup *d);

#endif
