/*
 * msg: builds and frees the shared, pre-framed outgoing messages.
 *
 * One allocation holds the struct, QC_MSG_HEADROOM spare bytes, room for the largest server
 * WebSocket header and the payload. The payload always starts at the same offset; its header is
 * written right before it, so the frame is contiguous and its start moves with the header size.
 * The static scratch buffer is owned here and reused by every message built from pieces
 * (qc_msg_build_*: qc_msg_new_json(), the Socket.IO encoders), the server being single-threaded.
 * `meta` is a compact object (cobj.h) the producer may hang on the message (a tick's filtered
 * data); the message owns that reference and drops it when it is freed.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "quotecast/cobj.h"
#include "quotecast/histo.h"
#include "quotecast/msg.h"

#define WS_FIN          0x80
#define WS_OPCODE_TEXT  1
#define SCRATCH_INITIAL 4096

struct scratch {
	char *buf;
	size_t len;
	size_t cap;
};

static struct scratch json_scratch;

size_t qc_ws_header(unsigned char *out, uint8_t opcode, uint64_t len)
{
	int i;

	out[0] = WS_FIN | (opcode & 0x0f);
	if (len <= 125) {
		out[1] = (unsigned char)len;
		return 2;
	}
	if (len <= 0xffff) {
		out[1] = 126;
		out[2] = (unsigned char)(len >> 8);
		out[3] = (unsigned char)len;
		return 4;
	}
	out[1] = 127;
	for (i = 0; i < 8; i++)
		out[2 + i] = (unsigned char)(len >> (56 - 8 * i));
	return 10;
}

struct qc_msg *qc_msg_new_text(const void *payload, size_t len)
{
	struct qc_msg *m;
	unsigned char hdr[QC_WS_HDR_MAX];
	size_t hdr_len;

	/* The header is 10 bytes for anything this large, and len must hold header + payload. */
	if (len > UINT32_MAX - QC_WS_HDR_MAX)
		return NULL;
	if (len > SIZE_MAX - sizeof(*m) - QC_MSG_HEADROOM - QC_WS_HDR_MAX)
		return NULL;

	m = malloc(sizeof(*m) + QC_MSG_HEADROOM + QC_WS_HDR_MAX + len);
	if (!m)
		return NULL;

	hdr_len = qc_ws_header(hdr, WS_OPCODE_TEXT, len);
	m->refs = 1;
	m->len = (uint32_t)(hdr_len + len);
	m->hdr_len = (uint32_t)hdr_len;
	m->kind = QC_MSG_CONTROL;
	m->opcode = WS_OPCODE_TEXT;
	m->covers = 0;
	m->stream_id = 0;
	m->seq = 0;
	m->offset = 0;
	/* a vDSO clock read per frame built, not per receiver */
	m->born_us = qc_histo_mono_us();
	m->meta = NULL;
	memcpy(m->buf + QC_MSG_HEADROOM + QC_WS_HDR_MAX - hdr_len, hdr, hdr_len);
	/* memcpy with a NULL source is undefined even for 0 bytes. */
	if (len)
		memcpy(m->buf + QC_MSG_HEADROOM + QC_WS_HDR_MAX, payload, len);
	return m;
}

static int scratch_append(const char *data, size_t size, void *arg)
{
	struct scratch *s = arg;
	size_t need, cap;
	char *nbuf;

	if (size > SIZE_MAX - s->len)
		return -1;
	need = s->len + size;
	if (need > s->cap) {
		cap = s->cap ? s->cap : SCRATCH_INITIAL;
		while (cap < need) {
			if (cap > SIZE_MAX / 2)
				return -1;
			cap *= 2;
		}
		nbuf = realloc(s->buf, cap);
		if (!nbuf)
			return -1;
		s->buf = nbuf;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, data, size);
	s->len = need;
	return 0;
}

void qc_msg_build_start(void)
{
	json_scratch.len = 0;
}

int qc_msg_build_put(const char *data, size_t len)
{
	return scratch_append(data, len, &json_scratch);
}

int qc_msg_build_json(const struct json_t *j)
{
	/*
	 * json_dumpb() into a fixed buffer would have to run twice whenever the document is larger
	 * than the buffer; the callback form serialises once and grows the scratch as it goes.
	 * 15 significant digits: every decimal of up to 15 digits (any price) survives the trip
	 * through a double and back unchanged (1850.31, not 1850.3099999999999).
	 */
	return json_dump_callback(j, scratch_append, &json_scratch,
	                          JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
}

struct qc_msg *qc_msg_build_finish(void)
{
	return qc_msg_new_text(json_scratch.buf, json_scratch.len);
}

struct qc_msg *qc_msg_new_json(const struct json_t *j)
{
	if (!j || !(json_is_object(j) || json_is_array(j)))
		return NULL;
	qc_msg_build_start();
	if (qc_msg_build_json(j))
		return NULL;
	return qc_msg_build_finish();
}

void qc_msg_unref(struct qc_msg **pm)
{
	struct qc_msg *m;

	if (!pm || !*pm)
		return;
	m = *pm;
	*pm = NULL;
	if (--m->refs == 0) {
		qc_cobj_unref(&m->meta);
		free(m);
	}
}
