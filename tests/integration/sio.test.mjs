// Socket.IO over the websocket transport (SPEC 5; protocol.md "Socket.IO"): a real
// socket.io-client against the real binary for the events, acks, rooms, streams shared with
// native /ws clients, heartbeat, disconnect and refusals (polling, EIO version, namespaces,
// auth in modes none and jwt), and a raw WebSocket on /socket.io/ for what socket.io-client
// never sends (malformed packets, silence before CONNECT, unanswered pings).

import assert from 'node:assert/strict';
import {
	test, before, after, startServer, stopServer, connect, openWs, httpRequest, getStats,
	waitFor, sleep, upgradeStatus,
} from './lib/harness.mjs';
import { uniqueSymbol, tick, publishOk, subscribeStream, isStreamData } from
	'./lib/streams.mjs';
import { token, TEST_SECRET, OTHER_SECRET } from './lib/jwt.mjs';
import {
	sioConnect, sioConnectError, rawSio, rawSioConnected, closeAllSio,
} from './lib/sio.mjs';

const MAX_BAD = 5;
const WS_ONLY = "quotecast serves Socket.IO over WebSocket only: use transports: ['websocket']";
const PING_MS = 300;
/* the hub pings from a once-a-second tick: the announced pingTimeout has that second added */
const PING_SLACK_MS = 1000;

let server;     /* auth mode none, default heartbeat */
let pingServer; /* Engine.IO ping interval and timeout of 300 ms */
let jwtServer;  /* auth mode jwt */

before(async () => {
	[server, pingServer, jwtServer] = await Promise.all([
		startServer({
			label: 'sio',
			env: { QUOTECAST_LIMITS_MAX_BAD_MESSAGES: String(MAX_BAD) },
		}),
		startServer({
			label: 'sio-ping',
			env: {
				QUOTECAST_SOCKETIO_PING_INTERVAL_MS: String(PING_MS),
				QUOTECAST_SOCKETIO_PING_TIMEOUT_MS: String(PING_MS),
			},
		}),
		startServer({
			label: 'sio-jwt',
			env: { QUOTECAST_AUTH_MODE: 'jwt', QUOTECAST_AUTH_JWT_SECRET: TEST_SECRET },
		}),
	]);
});

after(async () => {
	await closeAllSio();
	await stopServer(server);
	await stopServer(pingServer);
	await stopServer(jwtServer);
});

const sio = (userId, extra = {}) => sioConnect(server, { auth: { user_id: userId, ...extra } });
const native = (userId) => connect(server, { query: { user_id: userId } });
let roomSeq = 0;
const uniqueRoom = (p) => `${p}-${process.pid}-${++roomSeq}`;
const connections = async (s) => (await getStats(s)).total_connections;

test('connect: 40 answer, session event with the auth user, counted in /api/stats until ' +
	'disconnect', async () => {
	const before0 = await getStats(server);
	const a = await sio('sio-alice');
	const s = await a.next('session');
	assert.equal(s.user_id, 'sio-alice');
	assert.match(s.session_id, /^[0-9a-f]{32}$/);
	assert.equal(a.socket.id, s.session_id, 'the Socket.IO sid is the session id');
	assert.equal(s.resumed, false);
	assert.equal(typeof s.server_time, 'number');

	const st = await getStats(server);
	assert.equal(st.total_connections, before0.total_connections + 1);
	assert.equal(st.connections.accepted_total, before0.connections.accepted_total + 1);

	a.close();
	await waitFor(async () => (await connections(server)) === before0.total_connections,
		{ what: 'the Socket.IO connection gone from /api/stats' });
	const st2 = await getStats(server);
	assert.equal(st2.connections.closed_total, before0.connections.closed_total + 1);
});

test('an anonymous CONNECT ("40" without auth) gets an anon- user', async () => {
	const a = await sioConnect(server, {});
	const s = await a.next('session');
	assert.match(s.user_id, /^anon-[0-9a-f]{12}$/);
	a.close();
});

test('ping event answered by a pong event', async () => {
	const a = await sio('sio-pinger');
	await a.next('session');
	a.emit('ping', { timestamp: 1234, request_id: 'p1', trace_id: 't1' });
	const p = await a.next('pong');
	assert.equal(p.type, 'pong');
	assert.equal(p.timestamp, 1234);
	assert.equal(p.request_id, 'p1');
	assert.equal(p.trace_id, 't1');
	assert.equal(typeof p.server_time, 'number');
	a.emit('ping');
	assert.equal((await a.next('pong')).timestamp, null);
	a.close();
});

test('subscribe with an ack, and without (a response event)', async () => {
	const room = uniqueRoom('sio-sub');
	const room2 = uniqueRoom('sio-sub2');
	const a = await sio('sio-sub');
	await a.next('session');

	const r = await a.ack('subscribe', { room });
	assert.equal(r.type, 'response');
	assert.equal(r.success, true, JSON.stringify(r));
	assert.equal(r.data.room, room);
	assert.equal(r.data.members, 1);

	a.emit('subscribe', { room: room2, request_id: 's2' });
	const ev = await a.next('response', { request_id: 's2' });
	assert.equal(ev.success, true, JSON.stringify(ev));
	assert.equal(ev.data.room, room2);

	/* a plain room-name string works too */
	const u = await a.ack('unsubscribe', room2);
	assert.equal(u.success, true, JSON.stringify(u));
	a.close();
});

test('room messages: from a native /ws client and from POST /api/broadcast, as ' +
	'room_message; and from Socket.IO to /ws', async () => {
	const room = uniqueRoom('sio-room');
	const a = await sio('sio-carol');
	await a.next('session');
	assert.equal((await a.ack('subscribe', { room })).success, true);
	const n = await native('ws-bob');
	await n.subscribe(room);

	const s = await n.request('send_message', { room, content: 'hi from ws' });
	assert.equal(s.success, true, JSON.stringify(s));
	const m = await a.next('room_message', { room });
	assert.equal(m.from, 'ws-bob');
	assert.equal(m.content, 'hi from ws');
	assert.equal(m.message_type, 'text');
	assert.equal(typeof m.message_id, 'string');
	await n.next({ type: 'event', event: 'room_message' }); /* the sender is a member too */

	const content = { headline: 'halt', level: 2 };
	const b = await httpRequest(server, 'POST', '/api/broadcast', { body: { room, content } });
	assert.equal(b.status, 200, b.text);
	const m2 = await a.next('room_message', { from: 'system' });
	assert.deepEqual(m2.content, content);
	assert.equal(m2.room, room);

	const r = await a.ack('request', { action: 'send_message',
		payload: { room, content: 'hi from socket.io' } });
	assert.equal(r.success, true, JSON.stringify(r));
	const nm = await n.next({ type: 'event', event: 'room_message',
		data: { from: 'sio-carol' } });
	assert.equal(nm.data.content, 'hi from socket.io');
	a.close();
	await n.close();
});

test('market streams: subscribe_market_stream with fields; Socket.IO and /ws subscribers ' +
	'with the same fields get the same stream_data', async () => {
	const sym = uniqueSymbol('SIO');
	const a = await sio('sio-trader');
	await a.next('session');
	const n = await native('ws-trader');

	const r = await a.ack('subscribe_market_stream', { symbol: sym, fields: ['price', 'volume'] });
	assert.equal(r.success, true, JSON.stringify(r));
	assert.deepEqual(r.data.subscribed, [sym]);
	await subscribeStream(n, { symbol: sym, fields: ['price', 'volume'] });

	await publishOk(server, tick(sym, { price: 10.5, volume: 100, bid: 10.4 },
		{ message_id: 'sio-1', timestamp: 1699267202000 }));
	const ds = await a.next('stream_data', { symbol: sym });
	const dn = (await n.next(isStreamData(sym))).data;
	assert.match(ds.epoch, /^[0-9a-f]{12}$/, 'the stream\'s epoch (SPEC 2.9)');
	assert.deepEqual(ds, { symbol: sym, data: { price: 10.5, volume: 100 },
		timestamp: 1699267202000, seq: 1, message_id: 'sio-1', epoch: ds.epoch });
	assert.deepEqual(ds, dn);

	/* a tick with none of the fields reaches neither */
	await publishOk(server, tick(sym, { bid: 10.3 }));
	await publishOk(server, tick(sym, { price: 11 }));
	const ds3 = await a.next('stream_data', { symbol: sym });
	assert.equal(ds3.seq, 3);
	assert.deepEqual(ds3.data, { price: 11 });
	assert.equal((await n.next(isStreamData(sym))).data.seq, 3);

	/* stream_filter_update is update_stream_filter */
	const f = await a.ack('stream_filter_update', { symbol: sym, fields: ['bid'] });
	assert.equal(f.success, true, JSON.stringify(f));
	await publishOk(server, tick(sym, { price: 12, bid: 11.9 }));
	assert.deepEqual((await a.next('stream_data', { symbol: sym })).data, { bid: 11.9 });
	assert.deepEqual((await n.next(isStreamData(sym))).data.data, { price: 12 });

	/* request get_market_data through the ack */
	const g = await a.ack('request', { action: 'get_market_data', payload: { symbol: sym } });
	assert.equal(g.success, true, JSON.stringify(g));
	assert.equal(g.data.symbol, sym);
	assert.deepEqual(g.data.data, { price: 12, volume: 100, bid: 11.9 });
	assert.equal(g.data.seq, 4);

	const u = await a.ack('unsubscribe_market_stream', { symbol: sym });
	assert.equal(u.success, true, JSON.stringify(u));
	await publishOk(server, tick(sym, { price: 13 }));
	await n.next(isStreamData(sym)); /* native subscriber: still there */
	await a.nothing('stream_data', 200);
	a.close();
	await n.close();
});

test('errors come back through the ack, as a response event, or as an error event', async () => {
	const a = await sio('sio-errors');
	await a.next('session');

	const u = await a.ack('request', { action: 'no_such_action' });
	assert.equal(u.type, 'response');
	assert.equal(u.success, false);
	assert.equal(u.error.code, 'UNKNOWN_ACTION');

	const s = await a.ack('subscribe', {});
	assert.equal(s.success, false);
	assert.equal(s.error.code, 'BAD_REQUEST');

	const ev = await a.ack('no_such_event', {});
	assert.equal(ev.success, false);
	assert.equal(ev.error.code, 'UNKNOWN_ACTION');

	const g = await a.ack('request', { action: 'get_stats' });
	assert.equal(g.error?.code, 'FORBIDDEN', 'no admin role');

	/* without an ack: a response event carrying the request_id */
	a.emit('request', { action: 'nope', request_id: 'e1' });
	const r = await a.next('response', { request_id: 'e1' });
	assert.equal(r.error.code, 'UNKNOWN_ACTION');

	/* neither an ack nor a request_id: an error event */
	a.emit('subscribe', 42);
	const e = await a.next('error');
	assert.equal(e.type, 'error');
	assert.equal(e.error.code, 'BAD_REQUEST');
	assert.ok(a.socket.connected);
	a.close();
});

test('auth mode none: auth.roles as a string or an array; bad user_id or roles refused',
	async () => {
		const adm = await sio('sio-root', { roles: ['admin', 'bogus'] });
		await adm.next('session');
		const st = await adm.ack('request', { action: 'get_stats' });
		assert.equal(st.success, true, JSON.stringify(st));
		assert.equal(typeof st.data.total_connections, 'number');
		adm.close();

		const adm2 = await sio('sio-root2', { roles: 'publisher,admin' });
		assert.equal((await adm2.ack('request', { action: 'get_stats' })).success, true);
		adm2.close();

		const pub = await sio('sio-pub', { roles: 'publisher' });
		assert.equal((await pub.ack('request', { action: 'get_stats' })).error?.code,
			'FORBIDDEN');
		pub.close();

		const rej0 = (await getStats(server)).connections.rejected_total;
		const e1 = await sioConnectError(server, { auth: { user_id: '' } });
		assert.equal(e1.message, 'unauthorized: user_id must be a string of 1 to 64 bytes');
		const e2 = await sioConnectError(server, { auth: { user_id: 'x'.repeat(65) } });
		assert.match(e2.message, /^unauthorized: user_id/);
		const e3 = await sioConnectError(server, { auth: { user_id: 'u', roles: 7 } });
		assert.equal(e3.message,
			'unauthorized: roles must be a comma-separated string or an array of strings');
		const st2 = await getStats(server);
		assert.equal(st2.connections.rejected_total, rej0 + 3);

		/* 64 bytes is fine */
		const long = await sio('y'.repeat(64));
		assert.equal((await long.next('session')).user_id, 'y'.repeat(64));
		long.close();
	});

test('server pings (300 ms): socket.io-client answers them and stays connected', async () => {
	const c = await sioConnect(pingServer, { auth: { user_id: 'sio-alive' } });
	await c.next('session');
	let pings = 0;
	c.socket.io.on('ping', () => pings++);
	await sleep(2000);
	assert.ok(c.socket.connected, c.describe());
	assert.ok(pings >= 1, `${pings} pings in 2 s`);
	assert.equal(await connections(pingServer), 1);
	/* still served after the pings */
	const p = await c.ack('request', { action: 'get_market_data', payload: { symbol: 'none' } });
	assert.equal(p.error?.code, 'NOT_FOUND');
	c.close();
	await waitFor(async () => (await connections(pingServer)) === 0,
		{ what: 'connection gone' });
});

test('the Engine.IO open packet; a raw client that answers pings stays, one that does not ' +
	'is closed', async () => {
	const { c: good, open } = await rawSioConnected(pingServer, { user_id: 'raw-ponger' });
	assert.match(open.sid, /^[0-9a-f]{20}$/);
	assert.deepEqual(open.upgrades, []);
	assert.equal(open.pingInterval, PING_MS);
	assert.equal(open.pingTimeout, PING_MS + PING_SLACK_MS);
	assert.equal(open.maxPayload, 65536);
	const pong = () => good.next('2', 2500).then(() => good.send('3'));

	const { c: silent } = await rawSioConnected(pingServer, { user_id: 'raw-silent' });
	await silent.next('2', 2500);
	const pingAt = Date.now();
	const closing = silent.closed(4000);
	await pong();
	const info = await closing;
	assert.equal(info.code, 1000);
	const after = silent.closedAt - pingAt;
	assert.ok(after >= PING_MS - 50 && after <= PING_MS + PING_SLACK_MS + 1500,
		`closed ${after} ms after the unanswered ping`);

	for (let i = 0; i < 2; i++)
		await pong();
	assert.ok(good.isOpen, good.describe());
	good.close();
});

test('disconnect: socket.disconnect(), a raw 41 or a raw 1 close the connection with 1000',
	async () => {
		const base = await connections(server);
		const { c: r41 } = await rawSioConnected(server, { user_id: 'raw-41' });
		const { c: r1 } = await rawSioConnected(server, { user_id: 'raw-1' });
		assert.equal(await connections(server), base + 2);
		r41.send('41');
		r1.send('1');
		assert.equal((await r41.closed()).code, 1000);
		assert.equal((await r1.closed()).code, 1000);
		await waitFor(async () => (await connections(server)) === base,
			{ what: 'both connections gone' });
	});

test('long-polling is refused with 400 and the message; EIO other than 4 too', async () => {
	for (const p of ['/socket.io/?EIO=4&transport=polling', '/socket.io/',
		'/socket.io/?EIO=4&transport=polling&sid=abc', '/socket.io']) {
		const r = await httpRequest(server, 'GET', p);
		assert.equal(r.status, 400, `${p}: ${r.text}`);
		assert.equal(r.json?.code, 3, r.text);
		assert.equal(r.json.message, WS_ONLY);
		assert.equal(r.json.error?.code, 'BAD_REQUEST');
	}
	const post = await httpRequest(server, 'POST', '/socket.io/?EIO=4&transport=polling',
		{ body: '40', headers: { 'content-type': 'text/plain' } });
	assert.equal(post.status, 400);
	assert.equal(post.json?.message, WS_ONLY);

	const rej0 = (await getStats(server)).connections.rejected_total;
	const up = await openWs(server, { path: '/socket.io/',
		query: { EIO: 4, transport: 'polling' } });
	assert.equal(up.status, 400);
	assert.equal(JSON.parse(up.body).message, WS_ONLY);
	for (const query of [{ EIO: 3, transport: 'websocket' }, { transport: 'websocket' }]) {
		const v = await openWs(server, { path: '/socket.io/', query });
		assert.equal(v.status, 400, JSON.stringify(v));
		const j = JSON.parse(v.body);
		assert.equal(j.code, 5);
		assert.match(j.message, /EIO=4/);
	}
	const nf = await openWs(server, { path: '/socket.io/x', query: { EIO: 4,
		transport: 'websocket' } });
	assert.equal(nf.status, 404);
	/* without the trailing slash */
	const ok = await openWs(server, { path: '/socket.io', query: { EIO: 4,
		transport: 'websocket' } });
	assert.ok(ok.client, JSON.stringify(ok));
	ok.client.terminate();
	assert.equal((await getStats(server)).connections.rejected_total, rej0 + 4);

	const e = await sioConnectError(server, { transports: ['polling'],
		auth: { user_id: 'poller' } });
	assert.ok(e instanceof Error);
	assert.match(e.message, /poll/i);
});

test('namespaces other than "/" are refused with Invalid namespace; the connection stays',
	async () => {
		const e = await sioConnectError(server, { nsp: '/admin', auth: { user_id: 'nsp' } });
		assert.equal(e.message, 'Invalid namespace');

		const c = await rawSio(server);
		await c.next(/^0\{/);
		c.send('3'); /* pongs and pings before CONNECT are let pass */
		c.send('2');
		c.send('40/admin,{"user_id":"x"}');
		assert.equal(await c.next(/^44/), '44/admin,{"message":"Invalid namespace"}');
		c.send('40{"user_id":"ns-later"}');
		await c.next(/^40\{"sid"/);
		assert.equal((await c.event('session')).user_id, 'ns-later');
		c.close();
	});

test('before CONNECT anything else closes with 1008; 1 closes with 1000', async () => {
	for (const [frame, reason] of [
		['42["ping",{}]', 'Socket.IO CONNECT expected'],
		['zz', 'malformed packet before the Socket.IO CONNECT'],
		['40[1]', 'malformed packet before the Socket.IO CONNECT'],
		[Buffer.from([1, 2]), 'binary frame before the Socket.IO CONNECT'],
	]) {
		const c = await rawSio(server);
		await c.next(/^0\{/);
		c.send(frame);
		const info = await c.closed();
		assert.deepEqual(info, { code: 1008, reason }, String(frame));
	}
	const c = await rawSio(server);
	await c.next(/^0\{/);
	c.send('1');
	assert.equal((await c.closed()).code, 1000);
});

test('malformed packets after CONNECT are answered with an error event; the connection ' +
	'closes (1008) at max_bad_messages', async () => {
	const { c } = await rawSioConnected(server, { user_id: 'raw-bad' });
	const expect = async (code, msg) => {
		const e = await c.event('error');
		assert.equal(e.type, 'error');
		assert.equal(e.error.code, code, JSON.stringify(e));
		if (msg)
			assert.match(e.error.message, msg);
	};
	c.send('9');
	await expect('BAD_REQUEST', /Engine\.IO packet type/);
	c.send('4x');
	await expect('BAD_REQUEST', /Socket\.IO packet type/);
	c.send('42["ping",{broken');
	await expect('BAD_JSON');
	c.send('451-["ping",{"_placeholder":true,"num":0}]');
	await expect('BAD_REQUEST', /binary attachments/);
	assert.ok(c.isOpen, c.describe());

	/* an unknown event is not malformed, and the connection still serves */
	c.send('42["nope",{}]');
	await expect('UNKNOWN_ACTION');
	c.send('42["ping",{"timestamp":5}]');
	assert.equal((await c.event('pong')).timestamp, 5);
	c.send('423["request",{"action":"nope"}]');
	assert.match(await c.next(/^433\[/), /"UNKNOWN_ACTION"/);
	assert.ok(c.isOpen, c.describe());

	/* the fifth bad frame (a binary one) is answered, then the close */
	c.send(Buffer.from('42["ping"]'));
	await expect('BAD_REQUEST', /binary frames/);
	const info = await c.closed();
	assert.equal(info.code, 1008);
});

test('auth mode jwt: the upgrade needs no token; auth.token is checked at CONNECT', async () => {
	const admin = token('jwt-root', { roles: ['admin'] });
	const rej0 = (await getStats(jwtServer, admin)).connections.rejected_total;
	const a = await sioConnect(jwtServer, { auth: { token: token('jwt-alice',
		{ roles: ['admin'] }), user_id: 'ignored' } });
	const s = await a.next('session');
	assert.equal(s.user_id, 'jwt-alice');
	assert.equal((await a.ack('request', { action: 'get_stats' })).success, true);
	a.close();

	const bad = await sioConnectError(jwtServer, { auth: { token: token('mallory',
		{ secret: OTHER_SECRET }) } });
	assert.equal(bad.message, 'unauthorized: bad signature');
	const expired = await sioConnectError(jwtServer, { auth: { token: token('old',
		{ ttlS: -10 }) } });
	assert.equal(expired.message, 'unauthorized: token expired');
	const none = await sioConnectError(jwtServer, { auth: { user_id: 'alice' } });
	assert.equal(none.message, 'unauthorized: a token is required (auth: {token})');

	/* raw: the refusal, then a close with 4001 */
	const c = await rawSio(jwtServer);
	await c.next(/^0\{/);
	c.send('40{"token":"not.a.jwt"}');
	const f = await c.next(/^44/);
	assert.match(JSON.parse(f.slice(2)).message, /^unauthorized: /);
	assert.deepEqual(await c.closed(), { code: 4001, reason: 'unauthorized' });
	assert.equal((await getStats(jwtServer, admin)).connections.rejected_total, rej0 + 4);

	/* /ws still wants its token at the upgrade */
	const w = await openWs(jwtServer, { path: '/ws' });
	assert.equal(w.status, 401);
});

test('with sessions.ttl_s a closed Socket.IO session is not suspended: the user is offline ' +
	'and gets the offline queue on the next connection', async () => {
	const ttl = await startServer({ label: 'sio-ttl', env: { QUOTECAST_SESSIONS_TTL_S: '30' } });
	try {
		const a = await sioConnect(ttl, { auth: { user_id: 'sio-away' } });
		await a.next('session');
		a.close();
		await waitFor(async () => (await connections(ttl)) === 0, { what: 'connection gone' });
		assert.equal((await getStats(ttl)).reconnection.suspended, 0);

		const adm = await connect(ttl, { query: { user_id: 'ops', roles: 'admin' } });
		const r = await adm.request('send_to_user', { user_id: 'sio-away', content: 'call me' });
		assert.equal(r.success, true, JSON.stringify(r));
		assert.deepEqual(r.data.offline, ['sio-away']);
		await adm.close();

		const b = await sioConnect(ttl, { auth: { user_id: 'sio-away' } });
		await b.next('session');
		const dm = await b.next('direct_message');
		assert.equal(dm.content, 'call me');
		assert.equal(dm.from, 'ops');
		assert.equal(dm.offline, true);
		b.close();
	} finally {
		await closeAllSio();
		await stopServer(ttl);
	}
});

test('limits.max_connections counts a Socket.IO handshake from the upgrade on', async () => {
	const full = await startServer({ label: 'sio-full',
		env: { QUOTECAST_LIMITS_MAX_CONNECTIONS: '1' } });
	try {
		/* the first upgrade takes the only slot, before its CONNECT */
		const a = await rawSio(full);
		await a.next(/^0\{/);
		const r = await openWs(full, { path: '/socket.io/',
			query: { EIO: 4, transport: 'websocket' } });
		assert.equal(r.status, 503);
		assert.match(r.body, /limits\.max_connections reached/);
		assert.equal(await upgradeStatus(full, { query: { user_id: 'native' } }), 503);
		/* its CONNECT goes through: the slot was its own */
		a.send('40{"user_id":"first"}');
		await a.next(/^40\{"sid"/);
		assert.equal(await connections(full), 1);
		const st = await getStats(full);
		assert.equal(st.connections.rejected_total, 2);
		assert.equal(st.limits.refused['limits.max_connections'], 2);
	} finally {
		await closeAllSio();
		await stopServer(full);
	}
});

test('no CONNECT within 10 s: closed with 1008; not counted as a connection meanwhile',
	{ timeout: 20000 }, async () => {
		const base = await connections(server);
		const c = await rawSio(server);
		await c.next(/^0\{/);
		assert.equal(await connections(server), base);
		const t0 = Date.now();
		const info = await c.closed(15000);
		assert.deepEqual(info, { code: 1008, reason: 'no Socket.IO CONNECT within 10 s' });
		const waited = Date.now() - t0;
		assert.ok(waited >= 9000 && waited <= 14000, `closed after ${waited} ms`);
	});

test('SIGTERM closes Socket.IO connections with 1001, those still in the handshake too',
	async () => {
		const own = await startServer({ label: 'sio-sigterm' });
		try {
			const waiting = await rawSio(own);
			await waiting.next(/^0\{/);
			const { c: connected } = await rawSioConnected(own, { user_id: 'leaving' });
			const [st, a, b] = await Promise.all([
				own.stop({ signal: 'SIGTERM', timeoutMs: 10000 }),
				waiting.closed(10000),
				connected.closed(10000),
			]);
			assert.equal(a.code, 1001, `handshake closed with ${a.code} (${a.reason})`);
			assert.equal(b.code, 1001, `connection closed with ${b.code} (${b.reason})`);
			assert.equal(st.code, 0);
			assert.equal(st.signal, null);
		} finally {
			await closeAllSio();
		}
	});
