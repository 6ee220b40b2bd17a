/*
 * room: the multi-room subscription index.
 *
 * A connection may be in any number of rooms. Each membership is one node linked both ways:
 * into the room's member list and into the connection's own set (a hash keyed by room), so
 * join, leave, "is member" and disconnect cleanup are O(1) per membership. A room with no
 * members is removed unless it is marked kept (rooms made with create_room).
 *
 * The index never owns connections: it stores the opaque pointer the caller passes.
 */
#ifndef QC_ROOM_H
#define QC_ROOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uthash.h>

#define QC_ROOM_NAME_MAX 128 /* bytes, without the NUL */

struct qc_rooms;
struct qc_room;

struct qc_membership {
	struct qc_room *room;
	void *conn;              /* the caller's connection, borrowed */
	struct qc_room_set *set; /* the set this membership is in */
	struct qc_membership
	    *room_prev; /* the room's member list (utlist DL: head's prev = tail) */
	struct qc_membership *room_next;
	uint64_t seq;      /* the caller's: the last room-log seq queued to this membership */
	UT_hash_handle hh; /* in the connection's set, keyed by room pointer */
};

/* Embedded in each connection: the rooms it is in. All zero is an empty set. */
struct qc_room_set {
	struct qc_membership *by_room; /* uthash head */
	uint32_t count;
};

/** qc_rooms_new() - an empty index, or NULL. */
struct qc_rooms *qc_rooms_new(void);

/** qc_rooms_free() - free every room and membership. Connections' sets must be discarded. */
void qc_rooms_free(struct qc_rooms *rs);

/** qc_rooms_find() - the room called @name (borrowed) or NULL. */
struct qc_room *qc_rooms_find(const struct qc_rooms *rs, const char *name);

/**
 * qc_rooms_create() - find or create the room @name (copied). Returns it, or NULL on ENOMEM
 * or a name that is empty or longer than QC_ROOM_NAME_MAX. A created room with no members
 * is removed at the next leave unless qc_room_set_kept() is called.
 */
struct qc_room *qc_rooms_create(struct qc_rooms *rs, const char *name);

/**
 * qc_rooms_join() - add @conn (whose set is @set) to @room.
 * Returns 0, -EEXIST when already a member, -ENOMEM.
 */
int qc_rooms_join(struct qc_rooms *rs, struct qc_room *room, struct qc_room_set *set, void *conn);

/**
 * qc_rooms_leave() - remove the connection of @set from @room. Removes the room when it is
 * left empty and not kept (the pointer is then invalid). Returns 0 or -ENOENT.
 */
int qc_rooms_leave(struct qc_rooms *rs, struct qc_room *room, struct qc_room_set *set);

/** qc_rooms_leave_all() - leave every room of @set; @set is empty afterwards. */
void qc_rooms_leave_all(struct qc_rooms *rs, struct qc_room_set *set);

/** qc_room_set_has() - whether the connection of @set is in @room. */
bool qc_room_set_has(const struct qc_room_set *set, const struct qc_room *room);

/** qc_rooms_delete() - remove @room and every membership in it (connections' sets too). */
void qc_rooms_delete(struct qc_rooms *rs, struct qc_room *room);

/** qc_room_name(), qc_room_size() (memberships), first member (iterate with ->room_next). */
const char *qc_room_name(const struct qc_room *r);
uint32_t qc_room_size(const struct qc_room *r);
struct qc_membership *qc_room_members(const struct qc_room *r);

/** Kept rooms survive being empty. */
void qc_room_set_kept(struct qc_room *r, bool kept);
bool qc_room_kept(const struct qc_room *r);

/**
 * A held room survives being empty until each qc_room_hold() has had its qc_room_unhold()
 * (a log read for a session not yet rebuilt). qc_room_unhold() returns whether the room
 * would now be removed (empty, not kept, not held): the caller deletes it.
 */
void qc_room_hold(struct qc_room *r);
bool qc_room_unhold(struct qc_room *r);
bool qc_room_held(const struct qc_room *r);

/** An opaque pointer the domain layer hangs on a room (e.g. owner, type); not freed here. */
void qc_room_set_ext(struct qc_room *r, void *ext);
void *qc_room_ext(const struct qc_room *r);

/**
 * A room's log (the caller's type): qc_room_set_log() hangs it on the room, and the room
 * frees it with @log_free (set once on the index) when it is removed.
 */
void qc_rooms_set_log_free(struct qc_rooms *rs, void (*log_free)(void *log));
void qc_room_set_log(struct qc_room *r, void *log);
void *qc_room_log(const struct qc_room *r);

/** Counters for the stats document. */
uint32_t qc_rooms_count(const struct qc_rooms *rs);
uint64_t qc_rooms_memberships(const struct qc_rooms *rs);

/** qc_rooms_foreach() - call @fn for every room; @fn must not add or remove rooms. */
void qc_rooms_foreach(const struct qc_rooms *rs, void (*fn)(struct qc_room *r, void *arg),
                      void *arg);

#endif
