/*
 * held: a FIFO of numbered messages waiting behind a read-back (held.h). A singly linked list
 * with a tail pointer: push and pop are O(1), one allocation per message.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "quotecast/held.h"

void qc_held_init(struct qc_held *q, uint32_t max)
{
	q->head = NULL;
	q->tail = &q->head;
	q->n = 0;
	q->max = max;
}

int qc_held_push(struct qc_held *q, uint64_t seq, const char *epoch, const char *data, size_t len)
{
	size_t elen = strlen(epoch);
	struct qc_held_msg *m;

	if (q->n >= q->max)
		return -ENOSPC;
	if (elen > QC_HELD_EPOCH_MAX)
		return -EINVAL;
	m = malloc(sizeof(*m) + len);
	if (!m)
		return -ENOMEM;
	m->next = NULL;
	m->seq = seq;
	memcpy(m->epoch, epoch, elen + 1);
	m->len = len;
	if (len)
		memcpy(m->data, data, len);
	*q->tail = m;
	q->tail = &m->next;
	q->n++;
	return 0;
}

struct qc_held_msg *qc_held_pop(struct qc_held *q)
{
	struct qc_held_msg *m = q->head;

	if (!m)
		return NULL;
	q->head = m->next;
	if (!q->head)
		q->tail = &q->head;
	q->n--;
	m->next = NULL;
	return m;
}

void qc_held_clear(struct qc_held *q)
{
	struct qc_held_msg *m;

	while ((m = qc_held_pop(q)))
		free(m);
}
