// Connection start, the session event, ping/pong and the response envelope (SPEC 2.1, 2.2).

import assert from 'node:assert/strict';
import { test, before, after, startServer, stopServer, connect, upgradeStatus } from './lib/harness.mjs';

let server;

before(async () => {
	server = await startServer({ label: 'session' });
});

after(async () => {
	await stopServer(server);
});

const isHex = (s, len) => typeof s === 'string' && /^[0-9a-f]+$/.test(s) &&
	(len === undefined || s.length === len);

test('session event is the first frame and carries every field', async () => {
	const before_ms = Date.now();
	const c = await connect(server, { query: { user_id: 'alice' }, session: false });
	const first = await c.next(() => true, 3000);
	assert.equal(first.type, 'event');
	assert.equal(first.event, 'session');
	const d = first.data;
	assert.ok(isHex(d.session_id, 32), `session_id is 32 hex: ${d.session_id}`);
	assert.ok(isHex(d.resume_token) && d.resume_token.length >= 16,
		`resume_token is hex: ${d.resume_token}`);
	assert.equal(d.user_id, 'alice');
	assert.equal(typeof d.server_time, 'number');
	assert.ok(Number.isInteger(d.server_time), 'server_time is whole milliseconds');
	assert.ok(d.server_time >= before_ms - 5000 && d.server_time <= Date.now() + 5000,
		`server_time ${d.server_time} is Unix ms near now`);
	assert.ok(Number.isInteger(d.heartbeat_interval_ms) && d.heartbeat_interval_ms > 0,
		`heartbeat_interval_ms positive integer: ${d.heartbeat_interval_ms}`);
	assert.equal(d.resumed, false);
	await c.nothing(undefined, 100);
	await c.close();
});

test('each connection gets its own session id and resume token', async () => {
	const a = await connect(server, { query: { user_id: 'alice' } });
	const b = await connect(server, { query: { user_id: 'alice' } });
	assert.notEqual(a.session.session_id, b.session.session_id);
	assert.notEqual(a.session.resume_token, b.session.resume_token);
	assert.equal(b.session.user_id, 'alice');
	await a.close();
	await b.close();
});

test('without user_id the user is anon-<connection id>', async () => {
	const a = await connect(server);
	const b = await connect(server);
	assert.match(a.session.user_id, /^anon-.+/);
	assert.match(b.session.user_id, /^anon-.+/);
	assert.notEqual(a.session.user_id, b.session.user_id);
	await a.close();
	await b.close();
});

test('ping is answered with pong echoing timestamp', async () => {
	const c = await connect(server, { query: { user_id: 'pinger' } });
	const t0 = Date.now();
	c.send({ type: 'ping', timestamp: 12345 });
	const pong = await c.next({ type: 'pong' });
	assert.equal(pong.timestamp, 12345);
	assert.equal(typeof pong.server_time, 'number');
	assert.ok(pong.server_time >= t0 - 5000 && pong.server_time <= Date.now() + 5000);
	assert.equal('request_id' in pong, false, 'no request_id when none was sent');
	assert.equal('trace_id' in pong, false, 'no trace_id when none was sent');
	await c.close();
});

test('pong echoes request_id and trace_id', async () => {
	const c = await connect(server, { query: { user_id: 'pinger' } });
	c.send({ type: 'ping', timestamp: 1699267201500, request_id: 'p-1', trace_id: 'trace-xyz' });
	const pong = await c.next({ type: 'pong' });
	assert.equal(pong.timestamp, 1699267201500);
	assert.equal(pong.request_id, 'p-1');
	assert.equal(pong.trace_id, 'trace-xyz');
	await c.close();
});

test('many pings in a row are answered in order', async () => {
	const c = await connect(server, { query: { user_id: 'pinger' } });
	for (let i = 0; i < 20; i++)
		c.send({ type: 'ping', timestamp: i, request_id: `p${i}` });
	for (let i = 0; i < 20; i++) {
		const m = await c.next();
		assert.equal(m.type, 'pong');
		assert.equal(m.timestamp, i);
		assert.equal(m.request_id, `p${i}`);
	}
	await c.close();
});

test('a response carries request_id, trace_id, timestamp and server_time', async () => {
	const c = await connect(server, { query: { user_id: 'env' } });
	const t0 = Date.now();
	const r = await c.ask({ type: 'subscribe', room: 'envelope-room', trace_id: 't-1' });
	assert.equal(r.type, 'response');
	assert.equal(r.success, true);
	assert.equal(r.trace_id, 't-1');
	assert.equal(typeof r.timestamp, 'number');
	assert.equal(typeof r.server_time, 'number');
	assert.ok(r.server_time >= t0 - 5000 && r.server_time <= Date.now() + 5000);
	assert.equal(r.data.room, 'envelope-room');
	assert.equal(r.data.members, 1);
	await c.close();
});

test('a response is sent even without request_id', async () => {
	const c = await connect(server, { query: { user_id: 'env' } });
	c.send({ type: 'subscribe', room: 'no-request-id' });
	const r = await c.next({ type: 'response' });
	assert.equal(r.success, true);
	assert.equal('request_id' in r, false);
	assert.equal(r.data.room, 'no-request-id');
	await c.close();
});

test('get_stats needs role admin', async () => {
	const plain = await connect(server, { query: { user_id: 'pleb' } });
	const r1 = await plain.request('get_stats', {});
	assert.equal(r1.success, false);
	assert.equal(r1.error.code, 'FORBIDDEN');
	assert.equal(typeof r1.error.message, 'string');

	const admin = await connect(server, { query: { user_id: 'root', roles: 'admin,publisher' } });
	const r2 = await admin.request('get_stats');
	assert.equal(r2.success, true, JSON.stringify(r2));
	assert.equal(typeof r2.data.total_connections, 'number');
	assert.ok(r2.data.total_connections >= 2);
	assert.equal(typeof r2.data.connections.accepted_total, 'number');
	assert.equal(typeof r2.data.server, 'object');
	await plain.close();
	await admin.close();
});

test('upgrade on an unknown path is refused with 404', async () => {
	assert.equal(await upgradeStatus(server, { path: '/nope' }), 404);
	assert.equal(await upgradeStatus(server, { path: '/ws/extra' }), 404);
	assert.equal(await upgradeStatus(server, { path: '/healthz' }), 404);
});

test('the connection stays usable after a normal close of another', async () => {
	const a = await connect(server, { query: { user_id: 'a' } });
	const b = await connect(server, { query: { user_id: 'b' } });
	const info = await a.close(1000);
	assert.equal(info.code, 1000);
	b.send({ type: 'ping', timestamp: 1 });
	assert.equal((await b.next({ type: 'pong' })).timestamp, 1);
	await b.close();
});
