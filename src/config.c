/*
 * config: the settings of SPEC section 6 and every way they are read.
 *
 * One table, keys[], names each setting once: its dotted key, type, place in struct qc_config,
 * range and default (in text form, applied by the same parser as environment values). The
 * defaults, the JSON file, the QUOTECAST_* variables, --set and the other flags and the
 * --check-config output (qc_config_to_json) all walk that table, so a new setting is one line
 * here, one field in the header and one row in docs/configuration.md; the unit test checks that
 * the docs and the shipped config/quotecast.json name every key. This runs at start-up only,
 * before the event loop exists, so it reads the file with plain stdio.
 */
#include "quotecast/config.h"
#include "quotecast/utf8.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>

#include "quotecast/shard.h"

_Static_assert(sizeof(enum qc_event_loop) == sizeof(int), "enum keys are stored as int");
_Static_assert(sizeof(enum qc_auth_mode) == sizeof(int), "enum keys are stored as int");
_Static_assert(sizeof(enum qc_log_level) == sizeof(int), "enum keys are stored as int");

#define MAX_FILE_BYTES   (1u << 20)
#define MAX_SYMBOL_CHARS 32
#define JWT_SECRET_MIN   32
#define KEY_NAME_MAX     64
#define NODE_ID_MAX      64
#define TIB              (UINT64_C(1) << 40)

enum ktype {
	T_STR,
	T_U32,
	T_U64,
	T_BOOL,
	T_ENUM,
	T_LIST,
};

enum secrecy {
	PLAIN = 0,
	SECRET,     /* shown as "***" when set */
	SECRET_URL, /* only the password inside the URL is hidden */
};

struct key {
	const char *name;
	enum ktype type;
	size_t off;
	size_t count_off; /* T_LIST: where the element count lives */
	uint64_t min, max;
	const char *const *names; /* T_ENUM, NULL-terminated, index = enum value */
	const char *def;          /* the default in text form, as for qc_config_set() */
	enum secrecy secrecy;
	bool urls; /* T_LIST: Redis URLs (qc_redis_url_parse), not symbols */
};

static const char *const loop_names[] = {"auto", "libuv", "libev", "poll", NULL};
static const char *const auth_names[] = {"none", "jwt", NULL};
static const char *const level_names[] = {"error", "warn", "info", "debug", NULL};

#define OFF(f) offsetof(struct qc_config, f)
#define STR(k, f, d, s)                                                                            \
	{                                                                                          \
		.name = k, .type = T_STR, .off = OFF(f), .def = d, .secrecy = s                    \
	}
#define U32(k, f, lo, hi, d)                                                                       \
	{                                                                                          \
		.name = k, .type = T_U32, .off = OFF(f), .min = lo, .max = hi, .def = d            \
	}
#define U64(k, f, lo, hi, d)                                                                       \
	{                                                                                          \
		.name = k, .type = T_U64, .off = OFF(f), .min = lo, .max = hi, .def = d            \
	}
#define BOOL(k, f, d)                                                                              \
	{                                                                                          \
		.name = k, .type = T_BOOL, .off = OFF(f), .def = d                                 \
	}
#define ENUM(k, f, n, d)                                                                           \
	{                                                                                          \
		.name = k, .type = T_ENUM, .off = OFF(f), .names = n, .def = d                     \
	}

static const struct key keys[] = {
    STR("listen.host", listen_host, "0.0.0.0", PLAIN),
    U32("listen.port", listen_port, 0, 65535, "8080"),
    STR("tls.cert", tls_cert, "", PLAIN),
    STR("tls.key", tls_key, "", PLAIN),
    ENUM("event_loop", event_loop, loop_names, "auto"),
    ENUM("auth.mode", auth_mode, auth_names, "none"),
    STR("auth.jwt_secret", auth_jwt_secret, "", SECRET),
    STR("auth.admin_token", auth_admin_token, "", SECRET),
    STR("auth.publish_token", auth_publish_token, "", SECRET),
    STR("store.url", store_url, "", SECRET_URL),
    U32("store.max_pending", store.max_pending, 1, 1000000, "10000"),
    U32("store.timeout_ms", store.timeout_ms, 100, 600000, "5000"),
    U32("store.connect_timeout_s", store.connect_timeout_s, 1, 3600, "10"),
    U32("socketio.ping_interval_ms", socketio.ping_interval_ms, 100, 3600000, "25000"),
    U32("socketio.ping_timeout_ms", socketio.ping_timeout_ms, 100, 3600000, "20000"),
    U32("limits.max_message_bytes", limits.max_message_bytes, 256, 16777216, "65536"),
    U32("limits.max_http_body_bytes", limits.max_http_body_bytes, 1, 67108864, "1048576"),
    U32("limits.max_rooms_per_connection", limits.max_rooms_per_connection, 1, 100000, "100"),
    U32("limits.max_streams_per_connection", limits.max_streams_per_connection, 1, 100000, "100"),
    U32("limits.rate_per_s", limits.rate_per_s, 0, 1000000, "100"),
    U32("limits.rate_burst", limits.rate_burst, 1, 1000000, "200"),
    U32("limits.idle_timeout_s", limits.idle_timeout_s, 1, 86400, "60"),
    U64("limits.conflate_bytes", limits.conflate_bytes, 0, TIB, "262144"),
    U64("limits.max_send_queue_bytes", limits.max_send_queue_bytes, 1, TIB, "4194304"),
    U32("limits.max_bad_messages", limits.max_bad_messages, 1, 1000000, "10"),
    U32("limits.max_connections", limits.max_connections, 1, 10000000, "100000"),
    U32("limits.max_connections_per_user", limits.max_connections_per_user, 0, 10000000, "100"),
    U32("limits.max_connections_per_ip", limits.max_connections_per_ip, 0, 10000000, "1000"),
    U32("limits.max_http_connections", limits.max_http_connections, 1, 10000000, "10000"),
    U32("limits.max_publishers", limits.max_publishers, 1, 10000, "64"),
    U32("limits.publisher_rate_per_s", limits.publisher_rate_per_s, 0, 10000000, "0"),
    U32("limits.publisher_max_message_bytes", limits.publisher_max_message_bytes, 256, 268435456,
        "16777216"),
    U32("streams.buffer_size", streams.buffer_size, 1, 1000000, "1000"),
    U32("streams.dedup_window", streams.dedup_window, 1, 1000000, "1024"),
    U32("streams.max_symbols", streams.max_symbols, 1, 10000000, "10000"),
    U32("streams.max_subscribe_only", streams.max_subscribe_only, 0, 10000000, "10000"),
    U32("streams.idle_ttl_s", streams.idle_ttl_s, 0, 2592000, "300"),
    U32("subscriptions.max_per_user", subscriptions.max_per_user, 0, 100000, "100"),
    U32("subscriptions.max_total", subscriptions.max_total, 0, 10000000, "100000"),
    U32("sessions.ttl_s", sessions.ttl_s, 0, 604800, "120"),
    U32("sessions.buffer_messages", sessions.buffer_messages, 0, 1000000, "1000"),
    U32("sessions.max_suspended", sessions.max_suspended, 0, 10000000, "100000"),
    U64("sessions.max_buffered_bytes", sessions.max_buffered_bytes, 0, TIB, "268435456"),
    U32("sessions.max_per_user", sessions.max_per_user, 0, 1000000, "16"),
    U32("offline.max_per_user", offline.max_per_user, 0, 1000000, "1000"),
    U64("offline.max_total_bytes", offline.max_total_bytes, 0, TIB, "268435456"),
    U32("rooms.max_total", rooms.max_total, 1, 10000000, "100000"),
    U32("rooms.max_per_owner", rooms.max_per_owner, 1, 10000000, "100"),
    U32("rooms.max_members", rooms.max_members, 1, 1000000, "10000"),
    U32("rooms.password_attempts", rooms.password_attempts, 1, 1000, "5"),
    U32("rooms.password_window_s", rooms.password_window_s, 1, 86400, "60"),
    U32("rooms.password_hashes_per_s", rooms.password_hashes_per_s, 1, 100000, "10"),
    U32("rooms.history_size", rooms.history_size, 1, 1000000, "1000"),
    U32("rooms.history_ttl_s", rooms.history_ttl_s, 0, 2592000, "300"),
    U32("inbox.history_size", inbox.history_size, 1, 1000000, "1000"),
    BOOL("demo_feed.enabled", demo_feed.enabled, "false"),
    {.name = "demo_feed.symbols",
     .type = T_LIST,
     .off = OFF(demo_feed.symbols),
     .count_off = OFF(demo_feed.nsymbols),
     .def = "AAPL,MSFT,GOOG,600519,BTCUSD"},
    U32("demo_feed.rate_per_s", demo_feed.rate_per_s, 1, 100000, "10"),
    ENUM("log.level", log_level, level_names, "info"),
    BOOL("web.enabled", web.enabled, "true"),
    STR("web.root", web.root, "", PLAIN),
    {.name = "cluster.redis",
     .type = T_LIST,
     .off = OFF(cluster.redis),
     .count_off = OFF(cluster.nredis),
     .def = "",
     .urls = true},
    STR("cluster.node_id", cluster.node_id, "", PLAIN),
    U32("cluster.max_inflight", cluster.max_inflight, 1, 1000000, "10000"),
    U32("cluster.timeout_ms", cluster.timeout_ms, 50, 60000, "1000"),
    U32("cluster.log_ttl_s", cluster.log_ttl_s, 0, 31536000, "86400"),
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

/* A parsed value, not yet stored: parsing can fail without touching the config. */
struct val {
	char *s;
	uint64_t n;
	bool b;
	int e;
	char **list;
	size_t nlist;
};

static void vseterr(char *err, size_t errlen, const char *origin, const struct key *k,
                    const char *fmt, va_list ap)
{
	char msg[512];
	size_t i;

	if (!err || !errlen)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	snprintf(err, errlen, "%s%s%s%s%s%s", origin ? origin : "", origin ? ": " : "",
	         k ? "\"" : "", k ? k->name : "", k ? "\": " : "", msg);
	/* The message echoes user text (key names, values): keep it on one line. */
	for (i = 0; err[i]; i++)
		if ((unsigned char)err[i] < 0x20 || err[i] == 0x7f)
			err[i] = '?';
}

static void seterr(char *err, size_t errlen, const char *origin, const struct key *k,
                   const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vseterr(err, errlen, origin, k, fmt, ap);
	va_end(ap);
}

static const struct key *find_key(const char *name)
{
	size_t i;

	for (i = 0; i < NKEYS; i++)
		if (!strcmp(keys[i].name, name))
			return &keys[i];
	return NULL;
}

/* True when @name (of @len bytes) is a section: some key begins with "name.". */
static bool is_section(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < NKEYS; i++)
		if (!strncmp(keys[i].name, name, len) && keys[i].name[len] == '.')
			return true;
	return false;
}

static void free_list(char **list, size_t n)
{
	size_t i;

	if (!list)
		return;
	for (i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

static void val_release(struct val *v)
{
	free(v->s);
	free_list(v->list, v->nlist);
	memset(v, 0, sizeof(*v));
}

static void expect_msg(const struct key *k, char *buf, size_t len)
{
	size_t i, o;

	switch (k->type) {
	case T_STR:
		snprintf(buf, len, "expected a string");
		break;
	case T_U32:
	case T_U64:
		snprintf(buf, len, "expected an integer from %" PRIu64 " to %" PRIu64, k->min,
		         k->max);
		break;
	case T_BOOL:
		snprintf(buf, len, "expected true or false");
		break;
	case T_ENUM:
		o = (size_t)snprintf(buf, len, "expected one of");
		for (i = 0; k->names[i] && o < len; i++)
			o += (size_t)snprintf(buf + o, len - o, "%s \"%s\"", i ? "," : "",
			                      k->names[i]);
		break;
	case T_LIST:
		snprintf(buf, len,
		         k->urls ? "expected a list of redis://HOST:PORT URLs"
		                 : "expected a list of symbols");
		break;
	}
}

static int expected(const struct key *k, const char *origin, char *err, size_t errlen)
{
	char msg[160];

	expect_msg(k, msg, sizeof(msg));
	seterr(err, errlen, origin, k, "%s", msg);
	return -EINVAL;
}

static bool symbol_char(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '_' || ch == '-';
}

/* Appends one symbol (@len bytes of @s) to the list in @v after checking it. */
static int list_add(struct val *v, const char *s, size_t len, const struct key *k,
                    const char *origin, char *err, size_t errlen)
{
	char **grown, host[256], url[512];
	const char *why = "";
	uint16_t port;
	size_t i;

	if (!len) {
		seterr(err, errlen, origin, k, "empty %s in the list", k->urls ? "URL" : "symbol");
		return -EINVAL;
	}
	if (k->urls) {
		if (len >= sizeof(url)) {
			seterr(err, errlen, origin, k, "a URL of %zu bytes is too long", len);
			return -EINVAL;
		}
		for (i = 0; i < len; i++) {
			/* not echoed: the message stays one line of text */
			if (s[i] <= ' ' || s[i] > '~') {
				seterr(err, errlen, origin, k,
				       "a URL may only have printable ASCII characters");
				return -EINVAL;
			}
		}
		memcpy(url, s, len);
		url[len] = '\0';
		if (qc_redis_url_parse(url, host, sizeof(host), &port, &why)) {
			seterr(err, errlen, origin, k, "\"%.*s\": %s", (int)(len > 80 ? 80 : len),
			       s, why);
			return -EINVAL;
		}
	}
	for (i = 0; i < len && !k->urls; i++)
		if (!symbol_char(s[i]))
			break;
	if (!k->urls && (len > MAX_SYMBOL_CHARS || i < len)) {
		seterr(err, errlen, origin, k,
		       "symbol \"%.*s\" is not 1 to %d characters of A-Z a-z 0-9 . _ -",
		       (int)(len > 40 ? 40 : len), s, MAX_SYMBOL_CHARS);
		return -EINVAL;
	}
	for (i = 0; i < v->nlist; i++) {
		if (strlen(v->list[i]) == len && !memcmp(v->list[i], s, len)) {
			seterr(err, errlen, origin, k, "%s \"%.*s\" is listed twice",
			       k->urls ? "URL" : "symbol", (int)len, s);
			return -EINVAL;
		}
	}
	/* One spare slot keeps the array NULL-terminated for readers who prefer that. */
	grown = realloc(v->list, (v->nlist + 2) * sizeof(*grown));
	if (!grown)
		goto fail_nomem;
	v->list = grown;
	v->list[v->nlist] = strndup(s, len);
	if (!v->list[v->nlist])
		goto fail_nomem;
	v->nlist++;
	v->list[v->nlist] = NULL;
	return 0;

fail_nomem:
	seterr(err, errlen, origin, k, "out of memory");
	return -ENOMEM;
}

/* An empty list still gets an array, so the config's list pointer is never NULL. */
static int list_finish(struct val *v, const struct key *k, const char *origin, char *err,
                       size_t errlen)
{
	if (v->list)
		return 0;
	v->list = calloc(1, sizeof(*v->list));
	if (!v->list) {
		seterr(err, errlen, origin, k, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

static int parse_list_text(struct val *v, const char *text, const struct key *k, const char *origin,
                           char *err, size_t errlen)
{
	const char *p = text, *end, *b, *e;
	int rc;

	while (is_blank(*p))
		p++;
	if (*p) {
		for (;;) {
			end = strchr(p, ',');
			if (!end)
				end = p + strlen(p);
			b = p;
			e = end;
			while (b < e && is_blank(*b))
				b++;
			while (e > b && is_blank(e[-1]))
				e--;
			rc = list_add(v, b, (size_t)(e - b), k, origin, err, errlen);
			if (rc) {
				val_release(v);
				return rc;
			}
			if (!*end)
				break;
			p = end + 1;
		}
	}
	return list_finish(v, k, origin, err, errlen);
}

static int parse_text(const struct key *k, const char *text, struct val *v, const char *origin,
                      char *err, size_t errlen)
{
	unsigned long long n;
	char *end;
	int i;

	memset(v, 0, sizeof(*v));
	switch (k->type) {
	case T_STR:
		/*
		 * Only UTF-8, as a JSON file can give: the effective configuration is JSON
		 * (--check-config), and jansson refuses to make a string of other bytes.
		 */
		if (!qc_utf8_valid(text, strlen(text))) {
			seterr(err, errlen, origin, k, "expected a string of UTF-8 text");
			return -EINVAL;
		}
		v->s = strdup(text);
		if (!v->s) {
			seterr(err, errlen, origin, k, "out of memory");
			return -ENOMEM;
		}
		return 0;
	case T_U32:
	case T_U64:
		/* strtoull alone would take spaces, signs and "0x": only plain digits here. */
		if (text[0] < '0' || text[0] > '9')
			return expected(k, origin, err, errlen);
		errno = 0;
		n = strtoull(text, &end, 10);
		if (errno || *end || n < k->min || n > k->max)
			return expected(k, origin, err, errlen);
		v->n = n;
		return 0;
	case T_BOOL:
		if (!strcmp(text, "true") || !strcmp(text, "1"))
			v->b = true;
		else if (!strcmp(text, "false") || !strcmp(text, "0"))
			v->b = false;
		else
			return expected(k, origin, err, errlen);
		return 0;
	case T_ENUM:
		for (i = 0; k->names[i]; i++) {
			if (!strcmp(k->names[i], text)) {
				v->e = i;
				return 0;
			}
		}
		return expected(k, origin, err, errlen);
	case T_LIST:
		return parse_list_text(v, text, k, origin, err, errlen);
	}
	return -EINVAL;
}

static int parse_json(const struct key *k, json_t *j, struct val *v, const char *origin, char *err,
                      size_t errlen)
{
	json_int_t n;
	size_t i;
	json_t *item;
	int rc;

	memset(v, 0, sizeof(*v));
	switch (k->type) {
	case T_STR:
		if (!json_is_string(j))
			return expected(k, origin, err, errlen);
		return parse_text(k, json_string_value(j), v, origin, err, errlen);
	case T_U32:
	case T_U64:
		if (!json_is_integer(j))
			return expected(k, origin, err, errlen);
		n = json_integer_value(j);
		if (n < 0 || (uint64_t)n < k->min || (uint64_t)n > k->max)
			return expected(k, origin, err, errlen);
		v->n = (uint64_t)n;
		return 0;
	case T_BOOL:
		if (!json_is_boolean(j))
			return expected(k, origin, err, errlen);
		v->b = json_is_true(j);
		return 0;
	case T_ENUM:
		if (!json_is_string(j))
			return expected(k, origin, err, errlen);
		return parse_text(k, json_string_value(j), v, origin, err, errlen);
	case T_LIST:
		if (!json_is_array(j))
			return expected(k, origin, err, errlen);
		for (i = 0; i < json_array_size(j); i++) {
			item = json_array_get(j, i);
			if (!json_is_string(item)) {
				val_release(v);
				return expected(k, origin, err, errlen);
			}
			rc = list_add(v, json_string_value(item), json_string_length(item), k,
			              origin, err, errlen);
			if (rc) {
				val_release(v);
				return rc;
			}
		}
		rc = list_finish(v, k, origin, err, errlen);
		if (rc)
			val_release(v);
		return rc;
	}
	return -EINVAL;
}

/* Moves @v into the config (the config takes its heap parts) and frees what it replaces. */
static void store(struct qc_config *c, const struct key *k, struct val *v)
{
	char *field = (char *)c + k->off;
	char *old, **old_list;
	size_t old_n;
	uint32_t u32;

	switch (k->type) {
	case T_STR:
		memcpy(&old, field, sizeof(old));
		free(old);
		memcpy(field, &v->s, sizeof(v->s));
		v->s = NULL;
		break;
	case T_U32:
		u32 = (uint32_t)v->n;
		memcpy(field, &u32, sizeof(u32));
		break;
	case T_U64:
		memcpy(field, &v->n, sizeof(v->n));
		break;
	case T_BOOL:
		memcpy(field, &v->b, sizeof(v->b));
		break;
	case T_ENUM:
		memcpy(field, &v->e, sizeof(v->e));
		break;
	case T_LIST:
		memcpy(&old_list, field, sizeof(old_list));
		memcpy(&old_n, (char *)c + k->count_off, sizeof(old_n));
		free_list(old_list, old_n);
		memcpy(field, &v->list, sizeof(v->list));
		memcpy((char *)c + k->count_off, &v->nlist, sizeof(v->nlist));
		v->list = NULL;
		v->nlist = 0;
		break;
	}
}

static int set_text(struct qc_config *c, const struct key *k, const char *text, const char *origin,
                    char *err, size_t errlen)
{
	struct val v;
	int rc;

	rc = parse_text(k, text, &v, origin, err, errlen);
	if (rc)
		return rc;
	store(c, k, &v);
	return 0;
}

static const char *get_str(const struct qc_config *c, const struct key *k)
{
	const char *s;

	memcpy(&s, (const char *)c + k->off, sizeof(s));
	return s ? s : "";
}

static uint64_t get_num(const struct qc_config *c, const struct key *k)
{
	uint32_t u32;
	uint64_t u64;

	if (k->type == T_U32) {
		memcpy(&u32, (const char *)c + k->off, sizeof(u32));
		return u32;
	}
	memcpy(&u64, (const char *)c + k->off, sizeof(u64));
	return u64;
}

int qc_config_defaults(struct qc_config *c)
{
	size_t i;
	int rc;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < NKEYS; i++) {
		rc = set_text(c, &keys[i], keys[i].def, NULL, NULL, 0);
		if (rc)
			goto fail_free;
	}
	return 0;

fail_free:
	qc_config_free(c);
	return rc;
}

void qc_config_free(struct qc_config *c)
{
	size_t i, nlist;
	char *s, **list;

	if (!c)
		return;
	for (i = 0; i < NKEYS; i++) {
		if (keys[i].type == T_LIST) {
			memcpy(&list, (char *)c + keys[i].off, sizeof(list));
			memcpy(&nlist, (char *)c + keys[i].count_off, sizeof(nlist));
			free_list(list, nlist);
			continue;
		}
		if (keys[i].type != T_STR)
			continue;
		memcpy(&s, (char *)c + keys[i].off, sizeof(s));
		free(s);
	}
	memset(c, 0, sizeof(*c));
}

int qc_config_set(struct qc_config *c, const char *key, const char *value, char *err, size_t errlen)
{
	const struct key *k;

	if (!key || !value) {
		seterr(err, errlen, NULL, NULL, "missing key or value");
		return -EINVAL;
	}
	k = find_key(key);
	if (!k) {
		seterr(err, errlen, NULL, NULL, "unknown key \"%s\"", key);
		return -ENOENT;
	}
	return set_text(c, k, value, NULL, err, errlen);
}

static int apply_object(struct qc_config *c, json_t *obj, const char *prefix, bool *seen,
                        const char *origin, char *err, size_t errlen)
{
	char full[KEY_NAME_MAX + 2];
	const struct key *k;
	const char *name;
	struct val v;
	json_t *j;
	void *it;
	int n, rc;

	for (it = json_object_iter(obj); it; it = json_object_iter_next(obj, it)) {
		name = json_object_iter_key(it);
		j = json_object_iter_value(it);
		if (name[0] == '_' || !strncmp(name, "//", 2))
			continue;
		n = snprintf(full, sizeof(full), "%s%s%s", prefix, *prefix ? "." : "", name);
		if (n < 0 || (size_t)n >= sizeof(full)) {
			seterr(err, errlen, origin, NULL, "unknown key \"%s%s%s\"", prefix,
			       *prefix ? "." : "", name);
			return -EINVAL;
		}
		k = find_key(full);
		if (k) {
			/* One key spelled both nested and dotted: say so, don't pick one. */
			if (seen[k - keys]) {
				seterr(err, errlen, origin, k, "given twice");
				return -EINVAL;
			}
			seen[k - keys] = true;
			rc = parse_json(k, j, &v, origin, err, errlen);
			if (rc)
				return rc == -ENOMEM ? rc : -EINVAL;
			store(c, k, &v);
			continue;
		}
		if (!is_section(full, (size_t)n)) {
			seterr(err, errlen, origin, NULL, "unknown key \"%s\"", full);
			return -EINVAL;
		}
		if (!json_is_object(j)) {
			seterr(err, errlen, origin, NULL, "\"%s\": expected an object", full);
			return -EINVAL;
		}
		rc = apply_object(c, j, full, seen, origin, err, errlen);
		if (rc)
			return rc;
	}
	return 0;
}

int qc_config_apply_json(struct qc_config *c, const char *text, const char *origin, char *err,
                         size_t errlen)
{
	bool seen[NKEYS] = {false};
	json_error_t jerr;
	json_t *root;
	int rc;

	if (!origin)
		origin = "config";
	root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		seterr(err, errlen, NULL, NULL, "%s:%d:%d: %s", origin, jerr.line, jerr.column,
		       jerr.text);
		return -EINVAL;
	}
	if (!json_is_object(root)) {
		seterr(err, errlen, origin, NULL, "expected a JSON object at the top level");
		json_decref(root);
		return -EINVAL;
	}
	rc = apply_object(c, root, "", seen, origin, err, errlen);
	json_decref(root);
	return rc;
}

static int read_file(const char *path, char **out, char *err, size_t errlen)
{
	size_t len = 0, cap = 4096, got;
	char *buf, *grown;
	FILE *f;
	int rc;

	f = fopen(path, "rb");
	if (!f) {
		rc = errno ? -errno : -EIO;
		seterr(err, errlen, NULL, NULL, "cannot read config file %s: %s", path,
		       strerror(errno));
		return rc;
	}
	buf = malloc(cap);
	if (!buf)
		goto fail_nomem;
	for (;;) {
		if (len + 1 == cap) {
			if (cap >= MAX_FILE_BYTES) {
				seterr(err, errlen, NULL, NULL,
				       "config file %s: larger than %u bytes", path,
				       MAX_FILE_BYTES);
				rc = -EFBIG;
				goto fail_free;
			}
			grown = realloc(buf, cap * 2);
			if (!grown)
				goto fail_nomem;
			buf = grown;
			cap *= 2;
		}
		got = fread(buf + len, 1, cap - 1 - len, f);
		len += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		rc = -EIO;
		seterr(err, errlen, NULL, NULL, "cannot read config file %s: read error", path);
		goto fail_free;
	}
	/* json_loads() would stop at a NUL and could accept a truncated file. */
	if (memchr(buf, '\0', len)) {
		seterr(err, errlen, NULL, NULL, "config file %s: contains a NUL byte", path);
		rc = -EINVAL;
		goto fail_free;
	}
	buf[len] = '\0';
	fclose(f);
	*out = buf;
	return 0;

fail_nomem:
	seterr(err, errlen, NULL, NULL, "config file %s: out of memory", path);
	rc = -ENOMEM;
fail_free:
	free(buf);
	fclose(f);
	return rc;
}

static int load_file(struct qc_config *c, const char *path, char *err, size_t errlen)
{
	char *text = NULL;
	int rc;

	rc = read_file(path, &text, err, errlen);
	if (rc)
		return rc;
	rc = qc_config_apply_json(c, text, path, err, errlen);
	free(text);
	return rc;
}

/* QUOTECAST_LIMITS_RATE_PER_S names limits.rate_per_s: lower-case it, '.' and '_' are equal. */
static const struct key *find_env_key(const char *name, size_t len)
{
	size_t i, j;
	char a, b;

	for (i = 0; i < NKEYS; i++) {
		if (strlen(keys[i].name) != len)
			continue;
		for (j = 0; j < len; j++) {
			a = name[j];
			if (a >= 'A' && a <= 'Z')
				a = (char)(a - 'A' + 'a');
			else if (a == '.')
				a = '_';
			b = keys[i].name[j] == '.' ? '_' : keys[i].name[j];
			if (a != b)
				break;
		}
		if (j == len)
			return &keys[i];
	}
	return NULL;
}

static int apply_env(struct qc_config *c, char **envp, char *err, size_t errlen)
{
	static const char prefix[] = "QUOTECAST_";
	const size_t plen = sizeof(prefix) - 1;
	const struct key *k;
	const char *eq;
	char var[KEY_NAME_MAX + sizeof(prefix)];
	size_t i, len;
	int rc;

	for (i = 0; envp && envp[i]; i++) {
		if (strncmp(envp[i], prefix, plen))
			continue;
		eq = strchr(envp[i], '=');
		if (!eq)
			continue;
		len = (size_t)(eq - envp[i]);
		/* The test harness passes the binary's path in QUOTECAST_BIN. */
		if (len == plen + 3 && !strncmp(envp[i] + plen, "BIN", 3))
			continue;
		k = find_env_key(envp[i] + plen, len - plen);
		if (!k) {
			seterr(err, errlen, NULL, NULL,
			       "unknown environment variable %.*s (no such key)", (int)len,
			       envp[i]);
			return -EINVAL;
		}
		snprintf(var, sizeof(var), "%.*s", (int)len, envp[i]);
		rc = set_text(c, k, eq + 1, var, err, errlen);
		if (rc)
			return rc;
	}
	return 0;
}

enum opt_id {
	O_CONFIG,
	O_KEY, /* sets opt.key to the value (or to opt.fixed) */
	O_SET,
	O_CHECK,
	O_VERSION,
	O_HELP,
};

struct opt {
	const char *lng;
	char shrt;
	bool has_arg;
	enum opt_id id;
	const char *key;
	const char *fixed;
};

static const struct opt opts[] = {
    {"config", 'c', true, O_CONFIG, NULL, NULL},
    {"port", 0, true, O_KEY, "listen.port", NULL},
    {"host", 0, true, O_KEY, "listen.host", NULL},
    {"db", 0, true, O_KEY, "store.url", NULL},
    {"demo-feed", 0, false, O_KEY, "demo_feed.enabled", "true"},
    {"log-level", 0, true, O_KEY, "log.level", NULL},
    {"set", 0, true, O_SET, NULL, NULL},
    {"check-config", 0, false, O_CHECK, NULL, NULL},
    {"version", 0, false, O_VERSION, NULL, NULL},
    {"help", 'h', false, O_HELP, NULL, NULL},
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static const struct opt *find_long(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < NOPTS; i++)
		if (strlen(opts[i].lng) == len && !strncmp(opts[i].lng, name, len))
			return &opts[i];
	return NULL;
}

static const struct opt *find_short(char ch)
{
	size_t i;

	for (i = 0; i < NOPTS; i++)
		if (opts[i].shrt && opts[i].shrt == ch)
			return &opts[i];
	return NULL;
}

static int apply_opt(struct qc_config *c, const struct opt *o, const char *flag, const char *val,
                     char *err, size_t errlen)
{
	const struct key *k;
	const char *eq;
	char name[KEY_NAME_MAX + 1];
	size_t len;

	if (o->id == O_KEY)
		return set_text(c, find_key(o->key), o->fixed ? o->fixed : val, flag, err, errlen);
	eq = strchr(val, '=');
	if (!eq) {
		seterr(err, errlen, flag, NULL, "expected KEY=VALUE, got \"%s\"", val);
		return -EINVAL;
	}
	len = (size_t)(eq - val);
	snprintf(name, sizeof(name), "%.*s", (int)len, val);
	k = len < sizeof(name) ? find_key(name) : NULL;
	if (!k) {
		seterr(err, errlen, flag, NULL, "unknown key \"%.*s\"", (int)len, val);
		return -EINVAL;
	}
	return set_text(c, k, eq + 1, flag, err, errlen);
}

/*
 * Walks argv twice: first (@apply false) to check the flags' shape and find -c and the
 * requests in @cli, then (@apply true, after the file and the environment) to set values.
 */
static int parse_args(struct qc_config *c, struct qc_cli *cli, int argc, char **argv, bool apply,
                      char *err, size_t errlen)
{
	const struct opt *o;
	const char *a, *val, *eq;
	char flag[24];
	size_t n;
	int i, rc;

	for (i = 1; i < argc && argv[i]; i++) {
		a = argv[i];
		val = NULL;
		if (!strcmp(a, "--")) {
			if (i + 1 < argc && argv[i + 1]) {
				seterr(err, errlen, NULL, NULL, "unexpected argument \"%s\"",
				       argv[i + 1]);
				return -EINVAL;
			}
			break;
		}
		if (a[0] == '-' && a[1] == '-') {
			eq = strchr(a + 2, '=');
			n = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
			o = find_long(a + 2, n);
			if (!o) {
				seterr(err, errlen, NULL, NULL, "unknown option --%.*s", (int)n,
				       a + 2);
				return -EINVAL;
			}
			snprintf(flag, sizeof(flag), "--%s", o->lng);
			if (eq) {
				if (!o->has_arg) {
					seterr(err, errlen, NULL, NULL, "option %s takes no value",
					       flag);
					return -EINVAL;
				}
				val = eq + 1;
			}
		} else if (a[0] == '-' && a[1]) {
			o = find_short(a[1]);
			if (!o) {
				seterr(err, errlen, NULL, NULL, "unknown option -%c", a[1]);
				return -EINVAL;
			}
			snprintf(flag, sizeof(flag), "-%c", a[1]);
			if (a[2]) {
				if (!o->has_arg) {
					seterr(err, errlen, NULL, NULL, "option %s takes no value",
					       flag);
					return -EINVAL;
				}
				val = a + 2;
			}
		} else {
			seterr(err, errlen, NULL, NULL, "unexpected argument \"%s\"", a);
			return -EINVAL;
		}
		if (o->has_arg && !val) {
			if (i + 1 >= argc || !argv[i + 1]) {
				seterr(err, errlen, NULL, NULL, "option %s needs a value", flag);
				return -EINVAL;
			}
			val = argv[++i];
		}
		if (!apply) {
			if (o->id == O_CONFIG)
				cli->config_path = val;
			else if (o->id == O_CHECK)
				cli->check_config = true;
			else if (o->id == O_VERSION)
				cli->version = true;
			else if (o->id == O_HELP)
				cli->help = true;
			continue;
		}
		if (o->id == O_KEY || o->id == O_SET) {
			rc = apply_opt(c, o, flag, val, err, errlen);
			if (rc)
				return rc;
		}
	}
	return 0;
}

int qc_config_load(struct qc_config *c, struct qc_cli *cli, int argc, char **argv, char **envp,
                   char *err, size_t errlen)
{
	struct qc_cli scratch;
	int rc;

	if (!cli)
		cli = &scratch;
	memset(cli, 0, sizeof(*cli));
	if (err && errlen)
		err[0] = '\0';
	rc = qc_config_defaults(c);
	if (rc) {
		seterr(err, errlen, NULL, NULL, "out of memory");
		return rc;
	}
	rc = parse_args(c, cli, argc, argv, false, err, errlen);
	if (rc)
		goto fail_free;
	/* --help and --version must work even when the file or the environment is broken. */
	if (cli->help || cli->version)
		return 0;
	if (cli->config_path) {
		rc = load_file(c, cli->config_path, err, errlen);
		if (rc)
			goto fail_free;
	}
	rc = apply_env(c, envp, err, errlen);
	if (rc)
		goto fail_free;
	rc = parse_args(c, cli, argc, argv, true, err, errlen);
	if (rc)
		goto fail_free;
	rc = qc_config_validate(c, err, errlen);
	if (rc)
		goto fail_free;
	return 0;

fail_free:
	qc_config_free(c);
	return rc;
}

static int check_readable(const char *key, const char *path, char *err, size_t errlen)
{
	if (access(path, R_OK) == 0)
		return 0;
	seterr(err, errlen, NULL, find_key(key), "cannot read %s: %s", path, strerror(errno));
	return -EINVAL;
}

static bool node_id_ok(const char *id)
{
	size_t i, len = strlen(id);

	if (len > NODE_ID_MAX)
		return false;
	for (i = 0; i < len; i++)
		if (!symbol_char(id[i]) && id[i] != ':')
			return false;
	return true;
}

int qc_config_validate(const struct qc_config *c, char *err, size_t errlen)
{
	bool cert = c->tls_cert && c->tls_cert[0], key = c->tls_key && c->tls_key[0];
	size_t secret = c->auth_jwt_secret ? strlen(c->auth_jwt_secret) : 0;

	if (c->auth_mode == QC_AUTH_JWT && secret < JWT_SECRET_MIN) {
		seterr(err, errlen, NULL, find_key("auth.jwt_secret"),
		       "auth.mode \"jwt\" needs a secret of at least %d bytes (got %zu)",
		       JWT_SECRET_MIN, secret);
		return -EINVAL;
	}
	if (cert != key) {
		seterr(err, errlen, NULL, find_key(cert ? "tls.key" : "tls.cert"),
		       "must be set together with \"%s\"", cert ? "tls.cert" : "tls.key");
		return -EINVAL;
	}
	if (cert && (check_readable("tls.cert", c->tls_cert, err, errlen) ||
	             check_readable("tls.key", c->tls_key, err, errlen)))
		return -EINVAL;
	if (c->limits.max_send_queue_bytes <= c->limits.conflate_bytes) {
		seterr(err, errlen, NULL, find_key("limits.max_send_queue_bytes"),
		       "%" PRIu64 " must be greater than \"limits.conflate_bytes\" (%" PRIu64 ")",
		       c->limits.max_send_queue_bytes, c->limits.conflate_bytes);
		return -EINVAL;
	}
	if (c->cluster.node_id && c->cluster.node_id[0] && !node_id_ok(c->cluster.node_id)) {
		seterr(err, errlen, NULL, find_key("cluster.node_id"),
		       "must be 1 to %d characters of A-Z a-z 0-9 . _ : -", NODE_ID_MAX);
		return -EINVAL;
	}
	if (c->demo_feed.enabled && !c->demo_feed.nsymbols) {
		seterr(err, errlen, NULL, find_key("demo_feed.symbols"),
		       "must not be empty when demo_feed.enabled is true");
		return -EINVAL;
	}
	return 0;
}

/*
 * Hides the password of a connection string: the user-info password of a URL
 * (postgresql://user:pass@host/db) and any password=VALUE parameter (URL query or libpq
 * key=value form, VALUE possibly 'quoted'). Returns a new string or NULL.
 */
static char *mask_url(const char *url)
{
	const char *ui = NULL, *ui_end = NULL, *p, *end, *at, *colon;
	size_t len = strlen(url), i = 0, o = 0, j;
	char *out;

	p = strstr(url, "://");
	if (p) {
		p += 3;
		end = p + strcspn(p, "/?#");
		at = NULL;
		for (colon = p; colon < end; colon++)
			if (*colon == '@')
				at = colon;
		colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
		if (colon && colon + 1 < at) {
			ui = colon + 1;
			ui_end = at;
		}
	}
	/* Every masked value is at least one byte and becomes three. */
	out = malloc(3 * len + 1);
	if (!out)
		return NULL;
	while (i < len) {
		if (url + i == ui) {
			memcpy(out + o, "***", 3);
			o += 3;
			i = (size_t)(ui_end - url);
			continue;
		}
		if (!strncasecmp(url + i, "password=", 9) &&
		    (i == 0 || strchr(" \t?&", url[i - 1]))) {
			memcpy(out + o, url + i, 9);
			o += 9;
			i += 9;
			j = i;
			if (url[j] == '\'') {
				for (j++; url[j] && url[j] != '\''; j++)
					if (url[j] == '\\' && url[j + 1])
						j++;
				if (url[j])
					j++;
			} else {
				j += strcspn(url + j, " \t&#");
			}
			if (j > i) {
				memcpy(out + o, "***", 3);
				o += 3;
			}
			i = j;
			continue;
		}
		out[o++] = url[i++];
	}
	out[o] = '\0';
	return out;
}

static json_t *key_to_json(const struct qc_config *c, const struct key *k)
{
	const char *s;
	char *masked;
	json_t *j, *arr;
	int e;
	bool b;
	size_t i, nlist;
	char **list;

	switch (k->type) {
	case T_STR:
		s = get_str(c, k);
		if (k->secrecy == SECRET && s[0])
			return json_string("***");
		if (k->secrecy == SECRET_URL) {
			masked = mask_url(s);
			if (!masked)
				return NULL;
			j = json_string(masked);
			free(masked);
			return j;
		}
		return json_string(s);
	case T_U32:
	case T_U64:
		return json_integer((json_int_t)get_num(c, k));
	case T_BOOL:
		memcpy(&b, (const char *)c + k->off, sizeof(b));
		return json_boolean(b);
	case T_ENUM:
		memcpy(&e, (const char *)c + k->off, sizeof(e));
		for (i = 0; k->names[i]; i++)
			if ((int)i == e)
				return json_string(k->names[i]);
		return json_string("?");
	case T_LIST:
		memcpy(&list, (const char *)c + k->off, sizeof(list));
		memcpy(&nlist, (const char *)c + k->count_off, sizeof(nlist));
		arr = json_array();
		for (i = 0; arr && i < nlist; i++) {
			if (json_array_append_new(arr, json_string(list[i]))) {
				json_decref(arr);
				return NULL;
			}
		}
		return arr;
	}
	return NULL;
}

json_t *qc_config_to_json(const struct qc_config *c)
{
	char part[KEY_NAME_MAX];
	const char *name, *dot;
	json_t *root, *parent, *child, *v;
	size_t i;

	root = json_object();
	if (!root)
		return NULL;
	for (i = 0; i < NKEYS; i++) {
		parent = root;
		name = keys[i].name;
		while ((dot = strchr(name, '.'))) {
			snprintf(part, sizeof(part), "%.*s", (int)(dot - name), name);
			child = json_object_get(parent, part);
			if (!child) {
				child = json_object();
				if (json_object_set_new(parent, part, child))
					goto fail_free;
			}
			parent = child;
			name = dot + 1;
		}
		v = key_to_json(c, &keys[i]);
		if (json_object_set_new(parent, name, v))
			goto fail_free;
	}
	return root;

fail_free:
	json_decref(root);
	return NULL;
}

const char *qc_event_loop_name(enum qc_event_loop l)
{
	if ((int)l < 0 || (size_t)l >= sizeof(loop_names) / sizeof(loop_names[0]) - 1)
		return "unknown";
	return loop_names[l];
}

const char *qc_config_usage(void)
{
	return "Usage: quotecast [options]\n"
	       "\n"
	       "A real-time WebSocket subscription server for market data and rooms.\n"
	       "\n"
	       "Options:\n"
	       "  -c, --config FILE    read settings from the JSON file FILE\n"
	       "      --host HOST      address to listen on (listen.host)\n"
	       "      --port N         port to listen on, 0-65535 (listen.port)\n"
	       "      --db URL         PostgreSQL URL (store.url); empty: memory only\n"
	       "      --demo-feed      publish generated ticks (demo_feed.enabled=true)\n"
	       "      --log-level L    error, warn, info or debug (log.level)\n"
	       "      --set KEY=VALUE  set any key (repeatable), e.g. --set limits.rate_per_s=50\n"
	       "      --check-config   check the settings, print the effective config, exit\n"
	       "      --version        print the version and exit\n"
	       "  -h, --help           print this help and exit\n"
	       "\n"
	       "Precedence, lowest first: built-in defaults, the -c file, QUOTECAST_* environment\n"
	       "variables (QUOTECAST_LIMITS_RATE_PER_S for limits.rate_per_s), flags.\n"
	       "Every key, its type, default, range and variable: docs/configuration.md\n";
}
