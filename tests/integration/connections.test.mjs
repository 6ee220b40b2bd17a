// The lag view (SPEC 1, operations.md "Finding a slow consumer"): GET /api/connections and the
// admin action get_connections list this node's live connections with what each has queued and
// has lost. A subscriber that stops reading (its socket paused: the kernel buffers fill, then
// the server's queue grows past limits.conflate_bytes) comes first under sort=lag with
// queued_bytes > 0 and conflated > 0, while a fast subscriber of the same ticks shows nothing
// lost. Also: the fields and their types, transport (ws, socket.io, publisher), rooms and
// streams counted, limit and the orders by id and age, the admin token as /api/stats checks it,
// 400 naming the parameter for a bad query, and the action (native and Socket.IO) giving the
// same document to role admin and FORBIDDEN to others.

import assert from 'node:assert/strict';
import {
	test, before, after, startServer, stopServer, connect, httpRequest, waitFor, Client, WebSocket,
} from './lib/harness.mjs';
import { uniqueSymbol, tick, publishOk, subscribeStream, isStreamData } from './lib/streams.mjs';
import { sioConnect, closeAllSio } from './lib/sio.mjs';

const MIB = 1024 * 1024;
const ADMIN_TOKEN = 'lag-view-adm1n-t0ken';
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
/* one publish fans out in one pass: conflate_bytes must be above a batch's output (slow.test) */
const CONFLATE_BYTES = 2 * MIB;
const BATCH = 2000;
const MAX_BATCHES = 80;
const PAD = 'x'.repeat(200);

let server;

before(async () => {
	server = await startServer({
		label: 'connections',
		env: {
			QUOTECAST_AUTH_ADMIN_TOKEN: ADMIN_TOKEN,
			QUOTECAST_LIMITS_CONFLATE_BYTES: String(CONFLATE_BYTES),
			QUOTECAST_LIMITS_MAX_SEND_QUEUE_BYTES: String(64 * MIB),
			QUOTECAST_LIMITS_MAX_HTTP_BODY_BYTES: String(16 * MIB),
			QUOTECAST_LIMITS_PUBLISHER_MAX_MESSAGE_BYTES: String(16 * MIB),
		},
	});
});

after(async () => {
	await closeAllSio();
	await stopServer(server);
});

async function lagView(query = '') {
	const r = await httpRequest(server, 'GET', `/api/connections${query}`, { headers: admin });
	assert.equal(r.status, 200, r.text);
	assert.match(r.headers['content-type'], /^application\/json/);
	return r.json;
}

const FIELDS = {
	connection_id: 'number', session_id: 'string', user_id: 'string', transport: 'string',
	queued_bytes: 'number', conflated: 'number', dropped: 'number', rooms: 'number',
	streams: 'number', connected_at: 'number', closing: 'boolean',
};

function checkShape(doc) {
	assert.deepEqual(Object.keys(doc).sort(), ['connections', 'total']);
	assert.ok(Array.isArray(doc.connections));
	assert.ok(Number.isInteger(doc.total) && doc.total >= doc.connections.length);
	for (const c of doc.connections) {
		assert.deepEqual(Object.keys(c).sort(), Object.keys(FIELDS).sort(), JSON.stringify(c));
		for (const [k, type] of Object.entries(FIELDS))
			assert.equal(typeof c[k], type, `${k} of ${JSON.stringify(c)}`);
		for (const k of ['connection_id', 'queued_bytes', 'conflated', 'dropped', 'rooms',
			'streams', 'connected_at'])
			assert.ok(Number.isInteger(c[k]) && c[k] >= 0, `${k} of ${JSON.stringify(c)}`);
		assert.ok(['ws', 'socket.io', 'publisher'].includes(c.transport), c.transport);
		/* Unix milliseconds, as every time the server sends */
		assert.ok(Math.abs(c.connected_at - Date.now()) < 3600e3, JSON.stringify(c));
	}
}

const bySession = (doc, client) =>
	doc.connections.find((c) => c.session_id === client.session.session_id);

/** A connection on the quotecast-publisher subprotocol, with its session event. */
async function publisherConn(userId) {
	const ws = new WebSocket(server.wsUrl('/ws', { user_id: userId, roles: 'publisher' }),
		['quotecast-publisher']);
	const c = new Client(ws, userId);
	const ev = await c.next({ type: 'event', event: 'session' }, 5000);
	c.session = ev.data;
	assert.equal(ws.protocol, 'quotecast-publisher');
	return c;
}

test('a subscriber that stops reading comes first under sort=lag, queued and conflated; ' +
	'fields, transports, counts, limit, orders; the admin action gives the same',
{ timeout: 120000 }, async () => {
	const sym = uniqueSymbol('LAG');
	const other = uniqueSymbol('LAGO');
	const slow = await connect(server, { query: { user_id: 'slow' } });
	const fast = await connect(server, { query: { user_id: 'fast' } });
	const ops = await connect(server, { query: { user_id: 'ops', roles: 'admin' } });
	const pub = await publisherConn('feed');
	const sio = await sioConnect(server, { auth: { user_id: 'sio-user' } });
	const sioSession = await sio.next('session');
	await subscribeStream(slow, { symbol: sym, snapshot: false });
	await subscribeStream(fast, { symbol: sym, snapshot: false });
	await subscribeStream(fast, { symbol: other, snapshot: false });
	assert.equal((await fast.subscribe('lag-room-a')).success, true);
	assert.equal((await fast.subscribe('lag-room-b')).success, true);
	assert.equal((await fast.subscribe('lag-room-c')).success, true);

	/* before any load: everything listed, nothing queued or lost */
	const d0 = await lagView('?sort=id');
	checkShape(d0);
	assert.equal(d0.total, 5);
	assert.equal(d0.connections.length, 5);
	const ids = d0.connections.map((c) => c.connection_id);
	assert.deepEqual(ids, [...ids].sort((a, b) => a - b), 'sort=id: ascending ids');
	const f0 = bySession(d0, fast);
	assert.equal(f0.user_id, 'fast');
	assert.equal(f0.transport, 'ws');
	assert.equal(f0.rooms, 3);
	assert.equal(f0.streams, 2);
	assert.equal(bySession(d0, slow).streams, 1);
	assert.equal(bySession(d0, slow).rooms, 0);
	assert.equal(bySession(d0, pub).transport, 'publisher');
	const s0 = d0.connections.find((c) => c.session_id === sioSession.session_id);
	assert.ok(s0, `the Socket.IO session is listed: ${JSON.stringify(d0)}`);
	assert.equal(s0.transport, 'socket.io');
	assert.equal(s0.user_id, 'sio-user');
	for (const c of d0.connections) {
		assert.equal(c.conflated, 0);
		assert.equal(c.dropped, 0);
	}
	/* the default is sort=id, limit 100 */
	assert.deepEqual((await lagView()).connections.map((c) => c.connection_id), ids);
	/* sort=age: oldest first (slow connected first) */
	const age = (await lagView('?sort=age')).connections;
	for (let i = 1; i < age.length; i++)
		assert.ok(age[i - 1].connected_at <= age[i].connected_at, JSON.stringify(age));
	assert.equal(age[0].session_id, slow.session.session_id);
	/* limit */
	const two = await lagView('?limit=2&sort=id');
	assert.equal(two.connections.length, 2);
	assert.equal(two.total, 5);
	assert.deepEqual(two.connections.map((c) => c.connection_id), ids.slice(0, 2));

	/* now the slow subscriber stops reading while ticks flow to both */
	slow.ws._socket.pause();
	let n = 0;
	let view;
	let queued; /* the first view in which the slow subscriber had bytes queued */
	const startedAt = Date.now();
	for (let b = 0; b < MAX_BATCHES && Date.now() - startedAt < 60000; b++) {
		const ticks = [];
		for (let i = 0; i < BATCH; i++) {
			n++;
			ticks.push(tick(sym, { price: n, n, pad: `${n}:${PAD}` }, { message_id: `lag-${n}` }));
		}
		const r = await publishOk(server, ticks, { timeoutMs: 20000 });
		assert.equal(r.accepted, BATCH, JSON.stringify(r));
		/* the fast subscriber drains every batch before the next one */
		for (let i = 0; i < BATCH; i++)
			await fast.next(isStreamData(sym), 10000);
		view = await lagView('?sort=lag&limit=1');
		checkShape(view);
		assert.equal(view.connections.length, 1, 'limit=1');
		assert.equal(view.total, 5);
		if (!queued && view.connections[0].queued_bytes > 0)
			queued = view;
		if (view.connections[0].conflated > 0)
			break;
	}
	/* once the kernel's buffers are full, the server's queue grows: it comes first */
	assert.ok(queued, `no bytes queued after ${n} ticks`);
	assert.equal(queued.connections[0].session_id, slow.session.session_id,
		`the slow subscriber first: ${JSON.stringify(queued)}`);
	assert.equal(queued.connections[0].user_id, 'slow');
	/*
	 * and past limits.conflate_bytes its ticks are merged: still first (a merge can empty its
	 * queue for a moment, leaving conflated + dropped as the tie-break)
	 */
	const first = view.connections[0];
	assert.equal(first.session_id, slow.session.session_id,
		`the slow subscriber first after ${n} ticks: ${JSON.stringify(view)}`);
	assert.ok(first.conflated > 0, `conflated after ${n} ticks: ${JSON.stringify(first)}`);

	/* the whole list by lag: queued bytes descending; the fast one lost nothing */
	const all = await lagView('?sort=lag&limit=1000');
	checkShape(all);
	assert.equal(all.connections.length, 5);
	assert.equal(all.connections[0].session_id, slow.session.session_id);
	for (let i = 1; i < all.connections.length; i++)
		assert.ok(all.connections[i - 1].queued_bytes >= all.connections[i].queued_bytes,
			JSON.stringify(all));
	const f1 = bySession(all, fast);
	assert.equal(f1.conflated, 0);
	assert.equal(f1.dropped, 0);

	/* the admin action: the same document in data, the slow subscriber first */
	const r = await ops.request('get_connections', { sort: 'lag', limit: 3 });
	assert.equal(r.success, true, JSON.stringify(r));
	checkShape(r.data);
	assert.equal(r.data.connections.length, 3);
	assert.equal(r.data.total, 5);
	assert.equal(r.data.connections[0].session_id, slow.session.session_id);
	assert.ok(r.data.connections[0].conflated >= first.conflated);
	/* over Socket.IO too, for role admin */
	const sioAdmin = await sioConnect(server, { auth: { user_id: 'sio-ops', roles: ['admin'] } });
	const ack = await sioAdmin.ack('request', { action: 'get_connections',
		payload: { sort: 'lag', limit: 1 } });
	assert.equal(ack.success, true, JSON.stringify(ack));
	checkShape(ack.data);
	assert.equal(ack.data.connections[0].session_id, slow.session.session_id);
	assert.equal(ack.data.total, 6);
	sioAdmin.close();

	/* reading again, the queue drains down to the last tick */
	slow.ws._socket.resume();
	for (;;) {
		const ev = await slow.next(isStreamData(sym), 20000);
		if (ev.data.seq >= n)
			break;
	}
	const after = bySession(await lagView('?sort=lag'), slow);
	assert.equal(after.queued_bytes, 0, JSON.stringify(after));
	assert.ok(after.conflated >= first.conflated, 'the count stays');

	/* closed connections leave the list */
	await slow.close();
	await pub.close();
	sio.close();
	await waitFor(async () => !bySession(await lagView(), slow),
		{ timeoutMs: 5000, what: 'the closed connection to leave the list' });
	await fast.close();
	await ops.close();
});

test('the admin token as /api/stats checks it; 400 naming the parameter; the action needs ' +
	'role admin and checks its payload', async () => {
	const plain = await connect(server, { query: { user_id: 'plain' } });
	const ops = await connect(server, { query: { user_id: 'ops2', roles: 'admin' } });
	/* the same refusals as /api/stats */
	for (const headers of [{}, { authorization: 'Bearer wrong-token' },
		{ authorization: ADMIN_TOKEN }, { authorization: `Basic ${ADMIN_TOKEN}` }]) {
		const r = await httpRequest(server, 'GET', '/api/connections?sort=lag', { headers });
		const s = await httpRequest(server, 'GET', '/api/stats', { headers });
		assert.equal(r.status, 401, JSON.stringify(headers));
		assert.equal(r.status, s.status);
		assert.deepEqual(r.json, s.json);
		assert.deepEqual(r.json.error, { code: 'UNAUTHORIZED', message: 'admin token required' });
	}
	/* the token in the query is not read (only Authorization, as for /api/stats) */
	const q = await httpRequest(server, 'GET', `/api/connections?token=${ADMIN_TOKEN}`);
	assert.equal(q.status, 401);
	const post = await httpRequest(server, 'POST', '/api/connections', { headers: admin,
		body: {} });
	assert.equal(post.status, 405);

	const bad = [
		['?sort=queued', 'sort: must be lag, id or age'],
		['?sort=', 'sort: must be lag, id or age'],
		['?sort=LAG', 'sort: must be lag, id or age'],
		['?limit=0', 'limit: must be an integer from 1 to 1000'],
		['?limit=1001', 'limit: must be an integer from 1 to 1000'],
		['?limit=abc', 'limit: must be an integer from 1 to 1000'],
		['?limit=-1', 'limit: must be an integer from 1 to 1000'],
		['?limit=1.5', 'limit: must be an integer from 1 to 1000'],
		['?limit=', 'limit: must be an integer from 1 to 1000'],
		['?sort=lag&sort=id', 'sort: given more than once'],
		['?limit=5&sort=lag&limit=5', 'limit: given more than once'],
		['?order=lag', 'unknown query parameter: only sort and limit are read'],
		[`?sort=${'x'.repeat(300)}`, 'query parameter too long'],
	];
	for (const [query, message] of bad) {
		const r = await httpRequest(server, 'GET', `/api/connections${query}`, { headers: admin });
		assert.equal(r.status, 400, query);
		assert.deepEqual(r.json, { error: { code: 'BAD_REQUEST', message } }, query);
	}
	/* the first test's connections are gone (their close may still be under way) */
	const ok = await waitFor(async () => {
		const v = await lagView('?limit=1000&sort=age');
		return v.total === 2 && v;
	}, { timeoutMs: 5000, what: 'only this test\'s two connections' });
	checkShape(ok);
	assert.deepEqual(ok.connections.map((c) => c.user_id), ['plain', 'ops2']);

	/* the action: role admin, then its payload */
	const f = await plain.request('get_connections', { sort: 'lag' });
	assert.equal(f.success, false);
	assert.deepEqual(f.error, { code: 'FORBIDDEN', message: 'role admin required' });
	for (const [payload, message] of [
		[{ sort: 'fast' }, 'sort: must be lag, id or age'],
		[{ sort: 1 }, 'sort: must be lag, id or age'],
		[{ limit: 0 }, 'limit: must be an integer from 1 to 1000'],
		[{ limit: 1001 }, 'limit: must be an integer from 1 to 1000'],
		[{ limit: '10' }, 'limit: must be an integer from 1 to 1000'],
		[{ limit: 2.5 }, 'limit: must be an integer from 1 to 1000'],
	]) {
		const r = await ops.request('get_connections', payload);
		assert.equal(r.success, false, JSON.stringify(payload));
		assert.deepEqual(r.error, { code: 'BAD_REQUEST', message }, JSON.stringify(payload));
	}
	const d = await ops.request('get_connections');
	assert.equal(d.success, true, JSON.stringify(d));
	checkShape(d.data);
	assert.deepEqual(d.data.connections.map((c) => c.user_id), ['plain', 'ops2']);
	const sioPlain = await sioConnect(server, { auth: { user_id: 'sio-plain' } });
	const sf = await sioPlain.ack('request', { action: 'get_connections' });
	assert.equal(sf.error?.code, 'FORBIDDEN');
	sioPlain.close();
	await plain.close();
	await ops.close();
});
