/*
 * sio: the Engine.IO v4 / Socket.IO v5 packet codec (SPEC section 5).
 *
 * Socket.IO clients on the websocket transport send one Engine.IO packet per text frame; a
 * message packet carries one Socket.IO packet. Parsing turns such a frame into a typed packet
 * and maps client events onto the same commands the native protocol produces (codec.h), so the
 * hub serves both encodings with one set of handlers. The encoders build the server's frames,
 * including the Socket.IO form of every native server message. Pure: no I/O, no lws.
 * Binary frames and binary Socket.IO packets are not supported.
 */
#ifndef QC_SIO_H
#define QC_SIO_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "quotecast/codec.h"

struct qc_msg;

/* The longest namespace qc_sio_parse() accepts, in bytes, the leading '/' included. */
#define QC_SIO_NSP_MAX 63
/* Ack ids are JavaScript numbers on the client: at most 2^53 - 1. */
#define QC_SIO_ACK_ID_MAX ((int64_t)9007199254740991)

enum qc_eio_type {
	QC_EIO_OPEN,
	QC_EIO_CLOSE,
	QC_EIO_PING,
	QC_EIO_PONG,
	QC_EIO_MESSAGE,
	QC_EIO_UPGRADE,
	QC_EIO_NOOP
};

enum qc_sio_type {
	QC_SIO_CONNECT,
	QC_SIO_DISCONNECT,
	QC_SIO_EVENT,
	QC_SIO_ACK,
	QC_SIO_CONNECT_ERROR,
	QC_SIO_BINARY_EVENT,
	QC_SIO_BINARY_ACK
};

struct qc_sio_packet {
	enum qc_eio_type eio;
	int sio;                      /* enum qc_sio_type for QC_EIO_MESSAGE, else -1 */
	char nsp[QC_SIO_NSP_MAX + 1]; /* namespace, "/" when absent */
	int64_t ack_id;               /* -1 when absent; 0..QC_SIO_ACK_ID_MAX */
	json_t *data;                 /* owned, see qc_sio_parse(); NULL when absent */
	const char *event;            /* EVENT: the event name (borrowed from data[0]) */
};

/**
 * qc_sio_parse() - parse one websocket text frame of @len bytes as an Engine.IO packet.
 *
 * Engine.IO packets other than message carry no data that matters here (a "2probe" is a
 * ping); only their type is reported. A message packet is parsed as a Socket.IO packet:
 * CONNECT data is NULL or the auth object; DISCONNECT has no data; EVENT data is the non-empty
 * arguments array whose first element, the event name, is also in @p->event; ACK data is the
 * arguments array and an ack id is required; CONNECT_ERROR data is whatever was sent.
 *
 * Returns QC_OK, or QC_E_BAD_REQUEST / QC_E_BAD_JSON with a static message in *@msg for: an
 * empty frame, an unknown Engine.IO or Socket.IO type, a message packet without a Socket.IO
 * type, a binary packet ("binary attachments are not supported"), a namespace that is
 * unterminated (no ','), too long or holds a byte outside printable ASCII, an ack id above
 * QC_SIO_ACK_ID_MAX, broken JSON (BAD_JSON), or data of the wrong shape for the type.
 * @p is always initialised: call qc_sio_packet_release() afterwards, even on error.
 */
enum qc_err qc_sio_parse(const char *buf, size_t len, struct qc_sio_packet *p, const char **msg);

/** qc_sio_packet_release() - drop @p's data (if it still owns it) and clear the pointers. */
void qc_sio_packet_release(struct qc_sio_packet *p);

/**
 * qc_sio_to_cmd() - map a parsed EVENT packet on namespace "/" to a native command.
 *
 * The event's first argument (after the name) is read; further arguments are ignored.
 *   "subscribe"/"unsubscribe": {room, password?, request_id?, trace_id?} or a plain room-name
 *       string -> QC_CMD_SUBSCRIBE / QC_CMD_UNSUBSCRIBE
 *   "ping": absent, null or {timestamp?, request_id?, trace_id?} -> QC_CMD_PING (timestamp
 *       borrowed, NULL when absent)
 *   "request": {action, payload?, request_id?, trace_id?} -> QC_CMD_REQUEST
 *   "subscribe_market_stream", "unsubscribe_market_stream": the payload object itself (absent
 *       or null = empty); its request_id / trace_id members, if any, are read as the ids ->
 *       QC_CMD_REQUEST with that action
 *   "stream_filter_update": the same, with action "update_stream_filter"
 * A missing or null request payload becomes an empty object, as in qc_codec_parse().
 *
 * cmd->ack_id is @p->ack_id. cmd->root takes over @p->data whatever the result (@p->data
 * becomes NULL), so every borrowed pointer in @cmd, and @p->event, stays valid until
 * qc_cmd_release(). Returns QC_OK, or like qc_codec_parse() QC_E_BAD_REQUEST (also for a packet
 * that is not an EVENT on "/") or QC_E_UNKNOWN_ACTION (an unknown event name) with a static
 * message in *@msg; cmd->request_id / trace_id are set when they could be read. Always call
 * qc_cmd_release() afterwards.
 */
enum qc_err qc_sio_to_cmd(struct qc_sio_packet *p, struct qc_cmd *cmd, const char **msg);

/*
 * Encoders. Each returns a new text frame (msg.h) holding one reference, or NULL on ENOMEM or
 * a NULL / invalid (non UTF-8) string argument. JSON arguments are borrowed and serialised
 * compactly with 15 significant digits, like qc_msg_new_json(). Engine.IO ping, pong and close
 * are the bare "2", "3" and "1": frame them with qc_msg_new_text().
 */

/**
 * qc_eio_open_msg() - the Engine.IO handshake:
 * 0{"sid":@sid,"upgrades":[],"pingInterval":N,"pingTimeout":N,"maxPayload":N}
 */
struct qc_msg *qc_eio_open_msg(const char *sid, uint32_t ping_interval_ms, uint32_t ping_timeout_ms,
                               uint32_t max_payload);

/**
 * qc_sio_connect_msg() - accept the CONNECT to "/": 40{"sid":@sid}, or with connection state
 * recovery 40{"sid":@sid,"pid":@pid} (@pid: the private session id a reconnect presents; NULL
 * without recovery).
 */
struct qc_msg *qc_sio_connect_msg(const char *sid, const char *pid);

/** qc_sio_connect_error_msg() - refuse the CONNECT to "/": 44{"message":@message} */
struct qc_msg *qc_sio_connect_error_msg(const char *message);

/** qc_sio_event_msg() - 42["@event",@arg], or 42["@event"] when @arg is NULL. */
struct qc_msg *qc_sio_event_msg(const char *event, const json_t *arg);

/**
 * qc_sio_ack_msg() - 43<@ack_id>[@arg], or 43<@ack_id>[] when @arg is NULL. NULL also when
 * @ack_id is outside 0..QC_SIO_ACK_ID_MAX.
 */
struct qc_msg *qc_sio_ack_msg(int64_t ack_id, const json_t *arg);

/**
 * qc_sio_from_native() - a native server message (SPEC 2.1; borrowed) as Socket.IO:
 *   {"type":"event","event":N,"data":D}  -> 42["N",D]   (42["N"] when D is absent)
 *   {"type":"response",...} = obj        -> 43<@ack_id>[obj] when @ack_id >= 0, else
 *                                           42["response",obj]
 *   {"type":"pong",...} = obj            -> the same, with the event "pong"
 *   {"type":"error",...} = obj           -> 42["error",obj] (never an ack)
 * Returns NULL on ENOMEM, or when @native is not one of these shapes.
 */
struct qc_msg *qc_sio_from_native(const json_t *native, int64_t ack_id);

/**
 * qc_sio_from_native_at() - a native event (SPEC 2.1; borrowed) as a Socket.IO event carrying
 * @offset as its last argument, as Socket.IO's connection state recovery does:
 *   {"type":"event","event":N,"data":D}  -> 42["N",D,"<offset>"]   (D null when absent)
 * socket.io-client 4.6+ remembers the last argument of each event when the CONNECT answer gave
 * it a pid, and presents it on reconnect. @offset 0 gives qc_sio_from_native(@native, -1).
 * NULL on ENOMEM or when @native is not one of qc_sio_from_native()'s shapes.
 */
struct qc_msg *qc_sio_from_native_at(const json_t *native, uint64_t offset);

#endif
