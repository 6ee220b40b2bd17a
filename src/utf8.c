/*
 * utf8: the well-formedness check of RFC 3629 section 4 that RFC 6455 asks of every text frame
 * (a frame that fails it closes the connection with 1007). It runs on every inbound text
 * frame, so ASCII, which is nearly all of our JSON, is skipped eight bytes at a time; a
 * multi-byte sequence is checked against the table of valid byte ranges:
 *
 *   U+0000..U+007F     00..7F
 *   U+0080..U+07FF     C2..DF 80..BF
 *   U+0800..U+0FFF     E0     A0..BF 80..BF
 *   U+1000..U+CFFF     E1..EC 80..BF 80..BF
 *   U+D000..U+D7FF     ED     80..9F 80..BF
 *   U+E000..U+FFFF     EE..EF 80..BF 80..BF
 *   U+10000..U+3FFFF   F0     90..BF 80..BF 80..BF
 *   U+40000..U+FFFFF   F1..F3 80..BF 80..BF 80..BF
 *   U+100000..U+10FFFF F4     80..8F 80..BF 80..BF
 */
#include "quotecast/utf8.h"

#include <stdint.h>
#include <string.h>

#define HIGH_BITS UINT64_C(0x8080808080808080)

static bool cont(unsigned char c)
{
	return (c & 0xc0) == 0x80;
}

bool qc_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;

	while (p < end) {
		unsigned char c = *p, lo = 0x80, hi = 0xbf;
		uint64_t w;
		size_t n;

		if (c < 0x80) {
			/* a run of ASCII: eight bytes per step while no high bit is set */
			while ((size_t)(end - p) >= 8) {
				memcpy(&w, p, 8);
				if (w & HIGH_BITS)
					break;
				p += 8;
			}
			while (p < end && *p < 0x80)
				p++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			if (c == 0xe0)
				lo = 0xa0; /* overlong below U+0800 */
			else if (c == 0xed)
				hi = 0x9f; /* surrogates */
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			if (c == 0xf0)
				lo = 0x90; /* overlong below U+10000 */
			else if (c == 0xf4)
				hi = 0x8f; /* above U+10FFFF */
		} else {
			return false; /* a continuation byte, C0/C1 (overlong), F5..FF */
		}
		if ((size_t)(end - p) <= n)
			return false; /* cut short */
		if (p[1] < lo || p[1] > hi)
			return false;
		for (size_t i = 2; i <= n; i++)
			if (!cont(p[i]))
				return false;
		p += n + 1;
	}
	return true;
}
