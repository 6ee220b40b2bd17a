/*
 * held: numbered messages waiting, in arrival order, behind a read-back of their log (a gap in
 * the seqs was seen: what comes after it waits until the log has filled the gap). Each keeps a
 * copy of its bytes. Bounded: past @max messages a push is refused and the caller applies the
 * message as it comes (a gap it cannot close).
 */
#ifndef QUOTECAST_HELD_H
#define QUOTECAST_HELD_H

#include <stddef.h>
#include <stdint.h>

#define QC_HELD_EPOCH_MAX 31 /* bytes of an epoch, at most */

struct qc_held_msg {
	struct qc_held_msg *next;
	uint64_t seq;
	char epoch[QC_HELD_EPOCH_MAX + 1];
	size_t len;
	char data[]; /* @len bytes, not NUL-terminated */
};

struct qc_held {
	struct qc_held_msg *head, **tail;
	uint32_t n, max;
};

/** qc_held_init() - an empty queue of at most @max messages. */
void qc_held_init(struct qc_held *q, uint32_t max);

/**
 * qc_held_push() - copy message @seq of @epoch (@len bytes of @data) to the end. Returns 0,
 * -ENOSPC (@max held already), -EINVAL (an epoch longer than QC_HELD_EPOCH_MAX) or -ENOMEM.
 */
int qc_held_push(struct qc_held *q, uint64_t seq, const char *epoch, const char *data, size_t len);

/** qc_held_pop() - the oldest message, the caller's to free(); NULL when empty. */
struct qc_held_msg *qc_held_pop(struct qc_held *q);

/** qc_held_clear() - free every message; the queue is empty (and usable) again. */
void qc_held_clear(struct qc_held *q);

#endif
