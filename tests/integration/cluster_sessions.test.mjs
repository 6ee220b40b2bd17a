// Inboxes across nodes (issue 13, SPEC 2.9 and 2.10): in cluster mode a user's inbox entry
// (send_to_user, /api/broadcast to_users, offline deliveries) is numbered by one script on the
// user's Redis shard and reaches the user's sessions on every node once, with the same inbox
// seq and epoch everywhere; a user with no session anywhere in the cluster gets it through the
// offline queue (rows of the shared PostgreSQL), on the next connection on any node; Redis
// stalled: the request answers UNAVAILABLE.

import assert from 'node:assert/strict';
import {
	test, connect, httpRequest, waitFor, stoppedAfterEach,
} from './lib/harness.mjs';
import { startRedis, sharedRedisUrl, redisCmd } from './lib/redis.mjs';
import { sharedDb } from './lib/pg.mjs';
import { unique, open, ok, startOnDb } from './lib/persist.mjs';

const servers = stoppedAfterEach();

let n = 0;
/* a node on Redis @redis (and PostgreSQL @db, if given) */
async function node(redis, db, env = {}) {
	const id = `${unique('n')}-${++n}`;
	const s = await startOnDb(db ?? '', {
		label: id,
		env: { QUOTECAST_CLUSTER_REDIS: redis, QUOTECAST_CLUSTER_NODE_ID: id,
			QUOTECAST_CLUSTER_TIMEOUT_MS: '500', QUOTECAST_SESSIONS_TTL_S: '60', ...env },
	});
	servers.push(s);
	return s;
}

const isDm = (content) => (m) => m.type === 'event' && m.event === 'direct_message' &&
	m.data.content === content;

/* the nodes' channels are held: a session's node listens before the test sends */
async function settled(...servers_) {
	for (const s of servers_) {
		await waitFor(async () => {
			const r = await httpRequest(s, 'GET', '/api/stats');
			return r.json?.cluster?.connected === true;
		}, { timeoutMs: 15000, what: 'the node to be connected to Redis' });
	}
}

test('send_to_user from one node reaches the user on the other, once per connection, with ' +
	'one inbox seq and epoch everywhere', async () => {
	const redis = await sharedRedisUrl();
	const a = await node(redis);
	const b = await node(redis);
	await settled(a, b);
	const bob = unique('bob');
	const carol = unique('carol');
	const admin = await open(a, unique('admin'), 'admin');
	const bobB = await open(b, bob);
	const carolA = await open(a, carol);
	const carolB = await open(b, carol);

	let r = await ok(admin, 'send_to_user', { user_id: bob, content: 'hi bob' });
	assert.equal(r.delivered, 1);
	assert.deepEqual(r.offline, []);
	const m1 = await bobB.next(isDm('hi bob'), 5000);
	assert.equal(m1.data.seq, 1);
	assert.equal(typeof m1.data.epoch, 'string');

	r = await ok(admin, 'send_to_user', { user_ids: [carol], content: 'both' });
	assert.equal(r.delivered, 2);
	const onA = await carolA.next(isDm('both'), 5000);
	const onB = await carolB.next(isDm('both'), 5000);
	assert.equal(onA.data.seq, 1);
	assert.equal(onB.data.seq, 1);
	assert.equal(onA.data.epoch, onB.data.epoch);
	r = await ok(admin, 'send_to_user', { user_id: carol, content: 'again' });
	assert.equal((await carolA.next(isDm('again'), 5000)).data.seq, 2);
	assert.equal((await carolB.next(isDm('again'), 5000)).data.seq, 2);
	/* each connection once */
	await carolA.nothing(isDm('both'), 300);
	await carolB.nothing(isDm('both'), 300);
	await bobB.nothing(isDm('hi bob'), 100);
});

test('/api/broadcast to_users on one node reaches a user on the other', async () => {
	const redis = await sharedRedisUrl();
	const a = await node(redis);
	const b = await node(redis);
	await settled(a, b);
	const dave = unique('dave');
	const daveA = await open(a, dave);
	const r = await httpRequest(b, 'POST', '/api/broadcast',
		{ body: JSON.stringify({ to_users: [dave], content: 'news' }),
			headers: { 'content-type': 'application/json' } });
	assert.equal(r.status, 200, r.text);
	assert.equal(r.json.data?.delivered ?? r.json.delivered, 1, r.text);
	const m = await daveA.next(isDm('news'), 5000);
	assert.equal(m.data.from, 'system');
	assert.equal(m.data.seq, 1);
});

test('a user with no session anywhere gets it through the offline queue, on the next ' +
	'connection on either node, once', async () => {
	const redis = await sharedRedisUrl();
	const db = await sharedDb('csess');
	/* no suspension: a closed connection is no session */
	const a = await node(redis, db, { QUOTECAST_SESSIONS_TTL_S: '0' });
	const b = await node(redis, db, { QUOTECAST_SESSIONS_TTL_S: '0' });
	await settled(a, b);
	const erin = unique('erin');
	const admin = await open(a, unique('admin'), 'admin');
	let r = await ok(admin, 'send_to_user', { user_id: erin, content: 'while away 1' });
	assert.deepEqual(r.offline, [erin]);
	r = await ok(admin, 'send_to_user', { user_id: erin, content: 'while away 2' });
	assert.deepEqual(r.offline, [erin]);
	/* she comes back on the other node: both, in order, offline, numbered in her inbox */
	const e1 = await connect(b, { query: { user_id: erin } });
	const d1 = await e1.next(isDm('while away 1'), 8000);
	const d2 = await e1.next(isDm('while away 2'), 8000);
	assert.equal(d1.data.offline, true);
	assert.ok(d2.data.seq > d1.data.seq);
	/* a second connection, on the first node, gets nothing of it again */
	const e2 = await connect(a, { query: { user_id: erin } });
	await e2.nothing(isDm('while away 1'), 500);
	await e1.close();
	await e2.close();
	/* gone everywhere: offline again; back on the first node this time */
	await waitFor(async () => {
		const x = await ok(admin, 'send_to_user', { user_id: erin, content: 'probe' });
		return x.offline.length === 1;
	}, { timeoutMs: 10000, what: 'erin to have no session' });
	const e3 = await connect(a, { query: { user_id: erin } });
	await e3.next(isDm('probe'), 8000);
	const e4 = await connect(b, { query: { user_id: erin } });
	await e4.nothing(isDm('probe'), 500);
});

test('Redis stalled: send_to_user answers UNAVAILABLE, and works again after', async () => {
	const redis = await startRedis();
	try {
		const a = await node(redis.url);
		await settled(a);
		const fred = unique('fred');
		const admin = await open(a, unique('admin'), 'admin');
		const f = await open(a, fred);
		await ok(admin, 'send_to_user', { user_id: fred, content: 'before' });
		await f.next(isDm('before'), 5000);
		redis.signal('SIGSTOP');
		const r = await admin.request('send_to_user', { user_id: fred, content: 'stalled' },
			{}, 8000);
		assert.equal(r.success, false);
		assert.equal(r.error.code, 'UNAVAILABLE');
		redis.signal('SIGCONT');
		await waitFor(async () => {
			const x = await admin.request('send_to_user', { user_id: fred, content: 'after' },
				{}, 8000);
			return x.success === true;
		}, { timeoutMs: 20000, intervalMs: 500, what: 'send_to_user to work again' });
		await f.next(isDm('after'), 5000);
	} finally {
		await redis.destroy();
	}
});

/* ---- sessions: resume on any node --------------------------------------------------------- */

const isTick = (sym) => (m) => m.type === 'event' && m.event === 'stream_data' &&
	m.data.symbol === sym && !m.data.snapshot;
const isRoomMsg = (room, content) => (m) => m.type === 'event' && m.event === 'room_message' &&
	m.data.room === room && (content === undefined || m.data.content === content);

/* publish ticks through @pub until @clients all get one: their nodes hold the symbol's channel */
async function ticksFlow(pub, clients, sym) {
	let n = 0;
	await waitFor(async () => {
		await ok(pub, 'publish_market_data', { symbol: sym, data: { price: 1, probe: ++n } });
		/* any probe: the one just published may still be on its way (a node applies ticks from
		 * the channel, which can come after the publish's answer: checking for it at once never
		 * matched when that was always so) */
		return clients.every((c) => c.queue.some(isTick(sym)));
	}, { timeoutMs: 15000, intervalMs: 200, what: 'ticks to reach every node' });
	/* no more probes: the last one reaches every client, then nothing of @sym is queued */
	for (const c of clients) {
		await c.next((m) => isTick(sym)(m) && m.data.data.probe === n, 15000);
		c.queue = c.queue.filter((m) => !isTick(sym)(m));
	}
}

/* what a client tracks: the position of the last entry of each log it processed */
function track(pos, m) {
	if (m.type !== 'event' || !m.data || m.data.seq === undefined)
		return;
	if (m.event === 'stream_data')
		pos.streams[m.data.symbol] = { seq: m.data.seq, epoch: m.data.epoch };
	else if (m.event === 'direct_message' || m.event === 'alert')
		pos.inbox = { seq: m.data.seq, epoch: m.data.epoch };
	else if (m.data.room)
		pos.rooms[m.data.room] = { seq: m.data.seq, epoch: m.data.epoch };
}

async function resumeOn(server, user, token, positions) {
	const c = await connect(server, { query: { user_id: user } });
	const r = await c.ask({ type: 'resume', token, positions }, 10000);
	return { c, r };
}

/*
 * Two nodes; on b an admin (and publisher), another member of a room and, with @watch, a
 * subscriber of a symbol (b then keeps its ring); on a a client of a new user in that room and
 * subscribed to the symbol (fields price and probe), ticks flowing to it.
 */
async function scene(prefix, { watch = false } = {}) {
	const redis = await sharedRedisUrl();
	const a = await node(redis);
	const b = await node(redis);
	await settled(a, b);
	const user = unique(prefix);
	const room = unique(`${prefix}room`);
	const sym = unique(prefix.toUpperCase()).slice(0, 30);
	const admin = await open(b, unique('admin'), 'admin,publisher');
	const other = await open(b, unique('other'));
	await other.subscribe(room);
	const watcher = watch ? await open(b, unique('watch')) : null;
	if (watcher)
		assert.equal((await watcher.request('subscribe_market_stream', { symbol: sym })).success,
			true);
	const client = await open(a, user);
	await client.subscribe(room);
	assert.equal((await client.request('subscribe_market_stream',
		{ symbol: sym, fields: ['price', 'probe'] })).success, true);
	await ticksFlow(admin, watcher ? [client, watcher] : [client], sym);
	return { a, b, user, room, sym, admin, other, client };
}

test('a session resumes on another node: rooms and streams rebuilt, the inbox read back from ' +
	'the position exactly, the node that held it lets it go', async () => {
	const { a, b, user: gus, room, sym, admin, other, client: g } = await scene('gus');
	const pos = { streams: {}, rooms: {}, inbox: null };
	await ok(admin, 'send_to_user', { user_id: gus, content: 'd1' });
	track(pos, await g.next(isDm('d1'), 5000));
	const token = g.session.resume_token;
	await g.close();
	/* suspended on a: it still counts, so what is sent meanwhile is logged for it */
	const r1 = await ok(admin, 'send_to_user', { user_id: gus, content: 'd2' });
	assert.deepEqual(r1.offline, []);
	await ok(admin, 'send_to_user', { user_id: gus, content: 'd3' });

	const { c, r } = await resumeOn(b, gus, token, pos);
	assert.equal(r.success, true, JSON.stringify(r));
	assert.equal(r.data.resumed, true);
	assert.equal(r.data.inbox.recovered, true, JSON.stringify(r.data));
	assert.ok(r.data.rooms[room], JSON.stringify(r.data));
	assert.ok(r.data.streams[sym], JSON.stringify(r.data));
	const d2 = await c.next(isDm('d2'), 5000);
	const d3 = await c.next(isDm('d3'), 5000);
	assert.equal(d2.data.seq, pos.inbox.seq + 1);
	assert.equal(d3.data.seq, pos.inbox.seq + 2);
	/* then live, once: the inbox, the room, the stream */
	await ok(admin, 'send_to_user', { user_id: gus, content: 'd4' });
	assert.equal((await c.next(isDm('d4'), 5000)).data.seq, pos.inbox.seq + 3);
	await ok(other, 'send_message', { room, content: 'hello room' });
	await c.next(isRoomMsg(room, 'hello room'), 5000);
	await ticksFlow(admin, [c], sym);
	await c.nothing(isDm('d2'), 300);
	/* a's suspended copy is gone; the old token is spent on a */
	await waitFor(async () => {
		const s = (await httpRequest(a, 'GET', '/api/stats')).json;
		return s.cluster.inboxes.sessions === 0;
	}, { timeoutMs: 10000, what: "a to drop gus's suspended session" });
	const again = await resumeOn(a, gus, token, pos);
	assert.equal(again.r.success, false);
});

test('a live session resumed on another node is closed where it was', async () => {
	const redis = await sharedRedisUrl();
	const a = await node(redis);
	const b = await node(redis);
	await settled(a, b);
	const hal = unique('hal');
	const h1 = await open(a, hal);
	const { c, r } = await resumeOn(b, hal, h1.session.resume_token, {});
	assert.equal(r.success, true, JSON.stringify(r));
	assert.equal(r.data.recovered, false); /* no positions: the server's record died with a */
	const closed = await h1.closed(10000);
	assert.equal(closed.code, 1000);
	await c.nothing(() => false, 100);
});

test('?resume= on another node: the session event says resumed, rooms and streams are back, ' +
	'the inbox is read back from ?inbox_seq; an unknown token gets a fresh session', async () => {
	const { a, b, user: jo, room, sym, admin, other, client: j } = await scene('jo');
	await ok(admin, 'send_to_user', { user_id: jo, content: 'j1' });
	const j1 = await j.next(isDm('j1'), 5000);
	const token = j.session.resume_token;
	await j.close();
	await ok(admin, 'send_to_user', { user_id: jo, content: 'j2' });

	const c = await connect(b, { query: { user_id: jo, resume: token,
		inbox_seq: String(j1.data.seq), inbox_epoch: j1.data.epoch } });
	assert.equal(c.session.resumed, true, JSON.stringify(c.session));
	assert.equal(c.session.session_id, token.slice(0, 32));
	assert.equal((await c.next(isDm('j2'), 5000)).data.seq, j1.data.seq + 1);
	await ok(other, 'send_message', { room, content: 'back' });
	await c.next(isRoomMsg(room, 'back'), 5000);
	await ticksFlow(admin, [c], sym);
	await waitFor(async () => (await httpRequest(a, 'GET', '/api/stats')).json
		.cluster.inboxes.sessions === 0, { timeoutMs: 10000, what: "a to drop jo's session" });

	const f = await connect(b, { query: { user_id: jo, resume: 'ab'.repeat(32) } });
	assert.equal(f.session.resumed, false);
	await ok(admin, 'send_to_user', { user_id: jo, content: 'j3' });
	await f.next(isDm('j3'), 5000);
});

test('a stream subscribe that waited for the log is in the session record at once', async () => {
	const redis = await sharedRedisUrl();
	const a = await node(redis);
	await settled(a);
	const user = unique('rec');
	const sym = unique('REC').slice(0, 30);
	const c = await open(a, user);
	/* a symbol this node does not watch yet: the subscribe waits for its log, then answers */
	assert.equal((await c.request('subscribe_market_stream', { symbol: sym, fields: ['price'] }))
		.success, true);
	await waitFor(async () => {
		const st = (await httpRequest(a, 'GET', '/api/stats')).json;
		return st.cluster.inboxes.session_writes_due === 0 && st.cluster.inflight === 0;
	}, { timeoutMs: 10000, what: 'the record to be written' });
	/* well before the 5 s rewrite of live records */
	const rec = JSON.parse(await redisCmd(redis,
		'HGET', `qc:{u:${user}}:s:${c.session.session_id}`, 'r'));
	assert.deepEqual(rec.streams[sym]?.fields, ['price'], JSON.stringify(rec));
});

test('SIGKILL: a client of the killed node resumes on the other with its positions and gets ' +
	'every missed inbox entry, room message and tick once, in order, then live data', async () => {
	/* nobody on b watches the symbol: the resume reads its log from Redis there */
	const { a, b, user: ivy, room, sym, admin, other, client: v } = await scene('ivy');
	/* a second room nobody on b is in (its sender is on a third node): read from Redis too */
	const third = await node(await sharedRedisUrl());
	await settled(third);
	const room2 = unique('ivyroom2');
	const sender = await open(third, unique('sender'));
	await sender.subscribe(room2);
	await v.subscribe(room2);
	const pos = { streams: {}, rooms: {}, inbox: null };
	await ok(admin, 'publish_market_data', { symbol: sym, data: { price: 10 } });
	track(pos, await v.next((m) => isTick(sym)(m) && m.data.data.price === 10, 5000));
	for (const d of ['k1', 'k2']) {
		await ok(admin, 'send_to_user', { user_id: ivy, content: d });
		track(pos, await v.next(isDm(d), 5000));
	}
	await ok(other, 'send_message', { room, content: 'r0' });
	track(pos, await v.next(isRoomMsg(room, 'r0'), 5000));
	await ok(sender, 'send_message', { room: room2, content: 's0' });
	track(pos, await v.next(isRoomMsg(room2, 's0'), 5000));
	const token = v.session.resume_token;
	/* its record holds the room and the stream (written within milliseconds of the change) */
	await waitFor(async () => {
		const st = (await httpRequest(a, 'GET', '/api/stats')).json;
		return st.cluster.inboxes.session_writes_due === 0 && st.cluster.inflight === 0;
	}, { timeoutMs: 10000, what: "a to write ivy's record" });

	await a.stop({ signal: 'SIGKILL' });
	servers.splice(servers.indexOf(a), 1);
	/* while a is gone: its session still counts (its record outlives it), so it is logged */
	for (const d of ['k3', 'k4', 'k5']) {
		const r = await ok(admin, 'send_to_user', { user_id: ivy, content: d });
		assert.deepEqual(r.offline, []);
	}
	for (const p of [11, 12])
		await ok(admin, 'publish_market_data', { symbol: sym, data: { price: p } });
	for (const t of ['r1', 'r2'])
		await ok(other, 'send_message', { room, content: t });
	for (const t of ['s1', 's2'])
		await ok(sender, 'send_message', { room: room2, content: t });

	const { c, r } = await resumeOn(b, ivy, token, pos);
	assert.equal(r.success, true, JSON.stringify(r));
	assert.equal(r.data.inbox.recovered, true, JSON.stringify(r.data));
	/* the rooms: b's own log of the room it follows, room2's read from Redis: both exact */
	for (const [name, msgs] of [[room, ['r1', 'r2']], [room2, ['s1', 's2']]]) {
		assert.equal(r.data.rooms[name]?.recovered, true, JSON.stringify(r.data));
		assert.equal(r.data.rooms[name].epoch, pos.rooms[name].epoch);
		const seqs = [];
		for (const t of msgs)
			seqs.push((await c.next(isRoomMsg(name, t), 5000)).data.seq);
		assert.deepEqual(seqs, [pos.rooms[name].seq + 1, pos.rooms[name].seq + 2]);
	}
	await c.nothing((m) => isRoomMsg(room, 'r0')(m) || isRoomMsg(room2, 's0')(m), 200);
	const got = [];
	for (const d of ['k3', 'k4', 'k5'])
		got.push(await c.next(isDm(d), 5000));
	assert.deepEqual(got.map((m) => m.data.seq),
		[pos.inbox.seq + 1, pos.inbox.seq + 2, pos.inbox.seq + 3]);
	await c.nothing(isDm('k2'), 200);
	/* the stream: its log read back from Redis on b before the replay: exact, no snapshot */
	const st = r.data.streams[sym];
	assert.equal(st?.recovered, true, JSON.stringify(r.data));
	const t11 = await c.next((m) => isTick(sym)(m) && m.data.data.price === 11, 5000);
	const t12 = await c.next((m) => isTick(sym)(m) && m.data.data.price === 12, 5000);
	assert.equal(t11.data.seq, pos.streams[sym].seq + 1);
	assert.equal(t12.data.seq, pos.streams[sym].seq + 2);
	await c.nothing((m) => m.type === 'event' && m.event === 'stream_data' &&
		m.data.symbol === sym && (m.data.snapshot || m.data.data.price === 10), 200);
	/* live after the replay: inbox, room, stream */
	await ok(admin, 'send_to_user', { user_id: ivy, content: 'k6' });
	assert.equal((await c.next(isDm('k6'), 5000)).data.seq, pos.inbox.seq + 4);
	await ok(other, 'send_message', { room, content: 'after' });
	await c.next(isRoomMsg(room, 'after'), 5000);
	await ok(sender, 'send_message', { room: room2, content: 's3' });
	assert.equal((await c.next(isRoomMsg(room2, 's3'), 5000)).data.seq, pos.rooms[room2].seq + 3);
	await ok(admin, 'publish_market_data', { symbol: sym, data: { price: 13 } });
	await c.next((m) => isTick(sym)(m) && m.data.data.price === 13, 5000);
});
