/*
 * hub_subs: persisted subscriptions and alerts (SPEC 2.7).
 *
 * A subscription belongs to a user: a symbol, a field list, a max_hz (0: unlimited), an
 * optional filter expression (expr.c) and an optional alert priority. Every connection of the
 * user has the active subscriptions' streams attached (as if it had sent
 * subscribe_market_stream). Each accepted
 * tick of a symbol steps the filters of that symbol's subscriptions against the merged
 * snapshot: O(subscriptions of the symbol), no allocation unless an alert fires. A filter that
 * turns true on a subscription with an alert makes an alert: a row first (when a store is
 * configured), then an `alert` event to the user's sessions, or the offline queue.
 *
 * Memory mirrors what the store committed: creates, updates and deletes change it only in
 * their commit callbacks (qc_hub_durable). Without a store, the last ALERTS_MEMORY_MAX alerts
 * are kept in memory for list_alerts and ack_alert.
 *
 * Bounds: subscriptions.max_per_user and subscriptions.max_total. A create waiting for its
 * commit holds a place in both (a reservation, ended when the request is settled either way),
 * so creates sent back to back cannot overshoot them while the store works.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utlist.h>

#include "hub_priv.h"
#include "quotecast/expr.h"

#define NAME_MAX_BYTES    128
#define ALERTS_MEMORY_MAX 10000
#define ALERTS_LIST_MAX   1000
#define ALERTS_LIST_DEF   100

static const char *const priorities[] = {"low", "normal", "high", "critical"};

struct psub {
	char id[48];
	char user_id[QC_USER_ID_MAX + 1];
	char symbol[QC_SYMBOL_MAX + 1];
	json_t *name;   /* a string or null */
	json_t *fields; /* an array of names; empty = all */
	json_t *filter; /* the canonical tree or null */
	struct qc_expr *expr;
	int priority;  /* index in priorities, -1: no alert */
	double max_hz; /* updates per second at most on the attached streams; 0: unlimited */
	int64_t version;
	bool active;
	int64_t created_at;
	int64_t updated_at;
	UT_hash_handle hh;   /* by id */
	struct psub *s_prev; /* the symbol's list */
	struct psub *s_next;
	struct psub *u_prev; /* the user's list */
	struct psub *u_next;
};

struct plist {
	char key[QC_USER_ID_MAX + 1]; /* a symbol or a user id */
	struct psub *head;
	uint32_t n;
	uint32_t creating; /* a user's creates waiting for their commit */
	UT_hash_handle hh;
};

struct qc_psubs {
	struct psub *by_id;
	struct plist *by_symbol;
	struct plist *by_user;
	uint32_t count;
	uint32_t creating; /* creates waiting for their commit, all users */
	uint64_t counter;
	uint64_t alerts_raised;
	uint64_t alerts_dropped;
	uint64_t alerts_claimed_elsewhere; /* cluster mode: edges another node raised */
	json_t *alerts; /* memory only: the newest ALERTS_MEMORY_MAX alert records */
};

int qc_hub_subs_init(struct qc_hub *h)
{
	h->psubs = calloc(1, sizeof(*h->psubs));
	if (!h->psubs)
		return -ENOMEM;
	h->psubs->alerts = json_array();
	if (!h->psubs->alerts) {
		free(h->psubs);
		h->psubs = NULL;
		return -ENOMEM;
	}
	return 0;
}

static struct plist *plist_get(struct plist **head, const char *key, bool create)
{
	struct plist *l = NULL;

	HASH_FIND_STR(*head, key, l);
	if (l || !create)
		return l;
	l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	snprintf(l->key, sizeof(l->key), "%s", key);
	HASH_ADD_STR(*head, key, l);
	return l;
}

static void psub_free(struct psub *ps)
{
	json_decref(ps->name);
	json_decref(ps->fields);
	json_decref(ps->filter);
	qc_expr_free(ps->expr);
	free(ps);
}

/* Take @ps out of every index and free it. */
static void psub_remove(struct qc_psubs *ss, struct psub *ps)
{
	struct plist *sl = plist_get(&ss->by_symbol, ps->symbol, false);
	struct plist *ul = plist_get(&ss->by_user, ps->user_id, false);

	HASH_DEL(ss->by_id, ps);
	if (sl) {
		DL_DELETE2(sl->head, ps, s_prev, s_next);
		if (!--sl->n) {
			HASH_DEL(ss->by_symbol, sl);
			free(sl);
		}
	}
	if (ul) {
		DL_DELETE2(ul->head, ps, u_prev, u_next);
		if (!--ul->n && !ul->creating) {
			HASH_DEL(ss->by_user, ul);
			free(ul);
		}
	}
	ss->count--;
	psub_free(ps);
}

void qc_hub_subs_free(struct qc_hub *h)
{
	struct psub *ps, *tmp;
	struct plist *l, *ltmp;

	if (!h->psubs)
		return;
	HASH_ITER (hh, h->psubs->by_id, ps, tmp)
		psub_remove(h->psubs, ps);
	/* what is left holds only reservations of creates still in flight */
	HASH_ITER (hh, h->psubs->by_user, l, ltmp) {
		HASH_DEL(h->psubs->by_user, l);
		free(l);
	}
	json_decref(h->psubs->alerts);
	free(h->psubs);
	h->psubs = NULL;
}

static int priority_of(const char *s)
{
	for (size_t i = 0; s && i < sizeof(priorities) / sizeof(priorities[0]); i++)
		if (!strcmp(s, priorities[i]))
			return (int)i;
	return -1;
}

/*
 * A subscription from its parts (all borrowed, copied): indexed by id, symbol and user.
 * @filter: a tree (compiled here) or NULL. Returns the record or NULL (ENOMEM, bad filter).
 */
static struct psub *psub_add(struct qc_psubs *ss, const char *id, const char *user,
                             const char *symbol, json_t *name, json_t *fields, json_t *filter,
                             int priority, int64_t version, bool active, int64_t created,
                             int64_t updated)
{
	struct psub *ps = calloc(1, sizeof(*ps));
	struct plist *sl, *ul;
	char err[160];

	if (!ps)
		return NULL;
	snprintf(ps->id, sizeof(ps->id), "%s", id);
	snprintf(ps->user_id, sizeof(ps->user_id), "%s", user);
	snprintf(ps->symbol, sizeof(ps->symbol), "%s", symbol);
	ps->name = json_is_string(name) ? json_incref(name) : json_null();
	ps->fields = json_is_array(fields) ? json_deep_copy(fields) : json_array();
	ps->priority = priority;
	ps->version = version;
	ps->active = active;
	ps->created_at = created;
	ps->updated_at = updated;
	if (filter && !json_is_null(filter)) {
		ps->expr = qc_expr_compile(filter, err, sizeof(err));
		ps->filter = ps->expr ? qc_expr_to_json(ps->expr) : NULL;
		if (!ps->filter)
			goto fail;
	} else {
		ps->filter = json_null();
	}
	if (!ps->fields)
		goto fail;
	sl = plist_get(&ss->by_symbol, ps->symbol, true);
	ul = sl ? plist_get(&ss->by_user, ps->user_id, true) : NULL;
	if (!ul)
		goto fail;
	HASH_ADD_STR(ss->by_id, id, ps);
	DL_APPEND2(sl->head, ps, s_prev, s_next);
	sl->n++;
	DL_APPEND2(ul->head, ps, u_prev, u_next);
	ul->n++;
	ss->count++;
	return ps;

fail:
	psub_free(ps);
	return NULL;
}

static json_t *psub_json(const struct psub *ps)
{
	json_t *j =
	    json_pack("{s:s, s:s, s:O, s:s, s:O, s:O, s:o, s:I, s:b, s:I, s:I}", "subscription_id",
	              ps->id, "user_id", ps->user_id, "name", ps->name, "symbol", ps->symbol,
	              "fields", ps->fields, "filter", ps->filter, "alert",
	              ps->priority >= 0 ? json_pack("{s:s}", "priority", priorities[ps->priority])
	                                : json_null(),
	              "version", (json_int_t)ps->version, "active", ps->active, "created_at",
	              (json_int_t)ps->created_at, "updated_at", (json_int_t)ps->updated_at);

	if (j)
		json_object_set_new(j, "max_hz", json_real(ps->max_hz));

	/* whether the filter held at the last tick (false before one; null without a filter) */
	if (j)
		json_object_set_new(j, "matching",
		                    ps->expr ? json_boolean(qc_expr_value(ps->expr)) : json_null());
	return j;
}

static struct psub *psub_find(struct qc_hub *h, const char *id)
{
	struct psub *ps = NULL;

	if (id)
		HASH_FIND_STR(h->psubs->by_id, id, ps);
	return ps;
}

/* ---- attaching streams to connections ---------------------------------------------------- */

/*
 * The fields an attached stream of @symbol carries for @user: the union of the user's active
 * subscriptions of that symbol (all fields when one of them asks for all, or past
 * QC_FIELDS_MAX), and its rate: the highest of their max_hz (0, unlimited, when one has
 * none). False when no active subscription of the user has the symbol.
 */
static bool user_fields(struct qc_hub *h, const char *user, const char *symbol, const char **names,
                        size_t *n, double *max_hz)
{
	struct plist *ul = plist_get(&h->psubs->by_user, user, false);
	bool any = false, all = false;
	struct psub *ps = NULL;
	size_t i, j;
	json_t *v;

	*n = 0;
	*max_hz = -1;
	DL_FOREACH2 (ul ? ul->head : NULL, ps, u_next) {
		if (!ps->active || strcmp(ps->symbol, symbol))
			continue;
		any = true;
		if (*max_hz && (!ps->max_hz || ps->max_hz > *max_hz))
			*max_hz = ps->max_hz;
		all = all || !json_array_size(ps->fields);
		json_array_foreach (ps->fields, i, v) {
			for (j = 0; j < *n && strcmp(names[j], json_string_value(v)); j++)
				;
			if (j < *n)
				continue;
			if (*n == QC_FIELDS_MAX)
				all = true;
			else
				names[(*n)++] = json_string_value(v);
		}
	}
	if (all)
		*n = 0;
	return any;
}

/* Bring @c's stream of @symbol in line with its user's active subscriptions. */
static void sync_conn(struct qc_hub *h, struct qc_conn *c, const char *symbol)
{
	const char *names[QC_FIELDS_MAX];
	struct qc_stream *s;
	double max_hz;
	size_t n;

	if (user_fields(h, c->user_id, symbol, names, &n, &max_hz)) {
		qc_hub_stream_attach(h, c, symbol, names, n, max_hz);
		return;
	}
	s = qc_streams_find(h->streams, symbol);
	if (s)
		qc_stream_unsubscribe(h->streams, s, &c->streams);
}

void qc_hub_subs_attach(struct qc_hub *h, struct qc_conn *c)
{
	struct plist *ul = plist_get(&h->psubs->by_user, c->user_id, false);
	struct psub *ps = NULL;

	DL_FOREACH2 (ul ? ul->head : NULL, ps, u_next)
		if (ps->active)
			sync_conn(h, c, ps->symbol);
}

/* The user's subscriptions of @symbol changed: every live connection of theirs but @skip. */
static void sync_user(struct qc_hub *h, const char *user, const char *symbol,
                      const struct qc_conn *skip)
{
	struct qc_user *u = qc_conns_user(&h->conns, user);

	for (struct qc_conn *c = u ? u->conns : NULL; c; c = c->user_next)
		if (c != skip)
			sync_conn(h, c, symbol);
}

/* ---- validation -------------------------------------------------------------------------- */

static enum qc_err read_name(struct qc_hub *h, json_t *p, json_t **out, const char **e)
{
	json_t *v = json_object_get(p, "name");

	*out = v;
	if (!v || json_is_null(v))
		return QC_OK;
	if (!json_is_string(v) || json_string_length(v) > NAME_MAX_BYTES)
		return qc_hub_fail(h, e, QC_E_BAD_REQUEST,
		                   "\"name\" must be a string of at most %d bytes", NAME_MAX_BYTES);
	return QC_OK;
}

/* payload "alert": absent/null (-1), or {"priority": ...} ("normal" when absent) */
static enum qc_err read_alert(struct qc_hub *h, json_t *p, int *prio, const char **e)
{
	json_t *a = json_object_get(p, "alert"), *jp;

	*prio = -1;
	if (!a || json_is_null(a))
		return QC_OK;
	if (!json_is_object(a))
		return qc_hub_fail(
		    h, e, QC_E_BAD_REQUEST,
		    "\"alert\" must be an object like {\"priority\":\"high\"} or null");
	jp = json_object_get(a, "priority");
	if (!jp || json_is_null(jp)) {
		*prio = 1;
		return QC_OK;
	}
	*prio = priority_of(json_string_value(jp));
	if (*prio < 0)
		return qc_hub_fail(h, e, QC_E_BAD_REQUEST,
		                   "alert.priority must be low, normal, high or critical");
	return QC_OK;
}

/* payload "fields" as a canonical array (new reference) */
static enum qc_err read_fields_json(struct qc_hub *h, json_t *p, json_t **out, const char **e)
{
	const char *names[QC_FIELDS_MAX];
	int n = qc_hub_read_fields(h, p, names, e);

	if (n < 0)
		return QC_E_BAD_REQUEST;
	*out = json_array();
	for (int i = 0; *out && i < n; i++)
		json_array_append_new(*out, json_string(names[i]));
	return *out ? QC_OK : qc_hub_fail(h, e, QC_E_INTERNAL, "out of memory");
}

/* payload "filter": absent/null (*out NULL), else compiled to check it; *out = canonical tree */
static enum qc_err read_filter(struct qc_hub *h, json_t *p, json_t **out, const char **e)
{
	json_t *f = json_object_get(p, "filter");
	struct qc_expr *x;

	*out = NULL;
	if (!f || json_is_null(f))
		return QC_OK;
	x = qc_expr_compile(f, h->errbuf, sizeof(h->errbuf));
	if (!x) {
		*e = h->errbuf;
		return QC_E_BAD_REQUEST;
	}
	*out = qc_expr_to_json(x);
	qc_expr_free(x);
	return *out ? QC_OK : qc_hub_fail(h, e, QC_E_INTERNAL, "out of memory");
}

/* The filter's storage rows as two JSON texts (owned by the caller); "[]" without a filter. */
static int filter_rows(json_t *tree, char **groups, char **conds)
{
	struct qc_expr *x = tree ? qc_expr_compile(tree, NULL, 0) : NULL;
	json_t *flat = x ? qc_expr_flatten(x) : NULL;

	qc_expr_free(x);
	if (tree && !flat)
		return -ENOMEM;
	*groups = flat ? json_dumps(json_object_get(flat, "groups"), QC_JSON_DUMP) : strdup("[]");
	*conds =
	    flat ? json_dumps(json_object_get(flat, "conditions"), QC_JSON_DUMP) : strdup("[]");
	json_decref(flat);
	if (!*groups || !*conds) {
		free(*groups);
		free(*conds);
		return -ENOMEM;
	}
	return 0;
}

/* ---- create ------------------------------------------------------------------------------ */

/*
 * The filter rows of subscription $1, generation @gen, from $8 (groups) and $9 (conditions).
 * An update writes a new generation and deletes the old one: one statement cannot delete and
 * re-insert the same key.
 */
#define SQL_FILTER_ROWS(gen)                                                                       \
	" g AS (INSERT INTO filter_expressions (subscription_id, gen, idx, parent, op, position)"  \
	" SELECT $1, " gen ", (g->>0)::integer, (g->>1)::integer, g->>2, (g->>3)::integer"         \
	" FROM s, json_array_elements($8::json) g),"                                               \
	" c AS (INSERT INTO filter_conditions (subscription_id, gen, expression_idx, position,"    \
	" field, cmp, value) SELECT $1, " gen ", (k->>0)::integer, (k->>1)::integer, k->>2,"       \
	" k->>3, k->4 FROM s, json_array_elements($9::json) k)"

static const char sql_create[] =
    "WITH s AS (INSERT INTO subscriptions (id, user_id, name, symbol, fields, alert_priority,"
    " version, active, created_at, updated_at, max_hz)"
    " VALUES ($1, $2, $3, $4, $5::json, $6, 1, true, $7::bigint, $7::bigint,"
    " $10::double precision) RETURNING id)," SQL_FILTER_ROWS("1") " SELECT id FROM s";

enum qc_err qc_psub_commit_create(struct qc_hub *h, struct qc_conn *c, json_t *a, json_t *rows,
                                  json_t **data, const char **e)
{
	json_t *jp = json_object_get(a, "priority");
	int64_t now = json_integer_value(json_object_get(a, "now"));
	struct psub *ps = psub_find(h, json_string_value(json_object_get(a, "id")));

	/* another node's, announced after this node loaded it from the store */
	if (ps) {
		*data = psub_json(ps);
		return QC_OK;
	}
	ps = psub_add(h->psubs, json_string_value(json_object_get(a, "id")),
	              json_string_value(json_object_get(a, "user_id")),
	              json_string_value(json_object_get(a, "symbol")), json_object_get(a, "name"),
	              json_object_get(a, "fields"), json_object_get(a, "filter"),
	              json_is_integer(jp) ? (int)json_integer_value(jp) : -1, 1, true, now, now);
	if (!ps)
		return qc_hub_fail(h, e, QC_E_INTERNAL, "out of memory");
	ps->max_hz = json_number_value(json_object_get(a, "max_hz"));
	sync_user(h, ps->user_id, ps->symbol, c);
	*data = psub_json(ps);
	return QC_OK;
}

/* The create is settled, committed or not: its places are free (counted again if it is in). */
static void create_settled(struct qc_hub *h, json_t *a)
{
	struct qc_psubs *ss = h->psubs;
	struct plist *ul;

	if (!ss)
		return; /* the hub is going away */
	ul = plist_get(&ss->by_user, json_string_value(json_object_get(a, "user_id")), false);
	if (ul && ul->creating && !--ul->creating && !ul->n) {
		HASH_DEL(ss->by_user, ul);
		free(ul);
	}
	if (ss->creating)
		ss->creating--;
}

static void after_create(struct qc_hub *h, struct qc_conn *c, json_t *a)
{
	struct psub *ps = psub_find(h, json_string_value(json_object_get(a, "id")));

	if (ps)
		sync_conn(h, c, ps->symbol);
}

enum qc_err qc_act_create_subscription(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                       const char **e)
{
	json_t *sym = json_object_get(p, "symbol"), *name, *fields = NULL, *filter = NULL;
	struct plist *ul = plist_get(&h->psubs->by_user, c->user_id, false);
	char id[48], now[24], hz[32], *groups = NULL, *conds = NULL, *jfields = NULL;
	int64_t t_now = qc_now_ms(); /* one time for the row and for memory */
	enum qc_err err;
	double max_hz;
	int priority;

	if (!json_is_string(sym) || !qc_symbol_valid(json_string_value(sym)))
		return qc_hub_fail(h, e, QC_E_BAD_REQUEST,
		                   "\"symbol\" must be 1-32 characters of A-Z a-z 0-9 . _ : -");
	err = qc_hub_read_max_hz(h, p, &max_hz, e);
	if (err != QC_OK)
		return err;
	err = read_name(h, p, &name, e);
	if (err == QC_OK)
		err = read_alert(h, p, &priority, e);
	if (err == QC_OK)
		err = read_fields_json(h, p, &fields, e);
	if (err == QC_OK)
		err = read_filter(h, p, &filter, e);
	if (err != QC_OK)
		goto out;
	if (priority >= 0 && !filter) {
		err = qc_hub_fail(h, e, QC_E_BAD_REQUEST, "an \"alert\" needs a \"filter\"");
		goto out;
	}
	if ((ul ? ul->n + ul->creating : 0) >= h->cfg->subscriptions.max_per_user) {
		err = qc_hub_limit(h, e, QC_LIM_SUBSCRIPTIONS_PER_USER, "at most %u per user",
		                   h->cfg->subscriptions.max_per_user);
		goto out;
	}
	if (h->psubs->count + h->psubs->creating >= h->cfg->subscriptions.max_total) {
		err = qc_hub_limit(h, e, QC_LIM_SUBSCRIPTIONS_TOTAL, "%u subscriptions exist",
		                   h->cfg->subscriptions.max_total);
		goto out;
	}
	if (filter_rows(filter, &groups, &conds) || !(jfields = json_dumps(fields, QC_JSON_DUMP))) {
		err = qc_hub_fail(h, e, QC_E_INTERNAL, "out of memory");
		goto out;
	}
	snprintf(id, sizeof(id), "sub-%s-%" PRIu64, h->node, ++h->psubs->counter);
	snprintf(now, sizeof(now), "%" PRId64, t_now);
	snprintf(hz, sizeof(hz), "%.17g", max_hz);
	{
		struct qc_durable dur = {
		    .sql = sql_create,
		    .nparams = 10,
		    .params = {id, c->user_id, json_string_value(name), json_string_value(sym),
		               jfields, priority >= 0 ? priorities[priority] : NULL, now, groups,
		               conds, hz},
		    .commit = qc_psub_commit_create,
		    .announce = "create_subscription",
		    .after = after_create,
		    .settled = create_settled,
		    .args = json_pack("{s:s, s:s, s:O, s:O, s:O, s:O?, s:I, s:I, s:f}", "id", id,
		                      "user_id", c->user_id, "name", name ? name : json_null(),
		                      "symbol", sym, "fields", fields, "filter", filter, "now",
		                      (json_int_t)t_now, "priority", (json_int_t)priority, "max_hz",
		                      max_hz),
		};

		/* hold the places until the create is settled (create_settled) */
		ul = dur.args ? plist_get(&h->psubs->by_user, c->user_id, true) : NULL;
		if (!ul) {
			json_decref(dur.args);
			err = qc_hub_fail(h, e, QC_E_INTERNAL, "out of memory");
			goto out;
		}
		ul->creating++;
		h->psubs->creating++;
		err = qc_hub_durable(h, c, &dur);
	}
out:
	json_decref(fields);
	json_decref(filter);
	free(groups);
	free(conds);
	free(jfields);
	return err;
}

/* ---- update ------------------------------------------------------------------------------ */

/* The subscription named by payload "subscription_id", owned by @c's user. */
static enum qc_err own_sub(struct qc_hub *h, struct qc_conn *c, json_t *p, struct psub **out,
                           const char **e)
{
	const char *id = json_string_value(json_object_get(p, "subscription_id"));

	if (!id || !id[0])
		return qc_hub_fail(h, e, QC_E_BAD_REQUEST, "\"subscription_id\" is required");
	*out = psub_find(h, id);
	if (!*out || strcmp((*out)->user_id, c->user_id))
		return qc_hub_fail(h, e, QC_E_NOT_FOUND, "no such subscription");
	return QC_OK;
}

static const char sql_update[] =
    "WITH s AS (UPDATE subscriptions SET name = $4, fields = $5::json, alert_priority = $6,"
    " active = $7::boolean, version = version + 1, updated_at = $10::bigint,"
    " max_hz = $12::double precision"
    " WHERE id = $1 AND user_id = $2 AND version = $3::integer RETURNING id),"
    " d AS (DELETE FROM filter_expressions WHERE $11::boolean AND gen <= $3::integer AND"
    " subscription_id IN (SELECT id FROM s))," SQL_FILTER_ROWS(
        "$3::integer + 1") " SELECT id FROM s";

enum qc_err qc_psub_commit_update(struct qc_hub *h, struct qc_conn *c, json_t *a, json_t *rows,
                                  json_t **data, const char **e)
{
	struct psub *ps = psub_find(h, json_string_value(json_object_get(a, "id")));
	json_t *filter = json_object_get(a, "filter");
	bool was_active, fields_changed, rate_changed;
	double max_hz = json_number_value(json_object_get(a, "max_hz"));
	char err[160];

	if (rows && !json_array_size(rows))
		return qc_hub_fail(h, e, QC_E_CONFLICT, "the subscription changed meanwhile");
	if (!ps)
		return qc_hub_fail(h, e, QC_E_NOT_FOUND, "no such subscription");
	if (json_is_true(json_object_get(a, "filter_changed"))) {
		struct qc_expr *x =
		    json_is_null(filter) ? NULL : qc_expr_compile(filter, err, sizeof(err));

		if (!json_is_null(filter) && !x)
			return qc_hub_fail(h, e, QC_E_INTERNAL, "out of memory");
		qc_expr_free(ps->expr);
		ps->expr = x;
		json_decref(ps->filter);
		ps->filter = json_incref(filter);
	}
	fields_changed = !json_equal(ps->fields, json_object_get(a, "fields"));
	json_decref(ps->name);
	ps->name = json_incref(json_object_get(a, "name"));
	json_decref(ps->fields);
	ps->fields = json_incref(json_object_get(a, "fields"));
	ps->priority = (int)json_integer_value(json_object_get(a, "priority"));
	was_active = ps->active;
	ps->active = json_is_true(json_object_get(a, "active"));
	rate_changed = ps->max_hz != max_hz;
	ps->max_hz = max_hz;
	ps->version++;
	ps->updated_at = json_integer_value(json_object_get(a, "now"));
	if (was_active != ps->active || fields_changed || rate_changed)
		sync_user(h, ps->user_id, ps->symbol, NULL);
	*data = psub_json(ps);
	return QC_OK;
}

enum qc_err qc_act_update_subscription(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                       const char **e)
{
	json_t *jver = json_object_get(p, "version"), *jact = json_object_get(p, "active");
	json_t *name, *fields = NULL, *filter = NULL, *args = NULL;
	char ver[24], now[24], hz[32], *groups = NULL, *conds = NULL, *jfields = NULL;
	bool filter_changed = json_object_get(p, "filter") != NULL;
	int64_t t_now = qc_now_ms(); /* one time for the row and for memory */
	int priority;
	double max_hz;
	struct psub *ps = NULL;
	enum qc_err err = own_sub(h, c, p, &ps, e);

	if (err != QC_OK)
		return err;
	err = qc_hub_read_max_hz(h, p, &max_hz, e);
	if (err != QC_OK)
		return err;
	if (!json_object_get(p, "max_hz"))
		max_hz = ps->max_hz; /* absent: unchanged */
	if (!json_is_integer(jver))
		return qc_hub_fail(h, e, QC_E_BAD_REQUEST, "\"version\" (an integer) is required");
	if (json_integer_value(jver) != ps->version)
		return qc_hub_fail(h, e, QC_E_CONFLICT,
		                   "version %" JSON_INTEGER_FORMAT " is not current (%" PRId64 ")",
		                   json_integer_value(jver), ps->version);
	if (json_object_get(p, "symbol"))
		return qc_hub_fail(h, e, QC_E_BAD_REQUEST,
		                   "\"symbol\" cannot change: create another subscription");
	if (jact && !json_is_boolean(jact))
		return qc_hub_fail(h, e, QC_E_BAD_REQUEST, "\"active\" must be a boolean");
	err = read_name(h, p, &name, e);
	if (err == QC_OK && json_object_get(p, "alert"))
		err = read_alert(h, p, &priority, e);
	else
		priority = ps->priority;
	if (err == QC_OK && json_object_get(p, "fields"))
		err = read_fields_json(h, p, &fields, e);
	else
		fields = json_incref(ps->fields);
	if (err == QC_OK && filter_changed)
		err = read_filter(h, p, &filter, e);
	else if (!json_is_null(ps->filter))
		filter = json_incref(ps->filter);
	if (err != QC_OK)
		goto out;
	if (!json_object_get(p, "name"))
		name = ps->name;
	if (priority >= 0 && !filter) {
		err = qc_hub_fail(h, e, QC_E_BAD_REQUEST, "an \"alert\" needs a \"filter\"");
		goto out;
	}
	/* without a new filter the statement keeps the stored rows: it inserts none ("[]") */
	if (filter_rows(filter_changed ? filter : NULL, &groups, &conds) ||
	    !(jfields = json_dumps(fields, QC_JSON_DUMP))) {
		err = qc_hub_fail(h, e, QC_E_INTERNAL, "out of memory");
		goto out;
	}
	snprintf(ver, sizeof(ver), "%" PRId64, ps->version);
	snprintf(now, sizeof(now), "%" PRId64, t_now);
	snprintf(hz, sizeof(hz), "%.17g", max_hz);
	args = json_pack("{s:s, s:O, s:O, s:O?, s:b, s:I, s:b, s:I, s:f}", "id", ps->id, "name",
	                 name && !json_is_null(name) ? name : json_null(), "fields", fields,
	                 "filter", filter, "filter_changed", filter_changed, "priority",
	                 (json_int_t)priority, "active", jact ? json_is_true(jact) : ps->active,
	                 "now", (json_int_t)t_now, "max_hz", max_hz);
	if (args && !json_object_get(args, "filter"))
		json_object_set_new(args, "filter", json_null());
	{
		struct qc_durable dur = {
		    .sql = sql_update,
		    .nparams = 12,
		    .params = {ps->id, c->user_id, ver,
		               json_string_value(json_object_get(args, "name")), jfields,
		               priority >= 0 ? priorities[priority] : NULL,
		               json_is_true(json_object_get(args, "active")) ? "true" : "false",
		               groups, conds, now, filter_changed ? "true" : "false", hz},
		    .commit = qc_psub_commit_update,
		    .announce = "update_subscription",
		    .args = args,
		};

		err = qc_hub_durable(h, c, &dur);
	}
out:
	json_decref(fields);
	json_decref(filter);
	free(groups);
	free(conds);
	free(jfields);
	return err;
}

/* ---- delete, list ------------------------------------------------------------------------ */

enum qc_err qc_psub_commit_delete(struct qc_hub *h, struct qc_conn *c, json_t *a, json_t *rows,
                                  json_t **data, const char **e)
{
	struct psub *ps = psub_find(h, json_string_value(json_object_get(a, "id")));
	char user[QC_USER_ID_MAX + 1], symbol[QC_SYMBOL_MAX + 1];

	if (!ps)
		return qc_hub_fail(h, e, QC_E_NOT_FOUND, "no such subscription");
	snprintf(user, sizeof(user), "%s", ps->user_id);
	snprintf(symbol, sizeof(symbol), "%s", ps->symbol);
	psub_remove(h->psubs, ps);
	sync_user(h, user, symbol, NULL);
	*data = json_pack("{s:O, s:b}", "subscription_id", json_object_get(a, "id"), "deleted", 1);
	return QC_OK;
}

enum qc_err qc_act_delete_subscription(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                       const char **e)
{
	struct psub *ps = NULL;
	enum qc_err err = own_sub(h, c, p, &ps, e);
	struct qc_durable dur = {
	    .sql = "DELETE FROM subscriptions WHERE id = $1 AND user_id = $2",
	    .nparams = 2,
	    .commit = qc_psub_commit_delete,
	    .announce = "delete_subscription",
	};

	if (err != QC_OK)
		return err;
	dur.params[0] = ps->id;
	dur.params[1] = ps->user_id;
	dur.args = json_pack("{s:s}", "id", ps->id);
	return qc_hub_durable(h, c, &dur);
}

enum qc_err qc_act_list_subscriptions(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                                      const char **e)
{
	struct plist *ul = plist_get(&h->psubs->by_user, c->user_id, false);
	json_t *list = json_array();
	struct psub *ps = NULL;

	if (!list)
		return qc_hub_fail(h, e, QC_E_INTERNAL, "out of memory");
	DL_FOREACH2 (ul ? ul->head : NULL, ps, u_next)
		json_array_append_new(list, psub_json(ps));
	*d = json_pack("{s:o, s:I}", "subscriptions", list, "total",
	               (json_int_t)json_array_size(list));
	return QC_OK;
}

/* ---- alerts ------------------------------------------------------------------------------ */

static const char sql_alert[] =
    "INSERT INTO alerts (id, subscription_id, user_id, symbol, priority, data, created_at, seq)"
    " VALUES ($1, $2, $3, $4, $5, $6::json, $7::bigint, $8::bigint)";

/* The alert event @ev (borrowed) reaches its user's sessions (inbox log), or the offline queue. */
static void alert_deliver(struct qc_hub *h, const char *user, const char *alert_id, json_t *ev)
{
	uint32_t n;

	if (!qc_conns_user(&h->conns, user)) {
		qc_hub_offline_push_alert(h, user, alert_id, ev);
		return;
	}
	n = qc_hub_inbox_send(h, user, "alert", json_copy(ev));
	if (n) {
		char now[24];
		const char *params[] = {alert_id, now};

		snprintf(now, sizeof(now), "%" PRId64, qc_now_ms());
		qc_hub_store_write(
		    h,
		    "UPDATE alerts SET delivery = 'delivered', delivered_at = $2::bigint"
		    " WHERE id = $1",
		    2, params);
	}
}

static void alert_stored(void *arg, enum qc_err err, const char *msg, json_t *rows)
{
	struct qc_row_event *w = arg;

	/* ALREADY_EXISTS: a repeat of an insert that had committed before the store went away */
	if (err == QC_OK || err == QC_E_ALREADY_EXISTS)
		alert_deliver(w->h, w->user, json_string_value(json_object_get(w->ev, "alert_id")),
		              w->ev);
	else
		w->h->psubs->alerts_dropped++;
	qc_row_event_free(w);
}

/* Remember @ev for list_alerts/ack_alert when there is no store (bounded). */
static void alert_remember(struct qc_hub *h, const char *user, json_t *ev)
{
	json_t *rec = json_deep_copy(ev);

	if (!rec)
		return;
	json_object_set_new(rec, "user_id", json_string(user));
	json_object_set_new(rec, "delivery", json_string("pending"));
	json_object_set_new(rec, "acknowledged", json_false());
	json_array_append_new(h->psubs->alerts, rec);
	if (json_array_size(h->psubs->alerts) > ALERTS_MEMORY_MAX)
		json_array_remove(h->psubs->alerts, 0);
}

/* The alert event of @ps's edge on @s now (the data at the edge), or NULL (counted dropped). */
static json_t *alert_make(struct qc_hub *h, struct psub *ps, struct qc_stream *s)
{
	const char *names[QC_FIELDS_MAX];
	size_t n = 0, i;
	char id[48];
	json_t *v, *data, *ev;

	json_array_foreach (ps->fields, i, v)
		if (n < QC_FIELDS_MAX)
			names[n++] = json_string_value(v);
	data = qc_fields_filter(names, n, qc_stream_snapshot_json(s));
	if (!data)
		data = json_object();
	snprintf(id, sizeof(id), "al-%s-%" PRIu64, h->node, ++h->psubs->counter);
	ev = json_pack("{s:s, s:s, s:s, s:s, s:o, s:I, s:I}", "alert_id", id, "subscription_id",
	               ps->id, "symbol", ps->symbol, "priority", priorities[ps->priority], "data",
	               data, "seq", (json_int_t)qc_stream_last_seq(s), "timestamp",
	               (json_int_t)qc_now_ms());
	if (!ev)
		h->psubs->alerts_dropped++;
	return ev;
}

/* Raise the alert @ev (borrowed) of @ps: its row, then its event. */
static void alert_emit(struct qc_hub *h, struct psub *ps, json_t *ev)
{
	const char *id = json_string_value(json_object_get(ev, "alert_id"));
	char now[24], seq[24], *jdata;
	struct qc_row_event *w;

	h->psubs->alerts_raised++;
	if (!qc_hub_persistent(h)) {
		alert_remember(h, ps->user_id, ev);
		alert_deliver(h, ps->user_id, id, ev);
		return;
	}
	/* written before it counts as queued: the event goes out when the row has committed */
	w = qc_row_event_new(h, ps->user_id, json_incref(ev));
	jdata = w ? json_dumps(json_object_get(ev, "data"), QC_JSON_DUMP) : NULL;
	snprintf(now, sizeof(now), "%" PRId64,
	         (int64_t)json_integer_value(json_object_get(ev, "timestamp")));
	snprintf(seq, sizeof(seq), "%" PRId64,
	         (int64_t)json_integer_value(json_object_get(ev, "seq")));
	if (!w || !jdata) {
		h->psubs->alerts_dropped++;
		qc_row_event_free(w);
		free(jdata);
		return;
	}
	{
		const char *params[] = {
		    id, ps->id, ps->user_id, ps->symbol, priorities[ps->priority], jdata, now, seq};

		qc_hub_store_keep(h, sql_alert, 8, params, alert_stored, w);
	}
	free(jdata);
}

/* Cluster mode: an alert waiting for its edge's claim (broker.h), raised when it is ours. */
struct alert_claim {
	struct qc_hub *h;
	char sub[48];
	json_t *ev;
};

static void alert_claimed(void *arg, int won)
{
	struct alert_claim *ac = arg;
	struct psub *ps = psub_find(ac->h, ac->sub);

	/* unknown (Redis did not answer): raised, a repeat rather than a loss */
	if (won && ps && ps->active && ps->priority >= 0)
		alert_emit(ac->h, ps, ac->ev);
	else if (!won)
		ac->h->psubs->alerts_claimed_elsewhere++;
	json_decref(ac->ev);
	free(ac);
}

/*
 * @ps's filter turned true on @s: raise its alert. In cluster mode every node that watches the
 * symbol sees the same edge at the same seq: the alert is raised by the one that claims it.
 */
static void alert_raise(struct qc_hub *h, struct psub *ps, struct qc_stream *s)
{
	json_t *ev = alert_make(h, ps, s);
	struct alert_claim *ac;
	char key[128], epoch[QC_EPOCH_LEN + 1];

	if (!ev)
		return;
	ac = h->broker.claim ? calloc(1, sizeof(*ac)) : NULL;
	if (ac) {
		ac->h = h;
		snprintf(ac->sub, sizeof(ac->sub), "%s", ps->id);
		ac->ev = ev;
		qc_hub_stream_epoch(h, s, epoch);
		snprintf(key, sizeof(key), "%s:%s:%" PRIu64, ps->id, epoch, qc_stream_last_seq(s));
		if (!h->broker.claim(h->broker.ctx, ps->symbol, key,
		                     qc_conns_user(&h->conns, ps->user_id) != NULL, alert_claimed,
		                     ac))
			return;
		free(ac);
	}
	alert_emit(h, ps, ev);
	json_decref(ev);
}

void qc_hub_subs_tick(struct qc_hub *h, struct qc_stream *s)
{
	struct plist *sl;
	struct psub *ps = NULL;

	if (!h->psubs->count)
		return;
	sl = plist_get(&h->psubs->by_symbol, qc_stream_symbol(s), false);
	if (!sl)
		return;
	DL_FOREACH2 (sl->head, ps, s_next) {
		if (!ps->active || !ps->expr)
			continue;
		if (qc_expr_step(ps->expr, qc_stream_snapshot_json(s)) && ps->priority >= 0)
			alert_raise(h, ps, s);
	}
}

static enum qc_err read_limit(struct qc_hub *h, json_t *p, int64_t *since, int64_t *limit,
                              const char **e)
{
	json_t *js = json_object_get(p, "since"), *jl = json_object_get(p, "limit");

	*since = 0;
	*limit = ALERTS_LIST_DEF;
	if (js && !json_is_null(js)) {
		if (!json_is_integer(js) || json_integer_value(js) < 0)
			return qc_hub_fail(h, e, QC_E_BAD_REQUEST,
			                   "\"since\" must be a time in ms (an integer)");
		*since = json_integer_value(js);
	}
	if (jl && !json_is_null(jl)) {
		if (!json_is_integer(jl) || json_integer_value(jl) < 1)
			return qc_hub_fail(h, e, QC_E_BAD_REQUEST,
			                   "\"limit\" must be a positive integer");
		*limit = json_integer_value(jl);
		if (*limit > ALERTS_LIST_MAX)
			*limit = ALERTS_LIST_MAX;
	}
	return QC_OK;
}

/* rows: id, subscription_id, symbol, priority, data, created_at, delivery, acknowledged, seq */
static enum qc_err commit_list_alerts(struct qc_hub *h, struct qc_conn *c, json_t *a, json_t *rows,
                                      json_t **data, const char **e)
{
	json_t *list = json_array(), *row;
	size_t i;

	if (!list)
		return qc_hub_fail(h, e, QC_E_INTERNAL, "out of memory");
	json_array_foreach (rows, i, row) {
		const char *text = json_string_value(json_array_get(row, 4));
		const char *seq = json_string_value(json_array_get(row, 8));
		json_t *d = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
		json_t *rec = json_pack(
		    "{s:O, s:O, s:O, s:O, s:o, s:o, s:I, s:O, s:b}", "alert_id",
		    json_array_get(row, 0), "subscription_id", json_array_get(row, 1), "symbol",
		    json_array_get(row, 2), "priority", json_array_get(row, 3), "data",
		    d ? d : json_null(), "seq",
		    seq ? json_integer(strtoll(seq, NULL, 10)) : json_null(), "timestamp",
		    (json_int_t)strtoll(json_string_value(json_array_get(row, 5)), NULL, 10),
		    "delivery", json_array_get(row, 6), "acknowledged",
		    !strcmp(json_string_value(json_array_get(row, 7)) ?: "", "t"));

		json_array_append_new(list, rec);
	}
	*data = json_pack("{s:o}", "alerts", list);
	return QC_OK;
}

enum qc_err qc_act_list_alerts(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                               const char **e)
{
	int64_t since, limit;
	enum qc_err err = read_limit(h, p, &since, &limit, e);
	json_t *list, *rec;
	size_t i;

	if (err != QC_OK)
		return err;
	if (qc_hub_persistent(h)) {
		char s_since[24], s_limit[24];
		struct qc_durable dur = {
		    .sql =
		        "SELECT id, subscription_id, symbol, priority, data, created_at, delivery,"
		        " acknowledged, seq FROM alerts WHERE user_id = $1 AND created_at > "
		        "$2::bigint"
		        " ORDER BY created_at DESC, id DESC LIMIT $3::integer",
		    .nparams = 3,
		    .params = {c->user_id, s_since, s_limit},
		    .commit = commit_list_alerts,
		    .args = json_object(),
		};

		snprintf(s_since, sizeof(s_since), "%" PRId64, since);
		snprintf(s_limit, sizeof(s_limit), "%" PRId64, limit);
		return qc_hub_durable(h, c, &dur);
	}
	list = json_array();
	for (i = json_array_size(h->psubs->alerts);
	     list && i-- > 0 && (int64_t)json_array_size(list) < limit;) {
		rec = json_array_get(h->psubs->alerts, i);
		if (strcmp(json_string_value(json_object_get(rec, "user_id")), c->user_id) ||
		    json_integer_value(json_object_get(rec, "timestamp")) <= since)
			continue;
		rec = json_deep_copy(rec);
		json_object_del(rec, "user_id");
		json_array_append_new(list, rec);
	}
	*d = json_pack("{s:o}", "alerts", list);
	return *d ? QC_OK : qc_hub_fail(h, e, QC_E_INTERNAL, "out of memory");
}

static enum qc_err commit_ack(struct qc_hub *h, struct qc_conn *c, json_t *a, json_t *rows,
                              json_t **data, const char **e)
{
	if (rows && !json_array_size(rows))
		return qc_hub_fail(h, e, QC_E_NOT_FOUND, "no such alert");
	*data = json_pack("{s:O, s:b}", "alert_id", json_object_get(a, "id"), "acknowledged", 1);
	return QC_OK;
}

enum qc_err qc_act_ack_alert(struct qc_hub *h, struct qc_conn *c, json_t *p, json_t **d,
                             const char **e)
{
	const char *id = json_string_value(json_object_get(p, "alert_id"));
	char now[24];
	json_t *rec;
	size_t i;

	if (!id || !id[0] || strlen(id) > 64)
		return qc_hub_fail(h, e, QC_E_BAD_REQUEST, "\"alert_id\" is required");
	if (!qc_hub_persistent(h)) {
		json_array_foreach (h->psubs->alerts, i, rec) {
			if (strcmp(json_string_value(json_object_get(rec, "alert_id")), id) ||
			    strcmp(json_string_value(json_object_get(rec, "user_id")), c->user_id))
				continue;
			json_object_set_new(rec, "acknowledged", json_true());
			*d = json_pack("{s:s, s:b}", "alert_id", id, "acknowledged", 1);
			return QC_OK;
		}
		return qc_hub_fail(h, e, QC_E_NOT_FOUND, "no such alert");
	}
	snprintf(now, sizeof(now), "%" PRId64, qc_now_ms());
	{
		struct qc_durable dur = {
		    .sql = "UPDATE alerts SET acknowledged = true, acknowledged_at = $3::bigint"
		           " WHERE id = $1 AND user_id = $2 RETURNING id",
		    .nparams = 3,
		    .params = {id, c->user_id, now},
		    .commit = commit_ack,
		    .args = json_pack("{s:s}", "id", id),
		};

		return qc_hub_durable(h, c, &dur);
	}
}

json_t *qc_hub_subs_stats(struct qc_hub *h)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I}", "subscriptions", (json_int_t)h->psubs->count,
	                 "users", (json_int_t)HASH_COUNT(h->psubs->by_user), "alerts_raised",
	                 (json_int_t)h->psubs->alerts_raised, "alerts_dropped",
	                 (json_int_t)h->psubs->alerts_dropped, "alerts_claimed_elsewhere",
	                 (json_int_t)h->psubs->alerts_claimed_elsewhere);
}

/* ---- start-up ---------------------------------------------------------------------------- */

static const char *col(json_t *row, size_t i)
{
	return json_string_value(json_array_get(row, i));
}

static json_t *int_or_null(const char *s)
{
	return s ? json_integer(strtoll(s, NULL, 10)) : json_null();
}

/* The storage rows of subscription @id, in the shape qc_expr_unflatten() reads. */
static void rows_of(const char *id, json_t *groups, json_t *conds, json_t *g, json_t *k)
{
	json_t *row, *v;
	size_t i;

	/* subscription_id, idx, parent, op, position (one generation: the current one) */
	json_array_foreach (groups, i, row) {
		if (strcmp(col(row, 0), id))
			continue;
		json_array_append_new(g, json_pack("[o, o, s, o]", int_or_null(col(row, 1)),
		                                   int_or_null(col(row, 2)), col(row, 3),
		                                   int_or_null(col(row, 4))));
	}
	/* subscription_id, expression_idx, position, field, cmp, value */
	json_array_foreach (conds, i, row) {
		if (strcmp(col(row, 0), id))
			continue;
		v = json_loads(col(row, 5), JSON_DECODE_ANY, NULL);
		json_array_append_new(k, json_pack("[o, o, s, s, o]", int_or_null(col(row, 1)),
		                                   int_or_null(col(row, 2)), col(row, 3),
		                                   col(row, 4), v ? v : json_null()));
	}
}

int qc_hub_subs_load(struct qc_hub *h, json_t *subs, json_t *groups, json_t *conds, char *err,
                     size_t errlen)
{
	json_t *row;
	size_t i;

	/* id, user_id, name, symbol, fields, alert_priority, version, active, created_at,
	 * updated_at, max_hz */
	json_array_foreach (subs, i, row) {
		json_t *g = json_array(), *k = json_array(), *tree = NULL, *fields, *name;
		struct psub *ps;
		char why[160] = "";

		if (!g || !k) {
			json_decref(g);
			json_decref(k);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		rows_of(col(row, 0), groups, conds, g, k);
		if (json_array_size(g))
			tree = qc_expr_unflatten(g, k, why, sizeof(why));
		json_decref(g);
		json_decref(k);
		if (why[0]) {
			snprintf(err, errlen, "subscription %s: filter: %s", col(row, 0), why);
			return -1;
		}
		fields = json_loads(col(row, 4), 0, NULL);
		name = col(row, 2) ? json_string(col(row, 2)) : json_null();
		ps = psub_add(h->psubs, col(row, 0), col(row, 1), col(row, 3), name, fields, tree,
		              priority_of(col(row, 5)), strtoll(col(row, 6), NULL, 10),
		              !strcmp(col(row, 7), "t"), strtoll(col(row, 8), NULL, 10),
		              strtoll(col(row, 9), NULL, 10));
		json_decref(fields);
		json_decref(name);
		json_decref(tree);
		if (!ps) {
			snprintf(err, errlen, "subscription %s cannot be loaded", col(row, 0));
			return -1;
		}
		ps->max_hz = col(row, 10) ? strtod(col(row, 10), NULL) : 0;
	}
	return 0;
}
