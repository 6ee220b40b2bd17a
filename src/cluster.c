/*
 * cluster: the shards of cluster.redis, each a command link on the loop (redis.c), and the
 * membership beat (cluster.h). The beat's script runs on Redis' clock (TIME), so nodes whose
 * clocks differ still agree on who is alive; its answer is the list every node shows in its
 * stats. Nothing waits for Redis: a beat that gets no answer is dropped by the link's timeout,
 * and the next one goes when the link is back.
 */
#include "quotecast/cluster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uthash.h>

#include "quotecast/broker.h"
#include "quotecast/redis.h"
#include "quotecast/shard.h"
#include "quotecast/stream.h"

#define NODES_KEY "{qc}:nodes"
#define SEEN_KEY  "{qc}:nodes:seen"

/*
 * KEYS: the records and the times they were last written (Redis' clock, ms); ARGV: this node's
 * id, its record, the time after which a node is gone. Returns the records of the live nodes.
 */
static const char beat_lua[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
    "redis.call('HSET', KEYS[2], ARGV[1], now)\n"
    "local seen = redis.call('HGETALL', KEYS[2])\n"
    "local out = {}\n"
    "for i = 1, #seen, 2 do\n"
    "  if tonumber(seen[i + 1]) < now - tonumber(ARGV[3]) then\n"
    "    redis.call('HDEL', KEYS[1], seen[i])\n"
    "    redis.call('HDEL', KEYS[2], seen[i])\n"
    "  else\n"
    "    local r = redis.call('HGET', KEYS[1], seen[i])\n"
    "    if r then out[#out + 1] = r end\n"
    "  end\n"
    "end\n"
    "return out\n";

/*
 * One tick, atomically: KEYS the symbol's seq, message-id window (a sorted set by seq), last
 * version, and log (a Redis Stream); ARGV the message id ("" = none), "1" when the version
 * counts and the version, the window size, the log's MAXLEN, the channel, and the rest of the
 * message (JSON made by the publishing node). Returns {0, seq} accepted, {1} duplicate, {2}
 * stale. What it publishes is "<seq> <rest>". Versions compare as Lua numbers (doubles).
 */
static const char tick_lua[] =
    "if ARGV[1] ~= '' and redis.call('ZSCORE', KEYS[2], ARGV[1]) then return {1} end\n"
    "if ARGV[2] == '1' then\n"
    "  local last = redis.call('GET', KEYS[3])\n"
    "  if last and tonumber(ARGV[3]) <= tonumber(last) then return {2} end\n"
    "  redis.call('SET', KEYS[3], ARGV[3])\n"
    "end\n"
    "local seq = redis.call('INCR', KEYS[1])\n"
    "if ARGV[1] ~= '' then\n"
    "  redis.call('ZADD', KEYS[2], seq, ARGV[1])\n"
    "  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[4]) + 1))\n"
    "end\n"
    "redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', 'q', seq, 'p', ARGV[7])\n"
    "redis.call('PUBLISH', ARGV[6], seq .. ' ' .. ARGV[7])\n"
    "return {0, seq}\n";

#define TICK_CHANNEL   "qc:t:" /* + symbol */
#define WATCH_SWEEP_MS 1000

struct shard {
	char *url;
	char ip[INET6_ADDRSTRLEN];
	uint16_t port;
	struct qc_redis *cmd;
	struct qc_redis *sub; /* SUBSCRIBE only: the channels of watched symbols */
};

/* A symbol this node listens to (its channel is subscribed on its shard's sub link). */
struct watch {
	UT_hash_handle hh;
	uint32_t shard;
	char symbol[]; /* NUL-terminated */
};

/* An append waiting for the script's answer. */
struct pending_tick {
	qc_broker_append_cb cb;
	void *arg;
};

struct qc_cluster {
	const struct qc_config *cfg;
	struct qc_hub *hub;
	struct lws_context *ctx;
	char node_id[128];
	struct shard *shards;
	uint32_t nshards;
	struct qc_shard_ring ring;
	uint32_t beat_shard; /* the shard that owns NODES_KEY */
	bool beat_waiting;
	bool stopped;
	json_t *nodes;         /* the live nodes' records from the last beat (array) */
	struct watch *watches; /* uthash by symbol */
	uint32_t nwatches;
	uint64_t ticks_in;  /* ticks received on watched channels */
	uint64_t ticks_bad; /* messages that did not parse */
	lws_sorted_usec_list_t sul_beat, sul_sweep;
};

static int resolve(struct shard *s, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	char host[256];
	const char *why = "";
	void *addr;
	int rc;

	if (qc_redis_url_parse(s->url, host, sizeof(host), &s->port, &why)) {
		snprintf(err, errlen, "\"cluster.redis\": \"%s\": %s", s->url, why);
		return -1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc || !res) {
		snprintf(err, errlen, "\"cluster.redis\": \"%s\": cannot resolve %s: %s", s->url,
		         host, gai_strerror(rc));
		return -1;
	}
	if (res->ai_family == AF_INET6)
		addr = &((struct sockaddr_in6 *)(void *)res->ai_addr)->sin6_addr;
	else
		addr = &((struct sockaddr_in *)(void *)res->ai_addr)->sin_addr;
	inet_ntop(res->ai_family, addr, s->ip, sizeof(s->ip));
	freeaddrinfo(res);
	return 0;
}

static void resubscribe(struct qc_cluster *cl, uint32_t shard)
{
	char chan[sizeof(TICK_CHANNEL) + 64];
	struct watch *w, *tmp;

	HASH_ITER (hh, cl->watches, w, tmp) {
		if (w->shard != shard)
			continue;
		snprintf(chan, sizeof(chan), TICK_CHANNEL "%s", w->symbol);
		qc_redis_subscribe(cl->shards[shard].sub, chan, true);
	}
}

static void on_sub_state(void *ud, bool up)
{
	struct qc_cluster *cl = ud;
	uint32_t i;

	if (!up)
		return;
	for (i = 0; i < cl->nshards; i++)
		if (qc_redis_up(cl->shards[i].sub))
			resubscribe(cl, i);
}

static void on_state(void *ud, bool up)
{
	struct qc_cluster *cl = ud;
	uint32_t i;

	/* a command link that found Redis stalled: its subscriber link cannot be trusted either */
	for (i = 0; !up && i < cl->nshards; i++)
		if (!qc_redis_up(cl->shards[i].cmd))
			qc_redis_drop(cl->shards[i].sub, "its shard's command link went down");

	/* a shard went down: what it knew of the others is no longer current */
	if (!up && !qc_redis_up(cl->shards[cl->beat_shard].cmd)) {
		json_decref(cl->nodes);
		cl->nodes = json_array();
	}
}

/* "<seq> {"m":..,"t":..,"d":{..}}" on "qc:t:SYMBOL" */
static void on_message(void *ud, const char *chan, size_t chanlen, const char *payload, size_t len)
{
	struct qc_cluster *cl = ud;
	char symbol[64], *end;
	unsigned long long seq;
	const char *sp;
	json_t *rest, *data;
	size_t plen = sizeof(TICK_CHANNEL) - 1;

	if (chanlen <= plen || chanlen - plen >= sizeof(symbol) || memcmp(chan, TICK_CHANNEL, plen))
		goto bad;
	memcpy(symbol, chan + plen, chanlen - plen);
	symbol[chanlen - plen] = '\0';
	sp = memchr(payload, ' ', len);
	if (!sp || payload[0] < '0' || payload[0] > '9')
		goto bad;
	seq = strtoull(payload, &end, 10);
	if (end != sp || !seq)
		goto bad;
	rest = json_loadb(sp + 1, len - (size_t)(sp + 1 - payload), 0, NULL);
	data = json_object_get(rest, "d");
	if (!json_is_object(data) || !json_is_integer(json_object_get(rest, "t"))) {
		json_decref(rest);
		goto bad;
	}
	cl->ticks_in++;
	qc_hub_broker_tick(cl->hub, symbol, data, json_string_value(json_object_get(rest, "m")),
	                   seq, json_integer_value(json_object_get(rest, "t")));
	json_decref(rest);
	return;
bad:
	cl->ticks_bad++;
}

static void tick_done(void *ud, const redisReply *r)
{
	struct pending_tick *p = ud;
	int verdict = -ENOTCONN;
	uint64_t seq = 0;

	if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
	    r->element[0]->type == REDIS_REPLY_INTEGER) {
		switch (r->element[0]->integer) {
		case 0:
			if (r->elements == 2 && r->element[1]->type == REDIS_REPLY_INTEGER) {
				verdict = QC_TICK_ACCEPTED;
				seq = (uint64_t)r->element[1]->integer;
			} else {
				verdict = -EIO;
			}
			break;
		case 1:
			verdict = QC_TICK_DUPLICATE;
			break;
		case 2:
			verdict = QC_TICK_STALE;
			break;
		default:
			verdict = -EIO;
		}
	} else if (r) {
		if (r->type == REDIS_REPLY_ERROR)
			lwsl_warn("cluster: the tick script failed: %s\n", r->str);
		verdict = -EIO;
	}
	p->cb(p->arg, verdict, seq);
	free(p);
}

static int broker_append(void *ctx, const struct qc_broker_tick *t, qc_broker_append_cb cb,
                         void *arg)
{
	struct qc_cluster *cl = ctx;
	char k_seq[96], k_ids[96], k_ver[96], k_log[96], chan[96], ver[24], win[16], maxlen[16];
	const char *argv[14];
	size_t lens[14], slen = strlen(t->symbol);
	struct pending_tick *p;
	json_t *rest;
	char *payload;
	uint32_t shard = qc_shard_pick(&cl->ring, t->symbol, slen);
	int i, rc;

	rest = json_pack("{s:s, s:I, s:O}", "m", t->message_id ? t->message_id : "", "t",
	                 (json_int_t)t->timestamp, "d", t->data);
	payload = rest ? json_dumps(rest, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
	json_decref(rest);
	p = payload ? calloc(1, sizeof(*p)) : NULL;
	if (!p) {
		free(payload);
		return -ENOMEM;
	}
	p->cb = cb;
	p->arg = arg;
	/* the hash tag keeps a symbol's keys together, as Redis Cluster would want */
	snprintf(k_seq, sizeof(k_seq), "qc:{%s}:seq", t->symbol);
	snprintf(k_ids, sizeof(k_ids), "qc:{%s}:ids", t->symbol);
	snprintf(k_ver, sizeof(k_ver), "qc:{%s}:ver", t->symbol);
	snprintf(k_log, sizeof(k_log), "qc:{%s}:log", t->symbol);
	snprintf(chan, sizeof(chan), TICK_CHANNEL "%s", t->symbol);
	snprintf(ver, sizeof(ver), "%lld", (long long)t->version);
	snprintf(win, sizeof(win), "%u", cl->cfg->streams.dedup_window);
	snprintf(maxlen, sizeof(maxlen), "%u", cl->cfg->streams.buffer_size);
	argv[0] = "EVAL";
	argv[1] = tick_lua;
	argv[2] = "4";
	argv[3] = k_seq;
	argv[4] = k_ids;
	argv[5] = k_ver;
	argv[6] = k_log;
	argv[7] = t->message_id ? t->message_id : "";
	argv[8] = t->has_version ? "1" : "0";
	argv[9] = ver;
	argv[10] = win;
	argv[11] = maxlen;
	argv[12] = chan;
	argv[13] = payload;
	for (i = 0; i < 14; i++)
		lens[i] = strlen(argv[i]);
	rc = qc_redis_cmd(cl->shards[shard].cmd, tick_done, p, 14, argv, lens);
	free(payload);
	if (rc)
		free(p);
	return rc;
}

static void broker_watch(void *ctx, const char *symbol)
{
	struct qc_cluster *cl = ctx;
	char chan[sizeof(TICK_CHANNEL) + 64];
	size_t len = strlen(symbol);
	struct watch *w;

	HASH_FIND(hh, cl->watches, symbol, len, w);
	if (w)
		return;
	w = calloc(1, sizeof(*w) + len + 1);
	if (!w)
		return;
	memcpy(w->symbol, symbol, len + 1);
	w->shard = qc_shard_pick(&cl->ring, symbol, len);
	HASH_ADD(hh, cl->watches, symbol[0], len, w);
	cl->nwatches++;
	snprintf(chan, sizeof(chan), TICK_CHANNEL "%s", symbol);
	/* down now: subscribed when the link is back (on_sub_state) */
	qc_redis_subscribe(cl->shards[w->shard].sub, chan, true);
}

/* Channels of symbols nobody here subscribes to any more are left (lazily: once a second). */
static void sweep(lws_sorted_usec_list_t *sul)
{
	struct qc_cluster *cl = lws_container_of(sul, struct qc_cluster, sul_sweep);
	char chan[sizeof(TICK_CHANNEL) + 64];
	struct watch *w, *tmp;

	if (cl->stopped)
		return;
	HASH_ITER (hh, cl->watches, w, tmp) {
		if (qc_hub_stream_watched(cl->hub, w->symbol))
			continue;
		snprintf(chan, sizeof(chan), TICK_CHANNEL "%s", w->symbol);
		qc_redis_subscribe(cl->shards[w->shard].sub, chan, false);
		HASH_DEL(cl->watches, w);
		cl->nwatches--;
		free(w);
	}
	lws_sul_schedule(cl->ctx, 0, &cl->sul_sweep, sweep, WATCH_SWEEP_MS * LWS_US_PER_MS);
}

struct qc_cluster *qc_cluster_new(const struct qc_config *cfg, struct qc_hub *hub, char *err,
                                  size_t errlen)
{
	struct qc_cluster *cl;
	uint32_t i;

	cl = calloc(1, sizeof(*cl));
	if (!cl)
		goto fail_nomem;
	cl->cfg = cfg;
	cl->hub = hub;
	cl->nodes = json_array();
	cl->nshards = (uint32_t)cfg->cluster.nredis;
	cl->shards = calloc(cl->nshards, sizeof(*cl->shards));
	if (!cl->nodes || !cl->shards)
		goto fail_free;
	if (qc_shard_ring_init(&cl->ring, (const char *const *)cfg->cluster.redis, cl->nshards))
		goto fail_free;
	for (i = 0; i < cl->nshards; i++) {
		struct qc_redis_opts o = {
		    .name = cfg->cluster.redis[i],
		    .max_inflight = cfg->cluster.max_inflight,
		    .timeout_ms = cfg->cluster.timeout_ms,
		    .on_state = on_state,
		    .ud = cl,
		};

		cl->shards[i].url = cfg->cluster.redis[i];
		if (resolve(&cl->shards[i], err, errlen)) {
			qc_cluster_free(cl);
			return NULL;
		}
		o.ip = cl->shards[i].ip;
		o.port = cl->shards[i].port;
		cl->shards[i].cmd = qc_redis_new(&o);
		o.on_state = on_sub_state;
		o.on_message = on_message;
		cl->shards[i].sub = qc_redis_new(&o);
		if (!cl->shards[i].cmd || !cl->shards[i].sub)
			goto fail_free;
	}
	cl->beat_shard = qc_shard_pick(&cl->ring, NODES_KEY, strlen(NODES_KEY));
	return cl;

fail_free:
	qc_cluster_free(cl);
fail_nomem:
	snprintf(err, errlen, "cluster: out of memory");
	return NULL;
}

static void beat_done(void *ud, const redisReply *r)
{
	struct qc_cluster *cl = ud;
	json_t *nodes, *rec;
	size_t i;

	cl->beat_waiting = false;
	if (!r || r->type != REDIS_REPLY_ARRAY) {
		if (r && r->type == REDIS_REPLY_ERROR)
			lwsl_warn("cluster: the membership script failed: %s\n", r->str);
		return;
	}
	nodes = json_array();
	for (i = 0; nodes && i < r->elements; i++) {
		if (r->element[i]->type != REDIS_REPLY_STRING)
			continue;
		rec = json_loadb(r->element[i]->str, r->element[i]->len, 0, NULL);
		if (json_is_object(rec))
			json_array_append_new(nodes, rec);
		else
			json_decref(rec);
	}
	if (nodes) {
		json_decref(cl->nodes);
		cl->nodes = nodes;
	}
}

static void beat(lws_sorted_usec_list_t *sul)
{
	struct qc_cluster *cl = lws_container_of(sul, struct qc_cluster, sul_beat);
	char ttl[16], *rec;
	const char *argv[8];
	size_t lens[8];
	json_t *j;
	int i, rc;

	if (cl->stopped)
		return;
	lws_sul_schedule(cl->ctx, 0, &cl->sul_beat, beat, QC_CLUSTER_BEAT_MS * LWS_US_PER_MS);
	if (cl->beat_waiting || !qc_redis_up(cl->shards[cl->beat_shard].cmd))
		return;
	j = json_pack("{s:s, s:I, s:s, s:I}", "node_id", cl->node_id, "connections",
	              (json_int_t)qc_hub_nconns(cl->hub), "version", QC_VERSION, "seen_ms",
	              (json_int_t)qc_now_ms());
	rec = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!rec)
		return;
	snprintf(ttl, sizeof(ttl), "%d", QC_CLUSTER_NODE_TTL_MS);
	argv[0] = "EVAL";
	argv[1] = beat_lua;
	argv[2] = "2";
	argv[3] = NODES_KEY;
	argv[4] = SEEN_KEY;
	argv[5] = cl->node_id;
	argv[6] = rec;
	argv[7] = ttl;
	for (i = 0; i < 8; i++)
		lens[i] = strlen(argv[i]);
	rc = qc_redis_cmd(cl->shards[cl->beat_shard].cmd, beat_done, cl, 8, argv, lens);
	if (!rc)
		cl->beat_waiting = true;
	else if (rc == -ENOSPC)
		qc_hub_refused(cl->hub, QC_LIM_CLUSTER_INFLIGHT);
	free(rec);
}

static json_t *ops_stats(void *ctx)
{
	return qc_cluster_stats(ctx);
}

static bool ops_ready(void *ctx, const char **reason)
{
	return qc_cluster_ready(ctx, reason);
}

int qc_cluster_start(struct qc_cluster *cl, struct lws_context *ctx, struct lws_vhost *vh,
                     unsigned int port)
{
	struct qc_cluster_ops ops = {.stats = ops_stats, .ready = ops_ready, .ctx = cl};
	struct qc_broker broker = {.append = broker_append, .watch = broker_watch, .ctx = cl};
	char host[64];
	uint32_t i;

	if (cl->cfg->cluster.node_id[0]) {
		snprintf(cl->node_id, sizeof(cl->node_id), "%s", cl->cfg->cluster.node_id);
	} else {
		if (gethostname(host, sizeof(host)))
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		snprintf(cl->node_id, sizeof(cl->node_id), "%s:%u", host, port);
	}
	cl->ctx = ctx;
	for (i = 0; i < cl->nshards; i++)
		if (qc_redis_start(cl->shards[i].cmd, ctx, vh) ||
		    qc_redis_start(cl->shards[i].sub, ctx, vh))
			return -1;
	lws_sul_schedule(cl->ctx, 0, &cl->sul_beat, beat, 1);
	lws_sul_schedule(cl->ctx, 0, &cl->sul_sweep, sweep, WATCH_SWEEP_MS * LWS_US_PER_MS);
	qc_hub_set_cluster(cl->hub, &ops);
	qc_hub_set_broker(cl->hub, &broker);
	lwsl_user("quotecast: cluster node \"%s\" on %u Redis shard(s)\n", cl->node_id,
	          cl->nshards);
	return 0;
}

void qc_cluster_stop(struct qc_cluster *cl)
{
	uint32_t i;

	if (!cl || cl->stopped)
		return;
	cl->stopped = true;
	if (cl->ctx) {
		lws_sul_cancel(&cl->sul_beat);
		lws_sul_cancel(&cl->sul_sweep);
	}
	for (i = 0; i < cl->nshards; i++) {
		qc_redis_stop(cl->shards[i].cmd);
		qc_redis_stop(cl->shards[i].sub);
	}
}

void qc_cluster_free(struct qc_cluster *cl)
{
	uint32_t i;

	if (!cl)
		return;
	qc_cluster_stop(cl);
	struct watch *w, *tmp;

	for (i = 0; cl->shards && i < cl->nshards; i++) {
		qc_redis_free(cl->shards[i].cmd);
		qc_redis_free(cl->shards[i].sub);
	}
	HASH_ITER (hh, cl->watches, w, tmp) {
		HASH_DEL(cl->watches, w);
		free(w);
	}
	free(cl->shards);
	qc_shard_ring_free(&cl->ring);
	json_decref(cl->nodes);
	free(cl);
}

bool qc_cluster_ready(struct qc_cluster *cl, const char **reason)
{
	uint32_t i;

	for (i = 0; i < cl->nshards; i++) {
		if (!qc_redis_up(cl->shards[i].cmd) || !qc_redis_up(cl->shards[i].sub)) {
			*reason = "Redis (cluster.redis) is not connected or not answering";
			return false;
		}
	}
	return true;
}

json_t *qc_cluster_stats(struct qc_cluster *cl)
{
	struct qc_redis_stats st, sum = {0};
	json_t *shards = json_array(), *doc;
	const char *reason;
	uint32_t i;

	for (i = 0; i < cl->nshards; i++) {
		qc_redis_stats(cl->shards[i].cmd, &st);
		sum.inflight += st.inflight;
		sum.sent += st.sent;
		sum.failed += st.failed;
		sum.timeouts += st.timeouts;
		sum.reconnects += st.reconnects;
		json_array_append_new(
		    shards,
		    json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:I}", "url", cl->shards[i].url,
		              "connected", st.up, "inflight", (json_int_t)st.inflight, "commands",
		              (json_int_t)st.sent, "failed", (json_int_t)st.failed, "timeouts",
		              (json_int_t)st.timeouts, "reconnects", (json_int_t)st.reconnects));
	}
	doc = json_pack("{s:b, s:s, s:b, s:I, s:O, s:o, s:I, s:I, s:I, s:I, s:I}", "enabled", 1,
	                "node_id", cl->node_id, "connected", qc_cluster_ready(cl, &reason),
	                "node_count", (json_int_t)json_array_size(cl->nodes), "nodes", cl->nodes,
	                "shards", shards, "inflight", (json_int_t)sum.inflight, "commands",
	                (json_int_t)sum.sent, "failed", (json_int_t)sum.failed, "timeouts",
	                (json_int_t)sum.timeouts, "reconnects", (json_int_t)sum.reconnects);
	json_object_set_new(doc, "watched_symbols", json_integer((json_int_t)cl->nwatches));
	json_object_set_new(doc, "ticks_received", json_integer((json_int_t)cl->ticks_in));
	json_object_set_new(doc, "ticks_malformed", json_integer((json_int_t)cl->ticks_bad));
	return doc;
}
