/*
 * outq: owns a connection's ring of message references and the byte count of what it holds.
 *
 * Each queued slot holds one reference taken at push and dropped at pop, fill, remove_stream or
 * clear. The ring is a power of two so indices wrap with a mask; it is allocated at the first
 * push and only ever grows (by doubling, when full, with the entries unwrapped), until
 * qc_outq_clear() frees it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "quotecast/msg.h"
#include "quotecast/outq.h"

#define OUTQ_INITIAL_CAP 8

static inline uint32_t slot_index(const struct qc_outq *q, uint32_t i)
{
	return (q->head + i) & (q->cap - 1);
}

/*
 * Only called when full, so the entries are [head, cap) followed by [0, head). They are copied
 * in order to the start of a zeroed array: unused slots are always NULL.
 */
static int grow(struct qc_outq *q)
{
	struct qc_msg **nslot;
	uint32_t ncap, first;

	if (!q->cap) {
		ncap = OUTQ_INITIAL_CAP;
	} else {
		if (q->cap > UINT32_MAX / 2)
			return -ENOMEM;
		ncap = q->cap * 2;
	}
	nslot = calloc(ncap, sizeof(*nslot));
	if (!nslot)
		return -ENOMEM;

	if (q->count) {
		first = q->cap - q->head;
		memcpy(nslot, q->slot + q->head, first * sizeof(*nslot));
		memcpy(nslot + first, q->slot, q->head * sizeof(*nslot));
	}
	free(q->slot);
	q->slot = nslot;
	q->head = 0;
	q->cap = ncap;
	return 0;
}

void qc_outq_init(struct qc_outq *q)
{
	memset(q, 0, sizeof(*q));
}

int qc_outq_push(struct qc_outq *q, struct qc_msg *m)
{
	int ret;

	if (q->count == q->cap) {
		ret = grow(q);
		if (ret)
			return ret;
	}
	q->slot[slot_index(q, q->count)] = qc_msg_ref(m);
	q->count++;
	q->bytes += m->len;
	return 0;
}

struct qc_msg *qc_outq_peek(const struct qc_outq *q)
{
	return q->count ? q->slot[q->head] : NULL;
}

void qc_outq_pop(struct qc_outq *q)
{
	struct qc_msg *m;

	if (!q->count)
		return;
	m = q->slot[q->head];
	q->slot[q->head] = NULL;
	q->head = (q->head + 1) & (q->cap - 1);
	q->count--;
	q->bytes -= m->len;
	qc_msg_unref(&m);
}

void qc_outq_pop_written(struct qc_outq *q)
{
	struct qc_msg *m = qc_outq_peek(q);

	if (m && m->offset && q->written && qc_outq_push(q->written, m))
		q->written_lost = true;
	qc_outq_pop(q);
}

const struct qc_msg *qc_outq_oldest_tick(const struct qc_outq *q, uint32_t max)
{
	for (uint32_t i = 0; i < q->count && i < max; i++) {
		const struct qc_msg *m = q->slot[slot_index(q, i)];

		if (m->kind == QC_MSG_TICK)
			return m;
	}
	return NULL;
}

size_t qc_outq_fill(struct qc_outq *q, unsigned char *buf, size_t cap)
{
	struct qc_msg *m;
	size_t used = 0;

	/* Stop at the first frame that does not fit: frames must leave in order. */
	while (q->count) {
		m = q->slot[q->head];
		if (m->len > cap - used)
			break;
		memcpy(buf + used, qc_msg_frame(m), m->len);
		used += m->len;
		if (m->kind != QC_MSG_CONTROL)
			q->events_out++;
		qc_outq_pop_written(q);
	}
	return used;
}

uint32_t qc_outq_remove_stream(struct qc_outq *q, uint64_t stream_id)
{
	struct qc_msg *m;
	uint32_t i, kept = 0;

	/* Compact in place: the write position never passes the read position. */
	for (i = 0; i < q->count; i++) {
		m = q->slot[slot_index(q, i)];
		if (m->kind == QC_MSG_TICK && m->stream_id == stream_id) {
			q->bytes -= m->len;
			qc_msg_unref(&m);
			continue;
		}
		q->slot[slot_index(q, kept)] = m;
		kept++;
	}
	for (i = kept; i < q->count; i++)
		q->slot[slot_index(q, i)] = NULL;

	i = q->count - kept;
	q->count = kept;
	return i;
}

void qc_outq_clear(struct qc_outq *q)
{
	uint32_t i;

	struct qc_outq *written = q->written;
	bool lost = q->written_lost;

	for (i = 0; i < q->count; i++)
		qc_msg_unref(&q->slot[slot_index(q, i)]);
	free(q->slot);
	memset(q, 0, sizeof(*q));
	q->written = written;
	q->written_lost = lost;
}
