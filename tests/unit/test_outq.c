/*
 * test_outq: ring order across wrap-around and growth, reference and byte accounting,
 * coalescing fill, per-stream removal and clear.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "quotecast/msg.h"
#include "quotecast/outq.h"

/* A message whose payload is @len copies of @c, with the given kind and stream id. */
static struct qc_msg *mk(char c, size_t len, enum qc_msg_kind kind, uint32_t stream_id)
{
	char *p = malloc(len ? len : 1);
	struct qc_msg *m;

	assert_non_null(p);
	memset(p, c, len);
	m = qc_msg_new_text(p, len);
	free(p);
	assert_non_null(m);
	m->kind = kind;
	m->stream_id = stream_id;
	return m;
}

/* White-box: live slots hold frames, vacated slots are cleared, bytes match the frames. */
static void check_ring(const struct qc_outq *q)
{
	size_t bytes = 0;
	uint32_t i, off;

	if (!q->cap) {
		assert_null(q->slot);
		assert_int_equal(q->count, 0);
		assert_int_equal(q->bytes, 0);
		return;
	}
	assert_int_equal(q->cap & (q->cap - 1), 0);
	assert_true(q->count <= q->cap);
	for (i = 0; i < q->cap; i++) {
		off = (i - q->head) & (q->cap - 1);
		if (off < q->count) {
			assert_non_null(q->slot[i]);
			bytes += q->slot[i]->len;
		} else {
			assert_null(q->slot[i]);
		}
	}
	assert_int_equal(q->bytes, bytes);
}

static void unref_all(struct qc_msg **ms, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		qc_msg_unref(&ms[i]);
}

static void test_init_and_empty(void **state)
{
	struct qc_outq q;

	(void)state;
	memset(&q, 0x5a, sizeof(q));
	qc_outq_init(&q);
	assert_null(q.slot);
	assert_int_equal(q.head, 0);
	assert_int_equal(q.count, 0);
	assert_int_equal(q.cap, 0);
	assert_int_equal(q.bytes, 0);
	assert_true(qc_outq_empty(&q));
	assert_null(qc_outq_peek(&q));
	qc_outq_pop(&q);
	assert_int_equal(q.count, 0);
	assert_int_equal(qc_outq_remove_stream(&q, 1), 0);
	qc_outq_clear(&q);
	assert_null(q.slot);
}

static void test_push_pop_refs_bytes(void **state)
{
	struct qc_outq q = {0};
	struct qc_msg *a = mk('a', 3, QC_MSG_CONTROL, 0);
	struct qc_msg *b = mk('b', 200, QC_MSG_ROOM, 0);

	(void)state;
	assert_int_equal(qc_outq_push(&q, a), 0);
	assert_non_null(q.slot);
	assert_int_equal(q.cap, 8);
	assert_int_equal(a->refs, 2);
	assert_int_equal(qc_outq_push(&q, b), 0);
	assert_int_equal(q.count, 2);
	assert_false(qc_outq_empty(&q));
	assert_int_equal(q.bytes, a->len + b->len);
	assert_int_equal(q.bytes, (2 + 3) + (4 + 200));

	assert_ptr_equal(qc_outq_peek(&q), a);
	qc_outq_pop(&q);
	assert_int_equal(a->refs, 1);
	assert_int_equal(q.bytes, b->len);
	assert_ptr_equal(qc_outq_peek(&q), b);
	qc_outq_pop(&q);
	assert_int_equal(b->refs, 1);
	assert_int_equal(q.bytes, 0);
	assert_true(qc_outq_empty(&q));
	assert_null(qc_outq_peek(&q));

	qc_msg_unref(&a);
	qc_msg_unref(&b);
	qc_outq_clear(&q);
}

static void test_wrap_then_grow(void **state)
{
	struct qc_outq q;
	struct qc_msg *m[13];
	size_t bytes = 0;
	int i;

	(void)state;
	qc_outq_init(&q);
	for (i = 0; i < 13; i++)
		m[i] = mk((char)('a' + i), (size_t)i, QC_MSG_CONTROL, 0);

	for (i = 0; i < 6; i++)
		assert_int_equal(qc_outq_push(&q, m[i]), 0);
	for (i = 0; i < 4; i++) {
		assert_ptr_equal(qc_outq_peek(&q), m[i]);
		qc_outq_pop(&q);
	}
	assert_int_equal(q.head, 4);

	/* m6..m11 fill slots 6, 7, 0, 1, 2, 3: the ring is full and wrapped. */
	for (i = 6; i < 12; i++)
		assert_int_equal(qc_outq_push(&q, m[i]), 0);
	assert_int_equal(q.cap, 8);
	assert_int_equal(q.count, 8);
	assert_ptr_equal(q.slot[0], m[8]);
	assert_ptr_equal(q.slot[3], m[11]);

	assert_int_equal(qc_outq_push(&q, m[12]), 0);
	assert_int_equal(q.cap, 16);
	assert_int_equal(q.count, 9);
	check_ring(&q);
	for (i = 4; i < 13; i++)
		bytes += m[i]->len;
	assert_int_equal(q.bytes, bytes);

	for (i = 4; i < 13; i++) {
		assert_ptr_equal(qc_outq_peek(&q), m[i]);
		assert_int_equal(m[i]->refs, 2);
		qc_outq_pop(&q);
		assert_int_equal(m[i]->refs, 1);
	}
	assert_true(qc_outq_empty(&q));
	assert_int_equal(q.bytes, 0);

	qc_outq_clear(&q);
	unref_all(m, 13);
}

/* Interleaved pushes and pops against a plain FIFO model, through several growths. */
static void test_model_fifo(void **state)
{
	enum { N = 300 };
	struct qc_outq q = {0};
	struct qc_msg *m[N];
	size_t in = 0, out = 0, bytes = 0;
	unsigned int seed = 12345;
	int i;

	(void)state;
	for (i = 0; i < N; i++)
		m[i] = mk('m', (size_t)(i % 17), QC_MSG_CONTROL, 0);

	while (out < N) {
		seed = seed * 1103515245u + 12345u;
		/* Push about twice as often as pop so the queue grows while the head moves. */
		if (in < N && (seed >> 16) % 3 != 0) {
			assert_int_equal(qc_outq_push(&q, m[in]), 0);
			bytes += m[in]->len;
			in++;
		} else if (out < in) {
			assert_ptr_equal(qc_outq_peek(&q), m[out]);
			qc_outq_pop(&q);
			bytes -= m[out]->len;
			out++;
		}
		assert_int_equal(q.count, in - out);
		assert_int_equal(q.bytes, bytes);
		check_ring(&q);
	}
	assert_true(q.cap >= 64);
	for (i = 0; i < N; i++)
		assert_int_equal(m[i]->refs, 1);
	qc_outq_clear(&q);
	unref_all(m, N);
}

static void test_fill(void **state)
{
	struct qc_outq q = {0};
	struct qc_msg *a = mk('a', 3, QC_MSG_CONTROL, 0); /* 5 bytes */
	struct qc_msg *b = mk('b', 10, QC_MSG_ROOM, 0);   /* 12 bytes */
	struct qc_msg *c = mk('c', 1, QC_MSG_TICK, 4);    /* 3 bytes */
	unsigned char buf[64];
	unsigned char want[64];

	(void)state;
	assert_int_equal(qc_outq_fill(&q, buf, sizeof(buf)), 0);

	qc_outq_push(&q, a);
	qc_outq_push(&q, b);
	qc_outq_push(&q, c);
	assert_int_equal(q.bytes, 20);

	/* Too small for the first frame: nothing copied, nothing popped, buffer untouched. */
	memset(buf, 0xee, sizeof(buf));
	assert_int_equal(qc_outq_fill(&q, buf, 4), 0);
	assert_int_equal(buf[0], 0xee);
	assert_int_equal(q.count, 3);
	assert_int_equal(q.bytes, 20);
	assert_int_equal(qc_outq_fill(&q, buf, 0), 0);
	assert_int_equal(q.count, 3);

	/* b alone would fit in 16 but not in what is left after a. */
	memset(buf, 0xee, sizeof(buf));
	assert_int_equal(qc_outq_fill(&q, buf, 16), 5);
	assert_memory_equal(buf, qc_msg_frame(a), 5);
	assert_int_equal(buf[5], 0xee);
	assert_int_equal(q.count, 2);
	assert_int_equal(q.bytes, 15);
	assert_int_equal(a->refs, 1);
	/* Rebuild [a, b, c]. */
	qc_outq_pop(&q);
	qc_outq_pop(&q);
	assert_true(qc_outq_empty(&q));
	assert_int_equal(qc_outq_push(&q, a), 0);
	assert_int_equal(qc_outq_push(&q, b), 0);
	assert_int_equal(qc_outq_push(&q, c), 0);
	assert_int_equal(q.bytes, 20);

	/* a fits, b does not: c would fit but must not overtake b. */
	memset(buf, 0xee, sizeof(buf));
	assert_int_equal(qc_outq_fill(&q, buf, 10), 5);
	assert_memory_equal(buf, qc_msg_frame(a), 5);
	assert_int_equal(buf[5], 0xee);
	assert_int_equal(q.count, 2);
	assert_ptr_equal(qc_outq_peek(&q), b);
	assert_int_equal(q.bytes, 15);
	assert_int_equal(a->refs, 1);

	/* Exact fit of b + c. */
	memset(buf, 0xee, sizeof(buf));
	memcpy(want, qc_msg_frame(b), 12);
	memcpy(want + 12, qc_msg_frame(c), 3);
	assert_int_equal(qc_outq_fill(&q, buf, 15), 15);
	assert_memory_equal(buf, want, 15);
	assert_int_equal(buf[15], 0xee);
	assert_true(qc_outq_empty(&q));
	assert_int_equal(q.bytes, 0);
	assert_int_equal(b->refs, 1);
	assert_int_equal(c->refs, 1);

	/* The frames in the buffer are complete WebSocket frames: header then payload. */
	assert_int_equal(want[0], 0x81);
	assert_int_equal(want[1], 10);
	assert_int_equal(want[2], 'b');

	qc_msg_unref(&a);
	qc_msg_unref(&b);
	qc_msg_unref(&c);
	qc_outq_clear(&q);
}

static void test_fill_big_first(void **state)
{
	struct qc_outq q = {0};
	struct qc_msg *big = mk('B', 70000, QC_MSG_ROOM, 0); /* 70010 bytes */
	struct qc_msg *s = mk('s', 2, QC_MSG_CONTROL, 0);    /* 4 bytes */
	unsigned char buf[4096];

	(void)state;
	qc_outq_push(&q, big);
	qc_outq_push(&q, s);
	assert_int_equal(big->len, 70010);

	assert_int_equal(qc_outq_fill(&q, buf, sizeof(buf)), 0);
	assert_int_equal(q.count, 2);
	assert_ptr_equal(qc_outq_peek(&q), big);
	assert_int_equal(q.bytes, 70014);

	/* The caller writes the big frame on its own, then the rest coalesces. */
	qc_outq_pop(&q);
	assert_int_equal(qc_outq_fill(&q, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, qc_msg_frame(s), 4);
	assert_true(qc_outq_empty(&q));

	qc_msg_unref(&big);
	qc_msg_unref(&s);
	qc_outq_clear(&q);
}

static void test_remove_stream(void **state)
{
	struct qc_outq q = {0};
	struct qc_msg *pad = mk('p', 1, QC_MSG_CONTROL, 0);
	struct qc_msg *t1 = mk('1', 5, QC_MSG_TICK, 7);
	struct qc_msg *c1 = mk('c', 6, QC_MSG_CONTROL, 7);
	struct qc_msg *t2 = mk('2', 7, QC_MSG_TICK, 9);
	struct qc_msg *t3 = mk('3', 8, QC_MSG_TICK, 7);
	struct qc_msg *r1 = mk('r', 9, QC_MSG_ROOM, 7);
	struct qc_msg *t4 = mk('4', 10, QC_MSG_TICK, 7);
	struct qc_msg *c2 = mk('d', 11, QC_MSG_CONTROL, 0);
	struct qc_msg *t5 = mk('5', 12, QC_MSG_TICK, 7);
	struct qc_msg *keep[] = {c1, t2, r1, c2};
	struct qc_msg *all[] = {t1, c1, t2, t3, r1, t4, c2, t5};
	size_t bytes = 0;
	int i;

	(void)state;
	/* Move the head so that the queued entries wrap around the end of the ring. */
	for (i = 0; i < 5; i++)
		qc_outq_push(&q, pad);
	for (i = 0; i < 5; i++)
		qc_outq_pop(&q);
	assert_int_equal(q.head, 5);

	for (i = 0; i < 8; i++)
		assert_int_equal(qc_outq_push(&q, all[i]), 0);
	assert_int_equal(q.cap, 8);

	assert_int_equal(qc_outq_remove_stream(&q, 8), 0);
	assert_int_equal(q.count, 8);

	assert_int_equal(qc_outq_remove_stream(&q, 7), 4);
	assert_int_equal(q.count, 4);
	check_ring(&q);
	for (i = 0; i < 4; i++)
		bytes += keep[i]->len;
	assert_int_equal(q.bytes, bytes);
	assert_int_equal(t1->refs, 1);
	assert_int_equal(t3->refs, 1);
	assert_int_equal(t4->refs, 1);
	assert_int_equal(t5->refs, 1);
	/* Non-tick frames that happen to carry the stream id stay. */
	assert_int_equal(c1->refs, 2);
	assert_int_equal(r1->refs, 2);

	/* The tail continues after the kept entries. */
	assert_int_equal(qc_outq_push(&q, t1), 0);
	for (i = 0; i < 4; i++) {
		assert_ptr_equal(qc_outq_peek(&q), keep[i]);
		qc_outq_pop(&q);
	}
	assert_ptr_equal(qc_outq_peek(&q), t1);
	qc_outq_pop(&q);
	assert_true(qc_outq_empty(&q));
	assert_int_equal(q.bytes, 0);

	for (i = 0; i < 8; i++)
		assert_int_equal(all[i]->refs, 1);
	qc_outq_clear(&q);
	unref_all(all, 8);
	qc_msg_unref(&pad);
}

static void test_remove_stream_all(void **state)
{
	struct qc_outq q = {0};
	struct qc_msg *t = mk('t', 4, QC_MSG_TICK, 3);
	int i;

	(void)state;
	for (i = 0; i < 5; i++)
		qc_outq_push(&q, t);
	assert_int_equal(t->refs, 6);
	assert_int_equal(qc_outq_remove_stream(&q, 3), 5);
	check_ring(&q);
	assert_true(qc_outq_empty(&q));
	assert_int_equal(q.bytes, 0);
	assert_int_equal(t->refs, 1);
	assert_null(qc_outq_peek(&q));

	assert_int_equal(qc_outq_push(&q, t), 0);
	assert_ptr_equal(qc_outq_peek(&q), t);
	assert_int_equal(q.bytes, t->len);
	qc_outq_clear(&q);
	assert_int_equal(t->refs, 1);
	qc_msg_unref(&t);
}

static void test_clear(void **state)
{
	struct qc_outq q;
	struct qc_msg *m[10];
	int i;

	(void)state;
	qc_outq_init(&q);
	for (i = 0; i < 10; i++) {
		m[i] = mk('x', (size_t)i, QC_MSG_ROOM, 0);
		qc_outq_push(&q, m[i]);
	}
	qc_outq_pop(&q);
	assert_int_equal(q.cap, 16);

	qc_outq_clear(&q);
	assert_null(q.slot);
	assert_int_equal(q.head, 0);
	assert_int_equal(q.count, 0);
	assert_int_equal(q.cap, 0);
	assert_int_equal(q.bytes, 0);
	for (i = 0; i < 10; i++)
		assert_int_equal(m[i]->refs, 1);

	/* Usable again after clear. */
	assert_int_equal(qc_outq_push(&q, m[3]), 0);
	assert_int_equal(q.cap, 8);
	assert_ptr_equal(qc_outq_peek(&q), m[3]);
	qc_outq_clear(&q);
	qc_outq_clear(&q);
	unref_all(m, 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_init_and_empty), cmocka_unit_test(test_push_pop_refs_bytes),
	    cmocka_unit_test(test_wrap_then_grow), cmocka_unit_test(test_model_fifo),
	    cmocka_unit_test(test_fill),           cmocka_unit_test(test_fill_big_first),
	    cmocka_unit_test(test_remove_stream),  cmocka_unit_test(test_remove_stream_all),
	    cmocka_unit_test(test_clear),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
