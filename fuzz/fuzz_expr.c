/*
 * fuzz_expr: the filter-expression compiler (expr.c) on the JSON text of a filter, as
 * create_subscription receives it, followed by any number of JSON values that are stepped
 * through the compiled filter as ticks' merged data:
 *   {"op":"and","conditions":[{"field":"price","cmp":"crosses_above","value":10}]} {"price":9}
 * {"price":11} Invariants: a refusal has a message naming the filter; a compiled filter survives
 * the two round trips the server makes (to JSON for the client, to rows and back for the database)
 * unchanged; stepping never allocates or reads outside the expression and an edge means the
 * value is now true. A first value {"groups":[...],"conditions":[...]} is also fed to
 * qc_expr_unflatten() as rows read back from the database.
 */
#include <stdbool.h>

#include "fuzz.h"
#include "quotecast/expr.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init();
	return 0;
}

/* The next JSON value of @buf from *@off, or NULL at the end or on broken JSON. */
static json_t *next_value(const char *buf, size_t len, size_t *off)
{
	json_error_t jerr;
	json_t *v;

	while (*off < len && (buf[*off] == ' ' || buf[*off] == '\n' || buf[*off] == '\t'))
		(*off)++;
	if (*off >= len)
		return NULL;
	v = json_loadb(buf + *off, len - *off, JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY, &jerr);
	if (!v)
		return NULL;
	CHECK(jerr.position > 0 && (size_t)jerr.position <= len - *off);
	*off += (size_t)jerr.position;
	return v;
}

/* @tree compiles to @e's tree again and gives the same canonical JSON. */
static void check_same(const struct qc_expr *e, const json_t *tree)
{
	char err[256];
	struct qc_expr *again = qc_expr_compile(tree, err, sizeof(err));
	json_t *a, *b;

	if (!again)
		fprintf(stderr, "round trip refused: %s\n", err);
	CHECK(again);
	a = qc_expr_to_json(e);
	b = qc_expr_to_json(again);
	CHECK(a && b && json_equal(a, b));
	json_decref(a);
	json_decref(b);
	qc_expr_free(again);
}

static void round_trips(const struct qc_expr *e)
{
	json_t *tree = qc_expr_to_json(e), *rows, *rebuilt;
	char err[256];

	CHECK(tree);
	check_same(e, tree);
	json_decref(tree);

	rows = qc_expr_flatten(e);
	CHECK(rows);
	rebuilt = qc_expr_unflatten(json_object_get(rows, "groups"),
	                            json_object_get(rows, "conditions"), err, sizeof(err));
	if (!rebuilt)
		fprintf(stderr, "rows refused: %s\n", err);
	CHECK(rebuilt);
	check_same(e, rebuilt);
	json_decref(rebuilt);
	json_decref(rows);
}

static void rows(const json_t *doc)
{
	json_t *tree;
	struct qc_expr *e;
	char err[128];

	tree = qc_expr_unflatten(json_object_get(doc, "groups"), json_object_get(doc, "conditions"),
	                         err, sizeof(err));
	if (!tree) {
		CHECK(err[0] && strlen(err) < sizeof(err));
		return;
	}
	e = qc_expr_compile(tree, err, sizeof(err));
	if (e)
		round_trips(e);
	qc_expr_free(e);
	json_decref(tree);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	size_t off = 0;
	json_t *tree, *tick;
	struct qc_expr *e;
	char err[96]; /* small: truncation must still give a terminated message */
	bool edge;

	tree = next_value(buf, size, &off);
	if (!tree)
		return 0;
	if (json_is_object(tree) && json_object_get(tree, "groups"))
		rows(tree);
	memset(err, 'x', sizeof(err));
	e = qc_expr_compile(tree, err, sizeof(err));
	json_decref(tree);
	if (!e) {
		CHECK(memchr(err, '\0', sizeof(err)));
		CHECK(!strncmp(err, "filter", 6));
		return 0;
	}
	round_trips(e);
	CHECK(!qc_expr_value(e));
	while ((tick = next_value(buf, size, &off))) {
		edge = qc_expr_step(e, tick);
		CHECK(!edge || qc_expr_value(e));
		json_decref(tick);
	}
	qc_expr_reset(e);
	CHECK(!qc_expr_value(e));
	qc_expr_free(e);
	return 0;
}
