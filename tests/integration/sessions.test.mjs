// Sessions that outlive their connection (SPEC 2.8; sessions.md): a connection lost without a
// close frame is suspended; ?resume=<token> by the same user restores it (same session_id, a new
// token, the buffered room / direct messages in order, then the missed ticks from the ring with
// the filter kept, then live ticks with no gap and no duplicate); recovered:false after a buffer
// overflow or an overrun ring; expiry after the TTL; tokens bound to their user; a slow consumer
// closed with 4008 resumes without losing a message. The offline queue is in offline.test.mjs.
//
// Each test runs its own server (the harness turns suspension off by default: every server here
// sets QUOTECAST_SESSIONS_TTL_S), so the stats counters it checks are its own.

import assert from 'node:assert/strict';
import { test, after, startServer, stopServer, getStats, sleep } from './lib/harness.mjs';
import {
	uniqueSymbol, tick, publishOk, subscribeStream, isStreamData, anyStreamData, nextTick,
} from './lib/streams.mjs';
import {
	unique, ev, isHex, drop, reconnection, waitStats, waitSuspended, open, resume, take, queued, ok,
	broadcast, summary,
} from './lib/sessions.mjs';

const GRACE_MS = 250;

const BASE_ENV = {
	QUOTECAST_SESSIONS_TTL_S: '30',
	QUOTECAST_LIMITS_RATE_PER_S: '10000',
	QUOTECAST_LIMITS_RATE_BURST: '10000',
	QUOTECAST_LIMITS_MAX_BAD_MESSAGES: '1000',
};

const running = new Set();

async function serverWith(label, env = {}) {
	const s = await startServer({ label, env: { ...BASE_ENV, ...env } });
	running.add(s);
	return s;
}

/* stop @s, asserting a clean exit (sanitizer reports at exit fail the test) */
async function finish(s) {
	running.delete(s);
	await stopServer(s);
}

after(async () => {
	for (const s of [...running])
		await finish(s);
});

const show = (v) => JSON.stringify(v);
const isBuffered = (m) => m.event === 'room_message' || m.event === 'direct_message';

/** the resumed-session checks shared by every resume */
function assertResumed(c, old, { recovered, replayed }) {
	const s = c.session;
	assert.equal(s.resumed, true, `resumed: ${show(s)}`);
	assert.equal(s.session_id, old.session_id, `same session_id: ${show(s)}`);
	assert.equal(s.user_id, old.user_id);
	assert.ok(isHex(s.resume_token, 64), `resume_token 64 hex: ${show(s)}`);
	assert.notEqual(s.resume_token, old.resume_token, 'a new resume token');
	assert.ok(s.resume_token.startsWith(s.session_id), 'token = session_id + secret');
	assert.equal(typeof s.server_time, 'number');
	assert.ok(Number.isInteger(s.heartbeat_interval_ms) && s.heartbeat_interval_ms > 0);
	assert.equal(s.recovered, recovered, `recovered: ${show(s)}`);
	assert.equal(s.replayed, replayed, `replayed: ${show(s)}`);
}

/** a fresh session although a token was given */
function assertFresh(c, old, user) {
	const s = c.session;
	assert.equal(s.resumed, false, `a fresh session: ${show(s)}`);
	assert.ok(isHex(s.session_id, 32), show(s));
	assert.notEqual(s.session_id, old.session_id, `a new session_id: ${show(s)}`);
	assert.notEqual(s.resume_token, old.resume_token);
	assert.equal(s.user_id, user);
}

test('resume after an abrupt drop: buffered room and direct messages in order, then the ' +
	'missed ticks filtered, then live with no gap; rooms and streams kept', async (t) => {
	const server = await serverWith('resume');
	const alice = unique('alice');
	const room = unique('room');
	const sym = uniqueSymbol('RES');
	const a = await open(server, alice);
	const bob = await open(server, unique('bob'));
	const admin = await open(server, unique('root'), 'admin');
	await a.subscribe(room);
	await bob.subscribe(room);
	await subscribeStream(a, { symbol: sym, fields: ['price', 'volume'] });
	await publishOk(server, tick(sym, { price: 1, bid: 0.9 }));
	const first = await nextTick(a, sym);
	assert.equal(first.seq, 1);
	assert.deepEqual(first.data, { price: 1 });
	const old = a.session;
	assert.ok(isHex(old.resume_token, 64), show(old));
	assert.ok(old.resume_token.startsWith(old.session_id), show(old));

	drop(a);
	const st = await waitSuspended(server, 1);
	assert.equal(st.total_connections, 2, 'only live connections are counted');
	assert.equal(st.reconnection.resumed, 0);

	/* while suspended: room and direct messages (buffered), ticks (recovered from the ring) */
	await ok(bob, 'send_message', { room, content: { n: 1 } });
	const d1 = await ok(admin, 'send_to_user', { user_id: alice, content: { d: 1 } });
	assert.ok(!d1.offline.includes(alice), `a suspended user is not offline: ${show(d1)}`);
	await broadcast(server, { room, content: { n: 2 } });
	await ok(admin, 'send_to_user', { user_ids: [alice], content: { d: 2 } });
	const d3 = await broadcast(server, { to_users: [alice], content: { d: 3 } });
	assert.ok(!(d3.offline ?? []).includes(alice), `a suspended user is not offline: ${show(d3)}`);
	await ok(bob, 'send_message', { room, content: { n: 3 } });
	/* each log in its own order (SPEC 2.9): the room's, then the inbox's */
	const expected = ['room:{"n":1}', 'room:{"n":2}', 'room:{"n":3}', 'direct:{"d":1}',
		'direct:{"d":2}', 'direct:{"d":3}'];
	const r = await publishOk(server, [
		tick(sym, { price: 2, bid: 1.9 }),              /* seq 2 -> {price} */
		tick(sym, { bid: 2.9, ask: 3.1 }),              /* seq 3 -> none of the fields */
		tick(sym, { volume: 40, ask: 4.1 }),            /* seq 4 -> {volume} */
		tick(sym, { price: 5, volume: 50, bid: 4.9 }),  /* seq 5 -> {price, volume} */
	]);
	assert.equal(r.accepted, 4);
	assert.equal((await reconnection(server)).suspended, 1);

	/* keep publishing across the resume, so replay and live meet under load */
	let publishing = true;
	let lastSeq = 5;
	const publisher = (async () => {
		while (publishing) {
			const res = await publishOk(server, tick(sym, { price: 1000 + lastSeq + 1, bid: 1 }));
			assert.equal(res.accepted, 1);
			lastSeq++;
			await sleep(3);
		}
	})();
	let a2;
	try {
		await sleep(30);
		a2 = await resume(server, old.resume_token, alice);
		/*
		 * nothing was dropped from the buffer, but tick 1 went out on the socket that died:
		 * without the client's positions the server cannot know it was read
		 */
		assertResumed(a2, old, { recovered: false, replayed: expected.length });
		const seqAtResume = lastSeq;
		/* at least a few live ticks after the resume */
		await queued(a2, (m) => m.event === 'stream_data' && m.data.seq >= seqAtResume + 10);
	} finally {
		publishing = false;
		await publisher;
	}
	const finalSeq = lastSeq;
	/* seq 3 carries none of the fields: every other seq from 2 to finalSeq, once */
	const wanted = finalSeq - 2;
	const got = await take(a2, wanted, isStreamData(sym));
	await a2.nothing(anyStreamData, GRACE_MS);

	const order = got.map(summary);
	const other = got.filter((m) => !isBuffered(m) && m.event !== 'stream_data');
	assert.deepEqual(other, [], `nothing else arrives: ${show(order)}`);
	const buffered = got.filter(isBuffered);
	assert.deepEqual(buffered.map(summary), expected, `buffered messages in order: ${show(order)}`);
	const lastBuffered = got.findLastIndex(isBuffered);
	const firstTick = got.findIndex((m) => m.event === 'stream_data');
	assert.ok(lastBuffered < firstTick, `buffered messages before the stream replay: ${show(order)}`);
	for (const m of buffered)
		assert.notEqual(m.data.offline, true, `a buffered message is not an offline one: ${show(m)}`);

	const ticks = got.filter((m) => m.event === 'stream_data').map((m) => m.data);
	const seqs = ticks.map((d) => d.seq);
	const want = [2];
	for (let s = 4; s <= finalSeq; s++)
		want.push(s);
	assert.deepEqual(seqs, want, `no gap, no duplicate from replay to live: ${show(order)}`);
	assert.ok(ticks.every((d) => d.snapshot !== true), `no snapshot: ${show(order)}`);
	const nReplay = ticks.findIndex((d) => d.replay !== true);
	assert.ok(nReplay >= 3, `the missed ticks 2, 4, 5 come as replay: ${show(order)}`);
	assert.ok(ticks.slice(nReplay).every((d) => d.replay !== true),
		`replay only before live: ${show(order)}`);
	assert.ok(ticks.length - nReplay >= 1, `live ticks after the replay: ${show(order)}`);
	assert.deepEqual(ticks[0].data, { price: 2 }, 'replay keeps the field filter');
	assert.deepEqual(ticks[1].data, { volume: 40 });
	assert.deepEqual(ticks[2].data, { price: 5, volume: 50 });
	for (const d of ticks.slice(3))
		assert.deepEqual(d.data, { price: 1000 + d.seq }, `filter kept at seq ${d.seq}`);
	t.diagnostic(`${nReplay} replayed ticks, ${ticks.length - nReplay} live, last seq ${finalSeq}`);

	/* the room subscription is still active: a new room message arrives live */
	const sm = await ok(bob, 'send_message', { room, content: { n: 4 } });
	assert.equal(sm.delivered, 2, `bob and alice: ${show(sm)}`);
	const live = await a2.next(ev('room_message', { room }));
	assert.deepEqual(live.data.content, { n: 4 });
	assert.notEqual(live.data.offline, true);
	await bob.next(ev('room_message', { room, content: { n: 4 } }));

	let s = await getStats(server);
	assert.equal(s.reconnection.suspended, 0, show(s.reconnection));
	assert.equal(s.reconnection.resumed, 1, show(s.reconnection));
	assert.equal(s.reconnection.replayed, expected.length, show(s.reconnection));
	assert.equal(s.reconnection.buffer_dropped, 0, show(s.reconnection));
	assert.equal(s.total_connections, 3);

	/* the old token no longer resumes: a fresh session, subscribed to nothing */
	const x = await resume(server, old.resume_token, alice);
	assertFresh(x, old, alice);
	assert.equal(x.session.session_id === a2.session.session_id, false);
	await ok(bob, 'send_message', { room, content: { n: 5 } });
	await a2.next(ev('room_message', { room, content: { n: 5 } }));
	await publishOk(server, tick(sym, { price: 7 }));
	assert.equal((await nextTick(a2, sym)).seq, finalSeq + 1);
	await x.nothing((m) => m.event === 'room_message' || m.event === 'stream_data', GRACE_MS);
	assert.equal((await reconnection(server)).resumed, 1, 'the old token resumed nothing');

	/* the new token does resume, once more */
	await x.close();
	await waitSuspended(server, 1);
	drop(a2);
	await waitSuspended(server, 2);
	await ok(bob, 'send_message', { room, content: { n: 6 } });
	const a3 = await resume(server, a2.session.resume_token, alice);
	/* a2 had been written events when it died: complete as far as the server knows is not
	 * complete as far as the client knows, so no recovered:true */
	assertResumed(a3, a2.session, { recovered: false, replayed: 1 });
	assert.equal(a3.session.session_id, old.session_id);
	const again = await take(a3, 1);
	assert.deepEqual(again.map(summary), ['room:{"n":6}']);
	s = await reconnection(server);
	assert.equal(s.resumed, 2, show(s));
	assert.equal(s.suspended, 1, `x's session is still suspended: ${show(s)}`);
	await finish(server);
});

test('a token is bound to its user: another user, an unknown or a malformed token get a ' +
	'fresh session; the owner can still resume', async () => {
	const server = await serverWith('stolen');
	const alice = unique('alice');
	const mallory = unique('mallory');
	const owner = await open(server, unique('owner'));
	const room = unique('created');
	await ok(owner, 'create_room', { room });
	await owner.subscribe(room);
	const a = await open(server, alice);
	await a.subscribe(room);
	await owner.next(ev('member_joined', { room, user_id: alice }));
	const old = a.session;
	drop(a);
	await waitSuspended(server, 1);

	const m = await resume(server, old.resume_token, mallory);
	assertFresh(m, old, mallory);
	const unknown = await resume(server, 'f'.repeat(64), alice);
	assertFresh(unknown, old, alice);
	const malformed = await resume(server, 'not-a-token', alice);
	assertFresh(malformed, old, alice);
	let rc = await reconnection(server);
	assert.equal(rc.suspended, 1, `alice's session is untouched: ${show(rc)}`);
	assert.equal(rc.resumed, 0, show(rc));

	/* a room message and a room event while suspended: buffered for alice only */
	await ok(owner, 'send_message', { room, content: 'while away' });
	const dave = unique('dave');
	await ok(owner, 'add_member', { room, user_id: dave });
	await Promise.all([m, unknown, malformed].map((c) =>
		c.nothing((x) => x.event === 'room_message' || x.event === 'member_joined', GRACE_MS)));

	const a2 = await resume(server, old.resume_token, alice);
	assertResumed(a2, old, { recovered: true, replayed: 2 });
	const got = await take(a2, 2);
	assert.deepEqual(got.map((x) => x.event), ['room_message', 'member_joined'], show(got));
	assert.equal(got[0].data.content, 'while away');
	assert.equal(got[0].data.room, room);
	assert.equal(got[1].data.user_id, dave);
	assert.equal(got[1].data.room, room);
	await a2.nothing(undefined, GRACE_MS);
	rc = await reconnection(server);
	assert.equal(rc.suspended, 0, show(rc));
	assert.equal(rc.resumed, 1, show(rc));
	await finish(server);
});

test('recovered:false when the room\'s log no longer reaches back (it keeps the newest) or a ' +
	'stream ring was overrun (snapshot)', async (t) => {
	const server = await serverWith('overflow', {
		QUOTECAST_ROOMS_HISTORY_SIZE: '3',
		QUOTECAST_STREAMS_BUFFER_SIZE: '4',
	});

	/* a suspended session holds its position in the room's log: 5 messages into a log of 3 */
	const alice = unique('alice');
	const room = unique('room');
	const a = await open(server, alice);
	await a.subscribe(room);
	const keeper = await open(server, unique('keeper'));
	await keeper.subscribe(room);
	const oldA = a.session;
	drop(a);
	await waitSuspended(server, 1);
	for (let k = 1; k <= 5; k++)
		await broadcast(server, { room, content: { k } });
	let rc = await reconnection(server);
	assert.equal(rc.buffer_dropped, 0, show(rc));
	const a2 = await resume(server, oldA.resume_token, alice);
	assertResumed(a2, oldA, { recovered: false, replayed: 3 });
	const got = await take(a2, 3);
	assert.deepEqual(got.map(summary), ['room:{"k":3}', 'room:{"k":4}', 'room:{"k":5}']);
	await a2.nothing(undefined, GRACE_MS);
	/* still in the room */
	await broadcast(server, { room, content: { k: 6 } });
	assert.deepEqual((await a2.next(ev('room_message', { room }))).data.content, { k: 6 });
	rc = await reconnection(server);
	assert.equal(rc.buffer_dropped, 0, show(rc));
	assert.equal(rc.replayed, 3, show(rc));
	assert.equal(rc.resumed, 1, show(rc));

	/* ring overrun: 10 ticks while suspended into a ring of 4 */
	const bobId = unique('bob');
	const sym = uniqueSymbol('RING');
	const b = await open(server, bobId);
	await subscribeStream(b, { symbol: sym, fields: ['price', 'volume'] });
	await publishOk(server, tick(sym, { price: 1, bid: 1 }));
	assert.equal((await nextTick(b, sym)).seq, 1);
	const oldB = b.session;
	drop(b);
	await waitSuspended(server, 1);
	const missed = [];
	for (let s = 2; s <= 10; s++)
		missed.push(tick(sym, { price: s, bid: s }));
	missed.push(tick(sym, { volume: 11, bid: 11 })); /* seq 11 */
	assert.equal((await publishOk(server, missed)).accepted, 10);
	const b2 = await resume(server, oldB.resume_token, bobId);
	assertResumed(b2, oldB, { recovered: false, replayed: 0 });
	const frames = await take(b2, 1, isStreamData(sym, { snapshot: true }));
	await sleep(GRACE_MS);
	frames.push(...b2.queue.splice(0));
	const order = frames.map(summary);
	t.diagnostic(`after an overrun ring: ${order.join(' ')}`);
	assert.ok(frames.every((m) => m.event === 'stream_data'), show(order));
	const snaps = frames.filter((m) => m.data.snapshot === true);
	assert.equal(snaps.length, 1, `one snapshot frame: ${show(order)}`);
	assert.equal(snaps[0].data.seq, 11);
	assert.deepEqual(snaps[0].data.data, { price: 10, volume: 11 },
		'snapshot: the newest value of each filtered field');
	const replays = frames.filter((m) => m.data.snapshot !== true);
	for (const m of replays) {
		assert.equal(m.data.replay, true, `only replay and snapshot frames: ${show(order)}`);
		assert.ok(m.data.seq >= 8 && m.data.seq <= 11, `a replay from the ring (8..11): ${show(order)}`);
	}
	const rs = replays.map((m) => m.data.seq);
	assert.deepEqual(rs, [...rs].sort((x, y) => x - y), 'replay in seq order');
	assert.equal(new Set(rs).size, rs.length, 'no duplicate replay');
	/* live continues after */
	await publishOk(server, tick(sym, { price: 12 }));
	const live = await nextTick(b2, sym);
	assert.equal(live.seq, 12);
	assert.notEqual(live.replay, true);
	assert.notEqual(live.snapshot, true);
	assert.deepEqual(live.data, { price: 12 });
	rc = await reconnection(server);
	assert.equal(rc.buffer_dropped, 0, `ticks are never buffered: ${show(rc)}`);
	assert.equal(rc.resumed, 2, show(rc));
	await finish(server);
});

test('expiry: after the TTL the session ends, its implicit room goes, the token gives a fresh ' +
	'session; a created room then queues offline, an implicit one does not', async () => {
	const server = await serverWith('expiry', { QUOTECAST_SESSIONS_TTL_S: '1' });
	const alice = unique('alice');
	const bob = await open(server, unique('bob'));
	const alone = unique('alone');
	const shared = unique('shared');
	const created = unique('created');
	await ok(bob, 'create_room', { room: created });
	await bob.subscribe(shared);
	const a = await open(server, alice);
	await a.subscribe(alone);
	await a.subscribe(shared);
	await a.subscribe(created);
	let s = await getStats(server);
	assert.equal(s.total_rooms, 3, show(s.rooms));
	const old = a.session;

	drop(a);
	await waitSuspended(server, 1);
	const droppedAt = Date.now();
	s = await getStats(server);
	assert.equal(s.total_rooms, 3, `rooms kept while suspended: ${show(s.rooms)}`);
	await sleep(400);
	s = await getStats(server);
	assert.equal(s.reconnection.suspended, 1, `not expired before the TTL: ${show(s.reconnection)}`);
	assert.equal(s.reconnection.expired, 0, show(s.reconnection));

	s = await waitStats(server, (x) => x.reconnection?.expired === 1, 'reconnection.expired == 1',
		4000);
	const after = Date.now() - droppedAt;
	assert.ok(after >= 600, `expired ${after} ms after the drop, TTL 1 s`);
	assert.equal(s.reconnection.suspended, 0, show(s.reconnection));
	assert.equal(s.total_rooms, 2, `the implicit room of the expired session is gone: ` +
		show(s.rooms));

	/* no session left: the created room queues for alice, the implicit room does not */
	await ok(bob, 'send_message', { room: shared, content: 'implicit' });
	await ok(bob, 'send_message', { room: created, content: 'created' });
	s = await getStats(server);
	assert.equal(s.offline.users, 1, show(s.offline));
	assert.equal(s.offline.queued, 1, show(s.offline));

	const a2 = await resume(server, old.resume_token, alice);
	assertFresh(a2, old, alice);
	const got = await take(a2, 1);
	assert.equal(got[0].event, 'room_message', show(got));
	assert.equal(got[0].data.room, created);
	assert.equal(got[0].data.content, 'created');
	assert.equal(got[0].data.offline, true);
	await a2.nothing(undefined, GRACE_MS);
	/* the fresh session is not in the implicit room */
	await ok(bob, 'send_message', { room: shared, content: 'implicit 2' });
	await a2.nothing(undefined, GRACE_MS);
	s = await getStats(server);
	assert.equal(s.reconnection.resumed, 0, show(s.reconnection));
	assert.equal(s.reconnection.expired, 1, show(s.reconnection));
	assert.deepEqual([s.offline.users, s.offline.queued, s.offline.delivered],
		[0, 0, 1], show(s.offline));
	await finish(server);
});

const FLOOD_QUEUE = 65536;
const FLOOD_PAD = 16 * 1024;

test('a member closed with 4008 keeps its session: a resume completes every message, in order, ' +
	'once', { timeout: 45000 }, async (t) => {
	const server = await serverWith('flood', {
		QUOTECAST_LIMITS_MAX_SEND_QUEUE_BYTES: String(FLOOD_QUEUE),
		QUOTECAST_LIMITS_CONFLATE_BYTES: String(FLOOD_QUEUE / 4),
		QUOTECAST_SESSIONS_BUFFER_MESSAGES: '100000',
	});
	const alice = unique('alice');
	const room = unique('flood');
	const a = await open(server, alice);
	await a.subscribe(room);
	const old = a.session;

	a.ws._socket.pause();
	const pad = 'z'.repeat(FLOOD_PAD);
	let n = 0;
	let tripped = false;
	const startedAt = Date.now();
	while (n < 4000 && Date.now() - startedAt < 20000) {
		const r = await broadcast(server, { room, content: { i: n, pad } });
		n++;
		/* delivered 0: the server gave up on the live connection (4008 on its way) */
		if (r.delivered === 0) {
			tripped = true;
			break;
		}
	}
	assert.ok(tripped, `the paused member was still served after ${n} broadcasts of ` +
		`${FLOOD_PAD} bytes (${Date.now() - startedAt} ms)`);
	/* a few more while the close is under way */
	for (let k = 0; k < 3; k++)
		await broadcast(server, { room, content: { i: n++, pad: 'after' } });

	a.ws._socket.resume();
	const info = await a.closed(10000);
	assert.equal(info.code, 4008, `close code ${info.code} reason "${info.reason}"`);
	await waitSuspended(server, 1);
	/* and a few more while suspended */
	for (let k = 0; k < 3; k++)
		await broadcast(server, { room, content: { i: n++, pad: 'suspended' } });
	const before = [...a.consumed, ...a.queue].filter((m) => m.event === 'room_message')
		.map((m) => m.data.content.i);
	t.diagnostic(`${n} broadcasts; ${before.length} read before the close`);

	const a2 = await resume(server, old.resume_token, alice);
	assert.equal(a2.session.resumed, true, show(a2.session));
	assert.equal(a2.session.session_id, old.session_id);
	/* the last one sent is the last one replayed */
	await queued(a2, ev('room_message', { room, content: { i: n - 1 } }), 10000)
		.catch(() => {});
	await sleep(GRACE_MS);
	const rest = a2.queue.splice(0);
	assert.ok(rest.every((m) => m.event === 'room_message'), `only room messages: ` +
		show(rest.map(summary)));
	const union = [...before, ...rest.map((m) => m.data.content.i)];
	const missing = [];
	for (let i = 0; i < n; i++) {
		if (!union.includes(i))
			missing.push(i);
	}
	const detail = `${n} sent (0..${n - 1}); read before the close: ${before.length} ` +
		`(last ${before.at(-1)}); replayed ${rest.length}: ${show(rest.map((m) => m.data.content.i))}; ` +
		`missing: ${show(missing)}; session event: ${show({ ...a2.session, resume_token: '..' })}`;
	t.diagnostic(detail);
	assert.deepEqual(union, Array.from({ length: n }, (_, i) => i),
		`every message exactly once, in order: ${detail}`);
	assert.equal(a2.session.replayed, n - before.length, detail);
	assert.equal(a2.session.recovered, true, detail);
	await a2.nothing(undefined, GRACE_MS);
	assert.ok(a2.isOpen, 'the resumed connection is not closed by its own replay');
	/* and it is live again */
	await broadcast(server, { room, content: { i: n } });
	assert.equal((await a2.next(ev('room_message', { room }))).data.content.i, n);
	const rc = await reconnection(server);
	assert.equal(rc.resumed, 1, show(rc));
	assert.equal(rc.buffer_dropped, 0, show(rc));
	await finish(server);
});

/* ---- a resume's replay is paced by the socket (issue 11, defect 2) ------------------------ */

const REPLAY_N = 1500;
const REPLAY_PAD = 'r'.repeat(6 * 1024);

/** POST /api/broadcast @n room messages {i: from..from+n-1, pad} to @room, 50 at a time */
async function sendMany(server, room, from, n) {
	for (let k = 0; k < n; k += 50) {
		const batch = [];
		for (let i = from + k; i < from + Math.min(n, k + 50); i++)
			batch.push(broadcast(server, { room, content: { i, pad: REPLAY_PAD } }));
		await Promise.all(batch);
	}
}

/** a client in @room with @nsym stream subscriptions that have ticks; returns [client, syms] */
async function replayClient(server, user, room, nsym) {
	const a = await open(server, user);
	await a.subscribe(room);
	const syms = [];
	for (let k = 0; k < nsym; k++) {
		const sym = uniqueSymbol('RP');
		await publishOk(server, tick(sym, { price: 1 }));
		await subscribeStream(a, { symbol: sym, snapshot: false });
		syms.push(sym);
	}
	return [a, syms];
}

const roomIndex = (m) => (m.event === 'room_message' ? m.data.content.i : -1);

test('a session buffer larger than limits.max_send_queue_bytes is replayed whole: 1,500 ' +
	'messages of 6 KB with 10 streams arrive in order, once, then the missed ticks, then live ' +
	'messages sent during the replay', { timeout: 120000 }, async (t) => {
	const server = await serverWith('replay', { QUOTECAST_SESSIONS_BUFFER_MESSAGES: '2000',
		QUOTECAST_ROOMS_HISTORY_SIZE: '2000' });
	const alice = unique('alice');
	const room = unique('replay');
	const [a, syms] = await replayClient(server, alice, room, 10);
	const old = a.session;
	drop(a);
	await waitSuspended(server, 1);

	await sendMany(server, room, 0, REPLAY_N);
	for (const sym of syms)
		await publishOk(server, [tick(sym, { price: 2 }), tick(sym, { price: 3 })]);
	let rc = await reconnection(server);
	assert.equal(rc.buffer_dropped, 0, show(rc));

	const a2 = await resume(server, old.resume_token, alice);
	assertResumed(a2, old, { recovered: true, replayed: REPLAY_N });
	/* hold the socket still, and send live messages while the replay waits for it */
	a2.ws._socket.pause();
	await sendMany(server, room, REPLAY_N, 20);
	a2.ws._socket.resume();

	const total = REPLAY_N + 20;
	const got = await take(a2, total, (m) => m.event === 'room_message', 60000);
	const rooms = got.filter((m) => m.event === 'room_message').map(roomIndex);
	assert.deepEqual(rooms, Array.from({ length: total }, (_, i) => i),
		'every room message once, in order, the live ones after the replay');
	const ticks = got.filter((m) => m.event === 'stream_data');
	assert.equal(ticks.length, 2 * syms.length, `the missed ticks: ${show(ticks.map(summary))}`);
	assert.ok(ticks.every((m) => m.data.replay === true), show(ticks.map(summary)));
	const lastBuffered = got.findIndex((m) => roomIndex(m) === REPLAY_N - 1);
	const firstLive = got.findIndex((m) => roomIndex(m) === REPLAY_N);
	const tickAt = got.map((m, k) => (m.event === 'stream_data' ? k : -1)).filter((k) => k >= 0);
	assert.ok(tickAt.every((k) => k > lastBuffered && k < firstLive),
		'the missed ticks come after the buffer and before what arrived during the replay');
	const others = got.filter((m) => m.event !== 'room_message' && m.event !== 'stream_data');
	assert.deepEqual(others, [], 'nothing else arrives');
	await a2.nothing((m) => m.event === 'room_message', GRACE_MS);
	assert.ok(a2.isOpen, `the resumed connection is open: ${show(a2.closeInfo)}`);
	rc = await reconnection(server);
	assert.equal(rc.resumed, 1, show(rc));
	assert.equal(rc.replayed, REPLAY_N, show(rc));
	t.diagnostic(`${got.length} frames after the session event`);
	await finish(server);
});

test('the resumed socket destroyed mid-replay: the session is suspended again with what was not ' +
	'written and the new token resumes it; the rest arrives in order', { timeout: 120000 },
async (t) => {
	const server = await serverWith('replay-drop', { QUOTECAST_SESSIONS_BUFFER_MESSAGES: '2000',
		QUOTECAST_ROOMS_HISTORY_SIZE: '2000' });
	const alice = unique('alice');
	const room = unique('replay');
	const [a] = await replayClient(server, alice, room, 0);
	const old = a.session;
	drop(a);
	await waitSuspended(server, 1);
	await sendMany(server, room, 0, REPLAY_N);

	/* read the session event, then stop reading: the replay stalls once the kernel is full */
	const a2 = await resume(server, old.resume_token, alice);
	a2.ws._socket.pause();
	assertResumed(a2, old, { recovered: true, replayed: REPLAY_N });
	/* live messages meanwhile wait behind the replay */
	await sendMany(server, room, REPLAY_N, 10);
	const total = REPLAY_N + 10;
	await sleep(500);
	const before = a2.queue.splice(0).map(roomIndex);
	drop(a2);
	await waitSuspended(server, 1);

	const a3 = await resume(server, a2.session.resume_token, alice);
	/* what the dead socket had taken may be lost: an honest resume does not claim it */
	assertResumed(a3, a2.session, { recovered: false, replayed: a3.session.replayed });
	const rest = a3.session.replayed;
	t.diagnostic(`read before the drop: ${before.length}; replayed again: ${rest}; lost in ` +
		`the sockets' buffers: ${total - before.length - rest}`);
	assert.ok(rest > 10 && rest < total, `mid-replay: ${rest} of ${total} not written`);
	const got = (await take(a3, rest, (m) => m.event === 'room_message', 60000)).map(roomIndex);
	assert.deepEqual(got, Array.from({ length: rest }, (_, k) => total - rest + k),
		'what was not written, in order, up to the last message');
	assert.deepEqual(before, Array.from({ length: before.length }, (_, k) => k),
		'what was read before, in order');
	assert.ok(before.length <= total - rest, 'nothing twice');
	await a3.nothing((m) => m.event === 'room_message', GRACE_MS);
	/* live again */
	await broadcast(server, { room, content: { i: total } });
	assert.equal(roomIndex(await a3.next(ev('room_message', { room }))), total);
	const rc = await reconnection(server);
	assert.equal(rc.resumed, 2, show(rc));
	assert.equal(rc.buffer_dropped, 0, show(rc));
	await finish(server);
});

test('sessions.max_per_user: a user who drops connection after connection keeps only the newest ' +
	'suspended sessions, and the implicit rooms only they kept go with the others', async () => {
	const server = await serverWith('per-user', { QUOTECAST_SESSIONS_MAX_PER_USER: '3' });
	const alice = unique('alice');
	const tokens = [];
	for (let k = 0; k < 10; k++) {
		const a = await open(server, alice);
		for (let r = 0; r < 5; r++)
			await a.subscribe(unique(`only-${k}-${r}`));
		tokens.push(a.session.resume_token);
		drop(a);
		await waitStats(server, (s) => s.reconnection?.suspended === Math.min(k + 1, 3) &&
			s.reconnection?.expired === Math.max(0, k - 2), `${k + 1} drops`);
	}
	const s = await getStats(server);
	assert.equal(s.total_rooms, 3 * 5, `the rooms of the 3 suspended sessions: ${show(s.rooms)}`);
	assert.equal(s.limits.refused['sessions.max_per_user'], 7, show(s.limits));
	/* the oldest are gone, the newest resume */
	const old = await resume(server, tokens[0], alice);
	assert.equal(old.session.resumed, false);
	const last = await resume(server, tokens[9], alice);
	assert.equal(last.session.resumed, true);
	await finish(server);
});
