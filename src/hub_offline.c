/*
 * hub_offline: messages for users who have no session, live or suspended (SPEC 2.8, "Offline
 * queue").
 *
 * Every stored message is one struct qc_oentry, however many users it waits for. A room
 * message of a created room goes to the room's offline log (struct qc_olog, one per room_info);
 * a member has no copy, only a position: the log's entries newer than the larger of its user's
 * watermark and the order number at which it joined, that the message's targeting
 * (target_role, target_users) addresses to it. A user's watermark moves to the newest order
 * number when their last session ends and when what waited for them has gone to them, so
 * nothing sent while they had a session is theirs. Each log counts its offline members per role,
 * so a send costs O(1) in the number of offline members (O(target_users) when it names them),
 * and each entry counts the recipients it still waits for (pending): it goes when the last one
 * has had it. Recipients are resolved when a user's first session opens: their logs (from the
 * newest entry down to their position) and their inbox (direct messages and alerts, one entry
 * each) are merged by order number and sent with "offline":true.
 *
 * Targeting is resolved then too: a member removed before coming back gets nothing more from
 * that room, and a role changed meanwhile applies to what still waits (the counts follow).
 *
 * Bounds: offline.max_per_user entries per log, per inbox and per delivery (the newest win);
 * offline.max_total_bytes over everything (the oldest entry goes, for all its recipients). What
 * goes unread counts in offline.evicted (once per recipient) and limits.refused (once per
 * message).
 *
 * Order numbers (gseq) are microseconds of the wall clock, made strictly increasing: they
 * survive a restart (a member's join time, room_members.joined_at, places it in the log) and
 * merge a user's rooms and inbox in time order. With a store, a log entry is a row of room_log
 * written once, a watermark a row of offline_cursors, an inbox entry a row of offline_messages
 * or alerts; at start the logs are loaded and every entry's recipients counted again.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <utlist.h>

#include "hub_priv.h"
#include "quotecast/acl.h"

#define INBOX_USERS_MAX 100000 /* users with an inbox at once */
#define USERS_PEEK      16     /* entries the stats look at per member (see offline_stats) */

struct qc_oentry {
	struct qc_oentry *prev, *next;   /* h->ohead: every entry, by order number */
	struct qc_oentry *lprev, *lnext; /* its log, or its user's inbox, oldest first */
	struct qc_olog *log;             /* a room message: its log */
	struct qc_ouser *user;           /* an inbox entry: its user */
	uint64_t gseq;
	uint32_t pending; /* recipients it still waits for */
	uint8_t role;     /* a room message's target_role (QC_ROLE_NONE: any) */
	uint32_t ntargets;
	char **targets; /* a room message's target_users, sorted and unique, or NULL */
	json_t *ev;     /* {"event","data"[,"id"|"alert_id"]} */
	size_t bytes;
};

struct qc_olog {
	struct qc_hub *h;
	char *room;
	struct qc_oentry *head; /* lprev/lnext */
	uint32_t n;
	uint64_t last_gseq;            /* the newest entry it ever had */
	struct qc_omember *members;    /* lprev/lnext */
	uint32_t noff[QC_ROLE__COUNT]; /* offline members by role; [QC_ROLE_NONE]: all */
};

struct qc_ouser {
	char id[QC_USER_ID_MAX + 1];
	bool online; /* has a session, live or suspended */
	uint64_t wm; /* log entries up to here are not the user's */
	uint64_t wm_stored;
	struct qc_omember *rooms; /* uprev/unext */
	struct qc_oentry *inbox;  /* lprev/lnext */
	uint32_t ninbox;
	UT_hash_handle hh;
};

/* Store rows that entries leaving the queue leave behind, written at once. */
struct forget {
	json_t *ids;    /* offline_messages.id */
	json_t *alerts; /* alerts.id */
	json_t *logs;   /* room_log.gseq */
};

enum settle_how { DELIVERED, EVICTED, NOT_ADDRESSED };

static uint64_t next_gseq(struct qc_hub *h)
{
	struct timespec ts;
	uint64_t now;

	clock_gettime(CLOCK_REALTIME, &ts);
	now = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
	h->oseq = now > h->oseq ? now : h->oseq + 1;
	return h->oseq;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_gseq(const void *a, const void *b)
{
	const struct qc_oentry *x = *(struct qc_oentry *const *)a;
	const struct qc_oentry *y = *(struct qc_oentry *const *)b;

	return x->gseq < y->gseq ? -1 : x->gseq > y->gseq;
}

static struct qc_oentry *log_tail(const struct qc_olog *log)
{
	return log->head ? log->head->lprev : NULL;
}

/* The entry before @e in its log (newest to oldest walks), or NULL. */
static struct qc_oentry *log_prev(const struct qc_olog *log, const struct qc_oentry *e)
{
	return e == log->head ? NULL : e->lprev;
}

/* Where @om is in its log: entries up to here are not its. */
static uint64_t position(const struct qc_omember *om)
{
	return om->user->wm > om->since ? om->user->wm : om->since;
}

/* Whether room message @e is addressed to @user with @role. */
static bool addressed(const struct qc_oentry *e, const char *user, uint8_t role)
{
	if (e->role != QC_ROLE_NONE && e->role != role)
		return false;
	return !e->targets || bsearch(&user, e->targets, e->ntargets, sizeof(char *), cmp_str);
}

/* ---- users ------------------------------------------------------------------------------- */

static struct qc_ouser *ouser_find(struct qc_hub *h, const char *id)
{
	struct qc_ouser *u = NULL;

	HASH_FIND_STR(h->ousers, id, u);
	return u;
}

static struct qc_ouser *ouser_get(struct qc_hub *h, const char *id)
{
	struct qc_ouser *u = ouser_find(h, id);

	if (u)
		return u;
	u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	snprintf(u->id, sizeof(u->id), "%s", id);
	u->online = qc_conns_user(&h->conns, id) != NULL;
	HASH_ADD_STR(h->ousers, id, u);
	return u;
}

/* A user with no membership and nothing waiting needs no record. */
static void ouser_maybe_free(struct qc_hub *h, struct qc_ouser *u)
{
	if (u->rooms || u->inbox)
		return;
	HASH_DEL(h->ousers, u);
	free(u);
}

static struct qc_omember *membership(const struct qc_ouser *u, const struct qc_olog *log)
{
	struct qc_omember *om;

	DL_FOREACH2 (u->rooms, om, unext)
		if (om->log == log)
			return om;
	return NULL;
}

/* ---- the store --------------------------------------------------------------------------- */

static void forget_init(struct forget *f)
{
	f->ids = json_array();
	f->alerts = json_array();
	f->logs = json_array();
}

static void forget_entry(struct forget *f, const struct qc_oentry *e)
{
	json_t *id = json_object_get(e->ev, "id"), *aid = json_object_get(e->ev, "alert_id");
	char g[24];

	if (e->log) {
		snprintf(g, sizeof(g), "%" PRIu64, e->gseq);
		json_array_append_new(f->logs, json_string(g));
	} else if (json_is_string(id)) {
		json_array_append(f->ids, id);
	} else if (json_is_string(aid)) {
		json_array_append(f->alerts, aid);
	}
}

/* "{a,b,c}" of @a's strings (digits or [a-z0-9-]: safe inside an array literal), or NULL. */
static char *pg_array(json_t *a)
{
	size_t n = 3, i;
	json_t *v;
	char *s;

	json_array_foreach (a, i, v)
		n += json_string_length(v) + 1;
	s = malloc(n);
	if (!s)
		return NULL;
	strcpy(s, "{");
	json_array_foreach (a, i, v) {
		if (i)
			strcat(s, ",");
		strcat(s, json_string_value(v));
	}
	strcat(s, "}");
	return s;
}

/* Write what @f collected (@delivered: alerts were delivered, else evicted) and empty it. */
static void forget_flush(struct qc_hub *h, struct forget *f, bool delivered)
{
	char now[24], *list;

	if (h->loading) {
		/* the store is not there yet: qc_hub_offline_store_ready() writes it */
		if (!h->ogarbage)
			h->ogarbage = json_pack("{s:[], s:[], s:[]}", "ids", "alerts", "logs");
		json_array_extend(json_object_get(h->ogarbage, "ids"), f->ids);
		json_array_extend(json_object_get(h->ogarbage, "alerts"), f->alerts);
		json_array_extend(json_object_get(h->ogarbage, "logs"), f->logs);
		goto out;
	}
	if (!qc_hub_persistent(h) || h->freeing)
		goto out;
	snprintf(now, sizeof(now), "%" PRId64, qc_now_ms());
	if (json_array_size(f->ids) && (list = pg_array(f->ids))) {
		const char *params[] = {list};

		qc_hub_store_write(h, "DELETE FROM offline_messages WHERE id = ANY($1::bigint[])",
		                   1, params);
		free(list);
	}
	/* an evicted alert is not delivered, but it is not waiting any more either */
	if (json_array_size(f->alerts) && (list = pg_array(f->alerts))) {
		const char *params[] = {list, now, delivered ? "delivered" : "evicted"};

		qc_hub_store_write(h,
		                   "UPDATE alerts SET delivery = $3, delivered_at = $2::bigint"
		                   " WHERE id = ANY($1::text[])",
		                   3, params);
		free(list);
	}
	if (json_array_size(f->logs) && (list = pg_array(f->logs))) {
		const char *params[] = {list};

		qc_hub_store_write(h, "DELETE FROM room_log WHERE gseq = ANY($1::bigint[])", 1,
		                   params);
		free(list);
	}
out:
	json_decref(f->ids);
	json_decref(f->alerts);
	json_decref(f->logs);
	forget_init(f);
}

static void forget_done(struct qc_hub *h, struct forget *f, bool delivered)
{
	forget_flush(h, f, delivered);
	json_decref(f->ids);
	json_decref(f->alerts);
	json_decref(f->logs);
}

/* The user's position is the newest order number: store it when a log moved past the stored. */
static void store_wm(struct qc_hub *h, struct qc_ouser *u)
{
	struct qc_omember *om;
	bool moved = false;
	char g[24];

	DL_FOREACH2 (u->rooms, om, unext)
		moved = moved || om->log->last_gseq > u->wm_stored;
	if (!moved || !qc_hub_persistent(h) || h->freeing || h->loading)
		return;
	snprintf(g, sizeof(g), "%" PRIu64, u->wm);
	{
		const char *params[] = {u->id, g};

		qc_hub_store_write(
		    h,
		    "INSERT INTO offline_cursors (user_id, gseq) VALUES ($1, $2::bigint)"
		    " ON CONFLICT (user_id) DO UPDATE SET gseq ="
		    " GREATEST(offline_cursors.gseq, EXCLUDED.gseq)",
		    2, params);
	}
	u->wm_stored = u->wm;
}

/* ---- entries ----------------------------------------------------------------------------- */

/* Put @e in the list of all entries, by order number (nearly always at the end). */
static void global_insert(struct qc_hub *h, struct qc_oentry *e)
{
	struct qc_oentry *t = h->ohead ? h->ohead->prev : NULL;

	/* only an inbox entry that waited for its row can be older than the newest */
	while (t && t->gseq > e->gseq)
		t = t == h->ohead ? NULL : t->prev;
	if (!t)
		DL_PREPEND(h->ohead, e);
	else
		DL_APPEND_ELEM(h->ohead, t, e);
	h->obytes += e->bytes;
	h->oentries++;
}

static void entry_unlink(struct qc_hub *h, struct qc_oentry *e)
{
	DL_DELETE(h->ohead, e);
	if (e->log) {
		DL_DELETE2(e->log->head, e, lprev, lnext);
		e->log->n--;
	} else {
		DL_DELETE2(e->user->inbox, e, lprev, lnext);
		if (!--e->user->ninbox)
			h->oinbox_users--;
	}
	h->obytes -= e->bytes;
	h->oentries--;
}

static void entry_free(struct qc_oentry *e)
{
	json_decref(e->ev);
	free(e->targets);
	free(e);
}

/* One recipient of @e is done with it; the entry goes with its last one. */
static void settle(struct qc_hub *h, struct qc_oentry *e, enum settle_how how, struct forget *f)
{
	h->offline_queued--;
	if (how == DELIVERED)
		h->st.offline_delivered++;
	else if (how == EVICTED)
		h->st.offline_evicted++;
	if (--e->pending)
		return;
	entry_unlink(h, e);
	forget_entry(f, e);
	entry_free(e);
}

/* A bound @l makes @e go now, unread by everyone it waited for. */
static void evict(struct qc_hub *h, struct qc_oentry *e, enum qc_limit l)
{
	struct qc_ouser *u = e->log ? NULL : e->user;
	struct forget f;

	qc_hub_refused(h, l);
	h->st.offline_evicted += e->pending;
	h->offline_queued -= e->pending;
	forget_init(&f);
	entry_unlink(h, e);
	forget_entry(&f, e);
	entry_free(e);
	forget_done(h, &f, false);
	if (u && !u->ninbox)
		ouser_maybe_free(h, u);
}

static void enforce_total(struct qc_hub *h)
{
	while (h->obytes > h->cfg->offline.max_total_bytes && h->ohead)
		evict(h, h->ohead, QC_LIM_OFFLINE_TOTAL);
}

/* @targets' user ids, sorted and unique, in one block (*@n of them); NULL on ENOMEM. */
static char **sorted_names(json_t *targets, uint32_t *n)
{
	size_t bytes = 0, i, k = 0;
	char **names, *p;
	json_t *v;

	json_array_foreach (targets, i, v)
		bytes += sizeof(char *) + json_string_length(v) + 1;
	names = malloc(bytes ? bytes : 1);
	if (!names)
		return NULL;
	p = (char *)(names + json_array_size(targets));
	json_array_foreach (targets, i, v) {
		names[i] = p;
		memcpy(p, json_string_value(v), json_string_length(v) + 1);
		p += json_string_length(v) + 1;
	}
	qsort(names, json_array_size(targets), sizeof(char *), cmp_str);
	for (i = 0; i < json_array_size(targets); i++)
		if (!k || strcmp(names[k - 1], names[i]))
			names[k++] = names[i];
	*n = (uint32_t)k;
	return names;
}

/* ---- the room logs ----------------------------------------------------------------------- */

struct qc_olog *qc_olog_new(struct qc_hub *h, const char *room)
{
	struct qc_olog *log = calloc(1, sizeof(*log));

	if (!log)
		return NULL;
	log->room = strdup(room);
	if (!log->room) {
		free(log);
		return NULL;
	}
	log->h = h;
	return log;
}

void qc_olog_free(struct qc_olog *log)
{
	struct qc_oentry *e, *etmp;
	struct qc_omember *om, *otmp;
	struct qc_hub *h;

	if (!log)
		return;
	h = log->h;
	/* the room's rows go with it (ON DELETE CASCADE) */
	DL_FOREACH_SAFE2(log->head, e, etmp, lnext)
	{
		h->offline_queued -= e->pending;
		entry_unlink(h, e);
		entry_free(e);
	}
	DL_FOREACH_SAFE2(log->members, om, otmp, lnext)
	{
		struct qc_ouser *u = om->user;

		DL_DELETE2(u->rooms, om, uprev, unext);
		om->log = NULL;
		om->user = NULL;
		ouser_maybe_free(h, u);
	}
	free(log->room);
	free(log);
}

int qc_olog_join(struct qc_olog *log, struct qc_omember *om, const char *user, uint8_t role,
                 int64_t joined_ms)
{
	struct qc_hub *h = log->h;
	struct qc_ouser *u = ouser_get(h, user);

	memset(om, 0, sizeof(*om));
	if (!u)
		return -ENOMEM;
	om->log = log;
	om->user = u;
	om->role = role;
	/*
	 * Everything logged so far predates a new member; at start the member's join time places
	 * it (order numbers are microseconds).
	 */
	om->since = h->loading ? (uint64_t)(joined_ms > 0 ? joined_ms : 0) * 1000 : h->oseq;
	DL_APPEND2(log->members, om, lprev, lnext);
	DL_APPEND2(u->rooms, om, uprev, unext);
	if (!u->online) {
		log->noff[QC_ROLE_NONE]++;
		log->noff[role]++;
	}
	return 0;
}

void qc_olog_leave(struct qc_omember *om)
{
	struct qc_olog *log = om->log;
	struct qc_oentry *e, *prev;
	struct qc_ouser *u;
	struct qc_hub *h;
	struct forget f;
	uint64_t pos;

	if (!log)
		return;
	h = log->h;
	u = om->user;
	forget_init(&f);
	if (!u->online) {
		pos = position(om);
		for (e = log_tail(log); e && e->gseq > pos; e = prev) {
			prev = log_prev(log, e);
			if (addressed(e, u->id, om->role))
				settle(h, e, NOT_ADDRESSED, &f);
		}
		log->noff[QC_ROLE_NONE]--;
		log->noff[om->role]--;
	}
	DL_DELETE2(log->members, om, lprev, lnext);
	DL_DELETE2(u->rooms, om, uprev, unext);
	om->log = NULL;
	om->user = NULL;
	forget_done(h, &f, false);
	ouser_maybe_free(h, u);
}

void qc_olog_set_role(struct qc_omember *om, uint8_t role)
{
	struct qc_olog *log = om->log;
	struct qc_oentry *e, *prev;
	struct qc_ouser *u;
	struct qc_hub *h;
	struct forget f;
	uint64_t pos;

	if (!log || om->role == role || om->user->online) {
		om->role = role;
		return;
	}
	h = log->h;
	u = om->user;
	forget_init(&f);
	pos = position(om);
	for (e = log_tail(log); e && e->gseq > pos; e = prev) {
		bool was = addressed(e, u->id, om->role), now = addressed(e, u->id, role);

		prev = log_prev(log, e);
		if (was && !now) {
			settle(h, e, NOT_ADDRESSED, &f);
		} else if (now && !was) {
			e->pending++;
			h->offline_queued++;
		}
	}
	log->noff[om->role]--;
	log->noff[role]++;
	om->role = role;
	forget_done(h, &f, false);
}

/* Link a new room message @e into @log (it is the newest) and apply the bounds. */
static void log_link(struct qc_olog *log, struct qc_oentry *e)
{
	struct qc_hub *h = log->h;

	e->log = log;
	DL_APPEND2(log->head, e, lprev, lnext);
	log->n++;
	if (e->gseq > log->last_gseq)
		log->last_gseq = e->gseq;
	global_insert(h, e);
	h->offline_queued += e->pending;
	while (log->n > h->cfg->offline.max_per_user)
		evict(h, log->head, QC_LIM_OFFLINE_PER_USER);
	enforce_total(h);
}

static struct qc_oentry *room_entry(json_t *data, char **names, uint32_t nnames, uint8_t role,
                                    size_t jlen)
{
	struct qc_oentry *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->ev = json_pack("{s:s, s:O}", "event", "room_message", "data", data);
	if (!e->ev) {
		free(e);
		return NULL;
	}
	e->role = role;
	e->targets = names;
	e->ntargets = nnames;
	e->bytes = sizeof(*e) + jlen;
	for (uint32_t i = 0; i < nnames; i++)
		e->bytes += sizeof(char *) + strlen(names[i]) + 1;
	return e;
}

void qc_olog_append(struct qc_olog *log, json_t *data, json_t *targets, uint8_t role)
{
	struct qc_hub *h = log->h;
	uint32_t n = 0, nnames = 0;
	struct qc_oentry *e;
	char **names = NULL;
	char *jdata;

	if (!h->cfg->offline.max_per_user)
		return;
	if (targets) {
		/* only the named: O(targets), whatever the number of members */
		names = sorted_names(targets, &nnames);
		if (!names)
			return;
		for (uint32_t i = 0; i < nnames; i++) {
			struct qc_ouser *u = ouser_find(h, names[i]);
			struct qc_omember *om = u && !u->online ? membership(u, log) : NULL;

			if (om && (role == QC_ROLE_NONE || om->role == role))
				n++;
		}
	} else {
		n = log->noff[role]; /* [QC_ROLE_NONE]: every offline member */
	}
	if (!n) {
		free(names);
		return;
	}
	jdata = json_dumps(data, QC_JSON_DUMP | JSON_ENCODE_ANY);
	e = jdata ? room_entry(data, names, nnames, role, strlen(jdata)) : NULL;
	if (!e) {
		free(names);
		free(jdata);
		return;
	}
	e->gseq = next_gseq(h);
	e->pending = n;
	if (qc_hub_persistent(h)) {
		char g[24], now[24], *tlist = targets ? json_dumps(targets, JSON_COMPACT) : NULL;
		const char *params[] = {
		    g,     log->room, "room_message", jdata, role ? qc_role_name(role) : NULL,
		    tlist, now};

		snprintf(g, sizeof(g), "%" PRIu64, e->gseq);
		snprintf(now, sizeof(now), "%" PRId64, qc_now_ms());
		/* repeatable: the order number is the key */
		qc_hub_store_write(
		    h,
		    "INSERT INTO room_log (gseq, room, event, data, target_role,"
		    " target_users, created_at) VALUES ($1::bigint, $2, $3, $4::json,"
		    " $5, $6::json, $7::bigint) ON CONFLICT (gseq) DO NOTHING",
		    7, params);
		free(tlist);
	}
	free(jdata);
	log_link(log, e);
}

/* ---- inboxes ----------------------------------------------------------------------------- */

/* Append @ev (stolen: {"event","data"[,"id"|"alert_id"]}) of @bytes to @user's inbox. */
static void inbox_append(struct qc_hub *h, const char *user, json_t *ev, uint64_t gseq,
                         size_t bytes)
{
	struct qc_ouser *u = ouser_find(h, user);
	struct qc_oentry *e;
	struct forget f;

	if ((!u || !u->ninbox) && h->oinbox_users >= INBOX_USERS_MAX) {
		/* too many users wait for something: this one's message is not kept */
		h->st.offline_evicted++;
		qc_hub_refused(h, QC_LIM_OFFLINE_TOTAL);
		forget_init(&f);
		e = &(struct qc_oentry){.ev = ev};
		forget_entry(&f, e);
		forget_done(h, &f, false);
		json_decref(ev);
		return;
	}
	u = ouser_get(h, user);
	e = u ? calloc(1, sizeof(*e)) : NULL;
	if (!e) {
		json_decref(ev);
		if (u)
			ouser_maybe_free(h, u);
		return;
	}
	e->ev = ev;
	e->user = u;
	e->gseq = gseq;
	e->pending = 1;
	e->bytes = sizeof(*e) + bytes;
	DL_APPEND2(u->inbox, e, lprev, lnext);
	if (!u->ninbox++)
		h->oinbox_users++;
	global_insert(h, e);
	h->offline_queued++;
	if (u->ninbox > h->cfg->offline.max_per_user)
		evict(h, u->inbox, QC_LIM_OFFLINE_PER_USER);
	enforce_total(h);
}

/* The serialised size of @data (what it weighs in the queue). */
static size_t json_bytes(json_t *data)
{
	return json_dumpb(data, NULL, 0, QC_JSON_DUMP | JSON_ENCODE_ANY);
}

/*
 * Send one stored event to @user's sessions, marked "offline":true, through the user's inbox
 * log: its seq and epoch are the inbox's; a room message keeps its room position as room_seq
 * and room_epoch.
 */
static void deliver_ev(struct qc_hub *h, const char *user, json_t *ev)
{
	json_t *data = json_deep_copy(json_object_get(ev, "data")), *v;

	if (!data)
		return;
	if (json_object_get(data, "room") && (v = json_object_get(data, "seq")))
		json_object_set(data, "room_seq", v);
	if (json_object_get(data, "room") && (v = json_object_get(data, "epoch")))
		json_object_set(data, "room_epoch", v);
	json_object_set_new(data, "offline", json_true());
	qc_hub_inbox_send(h, user, json_string_value(json_object_get(ev, "event")), data);
}

/*
 * In a cluster with a store, direct messages and alerts queued offline are rows of
 * offline_messages only: no node keeps them in memory, and the node that opens the user's
 * first session takes them from the store in one statement (so one node only delivers each),
 * in order, through the inbox.
 */
static bool clustered(const struct qc_hub *h)
{
	return h->cfg->cluster.nredis > 0 && h->cfg->store_url && h->cfg->store_url[0];
}

static const char sql_claim[] =
    "WITH d AS (DELETE FROM offline_messages WHERE user_id = $1 RETURNING event, data::text,"
    " gseq) SELECT event, data FROM d ORDER BY gseq";

struct claim {
	struct qc_hub *h;
	char user[QC_USER_ID_MAX + 1];
};

static void deliver_ev(struct qc_hub *h, const char *user, json_t *ev);

static void claimed(void *arg, enum qc_err err, const char *msg, json_t *rows)
{
	struct claim *cl = arg;
	struct qc_hub *h = cl->h;
	size_t i, n = json_array_size(rows), max = h->cfg->offline.max_per_user;
	json_t *row, *ev, *data;

	(void)msg;
	if (err != QC_OK) {
		h->store_dropped++; /* the rows stay: the next first session takes them */
		free(cl);
		return;
	}
	/* in time order; past offline.max_per_user the oldest go unread */
	for (i = 0; i < n; i++) {
		row = json_array_get(rows, i);
		if (i + max < n) {
			qc_hub_refused(h, QC_LIM_OFFLINE_PER_USER);
			h->st.offline_evicted++;
			continue;
		}
		data = json_loads(json_string_value(json_array_get(row, 1)) ?: "", JSON_DECODE_ANY,
		                  NULL);
		ev = data ? json_pack("{s:s?, s:o}", "event",
		                      json_string_value(json_array_get(row, 0)), "data", data)
		          : NULL;
		if (ev) {
			deliver_ev(h, cl->user, ev);
			h->st.offline_delivered++;
		}
		json_decref(ev);
	}
	free(cl);
}

/* Take what waits for @user in the store and send it to the user's sessions (cluster mode). */
static void offline_claim(struct qc_hub *h, const char *user)
{
	struct claim *cl = calloc(1, sizeof(*cl));
	const char *params[1];

	if (!cl)
		return;
	cl->h = h;
	snprintf(cl->user, sizeof(cl->user), "%s", user);
	params[0] = cl->user;
	qc_hub_store_keep(h, sql_claim, 1, params, claimed, cl);
}

void qc_hub_offline_claim(struct qc_hub *h, const char *user)
{
	if (clustered(h) && qc_conns_user(&h->conns, user))
		offline_claim(h, user);
}

/* The row is committed: now the message counts as queued (or goes out, if the user is back). */
static void offline_stored(void *arg, enum qc_err err, const char *msg, json_t *rows)
{
	struct qc_row_event *w = arg;
	struct qc_hub *h = w->h;
	struct qc_user *u;
	struct forget f;

	if (err != QC_OK) {
		h->store_dropped++;
		qc_row_event_free(w);
		return;
	}
	json_object_set(w->ev, "id", json_array_get(json_array_get(rows, 0), 0));
	u = qc_conns_user(&h->conns, w->user);
	if (clustered(h)) {
		/* the row waits in the store, for the user's next session on any node */
		/* the user came back while the row was being written: here, or on another node */
		if (u)
			offline_claim(h, w->user);
		else if (h->ibroker.poke)
			h->ibroker.poke(h->ibroker.ctx, w->user);
		qc_row_event_free(w);
		return;
	}
	if (u) {
		/* the user came back while the row was being written */
		deliver_ev(h, w->user, w->ev);
		h->st.offline_delivered++;
		forget_init(&f);
		forget_entry(&f, &(struct qc_oentry){.ev = w->ev});
		forget_done(h, &f, true);
	} else {
		inbox_append(h, w->user, json_incref(w->ev),
		             (uint64_t)json_integer_value(json_object_get(w->ev, "gseq")),
		             json_bytes(json_object_get(w->ev, "data")));
	}
	qc_row_event_free(w);
}

void qc_hub_offline_push(struct qc_hub *h, const char *user, const char *name, json_t *data)
{
	struct qc_row_event *w;
	uint64_t gseq;
	json_t *ev;
	char *jdata, now[24], key[48], g[24];

	if (!h->cfg->offline.max_per_user)
		return;
	gseq = next_gseq(h);
	ev = json_pack("{s:s, s:O, s:I}", "event", name, "data", data, "gseq", (json_int_t)gseq);
	if (!ev)
		return;
	if (!qc_hub_persistent(h)) {
		inbox_append(h, user, ev, gseq, json_bytes(data));
		return;
	}
	/* written before it counts as queued (the key makes a repeated insert harmless) */
	w = qc_row_event_new(h, user, ev);
	jdata = json_dumps(data, QC_JSON_DUMP | JSON_ENCODE_ANY);
	snprintf(now, sizeof(now), "%" PRId64, qc_now_ms());
	snprintf(key, sizeof(key), "o-%s-%" PRIu64, h->node, ++h->msg_counter);
	snprintf(g, sizeof(g), "%" PRIu64, gseq);
	if (!w || !jdata) {
		h->store_dropped++;
		qc_row_event_free(w);
		free(jdata);
		return;
	}
	{
		const char *params[] = {user, name, jdata, now, key, g};

		qc_hub_store_keep(
		    h,
		    "INSERT INTO offline_messages (user_id, event, data, created_at, key,"
		    " gseq) VALUES ($1, $2, $3::json, $4::bigint, $5, $6::bigint)"
		    " ON CONFLICT (key) DO UPDATE SET key = EXCLUDED.key RETURNING id",
		    6, params, offline_stored, w);
	}
	free(jdata);
}

void qc_hub_offline_push_alert(struct qc_hub *h, const char *user, const char *alert_id,
                               json_t *data)
{
	json_t *ev =
	    json_pack("{s:s, s:O, s:s}", "event", "alert", "data", data, "alert_id", alert_id);
	json_int_t ts = json_integer_value(json_object_get(data, "timestamp"));

	/* its place among room messages: when it was raised (its row took a while), as at start */
	if (ev)
		inbox_append(h, user, ev, ts > 0 ? (uint64_t)ts * 1000 : next_gseq(h),
		             json_bytes(data));
}

/* ---- users come and go ------------------------------------------------------------------- */

static void deliver_one(struct qc_hub *h, struct qc_conn *c, json_t *ev)
{
	deliver_ev(h, c->user_id, ev);
}

/*
 * Merge the inbox starting at @inbox into the @n room messages of @list (sorted by order number,
 * room for the inbox after them), the inbox in its own order. Returns the new count.
 */
static size_t merge_inbox(struct qc_oentry **list, size_t n, struct qc_oentry *inbox)
{
	struct qc_oentry *e;
	size_t ni = 0, total, k;

	DL_FOREACH2 (inbox, e, lnext)
		ni++;
	total = k = n + ni;
	/* from the back: the newest of the two goes last; what is left at the front is in place */
	e = inbox ? inbox->lprev : NULL;
	while (ni) {
		if (n && list[n - 1]->gseq > e->gseq) {
			list[--k] = list[--n];
		} else {
			list[--k] = e;
			e = e->lprev;
			ni--;
		}
	}
	return total;
}

void qc_hub_offline_online(struct qc_hub *h, struct qc_conn *c)
{
	struct qc_ouser *u = ouser_find(h, c->user_id);
	struct qc_oentry **list = NULL, *e;
	struct forget got, lost;
	struct qc_omember *om;
	size_t n = 0, cap, skip;

	if (clustered(h))
		offline_claim(h, c->user_id);
	if (!u || u->online)
		return;
	u->online = true;
	cap = u->ninbox;
	DL_FOREACH2 (u->rooms, om, unext) {
		om->log->noff[QC_ROLE_NONE]--;
		om->log->noff[om->role]--;
		cap += om->log->n;
	}
	if (cap && !(list = malloc(cap * sizeof(*list))))
		return; /* ENOMEM: what waits stays until a bound takes it */
	/* each log from its newest entry down to the member's position, in order */
	DL_FOREACH2 (u->rooms, om, unext) {
		uint64_t pos = position(om);

		for (e = log_tail(om->log); e && e->gseq > pos; e = log_prev(om->log, e))
			if (addressed(e, u->id, om->role))
				list[n++] = e;
	}
	if (n)
		qsort(list, n, sizeof(*list), cmp_gseq);
	/* merged with the inbox, which keeps the order its entries were queued in */
	n = merge_inbox(list, n, u->inbox);
	/* in time order; past offline.max_per_user the oldest go unread */
	skip = n > h->cfg->offline.max_per_user ? n - h->cfg->offline.max_per_user : 0;
	forget_init(&got);
	forget_init(&lost);
	for (size_t i = 0; i < n; i++) {
		if (i < skip) {
			qc_hub_refused(h, QC_LIM_OFFLINE_PER_USER);
			settle(h, list[i], EVICTED, &lost);
		} else {
			deliver_one(h, c, list[i]->ev);
			settle(h, list[i], DELIVERED, &got);
		}
	}
	free(list);
	u->wm = h->oseq;
	store_wm(h, u);
	forget_done(h, &got, true);
	forget_done(h, &lost, false);
	ouser_maybe_free(h, u);
}

void qc_hub_offline_gone(struct qc_hub *h, const char *user)
{
	struct qc_ouser *u = ouser_find(h, user);
	struct qc_omember *om;

	if (!u || !u->online)
		return;
	u->online = false;
	DL_FOREACH2 (u->rooms, om, unext) {
		om->log->noff[QC_ROLE_NONE]++;
		om->log->noff[om->role]++;
	}
	/* what was sent while the user had a session is not theirs */
	u->wm = h->oseq;
	store_wm(h, u);
}

void qc_hub_offline_shutdown(struct qc_hub *h)
{
	struct qc_ouser *u, *tmp;

	/* suspended sessions end with the process: their users are where they had got to */
	HASH_ITER (hh, h->ousers, u, tmp) {
		if (!u->online)
			continue;
		u->wm = h->oseq;
		store_wm(h, u);
	}
}

void qc_hub_offline_store_ready(struct qc_hub *h)
{
	struct forget f;

	if (!h->ogarbage)
		return;
	f.ids = json_incref(json_object_get(h->ogarbage, "ids"));
	f.alerts = json_incref(json_object_get(h->ogarbage, "alerts"));
	f.logs = json_incref(json_object_get(h->ogarbage, "logs"));
	json_decref(h->ogarbage);
	h->ogarbage = NULL;
	forget_done(h, &f, false);
}

/* ---- start-up, stats, teardown ------------------------------------------------------------ */

static const char *col(json_t *row, size_t i)
{
	return json_string_value(json_array_get(row, i));
}

/* A stored room message: its recipients are counted again from the members' positions. */
static void load_room_entry(struct qc_hub *h, json_t *row, uint64_t gseq, json_t *data)
{
	struct qc_olog *log = qc_hub_room_log(h, col(row, 2));
	json_t *targets = col(row, 9) ? json_loads(col(row, 9), 0, NULL) : NULL;
	uint8_t role = QC_ROLE_NONE;
	struct qc_oentry *e = NULL;
	struct qc_omember *om;
	enum qc_role r;
	char **names = NULL;
	uint32_t nnames = 0;
	struct forget f;

	if (col(row, 8) && qc_role_parse(col(row, 8), &r))
		role = (uint8_t)r;
	if (json_is_array(targets))
		names = sorted_names(targets, &nnames);
	if (log && (!targets || names))
		e = room_entry(data, names, nnames, role, strlen(col(row, 4)));
	if (e) {
		e->gseq = gseq;
		DL_FOREACH2 (log->members, om, lnext)
			if (gseq > position(om) && addressed(e, om->user->id, om->role))
				e->pending++;
	}
	if (e && e->pending) {
		log_link(log, e);
	} else {
		/* nobody waits for it any more */
		forget_init(&f);
		forget_entry(&f, &(struct qc_oentry){.log = log, .gseq = gseq});
		forget_done(h, &f, false);
		if (e)
			entry_free(e);
		else
			free(names);
	}
	json_decref(targets);
}

int qc_hub_offline_load(struct qc_hub *h, json_t *entries, json_t *cursors, char *err,
                        size_t errlen)
{
	json_t *row;
	size_t i;

	(void)err;
	(void)errlen;
	/* user_id, gseq */
	json_array_foreach (cursors, i, row) {
		struct qc_ouser *u = ouser_find(h, col(row, 0));
		uint64_t g = strtoull(col(row, 1), NULL, 10);

		if (u)
			u->wm = u->wm_stored = g;
		if (g > h->oseq)
			h->oseq = g;
	}
	/* kind, user_id, room, event, data, id, alert_id, gseq, target_role, target_users */
	json_array_foreach (entries, i, row) {
		const char *text = col(row, 4);
		json_t *data = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
		uint64_t g = strtoull(col(row, 7) ? col(row, 7) : "0", NULL, 10);
		json_t *ev;

		if (g > h->oseq)
			h->oseq = g;
		if (!data)
			continue;
		if (col(row, 0) && col(row, 0)[0] == 'r') {
			load_room_entry(h, row, g, data);
		} else {
			ev = json_pack("{s:s?, s:O}", "event", col(row, 3), "data", data);
			if (ev && col(row, 5))
				json_object_set_new(ev, "id", json_string(col(row, 5)));
			else if (ev && col(row, 6))
				json_object_set_new(ev, "alert_id", json_string(col(row, 6)));
			/* in a cluster, a queued direct message waits in the store (offline_claim)
			 */
			if (ev && col(row, 1) && !(clustered(h) && col(row, 5)))
				inbox_append(h, col(row, 1), ev, g, strlen(text));
			else
				json_decref(ev);
		}
		json_decref(data);
	}
	return 0;
}

json_t *qc_hub_offline_stats(struct qc_hub *h)
{
	struct qc_ouser *u, *tmp;
	struct qc_omember *om;
	uint64_t users = 0;

	/*
	 * Cold path: users with something waiting. A member counts when one of the newest
	 * USERS_PEEK entries past its position is addressed to it (or when there are more: then it
	 * may be counted though targeting addressed all of them to others).
	 */
	HASH_ITER (hh, h->ousers, u, tmp) {
		bool waits = !u->online && u->ninbox;

		DL_FOREACH2 (u->online || waits ? NULL : u->rooms, om, unext) {
			uint64_t pos = position(om);
			const struct qc_oentry *e = log_tail(om->log);

			for (int k = 0; !waits && e && e->gseq > pos; k++, e = log_prev(om->log, e))
				waits = k >= USERS_PEEK || addressed(e, u->id, om->role);
			if (waits)
				break;
		}
		users += waits;
	}
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "users", (json_int_t)users, "queued",
	                 (json_int_t)h->offline_queued, "delivered",
	                 (json_int_t)h->st.offline_delivered, "evicted",
	                 (json_int_t)h->st.offline_evicted, "messages", (json_int_t)h->oentries,
	                 "bytes", (json_int_t)h->obytes);
}

void qc_hub_offline_free(struct qc_hub *h)
{
	struct qc_ouser *u, *tmp;
	struct qc_oentry *e, *etmp;

	/* the logs went with their rooms: what is left are inboxes */
	DL_FOREACH_SAFE(h->ohead, e, etmp)
	{
		entry_unlink(h, e);
		entry_free(e);
	}
	HASH_ITER (hh, h->ousers, u, tmp) {
		HASH_DEL(h->ousers, u);
		free(u);
	}
	json_decref(h->ogarbage);
	h->ogarbage = NULL;
}
