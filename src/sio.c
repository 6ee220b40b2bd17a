/*
 * sio: Engine.IO v4 / Socket.IO v5 text packets in both directions.
 *
 * The parser walks the Socket.IO header (type, namespace, ack id) by hand and leaves the data
 * to jansson; binary packets are refused before anything is allocated. Mapping to commands
 * reuses codec.h's struct qc_cmd, so the command owns the parsed arguments array exactly as it
 * owns a native frame. The encoders write the packet prefix and the JSON pieces with msg.c's
 * builder (one static scratch buffer, framed once), so no wrapper array is ever built around a
 * borrowed value.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quotecast/msg.h"
#include "quotecast/sio.h"

static void packet_init(struct qc_sio_packet *p)
{
	memset(p, 0, sizeof(*p));
	p->eio = QC_EIO_NOOP;
	p->sio = -1;
	p->nsp[0] = '/';
	p->ack_id = -1;
}

/* Copies "/name," into @nsp (without the ','); *@i points at the '/' and ends past the ','. */
static int parse_nsp(const char *buf, size_t len, size_t *i, char *nsp, const char **msg)
{
	size_t start = *i, n;

	for (n = start; n < len && buf[n] != ','; n++) {
		if (n - start >= QC_SIO_NSP_MAX) {
			*msg = "namespace too long";
			return -1;
		}
		/* Printable ASCII only: the namespace may end up in logs and error messages. */
		if ((unsigned char)buf[n] < 0x21 || (unsigned char)buf[n] > 0x7e) {
			*msg = "namespace holds a byte that is not printable ASCII";
			return -1;
		}
	}
	if (n == len) {
		*msg = "unterminated namespace (no ',')";
		return -1;
	}
	memcpy(nsp, buf + start, n - start);
	nsp[n - start] = '\0';
	*i = n + 1;
	return 0;
}

static int parse_ack_id(const char *buf, size_t len, size_t *i, int64_t *id, const char **msg)
{
	int64_t v = 0;
	int d;

	for (; *i < len && buf[*i] >= '0' && buf[*i] <= '9'; (*i)++) {
		d = buf[*i] - '0';
		if (v > (QC_SIO_ACK_ID_MAX - d) / 10) {
			*msg = "ack id out of range";
			return -1;
		}
		v = v * 10 + d;
	}
	*id = v;
	return 0;
}

/* What each Socket.IO type may carry (socket.io-parser's rules, stricter for ACK). */
static enum qc_err check_data(struct qc_sio_packet *p, const char **msg)
{
	json_t *name;

	switch (p->sio) {
	case QC_SIO_CONNECT:
		if (p->data && !json_is_object(p->data)) {
			*msg = "CONNECT data must be an object";
			return QC_E_BAD_REQUEST;
		}
		return QC_OK;
	case QC_SIO_DISCONNECT:
		if (p->data) {
			*msg = "DISCONNECT carries no data";
			return QC_E_BAD_REQUEST;
		}
		return QC_OK;
	case QC_SIO_EVENT:
		name = json_array_get(p->data, 0);
		if (!json_is_array(p->data) || !json_is_string(name)) {
			*msg = "EVENT data must be a non-empty array starting with the event name";
			return QC_E_BAD_REQUEST;
		}
		p->event = json_string_value(name);
		return QC_OK;
	case QC_SIO_ACK:
		if (!json_is_array(p->data)) {
			*msg = "ACK data must be an array";
			return QC_E_BAD_REQUEST;
		}
		if (p->ack_id < 0) {
			*msg = "ACK without an ack id";
			return QC_E_BAD_REQUEST;
		}
		return QC_OK;
	default:
		return QC_OK;
	}
}

enum qc_err qc_sio_parse(const char *buf, size_t len, struct qc_sio_packet *p, const char **msg)
{
	json_error_t jerr;
	size_t i = 2;

	packet_init(p);
	if (!len) {
		*msg = "empty frame";
		return QC_E_BAD_REQUEST;
	}
	if (buf[0] < '0' || buf[0] > '6') {
		*msg = "unknown Engine.IO packet type";
		return QC_E_BAD_REQUEST;
	}
	p->eio = (enum qc_eio_type)(buf[0] - '0');
	if (p->eio != QC_EIO_MESSAGE)
		return QC_OK;

	if (len < 2) {
		*msg = "message packet without a Socket.IO packet";
		return QC_E_BAD_REQUEST;
	}
	if (buf[1] < '0' || buf[1] > '6') {
		*msg = "unknown Socket.IO packet type";
		return QC_E_BAD_REQUEST;
	}
	p->sio = buf[1] - '0';
	if (p->sio == QC_SIO_BINARY_EVENT || p->sio == QC_SIO_BINARY_ACK) {
		*msg = "binary attachments are not supported";
		return QC_E_BAD_REQUEST;
	}
	if (i < len && buf[i] == '/' && parse_nsp(buf, len, &i, p->nsp, msg))
		return QC_E_BAD_REQUEST;
	if (i < len && buf[i] >= '0' && buf[i] <= '9' &&
	    parse_ack_id(buf, len, &i, &p->ack_id, msg))
		return QC_E_BAD_REQUEST;
	if (i < len) {
		p->data =
		    json_loadb(buf + i, len - i, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
		if (!p->data) {
			*msg = "packet data is not valid JSON (or not UTF-8)";
			return QC_E_BAD_JSON;
		}
	}
	return check_data(p, msg);
}

void qc_sio_packet_release(struct qc_sio_packet *p)
{
	json_decref(p->data);
	p->data = NULL;
	p->event = NULL;
}

static enum qc_err room_cmd(struct qc_cmd *cmd, json_t *arg, bool join, const char **msg)
{
	cmd->type = join ? QC_CMD_SUBSCRIBE : QC_CMD_UNSUBSCRIBE;
	if (json_is_string(arg))
		cmd->room = json_string_value(arg);
	else if (json_is_object(arg))
		qc_codec_opt_string(arg, "room", &cmd->room);
	if (!cmd->room || !cmd->room[0]) {
		cmd->room = NULL;
		*msg = "\"room\" must be a non-empty string";
		return QC_E_BAD_REQUEST;
	}
	if (json_is_object(arg) && qc_codec_opt_string(arg, "password", &cmd->password)) {
		*msg = "\"password\" must be a string";
		return QC_E_BAD_REQUEST;
	}
	return QC_OK;
}

static enum qc_err ping_cmd(struct qc_cmd *cmd, json_t *arg, const char **msg)
{
	cmd->type = QC_CMD_PING;
	if (!arg || json_is_null(arg))
		return QC_OK;
	if (!json_is_object(arg)) {
		*msg = "\"ping\" argument must be an object";
		return QC_E_BAD_REQUEST;
	}
	cmd->timestamp = json_object_get(arg, "timestamp");
	return QC_OK;
}

/* @payload must be an object, or absent / null: then an empty object is stored in its place. */
static enum qc_err request_payload(struct qc_cmd *cmd, json_t *payload, json_t *parent,
                                   const char *key, const char **msg)
{
	int rc;

	if (payload && !json_is_null(payload)) {
		if (!json_is_object(payload)) {
			*msg = "\"payload\" must be an object";
			return QC_E_BAD_REQUEST;
		}
		cmd->payload = payload;
		return QC_OK;
	}
	payload = json_object();
	if (!payload)
		goto fail_nomem;
	/* Kept inside root so that it lives exactly as long as the command (set_new steals). */
	if (key)
		rc = json_object_set_new(parent, key, payload);
	else if (json_array_size(parent) > 1)
		rc = json_array_set_new(parent, 1, payload);
	else
		rc = json_array_append_new(parent, payload);
	if (rc)
		goto fail_nomem;
	cmd->payload = payload;
	return QC_OK;

fail_nomem:
	*msg = "out of memory";
	return QC_E_INTERNAL;
}

static enum qc_err request_cmd(struct qc_cmd *cmd, json_t *arg, const char **msg)
{
	cmd->type = QC_CMD_REQUEST;
	if (!json_is_object(arg)) {
		*msg = "\"request\" argument must be an object";
		return QC_E_BAD_REQUEST;
	}
	if (qc_codec_opt_string(arg, "action", &cmd->action) || !cmd->action || !cmd->action[0]) {
		cmd->action = NULL;
		*msg = "\"action\" must be a non-empty string";
		return QC_E_BAD_REQUEST;
	}
	return request_payload(cmd, json_object_get(arg, "payload"), arg, "payload", msg);
}

static const struct {
	const char *event;
	const char *action;
} stream_events[] = {
    {"subscribe_market_stream", "subscribe_market_stream"},
    {"unsubscribe_market_stream", "unsubscribe_market_stream"},
    {"stream_filter_update", "update_stream_filter"},
};

enum qc_err qc_sio_to_cmd(struct qc_sio_packet *p, struct qc_cmd *cmd, const char **msg)
{
	const char *name = p->event;
	json_t *arg;
	size_t k;

	memset(cmd, 0, sizeof(*cmd));
	cmd->ack_id = p->ack_id;
	cmd->root = p->data;
	p->data = NULL;
	if (p->eio != QC_EIO_MESSAGE || p->sio != QC_SIO_EVENT || strcmp(p->nsp, "/") || !name ||
	    !cmd->root) {
		*msg = "only EVENT packets on namespace \"/\" are commands";
		return QC_E_BAD_REQUEST;
	}

	arg = json_array_get(cmd->root, 1);
	/* Read the ids first so that every later error can be answered as a response. */
	if (json_is_object(arg)) {
		if (qc_codec_opt_string(arg, "request_id", &cmd->request_id)) {
			*msg = "request_id must be a string";
			return QC_E_BAD_REQUEST;
		}
		if (qc_codec_opt_string(arg, "trace_id", &cmd->trace_id)) {
			*msg = "trace_id must be a string";
			return QC_E_BAD_REQUEST;
		}
	}

	if (!strcmp(name, "subscribe") || !strcmp(name, "unsubscribe"))
		return room_cmd(cmd, arg, name[0] == 's', msg);
	if (!strcmp(name, "ping"))
		return ping_cmd(cmd, arg, msg);
	if (!strcmp(name, "request"))
		return request_cmd(cmd, arg, msg);
	for (k = 0; k < sizeof(stream_events) / sizeof(stream_events[0]); k++) {
		if (strcmp(name, stream_events[k].event))
			continue;
		cmd->type = QC_CMD_REQUEST;
		cmd->action = stream_events[k].action;
		return request_payload(cmd, arg, cmd->root, NULL, msg);
	}
	*msg = "unknown event";
	return QC_E_UNKNOWN_ACTION;
}

static int put_str(const char *s)
{
	return qc_msg_build_put(s, strlen(s));
}

/* @prefix then @j; steals @j (NULL when building it failed). */
static struct qc_msg *prefixed(const char *prefix, json_t *j)
{
	struct qc_msg *m = NULL;

	if (!j)
		return NULL;
	qc_msg_build_start();
	if (!put_str(prefix) && !qc_msg_build_json(j))
		m = qc_msg_build_finish();
	json_decref(j);
	return m;
}

/*
 * 42[@name,@arg] (42[@name] without @arg); @name a JSON string. With an @offset (not 0) it
 * goes last, as a string: 42[@name,@arg,"<offset>"] (@arg null when absent, so that the
 * offset never takes the place of the data in the client's handler).
 */
static struct qc_msg *event_frame_at(const json_t *name, const json_t *arg, uint64_t offset)
{
	char off[32];

	qc_msg_build_start();
	if (put_str("42[") || qc_msg_build_json(name))
		return NULL;
	if (arg && (put_str(",") || qc_msg_build_json(arg)))
		return NULL;
	if (offset) {
		snprintf(off, sizeof(off), "%s\"%" PRIu64 "\"", arg ? "," : ",null,", offset);
		if (put_str(off))
			return NULL;
	}
	if (put_str("]"))
		return NULL;
	return qc_msg_build_finish();
}

static struct qc_msg *event_frame(const json_t *name, const json_t *arg)
{
	return event_frame_at(name, arg, 0);
}

struct qc_msg *qc_eio_open_msg(const char *sid, uint32_t ping_interval_ms, uint32_t ping_timeout_ms,
                               uint32_t max_payload)
{
	if (!sid)
		return NULL;
	/* jansson keeps insertion order, which is the order engine.io itself writes. */
	return prefixed("0", json_pack("{s:s, s:[], s:I, s:I, s:I}", "sid", sid, "upgrades",
	                               "pingInterval", (json_int_t)ping_interval_ms, "pingTimeout",
	                               (json_int_t)ping_timeout_ms, "maxPayload",
	                               (json_int_t)max_payload));
}

struct qc_msg *qc_sio_connect_msg(const char *sid, const char *pid)
{
	if (!sid)
		return NULL;
	if (pid)
		return prefixed("40", json_pack("{s:s, s:s}", "sid", sid, "pid", pid));
	return prefixed("40", json_pack("{s:s}", "sid", sid));
}

struct qc_msg *qc_sio_connect_error_msg(const char *message)
{
	if (!message)
		return NULL;
	return prefixed("44", json_pack("{s:s}", "message", message));
}

struct qc_msg *qc_sio_event_msg(const char *event, const json_t *arg)
{
	struct qc_msg *m;
	json_t *name;

	if (!event)
		return NULL;
	name = json_string(event);
	if (!name)
		return NULL;
	m = event_frame(name, arg);
	json_decref(name);
	return m;
}

struct qc_msg *qc_sio_ack_msg(int64_t ack_id, const json_t *arg)
{
	char head[32];

	if (ack_id < 0 || ack_id > QC_SIO_ACK_ID_MAX)
		return NULL;
	snprintf(head, sizeof(head), "43%" PRId64 "[", ack_id);
	qc_msg_build_start();
	if (put_str(head))
		return NULL;
	if (arg && qc_msg_build_json(arg))
		return NULL;
	if (put_str("]"))
		return NULL;
	return qc_msg_build_finish();
}

struct qc_msg *qc_sio_from_native(const json_t *native, int64_t ack_id)
{
	json_t *type = json_object_get(native, "type");
	const char *t = json_string_value(type);
	json_t *name;

	if (!json_is_object(native) || !t)
		return NULL;
	if (!strcmp(t, "event")) {
		name = json_object_get(native, "event");
		if (!json_is_string(name))
			return NULL;
		return event_frame(name, json_object_get(native, "data"));
	}
	if (!strcmp(t, "response") || !strcmp(t, "pong")) {
		if (ack_id >= 0)
			return qc_sio_ack_msg(ack_id, native);
		return event_frame(type, native);
	}
	if (!strcmp(t, "error"))
		return event_frame(type, native);
	return NULL;
}

struct qc_msg *qc_sio_from_native_at(const json_t *native, uint64_t offset)
{
	const char *t = json_string_value(json_object_get(native, "type"));
	json_t *name = json_object_get(native, "event");

	if (!offset || !t || strcmp(t, "event"))
		return qc_sio_from_native(native, -1);
	if (!json_is_string(name))
		return NULL;
	return event_frame_at(name, json_object_get(native, "data"), offset);
}
