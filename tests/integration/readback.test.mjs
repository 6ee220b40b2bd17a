// Room read-back (SPEC 2.9): a room subscribe with since_seq and epoch replays the room's log
// after that position (targeting applied), with recovered:true, then live; a foreign epoch or a
// position the log no longer reaches says recovered:false and replays nothing. A created room's
// log is durable in PostgreSQL (room_history, and the epoch in its room's row): a client reads
// back across a restart with the same epoch, and the seqs go on where they were. An implicit
// room's log is memory only: after a restart it has a new epoch.

import assert from 'node:assert/strict';
import { test, afterEach } from './lib/harness.mjs';
import { sharedDb } from './lib/pg.mjs';
import { unique, open, ok, subscribeRoom, take, serverSet, rows } from './lib/persist.mjs';

const servers = serverSet({ label: 'readback' });
const { up, bounce } = servers;
afterEach(() => servers.cleanup());

const isRoomMsg = (room) => (m) => m.type === 'event' && m.event === 'room_message' &&
	m.data.room === room;

test('a created room\'s log survives a restart: subscribe with since_seq and epoch replays ' +
	'exactly what followed, in order, then live data goes on from the next seq', async () => {
	const url = await sharedDb('readback');
	let s = await up(url);
	const owner = unique('owner');
	const alice = unique('alice');
	const bob = unique('bob');
	const room = unique('desk');
	let o = await open(s, owner);
	await ok(o, 'create_room', { room, type: 'public' });
	let r = await subscribeRoom(o, room);
	assert.equal(r.success, true, JSON.stringify(r));
	const epoch = r.data.epoch;
	assert.match(epoch, /^[0-9a-f]{12}$/);
	let a = await open(s, alice);
	r = await subscribeRoom(a, room);
	assert.equal(r.success, true, JSON.stringify(r));
	assert.equal(r.data.epoch, epoch, 'one log, one epoch');
	for (let n = 1; n <= 5; n++)
		await ok(o, 'send_message', { room, content: `m${n}` });
	await ok(o, 'send_message', { room, content: 'for bob', target_users: [bob] });
	const got = (await take(a, 5, isRoomMsg(room))).filter(isRoomMsg(room));
	assert.deepEqual(got.map((m) => m.data.content), ['m1', 'm2', 'm3', 'm4', 'm5']);
	assert.ok(got.every((m) => m.data.epoch === epoch), JSON.stringify(got));
	const seqs = got.map((m) => m.data.seq);
	for (let i = 1; i < seqs.length; i++)
		assert.equal(seqs[i], seqs[i - 1] + 1, `consecutive seqs ${seqs}`);
	const pos = got[1].data.seq; /* alice processed m1 and m2 */
	await a.close();
	await o.close();
	/* the entries are in the store with their seqs */
	const stored = await rows(url, `SELECT count(*) FROM room_history WHERE room = '${room}'`);
	assert.ok(Number(stored[0][0]) >= 6, JSON.stringify(stored));

	s = await bounce(s, url);
	a = await open(s, alice);
	r = await subscribeRoom(a, room);
	/* the plain subscribe tells the position: the same epoch, the same last seq */
	assert.equal(r.data.epoch, epoch, 'the epoch survives the restart');
	assert.equal(r.data.seq, seqs[4] + 1, 'the last seq (the targeted message) too');
	await a.close();

	a = await open(s, alice);
	r = await a.ask({ type: 'subscribe', room, since_seq: pos, epoch }, 5000);
	assert.equal(r.success, true, JSON.stringify(r));
	assert.equal(r.data.recovered, true, JSON.stringify(r.data));
	const replay = (await take(a, 3, isRoomMsg(room))).filter(isRoomMsg(room));
	assert.deepEqual(replay.map((m) => m.data.content), ['m3', 'm4', 'm5'],
		'exactly what followed, without the message targeted at bob');
	assert.deepEqual(replay.map((m) => m.data.seq), seqs.slice(2));
	o = await open(s, owner);
	await ok(o, 'send_message', { room, content: 'm6' });
	const live = (await take(a, 1, isRoomMsg(room))).filter(isRoomMsg(room));
	assert.equal(live[0].data.content, 'm6');
	assert.equal(live[0].data.seq, seqs[4] + 2, 'seqs go on after the restart');
	assert.equal(live[0].data.epoch, epoch);
	await a.nothing(isRoomMsg(room), 300);

	/* bob, a reader it was addressed to, gets the targeted one back */
	const b = await open(s, bob);
	r = await b.ask({ type: 'subscribe', room, since_seq: seqs[4], epoch }, 5000);
	assert.equal(r.data.recovered, true, JSON.stringify(r.data));
	const mine = (await take(b, 2, isRoomMsg(room))).filter(isRoomMsg(room));
	assert.deepEqual(mine.map((m) => m.data.content), ['for bob', 'm6']);

	/* a foreign epoch: recovered:false, nothing replayed */
	const c = await open(s, unique('carol'));
	r = await c.ask({ type: 'subscribe', room, since_seq: 1, epoch: '0123456789ab' }, 5000);
	assert.equal(r.data.recovered, false, JSON.stringify(r.data));
	await c.nothing(isRoomMsg(room), 300);
});

test('an implicit room\'s log is memory only: after a restart its epoch is new and an old ' +
	'position is recovered:false', async () => {
	const url = await sharedDb('readback_implicit');
	let s = await up(url);
	const room = unique('lobby');
	let a = await open(s, unique('alice'));
	let r = await subscribeRoom(a, room);
	const epoch = r.data.epoch;
	await ok(a, 'send_message', { room, content: 'x' });
	await take(a, 1, isRoomMsg(room));
	await a.close();
	s = await bounce(s, url);
	a = await open(s, unique('alice'));
	r = await a.ask({ type: 'subscribe', room, since_seq: 1, epoch }, 5000);
	assert.equal(r.data.recovered, false, JSON.stringify(r.data));
	assert.notEqual(r.data.epoch, epoch);
});
