// Malformed input, limits and misbehaving clients (SPEC 2.1, 2.2; behaviour.md "WebSocket /ws").

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test, before, after, startServer, stopServer, connect, sleep } from './lib/harness.mjs';

const MAX_BAD = 3;
const MAX_MSG = 1024;
const RATE_BURST = 3;

let server; /* max_bad_messages 3, max_message_bytes 1024 */
let rated; /* rate_per_s 1, rate_burst 3 */

before(async () => {
	[server, rated] = await Promise.all([
		startServer({
			label: 'errors',
			env: {
				QUOTECAST_LIMITS_MAX_BAD_MESSAGES: String(MAX_BAD),
				QUOTECAST_LIMITS_MAX_MESSAGE_BYTES: String(MAX_MSG),
			},
		}),
		startServer({
			label: 'rate',
			env: {
				QUOTECAST_LIMITS_RATE_PER_S: '1',
				QUOTECAST_LIMITS_RATE_BURST: String(RATE_BURST),
			},
		}),
	]);
});

after(async () => {
	const results = await Promise.allSettled([stopServer(server), stopServer(rated)]);
	for (const r of results)
		if (r.status === 'rejected')
			throw r.reason;
});

const user = (id, s = server) => connect(s, { query: { user_id: id } });

/* The connection still answers a ping. */
async function assertAlive(c) {
	const ts = Math.floor(Math.random() * 1e9);
	c.send({ type: 'ping', timestamp: ts });
	const pong = await c.next({ type: 'pong', timestamp: ts });
	assert.equal(pong.timestamp, ts);
}

function assertError(msg, code) {
	assert.equal(msg.type, 'error', JSON.stringify(msg));
	assert.equal(msg.error.code, code, JSON.stringify(msg));
	assert.equal(typeof msg.error.message, 'string');
	assert.equal('request_id' in msg, false);
}

function assertFailed(msg, code, request_id) {
	assert.equal(msg.type, 'response', JSON.stringify(msg));
	assert.equal(msg.request_id, request_id);
	assert.equal(msg.success, false);
	assert.equal(msg.error.code, code, JSON.stringify(msg));
	assert.equal(typeof msg.error.message, 'string');
}

test('text that is not JSON is BAD_JSON and the connection stays open', async () => {
	const c = await user('garbler');
	c.sendRaw('this is not json');
	assertError(await c.next(), 'BAD_JSON');
	await assertAlive(c);
	c.sendRaw('{"type":"ping",');
	assertError(await c.next(), 'BAD_JSON');
	await assertAlive(c);
	await c.close();
});

test('invalid UTF-8 inside a text frame closes the connection with 1007 (RFC 6455 8.1)',
	async () => {
		const c = await user('utf8');
		/* {"type":"ping","x":"<ff fe>"} */
		const bytes = Buffer.concat([Buffer.from('{"type":"ping","x":"'),
			Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
		c.sendRaw(bytes, { binary: false });
		assert.equal((await c.closed()).code, 1007);
		assert.equal(c.queue.length, 0, 'no answer before the close');
	});

test('a binary frame is BAD_REQUEST', async () => {
	const c = await user('binary');
	c.sendRaw(Buffer.from('{"type":"ping","timestamp":1}'), { binary: true });
	const m = await c.next();
	assertError(m, 'BAD_REQUEST');
	await assertAlive(c);
	await c.close();
});

/* Messages answered with type "error" (no usable request_id). */
const errorCases = [
	['an array', '[]'],
	['an array of objects', '[{"type":"ping"}]'],
	['a string', '"ping"'],
	['a number', '42'],
	['null', 'null'],
	['an object without type', '{}'],
	['a numeric type', '{"type":5}'],
	['a null type', '{"type":null}'],
	['a numeric request_id', '{"type":"ping","timestamp":1,"request_id":5}'],
	['an object request_id', '{"type":"subscribe","room":"x","request_id":{"a":1}}'],
	['a numeric trace_id', '{"type":"ping","timestamp":1,"trace_id":7}'],
];

for (const [what, text] of errorCases) {
	test(`BAD_REQUEST error for ${what}`, async () => {
		const c = await user('badreq');
		c.sendRaw(text);
		assertError(await c.next(), 'BAD_REQUEST');
		await assertAlive(c);
		await c.close();
	});
}

/* Messages answered with a failed "response" (a string request_id is present). */
const responseCases = [
	['missing type', { request_id: 'r1' }, 'r1'],
	['non-string type', { type: 9, request_id: 'r2' }, 'r2'],
	['request without action', { type: 'request', request_id: 'r3' }, 'r3'],
	['non-string action', { type: 'request', request_id: 'r4', action: 5 }, 'r4'],
	['array payload', { type: 'request', request_id: 'r5', action: 'get_stats', payload: [] }, 'r5'],
	['string payload', { type: 'request', request_id: 'r6', action: 'send_message', payload: 'x' },
		'r6'],
	['numeric trace_id', { type: 'ping', request_id: 'r7', trace_id: 1 }, 'r7'],
];

for (const [what, obj, rid] of responseCases) {
	test(`BAD_REQUEST response for ${what}`, async () => {
		const c = await user('badresp');
		c.send(obj);
		assertFailed(await c.next(), 'BAD_REQUEST', rid);
		await assertAlive(c);
		await c.close();
	});
}

test('a failed response echoes trace_id', async () => {
	const c = await user('tracer');
	c.send({ request_id: 'rt', trace_id: 'trace-1' });
	const m = await c.next();
	assertFailed(m, 'BAD_REQUEST', 'rt');
	assert.equal(m.trace_id, 'trace-1');
	c.send({ type: 'nosuch', request_id: 'rt2', trace_id: 'trace-2' });
	const u = await c.next();
	assertFailed(u, 'UNKNOWN_ACTION', 'rt2');
	assert.equal(u.trace_id, 'trace-2');
	await c.close();
});

test('unknown type and unknown action are UNKNOWN_ACTION and do not count as bad', async () => {
	const c = await user('unknown');
	c.send({ type: 'frobnicate' });
	assertError(await c.next(), 'UNKNOWN_ACTION');
	c.send({ type: 'frobnicate', request_id: 'u1' });
	assertFailed(await c.next(), 'UNKNOWN_ACTION', 'u1');
	c.send({ type: 'request', request_id: 'u2', action: 'launch_rockets', payload: {} });
	assertFailed(await c.next(), 'UNKNOWN_ACTION', 'u2');
	c.send({ type: 'request', request_id: 'u3', action: 'launch_rockets' });
	assertFailed(await c.next(), 'UNKNOWN_ACTION', 'u3');
	c.send({ type: 'request', action: 'launch_rockets' });
	assertError(await c.next(), 'UNKNOWN_ACTION');
	/* five unknowns, more than max_bad_messages, and still open */
	await assertAlive(c);
	assert.equal(c.isOpen, true);
	await c.close();
});

test(`bad message number ${MAX_BAD} is answered, then the connection is closed with 1008`,
	async () => {
		const c = await user('offender');
		for (let i = 0; i < MAX_BAD; i++)
			c.sendRaw(`garbage ${i}`);
		for (let i = 0; i < MAX_BAD; i++)
			assertError(await c.next(), 'BAD_JSON');
		const { code } = await c.closed(3000);
		assert.equal(code, 1008);
	});

test('bad messages count across good ones and across kinds', async () => {
	const c = await user('mixed');
	c.sendRaw('not json');
	assertError(await c.next(), 'BAD_JSON');
	await assertAlive(c);
	c.sendRaw('[]');
	assertError(await c.next(), 'BAD_REQUEST');
	await c.subscribe('mixed-room');
	assert.equal(c.isOpen, true);
	c.sendRaw(Buffer.from([1, 2, 3]), { binary: true });
	assertError(await c.next(), 'BAD_REQUEST');
	assert.equal((await c.closed(3000)).code, 1008);
});

test('bad messages are counted per connection', async () => {
	const a = await user('a');
	const b = await user('b');
	for (let i = 0; i < MAX_BAD - 1; i++) {
		a.sendRaw('x');
		b.sendRaw('x');
	}
	for (let i = 0; i < MAX_BAD - 1; i++) {
		assertError(await a.next(), 'BAD_JSON');
		assertError(await b.next(), 'BAD_JSON');
	}
	await assertAlive(a);
	await assertAlive(b);
	a.sendRaw('x');
	assertError(await a.next(), 'BAD_JSON');
	assert.equal((await a.closed(3000)).code, 1008);
	await assertAlive(b);
	await b.close();
});

/* base64 of random bytes: incompressible enough that permessage-deflate cannot hide the size */
const filler = (n) => randomBytes(n).toString('base64').slice(0, n);

test('a message under max_message_bytes is processed', async () => {
	const c = await user('sizer');
	const msg = JSON.stringify({ type: 'ping', timestamp: 77, pad: filler(MAX_MSG - 200) });
	assert.ok(Buffer.byteLength(msg) < MAX_MSG);
	c.sendRaw(msg);
	assert.equal((await c.next({ type: 'pong' })).timestamp, 77);
	await c.close();
});

test(`a frame over max_message_bytes (${MAX_MSG}) closes the connection with 1009`, async () => {
	const c = await user('bigmouth');
	c.sendRaw(JSON.stringify({ type: 'ping', timestamp: 1, pad: filler(2 * MAX_MSG) }));
	const { code } = await c.closed(3000);
	assert.equal(code, 1009);
});

test('a fragmented message is reassembled', async () => {
	const c = await user('fragments');
	const text = JSON.stringify({ type: 'ping', timestamp: 4242, request_id: 'frag' });
	const third = Math.ceil(text.length / 3);
	c.ws.send(text.slice(0, third), { fin: false });
	c.ws.send(text.slice(third, 2 * third), { fin: false });
	c.ws.send(text.slice(2 * third), { fin: true });
	const pong = await c.next({ type: 'pong' });
	assert.equal(pong.timestamp, 4242);
	assert.equal(pong.request_id, 'frag');
	await c.close();
});

test('a fragmented message over max_message_bytes closes with 1009', async () => {
	const c = await user('bigfrag');
	/*
	 * Two fragments, each under the limit, together over it; the message is never finished.
	 * Nothing is sent after the fragment that crosses the limit, so no unread input can
	 * turn the server's close into a reset.
	 */
	const part = Math.ceil((MAX_MSG * 3) / 5);
	c.ws.send(`{"type":"ping","pad":"${filler(part)}`, { fin: false });
	c.ws.send(filler(part), { fin: false });
	const { code } = await c.closed(3000);
	assert.equal(code, 1009);
});

test('the server keeps serving others while one client misbehaves', async () => {
	const good = await user('good');
	const room = 'steady-room';
	await good.subscribe(room);
	const bad = await user('bad');
	/* a burst of garbage, a giant frame, all at once */
	for (let i = 0; i < 50; i++)
		bad.sendRaw(`{{{{ ${i}`);
	bad.sendRaw(filler(8 * MAX_MSG));
	for (let i = 0; i < 5; i++)
		await assertAlive(good);
	/*
	 * Closed for the bad messages (1008). The client still had frames in flight when the
	 * server closed, so a reset may hide the close frame (1006); this test is about the
	 * other clients, the close codes have their own tests.
	 */
	const closed = await bad.closed(3000);
	assert.ok([1006, 1008, 1009].includes(closed.code), `closed with ${closed.code}`);
	const r = await good.request('send_message', { room, content: 'still here' });
	assert.equal(r.success, true);
	assert.equal((await good.next({ event: 'room_message' })).data.content, 'still here');
	/* a new connection is accepted as usual */
	const late = await user('late');
	await assertAlive(late);
	await late.close();
	await good.close();
});

test(`rate limit: RATE_LIMITED responses, then close 4029 after ${RATE_BURST} refusals`,
	async () => {
		const c = await user('spammer', rated);
		/* the burst, then exactly enough refusals to be closed: nothing left in flight */
		const n = 2 * RATE_BURST;
		for (let i = 0; i < n; i++)
			c.send({ type: 'subscribe', request_id: `s${i}`, room: `rate-${i}` });
		for (let i = 0; i < RATE_BURST; i++) {
			const r = await c.next({ type: 'response', request_id: `s${i}` });
			assert.equal(r.success, true, `within the burst: ${JSON.stringify(r)}`);
		}
		const limited = await c.next({ type: 'response', request_id: `s${RATE_BURST}` });
		assertFailed(limited, 'RATE_LIMITED', `s${RATE_BURST}`);
		const { code } = await c.closed(3000);
		assert.equal(code, 4029);
		/* nothing beyond the refusals was processed */
		const processed = [...c.consumed, ...c.queue].filter((m) => m.success === true);
		assert.equal(processed.length, RATE_BURST);
	});

test('rate limit: an error without request_id; tokens come back; other clients unaffected',
	async () => {
		const c = await user('bursty', rated);
		const other = await user('calm', rated);
		for (let i = 0; i < RATE_BURST + 1; i++)
			c.send({ type: 'ping', timestamp: i });
		for (let i = 0; i < RATE_BURST; i++)
			assert.equal((await c.next()).type, 'pong');
		assertError(await c.next(), 'RATE_LIMITED');
		await assertAlive(other);
		/* one refusal is not enough to be closed; after a second a token is back */
		await sleep(1100);
		assert.equal(c.isOpen, true);
		await assertAlive(c);
		await c.close();
		await other.close();
	});
