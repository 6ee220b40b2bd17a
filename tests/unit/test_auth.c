/*
 * test_auth: JWT verification against tokens signed here with libjwt (valid, expired, bad
 * claims, wrong secret, other algorithms) and built by hand with OpenSSL (alg "none",
 * "hs256", algorithm confusion, tampering, the length limit); password hashes (format, salt,
 * right and wrong passwords, the length limit, malformed stored strings, iteration bounds);
 * constant-time token comparison.
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

#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "quotecast/auth.h"

#define SECRET "test-secret-of-some-length"
#define NOW    1700000000L

/* Signs @jwt (consumed) with @alg and @key; returns a malloc'd token. */
static char *sign(jwt_t *jwt, jwt_alg_t alg, const char *key)
{
	char *tok;

	assert_int_equal(jwt_set_alg(jwt, alg, (const unsigned char *)key, (int)strlen(key)), 0);
	tok = jwt_encode_str(jwt);
	assert_non_null(tok);
	jwt_free(jwt);
	return tok;
}

/* A claim set with sub and exp set; the caller adds or removes the rest. */
static jwt_t *claims(const char *sub, long exp)
{
	jwt_t *jwt;

	assert_int_equal(jwt_new(&jwt), 0);
	if (sub)
		assert_int_equal(jwt_add_grant(jwt, "sub", sub), 0);
	assert_int_equal(jwt_add_grant_int(jwt, "exp", exp), 0);
	return jwt;
}

static void b64url(const char *in, size_t n, char *out)
{
	int len, i, j;

	len = EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in, (int)n);
	for (i = 0, j = 0; i < len; i++) {
		if (out[i] == '=')
			continue;
		out[j++] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
	}
	out[j] = '\0';
}

/*
 * base64url(@header).base64url(@payload).signature, the signature being HMAC-SHA256 with
 * @key, or empty when @key is NULL. Returns a malloc'd token.
 */
static char *hand_token(const char *header, const char *payload, const char *key)
{
	size_t hl = strlen(header), pl = strlen(payload);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char *tok;
	size_t n;

	tok = malloc(2 * (hl + pl) + 256);
	assert_non_null(tok);
	b64url(header, hl, tok);
	n = strlen(tok);
	tok[n++] = '.';
	b64url(payload, pl, tok + n);
	n = strlen(tok);
	if (key) {
		assert_non_null(HMAC(EVP_sha256(), key, (int)strlen(key), (unsigned char *)tok, n,
		                     mac, &maclen));
		tok[n++] = '.';
		b64url((const char *)mac, maclen, tok + n);
	} else {
		tok[n++] = '.';
		tok[n] = '\0';
	}
	return tok;
}

/* Verifies @tok (freed), expecting @want; on failure checks that @out was cleared. */
static void expect(char *tok, int want)
{
	struct qc_identity id;
	const char *why = "unset";
	int rc;

	memset(&id, 0x5a, sizeof(id));
	rc = qc_jwt_verify(tok, SECRET, NOW, &id, &why);
	if (rc != want)
		fail_msg("token %.80s: got %d (%s), want %d", tok, rc, why ? why : "-", want);
	if (want) {
		assert_non_null(why);
		assert_string_not_equal(why, "unset");
		assert_int_equal(id.user_id[0], '\0');
		assert_int_equal(id.roles, 0);
		assert_int_equal(id.exp, 0);
	} else {
		assert_null(why);
	}
	free(tok);
}

static void test_jwt_valid(void **state)
{
	struct qc_identity id;
	const char *why = "unset";
	jwt_t *jwt;
	char *tok;

	(void)state;
	jwt = claims("alice", NOW + 3600);
	assert_int_equal(jwt_add_grants_json(jwt, "{\"roles\":[\"admin\",\"publisher\"]}"), 0);
	tok = sign(jwt, JWT_ALG_HS256, SECRET);
	assert_int_equal(qc_jwt_verify(tok, SECRET, NOW, &id, &why), 0);
	assert_null(why);
	assert_string_equal(id.user_id, "alice");
	assert_int_equal(id.roles, QC_AUTH_ROLE_ADMIN | QC_AUTH_ROLE_PUBLISHER);
	assert_int_equal(id.exp, NOW + 3600);
	/* @why may be NULL. */
	assert_int_equal(qc_jwt_verify(tok, SECRET, NOW, &id, NULL), 0);
	free(tok);

	/* No roles claim: no roles. */
	tok = sign(claims("bob", NOW + 1), JWT_ALG_HS256, SECRET);
	memset(&id, 0x5a, sizeof(id));
	assert_int_equal(qc_jwt_verify(tok, SECRET, NOW, &id, &why), 0);
	assert_string_equal(id.user_id, "bob");
	assert_int_equal(id.roles, 0);
	assert_int_equal(id.exp, NOW + 1);
	free(tok);

	/* Unknown roles, and near misses of known ones, are ignored. */
	jwt = claims("carol", NOW + 60);
	assert_int_equal(jwt_add_grants_json(jwt, "{\"roles\":[\"viewer\",\"Admin\",\"\","
	                                          "\"publishers\",\"publisher\"]}"),
	                 0);
	tok = sign(jwt, JWT_ALG_HS256, SECRET);
	assert_int_equal(qc_jwt_verify(tok, SECRET, NOW, &id, &why), 0);
	assert_int_equal(id.roles, QC_AUTH_ROLE_PUBLISHER);
	free(tok);

	/* An empty array, and other claims, are fine. */
	jwt = claims("dave", NOW + 60);
	assert_int_equal(jwt_add_grants_json(jwt, "{\"roles\":[],\"iss\":\"x\",\"n\":{}}"), 0);
	tok = sign(jwt, JWT_ALG_HS256, SECRET);
	assert_int_equal(qc_jwt_verify(tok, SECRET, NOW, &id, &why), 0);
	assert_int_equal(id.roles, 0);
	free(tok);

	/* A role with an embedded NUL is not "admin": libjwt's parser refuses "\u0000". */
	expect(hand_token("{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
	                  "{\"sub\":\"e\",\"exp\":1800000000,\"roles\":[\"admin\\u0000x\"]}",
	                  SECRET),
	       -EINVAL);
}

static void test_jwt_exp(void **state)
{
	struct qc_identity id;
	jwt_t *jwt;
	char *tok;

	(void)state;
	expect(sign(claims("alice", NOW - 1), JWT_ALG_HS256, SECRET), -ETIMEDOUT);
	/* exp is the first second the token is no longer valid. */
	expect(sign(claims("alice", NOW), JWT_ALG_HS256, SECRET), -ETIMEDOUT);
	expect(sign(claims("alice", 0), JWT_ALG_HS256, SECRET), -ETIMEDOUT);
	expect(sign(claims("alice", NOW + 1), JWT_ALG_HS256, SECRET), 0);

	/* exp missing. */
	assert_int_equal(jwt_new(&jwt), 0);
	assert_int_equal(jwt_add_grant(jwt, "sub", "alice"), 0);
	expect(sign(jwt, JWT_ALG_HS256, SECRET), -EINVAL);

	/* exp not a number: a string (libjwt would read it as 0), a bool, null, an array. */
	assert_int_equal(jwt_new(&jwt), 0);
	assert_int_equal(jwt_add_grant(jwt, "sub", "alice"), 0);
	assert_int_equal(jwt_add_grant(jwt, "exp", "1800000000"), 0);
	expect(sign(jwt, JWT_ALG_HS256, SECRET), -EINVAL);
	assert_int_equal(jwt_new(&jwt), 0);
	assert_int_equal(jwt_add_grant(jwt, "sub", "alice"), 0);
	assert_int_equal(jwt_add_grant_bool(jwt, "exp", 1), 0);
	expect(sign(jwt, JWT_ALG_HS256, SECRET), -EINVAL);
	expect(hand_token("{\"alg\":\"HS256\"}", "{\"sub\":\"a\",\"exp\":null}", SECRET), -EINVAL);
	expect(hand_token("{\"alg\":\"HS256\"}", "{\"sub\":\"a\",\"exp\":[1800000000]}", SECRET),
	       -EINVAL);

	/* A fractional NumericDate is a number; it is rounded down. */
	tok = hand_token("{\"alg\":\"HS256\"}", "{\"sub\":\"a\",\"exp\":1800000000.75}", SECRET);
	assert_int_equal(qc_jwt_verify(tok, SECRET, NOW, &id, NULL), 0);
	assert_int_equal(id.exp, 1800000000);
	free(tok);
	expect(hand_token("{\"alg\":\"HS256\"}", "{\"sub\":\"a\",\"exp\":1700000000.5}", SECRET),
	       -ETIMEDOUT);
	expect(hand_token("{\"alg\":\"HS256\"}", "{\"sub\":\"a\",\"exp\":1e300}", SECRET), -EINVAL);
}

/* exp in milliseconds saturates: an exp near 2^63 overflowed exp * 1000 (UBSan abort). */
static void test_jwt_exp_ms(void **state)
{
	static const struct {
		const char *exp;
		int64_t want_ms;
	} cases[] = {
	    {"1800000000", INT64_C(1800000000000)},
	    {"1800000000.75", INT64_C(1800000000000)},
	    {"9223372036854775", INT64_C(9223372036854775000)},
	    {"9223372036854776", INT64_MAX},
	    {"9223372036854775807", INT64_MAX},
	    /* the largest double below 2^63 */
	    {"9223372036854774784.0", INT64_MAX},
	};
	struct qc_identity id;
	char payload[128];
	char *tok;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(payload, sizeof(payload), "{\"sub\":\"a\",\"exp\":%s}", cases[i].exp);
		tok = hand_token("{\"alg\":\"HS256\"}", payload, SECRET);
		assert_int_equal(qc_jwt_verify(tok, SECRET, NOW, &id, NULL), 0);
		assert_true(id.exp_ms == cases[i].want_ms);
		free(tok);
	}
	/* 2^63 itself is not an int64: jansson refuses the integer, the real is out of range */
	expect(hand_token("{\"alg\":\"HS256\"}", "{\"sub\":\"a\",\"exp\":9223372036854775808}",
	                  SECRET),
	       -EINVAL);
	expect(hand_token("{\"alg\":\"HS256\"}", "{\"sub\":\"a\",\"exp\":9.3e18}", SECRET),
	       -EINVAL);
	/* far in the past: saturates the other way, and is expired */
	expect(hand_token("{\"alg\":\"HS256\"}", "{\"sub\":\"a\",\"exp\":-9223372036854775807}",
	                  SECRET),
	       -ETIMEDOUT);
}

static void test_jwt_sub(void **state)
{
	char sub[QC_AUTH_USER_MAX + 2];
	struct qc_identity id;
	jwt_t *jwt;
	char *tok;

	(void)state;
	/* Missing. */
	expect(sign(claims(NULL, NOW + 60), JWT_ALG_HS256, SECRET), -EINVAL);
	/* Empty. */
	expect(sign(claims("", NOW + 60), JWT_ALG_HS256, SECRET), -EINVAL);
	/* 65 bytes. */
	memset(sub, 'u', QC_AUTH_USER_MAX + 1);
	sub[QC_AUTH_USER_MAX + 1] = '\0';
	expect(sign(claims(sub, NOW + 60), JWT_ALG_HS256, SECRET), -EINVAL);
	/* 64 bytes is the most. */
	sub[QC_AUTH_USER_MAX] = '\0';
	tok = sign(claims(sub, NOW + 60), JWT_ALG_HS256, SECRET);
	assert_int_equal(qc_jwt_verify(tok, SECRET, NOW, &id, NULL), 0);
	assert_string_equal(id.user_id, sub);
	assert_int_equal(strlen(id.user_id), QC_AUTH_USER_MAX);
	free(tok);
	/* Not a string. */
	jwt = claims(NULL, NOW + 60);
	assert_int_equal(jwt_add_grant_int(jwt, "sub", 42), 0);
	expect(sign(jwt, JWT_ALG_HS256, SECRET), -EINVAL);
	/* An embedded NUL would make two users look alike. */
	expect(hand_token("{\"alg\":\"HS256\"}", "{\"sub\":\"ali\\u0000ce\",\"exp\":1800000000}",
	                  SECRET),
	       -EINVAL);
}

static void test_jwt_roles_bad(void **state)
{
	static const char *const bad[] = {
	    "{\"roles\":\"admin\"}",     "{\"roles\":{\"admin\":true}}",
	    "{\"roles\":[\"admin\",7]}", "{\"roles\":[\"publisher\",null]}",
	    "{\"roles\":[[\"admin\"]]}", "{\"roles\":null}",
	    "{\"roles\":true}",
	};
	jwt_t *jwt;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		jwt = claims("alice", NOW + 60);
		assert_int_equal(jwt_add_grants_json(jwt, bad[i]), 0);
		expect(sign(jwt, JWT_ALG_HS256, SECRET), -EINVAL);
	}
}

static void test_jwt_signature(void **state)
{
	struct qc_identity id;
	const char *why;
	char *tok, *dot;

	(void)state;
	/* Wrong secret, a prefix of the right one, one byte longer. */
	expect(sign(claims("alice", NOW + 60), JWT_ALG_HS256, "another-secret"), -EACCES);
	expect(sign(claims("alice", NOW + 60), JWT_ALG_HS256, "test-secret"), -EACCES);
	expect(sign(claims("alice", NOW + 60), JWT_ALG_HS256, SECRET "x"), -EACCES);

	/* Right secret by hand: the helper agrees with libjwt. */
	expect(hand_token("{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
	                  "{\"sub\":\"alice\",\"exp\":1800000000}", SECRET),
	       0);
	/* HS256 header but no signature. */
	expect(hand_token("{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
	                  "{\"sub\":\"alice\",\"exp\":1800000000}", NULL),
	       -EACCES);

	/* Payload swapped for another one under the first token's signature. */
	tok = sign(claims("alice", NOW + 60), JWT_ALG_HS256, SECRET);
	{
		char *other = hand_token("{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
		                         "{\"sub\":\"mallory\",\"exp\":1800000000,"
		                         "\"roles\":[\"admin\"]}",
		                         NULL);
		char *forged = malloc(strlen(tok) + strlen(other) + 1);

		assert_non_null(forged);
		/* other is "header.payload." and tok's signature follows its last dot. */
		dot = strrchr(tok, '.');
		strcpy(forged, other);
		strcat(forged, dot + 1);
		free(other);
		expect(forged, -EACCES);
	}
	/* A flipped signature character. */
	dot = strrchr(tok, '.');
	dot[1] = dot[1] == 'A' ? 'B' : 'A';
	expect(tok, -EACCES);

	/* No secret at all: nothing can be verified (libjwt would skip the check). */
	tok = hand_token("{\"alg\":\"HS256\"}", "{\"sub\":\"alice\",\"exp\":1800000000}", "");
	why = NULL;
	assert_int_equal(qc_jwt_verify(tok, "", NOW, &id, &why), -EACCES);
	assert_non_null(why);
	assert_int_equal(qc_jwt_verify(tok, NULL, NOW, &id, &why), -EACCES);
	free(tok);
}

static void test_jwt_algorithms(void **state)
{
	(void)state;
	/* Unsigned tokens, whatever the spelling of "none", with or without a signature. */
	expect(hand_token("{\"alg\":\"none\",\"typ\":\"JWT\"}",
	                  "{\"sub\":\"alice\",\"exp\":1800000000,\"roles\":[\"admin\"]}", NULL),
	       -EINVAL);
	expect(hand_token("{\"alg\":\"NONE\"}", "{\"sub\":\"alice\",\"exp\":1800000000}", NULL),
	       -EINVAL);
	expect(hand_token("{\"alg\":\"none\"}", "{\"sub\":\"alice\",\"exp\":1800000000}", SECRET),
	       -EINVAL);
	/* HS384 and HS512 with the right secret. */
	expect(sign(claims("alice", NOW + 60), JWT_ALG_HS512, SECRET), -EINVAL);
	expect(sign(claims("alice", NOW + 60), JWT_ALG_HS384, SECRET), -EINVAL);
	/* "hs256" is not "HS256", even with a valid HMAC-SHA256. */
	expect(hand_token("{\"alg\":\"hs256\"}", "{\"sub\":\"alice\",\"exp\":1800000000}", SECRET),
	       -EINVAL);
	/* Algorithm confusion: an RS256 header with an HMAC signature. */
	expect(hand_token("{\"alg\":\"RS256\"}", "{\"sub\":\"alice\",\"exp\":1800000000}", SECRET),
	       -EINVAL);
	/* No alg, alg not a string, an unknown alg. */
	expect(hand_token("{\"typ\":\"JWT\"}", "{\"sub\":\"alice\",\"exp\":1800000000}", SECRET),
	       -EINVAL);
	expect(hand_token("{\"alg\":256}", "{\"sub\":\"alice\",\"exp\":1800000000}", SECRET),
	       -EINVAL);
	expect(hand_token("{\"alg\":\"HS257\"}", "{\"sub\":\"alice\",\"exp\":1800000000}", SECRET),
	       -EINVAL);
}

static void test_jwt_malformed(void **state)
{
	static const char *const bad[] = {
	    "",
	    "abc",
	    "a.b",
	    "a.b.c",
	    "..",
	    "...",
	    "eyJhbGciOiJIUzI1NiJ9",
	    "eyJhbGciOiJIUzI1NiJ9.",
	    "eyJhbGciOiJIUzI1NiJ9..",
	    "!!!!.????.****",
	    "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln",
	    /* Empty header or payload (libjwt 1.10 overflows a heap buffer on these). */
	    ".eyJzdWIiOiJhIiwiZXhwIjoxODAwMDAwMDAwfQ.c2ln",
	    "eyJhbGciOiJIUzI1NiJ9..c2ln",
	    "..c2ln",
	    /* Four segments, padding, the standard base64 alphabet, spaces. */
	    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIiwiZXhwIjoxODAwMDAwMDAwfQ.c2ln.c2ln",
	    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIiwiZXhwIjoxODAwMDAwMDAwfQ==.c2ln",
	    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIiwiZXhwIjoxODAwMDAwMDAwfQ.c2+/",
	    " eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIiwiZXhwIjoxODAwMDAwMDAwfQ.c2ln",
	    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIiwiZXhwIjoxODAwMDAwMDAwfQ.c2ln\n",
	};
	struct qc_identity id;
	const char *why;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		if (qc_jwt_verify(bad[i], SECRET, NOW, &id, &why) != -EINVAL)
			fail_msg("\"%s\" not refused as malformed", bad[i]);
		assert_non_null(why);
	}
	why = NULL;
	assert_int_equal(qc_jwt_verify(NULL, SECRET, NOW, &id, &why), -EINVAL);
	assert_non_null(why);
	/* A header that is not an object, claims that are an array (signed correctly). */
	expect(hand_token("\"HS256\"", "{\"sub\":\"alice\",\"exp\":1800000000}", SECRET), -EINVAL);
	expect(hand_token("{\"alg\":\"HS256\"}", "[\"alice\",1800000000]", SECRET), -EINVAL);
	/* A typ other than JWT is refused by libjwt. */
	expect(hand_token("{\"alg\":\"HS256\",\"typ\":\"JWE\"}",
	                  "{\"sub\":\"alice\",\"exp\":1800000000}", SECRET),
	       -EINVAL);
}

/* Tokens of exactly QC_JWT_MAX bytes verify; one byte more is refused before decoding. */
static void test_jwt_length(void **state)
{
	char header[64], *payload, *tok;
	const char *kpad;
	bool at_max = false, over_max = false;
	struct qc_identity id;
	const char *why;
	size_t pad, k, len;
	int rc;

	(void)state;
	payload = malloc(QC_JWT_MAX);
	assert_non_null(payload);
	for (k = 0; k < 3; k++) {
		kpad = k == 0 ? "" : k == 1 ? "k" : "kk";
		snprintf(header, sizeof(header), "{\"alg\":\"HS256\",\"kid\":\"%s\"}", kpad);
		for (pad = 5900; pad < 6150; pad++) {
			len = (size_t)snprintf(payload, QC_JWT_MAX,
			                       "{\"sub\":\"u\",\"exp\":1800000000,\"p\":\"");
			memset(payload + len, 'p', pad);
			strcpy(payload + len + pad, "\"}");
			tok = hand_token(header, payload, SECRET);
			len = strlen(tok);
			if (len == QC_JWT_MAX || len == QC_JWT_MAX + 1) {
				why = NULL;
				rc = qc_jwt_verify(tok, SECRET, NOW, &id, &why);
				if (len == QC_JWT_MAX) {
					assert_int_equal(rc, 0);
					at_max = true;
				} else {
					assert_int_equal(rc, -EINVAL);
					assert_string_equal(why, "token too long");
					over_max = true;
				}
			}
			free(tok);
		}
	}
	free(payload);
	assert_true(at_max);
	assert_true(over_max);

	/* Far too long, and not even a token. */
	tok = malloc(1 << 20);
	assert_non_null(tok);
	memset(tok, 'a', (1 << 20) - 1);
	tok[(1 << 20) - 1] = '\0';
	assert_int_equal(qc_jwt_verify(tok, SECRET, NOW, &id, NULL), -EINVAL);
	free(tok);
}

#define PW_PREFIX "pbkdf2-sha256$"

static bool is_lower_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* Formats a stored string for @password computed here, independently of auth.c. */
static void make_stored(const char *password, size_t plen, int iter, char *out, size_t outlen)
{
	static const unsigned char salt[16] = "0123456789abcdef";
	unsigned char key[32];
	char *p;
	size_t i;

	assert_int_equal(PKCS5_PBKDF2_HMAC(password, (int)plen, salt, sizeof(salt), iter,
	                                   EVP_sha256(), sizeof(key), key),
	                 1);
	p = out + snprintf(out, outlen, PW_PREFIX "%d$", iter);
	for (i = 0; i < sizeof(salt); i++)
		p += sprintf(p, "%02x", salt[i]);
	*p++ = '$';
	for (i = 0; i < sizeof(key); i++)
		p += sprintf(p, "%02x", key[i]);
}

static void test_password_hash_format(void **state)
{
	char a[QC_PASSWORD_HASH_MAX], b[QC_PASSWORD_HASH_MAX];
	const char *p;

	(void)state;
	assert_int_equal(qc_password_hash("hunter2", a, sizeof(a)), 0);
	assert_int_equal(strlen(a), strlen(PW_PREFIX) + 5 + 1 + 32 + 1 + 64);
	assert_memory_equal(a, PW_PREFIX, strlen(PW_PREFIX));
	p = a + strlen(PW_PREFIX);
	assert_memory_equal(p, "20000$", 6);
	p += 6;
	assert_true(is_lower_hex(p, 32));
	assert_int_equal(p[32], '$');
	assert_true(is_lower_hex(p + 33, 64));
	assert_int_equal(p[33 + 64], '\0');

	/* A fresh salt each time: same password, different strings, both match. */
	assert_int_equal(qc_password_hash("hunter2", b, sizeof(b)), 0);
	assert_string_not_equal(a, b);
	assert_memory_not_equal(a + strlen(PW_PREFIX) + 6, b + strlen(PW_PREFIX) + 6, 32);
	assert_memory_not_equal(a + strlen(PW_PREFIX) + 6 + 33, b + strlen(PW_PREFIX) + 6 + 33, 64);
	assert_true(qc_password_check("hunter2", a));
	assert_true(qc_password_check("hunter2", b));

	/* Bad arguments. */
	assert_int_equal(qc_password_hash("x", a, QC_PASSWORD_HASH_MAX - 1), -EINVAL);
	assert_int_equal(qc_password_hash(NULL, a, sizeof(a)), -EINVAL);
	assert_int_equal(a[0], '\0');
	assert_int_equal(qc_password_hash("x", NULL, sizeof(a)), -EINVAL);
}

static void test_password_check(void **state)
{
	char stored[QC_PASSWORD_HASH_MAX], empty[QC_PASSWORD_HASH_MAX];

	(void)state;
	assert_int_equal(qc_password_hash("correct horse", stored, sizeof(stored)), 0);
	assert_true(qc_password_check("correct horse", stored));
	assert_false(qc_password_check("correct hors", stored));
	assert_false(qc_password_check("correct horse ", stored));
	assert_false(qc_password_check("Correct horse", stored));
	assert_false(qc_password_check("", stored));
	assert_false(qc_password_check(NULL, stored));
	assert_false(qc_password_check("correct horse", NULL));

	/* The empty password hashes and matches only itself. */
	assert_int_equal(qc_password_hash("", empty, sizeof(empty)), 0);
	assert_true(qc_password_check("", empty));
	assert_false(qc_password_check(" ", empty));

	/* A string made here (fixed salt) is read back: the format is the documented one. */
	make_stored("s3cret", 6, 20000, stored, sizeof(stored));
	assert_true(qc_password_check("s3cret", stored));
	assert_false(qc_password_check("s3cre", stored));
}

static void test_password_length(void **state)
{
	char stored[QC_PASSWORD_HASH_MAX], *pw;

	(void)state;
	pw = malloc(QC_PASSWORD_MAX + 2);
	assert_non_null(pw);
	memset(pw, 'p', QC_PASSWORD_MAX + 1);
	pw[QC_PASSWORD_MAX + 1] = '\0';
	/* One byte over: refused by both, even against a hash that would match. */
	assert_int_equal(qc_password_hash(pw, stored, sizeof(stored)), -EINVAL);
	assert_int_equal(stored[0], '\0');
	make_stored(pw, QC_PASSWORD_MAX + 1, 1000, stored, sizeof(stored));
	assert_false(qc_password_check(pw, stored));
	/* Exactly the limit is fine. */
	pw[QC_PASSWORD_MAX] = '\0';
	make_stored(pw, QC_PASSWORD_MAX, 1000, stored, sizeof(stored));
	assert_true(qc_password_check(pw, stored));
	assert_int_equal(qc_password_hash(pw, stored, sizeof(stored)), 0);
	assert_true(qc_password_check(pw, stored));
	free(pw);
}

static void test_password_iterations(void **state)
{
	char stored[QC_PASSWORD_HASH_MAX];

	(void)state;
	make_stored("pw", 2, 1000, stored, sizeof(stored));
	assert_true(qc_password_check("pw", stored));
	/* Correct for 999 iterations, but below the floor. */
	make_stored("pw", 2, 999, stored, sizeof(stored));
	assert_false(qc_password_check("pw", stored));
	make_stored("pw", 2, 1, stored, sizeof(stored));
	assert_false(qc_password_check("pw", stored));
	make_stored("pw", 2, 54321, stored, sizeof(stored));
	assert_true(qc_password_check("pw", stored));
}

static void test_password_malformed(void **state)
{
	static const char salt[] = "000102030405060708090a0b0c0d0e0f";
	static const char hash[] =
	    "000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f";
	static const char *const bad_prefix[] = {
	    "",
	    "pbkdf2-sha512$",
	    "PBKDF2-SHA256$",
	    "pbkdf2-sha256",
	    "pbkdf2_sha256$",
	    " pbkdf2-sha256$",
	    "$",
	};
	static const char *const bad_iter[] = {
	    "",           "0",           "999",        "10000001", "020000",  "+20000",
	    " 20000",     "-20000",      "20000 ",     "20000x",   "2e4",     "0x4e20",
	    "4294987296", "99999999999", "1000000000", "20 000",   "20000.0",
	};
	static const char *const other_1000[] = {
	    "01000", "001000", "+1000", " 1000", "1000 ", "1000.0", "1e3", "0x3e8", "1_000",
	};
	char good[QC_PASSWORD_HASH_MAX], buf[QC_PASSWORD_HASH_MAX * 2];
	size_t i, len;

	(void)state;
	/* A well-formed string of the right password is the control. */
	make_stored("pw", 2, 1000, good, sizeof(good));
	assert_true(qc_password_check("pw", good));

	for (i = 0; i < sizeof(bad_prefix) / sizeof(bad_prefix[0]); i++) {
		snprintf(buf, sizeof(buf), "%s%s", bad_prefix[i], good + strlen(PW_PREFIX));
		assert_false(qc_password_check("pw", buf));
	}
	for (i = 0; i < sizeof(bad_iter) / sizeof(bad_iter[0]); i++) {
		snprintf(buf, sizeof(buf), PW_PREFIX "%s$%s$%s", bad_iter[i], salt, hash);
		if (qc_password_check("pw", buf))
			fail_msg("accepted iterations \"%s\"", bad_iter[i]);
	}

	/* Other spellings of 1000, with the hash that is right for 1000 iterations. */
	for (i = 0; i < sizeof(other_1000) / sizeof(other_1000[0]); i++) {
		snprintf(buf, sizeof(buf), PW_PREFIX "%s%s", other_1000[i],
		         good + strlen(PW_PREFIX "1000"));
		if (qc_password_check("pw", buf))
			fail_msg("accepted iterations \"%s\"", other_1000[i]);
	}

	/* Odd and wrong hex lengths, non-hex digits, uppercase, missing or extra '$'. */
	snprintf(buf, sizeof(buf), PW_PREFIX "1000$%.31s$%s", salt, hash);
	assert_false(qc_password_check("pw", buf));
	snprintf(buf, sizeof(buf), PW_PREFIX "1000$%s0$%s", salt, hash);
	assert_false(qc_password_check("pw", buf));
	snprintf(buf, sizeof(buf), PW_PREFIX "1000$%s$%.63s", salt, hash);
	assert_false(qc_password_check("pw", buf));
	snprintf(buf, sizeof(buf), PW_PREFIX "1000$%s$%s0", salt, hash);
	assert_false(qc_password_check("pw", buf));
	snprintf(buf, sizeof(buf), PW_PREFIX "1000$%.30sgg$%s", salt, hash);
	assert_false(qc_password_check("pw", buf));
	snprintf(buf, sizeof(buf), PW_PREFIX "1000$%s%s", salt, hash);
	assert_false(qc_password_check("pw", buf));
	snprintf(buf, sizeof(buf), PW_PREFIX "1000$$%s$%s", salt, hash);
	assert_false(qc_password_check("pw", buf));

	/* The control, uppercased: the same bytes, but not the documented spelling. */
	strcpy(buf, good);
	for (i = strlen(PW_PREFIX); buf[i]; i++)
		if (buf[i] >= 'a' && buf[i] <= 'f')
			buf[i] = (char)(buf[i] - 'a' + 'A');
	assert_false(qc_password_check("pw", buf));

	/* Every truncation of the control. */
	len = strlen(good);
	for (i = 0; i < len; i++) {
		memcpy(buf, good, i);
		buf[i] = '\0';
		if (qc_password_check("pw", buf))
			fail_msg("accepted truncation at %zu", i);
	}
	/* Trailing bytes. */
	snprintf(buf, sizeof(buf), "%s$", good);
	assert_false(qc_password_check("pw", buf));
	snprintf(buf, sizeof(buf), "%s\n", good);
	assert_false(qc_password_check("pw", buf));
	snprintf(buf, sizeof(buf), "%s0", good);
	assert_false(qc_password_check("pw", buf));

	/* Well formed, one hash digit off. */
	strcpy(buf, good);
	buf[len - 1] = buf[len - 1] == '0' ? '1' : '0';
	assert_false(qc_password_check("pw", buf));
	/* The control still matches: nothing above was refused for another reason. */
	assert_true(qc_password_check("pw", good));
}

static void test_token_equal(void **state)
{
	(void)state;
	assert_true(qc_token_equal("s3cr3t-token", 12, "s3cr3t-token"));
	/* The length is explicit: a longer buffer compares only its first bytes. */
	assert_true(qc_token_equal("s3cr3t-token-and-more", 12, "s3cr3t-token"));
	/* Same length, different content (first, middle, last byte). */
	assert_false(qc_token_equal("S3cr3t-token", 12, "s3cr3t-token"));
	assert_false(qc_token_equal("s3cr3x-token", 12, "s3cr3t-token"));
	assert_false(qc_token_equal("s3cr3t-tokeN", 12, "s3cr3t-token"));
	/* Different lengths: a prefix, a longer one, an embedded NUL. */
	assert_false(qc_token_equal("s3cr3t-toke", 11, "s3cr3t-token"));
	assert_false(qc_token_equal("s3cr3t-token!", 13, "s3cr3t-token"));
	assert_false(qc_token_equal("s3cr3t-token\0", 13, "s3cr3t-token"));
	assert_false(qc_token_equal("", 0, "s3cr3t-token"));
	assert_false(qc_token_equal(NULL, 0, "s3cr3t-token"));
	assert_false(qc_token_equal(NULL, 5, "s3cr3t-token"));
	/* An empty or missing configured token matches nothing, not even an empty one. */
	assert_false(qc_token_equal("", 0, ""));
	assert_false(qc_token_equal("x", 1, ""));
	assert_false(qc_token_equal(NULL, 0, ""));
	assert_false(qc_token_equal("", 0, NULL));
	assert_false(qc_token_equal("x", 1, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_jwt_valid),
	    cmocka_unit_test(test_jwt_exp),
	    cmocka_unit_test(test_jwt_exp_ms), /* issue 11: exp near 2^63 */
	    cmocka_unit_test(test_jwt_sub),
	    cmocka_unit_test(test_jwt_roles_bad),
	    cmocka_unit_test(test_jwt_signature),
	    cmocka_unit_test(test_jwt_algorithms),
	    cmocka_unit_test(test_jwt_malformed),
	    cmocka_unit_test(test_jwt_length),
	    cmocka_unit_test(test_password_hash_format),
	    cmocka_unit_test(test_password_check),
	    cmocka_unit_test(test_password_length),
	    cmocka_unit_test(test_password_iterations),
	    cmocka_unit_test(test_password_malformed),
	    cmocka_unit_test(test_token_equal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
