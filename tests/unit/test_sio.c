/*
 * test_sio: Engine.IO / Socket.IO packet parsing, the mapping of client events to native
 * commands, and the exact bytes of every encoder.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "quotecast/codec.h"
#include "quotecast/msg.h"
#include "quotecast/sio.h"

static void parse_ok(const char *s, struct qc_sio_packet *p)
{
	const char *msg = NULL;

	assert_int_equal(qc_sio_parse(s, strlen(s), p, &msg), QC_OK);
}

/* Parses @len bytes of @s, expects @err with exactly @want_msg, and releases the packet. */
static void parse_fails_len(const char *s, size_t len, enum qc_err err, const char *want_msg)
{
	struct qc_sio_packet p;
	const char *msg = NULL;

	assert_int_equal(qc_sio_parse(s, len, &p, &msg), err);
	assert_non_null(msg);
	if (want_msg)
		assert_string_equal(msg, want_msg);
	qc_sio_packet_release(&p);
	assert_null(p.data);
	assert_null(p.event);
}

static void parse_fails(const char *s, enum qc_err err, const char *want_msg)
{
	parse_fails_len(s, strlen(s), err, want_msg);
}

/* Checks that @m is one unmasked text frame whose payload is exactly @want, then drops it. */
static void expect_frame(struct qc_msg *m, const char *want)
{
	size_t n = strlen(want);
	const unsigned char *f;

	assert_non_null(m);
	assert_int_equal(m->refs, 1);
	assert_int_equal(m->opcode, 1);
	f = qc_msg_frame(m);
	assert_int_equal(f[0], 0x81);
	if (n <= 125) {
		assert_int_equal(m->hdr_len, 2);
		assert_int_equal(f[1], n);
	} else {
		assert_int_equal(m->hdr_len, 4);
		assert_int_equal(f[1], 126);
		assert_int_equal((f[2] << 8) | f[3], n);
	}
	assert_int_equal(qc_msg_payload_len(m), n);
	assert_int_equal(m->len, m->hdr_len + n);
	assert_memory_equal(qc_msg_payload(m), want, n);
	qc_msg_unref(&m);
}

static void test_eio_types(void **state)
{
	static const struct {
		const char *frame;
		enum qc_eio_type type;
	} cases[] = {
	    {"0", QC_EIO_OPEN},      {"1", QC_EIO_CLOSE},     {"2", QC_EIO_PING},
	    {"3", QC_EIO_PONG},      {"5", QC_EIO_UPGRADE},   {"6", QC_EIO_NOOP},
	    {"2probe", QC_EIO_PING}, {"3probe", QC_EIO_PONG},
	};
	struct qc_sio_packet p;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		parse_ok(cases[i].frame, &p);
		assert_int_equal(p.eio, cases[i].type);
		assert_int_equal(p.sio, -1);
		assert_string_equal(p.nsp, "/");
		assert_int_equal(p.ack_id, -1);
		assert_null(p.data);
		assert_null(p.event);
		qc_sio_packet_release(&p);
	}
	/* Type 4 is a message and needs a Socket.IO packet (see test_parse_malformed). */
	parse_ok("40", &p);
	assert_int_equal(p.eio, QC_EIO_MESSAGE);
	qc_sio_packet_release(&p);
}

static void test_connect(void **state)
{
	struct qc_sio_packet p;

	(void)state;
	parse_ok("40", &p);
	assert_int_equal(p.sio, QC_SIO_CONNECT);
	assert_string_equal(p.nsp, "/");
	assert_int_equal(p.ack_id, -1);
	assert_null(p.data);
	qc_sio_packet_release(&p);

	parse_ok("40{\"token\":\"abc\"}", &p);
	assert_int_equal(p.sio, QC_SIO_CONNECT);
	assert_string_equal(p.nsp, "/");
	assert_true(json_is_object(p.data));
	assert_string_equal(json_string_value(json_object_get(p.data, "token")), "abc");
	qc_sio_packet_release(&p);
	assert_null(p.data);

	parse_ok("40/admin,{\"token\":\"t\"}", &p);
	assert_int_equal(p.sio, QC_SIO_CONNECT);
	assert_string_equal(p.nsp, "/admin");
	assert_string_equal(json_string_value(json_object_get(p.data, "token")), "t");
	qc_sio_packet_release(&p);

	parse_ok("40/admin,", &p);
	assert_string_equal(p.nsp, "/admin");
	assert_null(p.data);
	qc_sio_packet_release(&p);

	/* The connect error type from a client is accepted with whatever it carries. */
	parse_ok("44{\"message\":\"x\"}", &p);
	assert_int_equal(p.sio, QC_SIO_CONNECT_ERROR);
	assert_true(json_is_object(p.data));
	qc_sio_packet_release(&p);
}

static void test_event(void **state)
{
	struct qc_sio_packet p;

	(void)state;
	parse_ok("42[\"subscribe\",{\"room\":\"r1\"}]", &p);
	assert_int_equal(p.eio, QC_EIO_MESSAGE);
	assert_int_equal(p.sio, QC_SIO_EVENT);
	assert_string_equal(p.nsp, "/");
	assert_int_equal(p.ack_id, -1);
	assert_string_equal(p.event, "subscribe");
	assert_true(json_is_array(p.data));
	assert_int_equal(json_array_size(p.data), 2);
	assert_ptr_equal(p.event, json_string_value(json_array_get(p.data, 0)));
	qc_sio_packet_release(&p);

	parse_ok("4217[\"ping\"]", &p);
	assert_int_equal(p.sio, QC_SIO_EVENT);
	assert_int_equal(p.ack_id, 17);
	assert_string_equal(p.event, "ping");
	qc_sio_packet_release(&p);

	parse_ok("42/chat,17[\"x\"]", &p);
	assert_string_equal(p.nsp, "/chat");
	assert_int_equal(p.ack_id, 17);
	assert_string_equal(p.event, "x");
	assert_int_equal(json_array_size(p.data), 1);
	qc_sio_packet_release(&p);

	parse_ok("420[\"x\"]", &p);
	assert_int_equal(p.ack_id, 0);
	qc_sio_packet_release(&p);

	/* The largest id a JavaScript client can send. */
	parse_ok("429007199254740991[\"x\"]", &p);
	assert_int_equal(p.ack_id, 9007199254740991LL);
	qc_sio_packet_release(&p);

	/* The longest namespace that fits. */
	parse_ok("42/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa,[\"x\"]", &p);
	assert_int_equal(strlen(p.nsp), QC_SIO_NSP_MAX);
	assert_int_equal(p.nsp[QC_SIO_NSP_MAX - 1], 'a');
	qc_sio_packet_release(&p);

	parse_ok("42[\"caf\xc3\xa9\",1.5,null]", &p);
	assert_string_equal(p.event, "caf\xc3\xa9");
	assert_int_equal(json_array_size(p.data), 3);
	qc_sio_packet_release(&p);
}

static void test_ack_disconnect(void **state)
{
	struct qc_sio_packet p;

	(void)state;
	parse_ok("4312[\"ok\"]", &p);
	assert_int_equal(p.sio, QC_SIO_ACK);
	assert_int_equal(p.ack_id, 12);
	assert_null(p.event);
	assert_string_equal(json_string_value(json_array_get(p.data, 0)), "ok");
	qc_sio_packet_release(&p);

	parse_ok("43/admin,13[]", &p);
	assert_int_equal(p.sio, QC_SIO_ACK);
	assert_string_equal(p.nsp, "/admin");
	assert_int_equal(p.ack_id, 13);
	assert_int_equal(json_array_size(p.data), 0);
	qc_sio_packet_release(&p);

	parse_ok("41", &p);
	assert_int_equal(p.sio, QC_SIO_DISCONNECT);
	assert_string_equal(p.nsp, "/");
	assert_null(p.data);
	qc_sio_packet_release(&p);

	parse_ok("41/admin,", &p);
	assert_int_equal(p.sio, QC_SIO_DISCONNECT);
	assert_string_equal(p.nsp, "/admin");
	qc_sio_packet_release(&p);
}

static void test_parse_malformed(void **state)
{
	static const char nul_in_json[] = "42[\"a\0b\"]";
	static const char nul_in_nsp[] = "42/a\0b,[\"x\"]";
	static const char too_long[] =
	    "42/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa,[\"x\"]";

	(void)state;
	parse_fails_len("", 0, QC_E_BAD_REQUEST, "empty frame");
	parse_fails("9", QC_E_BAD_REQUEST, "unknown Engine.IO packet type");
	parse_fails("x42[\"a\"]", QC_E_BAD_REQUEST, "unknown Engine.IO packet type");
	parse_fails("4", QC_E_BAD_REQUEST, "message packet without a Socket.IO packet");
	parse_fails("49", QC_E_BAD_REQUEST, "unknown Socket.IO packet type");
	parse_fails("4x", QC_E_BAD_REQUEST, "unknown Socket.IO packet type");
	parse_fails("451-[\"x\",{\"_placeholder\":true,\"num\":0}]", QC_E_BAD_REQUEST,
	            "binary attachments are not supported");
	parse_fails("461-15[\"x\",{\"_placeholder\":true,\"num\":0}]", QC_E_BAD_REQUEST,
	            "binary attachments are not supported");

	/* Broken JSON: truncated, trailing garbage, duplicate keys, bad UTF-8, a NUL byte. */
	parse_fails("42[\"a\"", QC_E_BAD_JSON, "packet data is not valid JSON (or not UTF-8)");
	parse_fails("42[\"a\"]x", QC_E_BAD_JSON, NULL);
	parse_fails("42abc", QC_E_BAD_JSON, NULL);
	parse_fails("42[\"a\",{\"k\":1,\"k\":2}]", QC_E_BAD_JSON, NULL);
	parse_fails("42[\"\xff\"]", QC_E_BAD_JSON, NULL);
	parse_fails_len(nul_in_json, sizeof(nul_in_json) - 1, QC_E_BAD_JSON, NULL);

	/* EVENT data shapes. */
	parse_fails("42", QC_E_BAD_REQUEST,
	            "EVENT data must be a non-empty array starting with the event name");
	parse_fails("42{\"a\":1}", QC_E_BAD_REQUEST,
	            "EVENT data must be a non-empty array starting with the event name");
	parse_fails("42[]", QC_E_BAD_REQUEST,
	            "EVENT data must be a non-empty array starting with the event name");
	parse_fails("42[1,\"a\"]", QC_E_BAD_REQUEST,
	            "EVENT data must be a non-empty array starting with the event name");
	parse_fails("42[null]", QC_E_BAD_REQUEST,
	            "EVENT data must be a non-empty array starting with the event name");
	parse_fails("42\"a\"", QC_E_BAD_REQUEST,
	            "EVENT data must be a non-empty array starting with the event name");

	/* Namespaces. */
	parse_fails("42/chat[\"x\"]", QC_E_BAD_REQUEST, "unterminated namespace (no ',')");
	parse_fails("40/admin", QC_E_BAD_REQUEST, "unterminated namespace (no ',')");
	parse_fails(too_long, QC_E_BAD_REQUEST, "namespace too long");
	parse_fails("42/a b,[\"x\"]", QC_E_BAD_REQUEST,
	            "namespace holds a byte that is not printable ASCII");
	parse_fails("42/caf\xc3\xa9,[\"x\"]", QC_E_BAD_REQUEST,
	            "namespace holds a byte that is not printable ASCII");
	parse_fails("42/a\x7f,[\"x\"]", QC_E_BAD_REQUEST,
	            "namespace holds a byte that is not printable ASCII");
	parse_fails_len(nul_in_nsp, sizeof(nul_in_nsp) - 1, QC_E_BAD_REQUEST,
	                "namespace holds a byte that is not printable ASCII");

	/* Ack ids: 20 digits, and one past 2^53 - 1. */
	parse_fails("4212345678901234567890[\"x\"]", QC_E_BAD_REQUEST, "ack id out of range");
	parse_fails("429007199254740992[\"x\"]", QC_E_BAD_REQUEST, "ack id out of range");
	parse_fails("42/chat,99999999999999999999[\"x\"]", QC_E_BAD_REQUEST, "ack id out of range");

	/* Other types' data. */
	parse_fails("40[\"x\"]", QC_E_BAD_REQUEST, "CONNECT data must be an object");
	parse_fails("40\"token\"", QC_E_BAD_REQUEST, "CONNECT data must be an object");
	parse_fails("40null", QC_E_BAD_REQUEST, "CONNECT data must be an object");
	parse_fails("41{}", QC_E_BAD_REQUEST, "DISCONNECT carries no data");
	parse_fails("4312{}", QC_E_BAD_REQUEST, "ACK data must be an array");
	parse_fails("4312", QC_E_BAD_REQUEST, "ACK data must be an array");
	parse_fails("43[\"x\"]", QC_E_BAD_REQUEST, "ACK without an ack id");
}

/* Parses @s (which must succeed) and maps it; returns the result with @cmd filled. */
static enum qc_err to_cmd(const char *s, struct qc_cmd *cmd, const char **msg)
{
	struct qc_sio_packet p;
	enum qc_err e;

	parse_ok(s, &p);
	e = qc_sio_to_cmd(&p, cmd, msg);
	/* The command owns the data now; releasing the packet must not free it. */
	assert_null(p.data);
	qc_sio_packet_release(&p);
	return e;
}

static void test_cmd_rooms(void **state)
{
	struct qc_cmd cmd;
	const char *msg = NULL;

	(void)state;
	assert_int_equal(to_cmd("425[\"subscribe\",{\"room\":\"market_600519\",\"password\":\"pw\","
	                        "\"request_id\":\"sub_1\",\"trace_id\":\"t1\"}]",
	                        &cmd, &msg),
	                 QC_OK);
	assert_int_equal(cmd.type, QC_CMD_SUBSCRIBE);
	assert_string_equal(cmd.room, "market_600519");
	assert_string_equal(cmd.password, "pw");
	assert_string_equal(cmd.request_id, "sub_1");
	assert_string_equal(cmd.trace_id, "t1");
	assert_int_equal(cmd.ack_id, 5);
	assert_true(json_is_array(cmd.root));
	qc_cmd_release(&cmd);
	assert_null(cmd.root);

	assert_int_equal(to_cmd("42[\"subscribe\",\"room_a\"]", &cmd, &msg), QC_OK);
	assert_int_equal(cmd.type, QC_CMD_SUBSCRIBE);
	assert_string_equal(cmd.room, "room_a");
	assert_null(cmd.password);
	assert_null(cmd.request_id);
	assert_null(cmd.trace_id);
	assert_int_equal(cmd.ack_id, -1);
	qc_cmd_release(&cmd);

	assert_int_equal(
	    to_cmd("42[\"unsubscribe\",{\"room\":\"r\",\"request_id\":\"u1\"}]", &cmd, &msg),
	    QC_OK);
	assert_int_equal(cmd.type, QC_CMD_UNSUBSCRIBE);
	assert_string_equal(cmd.room, "r");
	assert_string_equal(cmd.request_id, "u1");
	qc_cmd_release(&cmd);

	assert_int_equal(to_cmd("423[\"unsubscribe\",\"r2\"]", &cmd, &msg), QC_OK);
	assert_int_equal(cmd.type, QC_CMD_UNSUBSCRIBE);
	assert_string_equal(cmd.room, "r2");
	assert_int_equal(cmd.ack_id, 3);
	qc_cmd_release(&cmd);

	/* A null password is absent, as in the native protocol. */
	assert_int_equal(to_cmd("42[\"subscribe\",{\"room\":\"r\",\"password\":null}]", &cmd, &msg),
	                 QC_OK);
	assert_null(cmd.password);
	qc_cmd_release(&cmd);
}

static void test_cmd_ping_request(void **state)
{
	struct qc_cmd cmd;
	const char *msg = NULL;

	(void)state;
	assert_int_equal(to_cmd("42[\"ping\"]", &cmd, &msg), QC_OK);
	assert_int_equal(cmd.type, QC_CMD_PING);
	assert_null(cmd.timestamp);
	assert_null(cmd.request_id);
	qc_cmd_release(&cmd);

	assert_int_equal(to_cmd("42[\"ping\",null]", &cmd, &msg), QC_OK);
	assert_int_equal(cmd.type, QC_CMD_PING);
	assert_null(cmd.timestamp);
	qc_cmd_release(&cmd);

	assert_int_equal(to_cmd("429[\"ping\",{\"timestamp\":1699267201500,\"request_id\":\"p1\","
	                        "\"trace_id\":\"tp\"}]",
	                        &cmd, &msg),
	                 QC_OK);
	assert_int_equal(cmd.type, QC_CMD_PING);
	assert_int_equal(json_integer_value(cmd.timestamp), 1699267201500LL);
	assert_string_equal(cmd.request_id, "p1");
	assert_string_equal(cmd.trace_id, "tp");
	assert_int_equal(cmd.ack_id, 9);
	qc_cmd_release(&cmd);

	assert_int_equal(
	    to_cmd("42[\"request\",{\"action\":\"get_market_data\",\"payload\":"
	           "{\"symbol\":\"600519\"},\"request_id\":\"r1\",\"trace_id\":\"t1\"}]",
	           &cmd, &msg),
	    QC_OK);
	assert_int_equal(cmd.type, QC_CMD_REQUEST);
	assert_string_equal(cmd.action, "get_market_data");
	assert_string_equal(json_string_value(json_object_get(cmd.payload, "symbol")), "600519");
	assert_string_equal(cmd.request_id, "r1");
	assert_string_equal(cmd.trace_id, "t1");
	qc_cmd_release(&cmd);

	/* A missing or null payload becomes an empty object that lives in the root. */
	assert_int_equal(to_cmd("42[\"request\",{\"action\":\"list_rooms\"}]", &cmd, &msg), QC_OK);
	assert_true(json_is_object(cmd.payload));
	assert_int_equal(json_object_size(cmd.payload), 0);
	assert_ptr_equal(cmd.payload, json_object_get(json_array_get(cmd.root, 1), "payload"));
	qc_cmd_release(&cmd);

	assert_int_equal(
	    to_cmd("42[\"request\",{\"action\":\"list_rooms\",\"payload\":null}]", &cmd, &msg),
	    QC_OK);
	assert_true(json_is_object(cmd.payload));
	assert_int_equal(json_object_size(cmd.payload), 0);
	assert_ptr_equal(cmd.payload, json_object_get(json_array_get(cmd.root, 1), "payload"));
	qc_cmd_release(&cmd);
}

static void test_cmd_streams(void **state)
{
	struct qc_cmd cmd;
	const char *msg = NULL;

	(void)state;
	assert_int_equal(to_cmd("427[\"subscribe_market_stream\",{\"symbol\":\"600519\",\"fields\":"
	                        "[\"price\"],\"request_id\":\"s1\",\"trace_id\":\"ts\"}]",
	                        &cmd, &msg),
	                 QC_OK);
	assert_int_equal(cmd.type, QC_CMD_REQUEST);
	assert_string_equal(cmd.action, "subscribe_market_stream");
	assert_ptr_equal(cmd.payload, json_array_get(cmd.root, 1));
	assert_string_equal(json_string_value(json_object_get(cmd.payload, "symbol")), "600519");
	assert_string_equal(cmd.request_id, "s1");
	assert_string_equal(cmd.trace_id, "ts");
	assert_int_equal(cmd.ack_id, 7);
	qc_cmd_release(&cmd);

	/* No argument at all: an empty payload appended to the arguments. */
	assert_int_equal(to_cmd("42[\"unsubscribe_market_stream\"]", &cmd, &msg), QC_OK);
	assert_int_equal(cmd.type, QC_CMD_REQUEST);
	assert_string_equal(cmd.action, "unsubscribe_market_stream");
	assert_true(json_is_object(cmd.payload));
	assert_int_equal(json_object_size(cmd.payload), 0);
	assert_ptr_equal(cmd.payload, json_array_get(cmd.root, 1));
	assert_null(cmd.request_id);
	qc_cmd_release(&cmd);

	assert_int_equal(
	    to_cmd("42[\"unsubscribe_market_stream\",{\"symbols\":[\"a\",\"b\"]}]", &cmd, &msg),
	    QC_OK);
	assert_string_equal(cmd.action, "unsubscribe_market_stream");
	assert_int_equal(json_array_size(json_object_get(cmd.payload, "symbols")), 2);
	qc_cmd_release(&cmd);

	assert_int_equal(
	    to_cmd("42[\"stream_filter_update\",{\"symbol\":\"x\",\"fields\":[]}]", &cmd, &msg),
	    QC_OK);
	assert_int_equal(cmd.type, QC_CMD_REQUEST);
	assert_string_equal(cmd.action, "update_stream_filter");
	assert_string_equal(json_string_value(json_object_get(cmd.payload, "symbol")), "x");
	qc_cmd_release(&cmd);

	/* A null argument is replaced in place by the empty payload. */
	assert_int_equal(to_cmd("42[\"stream_filter_update\",null,\"extra\"]", &cmd, &msg), QC_OK);
	assert_string_equal(cmd.action, "update_stream_filter");
	assert_true(json_is_object(cmd.payload));
	assert_ptr_equal(cmd.payload, json_array_get(cmd.root, 1));
	assert_int_equal(json_array_size(cmd.root), 3);
	qc_cmd_release(&cmd);
}

/* Maps @s, expects @err with @want_msg; @rid / @tid the ids that must have been read. */
static void cmd_fails(const char *s, enum qc_err err, const char *want_msg, const char *rid,
                      const char *tid)
{
	struct qc_cmd cmd;
	const char *msg = NULL;

	assert_int_equal(to_cmd(s, &cmd, &msg), err);
	assert_non_null(msg);
	assert_string_equal(msg, want_msg);
	if (rid)
		assert_string_equal(cmd.request_id, rid);
	else
		assert_null(cmd.request_id);
	if (tid)
		assert_string_equal(cmd.trace_id, tid);
	else
		assert_null(cmd.trace_id);
	qc_cmd_release(&cmd);
}

/* The message qc_codec_parse() gives for the native frame @native. */
static const char *codec_msg(const char *native, enum qc_err want)
{
	struct qc_cmd cmd;
	const char *msg = NULL;

	assert_int_equal(qc_codec_parse(native, strlen(native), &cmd, &msg), want);
	qc_cmd_release(&cmd);
	return msg;
}

static void test_cmd_errors(void **state)
{
	const char *room_msg = codec_msg("{\"type\":\"subscribe\"}", QC_E_BAD_REQUEST);
	const char *action_msg = codec_msg("{\"type\":\"request\"}", QC_E_BAD_REQUEST);
	const char *payload_msg =
	    codec_msg("{\"type\":\"request\",\"action\":\"a\",\"payload\":[]}", QC_E_BAD_REQUEST);
	const char *rid_msg = codec_msg("{\"type\":\"ping\",\"request_id\":1}", QC_E_BAD_REQUEST);
	const char *tid_msg = codec_msg("{\"type\":\"ping\",\"trace_id\":1}", QC_E_BAD_REQUEST);
	const char *pw_msg =
	    codec_msg("{\"type\":\"subscribe\",\"room\":\"r\",\"password\":1}", QC_E_BAD_REQUEST);
	struct qc_sio_packet p;
	struct qc_cmd cmd;
	const char *msg = NULL;

	(void)state;
	/* The same error messages as the native protocol. */
	cmd_fails("42[\"subscribe\",{\"request_id\":\"r1\",\"trace_id\":\"t1\"}]", QC_E_BAD_REQUEST,
	          room_msg, "r1", "t1");
	cmd_fails("42[\"subscribe\"]", QC_E_BAD_REQUEST, room_msg, NULL, NULL);
	cmd_fails("42[\"subscribe\",\"\"]", QC_E_BAD_REQUEST, room_msg, NULL, NULL);
	cmd_fails("42[\"subscribe\",{\"room\":\"\"}]", QC_E_BAD_REQUEST, room_msg, NULL, NULL);
	cmd_fails("42[\"unsubscribe\",{\"room\":7,\"request_id\":\"r2\"}]", QC_E_BAD_REQUEST,
	          room_msg, "r2", NULL);
	cmd_fails("42[\"subscribe\",42]", QC_E_BAD_REQUEST, room_msg, NULL, NULL);
	cmd_fails("42[\"subscribe\",{\"room\":\"r\",\"password\":1,\"request_id\":\"r3\"}]",
	          QC_E_BAD_REQUEST, pw_msg, "r3", NULL);
	cmd_fails("42[\"subscribe\",{\"room\":\"r\",\"request_id\":5}]", QC_E_BAD_REQUEST, rid_msg,
	          NULL, NULL);
	cmd_fails("42[\"ping\",{\"request_id\":\"p\",\"trace_id\":[]}]", QC_E_BAD_REQUEST, tid_msg,
	          "p", NULL);
	cmd_fails("42[\"ping\",1699267201500]", QC_E_BAD_REQUEST,
	          "\"ping\" argument must be an object", NULL, NULL);

	cmd_fails("42[\"request\",{\"request_id\":\"q1\",\"payload\":{}}]", QC_E_BAD_REQUEST,
	          action_msg, "q1", NULL);
	cmd_fails("42[\"request\",{\"action\":\"\"}]", QC_E_BAD_REQUEST, action_msg, NULL, NULL);
	cmd_fails("42[\"request\",{\"action\":3}]", QC_E_BAD_REQUEST, action_msg, NULL, NULL);
	cmd_fails("42[\"request\",{\"action\":\"x\",\"payload\":\"s\",\"request_id\":\"q2\"}]",
	          QC_E_BAD_REQUEST, payload_msg, "q2", NULL);
	cmd_fails("42[\"request\"]", QC_E_BAD_REQUEST, "\"request\" argument must be an object",
	          NULL, NULL);
	cmd_fails("42[\"request\",\"get_stats\"]", QC_E_BAD_REQUEST,
	          "\"request\" argument must be an object", NULL, NULL);
	cmd_fails("42[\"subscribe_market_stream\",\"600519\"]", QC_E_BAD_REQUEST, payload_msg, NULL,
	          NULL);
	cmd_fails("42[\"stream_filter_update\",[1]]", QC_E_BAD_REQUEST, payload_msg, NULL, NULL);

	/* Unknown event names, ids still read. */
	cmd_fails("42[\"chat\",{\"request_id\":\"c1\"}]", QC_E_UNKNOWN_ACTION, "unknown event",
	          "c1", NULL);
	cmd_fails("42[\"update_stream_filter\",{}]", QC_E_UNKNOWN_ACTION, "unknown event", NULL,
	          NULL);
	cmd_fails("42[\"Subscribe\",\"r\"]", QC_E_UNKNOWN_ACTION, "unknown event", NULL, NULL);

	/* Not an EVENT on "/": refused, but the ack id is kept and the data still freed. */
	parse_ok("42/chat,4[\"subscribe\",\"r\"]", &p);
	assert_int_equal(qc_sio_to_cmd(&p, &cmd, &msg), QC_E_BAD_REQUEST);
	assert_string_equal(msg, "only EVENT packets on namespace \"/\" are commands");
	assert_int_equal(cmd.ack_id, 4);
	assert_null(p.data);
	qc_sio_packet_release(&p);
	qc_cmd_release(&cmd);

	parse_ok("4312[\"ok\"]", &p);
	assert_int_equal(qc_sio_to_cmd(&p, &cmd, &msg), QC_E_BAD_REQUEST);
	qc_sio_packet_release(&p);
	qc_cmd_release(&cmd);

	parse_ok("40{\"token\":\"x\"}", &p);
	assert_int_equal(qc_sio_to_cmd(&p, &cmd, &msg), QC_E_BAD_REQUEST);
	qc_sio_packet_release(&p);
	qc_cmd_release(&cmd);

	parse_ok("2", &p);
	assert_int_equal(qc_sio_to_cmd(&p, &cmd, &msg), QC_E_BAD_REQUEST);
	qc_sio_packet_release(&p);
	qc_cmd_release(&cmd);
}

static void test_encode_handshake(void **state)
{
	(void)state;
	expect_frame(qc_eio_open_msg("lv_VI97HAXpY6yYWAAAC", 25000, 20000, 1000000),
	             "0{\"sid\":\"lv_VI97HAXpY6yYWAAAC\",\"upgrades\":[],\"pingInterval\":25000,"
	             "\"pingTimeout\":20000,\"maxPayload\":1000000}");
	expect_frame(qc_eio_open_msg("s", UINT32_MAX, 0, UINT32_MAX),
	             "0{\"sid\":\"s\",\"upgrades\":[],\"pingInterval\":4294967295,"
	             "\"pingTimeout\":0,\"maxPayload\":4294967295}");
	expect_frame(qc_sio_connect_msg("wZX3oN0bSVIhsaknAAAI", NULL),
	             "40{\"sid\":\"wZX3oN0bSVIhsaknAAAI\"}");
	expect_frame(qc_sio_connect_msg("wZX3oN0bSVIhsaknAAAI", "e7f0"),
	             "40{\"sid\":\"wZX3oN0bSVIhsaknAAAI\",\"pid\":\"e7f0\"}");
	expect_frame(qc_sio_connect_error_msg("Not authorized"),
	             "44{\"message\":\"Not authorized\"}");
	assert_null(qc_eio_open_msg(NULL, 1, 1, 1));
	assert_null(qc_sio_connect_msg(NULL, NULL));
	assert_null(qc_sio_connect_error_msg(NULL));
}

static void test_encode_event_ack(void **state)
{
	json_t *arg = json_pack("{s:s, s:f, s:I}", "symbol", "600519", "price", 1850.31, "volume",
	                        (json_int_t)1000);
	json_t *s = json_string("hi");
	json_t *empty = json_array();
	char big[400];
	char want[512];

	(void)state;
	assert_non_null(arg);
	expect_frame(
	    qc_sio_event_msg("stream_data", arg),
	    "42[\"stream_data\",{\"symbol\":\"600519\",\"price\":1850.31,\"volume\":1000}]");
	expect_frame(qc_sio_event_msg("hello", NULL), "42[\"hello\"]");
	expect_frame(qc_sio_event_msg("hello", s), "42[\"hello\",\"hi\"]");
	expect_frame(qc_sio_event_msg("hello", json_null()), "42[\"hello\",null]");
	expect_frame(qc_sio_event_msg("hello", empty), "42[\"hello\",[]]");
	assert_null(qc_sio_event_msg(NULL, arg));

	expect_frame(qc_sio_ack_msg(12, arg),
	             "4312[{\"symbol\":\"600519\",\"price\":1850.31,\"volume\":1000}]");
	expect_frame(qc_sio_ack_msg(0, s), "430[\"hi\"]");
	expect_frame(qc_sio_ack_msg(12, NULL), "4312[]");
	expect_frame(qc_sio_ack_msg(9007199254740991LL, NULL), "439007199254740991[]");
	assert_null(qc_sio_ack_msg(-1, arg));
	assert_null(qc_sio_ack_msg(9007199254740992LL, arg));

	/* Borrowed arguments are left as they were. */
	assert_int_equal(arg->refcount, 1);
	assert_int_equal(s->refcount, 1);

	/* A payload over 125 bytes gets the 16-bit length header. */
	memset(big, 'b', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	snprintf(want, sizeof(want), "42[\"%s\"]", big);
	expect_frame(qc_sio_event_msg(big, NULL), want);

	json_decref(arg);
	json_decref(s);
	json_decref(empty);
}

/* Connection state recovery: the offset goes last, as a string; only events carry one. */
static void test_encode_offset(void **state)
{
	json_t *ev = json_pack("{s:s, s:s, s:{s:s, s:i}}", "type", "event", "event", "room_message",
	                       "data", "room", "r1", "n", 1);
	json_t *bare = json_pack("{s:s, s:s}", "type", "event", "event", "tick");
	json_t *resp =
	    json_pack("{s:s, s:s, s:b}", "type", "response", "request_id", "q", "success", 1);

	(void)state;
	expect_frame(qc_sio_from_native_at(ev, 17),
	             "42[\"room_message\",{\"room\":\"r1\",\"n\":1},\"17\"]");
	expect_frame(qc_sio_from_native_at(ev, UINT64_MAX),
	             "42[\"room_message\",{\"room\":\"r1\",\"n\":1},\"18446744073709551615\"]");
	/* no data: null keeps the offset out of the data's place in the handler's arguments */
	expect_frame(qc_sio_from_native_at(bare, 5), "42[\"tick\",null,\"5\"]");
	/* offset 0: none, as qc_sio_from_native() */
	expect_frame(qc_sio_from_native_at(ev, 0),
	             "42[\"room_message\",{\"room\":\"r1\",\"n\":1}]");
	/* not an event (a response): never an offset */
	expect_frame(
	    qc_sio_from_native_at(resp, 9),
	    "42[\"response\",{\"type\":\"response\",\"request_id\":\"q\",\"success\":true}]");
	assert_null(qc_sio_from_native_at(NULL, 3));
	json_object_set_new(bare, "event", json_integer(1));
	assert_null(qc_sio_from_native_at(bare, 3));
	json_decref(ev);
	json_decref(bare);
	json_decref(resp);
}

static void test_encode_hostile(void **state)
{
	json_t *arg = json_pack("{s:s}", "k\"]", "\"],[\"x\\\n\x01</script>");
	struct qc_sio_packet p;

	(void)state;
	expect_frame(qc_sio_event_msg("a\"b\\c\n</x>\x1f", arg),
	             "42[\"a\\\"b\\\\c\\n</x>\\u001F\",{\"k\\\"]\":"
	             "\"\\\"],[\\\"x\\\\\\n\\u0001</script>\"}]");
	expect_frame(qc_sio_connect_msg("\"},\"sid\":\"evil", NULL),
	             "40{\"sid\":\"\\\"},\\\"sid\\\":\\\"evil\"}");
	expect_frame(qc_sio_connect_error_msg("bad\r\n\t\"token\""),
	             "44{\"message\":\"bad\\r\\n\\t\\\"token\\\"\"}");
	expect_frame(qc_eio_open_msg("a\"b", 1, 2, 3),
	             "0{\"sid\":\"a\\\"b\",\"upgrades\":[],\"pingInterval\":1,\"pingTimeout\":2,"
	             "\"maxPayload\":3}");
	/* Invalid UTF-8 is refused rather than sent. */
	assert_null(qc_sio_event_msg("\xff\xfe", NULL));
	assert_null(qc_sio_connect_msg("\xc3", NULL));
	assert_null(qc_sio_connect_error_msg("\x80"));

	/* What we write parses back to the same event. */
	{
		struct qc_msg *m = qc_sio_event_msg("a\"b\\c\n</x>", arg);
		const char *msg = NULL;

		assert_non_null(m);
		assert_int_equal(
		    qc_sio_parse((const char *)qc_msg_payload(m), qc_msg_payload_len(m), &p, &msg),
		    QC_OK);
		assert_string_equal(p.event, "a\"b\\c\n</x>");
		assert_true(json_equal(json_array_get(p.data, 1), arg));
		qc_sio_packet_release(&p);
		qc_msg_unref(&m);
	}
	json_decref(arg);
}

static void test_from_native(void **state)
{
	json_t *ev = qc_codec_event("room_message",
	                            json_pack("{s:s, s:s}", "room", "r1", "content", "hello"));
	json_t *resp = json_loads("{\"type\":\"response\",\"request_id\":\"r1\",\"success\":true,"
	                          "\"data\":{},\"timestamp\":5,\"server_time\":5}",
	                          0, NULL);
	json_t *pong = json_loads("{\"type\":\"pong\",\"timestamp\":7,\"server_time\":8}", 0, NULL);
	json_t *err = qc_codec_error(QC_E_BAD_JSON, "frame is not valid JSON");
	json_t *bare = json_loads("{\"type\":\"event\",\"event\":\"session_end\"}", 0, NULL);
	json_t *bad1 = json_loads("{\"type\":\"event\",\"event\":5,\"data\":{}}", 0, NULL);
	json_t *bad2 = json_loads("{\"type\":\"batch\"}", 0, NULL);
	json_t *bad3 = json_loads("{\"event\":\"x\"}", 0, NULL);
	json_t *bad4 = json_loads("[\"type\",\"event\"]", 0, NULL);

	(void)state;
	assert_non_null(ev);
	assert_non_null(resp);
	assert_non_null(pong);
	assert_non_null(err);

	/* Events never use the ack, even when one is pending. */
	expect_frame(qc_sio_from_native(ev, -1),
	             "42[\"room_message\",{\"room\":\"r1\",\"content\":\"hello\"}]");
	expect_frame(qc_sio_from_native(ev, 3),
	             "42[\"room_message\",{\"room\":\"r1\",\"content\":\"hello\"}]");
	expect_frame(qc_sio_from_native(bare, -1), "42[\"session_end\"]");

	expect_frame(
	    qc_sio_from_native(resp, -1),
	    "42[\"response\",{\"type\":\"response\",\"request_id\":\"r1\",\"success\":true,"
	    "\"data\":{},\"timestamp\":5,\"server_time\":5}]");
	expect_frame(qc_sio_from_native(resp, 17),
	             "4317[{\"type\":\"response\",\"request_id\":\"r1\",\"success\":true,"
	             "\"data\":{},\"timestamp\":5,\"server_time\":5}]");

	expect_frame(qc_sio_from_native(pong, -1),
	             "42[\"pong\",{\"type\":\"pong\",\"timestamp\":7,\"server_time\":8}]");
	expect_frame(qc_sio_from_native(pong, 0),
	             "430[{\"type\":\"pong\",\"timestamp\":7,\"server_time\":8}]");

	expect_frame(qc_sio_from_native(err, -1),
	             "42[\"error\",{\"type\":\"error\",\"error\":{\"code\":\"BAD_JSON\","
	             "\"message\":\"frame is not valid JSON\"}}]");
	expect_frame(qc_sio_from_native(err, 4),
	             "42[\"error\",{\"type\":\"error\",\"error\":{\"code\":\"BAD_JSON\","
	             "\"message\":\"frame is not valid JSON\"}}]");

	assert_null(qc_sio_from_native(bad1, -1));
	assert_null(qc_sio_from_native(bad2, -1));
	assert_null(qc_sio_from_native(bad3, -1));
	assert_null(qc_sio_from_native(bad4, -1));
	assert_null(qc_sio_from_native(NULL, -1));

	/* Borrowed: nothing kept. */
	assert_int_equal(ev->refcount, 1);
	assert_int_equal(resp->refcount, 1);

	json_decref(ev);
	json_decref(resp);
	json_decref(pong);
	json_decref(err);
	json_decref(bare);
	json_decref(bad1);
	json_decref(bad2);
	json_decref(bad3);
	json_decref(bad4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_eio_types),
	    cmocka_unit_test(test_connect),
	    cmocka_unit_test(test_event),
	    cmocka_unit_test(test_ack_disconnect),
	    cmocka_unit_test(test_parse_malformed),
	    cmocka_unit_test(test_cmd_rooms),
	    cmocka_unit_test(test_cmd_ping_request),
	    cmocka_unit_test(test_cmd_streams),
	    cmocka_unit_test(test_cmd_errors),
	    cmocka_unit_test(test_encode_handshake),
	    cmocka_unit_test(test_encode_event_ack),
	    cmocka_unit_test(test_encode_offset),
	    cmocka_unit_test(test_encode_hostile),
	    cmocka_unit_test(test_from_native),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
