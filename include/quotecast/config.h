/*
 * config: every setting of SPEC section 6, its default, and how it is read.
 *
 * Order of precedence, lowest first: built-in defaults, the JSON file (-c FILE), QUOTECAST_*
 * environment variables (the key upper-cased with '.' as '_': limits.rate_per_s is
 * QUOTECAST_LIMITS_RATE_PER_S), then command-line flags. An unknown key, a value of the wrong
 * type or out of range stops the start with a message that names the key.
 */
#ifndef QC_CONFIG_H
#define QC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_t;

enum qc_event_loop {
	QC_LOOP_AUTO = 0, /* libuv when its plugin loads, else poll */
	QC_LOOP_LIBUV,
	QC_LOOP_LIBEV,
	QC_LOOP_POLL,
};

enum qc_auth_mode {
	QC_AUTH_NONE = 0,
	QC_AUTH_JWT,
};

enum qc_log_level {
	QC_LOG_ERROR = 0,
	QC_LOG_WARN,
	QC_LOG_INFO,
	QC_LOG_DEBUG,
};

struct qc_config {
	/* strings are heap copies owned by the config (qc_config_free) and never NULL */
	char *listen_host;    /* "0.0.0.0" */
	uint32_t listen_port; /* 8080; 0 is allowed (ephemeral, for tests) */
	char *tls_cert;       /* "" = plain ws/http */
	char *tls_key;
	enum qc_event_loop event_loop; /* auto */

	enum qc_auth_mode auth_mode; /* none */
	char *auth_jwt_secret;       /* required when auth_mode is jwt */
	char *auth_admin_token;      /* "" = /api/stats and /api/broadcast need no token */
	char *auth_publish_token;    /* "" = /api/publish needs no token */

	char *store_url; /* "" = memory only */
	struct {
		uint32_t max_pending;       /* 10000 statements queued for the store */
		uint32_t timeout_ms;        /* 5000: a statement queued longer fails UNAVAILABLE */
		uint32_t connect_timeout_s; /* 10: at start-up */
	} store;

	struct {
		uint32_t ping_interval_ms; /* 25000: Engine.IO pings */
		uint32_t ping_timeout_ms;  /* 20000: no pong within this: the connection closes */
	} socketio;

	struct {
		uint32_t max_message_bytes;          /* 65536: larger frames close with 1009 */
		uint32_t max_http_body_bytes;        /* 1048576: larger bodies get 413 */
		uint32_t max_rooms_per_connection;   /* 100 */
		uint32_t max_streams_per_connection; /* 100 */
		uint32_t rate_per_s;           /* 100 messages/s per connection; 0 = unlimited */
		uint32_t rate_burst;           /* 200 */
		uint32_t idle_timeout_s;       /* 60 */
		uint64_t conflate_bytes;       /* 262144 */
		uint64_t max_send_queue_bytes; /* 4194304 */
		uint32_t max_bad_messages;     /* 10 */
		uint32_t max_connections;      /* 100000 */
		uint32_t max_connections_per_user; /* 100 of one (named) user; 0 = unlimited */
		uint32_t max_connections_per_ip;   /* 1000 from one source address; 0 = unlimited */
		uint32_t max_http_connections; /* 10000 sockets not (yet) upgraded to WebSocket */
		uint32_t max_publishers;       /* 64 on the publisher subprotocol (1 MiB reads) */
		/* connections with role publisher: their own rate and message size */
		uint32_t publisher_rate_per_s;        /* 0 = unlimited */
		uint32_t publisher_max_message_bytes; /* 16777216; also POST /api/publish bodies */
	} limits;

	struct {
		uint32_t buffer_size;        /* 1000 ticks per symbol */
		uint32_t dedup_window;       /* 1024 message ids per symbol */
		uint32_t max_symbols;        /* 10000 symbols with ticks */
		uint32_t max_subscribe_only; /* 10000 symbols only subscribed (no tick yet) */
		uint32_t
		    idle_ttl_s; /* 300: no subscriber and no tick this long: freed; 0 = never */
	} streams;

	struct {
		uint32_t max_per_user; /* 100 persisted subscriptions per user */
		uint32_t max_total;    /* 100000 over all users */
	} subscriptions;

	struct {
		uint32_t ttl_s;              /* 120 */
		uint32_t buffer_messages;    /* 1000 per session */
		uint32_t max_suspended;      /* 100000 */
		uint64_t max_buffered_bytes; /* 268435456 over all suspended sessions */
		uint32_t max_per_user;       /* 16 suspended sessions of one user (oldest ends) */
	} sessions;

	struct {
		uint32_t max_per_user;    /* 1000 */
		uint64_t max_total_bytes; /* 268435456 over all users (oldest evicted) */
	} offline;

	struct {
		uint32_t max_total;     /* 100000 rooms made with create_room, server-wide */
		uint32_t max_per_owner; /* 100 per owning user (server admins are exempt) */
		uint32_t max_members;   /* 10000 user-level members of one created room */
		/* wrong room passwords: this many per user and room within the window, then
		 * RATE_LIMITED until the window (from the first of them) ends */
		uint32_t password_attempts;     /* 5 */
		uint32_t password_window_s;     /* 60 */
		uint32_t password_hashes_per_s; /* 10 password hashes a second, server-wide */
		/* each room's log (SPEC 2.9): the newest entries kept for read-back and resume */
		uint32_t history_size;  /* 1000 entries */
		uint32_t history_ttl_s; /* 300: older entries go; 0 = kept until the size bound */
	} rooms;

	struct {
		uint32_t history_size; /* 1000 entries of each user's inbox log (SPEC 2.9) */
	} inbox;

	struct {
		bool enabled;   /* false */
		char **symbols; /* owned; default AAPL MSFT GOOG 600519 BTCUSD */
		size_t nsymbols;
		uint32_t rate_per_s; /* 10 ticks/s in total */
	} demo_feed;

	enum qc_log_level log_level; /* info */

	struct {
		bool enabled; /* true: GET / (the console) and /client/quotecast.js are served */
		char *root;   /* "" = the data directory built in (QC_DATADIR): web/ and client/ */
	} web;

	struct {
		char **redis; /* owned redis://HOST:PORT URLs; none = a single node (SPEC 2.10) */
		size_t nredis;
		char *node_id;         /* "" = HOST:PORT of this node (hostname and listen.port) */
		uint32_t max_inflight; /* 10000 Redis commands sent and not answered, per shard */
		uint32_t timeout_ms;   /* 1000: an answer later than this: the shard is down */
		uint32_t log_ttl_s; /* 86400: a symbol's keys in Redis go this long after its last
		                       tick (0: never); its next tick starts a new life */
	} cluster;
};

/* What the command line asked for besides settings. */
struct qc_cli {
	const char *config_path; /* -c FILE, borrowed from argv, or NULL */
	bool check_config;       /* --check-config: validate, print the effective config, exit */
	bool version;            /* --version */
	bool help;               /* --help */
};

/** qc_config_defaults() - fill @c with the built-in defaults. Returns 0 or -ENOMEM. */
int qc_config_defaults(struct qc_config *c);

/**
 * qc_config_load() - the whole sequence: defaults, file named by -c (if any), environment
 * @envp (NULL-terminated "K=V" strings; only QUOTECAST_* are read), flags in @argv.
 * On error returns a negative errno and writes a one-line message naming the key or flag into
 * @err. On success @c must later be freed with qc_config_free().
 */
int qc_config_load(struct qc_config *c, struct qc_cli *cli, int argc, char **argv, char **envp,
                   char *err, size_t errlen);

/**
 * qc_config_apply_json() - apply the keys of @text (a JSON document, nested objects as in
 * config/quotecast.json; dotted keys at top level are also accepted) over @c.
 * @origin names the source in messages. Returns 0 or -EINVAL with @err set.
 */
int qc_config_apply_json(struct qc_config *c, const char *text, const char *origin, char *err,
                         size_t errlen);

/**
 * qc_config_set() - set one key from its text form (environment and flags). Numbers must be
 * whole and in range, booleans true/false/1/0, lists comma-separated. Returns 0, -ENOENT for
 * an unknown key, -EINVAL for a bad value, with @err set.
 */
int qc_config_set(struct qc_config *c, const char *key, const char *value, char *err,
                  size_t errlen);

/** qc_config_validate() - checks across keys (jwt needs a secret, tls needs both files ...). */
int qc_config_validate(const struct qc_config *c, char *err, size_t errlen);

/** qc_config_to_json() - the effective configuration, secrets shown as "***". New reference. */
struct json_t *qc_config_to_json(const struct qc_config *c);

/** qc_config_free() - free the strings; @c may be reused after qc_config_defaults(). */
void qc_config_free(struct qc_config *c);

/** Names for logs and stats: "libuv", "none", ... */
const char *qc_event_loop_name(enum qc_event_loop l);

/** qc_config_usage() - the --help text. */
const char *qc_config_usage(void);

#endif
