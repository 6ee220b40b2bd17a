// The JavaScript client (client/quotecast.js) as a front end meets the network: 30 clients in
// one room and on one stream, each dropped abruptly (socket destroyed, no close frame) again and
// again while room messages, direct messages and ticks flow. The client reconnects by itself and
// resumes with the positions it tracked. Per client: room and direct messages lost 0,
// duplicated 0, out of order 0; a tick gap only where a recovery event said recovered:false.

import assert from 'node:assert/strict';
import {
	WebSocket, sleep, startServer, stopServer, test, waitFor,
} from './lib/harness.mjs';
import { QuotecastClient } from '../../client/quotecast.js';

const CLIENTS = 30;
const ROOM_MESSAGES = 600;
const DIRECT = 60; /* per client */
const TICKS = 300;
const RUN_MS = 8000;
const ROOM = 'jsx';
const SYM = 'JSX1';

test(`the JavaScript client: ${CLIENTS} clients dropped abruptly, exact after each reconnect`,
	{ timeout: 120000 }, async (t) => {
		const server = await startServer({ label: 'client', env: {
			QUOTECAST_LIMITS_RATE_PER_S: '0',
			QUOTECAST_SESSIONS_TTL_S: '60',
		} });
		const url = `ws://127.0.0.1:${server.port}/ws`;
		const mk = (userId, roles) => new QuotecastClient({ url, userId, roles, WebSocket,
			minDelayMs: 20, maxDelayMs: 300 });
		const clients = [];
		t.after(async () => {
			for (const c of clients)
				c.qc.close();
			await stopServer(server);
		});
		for (let i = 0; i < CLIENTS; i++) {
			const user = `jsx${i}`;
			const c = { user, qc: mk(user), room: [], direct: [], lastSeq: 0, gaps: 0,
				unannounced: 0, mayGap: false, drops: 0, recoveries: [] };
			c.qc.on('room_message', (d) => {
				if (d.room === ROOM)
					c.room.push(Number(d.content));
			});
			c.qc.on('direct_message', (d) => c.direct.push(Number(d.content)));
			c.qc.on('stream_data', (d) => {
				if (d.symbol !== SYM || d.seq <= c.lastSeq)
					return;
				if (d.seq > c.lastSeq + 1) {
					c.gaps++;
					if (!c.mayGap)
						c.unannounced++;
				}
				c.mayGap = false;
				c.lastSeq = d.seq;
			});
			c.qc.on('recovery', (r) => {
				c.recoveries.push(r.recovered);
				if (r.streams?.[SYM]?.recovered === false || r.recovered === false)
					c.mayGap = true;
			});
			clients.push(c);
		}
		await Promise.all(clients.map(async (c) => {
			await c.qc.connect();
			await c.qc.subscribe(ROOM);
			await c.qc.subscribeStream(SYM);
		}));
		const admin = mk('jsx-admin', 'admin,publisher');
		clients.push({ qc: admin });
		await admin.connect();

		const until = Date.now() + RUN_MS;
		const churn = Promise.all(clients.filter((c) => c.user).map(async (c) => {
			while (Date.now() < until) {
				await sleep(300 + Math.random() * 900);
				if (c.qc.state === 'open' && c.qc.ws?._socket) {
					c.drops++;
					c.qc.ws._socket.destroy();
				}
			}
		}));
		const rooms = (async () => {
			for (let n = 1; n <= ROOM_MESSAGES; n++) {
				await admin.request('send_message', { room: ROOM, content: String(n) });
				await sleep(RUN_MS / ROOM_MESSAGES);
			}
		})();
		const directs = (async () => {
			for (let n = 1; n <= DIRECT; n++) {
				await admin.request('send_to_user', { user_ids: clients.filter((c) => c.user)
					.map((c) => c.user), content: String(n) });
				await sleep(RUN_MS / DIRECT);
			}
		})();
		const ticks = (async () => {
			for (let n = 1; n <= TICKS; n++) {
				await admin.request('publish_market_data', { symbol: SYM, data: { price: n },
					message_id: `jsx-${n}` });
				await sleep(RUN_MS / TICKS);
			}
		})();
		await Promise.all([churn, rooms, directs, ticks]);

		const real = clients.filter((c) => c.user);
		await waitFor(() => real.every((c) => c.room.length >= ROOM_MESSAGES &&
			c.direct.length >= DIRECT && c.lastSeq === TICKS), { timeoutMs: 30000,
			intervalMs: 100, what: 'every client at the last message' }).catch((e) => {
			const behind = real.filter((c) => c.room.length < ROOM_MESSAGES ||
				c.direct.length < DIRECT || c.lastSeq !== TICKS).slice(0, 3)
				.map((c) => `${c.user}: room ${c.room.length} direct ${c.direct.length} ` +
					`tick ${c.lastSeq} state ${c.qc.state}`);
			throw new Error(`${e.message}: ${behind.join('; ')}`);
		});
		const check = (list, n) => {
			let lost = 0, dup = 0, order = 0;
			const seen = new Set();
			for (let k = 0; k < list.length; k++) {
				if (seen.has(list[k]))
					dup++;
				else if (k && list[k] < list[k - 1])
					order++;
				seen.add(list[k]);
			}
			for (let v = 1; v <= n; v++)
				if (!seen.has(v))
					lost++;
			return { lost, dup, order };
		};
		let drops = 0, tickGaps = 0;
		const bad = [];
		for (const c of real) {
			drops += c.drops;
			tickGaps += c.gaps;
			const r = check(c.room, ROOM_MESSAGES);
			const d = check(c.direct, DIRECT);
			if (r.lost || r.dup || r.order || d.lost || d.dup || d.order || c.unannounced)
				bad.push(`${c.user}: room ${JSON.stringify(r)} direct ${JSON.stringify(d)} ` +
					`unannounced tick gaps ${c.unannounced}`);
		}
		const notRecovered = real.reduce((a, c) => a + c.recoveries.filter((x) => !x).length, 0);
		t.diagnostic(`${drops} drops, ${real.reduce((a, c) => a + c.recoveries.length, 0)} ` +
			`recoveries (${notRecovered} not recovered), ${tickGaps} tick gaps`);
		assert.ok(drops >= CLIENTS, `enough drops: ${drops}`);
		assert.deepEqual(bad, [], 'every client exact');
	});
