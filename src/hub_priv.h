/*
 * hub_priv: what the hub's own files (hub.c, hub_stream.c) share. Not a public header: nothing
 * outside the hub includes it.
 */
#ifndef QC_HUB_PRIV_H
#define QC_HUB_PRIV_H

#include "quotecast/demo.h"
#include "quotecast/broker.h"
#include "quotecast/hub.h"
#include "quotecast/msg.h"
#include "quotecast/room.h"
#include "quotecast/store.h"
#include "quotecast/stream.h"
#include "quotecast/throttle.h"

struct qc_write;
struct qc_inbox_rec;
struct qc_hz;

struct qc_hub {
	const struct qc_config *cfg;
	struct qc_transport t;
	struct qc_conns conns;
	struct qc_rooms *rooms;
	struct qc_streams *streams;
	int64_t (*clock)(void *ctx); /* idle-stream TTL, max_hz (qc_hub_set_clock), or NULL */
	void *clock_ctx;
	/* max_hz (hub_stream.c): subscriptions with a pending update, a min-heap by due time */
	struct qc_hz **rate_heap;
	uint32_t rate_n, rate_cap;
	int64_t rate_wake_us; /* the due time the transport was asked to wake for; 0: none */
	struct qc_demo *demo;
	struct qc_stats st;
	const char *event_loop;
	bool shutting_down;
	uint64_t msg_counter;
	char node[17]; /* random per process: message ids stay unique across processes */
	int statm_fd;
	/* hub_room.c: rooms made with create_room and rooms being made (the store has not answered
	 * yet), in all and by owner; failed room-password attempts; the hash budget */
	uint32_t created_rooms;
	uint32_t rooms_pending;
	struct qc_room_owner *room_owners; /* uthash by user id */
	struct qc_throttle *pw_fails;
	struct qc_rate pw_budget;
	/* suspended sessions: a FIFO by expiry (the TTL is fixed) and a table by session id */
	struct qc_conn *susp_head; /* utlist DL, oldest first (the head's prev is the newest) */
	struct qc_conn *by_session;
	uint32_t nsuspended;
	uint64_t buffered_bytes; /* queued in suspended sessions */
	/* the offline queue (hub_offline.c) */
	struct qc_ouser *ousers; /* uthash by user id: members of created rooms, inboxes */
	struct qc_oentry *ohead; /* every stored offline message, oldest first (utlist DL) */
	uint64_t oseq;           /* the last offline order number given (gseq) */
	uint64_t obytes;         /* what the stored messages weigh (offline.max_total_bytes) */
	uint32_t oentries;       /* stored messages */
	uint32_t oinbox_users;   /* users with a direct message or alert waiting */
	uint64_t offline_queued; /* deliveries waiting: a message counts once per recipient */
	json_t *ogarbage;        /* what the store must forget once it is there (loaded rows) */
	bool loading;            /* qc_hub_load() is running */
	char errbuf[256];        /* the message of the last validation error (single-threaded) */

	/* the durable store (store.url); store.submit is NULL when memory only */
	struct qc_store store;
	struct qc_cluster_ops cluster;  /* SPEC 2.10: stats and readiness; unset on one node */
	struct qc_broker broker;        /* broker.h; unset: ticks are numbered here */
	struct qc_inbox_broker ibroker; /* broker.h; unset: inbox entries are numbered here */
	bool log_rerun; /* a stream request runs again after its logs were loaded (hub_stream.c) */
	const struct qc_cmd *cur; /* the request being handled, for answers that must wait */
	struct qc_psubs *psubs;   /* persisted subscriptions (hub_subs.c) */
	uint64_t store_dropped;   /* writes (offline messages, alerts) given up */
	struct qc_room_broker room_broker; /* broker.h; unset: room events are numbered here */
	bool room_synced_now;       /* a subscribe handled again after its room's log was read */
	bool room_settled_now;      /* ... after the changes of created rooms announced so far were
	                               applied */
	uint64_t room_events_lost;  /* events (joins, kicks, ...) the room broker did not log */
	uint64_t room_events_bad;   /* events from the room broker that did not parse */
	struct room_gap *room_gaps; /* rooms whose logs are read back over a gap (hub_room.c) */
	uint64_t room_gap_reads;    /* such read-backs */
	uint64_t room_gaps_lost;    /* gaps the broker's log no longer covered (a log restarted) */
	bool room_remote;           /* applying another node's room change: no events from here */
	bool room_admitted_now;     /* a subscribe handled again after Redis gave it a place */
	struct qc_write *backlog; /* writes waiting for the store to come back (hub.c, utlist DL) */
	uint32_t nbacklog;
	size_t backlog_bytes;
	bool freeing;

	/* Socket.IO connection state recovery (hub_sio.c) */
	uint64_t sio_offset;        /* the last offset given to an outgoing Socket.IO event */
	uint64_t sio_not_recovered; /* reconnects with a pid that got a fresh session */
	/* the logs of SPEC 2.9 (hub_log.c): rooms' and inboxes', by enum qc_log_kind */
	uint64_t log_ids;
	uint32_t logs[2];
	uint64_t log_entries[2];
	uint64_t log_replayed[2];   /* entries read back (resume, room subscribe with since_seq) */
	uint64_t resumed_positions; /* resume requests with positions that took a session over */
	struct qc_inbox_rec *inboxes; /* with a store: every user's inbox log (hub_inbox.c) */
	uint64_t resume_refused;      /* resume requests refused (unknown token, not first) */
	uint64_t resumed_remote;      /* resumed from a record in Redis (another node's session) */
	uint64_t resume_rooms_lost;   /* rooms such a resume could not rejoin (permissions) */
	uint64_t sessions_replaced;   /* live sessions closed: resumed on another node */
};

/*
 * An outgoing message for many receivers, encoded at most once per encoding (native JSON,
 * Socket.IO), on first use. (Ticks are framed by hub_stream.c from their compact form.)
 */
struct qc_frames {
	json_t *ev;          /* the native message (owned) */
	struct qc_msg *m[2]; /* by enum qc_enc */
	uint8_t kind;
	uint64_t stream_id;
	uint64_t seq;
};

/* The next Socket.IO offset for an event of @kind, or 0 when it carries none (hub.c). */
uint64_t qc_hub_next_offset(struct qc_hub *h, uint8_t kind);

/*
 * A request on @c whose answer waits (h->cur is the request): qc_waiter_answer (a
 * qc_publish_done_fn) answers it once, if @c is still there, and frees it; NULL on ENOMEM.
 */
struct qc_waiter *qc_waiter_new(struct qc_hub *h, struct qc_conn *c);
void qc_waiter_answer(void *arg, enum qc_err e, const char *emsg, json_t *out);
void qc_waiter_free(struct qc_waiter *w);
/* @w's connection, if still live (not suspended nor closing); else NULL. */
struct qc_conn *qc_waiter_conn(struct qc_waiter *w);
/* Handle @w's subscribe again now (its room's log is ready), answering it as usual. */
void qc_waiter_subscribe(struct qc_waiter *w, struct qc_conn *c, const char *room,
                         const char *password, json_t *opts);
/* Handle @w's request (@action with @payload) again now, answering it as usual. */
void qc_waiter_request(struct qc_waiter *w, struct qc_conn *c, const char *action, json_t *payload);

/* Start @f with @ev (stolen; NULL is an encoding failure that every get reports). */
void qc_frames_init(struct qc_frames *f, json_t *ev, uint8_t kind);
/*
 * The frame for @enc (borrowed), built on first use; NULL on ENOMEM. A Socket.IO frame of an
 * event (kind not QC_MSG_CONTROL) takes the next offset when @h recovers Socket.IO sessions.
 */
struct qc_msg *qc_frames_get(struct qc_hub *h, struct qc_frames *f, uint8_t enc);
void qc_frames_release(struct qc_frames *f);
/* Queue @f's frame for @c's encoding. 0 or a negative errno, as qc_hub_send(). */
int qc_hub_send_frames(struct qc_hub *h, struct qc_conn *c, struct qc_frames *f);

/*
 * hub_log.c: a bounded log of events with positions (SPEC 2.9). Entries are encoded once per
 * encoding; their frames carry the log's id (stream_id) and the entry's seq, so a session
 * buffer can tell which log position a queued frame is.
 */
#define QC_EPOCH_LEN 12

enum qc_log_kind {
	QC_LOG_ROOM = 0,
	QC_LOG_INBOX = 1,
};

struct qc_lentry {
	uint64_t seq;
	int64_t at_ms;      /* the hub's steady clock when appended (the TTL) */
	struct qc_frames f; /* the event, with seq and epoch in its data */
	json_t *targets;    /* target_users (an array), or NULL */
	uint64_t exclude;   /* exclude_self: the sending connection's id; 0 = none */
	uint8_t role;       /* target_role; QC_ROLE_NONE = any */
};

struct qc_log {
	struct qc_hub *h;
	uint64_t id; /* unique in the process */
	char epoch[QC_EPOCH_LEN + 1];
	uint64_t last_seq; /* the newest seq given (0: none yet) */
	struct qc_lentry **ring;
	uint32_t cap, head, count;
	uint32_t max;    /* entries kept */
	uint32_t ttl_s;  /* 0: no age bound */
	uint8_t kind;    /* enum qc_log_kind */
	uint8_t unsaved; /* a created room's epoch the store does not have yet (made at load) */
	uint8_t durable; /* an inbox kept in the store: h->inboxes owns it (hub_inbox.c) */
	uint8_t based;   /* an inbox numbered by the inbox broker: its epoch and seq are Redis' */
	uint8_t synced;  /* cluster mode: a room log that follows the broker's (seq, epoch) */
};

/* A log whose next seq follows @last_seq, named @epoch (NULL: a new random one); NULL ENOMEM. */
struct qc_log *qc_log_new(struct qc_hub *h, uint8_t kind, uint32_t max, uint32_t ttl_s,
                          const char *epoch, uint64_t last_seq);
void qc_log_free(struct qc_log *l);
/* Forget every entry: the log is now at @last_seq of @epoch (NULL: the same epoch). */
void qc_log_reset(struct qc_log *l, const char *epoch, uint64_t last_seq);
void qc_log_free_void(void *l);
/*
 * Append event @name with @data (stolen; "seq" and "epoch" are set in it) and its targeting
 * (@targets borrowed). Returns the entry (the log's) or NULL on ENOMEM.
 */
struct qc_lentry *qc_log_append(struct qc_log *l, const char *name, json_t *data, json_t *targets,
                                uint8_t role, uint64_t exclude);
/* At start: the stored entry @seq (ascending) with @data (stolen), @age_ms old. 0 or -ENOMEM. */
int qc_log_load(struct qc_log *l, uint64_t seq, const char *name, json_t *data, json_t *targets,
                uint8_t role, int64_t age_ms);
/*
 * The live fan-out of @e is done: keep its native frame only (its JSON, several times the
 * frame's size, is parsed back from it should another encoding be asked for).
 */
void qc_log_compact(struct qc_lentry *e);
/*
 * Cluster mode: entry @seq (from the broker) of the log named @epoch, appended as
 * qc_log_append() does. Another epoch empties the log and takes its name; a seq already
 * kept is ignored (NULL, 0 in *@dup); a gap empties the log (what is before it cannot be read
 * back). NULL otherwise on ENOMEM.
 */
struct qc_lentry *qc_log_put(struct qc_log *l, uint64_t seq, const char *epoch, const char *name,
                             json_t *data, json_t *targets, uint8_t role, uint64_t exclude,
                             bool *dup);
/*
 * Cluster mode: entry @seq, just before the oldest kept (qc_log_first() - 1), read from the
 * broker. -ERANGE when it is not that one or the log is full, -ENOMEM; @data is stolen.
 */
int qc_log_prepend(struct qc_log *l, uint64_t seq, const char *name, json_t *data, json_t *targets,
                   uint8_t role, uint64_t exclude);
/* The oldest seq kept (last_seq + 1 when empty). */
uint64_t qc_log_first(struct qc_log *l);
/* Whether everything after (@epoch, @since) is still in the log. */
bool qc_log_reaches(struct qc_log *l, const char *epoch, uint64_t since);
/* The @i-th kept entry after seq @since, or NULL. */
struct qc_lentry *qc_log_after(struct qc_log *l, uint64_t since, uint32_t i);

/* The epoch of @s's current life (QC_EPOCH_LEN hex characters and a NUL into @out). */
void qc_hub_stream_epoch(const struct qc_hub *h, const struct qc_stream *s, char *out);

/*
 * Cluster mode: tell the other nodes of room change @op (a qc_durable's announce) committed
 * with @args; @cb runs when Redis has sent it on (0), or could not (-ENOTCONN / -EIO).
 * Returns 0 (@cb will run) or an error (it will not).
 */
int qc_hub_room_announce(struct qc_hub *h, const char *op, json_t *args, qc_room_append_cb cb,
                         void *arg);

/* A handler's answer that is not ready yet (QC_ASYNC, hub.h): see qc_hub_durable. */

/*
 * Apply a committed change to memory. @c is the requester, NULL when it has gone; @args is what
 * the handler prepared; @rows what the statement returned (NULL when memory only). Returns the
 * answer like a handler.
 */
typedef enum qc_err (*qc_commit_fn)(struct qc_hub *h, struct qc_conn *c, json_t *args, json_t *rows,
                                    json_t **data, const char **emsg);

#define QC_DURABLE_PARAMS 12

struct qc_durable {
	const char *sql;
	int nparams;
	const char *params[QC_DURABLE_PARAMS]; /* copied by the store */
	qc_commit_fn commit;
	/*
	 * cluster mode: the room change's name in qc_hub_room_announce(); the answer waits until
	 * the other nodes are told (hub_room.c applies it there with the same commit)
	 */
	const char *announce;
	/* runs after a successful answer is queued (a snapshot after a subscription's answer) */
	void (*after)(struct qc_hub *h, struct qc_conn *c, json_t *args);
	/* optional: runs once when the request is settled, committed or not (a reservation ends) */
	void (*settled)(struct qc_hub *h, json_t *args);
	json_t *args; /* stolen */
};

/*
 * qc_hub_durable() - a request that changes durable state: @d->sql goes to the store and only
 * when it has committed does @d->commit change memory; then the current request (h->cur) is
 * answered. Store down or its queue full: UNAVAILABLE, nothing changes. Memory only: commit
 * runs at once. Always returns QC_ASYNC (the answer is queued here or later).
 */
enum qc_err qc_hub_durable(struct qc_hub *h, struct qc_conn *c, struct qc_durable *d);

/*
 * qc_hub_store_keep() - a write that must not be lost (an offline message, an alert): @sql
 * (static text, repeatable: it may run twice when the store went away mid-statement) with
 * @params (copied). While the store is down it waits in the backlog, in order. @cb gets the
 * final outcome: QC_OK, a SQL error, or UNAVAILABLE only when it was given up (backlog full,
 * shutdown). Never from inside this call unless it fails at once (ENOMEM).
 */
void qc_hub_store_keep(struct qc_hub *h, const char *sql, int n, const char *const *params,
                       qc_store_cb cb, void *arg);
/* An event for @user waiting for its row: the argument of a qc_hub_store_keep() callback. */
struct qc_row_event {
	struct qc_hub *h;
	char user[QC_USER_ID_MAX + 1];
	json_t *ev;
};

/* Takes @ev (dropped too on ENOMEM: NULL). */
struct qc_row_event *qc_row_event_new(struct qc_hub *h, const char *user, json_t *ev);
void qc_row_event_free(struct qc_row_event *w);

/* Bookkeeping (delivered marks, deleted rows): kept the same way, a failure only counted. */
void qc_hub_store_write(struct qc_hub *h, const char *sql, int n, const char *const *params);
/* Send what the backlog holds, while the store takes it (called once a second). */
void qc_hub_store_flush(struct qc_hub *h);

/* Whether a store is configured. */
static inline bool qc_hub_persistent(const struct qc_hub *h)
{
	return h->store.submit != NULL;
}

/* How the hub serialises JSON for the store: compact, numbers as they travel (msg.c) */
#define QC_JSON_DUMP (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* A request handler: QC_OK with *data (may stay NULL), or an error with *emsg. */
typedef enum qc_err (*qc_action_fn)(struct qc_hub *h, struct qc_conn *c, json_t *payload,
                                    json_t **data, const char **emsg);

/* Set the hub's error message from @fmt, point *@emsg at it and return @e. */
enum qc_err qc_hub_fail(struct qc_hub *h, const char **emsg, enum qc_err e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Count a refusal by @l (stats "limits.refused") and fail with LIMIT_EXCEEDED; the message is
 * "<the limit's key>: " followed by @fmt ("rooms.max_per_owner: 100 rooms owned").
 */
enum qc_err qc_hub_limit(struct qc_hub *h, const char **emsg, enum qc_limit l, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Encode @j (stolen, a native message) for @c's encoding and queue it. */
int qc_hub_send_json(struct qc_hub *h, struct qc_conn *c, json_t *j);
/* Answer a request: error or success (@data stolen); @ack_id >= 0 answers a Socket.IO ack. */
void qc_hub_answer(struct qc_hub *h, struct qc_conn *c, const char *request_id,
                   const char *trace_id, int64_t ack_id, enum qc_err e, const char *emsg,
                   json_t *data);

/* hub.c */
json_t *qc_hub_session_event(struct qc_hub *h, struct qc_conn *c, bool resumed, bool recovered,
                             uint32_t replayed);
void qc_hub_destroy(struct qc_hub *h, struct qc_conn *c);

/* @m does not fit in @c's queue: close it with 4008, keeping its session. Returns -EPIPE. */
int qc_hub_slow_consumer(struct qc_hub *h, struct qc_conn *c, struct qc_msg *m);

/* hub_session.c */
/* conn.replaying */
#define QC_REPLAY_ON       1 /* live data waits behind the replay, held to max_send_queue_bytes */
#define QC_REPLAY_BUILDING 2 /* a resume is queueing the replay itself */
int qc_hub_suspend(struct qc_hub *h, struct qc_conn *c);
/* Take suspended @c out of the suspended set (it is resumed, or ends). */
void qc_hub_unsuspend(struct qc_hub *h, struct qc_conn *c);
/*
 * What of @c's queues a resume needs: room messages stay (the unsent part of a replay
 * included, in order), ticks go (streams rewound), the rest is dropped.
 */
void qc_hub_keep_for_resume(struct qc_conn *c);
/* qc_hub_open_at() from the session event on, for @c indexed already (hub.c) */
int qc_hub_open_finish(struct qc_hub *h, struct qc_conn *c, const struct qc_inbox_pos *inbox);
/*
 * ?resume=@token this node does not know (cluster mode, hub_session.c): its record is looked up
 * in Redis; @c (indexed, nothing queued) gets the resumed session, or qc_hub_open_finish()
 * when there is none. 0, or -1 when the lookup could not start (nothing done).
 */
int qc_hub_remote_upgrade(struct qc_hub *h, struct qc_conn *c, const char *token,
                          const struct qc_inbox_pos *inbox);
/* Tell the inbox broker (cluster mode) where session @c is now (hub.c). */
void qc_hub_session_note(struct qc_hub *h, struct qc_conn *c, enum qc_session_state state);
int qc_hub_buffer(struct qc_hub *h, struct qc_conn *c, struct qc_msg *m);
/*
 * A read-back paced like a resume's replay: what is sent between begin and end goes behind
 * what is queued, at the pace the socket takes, never held to max_send_queue_bytes. Returns
 * whether this call began it (pass that to end); a replay under way just takes more.
 */
bool qc_hub_replay_begin(struct qc_hub *h, struct qc_conn *c);
void qc_hub_replay_end(struct qc_hub *h, struct qc_conn *c, bool began);
/* the first request on a connection: {"type":"resume","token","positions"} (SPEC 2.9) */
void qc_hub_resume_request(struct qc_hub *h, struct qc_conn *c, const struct qc_cmd *cmd);
/* @m (not a control message) for @c while a resume's replay is under way: behind the replay */
int qc_hub_replay_push(struct qc_hub *h, struct qc_conn *c, struct qc_msg *m);
void qc_hub_sessions_free(struct qc_hub *h);

/*
 * hub_sio.c: Socket.IO connection state recovery. A Socket.IO session of a hub that recovers
 * them (qc_hub_sio_recovery) has a pid (its session id and secret) and keeps references to the
 * offset-bearing frames queued to it (struct qc_sio_state), live or suspended.
 */
struct qc_sio_state {
	/*
	 * what the session was written (outq.written), then, once its socket is gone, what was
	 * still queued and what came since; oldest first, offsets ascending
	 */
	struct qc_outq hist;
	struct qc_outq late; /* events for it while its socket closes (before it is suspended) */
	uint64_t floor;      /* the newest offset taken out of hist (evicted, or acknowledged) */
	bool broken;         /* hist lost a frame (ENOMEM): nothing can be recovered */
};

/* Whether Socket.IO sessions are recovered (sessions.ttl_s and sessions.buffer_messages). */
bool qc_hub_sio_recovery(const struct qc_hub *h);
/* A new Socket.IO session: its recovery state (0, or -ENOMEM); no-op when not recovering. */
int qc_hub_sio_open(struct qc_hub *h, struct qc_conn *c);
/* @c's pid into @out (QC_SESSION_ID_LEN + QC_SECRET_LEN + 1 bytes); NULL without recovery. */
const char *qc_hub_sio_pid(const struct qc_conn *c, char *out);
/* Keep @m (an offset-bearing frame for @c, suspended or closing) for a reconnect. */
void qc_hub_sio_keep(struct qc_hub *h, struct qc_conn *c, struct qc_msg *m);
/* @c's socket is gone: the events of its queues join hist, in order; the rest goes. */
void qc_hub_sio_drop_queues(struct qc_conn *c);
void qc_hub_sio_suspended(struct qc_hub *h, struct qc_conn *c);
/* What a suspended @c holds (sessions.max_buffered_bytes). */
size_t qc_hub_sio_bytes(const struct qc_conn *c);
void qc_hub_sio_free(struct qc_conn *c);

/*
 * hub_offline.c: the offline queue. A created room's offline log (struct qc_olog, one per
 * room_info) stores each room message once for all its offline members; a member (struct
 * qc_omember, embedded in hub_room.c's member record) has no copy, only a position that the
 * log derives from its user's watermark and the time it joined. Direct messages and alerts go
 * to their user's inbox.
 */
struct qc_olog;
struct qc_ouser;
struct qc_oentry;

struct qc_omember {
	struct qc_olog *log; /* NULL once the log has gone */
	struct qc_ouser *user;
	struct qc_omember *lprev, *lnext; /* the log's members (utlist DL) */
	struct qc_omember *uprev, *unext; /* the user's memberships (utlist DL) */
	uint64_t since; /* the room's log entries up to this order number predate the member */
	uint8_t role;   /* enum qc_role */
};

/* A created room's log (@room is copied); NULL on ENOMEM. */
struct qc_olog *qc_olog_new(struct qc_hub *h, const char *room);
/* The room is gone: what waited in its log is dropped, its members are let go. */
void qc_olog_free(struct qc_olog *log);
/* @user became a member of @log's room with @role at @joined_ms: 0 or -ENOMEM. */
int qc_olog_join(struct qc_olog *log, struct qc_omember *om, const char *user, uint8_t role,
                 int64_t joined_ms);
/* The member leaves (no-op when its log is gone): what waited for it is not its any more. */
void qc_olog_leave(struct qc_omember *om);
void qc_olog_set_role(struct qc_omember *om, uint8_t role);
/*
 * A room message (@data borrowed) sent to the room: stored once when an offline member is
 * among its receivers (@targets: an array of user ids or NULL; @role: QC_ROLE_NONE = any).
 * O(1) in the number of offline members (O(@targets) when they are named).
 */
void qc_olog_append(struct qc_olog *log, json_t *data, json_t *targets, uint8_t role);
/* queue event @name with @data (borrowed) for @user, who has no session now */
void qc_hub_offline_push(struct qc_hub *h, const char *user, const char *name, json_t *data);
/* queue alert event @data (borrowed) whose row exists already (@alert_id) for @user */
void qc_hub_offline_push_alert(struct qc_hub *h, const char *user, const char *alert_id,
                               json_t *data);
/* @c is its user's first session: what waited for the user goes to it, in order */
void qc_hub_offline_online(struct qc_hub *h, struct qc_conn *c);
/* @user's last session has ended */
void qc_hub_offline_gone(struct qc_hub *h, const char *user);
/* shutting down: users with a session are at their newest position (store) */
void qc_hub_offline_shutdown(struct qc_hub *h);
/* the store has just been set: forget what the load found nobody waits for */
void qc_hub_offline_store_ready(struct qc_hub *h);
/* at start, after the rooms: the rows of the offline load queries */
int qc_hub_offline_load(struct qc_hub *h, json_t *entries, json_t *cursors, char *err,
                        size_t errlen);
json_t *qc_hub_offline_stats(struct qc_hub *h);
void qc_hub_offline_free(struct qc_hub *h);

/* hub_room.c */
int qc_hub_rooms_init(struct qc_hub *h);
/* the offline log of created room @room, or NULL */
struct qc_olog *qc_hub_room_log(struct qc_hub *h, const char *room);
void qc_hub_leave_room(struct qc_hub *h, struct qc_conn *c, struct qc_room *room);
/* @opts (borrowed, may be NULL): since_seq and epoch of a read-back (SPEC 2.9) */
enum qc_err qc_hub_subscribe(struct qc_hub *h, struct qc_conn *c, const char *name,
                             const char *password, json_t *opts, json_t **data, const char **emsg);
/* After the subscribe's answer: @c's missed entries of room @name after opts' since_seq */
void qc_hub_room_readback(struct qc_hub *h, struct qc_conn *c, const char *name, json_t *opts);
/* @room's log (made on first use), NULL on ENOMEM */
struct qc_log *qc_hub_room_log_of(struct qc_hub *h, struct qc_room *room);

/*
 * Persisted subscriptions' commits (hub_subs.c): on the node that made the change, and in a
 * cluster on every other node when it is announced (@c NULL, @rows NULL).
 */
enum qc_err qc_psub_commit_create(struct qc_hub *h, struct qc_conn *c, json_t *a, json_t *rows,
                                  json_t **data, const char **e);
enum qc_err qc_psub_commit_update(struct qc_hub *h, struct qc_conn *c, json_t *a, json_t *rows,
                                  json_t **data, const char **e);
enum qc_err qc_psub_commit_delete(struct qc_hub *h, struct qc_conn *c, json_t *a, json_t *rows,
                                  json_t **data, const char **e);

/*
 * Cluster mode, a session rebuilt on this node: make its log of room @name reach back to
 * @opts' since_seq/epoch (a subscribe's; none: its position only) from the broker's, the room
 * held (made if need be, its channel watched) until qc_hub_room_unload(). 0: @done(@arg, rc)
 * runs later; 1: nothing to read (not held); < 0: it cannot be read (not held).
 */
typedef void (*qc_hub_loaded_fn)(void *arg, int rc);
int qc_hub_room_load(struct qc_hub *h, const char *name, json_t *opts, qc_hub_loaded_fn done,
                     void *arg);
void qc_hub_room_unload(struct qc_hub *h, const char *name);
/* whether entry @e of @room's log was addressed to @c */
bool qc_hub_room_addressed(const struct qc_room *room, const struct qc_lentry *e,
                           const struct qc_conn *c);
/* @u's inbox log (made on first use), NULL on ENOMEM */
struct qc_log *qc_hub_inbox(struct qc_hub *h, struct qc_user *u);
/*
 * Event @name with @data (stolen) into @user's inbox log and to every session of the user.
 * Returns the sessions it was queued for (0: the user has none; nothing is kept then).
 */
uint32_t qc_hub_inbox_send(struct qc_hub *h, const char *user, const char *name, json_t *data);

/* ---- durable inboxes (hub_inbox.c) ---- */
/*
 * @user's durable inbox log: the loaded one, or with a store a new one (owned by h->inboxes,
 * durable set); NULL memory only when none was loaded, or on ENOMEM.
 */
struct qc_log *qc_hub_inbox_durable(struct qc_hub *h, const char *user);
/* Entry @e of @user's durable inbox @l goes to the store (repeatable, in order). */
void qc_hub_inbox_persist(struct qc_hub *h, const char *user, struct qc_log *l,
                          const struct qc_lentry *e);
/* at start: the rows of inbox_logs and inbox_history */
int qc_hub_inbox_load(struct qc_hub *h, json_t *logs, json_t *history, char *err, size_t errlen);
void qc_hub_inboxes_free(struct qc_hub *h);
/*
 * A new connection @c that presented an inbox position (@since, @epoch): the inbox's entries
 * after it are queued (a replay, in log order) and c->inbox_seq moves to the log's end. Returns
 * the report {recovered, seq, epoch, replayed} for the session event, NULL on ENOMEM. Call
 * after the session event is queued.
 */
json_t *qc_hub_inbox_report(struct qc_hub *h, struct qc_conn *c, uint64_t since, const char *epoch);
void qc_hub_inbox_readback(struct qc_hub *h, struct qc_conn *c, uint64_t since, const char *epoch);
enum qc_err qc_hub_unsubscribe(struct qc_hub *h, struct qc_conn *c, const char *name, json_t **data,
                               const char **emsg);
enum qc_err qc_hub_room_send(struct qc_hub *h, struct qc_conn *c, json_t *doc, json_t **out,
                             const char **emsg);
json_t *qc_hub_room_json(struct qc_hub *h, struct qc_room *room);
void qc_hub_room_counts(struct qc_hub *h, uint32_t *active, uint64_t *members);
void qc_hub_rooms_teardown(struct qc_hub *h);
/* at start: the rows of rooms and room_members (see qc_hub_load) */
int qc_hub_rooms_load(struct qc_hub *h, json_t *rooms, json_t *members, char *err, size_t errlen);
/* the store has just been set: epochs made at load go to their rooms' rows */
void qc_hub_rooms_store_ready(struct qc_hub *h);
/* at start, after the rooms: the rows of room_history (created rooms' logs, SPEC 2.9) */
int qc_hub_rooms_history_load(struct qc_hub *h, json_t *rooms, json_t *history, char *err,
                              size_t errlen);
enum qc_err qc_act_send_message(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                const char **e);
enum qc_err qc_act_send_to_user(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                const char **e);
enum qc_err qc_act_create_room(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                               const char **e);
enum qc_err qc_act_delete_room(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                               const char **e);
enum qc_err qc_act_get_room(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                            const char **e);
enum qc_err qc_act_list_rooms(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                              const char **e);
enum qc_err qc_act_get_room_members(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                    const char **e);
enum qc_err qc_act_set_room_status(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                   const char **e);
enum qc_err qc_act_add_member(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                              const char **e);
enum qc_err qc_act_remove_member(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                 const char **e);
enum qc_err qc_act_set_member_role(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                   const char **e);

/* hub_subs.c: persisted subscriptions and alerts */
int qc_hub_subs_init(struct qc_hub *h);
void qc_hub_subs_free(struct qc_hub *h);
/* a tick of @s was accepted: evaluate the filters of that symbol (alerts) */
void qc_hub_subs_tick(struct qc_hub *h, struct qc_stream *s);
/* a fresh connection: attach its user's active subscriptions */
void qc_hub_subs_attach(struct qc_hub *h, struct qc_conn *c);
json_t *qc_hub_subs_stats(struct qc_hub *h);
/* at start: the rows of subscriptions, filter_expressions and filter_conditions */
int qc_hub_subs_load(struct qc_hub *h, json_t *subs, json_t *groups, json_t *conds, char *err,
                     size_t errlen);
enum qc_err qc_act_create_subscription(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                       const char **e);
enum qc_err qc_act_update_subscription(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                       const char **e);
enum qc_err qc_act_delete_subscription(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                       const char **e);
enum qc_err qc_act_list_subscriptions(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                      const char **e);
enum qc_err qc_act_list_alerts(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                               const char **e);
enum qc_err qc_act_ack_alert(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                             const char **e);

/* hub_stream.c */
/* read payload "fields" into @out (QC_FIELDS_MAX); the count, or -1 with *@emsg */
int qc_hub_read_fields(struct qc_hub *h, json_t *p, const char **out, const char **emsg);
/*
 * subscribe @c to @symbol with @fields and @max_hz (0: unlimited; a snapshot queued), or set
 * both if it is already
 */
int qc_hub_stream_attach(struct qc_hub *h, struct qc_conn *c, const char *symbol,
                         const char *const *fields, size_t nfields, double max_hz);
/* as qc_hub_stream_attach(), with the snapshot queued only when @snapshot */
int qc_hub_stream_attach_ex(struct qc_hub *h, struct qc_conn *c, const char *symbol,
                            const char *const *fields, size_t nfields, double max_hz,
                            bool snapshot);
/*
 * read payload "max_hz" into *@out (absent, null or 0: 0 = unlimited; else a number in
 * (0, QC_MAX_HZ]); QC_OK or BAD_REQUEST with *@emsg naming max_hz
 */
enum qc_err qc_hub_read_max_hz(struct qc_hub *h, json_t *p, double *out, const char **emsg);
/* @sub's max_hz (0: unlimited) */
double qc_hub_sub_max_hz(const struct qc_sub *sub);
#define QC_MAX_HZ 1000
int qc_hub_streams_init(struct qc_hub *h);
void qc_hub_streams_free(struct qc_hub *h);
void qc_hub_streams_closed(struct qc_hub *h, struct qc_conn *c);
/* @c is suspended: its max_hz updates pending are dropped (a resume reads the ring) */
void qc_hub_streams_suspended(struct qc_hub *h, struct qc_conn *c);
/* free streams idle for streams.idle_ttl_s (from qc_hub_expire) */
void qc_hub_streams_sweep(struct qc_hub *h);
json_t *qc_hub_streaming_stats(struct qc_hub *h);
enum qc_err qc_act_subscribe_stream(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                    const char **e);
bool qc_hub_stream_catch_up(struct qc_hub *h, struct qc_conn *c, struct qc_sub *sub, bool snapshot,
                            bool has_since, uint64_t since);
bool qc_hub_stream_recoverable(const struct qc_stream *s, uint64_t since);
void qc_after_subscribe_stream(struct qc_hub *h, struct qc_conn *c, json_t *p);
enum qc_err qc_act_unsubscribe_stream(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                      const char **e);
enum qc_err qc_act_update_filter(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                 const char **e);
enum qc_err qc_act_get_buffered(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                const char **e);
enum qc_err qc_act_get_market_data(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                   const char **e);
/* @p NULL: publish the batch qc_hub_scan_publish() read */
enum qc_err qc_act_publish(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                           const char **e);
/*
 * A publisher's frame: when it is a plain publish_market_data request that the ingest scanner
 * reads (ingest.h), fill @cmd for it (payload NULL, ids borrowed from the batch) and return
 * true; false: parse it as any frame.
 */
bool qc_hub_scan_publish(struct qc_hub *h, const char *buf, size_t len, struct qc_cmd *cmd);

/* hub_lag.c: the lag view as an admin action (role admin; payload sort?, limit?) */
enum qc_err qc_act_get_connections(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                   const char **e);

#endif
