// bench/offline.mjs: what room messages for offline members cost the server. One owner creates
// a room, adds M made-up members (none of them ever connects) and sends K messages of B bytes;
// the script reports the server's RSS before and after (stats server.rss_bytes), what the
// offline queue holds, the send_message round trip (median and max of the last 20 sends, one
// at a time: the loop time of one send plus a loopback round trip) and the round trip of a
// ping sent by a second connection while the messages go out. Run it against a fresh server
// started with QUOTECAST_LIMITS_RATE_PER_S=0 (and offline.max_per_user at least K to keep every
// copy, rooms.max_members above M). Uses the `ws` package of tests/integration (run `npm ci` there first).
//
//   node bench/offline.mjs [M=1000] [K=1000] [B=100] [ws://127.0.0.1:8080/ws]
import { createRequire } from 'node:module';

const require = createRequire(new URL('../tests/integration/package.json', import.meta.url));
const WebSocket = require('ws');
const members = Number(process.argv[2] || 1000);
const messages = Number(process.argv[3] || 1000);
const bytes = Number(process.argv[4] || 100);
const url = process.argv[5] || 'ws://127.0.0.1:8080/ws';
const http = url.replace(/^ws/, 'http').replace(/\/ws$/, '');
const tag = Date.now().toString(36);

async function stats() {
	const r = await fetch(`${http}/api/stats`);
	return r.json();
}

/* a connection that answers request ids as promises */
async function client(user) {
	const ws = new WebSocket(`${url}?user_id=${user}`);
	await new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject); });
	const waiting = new Map();
	ws.on('message', (m) => {
		const j = JSON.parse(m);
		const id = j.type === 'pong' ? `ping-${j.timestamp}` : j.request_id;
		const w = waiting.get(id);
		if (w) {
			waiting.delete(id);
			w(j);
		}
	});
	let seq = 0;
	return {
		ws,
		ask(obj) {
			const id = obj.type === 'ping' ? `ping-${obj.timestamp}` : `r${++seq}`;
			if (obj.type !== 'ping')
				obj.request_id = id;
			const p = new Promise((resolve) => waiting.set(id, resolve));
			ws.send(JSON.stringify(obj));
			return p;
		},
		request(action, payload) {
			return this.ask({ type: 'request', action, payload });
		},
	};
}

const mib = (n) => (n / 1048576).toFixed(1);
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

const owner = await client(`owner-${tag}`);
const pinger = await client(`pinger-${tag}`);
const room = `offline-${tag}`;
const before = await stats();
let r = await owner.request('create_room', { room });
if (!r.success)
	throw new Error(JSON.stringify(r));
for (let i = 0; i < members; i += 500) {
	const batch = [];
	for (let k = i; k < Math.min(members, i + 500); k++)
		batch.push(owner.request('add_member', { room, user_id: `ghost-${tag}-${k}` }));
	for (const a of await Promise.all(batch))
		if (!a.success)
			throw new Error(JSON.stringify(a));
}
const added = await stats();

const content = 'x'.repeat(bytes);
let pinging = true;
const rtts = [];
const pings = (async () => {
	for (let t = 0; pinging; t++) {
		const t0 = performance.now();
		await pinger.ask({ type: 'ping', timestamp: t });
		rtts.push(performance.now() - t0);
		await new Promise((resolve) => setTimeout(resolve, 5));
	}
})();
const t0 = performance.now();
const bulk = Math.max(0, messages - 20);
for (let i = 0; i < bulk; i += 100) {
	const batch = [];
	for (let k = i; k < Math.min(bulk, i + 100); k++)
		batch.push(owner.request('send_message', { room, content: { k, content } }));
	await Promise.all(batch);
}
const one = [];
for (let k = bulk; k < messages; k++) {
	const s0 = performance.now();
	r = await owner.request('send_message', { room, content: { k, content } });
	one.push(performance.now() - s0);
	if (!r.success)
		throw new Error(JSON.stringify(r));
}
const ms = performance.now() - t0;
pinging = false;
await pings;
await new Promise((resolve) => setTimeout(resolve, 2000)); /* let the store catch up */
const after = await stats();
console.log(`${members} offline members x ${messages} messages of ${bytes} B in ${ms.toFixed(0)} ms`);
console.log(`rss: ${mib(before.server.rss_bytes)} MiB at start, ${mib(added.server.rss_bytes)} ` +
	`with the members, ${mib(after.server.rss_bytes)} after the messages ` +
	`(+${mib(after.server.rss_bytes - added.server.rss_bytes)} MiB)`);
console.log(`offline: ${JSON.stringify(after.offline)}; store: ${JSON.stringify(after.store)}`);
console.log(`send_message round trip (one at a time): median ${median(one).toFixed(2)} ms, ` +
	`max ${Math.max(...one).toFixed(2)} ms`);
console.log(`ping round trip meanwhile (${rtts.length}): median ${median(rtts).toFixed(2)} ms, ` +
	`max ${Math.max(...rtts).toFixed(2)} ms`);
owner.ws.close();
pinger.ws.close();
