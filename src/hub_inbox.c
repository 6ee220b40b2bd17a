/*
 * hub_inbox: users' inbox logs kept in the store (SPEC 2.9), so that an inbox position (seq and
 * epoch of a direct message, an alert or an offline delivery) survives a restart.
 *
 * Memory only, an inbox log lives while its user has a session (hub_room.c makes it, hub.c
 * frees it with the last one): a new session, a new epoch. With a store every user's inbox is
 * one log for good, owned by h->inboxes (by user id) whether the user has a session or not,
 * like a created room's: its epoch and last seq are a row of inbox_logs, its entries rows of
 * inbox_history (each written with its seq by one repeatable statement through the store's
 * ordered backlog; the rows older than inbox.history_size are trimmed every TRIM_EVERY
 * entries), and at start every log is loaded with its newest entries.
 *
 * A client comes back with its position on the upgrade (?inbox_seq=&inbox_epoch=): right after
 * the session event it gets what followed it in the log, then what waited offline (appended to
 * the same log as it is delivered, so never twice), then live.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub_priv.h"
#include "quotecast/acl.h"

/* Trim a user's stored inbox this often (entries), keeping inbox.history_size. */
#define TRIM_EVERY 64

struct qc_inbox_rec {
	char id[QC_USER_ID_MAX + 1];
	struct qc_log *log;
	uint64_t stored; /* at load: the last seq of the log's row */
	UT_hash_handle hh;
};

/*
 * One entry, and the log's row along: written again after an outage it changes nothing (the
 * same seq, the same values); a new epoch starts the row's seq again.
 */
static const char sql_entry[] =
    "WITH l AS (INSERT INTO inbox_logs (user_id, epoch, last_seq) VALUES ($1, $2, $3::bigint)"
    " ON CONFLICT (user_id) DO UPDATE SET epoch = EXCLUDED.epoch, last_seq = CASE WHEN"
    " inbox_logs.epoch = EXCLUDED.epoch THEN GREATEST(inbox_logs.last_seq, EXCLUDED.last_seq)"
    " ELSE EXCLUDED.last_seq END)"
    " INSERT INTO inbox_history (user_id, seq, event, data, created_at)"
    " VALUES ($1, $3::bigint, $4, $5::json, $6::bigint) ON CONFLICT (user_id, seq) DO UPDATE"
    " SET event = EXCLUDED.event, data = EXCLUDED.data, created_at = EXCLUDED.created_at";
static const char sql_trim[] = "DELETE FROM inbox_history WHERE user_id = $1 AND seq <= $2::bigint";

static struct qc_inbox_rec *rec_find(struct qc_hub *h, const char *user)
{
	struct qc_inbox_rec *r = NULL;

	HASH_FIND_STR(h->inboxes, user, r);
	return r;
}

static struct qc_log *rec_add(struct qc_hub *h, const char *user, const char *epoch,
                              uint64_t last_seq)
{
	struct qc_inbox_rec *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->log = qc_log_new(h, QC_LOG_INBOX, h->cfg->inbox.history_size, 0, epoch, last_seq);
	if (!r->log) {
		free(r);
		return NULL;
	}
	r->log->durable = 1;
	r->stored = last_seq;
	snprintf(r->id, sizeof(r->id), "%s", user);
	HASH_ADD_STR(h->inboxes, id, r);
	return r->log;
}

struct qc_log *qc_hub_inbox_durable(struct qc_hub *h, const char *user)
{
	struct qc_inbox_rec *r = rec_find(h, user);

	if (r)
		return r->log;
	return qc_hub_persistent(h) ? rec_add(h, user, NULL, 0) : NULL;
}

void qc_hub_inbox_persist(struct qc_hub *h, const char *user, struct qc_log *l,
                          const struct qc_lentry *e)
{
	json_t *data = json_object_get(e->f.ev, "data"), *ev = e->f.ev;
	char seq[24], now[24], *jdata;

	if (!l->durable || !qc_hub_persistent(h) || h->loading || !data)
		return;
	jdata = json_dumps(data, QC_JSON_DUMP);
	if (!jdata) {
		h->store_dropped++;
		return;
	}
	snprintf(seq, sizeof(seq), "%" PRIu64, e->seq);
	snprintf(now, sizeof(now), "%" PRId64, qc_now_ms());
	{
		const char *params[] = {user,  l->epoch,
		                        seq,   json_string_value(json_object_get(ev, "event")),
		                        jdata, now};

		qc_hub_store_write(h, sql_entry, 6, params);
	}
	free(jdata);
	if (e->seq % TRIM_EVERY == 0 && e->seq > h->cfg->inbox.history_size) {
		const char *params[] = {user, seq};

		snprintf(seq, sizeof(seq), "%" PRIu64, e->seq - h->cfg->inbox.history_size);
		qc_hub_store_write(h, sql_trim, 2, params);
	}
}

static const char *col(json_t *row, size_t i)
{
	return json_string_value(json_array_get(row, i));
}

int qc_hub_inbox_load(struct qc_hub *h, json_t *logs, json_t *history, char *err, size_t errlen)
{
	int64_t now = qc_now_ms();
	struct qc_inbox_rec *r, *tmp;
	json_t *row;
	size_t i;

	/* user_id, epoch, last_seq */
	json_array_foreach (logs, i, row) {
		if (!col(row, 0) || rec_find(h, col(row, 0)))
			continue;
		if (!rec_add(h, col(row, 0), col(row, 1),
		             strtoull(col(row, 2) ? col(row, 2) : "0", NULL, 10))) {
			snprintf(err, errlen, "the inbox of \"%s\": out of memory", col(row, 0));
			return -1;
		}
	}
	/* user_id, seq, event, data, created_at: ascending per user */
	json_array_foreach (history, i, row) {
		json_t *data = col(row, 3) ? json_loads(col(row, 3), 0, NULL) : NULL;
		uint64_t seq = strtoull(col(row, 1) ? col(row, 1) : "0", NULL, 10);
		struct qc_log *l;
		int ret = 0;

		r = col(row, 0) ? rec_find(h, col(row, 0)) : NULL;
		l = r ? r->log : NULL;
		/* rows past the log's last seq belong to no life of it that a client can name */
		if (l && seq && seq <= r->stored && json_is_object(data) && col(row, 2))
			ret =
			    qc_log_load(l, seq, col(row, 2), json_incref(data), NULL, QC_ROLE_NONE,
			                now - strtoll(col(row, 4) ? col(row, 4) : "0", NULL, 10));
		json_decref(data);
		if (ret) {
			snprintf(err, errlen, "the inbox of \"%s\": out of memory", col(row, 0));
			return -1;
		}
	}
	/* the newest entries missing (a hand-made row): the log goes on empty from its seq */
	HASH_ITER (hh, h->inboxes, r, tmp) {
		struct qc_log *l = r->log;

		if (l->last_seq == r->stored)
			continue;
		r->log =
		    qc_log_new(h, QC_LOG_INBOX, h->cfg->inbox.history_size, 0, l->epoch, r->stored);
		if (!r->log) {
			r->log = l;
			snprintf(err, errlen, "the inbox of \"%s\": out of memory", r->id);
			return -1;
		}
		r->log->durable = 1;
		qc_log_free(l);
	}
	return 0;
}

void qc_hub_inboxes_free(struct qc_hub *h)
{
	struct qc_inbox_rec *r, *tmp;

	HASH_ITER (hh, h->inboxes, r, tmp) {
		HASH_DEL(h->inboxes, r);
		qc_log_free(r->log);
		free(r);
	}
}

/* Whether @c's position (@since, @epoch) can be read back from @l exactly. */
static bool reaches(struct qc_log *l, uint64_t since, const char *epoch)
{
	return epoch && qc_log_reaches(l, epoch, since);
}

json_t *qc_hub_inbox_report(struct qc_hub *h, struct qc_conn *c, uint64_t since, const char *epoch)
{
	struct qc_log *l = c->user ? qc_hub_inbox(h, c->user) : NULL;
	uint64_t first;
	json_int_t n = 0;

	if (!l)
		return NULL;
	if (reaches(l, since, epoch)) {
		first = qc_log_first(l);
		n = (json_int_t)(l->last_seq - (since + 1 > first ? since : first - 1));
	}
	return json_pack("{s:b, s:I, s:s, s:I}", "recovered", reaches(l, since, epoch), "seq",
	                 (json_int_t)l->last_seq, "epoch", l->epoch, "replayed", n);
}

void qc_hub_inbox_readback(struct qc_hub *h, struct qc_conn *c, uint64_t since, const char *epoch)
{
	struct qc_log *l = c->user ? c->user->inbox : NULL;
	struct qc_lentry *e;
	bool began;

	if (!l)
		return;
	/* a log that no longer reaches back, or another life: live only (recovered:false) */
	if (reaches(l, since, epoch)) {
		began = qc_hub_replay_begin(h, c);
		for (uint32_t i = 0; (e = qc_log_after(l, since, i)); i++) {
			h->log_replayed[QC_LOG_INBOX]++;
			qc_hub_send_frames(h, c, &e->f);
		}
		qc_hub_replay_end(h, c, began);
	}
	c->inbox_seq = l->last_seq;
}
