// max_hz per subscription (SPEC 2.11, protocol.md "max_hz") against the real binary: a
// publisher sends 200 ticks over about 2 s to one symbol; a subscriber with max_hz 4 gets at
// most one update per 250 ms (bounded by the elapsed time it measured, never by a duration
// asserted), the last one with the final seq, and what it got, applied in order, gives every
// field's final value; a plain subscriber gets all 200. Also over Socket.IO, and for a
// persisted subscription (PostgreSQL: its max_hz is in the row and survives a restart).

import assert from 'node:assert/strict';
import { test, before, after, afterEach, startServer, stopServer, connect, sleep } from
	'./lib/harness.mjs';
import {
	uniqueSymbol, tick, publishOk, subscribeStream, isStreamData, streaming, metrics,
} from './lib/streams.mjs';
import { sioConnect, closeAllSio } from './lib/sio.mjs';
import { sharedDb } from './lib/pg.mjs';
import { unique, open, ok, rows, serverSet } from './lib/persist.mjs';

const TICKS = 200;
const GAP_MS = 10; /* ~2 s of ticks */
const HZ = 4;
/* the first tick goes at once, then one per interval; one more for rounding at the edges */
const bound = (elapsedMs) => Math.floor(elapsedMs / 1000 * HZ) + 2;

let server;

before(async () => {
	server = await startServer({
		label: 'maxhz',
		env: {
			QUOTECAST_LIMITS_RATE_PER_S: '100000',
			QUOTECAST_LIMITS_RATE_BURST: '100000',
		},
	});
});

after(async () => {
	await closeAllSio();
	await stopServer(server);
});

/* tick i: price and volume change every time, bid every seventh, venue once */
const dataOf = (i) => ({ price: 100 + i / 100, volume: i * 10, ...(i % 7 ? {} : { bid: i }),
	...(i === 1 ? { venue: 'X' } : {}) });

function finalState() {
	const st = {};
	for (let i = 1; i <= TICKS; i++)
		Object.assign(st, dataOf(i));
	return st;
}

/* Publish the ticks one by one, GAP_MS apart, over HTTP (each its own fan-out). */
async function feed(srv, sym) {
	for (let i = 1; i <= TICKS; i++) {
		const r = await publishOk(srv, tick(sym, dataOf(i)));
		assert.equal(r.accepted, 1);
		await sleep(GAP_MS);
	}
}

/* The stream_data events @next() gives, up to the one with seq TICKS. */
async function untilLast(next) {
	const events = [];
	for (;;) {
		const ev = await next();
		events.push(ev);
		if (ev.seq === TICKS)
			return events;
	}
}

/*
 * What a max_hz subscriber got: the count, bounded by its own elapsed time; seqs ascending; the
 * last one is seq TICKS; applied in order they give the final values.
 */
function checkRated(events, elapsedMs, label) {
	const show = `${label}: ${events.length} updates in ${elapsedMs} ms: ` +
		JSON.stringify(events.map((e) => [e.seq, e.conflated ?? false]));
	assert.ok(events.length >= 2, show);
	assert.ok(events.length <= bound(elapsedMs), show);
	assert.ok(events.length < TICKS / 4, show);
	for (let k = 1; k < events.length; k++)
		assert.ok(events[k].seq > events[k - 1].seq, show);
	assert.equal(events.at(-1).seq, TICKS, show);
	const st = {};
	for (const e of events)
		Object.assign(st, e.data);
	assert.deepEqual(st, finalState(), show);
}

test('a max_hz 4 subscriber gets at most 4 updates a second, merged, the last with the final ' +
	'seq and values; a plain subscriber gets every tick', async () => {
	const sym = uniqueSymbol('HZ');
	const slow = await connect(server, { query: { user_id: 'slow' } });
	const plain = await connect(server, { query: { user_id: 'plain' } });
	const r = await subscribeStream(slow, { symbol: sym, max_hz: HZ });
	assert.equal(r.data.streams[0].max_hz, HZ);
	await subscribeStream(plain, { symbol: sym });
	const before0 = await streaming(server);

	const t0 = Date.now();
	await feed(server, sym);
	const events = await untilLast(async () => (await slow.next(isStreamData(sym), 5000)).data);
	const elapsed = Date.now() - t0;
	checkRated(events, elapsed, 'native');
	/* a merged update says so, as conflation does */
	assert.ok(events.some((e) => e.conflated === true));

	for (let i = 1; i <= TICKS; i++) {
		const ev = (await plain.next(isStreamData(sym), 5000)).data;
		assert.equal(ev.seq, i);
		assert.equal('conflated' in ev, false);
	}
	/* nothing more after the last one */
	await slow.nothing(isStreamData(sym), 600);
	const after0 = await streaming(server);
	assert.equal(after0.total_rate_merged - before0.total_rate_merged, TICKS - events.length);
	assert.equal(after0.rate_pending, 0);
	const m = await metrics(server);
	assert.equal(m.types.get('quotecast_ticks_rate_merged_total'), 'counter');
	assert.equal(m.values.get('quotecast_ticks_rate_merged_total'), after0.total_rate_merged);
	assert.equal(m.types.get('quotecast_rate_pending'), 'gauge');
	await slow.close();
	await plain.close();
});

test('max_hz out of range is refused naming it; unsubscribing drops what was pending',
	async () => {
		const sym = uniqueSymbol('HZ');
		const c = await connect(server, { query: { user_id: 'bad' } });
		for (const max_hz of [-1, '4', 1001, true]) {
			const r = await c.request('subscribe_market_stream', { symbol: sym, max_hz });
			assert.equal(r.success, false, JSON.stringify(r));
			assert.equal(r.error.code, 'BAD_REQUEST');
			assert.match(r.error.message, /max_hz/);
		}
		await subscribeStream(c, { symbol: sym, max_hz: 0.5 });
		await publishOk(server, tick(sym, { p: 1 }));
		await c.next(isStreamData(sym, { seq: 1 }));
		await publishOk(server, tick(sym, { p: 2 }));
		const u = await c.request('unsubscribe_market_stream', { symbol: sym });
		assert.equal(u.success, true);
		await c.nothing(isStreamData(sym), 300);
		await c.close();
	});

test('Socket.IO: subscribe_market_stream with max_hz', async () => {
	const sym = uniqueSymbol('HZS');
	const a = await sioConnect(server, { auth: { user_id: 'sio-hz' } });
	const r = await a.ack('subscribe_market_stream', { symbol: sym, max_hz: HZ });
	assert.equal(r.success, true, JSON.stringify(r));
	const t0 = Date.now();
	await feed(server, sym);
	const events = await untilLast(() => a.next('stream_data', { symbol: sym }, 5000));
	checkRated(events, Date.now() - t0, 'socket.io');
	a.close();
});

const servers = serverSet({ label: 'maxhz-db' });
afterEach(() => servers.cleanup());

test('a persisted subscription with max_hz: stored, attached to the user\'s connections with ' +
	'its rate, and still so after a restart', async () => {
	const url = await sharedDb('maxhz');
	let s = await servers.up(url);
	const user = unique('trader');
	const sym = uniqueSymbol('HZP');
	let a = await open(s, user);
	const created = await ok(a, 'create_subscription', { symbol: sym, max_hz: HZ });
	assert.equal(created.max_hz, HZ);
	assert.deepEqual(await rows(url, `SELECT max_hz::text FROM subscriptions WHERE id = ` +
		`'${created.subscription_id}'`), [[String(HZ)]]);
	await a.close();
	s = await servers.bounce(s, url);
	const listed = (await ok(await open(s, user), 'list_subscriptions', {})).subscriptions;
	assert.equal(listed.length, 1);
	assert.equal(listed[0].max_hz, HZ);

	a = await open(s, user); /* attached from the loaded subscription */
	const t0 = Date.now();
	await feed(s, sym);
	const events = await untilLast(async () => (await a.next(isStreamData(sym), 5000)).data);
	checkRated(events, Date.now() - t0, 'persisted');
	await a.close();
	await servers.down(s);
});
