/*
 * tally: how many of something each key holds (connections per user, per source address):
 * counts by string key, an entry only while its count is above zero.
 */
#ifndef QC_TALLY_H
#define QC_TALLY_H

#include <stdint.h>

#include <uthash.h>

struct qc_tally_entry {
	UT_hash_handle hh;
	uint32_t count;
	char key[]; /* NUL-terminated */
};

struct qc_tally {
	struct qc_tally_entry *by_key; /* uthash head */
	uint32_t nkeys;
};

/** qc_tally_init() - an empty tally. */
void qc_tally_init(struct qc_tally *t);

/** qc_tally_count() - what @key holds now (0 when it has no entry). */
uint32_t qc_tally_count(const struct qc_tally *t, const char *key);

/**
 * qc_tally_take() - one more for @key. Returns its entry, which the caller keeps to give the
 * one back with qc_tally_put() (no second lookup), or NULL when out of memory.
 */
struct qc_tally_entry *qc_tally_take(struct qc_tally *t, const char *key);

/** qc_tally_put() - one less for *@e's key (the entry is freed at 0); clears *@e. NULL: no-op. */
void qc_tally_put(struct qc_tally *t, struct qc_tally_entry **e);

/** qc_tally_free() - drop every entry (entries still held by callers become invalid). */
void qc_tally_free(struct qc_tally *t);

#endif
