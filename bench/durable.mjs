// bench/durable.mjs: how many durable requests per second the store takes. Sends N create_room
// requests back to back on one connection of a running server (start it with
// QUOTECAST_LIMITS_RATE_PER_S=0 and QUOTECAST_ROOMS_MAX_PER_OWNER at least N: one user owns
// them all) and times the N answers. Uses the `ws` package of
// tests/integration (run `npm ci` there first).
//
//   node bench/durable.mjs [N] [ws://127.0.0.1:8080/ws]
import { createRequire } from 'node:module';

const require = createRequire(new URL('../tests/integration/package.json', import.meta.url));
const WebSocket = require('ws');
const n = Number(process.argv[2] || 5000);
const url = process.argv[3] || 'ws://127.0.0.1:8080/ws';
const ws = new WebSocket(`${url}?user_id=durable-bench`);

await new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject); });
let answered = 0;
let succeeded = 0;
const done = new Promise((resolve) => ws.on('message', (m) => {
	const j = JSON.parse(m);
	if (j.type !== 'response')
		return;
	succeeded += j.success ? 1 : 0;
	if (++answered === n)
		resolve();
}));
const tag = Date.now().toString(36);
const t0 = performance.now();
for (let i = 0; i < n; i++)
	ws.send(JSON.stringify({ type: 'request', request_id: `r${i}`, action: 'create_room',
		payload: { room: `durable-${tag}-${i}` } }));
await done;
const ms = performance.now() - t0;
console.log(`${n} create_room in ${ms.toFixed(0)} ms: ${(n / ms * 1000).toFixed(0)}/s, ` +
	`${succeeded} succeeded`);
ws.close();
