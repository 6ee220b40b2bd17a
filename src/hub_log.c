/*
 * hub_log: the logs of SPEC 2.9 that the hub keeps itself: one per room and one per user's
 * inbox. Each entry is an event with a position (seq from 1, per log) and the log's epoch (a
 * random name for this life of the log) in its data; it is encoded once per encoding and the
 * same frames go to live receivers and to every later read-back. A log keeps its newest
 * entries, at most @max of them and, with a TTL, none older than @ttl_s (the hub's steady
 * clock); the seqs it keeps are consecutive, so entry i holds seq first + i.
 *
 * Targeting travels with the entry (target_users, target_role, exclude_self's sender), so a
 * read-back gives each reader what was addressed to it (hub_room.c decides, with the room's
 * roles at the time of reading).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hub_priv.h"

#define RING_MIN 8

static int64_t log_clock(const struct qc_hub *h)
{
	struct timespec ts;

	if (h->clock)
		return h->clock(h->clock_ctx);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct qc_log *qc_log_new(struct qc_hub *h, uint8_t kind, uint32_t max, uint32_t ttl_s,
                          const char *epoch, uint64_t last_seq)
{
	struct qc_log *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->h = h;
	l->kind = kind;
	l->id = ++h->log_ids;
	l->max = max ? max : 1;
	l->ttl_s = ttl_s;
	l->last_seq = last_seq;
	if (epoch && strlen(epoch) == QC_EPOCH_LEN) {
		memcpy(l->epoch, epoch, QC_EPOCH_LEN + 1);
	} else if (qc_random_hex(l->epoch, QC_EPOCH_LEN / 2)) {
		free(l);
		return NULL;
	}
	h->logs[kind]++;
	return l;
}

static void entry_free(struct qc_log *l, struct qc_lentry *e)
{
	qc_frames_release(&e->f);
	json_decref(e->targets);
	free(e);
	l->h->log_entries[l->kind]--;
}

static void drop_oldest(struct qc_log *l)
{
	entry_free(l, l->ring[l->head]);
	l->ring[l->head] = NULL;
	l->head = (l->head + 1) % l->cap;
	l->count--;
}

/* Entries past the TTL go. */
static void trim(struct qc_log *l)
{
	int64_t now;

	if (!l->ttl_s || !l->count)
		return;
	now = log_clock(l->h);
	while (l->count && now - l->ring[l->head]->at_ms > (int64_t)l->ttl_s * 1000)
		drop_oldest(l);
}

void qc_log_free(struct qc_log *l)
{
	if (!l)
		return;
	while (l->count)
		drop_oldest(l);
	free(l->ring);
	l->h->logs[l->kind]--;
	free(l);
}

void qc_log_reset(struct qc_log *l, const char *epoch, uint64_t last_seq)
{
	while (l->count)
		drop_oldest(l);
	if (epoch && strlen(epoch) == QC_EPOCH_LEN)
		memcpy(l->epoch, epoch, QC_EPOCH_LEN + 1);
	l->last_seq = last_seq;
}

void qc_log_free_void(void *l)
{
	qc_log_free(l);
}

static int grow(struct qc_log *l)
{
	uint32_t cap = l->cap ? l->cap * 2 : RING_MIN;
	struct qc_lentry **ring;

	if (cap > l->max)
		cap = l->max;
	ring = calloc(cap, sizeof(*ring));
	if (!ring)
		return -ENOMEM;
	for (uint32_t i = 0; i < l->count; i++)
		ring[i] = l->ring[(l->head + i) % l->cap];
	free(l->ring);
	l->ring = ring;
	l->cap = cap;
	l->head = 0;
	return 0;
}

/* A new entry @seq of @l (not linked in yet); NULL on ENOMEM, @data stolen. */
static struct qc_lentry *entry_new(struct qc_log *l, uint64_t seq, const char *name, json_t *data,
                                   json_t *targets, uint8_t role, uint64_t exclude)
{
	struct qc_lentry *e = data ? calloc(1, sizeof(*e)) : NULL;

	if (!e) {
		json_decref(data);
		return NULL;
	}
	e->seq = seq;
	json_object_set_new(data, "seq", json_integer((json_int_t)e->seq));
	json_object_set_new(data, "epoch", json_string(l->epoch));
	qc_frames_init(&e->f, qc_codec_event(name, data), QC_MSG_ROOM);
	e->f.stream_id = l->id;
	e->f.seq = e->seq;
	e->at_ms = log_clock(l->h);
	e->targets = targets ? json_incref(targets) : NULL;
	e->role = role;
	e->exclude = exclude;
	l->h->log_entries[l->kind]++;
	return e;
}

struct qc_lentry *qc_log_append(struct qc_log *l, const char *name, json_t *data, json_t *targets,
                                uint8_t role, uint64_t exclude)
{
	struct qc_lentry *e;

	if (!data)
		return NULL;
	trim(l);
	if (l->count == l->max)
		drop_oldest(l);
	if (l->count == l->cap && grow(l)) {
		json_decref(data);
		return NULL;
	}
	e = entry_new(l, l->last_seq + 1, name, data, targets, role, exclude);
	if (!e)
		return NULL;
	l->ring[(l->head + l->count) % l->cap] = e;
	l->count++;
	l->last_seq = e->seq;
	return e;
}

struct qc_lentry *qc_log_put(struct qc_log *l, uint64_t seq, const char *epoch, const char *name,
                             json_t *data, json_t *targets, uint8_t role, uint64_t exclude,
                             bool *dup)
{
	*dup = false;
	if (!seq || !epoch || strlen(epoch) != QC_EPOCH_LEN) {
		json_decref(data);
		return NULL;
	}
	if (strcmp(epoch, l->epoch) || seq > l->last_seq + 1) {
		qc_log_reset(l, epoch, seq - 1);
	} else if (seq <= l->last_seq) {
		*dup = true;
		json_decref(data);
		return NULL;
	}
	return qc_log_append(l, name, data, targets, role, exclude);
}

int qc_log_prepend(struct qc_log *l, uint64_t seq, const char *name, json_t *data, json_t *targets,
                   uint8_t role, uint64_t exclude)
{
	struct qc_lentry *e;

	if (seq + 1 != qc_log_first(l) || l->count == l->max) {
		json_decref(data);
		return -ERANGE;
	}
	if (l->count == l->cap && grow(l)) {
		json_decref(data);
		return -ENOMEM;
	}
	e = entry_new(l, seq, name, data, targets, role, exclude);
	if (!e)
		return -ENOMEM;
	l->head = (l->head + l->cap - 1) % l->cap;
	l->ring[l->head] = e;
	l->count++;
	return 0;
}

uint64_t qc_log_first(struct qc_log *l)
{
	trim(l);
	return l->count ? l->ring[l->head]->seq : l->last_seq + 1;
}

bool qc_log_reaches(struct qc_log *l, const char *epoch, uint64_t since)
{
	if (!epoch || strcmp(epoch, l->epoch) || since > l->last_seq)
		return false;
	return since + 1 >= qc_log_first(l);
}

struct qc_lentry *qc_log_after(struct qc_log *l, uint64_t since, uint32_t i)
{
	uint64_t first = qc_log_first(l), from = since + 1 > first ? since + 1 : first;
	uint64_t k = from - first + i;

	if (k >= l->count)
		return NULL;
	return l->ring[(l->head + k) % l->cap];
}

int qc_log_load(struct qc_log *l, uint64_t seq, const char *name, json_t *data, json_t *targets,
                uint8_t role, int64_t age_ms)
{
	struct qc_lentry *e;

	/* the seqs a log keeps are consecutive: a hole (a row never written) ends what is before */
	if (l->count && seq != l->last_seq + 1)
		while (l->count)
			drop_oldest(l);
	l->last_seq = seq ? seq - 1 : 0;
	e = qc_log_append(l, name, data, targets, role, 0);
	if (!e)
		return -ENOMEM;
	e->at_ms -= age_ms > 0 ? age_ms : 0;
	trim(l);
	return 0;
}

void qc_log_compact(struct qc_lentry *e)
{
	if (e && e->f.m[QC_ENC_NATIVE]) {
		json_decref(e->f.ev);
		e->f.ev = NULL;
	}
}
