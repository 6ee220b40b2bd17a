/*
 * test_lag: the lag view's order (lag, id, age; ties), the bounded top-N selection against a
 * full sort of the same entries (limit 1, some, all, more than there are, 0), huge counters
 * (no wrap-around in conflated + dropped), and the query (sort, limit, repeats, unknown names).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>

#include "quotecast/lag.h"

static struct qc_lag_entry ent(uint64_t id, uint64_t queued, uint64_t conflated, uint64_t dropped,
                               int64_t since)
{
	struct qc_lag_entry e = {.id = id,
	                         .queued = queued,
	                         .conflated = conflated,
	                         .dropped = dropped,
	                         .since_ms = since};

	return e;
}

/* Select with @limit from @n entries; the ids in order into @ids; returns how many. */
static uint32_t select_ids(enum qc_lag_sort sort, uint32_t limit, const struct qc_lag_entry *v,
                           size_t n, uint64_t *ids)
{
	struct qc_lag_top t;
	uint32_t k;

	assert_int_equal(qc_lag_top_init(&t, sort, limit), 0);
	for (size_t i = 0; i < n; i++)
		qc_lag_top_offer(&t, &v[i]);
	k = qc_lag_top_sort(&t);
	for (uint32_t i = 0; i < k; i++)
		ids[i] = t.heap[i].id;
	qc_lag_top_free(&t);
	assert_null(t.heap);
	return k;
}

/* Selecting with @limit from @n entries gives exactly the ids @want (@nwant of them), in order. */
static void expect_order(enum qc_lag_sort sort, uint32_t limit, const struct qc_lag_entry *v,
                         size_t n, const uint64_t *want, uint32_t nwant)
{
	uint64_t got[16];

	assert_true(n <= 16);
	assert_int_equal(select_ids(sort, limit, v, n, got), nwant);
	for (uint32_t i = 0; i < nwant; i++)
		assert_true(got[i] == want[i]);
}

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static void test_order_lag(void **state)
{
	/* offered in an order unrelated to the answer */
	const struct qc_lag_entry v[] = {
	    ent(5, 100, 0, 0, 50), ent(1, 0, 0, 0, 10),    ent(9, 100, 3, 0, 90),
	    ent(3, 100, 1, 2, 30), ent(7, 5000, 0, 0, 70), ent(2, 0, 0, 1, 20),
	    ent(8, 100, 2, 1, 80),
	};
	/* 5000 first; the three at 100 with lost 3 by id (3, 8, 9), then 5 (lost 0); 2 (lost 1), 1
	 */
	const uint64_t want[] = {7, 3, 8, 9, 5, 2, 1};

	(void)state;
	expect_order(QC_LAG_SORT_LAG, 100, v, N_OF(v), want, 7);
	/* the first two only */
	expect_order(QC_LAG_SORT_LAG, 2, v, N_OF(v), want, 2);
}

static void test_order_id_age(void **state)
{
	const struct qc_lag_entry v[] = {
	    ent(4, 9, 0, 0, 100), ent(2, 0, 0, 0, 300), ent(3, 0, 0, 0, 100),
	    ent(1, 7, 0, 0, 200), ent(6, 0, 0, 0, -5),
	};
	const uint64_t by_id[] = {1, 2, 3};
	/* oldest first, equal times by id */
	const uint64_t by_age[] = {6, 3, 4, 1, 2};

	(void)state;
	expect_order(QC_LAG_SORT_ID, 3, v, N_OF(v), by_id, 3);
	expect_order(QC_LAG_SORT_AGE, 10, v, N_OF(v), by_age, 5);
}

static enum qc_lag_sort cmp_sort;

static int cmp(const void *a, const void *b)
{
	if (qc_lag_before(cmp_sort, a, b))
		return -1;
	return qc_lag_before(cmp_sort, b, a) ? 1 : 0;
}

/* Many entries with many ties: the top N is the first N of a full sort, for every N. */
static void test_against_full_sort(void **state)
{
	enum { N = 5000 };
	static struct qc_lag_entry v[N], sorted[N];
	static uint64_t got[N + 10];
	const uint32_t limits[] = {1, 2, 7, 100, 1000, N - 1, N, N + 10};
	uint64_t x = 88172645463325252ull;

	(void)state;
	for (int i = 0; i < N; i++) {
		/* xorshift: few distinct values, so ties are common */
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		v[i] = ent((uint64_t)(N - i) * 3, x % 8 * 1000, (x >> 8) % 4, (x >> 16) % 3,
		           (int64_t)((x >> 24) % 50));
	}
	for (int s = QC_LAG_SORT_ID; s <= QC_LAG_SORT_AGE; s++) {
		cmp_sort = (enum qc_lag_sort)s;
		for (int i = 0; i < N; i++)
			sorted[i] = v[i];
		qsort(sorted, N, sizeof(sorted[0]), cmp);
		for (size_t l = 0; l < sizeof(limits) / sizeof(limits[0]); l++) {
			uint32_t k = select_ids((enum qc_lag_sort)s, limits[l], v, N, got);

			assert_int_equal(k, limits[l] < N ? limits[l] : N);
			for (uint32_t i = 0; i < k; i++)
				assert_int_equal(got[i], sorted[i].id);
		}
	}
}

static void test_fewer_and_none(void **state)
{
	const struct qc_lag_entry v[] = {ent(2, 1, 0, 0, 0), ent(1, 2, 0, 0, 0)};
	const uint64_t want[] = {1, 2};
	struct qc_lag_top t;

	(void)state;
	expect_order(QC_LAG_SORT_LAG, 1000, v, N_OF(v), want, 2);
	expect_order(QC_LAG_SORT_LAG, 1000, v, 0, want, 0);
	/* limit 0 keeps nothing and allocates nothing */
	assert_int_equal(qc_lag_top_init(&t, QC_LAG_SORT_LAG, 0), 0);
	assert_null(t.heap);
	qc_lag_top_offer(&t, &v[0]);
	assert_int_equal(qc_lag_top_sort(&t), 0);
	qc_lag_top_free(&t);
}

/* Counters at the top of their range: no wrap-around makes a huge loss look small. */
static void test_huge(void **state)
{
	const struct qc_lag_entry v[] = {
	    ent(1, UINT64_MAX, 0, 0, INT64_MAX),
	    ent(2, UINT64_MAX, UINT64_MAX, UINT64_MAX, INT64_MIN), /* sum saturates */
	    ent(3, UINT64_MAX, UINT64_MAX - 1, 0, 0),
	    ent(4, UINT64_MAX, 1, UINT64_MAX, 0), /* wraps to 0 if added naively */
	    ent(5, UINT64_MAX - 1, UINT64_MAX, UINT64_MAX, 0),
	    ent(UINT64_MAX, 0, 0, 0, INT64_MIN),
	};
	/* 2 and 4 both saturate: by id; then 3, then 1 (lost 0); then the smaller queues */
	const uint64_t by_lag[] = {2, 4, 3, 1, 5, UINT64_MAX};
	const uint64_t by_age[] = {2, UINT64_MAX};
	const uint64_t by_id[] = {1};

	(void)state;
	expect_order(QC_LAG_SORT_LAG, 10, v, N_OF(v), by_lag, 6);
	expect_order(QC_LAG_SORT_AGE, 2, v, N_OF(v), by_age, 2);
	expect_order(QC_LAG_SORT_ID, 1, v, N_OF(v), by_id, 1);
}

static void test_query(void **state)
{
	struct qc_lag_query q;
	const char *emsg = NULL;
	const char *bad_limits[] = {"limit=0",
	                            "limit=1001",
	                            "limit=abc",
	                            "limit=",
	                            "limit=-1",
	                            "limit=+5",
	                            "limit=1e3",
	                            "limit= 5",
	                            "limit=5 ",
	                            "limit=0x10",
	                            "limit=99999999999999999999",
	                            "limit=000001"};
	uint32_t n;

	(void)state;
	qc_lag_query_init(&q);
	assert_int_equal(q.sort, QC_LAG_SORT_ID);
	assert_int_equal(q.limit, QC_LAG_LIMIT_DEFAULT);
	assert_int_equal(qc_lag_query_arg(&q, "sort=lag", &emsg), 0);
	assert_int_equal(q.sort, QC_LAG_SORT_LAG);
	assert_int_equal(qc_lag_query_arg(&q, "limit=1000", &emsg), 0);
	assert_int_equal(q.limit, 1000);
	/* each at most once */
	assert_int_equal(qc_lag_query_arg(&q, "sort=lag", &emsg), -EINVAL);
	assert_string_equal(emsg, "sort: given more than once");
	assert_int_equal(qc_lag_query_arg(&q, "limit=5", &emsg), -EINVAL);
	assert_string_equal(emsg, "limit: given more than once");

	qc_lag_query_init(&q);
	assert_int_equal(qc_lag_query_arg(&q, "sort=age", &emsg), 0);
	assert_int_equal(q.sort, QC_LAG_SORT_AGE);
	qc_lag_query_init(&q);
	assert_int_equal(qc_lag_query_arg(&q, "sort=id", &emsg), 0);
	assert_int_equal(q.sort, QC_LAG_SORT_ID);
	assert_int_equal(qc_lag_query_arg(&q, "limit=1", &emsg), 0);
	assert_int_equal(q.limit, 1);
	for (int i = 0; i < 4; i++) {
		const char *bad[] = {"sort=LAG", "sort=", "sort=lagx", "sort=queued"};

		qc_lag_query_init(&q);
		emsg = NULL;
		assert_int_equal(qc_lag_query_arg(&q, bad[i], &emsg), -EINVAL);
		assert_string_equal(emsg, "sort: must be lag, id or age");
	}
	for (size_t i = 0; i < sizeof(bad_limits) / sizeof(bad_limits[0]); i++) {
		qc_lag_query_init(&q);
		emsg = NULL;
		assert_int_equal(qc_lag_query_arg(&q, bad_limits[i], &emsg), -EINVAL);
		assert_string_equal(emsg, "limit: must be an integer from 1 to 1000");
		assert_int_equal(q.limit, QC_LAG_LIMIT_DEFAULT);
	}
	qc_lag_query_init(&q);
	assert_int_equal(qc_lag_query_arg(&q, "token=abc", &emsg), -EINVAL);
	assert_string_equal(emsg, "unknown query parameter: only sort and limit are read");
	assert_int_equal(qc_lag_query_arg(&q, "sorting=lag", &emsg), -EINVAL);

	assert_int_equal(qc_lag_check_limit(1, &n, &emsg), 0);
	assert_int_equal(n, 1);
	assert_int_equal(qc_lag_check_limit(1000, &n, &emsg), 0);
	assert_int_equal(n, 1000);
	assert_int_equal(qc_lag_check_limit(0, &n, &emsg), -EINVAL);
	assert_int_equal(qc_lag_check_limit(1001, &n, &emsg), -EINVAL);
	assert_int_equal(qc_lag_check_limit(-1, &n, &emsg), -EINVAL);
	assert_int_equal(qc_lag_check_limit(4294967297LL, &n, &emsg), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_order_lag),
	    cmocka_unit_test(test_order_id_age),
	    cmocka_unit_test(test_against_full_sort),
	    cmocka_unit_test(test_fewer_and_none),
	    cmocka_unit_test(test_huge),
	    cmocka_unit_test(test_query),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
