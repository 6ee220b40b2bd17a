/*
 * cluster_room: the Redis room broker (broker.h). Per room event one script on the room's
 * shard gives it the room's next seq, names the room log's life (its epoch: a key made from a
 * random value the node passes when it is missing, so Redis restarted empty is a new epoch),
 * appends it to the room's log (a Redis Stream, entry id "<seq>-1") and publishes
 * "<seq> <epoch> <event>" on the room's channel; every node with local members of the room
 * holds that channel and applies what arrives on it, in seq order (never from the script's
 * answer). read() gives a room log's position and its newest entries after a seq, for a
 * node that does not follow the room yet.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_priv.h"

/*
 * KEYS the room's seq, epoch, log; ARGV a fresh epoch, the log's MAXLEN, the channel, the
 * event. Returns {seq, epoch}.
 */
static struct qc_cluster_script room_script = {
    .src = "local ep = redis.call('GET', KEYS[2])\n"
           "if not ep then ep = ARGV[1]; redis.call('SET', KEYS[2], ep) end\n"
           "local seq = redis.call('INCR', KEYS[1])\n"
           "redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], seq .. '-1', 'p', ARGV[4])\n"
           "redis.call('PUBLISH', ARGV[3], seq .. ' ' .. ep .. ' ' .. ARGV[4])\n"
           "return {seq, ep}\n",
};

/*
 * KEYS as above; ARGV a fresh epoch, the seq to read after ("" = the position only), the
 * most entries. Returns {seq, epoch, seq1, event1, seq2, event2, ...}, newest first.
 */
static struct qc_cluster_script read_script = {
    .src = "local ep = redis.call('GET', KEYS[2])\n"
           "if not ep then ep = ARGV[1]; redis.call('SET', KEYS[2], ep) end\n"
           "local seq = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
           "local out = {seq, ep}\n"
           "if ARGV[2] ~= '' and tonumber(ARGV[2]) < seq then\n"
           "  local r = redis.call('XREVRANGE', KEYS[3], '+', (tonumber(ARGV[2]) + 1) .. '-0',\n"
           "                       'COUNT', ARGV[3])\n"
           "  for _, e in ipairs(r) do\n"
           "    out[#out + 1] = tonumber(string.match(e[1], '^(%d+)'))\n"
           "    out[#out + 1] = e[2][2]\n"
           "  end\n"
           "end\n"
           "return out\n",
};

/*
 * KEYS the room's users (a set); ARGV the user, the capacity, the members the node knows (a
 * JSON array: the set's first content when Redis has none). Returns 1 (in) or 0 (full).
 */
static struct qc_cluster_script admit_script = {
    .src = "if redis.call('EXISTS', KEYS[1]) == 0 then\n"
           "  for _, u in ipairs(cjson.decode(ARGV[3])) do redis.call('SADD', KEYS[1], u) end\n"
           "end\n"
           "if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end\n"
           "if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end\n"
           "redis.call('SADD', KEYS[1], ARGV[1])\n"
           "return 1\n",
};

/*
 * Presence: KEYS the room's hash "qc:r{ROOM}:on" (field a node id, value "<expiry ms on
 * Redis' clock> <JSON array of the node's users in the room>"); ARGV the node, the TTL (ms),
 * the users ("" = none: the node's field goes). The key lives as long as its newest field.
 */
static struct qc_cluster_script present_script = {
    .src = "if ARGV[3] == '' then return redis.call('HDEL', KEYS[1], ARGV[1]) end\n"
           "local t = redis.call('TIME')\n"
           "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
           "redis.call('HSET', KEYS[1], ARGV[1], (now + tonumber(ARGV[2])) .. ' ' .. ARGV[3])\n"
           "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
           "return 1\n",
};

/*
 * KEYS the presence hash. Returns the distinct users of the fields not expired (a node that
 * died stops renewing its field: it is dropped here once past its expiry).
 */
static struct qc_cluster_script presence_script = {
    .src = "local t = redis.call('TIME')\n"
           "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
           "local all = redis.call('HGETALL', KEYS[1])\n"
           "local seen, out = {}, {}\n"
           "for i = 1, #all, 2 do\n"
           "  local v = all[i + 1]\n"
           "  local sp = string.find(v, ' ', 1, true)\n"
           "  if not sp or tonumber(string.sub(v, 1, sp - 1)) < now then\n"
           "    redis.call('HDEL', KEYS[1], all[i])\n"
           "  else\n"
           "    for _, u in ipairs(cjson.decode(string.sub(v, sp + 1))) do\n"
           "      if not seen[u] then seen[u] = true; out[#out + 1] = u end\n"
           "    end\n"
           "  end\n"
           "end\n"
           "return out\n",
};

#define ROOM_CHANNEL   "qc:r:" /* + room */
#define ROOM_CONTROL   "qc:rc" /* changes of created rooms, held by every node */
#define WATCH_SWEEP_MS 1000
#define SETTLE_MS      200 /* a SUBSCRIBE has surely taken effect this long after it was sent */
/* a node's presence in a room, renewed every sweep, outlives the node by at most this */
#define PRESENCE_TTL_MS   (5 * WATCH_SWEEP_MS)
#define PRESENCE_DELAY_MS 10 /* joins written together after the first */

/* A room this node listens to (its channel is subscribed on its shard's sub link). */
struct qc_cluster_rwatch {
	UT_hash_handle hh;
	uint32_t shard;
	bool fresh;  /* watched since the last sweep: kept once even without members */
	bool joined; /* a local join since the presence was last written */
	char room[]; /* NUL-terminated */
};

struct pending_room {
	qc_room_append_cb append_cb;
	qc_room_read_cb read_cb;
	void *arg;
};

static int log_append(struct qc_cluster *cl, uint32_t shard, const char *tag, const char *chan,
                      uint32_t max, const char *payload, size_t len, qc_room_append_cb cb,
                      void *arg);
static int log_read(struct qc_cluster *cl, uint32_t shard, const char *tag, uint64_t since,
                    uint32_t max, qc_room_read_cb cb, void *arg);

/* "<seq> <epoch> <rest>": 0 with its parts, -1 when it is not that */
static int parse_numbered(const char *payload, size_t len, uint64_t *seq, char epoch[32],
                          const char **rest, size_t *restlen)
{
	const char *sp1 = memchr(payload, ' ', len), *sp2;
	unsigned long long v;
	char *end;

	sp2 = sp1 ? memchr(sp1 + 1, ' ', len - (size_t)(sp1 + 1 - payload)) : NULL;
	if (!sp2 || payload[0] < '0' || payload[0] > '9' || (size_t)(sp2 - sp1 - 1) >= 32)
		return -1;
	v = strtoull(payload, &end, 10);
	if (end != sp1 || !v)
		return -1;
	memcpy(epoch, sp1 + 1, (size_t)(sp2 - sp1 - 1));
	epoch[sp2 - sp1 - 1] = '\0';
	*seq = v;
	*rest = sp2 + 1;
	*restlen = len - (size_t)(sp2 + 1 - payload);
	return 0;
}

/* "<seq> <epoch> <event>" on "qc:r:ROOM" */
static void on_event(struct qc_cluster *cl, const char *name, size_t namelen, const char *payload,
                     size_t len)
{
	char room[QC_CLUSTER_ROOM_MAX + 1], epoch[32];
	const char *ev;
	uint64_t seq;
	size_t evlen;

	if (!namelen || namelen > QC_CLUSTER_ROOM_MAX ||
	    parse_numbered(payload, len, &seq, epoch, &ev, &evlen)) {
		cl->rooms.events_bad++;
		return;
	}
	memcpy(room, name, namelen);
	room[namelen] = '\0';
	cl->rooms.events_in++;
	qc_hub_room_broker_event(cl->hub, room, seq, epoch, ev, evlen);
}

/*
 * Changes of created rooms are numbered in a log of their own (tagged "", on the control
 * shard) and published on "qc:rc" as "<seq> <epoch> <change>". A node applies them in seq
 * order; one after a gap (its subscriber link was down) waits, with what follows it, while
 * the log is read back over the gap; a subscriber link that comes back reads it from where
 * the node is. A change the log no longer has is counted lost (the node has it at its next
 * start, from PostgreSQL).
 */
#define CONTROL_LOG_MAX  10000 /* changes the log keeps */
#define CONTROL_HELD_MAX 10000 /* changes waiting behind a read-back; more: lost */

static void control_apply(struct qc_cluster *cl, uint64_t seq, const char *epoch,
                          const char *change, size_t len)
{
	struct qc_cluster_rooms *r = &cl->rooms;

	if (r->rc_known && !strcmp(epoch, r->rc_epoch)) {
		if (seq <= r->rc_seq)
			return; /* had it: from the channel and from a read-back */
		if (seq > r->rc_seq + 1)
			r->changes_lost += seq - r->rc_seq - 1;
	}
	snprintf(r->rc_epoch, sizeof(r->rc_epoch), "%s", epoch);
	r->rc_seq = seq;
	r->rc_known = true;
	r->changes_in++;
	qc_hub_room_announced(cl->hub, change, len);
}

static void control_catch_up(struct qc_cluster *cl);

/* A settle() waiting for a read of the log of changes. */
struct control_waiter {
	struct control_waiter *next;
	void (*cb)(void *arg, int rc);
	void *arg;
};

static void waiters_done(struct control_waiter **list, int rc)
{
	struct control_waiter *w;

	while ((w = *list)) {
		*list = w->next;
		w->cb(w->arg, rc);
		free(w);
	}
}

static void control_read(void *arg, int rc, uint64_t seq, const char *epoch,
                         const struct qc_room_entry *ents, size_t n)
{
	struct qc_cluster *cl = arg;
	struct qc_cluster_rooms *r = &cl->rooms;
	struct qc_held_msg *m;

	r->rc_reading = false;
	if (!rc && !r->rc_known) {
		/* the start: where the log is (what came before is in PostgreSQL) */
		snprintf(r->rc_epoch, sizeof(r->rc_epoch), "%s", epoch);
		r->rc_seq = seq;
		r->rc_known = true;
	} else if (!rc && !strcmp(epoch, r->rc_epoch)) {
		/* newest first: oldest first here */
		for (size_t i = n; i-- > 0;)
			if (ents[i].seq > r->rc_seq)
				control_apply(cl, ents[i].seq, epoch, ents[i].payload, ents[i].len);
		/* what the log no longer had (the channel may still bring what came after) */
		if (seq > r->rc_seq && !n)
			r->changes_lost += seq - r->rc_seq;
		if (seq > r->rc_seq)
			r->rc_seq = seq;
	} else if (!rc) {
		/* another life of the log (Redis restarted empty): what the old one had is gone */
		snprintf(r->rc_epoch, sizeof(r->rc_epoch), "%s", epoch);
		r->rc_seq = 0;
		for (size_t i = n; i-- > 0;)
			control_apply(cl, ents[i].seq, epoch, ents[i].payload, ents[i].len);
	}
	/* then what waited, in order (a read that failed: as it came) */
	while ((m = qc_held_pop(&r->held))) {
		control_apply(cl, m->seq, m->epoch, m->data, m->len);
		free(m);
	}
	waiters_done(&r->reading, rc);
	/* settle()s that came while it was out want a read of their own */
	if (r->waiting)
		control_catch_up(cl);
}

/* Read the log back from where this node is (the position only, at the start). */
static void control_catch_up(struct qc_cluster *cl)
{
	struct qc_cluster_rooms *r = &cl->rooms;

	if (r->rc_reading)
		return;
	if (!log_read(cl, r->control_shard, "", r->rc_known ? r->rc_seq : UINT64_MAX,
	              CONTROL_LOG_MAX, control_read, cl)) {
		r->rc_reading = true;
		r->change_reads++;
		/* the settle()s so far are served by this read */
		r->reading = r->waiting;
		r->waiting = NULL;
		return;
	}
	waiters_done(&r->waiting, -ENOTCONN);
}

static int ops_settle(void *ctx, void (*cb)(void *arg, int rc), void *arg)
{
	struct qc_cluster *cl = ctx;
	struct qc_cluster_rooms *r = &cl->rooms;
	bool out = r->rc_reading;
	struct control_waiter *w, **list;

	/* a read out now may have started before the change this waits for: the next one */
	if (!out) {
		control_catch_up(cl);
		if (!r->rc_reading)
			return -ENOTCONN;
	}
	if (!(w = malloc(sizeof(*w))))
		return -ENOMEM;
	list = out ? &r->waiting : &r->reading;
	w->cb = cb;
	w->arg = arg;
	w->next = *list;
	*list = w;
	return 0;
}

/* A change of created rooms from a node (this one included) on "qc:rc". */
static void on_control(struct qc_cluster *cl, const char *name, size_t namelen, const char *payload,
                       size_t len)
{
	struct qc_cluster_rooms *r = &cl->rooms;
	const char *change;
	char epoch[32];
	uint64_t seq;
	size_t clen;

	if (namelen)
		return; /* another channel starting "qc:rc" */
	if (parse_numbered(payload, len, &seq, epoch, &change, &clen)) {
		r->events_bad++;
		return;
	}
	/* a gap in the log this node follows: read it back first */
	if (!r->rc_reading && r->rc_known && !strcmp(epoch, r->rc_epoch) && seq > r->rc_seq + 1)
		control_catch_up(cl);
	/*
	 * while a read is out, what comes after a gap waits for it; the next change in order (or
	 * any, before the node knows where the log is) need not: applied at once
	 */
	if (r->rc_reading && !r->held.n && (!r->rc_known || strcmp(epoch, r->rc_epoch) == 0) &&
	    (!r->rc_known || seq <= r->rc_seq + 1)) {
		control_apply(cl, seq, epoch, change, clen);
		return;
	}
	if (r->rc_reading && !qc_held_push(&r->held, seq, epoch, change, clen))
		return;
	control_apply(cl, seq, epoch, change, clen);
}

/*
 * Announcing: the changes this node committed go out one at a time, in order, from an outbox.
 * One that Redis did not take (down, or past the script's deadline: not done) is answered as
 * such (the store has it; the request is not failed for it) and stays first in the outbox,
 * sent again each second until Redis takes it, with everything after it behind it: a node
 * that missed nothing of a room must not get its changes out of order.
 */
#define CONTROL_OUT_MAX 10000 /* changes waiting to be announced; more: never announced */

struct control_out {
	struct control_out *next;
	qc_room_append_cb cb; /* NULL once answered */
	void *arg;
	size_t len;
	char payload[];
};

/* Answer @o and every change after it (@rc): their requests no longer wait for Redis. */
static void out_answer(struct control_out *o, int rc)
{
	for (; o; o = o->next) {
		if (o->cb)
			o->cb(o->arg, rc, 0);
		o->cb = NULL;
	}
}

static void out_done(void *arg, int rc, uint64_t seq);

/* Send the first change waiting: 0, or < 0 when it cannot be sent now (the link is down). */
static int out_try(struct qc_cluster *cl)
{
	struct qc_cluster_rooms *r = &cl->rooms;
	int rc = log_append(cl, r->control_shard, "", ROOM_CONTROL, CONTROL_LOG_MAX,
	                    r->out->payload, r->out->len, out_done, cl);

	if (rc)
		r->out_stalled = true;
	else
		r->out_sending = true;
	return rc;
}

static void out_send(struct qc_cluster *cl)
{
	struct qc_cluster_rooms *r = &cl->rooms;

	if (!r->out || r->out_sending || cl->stopped)
		return;
	/* not sent (the link is down): answered now, sent again at the next sweep */
	if (out_try(cl))
		out_answer(r->out, -ENOTCONN);
}

static void out_done(void *arg, int rc, uint64_t seq)
{
	struct qc_cluster *cl = arg;
	struct qc_cluster_rooms *r = &cl->rooms;
	struct control_out *o = r->out;

	r->out_sending = false;
	if (!o)
		return;
	if (rc) {
		/* stalled: it and what waits behind it are answered now, and what comes until it
		 * moves; it is sent again at the next sweep */
		r->out_stalled = true;
		out_answer(o, rc);
		return;
	}
	if (o->cb)
		o->cb(o->arg, 0, seq);
	r->out_stalled = false;
	r->out = o->next;
	if (!r->out)
		r->out_tail = &r->out;
	r->nout--;
	free(o);
	out_send(cl);
}

int qc_cluster_room_announce(void *ctx, const char *payload, size_t len, qc_room_append_cb cb,
                             void *arg)
{
	struct qc_cluster *cl = ctx;
	struct qc_cluster_rooms *r = &cl->rooms;
	struct control_out *o;

	if (r->nout >= CONTROL_OUT_MAX) {
		r->changes_unsent++;
		return -ENOSPC;
	}
	if (!(o = malloc(sizeof(*o) + len)))
		return -ENOMEM;
	o->next = NULL;
	o->cb = cb;
	o->arg = arg;
	o->len = len;
	memcpy(o->payload, payload, len);
	*r->out_tail = o;
	r->out_tail = &o->next;
	r->nout++;
	/*
	 * behind a change Redis would not take, or first and not sent: the caller answers itself
	 * and the change is announced later; else its answer comes later, never inside this call
	 */
	if (r->out_stalled || (r->out == o && !r->out_sending && out_try(cl))) {
		o->cb = NULL;
		return -ENOTCONN;
	}
	return 0;
}

/* A fresh epoch for a log Redis does not have (yet): 12 random hex characters. */
static int fresh_epoch(char out[13])
{
	return qc_random_hex(out, 6);
}

/*
 * Run @s on @shard for @p (freed when it cannot run): KEYS the seq, epoch and log of the log
 * tagged @tag (a room's name, hash-tagged: together, as Redis Cluster would want; "" is the
 * log of created-room changes, no room being called that), ARGV a fresh epoch and @n more.
 */
static int log_eval(struct qc_cluster *cl, uint32_t shard, const char *room,
                    struct qc_cluster_script *s, int n, const char **more, const size_t *mlens,
                    qc_redis_reply_fn fn, struct pending_room *p)
{
	static const char *const kinds[3] = {"seq", "epoch", "log"};
	char keys[3][QC_CLUSTER_ROOM_MAX + 32], ep[13];
	const char *args[8];
	size_t lens[8];
	int i, rc = -EINVAL;

	if (strlen(room) <= QC_CLUSTER_ROOM_MAX && n <= 4 && !fresh_epoch(ep)) {
		for (i = 0; i < 3; i++) {
			snprintf(keys[i], sizeof(keys[i]), "qc:r{%s}:%s", room, kinds[i]);
			args[i] = keys[i];
			lens[i] = strlen(keys[i]);
		}
		args[3] = ep;
		lens[3] = strlen(ep);
		for (i = 0; i < n; i++) {
			args[4 + i] = more[i];
			lens[4 + i] = mlens[i];
		}
		rc = qc_cluster_eval(cl, shard, s, 3, 4 + n, args, lens, fn, p);
	}
	if (rc)
		free(p);
	return rc;
}

static void admit_done(void *ud, const redisReply *r)
{
	struct pending_room *p = ud;

	if (r && r->type == REDIS_REPLY_INTEGER)
		p->append_cb(p->arg, 0, r->integer == 1);
	else
		p->append_cb(p->arg, r ? -EIO : -ENOTCONN, 0);
	free(p);
}

int qc_cluster_room_admit(void *ctx, const char *room, const char *user, uint32_t cap,
                          const char *known, qc_room_append_cb cb, void *arg)
{
	struct qc_cluster *cl = ctx;
	char key[QC_CLUSTER_ROOM_MAX + 32], scap[16];
	const char *args[4] = {key, user, scap, known};
	struct pending_room *p;
	int rc;

	if (strlen(room) > QC_CLUSTER_ROOM_MAX)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->append_cb = cb;
	p->arg = arg;
	snprintf(key, sizeof(key), "qc:r{%s}:users", room);
	snprintf(scap, sizeof(scap), "%u", cap);
	rc = qc_cluster_eval_strs(cl, qc_cluster_shard_of(cl, room, strlen(room)), &admit_script, 1,
	                          4, args, admit_done, p);
	if (rc)
		free(p);
	return rc;
}

void qc_cluster_room_release(void *ctx, const char *room, const char *user)
{
	struct qc_cluster *cl = ctx;
	char key[QC_CLUSTER_ROOM_MAX + 32];
	const char *argv[3] = {user ? "SREM" : "DEL", key, user};
	size_t lens[3];

	if (strlen(room) > QC_CLUSTER_ROOM_MAX)
		return;
	snprintf(key, sizeof(key), "qc:r{%s}:users", room);
	lens[0] = strlen(argv[0]);
	lens[1] = strlen(key);
	lens[2] = user ? strlen(user) : 0;
	/* unanswered: a place not given back is taken again by its user's next join */
	qc_cluster_cmd(cl, qc_cluster_shard_of(cl, room, strlen(room)), NULL, NULL, user ? 3 : 2,
	               argv, lens);
}

static void append_done(void *ud, const redisReply *r)
{
	struct pending_room *p = ud;

	if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	    r->element[0]->type == REDIS_REPLY_INTEGER)
		p->append_cb(p->arg, 0, (uint64_t)r->element[0]->integer);
	else {
		if (r && r->type == REDIS_REPLY_ERROR)
			lwsl_warn("cluster: the room script failed: %s\n", r->str);
		p->append_cb(p->arg, r ? -EIO : -ENOTCONN, 0);
	}
	free(p);
}

/* Number @payload in the log tagged @tag on @shard (at most @max kept) and publish it on @chan. */
static int log_append(struct qc_cluster *cl, uint32_t shard, const char *tag, const char *chan,
                      uint32_t max, const char *payload, size_t len, qc_room_append_cb cb,
                      void *arg)
{
	char maxlen[16];
	const char *more[3] = {maxlen, chan, payload};
	size_t lens[3];
	struct pending_room *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->append_cb = cb;
	p->arg = arg;
	snprintf(maxlen, sizeof(maxlen), "%u", max);
	lens[0] = strlen(maxlen);
	lens[1] = strlen(chan);
	lens[2] = len;
	return log_eval(cl, shard, tag, &room_script, 3, more, lens, append_done, p);
}

int qc_cluster_room_append(void *ctx, const char *room, const char *payload, size_t len,
                           qc_room_append_cb cb, void *arg)
{
	struct qc_cluster *cl = ctx;
	char chan[QC_CLUSTER_ROOM_MAX + 16];

	snprintf(chan, sizeof(chan), ROOM_CHANNEL "%s", room);
	return log_append(cl, qc_cluster_shard_of(cl, room, strlen(room)), room, chan,
	                  cl->cfg->rooms.history_size, payload, len, cb, arg);
}

static void read_done(void *ud, const redisReply *r)
{
	struct pending_room *p = ud;
	struct qc_room_entry *ents = NULL;
	char epoch[32];
	size_t i, n = 0;

	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 2 || r->elements % 2 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER ||
	    r->element[1]->type != REDIS_REPLY_STRING || r->element[1]->len >= sizeof(epoch)) {
		if (r && r->type == REDIS_REPLY_ERROR)
			lwsl_warn("cluster: the room read script failed: %s\n", r->str);
		p->read_cb(p->arg, r ? -EIO : -ENOTCONN, 0, NULL, NULL, 0);
		free(p);
		return;
	}
	memcpy(epoch, r->element[1]->str, r->element[1]->len);
	epoch[r->element[1]->len] = '\0';
	if (r->elements > 2)
		ents = calloc(r->elements / 2 - 1, sizeof(*ents));
	for (i = 2; ents && i + 1 < r->elements; i += 2) {
		if (r->element[i]->type != REDIS_REPLY_INTEGER ||
		    r->element[i + 1]->type != REDIS_REPLY_STRING)
			break;
		ents[n].seq = (uint64_t)r->element[i]->integer;
		ents[n].payload = r->element[i + 1]->str;
		ents[n].len = r->element[i + 1]->len;
		n++;
	}
	p->read_cb(p->arg, 0, (uint64_t)r->element[0]->integer, epoch, ents, n);
	free(ents);
	free(p);
}

/* The position of the log tagged @tag on @shard and its newest entries after @since (at most @max).
 */
static int log_read(struct qc_cluster *cl, uint32_t shard, const char *tag, uint64_t since,
                    uint32_t max, qc_room_read_cb cb, void *arg)
{
	char from[24] = "", count[16];
	const char *more[2] = {from, count};
	size_t lens[2];
	struct pending_room *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->read_cb = cb;
	p->arg = arg;
	if (since != UINT64_MAX)
		snprintf(from, sizeof(from), "%llu", (unsigned long long)since);
	snprintf(count, sizeof(count), "%u", max);
	lens[0] = strlen(from);
	lens[1] = strlen(count);
	return log_eval(cl, shard, tag, &read_script, 2, more, lens, read_done, p);
}

int qc_cluster_room_read(void *ctx, const char *room, uint64_t since, qc_room_read_cb cb, void *arg)
{
	struct qc_cluster *cl = ctx;

	return log_read(cl, qc_cluster_shard_of(cl, room, strlen(room)), room, since,
	                cl->cfg->rooms.history_size, cb, arg);
}

static void present_done(void *ud, const redisReply *r)
{
	(void)ud;
	if (r && r->type == REDIS_REPLY_ERROR)
		lwsl_warn("cluster: the room presence write failed: %s\n", r->str);
}

/* Write this node's users in @w's room (none: @gone, or nobody here) to the presence hash. */
static void present_write(struct qc_cluster *cl, struct qc_cluster_rwatch *w, bool gone)
{
	char key[QC_CLUSTER_ROOM_MAX + 32], ttl[16];
	char *users = gone ? NULL : qc_hub_room_local_users(cl->hub, w->room);
	const char *args[4] = {key, cl->node_id, ttl, users ? users : ""};

	w->joined = false;
	snprintf(key, sizeof(key), "qc:r{%s}:on", w->room);
	snprintf(ttl, sizeof(ttl), "%u", PRESENCE_TTL_MS);
	/* unanswered: a write lost is made again by the next sweep, or expires */
	qc_cluster_eval_strs(cl, w->shard, &present_script, 1, 4, args, present_done, NULL);
	free(users);
}

static void presence_joined(lws_sorted_usec_list_t *sul)
{
	struct qc_cluster *cl = lws_container_of(sul, struct qc_cluster, rooms.sul_presence);
	struct qc_cluster_rwatch *w, *tmp;

	cl->rooms.presence_due = false;
	if (cl->stopped)
		return;
	HASH_ITER (hh, cl->rooms.watches, w, tmp)
		if (w->joined)
			present_write(cl, w, false);
}

struct pending_presence {
	qc_room_presence_cb cb;
	void *arg;
};

static void presence_done(void *ud, const redisReply *r)
{
	struct pending_presence *p = ud;
	const char **users = NULL;
	size_t i, n = 0;

	if (!r || r->type != REDIS_REPLY_ARRAY) {
		if (r && r->type == REDIS_REPLY_ERROR)
			lwsl_warn("cluster: the room presence script failed: %s\n", r->str);
		p->cb(p->arg, r ? -EIO : -ENOTCONN, NULL, 0);
		free(p);
		return;
	}
	if (r->elements && !(users = calloc(r->elements, sizeof(*users)))) {
		p->cb(p->arg, -EIO, NULL, 0);
		free(p);
		return;
	}
	for (i = 0; i < r->elements; i++)
		if (r->element[i]->type == REDIS_REPLY_STRING)
			users[n++] = r->element[i]->str;
	p->cb(p->arg, 0, users, n);
	free(users);
	free(p);
}

int qc_cluster_room_presence(void *ctx, const char *room, qc_room_presence_cb cb, void *arg)
{
	struct qc_cluster *cl = ctx;
	char key[QC_CLUSTER_ROOM_MAX + 32];
	const char *args[1] = {key};
	struct pending_presence *p;
	int rc;

	if (strlen(room) > QC_CLUSTER_ROOM_MAX)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->cb = cb;
	p->arg = arg;
	snprintf(key, sizeof(key), "qc:r{%s}:on", room);
	rc = qc_cluster_eval_strs(cl, qc_cluster_shard_of(cl, room, strlen(room)), &presence_script,
	                          1, 1, args, presence_done, p);
	if (rc)
		free(p);
	return rc;
}

void qc_cluster_room_watch(void *ctx, const char *room)
{
	struct qc_cluster *cl = ctx;
	char chan[QC_CLUSTER_ROOM_MAX + 16];
	size_t len = strlen(room);
	struct qc_cluster_rwatch *w;

	if (len > QC_CLUSTER_ROOM_MAX)
		return;
	if (!cl->rooms.presence_due) {
		cl->rooms.presence_due = true;
		lws_sul_schedule(cl->ctx, 0, &cl->rooms.sul_presence, presence_joined,
		                 PRESENCE_DELAY_MS * LWS_US_PER_MS);
	}
	HASH_FIND(hh, cl->rooms.watches, room, len, w);
	if (w) {
		w->fresh = true;
		w->joined = true;
		return;
	}
	w = calloc(1, sizeof(*w) + len + 1);
	if (!w)
		return;
	memcpy(w->room, room, len + 1);
	w->shard = qc_cluster_shard_of(cl, room, len);
	w->fresh = true;
	w->joined = true;
	snprintf(chan, sizeof(chan), ROOM_CHANNEL "%s", room);
	/* down now: subscribed when the link is back */
	if (qc_cluster_subscribe(cl, w->shard, chan, true)) {
		free(w);
		return;
	}
	HASH_ADD(hh, cl->rooms.watches, room[0], len, w);
	cl->rooms.nwatches++;
}

/*
 * Channels of rooms with no member here any more are left (lazily: once a second, and not
 * before a sweep has seen them once, so a subscribe reading the room's log keeps it).
 */
static void sweep(lws_sorted_usec_list_t *sul)
{
	struct qc_cluster *cl = lws_container_of(sul, struct qc_cluster, rooms.sul_sweep);
	char chan[QC_CLUSTER_ROOM_MAX + 16];
	struct qc_cluster_rwatch *w, *tmp;

	if (cl->stopped)
		return;
	out_send(cl); /* changes Redis did not take yet */
	/* where the log of changes is, not known yet (its first read found no command link) */
	if (!cl->rooms.rc_known && !cl->rooms.rc_reading)
		control_catch_up(cl);
	HASH_ITER (hh, cl->rooms.watches, w, tmp) {
		if (qc_hub_room_watched(cl->hub, w->room)) {
			w->fresh = false;
			present_write(cl, w, false); /* renewed; and whoever left since is gone */
			continue;
		}
		if (w->fresh) {
			w->fresh = false;
			continue;
		}
		present_write(cl, w, true);
		snprintf(chan, sizeof(chan), ROOM_CHANNEL "%s", w->room);
		qc_cluster_subscribe(cl, w->shard, chan, false);
		HASH_DEL(cl->rooms.watches, w);
		cl->rooms.nwatches--;
		free(w);
	}
	lws_sul_schedule(cl->ctx, 0, &cl->rooms.sul_sweep, sweep, WATCH_SWEEP_MS * LWS_US_PER_MS);
}

/*
 * A shard's subscriber link is up again: what its rooms' channels carried meanwhile was lost
 * here, so each watched room's log is read back from where this node's copy ends.
 */
static void catch_up(struct qc_cluster *cl, uint32_t shard)
{
	struct qc_cluster_rwatch *w, *tmp;

	if (shard == cl->rooms.control_shard)
		control_catch_up(cl);
	HASH_ITER (hh, cl->rooms.watches, w, tmp)
		if (w->shard == shard)
			qc_hub_room_catch_up(cl->hub, w->room);
}

/* Again once the SUBSCRIBEs have surely taken effect: what came between is in the logs. */
static void settled(lws_sorted_usec_list_t *sul)
{
	struct qc_cluster *cl = lws_container_of(sul, struct qc_cluster, rooms.sul_settle);

	for (uint32_t i = 0; i < cl->nshards && !cl->stopped; i++)
		if (cl->rooms.settle_shards & (1ull << (i % 64)))
			catch_up(cl, i);
	cl->rooms.settle_shards = 0;
}

static void resubscribed(struct qc_cluster *cl, uint32_t shard)
{
	catch_up(cl, shard);
	cl->rooms.settle_shards |= 1ull << (shard % 64);
	lws_sul_schedule(cl->ctx, 0, &cl->rooms.sul_settle, settled, SETTLE_MS * LWS_US_PER_MS);
}

int qc_cluster_rooms_init(struct qc_cluster *cl)
{
	qc_held_init(&cl->rooms.held, CONTROL_HELD_MAX);
	cl->rooms.out_tail = &cl->rooms.out;
	if (qc_cluster_script_add(cl, &room_script) || qc_cluster_script_add(cl, &read_script) ||
	    qc_cluster_script_add(cl, &admit_script) ||
	    qc_cluster_script_add(cl, &present_script) ||
	    qc_cluster_script_add(cl, &presence_script) ||
	    qc_cluster_listen(cl, ROOM_CHANNEL, on_event) ||
	    qc_cluster_listen(cl, ROOM_CONTROL, on_control) ||
	    qc_cluster_on_resubscribe(cl, resubscribed))
		return -1;
	cl->rooms.control_shard = qc_cluster_shard_of(cl, ROOM_CONTROL, sizeof(ROOM_CONTROL) - 1);
	return 0;
}

void qc_cluster_rooms_start(struct qc_cluster *cl)
{
	struct qc_room_broker b = {.append = qc_cluster_room_append,
	                           .read = qc_cluster_room_read,
	                           .watch = qc_cluster_room_watch,
	                           .announce = qc_cluster_room_announce,
	                           .admit = qc_cluster_room_admit,
	                           .release = qc_cluster_room_release,
	                           .presence = qc_cluster_room_presence,
	                           .settle = ops_settle,
	                           .ctx = cl};

	/* held for the node's life (again after every reconnect) */
	qc_cluster_subscribe(cl, cl->rooms.control_shard, ROOM_CONTROL, true);

	lws_sul_schedule(cl->ctx, 0, &cl->rooms.sul_sweep, sweep, WATCH_SWEEP_MS * LWS_US_PER_MS);
	qc_hub_set_room_broker(cl->hub, &b);
}

void qc_cluster_rooms_stop(struct qc_cluster *cl)
{
	if (cl->ctx) {
		lws_sul_cancel(&cl->rooms.sul_sweep);
		lws_sul_cancel(&cl->rooms.sul_presence);
		lws_sul_cancel(&cl->rooms.sul_settle);
	}
	waiters_done(&cl->rooms.reading, -ENOTCONN);
	waiters_done(&cl->rooms.waiting, -ENOTCONN);
	/* changes never announced: their requests are answered (the store has them) */
	out_answer(cl->rooms.out, -ENOTCONN);
}

void qc_cluster_rooms_free(struct qc_cluster *cl)
{
	struct qc_cluster_rwatch *w, *tmp;

	struct control_out *o;

	while ((o = cl->rooms.out)) {
		cl->rooms.out = o->next;
		free(o);
	}
	HASH_ITER (hh, cl->rooms.watches, w, tmp) {
		HASH_DEL(cl->rooms.watches, w);
		free(w);
	}
	qc_held_clear(&cl->rooms.held);
}

void qc_cluster_rooms_stats(struct qc_cluster *cl, json_t *doc)
{
	json_object_set_new(doc, "watched_rooms", json_integer((json_int_t)cl->rooms.nwatches));
	json_object_set_new(doc, "room_events_received",
	                    json_integer((json_int_t)cl->rooms.events_in));
	json_object_set_new(doc, "room_changes_received",
	                    json_integer((json_int_t)cl->rooms.changes_in));
	json_object_set_new(doc, "room_change_reads",
	                    json_integer((json_int_t)cl->rooms.change_reads));
	json_object_set_new(doc, "room_changes_lost",
	                    json_integer((json_int_t)cl->rooms.changes_lost));
	json_object_set_new(doc, "room_changes_waiting", json_integer((json_int_t)cl->rooms.nout));
	json_object_set_new(doc, "room_changes_unsent",
	                    json_integer((json_int_t)cl->rooms.changes_unsent));
	json_object_set_new(doc, "room_events_malformed",
	                    json_integer((json_int_t)cl->rooms.events_bad));
}
