/*
 * fuzz_hub: client frames through the whole domain layer (qc_hub_rx(): the envelope, every
 * action handler, rooms, streams, subscriptions and alert filters, sessions), on a hub with a
 * fake transport and four connections: 'a' alice (admin, native), 'b' bob (native), 'c' carol
 * (Socket.IO), 'p' a feed (publisher, native). The input is lines; the first byte of each says
 * what it is:
 *   a b c p   the rest of the line is a text frame from that connection (A B C P: binary)
 *   !N        connection N (0-3) goes away (suspended: sessions.ttl_s is on)
 *   @N[TOKEN] connection N comes back with ?resume=TOKEN (empty: the token it was given)
 *   RN<frame> connection N (opened afresh if it is not there) sends <frame> with every "$TOK"
 *             in it replaced by the resume token N was given when it went away: a resume
 *             request with positions (SPEC 2.9), e.g. R0{"type":"resume","token":"$TOK"}
 *   SN<auth>  connection N comes back as a Socket.IO CONNECT whose auth object is <auth>, "$TOK"
 *             replaced as for R (by the live session's pid if N is connected): connection
 *             state recovery when it names a session, e.g. S2{"pid":"$TOK","offset":"0"}
 *   ~         the once-a-second timer (qc_hub_expire)
 *   anything else: the whole line is a frame from alice
 * e.g.  a{"type":"subscribe","room":"desk"}
 *       c42["request",{"action":"send_message","payload":{"room":"desk","content":1}}]
 * Rate and bad-message limits are lifted so that a long input keeps its connections.
 * Invariants: the hub's own (assertions, sanitizers) and that every queued frame is valid
 * JSON / Socket.IO; a connection the hub closes is reopened by the next frame for it.
 */
#include "hub_fake.h"

static const struct {
	const char *user;
	uint32_t roles;
	enum qc_enc enc;
} who[FAKE_CONNS] = {
    {"alice", QC_ROLE_ADMIN, QC_ENC_NATIVE},
    {"bob", 0, QC_ENC_NATIVE},
    {"carol", 0, QC_ENC_SIO},
    {"feed", QC_ROLE_PUBLISHER, QC_ENC_NATIVE},
};

/* Each slot's last resume token (session id + secret), kept when it goes away. */
static char tokens[FAKE_CONNS][QC_SESSION_ID_LEN + QC_SECRET_LEN + 1];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fake_init();
	return 0;
}

static struct qc_conn *conn(struct fake_hub *f, int i)
{
	if (!f->c[i])
		fake_open(f, i, who[i].user, who[i].roles, who[i].enc);
	return f->c[i];
}

static void away(struct fake_hub *f, int i)
{
	struct qc_conn *c = f->c[i];

	if (!c)
		return;
	snprintf(tokens[i], sizeof(tokens[i]), "%s%s", c->session_id, c->secret);
	f->c[i] = NULL;
	qc_hub_closed(f->h, c);
}

static void back(struct fake_hub *f, int i, const char *token, size_t len)
{
	char tok[256];
	struct qc_conn *c;

	if (f->c[i])
		return;
	if (len) {
		snprintf(tok, sizeof(tok), "%.*s", (int)len, token);
		token = tok;
	} else {
		token = tokens[i];
	}
	c = qc_hub_resume(f->h, token, who[i].user, who[i].roles, f);
	if (c) {
		CHECK(c->enc == QC_ENC_NATIVE && !c->suspended);
		f->c[i] = c;
	} else {
		conn(f, i);
	}
}

/* @frame with "$TOK" replaced by slot @i's last token, in *@outp (malloc'd); its length. */
static size_t with_token(int i, const char *frame, size_t len, char **outp)
{
	size_t tlen = strlen(tokens[i]), n = 0;
	char *out = malloc(len / 4 * (tlen + 4) + len + 1);

	CHECK(out);
	for (size_t k = 0; k < len;) {
		if (len - k >= 4 && !memcmp(frame + k, "$TOK", 4)) {
			memcpy(out + n, tokens[i], tlen);
			n += tlen;
			k += 4;
		} else {
			out[n++] = frame[k++];
		}
	}
	out[n] = '\0';
	*outp = out;
	return n;
}

/* RN<frame>: a resume request, say, from a fresh connection. */
static void resume_request(struct fake_hub *f, int i, const char *frame, size_t len)
{
	char *out;
	size_t n = with_token(i, frame, len, &out);

	qc_hub_rx(f->h, conn(f, i), out, n, false);
	free(out);
}

/* SN<auth>: a Socket.IO CONNECT with @auth, as ws.c hands it to the hub. */
static void sio_connect(struct fake_hub *f, int i, const char *auth, size_t len)
{
	struct qc_conn *c = calloc(1, sizeof(*c)), *resumed;
	json_t *j;
	char *out;

	CHECK(c);
	/* a live session's pid too: the client may come back before its old socket is seen gone */
	if (f->c[i])
		snprintf(tokens[i], sizeof(tokens[i]), "%s%s", f->c[i]->session_id,
		         f->c[i]->secret);
	with_token(i, auth, len, &out);
	j = json_loads(out, JSON_REJECT_DUPLICATES, NULL);
	free(out);
	snprintf(c->user_id, sizeof(c->user_id), "%s", who[i].user);
	c->roles = who[i].roles;
	c->enc = QC_ENC_SIO;
	c->transport = f;
	resumed = json_is_object(j) ? qc_hub_sio_resume(f->h, c, j) : NULL;
	json_decref(j);
	/* a live session taken over was let go of (fake_abandon): any other one goes now */
	if (f->c[i] && f->c[i] != resumed)
		away(f, i);
	if (resumed) {
		CHECK(qc_outq_empty(&c->outq));
		free(c);
		f->c[i] = resumed;
	} else {
		CHECK(!qc_hub_open(f->h, c));
		f->c[i] = c;
	}
}

static int slot(char ch)
{
	switch (ch) {
	case 'a':
	case 'A':
		return 0;
	case 'b':
	case 'B':
		return 1;
	case 'c':
	case 'C':
		return 2;
	case 'p':
	case 'P':
		return 3;
	}
	return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data, *line, *end, *nl;
	struct fake_hub f = {0};
	size_t len;
	int i;

	memset(tokens, 0, sizeof(tokens));
	fake_config(&f);
	f.cfg.sessions.ttl_s = 60;
	f.cfg.limits.rate_per_s = 0;
	f.cfg.limits.max_bad_messages = 1000000;
	fake_start(&f);
	for (line = buf, end = buf + size; line < end; line = nl + 1) {
		nl = memchr(line, '\n', (size_t)(end - line));
		if (!nl)
			nl = end;
		len = (size_t)(nl - line);
		if (!len)
			continue;
		if (fake_show > 0)
			fprintf(stderr, "%.*s\n", (int)len, line);
		i = slot(line[0]);
		if (i >= 0) {
			qc_hub_rx(f.h, conn(&f, i), line + 1, len - 1, line[0] < 'a');
		} else if (line[0] == '!' && len >= 2) {
			away(&f, (line[1] - '0') & 3);
		} else if (line[0] == '@' && len >= 2) {
			back(&f, (line[1] - '0') & 3, line + 2, len - 2);
		} else if (line[0] == 'R' && len >= 2) {
			resume_request(&f, (line[1] - '0') & 3, line + 2, len - 2);
		} else if (line[0] == 'S' && len >= 2) {
			sio_connect(&f, (line[1] - '0') & 3, line + 2, len - 2);
		} else if (line[0] == '~') {
			qc_hub_expire(f.h);
		} else {
			qc_hub_rx(f.h, conn(&f, 0), line, len, false);
		}
		fake_drain(&f);
		fake_reap(&f);
	}
	fake_done(&f);
	return 0;
}
