/*
 * Unit tests for the room index (src/room.c): both directions of every membership, error
 * returns, removal of empty rooms, kept rooms, delete, name limits and a large random run.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "quotecast/room.h"

struct fake_conn {
	int id;
	struct qc_room_set rooms;
};

static struct fake_conn *new_conns(size_t n)
{
	struct fake_conn *c = calloc(n, sizeof(*c));
	size_t i;

	assert_non_null(c);
	for (i = 0; i < n; i++)
		c[i].id = (int)i;
	return c;
}

/* Walks the member list checking its links; returns the number of members seen. */
static uint32_t check_member_list(const struct qc_room *r)
{
	const struct qc_membership *m, *prev = NULL;
	uint32_t n = 0;

	for (m = qc_room_members(r); m; m = m->room_next) {
		assert_ptr_equal(m->room, r);
		/* utlist: every prev links back, and the head's prev is the tail */
		if (prev)
			assert_ptr_equal(m->room_prev, prev);
		assert_non_null(m->set);
		assert_true(qc_room_set_has(m->set, r));
		prev = m;
		n++;
	}
	assert_int_equal(n, qc_room_size(r));
	if (qc_room_members(r))
		assert_ptr_equal(qc_room_members(r)->room_prev, prev);
	return n;
}

static bool room_has_conn(const struct qc_room *r, const struct fake_conn *c)
{
	const struct qc_membership *m;
	int seen = 0;

	for (m = qc_room_members(r); m; m = m->room_next)
		if (m->conn == c) {
			assert_ptr_equal(m->set, &c->rooms);
			seen++;
		}
	assert_true(seen <= 1);
	return seen == 1;
}

static void test_new_is_empty(void **state)
{
	struct qc_rooms *rs = qc_rooms_new();

	(void)state;
	assert_non_null(rs);
	assert_int_equal(qc_rooms_count(rs), 0);
	assert_int_equal(qc_rooms_memberships(rs), 0);
	assert_null(qc_rooms_find(rs, "a"));
	qc_rooms_free(rs);
	qc_rooms_free(NULL);
}

static void test_create_finds_existing(void **state)
{
	struct qc_rooms *rs = qc_rooms_new();
	struct qc_room *a, *b, *a2;

	(void)state;
	a = qc_rooms_create(rs, "alpha");
	assert_non_null(a);
	assert_string_equal(qc_room_name(a), "alpha");
	assert_false(qc_room_kept(a));
	assert_int_equal(qc_room_size(a), 0);
	assert_null(qc_room_members(a));
	assert_null(qc_room_ext(a));

	b = qc_rooms_create(rs, "alph");
	assert_non_null(b);
	assert_ptr_not_equal(a, b);

	a2 = qc_rooms_create(rs, "alpha");
	assert_ptr_equal(a, a2);
	assert_int_equal(qc_rooms_count(rs), 2);
	assert_ptr_equal(qc_rooms_find(rs, "alpha"), a);
	assert_ptr_equal(qc_rooms_find(rs, "alph"), b);
	assert_null(qc_rooms_find(rs, "alphab"));
	assert_null(qc_rooms_find(rs, "Alpha"));

	/* Never joined: stays until deleted. */
	assert_ptr_equal(qc_rooms_find(rs, "alpha"), a);
	qc_rooms_free(rs);
}

static void test_name_validation(void **state)
{
	struct qc_rooms *rs = qc_rooms_new();
	char name[QC_ROOM_NAME_MAX + 2];
	struct qc_room *r;

	(void)state;
	errno = 0;
	assert_null(qc_rooms_create(rs, ""));
	assert_int_equal(errno, EINVAL);
	assert_null(qc_rooms_create(rs, NULL));
	assert_null(qc_rooms_find(rs, ""));
	assert_null(qc_rooms_find(rs, NULL));

	memset(name, 'x', QC_ROOM_NAME_MAX);
	name[QC_ROOM_NAME_MAX] = '\0';
	assert_int_equal(strlen(name), 128);
	r = qc_rooms_create(rs, name);
	assert_non_null(r);
	assert_string_equal(qc_room_name(r), name);
	assert_ptr_equal(qc_rooms_find(rs, name), r);

	name[QC_ROOM_NAME_MAX] = 'x';
	name[QC_ROOM_NAME_MAX + 1] = '\0';
	assert_int_equal(strlen(name), 129);
	errno = 0;
	assert_null(qc_rooms_create(rs, name));
	assert_int_equal(errno, EINVAL);
	assert_null(qc_rooms_find(rs, name));

	assert_int_equal(qc_rooms_count(rs), 1);
	qc_rooms_free(rs);
}

static void test_join_leave_both_directions(void **state)
{
	enum { NCONN = 6, NROOM = 9 };
	struct qc_rooms *rs = qc_rooms_new();
	struct fake_conn *c = new_conns(NCONN);
	struct qc_room *r[NROOM];
	char name[16];
	uint64_t total = 0;
	int i, j;

	(void)state;
	for (j = 0; j < NROOM; j++) {
		snprintf(name, sizeof(name), "room-%d", j);
		r[j] = qc_rooms_create(rs, name);
		assert_non_null(r[j]);
	}
	/* Connection i is in room j when (i + j) % 3 != 0, plus room 0 for everyone. */
	for (i = 0; i < NCONN; i++)
		for (j = 0; j < NROOM; j++)
			if (j == 0 || (i + j) % 3) {
				assert_int_equal(qc_rooms_join(rs, r[j], &c[i].rooms, &c[i]), 0);
				total++;
			}
	assert_int_equal(qc_rooms_memberships(rs), total);
	assert_int_equal(qc_rooms_count(rs), NROOM);

	for (j = 0; j < NROOM; j++) {
		uint32_t expect = 0;

		for (i = 0; i < NCONN; i++) {
			bool in = j == 0 || (i + j) % 3;

			assert_int_equal(room_has_conn(r[j], &c[i]), in);
			assert_int_equal(qc_room_set_has(&c[i].rooms, r[j]), in);
			expect += in;
		}
		assert_int_equal(check_member_list(r[j]), expect);
	}
	for (i = 0; i < NCONN; i++) {
		uint32_t expect = 0;

		for (j = 0; j < NROOM; j++)
			expect += j == 0 || (i + j) % 3;
		assert_int_equal(c[i].rooms.count, expect);
		assert_int_equal(HASH_COUNT(c[i].rooms.by_room), expect);
	}

	/* Leave head, middle and tail of room 0's list. */
	assert_int_equal(qc_rooms_leave(rs, r[0], &c[NCONN - 1].rooms), 0); /* head */
	assert_int_equal(qc_rooms_leave(rs, r[0], &c[2].rooms), 0);         /* middle */
	assert_int_equal(qc_rooms_leave(rs, r[0], &c[0].rooms), 0);         /* tail */
	total -= 3;
	assert_int_equal(check_member_list(r[0]), NCONN - 3);
	assert_false(room_has_conn(r[0], &c[0]));
	assert_false(room_has_conn(r[0], &c[2]));
	assert_false(room_has_conn(r[0], &c[NCONN - 1]));
	assert_true(room_has_conn(r[0], &c[1]));
	assert_false(qc_room_set_has(&c[0].rooms, r[0]));
	assert_true(qc_room_set_has(&c[1].rooms, r[0]));
	assert_int_equal(qc_rooms_memberships(rs), total);

	for (i = 0; i < NCONN; i++)
		qc_rooms_leave_all(rs, &c[i].rooms);
	assert_int_equal(qc_rooms_memberships(rs), 0);
	assert_int_equal(qc_rooms_count(rs), 0);
	free(c);
	qc_rooms_free(rs);
}

static void test_eexist_enoent(void **state)
{
	struct qc_rooms *rs = qc_rooms_new();
	struct fake_conn *c = new_conns(2);
	struct qc_room *a = qc_rooms_create(rs, "a");
	struct qc_room *b = qc_rooms_create(rs, "b");

	(void)state;
	assert_int_equal(qc_rooms_join(rs, a, &c[0].rooms, &c[0]), 0);
	assert_int_equal(qc_rooms_join(rs, a, &c[0].rooms, &c[0]), -EEXIST);
	assert_int_equal(qc_room_size(a), 1);
	assert_int_equal(c[0].rooms.count, 1);
	assert_int_equal(qc_rooms_memberships(rs), 1);

	assert_int_equal(qc_rooms_leave(rs, b, &c[0].rooms), -ENOENT);
	assert_int_equal(qc_rooms_leave(rs, a, &c[1].rooms), -ENOENT);
	assert_int_equal(qc_room_size(a), 1);
	assert_int_equal(c[0].rooms.count, 1);
	/* A failed leave does not remove the empty room. */
	assert_ptr_equal(qc_rooms_find(rs, "b"), b);

	/* Leaving is not idempotent: the second leave reports -ENOENT. */
	assert_int_equal(qc_rooms_join(rs, b, &c[0].rooms, &c[0]), 0);
	assert_int_equal(qc_rooms_join(rs, b, &c[1].rooms, &c[1]), 0);
	assert_int_equal(qc_rooms_leave(rs, b, &c[0].rooms), 0);
	assert_int_equal(qc_rooms_leave(rs, b, &c[0].rooms), -ENOENT);
	assert_int_equal(qc_room_size(b), 1);
	assert_int_equal(qc_rooms_memberships(rs), 2);

	qc_rooms_free(rs);
	free(c);
}

static void test_empty_room_removed(void **state)
{
	struct qc_rooms *rs = qc_rooms_new();
	struct fake_conn *c = new_conns(2);
	struct qc_room *r = qc_rooms_create(rs, "tmp");

	(void)state;
	assert_int_equal(qc_rooms_join(rs, r, &c[0].rooms, &c[0]), 0);
	assert_int_equal(qc_rooms_join(rs, r, &c[1].rooms, &c[1]), 0);
	assert_int_equal(qc_rooms_leave(rs, r, &c[0].rooms), 0);
	assert_ptr_equal(qc_rooms_find(rs, "tmp"), r);
	assert_int_equal(qc_rooms_leave(rs, r, &c[1].rooms), 0);
	assert_null(qc_rooms_find(rs, "tmp"));
	assert_int_equal(qc_rooms_count(rs), 0);
	assert_int_equal(qc_rooms_memberships(rs), 0);
	assert_int_equal(c[0].rooms.count, 0);
	assert_null(c[0].rooms.by_room);

	/* Creating it again gives a fresh, empty room. */
	r = qc_rooms_create(rs, "tmp");
	assert_non_null(r);
	assert_int_equal(qc_room_size(r), 0);
	assert_int_equal(qc_rooms_count(rs), 1);
	qc_rooms_free(rs);
	free(c);
}

/* A held room outlives its last leave until the last hold is given back. */
static void test_held_room_survives(void **state)
{
	struct qc_rooms *rs = qc_rooms_new();
	struct fake_conn *c = new_conns(1);
	struct qc_room *r = qc_rooms_create(rs, "ticks");

	(void)state;
	qc_room_hold(r);
	qc_room_hold(r);
	assert_true(qc_room_held(r));
	assert_int_equal(qc_rooms_join(rs, r, &c[0].rooms, &c[0]), 0);
	assert_int_equal(qc_rooms_leave(rs, r, &c[0].rooms), 0);
	assert_ptr_equal(qc_rooms_find(rs, "ticks"), r);
	assert_false(qc_room_unhold(r)); /* still held once */
	assert_true(qc_room_unhold(r));  /* empty, not kept, not held: the caller's to delete */
	assert_false(qc_room_held(r));
	assert_true(qc_room_unhold(r)); /* never below zero */
	qc_rooms_delete(rs, r);
	assert_null(qc_rooms_find(rs, "ticks"));

	/* held while a member is in: the member's leave does not remove it, the unhold says so */
	r = qc_rooms_create(rs, "ticks");
	qc_room_hold(r);
	assert_int_equal(qc_rooms_join(rs, r, &c[0].rooms, &c[0]), 0);
	assert_false(qc_room_unhold(r));
	assert_int_equal(qc_rooms_leave(rs, r, &c[0].rooms), 0);
	assert_null(qc_rooms_find(rs, "ticks"));

	/* a kept room is never the caller's to delete */
	r = qc_rooms_create(rs, "desk");
	qc_room_set_kept(r, true);
	qc_room_hold(r);
	assert_false(qc_room_unhold(r));
	qc_rooms_free(rs);
	free(c);
}

static void test_kept_room_survives(void **state)
{
	struct qc_rooms *rs = qc_rooms_new();
	struct fake_conn *c = new_conns(1);
	struct qc_room *r = qc_rooms_create(rs, "lobby");
	int ext = 42;

	(void)state;
	qc_room_set_kept(r, true);
	qc_room_set_ext(r, &ext);
	assert_true(qc_room_kept(r));
	assert_ptr_equal(qc_room_ext(r), &ext);

	assert_int_equal(qc_rooms_join(rs, r, &c[0].rooms, &c[0]), 0);
	assert_int_equal(qc_rooms_leave(rs, r, &c[0].rooms), 0);
	assert_ptr_equal(qc_rooms_find(rs, "lobby"), r);
	assert_int_equal(qc_room_size(r), 0);
	assert_ptr_equal(qc_room_ext(r), &ext);

	assert_int_equal(qc_rooms_join(rs, r, &c[0].rooms, &c[0]), 0);
	qc_rooms_leave_all(rs, &c[0].rooms);
	assert_ptr_equal(qc_rooms_find(rs, "lobby"), r);

	/* No longer kept: the next emptying leave removes it. */
	qc_room_set_kept(r, false);
	assert_false(qc_room_kept(r));
	assert_int_equal(qc_rooms_join(rs, r, &c[0].rooms, &c[0]), 0);
	assert_int_equal(qc_rooms_leave(rs, r, &c[0].rooms), 0);
	assert_null(qc_rooms_find(rs, "lobby"));
	assert_int_equal(qc_rooms_count(rs), 0);
	qc_rooms_free(rs);
	free(c);
}

static void test_leave_all(void **state)
{
	enum { NROOM = 40 };
	struct qc_rooms *rs = qc_rooms_new();
	struct fake_conn *c = new_conns(2);
	struct qc_room *keep;
	char name[16];
	int j;

	(void)state;
	for (j = 0; j < NROOM; j++) {
		struct qc_room *r;

		snprintf(name, sizeof(name), "r%d", j);
		r = qc_rooms_create(rs, name);
		assert_int_equal(qc_rooms_join(rs, r, &c[0].rooms, &c[0]), 0);
		if (j % 2)
			assert_int_equal(qc_rooms_join(rs, r, &c[1].rooms, &c[1]), 0);
	}
	keep = qc_rooms_find(rs, "r0");
	qc_room_set_kept(keep, true);
	assert_int_equal(qc_rooms_memberships(rs), NROOM + NROOM / 2);

	qc_rooms_leave_all(rs, &c[0].rooms);
	assert_int_equal(c[0].rooms.count, 0);
	assert_null(c[0].rooms.by_room);
	/* The rooms c[1] is in remain, with c[1] alone; the kept one remains empty. */
	assert_int_equal(qc_rooms_count(rs), NROOM / 2 + 1);
	assert_int_equal(qc_rooms_memberships(rs), NROOM / 2);
	for (j = 0; j < NROOM; j++) {
		struct qc_room *r;

		snprintf(name, sizeof(name), "r%d", j);
		r = qc_rooms_find(rs, name);
		if (j % 2) {
			assert_non_null(r);
			assert_int_equal(check_member_list(r), 1);
			assert_ptr_equal(qc_room_members(r)->conn, &c[1]);
		} else if (j == 0) {
			assert_ptr_equal(r, keep);
			assert_int_equal(qc_room_size(r), 0);
		} else {
			assert_null(r);
		}
	}

	qc_rooms_leave_all(rs, &c[1].rooms);
	assert_int_equal(c[1].rooms.count, 0);
	assert_null(c[1].rooms.by_room);
	assert_int_equal(qc_rooms_count(rs), 1);
	assert_int_equal(qc_rooms_memberships(rs), 0);

	/* On an empty set it does nothing. */
	qc_rooms_leave_all(rs, &c[1].rooms);
	assert_int_equal(qc_rooms_count(rs), 1);

	qc_rooms_delete(rs, keep);
	assert_int_equal(qc_rooms_count(rs), 0);
	qc_rooms_free(rs);
	free(c);
}

static void test_delete_with_members(void **state)
{
	enum { NCONN = 5 };
	struct qc_rooms *rs = qc_rooms_new();
	struct fake_conn *c = new_conns(NCONN);
	struct qc_room *doomed = qc_rooms_create(rs, "doomed");
	struct qc_room *other = qc_rooms_create(rs, "other");
	struct qc_room *empty = qc_rooms_create(rs, "empty");
	int i;

	(void)state;
	qc_room_set_kept(doomed, true);
	for (i = 0; i < NCONN; i++) {
		assert_int_equal(qc_rooms_join(rs, doomed, &c[i].rooms, &c[i]), 0);
		if (i % 2)
			assert_int_equal(qc_rooms_join(rs, other, &c[i].rooms, &c[i]), 0);
	}
	assert_int_equal(qc_rooms_memberships(rs), NCONN + NCONN / 2);

	qc_rooms_delete(rs, doomed);
	assert_null(qc_rooms_find(rs, "doomed"));
	assert_int_equal(qc_rooms_count(rs), 2);
	assert_int_equal(qc_rooms_memberships(rs), NCONN / 2);
	for (i = 0; i < NCONN; i++) {
		assert_int_equal(c[i].rooms.count, i % 2 ? 1 : 0);
		assert_int_equal(HASH_COUNT(c[i].rooms.by_room), c[i].rooms.count);
		assert_int_equal(qc_room_set_has(&c[i].rooms, other), i % 2);
	}
	assert_int_equal(check_member_list(other), NCONN / 2);

	/* The remaining memberships still leave cleanly. */
	for (i = 1; i < NCONN; i += 2)
		assert_int_equal(qc_rooms_leave(rs, other, &c[i].rooms), 0);
	assert_null(qc_rooms_find(rs, "other"));

	qc_rooms_delete(rs, empty);
	assert_int_equal(qc_rooms_count(rs), 0);
	assert_int_equal(qc_rooms_memberships(rs), 0);
	qc_rooms_free(rs);
	free(c);
}

static void count_room(struct qc_room *r, void *arg)
{
	uint32_t *seen = arg;

	if (!strcmp(qc_room_name(r), "x"))
		seen[0]++;
	else if (!strcmp(qc_room_name(r), "y"))
		seen[1]++;
	else
		seen[2]++;
}

static void test_foreach(void **state)
{
	struct qc_rooms *rs = qc_rooms_new();
	uint32_t seen[3] = {0, 0, 0};

	(void)state;
	qc_rooms_foreach(rs, count_room, seen);
	assert_int_equal(seen[0] + seen[1] + seen[2], 0);
	qc_rooms_create(rs, "x");
	qc_rooms_create(rs, "y");
	qc_rooms_foreach(rs, count_room, seen);
	assert_int_equal(seen[0], 1);
	assert_int_equal(seen[1], 1);
	assert_int_equal(seen[2], 0);
	qc_rooms_free(rs);
}

static void test_free_with_members(void **state)
{
	enum { NCONN = 20, NROOM = 7 };
	struct qc_rooms *rs = qc_rooms_new();
	struct fake_conn *c = new_conns(NCONN);
	char name[16];
	int i, j;

	(void)state;
	for (j = 0; j < NROOM; j++) {
		struct qc_room *r;

		snprintf(name, sizeof(name), "f%d", j);
		r = qc_rooms_create(rs, name);
		qc_room_set_kept(r, j == 3);
		for (i = 0; i < NCONN; i++)
			assert_int_equal(qc_rooms_join(rs, r, &c[i].rooms, &c[i]), 0);
	}
	qc_rooms_free(rs);
	/* Valgrind checks that nothing leaks; the sets are left empty, not dangling. */
	for (i = 0; i < NCONN; i++) {
		assert_int_equal(c[i].rooms.count, 0);
		assert_null(c[i].rooms.by_room);
	}
	free(c);
}

/* xorshift64*, seeded, so that a failure reproduces. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rng(uint32_t n)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 2685821657736338717ull) >> 32) % n;
}

static void test_stress(void **state)
{
	enum { NCONN = 1000, PER = 50, NROOM = 200 };
	struct qc_rooms *rs = qc_rooms_new();
	struct fake_conn *c = new_conns(NCONN);
	uint32_t *pairs = malloc(sizeof(uint32_t) * NCONN * PER);
	uint32_t size[NROOM];
	char name[16];
	size_t n = 0, k;
	uint32_t i, j;

	(void)state;
	assert_non_null(pairs);
	memset(size, 0, sizeof(size));

	/* Each connection joins PER distinct rooms out of NROOM, picked at random. */
	for (i = 0; i < NCONN; i++) {
		uint32_t joined = 0;

		while (joined < PER) {
			struct qc_room *r;
			int rc;

			j = rng(NROOM);
			snprintf(name, sizeof(name), "s%u", j);
			r = qc_rooms_create(rs, name);
			assert_non_null(r);
			rc = qc_rooms_join(rs, r, &c[i].rooms, &c[i]);
			if (rc == -EEXIST)
				continue;
			assert_int_equal(rc, 0);
			pairs[n++] = i * NROOM + j;
			size[j]++;
			joined++;
		}
		assert_int_equal(c[i].rooms.count, PER);
	}
	assert_int_equal(qc_rooms_memberships(rs), (uint64_t)NCONN * PER);
	for (j = 0; j < NROOM; j++) {
		struct qc_room *r;

		snprintf(name, sizeof(name), "s%u", j);
		r = qc_rooms_find(rs, name);
		if (!size[j]) {
			/* Created only when joined, so never created. */
			assert_null(r);
			continue;
		}
		assert_non_null(r);
		assert_int_equal(check_member_list(r), size[j]);
	}

	/* Fisher-Yates, then leave in that order. */
	for (k = n - 1; k > 0; k--) {
		size_t o = rng((uint32_t)k + 1);
		uint32_t t = pairs[k];

		pairs[k] = pairs[o];
		pairs[o] = t;
	}
	for (k = 0; k < n; k++) {
		struct qc_room *r;

		i = pairs[k] / NROOM;
		j = pairs[k] % NROOM;
		snprintf(name, sizeof(name), "s%u", j);
		r = qc_rooms_find(rs, name);
		assert_non_null(r);
		assert_true(qc_room_set_has(&c[i].rooms, r));
		assert_int_equal(qc_rooms_leave(rs, r, &c[i].rooms), 0);
		size[j]--;
		if (!size[j])
			assert_null(qc_rooms_find(rs, name));
		else
			assert_int_equal(qc_room_size(r), size[j]);
		assert_int_equal(qc_rooms_memberships(rs), n - k - 1);
	}

	assert_int_equal(qc_rooms_count(rs), 0);
	assert_int_equal(qc_rooms_memberships(rs), 0);
	for (i = 0; i < NCONN; i++) {
		assert_int_equal(c[i].rooms.count, 0);
		assert_null(c[i].rooms.by_room);
	}
	free(pairs);
	free(c);
	qc_rooms_free(rs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_new_is_empty),
	    cmocka_unit_test(test_create_finds_existing),
	    cmocka_unit_test(test_name_validation),
	    cmocka_unit_test(test_join_leave_both_directions),
	    cmocka_unit_test(test_eexist_enoent),
	    cmocka_unit_test(test_empty_room_removed),
	    cmocka_unit_test(test_kept_room_survives),
	    cmocka_unit_test(test_leave_all),
	    cmocka_unit_test(test_delete_with_members),
	    cmocka_unit_test(test_held_room_survives),
	    cmocka_unit_test(test_foreach),
	    cmocka_unit_test(test_free_with_members),
	    cmocka_unit_test(test_stress),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
