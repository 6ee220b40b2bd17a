/*
 * chunked: decoding an HTTP/1.1 request body sent with Transfer-Encoding: chunked (RFC 9112
 * section 7.1), incrementally, as the bytes arrive. No allocation; the data goes to a callback.
 */
#ifndef QC_CHUNKED_H
#define QC_CHUNKED_H

#include <stddef.h>
#include <stdint.h>

/* Longest chunk-size line (with extensions) or trailer line, and all trailers together. */
#define QC_CHUNKED_LINE_MAX     4096
#define QC_CHUNKED_TRAILERS_MAX 16384

/* The decoder's state; zero it (memset, or = {0}) to start a body. */
struct qc_chunked {
	uint64_t left;     /* data bytes still to come in this chunk */
	uint32_t line;     /* bytes of the current size or trailer line */
	uint32_t trailers; /* bytes of trailers so far */
	uint8_t state;
};

/* @n data bytes at @p (not NUL-terminated): 0 to go on, a negative errno to stop. */
typedef int (*qc_chunked_data_fn)(void *arg, const char *p, size_t n);

/**
 * qc_chunked_feed() - decode the next @len bytes of a chunked body, handing every data byte to
 * @data. Returns 0 when the body goes on, 1 when it ended (the last chunk and the trailers are
 * read; *@used says how many of the @len bytes belong to it, the rest is whatever follows),
 * -EINVAL when the framing is malformed (a bad size, a missing CRLF, a line over
 * QC_CHUNKED_LINE_MAX, trailers over QC_CHUNKED_TRAILERS_MAX, a chunk size over 2^64 - 1), or
 * @data's own negative errno. After 1 or an error, further calls return the same.
 */
int qc_chunked_feed(struct qc_chunked *d, const char *in, size_t len, size_t *used,
                    qc_chunked_data_fn data, void *arg);

#endif
