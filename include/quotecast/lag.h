/*
 * lag: the order of the lag view (GET /api/connections, the admin action get_connections) and
 * the selection of its first N entries without sorting them all.
 *
 * A struct qc_lag_top keeps the best @limit entries offered so far in a bounded binary heap
 * whose root is the worst one kept: an entry that does not beat the root costs one comparison,
 * one that does costs O(log N), so choosing N of C entries is O(C log N) time and O(N) memory.
 * The query of the view (sort, limit) is read here too, so the HTTP endpoint and the action
 * refuse the same things with the same words.
 */
#ifndef QC_LAG_H
#define QC_LAG_H

#include <stdbool.h>
#include <stdint.h>

enum qc_lag_sort {
	QC_LAG_SORT_ID = 0, /* connection id ascending (the default) */
	QC_LAG_SORT_LAG,    /* queued bytes descending, then conflated + dropped descending, id */
	QC_LAG_SORT_AGE,    /* oldest first (connected_at ascending), then id */
};

#define QC_LAG_LIMIT_DEFAULT 100
#define QC_LAG_LIMIT_MAX     1000

/* What the order reads of one connection; @item is the caller's, carried along. */
struct qc_lag_entry {
	uint64_t id; /* unique: the last tie-break, so the order is total */
	uint64_t queued;
	uint64_t conflated;
	uint64_t dropped;
	int64_t since_ms;
	const void *item;
};

struct qc_lag_top {
	struct qc_lag_entry *heap; /* @count entries; the root is the worst kept */
	uint32_t count;
	uint32_t limit;
	enum qc_lag_sort sort;
};

/** qc_lag_before() - whether @a comes before @b in @sort's order. */
bool qc_lag_before(enum qc_lag_sort sort, const struct qc_lag_entry *a,
                   const struct qc_lag_entry *b);

/**
 * qc_lag_top_init() - an empty selection of at most @limit entries (0 keeps none). Returns 0 or
 * -ENOMEM.
 */
int qc_lag_top_init(struct qc_lag_top *t, enum qc_lag_sort sort, uint32_t limit);

/** qc_lag_top_offer() - consider @e (copied): kept while it is among the best @limit. */
void qc_lag_top_offer(struct qc_lag_top *t, const struct qc_lag_entry *e);

/**
 * qc_lag_top_sort() - put the kept entries in order, best first, in t->heap[0..count) and
 * return count. Nothing may be offered afterwards.
 */
uint32_t qc_lag_top_sort(struct qc_lag_top *t);

/** qc_lag_top_free() - free the entries; @t is empty again. */
void qc_lag_top_free(struct qc_lag_top *t);

/* The view's query: sort and limit, each at most once. */
struct qc_lag_query {
	enum qc_lag_sort sort;
	uint32_t limit;
	bool has_sort;
	bool has_limit;
};

/** qc_lag_query_init() - the defaults: sort by id, limit QC_LAG_LIMIT_DEFAULT. */
void qc_lag_query_init(struct qc_lag_query *q);

/**
 * qc_lag_parse_sort() - "lag", "id" or "age" into *@out. Returns 0, or -EINVAL with a static
 * message naming the parameter in *@emsg.
 */
int qc_lag_parse_sort(const char *s, enum qc_lag_sort *out, const char **emsg);

/**
 * qc_lag_check_limit() - @n as a limit (1..QC_LAG_LIMIT_MAX) into *@out. Returns 0, or -EINVAL
 * with a static message naming the parameter in *@emsg.
 */
int qc_lag_check_limit(long long n, uint32_t *out, const char **emsg);

/**
 * qc_lag_query_arg() - one query argument "name=value" of the URL (already decoded): sort or
 * limit (decimal digits only), each once. Returns 0, or -EINVAL with a static message naming
 * the parameter in *@emsg (an unknown name, a repeated one, a bad value).
 */
int qc_lag_query_arg(struct qc_lag_query *q, const char *arg, const char **emsg);

#endif
