/*
 * ingest: publish batches read into compact ticks (layer 0).
 *
 * A batch of ticks, each with its symbol, message id, version, timestamp and its data as a
 * compact object (cobj.h), held in one growable buffer that is reused from batch to batch: no
 * allocation per tick or per value once the buffer has grown to the batch.
 *
 * Two ways in. The scanner (qc_ingest_scan_request(), qc_ingest_scan_body()) reads the text of
 * a publish in one pass without building a jansson tree. It takes only the plain form a feed
 * handler sends: ticks with the keys symbol, data, message_id, version and timestamp; data
 * members whose values are strings without escapes (UTF-8 checked), integers, decimals of up
 * to 15 significant digits without an exponent, true, false or null; every tick valid. It
 * writes each data object exactly as jansson would print it (QC_JSON_DUMP: compact, reals
 * with 15 significant digits), so what leaves the server is what it was before. Anything else
 * (an escape, a nested value, an exponent, a duplicate or unknown key, an invalid tick, broken
 * JSON) makes it answer false, having changed nothing the caller relies on, and the caller
 * parses the text with jansson instead, which gives the exact answer or error: the scanner
 * never decides a refusal. The other way in, qc_ingest_add_json(), takes a tick tree that the
 * caller has validated (the jansson path, the demo feed).
 */
#ifndef QC_INGEST_H
#define QC_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "quotecast/stream.h"

#define QC_INGEST_MAX_TICKS  10000 /* ticks in one publish */
#define QC_INGEST_MAX_FIELDS 256   /* members of one tick's data */

struct qc_ingest_tick {
	size_t symbol;     /* offsets into the batch's buffer (it may move while filling) */
	size_t message_id; /* SIZE_MAX: none */
	size_t data;
	bool has_version;
	bool has_timestamp;
	int64_t version;
	int64_t timestamp;
	void *stream; /* the caller's: hub_stream.c notes the tick's stream here */
};

struct qc_ingest {
	struct qc_ingest_tick *ticks;
	size_t n;
	size_t cap;
	char *buf; /* symbols, message ids, request ids (NUL-terminated), data objects */
	size_t used;
	size_t bufcap;
	size_t request_id; /* scanned request frames: SIZE_MAX when absent or null */
	size_t trace_id;
};

/** qc_ingest_init() - an empty batch (all zero is not: it sets the absent ids). */
void qc_ingest_init(struct qc_ingest *in);

/** qc_ingest_reset() - forget the ticks, keep the memory for the next batch. */
void qc_ingest_reset(struct qc_ingest *in);

/** qc_ingest_free() - free the memory; @in is empty again. */
void qc_ingest_free(struct qc_ingest *in);

/**
 * qc_ingest_scan_request() - read a native request frame of @len bytes:
 * {"type":"request","action":"publish_market_data","payload":P[,"request_id":..][,"trace_id":..]}
 * in any key order, P being {"ticks":[tick,...]} or one tick. True when the frame is that and
 * every part of it is in the scanner's form: @in holds the ticks and the ids. False otherwise
 * (also for any other request): parse it as usual.
 */
bool qc_ingest_scan_request(struct qc_ingest *in, const char *buf, size_t len);

/**
 * qc_ingest_scan_body() - the same for a POST /api/publish body: a tick, an array of ticks or
 * {"ticks":[...]}.
 */
bool qc_ingest_scan_body(struct qc_ingest *in, const char *buf, size_t len);

/**
 * qc_ingest_add_json() - append @tick (borrowed), a tick tree that passed the publish checks,
 * its data written as jansson prints it. 0 or -ENOMEM.
 */
int qc_ingest_add_json(struct qc_ingest *in, json_t *tick);

/** qc_ingest_symbol() - tick @i's symbol. */
const char *qc_ingest_symbol(const struct qc_ingest *in, size_t i);

/** qc_ingest_message_id() - tick @i's message id, or NULL. */
const char *qc_ingest_message_id(const struct qc_ingest *in, size_t i);

/** qc_ingest_id() - a request id or trace id offset of @in as a string, or NULL. */
const char *qc_ingest_id(const struct qc_ingest *in, size_t off);

/**
 * qc_ingest_tick_in() - tick @i as a stream takes it (pointers into @in, valid until it
 * changes); a tick without a timestamp gets @now.
 */
void qc_ingest_tick_in(const struct qc_ingest *in, size_t i, int64_t now, struct qc_tick_in *out);

#endif
