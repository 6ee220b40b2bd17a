/*
 * conn: the connection record and the connection table.
 *
 * struct qc_conn is allocated by the transport when a connection is established and owned by
 * the hub from qc_hub_open()/qc_hub_resume() on: it outlives its socket while its session is
 * suspended, and the hub frees it. The table never allocates or frees one. It indexes connections
 * by id and by user (every connection of a user). Removing a connection leaves no trace in the
 * table.
 */
#ifndef QC_CONN_H
#define QC_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uthash.h>

#include "quotecast/outq.h"
#include "quotecast/ratelimit.h"
#include "quotecast/room.h"
#include "quotecast/stream.h"

#define QC_USER_ID_MAX    64 /* bytes without NUL */
#define QC_SESSION_ID_LEN 32 /* hex characters */
#define QC_SECRET_LEN     32 /* hex characters of the secret half of a resume token */

struct qc_user;
struct qc_sio_state;

enum qc_enc {
	QC_ENC_NATIVE = 0, /* the native JSON protocol, /ws */
	QC_ENC_SIO = 1,    /* Socket.IO v5 over Engine.IO v4, /socket.io/ */
};

struct qc_conn {
	uint64_t id; /* unique in this process, never reused */
	char session_id[QC_SESSION_ID_LEN + 1];
	char secret[QC_SECRET_LEN + 1]; /* resume token = session_id + secret */
	char user_id[QC_USER_ID_MAX + 1];
	uint32_t roles;  /* QC_ROLE_* bits */
	uint8_t enc;     /* enum qc_enc */
	uint8_t batch;   /* ?batch=1 */
	uint8_t closing; /* a close was requested; nothing more is queued */
	uint8_t in_table;
	uint8_t close_sent; /* the close frame is out; waiting for the peer's */
	uint8_t suspended;  /* no transport: the session waits for a resume (sessions.ttl_s) */
	uint8_t dropped;    /* the session buffer lost messages: a resume is not complete */
	uint8_t no_resume;  /* closed for a reason a resume must not undo (expired token) */
	uint8_t requested;  /* it has made a request: a resume request is no longer taken */
	uint8_t publisher;  /* on the quotecast-publisher subprotocol (set by the transport) */
	uint8_t resuming;   /* a resume waits for the session's record in Redis (cluster mode) */
	uint16_t close_code;
	uint32_t bad_messages;
	int64_t connected_at_ms;
	int64_t
	    token_exp_ms; /* auth mode jwt: when the token expires (closed with 4001); 0 = never */
	int64_t last_activity_ms;
	int64_t sio_ping_ms; /* Socket.IO: when the unanswered Engine.IO ping went out; 0 = none */
	int64_t sio_next_ping_ms;
	uint64_t msgs_in;
	uint64_t msgs_out;
	uint64_t inbox_seq; /* the last seq of its user's inbox log queued to it */
	/* what its own output lost, for the lag view (hub_lag.c); kept across a resume */
	uint64_t conflated; /* its queued ticks merged away (its share of total_conflated) */
	uint64_t lost;      /* its messages dropped from a full session buffer (buffer_dropped) */

	struct qc_room_set rooms;
	struct qc_sub_set streams;
	struct qc_outq outq;
	/*
	 * A resume's replay (hub_session.c): the session buffer, then what arrived since, moved to
	 * outq a chunk at a time as the socket takes it (qc_hub_refill). Only what arrived after
	 * the resume (replay_live bytes) counts against limits.max_send_queue_bytes.
	 */
	struct qc_outq replay;
	uint32_t replay_old; /* entries at replay's head that were there at the resume */
	size_t replay_live;
	uint8_t replaying;  /* set at a resume until replay is empty */
	uint8_t prev_valid; /* prev_secret still resumes: the session event has not left yet */
	char prev_secret[QC_SECRET_LEN + 1]; /* the secret of the token the last resume used */
	struct qc_msg *session_msg; /* the resumed session's event, until the transport took it */
	struct qc_rate rate;
	/* Socket.IO with connection state recovery: what a reconnect may replay (hub_sio.c) */
	struct qc_sio_state *sio;
	uint32_t rate_warned; /* RATE_LIMITED answers since the bucket last had a token */

	unsigned char *rx; /* reassembly of a fragmented message; NULL when none */
	size_t rx_len;

	void *transport; /* the transport's handle (struct lws *), borrowed */
	/* while suspended: the hub's FIFO of sessions by expiry (utlist), its table by session id
	 */
	int64_t expires_ms;
	struct qc_conn *susp_prev;
	struct qc_conn *susp_next;
	UT_hash_handle hh_session;
	/* the transport's list of connections with output to flush at the end of this pass (utlist)
	 */
	struct qc_conn *dirty_prev;
	struct qc_conn *dirty_next;
	uint8_t dirty;
	void *ext; /* later layers (streams, sessions) */

	UT_hash_handle hh;         /* table by id */
	struct qc_user *user;      /* NULL until added */
	struct qc_conn *user_prev; /* the user's connections (utlist DL: head's prev = tail) */
	struct qc_conn *user_next;
};

#define QC_ROLE_ADMIN     0x1u
#define QC_ROLE_PUBLISHER 0x2u

struct qc_log;

struct qc_user {
	char id[QC_USER_ID_MAX + 1];
	struct qc_log *inbox;  /* the hub's: the user's inbox log (SPEC 2.9), or NULL */
	struct qc_conn *conns; /* head of the user's connections */
	uint32_t nconns;
	UT_hash_handle hh;
};

struct qc_conns {
	struct qc_conn *by_id; /* uthash head */
	struct qc_user *users; /* uthash head */
	uint32_t count;
	uint32_t nusers;
	uint64_t next_id;
};

/** qc_conns_init() - an empty table. */
void qc_conns_init(struct qc_conns *t);

/**
 * qc_conns_add() - give @c the next id and index it by id and by c->user_id.
 * Returns 0 or -ENOMEM (when the user record cannot be allocated; @c is then not indexed).
 */
int qc_conns_add(struct qc_conns *t, struct qc_conn *c);

/** qc_conns_remove() - unindex @c; frees the user record when it was the user's last. */
void qc_conns_remove(struct qc_conns *t, struct qc_conn *c);

/** qc_conns_find() - the connection with @id or NULL. */
struct qc_conn *qc_conns_find(const struct qc_conns *t, uint64_t id);

/** qc_conns_user() - the user record (all its connections) or NULL. */
struct qc_user *qc_conns_user(const struct qc_conns *t, const char *user_id);

/** qc_conns_free() - drop every index entry and user record (connections are not freed). */
void qc_conns_free(struct qc_conns *t);

#endif
