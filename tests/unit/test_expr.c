/*
 * Unit tests for filter expressions (src/expr.c): every operator on both sides of its
 * boundary, integers and reals, eq/ne on strings and booleans, missing fields and wrong
 * types, nested groups, crossings over sequences of steps, edge triggering, reset, the
 * canonical JSON, flatten/unflatten round trips and bad rows, and malformed trees with the
 * exact error message and path.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "quotecast/expr.h"

static json_t *J(const char *s)
{
	json_error_t e;
	json_t *j = json_loads(s, JSON_ALLOW_NUL | JSON_DECODE_ANY, &e);

	if (!j)
		fail_msg("bad test JSON %s: %s", s, e.text);
	return j;
}

static char *dump(const json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);

	assert_non_null(s);
	return s;
}

static void assert_json(const json_t *j, const char *want)
{
	char *s = dump(j);

	assert_string_equal(s, want);
	free(s);
}

static struct qc_expr *compile(const char *tree)
{
	char err[256] = "";
	json_t *t = J(tree);
	struct qc_expr *e = qc_expr_compile(t, err, sizeof(err));

	if (!e)
		fail_msg("compile %s: %s", tree, err);
	json_decref(t);
	return e;
}

static void expect_err(const char *tree, const char *want)
{
	char err[256];
	json_t *t = J(tree);

	memset(err, 'x', sizeof(err));
	assert_null(qc_expr_compile(t, err, sizeof(err)));
	assert_string_equal(err, want);
	json_decref(t);
}

static bool step(struct qc_expr *e, const char *data)
{
	json_t *d = J(data);
	bool edge = qc_expr_step(e, d);

	json_decref(d);
	return edge;
}

static char *one_tree(char *buf, size_t len, const char *cmp, const char *value)
{
	snprintf(buf, len,
	         "{\"op\":\"and\",\"conditions\":[{\"field\":\"p\",\"cmp\":\"%s\",\"value\":%s}]}",
	         cmp, value);
	return buf;
}

/* The value of the one condition `p <cmp> <value>` on the data `{"p": <p>}` (or @p as data
 * when it starts with '{'). */
static bool eval1(const char *cmp, const char *value, const char *p)
{
	char tree[512], data[512];
	struct qc_expr *e = compile(one_tree(tree, sizeof(tree), cmp, value));
	bool edge, v;

	if (p[0] == '{')
		snprintf(data, sizeof(data), "%s", p);
	else
		snprintf(data, sizeof(data), "{\"p\":%s}", p);
	edge = step(e, data);
	v = qc_expr_value(e);
	assert_true(edge == v); /* the first step: true is always an edge */
	qc_expr_free(e);
	return v;
}

static void test_order_boundaries(void **state)
{
	(void)state;
	assert_true(eval1("gt", "100", "101"));
	assert_false(eval1("gt", "100", "100"));
	assert_false(eval1("gt", "100", "99"));
	assert_true(eval1("gte", "100", "100"));
	assert_true(eval1("gte", "100", "101"));
	assert_false(eval1("gte", "100", "99"));
	assert_true(eval1("lt", "100", "99"));
	assert_false(eval1("lt", "100", "100"));
	assert_false(eval1("lt", "100", "101"));
	assert_true(eval1("lte", "100", "100"));
	assert_true(eval1("lte", "100", "99"));
	assert_false(eval1("lte", "100", "101"));
	assert_true(eval1("gt", "-5", "-4.999"));
	assert_false(eval1("lt", "0", "-0.0"));
}

static void test_integer_and_real(void **state)
{
	(void)state;
	/* integer value, real data */
	assert_false(eval1("gt", "1900", "1900.0"));
	assert_true(eval1("gte", "1900", "1900.0"));
	assert_true(eval1("gt", "1900", "1900.0001"));
	/* real value, integer data */
	assert_true(eval1("lt", "1900.5", "1900"));
	assert_false(eval1("lt", "1900.5", "1901"));
	assert_true(eval1("gt", "1900.5", "1901"));
	assert_true(eval1("lte", "1.5", "1.5"));
	assert_true(eval1("eq", "1900", "1900.0"));
	assert_true(eval1("eq", "1e3", "1000"));
	assert_false(eval1("eq", "1900", "1900.5"));
	assert_true(eval1("ne", "1900", "1900.5"));
	assert_false(eval1("ne", "1900.0", "1900"));
}

static void test_eq_ne(void **state)
{
	(void)state;
	assert_true(eval1("eq", "100", "100"));
	assert_false(eval1("eq", "100", "101"));
	assert_true(eval1("ne", "100", "101"));
	assert_false(eval1("ne", "100", "100"));

	assert_true(eval1("eq", "\"abc\"", "\"abc\""));
	assert_false(eval1("eq", "\"abc\"", "\"abd\""));
	assert_false(eval1("eq", "\"abc\"", "\"ab\""));
	assert_false(eval1("eq", "\"abc\"", "\"abcd\""));
	assert_false(eval1("eq", "\"abc\"", "\"ABC\""));
	assert_true(eval1("eq", "\"\"", "\"\""));
	assert_true(eval1("ne", "\"abc\"", "\"abd\""));
	assert_false(eval1("ne", "\"abc\"", "\"abc\""));
	/* byte equality, NUL bytes included */
	assert_false(eval1("eq", "\"a\\u0000b\"", "\"a\\u0000c\""));
	assert_false(eval1("eq", "\"a\\u0000b\"", "\"a\""));
	assert_true(eval1("eq", "\"a\\u0000b\"", "\"a\\u0000b\""));

	assert_true(eval1("eq", "true", "true"));
	assert_false(eval1("eq", "true", "false"));
	assert_true(eval1("eq", "false", "false"));
	assert_true(eval1("ne", "true", "false"));
	assert_false(eval1("ne", "true", "true"));
	assert_false(eval1("ne", "false", "false"));
}

static void test_missing_and_wrong_type(void **state)
{
	static const char *const cmps[] = {"gt", "gte",           "lt",           "lte", "eq",
	                                   "ne", "crosses_above", "crosses_below"};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cmps) / sizeof(cmps[0]); i++) {
		assert_false(eval1(cmps[i], "1", "{\"q\":1}"));
		assert_false(eval1(cmps[i], "1", "{}"));
		assert_false(eval1(cmps[i], "1", "null"));
		assert_false(eval1(cmps[i], "1", "\"2\""));
		assert_false(eval1(cmps[i], "1", "true"));
		assert_false(eval1(cmps[i], "1", "[2]"));
	}
	/* the field name is matched exactly */
	assert_false(eval1("eq", "1", "{\"P\":1}"));
	assert_false(eval1("eq", "1", "{\"p \":1}"));
	/* eq/ne against another type: false both ways */
	assert_false(eval1("eq", "\"100\"", "100"));
	assert_false(eval1("ne", "\"100\"", "100"));
	assert_false(eval1("ne", "\"x\"", "5"));
	assert_false(eval1("eq", "true", "1"));
	assert_false(eval1("ne", "true", "1"));
	assert_false(eval1("ne", "1", "true"));
	assert_false(eval1("ne", "false", "\"false\""));
	assert_false(eval1("ne", "\"x\"", "{}"));
	/* data that is not an object: every field is missing */
	assert_false(eval1("ne", "1", "[1]"));
}

static void test_data_not_object(void **state)
{
	struct qc_expr *e = compile("{\"op\":\"or\",\"conditions\":[{\"field\":\"p\",\"cmp\":"
	                            "\"ne\",\"value\":1}]}");

	(void)state;
	assert_false(qc_expr_step(e, NULL));
	assert_false(qc_expr_value(e));
	assert_false(step(e, "[1,2]"));
	assert_true(step(e, "{\"p\":2}"));
	qc_expr_free(e);
}

static void test_and_or(void **state)
{
	struct qc_expr *a = compile("{\"op\":\"and\",\"conditions\":["
	                            "{\"field\":\"p\",\"cmp\":\"gt\",\"value\":10},"
	                            "{\"field\":\"v\",\"cmp\":\"lt\",\"value\":5}]}");
	struct qc_expr *o = compile("{\"op\":\"or\",\"conditions\":["
	                            "{\"field\":\"p\",\"cmp\":\"gt\",\"value\":10},"
	                            "{\"field\":\"v\",\"cmp\":\"lt\",\"value\":5}]}");
	static const struct {
		const char *data;
		bool and_, or_;
	} cases[] = {
	    {"{\"p\":11,\"v\":4}", true, true},  {"{\"p\":11,\"v\":5}", false, true},
	    {"{\"p\":10,\"v\":4}", false, true}, {"{\"p\":10,\"v\":5}", false, false},
	    {"{\"p\":11}", false, true},         {"{}", false, false},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		step(a, cases[i].data);
		step(o, cases[i].data);
		assert_true(qc_expr_value(a) == cases[i].and_);
		assert_true(qc_expr_value(o) == cases[i].or_);
	}
	qc_expr_free(a);
	qc_expr_free(o);
}

static void test_nested_three_deep(void **state)
{
	/* p > 10 and (v < 5 or (s == "A" and f == true)) */
	struct qc_expr *e = compile("{\"op\":\"and\",\"conditions\":["
	                            "{\"field\":\"p\",\"cmp\":\"gt\",\"value\":10},"
	                            "{\"op\":\"or\",\"conditions\":["
	                            "{\"field\":\"v\",\"cmp\":\"lt\",\"value\":5},"
	                            "{\"op\":\"and\",\"conditions\":["
	                            "{\"field\":\"s\",\"cmp\":\"eq\",\"value\":\"A\"},"
	                            "{\"field\":\"f\",\"cmp\":\"eq\",\"value\":true}]}]}]}");
	static const struct {
		const char *data;
		bool want;
	} cases[] = {
	    {"{\"p\":11,\"v\":4}", true},
	    {"{\"p\":11,\"v\":6,\"s\":\"A\",\"f\":true}", true},
	    {"{\"p\":11,\"v\":6,\"s\":\"A\",\"f\":false}", false},
	    {"{\"p\":11,\"v\":6,\"s\":\"B\",\"f\":true}", false},
	    {"{\"p\":11,\"s\":\"A\"}", false},
	    {"{\"p\":9,\"v\":4,\"s\":\"A\",\"f\":true}", false},
	    {"{\"p\":11,\"s\":\"A\",\"f\":true}", true},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		step(e, cases[i].data);
		assert_true(qc_expr_value(e) == cases[i].want);
	}
	qc_expr_free(e);
}

static void test_crosses_above(void **state)
{
	char tree[256];
	struct qc_expr *e = compile(one_tree(tree, sizeof(tree), "crosses_above", "100"));

	(void)state;
	assert_false(step(e, "{\"p\":90}")); /* no previous value */
	assert_false(step(e, "{\"p\":95}"));
	assert_true(step(e, "{\"p\":105}")); /* below -> above: edge */
	assert_true(qc_expr_value(e));
	assert_false(step(e, "{\"p\":110}")); /* above again: no crossing */
	assert_false(qc_expr_value(e));
	assert_false(step(e, "{\"p\":90}")); /* back below */
	assert_true(step(e, "{\"p\":120}")); /* above again: edge */
	/* at the boundary: from exactly V upwards crosses; to exactly V does not */
	assert_false(step(e, "{\"p\":50}"));
	assert_false(step(e, "{\"p\":100}"));
	assert_true(step(e, "{\"p\":100.5}"));
	qc_expr_free(e);

	/* the first value seen, however high, is no crossing */
	e = compile(one_tree(tree, sizeof(tree), "crosses_above", "100"));
	assert_false(step(e, "{\"p\":200}"));
	assert_false(step(e, "{\"p\":300}"));
	qc_expr_free(e);

	/* a step without the field, or with a non-number, keeps the previous value */
	e = compile(one_tree(tree, sizeof(tree), "crosses_above", "100.5"));
	assert_false(step(e, "{\"p\":90}"));
	assert_false(step(e, "{\"q\":200}"));
	assert_false(step(e, "{\"p\":\"200\"}"));
	assert_true(step(e, "{\"p\":101}"));
	qc_expr_free(e);
}

static void test_crosses_below(void **state)
{
	char tree[256];
	struct qc_expr *e = compile(one_tree(tree, sizeof(tree), "crosses_below", "100"));

	(void)state;
	assert_false(step(e, "{\"p\":110}"));
	assert_false(step(e, "{\"p\":105}"));
	assert_true(step(e, "{\"p\":95}"));
	assert_false(step(e, "{\"p\":90}"));
	assert_false(step(e, "{\"p\":100}")); /* to exactly V: no */
	assert_true(step(e, "{\"p\":99.9}")); /* from exactly V: yes */
	assert_false(step(e, "{\"p\":150}"));
	assert_true(step(e, "{\"p\":-1}"));
	qc_expr_free(e);
}

static void test_no_short_circuit(void **state)
{
	/* The crossing is the second child: a short-circuiting or would skip it on step 1 and
	 * never see q = 5. */
	struct qc_expr *o = compile("{\"op\":\"or\",\"conditions\":["
	                            "{\"field\":\"p\",\"cmp\":\"gt\",\"value\":0},"
	                            "{\"field\":\"q\",\"cmp\":\"crosses_above\",\"value\":10}]}");
	struct qc_expr *a = compile("{\"op\":\"and\",\"conditions\":["
	                            "{\"field\":\"p\",\"cmp\":\"gt\",\"value\":0},"
	                            "{\"field\":\"q\",\"cmp\":\"crosses_above\",\"value\":10}]}");

	(void)state;
	assert_true(step(o, "{\"p\":1,\"q\":5}"));
	assert_false(step(o, "{\"p\":0,\"q\":15}"));
	assert_true(qc_expr_value(o));
	qc_expr_free(o);

	assert_false(step(a, "{\"p\":0,\"q\":5}"));
	assert_true(step(a, "{\"p\":1,\"q\":15}"));
	qc_expr_free(a);
}

static void test_edges(void **state)
{
	char tree[256];
	struct qc_expr *e = compile(one_tree(tree, sizeof(tree), "gt", "10"));
	int edges = 0;

	(void)state;
	assert_false(qc_expr_value(e));
	/* true, true: one edge */
	edges += step(e, "{\"p\":11}");
	assert_true(qc_expr_value(e));
	edges += step(e, "{\"p\":12}");
	assert_true(qc_expr_value(e));
	assert_int_equal(edges, 1);
	/* then false, true: a second edge */
	edges += step(e, "{\"p\":5}");
	assert_false(qc_expr_value(e));
	edges += step(e, "{\"p\":20}");
	assert_int_equal(edges, 2);
	/* a step without the field makes it false; the next true is an edge again */
	assert_false(step(e, "{}"));
	assert_true(step(e, "{\"p\":30}"));
	qc_expr_free(e);

	/* true, false, true from the start: two edges */
	e = compile(one_tree(tree, sizeof(tree), "gt", "10"));
	edges = step(e, "{\"p\":11}");
	edges += step(e, "{\"p\":9}");
	edges += step(e, "{\"p\":11}");
	assert_int_equal(edges, 2);
	qc_expr_free(e);

	/* false first: no edge until it becomes true */
	e = compile(one_tree(tree, sizeof(tree), "gt", "10"));
	assert_false(step(e, "{\"p\":1}"));
	assert_false(step(e, "{\"p\":2}"));
	assert_true(step(e, "{\"p\":11}"));
	qc_expr_free(e);
}

static void test_reset(void **state)
{
	char tree[256];
	struct qc_expr *e = compile(one_tree(tree, sizeof(tree), "gt", "10"));

	(void)state;
	assert_true(step(e, "{\"p\":11}"));
	assert_false(step(e, "{\"p\":11}"));
	qc_expr_reset(e);
	assert_false(qc_expr_value(e));
	assert_true(step(e, "{\"p\":11}")); /* an edge again */
	qc_expr_free(e);

	e = compile(one_tree(tree, sizeof(tree), "crosses_above", "100"));
	assert_false(step(e, "{\"p\":90}"));
	qc_expr_reset(e);
	assert_false(step(e, "{\"p\":105}")); /* the 90 is forgotten */
	assert_false(step(e, "{\"p\":95}"));
	qc_expr_reset(e);
	assert_false(step(e, "{\"p\":95}"));
	assert_true(step(e, "{\"p\":105}"));
	assert_true(qc_expr_value(e));
	qc_expr_reset(e);
	assert_false(qc_expr_value(e));
	qc_expr_free(e);
}

static void test_to_json_canonical(void **state)
{
	struct qc_expr *e =
	    compile("{\"conditions\":[{\"value\":1900,\"cmp\":\"gt\",\"field\":\"price\"},"
	            "{\"conditions\":[{\"cmp\":\"eq\",\"value\":\"up\",\"field\":\"dir\"},"
	            "{\"value\":true,\"field\":\"open\",\"cmp\":\"ne\"}],\"op\":\"or\"},"
	            "{\"field\":\"volume\",\"value\":1.5,\"cmp\":\"crosses_below\"},"
	            "{\"field\":\"x\",\"value\":-7,\"cmp\":\"lte\"}],\"op\":\"and\"}");
	json_t *j;

	(void)state;
	j = qc_expr_to_json(e);
	assert_json(j, "{\"op\":\"and\",\"conditions\":["
	               "{\"field\":\"price\",\"cmp\":\"gt\",\"value\":1900},"
	               "{\"op\":\"or\",\"conditions\":["
	               "{\"field\":\"dir\",\"cmp\":\"eq\",\"value\":\"up\"},"
	               "{\"field\":\"open\",\"cmp\":\"ne\",\"value\":true}]},"
	               "{\"field\":\"volume\",\"cmp\":\"crosses_below\",\"value\":1.5},"
	               "{\"field\":\"x\",\"cmp\":\"lte\",\"value\":-7}]}");
	assert_true(json_is_integer(
	    json_object_get(json_array_get(json_object_get(j, "conditions"), 0), "value")));
	assert_true(json_is_real(
	    json_object_get(json_array_get(json_object_get(j, "conditions"), 2), "value")));
	json_decref(j);
	qc_expr_free(e);

	/* a large integer survives exactly */
	e = compile("{\"op\":\"or\",\"conditions\":[{\"field\":\"n\",\"cmp\":\"eq\","
	            "\"value\":9007199254740993}]}");
	j = qc_expr_to_json(e);
	assert_json(j, "{\"op\":\"or\",\"conditions\":[{\"field\":\"n\",\"cmp\":\"eq\","
	               "\"value\":9007199254740993}]}");
	json_decref(j);
	qc_expr_free(e);
}

static const char *const mixed_tree =
    "{\"op\":\"and\",\"conditions\":["
    "{\"field\":\"a\",\"cmp\":\"gt\",\"value\":1},"
    "{\"op\":\"or\",\"conditions\":["
    "{\"field\":\"b\",\"cmp\":\"eq\",\"value\":\"x\"},"
    "{\"op\":\"and\",\"conditions\":["
    "{\"field\":\"c\",\"cmp\":\"lt\",\"value\":2.5},"
    "{\"op\":\"or\",\"conditions\":[{\"field\":\"d\",\"cmp\":\"ne\",\"value\":false}]},"
    "{\"field\":\"e\",\"cmp\":\"crosses_above\",\"value\":3}]},"
    "{\"field\":\"f\",\"cmp\":\"gte\",\"value\":4}]},"
    "{\"field\":\"g\",\"cmp\":\"crosses_below\",\"value\":-5},"
    "{\"op\":\"and\",\"conditions\":[{\"field\":\"h\",\"cmp\":\"lte\",\"value\":6}]}]}";

static void test_flatten_rows(void **state)
{
	struct qc_expr *e = compile(mixed_tree);
	json_t *f = qc_expr_flatten(e);

	(void)state;
	assert_json(json_object_get(f, "groups"),
	            "[[0,null,\"and\",0],[1,0,\"or\",1],[2,1,\"and\",1],[3,2,\"or\",1],"
	            "[4,0,\"and\",3]]");
	assert_json(json_object_get(f, "conditions"),
	            "[[0,0,\"a\",\"gt\",1],[1,0,\"b\",\"eq\",\"x\"],[2,0,\"c\",\"lt\",2.5],"
	            "[3,0,\"d\",\"ne\",false],[2,2,\"e\",\"crosses_above\",3],"
	            "[1,2,\"f\",\"gte\",4],[0,2,\"g\",\"crosses_below\",-5],"
	            "[4,0,\"h\",\"lte\",6]]");
	json_decref(f);
	qc_expr_free(e);
}

static json_t *reversed(const json_t *a)
{
	json_t *r = json_array();
	size_t i;

	for (i = json_array_size(a); i-- > 0;)
		json_array_append(r, json_array_get(a, i));
	return r;
}

/* flatten, shuffle the rows, unflatten, compile: the same tree every time */
static void round_trip(const char *tree)
{
	char err[256] = "";
	struct qc_expr *e = compile(tree), *e2;
	json_t *f = qc_expr_flatten(e), *canon = qc_expr_to_json(e), *g, *c, *t, *t2;

	g = reversed(json_object_get(f, "groups"));
	c = reversed(json_object_get(f, "conditions"));
	/* also swap two condition rows, so the order is not simply reversed */
	if (json_array_size(c) > 2) {
		json_t *x = json_incref(json_array_get(c, 0));

		json_array_set(c, 0, json_array_get(c, 2));
		json_array_set_new(c, 2, x);
	}
	t = qc_expr_unflatten(g, c, err, sizeof(err));
	if (!t)
		fail_msg("unflatten: %s", err);
	assert_true(json_equal(t, canon));
	e2 = qc_expr_compile(t, err, sizeof(err));
	if (!e2)
		fail_msg("compile after unflatten: %s", err);
	t2 = qc_expr_to_json(e2);
	assert_true(json_equal(t2, canon));
	/* and in the order flatten gave */
	json_decref(t);
	t = qc_expr_unflatten(json_object_get(f, "groups"), json_object_get(f, "conditions"), err,
	                      sizeof(err));
	assert_non_null(t);
	assert_true(json_equal(t, canon));

	json_decref(t);
	json_decref(t2);
	json_decref(g);
	json_decref(c);
	json_decref(canon);
	json_decref(f);
	qc_expr_free(e2);
	qc_expr_free(e);
}

static void test_round_trip(void **state)
{
	(void)state;
	round_trip(mixed_tree);
	round_trip("{\"op\":\"or\",\"conditions\":[{\"field\":\"p\",\"cmp\":\"gt\",\"value\":1}]}");
	round_trip("{\"op\":\"and\",\"conditions\":[{\"op\":\"or\",\"conditions\":["
	           "{\"field\":\"p\",\"cmp\":\"eq\",\"value\":\"s\"}]},"
	           "{\"field\":\"q\",\"cmp\":\"ne\",\"value\":true},"
	           "{\"op\":\"and\",\"conditions\":[{\"field\":\"r\",\"cmp\":\"lt\","
	           "\"value\":0.25}]}]}");
}

static void test_round_trip_state(void **state)
{
	/* the rebuilt expression behaves as the original */
	char err[256];
	struct qc_expr *e = compile(mixed_tree), *e2;
	json_t *f = qc_expr_flatten(e), *t;
	static const char *const data[] = {
	    "{\"a\":2,\"b\":\"x\",\"g\":0,\"h\":6}", "{\"a\":2,\"b\":\"x\",\"g\":-6,\"h\":6}",
	    "{\"a\":2,\"f\":4,\"g\":-4,\"h\":6}",    "{\"a\":2,\"f\":4,\"g\":-6,\"h\":6}",
	    "{\"a\":2,\"f\":4,\"g\":-7,\"h\":6}",
	};
	size_t i;
	int edges = 0;
	bool edge;

	(void)state;
	t = qc_expr_unflatten(json_object_get(f, "groups"), json_object_get(f, "conditions"), err,
	                      sizeof(err));
	assert_non_null(t);
	e2 = qc_expr_compile(t, err, sizeof(err));
	assert_non_null(e2);
	for (i = 0; i < sizeof(data) / sizeof(data[0]); i++) {
		edge = step(e, data[i]);
		assert_true(edge == step(e2, data[i]));
		assert_true(qc_expr_value(e) == qc_expr_value(e2));
		edges += edge;
	}
	/* g crosses below -5 twice, once through b and once through f */
	assert_int_equal(edges, 2);
	json_decref(t);
	json_decref(f);
	qc_expr_free(e);
	qc_expr_free(e2);
}

static void expect_unflat(const char *groups, const char *conds, const char *want)
{
	char err[256];
	json_t *g = J(groups), *c = J(conds);

	memset(err, 'x', sizeof(err));
	assert_null(qc_expr_unflatten(g, c, err, sizeof(err)));
	assert_string_equal(err, want);
	json_decref(g);
	json_decref(c);
}

static void test_unflatten_bad_rows(void **state)
{
	const char *c1 = "[[0,0,\"p\",\"gt\",1]]";
	char big[8192];
	size_t i, n;

	(void)state;
	expect_unflat("{}", c1, "groups: must be a non-empty array");
	expect_unflat("[]", c1, "groups: must be a non-empty array");
	expect_unflat("[[0,null,\"and\",0]]", "[]", "conditions: must be a non-empty array");
	expect_unflat("[[0,null,\"and\",0]]", "null", "conditions: must be a non-empty array");
	expect_unflat("[[0,null,\"and\"]]", c1,
	              "groups[0]: must be an array [idx, parent, op, position]");
	expect_unflat("[{\"idx\":0}]", c1,
	              "groups[0]: must be an array [idx, parent, op, position]");
	expect_unflat("[[1,null,\"and\",0]]", c1, "groups[0]: idx must be an integer from 0 to 0");
	expect_unflat("[[\"0\",null,\"and\",0]]", c1,
	              "groups[0]: idx must be an integer from 0 to 0");
	expect_unflat("[[0,null,\"and\",0],[0,0,\"or\",1]]", c1, "groups[1]: group 0 repeated");
	expect_unflat("[[0,1,\"and\",0],[1,0,\"or\",0]]", c1,
	              "groups[0]: group 0 is the root: its parent is null and its position 0");
	expect_unflat("[[0,null,\"and\",1]]", c1,
	              "groups[0]: group 0 is the root: its parent is null and its position 0");
	expect_unflat("[[0,null,\"and\",0],[1,null,\"or\",0]]", c1,
	              "groups[1]: only group 0 has a null parent");
	expect_unflat("[[0,null,\"and\",0],[1,1,\"or\",0]]", c1,
	              "groups[1]: parent must be null or another group's idx (0 to 1)");
	expect_unflat("[[0,null,\"and\",0],[1,5,\"or\",0]]", c1,
	              "groups[1]: parent must be null or another group's idx (0 to 1)");
	expect_unflat("[[0,null,\"and\",0],[1,0,\"or\",-1]]", c1,
	              "groups[1]: position must be an integer >= 0");
	expect_unflat("[[0,null,\"and\",0]]", "[[0,0,\"p\",\"gt\"]]",
	              "conditions[0]: must be an array [group_idx, position, field, cmp, value]");
	expect_unflat("[[0,null,\"and\",0]]", "[[1,0,\"p\",\"gt\",1]]",
	              "conditions[0]: group_idx must be an integer from 0 to 0");
	expect_unflat("[[0,null,\"and\",0]]", "[[0,null,\"p\",\"gt\",1]]",
	              "conditions[0]: position must be an integer >= 0");
	/* a group without children */
	expect_unflat("[[0,null,\"and\",0],[1,0,\"or\",1]]", c1,
	              "groups[1]: group 1 has no conditions");
	/* positions: repeated, and a gap */
	expect_unflat("[[0,null,\"and\",0]]", "[[0,0,\"p\",\"gt\",1],[0,0,\"q\",\"gt\",1]]",
	              "conditions[1]: position 0 of group 0 repeated");
	expect_unflat("[[0,null,\"and\",0]]", "[[0,0,\"p\",\"gt\",1],[0,2,\"q\",\"gt\",1]]",
	              "conditions[1]: position 2 out of range: group 0 has 2 children");
	expect_unflat("[[0,null,\"and\",0],[1,0,\"or\",0]]",
	              "[[0,0,\"p\",\"gt\",1],[1,0,\"q\",\"gt\",1]]",
	              "conditions[0]: position 0 of group 0 repeated");
	/* a cycle beside the root: 1 and 2 are each other's parent */
	expect_unflat("[[2,1,\"or\",0],[0,null,\"and\",0],[1,2,\"or\",0]]",
	              "[[0,0,\"p\",\"gt\",1]]",
	              "groups[2]: group 1 does not lead to group 0 (a cycle)");
	/* nine groups deep */
	n = (size_t)snprintf(big, sizeof(big), "[[0,null,\"and\",0]");
	for (i = 1; i < 9; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, ",[%zu,%zu,\"and\",0]", i, i - 1);
	snprintf(big + n, sizeof(big) - n, "]");
	expect_unflat(big, "[[8,0,\"p\",\"gt\",1]]", "groups: nesting deeper than 8");
	/* 33 condition rows */
	n = (size_t)snprintf(big, sizeof(big), "[");
	for (i = 0; i < 33; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "%s[0,%zu,\"p\",\"gt\",1]",
		                      i ? "," : "", i);
	snprintf(big + n, sizeof(big) - n, "]");
	expect_unflat("[[0,null,\"and\",0]]", big, "conditions: more than 32 rows");
}

static void test_unflatten_limits_ok(void **state)
{
	char big[8192], err[256];
	json_t *g, *c, *t;
	struct qc_expr *e;
	size_t i, n;

	(void)state;
	/* eight groups deep, 32 conditions: accepted */
	n = (size_t)snprintf(big, sizeof(big), "[[0,null,\"and\",0]");
	for (i = 1; i < 8; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, ",[%zu,%zu,\"or\",0]", i, i - 1);
	snprintf(big + n, sizeof(big) - n, "]");
	g = J(big);
	n = (size_t)snprintf(big, sizeof(big), "[");
	for (i = 0; i < 32; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "%s[7,%zu,\"p\",\"gt\",%zu]",
		                      i ? "," : "", i, i);
	snprintf(big + n, sizeof(big) - n, "]");
	c = J(big);
	t = qc_expr_unflatten(g, c, err, sizeof(err));
	assert_non_null(t);
	e = qc_expr_compile(t, err, sizeof(err));
	assert_non_null(e);
	assert_true(step(e, "{\"p\":0.5}"));
	qc_expr_free(e);
	json_decref(t);
	json_decref(g);
	json_decref(c);

	/* contents are copied unchecked: compile finds the bad operator */
	g = J("[[0,null,\"and\",0]]");
	c = J("[[0,0,\"p\",\"gtx\",1]]");
	t = qc_expr_unflatten(g, c, err, sizeof(err));
	assert_non_null(t);
	assert_null(qc_expr_compile(t, err, sizeof(err)));
	assert_string_equal(err, "filter.conditions[0].cmp: unknown operator \"gtx\"");
	json_decref(t);
	/* and the result shares nothing with the rows */
	t = qc_expr_unflatten(g, c, err, sizeof(err));
	assert_non_null(t);
	json_string_set(json_array_get(json_array_get(c, 0), 2), "changed");
	assert_json(t, "{\"op\":\"and\",\"conditions\":[{\"field\":\"p\",\"cmp\":\"gtx\","
	               "\"value\":1}]}");
	json_decref(t);
	json_decref(g);
	json_decref(c);
}

static void test_malformed_objects(void **state)
{
	char err[64];

	(void)state;
	expect_err("[]", "filter: must be an object");
	expect_err("\"and\"", "filter: must be an object");
	expect_err("{\"op\":\"and\",\"conditions\":[1]}",
	           "filter.conditions[0]: must be an object");
	expect_err("{\"op\":\"and\",\"conditions\":[{\"op\":\"or\",\"conditions\":["
	           "{\"field\":\"p\",\"cmp\":\"gt\",\"value\":1},null]}]}",
	           "filter.conditions[0].conditions[1]: must be an object");
	assert_null(qc_expr_compile(NULL, err, sizeof(err)));
	assert_string_equal(err, "filter: must be an object");
	/* no room for a message, or none at all: still refused */
	assert_null(qc_expr_compile(NULL, NULL, 0));
	assert_null(qc_expr_compile(NULL, err, 8));
	assert_string_equal(err, "filter:");
	/* the root must be a group */
	expect_err("{\"field\":\"p\",\"cmp\":\"gt\",\"value\":1}",
	           "filter: must be a group with \"op\" and \"conditions\"");
	expect_err("{}", "filter: must be a group with \"op\" and \"conditions\"");
	expect_err("{\"op\":\"and\",\"conditions\":[{}]}",
	           "filter.conditions[0]: must be a group (op, conditions) or a condition "
	           "(field, cmp, value)");
}

static void test_malformed_groups(void **state)
{
	(void)state;
	expect_err("{\"op\":\"xor\",\"conditions\":[{\"field\":\"p\",\"cmp\":\"gt\",\"value\":1}]}",
	           "filter.op: must be \"and\" or \"or\"");
	expect_err("{\"op\":\"AND\",\"conditions\":[{\"field\":\"p\",\"cmp\":\"gt\",\"value\":1}]}",
	           "filter.op: must be \"and\" or \"or\"");
	expect_err("{\"op\":1,\"conditions\":[{\"field\":\"p\",\"cmp\":\"gt\",\"value\":1}]}",
	           "filter.op: must be \"and\" or \"or\"");
	expect_err("{\"op\":\"and\\u0000\",\"conditions\":[{\"field\":\"p\",\"cmp\":\"gt\","
	           "\"value\":1}]}",
	           "filter.op: must be \"and\" or \"or\"");
	expect_err("{\"conditions\":[{\"field\":\"p\",\"cmp\":\"gt\",\"value\":1}]}",
	           "filter.op: must be \"and\" or \"or\"");
	expect_err("{\"op\":\"and\",\"conditions\":[]}",
	           "filter.conditions: must be a non-empty array");
	expect_err("{\"op\":\"and\"}", "filter.conditions: must be a non-empty array");
	expect_err("{\"op\":\"and\",\"conditions\":{}}",
	           "filter.conditions: must be a non-empty array");
	expect_err("{\"op\":\"and\",\"conditions\":\"x\"}",
	           "filter.conditions: must be a non-empty array");
	expect_err("{\"op\":\"and\",\"conditions\":[{\"op\":\"or\",\"conditions\":[]}]}",
	           "filter.conditions[0].conditions: must be a non-empty array");
	expect_err("{\"op\":\"and\",\"conditions\":[{\"field\":\"p\",\"cmp\":\"gt\",\"value\":1},"
	           "{\"op\":\"or\",\"conditions\":[{\"op\":\"bad\",\"conditions\":[]}]}]}",
	           "filter.conditions[1].conditions[0].op: must be \"and\" or \"or\"");
	/* a group with condition keys */
	expect_err("{\"op\":\"and\",\"conditions\":[{\"op\":\"or\",\"field\":\"p\","
	           "\"conditions\":[{\"field\":\"p\",\"cmp\":\"gt\",\"value\":1}]}]}",
	           "filter.conditions[0]: has both group keys (op, conditions) and condition keys "
	           "(field, cmp, value)");
	expect_err(
	    "{\"op\":\"and\",\"field\":\"p\",\"conditions\":[{\"field\":\"p\",\"cmp\":\"gt\","
	    "\"value\":1}]}",
	    "filter: has both group keys (op, conditions) and condition keys (field, cmp, "
	    "value)");
	/* unknown keys */
	expect_err("{\"op\":\"and\",\"conditions\":[{\"field\":\"p\",\"cmp\":\"gt\",\"value\":1,"
	           "\"extra\":1}]}",
	           "filter.conditions[0]: unknown key \"extra\"");
	expect_err("{\"op\":\"and\",\"name\":\"x\",\"conditions\":[{\"field\":\"p\",\"cmp\":\"gt\","
	           "\"value\":1}]}",
	           "filter: unknown key \"name\"");
	expect_err("{\"op\":\"and\",\"conditions\":[{\"Field\":\"p\",\"cmp\":\"gt\",\"value\":1}]}",
	           "filter.conditions[0]: unknown key \"Field\"");
	/* a key with a NUL byte (the parser refuses those, the API does not) is not "op";
	 * shown with ? for the unprintable byte */
	{
		char err[128];
		json_t *t = J("{\"op\":\"and\",\"conditions\":[{\"field\":\"p\",\"cmp\":"
		              "\"gt\",\"value\":1}]}");

		assert_int_equal(json_object_setn_new(t, "op\0x", 4, json_string("and")), 0);
		assert_null(qc_expr_compile(t, err, sizeof(err)));
		assert_string_equal(err, "filter: unknown key \"op?x\"");
		json_decref(t);
	}
}

static void test_malformed_conditions(void **state)
{
	static const char *const order[] = {"gte", "lt", "lte", "crosses_above", "crosses_below"};
	static const char *const not_numbers[] = {"true", "null", "[1]", "{}", "\"1\""};
	char tree[1024], want[256], field[80];
	size_t i, k;

	(void)state;
	expect_err("{\"op\":\"and\",\"conditions\":[{\"field\":\"p\",\"cmp\":\"gt\",\"value\":1},"
	           "{\"field\":\"p\",\"cmp\":\"gtx\",\"value\":1}]}",
	           "filter.conditions[1].cmp: unknown operator \"gtx\"");
	expect_err("{\"op\":\"and\",\"conditions\":[{\"field\":\"p\",\"cmp\":\"\",\"value\":1}]}",
	           "filter.conditions[0].cmp: unknown operator \"\"");
	expect_err("{\"op\":\"and\",\"conditions\":[{\"field\":\"p\",\"cmp\":\"GT\",\"value\":1}]}",
	           "filter.conditions[0].cmp: unknown operator \"GT\"");
	expect_err("{\"op\":\"and\",\"conditions\":[{\"field\":\"p\",\"cmp\":\"crosses\","
	           "\"value\":1}]}",
	           "filter.conditions[0].cmp: unknown operator \"crosses\"");
	/* an operator quoted back is cut short and kept printable */
	expect_err(
	    "{\"op\":\"and\",\"conditions\":[{\"field\":\"p\",\"cmp\":"
	    "\"a\\nb\\\"cdefghijklmnopqrstuvwxyz0123456789\",\"value\":1}]}",
	    "filter.conditions[0].cmp: unknown operator \"a?b\"cdefghijklmnopqrstuvwxyz0123...\"");
	expect_err("{\"op\":\"and\",\"conditions\":[{\"field\":\"p\",\"cmp\":5,\"value\":1}]}",
	           "filter.conditions[0].cmp: must be a string");
	expect_err("{\"op\":\"and\",\"conditions\":[{\"field\":\"p\",\"value\":1}]}",
	           "filter.conditions[0].cmp: missing");

	expect_err("{\"op\":\"and\",\"conditions\":[{\"cmp\":\"gt\",\"value\":1}]}",
	           "filter.conditions[0].field: missing");
	expect_err("{\"op\":\"and\",\"conditions\":[{\"field\":7,\"cmp\":\"gt\",\"value\":1}]}",
	           "filter.conditions[0].field: must be a string");
	expect_err("{\"op\":\"and\",\"conditions\":[{\"field\":\"\",\"cmp\":\"gt\",\"value\":1}]}",
	           "filter.conditions[0].field: must be 1 to 64 bytes");
	memset(field, 'f', 65);
	field[65] = '\0';
	snprintf(tree, sizeof(tree),
	         "{\"op\":\"and\",\"conditions\":[{\"field\":\"%s\",\"cmp\":\"gt\",\"value\":1}]}",
	         field);
	expect_err(tree, "filter.conditions[0].field: must be 1 to 64 bytes");
	field[64] = '\0';
	snprintf(tree, sizeof(tree),
	         "{\"op\":\"and\",\"conditions\":[{\"field\":\"%s\",\"cmp\":\"gt\",\"value\":1}]}",
	         field);
	qc_expr_free(compile(tree));
	/* 64 bytes, not 64 characters: 22 three-byte characters are 66 bytes */
	snprintf(
	    tree, sizeof(tree),
	    "{\"op\":\"and\",\"conditions\":[{\"field\":\"%s\",\"cmp\":"
	    "\"gt\",\"value\":1}]}",
	    "\xe4\xbb\xb7\xe4\xbb\xb7\xe4\xbb\xb7\xe4\xbb\xb7\xe4\xbb\xb7\xe4\xbb\xb7\xe4\xbb\xb7"
	    "\xe4\xbb\xb7\xe4\xbb\xb7\xe4\xbb\xb7\xe4\xbb\xb7\xe4\xbb\xb7\xe4\xbb\xb7\xe4\xbb\xb7"
	    "\xe4\xbb\xb7\xe4\xbb\xb7\xe4\xbb\xb7\xe4\xbb\xb7\xe4\xbb\xb7\xe4\xbb\xb7\xe4\xbb\xb7"
	    "\xe4\xbb\xb7");
	expect_err(tree, "filter.conditions[0].field: must be 1 to 64 bytes");
	expect_err("{\"op\":\"and\",\"conditions\":[{\"field\":\"pr\\nice\",\"cmp\":\"gt\","
	           "\"value\":1}]}",
	           "filter.conditions[0].field: must not contain control characters");
	expect_err("{\"op\":\"and\",\"conditions\":[{\"field\":\"p\\u0000\",\"cmp\":\"gt\","
	           "\"value\":1}]}",
	           "filter.conditions[0].field: must not contain control characters");
	expect_err("{\"op\":\"and\",\"conditions\":[{\"field\":\"p\\u007f\",\"cmp\":\"gt\","
	           "\"value\":1}]}",
	           "filter.conditions[0].field: must not contain control characters");

	expect_err("{\"op\":\"and\",\"conditions\":[{\"field\":\"p\",\"cmp\":\"gt\"}]}",
	           "filter.conditions[0].value: missing");
	expect_err("{\"op\":\"and\",\"conditions\":[{\"field\":\"p\",\"cmp\":\"gt\",\"value\":1},"
	           "{\"field\":\"p\",\"cmp\":\"gt\",\"value\":1},"
	           "{\"field\":\"p\",\"cmp\":\"gt\",\"value\":\"1900\"}]}",
	           "filter.conditions[2].value: must be a number for \"gt\"");
	for (i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		for (k = 0; k < sizeof(not_numbers) / sizeof(not_numbers[0]); k++) {
			snprintf(want, sizeof(want),
			         "filter.conditions[0].value: must be a number for \"%s\"",
			         order[i]);
			expect_err(one_tree(tree, sizeof(tree), order[i], not_numbers[k]), want);
		}
	expect_err(one_tree(tree, sizeof(tree), "eq", "null"),
	           "filter.conditions[0].value: must be a number, string or boolean for \"eq\"");
	expect_err(one_tree(tree, sizeof(tree), "ne", "[1]"),
	           "filter.conditions[0].value: must be a number, string or boolean for \"ne\"");
	expect_err(one_tree(tree, sizeof(tree), "eq", "{\"a\":1}"),
	           "filter.conditions[0].value: must be a number, string or boolean for \"eq\"");
}

static void test_string_value_limit(void **state)
{
	char s[300], tree[1024], data[1024], err[256];
	json_t *t;
	struct qc_expr *e;

	(void)state;
	/* 256 bytes between the quotes: accepted */
	s[0] = '"';
	memset(s + 1, 's', 256);
	s[257] = '"';
	s[258] = '\0';
	e = compile(one_tree(tree, sizeof(tree), "eq", s));
	snprintf(data, sizeof(data), "{\"p\":%s}", s);
	assert_true(step(e, data));
	qc_expr_free(e);
	/* 257: refused */
	s[257] = 's';
	s[258] = '"';
	s[259] = '\0';
	t = J(one_tree(tree, sizeof(tree), "ne", s));
	assert_null(qc_expr_compile(t, err, sizeof(err)));
	assert_string_equal(err, "filter.conditions[0].value: must be at most 256 bytes");
	json_decref(t);
}

static void nest(char *buf, size_t len, int groups)
{
	size_t n = 0;
	int i;

	for (i = 0; i < groups; i++)
		n += (size_t)snprintf(buf + n, len - n, "{\"op\":\"%s\",\"conditions\":[",
		                      i % 2 ? "or" : "and");
	n += (size_t)snprintf(buf + n, len - n, "{\"field\":\"p\",\"cmp\":\"gt\",\"value\":1}");
	for (i = 0; i < groups; i++)
		n += (size_t)snprintf(buf + n, len - n, "]}");
}

static void test_depth(void **state)
{
	char tree[2048];
	struct qc_expr *e;

	(void)state;
	nest(tree, sizeof(tree), 8);
	e = compile(tree);
	assert_true(step(e, "{\"p\":2}"));
	assert_false(step(e, "{\"p\":0}"));
	qc_expr_free(e);
	nest(tree, sizeof(tree), 9);
	expect_err(tree, "filter: nesting deeper than 8");
	nest(tree, sizeof(tree), 50);
	expect_err(tree, "filter: nesting deeper than 8");
}

static void many(char *buf, size_t len, int conds, bool nested)
{
	size_t n;
	int i;

	n = (size_t)snprintf(buf, len, "{\"op\":\"and\",\"conditions\":[");
	for (i = 0; i < conds; i++) {
		if (nested && i % 2)
			n += (size_t)snprintf(buf + n, len - n,
			                      "%s{\"op\":\"or\",\"conditions\":[{\"field\":\"f%d\","
			                      "\"cmp\":\"gte\",\"value\":%d}]}",
			                      i ? "," : "", i, i);
		else
			n += (size_t)snprintf(buf + n, len - n,
			                      "%s{\"field\":\"f%d\",\"cmp\":\"gte\",\"value\":%d}",
			                      i ? "," : "", i, i);
	}
	snprintf(buf + n, len - n, "]}");
}

static void test_condition_count(void **state)
{
	char tree[8192], data[4096];
	struct qc_expr *e;
	size_t n;
	int i;

	(void)state;
	many(tree, sizeof(tree), 32, false);
	e = compile(tree);
	n = (size_t)snprintf(data, sizeof(data), "{");
	for (i = 0; i < 32; i++)
		n += (size_t)snprintf(data + n, sizeof(data) - n, "%s\"f%d\":%d", i ? "," : "", i,
		                      i);
	snprintf(data + n, sizeof(data) - n, "}");
	assert_true(step(e, data));
	qc_expr_free(e);
	many(tree, sizeof(tree), 32, true);
	qc_expr_free(compile(tree));

	many(tree, sizeof(tree), 33, false);
	expect_err(tree, "filter: more than 32 conditions");
	many(tree, sizeof(tree), 33, true);
	expect_err(tree, "filter: more than 32 conditions");
}

static void test_hostile_strings(void **state)
{
	static const char *const tree =
	    "{\"op\":\"or\",\"conditions\":["
	    "{\"field\":\"'; DROP TABLE x; --\",\"cmp\":\"eq\",\"value\":\"'; DROP TABLE x; --\"},"
	    "{\"field\":\"a\\\"b\\\\c'd\",\"cmp\":\"ne\",\"value\":\"\\\"quoted\\\" \\\\ "
	    "'\\u0000'\"},"
	    "{\"field\":\"\\u4ef7\\u683c\",\"cmp\":\"eq\",\"value\":\"\\u00e9\\ud83d\\ude00\"}]}";
	struct qc_expr *e = compile(tree);
	json_t *j = qc_expr_to_json(e), *f = qc_expr_flatten(e), *conds, *row, *src = J(tree);
	const json_t *v;

	(void)state;
	assert_true(json_equal(j, src));
	conds = json_object_get(j, "conditions");
	assert_string_equal(json_string_value(json_object_get(json_array_get(conds, 0), "field")),
	                    "'; DROP TABLE x; --");
	assert_string_equal(json_string_value(json_object_get(json_array_get(conds, 0), "value")),
	                    "'; DROP TABLE x; --");
	assert_string_equal(json_string_value(json_object_get(json_array_get(conds, 1), "field")),
	                    "a\"b\\c'd");
	v = json_object_get(json_array_get(conds, 1), "value");
	assert_int_equal(json_string_length(v), 14);
	assert_memory_equal(json_string_value(v), "\"quoted\" \\ '\0'", 14);
	assert_string_equal(json_string_value(json_object_get(json_array_get(conds, 2), "field")),
	                    "\xe4\xbb\xb7\xe6\xa0\xbc");
	assert_string_equal(json_string_value(json_object_get(json_array_get(conds, 2), "value")),
	                    "\xc3\xa9\xf0\x9f\x98\x80");

	row = json_array_get(json_object_get(f, "conditions"), 0);
	assert_string_equal(json_string_value(json_array_get(row, 2)), "'; DROP TABLE x; --");
	assert_string_equal(json_string_value(json_array_get(row, 4)), "'; DROP TABLE x; --");
	row = json_array_get(json_object_get(f, "conditions"), 1);
	assert_string_equal(json_string_value(json_array_get(row, 2)), "a\"b\\c'd");
	assert_int_equal(json_string_length(json_array_get(row, 4)), 14);
	assert_memory_equal(json_string_value(json_array_get(row, 4)), "\"quoted\" \\ '\0'", 14);

	/* and they match data byte for byte */
	assert_false(step(e, "{\"x\":1}"));
	assert_true(step(e, "{\"'; DROP TABLE x; --\":\"'; DROP TABLE x; --\"}"));
	qc_expr_reset(e);
	assert_false(step(e, "{\"a\\\"b\\\\c'd\":\"\\\"quoted\\\" \\\\ '\\u0000'\"}"));
	assert_true(step(e, "{\"a\\\"b\\\\c'd\":\"\\\"quoted\\\" \\\\ '\"}"));
	qc_expr_reset(e);
	assert_true(step(e, "{\"\\u4ef7\\u683c\":\"\\u00e9\\ud83d\\ude00\"}"));

	json_decref(src);
	json_decref(j);
	json_decref(f);
	qc_expr_free(e);
	qc_expr_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_order_boundaries),
	    cmocka_unit_test(test_integer_and_real),
	    cmocka_unit_test(test_eq_ne),
	    cmocka_unit_test(test_missing_and_wrong_type),
	    cmocka_unit_test(test_data_not_object),
	    cmocka_unit_test(test_and_or),
	    cmocka_unit_test(test_nested_three_deep),
	    cmocka_unit_test(test_crosses_above),
	    cmocka_unit_test(test_crosses_below),
	    cmocka_unit_test(test_no_short_circuit),
	    cmocka_unit_test(test_edges),
	    cmocka_unit_test(test_reset),
	    cmocka_unit_test(test_to_json_canonical),
	    cmocka_unit_test(test_flatten_rows),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_round_trip_state),
	    cmocka_unit_test(test_unflatten_bad_rows),
	    cmocka_unit_test(test_unflatten_limits_ok),
	    cmocka_unit_test(test_malformed_objects),
	    cmocka_unit_test(test_malformed_groups),
	    cmocka_unit_test(test_malformed_conditions),
	    cmocka_unit_test(test_string_value_limit),
	    cmocka_unit_test(test_depth),
	    cmocka_unit_test(test_condition_count),
	    cmocka_unit_test(test_hostile_strings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
