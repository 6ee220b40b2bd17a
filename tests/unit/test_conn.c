/*
 * Unit tests for the connection table (src/conn.c): ids, lookup by id and by user, user
 * records appearing and disappearing with their connections, and removal leaving no trace.
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

#include "quotecast/conn.h"

static void set_user(struct qc_conn *c, const char *user_id)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->user_id, sizeof(c->user_id), "%s", user_id);
}

/* Checks the user's list links; returns whether @c is in it. */
static bool user_has(const struct qc_user *u, const struct qc_conn *c)
{
	const struct qc_conn *it, *prev = NULL;
	uint32_t n = 0;
	bool found = false;

	for (it = u->conns; it; it = it->user_next) {
		/* utlist: every prev links back, and the head's prev is the tail */
		if (prev)
			assert_ptr_equal(it->user_prev, prev);
		assert_ptr_equal(it->user, u);
		assert_string_equal(it->user_id, u->id);
		assert_int_equal(it->in_table, 1);
		if (it == c)
			found = true;
		prev = it;
		n++;
	}
	assert_int_equal(n, u->nconns);
	if (u->conns)
		assert_ptr_equal(u->conns->user_prev, prev);
	return found;
}

static void test_init(void **state)
{
	struct qc_conns t;

	(void)state;
	memset(&t, 0xa5, sizeof(t));
	qc_conns_init(&t);
	assert_null(t.by_id);
	assert_null(t.users);
	assert_int_equal(t.count, 0);
	assert_int_equal(t.nusers, 0);
	assert_int_equal(t.next_id, 1);
	assert_null(qc_conns_find(&t, 1));
	assert_null(qc_conns_user(&t, "u"));
	qc_conns_free(&t);
}

static void test_ids_unique_increasing(void **state)
{
	enum { N = 100 };
	struct qc_conns t;
	struct qc_conn *c = calloc(N, sizeof(*c));
	char uid[16];
	int i;

	(void)state;
	assert_non_null(c);
	qc_conns_init(&t);
	for (i = 0; i < N; i++) {
		snprintf(uid, sizeof(uid), "u%d", i % 7);
		set_user(&c[i], uid);
		assert_int_equal(qc_conns_add(&t, &c[i]), 0);
		assert_int_equal(c[i].in_table, 1);
		if (i)
			assert_true(c[i].id > c[i - 1].id);
		else
			assert_int_equal(c[i].id, 1);
	}
	assert_int_equal(t.count, N);
	assert_int_equal(t.nusers, 7);
	for (i = 0; i < N; i++)
		assert_ptr_equal(qc_conns_find(&t, c[i].id), &c[i]);
	assert_null(qc_conns_find(&t, 0));
	assert_null(qc_conns_find(&t, N + 1));

	/* Ids are never reused, not even the id of a removed connection. */
	qc_conns_remove(&t, &c[N - 1]);
	assert_null(qc_conns_find(&t, N));
	assert_int_equal(qc_conns_add(&t, &c[N - 1]), 0);
	assert_int_equal(c[N - 1].id, N + 1);
	assert_null(qc_conns_find(&t, N));
	assert_ptr_equal(qc_conns_find(&t, N + 1), &c[N - 1]);

	qc_conns_free(&t);
	free(c);
}

static void test_user_record(void **state)
{
	struct qc_conns t;
	struct qc_conn a[3], b[2];
	struct qc_user *ua, *ub;
	int i;

	(void)state;
	qc_conns_init(&t);
	for (i = 0; i < 3; i++) {
		set_user(&a[i], "alice");
		assert_int_equal(qc_conns_add(&t, &a[i]), 0);
	}
	for (i = 0; i < 2; i++) {
		set_user(&b[i], "bob");
		assert_int_equal(qc_conns_add(&t, &b[i]), 0);
	}
	assert_int_equal(t.count, 5);
	assert_int_equal(t.nusers, 2);

	ua = qc_conns_user(&t, "alice");
	ub = qc_conns_user(&t, "bob");
	assert_non_null(ua);
	assert_non_null(ub);
	assert_ptr_not_equal(ua, ub);
	assert_string_equal(ua->id, "alice");
	assert_int_equal(ua->nconns, 3);
	assert_int_equal(ub->nconns, 2);
	for (i = 0; i < 3; i++) {
		assert_ptr_equal(a[i].user, ua);
		assert_true(user_has(ua, &a[i]));
		assert_false(user_has(ub, &a[i]));
	}
	for (i = 0; i < 2; i++) {
		assert_ptr_equal(b[i].user, ub);
		assert_true(user_has(ub, &b[i]));
	}
	assert_null(qc_conns_user(&t, "alic"));
	assert_null(qc_conns_user(&t, "alicea"));
	assert_null(qc_conns_user(&t, "carol"));

	/* List order is a[2], a[1], a[0]: remove the middle, then the tail, then the head. */
	qc_conns_remove(&t, &a[1]);
	assert_int_equal(ua->nconns, 2);
	assert_false(user_has(ua, &a[1]));
	assert_true(user_has(ua, &a[0]));
	assert_true(user_has(ua, &a[2]));
	assert_int_equal(a[1].in_table, 0);
	assert_null(a[1].user);
	assert_null(qc_conns_find(&t, a[1].id));

	qc_conns_remove(&t, &a[0]);
	assert_int_equal(ua->nconns, 1);
	assert_ptr_equal(ua->conns, &a[2]);
	assert_true(user_has(ua, &a[2]));
	assert_int_equal(t.nusers, 2);

	qc_conns_remove(&t, &a[2]);
	assert_null(qc_conns_user(&t, "alice"));
	assert_int_equal(t.nusers, 1);
	assert_int_equal(t.count, 2);
	assert_ptr_equal(qc_conns_user(&t, "bob"), ub);

	/* Alice comes back: a fresh record. */
	assert_int_equal(qc_conns_add(&t, &a[0]), 0);
	ua = qc_conns_user(&t, "alice");
	assert_non_null(ua);
	assert_int_equal(ua->nconns, 1);
	assert_ptr_equal(ua->conns, &a[0]);
	assert_int_equal(t.nusers, 2);

	qc_conns_remove(&t, &b[0]);
	qc_conns_remove(&t, &b[1]);
	qc_conns_remove(&t, &a[0]);
	assert_null(qc_conns_user(&t, "bob"));
	assert_null(qc_conns_user(&t, "alice"));
	assert_int_equal(t.count, 0);
	assert_int_equal(t.nusers, 0);
	assert_null(t.by_id);
	assert_null(t.users);
	qc_conns_free(&t);
}

static void test_remove_twice(void **state)
{
	struct qc_conns t;
	struct qc_conn a, b, never;
	uint64_t id;

	(void)state;
	qc_conns_init(&t);
	set_user(&a, "u");
	set_user(&b, "u");
	assert_int_equal(qc_conns_add(&t, &a), 0);
	assert_int_equal(qc_conns_add(&t, &b), 0);
	id = a.id;

	qc_conns_remove(&t, &a);
	qc_conns_remove(&t, &a);
	assert_int_equal(a.in_table, 0);
	assert_int_equal(t.count, 1);
	assert_int_equal(t.nusers, 1);
	assert_int_equal(qc_conns_user(&t, "u")->nconns, 1);
	assert_null(qc_conns_find(&t, id));
	assert_ptr_equal(qc_conns_find(&t, b.id), &b);

	/* Never added: a no-op too. */
	set_user(&never, "u");
	qc_conns_remove(&t, &never);
	assert_int_equal(t.count, 1);
	assert_int_equal(qc_conns_user(&t, "u")->nconns, 1);

	qc_conns_remove(&t, &b);
	qc_conns_remove(&t, &b);
	assert_int_equal(t.count, 0);
	assert_int_equal(t.nusers, 0);
	qc_conns_free(&t);
}

static void test_user_id_edges(void **state)
{
	struct qc_conns t;
	struct qc_conn anon, longest, other;
	char id[QC_USER_ID_MAX + 1];

	(void)state;
	qc_conns_init(&t);
	set_user(&anon, "");
	assert_int_equal(qc_conns_add(&t, &anon), 0);
	assert_non_null(qc_conns_user(&t, ""));
	assert_int_equal(qc_conns_user(&t, "")->nconns, 1);

	memset(id, 'z', QC_USER_ID_MAX);
	id[QC_USER_ID_MAX] = '\0';
	set_user(&longest, id);
	assert_int_equal(strlen(longest.user_id), QC_USER_ID_MAX);
	assert_int_equal(qc_conns_add(&t, &longest), 0);
	assert_ptr_equal(qc_conns_user(&t, id), longest.user);
	assert_string_equal(longest.user->id, id);

	id[QC_USER_ID_MAX - 1] = '\0';
	set_user(&other, id);
	assert_int_equal(qc_conns_add(&t, &other), 0);
	assert_ptr_not_equal(other.user, longest.user);
	assert_int_equal(t.nusers, 3);

	qc_conns_free(&t);
	assert_int_equal(anon.in_table, 0);
	assert_int_equal(longest.in_table, 0);
	assert_int_equal(other.in_table, 0);
}

static void test_free_with_entries(void **state)
{
	enum { N = 50 };
	struct qc_conns t;
	struct qc_conn *c = calloc(N, sizeof(*c));
	char uid[16];
	int i;

	(void)state;
	assert_non_null(c);
	qc_conns_init(&t);
	for (i = 0; i < N; i++) {
		snprintf(uid, sizeof(uid), "user-%d", i % 9);
		set_user(&c[i], uid);
		assert_int_equal(qc_conns_add(&t, &c[i]), 0);
	}
	assert_int_equal(t.nusers, 9);

	qc_conns_free(&t);
	assert_int_equal(t.count, 0);
	assert_int_equal(t.nusers, 0);
	assert_null(t.by_id);
	assert_null(t.users);
	for (i = 0; i < N; i++) {
		assert_int_equal(c[i].in_table, 0);
		assert_null(c[i].user);
	}
	/* Removing after free is a no-op; the table can be used again. */
	qc_conns_remove(&t, &c[0]);
	assert_int_equal(qc_conns_add(&t, &c[0]), 0);
	assert_int_equal(t.count, 1);
	qc_conns_free(&t);
	free(c);
}

/* xorshift64*, seeded, so that a failure reproduces. */
static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint32_t rng(uint32_t n)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 2685821657736338717ull) >> 32) % n;
}

static void test_random_removal(void **state)
{
	enum { N = 1000, NUSER = 37 };
	struct qc_conns t;
	struct qc_conn *c = calloc(N, sizeof(*c));
	uint32_t *order = malloc(sizeof(uint32_t) * N);
	uint32_t per_user[NUSER];
	char uid[16];
	uint32_t i, k, users;

	(void)state;
	assert_non_null(c);
	assert_non_null(order);
	memset(per_user, 0, sizeof(per_user));
	qc_conns_init(&t);
	for (i = 0; i < N; i++) {
		uint32_t u = rng(NUSER);

		snprintf(uid, sizeof(uid), "u%u", u);
		set_user(&c[i], uid);
		assert_int_equal(qc_conns_add(&t, &c[i]), 0);
		per_user[u]++;
		order[i] = i;
	}
	for (users = 0, k = 0; k < NUSER; k++)
		users += per_user[k] > 0;
	assert_int_equal(t.nusers, users);

	for (k = N - 1; k > 0; k--) {
		uint32_t o = rng(k + 1), tmp = order[k];

		order[k] = order[o];
		order[o] = tmp;
	}
	for (k = 0; k < N; k++) {
		struct qc_conn *x = &c[order[k]];
		uint32_t u = (uint32_t)atoi(x->user_id + 1);
		uint64_t id = x->id;

		assert_ptr_equal(qc_conns_find(&t, id), x);
		qc_conns_remove(&t, x);
		assert_null(qc_conns_find(&t, id));
		per_user[u]--;
		if (per_user[u]) {
			struct qc_user *ur = qc_conns_user(&t, x->user_id);

			assert_non_null(ur);
			assert_int_equal(ur->nconns, per_user[u]);
			assert_false(user_has(ur, x));
		} else {
			assert_null(qc_conns_user(&t, x->user_id));
			users--;
		}
		assert_int_equal(t.count, N - k - 1);
		assert_int_equal(t.nusers, users);
	}
	assert_null(t.by_id);
	assert_null(t.users);
	qc_conns_free(&t);
	free(order);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_init),           cmocka_unit_test(test_ids_unique_increasing),
	    cmocka_unit_test(test_user_record),    cmocka_unit_test(test_remove_twice),
	    cmocka_unit_test(test_user_id_edges),  cmocka_unit_test(test_free_with_entries),
	    cmocka_unit_test(test_random_removal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
