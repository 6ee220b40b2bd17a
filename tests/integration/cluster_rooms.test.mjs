// Rooms across nodes (SPEC 2.10, issue 13): a room event gets its seq from Redis (one script
// on the room's shard: seq, epoch, log, publish) and reaches the room's members on every node
// with the same seq and epoch; targeting holds on every node; a node that has not followed a
// room reads its log back from Redis; Redis stalled: UNAVAILABLE, nothing half-done.

import assert from 'node:assert/strict';
import {
	test, after, startServer, getStats, httpRequest, waitFor, stoppedAfterEach,
} from './lib/harness.mjs';
import {
	startRedis, sharedRedisUrl, startNode, redisCmd, killingSubLinks,
} from './lib/redis.mjs';
import { open, ok, take } from './lib/sessions.mjs';
import { sharedDb } from './lib/pg.mjs';

const run = `${process.pid}-${Date.now()}`;
let roomSeq = 0;
const uniqueRoom = (p) => `${p}-${run}-${++roomSeq}`;
const isMsg = (room) => (m) => m.type === 'event' && m.event === 'room_message' &&
	m.data.room === room;

const node = startNode;

const servers = stoppedAfterEach();

async function nodes(n, url) {
	const out = [];
	for (let i = 0; i < n; i++)
		out.push(await node(url ?? await sharedRedisUrl(), `r${i}-${run}`));
	servers.push(...out);
	return out;
}

async function subscribe(client, room, extra = {}) {
	const r = await client.ask({ type: 'subscribe', room, ...extra }, 5000);
	assert.equal(r.success, true, `${client.label}: subscribe ${room}: ${JSON.stringify(r)}`);
	return r.data;
}

async function send(client, payload) {
	const r = await client.request('send_message', payload, {}, 5000);
	assert.equal(r.success, true, `${client.label}: send_message: ${JSON.stringify(r)}`);
	return r.data;
}

/* Every room_message of @room queued at @client within a short while (consumed). */
async function drain(client, room, ms = 400) {
	await new Promise((r) => setTimeout(r, ms));
	const got = client.queue.filter(isMsg(room));
	client.queue = client.queue.filter((m) => !isMsg(room)(m));
	return got;
}

test('a message sent on node 1 reaches members on nodes 2 and 3 with one seq and epoch', async () => {
	const [n1, n2, n3] = await nodes(3);
	const room = uniqueRoom('chat');
	const a = await open(n1, 'alice');
	const b = await open(n2, 'bob');
	const c = await open(n3, 'carol');
	const sa = await subscribe(a, room);
	const sb = await subscribe(b, room);
	const sc = await subscribe(c, room);
	/* every node names the room's log the same: Redis' epoch */
	assert.equal(sb.epoch, sa.epoch);
	assert.equal(sc.epoch, sa.epoch);

	const answer = await send(a, { room, content: 'hello' });
	assert.equal(typeof answer.seq, 'number');
	const got = [];
	for (const cl of [a, b, c]) {
		const [m] = (await take(cl, 1, isMsg(room))).filter(isMsg(room));
		got.push(m.data);
	}
	for (const d of got) {
		assert.equal(d.content, 'hello');
		assert.equal(d.from, 'alice');
		assert.equal(d.seq, answer.seq);
		assert.equal(d.epoch, sa.epoch);
		assert.equal(d.message_id, answer.message_id);
	}

	/* POST /api/broadcast to the room on node 3: the same path */
	const r = await httpRequest(n3, 'POST', '/api/broadcast', { body: { room, content: 'all' } });
	assert.equal(r.status, 200, r.text);
	assert.equal(r.json.data?.seq ?? r.json.seq, answer.seq + 1, r.text);
	for (const cl of [a, b, c]) {
		const [m] = (await take(cl, 1, isMsg(room))).filter(isMsg(room));
		assert.equal(m.data.content, 'all');
		assert.equal(m.data.from, 'system');
		assert.equal(m.data.seq, answer.seq + 1);
	}
	const s = await getStats(n2);
	assert.ok(s.cluster.watched_rooms >= 1);
	assert.ok(s.cluster.room_events_received >= 2);
});

test('targeted messages reach only their addressees on every node', async () => {
	const [n1, n2] = await nodes(2);
	const room = uniqueRoom('target');
	const a1 = await open(n1, 'ann');
	const a2 = await open(n2, 'ann'); /* ann on both nodes */
	const b2 = await open(n2, 'ben');
	const c1 = await open(n1, 'cid');
	for (const cl of [a1, a2, b2, c1])
		await subscribe(cl, room);

	/* target_users: ann (both connections, both nodes) only */
	const t = await send(c1, { room, content: 'for ann', target_users: ['ann'] });
	for (const cl of [a1, a2]) {
		const m = (await take(cl, 1, isMsg(room))).filter(isMsg(room));
		assert.equal(m[0].data.content, 'for ann');
		assert.equal(m[0].data.seq, t.seq);
	}
	/* exclude_self: the sender's own connection only; ann's other one (other node) gets it */
	const x = await send(a1, { room, content: 'not me', exclude_self: true });
	for (const cl of [a2, b2, c1]) {
		const m = (await take(cl, 1, (e) => isMsg(room)(e) && e.data.seq === x.seq))
			.filter(isMsg(room));
		assert.equal(m.at(-1).data.content, 'not me');
	}
	assert.deepEqual((await drain(a1, room)).map((m) => m.data.content), []);
	assert.deepEqual((await drain(b2, room)).map((m) => m.data.content), []);
	assert.deepEqual((await drain(c1, room)).map((m) => m.data.content), []);
});

test('seqs are consecutive per room across senders on different nodes', async () => {
	const [n1, n2] = await nodes(2);
	const room = uniqueRoom('seq');
	const a = await open(n1, 'amy');
	const b = await open(n2, 'bo');
	const first = await subscribe(a, room);
	await subscribe(b, room);
	const N = 20;
	const answers = await Promise.all(Array.from({ length: N }, (_, i) =>
		send(i % 2 ? b : a, { room, content: i })));
	const seqs = answers.map((x) => x.seq).sort((p, q) => p - q);
	assert.deepEqual(seqs, Array.from({ length: N }, (_, i) => first.seq + 1 + i));
	/* both nodes deliver them in seq order, all of them */
	for (const cl of [a, b]) {
		const got = (await take(cl, N, isMsg(room), 10000)).filter(isMsg(room));
		assert.deepEqual(got.map((m) => m.data.seq), seqs);
	}
});

test('read-back on a node that has not followed the room reads the Redis log', async () => {
	const [n1, n2] = await nodes(2);
	const room = uniqueRoom('back');
	const a = await open(n1, 'al');
	const sub = await subscribe(a, room);
	const sent = [];
	for (let i = 0; i < 5; i++)
		sent.push(await send(a, { room, content: `m${i}` }));
	await take(a, 5, isMsg(room));

	/* node 2 has no member of the room: it reads the log from Redis */
	const b = await open(n2, 'al');
	const since = sent[1].seq;
	const sb = await subscribe(b, room, { since_seq: since, epoch: sub.epoch });
	assert.equal(sb.epoch, sub.epoch);
	assert.equal(sb.seq, sent[4].seq);
	assert.equal(sb.recovered, true);
	const back = (await take(b, 3, isMsg(room))).filter(isMsg(room));
	assert.deepEqual(back.map((m) => m.data.content), ['m2', 'm3', 'm4']);
	assert.deepEqual(back.map((m) => m.data.seq), sent.slice(2).map((x) => x.seq));

	/* node 2 now follows the room; an older position still reads back from Redis */
	const c = await open(n2, 'cy');
	const sc = await subscribe(c, room, { since_seq: sent[0].seq, epoch: sub.epoch });
	assert.equal(sc.recovered, true);
	const back2 = (await take(c, 4, isMsg(room))).filter(isMsg(room));
	assert.deepEqual(back2.map((m) => m.data.content), ['m1', 'm2', 'm3', 'm4']);

	/* another epoch: not recoverable */
	const d = await open(n2, 'di');
	const sd = await subscribe(d, room, { since_seq: 1, epoch: '000000000000' });
	assert.equal(sd.recovered, false);

	/* live after that on both nodes */
	const live = await send(b, { room, content: 'live' });
	for (const cl of [a, b, c, d]) {
		const m = (await take(cl, 1, (e) => isMsg(room)(e) && e.data.content === 'live'))
			.filter(isMsg(room));
		assert.equal(m.at(-1).data.seq, live.seq);
	}
});

test('room messages lost on a channel are read back: consecutive seqs while the sub links are ' +
	'killed again and again', async () => {
	const redis = await startRedis();
	after(() => redis.destroy());
	const [a, b] = await nodes(2, redis.url);
	const room = uniqueRoom('gap');
	const sender = await open(a, 'gsend');
	const member = await open(b, 'gmember');
	await subscribe(sender, room);
	const first = await subscribe(member, room);
	const N = 200;
	const kills = await killingSubLinks(redis.url, async () => {
		for (let i = 0; i < N; i++) {
			const r = await sender.request('send_message', { room, content: i }, {}, 5000);
			if (!r.success)
				i--; /* Redis busy with the kill: again */
		}
	});
	assert.ok(kills >= 1, 'the sub links were killed');
	const got = [];
	for (let i = 0; i < N; i++)
		got.push((await member.next(isMsg(room), 20000)).data);
	assert.deepEqual(got.map((m) => m.content), Array.from({ length: N }, (_, i) => i));
	assert.deepEqual(got.map((m) => m.seq), Array.from({ length: N }, (_, i) => first.seq + 1 + i));
	const st = await getStats(b);
	assert.ok(st.rooms.gap_reads >= 1, JSON.stringify(st.rooms));
	assert.equal(st.rooms.gaps_lost, 0, JSON.stringify(st.rooms));
});

test('room messages sent while a node had no sub link (SIGSTOPped, its link killed) reach its ' +
	'members when it is back, with nothing sent after them', async () => {
	const redis = await startRedis();
	after(() => redis.destroy());
	const [a, b] = await nodes(2, redis.url);
	const room = uniqueRoom('tail');
	const sender = await open(a, 'tsend');
	const member = await open(b, 'tmember');
	await subscribe(sender, room);
	const first = await subscribe(member, room);
	b.child.kill('SIGSTOP');
	try {
		/* b cannot reconnect while stopped: what is published now never reaches its link */
		assert.ok(Number(await redisCmd(redis.url, 'CLIENT', 'KILL', 'TYPE', 'pubsub')) >= 1);
		for (const t of ['t1', 't2', 't3'])
			await waitFor(async () => (await sender.request('send_message',
				{ room, content: t }, {}, 5000)).success, { timeoutMs: 10000, what: `send ${t}` });
	} finally {
		b.child.kill('SIGCONT');
	}
	const got = [];
	for (let i = 0; i < 3; i++)
		got.push((await member.next(isMsg(room), 20000)).data);
	assert.deepEqual(got.map((m) => [m.content, m.seq]),
		[['t1', first.seq + 1], ['t2', first.seq + 2], ['t3', first.seq + 3]]);
	assert.ok((await getStats(b)).rooms.gap_reads >= 1);
});

test('Redis stalled: send_message and a first subscribe answer UNAVAILABLE; back after SIGCONT', async () => {
	const redis = await startRedis();
	after(() => redis.destroy());
	const [n1, n2] = await nodes(2, redis.url);
	const room = uniqueRoom('stall');
	const a = await open(n1, 'ava');
	const b = await open(n2, 'bea');
	await subscribe(a, room);
	await subscribe(b, room);

	redis.signal('SIGSTOP');
	try {
		const r = await a.request('send_message', { room, content: 'lost?' }, {}, 5000);
		assert.equal(r.success, false);
		assert.equal(r.error.code, 'UNAVAILABLE');
		const c = await open(n2, 'cat');
		const s = await c.ask({ type: 'subscribe', room: uniqueRoom('other') }, 5000);
		assert.equal(s.success, false);
		assert.equal(s.error.code, 'UNAVAILABLE');
	} finally {
		redis.signal('SIGCONT');
	}
	await waitFor(async () => (await getStats(n1)).cluster.connected &&
		(await getStats(n2)).cluster.connected, { timeoutMs: 15000, what: 'both back' });
	/* nothing of the refused message arrived anywhere */
	assert.deepEqual((await drain(b, room)).map((m) => m.data.content), []);
	/* the channels are subscribed again after the reconnect */
	const ok2 = await waitFor(async () => {
		const r = await a.request('send_message', { room, content: 'again' }, {}, 5000);
		return r.success;
	}, { timeoutMs: 15000, what: 'a send to succeed again' });
	assert.ok(ok2);
	const m = (await take(b, 1, isMsg(room), 10000)).filter(isMsg(room));
	assert.equal(m.at(-1).data.content, 'again');
});

/* ---- created rooms: committed to the shared PostgreSQL, followed by every node ---------- */

async function dbNodes(n, name, redisUrl) {
	const db = await sharedDb(name);
	const url = redisUrl ?? await sharedRedisUrl();
	const out = [];
	for (let i = 0; i < n; i++)
		out.push(await startServer({
			label: `d${i}-${run}`,
			args: ['--db', db],
			env: { QUOTECAST_CLUSTER_REDIS: url, QUOTECAST_CLUSTER_NODE_ID: `d${i}-${run}`,
				QUOTECAST_CLUSTER_TIMEOUT_MS: '500', QUOTECAST_LIMITS_RATE_PER_S: '100000',
				QUOTECAST_LIMITS_RATE_BURST: '100000' },
		}));
	servers.push(...out);
	return out;
}

const isEv = (event, room) => (m) => m.type === 'event' && m.event === event &&
	m.data.room === room;

test('a private room: a member added on node 1 subscribes on node 2 right after the answer', async () => {
	const [n1, n2] = await dbNodes(2, 'crooms_private');
	const owner = await open(n1, 'olga');
	const room = uniqueRoom('priv');
	for (let i = 0; i < 5; i++) {
		const r = `${room}-${i}`;
		await ok(owner, 'create_room', { room: r, type: 'private' });
		const u = await open(n2, `pat${i}`);
		/* not a member yet: refused on node 2 too */
		const no = await u.ask({ type: 'subscribe', room: r }, 5000);
		assert.equal(no.success, false);
		assert.equal(no.error.code, 'FORBIDDEN');
		await ok(owner, 'add_member', { room: r, user_id: `pat${i}` });
		/* at once, on the other node */
		await subscribe(u, r);
		const got = await ok(u, 'get_room', { room: r });
		assert.equal(got.type, 'private');
	}
});

test('created rooms: create, roles, status and delete are followed by the other node', async () => {
	const [n1, n2] = await dbNodes(2, 'crooms_follow');
	const owner = await open(n1, 'oscar');
	const room = uniqueRoom('made');
	await ok(owner, 'create_room', { room, type: 'public', metadata: { k: 1 } });
	const m = await open(n2, 'mia');
	/* node 2 knows the room as created (not an implicit one) */
	const info = await ok(m, 'get_room', { room });
	assert.equal(info.owner, 'oscar');
	await subscribe(m, room);
	await subscribe(owner, room);
	/* role set on node 1: mia may manage members on node 2 */
	await ok(owner, 'add_member', { room, user_id: 'zed' }).catch(() => {});
	await ok(owner, 'set_member_role', { room, user_id: 'mia', role: 'admin' });
	await ok(m, 'add_member', { room, user_id: 'yan' });
	/* status on node 2, seen on node 1 */
	await ok(m, 'set_room_status', { room, status: 'inactive' });
	const late = await open(n1, 'lu');
	const r = await late.ask({ type: 'subscribe', room }, 5000);
	assert.equal(r.success, false);
	assert.equal(r.error.code, 'FORBIDDEN');
	/* delete on node 1: node 2's member gets room_closed and is out; the room is gone there */
	await ok(owner, 'delete_room', { room });
	await take(m, 1, isEv('room_closed', room));
	await waitFor(async () => (await m.request('get_room', { room })).error?.code === 'NOT_FOUND',
		{ timeoutMs: 5000, what: 'the room to be gone on node 2' });
});

test('a member removed on node 1 is kicked on node 2; a closed room removes everyone everywhere', async () => {
	const [n1, n2] = await dbNodes(2, 'crooms_kick');
	const owner = await open(n1, 'ola');
	const room = uniqueRoom('kick');
	await ok(owner, 'create_room', { room, type: 'private' });
	await ok(owner, 'add_member', { room, user_id: 'kim' });
	await ok(owner, 'add_member', { room, user_id: 'kai' });
	const kim = await open(n2, 'kim');
	const kai = await open(n2, 'kai');
	await subscribe(kim, room);
	await subscribe(kai, room);
	await subscribe(owner, room);
	await ok(owner, 'remove_member', { room, user_id: 'kim' });
	const k = (await take(kim, 1, isEv('kicked', room))).filter(isEv('kicked', room));
	assert.equal(k[0].data.by, 'ola');
	await take(kai, 1, isEv('member_left', room));
	/* kim is out on node 2: no more messages, and may not come back */
	await send(owner, { room, content: 'after kick' });
	await take(kai, 1, isMsg(room));
	assert.deepEqual((await drain(kim, room)).map((x) => x.data.content), []);
	const back = await kim.ask({ type: 'subscribe', room }, 5000);
	assert.equal(back.error?.code, 'FORBIDDEN');

	await ok(owner, 'set_room_status', { room, status: 'closed' });
	await take(kai, 1, isEv('room_closed', room));
	await take(owner, 1, isEv('room_closed', room));
	const again = await kai.ask({ type: 'subscribe', room }, 5000);
	assert.equal(again.error?.code, 'ROOM_CLOSED');
});

test('changes of created rooms published while a node had no sub link reach it when it is back', async () => {
	const redis = await startRedis();
	after(() => redis.destroy());
	const [n1, n2] = await dbNodes(2, 'crooms_rc_gap', redis.url);
	const owner = await open(n1, `orc-${run}`);
	const room = uniqueRoom('rcgap');
	const uma = `uma-${run}`;
	/* a change before: both nodes follow the log of changes */
	await ok(owner, 'create_room', { room: `${room}-0`, type: 'public' });
	const watcher = await open(n2, `w-${run}`);
	await waitFor(async () => (await watcher.request('get_room', { room: `${room}-0` })).success,
		{ timeoutMs: 5000, what: 'node 2 to know the first room' });
	n2.child.kill('SIGSTOP');
	try {
		assert.ok(Number(await redisCmd(redis.url, 'CLIENT', 'KILL', 'TYPE', 'pubsub')) >= 1);
		await ok(owner, 'create_room', { room, type: 'private' });
		await ok(owner, 'add_member', { room, user_id: uma });
		await ok(owner, 'delete_room', { room: `${room}-0` });
	} finally {
		n2.child.kill('SIGCONT');
	}
	/* node 2 reads the changes it missed: the private room with uma in it, the other gone */
	const u = await open(n2, uma);
	await waitFor(async () => (await u.request('get_room', { room })).data?.type === 'private',
		{ timeoutMs: 10000, what: 'node 2 to know the private room' });
	await subscribe(u, room);
	const gone = await watcher.request('get_room', { room: `${room}-0` });
	const st = await getStats(n2);
	assert.equal(gone.error?.code, 'NOT_FOUND', JSON.stringify(st.cluster));
	assert.ok(st.cluster.room_change_reads >= 1, JSON.stringify(st.cluster));
	assert.equal(st.cluster.room_changes_lost, 0, JSON.stringify(st.cluster));
});

test('a subscribe on a node the change has not reached yet reads the changes first', async () => {
	const redis = await startRedis();
	after(() => redis.destroy());
	const [n1, n2] = await dbNodes(2, 'crooms_settle', redis.url);
	const owner = await open(n1, `ose-${run}`);
	const room = uniqueRoom('settle');
	const uli = `uli-${run}`;
	const u = await open(n2, uli);
	/* node 2 is on Redis and knows where the log of changes is */
	await waitFor(async () => {
		const st = (await getStats(n2)).cluster;
		return st.connected && st.room_change_reads >= 1;
	}, { timeoutMs: 10000, what: 'node 2 on Redis' });
	n2.child.kill('SIGSTOP');
	let r;
	try {
		/* node 2 will not hear of these on its channel: its link is gone while it is stopped */
		assert.ok(Number(await redisCmd(redis.url, 'CLIENT', 'KILL', 'TYPE', 'pubsub')) >= 1);
		await ok(owner, 'create_room', { room, type: 'private' });
		await ok(owner, 'add_member', { room, user_id: uli });
		/* sent while node 2 is stopped: it is the first thing node 2 reads when it goes on */
		r = u.ask({ type: 'subscribe', room }, 10000);
	} finally {
		n2.child.kill('SIGCONT');
	}
	r = await r;
	assert.equal(r.success, true, JSON.stringify(r));
	const info = await u.request('get_room', { room });
	assert.equal(info.data?.type, 'private', JSON.stringify(info));
	assert.equal(info.data.implicit, false);
});

test('a change of created rooms committed while Redis was frozen is announced when it is back, in order', async () => {
	const redis = await startRedis();
	after(() => redis.destroy());
	const [n1, n2] = await dbNodes(2, 'crooms_rc_out', redis.url);
	const owner = await open(n1, `oro-${run}`);
	const room = uniqueRoom('rcout');
	const ivo = `ivo-${run}`;
	redis.signal('SIGSTOP');
	try {
		/* committed to PostgreSQL; Redis cannot take the announcement now */
		await ok(owner, 'create_room', { room, type: 'private' });
		await ok(owner, 'add_member', { room, user_id: ivo });
		await ok(owner, 'remove_member', { room, user_id: ivo });
		await ok(owner, 'add_member', { room, user_id: ivo });
	} finally {
		redis.signal('SIGCONT');
	}
	/* node 2 gets the changes once Redis is back, in the order they were made */
	const u = await open(n2, ivo);
	await waitFor(async () => (await u.request('get_room', { room })).data?.type === 'private',
		{ timeoutMs: 15000, what: 'node 2 to know the room' });
	await subscribe(u, room);
	await waitFor(async () => (await getStats(n1)).cluster.room_changes_waiting === 0,
		{ timeoutMs: 10000, what: 'node 1 to have announced everything' });
});

test('offline members of a created room: a member with no session anywhere gets the message on ' +
	'any node, once; a member connected on another node is not offline', async () => {
	const [n1, n2] = await dbNodes(2, 'crooms_offline');
	const bea = `bea-${run}`, cy = `cy-${run}`;
	const owner = await open(n1, `ove-${run}`);
	const room = uniqueRoom('away');
	await ok(owner, 'create_room', { room, type: 'private' });
	await ok(owner, 'add_member', { room, user_id: bea });
	await ok(owner, 'add_member', { room, user_id: cy });
	await subscribe(owner, room);
	/* bea is connected on node 2, cy nowhere */
	const b = await open(n2, bea);
	await subscribe(b, room);
	await send(owner, { room, content: 'o1' });
	await send(owner, { room, content: 'o2', target_users: [cy] });
	assert.deepEqual((await take(b, 1, isMsg(room))).filter(isMsg(room))
		.map((m) => [m.data.content, m.data.offline]), [['o1', undefined]]);
	/* cy comes on node 2 (not the sender's): both, offline, once, in order */
	const c = await open(n2, cy);
	const got = (await take(c, 2, isMsg(room))).filter(isMsg(room));
	assert.deepEqual(got.map((m) => [m.data.content, m.data.offline]), [['o1', true], ['o2', true]]);
	assert.deepEqual((await drain(c, room)).map((m) => m.data.content), []);
	/* bea's first connection on node 1: she was never offline, nothing waits for her there */
	const b1 = await open(n1, bea);
	assert.deepEqual((await drain(b1, room)).map((m) => m.data.content), []);
	assert.deepEqual((await drain(b, room)).map((m) => m.data.content), []);
});

test('offline members over two Redis shards, more than one batch per shard: each gets the ' +
	'message once, on either node', async () => {
	const r1 = await startRedis();
	const r2 = await startRedis();
	after(() => r1.destroy());
	after(() => r2.destroy());
	const [n1, n2] = await dbNodes(2, 'crooms_offline2', `${r1.url},${r2.url}`);
	const owner = await open(n1, `ovi-${run}`);
	const room = uniqueRoom('away2');
	const users = Array.from({ length: 80 }, (_, i) => `u${i}-${run}`);
	await ok(owner, 'create_room', { room, type: 'private' });
	for (const u of users)
		await ok(owner, 'add_member', { room, user_id: u });
	await subscribe(owner, room);
	await send(owner, { room, content: 'all' });
	for (const [i, u] of users.entries()) {
		const c = await open(i % 2 ? n1 : n2, u);
		const got = (await take(c, 1, isMsg(room))).filter(isMsg(room));
		assert.deepEqual(got.map((m) => [m.data.content, m.data.offline]), [['all', true]], u);
		await c.close();
	}
});

test('capacity counts users cluster-wide: two nodes admitting the last place, exactly one gets in', async () => {
	const [n1, n2] = await dbNodes(2, 'crooms_capacity');
	const owner = await open(n1, 'otto');
	for (let round = 0; round < 5; round++) {
		const room = uniqueRoom('cap');
		/* the owner takes one place: one left */
		await ok(owner, 'create_room', { room, type: 'public', max_members: 2 });
		const u1 = await open(n1, `u1-${round}`);
		const u2 = await open(n2, `u2-${round}`);
		const [r1, r2] = await Promise.all([
			u1.ask({ type: 'subscribe', room }, 5000),
			u2.ask({ type: 'subscribe', room }, 5000),
		]);
		const wins = [r1, r2].filter((r) => r.success);
		assert.equal(wins.length, 1, `round ${round}: ${JSON.stringify([r1, r2])}`);
		const lost = [r1, r2].find((r) => !r.success);
		assert.equal(lost.error.code, 'ROOM_FULL');
		/* a member removed gives the place back, on the other node too */
		const loser = r1.success ? u2 : u1;
		const winner = r1.success ? `u1-${round}` : `u2-${round}`;
		await ok(owner, 'remove_member', { room, user_id: winner });
		await waitFor(async () => (await loser.ask({ type: 'subscribe', room }, 5000)).success,
			{ timeoutMs: 5000, what: 'the freed place to be taken' });
	}
});

/* get_room_members' online flags by user id */
async function online(client, room) {
	const r = await ok(client, 'get_room_members', { room });
	return Object.fromEntries(r.members.map((m) => [m.user_id, m.online]));
}

test('presence: get_room_members says who is online on any node; a SIGKILLed node\'s users leave it', async () => {
	const [n1, n2] = await dbNodes(2, 'crooms_presence');
	const owner = await open(n1, 'pia');
	const room = uniqueRoom('pres');
	await ok(owner, 'create_room', { room, type: 'private' });
	for (const u of ['quin', 'rex', 'sol'])
		await ok(owner, 'add_member', { room, user_id: u });
	const quin = await open(n2, 'quin');
	const rex = await open(n2, 'rex');
	await subscribe(owner, room);
	await subscribe(quin, room);
	await subscribe(rex, room);
	/* sol is a member with no connection: offline everywhere */
	const want = { pia: true, quin: true, rex: true, sol: false };
	const agrees = (o) => Object.entries(want).every(([u, v]) => o[u] === v);
	await waitFor(async () => agrees(await online(owner, room)),
		{ timeoutMs: 5000, what: 'node 2\'s members to be online on node 1' });
	assert.ok(agrees(await online(quin, room)), JSON.stringify(await online(quin, room)));

	/* rex leaves on node 2: offline on node 1 */
	await rex.ask({ type: 'unsubscribe', room }, 5000);
	await waitFor(async () => (await online(owner, room)).rex === false,
		{ timeoutMs: 5000, what: 'rex to be offline after leaving' });

	/* node 2 dies without a word: quin stops being online within the presence TTL */
	await n2.stop({ signal: 'SIGKILL' });
	servers.splice(servers.indexOf(n2), 1);
	await waitFor(async () => {
		const o = await online(owner, room);
		return o.quin === false && o.pia === true;
	}, { timeoutMs: 15000, what: 'the killed node\'s user to leave presence' });
});

test('capacity counts users cluster-wide: add_member on node 1 and a join on node 2 for the last place, exactly one gets in', async () => {
	const [n1, n2] = await dbNodes(2, 'crooms_addcap');
	const owner = await open(n1, 'ozzy');
	for (let round = 0; round < 5; round++) {
		const room = uniqueRoom('addcap');
		/* the owner takes one place: one left */
		await ok(owner, 'create_room', { room, type: 'public', max_members: 2 });
		const u2 = await open(n2, `j2-${round}`);
		const [r1, r2] = await Promise.all([
			owner.request('add_member', { room, user_id: `a1-${round}` }, {}, 5000),
			u2.ask({ type: 'subscribe', room }, 5000),
		]);
		const wins = [r1, r2].filter((r) => r.success);
		assert.equal(wins.length, 1, `round ${round}: ${JSON.stringify([r1, r2])}`);
		assert.equal([r1, r2].find((r) => !r.success).error.code, 'ROOM_FULL');
		/* and two admins adding on two nodes: only one of them */
		const room2 = uniqueRoom('addcap2');
		await ok(owner, 'create_room', { room: room2, type: 'private', max_members: 3 });
		await ok(owner, 'add_member', { room: room2, user_id: `adm-${round}`, role: 'admin' });
		const adm = await open(n2, `adm-${round}`);
		const [s1, s2] = await Promise.all([
			owner.request('add_member', { room: room2, user_id: `b1-${round}` }, {}, 5000),
			adm.request('add_member', { room: room2, user_id: `b2-${round}` }, {}, 5000),
		]);
		assert.equal([s1, s2].filter((r) => r.success).length, 1,
			`round ${round}: ${JSON.stringify([s1, s2])}`);
		/* node 1 follows node 2's addition within milliseconds: three members, not four */
		await waitFor(async () => (await ok(owner, 'get_room_members', { room: room2 }))
			.members.length === 3, { timeoutMs: 5000, what: 'three members on node 1' });
	}
});
