/*
 * test_acl: every role x permission x room type x status against a table written out here by
 * hand (not computed), the same for joining and for managing members, out-of-range values,
 * and the wire names (round trip, unknown and "none" refused).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "quotecast/acl.h"

/*
 * expect_allows[role][type]: four groups (active, inactive, archived, closed) of six cells
 * (read, write, delete, manage_members, set_status, delete_room); a letter means allowed.
 */
static const char *const expect_allows[QC_ROLE__COUNT][QC_ROOM_TYPE__COUNT] = {
    [QC_ROLE_OWNER] =
        {
            [QC_ROOM_PUBLIC] = "RWDMSX RWDMSX R---SX ----SX",
            [QC_ROOM_PRIVATE] = "RWDMSX RWDMSX R---SX ----SX",
            [QC_ROOM_PROTECTED] = "RWDMSX RWDMSX R---SX ----SX",
        },
    [QC_ROLE_ADMIN_R] =
        {
            [QC_ROOM_PUBLIC] = "RWDMS- RWDMS- R---S- ----S-",
            [QC_ROOM_PRIVATE] = "RWDMS- RWDMS- R---S- ----S-",
            [QC_ROOM_PROTECTED] = "RWDMS- RWDMS- R---S- ----S-",
        },
    [QC_ROLE_MODERATOR] =
        {
            [QC_ROOM_PUBLIC] = "RWDM-- RWDM-- R----- ------",
            [QC_ROOM_PRIVATE] = "RWDM-- RWDM-- R----- ------",
            [QC_ROOM_PROTECTED] = "RWDM-- RWDM-- R----- ------",
        },
    [QC_ROLE_MEMBER] =
        {
            [QC_ROOM_PUBLIC] = "RW---- RW---- R----- ------",
            [QC_ROOM_PRIVATE] = "RW---- RW---- R----- ------",
            [QC_ROOM_PROTECTED] = "RW---- RW---- R----- ------",
        },
    [QC_ROLE_NONE] =
        {
            [QC_ROOM_PUBLIC] = "R----- R----- R----- ------",
            [QC_ROOM_PRIVATE] = "------ ------ ------ ------",
            [QC_ROOM_PROTECTED] = "R----- R----- R----- ------",
        },
};

/* expect_join[role][type]: one cell per status (active, inactive, archived, closed). */
static const char *const expect_join[QC_ROLE__COUNT][QC_ROOM_TYPE__COUNT] = {
    [QC_ROLE_OWNER] = {"yyyn", "yyyn", "yyyn"},
    [QC_ROLE_ADMIN_R] = {"yyyn", "yyyn", "yyyn"},
    [QC_ROLE_MODERATOR] = {"yyyn", "yyyn", "yyyn"},
    [QC_ROLE_MEMBER] = {"yyyn", "yyyn", "yyyn"},
    /* public, private, protected */
    [QC_ROLE_NONE] = {"ynnn", "nnnn", "ynnn"},
};

/*
 * expect_manage[actor][target]: one cell per new role (none, member, moderator, admin, owner).
 */
static const char *const expect_manage[QC_ROLE__COUNT][QC_ROLE__COUNT] = {
    [QC_ROLE_OWNER] =
        {
            [QC_ROLE_NONE] = "yyyyn",
            [QC_ROLE_MEMBER] = "yyyyn",
            [QC_ROLE_MODERATOR] = "yyyyn",
            [QC_ROLE_ADMIN_R] = "yyyyn",
            [QC_ROLE_OWNER] = "nnnnn",
        },
    [QC_ROLE_ADMIN_R] =
        {
            [QC_ROLE_NONE] = "yyynn",
            [QC_ROLE_MEMBER] = "yyynn",
            [QC_ROLE_MODERATOR] = "yyynn",
            [QC_ROLE_ADMIN_R] = "nnnnn",
            [QC_ROLE_OWNER] = "nnnnn",
        },
    [QC_ROLE_MODERATOR] =
        {
            [QC_ROLE_NONE] = "nynnn",
            [QC_ROLE_MEMBER] = "ynnnn",
            [QC_ROLE_MODERATOR] = "nnnnn",
            [QC_ROLE_ADMIN_R] = "nnnnn",
            [QC_ROLE_OWNER] = "nnnnn",
        },
    [QC_ROLE_MEMBER] =
        {
            [QC_ROLE_NONE] = "nnnnn",
            [QC_ROLE_MEMBER] = "nnnnn",
            [QC_ROLE_MODERATOR] = "nnnnn",
            [QC_ROLE_ADMIN_R] = "nnnnn",
            [QC_ROLE_OWNER] = "nnnnn",
        },
    [QC_ROLE_NONE] =
        {
            [QC_ROLE_NONE] = "nnnnn",
            [QC_ROLE_MEMBER] = "nnnnn",
            [QC_ROLE_MODERATOR] = "nnnnn",
            [QC_ROLE_ADMIN_R] = "nnnnn",
            [QC_ROLE_OWNER] = "nnnnn",
        },
};

static const char perm_letters[QC_PERM__COUNT + 1] = "RWDMSX";

static void test_allows_exhaustive(void **state)
{
	unsigned int role, perm, type, status, checked = 0, allowed = 0;
	const char *row;
	char cell;
	bool want, got;

	(void)state;
	for (role = 0; role < QC_ROLE__COUNT; role++) {
		for (type = 0; type < QC_ROOM_TYPE__COUNT; type++) {
			row = expect_allows[role][type];
			assert_int_equal(strlen(row), QC_STATUS__COUNT * (QC_PERM__COUNT + 1) - 1);
			for (status = 0; status < QC_STATUS__COUNT; status++) {
				for (perm = 0; perm < QC_PERM__COUNT; perm++) {
					cell = row[status * (QC_PERM__COUNT + 1) + perm];
					/* A typo in the table must not pass silently. */
					if (cell != '-' && cell != perm_letters[perm])
						fail_msg("bad cell '%c' role %u type %u", cell,
						         role, type);
					want = cell != '-';
					got = qc_acl_allows(role, perm, type, status);
					if (want != got)
						fail_msg("allows(role %s, perm %c, type %s, "
						         "status %s) = %d, want %d",
						         qc_role_name(role), perm_letters[perm],
						         qc_room_type_name(type),
						         qc_room_status_name(status), got, want);
					checked++;
					allowed += got;
				}
			}
		}
	}
	assert_int_equal(checked, 360);
	/* Count of letters in the table above, so a blank table cannot pass. */
	assert_int_equal(allowed, 3 * (17 + 13 + 9 + 5) + 3 + 0 + 3);
}

static void test_may_join_exhaustive(void **state)
{
	unsigned int role, type, status, checked = 0;
	bool want, got;
	char cell;

	(void)state;
	for (role = 0; role < QC_ROLE__COUNT; role++) {
		for (type = 0; type < QC_ROOM_TYPE__COUNT; type++) {
			assert_int_equal(strlen(expect_join[role][type]), QC_STATUS__COUNT);
			for (status = 0; status < QC_STATUS__COUNT; status++) {
				cell = expect_join[role][type][status];
				assert_true(cell == 'y' || cell == 'n');
				want = cell == 'y';
				got = qc_acl_may_join(role, type, status);
				if (want != got)
					fail_msg("may_join(role %s, type %s, status %s) = %d, "
					         "want %d",
					         qc_role_name(role), qc_room_type_name(type),
					         qc_room_status_name(status), got, want);
				checked++;
			}
		}
	}
	assert_int_equal(checked, 60);
}

static void test_can_manage_exhaustive(void **state)
{
	unsigned int actor, target, new_role, checked = 0;
	bool want, got;
	char cell;

	(void)state;
	for (actor = 0; actor < QC_ROLE__COUNT; actor++) {
		for (target = 0; target < QC_ROLE__COUNT; target++) {
			assert_int_equal(strlen(expect_manage[actor][target]), QC_ROLE__COUNT);
			for (new_role = 0; new_role < QC_ROLE__COUNT; new_role++) {
				cell = expect_manage[actor][target][new_role];
				assert_true(cell == 'y' || cell == 'n');
				want = cell == 'y';
				got = qc_acl_can_manage(actor, target, new_role);
				if (want != got)
					fail_msg("can_manage(%s, %s -> %s) = %d, want %d",
					         qc_role_name(actor), qc_role_name(target),
					         qc_role_name(new_role), got, want);
				checked++;
			}
		}
	}
	assert_int_equal(checked, 125);
}

/* A few rules spelled out one by one, as a reader of SPEC 2.3 would check them. */
static void test_spot_checks(void **state)
{
	(void)state;
	/* A stranger reads a public room, never a private one, and never writes. */
	assert_true(qc_acl_allows(QC_ROLE_NONE, QC_PERM_READ, QC_ROOM_PUBLIC, QC_STATUS_ACTIVE));
	assert_false(qc_acl_allows(QC_ROLE_NONE, QC_PERM_READ, QC_ROOM_PRIVATE, QC_STATUS_ACTIVE));
	assert_false(qc_acl_allows(QC_ROLE_NONE, QC_PERM_WRITE, QC_ROOM_PUBLIC, QC_STATUS_ACTIVE));
	/* Archived is read-only even for the owner, who may still reopen or delete it. */
	assert_false(
	    qc_acl_allows(QC_ROLE_OWNER, QC_PERM_WRITE, QC_ROOM_PUBLIC, QC_STATUS_ARCHIVED));
	assert_true(
	    qc_acl_allows(QC_ROLE_OWNER, QC_PERM_SET_STATUS, QC_ROOM_PUBLIC, QC_STATUS_ARCHIVED));
	/* Closed: the admin may reopen it, only the owner may delete it. */
	assert_true(
	    qc_acl_allows(QC_ROLE_ADMIN_R, QC_PERM_SET_STATUS, QC_ROOM_PRIVATE, QC_STATUS_CLOSED));
	assert_false(
	    qc_acl_allows(QC_ROLE_ADMIN_R, QC_PERM_DELETE_ROOM, QC_ROOM_PRIVATE, QC_STATUS_ACTIVE));
	assert_true(
	    qc_acl_allows(QC_ROLE_OWNER, QC_PERM_DELETE_ROOM, QC_ROOM_PRIVATE, QC_STATUS_CLOSED));
	assert_false(qc_acl_allows(QC_ROLE_OWNER, QC_PERM_READ, QC_ROOM_PRIVATE, QC_STATUS_CLOSED));
	/* Inactive: members come back, strangers do not come in. */
	assert_true(qc_acl_may_join(QC_ROLE_MEMBER, QC_ROOM_PUBLIC, QC_STATUS_INACTIVE));
	assert_false(qc_acl_may_join(QC_ROLE_NONE, QC_ROOM_PUBLIC, QC_STATUS_INACTIVE));
	assert_false(qc_acl_may_join(QC_ROLE_OWNER, QC_ROOM_PUBLIC, QC_STATUS_CLOSED));
	/* Never a second owner; a moderator cannot promote. */
	assert_false(qc_acl_can_manage(QC_ROLE_OWNER, QC_ROLE_ADMIN_R, QC_ROLE_OWNER));
	assert_true(qc_acl_can_manage(QC_ROLE_OWNER, QC_ROLE_ADMIN_R, QC_ROLE_MEMBER));
	assert_false(qc_acl_can_manage(QC_ROLE_MODERATOR, QC_ROLE_MEMBER, QC_ROLE_MODERATOR));
	assert_false(qc_acl_can_manage(QC_ROLE_ADMIN_R, QC_ROLE_NONE, QC_ROLE_ADMIN_R));
}

static void test_out_of_range(void **state)
{
	enum qc_role bad_role = (enum qc_role)QC_ROLE__COUNT;
	enum qc_role neg_role = (enum qc_role) - 1;
	enum qc_perm bad_perm = (enum qc_perm)QC_PERM__COUNT;
	enum qc_room_type bad_type = (enum qc_room_type)QC_ROOM_TYPE__COUNT;
	enum qc_room_status bad_status = (enum qc_room_status)QC_STATUS__COUNT;

	(void)state;
	assert_false(qc_acl_allows(bad_role, QC_PERM_READ, QC_ROOM_PUBLIC, QC_STATUS_ACTIVE));
	assert_false(qc_acl_allows(neg_role, QC_PERM_READ, QC_ROOM_PUBLIC, QC_STATUS_ACTIVE));
	assert_false(qc_acl_allows(QC_ROLE_OWNER, bad_perm, QC_ROOM_PUBLIC, QC_STATUS_ACTIVE));
	assert_false(qc_acl_allows(QC_ROLE_OWNER, QC_PERM_READ, bad_type, QC_STATUS_ACTIVE));
	assert_false(qc_acl_allows(QC_ROLE_OWNER, QC_PERM_READ, QC_ROOM_PUBLIC, bad_status));
	assert_false(qc_acl_may_join(bad_role, QC_ROOM_PUBLIC, QC_STATUS_ACTIVE));
	assert_false(qc_acl_may_join(QC_ROLE_OWNER, bad_type, QC_STATUS_ACTIVE));
	assert_false(qc_acl_may_join(QC_ROLE_OWNER, QC_ROOM_PUBLIC, bad_status));
	assert_false(qc_acl_can_manage(bad_role, QC_ROLE_MEMBER, QC_ROLE_NONE));
	assert_false(qc_acl_can_manage(QC_ROLE_OWNER, bad_role, QC_ROLE_NONE));
	assert_false(qc_acl_can_manage(QC_ROLE_OWNER, QC_ROLE_MEMBER, bad_role));
	assert_false(qc_acl_can_manage(QC_ROLE_OWNER, neg_role, QC_ROLE_NONE));
	assert_null(qc_role_name(bad_role));
	assert_null(qc_role_name(neg_role));
	assert_null(qc_room_type_name(bad_type));
	assert_null(qc_room_status_name(bad_status));
}

static void test_role_names(void **state)
{
	static const struct {
		enum qc_role role;
		const char *name;
	} cases[] = {
	    {QC_ROLE_OWNER, "owner"},
	    {QC_ROLE_ADMIN_R, "admin"},
	    {QC_ROLE_MODERATOR, "moderator"},
	    {QC_ROLE_MEMBER, "member"},
	};
	enum qc_role r;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_string_equal(qc_role_name(cases[i].role), cases[i].name);
		r = QC_ROLE_NONE;
		assert_true(qc_role_parse(cases[i].name, &r));
		assert_int_equal(r, cases[i].role);
	}
	assert_string_equal(qc_role_name(QC_ROLE_NONE), "none");

	/* Unknown names leave *out alone. */
	r = QC_ROLE_MODERATOR;
	assert_false(qc_role_parse("none", &r));
	assert_false(qc_role_parse("", &r));
	assert_false(qc_role_parse("Owner", &r));
	assert_false(qc_role_parse("owner ", &r));
	assert_false(qc_role_parse("own", &r));
	assert_false(qc_role_parse("administrator", &r));
	assert_false(qc_role_parse("publisher", &r));
	assert_false(qc_role_parse(NULL, &r));
	assert_int_equal(r, QC_ROLE_MODERATOR);
}

static void test_type_names(void **state)
{
	static const struct {
		enum qc_room_type type;
		const char *name;
	} cases[] = {
	    {QC_ROOM_PUBLIC, "public"},
	    {QC_ROOM_PRIVATE, "private"},
	    {QC_ROOM_PROTECTED, "protected"},
	};
	enum qc_room_type t;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_string_equal(qc_room_type_name(cases[i].type), cases[i].name);
		t = (enum qc_room_type)QC_ROOM_TYPE__COUNT;
		assert_true(qc_room_type_parse(cases[i].name, &t));
		assert_int_equal(t, cases[i].type);
	}

	t = QC_ROOM_PROTECTED;
	assert_false(qc_room_type_parse("PUBLIC", &t));
	assert_false(qc_room_type_parse("", &t));
	assert_false(qc_room_type_parse("secret", &t));
	assert_false(qc_room_type_parse("privat", &t));
	assert_false(qc_room_type_parse(NULL, &t));
	assert_int_equal(t, QC_ROOM_PROTECTED);
}

static void test_status_names(void **state)
{
	static const struct {
		enum qc_room_status status;
		const char *name;
	} cases[] = {
	    {QC_STATUS_ACTIVE, "active"},
	    {QC_STATUS_INACTIVE, "inactive"},
	    {QC_STATUS_ARCHIVED, "archived"},
	    {QC_STATUS_CLOSED, "closed"},
	};
	enum qc_room_status s;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_string_equal(qc_room_status_name(cases[i].status), cases[i].name);
		s = (enum qc_room_status)QC_STATUS__COUNT;
		assert_true(qc_room_status_parse(cases[i].name, &s));
		assert_int_equal(s, cases[i].status);
	}

	s = QC_STATUS_ARCHIVED;
	assert_false(qc_room_status_parse("open", &s));
	assert_false(qc_room_status_parse("Closed", &s));
	assert_false(qc_room_status_parse("", &s));
	assert_false(qc_room_status_parse("activ", &s));
	assert_false(qc_room_status_parse(NULL, &s));
	assert_int_equal(s, QC_STATUS_ARCHIVED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_allows_exhaustive),
	    cmocka_unit_test(test_may_join_exhaustive),
	    cmocka_unit_test(test_can_manage_exhaustive),
	    cmocka_unit_test(test_spot_checks),
	    cmocka_unit_test(test_out_of_range),
	    cmocka_unit_test(test_role_names),
	    cmocka_unit_test(test_type_names),
	    cmocka_unit_test(test_status_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
