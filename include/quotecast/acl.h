/*
 * acl: who may do what in a room made with create_room (SPEC 2.3). One table, no state: the
 * answer depends only on the caller's role in the room, the permission, the room's type and
 * its status. Implicit rooms (made by a first subscribe) have no ACL: anyone reads and writes.
 */
#ifndef QC_ACL_H
#define QC_ACL_H

#include <stdbool.h>

enum qc_role {
	QC_ROLE_NONE = 0, /* not a member */
	QC_ROLE_MEMBER,
	QC_ROLE_MODERATOR,
	QC_ROLE_ADMIN_R, /* the room admin ("admin"); distinct from the server role QC_ROLE_ADMIN */
	QC_ROLE_OWNER,
	QC_ROLE__COUNT
};

enum qc_perm {
	QC_PERM_READ = 0,       /* subscribe and receive */
	QC_PERM_WRITE,          /* send_message */
	QC_PERM_DELETE,         /* delete messages */
	QC_PERM_MANAGE_MEMBERS, /* add_member, remove_member, set_member_role (see
	                           qc_acl_can_manage) */
	QC_PERM_SET_STATUS,     /* set_room_status */
	QC_PERM_DELETE_ROOM,    /* delete_room */
	QC_PERM__COUNT
};

enum qc_room_type {
	QC_ROOM_PUBLIC = 0, /* anyone may subscribe (and so becomes a member) */
	QC_ROOM_PRIVATE,    /* members only; members are added by an admin or moderator */
	QC_ROOM_PROTECTED,  /* anyone with the password (a correct password makes a member) */
	QC_ROOM_TYPE__COUNT
};

enum qc_room_status {
	QC_STATUS_ACTIVE = 0,
	QC_STATUS_INACTIVE, /* no new subscriptions */
	QC_STATUS_ARCHIVED, /* read-only */
	QC_STATUS_CLOSED,   /* everyone is removed; only set_status (reopen) and delete_room */
	QC_STATUS__COUNT
};

/**
 * qc_acl_allows() - whether a caller with @role (QC_ROLE_NONE for a non-member) may use @perm
 * in a room of @type and @status. For QC_PERM_READ by a non-member of a protected room this
 * answers as if the password were right (the caller checks it).
 */
bool qc_acl_allows(enum qc_role role, enum qc_perm perm, enum qc_room_type type,
                   enum qc_room_status status);

/**
 * qc_acl_may_join() - whether a connection of a caller with @role may subscribe now
 * (new subscriptions: READ, and the room must be active, except that members may
 * re-subscribe to an inactive or archived room they are members of).
 */
bool qc_acl_may_join(enum qc_role role, enum qc_room_type type, enum qc_room_status status);

/**
 * qc_acl_can_manage() - whether @actor may add, remove or change the role of a member whose
 * role is @target (QC_ROLE_NONE when adding), giving it @new_role (QC_ROLE_NONE for a
 * removal, QC_ROLE_MEMBER or higher for an add). Owners manage everyone but owners and never
 * make a second owner; admins manage moderators and members; moderators add and remove members
 * only. Does not look at the room's status: check QC_PERM_MANAGE_MEMBERS first.
 */
bool qc_acl_can_manage(enum qc_role actor, enum qc_role target, enum qc_role new_role);

/**
 * Names on the wire (NULL for an out-of-range value; QC_ROLE_NONE is "none"), and parsing them
 * (false for an unknown name, and for "none"; *out is left alone then).
 */
const char *qc_role_name(enum qc_role r);
bool qc_role_parse(const char *s, enum qc_role *out);
const char *qc_room_type_name(enum qc_room_type t);
bool qc_room_type_parse(const char *s, enum qc_room_type *out);
const char *qc_room_status_name(enum qc_room_status s);
bool qc_room_status_parse(const char *s, enum qc_room_status *out);

#endif
