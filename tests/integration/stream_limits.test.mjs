// Stream lifetimes and bounds (issue 11, SPEC 7): one connection subscribing to fresh symbols
// and unsubscribing, over and over, must not use up streams.max_symbols for everyone;
// subscribe-only symbols are bounded apart (streams.max_subscribe_only) and freed with their
// last subscriber; symbols with ticks and no subscriber are freed after streams.idle_ttl_s, and
// a since_seq from before that is answered recovered:false.

import assert from 'node:assert/strict';
import {
	test, before, after, startServer, stopServer, connect, waitFor, closeAllClients,
} from './lib/harness.mjs';
import {
	uniqueSymbol, tick, publish, publishOk, assertHttpError, subscribeStream, streamRequest,
	nextTick, streaming, metrics,
} from './lib/streams.mjs';

const ROUNDS = 100;
const PER_ROUND = 100;
const MAX_SYMBOLS = 50;
const TTL_S = 1;

const fast = {
	QUOTECAST_LIMITS_RATE_PER_S: '100000',
	QUOTECAST_LIMITS_RATE_BURST: '100000',
};

let churn; /* small streams.max_symbols, every other setting at its default */
let idle;  /* small streams.max_symbols and a short streams.idle_ttl_s */

before(async () => {
	[churn, idle] = await Promise.all([
		startServer({ label: 'stream-churn',
			env: { ...fast, QUOTECAST_STREAMS_MAX_SYMBOLS: String(MAX_SYMBOLS) } }),
		startServer({ label: 'stream-idle',
			env: { ...fast, QUOTECAST_STREAMS_MAX_SYMBOLS: '5',
				QUOTECAST_STREAMS_IDLE_TTL_S: String(TTL_S) } }),
	]);
});

after(async () => {
	await closeAllClients();
	const res = await Promise.allSettled([churn, idle].map((s) => stopServer(s)));
	const failed = res.find((r) => r.status === 'rejected');
	if (failed)
		throw failed.reason;
});

const symbols = (prefix, n) => Array.from({ length: n }, () => uniqueSymbol(prefix));

test(`${ROUNDS} x (subscribe ${PER_ROUND} fresh symbols, unsubscribe them) leaves publishers ` +
	`and other subscribers their room (streams.max_symbols ${MAX_SYMBOLS})`, async () => {
	const base = await streaming(churn);
	const x = await connect(churn, { query: { user_id: 'mallory' } });
	for (let round = 0; round < ROUNDS; round++) {
		const syms = symbols(`C${round}`, PER_ROUND);
		const r = await streamRequest(x, 'subscribe_market_stream',
			{ symbols: syms, snapshot: false }, 10000);
		assert.equal(r.success, true, `round ${round}: ${JSON.stringify(r.error)}`);
		const u = await streamRequest(x, 'unsubscribe_market_stream', { symbols: syms }, 10000);
		assert.equal(u.success, true, `round ${round}: ${JSON.stringify(u.error)}`);
	}
	const s = await streaming(churn);
	assert.equal(s.active_streams, base.active_streams, JSON.stringify(s));
	assert.equal(s.subscribe_only, 0);
	assert.equal(s.subscribe_only_freed - base.subscribe_only_freed, ROUNDS * PER_ROUND);

	/* a publisher can publish a new symbol, and another client can subscribe to new ones */
	const [fresh, other] = symbols('AFTER', 2);
	assert.equal((await publishOk(churn, tick(fresh, { p: 1 }))).accepted, 1);
	const b = await connect(churn, { query: { user_id: 'bob' } });
	await subscribeStream(b, { symbols: [fresh, other] });
	assert.deepEqual((await nextTick(b, fresh)).data, { p: 1 }); /* the snapshot */
	await publishOk(churn, tick(other, { p: 2 }));
	assert.deepEqual((await nextTick(b, other)).data, { p: 2 });

	/* the new figures are in /metrics, the freed counts as counters */
	const m = await metrics(churn);
	assert.equal(m.types.get('quotecast_streams_subscribe_only_freed_total'), 'counter');
	assert.equal(m.types.get('quotecast_streams_idle_freed_total'), 'counter');
	assert.equal(m.types.get('quotecast_streams_subscribe_only'), 'gauge');
	await x.close();
	await b.close();
});

test(`symbols with ticks and no subscriber are freed after streams.idle_ttl_s (${TTL_S} s); ` +
	'a since_seq from before is recovered:false', async () => {
	const full = symbols('IDLE', 5);
	const base = await streaming(idle);
	await publishOk(idle, full.map((sym) => tick(sym, { p: 1 })));
	await publishOk(idle, full.map((sym) => tick(sym, { p: 2 })));
	/* streams.max_symbols is full */
	const [late] = symbols('LATE', 1);
	assertHttpError(await publish(idle, tick(late, { p: 1 })), 429, 'LIMIT_EXCEEDED');

	/* a subscriber holds its symbol past the TTL; the others go */
	const a = await connect(idle, { query: { user_id: 'alice' } });
	await subscribeStream(a, { symbol: full[0], snapshot: false });
	const s = await waitFor(async () => {
		const st = await streaming(idle);
		return st.active_streams === base.active_streams + 1 && st;
	}, { timeoutMs: 15000, what: 'four idle symbols freed' });
	assert.equal(s.idle_freed - base.idle_freed, 4);
	assert.equal(s.idle_streams, 0);
	const held = await streamRequest(a, 'get_market_data', { symbol: full[0] });
	assert.equal(held.data.seq, 2);
	const gone = await streamRequest(a, 'get_market_data', { symbol: full[1] });
	assert.equal(gone.error?.code, 'NOT_FOUND');

	/* their room is free again */
	assert.equal((await publishOk(idle, tick(late, { p: 1 }))).accepted, 1);
	/* a freed symbol starts again from seq 1; a position of its old life is not recovered */
	await publishOk(idle, tick(full[1], { q: 7 }));
	const r = await subscribeStream(a, { symbol: full[1], since_seq: 2 });
	assert.equal(r.data.recovered, false, JSON.stringify(r.data));
	assert.equal(r.data.streams[0].last_seq, 1);
	const snap = await a.next((m) => m.event === 'stream_data' && m.data.snapshot === true &&
		m.data.symbol === full[1]);
	assert.deepEqual(snap.data.data, { q: 7 });
	assert.equal(snap.data.seq, 1);

	/* once unsubscribed, the held one goes too */
	await streamRequest(a, 'unsubscribe_market_stream', { symbol: full[0] });
	await waitFor(async () => {
		const st = await streaming(idle);
		return st.idle_freed - base.idle_freed >= 5;
	}, { timeoutMs: 15000, what: 'the unsubscribed symbol freed' });
	await a.close();
});
