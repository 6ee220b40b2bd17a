/*
 * Unit tests for compact JSON objects (src/cobj.c). The oracle is jansson itself: the text of
 * a compact object must be what jansson prints for the same object (JSON_COMPACT, 15
 * significant digits), a filter what the tree filter (json_object_set of each field in the
 * filter's order) prints, a merge what json_object_update() leaves, for keys and strings with
 * escapes, unicode, nested objects and arrays, and numbers as they travel. Random objects
 * check the same over many shapes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "quotecast/cobj.h"

#define FLAGS (JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15))

static json_t *parse(const char *text)
{
	json_error_t err;
	json_t *j = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);

	if (!j)
		fail_msg("bad test JSON %s: %s", text, err.text);
	return j;
}

static char *dump(const json_t *j)
{
	char *s = json_dumps(j, FLAGS);

	assert_non_null(s);
	return s;
}

static void assert_text(const struct qc_cobj *o, const char *want)
{
	if (o->len != strlen(want) || memcmp(o->text, want, o->len))
		fail_msg("got %.*s, want %s", (int)o->len, o->text, want);
}

static void assert_same_as_json(const struct qc_cobj *o, const json_t *j)
{
	char *want = dump(j);

	assert_text(o, want);
	free(want);
}

/* Every member of @o is the member of @j at the same position, key and value. */
static void check_index(const struct qc_cobj *o, const json_t *j)
{
	const char *key;
	json_t *value;
	size_t i = 0;

	assert_int_equal(o->n, json_object_size(j));
	json_object_foreach ((json_t *)j, key, value) {
		char esc[6 * 300], *vt = dump(value);
		size_t klen, vlen, elen = qc_json_escape(esc, key, strlen(key));
		const char *k = qc_cobj_key(o, i, &klen), *v = qc_cobj_value(o, i, &vlen);

		assert_int_equal(klen, elen);
		assert_memory_equal(k, esc, klen);
		assert_int_equal(vlen, strlen(vt));
		assert_memory_equal(v, vt, vlen);
		assert_int_equal(qc_cobj_find(o, key, strlen(key), 0), (int)i);
		assert_int_equal(qc_cobj_find(o, key, strlen(key), i + 3), (int)i);
		free(vt);
		i++;
	}
}

static struct qc_cobj *from_text(const char *text)
{
	json_t *j = parse(text);
	struct qc_cobj *o = qc_cobj_from_json(j);

	assert_non_null(o);
	assert_int_equal(o->refs, 1);
	assert_same_as_json(o, j);
	check_index(o, j);
	json_decref(j);
	return o;
}

static void test_from_json_prints_like_jansson(void **state)
{
	static const char *const cases[] = {
	    "{}",
	    "{\"p\":1}",
	    "{\"price\":1850.31,\"volume\":1000,\"bid\":1850.30,\"ask\":1850.32}",
	    "{\"a\":-0.0,\"b\":0.0,\"c\":1e300,\"d\":1.5e-7,\"e\":1e15,\"f\":1e14,\"g\":0.1}",
	    "{\"big\":9223372036854775807,\"neg\":-9223372036854775808,\"r\":123456789012345.0}",
	    "{\"x\":0.30000000000000004,\"y\":1234567890123456.7,\"z\":100.0,\"w\":1E3}",
	    "{\"s\":\"plain\",\"q\":\"a\\\"b\",\"bs\":\"c\\\\d\",\"nl\":\"l1\\nl2\\t\\u0001\"}",
	    "{\"u\":\"\\u00e9t\\u00e9 \\u2028 "
	    "\\ud83d\\ude00\",\"raw\":\"贵州茅台\",\"sl\":\"a\\/b\"}",
	    "{\"k\\\"ey\":1,\"back\\\\slash\":2,\"ünï\":3,\"sp ace\":4,\"{\":5,\",\":6,\":\":7}",
	    "{\"o\":{\"a\":[1,2,{\"b\":\"}\"}],\"c\":{}},\"arr\":[[],[\"]\",\"\\\"\"],null],"
	    "\"t\":true,\"f\":false,\"n\":null}",
	    "{ \"spaced\" : [ 1 , 2 ] ,\n\t\"m\" : { \"x\" : \"y\" } }",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct qc_cobj *o = from_text(cases[i]);

		qc_cobj_unref(&o);
		assert_null(o);
	}
	/* not objects */
	{
		json_t *a = parse("[1]"), *n = parse("3");

		assert_null(qc_cobj_from_json(a));
		assert_null(qc_cobj_from_json(n));
		assert_null(qc_cobj_from_json(NULL));
		json_decref(a);
		json_decref(n);
	}
}

static void test_from_text_and_to_json(void **state)
{
	json_t *j = parse("{\"a\":{\"b\":[1,\"x,}\"]},\"c\":\"\\\"\",\"d\":2.5}"), *back;
	char *text = dump(j);
	struct qc_cobj *o = qc_cobj_from_text(text, strlen(text));

	(void)state;
	assert_non_null(o);
	check_index(o, j);
	back = qc_cobj_to_json(o);
	assert_true(json_equal(back, j));
	json_decref(back);
	qc_cobj_unref(&o);
	free(text);
	json_decref(j);

	assert_null(qc_cobj_from_text("[]", 2));
	assert_null(qc_cobj_from_text("{\"a\"}", 5));
	assert_null(qc_cobj_from_text("{\"a\":1", 6));
	assert_null(qc_cobj_from_text("{\"a\":1,}", 8));
	assert_null(qc_cobj_from_text("{", 1));
	o = qc_cobj_from_text("{}", 2);
	assert_non_null(o);
	assert_int_equal(o->n, 0);
	qc_cobj_unref(&o);
}

/* The filter as the tree form did it (stream.c before the compact form). */
static json_t *tree_filter(const char *const *fields, size_t nfields, json_t *data)
{
	json_t *out = NULL, *value;
	size_t i;

	if (!nfields)
		return json_incref(data);
	for (i = 0; i < nfields; i++) {
		value = json_object_get(data, fields[i]);
		if (!value)
			continue;
		if (!out)
			out = json_object();
		json_object_set_nocheck(out, fields[i], value);
	}
	return out;
}

static void check_filter(const char *text, const char *const *names, size_t n)
{
	json_t *j = parse(text), *want = tree_filter(names, n, j);
	struct qc_cobj *o = qc_cobj_from_json(j), *f;

	assert_non_null(o);
	f = qc_cobj_filter(o, names, n);
	if (!want) {
		assert_null(f);
		assert_int_equal(errno, 0);
	} else {
		assert_non_null(f);
		assert_same_as_json(f, want);
		check_index(f, want);
		if (!n)
			assert_ptr_equal(f, o);
	}
	qc_cobj_unref(&f);
	qc_cobj_unref(&o);
	json_decref(want);
	json_decref(j);
}

static void test_filter_like_the_tree(void **state)
{
	static const char *data =
	    "{\"price\":1850.31,\"vol\":10,\"k\\\"q\":\"v\\\"\",\"b\\\\s\":[1,"
	    "{\"x\":\"y\"}],\"é\":\"ü\",\"o\":{\"price\":1}}";
	const char *sorted[] = {"b\\s", "k\"q", "price", "é"};
	const char *one[] = {"vol"};
	const char *none[] = {"nope", "pric", "prices", "Price"};
	const char *dup[] = {"vol", "price", "vol", "price"};
	const char *nested[] = {"o", "x"};

	(void)state;
	check_filter(data, NULL, 0);
	check_filter(data, sorted, 4);
	check_filter(data, one, 1);
	check_filter(data, none, 4);
	check_filter(data, dup, 4);
	check_filter(data, nested, 2);
	check_filter("{}", one, 1);
	check_filter("{\"vol\":null}", one, 1);
}

static void check_merge(const char *a, const char *b)
{
	json_t *ja = a ? parse(a) : NULL, *jb = parse(b),
	       *want = ja ? json_deep_copy(ja) : json_object();
	struct qc_cobj *oa = ja ? qc_cobj_from_json(ja) : NULL, *ob = qc_cobj_from_json(jb), *m;
	size_t size;
	void *buf;

	json_object_update(want, jb);
	m = qc_cobj_merge(oa, ob);
	assert_non_null(m);
	assert_same_as_json(m, want);
	check_index(m, want);
	size = qc_cobj_merge_size(oa, ob);
	assert_int_equal(size, qc_cobj_size(m->len, m->n));
	buf = malloc(size);
	assert_non_null(buf);
	assert_memory_equal(qc_cobj_merge_to(buf, oa, ob)->text, m->text, m->len);
	free(buf);
	qc_cobj_unref(&m);
	qc_cobj_unref(&oa);
	qc_cobj_unref(&ob);
	json_decref(want);
	json_decref(ja);
	json_decref(jb);
}

static void test_merge_like_json_object_update(void **state)
{
	(void)state;
	check_merge(NULL, "{\"p\":1,\"v\":2}");
	check_merge("{}", "{\"p\":1}");
	check_merge("{\"p\":1}", "{}");
	check_merge("{\"p\":1,\"v\":2,\"b\":3}", "{\"v\":20.5,\"p\":10}");
	check_merge("{\"p\":1,\"v\":2}", "{\"x\":\"new\",\"v\":\"longer value\",\"y\":[1]}");
	check_merge("{\"k\\\"q\":1,\"é\":{\"a\":1}}", "{\"é\":{\"b\":2},\"k\\\"q\":\"\\\\\"}");
	check_merge("{\"a\":1,\"b\":2,\"c\":3,\"d\":4}", "{\"d\":40,\"c\":30,\"b\":20,\"a\":10}");
	check_merge("{\"a\":1,\"b\":2,\"c\":3,\"d\":4}", "{\"c\":30}");
}

/* ---- random objects against jansson ------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

static const char *const keys[] = {"price", "volume", "bid",  "ask",   "ts", "k\"q", "b\\s",   "é",
                                   "name",  "x",      "open", "close", "hi", "lo",   "sp ace", "u"};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static json_t *rand_value(int depth)
{
	static const char *const strs[] = {"",     "abc", "q\"uote",  "back\\", "tab\t",
	                                   "\x01", "é",   "贵州茅台", "}{][,:", "\xe2\x80\xa8"};
	static const double reals[] = {0.0,  -0.0, 1850.31, 0.1, 1e-7, 1e300, 123456789012345.6,
	                               -2.5, 1e15, 99.99};
	json_t *v;

	switch (rnd(depth > 2 ? 6 : 8)) {
	case 0:
		return json_integer((json_int_t)rnd(2000000) - 1000000);
	case 1:
		return json_real(reals[rnd(10)] * (rnd(2) ? 1 : (double)rnd(1000) / 7.0));
	case 2:
		return json_string(strs[rnd(10)]);
	case 3:
		return rnd(2) ? json_true() : json_false();
	case 4:
		return json_null();
	case 5:
		return json_integer(rnd(2) ? INT64_MAX : INT64_MIN);
	case 6:
		v = json_array();
		for (uint32_t i = rnd(4); i; i--)
			json_array_append_new(v, rand_value(depth + 1));
		return v;
	default:
		v = json_object();
		for (uint32_t i = rnd(4); i; i--)
			json_object_set_new(v, keys[rnd(NKEYS)], rand_value(depth + 1));
		return v;
	}
}

static json_t *rand_object(uint32_t max)
{
	json_t *o = json_object();

	for (uint32_t i = rnd(max + 1); i; i--)
		json_object_set_new(o, keys[rnd(NKEYS)], rand_value(0));
	return o;
}

static void test_random_against_jansson(void **state)
{
	(void)state;
	for (int round = 0; round < 3000; round++) {
		json_t *a = rand_object(8), *b = rand_object(6), *want;
		struct qc_cobj *oa = qc_cobj_from_json(a), *ob = qc_cobj_from_json(b), *m, *f;
		const char *names[6];
		size_t n = rnd(7);

		assert_non_null(oa);
		assert_non_null(ob);
		assert_same_as_json(oa, a);
		check_index(oa, a);

		want = json_deep_copy(a);
		json_object_update(want, b);
		m = qc_cobj_merge(oa, ob);
		assert_non_null(m);
		assert_same_as_json(m, want);
		check_index(m, want);
		json_decref(want);

		for (size_t i = 0; i < n; i++)
			names[i] = keys[rnd(NKEYS)];
		want = tree_filter(names, n, a);
		f = qc_cobj_filter(oa, names, n);
		if (want) {
			assert_non_null(f);
			assert_same_as_json(f, want);
		} else {
			assert_null(f);
		}
		json_decref(want);

		qc_cobj_unref(&f);
		qc_cobj_unref(&m);
		qc_cobj_unref(&oa);
		qc_cobj_unref(&ob);
		json_decref(a);
		json_decref(b);
	}
}

/* Text of 64 KiB or more switches to 32-bit offsets. */
static void test_wide(void **state)
{
	json_t *j = json_object(), *b = parse("{\"z\":1,\"k0\":\"x\"}"), *want;
	char *big = malloc(70000), key[16];
	struct qc_cobj *o, *ob, *m, *f;
	const char *names[] = {"k2", "z"};

	(void)state;
	assert_non_null(big);
	memset(big, 'a', 69999);
	big[69999] = '\0';
	for (int i = 0; i < 3; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		json_object_set_new(j, key, json_string(big));
	}
	o = qc_cobj_from_json(j);
	assert_non_null(o);
	assert_true(o->flags & QC_COBJ_WIDE);
	check_index(o, j);
	want = json_deep_copy(j);
	json_object_update(want, b);
	ob = qc_cobj_from_json(b);
	m = qc_cobj_merge(o, ob);
	qc_cobj_unref(&ob);
	assert_non_null(m);
	assert_same_as_json(m, want);
	check_index(m, want);
	f = qc_cobj_filter(m, names, 2);
	assert_non_null(f);
	assert_true(f->flags & QC_COBJ_WIDE);
	assert_int_equal(f->n, 2);
	qc_cobj_unref(&f);
	qc_cobj_unref(&m);
	qc_cobj_unref(&o);
	json_decref(want);
	json_decref(j);
	json_decref(b);
	free(big);
}

static void test_escape_like_jansson(void **state)
{
	char in[2] = {0, 0}, out[16], *want;
	json_t *s;
	size_t n;

	(void)state;
	for (int c = 1; c < 0x80; c++) {
		in[0] = (char)c;
		s = json_string(in);
		want = dump(s);
		n = qc_json_escape(out, in, 1);
		assert_int_equal(n + 2, strlen(want));
		assert_memory_equal(out, want + 1, n);
		free(want);
		json_decref(s);
	}
	n = qc_json_escape(out, "é\xe2\x80\xa8", 5);
	assert_int_equal(n, 5);
}

static void test_same_keys(void **state)
{
	struct qc_cobj *a = from_text("{\"p\":1,\"v\":2}"), *b = from_text("{\"p\":3,\"v\":\"x\"}");
	struct qc_cobj *c = from_text("{\"v\":1,\"p\":2}"), *d = from_text("{\"p\":1}");
	struct qc_cobj *f = from_text("{\"p\":1,\"w\":2}"), *g = from_text("{}"), *m;

	(void)state;
	assert_true(qc_cobj_same_keys(a, b));
	assert_false(qc_cobj_same_keys(a, c)); /* same keys, another order */
	assert_false(qc_cobj_same_keys(a, d));
	assert_false(qc_cobj_same_keys(a, f));
	assert_true(qc_cobj_same_keys(g, g));
	/* then the merge is the second one */
	m = qc_cobj_merge(a, b);
	assert_int_equal(m->len, b->len);
	assert_memory_equal(m->text, b->text, b->len);
	qc_cobj_unref(&m);
	qc_cobj_unref(&a);
	qc_cobj_unref(&b);
	qc_cobj_unref(&c);
	qc_cobj_unref(&d);
	qc_cobj_unref(&f);
	qc_cobj_unref(&g);
}

static void test_copy_extra_and_refs(void **state)
{
	struct qc_cobj *o = from_text("{\"a\":1}"), *c, *o2;

	(void)state;
	c = qc_cobj_copy(o, 9);
	assert_non_null(c);
	assert_int_equal(c->refs, 1);
	assert_text(c, "{\"a\":1}");
	memcpy(qc_cobj_extra(c), "12345678", 9);
	assert_string_equal(qc_cobj_extra(c), "12345678");
	o2 = qc_cobj_ref(c);
	assert_ptr_equal(o2, c);
	assert_int_equal(c->refs, 2);
	qc_cobj_unref(&c);
	assert_null(c);
	assert_int_equal(o2->refs, 1);
	qc_cobj_unref(&o2);
	qc_cobj_unref(&o);

	/* a packed object is not refcounted */
	{
		char buf[64] __attribute__((aligned(8)));
		uint32_t koff[] = {1};
		struct qc_cobj *p = qc_cobj_pack(buf, "{\"a\":1}", 7, 1, koff), *q = p;
		size_t vlen;

		assert_int_equal(p->refs, 0);
		assert_memory_equal(qc_cobj_value(p, 0, &vlen), "1", 1);
		assert_int_equal(vlen, 1);
		qc_cobj_ref(p);
		assert_int_equal(p->refs, 0);
		qc_cobj_unref(&q);
		assert_null(q);
		assert_int_equal(p->refs, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_from_json_prints_like_jansson),
	    cmocka_unit_test(test_from_text_and_to_json),
	    cmocka_unit_test(test_filter_like_the_tree),
	    cmocka_unit_test(test_merge_like_json_object_update),
	    cmocka_unit_test(test_random_against_jansson),
	    cmocka_unit_test(test_wide),
	    cmocka_unit_test(test_escape_like_jansson),
	    cmocka_unit_test(test_same_keys),
	    cmocka_unit_test(test_copy_extra_and_refs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
