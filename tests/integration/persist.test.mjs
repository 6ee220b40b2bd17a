// Persistence in PostgreSQL (issue 6; SPEC 2.3, 2.4, 2.7, 2.8): durable requests are answered
// after their commit (the row is there when the answer is); rooms (type, status, owner,
// metadata, capacity, password), members and roles, subscriptions (filter, alert, version,
// active) and undelivered offline messages survive a restart; offline messages are delivered
// once, in order, with offline:true; a user's active subscriptions are attached to every new
// connection (snapshot, then live data with the subscription's fields); versions give CONFLICT;
// hostile strings are stored and returned byte for byte. Each test has a database of its own.

import assert from 'node:assert/strict';
import { test, afterEach, httpRequest } from './lib/harness.mjs';
import { sharedDb } from './lib/pg.mjs';
import {
	unique, ev, open, ok, fails, subscribeRoom, publish, take, waitStats, rows, one,
	hex, sqlHex, tablesExist, sortMembers, durableRoom, serverSet,
} from './lib/persist.mjs';

const GRACE_MS = 300;
const show = (v) => JSON.stringify(v);

const servers = serverSet({ label: 'persist' });
const { up, down, bounce } = servers;

afterEach(() => servers.cleanup());

/** the status in the room's row, straight from the database; null when there is no row */
async function roomRow(url, room) {
	const r = await rows(url, `SELECT status FROM rooms WHERE ${sqlHex('name')} = '${hex(room)}'`);
	return r.length ? r[0][0] : null;
}

/** the role in the membership row; null when there is none */
async function memberRole(url, room, user) {
	const r = await rows(url, `SELECT role FROM room_members WHERE ${sqlHex('room')} = ` +
		`'${hex(room)}' AND ${sqlHex('user_id')} = '${hex(user)}'`);
	return r.length ? r[0][0] : null;
}

test('rooms, members, roles and statuses are in the database when the answer comes, and ' +
	'survive a restart: type, status, owner, metadata, capacity, password, members with roles',
async () => {
	const url = await sharedDb('persist_rooms');
	let s = await up(url);
	const alice = unique('alice');
	const [adam, mo, bob, carl, dave, erin, frank, outsider] =
		['adam', 'mo', 'bob', 'carl', 'dave', 'erin', 'frank', 'outsider'].map(unique);
	const pub = unique('pub');
	const priv = unique('priv');
	const prot = unique('prot');
	const arch = unique('arch');
	const shut = unique('shut');
	const gone = unique('gone');
	const metadata = { region: 'EU', tags: ['fx', 'rates'], nested: { level: 2, on: true },
		empty: {} };
	const password = 's3cret pass \u00e9';

	let a = await open(s, alice);
	const created = await ok(a, 'create_room', { room: pub, type: 'public', max_members: 10,
		metadata });
	assert.equal(created.owner, alice);
	assert.deepEqual(created.metadata, metadata);
	assert.equal(await roomRow(url, pub), 'active', 'the row exists when create_room answers');
	assert.equal(await memberRole(url, pub, alice), 'owner');
	await ok(a, 'create_room', { room: priv, type: 'private' });
	await ok(a, 'create_room', { room: prot, type: 'protected', password, max_members: 5 });
	const pwRow = await one(url, `SELECT ${sqlHex('password_hash')} FROM rooms WHERE name = ` +
		`'${prot}'`);
	assert.ok(pwRow.length > 0 && !pwRow.includes(hex('s3cret')),
		'the password is stored hashed, not in clear');
	await ok(a, 'create_room', { room: arch });
	await ok(a, 'create_room', { room: shut });
	await ok(a, 'create_room', { room: gone });

	await ok(a, 'add_member', { room: priv, user_id: adam, role: 'admin' });
	assert.equal(await memberRole(url, priv, adam), 'admin', 'row there when add_member answers');
	await ok(a, 'add_member', { room: priv, user_id: mo, role: 'moderator' });
	await ok(a, 'add_member', { room: priv, user_id: bob });
	await ok(a, 'add_member', { room: priv, user_id: carl });
	await ok(a, 'set_member_role', { room: priv, user_id: bob, role: 'moderator' });
	assert.equal(await memberRole(url, priv, bob), 'moderator');
	await ok(a, 'remove_member', { room: priv, user_id: carl });
	assert.equal(await memberRole(url, priv, carl), null, 'row gone when remove_member answers');
	await ok(a, 'set_room_status', { room: arch, status: 'archived' });
	assert.equal(await roomRow(url, arch), 'archived');
	await ok(a, 'set_room_status', { room: shut, status: 'closed' });
	await ok(a, 'delete_room', { room: gone });
	assert.equal(await roomRow(url, gone), null, 'row gone when delete_room answers');
	assert.equal(await one(url, `SELECT count(*) FROM room_members WHERE ${sqlHex('room')} = ` +
		`'${hex(gone)}'`), '0', 'its members went with it');

	/* subscribing makes a non-member a member of a public room, and of a protected one with
	 * the password: durable too */
	const d = await open(s, dave);
	const dj = await subscribeRoom(d, pub);
	assert.equal(dj.success, true, show(dj));
	assert.equal(await memberRole(url, pub, dave), 'member', 'row there when subscribe answers');
	const e = await open(s, erin);
	const ej = await subscribeRoom(e, prot, password);
	assert.equal(ej.success, true, show(ej));
	assert.equal(await memberRole(url, prot, erin), 'member');

	const names = [pub, priv, prot, arch, shut];
	const before = {};
	for (const room of names) {
		before[room] = {
			doc: durableRoom(await ok(a, 'get_room', { room })),
			members: sortMembers((await ok(a, 'get_room_members', { room })).members),
		};
	}
	assert.deepEqual(before[priv].members.map((m) => [m.user_id, m.role]).sort(),
		[[adam, 'admin'], [alice, 'owner'], [bob, 'moderator'], [mo, 'moderator']].sort());

	s = await bounce(s, url);

	a = await open(s, alice);
	for (const room of names) {
		assert.deepEqual(durableRoom(await ok(a, 'get_room', { room })), before[room].doc,
			`room ${room} after the restart`);
		assert.deepEqual(sortMembers((await ok(a, 'get_room_members', { room })).members),
			before[room].members, `members of ${room} after the restart`);
	}
	assert.equal(JSON.stringify((await ok(a, 'get_room', { room: pub })).metadata),
		JSON.stringify(metadata), 'metadata byte for byte, key order kept');
	await fails(a, 'get_room', { room: gone }, 'NOT_FOUND');
	await fails(a, 'create_room', { room: pub }, 'ALREADY_EXISTS');
	const listed = await ok(a, 'list_rooms', {});
	assert.deepEqual(listed.rooms.map((r) => r.room).filter((r) => names.includes(r) ||
		r === gone).sort(), [...names].sort());

	/* the password still works, and only it; an old member needs none */
	const f = await open(s, frank);
	const wrong = await subscribeRoom(f, prot, 'not it');
	assert.equal(wrong.error?.code, 'WRONG_PASSWORD', show(wrong));
	const none = await subscribeRoom(f, prot);
	assert.equal(none.error?.code, 'WRONG_PASSWORD', show(none));
	const right = await subscribeRoom(f, prot, password);
	assert.equal(right.success, true, show(right));
	const e2 = await open(s, erin);
	const again = await subscribeRoom(e2, prot);
	assert.equal(again.success, true, `erin is a member since before the restart: ${show(again)}`);

	/* private: members only; the roles still act */
	const o = await open(s, outsider);
	const refused = await subscribeRoom(o, priv);
	assert.equal(refused.error?.code, 'FORBIDDEN', show(refused));
	const c = await open(s, carl);
	const removed = await subscribeRoom(c, priv);
	assert.equal(removed.error?.code, 'FORBIDDEN', `carl was removed: ${show(removed)}`);
	const b = await open(s, bob);
	assert.equal((await subscribeRoom(b, priv)).success, true);
	await ok(b, 'add_member', { room: priv, user_id: outsider });
	const m = await open(s, mo);
	await fails(m, 'set_room_status', { room: priv, status: 'inactive' }, 'FORBIDDEN');
	const ad = await open(s, adam);
	await ok(ad, 'set_room_status', { room: priv, status: 'inactive' });

	/* statuses act */
	await fails(a, 'send_message', { room: arch, content: 'x' }, 'FORBIDDEN');
	const shutSub = await subscribeRoom(a, shut);
	assert.equal(shutSub.error?.code, 'ROOM_CLOSED', show(shutSub));
	await down(s);
});

test('offline room and direct messages survive a restart: delivered once, in order, with ' +
	'offline:true, and not again after a second restart', async () => {
	const url = await sharedDb('persist_offline');
	let s = await up(url, { env: { QUOTECAST_OFFLINE_MAX_PER_USER: '100' } });
	const root = unique('root');
	const carol = unique('carol');
	const frank = unique('frank');
	const room = unique('desk');
	const admin = await open(s, root, 'admin');
	await ok(admin, 'create_room', { room, type: 'private' });
	await ok(admin, 'add_member', { room, user_id: carol });

	const r1 = await ok(admin, 'send_message', { room, content: { r: 1, s: 'it\'s "x"' } });
	const d1 = await ok(admin, 'send_to_user', { user_id: carol, content: { d: 1 },
		message_type: 'alert' });
	assert.deepEqual(d1.offline, [carol], show(d1));
	const r2 = await ok(admin, 'send_message', { room, content: { r: 2 }, target_users: [carol],
		message_type: 'notification' });
	const bc = await httpRequest(s, 'POST', '/api/broadcast',
		{ body: { to_users: [carol], content: { d: 2 } } });
	assert.equal(bc.status, 200, bc.text);
	assert.deepEqual(bc.json.offline, [carol], bc.text);
	/* not for carol: targeted at someone else */
	await ok(admin, 'send_message', { room, content: { r: 'x' }, target_users: [root] });
	await ok(admin, 'send_to_user', { user_id: frank, content: 'for frank' });

	await waitStats(s, (st) => st.offline?.queued === 5 && st.offline?.users === 2 &&
		st.store?.pending === 0,
	'5 queued offline for 2 users (a direct message counts once its row has committed)');
	/* the direct messages are rows of their user, the room messages rows of the room's log */
	assert.equal(await one(url, 'SELECT count(*) FROM offline_messages'), '3');
	assert.equal(await one(url, 'SELECT count(*) FROM room_log'), '2');

	s = await bounce(s, url, { env: { QUOTECAST_OFFLINE_MAX_PER_USER: '100' } });
	const st = await waitStats(s, (x) => x.offline?.queued === 5, '5 queued after the restart');
	assert.equal(st.offline.users, 2, show(st.offline));

	const c = await open(s, carol);
	const got = await take(c, 4);
	for (const msg of got) {
		assert.equal(msg.type, 'event', show(msg));
		assert.equal(msg.data.offline, true, `offline:true in ${show(msg)}`);
	}
	assert.deepEqual(got.map((msg) => [msg.event, msg.data.content]), [
		['room_message', { r: 1, s: 'it\'s "x"' }],
		['direct_message', { d: 1 }],
		['room_message', { r: 2 }],
		['direct_message', { d: 2 }],
	]);
	assert.equal(got[0].data.room, room);
	assert.equal(got[0].data.from, root);
	assert.equal(got[0].data.message_id, r1.message_id);
	assert.equal(got[1].data.message_id, d1.message_id);
	assert.equal(got[1].data.message_type, 'alert');
	assert.equal(got[2].data.message_id, r2.message_id);
	assert.equal(got[2].data.message_type, 'notification');
	assert.equal(got[3].data.from, 'system');
	await c.nothing(undefined, GRACE_MS);

	/* exactly once: another connection gets nothing; the rows go */
	const c2 = await open(s, carol);
	await c2.nothing(undefined, GRACE_MS);
	await waitStats(s, (x) => x.offline?.queued === 1, 'only frank\'s message still queued');
	await waitStats(s, (x) => x.store?.pending === 0, 'the store has written everything');
	assert.equal(await one(url, `SELECT count(*) FROM offline_messages WHERE ${sqlHex('user_id')}` +
		` = '${hex(carol)}'`), '0', 'carol\'s rows are deleted once delivered');
	assert.equal(await one(url, 'SELECT count(*) FROM room_log'), '0',
		'the room\'s rows go once nobody waits for them');

	s = await bounce(s, url, { env: { QUOTECAST_OFFLINE_MAX_PER_USER: '100' } });
	const c3 = await open(s, carol);
	await c3.nothing(undefined, GRACE_MS);
	const f = await open(s, frank);
	const fm = await take(f, 1);
	assert.equal(fm[0].event, 'direct_message', show(fm));
	assert.equal(fm[0].data.content, 'for frank');
	assert.equal(fm[0].data.offline, true);
	await f.nothing(undefined, GRACE_MS);
	await waitStats(s, (x) => x.offline?.queued === 0 && x.store?.pending === 0,
		'nothing queued, everything written');
	assert.equal(await one(url, 'SELECT count(*) FROM offline_messages'), '0');
	await down(s);
});

test('a room message for 200 offline members is one row of the room\'s log (not 200); after ' +
	'a restart each member gets it once, and a member who was online when it was sent does not',
async () => {
	const url = await sharedDb('persist_room_log');
	let s = await up(url);
	const owner = unique('owner');
	const room = unique('many');
	const online = unique('here');
	const ghosts = Array.from({ length: 200 }, (_, i) => `${unique('ghost')}-${i}`);
	const o = await open(s, owner);
	await ok(o, 'create_room', { room });
	await ok(o, 'add_member', { room, user_id: online });
	await Promise.all(ghosts.map((user_id) => ok(o, 'add_member', { room, user_id })));
	const here = await open(s, online);
	const pad = 'p'.repeat(10 * 1024);
	for (let k = 0; k < 5; k++)
		await ok(o, 'send_message', { room, content: { k, pad } });
	/* one row per message; the member online then is not among its recipients */
	let st = await waitStats(s, (x) => x.offline?.queued === 5 * 200 && x.store?.pending === 0,
		'5 messages for 200 members, written');
	assert.equal(st.offline.messages, 5, show(st.offline));
	assert.equal(await one(url, 'SELECT count(*) FROM room_log'), '5');
	assert.equal(await one(url, 'SELECT count(*) FROM offline_messages'), '0');
	assert.ok(Number(await one(url, 'SELECT sum(octet_length(data::text)) FROM room_log')) <
		6 * 11 * 1024, 'about 50 KB of JSON, not 200 times that');
	await here.close();
	await o.close();

	s = await bounce(s, url);
	st = await waitStats(s, (x) => x.offline?.queued === 5 * 200, 'the same after the restart');
	assert.equal(st.offline.messages, 5, show(st.offline));
	assert.equal(st.offline.users, 200, show(st.offline));
	const h2 = await open(s, online);
	await h2.nothing(undefined, GRACE_MS);
	const g = await open(s, ghosts[17]);
	const got = await take(g, 5);
	assert.deepEqual(got.map((m) => [m.event, m.data.room, m.data.content.k, m.data.offline]),
		[0, 1, 2, 3, 4].map((k) => ['room_message', room, k, true]));
	await g.nothing(undefined, GRACE_MS);
	await g.close();
	await waitStats(s, (x) => x.offline?.queued === 5 * 199 && x.store?.pending === 0,
		'ghost 17 has had them');
	/* exactly once, also across another restart */
	s = await bounce(s, url);
	await waitStats(s, (x) => x.offline?.queued === 5 * 199, 'the rest still wait');
	const g2 = await open(s, ghosts[17]);
	await g2.nothing(undefined, GRACE_MS);
	const g3 = await open(s, ghosts[199]);
	assert.equal((await take(g3, 5)).length, 5);
	await down(s);
});

test('subscriptions survive a restart (filter, alert, fields, version, active); stale ' +
	'versions get CONFLICT; deleted ones stay gone; active ones are attached on connect',
async () => {
	const url = await sharedDb('persist_subs');
	let s = await up(url);
	const u = unique('ursula');
	const [s1, s2, s3, s4] = ['AA', 'BB', 'CC', 'DD'].map((p) => unique(p));
	let c = await open(s, u);
	const filter = { op: 'and', conditions: [{ field: 'price', cmp: 'gt', value: 100 },
		{ op: 'or', conditions: [{ field: 'side', cmp: 'eq', value: 'buy' },
			{ field: 'volume', cmp: 'gte', value: 1.5 }] }] };
	const A = await ok(c, 'create_subscription', { name: 'main', symbol: s1, fields: ['price'],
		filter, alert: { priority: 'low' } });
	assert.equal(A.version, 1);
	assert.equal(A.active, true);
	assert.deepEqual(A.filter, filter);
	assert.deepEqual(A.alert, { priority: 'low' });
	assert.equal(await one(url, `SELECT version FROM subscriptions WHERE id = ` +
		`'${A.subscription_id}'`), '1', 'the row is there when create_subscription answers');
	const B = await ok(c, 'create_subscription', { symbol: s2 });
	assert.equal(B.name, null);
	assert.equal(B.filter, null);
	assert.equal(B.alert, null);
	const C = await ok(c, 'create_subscription', { name: 'doomed', symbol: s3 });
	const D = await ok(c, 'create_subscription', { name: 'paused', symbol: s4 });

	await fails(c, 'update_subscription', { subscription_id: A.subscription_id, version: 2,
		name: 'x' }, 'CONFLICT');
	await fails(c, 'update_subscription', { subscription_id: A.subscription_id, version: 0,
		name: 'x' }, 'CONFLICT');
	const A2 = await ok(c, 'update_subscription', { subscription_id: A.subscription_id,
		version: 1, name: 'renamed', fields: ['price', 'volume'] });
	assert.equal(A2.version, 2);
	assert.equal(A2.name, 'renamed');
	assert.deepEqual(A2.fields, ['price', 'volume']);
	assert.deepEqual(A2.filter, filter, 'the filter is kept when not given');
	const p0 = await open(s, unique('pub'), 'publisher');
	await publish(p0, s1, { price: 1, volume: 2, side: 'buy' });
	const live = await c.next(ev('stream_data', { symbol: s1 }));
	assert.deepEqual(live.data.data, { price: 1, volume: 2 }, 'the new fields apply at once');
	await p0.close();
	assert.equal(await one(url, `SELECT version || ' ' || name FROM subscriptions WHERE id = ` +
		`'${A.subscription_id}'`), '2 renamed');
	await fails(c, 'update_subscription', { subscription_id: A.subscription_id, version: 1,
		name: 'late' }, 'CONFLICT');
	const D2 = await ok(c, 'update_subscription', { subscription_id: D.subscription_id,
		version: 1, active: false });
	assert.equal(D2.active, false);
	const del = await ok(c, 'delete_subscription', { subscription_id: C.subscription_id });
	assert.equal(del.deleted, true);
	assert.equal(await one(url, `SELECT count(*) FROM subscriptions WHERE id = ` +
		`'${C.subscription_id}'`), '0', 'the row is gone when delete_subscription answers');
	await fails(c, 'delete_subscription', { subscription_id: C.subscription_id }, 'NOT_FOUND');
	/* another user sees none of them and cannot touch them */
	const other = await open(s, unique('oscar'));
	assert.deepEqual((await ok(other, 'list_subscriptions', {})).subscriptions, []);
	await fails(other, 'update_subscription', { subscription_id: A.subscription_id, version: 2,
		name: 'mine' }, 'NOT_FOUND');
	await fails(other, 'delete_subscription', { subscription_id: B.subscription_id },
		'NOT_FOUND');

	const byId = (l) => [...l].sort((x, y) => (x.subscription_id < y.subscription_id ? -1 : 1));
	const listed = await ok(c, 'list_subscriptions', {});
	assert.equal(listed.total, 3);
	assert.deepEqual(listed.subscriptions.map((x) => x.subscription_id).sort(),
		[A.subscription_id, B.subscription_id, D.subscription_id].sort());
	const before = byId(listed.subscriptions);

	s = await bounce(s, url);
	c = await open(s, u);
	const after = await ok(c, 'list_subscriptions', {});
	assert.deepEqual(byId(after.subscriptions), before, 'the same documents after the restart');

	/* attached on connect: A (price, volume) and B (all fields); not D (inactive), not C */
	const p = await open(s, unique('pub'), 'publisher');
	await publish(p, s1, { price: 150, volume: 2, side: 'sell', other: 'x' });
	await publish(p, s2, { bid: 1, ask: 2 });
	await publish(p, s3, { price: 1 });
	await publish(p, s4, { price: 1 });
	const t1 = await c.next(ev('stream_data', { symbol: s1 }));
	assert.deepEqual(t1.data.data, { price: 150, volume: 2 }, show(t1));
	const t2 = await c.next(ev('stream_data', { symbol: s2 }));
	assert.deepEqual(t2.data.data, { bid: 1, ask: 2 }, show(t2));
	await c.nothing((msg) => msg.event === 'stream_data', GRACE_MS);

	/* versions survived */
	await fails(c, 'update_subscription', { subscription_id: A.subscription_id, version: 1,
		name: 'x' }, 'CONFLICT');
	const A3 = await ok(c, 'update_subscription', { subscription_id: A.subscription_id,
		version: 2, active: false });
	assert.equal(A3.version, 3);
	const D3 = await ok(c, 'update_subscription', { subscription_id: D.subscription_id,
		version: 2, active: true });
	assert.equal(D3.version, 3);
	/* attached again once active: the snapshot of what came meanwhile, then live data */
	const snap = await c.next(ev('stream_data', { symbol: s4 }));
	assert.equal(snap.data.snapshot, true, show(snap));
	assert.deepEqual(snap.data.data, { price: 1 }, show(snap));
	await publish(p, s4, { price: 2 });
	const t4 = await c.next(ev('stream_data', { symbol: s4 }));
	assert.deepEqual(t4.data.data, { price: 2 }, show(t4));
	await publish(p, s1, { price: 151 });
	await c.nothing((msg) => msg.event === 'stream_data' && msg.data.symbol === s1, GRACE_MS);
	assert.equal(await one(url, 'SELECT count(*) FROM subscriptions'), '3');
	await down(s);
});

test('a user\'s active subscriptions are attached to every new connection: a snapshot when ' +
	'the symbol has data, then live data with the subscription\'s fields only', async () => {
	const url = await sharedDb('persist_attach');
	const s = await up(url);
	const u = unique('uma');
	const sym = unique('SNAP');
	const empty = unique('EMPTY');
	const c0 = await open(s, u);
	await ok(c0, 'create_subscription', { symbol: sym, fields: ['price'] });
	await ok(c0, 'create_subscription', { symbol: empty, fields: ['bid'] });
	await c0.close();

	const p = await open(s, unique('pub'), 'publisher');
	await publish(p, sym, { price: 10, volume: 5 });
	await publish(p, sym, { price: 11 });

	const conns = [await open(s, u), await open(s, u)];
	const stranger = await open(s, unique('stan'));
	for (const c of conns) {
		const [first] = await take(c, 1);
		assert.equal(first.event, 'stream_data', `first after the session: ${show(first)}`);
		assert.equal(first.data.symbol, sym);
		assert.equal(first.data.snapshot, true, show(first));
		assert.deepEqual(first.data.data, { price: 11 }, 'the merged value of its fields only');
		/* no snapshot for a symbol without data */
		await c.nothing(undefined, GRACE_MS);
	}
	await publish(p, sym, { price: 12, volume: 6 });
	await publish(p, sym, { volume: 7 });
	await publish(p, empty, { bid: 3, ask: 4 });
	for (const c of conns) {
		const t = await c.next(ev('stream_data', { symbol: sym }));
		assert.deepEqual(t.data.data, { price: 12 }, show(t));
		assert.notEqual(t.data.snapshot, true);
		const e = await c.next(ev('stream_data', { symbol: empty }));
		assert.deepEqual(e.data.data, { bid: 3 }, show(e));
		await c.nothing((m) => m.event === 'stream_data', GRACE_MS);
	}
	await stranger.nothing((m) => m.event === 'stream_data', 0);
	await down(s);
});

test('two active subscriptions of one user on one symbol with different fields: the ' +
	'connection gets the fields of both', async () => {
	const url = await sharedDb('persist_two_subs');
	const s = await up(url);
	const u = unique('tess');
	const sym = unique('TWO');
	const c0 = await open(s, u);
	await ok(c0, 'create_subscription', { symbol: sym, fields: ['price'] });
	await ok(c0, 'create_subscription', { symbol: sym, fields: ['volume'] });
	const c1 = await open(s, u);
	const p = await open(s, unique('pub'), 'publisher');
	await publish(p, sym, { price: 1, volume: 2, other: 3 });
	for (const c of [c0, c1]) {
		const t = await c.next(ev('stream_data', { symbol: sym }));
		assert.deepEqual(t.data.data, { price: 1, volume: 2 },
			`both subscriptions' fields at ${c === c0 ? 'the creating' : 'a new'} connection`);
	}
	await down(s);
});

test('two updates of one subscription with the same version at once: one succeeds, the other ' +
	'gets CONFLICT, and the database holds version 2', async () => {
	const url = await sharedDb('persist_race');
	const s = await up(url);
	const c = await open(s, unique('rita'));
	const A = await ok(c, 'create_subscription', { symbol: unique('RACE'), name: 'v1',
		filter: { op: 'and', conditions: [{ field: 'price', cmp: 'gt', value: 1 }] } });
	const id = A.subscription_id;
	const tries = [
		c.request('update_subscription', { subscription_id: id, version: 1, name: 'first',
			filter: { op: 'or', conditions: [{ field: 'price', cmp: 'lt', value: 5 }] } }),
		c.request('update_subscription', { subscription_id: id, version: 1, name: 'second',
			filter: { op: 'or', conditions: [{ field: 'price', cmp: 'gt', value: 9 }] } }),
	];
	const [r1, r2] = await Promise.all(tries);
	assert.equal(r1.success, true, show(r1));
	assert.equal(r2.success, false, show(r2));
	assert.equal(r2.error.code, 'CONFLICT', show(r2));
	assert.equal(r1.data.version, 2);
	const [listed] = (await ok(c, 'list_subscriptions', {})).subscriptions;
	assert.equal(listed.version, 2);
	assert.equal(listed.name, 'first');
	assert.deepEqual(listed.filter, { op: 'or', conditions: [{ field: 'price', cmp: 'lt',
		value: 5 }] });
	assert.equal(await one(url, `SELECT version || ' ' || name FROM subscriptions WHERE id = ` +
		`'${id}'`), '2 first');
	assert.equal(await one(url, `SELECT string_agg(value::text, ',') FROM filter_conditions ` +
		`WHERE subscription_id = '${id}'`), '5', 'one generation of filter rows: the winner\'s');
	await down(s);
});

test('hostile strings (room name, metadata, user id, subscription name, filter value, message ' +
	'content) are stored verbatim and come back byte for byte after a restart', async () => {
	const url = await sharedDb('persist_hostile');
	let s = await up(url);
	const room = 'r\'; DROP TABLE rooms; --';
	const metadata = {
		note: 'it\'s "quoted" \\ back\\slash \\\' \\" $$ $1 %s \u00e9\u4e2d',
		'k"e\'y': 'v\'); DELETE FROM room_members; --',
		nested: { sql: '\'; TRUNCATE alerts; --', path: 'C:\\temp\\x' },
	};
	const owner = `o'neil"); DROP TABLE subscriptions; --${process.pid}`.slice(0, 64);
	const member = `bob\\'--${process.pid}`;
	const subName = 'my "quoted" sub\'s name \\ ok\'; --';
	const value = 'x\'); DELETE FROM alerts; --';
	const content = { text: '\'); DELETE FROM offline_messages; --', q: '"\\"' };
	const sym = unique('EVIL');

	let o = await open(s, owner);
	const doc = await ok(o, 'create_room', { room, type: 'private', metadata });
	assert.equal(doc.room, room);
	assert.deepEqual(doc.metadata, metadata);
	await ok(o, 'add_member', { room, user_id: member });
	const filter = { op: 'and', conditions: [{ field: 'status', cmp: 'eq', value }] };
	const sub = await ok(o, 'create_subscription', { name: subName, symbol: sym, filter,
		alert: { priority: 'high' } });
	assert.equal(sub.name, subName);
	assert.deepEqual(sub.filter, filter);
	await ok(o, 'send_message', { room, content });

	const p = await open(s, unique('pub'), 'publisher');
	await publish(p, sym, { status: value });
	const al = await o.next(ev('alert'));
	assert.deepEqual(al.data.data, { status: value });
	await p.close();

	/* the rows hold exactly the input */
	assert.equal(await one(url, `SELECT count(*) FROM rooms WHERE ${sqlHex('name')} = ` +
		`'${hex(room)}'`), '1');
	assert.equal(await one(url, `SELECT ${sqlHex('metadata')} FROM rooms WHERE ` +
		`${sqlHex('name')} = '${hex(room)}'`), hex(JSON.stringify(metadata)),
	'metadata text = the compact input');
	assert.equal(await one(url, `SELECT ${sqlHex('owner')} FROM rooms WHERE ${sqlHex('name')} ` +
		`= '${hex(room)}'`), hex(owner));
	assert.equal(await one(url, `SELECT count(*) FROM room_members WHERE ${sqlHex('user_id')} = ` +
		`'${hex(member)}' AND ${sqlHex('room')} = '${hex(room)}'`), '1');
	assert.equal(await one(url, `SELECT ${sqlHex('name')} FROM subscriptions WHERE id = ` +
		`'${sub.subscription_id}'`), hex(subName));
	assert.equal(await one(url, `SELECT ${sqlHex('user_id')} FROM subscriptions WHERE id = ` +
		`'${sub.subscription_id}'`), hex(owner));
	assert.equal(await one(url, `SELECT ${sqlHex('value')} FROM filter_conditions WHERE ` +
		`subscription_id = '${sub.subscription_id}'`), hex(JSON.stringify(value)));
	assert.equal(await one(url, `SELECT ${sqlHex('data')} FROM alerts WHERE subscription_id = ` +
		`'${sub.subscription_id}'`), hex(JSON.stringify({ status: value })));
	await waitStats(s, (x) => x.offline?.queued === 1 && x.store?.pending === 0,
		'the message for the member is queued and written');
	/* one row in the room's log, whatever the number of members it waits for */
	assert.equal(await one(url, `SELECT ${sqlHex('data::json->\'content\'')} FROM ` +
		`room_log WHERE ${sqlHex('room')} = '${hex(room)}'`),
	hex(JSON.stringify(content)));
	assert.equal(await tablesExist(url), true, 'every table is still there');

	s = await bounce(s, url);
	assert.equal(await tablesExist(url), true, 'every table is still there');
	o = await open(s, owner);
	const back = await ok(o, 'get_room', { room });
	assert.equal(back.room, room);
	assert.equal(JSON.stringify(back.metadata), JSON.stringify(metadata), 'byte for byte');
	const members = (await ok(o, 'get_room_members', { room })).members.map((m) => m.user_id);
	assert.deepEqual(members.sort(), [owner, member].sort());
	const [sub2] = (await ok(o, 'list_subscriptions', {})).subscriptions;
	assert.equal(sub2.name, subName);
	assert.equal(sub2.user_id, owner);
	assert.equal(JSON.stringify(sub2.filter), JSON.stringify(filter));
	const alerts = (await ok(o, 'list_alerts', {})).alerts;
	assert.equal(alerts.length, 1, show(alerts));
	assert.equal(JSON.stringify(alerts[0].data), JSON.stringify({ status: value }));
	const m = await open(s, member);
	const [msg] = await take(m, 1);
	assert.equal(msg.event, 'room_message', show(msg));
	assert.equal(msg.data.room, room);
	assert.equal(JSON.stringify(msg.data.content), JSON.stringify(content));
	assert.equal(msg.data.offline, true);
	/* and the filter still matches the string exactly after the restart */
	const p2 = await open(s, unique('pub'), 'publisher');
	await publish(p2, sym, { status: `${value} ` });
	await publish(p2, sym, { status: value });
	const al2 = await o.next(ev('alert'));
	assert.deepEqual(al2.data.data, { status: value });
	await o.nothing((x) => x.event === 'alert', GRACE_MS);
	assert.equal(await tablesExist(url), true);
	await down(s);
});

test('a member\'s "since" is the same before and after a restart (memory takes the time of ' +
	'the commit, the row the time of the request)', async () => {
	const url = await sharedDb('persist_since');
	let s = await up(url);
	const owner = unique('olga');
	const room = unique('since');
	let o = await open(s, owner);
	const doc = await ok(o, 'create_room', { room });
	await ok(o, 'add_member', { room, user_id: unique('mia') });
	const j = await open(s, unique('joe'));
	assert.equal((await subscribeRoom(j, room)).success, true);
	const before = sortMembers((await ok(o, 'get_room_members', { room })).members, true);
	const stored = await rows(url, `SELECT user_id, joined_at FROM room_members WHERE room = ` +
		`'${room}' ORDER BY user_id`);
	s = await bounce(s, url);
	o = await open(s, owner);
	const after = sortMembers((await ok(o, 'get_room_members', { room })).members, true);
	assert.deepEqual(after, before, `get_room_members before and after a restart; rows: ` +
		`${show(stored)}; room created_at ${doc.created_at}`);
	await down(s);
});

test('numbers in metadata and filter values are stored as sent (schema.c: "what a user sent ' +
	'... is kept byte for byte")', async () => {
	const url = await sharedDb('persist_numbers');
	const s = await up(url);
	const o = await open(s, unique('nora'));
	const room = unique('nums');
	const metadata = { tick: 0.1, ratio: 1.1, big: 123456789.123 };
	await ok(o, 'create_room', { room, metadata });
	const sub = await ok(o, 'create_subscription', { symbol: unique('NUM'),
		filter: { op: 'and', conditions: [{ field: 'price', cmp: 'gt', value: 0.3 }] } });
	const stored = {
		metadata: await one(url, `SELECT metadata::text FROM rooms WHERE name = '${room}'`),
		value: await one(url, `SELECT value::text FROM filter_conditions WHERE ` +
			`subscription_id = '${sub.subscription_id}'`),
	};
	assert.deepEqual(stored, { metadata: JSON.stringify(metadata), value: '0.3' },
		'rooms.metadata and filter_conditions.value as sent');
	await down(s);
});
