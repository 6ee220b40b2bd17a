/*
 * test_msg: WebSocket header encoding, message layout, JSON framing and reference counting.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "quotecast/cobj.h"
#include "quotecast/msg.h"

static void check_header(uint64_t len, const unsigned char *want, size_t want_len)
{
	unsigned char out[QC_WS_HDR_MAX + 4];

	memset(out, 0xee, sizeof(out));
	assert_int_equal(qc_ws_header(out, 1, len), want_len);
	assert_memory_equal(out, want, want_len);
	/* Nothing past the header is touched. */
	assert_int_equal(out[want_len], 0xee);
}

static void test_ws_header_lengths(void **state)
{
	static const unsigned char h0[] = {0x81, 0x00};
	static const unsigned char h125[] = {0x81, 0x7d};
	static const unsigned char h126[] = {0x81, 0x7e, 0x00, 0x7e};
	static const unsigned char h65535[] = {0x81, 0x7e, 0xff, 0xff};
	static const unsigned char h65536[] = {0x81, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00};
	static const unsigned char hbig[] = {0x81, 0x7f, 0x01, 0x02, 0x03,
	                                     0x04, 0x05, 0x06, 0x07, 0x08};

	(void)state;
	check_header(0, h0, sizeof(h0));
	check_header(125, h125, sizeof(h125));
	check_header(126, h126, sizeof(h126));
	check_header(65535, h65535, sizeof(h65535));
	check_header(65536, h65536, sizeof(h65536));
	check_header(0x0102030405060708ULL, hbig, sizeof(hbig));
}

static void test_ws_header_opcode(void **state)
{
	unsigned char out[QC_WS_HDR_MAX];

	(void)state;
	assert_int_equal(qc_ws_header(out, 2, 5), 2);
	assert_int_equal(out[0], 0x82);
	/* Never masked: the MASK bit (0x80 of byte 1) stays clear. */
	assert_int_equal(out[1], 0x05);
	assert_int_equal(qc_ws_header(out, 1, 200), 4);
	assert_int_equal(out[1] & 0x80, 0);
	assert_int_equal(qc_ws_header(out, 1, 70000), 10);
	assert_int_equal(out[1] & 0x80, 0);
}

static void check_text(size_t len, size_t want_hdr, const unsigned char *want_hdr_bytes)
{
	unsigned char *payload = malloc(len ? len : 1);
	struct qc_msg *m;
	size_t i;

	assert_non_null(payload);
	for (i = 0; i < len; i++)
		payload[i] = (unsigned char)(i * 7 + 3);

	m = qc_msg_new_text(payload, len);
	assert_non_null(m);
	assert_int_equal(m->refs, 1);
	assert_int_equal(m->kind, QC_MSG_CONTROL);
	assert_int_equal(m->opcode, 1);
	assert_int_equal(m->stream_id, 0);
	assert_int_equal(m->seq, 0);
	assert_null(m->meta);
	assert_int_equal(m->hdr_len, want_hdr);
	assert_int_equal(m->len, want_hdr + len);
	assert_int_equal(qc_msg_payload_len(m), len);

	/* Payload at a fixed offset, header directly in front of it, headroom kept before that. */
	assert_ptr_equal(qc_msg_payload(m), m->buf + QC_MSG_HEADROOM + QC_WS_HDR_MAX);
	assert_ptr_equal(qc_msg_frame(m) + m->hdr_len, qc_msg_payload(m));
	assert_true(qc_msg_frame(m) >= m->buf + QC_MSG_HEADROOM);
	assert_memory_equal(qc_msg_frame(m), want_hdr_bytes, want_hdr);
	if (len)
		assert_memory_equal(qc_msg_payload(m), payload, len);

	qc_msg_unref(&m);
	assert_null(m);
	free(payload);
}

static void test_text_sizes(void **state)
{
	static const unsigned char h0[] = {0x81, 0x00};
	static const unsigned char h125[] = {0x81, 0x7d};
	static const unsigned char h126[] = {0x81, 0x7e, 0x00, 0x7e};
	static const unsigned char h65535[] = {0x81, 0x7e, 0xff, 0xff};
	static const unsigned char h65536[] = {0x81, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00};

	(void)state;
	check_text(0, 2, h0);
	check_text(125, 2, h125);
	check_text(126, 4, h126);
	check_text(65535, 4, h65535);
	check_text(65536, 10, h65536);
}

static void test_text_null_empty(void **state)
{
	struct qc_msg *m;

	(void)state;
	m = qc_msg_new_text(NULL, 0);
	assert_non_null(m);
	assert_int_equal(m->len, 2);
	assert_int_equal(qc_msg_payload_len(m), 0);
	assert_int_equal(qc_msg_frame(m)[0], 0x81);
	assert_int_equal(qc_msg_frame(m)[1], 0x00);
	qc_msg_unref(&m);
}

static void test_text_too_large(void **state)
{
	static const char byte = 'x';

	(void)state;
	/* Rejected before any copy, so a 1-byte source is safe. */
	if (sizeof(size_t) > sizeof(uint32_t)) {
		assert_null(qc_msg_new_text(&byte, (size_t)UINT32_MAX - QC_WS_HDR_MAX + 1));
		assert_null(qc_msg_new_text(&byte, (size_t)UINT32_MAX));
		assert_null(qc_msg_new_text(&byte, (size_t)UINT32_MAX + 1));
	}
	assert_null(qc_msg_new_text(&byte, SIZE_MAX));
}

static void check_json(json_t *j)
{
	struct qc_msg *m;
	unsigned char hdr[QC_WS_HDR_MAX];
	size_t hdr_len;
	char *want;

	want = json_dumps(j, JSON_COMPACT);
	assert_non_null(want);
	m = qc_msg_new_json(j);
	assert_non_null(m);
	assert_int_equal(qc_msg_payload_len(m), strlen(want));
	assert_memory_equal(qc_msg_payload(m), want, strlen(want));
	hdr_len = qc_ws_header(hdr, 1, strlen(want));
	assert_int_equal(m->hdr_len, hdr_len);
	assert_memory_equal(qc_msg_frame(m), hdr, hdr_len);
	assert_int_equal(m->refs, 1);
	assert_int_equal(m->kind, QC_MSG_CONTROL);
	qc_msg_unref(&m);
	free(want);
}

static void test_json_roundtrip(void **state)
{
	json_t *j;
	json_t *parsed;
	struct qc_msg *m;
	json_error_t err;

	(void)state;
	j = json_pack("{s:s, s:{s:f, s:I, s:b, s:n}, s:[i,i,s]}", "event", "stream_data", "data",
	              "price", 1900.25, "seq", (json_int_t)42, "snapshot", 1, "x", "list", 1, 2,
	              "caf\xc3\xa9 \"quoted\"\n");
	assert_non_null(j);
	check_json(j);

	/* The payload parses back to an equal document. */
	m = qc_msg_new_json(j);
	assert_non_null(m);
	parsed = json_loadb((const char *)qc_msg_payload(m), qc_msg_payload_len(m), 0, &err);
	assert_non_null(parsed);
	assert_true(json_equal(parsed, j));
	json_decref(parsed);
	qc_msg_unref(&m);
	json_decref(j);

	j = json_object();
	check_json(j);
	json_decref(j);
}

static void test_json_scratch_grows_and_resets(void **state)
{
	char *big = malloc(100001);
	json_t *j;

	(void)state;
	assert_non_null(big);
	memset(big, 'a', 100000);
	big[100000] = '\0';

	j = json_pack("{s:s}", "a", "b");
	check_json(j);
	json_decref(j);

	/* Larger than any initial scratch size: 64-bit length header. */
	j = json_pack("{s:s}", "blob", big);
	check_json(j);
	json_decref(j);

	/* A small document after a large one must not carry the old tail. */
	j = json_pack("[i]", 7);
	check_json(j);
	json_decref(j);
	free(big);
}

static void test_json_errors(void **state)
{
	json_t *j;

	(void)state;
	assert_null(qc_msg_new_json(NULL));
	/* JSON_COMPACT without JSON_ENCODE_ANY refuses a bare scalar. */
	j = json_integer(1);
	assert_null(qc_msg_new_json(j));
	json_decref(j);
}

static void test_refcount(void **state)
{
	struct qc_msg *m, *a, *b;

	(void)state;
	m = qc_msg_new_text("hi", 2);
	assert_non_null(m);
	a = qc_msg_ref(m);
	assert_ptr_equal(a, m);
	b = qc_msg_ref(m);
	assert_int_equal(m->refs, 3);

	qc_msg_unref(&a);
	assert_null(a);
	/* Still alive: reading it is a use-after-free under ASan/valgrind if it was freed. */
	assert_int_equal(m->refs, 2);
	assert_memory_equal(qc_msg_payload(m), "hi", 2);

	qc_msg_unref(&b);
	assert_null(b);
	assert_int_equal(m->refs, 1);

	/* The last reference frees; the leak checkers prove it. */
	qc_msg_unref(&m);
	assert_null(m);
}

static void test_unref_null(void **state)
{
	struct qc_msg *m = NULL;

	(void)state;
	qc_msg_unref(NULL);
	qc_msg_unref(&m);
	assert_null(m);
}

static void test_meta_reference_dropped(void **state)
{
	struct qc_msg *m, *extra;
	struct qc_cobj *data = qc_cobj_from_text("{\"price\":5}", 11);

	(void)state;
	assert_non_null(data);
	m = qc_msg_new_text("x", 1);
	assert_non_null(m);
	m->kind = QC_MSG_TICK;
	/* the message owns one reference to its meta */
	m->meta = qc_cobj_ref(data);
	assert_int_equal(data->refs, 2);
	extra = qc_msg_ref(m);
	qc_msg_unref(&extra);
	assert_int_equal(data->refs, 2); /* not the last reference: meta kept */
	qc_msg_unref(&m);
	assert_int_equal(data->refs, 1); /* freed with the message */
	qc_cobj_unref(&data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ws_header_lengths),
	    cmocka_unit_test(test_ws_header_opcode),
	    cmocka_unit_test(test_text_sizes),
	    cmocka_unit_test(test_text_null_empty),
	    cmocka_unit_test(test_text_too_large),
	    cmocka_unit_test(test_json_roundtrip),
	    cmocka_unit_test(test_json_scratch_grows_and_resets),
	    cmocka_unit_test(test_json_errors),
	    cmocka_unit_test(test_refcount),
	    cmocka_unit_test(test_unref_null),
	    cmocka_unit_test(test_meta_reference_dropped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
