// Market streams over /ws: subscribe (fields, snapshot, recovery by since_seq), fan-out and
// field filters, update_stream_filter, unsubscribe, get_buffered_data, get_market_data, limits,
// seq numbering, dedup and stale versions, and the streaming stats / metrics (SPEC 2.5, 3, 4;
// streams.md).

import assert from 'node:assert/strict';
import { test, before, after, startServer, stopServer, connect, waitFor } from
	'./lib/harness.mjs';
import {
	uniqueSymbol, tick, publishOk, subscribeStream, streamRequest, isStreamData, anyStreamData,
	nextTick, collectTicks, streaming, metrics, delta, STREAMING_KEYS, STREAMING_METRIC,
} from './lib/streams.mjs';

const BUFFER = 5;
const MAX_STREAMS = 4;
const DEDUP_WINDOW = 3;
const GRACE_MS = 250;

let server;

before(async () => {
	server = await startServer({
		label: 'streams',
		env: {
			QUOTECAST_STREAMS_BUFFER_SIZE: String(BUFFER),
			QUOTECAST_STREAMS_DEDUP_WINDOW: String(DEDUP_WINDOW),
			QUOTECAST_LIMITS_MAX_STREAMS_PER_CONNECTION: String(MAX_STREAMS),
			QUOTECAST_LIMITS_MAX_BAD_MESSAGES: '1000',
			QUOTECAST_LIMITS_RATE_PER_S: '10000',
			QUOTECAST_LIMITS_RATE_BURST: '10000',
		},
	});
});

after(async () => {
	await stopServer(server);
});

const user = (id) => connect(server, { query: { user_id: id } });
const pub = (body) => publishOk(server, body);
/* publish one tick per call, so each is its own fan-out */
const pubTicks = async (symbol, datas, extra = () => ({})) => {
	for (const [i, data] of datas.entries()) {
		const r = await pub(tick(symbol, data, extra(i)));
		assert.equal(r.accepted, 1, JSON.stringify(r));
	}
};

test('subscribe to one symbol without fields: response shape, then full live ticks', async () => {
	const sym = uniqueSymbol('SUB');
	const a = await user('alice');
	const r = await subscribeStream(a, { symbol: sym });
	assert.deepEqual(r.data.subscribed, [sym]);
	assert.equal(r.data.streams.length, 1);
	assert.equal(r.data.streams[0].symbol, sym);
	assert.equal(r.data.streams[0].last_seq, 0);
	assert.equal(r.data.streams[0].oldest_seq, 0);
	assert.equal('recovered' in r.data, false, 'no recovered without since_seq');
	/* no data yet: no snapshot */
	await a.nothing(anyStreamData, GRACE_MS);

	const data = { price: 101.5, bid: 101.4, ask: 101.6, volume: 1200, venue: 'X', halted: false };
	const res = await pub(tick(sym, data, { message_id: 'sub-1', timestamp: 1699267202000 }));
	assert.deepEqual(res, { accepted: 1, duplicates: 0, stale: 0 });
	const ev = await a.next(isStreamData(sym));
	assert.equal(ev.type, 'event');
	assert.equal(ev.event, 'stream_data');
	/* the epoch names this life of the stream's log (SPEC 2.9): the subscribe answer's */
	assert.match(ev.data.epoch, /^[0-9a-f]{12}$/);
	assert.equal(ev.data.epoch, r.data.streams[0].epoch);
	assert.deepEqual(ev.data, { symbol: sym, data, timestamp: 1699267202000, seq: 1,
		message_id: 'sub-1', epoch: ev.data.epoch });

	/* without message_id and timestamp: no message_id key, timestamp = time accepted */
	const t0 = Date.now();
	await pub(tick(sym, { price: 102 }));
	const t1 = Date.now();
	const ev2 = await nextTick(a, sym);
	assert.equal(ev2.seq, 2);
	assert.deepEqual(ev2.data, { price: 102 });
	assert.equal('message_id' in ev2, false);
	assert.ok(ev2.timestamp >= t0 - 1000 && ev2.timestamp <= t1 + 1000,
		`timestamp ${ev2.timestamp} not near ${t0}..${t1}`);
	for (const flag of ['snapshot', 'replay', 'conflated'])
		assert.notEqual(ev2[flag], true, `${flag} on a live tick`);
	await a.close();
});

test('subscribe to several symbols with fields: symbols[], one stream entry each', async () => {
	const s1 = uniqueSymbol('MUL');
	const s2 = uniqueSymbol('MUL');
	const a = await user('alice');
	const r = await subscribeStream(a, { symbols: [s1, s2], fields: ['price', 'volume'] });
	assert.deepEqual(r.data.subscribed, [s1, s2]);
	assert.deepEqual(r.data.streams.map((s) => s.symbol), [s1, s2]);
	for (const s of r.data.streams) {
		assert.equal(s.last_seq, 0);
		assert.equal(s.oldest_seq, 0);
	}
	await pub([tick(s1, { price: 1, bid: 2, volume: 3 }), tick(s2, { price: 10, ask: 11 })]);
	assert.deepEqual((await nextTick(a, s1)).data, { price: 1, volume: 3 });
	assert.deepEqual((await nextTick(a, s2)).data, { price: 10 });
	await a.close();
});

test('subscribe_market_stream validates its payload (BAD_REQUEST, nothing subscribed)',
	async () => {
		const sym = uniqueSymbol('VAL');
		const a = await user('alice');
		const bad = [
			{},
			{ symbol: 42 },
			{ symbol: '' },
			{ symbol: 'has space' },
			{ symbol: 'x'.repeat(33) },
			{ symbols: [] },
			{ symbols: 'AAPL' },
			{ symbols: [sym, 7] },
			{ symbol: sym, fields: 'price' },
			{ symbol: sym, fields: [1] },
			{ symbol: sym, fields: [''] },
			{ symbol: sym, since_seq: -1 },
			{ symbol: sym, since_seq: '3' },
			{ symbol: sym, since_seq: 1.5 },
			{ symbol: sym, snapshot: 'yes' },
			{ symbol: sym, snapshot: 1 },
		];
		for (const payload of bad) {
			const r = await streamRequest(a, 'subscribe_market_stream', payload);
			assert.equal(r.success, false, JSON.stringify(payload));
			assert.equal(r.error.code, 'BAD_REQUEST', JSON.stringify(payload));
		}
		const un = await streamRequest(a, 'unsubscribe_market_stream', { symbol: sym });
		assert.equal(un.error?.code, 'NOT_FOUND', 'nothing was subscribed: ' + JSON.stringify(un));
		await pub(tick(sym, { price: 1 }));
		await a.nothing(anyStreamData, GRACE_MS);
		await a.close();
	});

test('a tick reaches only the subscribers of its symbol', async () => {
	const sx = uniqueSymbol('X');
	const sy = uniqueSymbol('Y');
	const ax = await user('ax');
	const bx = await user('bx');
	const cy = await user('cy');
	const none = await user('none');
	await subscribeStream(ax, { symbol: sx });
	await subscribeStream(bx, { symbol: sx });
	await subscribeStream(cy, { symbol: sy });

	await pub(tick(sx, { price: 1 }));
	/* positive control: both X subscribers got it */
	assert.equal((await nextTick(ax, sx)).seq, 1);
	assert.equal((await nextTick(bx, sx)).seq, 1);
	await Promise.all([
		cy.nothing(anyStreamData, GRACE_MS),
		none.nothing(anyStreamData, 0),
	]);

	await pub(tick(sy, { price: 2 }));
	const y = await nextTick(cy, sy);
	assert.equal(y.seq, 1);
	assert.deepEqual(y.data, { price: 2 });
	await Promise.all([
		ax.nothing(anyStreamData, GRACE_MS),
		bx.nothing(anyStreamData, 0),
		none.nothing(anyStreamData, 0),
	]);
	for (const c of [ax, bx, cy, none])
		await c.close();
});

test('field filter: only the requested fields the tick carries; a tick with none is skipped',
	async () => {
		const sym = uniqueSymbol('FLT');
		const a = await user('alice');
		await subscribeStream(a, { symbol: sym, fields: ['price', 'volume', 'missing'] });
		await pubTicks(sym, [
			{ price: 10, bid: 9, ask: 11, volume: 100 }, /* seq 1 */
			{ bid: 8, ask: 12 },                         /* seq 2: none of the fields */
			{ volume: 200, other: 'x' },                 /* seq 3 */
			{ ask: 13 },                                 /* seq 4: none */
			{ price: 11 },                               /* seq 5 */
		]);
		const got = await collectTicks(a, sym, 3);
		assert.deepEqual(got.map((t) => t.seq), [1, 3, 5]);
		assert.deepEqual(got[0].data, { price: 10, volume: 100 });
		assert.deepEqual(got[1].data, { volume: 200 });
		assert.deepEqual(got[2].data, { price: 11 });
		await a.nothing(anyStreamData, GRACE_MS);
		await a.close();
	});

test('two subscribers with different filters both get the right view of one tick',
	async () => {
		const sym = uniqueSymbol('TWO');
		const p = await user('p');
		const ba = await user('ba');
		const all = await user('all');
		const pv = await user('pv');
		await subscribeStream(p, { symbol: sym, fields: ['price'] });
		await subscribeStream(ba, { symbol: sym, fields: ['bid', 'ask'] });
		await subscribeStream(all, { symbol: sym });
		await subscribeStream(pv, { symbol: sym, fields: ['volume', 'price'] });
		const data = { price: 5, bid: 4.9, ask: 5.1, volume: 77 };
		await pub(tick(sym, data, { message_id: 'two-1' }));
		const [tp, tba, tall, tpv] = await Promise.all([
			nextTick(p, sym), nextTick(ba, sym), nextTick(all, sym), nextTick(pv, sym)]);
		assert.deepEqual(tp.data, { price: 5 });
		assert.deepEqual(tba.data, { bid: 4.9, ask: 5.1 });
		assert.deepEqual(tall.data, data);
		assert.deepEqual(tpv.data, { price: 5, volume: 77 });
		for (const t of [tp, tba, tall, tpv]) {
			assert.equal(t.seq, 1);
			assert.equal(t.message_id, 'two-1');
		}
		/* a tick with only bid: ba and all get it, p and pv do not */
		await pub(tick(sym, { bid: 4.8 }));
		assert.deepEqual((await nextTick(ba, sym)).data, { bid: 4.8 });
		assert.deepEqual((await nextTick(all, sym)).data, { bid: 4.8 });
		await Promise.all([p.nothing(anyStreamData, GRACE_MS), pv.nothing(anyStreamData, 0)]);
		/* exactly one frame per subscriber per tick */
		await Promise.all([ba.nothing(anyStreamData, 0), all.nothing(anyStreamData, 0)]);
		for (const c of [p, ba, all, pv])
			await c.close();
	});

test('snapshot on subscribe: merged newest fields, snapshot:true, seq = last_seq, before live',
	async () => {
		const sym = uniqueSymbol('SNAP');
		await pubTicks(sym, [
			{ price: 1, volume: 10 },
			{ price: 2 },
			{ bid: 5, volume: 11 },
		]);
		const a = await user('alice');
		const r = await subscribeStream(a, { symbol: sym });
		assert.equal(r.data.streams[0].last_seq, 3);
		await pub(tick(sym, { price: 3 })); /* live, seq 4, after the snapshot */
		const snap = await nextTick(a, sym);
		assert.equal(snap.snapshot, true, JSON.stringify(snap));
		assert.equal(snap.seq, 3);
		assert.equal(snap.seq, r.data.streams[0].last_seq);
		assert.deepEqual(snap.data, { price: 2, volume: 11, bid: 5 });
		assert.equal(typeof snap.timestamp, 'number');
		assert.notEqual(snap.replay, true);
		const live = await nextTick(a, sym);
		assert.equal(live.seq, 4);
		assert.deepEqual(live.data, { price: 3 });
		assert.notEqual(live.snapshot, true);

		/* filtered snapshot */
		const b = await user('bob');
		await subscribeStream(b, { symbol: sym, fields: ['price', 'bid', 'nope'] });
		const sb = await nextTick(b, sym);
		assert.equal(sb.snapshot, true);
		assert.equal(sb.seq, 4);
		assert.deepEqual(sb.data, { price: 3, bid: 5 });

		/* snapshot:false: nothing until the next live tick */
		const c = await user('carol');
		const rc = await subscribeStream(c, { symbol: sym, snapshot: false });
		assert.equal(rc.data.streams[0].last_seq, 4);
		await c.nothing(anyStreamData, GRACE_MS);
		await pub(tick(sym, { ask: 9 }));
		const lc = await nextTick(c, sym);
		assert.equal(lc.seq, 5);
		assert.deepEqual(lc.data, { ask: 9 });
		assert.notEqual(lc.snapshot, true);
		await c.nothing(anyStreamData, GRACE_MS);

		/* snapshot:true explicitly is the default behaviour */
		const d = await user('dave');
		await subscribeStream(d, { symbol: sym, snapshot: true, fields: ['ask'] });
		const sd = await nextTick(d, sym);
		assert.equal(sd.snapshot, true);
		assert.equal(sd.seq, 5);
		assert.deepEqual(sd.data, { ask: 9 });
		for (const x of [a, b, c, d])
			await x.close();
	});

test('subscribing again replaces the filter, catches up again, and does not double delivery',
	async () => {
		const sym = uniqueSymbol('RESUB');
		await pub(tick(sym, { price: 1, bid: 2 }));
		const a = await user('alice');
		await subscribeStream(a, { symbol: sym, fields: ['price'] });
		const s1 = await nextTick(a, sym);
		assert.equal(s1.snapshot, true);
		assert.deepEqual(s1.data, { price: 1 });
		const r = await subscribeStream(a, { symbol: sym, fields: ['bid'] });
		assert.deepEqual(r.data.subscribed, [sym]);
		const s2 = await nextTick(a, sym);
		assert.equal(s2.snapshot, true);
		assert.deepEqual(s2.data, { bid: 2 });
		await pub(tick(sym, { price: 3, bid: 4 }));
		const live = await nextTick(a, sym);
		assert.equal(live.seq, 2);
		assert.deepEqual(live.data, { bid: 4 });
		await a.nothing(anyStreamData, GRACE_MS);
		await a.close();
	});

test('since_seq: replay after it in order with replay:true, then live with no gap or duplicate',
	async () => {
		const sym = uniqueSymbol('REC');
		await pubTicks(sym, [{ price: 1 }, { price: 2 }, { price: 3 }, { price: 4 }],
			(i) => ({ message_id: `rec-${i + 1}` }));
		const a = await user('alice');
		const r = await subscribeStream(a, { symbol: sym, since_seq: 1 });
		assert.equal(r.data.recovered, true);
		assert.equal(r.data.streams[0].recovered, true);
		assert.equal(r.data.streams[0].last_seq, 4);
		assert.equal(r.data.streams[0].oldest_seq, 1);
		await pubTicks(sym, [{ price: 5 }, { price: 6 }], (i) => ({ message_id: `rec-${i + 5}` }));
		const got = await collectTicks(a, sym, 5);
		assert.deepEqual(got.map((t) => t.seq), [2, 3, 4, 5, 6]);
		for (const t of got.slice(0, 3)) {
			assert.equal(t.replay, true, JSON.stringify(t));
			assert.notEqual(t.snapshot, true);
			assert.deepEqual(t.data, { price: t.seq });
			assert.equal(t.message_id, `rec-${t.seq}`);
		}
		for (const t of got.slice(3)) {
			assert.notEqual(t.replay, true, JSON.stringify(t));
			assert.notEqual(t.snapshot, true);
			assert.deepEqual(t.data, { price: t.seq });
		}
		/* a complete replay needs no snapshot */
		await a.nothing(anyStreamData, GRACE_MS);
		await a.close();
	});

test('since_seq equal to last_seq: recovered, no replay, no snapshot, then live', async () => {
	const sym = uniqueSymbol('RECL');
	await pubTicks(sym, [{ price: 1 }, { price: 2 }]);
	const a = await user('alice');
	const r = await subscribeStream(a, { symbol: sym, since_seq: 2 });
	assert.equal(r.data.recovered, true);
	await a.nothing(anyStreamData, GRACE_MS);
	await pub(tick(sym, { price: 3 }));
	const t = await nextTick(a, sym);
	assert.equal(t.seq, 3);
	assert.notEqual(t.replay, true);
	await a.close();
});

test('since_seq with a field filter: the replay is filtered and skips ticks without the fields',
	async () => {
		const sym = uniqueSymbol('RECF');
		await pubTicks(sym, [{ price: 1, bid: 1 }, { bid: 2 }, { price: 3, ask: 3 }]);
		const a = await user('alice');
		const r = await subscribeStream(a, { symbol: sym, since_seq: 0, fields: ['price'] });
		assert.equal(r.data.recovered, true);
		await pub(tick(sym, { bid: 4 }));   /* seq 4: filtered out */
		await pub(tick(sym, { price: 5 })); /* seq 5 */
		const got = await collectTicks(a, sym, 3);
		assert.deepEqual(got.map((t) => [t.seq, t.replay === true, t.data]),
			[[1, true, { price: 1 }], [3, true, { price: 3 }], [5, false, { price: 5 }]]);
		await a.nothing(anyStreamData, GRACE_MS);
		await a.close();
	});

test(`recovered:false when the ring (${BUFFER}) no longer reaches back; then a snapshot`,
	async () => {
		const sym = uniqueSymbol('WRAP');
		/* 8 ticks into a ring of 5: seqs 4..8 remain */
		await pubTicks(sym, Array.from({ length: 8 },
			(_, i) => ({ price: i + 1, [`f${i + 1}`]: i + 1 })));
		const merged = { price: 8 };
		for (let i = 1; i <= 8; i++)
			merged[`f${i}`] = i;

		const a = await user('alice');
		const r = await subscribeStream(a, { symbol: sym, since_seq: 1 });
		assert.equal(r.data.recovered, false, JSON.stringify(r.data));
		assert.equal(r.data.streams[0].recovered, false);
		assert.equal(r.data.streams[0].oldest_seq, 4);
		assert.equal(r.data.streams[0].last_seq, 8);
		await pub(tick(sym, { price: 9 }));
		const got = await collectTicks(a, sym, 7);
		/* what the ring still holds, as replay, then the snapshot, then live */
		assert.deepEqual(got.map((t) => t.seq), [4, 5, 6, 7, 8, 8, 9]);
		for (const t of got.slice(0, 5)) {
			assert.equal(t.replay, true, JSON.stringify(t));
			assert.deepEqual(t.data, { price: t.seq, [`f${t.seq}`]: t.seq });
		}
		assert.equal(got[5].snapshot, true, JSON.stringify(got[5]));
		assert.deepEqual(got[5].data, merged);
		assert.notEqual(got[6].replay, true);
		assert.notEqual(got[6].snapshot, true);
		assert.deepEqual(got[6].data, { price: 9 });
		await a.nothing(anyStreamData, GRACE_MS);

		/* the ring is now 5..9: since_seq 4 (oldest - 1) is complete, 3 is not */
		const b = await user('bob');
		const rb = await subscribeStream(b, { symbol: sym, since_seq: 4 });
		assert.equal(rb.data.recovered, true, JSON.stringify(rb.data));
		const gb = await collectTicks(b, sym, 5);
		assert.deepEqual(gb.map((t) => [t.seq, t.replay]), [[5, true], [6, true], [7, true],
			[8, true], [9, true]]);
		await b.nothing(anyStreamData, GRACE_MS);
		const c = await user('carol');
		const rc = await subscribeStream(c, { symbol: sym, since_seq: 3 });
		assert.equal(rc.data.recovered, false, `ring is 5..9, since_seq 3 misses 4: ` +
			JSON.stringify(rc.data));

		/* recovered:false with snapshot:false: the replay only */
		const d = await user('dave');
		const rd = await subscribeStream(d, { symbol: sym, since_seq: 2, snapshot: false });
		assert.equal(rd.data.recovered, false);
		const gd = await collectTicks(d, sym, 5);
		assert.deepEqual(gd.map((t) => [t.seq, t.replay]), [[5, true], [6, true], [7, true],
			[8, true], [9, true]]);
		await d.nothing(anyStreamData, GRACE_MS);
		for (const x of [a, b, c, d])
			await x.close();
	});

test('recovered is false overall when any of several symbols cannot be recovered', async () => {
	const s1 = uniqueSymbol('RA');
	const s2 = uniqueSymbol('RB');
	await pubTicks(s1, [{ p: 1 }, { p: 2 }]);
	await pubTicks(s2, Array.from({ length: 7 }, (_, i) => ({ p: i + 1 })));
	const a = await user('alice');
	const r = await subscribeStream(a, { symbols: [s1, s2], since_seq: 1, snapshot: false });
	assert.equal(r.data.recovered, false);
	const bySym = Object.fromEntries(r.data.streams.map((s) => [s.symbol, s]));
	assert.equal(bySym[s1].recovered, true);
	assert.equal(bySym[s2].recovered, false);
	assert.deepEqual((await collectTicks(a, s1, 1)).map((t) => t.seq), [2]);
	assert.deepEqual((await collectTicks(a, s2, 5)).map((t) => t.seq), [3, 4, 5, 6, 7]);
	await a.close();
});

test('update_stream_filter changes what arrives', async () => {
	const sym = uniqueSymbol('UPD');
	const a = await user('alice');
	await subscribeStream(a, { symbol: sym, fields: ['price'] });
	await pub(tick(sym, { price: 1, bid: 1 }));
	assert.deepEqual((await nextTick(a, sym)).data, { price: 1 });

	const u = await streamRequest(a, 'update_stream_filter', { symbol: sym, fields: ['bid'] });
	assert.equal(u.success, true, JSON.stringify(u));
	assert.deepEqual(u.data, { symbol: sym, fields: ['bid'] });
	await pub(tick(sym, { price: 2, bid: 2 }));
	await pub(tick(sym, { price: 3 })); /* no bid: not sent */
	await pub(tick(sym, { bid: 4 }));
	const got = await collectTicks(a, sym, 2);
	assert.deepEqual(got.map((t) => [t.seq, t.data]), [[2, { bid: 2 }], [4, { bid: 4 }]]);

	const all = await streamRequest(a, 'update_stream_filter', { symbol: sym, fields: [] });
	assert.equal(all.success, true);
	assert.deepEqual(all.data, { symbol: sym, fields: [] });
	await pub(tick(sym, { price: 5, vol: 5 }));
	assert.deepEqual((await nextTick(a, sym)).data, { price: 5, vol: 5 });

	await streamRequest(a, 'update_stream_filter', { symbol: sym, fields: ['vol'] });
	const none = await streamRequest(a, 'update_stream_filter', { symbol: sym });
	assert.equal(none.success, true, 'absent fields = all');
	assert.deepEqual(none.data.fields, []);
	await pub(tick(sym, { price: 6 }));
	assert.deepEqual((await nextTick(a, sym)).data, { price: 6 });
	await a.nothing(anyStreamData, GRACE_MS);

	const nf = await streamRequest(a, 'update_stream_filter', { symbol: uniqueSymbol('NOSUB'),
		fields: ['x'] });
	assert.equal(nf.success, false);
	assert.equal(nf.error.code, 'NOT_FOUND');
	const b = await user('bob');
	const nf2 = await streamRequest(b, 'update_stream_filter', { symbol: sym, fields: ['x'] });
	assert.equal(nf2.error?.code, 'NOT_FOUND', 'another connection is not subscribed');
	const bad = await streamRequest(a, 'update_stream_filter', { symbol: sym, fields: 'x' });
	assert.equal(bad.error?.code, 'BAD_REQUEST');
	await a.close();
	await b.close();
});

test('unsubscribe stops delivery; unsubscribing what is not subscribed is NOT_FOUND', async () => {
	const sym = uniqueSymbol('UNS');
	const other = uniqueSymbol('UNS');
	const a = await user('alice');
	const b = await user('bob');
	await subscribeStream(a, { symbols: [sym, other] });
	await subscribeStream(b, { symbol: sym });
	await pub(tick(sym, { price: 1 }));
	assert.equal((await nextTick(a, sym)).seq, 1);
	assert.equal((await nextTick(b, sym)).seq, 1);

	const u = await streamRequest(a, 'unsubscribe_market_stream', { symbol: sym });
	assert.equal(u.success, true, JSON.stringify(u));
	assert.deepEqual(u.data, { unsubscribed: [sym] });
	await pub(tick(sym, { price: 2 }));
	assert.equal((await nextTick(b, sym)).seq, 2); /* positive control */
	await a.nothing(isStreamData(sym), GRACE_MS);
	/* still subscribed to the other one */
	await pub(tick(other, { price: 3 }));
	assert.equal((await nextTick(a, other)).seq, 1);

	const again = await streamRequest(a, 'unsubscribe_market_stream', { symbol: sym });
	assert.equal(again.success, false);
	assert.equal(again.error.code, 'NOT_FOUND');
	const never = await streamRequest(a, 'unsubscribe_market_stream',
		{ symbol: uniqueSymbol('NEVER') });
	assert.equal(never.error?.code, 'NOT_FOUND');
	/* symbols[]: only the ones held are reported */
	const many = await streamRequest(a, 'unsubscribe_market_stream', { symbols: [sym, other] });
	assert.equal(many.success, true, JSON.stringify(many));
	assert.deepEqual(many.data.unsubscribed, [other]);
	await pub(tick(other, { price: 4 }));
	await a.nothing(anyStreamData, GRACE_MS);
	const bad = await streamRequest(a, 'unsubscribe_market_stream', {});
	assert.equal(bad.error?.code, 'BAD_REQUEST');
	await a.close();
	await b.close();
});

test(`get_buffered_data: limit, since_seq, oldest_seq/last_seq after the ring (${BUFFER}) wrapped`,
	async () => {
		const sym = uniqueSymbol('BUF');
		await pubTicks(sym, Array.from({ length: 8 }, (_, i) => ({ price: i + 1, bid: i })),
			(i) => ({ message_id: `buf-${i + 1}`, timestamp: 1000 + i }));
		const a = await user('alice');
		const get = async (payload) => {
			const r = await streamRequest(a, 'get_buffered_data', { symbol: sym, ...payload });
			assert.equal(r.success, true, `${JSON.stringify(payload)}: ${JSON.stringify(r)}`);
			assert.equal(r.data.symbol, sym);
			assert.equal(r.data.oldest_seq, 4);
			assert.equal(r.data.last_seq, 8);
			return r.data.messages;
		};
		const seqs = (msgs) => msgs.map((m) => m.seq);

		const all = await get({});
		assert.deepEqual(seqs(all), [4, 5, 6, 7, 8]);
		assert.deepEqual(all[0], { symbol: sym, data: { price: 4, bid: 3 }, timestamp: 1003,
			seq: 4, message_id: 'buf-4', epoch: all[0].epoch });
		assert.match(all[0].epoch, /^[0-9a-f]{12}$/);
		assert.deepEqual(seqs(await get({ limit: 2 })), [7, 8], 'the newest two, oldest first');
		assert.deepEqual(seqs(await get({ limit: 1 })), [8]);
		assert.deepEqual(seqs(await get({ limit: 1000 })), [4, 5, 6, 7, 8], 'capped at the ring');
		assert.deepEqual(seqs(await get({ since_seq: 5 })), [6, 7, 8]);
		assert.deepEqual(seqs(await get({ since_seq: 5, limit: 2 })), [6, 7]);
		assert.deepEqual(seqs(await get({ since_seq: 0 })), [4, 5, 6, 7, 8]);
		assert.deepEqual(seqs(await get({ since_seq: 0, limit: 3 })), [4, 5, 6]);
		assert.deepEqual(seqs(await get({ since_seq: 8 })), []);
		assert.deepEqual(seqs(await get({ since_seq: 50 })), []);

		/* filtered by the caller's own subscription */
		await subscribeStream(a, { symbol: sym, fields: ['bid'], snapshot: false });
		const f = await get({ limit: 2 });
		assert.deepEqual(f.map((m) => m.data), [{ bid: 6 }, { bid: 7 }]);
		/* ...and not by anyone else's */
		const b = await user('bob');
		const rb = await streamRequest(b, 'get_buffered_data', { symbol: sym, limit: 1 });
		assert.deepEqual(rb.data.messages[0].data, { price: 8, bid: 7 });

		const nf = await streamRequest(a, 'get_buffered_data', { symbol: uniqueSymbol('NOPE') });
		assert.equal(nf.success, false);
		assert.equal(nf.error.code, 'NOT_FOUND');
		for (const payload of [{}, { symbol: 5 }, { symbol: sym, limit: 0 },
			{ symbol: sym, limit: 'x' }, { symbol: sym, since_seq: -2 }]) {
			const r = await streamRequest(b, 'get_buffered_data', payload);
			assert.equal(r.error?.code, 'BAD_REQUEST', JSON.stringify(payload));
		}
		/* the buffered data did not turn into stream_data */
		await b.nothing(anyStreamData, 0);
		await a.close();
		await b.close();
	});

test('get_market_data: merged snapshot, fields filter, NOT_FOUND', async () => {
	const sym = uniqueSymbol('MKT');
	const a = await user('alice');
	const nf = await streamRequest(a, 'get_market_data', { symbol: sym });
	assert.equal(nf.success, false);
	assert.equal(nf.error.code, 'NOT_FOUND');

	/* a stream with subscribers but no data yet is still NOT_FOUND */
	const b = await user('bob');
	await subscribeStream(b, { symbol: sym });
	const nf2 = await streamRequest(a, 'get_market_data', { symbol: sym });
	assert.equal(nf2.error?.code, 'NOT_FOUND');

	await pubTicks(sym, [{ price: 1, volume: 5 }, { price: 2, bid: 1.9 }, { ask: 2.1 }],
		(i) => ({ timestamp: 5000 + i }));
	const r = await streamRequest(a, 'get_market_data', { symbol: sym });
	assert.equal(r.success, true, JSON.stringify(r));
	assert.equal(r.data.symbol, sym);
	assert.deepEqual(r.data.data, { price: 2, volume: 5, bid: 1.9, ask: 2.1 });
	assert.equal(r.data.seq, 3);
	assert.equal(typeof r.data.timestamp, 'number');
	const f = await streamRequest(a, 'get_market_data', { symbol: sym, fields: ['price', 'ask',
		'zzz'] });
	assert.deepEqual(f.data.data, { price: 2, ask: 2.1 });
	assert.equal(f.data.seq, 3);
	const bad = await streamRequest(a, 'get_market_data', { symbol: sym, fields: 'price' });
	assert.equal(bad.error?.code, 'BAD_REQUEST');
	const bad2 = await streamRequest(a, 'get_market_data', {});
	assert.equal(bad2.error?.code, 'BAD_REQUEST');
	/* get_market_data sends no stream_data */
	await a.nothing(anyStreamData, 0);
	await a.close();
	await b.close();
});

test(`max_streams_per_connection (${MAX_STREAMS}): LIMIT_EXCEEDED with nothing subscribed`,
	async () => {
		const syms = Array.from({ length: MAX_STREAMS + 2 }, () => uniqueSymbol('LIM'));
		const a = await user('greedy');
		await subscribeStream(a, { symbols: syms.slice(0, MAX_STREAMS - 1) });
		/* two more would make MAX_STREAMS + 1 */
		const over = await streamRequest(a, 'subscribe_market_stream',
			{ symbols: syms.slice(MAX_STREAMS - 1, MAX_STREAMS + 1) });
		assert.equal(over.success, false, JSON.stringify(over));
		assert.equal(over.error.code, 'LIMIT_EXCEEDED');
		/* neither of the two was subscribed */
		await pub([tick(syms[MAX_STREAMS - 1], { p: 1 }), tick(syms[MAX_STREAMS], { p: 1 }),
			tick(syms[0], { p: 1 })]);
		assert.equal((await nextTick(a, syms[0])).seq, 1); /* positive control */
		await a.nothing(anyStreamData, GRACE_MS);
		const un = await streamRequest(a, 'unsubscribe_market_stream',
			{ symbols: syms.slice(MAX_STREAMS - 1, MAX_STREAMS + 1) });
		assert.equal(un.error?.code, 'NOT_FOUND');

		/* one more is fine, then the next is over */
		await subscribeStream(a, { symbol: syms[MAX_STREAMS - 1], snapshot: false });
		const over1 = await streamRequest(a, 'subscribe_market_stream', { symbol: syms[MAX_STREAMS] });
		assert.equal(over1.error?.code, 'LIMIT_EXCEEDED');
		/* re-subscribing a held symbol is not a new subscription */
		await subscribeStream(a, { symbol: syms[0], fields: ['p'], snapshot: false });
		/* the limit is per connection */
		const b = await user('greedy');
		await subscribeStream(b, { symbol: syms[MAX_STREAMS], snapshot: false });
		/* leaving one makes room */
		await streamRequest(a, 'unsubscribe_market_stream', { symbol: syms[1] });
		await subscribeStream(a, { symbol: syms[MAX_STREAMS], snapshot: false });
		assert.equal(a.isOpen, true);
		await a.close();
		await b.close();
	});

test(`subscribing to more than ${MAX_STREAMS} symbols in one request is LIMIT_EXCEEDED`,
	async () => {
		const syms = Array.from({ length: MAX_STREAMS + 1 }, () => uniqueSymbol('LIM1'));
		const a = await user('greedy');
		const over = await streamRequest(a, 'subscribe_market_stream', { symbols: syms });
		assert.equal(over.success, false, JSON.stringify(over));
		assert.equal(over.error.code, 'LIMIT_EXCEEDED', JSON.stringify(over));
		await pub(syms.map((s) => tick(s, { p: 1 })));
		await a.nothing(anyStreamData, GRACE_MS);
		await a.close();
	});

test('seq starts at 1 and is consecutive per symbol', async () => {
	const sx = uniqueSymbol('SEQ');
	const sy = uniqueSymbol('SEQ');
	const a = await user('alice');
	await subscribeStream(a, { symbols: [sx, sy] });
	const batch = [sx, sy, sx, sx, sy, sx].map((s, i) => tick(s, { i }));
	assert.deepEqual(await pub(batch), { accepted: 6, duplicates: 0, stale: 0 });
	const x = await collectTicks(a, sx, 4);
	const y = await collectTicks(a, sy, 2);
	assert.deepEqual(x.map((t) => [t.seq, t.data.i]), [[1, 0], [2, 2], [3, 3], [4, 5]]);
	assert.deepEqual(y.map((t) => [t.seq, t.data.i]), [[1, 1], [2, 4]]);
	await pub(tick(sy, { i: 6 }));
	assert.equal((await nextTick(a, sy)).seq, 3);
	await a.nothing(anyStreamData, GRACE_MS);
	await a.close();
});

test('dedup: the same message_id twice is a duplicate and does not consume a seq', async () => {
	const sym = uniqueSymbol('DUP');
	const a = await user('alice');
	await subscribeStream(a, { symbol: sym });
	const s0 = await streaming(server);
	assert.deepEqual(await pub(tick(sym, { p: 1 }, { message_id: 'm1' })),
		{ accepted: 1, duplicates: 0, stale: 0 });
	assert.deepEqual(await pub(tick(sym, { p: 99 }, { message_id: 'm1' })),
		{ accepted: 0, duplicates: 1, stale: 0 });
	/* in one batch */
	assert.deepEqual(await pub([tick(sym, { p: 2 }, { message_id: 'm2' }),
		tick(sym, { p: 98 }, { message_id: 'm2' })]), { accepted: 1, duplicates: 1, stale: 0 });
	/* ticks without message_id are never duplicates */
	assert.deepEqual(await pub([tick(sym, { p: 3 }), tick(sym, { p: 3 })]),
		{ accepted: 2, duplicates: 0, stale: 0 });
	const got = await collectTicks(a, sym, 4);
	assert.deepEqual(got.map((t) => [t.seq, t.data.p]), [[1, 1], [2, 2], [3, 3], [4, 3]]);
	await a.nothing(anyStreamData, GRACE_MS);
	const d = delta(s0, await streaming(server));
	assert.equal(d.total_deduplicated, 2);
	assert.equal(d.total_messages, 4);
	assert.equal(d.total_published, 6);
	assert.equal(d.total_dropped, 0);
	/* the snapshot kept the first value, not the duplicate's */
	const m = await streamRequest(a, 'get_market_data', { symbol: sym });
	assert.deepEqual(m.data.data, { p: 3 });
	assert.equal(m.data.seq, 4);

	/* the same id on another symbol is not a duplicate */
	const other = uniqueSymbol('DUP');
	assert.deepEqual(await pub(tick(other, { p: 1 }, { message_id: 'm1' })),
		{ accepted: 1, duplicates: 0, stale: 0 });
	await a.close();
});

test(`dedup window (${DEDUP_WINDOW}): an id older than the window is accepted again`, async () => {
	const sym = uniqueSymbol('WIN');
	for (let i = 1; i <= DEDUP_WINDOW + 1; i++)
		assert.equal((await pub(tick(sym, { p: i }, { message_id: `w${i}` }))).accepted, 1);
	/* w2..w4 are the last three: w4 and w2 are duplicates, w1 is not */
	assert.equal((await pub(tick(sym, { p: 0 }, { message_id: `w${DEDUP_WINDOW + 1}` }))).duplicates,
		1);
	assert.equal((await pub(tick(sym, { p: 0 }, { message_id: 'w2' }))).duplicates, 1);
	const r = await pub(tick(sym, { p: 5 }, { message_id: 'w1' }));
	assert.deepEqual(r, { accepted: 1, duplicates: 0, stale: 0 });
	const a = await user('alice');
	const m = await streamRequest(a, 'get_market_data', { symbol: sym });
	assert.equal(m.data.seq, DEDUP_WINDOW + 2);
	assert.equal(m.data.data.p, 5);
	await a.close();
});

test('stale versions: a version not above the last accepted one is dropped', async () => {
	const sym = uniqueSymbol('VER');
	const a = await user('alice');
	await subscribeStream(a, { symbol: sym });
	const s0 = await streaming(server);
	assert.deepEqual(await pub(tick(sym, { p: 5 }, { version: 5 })),
		{ accepted: 1, duplicates: 0, stale: 0 });
	assert.deepEqual(await pub(tick(sym, { p: 50 }, { version: 5 })),
		{ accepted: 0, duplicates: 0, stale: 1 });
	assert.deepEqual(await pub(tick(sym, { p: 4 }, { version: 4 })),
		{ accepted: 0, duplicates: 0, stale: 1 });
	assert.deepEqual(await pub([tick(sym, { p: 7 }, { version: 7 }),
		tick(sym, { p: 6 }, { version: 6 }), tick(sym, { p: 8 }, { version: 8 })]),
	{ accepted: 2, duplicates: 0, stale: 1 });
	const got = await collectTicks(a, sym, 3);
	assert.deepEqual(got.map((t) => [t.seq, t.data.p]), [[1, 5], [2, 7], [3, 8]]);
	await a.nothing(anyStreamData, GRACE_MS);
	const d = delta(s0, await streaming(server));
	assert.equal(d.total_dropped, 3);
	assert.equal(d.total_messages, 3);
	assert.equal(d.total_published, 6);
	assert.equal(d.total_deduplicated, 0);
	const m = await streamRequest(a, 'get_market_data', { symbol: sym });
	assert.deepEqual(m.data.data, { p: 8 });
	assert.equal(m.data.seq, 3);
	/* versions are per symbol */
	assert.equal((await pub(tick(uniqueSymbol('VER'), { p: 1 }, { version: 1 }))).accepted, 1);
	await a.close();
});

test('stats streaming block and its /metrics figures follow the activity', async () => {
	const s0 = await streaming(server);
	for (const k of STREAMING_KEYS)
		assert.equal(typeof s0[k], 'number', `streaming.${k} in ${JSON.stringify(s0)}`);
	const m0 = await metrics(server);
	for (const k of STREAMING_KEYS) {
		const name = STREAMING_METRIC[k];
		assert.equal(m0.values.get(name), s0[k], `${name} equals stats streaming.${k}`);
		assert.ok(m0.types.has(name), `# TYPE line for ${name}`);
	}

	const s1sym = uniqueSymbol('STAT');
	const s2sym = uniqueSymbol('STAT');
	const a = await user('alice');
	const b = await user('bob');
	await subscribeStream(a, { symbols: [s1sym, s2sym] });
	await subscribeStream(b, { symbol: s1sym, fields: ['price'] });
	let s = await streaming(server);
	assert.deepEqual(delta(s0, s), { active_streams: 2, total_subscribers: 3, total_messages: 0,
		total_dropped: 0, total_deduplicated: 0, total_conflated: 0, total_deliveries: 0,
		total_published: 0 });

	const r = await pub([
		tick(s1sym, { price: 1 }, { message_id: 'st1', version: 1 }), /* a, b */
		tick(s1sym, { bid: 1 }, { message_id: 'st2', version: 2 }),   /* a only */
		tick(s1sym, { price: 9 }, { message_id: 'st1', version: 3 }), /* duplicate */
		tick(s1sym, { price: 9 }, { message_id: 'st3', version: 2 }), /* stale */
		tick(s2sym, { price: 2 }),                                    /* a */
	]);
	assert.deepEqual(r, { accepted: 3, duplicates: 1, stale: 1 });
	await collectTicks(a, s1sym, 2);
	await collectTicks(a, s2sym, 1);
	await nextTick(b, s1sym);
	s = await streaming(server);
	assert.deepEqual(delta(s0, s), { active_streams: 2, total_subscribers: 3, total_messages: 3,
		total_dropped: 1, total_deduplicated: 1, total_conflated: 0, total_deliveries: 4,
		total_published: 5 });
	const m1 = await metrics(server);
	for (const k of STREAMING_KEYS)
		assert.equal(m1.values.get(STREAMING_METRIC[k]), s[k], `metrics ${k}`);
	assert.equal(m1.values.get('quotecast_ticks_accepted_total') -
		m0.values.get('quotecast_ticks_accepted_total'), 3);

	/* unsubscribing and closing release subscriptions; the symbols keep their state */
	await streamRequest(a, 'unsubscribe_market_stream', { symbol: s2sym });
	s = await streaming(server);
	assert.equal(s.total_subscribers - s0.total_subscribers, 2);
	await b.close();
	await a.close();
	await waitFor(async () => (await streaming(server)).total_subscribers === s0.total_subscribers,
		{ what: 'subscriptions of closed connections released' });
	s = await streaming(server);
	assert.equal(s.active_streams - s0.active_streams, 2);
});
