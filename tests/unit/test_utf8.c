/*
 * test_utf8: the UTF-8 check of text frames (RFC 3629 / RFC 6455 1007): the boundaries of
 * every sequence length, overlong forms, surrogates, code points above U+10FFFF, sequences cut
 * short, stray continuation bytes, a bad byte at every offset of an ASCII run (the eight-byte
 * fast path), and every 2- and 3-byte sequence against a plain reference decoder.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "quotecast/utf8.h"

static bool valid(const char *s)
{
	return qc_utf8_valid(s, strlen(s));
}

static bool bytes(size_t n, ...)
{
	unsigned char b[8];
	va_list ap;

	va_start(ap, n);
	for (size_t i = 0; i < n; i++)
		b[i] = (unsigned char)va_arg(ap, int);
	va_end(ap);
	return qc_utf8_valid((const char *)b, n);
}

/* The reference: decode one sequence the long way; its length, or 0 when ill-formed. */
static size_t ref_one(const unsigned char *p, size_t len)
{
	uint32_t cp;
	size_t n;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0)
		n = 2, cp = p[0] & 0x1f;
	else if ((p[0] & 0xf0) == 0xe0)
		n = 3, cp = p[0] & 0x0f;
	else if ((p[0] & 0xf8) == 0xf0)
		n = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000))
		return 0; /* overlong */
	if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

static bool ref_valid(const unsigned char *p, size_t len)
{
	while (len) {
		size_t n = ref_one(p, len);

		if (!n)
			return false;
		p += n;
		len -= n;
	}
	return true;
}

static void test_valid(void **state)
{
	(void)state;
	assert_true(qc_utf8_valid("", 0));
	assert_true(qc_utf8_valid(NULL, 0));
	assert_true(valid("{\"type\":\"ping\",\"timestamp\":1}"));
	assert_true(qc_utf8_valid("a\0b", 3)); /* U+0000 is a character */
	assert_true(valid("\xc2\xa9 caf\xc3\xa9 \xe2\x82\xac \xe8\x8c\x85\xe5\x8f\xb0"));
	assert_true(valid("\xf0\x9f\x98\x80 \xf0\x9f\x93\x88")); /* 4-byte: emoji */
	/* the first and last code point of each length */
	assert_true(bytes(1, 0x7f));
	assert_true(bytes(2, 0xc2, 0x80));
	assert_true(bytes(2, 0xdf, 0xbf));
	assert_true(bytes(3, 0xe0, 0xa0, 0x80));
	assert_true(bytes(3, 0xed, 0x9f, 0xbf)); /* U+D7FF */
	assert_true(bytes(3, 0xee, 0x80, 0x80)); /* U+E000 */
	assert_true(bytes(3, 0xef, 0xbf, 0xbf));
	assert_true(bytes(4, 0xf0, 0x90, 0x80, 0x80));
	assert_true(bytes(4, 0xf4, 0x8f, 0xbf, 0xbf)); /* U+10FFFF */
}

static void test_invalid(void **state)
{
	(void)state;
	/* overlong forms */
	assert_false(bytes(2, 0xc0, 0x80));
	assert_false(bytes(2, 0xc1, 0xbf));
	assert_false(bytes(3, 0xe0, 0x80, 0x80));
	assert_false(bytes(3, 0xe0, 0x9f, 0xbf));
	assert_false(bytes(4, 0xf0, 0x80, 0x80, 0x80));
	assert_false(bytes(4, 0xf0, 0x8f, 0xbf, 0xbf));
	assert_false(bytes(2, 0xc0, 0xaf)); /* the classic overlong '/' */
	/* surrogates, alone and paired (CESU-8) */
	assert_false(bytes(3, 0xed, 0xa0, 0x80));
	assert_false(bytes(3, 0xed, 0xbf, 0xbf));
	assert_false(bytes(6, 0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80));
	/* above U+10FFFF, and bytes that never occur */
	assert_false(bytes(4, 0xf4, 0x90, 0x80, 0x80));
	assert_false(bytes(4, 0xf5, 0x80, 0x80, 0x80));
	assert_false(bytes(1, 0xfe));
	assert_false(bytes(1, 0xff));
	/* cut short at the end */
	assert_false(bytes(1, 0xc3));
	assert_false(bytes(2, 0xe2, 0x82));
	assert_false(bytes(3, 0xf0, 0x9f, 0x98));
	assert_false(valid("{\"type\":\"ping\"}\xe2\x82"));
	/* continuation bytes without a lead, and leads without continuation */
	assert_false(bytes(1, 0x80));
	assert_false(bytes(1, 0xbf));
	assert_false(bytes(2, 0xc3, 0x28));
	assert_false(bytes(3, 0xe2, 0x28, 0xa1));
	assert_false(bytes(4, 0xf0, 0x9f, 0x28, 0x80));
	assert_false(bytes(4, 0xf0, 0x9f, 0x98, 0x28));
	assert_false(bytes(3, 0xc3, 0xa9, 0xa9));
}

/* A bad byte at each offset of a long ASCII run, and a good one, whatever the alignment. */
static void test_offsets(void **state)
{
	char buf[80];

	(void)state;
	for (size_t at = 0; at < 40; at++) {
		memset(buf, 'x', sizeof(buf));
		buf[at] = (char)0xff;
		assert_false(qc_utf8_valid(buf, sizeof(buf)));
		if (at > 0) /* another alignment of the same run */
			assert_false(qc_utf8_valid(buf + 1, sizeof(buf) - 1));
		memset(buf, 'x', sizeof(buf));
		buf[at] = (char)0xc3;
		buf[at + 1] = (char)0xa9;
		assert_true(qc_utf8_valid(buf, sizeof(buf)));
		/* the sequence cut by the end of the buffer */
		assert_false(qc_utf8_valid(buf, at + 1));
		assert_true(qc_utf8_valid(buf, at));
	}
}

/* Every 1-, 2- and 3-byte string, and 4-byte ones around every lead, against the reference. */
static void test_exhaustive(void **state)
{
	static const unsigned char tails[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90,
	                                      0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xff};
	unsigned char b[4];

	(void)state;
	for (unsigned i = 0; i < 256; i++) {
		b[0] = (unsigned char)i;
		assert_int_equal(qc_utf8_valid((char *)b, 1), ref_valid(b, 1));
		for (unsigned j = 0; j < 256; j++) {
			b[1] = (unsigned char)j;
			assert_int_equal(qc_utf8_valid((char *)b, 2), ref_valid(b, 2));
			for (unsigned k = 0; k < 256; k++) {
				b[2] = (unsigned char)k;
				if (qc_utf8_valid((char *)b, 3) != ref_valid(b, 3))
					fail_msg("%02x %02x %02x", i, j, k);
			}
			if (i < 0xf0 || i > 0xf7)
				continue;
			for (size_t k = 0; k < sizeof(tails); k++)
				for (size_t l = 0; l < sizeof(tails); l++) {
					b[2] = tails[k];
					b[3] = tails[l];
					if (qc_utf8_valid((char *)b, 4) != ref_valid(b, 4))
						fail_msg("%02x %02x %02x %02x", i, j, b[2], b[3]);
				}
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid),
	    cmocka_unit_test(test_invalid),
	    cmocka_unit_test(test_offsets),
	    cmocka_unit_test(test_exhaustive),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
