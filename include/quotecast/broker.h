/*
 * broker: where a stream's ticks are numbered and how they reach the other nodes (DESIGN.md
 * "Logs, positions and the engine seam"). Without one the hub numbers ticks itself (one node,
 * the memory broker: hub_stream.c's publish). With one (cluster.c on Redis), the hub hands
 * each validated tick to append(); the broker checks duplicates and versions for the whole
 * cluster, gives the tick its seq, logs it, and delivers it to every node that watches the
 * symbol, this one included, through qc_hub_broker_tick(). A node watches a symbol while it
 * has local subscribers. The broker's log has an epoch (a name for its life, the same on every
 * node), and a node that starts watching reads the log back (load), so stream requests are
 * answered alike on every node.
 */
#ifndef QC_BROKER_H
#define QC_BROKER_H

#include <stdbool.h>
#include <stdint.h>

#include "quotecast/cobj.h"

/* One tick for append(), borrowed for the call. */
struct qc_broker_tick {
	const char *symbol;
	const struct qc_cobj *data; /* compact: its text is the JSON the broker sends on */
	const char *message_id;     /* NULL or "" = none */
	bool has_version;
	int64_t version;
	int64_t timestamp;
};

/*
 * The verdict on one appended tick: QC_TICK_ACCEPTED (with its @seq), QC_TICK_DUPLICATE or
 * QC_TICK_STALE (stream.h), -ENOSPC (refused: a new symbol past streams.max_symbols), or
 * -ENOTCONN (the broker went away before it answered: nothing is known) / -EIO (it refused).
 */
typedef void (*qc_broker_append_cb)(void *arg, int verdict, uint64_t seq);

/* A load is done: 0 (the local stream holds what the broker's log held), or -ENOTCONN. */
typedef void (*qc_broker_load_cb)(void *arg, int rc);

struct qc_broker {
	/* 0: @cb runs later (never inside this call); -ENOTCONN or -ENOSPC: it will not run */
	int (*append)(void *ctx, const struct qc_broker_tick *t, qc_broker_append_cb cb, void *arg);
	/* this node has a local subscriber of @symbol now (called on every subscribe) */
	void (*watch)(void *ctx, const char *symbol);
	/*
	 * Optional. Make this node's stream of @symbol current: watch it and read the broker's
	 * log into it (through qc_hub_broker_tick), merged with what arrives live meanwhile.
	 * Returns 1 when it is current already (@cb will not run), 0 (@cb runs later, never
	 * inside this call, within the broker's timeout), or -ENOTCONN / -ENOMEM (it will not).
	 */
	int (*load)(void *ctx, const char *symbol, qc_broker_load_cb cb, void *arg);
	/*
	 * Optional. Claim @key (an alert's edge: subscription, epoch, seq) of @symbol for this
	 * node, once in the cluster: @cb(@arg, 1) this node has it, 0 another node has it, < 0
	 * nobody knows (Redis did not answer). A node that does not @prefer it (the alert's user
	 * has no session here) claims a moment later, so the user's node wins when it can.
	 * Returns 0 (@cb runs later, never inside this call) or < 0 (it will not).
	 */
	int (*claim)(void *ctx, const char *symbol, const char *key, bool prefer,
	             void (*cb)(void *arg, int won), void *arg);
	void *ctx;
};

/*
 * The inbox broker (cluster_session.c): where a user's inbox entries (direct_message, alert,
 * offline deliveries; SPEC 2.9) are numbered and how they reach the nodes holding the user's
 * sessions. Without one the hub numbers them itself (hub_room.c's qc_hub_inbox_send). With one,
 * an entry goes to append(): one step in Redis counts the user's sessions in the whole cluster
 * (live or suspended, on any node), and when there is one gives the entry its inbox seq, logs
 * it under the inbox's epoch and delivers it to every node holding a session of the user, this
 * one included, through qc_hub_inbox_entry(). The hub tells it where its sessions are
 * (session()), so that they count, their nodes listen, and their records (what a resume on
 * another node rebuilds) are in Redis; lookup() reads a record back.
 */

/*
 * The verdict on one appended entry: @sessions > 0 sessions of the user in the cluster (the
 * entry has inbox seq @seq), 0 none (nothing was logged: the offline queue's turn), or
 * -ENOTCONN / -EIO (nothing is known).
 */
typedef void (*qc_inbox_append_cb)(void *arg, int sessions, uint64_t seq);

/*
 * absent()'s answer for one batch of the users asked: rc 0 and the @n of them (borrowed for
 * the call) that have no session, live or suspended, on any node; or rc -ENOTCONN / -EIO and
 * the whole batch (nothing is known of them).
 */
typedef void (*qc_inbox_absent_cb)(void *arg, int rc, const char *const *users, size_t n);

enum qc_session_state {
	QC_SESSION_GONE = 0,
	QC_SESSION_LIVE = 1,
	QC_SESSION_SUSPENDED = 2,
};

/*
 * What a lookup found (resume on another node, SPEC 2.9): @status 1 the record @rec (borrowed:
 * {"v","pv","rooms","streams",...} as qc_hub_session_record() made it) with @user's inbox in
 * Redis at @inbox_last of @inbox_epoch ("" when it has none) and its entries after the seq
 * asked for (@entries: [[seq, name, data], ...], oldest first, borrowed); 0 no such record;
 * negative (-ENOTCONN, -EIO): Redis did not answer.
 */
typedef void (*qc_session_found_cb)(void *arg, int status, json_t *rec, const char *inbox_epoch,
                                    uint64_t inbox_last, json_t *entries);

struct qc_inbox_broker {
	/*
	 * Event @name with @data (borrowed) for @user. 0: @cb (may be NULL) runs later, never
	 * inside this call; -ENOTCONN or -ENOSPC: it will not run.
	 */
	int (*append)(void *ctx, const char *user, const char *name, json_t *data,
	              qc_inbox_append_cb cb, void *arg);
	/*
	 * Session @session_id of @user (connection @conn_id) is live here, suspended here, or
	 * gone from here; LIVE and SUSPENDED also say that its record changed (it is read with
	 * qc_hub_session_record() when it is written, at most every few milliseconds). @take: it
	 * was resumed here from another node's record, which becomes this node's.
	 */
	void (*session)(void *ctx, const char *user, const char *session_id, uint64_t conn_id,
	                enum qc_session_state state, bool take);
	/*
	 * The record of session @session_id of @user, and @user's inbox entries after @inbox_since
	 * (-1: none wanted). 0: @cb runs later; else it will not run.
	 */
	int (*lookup)(void *ctx, const char *user, const char *session_id, int64_t inbox_since,
	              qc_session_found_cb cb, void *arg);
	/*
	 * Offline messages for @user were just stored (the store's shared rows): the nodes holding
	 * a session of the user take them (qc_hub_offline_claim), in case it came back meanwhile.
	 */
	void (*poke)(void *ctx, const char *user);
	/*
	 * Which of @users (@n) have no session anywhere in the cluster: @cb runs once per batch
	 * sent, later, never inside this call. Returns the number of batches sent; the users of a
	 * batch that could not be sent are marked in @unsent (@n flags) and get no answer.
	 */
	size_t (*absent)(void *ctx, const char *const *users, size_t n, qc_inbox_absent_cb cb,
	                 void *arg, bool *unsent);
	void *ctx;
};

/*
 * The room broker (cluster mode; cluster_room.c): where room events are numbered. The hub
 * hands each event (an opaque payload it made) to append(); the broker gives it the room's
 * next seq and the room log's epoch, logs it and delivers it to every node that watches the
 * room, this one included, through qc_hub_room_broker_event(). read() gives the room log's
 * position and, after @since, its newest entries (at most rooms.history_size).
 */

/* append()'s answer: 0 with the event's @seq, or -ENOTCONN / -EIO (not appended). */
typedef void (*qc_room_append_cb)(void *arg, int rc, uint64_t seq);

/* One logged room event for read(): its seq and the payload append() was given. */
struct qc_room_entry {
	uint64_t seq;
	const char *payload;
	size_t len;
};

/*
 * read()'s answer: 0 with the log's @seq and @epoch and @n entries, newest first (all
 * borrowed for the call), or -ENOTCONN / -EIO.
 */
typedef void (*qc_room_read_cb)(void *arg, int rc, uint64_t seq, const char *epoch,
                                const struct qc_room_entry *entries, size_t n);

/* presence()'s answer: 0 with @n distinct user ids (borrowed for the call), or -ENOTCONN / -EIO. */
typedef void (*qc_room_presence_cb)(void *arg, int rc, const char *const *users, size_t n);

struct qc_room_broker {
	/* 0: @cb runs later (never inside this call); -ENOTCONN or -ENOSPC: it will not run */
	int (*append)(void *ctx, const char *room, const char *payload, size_t len,
	              qc_room_append_cb cb, void *arg);
	/* as append(); @since UINT64_MAX: the position only */
	int (*read)(void *ctx, const char *room, uint64_t since, qc_room_read_cb cb, void *arg);
	/* this node has a local member of @room now (called on every join) */
	void (*watch)(void *ctx, const char *room);
	/*
	 * send @payload (a committed change of created rooms) to every node, this one included,
	 * through qc_hub_room_announced(); as append() (@cb's seq unused)
	 */
	int (*announce)(void *ctx, const char *payload, size_t len, qc_room_append_cb cb,
	                void *arg);
	/*
	 * capacity: take a place for @user among @room's users (at most @cap; @known, a JSON
	 * array of the members this node knows, seeds the count when Redis has none); @cb's seq
	 * is 1 when the user is in, 0 when the room is full. As append().
	 */
	int (*admit)(void *ctx, const char *room, const char *user, uint32_t cap, const char *known,
	             qc_room_append_cb cb, void *arg);
	/* give @user's place back (NULL: every place of @room), unanswered */
	void (*release)(void *ctx, const char *room, const char *user);
	/*
	 * presence: the users with a connection in @room on any live node (this one's as
	 * qc_hub_room_local_users() gave them to the broker). As append().
	 */
	int (*presence)(void *ctx, const char *room, qc_room_presence_cb cb, void *arg);
	/*
	 * Optional. Apply every change of created rooms announced until now (read from the log,
	 * not only from the channel: a change committed on another node just before may still
	 * be on its way here), then @cb(@arg, 0), or -ENOTCONN / -EIO when the log could not be
	 * read. 0: @cb runs later (never inside this call); < 0: it will not run.
	 */
	int (*settle)(void *ctx, void (*cb)(void *arg, int rc), void *arg);
	void *ctx;
};

#endif
