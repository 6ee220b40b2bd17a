/*
 * hub_lag: the lag view (SPEC 1: GET /api/connections, the admin action get_connections): this
 * node's live connections with what each has waiting and has lost, the ones falling behind
 * first. lag.c chooses the N to show without sorting them all; this file reads each
 * connection's figures (counted on the existing branches of the hot path: conflate() in
 * hub_stream.c, the session buffer in hub_session.c) and renders the document.
 */
#include <uthash.h>

#include "quotecast/lag.h"

#include "hub_priv.h"

static const char *transport_name(const struct qc_conn *c)
{
	if (c->enc == QC_ENC_SIO)
		return "socket.io";
	return c->publisher ? "publisher" : "ws";
}

static json_t *entry_json(const struct qc_conn *c)
{
	return json_pack("{s:I, s:s, s:s, s:s, s:I, s:I, s:I, s:i, s:i, s:I, s:b}", "connection_id",
	                 (json_int_t)c->id, "session_id", c->session_id, "user_id", c->user_id,
	                 "transport", transport_name(c), "queued_bytes",
	                 (json_int_t)(c->outq.bytes + c->replay.bytes), "conflated",
	                 (json_int_t)c->conflated, "dropped", (json_int_t)c->lost, "rooms",
	                 (int)c->rooms.count, "streams", (int)c->streams.count, "connected_at",
	                 (json_int_t)c->connected_at_ms, "closing", c->closing != 0);
}

json_t *qc_hub_connections(struct qc_hub *h, enum qc_lag_sort sort, uint32_t limit)
{
	uint32_t live = qc_hub_nconns(h);
	struct qc_lag_top top;
	struct qc_conn *c, *tmp;
	json_t *list, *doc;

	if (qc_lag_top_init(&top, sort, limit < live ? limit : live))
		return NULL;
	HASH_ITER (hh, h->conns.by_id, c, tmp) {
		struct qc_lag_entry e = {
		    .id = c->id,
		    .queued = c->outq.bytes + c->replay.bytes,
		    .conflated = c->conflated,
		    .dropped = c->lost,
		    .since_ms = c->connected_at_ms,
		    .item = c,
		};

		if (!c->suspended)
			qc_lag_top_offer(&top, &e);
	}
	list = json_array();
	for (uint32_t i = 0, n = qc_lag_top_sort(&top); list && i < n; i++)
		if (json_array_append_new(list, entry_json(top.heap[i].item))) {
			json_decref(list);
			list = NULL;
		}
	qc_lag_top_free(&top);
	doc = list ? json_pack("{s:o, s:I}", "connections", list, "total", (json_int_t)live) : NULL;
	return doc;
}

enum qc_err qc_act_get_connections(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                   const char **e)
{
	json_t *jsort = json_object_get(p, "sort"), *jlimit = json_object_get(p, "limit");
	struct qc_lag_query q;

	if (!(c->roles & QC_ROLE_ADMIN)) {
		*e = "role admin required";
		return QC_E_FORBIDDEN;
	}
	qc_lag_query_init(&q);
	if (jsort && !json_is_null(jsort) &&
	    (!json_is_string(jsort) || qc_lag_parse_sort(json_string_value(jsort), &q.sort, e))) {
		*e = "sort: must be lag, id or age";
		return QC_E_BAD_REQUEST;
	}
	if (jlimit && !json_is_null(jlimit) &&
	    (!json_is_integer(jlimit) ||
	     qc_lag_check_limit(json_integer_value(jlimit), &q.limit, e))) {
		*e = "limit: must be an integer from 1 to 1000";
		return QC_E_BAD_REQUEST;
	}
	*d = qc_hub_connections(h, q.sort, q.limit);
	if (!*d) {
		*e = "out of memory";
		return QC_E_INTERNAL;
	}
	return QC_OK;
}
