/*
 * expr: filter expressions of persisted subscriptions and alerts (SPEC 2.7; layer 0).
 *
 * A filter is a tree of groups and conditions:
 * {"op":"and"|"or","conditions":[{"field":"price","cmp":"gt","value":1900},{"op":"or",...}]}.
 * The top level is a group; groups nest at most QC_EXPR_MAX_DEPTH deep; an expression holds
 * at most QC_EXPR_MAX_CONDITIONS conditions; every group has at least one child. cmp is one
 * of gt gte lt lte eq ne crosses_above crosses_below; the order comparisons and the crossings
 * take a number, eq and ne a number, a string or a boolean.
 *
 * qc_expr_compile() checks a tree and lays it out in one allocation, which then also holds
 * the state of evaluation: the last result (for edge triggering) and, per condition, the
 * previous value of its field (for the crossings). Evaluation never allocates. One compiled
 * expression per subscription; it is not shared between threads.
 *
 * For the database the tree is flattened into rows of two tables (groups and conditions) and
 * rebuilt from them.
 */
#ifndef QC_EXPR_H
#define QC_EXPR_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define QC_EXPR_MAX_DEPTH      8   /* groups, the root counting as 1 */
#define QC_EXPR_MAX_CONDITIONS 32  /* conditions (not groups) in one expression */
#define QC_EXPR_MAX_FIELD      64  /* bytes of a field name */
#define QC_EXPR_MAX_STRING     256 /* bytes of a string value */

struct qc_expr;

/**
 * qc_expr_compile() - check and compile the filter @tree (borrowed; nothing of it is kept).
 * Returns the expression (free with qc_expr_free()), or NULL with a NUL-terminated message
 * in @err (@errlen bytes, truncated to fit; @err may be NULL) that names the fault by its
 * path from the root "filter", e.g. `filter.conditions[1].cmp: unknown operator "gtx"`,
 * `filter.conditions[0].conditions: must be a non-empty array`, `filter: nesting deeper than
 * 8`, `filter.conditions[2].value: must be a number for "gt"`. On ENOMEM the message is
 * `filter: out of memory`.
 */
struct qc_expr *qc_expr_compile(const json_t *tree, char *err, size_t errlen);

/** qc_expr_free() - free @e and its state; NULL is ignored. */
void qc_expr_free(struct qc_expr *e);

/**
 * qc_expr_to_json() - the tree of @e as a new JSON reference (NULL on ENOMEM), in canonical
 * form: groups as {"op","conditions"}, conditions as {"field","cmp","value"}, keys in that
 * order, values as compiled (an integer stays an integer, strings byte for byte).
 */
json_t *qc_expr_to_json(const struct qc_expr *e);

/**
 * qc_expr_step() - evaluate @e against @data, an object of the latest value of every field
 * (borrowed; only looked up; anything that is not an object counts as an empty object).
 * Every condition is evaluated (no short-circuit), so every crossing condition sees every
 * value of its field. A condition on a missing field, or on a value of another type than
 * its own (number, string, boolean), is false, also for ne.
 * Returns true exactly when the expression goes from not true to true: the first true step
 * after compile or qc_expr_reset() is an edge. Never allocates.
 */
bool qc_expr_step(struct qc_expr *e, const json_t *data);

/** qc_expr_value() - the result of the last qc_expr_step() (false before the first). */
bool qc_expr_value(const struct qc_expr *e);

/**
 * qc_expr_reset() - forget the last result and every previous field value, as if @e had
 * just been compiled.
 */
void qc_expr_reset(struct qc_expr *e);

/**
 * qc_expr_flatten() - @e as rows of two tables, a new JSON reference (NULL on ENOMEM):
 * {"groups":[[idx, parent_idx or null, "and"|"or", position], ...],
 *  "conditions":[[group_idx, position, field, cmp, value], ...]}.
 * Groups are numbered 0.. in depth-first order, group 0 being the root (parent null,
 * position 0). A position is the index within the parent group's conditions array; groups
 * and conditions share the positions of their parent, so the order of mixed children is
 * kept.
 */
json_t *qc_expr_flatten(const struct qc_expr *e);

/**
 * qc_expr_unflatten() - the tree (a new JSON reference, sharing nothing with the rows) from
 * the @groups and @conditions arrays of qc_expr_flatten() (borrowed; rows in any order).
 * Checks that the rows make one tree: group indices are 0..n-1 without repeats, group 0 and
 * only group 0 has a null parent (and position 0), every parent exists, every group has
 * children, the positions within each group are 0..k-1 without repeats, no cycles, nesting
 * at most QC_EXPR_MAX_DEPTH, at most QC_EXPR_MAX_CONDITIONS condition rows. The contents
 * (op, field, cmp, value) are copied unchecked: compile the result to check them.
 * Returns NULL with a message in @err (as for qc_expr_compile(), paths "groups[i]" and
 * "conditions[i]" naming the input rows) on inconsistent rows or ENOMEM.
 */
json_t *qc_expr_unflatten(const json_t *groups, const json_t *conditions, char *err, size_t errlen);

#endif
