/*
 * tally: counts by string key in a uthash table of entries that carry their key inline (one
 * allocation each). The connection bounds per user and per source address are counted here at
 * the upgrade; each connection keeps its entries and gives them back when it closes.
 */
#include "quotecast/tally.h"

#include <stdlib.h>
#include <string.h>

void qc_tally_init(struct qc_tally *t)
{
	t->by_key = NULL;
	t->nkeys = 0;
}

uint32_t qc_tally_count(const struct qc_tally *t, const char *key)
{
	struct qc_tally_entry *e;

	HASH_FIND(hh, t->by_key, key, strlen(key), e);
	return e ? e->count : 0;
}

struct qc_tally_entry *qc_tally_take(struct qc_tally *t, const char *key)
{
	size_t len = strlen(key);
	struct qc_tally_entry *e;

	HASH_FIND(hh, t->by_key, key, len, e);
	if (!e) {
		e = calloc(1, sizeof(*e) + len + 1);
		if (!e)
			return NULL;
		memcpy(e->key, key, len + 1);
		HASH_ADD_KEYPTR(hh, t->by_key, e->key, len, e);
		t->nkeys++;
	}
	e->count++;
	return e;
}

void qc_tally_put(struct qc_tally *t, struct qc_tally_entry **e)
{
	struct qc_tally_entry *x = *e;

	if (!x)
		return;
	*e = NULL;
	if (--x->count)
		return;
	HASH_DEL(t->by_key, x);
	t->nkeys--;
	free(x);
}

void qc_tally_free(struct qc_tally *t)
{
	struct qc_tally_entry *e, *tmp;

	HASH_ITER (hh, t->by_key, e, tmp) {
		HASH_DEL(t->by_key, e);
		free(e);
	}
	t->nkeys = 0;
}
