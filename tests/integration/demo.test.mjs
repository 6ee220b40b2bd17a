// The demo feed (streams.md "Demo feed"): --demo-feed publishes ticks with price/bid/ask/volume
// for the default symbols, message_id "demo-N" and version N, at demo_feed.rate_per_s in total.

import assert from 'node:assert/strict';
import { test, before, after, startServer, stopServer, connect, waitFor } from
	'./lib/harness.mjs';
import { subscribeStream, isStreamData, streamRequest, streaming } from './lib/streams.mjs';

const RATE = 50;
const DEFAULT_SYMBOLS = ['AAPL', 'MSFT', 'GOOG', '600519', 'BTCUSD'];

let server;

before(async () => {
	server = await startServer({
		label: 'demo',
		args: ['--demo-feed'],
		env: { QUOTECAST_DEMO_FEED_RATE_PER_S: String(RATE) },
	});
});

after(async () => {
	await stopServer(server);
});

test('subscribing to AAPL yields live demo ticks with price/bid/ask/volume, seq increasing',
	async () => {
		const c = await connect(server, { query: { user_id: 'viewer' } });
		await subscribeStream(c, { symbol: 'AAPL', snapshot: false });
		const ticks = [];
		const deadline = Date.now() + 4000;
		while (ticks.length < 4) {
			const left = deadline - Date.now();
			assert.ok(left > 0, `only ${ticks.length} AAPL ticks within 4 s at ${RATE}/s in total`);
			ticks.push((await c.next(isStreamData('AAPL'), left)).data);
		}
		for (const t of ticks) {
			assert.equal(t.symbol, 'AAPL');
			assert.notEqual(t.snapshot, true);
			assert.notEqual(t.replay, true);
			for (const f of ['price', 'bid', 'ask', 'volume'])
				assert.equal(typeof t.data[f], 'number', `${f} in ${JSON.stringify(t)}`);
			assert.ok(t.data.price > 0, JSON.stringify(t));
			assert.ok(t.data.volume >= 0, JSON.stringify(t));
			assert.match(t.message_id, /^demo-\d+$/, JSON.stringify(t));
			assert.equal(typeof t.timestamp, 'number');
			assert.ok(Math.abs(t.timestamp - Date.now()) < 60000, `timestamp ${t.timestamp}`);
		}
		for (let i = 1; i < ticks.length; i++) {
			assert.equal(ticks[i].seq, ticks[i - 1].seq + 1, 'consecutive seqs for AAPL');
			const a = Number(ticks[i - 1].message_id.slice(5));
			const b = Number(ticks[i].message_id.slice(5));
			assert.ok(b > a, `message ids increase: ${ticks[i - 1].message_id} ${ticks[i].message_id}`);
		}
		/* the snapshot carries the same fields */
		const m = await streamRequest(c, 'get_market_data', { symbol: 'AAPL' });
		assert.equal(m.success, true, JSON.stringify(m));
		for (const f of ['price', 'bid', 'ask', 'volume'])
			assert.equal(typeof m.data.data[f], 'number');
		assert.ok(m.data.seq >= ticks[ticks.length - 1].seq);
		await c.close();
	});

test('the demo feed covers the default symbols', async () => {
	const c = await connect(server, { query: { user_id: 'viewer2' } });
	for (const sym of DEFAULT_SYMBOLS) {
		const r = await waitFor(async () => {
			const x = await streamRequest(c, 'get_market_data', { symbol: sym });
			return x.success ? x : null;
		}, { timeoutMs: 3000, intervalMs: 100, what: `demo data for ${sym}` });
		assert.ok(r.data.seq >= 1);
		for (const f of ['price', 'bid', 'ask', 'volume'])
			assert.equal(typeof r.data.data[f], 'number', `${sym}.${f}`);
	}
	const s = await streaming(server);
	assert.ok(s.active_streams >= DEFAULT_SYMBOLS.length, JSON.stringify(s));
	assert.ok(s.total_messages > 0);
	await c.close();
});
