/*
 * dedup: the message-id window.
 *
 * Owns one allocation: the struct followed by the ring (window slots, the hashes in insertion
 * order) and the table (a power of two >= 2 * window slots of hashes, 0 = empty; a hash that
 * comes out as 0 is stored as 1). Every hash in the ring has exactly one slot of its own in
 * the table, so an id inserted twice occupies two slots; eviction removes one slot holding
 * the evicted hash (which of the equal copies does not matter) by backward-shift deletion,
 * which keeps every remaining entry reachable from its home slot without tombstones. The
 * table is never more than half full, so probe sequences stay short and always end at an
 * empty slot.
 */
#include <errno.h>
#include <stdlib.h>

#include "quotecast/dedup.h"

struct qc_dedup {
	uint32_t window;
	uint32_t count; /* hashes in the ring */
	uint32_t next;  /* the ring slot the next insert writes: the oldest when full */
	uint32_t mask;  /* table size - 1 */
	uint64_t *table;
	uint64_t slots[]; /* ring (window), then table (mask + 1) */
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

struct qc_dedup *qc_dedup_new(uint32_t window)
{
	struct qc_dedup *d;
	uint64_t size = 2;

	if (!window || window > QC_DEDUP_WINDOW_MAX) {
		errno = EINVAL;
		return NULL;
	}
	while (size < 2 * (uint64_t)window)
		size <<= 1;

	d = calloc(1, sizeof(*d) + (window + size) * sizeof(uint64_t));
	if (!d) {
		errno = ENOMEM;
		return NULL;
	}
	d->window = window;
	d->mask = (uint32_t)(size - 1);
	d->table = d->slots + window;
	return d;
}

void qc_dedup_free(struct qc_dedup *d)
{
	free(d);
}

static bool table_has(const struct qc_dedup *d, uint64_t h)
{
	uint32_t i = (uint32_t)h & d->mask;

	while (d->table[i]) {
		if (d->table[i] == h)
			return true;
		i = (i + 1) & d->mask;
	}
	return false;
}

static void table_add(struct qc_dedup *d, uint64_t h)
{
	uint32_t i = (uint32_t)h & d->mask;

	while (d->table[i])
		i = (i + 1) & d->mask;
	d->table[i] = h;
}

/* @h must be in the table: it is the hash of a ring entry. */
static void table_remove(struct qc_dedup *d, uint64_t h)
{
	uint32_t i = (uint32_t)h & d->mask;
	uint32_t j, home;

	while (d->table[i] != h)
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
		home = (uint32_t)d->table[j] & d->mask;
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

void qc_dedup_insert(struct qc_dedup *d, const char *id, size_t len)
{
	uint64_t h = hash_id(id, len);

	if (d->count == d->window)
		table_remove(d, d->slots[d->next]);
	else
		d->count++;
	d->slots[d->next] = h;
	d->next = d->next + 1 == d->window ? 0 : d->next + 1;
	table_add(d, h);
}

uint32_t qc_dedup_count(const struct qc_dedup *d)
{
	return d->count;
}

uint32_t qc_dedup_window(const struct qc_dedup *d)
{
	return d->window;
}
