// HTTP endpoints: health, stats (and its counters), metrics, broadcast (SPEC 1, 4;
// behaviour.md "HTTP").

import assert from 'node:assert/strict';
import { parseExposition, sample } from './lib/prom.mjs';
import { test, before, after, startServer, stopServer, connect, httpRequest, waitFor } from
	'./lib/harness.mjs';

const TOKEN = 'adm1n-t0ken';
const AUTH = { authorization: `Bearer ${TOKEN}` };
const MAX_BODY = 4096;
const GRACE_MS = 300;

let server;

before(async () => {
	server = await startServer({
		label: 'http',
		env: {
			QUOTECAST_AUTH_ADMIN_TOKEN: TOKEN,
			QUOTECAST_LIMITS_MAX_HTTP_BODY_BYTES: String(MAX_BODY),
		},
	});
});

after(async () => {
	await stopServer(server);
});

const get = (p, headers = {}) => httpRequest(server, 'GET', p, { headers });
const post = (p, body, headers = AUTH) => httpRequest(server, 'POST', p, { headers, body });
const stats = async () => {
	const r = await get('/api/stats', AUTH);
	assert.equal(r.status, 200, r.text);
	return r.json;
};
const user = (id) => connect(server, { query: { user_id: id } });

function assertJsonError(r, status, code) {
	assert.equal(r.status, status, `status: ${r.status} ${r.text}`);
	assert.match(String(r.headers['content-type']), /application\/json/);
	assert.ok(r.json, `JSON body: ${r.text}`);
	assert.equal(r.json.error.code, code, r.text);
	assert.equal(typeof r.json.error.message, 'string');
}

test('GET /healthz answers 200 {"status":"ok"}', async () => {
	const r = await get('/healthz');
	assert.equal(r.status, 200);
	assert.match(String(r.headers['content-type']), /application\/json/);
	assert.deepEqual(r.json, { status: 'ok' });
});

test('GET /readyz answers 200 {"status":"ready"} without a store', async () => {
	const r = await get('/readyz');
	assert.equal(r.status, 200, r.text);
	assert.deepEqual(r.json, { status: 'ready' });
});

test('unknown paths answer 404 JSON NOT_FOUND', async () => {
	for (const p of ['/nope', '/api/nope', '/healthz/extra', '/api/statsx'])
		assertJsonError(await get(p), 404, 'NOT_FOUND');
	assertJsonError(await post('/nope', { a: 1 }), 404, 'NOT_FOUND');
});

test('a wrong method on a known path answers 405', async () => {
	assert.equal((await post('/healthz', {})).status, 405);
	assert.equal((await get('/api/broadcast', AUTH)).status, 405);
	assert.equal((await post('/api/stats', {})).status, 405);
});

test('GET /api/stats needs the admin token', async () => {
	assertJsonError(await get('/api/stats'), 401, 'UNAUTHORIZED');
	assertJsonError(await get('/api/stats', { authorization: 'Bearer wrong' }), 401, 'UNAUTHORIZED');
	assertJsonError(await get('/api/stats', { authorization: TOKEN }), 401, 'UNAUTHORIZED');
	assertJsonError(await get('/api/stats', { authorization: `Bearer ${TOKEN}x` }), 401,
		'UNAUTHORIZED');
	const r = await get('/api/stats', AUTH);
	assert.equal(r.status, 200);
	assert.match(String(r.headers['content-type']), /application\/json/);
});

test('the stats document has every block of SPEC section 4', async () => {
	const s = await stats();
	assert.equal(typeof s.server.version, 'string');
	assert.ok(s.server.version.length > 0);
	assert.equal(typeof s.server.uptime_s, 'number');
	assert.ok(s.server.uptime_s >= 0);
	assert.ok(['libuv', 'poll', 'libev'].includes(s.server.event_loop), s.server.event_loop);
	assert.ok(s.server.rss_bytes > 0, 'rss_bytes is measured');
	for (const k of ['total_connections', 'total_users', 'total_rooms'])
		assert.equal(typeof s[k], 'number', k);
	const blocks = {
		connections: ['accepted_total', 'closed_total', 'rejected_total', 'peak'],
		rooms: ['total_rooms', 'active_rooms', 'total_members', 'total_users', 'rooms_created',
			'rooms_deleted', 'total_join_events', 'total_leave_events'],
		streaming: ['active_streams', 'total_subscribers', 'total_messages', 'total_dropped',
			'total_deduplicated', 'total_conflated'],
		reconnection: ['suspended', 'resumed', 'expired', 'replayed'],
		offline: ['users', 'queued', 'delivered', 'evicted'],
		store: ['pending', 'failed'],
	};
	for (const [block, keys] of Object.entries(blocks)) {
		assert.equal(typeof s[block], 'object', block);
		for (const k of keys)
			assert.equal(typeof s[block][k], 'number', `${block}.${k}`);
	}
	assert.equal(s.store.configured, false);
	assert.equal(s.store.connected, false);
});

test('stats count connections, users and rooms, before and after closes', async () => {
	await waitFor(async () => (await stats()).total_connections === 0,
		{ what: 'no connections left from earlier tests' });
	const base = await stats();
	const room = `stats-room-${process.pid}`;

	const a1 = await user('stats-alice');
	const a2 = await user('stats-alice');
	const b = await user('stats-bob');
	let s = await waitFor(async () => {
		const x = await stats();
		return x.total_connections === base.total_connections + 3 && x;
	}, { what: 'total_connections +3' });
	assert.equal(s.total_users, base.total_users + 2, 'two connections of one user count once');
	assert.equal(s.connections.accepted_total, base.connections.accepted_total + 3);
	assert.ok(s.connections.peak >= 3);
	assert.equal(s.total_rooms, base.total_rooms);

	for (const c of [a1, a2, b])
		await c.subscribe(room);
	s = await stats();
	assert.equal(s.total_rooms, base.total_rooms + 1);
	assert.equal(s.rooms.total_rooms, base.rooms.total_rooms + 1);
	assert.equal(s.rooms.total_join_events, base.rooms.total_join_events + 3);

	await a1.close();
	s = await waitFor(async () => {
		const x = await stats();
		return x.total_connections === base.total_connections + 2 && x;
	}, { what: 'total_connections +2' });
	assert.equal(s.total_users, base.total_users + 2, 'alice still has a connection');
	assert.equal(s.total_rooms, base.total_rooms + 1);

	await a2.close();
	s = await waitFor(async () => {
		const x = await stats();
		return x.total_connections === base.total_connections + 1 && x;
	}, { what: 'total_connections +1' });
	assert.equal(s.total_users, base.total_users + 1);
	assert.equal(s.total_rooms, base.total_rooms + 1, 'bob is still in the room');

	await b.close();
	s = await waitFor(async () => {
		const x = await stats();
		return x.total_connections === base.total_connections && x;
	}, { what: 'total_connections back to the start' });
	assert.equal(s.total_users, base.total_users);
	assert.equal(s.total_rooms, base.total_rooms, 'the room went with its last member');
	assert.equal(s.rooms.total_rooms, base.rooms.total_rooms);
	assert.equal(s.connections.accepted_total, base.connections.accepted_total + 3);
	assert.equal(s.connections.closed_total, base.connections.closed_total + 3);
	assert.equal(s.connections.rejected_total, base.connections.rejected_total);
	assert.ok(s.connections.peak >= base.total_connections + 3, 'peak keeps the high mark');
	assert.equal(s.rooms.total_leave_events, base.rooms.total_leave_events + 3);
});

test('GET /metrics needs the admin token, like /api/stats', async () => {
	assertJsonError(await get('/metrics'), 401, 'UNAUTHORIZED');
	assertJsonError(await get('/metrics', { authorization: 'Bearer wrong' }), 401,
		'UNAUTHORIZED');
	assertJsonError(await get('/metrics', { authorization: TOKEN }), 401, 'UNAUTHORIZED');
	const r = await get('/metrics', AUTH);
	assert.equal(r.status, 200, r.text);
	assert.match(r.text, /^quotecast_connections \d+$/m);
});

test('GET /metrics: Prometheus text (a strict reading), HELP and TYPE for each, live figures',
	async () => {
		const r = await get('/metrics', AUTH);
		assert.equal(r.status, 200, r.text);
		assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
		const fams = parseExposition(r.text);
		for (const name of fams.keys())
			assert.match(name, /^quotecast_/);
		for (const name of ['quotecast_connections', 'quotecast_users', 'quotecast_rooms',
			'quotecast_connections_accepted_total', 'quotecast_connections_closed_total',
			'quotecast_connections_rejected_total', 'quotecast_connections_peak',
			'quotecast_room_joins_total', 'quotecast_uptime_seconds',
			'quotecast_resident_memory_bytes', 'quotecast_build_info',
			'quotecast_publish_to_write_seconds', 'quotecast_store_statement_seconds',
			'quotecast_limit_refusals_total', 'quotecast_store_state'])
			assert.ok(fams.has(name), `${name} present`);
		assert.ok(sample(fams, 'quotecast_resident_memory_bytes') > 0);
		assert.equal(sample(fams, 'quotecast_store_state', { state: 'memory-only' }), 1);
		assert.equal(sample(fams, 'quotecast_limit_refusals_total',
			{ limit: 'limits.max_connections' }), 0);
		assert.equal(fams.get('quotecast_publish_to_write_seconds').type, 'histogram');

		/* the figures are live: a connection shows up */
		const before_n = sample(fams, 'quotecast_connections_accepted_total');
		const c = await user('metrics');
		const r2 = await get('/metrics', AUTH);
		assert.equal(sample(parseExposition(r2.text), 'quotecast_connections_accepted_total'),
			before_n + 1);
		await c.close();
	});

test('POST /api/broadcast reaches the room members with from "system"', async () => {
	const room = `bcast-${process.pid}`;
	const other = `bcast-other-${process.pid}`;
	const m1 = await user('m1');
	const m2 = await user('m2');
	const out = await user('outsider');
	const nobody = await user('nobody');
	await m1.subscribe(room);
	await m2.subscribe(room);
	await out.subscribe(other);

	const content = { headline: 'market closes early', level: 2 };
	const r = await post('/api/broadcast', { room, content });
	assert.equal(r.status, 200, r.text);
	assert.match(String(r.headers['content-type']), /application\/json/);
	assert.equal(r.json.room, room);
	assert.equal(r.json.delivered, 2);
	assert.equal(typeof r.json.message_id, 'string');
	for (const c of [m1, m2]) {
		const ev = await c.next({ type: 'event', event: 'room_message' });
		assert.equal(ev.data.room, room);
		assert.equal(ev.data.from, 'system');
		assert.equal(ev.data.message_type, 'text');
		assert.equal(ev.data.message_id, r.json.message_id);
		assert.deepEqual(ev.data.content, content);
		assert.equal(typeof ev.data.timestamp, 'number');
	}
	await Promise.all([
		out.nothing({ event: 'room_message' }, GRACE_MS),
		nobody.nothing({ event: 'room_message' }, GRACE_MS),
	]);

	const a = await post('/api/broadcast', { room, content: 'alert!', message_type: 'alert' });
	assert.equal(a.status, 200, a.text);
	const ev = await m1.next({ event: 'room_message' });
	assert.equal(ev.data.message_type, 'alert');
	assert.equal(ev.data.content, 'alert!');
	for (const c of [m1, m2, out, nobody])
		await c.close();
});

test('POST /api/broadcast needs the admin token', async () => {
	const room = `bcast-auth-${process.pid}`;
	const m = await user('m');
	await m.subscribe(room);
	assertJsonError(await post('/api/broadcast', { room, content: 'x' }, {}), 401, 'UNAUTHORIZED');
	assertJsonError(await post('/api/broadcast', { room, content: 'x' },
		{ authorization: 'Bearer nope' }), 401, 'UNAUTHORIZED');
	await m.nothing({ event: 'room_message' }, GRACE_MS);
	await m.close();
});

test('POST /api/broadcast rejects bad bodies with 400', async () => {
	const room = `bcast-bad-${process.pid}`;
	const m = await user('m');
	await m.subscribe(room);
	assertJsonError(await post('/api/broadcast', '{"room":'), 400, 'BAD_JSON');
	assertJsonError(await post('/api/broadcast', 'not json at all'), 400, 'BAD_JSON');
	assertJsonError(await post('/api/broadcast', []), 400, 'BAD_REQUEST');
	assertJsonError(await post('/api/broadcast', { content: 'no room' }), 400, 'BAD_REQUEST');
	assertJsonError(await post('/api/broadcast', { room }), 400, 'BAD_REQUEST');
	assertJsonError(await post('/api/broadcast', { room, content: null }), 400, 'BAD_REQUEST');
	assertJsonError(await post('/api/broadcast', { room: 5, content: 'x' }), 400, 'BAD_REQUEST');
	assertJsonError(await post('/api/broadcast', { room, content: 'x', message_type: 'yell' }), 400,
		'BAD_REQUEST');
	await m.nothing({ event: 'room_message' }, GRACE_MS);
	await m.close();
});

test('POST /api/broadcast to an unknown room answers 404 NOT_FOUND', async () => {
	assertJsonError(await post('/api/broadcast', { room: `ghost-${process.pid}`, content: 'x' }),
		404, 'NOT_FOUND');
});

test(`POST /api/broadcast with a body over max_http_body_bytes (${MAX_BODY}) answers 413`,
	async () => {
		const room = `bcast-big-${process.pid}`;
		const m = await user('m');
		await m.subscribe(room);
		const body = JSON.stringify({ room, content: 'y'.repeat(MAX_BODY + 100) });
		assertJsonError(await post('/api/broadcast', body), 413, 'TOO_LARGE');
		await m.nothing({ event: 'room_message' }, GRACE_MS);
		/* a body just under the limit is fine */
		const ok = JSON.stringify({ room, content: 'z'.repeat(MAX_BODY - 200) });
		const r = await post('/api/broadcast', ok);
		assert.equal(r.status, 200, r.text);
		assert.equal((await m.next({ event: 'room_message' })).data.content.length, MAX_BODY - 200);
		/* and the server is still healthy */
		assert.equal((await get('/healthz')).status, 200);
		await m.close();
	});
