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

#include "hub_priv.h"
#include "quotecast/acl.h"
#include "quotecast/auth.h"

#define ROOMS_CREATED_MAX 100000 /* rooms made with create_room */
#define MEMBERS_MAX       100000 /* user-level members of one room */
#define METADATA_MAX      4096   /* bytes of a room's metadata, serialised */
#define LIST_DEFAULT      100
#define LIST_MAX          1000
#define TARGET_USERS_MAX  1000

struct member {
	char user_id[QC_USER_ID_MAX + 1];
	enum qc_role role;
	int64_t since;
	UT_hash_handle hh;
};

struct room_info {
	char owner[QC_USER_ID_MAX + 1];
	enum qc_room_type type;
	enum qc_room_status status;
	uint32_t max_members; /* users; 0 = no limit but MEMBERS_MAX */
	json_t *metadata;     /* an object */
	char password[QC_PASSWORD_HASH_MAX];
	uint64_t message_count;
	int64_t created_at;
	int64_t last_activity;
	struct member *members; /* uthash by user id */
	uint32_t nmembers;
};

static struct room_info *info_of(const struct qc_room *r)
{
	return qc_room_ext(r);
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

static int member_add(struct room_info *ri, const char *user, enum qc_role role)
{
	struct member *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	snprintf(m->user_id, sizeof(m->user_id), "%s", user);
	m->role = role;
	m->since = qc_now_ms();
	HASH_ADD_STR(ri->members, user_id, m);
	ri->nmembers++;
	return 0;
}

static void member_del(struct room_info *ri, struct member *m)
{
	HASH_DEL(ri->members, m);
	free(m);
	ri->nmembers--;
}

static void info_free(struct room_info *ri)
{
	struct member *m, *tmp;

	if (!ri)
		return;
	HASH_ITER (hh, ri->members, m, tmp)
		member_del(ri, m);
	json_decref(ri->metadata);
	free(ri);
}

/* ---- events ------------------------------------------------------------------------------ */

/* Queue event @name with @data (stolen) for every connection in @room, encoded once. */
static void room_event(struct qc_hub *h, struct qc_room *room, const char *name, json_t *data,
                       const struct qc_conn *skip)
{
	json_t *ev = qc_codec_event(name, data);
	struct qc_msg *m = ev ? qc_msg_new_json(ev) : NULL;

	json_decref(ev);
	if (!m)
		return;
	m->kind = QC_MSG_ROOM;
	for (struct qc_membership *mb = qc_room_members(room); mb; mb = mb->room_next)
		if (mb->conn != skip)
			qc_hub_send(h, mb->conn, m);
	qc_msg_unref(&m);
}

/* Queue event @name with @data (stolen) for every connection of @user, encoded once. */
static uint32_t user_event(struct qc_hub *h, const char *user, const char *name, json_t *data)
{
	struct qc_user *u = qc_conns_user(&h->conns, user);
	json_t *ev;
	struct qc_msg *m;
	uint32_t n = 0;

	if (!u) {
		json_decref(data);
		return 0;
	}
	ev = qc_codec_event(name, data);
	m = ev ? qc_msg_new_json(ev) : NULL;
	json_decref(ev);
	if (!m)
		return 0;
	m->kind = QC_MSG_ROOM;
	for (struct qc_conn *c = u->conns; c; c = c->user_next)
		if (!qc_hub_send(h, c, m))
			n++;
	qc_msg_unref(&m);
	return n;
}

/* ---- subscriptions ----------------------------------------------------------------------- */

/* Leave @room, counting the event and the room's removal when it was its last member. */
void qc_hub_leave_room(struct qc_hub *h, struct qc_conn *c, struct qc_room *room)
{
	bool last = qc_room_size(room) == 1 && !qc_room_kept(room);

	if (qc_rooms_leave(h->rooms, room, &c->rooms))
		return;
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

/* Unsubscribe every connection from @room (kept rooms stay). */
static void unsubscribe_all(struct qc_hub *h, struct qc_room *room)
{
	struct qc_membership *mb;

	while ((mb = qc_room_members(room)))
		qc_hub_leave_room(h, mb->conn, room);
}

/*
 * The checks of a created room before a connection may subscribe: status, type, password,
 * capacity. A user who passes and is not yet a member becomes one (role member).
 */
static enum qc_err admit_to_created(struct qc_hub *h, struct qc_conn *c, struct qc_room *room,
                                    const char *password, const char **emsg)
{
	struct room_info *ri = info_of(room);
	enum qc_role role = effective_role(ri, c);

	if (ri->status == QC_STATUS_CLOSED)
		return qc_hub_fail(h, emsg, QC_E_ROOM_CLOSED, "the room is closed");
	if (role == QC_ROLE_NONE) {
		if (ri->type == QC_ROOM_PRIVATE)
			return qc_hub_fail(h, emsg, QC_E_FORBIDDEN, "private room: members only");
		if (ri->type == QC_ROOM_PROTECTED &&
		    (!password || !qc_password_check(password, ri->password)))
			return qc_hub_fail(h, emsg, QC_E_WRONG_PASSWORD,
			                   "wrong or missing password");
	}
	if (!qc_acl_may_join(role, ri->type, ri->status))
		return qc_hub_fail(h, emsg, QC_E_FORBIDDEN, "the room is %s: no new subscriptions",
		                   qc_room_status_name(ri->status));
	/* members, and server admins (who act as owner everywhere without joining) */
	if (role != QC_ROLE_NONE &&
	    (role_of(ri, c->user_id) != QC_ROLE_NONE || (c->roles & QC_ROLE_ADMIN)))
		return QC_OK;
	if ((ri->max_members && ri->nmembers >= ri->max_members) || ri->nmembers >= MEMBERS_MAX)
		return qc_hub_fail(h, emsg, QC_E_ROOM_FULL, "room is at capacity (%u users)",
		                   ri->max_members ? ri->max_members : MEMBERS_MAX);
	if (member_add(ri, c->user_id, QC_ROLE_MEMBER))
		return qc_hub_fail(h, emsg, QC_E_INTERNAL, "out of memory");
	room_event(h, room, "member_joined",
	           json_pack("{s:s, s:s, s:s}", "room", qc_room_name(room), "user_id", c->user_id,
	                     "role", "member"),
	           NULL);
	return QC_OK;
}

enum qc_err qc_hub_subscribe(struct qc_hub *h, struct qc_conn *c, const char *name,
                             const char *password, json_t **data, const char **emsg)
{
	struct qc_room *room;
	bool created = false;
	enum qc_err e;

	if (strlen(name) > QC_ROOM_NAME_MAX)
		return qc_hub_fail(h, emsg, QC_E_BAD_REQUEST, "room name longer than 128 bytes");
	room = qc_rooms_find(h->rooms, name);
	if (room && qc_room_set_has(&c->rooms, room)) {
		*data = json_pack("{s:s, s:I, s:b}", "room", name, "members",
		                  (json_int_t)qc_room_size(room), "already", 1);
		return QC_OK;
	}
	if (c->rooms.count >= h->cfg->limits.max_rooms_per_connection)
		return qc_hub_fail(h, emsg, QC_E_LIMIT_EXCEEDED,
		                   "limits.max_rooms_per_connection reached");
	if (room && info_of(room)) {
		e = admit_to_created(h, c, room, password, emsg);
		if (e != QC_OK)
			return e;
	}
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
	*data = json_pack("{s:s, s:I}", "room", name, "members", (json_int_t)qc_room_size(room));
	return QC_OK;
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

static bool in_users(json_t *users, const char *user)
{
	json_t *v;
	size_t i;

	json_array_foreach (users, i, v)
		if (!strcmp(json_string_value(v), user))
			return true;
	return false;
}

/*
 * Members of a created room with no live or suspended session get the message in their
 * offline queue (the targeting applies to them too).
 */
static void offline_room_message(struct qc_hub *h, const struct room_info *ri, json_t *targets,
                                 enum qc_role target_role, json_t *data)
{
	struct member *mm, *tmp;

	HASH_ITER (hh, ri->members, mm, tmp) {
		if (qc_conns_user(&h->conns, mm->user_id))
			continue;
		if (targets && !in_users(targets, mm->user_id))
			continue;
		if (target_role != QC_ROLE_NONE && mm->role != target_role)
			continue;
		qc_hub_offline_push(h, mm->user_id, "room_message", data);
	}
}

/*
 * send_message / POST /api/broadcast with a room: validate, check the sender's right to write
 * (@c NULL: the server itself), then fan the room_message out to the connections that the
 * targeting selects: encoded once, one reference per receiver.
 */
enum qc_err qc_hub_room_send(struct qc_hub *h, struct qc_conn *c, json_t *doc, json_t **out,
                             const char **emsg)
{
	const char *name = json_string_value(json_object_get(doc, "room"));
	json_t *content = json_object_get(doc, "content"), *targets, *jrole, *jself;
	const char *type, *from = c ? c->user_id : "system";
	enum qc_role target_role = QC_ROLE_NONE;
	struct room_info *ri;
	struct qc_membership *mb;
	struct qc_room *room;
	struct qc_msg *m;
	bool exclude_self = false;
	uint32_t delivered = 0;
	enum qc_err e;
	char id[48];
	json_t *ev, *ev_data;

	if (!name || !name[0])
		return qc_hub_fail(h, emsg, QC_E_BAD_REQUEST,
		                   "\"room\" must be a non-empty string");
	if (!content || json_is_null(content))
		return qc_hub_fail(h, emsg, QC_E_BAD_REQUEST, "\"content\" is required");
	e = read_message_type(h, doc, &type, emsg);
	if (e == QC_OK)
		e = read_users(h, doc, "target_users", &targets, emsg);
	if (e != QC_OK)
		return e;
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
	ev = ev_data ? qc_codec_event("room_message", json_incref(ev_data)) : NULL;
	m = ev ? qc_msg_new_json(ev) : NULL;
	json_decref(ev);
	if (!m) {
		json_decref(ev_data);
		return qc_hub_fail(h, emsg, QC_E_INTERNAL, "out of memory");
	}
	m->kind = QC_MSG_ROOM;
	for (mb = qc_room_members(room); mb; mb = mb->room_next) {
		struct qc_conn *rc = mb->conn;

		if (exclude_self && rc == c)
			continue;
		if (targets && !in_users(targets, rc->user_id))
			continue;
		if (target_role != QC_ROLE_NONE && (!ri || role_of(ri, rc->user_id) != target_role))
			continue;
		if (!qc_hub_send(h, rc, m))
			delivered++;
	}
	qc_msg_unref(&m);
	if (ri) {
		ri->message_count++;
		ri->last_activity = qc_now_ms();
		offline_room_message(h, ri, targets, target_role, ev_data);
	}
	json_decref(ev_data);
	*out = json_pack("{s:s, s:s, s:I}", "room", name, "message_id", id, "delivered",
	                 (json_int_t)delivered);
	return QC_OK;
}

/* direct_message to every connection of each user of @users (an array, borrowed). */
static enum qc_err direct_send(struct qc_hub *h, const char *from, json_t *users, json_t *doc,
                               json_t **out, const char **emsg)
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
		delivered += user_event(h, user, "direct_message", data);
	}
	*out = json_pack("{s:s, s:I, s:o}", "message_id", id, "delivered", (json_int_t)delivered,
	                 "offline", offline);
	return QC_OK;
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
		err = list ? direct_send(h, c->user_id, list, p, d, e)
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
	return direct_send(h, c->user_id, users, p, d, e);
}

enum qc_err qc_hub_broadcast(struct qc_hub *h, json_t *body, json_t **out, const char **msg)
{
	json_t *room = json_object_get(body, "room"), *users;
	enum qc_err e;

	if (!json_is_object(body))
		return qc_hub_fail(h, msg, QC_E_BAD_REQUEST, "body must be a JSON object");
	if (room && !json_is_null(room))
		return qc_hub_room_send(h, NULL, body, out, msg);
	e = read_users(h, body, "to_users", &users, msg);
	if (e != QC_OK)
		return e;
	if (!users)
		return qc_hub_fail(h, msg, QC_E_BAD_REQUEST,
		                   "\"room\" or \"to_users\" is required");
	return direct_send(h, "system", users, body, out, msg);
}

enum qc_err qc_act_send_message(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                const char **e)
{
	return qc_hub_room_send(h, c, p, d, e);
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

enum qc_err qc_act_create_room(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                               const char **e)
{
	const char *name = json_string_value(json_object_get(p, "room"));
	json_t *jtype = json_object_get(p, "type"), *jpw = json_object_get(p, "password");
	json_t *jmax = json_object_get(p, "max_members"), *jmeta = json_object_get(p, "metadata");
	enum qc_room_type type = QC_ROOM_PUBLIC;
	struct room_info *ri;
	struct qc_room *room;
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
	     json_integer_value(jmax) > MEMBERS_MAX))
		return qc_hub_fail(h, e, QC_E_BAD_REQUEST,
		                   "\"max_members\" must be an integer from 1 to %d", MEMBERS_MAX);
	if (jmeta && !json_is_null(jmeta)) {
		if (!json_is_object(jmeta))
			return qc_hub_fail(h, e, QC_E_BAD_REQUEST,
			                   "\"metadata\" must be an object");
		dump = json_dumps(jmeta, JSON_COMPACT);
		if (!dump || strlen(dump) > METADATA_MAX) {
			free(dump);
			return qc_hub_fail(h, e, QC_E_BAD_REQUEST,
			                   "\"metadata\" is larger than %d bytes", METADATA_MAX);
		}
		free(dump);
	}
	if (qc_rooms_find(h->rooms, name))
		return qc_hub_fail(h, e, QC_E_ALREADY_EXISTS, "a room with that name exists");
	if (h->created_rooms >= ROOMS_CREATED_MAX)
		return qc_hub_fail(h, e, QC_E_LIMIT_EXCEEDED, "too many rooms (%d)",
		                   ROOMS_CREATED_MAX);

	ri = calloc(1, sizeof(*ri));
	if (!ri)
		return qc_hub_fail(h, e, QC_E_INTERNAL, "out of memory");
	snprintf(ri->owner, sizeof(ri->owner), "%s", c->user_id);
	ri->type = type;
	ri->status = QC_STATUS_ACTIVE;
	ri->max_members = json_is_integer(jmax) ? (uint32_t)json_integer_value(jmax) : 0;
	ri->metadata = json_is_object(jmeta) ? json_deep_copy(jmeta) : json_object();
	ri->created_at = ri->last_activity = qc_now_ms();
	if (!ri->metadata || member_add(ri, c->user_id, QC_ROLE_OWNER) ||
	    (type == QC_ROOM_PROTECTED &&
	     qc_password_hash(json_string_value(jpw), ri->password, sizeof(ri->password)))) {
		info_free(ri);
		return qc_hub_fail(h, e, QC_E_INTERNAL, "out of memory");
	}
	room = qc_rooms_create(h->rooms, name);
	if (!room) {
		info_free(ri);
		return qc_hub_fail(h, e, QC_E_INTERNAL, "out of memory");
	}
	qc_room_set_kept(room, true);
	qc_room_set_ext(room, ri);
	h->created_rooms++;
	h->st.rooms_created++;
	*d = qc_hub_room_json(h, room);
	return QC_OK;
}

/* Remove a created room: everyone subscribed gets room_closed, then it is gone. */
static void destroy_room(struct qc_hub *h, struct qc_room *room, const char *reason)
{
	struct room_info *ri = info_of(room);

	room_event(h, room, "room_closed",
	           json_pack("{s:s, s:s}", "room", qc_room_name(room), "reason", reason), NULL);
	unsubscribe_all(h, room);
	qc_room_set_ext(room, NULL);
	info_free(ri);
	qc_rooms_delete(h->rooms, room);
	h->created_rooms--;
	h->st.rooms_deleted++;
}

enum qc_err qc_act_delete_room(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                               const char **e)
{
	struct room_info *ri;
	struct qc_room *room;
	enum qc_err err = find_created(h, p, &room, &ri, e);
	json_t *name;

	if (err != QC_OK)
		return err;
	if (!qc_acl_allows(effective_role(ri, c), QC_PERM_DELETE_ROOM, ri->type, ri->status))
		return qc_hub_fail(h, e, QC_E_FORBIDDEN, "only the owner may delete the room");
	name = json_string(qc_room_name(room));
	destroy_room(h, room, "deleted");
	*d = json_pack("{s:o, s:b}", "room", name, "deleted", 1);
	return QC_OK;
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

enum qc_err qc_act_get_room_members(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                    const char **e)
{
	struct room_info *ri;
	struct qc_room *room;
	struct member *m, *tmp;
	enum qc_err err = find_created(h, p, &room, &ri, e);
	json_t *list;

	if (err != QC_OK)
		return err;
	if (effective_role(ri, c) == QC_ROLE_NONE)
		return qc_hub_fail(h, e, QC_E_FORBIDDEN, "members only");
	list = json_array();
	HASH_ITER (hh, ri->members, m, tmp) {
		struct qc_user *u = qc_conns_user(&h->conns, m->user_id);
		bool online = false;

		for (struct qc_conn *uc = u ? u->conns : NULL; uc && !online; uc = uc->user_next)
			online = qc_room_set_has(&uc->rooms, room);
		json_array_append_new(list, json_pack("{s:s, s:s, s:I, s:b}", "user_id", m->user_id,
		                                      "role", qc_role_name(m->role), "since",
		                                      (json_int_t)m->since, "online", online));
	}
	*d = json_pack("{s:s, s:o}", "room", qc_room_name(room), "members", list);
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
	ri->status = status;
	if (status == QC_STATUS_CLOSED) {
		room_event(h, room, "room_closed",
		           json_pack("{s:s, s:s}", "room", qc_room_name(room), "reason", "closed"),
		           NULL);
		unsubscribe_all(h, room);
	}
	*d = qc_hub_room_json(h, room);
	return QC_OK;
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
	if ((ri->max_members && ri->nmembers >= ri->max_members) || ri->nmembers >= MEMBERS_MAX)
		return qc_hub_fail(h, e, QC_E_ROOM_FULL, "room is at capacity");
	if (member_add(ri, user, role))
		return qc_hub_fail(h, e, QC_E_INTERNAL, "out of memory");
	room_event(h, room, "member_joined",
	           json_pack("{s:s, s:s, s:s, s:s}", "room", qc_room_name(room), "user_id", user,
	                     "role", qc_role_name(role), "by", c->user_id),
	           NULL);
	*d = json_pack("{s:s, s:s, s:s}", "room", qc_room_name(room), "user_id", user, "role",
	               qc_role_name(role));
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
	char who[QC_USER_ID_MAX + 1];

	if (err == QC_OK)
		err = managed_member(h, c, ri, user, &actor, &m, e);
	if (err != QC_OK)
		return err;
	if (!qc_acl_can_manage(actor, m->role, QC_ROLE_NONE))
		return qc_hub_fail(h, e, QC_E_FORBIDDEN, "you may not remove a member with role %s",
		                   qc_role_name(m->role));
	snprintf(who, sizeof(who), "%s", user); /* @user may point into the payload only */
	member_del(ri, m);
	user_event(h, who, "kicked",
	           json_pack("{s:s, s:s}", "room", qc_room_name(room), "by", c->user_id));
	unsubscribe_user(h, room, who);
	room_event(h, room, "member_left",
	           json_pack("{s:s, s:s, s:s}", "room", qc_room_name(room), "user_id", who, "by",
	                     c->user_id),
	           NULL);
	*d = json_pack("{s:s, s:s, s:b}", "room", qc_room_name(room), "user_id", who, "removed", 1);
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
	m->role = role;
	*d = json_pack("{s:s, s:s, s:s}", "room", qc_room_name(room), "user_id", m->user_id, "role",
	               qc_role_name(role));
	return QC_OK;
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

void qc_hub_rooms_teardown(struct qc_hub *h)
{
	qc_rooms_foreach(h->rooms, free_one, NULL);
}
