/*
 * hub_fake.h: a hub for the fuzz targets that go through the domain layer, with a transport
 * that only records (no sockets; it follows a session that takes another's socket over), a few
 * connections opened and subscribed the way clients do, and a check of every frame the hub queued:
 * each is a text frame whose payload is valid JSON (native) or a valid Engine.IO / Socket.IO packet
 * (Socket.IO). tests/unit/hub_env.h is the cmocka counterpart; this one aborts through CHECK()
 * instead.
 *
 * OpenSSL's random bytes come from a fixed sequence restarted for every input (session ids,
 * secrets, the hub's node id in message and subscription ids), so an input replays the same
 * way and ids that a seed names (sub-<node>-1) are the ones the hub makes. QC_FUZZ_SHOW=1 in
 * the environment prints every frame the hub queued, to see what an input does.
 */
#ifndef QC_FUZZ_HUB_FAKE_H
#define QC_FUZZ_HUB_FAKE_H

#include <stdbool.h>

/* RAND_set_rand_method() is deprecated in OpenSSL 3 but is the way to make RAND_bytes fixed */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/rand.h>

#include "fuzz.h"
#include "quotecast/config.h"
#include "quotecast/conn.h"
#include "quotecast/hub.h"
#include "quotecast/outq.h"

#define FAKE_CONNS 4

static uint64_t fake_rand_state;
static int fake_show = -1;

static int fake_rand_bytes(unsigned char *buf, int num)
{
	for (int i = 0; i < num; i++) {
		/* xorshift64* */
		fake_rand_state ^= fake_rand_state >> 12;
		fake_rand_state ^= fake_rand_state << 25;
		fake_rand_state ^= fake_rand_state >> 27;
		buf[i] = (unsigned char)((fake_rand_state * 0x2545F4914F6CDD1DULL) >> 56);
	}
	return 1;
}

static int fake_rand_status(void)
{
	return 1;
}

static const RAND_METHOD fake_rand = {
    .bytes = fake_rand_bytes, .pseudorand = fake_rand_bytes, .status = fake_rand_status};

/* From LLVMFuzzerInitialize(). */
static inline void fake_init(void)
{
	fuzz_init();
	CHECK(RAND_set_rand_method(&fake_rand) == 1);
	fake_show = getenv("QC_FUZZ_SHOW") != NULL;
}

struct fake_hub {
	struct qc_config cfg;
	struct qc_hub *h;
	struct qc_conn *c[FAKE_CONNS];
	unsigned closes;
};

static void fake_want_write(void *ctx, struct qc_conn *c)
{
	CHECK(!qc_outq_empty(&c->outq));
}

static void fake_close(void *ctx, struct qc_conn *c)
{
	struct fake_hub *f = ctx;

	CHECK(c->closing);
	f->closes++;
}

/* The hub let go of @c's socket (a Socket.IO reconnect took the session over): forget it. */
static void fake_abandon(void *ctx, struct qc_conn *c)
{
	struct fake_hub *f = ctx;

	CHECK(c->transport);
	c->transport = NULL;
	for (int i = 0; i < FAKE_CONNS; i++)
		if (f->c[i] == c)
			f->c[i] = NULL;
}

/* A resume request: the suspended session @to took over @from's socket (its slot). */
static void fake_rebind(void *ctx, struct qc_conn *from, struct qc_conn *to)
{
	struct fake_hub *f = ctx;
	int n = 0;

	for (int i = 0; i < FAKE_CONNS; i++) {
		if (f->c[i] == from) {
			f->c[i] = to;
			n++;
		}
	}
	CHECK(n == 1);
}

/* Defaults, made smaller where only the speed of a run changes. */
static inline void fake_config(struct fake_hub *f)
{
	CHECK(!qc_config_defaults(&f->cfg));
	f->cfg.streams.buffer_size = 16;
	f->cfg.streams.dedup_window = 64;
	f->cfg.sessions.ttl_s = 0;
}

static inline void fake_start(struct fake_hub *f)
{
	struct qc_transport t = {fake_want_write, fake_close, f, fake_abandon, fake_rebind, NULL};

	fake_rand_state = 0x9e3779b97f4a7c15ULL;
	f->h = qc_hub_new(&f->cfg, &t);
	CHECK(f->h);
}

static inline void fake_rx(struct fake_hub *f, struct qc_conn *c, const char *text)
{
	qc_hub_rx(f->h, c, text, strlen(text), false);
}

static inline struct qc_conn *fake_open(struct fake_hub *f, int i, const char *user, uint32_t roles,
                                        enum qc_enc enc)
{
	struct qc_conn *c = calloc(1, sizeof(*c));

	CHECK(c && i < FAKE_CONNS && !f->c[i]);
	snprintf(c->user_id, sizeof(c->user_id), "%s", user);
	c->roles = roles;
	c->enc = (uint8_t)enc;
	c->transport = f;
	CHECK(!qc_hub_open(f->h, c));
	f->c[i] = c;
	return c;
}

/* A queued frame as it would go on the wire. */
static inline void check_frame(const struct qc_conn *c, const struct qc_msg *m)
{
	const unsigned char *p = qc_msg_payload(m);
	size_t len = qc_msg_payload_len(m), i = 0;
	json_error_t jerr;
	json_t *j;

	if (fake_show > 0)
		fprintf(stderr, "  -> %s: %.*s\n", c->user_id, (int)len, p);
	if ((qc_msg_frame(m)[0] & 0x0f) != 1)
		return; /* not text: control frames carry no JSON */
	if (c->enc == QC_ENC_SIO) {
		CHECK(len >= 1 && p[0] >= '0' && p[0] <= '6');
		if (p[0] != '4' && p[0] != '0')
			return;
		i = 1;
		if (p[0] == '4') {
			CHECK(len >= 2 && p[1] >= '0' && p[1] <= '4');
			for (i = 2; i < len && p[i] >= '0' && p[i] <= '9'; i++)
				;
		}
		if (i == len)
			return;
	}
	j = json_loadb((const char *)p + i, len - i, JSON_DECODE_ANY, &jerr);
	if (!j)
		fprintf(stderr, "queued frame is not JSON (%s): %.*s\n", jerr.text, (int)len, p);
	CHECK(j);
	json_decref(j);
}

/*
 * Check and drop everything queued, as the transport's writes would, topping the queue up from
 * a resume's replay after each write as ws.c does.
 */
static inline void fake_drain(struct fake_hub *f)
{
	struct qc_conn *c;

	for (int i = 0; i < FAKE_CONNS; i++) {
		c = f->c[i];
		if (!c)
			continue;
		do {
			while (!qc_outq_empty(&c->outq)) {
				check_frame(c, qc_outq_peek(&c->outq));
				qc_outq_pop(&c->outq);
			}
			CHECK(c->outq.bytes == 0);
			qc_hub_sio_written(f->h, c);
		} while (c->in_table && qc_hub_refill(f->h, c));
	}
}

/*
 * Connections the hub asked to close are gone once their output is written: tell the hub, as
 * ws.c does from LWS_CALLBACK_CLOSED, and free the slot.
 */
static inline void fake_reap(struct fake_hub *f)
{
	for (int i = 0; i < FAKE_CONNS; i++) {
		if (f->c[i] && f->c[i]->closing) {
			qc_hub_closed(f->h, f->c[i]);
			f->c[i] = NULL;
		}
	}
}

static inline void fake_done(struct fake_hub *f)
{
	json_t *st;

	fake_drain(f);
	st = qc_hub_stats(f->h);
	CHECK(json_is_object(st));
	json_decref(st);
	for (int i = 0; i < FAKE_CONNS; i++)
		if (f->c[i])
			qc_hub_closed(f->h, f->c[i]);
	CHECK(qc_hub_nconns(f->h) == 0);
	qc_hub_free(f->h);
	qc_config_free(&f->cfg);
}

#endif
