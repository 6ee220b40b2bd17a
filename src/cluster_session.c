/*
 * cluster_session: users' inboxes across nodes (the inbox broker of broker.h; SPEC 2.9, 2.10).
 *
 * Each user's keys live on the user's shard, hash-tagged by the user id: the inbox's seq, its
 * epoch (made by the first node that needs it from its own random value: Redis restarted
 * empty, a new epoch), its log (a Redis Stream whose entry ids are the seqs, MAXLEN ~
 * inbox.history_size) and the user's sessions (a sorted set of session ids scored by the time,
 * on Redis' clock, after which each no longer counts). One script per entry drops the
 * sessions that expired, and when one is left numbers the entry, logs it and publishes it on
 * the user's channel; with none it logs nothing and says so (the offline queue's turn).
 *
 * A node holds the channel of every user with a session here, live or suspended, and writes
 * each such session's expiry: a suspended one sessions.ttl_s from its suspension (Redis'
 * clock), a live one sessions.ttl_s plus two refresh periods ahead, written again every
 * REFRESH_MS, so a node killed with SIGKILL leaves its sessions counted for at least
 * sessions.ttl_s (they are suspended sessions then, resumable). Entries are handed to the hub
 * in seq order; one that shows a hole (the channel was not subscribed yet, or its link was
 * down) makes the node read the log back from where its copy is.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_priv.h"
#include "quotecast/conn.h"

#define INBOX_CHANNEL "qc:u:" /* + user id */
#define NODE_CHANNEL  "qc:n:" /* + node id: session ids resumed elsewhere */
#define REFRESH_MS    5000    /* a live session's expiry is written again this often */
#define SWEEP_MS      1000
#define CHECK_MS      1000 /* a new user's log is read once this long after its channel */
#define FLUSH_MS      20   /* changed records are written this long after the first change */

/* The epoch's key is made when missing; a new epoch starts a new seq and log. */
#define EPOCH_LUA                                                                                  \
	"local ep = redis.call('GET', KEYS[3])\n"                                                  \
	"if not ep then\n"                                                                         \
	"  ep = ARGV[1]\n"                                                                         \
	"  redis.call('SET', KEYS[3], ep)\n"                                                       \
	"  redis.call('DEL', KEYS[2], KEYS[4])\n"                                                  \
	"end\n"                                                                                    \
	"local t = redis.call('TIME')\n"                                                           \
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

/*
 * One entry. KEYS the sessions, seq, epoch, log; ARGV an epoch if there is none, the log's
 * MAXLEN, the channel, the event's name, its data (JSON). Returns {0} with no session, else
 * {sessions, seq}. Publishes "<seq> <epoch> <name> <data>".
 */
static struct qc_cluster_script inbox_script = {
    .src = EPOCH_LUA
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
    "local n = redis.call('ZCARD', KEYS[1])\n"
    "if n == 0 then return {0} end\n"
    "local seq = redis.call('INCR', KEYS[2])\n"
    "redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[2], seq .. '-0', 'e', ARGV[4], 'd', ARGV[5])\n"
    "redis.call('PUBLISH', ARGV[3], seq .. ' ' .. ep .. ' ' .. ARGV[4] .. ' ' .. ARGV[5])\n"
    "return {n, seq}\n",
};

/*
 * A session is here until ARGV[3] ms from now (Redis' clock), with its record. KEYS as above
 * and the record (a hash: r the record, o its owner node); ARGV an epoch if there is none, the
 * session's member of the set ("<node>/<session id>"), the time, the record ("": none), this
 * node, "1" to take the record over from another node, the session id, this shard's index
 * (the owner listens on "qc:n:<node>:<shard>" on each shard). Returns {seq, epoch}
 * (where the inbox is), or {-1} when the record is another node's now (the session was resumed
 * there): the owner it was taken from is told on its channel.
 */
static struct qc_cluster_script write_script = {
    .src = EPOCH_LUA "local till = now + tonumber(ARGV[3])\n"
                     "if ARGV[4] ~= '' then\n"
                     "  local owner = redis.call('HGET', KEYS[5], 'o')\n"
                     "  if owner and owner ~= ARGV[5] then\n"
                     "    if ARGV[6] ~= '1' then return {-1} end\n"
                     "    redis.call('PUBLISH', '" NODE_CHANNEL
                     "' .. owner .. ':' .. ARGV[8], ARGV[7])\n"
                     "  end\n"
                     "  redis.call('HSET', KEYS[5], 'r', ARGV[4], 'o', ARGV[5])\n"
                     "  redis.call('PEXPIRE', KEYS[5], ARGV[3])\n"
                     "end\n"
                     "redis.call('ZADD', KEYS[1], till, ARGV[2])\n"
                     "if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then\n"
                     "  redis.call('PEXPIRE', KEYS[1], ARGV[3])\n"
                     "end\n"
                     "return {tonumber(redis.call('GET', KEYS[2]) or '0'), ep}\n",
};

/*
 * A session gone from here: KEYS the sessions and the record; ARGV its member, this node. The
 * record goes too while it is this node's.
 */
static struct qc_cluster_script drop_script = {
    .src = "redis.call('ZREM', KEYS[1], ARGV[1])\n"
           "if redis.call('HGET', KEYS[2], 'o') == ARGV[2] then redis.call('DEL', KEYS[2]) end\n"
           "return 0\n",
};

/*
 * Which users have no session left: KEYS their sessions. Returns the (1-based) indexes of the
 * keys with none (the expired ones dropped first, as the inbox script does).
 */
static struct qc_cluster_script absent_script = {
    .src = "local t = redis.call('TIME')\n"
           "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
           "local out = {}\n"
           "for i, k in ipairs(KEYS) do\n"
           "  redis.call('ZREMRANGEBYSCORE', k, '-inf', now)\n"
           "  if redis.call('ZCARD', k) == 0 then out[#out + 1] = i end\n"
           "end\n"
           "return out\n",
};

/*
 * A record and the inbox after a position: KEYS the record, the inbox's seq, epoch and log;
 * ARGV the seq after which entries are wanted ("": none), at most this many. Returns {0} or
 * {1, record, owner, epoch or '', last seq, entries}.
 */
static struct qc_cluster_script lookup_script = {
    .src = "local r = redis.call('HMGET', KEYS[1], 'r', 'o')\n"
           "if not r[1] then return {0} end\n"
           "local ep = redis.call('GET', KEYS[3]) or ''\n"
           "local last = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
           "local ents = {}\n"
           "if ARGV[1] ~= '' and ep ~= '' then\n"
           "  ents = redis.call('XRANGE', KEYS[4], (tonumber(ARGV[1]) + 1) .. '-0', '+', 'COUNT',"
           " ARGV[2])\n"
           "end\n"
           "return {1, r[1], r[2] or '', ep, last, ents}\n",
};

/* A user with a session here: its channel is held. */
struct qc_cluster_user {
	UT_hash_handle hh;
	uint32_t shard;
	uint32_t refs;    /* its sessions here */
	uint64_t base;    /* the inbox's seq when a session here was first written */
	int64_t check_ms; /* 0, or when to read the log back from base (a new channel) */
	bool reading;     /* a read-back of its log is under way */
	uint64_t again;   /* another one is wanted, from this seq (0: none) */
	char id[];        /* NUL-terminated */
};

/* A session here, as Redis knows it. */
struct qc_cluster_sess {
	UT_hash_handle hh;
	struct qc_cluster_user *user;
	enum qc_session_state state;
	uint64_t conn_id;
	int64_t written_ms; /* when its expiry was last written (0: never) */
	bool dirty;         /* its record changed since */
	bool take;          /* resumed here: its next write takes the record over */
	char id[QC_SESSION_ID_LEN + 1];
};

/* The keys of @user, in the scripts' order. */
struct user_keys {
	char sess[QC_USER_ID_MAX + 24], seq[QC_USER_ID_MAX + 24], ep[QC_USER_ID_MAX + 24],
	    log[QC_USER_ID_MAX + 24], rec[QC_USER_ID_MAX + QC_SESSION_ID_LEN + 24];
};

/* @user's keys; @sid (NULL: none) names the record's */
static void user_keys(struct user_keys *k, const char *user, const char *sid)
{
	snprintf(k->rec, sizeof(k->rec), "qc:{u:%s}:s:%s", user, sid ? sid : "");
	snprintf(k->sess, sizeof(k->sess), "qc:{u:%s}:sessions", user);
	snprintf(k->seq, sizeof(k->seq), "qc:{u:%s}:iseq", user);
	snprintf(k->ep, sizeof(k->ep), "qc:{u:%s}:iepoch", user);
	snprintf(k->log, sizeof(k->log), "qc:{u:%s}:ilog", user);
}

static uint32_t user_shard(struct qc_cluster *cl, const char *user)
{
	return qc_cluster_shard_of(cl, user, strlen(user));
}

/* An epoch for a log that has none yet (the script keeps the first one given). */
static void new_epoch(char *out)
{
	if (qc_random_hex(out, QC_EPOCH_LEN_HEX / 2))
		snprintf(out, QC_EPOCH_LEN_HEX + 1, "%012llx", (unsigned long long)qc_now_ms());
}

/* ---- entries ----------------------------------------------------------------------------- */

struct pending_entry {
	qc_inbox_append_cb cb;
	void *arg;
};

static void entry_done(void *ud, const redisReply *r)
{
	struct pending_entry *p = ud;
	int sessions = -ENOTCONN;
	uint64_t seq = 0;

	if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
	    r->element[0]->type == REDIS_REPLY_INTEGER) {
		sessions = (int)r->element[0]->integer;
		if (sessions > 0 && r->elements == 2 && r->element[1]->type == REDIS_REPLY_INTEGER)
			seq = (uint64_t)r->element[1]->integer;
		else if (sessions > 0)
			sessions = -EIO;
	} else if (r) {
		if (r->type == REDIS_REPLY_ERROR)
			lwsl_warn("cluster: the inbox script failed: %s\n", r->str);
		sessions = -EIO;
	}
	if (p->cb)
		p->cb(p->arg, sessions, seq);
	free(p);
}

static int inbox_append(void *ctx, const char *user, const char *name, json_t *data,
                        qc_inbox_append_cb cb, void *arg)
{
	struct qc_cluster *cl = ctx;
	char epoch[QC_EPOCH_LEN_HEX + 1], maxlen[16], chan[sizeof(INBOX_CHANNEL) + QC_USER_ID_MAX];
	struct user_keys k;
	struct pending_entry *p;
	char *payload;
	int rc;

	payload = json_dumps(data, JSON_COMPACT | JSON_REAL_PRECISION(17));
	p = payload ? calloc(1, sizeof(*p)) : NULL;
	if (!p) {
		free(payload);
		return -ENOMEM;
	}
	p->cb = cb;
	p->arg = arg;
	user_keys(&k, user, NULL);
	new_epoch(epoch);
	snprintf(maxlen, sizeof(maxlen), "%u", cl->cfg->inbox.history_size);
	snprintf(chan, sizeof(chan), INBOX_CHANNEL "%s", user);
	rc = qc_cluster_eval_strs(
	    cl, user_shard(cl, user), &inbox_script, 4, 9,
	    (const char *[]){k.sess, k.seq, k.ep, k.log, epoch, maxlen, chan, name, payload},
	    entry_done, p);
	free(payload);
	if (rc)
		free(p);
	else
		cl->sessions.appended++;
	return rc;
}

/* ---- users with no session anywhere ------------------------------------------------------ */

#define ABSENT_BATCH 32 /* users per script (qc_cluster_eval's bound on arguments) */

struct absent_batch {
	qc_inbox_absent_cb cb;
	void *arg;
	size_t n;
	char *users[ABSENT_BATCH];
};

static void absent_free(struct absent_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->users[i]);
	free(b);
}

static void absent_done(void *ud, const redisReply *r)
{
	struct absent_batch *b = ud;
	const char *out[ABSENT_BATCH];
	size_t n = 0;
	int rc = 0;

	if (!r) {
		rc = -ENOTCONN;
	} else if (r->type != REDIS_REPLY_ARRAY) {
		if (r->type == REDIS_REPLY_ERROR)
			lwsl_warn("cluster: the absent script failed: %s\n", r->str);
		rc = -EIO;
	}
	for (size_t i = 0; !rc && i < r->elements; i++) {
		long long k =
		    r->element[i]->type == REDIS_REPLY_INTEGER ? r->element[i]->integer : 0;

		if (k < 1 || (size_t)k > b->n) {
			rc = -EIO;
			break;
		}
		out[n++] = b->users[k - 1];
	}
	if (rc)
		b->cb(b->arg, rc, (const char *const *)b->users, b->n);
	else
		b->cb(b->arg, 0, out, n);
	absent_free(b);
}

/* One batch of users of @shard (their sessions' keys) to the absent script. */
static int absent_send(struct qc_cluster *cl, uint32_t shard, struct absent_batch *b)
{
	char keys[ABSENT_BATCH][QC_USER_ID_MAX + 24];
	const char *args[ABSENT_BATCH];

	for (size_t i = 0; i < b->n; i++) {
		snprintf(keys[i], sizeof(keys[i]), "qc:{u:%s}:sessions", b->users[i]);
		args[i] = keys[i];
	}
	return qc_cluster_eval_strs(cl, shard, &absent_script, (int)b->n, (int)b->n, args,
	                            absent_done, b);
}

/* @b (users @idx of the caller's) sent: 1, or 0 with them marked in @unsent; @b is the call's. */
static size_t absent_flush(struct qc_cluster *cl, uint32_t shard, struct absent_batch *b,
                           const size_t *idx, bool *unsent)
{
	if (b->n && !absent_send(cl, shard, b))
		return 1;
	for (size_t j = 0; j < b->n; j++)
		unsent[idx[j]] = true;
	absent_free(b);
	return 0;
}

static size_t ops_absent(void *ctx, const char *const *users, size_t n, qc_inbox_absent_cb cb,
                         void *arg, bool *unsent)
{
	struct qc_cluster *cl = ctx;
	size_t sent = 0, idx[ABSENT_BATCH];

	/* shard by shard, in batches: a script touches only its own shard's keys */
	for (uint32_t shard = 0; shard < cl->nshards; shard++) {
		struct absent_batch *b = NULL;

		for (size_t i = 0; i < n; i++) {
			if (user_shard(cl, users[i]) != shard)
				continue;
			if ((!b && !(b = calloc(1, sizeof(*b)))) ||
			    !(b->users[b->n] = strdup(users[i]))) {
				unsent[i] = true;
				continue;
			}
			b->cb = cb;
			b->arg = arg;
			idx[b->n++] = i;
			if (b->n == ABSENT_BATCH) {
				sent += absent_flush(cl, shard, b, idx, unsent);
				b = NULL;
			}
		}
		if (b)
			sent += absent_flush(cl, shard, b, idx, unsent);
	}
	return sent;
}

/* ---- reading a user's log back ------------------------------------------------------------- */

struct readback {
	struct qc_cluster *cl;
	char user[QC_USER_ID_MAX + 1];
};

static struct qc_cluster_user *user_find(struct qc_cluster *cl, const char *user)
{
	struct qc_cluster_user *u = NULL;

	HASH_FIND_STR(cl->sessions.users, user, u);
	return u;
}

static void read_log(struct qc_cluster *cl, struct qc_cluster_user *u, uint64_t from);

/*
 * The entries of a log as XRANGE gives them ([[id, [field, value, ...]], ...]) as
 * [[seq, name, data], ...] (new reference); *@bad counts those that did not parse.
 */
static json_t *parse_entries(const redisReply *arr, uint64_t *bad)
{
	json_t *out = json_array(), *data;
	const redisReply *e, *f;
	const char *name;
	uint64_t seq;

	for (size_t i = 0; out && i < arr->elements; i++) {
		e = arr->element[i];
		if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
		    e->element[0]->type != REDIS_REPLY_STRING ||
		    e->element[1]->type != REDIS_REPLY_ARRAY) {
			(*bad)++;
			continue;
		}
		seq = strtoull(e->element[0]->str, NULL, 10);
		f = e->element[1];
		name = NULL;
		data = NULL;
		for (size_t j = 0; j + 1 < f->elements; j += 2) {
			if (f->element[j]->type != REDIS_REPLY_STRING ||
			    f->element[j + 1]->type != REDIS_REPLY_STRING)
				continue;
			if (!strcmp(f->element[j]->str, "e"))
				name = f->element[j + 1]->str;
			else if (!strcmp(f->element[j]->str, "d") && !data)
				data = json_loadb(f->element[j + 1]->str, f->element[j + 1]->len, 0,
				                  NULL);
		}
		if (seq && name && json_is_object(data))
			json_array_append_new(out,
			                      json_pack("[I, s, O]", (json_int_t)seq, name, data));
		else
			(*bad)++;
		json_decref(data);
	}
	return out;
}

/* [epoch, [entries...]] */
static void log_read(void *ud, const redisReply *r)
{
	struct readback *rb = ud;
	struct qc_cluster *cl = rb->cl;
	struct qc_cluster_user *u = user_find(cl, rb->user);
	json_t *ents, *e;
	uint64_t again;
	size_t i;

	if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	    r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_ARRAY) {
		ents = parse_entries(r->element[1], &cl->sessions.entries_bad);
		json_array_foreach (ents, i, e)
			qc_hub_inbox_entry(cl->hub, rb->user, r->element[0]->str,
			                   (uint64_t)json_integer_value(json_array_get(e, 0)),
			                   json_string_value(json_array_get(e, 1)),
			                   json_array_get(e, 2), true);
		json_decref(ents);
	}
	free(rb);
	if (!u)
		return;
	u->reading = false;
	again = u->again;
	u->again = 0;
	if (again)
		read_log(cl, u, again);
}

/* Read @u's log in Redis from seq @from on (at most inbox.history_size entries). */
static struct qc_cluster_script read_script = {
    .src = "local ep = redis.call('GET', KEYS[1])\n"
           "if not ep then return {'', {}} end\n"
           "return {ep, redis.call('XRANGE', KEYS[2], ARGV[1] .. '-0', '+', 'COUNT', ARGV[2])}\n",
};

static void read_log(struct qc_cluster *cl, struct qc_cluster_user *u, uint64_t from)
{
	char sfrom[24], count[16];
	struct readback *rb;
	struct user_keys k;

	if (u->reading) {
		if (!u->again || from < u->again)
			u->again = from;
		return;
	}
	rb = calloc(1, sizeof(*rb));
	if (!rb)
		return;
	rb->cl = cl;
	snprintf(rb->user, sizeof(rb->user), "%s", u->id);
	user_keys(&k, u->id, NULL);
	snprintf(sfrom, sizeof(sfrom), "%" PRIu64, from ? from : 1);
	snprintf(count, sizeof(count), "%u", cl->cfg->inbox.history_size);
	if (qc_cluster_eval_strs(cl, u->shard, &read_script, 2, 4,
	                         (const char *[]){k.ep, k.log, sfrom, count}, log_read, rb)) {
		free(rb);
		return;
	}
	u->reading = true;
	cl->sessions.readbacks++;
}

/* "<seq> <epoch> <name> <data>" on "qc:u:USER", or "0" (qc_hub_offline_claim) */
static void on_entry(struct qc_cluster *cl, const char *name, size_t namelen, const char *payload,
                     size_t len)
{
	char user[QC_USER_ID_MAX + 1], epoch[QC_EPOCH_LEN_HEX + 1], ev[32];
	const char *p = payload, *end = payload + len, *sp;
	struct qc_cluster_user *u;
	unsigned long long seq;
	uint64_t at;
	json_t *data;

	if (!namelen || namelen >= sizeof(user))
		goto bad;
	memcpy(user, name, namelen);
	user[namelen] = '\0';
	/* "0": offline messages of the user were stored (qc_hub_offline_claim) */
	if (len == 1 && p[0] == '0') {
		qc_hub_offline_claim(cl->hub, user);
		return;
	}
	seq = strtoull(p, NULL, 10);
	sp = memchr(p, ' ', len);
	if (!seq || !sp || end - sp < QC_EPOCH_LEN_HEX + 3 || sp[QC_EPOCH_LEN_HEX + 1] != ' ')
		goto bad;
	memcpy(epoch, sp + 1, QC_EPOCH_LEN_HEX);
	epoch[QC_EPOCH_LEN_HEX] = '\0';
	p = sp + QC_EPOCH_LEN_HEX + 2;
	sp = memchr(p, ' ', (size_t)(end - p));
	if (!sp || sp == p || (size_t)(sp - p) >= sizeof(ev))
		goto bad;
	memcpy(ev, p, (size_t)(sp - p));
	ev[sp - p] = '\0';
	data = json_loadb(sp + 1, (size_t)(end - sp - 1), 0, NULL);
	if (!json_is_object(data)) {
		json_decref(data);
		goto bad;
	}
	cl->sessions.entries_in++;
	u = user_find(cl, user);
	at = qc_hub_inbox_entry(cl->hub, user, epoch, seq, ev, data, false);
	json_decref(data);
	/* entries before it are missing here: from the log in Redis, in order */
	if (at && u)
		read_log(cl, u, at + 1);
	return;
bad:
	cl->sessions.entries_bad++;
}

/* ---- where the sessions are -------------------------------------------------------------- */

struct seen_call {
	struct qc_cluster *cl;
	char user[QC_USER_ID_MAX + 1];
	char sid[QC_SESSION_ID_LEN + 1];
};

static struct qc_cluster_sess *sess_find(struct qc_cluster *cl, const char *sid)
{
	struct qc_cluster_sess *s = NULL;

	HASH_FIND_STR(cl->sessions.sess, sid, s);
	return s;
}

/* {seq, epoch}, or {-1}: the session was resumed on another node */
static void seen_done(void *ud, const redisReply *r)
{
	struct seen_call *sc = ud;
	struct qc_cluster_user *u = user_find(sc->cl, sc->user);

	if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
	    r->element[0]->type == REDIS_REPLY_INTEGER && r->element[0]->integer == -1) {
		if (sess_find(sc->cl, sc->sid))
			qc_hub_session_replaced(sc->cl->hub, sc->sid);
	} else if (u && r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	           r->element[0]->type == REDIS_REPLY_INTEGER &&
	           r->element[1]->type == REDIS_REPLY_STRING) {
		if (!u->base && !u->check_ms) {
			u->base = (uint64_t)r->element[0]->integer;
			u->check_ms = qc_now_ms() + CHECK_MS;
		}
		qc_hub_inbox_base(sc->cl->hub, sc->user, r->element[1]->str,
		                  (uint64_t)r->element[0]->integer);
	}
	free(sc);
}

/* Write @s's expiry and record: 0, or -1 when it could not be sent (the sweep tries again). */
static int sess_write(struct qc_cluster *cl, struct qc_cluster_sess *s)
{
	char epoch[QC_EPOCH_LEN_HEX + 1], ms[24],
	    member[sizeof(cl->node_id) + QC_SESSION_ID_LEN + 2];
	uint64_t ttl = (uint64_t)cl->cfg->sessions.ttl_s * 1000;
	struct seen_call *sc = calloc(1, sizeof(*sc));
	json_t *rec = qc_hub_session_record(cl->hub, s->conn_id);
	char *jrec = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
	struct user_keys k;
	char shard[12];
	int rc;

	json_decref(rec);
	if (!sc) {
		free(jrec);
		return -1;
	}
	sc->cl = cl;
	snprintf(sc->user, sizeof(sc->user), "%s", s->user->id);
	snprintf(sc->sid, sizeof(sc->sid), "%s", s->id);
	user_keys(&k, s->user->id, s->id);
	new_epoch(epoch);
	snprintf(ms, sizeof(ms), "%" PRIu64,
	         s->state == QC_SESSION_LIVE ? ttl + 2 * REFRESH_MS : (ttl ? ttl : 1));
	snprintf(member, sizeof(member), "%s/%s", cl->node_id, s->id);
	snprintf(shard, sizeof(shard), "%u", s->user->shard);
	rc = qc_cluster_eval_strs(cl, s->user->shard, &write_script, 5, 13,
	                          (const char *[]){k.sess, k.seq, k.ep, k.log, k.rec, epoch, member,
	                                           ms, jrec ? jrec : "", cl->node_id,
	                                           s->take ? "1" : "0", s->id, shard},
	                          seen_done, sc);
	free(jrec);
	if (rc) {
		free(sc);
		s->written_ms = 0;
		return -1;
	}
	s->written_ms = qc_now_ms();
	if (s->dirty)
		cl->sessions.ndirty--;
	s->dirty = false;
	s->take = false;
	cl->sessions.writes++;
	return 0;
}

static void user_release(struct qc_cluster *cl, struct qc_cluster_user *u)
{
	char chan[sizeof(INBOX_CHANNEL) + QC_USER_ID_MAX];

	if (--u->refs)
		return;
	snprintf(chan, sizeof(chan), INBOX_CHANNEL "%s", u->id);
	qc_cluster_subscribe(cl, u->shard, chan, false);
	HASH_DEL(cl->sessions.users, u);
	cl->sessions.nusers--;
	free(u);
}

static struct qc_cluster_user *user_hold(struct qc_cluster *cl, const char *user)
{
	char chan[sizeof(INBOX_CHANNEL) + QC_USER_ID_MAX];
	struct qc_cluster_user *u = user_find(cl, user);
	size_t len = strlen(user);

	if (u) {
		u->refs++;
		return u;
	}
	u = calloc(1, sizeof(*u) + len + 1);
	if (!u)
		return NULL;
	memcpy(u->id, user, len + 1);
	u->shard = user_shard(cl, user);
	u->refs = 1;
	snprintf(chan, sizeof(chan), INBOX_CHANNEL "%s", user);
	if (qc_cluster_subscribe(cl, u->shard, chan, true)) {
		free(u);
		return NULL;
	}
	HASH_ADD_STR(cl->sessions.users, id, u);
	cl->sessions.nusers++;
	return u;
}

static void ignore(void *ud, const redisReply *r)
{
	(void)ud;
	(void)r;
}

static void sess_gone(struct qc_cluster *cl, struct qc_cluster_sess *s)
{
	char member[sizeof(cl->node_id) + QC_SESSION_ID_LEN + 2];
	struct user_keys k;

	user_keys(&k, s->user->id, s->id);
	snprintf(member, sizeof(member), "%s/%s", cl->node_id, s->id);
	qc_cluster_eval_strs(cl, s->user->shard, &drop_script, 2, 4,
	                     (const char *[]){k.sess, k.rec, member, cl->node_id}, ignore, NULL);
	user_release(cl, s->user);
	if (s->dirty)
		cl->sessions.ndirty--;
	HASH_DEL(cl->sessions.sess, s);
	cl->sessions.nsess--;
	free(s);
}

static void flush(lws_sorted_usec_list_t *sul);

static void ops_session(void *ctx, const char *user, const char *session_id, uint64_t conn_id,
                        enum qc_session_state state, bool take)
{
	struct qc_cluster *cl = ctx;
	struct qc_cluster_sess *s = sess_find(cl, session_id);
	bool fresh = !s;

	if (cl->stopped)
		return;
	if (state == QC_SESSION_GONE) {
		if (s)
			sess_gone(cl, s);
		return;
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s || strlen(session_id) > QC_SESSION_ID_LEN ||
		    !(s->user = user_hold(cl, user))) {
			free(s);
			return;
		}
		snprintf(s->id, sizeof(s->id), "%s", session_id);
		HASH_ADD_STR(cl->sessions.sess, id, s);
		cl->sessions.nsess++;
	}
	s->conn_id = conn_id;
	s->take = s->take || take;
	/*
	 * A new session, a suspension, a take-over and a change FLUSH_MS or more after the last
	 * write are written at once; changes closer together go together, FLUSH_MS after the first
	 * (a bound on the writes of a session that changes often).
	 */
	if (fresh || take || s->state != state ||
	    (!s->dirty && qc_now_ms() - s->written_ms >= FLUSH_MS)) {
		s->state = state;
		sess_write(cl, s);
		return;
	}
	if (!s->dirty && !cl->sessions.flush_due) {
		cl->sessions.flush_due = true;
		lws_sul_schedule(cl->ctx, 0, &cl->sessions.sul_flush, flush,
		                 FLUSH_MS * LWS_US_PER_MS);
	}
	if (!s->dirty)
		cl->sessions.ndirty++;
	s->dirty = true;
}

static void flush(lws_sorted_usec_list_t *sul)
{
	struct qc_cluster *cl = lws_container_of(sul, struct qc_cluster, sessions.sul_flush);
	struct qc_cluster_sess *s, *tmp;

	cl->sessions.flush_due = false;
	if (cl->stopped)
		return;
	HASH_ITER (hh, cl->sessions.sess, s, tmp)
		if (s->dirty)
			sess_write(cl, s);
}

/* ---- resume on another node -------------------------------------------------------------- */

struct lookup_call {
	qc_session_found_cb cb;
	void *arg;
};

/* {0} or {1, record, owner, epoch, last, [[id, [field, value, ...]], ...]} */
static void looked_up(void *ud, const redisReply *r)
{
	struct lookup_call *lc = ud;
	json_t *rec = NULL, *ents = NULL;
	uint64_t bad = 0;

	if (!r || r->type != REDIS_REPLY_ARRAY || !r->elements ||
	    r->element[0]->type != REDIS_REPLY_INTEGER) {
		if (r && r->type == REDIS_REPLY_ERROR)
			lwsl_warn("cluster: the session lookup failed: %s\n", r->str);
		lc->cb(lc->arg, r ? -EIO : -ENOTCONN, NULL, "", 0, NULL);
		goto out;
	}
	if (!r->element[0]->integer || r->elements != 6 ||
	    r->element[1]->type != REDIS_REPLY_STRING ||
	    r->element[3]->type != REDIS_REPLY_STRING ||
	    r->element[4]->type != REDIS_REPLY_INTEGER ||
	    r->element[5]->type != REDIS_REPLY_ARRAY ||
	    !(rec = json_loadb(r->element[1]->str, r->element[1]->len, 0, NULL))) {
		lc->cb(lc->arg, 0, NULL, "", 0, NULL);
		goto out;
	}
	ents = parse_entries(r->element[5], &bad);
	lc->cb(lc->arg, 1, rec, r->element[3]->str, (uint64_t)r->element[4]->integer, ents);
out:
	json_decref(rec);
	json_decref(ents);
	free(lc);
}

static int ops_lookup(void *ctx, const char *user, const char *session_id, int64_t inbox_since,
                      qc_session_found_cb cb, void *arg)
{
	struct qc_cluster *cl = ctx;
	struct lookup_call *lc = calloc(1, sizeof(*lc));
	char since[24], count[16];
	struct user_keys k;
	int rc;

	if (!lc)
		return -ENOMEM;
	lc->cb = cb;
	lc->arg = arg;
	user_keys(&k, user, session_id);
	if (inbox_since >= 0)
		snprintf(since, sizeof(since), "%" PRId64, inbox_since);
	else
		since[0] = '\0';
	snprintf(count, sizeof(count), "%u", cl->cfg->inbox.history_size);
	rc = qc_cluster_eval_strs(cl, user_shard(cl, user), &lookup_script, 4, 6,
	                          (const char *[]){k.rec, k.seq, k.ep, k.log, since, count},
	                          looked_up, lc);
	if (rc)
		free(lc);
	return rc;
}

static void ops_poke(void *ctx, const char *user)
{
	struct qc_cluster *cl = ctx;
	char chan[sizeof(INBOX_CHANNEL) + QC_USER_ID_MAX];
	const char *argv[3] = {"PUBLISH", chan, "0"};
	size_t lens[3];

	snprintf(chan, sizeof(chan), INBOX_CHANNEL "%s", user);
	lens[0] = 7;
	lens[1] = strlen(chan);
	lens[2] = 1;
	qc_cluster_cmd(cl, user_shard(cl, user), ignore, NULL, 3, argv, lens);
}

/* "<session id>" on "qc:n:<this node>:<shard>": resumed on another node, so it goes here */
static void on_node(struct qc_cluster *cl, const char *name, size_t namelen, const char *payload,
                    size_t len)
{
	size_t idlen = strlen(cl->node_id);
	char sid[QC_SESSION_ID_LEN + 1];

	if (namelen <= idlen || memcmp(name, cl->node_id, idlen) || name[idlen] != ':' ||
	    len != QC_SESSION_ID_LEN)
		return;
	memcpy(sid, payload, len);
	sid[len] = '\0';
	if (sess_find(cl, sid))
		qc_hub_session_replaced(cl->hub, sid);
}

/* Once a second: live sessions' expiry written again, new users' logs read once. */
static void sweep(lws_sorted_usec_list_t *sul)
{
	struct qc_cluster *cl = lws_container_of(sul, struct qc_cluster, sessions.sul_sweep);
	uint32_t budget = cl->cfg->cluster.max_inflight / 4 + 1;
	struct qc_cluster_sess *s, *stmp;
	struct qc_cluster_user *u, *utmp;
	int64_t now = qc_now_ms();

	if (cl->stopped)
		return;
	HASH_ITER (hh, cl->sessions.sess, s, stmp) {
		if (!budget)
			break;
		if (s->state != QC_SESSION_LIVE && s->written_ms)
			continue;
		if (s->written_ms && now - s->written_ms < REFRESH_MS)
			continue;
		budget--;
		sess_write(cl, s);
	}
	HASH_ITER (hh, cl->sessions.users, u, utmp) {
		if (u->check_ms > 0 && u->check_ms <= now) {
			u->check_ms = -1; /* once */
			read_log(cl, u, u->base + 1);
		}
	}
	lws_sul_schedule(cl->ctx, 0, &cl->sessions.sul_sweep, sweep, SWEEP_MS * LWS_US_PER_MS);
}

int qc_cluster_sessions_init(struct qc_cluster *cl)
{
	if (qc_cluster_script_add(cl, &inbox_script) || qc_cluster_script_add(cl, &write_script) ||
	    qc_cluster_script_add(cl, &drop_script) || qc_cluster_script_add(cl, &lookup_script) ||
	    qc_cluster_script_add(cl, &read_script) || qc_cluster_script_add(cl, &absent_script) ||
	    qc_cluster_listen(cl, INBOX_CHANNEL, on_entry) ||
	    qc_cluster_listen(cl, NODE_CHANNEL, on_node))
		return -1;
	return 0;
}

void qc_cluster_sessions_start(struct qc_cluster *cl)
{
	struct qc_inbox_broker b = {.append = inbox_append,
	                            .session = ops_session,
	                            .lookup = ops_lookup,
	                            .poke = ops_poke,
	                            .absent = ops_absent,
	                            .ctx = cl};
	char chan[sizeof(NODE_CHANNEL) + sizeof(cl->node_id) + 12];
	uint32_t i;

	qc_hub_set_inbox_broker(cl->hub, &b);
	/* this node's own channel on each shard: its sessions resumed elsewhere */
	for (i = 0; i < cl->nshards; i++) {
		snprintf(chan, sizeof(chan), NODE_CHANNEL "%s:%u", cl->node_id, i);
		qc_cluster_subscribe(cl, i, chan, true);
	}
	lws_sul_schedule(cl->ctx, 0, &cl->sessions.sul_sweep, sweep, SWEEP_MS * LWS_US_PER_MS);
}

void qc_cluster_sessions_stop(struct qc_cluster *cl)
{
	if (cl->ctx) {
		lws_sul_cancel(&cl->sessions.sul_sweep);
		lws_sul_cancel(&cl->sessions.sul_flush);
	}
}

void qc_cluster_sessions_free(struct qc_cluster *cl)
{
	struct qc_cluster_sess *s, *stmp;
	struct qc_cluster_user *u, *utmp;

	HASH_ITER (hh, cl->sessions.sess, s, stmp) {
		HASH_DEL(cl->sessions.sess, s);
		free(s);
	}
	HASH_ITER (hh, cl->sessions.users, u, utmp) {
		HASH_DEL(cl->sessions.users, u);
		free(u);
	}
}

void qc_cluster_sessions_stats(struct qc_cluster *cl, json_t *doc)
{
	const struct qc_cluster_sessions *ss = &cl->sessions;

	json_object_set_new(
	    doc, "inboxes",
	    json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "users", (json_int_t)ss->nusers,
	              "sessions", (json_int_t)ss->nsess, "appended", (json_int_t)ss->appended,
	              "received", (json_int_t)ss->entries_in, "malformed",
	              (json_int_t)ss->entries_bad, "readbacks", (json_int_t)ss->readbacks,
	              "session_writes", (json_int_t)ss->writes, "session_writes_due",
	              (json_int_t)ss->ndirty));
}
