/*
 * fuzz_sio: one Engine.IO text frame from a /socket.io/ client through qc_sio_parse() and, for
 * an EVENT, qc_sio_to_cmd(), as ws.c and the hub do; the packet and the command must be well
 * formed, and the answer (an ack when one was asked for) valid Socket.IO JSON.
 */
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init();
	return 0;
}

static void check_packet(const struct qc_sio_packet *p, enum qc_err e, const char *msg)
{
	size_t n = strlen(p->nsp);

	CHECK(p->eio >= QC_EIO_OPEN && p->eio <= QC_EIO_NOOP);
	CHECK(p->nsp[0] == '/' && n <= QC_SIO_NSP_MAX);
	for (size_t i = 0; i < n; i++)
		CHECK(p->nsp[i] >= 0x21 && p->nsp[i] <= 0x7e);
	CHECK(p->ack_id >= -1 && p->ack_id <= QC_SIO_ACK_ID_MAX);
	if (e != QC_OK) {
		CHECK(msg && *msg);
		CHECK(e == QC_E_BAD_JSON || e == QC_E_BAD_REQUEST);
		return;
	}
	if (p->eio != QC_EIO_MESSAGE) {
		CHECK(p->sio == -1 && !p->data);
		return;
	}
	CHECK(p->sio >= QC_SIO_CONNECT && p->sio <= QC_SIO_CONNECT_ERROR);
	switch (p->sio) {
	case QC_SIO_CONNECT:
		CHECK(!p->data || json_is_object(p->data));
		break;
	case QC_SIO_DISCONNECT:
		CHECK(!p->data);
		break;
	case QC_SIO_EVENT:
		CHECK(json_is_array(p->data) && p->event);
		CHECK(p->event == json_string_value(json_array_get(p->data, 0)));
		break;
	case QC_SIO_ACK:
		CHECK(json_is_array(p->data) && p->ack_id >= 0);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qc_sio_packet p;
	struct qc_cmd cmd;
	const char *msg = NULL;
	enum qc_err e;

	e = qc_sio_parse((const char *)data, size, &p, &msg);
	check_packet(&p, e, msg);
	if (e == QC_OK && p.eio == QC_EIO_MESSAGE && p.sio == QC_SIO_EVENT) {
		msg = NULL;
		e = qc_sio_to_cmd(&p, &cmd, &msg);
		CHECK(!p.data);
		check_cmd(&cmd, e, msg);
		check_answer(&cmd, e, msg, 1);
		qc_cmd_release(&cmd);
	}
	qc_sio_packet_release(&p);
	CHECK(!p.data && !p.event);
	return 0;
}
