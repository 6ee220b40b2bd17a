/*
 * dedup: the message-id window.
 *
 * Owns the struct, the ring (cap slots of hashes in insertion order; cap doubles from 8 up to
 * the window while it fills, and the ring only wraps once it holds the window, so growing it
 * keeps the order) and the table (a power of two >= 2 * cap slots, each 0 = empty or the ring
 * slot + 1 of one entry; rebuilt when the ring grows). A hash that comes out as 0 is stored as
 * 1. Every ring entry has exactly one table slot, so an id inserted twice occupies two;
 * eviction removes the slot of the evicted ring entry by backward-shift deletion, which keeps
 * every remaining entry reachable from its home slot without tombstones. The table is never
 * more than half full, so probe sequences stay short and always end at an empty slot.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "quotecast/dedup.h"

#define FIRST_CAP 8

struct qc_dedup {
	uint32_t window;
	uint32_t count; /* hashes in the ring */
	uint32_t next;  /* the ring slot the next insert writes: the oldest when full */
	uint32_t cap;   /* ring slots allocated (<= window) */
	uint32_t mask;  /* table size - 1 */
	uint64_t *ring;
	uint32_t *table;
};

static uint64_t hash_id(const char *id, size_t len)
{
	const unsigned char *p = (const unsigned char *)id;
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	/*
	 * FNV-1a alone leaves the low bits, which pick the home slot, weakly mixed for short
	 * ids that differ in their last bytes; the murmur3 finaliser spreads every bit.
	 */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h ? h : 1;
}

static void table_add(struct qc_dedup *d, uint64_t h, uint32_t slot)
{
	uint32_t i = (uint32_t)h & d->mask;

	while (d->table[i])
		i = (i + 1) & d->mask;
	d->table[i] = slot + 1;
}

/*
 * Ring and table for @cap slots (ring contents kept). 0 or -ENOMEM with nothing changed. Only
 * while the ring has not wrapped: slots 0..count-1 are the entries, oldest first.
 */
static int resize(struct qc_dedup *d, uint32_t cap)
{
	uint64_t size = 2;
	uint64_t *ring;
	uint32_t *table, i;

	while (size < 2 * (uint64_t)cap)
		size <<= 1;
	table = calloc(size, sizeof(*table));
	if (!table)
		return -ENOMEM;
	ring = realloc(d->ring, (size_t)cap * sizeof(*ring));
	if (!ring) {
		free(table);
		return -ENOMEM;
	}
	free(d->table);
	d->ring = ring;
	d->table = table;
	d->cap = cap;
	d->mask = (uint32_t)(size - 1);
	for (i = 0; i < d->count; i++)
		table_add(d, d->ring[i], i);
	return 0;
}

struct qc_dedup *qc_dedup_new(uint32_t window)
{
	struct qc_dedup *d;

	if (!window || window > QC_DEDUP_WINDOW_MAX) {
		errno = EINVAL;
		return NULL;
	}
	d = calloc(1, sizeof(*d));
	if (!d)
		goto fail;
	d->window = window;
	if (resize(d, window < FIRST_CAP ? window : FIRST_CAP))
		goto fail_free;
	return d;

fail_free:
	free(d);
fail:
	errno = ENOMEM;
	return NULL;
}

void qc_dedup_free(struct qc_dedup *d)
{
	if (!d)
		return;
	free(d->ring);
	free(d->table);
	free(d);
}

static bool table_has(const struct qc_dedup *d, uint64_t h)
{
	uint32_t i = (uint32_t)h & d->mask;

	while (d->table[i]) {
		if (d->ring[d->table[i] - 1] == h)
			return true;
		i = (i + 1) & d->mask;
	}
	return false;
}

/* Remove the table slot of ring slot @slot (it is in the table). */
static void table_remove(struct qc_dedup *d, uint32_t slot)
{
	uint32_t i = (uint32_t)d->ring[slot] & d->mask;
	uint32_t j, home;

	while (d->table[i] != slot + 1)
		i = (i + 1) & d->mask;

	/*
	 * Slot i is now a hole. Walk the cluster after it: an entry whose home slot lies
	 * cyclically in (i, j] is still reachable with the hole there and stays; any other
	 * entry would become unreachable, so it moves into the hole, which moves to j.
	 */
	j = i;
	for (;;) {
		j = (j + 1) & d->mask;
		if (!d->table[j])
			break;
		home = (uint32_t)d->ring[d->table[j] - 1] & d->mask;
		if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		d->table[i] = d->table[j];
		i = j;
	}
	d->table[i] = 0;
}

bool qc_dedup_seen(const struct qc_dedup *d, const char *id, size_t len)
{
	return table_has(d, hash_id(id, len));
}

int qc_dedup_reserve(struct qc_dedup *d)
{
	uint32_t cap;

	if (d->count < d->cap || d->cap == d->window)
		return 0;
	cap = d->cap > d->window / 2 ? d->window : d->cap * 2;
	return resize(d, cap);
}

int qc_dedup_insert(struct qc_dedup *d, const char *id, size_t len)
{
	uint64_t h = hash_id(id, len);

	if (qc_dedup_reserve(d))
		return -ENOMEM;
	if (d->count == d->window)
		table_remove(d, d->next);
	else
		d->count++;
	d->ring[d->next] = h;
	table_add(d, h, d->next);
	d->next = d->next + 1 == d->window ? 0 : d->next + 1;
	return 0;
}

uint32_t qc_dedup_count(const struct qc_dedup *d)
{
	return d->count;
}

uint32_t qc_dedup_window(const struct qc_dedup *d)
{
	return d->window;
}
