/*
 * cluster_stream: the Redis stream broker (broker.h). Per tick one script on the symbol's
 * shard checks duplicates and versions for the whole cluster, gives the tick its seq, appends
 * it to the symbol's log (a Redis Stream) and publishes it on the symbol's channel; every node
 * with local subscribers of the symbol holds that channel and applies what arrives on it, in
 * seq order (never from the script's answer).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_priv.h"
#include "quotecast/stream.h"

/*
 * One tick, atomically: KEYS the symbol's seq, message-id window (a sorted set by seq), last
 * version, and log (a Redis Stream); ARGV the message id ("" = none), "1" when the version
 * counts and the version, the window size, the log's MAXLEN, the channel, and the rest of the
 * message (JSON made by the publishing node). Returns {0, seq} accepted, {1} duplicate, {2}
 * stale. What it publishes is "<seq> <rest>". Versions compare as Lua numbers (doubles).
 */
static struct qc_cluster_script tick_script = {
    .src = "if ARGV[1] ~= '' and redis.call('ZSCORE', KEYS[2], ARGV[1]) then return {1} end\n"
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
           "return {0, seq}\n",
};

#define TICK_CHANNEL   "qc:t:" /* + symbol */
#define WATCH_SWEEP_MS 1000

/* A symbol this node listens to (its channel is subscribed on its shard's sub link). */
struct qc_cluster_watch {
	UT_hash_handle hh;
	uint32_t shard;
	char symbol[]; /* NUL-terminated */
};

/* An append waiting for the script's answer. */
struct pending_tick {
	qc_broker_append_cb cb;
	void *arg;
};

/* "<seq> {"m":..,"t":..,"d":{..}}" on "qc:t:SYMBOL" */
static void on_tick(struct qc_cluster *cl, const char *name, size_t namelen, const char *payload,
                    size_t len)
{
	char symbol[64], *end;
	unsigned long long seq;
	const char *sp;
	json_t *rest, *data;

	if (!namelen || namelen >= sizeof(symbol))
		goto bad;
	memcpy(symbol, name, namelen);
	symbol[namelen] = '\0';
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
	cl->streams.ticks_in++;
	qc_hub_broker_tick(cl->hub, symbol, data, json_string_value(json_object_get(rest, "m")),
	                   seq, json_integer_value(json_object_get(rest, "t")));
	json_decref(rest);
	return;
bad:
	cl->streams.ticks_bad++;
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

/*
 * The script's message: {"m":"<message id>","t":<timestamp>,"d":<data>}, written straight
 * from the compact data's text (already JSON as jansson prints it: no tree, no number
 * printing); the message id escaped as jansson would. A new string of *@len bytes, or NULL.
 */
static char *tick_payload(const struct qc_broker_tick *t, size_t *len)
{
	const char *mid = t->message_id ? t->message_id : "";
	size_t mlen = strlen(mid), n;
	char *out = malloc(6 * mlen + t->data->len + 48);

	if (!out)
		return NULL;
	memcpy(out, "{\"m\":\"", 6);
	n = 6 + qc_json_escape(out + 6, mid, mlen);
	n += (size_t)snprintf(out + n, 40, "\",\"t\":%lld,\"d\":", (long long)t->timestamp);
	memcpy(out + n, t->data->text, t->data->len);
	n += t->data->len;
	out[n++] = '}';
	out[n] = '\0';
	*len = n;
	return out;
}

int qc_cluster_broker_append(void *ctx, const struct qc_broker_tick *t, qc_broker_append_cb cb,
                             void *arg)
{
	struct qc_cluster *cl = ctx;
	char k_seq[96], k_ids[96], k_ver[96], k_log[96], chan[96], ver[24], win[16], maxlen[16];
	const char *args[11];
	size_t lens[11], slen = strlen(t->symbol);
	struct pending_tick *p;
	char *payload;
	size_t plen;
	uint32_t shard = qc_cluster_shard_of(cl, t->symbol, slen);
	int i, rc;

	payload = tick_payload(t, &plen);
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
	args[0] = k_seq;
	args[1] = k_ids;
	args[2] = k_ver;
	args[3] = k_log;
	args[4] = t->message_id ? t->message_id : "";
	args[5] = t->has_version ? "1" : "0";
	args[6] = ver;
	args[7] = win;
	args[8] = maxlen;
	args[9] = chan;
	args[10] = payload;
	for (i = 0; i < 10; i++)
		lens[i] = strlen(args[i]);
	lens[10] = plen;
	rc = qc_cluster_eval(cl, shard, &tick_script, 4, 11, args, lens, tick_done, p);
	free(payload);
	if (rc)
		free(p);
	return rc;
}

void qc_cluster_broker_watch(void *ctx, const char *symbol)
{
	struct qc_cluster *cl = ctx;
	char chan[sizeof(TICK_CHANNEL) + 64];
	size_t len = strlen(symbol);
	struct qc_cluster_watch *w;

	HASH_FIND(hh, cl->streams.watches, symbol, len, w);
	if (w)
		return;
	w = calloc(1, sizeof(*w) + len + 1);
	if (!w)
		return;
	memcpy(w->symbol, symbol, len + 1);
	w->shard = qc_cluster_shard_of(cl, symbol, len);
	snprintf(chan, sizeof(chan), TICK_CHANNEL "%s", symbol);
	/* down now: subscribed when the link is back */
	if (qc_cluster_subscribe(cl, w->shard, chan, true)) {
		free(w);
		return;
	}
	HASH_ADD(hh, cl->streams.watches, symbol[0], len, w);
	cl->streams.nwatches++;
}

/* Channels of symbols nobody here subscribes to any more are left (lazily: once a second). */
static void sweep(lws_sorted_usec_list_t *sul)
{
	struct qc_cluster *cl = lws_container_of(sul, struct qc_cluster, streams.sul_sweep);
	char chan[sizeof(TICK_CHANNEL) + 64];
	struct qc_cluster_watch *w, *tmp;

	if (cl->stopped)
		return;
	HASH_ITER (hh, cl->streams.watches, w, tmp) {
		if (qc_hub_stream_watched(cl->hub, w->symbol))
			continue;
		snprintf(chan, sizeof(chan), TICK_CHANNEL "%s", w->symbol);
		qc_cluster_subscribe(cl, w->shard, chan, false);
		HASH_DEL(cl->streams.watches, w);
		cl->streams.nwatches--;
		free(w);
	}
	lws_sul_schedule(cl->ctx, 0, &cl->streams.sul_sweep, sweep, WATCH_SWEEP_MS * LWS_US_PER_MS);
}

int qc_cluster_streams_init(struct qc_cluster *cl)
{
	if (qc_cluster_script_add(cl, &tick_script) || qc_cluster_listen(cl, TICK_CHANNEL, on_tick))
		return -1;
	return 0;
}

void qc_cluster_streams_start(struct qc_cluster *cl)
{
	lws_sul_schedule(cl->ctx, 0, &cl->streams.sul_sweep, sweep, WATCH_SWEEP_MS * LWS_US_PER_MS);
}

void qc_cluster_streams_stop(struct qc_cluster *cl)
{
	if (cl->ctx)
		lws_sul_cancel(&cl->streams.sul_sweep);
}

void qc_cluster_streams_free(struct qc_cluster *cl)
{
	struct qc_cluster_watch *w, *tmp;

	HASH_ITER (hh, cl->streams.watches, w, tmp) {
		HASH_DEL(cl->streams.watches, w);
		free(w);
	}
}

void qc_cluster_streams_stats(struct qc_cluster *cl, json_t *doc)
{
	json_object_set_new(doc, "watched_symbols", json_integer((json_int_t)cl->streams.nwatches));
	json_object_set_new(doc, "ticks_received", json_integer((json_int_t)cl->streams.ticks_in));
	json_object_set_new(doc, "ticks_malformed",
	                    json_integer((json_int_t)cl->streams.ticks_bad));
}
