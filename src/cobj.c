/*
 * cobj: compact JSON objects, their index, filters and merges.
 *
 * Owns nothing beyond the objects it returns and one static scratch buffer for jansson's
 * output (qc_cobj_from_json(); the server is single-threaded). The text an object holds is
 * trusted: it is what jansson printed, what the ingest scanner (ingest.c) wrote in the same
 * form, or splices of members of such text, so indexing it only has to find where members
 * begin and end, never to validate.
 *
 * Member look-ups compare escaped keys: a name is escaped as jansson escapes it (only when it
 * holds a byte that needs it) and compared byte for byte, which is exact because escaping is a
 * function. Searches start at a hint and wrap round, so that the common case (a tick carrying
 * the snapshot's keys in the snapshot's order) costs one comparison per member.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "quotecast/cobj.h"

#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

struct scratch {
	char *buf;
	size_t len;
	size_t cap;
};

static struct scratch dump_scratch;

size_t qc_cobj_size(size_t len, size_t n)
{
	size_t w = len > UINT16_MAX ? 4 : 2;

	if (len > UINT32_MAX - 1024 || n > QC_COBJ_MAX_MEMBERS)
		return 0;
	return sizeof(struct qc_cobj) + len + n * w;
}

struct qc_cobj *qc_cobj_pack(void *dst, const char *text, size_t len, size_t n,
                             const uint32_t *koff)
{
	struct qc_cobj *o = dst;
	char *idx;
	size_t i;

	o->refs = 0;
	o->len = (uint32_t)len;
	o->n = (uint16_t)n;
	o->flags = len > UINT16_MAX ? QC_COBJ_WIDE : 0;
	o->spare = 0;
	if (o->text != text) /* the text may have been written in place */
		memcpy(o->text, text, len);
	idx = o->text + len;
	for (i = 0; i < n; i++) {
		if (o->flags & QC_COBJ_WIDE) {
			memcpy(idx, &koff[i], 4);
			idx += 4;
		} else {
			uint16_t v = (uint16_t)koff[i];

			memcpy(idx, &v, 2);
			idx += 2;
		}
	}
	return o;
}

static void put_koff(struct qc_cobj *o, size_t i, uint32_t v)
{
	char *idx = o->text + o->len;

	if (o->flags & QC_COBJ_WIDE) {
		memcpy(idx + 4 * i, &v, 4);
	} else {
		uint16_t s = (uint16_t)v;

		memcpy(idx + 2 * i, &s, 2);
	}
}

/* An object of @len bytes of text and @n members with header filled, text and index not. */
static struct qc_cobj *init_at(void *dst, size_t len, size_t n)
{
	struct qc_cobj *o = dst;

	o->refs = 0;
	o->len = (uint32_t)len;
	o->n = (uint16_t)n;
	o->flags = len > UINT16_MAX ? QC_COBJ_WIDE : 0;
	o->spare = 0;
	return o;
}

/* ---- indexing trusted text ---------------------------------------------------------------- */

/* @t[@i] is '"': the index after the closing quote, or 0 when the text ends first. */
static size_t skip_string(const char *t, size_t i, size_t len)
{
	for (i++; i < len; i++) {
		if (t[i] == '\\')
			i++;
		else if (t[i] == '"')
			return i + 1;
	}
	return 0;
}

/* The index after the value starting at @i, or 0 when the text ends first. */
static size_t skip_value(const char *t, size_t i, size_t len)
{
	size_t depth = 0;

	if (i >= len)
		return 0;
	if (t[i] == '"')
		return skip_string(t, i, len);
	if (t[i] != '{' && t[i] != '[') {
		while (i < len && t[i] != ',' && t[i] != '}' && t[i] != ']')
			i++;
		return i < len ? i : 0;
	}
	while (i < len) {
		switch (t[i]) {
		case '"':
			i = skip_string(t, i, len);
			if (!i)
				return 0;
			continue;
		case '{':
		case '[':
			depth++;
			break;
		case '}':
		case ']':
			if (--depth == 0)
				return i + 1;
			break;
		}
		i++;
	}
	return 0;
}

/*
 * Index the members of @t: their count, or -1 when @t is not a compact object. With @o set,
 * the offsets and key lengths are written into its index (o->n members, counted before).
 */
static long index_text(const char *t, size_t len, struct qc_cobj *o)
{
	size_t i = 1, k, v;
	long n = 0;

	if (len < 2 || t[0] != '{' || t[len - 1] != '}')
		return -1;
	if (len == 2)
		return 0;
	for (;;) {
		if (t[i] != '"')
			return -1;
		k = skip_string(t, i, len);
		if (!k || k >= len || t[k] != ':')
			return -1;
		v = skip_value(t, k + 1, len);
		if (!v || n == QC_COBJ_MAX_MEMBERS)
			return -1;
		if (o)
			put_koff(o, (size_t)n, (uint32_t)i);
		n++;
		if (t[v] == '}' && v == len - 1)
			return n;
		if (t[v] != ',')
			return -1;
		i = v + 1;
	}
}

struct qc_cobj *qc_cobj_from_text(const char *text, size_t len)
{
	long n = index_text(text, len, NULL);
	struct qc_cobj *o;
	size_t size;

	if (n < 0)
		return NULL;
	size = qc_cobj_size(len, (size_t)n);
	if (!size)
		return NULL;
	o = malloc(size);
	if (!o)
		return NULL;
	init_at(o, len, (size_t)n);
	memcpy(o->text, text, len);
	index_text(o->text, len, o);
	o->refs = 1;
	return o;
}

static int scratch_append(const char *data, size_t size, void *arg)
{
	struct scratch *s = arg;
	size_t cap;
	char *nbuf;

	if (size > SIZE_MAX / 2 - s->len)
		return -1;
	if (s->len + size > s->cap) {
		cap = s->cap ? s->cap : 1024;
		while (cap < s->len + size)
			cap *= 2;
		nbuf = realloc(s->buf, cap);
		if (!nbuf)
			return -1;
		s->buf = nbuf;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, data, size);
	s->len += size;
	return 0;
}

struct qc_cobj *qc_cobj_from_json(const json_t *obj)
{
	if (!json_is_object(obj))
		return NULL;
	dump_scratch.len = 0;
	if (json_dump_callback(obj, scratch_append, &dump_scratch, DUMP_FLAGS))
		return NULL;
	return qc_cobj_from_text(dump_scratch.buf, dump_scratch.len);
}

json_t *qc_cobj_to_json(const struct qc_cobj *o)
{
	return json_loadb(o->text, o->len, 0, NULL);
}

struct qc_cobj *qc_cobj_copy(const struct qc_cobj *o, size_t extra)
{
	size_t size = qc_cobj_size(o->len, o->n);
	struct qc_cobj *c;

	if (!size || extra > SIZE_MAX - size)
		return NULL;
	c = malloc(size + extra);
	if (!c)
		return NULL;
	memcpy(c, o, size);
	c->refs = 1;
	c->spare = 0;
	return c;
}

void qc_cobj_unref(struct qc_cobj **po)
{
	struct qc_cobj *o;

	if (!po || !*po)
		return;
	o = *po;
	*po = NULL;
	if (o->refs && --o->refs == 0)
		free(o);
}

/* ---- look-ups ------------------------------------------------------------------------------ */

size_t qc_json_escape(char *out, const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	char *p = out;
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c != '"' && c != '\\') {
			*p++ = (char)c;
			continue;
		}
		*p++ = '\\';
		switch (c) {
		case '"':
		case '\\':
			*p++ = (char)c;
			break;
		case '\b':
			*p++ = 'b';
			break;
		case '\f':
			*p++ = 'f';
			break;
		case '\n':
			*p++ = 'n';
			break;
		case '\r':
			*p++ = 'r';
			break;
		case '\t':
			*p++ = 't';
			break;
		default:
			*p++ = 'u';
			*p++ = '0';
			*p++ = '0';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 15];
			break;
		}
	}
	return (size_t)(p - out);
}

/* The member whose escaped key is the @klen bytes at @key, searching from @hint; or -1. */
static int find_raw(const struct qc_cobj *o, const char *key, size_t klen, size_t hint)
{
	size_t i, k, n = o->n;

	if (!n)
		return -1;
	if (hint >= n)
		hint = 0;
	for (k = 0, i = hint; k < n; k++, i = i + 1 == n ? 0 : i + 1) {
		size_t at = qc_cobj_koff(o, i) + 1;

		/*
		 * @key is a whole escaped string, so the quote after it, if there is one, is not
		 * escaped: the member's key ends there and is @key.
		 */
		if (at + klen < o->len && !memcmp(o->text + at, key, klen) &&
		    o->text[at + klen] == '"')
			return (int)i;
	}
	return -1;
}

static bool needs_escape(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == '"' || c == '\\')
			return true;
	}
	return false;
}

int qc_cobj_find(const struct qc_cobj *o, const char *name, size_t len, size_t hint)
{
	char esc[6 * QC_COBJ_KEY_MAX];

	if (len > QC_COBJ_KEY_MAX)
		return -1;
	if (!needs_escape(name, len))
		return find_raw(o, name, len, hint);
	len = qc_json_escape(esc, name, len);
	return len > QC_COBJ_KEY_MAX ? -1 : find_raw(o, esc, len, hint);
}

/* ---- filters and merges ------------------------------------------------------------------- */

/* Whether names[@j] repeats an earlier name. */
static bool repeated(const char *const *names, size_t j)
{
	for (size_t k = 0; k < j; k++)
		if (!strcmp(names[k], names[j]))
			return true;
	return false;
}

struct qc_cobj *qc_cobj_filter(struct qc_cobj *o, const char *const *names, size_t nnames)
{
	size_t j, len = 2, n = 0, mlen, size;
	struct qc_cobj *out;
	const char *m;
	char *p;
	int i;

	errno = 0;
	if (!nnames && o->refs)
		return qc_cobj_ref(o);
	if (!nnames) {
		/* the caller may keep it: someone else's memory is copied */
		out = qc_cobj_copy(o, 0);
		if (!out)
			errno = ENOMEM;
		return out;
	}
	for (j = 0; j < nnames; j++) {
		if (repeated(names, j))
			continue;
		i = qc_cobj_find(o, names[j], strlen(names[j]), 0);
		if (i < 0)
			continue;
		qc_cobj_member(o, (size_t)i, &mlen);
		len += mlen + (n ? 1 : 0);
		n++;
	}
	if (!n)
		return NULL;
	size = qc_cobj_size(len, n);
	out = size ? malloc(size) : NULL;
	if (!out) {
		errno = ENOMEM;
		return NULL;
	}
	init_at(out, len, n);
	p = out->text;
	*p++ = '{';
	n = 0;
	for (j = 0; j < nnames; j++) {
		if (repeated(names, j))
			continue;
		i = qc_cobj_find(o, names[j], strlen(names[j]), 0);
		if (i < 0)
			continue;
		if (n)
			*p++ = ',';
		m = qc_cobj_member(o, (size_t)i, &mlen);
		put_koff(out, n, (uint32_t)(p - out->text));
		memcpy(p, m, mlen);
		p += mlen;
		n++;
	}
	*p = '}';
	out->refs = 1;
	return out;
}

bool qc_cobj_same_keys(const struct qc_cobj *a, const struct qc_cobj *b)
{
	size_t i, ka, kb;

	if (a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++) {
		const char *x = qc_cobj_key(a, i, &ka), *y = qc_cobj_key(b, i, &kb);

		if (ka != kb || memcmp(x, y, ka))
			return false;
	}
	return true;
}

/* Text length and member count of @a updated with @b; false when too large. */
static bool merge_plan(const struct qc_cobj *a, const struct qc_cobj *b, size_t *len, size_t *n)
{
	size_t j, klen, vlen, avlen, mlen, hint = 0;
	const char *key;
	int i;

	*len = a ? a->len : 2;
	*n = a ? a->n : 0;
	for (j = 0; b && j < b->n; j++) {
		key = qc_cobj_key(b, j, &klen);
		i = a ? find_raw(a, key, klen, hint) : -1;
		if (i >= 0) {
			qc_cobj_value(b, j, &vlen);
			qc_cobj_value(a, (size_t)i, &avlen);
			*len = *len - avlen + vlen;
			hint = (size_t)i + 1;
		} else {
			qc_cobj_member(b, j, &mlen);
			*len += mlen + (*n ? 1 : 0);
			++*n;
		}
	}
	return *n <= QC_COBJ_MAX_MEMBERS && *len <= UINT32_MAX - 1024;
}

size_t qc_cobj_merge_size(const struct qc_cobj *a, const struct qc_cobj *b)
{
	size_t len, n;

	if (!merge_plan(a, b, &len, &n))
		return 0;
	return qc_cobj_size(len, n);
}

struct qc_cobj *qc_cobj_merge_to(void *dst, const struct qc_cobj *a, const struct qc_cobj *b)
{
	size_t len, n, j, k = 0, klen, vlen, mlen, hint = 0;
	struct qc_cobj *out;
	const char *key, *v;
	char *p;
	int i;

	merge_plan(a, b, &len, &n);
	out = init_at(dst, len, n);
	p = out->text;
	*p++ = '{';
	/* @a's members in their order, each with @b's value when @b has the key */
	for (j = 0; a && j < a->n; j++) {
		key = qc_cobj_key(a, j, &klen);
		i = b ? find_raw(b, key, klen, hint) : -1;
		if (k)
			*p++ = ',';
		put_koff(out, k, (uint32_t)(p - out->text));
		*p++ = '"';
		memcpy(p, key, klen);
		p += klen;
		*p++ = '"';
		*p++ = ':';
		if (i >= 0) {
			v = qc_cobj_value(b, (size_t)i, &vlen);
			hint = (size_t)i + 1;
		} else {
			v = qc_cobj_value(a, j, &vlen);
		}
		memcpy(p, v, vlen);
		p += vlen;
		k++;
	}
	/* then @b's members that @a lacks, in @b's order */
	hint = 0;
	for (j = 0; b && j < b->n; j++) {
		key = qc_cobj_key(b, j, &klen);
		i = a ? find_raw(a, key, klen, hint) : -1;
		if (i >= 0) {
			hint = (size_t)i + 1;
			continue;
		}
		if (k)
			*p++ = ',';
		put_koff(out, k, (uint32_t)(p - out->text));
		v = qc_cobj_member(b, j, &mlen);
		memcpy(p, v, mlen);
		p += mlen;
		k++;
	}
	*p = '}';
	return out;
}

struct qc_cobj *qc_cobj_merge(const struct qc_cobj *a, const struct qc_cobj *b)
{
	size_t size = qc_cobj_merge_size(a, b);
	struct qc_cobj *o;

	if (!size)
		return NULL;
	o = malloc(size);
	if (!o)
		return NULL;
	qc_cobj_merge_to(o, a, b);
	o->refs = 1;
	return o;
}
