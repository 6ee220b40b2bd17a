/*
 * fuzz_chunked: qc_chunked_feed(), the decoder of POST bodies sent with Transfer-Encoding:
 * chunked (http.c feeds it the raw bytes lws hands over, split however the reads fell). The
 * first input byte seeds how the rest is split; the body is decoded three ways: in one call,
 * one byte per call, and in pieces of 1-64 bytes. Invariants: the three agree on the result,
 * on where the body ended and on every data byte; the data is never longer than the input;
 * after the end or an error the decoder keeps saying so.
 */
#include <errno.h>

#include "fuzz.h"
#include "quotecast/chunked.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init();
	return 0;
}

struct sink {
	char *buf;
	size_t len, cap;
};

static int collect(void *arg, const char *p, size_t n)
{
	struct sink *s = arg;

	CHECK(n > 0 && s->len + n <= s->cap);
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	return 0;
}

struct outcome {
	int ret;
	size_t end; /* input bytes that belonged to the body, when ret is 1 */
	struct sink data;
};

/* Decode @in in pieces of @step bytes (0: sizes from @seed, 1-64). */
static void decode(const char *in, size_t len, size_t step, uint8_t seed, struct outcome *o)
{
	struct qc_chunked d = {0};
	size_t off = 0, n, used;
	uint32_t x = seed | 0x100u;

	o->data.buf = malloc(len + 1);
	CHECK(o->data.buf);
	o->data.len = 0;
	o->data.cap = len;
	o->ret = 0;
	o->end = 0;
	while (off < len) {
		if (step) {
			n = step;
		} else {
			x = x * 1103515245u + 12345u;
			n = 1 + (x >> 16) % 64;
		}
		if (n > len - off)
			n = len - off;
		used = (size_t)-1;
		o->ret = qc_chunked_feed(&d, in + off, n, &used, collect, &o->data);
		CHECK(o->ret == 0 || o->ret == 1 || o->ret == -EINVAL);
		if (o->ret == 1) {
			CHECK(used <= n);
			o->end = off + used;
			break;
		}
		if (o->ret)
			break;
		off += n;
	}
	/* a finished or failed decoder stays so */
	if (o->ret) {
		used = (size_t)-1;
		CHECK(qc_chunked_feed(&d, "0\r\n\r\n", 5, &used, collect, &o->data) == o->ret);
	}
}

static void same(const struct outcome *a, const struct outcome *b)
{
	CHECK(a->ret == b->ret);
	CHECK(a->end == b->end);
	CHECK(a->data.len == b->data.len && !memcmp(a->data.buf, b->data.buf, a->data.len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outcome whole, bytes, pieces;
	const char *in = (const char *)data + 1;
	size_t len = size ? size - 1 : 0;

	if (!size)
		return 0;
	decode(in, len, len ? len : 1, 0, &whole);
	decode(in, len, 1, 0, &bytes);
	decode(in, len, 0, data[0], &pieces);
	same(&whole, &bytes);
	same(&whole, &pieces);
	free(whole.data.buf);
	free(bytes.data.buf);
	free(pieces.data.buf);
	return 0;
}
