// Market-data ingest: POST /api/publish (forms, publish token, all-or-nothing validation,
// size limits, streams.max_symbols) and the publish_market_data action over /ws (SPEC 3;
// streams.md).

import assert from 'node:assert/strict';
import {
	test, before, after, startServer, stopServer, connect, httpRequest, closeAllClients,
} from './lib/harness.mjs';
import {
	uniqueSymbol, tick, publish, publishOk, assertHttpError, postChunked, subscribeStream,
	streamRequest, isStreamData, anyStreamData, nextTick, collectTicks, streaming,
} from './lib/streams.mjs';

const TOKEN = 'pub-t0ken';
const MAX_BODY = 1024 * 1024;
const SMALL_BODY = 4096;
const MAX_SYMBOLS = 3;
const GRACE_MS = 250;

let server;      /* publish token set, default body limit */
let small;       /* small body limit, no token */
let few;         /* streams.max_symbols small, no token */

const commonEnv = {
	QUOTECAST_LIMITS_MAX_BAD_MESSAGES: '1000',
	QUOTECAST_LIMITS_RATE_PER_S: '10000',
	QUOTECAST_LIMITS_RATE_BURST: '10000',
};

before(async () => {
	[server, small, few] = await Promise.all([
		startServer({
			label: 'publish',
			env: {
				...commonEnv,
				QUOTECAST_AUTH_PUBLISH_TOKEN: TOKEN,
				QUOTECAST_LIMITS_MAX_HTTP_BODY_BYTES: String(MAX_BODY),
			},
		}),
		startServer({
			label: 'publish-small-body',
			/* POST /api/publish bodies are bounded by the publishers' own limit */
			env: { ...commonEnv,
				QUOTECAST_LIMITS_PUBLISHER_MAX_MESSAGE_BYTES: String(SMALL_BODY) },
		}),
		startServer({
			label: 'publish-max-symbols',
			env: { ...commonEnv, QUOTECAST_STREAMS_MAX_SYMBOLS: String(MAX_SYMBOLS) },
		}),
	]);
});

after(async () => {
	/* stop all three even when one fails, or the others keep this process alive */
	const res = await Promise.allSettled([server, small, few].map((s) => stopServer(s)));
	const failed = res.find((r) => r.status === 'rejected');
	if (failed)
		throw failed.reason;
});

const user = (srv, id, roles) =>
	connect(srv, { query: roles ? { user_id: id, roles } : { user_id: id } });
const pub = (body) => publishOk(server, body, { token: TOKEN });
const post = (body, token = TOKEN) => publish(server, body, { token });

/*
 * Prove that nothing of a refused publish was applied: the stream has no data, total counters
 * did not move, the subscriber got nothing; then that the next good tick of the symbol is seq 1.
 */
async function assertNothingApplied(srv, sym, before, sub, token) {
	const after = await streaming(srv);
	assert.equal(after.total_messages, before.total_messages, 'streaming.total_messages moved');
	assert.equal(after.total_published, before.total_published, 'streaming.total_published moved');
	assert.equal(after.total_deliveries, before.total_deliveries, 'streaming.total_deliveries moved');
	const m = await streamRequest(sub, 'get_market_data', { symbol: sym });
	assert.equal(m.success, false, `get_market_data ${sym} after a refused publish: ` +
		JSON.stringify(m));
	assert.equal(m.error.code, 'NOT_FOUND');
	await sub.nothing(anyStreamData, GRACE_MS);
	const r = await publishOk(srv, tick(sym, { ok: 1 }), { token });
	assert.equal(r.accepted, 1);
	const t = await nextTick(sub, sym);
	assert.equal(t.seq, 1, 'no seq was consumed by the refused publishes');
	assert.deepEqual(t.data, { ok: 1 });
}

test('POST /api/publish: one tick, an array, {"ticks":[...]}', async () => {
	const sym = uniqueSymbol('FORM');
	const a = await user(server, 'alice');
	await subscribeStream(a, { symbol: sym });
	const one = await post(tick(sym, { price: 1 }, { message_id: 'f1' }));
	assert.equal(one.status, 200, one.text);
	assert.match(String(one.headers['content-type']), /application\/json/);
	assert.deepEqual(one.json, { accepted: 1, duplicates: 0, stale: 0 });
	assert.deepEqual(await pub([tick(sym, { price: 2 }), tick(sym, { price: 3 })]),
		{ accepted: 2, duplicates: 0, stale: 0 });
	assert.deepEqual(await pub({ ticks: [tick(sym, { price: 4 }), tick(sym, { price: 5 }),
		tick(sym, { price: 6 }, { message_id: 'f1' })] }), { accepted: 2, duplicates: 1, stale: 0 });
	const got = await collectTicks(a, sym, 5);
	assert.deepEqual(got.map((t) => [t.seq, t.data.price]), [[1, 1], [2, 2], [3, 3], [4, 4],
		[5, 5]]);
	assert.equal(got[0].message_id, 'f1');
	await a.nothing(anyStreamData, GRACE_MS);
	await a.close();
});

test('valid edge cases are accepted', async () => {
	const a = await user(server, 'alice');
	const syms = ['Ab9._:-', 'x'.repeat(32), '600519', 'BTC-USD:X.1_2'];
	const fields256 = Object.fromEntries(Array.from({ length: 256 }, (_, i) => [`f${i}`, i]));
	const field64 = { ['k'.repeat(64)]: 1 };
	const r = await pub([
		tick(syms[0], { price: 1 }),
		tick(syms[1], fields256),
		tick(syms[2], field64, { message_id: 'm'.repeat(128) }),
		tick(syms[3], { nested: { a: [1, 2] }, s: 'str', n: null, b: true }, { timestamp: 0,
			version: -5 }),
	]);
	assert.deepEqual(r, { accepted: 4, duplicates: 0, stale: 0 });
	const m1 = await streamRequest(a, 'get_market_data', { symbol: syms[1] });
	assert.equal(Object.keys(m1.data.data).length, 256);
	const m2 = await streamRequest(a, 'get_buffered_data', { symbol: syms[2] });
	assert.equal(m2.data.messages[0].message_id, 'm'.repeat(128));
	const m3 = await streamRequest(a, 'get_buffered_data', { symbol: syms[3] });
	assert.equal(m3.data.messages[0].timestamp, 0);
	assert.deepEqual(m3.data.messages[0].data, { nested: { a: [1, 2] }, s: 'str', n: null, b: true });
	await a.close();
});

test('publish token: 401 without or with a wrong token, 200 with it; nothing applied on 401',
	async () => {
		const sym = uniqueSymbol('TOK');
		const a = await user(server, 'alice');
		await subscribeStream(a, { symbol: sym });
		const s0 = await streaming(server);
		const body = tick(sym, { price: 1 });
		assertHttpError(await publish(server, body), 401, 'UNAUTHORIZED');
		assertHttpError(await publish(server, body, { token: 'wrong' }), 401, 'UNAUTHORIZED');
		assertHttpError(await publish(server, body, { token: `${TOKEN}x` }), 401, 'UNAUTHORIZED');
		assertHttpError(await publish(server, body, { headers: { authorization: TOKEN } }), 401,
			'UNAUTHORIZED');
		assertHttpError(await publish(server, body, { headers: { authorization: 'Basic ' +
			Buffer.from(`x:${TOKEN}`).toString('base64') } }), 401, 'UNAUTHORIZED');
		await assertNothingApplied(server, sym, s0, a, TOKEN);
		await a.close();
	});

/* Every malformed tick; each is sent alone and behind a good tick of the same symbol. */
function malformedCases(sym) {
	const good = (extra = {}) => tick(sym, { price: 1 }, extra);
	return [
		['no symbol', { data: { price: 1 } }],
		['null symbol', { symbol: null, data: { price: 1 } }],
		['numeric symbol', { symbol: 600519, data: { price: 1 } }],
		['empty symbol', tick('', { price: 1 })],
		['symbol with a space', tick('AB CD', { price: 1 })],
		['symbol with a slash', tick('AB/CD', { price: 1 })],
		['symbol with $', tick('AB$', { price: 1 })],
		['symbol with a non-ASCII letter', tick('\u00e9t\u00e9', { price: 1 })],
		['symbol of 33 characters', tick('S'.repeat(33), { price: 1 })],
		['missing data', { symbol: sym }],
		['null data', tick(sym, null)],
		['empty data', tick(sym, {})],
		['array data', tick(sym, [1, 2])],
		['empty array data', tick(sym, [])],
		['string data', tick(sym, 'price=1')],
		['number data', tick(sym, 5)],
		['boolean data', tick(sym, true)],
		['257 fields', tick(sym, Object.fromEntries(Array.from({ length: 257 },
			(_, i) => [`f${i}`, i])))],
		['empty field name', tick(sym, { '': 1 })],
		['65-byte field name', tick(sym, { ['k'.repeat(65)]: 1 })],
		['numeric message_id', good({ message_id: 42 })],
		['object message_id', good({ message_id: { id: 'x' } })],
		['boolean message_id', good({ message_id: true })],
		['129-byte message_id', good({ message_id: 'm'.repeat(129) })],
		['string version', good({ version: '5' })],
		['fractional version', good({ version: 1.5 })],
		['boolean version', good({ version: true })],
		['string timestamp', good({ timestamp: '1699267202000' })],
		['fractional timestamp', good({ timestamp: 1.5 })],
		['negative timestamp', good({ timestamp: -1 })],
		['boolean timestamp', good({ timestamp: false })],
		['a tick that is a number', 5],
		['a tick that is a string', 'tick'],
		['a tick that is null', null],
	];
}

test('every malformed tick is refused with 400 BAD_REQUEST naming it, and nothing is applied',
	async () => {
		const sym = uniqueSymbol('BAD');
		const a = await user(server, 'alice');
		await subscribeStream(a, { symbol: sym });
		const s0 = await streaming(server);
		for (const [what, bad] of malformedCases(sym)) {
			/* behind a good tick: the good one must not be applied either */
			const r = await post([tick(sym, { price: 1 }), bad]);
			assertHttpError(r, 400, 'BAD_REQUEST');
			assert.match(r.json.error.message, /ticks\[1\]/, `${what}: ${r.text}`);
			/* alone (objects are a one-tick body, others go in an array) */
			const alone = bad !== null && typeof bad === 'object' && !Array.isArray(bad) ?
				bad : [bad];
			const r2 = await post(alone);
			assertHttpError(r2, 400, 'BAD_REQUEST');
			assert.match(r2.json.error.message, /ticks\[0\]/, `${what} alone: ${r2.text}`);
			/* in {"ticks":[...]} after two good ones */
			const r3 = await post({ ticks: [tick(sym, { price: 2 }), tick(sym, { price: 3 }), bad] });
			assertHttpError(r3, 400, 'BAD_REQUEST');
			assert.match(r3.json.error.message, /ticks\[2\]/, `${what} in ticks: ${r3.text}`);
		}
		await assertNothingApplied(server, sym, s0, a, TOKEN);
		await a.close();
	});

test('a batch of 5 good ticks and 1 bad one is refused whole; bad first is refused too',
	async () => {
		const sym = uniqueSymbol('BATCH');
		const other = uniqueSymbol('BATCH');
		const a = await user(server, 'alice');
		await subscribeStream(a, { symbols: [sym, other] });
		const s0 = await streaming(server);
		const goods = Array.from({ length: 5 }, (_, i) =>
			tick(i % 2 ? other : sym, { price: i }, { message_id: `g${i}` }));
		const bad = tick(sym, { price: 1 }, { timestamp: -5 });
		const r = await post([...goods, bad]);
		assertHttpError(r, 400, 'BAD_REQUEST');
		assert.match(r.json.error.message, /ticks\[5\]/, r.text);
		const r2 = await post({ ticks: [bad, ...goods] });
		assertHttpError(r2, 400, 'BAD_REQUEST');
		assert.match(r2.json.error.message, /ticks\[0\]/, r2.text);
		const r3 = await post([...goods.slice(0, 3), tick(sym, []), ...goods.slice(3)]);
		assertHttpError(r3, 400, 'BAD_REQUEST');
		assert.match(r3.json.error.message, /ticks\[3\]/, r3.text);
		const m = await streamRequest(a, 'get_market_data', { symbol: other });
		assert.equal(m.error?.code, 'NOT_FOUND', JSON.stringify(m));
		await assertNothingApplied(server, sym, s0, a, TOKEN);
		/* the message ids of the refused batch were not remembered as seen */
		assert.deepEqual(await pub(goods), { accepted: 5, duplicates: 0, stale: 0 });
		await a.close();
	});

test('bodies that are not a tick, an array or {"ticks":[...]} are 400; not JSON is BAD_JSON',
	async () => {
		const sym = uniqueSymbol('JSON');
		const a = await user(server, 'alice');
		await subscribeStream(a, { symbol: sym });
		const s0 = await streaming(server);
		for (const body of ['hello', '{"symbol":', `{"symbol":"${sym}","data":{"p":1}}}`,
			`[{"symbol":"${sym}","data":{"p":1}},]`, ' ', '\u00ff\u00fe']) {
			const r = await post(body);
			assertHttpError(r, 400, 'BAD_JSON');
		}
		/* invalid UTF-8 */
		const r = await post(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]));
		assertHttpError(r, 400, 'BAD_JSON');
		for (const body of [JSON.stringify({ ticks: 5 }), JSON.stringify({ ticks: 'x' }),
			JSON.stringify({ ticks: { symbol: sym, data: { p: 1 } } })]) {
			const r4 = await post(body);
			assertHttpError(r4, 400, 'BAD_REQUEST');
		}
		await assertNothingApplied(server, sym, s0, a, TOKEN);
		await a.close();
	});

test('a JSON body that is a scalar (string, number, null, boolean) is 400 BAD_REQUEST',
	async () => {
		/* valid JSON (RFC 8259) that is not a tick: malformed, not "not JSON" */
		const sym = uniqueSymbol('SCAL');
		const a = await user(server, 'alice');
		await subscribeStream(a, { symbol: sym });
		const s0 = await streaming(server);
		for (const body of ['"a string"', '42', 'null', 'true']) {
			const r = await post(body);
			assert.equal(r.status, 400, `${body}: ${r.text}`);
			assert.equal(r.json?.error?.code, 'BAD_REQUEST', `${body}: ${r.text}`);
		}
		await assertNothingApplied(server, sym, s0, a, TOKEN);
		await a.close();
	});

test('more than 10000 ticks in one publish is 413 TOO_LARGE, nothing applied; 10000 is fine',
	async () => {
		const sym = uniqueSymbol('HUGE');
		const a = await user(server, 'alice');
		await subscribeStream(a, { symbol: sym, snapshot: false });
		const s0 = await streaming(server);
		const ticks = Array.from({ length: 10001 }, (_, i) => tick(sym, { i }));
		const body = JSON.stringify(ticks);
		assert.ok(body.length < MAX_BODY, 'the body itself is within the byte limit');
		assertHttpError(await post(body), 413, 'TOO_LARGE');
		assertHttpError(await post({ ticks }), 413, 'TOO_LARGE');
		await assertNothingApplied(server, sym, s0, a, TOKEN);

		const sym2 = uniqueSymbol('HUGE');
		const ok = await pub(Array.from({ length: 10000 }, (_, i) => tick(sym2, { i })));
		assert.deepEqual(ok, { accepted: 10000, duplicates: 0, stale: 0 });
		const m = await streamRequest(a, 'get_market_data', { symbol: sym2 });
		assert.equal(m.data.seq, 10000);
		assert.deepEqual(m.data.data, { i: 9999 });
		/* get_buffered_data: 100 by default, at most streams.buffer_size (1000 by default) */
		const b1 = await streamRequest(a, 'get_buffered_data', { symbol: sym2 });
		assert.equal(b1.data.messages.length, 100);
		assert.equal(b1.data.messages[0].seq, 9901);
		assert.equal(b1.data.messages[99].seq, 10000);
		assert.equal(b1.data.oldest_seq, 9001);
		assert.equal(b1.data.last_seq, 10000);
		const b2 = await streamRequest(a, 'get_buffered_data', { symbol: sym2, limit: 5000 });
		assert.equal(b2.data.messages.length, 1000);
		assert.equal(b2.data.messages[0].seq, 9001);
		assert.deepEqual(b2.data.messages[0].data, { i: 9000 });
		await a.close();
	});

test(`a body over limits.publisher_max_message_bytes (${SMALL_BODY}) is 413, nothing applied`,
	async () => {
		const sym = uniqueSymbol('BIG');
		const a = await user(small, 'alice');
		await subscribeStream(a, { symbol: sym });
		const s0 = await streaming(small);
		const big = JSON.stringify(tick(sym, { pad: 'x'.repeat(SMALL_BODY) }));
		assert.ok(big.length > SMALL_BODY);
		assertHttpError(await publish(small, big), 413, 'TOO_LARGE');
		/* a batch over the limit, each tick small */
		const many = JSON.stringify(Array.from({ length: 200 }, (_, i) => tick(sym, { i })));
		assert.ok(many.length > SMALL_BODY);
		assertHttpError(await publish(small, many), 413, 'TOO_LARGE');
		/* sent chunked, without a content-length */
		const ch = await postChunked(small, '/api/publish',
			[many.slice(0, 2000), many.slice(2000, 4000), many.slice(4000)]);
		if (ch.error === undefined) {
			assertHttpError(ch, 413, 'TOO_LARGE');
		} else {
			/* closing without an answer is not what the contract says */
			assert.fail(`chunked body over the limit: no HTTP answer (${ch.error.message})`);
		}
		await assertNothingApplied(small, sym, s0, a);
		/* just under the limit is accepted */
		const fit = JSON.stringify(tick(sym, { pad: 'y'.repeat(SMALL_BODY - 200) }));
		assert.ok(fit.length <= SMALL_BODY);
		assert.equal((await publishOk(small, fit)).accepted, 1);
		assert.equal((await nextTick(a, sym)).seq, 2);
		assert.equal((await httpRequest(small, 'GET', '/healthz')).status, 200);
		await a.close();
	});

test('publish_market_data over /ws: works with role publisher, FORBIDDEN without', async () => {
	const sym = uniqueSymbol('WSPUB');
	const sub = await user(server, 'sub');
	await subscribeStream(sub, { symbol: sym });
	const s0 = await streaming(server);

	for (const [id, roles] of [['nobody', undefined], ['admin', 'admin'], ['reader', 'reader']]) {
		const c = await user(server, id, roles);
		const r = await streamRequest(c, 'publish_market_data', tick(sym, { price: 1 }));
		assert.equal(r.success, false, `${id}: ${JSON.stringify(r)}`);
		assert.equal(r.error.code, 'FORBIDDEN');
		const r2 = await streamRequest(c, 'publish_market_data', { ticks: [tick(sym, { p: 1 })] });
		assert.equal(r2.error?.code, 'FORBIDDEN');
		await c.close();
	}
	await assertNothingApplied(server, sym, s0, sub, TOKEN); /* seq 1 now published over HTTP */

	const p = await user(server, 'feeder', 'publisher');
	const r = await streamRequest(p, 'publish_market_data',
		tick(sym, { price: 2 }, { message_id: 'ws-1', timestamp: 777 }));
	assert.equal(r.success, true, JSON.stringify(r));
	assert.deepEqual(r.data, { accepted: 1, duplicates: 0, stale: 0 });
	const t = await nextTick(sub, sym);
	assert.match(t.epoch, /^[0-9a-f]{12}$/, 'the stream\'s epoch (SPEC 2.9)');
	assert.deepEqual(t, { symbol: sym, data: { price: 2 }, timestamp: 777, seq: 2,
		message_id: 'ws-1', epoch: t.epoch });
	const rb = await streamRequest(p, 'publish_market_data', { ticks: [
		tick(sym, { price: 3 }, { message_id: 'ws-1' }),
		tick(sym, { price: 4 }, { message_id: 'ws-2' }),
	] });
	assert.deepEqual(rb.data, { accepted: 1, duplicates: 1, stale: 0 });
	const t3 = await nextTick(sub, sym);
	assert.equal(t3.seq, 3);
	assert.deepEqual(t3.data, { price: 4 });
	/* both roles at once */
	const both = await user(server, 'both', 'admin,publisher');
	const rboth = await streamRequest(both, 'publish_market_data', tick(sym, { price: 5 }));
	assert.equal(rboth.success, true, JSON.stringify(rboth));
	assert.equal((await nextTick(sub, sym)).seq, 4);
	/* malformed over /ws: BAD_REQUEST, nothing applied */
	const bad = await streamRequest(p, 'publish_market_data', { ticks: [tick(sym, { price: 6 }),
		tick(sym, {})] });
	assert.equal(bad.success, false);
	assert.equal(bad.error.code, 'BAD_REQUEST');
	await sub.nothing(anyStreamData, GRACE_MS);
	const m = await streamRequest(sub, 'get_market_data', { symbol: sym });
	assert.equal(m.data.seq, 4);
	/* a publisher does not receive its own ticks unless subscribed */
	await p.nothing(anyStreamData, 0);
	for (const c of [sub, p, both])
		await c.close();
});

test(`streams.max_symbols (${MAX_SYMBOLS}): 429 LIMIT_EXCEEDED with nothing applied`, async () => {
	const [s1, s2, s3, s4, s5] = Array.from({ length: 5 }, () => uniqueSymbol('MAX'));
	const a = await user(few, 'alice');
	await publishOk(few, [tick(s1, { p: 1 }), tick(s2, { p: 1 })]);
	await subscribeStream(a, { symbols: [s1, s2] });
	await collectTicks(a, s1, 1); /* the snapshots */
	await collectTicks(a, s2, 1);
	const s0 = await streaming(few);
	assert.equal(s0.active_streams, 2);

	/* two new symbols would make 4 */
	const r = await publish(few, [tick(s1, { p: 2 }), tick(s3, { p: 1 }), tick(s4, { p: 1 })]);
	assertHttpError(r, 429, 'LIMIT_EXCEEDED');
	const s1after = await streaming(few);
	assert.equal(s1after.total_messages, s0.total_messages);
	assert.equal(s1after.active_streams, 2);
	const m = await streamRequest(a, 'get_market_data', { symbol: s1 });
	assert.equal(m.data.seq, 1, 'the tick of the existing symbol was not applied');
	for (const s of [s3, s4]) {
		const nf = await streamRequest(a, 'get_market_data', { symbol: s });
		assert.equal(nf.error?.code, 'NOT_FOUND');
	}
	await a.nothing(anyStreamData, GRACE_MS);

	/* one new symbol, repeated, fits */
	assert.deepEqual(await publishOk(few, [tick(s3, { p: 1 }), tick(s3, { p: 2 }),
		tick(s1, { p: 3 })]), { accepted: 3, duplicates: 0, stale: 0 });
	assert.equal((await nextTick(a, s1)).seq, 2);
	/* now full: any new symbol is refused, existing ones still work */
	assertHttpError(await publish(few, tick(s5, { p: 1 })), 429, 'LIMIT_EXCEEDED');
	assertHttpError(await publish(few, [tick(s2, { p: 2 }), tick(s5, { p: 1 })]), 429,
		'LIMIT_EXCEEDED');
	await a.nothing(isStreamData(s2), GRACE_MS);
	assert.equal((await publishOk(few, tick(s2, { p: 3 }))).accepted, 1);
	assert.equal((await nextTick(a, s2)).seq, 2);
	/* publish_market_data over /ws meets the same limit */
	const p = await user(few, 'feeder', 'publisher');
	const wr = await streamRequest(p, 'publish_market_data', tick(s5, { p: 1 }));
	assert.equal(wr.error?.code, 'LIMIT_EXCEEDED', JSON.stringify(wr));
	await p.close();

	await a.close();
});

test('streams.max_subscribe_only: subscribing to new symbols past it is LIMIT_EXCEEDED, nothing ' +
	'subscribed; a full streams.max_symbols does not stop subscribes', async () => {
	const own = await startServer({ label: 'subscribe-max-symbols',
		env: { ...commonEnv, QUOTECAST_STREAMS_MAX_SYMBOLS: '2',
			QUOTECAST_STREAMS_MAX_SUBSCRIBE_ONLY: '1' } });
	try {
		const [s1, s2, s3, s4] = Array.from({ length: 4 }, () => uniqueSymbol('FULL'));
		await publishOk(own, [tick(s1, { p: 1 }), tick(s2, { p: 1 })]);
		const b = await user(own, 'bob');
		const c = await user(own, 'carol');
		await subscribeStream(c, { symbol: s1, snapshot: false });
		/* max_symbols is full, but a subscribe to a symbol without ticks has its own room */
		await subscribeStream(b, { symbol: s3 });
		const st0 = await streaming(own);
		assert.equal(st0.active_streams, 3);
		assert.equal(st0.subscribe_only, 1);
		const rs = await streamRequest(c, 'subscribe_market_stream', { symbol: s4 });
		assert.equal(rs.success, false, JSON.stringify(rs));
		assert.equal(rs.error.code, 'LIMIT_EXCEEDED');
		assert.match(rs.error.message, /^streams\.max_subscribe_only/);
		/* a known symbol together with a new one: neither is subscribed */
		const rs2 = await streamRequest(c, 'subscribe_market_stream', { symbols: [s2, s4] });
		assert.equal(rs2.success, false, JSON.stringify(rs2));
		assert.equal(rs2.error.code, 'LIMIT_EXCEEDED');
		const st1 = await streaming(own);
		assert.equal(st1.active_streams, 3);
		assert.equal(st1.total_subscribers, st0.total_subscribers,
			'a refused subscribe left a subscription behind');
		await publishOk(own, tick(s1, { p: 9 }));
		assert.deepEqual((await nextTick(c, s1)).data, { p: 9 }); /* positive control */
		const un = await streamRequest(c, 'unsubscribe_market_stream', { symbol: s2 });
		assert.equal(un.error?.code, 'NOT_FOUND', 'c holds no subscription to s2: ' +
			JSON.stringify(un));
		/* known symbols are fine */
		await subscribeStream(c, { symbols: [s1, s2, s3], snapshot: false });
		/* the subscribe-only symbol cannot get ticks while max_symbols is full */
		assertHttpError(await publish(own, tick(s3, { p: 1 })), 429, 'LIMIT_EXCEEDED');
		/* once nobody holds it, it is gone, and its place with it */
		await streamRequest(b, 'unsubscribe_market_stream', { symbol: s3 });
		await streamRequest(c, 'unsubscribe_market_stream', { symbol: s3 });
		const st2 = await streaming(own);
		assert.equal(st2.subscribe_only, 0);
		assert.equal(st2.active_streams, 2);
		await subscribeStream(b, { symbol: s4 });
		await b.close();
		await c.close();
	} finally {
		await closeAllClients();
		const st = await own.stop();
		assert.equal(st.code, 0, `exit ${JSON.stringify(st)}`);
	}
});

/*
 * On a server of its own: an empty body once killed the sanitized server (memcpy from NULL),
 * which would have taken every later test down with it.
 */
test('an empty body (content-length: 0) is 400 BAD_JSON and the server lives on', async () => {
	const own = await startServer({ label: 'publish-empty-body', env: commonEnv });
	try {
		const sym = uniqueSymbol('EMPTY');
		const a = await user(own, 'alice');
		await subscribeStream(a, { symbol: sym });
		const s0 = await streaming(own);
		const r = await httpRequest(own, 'POST', '/api/publish', { body: '' }).catch((e) => ({
			status: `no answer (${e.message})`, headers: {}, text: '' }));
		assertHttpError(r, 400, 'BAD_JSON');
		await assertNothingApplied(own, sym, s0, a);
		await a.close();
	} finally {
		const st = await own.stop();
		assert.equal(st.code, 0, `server exit after the empty body: ${JSON.stringify(st)}; ` +
			own.output().slice(-2000));
	}
});
