/*
 * qcbench: the load generator of quotecast's fan-out benchmark. It owns everything it uses: a
 * single-threaded epoll loop over raw non-blocking TCP sockets, a minimal RFC 6455 client
 * (upgrade handshake with a checked Sec-WebSocket-Accept, masked client frames, server frames
 * with 16/64-bit lengths, fragmented messages, ping -> pong, close), one publisher paced by a
 * 1 ms timerfd, and a fixed-memory log-linear latency histogram. It shares no code with the
 * server on purpose, so a bug in the server's framing cannot hide itself in the measurement.
 * Subscribers find the "ts" the publisher stamped into each tick by a byte scan rather than a
 * JSON parse, to keep the generator cheaper than the server it measures. Only loopback
 * addresses are accepted. bench/README.md says what the figures mean.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#define WS_CONT   0x0
#define WS_TEXT   0x1
#define WS_BINARY 0x2
#define WS_CLOSE  0x8
#define WS_PING   0x9
#define WS_PONG   0xa

#define RX_CHUNK        (256u * 1024)       /* bytes asked of one recv() */
#define MAX_MSG         (16u * 1024 * 1024) /* larger server messages are a protocol error */
#define MAX_HTTP_HDR    8192                /* upgrade response header limit */
#define PUB_REQ_BYTES   (48u * 1024)        /* the server's default max_message_bytes is 64 KiB */
#define PUB_MAX_BACKLOG (4u * 1024 * 1024)  /* publisher output not yet taken by the kernel */
#define DRAIN_US        5000000             /* longest drain after the measurement */
#define DRAIN_QUIET_US  500000              /* drain ends early after this long without data */
#define CLOSE_WAIT_US   2000000             /* how long to wait for close replies */
#define PER_SOURCE      25000               /* connections per 127.0.0.x source address */
#define MAX_SOURCES     254
#define FD_RESERVE      16 /* stdio, epoll, timerfd, publisher, /proc reads */
#define MAX_EVENTS      1024
#define TALLY_MAX       32
#define MAX_PORTS       16 /* --ports: nodes the subscribers are spread over */

/* Latency histogram: exact below 256 us, then 128 sub-buckets per power of two (< 0.8 % wide). */
#define HIST_SUB_BITS 7
#define HIST_SUB      (1u << HIST_SUB_BITS)
#define HIST_LINEAR   (2u * HIST_SUB)
#define HIST_MAX_US   60000000ull
#define HIST_TOP_EXP  25 /* 2^25 <= 60 s in us < 2^26 */
#define HIST_BUCKETS  (HIST_LINEAR + (HIST_TOP_EXP - HIST_SUB_BITS) * HIST_SUB)

enum mode { MODE_STREAM, MODE_ROOM, MODE_INGEST };

enum phase { PH_SETUP, PH_RUN, PH_DRAIN, PH_CLOSE, PH_DONE };

enum cstate {
	CS_NEW,
	CS_CONNECTING,
	CS_HANDSHAKE,
	CS_SESSION,
	CS_SUBSCRIBING,
	CS_READY,
	CS_CLOSING,
	CS_CLOSED,
};

enum err_kind {
	E_CONNECT,
	E_HANDSHAKE,
	E_SUBSCRIBE,
	E_RESPONSE,
	E_PUBLISH,
	E_CLOSE,
	E_PROTOCOL,
	E_TIMEOUT,
	E_COUNT,
};

static const char *const err_names[E_COUNT] = {
    "connect",       "handshake",        "subscribe", "error_response",
    "publish_error", "unexpected_close", "protocol",  "setup_timeout",
};

struct buf {
	char *data;
	size_t off; /* bytes already consumed (output buffers) */
	size_t len;
	size_t cap;
};

struct conn {
	int fd;
	uint32_t idx;
	uint32_t need; /* bytes the pending frame needs, when it is larger than RX_CHUNK */
	uint8_t state;
	uint8_t frag_op; /* opcode of the fragmented message being reassembled, 0 if none */
	bool is_pub;
	bool resolved;
	bool want_out;
	unsigned nsyms;  /* symbols this subscriber asked for (1 without --subs-per-conn) */
	char accept[32]; /* expected Sec-WebSocket-Accept */
	struct buf in;   /* unparsed bytes left over from the last read */
	struct buf out;
	struct buf msg; /* fragments of an incomplete message */
};

struct tally {
	int key;
	char name[32];
	uint64_t count;
};

struct tallies {
	struct tally t[TALLY_MAX];
	unsigned n;
	uint64_t other;
};

struct hist {
	uint64_t b[HIST_BUCKETS];
	uint64_t count;
	uint64_t max;
};

/* One server port: where a connection goes and what its Host header says. */
struct target {
	struct sockaddr_storage addr;
	char hosthdr[80];
	unsigned port;
};

struct opts {
	char host[64];
	struct sockaddr_storage addr; /* the host, port 0 */
	socklen_t addrlen;
	int family;
	unsigned port;
	struct target sub[MAX_PORTS]; /* subscriber i goes to sub[i % nsub] */
	unsigned nsub;
	struct target pub; /* the publisher's */
	unsigned pub_port; /* --pub-port (0: --port) */
	unsigned conns;
	unsigned symbols;
	unsigned rate;
	unsigned sources;
	unsigned batch;
	double duration;
	double warmup;
	double setup_timeout;
	enum mode mode;
	bool idle;
	bool json;
	bool filter_mix;
	bool verbose;
	char fields_json[1024]; /* `,"fields":[...,"ts"]` or empty */
	char max_hz_json[32];   /* `,"max_hz":H` or empty */
	unsigned max_hz;        /* stream mode: updates per second per subscription (0: any) */
	long pid;
	unsigned subs_lo;     /* stream mode: symbols per subscriber, at least */
	unsigned subs_hi;     /* and at most (0: one, B<i % S>) */
	unsigned batch_ticks; /* ingest mode: ticks per request */
	unsigned inflight;    /* ingest mode: requests in flight */
	uint64_t total_ticks; /* ingest mode: publish this many, then stop (0: for the window) */
};

struct bench {
	struct opts o;
	int ep;
	int tfd;
	struct conn *conns; /* o.conns subscribers, then the publisher */
	struct conn *pub;
	char *rx;
	size_t rxcap;
	struct buf pubbuf;
	uint64_t rng;
	uint32_t run_id;
	enum phase phase;
	unsigned next;
	unsigned in_flight;
	unsigned resolved;
	unsigned subscribed;
	unsigned open;
	int64_t now;    /* CLOCK_MONOTONIC us */
	int64_t now_rt; /* CLOCK_REALTIME us */
	int64_t setup_start;
	int64_t setup_deadline;
	int64_t pub_start;
	int64_t meas_start;
	int64_t meas_end;
	int64_t rt_meas_start;
	int64_t rt_meas_end;
	int64_t drain_deadline;
	int64_t close_deadline;
	int64_t last_delivery;
	int64_t next_progress;
	uint64_t sent;
	uint64_t published;
	uint64_t delivered;
	uint64_t late;
	uint64_t recv_total;
	uint64_t no_ts;
	uint64_t pub_stalls;
	uint64_t pub_responses;
	uint64_t subscriptions; /* stream subscriptions that succeeded (symbols, not connections) */
	unsigned inflight;      /* ingest: requests sent and not answered */
	uint64_t accepted;      /* ingest: ticks the server accepted, in all */
	uint64_t accepted_win;  /* ingest: ... answered inside the window */
	int64_t filled_at;      /* ingest with --ticks: when the last answer came */
	uint64_t last_recv;
	uint64_t last_sent;
	uint64_t errs[E_COUNT];
	struct tallies closes;
	struct tallies codes;
	struct tallies http;
	struct tallies cerrno;
	const char *proto_why;
	long rss_before;
	long rss_after;
	long rss_end;
	struct hist hist;
};

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

static int64_t clock_us(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static int buf_reserve(struct buf *bf, size_t extra)
{
	size_t need, cap;
	char *p;

	if (bf->off == bf->len)
		bf->off = bf->len = 0;
	if (bf->len + extra <= bf->cap)
		return 0;
	if (bf->off) {
		memmove(bf->data, bf->data + bf->off, bf->len - bf->off);
		bf->len -= bf->off;
		bf->off = 0;
		if (bf->len + extra <= bf->cap)
			return 0;
	}
	need = bf->len + extra;
	cap = bf->cap ? bf->cap : 256;
	while (cap < need)
		cap *= 2;
	p = realloc(bf->data, cap);
	if (!p)
		return -ENOMEM;
	bf->data = p;
	bf->cap = cap;
	return 0;
}

static int buf_append(struct buf *bf, const void *p, size_t n)
{
	if (buf_reserve(bf, n))
		return -ENOMEM;
	memcpy(bf->data + bf->len, p, n);
	bf->len += n;
	return 0;
}

static void buf_free(struct buf *bf)
{
	free(bf->data);
	memset(bf, 0, sizeof(*bf));
}

static size_t buf_pending(const struct buf *bf)
{
	return bf->len - bf->off;
}

static void tally_add(struct tallies *t, int key, const char *name, size_t nlen)
{
	unsigned i;

	if (nlen >= sizeof(t->t[0].name))
		nlen = sizeof(t->t[0].name) - 1;
	for (i = 0; i < t->n; i++) {
		if (t->t[i].key == key && strlen(t->t[i].name) == nlen &&
		    !memcmp(t->t[i].name, name, nlen)) {
			t->t[i].count++;
			return;
		}
	}
	if (t->n == TALLY_MAX) {
		t->other++;
		return;
	}
	t->t[t->n].key = key;
	memcpy(t->t[t->n].name, name, nlen);
	t->t[t->n].name[nlen] = '\0';
	t->t[t->n].count = 1;
	t->n++;
}

static void tally_int(struct tallies *t, int key)
{
	tally_add(t, key, "", 0);
}

static unsigned hist_index(uint64_t v)
{
	unsigned e;

	if (v < HIST_LINEAR)
		return (unsigned)v;
	if (v > HIST_MAX_US)
		v = HIST_MAX_US;
	e = 63 - (unsigned)__builtin_clzll(v);
	return HIST_LINEAR + (e - HIST_SUB_BITS - 1) * HIST_SUB +
	       (unsigned)((v >> (e - HIST_SUB_BITS)) - HIST_SUB);
}

/* The middle of bucket @i, in microseconds. */
static double hist_value(unsigned i)
{
	unsigned g, m, shift;
	uint64_t lo;

	if (i < HIST_LINEAR)
		return i;
	g = (i - HIST_LINEAR) >> HIST_SUB_BITS;
	m = (i - HIST_LINEAR) & (HIST_SUB - 1);
	shift = g + 1;
	lo = (uint64_t)(HIST_SUB + m) << shift;
	return (double)lo + (double)((1ull << shift) - 1) / 2.0;
}

static void hist_add(struct hist *h, int64_t us)
{
	uint64_t v = us < 0 ? 0 : (uint64_t)us;

	h->b[hist_index(v)]++;
	h->count++;
	if (v > h->max)
		h->max = v;
}

static double hist_pct(const struct hist *h, double p)
{
	uint64_t rank, seen = 0;
	double v;
	unsigned i;

	if (!h->count)
		return 0;
	rank = (uint64_t)ceil(p * (double)h->count);
	if (rank < 1)
		rank = 1;
	for (i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank)
			break;
	}
	v = hist_value(i < HIST_BUCKETS ? i : HIST_BUCKETS - 1);
	return v > (double)h->max ? (double)h->max : v;
}

/*
 * The value of the first `"key":` in @p, or NULL. Not a JSON parser: it relies on the server's
 * messages not carrying the key inside string values, which holds for what this bench sends.
 */
static const char *json_value(const char *p, size_t n, const char *key, size_t klen)
{
	const char *end = p + n, *q;

	while ((q = memmem(p, (size_t)(end - p), key, klen))) {
		q += klen;
		while (q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'))
			q++;
		if (q < end && *q == ':') {
			q++;
			while (q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'))
				q++;
			return q < end ? q : NULL;
		}
		p = q;
	}
	return NULL;
}

#define JSON_VALUE(p, n, lit) json_value((p), (n), "\"" lit "\"", sizeof(lit) + 1)

static bool json_str_is(const char *v, const char *end, const char *lit, size_t n)
{
	return v && end - v >= (ptrdiff_t)(n + 2) && v[0] == '"' && !memcmp(v + 1, lit, n) &&
	       v[n + 1] == '"';
}

#define JSON_STR_IS(v, end, lit) json_str_is((v), (end), lit, sizeof(lit) - 1)

/* Tallies the "code" string of an error answer. */
static void note_code(struct bench *b, const char *p, size_t n)
{
	const char *v = JSON_VALUE(p, n, "code"), *end = p + n, *q;

	if (!v || *v != '"') {
		tally_add(&b->codes, 0, "?", 1);
		return;
	}
	v++;
	for (q = v; q < end && *q != '"'; q++)
		;
	tally_add(&b->codes, 0, v, (size_t)(q - v));
}

static long read_rss_kb(long pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "VmRSS:", 6)) {
			kb = strtol(line + 6, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kb;
}

static int conn_want_out(struct bench *b, struct conn *c, bool on)
{
	struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};

	if (c->want_out == on)
		return 0;
	if (epoll_ctl(b->ep, EPOLL_CTL_MOD, c->fd, &ev))
		return -errno;
	c->want_out = on;
	return 0;
}

static int conn_flush(struct bench *b, struct conn *c)
{
	ssize_t n;

	while (c->out.off < c->out.len) {
		n = send(c->fd, c->out.data + c->out.off, c->out.len - c->out.off, MSG_NOSIGNAL);
		if (n > 0) {
			c->out.off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return conn_want_out(b, c, true);
		return n < 0 ? -errno : -EIO;
	}
	c->out.off = c->out.len = 0;
	return conn_want_out(b, c, false);
}

/* Queues one masked frame and pushes out what the socket takes. @p must not point into c->out. */
static int ws_send(struct bench *b, struct conn *c, unsigned op, const char *p, size_t n)
{
	unsigned char *h, *mk;
	uint32_t mask;
	size_t hl, i;

	hl = n < 126 ? 2 : n <= 0xffff ? 4 : 10;
	if (buf_reserve(&c->out, hl + 4 + n))
		return -ENOMEM;
	h = (unsigned char *)c->out.data + c->out.len;
	h[0] = (unsigned char)(0x80 | op);
	if (n < 126) {
		h[1] = (unsigned char)(0x80 | n);
	} else if (n <= 0xffff) {
		h[1] = 0x80 | 126;
		h[2] = (unsigned char)(n >> 8);
		h[3] = (unsigned char)n;
	} else {
		h[1] = 0x80 | 127;
		for (i = 0; i < 8; i++)
			h[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
	}
	mask = (uint32_t)rng_next(&b->rng);
	mk = h + hl;
	memcpy(mk, &mask, 4);
	for (i = 0; i < n; i++)
		h[hl + 4 + i] = (unsigned char)p[i] ^ mk[i & 3];
	c->out.len += hl + 4 + n;
	return conn_flush(b, c);
}

static void conn_drop(struct bench *b, struct conn *c)
{
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
		b->open--;
	}
	c->state = CS_CLOSED;
	c->frag_op = 0;
	c->need = 0;
	c->want_out = false;
	buf_free(&c->in);
	buf_free(&c->out);
	buf_free(&c->msg);
}

/* A subscriber's setup is over, one way or the other: let the next one start. */
static void conn_resolve(struct bench *b, struct conn *c, bool ok)
{
	if (c->resolved || c->is_pub)
		return;
	c->resolved = true;
	b->in_flight--;
	b->resolved++;
	if (ok) {
		b->subscribed++;
		b->subscriptions += c->nsyms ? c->nsyms : 1;
	}
}

static void conn_fail(struct bench *b, struct conn *c, enum err_kind kind)
{
	b->errs[kind]++;
	conn_drop(b, c);
	conn_resolve(b, c, false);
}

static void conn_proto(struct bench *b, struct conn *c, const char *why)
{
	static const char code[2] = {0x03, (char)0xea}; /* 1002 */

	if (!b->proto_why)
		b->proto_why = why;
	(void)ws_send(b, c, WS_CLOSE, code, sizeof(code));
	conn_fail(b, c, E_PROTOCOL);
}

/* The peer went away or the socket failed; classify by how far the connection had got. */
static void conn_lost(struct bench *b, struct conn *c, int err)
{
	switch (c->state) {
	case CS_CLOSING:
		conn_drop(b, c);
		break;
	case CS_CONNECTING:
		tally_int(&b->cerrno, err);
		conn_fail(b, c, E_CONNECT);
		break;
	case CS_HANDSHAKE:
		tally_int(&b->http, 0);
		conn_fail(b, c, E_HANDSHAKE);
		break;
	default:
		tally_int(&b->closes, 1006);
		conn_fail(b, c, E_CLOSE);
		break;
	}
}

/* The publisher goes to --pub-port, subscriber i to the i % N-th of --ports. */
static const struct target *conn_target(const struct bench *b, const struct conn *c)
{
	return c->is_pub ? &b->o.pub : &b->o.sub[c->idx % b->o.nsub];
}

static void conn_start(struct bench *b, struct conn *c)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
	struct sockaddr_in src;
	int fd, one = 1;

	fd = socket(b->o.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		tally_int(&b->cerrno, errno);
		conn_fail(b, c, E_CONNECT);
		return;
	}
	c->fd = fd;
	c->state = CS_CONNECTING;
	b->open++;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (b->o.sources > 1) {
		memset(&src, 0, sizeof(src));
		src.sin_family = AF_INET;
		src.sin_addr.s_addr = htonl(0x7f000001u + c->idx % b->o.sources);
		(void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)))
			goto fail;
	}
	if (connect(fd, (struct sockaddr *)&conn_target(b, c)->addr, b->o.addrlen) &&
	    errno != EINPROGRESS)
		goto fail;
	if (epoll_ctl(b->ep, EPOLL_CTL_ADD, fd, &ev))
		goto fail;
	c->want_out = true;
	return;
fail:
	tally_int(&b->cerrno, errno);
	conn_fail(b, c, E_CONNECT);
}

static int send_upgrade(struct bench *b, struct conn *c)
{
	unsigned char raw[16], sha[EVP_MAX_MD_SIZE];
	char key[32], cat[96], req[512], query[64];
	unsigned mdlen = 0;
	size_t i;
	int n;

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
		for (i = 0; i < sizeof(raw); i++)
			raw[i] = (unsigned char)rng_next(&b->rng);
	}
	EVP_EncodeBlock((unsigned char *)key, raw, sizeof(raw));
	n = snprintf(cat, sizeof(cat), "%s%s", key, WS_GUID);
	if (!EVP_Digest(cat, (size_t)n, sha, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
		return -EIO;
	EVP_EncodeBlock((unsigned char *)c->accept, sha, 20);
	if (c->is_pub)
		snprintf(query, sizeof(query), "user_id=benchpub&roles=publisher,admin");
	else
		snprintf(query, sizeof(query), "user_id=bench%u", c->idx);
	n = snprintf(req, sizeof(req),
	             "GET /ws?%s HTTP/1.1\r\n"
	             "Host: %s\r\n"
	             "Upgrade: websocket\r\n"
	             "Connection: Upgrade\r\n"
	             "Sec-WebSocket-Key: %s\r\n"
	             "Sec-WebSocket-Version: 13\r\n"
	             "%s"
	             "\r\n",
	             query, conn_target(b, c)->hosthdr, key,
	             c->is_pub ? "Sec-WebSocket-Protocol: quotecast-publisher\r\n" : "");
	if (buf_append(&c->out, req, (size_t)n))
		return -ENOMEM;
	c->state = CS_HANDSHAKE;
	return conn_flush(b, c);
}

static void conn_connected(struct bench *b, struct conn *c, uint32_t events)
{
	socklen_t l = sizeof(int);
	int err = 0, rc;

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
		err = errno;
	if (err) {
		tally_int(&b->cerrno, err);
		conn_fail(b, c, E_CONNECT);
		return;
	}
	if (!(events & EPOLLOUT))
		return;
	rc = send_upgrade(b, c);
	if (rc)
		conn_lost(b, c, -rc);
}

/* Checks a complete upgrade response header of @n bytes; returns 0 or -EPROTO. */
static int check_upgrade(const char *p, size_t n, const char *accept, int *status)
{
	static const char name[] = "sec-websocket-accept:";
	const char *end = p + n, *line, *eol, *v;
	size_t alen = strlen(accept);

	*status = 0;
	if (n < 12 || (memcmp(p, "HTTP/1.1 ", 9) && memcmp(p, "HTTP/1.0 ", 9)))
		return -EPROTO;
	*status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	if (*status != 101)
		return -EPROTO;
	line = memmem(p, n, "\r\n", 2);
	while (line && (line += 2) < end) {
		eol = memmem(line, (size_t)(end - line), "\r\n", 2);
		if (!eol)
			break;
		if ((size_t)(eol - line) > sizeof(name) - 1 &&
		    !strncasecmp(line, name, sizeof(name) - 1)) {
			v = line + sizeof(name) - 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			while (eol > v && (eol[-1] == ' ' || eol[-1] == '\t'))
				eol--;
			return (size_t)(eol - v) == alen && !memcmp(v, accept, alen) ? 0 : -EPROTO;
		}
		line = eol;
	}
	return -EPROTO;
}

static size_t handshake_input(struct bench *b, struct conn *c, const char *p, size_t n)
{
	const char *end = memmem(p, n, "\r\n\r\n", 4);
	size_t hlen;
	int status;

	if (!end) {
		if (n > MAX_HTTP_HDR) {
			tally_int(&b->http, 0);
			conn_fail(b, c, E_HANDSHAKE);
		}
		return 0;
	}
	hlen = (size_t)(end - p) + 4;
	if (check_upgrade(p, hlen, c->accept, &status)) {
		tally_int(&b->http, status);
		conn_fail(b, c, E_HANDSHAKE);
		return 0;
	}
	c->state = CS_SESSION;
	return hlen;
}

/*
 * Subscriber @idx's own symbols with --subs-per-conn: a count in [lo, hi] and that many
 * distinct symbols, drawn from a generator seeded by @idx (the same every run). Writes them as
 * a JSON array body ("B1","B7",...) into @out; returns the count.
 */
static unsigned own_symbols(const struct opts *o, unsigned idx, char *out, size_t cap)
{
	uint64_t st = 0x9e3779b97f4a7c15ULL * (idx + 1) + 1;
	unsigned k, n, i, j, picked[256];
	size_t len = 0;

	n = o->subs_lo + (unsigned)(rng_next(&st) % (o->subs_hi - o->subs_lo + 1));
	if (n > o->symbols)
		n = o->symbols;
	for (i = 0; i < n; i++) {
		do {
			k = (unsigned)(rng_next(&st) % o->symbols);
			for (j = 0; j < i && picked[j] != k; j++)
				;
		} while (j < i);
		picked[i] = k;
		len += (size_t)snprintf(out + len, cap - len, "%s\"B%u\"", i ? "," : "", k);
	}
	return n;
}

static void on_session(struct bench *b, struct conn *c)
{
	char req[4096], syms[3072];
	unsigned k;
	int n, rc;

	if (c->state != CS_SESSION)
		return;
	if (c->is_pub) {
		c->state = CS_READY;
		return;
	}
	k = c->idx % b->o.symbols;
	if (b->o.mode == MODE_ROOM)
		n = snprintf(
		    req, sizeof(req),
		    "{\"type\":\"subscribe\",\"request_id\":\"s%u\",\"room\":\"bench.B%u\"}",
		    c->idx, k);
	else if (b->o.subs_hi) {
		c->nsyms = own_symbols(&b->o, c->idx, syms, sizeof(syms));
		n = snprintf(req, sizeof(req),
		             "{\"type\":\"request\",\"request_id\":\"s%u\","
		             "\"action\":\"subscribe_market_stream\","
		             "\"payload\":{\"symbols\":[%s],\"snapshot\":false%s%s}}",
		             c->idx, syms, b->o.filter_mix && (c->idx & 1) ? "" : b->o.fields_json,
		             b->o.max_hz_json);
	} else
		n = snprintf(req, sizeof(req),
		             "{\"type\":\"request\",\"request_id\":\"s%u\","
		             "\"action\":\"subscribe_market_stream\","
		             "\"payload\":{\"symbol\":\"B%u\",\"snapshot\":false%s%s}}",
		             c->idx, k, b->o.filter_mix && (c->idx & 1) ? "" : b->o.fields_json,
		             b->o.max_hz_json);
	c->state = CS_SUBSCRIBING;
	rc = ws_send(b, c, WS_TEXT, req, (size_t)n);
	if (rc)
		conn_lost(b, c, -rc);
}

/*
 * Ingest mode: one request of up to --batch-ticks ticks, round robin over the symbols, each
 * tick five fields of about 100 bytes of JSON and a unique message id.
 */
static int publish_ingest(struct bench *b)
{
	static const char head[] =
	    "{\"type\":\"request\",\"action\":\"publish_market_data\",\"payload\":{\"ticks\":[";
	struct buf *pb = &b->pubbuf;
	uint64_t k, seq, n = b->o.batch_ticks;
	unsigned cents;
	int len;

	if (b->o.total_ticks && b->sent + n > b->o.total_ticks)
		n = b->o.total_ticks - b->sent;
	if (!n)
		return 0;
	pb->off = pb->len = 0;
	if (buf_append(pb, head, sizeof(head) - 1))
		return -ENOMEM;
	for (k = 0; k < n; k++) {
		seq = b->sent + k;
		cents = 100000 + (unsigned)((seq * 7919) % 100000);
		if (buf_reserve(pb, 320))
			return -ENOMEM;
		len = snprintf(pb->data + pb->len, 320,
		               "%s{\"symbol\":\"B%u\",\"data\":{\"price\":%u.%02u,\"bid_price\":"
		               "%u.%02u,\"ask_price\":%u.%02u,\"volume\":%u,\"ts\":%" PRId64 "},"
		               "\"message_id\":\"m%08x-%" PRIu64 "\"}",
		               k ? "," : "", (unsigned)(seq % b->o.symbols), cents / 100,
		               cents % 100, (cents - 3) / 100, (cents - 3) % 100, (cents + 4) / 100,
		               (cents + 4) % 100, (unsigned)(seq % 1000000) + 1000000, b->now_rt,
		               b->run_id, seq);
		pb->len += (size_t)len;
	}
	if (buf_append(pb, "]}}", 3))
		return -ENOMEM;
	b->sent += n;
	b->inflight++;
	return ws_send(b, b->pub, WS_TEXT, pb->data, pb->len);
}

/* Ingest mode: keep --inflight requests on the way while there is something to send. */
static void ingest_top_up(struct bench *b)
{
	int rc;

	while (b->phase == PH_RUN && b->pub && b->pub->state == CS_READY &&
	       b->inflight < b->o.inflight && b->now < b->meas_end &&
	       (!b->o.total_ticks || b->sent < b->o.total_ticks)) {
		if (buf_pending(&b->pub->out) > PUB_MAX_BACKLOG) {
			b->pub_stalls++;
			break;
		}
		rc = publish_ingest(b);
		if (rc) {
			conn_lost(b, b->pub, -rc);
			return;
		}
	}
}

/* Ingest mode: an answer to a publish, {"accepted":N,...}. */
static void on_ingest_answer(struct bench *b, const char *p, size_t n)
{
	const char *v = JSON_VALUE(p, n, "accepted"), *end = p + n;
	uint64_t a = 0;

	if (b->inflight)
		b->inflight--;
	while (v && v < end && *v >= '0' && *v <= '9')
		a = a * 10 + (uint64_t)(*v++ - '0');
	b->accepted += a;
	if (b->now >= b->meas_start && b->now < b->meas_end)
		b->accepted_win += a;
	if (b->o.total_ticks && b->sent >= b->o.total_ticks && !b->inflight && !b->filled_at) {
		b->filled_at = b->now;
		if (b->o.pid)
			b->rss_after = read_rss_kb(b->o.pid);
	}
	ingest_top_up(b);
}

static void on_response(struct bench *b, struct conn *c, const char *p, size_t n)
{
	const char *end = p + n, *v;
	char rid[16];
	bool ok;
	int l;

	v = JSON_VALUE(p, n, "success");
	ok = v && end - v >= 4 && !memcmp(v, "true", 4);
	if (c->is_pub) {
		b->pub_responses++;
		if (!ok) {
			b->errs[E_PUBLISH]++;
			note_code(b, p, n);
		}
		if (b->o.mode == MODE_INGEST)
			on_ingest_answer(b, p, n);
		return;
	}
	if (c->state == CS_SUBSCRIBING) {
		l = snprintf(rid, sizeof(rid), "s%u", c->idx);
		v = JSON_VALUE(p, n, "request_id");
		if (!json_str_is(v, end, rid, (size_t)l)) {
			b->errs[E_RESPONSE]++;
			tally_add(&b->codes, 0, "unexpected_response", 19);
			return;
		}
		c->state = CS_READY;
		if (!ok) {
			b->errs[E_SUBSCRIBE]++;
			note_code(b, p, n);
		}
		conn_resolve(b, c, ok);
		return;
	}
	if (!ok) {
		b->errs[E_RESPONSE]++;
		note_code(b, p, n);
	}
}

static void on_delivery(struct bench *b, const char *p, size_t n)
{
	const char *v, *end = p + n;
	int64_t ts = 0;

	b->recv_total++;
	b->last_delivery = b->now;
	if (b->now >= b->meas_start && b->now < b->meas_end)
		b->delivered++;
	else if (b->now >= b->meas_end)
		b->late++;
	v = JSON_VALUE(p, n, "ts");
	if (!v || *v < '0' || *v > '9') {
		b->no_ts++;
		return;
	}
	while (v < end && *v >= '0' && *v <= '9')
		ts = ts * 10 + (*v++ - '0');
	if (ts >= b->rt_meas_start && ts < b->rt_meas_end)
		hist_add(&b->hist, b->now_rt - ts);
}

static void on_text(struct bench *b, struct conn *c, const char *p, size_t n)
{
	const char *end = p + n, *type, *ev;

	type = JSON_VALUE(p, n, "type");
	if (JSON_STR_IS(type, end, "event")) {
		ev = JSON_VALUE(p, n, "event");
		if (JSON_STR_IS(ev, end, "stream_data") || JSON_STR_IS(ev, end, "room_message"))
			on_delivery(b, p, n);
		else if (JSON_STR_IS(ev, end, "session"))
			on_session(b, c);
	} else if (JSON_STR_IS(type, end, "response")) {
		on_response(b, c, p, n);
	} else if (JSON_STR_IS(type, end, "error")) {
		b->errs[c->is_pub ? E_PUBLISH : E_RESPONSE]++;
		note_code(b, p, n);
		if (c->is_pub && b->o.mode == MODE_INGEST)
			on_ingest_answer(b, p, n);
	}
}

static void on_message(struct bench *b, struct conn *c, unsigned op, const char *p, size_t n)
{
	if (c->state == CS_CLOSING)
		return;
	if (op == WS_TEXT) {
		on_text(b, c, p, n);
		return;
	}
	b->errs[E_RESPONSE]++;
	tally_add(&b->codes, 0, "binary_frame", 12);
}

static void on_close_frame(struct bench *b, struct conn *c, const char *p, size_t n)
{
	int code = n >= 2 ? ((unsigned char)p[0] << 8 | (unsigned char)p[1]) : 1005;

	if (c->state == CS_CLOSING) {
		conn_drop(b, c);
		return;
	}
	tally_int(&b->closes, code);
	(void)ws_send(b, c, WS_CLOSE, p, n >= 2 ? 2 : 0);
	conn_fail(b, c, E_CLOSE);
}

static void on_frame(struct bench *b, struct conn *c, unsigned b0, const char *p, size_t n)
{
	unsigned op = b0 & 0x0f;
	bool fin = b0 & 0x80;
	int rc;

	if (b0 & 0x70) {
		conn_proto(b, c, "reserved bits set");
		return;
	}
	if (op >= 8) {
		if (!fin || n > 125) {
			conn_proto(b, c, "fragmented or long control frame");
		} else if (op == WS_CLOSE) {
			on_close_frame(b, c, p, n);
		} else if (op == WS_PING) {
			if (c->state != CS_CLOSING) {
				rc = ws_send(b, c, WS_PONG, p, n);
				if (rc)
					conn_lost(b, c, -rc);
			}
		} else if (op != WS_PONG) {
			conn_proto(b, c, "unknown control opcode");
		}
		return;
	}
	if (op == WS_CONT) {
		if (!c->frag_op) {
			conn_proto(b, c, "continuation without a first fragment");
			return;
		}
		if (c->msg.len + n > MAX_MSG) {
			conn_proto(b, c, "message too big");
			return;
		}
		if (buf_append(&c->msg, p, n)) {
			conn_proto(b, c, "out of memory");
			return;
		}
		if (!fin)
			return;
		on_message(b, c, c->frag_op, c->msg.data, c->msg.len);
		c->frag_op = 0;
		buf_free(&c->msg);
		return;
	}
	if (op != WS_TEXT && op != WS_BINARY) {
		conn_proto(b, c, "unknown data opcode");
		return;
	}
	if (c->frag_op) {
		conn_proto(b, c, "new message inside a fragmented one");
		return;
	}
	if (fin) {
		on_message(b, c, op, p, n);
		return;
	}
	c->frag_op = (uint8_t)op;
	if (buf_append(&c->msg, p, n))
		conn_proto(b, c, "out of memory");
}

/* Parses the complete frames at the start of @p; returns the bytes consumed. */
static size_t frames_input(struct bench *b, struct conn *c, const unsigned char *p, size_t n)
{
	const unsigned char *f;
	size_t pos = 0, hl, avail, i;
	uint64_t len;

	while (c->state != CS_CLOSED && n - pos >= 2) {
		f = p + pos;
		avail = n - pos;
		len = f[1] & 0x7f;
		hl = 2;
		if (len == 126) {
			if (avail < 4)
				break;
			len = (uint64_t)f[2] << 8 | f[3];
			hl = 4;
		} else if (len == 127) {
			if (avail < 10)
				break;
			for (len = 0, i = 0; i < 8; i++)
				len = len << 8 | f[2 + i];
			hl = 10;
		}
		if (f[1] & 0x80) {
			conn_proto(b, c, "masked server frame");
			break;
		}
		if (len > MAX_MSG) {
			conn_proto(b, c, "frame too big");
			break;
		}
		if (avail - hl < len) {
			c->need = (uint32_t)(hl + len);
			break;
		}
		c->need = 0;
		on_frame(b, c, f[0], (const char *)f + hl, (size_t)len);
		pos += hl + (size_t)len;
	}
	return pos;
}

static int rx_reserve(struct bench *b, size_t want)
{
	char *p;

	if (want <= b->rxcap)
		return 0;
	p = realloc(b->rx, want);
	if (!p)
		return -ENOMEM;
	b->rx = p;
	b->rxcap = want;
	return 0;
}

/*
 * One recv() per readiness: the loop is level-triggered, so a busy connection is simply served
 * again on the next pass, after the others had their turn. Leftover bytes of a partial frame are
 * put in front of the fresh ones in the shared scratch buffer.
 */
static void conn_readable(struct bench *b, struct conn *c)
{
	size_t have = c->in.len, want, total, used = 0;
	ssize_t n;

	want = have + RX_CHUNK;
	if (c->need > want)
		want = c->need;
	if (rx_reserve(b, want)) {
		conn_proto(b, c, "out of memory");
		return;
	}
	n = recv(c->fd, b->rx + have, b->rxcap - have, 0);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		conn_lost(b, c, errno);
		return;
	}
	if (n == 0) {
		conn_lost(b, c, 0);
		return;
	}
	if (have)
		memcpy(b->rx, c->in.data, have);
	c->in.len = 0;
	total = have + (size_t)n;
	b->now = clock_us(CLOCK_MONOTONIC);
	b->now_rt = clock_us(CLOCK_REALTIME);
	if (c->state == CS_HANDSHAKE) {
		used = handshake_input(b, c, b->rx, total);
		if (c->state == CS_CLOSED)
			return;
		if (c->state == CS_HANDSHAKE) {
			if (buf_append(&c->in, b->rx, total))
				conn_proto(b, c, "out of memory");
			return;
		}
	}
	used += frames_input(b, c, (const unsigned char *)b->rx + used, total - used);
	if (c->state == CS_CLOSED || used == total)
		return;
	if (buf_append(&c->in, b->rx + used, total - used))
		conn_proto(b, c, "out of memory");
}

static void on_event(struct bench *b, struct conn *c, uint32_t events)
{
	int rc;

	if (c->fd < 0)
		return;
	if (c->state == CS_CONNECTING) {
		conn_connected(b, c, events);
		return;
	}
	if (events & EPOLLOUT) {
		rc = conn_flush(b, c);
		if (rc) {
			conn_lost(b, c, -rc);
			return;
		}
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		conn_readable(b, c);
}

/* One request carrying as many due ticks as fit in PUB_REQ_BYTES. */
static int publish_stream(struct bench *b, uint64_t due, uint64_t *done)
{
	static const char head[] =
	    "{\"type\":\"request\",\"action\":\"publish_market_data\",\"payload\":{\"ticks\":[";
	struct buf *pb = &b->pubbuf;
	uint64_t k = 0, seq;
	unsigned cents;
	int n;

	pb->off = pb->len = 0;
	if (buf_append(pb, head, sizeof(head) - 1))
		return -ENOMEM;
	while (k < due && pb->len < PUB_REQ_BYTES) {
		seq = b->sent + k;
		cents = 10000 + (unsigned)((seq * 7919) % 10000);
		if (buf_reserve(pb, 320))
			return -ENOMEM;
		n = snprintf(pb->data + pb->len, 320,
		             "%s{\"symbol\":\"B%u\",\"data\":{\"price\":%u.%02u,\"volume\":%u,"
		             "\"bid\":%u.%02u,\"ask\":%u.%02u,\"ts\":%" PRId64 "},"
		             "\"message_id\":\"m%08x-%" PRIu64 "\"}",
		             k ? "," : "", (unsigned)(seq % b->o.symbols), cents / 100, cents % 100,
		             (unsigned)(seq % 1000) + 1, (cents - 1) / 100, (cents - 1) % 100,
		             (cents + 1) / 100, (cents + 1) % 100, b->now_rt, b->run_id, seq);
		pb->len += (size_t)n;
		k++;
	}
	if (buf_append(pb, "]}}", 3))
		return -ENOMEM;
	*done = k;
	return ws_send(b, b->pub, WS_TEXT, pb->data, pb->len);
}

static int publish_room(struct bench *b, uint64_t *done)
{
	char req[256];
	int n;

	n = snprintf(req, sizeof(req),
	             "{\"type\":\"request\",\"action\":\"send_message\","
	             "\"payload\":{\"room\":\"bench.B%u\",\"content\":{\"ts\":%" PRId64 "}}}",
	             (unsigned)(b->sent % b->o.symbols), b->now_rt);
	*done = 1;
	return ws_send(b, b->pub, WS_TEXT, req, (size_t)n);
}

/* Every millisecond: send what is due by now, unless the server is not taking it. */
static void on_timer(struct bench *b)
{
	uint64_t exp, target, k;
	int rc;

	if (read(b->tfd, &exp, sizeof(exp)) < 0 && errno != EAGAIN)
		return;
	if (b->phase != PH_RUN || !b->pub || b->pub->state != CS_READY)
		return;
	b->now = clock_us(CLOCK_MONOTONIC);
	b->now_rt = clock_us(CLOCK_REALTIME);
	if (b->now >= b->meas_end)
		return;
	target = (uint64_t)(b->now - b->pub_start) * b->o.rate / 1000000;
	while (b->sent < target) {
		if (buf_pending(&b->pub->out) > PUB_MAX_BACKLOG) {
			b->pub_stalls++;
			break;
		}
		k = 0;
		if (b->o.mode == MODE_STREAM)
			rc = publish_stream(b, target - b->sent, &k);
		else
			rc = publish_room(b, &k);
		b->sent += k;
		if (b->now >= b->meas_start)
			b->published += k;
		if (rc) {
			conn_lost(b, b->pub, -rc);
			return;
		}
	}
}

static void start_timer(struct bench *b)
{
	struct itimerspec its = {.it_interval = {0, 1000000}, .it_value = {0, 1000000}};
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &b->tfd};

	b->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (b->tfd < 0 || timerfd_settime(b->tfd, 0, &its, NULL) ||
	    epoll_ctl(b->ep, EPOLL_CTL_ADD, b->tfd, &ev)) {
		perror("qcbench: timerfd");
		b->errs[E_PUBLISH]++;
		if (b->tfd >= 0)
			close(b->tfd);
		b->tfd = -1;
	}
}

static void stop_timer(struct bench *b)
{
	if (b->tfd >= 0)
		close(b->tfd);
	b->tfd = -1;
}

static void begin_close(struct bench *b)
{
	static const char bye[2] = {0x03, (char)0xe8}; /* 1000 */
	struct conn *c;
	unsigned i;

	stop_timer(b);
	if (b->o.pid)
		b->rss_end = read_rss_kb(b->o.pid);
	for (i = 0; i <= b->o.conns; i++) {
		c = &b->conns[i];
		if (c->fd < 0)
			continue;
		if (c->state < CS_SESSION) {
			conn_drop(b, c);
			continue;
		}
		c->state = CS_CLOSING;
		if (ws_send(b, c, WS_CLOSE, bye, sizeof(bye)))
			conn_drop(b, c);
	}
	b->close_deadline = b->now + CLOSE_WAIT_US;
	b->phase = PH_CLOSE;
}

static void begin_run(struct bench *b)
{
	int64_t warm = b->o.idle ? 0 : (int64_t)(b->o.warmup * 1e6);
	int64_t dur = (int64_t)(b->o.duration * 1e6);

	b->now_rt = clock_us(CLOCK_REALTIME);
	if (b->o.pid && !(b->o.mode == MODE_INGEST && b->o.total_ticks))
		b->rss_after = read_rss_kb(b->o.pid);
	fprintf(stderr, "qcbench: setup done in %.1f s: %u/%u subscribed, %" PRIu64 " errors\n",
	        (double)(b->now - b->setup_start) / 1e6, b->subscribed, b->o.conns,
	        b->errs[E_CONNECT] + b->errs[E_HANDSHAKE] + b->errs[E_SUBSCRIBE] +
	            b->errs[E_CLOSE] + b->errs[E_PROTOCOL] + b->errs[E_TIMEOUT]);
	b->pub_start = b->now;
	b->meas_start = b->now + warm;
	b->meas_end = b->meas_start + dur;
	b->rt_meas_start = b->now_rt + warm;
	b->rt_meas_end = b->rt_meas_start + dur;
	b->last_delivery = b->now;
	b->next_progress = b->now + 1000000;
	if (!b->o.idle && (!b->pub || b->pub->state != CS_READY)) {
		fprintf(stderr, "qcbench: the publisher is not connected: nothing to measure\n");
		b->meas_start = b->meas_end = b->now;
		begin_close(b);
		return;
	}
	b->phase = PH_RUN;
	if (b->o.mode == MODE_INGEST) {
		if (b->o.total_ticks) /* fill: no warmup, the window is the whole fill */
			b->meas_start = b->now;
		ingest_top_up(b);
		return;
	}
	if (!b->o.idle && b->o.rate)
		start_timer(b);
}

static void setup_timeout(struct bench *b)
{
	struct conn *c;
	unsigned i;

	fprintf(stderr, "qcbench: setup timed out after %.0f s\n", b->o.setup_timeout);
	for (i = 0; i <= b->o.conns; i++) {
		c = &b->conns[i];
		if (i == b->o.conns && !c->is_pub)
			break; /* the publisher's slot, unused in idle mode */
		if (c->is_pub ? c->fd >= 0 && c->state != CS_READY : !c->resolved) {
			b->errs[E_TIMEOUT]++;
			if (c->state == CS_NEW && !c->is_pub) {
				/* never started, so never counted in flight */
				c->resolved = true;
				b->resolved++;
				c->state = CS_CLOSED;
				continue;
			}
			conn_drop(b, c);
			conn_resolve(b, c, false);
		}
	}
}

static void step_setup(struct bench *b)
{
	struct conn *c;

	while (b->next < b->o.conns && b->in_flight < b->o.batch) {
		c = &b->conns[b->next++];
		b->in_flight++;
		conn_start(b, c);
	}
	if (b->resolved == b->o.conns &&
	    (!b->pub || b->pub->state == CS_READY || b->pub->state == CS_CLOSED)) {
		begin_run(b);
		return;
	}
	if (b->now >= b->setup_deadline) {
		setup_timeout(b);
		begin_run(b);
		return;
	}
	if (b->now >= b->next_progress) {
		fprintf(stderr, "qcbench: setup %u/%u done, %u subscribed, %u in flight\n",
		        b->resolved, b->o.conns, b->subscribed, b->in_flight);
		b->next_progress = b->now + (b->o.verbose ? 1000000 : 5000000);
	}
}

/* Moves the run along its phases; called after every epoll_wait(). */
static void step(struct bench *b)
{
	b->now = clock_us(CLOCK_MONOTONIC);
	if (stop_signal && b->phase < PH_CLOSE) {
		fprintf(stderr, "qcbench: signal %d, stopping\n", (int)stop_signal);
		if (b->phase == PH_SETUP)
			b->meas_start = b->meas_end = b->now;
		if (b->meas_end > b->now) {
			b->meas_end = b->now > b->meas_start ? b->now : b->meas_start;
			b->rt_meas_end = b->rt_meas_start + (b->meas_end - b->meas_start);
		}
		stop_signal = 0;
		begin_close(b);
	} else if (stop_signal) {
		b->close_deadline = b->now;
	}
	switch (b->phase) {
	case PH_SETUP:
		step_setup(b);
		break;
	case PH_RUN:
		if (b->o.verbose && b->now >= b->next_progress) {
			fprintf(stderr,
			        "qcbench: %.0f s: %" PRIu64 " deliveries/s, %" PRIu64
			        " ticks/s published\n",
			        (double)(b->now - b->pub_start) / 1e6, b->recv_total - b->last_recv,
			        b->sent - b->last_sent);
			b->last_recv = b->recv_total;
			b->last_sent = b->sent;
			b->next_progress += 1000000;
		}
		if (b->o.mode == MODE_INGEST && b->filled_at) {
			/* --ticks: everything answered; the window ends here */
			b->meas_end = b->filled_at;
			begin_close(b);
			break;
		}
		if (b->o.mode == MODE_INGEST && b->now < b->meas_end)
			ingest_top_up(b);
		if (b->now < b->meas_end)
			break;
		stop_timer(b);
		if (b->o.idle || b->o.mode == MODE_INGEST) {
			begin_close(b);
			break;
		}
		b->drain_deadline = b->meas_end + DRAIN_US;
		b->phase = PH_DRAIN;
		break;
	case PH_DRAIN:
		if (b->now >= b->drain_deadline || (b->now - b->meas_end >= DRAIN_QUIET_US &&
		                                    b->now - b->last_delivery >= DRAIN_QUIET_US))
			begin_close(b);
		break;
	case PH_CLOSE:
		if (b->open == 0 || b->now >= b->close_deadline) {
			for (unsigned i = 0; i <= b->o.conns; i++)
				conn_drop(b, &b->conns[i]);
			b->phase = PH_DONE;
		}
		break;
	case PH_DONE:
		break;
	}
}

static int run(struct bench *b)
{
	struct epoll_event evs[MAX_EVENTS];
	int i, n;

	b->now = clock_us(CLOCK_MONOTONIC);
	b->setup_start = b->now;
	b->setup_deadline = b->now + (int64_t)(b->o.setup_timeout * 1e6);
	b->next_progress = b->now + 1000000;
	b->meas_start = b->meas_end = INT64_MAX;
	b->rt_meas_start = b->rt_meas_end = INT64_MAX;
	if (b->pub)
		conn_start(b, b->pub);
	step(b);
	while (b->phase != PH_DONE) {
		n = epoll_wait(b->ep, evs, MAX_EVENTS, 10);
		if (n < 0 && errno != EINTR) {
			perror("qcbench: epoll_wait");
			return -errno;
		}
		for (i = 0; i < n; i++) {
			if (evs[i].data.ptr == &b->tfd)
				on_timer(b);
			else
				on_event(b, evs[i].data.ptr, evs[i].events);
		}
		step(b);
	}
	return 0;
}

static void format_closes(const struct bench *b, char *out, size_t cap, bool json)
{
	size_t len = 0;
	unsigned i;

	out[0] = '\0';
	if (json)
		len += (size_t)snprintf(out + len, cap - len, "{");
	for (i = 0; i < b->closes.n && len < cap; i++)
		len += (size_t)snprintf(out + len, cap - len,
		                        json ? "%s\"%d\":%" PRIu64 : "%s%d:%" PRIu64, i ? "," : "",
		                        b->closes.t[i].key, b->closes.t[i].count);
	if (b->closes.other && len < cap)
		len += (size_t)snprintf(out + len, cap - len,
		                        json ? "%s\"other\":%" PRIu64 : "%sother:%" PRIu64,
		                        b->closes.n ? "," : "", b->closes.other);
	if (json && len < cap)
		snprintf(out + len, cap - len, "}");
	else if (!json && !len)
		snprintf(out, cap, "none");
}

static void print_tallies(const char *what, const struct tallies *t, bool strings)
{
	unsigned i;

	if (!t->n && !t->other)
		return;
	fprintf(stderr, "qcbench: %s:", what);
	for (i = 0; i < t->n; i++) {
		if (strings)
			fprintf(stderr, " %s=%" PRIu64, t->t[i].name, t->t[i].count);
		else
			fprintf(stderr, " %d=%" PRIu64, t->t[i].key, t->t[i].count);
	}
	if (t->other)
		fprintf(stderr, " other=%" PRIu64, t->other);
	fputc('\n', stderr);
}

static void report(const struct bench *b)
{
	const struct opts *o = &b->o;
	double win, dps, expect, pct, pps, per_sub;
	long per_conn = 0;
	uint64_t errors = 0;
	char closes[1024];
	unsigned i;

	for (i = 0; i < E_COUNT; i++)
		errors += b->errs[i];
	win = b->meas_end > b->meas_start && b->meas_start != INT64_MAX
	          ? (double)(b->meas_end - b->meas_start) / 1e6
	          : 0;
	dps = win > 0 ? (double)b->delivered / win : 0;
	pps = win > 0 ? (double)b->published / win : 0;
	/* each subscription is offered its symbol's rate, at most --max-hz */
	per_sub = (double)o->rate / o->symbols;
	if (o->max_hz && per_sub > o->max_hz)
		per_sub = o->max_hz;
	expect = o->idle || o->mode == MODE_INGEST
	             ? 0
	             : per_sub * (o->subs_hi ? (double)b->subscriptions : (double)o->conns);
	pct = expect > 0 ? 100.0 * dps / expect : 0;
	if (o->pid && o->conns && b->rss_before >= 0 && b->rss_after >= 0)
		per_conn = (b->rss_after - b->rss_before) * 1024 / (long)o->conns;
	format_closes(b, closes, sizeof(closes), o->json);

	if (errors) {
		fprintf(stderr, "qcbench: errors:");
		for (i = 0; i < E_COUNT; i++)
			if (b->errs[i])
				fprintf(stderr, " %s=%" PRIu64, err_names[i], b->errs[i]);
		fputc('\n', stderr);
		print_tallies("connect errno", &b->cerrno, false);
		print_tallies("handshake http status (0: none)", &b->http, false);
		print_tallies("error codes", &b->codes, true);
		if (b->proto_why)
			fprintf(stderr, "qcbench: first protocol error: %s\n", b->proto_why);
	}
	if (!o->idle && o->mode != MODE_INGEST && !b->hist.count)
		fprintf(stderr,
		        "qcbench: no latency samples: no tick published in the window arrived "
		        "before the drain ended (p50/p99/max print 0)\n");
	if (b->no_ts)
		fprintf(stderr, "qcbench: %" PRIu64 " deliveries without a \"ts\"\n", b->no_ts);
	if (b->pub_stalls)
		fprintf(stderr,
		        "qcbench: publisher held back %" PRIu64 " times (server not reading)\n",
		        b->pub_stalls);

	if (o->mode == MODE_INGEST) {
		double aps = win > 0 ? (double)b->accepted_win / win : 0;
		long per_tick = o->pid && b->accepted && b->rss_after >= 0
		                    ? (long)((double)(b->rss_after - b->rss_before) * 1024 /
		                             (double)b->accepted)
		                    : 0;

		printf(
		    o->json ? "{\"mode\":\"ingest\",\"symbols\":%u,\"batch_ticks\":%u,"
		              "\"inflight\":%u,\"sent\":%" PRIu64 ",\"accepted\":%" PRIu64
		              ",\"accepted_in_window\":%" PRIu64 ",\"window_s\":%.3f,"
		              "\"accepted_per_s\":%.0f,\"rss_before_kb\":%ld,\"rss_after_kb\":%ld,"
		              "\"rss_per_tick_b\":%ld,\"errors\":%" PRIu64 ",\"closes\":%s,"
		              "\"rss_end_kb\":%ld}\n"
		            : "mode=ingest symbols=%u batch_ticks=%u inflight=%u sent=%" PRIu64
		              " accepted=%" PRIu64 " accepted_in_window=%" PRIu64
		              " window_s=%.3f accepted_per_s=%.0f rss_before_kb=%ld"
		              " rss_after_kb=%ld rss_per_tick_b=%ld errors=%" PRIu64
		              " closes=%s rss_end_kb=%ld\n",
		    o->symbols, o->batch_ticks, o->inflight, b->sent, b->accepted, b->accepted_win,
		    win, aps, o->pid ? b->rss_before : 0, o->pid ? b->rss_after : 0, per_tick,
		    errors, closes, o->pid ? b->rss_end : 0);
		fflush(stdout);
		return;
	}
	if (o->json)
		printf("{\"conns\":%u,\"symbols\":%u,\"rate\":%u,\"mode\":\"%s\",\"delivered\":"
		       "%" PRIu64
		       ",\"deliveries_per_s\":%.0f,\"expected_per_s\":%.0f,\"delivered_pct\":%.1f"
		       ",\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"rss_before_kb\":%ld"
		       ",\"rss_after_kb\":%ld,\"rss_per_conn_b\":%ld,\"errors\":%" PRIu64
		       ",\"closes\":%s,\"idle\":%s,\"subscribed\":%u,\"published\":%" PRIu64
		       ",\"published_per_s\":%.0f,\"late\":%" PRIu64 ",\"samples\":%" PRIu64
		       ",\"rss_end_kb\":%ld,\"subscriptions\":%" PRIu64 "}\n",
		       o->conns, o->symbols, o->rate, o->mode == MODE_ROOM ? "room" : "stream",
		       b->delivered, dps, expect, pct, hist_pct(&b->hist, 0.50) / 1000.0,
		       hist_pct(&b->hist, 0.99) / 1000.0, (double)b->hist.max / 1000.0,
		       o->pid ? b->rss_before : 0, o->pid ? b->rss_after : 0, per_conn, errors,
		       closes, o->idle ? "true" : "false", b->subscribed, b->published, pps,
		       b->late, b->hist.count, o->pid ? b->rss_end : 0, b->subscriptions);
	else
		printf("conns=%u symbols=%u rate=%u mode=%s delivered=%" PRIu64
		       " deliveries_per_s=%.0f expected_per_s=%.0f delivered_pct=%.1f p50_ms=%.3f"
		       " p99_ms=%.3f max_ms=%.3f rss_before_kb=%ld rss_after_kb=%ld"
		       " rss_per_conn_b=%ld errors=%" PRIu64 " closes=%s idle=%d subscribed=%u"
		       " published=%" PRIu64 " published_per_s=%.0f late=%" PRIu64
		       " samples=%" PRIu64 " rss_end_kb=%ld\n",
		       o->conns, o->symbols, o->rate, o->mode == MODE_ROOM ? "room" : "stream",
		       b->delivered, dps, expect, pct, hist_pct(&b->hist, 0.50) / 1000.0,
		       hist_pct(&b->hist, 0.99) / 1000.0, (double)b->hist.max / 1000.0,
		       o->pid ? b->rss_before : 0, o->pid ? b->rss_after : 0, per_conn, errors,
		       closes, o->idle, b->subscribed, b->published, pps, b->late, b->hist.count,
		       o->pid ? b->rss_end : 0);
	fflush(stdout);
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: qcbench [options]\n"
	        "  --host ADDR          server address, loopback only (127.0.0.1)\n"
	        "  --port N             server port (8080)\n"
	        "  --ports P1,P2,..     subscriber i connects to the (i %% N)-th of these ports\n"
	        "                       (cluster nodes; default --port)\n"
	        "  --pub-port P         the publisher's port (default --port)\n"
	        "  --conns N            subscriber connections (1000)\n"
	        "  --symbols S          symbols / rooms, subscriber i takes B<i %% S> (10)\n"
	        "  --rate R             ticks per second in total (1000)\n"
	        "  --duration SECS      measurement time (10)\n"
	        "  --warmup SECS        publishing before the measurement (2)\n"
	        "  --mode MODE          stream (market streams), room, or ingest (the publisher\n"
	        "                       alone, as fast as the server answers) (stream)\n"
	        "  --subs-per-conn L-H  stream: each subscriber takes its own L..H symbols\n"
	        "  --max-hz H           stream: subscribe with max_hz H (offered: at most H a\n"
	        "                       second per subscription)\n"
	        "  --batch-ticks N      ingest: ticks per publish request (1000)\n"
	        "  --inflight K         ingest: publish requests awaiting their answer (4)\n"
	        "  --ticks N            ingest: publish N ticks, then stop; RSS per tick\n"
	        "  --fields F1,F2       field filter of the stream subscriptions (plus ts)\n"
	        "  --filter-mix         only even subscribers use the field filter\n"
	        "  --idle               connect and subscribe only; no publishing\n"
	        "  --pid PID            server pid, for VmRSS before and after setup\n"
	        "  --sources K          source addresses 127.0.0.1..K (auto: 1 per %d conns)\n"
	        "  --connect-batch N    connections being set up at once (500)\n"
	        "  --setup-timeout SECS give up on setup after this long (120)\n"
	        "  --json               print the result as one JSON object\n"
	        "  --verbose            progress every second on stderr\n",
	        PER_SOURCE);
}

static int parse_uint(const char *name, const char *s, unsigned min, unsigned max, unsigned *out)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max) {
		fprintf(stderr, "qcbench: --%s wants an integer in %u..%u, not '%s'\n", name, min,
		        max, s);
		return -EINVAL;
	}
	*out = (unsigned)v;
	return 0;
}

static int parse_secs(const char *name, const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= 0 && v <= 86400)) {
		fprintf(stderr, "qcbench: --%s wants seconds in 0..86400, not '%s'\n", name, s);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/* Builds `,"fields":["a","b","ts"]` from "a,b"; names are restricted so they need no escaping. */
static int parse_fields(struct opts *o, const char *s)
{
	size_t len = 0, cap = sizeof(o->fields_json) - 16;
	bool has_ts = false;
	const char *p = s, *q;
	size_t n;

	len += (size_t)snprintf(o->fields_json, cap, ",\"fields\":[");
	while (*p) {
		q = strchr(p, ',');
		n = q ? (size_t)(q - p) : strlen(p);
		if (!n ||
		    strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") <
		        n) {
			fprintf(stderr,
			        "qcbench: --fields wants names of [A-Za-z0-9_] joined by ','\n");
			return -EINVAL;
		}
		if (len + n + 4 >= cap) {
			fprintf(stderr, "qcbench: --fields is too long\n");
			return -EINVAL;
		}
		if (n == 2 && !memcmp(p, "ts", 2))
			has_ts = true;
		len += (size_t)snprintf(o->fields_json + len, cap - len, "%s\"%.*s\"",
		                        p == s ? "" : ",", (int)n, p);
		p += n;
		if (*p == ',')
			p++;
	}
	snprintf(o->fields_json + len, sizeof(o->fields_json) - len, "%s]",
	         has_ts ? "" : ",\"ts\"");
	return 0;
}

static int parse_host(struct opts *o, const char *host)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)&o->addr;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&o->addr;

	if (!strcmp(host, "localhost"))
		host = "127.0.0.1";
	if (strlen(host) >= sizeof(o->host))
		goto refuse;
	memset(&o->addr, 0, sizeof(o->addr));
	if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		if ((ntohl(a4->sin_addr.s_addr) >> 24) != 127)
			goto refuse;
		a4->sin_family = AF_INET;
		o->family = AF_INET;
		o->addrlen = sizeof(*a4);
	} else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		if (!IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr))
			goto refuse;
		a6->sin6_family = AF_INET6;
		o->family = AF_INET6;
		o->addrlen = sizeof(*a6);
	} else {
		goto refuse;
	}
	strcpy(o->host, host);
	return 0;
refuse:
	fprintf(stderr,
	        "qcbench: --host '%s' refused: only loopback addresses (127.0.0.0/8, ::1) are "
	        "allowed, this machine forbids other traffic\n",
	        host);
	return -EINVAL;
}

/* "8081,8082": the subscribers' ports, taken round robin. */
static int parse_ports(struct opts *o, const char *s)
{
	char one[16];
	const char *p = s, *q;
	size_t n;
	int rc;

	o->nsub = 0;
	while (*p) {
		q = strchr(p, ',');
		n = q ? (size_t)(q - p) : strlen(p);
		if (o->nsub == MAX_PORTS || !n || n >= sizeof(one)) {
			fprintf(stderr, "qcbench: --ports wants 1 to %d ports joined by ','\n",
			        MAX_PORTS);
			return -EINVAL;
		}
		memcpy(one, p, n);
		one[n] = '\0';
		rc = parse_uint("ports", one, 1, 65535, &o->sub[o->nsub].port);
		if (rc)
			return rc;
		o->nsub++;
		p += n;
		if (*p == ',' && !*++p)
			break; /* a trailing ',' */
	}
	if (!o->nsub || p[-1] == ',') {
		fprintf(stderr, "qcbench: --ports wants 1 to %d ports joined by ','\n", MAX_PORTS);
		return -EINVAL;
	}
	return 0;
}

/* @t: the host (parsed) at @port. */
static void set_target(const struct opts *o, struct target *t, unsigned port)
{
	t->port = port;
	t->addr = o->addr;
	if (o->family == AF_INET) {
		((struct sockaddr_in *)&t->addr)->sin_port = htons((uint16_t)port);
		snprintf(t->hosthdr, sizeof(t->hosthdr), "%s:%u", o->host, port);
	} else {
		((struct sockaddr_in6 *)&t->addr)->sin6_port = htons((uint16_t)port);
		snprintf(t->hosthdr, sizeof(t->hosthdr), "[%s]:%u", o->host, port);
	}
}

static int parse_args(struct opts *o, int argc, char **argv)
{
	enum {
		O_FILTER_MIX = 256,
		O_SOURCES,
		O_BATCH,
		O_SETUP_TIMEOUT,
		O_SUBS,
		O_BATCH_TICKS,
		O_INFLIGHT,
		O_TICKS,
		O_PORTS,
		O_PUB_PORT,
		O_MAX_HZ,
	};
	static const struct option lopts[] = {
	    {"host", required_argument, NULL, 'H'},
	    {"port", required_argument, NULL, 'p'},
	    {"ports", required_argument, NULL, O_PORTS},
	    {"pub-port", required_argument, NULL, O_PUB_PORT},
	    {"conns", required_argument, NULL, 'n'},
	    {"symbols", required_argument, NULL, 's'},
	    {"rate", required_argument, NULL, 'r'},
	    {"duration", required_argument, NULL, 'd'},
	    {"warmup", required_argument, NULL, 'w'},
	    {"mode", required_argument, NULL, 'm'},
	    {"fields", required_argument, NULL, 'f'},
	    {"filter-mix", no_argument, NULL, O_FILTER_MIX},
	    {"idle", no_argument, NULL, 'i'},
	    {"pid", required_argument, NULL, 'P'},
	    {"sources", required_argument, NULL, O_SOURCES},
	    {"connect-batch", required_argument, NULL, O_BATCH},
	    {"setup-timeout", required_argument, NULL, O_SETUP_TIMEOUT},
	    {"subs-per-conn", required_argument, NULL, O_SUBS},
	    {"max-hz", required_argument, NULL, O_MAX_HZ},
	    {"batch-ticks", required_argument, NULL, O_BATCH_TICKS},
	    {"inflight", required_argument, NULL, O_INFLIGHT},
	    {"ticks", required_argument, NULL, O_TICKS},
	    {"json", no_argument, NULL, 'j'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *host = "127.0.0.1";
	bool fields_given = false;
	unsigned pid = 0, ticks = 0, i;
	char *dash;
	int ch, rc = 0;

	memset(o, 0, sizeof(*o));
	o->port = 8080;
	o->conns = 1000;
	o->symbols = 10;
	o->rate = 1000;
	o->batch = 500;
	o->duration = 10;
	o->warmup = 2;
	o->setup_timeout = 120;
	o->mode = MODE_STREAM;
	o->batch_ticks = 1000;
	o->inflight = 4;
	while (!rc && (ch = getopt_long(argc, argv, "hv", lopts, NULL)) != -1) {
		switch (ch) {
		case 'H':
			host = optarg;
			break;
		case 'p':
			rc = parse_uint("port", optarg, 1, 65535, &o->port);
			break;
		case O_PORTS:
			rc = parse_ports(o, optarg);
			break;
		case O_PUB_PORT:
			rc = parse_uint("pub-port", optarg, 1, 65535, &o->pub_port);
			break;
		case 'n':
			rc = parse_uint("conns", optarg, 1, 10000000, &o->conns);
			break;
		case 's':
			rc = parse_uint("symbols", optarg, 1, 1000000, &o->symbols);
			break;
		case 'r':
			rc = parse_uint("rate", optarg, 0, 10000000, &o->rate);
			break;
		case 'd':
			rc = parse_secs("duration", optarg, &o->duration);
			break;
		case 'w':
			rc = parse_secs("warmup", optarg, &o->warmup);
			break;
		case O_SETUP_TIMEOUT:
			rc = parse_secs("setup-timeout", optarg, &o->setup_timeout);
			break;
		case 'm':
			if (!strcmp(optarg, "stream")) {
				o->mode = MODE_STREAM;
			} else if (!strcmp(optarg, "room")) {
				o->mode = MODE_ROOM;
			} else if (!strcmp(optarg, "ingest")) {
				o->mode = MODE_INGEST;
			} else {
				fprintf(stderr, "qcbench: --mode is stream, room or ingest\n");
				rc = -EINVAL;
			}
			break;
		case O_SUBS:
			dash = strchr(optarg, '-');
			if (dash)
				*dash = '\0';
			rc = parse_uint("subs-per-conn", optarg, 1, 256, &o->subs_lo);
			if (!rc)
				rc = parse_uint("subs-per-conn", dash ? dash + 1 : optarg,
				                o->subs_lo, 256, &o->subs_hi);
			break;
		case O_MAX_HZ:
			rc = parse_uint("max-hz", optarg, 1, 1000, &o->max_hz);
			snprintf(o->max_hz_json, sizeof(o->max_hz_json), ",\"max_hz\":%u",
			         o->max_hz);
			break;
		case O_BATCH_TICKS:
			rc = parse_uint("batch-ticks", optarg, 1, 100000, &o->batch_ticks);
			break;
		case O_INFLIGHT:
			rc = parse_uint("inflight", optarg, 1, 1000, &o->inflight);
			break;
		case O_TICKS:
			rc = parse_uint("ticks", optarg, 1, 4000000000u, &ticks);
			o->total_ticks = ticks;
			break;
		case 'f':
			rc = parse_fields(o, optarg);
			fields_given = true;
			break;
		case O_FILTER_MIX:
			o->filter_mix = true;
			break;
		case 'i':
			o->idle = true;
			break;
		case 'P':
			rc = parse_uint("pid", optarg, 1, 4194304, &pid);
			o->pid = pid;
			break;
		case O_SOURCES:
			rc = parse_uint("sources", optarg, 1, MAX_SOURCES, &o->sources);
			break;
		case O_BATCH:
			rc = parse_uint("connect-batch", optarg, 1, 1000000, &o->batch);
			break;
		case 'j':
			o->json = true;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (rc)
		return rc;
	if (optind < argc) {
		fprintf(stderr, "qcbench: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (parse_host(o, host))
		return -EINVAL;
	if (o->mode == MODE_ROOM && fields_given) {
		fprintf(stderr, "qcbench: --fields applies to stream mode only\n");
		return -EINVAL;
	}
	if (o->filter_mix && !fields_given && o->mode == MODE_STREAM)
		parse_fields(o, "price");
	if (o->mode != MODE_STREAM && o->max_hz) {
		fprintf(stderr, "qcbench: --max-hz applies to stream mode only\n");
		return -EINVAL;
	}
	if (o->mode != MODE_STREAM && o->subs_hi) {
		fprintf(stderr, "qcbench: --subs-per-conn applies to stream mode only\n");
		return -EINVAL;
	}
	if (o->mode != MODE_INGEST && o->total_ticks) {
		fprintf(stderr, "qcbench: --ticks applies to ingest mode only\n");
		return -EINVAL;
	}
	if (o->mode == MODE_INGEST) {
		if (o->idle) {
			fprintf(stderr, "qcbench: --idle does not go with ingest mode\n");
			return -EINVAL;
		}
		o->conns = 0; /* the publisher alone */
	}
	if (!o->nsub)
		o->sub[o->nsub++].port = o->port;
	for (i = 0; i < o->nsub; i++)
		set_target(o, &o->sub[i], o->sub[i].port);
	set_target(o, &o->pub, o->pub_port ? o->pub_port : o->port);
	if (!o->sources)
		o->sources = (o->conns + 1 + PER_SOURCE - 1) / PER_SOURCE;
	if (o->sources > MAX_SOURCES) {
		fprintf(stderr, "qcbench: --conns %u needs more than %d source addresses\n",
		        o->conns, MAX_SOURCES);
		return -EINVAL;
	}
	if (o->sources > 1 && o->family != AF_INET) {
		fprintf(stderr,
		        "qcbench: more than %d connections (or --sources > 1) need an IPv4 "
		        "127.x --host\n",
		        PER_SOURCE);
		return -EINVAL;
	}
	return 0;
}

/* Raises the soft descriptor limit to the hard one; refuses a run that cannot fit. */
static int raise_nofile(unsigned conns)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl)) {
		perror("qcbench: getrlimit");
		return -errno;
	}
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit want = {.rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max};

		if (!setrlimit(RLIMIT_NOFILE, &want))
			rl.rlim_cur = rl.rlim_max;
	}
	if ((rlim_t)conns + FD_RESERVE > rl.rlim_cur) {
		fprintf(
		    stderr,
		    "qcbench: --conns %u needs %u file descriptors but RLIMIT_NOFILE allows %llu "
		    "(hard limit %llu); lower --conns or raise the hard limit (ulimit -Hn, "
		    "limits.conf, LimitNOFILE=)\n",
		    conns, conns + FD_RESERVE, (unsigned long long)rl.rlim_cur,
		    (unsigned long long)rl.rlim_max);
		return -EMFILE;
	}
	return 0;
}

static int bench_init(struct bench *b)
{
	unsigned i;

	b->ep = epoll_create1(EPOLL_CLOEXEC);
	if (b->ep < 0) {
		perror("qcbench: epoll_create1");
		return -errno;
	}
	b->tfd = -1;
	b->conns = calloc((size_t)b->o.conns + 1, sizeof(*b->conns));
	if (!b->conns)
		goto fail_ep;
	for (i = 0; i <= b->o.conns; i++) {
		b->conns[i].fd = -1;
		b->conns[i].idx = i;
	}
	if (!b->o.idle) {
		b->pub = &b->conns[b->o.conns];
		b->pub->is_pub = true;
	}
	if (getrandom(&b->rng, sizeof(b->rng), 0) != (ssize_t)sizeof(b->rng) || !b->rng)
		b->rng = (uint64_t)clock_us(CLOCK_REALTIME) | 1;
	b->run_id = (uint32_t)rng_next(&b->rng);
	return 0;
fail_ep:
	fprintf(stderr, "qcbench: out of memory\n");
	close(b->ep);
	return -ENOMEM;
}

static void bench_free(struct bench *b)
{
	unsigned i;

	if (b->conns) {
		for (i = 0; i <= b->o.conns; i++)
			conn_drop(b, &b->conns[i]);
	}
	stop_timer(b);
	free(b->conns);
	free(b->rx);
	buf_free(&b->pubbuf);
	if (b->ep >= 0)
		close(b->ep);
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	struct bench *b;
	int rc;

	/* The histogram is 20 KiB and the bench struct grows with it: keep it off the stack. */
	b = calloc(1, sizeof(*b));
	if (!b) {
		fprintf(stderr, "qcbench: out of memory\n");
		return 1;
	}
	b->ep = -1;
	if (parse_args(&b->o, argc, argv) || raise_nofile(b->o.conns)) {
		free(b);
		return 2;
	}
	if (b->o.pid) {
		b->rss_before = read_rss_kb(b->o.pid);
		if (b->rss_before < 0) {
			fprintf(stderr, "qcbench: cannot read VmRSS of pid %ld\n", b->o.pid);
			free(b);
			return 2;
		}
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	if (bench_init(b)) {
		free(b);
		return 1;
	}
	fprintf(stderr,
	        "qcbench: %s mode, %u subscribers over %u symbols%s, %u ticks/s, warmup %.1f s, "
	        "measure %.1f s, %u source address%s\n",
	        b->o.mode == MODE_ROOM     ? "room"
	        : b->o.mode == MODE_INGEST ? "ingest"
	                                   : "stream",
	        b->o.conns, b->o.symbols, b->o.idle ? " (idle)" : "", b->o.idle ? 0 : b->o.rate,
	        b->o.warmup, b->o.duration, b->o.sources, b->o.sources > 1 ? "es" : "");
	rc = run(b);
	if (!rc)
		report(b);
	bench_free(b);
	free(b);
	return rc ? 1 : 0;
}
