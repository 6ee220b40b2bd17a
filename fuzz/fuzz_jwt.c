/*
 * fuzz_jwt: qc_jwt_verify(), the shape check and the claims reader, on tokens as clients
 * present them (?token=, Authorization: Bearer, Socket.IO CONNECT auth). The first byte picks
 * what the rest of the input is:
 *   0: the whole token, as sent (mostly refused before the claims: the signature is wrong);
 *   1: the claims (payload JSON bytes), signed in here with the server's secret under a fixed
 *      HS256 header, so every input reaches the claims reader;
 *   2: header bytes, a newline, claims bytes, signed in here too.
 * Invariants: a refusal zeroes the identity and gives a reason and one of the documented
 * errors; a token signed with the secret is never refused for its signature; an accepted one
 * has a 1-64 byte user id without NULs, an exp after now, its exp_ms saturated (never an
 * overflow of exp * 1000) and only known role bits.
 */
#include <errno.h>
#include <stdbool.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fuzz.h"
#include "quotecast/auth.h"

#define SECRET "fuzz-secret-0123456789abcdef0123"
#define NOW_S  1700000000
#define HEADER "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init();
	return 0;
}

/* base64url without padding of @in into @out; returns the characters written. */
static size_t b64url(const uint8_t *in, size_t n, char *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0, i;
	uint32_t v;

	for (i = 0; i + 2 < n; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
		out[o++] = a[v >> 6 & 63];
		out[o++] = a[v & 63];
	}
	if (n - i == 1) {
		v = (uint32_t)in[i] << 16;
		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
	} else if (n - i == 2) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
		out[o++] = a[v >> 6 & 63];
	}
	return o;
}

/* header.claims.signature with a valid HS256 signature under SECRET (malloc'd). */
static char *sign(const uint8_t *hdr, size_t hlen, const uint8_t *claims, size_t clen)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char *tok = malloc((hlen + clen + 64) / 3 * 4 + 64);
	size_t n;

	CHECK(tok);
	n = b64url(hdr, hlen, tok);
	tok[n++] = '.';
	n += b64url(claims, clen, tok + n);
	CHECK(HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const unsigned char *)tok, n, mac,
	           &maclen));
	tok[n++] = '.';
	n += b64url(mac, maclen, tok + n);
	tok[n] = '\0';
	return tok;
}

static void check(const char *token, bool signed_here)
{
	static const struct qc_identity zero;
	struct qc_identity id;
	const char *why = "unset";
	size_t n;
	int rc;

	memset(&id, 0xa5, sizeof(id));
	rc = qc_jwt_verify(token, SECRET, NOW_S, &id, &why);
	if (rc) {
		CHECK(rc == -EINVAL || rc == -EACCES || rc == -ETIMEDOUT || rc == -ENOMEM);
		CHECK(why && *why && strcmp(why, "unset"));
		CHECK(!memcmp(&id, &zero, sizeof(id)));
		/* A signature made with the secret is good; only libjwt's reading can fail. */
		CHECK(!signed_here || rc != -EACCES || strlen(token) > QC_JWT_MAX);
		return;
	}
	CHECK(!why);
	n = strnlen(id.user_id, sizeof(id.user_id));
	CHECK(n >= 1 && n <= QC_AUTH_USER_MAX);
	CHECK(id.exp > NOW_S);
	/* what ws.c closes the connection by: exp in ms, saturated instead of overflowing */
	CHECK(id.exp > INT64_MAX / 1000 ? id.exp_ms == INT64_MAX : id.exp_ms == id.exp * 1000);
	CHECK(!(id.roles & ~(QC_AUTH_ROLE_ADMIN | QC_AUTH_ROLE_PUBLISHER)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *rest = data + 1, *nl;
	size_t n = size - 1;
	char *tok;

	if (!size)
		return 0;
	switch (data[0] % 3) {
	case 0:
		tok = fuzz_cstr(rest, n);
		check(tok, false);
		break;
	case 1:
		tok = sign((const uint8_t *)HEADER, strlen(HEADER), rest, n);
		check(tok, true);
		break;
	default:
		nl = memchr(rest, '\n', n);
		if (!nl)
			return 0;
		tok = sign(rest, (size_t)(nl - rest), nl + 1, n - (size_t)(nl - rest) - 1);
		check(tok, true);
		break;
	}
	free(tok);
	return 0;
}
