// JSON Web Tokens for the jwt auth mode tests (rooms.md "Authentication"): compact JWS signed
// with node:crypto HMAC, plus deliberately broken variants (unsigned, other algorithms, bad
// claims). Built on nothing but node:crypto; harness.mjs is not changed.

import { createHmac } from 'node:crypto';

/** A 40-byte HS256 secret for the test servers, and another one for forged tokens. */
export const TEST_SECRET = 'quotecast-integration-secret-0123456789a';
export const OTHER_SECRET = 'not-the-server-secret-0123456789abcdefgh';

/** b64url() - base64url without padding of a string (UTF-8), Buffer or JSON-able object. */
export function b64url(v) {
	const buf = Buffer.isBuffer(v) ? v :
		Buffer.from(typeof v === 'string' ? v : JSON.stringify(v), 'utf8');
	return buf.toString('base64url');
}

const HASHES = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' };

/**
 * signJwt() - a compact JWS of @payload. @alg HS256 (default), HS384 or HS512 signs with
 * @secret; "none" gives an unsigned token (empty signature). @header adds/overrides header
 * fields (e.g. {alg: 'none'} on an HS256-signed token).
 */
export function signJwt(payload, secret = TEST_SECRET, { alg = 'HS256', header = {} } = {}) {
	const head = b64url({ alg, typ: 'JWT', ...header });
	const body = b64url(payload);
	const input = `${head}.${body}`;
	if (alg === 'none')
		return `${input}.`;
	const hash = HASHES[alg];
	if (!hash)
		throw new Error(`signJwt: unsupported alg ${alg}`);
	return `${input}.${createHmac(hash, secret).update(input).digest('base64url')}`;
}

/** nowS() - the current time in whole seconds. */
export const nowS = () => Math.floor(Date.now() / 1000);

/**
 * token() - an HS256 token for @sub with @roles (omitted when undefined) valid for @ttlS
 * seconds, signed with @secret; @extra claims are merged last (undefined values drop a claim).
 */
export function token(sub, { roles, ttlS = 600, secret = TEST_SECRET, extra = {}, alg } = {}) {
	const claims = { sub, exp: nowS() + ttlS, iat: nowS() };
	if (roles !== undefined)
		claims.roles = roles;
	for (const [k, v] of Object.entries(extra)) {
		if (v === undefined)
			delete claims[k];
		else
			claims[k] = v;
	}
	return signJwt(claims, secret, alg ? { alg } : {});
}

/** bearer() - the Authorization header object for @tok. */
export const bearer = (tok) => ({ authorization: `Bearer ${tok}` });
