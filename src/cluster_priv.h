/*
 * What the parts of the cluster adapter share (cluster.c: shards, links, scripts, channels,
 * membership; cluster_stream.c: the stream broker; later parts: rooms, inboxes, sessions).
 * Nothing here is for the hub: it sees the cluster only through broker.h and
 * struct qc_cluster_ops.
 */
#ifndef QC_CLUSTER_PRIV_H
#define QC_CLUSTER_PRIV_H

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>

#include <uthash.h>

#include "quotecast/broker.h"
#include "quotecast/cluster.h"
#include "quotecast/redis.h"
#include "quotecast/room.h"
#include "quotecast/held.h"
#include "quotecast/shard.h"

#define QC_CLUSTER_MAX_SCRIPTS   32
#define QC_CLUSTER_MAX_LISTENERS 8

struct qc_cluster;

/*
 * A Lua script run with EVALSHA. Registered once (qc_cluster_script_add) before the links
 * start; every command link loads all registered scripts (SCRIPT LOAD) as soon as it is up,
 * before anything else is sent on it, so an EVALSHA on an up link finds its script (also after
 * Redis restarted empty: that drops the link, and it loads them again when it is back).
 */
struct qc_cluster_script {
	const char *src;
	char *code;   /* the deadline guard, then src (made once by qc_cluster_script_add) */
	char sha[41]; /* hex SHA-1 of code, set by qc_cluster_script_add */
};

/*
 * A handler for the messages on the channels whose names start with @prefix (qc_cluster_listen):
 * @name is the rest of the channel's name, @payload the message.
 */
typedef void (*qc_cluster_chan_fn)(struct qc_cluster *cl, const char *name, size_t namelen,
                                   const char *payload, size_t len);

struct qc_cluster_shard {
	struct qc_cluster *cl;
	uint32_t index;
	char *url;
	char ip[INET6_ADDRSTRLEN];
	uint16_t port;
	struct qc_redis *cmd;
	struct qc_redis *sub; /* SUBSCRIBE only */
	/* Redis' clock (TIME) less ours, as last asked: a script's deadline is on Redis' clock */
	int64_t clock_off_ms;
	int64_t clock_asked_ms; /* when TIME was sent (our clock) */
	uint64_t late;          /* scripts that ran past their deadline: not done (QCLATE) */
	bool clock_known;
	bool clock_asking;
};

/* A subscribed channel: on its shard's sub link, again after every reconnect. */
struct qc_cluster_chan {
	UT_hash_handle hh;
	uint32_t shard;
	uint32_t refs;
	char name[]; /* NUL-terminated */
};

struct qc_cluster_listener {
	const char *prefix;
	size_t prefixlen;
	qc_cluster_chan_fn fn;
};

/* @shard's subscriber link is up again and its channels were subscribed anew. */
typedef void (*qc_cluster_up_fn)(struct qc_cluster *cl, uint32_t shard);

/* The stream broker's state (cluster_stream.c). */
struct qc_cluster_streams {
	struct qc_cluster_watch *watches; /* uthash by symbol */
	uint32_t nwatches;
	uint64_t ticks_in;   /* ticks received on watched channels */
	uint64_t ticks_bad;  /* messages that did not parse */
	uint64_t reads;      /* reads of a log (a watch began, a gap, a sub link back, a load) */
	uint64_t epoch_seed; /* new_epoch(): random, drawn once */
	uint64_t epoch_count;
	uint64_t read_failures; /* reads that got no answer */
	uint64_t gaps;          /* channel ticks that came after a gap */
	uint64_t gaps_lost;     /* gaps the log no longer had: the stream's ring begins again */
	struct qc_cluster_claim *claims;  /* alert claims waiting to be sent */
	struct qc_cluster_recent *recent; /* symbols whose max_symbols count was renewed lately */
	lws_sorted_usec_list_t sul_sweep;
	lws_sorted_usec_list_t sul_settle; /* reads once new SUBSCRIBEs have surely taken effect */
};

/* Users' inboxes and where their sessions are (cluster_session.c). */
struct qc_cluster_sessions {
	struct qc_cluster_user *users; /* uthash by user id: users with a session here */
	struct qc_cluster_sess *sess;  /* uthash by session id */
	uint32_t nusers, nsess;
	uint64_t appended;    /* entries sent to the inbox script */
	uint64_t entries_in;  /* entries received on users' channels */
	uint64_t entries_bad; /* messages that did not parse */
	uint64_t readbacks;   /* logs read back to fill a hole */
	uint64_t writes;      /* session records written */
	uint32_t ndirty;      /* sessions whose changed record waits for the flush */
	bool flush_due;
	lws_sorted_usec_list_t sul_sweep;
	lws_sorted_usec_list_t sul_flush;
};

/* An inbox epoch's length (hub_priv.h's QC_EPOCH_LEN: 12 hex characters). */
#define QC_EPOCH_LEN_HEX 12

/* The room broker's state (cluster_room.c). */
#define QC_CLUSTER_ROOM_MAX QC_ROOM_NAME_MAX
struct qc_cluster_rooms {
	struct qc_cluster_rwatch *watches; /* uthash by room name */
	uint32_t nwatches;
	uint64_t events_in;  /* room events received on watched channels */
	uint64_t events_bad; /* messages that did not parse */
	uint64_t changes_in; /* changes of created rooms received on "qc:rc" */
	uint32_t control_shard;
	/* the log of those changes, as far as this node has applied it (cluster_room.c) */
	uint64_t rc_seq;
	char rc_epoch[32];
	bool rc_known;
	bool rc_reading;                /* a read-back is under way: what arrives waits */
	struct qc_held held;            /* changes waiting behind that read-back */
	struct control_waiter *waiting; /* settle(): for a read that starts after them */
	struct control_waiter *reading; /* settle(): for the read that is out */
	uint64_t change_reads;          /* read-backs of that log */
	uint64_t changes_lost;          /* changes the log no longer had for this node */
	uint64_t settle_shards;         /* shards to read again once their SUBSCRIBEs took effect */
	struct control_out *out, **out_tail; /* this node's changes to announce, in order */
	uint32_t nout;
	bool out_sending;        /* the first is with Redis */
	bool out_stalled;        /* Redis did not take the first: the others do not wait */
	uint64_t changes_unsent; /* changes never announced (the outbox was full) */
	lws_sorted_usec_list_t sul_settle;
	bool presence_due; /* sul_presence is scheduled */
	lws_sorted_usec_list_t sul_sweep;
	lws_sorted_usec_list_t sul_presence; /* writes the presence of rooms joined just now */
};

struct qc_cluster {
	const struct qc_config *cfg;
	struct qc_hub *hub;
	struct lws_context *ctx;
	char node_id[128];
	struct qc_cluster_shard *shards;
	uint32_t nshards;
	struct qc_shard_ring ring;
	uint32_t beat_shard; /* the shard that owns the membership keys */
	bool beat_waiting;
	bool stopped;
	json_t *nodes; /* the live nodes' records from the last beat (array) */
	struct qc_cluster_script *scripts[QC_CLUSTER_MAX_SCRIPTS];
	uint32_t nscripts;
	struct qc_cluster_listener listeners[QC_CLUSTER_MAX_LISTENERS];
	uint32_t nlisteners;
	qc_cluster_up_fn resubscribed[QC_CLUSTER_MAX_LISTENERS];
	uint32_t nresubscribed;
	struct qc_cluster_chan *chans; /* uthash by name */
	struct qc_cluster_streams streams;
	struct qc_cluster_sessions sessions;
	struct qc_cluster_rooms rooms;
	lws_sorted_usec_list_t sul_beat;
};

/** qc_cluster_shard_of() - the shard that owns @key (the same on every node). */
uint32_t qc_cluster_shard_of(const struct qc_cluster *cl, const char *key, size_t len);

/** qc_cluster_cmd() - qc_redis_cmd() on @shard's command link. */
int qc_cluster_cmd(struct qc_cluster *cl, uint32_t shard, qc_redis_reply_fn fn, void *ud, int argc,
                   const char **argv, const size_t *lens);

/**
 * qc_cluster_script_add() - register @s (static storage) at start-up, before
 * qc_cluster_start(). Returns 0, or -1 when the table is full.
 */
int qc_cluster_script_add(struct qc_cluster *cl, struct qc_cluster_script *s);

/**
 * qc_cluster_eval() - EVALSHA @s on @shard with @nkeys of the @nargs @args (keys first), as
 * qc_cluster_cmd(). A NOSCRIPT answer (an operator ran SCRIPT FLUSH) reaches @fn as the error
 * it is, and the shard loads its scripts again. The script does nothing and answers the error
 * "QCLATE" when it runs after the node stopped waiting for it (a deadline on Redis' clock, a
 * quarter of cluster.timeout_ms before the link's own timeout): a command that waited in a
 * stalled Redis and ran after the node answered UNAVAILABLE must not take effect.
 */
int qc_cluster_eval(struct qc_cluster *cl, uint32_t shard, struct qc_cluster_script *s, int nkeys,
                    int nargs, const char **args, const size_t *lens, qc_redis_reply_fn fn,
                    void *ud);

/** qc_cluster_eval_strs() - qc_cluster_eval() of @n NUL-terminated @args (at most 32). */
int qc_cluster_eval_strs(struct qc_cluster *cl, uint32_t shard, struct qc_cluster_script *s,
                         int nkeys, int n, const char *const *args, qc_redis_reply_fn fn, void *ud);

/** qc_cluster_listen() - at start-up: @fn gets the messages of channels starting @prefix. */
int qc_cluster_listen(struct qc_cluster *cl, const char *prefix, qc_cluster_chan_fn fn);

/**
 * qc_cluster_on_resubscribe() - at start-up: @fn runs each time a shard's subscriber link is
 * up (again) and its channels are subscribed anew. What was published on them while the link
 * was down is lost for this node: @fn reads it back from the logs.
 */
int qc_cluster_on_resubscribe(struct qc_cluster *cl, qc_cluster_up_fn fn);

/**
 * qc_cluster_subscribe() - hold (@on) or release one reference to channel @name on @shard's
 * subscriber link: SUBSCRIBE with the first, UNSUBSCRIBE with the last; kept across
 * reconnects. Returns 0 or -ENOMEM.
 */
int qc_cluster_subscribe(struct qc_cluster *cl, uint32_t shard, const char *name, bool on);

/* cluster_stream.c */
int qc_cluster_streams_init(struct qc_cluster *cl);
void qc_cluster_streams_start(struct qc_cluster *cl);
void qc_cluster_streams_stop(struct qc_cluster *cl);
void qc_cluster_streams_free(struct qc_cluster *cl);
void qc_cluster_streams_stats(struct qc_cluster *cl, json_t *doc);
int qc_cluster_broker_append(void *ctx, const struct qc_broker_tick *t, qc_broker_append_cb cb,
                             void *arg);
void qc_cluster_broker_watch(void *ctx, const char *symbol);
int qc_cluster_broker_load(void *ctx, const char *symbol, qc_broker_load_cb cb, void *arg);
int qc_cluster_broker_claim(void *ctx, const char *symbol, const char *key, bool prefer,
                            void (*cb)(void *arg, int won), void *arg);

/* cluster_session.c */
int qc_cluster_sessions_init(struct qc_cluster *cl);
void qc_cluster_sessions_start(struct qc_cluster *cl);
void qc_cluster_sessions_stop(struct qc_cluster *cl);
void qc_cluster_sessions_free(struct qc_cluster *cl);
void qc_cluster_sessions_stats(struct qc_cluster *cl, json_t *doc);
/* cluster_room.c */
int qc_cluster_rooms_init(struct qc_cluster *cl);
void qc_cluster_rooms_start(struct qc_cluster *cl);
void qc_cluster_rooms_stop(struct qc_cluster *cl);
void qc_cluster_rooms_free(struct qc_cluster *cl);
void qc_cluster_rooms_stats(struct qc_cluster *cl, json_t *doc);
int qc_cluster_room_append(void *ctx, const char *room, const char *payload, size_t len,
                           qc_room_append_cb cb, void *arg);
int qc_cluster_room_read(void *ctx, const char *room, uint64_t since, qc_room_read_cb cb,
                         void *arg);
void qc_cluster_room_watch(void *ctx, const char *room);
int qc_cluster_room_admit(void *ctx, const char *room, const char *user, uint32_t cap,
                          const char *known, qc_room_append_cb cb, void *arg);
void qc_cluster_room_release(void *ctx, const char *room, const char *user);
int qc_cluster_room_presence(void *ctx, const char *room, qc_room_presence_cb cb, void *arg);
int qc_cluster_room_announce(void *ctx, const char *payload, size_t len, qc_room_append_cb cb,
                             void *arg);

#endif
