/*
 * fuzz_codec: one native client frame (a WebSocket text or binary message on /ws) through
 * qc_codec_parse(), as the hub receives it; the parsed command must be well formed and the
 * answer that echoes its ids must be valid JSON.
 */
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qc_cmd cmd;
	const char *msg = NULL;
	enum qc_err e;

	e = qc_codec_parse((const char *)data, size, &cmd, &msg);
	check_cmd(&cmd, e, msg);
	check_answer(&cmd, e, msg, 0);
	qc_cmd_release(&cmd);
	CHECK(!cmd.root);
	return 0;
}
