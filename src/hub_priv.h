/*
 * hub_priv: what the hub's own files (hub.c, hub_stream.c) share. Not a public header: nothing
 * outside the hub includes it.
 */
#ifndef QC_HUB_PRIV_H
#define QC_HUB_PRIV_H

#include "quotecast/demo.h"
#include "quotecast/hub.h"
#include "quotecast/msg.h"
#include "quotecast/room.h"
#include "quotecast/stream.h"

struct qc_hub {
	const struct qc_config *cfg;
	struct qc_transport t;
	struct qc_conns conns;
	struct qc_rooms *rooms;
	struct qc_streams *streams;
	struct qc_demo *demo;
	struct qc_stats st;
	const char *event_loop;
	bool shutting_down;
	uint64_t msg_counter;
	char node[17]; /* random per process: message ids stay unique across processes */
	int statm_fd;
	uint32_t created_rooms; /* rooms made with create_room */
	/* suspended sessions: a FIFO by expiry (the TTL is fixed) and a table by session id */
	struct qc_conn *susp_head;
	struct qc_conn *susp_tail;
	struct qc_conn *by_session;
	uint32_t nsuspended;
	uint64_t buffered_bytes;    /* queued in suspended sessions */
	struct qc_offline *offline; /* uthash by user id */
	uint64_t offline_queued;
	char errbuf[256]; /* the message of the last validation error (single-threaded) */
};

/* A request handler: QC_OK with *data (may stay NULL), or an error with *emsg. */
typedef enum qc_err (*qc_action_fn)(struct qc_hub *h, struct qc_conn *c, json_t *payload,
                                    json_t **data, const char **emsg);

/* Set the hub's error message from @fmt, point *@emsg at it and return @e. */
enum qc_err qc_hub_fail(struct qc_hub *h, const char **emsg, enum qc_err e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Encode @j (stolen) once and queue it for @c. */
int qc_hub_send_json(struct qc_hub *h, struct qc_conn *c, json_t *j);

/* hub.c */
json_t *qc_hub_session_event(struct qc_hub *h, struct qc_conn *c, bool resumed, bool recovered,
                             uint32_t replayed);
void qc_hub_destroy(struct qc_hub *h, struct qc_conn *c);

/* hub_session.c */
struct qc_offline;
int qc_hub_suspend(struct qc_hub *h, struct qc_conn *c);
/* what of @c's queue a resume needs: room messages stay, ticks go (streams rewound) */
void qc_hub_keep_for_resume(struct qc_conn *c);
int qc_hub_buffer(struct qc_hub *h, struct qc_conn *c, struct qc_msg *m);
void qc_hub_sessions_free(struct qc_hub *h);
/* queue event @name with @data (borrowed) for @user, who has no session now */
void qc_hub_offline_push(struct qc_hub *h, const char *user, const char *name, json_t *data);
void qc_hub_offline_deliver(struct qc_hub *h, struct qc_conn *c);
uint32_t qc_hub_offline_users(const struct qc_hub *h);

/* hub_room.c */
void qc_hub_leave_room(struct qc_hub *h, struct qc_conn *c, struct qc_room *room);
enum qc_err qc_hub_subscribe(struct qc_hub *h, struct qc_conn *c, const char *name,
                             const char *password, json_t **data, const char **emsg);
enum qc_err qc_hub_unsubscribe(struct qc_hub *h, struct qc_conn *c, const char *name, json_t **data,
                               const char **emsg);
enum qc_err qc_hub_room_send(struct qc_hub *h, struct qc_conn *c, json_t *doc, json_t **out,
                             const char **emsg);
json_t *qc_hub_room_json(struct qc_hub *h, struct qc_room *room);
void qc_hub_room_counts(struct qc_hub *h, uint32_t *active, uint64_t *members);
void qc_hub_rooms_teardown(struct qc_hub *h);
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

/* hub_stream.c */
int qc_hub_streams_init(struct qc_hub *h);
void qc_hub_streams_free(struct qc_hub *h);
void qc_hub_streams_closed(struct qc_hub *h, struct qc_conn *c);
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
enum qc_err qc_act_publish(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                           const char **e);

#endif
