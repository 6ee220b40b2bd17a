/*
 * cluster: the shards of cluster.redis, each a command link on the loop (redis.c), and the
 * membership beat (cluster.h). The beat's script runs on Redis' clock (TIME), so nodes whose
 * clocks differ still agree on who is alive; its answer is the list every node shows in its
 * stats. Nothing waits for Redis: a beat that gets no answer is dropped by the link's timeout,
 * and the next one goes when the link is back.
 */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cluster_priv.h"

#define NODES_KEY "{qc}:nodes"
#define SEEN_KEY  "{qc}:nodes:seen"

/*
 * Put before every script: its last ARGV is the time (ms, Redis' clock; 0: none) after which
 * the node no longer waits for its answer (it answered UNAVAILABLE), so a script that ran
 * later, having waited in a stalled Redis, does nothing.
 */
#define GUARD_LUA                                                                                  \
	"local qc_deadline = tonumber(table.remove(ARGV))\n"                                       \
	"if qc_deadline and qc_deadline > 0 then\n"                                                \
	"  local qc_t = redis.call('TIME')\n"                                                      \
	"  if tonumber(qc_t[1]) * 1000 + math.floor(tonumber(qc_t[2]) / 1000) > qc_deadline "      \
	"then\n"                                                                                   \
	"    return redis.error_reply('QCLATE the node no longer waited for this')\n"              \
	"  end\n"                                                                                  \
	"end\n"

/*
 * KEYS: the records and the times they were last written (Redis' clock, ms); ARGV: this node's
 * id, its record, the time after which a node is gone. Returns the records of the live nodes.
 */
static struct qc_cluster_script beat_script = {
    .src = "local t = redis.call('TIME')\n"
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
           "return out\n",
};

static int resolve(struct qc_cluster_shard *s, char *err, size_t errlen)
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

static void resubscribe(struct qc_cluster_shard *s)
{
	struct qc_cluster_chan *c, *tmp;

	HASH_ITER (hh, s->cl->chans, c, tmp)
		if (c->shard == s->index)
			qc_redis_subscribe(s->sub, c->name, true);
}

static void on_sub_state(void *ud, bool up)
{
	struct qc_cluster_shard *s = ud;
	uint32_t i;

	if (!up)
		return;
	resubscribe(s);
	for (i = 0; i < s->cl->nresubscribed; i++)
		s->cl->resubscribed[i](s->cl, s->index);
}

static void load_scripts(struct qc_cluster_shard *s)
{
	const char *argv[3] = {"SCRIPT", "LOAD", NULL};
	size_t lens[3] = {6, 4, 0};
	uint32_t i;

	for (i = 0; i < s->cl->nscripts; i++) {
		argv[2] = s->cl->scripts[i]->code;
		lens[2] = strlen(argv[2]);
		/* pipelined ahead of anything sent after it; a failure shows in EVALSHA's answer */
		qc_redis_cmd(s->cmd, NULL, NULL, 3, argv, lens);
	}
}

static void time_done(void *ud, const redisReply *r)
{
	struct qc_cluster_shard *s = ud;
	int64_t now = qc_now_ms();

	s->clock_asking = false;
	/*
	 * Redis' clock as it was at some point of the round trip: the offset is early by at most
	 * the round trip, so a deadline from it is early, never late. A round trip longer than a
	 * sixteenth of the timeout (Redis busy, or this loop held up with the answer unread) says
	 * too little: the last offset stays.
	 */
	if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	    r->element[0]->type == REDIS_REPLY_STRING &&
	    r->element[1]->type == REDIS_REPLY_STRING &&
	    now - s->clock_asked_ms <= (int64_t)s->cl->cfg->cluster.timeout_ms / 16) {
		s->clock_off_ms = strtoll(r->element[0]->str, NULL, 10) * 1000 +
		                  strtoll(r->element[1]->str, NULL, 10) / 1000 - now;
		s->clock_known = true;
	}
}

/* Redis' clock against ours, asked when the link comes up and with every beat. */
static void ask_time(struct qc_cluster_shard *s)
{
	const char *argv[1] = {"TIME"};
	size_t lens[1] = {4};

	if (!s->clock_asking && !qc_redis_cmd(s->cmd, time_done, s, 1, argv, lens)) {
		s->clock_asking = true;
		s->clock_asked_ms = qc_now_ms();
	}
}

static void on_state(void *ud, bool up)
{
	struct qc_cluster_shard *s = ud;
	struct qc_cluster *cl = s->cl;

	if (up) {
		load_scripts(s);
		ask_time(s);
		return;
	}
	/* a command link that found Redis stalled: its subscriber link cannot be trusted either */
	qc_redis_drop(s->sub, "its shard's command link went down");
	/* the shard of the membership keys went down: what it said of the others is not current */
	if (s->index == cl->beat_shard) {
		json_decref(cl->nodes);
		cl->nodes = json_array();
	}
}

static void on_message(void *ud, const char *chan, size_t chanlen, const char *payload, size_t len)
{
	struct qc_cluster_shard *s = ud;
	struct qc_cluster *cl = s->cl;
	const struct qc_cluster_listener *l;
	uint32_t i;

	for (i = 0; i < cl->nlisteners; i++) {
		l = &cl->listeners[i];
		if (chanlen >= l->prefixlen && !memcmp(chan, l->prefix, l->prefixlen)) {
			l->fn(cl, chan + l->prefixlen, chanlen - l->prefixlen, payload, len);
			return;
		}
	}
}

uint32_t qc_cluster_shard_of(const struct qc_cluster *cl, const char *key, size_t len)
{
	return qc_shard_pick(&cl->ring, key, len);
}

int qc_cluster_cmd(struct qc_cluster *cl, uint32_t shard, qc_redis_reply_fn fn, void *ud, int argc,
                   const char **argv, const size_t *lens)
{
	int rc = qc_redis_cmd(cl->shards[shard].cmd, fn, ud, argc, argv, lens);

	if (rc == -ENOSPC)
		qc_hub_refused(cl->hub, QC_LIM_CLUSTER_INFLIGHT);
	return rc;
}

int qc_cluster_script_add(struct qc_cluster *cl, struct qc_cluster_script *s)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;

	/* made once for the process (the scripts are static; so is this) */
	if (!s->code) {
		size_t g = strlen(GUARD_LUA), n = strlen(s->src);

		if (!(s->code = malloc(g + n + 1)))
			return -1;
		memcpy(s->code, GUARD_LUA, g);
		memcpy(s->code + g, s->src, n + 1);
	}
	if (cl->nscripts == QC_CLUSTER_MAX_SCRIPTS ||
	    !EVP_Digest(s->code, strlen(s->code), md, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
		return -1;
	for (i = 0; i < mdlen; i++)
		snprintf(s->sha + 2 * i, 3, "%02x", md[i]);
	cl->scripts[cl->nscripts++] = s;
	return 0;
}

struct eval_call {
	struct qc_cluster_shard *shard;
	qc_redis_reply_fn fn;
	void *ud;
};

static void eval_done(void *ud, const redisReply *r)
{
	struct eval_call *c = ud;

	if (r && r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "NOSCRIPT", 8)) {
		lwsl_warn("cluster %s: scripts were flushed; loading them again\n", c->shard->url);
		load_scripts(c->shard);
	}
	/* past its deadline, not done: to the caller as no answer (counted, not logged per call) */
	if (r && r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "QCLATE", 6)) {
		c->shard->late++;
		r = NULL;
	}
	c->fn(c->ud, r);
	free(c);
}

int qc_cluster_eval(struct qc_cluster *cl, uint32_t shard, struct qc_cluster_script *s, int nkeys,
                    int nargs, const char **args, const size_t *lens, qc_redis_reply_fn fn,
                    void *ud)
{
	const struct qc_cluster_shard *sh = &cl->shards[shard];
	const char *argv[3 + 32 + 1];
	size_t alens[3 + 32 + 1];
	char nk[12], deadline[24];
	struct eval_call *c;
	int rc;

	if (nargs < 0 || nargs > 32 || nkeys > nargs)
		return -EINVAL;
	/*
	 * an eighth of the timeout early: what Redis' clock said may be behind it by a round trip
	 * (at most a sixteenth), and the answer must still come back in time
	 */
	snprintf(deadline, sizeof(deadline), "%" PRId64,
	         sh->clock_known
	             ? qc_now_ms() + sh->clock_off_ms + (int64_t)cl->cfg->cluster.timeout_ms * 7 / 8
	             : (int64_t)0);
	c = malloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->shard = &cl->shards[shard];
	c->fn = fn;
	c->ud = ud;
	snprintf(nk, sizeof(nk), "%d", nkeys);
	argv[0] = "EVALSHA";
	argv[1] = s->sha;
	argv[2] = nk;
	alens[0] = 7;
	alens[1] = 40;
	alens[2] = strlen(nk);
	memcpy(argv + 3, args, (size_t)nargs * sizeof(*args));
	memcpy(alens + 3, lens, (size_t)nargs * sizeof(*lens));
	argv[3 + nargs] = deadline;
	alens[3 + nargs] = strlen(deadline);
	rc = qc_cluster_cmd(cl, shard, eval_done, c, 3 + nargs + 1, argv, alens);
	if (rc)
		free(c);
	return rc;
}

int qc_cluster_eval_strs(struct qc_cluster *cl, uint32_t shard, struct qc_cluster_script *s,
                         int nkeys, int n, const char *const *args, qc_redis_reply_fn fn, void *ud)
{
	size_t lens[32];

	if (n < 0 || n > 32)
		return -EINVAL;
	for (int i = 0; i < n; i++)
		lens[i] = strlen(args[i]);
	return qc_cluster_eval(cl, shard, s, nkeys, n, (const char **)args, lens, fn, ud);
}

int qc_cluster_listen(struct qc_cluster *cl, const char *prefix, qc_cluster_chan_fn fn)
{
	if (cl->nlisteners == QC_CLUSTER_MAX_LISTENERS)
		return -1;
	cl->listeners[cl->nlisteners++] =
	    (struct qc_cluster_listener){.prefix = prefix, .prefixlen = strlen(prefix), .fn = fn};
	return 0;
}

int qc_cluster_on_resubscribe(struct qc_cluster *cl, qc_cluster_up_fn fn)
{
	if (cl->nresubscribed == QC_CLUSTER_MAX_LISTENERS)
		return -1;
	cl->resubscribed[cl->nresubscribed++] = fn;
	return 0;
}

int qc_cluster_subscribe(struct qc_cluster *cl, uint32_t shard, const char *name, bool on)
{
	size_t len = strlen(name);
	struct qc_cluster_chan *c;

	HASH_FIND(hh, cl->chans, name, len, c);
	if (on) {
		if (c) {
			c->refs++;
			return 0;
		}
		c = calloc(1, sizeof(*c) + len + 1);
		if (!c)
			return -ENOMEM;
		memcpy(c->name, name, len + 1);
		c->shard = shard;
		c->refs = 1;
		HASH_ADD(hh, cl->chans, name[0], len, c);
		/* down now: subscribed when the link is back (on_sub_state) */
		qc_redis_subscribe(cl->shards[shard].sub, name, true);
		return 0;
	}
	if (c && !--c->refs) {
		qc_redis_subscribe(cl->shards[c->shard].sub, name, false);
		HASH_DEL(cl->chans, c);
		free(c);
	}
	return 0;
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
		    .ud = &cl->shards[i],
		};

		cl->shards[i].cl = cl;
		cl->shards[i].index = i;
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
	if (qc_cluster_script_add(cl, &beat_script) || qc_cluster_streams_init(cl) ||
	    qc_cluster_sessions_init(cl) || qc_cluster_rooms_init(cl))
		goto fail_free;
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
	const char *args[5];
	json_t *j;
	int rc;

	if (cl->stopped)
		return;
	lws_sul_schedule(cl->ctx, 0, &cl->sul_beat, beat, QC_CLUSTER_BEAT_MS * LWS_US_PER_MS);
	for (uint32_t s = 0; s < cl->nshards; s++)
		if (qc_redis_up(cl->shards[s].cmd))
			ask_time(&cl->shards[s]);
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
	args[0] = NODES_KEY;
	args[1] = SEEN_KEY;
	args[2] = cl->node_id;
	args[3] = rec;
	args[4] = ttl;
	rc = qc_cluster_eval_strs(cl, cl->beat_shard, &beat_script, 2, 5, args, beat_done, cl);
	if (!rc)
		cl->beat_waiting = true;
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
	struct qc_broker broker = {.append = qc_cluster_broker_append,
	                           .watch = qc_cluster_broker_watch,
	                           .load = qc_cluster_broker_load,
	                           .claim = qc_cluster_broker_claim,
	                           .ctx = cl};
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
	qc_cluster_streams_start(cl);
	qc_cluster_sessions_start(cl);
	qc_cluster_rooms_start(cl);
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
		qc_cluster_streams_stop(cl);
		qc_cluster_sessions_stop(cl);
		qc_cluster_rooms_stop(cl);
	}
	for (i = 0; i < cl->nshards; i++) {
		qc_redis_stop(cl->shards[i].cmd);
		qc_redis_stop(cl->shards[i].sub);
	}
}

void qc_cluster_free(struct qc_cluster *cl)
{
	struct qc_cluster_chan *c, *ctmp;
	uint32_t i;

	if (!cl)
		return;
	qc_cluster_stop(cl);
	for (i = 0; cl->shards && i < cl->nshards; i++) {
		qc_redis_free(cl->shards[i].cmd);
		qc_redis_free(cl->shards[i].sub);
	}
	qc_cluster_streams_free(cl);
	qc_cluster_sessions_free(cl);
	qc_cluster_rooms_free(cl);
	HASH_ITER (hh, cl->chans, c, ctmp) {
		HASH_DEL(cl->chans, c);
		free(c);
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
	uint64_t late = 0;
	uint32_t i;

	for (i = 0; i < cl->nshards; i++) {
		qc_redis_stats(cl->shards[i].cmd, &st);
		sum.inflight += st.inflight;
		sum.sent += st.sent;
		sum.failed += st.failed;
		sum.timeouts += st.timeouts;
		sum.reconnects += st.reconnects;
		late += cl->shards[i].late;
		json_array_append_new(
		    shards,
		    json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I}", "url", cl->shards[i].url,
		              "connected", st.up, "inflight", (json_int_t)st.inflight, "commands",
		              (json_int_t)st.sent, "failed", (json_int_t)st.failed, "timeouts",
		              (json_int_t)st.timeouts, "reconnects", (json_int_t)st.reconnects,
		              "late", (json_int_t)cl->shards[i].late));
	}
	doc = json_pack("{s:b, s:s, s:b, s:I, s:O, s:o, s:I, s:I, s:I, s:I, s:I}", "enabled", 1,
	                "node_id", cl->node_id, "connected", qc_cluster_ready(cl, &reason),
	                "node_count", (json_int_t)json_array_size(cl->nodes), "nodes", cl->nodes,
	                "shards", shards, "inflight", (json_int_t)sum.inflight, "commands",
	                (json_int_t)sum.sent, "failed", (json_int_t)sum.failed, "timeouts",
	                (json_int_t)sum.timeouts, "reconnects", (json_int_t)sum.reconnects);
	json_object_set_new(doc, "late", json_integer((json_int_t)late));
	qc_cluster_streams_stats(cl, doc);
	qc_cluster_sessions_stats(cl, doc);
	qc_cluster_rooms_stats(cl, doc);
	return doc;
}
