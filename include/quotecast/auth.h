/*
 * auth: identity and secrets, with no I/O. Verifies HS256 JWTs (libjwt), hashes and checks
 * room passwords (salted PBKDF2-HMAC-SHA256, OpenSSL), compares tokens in constant time.
 */
#ifndef QC_AUTH_H
#define QC_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QC_AUTH_USER_MAX 64   /* bytes of a user id (sub) */
#define QC_JWT_MAX       8192 /* bytes of a token; longer ones are malformed */

/* server roles carried by a token (same bits as QC_ROLE_ADMIN / QC_ROLE_PUBLISHER in conn.h) */
#define QC_AUTH_ROLE_ADMIN     0x1u
#define QC_AUTH_ROLE_PUBLISHER 0x2u

struct qc_identity {
	char user_id[QC_AUTH_USER_MAX + 1];
	uint32_t roles; /* QC_AUTH_ROLE_* */
	int64_t exp;    /* seconds since the epoch */
	int64_t exp_ms; /* the same in milliseconds, saturated: an exp near 2^63 is INT64_MAX */
};

/**
 * qc_jwt_verify() - verify @token (compact JWS) against @secret: the algorithm must be HS256
 * (anything else, "none" included, is refused), the signature must match, "exp" must be a
 * number later than @now_s, "sub" a string of 1-64 bytes, "roles" (optional) an array of
 * strings of which "admin" and "publisher" count. A token over QC_JWT_MAX bytes is
 * malformed. Any integer exp is taken (JSON integers are 64-bit); out->exp_ms saturates
 * instead of overflowing. Fills @out (zeroed on failure). Returns 0, or -EINVAL (malformed, wrong
 * algorithm, bad claims), -EACCES (bad signature, or an empty @secret), -ETIMEDOUT (expired)
 * or -ENOMEM, with a static reason in *@why (if @why is not NULL; NULL on success).
 */
int qc_jwt_verify(const char *token, const char *secret, int64_t now_s, struct qc_identity *out,
                  const char **why);

/*
 * A stored password: "pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>" (16-byte salt, 32-byte
 * key, lowercase hex; iterations 1000..10000000 are accepted when checking).
 */
#define QC_PASSWORD_HASH_MAX 160
#define QC_PASSWORD_MAX      1024 /* bytes of a password; longer ones are refused */

/**
 * qc_password_hash() - hash @password with a fresh 16-byte salt from OpenSSL into @out
 * (at least QC_PASSWORD_HASH_MAX bytes, @outlen). Returns 0, -EINVAL (@password over
 * QC_PASSWORD_MAX bytes, or @outlen too small) or -EIO.
 */
int qc_password_hash(const char *password, char *out, size_t outlen);

/**
 * qc_password_check() - whether @password matches @stored (constant-time comparison of the
 * derived keys). A malformed @stored, or a @password over QC_PASSWORD_MAX bytes, never
 * matches.
 */
bool qc_password_check(const char *password, const char *stored);

/**
 * qc_token_equal() - constant-time comparison of a presented token with the configured one
 * (neither content nor length leaks through timing). An empty @configured matches nothing.
 */
bool qc_token_equal(const char *presented, size_t presented_len, const char *configured);

#endif
