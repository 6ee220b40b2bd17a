// Rooms with owners, types, statuses, capacities and member roles (SPEC 2.3, 2.4; rooms.md
// "Rooms made with create_room"), in auth mode jwt: every user is a token signed here. Covers
// each refusal with its error code, the member management rules, the kicked / member_joined /
// member_left / room_closed events, every targeting mode of send_message and POST
// /api/broadcast, send_to_user, visibility in get_room / list_rooms, and the stats rooms block.

import assert from 'node:assert/strict';
import {
	test, before, after, afterEach, stopServer, connect, httpRequest, getStats,
	closeAllClients, waitFor,
} from './lib/harness.mjs';
import { startOwnServer } from './lib/ownserver.mjs';
import { TEST_SECRET, token, bearer } from './lib/jwt.mjs';

const GRACE_MS = 250;
const PASSWORD = 'c0rrect horse \u00e9 battery';

const env = {
	QUOTECAST_AUTH_MODE: 'jwt',
	QUOTECAST_AUTH_JWT_SECRET: TEST_SECRET,
	QUOTECAST_LIMITS_RATE_PER_S: '2000',
	QUOTECAST_LIMITS_RATE_BURST: '5000',
	QUOTECAST_LIMITS_MAX_BAD_MESSAGES: '1000',
	/* room passwords are checked back to back here: no budget for them (issue 11) */
	QUOTECAST_ROOMS_PASSWORD_HASHES_PER_S: '100000',
};

let server;

before(async () => {
	server = await startOwnServer({ label: 'acl', env });
});

after(async () => {
	await stopServer(server);
});

/* every test leaves no connection behind, so users never leak into the next one */
afterEach(async () => {
	await closeAllClients();
});

const ADMIN_AUTH = () => bearer(token('http-admin', { roles: ['admin'] }));

/** as() - a connection of user @sub (a JWT in ?token=), with server @roles. */
async function as(sub, roles, srv = server) {
	const c = await connect(srv, { query: { token: token(sub, { roles }) } });
	assert.equal(c.session.user_id, sub);
	c.label = sub;
	return c;
}

let roomSeq = 0;
const uniqueRoom = (p = 'acl') => `${p}-${process.pid}-${++roomSeq}`;
const ev = (event, data = {}) => ({ type: 'event', event, data });
const isMsg = (room) => ev('room_message', { room });
const show = (v) => JSON.stringify(v);

/** assertHas() - @obj has every key of @expected with that value (other keys may follow) */
function assertHas(obj, expected, what = '') {
	for (const [k, v] of Object.entries(expected))
		assert.deepEqual(obj?.[k], v, `${what} ${k} in ${show(obj)}`);
}

/** ok() - a request that must succeed; returns its data. */
async function ok(c, action, payload) {
	const r = await c.request(action, payload);
	assert.equal(r.success, true, `${c.label}: ${action} ${show(payload)} -> ${show(r)}`);
	return r.data;
}

/** refused() - a request that must fail with @code (a string, or a list of acceptable ones). */
async function refused(c, action, payload, code) {
	const r = await c.request(action, payload);
	const what = `${c.label}: ${action} ${show(payload)} -> ${show(r)}`;
	assert.equal(r.success, false, what);
	if (Array.isArray(code))
		assert.ok(code.includes(r.error?.code), `${what}: expected one of ${code}`);
	else
		assert.equal(r.error?.code, code, what);
	assert.equal(typeof r.error.message, 'string');
	return r.error;
}

/** sub() - subscribe @c to @room (with @password when given), asserting success. */
async function sub(c, room, password) {
	const msg = { type: 'subscribe', room };
	if (password !== undefined)
		msg.password = password;
	const r = await c.ask(msg);
	assert.equal(r.success, true, `${c.label}: subscribe ${room} -> ${show(r)}`);
	return r.data;
}

/** subRefused() - a subscribe that must fail with @code. */
async function subRefused(c, room, code, password) {
	const msg = { type: 'subscribe', room };
	if (password !== undefined)
		msg.password = password;
	const r = await c.ask(msg);
	const what = `${c.label}: subscribe ${room}${password !== undefined ? ` (password ` +
		`${show(password)})` : ''} -> ${show(r)}`;
	assert.equal(r.success, false, what);
	assert.equal(r.error?.code, code, what);
}

/** send() - send_message that must succeed; returns the response data. */
const send = (c, room, content, extra = {}) => ok(c, 'send_message', { room, content, ...extra });

/** drop the unconsumed messages matching @pred (all by default) of each client */
function drain(clients, pred = () => true) {
	for (const c of clients)
		c.queue = c.queue.filter((m) => !(typeof pred === 'function' ? pred(m) : false));
}

/** assert that none of @clients receives a message matching @pred within the grace period */
const noneGet = (clients, pred, ms = GRACE_MS) =>
	Promise.all(clients.map((c) => c.nothing(pred, ms)));

/** each of @clients gets a room_message of @room with @content */
async function allGet(clients, room, content, from) {
	for (const c of clients) {
		const m = await c.next(isMsg(room));
		assert.deepEqual(m.data.content, content, `${c.label} got ${show(m)}`);
		if (from !== undefined)
			assert.equal(m.data.from, from);
	}
}

/** create_room by @c; returns the room document */
const create = (c, room, extra = {}) => ok(c, 'create_room', { room, ...extra });

/** the roles of the members of @room as seen by @c: {user_id: role} */
async function roles(c, room) {
	const d = await ok(c, 'get_room_members', { room });
	return Object.fromEntries(d.members.map((m) => [m.user_id, m.role]));
}

const post = (p, body, headers = ADMIN_AUTH()) =>
	httpRequest(server, 'POST', p, { headers, body });

/* ---------------------------------------------------------------- create_room */

test('create_room makes public, private and protected rooms owned by the caller', async () => {
	const o = await as('cr-owner');
	const t0 = Date.now();

	const pub = uniqueRoom('pub');
	const d = await create(o, pub);
	assert.equal(d.room, pub);
	assert.equal(d.type, 'public', 'type defaults to public');
	assert.equal(d.status, 'active');
	assert.equal(d.owner, 'cr-owner');
	assert.equal(d.implicit, false);
	assert.equal(d.max_members, 0, 'no limit is 0');
	assert.equal(d.members, 1);
	assert.equal(d.message_count, 0);
	assert.equal(d.has_password, false);
	assert.equal(d.subscribers, 0, 'the owner is not subscribed');
	assert.equal(typeof d.last_activity, 'number');
	assert.ok(Math.abs(d.created_at - t0) < 60000, `created_at ${d.created_at} is Unix ms`);
	assert.ok('metadata' in d, show(d));
	assert.equal('password' in d, false);

	const priv = uniqueRoom('priv');
	const meta = { desk: 'fx', tags: ['a', 'b'], n: 1.5, nested: { x: null } };
	const p = await create(o, priv, { type: 'private', max_members: 5, metadata: meta });
	assert.equal(p.type, 'private');
	assert.equal(p.max_members, 5);
	assert.deepEqual(p.metadata, meta);
	assert.equal(p.owner, 'cr-owner');

	const prot = uniqueRoom('prot');
	const q = await create(o, prot, { type: 'protected', password: PASSWORD });
	assert.equal(q.type, 'protected');
	assert.equal(q.has_password, true);
	assert.equal('password' in q, false);
	assert.ok(!show(q).includes('c0rrect'), `the password shows: ${show(q)}`);

	for (const [room, type] of [[pub, 'public'], [priv, 'private'], [prot, 'protected']]) {
		const g = await ok(o, 'get_room', { room });
		assert.equal(g.type, type);
		assert.equal(g.owner, 'cr-owner');
		assert.equal(g.status, 'active');
		assert.ok(!show(g).includes('c0rrect'), show(g));
		const m = await ok(o, 'get_room_members', { room });
		assert.equal(m.room, room);
		assert.equal(m.members.length, 1, show(m));
		assert.equal(m.members[0].user_id, 'cr-owner');
		assert.equal(m.members[0].role, 'owner');
		assert.equal(m.members[0].online, false);
		assert.equal(typeof m.members[0].since, 'number');
	}
	/* created, not subscribed */
	const u = await o.ask({ type: 'unsubscribe', room: pub });
	assert.equal(u.error?.code, 'NOT_FOUND', show(u));
	/* the owner subscribes to every type without a password */
	await sub(o, pub);
	await sub(o, priv);
	await sub(o, prot);
	assert.equal((await ok(o, 'get_room', { room: prot })).subscribers, 1);
});

test('create_room refuses bad fields with BAD_REQUEST', async () => {
	const o = await as('cr-bad');
	const r = () => uniqueRoom('bad');
	const bad = [
		{ type: 'public' },
		{ room: '', type: 'public' },
		{ room: 42 },
		{ room: 'x'.repeat(129) },
		{ room: r(), type: 'secret' },
		{ room: r(), type: 7 },
		{ room: r(), type: 'protected' },
		{ room: r(), type: 'protected', password: '' },
		{ room: r(), type: 'protected', password: 'p'.repeat(1025) },
		{ room: r(), type: 'protected', password: 1234 },
		{ room: r(), type: 'public', password: 'pw' },
		{ room: r(), type: 'private', password: 'pw' },
		{ room: r(), max_members: 0 },
		{ room: r(), max_members: -1 },
		{ room: r(), max_members: 100001 },
		{ room: r(), max_members: '5' },
		{ room: r(), max_members: 2.5 },
		{ room: r(), metadata: [1, 2] },
		{ room: r(), metadata: 'meta' },
		{ room: r(), metadata: { blob: 'b'.repeat(4200) } },
	];
	for (const payload of bad) {
		await refused(o, 'create_room', payload, 'BAD_REQUEST');
		if (typeof payload.room === 'string' && payload.room.length > 0 &&
		    payload.room.length <= 128) {
			/* nothing was created */
			await refused(o, 'get_room', { room: payload.room }, 'NOT_FOUND');
		}
	}
	/* the limits themselves are fine */
	const p1024 = await create(o, r(), { type: 'protected', password: 'p'.repeat(1024) });
	assert.equal(p1024.has_password, true);
	assert.equal((await create(o, r(), { max_members: 1 })).max_members, 1);
	assert.equal((await create(o, r(), { max_members: 100000 })).max_members, 100000);
	assert.equal((await create(o, 'y'.repeat(128))).room, 'y'.repeat(128));
	assert.deepEqual((await create(o, r(), { metadata: { small: true } })).metadata,
		{ small: true });
});

test('ALREADY_EXISTS: a created room, or an implicit room with subscribers', async () => {
	const a = await as('ae-a');
	const b = await as('ae-b');
	const room = uniqueRoom('dup');
	await create(a, room);
	await refused(a, 'create_room', { room }, 'ALREADY_EXISTS');
	await refused(b, 'create_room', { room, type: 'private' }, 'ALREADY_EXISTS');
	assert.equal((await ok(b, 'get_room', { room })).owner, 'ae-a', 'the owner is unchanged');

	const imp = uniqueRoom('imp');
	await sub(b, imp);
	await refused(a, 'create_room', { room: imp }, 'ALREADY_EXISTS');
	assert.equal((await ok(a, 'get_room', { room: imp })).implicit, true);
	/* once the implicit room is gone, the name is free */
	await b.unsubscribe(imp);
	const d = await create(a, imp);
	assert.equal(d.implicit, false);
	assert.equal(d.owner, 'ae-a');
});

/* ---------------------------------------------------------------- subscribe rules */

test('public created room: subscribing makes a member; member_joined to subscribers', async () => {
	const o = await as('pj-owner');
	const m = await as('pj-mem');
	const m2 = await as('pj-mem');
	const x = await as('pj-out');
	const room = uniqueRoom('pj');
	await create(o, room);
	await sub(o, room);
	/* a non-member may not write, even in a public room */
	await refused(x, 'send_message', { room, content: 'hi' }, 'FORBIDDEN');

	await sub(m, room);
	const j = await o.next(ev('member_joined', { room, user_id: 'pj-mem' }));
	assert.equal(j.data.role, 'member');
	assert.deepEqual(await roles(o, room), { 'pj-owner': 'owner', 'pj-mem': 'member' });
	assert.equal((await ok(o, 'get_room', { room })).members, 2);

	/* the same user's second connection, and a re-subscribe, are not new members */
	drain([o, m]);
	await sub(m2, room);
	await m.unsubscribe(room);
	await sub(m, room);
	await noneGet([o, m, m2], ev('member_joined'));
	assert.equal((await ok(o, 'get_room', { room })).members, 2);

	const s = await send(m, room, 'member speaks');
	assert.equal(s.delivered, 3);
	await allGet([o, m, m2], room, 'member speaks', 'pj-mem');
	await noneGet([x], isMsg(room));
});

test('private room: FORBIDDEN for non-members until added', async () => {
	const o = await as('pv-owner');
	const x = await as('pv-out');
	const room = uniqueRoom('pv');
	await create(o, room, { type: 'private' });
	await sub(o, room);
	await subRefused(x, room, 'FORBIDDEN');
	await subRefused(x, room, 'FORBIDDEN', 'any password');
	await refused(x, 'send_message', { room, content: 'let me in' }, 'FORBIDDEN');
	await refused(x, 'get_room', { room }, 'FORBIDDEN');
	await refused(x, 'get_room_members', { room }, 'FORBIDDEN');
	await noneGet([o], isMsg(room));

	const a = await ok(o, 'add_member', { room, user_id: 'pv-out' });
	assert.equal(a.user_id, 'pv-out');
	assert.equal(a.role, 'member');
	const j = await o.next(ev('member_joined', { room, user_id: 'pv-out' }));
	assert.equal(j.data.role, 'member');
	assert.equal(j.data.by, 'pv-owner');

	await sub(x, room);
	assert.equal((await ok(x, 'get_room', { room })).type, 'private');
	const s = await send(x, room, 'in now');
	assert.equal(s.delivered, 2);
	await allGet([o, x], room, 'in now', 'pv-out');
});

test('protected room: WRONG_PASSWORD unless right; the right password makes a member', async () => {
	const o = await as('pt-owner');
	const x = await as('pt-x');
	const y = await as('pt-y');
	const room = uniqueRoom('pt');
	await create(o, room, { type: 'protected', password: PASSWORD });
	await sub(o, room);
	await subRefused(x, room, 'WRONG_PASSWORD');
	const wrong = ['wrong', PASSWORD.toUpperCase(), `${PASSWORD} `, PASSWORD.slice(0, -1)];
	for (const pw of wrong)
		await subRefused(x, room, 'WRONG_PASSWORD', pw);
	await refused(x, 'get_room', { room }, 'FORBIDDEN');
	await refused(x, 'send_message', { room, content: 'x' }, 'FORBIDDEN');
	assert.deepEqual(await roles(o, room), { 'pt-owner': 'owner' });
	await noneGet([o], ev('member_joined'), 0);

	await sub(x, room, PASSWORD);
	const j = await o.next(ev('member_joined', { room, user_id: 'pt-x' }));
	assert.equal(j.data.role, 'member');
	assert.deepEqual(await roles(o, room), { 'pt-owner': 'owner', 'pt-x': 'member' });
	const g = await ok(x, 'get_room', { room });
	assert.equal(g.has_password, true);
	assert.ok(!show(g).includes('c0rrect'), show(g));

	/* a member needs no password any more */
	await x.unsubscribe(room);
	await sub(x, room);
	const x2 = await as('pt-x');
	await sub(x2, room);
	/* others still do */
	await subRefused(y, room, 'WRONG_PASSWORD');
	await subRefused(y, room, 'WRONG_PASSWORD', 'wrong');
	const s = await send(x, room, 'pw ok');
	assert.equal(s.delivered, 3);
	await allGet([o, x, x2], room, 'pw ok');
	await noneGet([y], isMsg(room));
});

test('ROOM_FULL: max_members counts users, not connections', async () => {
	const a = await as('full-a');
	const b1 = await as('full-b');
	const b2 = await as('full-b');
	const c = await as('full-c');
	const room = uniqueRoom('full');
	await create(a, room, { max_members: 2 });
	await sub(b1, room); /* owner + b: full */
	await sub(b2, room); /* b's second connection: still two users */
	await sub(a, room);  /* the owner is a member already */
	await subRefused(c, room, 'ROOM_FULL');
	await refused(a, 'add_member', { room, user_id: 'full-c' }, 'ROOM_FULL');
	const g = await ok(a, 'get_room', { room });
	assert.equal(g.members, 2);
	assert.equal(g.subscribers, 3);
	assert.deepEqual(await roles(a, room), { 'full-a': 'owner', 'full-b': 'member' });

	/* making room lets the third one in */
	await ok(a, 'remove_member', { room, user_id: 'full-b' });
	await sub(c, room);
	await subRefused(b1, room, 'ROOM_FULL');

	/* the same with add_member on a private room of capacity 1: the owner fills it */
	const solo = uniqueRoom('solo');
	await create(a, solo, { type: 'private', max_members: 1 });
	await refused(a, 'add_member', { room: solo, user_id: 'full-c' }, 'ROOM_FULL');
	await subRefused(c, solo, 'FORBIDDEN');
});

test('inactive and archived: no new members; archived is read-only for everyone', async () => {
	const o = await as('ar-owner');
	const m = await as('ar-mem');
	const x = await as('ar-out');
	const room = uniqueRoom('ar');
	await create(o, room);
	await sub(o, room);
	await sub(m, room);

	await ok(o, 'set_room_status', { room, status: 'inactive' });
	assert.equal((await ok(o, 'get_room', { room })).status, 'inactive');
	await subRefused(x, room, 'FORBIDDEN');
	await m.unsubscribe(room);
	await sub(m, room); /* members may come back */

	await ok(o, 'set_room_status', { room, status: 'archived' });
	assert.equal((await ok(m, 'get_room', { room })).status, 'archived');
	drain([o, m]);
	await refused(m, 'send_message', { room, content: 'm writes' }, 'FORBIDDEN');
	await refused(o, 'send_message', { room, content: 'o writes' }, 'FORBIDDEN');
	await refused(x, 'send_message', { room, content: 'x writes' }, 'FORBIDDEN');
	const b = await post('/api/broadcast', { room, content: 'system writes' });
	assert.equal(b.status, 403, b.text);
	assert.equal(b.json?.error?.code, 'FORBIDDEN', b.text);
	await subRefused(x, room, 'FORBIDDEN');
	await m.unsubscribe(room);
	await sub(m, room); /* members may still read */
	await noneGet([o, m, x], isMsg(room));

	await ok(o, 'set_room_status', { room, status: 'active' });
	const s = await send(m, room, 'alive again');
	assert.equal(s.delivered, 2);
	await allGet([o, m], room, 'alive again');
	await sub(x, room); /* public and active: anyone joins again */
});

test('ROOM_CLOSED: closing notifies and unsubscribes everyone; reopening works', async () => {
	const o = await as('cl-owner');
	const m1 = await as('cl-mem');
	const m2 = await as('cl-mem');
	const x = await as('cl-out');
	const room = uniqueRoom('cl');
	await create(o, room, { type: 'private' });
	await ok(o, 'add_member', { room, user_id: 'cl-mem' });
	await sub(o, room);
	await sub(m1, room);
	await sub(m2, room);

	await ok(o, 'set_room_status', { room, status: 'closed' });
	for (const c of [o, m1, m2]) {
		const e = await c.next(ev('room_closed', { room }));
		assert.equal(e.data.reason, 'closed', show(e));
	}
	await noneGet([x], ev('room_closed'), 0);
	await refused(m1, 'send_message', { room, content: 'anyone?' }, 'ROOM_CLOSED');
	await refused(o, 'send_message', { room, content: 'owner?' }, 'ROOM_CLOSED');
	await subRefused(m1, room, 'ROOM_CLOSED');
	await subRefused(o, room, 'ROOM_CLOSED');
	await subRefused(x, room, 'ROOM_CLOSED');
	const u = await m2.ask({ type: 'unsubscribe', room });
	assert.equal(u.error?.code, 'NOT_FOUND', `m2 was unsubscribed by the close: ${show(u)}`);
	const b = await post('/api/broadcast', { room, content: 'system?' });
	assert.equal(b.status, 409, b.text);
	assert.equal(b.json?.error?.code, 'ROOM_CLOSED', b.text);
	assert.equal((await ok(o, 'get_room', { room })).subscribers, 0);

	await ok(o, 'set_room_status', { room, status: 'active' });
	const g = await ok(o, 'get_room', { room });
	assert.equal(g.status, 'active');
	assert.deepEqual(await roles(o, room), { 'cl-owner': 'owner', 'cl-mem': 'member' },
		'the member list survives the close');
	await sub(m1, room); /* still a member of the private room */
	await sub(o, room);
	const s = await send(o, room, 'reopened');
	assert.equal(s.delivered, 2);
	await allGet([o, m1], room, 'reopened');
	await noneGet([m2, x], isMsg(room)); /* m2 did not subscribe again */
});

test('set_room_status: owner or room admin only; bad status is BAD_REQUEST', async () => {
	const o = await as('ss-owner');
	const adm = await as('ss-adm');
	const mod = await as('ss-mod');
	const mem = await as('ss-mem');
	const x = await as('ss-out');
	const room = uniqueRoom('ss');
	await create(o, room);
	await ok(o, 'add_member', { room, user_id: 'ss-adm', role: 'admin' });
	await ok(o, 'add_member', { room, user_id: 'ss-mod', role: 'moderator' });
	await ok(o, 'add_member', { room, user_id: 'ss-mem' });
	for (const c of [mod, mem, x])
		await refused(c, 'set_room_status', { room, status: 'archived' }, 'FORBIDDEN');
	for (const c of [mod, mem])
		await refused(c, 'set_room_status', { room, status: 'closed' }, 'FORBIDDEN');
	assert.equal((await ok(o, 'get_room', { room })).status, 'active');
	for (const status of ['bogus', 'ACTIVE', 3, null])
		await refused(o, 'set_room_status', { room, status }, 'BAD_REQUEST');
	await ok(adm, 'set_room_status', { room, status: 'inactive' });
	assert.equal((await ok(mem, 'get_room', { room })).status, 'inactive');
	await ok(adm, 'set_room_status', { room, status: 'active' });
	assert.equal((await ok(mem, 'get_room', { room })).status, 'active');
	await refused(o, 'set_room_status', { room: uniqueRoom('ghost'), status: 'active' },
		'NOT_FOUND');
});

test('delete_room: owner only; subscribers get room_closed "deleted"; then NOT_FOUND', async () => {
	const o = await as('dr-owner');
	const adm = await as('dr-adm');
	const mem = await as('dr-mem');
	const x = await as('dr-out');
	const room = uniqueRoom('dr');
	await create(o, room);
	await ok(o, 'add_member', { room, user_id: 'dr-adm', role: 'admin' });
	await sub(o, room);
	await sub(adm, room);
	await sub(mem, room);
	for (const c of [adm, mem, x])
		await refused(c, 'delete_room', { room }, 'FORBIDDEN');
	assert.equal((await ok(o, 'get_room', { room })).status, 'active');

	await ok(o, 'delete_room', { room });
	for (const c of [o, adm, mem]) {
		const e = await c.next(ev('room_closed', { room }));
		assert.equal(e.data.reason, 'deleted', show(e));
	}
	await noneGet([x], ev('room_closed'), 0);
	await refused(o, 'get_room', { room }, 'NOT_FOUND');
	await refused(o, 'get_room_members', { room }, 'NOT_FOUND');
	await refused(o, 'delete_room', { room }, 'NOT_FOUND');
	await refused(mem, 'send_message', { room, content: 'gone?' }, 'NOT_FOUND');
	await refused(o, 'set_room_status', { room, status: 'active' }, 'NOT_FOUND');
	const u = await mem.ask({ type: 'unsubscribe', room });
	assert.equal(u.error?.code, 'NOT_FOUND', show(u));
	const listed = (await ok(o, 'list_rooms', { limit: 1000 })).rooms.map((r) => r.room);
	assert.ok(!listed.includes(room), 'a deleted room is not listed');
	/* the name is free again */
	assert.equal((await create(x, room)).owner, 'dr-out');
	await refused(o, 'delete_room', { room: uniqueRoom('never') }, 'NOT_FOUND');
});

/* ---------------------------------------------------------------- member management */

test('add_member: who may add whom; ALREADY_EXISTS; member_joined with by', async () => {
	const o = await as('am-owner');
	const adm = await as('am-adm');
	const mod = await as('am-mod');
	const mem = await as('am-mem');
	const x = await as('am-out');
	const room = uniqueRoom('am');
	await create(o, room, { type: 'private' });
	await sub(o, room);

	const a1 = await ok(o, 'add_member', { room, user_id: 'am-adm', role: 'admin' });
	assert.deepEqual([a1.room, a1.user_id, a1.role], [room, 'am-adm', 'admin']);
	const j = await o.next(ev('member_joined', { room, user_id: 'am-adm' }));
	assertHas(j.data, { room, user_id: 'am-adm', role: 'admin', by: 'am-owner' });
	await ok(o, 'add_member', { room, user_id: 'am-mod', role: 'moderator' });
	assert.equal((await ok(o, 'add_member', { room, user_id: 'am-mem' })).role, 'member',
		'role defaults to member');
	for (const c of [adm, mod, mem])
		await sub(c, room);
	drain([o, adm, mod, mem]);

	/* a member may not manage members; neither may a non-member */
	await refused(mem, 'add_member', { room, user_id: 'am-n1' }, 'FORBIDDEN');
	await refused(x, 'add_member', { room, user_id: 'am-n1' }, 'FORBIDDEN');
	await refused(x, 'add_member', { room, user_id: 'am-out' }, 'FORBIDDEN');
	/* a moderator adds members only */
	await refused(mod, 'add_member', { room, user_id: 'am-n1', role: 'admin' }, 'FORBIDDEN');
	await refused(mod, 'add_member', { room, user_id: 'am-n1', role: 'moderator' },
		'FORBIDDEN');
	await noneGet([o, adm, mod, mem], ev('member_joined'), 0);
	assert.equal((await ok(mod, 'add_member', { room, user_id: 'am-n1' })).role, 'member');
	for (const c of [o, adm, mod, mem]) {
		const e = await c.next(ev('member_joined', { room, user_id: 'am-n1' }));
		assertHas(e.data, { room, user_id: 'am-n1', role: 'member', by: 'am-mod' },
			c.label);
	}
	/* a room admin adds moderators and members, not admins */
	await refused(adm, 'add_member', { room, user_id: 'am-n2', role: 'admin' }, 'FORBIDDEN');
	await ok(adm, 'add_member', { room, user_id: 'am-n2', role: 'moderator' });
	await ok(adm, 'add_member', { room, user_id: 'am-n3', role: 'member' });
	/* nobody adds a second owner */
	for (const c of [o, adm])
		await refused(c, 'add_member', { room, user_id: 'am-n4', role: 'owner' },
			['FORBIDDEN', 'BAD_REQUEST']);
	await refused(o, 'add_member', { room, user_id: 'am-n4', role: 'king' }, 'BAD_REQUEST');
	await refused(o, 'add_member', { room }, 'BAD_REQUEST');
	await refused(o, 'add_member', { room, user_id: '' }, 'BAD_REQUEST');
	/* already members */
	await refused(o, 'add_member', { room, user_id: 'am-mem' }, 'ALREADY_EXISTS');
	await refused(o, 'add_member', { room, user_id: 'am-owner' }, 'ALREADY_EXISTS');
	await refused(mod, 'add_member', { room, user_id: 'am-n1' }, 'ALREADY_EXISTS');
	await refused(o, 'add_member', { room: uniqueRoom('ghost'), user_id: 'z' }, 'NOT_FOUND');

	assert.deepEqual(await roles(o, room), {
		'am-owner': 'owner', 'am-adm': 'admin', 'am-mod': 'moderator', 'am-mem': 'member',
		'am-n1': 'member', 'am-n2': 'moderator', 'am-n3': 'member',
	});
	/* an added user may now subscribe to the private room */
	const n1 = await as('am-n1');
	await sub(n1, room);
	await subRefused(x, room, 'FORBIDDEN');
});

test('remove_member: rules, NOT_FOUND, kicked then silence, member_left to others', async () => {
	const o = await as('rm-owner');
	const adm = await as('rm-adm');
	const mod = await as('rm-mod');
	const mem = await as('rm-mem');
	const v1 = await as('rm-victim');
	const v2 = await as('rm-victim');
	const room = uniqueRoom('rm');
	await create(o, room);
	await ok(o, 'add_member', { room, user_id: 'rm-adm', role: 'admin' });
	await ok(o, 'add_member', { room, user_id: 'rm-adm2', role: 'admin' });
	await ok(o, 'add_member', { room, user_id: 'rm-mod', role: 'moderator' });
	await ok(o, 'add_member', { room, user_id: 'rm-mod2', role: 'moderator' });
	await ok(o, 'add_member', { room, user_id: 'rm-mem2' });
	for (const c of [o, adm, mod, mem, v1, v2])
		await sub(c, room); /* rm-mem and rm-victim join as members */

	await refused(mem, 'remove_member', { room, user_id: 'rm-mem2' }, 'FORBIDDEN');
	await refused(mod, 'remove_member', { room, user_id: 'rm-mod2' }, 'FORBIDDEN');
	await refused(mod, 'remove_member', { room, user_id: 'rm-adm' }, 'FORBIDDEN');
	await refused(mod, 'remove_member', { room, user_id: 'rm-owner' }, 'FORBIDDEN');
	await refused(adm, 'remove_member', { room, user_id: 'rm-adm2' }, 'FORBIDDEN');
	await refused(adm, 'remove_member', { room, user_id: 'rm-owner' }, 'FORBIDDEN');
	await refused(o, 'remove_member', { room, user_id: 'rm-owner' }, 'FORBIDDEN');
	await refused(o, 'remove_member', { room, user_id: 'rm-nobody' }, 'NOT_FOUND');
	await refused(mod, 'remove_member', { room, user_id: 'rm-nobody' }, 'NOT_FOUND');
	await refused(o, 'remove_member', { room: uniqueRoom('ghost'), user_id: 'x' },
		'NOT_FOUND');
	assert.equal(Object.keys(await roles(o, room)).length, 8, 'nobody was removed');

	const r1 = await ok(mod, 'remove_member', { room, user_id: 'rm-mem2' });
	assert.equal(r1.user_id, 'rm-mem2');
	await ok(adm, 'remove_member', { room, user_id: 'rm-mod2' });
	await ok(o, 'remove_member', { room, user_id: 'rm-adm2' });
	assert.deepEqual(await roles(o, room), {
		'rm-owner': 'owner', 'rm-adm': 'admin', 'rm-mod': 'moderator',
		'rm-mem': 'member', 'rm-victim': 'member',
	});

	/* every subscribed connection saw those three leave (events travel on other
	 * sockets than the responses: wait for them before draining) */
	const stay = [o, adm, mod, mem];
	for (const c of [...stay, v1, v2]) {
		for (const [user_id, by] of [['rm-mem2', 'rm-mod'], ['rm-mod2', 'rm-adm'],
			['rm-adm2', 'rm-owner']]) {
			const l = await c.next(ev('member_left', { room, user_id }));
			assertHas(l.data, { by }, `${c.label} member_left ${user_id}`);
		}
	}
	/* the kick */
	drain([...stay, v1, v2]);
	await ok(mod, 'remove_member', { room, user_id: 'rm-victim' });
	for (const v of [v1, v2]) {
		const k = await v.next(ev('kicked', { room }));
		assertHas(k.data, { room, by: 'rm-mod' }, 'kicked');
	}
	for (const c of stay) {
		const l = await c.next(ev('member_left', { room, user_id: 'rm-victim' }));
		assertHas(l.data, { room, user_id: 'rm-victim', by: 'rm-mod' }, c.label);
	}
	const s = await send(o, room, 'after the kick');
	assert.equal(s.delivered, 4, 'the kicked connections are not subscribed any more');
	await allGet(stay, room, 'after the kick');
	await mem.request('send_message', { room, content: 'and another' });
	await allGet(stay, room, 'and another');
	const fromRoom = (m) => m?.data?.room === room;
	await noneGet([v1, v2], fromRoom);
	for (const v of [v1, v2]) {
		const u = await v.ask({ type: 'unsubscribe', room });
		assert.equal(u.error?.code, 'NOT_FOUND', show(u));
	}
	await refused(v1, 'send_message', { room, content: 'still here?' }, 'FORBIDDEN');
	await refused(o, 'remove_member', { room, user_id: 'rm-victim' }, 'NOT_FOUND');
	assert.equal((await ok(o, 'get_room', { room })).members, 4);
	await noneGet([v1, v2], fromRoom, 0);
});

test('set_member_role: owner any non-owner, room admin moderator<->member only', async () => {
	const o = await as('sr-owner');
	const a1 = await as('sr-adm');
	const md = await as('sr-mod');
	const mb = await as('sr-mem');
	const room = uniqueRoom('sr');
	await create(o, room, { type: 'private' });
	for (const [u, role] of [['sr-adm', 'admin'], ['sr-adm2', 'admin'], ['sr-mod', 'moderator'],
		['sr-mem', 'member'], ['sr-mem2', 'member']])
		await ok(o, 'add_member', { room, user_id: u, role });

	/* the owner */
	const d = await ok(o, 'set_member_role', { room, user_id: 'sr-mem2', role: 'admin' });
	assert.deepEqual([d.room, d.user_id, d.role], [room, 'sr-mem2', 'admin']);
	await ok(o, 'set_member_role', { room, user_id: 'sr-mem2', role: 'moderator' });
	await ok(o, 'set_member_role', { room, user_id: 'sr-mem2', role: 'member' });
	await refused(o, 'set_member_role', { room, user_id: 'sr-mem2', role: 'owner' },
		['FORBIDDEN', 'BAD_REQUEST']);
	await refused(o, 'set_member_role', { room, user_id: 'sr-owner', role: 'member' },
		'FORBIDDEN');
	await refused(o, 'set_member_role', { room, user_id: 'sr-nobody', role: 'member' },
		'NOT_FOUND');
	await refused(o, 'set_member_role', { room, user_id: 'sr-mem2', role: 'king' },
		'BAD_REQUEST');
	/* a room admin */
	await ok(a1, 'set_member_role', { room, user_id: 'sr-mem2', role: 'moderator' });
	await ok(a1, 'set_member_role', { room, user_id: 'sr-mem2', role: 'member' });
	await refused(a1, 'set_member_role', { room, user_id: 'sr-mem2', role: 'admin' },
		'FORBIDDEN');
	await refused(a1, 'set_member_role', { room, user_id: 'sr-adm2', role: 'member' },
		'FORBIDDEN');
	await refused(a1, 'set_member_role', { room, user_id: 'sr-mod', role: 'admin' },
		'FORBIDDEN');
	await refused(a1, 'set_member_role', { room, user_id: 'sr-owner', role: 'member' },
		'FORBIDDEN');
	/* moderators and members: nothing */
	await refused(md, 'set_member_role', { room, user_id: 'sr-mem2', role: 'moderator' },
		'FORBIDDEN');
	await refused(md, 'set_member_role', { room, user_id: 'sr-mem', role: 'member' },
		'FORBIDDEN');
	await refused(mb, 'set_member_role', { room, user_id: 'sr-mem2', role: 'moderator' },
		'FORBIDDEN');
	assert.deepEqual(await roles(o, room), {
		'sr-owner': 'owner', 'sr-adm': 'admin', 'sr-adm2': 'admin', 'sr-mod': 'moderator',
		'sr-mem': 'member', 'sr-mem2': 'member',
	});
	/* a new role takes effect: the promoted member may now add members */
	await refused(mb, 'add_member', { room, user_id: 'sr-new' }, 'FORBIDDEN');
	await ok(o, 'set_member_role', { room, user_id: 'sr-mem', role: 'moderator' });
	await ok(mb, 'add_member', { room, user_id: 'sr-new' });
	/* and a demoted admin may no longer set roles */
	await ok(o, 'set_member_role', { room, user_id: 'sr-adm', role: 'member' });
	await refused(a1, 'set_member_role', { room, user_id: 'sr-new', role: 'moderator' },
		'FORBIDDEN');
});

/* ---------------------------------------------------------------- targeting */

test('send_message targeting: target_users, target_role, exclude_self, combinations', async () => {
	const o = await as('tg-owner');
	const mod = await as('tg-mod');
	const a = await as('tg-a');
	const a2 = await as('tg-a');
	const b = await as('tg-b');
	const out = await as('tg-out');
	const room = uniqueRoom('tg');
	await create(o, room);
	await ok(o, 'add_member', { room, user_id: 'tg-mod', role: 'moderator' });
	const all = [o, mod, a, a2, b];
	for (const c of all)
		await sub(c, room);
	const other = uniqueRoom('tg-other');
	await sub(out, other);
	await sub(a, other);
	drain([...all, out]);
	let n = 0;

	/* each case: sender, targeting, who must get it; everyone else must not */
	const cases = [
		[b, {}, all],
		[b, { target_users: ['tg-a'] }, [a, a2]],
		[o, { target_users: ['tg-a', 'tg-b'] }, [a, a2, b]],
		[o, { target_users: ['tg-out'] }, []], /* not in the room */
		[o, { target_users: ['nobody-at-all'] }, []],
		[b, { target_role: 'moderator' }, [mod]],
		[b, { target_role: 'owner' }, [o]],
		[o, { target_role: 'member' }, [a, a2, b]],
		[o, { target_role: 'admin' }, []],
		[a, { exclude_self: true }, [o, mod, a2, b]],
		[a, { exclude_self: false }, all],
		[a, { target_users: ['tg-a'], exclude_self: true }, [a2]],
		[a, { target_role: 'member', exclude_self: true }, [a2, b]],
		[o, { target_role: 'member', target_users: ['tg-b', 'tg-mod'] }, [b]],
		[mod, { target_role: 'moderator', exclude_self: true }, []],
		[a2, { target_users: ['tg-a', 'tg-owner'], target_role: 'member',
			exclude_self: true }, [a]],
	];
	for (const [from, targeting, receivers] of cases) {
		const content = { case: ++n, targeting };
		const s = await send(from, room, content, targeting);
		const what = `case ${n} ${show(targeting)} from ${from.label}`;
		assert.equal(s.delivered, receivers.length, `${what}: delivered`);
		for (const c of receivers) {
			const m = await c.next(isMsg(room));
			assert.deepEqual(m.data.content, content, `${what}: ${c.label}`);
			assert.equal(m.data.from, from.label);
		}
	}
	/* after all positive deliveries: nobody got more than the cases above gave them */
	await noneGet([...all, out], ev('room_message'));
});

test('targeting in an implicit room: target_users works, target_role matches nobody', async () => {
	const a = await as('ti-a');
	const b = await as('ti-b');
	const c = await as('ti-c');
	const room = uniqueRoom('ti');
	for (const x of [a, b, c])
		await sub(x, room);
	const s1 = await send(a, room, 'to b', { target_users: ['ti-b'] });
	assert.equal(s1.delivered, 1);
	await allGet([b], room, 'to b');
	for (const role of ['member', 'owner', 'moderator', 'admin'])
		assert.equal((await send(a, room, role, { target_role: role })).delivered, 0, role);
	const s2 = await send(a, room, 'not me', { exclude_self: true });
	assert.equal(s2.delivered, 2);
	await allGet([b, c], room, 'not me');
	await noneGet([a, b, c], ev('room_message'));
});

test('send_to_user: admin only; every connection of each user; offline users listed', async () => {
	const root = await as('st-root', ['admin']);
	const u1 = await as('st-u1');
	const u1b = await as('st-u1');
	const u2 = await as('st-u2');
	const bystander = await as('st-bystander');
	const pleb = await as('st-pleb', ['publisher']);
	await refused(pleb, 'send_to_user', { user_id: 'st-u1', content: 'hi' },
		'FORBIDDEN');
	await refused(u1, 'send_to_user', { user_id: 'st-u2', content: 'hi' }, 'FORBIDDEN');
	await noneGet([u1, u1b, u2], ev('direct_message'), 0);

	const d = await ok(root, 'send_to_user', { user_id: 'st-u1', content: { n: 1 } });
	assert.equal(d.delivered, 2);
	assert.deepEqual(d.offline, []);
	assert.equal(typeof d.message_id, 'string');
	for (const c of [u1, u1b]) {
		const m = await c.next(ev('direct_message'));
		assert.equal(m.data.message_id, d.message_id);
		assert.equal(m.data.from, 'st-root');
		assert.equal(m.data.message_type, 'text');
		assert.deepEqual(m.data.content, { n: 1 });
		assert.equal(typeof m.data.timestamp, 'number');
	}
	await noneGet([u2, bystander, root], ev('direct_message'));

	const d2 = await ok(root, 'send_to_user', {
		user_ids: ['st-u1', 'st-u2', 'st-ghost'],
		content: 'all',
		message_type: 'alert',
	});
	assert.equal(d2.delivered, 3);
	assert.deepEqual(d2.offline, ['st-ghost']);
	for (const c of [u1, u1b, u2]) {
		const m = await c.next(ev('direct_message'));
		assert.equal(m.data.content, 'all');
		assert.equal(m.data.message_type, 'alert');
		assert.equal(m.data.message_id, d2.message_id);
	}
	const d3 = await ok(root, 'send_to_user', { user_id: 'st-ghost2', content: 'x' });
	assert.equal(d3.delivered, 0);
	assert.deepEqual(d3.offline, ['st-ghost2']);
	await refused(root, 'send_to_user', { content: 'to whom?' }, 'BAD_REQUEST');
	await refused(root, 'send_to_user', { user_id: 'st-u1' }, 'BAD_REQUEST');
	await noneGet([u1, u1b, u2, bystander, root], ev('direct_message'));
});

test('POST /api/broadcast: room with targeting, to_users, and the errors', async () => {
	const o = await as('bc-owner');
	const mod = await as('bc-mod');
	const m1 = await as('bc-m1');
	const m1b = await as('bc-m1');
	const m2 = await as('bc-m2');
	const room = uniqueRoom('bc');
	await create(o, room);
	await ok(o, 'add_member', { room, user_id: 'bc-mod', role: 'moderator' });
	const all = [o, mod, m1, m1b, m2];
	for (const c of all)
		await sub(c, room);
	drain(all);

	const cases = [
		[{}, all],
		[{ target_role: 'moderator' }, [mod]],
		[{ target_role: 'member' }, [m1, m1b, m2]],
		[{ target_users: ['bc-m1'] }, [m1, m1b]],
		[{ target_users: ['bc-m1', 'bc-mod'], target_role: 'moderator' }, [mod]],
		[{ target_users: ['bc-nobody'] }, []],
	];
	let n = 0;
	for (const [targeting, receivers] of cases) {
		const content = { bc: ++n };
		const r = await post('/api/broadcast',
			{ room, content, message_type: 'notification', ...targeting });
		assert.equal(r.status, 200, `${show(targeting)}: ${r.text}`);
		assert.equal(r.json.delivered, receivers.length, show(targeting));
		assert.equal(r.json.room, room);
		for (const c of receivers) {
			const m = await c.next(isMsg(room));
			assert.deepEqual(m.data.content, content, `${show(targeting)}: ${c.label}`);
			assert.equal(m.data.from, 'system');
			assert.equal(m.data.message_type, 'notification');
		}
	}
	await noneGet(all, ev('room_message'));

	const d = await post('/api/broadcast', { to_users: ['bc-m1', 'bc-m2', 'bc-ghost'],
		content: { direct: true } });
	assert.equal(d.status, 200, d.text);
	assert.equal(d.json.delivered, 3);
	assert.deepEqual(d.json.offline, ['bc-ghost']);
	for (const c of [m1, m1b, m2]) {
		const m = await c.next(ev('direct_message'));
		assert.equal(m.data.from, 'system');
		assert.deepEqual(m.data.content, { direct: true });
		assert.equal(m.data.message_id, d.json.message_id);
	}
	await noneGet([o, mod], ev('direct_message'));

	const neither = await post('/api/broadcast', { content: 'to whom?' });
	assert.equal(neither.status, 400, neither.text);
	assert.equal(neither.json?.error?.code, 'BAD_REQUEST');
	const unknown = await post('/api/broadcast', { room: uniqueRoom('ghost'), content: 'x' });
	assert.equal(unknown.status, 404, unknown.text);
	assert.equal(unknown.json?.error?.code, 'NOT_FOUND');
	const badRole = await post('/api/broadcast', { room, content: 'x', target_role: 'king' });
	assert.equal(badRole.status, 400, badRole.text);
	await noneGet(all, (m) => m.event === 'room_message' || m.event === 'direct_message', 0);
});

/* ---------------------------------------------------------------- reading rooms */

test('get_room / list_rooms: visibility by type and membership; never a password', async () => {
	const o = await as('vis-owner');
	const m = await as('vis-mem');
	const x = await as('vis-out');
	const pub = uniqueRoom('vis-pub');
	const priv = uniqueRoom('vis-priv');
	const prot = uniqueRoom('vis-prot');
	const imp = uniqueRoom('vis-imp');
	await create(o, pub, { metadata: { shown: 1 } });
	await create(o, priv, { type: 'private' });
	await create(o, prot, { type: 'protected', password: PASSWORD });
	await ok(o, 'add_member', { room: priv, user_id: 'vis-mem' });
	await sub(m, imp);

	const names = async (c, payload = { limit: 1000 }) => {
		const d = await ok(c, 'list_rooms', payload);
		assert.ok(Array.isArray(d.rooms), show(d));
		assert.equal(typeof d.total, 'number');
		assert.ok(!show(d).includes('c0rrect'), 'a password in list_rooms');
		return { d, names: d.rooms.map((r) => r.room) };
	};
	const ox = await names(o);
	for (const r of [pub, priv, prot, imp])
		assert.ok(ox.names.includes(r), `owner lists ${r}`);
	const mx = await names(m);
	for (const r of [pub, priv, imp])
		assert.ok(mx.names.includes(r), `member lists ${r}`);
	assert.ok(!mx.names.includes(prot), 'a protected room of which m is no member is listed');
	const xx = await names(x);
	assert.ok(xx.names.includes(pub) && xx.names.includes(imp), show(xx.names));
	assert.ok(!xx.names.includes(priv), 'a private room is listed for a non-member');
	assert.ok(!xx.names.includes(prot), 'a protected room is listed for a non-member');
	const doc = xx.d.rooms.find((r) => r.room === pub);
	assert.equal(doc.owner, 'vis-owner');
	assert.deepEqual(doc.metadata, { shown: 1 });
	const idoc = xx.d.rooms.find((r) => r.room === imp);
	assert.equal(idoc.implicit, true);
	const pdoc = ox.d.rooms.find((r) => r.room === prot);
	assert.equal(pdoc.has_password, true);
	assert.equal('password' in pdoc, false);

	/* limit */
	const one = await ok(o, 'list_rooms', { limit: 1 });
	assert.equal(one.rooms.length, 1);
	assert.ok(one.total >= one.rooms.length, show(one));
	assert.equal(ox.d.total, ox.d.rooms.length, 'total without a limit reached');
	const dflt = await ok(o, 'list_rooms', {});
	assert.ok(dflt.rooms.length >= 4 && dflt.rooms.length <= 100, show(dflt.rooms.length));

	/* get_room */
	assert.equal((await ok(x, 'get_room', { room: pub })).type, 'public');
	await refused(x, 'get_room', { room: priv }, 'FORBIDDEN');
	await refused(x, 'get_room', { room: prot }, 'FORBIDDEN');
	assert.equal((await ok(m, 'get_room', { room: priv })).type, 'private');
	const gi = await ok(x, 'get_room', { room: imp });
	assert.deepEqual(gi, { room: imp, type: 'public', status: 'active', implicit: true,
		subscribers: 1 });
	await refused(x, 'get_room', { room: uniqueRoom('ghost') }, 'NOT_FOUND');
	/* becoming a member makes the protected room visible */
	await sub(x, prot, PASSWORD);
	assert.ok((await names(x)).names.includes(prot));
	assert.ok(!show(await ok(x, 'get_room', { room: prot })).includes('c0rrect'));
});

test('get_room_members: members only, with online flags', async () => {
	const o = await as('gm-owner');
	const m = await as('gm-mem');
	const x = await as('gm-out');
	const room = uniqueRoom('gm');
	await create(o, room);
	await ok(o, 'add_member', { room, user_id: 'gm-absent', role: 'moderator' });
	await sub(m, room);
	await refused(x, 'get_room_members', { room }, 'FORBIDDEN');
	await refused(o, 'get_room_members', { room: uniqueRoom('ghost') }, 'NOT_FOUND');

	const online = async () => {
		const d = await ok(m, 'get_room_members', { room });
		assert.equal(d.room, room);
		return Object.fromEntries(d.members.map((e) => [e.user_id, e.online]));
	};
	/* the owner is connected but not subscribed: not online in the room */
	assert.deepEqual(await online(), { 'gm-owner': false, 'gm-mem': true, 'gm-absent': false });
	await sub(o, room);
	assert.deepEqual(await online(), { 'gm-owner': true, 'gm-mem': true, 'gm-absent': false });
	const d = await ok(o, 'get_room_members', { room });
	for (const e of d.members) {
		assert.equal(typeof e.since, 'number');
		assert.ok(['owner', 'moderator', 'member'].includes(e.role), show(e));
	}
	/* two connections of the owner: online while either is subscribed */
	const o2 = await as('gm-owner');
	await sub(o2, room);
	await o.close();
	assert.equal((await online())['gm-owner'], true);
	await o2.unsubscribe(room);
	await waitFor(async () => (await online())['gm-owner'] === false,
		{ what: 'gm-owner offline after leaving' });
	const absent = await as('gm-absent');
	await sub(absent, room);
	assert.deepEqual(await online(), { 'gm-owner': false, 'gm-mem': true, 'gm-absent': true });
});

test('implicit rooms work as before: subscribe creates, anyone sends', async () => {
	const a = await as('im-a');
	const b = await as('im-b');
	const c = await as('im-c');
	const room = uniqueRoom('im');
	const r = await sub(a, room);
	assert.equal(r.room, room);
	await sub(b, room);
	/* c is not subscribed but may still send; no member events in implicit rooms */
	const s = await send(c, room, 'from outside');
	assert.equal(s.delivered, 2);
	await allGet([a, b], room, 'from outside', 'im-c');
	await noneGet([c], isMsg(room));
	await noneGet([a, b], (m) => m.event === 'member_joined', 0);
	const g = await ok(c, 'get_room', { room });
	assert.deepEqual(g,
		{ room, type: 'public', status: 'active', implicit: true, subscribers: 2 });
	/* no owner: nobody may manage it */
	await refused(a, 'delete_room', { room }, ['FORBIDDEN', 'NOT_FOUND', 'BAD_REQUEST']);
	await refused(a, 'add_member', { room, user_id: 'im-c' },
		['FORBIDDEN', 'NOT_FOUND', 'BAD_REQUEST']);
	assert.equal((await send(b, room, 'still there')).delivered, 2);
	await allGet([a, b], room, 'still there', 'im-b');
});

test('a server admin acts as owner in every room', async () => {
	const o = await as('sa-owner');
	const root = await as('sa-root', ['admin']);
	const m = await as('sa-mem');
	const room = uniqueRoom('sa');
	await create(o, room, { type: 'private' });
	await ok(o, 'add_member', { room, user_id: 'sa-mem' });
	await sub(m, room);
	assert.equal((await ok(root, 'get_room', { room })).owner, 'sa-owner');
	assert.ok((await ok(root, 'get_room_members', { room })).members.length >= 2);
	await ok(root, 'add_member', { room, user_id: 'sa-adm', role: 'admin' });
	await ok(root, 'set_member_role', { room, user_id: 'sa-adm', role: 'moderator' });
	await sub(root, room); /* a private room */
	const s = await send(root, room, 'root speaks');
	assert.ok(s.delivered >= 2);
	await allGet([m], room, 'root speaks', 'sa-root');
	await ok(root, 'set_room_status', { room, status: 'inactive' });
	await ok(root, 'set_room_status', { room, status: 'active' });
	await ok(root, 'delete_room', { room });
	const e = await m.next(ev('room_closed', { room }));
	assert.equal(e.data.reason, 'deleted');
	await refused(o, 'get_room', { room }, 'NOT_FOUND');
});

/* ---------------------------------------------------------------- stats */

const ROOM_COUNTS = ['total_rooms', 'active_rooms', 'total_members', 'total_subscriptions',
	'total_users', 'rooms_created', 'rooms_deleted'];

/** the stats rooms block of @srv; @expect: the ROOM_COUNTS values in that order */
async function roomStats(srv, expect) {
	const s = await getStats(srv, token('stats-admin', { roles: ['admin'] }));
	assert.equal(s.total_rooms, s.rooms.total_rooms, show(s));
	if (expect) {
		const got = Object.fromEntries(ROOM_COUNTS.map((k) => [k, s.rooms[k]]));
		const want = Object.fromEntries(ROOM_COUNTS.map((k, i) => [k, expect[i]]));
		assert.deepEqual(got, want, show(s.rooms));
	}
	return s.rooms;
}

let statsSrv; /* a server of its own, so the counts are exact */
after(async () => {
	await stopServer(statsSrv);
});

test('stats rooms block: rooms, members, subscriptions, creations, deletions', async () => {
	statsSrv = await startOwnServer({ label: 'acl-stats', env });
	const srv = statsSrv;
	/* rooms, active, members, subscriptions, users, created, deleted */
	await roomStats(srv, [0, 0, 0, 0, 0, 0, 0]);
	const o = await as('stat-owner', undefined, srv);
	const u = await as('stat-user', undefined, srv);
	const u2 = await as('stat-user', undefined, srv);
	const r1 = uniqueRoom('st1');
	const r2 = uniqueRoom('st2');
	const imp = uniqueRoom('st-imp');
	await create(o, r1);
	await create(o, r2, { type: 'private' });
	await ok(o, 'add_member', { room: r2, user_id: 'stat-m' });
	const j0 = (await roomStats(srv, [2, 2, 3, 0, 0, 2, 0])).total_join_events;

	await sub(u, imp);
	await sub(u, r1); /* stat-user becomes a member of r1 */
	await sub(u2, r1);
	const a = await roomStats(srv, [3, 3, 4, 3, 1, 3, 0]);
	assert.equal(a.total_join_events - j0, 3);

	await ok(o, 'set_room_status', { room: r2, status: 'archived' });
	const b = await roomStats(srv, [3, 2, 4, 3, 1, 3, 0]); /* archived is not active */

	await u2.unsubscribe(r1);
	const c = await roomStats(srv, [3, 2, 4, 2, 1, 3, 0]);
	assert.equal(c.total_leave_events - b.total_leave_events, 1);

	await ok(o, 'delete_room', { room: r1 });
	await u.next(ev('room_closed', { room: r1 }));
	await roomStats(srv, [2, 1, 2, 1, 1, 3, 1]);
});
