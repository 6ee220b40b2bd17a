// The offline queue (SPEC 2.8; sessions.md "Offline queue"): a user with no live or suspended
// session gets the room messages of the created rooms they are a member of (targeting applies)
// and their direct messages queued, delivered once, in order, with "offline":true, right after
// the session event of their next fresh connection; offline.max_per_user evicts the oldest; a
// suspended user is not offline (their messages are buffered instead); stats "offline".
// The expiry path (offline after a session expired) and implicit rooms are in sessions.test.mjs.

import assert from 'node:assert/strict';
import { test, before, after, startServer, stopServer, getStats, httpRequest } from
	'./lib/harness.mjs';
import {
	unique, ev, drop, offline, waitStats, open, resume, take, ok, broadcast, summary,
} from './lib/sessions.mjs';

const GRACE_MS = 250;
const MAX_PER_USER = 4;

let server;

before(async () => {
	server = await startServer({
		label: 'offline',
		env: {
			QUOTECAST_SESSIONS_TTL_S: '30',
			QUOTECAST_OFFLINE_MAX_PER_USER: String(MAX_PER_USER),
			QUOTECAST_LIMITS_RATE_PER_S: '10000',
			QUOTECAST_LIMITS_RATE_BURST: '10000',
		},
	});
});

after(async () => {
	await stopServer(server);
});

const show = (v) => JSON.stringify(v);

/** the offline stats, as [users, queued, delivered, evicted] */
async function counts() {
	const o = await offline(server);
	return [o.users, o.queued, o.delivered, o.evicted];
}

/** @c's first messages after its session event: @n of them, each with data.offline true */
async function offlineBatch(c, n) {
	const got = await take(c, n);
	for (const m of got) {
		assert.equal(m.type, 'event', show(m));
		assert.equal(m.data?.offline, true, `offline:true in ${show(m)}`);
	}
	return got;
}

/** @after minus @before, element by element */
const diff = (after, before) => after.map((v, i) => v - before[i]);

test('room messages of a created room wait for a member who never connected: delivered ' +
	'once, in order, right after the session event; targeting applies', async () => {
	const owner = await open(server, unique('owner'));
	const room = unique('created');
	await ok(owner, 'create_room', { room });
	const carol = unique('carol');
	const dan = unique('dan');
	await ok(owner, 'add_member', { room, user_id: carol });
	await ok(owner, 'add_member', { room, user_id: dan });
	const c0 = await counts();

	const m1 = await ok(owner, 'send_message', { room, content: { o: 1 } });
	/* targeting applies: only carol */
	await ok(owner, 'send_message', { room, content: { o: 2 }, target_users: [carol],
		message_type: 'alert' });
	await ok(owner, 'send_message', { room, content: { o: 3 }, target_role: 'member' });
	/* targeted at someone else: queued for nobody */
	await broadcast(server, { room, content: { o: 4 }, target_users: ['nobody-at-all'] });
	assert.deepEqual(diff(await counts(), c0), [2, 5, 0, 0], 'carol: o1 o2 o3; dan: o1 o3');

	const c = await open(server, carol);
	const got = await offlineBatch(c, 3);
	assert.deepEqual(got.map(summary), ['room:{"o":1}', 'room:{"o":2}', 'room:{"o":3}']);
	assert.equal(got[0].data.room, room);
	assert.equal(got[0].data.from, owner.session.user_id);
	assert.equal(got[0].data.message_id, m1.message_id);
	assert.equal(typeof got[0].data.timestamp, 'number');
	assert.equal(got[1].data.message_type, 'alert');
	await c.nothing(undefined, GRACE_MS);
	assert.deepEqual(diff(await counts(), c0), [1, 2, 3, 0], 'dan still waits');

	/* delivered once: another connection of carol gets nothing */
	const c2 = await open(server, carol);
	await c2.nothing(undefined, GRACE_MS);

	const d = await open(server, dan);
	const gotD = await offlineBatch(d, 2);
	assert.deepEqual(gotD.map(summary), ['room:{"o":1}', 'room:{"o":3}']);
	await d.nothing(undefined, GRACE_MS);
	assert.deepEqual(diff(await counts(), c0), [0, 0, 5, 0]);

	/* now online (not subscribed to the room): nothing queued, nothing delivered */
	await ok(owner, 'send_message', { room, content: { o: 5 } });
	assert.deepEqual(diff(await counts(), c0), [0, 0, 5, 0]);
	await Promise.all([c, c2, d].map((x) => x.nothing(undefined, GRACE_MS)));
	for (const x of [owner, c, c2, d])
		await x.close();
});

test('direct messages (send_to_user, POST /api/broadcast to_users) wait for a user who never ' +
	'connected, interleaved in order with room messages', async () => {
	const admin = await open(server, unique('root'), 'admin');
	const room = unique('created');
	await ok(admin, 'create_room', { room });
	const frank = unique('frank');
	await ok(admin, 'add_member', { room, user_id: frank });
	const c0 = await counts();

	await ok(admin, 'send_message', { room, content: { r: 1 } });
	const d1 = await ok(admin, 'send_to_user', { user_id: frank, content: { d: 1 },
		message_type: 'alert' });
	assert.deepEqual(d1.offline, [frank], show(d1));
	assert.equal(d1.delivered, 0, show(d1));
	await ok(admin, 'send_message', { room, content: { r: 2 } });
	const d2 = await broadcast(server, { to_users: [frank], content: { d: 2 } });
	assert.deepEqual(d2.offline, [frank], show(d2));
	assert.deepEqual(diff(await counts(), c0), [1, 4, 0, 0],
		'frank: r1 d1 r2 d2 queued (the direct messages too)');

	const f = await open(server, frank);
	const got = await offlineBatch(f, 4);
	assert.deepEqual(got.map(summary),
		['room:{"r":1}', 'direct:{"d":1}', 'room:{"r":2}', 'direct:{"d":2}']);
	assert.equal(got[1].data.from, admin.session.user_id);
	assert.equal(got[1].data.message_type, 'alert');
	assert.equal(got[1].data.message_id, d1.message_id);
	assert.equal(got[3].data.from, 'system');
	assert.equal(got[3].data.message_id, d2.message_id);
	await f.nothing(undefined, GRACE_MS);
	assert.deepEqual(diff(await counts(), c0), [0, 0, 4, 0]);

	/* online now: a direct message is live, without the flag, and not queued */
	const live = await ok(admin, 'send_to_user', { user_id: frank, content: 'live' });
	assert.deepEqual(live.offline, []);
	const lm = await f.next(ev('direct_message'));
	assert.equal(lm.data.content, 'live');
	assert.notEqual(lm.data.offline, true);
	assert.deepEqual(diff(await counts(), c0), [0, 0, 4, 0]);
	await f.close();
	await admin.close();
});

test('offline.max_per_user evicts the oldest (offline.evicted)', async () => {
	const owner = await open(server, unique('owner'));
	const room = unique('created');
	await ok(owner, 'create_room', { room });
	const erin = unique('erin');
	await ok(owner, 'add_member', { room, user_id: erin });
	const c0 = await counts();
	const sent = MAX_PER_USER + 2;
	for (let k = 1; k <= sent; k++)
		await ok(owner, 'send_message', { room, content: { e: k } });
	assert.deepEqual(diff(await counts(), c0), [1, MAX_PER_USER, 0, 2]);
	const e = await open(server, erin);
	const got = await offlineBatch(e, MAX_PER_USER);
	const want = [];
	for (let k = sent - MAX_PER_USER + 1; k <= sent; k++)
		want.push(`room:{"e":${k}}`);
	assert.deepEqual(got.map(summary), want);
	await e.nothing(undefined, GRACE_MS);
	assert.deepEqual(diff(await counts(), c0), [0, 0, MAX_PER_USER, 2]);
	await e.close();
	await owner.close();
});

test('a suspended user is not offline: the message is buffered and comes on resume without ' +
	'the offline flag', async () => {
	const admin = await open(server, unique('root'), 'admin');
	const gina = unique('gina');
	const g = await open(server, gina);
	const old = g.session;
	const s0 = await getStats(server);
	drop(g);
	await waitStats(server, (s) => s.reconnection?.suspended === s0.reconnection.suspended + 1,
		'one more suspended session');
	const c0 = await counts();
	const r = await ok(admin, 'send_to_user', { user_id: gina, content: 'while suspended' });
	assert.deepEqual(r.offline, [], `gina has a suspended session: ${show(r)}`);
	assert.deepEqual(await counts(), c0, 'nothing queued offline');
	const g2 = await resume(server, old.resume_token, gina);
	assert.equal(g2.session.resumed, true, show(g2.session));
	assert.equal(g2.session.replayed, 1, show(g2.session));
	const got = await take(g2, 1);
	assert.equal(got[0].event, 'direct_message', show(got));
	assert.equal(got[0].data.content, 'while suspended');
	assert.notEqual(got[0].data.offline, true);
	await g2.nothing(undefined, GRACE_MS);
	assert.deepEqual(await counts(), c0);
	await g2.close();
	await admin.close();
});

test('a created room member with a live connection not subscribed to the room is not offline',
	async () => {
		const owner = await open(server, unique('owner'));
		const room = unique('created');
		await ok(owner, 'create_room', { room });
		const hal = unique('hal');
		const h = await open(server, hal);
		await ok(owner, 'add_member', { room, user_id: hal });
		const c0 = await counts();
		await ok(owner, 'send_message', { room, content: 'not subscribed' });
		assert.deepEqual(await counts(), c0, 'hal is online: nothing queued');
		await h.nothing((m) => m.event === 'room_message', GRACE_MS);
		await h.close();
		await owner.close();
		/* the HTTP answer for a user with a session names nobody offline either */
		const r = await httpRequest(server, 'POST', '/api/broadcast',
			{ body: { to_users: [hal], content: 'x' } });
		assert.equal(r.status, 200, r.text);
		assert.deepEqual(r.json.offline, [], `hal's session is suspended: ${r.text}`);
	});
