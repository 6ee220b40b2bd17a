/*
 * Unit tests for src/config.c: defaults, the JSON file (nested and dotted keys, comments,
 * unknown keys, types, ranges, syntax errors), QUOTECAST_* variables, flags and their
 * precedence, cross-key validation, the secret-hiding JSON dump, and that the shipped
 * config/quotecast.json and docs/configuration.md name every key.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "quotecast/config.h"

#define ERRLEN 512

static char err[ERRLEN];
static char *no_env[] = {NULL};

static int argc_of(char **argv)
{
	int n = 0;

	while (argv[n])
		n++;
	return n;
}

static int load(struct qc_config *c, struct qc_cli *cli, char **argv, char **envp)
{
	memset(err, 'x', sizeof(err) - 1);
	err[sizeof(err) - 1] = '\0';
	return qc_config_load(c, cli, argc_of(argv), argv, envp, err, sizeof(err));
}

static int apply(struct qc_config *c, const char *text)
{
	err[0] = '\0';
	return qc_config_apply_json(c, text, "test.json", err, sizeof(err));
}

static int set(struct qc_config *c, const char *key, const char *value)
{
	err[0] = '\0';
	return qc_config_set(c, key, value, err, sizeof(err));
}

/* Writes @content to a new temporary file; returns its malloc'd path. */
static char *write_temp(const char *content)
{
	char *path = strdup("/tmp/qc_test_config_XXXXXX");
	size_t len = strlen(content);
	int fd;

	assert_non_null(path);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, len), (ssize_t)len);
	close(fd);
	return path;
}

static void remove_temp(char *path)
{
	unlink(path);
	free(path);
}

static char *repo_path(const char *rel)
{
	const char *me = __FILE__;
	const char *tail = strstr(me, "tests/unit/test_config.c");
	size_t n = tail ? (size_t)(tail - me) : 0;
	char *p = malloc(n + strlen(rel) + 1);

	assert_non_null(p);
	memcpy(p, me, n);
	strcpy(p + n, rel);
	return p;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long len;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	len = ftell(f);
	assert_true(len > 0);
	rewind(f);
	buf = malloc((size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
	buf[len] = '\0';
	fclose(f);
	return buf;
}

/* Flattens nested objects into {"a.b": value}, skipping "_" and "//" comment keys. */
static void flatten(json_t *obj, const char *prefix, json_t *out)
{
	const char *name;
	char full[128];
	json_t *v;

	json_object_foreach (obj, name, v) {
		if (name[0] == '_' || !strncmp(name, "//", 2))
			continue;
		snprintf(full, sizeof(full), "%s%s%s", prefix, *prefix ? "." : "", name);
		if (json_is_object(v))
			flatten(v, full, out);
		else
			assert_int_equal(json_object_set(out, full, v), 0);
	}
}

static json_t *flat_defaults(void)
{
	struct qc_config c;
	json_t *nested, *flat = json_object();

	assert_int_equal(qc_config_defaults(&c), 0);
	nested = qc_config_to_json(&c);
	assert_non_null(nested);
	flatten(nested, "", flat);
	json_decref(nested);
	qc_config_free(&c);
	return flat;
}

static void env_name(const char *key, char *out, size_t len)
{
	size_t i, o = (size_t)snprintf(out, len, "QUOTECAST_");

	for (i = 0; key[i] && o + 1 < len; i++, o++)
		out[o] = key[i] == '.'
		             ? '_'
		             : (char)(key[i] >= 'a' && key[i] <= 'z' ? key[i] - 'a' + 'A' : key[i]);
	out[o] = '\0';
}

static void test_defaults(void **state)
{
	struct qc_config c;

	(void)state;
	assert_int_equal(qc_config_defaults(&c), 0);
	assert_string_equal(c.listen_host, "0.0.0.0");
	assert_int_equal(c.listen_port, 8080);
	assert_string_equal(c.tls_cert, "");
	assert_string_equal(c.tls_key, "");
	assert_int_equal(c.event_loop, QC_LOOP_AUTO);
	assert_int_equal(c.auth_mode, QC_AUTH_NONE);
	assert_string_equal(c.auth_jwt_secret, "");
	assert_string_equal(c.auth_admin_token, "");
	assert_string_equal(c.auth_publish_token, "");
	assert_string_equal(c.store_url, "");
	assert_int_equal(c.limits.max_message_bytes, 65536);
	assert_int_equal(c.limits.max_http_body_bytes, 1048576);
	assert_int_equal(c.limits.max_rooms_per_connection, 100);
	assert_int_equal(c.limits.max_streams_per_connection, 100);
	assert_int_equal(c.limits.rate_per_s, 100);
	assert_int_equal(c.limits.rate_burst, 200);
	assert_int_equal(c.limits.idle_timeout_s, 60);
	assert_int_equal(c.limits.conflate_bytes, 262144);
	assert_int_equal(c.limits.max_send_queue_bytes, 4194304);
	assert_int_equal(c.limits.max_bad_messages, 10);
	assert_int_equal(c.limits.max_connections, 100000);
	assert_int_equal(c.limits.max_connections_per_user, 100);
	assert_int_equal(c.limits.max_connections_per_ip, 1000);
	assert_int_equal(c.limits.max_http_connections, 10000);
	assert_int_equal(c.limits.max_publishers, 64);
	assert_int_equal(c.limits.publisher_rate_per_s, 0);
	assert_int_equal(c.limits.publisher_max_message_bytes, 16777216);
	assert_int_equal(c.streams.buffer_size, 1000);
	assert_int_equal(c.streams.dedup_window, 1024);
	assert_int_equal(c.streams.max_symbols, 10000);
	assert_int_equal(c.streams.max_subscribe_only, 10000);
	assert_int_equal(c.streams.idle_ttl_s, 300);
	assert_int_equal(c.subscriptions.max_per_user, 100);
	assert_int_equal(c.subscriptions.max_total, 100000);
	assert_int_equal(c.sessions.ttl_s, 120);
	assert_int_equal(c.sessions.buffer_messages, 1000);
	assert_int_equal(c.sessions.max_suspended, 100000);
	assert_int_equal(c.sessions.max_buffered_bytes, 268435456);
	assert_int_equal(c.sessions.max_per_user, 16);
	assert_int_equal(c.offline.max_per_user, 1000);
	assert_int_equal(c.offline.max_total_bytes, 268435456);
	assert_int_equal(c.rooms.max_total, 100000);
	assert_int_equal(c.rooms.max_per_owner, 100);
	assert_int_equal(c.rooms.max_members, 10000);
	assert_int_equal(c.rooms.password_attempts, 5);
	assert_int_equal(c.rooms.password_window_s, 60);
	assert_int_equal(c.rooms.password_hashes_per_s, 10);
	assert_false(c.demo_feed.enabled);
	assert_int_equal(c.demo_feed.nsymbols, 5);
	assert_string_equal(c.demo_feed.symbols[0], "AAPL");
	assert_string_equal(c.demo_feed.symbols[1], "MSFT");
	assert_string_equal(c.demo_feed.symbols[2], "GOOG");
	assert_string_equal(c.demo_feed.symbols[3], "600519");
	assert_string_equal(c.demo_feed.symbols[4], "BTCUSD");
	assert_null(c.demo_feed.symbols[5]);
	assert_int_equal(c.demo_feed.rate_per_s, 10);
	assert_int_equal(c.log_level, QC_LOG_INFO);
	assert_int_equal(c.cluster.nredis, 0);
	assert_non_null(c.cluster.redis);
	assert_string_equal(c.cluster.node_id, "");
	assert_int_equal(c.cluster.max_inflight, 10000);
	assert_int_equal(c.cluster.timeout_ms, 1000);
	assert_int_equal(c.cluster.log_ttl_s, 86400);
	assert_int_equal(qc_config_validate(&c, err, sizeof(err)), 0);
	qc_config_free(&c);
	assert_null(c.listen_host);
	assert_null(c.demo_feed.symbols);
	/* Freeing twice and reusing after qc_config_defaults() are both fine. */
	qc_config_free(&c);
	assert_int_equal(qc_config_defaults(&c), 0);
	assert_int_equal(c.listen_port, 8080);
	qc_config_free(&c);
}

static void test_defaults_to_json(void **state)
{
	struct qc_config c;
	json_t *j, *sym;

	(void)state;
	assert_int_equal(qc_config_defaults(&c), 0);
	j = qc_config_to_json(&c);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "listen"), "port")),
	                 8080);
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(j, "limits"), "rate_per_s")), 100);
	assert_int_equal(json_integer_value(
	                     json_object_get(json_object_get(j, "sessions"), "max_buffered_bytes")),
	                 268435456);
	assert_string_equal(json_string_value(json_object_get(j, "event_loop")), "auto");
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "auth"), "mode")),
	                    "none");
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "log"), "level")),
	                    "info");
	assert_true(json_is_false(json_object_get(json_object_get(j, "demo_feed"), "enabled")));
	sym = json_object_get(json_object_get(j, "demo_feed"), "symbols");
	assert_int_equal(json_array_size(sym), 5);
	assert_string_equal(json_string_value(json_array_get(sym, 3)), "600519");
	/* Nested only: no dotted names at the top. */
	assert_null(json_object_get(j, "listen.port"));
	assert_null(json_object_get(j, "limits.rate_per_s"));
	json_decref(j);
	qc_config_free(&c);
}

static void test_json_nested(void **state)
{
	struct qc_config c;

	(void)state;
	assert_int_equal(qc_config_defaults(&c), 0);
	assert_int_equal(apply(&c, "{\"listen\":{\"host\":\"127.0.0.1\",\"port\":9001},"
	                           "\"limits\":{\"rate_per_s\":5,\"conflate_bytes\":1000},"
	                           "\"event_loop\":\"poll\",\"auth\":{\"mode\":\"jwt\"},"
	                           "\"sessions\":{\"max_buffered_bytes\":5000000000},"
	                           "\"demo_feed\":{\"enabled\":true,\"symbols\":[\"X\",\"Y.Z\"]},"
	                           "\"log\":{\"level\":\"debug\"}}"),
	                 0);
	assert_string_equal(c.listen_host, "127.0.0.1");
	assert_int_equal(c.listen_port, 9001);
	assert_int_equal(c.limits.rate_per_s, 5);
	assert_int_equal(c.limits.conflate_bytes, 1000);
	assert_int_equal(c.event_loop, QC_LOOP_POLL);
	assert_int_equal(c.auth_mode, QC_AUTH_JWT);
	assert_int_equal(c.sessions.max_buffered_bytes, 5000000000ull);
	assert_true(c.demo_feed.enabled);
	assert_int_equal(c.demo_feed.nsymbols, 2);
	assert_string_equal(c.demo_feed.symbols[0], "X");
	assert_string_equal(c.demo_feed.symbols[1], "Y.Z");
	assert_null(c.demo_feed.symbols[2]);
	assert_int_equal(c.log_level, QC_LOG_DEBUG);
	/* Untouched keys keep their defaults. */
	assert_int_equal(c.limits.rate_burst, 200);
	/* An empty list and an empty document are fine. */
	assert_int_equal(apply(&c, "{\"demo_feed\":{\"symbols\":[]}}"), 0);
	assert_int_equal(c.demo_feed.nsymbols, 0);
	assert_non_null(c.demo_feed.symbols);
	assert_int_equal(apply(&c, "{}"), 0);
	qc_config_free(&c);
}

/* The rooms section (issue 11): nested and by variable, each bound range-checked. */
static void test_rooms_keys(void **state)
{
	char *env[] = {"QUOTECAST_ROOMS_MAX_PER_OWNER=7", "QUOTECAST_ROOMS_PASSWORD_WINDOW_S=2",
	               NULL};
	char *argv[] = {"quotecast", NULL};
	struct qc_config c;
	struct qc_cli cli;

	(void)state;
	assert_int_equal(qc_config_defaults(&c), 0);
	assert_int_equal(apply(&c, "{\"rooms\":{\"max_total\":50,\"max_per_owner\":3,"
	                           "\"max_members\":9,\"password_attempts\":2,"
	                           "\"password_window_s\":30,\"password_hashes_per_s\":4}}"),
	                 0);
	assert_int_equal(c.rooms.max_total, 50);
	assert_int_equal(c.rooms.max_per_owner, 3);
	assert_int_equal(c.rooms.max_members, 9);
	assert_int_equal(c.rooms.password_attempts, 2);
	assert_int_equal(c.rooms.password_window_s, 30);
	assert_int_equal(c.rooms.password_hashes_per_s, 4);
	assert_int_equal(apply(&c, "{\"rooms\":{\"max_per_owner\":0}}"), -EINVAL);
	assert_string_equal(
	    err, "test.json: \"rooms.max_per_owner\": expected an integer from 1 to 10000000");
	assert_int_equal(apply(&c, "{\"rooms.max_members\":1000001}"), -EINVAL);
	assert_int_equal(apply(&c, "{\"rooms.password_attempts\":0}"), -EINVAL);
	assert_int_equal(apply(&c, "{\"rooms.password_window_s\":86401}"), -EINVAL);
	assert_int_equal(apply(&c, "{\"rooms.password_hashes_per_s\":0}"), -EINVAL);
	assert_int_equal(apply(&c, "{\"rooms.max_total\":0}"), -EINVAL);
	assert_int_equal(c.rooms.max_per_owner, 3);
	qc_config_free(&c);

	assert_int_equal(load(&c, &cli, argv, env), 0);
	assert_int_equal(c.rooms.max_per_owner, 7);
	assert_int_equal(c.rooms.password_window_s, 2);
	assert_int_equal(c.rooms.max_total, 100000);
	qc_config_free(&c);
}

static void test_json_dotted_and_comments(void **state)
{
	struct qc_config c;

	(void)state;
	assert_int_equal(qc_config_defaults(&c), 0);
	assert_int_equal(apply(&c, "{\"_comment\":\"ignored\",\"// note\":[1,2],"
	                           "\"limits.rate_per_s\":7,\"demo_feed.enabled\":true,"
	                           "\"limits\":{\"_comment\":{\"x\":1},\"rate_burst\":9},"
	                           "\"store.url\":\"postgresql://h/db\"}"),
	                 0);
	assert_int_equal(c.limits.rate_per_s, 7);
	assert_int_equal(c.limits.rate_burst, 9);
	assert_true(c.demo_feed.enabled);
	assert_string_equal(c.store_url, "postgresql://h/db");
	qc_config_free(&c);
}

static void test_json_unknown_key(void **state)
{
	struct qc_config c;

	(void)state;
	assert_int_equal(qc_config_defaults(&c), 0);
	assert_int_equal(qc_config_apply_json(&c, "{\"limits\":{\"rate_per_sec\":1}}",
	                                      "config/quotecast.json", err, sizeof(err)),
	                 -EINVAL);
	assert_string_equal(err, "config/quotecast.json: unknown key \"limits.rate_per_sec\"");
	assert_int_equal(apply(&c, "{\"limits.rate_per_sec\":1}"), -EINVAL);
	assert_string_equal(err, "test.json: unknown key \"limits.rate_per_sec\"");
	assert_int_equal(apply(&c, "{\"listen\":{\"port\":1},\"bogus\":true}"), -EINVAL);
	assert_string_equal(err, "test.json: unknown key \"bogus\"");
	/* A section given as something else than an object. */
	assert_int_equal(apply(&c, "{\"limits\":5}"), -EINVAL);
	assert_string_equal(err, "test.json: \"limits\": expected an object");
	/* "_" inside a dotted name is not a comment marker. */
	assert_int_equal(apply(&c, "{\"limits._x\":1}"), -EINVAL);
	assert_non_null(strstr(err, "unknown key \"limits._x\""));
	/* The error stays on one line even when the key has a newline in it. */
	assert_int_equal(apply(&c, "{\"a\\nb\":1}"), -EINVAL);
	assert_null(strchr(err, '\n'));
	assert_non_null(strstr(err, "unknown key \"a?b\""));
	/* A very long unknown name is reported, not overflowed. */
	assert_int_equal(
	    apply(&c, "{\"limits\":{\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	              "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\":1}}"),
	    -EINVAL);
	assert_non_null(strstr(err, "unknown key \"limits.aaaa"));
	qc_config_free(&c);
}

static void expect_json_error(struct qc_config *c, const char *text, const char *msg)
{
	assert_int_equal(apply(c, text), -EINVAL);
	assert_string_equal(err, msg);
}

static void test_json_wrong_types(void **state)
{
	struct qc_config c;

	(void)state;
	assert_int_equal(qc_config_defaults(&c), 0);
	expect_json_error(
	    &c, "{\"limits\":{\"rate_per_s\":\"5\"}}",
	    "test.json: \"limits.rate_per_s\": expected an integer from 0 to 1000000");
	expect_json_error(
	    &c, "{\"limits\":{\"rate_per_s\":5.0}}",
	    "test.json: \"limits.rate_per_s\": expected an integer from 0 to 1000000");
	expect_json_error(
	    &c, "{\"limits\":{\"rate_per_s\":-1}}",
	    "test.json: \"limits.rate_per_s\": expected an integer from 0 to 1000000");
	expect_json_error(
	    &c, "{\"limits\":{\"rate_per_s\":true}}",
	    "test.json: \"limits.rate_per_s\": expected an integer from 0 to 1000000");
	expect_json_error(
	    &c, "{\"limits\":{\"rate_per_s\":null}}",
	    "test.json: \"limits.rate_per_s\": expected an integer from 0 to 1000000");
	expect_json_error(&c, "{\"demo_feed\":{\"enabled\":1}}",
	                  "test.json: \"demo_feed.enabled\": expected true or false");
	expect_json_error(&c, "{\"demo_feed\":{\"enabled\":\"true\"}}",
	                  "test.json: \"demo_feed.enabled\": expected true or false");
	expect_json_error(&c, "{\"listen\":{\"host\":1}}",
	                  "test.json: \"listen.host\": expected a string");
	expect_json_error(&c, "{\"listen\":{\"port\":{\"x\":1}}}",
	                  "test.json: \"listen.port\": expected an integer from 0 to 65535");
	expect_json_error(&c, "{\"event_loop\":\"epoll\"}",
	                  "test.json: \"event_loop\": expected one of \"auto\", \"libuv\", "
	                  "\"libev\", \"poll\"");
	expect_json_error(&c, "{\"auth\":{\"mode\":1}}",
	                  "test.json: \"auth.mode\": expected one of \"none\", \"jwt\"");
	expect_json_error(&c, "{\"log\":{\"level\":\"INFO\"}}",
	                  "test.json: \"log.level\": expected one of \"error\", \"warn\", "
	                  "\"info\", \"debug\"");
	expect_json_error(&c, "{\"demo_feed\":{\"symbols\":\"AAPL\"}}",
	                  "test.json: \"demo_feed.symbols\": expected a list of symbols");
	expect_json_error(&c, "{\"demo_feed\":{\"symbols\":[\"AAPL\",5]}}",
	                  "test.json: \"demo_feed.symbols\": expected a list of symbols");
	/* None of the failures above changed anything. */
	assert_int_equal(c.limits.rate_per_s, 100);
	assert_false(c.demo_feed.enabled);
	assert_int_equal(c.demo_feed.nsymbols, 5);
	qc_config_free(&c);
}

static void test_json_ranges(void **state)
{
	struct qc_config c;

	(void)state;
	assert_int_equal(qc_config_defaults(&c), 0);
	expect_json_error(
	    &c, "{\"limits\":{\"rate_per_s\":1000001}}",
	    "test.json: \"limits.rate_per_s\": expected an integer from 0 to 1000000");
	expect_json_error(&c, "{\"listen\":{\"port\":65536}}",
	                  "test.json: \"listen.port\": expected an integer from 0 to 65535");
	expect_json_error(&c, "{\"limits\":{\"max_message_bytes\":255}}",
	                  "test.json: \"limits.max_message_bytes\": expected an integer from 256 "
	                  "to 16777216");
	expect_json_error(&c, "{\"streams\":{\"buffer_size\":0}}",
	                  "test.json: \"streams.buffer_size\": expected an integer from 1 to "
	                  "1000000");
	expect_json_error(&c, "{\"streams\":{\"buffer_size\":1000001}}",
	                  "test.json: \"streams.buffer_size\": expected an integer from 1 to "
	                  "1000000");
	expect_json_error(&c, "{\"demo_feed\":{\"rate_per_s\":0}}",
	                  "test.json: \"demo_feed.rate_per_s\": expected an integer from 1 to "
	                  "100000");
	expect_json_error(&c, "{\"demo_feed\":{\"rate_per_s\":100001}}",
	                  "test.json: \"demo_feed.rate_per_s\": expected an integer from 1 to "
	                  "100000");
	expect_json_error(&c, "{\"limits\":{\"max_rooms_per_connection\":0}}",
	                  "test.json: \"limits.max_rooms_per_connection\": expected an integer "
	                  "from 1 to 100000");
	expect_json_error(&c, "{\"limits\":{\"idle_timeout_s\":0}}",
	                  "test.json: \"limits.idle_timeout_s\": expected an integer from 1 to "
	                  "86400");
	/* A value that would wrap a uint32_t. */
	expect_json_error(&c, "{\"limits\":{\"max_connections\":4294967297}}",
	                  "test.json: \"limits.max_connections\": expected an integer from 1 to "
	                  "10000000");
	/* The bounds themselves are accepted. */
	assert_int_equal(apply(&c,
	                       "{\"listen\":{\"port\":65535},\"limits\":{\"rate_per_s\":0,"
	                       "\"max_message_bytes\":256},\"streams\":{\"buffer_size\":1000000},"
	                       "\"demo_feed\":{\"rate_per_s\":100000}}"),
	                 0);
	assert_int_equal(c.listen_port, 65535);
	assert_int_equal(c.limits.rate_per_s, 0);
	assert_int_equal(c.limits.max_message_bytes, 256);
	assert_int_equal(c.streams.buffer_size, 1000000);
	assert_int_equal(c.demo_feed.rate_per_s, 100000);
	assert_int_equal(apply(&c, "{\"listen.port\":0}"), 0);
	assert_int_equal(c.listen_port, 0);
	/* the stream and subscription bounds: 0 turns the TTL off / allows none */
	expect_json_error(&c, "{\"streams\":{\"idle_ttl_s\":2592001}}",
	                  "test.json: \"streams.idle_ttl_s\": expected an integer from 0 to "
	                  "2592000");
	expect_json_error(&c, "{\"subscriptions\":{\"max_total\":10000001}}",
	                  "test.json: \"subscriptions.max_total\": expected an integer from 0 to "
	                  "10000000");
	assert_int_equal(apply(&c, "{\"streams\":{\"idle_ttl_s\":0,\"max_subscribe_only\":0},"
	                           "\"subscriptions\":{\"max_per_user\":0,\"max_total\":7}}"),
	                 0);
	assert_int_equal(c.streams.idle_ttl_s, 0);
	assert_int_equal(c.streams.max_subscribe_only, 0);
	assert_int_equal(c.subscriptions.max_per_user, 0);
	assert_int_equal(c.subscriptions.max_total, 7);
	qc_config_free(&c);
}

static void test_json_symbols(void **state)
{
	struct qc_config c;

	(void)state;
	assert_int_equal(qc_config_defaults(&c), 0);
	assert_int_equal(apply(&c, "{\"demo_feed\":{\"symbols\":[\"\"]}}"), -EINVAL);
	assert_non_null(strstr(err, "\"demo_feed.symbols\": empty symbol"));
	assert_int_equal(apply(&c, "{\"demo_feed\":{\"symbols\":[\"BAD SYM\"]}}"), -EINVAL);
	assert_non_null(strstr(err, "symbol \"BAD SYM\""));
	assert_int_equal(apply(&c, "{\"demo_feed\":{\"symbols\":[\"A/B\"]}}"), -EINVAL);
	/* 33 characters is one too many, 32 is fine. */
	assert_int_equal(apply(&c, "{\"demo_feed\":{\"symbols\":"
	                           "[\"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456\"]}}"),
	                 -EINVAL);
	assert_int_equal(apply(&c, "{\"demo_feed\":{\"symbols\":[\"AAPL\",\"AAPL\"]}}"), -EINVAL);
	assert_non_null(strstr(err, "listed twice"));
	assert_int_equal(c.demo_feed.nsymbols, 5);
	assert_int_equal(apply(&c, "{\"demo_feed\":{\"symbols\":"
	                           "[\"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345\",\"a-b_c.d\"]}}"),
	                 0);
	assert_int_equal(c.demo_feed.nsymbols, 2);
	assert_string_equal(c.demo_feed.symbols[0], "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345");
	assert_string_equal(c.demo_feed.symbols[1], "a-b_c.d");
	qc_config_free(&c);
}

static void test_json_syntax(void **state)
{
	struct qc_config c;

	(void)state;
	assert_int_equal(qc_config_defaults(&c), 0);
	assert_int_equal(apply(&c, "{\n  \"limits\": {\n    \"rate_per_s\": 5,\n  }\n}\n"),
	                 -EINVAL);
	assert_true(!strncmp(err, "test.json:4:", 12));
	assert_int_equal(apply(&c, "{\n\"listen\": {\"port\": 80 80}}"), -EINVAL);
	assert_true(!strncmp(err, "test.json:2:", 12));
	assert_int_equal(apply(&c, ""), -EINVAL);
	assert_true(!strncmp(err, "test.json:", 10));
	/* Duplicate keys are rejected by the parser ... */
	assert_int_equal(apply(&c, "{\"listen\":{\"port\":1,\"port\":2}}"), -EINVAL);
	assert_non_null(strstr(err, "duplicate"));
	/* ... and one key spelled both nested and dotted by us. */
	assert_int_equal(apply(&c, "{\"limits\":{\"rate_per_s\":1},\"limits.rate_per_s\":2}"),
	                 -EINVAL);
	assert_string_equal(err, "test.json: \"limits.rate_per_s\": given twice");
	/* The top level must be an object. */
	assert_int_equal(apply(&c, "[1,2]"), -EINVAL);
	assert_string_equal(err, "test.json: expected a JSON object at the top level");
	qc_config_free(&c);
}

static void test_set_text(void **state)
{
	static const char *const bad_numbers[] = {
	    "",
	    "+5",
	    "-1",
	    " 5",
	    "5 ",
	    "5x",
	    "0x10",
	    "1e3",
	    "5.0",
	    "18446744073709551616",
	    "99999999999999999999999",
	    "1000001",
	};
	struct qc_config c;
	size_t i;

	(void)state;
	assert_int_equal(qc_config_defaults(&c), 0);
	for (i = 0; i < sizeof(bad_numbers) / sizeof(bad_numbers[0]); i++) {
		assert_int_equal(set(&c, "limits.rate_per_s", bad_numbers[i]), -EINVAL);
		assert_string_equal(err,
		                    "\"limits.rate_per_s\": expected an integer from 0 to 1000000");
	}
	assert_int_equal(c.limits.rate_per_s, 100);
	assert_int_equal(set(&c, "limits.rate_per_s", "007"), 0);
	assert_int_equal(c.limits.rate_per_s, 7);
	assert_int_equal(set(&c, "limits.max_send_queue_bytes", "1099511627776"), 0);
	assert_int_equal(c.limits.max_send_queue_bytes, 1099511627776ull);
	assert_int_equal(set(&c, "limits.max_send_queue_bytes", "1099511627777"), -EINVAL);

	assert_int_equal(set(&c, "demo_feed.enabled", "true"), 0);
	assert_true(c.demo_feed.enabled);
	assert_int_equal(set(&c, "demo_feed.enabled", "0"), 0);
	assert_false(c.demo_feed.enabled);
	assert_int_equal(set(&c, "demo_feed.enabled", "1"), 0);
	assert_true(c.demo_feed.enabled);
	assert_int_equal(set(&c, "demo_feed.enabled", "false"), 0);
	assert_false(c.demo_feed.enabled);
	assert_int_equal(set(&c, "demo_feed.enabled", "yes"), -EINVAL);
	assert_string_equal(err, "\"demo_feed.enabled\": expected true or false");

	assert_int_equal(set(&c, "event_loop", "libev"), 0);
	assert_int_equal(c.event_loop, QC_LOOP_LIBEV);
	assert_int_equal(set(&c, "event_loop", "LIBEV"), -EINVAL);
	assert_int_equal(set(&c, "log.level", "warn"), 0);
	assert_int_equal(c.log_level, QC_LOG_WARN);

	assert_int_equal(set(&c, "demo_feed.symbols", " A, B ,C"), 0);
	assert_int_equal(c.demo_feed.nsymbols, 3);
	assert_string_equal(c.demo_feed.symbols[0], "A");
	assert_string_equal(c.demo_feed.symbols[1], "B");
	assert_string_equal(c.demo_feed.symbols[2], "C");
	assert_int_equal(set(&c, "demo_feed.symbols", "A,,B"), -EINVAL);
	assert_int_equal(set(&c, "demo_feed.symbols", "A,"), -EINVAL);
	assert_int_equal(set(&c, "demo_feed.symbols", "A,B,A"), -EINVAL);
	assert_int_equal(c.demo_feed.nsymbols, 3);
	assert_int_equal(set(&c, "demo_feed.symbols", ""), 0);
	assert_int_equal(c.demo_feed.nsymbols, 0);
	assert_non_null(c.demo_feed.symbols);

	assert_int_equal(set(&c, "listen.host", "::"), 0);
	assert_string_equal(c.listen_host, "::");
	assert_int_equal(set(&c, "tls.cert", ""), 0);
	assert_string_equal(c.tls_cert, "");

	assert_int_equal(set(&c, "limits.rate_per_sec", "1"), -ENOENT);
	assert_string_equal(err, "unknown key \"limits.rate_per_sec\"");
	assert_int_equal(set(&c, "limits", "1"), -ENOENT);
	assert_int_equal(qc_config_set(&c, NULL, "1", err, sizeof(err)), -EINVAL);
	assert_int_equal(qc_config_set(&c, "listen.port", NULL, err, sizeof(err)), -EINVAL);
	qc_config_free(&c);
}

/*
 * Found by fuzz_config_set: a string setting given as bytes that are not UTF-8 (an environment
 * variable or a flag; a JSON file cannot carry them) was taken, and then the effective
 * configuration (--check-config) could not be built: qc_config_to_json() gave NULL.
 */
static void test_set_text_not_utf8(void **state)
{
	static const char *const keys[] = {"tls.cert", "listen.host", "auth.admin_token",
	                                   "store.url"};
	struct qc_config c;
	json_t *j;
	size_t i;

	(void)state;
	assert_int_equal(qc_config_defaults(&c), 0);
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		assert_int_equal(set(&c, keys[i], "/etc/tls.cert=tls.key=/etc/hos\xfftname"),
		                 -EINVAL);
		assert_non_null(strstr(err, keys[i]));
		assert_non_null(strstr(err, "UTF-8"));
	}
	assert_int_equal(set(&c, "tls.key", "\xc3("), -EINVAL);
	assert_string_equal(c.tls_cert, "");
	assert_string_equal(c.listen_host, "0.0.0.0");
	/* UTF-8 that is not ASCII is fine */
	assert_int_equal(set(&c, "tls.key", "/etc/cl\xc3\xa9.pem"), 0);
	j = qc_config_to_json(&c);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "tls"), "key")),
	                    "/etc/cl\xc3\xa9.pem");
	json_decref(j);
	qc_config_free(&c);
}

static void test_env(void **state)
{
	char *env[] = {
	    "PATH=/usr/bin",
	    "QUOTECAST_LIMITS_RATE_PER_S=42",
	    "QUOTECAST_EVENT_LOOP=poll",
	    "QUOTECAST_DEMO_FEED_ENABLED=true",
	    "QUOTECAST_DEMO_FEED_SYMBOLS=AAA,BBB",
	    "QUOTECAST_LISTEN_PORT=0",
	    "QUOTECAST_STORE_URL=postgresql://u:p@h/db",
	    "QUOTECAST_SESSIONS_MAX_BUFFERED_BYTES=123",
	    "QUOTECAST_BIN=/path/to/build/quotecast",
	    "QUOTECASTX_FOO=1",
	    "quotecast_limits_rate_burst=1",
	    NULL,
	};
	char *argv[] = {"quotecast", NULL};
	struct qc_config c;
	struct qc_cli cli;

	(void)state;
	assert_int_equal(load(&c, &cli, argv, env), 0);
	assert_int_equal(c.limits.rate_per_s, 42);
	assert_int_equal(c.event_loop, QC_LOOP_POLL);
	assert_true(c.demo_feed.enabled);
	assert_int_equal(c.demo_feed.nsymbols, 2);
	assert_string_equal(c.demo_feed.symbols[0], "AAA");
	assert_string_equal(c.demo_feed.symbols[1], "BBB");
	assert_int_equal(c.listen_port, 0);
	assert_string_equal(c.store_url, "postgresql://u:p@h/db");
	assert_int_equal(c.sessions.max_buffered_bytes, 123);
	assert_int_equal(c.limits.rate_burst, 200);
	qc_config_free(&c);
}

static void test_env_errors(void **state)
{
	char *unknown[] = {"QUOTECAST_LIMITS_RATE_PER_SEC=1", NULL};
	char *bad[] = {"QUOTECAST_LIMITS_RATE_PER_S=fast", NULL};
	char *bad_bool[] = {"QUOTECAST_DEMO_FEED_ENABLED=yes", NULL};
	char *bad_list[] = {"QUOTECAST_DEMO_FEED_SYMBOLS=A,,B", NULL};
	char *dotted[] = {"QUOTECAST_LIMITS.RATE_PER_S=3", NULL};
	char *argv[] = {"quotecast", NULL};
	struct qc_config c;
	struct qc_cli cli;

	(void)state;
	assert_int_equal(load(&c, &cli, argv, unknown), -EINVAL);
	assert_non_null(strstr(err, "QUOTECAST_LIMITS_RATE_PER_SEC"));
	assert_null(c.listen_host);
	assert_int_equal(load(&c, &cli, argv, bad), -EINVAL);
	assert_string_equal(err, "QUOTECAST_LIMITS_RATE_PER_S: \"limits.rate_per_s\": expected an "
	                         "integer from 0 to 1000000");
	assert_int_equal(load(&c, &cli, argv, bad_bool), -EINVAL);
	assert_string_equal(
	    err, "QUOTECAST_DEMO_FEED_ENABLED: \"demo_feed.enabled\": expected true or false");
	assert_int_equal(load(&c, &cli, argv, bad_list), -EINVAL);
	assert_non_null(strstr(err, "QUOTECAST_DEMO_FEED_SYMBOLS: \"demo_feed.symbols\""));
	/* '.' and '_' are the same in a variable name. */
	assert_int_equal(load(&c, &cli, argv, dotted), 0);
	assert_int_equal(c.limits.rate_per_s, 3);
	qc_config_free(&c);
}

/* Every key has a variable: each one set to its default loads and changes nothing. */
static void test_env_every_key(void **state)
{
	char *argv[] = {"quotecast", NULL};
	char var[160], *env[2] = {var, NULL};
	json_t *defaults = flat_defaults(), *v, *flat, *nested;
	const char *key;
	struct qc_config c;
	struct qc_cli cli;
	size_t o, i;

	(void)state;
	assert_int_equal(json_object_size(defaults), 66);
	json_object_foreach (defaults, key, v) {
		env_name(key, var, sizeof(var));
		o = strlen(var);
		var[o++] = '=';
		var[o] = '\0'; /* an empty list writes nothing */
		if (json_is_string(v)) {
			o += (size_t)snprintf(var + o, sizeof(var) - o, "%s", json_string_value(v));
		} else if (json_is_integer(v)) {
			o += (size_t)snprintf(var + o, sizeof(var) - o, "%lld",
			                      (long long)json_integer_value(v));
		} else if (json_is_boolean(v)) {
			o += (size_t)snprintf(var + o, sizeof(var) - o, "%s",
			                      json_is_true(v) ? "true" : "false");
		} else {
			assert_true(json_is_array(v));
			for (i = 0; i < json_array_size(v); i++)
				o +=
				    (size_t)snprintf(var + o, sizeof(var) - o, "%s%s", i ? "," : "",
				                     json_string_value(json_array_get(v, i)));
		}
		assert_true(o < sizeof(var));
		if (load(&c, &cli, argv, env) != 0)
			fail_msg("%s: %s", var, err);
		nested = qc_config_to_json(&c);
		flat = json_object();
		flatten(nested, "", flat);
		assert_true(json_equal(flat, defaults));
		json_decref(flat);
		json_decref(nested);
		qc_config_free(&c);
	}
	json_decref(defaults);
}

static void test_precedence(void **state)
{
	char *path = write_temp("{\"_comment\":\"test\",\"listen\":{\"port\":1111,"
	                        "\"host\":\"file.example\"},"
	                        "\"limits\":{\"rate_per_s\":5,\"rate_burst\":7},"
	                        "\"log.level\":\"warn\"}");
	char *env[] = {"QUOTECAST_LISTEN_PORT=2222", "QUOTECAST_LIMITS_RATE_PER_S=6",
	               "QUOTECAST_LOG_LEVEL=error", NULL};
	char *argv[] = {"quotecast", "--port", "3333", "-c", path, NULL};
	char *argv2[] = {"quotecast", "--port", "3333",        "--set", "listen.port=4444",
	                 "--config",  path,     "--log-level", "debug", NULL};
	char *argv3[] = {"quotecast", "--set", "listen.port=4444", "--port=5555", NULL};
	struct qc_config c;
	struct qc_cli cli;

	(void)state;
	/* flags over environment over file over defaults, wherever -c sits */
	assert_int_equal(load(&c, &cli, argv, env), 0);
	assert_ptr_equal(cli.config_path, path);
	assert_int_equal(c.listen_port, 3333);
	assert_int_equal(c.limits.rate_per_s, 6);
	assert_int_equal(c.limits.rate_burst, 7);
	assert_string_equal(c.listen_host, "file.example");
	assert_int_equal(c.log_level, QC_LOG_ERROR);
	assert_int_equal(c.limits.idle_timeout_s, 60);
	qc_config_free(&c);
	/* among flags, the last one wins */
	assert_int_equal(load(&c, &cli, argv2, env), 0);
	assert_int_equal(c.listen_port, 4444);
	assert_int_equal(c.log_level, QC_LOG_DEBUG);
	qc_config_free(&c);
	assert_int_equal(load(&c, &cli, argv3, no_env), 0);
	assert_int_equal(c.listen_port, 5555);
	assert_null(cli.config_path);
	qc_config_free(&c);
	/* the file alone */
	assert_int_equal(load(&c, &cli, (char *[]){"quotecast", "-c", path, NULL}, no_env), 0);
	assert_int_equal(c.listen_port, 1111);
	assert_int_equal(c.limits.rate_per_s, 5);
	assert_int_equal(c.log_level, QC_LOG_WARN);
	qc_config_free(&c);
	remove_temp(path);
}

static void test_flags(void **state)
{
	char *path = write_temp("{\"limits\":{\"rate_burst\":11}}");
	char cflag[64];
	char *argv[] = {"quotecast",
	                "--host",
	                "127.0.0.2",
	                "--db",
	                "postgresql://db/x",
	                "--demo-feed",
	                "--log-level=debug",
	                "--set",
	                "limits.rate_per_s=9",
	                "--set=demo_feed.symbols=A,B",
	                "--set",
	                "tls.cert=",
	                "--",
	                NULL};
	char *argv_c[] = {"quotecast", cflag, NULL};
	char *argv_copy[sizeof(argv) / sizeof(argv[0])];
	struct qc_config c;
	struct qc_cli cli;

	(void)state;
	memcpy(argv_copy, argv, sizeof(argv));
	assert_int_equal(load(&c, &cli, argv, no_env), 0);
	assert_string_equal(c.listen_host, "127.0.0.2");
	assert_string_equal(c.store_url, "postgresql://db/x");
	assert_true(c.demo_feed.enabled);
	assert_int_equal(c.log_level, QC_LOG_DEBUG);
	assert_int_equal(c.limits.rate_per_s, 9);
	assert_int_equal(c.demo_feed.nsymbols, 2);
	assert_string_equal(c.demo_feed.symbols[1], "B");
	assert_false(cli.check_config || cli.version || cli.help);
	assert_null(cli.config_path);
	/* argv is read, never permuted */
	assert_memory_equal(argv, argv_copy, sizeof(argv));
	qc_config_free(&c);
	/* -cFILE */
	snprintf(cflag, sizeof(cflag), "-c%s", path);
	assert_int_equal(load(&c, &cli, argv_c, no_env), 0);
	assert_string_equal(cli.config_path, path);
	assert_int_equal(c.limits.rate_burst, 11);
	qc_config_free(&c);
	/* --config=FILE */
	snprintf(cflag, sizeof(cflag), "--config=%s", path);
	assert_int_equal(load(&c, &cli, argv_c, no_env), 0);
	assert_int_equal(c.limits.rate_burst, 11);
	qc_config_free(&c);
	remove_temp(path);
}

static void expect_flag_error(char **argv, int rc, const char *msg)
{
	struct qc_config c;
	struct qc_cli cli;

	assert_int_equal(load(&c, &cli, argv, no_env), rc);
	assert_string_equal(err, msg);
	assert_null(c.listen_host);
}

static void test_flag_errors(void **state)
{
	(void)state;
	expect_flag_error((char *[]){"quotecast", "--bogus", NULL}, -EINVAL,
	                  "unknown option --bogus");
	expect_flag_error((char *[]){"quotecast", "--bogus=1", NULL}, -EINVAL,
	                  "unknown option --bogus");
	expect_flag_error((char *[]){"quotecast", "-x", NULL}, -EINVAL, "unknown option -x");
	expect_flag_error((char *[]){"quotecast", "--ver", NULL}, -EINVAL, "unknown option --ver");
	expect_flag_error((char *[]){"quotecast", "stray", NULL}, -EINVAL,
	                  "unexpected argument \"stray\"");
	expect_flag_error((char *[]){"quotecast", "-", NULL}, -EINVAL, "unexpected argument \"-\"");
	expect_flag_error((char *[]){"quotecast", "--", "stray", NULL}, -EINVAL,
	                  "unexpected argument \"stray\"");
	expect_flag_error((char *[]){"quotecast", "--port", NULL}, -EINVAL,
	                  "option --port needs a value");
	expect_flag_error((char *[]){"quotecast", "-c", NULL}, -EINVAL, "option -c needs a value");
	expect_flag_error((char *[]){"quotecast", "--demo-feed=1", NULL}, -EINVAL,
	                  "option --demo-feed takes no value");
	expect_flag_error((char *[]){"quotecast", "-hv", NULL}, -EINVAL,
	                  "option -h takes no value");
	expect_flag_error((char *[]){"quotecast", "--port", "70000", NULL}, -EINVAL,
	                  "--port: \"listen.port\": expected an integer from 0 to 65535");
	expect_flag_error((char *[]){"quotecast", "--port=", NULL}, -EINVAL,
	                  "--port: \"listen.port\": expected an integer from 0 to 65535");
	expect_flag_error((char *[]){"quotecast", "--log-level", "loud", NULL}, -EINVAL,
	                  "--log-level: \"log.level\": expected one of \"error\", \"warn\", "
	                  "\"info\", \"debug\"");
	expect_flag_error((char *[]){"quotecast", "--set", "limits.rate_per_s", NULL}, -EINVAL,
	                  "--set: expected KEY=VALUE, got \"limits.rate_per_s\"");
	expect_flag_error((char *[]){"quotecast", "--set", "limits.nope=1", NULL}, -EINVAL,
	                  "--set: unknown key \"limits.nope\"");
	expect_flag_error((char *[]){"quotecast", "--set", "limits.rate_per_s=x", NULL}, -EINVAL,
	                  "--set: \"limits.rate_per_s\": expected an integer from 0 to 1000000");
	/* A shape error is found before the file is read. */
	expect_flag_error((char *[]){"quotecast", "-c", "/nonexistent/qc.json", "--bogus", NULL},
	                  -EINVAL, "unknown option --bogus");
}

static void test_file_errors(void **state)
{
	char *broken =
	    write_temp("{\n  \"listen\": {\n    \"port\": 80,\n    \"host\" \"x\"\n  }\n}\n");
	char *unknown = write_temp("{\"limits\":{\"rate_per_sec\":5}}");
	char *with_nul = write_temp("{}");
	char *big = write_temp("");
	char *argv[] = {"quotecast", "-c", NULL, NULL};
	char want[256];
	struct qc_config c;
	struct qc_cli cli;
	FILE *f;
	int i;

	(void)state;
	argv[2] = "/nonexistent/dir/quotecast.json";
	assert_int_equal(load(&c, &cli, argv, no_env), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/dir/quotecast.json"));
	assert_null(c.listen_host);

	argv[2] = broken;
	assert_int_equal(load(&c, &cli, argv, no_env), -EINVAL);
	snprintf(want, sizeof(want), "%s:4:", broken);
	assert_true(!strncmp(err, want, strlen(want)));

	argv[2] = unknown;
	assert_int_equal(load(&c, &cli, argv, no_env), -EINVAL);
	snprintf(want, sizeof(want), "%s: unknown key \"limits.rate_per_sec\"", unknown);
	assert_string_equal(err, want);

	f = fopen(with_nul, "ab");
	assert_non_null(f);
	assert_int_equal(fwrite("\0{", 1, 2, f), 2);
	fclose(f);
	argv[2] = with_nul;
	assert_int_equal(load(&c, &cli, argv, no_env), -EINVAL);
	assert_non_null(strstr(err, "NUL"));

	/* More than 1 MiB is refused before parsing (here: valid JSON padded with spaces). */
	f = fopen(big, "wb");
	assert_non_null(f);
	assert_int_equal(fputc('{', f), '{');
	for (i = 0; i < (1 << 20); i++)
		assert_int_equal(fputc(' ', f), ' ');
	assert_int_equal(fputc('}', f), '}');
	fclose(f);
	argv[2] = big;
	assert_int_equal(load(&c, &cli, argv, no_env), -EFBIG);
	assert_non_null(strstr(err, big));

	/* A directory is not a config file. */
	argv[2] = "/tmp";
	assert_true(load(&c, &cli, argv, no_env) < 0);
	assert_non_null(strstr(err, "/tmp"));

	remove_temp(broken);
	remove_temp(unknown);
	remove_temp(with_nul);
	remove_temp(big);
}

static void test_cli_requests(void **state)
{
	char *bad_env[] = {"QUOTECAST_NOPE=1", NULL};
	struct qc_config c;
	struct qc_cli cli;

	(void)state;
	assert_int_equal(load(&c, &cli, (char *[]){"quotecast", "--check-config", NULL}, no_env),
	                 0);
	assert_true(cli.check_config);
	assert_false(cli.version || cli.help);
	qc_config_free(&c);
	/* --check-config reads and checks everything, so a bad variable still fails */
	assert_int_equal(load(&c, &cli, (char *[]){"quotecast", "--check-config", NULL}, bad_env),
	                 -EINVAL);
	assert_non_null(strstr(err, "QUOTECAST_NOPE"));

	assert_int_equal(load(&c, &cli, (char *[]){"quotecast", "--version", NULL}, no_env), 0);
	assert_true(cli.version);
	assert_false(cli.check_config || cli.help);
	qc_config_free(&c);
	assert_int_equal(load(&c, &cli, (char *[]){"quotecast", "--help", NULL}, no_env), 0);
	assert_true(cli.help);
	qc_config_free(&c);
	assert_int_equal(load(&c, &cli, (char *[]){"quotecast", "-h", NULL}, no_env), 0);
	assert_true(cli.help);
	assert_false(cli.check_config || cli.version);
	qc_config_free(&c);
	/* --help and --version answer even when the file and the environment are broken */
	assert_int_equal(load(&c, &cli,
	                      (char *[]){"quotecast", "-c", "/nonexistent.json", "--help", NULL},
	                      bad_env),
	                 0);
	assert_true(cli.help);
	assert_int_equal(c.listen_port, 8080);
	qc_config_free(&c);
	assert_int_equal(load(&c, &cli, (char *[]){"quotecast", "--version", NULL}, bad_env), 0);
	assert_true(cli.version);
	qc_config_free(&c);
	/* no argv at all, and a NULL cli, are fine */
	assert_int_equal(qc_config_load(&c, NULL, 0, NULL, NULL, err, sizeof(err)), 0);
	assert_int_equal(c.listen_port, 8080);
	qc_config_free(&c);
}

static void test_validate(void **state)
{
	char *cert = write_temp("cert"), *key = write_temp("key");
	struct qc_config c;

	(void)state;
	assert_int_equal(qc_config_defaults(&c), 0);

	assert_int_equal(set(&c, "auth.mode", "jwt"), 0);
	assert_int_equal(qc_config_validate(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "\"auth.jwt_secret\""));
	assert_int_equal(set(&c, "auth.jwt_secret", "0123456789012345678901234567890"), 0);
	assert_int_equal(qc_config_validate(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "32"));
	assert_int_equal(set(&c, "auth.jwt_secret", "01234567890123456789012345678901"), 0);
	assert_int_equal(qc_config_validate(&c, err, sizeof(err)), 0);
	assert_int_equal(set(&c, "auth.mode", "none"), 0);
	assert_int_equal(set(&c, "auth.jwt_secret", ""), 0);
	assert_int_equal(qc_config_validate(&c, err, sizeof(err)), 0);

	assert_int_equal(set(&c, "tls.cert", cert), 0);
	assert_int_equal(qc_config_validate(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "\"tls.key\""));
	assert_int_equal(set(&c, "tls.cert", ""), 0);
	assert_int_equal(set(&c, "tls.key", key), 0);
	assert_int_equal(qc_config_validate(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "\"tls.cert\""));
	assert_int_equal(set(&c, "tls.cert", "/nonexistent/cert.pem"), 0);
	assert_int_equal(qc_config_validate(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "\"tls.cert\": cannot read /nonexistent/cert.pem"));
	assert_int_equal(set(&c, "tls.cert", cert), 0);
	assert_int_equal(set(&c, "tls.key", "/nonexistent/key.pem"), 0);
	assert_int_equal(qc_config_validate(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "\"tls.key\": cannot read /nonexistent/key.pem"));
	assert_int_equal(set(&c, "tls.key", key), 0);
	assert_int_equal(qc_config_validate(&c, err, sizeof(err)), 0);

	assert_int_equal(set(&c, "limits.conflate_bytes", "4194304"), 0);
	assert_int_equal(qc_config_validate(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "\"limits.max_send_queue_bytes\""));
	assert_non_null(strstr(err, "limits.conflate_bytes"));
	assert_int_equal(set(&c, "limits.conflate_bytes", "5000000"), 0);
	assert_int_equal(qc_config_validate(&c, err, sizeof(err)), -EINVAL);
	assert_int_equal(set(&c, "limits.conflate_bytes", "4194303"), 0);
	assert_int_equal(qc_config_validate(&c, err, sizeof(err)), 0);

	assert_int_equal(set(&c, "demo_feed.symbols", ""), 0);
	assert_int_equal(qc_config_validate(&c, err, sizeof(err)), 0);
	assert_int_equal(set(&c, "demo_feed.enabled", "true"), 0);
	assert_int_equal(qc_config_validate(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "\"demo_feed.symbols\""));
	assert_int_equal(set(&c, "demo_feed.symbols", "X"), 0);
	assert_int_equal(qc_config_validate(&c, err, sizeof(err)), 0);
	qc_config_free(&c);

	/* qc_config_load() runs the checks too */
	assert_int_equal(
	    load(&c, NULL, (char *[]){"quotecast", "--set", "auth.mode=jwt", NULL}, no_env),
	    -EINVAL);
	assert_non_null(strstr(err, "\"auth.jwt_secret\""));
	assert_null(c.listen_host);
	assert_int_equal(
	    load(&c, NULL,
	         (char *[]){"quotecast", "--set", "limits.max_send_queue_bytes=262144", NULL},
	         no_env),
	    -EINVAL);
	assert_non_null(strstr(err, "\"limits.max_send_queue_bytes\""));
	remove_temp(cert);
	remove_temp(key);
}

static const char *masked_url(const char *url)
{
	static char out[256];
	struct qc_config c;
	json_t *j;

	assert_int_equal(qc_config_defaults(&c), 0);
	assert_int_equal(set(&c, "store.url", url), 0);
	j = qc_config_to_json(&c);
	assert_non_null(j);
	snprintf(out, sizeof(out), "%s",
	         json_string_value(json_object_get(json_object_get(j, "store"), "url")));
	json_decref(j);
	qc_config_free(&c);
	return out;
}

static void test_to_json_secrets(void **state)
{
	struct qc_config c;
	json_t *j, *auth;
	char *dump;

	(void)state;
	assert_int_equal(qc_config_defaults(&c), 0);
	assert_int_equal(set(&c, "auth.jwt_secret", "jwt-secret-jwt-secret-jwt-secret-1"), 0);
	assert_int_equal(set(&c, "auth.admin_token", "admin-tok"), 0);
	assert_int_equal(set(&c, "store.url", "postgresql://quser:hunter2@db.local:5432/qc"), 0);
	j = qc_config_to_json(&c);
	assert_non_null(j);
	auth = json_object_get(j, "auth");
	assert_string_equal(json_string_value(json_object_get(auth, "jwt_secret")), "***");
	assert_string_equal(json_string_value(json_object_get(auth, "admin_token")), "***");
	/* an empty secret stays empty, so --check-config shows it is not set */
	assert_string_equal(json_string_value(json_object_get(auth, "publish_token")), "");
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "store"), "url")),
	                    "postgresql://quser:***@db.local:5432/qc");
	dump = json_dumps(j, 0);
	assert_non_null(dump);
	assert_null(strstr(dump, "jwt-secret"));
	assert_null(strstr(dump, "admin-tok"));
	assert_null(strstr(dump, "hunter2"));
	free(dump);
	json_decref(j);
	/* the config itself keeps the real values */
	assert_string_equal(c.auth_admin_token, "admin-tok");
	qc_config_free(&c);

	assert_string_equal(masked_url("postgresql://quser@db/qc"), "postgresql://quser@db/qc");
	assert_string_equal(masked_url("postgresql://db/qc"), "postgresql://db/qc");
	assert_string_equal(masked_url("postgres://u:p%40ss@h/db"), "postgres://u:***@h/db");
	assert_string_equal(masked_url("postgresql://u:@h/db"), "postgresql://u:@h/db");
	assert_string_equal(masked_url("postgresql://h/db?user=u&password=pw&sslmode=off"),
	                    "postgresql://h/db?user=u&password=***&sslmode=off");
	assert_string_equal(masked_url("host=h password=secret dbname=qc"),
	                    "host=h password=*** dbname=qc");
	assert_string_equal(masked_url("host=h password='se cret' dbname=qc"),
	                    "host=h password=*** dbname=qc");
	assert_string_equal(masked_url("password=x"), "password=***");
	assert_string_equal(masked_url("host=h mypassword=x"), "host=h mypassword=x");
	assert_string_equal(masked_url(""), "");
}

static void test_repeated_loads(void **state)
{
	char port[16], *argv[] = {"quotecast", "--port", port, NULL};
	char *check[] = {"quotecast", "--check-config", "--port", "1", NULL};
	char *bad[] = {"quotecast", "--nope", NULL};
	struct qc_config c;
	struct qc_cli cli;
	int i;

	(void)state;
	for (i = 0; i < 5; i++) {
		snprintf(port, sizeof(port), "%d", 1000 + i);
		assert_int_equal(load(&c, &cli, argv, no_env), 0);
		assert_int_equal(c.listen_port, 1000 + i);
		assert_false(cli.check_config);
		qc_config_free(&c);
		assert_int_equal(load(&c, &cli, check, no_env), 0);
		assert_true(cli.check_config);
		assert_int_equal(c.listen_port, 1);
		qc_config_free(&c);
		assert_int_equal(load(&c, &cli, bad, no_env), -EINVAL);
		assert_string_equal(err, "unknown option --nope");
	}
}

static void test_err_buffer(void **state)
{
	struct qc_config c;
	char small[10];

	(void)state;
	assert_int_equal(qc_config_defaults(&c), 0);
	memset(small, 'x', sizeof(small));
	assert_int_equal(qc_config_set(&c, "no.such.key", "1", small, sizeof(small)), -ENOENT);
	assert_int_equal(strlen(small), sizeof(small) - 1);
	assert_memory_equal(small, "unknown k", sizeof(small));
	/* no room at all: nothing is written, nothing breaks */
	assert_int_equal(qc_config_set(&c, "no.such.key", "1", NULL, 0), -ENOENT);
	assert_int_equal(qc_config_apply_json(&c, "{", "x", NULL, 0), -EINVAL);
	qc_config_free(&c);
}

static void test_names_and_usage(void **state)
{
	const char *u = qc_config_usage();

	(void)state;
	assert_string_equal(qc_event_loop_name(QC_LOOP_AUTO), "auto");
	assert_string_equal(qc_event_loop_name(QC_LOOP_LIBUV), "libuv");
	assert_string_equal(qc_event_loop_name(QC_LOOP_LIBEV), "libev");
	assert_string_equal(qc_event_loop_name(QC_LOOP_POLL), "poll");
	assert_string_equal(qc_event_loop_name((enum qc_event_loop)42), "unknown");
	assert_non_null(strstr(u, "docs/configuration.md"));
	assert_non_null(strstr(u, "QUOTECAST_"));
	assert_non_null(strstr(u, "--config"));
	assert_non_null(strstr(u, "--port"));
	assert_non_null(strstr(u, "--host"));
	assert_non_null(strstr(u, "--db"));
	assert_non_null(strstr(u, "--demo-feed"));
	assert_non_null(strstr(u, "--set"));
	assert_non_null(strstr(u, "--log-level"));
	assert_non_null(strstr(u, "--check-config"));
	assert_non_null(strstr(u, "--version"));
	assert_non_null(strstr(u, "--help"));
}

/* The shipped config/quotecast.json holds every key, each at its default, and loads. */
/* cluster.redis takes redis:// URLs, refuses the rest naming the key; node_id is checked */
static void test_cluster(void **state)
{
	struct qc_config c;
	json_t *j;

	(void)state;
	assert_int_equal(qc_config_defaults(&c), 0);
	assert_int_equal(qc_config_set(&c, "cluster.redis",
	                               "redis://127.0.0.1:7001, redis://10.0.0.2", err,
	                               sizeof(err)),
	                 0);
	assert_int_equal(c.cluster.nredis, 2);
	assert_string_equal(c.cluster.redis[0], "redis://127.0.0.1:7001");
	assert_string_equal(c.cluster.redis[1], "redis://10.0.0.2");
	j = qc_config_to_json(&c);
	assert_int_equal(json_array_size(json_object_get(json_object_get(j, "cluster"), "redis")),
	                 2);
	json_decref(j);
	assert_int_equal(qc_config_set(&c, "cluster.redis", "http://x:1", err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "\"cluster.redis\""));
	assert_non_null(strstr(err, "must start with redis://"));
	assert_int_equal(
	    qc_config_set(&c, "cluster.redis", "redis://a:1,redis://a:1", err, sizeof(err)),
	    -EINVAL);
	assert_non_null(strstr(err, "listed twice"));
	/* found by fuzz_config_set: a URL of other bytes is refused without echoing them */
	assert_int_equal(qc_config_set(&c, "cluster.redis", "redis://h\x8b\n:1", err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "printable ASCII"));
	assert_null(strchr(err, '\n'));
	assert_int_equal(qc_config_apply_json(&c, "{\"cluster\":{\"redis\":[\"redis://h:0\"]}}",
	                                      "f.json", err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "\"cluster.redis\""));
	assert_int_equal(
	    qc_config_apply_json(&c, "{\"cluster\":{\"redis\":[]}}", "f.json", err, sizeof(err)),
	    0);
	assert_int_equal(c.cluster.nredis, 0);
	assert_int_equal(qc_config_set(&c, "cluster.node_id", "a b", err, sizeof(err)), 0);
	assert_int_equal(qc_config_validate(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "\"cluster.node_id\""));
	assert_int_equal(qc_config_set(&c, "cluster.node_id", "node-1:8080", err, sizeof(err)), 0);
	assert_int_equal(qc_config_validate(&c, err, sizeof(err)), 0);
	assert_int_equal(qc_config_set(&c, "cluster.timeout_ms", "10", err, sizeof(err)), -EINVAL);
	qc_config_free(&c);
}

static void test_shipped_config(void **state)
{
	char *path = repo_path("config/quotecast.json");
	char *argv[] = {"quotecast", "-c", path, NULL};
	json_t *file, *flat = json_object(), *defaults = flat_defaults();
	const char *key;
	json_t *v;
	json_error_t jerr;
	struct qc_config c;
	struct qc_cli cli;

	(void)state;
	file = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!file)
		fail_msg("%s:%d: %s", path, jerr.line, jerr.text);
	assert_non_null(json_object_get(file, "_comment"));
	flatten(file, "", flat);
	json_object_foreach (defaults, key, v) {
		if (!json_object_get(flat, key))
			fail_msg("config/quotecast.json lacks %s", key);
	}
	json_object_foreach (flat, key, v) {
		if (!json_object_get(defaults, key))
			fail_msg("config/quotecast.json has unknown %s", key);
	}
	assert_true(json_equal(flat, defaults));
	assert_int_equal(load(&c, &cli, argv, no_env), 0);
	qc_config_free(&c);
	json_decref(file);
	json_decref(flat);
	json_decref(defaults);
	free(path);
}

/* docs/configuration.md names every key, its variable, and every flag. */
static void test_docs(void **state)
{
	static const char *const flags[] = {
	    "--config", "--port",      "--host",         "--db",      "--demo-feed",
	    "--set",    "--log-level", "--check-config", "--version", "--help"};
	char *path = repo_path("docs/configuration.md");
	char *doc = slurp(path);
	json_t *defaults = flat_defaults(), *v;
	const char *key;
	char want[160];
	size_t i;

	(void)state;
	json_object_foreach (defaults, key, v) {
		snprintf(want, sizeof(want), "`%s`", key);
		if (!strstr(doc, want))
			fail_msg("docs/configuration.md lacks %s", want);
		env_name(key, want, sizeof(want));
		if (!strstr(doc, want))
			fail_msg("docs/configuration.md lacks %s", want);
	}
	for (i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		if (!strstr(doc, flags[i]))
			fail_msg("docs/configuration.md lacks %s", flags[i]);
	json_decref(defaults);
	free(doc);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_defaults_to_json),
	    cmocka_unit_test(test_json_nested),
	    cmocka_unit_test(test_rooms_keys),
	    cmocka_unit_test(test_json_dotted_and_comments),
	    cmocka_unit_test(test_json_unknown_key),
	    cmocka_unit_test(test_json_wrong_types),
	    cmocka_unit_test(test_json_ranges),
	    cmocka_unit_test(test_json_symbols),
	    cmocka_unit_test(test_json_syntax),
	    cmocka_unit_test(test_set_text),
	    cmocka_unit_test(test_set_text_not_utf8),
	    cmocka_unit_test(test_env),
	    cmocka_unit_test(test_env_errors),
	    cmocka_unit_test(test_env_every_key),
	    cmocka_unit_test(test_precedence),
	    cmocka_unit_test(test_flags),
	    cmocka_unit_test(test_flag_errors),
	    cmocka_unit_test(test_file_errors),
	    cmocka_unit_test(test_cli_requests),
	    cmocka_unit_test(test_validate),
	    cmocka_unit_test(test_to_json_secrets),
	    cmocka_unit_test(test_repeated_loads),
	    cmocka_unit_test(test_err_buffer),
	    cmocka_unit_test(test_names_and_usage),
	    cmocka_unit_test(test_cluster),
	    cmocka_unit_test(test_shipped_config),
	    cmocka_unit_test(test_docs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
