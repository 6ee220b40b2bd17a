/*
 * hub_room: rooms in the hub. Implicit rooms (made by a first subscribe: public, ownerless,
 * gone with their last subscriber) and rooms made with create_room, which carry an owner, a
 * type, a status, a capacity in users, metadata, a password hash and user-level members with
 * roles (struct room_info, hung on the index's room as its ext). Who may do what is asked of
 * acl.c; this file applies the answers: subscriptions, sends with targeting, member
 * management, direct messages, and the events they cause.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hub_priv.h"
#include "quotecast/held.h"
#include "quotecast/acl.h"
#include "quotecast/auth.h"

#define CAPACITY_MAX     100000 /* the largest capacity (max_members) a room may ask for */
#define METADATA_MAX     4096   /* bytes of a room's metadata, serialised (docs/protocol.md) */
#define LIST_DEFAULT     100
#define LIST_MAX         1000
#define TARGET_USERS_MAX 1000

struct member {
	char user_id[QC_USER_ID_MAX + 1];
	enum qc_role role;
	int64_t since;
	struct qc_omember om; /* its place in the room's offline log (hub_offline.c) */
	UT_hash_handle hh;
};

struct room_info {
	char owner[QC_USER_ID_MAX + 1];
	enum qc_room_type type;
	enum qc_room_status status;
	uint32_t max_members; /* capacity in users; 0 = only rooms.max_members */
	json_t *metadata;     /* an object */
	char password[QC_PASSWORD_HASH_MAX];
	uint64_t message_count;
	int64_t created_at;
	int64_t last_activity;
	struct member *members; /* uthash by user id */
	uint32_t nmembers;
	uint32_t joining;    /* members being added: the store has not answered yet */
	struct qc_olog *log; /* room messages waiting for offline members (hub_offline.c) */
};

/* The rooms a user owns and is making, for rooms.max_per_owner. */
struct qc_room_owner {
	char user_id[QC_USER_ID_MAX + 1];
	uint32_t rooms;   /* made (or loaded at start) and not deleted */
	uint32_t pending; /* create_room requests the store has not settled yet */
	UT_hash_handle hh;
};

static struct room_info *info_of(const struct qc_room *r)
{
	return qc_room_ext(r);
}

/* A number kept in a commit's arguments: an integer, or its decimal text. */
static int64_t num_of(json_t *v)
{
	return json_is_string(v) ? strtoll(json_string_value(v), NULL, 10) : json_integer_value(v);
}

static struct member *member_find(const struct room_info *ri, const char *user)
{
	struct member *m = NULL;

	HASH_FIND_STR(ri->members, user, m);
	return m;
}

static enum qc_role role_of(const struct room_info *ri, const char *user)
{
	struct member *m = member_find(ri, user);

	return m ? m->role : QC_ROLE_NONE;
}

/* A server admin may do anything in any room. */
static enum qc_role effective_role(const struct room_info *ri, const struct qc_conn *c)
{
	if (c->roles & QC_ROLE_ADMIN)
		return QC_ROLE_OWNER;
	return role_of(ri, c->user_id);
}

static int member_add(struct room_info *ri, const char *user, enum qc_role role, int64_t since)
{
	struct member *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	snprintf(m->user_id, sizeof(m->user_id), "%s", user);
	m->role = role;
	m->since = since;
	if (qc_olog_join(ri->log, &m->om, user, (uint8_t)role, since)) {
		free(m);
		return -ENOMEM;
	}
	HASH_ADD_STR(ri->members, user_id, m);
	ri->nmembers++;
	return 0;
}

static void member_del(struct room_info *ri, struct member *m)
{
	qc_olog_leave(&m->om);
	HASH_DEL(ri->members, m);
	free(m);
	ri->nmembers--;
}

static void info_free(struct room_info *ri)
{
	struct member *m, *tmp;

	if (!ri)
		return;
	/* what waited for the room's offline members goes with it */
	qc_olog_free(ri->log);
	HASH_ITER (hh, ri->members, m, tmp)
		member_del(ri, m);
	json_decref(ri->metadata);
	free(ri);
}

/* ---- bounds ------------------------------------------------------------------------------ */

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint32_t owned(const struct qc_hub *h, const char *user)
{
	struct qc_room_owner *o = NULL;

	HASH_FIND_STR(h->room_owners, user, o);
	return o ? o->rooms + o->pending : 0;
}

/* One more room of @user: made or loaded, or (@pending) being made until it is settled. */
static int owner_add(struct qc_hub *h, const char *user, bool pending)
{
	struct qc_room_owner *o = NULL;

	HASH_FIND_STR(h->room_owners, user, o);
	if (!o) {
		o = calloc(1, sizeof(*o));
		if (!o)
			return -ENOMEM;
		snprintf(o->user_id, sizeof(o->user_id), "%s", user);
		HASH_ADD_STR(h->room_owners, user_id, o);
	}
	if (pending) {
		o->pending++;
		h->rooms_pending++;
	} else {
		o->rooms++;
		h->created_rooms++;
	}
	return 0;
}

/* One room of @user fewer: deleted, or (@pending) a request settled. */
static void owner_drop(struct qc_hub *h, const char *user, bool pending)
{
	struct qc_room_owner *o = NULL;
	uint32_t *mine, *all = pending ? &h->rooms_pending : &h->created_rooms;

	if (*all)
		(*all)--;
	HASH_FIND_STR(h->room_owners, user, o);
	if (!o)
		return;
	mine = pending ? &o->pending : &o->rooms;
	if (*mine)
		(*mine)--;
	if (!o->rooms && !o->pending) {
		HASH_DEL(h->room_owners, o);
		free(o);
	}
}

/*
 * May @ri take one more user-level member? Its own capacity (ROOM_FULL) and the server's
 * rooms.max_members (LIMIT_EXCEEDED) both count the members still being added, so requests
 * in flight to the store cannot overshoot either.
 */
static enum qc_err member_slot(struct qc_hub *h, const struct room_info *ri, const char **emsg)
{
	uint64_t n = (uint64_t)ri->nmembers + ri->joining;

	if (ri->max_members && n >= ri->max_members)
		return qc_hub_fail(h, emsg, QC_E_ROOM_FULL, "room is at capacity (%u users)",
		                   ri->max_members);
	if (n >= h->cfg->rooms.max_members)
		return qc_hub_limit(h, emsg, QC_LIM_MEMBERS_PER_ROOM, "%u members in the room",
		                    h->cfg->rooms.max_members);
	return QC_OK;
}

/* A membership request is settled (made or not): its reserved place goes. */
static void join_settled(struct qc_hub *h, json_t *args)
{
	struct qc_room *room =
	    qc_rooms_find(h->rooms, json_string_value(json_object_get(args, "room")));
	struct room_info *ri = room ? info_of(room) : NULL;

	if (ri && ri->joining)
		ri->joining--;
}

/*
 * One PBKDF2 computation (~4 ms of the loop) from the server's rooms.password_hashes_per_s
 * budget; false (counted, *@emsg set) when it is spent. The bucket holds one: hashes are
 * spread out, never two back to back, so no client waits behind more than one.
 */
static bool hash_budget(struct qc_hub *h, int64_t now, const char **emsg)
{
	if (qc_rate_take(&h->pw_budget, h->cfg->rooms.password_hashes_per_s, 1, now))
		return true;
	qc_hub_limit(h, emsg, QC_LIM_PASSWORD_HASHES,
	             "too many room passwords to check on the server now: try again shortly");
	return false;
}

/*
 * Check the password @c gives for protected @room. A user who gave rooms.password_attempts
 * wrong ones for this room within rooms.password_window_s is refused (RATE_LIMITED) without
 * a check until the window ends, the right password included; every check also takes one
 * hash from the server's budget.
 */
static enum qc_err check_password(struct qc_hub *h, struct qc_conn *c, struct qc_room *room,
                                  const char *password, const char **emsg)
{
	const struct room_info *ri = info_of(room);
	uint32_t max = h->cfg->rooms.password_attempts;
	uint32_t window = h->cfg->rooms.password_window_s * 1000;
	int64_t now = mono_ms(), wait;

	if (!password)
		return qc_hub_fail(h, emsg, QC_E_WRONG_PASSWORD, "wrong or missing password");
	wait = qc_throttle_check(h->pw_fails, c->user_id, qc_room_name(room), max, window, now);
	if (wait) {
		qc_hub_limit(h, emsg, QC_LIM_PASSWORD_ATTEMPTS,
		             "%u wrong passwords for this room: try again in %" PRId64 " s", max,
		             (wait + 999) / 1000);
		return QC_E_RATE_LIMITED;
	}
	if (!hash_budget(h, now, emsg))
		return QC_E_RATE_LIMITED;
	if (!qc_password_check(password, ri->password)) {
		qc_throttle_fail(h->pw_fails, c->user_id, qc_room_name(room), window, now);
		return qc_hub_fail(h, emsg, QC_E_WRONG_PASSWORD, "wrong or missing password");
	}
	qc_throttle_clear(h->pw_fails, c->user_id, qc_room_name(room));
	return QC_OK;
}

int qc_hub_rooms_init(struct qc_hub *h)
{
	qc_rooms_set_log_free(h->rooms, qc_log_free_void);
	uint32_t rate = h->cfg->rooms.password_hashes_per_s;
	/* twice the failures one window can hold: live records are never evicted */
	uint64_t records = 2 * (uint64_t)rate * h->cfg->rooms.password_window_s;
	char seed[17];

	if (qc_random_hex(seed, 8))
		return -EIO;
	h->pw_fails = qc_throttle_new(records < UINT32_MAX ? (uint32_t)records : UINT32_MAX,
	                              strtoull(seed, NULL, 16));
	if (!h->pw_fails)
		return -ENOMEM;
	qc_rate_init(&h->pw_budget, 1, mono_ms());
	return 0;
}

/* ---- events ------------------------------------------------------------------------------ */

static bool in_users(json_t *users, const char *user)
{
	json_t *v;
	size_t i;

	json_array_foreach (users, i, v)
		if (!strcmp(json_string_value(v), user))
			return true;
	return false;
}

/* The log of @room (made on first use: memory only, a new epoch); NULL on ENOMEM. */
static struct qc_log *room_log(struct qc_hub *h, struct qc_room *room)
{
	struct qc_log *l = qc_room_log(room);

	if (!l) {
		l = qc_log_new(h, QC_LOG_ROOM, h->cfg->rooms.history_size,
		               h->cfg->rooms.history_ttl_s, NULL, 0);
		qc_room_set_log(room, l);
	}
	return l;
}

/* Whether log entry @e of @room was addressed to @c (its targeting, roles as they are now). */
static bool addressed(const struct qc_room *room, const struct qc_lentry *e,
                      const struct qc_conn *c)
{
	const struct room_info *ri = info_of(room);

	if (e->exclude && e->exclude == c->id)
		return false;
	if (e->targets && !in_users(e->targets, c->user_id))
		return false;
	if (e->role != QC_ROLE_NONE && (!ri || role_of(ri, c->user_id) != e->role))
		return false;
	return true;
}

static const char sql_history[] =
    "INSERT INTO room_history (room, seq, event, data, target_role, target_users, created_at)"
    " VALUES ($1, $2::bigint, $3, $4::json, $5, $6::json, $7::bigint) ON CONFLICT DO NOTHING";
static const char sql_history_trim[] =
    "DELETE FROM room_history WHERE room = $1 AND seq <= $2::bigint";
static const char sql_log_epoch[] = "UPDATE rooms SET log_epoch = $2 WHERE name = $1";

/* Trim a created room's stored log this often (entries), keeping rooms.history_size. */
#define HISTORY_TRIM_EVERY 64

/* A created room's log entry goes to the store too: read-back after a restart (SPEC 2.9). */
static void persist_entry(struct qc_hub *h, struct qc_room *room, const char *name,
                          const struct qc_lentry *e)
{
	json_t *data = json_object_get(e->f.ev, "data");
	char seq[24], now[24], *jdata, *tlist;

	/* in a cluster the room's log is Redis' (cluster_room.c) */
	if (!info_of(room) || !qc_hub_persistent(h) || h->loading || h->room_broker.append)
		return;
	jdata = json_dumps(data, QC_JSON_DUMP);
	tlist = e->targets ? json_dumps(e->targets, JSON_COMPACT) : NULL;
	if (jdata) {
		const char *params[] = {qc_room_name(room),
		                        seq,
		                        name,
		                        jdata,
		                        e->role != QC_ROLE_NONE ? qc_role_name(e->role) : NULL,
		                        tlist,
		                        now};

		snprintf(seq, sizeof(seq), "%" PRIu64, e->seq);
		snprintf(now, sizeof(now), "%" PRId64, qc_now_ms());
		qc_hub_store_write(h, sql_history, 7, params);
	}
	free(jdata);
	free(tlist);
	if (e->seq % HISTORY_TRIM_EVERY == 0 && e->seq > h->cfg->rooms.history_size) {
		const char *params[] = {qc_room_name(room), seq};

		snprintf(seq, sizeof(seq), "%" PRIu64, e->seq - h->cfg->rooms.history_size);
		qc_hub_store_write(h, sql_history_trim, 2, params);
	}
}

/* The epoch of created room @room's log goes to its row. */
static void persist_epoch(struct qc_hub *h, struct qc_room *room)
{
	struct qc_log *l = room_log(h, room);
	const char *params[2];

	if (!l || !qc_hub_persistent(h) || h->room_broker.append)
		return;
	params[0] = qc_room_name(room);
	params[1] = l->epoch;
	qc_hub_store_write(h, sql_log_epoch, 2, params);
}

/* Append event @name with @data (stolen) to @room's log (and the store's). NULL on ENOMEM. */
static struct qc_lentry *log_append(struct qc_hub *h, struct qc_room *room, const char *name,
                                    json_t *data, json_t *targets, uint8_t role, uint64_t exclude)
{
	struct qc_log *l = data ? room_log(h, room) : NULL;
	struct qc_lentry *e;

	if (!l) {
		json_decref(data);
		return NULL;
	}
	e = qc_log_append(l, name, data, targets, role, exclude);
	if (e)
		persist_entry(h, room, name, e);
	return e;
}

/*
 * Append event @name with @data (stolen) to @room's log and queue it for every connection in
 * @room that it is addressed to, encoded once. Returns the entry, NULL on ENOMEM.
 */
static uint32_t fan_out(struct qc_hub *h, struct qc_room *room, struct qc_lentry *e);

static struct qc_lentry *room_append(struct qc_hub *h, struct qc_room *room, const char *name,
                                     json_t *data, json_t *targets, uint8_t role, uint64_t exclude,
                                     uint32_t *delivered)
{
	struct qc_lentry *e = log_append(h, room, name, data, targets, role, exclude);
	uint32_t n;

	if (!e)
		return NULL;
	n = fan_out(h, room, e);
	if (delivered)
		*delivered += n;
	return e;
}

/* Queue log entry @e of @room for every connection in it that it is addressed to. */
static uint32_t fan_out(struct qc_hub *h, struct qc_room *room, struct qc_lentry *e)
{
	uint32_t delivered = 0;

	for (struct qc_membership *mb = qc_room_members(room); mb; mb = mb->room_next) {
		struct qc_conn *c = mb->conn;

		if (!addressed(room, e, c))
			continue;
		/*
		 * a suspended session keeps its position, not a copy (it reads the log back); a
		 * Socket.IO one keeps its own history (hub_sio.c)
		 */
		if (c->suspended && !c->sio)
			continue;
		mb->seq = e->seq;
		if (!qc_hub_send_frames(h, c, &e->f))
			delivered++;
	}
	if (qc_frames_get(h, &e->f, QC_ENC_NATIVE))
		qc_log_compact(e);
	return delivered;
}

static int broker_append(struct qc_hub *h, struct qc_room *room, const char *name, json_t *data,
                         json_t *targets, uint8_t role, uint64_t exclude, qc_room_append_cb cb,
                         void *arg);

static void event_appended(void *arg, int rc, uint64_t seq)
{
	struct qc_hub *h = arg;

	(void)seq;
	if (rc)
		h->room_events_lost++;
}

/*
 * Queue event @name (static) with @data (stolen) for every connection in @room, through its
 * log; in a cluster, through the broker's (fanned out as it comes back on every node).
 */
static void room_event(struct qc_hub *h, struct qc_room *room, const char *name, json_t *data)
{
	if (h->room_broker.append)
		broker_append(h, room, name, data, NULL, QC_ROLE_NONE, 0, event_appended, h);
	else
		room_append(h, room, name, data, NULL, QC_ROLE_NONE, 0, NULL);
}

/*
 * Queue frames @f (an entry of @room's log) for every connection of @user; a suspended one in
 * the room gets it from the log when it leaves the room (qc_hub_leave_room).
 */
static uint32_t user_frames(struct qc_hub *h, const char *user, struct qc_room *room,
                            struct qc_frames *f)
{
	struct qc_user *u = qc_conns_user(&h->conns, user);
	uint32_t n = 0;

	for (struct qc_conn *c = u ? u->conns : NULL; c; c = c->user_next) {
		if (c->suspended && !c->sio && qc_room_set_has(&c->rooms, room))
			continue;
		if (!qc_hub_send_frames(h, c, f))
			n++;
	}
	return n;
}

/* Queue entry @e of @u's inbox for each session of @u that is not suspended. */
static uint32_t inbox_fanout(struct qc_hub *h, struct qc_user *u, struct qc_lentry *e)
{
	uint32_t n = 0;

	for (struct qc_conn *c = u->conns; c; c = c->user_next) {
		if (c->suspended && !c->sio)
			continue; /* its position stays: a resume reads the inbox back */
		if (c->resuming)
			continue; /* its resume reads the log back once Redis has answered */
		c->inbox_seq = e->seq;
		if (!qc_hub_send_frames(h, c, &e->f))
			n++;
	}
	if (qc_frames_get(h, &e->f, QC_ENC_NATIVE))
		qc_log_compact(e);
	return n;
}

/* An alert's own seq is its tick's: it keeps it as stream_seq. */
static void alert_seq(const char *name, json_t *data)
{
	if (!strcmp(name, "alert") && json_object_get(data, "seq") &&
	    !json_object_get(data, "stream_seq"))
		json_object_set(data, "stream_seq", json_object_get(data, "seq"));
}

/* An entry handed to the inbox broker that goes to the offline queue if nobody takes it. */
struct inbox_try {
	struct qc_hub *h;
	char *user;
	char *name;
	json_t *data;
};

static void inbox_tried(void *arg, int sessions, uint64_t seq)
{
	struct inbox_try *t = arg;

	(void)seq;
	/* no session of the user anywhere, or Redis did not say: the offline queue keeps it */
	if (sessions <= 0)
		qc_hub_offline_push(t->h, t->user, t->name, t->data);
	json_decref(t->data);
	free(t->user);
	free(t->name);
	free(t);
}

/* Event @name with @data (stolen) for @user through the inbox broker (cluster mode). */
static uint32_t inbox_try(struct qc_hub *h, const char *user, const char *name, json_t *data)
{
	struct qc_user *u = qc_conns_user(&h->conns, user);
	struct inbox_try *t = data ? calloc(1, sizeof(*t)) : NULL;

	if (t) {
		t->h = h;
		t->user = strdup(user);
		t->name = strdup(name);
		t->data = data;
	}
	if (!t || !t->user || !t->name ||
	    h->ibroker.append(h->ibroker.ctx, user, name, data, inbox_tried, t)) {
		if (t)
			inbox_tried(t, -ENOTCONN, 0);
		else
			json_decref(data);
		return 0;
	}
	return u ? u->nconns : 0;
}

uint32_t qc_hub_inbox_send(struct qc_hub *h, const char *user, const char *name, json_t *data)
{
	struct qc_user *u = qc_conns_user(&h->conns, user);
	struct qc_lentry *e;

	if (data)
		alert_seq(name, data);
	if (h->ibroker.append)
		return inbox_try(h, user, name, data);
	if (!u || !data || !qc_hub_inbox(h, u)) {
		json_decref(data);
		return 0;
	}
	e = qc_log_append(u->inbox, name, data, NULL, QC_ROLE_NONE, 0);
	if (!e)
		return 0;
	qc_hub_inbox_persist(h, user, u->inbox, e);
	return inbox_fanout(h, u, e);
}

/* @u's sessions here may have missed entries of their inbox: no resume claims otherwise. */
static void inbox_lost(struct qc_user *u)
{
	for (struct qc_conn *c = u->conns; c; c = c->user_next)
		c->dropped = 1;
}

uint64_t qc_hub_inbox_entry(struct qc_hub *h, const char *user, const char *epoch, uint64_t seq,
                            const char *name, json_t *data, bool fill)
{
	struct qc_user *u = qc_conns_user(&h->conns, user);
	struct qc_log *l = u ? qc_hub_inbox(h, u) : NULL;
	struct qc_lentry *e;

	if (!l || !seq || !epoch || strlen(epoch) != QC_EPOCH_LEN || !data)
		return 0;
	if (!l->based || strcmp(l->epoch, epoch)) {
		/* the first entry here, or Redis lost the log (a new epoch) */
		if (l->based)
			inbox_lost(u);
		qc_log_reset(l, epoch, seq - 1);
		l->based = 1;
	} else if (seq <= l->last_seq) {
		return 0; /* had it */
	} else if (seq > l->last_seq + 1) {
		if (!fill)
			return l->last_seq; /* the caller reads the log back from there */
		/* the log in Redis no longer reaches back that far */
		inbox_lost(u);
		qc_log_reset(l, NULL, seq - 1);
	}
	alert_seq(name, data);
	e = qc_log_append(l, name, json_deep_copy(data), NULL, QC_ROLE_NONE, 0);
	if (e)
		inbox_fanout(h, u, e);
	return 0;
}

void qc_hub_inbox_base(struct qc_hub *h, const char *user, const char *epoch, uint64_t seq)
{
	struct qc_user *u = qc_conns_user(&h->conns, user);
	struct qc_log *l = u ? qc_hub_inbox(h, u) : NULL;

	if (!l || l->based || !epoch || strlen(epoch) != QC_EPOCH_LEN)
		return;
	qc_log_reset(l, epoch, seq);
	l->based = 1;
}

void qc_hub_set_inbox_broker(struct qc_hub *h, const struct qc_inbox_broker *b)
{
	h->ibroker = *b;
}

struct qc_log *qc_hub_inbox(struct qc_hub *h, struct qc_user *u)
{
	/*
	 * with a store, the user's one durable log; memory only, one per life of the user's
	 * sessions; in a cluster, this node's copy of the log in Redis (numbered there)
	 */
	if (!u->inbox && !h->ibroker.append)
		u->inbox = qc_hub_inbox_durable(h, u->id);
	if (!u->inbox && (!qc_hub_persistent(h) || h->ibroker.append))
		u->inbox = qc_log_new(h, QC_LOG_INBOX, h->cfg->inbox.history_size, 0, NULL, 0);
	return u->inbox;
}

struct qc_log *qc_hub_room_log_of(struct qc_hub *h, struct qc_room *room)
{
	return room_log(h, room);
}

bool qc_hub_room_addressed(const struct qc_room *room, const struct qc_lentry *e,
                           const struct qc_conn *c)
{
	return addressed(room, e, c);
}

/* ---- subscriptions ----------------------------------------------------------------------- */

/* Leave @room, counting the event and the room's removal when it was its last member. */
void qc_hub_leave_room(struct qc_hub *h, struct qc_conn *c, struct qc_room *room)
{
	bool last = qc_room_size(room) == 1 && !qc_room_kept(room);
	struct qc_log *l = qc_room_log(room);

	/* a kept room's log no longer follows the broker's once no member is here */
	if (l && qc_room_size(room) == 1 && !qc_room_held(room))
		l->synced = 0;

	/*
	 * A suspended session holds a position, not copies: leaving (kicked, the room closed), what
	 * it has not read of the log is copied to its buffer now, or a resume would never see it.
	 */
	if (c->suspended && !c->sio && l) {
		struct qc_membership *mb;
		struct qc_lentry *e;

		HASH_FIND_PTR(c->rooms.by_room, &room, mb);
		/* the log no longer reaches back to its position: a resume cannot be complete */
		if (mb && mb->seq + 1 < qc_log_first(l))
			c->dropped = 1;
		for (uint32_t i = 0; mb && (e = qc_log_after(l, mb->seq, i)); i++) {
			struct qc_msg *m =
			    addressed(room, e, c) ? qc_frames_get(h, &e->f, c->enc) : NULL;

			if (m)
				qc_hub_buffer(h, c, m);
		}
	}

	if (qc_rooms_leave(h->rooms, room, &c->rooms))
		return;
	qc_hub_session_note(h, c, c->suspended ? QC_SESSION_SUSPENDED : QC_SESSION_LIVE);
	h->st.leave_events++;
	if (last)
		h->st.rooms_deleted++;
}

/* Unsubscribe every connection of @user from @room. */
static void unsubscribe_user(struct qc_hub *h, struct qc_room *room, const char *user)
{
	struct qc_user *u = qc_conns_user(&h->conns, user);

	for (struct qc_conn *c = u ? u->conns : NULL; c; c = c->user_next)
		if (qc_room_set_has(&c->rooms, room))
			qc_hub_leave_room(h, c, room);
}

/* Unsubscribe every connection from @room (kept rooms stay; others go with the last). */
static void unsubscribe_all(struct qc_hub *h, struct qc_room *room)
{
	for (uint32_t n = qc_room_size(room); n; n--)
		qc_hub_leave_room(h, qc_room_members(room)->conn, room);
}

/*
 * The checks of a created room before a connection may subscribe: status, type, password,
 * capacity. A user who passes and is not yet a member must become one (role member):
 * *@join is then set, and the caller makes that membership durable first.
 */
static enum qc_err admit_to_created(struct qc_hub *h, struct qc_conn *c, struct qc_room *room,
                                    const char *password, bool *join, const char **emsg)
{
	struct room_info *ri = info_of(room);
	enum qc_role role = effective_role(ri, c);
	enum qc_err e;

	if (ri->status == QC_STATUS_CLOSED)
		return qc_hub_fail(h, emsg, QC_E_ROOM_CLOSED, "the room is closed");
	if (role == QC_ROLE_NONE) {
		if (ri->type == QC_ROOM_PRIVATE)
			return qc_hub_fail(h, emsg, QC_E_FORBIDDEN, "private room: members only");
		if (ri->type == QC_ROOM_PROTECTED) {
			e = check_password(h, c, room, password, emsg);
			if (e != QC_OK)
				return e;
		}
	}
	if (!qc_acl_may_join(role, ri->type, ri->status))
		return qc_hub_fail(h, emsg, QC_E_FORBIDDEN, "the room is %s: no new subscriptions",
		                   qc_room_status_name(ri->status));
	/* members, and server admins (who act as owner everywhere without joining) */
	if (role != QC_ROLE_NONE &&
	    (role_of(ri, c->user_id) != QC_ROLE_NONE || (c->roles & QC_ROLE_ADMIN)))
		return QC_OK;
	e = member_slot(h, ri, emsg);
	if (e != QC_OK)
		return e;
	*join = true;
	return QC_OK;
}

/* A room subscribe's since_seq and epoch (SPEC 2.9), when @opts has them. */
static bool read_since(json_t *opts, uint64_t *since, const char **epoch)
{
	json_t *js = json_object_get(opts, "since_seq");

	*epoch = json_string_value(json_object_get(opts, "epoch"));
	if (!json_is_integer(js) || json_integer_value(js) < 0)
		return false;
	*since = (uint64_t)json_integer_value(js);
	return true;
}

/*
 * The answer to a room subscribe: the room, its members, the log's position (seq, epoch) and,
 * with since_seq, whether the log still reaches back to it (no epoch: the current one).
 */
static json_t *subscribed(struct qc_hub *h, struct qc_room *room, json_t *opts, bool already)
{
	struct qc_log *l = room_log(h, room);
	const char *epoch;
	uint64_t since;
	json_t *d = json_pack("{s:s, s:I}", "room", qc_room_name(room), "members",
	                      (json_int_t)qc_room_size(room));

	if (!d)
		return NULL;
	if (already)
		json_object_set_new(d, "already", json_true());
	if (!l)
		return d;
	json_object_set_new(d, "seq", json_integer((json_int_t)l->last_seq));
	json_object_set_new(d, "epoch", json_string(l->epoch));
	if (read_since(opts, &since, &epoch))
		json_object_set_new(
		    d, "recovered",
		    json_boolean(qc_log_reaches(l, epoch ? epoch : l->epoch, since)));
	return d;
}

void qc_hub_room_readback(struct qc_hub *h, struct qc_conn *c, const char *name, json_t *opts)
{
	struct qc_room *room = qc_rooms_find(h->rooms, name);
	struct qc_membership *mb;
	struct qc_lentry *e;
	struct qc_log *l;
	const char *epoch;
	uint64_t since;
	bool began;

	if (!room || !read_since(opts, &since, &epoch) || !(l = qc_room_log(room)))
		return;
	HASH_FIND_PTR(c->rooms.by_room, &room, mb);
	/* a log that no longer reaches back: live only (the answer said recovered:false) */
	if (!mb || !qc_log_reaches(l, epoch ? epoch : l->epoch, since))
		return;
	began = qc_hub_replay_begin(h, c);
	for (uint32_t i = 0; (e = qc_log_after(l, since, i)); i++) {
		if (!addressed(room, e, c))
			continue;
		h->log_replayed[QC_LOG_ROOM]++;
		qc_hub_send_frames(h, c, &e->f);
	}
	if (l->last_seq > mb->seq)
		mb->seq = l->last_seq;
	qc_hub_replay_end(h, c, began);
}

/* Subscribe @c to @room (made when NULL); *@data is the answer. */
static enum qc_err join(struct qc_hub *h, struct qc_conn *c, struct qc_room *room, const char *name,
                        json_t *opts, json_t **data, const char **emsg)
{
	bool created = false;

	if (!room) {
		room = qc_rooms_create(h->rooms, name);
		if (!room)
			return qc_hub_fail(h, emsg, QC_E_INTERNAL, "out of memory");
		created = true;
	}
	if (qc_rooms_join(h->rooms, room, &c->rooms, c)) {
		if (created)
			qc_rooms_delete(h->rooms, room);
		return qc_hub_fail(h, emsg, QC_E_INTERNAL, "out of memory");
	}
	if (created)
		h->st.rooms_created++;
	h->st.join_events++;
	if (h->room_broker.watch)
		h->room_broker.watch(h->room_broker.ctx, name);
	{
		struct qc_log *l = room_log(h, room);
		struct qc_membership *mb;

		/* live from the log's end on: a read-back after the answer fills in before it */
		HASH_FIND_PTR(c->rooms.by_room, &room, mb);
		if (mb && l)
			mb->seq = l->last_seq;
	}
	*data = subscribed(h, room, opts, false);
	return QC_OK;
}

static const char sql_join[] = "INSERT INTO room_members (room, user_id, role, joined_at)"
                               " VALUES ($1, $2, 'member', $3::bigint) ON CONFLICT DO NOTHING";

/* The membership a subscribe made is committed: add it, announce it, then join. */
static enum qc_err commit_join(struct qc_hub *h, struct qc_conn *c, json_t *args, json_t *rows,
                               json_t **data, const char **emsg)
{
	const char *name = json_string_value(json_object_get(args, "room"));
	const char *user = json_string_value(json_object_get(args, "user_id"));
	struct qc_room *room = qc_rooms_find(h->rooms, name);
	struct room_info *ri = room ? info_of(room) : NULL;

	if (!ri)
		return qc_hub_fail(h, emsg, QC_E_NOT_FOUND, "the room was deleted");
	if (!member_find(ri, user)) {
		if (member_add(ri, user, QC_ROLE_MEMBER, num_of(json_object_get(args, "since"))))
			return qc_hub_fail(h, emsg, QC_E_INTERNAL, "out of memory");
		room_event(
		    h, room, "member_joined",
		    json_pack("{s:s, s:s, s:s}", "room", name, "user_id", user, "role", "member"));
	}
	if (!c)
		return QC_OK;
	if (qc_room_set_has(&c->rooms, room)) {
		*data = subscribed(h, room, json_object_get(args, "opts"), true);
		return QC_OK;
	}
	if (c->rooms.count >= h->cfg->limits.max_rooms_per_connection)
		return qc_hub_limit(h, emsg, QC_LIM_ROOMS_PER_CONNECTION, "%u rooms joined",
		                    h->cfg->limits.max_rooms_per_connection);
	return join(h, c, room, name, json_object_get(args, "opts"), data, emsg);
}

/* After a subscribe that had to wait for the store: the read-back follows its answer. */
static void join_after(struct qc_hub *h, struct qc_conn *c, json_t *args)
{
	qc_hub_room_readback(h, c, json_string_value(json_object_get(args, "room")),
	                     json_object_get(args, "opts"));
}

static bool must_sync(struct qc_room *room, json_t *opts);

/* A subscribe request is being handled (not a resume rejoining its rooms): it may wait. */
static bool subscribing(const struct qc_hub *h)
{
	return h->cur && h->cur->type == QC_CMD_SUBSCRIBE;
}
static enum qc_err admit_then(struct qc_hub *h, struct qc_conn *c, struct qc_room *room,
                              const char *user, const char *action, const char *password,
                              json_t *opts, const char **emsg);
static enum qc_err sync_then_subscribe(struct qc_hub *h, struct qc_conn *c, const char *name,
                                       const char *password, json_t *opts, const char **emsg);
static enum qc_err settle_then_subscribe(struct qc_hub *h, struct qc_conn *c, const char *name,
                                         const char *password, json_t *opts, const char **emsg);

enum qc_err qc_hub_subscribe(struct qc_hub *h, struct qc_conn *c, const char *name,
                             const char *password, json_t *opts, json_t **data, const char **emsg)
{
	struct qc_room *room;
	bool must_join = false;
	enum qc_err e;
	json_t *js;

	if (strlen(name) > QC_ROOM_NAME_MAX)
		return qc_hub_fail(h, emsg, QC_E_BAD_REQUEST, "room name longer than 128 bytes");
	js = json_object_get(opts, "since_seq");
	if (js && !json_is_null(js) && (!json_is_integer(js) || json_integer_value(js) < 0))
		return qc_hub_fail(h, emsg, QC_E_BAD_REQUEST,
		                   "\"since_seq\" must be a non-negative integer");
	js = json_object_get(opts, "epoch");
	if (js && !json_is_null(js) && !json_is_string(js))
		return qc_hub_fail(h, emsg, QC_E_BAD_REQUEST, "\"epoch\" must be a string");
	room = qc_rooms_find(h->rooms, name);
	if (room && qc_room_set_has(&c->rooms, room)) {
		*data = subscribed(h, room, opts, true);
		return QC_OK;
	}
	if (c->rooms.count >= h->cfg->limits.max_rooms_per_connection)
		return qc_hub_limit(h, emsg, QC_LIM_ROOMS_PER_CONNECTION, "%u rooms joined",
		                    h->cfg->limits.max_rooms_per_connection);
	/*
	 * cluster mode: a room this node does not know may have been created on another node just
	 * now, and a refusal may rest on a change still on its way: the changes announced so far
	 * are applied first (read from their log)
	 */
	if (h->room_broker.settle && subscribing(h) && !h->room_settled_now && !room) {
		e = settle_then_subscribe(h, c, name, password, opts, emsg);
		if (e != QC_OK)
			return e;
	}
	/* cluster mode: the room's log is Redis'; read its position (and what is asked) first */
	if (h->room_broker.read && subscribing(h) && !h->room_synced_now && must_sync(room, opts))
		return sync_then_subscribe(h, c, name, password, opts, emsg);
	if (room && info_of(room)) {
		e = admit_to_created(h, c, room, password, &must_join, emsg);
		if ((e == QC_E_FORBIDDEN || e == QC_E_ROOM_CLOSED) && !password &&
		    h->room_broker.settle && subscribing(h) && !h->room_settled_now) {
			const char *refusal = *emsg;
			enum qc_err later = settle_then_subscribe(h, c, name, password, opts, emsg);

			if (later != QC_OK)
				return later; /* QC_ASYNC, or out of memory */
			*emsg = refusal;
		}
		if (e != QC_OK)
			return e;
	}
	/* cluster mode: the last places of a room with a capacity are taken in Redis, atomically */
	if (must_join && h->room_broker.admit && info_of(room)->max_members && subscribing(h) &&
	    !h->room_admitted_now)
		return admit_then(h, c, room, c->user_id, NULL, password, opts, emsg);
	if (must_join) {
		char now[24];
		struct qc_durable d = {
		    .sql = sql_join,
		    .nparams = 3,
		    .params = {name, c->user_id, now},
		    .commit = commit_join,
		    .announce = "join",
		    .args = NULL,
		};
		int64_t since = qc_now_ms();

		snprintf(now, sizeof(now), "%" PRId64, since);
		d.args = json_pack("{s:s, s:s, s:I, s:{s:O?, s:O?}}", "room", name, "user_id",
		                   c->user_id, "since", (json_int_t)since, "opts", "since_seq",
		                   json_object_get(opts, "since_seq"), "epoch",
		                   json_object_get(opts, "epoch"));
		if (!d.args)
			return qc_hub_fail(h, emsg, QC_E_INTERNAL, "out of memory");
		info_of(room)->joining++;
		d.settled = join_settled;
		d.after = join_after;
		return qc_hub_durable(h, c, &d);
	}
	return join(h, c, room, name, opts, data, emsg);
}

enum qc_err qc_hub_unsubscribe(struct qc_hub *h, struct qc_conn *c, const char *name, json_t **data,
                               const char **emsg)
{
	struct qc_room *room = qc_rooms_find(h->rooms, name);

	if (!room || !qc_room_set_has(&c->rooms, room))
		return qc_hub_fail(h, emsg, QC_E_NOT_FOUND, "not subscribed to that room");
	qc_hub_leave_room(h, c, room);
	*data = json_pack("{s:s}", "room", name);
	return QC_OK;
}

/* ---- sending ----------------------------------------------------------------------------- */

static const char *const message_types[] = {"text", "notification", "alert", "system", "data"};

static enum qc_err read_message_type(struct qc_hub *h, json_t *doc, const char **type,
                                     const char **emsg)
{
	json_t *jt = json_object_get(doc, "message_type");

	*type = "text";
	if (!jt || json_is_null(jt))
		return QC_OK;
	for (size_t i = 0; json_is_string(jt) && i < sizeof(message_types) / sizeof(*message_types);
	     i++)
		if (!strcmp(json_string_value(jt), message_types[i])) {
			*type = message_types[i];
			return QC_OK;
		}
	return qc_hub_fail(h, emsg, QC_E_BAD_REQUEST,
	                   "\"message_type\" must be text, notification, alert, system or data");
}

/* A list of user ids: absent/null (NULL), or an array of 1..TARGET_USERS_MAX valid ids. */
static enum qc_err read_users(struct qc_hub *h, json_t *doc, const char *key, json_t **out,
                              const char **emsg)
{
	json_t *a = json_object_get(doc, key), *v;
	size_t i;

	*out = NULL;
	if (!a || json_is_null(a))
		return QC_OK;
	if (!json_is_array(a) || !json_array_size(a) || json_array_size(a) > TARGET_USERS_MAX)
		return qc_hub_fail(h, emsg, QC_E_BAD_REQUEST,
		                   "\"%s\" must be an array of 1 to %d user ids", key,
		                   TARGET_USERS_MAX);
	json_array_foreach (a, i, v) {
		const char *s = json_string_value(v);

		if (!s || !s[0] || strlen(s) > QC_USER_ID_MAX)
			return qc_hub_fail(h, emsg, QC_E_BAD_REQUEST, "%s[%zu] must be a user id",
			                   key, i);
	}
	*out = a;
	return QC_OK;
}

/*
 * send_message / POST /api/broadcast with a room: validate, check the sender's right to write
 * (@c NULL: the server itself), then fan the room_message out to the connections that the
 * targeting selects: encoded once, one reference per receiver.
 */
static enum qc_err send_broker(struct qc_hub *h, struct qc_conn *c, struct qc_room *room,
                               json_t *ev_data, json_t *targets, uint8_t role, bool exclude_self,
                               qc_publish_done_fn done, void *arg, const char **emsg);

static enum qc_err room_send(struct qc_hub *h, struct qc_conn *c, json_t *doc,
                             qc_publish_done_fn done, void *arg, json_t **out, const char **emsg)
{
	const char *name = json_string_value(json_object_get(doc, "room"));
	json_t *content = json_object_get(doc, "content"), *targets, *jrole, *jself;
	const char *type, *from = c ? c->user_id : "system";
	enum qc_role target_role = QC_ROLE_NONE;
	struct room_info *ri;
	struct qc_lentry *e;
	struct qc_room *room;
	bool exclude_self = false;
	uint32_t delivered = 0;
	enum qc_err err;
	char id[48];
	json_t *ev_data;

	if (!name || !name[0])
		return qc_hub_fail(h, emsg, QC_E_BAD_REQUEST,
		                   "\"room\" must be a non-empty string");
	if (!content || json_is_null(content))
		return qc_hub_fail(h, emsg, QC_E_BAD_REQUEST, "\"content\" is required");
	err = read_message_type(h, doc, &type, emsg);
	if (err == QC_OK)
		err = read_users(h, doc, "target_users", &targets, emsg);
	if (err != QC_OK)
		return err;
	jrole = json_object_get(doc, "target_role");
	if (jrole && !json_is_null(jrole) &&
	    (!json_is_string(jrole) || !qc_role_parse(json_string_value(jrole), &target_role)))
		return qc_hub_fail(h, emsg, QC_E_BAD_REQUEST,
		                   "\"target_role\" must be owner, admin, moderator or member");
	jself = json_object_get(doc, "exclude_self");
	if (jself && !json_is_null(jself)) {
		if (!json_is_boolean(jself))
			return qc_hub_fail(h, emsg, QC_E_BAD_REQUEST,
			                   "\"exclude_self\" must be a boolean");
		exclude_self = json_is_true(jself);
	}
	room = qc_rooms_find(h->rooms, name);
	if (!room)
		return qc_hub_fail(h, emsg, QC_E_NOT_FOUND, "no such room");
	ri = info_of(room);
	if (ri) {
		if (ri->status == QC_STATUS_CLOSED)
			return qc_hub_fail(h, emsg, QC_E_ROOM_CLOSED, "the room is closed");
		if (c && !qc_acl_allows(effective_role(ri, c), QC_PERM_WRITE, ri->type, ri->status))
			return qc_hub_fail(h, emsg, QC_E_FORBIDDEN,
			                   "no write permission in this room");
		if (!c && ri->status == QC_STATUS_ARCHIVED)
			return qc_hub_fail(h, emsg, QC_E_FORBIDDEN,
			                   "the room is archived (read-only)");
	}

	snprintf(id, sizeof(id), "m-%s-%" PRIu64, h->node, ++h->msg_counter);
	ev_data = json_pack("{s:s, s:s, s:s, s:s, s:O, s:I}", "room", name, "message_id", id,
	                    "message_type", type, "from", from, "content", content, "timestamp",
	                    (json_int_t)qc_now_ms());
	/* cluster mode: the broker numbers it; it comes back, on every node, to be fanned out */
	if (h->room_broker.append) {
		if (!ev_data)
			return qc_hub_fail(h, emsg, QC_E_INTERNAL, "out of memory");
		return send_broker(h, c, room, ev_data, targets, (uint8_t)target_role, exclude_self,
		                   done, arg, emsg);
	}
	/* one seq in the room's log, targeted or not: a read-back applies the targeting again */
	e = ev_data ? room_append(h, room, "room_message", json_incref(ev_data), targets,
	                          (uint8_t)target_role, exclude_self && c ? c->id : 0, &delivered)
	            : NULL;
	if (!e || !qc_frames_get(h, &e->f, QC_ENC_NATIVE)) {
		json_decref(ev_data);
		return qc_hub_fail(h, emsg, QC_E_INTERNAL, "out of memory");
	}
	if (ri) {
		ri->message_count++;
		ri->last_activity = qc_now_ms();
		/*
		 * Members with no live or suspended session: stored once in the room's offline log,
		 * whatever their number (the targeting applies to them when they come back).
		 */
		qc_olog_append(ri->log, ev_data, targets, (uint8_t)target_role);
	}
	json_decref(ev_data);
	*out = json_pack("{s:s, s:s, s:I}", "room", name, "message_id", id, "delivered",
	                 (json_int_t)delivered);
	return QC_OK;
}

enum qc_err qc_hub_room_send(struct qc_hub *h, struct qc_conn *c, json_t *doc, json_t **out,
                             const char **emsg)
{
	return room_send(h, c, doc, NULL, NULL, out, emsg);
}

/* A direct_message to several users through the inbox broker: answered when all have said. */
struct dm_batch {
	struct qc_hub *h;
	qc_publish_done_fn done; /* NULL: nobody waits */
	void *arg;
	char id[48];
	uint32_t n, left, lost;
	bool submitting;
	json_int_t sessions;
	json_t *offline;
};

struct dm_one {
	struct dm_batch *b;
	char *user;
	json_t *data;
};

/* The answer: QC_OK with *@out, or UNAVAILABLE with the message in @msg. */
static enum qc_err dm_result(struct dm_batch *b, json_t **out, char *msg, size_t msglen)
{
	if (b->lost) {
		snprintf(
		    msg, msglen,
		    "Redis (cluster.redis) is unavailable: %u of %u recipient(s) not confirmed",
		    b->lost, b->n);
		json_decref(b->offline);
		return QC_E_UNAVAILABLE;
	}
	*out = json_pack("{s:s, s:I, s:o}", "message_id", b->id, "delivered", b->sessions,
	                 "offline", b->offline);
	return QC_OK;
}

static void dm_appended(void *arg, int sessions, uint64_t seq)
{
	struct dm_one *o = arg;
	struct dm_batch *b = o->b;
	json_t *out = NULL;
	char msg[160] = "";
	enum qc_err e;

	(void)seq;
	if (sessions > 0) {
		b->sessions += sessions;
	} else if (sessions == 0) {
		/* no live or suspended session in the cluster: the user's offline queue keeps it */
		qc_hub_offline_push(b->h, o->user, "direct_message", o->data);
		json_array_append_new(b->offline, json_string(o->user));
	} else {
		b->lost++;
	}
	json_decref(o->data);
	free(o->user);
	free(o);
	if (--b->left || b->submitting)
		return;
	e = dm_result(b, &out, msg, sizeof(msg));
	if (b->done)
		b->done(b->arg, e, e == QC_OK ? NULL : msg, out);
	else
		json_decref(out);
	free(b);
}

static enum qc_err direct_send_cluster(struct qc_hub *h, const char *from, json_t *users,
                                       json_t *content, const char *type, qc_publish_done_fn done,
                                       void *arg, json_t **out, const char **emsg)
{
	struct dm_batch *b = calloc(1, sizeof(*b));
	enum qc_err e;
	struct dm_one *o;
	size_t i;
	json_t *v;

	if (!b || !(b->offline = json_array())) {
		free(b);
		return qc_hub_fail(h, emsg, QC_E_INTERNAL, "out of memory");
	}
	b->h = h;
	b->done = done;
	b->arg = arg;
	b->submitting = true;
	snprintf(b->id, sizeof(b->id), "m-%s-%" PRIu64, h->node, ++h->msg_counter);
	json_array_foreach (users, i, v) {
		b->n++;
		o = calloc(1, sizeof(*o));
		if (o) {
			o->b = b;
			o->user = strdup(json_string_value(v));
			o->data = json_pack("{s:s, s:s, s:s, s:O, s:I}", "message_id", b->id,
			                    "from", from, "message_type", type, "content", content,
			                    "timestamp", (json_int_t)qc_now_ms());
		}
		b->left++;
		if (!o || !o->user || !o->data ||
		    h->ibroker.append(h->ibroker.ctx, o->user, "direct_message", o->data,
		                      dm_appended, o)) {
			b->left--;
			b->lost++;
			if (o) {
				json_decref(o->data);
				free(o->user);
				free(o);
			}
		}
	}
	b->submitting = false;
	if (b->left)
		return QC_ASYNC;
	/* nothing went out: answered now */
	e = dm_result(b, out, h->errbuf, sizeof(h->errbuf));
	free(b);
	if (e != QC_OK)
		*emsg = h->errbuf;
	return e;
}

/*
 * direct_message to every connection of each user of @users (an array, borrowed). Through the
 * inbox broker (cluster mode) the answer waits for Redis: QC_ASYNC, @done runs later.
 */
static enum qc_err direct_send(struct qc_hub *h, const char *from, json_t *users, json_t *doc,
                               qc_publish_done_fn done, void *arg, json_t **out, const char **emsg)
{
	json_t *content = json_object_get(doc, "content"), *offline, *v;
	uint32_t delivered = 0;
	const char *type;
	enum qc_err e;
	char id[48];
	size_t i;

	if (!content || json_is_null(content))
		return qc_hub_fail(h, emsg, QC_E_BAD_REQUEST, "\"content\" is required");
	e = read_message_type(h, doc, &type, emsg);
	if (e != QC_OK)
		return e;
	if (h->ibroker.append)
		return direct_send_cluster(h, from, users, content, type, done, arg, out, emsg);
	snprintf(id, sizeof(id), "m-%s-%" PRIu64, h->node, ++h->msg_counter);
	offline = json_array();
	json_array_foreach (users, i, v) {
		const char *user = json_string_value(v);
		json_t *data = json_pack("{s:s, s:s, s:s, s:O, s:I}", "message_id", id, "from",
		                         from, "message_type", type, "content", content,
		                         "timestamp", (json_int_t)qc_now_ms());

		if (!data)
			continue;
		/* no live or suspended session: the user's offline queue keeps it */
		if (!qc_conns_user(&h->conns, user)) {
			qc_hub_offline_push(h, user, "direct_message", data);
			json_array_append(offline, v);
		}
		delivered += qc_hub_inbox_send(h, user, "direct_message", data);
	}
	*out = json_pack("{s:s, s:I, s:o}", "message_id", id, "delivered", (json_int_t)delivered,
	                 "offline", offline);
	return QC_OK;
}

/* direct_send for a request of @c: through the inbox broker its answer waits (QC_ASYNC). */
static enum qc_err direct_request(struct qc_hub *h, struct qc_conn *c, json_t *users, json_t *p,
                                  json_t **d, const char **e)
{
	struct qc_waiter *w = NULL;
	enum qc_err err;

	if (h->ibroker.append && h->cur && !(w = qc_waiter_new(h, c)))
		return qc_hub_fail(h, e, QC_E_INTERNAL, "out of memory");
	err = direct_send(h, c->user_id, users, p, w ? qc_waiter_answer : NULL, w, d, e);
	if (err != QC_ASYNC && w)
		qc_waiter_free(w);
	return err;
}

enum qc_err qc_act_send_to_user(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                const char **e)
{
	json_t *one = json_object_get(p, "user_id"), *users = NULL, *list;
	enum qc_err err;

	if (!(c->roles & QC_ROLE_ADMIN))
		return qc_hub_fail(h, e, QC_E_FORBIDDEN, "role admin required");
	if (one && !json_is_null(one)) {
		const char *s = json_string_value(one);

		if (!s || !s[0] || strlen(s) > QC_USER_ID_MAX)
			return qc_hub_fail(h, e, QC_E_BAD_REQUEST, "\"user_id\" must be a user id");
		list = json_pack("[O]", one);
		err = list ? direct_request(h, c, list, p, d, e)
		           : qc_hub_fail(h, e, QC_E_INTERNAL, "out of memory");
		json_decref(list);
		return err;
	}
	err = read_users(h, p, "user_ids", &users, e);
	if (err != QC_OK)
		return err;
	if (!users)
		return qc_hub_fail(h, e, QC_E_BAD_REQUEST,
		                   "\"user_id\" or \"user_ids\" is required");
	return direct_request(h, c, users, p, d, e);
}

enum qc_err qc_hub_broadcast_async(struct qc_hub *h, json_t *body, qc_publish_done_fn done,
                                   void *arg, json_t **out, const char **msg)
{
	json_t *room = json_object_get(body, "room"), *users;
	enum qc_err e;

	if (!json_is_object(body))
		return qc_hub_fail(h, msg, QC_E_BAD_REQUEST, "body must be a JSON object");
	if (room && !json_is_null(room))
		return room_send(h, NULL, body, done, arg, out, msg);
	e = read_users(h, body, "to_users", &users, msg);
	if (e != QC_OK)
		return e;
	if (!users)
		return qc_hub_fail(h, msg, QC_E_BAD_REQUEST,
		                   "\"room\" or \"to_users\" is required");
	return direct_send(h, "system", users, body, done, arg, out, msg);
}

enum qc_err qc_hub_broadcast(struct qc_hub *h, json_t *body, json_t **out, const char **msg)
{
	return qc_hub_broadcast_async(h, body, NULL, NULL, out, msg);
}

enum qc_err qc_act_send_message(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                const char **e)
{
	struct qc_waiter *la;
	enum qc_err err;

	if (!h->room_broker.append || !h->cur)
		return qc_hub_room_send(h, c, p, d, e);
	la = qc_waiter_new(h, c);
	if (!la)
		return qc_hub_fail(h, e, QC_E_INTERNAL, "out of memory");
	err = room_send(h, c, p, qc_waiter_answer, la, d, e);
	if (err != QC_ASYNC)
		qc_waiter_free(la);
	return err;
}

/* ---- created rooms ----------------------------------------------------------------------- */

/* The room named by payload "room" (NOT_FOUND when absent). */
static enum qc_err find_room(struct qc_hub *h, json_t *p, struct qc_room **out, const char **e)
{
	const char *name = json_string_value(json_object_get(p, "room"));

	if (!name || !name[0] || strlen(name) > QC_ROOM_NAME_MAX)
		return qc_hub_fail(h, e, QC_E_BAD_REQUEST,
		                   "\"room\" must be a room name of 1-128 bytes");
	*out = qc_rooms_find(h->rooms, name);
	if (!*out)
		return qc_hub_fail(h, e, QC_E_NOT_FOUND, "no such room");
	return QC_OK;
}

/* As find_room, and the room must be a created one. */
static enum qc_err find_created(struct qc_hub *h, json_t *p, struct qc_room **out,
                                struct room_info **ri, const char **e)
{
	enum qc_err err = find_room(h, p, out, e);

	if (err != QC_OK)
		return err;
	*ri = info_of(*out);
	if (!*ri)
		return qc_hub_fail(h, e, QC_E_BAD_REQUEST,
		                   "not a created room (no owner, roles or status)");
	return QC_OK;
}

static const char sql_create_room[] =
    "WITH r AS (INSERT INTO rooms (name, owner, type, password_hash, max_members, metadata,"
    " created_at, updated_at, log_epoch) VALUES ($1, $2, $3, $4, $5::integer, $6::json,"
    " $7::bigint, $7::bigint, $8))"
    " INSERT INTO room_members (room, user_id, role, joined_at)"
    " VALUES ($1, $2, 'owner', $7::bigint)";

/*
 * Put a created room in memory from its stored form (@row: name, owner, type, status,
 * password_hash, max_members, metadata (JSON text or an object), created_at, all borrowed),
 * with its owner as a member when @with_owner. An implicit room of that name becomes the
 * created one, its subscribers kept. The caller counts it (owner_add).
 */
static int install_room(struct qc_hub *h, const char *name, const char *owner, const char *type,
                        const char *status, const char *pwhash, int64_t max, json_t *metadata,
                        int64_t created_at, bool with_owner, struct qc_room **out)
{
	struct room_info *ri = calloc(1, sizeof(*ri));
	struct qc_room *room;

	if (!ri)
		return -ENOMEM;
	snprintf(ri->owner, sizeof(ri->owner), "%s", owner);
	if (!qc_room_type_parse(type, &ri->type) || !qc_room_status_parse(status, &ri->status)) {
		free(ri);
		return -EINVAL;
	}
	ri->max_members = max > 0 ? (uint32_t)max : 0;
	ri->metadata = json_is_object(metadata) ? json_incref(metadata) : json_object();
	ri->log = qc_olog_new(h, name);
	snprintf(ri->password, sizeof(ri->password), "%s", pwhash ? pwhash : "");
	ri->created_at = ri->last_activity = created_at;
	if (!ri->metadata || !ri->log ||
	    (with_owner && member_add(ri, owner, QC_ROLE_OWNER, created_at))) {
		info_free(ri);
		return -ENOMEM;
	}
	room = qc_rooms_find(h->rooms, name);
	if (room && info_of(room)) {
		info_free(ri);
		return -EEXIST;
	}
	if (!room)
		room = qc_rooms_create(h->rooms, name);
	if (!room) {
		info_free(ri);
		return -ENOMEM;
	}
	qc_room_set_kept(room, true);
	qc_room_set_ext(room, ri);
	*out = room;
	return 0;
}

/* A create_room request is settled (made or not): its reserved place goes. */
static void create_settled(struct qc_hub *h, json_t *args)
{
	owner_drop(h, json_string_value(json_object_get(args, "owner")), true);
}

static enum qc_err commit_create_room(struct qc_hub *h, struct qc_conn *c, json_t *a, json_t *rows,
                                      json_t **data, const char **emsg)
{
	const char *owner = json_string_value(json_object_get(a, "owner"));
	struct qc_room *room;
	int ret;

	/* counted first: the place qc_act_create_room reserved keeps the owner's entry */
	if (owner_add(h, owner, false))
		return qc_hub_fail(h, emsg, QC_E_INTERNAL, "out of memory");
	ret =
	    install_room(h, json_string_value(json_object_get(a, "name")), owner,
	                 json_string_value(json_object_get(a, "type")), "active",
	                 json_string_value(json_object_get(a, "password_hash")),
	                 num_of(json_object_get(a, "max_members")), json_object_get(a, "metadata"),
	                 num_of(json_object_get(a, "created_at")), true, &room);
	if (ret) {
		owner_drop(h, owner, false);
		if (ret == -EEXIST)
			return qc_hub_fail(h, emsg, QC_E_ALREADY_EXISTS,
			                   "a room with that name exists");
		return qc_hub_fail(h, emsg, QC_E_INTERNAL, "out of memory");
	}
	h->st.rooms_created++;
	{
		const char *epoch = json_string_value(json_object_get(a, "log_epoch"));
		struct qc_log *l = qc_room_log(room);

		if (!l && epoch)
			qc_room_set_log(room, qc_log_new(h, QC_LOG_ROOM, h->cfg->rooms.history_size,
			                                 h->cfg->rooms.history_ttl_s, epoch, 0));
		else if (!epoch || strcmp(l->epoch, epoch))
			persist_epoch(h, room); /* the implicit room's log is not the one stored */
	}
	*data = qc_hub_room_json(h, room);
	return QC_OK;
}

enum qc_err qc_act_create_room(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                               const char **e)
{
	const char *name = json_string_value(json_object_get(p, "room"));
	json_t *jtype = json_object_get(p, "type"), *jpw = json_object_get(p, "password");
	json_t *jmax = json_object_get(p, "max_members"), *jmeta = json_object_get(p, "metadata");
	enum qc_room_type type = QC_ROOM_PUBLIC;
	char *dump;

	if (!name || !name[0] || strlen(name) > QC_ROOM_NAME_MAX)
		return qc_hub_fail(h, e, QC_E_BAD_REQUEST,
		                   "\"room\" must be a room name of 1-128 bytes");
	if (jtype && !json_is_null(jtype) &&
	    (!json_is_string(jtype) || !qc_room_type_parse(json_string_value(jtype), &type)))
		return qc_hub_fail(h, e, QC_E_BAD_REQUEST,
		                   "\"type\" must be public, private or protected");
	if (type == QC_ROOM_PROTECTED &&
	    (!json_is_string(jpw) || !json_string_length(jpw) || json_string_length(jpw) > 1024))
		return qc_hub_fail(h, e, QC_E_BAD_REQUEST,
		                   "a protected room needs a \"password\" of 1-1024 bytes");
	if (type != QC_ROOM_PROTECTED && jpw && !json_is_null(jpw))
		return qc_hub_fail(h, e, QC_E_BAD_REQUEST,
		                   "only protected rooms take a \"password\"");
	if (jmax && !json_is_null(jmax) &&
	    (!json_is_integer(jmax) || json_integer_value(jmax) < 1 ||
	     json_integer_value(jmax) > CAPACITY_MAX))
		return qc_hub_fail(h, e, QC_E_BAD_REQUEST,
		                   "\"max_members\" must be an integer from 1 to %d", CAPACITY_MAX);
	if (jmeta && !json_is_null(jmeta)) {
		if (!json_is_object(jmeta))
			return qc_hub_fail(h, e, QC_E_BAD_REQUEST,
			                   "\"metadata\" must be an object");
		dump = json_dumps(jmeta, QC_JSON_DUMP);
		if (!dump || strlen(dump) > METADATA_MAX) {
			free(dump);
			return qc_hub_fail(h, e, QC_E_BAD_REQUEST,
			                   "\"metadata\" is larger than %d bytes", METADATA_MAX);
		}
		free(dump);
	}
	if (qc_rooms_find(h->rooms, name))
		return qc_hub_fail(h, e, QC_E_ALREADY_EXISTS, "a room with that name exists");
	/* rooms being made count: requests still with the store cannot overshoot */
	if (!(c->roles & QC_ROLE_ADMIN) && owned(h, c->user_id) >= h->cfg->rooms.max_per_owner)
		return qc_hub_limit(h, e, QC_LIM_ROOMS_PER_OWNER, "you own %u rooms",
		                    h->cfg->rooms.max_per_owner);
	if ((uint64_t)h->created_rooms + h->rooms_pending >= h->cfg->rooms.max_total)
		return qc_hub_limit(h, e, QC_LIM_ROOMS_TOTAL, "%u rooms on the server",
		                    h->cfg->rooms.max_total);
	if (type == QC_ROOM_PROTECTED && !hash_budget(h, mono_ms(), e))
		return QC_E_RATE_LIMITED;

	{
		char pwhash[QC_PASSWORD_HASH_MAX] = "", max[16], now[24], epoch[QC_EPOCH_LEN + 1];
		char *meta = json_is_object(jmeta) ? json_dumps(jmeta, QC_JSON_DUMP) : NULL;
		struct qc_room *implicit = qc_rooms_find(h->rooms, name);
		struct qc_durable dur = {
		    .sql = sql_create_room,
		    .nparams = 8,
		    .params = {name, c->user_id, qc_room_type_name(type), NULL,
		               json_is_integer(jmax) ? max : NULL, meta, now, epoch},
		    .commit = commit_create_room,
		    .announce = "create_room",
		    .settled = create_settled,
		};

		if (type == QC_ROOM_PROTECTED &&
		    qc_password_hash(json_string_value(jpw), pwhash, sizeof(pwhash))) {
			free(meta);
			return qc_hub_fail(h, e, QC_E_INTERNAL, "cannot hash the password");
		}
		if (pwhash[0])
			dur.params[3] = pwhash;
		snprintf(max, sizeof(max), "%" JSON_INTEGER_FORMAT,
		         json_is_integer(jmax) ? json_integer_value(jmax) : 0);
		snprintf(now, sizeof(now), "%" PRId64, qc_now_ms());
		/* an implicit room of that name keeps its log: its subscribers' positions stay */
		if (implicit && qc_room_log(implicit))
			memcpy(epoch, ((struct qc_log *)qc_room_log(implicit))->epoch,
			       sizeof(epoch));
		else
			qc_random_hex(epoch, QC_EPOCH_LEN / 2);
		dur.args = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "name", name,
		                     "owner", c->user_id, "type", qc_room_type_name(type), "status",
		                     "active", "password_hash", pwhash, "max_members", max,
		                     "created_at", now, "log_epoch", epoch);
		if (dur.args && json_is_object(jmeta))
			json_object_set(dur.args, "metadata", jmeta);
		if (!dur.args || owner_add(h, c->user_id, true)) {
			json_decref(dur.args);
			free(meta);
			return qc_hub_fail(h, e, QC_E_INTERNAL, "out of memory");
		}
		qc_hub_durable(h, c, &dur);
		free(meta);
		return QC_ASYNC;
	}
}

/* Everyone subscribed gets room_closed with @reason and is unsubscribed. */
static void close_room(struct qc_hub *h, struct qc_room *room, const char *reason)
{
	room_event(h, room, "room_closed",
	           json_pack("{s:s, s:s}", "room", qc_room_name(room), "reason", reason));
	/* in a cluster every node unsubscribes its members as the event comes back */
	if (!h->room_broker.append)
		unsubscribe_all(h, room);
}

/* Remove a created room: everyone subscribed gets room_closed, then it is gone. */
static void destroy_room(struct qc_hub *h, struct qc_room *room, const char *reason)
{
	struct room_info *ri = info_of(room);

	close_room(h, room, reason);
	if (h->room_broker.release && !h->room_remote)
		h->room_broker.release(h->room_broker.ctx, qc_room_name(room), NULL);
	qc_room_set_ext(room, NULL);
	owner_drop(h, ri->owner, false);
	info_free(ri);
	h->st.rooms_deleted++;
	/* in a cluster its members leave as room_closed comes back: it goes with the last */
	if (h->room_broker.append && qc_room_size(room)) {
		qc_room_set_kept(room, false);
		return;
	}
	qc_rooms_delete(h->rooms, room);
}

/* The created room named by @a "room", after a commit; NOT_FOUND when it went meanwhile. */
static enum qc_err committed_room(struct qc_hub *h, json_t *a, struct qc_room **room,
                                  struct room_info **ri, const char **emsg)
{
	*room = qc_rooms_find(h->rooms, json_string_value(json_object_get(a, "room")));
	*ri = *room ? info_of(*room) : NULL;
	if (!*ri)
		return qc_hub_fail(h, emsg, QC_E_NOT_FOUND, "no such room");
	return QC_OK;
}

static enum qc_err commit_delete_room(struct qc_hub *h, struct qc_conn *c, json_t *a, json_t *rows,
                                      json_t **data, const char **emsg)
{
	struct room_info *ri;
	struct qc_room *room;
	enum qc_err err = committed_room(h, a, &room, &ri, emsg);

	if (err != QC_OK)
		return err;
	destroy_room(h, room, "deleted");
	*data = json_pack("{s:O, s:b}", "room", json_object_get(a, "room"), "deleted", 1);
	return QC_OK;
}

enum qc_err qc_act_delete_room(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                               const char **e)
{
	struct room_info *ri;
	struct qc_room *room;
	enum qc_err err = find_created(h, p, &room, &ri, e);
	struct qc_durable dur = {
	    .sql = "DELETE FROM rooms WHERE name = $1",
	    .nparams = 1,
	    .commit = commit_delete_room,
	    .announce = "delete_room",
	};

	if (err != QC_OK)
		return err;
	if (!qc_acl_allows(effective_role(ri, c), QC_PERM_DELETE_ROOM, ri->type, ri->status))
		return qc_hub_fail(h, e, QC_E_FORBIDDEN, "only the owner may delete the room");
	dur.params[0] = qc_room_name(room);
	dur.args = json_pack("{s:s}", "room", qc_room_name(room));
	return qc_hub_durable(h, c, &dur);
}

json_t *qc_hub_room_json(struct qc_hub *h, struct qc_room *room)
{
	struct room_info *ri = info_of(room);

	if (!ri)
		return json_pack("{s:s, s:s, s:s, s:b, s:I}", "room", qc_room_name(room), "type",
		                 "public", "status", "active", "implicit", 1, "subscribers",
		                 (json_int_t)qc_room_size(room));
	return json_pack(
	    "{s:s, s:s, s:s, s:s, s:b, s:I, s:I, s:O, s:I, s:I, s:I, s:b, s:I}", "room",
	    qc_room_name(room), "type", qc_room_type_name(ri->type), "status",
	    qc_room_status_name(ri->status), "owner", ri->owner, "implicit", 0, "max_members",
	    (json_int_t)ri->max_members, "members", (json_int_t)ri->nmembers, "metadata",
	    ri->metadata, "message_count", (json_int_t)ri->message_count, "last_activity",
	    (json_int_t)ri->last_activity, "created_at", (json_int_t)ri->created_at, "has_password",
	    ri->password[0] != '\0', "subscribers", (json_int_t)qc_room_size(room));
}

/* Whether @c may see @room in get_room / list_rooms. */
static bool visible(const struct qc_room *room, const struct qc_conn *c)
{
	const struct room_info *ri = info_of(room);

	return !ri || ri->type == QC_ROOM_PUBLIC || effective_role(ri, c) != QC_ROLE_NONE;
}

enum qc_err qc_act_get_room(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                            const char **e)
{
	struct qc_room *room;
	enum qc_err err = find_room(h, p, &room, e);

	if (err != QC_OK)
		return err;
	if (!visible(room, c))
		return qc_hub_fail(h, e, QC_E_FORBIDDEN, "members only");
	*d = qc_hub_room_json(h, room);
	return QC_OK;
}

struct list_ctx {
	struct qc_hub *h;
	struct qc_conn *c;
	json_t *out;
	size_t limit;
	size_t total;
};

static void list_one(struct qc_room *room, void *arg)
{
	struct list_ctx *lc = arg;

	if (!visible(room, lc->c))
		return;
	lc->total++;
	if (json_array_size(lc->out) < lc->limit)
		json_array_append_new(lc->out, qc_hub_room_json(lc->h, room));
}

enum qc_err qc_act_list_rooms(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                              const char **e)
{
	json_t *jl = json_object_get(p, "limit");
	struct list_ctx lc = {h, c, json_array(), LIST_DEFAULT, 0};

	if (jl && !json_is_null(jl)) {
		if (!json_is_integer(jl) || json_integer_value(jl) < 1) {
			json_decref(lc.out);
			return qc_hub_fail(h, e, QC_E_BAD_REQUEST,
			                   "\"limit\" must be a positive integer");
		}
		lc.limit = (size_t)json_integer_value(jl);
		if (lc.limit > LIST_MAX)
			lc.limit = LIST_MAX;
	}
	qc_rooms_foreach(h->rooms, list_one, &lc);
	*d = json_pack("{s:o, s:I}", "rooms", lc.out, "total", (json_int_t)lc.total);
	return QC_OK;
}

/*
 * get_room_members' answer: @ri's members, "online" when a connection of theirs is in @room
 * here or (@present, a JSON object by user id: cluster mode) on any node.
 */
static json_t *members_json(struct qc_hub *h, struct qc_room *room, struct room_info *ri,
                            json_t *present)
{
	struct member *m, *tmp;
	json_t *list = json_array();

	HASH_ITER (hh, ri->members, m, tmp) {
		struct qc_user *u = qc_conns_user(&h->conns, m->user_id);
		bool online = present && json_object_get(present, m->user_id);

		for (struct qc_conn *uc = u ? u->conns : NULL; uc && !online; uc = uc->user_next)
			online = qc_room_set_has(&uc->rooms, room);
		json_array_append_new(list, json_pack("{s:s, s:s, s:I, s:b}", "user_id", m->user_id,
		                                      "role", qc_role_name(m->role), "since",
		                                      (json_int_t)m->since, "online", online));
	}
	return json_pack("{s:s, s:o}", "room", qc_room_name(room), "members", list);
}

static enum qc_err broker_refused(struct qc_hub *h, int rc, const char *what, const char **emsg);

/* A get_room_members waiting for the room's presence on every node (cluster mode). */
struct presence_wait {
	struct qc_hub *h;
	struct qc_waiter *la;
	char name[];
};

static void presence_read(void *arg, int rc, const char *const *users, size_t n)
{
	struct presence_wait *pw = arg;
	struct qc_hub *h = pw->h;
	struct qc_conn *c = qc_waiter_conn(pw->la);
	struct qc_room *room = qc_rooms_find(h->rooms, pw->name);
	struct room_info *ri = room ? info_of(room) : NULL;
	json_t *present = json_object();
	const char *emsg = NULL;
	size_t i;

	if (rc || !present)
		qc_waiter_answer(pw->la, QC_E_UNAVAILABLE,
		                 "Redis (cluster.redis) is unavailable: the room's presence cannot "
		                 "be read",
		                 NULL);
	else if (!c)
		qc_waiter_free(pw->la);
	else if (!ri) /* deleted meanwhile */
		qc_waiter_answer(pw->la, qc_hub_fail(h, &emsg, QC_E_NOT_FOUND, "no such room"),
		                 emsg, NULL);
	else if (effective_role(ri, c) == QC_ROLE_NONE)
		qc_waiter_answer(pw->la, qc_hub_fail(h, &emsg, QC_E_FORBIDDEN, "members only"),
		                 emsg, NULL);
	else {
		for (i = 0; i < n; i++)
			json_object_set_new(present, users[i], json_true());
		qc_waiter_answer(pw->la, QC_OK, NULL, members_json(h, room, ri, present));
	}
	json_decref(present);
	free(pw);
}

enum qc_err qc_act_get_room_members(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                    const char **e)
{
	struct room_info *ri;
	struct qc_room *room;
	struct presence_wait *pw;
	enum qc_err err = find_created(h, p, &room, &ri, e);
	size_t len;
	int rc = -ENOMEM;

	if (err != QC_OK)
		return err;
	if (effective_role(ri, c) == QC_ROLE_NONE)
		return qc_hub_fail(h, e, QC_E_FORBIDDEN, "members only");
	if (!h->room_broker.presence || !h->cur) {
		*d = members_json(h, room, ri, NULL);
		return QC_OK;
	}
	/* cluster mode: who is online is known on every node only through Redis */
	len = strlen(qc_room_name(room));
	pw = calloc(1, sizeof(*pw) + len + 1);
	if (pw && (pw->la = qc_waiter_new(h, c))) {
		pw->h = h;
		memcpy(pw->name, qc_room_name(room), len + 1);
		rc = h->room_broker.presence(h->room_broker.ctx, pw->name, presence_read, pw);
		if (!rc)
			return QC_ASYNC;
		qc_waiter_free(pw->la);
	}
	free(pw);
	return broker_refused(h, rc, "the room's presence cannot be read", e);
}

static enum qc_err commit_set_status(struct qc_hub *h, struct qc_conn *c, json_t *a, json_t *rows,
                                     json_t **data, const char **emsg)
{
	struct room_info *ri;
	struct qc_room *room;
	enum qc_err err = committed_room(h, a, &room, &ri, emsg);

	if (err != QC_OK)
		return err;
	qc_room_status_parse(json_string_value(json_object_get(a, "status")), &ri->status);
	if (ri->status == QC_STATUS_CLOSED)
		close_room(h, room, "closed");
	*data = qc_hub_room_json(h, room);
	return QC_OK;
}

enum qc_err qc_act_set_room_status(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                   const char **e)
{
	json_t *js = json_object_get(p, "status");
	enum qc_room_status status;
	struct room_info *ri;
	struct qc_room *room;
	enum qc_err err = find_created(h, p, &room, &ri, e);

	if (err != QC_OK)
		return err;
	if (!json_is_string(js) || !qc_room_status_parse(json_string_value(js), &status))
		return qc_hub_fail(h, e, QC_E_BAD_REQUEST,
		                   "\"status\" must be active, inactive, archived or closed");
	if (!qc_acl_allows(effective_role(ri, c), QC_PERM_SET_STATUS, ri->type, ri->status))
		return qc_hub_fail(h, e, QC_E_FORBIDDEN,
		                   "only the owner or an admin may change the status");
	{
		char now[24];
		struct qc_durable dur = {
		    .sql = "UPDATE rooms SET status = $2, updated_at = $3::bigint WHERE name = $1",
		    .nparams = 3,
		    .params = {qc_room_name(room), qc_room_status_name(status), now},
		    .commit = commit_set_status,
		    .announce = "set_room_status",
		    .args = json_pack("{s:s, s:s}", "room", qc_room_name(room), "status",
		                      qc_room_status_name(status)),
		};

		snprintf(now, sizeof(now), "%" PRId64, qc_now_ms());
		return qc_hub_durable(h, c, &dur);
	}
}

/* Read payload "user_id" (the member acted on). */
static enum qc_err read_target(struct qc_hub *h, json_t *p, const char **user, const char **e)
{
	*user = json_string_value(json_object_get(p, "user_id"));
	if (!*user || !(*user)[0] || strlen(*user) > QC_USER_ID_MAX)
		return qc_hub_fail(h, e, QC_E_BAD_REQUEST,
		                   "\"user_id\" must be a user id of 1-64 bytes");
	return QC_OK;
}

/* The created room and the member ("user_id") an add/remove/set-role acts on. */
static enum qc_err find_target(struct qc_hub *h, json_t *p, struct qc_room **room,
                               struct room_info **ri, const char **user, const char **e)
{
	enum qc_err err = find_created(h, p, room, ri, e);

	return err == QC_OK ? read_target(h, p, user, e) : err;
}

/* The caller may manage members here, and @user is one: its record and the caller's role. */
static enum qc_err managed_member(struct qc_hub *h, struct qc_conn *c, struct room_info *ri,
                                  const char *user, enum qc_role *actor, struct member **m,
                                  const char **e)
{
	*actor = effective_role(ri, c);
	if (!qc_acl_allows(*actor, QC_PERM_MANAGE_MEMBERS, ri->type, ri->status))
		return qc_hub_fail(h, e, QC_E_FORBIDDEN, "no permission to manage members here");
	*m = member_find(ri, user);
	if (!*m)
		return qc_hub_fail(h, e, QC_E_NOT_FOUND, "not a member");
	return QC_OK;
}

static enum qc_err commit_add_member(struct qc_hub *h, struct qc_conn *c, json_t *a, json_t *rows,
                                     json_t **data, const char **emsg)
{
	const char *user = json_string_value(json_object_get(a, "user_id"));
	const char *rname = json_string_value(json_object_get(a, "role"));
	enum qc_role role = QC_ROLE_MEMBER;
	struct room_info *ri;
	struct qc_room *room;
	enum qc_err err = committed_room(h, a, &room, &ri, emsg);

	if (err != QC_OK)
		return err;
	if (member_find(ri, user))
		return qc_hub_fail(h, emsg, QC_E_ALREADY_EXISTS, "already a member");
	qc_role_parse(rname, &role);
	if (member_add(ri, user, role, num_of(json_object_get(a, "since"))))
		return qc_hub_fail(h, emsg, QC_E_INTERNAL, "out of memory");
	room_event(h, room, "member_joined",
	           json_pack("{s:s, s:s, s:s, s:O}", "room", qc_room_name(room), "user_id", user,
	                     "role", rname, "by", json_object_get(a, "by")));
	*data = json_pack("{s:s, s:s, s:s}", "room", qc_room_name(room), "user_id", user, "role",
	                  rname);
	return QC_OK;
}

enum qc_err qc_act_add_member(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                              const char **e)
{
	json_t *jrole = json_object_get(p, "role");
	enum qc_role role = QC_ROLE_MEMBER, actor;
	struct room_info *ri;
	struct qc_room *room;
	const char *user;
	enum qc_err err = find_target(h, p, &room, &ri, &user, e);

	if (err != QC_OK)
		return err;
	if (jrole && !json_is_null(jrole) &&
	    (!json_is_string(jrole) || !qc_role_parse(json_string_value(jrole), &role)))
		return qc_hub_fail(h, e, QC_E_BAD_REQUEST,
		                   "\"role\" must be admin, moderator or member");
	actor = effective_role(ri, c);
	if (!qc_acl_allows(actor, QC_PERM_MANAGE_MEMBERS, ri->type, ri->status))
		return qc_hub_fail(h, e, QC_E_FORBIDDEN, "no permission to manage members here");
	if (member_find(ri, user))
		return qc_hub_fail(h, e, QC_E_ALREADY_EXISTS, "already a member");
	if (!qc_acl_can_manage(actor, QC_ROLE_NONE, role))
		return qc_hub_fail(h, e, QC_E_FORBIDDEN, "you may not add a member with role %s",
		                   qc_role_name(role));
	err = member_slot(h, ri, e);
	if (err != QC_OK)
		return err;
	/* cluster mode: the place is taken in Redis first, as a subscribe's join does */
	if (h->room_broker.admit && ri->max_members && h->cur && !h->room_admitted_now)
		return admit_then(h, c, room, user, "add_member", NULL, p, e);
	{
		char now[24];

		snprintf(now, sizeof(now), "%" PRId64, qc_now_ms());
		struct qc_durable dur = {
		    .sql = "INSERT INTO room_members (room, user_id, role, joined_at)"
		           " VALUES ($1, $2, $3, $4::bigint)",
		    .nparams = 4,
		    .params = {qc_room_name(room), user, qc_role_name(role), now},
		    .commit = commit_add_member,
		    .announce = "add_member",
		    .settled = join_settled,
		    .args = json_pack("{s:s, s:s, s:s, s:s, s:s}", "room", qc_room_name(room),
		                      "user_id", user, "role", qc_role_name(role), "by", c->user_id,
		                      "since", now),
		};

		if (!dur.args)
			return qc_hub_fail(h, e, QC_E_INTERNAL, "out of memory");
		ri->joining++;
		return qc_hub_durable(h, c, &dur);
	}
}

static enum qc_err commit_remove_member(struct qc_hub *h, struct qc_conn *c, json_t *a,
                                        json_t *rows, json_t **data, const char **emsg)
{
	const char *who = json_string_value(json_object_get(a, "user_id"));
	struct qc_lentry *kicked;
	struct room_info *ri;
	struct qc_room *room;
	struct member *m;
	json_t *targets;
	enum qc_err err = committed_room(h, a, &room, &ri, emsg);

	if (err != QC_OK)
		return err;
	m = member_find(ri, who);
	if (!m)
		return qc_hub_fail(h, emsg, QC_E_NOT_FOUND, "not a member");
	member_del(ri, m);
	if (h->room_broker.release && !h->room_remote)
		h->room_broker.release(h->room_broker.ctx, qc_room_name(room), who);
	/* kicked: a room event addressed to its user, on every connection of theirs */
	targets = json_pack("[s]", who);
	if (h->room_broker.append) {
		/* in a cluster, on every node as it comes back (kicked()) */
		if (targets)
			broker_append(h, room, "kicked",
			              json_pack("{s:s, s:O}", "room", qc_room_name(room), "by",
			                        json_object_get(a, "by")),
			              targets, QC_ROLE_NONE, 0, event_appended, h);
		json_decref(targets);
		targets = NULL;
	}
	kicked = targets ? log_append(h, room, "kicked",
	                              json_pack("{s:s, s:O}", "room", qc_room_name(room), "by",
	                                        json_object_get(a, "by")),
	                              targets, QC_ROLE_NONE, 0)
	                 : NULL;
	json_decref(targets);
	if (kicked) {
		user_frames(h, who, room, &kicked->f);
		if (qc_frames_get(h, &kicked->f, QC_ENC_NATIVE))
			qc_log_compact(kicked);
	}
	if (!h->room_broker.append)
		unsubscribe_user(h, room, who);
	room_event(h, room, "member_left",
	           json_pack("{s:s, s:s, s:O}", "room", qc_room_name(room), "user_id", who, "by",
	                     json_object_get(a, "by")));
	*data =
	    json_pack("{s:s, s:s, s:b}", "room", qc_room_name(room), "user_id", who, "removed", 1);
	return QC_OK;
}

enum qc_err qc_act_remove_member(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                 const char **e)
{
	struct room_info *ri;
	struct qc_room *room;
	struct member *m;
	const char *user;
	enum qc_role actor;
	enum qc_err err = find_target(h, p, &room, &ri, &user, e);
	struct qc_durable dur = {
	    .sql = "DELETE FROM room_members WHERE room = $1 AND user_id = $2",
	    .nparams = 2,
	    .commit = commit_remove_member,
	    .announce = "remove_member",
	};

	if (err == QC_OK)
		err = managed_member(h, c, ri, user, &actor, &m, e);
	if (err != QC_OK)
		return err;
	if (!qc_acl_can_manage(actor, m->role, QC_ROLE_NONE))
		return qc_hub_fail(h, e, QC_E_FORBIDDEN, "you may not remove a member with role %s",
		                   qc_role_name(m->role));
	dur.params[0] = qc_room_name(room);
	dur.params[1] = user;
	dur.args = json_pack("{s:s, s:s, s:s}", "room", qc_room_name(room), "user_id", user, "by",
	                     c->user_id);
	return qc_hub_durable(h, c, &dur);
}

static enum qc_err commit_set_role(struct qc_hub *h, struct qc_conn *c, json_t *a, json_t *rows,
                                   json_t **data, const char **emsg)
{
	const char *user = json_string_value(json_object_get(a, "user_id"));
	struct room_info *ri;
	struct qc_room *room;
	struct member *m;
	enum qc_err err = committed_room(h, a, &room, &ri, emsg);

	if (err != QC_OK)
		return err;
	m = member_find(ri, user);
	if (!m)
		return qc_hub_fail(h, emsg, QC_E_NOT_FOUND, "not a member");
	qc_role_parse(json_string_value(json_object_get(a, "role")), &m->role);
	qc_olog_set_role(&m->om, (uint8_t)m->role);
	*data = json_pack("{s:s, s:s, s:O}", "room", qc_room_name(room), "user_id", user, "role",
	                  json_object_get(a, "role"));
	return QC_OK;
}

enum qc_err qc_act_set_member_role(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                   const char **e)
{
	json_t *jrole = json_object_get(p, "role");
	enum qc_role role, actor;
	struct room_info *ri;
	struct qc_room *room;
	struct member *m;
	const char *user;
	enum qc_err err = find_target(h, p, &room, &ri, &user, e);

	if (err != QC_OK)
		return err;
	if (!json_is_string(jrole) || !qc_role_parse(json_string_value(jrole), &role))
		return qc_hub_fail(h, e, QC_E_BAD_REQUEST,
		                   "\"role\" must be admin, moderator or member");
	err = managed_member(h, c, ri, user, &actor, &m, e);
	if (err != QC_OK)
		return err;
	if (!qc_acl_can_manage(actor, m->role, role))
		return qc_hub_fail(h, e, QC_E_FORBIDDEN, "you may not change %s to %s",
		                   qc_role_name(m->role), qc_role_name(role));
	{
		struct qc_durable dur = {
		    .sql = "UPDATE room_members SET role = $3 WHERE room = $1 AND user_id = $2",
		    .nparams = 3,
		    .params = {qc_room_name(room), m->user_id, qc_role_name(role)},
		    .commit = commit_set_role,
		    .announce = "set_member_role",
		    .args = json_pack("{s:s, s:s, s:s}", "room", qc_room_name(room), "user_id",
		                      m->user_id, "role", qc_role_name(role)),
		};

		return qc_hub_durable(h, c, &dur);
	}
}

struct qc_olog *qc_hub_room_log(struct qc_hub *h, const char *room)
{
	struct qc_room *r = qc_rooms_find(h->rooms, room);
	struct room_info *ri = r ? info_of(r) : NULL;

	return ri ? ri->log : NULL;
}

/* ---- stats and teardown ------------------------------------------------------------------ */

struct room_counts {
	uint32_t active;
	uint64_t members;
};

static void count_one(struct qc_room *room, void *arg)
{
	struct room_counts *rc = arg;
	struct room_info *ri = info_of(room);

	if (!ri) {
		rc->active++;
		return;
	}
	if (ri->status == QC_STATUS_ACTIVE)
		rc->active++;
	rc->members += ri->nmembers;
}

void qc_hub_room_counts(struct qc_hub *h, uint32_t *active, uint64_t *members)
{
	struct room_counts rc = {0, 0};

	qc_rooms_foreach(h->rooms, count_one, &rc);
	*active = rc.active;
	*members = rc.members;
}

static void free_one(struct qc_room *room, void *arg)
{
	info_free(info_of(room));
	qc_room_set_ext(room, NULL);
}

static void gaps_free(struct qc_hub *h);

void qc_hub_rooms_teardown(struct qc_hub *h)
{
	struct qc_room_owner *o, *tmp;

	qc_rooms_foreach(h->rooms, free_one, NULL);
	HASH_ITER (hh, h->room_owners, o, tmp) {
		HASH_DEL(h->room_owners, o);
		free(o);
	}
	qc_throttle_free(h->pw_fails);
	h->pw_fails = NULL;
	gaps_free(h);
}

/* ---- start-up ---------------------------------------------------------------------------- */

static const char *col(json_t *row, size_t i)
{
	return json_string_value(json_array_get(row, i));
}

int qc_hub_rooms_load(struct qc_hub *h, json_t *rooms, json_t *members, char *err, size_t errlen)
{
	struct qc_room *room;
	json_t *row;
	size_t i;

	/* name, owner, type, status, password_hash, max_members, metadata, created_at */
	json_array_foreach (rooms, i, row) {
		json_t *meta = col(row, 6) ? json_loads(col(row, 6), 0, NULL) : NULL;
		int ret =
		    install_room(h, col(row, 0), col(row, 1), col(row, 2), col(row, 3), col(row, 4),
		                 col(row, 5) ? strtoll(col(row, 5), NULL, 10) : 0, meta,
		                 strtoll(col(row, 7), NULL, 10), false, &room);

		json_decref(meta);
		/* loaded rooms count toward rooms.max_per_owner and rooms.max_total (even above) */
		if (!ret)
			ret = owner_add(h, col(row, 1), false);
		if (ret) {
			snprintf(err, errlen, "room \"%s\": %s", col(row, 0), strerror(-ret));
			return -1;
		}
	}
	/* room, user_id, role, joined_at */
	json_array_foreach (members, i, row) {
		struct room_info *ri;
		enum qc_role role;
		struct member *m;

		room = qc_rooms_find(h->rooms, col(row, 0));
		ri = room ? info_of(room) : NULL;
		if (!ri || !qc_role_parse(col(row, 2), &role) ||
		    member_add(ri, col(row, 1), role, strtoll(col(row, 3), NULL, 10))) {
			snprintf(err, errlen, "member %s of room \"%s\" cannot be loaded",
			         col(row, 1), col(row, 0));
			return -1;
		}
		m = member_find(ri, col(row, 1));
		m->since = strtoll(col(row, 3), NULL, 10);
	}
	return 0;
}

int qc_hub_rooms_history_load(struct qc_hub *h, json_t *rooms, json_t *history, char *err,
                              size_t errlen)
{
	int64_t now = qc_now_ms();
	struct qc_room *room;
	json_t *row;
	size_t i;

	/* each created room's log, named by its stored epoch (a new one when it has none) */
	json_array_foreach (rooms, i, row) {
		const char *epoch = json_array_size(row) > 8 ? col(row, 8) : NULL;
		struct qc_log *l;

		room = qc_rooms_find(h->rooms, col(row, 0));
		if (!room || qc_room_log(room))
			continue;
		l = qc_log_new(h, QC_LOG_ROOM, h->cfg->rooms.history_size,
		               h->cfg->rooms.history_ttl_s, epoch, 0);
		if (!l) {
			snprintf(err, errlen, "room \"%s\": out of memory", col(row, 0));
			return -1;
		}
		qc_room_set_log(room, l);
	}
	/* room, seq, event, data, target_role, target_users, created_at: ascending per room */
	json_array_foreach (history, i, row) {
		json_t *data = json_loads(col(row, 3), 0, NULL);
		json_t *targets = col(row, 5) ? json_loads(col(row, 5), 0, NULL) : NULL;
		enum qc_role role = QC_ROLE_NONE;
		struct qc_log *l;
		int ret;

		room = qc_rooms_find(h->rooms, col(row, 0));
		l = room && info_of(room) ? qc_room_log(room) : NULL;
		if (col(row, 4))
			qc_role_parse(col(row, 4), &role);
		ret = l && json_is_object(data)
		          ? qc_log_load(l, strtoull(col(row, 1), NULL, 10), col(row, 2),
		                        json_incref(data), json_is_array(targets) ? targets : NULL,
		                        (uint8_t)role, now - strtoll(col(row, 6), NULL, 10))
		          : 0;
		json_decref(data);
		json_decref(targets);
		if (ret) {
			snprintf(err, errlen, "the log of room \"%s\": out of memory", col(row, 0));
			return -1;
		}
	}
	/*
	 * A stored epoch with nothing stored after it names a life whose entries are gone: a
	 * new life (a new epoch), so no old position can be taken for one in it.
	 */
	json_array_foreach (rooms, i, row) {
		struct qc_log *l;

		room = qc_rooms_find(h->rooms, col(row, 0));
		l = room ? qc_room_log(room) : NULL;
		if (!l || (l->last_seq && json_array_size(row) > 8 && col(row, 8)))
			continue;
		if (l->last_seq == 0)
			qc_random_hex(l->epoch, QC_EPOCH_LEN / 2);
		l->unsaved = 1;
	}
	return 0;
}

static void save_epoch(struct qc_room *room, void *arg)
{
	struct qc_log *l = qc_room_log(room);

	if (l && l->unsaved && info_of(room)) {
		l->unsaved = 0;
		persist_epoch(arg, room);
	}
}

void qc_hub_rooms_store_ready(struct qc_hub *h)
{
	if (qc_hub_persistent(h))
		qc_rooms_foreach(h->rooms, save_epoch, h);
}

/* ---- cluster mode: room events through the room broker (broker.h, cluster_room.c) -------- */

void qc_hub_set_room_broker(struct qc_hub *h, const struct qc_room_broker *b)
{
	h->room_broker = *b;
}

bool qc_hub_room_watched(struct qc_hub *h, const char *room)
{
	struct qc_room *r = qc_rooms_find(h->rooms, room);

	return r && (qc_room_size(r) || qc_room_held(r));
}

char *qc_hub_room_local_users(struct qc_hub *h, const char *room)
{
	struct qc_room *r = qc_rooms_find(h->rooms, room);
	struct qc_membership *mb;
	json_t *seen, *list;
	const char *user;
	json_t *v;
	char *text = NULL;

	if (!r || !qc_room_size(r))
		return NULL;
	seen = json_object();
	for (mb = qc_room_members(r); seen && mb; mb = mb->room_next)
		json_object_set_new(seen, ((struct qc_conn *)mb->conn)->user_id, json_true());
	list = json_array();
	json_object_foreach (seen, user, v)
		json_array_append_new(list, json_string(user));
	if (list && json_array_size(list))
		text = json_dumps(list, JSON_COMPACT);
	json_decref(list);
	json_decref(seen);
	return text;
}

/*
 * An event as the broker carries it: {"n": name, "d": data, "u": target_users?, "r":
 * target_role?, "x": "<node>:<connection id>" of exclude_self's sender?}. The sender's
 * connection is on one node: the others exclude nobody.
 */
static char *event_payload(struct qc_hub *h, const char *name, json_t *data, json_t *targets,
                           uint8_t role, uint64_t exclude)
{
	json_t *j = json_pack("{s:s, s:O}", "n", name, "d", data);
	char x[48], *out;

	if (!j)
		return NULL;
	if (targets)
		json_object_set(j, "u", targets);
	if (role != QC_ROLE_NONE)
		json_object_set_new(j, "r", json_string(qc_role_name((enum qc_role)role)));
	if (exclude) {
		snprintf(x, sizeof(x), "%s:%" PRIu64, h->node, exclude);
		json_object_set_new(j, "x", json_string(x));
	}
	out = json_dumps(j, QC_JSON_DUMP);
	json_decref(j);
	return out;
}

struct bevent {
	json_t *root;
	const char *name;
	json_t *data; /* a copy: the log's */
	json_t *targets;
	uint8_t role;
	uint64_t exclude;
};

static int event_parse(struct qc_hub *h, const char *payload, size_t len, struct bevent *ev)
{
	const char *x, *r;
	size_t nl = strlen(h->node);
	enum qc_role role = QC_ROLE_NONE;

	memset(ev, 0, sizeof(*ev));
	ev->root = json_loadb(payload, len, 0, NULL);
	ev->name = json_string_value(json_object_get(ev->root, "n"));
	ev->targets = json_object_get(ev->root, "u");
	r = json_string_value(json_object_get(ev->root, "r"));
	x = json_string_value(json_object_get(ev->root, "x"));
	if (!ev->name || !json_is_object(json_object_get(ev->root, "d")) ||
	    (ev->targets && !json_is_array(ev->targets)) || (r && !qc_role_parse(r, &role))) {
		json_decref(ev->root);
		return -EINVAL;
	}
	ev->role = (uint8_t)role;
	if (x && !strncmp(x, h->node, nl) && x[nl] == ':')
		ev->exclude = strtoull(x + nl + 1, NULL, 10);
	ev->data = json_deep_copy(json_object_get(ev->root, "d"));
	return ev->data ? 0 : -ENOMEM;
}

/* Event @name with @data (stolen) of @room to the broker; @cb gets its seq. */
static int broker_append(struct qc_hub *h, struct qc_room *room, const char *name, json_t *data,
                         json_t *targets, uint8_t role, uint64_t exclude, qc_room_append_cb cb,
                         void *arg)
{
	char *payload = NULL;
	int rc = -ENOMEM;

	/* another node's change: that node sent its events */
	if (h->room_remote) {
		json_decref(data);
		return -EALREADY;
	}
	payload = data ? event_payload(h, name, data, targets, role, exclude) : NULL;
	if (payload)
		rc = h->room_broker.append(h->room_broker.ctx, qc_room_name(room), payload,
		                           strlen(payload), cb, arg);

	free(payload);
	json_decref(data);
	return rc;
}

/* What an event from another node changes here, besides its delivery (the room may go). */
static void apply_effects(struct qc_hub *h, struct qc_room *room, const struct bevent *ev,
                          struct qc_lentry *e)
{
	struct room_info *ri = info_of(room);
	const char *user = json_string_value(json_object_get(ev->data, "user_id"));
	enum qc_role role = QC_ROLE_MEMBER;
	struct member *m;

	if (!strcmp(ev->name, "member_joined") && ri && user && !member_find(ri, user)) {
		qc_role_parse(json_string_value(json_object_get(ev->data, "role")), &role);
		member_add(ri, user, role, qc_now_ms());
	} else if (!strcmp(ev->name, "member_left") && ri && user && (m = member_find(ri, user))) {
		member_del(ri, m);
	} else if (!strcmp(ev->name, "kicked") && json_array_size(ev->targets) == 1) {
		user = json_string_value(json_array_get(ev->targets, 0));
		if (ri && (m = member_find(ri, user)))
			member_del(ri, m);
		user_frames(h, user, room, &e->f);
		if (qc_frames_get(h, &e->f, QC_ENC_NATIVE))
			qc_log_compact(e);
		unsubscribe_user(h, room, user);
	} else if (!strcmp(ev->name, "room_closed")) {
		if (ri)
			ri->status = QC_STATUS_CLOSED;
		unsubscribe_all(h, room);
	}
}

/* One room event from the broker applied to @room's log @l and fanned out here. */
static void event_apply(struct qc_hub *h, struct qc_room *room, struct qc_log *l, uint64_t seq,
                        const char *epoch, const char *payload, size_t len)
{
	struct qc_lentry *e;
	struct bevent ev;
	bool dup;

	if (event_parse(h, payload, len, &ev)) {
		h->room_events_bad++;
		return;
	}
	/* a gap that is still there (the broker's log no longer reaches back): it restarts */
	if (l->synced && !strcmp(epoch, l->epoch) && seq > l->last_seq + 1)
		h->room_gaps_lost++;
	/* the log owns ev.data, and frees it once the event is framed (qc_log_compact): held here
	 * for apply_effects, which reads it after the fan-out */
	json_incref(ev.data);
	e = qc_log_put(l, seq, epoch, ev.name, ev.data, ev.targets, ev.role, ev.exclude, &dup);
	l->synced = 1;
	if (e) {
		if (strcmp(ev.name, "kicked"))
			fan_out(h, room, e);
		/* last: the room (and its log) may go */
		apply_effects(h, room, &ev, e);
	}
	json_decref(ev.data);
	json_decref(ev.root);
}

/* The log of room @name if this node follows it (members here, or held), else NULL. */
static struct qc_log *followed(struct qc_hub *h, const char *name, struct qc_room **room)
{
	*room = qc_rooms_find(h->rooms, name);
	if (!*room || (!qc_room_size(*room) && !qc_room_held(*room)))
		return NULL;
	return room_log(h, *room);
}

/*
 * A room whose log is read back from the broker over a gap (a channel message lost: its
 * subscriber link was down): the events arriving meanwhile wait, in order, behind the read.
 */
struct room_gap {
	UT_hash_handle hh;
	struct qc_hub *h;
	struct qc_held held;
	char name[];
};

#define GAP_HELD_MAX 10000 /* events held behind one read-back; more: applied as they come */

static void gap_free(struct room_gap *g)
{
	qc_held_clear(&g->held);
	free(g);
}

/* Read-backs still out at the end: their answers never come (the broker is stopped first). */
static void gaps_free(struct qc_hub *h)
{
	struct room_gap *g, *tmp;

	HASH_ITER (hh, h->room_gaps, g, tmp) {
		HASH_DEL(h->room_gaps, g);
		gap_free(g);
	}
}

static bool gap_hold(struct room_gap *g, uint64_t seq, const char *epoch, const char *payload,
                     size_t len)
{
	return !qc_held_push(&g->held, seq, epoch, payload, len);
}

static void gap_read(void *arg, int rc, uint64_t seq, const char *epoch,
                     const struct qc_room_entry *ents, size_t n)
{
	struct room_gap *g = arg;
	struct qc_hub *h = g->h;
	struct qc_room *room;
	struct qc_held_msg *m;
	struct qc_log *l;

	(void)seq;
	HASH_DEL(h->room_gaps, g);
	/* what the broker's log has after the position, oldest first; then what waited */
	for (size_t i = n; !rc && i-- > 0;) {
		if (!(l = followed(h, g->name, &room)))
			break;
		if (strcmp(epoch, l->epoch) || ents[i].seq > l->last_seq)
			event_apply(h, room, l, ents[i].seq, epoch, ents[i].payload, ents[i].len);
	}
	while ((m = qc_held_pop(&g->held))) {
		if ((l = followed(h, g->name, &room)))
			event_apply(h, room, l, m->seq, m->epoch, m->data, m->len);
		free(m);
	}
	gap_free(g);
}

/* Read @name's log back from after what @l has; false when it cannot be (nothing waits). */
static struct room_gap *gap_open(struct qc_hub *h, const char *name, struct qc_log *l)
{
	size_t len = strlen(name);
	struct room_gap *g;

	if (!h->room_broker.read || !(g = calloc(1, sizeof(*g) + len + 1)))
		return NULL;
	g->h = h;
	qc_held_init(&g->held, GAP_HELD_MAX);
	memcpy(g->name, name, len + 1);
	if (h->room_broker.read(h->room_broker.ctx, name, l->last_seq, gap_read, g)) {
		free(g);
		return NULL;
	}
	HASH_ADD(hh, h->room_gaps, name[0], len, g);
	h->room_gap_reads++;
	return g;
}

void qc_hub_room_broker_event(struct qc_hub *h, const char *name, uint64_t seq, const char *epoch,
                              const char *payload, size_t len)
{
	struct room_gap *g;
	struct qc_room *room;
	struct qc_log *l;

	HASH_FIND_STR(h->room_gaps, name, g);
	/*
	 * only rooms with members here (or held for a resume being rebuilt): a message may still
	 * come after the last one left
	 */
	l = followed(h, name, &room);
	/* behind a read-back: what comes after the gap waits; the next event in order need not */
	if (g && (g->held.n || !l || strcmp(epoch, l->epoch) || seq > l->last_seq + 1) &&
	    gap_hold(g, seq, epoch, payload, len))
		return;
	if (!l)
		return;
	/* a gap in the same life of a log this node follows: read it back first */
	if (!g && l->synced && !strcmp(epoch, l->epoch) && seq > l->last_seq + 1 &&
	    (g = gap_open(h, name, l)) && gap_hold(g, seq, epoch, payload, len))
		return;
	event_apply(h, room, l, seq, epoch, payload, len);
}

void qc_hub_room_catch_up(struct qc_hub *h, const char *name)
{
	struct room_gap *g;
	struct qc_room *room;
	struct qc_log *l;

	HASH_FIND_STR(h->room_gaps, name, g);
	if (!g && (l = followed(h, name, &room)) && l->synced)
		gap_open(h, name, l);
}

/* A send_message / broadcast in the broker: answered when it has its seq. */
struct bsend {
	struct qc_hub *h;
	qc_publish_done_fn done; /* NULL: nobody waits */
	void *arg;
	char room[QC_ROOM_NAME_MAX + 1];
	json_t *ev_data; /* for the room's offline members */
	json_t *targets;
	uint8_t role;
};

/* A room message for the members of a created room no node has a session of (cluster mode). */
struct absentees {
	struct qc_hub *h;
	json_t *data;
	size_t batches;
};

static void absent_answer(void *arg, int rc, const char *const *users, size_t n)
{
	struct absentees *a = arg;

	/* no session anywhere, or Redis did not say: the user's offline queue keeps it */
	(void)rc;
	for (size_t i = 0; i < n; i++)
		qc_hub_offline_push(a->h, users[i], "room_message", a->data);
	if (!--a->batches) {
		json_decref(a->data);
		free(a);
	}
}

/*
 * Cluster mode: the members @data (a room_message) is addressed to (@targets, @role) that have
 * no session here are asked of Redis; those with none anywhere get it in their own offline
 * queue (the shared store's rows: the next connection on any node takes it), each once. The
 * other nodes' members with a session get it from the room, as everyone here does.
 */
static void offline_members(struct qc_hub *h, struct room_info *ri, json_t *data, json_t *targets,
                            uint8_t role)
{
	size_t cap = targets ? json_array_size(targets) : ri->nmembers, n = 0, i;
	const char **users = calloc(cap ? cap : 1, sizeof(*users));
	bool *unsent = calloc(cap ? cap : 1, sizeof(*unsent));
	struct absentees *a = calloc(1, sizeof(*a));
	struct member *m, *tmp, *all;
	json_t *v;

	if (!users || !unsent || !a || !h->cfg->offline.max_per_user)
		goto out;
	/* only the named (O(targets), each once), or every member */
	json_array_foreach (targets, i, v) {
		m = member_find(ri, json_string_value(v));
		for (size_t j = 0; m && j < n; j++)
			if (users[j] == m->user_id)
				m = NULL;
		if (m && (role == QC_ROLE_NONE || m->role == role) &&
		    !qc_conns_user(&h->conns, m->user_id))
			users[n++] = m->user_id;
	}
	all = targets ? NULL : ri->members;
	HASH_ITER (hh, all, m, tmp)
		if (n < cap && (role == QC_ROLE_NONE || m->role == role) &&
		    !qc_conns_user(&h->conns, m->user_id))
			users[n++] = m->user_id;
	if (!n)
		goto out;
	a->h = h;
	a->data = json_incref(data);
	a->batches = h->ibroker.absent(h->ibroker.ctx, users, n, absent_answer, a, unsent);
	for (i = 0; i < n; i++)
		if (unsent[i])
			qc_hub_offline_push(h, users[i], "room_message", data);
	if (!a->batches)
		json_decref(a->data);
	else
		a = NULL; /* the answers' */
out:
	free(users);
	free(unsent);
	free(a);
}

static void sent(void *arg, int rc, uint64_t seq)
{
	struct bsend *s = arg;
	struct qc_room *room = qc_rooms_find(s->h->rooms, s->room);
	struct room_info *ri = room ? info_of(room) : NULL;

	if (rc) {
		if (s->done)
			s->done(s->arg, QC_E_UNAVAILABLE,
			        "Redis (cluster.redis) is unavailable: the message was not sent",
			        NULL);
	} else {
		if (ri) {
			ri->message_count++;
			ri->last_activity = qc_now_ms();
			if (s->h->ibroker.absent)
				offline_members(s->h, ri, s->ev_data, s->targets, s->role);
			else
				qc_olog_append(ri->log, s->ev_data, s->targets, s->role);
		}
		if (s->done)
			s->done(s->arg, QC_OK, NULL,
			        json_pack("{s:s, s:O, s:I}", "room", s->room, "message_id",
			                  json_object_get(s->ev_data, "message_id"), "seq",
			                  (json_int_t)seq));
	}
	json_decref(s->ev_data);
	json_decref(s->targets);
	free(s);
}

/* The answer to a request the room broker would not take (@rc from it): nothing was done. */
static enum qc_err broker_refused(struct qc_hub *h, int rc, const char *what, const char **emsg)
{
	if (rc == -ENOSPC)
		return qc_hub_fail(h, emsg, QC_E_LIMIT_EXCEEDED,
		                   "cluster.max_inflight: Redis has too many commands waiting");
	if (rc == -ENOMEM)
		return qc_hub_fail(h, emsg, QC_E_INTERNAL, "out of memory");
	return qc_hub_fail(h, emsg, QC_E_UNAVAILABLE, "Redis (cluster.redis) is unavailable: %s",
	                   what);
}

static enum qc_err send_broker(struct qc_hub *h, struct qc_conn *c, struct qc_room *room,
                               json_t *ev_data, json_t *targets, uint8_t role, bool exclude_self,
                               qc_publish_done_fn done, void *arg, const char **emsg)
{
	struct bsend *s = calloc(1, sizeof(*s));
	int rc;

	if (!s) {
		json_decref(ev_data);
		return qc_hub_fail(h, emsg, QC_E_INTERNAL, "out of memory");
	}
	s->h = h;
	s->done = done;
	s->arg = arg;
	snprintf(s->room, sizeof(s->room), "%s", qc_room_name(room));
	s->ev_data = ev_data;
	s->targets = targets ? json_incref(targets) : NULL;
	s->role = role;
	rc = broker_append(h, room, "room_message", json_deep_copy(ev_data), targets, role,
	                   exclude_self && c ? c->id : 0, sent, s);
	if (!rc)
		return QC_ASYNC;
	json_decref(s->ev_data);
	json_decref(s->targets);
	free(s);
	return broker_refused(h, rc, "the message was not sent", emsg);
}

/*
 * Whether a subscribe must read the room's log from the broker first: this node does not
 * follow it yet, or the subscribe reads back from before what it keeps (same epoch).
 */
static bool must_sync(struct qc_room *room, json_t *opts)
{
	struct qc_log *l = room ? qc_room_log(room) : NULL;
	const char *epoch;
	uint64_t since;

	if (!l || !l->synced)
		return true;
	if (!read_since(opts, &since, &epoch) || (epoch && strcmp(epoch, l->epoch)))
		return false;
	return since < l->last_seq && !qc_log_reaches(l, l->epoch, since);
}

struct bsync {
	struct qc_hub *h;
	struct qc_waiter *la;
	const char *action; /* a request to handle again (static text; @opts its payload) or NULL */
	char *name;
	char *password;
	json_t *opts;
};

static void bsync_free(struct bsync *s);

/* A subscribe to handle again later (struct bsync); NULL on ENOMEM. */
static struct bsync *bsync_new(struct qc_hub *h, struct qc_conn *c, const char *name,
                               const char *password, json_t *opts)
{
	struct bsync *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->h = h;
	s->opts = json_incref(opts);
	if (!(s->la = qc_waiter_new(h, c)) || !(s->name = strdup(name)) ||
	    (password && !(s->password = strdup(password)))) {
		bsync_free(s);
		return NULL;
	}
	return s;
}

static void bsync_free(struct bsync *s)
{
	qc_waiter_free(s->la);
	free(s->name);
	free(s->password);
	json_decref(s->opts);
	free(s);
}

/*
 * The broker's read of @l's log (position @seq of @epoch, entries newest first): @l follows
 * it from now (what it kept is dropped when it was not the broker's log, or another life of
 * it), and the entries before what @l keeps go in front of it (what the channel brought
 * meanwhile stays).
 */
static void follow_read(struct qc_hub *h, struct qc_log *l, uint64_t seq, const char *epoch,
                        const struct qc_room_entry *ents, size_t n)
{
	struct bevent ev;

	if (!l->synced || strcmp(epoch, l->epoch))
		qc_log_reset(l, epoch, seq);
	l->synced = 1;

	for (size_t i = 0; i < n; i++) {
		if (ents[i].seq >= qc_log_first(l))
			continue;
		if (event_parse(h, ents[i].payload, ents[i].len, &ev))
			break;
		if (qc_log_prepend(l, ents[i].seq, ev.name, ev.data, ev.targets, ev.role,
		                   ev.exclude)) {
			json_decref(ev.root);
			break;
		}
		json_decref(ev.root);
	}
}

static void synced(void *arg, int rc, uint64_t seq, const char *epoch,
                   const struct qc_room_entry *ents, size_t n)
{
	struct bsync *s = arg;
	struct qc_hub *h = s->h;
	struct qc_conn *c = qc_waiter_conn(s->la);
	struct qc_room *room = qc_rooms_find(h->rooms, s->name);
	bool made = false;
	struct qc_log *l;

	if (rc) {
		qc_waiter_answer(
		    s->la, QC_E_UNAVAILABLE,
		    "Redis (cluster.redis) is unavailable: the room's log cannot be read", NULL);
		s->la = NULL; /* answered and freed */
		goto out;
	}
	if (!room) {
		room = qc_rooms_create(h->rooms, s->name);
		made = room != NULL;
	}
	l = room ? room_log(h, room) : NULL;
	if (l)
		follow_read(h, l, seq, epoch, ents, n);
	if (c) {
		h->room_synced_now = true;
		qc_waiter_subscribe(s->la, c, s->name, s->password, s->opts);
		h->room_synced_now = false;
	}
	/* nobody joined the room made to hold the log */
	room = made ? qc_rooms_find(h->rooms, s->name) : NULL;
	if (room && !qc_room_size(room) && !qc_room_kept(room))
		qc_rooms_delete(h->rooms, room);
out:
	bsync_free(s);
}

static enum qc_err sync_then_subscribe(struct qc_hub *h, struct qc_conn *c, const char *name,
                                       const char *password, json_t *opts, const char **emsg)
{
	struct bsync *s = bsync_new(h, c, name, password, opts);
	const char *epoch;
	uint64_t since = UINT64_MAX;
	int rc;

	if (!s)
		return qc_hub_fail(h, emsg, QC_E_INTERNAL, "out of memory");
	read_since(opts, &since, &epoch);
	/* its channel first: what is logged after the read comes on it */
	h->room_broker.watch(h->room_broker.ctx, name);
	rc = h->room_broker.read(h->room_broker.ctx, name, since, synced, s);
	if (!rc)
		return QC_ASYNC;
	bsync_free(s);
	return broker_refused(h, rc, "the room's log cannot be read", emsg);
}

/* The changes of created rooms announced so far are applied: the subscribe runs again. */
static void settled(void *arg, int rc)
{
	struct bsync *s = arg;
	struct qc_hub *h = s->h;
	struct qc_conn *c = qc_waiter_conn(s->la);

	/* Redis did not say: decided on what this node knows */
	(void)rc;
	if (c) {
		h->room_settled_now = true;
		qc_waiter_subscribe(s->la, c, s->name, s->password, s->opts);
		h->room_settled_now = false;
	}
	bsync_free(s);
}

/* QC_ASYNC: the subscribe runs again when the changes are in; QC_OK: it goes on now. */
static enum qc_err settle_then_subscribe(struct qc_hub *h, struct qc_conn *c, const char *name,
                                         const char *password, json_t *opts, const char **emsg)
{
	struct bsync *s = bsync_new(h, c, name, password, opts);

	if (!s)
		return qc_hub_fail(h, emsg, QC_E_INTERNAL, "out of memory");
	if (!h->room_broker.settle(h->room_broker.ctx, settled, s))
		return QC_ASYNC;
	/* Redis down: the caller decides on what this node knows */
	bsync_free(s);
	return QC_OK;
}

/* ---- cluster mode: a room's log read for a session rebuilt on this node ---------------- */

struct bload {
	struct qc_hub *h;
	qc_hub_loaded_fn done;
	void *arg;
	char name[QC_ROOM_NAME_MAX + 1];
};

static void loaded(void *arg, int rc, uint64_t seq, const char *epoch,
                   const struct qc_room_entry *ents, size_t n)
{
	struct bload *s = arg;
	struct qc_room *room = qc_rooms_find(s->h->rooms, s->name);
	struct qc_log *l = room && !rc ? room_log(s->h, room) : NULL;

	if (l)
		follow_read(s->h, l, seq, epoch, ents, n);
	s->done(s->arg, rc);
	free(s);
}

int qc_hub_room_load(struct qc_hub *h, const char *name, json_t *opts, qc_hub_loaded_fn done,
                     void *arg)
{
	struct qc_room *room = qc_rooms_find(h->rooms, name);
	struct bload *s;
	const char *epoch;
	uint64_t since = UINT64_MAX;
	int rc;

	if (!h->room_broker.read || strlen(name) > QC_ROOM_NAME_MAX ||
	    (room && qc_room_size(room) && !must_sync(room, opts)))
		return 1;
	if (!room && !(room = qc_rooms_create(h->rooms, name)))
		return -ENOMEM;
	if (!(s = calloc(1, sizeof(*s)))) {
		if (!qc_room_size(room) && !qc_room_kept(room) && !qc_room_held(room))
			qc_rooms_delete(h->rooms, room);
		return -ENOMEM;
	}
	s->h = h;
	s->done = done;
	s->arg = arg;
	snprintf(s->name, sizeof(s->name), "%s", name);
	/* held (and its channel watched) from now: what is logged after the read comes on it */
	qc_room_hold(room);
	read_since(opts, &since, &epoch);
	h->room_broker.watch(h->room_broker.ctx, name);
	rc = h->room_broker.read(h->room_broker.ctx, name, since, loaded, s);
	if (rc) {
		free(s);
		qc_hub_room_unload(h, name);
	}
	return rc;
}

void qc_hub_room_unload(struct qc_hub *h, const char *name)
{
	struct qc_room *room = qc_rooms_find(h->rooms, name);
	struct qc_log *l;

	if (!room || !qc_room_held(room))
		return;
	if (qc_room_unhold(room)) {
		qc_rooms_delete(h->rooms, room);
		return;
	}
	/* a kept room nobody here joined: its log no longer follows the broker's */
	l = qc_room_log(room);
	if (l && !qc_room_size(room) && !qc_room_held(room))
		l->synced = 0;
}

/* ---- cluster mode: changes of created rooms, announced to every node ------------------- */

static const struct {
	const char *op;
	qc_commit_fn commit;
} announced_ops[] = {
    {"join", commit_join},
    {"create_room", commit_create_room},
    {"delete_room", commit_delete_room},
    {"set_room_status", commit_set_status},
    {"add_member", commit_add_member},
    {"remove_member", commit_remove_member},
    {"set_member_role", commit_set_role},
    {"create_subscription", qc_psub_commit_create},
    {"update_subscription", qc_psub_commit_update},
    {"delete_subscription", qc_psub_commit_delete},
};

int qc_hub_room_announce(struct qc_hub *h, const char *op, json_t *args, qc_room_append_cb cb,
                         void *arg)
{
	json_t *j;
	char *payload;
	int rc;

	if (!h->room_broker.announce)
		return -ENOTSUP;
	j = json_pack("{s:s, s:s, s:O}", "op", op, "node", h->node, "a", args);
	payload = j ? json_dumps(j, QC_JSON_DUMP) : NULL;
	json_decref(j);
	if (!payload)
		return -ENOMEM;
	rc = h->room_broker.announce(h->room_broker.ctx, payload, strlen(payload), cb, arg);
	free(payload);
	return rc;
}

void qc_hub_room_announced(struct qc_hub *h, const char *payload, size_t len)
{
	json_t *j = json_loadb(payload, len, 0, NULL), *data = NULL;
	const char *op = json_string_value(json_object_get(j, "op"));
	const char *node = json_string_value(json_object_get(j, "node"));
	json_t *args = json_object_get(j, "a");
	const char *emsg;

	if (!op || !node || !json_is_object(args)) {
		h->room_events_bad++;
	} else if (strcmp(node, h->node)) {
		for (size_t i = 0; i < sizeof(announced_ops) / sizeof(*announced_ops); i++) {
			if (strcmp(op, announced_ops[i].op))
				continue;
			/* the same change as on its node, without its events (that node sent them)
			 */
			h->room_remote = true;
			announced_ops[i].commit(h, NULL, args, NULL, &data, &emsg);
			h->room_remote = false;
			json_decref(data);
			break;
		}
	}
	json_decref(j);
}

/* ---- cluster mode: capacity counted in Redis ------------------------------------------- */

static void admitted(void *arg, int rc, uint64_t in)
{
	struct bsync *s = arg;
	struct qc_hub *h = s->h;
	struct qc_conn *c = qc_waiter_conn(s->la);
	struct qc_room *room = qc_rooms_find(h->rooms, s->name);
	struct room_info *ri = room ? info_of(room) : NULL;
	const char *emsg = NULL;

	if (rc) {
		qc_waiter_answer(s->la, QC_E_UNAVAILABLE,
		                 "Redis (cluster.redis) is unavailable: the room's capacity cannot "
		                 "be checked",
		                 NULL);
		s->la = NULL;
	} else if (!in) {
		qc_hub_fail(h, &emsg, QC_E_ROOM_FULL, "room is at capacity (%u users)",
		            ri ? ri->max_members : 0);
		qc_waiter_answer(s->la, QC_E_ROOM_FULL, emsg, NULL);
		s->la = NULL;
	} else if (c) {
		h->room_admitted_now = true;
		if (s->action)
			qc_waiter_request(s->la, c, s->action, s->opts);
		else
			qc_waiter_subscribe(s->la, c, s->name, s->password, s->opts);
		h->room_admitted_now = false;
	}
	bsync_free(s);
}

/*
 * Take a place for @user in @room in Redis first, then handle the request again: @action with
 * payload @opts (add_member), or (@action NULL) @c's subscribe with @password and @opts.
 */
static enum qc_err admit_then(struct qc_hub *h, struct qc_conn *c, struct qc_room *room,
                              const char *user, const char *action, const char *password,
                              json_t *opts, const char **emsg)
{
	struct room_info *ri = info_of(room);
	struct bsync *s = bsync_new(h, c, qc_room_name(room), password, opts);
	json_t *known = json_array();
	struct member *m, *tmp;
	char *text = NULL;
	int rc = -ENOMEM;

	HASH_ITER (hh, ri->members, m, tmp)
		json_array_append_new(known, json_string(m->user_id));
	text = known ? json_dumps(known, JSON_COMPACT) : NULL;
	json_decref(known);
	if (s)
		s->action = action;
	if (s && text)
		rc = h->room_broker.admit(h->room_broker.ctx, qc_room_name(room), user,
		                          ri->max_members, text, admitted, s);
	free(text);
	if (!rc)
		return QC_ASYNC;
	if (s)
		bsync_free(s);
	return broker_refused(h, rc, "the room's capacity cannot be checked", emsg);
}
