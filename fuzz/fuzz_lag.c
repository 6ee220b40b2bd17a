/*
 * fuzz_lag: the lag view's query (qc_lag_query_arg(): the arguments of GET /api/connections,
 * from the URL) and its top-N selection (qc_lag_top_*), against plain reference code: an
 * argument is taken only when it is sort=lag|id|age or limit= 1-5 decimal digits worth 1..1000,
 * each once, and a refusal's message names the parameter; the selection keeps exactly the first
 * min(limit, n) entries of a full sort of the same entries, in order.
 *
 * Input: query arguments separated by '&' up to the first newline, then the entries, 9 bytes
 * each (sort and limit from the first two bytes after the newline; small values, so ties are
 * common).
 */
#include <errno.h>
#include <stdbool.h>

#include "fuzz.h"
#include "quotecast/lag.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init();
	return 0;
}

static bool starts(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

/* What the reference says of limit's value: 1..1000 in 1-5 digits, or -1. */
static long ref_limit(const char *v)
{
	size_t n = strlen(v);
	long x = 0;

	if (!n || n > 5)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		x = x * 10 + (v[i] - '0');
	}
	return x >= 1 && x <= 1000 ? x : -1;
}

static void query(char *line)
{
	struct qc_lag_query q;
	bool seen_sort = false, seen_limit = false;
	char *save = NULL;

	qc_lag_query_init(&q);
	for (char *arg = strtok_r(line, "&", &save); arg; arg = strtok_r(NULL, "&", &save)) {
		struct qc_lag_query before = q;
		const char *emsg = NULL;
		int ret = qc_lag_query_arg(&q, arg, &emsg);

		if (starts(arg, "sort=")) {
			const char *v = arg + 5;
			bool ok = !seen_sort &&
			          (!strcmp(v, "lag") || !strcmp(v, "id") || !strcmp(v, "age"));

			CHECK(ok == !ret);
			if (ok)
				CHECK(q.sort == (!strcmp(v, "lag")   ? QC_LAG_SORT_LAG
				                 : !strcmp(v, "age") ? QC_LAG_SORT_AGE
				                                     : QC_LAG_SORT_ID));
			else
				CHECK(emsg && starts(emsg, "sort: "));
			seen_sort = true;
		} else if (starts(arg, "limit=")) {
			long want = seen_limit ? -1 : ref_limit(arg + 6);

			CHECK((want > 0) == !ret);
			if (want > 0)
				CHECK(q.limit == (uint32_t)want);
			else
				CHECK(emsg && starts(emsg, "limit: ") && q.limit == before.limit);
			seen_limit = true;
		} else {
			CHECK(ret == -EINVAL && emsg && starts(emsg, "unknown query parameter"));
			CHECK(q.sort == before.sort && q.limit == before.limit);
		}
		CHECK(q.limit >= 1 && q.limit <= QC_LAG_LIMIT_MAX);
	}
}

static enum qc_lag_sort cmp_sort;

static int cmp(const void *a, const void *b)
{
	if (qc_lag_before(cmp_sort, a, b))
		return -1;
	return qc_lag_before(cmp_sort, b, a) ? 1 : 0;
}

static void selection(const uint8_t *p, size_t size)
{
	enum qc_lag_sort sort;
	struct qc_lag_entry *all;
	struct qc_lag_top t;
	uint32_t limit, k, n;

	if (size < 2)
		return;
	sort = (enum qc_lag_sort)(p[0] % 3);
	limit = p[1];
	p += 2;
	size -= 2;
	n = (uint32_t)(size / 9);
	all = calloc(n + 1, sizeof(*all));
	CHECK(all);
	for (uint32_t i = 0; i < n; i++, p += 9) {
		/* ids unique (the order is total), the rest small or at the edges of its range */
		all[i].id = (uint64_t)p[0] << 32 | i;
		all[i].queued = p[1] & 0x80 ? UINT64_MAX - (p[1] & 3) : p[1] & 7;
		all[i].conflated = p[2] & 0x80 ? UINT64_MAX - (p[2] & 3) : p[2] & 3;
		all[i].dropped = p[3] & 0x80 ? UINT64_MAX - (p[3] & 3) : p[3] & 3;
		all[i].since_ms = p[4] & 0x80 ? (p[4] & 1 ? INT64_MAX : INT64_MIN) : (int8_t)p[5];
		all[i].item = &all[i];
	}
	CHECK(!qc_lag_top_init(&t, sort, limit));
	for (uint32_t i = 0; i < n; i++)
		qc_lag_top_offer(&t, &all[i]);
	k = qc_lag_top_sort(&t);
	CHECK(k == (limit < n ? limit : n));
	cmp_sort = sort;
	qsort(all, n, sizeof(*all), cmp);
	for (uint32_t i = 0; i < k; i++)
		CHECK(t.heap[i].id == all[i].id);
	qc_lag_top_free(&t);
	free(all);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t qlen = nl ? (size_t)(nl - data) : size;
	char *line = fuzz_cstr(data, qlen);

	query(line);
	free(line);
	if (nl)
		selection(nl + 1, size - qlen - 1);
	return 0;
}
