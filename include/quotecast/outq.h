/*
 * outq: a connection's bounded queue of references to shared frames.
 *
 * Storage is a power-of-two ring of pointers allocated on first push (an idle connection
 * costs nothing) and grown by doubling. The queue counts the frame bytes it holds so that the
 * caller can enforce limits.conflate_bytes / limits.max_send_queue_bytes.
 */
#ifndef QC_OUTQ_H
#define QC_OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct qc_msg;

struct qc_outq {
	struct qc_msg **slot; /* NULL until the first push */
	uint32_t head;        /* index of the oldest entry */
	uint32_t count;
	uint32_t cap; /* power of two, 0 while slot is NULL */
	size_t bytes; /* sum of qc_msg.len over the queued frames */
	/*
	 * frames other than QC_MSG_CONTROL that qc_outq_fill() handed out (written to a socket):
	 * what a socket that dies can take with it unread (the transport counts its own writes of
	 * single frames too)
	 */
	uint64_t events_out;
	/*
	 * optional: where frames with an offset (msg.h) go once handed out, instead of being
	 * dropped (a Socket.IO session's history); kept by qc_outq_clear(). written_lost is set
	 * when one could not be kept (ENOMEM).
	 */
	struct qc_outq *written;
	bool written_lost;
};

/** qc_outq_init() - an empty queue (all zero is also valid). */
void qc_outq_init(struct qc_outq *q);

/**
 * qc_outq_push() - append a frame. Takes a new reference to @m (the caller keeps its own).
 * Returns 0, or -ENOMEM (nothing changed).
 */
int qc_outq_push(struct qc_outq *q, struct qc_msg *m);

/** qc_outq_peek() - the oldest frame (borrowed) or NULL. */
struct qc_msg *qc_outq_peek(const struct qc_outq *q);

/**
 * qc_outq_oldest_tick() - the oldest QC_MSG_TICK frame among the first @max queued (borrowed),
 * or NULL: the sample /metrics' publish-to-write latency takes once per write.
 */
const struct qc_msg *qc_outq_oldest_tick(const struct qc_outq *q, uint32_t max);

/** qc_outq_pop() - drop the oldest frame's reference. No-op when empty. */
void qc_outq_pop(struct qc_outq *q);

/**
 * qc_outq_pop_written() - the oldest frame has been handed to the socket: pop it, moving it to
 * q->written when it has an offset and the queue has one. No-op when empty.
 */
void qc_outq_pop_written(struct qc_outq *q);

/**
 * qc_outq_fill() - copy as many whole frames as fit in @cap bytes into @buf, oldest first,
 * popping each one copied. If the oldest frame alone is larger than @cap, nothing is copied and
 * 0 is returned (the caller writes that frame on its own). Returns the bytes copied.
 */
size_t qc_outq_fill(struct qc_outq *q, unsigned char *buf, size_t cap);

/**
 * qc_outq_remove_stream() - remove every queued frame of kind QC_MSG_TICK with @stream_id,
 * dropping their references, keeping the order of everything else. Returns how many were
 * removed. The caller pushes the merged frame afterwards.
 */
uint32_t qc_outq_remove_stream(struct qc_outq *q, uint64_t stream_id);

/** qc_outq_clear() - drop every reference and free the storage (q->written stays). */
void qc_outq_clear(struct qc_outq *q);

static inline bool qc_outq_empty(const struct qc_outq *q)
{
	return q->count == 0;
}

#endif
