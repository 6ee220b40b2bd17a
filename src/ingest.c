/*
 * ingest: the batch buffer and the publish scanner.
 *
 * Owns a batch's buffer (symbols, message ids and request ids NUL-terminated, data objects as
 * compact objects aligned to 8 bytes) and its tick records, which hold offsets because the
 * buffer moves when it grows. Both only grow, and are reused by the next batch.
 *
 * The scanner is a recursive-descent reader of exactly the JSON it accepts (see ingest.h) and
 * gives up, returning false, at the first thing outside it; jansson then reads the same text
 * and decides. So every rule here only has to be a subset of jansson's, and what it writes
 * must be what jansson would print:
 * - strings: bytes 0x20-0x7e except '"' and '\\', and UTF-8 sequences checked as jansson
 *   checks them (no overlong forms, surrogates or code points above U+10FFFF); jansson prints
 *   such a string unchanged.
 * - integers: at most 18 digits, not "-0" (jansson prints that as 0); printed unchanged.
 * - decimals without exponent: at most 15 significant digits and a decimal exponent in
 *   [-4, 15), so that printf("%.15g") of the double they parse to gives the same digits in
 *   fixed notation (15 = DBL_DIG: such a decimal survives the trip through a double); written
 *   with the fraction's trailing zeros dropped, and ".0" when none is left, as jansson does.
 * - true, false, null.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "quotecast/cobj.h"
#include "quotecast/ingest.h"

#define NONE SIZE_MAX

struct scan {
	const char *p;
	const char *end;
	struct qc_ingest *in;
};

void qc_ingest_init(struct qc_ingest *in)
{
	memset(in, 0, sizeof(*in));
	in->request_id = NONE;
	in->trace_id = NONE;
}

void qc_ingest_reset(struct qc_ingest *in)
{
	in->n = 0;
	in->used = 0;
	in->request_id = NONE;
	in->trace_id = NONE;
}

void qc_ingest_free(struct qc_ingest *in)
{
	free(in->ticks);
	free(in->buf);
	qc_ingest_init(in);
}

/* Room for @n more bytes in the buffer; 0 or -ENOMEM. */
static int reserve(struct qc_ingest *in, size_t n)
{
	size_t cap;
	char *p;

	if (n <= in->bufcap - in->used)
		return 0;
	if (n > SIZE_MAX / 4 - in->used)
		return -ENOMEM;
	cap = in->bufcap ? in->bufcap : 4096;
	while (cap < in->used + n)
		cap *= 2;
	p = realloc(in->buf, cap);
	if (!p)
		return -ENOMEM;
	in->buf = p;
	in->bufcap = cap;
	return 0;
}

/* A NUL-terminated copy of @len bytes: its offset, or NONE on ENOMEM. */
static size_t put_string(struct qc_ingest *in, const char *s, size_t len)
{
	size_t off = in->used;

	if (reserve(in, len + 1))
		return NONE;
	memcpy(in->buf + off, s, len);
	in->buf[off + len] = '\0';
	in->used += len + 1;
	return off;
}

static struct qc_ingest_tick *push_tick(struct qc_ingest *in)
{
	struct qc_ingest_tick *t;
	size_t cap;

	if (in->n == in->cap) {
		cap = in->cap ? in->cap * 2 : 64;
		t = realloc(in->ticks, cap * sizeof(*t));
		if (!t)
			return NULL;
		in->ticks = t;
		in->cap = cap;
	}
	t = &in->ticks[in->n++];
	memset(t, 0, sizeof(*t));
	t->message_id = NONE;
	return t;
}

/* Align the buffer's end to 8 bytes for an object. */
static int align8(struct qc_ingest *in)
{
	size_t pad = (8 - (in->used & 7)) & 7;

	if (reserve(in, pad))
		return -ENOMEM;
	in->used += pad;
	return 0;
}

/* ---- the scanner -------------------------------------------------------------------------- */

static void skip_ws(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
		s->p++;
}

static bool eat(struct scan *s, char c)
{
	skip_ws(s);
	if (s->p < s->end && *s->p == c) {
		s->p++;
		return true;
	}
	return false;
}

static bool eat_word(struct scan *s, const char *w, size_t n)
{
	skip_ws(s);
	if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n))
		return false;
	s->p += n;
	return true;
}

/* The length of the valid UTF-8 sequence at @p (a byte >= 0x80), or 0. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
	uint32_t cp, min;
	size_t n, i;

	if (p[0] < 0xc2)
		return 0; /* a continuation byte, or an overlong 2-byte form */
	if (p[0] < 0xe0) {
		n = 2;
		cp = p[0] & 0x1f;
		min = 0x80;
	} else if (p[0] < 0xf0) {
		n = 3;
		cp = p[0] & 0x0f;
		min = 0x800;
	} else if (p[0] < 0xf5) {
		n = 4;
		cp = p[0] & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if ((size_t)(end - p) < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* What a string byte is: 0 plain, else one of these. */
enum { B_QUOTE = 1, B_BAD, B_HIGH, B_DEL };

static const uint8_t byte_class[256] = {
    [0x00 ... 0x1f] = B_BAD, ['"'] = B_QUOTE,          ['\\'] = B_BAD,
    [0x7f] = B_DEL,          [0x80 ... 0xff] = B_HIGH,
};

/*
 * A string in the scanner's form: its contents (unescaped already: no escapes allowed);
 * *@del (if not NULL) says whether it holds a DEL byte (allowed in values, not in field names).
 */
static bool string(struct scan *s, const char **str, size_t *len, bool *del)
{
	const unsigned char *p, *end = (const unsigned char *)s->end;
	size_t n;

	skip_ws(s);
	if (s->p >= s->end || *s->p != '"')
		return false;
	p = (const unsigned char *)s->p + 1;
	*str = (const char *)p;
	if (del)
		*del = false;
	for (;;) {
		while (p < end && !byte_class[*p])
			p++;
		if (p >= end)
			return false;
		switch (byte_class[*p]) {
		case B_QUOTE:
			*len = (size_t)((const char *)p - *str);
			s->p = (const char *)p + 1;
			return true;
		case B_DEL:
			if (del)
				*del = true;
			p++;
			break;
		case B_HIGH:
			n = utf8_len(p, end);
			if (!n)
				return false;
			p += n;
			break;
		default:
			return false;
		}
	}
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * A JSON integer (any, within int64) at the scan position, as jansson reads one; false for
 * anything else (a fraction, an exponent, out of range).
 */
static bool integer(struct scan *s, int64_t *v)
{
	const char *p, *end = s->end;
	bool neg = false;
	uint64_t u = 0, d;

	skip_ws(s);
	p = s->p;
	if (p < end && *p == '-') {
		neg = true;
		p++;
	}
	if (p >= end || !is_digit(*p))
		return false;
	if (*p == '0' && p + 1 < end && is_digit(p[1]))
		return false;
	for (; p < end && is_digit(*p); p++) {
		d = (uint64_t)(*p - '0');
		if (u > (UINT64_MAX - d) / 10)
			return false;
		u = u * 10 + d;
	}
	if (p < end && (*p == '.' || *p == 'e' || *p == 'E'))
		return false;
	if (u > (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX))
		return false;
	*v = neg ? (u ? -(int64_t)(u - 1) - 1 : 0) : (int64_t)u;
	s->p = p;
	return true;
}

/*
 * A number in the scanner's form (see the top) written as jansson prints it into @out (at
 * least 40 bytes): its length, or 0.
 */
static size_t number(struct scan *s, char *out)
{
	const char *p = s->p, *end = s->end, *ip, *fp = NULL;
	size_t ilen, flen = 0, n = 0, z;
	bool neg = false;

	if (p < end && *p == '-') {
		neg = true;
		p++;
	}
	ip = p;
	if (p >= end || !is_digit(*p))
		return 0;
	if (*p == '0')
		p++;
	else
		while (p < end && is_digit(*p))
			p++;
	ilen = (size_t)(p - ip);
	if (p < end && *p == '.') {
		fp = ++p;
		while (p < end && is_digit(*p))
			p++;
		flen = (size_t)(p - fp);
		if (!flen)
			return 0;
	}
	if (p < end && (*p == 'e' || *p == 'E' || is_digit(*p)))
		return 0;
	if (!fp) {
		if (ilen > 18 || (neg && ip[0] == '0'))
			return 0;
		memcpy(out, ip - neg, ilen + neg);
		s->p = p;
		return ilen + neg;
	}
	while (flen && fp[flen - 1] == '0')
		flen--;
	if (ip[0] != '0') {
		if (ilen + flen > 15)
			return 0; /* more than 15 significant digits, or 1e15 and up */
	} else if (flen) {
		for (z = 0; fp[z] == '0'; z++)
			;
		if (z > 3 || flen - z > 15)
			return 0; /* below 1e-4, or more than 15 significant digits */
	}
	if (neg)
		out[n++] = '-';
	memcpy(out + n, ip, ilen);
	n += ilen;
	out[n++] = '.';
	if (flen) {
		memcpy(out + n, fp, flen);
		n += flen;
	} else {
		out[n++] = '0';
	}
	s->p = p;
	return n;
}

/* Append @len bytes at the buffer's end (the room was reserved). */
static void emit(struct qc_ingest *in, const char *p, size_t len)
{
	memcpy(in->buf + in->used, p, len);
	in->used += len;
}

/* true, false or null, written as it is. */
static bool word(struct scan *s, const char *w, size_t n)
{
	if (!eat_word(s, w, n) || reserve(s->in, n))
		return false;
	emit(s->in, w, n);
	return true;
}

/* One data value in the scanner's form, written at the buffer's end. */
static bool value(struct scan *s)
{
	struct qc_ingest *in = s->in;
	const char *str;
	char num[48];
	size_t len;

	skip_ws(s);
	if (s->p >= s->end)
		return false;
	switch (*s->p) {
	case '"':
		if (!string(s, &str, &len, NULL) || reserve(in, len + 2))
			return false;
		emit(in, "\"", 1);
		emit(in, str, len);
		emit(in, "\"", 1);
		return true;
	case 't':
		return word(s, "true", 4);
	case 'f':
		return word(s, "false", 5);
	case 'n':
		return word(s, "null", 4);
	default:
		len = number(s, num);
		if (!len || reserve(in, len))
			return false;
		emit(in, num, len);
		return true;
	}
}

/*
 * A tick's data: a non-empty object of at most QC_INGEST_MAX_FIELDS members with valid, distinct
 * field names, written at the buffer's end as a compact object; its offset in *@off.
 */
static bool data(struct scan *s, size_t *off)
{
	struct qc_ingest *in = s->in;
	uint32_t koff[QC_INGEST_MAX_FIELDS];
	uint8_t klen[QC_INGEST_MAX_FIELDS];
	size_t n = 0, text, len, i, j;
	const char *key;
	bool del;

	if (!eat(s, '{') || align8(in) || reserve(in, sizeof(struct qc_cobj) + 1))
		return false;
	*off = in->used;
	in->used += sizeof(struct qc_cobj);
	text = in->used;
	emit(in, "{", 1);
	do {
		if (n == QC_INGEST_MAX_FIELDS || !string(s, &key, &len, &del) || !eat(s, ':'))
			return false;
		/* a field name: 1-64 bytes, no control character (qc_field_valid()) */
		if (!len || len > QC_FIELD_MAX || del)
			return false;
		for (j = 0; j < n; j++)
			if (klen[j] == len && !memcmp(in->buf + text + koff[j] + 1, key, len))
				return false; /* a duplicate: jansson refuses the document */
		if (reserve(in, len + 4))
			return false;
		if (n)
			emit(in, ",", 1);
		koff[n] = (uint32_t)(in->used - text);
		klen[n] = (uint8_t)len;
		emit(in, "\"", 1);
		emit(in, key, len);
		emit(in, "\":", 2);
		if (!value(s))
			return false;
		n++;
	} while (eat(s, ','));
	if (!eat(s, '}') || reserve(in, 1))
		return false;
	emit(in, "}", 1);
	len = in->used - text;
	i = qc_cobj_size(len, n);
	if (!i || reserve(in, i - sizeof(struct qc_cobj) - len))
		return false;
	qc_cobj_pack(in->buf + *off, in->buf + text, len, n, koff);
	in->used = *off + i;
	return true;
}

enum { K_SYMBOL = 1, K_DATA = 2, K_MID = 4, K_VERSION = 8, K_TS = 16 };

/* Which tick key @k is (each has its own length), or 0. */
static int tick_key(const char *k, size_t len)
{
	switch (len) {
	case 4:
		return memcmp(k, "data", 4) ? 0 : K_DATA;
	case 6:
		return memcmp(k, "symbol", 6) ? 0 : K_SYMBOL;
	case 7:
		return memcmp(k, "version", 7) ? 0 : K_VERSION;
	case 9:
		return memcmp(k, "timestamp", 9) ? 0 : K_TS;
	case 10:
		return memcmp(k, "message_id", 10) ? 0 : K_MID;
	default:
		return 0;
	}
}

/* One tick: an object with the tick keys only, each once, every value valid. */
static bool tick(struct scan *s)
{
	struct qc_ingest *in = s->in;
	struct qc_ingest_tick *t;
	const char *k, *v;
	size_t klen, vlen, idx;
	int seen = 0, bit;

	if (!eat(s, '{'))
		return false;
	t = push_tick(in);
	if (!t)
		return false;
	idx = in->n - 1;
	do {
		if (!string(s, &k, &klen, NULL) || !eat(s, ':'))
			return false;
		bit = tick_key(k, klen);
		if (!bit || (seen & bit))
			return false;
		seen |= bit;
		t = &in->ticks[idx];
		switch (bit) {
		case K_SYMBOL:
			if (!string(s, &v, &vlen, NULL) || vlen > QC_SYMBOL_MAX)
				return false;
			t->symbol = put_string(in, v, vlen);
			if (t->symbol == NONE || !qc_symbol_valid(in->buf + t->symbol))
				return false;
			break;
		case K_DATA:
			if (!data(s, &t->data))
				return false;
			break;
		case K_MID:
			if (eat_word(s, "null", 4))
				break;
			if (!string(s, &v, &vlen, NULL) || vlen > QC_MESSAGE_ID_MAX)
				return false;
			t->message_id = put_string(in, v, vlen);
			if (t->message_id == NONE)
				return false;
			break;
		case K_VERSION:
			if (eat_word(s, "null", 4))
				break;
			if (!integer(s, &t->version))
				return false;
			t->has_version = true;
			break;
		default:
			if (eat_word(s, "null", 4))
				break;
			if (!integer(s, &t->timestamp) || t->timestamp < 0)
				return false;
			t->has_timestamp = true;
			break;
		}
	} while (eat(s, ','));
	return eat(s, '}') && (seen & (K_SYMBOL | K_DATA)) == (K_SYMBOL | K_DATA);
}

/* [tick, ...]: at least one, at most QC_INGEST_MAX_TICKS. */
static bool ticks(struct scan *s)
{
	if (!eat(s, '['))
		return false;
	do {
		if (s->in->n == QC_INGEST_MAX_TICKS || !tick(s))
			return false;
	} while (eat(s, ','));
	return eat(s, ']');
}

/* {"ticks":[...]} or one tick. */
static bool payload(struct scan *s)
{
	struct scan at = *s;
	const char *k;
	size_t klen;

	if (eat(s, '{') && string(s, &k, &klen, NULL) && klen == 5 && !memcmp(k, "ticks", 5))
		return eat(s, ':') && ticks(s) && eat(s, '}');
	*s = at;
	return tick(s);
}

static bool at_end(struct scan *s)
{
	skip_ws(s);
	return s->p == s->end;
}

/* "request_id" / "trace_id": null or a string. */
static bool id(struct scan *s, size_t *off)
{
	const char *v;
	size_t vlen;

	if (eat_word(s, "null", 4))
		return true;
	if (!string(s, &v, &vlen, NULL))
		return false;
	*off = put_string(s->in, v, vlen);
	return *off != NONE;
}

bool qc_ingest_scan_request(struct qc_ingest *in, const char *buf, size_t len)
{
	struct scan s = {buf, buf + len, in};
	enum { TYPE = 1, ACTION = 2, PAYLOAD = 4, RID = 8, TID = 16 };
	const char *k, *v;
	size_t klen, vlen;
	int seen = 0, bit;

	qc_ingest_reset(in);
	if (!eat(&s, '{'))
		return false;
	do {
		if (!string(&s, &k, &klen, NULL) || !eat(&s, ':'))
			return false;
		if (klen == 4 && !memcmp(k, "type", 4))
			bit = TYPE;
		else if (klen == 6 && !memcmp(k, "action", 6))
			bit = ACTION;
		else if (klen == 7 && !memcmp(k, "payload", 7))
			bit = PAYLOAD;
		else if (klen == 10 && !memcmp(k, "request_id", 10))
			bit = RID;
		else if (klen == 8 && !memcmp(k, "trace_id", 8))
			bit = TID;
		else
			return false;
		if (seen & bit)
			return false;
		seen |= bit;
		switch (bit) {
		case TYPE:
			if (!string(&s, &v, &vlen, NULL) || vlen != 7 || memcmp(v, "request", 7))
				return false;
			break;
		case ACTION:
			if (!string(&s, &v, &vlen, NULL) || vlen != 19 ||
			    memcmp(v, "publish_market_data", 19))
				return false;
			break;
		case PAYLOAD:
			if (!payload(&s))
				return false;
			break;
		case RID:
			if (!id(&s, &in->request_id))
				return false;
			break;
		default:
			if (!id(&s, &in->trace_id))
				return false;
			break;
		}
	} while (eat(&s, ','));
	return eat(&s, '}') && at_end(&s) &&
	       (seen & (TYPE | ACTION | PAYLOAD)) == (TYPE | ACTION | PAYLOAD);
}

bool qc_ingest_scan_body(struct qc_ingest *in, const char *buf, size_t len)
{
	struct scan s = {buf, buf + len, in};

	qc_ingest_reset(in);
	skip_ws(&s);
	if (s.p < s.end && *s.p == '[')
		return ticks(&s) && at_end(&s);
	return payload(&s) && at_end(&s);
}

/* ---- trees -------------------------------------------------------------------------------- */

int qc_ingest_add_json(struct qc_ingest *in, json_t *tick)
{
	const char *sym = json_string_value(json_object_get(tick, "symbol"));
	const char *mid = json_string_value(json_object_get(tick, "message_id"));
	json_t *ver = json_object_get(tick, "version"), *ts = json_object_get(tick, "timestamp");
	struct qc_cobj *data = qc_cobj_from_json(json_object_get(tick, "data"));
	struct qc_ingest_tick *t;
	size_t size, symbol, message_id = NONE, off;

	if (!data || !sym)
		goto fail;
	size = qc_cobj_size(data->len, data->n);
	symbol = put_string(in, sym, strlen(sym));
	if (mid)
		message_id = put_string(in, mid, strlen(mid));
	if (symbol == NONE || (mid && message_id == NONE) || align8(in) || reserve(in, size))
		goto fail;
	off = in->used;
	memcpy(in->buf + off, data, size);
	((struct qc_cobj *)(in->buf + off))->refs = 0;
	in->used += size;
	t = push_tick(in);
	if (!t)
		goto fail;
	t->symbol = symbol;
	t->message_id = message_id;
	t->data = off;
	t->has_version = json_is_integer(ver);
	t->version = json_integer_value(ver);
	t->has_timestamp = json_is_integer(ts);
	t->timestamp = json_integer_value(ts);
	qc_cobj_unref(&data);
	return 0;

fail:
	qc_cobj_unref(&data);
	return -ENOMEM;
}

const char *qc_ingest_symbol(const struct qc_ingest *in, size_t i)
{
	return in->buf + in->ticks[i].symbol;
}

const char *qc_ingest_message_id(const struct qc_ingest *in, size_t i)
{
	return in->ticks[i].message_id == NONE ? NULL : in->buf + in->ticks[i].message_id;
}

const char *qc_ingest_id(const struct qc_ingest *in, size_t off)
{
	return off == NONE ? NULL : in->buf + off;
}

void qc_ingest_tick_in(const struct qc_ingest *in, size_t i, int64_t now, struct qc_tick_in *out)
{
	const struct qc_ingest_tick *t = &in->ticks[i];

	out->data = (const struct qc_cobj *)(in->buf + t->data);
	out->message_id = t->message_id == NONE ? NULL : in->buf + t->message_id;
	out->has_version = t->has_version;
	out->version = t->version;
	out->timestamp = t->has_timestamp ? t->timestamp : now;
}
