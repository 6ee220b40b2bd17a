/*
 * cluster: this node's part in a cluster of quotecast processes sharing Redis (SPEC 2.10;
 * layer 2). It owns one command link (redis.h) per shard of cluster.redis, the ring that
 * spreads keys over them (shard.h), and membership: every second each node writes its record
 * (node_id, connections, ...) and reads everyone's in one Lua script on the shard that owns
 * "{qc}:nodes"; a node not heard of for QC_CLUSTER_NODE_TTL_MS is dropped from the list. It
 * reports to the hub through struct qc_cluster_ops: the "cluster" stats block and readiness
 * (not ready while any shard is down).
 */
#ifndef QC_CLUSTER_H
#define QC_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <libwebsockets.h>

#include "quotecast/config.h"
#include "quotecast/hub.h"

#define QC_CLUSTER_BEAT_MS     1000
#define QC_CLUSTER_NODE_TTL_MS 3000

struct qc_cluster;

/**
 * qc_cluster_new() - at start-up, before the loop runs (host names in cluster.redis are
 * resolved here, blocking). NULL with a message in @err.
 */
struct qc_cluster *qc_cluster_new(const struct qc_config *cfg, struct qc_hub *hub, char *err,
                                  size_t errlen);

/**
 * qc_cluster_start() - connect from the loop of @vh (carrying qc_redis_protocol), name the node
 * (cluster.node_id, or the host name and @port), start the membership beat, and register with
 * the hub. Returns 0 or -1.
 */
int qc_cluster_start(struct qc_cluster *cl, struct lws_context *ctx, struct lws_vhost *vh,
                     unsigned int port);

/** qc_cluster_stop() - stop the beat and drop the connections (before the context goes). */
void qc_cluster_stop(struct qc_cluster *cl);

/** qc_cluster_free() - after the lws context is destroyed. NULL: no-op. */
void qc_cluster_free(struct qc_cluster *cl);

/** qc_cluster_stats() - the "cluster" block of the stats (new reference). */
json_t *qc_cluster_stats(struct qc_cluster *cl);

/** qc_cluster_ready() - every shard connected and answering; else false with a reason. */
bool qc_cluster_ready(struct qc_cluster *cl, const char **reason);

#endif
