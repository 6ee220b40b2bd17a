/*
 * auth: verifying HS256 JWTs (libjwt 1.10 for the signature, jansson for the claims), hashing
 * and checking room passwords (PBKDF2-HMAC-SHA256) and comparing configured tokens, all
 * without I/O and in constant time where a secret is compared.
 *
 * libjwt 1.10 answers EINVAL both for a malformed token and for a bad signature, verifies
 * nothing when given no key, and takes the algorithm from the token's own header. So a token
 * is decoded twice: first without a key, to check its structure and that its header names
 * HS256 exactly; then with the secret, to check the signature. Claims are read only from the
 * second, verified, decode.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "quotecast/auth.h"

/*
 * About 5 ms per check (measured: 4.7 ms at -O2 on one core of an AMD EPYC build machine);
 * checks run on the event loop, so this trades brute-force cost against loop latency. The fuzz
 * build (fuzz/CMakeLists.txt) lowers it to the least a check accepts, to stay fast.
 */
#ifndef QC_PASSWORD_ITERATIONS
#define QC_PASSWORD_ITERATIONS 20000
#endif

#define PW_PREFIX   "pbkdf2-sha256$"
#define PW_SALT_LEN 16
#define PW_KEY_LEN  32
#define PW_ITER_MIN 1000
#define PW_ITER_MAX 10000000
#define PW_ITER_DIG 8 /* digits of PW_ITER_MAX */

static int refuse(const char **why, const char *reason, int err)
{
	if (why)
		*why = reason;
	return err;
}

static int read_exp(const json_t *v, int64_t *exp)
{
	double d;

	if (json_is_integer(v)) {
		*exp = json_integer_value(v);
		return 0;
	}
	if (!json_is_real(v))
		return -EINVAL;
	/* A NumericDate may have a fraction; rounding down never extends the token's life. */
	d = floor(json_real_value(v));
	if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
		return -EINVAL;
	*exp = (int64_t)d;
	return 0;
}

/* @s seconds in milliseconds, saturated at the int64_t range instead of overflowing. */
static int64_t seconds_to_ms(int64_t s)
{
	if (s > INT64_MAX / 1000)
		return INT64_MAX;
	if (s < INT64_MIN / 1000)
		return INT64_MIN;
	return s * 1000;
}

static int read_roles(const json_t *v, uint32_t *roles)
{
	const json_t *role;
	size_t i;

	*roles = 0;
	if (!v)
		return 0;
	if (!json_is_array(v))
		return -EINVAL;
	json_array_foreach (v, i, role) {
		if (!json_is_string(role))
			return -EINVAL;
		/* Unknown roles are someone else's: ignore them. */
		if (!strcmp(json_string_value(role), "admin"))
			*roles |= QC_AUTH_ROLE_ADMIN;
		else if (!strcmp(json_string_value(role), "publisher"))
			*roles |= QC_AUTH_ROLE_PUBLISHER;
	}
	return 0;
}

static int read_claims(jwt_t *jwt, int64_t now_s, struct qc_identity *id, const char **why)
{
	const json_t *v;
	json_t *claims;
	char *text;
	size_t len;
	int rc;

	/*
	 * One jansson parse for all claims: jwt_get_grant_int() cannot tell 0 from a string.
	 * Without JSON_ALLOW_NUL jansson (here and inside libjwt) refuses "\u0000", so every
	 * string below is a whole C string.
	 */
	text = jwt_get_grants_json(jwt, NULL);
	if (!text)
		return refuse(why, "cannot read claims", -EINVAL);
	claims = json_loads(text, 0, NULL);
	free(text);
	if (!json_is_object(claims)) {
		rc = refuse(why, "claims are not an object", -EINVAL);
		goto out;
	}

	v = json_object_get(claims, "exp");
	if (!v) {
		rc = refuse(why, "exp missing", -EINVAL);
		goto out;
	}
	if (read_exp(v, &id->exp)) {
		rc = refuse(why, "exp is not a number", -EINVAL);
		goto out;
	}
	id->exp_ms = seconds_to_ms(id->exp);

	v = json_object_get(claims, "sub");
	if (!json_is_string(v)) {
		rc = refuse(why, "sub missing or not a string", -EINVAL);
		goto out;
	}
	len = json_string_length(v);
	if (!len || len > QC_AUTH_USER_MAX) {
		rc = refuse(why, "sub must be 1-64 bytes", -EINVAL);
		goto out;
	}
	memcpy(id->user_id, json_string_value(v), len);
	id->user_id[len] = '\0';

	if (read_roles(json_object_get(claims, "roles"), &id->roles)) {
		rc = refuse(why, "roles must be an array of strings", -EINVAL);
		goto out;
	}

	if (id->exp <= now_s) {
		rc = refuse(why, "token expired", -ETIMEDOUT);
		goto out;
	}
	rc = 0;
out:
	json_decref(claims);
	return rc;
}

static bool is_b64url(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

/*
 * libjwt 1.10 writes one byte past a zero-size buffer when the header or payload segment is
 * empty, and base64-decodes whatever it is given: hand it only three base64url segments, the
 * first two not empty. (The length limit also matters to it: it alloca()s each segment.)
 */
static bool well_shaped(const char *token)
{
	size_t dots = 0, len = 0;

	for (; *token; token++) {
		if (*token == '.') {
			if (!len || ++dots > 2)
				return false;
			len = 0;
		} else if (is_b64url(*token)) {
			len++;
		} else {
			return false;
		}
	}
	/* The signature may be empty here: libjwt compares it as a string, then refuses it. */
	return dots == 2;
}

int qc_jwt_verify(const char *token, const char *secret, int64_t now_s, struct qc_identity *out,
                  const char **why)
{
	struct qc_identity id = {0};
	jwt_t *jwt = NULL;
	const char *alg;
	size_t keylen;
	bool hs256;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!token || !*token)
		return refuse(why, "empty token", -EINVAL);
	if (strnlen(token, QC_JWT_MAX + 1) > QC_JWT_MAX)
		return refuse(why, "token too long", -EINVAL);
	if (!well_shaped(token))
		return refuse(why, "malformed token", -EINVAL);

	rc = jwt_decode(&jwt, token, NULL, 0);
	if (rc == ENOMEM)
		return refuse(why, "out of memory", -ENOMEM);
	if (rc || !jwt)
		return refuse(why, "malformed token", -EINVAL);
	/* Exactly "HS256": libjwt itself would also take "hs256" and every other algorithm. */
	alg = jwt_get_header(jwt, "alg");
	hs256 = alg && !strcmp(alg, "HS256");
	jwt_free(jwt);
	jwt = NULL;
	if (!hs256)
		return refuse(why, "algorithm is not HS256", -EINVAL);

	/* With an empty key libjwt would skip the signature check altogether. */
	keylen = secret ? strlen(secret) : 0;
	if (!keylen || keylen > INT_MAX)
		return refuse(why, "no usable secret", -EACCES);
	rc = jwt_decode(&jwt, token, (const unsigned char *)secret, (int)keylen);
	if (rc == ENOMEM)
		return refuse(why, "out of memory", -ENOMEM);
	if (rc || !jwt)
		return refuse(why, "bad signature", -EACCES);
	/*
	 * libjwt 1.10 returns success without verifying when copying the key fails; only an
	 * object that says it checked HS256 was verified.
	 */
	if (jwt_get_alg(jwt) != JWT_ALG_HS256) {
		rc = refuse(why, "signature not verified", -EACCES);
		goto out;
	}

	rc = read_claims(jwt, now_s, &id, why);
	if (rc)
		goto out;
	*out = id;
	if (why)
		*why = NULL;
out:
	jwt_free(jwt);
	return rc;
}

static void to_hex(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
	out[2 * n] = '\0';
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	/* Lowercase only, as written by qc_password_hash(): one spelling per hash. */
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Reads exactly 2 * @n hex digits; stops at the first non-digit, so never past a NUL. */
static bool from_hex(const char *in, unsigned char *out, size_t n)
{
	int hi, lo;
	size_t i;

	for (i = 0; i < n; i++) {
		hi = hex_value(in[2 * i]);
		if (hi < 0)
			return false;
		lo = hex_value(in[2 * i + 1]);
		if (lo < 0)
			return false;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return true;
}

/* "pbkdf2-sha256$<iterations>$<32 hex>$<64 hex>" and nothing else. */
static bool parse_stored(const char *s, int *iter, unsigned char *salt, unsigned char *key)
{
	const char *p;
	long n = 0;
	int digits = 0;

	if (strncmp(s, PW_PREFIX, strlen(PW_PREFIX)))
		return false;
	p = s + strlen(PW_PREFIX);
	/* Digits only: no sign, no space, no leading zero; few enough that n cannot overflow. */
	if (*p == '0')
		return false;
	while (*p >= '0' && *p <= '9') {
		if (++digits > PW_ITER_DIG)
			return false;
		n = n * 10 + (*p++ - '0');
	}
	if (n < PW_ITER_MIN || n > PW_ITER_MAX || *p++ != '$')
		return false;
	if (!from_hex(p, salt, PW_SALT_LEN))
		return false;
	p += 2 * PW_SALT_LEN;
	if (*p++ != '$')
		return false;
	if (!from_hex(p, key, PW_KEY_LEN))
		return false;
	p += 2 * PW_KEY_LEN;
	if (*p)
		return false;
	*iter = (int)n;
	return true;
}

int qc_password_hash(const char *password, char *out, size_t outlen)
{
	unsigned char salt[PW_SALT_LEN], key[PW_KEY_LEN];
	char salt_hex[2 * PW_SALT_LEN + 1], key_hex[2 * PW_KEY_LEN + 1];
	size_t plen;
	int n;

	if (!out || outlen < QC_PASSWORD_HASH_MAX)
		return -EINVAL;
	out[0] = '\0';
	if (!password)
		return -EINVAL;
	plen = strnlen(password, QC_PASSWORD_MAX + 1);
	if (plen > QC_PASSWORD_MAX)
		return -EINVAL;

	if (RAND_bytes(salt, sizeof(salt)) != 1)
		return -EIO;
	if (PKCS5_PBKDF2_HMAC(password, (int)plen, salt, sizeof(salt), QC_PASSWORD_ITERATIONS,
	                      EVP_sha256(), sizeof(key), key) != 1)
		return -EIO;
	to_hex(salt, sizeof(salt), salt_hex);
	to_hex(key, sizeof(key), key_hex);
	OPENSSL_cleanse(key, sizeof(key));
	n = snprintf(out, outlen, PW_PREFIX "%d$%s$%s", QC_PASSWORD_ITERATIONS, salt_hex, key_hex);
	OPENSSL_cleanse(key_hex, sizeof(key_hex));
	if (n < 0 || (size_t)n >= outlen) {
		out[0] = '\0';
		return -EIO;
	}
	return 0;
}

bool qc_password_check(const char *password, const char *stored)
{
	unsigned char salt[PW_SALT_LEN], want[PW_KEY_LEN], got[PW_KEY_LEN];
	size_t plen;
	bool ok;
	int iter;

	if (!password || !stored)
		return false;
	plen = strnlen(password, QC_PASSWORD_MAX + 1);
	if (plen > QC_PASSWORD_MAX)
		return false;
	if (!parse_stored(stored, &iter, salt, want))
		return false;
	if (PKCS5_PBKDF2_HMAC(password, (int)plen, salt, sizeof(salt), iter, EVP_sha256(),
	                      sizeof(got), got) != 1)
		return false;
	ok = CRYPTO_memcmp(got, want, sizeof(got)) == 0;
	OPENSSL_cleanse(got, sizeof(got));
	return ok;
}

bool qc_token_equal(const char *presented, size_t presented_len, const char *configured)
{
	unsigned char a[EVP_MAX_MD_SIZE], b[EVP_MAX_MD_SIZE];
	unsigned int alen = 0, blen = 0;

	if (!configured || !*configured)
		return false;
	if (!presented && presented_len)
		return false;
	/* Comparing fixed-size digests hides both the content and the length. */
	if (EVP_Digest(presented ? presented : "", presented_len, a, &alen, EVP_sha256(), NULL) !=
	    1)
		return false;
	if (EVP_Digest(configured, strlen(configured), b, &blen, EVP_sha256(), NULL) != 1)
		return false;
	return alen == blen && CRYPTO_memcmp(a, b, alen) == 0;
}
