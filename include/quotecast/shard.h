/*
 * shard: client-side consistent hashing of keys over several Redis shards (cluster.redis), and
 * the small pure parts of the Redis client: URL parsing and the reconnect back-off.
 */
#ifndef QC_SHARD_H
#define QC_SHARD_H

#include <stddef.h>
#include <stdint.h>

/* Points each shard puts on the ring: enough for an even spread of a few shards. */
#define QC_SHARD_VNODES 160

struct qc_shard_point {
	uint64_t hash;
	uint32_t shard;
};

struct qc_shard_ring {
	struct qc_shard_point *points; /* sorted by hash */
	size_t npoints;
	uint32_t nshards;
};

/**
 * qc_shard_ring_init() - a ring of @n shards named by @names (their identity: a shard keeps
 * its points whatever the others are, so adding one moves only the keys it takes). Returns 0,
 * -EINVAL (n is 0) or -ENOMEM.
 */
int qc_shard_ring_init(struct qc_shard_ring *r, const char *const *names, uint32_t n);

/** qc_shard_ring_free() - release the points. */
void qc_shard_ring_free(struct qc_shard_ring *r);

/** qc_shard_pick() - the shard (index into the names given at init) that owns @key. */
uint32_t qc_shard_pick(const struct qc_shard_ring *r, const char *key, size_t len);

/** qc_shard_hash() - the 64-bit hash the ring uses (FNV-1a, then a splitmix64 finaliser). */
uint64_t qc_shard_hash(const void *data, size_t len);

/**
 * qc_redis_url_parse() - "redis://HOST:PORT" (PORT defaults to 6379; HOST an IPv4 address,
 * "[IPv6]" or a name resolved at start-up; no user, password, database or path). Copies HOST
 * (without brackets) into @host. Returns 0 or -EINVAL with a reason in @why.
 */
int qc_redis_url_parse(const char *url, char *host, size_t hostlen, uint16_t *port,
                       const char **why);

/*
 * Reconnect back-off: from QC_BACKOFF_MIN_MS doubling to QC_BACKOFF_MAX_MS, each wait drawn in
 * [half, full] of its step (equal jitter) so nodes that lost Redis together do not reconnect
 * together.
 */
#define QC_BACKOFF_MIN_MS 100
#define QC_BACKOFF_MAX_MS 5000

/**
 * qc_backoff_next() - the next step after @step_ms (0 = first failure) and the wait to use
 * for it, from @rnd (any 32-bit random value). Returns the new step; *@wait_ms gets the wait.
 */
uint32_t qc_backoff_next(uint32_t step_ms, uint32_t rnd, uint32_t *wait_ms);

#endif
