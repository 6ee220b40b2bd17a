/*
 * expr: filter expressions, compiled (SPEC 2.7).
 *
 * Owns one allocation per expression: the header, then the nodes in depth-first order (a
 * group is followed by its children, each child by its own subtree, so a group needs only
 * the count of its children), then the bytes of every field name and string value. A
 * condition's node also holds its crossing state (the previous value of its field), so
 * evaluation reads @data and writes only inside that allocation.
 *
 * Compiling walks the tree twice: the first walk checks everything and counts nodes and
 * bytes, the second fills the allocation and cannot fail. Rebuilding from rows works on
 * fixed arrays sized by the limits, so nothing but the resulting JSON is allocated.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quotecast/expr.h"

enum op { OP_AND, OP_OR };

enum cmp {
	CMP_GT,
	CMP_GTE,
	CMP_LT,
	CMP_LTE,
	CMP_EQ,
	CMP_NE,
	CMP_CROSSES_ABOVE,
	CMP_CROSSES_BELOW,
	CMP__COUNT
};

enum vtype { V_INT, V_REAL, V_STRING, V_BOOL };

static const char *const op_names[] = {"and", "or"};

static const char *const cmp_names[CMP__COUNT] = {
    "gt", "gte", "lt", "lte", "eq", "ne", "crosses_above", "crosses_below",
};

/*
 * Groups can only be this many: each holds at least one condition, each condition has at most
 * QC_EXPR_MAX_DEPTH groups above it.
 */
#define MAX_GROUPS (QC_EXPR_MAX_CONDITIONS * QC_EXPR_MAX_DEPTH)

#define ROOT       "filter"
#define ROOT_LEN   (sizeof(ROOT) - 1)
#define PATH_SIZE  512
#define SHOW_MAX   32 /* bytes of a user's string quoted in an error message */
#define WHERE_SIZE 48 /* "conditions[<size_t>]" */

struct node {
	bool group;
	uint8_t op;    /* enum op for a group, enum cmp for a condition */
	uint8_t vtype; /* enum vtype */
	bool bval;
	bool has_prev;
	uint16_t nkids; /* a group's children */
	uint16_t field_len;
	uint16_t str_len;
	json_int_t ival;
	double num; /* the value of a number, integer or real */
	double prev;
	const char *field; /* NUL-terminated */
	const char *str;
};

struct qc_expr {
	uint16_t nnodes;
	bool value;
	struct node nodes[]; /* then the strings */
};

struct compile_ctx {
	char *err;
	size_t errlen;
	size_t nnodes;
	size_t nconds;
	size_t bytes;
	char path[PATH_SIZE];
};

static void vformat(char *err, size_t errlen, const char *prefix, size_t prefix_len,
                    const char *suffix, const char *fmt, va_list ap)
{
	int n;

	if (!err || !errlen)
		return;
	n = snprintf(err, errlen, "%.*s%s: ", (int)prefix_len, prefix, suffix ? suffix : "");
	if (n < 0 || (size_t)n >= errlen)
		return;
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
}

static int fail(struct compile_ctx *c, size_t len, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void ufail(char *err, size_t errlen, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Always -1, so that a check can `return fail(...)`. */
static int fail(struct compile_ctx *c, size_t len, const char *key, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vformat(c->err, c->errlen, c->path, len, key, fmt, ap);
	va_end(ap);
	return -1;
}

static void ufail(char *err, size_t errlen, const char *where, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vformat(err, errlen, where, strlen(where), NULL, fmt, ap);
	va_end(ap);
}

/*
 * A user's string, cut short and with every byte outside printable ASCII as '?', so that an
 * error message stays one readable line whatever was sent.
 */
static const char *show(char *buf, const char *s, size_t len)
{
	size_t i, n = len > SHOW_MAX ? SHOW_MAX : len;

	for (i = 0; i < n; i++)
		buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (n < len) {
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
	return buf;
}

static int find_cmp(const char *s, size_t len)
{
	int i;

	for (i = 0; i < CMP__COUNT; i++)
		if (strlen(cmp_names[i]) == len && !memcmp(cmp_names[i], s, len))
			return i;
	return -1;
}

static bool is_order_cmp(int cmp)
{
	return cmp != CMP_EQ && cmp != CMP_NE;
}

static bool known_key(const char *key, size_t len)
{
	static const char *const keys[] = {"op", "conditions", "field", "cmp", "value"};
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strlen(keys[i]) == len && !memcmp(keys[i], key, len))
			return true;
	return false;
}

static bool str_is(const json_t *v, const char *s)
{
	return json_is_string(v) && json_string_length(v) == strlen(s) &&
	       !memcmp(json_string_value(v), s, strlen(s));
}

static json_t *get(const json_t *obj, const char *key)
{
	return json_object_getn(obj, key, strlen(key));
}

static int check_node(struct compile_ctx *c, const json_t *node, size_t len, int depth);

static int check_group(struct compile_ctx *c, const json_t *node, size_t len, int depth)
{
	const json_t *op = get(node, "op"), *kids = get(node, "conditions");
	size_t i, klen;
	int n;

	if (depth > QC_EXPR_MAX_DEPTH)
		return fail(c, ROOT_LEN, NULL, "nesting deeper than %d", QC_EXPR_MAX_DEPTH);
	if (!str_is(op, "and") && !str_is(op, "or"))
		return fail(c, len, ".op", "must be \"and\" or \"or\"");
	if (!json_is_array(kids) || !json_array_size(kids))
		return fail(c, len, ".conditions", "must be a non-empty array");
	c->nnodes++;
	for (i = 0; i < json_array_size(kids); i++) {
		n = snprintf(c->path + len, sizeof(c->path) - len, ".conditions[%zu]", i);
		klen = len + (size_t)n;
		if (klen >= sizeof(c->path))
			klen = sizeof(c->path) - 1;
		if (check_node(c, json_array_get(kids, i), klen, depth + 1))
			return -1;
	}
	return 0;
}

static int check_condition(struct compile_ctx *c, const json_t *node, size_t len)
{
	const json_t *field = get(node, "field"), *cmpv = get(node, "cmp"),
	             *value = get(node, "value");
	char shown[SHOW_MAX + 4];
	const char *s;
	size_t flen, i;
	int cmp;

	if (++c->nconds > QC_EXPR_MAX_CONDITIONS)
		return fail(c, ROOT_LEN, NULL, "more than %d conditions", QC_EXPR_MAX_CONDITIONS);

	if (!field)
		return fail(c, len, ".field", "missing");
	if (!json_is_string(field))
		return fail(c, len, ".field", "must be a string");
	s = json_string_value(field);
	flen = json_string_length(field);
	if (flen < 1 || flen > QC_EXPR_MAX_FIELD)
		return fail(c, len, ".field", "must be 1 to %d bytes", QC_EXPR_MAX_FIELD);
	for (i = 0; i < flen; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return fail(c, len, ".field", "must not contain control characters");

	if (!cmpv)
		return fail(c, len, ".cmp", "missing");
	if (!json_is_string(cmpv))
		return fail(c, len, ".cmp", "must be a string");
	cmp = find_cmp(json_string_value(cmpv), json_string_length(cmpv));
	if (cmp < 0)
		return fail(c, len, ".cmp", "unknown operator \"%s\"",
		            show(shown, json_string_value(cmpv), json_string_length(cmpv)));

	if (!value)
		return fail(c, len, ".value", "missing");
	if (is_order_cmp(cmp) && !json_is_number(value))
		return fail(c, len, ".value", "must be a number for \"%s\"", cmp_names[cmp]);
	if (!is_order_cmp(cmp) && !json_is_number(value) && !json_is_string(value) &&
	    !json_is_boolean(value))
		return fail(c, len, ".value", "must be a number, string or boolean for \"%s\"",
		            cmp_names[cmp]);
	if (json_is_string(value) && json_string_length(value) > QC_EXPR_MAX_STRING)
		return fail(c, len, ".value", "must be at most %d bytes", QC_EXPR_MAX_STRING);

	c->nnodes++;
	c->bytes += flen + 1;
	if (json_is_string(value))
		c->bytes += json_string_length(value) + 1;
	return 0;
}

static int check_node(struct compile_ctx *c, const json_t *node, size_t len, int depth)
{
	char shown[SHOW_MAX + 4];
	const char *key;
	size_t klen, nknown;
	bool group, cond;
	json_t *v;

	if (!json_is_object(node))
		return fail(c, len, NULL, "must be an object");

	group = get(node, "op") || get(node, "conditions");
	cond = get(node, "field") || get(node, "cmp") || get(node, "value");
	nknown = !!get(node, "op") + !!get(node, "conditions") + !!get(node, "field") +
	         !!get(node, "cmp") + !!get(node, "value");
	if (json_object_size(node) > nknown) {
		/* The iteration macros take a non-const object; nothing is changed. */
		json_object_keylen_foreach((json_t *)node, key, klen, v)
		{
			if (!known_key(key, klen))
				return fail(c, len, NULL, "unknown key \"%s\"",
				            show(shown, key, klen));
		}
	}
	if (group && cond)
		return fail(c, len, NULL,
		            "has both group keys (op, conditions) and condition keys (field, cmp, "
		            "value)");
	if (depth == 1 && !group)
		return fail(c, len, NULL, "must be a group with \"op\" and \"conditions\"");
	if (group)
		return check_group(c, node, len, depth);
	if (cond)
		return check_condition(c, node, len);
	return fail(c, len, NULL,
	            "must be a group (op, conditions) or a condition (field, cmp, value)");
}

static char *copy_bytes(char **strp, const char *s, size_t len)
{
	char *p = *strp;

	memcpy(p, s, len);
	p[len] = '\0';
	*strp = p + len + 1;
	return p;
}

/* The second walk: @node has passed check_node(), so nothing here can fail. */
static void build(struct qc_expr *e, const json_t *node, char **strp)
{
	struct node *n = &e->nodes[e->nnodes++];
	const json_t *kids = get(node, "conditions"), *field, *value;
	size_t i;

	if (kids) {
		n->group = true;
		n->op = str_is(get(node, "op"), "and") ? OP_AND : OP_OR;
		n->nkids = (uint16_t)json_array_size(kids);
		for (i = 0; i < json_array_size(kids); i++)
			build(e, json_array_get(kids, i), strp);
		return;
	}
	field = get(node, "field");
	value = get(node, "value");
	n->op = (uint8_t)find_cmp(json_string_value(get(node, "cmp")),
	                          json_string_length(get(node, "cmp")));
	n->field_len = (uint16_t)json_string_length(field);
	n->field = copy_bytes(strp, json_string_value(field), n->field_len);
	if (json_is_integer(value)) {
		n->vtype = V_INT;
		n->ival = json_integer_value(value);
		n->num = (double)n->ival;
	} else if (json_is_real(value)) {
		n->vtype = V_REAL;
		n->num = json_real_value(value);
	} else if (json_is_string(value)) {
		n->vtype = V_STRING;
		n->str_len = (uint16_t)json_string_length(value);
		n->str = copy_bytes(strp, json_string_value(value), n->str_len);
	} else {
		n->vtype = V_BOOL;
		n->bval = json_is_true(value);
	}
}

struct qc_expr *qc_expr_compile(const json_t *tree, char *err, size_t errlen)
{
	struct compile_ctx c = {.err = err, .errlen = errlen};
	struct qc_expr *e;
	char *strp;

	memcpy(c.path, ROOT, ROOT_LEN + 1);
	if (err && errlen)
		err[0] = '\0';
	if (check_node(&c, tree, ROOT_LEN, 1))
		return NULL;

	e = calloc(1, sizeof(*e) + c.nnodes * sizeof(struct node) + c.bytes);
	if (!e) {
		fail(&c, ROOT_LEN, NULL, "out of memory");
		return NULL;
	}
	strp = (char *)(e->nodes + c.nnodes);
	build(e, tree, &strp);
	return e;
}

void qc_expr_free(struct qc_expr *e)
{
	free(e);
}

/* 1 when @v equals the value of @n, 0 when it differs, -1 when missing or of another type. */
static int match(const struct node *n, const json_t *v)
{
	switch (n->vtype) {
	case V_INT:
	case V_REAL:
		if (!json_is_number(v))
			return -1;
		return json_number_value(v) == n->num;
	case V_STRING:
		if (!json_is_string(v))
			return -1;
		return json_string_length(v) == n->str_len &&
		       !memcmp(json_string_value(v), n->str, n->str_len);
	default:
		if (!json_is_boolean(v))
			return -1;
		return json_is_true(v) == n->bval;
	}
}

static bool test(struct node *n, const json_t *data)
{
	const json_t *v = json_object_getn(data, n->field, n->field_len);
	bool r;
	double x;

	if (n->op == CMP_EQ)
		return match(n, v) == 1;
	if (n->op == CMP_NE)
		return match(n, v) == 0;
	if (!json_is_number(v))
		return false;
	x = json_number_value(v);
	switch (n->op) {
	case CMP_GT:
		return x > n->num;
	case CMP_GTE:
		return x >= n->num;
	case CMP_LT:
		return x < n->num;
	case CMP_LTE:
		return x <= n->num;
	case CMP_CROSSES_ABOVE:
		r = n->has_prev && n->prev <= n->num && x > n->num;
		break;
	default:
		r = n->has_prev && n->prev >= n->num && x < n->num;
		break;
	}
	n->prev = x;
	n->has_prev = true;
	return r;
}

/* Evaluates the subtree at node @i into @out; returns the index of the node after it. */
static size_t eval(struct qc_expr *e, size_t i, const json_t *data, bool *out)
{
	struct node *n = &e->nodes[i++];
	bool r, v;
	uint16_t k;

	if (!n->group) {
		*out = test(n, data);
		return i;
	}
	r = n->op == OP_AND;
	for (k = 0; k < n->nkids; k++) {
		/* Every child runs, whatever @r already is: crossings must see every value. */
		i = eval(e, i, data, &v);
		r = n->op == OP_AND ? (r && v) : (r || v);
	}
	*out = r;
	return i;
}

bool qc_expr_step(struct qc_expr *e, const json_t *data)
{
	bool now, edge;

	eval(e, 0, data, &now);
	edge = now && !e->value;
	e->value = now;
	return edge;
}

bool qc_expr_value(const struct qc_expr *e)
{
	return e->value;
}

void qc_expr_reset(struct qc_expr *e)
{
	size_t i;

	e->value = false;
	for (i = 0; i < e->nnodes; i++) {
		e->nodes[i].has_prev = false;
		e->nodes[i].prev = 0;
	}
}

static json_t *value_json(const struct node *n)
{
	switch (n->vtype) {
	case V_INT:
		return json_integer(n->ival);
	case V_REAL:
		return json_real(n->num);
	case V_STRING:
		return json_stringn(n->str, n->str_len);
	default:
		return json_boolean(n->bval);
	}
}

/* The subtree at node *@i as a new reference (NULL on ENOMEM); *@i moves past it. */
static json_t *node_json(const struct qc_expr *e, size_t *i)
{
	const struct node *n = &e->nodes[(*i)++];
	json_t *o = json_object(), *kids;
	uint16_t k;

	if (!o)
		return NULL;
	if (!n->group) {
		if (json_object_set_new(o, "field", json_stringn(n->field, n->field_len)) ||
		    json_object_set_new(o, "cmp", json_string(cmp_names[n->op])) ||
		    json_object_set_new(o, "value", value_json(n)))
			goto fail_free;
		return o;
	}
	kids = json_array();
	if (json_object_set_new(o, "op", json_string(op_names[n->op])) ||
	    json_object_set_new(o, "conditions", kids))
		goto fail_free;
	for (k = 0; k < n->nkids; k++)
		if (json_array_append_new(kids, node_json(e, i)))
			goto fail_free;
	return o;

fail_free:
	json_decref(o);
	return NULL;
}

json_t *qc_expr_to_json(const struct qc_expr *e)
{
	size_t i = 0;

	return node_json(e, &i);
}

struct flat {
	const struct qc_expr *e;
	size_t i; /* the next node */
	json_int_t ngroups;
	json_t *groups;
	json_t *conds;
};

static int flatten_node(struct flat *f, json_int_t parent, json_int_t pos)
{
	const struct node *n = &f->e->nodes[f->i++];
	json_int_t me;
	json_t *row;
	uint16_t k;

	if (!n->group) {
		row = json_pack("[I,I,s%,s,o]", parent, pos, n->field, (size_t)n->field_len,
		                cmp_names[n->op], value_json(n));
		return json_array_append_new(f->conds, row);
	}
	me = f->ngroups++;
	if (parent < 0)
		row = json_pack("[I,n,s,I]", me, op_names[n->op], pos);
	else
		row = json_pack("[I,I,s,I]", me, parent, op_names[n->op], pos);
	if (json_array_append_new(f->groups, row))
		return -1;
	for (k = 0; k < n->nkids; k++)
		if (flatten_node(f, me, k))
			return -1;
	return 0;
}

json_t *qc_expr_flatten(const struct qc_expr *e)
{
	struct flat f = {.e = e};
	json_t *out;

	out = json_object();
	if (!out)
		return NULL;
	f.groups = json_array();
	f.conds = json_array();
	if (json_object_set_new(out, "groups", f.groups) ||
	    json_object_set_new(out, "conditions", f.conds) || flatten_node(&f, -1, 0)) {
		json_decref(out);
		return NULL;
	}
	return out;
}

struct ugroup {
	const json_t *row;
	size_t rowno;
	json_int_t parent; /* -1: none */
	json_int_t pos;
	size_t nkids;
	size_t first; /* its children's first slot */
	bool seen;
	bool visited;
};

struct uslot {
	bool used;
	bool group;
	size_t idx; /* a group's idx, or a condition's row */
};

struct unflat {
	const json_t *conds;
	char *err;
	size_t errlen;
	size_t ngroups;
	struct ugroup g[MAX_GROUPS];
	struct uslot slot[MAX_GROUPS + QC_EXPR_MAX_CONDITIONS];
};

static bool get_int(const json_t *row, size_t i, json_int_t min, json_int_t max, json_int_t *out)
{
	const json_t *v = json_array_get(row, i);

	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return false;
	*out = json_integer_value(v);
	return true;
}

static int read_groups(struct unflat *u, const json_t *groups)
{
	json_int_t idx, parent, pos, top = (json_int_t)u->ngroups - 1;
	char where[WHERE_SIZE];
	size_t r;

	for (r = 0; r < u->ngroups; r++) {
		const json_t *row = json_array_get(groups, r);

		snprintf(where, sizeof(where), "groups[%zu]", r);
		if (!json_is_array(row) || json_array_size(row) != 4)
			goto fail_shape;
		if (!get_int(row, 0, 0, top, &idx)) {
			ufail(u->err, u->errlen, where, "idx must be an integer from 0 to %lld",
			      (long long)top);
			return -1;
		}
		if (u->g[idx].seen) {
			ufail(u->err, u->errlen, where, "group %lld repeated", (long long)idx);
			return -1;
		}
		if (json_is_null(json_array_get(row, 1))) {
			parent = -1;
		} else if (!get_int(row, 1, 0, top, &parent) || parent == idx) {
			ufail(u->err, u->errlen, where,
			      "parent must be null or another group's idx (0 to %lld)",
			      (long long)top);
			return -1;
		}
		if (!get_int(row, 3, 0, LLONG_MAX, &pos)) {
			ufail(u->err, u->errlen, where, "position must be an integer >= 0");
			return -1;
		}
		if (idx == 0 && (parent >= 0 || pos != 0)) {
			ufail(u->err, u->errlen, where,
			      "group 0 is the root: its parent is null and its position 0");
			return -1;
		}
		if (idx != 0 && parent < 0) {
			ufail(u->err, u->errlen, where, "only group 0 has a null parent");
			return -1;
		}
		u->g[idx].row = row;
		u->g[idx].rowno = r;
		u->g[idx].parent = parent;
		u->g[idx].pos = pos;
		u->g[idx].seen = true;
		if (parent >= 0)
			u->g[parent].nkids++;
	}
	return 0;

fail_shape:
	ufail(u->err, u->errlen, where, "must be an array [idx, parent, op, position]");
	return -1;
}

static int read_conditions(struct unflat *u)
{
	json_int_t gi, pos, top = (json_int_t)u->ngroups - 1;
	char where[WHERE_SIZE];
	size_t r;

	for (r = 0; r < json_array_size(u->conds); r++) {
		const json_t *row = json_array_get(u->conds, r);

		snprintf(where, sizeof(where), "conditions[%zu]", r);
		if (!json_is_array(row) || json_array_size(row) != 5) {
			ufail(u->err, u->errlen, where,
			      "must be an array [group_idx, position, field, cmp, value]");
			return -1;
		}
		if (!get_int(row, 0, 0, top, &gi)) {
			ufail(u->err, u->errlen, where,
			      "group_idx must be an integer from 0 to %lld", (long long)top);
			return -1;
		}
		if (!get_int(row, 1, 0, LLONG_MAX, &pos)) {
			ufail(u->err, u->errlen, where, "position must be an integer >= 0");
			return -1;
		}
		u->g[gi].nkids++;
	}
	return 0;
}

/* Puts a child in its parent's slot @pos; the positions of each group must be 0..k-1. */
static int place(struct unflat *u, const char *where, size_t parent, json_int_t pos, bool group,
                 size_t idx)
{
	struct uslot *s;

	if (pos >= (json_int_t)u->g[parent].nkids) {
		ufail(u->err, u->errlen, where,
		      "position %lld out of range: group %zu has %zu children", (long long)pos,
		      parent, u->g[parent].nkids);
		return -1;
	}
	s = &u->slot[u->g[parent].first + (size_t)pos];
	if (s->used) {
		ufail(u->err, u->errlen, where, "position %lld of group %zu repeated",
		      (long long)pos, parent);
		return -1;
	}
	s->used = true;
	s->group = group;
	s->idx = idx;
	return 0;
}

static json_t *copy_of(const json_t *row, size_t i)
{
	return json_deep_copy(json_array_get(row, i));
}

/* Group @gi as a tree (new reference), or NULL with @u->err set. */
static json_t *rebuild(struct unflat *u, size_t gi, int depth)
{
	struct ugroup *g = &u->g[gi];
	json_t *o, *kids, *kid;
	const json_t *row;
	size_t k;

	if (depth > QC_EXPR_MAX_DEPTH) {
		ufail(u->err, u->errlen, "groups", "nesting deeper than %d", QC_EXPR_MAX_DEPTH);
		return NULL;
	}
	g->visited = true;
	o = json_object();
	if (!o)
		goto fail_nomem;
	kids = json_array();
	if (json_object_set_new(o, "op", copy_of(g->row, 2)) ||
	    json_object_set_new(o, "conditions", kids))
		goto fail_nomem;
	for (k = 0; k < g->nkids; k++) {
		const struct uslot *s = &u->slot[g->first + k];

		if (s->group) {
			kid = rebuild(u, s->idx, depth + 1);
			if (!kid)
				goto fail_free;
		} else {
			row = json_array_get(u->conds, s->idx);
			kid = json_object();
			if (!kid)
				goto fail_nomem;
			if (json_object_set_new(kid, "field", copy_of(row, 2)) ||
			    json_object_set_new(kid, "cmp", copy_of(row, 3)) ||
			    json_object_set_new(kid, "value", copy_of(row, 4))) {
				json_decref(kid);
				goto fail_nomem;
			}
		}
		if (json_array_append_new(kids, kid))
			goto fail_nomem;
	}
	return o;

fail_nomem:
	ufail(u->err, u->errlen, "groups", "out of memory");
fail_free:
	json_decref(o);
	return NULL;
}

json_t *qc_expr_unflatten(const json_t *groups, const json_t *conditions, char *err, size_t errlen)
{
	struct unflat *u;
	char where[WHERE_SIZE];
	json_int_t pos = 0, gi = 0;
	json_t *tree = NULL;
	size_t i, total = 0;

	if (err && errlen)
		err[0] = '\0';
	if (!json_is_array(groups) || !json_array_size(groups)) {
		ufail(err, errlen, "groups", "must be a non-empty array");
		return NULL;
	}
	if (json_array_size(groups) > MAX_GROUPS) {
		ufail(err, errlen, "groups", "more than %d rows", MAX_GROUPS);
		return NULL;
	}
	if (!json_is_array(conditions) || !json_array_size(conditions)) {
		ufail(err, errlen, "conditions", "must be a non-empty array");
		return NULL;
	}
	if (json_array_size(conditions) > QC_EXPR_MAX_CONDITIONS) {
		ufail(err, errlen, "conditions", "more than %d rows", QC_EXPR_MAX_CONDITIONS);
		return NULL;
	}
	/* About 19 KiB of bookkeeping: off the stack of the event loop. */
	u = calloc(1, sizeof(*u));
	if (!u) {
		ufail(err, errlen, "groups", "out of memory");
		return NULL;
	}
	u->conds = conditions;
	u->err = err;
	u->errlen = errlen;
	u->ngroups = json_array_size(groups);
	if (read_groups(u, groups) || read_conditions(u))
		goto out;

	for (i = 0; i < u->ngroups; i++) {
		if (!u->g[i].nkids) {
			snprintf(where, sizeof(where), "groups[%zu]", u->g[i].rowno);
			ufail(err, errlen, where, "group %zu has no conditions", i);
			goto out;
		}
		u->g[i].first = total;
		total += u->g[i].nkids;
	}
	for (i = 1; i < u->ngroups; i++) {
		snprintf(where, sizeof(where), "groups[%zu]", u->g[i].rowno);
		if (place(u, where, (size_t)u->g[i].parent, u->g[i].pos, true, i))
			goto out;
	}
	for (i = 0; i < json_array_size(conditions); i++) {
		const json_t *row = json_array_get(conditions, i);

		snprintf(where, sizeof(where), "conditions[%zu]", i);
		get_int(row, 0, 0, LLONG_MAX, &gi);
		get_int(row, 1, 0, LLONG_MAX, &pos);
		if (place(u, where, (size_t)gi, pos, false, i))
			goto out;
	}

	tree = rebuild(u, 0, 1);
	if (!tree)
		goto out;
	for (i = 0; i < u->ngroups; i++) {
		if (!u->g[i].visited) {
			snprintf(where, sizeof(where), "groups[%zu]", u->g[i].rowno);
			ufail(err, errlen, where, "group %zu does not lead to group 0 (a cycle)",
			      i);
			json_decref(tree);
			tree = NULL;
			goto out;
		}
	}
out:
	free(u);
	return tree;
}
