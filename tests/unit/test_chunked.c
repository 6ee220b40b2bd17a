/*
 * test_chunked: the Transfer-Encoding: chunked decoder. Whole bodies, the same bodies fed one
 * byte at a time and split at every offset, extensions, trailers, what follows the body, and
 * every kind of malformed framing and bound.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "quotecast/chunked.h"

struct sink {
	char buf[8192];
	size_t len;
	int fail_at; /* the call that answers -ENOSPC; 0: none */
	int calls;
};

static int collect(void *arg, const char *p, size_t n)
{
	struct sink *s = arg;

	if (++s->calls == s->fail_at)
		return -ENOSPC;
	assert_true(s->len + n <= sizeof(s->buf));
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	return 0;
}

/* Decode @body (NUL-terminated) in pieces of @step bytes; the result and the bytes used. */
static int decode(const char *body, size_t step, struct sink *s, size_t *total_used)
{
	struct qc_chunked d = {0};
	size_t len = strlen(body), off = 0, used;
	int ret = 0;

	memset(s, 0, sizeof(*s));
	*total_used = 0;
	while (off < len) {
		size_t n = len - off < step ? len - off : step;

		ret = qc_chunked_feed(&d, body + off, n, &used, collect, s);
		*total_used += used;
		if (ret)
			return ret;
		off += n;
	}
	return ret;
}

static void expect_body(const char *body, const char *want, size_t want_used)
{
	struct sink s;
	size_t used;

	for (size_t step = 1; step <= strlen(body); step++) {
		assert_int_equal(decode(body, step, &s, &used), 1);
		assert_int_equal(s.len, strlen(want));
		assert_memory_equal(s.buf, want, s.len);
		assert_int_equal(used, want_used);
	}
}

static void expect_error(const char *body)
{
	struct sink s;
	size_t used;

	for (size_t step = 1; step <= strlen(body); step++)
		if (decode(body, step, &s, &used) != -EINVAL)
			fail_msg("accepted (step %zu): \"%s\"", step, body);
}

static void test_bodies(void **state)
{
	const char *b;

	(void)state;
	b = "5\r\nhello\r\n0\r\n\r\n";
	expect_body(b, "hello", strlen(b));
	b = "0\r\n\r\n";
	expect_body(b, "", strlen(b));
	b = "3\r\n[1,\r\n2\r\n2]\r\n0\r\n\r\n";
	expect_body(b, "[1,2]", strlen(b));
	/* hex sizes in both cases, leading zeros */
	b = "A\r\n0123456789\r\nb\r\nabcdefghijk\r\n000\r\n\r\n";
	expect_body(b, "0123456789abcdefghijk", strlen(b));
	b = "0000000000000000000000001\r\nx\r\n0\r\n\r\n";
	expect_body(b, "x", strlen(b));
	/* extensions, whitespace before them, and trailers are read and ignored */
	b = "4;name=value\r\ntick\r\n2 ;x\r\ns!\r\n0;last\r\nX-Checksum: 1\r\nX-Other: 2\r\n\r\n";
	expect_body(b, "ticks!", strlen(b));
	b = "1\t\r\n{\r\n1 \r\n}\r\n0\r\n\r\n";
	expect_body(b, "{}", strlen(b));
	/* CR or LF inside chunk data is data */
	b = "4\r\n\r\n\r\n\r\n0\r\n\r\n";
	expect_body(b, "\r\n\r\n", strlen(b));
}

/* The bytes after the body (a pipelined request) are not consumed. */
static void test_after_body(void **state)
{
	const char *b = "2\r\nok\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
	struct qc_chunked d = {0};
	struct sink s = {0};
	size_t used;

	(void)state;
	assert_int_equal(qc_chunked_feed(&d, b, strlen(b), &used, collect, &s), 1);
	assert_int_equal(used, strlen("2\r\nok\r\n0\r\n\r\n"));
	/* done stays done */
	assert_int_equal(qc_chunked_feed(&d, "x", 1, &used, collect, &s), 1);
	assert_int_equal(used, 0);
	expect_body(b, "ok", strlen("2\r\nok\r\n0\r\n\r\n"));
}

static void test_malformed(void **state)
{
	char big[QC_CHUNKED_LINE_MAX + 64], trailers[QC_CHUNKED_TRAILERS_MAX + 256];
	size_t n;

	(void)state;
	expect_error("\r\n0\r\n\r\n");            /* no size */
	expect_error("g\r\n");                    /* not hex */
	expect_error("-1\r\nx\r\n");              /* no sign */
	expect_error("0x5\r\nhello\r\n");         /* no prefix */
	expect_error("5\nhello\r\n0\r\n\r\n");    /* bare LF */
	expect_error("5\r\nhelloX\r\n0\r\n\r\n"); /* data longer than its size */
	expect_error("5\r\nhello\n0\r\n\r\n");    /* no CR after the data */
	expect_error("5\r\nhello\rX0\r\n\r\n");   /* CR without LF */
	expect_error("5 5\r\nhello\r\n");         /* digits after whitespace */
	expect_error("5;ext\nhello\r\n");         /* LF in an extension */
	expect_error("0\r\nX-Trailer: 1\n\r\n");  /* bare LF in a trailer */
	expect_error("0\r\n\rX");                 /* CR without LF at the end */
	expect_error("10000000000000000\r\n");    /* 2^64: too big */
	expect_error("fffffffffffffffff\r\n");    /* 17 significant digits */

	/* a size line longer than QC_CHUNKED_LINE_MAX */
	n = (size_t)snprintf(big, sizeof(big), "1;");
	memset(big + n, 'e', sizeof(big) - n - 1);
	big[sizeof(big) - 1] = '\0';
	expect_error(big);
	/* trailers over QC_CHUNKED_TRAILERS_MAX in lines that each fit */
	n = (size_t)snprintf(trailers, sizeof(trailers), "0\r\n");
	while (n + 100 < sizeof(trailers) - 1)
		n += (size_t)snprintf(trailers + n, sizeof(trailers) - n, "X-Pad: %090d\r\n", 0);
	expect_error(trailers);
}

/* The largest chunk size is taken (and data callbacks see it go by in pieces). */
static void test_limits(void **state)
{
	struct qc_chunked d = {0};
	struct sink s = {0};
	size_t used;

	(void)state;
	assert_int_equal(qc_chunked_feed(&d, "ffffffffffffffff\r\nabc", 21, &used, collect, &s), 0);
	assert_int_equal(s.len, 3);
	assert_true(d.left == UINT64_MAX - 3);
}

/* The data callback's error stops the decoder and is returned. */
static void test_sink_error(void **state)
{
	const char *b = "2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n";
	struct qc_chunked d = {0};
	struct sink s = {0};
	size_t used;

	(void)state;
	s.fail_at = 2;
	assert_int_equal(qc_chunked_feed(&d, b, strlen(b), &used, collect, &s), -ENOSPC);
	assert_int_equal(s.len, 2);
	assert_int_equal(qc_chunked_feed(&d, b, strlen(b), &used, collect, &s), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bodies),     cmocka_unit_test(test_after_body),
	    cmocka_unit_test(test_malformed),  cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_sink_error),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
