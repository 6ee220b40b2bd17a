/*
 * acl: the permission table of rooms made with create_room (SPEC 2.3), and the wire names of
 * roles, room types and statuses. No state, no allocation: every answer is a lookup.
 *
 * A permission is allowed when the caller's role grants it in a room of that type (role_perms)
 * AND the room's status leaves it open (status_perms). The full result, R W D M S X standing
 * for read, write, delete, manage_members, set_status, delete_room:
 *
 *   role       type          active    inactive  archived  closed
 *   owner      any           RWDMSX    RWDMSX    R---SX    ----SX
 *   admin      any           RWDMS-    RWDMS-    R---S-    ----S-
 *   moderator  any           RWDM--    RWDM--    R-----    ------
 *   member     any           RW----    RW----    R-----    ------
 *   none       public        R-----    R-----    R-----    ------
 *   none       protected     R-----    R-----    R-----    ------   (if the password is right)
 *   none       private       ------    ------    ------    ------
 *
 * Joining (a new subscription) needs READ and an active room; members may also re-join an
 * inactive or archived room; nobody joins a closed one:
 *
 *   role       type          active    inactive  archived  closed
 *   member+    any           yes       yes       yes       no
 *   none       public        yes       no        no        no
 *   none       protected     yes       no        no        no
 *   none       private       no        no        no        no
 *
 * Managing members (qc_acl_can_manage, on top of MANAGE_MEMBERS): an add is target none ->
 * new role member or higher, a removal is new role none, a role change is the rest.
 *
 *   actor      may act on target        giving new role
 *   owner      none..admin              none..admin (never a second owner)
 *   admin      none, member, moderator  none, member, moderator
 *   moderator  none                     member (add)
 *              member                   none (removal)
 *   member     -                        -
 *   none       -                        -
 */
#include <string.h>

#include "quotecast/acl.h"

#define P(perm) (1u << (perm))
#define P_R     P(QC_PERM_READ)
#define P_W     P(QC_PERM_WRITE)
#define P_D     P(QC_PERM_DELETE)
#define P_M     P(QC_PERM_MANAGE_MEMBERS)
#define P_S     P(QC_PERM_SET_STATUS)
#define P_X     P(QC_PERM_DELETE_ROOM)

/* What each role may do in an active room of each type. */
static const unsigned int role_perms[QC_ROLE__COUNT][QC_ROOM_TYPE__COUNT] = {
    [QC_ROLE_NONE] =
        {
            [QC_ROOM_PUBLIC] = P_R,
            [QC_ROOM_PRIVATE] = 0,
            [QC_ROOM_PROTECTED] = P_R,
        },
    [QC_ROLE_MEMBER] =
        {
            [QC_ROOM_PUBLIC] = P_R | P_W,
            [QC_ROOM_PRIVATE] = P_R | P_W,
            [QC_ROOM_PROTECTED] = P_R | P_W,
        },
    [QC_ROLE_MODERATOR] =
        {
            [QC_ROOM_PUBLIC] = P_R | P_W | P_D | P_M,
            [QC_ROOM_PRIVATE] = P_R | P_W | P_D | P_M,
            [QC_ROOM_PROTECTED] = P_R | P_W | P_D | P_M,
        },
    [QC_ROLE_ADMIN_R] =
        {
            [QC_ROOM_PUBLIC] = P_R | P_W | P_D | P_M | P_S,
            [QC_ROOM_PRIVATE] = P_R | P_W | P_D | P_M | P_S,
            [QC_ROOM_PROTECTED] = P_R | P_W | P_D | P_M | P_S,
        },
    [QC_ROLE_OWNER] =
        {
            [QC_ROOM_PUBLIC] = P_R | P_W | P_D | P_M | P_S | P_X,
            [QC_ROOM_PRIVATE] = P_R | P_W | P_D | P_M | P_S | P_X,
            [QC_ROOM_PROTECTED] = P_R | P_W | P_D | P_M | P_S | P_X,
        },
};

/*
 * What each status leaves open. SET_STATUS and DELETE_ROOM stay open everywhere so that an
 * archived or closed room can still be reopened or deleted.
 */
static const unsigned int status_perms[QC_STATUS__COUNT] = {
    [QC_STATUS_ACTIVE] = P_R | P_W | P_D | P_M | P_S | P_X,
    [QC_STATUS_INACTIVE] = P_R | P_W | P_D | P_M | P_S | P_X,
    [QC_STATUS_ARCHIVED] = P_R | P_S | P_X,
    [QC_STATUS_CLOSED] = P_S | P_X,
};

/* Whether a new subscription is possible, for [0] non-members and [1] members. */
static const bool status_joinable[QC_STATUS__COUNT][2] = {
    [QC_STATUS_ACTIVE] = {true, true},
    [QC_STATUS_INACTIVE] = {false, true},
    [QC_STATUS_ARCHIVED] = {false, true},
    [QC_STATUS_CLOSED] = {false, false},
};

static const char *const role_names[QC_ROLE__COUNT] = {
    [QC_ROLE_NONE] = "none",     [QC_ROLE_MEMBER] = "member", [QC_ROLE_MODERATOR] = "moderator",
    [QC_ROLE_ADMIN_R] = "admin", [QC_ROLE_OWNER] = "owner",
};

static const char *const type_names[QC_ROOM_TYPE__COUNT] = {
    [QC_ROOM_PUBLIC] = "public",
    [QC_ROOM_PRIVATE] = "private",
    [QC_ROOM_PROTECTED] = "protected",
};

static const char *const status_names[QC_STATUS__COUNT] = {
    [QC_STATUS_ACTIVE] = "active",
    [QC_STATUS_INACTIVE] = "inactive",
    [QC_STATUS_ARCHIVED] = "archived",
    [QC_STATUS_CLOSED] = "closed",
};

/* Casts through unsigned so that a negative value from a bad cast is out of range too. */
static bool role_ok(enum qc_role r)
{
	return (unsigned int)r < QC_ROLE__COUNT;
}

static bool type_ok(enum qc_room_type t)
{
	return (unsigned int)t < QC_ROOM_TYPE__COUNT;
}

static bool status_ok(enum qc_room_status s)
{
	return (unsigned int)s < QC_STATUS__COUNT;
}

bool qc_acl_allows(enum qc_role role, enum qc_perm perm, enum qc_room_type type,
                   enum qc_room_status status)
{
	if (!role_ok(role) || (unsigned int)perm >= QC_PERM__COUNT || !type_ok(type) ||
	    !status_ok(status))
		return false;
	return role_perms[role][type] & status_perms[status] & P(perm);
}

bool qc_acl_may_join(enum qc_role role, enum qc_room_type type, enum qc_room_status status)
{
	if (!qc_acl_allows(role, QC_PERM_READ, type, status))
		return false;
	return status_joinable[status][role != QC_ROLE_NONE];
}

bool qc_acl_can_manage(enum qc_role actor, enum qc_role target, enum qc_role new_role)
{
	if (!role_ok(actor) || !role_ok(target) || !role_ok(new_role))
		return false;

	switch (actor) {
	case QC_ROLE_OWNER:
		return target != QC_ROLE_OWNER && new_role != QC_ROLE_OWNER;
	case QC_ROLE_ADMIN_R:
		/* The enum is ordered by rank: none < member < moderator < admin < owner. */
		return target <= QC_ROLE_MODERATOR && new_role <= QC_ROLE_MODERATOR;
	case QC_ROLE_MODERATOR:
		return (target == QC_ROLE_NONE && new_role == QC_ROLE_MEMBER) ||
		       (target == QC_ROLE_MEMBER && new_role == QC_ROLE_NONE);
	default:
		return false;
	}
}

static bool parse_name(const char *s, const char *const *names, unsigned int count,
                       unsigned int first, unsigned int *out)
{
	unsigned int i;

	if (!s)
		return false;
	for (i = first; i < count; i++) {
		if (!strcmp(s, names[i])) {
			*out = i;
			return true;
		}
	}
	return false;
}

const char *qc_role_name(enum qc_role r)
{
	return role_ok(r) ? role_names[r] : NULL;
}

bool qc_role_parse(const char *s, enum qc_role *out)
{
	unsigned int i;

	/* Start after QC_ROLE_NONE: "none" is printed but is not a role one can be given. */
	if (!parse_name(s, role_names, QC_ROLE__COUNT, QC_ROLE_NONE + 1, &i))
		return false;
	*out = (enum qc_role)i;
	return true;
}

const char *qc_room_type_name(enum qc_room_type t)
{
	return type_ok(t) ? type_names[t] : NULL;
}

bool qc_room_type_parse(const char *s, enum qc_room_type *out)
{
	unsigned int i;

	if (!parse_name(s, type_names, QC_ROOM_TYPE__COUNT, 0, &i))
		return false;
	*out = (enum qc_room_type)i;
	return true;
}

const char *qc_room_status_name(enum qc_room_status s)
{
	return status_ok(s) ? status_names[s] : NULL;
}

bool qc_room_status_parse(const char *s, enum qc_room_status *out)
{
	unsigned int i;

	if (!parse_name(s, status_names, QC_STATUS__COUNT, 0, &i))
		return false;
	*out = (enum qc_room_status)i;
	return true;
}
