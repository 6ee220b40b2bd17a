/*
 * codec: native protocol parsing and encoding. Owns the error-code table.
 */
#include <stdbool.h>
#include <string.h>

#include "quotecast/codec.h"

static const struct {
	const char *code;
	int status;
} errs[QC_E__COUNT] = {
    [QC_OK] = {"OK", 200},
    [QC_E_BAD_JSON] = {"BAD_JSON", 400},
    [QC_E_BAD_REQUEST] = {"BAD_REQUEST", 400},
    [QC_E_UNKNOWN_ACTION] = {"UNKNOWN_ACTION", 400},
    [QC_E_UNAUTHORIZED] = {"UNAUTHORIZED", 401},
    [QC_E_FORBIDDEN] = {"FORBIDDEN", 403},
    [QC_E_NOT_FOUND] = {"NOT_FOUND", 404},
    [QC_E_ALREADY_EXISTS] = {"ALREADY_EXISTS", 409},
    [QC_E_ROOM_FULL] = {"ROOM_FULL", 409},
    [QC_E_WRONG_PASSWORD] = {"WRONG_PASSWORD", 403},
    [QC_E_ROOM_CLOSED] = {"ROOM_CLOSED", 409},
    [QC_E_LIMIT_EXCEEDED] = {"LIMIT_EXCEEDED", 429},
    [QC_E_RATE_LIMITED] = {"RATE_LIMITED", 429},
    [QC_E_TOO_LARGE] = {"TOO_LARGE", 413},
    [QC_E_CONFLICT] = {"CONFLICT", 409},
    [QC_E_UNAVAILABLE] = {"UNAVAILABLE", 503},
    [QC_E_INTERNAL] = {"INTERNAL", 500},
};

const char *qc_err_code(enum qc_err e)
{
	if ((unsigned)e >= QC_E__COUNT)
		return "INTERNAL";
	return errs[e].code;
}

int qc_err_http_status(enum qc_err e)
{
	if ((unsigned)e >= QC_E__COUNT)
		return 500;
	return errs[e].status;
}

int qc_codec_opt_string(json_t *obj, const char *key, const char **out)
{
	json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return -1;
	*out = json_string_value(v);
	return 0;
}

enum qc_err qc_codec_parse(const char *buf, size_t len, struct qc_cmd *cmd, const char **msg)
{
	json_error_t jerr;
	const char *type;

	memset(cmd, 0, sizeof(*cmd));
	cmd->ack_id = -1;
	cmd->root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!cmd->root) {
		*msg = "frame is not valid JSON (or not UTF-8)";
		return QC_E_BAD_JSON;
	}
	if (!json_is_object(cmd->root)) {
		*msg = "frame must be a JSON object";
		return QC_E_BAD_REQUEST;
	}
	/* Read the ids first so that every later error can be answered as a response. */
	if (qc_codec_opt_string(cmd->root, "request_id", &cmd->request_id)) {
		*msg = "request_id must be a string";
		return QC_E_BAD_REQUEST;
	}
	if (qc_codec_opt_string(cmd->root, "trace_id", &cmd->trace_id)) {
		*msg = "trace_id must be a string";
		return QC_E_BAD_REQUEST;
	}
	if (qc_codec_opt_string(cmd->root, "type", &type) || !type) {
		*msg = "missing or non-string \"type\"";
		return QC_E_BAD_REQUEST;
	}

	if (!strcmp(type, "ping")) {
		cmd->type = QC_CMD_PING;
		cmd->timestamp = json_object_get(cmd->root, "timestamp");
		return QC_OK;
	}
	if (!strcmp(type, "subscribe") || !strcmp(type, "unsubscribe")) {
		cmd->type = type[0] == 's' ? QC_CMD_SUBSCRIBE : QC_CMD_UNSUBSCRIBE;
		if (qc_codec_opt_string(cmd->root, "room", &cmd->room) || !cmd->room ||
		    !cmd->room[0]) {
			*msg = "\"room\" must be a non-empty string";
			return QC_E_BAD_REQUEST;
		}
		if (qc_codec_opt_string(cmd->root, "password", &cmd->password)) {
			*msg = "\"password\" must be a string";
			return QC_E_BAD_REQUEST;
		}
		return QC_OK;
	}
	if (!strcmp(type, "resume")) {
		cmd->type = QC_CMD_RESUME;
		return QC_OK;
	}
	if (!strcmp(type, "request")) {
		cmd->type = QC_CMD_REQUEST;
		if (qc_codec_opt_string(cmd->root, "action", &cmd->action) || !cmd->action ||
		    !cmd->action[0]) {
			*msg = "\"action\" must be a non-empty string";
			return QC_E_BAD_REQUEST;
		}
		cmd->payload = json_object_get(cmd->root, "payload");
		if (!cmd->payload || json_is_null(cmd->payload)) {
			cmd->payload = json_object();
			if (!cmd->payload ||
			    json_object_set_new(cmd->root, "payload", cmd->payload)) {
				*msg = "out of memory";
				return QC_E_INTERNAL;
			}
		} else if (!json_is_object(cmd->payload)) {
			*msg = "\"payload\" must be an object";
			return QC_E_BAD_REQUEST;
		}
		return QC_OK;
	}
	*msg = "unknown message type";
	return QC_E_UNKNOWN_ACTION;
}

void qc_cmd_release(struct qc_cmd *cmd)
{
	json_decref(cmd->root);
	memset(cmd, 0, sizeof(*cmd));
	cmd->ack_id = -1;
}

static json_t *response(const char *request_id, const char *trace_id, bool ok, int64_t now_ms)
{
	json_t *r = json_object();

	if (!r)
		return NULL;
	json_object_set_new(r, "type", json_string("response"));
	if (request_id)
		json_object_set_new(r, "request_id", json_string(request_id));
	json_object_set_new(r, "success", json_boolean(ok));
	json_object_set_new(r, "timestamp", json_integer(now_ms));
	json_object_set_new(r, "server_time", json_integer(now_ms));
	if (trace_id)
		json_object_set_new(r, "trace_id", json_string(trace_id));
	return r;
}

static json_t *error_object(enum qc_err e, const char *message)
{
	return json_pack("{s:s, s:s}", "code", qc_err_code(e), "message",
	                 message ? message : qc_err_code(e));
}

json_t *qc_codec_response_ok(const char *request_id, const char *trace_id, json_t *data,
                             int64_t now_ms)
{
	json_t *r = response(request_id, trace_id, true, now_ms);

	if (!data)
		data = json_object();
	if (!r) {
		json_decref(data);
		return NULL;
	}
	json_object_set_new(r, "data", data);
	return r;
}

json_t *qc_codec_response_err(const char *request_id, const char *trace_id, enum qc_err e,
                              const char *message, int64_t now_ms)
{
	json_t *r = response(request_id, trace_id, false, now_ms);

	if (r)
		json_object_set_new(r, "error", error_object(e, message));
	return r;
}

json_t *qc_codec_error(enum qc_err e, const char *message)
{
	return json_pack("{s:s, s:o}", "type", "error", "error", error_object(e, message));
}

json_t *qc_codec_event(const char *name, json_t *data)
{
	if (!data)
		data = json_object();
	return json_pack("{s:s, s:s, s:o}", "type", "event", "event", name, "data", data);
}

json_t *qc_codec_pong(json_t *ts, const char *request_id, const char *trace_id, int64_t now_ms)
{
	json_t *r = json_object();

	if (!r)
		return NULL;
	json_object_set_new(r, "type", json_string("pong"));
	json_object_set(r, "timestamp", ts ? ts : json_null());
	json_object_set_new(r, "server_time", json_integer(now_ms));
	if (request_id)
		json_object_set_new(r, "request_id", json_string(request_id));
	if (trace_id)
		json_object_set_new(r, "trace_id", json_string(trace_id));
	return r;
}

json_t *qc_codec_http_error(enum qc_err e, const char *message)
{
	return json_pack("{s:o}", "error", error_object(e, message));
}
