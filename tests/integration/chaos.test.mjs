// Chaos: many clients dropped abruptly (the TCP socket destroyed, no close frame, as a phone
// switching networks does) and resumed with ?resume= while room messages and ticks flow.
// Checked per client: the server stays up, memory stays bounded, and no resume says
// `recovered:true` when something was in fact lost (a gap in the room's numbered messages or in
// a stream's seq that no `recovered:false` announced), nothing arrives twice or out of order,
// and once the traffic stops every client has the last message. Without the client's positions
// a server cannot know what a dead socket took with it, so an honest `?resume=` says
// `recovered:false` after such a drop; exactness is the positions protocol's (SPEC 2.9).

import assert from 'node:assert/strict';
import {
	WebSocket, getStats, httpRequest, sleep, startServer, stopServer, test, waitFor,
} from './lib/harness.mjs';

const CLIENTS = Number(process.env.QC_CHAOS_CLIENTS || 100);
const ROOM_MESSAGES = Number(process.env.QC_CHAOS_ROOM_MESSAGES || 3000);
const TICKS = Number(process.env.QC_CHAOS_TICKS || 600); /* per symbol */
const SYMBOLS = ['CHAOS1', 'CHAOS2'];
const ROOM = 'chaos';
const RUN_MS = 10000; /* publishing spreads over about this long */

function wsUrl(server, query) {
	const q = new URLSearchParams(query).toString();
	return `ws://127.0.0.1:${server.port}/ws?${q}`;
}

/* One client that drops and resumes, tracking what it saw. */
class ChaosClient {
	constructor(server, i) {
		this.server = server;
		this.user = `chaos${i}`;
		this.lastRoom = 0;
		this.lastSeq = Object.fromEntries(SYMBOLS.map((s) => [s, 0]));
		this.mayGap = { room: false, ...Object.fromEntries(SYMBOLS.map((s) => [s, false])) };
		this.stats = { drops: 0, resumes: 0, recoveredTrue: 0, recoveredFalse: 0, fresh: 0,
			gaps: 0, announcedGaps: 0, falseRecovered: 0, duplicates: 0, closes: 0 };
		this.problems = [];
		this.token = null;
		this.ws = null;
		this.pending = new Map();
		this.nextId = 0;
	}

	open(query) {
		return new Promise((resolve, reject) => {
			const ws = new WebSocket(wsUrl(this.server, query));
			this.ws = ws;
			let sessionSeen = false;
			ws.on('message', (buf) => {
				const m = JSON.parse(buf.toString());
				if (!sessionSeen) {
					sessionSeen = true;
					if (m.event !== 'session') {
						reject(new Error(`${this.user}: first frame ${buf}`));
						return;
					}
					this.onSession(m.data);
					resolve(m.data);
					return;
				}
				this.onMessage(m);
			});
			ws.on('close', (code) => {
				if (this.ws === ws && code !== 1005 && code !== 1006)
					this.stats.closes++;
				if (!sessionSeen)
					reject(new Error(`${this.user}: closed ${code} before the session event`));
			});
			ws.on('error', () => {});
		});
	}

	onSession(s) {
		this.token = s.resume_token;
		if (!s.resumed) {
			this.stats.fresh++;
			return;
		}
		this.stats.resumes++;
		if (s.recovered === true) {
			this.stats.recoveredTrue++;
		} else {
			this.stats.recoveredFalse++;
			for (const k of Object.keys(this.mayGap))
				this.mayGap[k] = true;
		}
	}

	check(key, last, n) {
		if (n <= last) {
			this.stats.duplicates++;
			return last;
		}
		if (n > last + 1) {
			this.stats.gaps++;
			if (this.mayGap[key]) {
				this.stats.announcedGaps++;
			} else {
				this.stats.falseRecovered++;
				if (this.problems.length < 5)
					this.problems.push(`${key}: ${last} -> ${n} with no recovered:false`);
			}
		}
		this.mayGap[key] = false;
		return n;
	}

	onMessage(m) {
		if (m.type === 'response') {
			const p = this.pending.get(m.request_id);
			if (p) {
				this.pending.delete(m.request_id);
				p(m);
			}
			return;
		}
		if (m.type !== 'event')
			return;
		if (m.event === 'room_message' && m.data.room === ROOM) {
			const n = Number(String(m.data.content).slice(2));
			this.lastRoom = this.check('room', this.lastRoom, n);
		} else if (m.event === 'stream_data' && SYMBOLS.includes(m.data.symbol)) {
			if (m.data.snapshot) {
				/* a snapshot stands in for the ticks it merged: only a gap if unannounced */
				if (m.data.seq > this.lastSeq[m.data.symbol])
					this.lastSeq[m.data.symbol] = this.check(m.data.symbol,
						this.lastSeq[m.data.symbol], m.data.seq);
				return;
			}
			this.lastSeq[m.data.symbol] = this.check(m.data.symbol, this.lastSeq[m.data.symbol],
				m.data.seq);
		}
	}

	request(action, payload) {
		const id = `r${++this.nextId}`;
		return new Promise((resolve, reject) => {
			const timer = setTimeout(() => reject(new Error(`${this.user}: ${action} timed out`)),
				10000);
			this.pending.set(id, (m) => {
				clearTimeout(timer);
				resolve(m);
			});
			this.ws.send(JSON.stringify({ type: 'request', request_id: id, action, payload }));
		});
	}

	subscribeRoom() {
		const id = `s${++this.nextId}`;
		return new Promise((resolve, reject) => {
			const timer = setTimeout(() => reject(new Error(`${this.user}: subscribe timed out`)),
				10000);
			this.pending.set(id, (m) => {
				clearTimeout(timer);
				resolve(m);
			});
			this.ws.send(JSON.stringify({ type: 'subscribe', request_id: id, room: ROOM }));
		});
	}

	async start() {
		await this.open({ user_id: this.user });
		const r = await this.subscribeRoom();
		assert.equal(r.success, true, JSON.stringify(r));
		const s = await this.request('subscribe_market_stream', { symbols: SYMBOLS });
		assert.equal(s.success, true, JSON.stringify(s));
	}

	/* Drop abruptly and resume within half a second, until @until. */
	async churn(until) {
		while (Date.now() < until && !this.stopped) {
			await sleep(200 + Math.random() * 1300);
			if (Date.now() >= until)
				break;
			this.stats.drops++;
			this.ws._socket?.destroy();
			await sleep(Math.random() * 500);
			for (let attempt = 0; ; attempt++) {
				try {
					await this.open({ resume: this.token, user_id: this.user });
					break;
				} catch (e) {
					if (attempt >= 5)
						throw e;
					await sleep(100);
				}
			}
		}
	}
}

test(`chaos: ${CLIENTS} clients dropped abruptly and resumed while ${ROOM_MESSAGES} room ` +
	`messages and ${TICKS * SYMBOLS.length} ticks flow`, { timeout: 180000 }, async (t) => {
	const server = await startServer({ label: 'chaos', env: {
		QUOTECAST_LIMITS_RATE_PER_S: '0',
		QUOTECAST_SESSIONS_TTL_S: '60',
	} });
	const clients = Array.from({ length: CLIENTS }, (_, i) => new ChaosClient(server, i));
	t.after(async () => {
		for (const c of clients)
			c.stopped = true;
		for (const c of [...clients, admin, feed])
			c?.ws?.terminate();
		await stopServer(server);
	});
	let admin, feed;
	await Promise.all(clients.map((c) => c.start()));

	/* the sources: one admin connection for room messages, one publisher for ticks */
	admin = new ChaosClient(server, 'admin');
	await admin.open({ user_id: 'chaos-admin', roles: 'admin' });
	feed = new ChaosClient(server, 'feed');
	await feed.open({ user_id: 'chaos-feed', roles: 'publisher' });

	const rss0 = (await getStats(server)).server.rss_bytes;
	const until = Date.now() + RUN_MS;
	const churn = Promise.all(clients.map((c) => c.churn(until)));

	const sendRoom = (async () => {
		for (let n = 1; n <= ROOM_MESSAGES; n++) {
			const r = await admin.request('send_message', { room: ROOM, content: `m:${n}` });
			assert.equal(r.success, true, JSON.stringify(r));
			if (n % 30 === 0)
				await sleep(RUN_MS / (ROOM_MESSAGES / 30));
		}
	})();
	const sendTicks = (async () => {
		for (let n = 1; n <= TICKS; n++) {
			const ticks = SYMBOLS.map((symbol) => ({ symbol, data: { price: n, volume: n * 10 },
				message_id: `${symbol}-${n}` }));
			const r = await feed.request('publish_market_data', { ticks });
			assert.equal(r.success, true, JSON.stringify(r));
			await sleep(RUN_MS / TICKS);
		}
	})();
	let rssMax = rss0;
	const sampler = setInterval(async () => {
		try {
			rssMax = Math.max(rssMax, (await getStats(server)).server.rss_bytes);
		} catch {
			/* the final check below notices a dead server */
		}
	}, 500);
	try {
		await Promise.all([churn, sendRoom, sendTicks]);
	} finally {
		clearInterval(sampler);
	}

	/* every client, connected again, catches up to the last message and tick */
	await waitFor(() => clients.every((c) => c.lastRoom === ROOM_MESSAGES &&
		SYMBOLS.every((s) => c.lastSeq[s] === TICKS)), {
		timeoutMs: 30000, intervalMs: 100,
		what: 'every client at the last room message and tick',
	}).catch((e) => {
		const behind = clients.filter((c) => c.lastRoom !== ROOM_MESSAGES ||
			SYMBOLS.some((s) => c.lastSeq[s] !== TICKS)).slice(0, 5)
			.map((c) => `${c.user}: room ${c.lastRoom} ${JSON.stringify(c.lastSeq)}`);
		throw new Error(`${e.message}: ${behind.join('; ')}`);
	});

	const sum = {};
	for (const c of clients)
		for (const [k, v] of Object.entries(c.stats))
			sum[k] = (sum[k] || 0) + v;
	const stats = await getStats(server);
	t.diagnostic(`totals: ${JSON.stringify(sum)}`);
	t.diagnostic(`rss ${(rss0 / 1048576).toFixed(1)} MiB at start, max ` +
		`${(rssMax / 1048576).toFixed(1)} MiB; reconnection ${JSON.stringify(stats.reconnection)}`);

	const health = await httpRequest(server, 'GET', '/healthz');
	assert.equal(health.status, 200, 'the server is up');
	assert.ok(sum.drops >= CLIENTS, `few drops: ${sum.drops}`);
	assert.equal(sum.resumes, sum.drops, 'every drop resumed its session');
	const problems = clients.flatMap((c) => c.problems.map((p) => `${c.user} ${p}`));
	assert.equal(sum.falseRecovered, 0,
		`losses not announced by recovered:false: ${problems.slice(0, 10).join('; ')}`);
	assert.equal(sum.duplicates, 0, 'nothing arrives twice or out of order');
	/* bounded: the run holds at most a few MiB per client beyond where it started */
	assert.ok(rssMax - rss0 < 256 * 1048576,
		`rss grew by ${((rssMax - rss0) / 1048576).toFixed(1)} MiB`);
});
