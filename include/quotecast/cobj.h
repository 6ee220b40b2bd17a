/*
 * cobj: compact JSON objects (layer 0).
 *
 * How quotecast keeps a market tick's data: the object's compact JSON text exactly as jansson
 * prints it (JSON_COMPACT, reals with 15 significant digits, as msg.c sends everything), and
 * an index of its members, in one allocation. Field filters, merges (the snapshot, conflation)
 * and the stream_data encoders copy member text and never parse it: a member's text does not
 * depend on where it stands, so an object spliced from members reads byte for byte as jansson
 * would print an object holding those members in that order.
 *
 * Layout: struct qc_cobj, @len bytes of text ("{...}", not NUL-terminated), then @n key
 * offsets (uint16_t each, or uint32_t when QC_COBJ_WIDE: text of 64 KiB or more), then
 * whatever the owner put after the index (qc_cobj_copy()'s @extra: a tick's timestamp and
 * message id). Member i's key starts with its opening quote at offset koff[i] and ends at the
 * next quote that no backslash escapes (a key is short: finding its end costs less than storing
 * it); it is JSON-escaped. Its value follows the closing quote and the colon and ends before
 * the ',' of member i+1 (or the final '}'). Key order is the object's order (jansson keeps
 * insertion order). An object has at most QC_COBJ_MAX_MEMBERS members.
 *
 * Ownership: refcounted. refs 0 marks an object built in someone else's memory
 * (qc_cobj_pack(), a stream's snapshot); ref and unref leave those alone. An object is not
 * changed once anyone else may hold it.
 */
#ifndef QC_COBJ_H
#define QC_COBJ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#define QC_COBJ_WIDE        0x01 /* 32-bit key offsets */
#define QC_COBJ_MAX_MEMBERS 65535
#define QC_COBJ_KEY_MAX     255 /* bytes of an escaped name qc_cobj_find() looks up */

struct qc_cobj {
	uint32_t refs; /* 0: not refcounted (lives in its owner's memory) */
	uint32_t len;  /* bytes of text */
	uint16_t n;    /* members */
	uint8_t flags; /* QC_COBJ_WIDE */
	uint8_t spare; /* the owner's (stream.c marks ticks) */
	char text[];   /* text, index, extra */
};

/** qc_cobj_size() - bytes of an object of @len bytes of text and @n members (header, text,
 * index); 0 when it would not fit the layout. */
size_t qc_cobj_size(size_t len, size_t n);

/**
 * qc_cobj_pack() - lay out an object at @dst (qc_cobj_size() bytes, 4-byte aligned) from @len
 * bytes of compact object text and its @n members' key offsets (as in the layout above);
 * @text may already be in place at @dst's text. Returns @dst as an object with refs 0.
 * Nothing is checked: @text must be what jansson prints, or splices of it.
 */
struct qc_cobj *qc_cobj_pack(void *dst, const char *text, size_t len, size_t n,
                             const uint32_t *koff);

/**
 * qc_cobj_from_json() - the compact form of @obj (borrowed): its text as jansson prints it
 * with QC_JSON_DUMP flags, indexed. Returns a new object (one reference), or NULL when @obj is
 * not an object, has too many members, or on ENOMEM.
 */
struct qc_cobj *qc_cobj_from_json(const json_t *obj);

/**
 * qc_cobj_from_text() - index @len bytes of compact object text that jansson printed (or a
 * splice of such): a new object, or NULL when the text is not such an object or on ENOMEM.
 */
struct qc_cobj *qc_cobj_from_text(const char *text, size_t len);

/** qc_cobj_to_json() - the object as a new jansson tree (it parses the text), or NULL. */
json_t *qc_cobj_to_json(const struct qc_cobj *o);

/**
 * qc_cobj_copy() - a new object (one reference) with @o's text and index and @extra spare
 * bytes after the index (qc_cobj_extra()), or NULL on ENOMEM.
 */
struct qc_cobj *qc_cobj_copy(const struct qc_cobj *o, size_t extra);

/** qc_cobj_extra() - the first byte after the index (what qc_cobj_copy()'s @extra gave). */
static inline char *qc_cobj_extra(const struct qc_cobj *o)
{
	size_t w = o->flags & QC_COBJ_WIDE ? 4 : 2;

	return (char *)o->text + o->len + (size_t)o->n * w;
}

static inline uint32_t qc_cobj_koff(const struct qc_cobj *o, size_t i)
{
	const char *idx = o->text + o->len;

	if (o->flags & QC_COBJ_WIDE) {
		uint32_t v;

		memcpy(&v, idx + 4 * i, 4);
		return v;
	} else {
		uint16_t v;

		memcpy(&v, idx + 2 * i, 2);
		return v;
	}
}

/* The bytes of member @i's key between its quotes. */
static inline size_t qc_cobj_klen(const struct qc_cobj *o, size_t i)
{
	const char *k = o->text + qc_cobj_koff(o, i) + 1, *p = k;

	while (*p != '"')
		p += *p == '\\' ? 2 : 1;
	return (size_t)(p - k);
}

/** qc_cobj_key() - member @i's key, JSON-escaped, without quotes; its length in *@klen. */
static inline const char *qc_cobj_key(const struct qc_cobj *o, size_t i, size_t *klen)
{
	*klen = qc_cobj_klen(o, i);
	return o->text + qc_cobj_koff(o, i) + 1;
}

/** qc_cobj_value() - member @i's value text; its length in *@vlen. */
static inline const char *qc_cobj_value(const struct qc_cobj *o, size_t i, size_t *vlen)
{
	size_t start = qc_cobj_koff(o, i) + 1 + qc_cobj_klen(o, i) + 2;
	size_t end = i + 1 < o->n ? qc_cobj_koff(o, i + 1) - 1 : o->len - 1;

	*vlen = end - start;
	return o->text + start;
}

/** qc_cobj_member() - member @i as "key":value; its length in *@mlen. */
static inline const char *qc_cobj_member(const struct qc_cobj *o, size_t i, size_t *mlen)
{
	size_t start = qc_cobj_koff(o, i);
	size_t end = i + 1 < o->n ? qc_cobj_koff(o, i + 1) - 1 : o->len - 1;

	*mlen = end - start;
	return o->text + start;
}

/**
 * qc_cobj_find() - the index of the member named @name (@len bytes, not escaped), or -1.
 * Members are searched from @hint on (wrapping round): pass where the caller expects it, or 0.
 */
int qc_cobj_find(const struct qc_cobj *o, const char *name, size_t len, size_t hint);

/**
 * qc_cobj_filter() - what a subscriber with the fields @names receives of @o: a new reference
 * to @o itself when @nnames is 0 (a copy when @o is not refcounted), else a new object with
 * those of @names that @o has, in the order of @names (a name repeated counts once); NULL when
 * @o has none of them (errno 0) or on ENOMEM (errno ENOMEM).
 */
struct qc_cobj *qc_cobj_filter(struct qc_cobj *o, const char *const *names, size_t nnames);

/**
 * qc_cobj_merge_size() - bytes qc_cobj_merge_to() needs for @a updated with @b (@a may be
 * NULL: empty); 0 when the result would have too many members or be too large.
 */
size_t qc_cobj_merge_size(const struct qc_cobj *a, const struct qc_cobj *b);

/**
 * qc_cobj_merge_to() - write at @dst (qc_cobj_merge_size() bytes, 4-byte aligned, not
 * overlapping either input) @a updated with @b, as json_object_update() would: @a's members in
 * their order, each with @b's value when @b has that key, then @b's other members in @b's
 * order. Returns @dst (refs 0).
 */
struct qc_cobj *qc_cobj_merge_to(void *dst, const struct qc_cobj *a, const struct qc_cobj *b);

/** qc_cobj_merge() - the same into a new object (one reference), or NULL (ENOMEM, too big). */
struct qc_cobj *qc_cobj_merge(const struct qc_cobj *a, const struct qc_cobj *b);

/**
 * qc_cobj_same_keys() - whether @a and @b have the same keys in the same order (then @a
 * updated with @b is @b).
 */
bool qc_cobj_same_keys(const struct qc_cobj *a, const struct qc_cobj *b);

/** qc_cobj_ref() - one more reference (not for refs 0); returns @o. */
static inline struct qc_cobj *qc_cobj_ref(struct qc_cobj *o)
{
	if (o->refs)
		o->refs++;
	return o;
}

/** qc_cobj_unref() - drop the reference in *@po and clear it; NULL-safe; refs 0 untouched. */
void qc_cobj_unref(struct qc_cobj **po);

/**
 * qc_json_escape() - write the @len bytes at @s (valid UTF-8) as jansson writes a string's
 * contents: '"' and '\\' and control characters escaped (\b \f \n \r \t, else \u00XX),
 * everything else as it is; no quotes around it. @out needs 6 * @len bytes. Returns the bytes
 * written.
 */
size_t qc_json_escape(char *out, const char *s, size_t len);

#endif
