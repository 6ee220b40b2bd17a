/*
 * fuzz.h: what the libFuzzer targets share. CHECK() states an invariant of the code under
 * test and aborts loudly when it fails, so libFuzzer keeps the input like any crash;
 * fuzz_init() fixes jansson's hash seed so that a saved input replays the same way (object
 * iteration order follows the seed); check_cmd() and check_answer() are the invariants of
 * a parsed client command and of the answer the server sends back for it.
 */
#ifndef QC_FUZZ_H
#define QC_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "quotecast/codec.h"
#include "quotecast/msg.h"
#include "quotecast/sio.h"

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__,       \
			        #cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static inline void fuzz_init(void)
{
	json_object_seed(1);
}

/* @data as a NUL-terminated string (it ends at the first NUL byte, as a C caller's would). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	CHECK(s);
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* A command as qc_codec_parse() / qc_sio_to_cmd() promise it. */
static inline void check_cmd(const struct qc_cmd *cmd, enum qc_err e, const char *msg)
{
	if (e != QC_OK) {
		CHECK(msg && *msg);
		CHECK(e == QC_E_BAD_JSON || e == QC_E_BAD_REQUEST || e == QC_E_UNKNOWN_ACTION ||
		      e == QC_E_INTERNAL);
		return;
	}
	CHECK(cmd->root);
	switch (cmd->type) {
	case QC_CMD_PING:
		break;
	case QC_CMD_SUBSCRIBE:
	case QC_CMD_UNSUBSCRIBE:
		CHECK(cmd->room && cmd->room[0]);
		break;
	case QC_CMD_REQUEST:
		CHECK(cmd->action && cmd->action[0]);
		CHECK(json_is_object(cmd->payload));
		break;
	case QC_CMD_RESUME:
		/* the hub reads the token and the positions from root */
		CHECK(json_is_object(cmd->root));
		break;
	default:
		CHECK(!"unknown command type");
	}
	CHECK(cmd->ack_id >= -1 && cmd->ack_id <= QC_SIO_ACK_ID_MAX);
}

/*
 * The answer to @cmd as the hub builds it (the ids echoed), framed for the connection's
 * encoding (@sio: Socket.IO, as an ack when the client asked for one): it must be built and
 * be valid JSON carrying the same ids.
 */
static inline void check_answer(const struct qc_cmd *cmd, enum qc_err e, const char *msg, int sio)
{
	json_t *native, *back, *obj;
	struct qc_msg *m;
	json_error_t jerr;
	const unsigned char *p;
	size_t len, skip = 0;

	if (e == QC_OK)
		native = qc_codec_response_ok(cmd->request_id, cmd->trace_id, NULL, 1);
	else
		native = qc_codec_response_err(cmd->request_id, cmd->trace_id, e, msg, 1);
	CHECK(native);
	m = sio ? qc_sio_from_native(native, cmd->ack_id) : qc_msg_new_json(native);
	CHECK(m);
	p = qc_msg_payload(m);
	len = qc_msg_payload_len(m);
	if (sio) {
		/* 43<id>[obj] or 42["response",obj] */
		CHECK(len > 2 && p[0] == '4' && (p[1] == '2' || p[1] == '3'));
		for (skip = 2; skip < len && p[skip] >= '0' && p[skip] <= '9'; skip++)
			;
	}
	back = json_loadb((const char *)p + skip, len - skip, 0, &jerr);
	CHECK(back);
	obj = back;
	if (sio)
		obj = json_array_get(back, json_array_size(back) - 1);
	CHECK(json_is_object(obj));
	CHECK(!cmd->request_id ||
	      !strcmp(json_string_value(json_object_get(obj, "request_id")), cmd->request_id));
	CHECK(!cmd->trace_id ||
	      !strcmp(json_string_value(json_object_get(obj, "trace_id")), cmd->trace_id));
	json_decref(back);
	json_decref(native);
	qc_msg_unref(&m);
}

#endif
