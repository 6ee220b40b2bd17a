/*
 * conn: the connection table.
 *
 * Owns the two indexes over connections (a uthash by id, and the user records: a uthash by
 * user id, each with a doubly linked list of that user's connections) and the user records
 * themselves. The connections are the caller's (lws per-session data) and are never
 * allocated or freed here. A user record exists exactly while the user has a connection in
 * the table.
 *
 * uthash is built here with HASH_NONFATAL_OOM so that a failed table allocation is reported
 * as -ENOMEM instead of exiting the process.
 */
#define HASH_NONFATAL_OOM 1

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <utlist.h>

#include "quotecast/conn.h"

void qc_conns_init(struct qc_conns *t)
{
	memset(t, 0, sizeof(*t));
	t->next_id = 1;
}

static struct qc_user *find_user(const struct qc_conns *t, const char *user_id, size_t len)
{
	struct qc_user *u;

	HASH_FIND(hh, t->users, user_id, len, u);
	return u;
}

static struct qc_user *new_user(struct qc_conns *t, const char *user_id, size_t len)
{
	struct qc_user *u;

	u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	memcpy(u->id, user_id, len);
	HASH_ADD_KEYPTR(hh, t->users, u->id, len, u);
	if (!u->hh.tbl)
		goto fail_free;
	t->nusers++;
	return u;

fail_free:
	free(u);
	return NULL;
}

static void free_user(struct qc_conns *t, struct qc_user *u)
{
	HASH_DELETE(hh, t->users, u);
	t->nusers--;
	free(u);
}

int qc_conns_add(struct qc_conns *t, struct qc_conn *c)
{
	/* Bounded so that an unterminated user_id cannot run past the array. */
	size_t len = strnlen(c->user_id, QC_USER_ID_MAX);
	struct qc_user *u;

	u = find_user(t, c->user_id, len);
	if (!u) {
		u = new_user(t, c->user_id, len);
		if (!u)
			return -ENOMEM;
	}

	c->id = t->next_id;
	HASH_ADD(hh, t->by_id, id, sizeof(uint64_t), c);
	if (!c->hh.tbl)
		goto fail_user;
	t->next_id++;
	t->count++;

	c->user = u;
	DL_PREPEND2(u->conns, c, user_prev, user_next);
	u->nconns++;

	c->in_table = 1;
	return 0;

fail_user:
	if (!u->nconns)
		free_user(t, u);
	c->id = 0;
	return -ENOMEM;
}

void qc_conns_remove(struct qc_conns *t, struct qc_conn *c)
{
	struct qc_user *u = c->user;

	if (!c->in_table)
		return;

	HASH_DELETE(hh, t->by_id, c);
	t->count--;

	DL_DELETE2(u->conns, c, user_prev, user_next);
	u->nconns--;
	if (!u->nconns)
		free_user(t, u);

	c->user = NULL;
	c->user_prev = NULL;
	c->user_next = NULL;
	c->in_table = 0;
}

struct qc_conn *qc_conns_find(const struct qc_conns *t, uint64_t id)
{
	struct qc_conn *c;

	HASH_FIND(hh, t->by_id, &id, sizeof(uint64_t), c);
	return c;
}

struct qc_user *qc_conns_user(const struct qc_conns *t, const char *user_id)
{
	return find_user(t, user_id, strnlen(user_id, QC_USER_ID_MAX + 1));
}

void qc_conns_free(struct qc_conns *t)
{
	struct qc_conn *c, *tmp;

	HASH_ITER (hh, t->by_id, c, tmp) {
		qc_conns_remove(t, c);
	}
}
