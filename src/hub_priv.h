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
	char errbuf[256]; /* the message of the last validation error (single-threaded) */
};

/* A request handler: QC_OK with *data (may stay NULL), or an error with *emsg. */
typedef enum qc_err (*qc_action_fn)(struct qc_hub *h, struct qc_conn *c, json_t *payload,
                                    json_t **data, const char **emsg);

/* Encode @j (stolen) once and queue it for @c. */
int qc_hub_send_json(struct qc_hub *h, struct qc_conn *c, json_t *j);

/* hub_stream.c */
int qc_hub_streams_init(struct qc_hub *h);
void qc_hub_streams_free(struct qc_hub *h);
void qc_hub_streams_closed(struct qc_hub *h, struct qc_conn *c);
json_t *qc_hub_streaming_stats(struct qc_hub *h);
enum qc_err qc_act_subscribe_stream(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                    const char **e);
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
