/*
 * chunked: the request-body decoder for Transfer-Encoding: chunked (RFC 9112 7.1).
 *
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   last-chunk   = 1*("0") [ chunk-ext ] CRLF
 *
 * libwebsockets 4.1.6 does not decode request bodies: a POST without Content-Length is handed
 * to HTTP_BODY raw, framing included, and never completes. http.c feeds those bytes here. The
 * decoder is a byte-at-a-time state machine except inside chunk data, which is passed on in
 * one piece per call, so it works whatever the reads split. Extensions and trailers are read
 * and ignored, within bounds; line ends must be CRLF.
 */
#include "quotecast/chunked.h"

#include <errno.h>
#include <stdbool.h>

enum {
	S_SIZE = 0,  /* the first hex digit of a chunk size */
	S_SIZE_MORE, /* more digits, whitespace, ';' or CR */
	S_SIZE_WS,   /* whitespace after the digits: ';' or CR */
	S_EXT,       /* an extension: up to CR */
	S_SIZE_LF,   /* LF ending the size line */
	S_DATA,      /* chunk data */
	S_DATA_CR,   /* CR after the data */
	S_DATA_LF,   /* LF after the data */
	S_TRAILER,   /* the start of a trailer line, or the final CRLF */
	S_TRAILER_LINE,
	S_TRAILER_LF,
	S_END_LF, /* LF of the final CRLF */
	S_DONE,
	S_ERROR,
};

static int hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int fail(struct qc_chunked *d, int err)
{
	d->state = S_ERROR;
	return err;
}

/* One more byte of a size or trailer line: within QC_CHUNKED_LINE_MAX? */
static bool line_ok(struct qc_chunked *d)
{
	return ++d->line <= QC_CHUNKED_LINE_MAX;
}

int qc_chunked_feed(struct qc_chunked *d, const char *in, size_t len, size_t *used,
                    qc_chunked_data_fn data, void *arg)
{
	size_t i = 0;
	int v, ret;

	if (used)
		*used = 0;
	if (d->state == S_DONE)
		return 1;
	if (d->state == S_ERROR)
		return -EINVAL;
	while (i < len) {
		char c = in[i];

		switch (d->state) {
		case S_SIZE:
			v = hex(c);
			if (v < 0)
				return fail(d, -EINVAL);
			d->left = (uint64_t)v;
			d->line = 1;
			d->state = S_SIZE_MORE;
			break;
		case S_SIZE_MORE:
			v = hex(c);
			if (v >= 0) {
				/* 16 hex digits fill 64 bits; leading zeros do not count */
				if (d->left >> 60)
					return fail(d, -EINVAL);
				d->left = d->left << 4 | (uint64_t)v;
				if (!line_ok(d))
					return fail(d, -EINVAL);
				break;
			}
			/* fall through - the digits are over */
		case S_SIZE_WS:
			if (!line_ok(d))
				return fail(d, -EINVAL);
			if (c == ' ' || c == '\t')
				d->state = S_SIZE_WS;
			else if (c == ';')
				d->state = S_EXT;
			else if (c == '\r')
				d->state = S_SIZE_LF;
			else
				return fail(d, -EINVAL);
			break;
		case S_EXT:
			if (!line_ok(d))
				return fail(d, -EINVAL);
			if (c == '\r')
				d->state = S_SIZE_LF;
			else if (c == '\n')
				return fail(d, -EINVAL);
			break;
		case S_SIZE_LF:
			if (c != '\n')
				return fail(d, -EINVAL);
			d->line = 0;
			d->state = d->left ? S_DATA : S_TRAILER;
			break;
		case S_DATA: {
			size_t n = len - i;

			if (n > d->left)
				n = (size_t)d->left;
			ret = data ? data(arg, in + i, n) : 0;
			if (ret < 0)
				return fail(d, ret);
			d->left -= n;
			i += n;
			if (!d->left)
				d->state = S_DATA_CR;
			continue;
		}
		case S_DATA_CR:
			if (c != '\r')
				return fail(d, -EINVAL);
			d->state = S_DATA_LF;
			break;
		case S_DATA_LF:
			if (c != '\n')
				return fail(d, -EINVAL);
			d->state = S_SIZE;
			break;
		case S_TRAILER:
			d->line = 0;
			if (c == '\r') {
				d->state = S_END_LF;
				break;
			}
			d->state = S_TRAILER_LINE;
			/* fall through */
		case S_TRAILER_LINE:
			if (!line_ok(d) || ++d->trailers > QC_CHUNKED_TRAILERS_MAX)
				return fail(d, -EINVAL);
			if (c == '\r')
				d->state = S_TRAILER_LF;
			else if (c == '\n')
				return fail(d, -EINVAL);
			break;
		case S_TRAILER_LF:
			if (c != '\n')
				return fail(d, -EINVAL);
			d->state = S_TRAILER;
			break;
		case S_END_LF:
			if (c != '\n')
				return fail(d, -EINVAL);
			d->state = S_DONE;
			if (used)
				*used = i + 1;
			return 1;
		default:
			return fail(d, -EINVAL);
		}
		i++;
	}
	if (used)
		*used = len;
	return 0;
}
