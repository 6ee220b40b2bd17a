// bench/suspended.mjs: what a suspended session costs (SPEC 2.9: sessions hold positions in
// logs, not copies). N clients each join the same R rooms and S streams (one tick each first),
// their sockets are destroyed (abrupt drops: every session suspended), then M room messages go
// to each room and T ticks to each symbol while they are away. Reports the server's RSS (stats
// server.rss_bytes) with the clients live, after the drop, and after the traffic, and the
// difference per suspended session. Run it against a fresh server started with
// QUOTECAST_LIMITS_RATE_PER_S=0 and QUOTECAST_LIMITS_MAX_CONNECTIONS_PER_IP=0. Uses the `ws`
// package of tests/integration (run `npm ci` there first).
//
//   node bench/suspended.mjs [N=500] [R=10] [S=10] [M=300] [T=100] [ws://127.0.0.1:8080/ws]
import { createRequire } from 'node:module';

const require = createRequire(new URL('../tests/integration/package.json', import.meta.url));
const WebSocket = require('ws');
const [N, R, S, M, T] = [500, 10, 10, 300, 100].map((d, i) => Number(process.argv[2 + i] || d));
const url = process.argv[7] || 'ws://127.0.0.1:8080/ws';
const http = url.replace(/^ws/, 'http').replace(/\/ws$/, '');
const tag = Date.now().toString(36);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function stats() {
	return (await fetch(`${http}/api/stats`)).json();
}

async function client(query) {
	const ws = new WebSocket(`${url}?${new URLSearchParams(query)}`);
	await new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject); });
	const waiting = new Map();
	let n = 0;
	ws.on('message', (m) => {
		const j = JSON.parse(m);
		const w = waiting.get(j.request_id);
		if (w) {
			waiting.delete(j.request_id);
			w(j);
		}
	});
	const ask = (msg) => new Promise((resolve) => {
		const id = `r${++n}`;
		waiting.set(id, resolve);
		ws.send(JSON.stringify({ ...msg, request_id: id }));
	});
	return { ws, ask };
}

const rooms = Array.from({ length: R }, (_, i) => `sus-${tag}-${i}`);
const syms = Array.from({ length: S }, (_, i) => `SUS${tag}${i}`.toUpperCase());
const feed = await client({ user_id: `feed-${tag}`, roles: 'publisher,admin' });
await feed.ask({ type: 'request', action: 'publish_market_data',
	payload: { ticks: syms.map((symbol) => ({ symbol, data: { price: 1, volume: 1 } })) } });
const clients = [];
for (let i = 0; i < N; i += 50) {
	const batch = await Promise.all(Array.from({ length: Math.min(50, N - i) }, async (_, k) => {
		const c = await client({ user_id: `sus-${tag}-${i + k}` });
		for (const room of rooms)
			await c.ask({ type: 'subscribe', room });
		await c.ask({ type: 'request', action: 'subscribe_market_stream',
			payload: { symbols: syms } });
		return c;
	}));
	clients.push(...batch);
}
await sleep(500);
const live = await stats();
for (const c of clients)
	c.ws._socket.destroy();
for (let i = 0; i < 100 && (await stats()).reconnection.suspended < N; i++)
	await sleep(100);
await sleep(500);
const dropped = await stats();
for (let k = 1; k <= M; k++) {
	await Promise.all(rooms.map((room) => feed.ask({ type: 'request', action: 'send_message',
		payload: { room, content: `message ${k} of ${M}: ${'x'.repeat(100)}` } })));
	if (k <= T)
		await feed.ask({ type: 'request', action: 'publish_market_data',
			payload: { ticks: syms.map((symbol) => ({ symbol, data: { price: k, volume: k } })) } });
}
await sleep(500);
const after = await stats();
const mib = (b) => (b / 1048576).toFixed(1);
console.log(`${N} suspended sessions, ${R} rooms and ${S} streams each; ${M} messages per room ` +
	`and ${T} ticks per symbol while suspended`);
console.log(`rss: live ${mib(live.server.rss_bytes)} MiB, suspended ${mib(dropped.server.rss_bytes)} ` +
	`MiB, after the traffic ${mib(after.server.rss_bytes)} MiB`);
console.log(`per suspended session (after the traffic - live) / N: ` +
	`${((after.server.rss_bytes - live.server.rss_bytes) / N / 1024).toFixed(1)} KiB`);
console.log(`reconnection ${JSON.stringify(after.reconnection)}; rooms history ` +
	`${after.rooms.history_entries ?? '-'}`);
feed.ws.terminate();
