/*
 * room: the multi-room subscription index.
 *
 * Owns the rooms (a uthash by name) and the memberships. Each membership is linked into its
 * room's doubly linked member list and into the connection's struct qc_room_set (a uthash
 * keyed by the room pointer), and remembers that set so a room can be deleted without the
 * caller walking its connections. Connections and the rooms' ext pointers are borrowed.
 *
 * A room is removed when a leave empties it, unless it is kept. A room made by
 * qc_rooms_create() and never joined is not removed by anything but qc_rooms_delete() or
 * qc_rooms_free(), or a join followed by the leave that empties it.
 *
 * uthash is built here with HASH_NONFATAL_OOM so that a failed table allocation is reported
 * as -ENOMEM instead of exiting the process.
 */
#define HASH_NONFATAL_OOM 1

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <utlist.h>

#include "quotecast/room.h"

struct qc_room {
	struct qc_membership *members; /* head of the member list */
	uint32_t nmembers;
	uint32_t held; /* qc_room_hold() without its qc_room_unhold() */
	bool kept;
	void *ext;
	void *log;         /* the room's log, freed with the room by qc_rooms.log_free */
	UT_hash_handle hh; /* in qc_rooms.by_name */
	char name[];
};

struct qc_rooms {
	struct qc_room *by_name; /* uthash head */
	uint32_t count;
	uint64_t memberships;
	void (*log_free)(void *log);
};

struct qc_rooms *qc_rooms_new(void)
{
	return calloc(1, sizeof(struct qc_rooms));
}

static void remove_room(struct qc_rooms *rs, struct qc_room *r)
{
	HASH_DELETE(hh, rs->by_name, r);
	rs->count--;
	if (r->log && rs->log_free)
		rs->log_free(r->log);
	free(r);
}

/* Unlinks @m from its room and its set and frees it; the room itself is left alone. */
static void unlink_membership(struct qc_rooms *rs, struct qc_membership *m)
{
	struct qc_room *r = m->room;

	DL_DELETE2(r->members, m, room_prev, room_next);
	r->nmembers--;

	HASH_DELETE(hh, m->set->by_room, m);
	m->set->count--;

	rs->memberships--;
	free(m);
}

static void leave_membership(struct qc_rooms *rs, struct qc_membership *m)
{
	struct qc_room *r = m->room;

	unlink_membership(rs, m);
	if (!r->nmembers && !r->kept && !r->held)
		remove_room(rs, r);
}

void qc_rooms_delete(struct qc_rooms *rs, struct qc_room *room)
{
	while (room->members)
		unlink_membership(rs, room->members);
	remove_room(rs, room);
}

void qc_rooms_free(struct qc_rooms *rs)
{
	struct qc_room *r, *tmp;

	if (!rs)
		return;
	/*
	 * Unlinking from the sets as well costs little and frees the sets' own hash tables,
	 * which uthash allocates and would otherwise leak.
	 */
	HASH_ITER (hh, rs->by_name, r, tmp) {
		qc_rooms_delete(rs, r);
	}
	free(rs);
}

/* The name's length when it is valid, else 0. */
static size_t name_len(const char *name)
{
	size_t len;

	if (!name)
		return 0;
	len = strnlen(name, QC_ROOM_NAME_MAX + 1);
	return len > QC_ROOM_NAME_MAX ? 0 : len;
}

struct qc_room *qc_rooms_find(const struct qc_rooms *rs, const char *name)
{
	struct qc_room *r;
	size_t len = name_len(name);

	if (!len)
		return NULL;
	HASH_FIND(hh, rs->by_name, name, len, r);
	return r;
}

struct qc_room *qc_rooms_create(struct qc_rooms *rs, const char *name)
{
	struct qc_room *r;
	size_t len = name_len(name);

	if (!len) {
		errno = EINVAL;
		return NULL;
	}
	HASH_FIND(hh, rs->by_name, name, len, r);
	if (r)
		return r;

	r = calloc(1, sizeof(*r) + len + 1);
	if (!r)
		return NULL;
	memcpy(r->name, name, len);
	HASH_ADD_KEYPTR(hh, rs->by_name, r->name, len, r);
	if (!r->hh.tbl)
		goto fail_free;
	rs->count++;
	return r;

fail_free:
	free(r);
	errno = ENOMEM;
	return NULL;
}

int qc_rooms_join(struct qc_rooms *rs, struct qc_room *room, struct qc_room_set *set, void *conn)
{
	struct qc_membership *m;

	HASH_FIND_PTR(set->by_room, &room, m);
	if (m)
		return -EEXIST;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->room = room;
	m->conn = conn;
	m->set = set;
	HASH_ADD_PTR(set->by_room, room, m);
	if (!m->hh.tbl)
		goto fail_free;
	set->count++;

	DL_PREPEND2(room->members, m, room_prev, room_next);
	room->nmembers++;

	rs->memberships++;
	return 0;

fail_free:
	free(m);
	return -ENOMEM;
}

int qc_rooms_leave(struct qc_rooms *rs, struct qc_room *room, struct qc_room_set *set)
{
	struct qc_membership *m;

	HASH_FIND_PTR(set->by_room, &room, m);
	if (!m)
		return -ENOENT;
	leave_membership(rs, m);
	return 0;
}

void qc_rooms_leave_all(struct qc_rooms *rs, struct qc_room_set *set)
{
	struct qc_membership *m, *tmp;

	HASH_ITER (hh, set->by_room, m, tmp) {
		leave_membership(rs, m);
	}
}

bool qc_room_set_has(const struct qc_room_set *set, const struct qc_room *room)
{
	struct qc_membership *m;

	HASH_FIND_PTR(set->by_room, &room, m);
	return m != NULL;
}

const char *qc_room_name(const struct qc_room *r)
{
	return r->name;
}

uint32_t qc_room_size(const struct qc_room *r)
{
	return r->nmembers;
}

struct qc_membership *qc_room_members(const struct qc_room *r)
{
	return r->members;
}

void qc_room_set_kept(struct qc_room *r, bool kept)
{
	r->kept = kept;
}

bool qc_room_kept(const struct qc_room *r)
{
	return r->kept;
}

void qc_room_hold(struct qc_room *r)
{
	r->held++;
}

bool qc_room_unhold(struct qc_room *r)
{
	if (r->held)
		r->held--;
	return !r->nmembers && !r->kept && !r->held;
}

bool qc_room_held(const struct qc_room *r)
{
	return r->held != 0;
}

void qc_room_set_ext(struct qc_room *r, void *ext)
{
	r->ext = ext;
}

void *qc_room_ext(const struct qc_room *r)
{
	return r->ext;
}

uint32_t qc_rooms_count(const struct qc_rooms *rs)
{
	return rs->count;
}

uint64_t qc_rooms_memberships(const struct qc_rooms *rs)
{
	return rs->memberships;
}

void qc_rooms_foreach(const struct qc_rooms *rs, void (*fn)(struct qc_room *r, void *arg),
                      void *arg)
{
	struct qc_room *r, *tmp;

	HASH_ITER (hh, rs->by_name, r, tmp) {
		fn(r, arg);
	}
}

void qc_rooms_set_log_free(struct qc_rooms *rs, void (*log_free)(void *log))
{
	rs->log_free = log_free;
}

void qc_room_set_log(struct qc_room *r, void *log)
{
	r->log = log;
}

void *qc_room_log(const struct qc_room *r)
{
	return r->log;
}
