// Bounds on created rooms (issue 11; SPEC 7): rooms per owner (server admins exempt; delete
// frees the slot; a restart on PostgreSQL keeps the count), rooms in total, metadata size,
// members per room on every path that makes one (add_member, a protected room's password, a
// public created room's subscribe), and room-password guessing: after rooms.password_attempts
// wrong passwords the user gets RATE_LIMITED for that room, even with the right one, until the
// window has passed; the server-wide budget of password hashes answers the excess
// RATE_LIMITED. Every refusal names its key and shows in /api/stats limits.refused.

import assert from 'node:assert/strict';
import { test, after, afterEach, startServer, stopServer, getStats, sleep } from
	'./lib/harness.mjs';
import { sharedDb } from './lib/pg.mjs';
import { unique, open, ok, fails, subscribeRoom, serverSet } from './lib/persist.mjs';

const WINDOW_S = 2;
const show = (v) => JSON.stringify(v);

/* one server per settings, started on first use */
const started = new Map();
function server(label, env) {
	if (!started.has(label))
		started.set(label, startServer({ label, env: {
			QUOTECAST_LIMITS_RATE_PER_S: '10000',
			QUOTECAST_LIMITS_RATE_BURST: '10000',
			...env,
		} }));
	return started.get(label);
}

const dbServers = serverSet({ label: 'room-limits-db' });

after(async () => {
	for (const s of started.values())
		await stopServer(await s);
});
afterEach(() => dbServers.cleanup());

async function refusedCount(s, key) {
	const st = await getStats(s);
	const n = st.limits?.refused?.[key];
	assert.equal(typeof n, 'number', `stats limits.refused.${key}: ${show(st.limits)}`);
	return n;
}

/** a request that must fail with @code and a message starting with the limit's @key */
async function limited(c, action, payload, code, key) {
	const e = await fails(c, action, payload, code);
	assert.ok(e.message.startsWith(`${key}: `), `${key}: ${show(e)}`);
}

/** a room subscribe that must fail with @code (and, if given, a message starting with @key) */
async function subFails(c, room, password, code, key) {
	const r = await subscribeRoom(c, room, password);
	assert.equal(r.success, false, `${c.label}: subscribe ${room}: ${show(r)}`);
	assert.equal(r.error?.code, code, `${c.label}: subscribe ${room}: ${show(r)}`);
	if (key)
		assert.ok(r.error.message.startsWith(`${key}: `), show(r));
}

async function subOk(c, room, password) {
	const r = await subscribeRoom(c, room, password);
	assert.equal(r.success, true, `${c.label}: subscribe ${room}: ${show(r)}`);
}

test('rooms.max_per_owner: refused past it, a deleted room frees its slot, admins are exempt',
async () => {
	const s = await server('owner', { QUOTECAST_ROOMS_MAX_PER_OWNER: '3' });
	const alice = await open(s, unique('alice'));
	const alice2 = await open(s, alice.label);
	const bob = await open(s, unique('bob'));
	const root = await open(s, unique('root'), 'admin');
	const rooms = [unique('r'), unique('r'), unique('r')];
	const meta = { blob: 'm'.repeat(4096 - 11) }; /* exactly 4096 bytes serialised */
	await ok(alice, 'create_room', { room: rooms[0], metadata: meta });
	await ok(alice2, 'create_room', { room: rooms[1], type: 'private' });
	await ok(alice, 'create_room', { room: rooms[2], type: 'protected', password: 'pw' });
	const before = await refusedCount(s, 'rooms.max_per_owner');
	await limited(alice2, 'create_room', { room: unique('r') }, 'LIMIT_EXCEEDED',
		'rooms.max_per_owner');
	assert.equal(await refusedCount(s, 'rooms.max_per_owner'), before + 1);
	await ok(bob, 'create_room', { room: unique('b') });

	await ok(alice, 'delete_room', { room: rooms[0] });
	await ok(alice, 'create_room', { room: unique('r') });
	await limited(alice, 'create_room', { room: unique('r') }, 'LIMIT_EXCEEDED',
		'rooms.max_per_owner');

	for (let i = 0; i < 5; i++)
		await ok(root, 'create_room', { room: unique('adm') });
	/* metadata: 4096 bytes serialised at most */
	await fails(bob, 'create_room', { room: unique('b'), metadata: { blob: 'm'.repeat(4086) } },
		'BAD_REQUEST');
});

test('rooms.max_total: created rooms over all owners; implicit rooms do not count', async () => {
	const s = await server('total', { QUOTECAST_ROOMS_MAX_TOTAL: '3' });
	const users = await Promise.all(['u1', 'u2', 'u3', 'u4'].map((u) => open(s, unique(u))));
	const root = await open(s, unique('root'), 'admin');
	const rooms = [];
	for (const u of users.slice(0, 3)) {
		rooms.push(unique('t'));
		await ok(u, 'create_room', { room: rooms.at(-1) });
	}
	await limited(users[3], 'create_room', { room: unique('t') }, 'LIMIT_EXCEEDED',
		'rooms.max_total');
	await limited(root, 'create_room', { room: unique('t') }, 'LIMIT_EXCEEDED',
		'rooms.max_total');
	assert.equal(await refusedCount(s, 'rooms.max_total'), 2);
	await subOk(users[3], unique('implicit'));
	await ok(users[0], 'delete_room', { room: rooms[0] });
	await ok(users[3], 'create_room', { room: unique('t') });
});

test('rooms.max_members: add_member, a public room\'s subscribe and a protected room\'s ' +
	'password all stop at it; a removed member frees a place', async () => {
	const s = await server('members', { QUOTECAST_ROOMS_MAX_MEMBERS: '3',
		QUOTECAST_ROOMS_PASSWORD_HASHES_PER_S: '100000' });
	const o = await open(s, unique('owner'));
	const [u, v, w] = await Promise.all(['u', 'v', 'w'].map((x) => open(s, unique(x))));
	const key = 'rooms.max_members';
	const before = await refusedCount(s, key);

	const priv = unique('priv');
	await ok(o, 'create_room', { room: priv, type: 'private' });
	await ok(o, 'add_member', { room: priv, user_id: unique('m') });
	const m2 = unique('m');
	await ok(o, 'add_member', { room: priv, user_id: m2 });
	await limited(o, 'add_member', { room: priv, user_id: unique('m') }, 'LIMIT_EXCEEDED', key);
	await ok(o, 'remove_member', { room: priv, user_id: m2 });
	await ok(o, 'add_member', { room: priv, user_id: unique('m') });

	const pub = unique('pub');
	await ok(o, 'create_room', { room: pub });
	await subOk(u, pub);
	await subOk(v, pub);
	await subFails(w, pub, undefined, 'LIMIT_EXCEEDED', key);

	const prot = unique('prot');
	await ok(o, 'create_room', { room: prot, type: 'protected', password: 'pw' });
	await subOk(u, prot, 'pw');
	await subOk(v, prot, 'pw');
	await subFails(w, prot, 'pw', 'LIMIT_EXCEEDED', key);
	/* the room's own capacity still answers ROOM_FULL */
	const small = unique('small');
	await ok(o, 'create_room', { room: small, max_members: 1 });
	await subFails(w, small, undefined, 'ROOM_FULL');
	assert.equal(await refusedCount(s, key), before + 3);
	assert.equal((await ok(o, 'get_room', { room: pub })).members, 3);
});

test('room passwords: after rooms.password_attempts wrong ones the next attempt, even with ' +
	'the right password, gets RATE_LIMITED; after the window it works', async () => {
	const s = await server('passwords', { QUOTECAST_ROOMS_PASSWORD_ATTEMPTS: '3',
		QUOTECAST_ROOMS_PASSWORD_WINDOW_S: String(WINDOW_S),
		QUOTECAST_ROOMS_PASSWORD_HASHES_PER_S: '100000' });
	const o = await open(s, unique('owner'));
	const m = await open(s, unique('mallory'));
	const n = await open(s, unique('nina'));
	const room = unique('vault');
	const other = unique('safe');
	await ok(o, 'create_room', { room, type: 'protected', password: 'right' });
	await ok(o, 'create_room', { room: other, type: 'protected', password: 'right' });
	const key = 'rooms.password_attempts';
	const before = await refusedCount(s, key);

	for (let i = 0; i < 3; i++)
		await subFails(m, room, `guess ${i}`, 'WRONG_PASSWORD');
	await subFails(m, room, 'right', 'RATE_LIMITED', key);
	await subFails(m, room, 'wrong again', 'RATE_LIMITED', key);
	assert.equal(await refusedCount(s, key), before + 2);
	/* per user and room: the same user elsewhere, another user here */
	await subOk(m, other, 'right');
	await subOk(n, room, 'right');
	/* the connection stays: wrong passwords are not bad messages */
	await ok(m, 'list_rooms', {});

	/* after the window the right password works (retried until then; each try is cheap) */
	let r;
	for (const t0 = Date.now(); Date.now() - t0 < WINDOW_S * 1000 + 10000;) {
		r = await subscribeRoom(m, room, 'right');
		if (r.success || r.error?.code !== 'RATE_LIMITED')
			break;
		await sleep(200);
	}
	assert.equal(r.success, true, show(r));
	assert.equal((await ok(o, 'get_room', { room })).members, 3);
});

test('rooms.password_hashes_per_s: guesses beyond the server-wide budget are answered ' +
	'RATE_LIMITED without a check', async () => {
	const s = await server('budget', { QUOTECAST_ROOMS_PASSWORD_HASHES_PER_S: '1' });
	const o = await open(s, unique('owner'));
	const room = unique('vault');
	await ok(o, 'create_room', { room, type: 'protected', password: 'right' });
	const guessers = await Promise.all(Array.from({ length: 6 }, () => open(s, unique('g'))));
	const answers = await Promise.all(guessers.map((g) => subscribeRoom(g, room, 'wrong')));
	const codes = answers.map((r) => r.error?.code);
	const budget = answers.filter((r) => r.error?.code === 'RATE_LIMITED' &&
		r.error.message.startsWith('rooms.password_hashes_per_s: '));
	assert.ok(codes.every((c) => c === 'WRONG_PASSWORD' || c === 'RATE_LIMITED'), show(codes));
	assert.ok(codes.filter((c) => c === 'WRONG_PASSWORD').length <= 2, show(codes));
	assert.ok(budget.length >= 4, show(answers));
	assert.ok(await refusedCount(s, 'rooms.password_hashes_per_s') >= 4);
	/* a budget refusal is no wrong attempt: these users are not throttled for it */
	assert.equal(await refusedCount(s, 'rooms.password_attempts'), 0);
});

test('default settings: one owner gets 100 rooms, a user 5 wrong passwords per room', async () => {
	const s = await server('defaults', {});
	const a = await open(s, unique('alice'));
	for (let i = 0; i < 100; i++)
		await ok(a, 'create_room', { room: unique('d'), metadata: { i, pad: 'x'.repeat(4000) } });
	await limited(a, 'create_room', { room: unique('d') }, 'LIMIT_EXCEEDED',
		'rooms.max_per_owner');

	const o = await open(s, unique('owner'));
	const m = await open(s, unique('mallory'));
	const room = unique('vault');
	/* protected rooms and guesses take hashes from the budget (10/s): wait for a turn */
	const paced = async (fn) => {
		for (;;) {
			const r = await fn();
			if (r.success !== false || r.error?.code !== 'RATE_LIMITED' ||
			    !r.error.message.startsWith('rooms.password_hashes_per_s: '))
				return r;
			await sleep(50);
		}
	};
	const made = await paced(() => o.request('create_room', { room, type: 'protected',
		password: 'right' }));
	assert.equal(made.success, true, show(made));
	for (let i = 0; i < 5; i++) {
		const r = await paced(() => subscribeRoom(m, room, `guess ${i}`));
		assert.equal(r.error?.code, 'WRONG_PASSWORD', show(r));
	}
	await subFails(m, room, 'right', 'RATE_LIMITED', 'rooms.password_attempts');
});

test('rooms.max_per_owner survives a restart on PostgreSQL: loaded rooms count', async () => {
	const url = await sharedDb('room_limits');
	const env = { QUOTECAST_ROOMS_MAX_PER_OWNER: '2' };
	let s = await dbServers.up(url, { env });
	const alice = unique('alice');
	const [r1, r2] = [unique('p'), unique('p')];
	let a = await open(s, alice);
	await ok(a, 'create_room', { room: r1 });
	await ok(a, 'create_room', { room: r2, type: 'protected', password: 'pw' });
	await limited(a, 'create_room', { room: unique('p') }, 'LIMIT_EXCEEDED',
		'rooms.max_per_owner');

	s = await dbServers.bounce(s, url, { env });
	a = await open(s, alice);
	await limited(a, 'create_room', { room: unique('p') }, 'LIMIT_EXCEEDED',
		'rooms.max_per_owner');
	await ok(a, 'delete_room', { room: r1 });
	await ok(a, 'create_room', { room: unique('p') });
	await limited(a, 'create_room', { room: unique('p') }, 'LIMIT_EXCEEDED',
		'rooms.max_per_owner');
	/* someone else is not affected */
	await ok(await open(s, unique('bob')), 'create_room', { room: unique('p') });
});
