/*
 * dedup: the message-id window.
 *
 * Owns the struct, the ring (cap slots of 64-bit hashes in insertion order; cap doubles from 8
 * up to the window while it fills, and the ring only wraps once it holds the window, so
 * growing it keeps the order) and the table (a power of two >= 2 * cap slots of 32 bits;
 * rebuilt when the ring grows). A table entry is 0 (empty) or the ring slot + 1 in its low
 * sbits bits under as many low bits of the hash's upper half as fit (the tag): a probe compares
 * the tag and reads the ring only when it matches, and, while the table's index bits fit in
 * the tag (rings up to 32767 slots), an entry's home slot is read from the entry itself, so
 * probes and deletions stay in the table. The home slot is the hash's upper half masked.
 * Every ring entry has exactly one table slot, so an id inserted twice occupies two;
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
	uint32_t smask; /* the slot bits of an entry */
	uint8_t sbits;
	bool tag_home; /* the tag holds the home slot's bits */
	uint64_t *ring;
	uint32_t *table;
};

uint64_t qc_dedup_hash(const char *id, size_t len)
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
	return h;
}

static uint32_t home_of_hash(const struct qc_dedup *d, uint64_t h)
{
	return (uint32_t)(h >> 32) & d->mask;
}

static uint32_t tag_of_hash(const struct qc_dedup *d, uint64_t h)
{
	return (uint32_t)((h >> 32) << d->sbits);
}

static uint32_t slot_of(const struct qc_dedup *d, uint32_t e)
{
	return (e & d->smask) - 1;
}

static uint32_t home_of_entry(const struct qc_dedup *d, uint32_t e)
{
	if (d->tag_home)
		return (e >> d->sbits) & d->mask;
	return home_of_hash(d, d->ring[slot_of(d, e)]);
}

static void table_add(struct qc_dedup *d, uint64_t h, uint32_t slot)
{
	uint32_t i = home_of_hash(d, h);

	while (d->table[i])
		i = (i + 1) & d->mask;
	d->table[i] = tag_of_hash(d, h) | (slot + 1);
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
	uint8_t sbits = 1, tbits = 1;

	while (size < 2 * (uint64_t)cap) {
		size <<= 1;
		tbits++;
	}
	while (sbits < 32 && (uint64_t)cap >> sbits)
		sbits++; /* slot + 1 <= cap fits */
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
	d->sbits = sbits;
	d->smask = (uint32_t)((1ULL << sbits) - 1);
	d->tag_home = tbits + sbits <= 32;
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

bool qc_dedup_seen_hash(const struct qc_dedup *d, uint64_t h)
{
	uint32_t i = home_of_hash(d, h), tag = tag_of_hash(d, h), e;

	while ((e = d->table[i])) {
		if ((e & ~d->smask) == tag && d->ring[slot_of(d, e)] == h)
			return true;
		i = (i + 1) & d->mask;
	}
	return false;
}

/* Remove the table slot of ring slot @slot (it is in the table). */
static void table_remove(struct qc_dedup *d, uint32_t slot)
{
	uint32_t i = home_of_hash(d, d->ring[slot]);
	uint32_t j, home;

	while ((d->table[i] & d->smask) != slot + 1)
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
		home = home_of_entry(d, d->table[j]);
		if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		d->table[i] = d->table[j];
		i = j;
	}
	d->table[i] = 0;
}

bool qc_dedup_seen(const struct qc_dedup *d, const char *id, size_t len)
{
	return qc_dedup_seen_hash(d, qc_dedup_hash(id, len));
}

void qc_dedup_prefetch(const struct qc_dedup *d, uint64_t h)
{
	__builtin_prefetch(&d->table[home_of_hash(d, h)]);
	__builtin_prefetch(&d->ring[d->next], 1);
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
	return qc_dedup_insert_hash(d, qc_dedup_hash(id, len));
}

int qc_dedup_insert_hash(struct qc_dedup *d, uint64_t h)
{
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
