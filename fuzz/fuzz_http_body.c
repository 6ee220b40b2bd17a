/*
 * fuzz_http_body: request bodies of POST /api/publish and POST /api/broadcast, handed to the
 * hub entries http.c calls (qc_hub_publish, qc_hub_broadcast) exactly as http.c parses them,
 * on a hub with a fake transport and subscribers of both encodings in a room and on symbols,
 * so that accepted bodies are fanned out and encoded too. The input is a sequence of
 * requests, each a route byte ('B': broadcast, anything else: publish) and one JSON body:
 *   P{"symbol":"AAPL","data":{"price":1}}B{"room":"desk","content":"hi"}
 * (the JSON values are read one after another, so one input can make the hub carry state
 * from request to request: dedup, versions, rooms). Invariants: every answer is an object or
 * an error with a message and an HTTP status; every queued frame is valid JSON / Socket.IO.
 */
#include "hub_fake.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fake_init();
	return 0;
}

static void subscribers(struct fake_hub *f)
{
	struct qc_conn *a, *b;

	a = fake_open(f, 0, "alice", 0, QC_ENC_NATIVE);
	b = fake_open(f, 1, "bob", 0, QC_ENC_SIO);
	fake_rx(f, a, "{\"type\":\"subscribe\",\"room\":\"desk\"}");
	fake_rx(f, a,
	        "{\"type\":\"request\",\"action\":\"subscribe_market_stream\","
	        "\"payload\":{\"symbols\":[\"AAPL\",\"BTCUSD\"],\"fields\":[\"price\"]}}");
	fake_rx(f, b, "42[\"subscribe\",\"desk\"]");
	fake_rx(f, b, "421[\"subscribe_market_stream\",{\"symbol\":\"AAPL\"}]");
	fake_drain(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct fake_hub f = {0};
	const char *msg;
	json_error_t jerr;
	json_t *body, *out;
	size_t off = 0;
	enum qc_err e;
	bool bcast;
	int status;

	fake_config(&f);
	fake_start(&f);
	subscribers(&f);
	while (off < size) {
		bcast = buf[off++] == 'B';
		body = json_loadb(buf + off, size - off,
		                  JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK,
		                  &jerr);
		if (!body)
			break;
		off += (size_t)jerr.position;
		out = NULL;
		msg = NULL;
		e = bcast ? qc_hub_broadcast(f.h, body, &out, &msg)
		          : qc_hub_publish(f.h, body, &out, &msg);
		json_decref(body);
		if (e == QC_OK) {
			CHECK(json_is_object(out));
		} else {
			CHECK(!out && msg && *msg);
			status = qc_err_http_status(e);
			CHECK(status >= 400 && status < 600);
		}
		json_decref(out);
		fake_drain(&f);
	}
	fake_done(&f);
	return 0;
}
