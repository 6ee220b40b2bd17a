/*
 * shard: a consistent-hash ring (each shard QC_SHARD_VNODES points hashed from its name, keys
 * owned by the first point at or after their hash), Redis URL parsing and the back-off steps.
 * Pure: the Redis adapter (redis.c) and the cluster (cluster.c) use it, tests/unit/test_shard.c
 * checks the spread and the movement when a shard is added.
 */
#include "quotecast/shard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t qc_shard_hash(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	/* FNV alone clusters similar short keys: mix the bits */
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return h;
}

static int cmp_point(const void *a, const void *b)
{
	const struct qc_shard_point *x = a, *y = b;

	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	return x->shard < y->shard ? -1 : x->shard > y->shard;
}

int qc_shard_ring_init(struct qc_shard_ring *r, const char *const *names, uint32_t n)
{
	char buf[600];
	size_t i, k = 0;
	uint32_t v;
	int len;

	memset(r, 0, sizeof(*r));
	if (!n)
		return -EINVAL;
	r->points = calloc((size_t)n * QC_SHARD_VNODES, sizeof(*r->points));
	if (!r->points)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		for (v = 0; v < QC_SHARD_VNODES; v++) {
			len = snprintf(buf, sizeof(buf), "%s#%u", names[i], v);
			if (len < 0 || (size_t)len >= sizeof(buf))
				len = (int)sizeof(buf) - 1;
			r->points[k].hash = qc_shard_hash(buf, (size_t)len);
			r->points[k].shard = (uint32_t)i;
			k++;
		}
	}
	qsort(r->points, k, sizeof(*r->points), cmp_point);
	r->npoints = k;
	r->nshards = n;
	return 0;
}

void qc_shard_ring_free(struct qc_shard_ring *r)
{
	free(r->points);
	memset(r, 0, sizeof(*r));
}

uint32_t qc_shard_pick(const struct qc_shard_ring *r, const char *key, size_t len)
{
	uint64_t h;
	size_t lo = 0, hi = r->npoints, mid;

	if (r->nshards <= 1)
		return 0;
	h = qc_shard_hash(key, len);
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (r->points[mid].hash < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	return r->points[lo == r->npoints ? 0 : lo].shard;
}

int qc_redis_url_parse(const char *url, char *host, size_t hostlen, uint16_t *port,
                       const char **why)
{
	static const char scheme[] = "redis://";
	const char *p, *h, *hend, *colon, *c;
	unsigned long n;
	char *end;

	if (strncmp(url, scheme, sizeof(scheme) - 1)) {
		*why = "must start with redis://";
		return -EINVAL;
	}
	p = url + sizeof(scheme) - 1;
	if (strpbrk(p, "@/?#")) {
		*why = "only redis://HOST:PORT is supported (no user, password, database or path)";
		return -EINVAL;
	}
	if (*p == '[') {
		h = p + 1;
		hend = strchr(h, ']');
		if (!hend) {
			*why = "an IPv6 address needs its closing ]";
			return -EINVAL;
		}
		colon = hend[1] == ':' ? hend + 1 : NULL;
		if (hend[1] && !colon) {
			*why = "expected :PORT after ]";
			return -EINVAL;
		}
	} else {
		h = p;
		colon = strchr(p, ':');
		hend = colon ? colon : p + strlen(p);
	}
	if (hend == h || (size_t)(hend - h) >= hostlen) {
		*why = "the host is empty or too long";
		return -EINVAL;
	}
	for (c = h; c < hend; c++) {
		if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		    (*c >= '0' && *c <= '9') || *c == '.' || *c == '-' || *c == '_' ||
		    (*p == '[' && *c == ':'))
			continue;
		*why = "the host may only have letters, digits, '.', '-', '_' (and ':' in [IPv6])";
		return -EINVAL;
	}
	memcpy(host, h, (size_t)(hend - h));
	host[hend - h] = '\0';
	*port = 6379;
	if (colon) {
		if (colon[1] < '0' || colon[1] > '9') {
			*why = "the port must be a number from 1 to 65535";
			return -EINVAL;
		}
		errno = 0;
		n = strtoul(colon + 1, &end, 10);
		if (errno || *end || n < 1 || n > 65535) {
			*why = "the port must be a number from 1 to 65535";
			return -EINVAL;
		}
		*port = (uint16_t)n;
	}
	return 0;
}

uint32_t qc_backoff_next(uint32_t step_ms, uint32_t rnd, uint32_t *wait_ms)
{
	uint32_t step, half;

	if (step_ms < QC_BACKOFF_MIN_MS)
		step = QC_BACKOFF_MIN_MS;
	else if (step_ms >= QC_BACKOFF_MAX_MS / 2)
		step = QC_BACKOFF_MAX_MS;
	else
		step = step_ms * 2;
	half = step / 2;
	*wait_ms = half + rnd % (step - half + 1);
	return step;
}
