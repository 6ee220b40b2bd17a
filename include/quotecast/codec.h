/*
 * codec: the native JSON protocol (SPEC section 2) in both directions.
 *
 * Parsing turns one client frame into a typed command; the encoders build the server's
 * messages as jansson values that msg.c frames once for every receiver. Error codes and
 * their strings live here too, so every layer names them the same way.
 */
#ifndef QC_CODEC_H
#define QC_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

enum qc_err {
	QC_OK = 0,
	QC_E_BAD_JSON,
	QC_E_BAD_REQUEST,
	QC_E_UNKNOWN_ACTION,
	QC_E_UNAUTHORIZED,
	QC_E_FORBIDDEN,
	QC_E_NOT_FOUND,
	QC_E_ALREADY_EXISTS,
	QC_E_ROOM_FULL,
	QC_E_WRONG_PASSWORD,
	QC_E_ROOM_CLOSED,
	QC_E_LIMIT_EXCEEDED,
	QC_E_RATE_LIMITED,
	QC_E_TOO_LARGE,
	QC_E_CONFLICT,
	QC_E_UNAVAILABLE,
	QC_E_INTERNAL,
	QC_E__COUNT
};

/** qc_err_code() - the wire string ("BAD_JSON" ...); "INTERNAL" for anything unknown. */
const char *qc_err_code(enum qc_err e);

/** qc_err_http_status() - the HTTP status an error maps to (400, 401, 403, 404, 409 ...). */
int qc_err_http_status(enum qc_err e);

enum qc_cmd_type {
	QC_CMD_NONE = 0, /* nothing to do (a Socket.IO ack from the client) */
	QC_CMD_PING,
	QC_CMD_SUBSCRIBE,
	QC_CMD_UNSUBSCRIBE,
	QC_CMD_REQUEST,
	QC_CMD_RESUME, /* {"type":"resume","token","positions"} (SPEC 2.9): the hub reads root */
};

struct qc_cmd {
	enum qc_cmd_type type;
	const char *request_id; /* borrowed from root; NULL when absent */
	const char *trace_id;
	const char *room;     /* subscribe / unsubscribe */
	const char *password; /* subscribe, optional */
	const char *action;   /* request */
	json_t *payload;      /* request: borrowed, an object (an empty one when absent) */
	json_t *timestamp;    /* ping: borrowed, NULL when absent */
	int64_t ack_id;       /* Socket.IO: the client wants an ack with this id; -1 when not */
	json_t *root;         /* owned: the parsed frame */
};

/**
 * qc_codec_parse() - parse one text frame of @len bytes.
 * Returns QC_OK with @cmd filled, or an error (BAD_JSON, BAD_REQUEST, UNKNOWN_ACTION) with a
 * static message in *@msg. Even on error, cmd->request_id/trace_id are set when they could be
 * read, so the caller can answer with a response. Always call qc_cmd_release() afterwards.
 */
enum qc_err qc_codec_parse(const char *buf, size_t len, struct qc_cmd *cmd, const char **msg);

/**
 * qc_codec_opt_string() - an optional string member of @obj: absent or null gives 0 and
 * *@out NULL, a string gives 0 and *@out borrowed from @obj, anything else -1.
 */
int qc_codec_opt_string(json_t *obj, const char *key, const char **out);

/** qc_cmd_release() - drop the parsed frame; @cmd is zeroed. */
void qc_cmd_release(struct qc_cmd *cmd);

/**
 * Encoders. Each returns a new reference, or NULL on ENOMEM. @data arguments are stolen
 * (NULL means an empty object); string arguments are copied and may be NULL.
 */
json_t *qc_codec_response_ok(const char *request_id, const char *trace_id, json_t *data,
                             int64_t now_ms);
json_t *qc_codec_response_err(const char *request_id, const char *trace_id, enum qc_err e,
                              const char *message, int64_t now_ms);
/** {"type":"error","error":{...}} for frames that carried no request_id. */
json_t *qc_codec_error(enum qc_err e, const char *message);
/** {"type":"event","event":@name,"data":@data} */
json_t *qc_codec_event(const char *name, json_t *data);
/** {"type":"pong","timestamp":@ts,"server_time":@now_ms}; @ts borrowed, may be NULL. */
json_t *qc_codec_pong(json_t *ts, const char *request_id, const char *trace_id, int64_t now_ms);
/** {"error":{"code":..,"message":..}} for HTTP answers. */
json_t *qc_codec_http_error(enum qc_err e, const char *message);

#endif
