/*
 * fuzz_utf8: qc_utf8_valid(), the check every inbound text frame passes before it is parsed
 * (RFC 6455: not UTF-8 closes with 1007), against a plain decoder written from RFC 3629's
 * definition (decode each sequence to a code point, then refuse overlongs, surrogates and
 * anything above U+10FFFF), at eight different alignments (the check reads ASCII eight bytes
 * at a time) and on every prefix length the input's first byte picks.
 */
#include <stdbool.h>

#include "fuzz.h"
#include "quotecast/utf8.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init();
	return 0;
}

static bool reference(const unsigned char *p, size_t len)
{
	size_t i = 0, n, k;
	uint32_t cp;

	while (i < len) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if ((p[i] & 0xe0) == 0xc0) {
			n = 1;
			cp = p[i] & 0x1f;
		} else if ((p[i] & 0xf0) == 0xe0) {
			n = 2;
			cp = p[i] & 0x0f;
		} else if ((p[i] & 0xf8) == 0xf0) {
			n = 3;
			cp = p[i] & 0x07;
		} else {
			return false;
		}
		if (len - i <= n)
			return false;
		for (k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000))
			return false; /* overlong */
		if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return false;
		i += n + 1;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bool want = reference(data, size);
	char *buf = malloc(size + 8);
	size_t cut;

	CHECK(buf);
	for (size_t a = 0; a < 8; a++) {
		memcpy(buf + a, data, size);
		CHECK(qc_utf8_valid(buf + a, size) == want);
	}
	/* a prefix: where a sequence may be cut short */
	if (size) {
		cut = data[0] % size;
		CHECK(qc_utf8_valid((const char *)data, cut) == reference(data, cut));
	}
	free(buf);
	return 0;
}
