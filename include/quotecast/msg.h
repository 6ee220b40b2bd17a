/*
 * msg: the immutable, reference-counted outgoing frame.
 *
 * A message is encoded once and shared by every receiver. The buffer holds a complete
 * server-to-client WebSocket frame (header + payload, never masked), preceded by at least
 * QC_MSG_HEADROOM spare bytes so that a transport may hand the frame to lws_write() in place
 * (LWS_PRE). Receivers take references; the last unref frees it.
 */
#ifndef QC_MSG_H
#define QC_MSG_H

#include <stddef.h>
#include <stdint.h>

struct json_t;
struct qc_cobj;

/* Spare bytes before the frame; ws.c checks at compile time that this covers LWS_PRE. */
#define QC_MSG_HEADROOM 16
/* The largest WebSocket header a server writes: 0x81, 127, 8 length bytes. */
#define QC_WS_HDR_MAX 10

enum qc_msg_kind {
	QC_MSG_CONTROL = 0, /* responses, session, pong: never merged, never dropped */
	QC_MSG_ROOM,        /* room / direct messages: never merged or dropped */
	QC_MSG_TICK,        /* stream_data: may be conflated per symbol (see outq) */
};

struct qc_msg {
	uint32_t refs;
	uint32_t len;     /* bytes of the complete frame (header + payload) */
	uint32_t hdr_len; /* bytes of WebSocket header at frame() */
	uint8_t kind;     /* enum qc_msg_kind */
	uint8_t opcode;   /* 1 text, 2 binary */
	/*
	 * QC_MSG_TICK, a merged tick (conflation, max_hz): how many seqs before @seq it also
	 * stands for (saturating), so that a rewind for a resume goes back past all of them
	 */
	uint16_t covers;
	uint64_t stream_id; /* QC_MSG_TICK: the stream id (one life of a symbol), for conflation */
	uint64_t seq;       /* QC_MSG_TICK: the tick's seq */
	uint64_t offset;    /* Socket.IO connection state recovery: the event's offset, or 0 */
	int64_t born_us;    /* when it was built (qc_histo_mono_us()): /metrics' publish-to-write */
	struct qc_cobj *meta; /* optional: a reference the message owns (a tick's data), or NULL */
	unsigned char buf[];  /* QC_MSG_HEADROOM + QC_WS_HDR_MAX + payload */
};

/**
 * qc_msg_new_text() - frame a payload as one WebSocket text message.
 * Copies @len bytes of @payload. Returns a message holding one reference, or NULL on ENOMEM
 * or when @len exceeds UINT32_MAX - headroom.
 */
struct qc_msg *qc_msg_new_text(const void *payload, size_t len);

/**
 * qc_msg_new_json() - serialise @j compactly (JSON_COMPACT) and frame it as a text message.
 * Borrows @j. Returns a message holding one reference, or NULL.
 */
struct qc_msg *qc_msg_new_json(const struct json_t *j);

/*
 * Building a text message from pieces (a prefix, JSON values, punctuation) in the static
 * scratch buffer: start, put what it holds in order, then finish copies it into a new message
 * (one reference; NULL on ENOMEM). The put calls return 0 or -1 (ENOMEM). Not reentrant: one
 * message at a time (the server is single-threaded).
 */
void qc_msg_build_start(void);
int qc_msg_build_put(const char *data, size_t len);
/* JSON_COMPACT, any JSON value, reals with 15 significant digits */
int qc_msg_build_json(const struct json_t *j);
struct qc_msg *qc_msg_build_finish(void);

/** qc_msg_ref() - take one more reference; returns @m. */
static inline struct qc_msg *qc_msg_ref(struct qc_msg *m)
{
	m->refs++;
	return m;
}

/** qc_msg_unref() - drop the reference in *@pm and set *@pm to NULL. NULL-safe. */
void qc_msg_unref(struct qc_msg **pm);

/** qc_msg_frame() - the first byte of the complete frame (header included). */
static inline const unsigned char *qc_msg_frame(const struct qc_msg *m)
{
	return m->buf + QC_MSG_HEADROOM + QC_WS_HDR_MAX - m->hdr_len;
}

/** qc_msg_payload() - the payload (JSON text), qc_msg_payload_len() its length. */
static inline const unsigned char *qc_msg_payload(const struct qc_msg *m)
{
	return m->buf + QC_MSG_HEADROOM + QC_WS_HDR_MAX;
}

static inline size_t qc_msg_payload_len(const struct qc_msg *m)
{
	return m->len - m->hdr_len;
}

/**
 * qc_ws_header() - write the server WebSocket header (FIN set, unmasked) for a payload of
 * @len bytes and @opcode into @out (at least QC_WS_HDR_MAX bytes). Returns its length (2-10).
 */
size_t qc_ws_header(unsigned char *out, uint8_t opcode, uint64_t len);

#endif
