/*
 * lag: the lag view's order and its top-N selection (a bounded binary heap, the worst entry
 * kept at the root), and the reading of its query. Pure: no hub, no lws.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "quotecast/lag.h"

/* conflated + dropped, saturating: huge counters must not wrap into small ones */
static uint64_t lost(const struct qc_lag_entry *e)
{
	return e->conflated > UINT64_MAX - e->dropped ? UINT64_MAX : e->conflated + e->dropped;
}

bool qc_lag_before(enum qc_lag_sort sort, const struct qc_lag_entry *a,
                   const struct qc_lag_entry *b)
{
	switch (sort) {
	case QC_LAG_SORT_LAG:
		if (a->queued != b->queued)
			return a->queued > b->queued;
		if (lost(a) != lost(b))
			return lost(a) > lost(b);
		break;
	case QC_LAG_SORT_AGE:
		if (a->since_ms != b->since_ms)
			return a->since_ms < b->since_ms;
		break;
	case QC_LAG_SORT_ID:
		break;
	}
	return a->id < b->id;
}

int qc_lag_top_init(struct qc_lag_top *t, enum qc_lag_sort sort, uint32_t limit)
{
	memset(t, 0, sizeof(*t));
	t->sort = sort;
	t->limit = limit;
	if (!limit)
		return 0;
	t->heap = malloc((size_t)limit * sizeof(*t->heap));
	return t->heap ? 0 : -ENOMEM;
}

static void swap(struct qc_lag_entry *a, struct qc_lag_entry *b)
{
	struct qc_lag_entry tmp = *a;

	*a = *b;
	*b = tmp;
}

/* Restore the heap below @i within the first @n entries: no child is worse than its parent. */
static void sift_down(struct qc_lag_top *t, uint32_t i, uint32_t n)
{
	struct qc_lag_entry *hp = t->heap;

	for (;;) {
		uint32_t l = 2 * i + 1, worst = i;

		if (l < n && qc_lag_before(t->sort, &hp[worst], &hp[l]))
			worst = l;
		if (l + 1 < n && qc_lag_before(t->sort, &hp[worst], &hp[l + 1]))
			worst = l + 1;
		if (worst == i)
			return;
		swap(&hp[i], &hp[worst]);
		i = worst;
	}
}

void qc_lag_top_offer(struct qc_lag_top *t, const struct qc_lag_entry *e)
{
	struct qc_lag_entry *hp = t->heap;
	uint32_t i;

	if (t->count < t->limit) {
		i = t->count++;
		hp[i] = *e;
		while (i && qc_lag_before(t->sort, &hp[(i - 1) / 2], &hp[i])) {
			swap(&hp[(i - 1) / 2], &hp[i]);
			i = (i - 1) / 2;
		}
		return;
	}
	if (!t->limit || !qc_lag_before(t->sort, e, &hp[0]))
		return;
	hp[0] = *e;
	sift_down(t, 0, t->count);
}

uint32_t qc_lag_top_sort(struct qc_lag_top *t)
{
	/* heapsort: the worst goes to the end, then the worst of the rest before it ... */
	for (uint32_t n = t->count; n > 1; n--) {
		swap(&t->heap[0], &t->heap[n - 1]);
		sift_down(t, 0, n - 1);
	}
	return t->count;
}

void qc_lag_top_free(struct qc_lag_top *t)
{
	free(t->heap);
	memset(t, 0, sizeof(*t));
}

void qc_lag_query_init(struct qc_lag_query *q)
{
	memset(q, 0, sizeof(*q));
	q->sort = QC_LAG_SORT_ID;
	q->limit = QC_LAG_LIMIT_DEFAULT;
}

int qc_lag_parse_sort(const char *s, enum qc_lag_sort *out, const char **emsg)
{
	if (!strcmp(s, "id"))
		*out = QC_LAG_SORT_ID;
	else if (!strcmp(s, "lag"))
		*out = QC_LAG_SORT_LAG;
	else if (!strcmp(s, "age"))
		*out = QC_LAG_SORT_AGE;
	else {
		*emsg = "sort: must be lag, id or age";
		return -EINVAL;
	}
	return 0;
}

int qc_lag_check_limit(long long n, uint32_t *out, const char **emsg)
{
	if (n < 1 || n > QC_LAG_LIMIT_MAX) {
		*emsg = "limit: must be an integer from 1 to 1000";
		return -EINVAL;
	}
	*out = (uint32_t)n;
	return 0;
}

static int parse_limit(const char *s, uint32_t *out, const char **emsg)
{
	long long n = 0;
	size_t i;

	/* digits only, and no more than the bound has: no sign, space, exponent or overflow */
	for (i = 0; s[i] >= '0' && s[i] <= '9' && i < 5; i++)
		n = n * 10 + (s[i] - '0');
	if (!i || s[i])
		n = 0;
	return qc_lag_check_limit(n, out, emsg);
}

int qc_lag_query_arg(struct qc_lag_query *q, const char *arg, const char **emsg)
{
	if (!strncmp(arg, "sort=", 5)) {
		if (q->has_sort) {
			*emsg = "sort: given more than once";
			return -EINVAL;
		}
		q->has_sort = true;
		return qc_lag_parse_sort(arg + 5, &q->sort, emsg);
	}
	if (!strncmp(arg, "limit=", 6)) {
		if (q->has_limit) {
			*emsg = "limit: given more than once";
			return -EINVAL;
		}
		q->has_limit = true;
		return parse_limit(arg + 6, &q->limit, emsg);
	}
	*emsg = "unknown query parameter: only sort and limit are read";
	return -EINVAL;
}
