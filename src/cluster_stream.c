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

#include <utlist.h>

#include "cluster_priv.h"
#include "quotecast/stream.h"

/*
 * One tick, atomically: KEYS the symbol's seq, message-id window (a sorted set by seq), last
 * version, log (a Redis Stream whose entry ids are the seqs: "<seq>-0") and epoch; ARGV the
 * message id ("" = none), "1" when the version counts and the version, the window size, the
 * log's MAXLEN, the channel, the rest of the message (JSON made by the publishing node), a
 * random epoch for a log that begins, and those of the max_symbols count (below). Returns {0, seq}
 * accepted, {1} duplicate, {2} stale, {3} refused (max_symbols). What it publishes is "<seq>
 * <epoch> <rest>". Versions compare as Lua numbers (doubles).
 *
 * streams.max_symbols counts, per shard, the symbols with a tick within idle_ttl_s (KEYS[6], a
 * sorted set by the time of each symbol's last tick on Redis' clock), as a node counts its
 * streams with ticks that are not idle past the TTL: a tick of a symbol not among them is
 * refused once max_symbols are. Checked when ARGV[12] is "1": a node asks for it on a
 * symbol's first tick through it each second (struct qc_cluster_recent). Measured in Redis
 * (INFO commandstats, 50,000 calls over 100 symbols, 4 fields): 7.4-9.1 us per call before
 * the epoch and the count, 11.2-11.8 when every tick checks the count, 7.5-10.1 like this.
 *
 * ARGV after the epoch: the symbol, streams.max_symbols, streams.idle_ttl_s in ms, "1" to
 * check (and renew) the symbol's place in that count, and cluster.log_ttl_s in ms ("0": keep):
 * with the check, the symbol's keys are set to go that long after this tick, so a symbol no
 * longer published leaves Redis (its next tick starts a new life of the log).
 *
 * The epoch names one life of the log on every node: made when the log begins (seq 1, or no
 * epoch yet), so a Redis that lost its data (restarted empty) gives the next tick seq 1 in a
 * new life, and positions from the old one are known not to reach back.
 */
static struct qc_cluster_script tick_script = {
    .src = "if ARGV[1] ~= '' and redis.call('ZSCORE', KEYS[2], ARGV[1]) then return {1} end\n"
           "if ARGV[2] == '1' then\n"
           "  local last = redis.call('GET', KEYS[3])\n"
           "  if last and tonumber(ARGV[3]) <= tonumber(last) then return {2} end\n"
           "  redis.call('SET', KEYS[3], ARGV[3])\n"
           "end\n"
           "if ARGV[12] == '1' then\n"
           "  local t = redis.call('TIME')\n"
           "  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
           "  local ttl = tonumber(ARGV[11])\n"
           "  local seen = redis.call('ZSCORE', KEYS[6], ARGV[9])\n"
           "  if not seen or (ttl > 0 and tonumber(seen) < now - ttl) then\n"
           "    if ttl > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now - ttl) end\n"
           "    if redis.call('ZCARD', KEYS[6]) >= tonumber(ARGV[10]) then return {3} end\n"
           "  end\n"
           "  redis.call('ZADD', KEYS[6], now, ARGV[9])\n"
           "end\n"
           "local seq = redis.call('INCR', KEYS[1])\n"
           "local ep = redis.call('GET', KEYS[5])\n"
           "if seq == 1 or not ep then\n"
           "  ep = ARGV[8]\n"
           "  redis.call('SET', KEYS[5], ep)\n"
           "  if seq == 1 then redis.call('DEL', KEYS[4]) end\n"
           "end\n"
           "if ARGV[1] ~= '' then\n"
           "  redis.call('ZADD', KEYS[2], seq, ARGV[1])\n"
           "  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[4]) + 1))\n"
           "end\n"
           "redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], seq .. '-0', 'p', ARGV[7])\n"
           "redis.call('PUBLISH', ARGV[6], seq .. ' ' .. ep .. ' ' .. ARGV[7])\n"
           "if ARGV[12] == '1' and ARGV[13] ~= '0' then\n"
           "  for i = 1, 5 do redis.call('PEXPIRE', KEYS[i], ARGV[13]) end\n"
           "end\n"
           "return {0, seq}\n",
};

/*
 * Read a log back: KEYS the symbol's epoch and log; ARGV the epoch this node follows ("" =
 * none), the first seq it lacks, and how many entries at most. Returns {epoch, seq, rest,
 * seq, rest, ...}: the newest entries from that seq on (all of them when the epoch is another
 * one), oldest first; {""} when the symbol has no log.
 */
static struct qc_cluster_script read_script = {
    .src = "local ep = redis.call('GET', KEYS[1])\n"
           "if not ep then return {''} end\n"
           "local from = ARGV[2] .. '-0'\n"
           "if ep ~= ARGV[1] then from = '-' end\n"
           "local r = redis.call('XREVRANGE', KEYS[2], '+', from, 'COUNT', ARGV[3])\n"
           "local out = {ep}\n"
           "for i = #r, 1, -1 do\n"
           "  out[#out + 1] = string.match(r[i][1], '^%d+')\n"
           "  out[#out + 1] = r[i][2][2]\n"
           "end\n"
           "return out\n",
};

#define TICK_CHANNEL   "qc:t:"      /* + symbol */
#define SYMBOLS_KEY    "qc:symbols" /* one per shard: streams.max_symbols */
#define WATCH_SWEEP_MS 1000
#define EPOCH_HEX      12 /* the hub's QC_EPOCH_LEN */

/* A tick from the channel that waits for a read of the log (it came after a gap). */
struct held {
	struct held *next;
	uint64_t seq;
	uint64_t gen; /* the first read that surely holds what was published before it */
	char epoch[EPOCH_HEX + 1];
	size_t len;
	char rest[]; /* the message's JSON, not NUL-terminated */
};

/* A load (broker.h) waiting for a read of the log. */
struct waiter {
	struct waiter *next;
	uint64_t gen; /* the first read that answers it */
	qc_broker_load_cb cb;
	void *arg;
};

/*
 * A symbol this node listens to (its channel is subscribed on its shard's sub link), and how
 * far its local stream follows the log: the channel's ticks are applied in seq order; one
 * after a gap (a message lost while the sub link was down, or published between the read of
 * the log and the SUBSCRIBE taking effect: the two links are not ordered) waits, with those
 * after it, until the log is read back after the last applied seq.
 */
struct qc_cluster_watch {
	UT_hash_handle hh;
	uint32_t shard;
	bool loaded;       /* read back since it began, or since its channel was subscribed anew */
	bool reading;      /* a read of the log is in flight: read number @reads */
	bool again;        /* read once more after it */
	int64_t settle_ms; /* read again then: its SUBSCRIBE has surely taken effect (0: no) */
	uint64_t reads;
	uint64_t last; /* the newest seq applied, in life @epoch */
	char epoch[EPOCH_HEX + 1];
	struct held *held; /* by seq */
	struct waiter *waiters;
	char symbol[]; /* NUL-terminated */
};

/*
 * A SUBSCRIBE and the read of the log that follows it go on different connections: ticks
 * published between the read and the SUBSCRIBE taking effect are in neither. The next tick
 * shows the gap and it is read back, but the last ticks before a pause would wait for it: so
 * the log is read once more this long after a (re)SUBSCRIBE.
 */
#define SETTLE_MS 200

/* An append waiting for the script's answer. */
struct pending_tick {
	struct qc_cluster *cl;
	qc_broker_append_cb cb;
	void *arg;
	char symbol[QC_SYMBOL_MAX + 1];
};

/* A symbol whose place in the max_symbols count this node renewed lately (at @ms). */
struct qc_cluster_recent {
	UT_hash_handle hh;
	int64_t ms;
	char symbol[QC_SYMBOL_MAX + 1];
};

#define RECENT_MS 1000 /* a symbol's count is checked at most this often per node */

/* Whether the tick of @symbol about to go should check the count (and renew it); noted. */
static bool count_due(struct qc_cluster *cl, const char *symbol)
{
	int64_t now = qc_now_ms();
	struct qc_cluster_recent *r;

	HASH_FIND_STR(cl->streams.recent, symbol, r);
	if (r && now - r->ms < RECENT_MS)
		return false;
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return true;
		snprintf(r->symbol, sizeof(r->symbol), "%s", symbol);
		HASH_ADD_STR(cl->streams.recent, symbol, r);
	}
	r->ms = now;
	return true;
}

/* A refused tick: its symbol is checked again with the next one. */
static void count_forget(struct qc_cluster *cl, const char *symbol)
{
	struct qc_cluster_recent *r;

	HASH_FIND_STR(cl->streams.recent, symbol, r);
	if (r) {
		HASH_DEL(cl->streams.recent, r);
		free(r);
	}
}

/* Forget the symbols not renewed within RECENT_MS (@all: every one). */
static void recent_sweep(struct qc_cluster *cl, bool all)
{
	int64_t now = qc_now_ms();
	struct qc_cluster_recent *r, *tmp;

	HASH_ITER (hh, cl->streams.recent, r, tmp) {
		if (all || now - r->ms >= RECENT_MS) {
			HASH_DEL(cl->streams.recent, r);
			free(r);
		}
	}
}

/* A read of a watch's log in flight. */
struct pending_read {
	struct qc_cluster *cl;
	char symbol[QC_SYMBOL_MAX + 1];
};

static bool epoch_ok(const char *e, size_t len)
{
	if (len != EPOCH_HEX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((e[i] >= '0' && e[i] <= '9') || (e[i] >= 'a' && e[i] <= 'f')))
			return false;
	return true;
}

/*
 * Apply one tick of the log (@rest: {"m":..,"t":..,"d":{..}}) to the hub's stream; @history:
 * read back when the watch began, not fanned out (its subscribers get a snapshot after it).
 */
static void apply(struct qc_cluster *cl, struct qc_cluster_watch *w, const char *epoch,
                  uint64_t seq, const char *rest, size_t len, bool history)
{
	json_t *j = json_loadb(rest, len, 0, NULL), *data = json_object_get(j, "d");

	if (strcmp(w->epoch, epoch)) {
		snprintf(w->epoch, sizeof(w->epoch), "%s", epoch);
		w->last = 0;
	}
	if (seq <= w->last) {
		json_decref(j);
		return;
	}
	w->last = seq;
	if (!json_is_object(data) || !json_is_integer(json_object_get(j, "t"))) {
		cl->streams.ticks_bad++;
		json_decref(j);
		return;
	}
	qc_hub_broker_tick(cl->hub, w->symbol, epoch, data,
	                   json_string_value(json_object_get(j, "m")), seq,
	                   json_integer_value(json_object_get(j, "t")), history);
	json_decref(j);
}

/* Whether @seq of @epoch follows what @w applied (a new life follows anything with seq 1). */
static bool follows(const struct qc_cluster_watch *w, const char *epoch, uint64_t seq)
{
	return strcmp(w->epoch, epoch) ? seq == 1 : seq == w->last + 1;
}

static bool known(const struct qc_cluster_watch *w, const char *epoch, uint64_t seq)
{
	return !strcmp(w->epoch, epoch) && seq <= w->last;
}

static void hold(struct qc_cluster_watch *w, const char *epoch, uint64_t seq, const char *rest,
                 size_t len, uint64_t gen)
{
	struct held *t = malloc(sizeof(*t) + len), **at = &w->held;

	if (!t)
		return; /* lost here: the next gap's read brings it back */
	t->seq = seq;
	t->gen = gen;
	memcpy(t->epoch, epoch, EPOCH_HEX + 1);
	t->len = len;
	memcpy(t->rest, rest, len);
	while (*at && (*at)->seq <= seq)
		at = &(*at)->next;
	t->next = *at;
	*at = t;
}

/*
 * Apply the held ticks that follow (or are known already, dropped). One after a gap that read
 * number @done surely holds (it was sent after the tick came) is applied too: the log no
 * longer has what is missing. Returns whether one still waits for a later read.
 */
static bool release_held(struct qc_cluster *cl, struct qc_cluster_watch *w, uint64_t done)
{
	struct held *t;

	while ((t = w->held)) {
		if (!known(w, t->epoch, t->seq) && !follows(w, t->epoch, t->seq) && t->gen > done)
			return true;
		if (!known(w, t->epoch, t->seq)) {
			if (!follows(w, t->epoch, t->seq))
				cl->streams.gaps_lost++;
			apply(cl, w, t->epoch, t->seq, t->rest, t->len, false);
		}
		w->held = t->next;
		free(t);
	}
	return false;
}

/* Answer the loads that read number @done answers (all of them when @rc < 0). */
static void answer_waiters(struct qc_cluster_watch *w, uint64_t done, int rc)
{
	struct waiter **at = &w->waiters, *x, *ready = NULL;

	while ((x = *at)) {
		if (rc < 0 || x->gen <= done) {
			*at = x->next;
			x->next = ready;
			ready = x;
		} else {
			at = &x->next;
		}
	}
	/* the callbacks may load again (a request that runs again): the list is settled */
	while ((x = ready)) {
		ready = x->next;
		x->cb(x->arg, rc);
		free(x);
	}
}

static void read_done(void *ud, const redisReply *r);

/* Read @w's log after what it applied. 0, or -ENOTCONN / -ENOSPC / -ENOMEM (not sent). */
static int start_read(struct qc_cluster *cl, struct qc_cluster_watch *w)
{
	char k_ep[96], k_log[96], from[24], count[16];
	const char *args[5];
	struct pending_read *p;
	int rc;

	if (w->reading) {
		w->again = true;
		return 0;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->cl = cl;
	snprintf(p->symbol, sizeof(p->symbol), "%s", w->symbol);
	snprintf(k_ep, sizeof(k_ep), "qc:{%s}:epoch", w->symbol);
	snprintf(k_log, sizeof(k_log), "qc:{%s}:log", w->symbol);
	snprintf(from, sizeof(from), "%llu", (unsigned long long)w->last + 1);
	snprintf(count, sizeof(count), "%u", cl->cfg->streams.buffer_size);
	args[0] = k_ep;
	args[1] = k_log;
	args[2] = w->epoch;
	args[3] = from;
	args[4] = count;
	rc = qc_cluster_eval_strs(cl, w->shard, &read_script, 2, 5, args, read_done, p);
	if (rc) {
		free(p);
		return rc;
	}
	w->reading = true;
	w->again = false;
	w->reads++;
	cl->streams.reads++;
	return 0;
}

/* A read could not be made: what is held goes on as it is, the loads hear UNAVAILABLE. */
static void read_failed(struct qc_cluster *cl, struct qc_cluster_watch *w)
{
	cl->streams.read_failures++;
	w->loaded = false;
	w->again = false;
	release_held(cl, w, UINT64_MAX);
	answer_waiters(w, 0, -ENOTCONN);
}

static void read_done(void *ud, const redisReply *r)
{
	struct pending_read *p = ud;
	struct qc_cluster *cl = p->cl;
	struct qc_cluster_watch *w;
	const redisReply *ep;
	uint64_t done;
	bool history;
	size_t i;

	HASH_FIND_STR(cl->streams.watches, p->symbol, w);
	free(p);
	if (!w)
		return;
	w->reading = false;
	done = w->reads;
	ep = r && r->type == REDIS_REPLY_ARRAY && r->elements % 2 ? r->element[0] : NULL;
	if (!ep || ep->type != REDIS_REPLY_STRING || (ep->len && !epoch_ok(ep->str, ep->len))) {
		if (r && r->type == REDIS_REPLY_ERROR)
			lwsl_warn("cluster: reading the log of %s failed: %s\n", w->symbol, r->str);
		read_failed(cl, w);
		return;
	}
	/* the first read of a watch: what came before it is history, not news */
	history = !w->epoch[0];
	for (i = 1; ep->len && i + 1 < r->elements; i += 2) {
		const redisReply *q = r->element[i], *t = r->element[i + 1];
		unsigned long long seq;

		if (q->type != REDIS_REPLY_STRING || t->type != REDIS_REPLY_STRING)
			continue;
		seq = strtoull(q->str, NULL, 10);
		if (seq)
			apply(cl, w, ep->str, seq, t->str, t->len, history);
	}
	if (history && w->epoch[0])
		qc_hub_broker_loaded(cl->hub, w->symbol);
	w->loaded = true;
	if (release_held(cl, w, done))
		w->again = true;
	answer_waiters(w, done, 0);
	if ((w->again || w->waiters) && start_read(cl, w))
		read_failed(cl, w);
}

/* "<seq> <epoch> {"m":..,"t":..,"d":{..}}" on "qc:t:SYMBOL" */
static void on_tick(struct qc_cluster *cl, const char *name, size_t namelen, const char *payload,
                    size_t len)
{
	char symbol[QC_SYMBOL_MAX + 1], epoch[EPOCH_HEX + 1], *end;
	struct qc_cluster_watch *w;
	unsigned long long seq;
	const char *sp, *rest;

	if (!namelen || namelen >= sizeof(symbol))
		goto bad;
	memcpy(symbol, name, namelen);
	symbol[namelen] = '\0';
	sp = memchr(payload, ' ', len);
	if (!sp || payload[0] < '0' || payload[0] > '9')
		goto bad;
	seq = strtoull(payload, &end, 10);
	rest = sp + 1 + EPOCH_HEX + 1;
	if (end != sp || !seq || rest > payload + len || rest[-1] != ' ' ||
	    !epoch_ok(sp + 1, EPOCH_HEX))
		goto bad;
	memcpy(epoch, sp + 1, EPOCH_HEX);
	epoch[EPOCH_HEX] = '\0';
	cl->streams.ticks_in++;
	/* only what this node watches: a message may still come after its UNSUBSCRIBE */
	HASH_FIND_STR(cl->streams.watches, symbol, w);
	if (!w || known(w, epoch, seq))
		return;
	if (!w->reading && follows(w, epoch, seq)) {
		apply(cl, w, epoch, seq, rest, len - (size_t)(rest - payload), false);
		return;
	}
	/* after a gap, or while the log is read: it waits for a read sent after it came */
	hold(w, epoch, seq, rest, len - (size_t)(rest - payload), w->reads + 1);
	if (!w->reading) {
		cl->streams.gaps++;
		if (start_read(cl, w))
			read_failed(cl, w);
	} else {
		w->again = true;
	}
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
		case 3:
			verdict = -ENOSPC;
			count_forget(p->cl, p->symbol);
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

/*
 * The epoch a tick offers for a log that begins (used only then): random, without asking
 * OpenSSL for every tick: a random seed drawn once, then a counter through splitmix64, so two
 * lives of one log get different names and so do two nodes.
 */
static int new_epoch(struct qc_cluster *cl, char *out)
{
	static const char hex[] = "0123456789abcdef";
	char seed[17];
	uint64_t z;

	if (!cl->streams.epoch_seed) {
		if (qc_random_hex(seed, 8))
			return -1;
		cl->streams.epoch_seed = strtoull(seed, NULL, 16) | 1;
	}
	z = cl->streams.epoch_seed + ++cl->streams.epoch_count * 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	for (int i = EPOCH_HEX - 1; i >= 0; i--, z >>= 4)
		out[i] = hex[z & 15];
	out[EPOCH_HEX] = '\0';
	return 0;
}

int qc_cluster_broker_append(void *ctx, const struct qc_broker_tick *t, qc_broker_append_cb cb,
                             void *arg)
{
	struct qc_cluster *cl = ctx;
	char k_seq[96], k_ids[96], k_ver[96], k_log[96], k_ep[96], chan[96], ver[24], win[16],
	    maxlen[16], epoch[EPOCH_HEX + 1], maxsym[16], ttl[24], logttl[24];
	const char *args[19];
	size_t lens[19], slen = strlen(t->symbol);
	struct pending_tick *p;
	char *payload;
	size_t plen;
	uint32_t shard = qc_cluster_shard_of(cl, t->symbol, slen);
	int i, rc;

	if (new_epoch(cl, epoch))
		return -ENOMEM;
	payload = tick_payload(t, &plen);
	p = payload ? calloc(1, sizeof(*p)) : NULL;
	if (!p) {
		free(payload);
		return -ENOMEM;
	}
	p->cl = cl;
	p->cb = cb;
	p->arg = arg;
	snprintf(p->symbol, sizeof(p->symbol), "%s", t->symbol);
	/* the hash tag keeps a symbol's keys together, as Redis Cluster would want */
	snprintf(k_seq, sizeof(k_seq), "qc:{%s}:seq", t->symbol);
	snprintf(k_ids, sizeof(k_ids), "qc:{%s}:ids", t->symbol);
	snprintf(k_ver, sizeof(k_ver), "qc:{%s}:ver", t->symbol);
	snprintf(k_log, sizeof(k_log), "qc:{%s}:log", t->symbol);
	snprintf(k_ep, sizeof(k_ep), "qc:{%s}:epoch", t->symbol);
	snprintf(chan, sizeof(chan), TICK_CHANNEL "%s", t->symbol);
	snprintf(ver, sizeof(ver), "%lld", (long long)t->version);
	snprintf(win, sizeof(win), "%u", cl->cfg->streams.dedup_window);
	snprintf(maxlen, sizeof(maxlen), "%u", cl->cfg->streams.buffer_size);
	snprintf(maxsym, sizeof(maxsym), "%u", cl->cfg->streams.max_symbols);
	snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)cl->cfg->streams.idle_ttl_s * 1000);
	args[0] = k_seq;
	args[1] = k_ids;
	args[2] = k_ver;
	args[3] = k_log;
	args[4] = k_ep;
	args[5] = SYMBOLS_KEY;
	args[6] = t->message_id ? t->message_id : "";
	args[7] = t->has_version ? "1" : "0";
	args[8] = ver;
	args[9] = win;
	args[10] = maxlen;
	args[11] = chan;
	args[12] = payload;
	args[13] = epoch;
	args[14] = t->symbol;
	args[15] = maxsym;
	args[16] = ttl;
	args[17] = count_due(cl, t->symbol) ? "1" : "0";
	snprintf(logttl, sizeof(logttl), "%llu",
	         (unsigned long long)cl->cfg->cluster.log_ttl_s * 1000);
	args[18] = logttl;
	for (i = 0; i < 19; i++)
		lens[i] = strlen(args[i]);
	lens[12] = plen;
	rc = qc_cluster_eval(cl, shard, &tick_script, 6, 19, args, lens, tick_done, p);
	free(payload);
	if (rc)
		free(p);
	return rc;
}

static void settle(lws_sorted_usec_list_t *sul)
{
	struct qc_cluster *cl = lws_container_of(sul, struct qc_cluster, streams.sul_settle);
	struct qc_cluster_watch *w, *tmp;
	int64_t now = qc_now_ms(), next = 0;

	HASH_ITER (hh, cl->streams.watches, w, tmp) {
		if (!w->settle_ms)
			continue;
		if (w->settle_ms > now) {
			next = next && next < w->settle_ms ? next : w->settle_ms;
			continue;
		}
		w->settle_ms = 0;
		if (start_read(cl, w))
			read_failed(cl, w);
	}
	if (next && !cl->stopped)
		lws_sul_schedule(cl->ctx, 0, &cl->streams.sul_settle, settle,
		                 (next - now) * LWS_US_PER_MS);
}

static void settle_later(struct qc_cluster *cl, struct qc_cluster_watch *w)
{
	w->settle_ms = qc_now_ms() + SETTLE_MS;
	/* one timer for all: armed when idle, else it re-arms itself for the next one due */
	if (cl->ctx && !cl->stopped && lws_dll2_is_detached(&cl->streams.sul_settle.list))
		lws_sul_schedule(cl->ctx, 0, &cl->streams.sul_settle, settle,
		                 SETTLE_MS * LWS_US_PER_MS);
}

/* The watch of @symbol, made (its channel subscribed, its log read) when missing. */
static struct qc_cluster_watch *watch_get(struct qc_cluster *cl, const char *symbol)
{
	char chan[sizeof(TICK_CHANNEL) + QC_SYMBOL_MAX];
	size_t len = strlen(symbol);
	struct qc_cluster_watch *w;

	HASH_FIND(hh, cl->streams.watches, symbol, len, w);
	if (w || len > QC_SYMBOL_MAX)
		return w;
	w = calloc(1, sizeof(*w) + len + 1);
	if (!w)
		return NULL;
	memcpy(w->symbol, symbol, len + 1);
	w->shard = qc_cluster_shard_of(cl, symbol, len);
	snprintf(chan, sizeof(chan), TICK_CHANNEL "%s", symbol);
	/* down now: subscribed when the link is back */
	if (qc_cluster_subscribe(cl, w->shard, chan, true)) {
		free(w);
		return NULL;
	}
	HASH_ADD(hh, cl->streams.watches, symbol[0], len, w);
	cl->streams.nwatches++;
	/* after the SUBSCRIBE: what the read misses comes on the channel (a gap is read again) */
	start_read(cl, w);
	settle_later(cl, w);
	return w;
}

void qc_cluster_broker_watch(void *ctx, const char *symbol)
{
	watch_get(ctx, symbol);
}

int qc_cluster_broker_load(void *ctx, const char *symbol, qc_broker_load_cb cb, void *arg)
{
	struct qc_cluster *cl = ctx;
	struct qc_cluster_watch *w;
	struct waiter *x;
	bool made;
	int rc = 0;

	HASH_FIND_STR(cl->streams.watches, symbol, w);
	made = !w;
	if (made)
		w = watch_get(cl, symbol);
	if (!w)
		return -ENOMEM;
	if (w->loaded && !w->reading && qc_redis_up(cl->shards[w->shard].sub))
		return 1;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	if (made && w->reading) {
		x->gen = w->reads; /* the watch's first read, sent just now */
	} else {
		/* a read already under way may have been sent before what this load must see */
		x->gen = w->reads + 1;
		rc = start_read(cl, w);
	}
	if (rc) {
		free(x);
		return rc == -ENOMEM ? rc : -ENOTCONN;
	}
	x->cb = cb;
	x->arg = arg;
	x->next = w->waiters;
	w->waiters = x;
	return 0;
}

/*
 * An alert's edge claimed once in the cluster: SET NX on the symbol's shard (kept an hour, far
 * longer than the nodes that saw the same tick take to claim it).
 */
struct qc_cluster_claim {
	struct qc_cluster *cl;
	struct qc_cluster_claim *prev, *next; /* waiting to be sent (utlist DL) */
	lws_sorted_usec_list_t sul;
	void (*cb)(void *arg, int won);
	void *arg;
	uint32_t shard;
	char key[160];
};

#define CLAIM_TTL_MS   "3600000"
#define CLAIM_YIELD_MS 200 /* a node without the alert's user claims this much later */

static void claim_done(void *ud, const redisReply *r)
{
	struct qc_cluster_claim *c = ud;

	if (c->cl->stopped)
		c->cb(c->arg, 0); /* shutting down: nothing more is raised */
	else if (!r || r->type == REDIS_REPLY_ERROR)
		c->cb(c->arg, -ENOTCONN);
	else
		c->cb(c->arg, r->type == REDIS_REPLY_STATUS);
	free(c);
}

static void claim_send(lws_sorted_usec_list_t *sul)
{
	struct qc_cluster_claim *c = lws_container_of(sul, struct qc_cluster_claim, sul);
	const char *argv[] = {"SET", c->key, c->cl->node_id, "NX", "PX", CLAIM_TTL_MS};
	size_t lens[6];
	int i;

	DL_DELETE(c->cl->streams.claims, c);
	for (i = 0; i < 6; i++)
		lens[i] = strlen(argv[i]);
	if (qc_cluster_cmd(c->cl, c->shard, claim_done, c, 6, argv, lens)) {
		c->cb(c->arg, -ENOTCONN);
		free(c);
	}
}

int qc_cluster_broker_claim(void *ctx, const char *symbol, const char *key, bool prefer,
                            void (*cb)(void *arg, int won), void *arg)
{
	struct qc_cluster *cl = ctx;
	struct qc_cluster_claim *c;

	if (cl->stopped ||
	    !qc_redis_up(cl->shards[qc_cluster_shard_of(cl, symbol, strlen(symbol))].cmd))
		return -ENOTCONN;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->cl = cl;
	c->cb = cb;
	c->arg = arg;
	c->shard = qc_cluster_shard_of(cl, symbol, strlen(symbol));
	snprintf(c->key, sizeof(c->key), "qc:{%s}:al:%s", symbol, key);
	DL_APPEND(cl->streams.claims, c);
	/* never from inside this call: sent from the loop, at once or a moment later */
	lws_sul_schedule(cl->ctx, 0, &c->sul, claim_send,
	                 (prefer ? 1 : CLAIM_YIELD_MS * LWS_US_PER_MS));
	return 0;
}

/* A shard's sub link is back: what was published while it was down is read from the logs. */
static void resubscribed(struct qc_cluster *cl, uint32_t shard)
{
	struct qc_cluster_watch *w, *tmp;

	HASH_ITER (hh, cl->streams.watches, w, tmp) {
		if (w->shard != shard)
			continue;
		w->loaded = false;
		if (start_read(cl, w))
			read_failed(cl, w);
		settle_later(cl, w);
	}
}

static void watch_free(struct qc_cluster_watch *w)
{
	struct held *t;
	struct waiter *x;

	while ((t = w->held)) {
		w->held = t->next;
		free(t);
	}
	while ((x = w->waiters)) {
		w->waiters = x->next;
		free(x);
	}
	free(w);
}

/* Channels of symbols nobody here subscribes to any more are left (lazily: once a second). */
static void sweep(lws_sorted_usec_list_t *sul)
{
	struct qc_cluster *cl = lws_container_of(sul, struct qc_cluster, streams.sul_sweep);
	char chan[sizeof(TICK_CHANNEL) + QC_SYMBOL_MAX];
	struct qc_cluster_watch *w, *tmp;

	if (cl->stopped)
		return;
	HASH_ITER (hh, cl->streams.watches, w, tmp) {
		if (w->reading || w->waiters || qc_hub_stream_watched(cl->hub, w->symbol))
			continue;
		snprintf(chan, sizeof(chan), TICK_CHANNEL "%s", w->symbol);
		qc_cluster_subscribe(cl, w->shard, chan, false);
		HASH_DEL(cl->streams.watches, w);
		cl->streams.nwatches--;
		watch_free(w);
	}
	recent_sweep(cl, false);
	lws_sul_schedule(cl->ctx, 0, &cl->streams.sul_sweep, sweep, WATCH_SWEEP_MS * LWS_US_PER_MS);
}

int qc_cluster_streams_init(struct qc_cluster *cl)
{
	if (qc_cluster_script_add(cl, &tick_script) || qc_cluster_script_add(cl, &read_script) ||
	    qc_cluster_listen(cl, TICK_CHANNEL, on_tick) ||
	    qc_cluster_on_resubscribe(cl, resubscribed))
		return -1;
	return 0;
}

void qc_cluster_streams_start(struct qc_cluster *cl)
{
	lws_sul_schedule(cl->ctx, 0, &cl->streams.sul_sweep, sweep, WATCH_SWEEP_MS * LWS_US_PER_MS);
}

void qc_cluster_streams_stop(struct qc_cluster *cl)
{
	struct qc_cluster_claim *c, *tmp;
	struct qc_cluster_watch *w, *wtmp;

	if (cl->ctx) {
		lws_sul_cancel(&cl->streams.sul_sweep);
		lws_sul_cancel(&cl->streams.sul_settle);
	}
	/* loads still waiting (the links' stop answered their reads): the hub is still here */
	HASH_ITER (hh, cl->streams.watches, w, wtmp)
		answer_waiters(w, 0, -ENOTCONN);
	/* claims not sent yet: nothing more is raised */
	DL_FOREACH_SAFE(cl->streams.claims, c, tmp)
	{
		lws_sul_cancel(&c->sul);
		DL_DELETE(cl->streams.claims, c);
		c->cb(c->arg, 0);
		free(c);
	}
}

void qc_cluster_streams_free(struct qc_cluster *cl)
{
	struct qc_cluster_watch *w, *tmp;

	HASH_ITER (hh, cl->streams.watches, w, tmp) {
		HASH_DEL(cl->streams.watches, w);
		watch_free(w);
	}
	recent_sweep(cl, true);
}

void qc_cluster_streams_stats(struct qc_cluster *cl, json_t *doc)
{
	json_object_set_new(doc, "watched_symbols", json_integer((json_int_t)cl->streams.nwatches));
	json_object_set_new(doc, "ticks_received", json_integer((json_int_t)cl->streams.ticks_in));
	json_object_set_new(doc, "ticks_malformed",
	                    json_integer((json_int_t)cl->streams.ticks_bad));
	json_object_set_new(doc, "log_reads", json_integer((json_int_t)cl->streams.reads));
	json_object_set_new(doc, "log_read_failures",
	                    json_integer((json_int_t)cl->streams.read_failures));
	json_object_set_new(doc, "tick_gaps", json_integer((json_int_t)cl->streams.gaps));
	json_object_set_new(doc, "tick_gaps_lost", json_integer((json_int_t)cl->streams.gaps_lost));
}
