// Socket.IO connection state recovery (SPEC 2.9, 5) with the real socket.io-client 4.8: a
// client whose socket is destroyed (no close handshake: the transport just dies, as when a phone
// switches networks) reconnects by itself with its default options, and the server recovers its
// session: `socket.recovered === true`, and every event it missed (room messages, ticks) arrives
// exactly once, in order. After sessions.ttl_s the session is gone: recovered false, and what
// was sent meanwhile comes the usual way (the offline queue).

import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import {
	connect, getStats, sleep, startServer, stopServer, test, waitFor,
} from './lib/harness.mjs';

const ROOM_PREFIX = 'n:';

/*
 * A socket.io-client with default options (websocket transport: quotecast serves no polling)
 * that records every room message and tick it processes and checks them: numbered room
 * messages must come 1, 2, 3... and ticks seq 1, 2, 3... per symbol, each exactly once.
 */
class RecClient {
	constructor(server, user, { room, symbols = [], opts = {} } = {}) {
		this.user = user;
		this.room = room;
		this.symbols = symbols;
		this.lastRoom = 0;
		this.lastDirect = 0;
		this.lastSeq = Object.fromEntries(symbols.map((s) => [s, 0]));
		this.stats = { connects: 0, recovered: 0, notRecovered: 0, drops: 0, lost: 0,
			duplicated: 0, disorder: 0, tickGaps: 0, tickDup: 0 };
		this.problems = [];
		this.offsets = [];
		this.socket = io(`http://127.0.0.1:${server.port}`, {
			transports: ['websocket'], forceNew: true, auth: { user_id: user }, ...opts,
		});
		this.socket.on('connect', () => {
			this.stats.connects++;
			if (this.stats.connects === 1)
				return;
			if (this.socket.recovered)
				this.stats.recovered++;
			else
				this.stats.notRecovered++;
		});
		this.socket.on('room_message', (m, offset) => {
			if (m.room !== this.room)
				return;
			this.offsets.push(offset);
			const n = Number(String(m.content).slice(ROOM_PREFIX.length));
			if (n === this.lastRoom + 1) {
				this.lastRoom = n;
			} else if (n <= this.lastRoom) {
				this.stats[n === this.lastRoom ? 'duplicated' : 'disorder']++;
				this.problem(`room: ${n} after ${this.lastRoom}`);
			} else {
				this.stats.lost += n - this.lastRoom - 1;
				this.problem(`room: ${this.lastRoom} -> ${n}`);
				this.lastRoom = n;
			}
		});
		this.socket.on('direct_message', (m) => {
			if (m.offline || !String(m.content).startsWith('d:'))
				return;
			const n = Number(String(m.content).slice(2));
			if (n === this.lastDirect + 1) {
				this.lastDirect = n;
			} else if (n <= this.lastDirect) {
				this.stats[n === this.lastDirect ? 'duplicated' : 'disorder']++;
				this.problem(`direct: ${n} after ${this.lastDirect}`);
			} else {
				this.stats.lost += n - this.lastDirect - 1;
				this.problem(`direct: ${this.lastDirect} -> ${n}`);
				this.lastDirect = n;
			}
		});
		this.socket.on('stream_data', (d) => {
			if (!(d.symbol in this.lastSeq) || d.snapshot)
				return;
			const last = this.lastSeq[d.symbol];
			if (d.seq <= last) {
				this.stats.tickDup++;
				this.problem(`${d.symbol}: seq ${d.seq} after ${last}`);
				return;
			}
			/* a conflated tick stands for those it merged (a slow consumer): not a loss */
			if (d.seq > last + 1 && !d.conflated) {
				this.stats.tickGaps++;
				this.problem(`${d.symbol}: seq ${last} -> ${d.seq}`);
			}
			this.lastSeq[d.symbol] = d.seq;
		});
	}

	problem(p) {
		if (this.problems.length < 5)
			this.problems.push(p);
	}

	connected(timeoutMs = 10000) {
		return waitFor(() => this.socket.connected, { timeoutMs, intervalMs: 20,
			what: `${this.user} connected` });
	}

	async start() {
		await this.connected();
		if (this.room) {
			const r = await this.socket.timeout(10000).emitWithAck('subscribe',
				{ room: this.room });
			assert.equal(r.success, true, JSON.stringify(r));
		}
		if (this.symbols.length) {
			const r = await this.socket.timeout(10000).emitWithAck('subscribe_market_stream',
				{ symbols: this.symbols });
			assert.equal(r.success, true, JSON.stringify(r));
		}
	}

	/* Destroy the TCP socket under engine.io: the client sees a transport close. */
	drop() {
		this.stats.drops++;
		this.socket.io.engine.transport.ws._socket.destroy();
	}

	close() {
		this.socket.disconnect();
	}
}

async function sources(server, tag) {
	const admin = await connect(server, { query: { user_id: `${tag}-admin`, roles: 'admin' } });
	const feed = await connect(server, { query: { user_id: `${tag}-feed`,
		roles: 'publisher' } });
	return { admin, feed };
}

async function sendRoom(admin, room, n) {
	const r = await admin.request('send_message', { room, content: `${ROOM_PREFIX}${n}` });
	assert.equal(r.success, true, JSON.stringify(r));
}

async function publish(feed, symbols, n) {
	const ticks = symbols.map((symbol) => ({ symbol, data: { price: n, volume: n * 10 },
		message_id: `${symbol}-${n}` }));
	const r = await feed.request('publish_market_data', { ticks });
	assert.equal(r.success, true, JSON.stringify(r));
}

test('an abruptly dropped socket.io-client reconnects by itself with socket.recovered and ' +
	'gets every missed room message and tick exactly once, in order', { timeout: 60000 },
async (t) => {
	const server = await startServer({ label: 'sio-rec', env: {
		QUOTECAST_SESSIONS_TTL_S: '30', QUOTECAST_LIMITS_RATE_PER_S: '0' } });
	const symbols = ['RECA', 'RECB'];
	const c = new RecClient(server, 'rec-1', { room: 'rec-room', symbols });
	const { admin, feed } = await sources(server, 'rec');
	t.after(async () => {
		c.close();
		await stopServer(server);
	});
	await c.start();
	const pid = c.socket._pid;
	const sid = c.socket.id;
	assert.match(pid, /^[0-9a-f]{64}$/, 'the CONNECT answer gave a pid');

	for (let n = 1; n <= 20; n++) {
		await sendRoom(admin, 'rec-room', n);
		await publish(feed, symbols, n);
	}
	await waitFor(() => c.lastRoom === 20 && symbols.every((s) => c.lastSeq[s] === 20),
		{ what: 'the first 20 of each' });
	assert.match(c.offsets[0], /^[0-9]+$/, 'each event carries its offset as last argument');

	/* written to its socket as it dies: what the kernel took dies with it, unread */
	for (let n = 21; n <= 30; n++) {
		await sendRoom(admin, 'rec-room', n);
		await publish(feed, symbols, n);
	}
	c.drop();
	await waitFor(async () => (await getStats(server)).reconnection.suspended === 1,
		{ what: 'the session suspended', timeoutMs: 5000 });
	assert.equal(c.socket.connected, false);
	/* what it misses while away */
	for (let n = 31; n <= 60; n++) {
		await sendRoom(admin, 'rec-room', n);
		await publish(feed, symbols, n);
	}
	await waitFor(() => c.stats.connects === 2, { what: 'the client reconnects by itself',
		timeoutMs: 15000 });
	assert.equal(c.socket.recovered, true, 'socket.recovered');
	assert.equal(c.socket.id, sid, 'the same socket id');
	assert.equal(c.socket._pid, pid, 'the same pid');
	for (let n = 61; n <= 70; n++) {
		await sendRoom(admin, 'rec-room', n);
		await publish(feed, symbols, n);
	}
	await waitFor(() => c.lastRoom === 70 && symbols.every((s) => c.lastSeq[s] === 70),
		{ what: 'every message and tick', timeoutMs: 10000 }).catch((e) => {
		throw new Error(`${e.message}: room ${c.lastRoom} ${JSON.stringify(c.lastSeq)} ` +
			`${c.problems.join('; ')}`);
	});
	await sleep(300);
	assert.deepEqual(c.problems, []);
	assert.equal(c.stats.lost + c.stats.duplicated + c.stats.disorder + c.stats.tickGaps +
		c.stats.tickDup, 0, JSON.stringify(c.stats));
	/* the recovered session still is in the room and the streams: live data keeps coming */
	const st = await getStats(server);
	assert.equal(st.reconnection.resumed, 1);
	assert.equal(st.reconnection.not_recovered, 0);
	assert.equal(st.reconnection.suspended, 0);
	await admin.close();
	await feed.close();
});

test('a reconnect before the server saw the old socket die (half-open, as after a network ' +
	'change) takes the session over: recovered, and the old socket is closed', { timeout: 60000 },
async (t) => {
	const server = await startServer({ label: 'sio-rec-half', env: {
		QUOTECAST_SESSIONS_TTL_S: '30', QUOTECAST_LIMITS_RATE_PER_S: '0' } });
	const c = new RecClient(server, 'rec-half', { room: 'half-room' });
	const { admin, feed } = await sources(server, 'half');
	t.after(async () => {
		c.close();
		await stopServer(server);
	});
	await c.start();
	for (let n = 1; n <= 5; n++)
		await sendRoom(admin, 'half-room', n);
	await waitFor(() => c.lastRoom === 5, { what: 'the first 5' });
	/*
	 * The client gives up on its transport while the TCP connection stays open, unread: the
	 * server sees nothing (until its ping timeout), the client reconnects.
	 */
	const tr = c.socket.io.engine.transport;
	const oldSocket = tr.ws._socket;
	const oldClosed = new Promise((resolve) => oldSocket.once('close', resolve));
	oldSocket.pause();
	tr.onClose({ description: 'simulated network change' });
	for (let n = 6; n <= 15; n++)
		await sendRoom(admin, 'half-room', n);
	await waitFor(() => c.stats.connects === 2, { what: 'the reconnect', timeoutMs: 15000 });
	assert.equal(c.socket.recovered, true, 'socket.recovered');
	await waitFor(() => c.lastRoom === 15, { what: 'all 15', timeoutMs: 10000 });
	oldSocket.resume(); /* reads again: sees the server's end of it */
	await withTimeoutP(oldClosed, 5000, 'the old socket closed by the server');
	const st = await getStats(server);
	assert.equal(st.total_connections, 3, 'the client, the admin, the feed');
	assert.equal(st.reconnection.resumed, 1);
	await sleep(200);
	assert.deepEqual(c.problems, []);
	await admin.close();
	await feed.close();
});

function withTimeoutP(p, ms, what) {
	return Promise.race([p, new Promise((_, reject) =>
		setTimeout(() => reject(new Error(`timeout: ${what}`)), ms))]);
}

test('after sessions.ttl_s a reconnect is not recovered: a fresh session, and a direct ' +
	'message sent meanwhile comes from the offline queue', { timeout: 60000 }, async (t) => {
	const server = await startServer({ label: 'sio-rec-ttl', env: {
		QUOTECAST_SESSIONS_TTL_S: '1', QUOTECAST_LIMITS_RATE_PER_S: '0' } });
	/* the client waits 3 s before it reconnects: the session expires meanwhile */
	const c = new RecClient(server, 'rec-ttl', { room: 'ttl-room', opts: {
		reconnectionDelay: 3000, reconnectionDelayMax: 3000, randomizationFactor: 0 } });
	const { admin, feed } = await sources(server, 'ttl');
	t.after(async () => {
		c.close();
		await stopServer(server);
	});
	await c.start();
	const sid = c.socket.id;
	const pid = c.socket._pid;
	await sendRoom(admin, 'ttl-room', 1);
	await waitFor(() => c.lastRoom === 1, { what: 'the first message' });
	c.drop();
	await waitFor(async () => (await getStats(server)).reconnection.expired === 1,
		{ what: 'the session expired', timeoutMs: 5000 });
	const r = await admin.request('send_to_user', { user_id: 'rec-ttl', content: 'while away' });
	assert.equal(r.success, true, JSON.stringify(r));
	assert.deepEqual(r.data.offline, ['rec-ttl']);
	const dm = new Promise((resolve) => c.socket.once('direct_message', resolve));
	await waitFor(() => c.stats.connects === 2, { what: 'the reconnect', timeoutMs: 15000 });
	assert.equal(c.socket.recovered, false, 'socket.recovered');
	assert.notEqual(c.socket.id, sid, 'a new socket id');
	assert.notEqual(c.socket._pid, pid, 'a new pid');
	const d = await dm;
	assert.equal(d.content, 'while away');
	assert.equal(d.offline, true);
	const st = await getStats(server);
	assert.equal(st.reconnection.not_recovered, 1);
	assert.equal(st.reconnection.resumed, 0);
	await admin.close();
	await feed.close();
});

const CLIENTS = Number(process.env.QC_SIO_CHAOS_CLIENTS || 50);
const ROOM_MESSAGES = Number(process.env.QC_SIO_CHAOS_ROOM_MESSAGES || 3000);
const TICKS = Number(process.env.QC_SIO_CHAOS_TICKS || 600); /* per symbol */
const RUN_MS = 12000;

test(`acceptance: ${CLIENTS} socket.io clients dropped abruptly again and again while ` +
	`${ROOM_MESSAGES} room messages, ${ROOM_MESSAGES / 10} direct messages each and ` +
	`${TICKS * 2} ticks flow: every reconnect recovered, nothing lost, twice or out of order`, { timeout: 180000 }, async (t) => {
	const server = await startServer({ label: 'sio-rec-chaos', env: {
		QUOTECAST_SESSIONS_TTL_S: '60', QUOTECAST_LIMITS_RATE_PER_S: '0' } });
	const symbols = ['SRC1', 'SRC2'];
	const clients = Array.from({ length: CLIENTS }, (_, i) =>
		new RecClient(server, `src${i}`, { room: 'src-room', symbols }));
	let stopped = false;
	t.after(async () => {
		stopped = true;
		for (const c of clients)
			c.close();
		await stopServer(server);
	});
	await Promise.all(clients.map((c) => c.start()));
	const { admin, feed } = await sources(server, 'src');

	const until = Date.now() + RUN_MS;
	/* each client: connected for a while, then its socket destroyed; it reconnects by itself */
	const churn = Promise.all(clients.map(async (c) => {
		while (!stopped && Date.now() < until) {
			await sleep(300 + Math.random() * 1500);
			if (Date.now() >= until)
				break;
			const connects = c.stats.connects;
			c.drop();
			await waitFor(() => c.stats.connects > connects, { timeoutMs: 20000,
				intervalMs: 20, what: `${c.user} reconnected` });
		}
	}));
	const users = clients.map((c) => c.user);
	const room = (async () => {
		for (let n = 1; n <= ROOM_MESSAGES; n++) {
			await sendRoom(admin, 'src-room', n);
			/* and a direct message to everyone every 10th */
			if (n % 10 === 0) {
				const r = await admin.request('send_to_user', { user_ids: users,
					content: `d:${n / 10}` });
				assert.equal(r.success, true, JSON.stringify(r));
			}
			if (n % 30 === 0)
				await sleep(RUN_MS / (ROOM_MESSAGES / 30));
		}
	})();
	const ticks = (async () => {
		for (let n = 1; n <= TICKS; n++) {
			await publish(feed, symbols, n);
			await sleep(RUN_MS / TICKS);
		}
	})();
	await Promise.all([churn, room, ticks]);

	await waitFor(() => clients.every((c) => c.socket.connected && c.lastRoom === ROOM_MESSAGES &&
		c.lastDirect === ROOM_MESSAGES / 10 && symbols.every((s) => c.lastSeq[s] === TICKS)), {
		timeoutMs: 30000, intervalMs: 100, what: 'every client at the last message and tick',
	}).catch((e) => {
		const behind = clients.filter((c) => c.lastRoom !== ROOM_MESSAGES ||
			c.lastDirect !== ROOM_MESSAGES / 10 ||
			symbols.some((s) => c.lastSeq[s] !== TICKS)).slice(0, 5)
			.map((c) => `${c.user}: room ${c.lastRoom} direct ${c.lastDirect} ` +
				`${JSON.stringify(c.lastSeq)} ` +
				`${JSON.stringify(c.stats)} ${c.problems.join('; ')}`);
		throw new Error(`${e.message}: ${behind.join(' | ')}`);
	});
	const sum = {};
	for (const c of clients)
		for (const [k, v] of Object.entries(c.stats))
			sum[k] = (sum[k] || 0) + v;
	const st = await getStats(server);
	t.diagnostic(`totals: ${JSON.stringify(sum)}; reconnection ${JSON.stringify(st.reconnection)}`);
	const problems = clients.flatMap((c) => c.problems.map((p) => `${c.user} ${p}`));
	assert.ok(sum.drops >= 2 * CLIENTS, `few drops: ${sum.drops}`);
	assert.equal(sum.notRecovered, 0, 'a reconnect within the TTL and bounds that was not ' +
		'recovered');
	assert.equal(sum.recovered, sum.drops, 'every drop recovered');
	assert.equal(sum.lost, 0, `room/direct messages lost: ${problems.slice(0, 10).join('; ')}`);
	assert.equal(sum.duplicated, 0, `room/direct messages twice: ${problems.slice(0, 10)}`);
	assert.equal(sum.disorder, 0, `room/direct messages out of order: ${problems.slice(0, 10)}`);
	assert.equal(sum.tickGaps + sum.tickDup, 0, `ticks: ${problems.slice(0, 10).join('; ')}`);
	assert.equal(st.reconnection.resumed, sum.drops);
	assert.equal(st.reconnection.not_recovered, 0);
	await admin.close();
	await feed.close();
});
