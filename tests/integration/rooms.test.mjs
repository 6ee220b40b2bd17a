// Rooms: subscribe/unsubscribe, send_message fan-out to members and only to members (SPEC 2.3,
// 2.4; behaviour.md "WebSocket /ws").

import assert from 'node:assert/strict';
import { test, before, after, startServer, stopServer, connect } from './lib/harness.mjs';

const MAX_ROOMS = 60;
const GRACE_MS = 300;

let server;

before(async () => {
	server = await startServer({
		label: 'rooms',
		env: {
			QUOTECAST_LIMITS_MAX_ROOMS_PER_CONNECTION: String(MAX_ROOMS),
			QUOTECAST_LIMITS_RATE_PER_S: '1000',
			QUOTECAST_LIMITS_RATE_BURST: '5000',
		},
	});
});

after(async () => {
	await stopServer(server);
});

let roomSeq = 0;
const uniqueRoom = (p = 'room') => `${p}-${process.pid}-${++roomSeq}`;
const user = (id) => connect(server, { query: { user_id: id } });
const isRoomMessage = (room) => ({ type: 'event', event: 'room_message', data: { room } });

test('subscribe creates the room and reports the member count', async () => {
	const room = uniqueRoom();
	const a = await user('alice');
	const b = await user('bob');
	const r1 = await a.ask({ type: 'subscribe', room });
	assert.equal(r1.success, true);
	assert.equal(r1.data.room, room);
	assert.equal(r1.data.members, 1);
	assert.notEqual(r1.data.already, true);
	const r2 = await b.ask({ type: 'subscribe', room });
	assert.equal(r2.success, true);
	assert.equal(r2.data.members, 2);
	await a.close();
	await b.close();
});

test('subscribing twice answers success with already:true', async () => {
	const room = uniqueRoom();
	const a = await user('alice');
	await a.subscribe(room);
	const r = await a.ask({ type: 'subscribe', room });
	assert.equal(r.success, true);
	assert.equal(r.data.already, true);
	assert.equal(r.data.room, room);
	/* still one membership: one message, not two */
	const s = await a.request('send_message', { room, content: 'x' });
	assert.equal(s.success, true);
	assert.equal(s.data.delivered, 1);
	await a.next(isRoomMessage(room));
	await a.nothing(isRoomMessage(room), GRACE_MS);
	await a.close();
});

test('unsubscribe answers {room}; a second unsubscribe is NOT_FOUND', async () => {
	const room = uniqueRoom();
	const a = await user('alice');
	await a.subscribe(room);
	const r = await a.ask({ type: 'unsubscribe', room, trace_id: 'tu' });
	assert.equal(r.success, true);
	assert.equal(r.data.room, room);
	assert.equal(r.trace_id, 'tu');
	const again = await a.ask({ type: 'unsubscribe', room });
	assert.equal(again.success, false);
	assert.equal(again.error.code, 'NOT_FOUND');
	const never = await a.ask({ type: 'unsubscribe', room: uniqueRoom('never') });
	assert.equal(never.success, false);
	assert.equal(never.error.code, 'NOT_FOUND');
	await a.close();
});

test('room names: missing, non-string, empty or over 128 bytes are BAD_REQUEST', async () => {
	const a = await user('alice');
	const bad = [
		{ type: 'subscribe' },
		{ type: 'subscribe', room: 42 },
		{ type: 'subscribe', room: '' },
		{ type: 'subscribe', room: 'r'.repeat(129) },
	];
	/* at most five BAD_REQUESTs per connection: the bad-message limit (default 10) stays far */
	for (const msg of bad) {
		const r = await a.ask(msg);
		assert.equal(r.success, false, JSON.stringify(msg));
		assert.equal(r.error.code, 'BAD_REQUEST', JSON.stringify(msg));
	}
	const b = await user('bob');
	/* 65 two-byte characters: 65 characters but 130 bytes */
	const multi = await b.ask({ type: 'subscribe', room: '\u00e9'.repeat(65) });
	assert.equal(multi.success, false);
	assert.equal(multi.error.code, 'BAD_REQUEST');
	const unsub = await b.ask({ type: 'unsubscribe', room: '' });
	assert.equal(unsub.success, false);
	assert.equal(unsub.error.code, 'BAD_REQUEST');
	const ok = await b.ask({ type: 'subscribe', room: 'r'.repeat(128) });
	assert.equal(ok.success, true, 'a 128-byte name is allowed');
	assert.equal(ok.data.room, 'r'.repeat(128));
	const utf = await b.ask({ type: 'subscribe', room: 'salle-\u00e9t\u00e9-\u4e2d\u6587' });
	assert.equal(utf.success, true);
	assert.equal(utf.data.room, 'salle-\u00e9t\u00e9-\u4e2d\u6587');
	await a.close();
	await b.close();
});

test('send_message reaches every member of the room and no one else', async () => {
	const roomA = uniqueRoom('A');
	const roomB = uniqueRoom('B');
	const a1 = await user('alice');
	const a2 = await user('amy');
	const b1 = await user('bob');
	const none = await user('nobody');
	await a1.subscribe(roomA);
	await a2.subscribe(roomA);
	await b1.subscribe(roomB);

	const content = { text: 'hello A', n: 1, nested: { list: [1, 'two', null, true] } };
	const r = await a1.request('send_message', { room: roomA, content }, { trace_id: 'tr-send' });
	assert.equal(r.success, true, JSON.stringify(r));
	assert.equal(r.trace_id, 'tr-send');
	assert.equal(r.data.room, roomA);
	assert.equal(r.data.delivered, 2);
	assert.equal(typeof r.data.message_id, 'string');
	assert.ok(r.data.message_id.length > 0);

	for (const c of [a1, a2]) {
		const ev = await c.next(isRoomMessage(roomA));
		assert.equal(ev.data.room, roomA);
		assert.equal(ev.data.message_id, r.data.message_id);
		assert.equal(ev.data.message_type, 'text');
		assert.equal(ev.data.from, 'alice');
		assert.deepEqual(ev.data.content, content);
		assert.equal(typeof ev.data.timestamp, 'number');
	}
	/* delivery to a2 happened; b1 and the unsubscribed connection must see nothing */
	await Promise.all([
		b1.nothing({ event: 'room_message' }, GRACE_MS),
		none.nothing({ event: 'room_message' }, GRACE_MS),
		a2.nothing({ event: 'room_message' }, 0),
	]);

	/* and room B's message reaches b1 only */
	const rb = await b1.request('send_message', { room: roomB, content: 'hello B' });
	assert.equal(rb.data.delivered, 1);
	const evb = await b1.next(isRoomMessage(roomB));
	assert.equal(evb.data.content, 'hello B');
	assert.equal(evb.data.from, 'bob');
	assert.notEqual(rb.data.message_id, r.data.message_id);
	await Promise.all([
		a1.nothing({ event: 'room_message' }, GRACE_MS),
		a2.nothing({ event: 'room_message' }, 0),
		none.nothing({ event: 'room_message' }, 0),
	]);
	for (const c of [a1, a2, b1, none])
		await c.close();
});

test('one connection in 50 rooms receives from each of them', async () => {
	const rooms = Array.from({ length: 50 }, () => uniqueRoom('many'));
	const listener = await user('listener');
	const sender = await user('sender');
	const other = await user('other');
	/* pipeline the 50 subscribes, then collect the 50 responses */
	const ids = rooms.map((room, i) => {
		const request_id = `many-${i}`;
		listener.send({ type: 'subscribe', request_id, room });
		return request_id;
	});
	for (const [i, request_id] of ids.entries()) {
		const r = await listener.next({ type: 'response', request_id });
		assert.equal(r.success, true, JSON.stringify(r));
		assert.equal(r.data.room, rooms[i]);
	}
	for (const room of rooms)
		await sender.subscribe(room);
	await other.subscribe(rooms[0]);

	for (const [i, room] of rooms.entries()) {
		const r = await sender.request('send_message', { room, content: { i } });
		assert.equal(r.success, true);
		assert.equal(r.data.delivered, i === 0 ? 3 : 2);
	}
	for (const [i, room] of rooms.entries()) {
		const ev = await listener.next(isRoomMessage(room));
		assert.deepEqual(ev.data.content, { i });
		assert.equal(ev.data.from, 'sender');
	}
	/* other is only in rooms[0] */
	const ev0 = await other.next(isRoomMessage(rooms[0]));
	assert.deepEqual(ev0.data.content, { i: 0 });
	await other.nothing({ event: 'room_message' }, GRACE_MS);
	await listener.nothing({ event: 'room_message' }, 0);
	for (const c of [listener, sender, other])
		await c.close();
});

test('unsubscribe stops delivery', async () => {
	const room = uniqueRoom();
	const a = await user('alice');
	const b = await user('bob');
	await a.subscribe(room);
	await b.subscribe(room);
	await b.unsubscribe(room);
	const r = await a.request('send_message', { room, content: 'after unsubscribe' });
	assert.equal(r.data.delivered, 1);
	await a.next(isRoomMessage(room));
	await b.nothing({ event: 'room_message' }, GRACE_MS);
	await a.close();
	await b.close();
});

test('a closed connection leaves its rooms', async () => {
	const room = uniqueRoom();
	const a = await user('alice');
	const b = await user('bob');
	await a.subscribe(room);
	await b.subscribe(room);
	await b.close();
	/* the server notices the close asynchronously: allow a short while */
	let delivered;
	for (let i = 0; i < 40; i++) {
		const r = await a.request('send_message', { room, content: i });
		delivered = r.data.delivered;
		await a.next(isRoomMessage(room));
		if (delivered === 1)
			break;
		await new Promise((res) => setTimeout(res, 50));
	}
	assert.equal(delivered, 1);
	await a.close();
});

test('a room disappears with its last member', async () => {
	const room = uniqueRoom();
	const a = await user('alice');
	await a.subscribe(room);
	await a.unsubscribe(room);
	const r = await a.request('send_message', { room, content: 'anyone?' });
	assert.equal(r.success, false);
	assert.equal(r.error.code, 'NOT_FOUND');
	/* subscribing again creates it afresh */
	const again = await a.ask({ type: 'subscribe', room });
	assert.equal(again.success, true);
	assert.equal(again.data.members, 1);
	await a.close();
});

test(`max_rooms_per_connection (${MAX_ROOMS}) gives LIMIT_EXCEEDED`, async () => {
	const a = await user('greedy');
	const rooms = Array.from({ length: MAX_ROOMS + 1 }, () => uniqueRoom('lim'));
	for (const room of rooms.slice(0, MAX_ROOMS))
		await a.subscribe(room);
	const over = await a.ask({ type: 'subscribe', room: rooms[MAX_ROOMS] });
	assert.equal(over.success, false);
	assert.equal(over.error.code, 'LIMIT_EXCEEDED');
	/* re-subscribing a room it holds is not a new room */
	const already = await a.ask({ type: 'subscribe', room: rooms[0] });
	assert.equal(already.success, true);
	assert.equal(already.data.already, true);
	/* the limit is per connection */
	const b = await user('greedy');
	await b.subscribe(rooms[MAX_ROOMS]);
	/* leaving one makes room for another */
	await a.unsubscribe(rooms[1]);
	const now = await a.ask({ type: 'subscribe', room: rooms[MAX_ROOMS] });
	assert.equal(now.success, true, JSON.stringify(now));
	assert.equal(a.isOpen, true);
	await a.close();
	await b.close();
});

test('send_message to an unknown room is NOT_FOUND', async () => {
	const a = await user('alice');
	const r = await a.request('send_message', { room: uniqueRoom('ghost'), content: 'hi' });
	assert.equal(r.success, false);
	assert.equal(r.error.code, 'NOT_FOUND');
	assert.equal(typeof r.error.message, 'string');
	await a.close();
});

test('send_message validates content and message_type', async () => {
	const room = uniqueRoom();
	const a = await user('alice');
	await a.subscribe(room);
	const badCases = [
		{ room, content: 'x', message_type: 'shout' },
		{ room, content: 'x', message_type: 7 },
		{ room },
		{ room, content: null },
	];
	for (const payload of badCases) {
		const r = await a.request('send_message', payload);
		assert.equal(r.success, false, JSON.stringify(payload));
		assert.equal(r.error.code, 'BAD_REQUEST', JSON.stringify(payload));
	}
	await a.nothing({ event: 'room_message' }, 0);
	await a.close();

	/* a fresh connection: the four BAD_REQUESTs above count against max_bad_messages */
	const b = await user('bob');
	await b.subscribe(room);
	for (const message_type of ['text', 'notification', 'alert', 'system', 'data']) {
		const r = await b.request('send_message', { room, content: { t: message_type }, message_type });
		assert.equal(r.success, true, `${message_type}: ${JSON.stringify(r)}`);
		const ev = await b.next(isRoomMessage(room));
		assert.equal(ev.data.message_type, message_type);
		assert.deepEqual(ev.data.content, { t: message_type });
	}
	for (const content of [0, false, '', [], 'plain', [1, [2]], 3.5]) {
		const r = await b.request('send_message', { room, content });
		assert.equal(r.success, true, `content ${JSON.stringify(content)}: ${JSON.stringify(r)}`);
		const ev = await b.next(isRoomMessage(room));
		assert.deepEqual(ev.data.content, content);
	}
	await b.close();
});

test('message ids are unique', async () => {
	const room = uniqueRoom();
	const a = await user('alice');
	await a.subscribe(room);
	const ids = new Set();
	for (let i = 0; i < 20; i++) {
		const r = await a.request('send_message', { room, content: i });
		ids.add(r.data.message_id);
		await a.next(isRoomMessage(room));
	}
	assert.equal(ids.size, 20);
	await a.close();
});
