// Authentication in auth mode jwt (rooms.md "Authentication"; SPEC 1, 2.2): HS256 tokens from
// ?token= or Authorization: Bearer, the upgrade refused with 401 for every bad token, server
// roles (admin, publisher) taken from the token, and the HTTP admin / publish endpoints
// accepting a JWT with the right role besides the configured static tokens.

import assert from 'node:assert/strict';
import {
	test, before, after, stopServer, connect, openWs, httpRequest, getStats, waitFor,
} from './lib/harness.mjs';
import { startOwnServer } from './lib/ownserver.mjs';
import { TEST_SECRET, OTHER_SECRET, b64url, signJwt, token, nowS, bearer } from './lib/jwt.mjs';
import { uniqueSymbol, tick, subscribeStream, nextTick, anyStreamData } from './lib/streams.mjs';

const ADMIN_TOKEN = 'static-adm1n-t0ken';
const PUBLISH_TOKEN = 'static-pub-t0ken';
const GRACE_MS = 250;

let server; /* jwt mode, no static tokens */
let tokSrv; /* jwt mode with auth.admin_token and auth.publish_token */

const jwtEnv = {
	QUOTECAST_AUTH_MODE: 'jwt',
	QUOTECAST_AUTH_JWT_SECRET: TEST_SECRET,
	QUOTECAST_LIMITS_RATE_PER_S: '1000',
	QUOTECAST_LIMITS_RATE_BURST: '5000',
	QUOTECAST_LIMITS_MAX_BAD_MESSAGES: '1000',
};

before(async () => {
	assert.equal(Buffer.byteLength(TEST_SECRET), 40);
	[server, tokSrv] = await Promise.all([
		startOwnServer({ label: 'auth-jwt', env: jwtEnv }),
		startOwnServer({
			label: 'auth-jwt-tokens',
			env: {
				...jwtEnv,
				QUOTECAST_AUTH_ADMIN_TOKEN: ADMIN_TOKEN,
				QUOTECAST_AUTH_PUBLISH_TOKEN: PUBLISH_TOKEN,
			},
		}),
	]);
});

after(async () => {
	const res = await Promise.allSettled([server, tokSrv].map((s) => stopServer(s)));
	const failed = res.find((r) => r.status === 'rejected');
	if (failed)
		throw failed.reason;
});

const ADMIN_JWT = () => token('ops-admin', { roles: ['admin'] });
const PUB_JWT = () => token('feeder', { roles: ['publisher'] });
const FORGED_ADMIN = () => token('u', { roles: ['admin'], secret: OTHER_SECRET });
const stats = (srv = server) => getStats(srv, ADMIN_JWT());

/** A connection authenticated by ?token= (extra query keys merged in). */
const withToken = (srv, tok, query = {}) => connect(srv, { query: { token: tok, ...query } });
const as = (sub, roles) => withToken(server, token(sub, { roles }));

let roomSeq = 0;
const uniqueRoom = (p = 'auth') => `${p}-${process.pid}-${++roomSeq}`;

function assertUnauthorizedBody(r, what) {
	assert.equal(r.status, 401, `${what}: status ${r.status} ${r.body ?? r.text}`);
	let body = r.json;
	if (body === undefined) {
		try {
			body = JSON.parse(r.body);
		} catch {
			assert.fail(`${what}: 401 body is not JSON: ${r.body}`);
		}
	}
	assert.equal(body?.error?.code, 'UNAUTHORIZED', `${what}: ${JSON.stringify(body)}`);
	assert.equal(typeof body.error.message, 'string', what);
}

/* ---------------------------------------------------------------- accepted tokens */

test('?token=: user_id is the sub; ?user_id= and ?roles= are ignored', async () => {
	const c = await withToken(server, token('alice'), { user_id: 'mallory', roles: 'admin' });
	assert.equal(c.session.user_id, 'alice');
	assert.equal(c.session.resumed, false);
	/* ?roles=admin did not make it an admin */
	const st = await c.request('get_stats');
	assert.equal(st.success, false, JSON.stringify(st));
	assert.equal(st.error.code, 'FORBIDDEN');
	/* the identity is the sub everywhere, e.g. as the sender of a room message */
	const room = uniqueRoom();
	await c.subscribe(room);
	const r = await c.request('send_message', { room, content: 'hi' });
	assert.equal(r.success, true, JSON.stringify(r));
	const ev = await c.next({ type: 'event', event: 'room_message', data: { room } });
	assert.equal(ev.data.from, 'alice');
	await c.close();

	/* sub at the 64-byte limit, multi-byte characters included */
	const long = '\u00e9'.repeat(10) + 'x'.repeat(44);
	assert.equal(Buffer.byteLength(long), 64);
	const l = await withToken(server, token(long));
	assert.equal(l.session.user_id, long);
	await l.close();
});

test('a valid token in Authorization: Bearer is accepted the same way', async () => {
	const c = await connect(server, {
		query: { user_id: 'mallory' },
		headers: bearer(token('bob', { roles: ['admin'] })),
	});
	assert.equal(c.session.user_id, 'bob');
	const st = await c.request('get_stats');
	assert.equal(st.success, true, JSON.stringify(st));
	assert.equal(typeof st.data.connections.accepted_total, 'number');
	await c.close();

	/* two connections of the same sub are the same user */
	const t = token('carol');
	const c1 = await withToken(server, t);
	const c2 = await connect(server, { headers: bearer(t) });
	assert.equal(c1.session.user_id, 'carol');
	assert.equal(c2.session.user_id, 'carol');
	assert.notEqual(c1.session.session_id, c2.session.session_id);
	await c1.close();
	await c2.close();
});

/* ---------------------------------------------------------------- refused tokens */

test('each bad or missing token: upgrade refused with 401, counted in rejected_total', async () => {
	const now = nowS();
	const good = token('alice');
	const [gh, , gs] = good.split('.');
	const admClaims = { sub: 'alice', exp: now + 600, roles: ['admin'] };
	const cases = [
		['no token at all', {}],
		['only ?user_id=', { query: { user_id: 'alice' } }],
		['only ?user_id= and ?roles=admin',
			{ query: { user_id: 'alice', roles: 'admin' } }],
		['empty ?token=', { query: { token: '' } }],
		['malformed: one word', { query: { token: 'garbage' } }],
		['malformed: two parts',
			{ query: { token: `${gh}.${b64url({ sub: 'a' })}` } }],
		['malformed: a.b.c', { query: { token: 'a.b.c' } }],
		['malformed: header not JSON', { query: {
			token: `${b64url('not json')}.${b64url(admClaims)}.${gs}`,
		} }],
		['malformed: payload not JSON', { query: {
			token: `${gh}.${b64url('[1,2')}.${gs}` } }],
		['malformed: four parts', { query: { token: `${good}.x` } }],
		['malformed Bearer header',
			{ headers: { authorization: 'Bearer garbage' } }],
		['Basic scheme', { headers: { authorization:
			`Basic ${Buffer.from('alice:pw').toString('base64')}` } }],
		['wrong signature (other secret)', { query: {
			token: token('alice', { secret: OTHER_SECRET }) } }],
		['wrong signature in the header', { headers: bearer(
			token('alice', { roles: ['admin'], secret: OTHER_SECRET })) }],
		['tampered payload (roles added, old signature)', { query: {
			token: `${gh}.${b64url(admClaims)}.${gs}` } }],
		['signature removed', { query: { token: `${gh}.${good.split('.')[1]}.` } }],
		['alg none, unsigned', { query: { token: signJwt(admClaims, TEST_SECRET,
			{ alg: 'none' }) } }],
		['alg none, with an HS256 signature', { query: { token: signJwt(admClaims,
			TEST_SECRET, { header: { alg: 'none' } }) } }],
		['HS512 with the right secret', { query: { token: token('alice',
			{ alg: 'HS512' }) } }],
		['HS384 with the right secret', { query: { token: token('alice',
			{ alg: 'HS384' }) } }],
		['expired a minute ago',
			{ query: { token: token('alice', { ttlS: -60 }) } }],
		['expired, in the header',
			{ headers: bearer(token('alice', { ttlS: -60 })) }],
		['no exp',
			{ query: { token: token('alice', { extra: { exp: undefined } }) } }],
		['exp as a string', { query: { token: token('alice',
			{ extra: { exp: String(now + 600) } }) } }],
		['no sub',
			{ query: { token: token('alice', { extra: { sub: undefined } }) } }],
		['empty sub', { query: { token: token('') } }],
		['sub of 65 bytes', { query: { token: token('s'.repeat(65)) } }],
		['sub not a string', { query: { token: token(42) } }],
	];
	const s0 = await stats();
	for (const [what, opts] of cases) {
		const r = await openWs(server, opts);
		if (r.client) {
			r.client.terminate();
			assert.fail(`${what}: the upgrade was accepted`);
		}
		assertUnauthorizedBody(r, what);
	}
	const s1 = await stats();
	assert.equal(s1.connections.rejected_total - s0.connections.rejected_total,
		cases.length, 'one rejected_total per refused upgrade');
	assert.equal(s1.connections.accepted_total, s0.connections.accepted_total,
		'no refused upgrade was accepted');
	/* and a good token still works afterwards */
	const c = await withToken(server, good);
	assert.equal(c.session.user_id, 'alice');
	await c.close();
});

test('roles that are not an array of strings grant nothing', async () => {
	for (const roles of ['admin', { admin: true }, [['admin']], 'admin,publisher']) {
		const r = await openWs(server, { query: { token: token('odd', { roles }) } });
		if (r.status !== undefined) {
			/* refusing the token as malformed is fine too */
			assertUnauthorizedBody(r, `roles ${JSON.stringify(roles)}`);
			continue;
		}
		const c = r.client;
		await c.next({ type: 'event', event: 'session' });
		const st = await c.request('get_stats');
		assert.equal(st.error?.code, 'FORBIDDEN', `roles ${JSON.stringify(roles)}: ` +
			JSON.stringify(st));
		await c.close();
	}
});

test('the static admin token is not a /ws token in jwt mode', async () => {
	const r = await openWs(tokSrv, { query: { token: ADMIN_TOKEN } });
	if (r.client)
		r.client.terminate();
	assertUnauthorizedBody(r, '?token=<admin_token>');
	const h = await openWs(tokSrv, { headers: bearer(ADMIN_TOKEN) });
	if (h.client)
		h.client.terminate();
	assertUnauthorizedBody(h, 'Bearer <admin_token>');
});

/* ---------------------------------------------------------------- roles over /ws */

test('get_stats needs role admin in the token', async () => {
	for (const roles of [['admin'], ['reader', 'admin'], ['admin', 'publisher']]) {
		const c = await as('boss', roles);
		const r = await c.request('get_stats');
		assert.equal(r.success, true, `${JSON.stringify(roles)}: ${JSON.stringify(r)}`);
		assert.equal(typeof r.data.rooms, 'object');
		await c.close();
	}
	for (const roles of [undefined, [], ['publisher'], ['Admin'], ['ADMIN'], [' admin'],
		['administrator'], ['moderator', 'owner']]) {
		const c = await as('pleb', roles);
		const r = await c.request('get_stats');
		assert.equal(r.success, false, `${JSON.stringify(roles)}: ${JSON.stringify(r)}`);
		assert.equal(r.error.code, 'FORBIDDEN', JSON.stringify(roles));
		await c.close();
	}
});

test('publish_market_data needs role publisher in the token', async () => {
	const sym = uniqueSymbol('AUTH');
	const sub = await as('watcher');
	await subscribeStream(sub, { symbol: sym, snapshot: false });
	for (const roles of [undefined, ['admin'], ['Publisher'], ['reader']]) {
		const c = await as('not-a-feeder', roles);
		const r = await c.request('publish_market_data', tick(sym, { price: 1 }));
		assert.equal(r.success, false, `${JSON.stringify(roles)}: ${JSON.stringify(r)}`);
		assert.equal(r.error.code, 'FORBIDDEN', JSON.stringify(roles));
		await c.close();
	}
	await sub.nothing(anyStreamData, GRACE_MS);

	const p = await as('feeder', ['publisher']);
	const r = await p.request('publish_market_data', tick(sym, { price: 2 }));
	assert.equal(r.success, true, JSON.stringify(r));
	assert.deepEqual(r.data, { accepted: 1, duplicates: 0, stale: 0 });
	const t = await nextTick(sub, sym);
	assert.deepEqual(t.data, { price: 2 });
	assert.equal(t.seq, 1);
	await p.close();

	const both = await as('feeder2', ['admin', 'publisher']);
	const r2 = await both.request('publish_market_data', tick(sym, { price: 3 }));
	assert.equal(r2.success, true, JSON.stringify(r2));
	assert.equal((await nextTick(sub, sym)).seq, 2);
	await both.close();
	await sub.close();
});

/* ---------------------------------------------------------------- HTTP endpoints */

const get = (srv, p, headers = {}) => httpRequest(srv, 'GET', p, { headers });
const post = (srv, p, body, headers = {}) => httpRequest(srv, 'POST', p, { headers, body });

test('jwt mode, no static token: /api/stats takes only a valid JWT with role admin', async () => {
	const refused = [
		['no Authorization', {}],
		['JWT without roles', bearer(token('u'))],
		['JWT with role publisher', bearer(PUB_JWT())],
		['JWT role Admin (case)', bearer(token('u', { roles: ['Admin'] }))],
		['forged admin JWT', bearer(FORGED_ADMIN())],
		['expired admin JWT', bearer(token('u', { roles: ['admin'], ttlS: -60 }))],
		['unsigned admin JWT', bearer(signJwt(
			{ sub: 'u', exp: nowS() + 600, roles: ['admin'] }, TEST_SECRET,
			{ alg: 'none' }))],
		['HS512 admin JWT', bearer(token('u', { roles: ['admin'], alg: 'HS512' }))],
		['admin JWT without the Bearer scheme', { authorization: ADMIN_JWT() }],
		['some static token', bearer(ADMIN_TOKEN)],
	];
	for (const [what, headers] of refused)
		assertUnauthorizedBody(await get(server, '/api/stats', headers), what);
	const ok = await get(server, '/api/stats', bearer(ADMIN_JWT()));
	assert.equal(ok.status, 200, ok.text);
	assert.equal(typeof ok.json.connections.rejected_total, 'number');
	/* /metrics exposes the same figures: the same rule */
	for (const [what, headers] of refused)
		assertUnauthorizedBody(await get(server, '/metrics', headers), `/metrics: ${what}`);
	assert.equal((await get(server, '/metrics', bearer(ADMIN_JWT()))).status, 200);
});

test('jwt mode, no static token: /api/broadcast takes only a JWT with role admin', async () => {
	const room = uniqueRoom('bcast');
	const m = await as('listener');
	await m.subscribe(room);
	const body = { room, content: 'from ops' };
	for (const [what, headers] of [
		['no Authorization', {}],
		['JWT without roles', bearer(token('u'))],
		['JWT with role publisher', bearer(PUB_JWT())],
		['forged admin JWT', bearer(FORGED_ADMIN())],
	])
		assertUnauthorizedBody(await post(server, '/api/broadcast', body, headers), what);
	await m.nothing({ event: 'room_message' }, GRACE_MS);

	const r = await post(server, '/api/broadcast', body, bearer(ADMIN_JWT()));
	assert.equal(r.status, 200, r.text);
	assert.equal(r.json.delivered, 1);
	const ev = await m.next({ type: 'event', event: 'room_message', data: { room } });
	assert.equal(ev.data.from, 'system');
	assert.equal(ev.data.content, 'from ops');
	await m.close();
});

test('jwt mode, no static token: /api/publish takes only a JWT with role publisher', async () => {
	const sym = uniqueSymbol('HTTPJ');
	for (const [what, headers] of [
		['no Authorization', {}],
		['JWT without roles', bearer(token('u'))],
		['JWT with role admin', bearer(ADMIN_JWT())],
		['forged publisher JWT', bearer(token('u', { roles: ['publisher'],
			secret: OTHER_SECRET }))],
		['expired publisher JWT', bearer(token('u', { roles: ['publisher'], ttlS: -5 }))],
	])
		assertUnauthorizedBody(
			await post(server, '/api/publish', tick(sym, { p: 1 }), headers), what);
	const r = await post(server, '/api/publish', tick(sym, { p: 2 }), bearer(PUB_JWT()));
	assert.equal(r.status, 200, r.text);
	assert.deepEqual(r.json, { accepted: 1, duplicates: 0, stale: 0 });
	/* the refused ones applied nothing: the first accepted tick is seq 1 */
	const c = await as('reader');
	const md = await c.request('get_market_data', { symbol: sym });
	assert.equal(md.success, true, JSON.stringify(md));
	assert.equal(md.data.seq, 1);
	await c.close();
});

test('jwt mode with static tokens: the admin token and an admin JWT both work', async () => {
	const st = await get(tokSrv, '/api/stats', bearer(ADMIN_TOKEN));
	assert.equal(st.status, 200, st.text);
	const sj = await get(tokSrv, '/api/stats', bearer(ADMIN_JWT()));
	assert.equal(sj.status, 200, sj.text);
	for (const [what, headers] of [
		['no Authorization', {}],
		['wrong static token', bearer(`${ADMIN_TOKEN}x`)],
		['the publish token', bearer(PUBLISH_TOKEN)],
		['JWT without roles', bearer(token('u'))],
		['forged admin JWT', bearer(FORGED_ADMIN())],
	])
		assertUnauthorizedBody(await get(tokSrv, '/api/stats', headers), what);

	const room = uniqueRoom('bcast-tok');
	const m = await withToken(tokSrv, token('listener'));
	await m.subscribe(room);
	for (const [what, headers] of [
		['static admin token', bearer(ADMIN_TOKEN)],
		['admin JWT', bearer(ADMIN_JWT())],
	]) {
		const r = await post(tokSrv, '/api/broadcast', { room, content: what }, headers);
		assert.equal(r.status, 200, `${what}: ${r.text}`);
		assert.equal(r.json.delivered, 1, what);
		const ev = await m.next({ type: 'event', event: 'room_message', data: { room } });
		assert.equal(ev.data.content, what);
		assert.equal(ev.data.from, 'system');
	}
	for (const [what, headers] of [
		['the publish token', bearer(PUBLISH_TOKEN)],
		['forged admin JWT', bearer(FORGED_ADMIN())],
	])
		assertUnauthorizedBody(await post(tokSrv, '/api/broadcast', { room, content: 'no' },
			headers), what);
	await m.nothing({ event: 'room_message' }, GRACE_MS);
	await m.close();
});

test('jwt mode with static tokens: /api/publish takes the publish token or a JWT', async () => {
	const sym = uniqueSymbol('TOKP');
	for (const [what, headers] of [
		['no Authorization', {}],
		['the admin token', bearer(ADMIN_TOKEN)],
		['admin JWT', bearer(ADMIN_JWT())],
		['wrong publish token', bearer(`x${PUBLISH_TOKEN}`)],
	])
		assertUnauthorizedBody(
			await post(tokSrv, '/api/publish', tick(sym, { p: 0 }), headers), what);
	const a = await post(tokSrv, '/api/publish', tick(sym, { p: 1 }),
		bearer(PUBLISH_TOKEN));
	assert.equal(a.status, 200, a.text);
	assert.equal(a.json.accepted, 1);
	const b = await post(tokSrv, '/api/publish', tick(sym, { p: 2 }),
		bearer(PUB_JWT()));
	assert.equal(b.status, 200, b.text);
	assert.equal(b.json.accepted, 1);
	const c = await withToken(tokSrv, token('reader'));
	const md = await c.request('get_market_data', { symbol: sym });
	assert.equal(md.data?.seq, 2, JSON.stringify(md));
	await c.close();
});

test('a connection does not outlive its token: closed with 4001 once exp passes, no resume',
	async () => {
		/* sessions on, so that "not suspended" is a real check */
		const srv = await startOwnServer({ label: 'auth-exp',
			env: { ...jwtEnv, QUOTECAST_SESSIONS_TTL_S: '30' } });
		try {
			const c = await withToken(srv, token('short-lived', { ttlS: 2 }));
			const t0 = Date.now();
			const { code } = await c.closed(6000);
			assert.equal(code, 4001, 'close code 4001 (token expired)');
			assert.ok(Date.now() - t0 >= 500, 'not before the token expired');
			const st = await getStats(srv, ADMIN_JWT());
			assert.equal(st.reconnection.suspended, 0, 'a session closed for its token is not kept');
			/* a connection that drops while its token is valid is kept, for comparison */
			const d = await withToken(srv, token('long-lived', { ttlS: 600 }));
			d.ws.terminate();
			await waitFor(async () => (await getStats(srv, ADMIN_JWT())).reconnection.suspended === 1,
				{ what: 'the valid session suspended' });
		} finally {
			await stopServer(srv);
		}
	});
