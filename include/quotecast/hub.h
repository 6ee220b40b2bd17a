/*
 * hub: the domain layer. Owns the connection table, the room index, the counters and the
 * protocol handlers; routes every message and enforces the limits. It never touches a socket:
 * it asks the transport (ws.c) to make a connection writeable or to close it, and the transport
 * drains each connection's outq.
 */
#ifndef QC_HUB_H
#define QC_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "quotecast/codec.h"
#include "quotecast/config.h"
#include "quotecast/conn.h"
#include "quotecast/lag.h"
#include "quotecast/store.h"

struct qc_hub;
struct qc_msg;

/* What the hub asks of the transport. Both calls are asynchronous and cheap. */
struct qc_transport {
	/* the connection has output queued: call back when its socket is writeable */
	void (*want_write)(void *ctx, struct qc_conn *c);
	/* c->closing and c->close_code are set: close it from its own writeable callback */
	void (*close)(void *ctx, struct qc_conn *c);
	void *ctx;
	/*
	 * optional: the client came back on another socket (a Socket.IO reconnect presenting the
	 * pid of a session whose old socket has not closed yet): let go of c->transport (it is
	 * closed without telling the hub) and set it to NULL
	 */
	void (*abandon)(void *ctx, struct qc_conn *c);
	/*
	 * optional: a resume request (SPEC 2.9): the suspended session @to takes over @from's
	 * socket, and @from (discarded by the hub right after) must never be called back again
	 */
	void (*rebind)(void *ctx, struct qc_conn *from, struct qc_conn *to);
	/*
	 * optional: call qc_hub_rate_fire() in @delay_us microseconds (0: at once, in a later
	 * callback), replacing any earlier request: max_hz updates that are due then
	 */
	void (*wake)(void *ctx, int64_t delay_us);
};

/* conn->closing */
#define QC_CLOSE_AFTER_DRAIN 1 /* send what is queued, then close */
#define QC_CLOSE_NOW         2 /* drop what is queued and close */

/*
 * The bounds of SPEC section 7 whose refusals are counted: stats "limits": {"refused": {key: n}},
 * keyed by the setting that bit (qc_limit_name()). A refusal's message names the same key.
 */
enum qc_limit {
	QC_LIM_MAX_CONNECTIONS = 0,    /* limits.max_connections */
	QC_LIM_CONNECTIONS_PER_USER,   /* limits.max_connections_per_user */
	QC_LIM_CONNECTIONS_PER_IP,     /* limits.max_connections_per_ip */
	QC_LIM_PUBLISHERS,             /* limits.max_publishers */
	QC_LIM_PUBLISHER_RATE,         /* limits.publisher_rate_per_s */
	QC_LIM_MAX_SYMBOLS,            /* streams.max_symbols */
	QC_LIM_ROOMS_PER_CONNECTION,   /* limits.max_rooms_per_connection */
	QC_LIM_STREAMS_PER_CONNECTION, /* limits.max_streams_per_connection */
	QC_LIM_ROOMS_PER_OWNER,        /* rooms.max_per_owner */
	QC_LIM_MEMBERS_PER_ROOM,       /* rooms.max_members */
	QC_LIM_PASSWORD_ATTEMPTS,      /* rooms.password_attempts */
	QC_LIM_SUBSCRIPTIONS_PER_USER, /* subscriptions.max_per_user */
	QC_LIM_SUSPENDED,              /* sessions.max_suspended */
	QC_LIM_OFFLINE_PER_USER,       /* offline.max_per_user */
	QC_LIM_OFFLINE_TOTAL,          /* offline.max_total_bytes */
	QC_LIM_SUBSCRIBE_ONLY,         /* streams.max_subscribe_only */
	QC_LIM_SUBSCRIPTIONS_TOTAL,    /* subscriptions.max_total */
	QC_LIM_ROOMS_TOTAL,            /* rooms.max_total */
	QC_LIM_PASSWORD_HASHES,        /* rooms.password_hashes_per_s */
	QC_LIM_SESSIONS_PER_USER,      /* sessions.max_per_user */
	QC_LIM_SESSION_BYTES,          /* sessions.max_buffered_bytes */
	QC_LIM_HTTP_CONNECTIONS,       /* limits.max_http_connections */
	QC_LIM_CLUSTER_INFLIGHT,       /* cluster.max_inflight */
	QC_LIM__COUNT
};

/** qc_limit_name() - the setting's key, "rooms.max_per_owner" (static). */
const char *qc_limit_name(enum qc_limit l);

/* Counters: the hot path increments, /api/stats renders. */
struct qc_stats {
	int64_t started_ms;
	uint64_t accepted_total;
	uint64_t closed_total;
	uint64_t rejected_total;
	uint32_t peak;
	uint64_t rooms_created;
	uint64_t rooms_deleted;
	uint64_t join_events;
	uint64_t leave_events;
	uint64_t msgs_in;
	uint64_t msgs_out;
	uint64_t bad_messages;
	uint64_t rate_limited;
	uint64_t slow_consumer_closes;
	uint64_t ticks_published; /* offered */
	uint64_t ticks_accepted;
	uint64_t ticks_duplicate;
	uint64_t ticks_stale;
	uint64_t ticks_conflated;   /* queued ticks merged away */
	uint64_t ticks_rate_merged; /* ticks merged into a pending max_hz update */
	uint64_t tick_deliveries;   /* stream_data frames queued to subscribers */
	uint64_t resumed;
	uint64_t expired;
	uint64_t replayed;       /* buffered messages sent on resume */
	uint64_t buffer_dropped; /* buffered messages dropped (a session buffer was full) */
	uint64_t offline_delivered;
	uint64_t offline_evicted;
	uint64_t refused[QC_LIM__COUNT]; /* by enum qc_limit */
};

/** qc_hub_new() - borrows @cfg (must outlive the hub), copies @t. NULL on ENOMEM. */
struct qc_hub *qc_hub_new(const struct qc_config *cfg, const struct qc_transport *t);
void qc_hub_free(struct qc_hub *h);

/** qc_hub_set_event_loop() - the loop actually running, for the stats ("libuv", "poll"). */
void qc_hub_set_event_loop(struct qc_hub *h, const char *name);

/**
 * qc_hub_admit() - may one more connection be accepted, besides the hub's live ones and the
 * @outside ones the transport holds that are not in the hub yet (Socket.IO handshakes)?
 * Counts a refusal in rejected_total (and limits.refused). Returns 0, -EBUSY
 * (limits.max_connections reached) or -ESHUTDOWN (shutting down).
 */
int qc_hub_admit(struct qc_hub *h, uint32_t outside);

/** qc_hub_reject() - count a connection refused before it existed (bad token ...). */
void qc_hub_reject(struct qc_hub *h);

/** qc_hub_refused() - count one refusal by limit @l (stats "limits.refused"). */
void qc_hub_refused(struct qc_hub *h, enum qc_limit l);

/**
 * qc_hub_open() - a new connection whose transport storage @c is zeroed except for user_id,
 * roles, enc, batch and transport. Indexes it and queues the session event.
 * Returns 0 or a negative errno (the transport then closes it with 1011).
 */
int qc_hub_open(struct qc_hub *h, struct qc_conn *c);

/* A client's position in its user's inbox log (SPEC 2.9), given on the upgrade. */
struct qc_inbox_pos {
	uint64_t seq;
	const char *epoch; /* NULL: none given (nothing is read back) */
};

/**
 * qc_hub_open_at() - qc_hub_open() for a client that presented its inbox position @inbox
 * (borrowed, may be NULL): the session event carries an "inbox" report and the log's entries
 * after the position follow it, before what waited offline.
 */
int qc_hub_open_at(struct qc_hub *h, struct qc_conn *c, const struct qc_inbox_pos *inbox);

/**
 * qc_hub_open_resume() - qc_hub_open_at() for a ?resume=@token that qc_hub_resume() did not
 * find here. In a cluster the session's record is looked up in Redis (SPEC 2.10): the
 * connection is indexed now and gets, once Redis has answered, the resumed session (rooms
 * rejoined, streams re-subscribed, the inbox read back from @inbox) or a fresh session as
 * qc_hub_open_at() would have given. On one node it is qc_hub_open_at().
 */
int qc_hub_open_resume(struct qc_hub *h, struct qc_conn *c, const char *token,
                       const struct qc_inbox_pos *inbox);

/**
 * qc_hub_closed() - the connection's socket is gone. Its session is suspended for
 * sessions.ttl_s (rooms, streams and filters kept, messages buffered) or, with no TTL or
 * while shutting down, it leaves every index and @c is freed. Either way the caller must not
 * touch @c again.
 */
void qc_hub_closed(struct qc_hub *h, struct qc_conn *c);

/** qc_hub_rx() - one complete client message (@binary: it came in a binary frame). */
void qc_hub_rx(struct qc_hub *h, struct qc_conn *c, const char *buf, size_t len, bool binary);

/** qc_hub_close() - ask the transport to close @c with @code (1000-4999); idempotent. */
void qc_hub_close(struct qc_hub *h, struct qc_conn *c, uint16_t code, int how);

/**
 * qc_hub_send() - queue @m (a reference is taken) for @c, enforcing max_send_queue_bytes.
 * Returns 0, or -EPIPE when the connection is closing or was closed for it.
 */
int qc_hub_send(struct qc_hub *h, struct qc_conn *c, struct qc_msg *m);

/**
 * qc_hub_broadcast() - POST /api/broadcast. @body is the request document (borrowed).
 * On success returns QC_OK and *@out the answer document; on failure an error and a static
 * message in *@msg.
 */
enum qc_err qc_hub_broadcast(struct qc_hub *h, json_t *body, json_t **out, const char **msg);

/**
 * qc_hub_publish() - POST /api/publish: one tick, an array of ticks or {"ticks":[...]}
 * (borrowed). All or nothing: the first malformed tick refuses the whole batch. On success
 * *@out is {"accepted","duplicates","stale"}.
 */
enum qc_err qc_hub_publish(struct qc_hub *h, json_t *doc, json_t **out, const char **msg);

/**
 * qc_hub_publish_text() - the same from the body's @len bytes of text: read by the ingest
 * scanner (ingest.h) without a jansson tree when it can, else parsed (BAD_JSON "body is not
 * valid JSON" when it is not JSON).
 */
enum qc_err qc_hub_publish_text(struct qc_hub *h, const char *body, size_t len, json_t **out,
                                const char **msg);

/** qc_hub_demo_start() - start the demo feed when demo_feed.enabled. 0 or -ENOMEM. */
int qc_hub_demo_start(struct qc_hub *h);

/**
 * qc_hub_demo_tick() - publish the demo ticks now due; returns the milliseconds until the
 * next call should happen, or 0 when the feed is off.
 */
uint32_t qc_hub_demo_tick(struct qc_hub *h);

/**
 * qc_hub_sio_written() - the transport wrote some of @c's queue: a recovering Socket.IO
 * session's history (what it was written) is held to its bound. No-op for others.
 */
void qc_hub_sio_written(struct qc_hub *h, struct qc_conn *c);

/**
 * qc_hub_sio_resume() - Socket.IO connection state recovery: a CONNECT whose @auth (borrowed)
 * carries a pid and the client's last offset. When the pid names a suspended Socket.IO session
 * of @fresh's user that still holds everything after that offset, it takes over @fresh's
 * transport and queue: the CONNECT answer (same sid and pid), its session event, everything
 * after the offset, then live data. Returns it (the hub owns it; @fresh stays the caller's, to
 * free, its queue emptied). NULL otherwise: the caller opens @fresh as a new session (a named
 * session that could not be recovered has ended).
 */
struct qc_conn *qc_hub_sio_resume(struct qc_hub *h, struct qc_conn *fresh, json_t *auth);

/**
 * qc_hub_resume() - the suspended session named by resume @token, taken over by a new
 * transport @transport, when the token is valid, unexpired and belongs to @user_id: its
 * session event (resumed, with a new token) is queued, then its buffered messages and missed
 * ticks are replayed through qc_hub_refill(). Until the session event has left, the token used
 * here still resumes the session if this connection fails. NULL otherwise (the caller then
 * opens a fresh session). The hub keeps owning the returned connection.
 */
struct qc_conn *qc_hub_resume(struct qc_hub *h, const char *token, const char *user_id,
                              uint32_t roles, void *transport);

/* What a resume's replay puts in a connection's queue at a time (qc_hub_refill). */
#define QC_REPLAY_CHUNK 65536

/**
 * qc_hub_refill() - the transport wrote from @c's queue: top it up from a resume's replay (up
 * to QC_REPLAY_CHUNK bytes queued), so that a replay leaves as fast as the socket takes it and
 * never counts against limits.max_send_queue_bytes. Returns true when it queued something.
 */
bool qc_hub_refill(struct qc_hub *h, struct qc_conn *c);

/**
 * qc_hub_expire() - end suspended sessions whose time is up, close (4001, no resume) live
 * connections whose JWT has expired, and free streams idle for streams.idle_ttl_s; call about
 * once a second.
 */
void qc_hub_expire(struct qc_hub *h);

/**
 * qc_hub_set_clock() - the steady clock (milliseconds) that the idle-stream TTL and the
 * max_hz timing read, for tests; NULL: CLOCK_MONOTONIC (the default).
 */
void qc_hub_set_clock(struct qc_hub *h, int64_t (*now_ms)(void *ctx), void *ctx);

/**
 * qc_hub_rate_fire() - queue the pending max_hz updates whose interval has run out, and ask
 * the transport (wake) for the next one due. Called by the transport when a wake comes due;
 * harmless at any other time (nothing due, nothing sent).
 */
void qc_hub_rate_fire(struct qc_hub *h);

/**
 * qc_hub_set_store() - persist through @s (copied) from now on. Without it the hub keeps
 * everything in memory only.
 */
void qc_hub_set_store(struct qc_hub *h, const struct qc_store *s);

/** A blocking query for qc_hub_load(): rows as in qc_store_cb (new reference); 0 or -1. */
typedef int (*qc_load_query_fn)(void *ctx, const char *sql, json_t **rows, char *err,
                                size_t errlen);

/**
 * qc_hub_load() - at start-up, before any connection: load the created rooms, their members,
 * the subscriptions with their filters and the undelivered offline messages and alerts.
 * Returns 0 or -1 with a message in @err.
 */
int qc_hub_load(struct qc_hub *h, qc_load_query_fn query, void *ctx, char *err, size_t errlen);

/** qc_hub_stats() - the SPEC section 4 document (new reference). */
json_t *qc_hub_stats(struct qc_hub *h);

/**
 * qc_hub_connections() - the lag view (GET /api/connections): {"connections":[...],"total":N},
 * the first @limit of this node's live connections in @sort's order (lag.h), and how many
 * live connections there are. New reference, or NULL on ENOMEM.
 */
json_t *qc_hub_connections(struct qc_hub *h, enum qc_lag_sort sort, uint32_t limit);

/** qc_hub_store_state() - for /readyz: true when ready; *@reason otherwise. */
bool qc_hub_ready(struct qc_hub *h, const char **reason);

/*
 * What the hub asks of the cluster (SPEC 2.10; cluster.c): its block in the stats and whether
 * it lets the node be ready. Unset (a single node): no "cluster" block, always ready.
 */
struct qc_cluster_ops {
	json_t *(*stats)(void *ctx);                   /* the "cluster" block, new reference */
	bool (*ready)(void *ctx, const char **reason); /* false with a reason while Redis is down */
	void *ctx;
};

struct qc_broker;

/* Not an error: the answer comes later (durable requests, publishes through the broker). */
#ifndef QC_ASYNC
#define QC_ASYNC QC_E__COUNT
#endif

/** qc_hub_set_broker() - number and spread ticks through @b (copied) from now on (broker.h). */
void qc_hub_set_broker(struct qc_hub *h, const struct qc_broker *b);

/**
 * qc_hub_broker_tick() - a tick the broker numbered @seq in the life @epoch of its log:
 * applied to the local stream of @symbol (made when missing: the broker hands over only what
 * this node watches or loads) and, unless it is @history (the log read back when this node
 * began to watch the symbol: qc_hub_broker_loaded() follows), fanned out to its local
 * subscribers. A @seq the stream has already is skipped; another @epoch restarts the stream's
 * log first. @data borrowed.
 */
void qc_hub_broker_tick(struct qc_hub *h, const char *symbol, const char *epoch, json_t *data,
                        const char *message_id, uint64_t seq, int64_t timestamp, bool history);

/**
 * qc_hub_broker_loaded() - the history of @symbol is in its local stream: its subscribers that
 * have not had all of it (a persisted subscription attached, a subscribe that did not wait) get
 * the snapshot, or what followed their last tick.
 */
void qc_hub_broker_loaded(struct qc_hub *h, const char *symbol);

/** qc_hub_stream_watched() - whether this node has a local subscriber of @symbol. */
bool qc_hub_stream_watched(struct qc_hub *h, const char *symbol);

/**
 * The answer to a publish that went through the broker: @e with @out (stolen; QC_OK) or @emsg
 * (valid during the call).
 */
typedef void (*qc_publish_done_fn)(void *arg, enum qc_err e, const char *emsg, json_t *out);

/**
 * qc_hub_publish_async() - qc_hub_publish() that may wait for the broker: QC_OK with *@out
 * (no broker: answered now), QC_ASYNC (@done will run once, later), or an error now (@done
 * will not run).
 */
enum qc_err qc_hub_publish_async(struct qc_hub *h, json_t *doc, qc_publish_done_fn done, void *arg,
                                 json_t **out, const char **emsg);

/**
 * qc_hub_publish_text_async() - qc_hub_publish_text() that may wait for the broker, answering
 * as qc_hub_publish_async() does. The scanner's batch goes to the broker as it does to the
 * streams (each tick's compact data as the tree the broker sends on).
 */
enum qc_err qc_hub_publish_text_async(struct qc_hub *h, const char *body, size_t len,
                                      qc_publish_done_fn done, void *arg, json_t **out,
                                      const char **emsg);

/**
 * qc_hub_broadcast_async() - qc_hub_broadcast() whose answer may wait for the inbox broker
 * (to_users in cluster mode), answering as qc_hub_publish_async() does.
 */
enum qc_err qc_hub_broadcast_async(struct qc_hub *h, json_t *body, qc_publish_done_fn done,
                                   void *arg, json_t **out, const char **msg);

struct qc_inbox_broker;

/** qc_hub_set_inbox_broker() - number and spread inbox entries through @b (copied; broker.h). */
void qc_hub_set_inbox_broker(struct qc_hub *h, const struct qc_inbox_broker *b);

/**
 * qc_hub_inbox_entry() - an entry of @user's inbox that the inbox broker numbered @seq in
 * @epoch (@data borrowed): appended to this node's copy of the log and sent to the user's
 * sessions here, once. Returns 0, or when entries before it are missing here the seq this
 * node's copy has got to: the caller reads the log in Redis back from there and hands the
 * entries in order with @fill (then a hole means the log in Redis lost them).
 */
uint64_t qc_hub_inbox_entry(struct qc_hub *h, const char *user, const char *epoch, uint64_t seq,
                            const char *name, json_t *data, bool fill);

/**
 * qc_hub_inbox_base() - @user's inbox in Redis is at @seq of @epoch: where this node's copy
 * starts when it has had no entry yet.
 */
void qc_hub_inbox_base(struct qc_hub *h, const char *user, const char *epoch, uint64_t seq);

/**
 * qc_hub_session_record() - what a resume on another node needs of the session of connection
 * @conn_id (new reference): {user, v, pv (the SHA-256 of its current and previous secret),
 * rooms, streams: {symbol: fields}}; NULL when there is none (gone, not native).
 */
json_t *qc_hub_session_record(struct qc_hub *h, uint64_t conn_id);

/**
 * qc_hub_session_replaced() - session @sid was resumed on another node: its connection here is
 * closed (1000), or its suspended record dropped, and nothing of it is written to Redis again.
 */
void qc_hub_session_replaced(struct qc_hub *h, const char *sid);

/**
 * qc_hub_offline_claim() - (cluster mode) if @user has a session here, take what waits for the
 * user in the store's offline queue and send it (another node stored it just now).
 */
void qc_hub_offline_claim(struct qc_hub *h, const char *user);

struct qc_room_broker;

/** qc_hub_set_room_broker() - number and spread room events through @b (copied; broker.h). */
void qc_hub_set_room_broker(struct qc_hub *h, const struct qc_room_broker *b);

/**
 * qc_hub_room_broker_event() - room event @seq of the log named @epoch (@payload as the hub
 * gave it to append()): applied to @room's local log and fanned out to its local members, if
 * this node has any. An event after a gap in the log's seqs (a channel message lost) waits
 * while the log is read back over the gap with read(); so do those after it.
 */
void qc_hub_room_broker_event(struct qc_hub *h, const char *room, uint64_t seq, const char *epoch,
                              const char *payload, size_t len);

/**
 * qc_hub_room_catch_up() - the room's channel was resubscribed (its link was down): what its
 * log got meanwhile is read back and applied, as after a gap.
 */
void qc_hub_room_catch_up(struct qc_hub *h, const char *room);

/**
 * qc_hub_room_announced() - a change of created rooms (create, delete, status, members,
 * roles) that a node committed to the shared store and announced: applied to this node's
 * memory, unless this node made it.
 */
void qc_hub_room_announced(struct qc_hub *h, const char *payload, size_t len);

/** qc_hub_room_watched() - whether this node has a local member of @room. */
bool qc_hub_room_watched(struct qc_hub *h, const char *room);

/**
 * qc_hub_room_local_users() - the users with a connection in @room on this node, as a JSON
 * array text (malloc'd), or NULL when there is none (or out of memory).
 */
char *qc_hub_room_local_users(struct qc_hub *h, const char *room);

/** qc_hub_set_cluster() - report @ops (copied) in the stats and in qc_hub_ready(). */
void qc_hub_set_cluster(struct qc_hub *h, const struct qc_cluster_ops *ops);

/**
 * qc_hub_shutdown() - close every connection with 1001 after its queued output; refuse new
 * ones. Returns the number of connections still open.
 */
uint32_t qc_hub_shutdown(struct qc_hub *h);

/** qc_hub_nconns() - live connections (suspended sessions not counted). */
uint32_t qc_hub_nconns(const struct qc_hub *h);

/** qc_now_ms() - wall-clock Unix milliseconds. */
int64_t qc_now_ms(void);

/** qc_random_hex() - @nbytes random bytes from OpenSSL as 2*@nbytes hex chars + NUL. */
int qc_random_hex(char *out, size_t nbytes);

#endif
