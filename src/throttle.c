/*
 * throttle: failed attempts per key in a fixed, set-associative table (the hub keys it by user
 * and room to throttle room-password guessing).
 *
 * A record is a 64-bit hash of the key, the time its window began and the failures counted in
 * it; the key text is not kept, so a record is 24 bytes whatever the key. A record whose
 * window has ended is as good as empty. Nothing here reads a clock or allocates after
 * qc_throttle_new().
 */
#include "quotecast/throttle.h"

#include <stdlib.h>

struct rec {
	uint64_t key;     /* 0: empty (a key that hashes to 0 is stored as 1) */
	int64_t first_ms; /* when its window began */
	uint32_t fails;
};

struct qc_throttle {
	uint64_t seed;
	uint32_t mask; /* sets - 1 */
	uint64_t evicted;
	struct rec recs[]; /* sets x QC_THROTTLE_WAYS */
};

#define MAX_SETS (1u << 17) /* x QC_THROTTLE_WAYS: 1,048,576 records, 24 MiB */

struct qc_throttle *qc_throttle_new(uint32_t records, uint64_t seed)
{
	uint32_t sets = 1;
	struct qc_throttle *t;

	while (sets < MAX_SETS && (uint64_t)sets * QC_THROTTLE_WAYS < records)
		sets <<= 1;
	t = calloc(1, sizeof(*t) + (size_t)sets * QC_THROTTLE_WAYS * sizeof(struct rec));
	if (!t)
		return NULL;
	t->seed = seed;
	t->mask = sets - 1;
	return t;
}

void qc_throttle_free(struct qc_throttle *t)
{
	free(t);
}

static uint64_t mix(uint64_t x)
{
	/* the splitmix64 finaliser: every input bit reaches every output bit */
	x ^= x >> 30;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64_C(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

/* FNV-1a over @a, a NUL, @b (so "ab","c" and "a","bc" differ), keyed by the seed. */
static uint64_t key_of(const struct qc_throttle *t, const char *a, const char *b)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325) ^ mix(t->seed);
	const unsigned char *p;

	for (p = (const unsigned char *)a; *p; p++)
		h = (h ^ *p) * UINT64_C(0x100000001b3);
	h = (h ^ 0xff) * UINT64_C(0x100000001b3);
	for (p = (const unsigned char *)b; *p; p++)
		h = (h ^ *p) * UINT64_C(0x100000001b3);
	h = mix(h ^ t->seed);
	return h ? h : 1;
}

static struct rec *set_of(struct qc_throttle *t, uint64_t key)
{
	return &t->recs[(size_t)((key >> 32) & t->mask) * QC_THROTTLE_WAYS];
}

static struct rec *find(struct qc_throttle *t, uint64_t key)
{
	struct rec *s = set_of(t, key);

	for (int i = 0; i < QC_THROTTLE_WAYS; i++)
		if (s[i].key == key)
			return &s[i];
	return NULL;
}

/* Milliseconds since @r's window began; a clock that went back counts as a new window. */
static uint64_t age(const struct rec *r, int64_t now_ms)
{
	return now_ms >= r->first_ms ? (uint64_t)now_ms - (uint64_t)r->first_ms : UINT64_MAX;
}

static bool over(const struct rec *r, uint32_t window_ms, int64_t now_ms)
{
	return !r->key || age(r, now_ms) >= window_ms;
}

int64_t qc_throttle_check(struct qc_throttle *t, const char *a, const char *b, uint32_t max,
                          uint32_t window_ms, int64_t now_ms)
{
	struct rec *r = find(t, key_of(t, a, b));

	if (!r || over(r, window_ms, now_ms) || r->fails < max)
		return 0;
	return (int64_t)(window_ms - age(r, now_ms));
}

void qc_throttle_fail(struct qc_throttle *t, const char *a, const char *b, uint32_t window_ms,
                      int64_t now_ms)
{
	uint64_t key = key_of(t, a, b);
	struct rec *r = find(t, key), *s, *oldest;

	if (r && !over(r, window_ms, now_ms)) {
		if (r->fails < UINT32_MAX)
			r->fails++;
		return;
	}
	if (!r) {
		/* a free or ended record, else the one whose window ends first */
		s = set_of(t, key);
		oldest = &s[0];
		for (int i = 0; i < QC_THROTTLE_WAYS && !r; i++) {
			if (over(&s[i], window_ms, now_ms))
				r = &s[i];
			else if (s[i].first_ms < oldest->first_ms)
				oldest = &s[i];
		}
		if (!r) {
			r = oldest;
			t->evicted++;
		}
	}
	r->key = key;
	r->first_ms = now_ms;
	r->fails = 1;
}

void qc_throttle_clear(struct qc_throttle *t, const char *a, const char *b)
{
	struct rec *r = find(t, key_of(t, a, b));

	if (r)
		*r = (struct rec){0};
}

uint32_t qc_throttle_live(const struct qc_throttle *t, uint32_t window_ms, int64_t now_ms)
{
	uint32_t n = 0;

	for (size_t i = 0; i < (size_t)qc_throttle_capacity(t); i++)
		n += !over(&t->recs[i], window_ms, now_ms);
	return n;
}

uint32_t qc_throttle_capacity(const struct qc_throttle *t)
{
	return (t->mask + 1) * QC_THROTTLE_WAYS;
}

uint64_t qc_throttle_evicted(const struct qc_throttle *t)
{
	return t->evicted;
}
