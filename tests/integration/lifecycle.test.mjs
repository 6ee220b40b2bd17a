// Process and connection lifecycle: graceful shutdown, connection cap, idle timeout
// (SPEC 2.2; behaviour.md "WebSocket /ws").

import assert from 'node:assert/strict';
import {
	test, after, startServer, stopServer, connect, upgradeStatus, httpRequest, getStats, waitFor,
	rawHandshake, parseServerFrames, closeAllClients, sleep,
} from './lib/harness.mjs';

const started = [];
async function start(opts) {
	const s = await startServer(opts);
	started.push(s);
	return s;
}

after(async () => {
	await closeAllClients();
	/* servers a test did not stop itself (it failed half-way) */
	await Promise.all(started.map((s) => s.stop()));
});

test('SIGTERM closes every connection with 1001 and exits 0', async () => {
	const server = await start({ label: 'sigterm' });
	const clients = await Promise.all(['u1', 'u2', 'u3'].map((id) =>
		connect(server, { query: { user_id: id } })));
	await clients[0].subscribe('shutdown-room');
	await clients[1].subscribe('shutdown-room');
	const [st, ...closes] = await Promise.all([
		server.stop({ signal: 'SIGTERM', timeoutMs: 10000 }),
		...clients.map((c) => c.closed(10000)),
	]);
	for (const cl of closes)
		assert.equal(cl.code, 1001, `close code ${cl.code} (${cl.reason})`);
	assert.equal(st.killed, false, 'exited by itself within 10 s');
	assert.equal(st.signal, null, `terminated by signal ${st.signal}`);
	assert.equal(st.code, 0);
});

test('SIGINT closes with 1001 and exits 0', async () => {
	const server = await start({ label: 'sigint' });
	const c = await connect(server, { query: { user_id: 'solo' } });
	const [st, cl] = await Promise.all([
		server.stop({ signal: 'SIGINT', timeoutMs: 10000 }),
		c.closed(10000),
	]);
	assert.equal(cl.code, 1001);
	assert.equal(st.killed, false);
	assert.equal(st.code, 0);
});

test('SIGTERM with no connections exits 0 promptly', async () => {
	const server = await start({ label: 'sigterm-idle' });
	const t0 = Date.now();
	const st = await server.stop({ timeoutMs: 10000 });
	assert.equal(st.killed, false);
	assert.equal(st.code, 0);
	assert.ok(Date.now() - t0 < 5000, `exit took ${Date.now() - t0} ms`);
});

test('limits.max_connections: a further upgrade gets HTTP 503 and is counted', async () => {
	const server = await start({ label: 'maxconn',
		env: { QUOTECAST_LIMITS_MAX_CONNECTIONS: '2' } });
	const c1 = await connect(server, { query: { user_id: 'one' } });
	const c2 = await connect(server, { query: { user_id: 'two' } });
	assert.equal(await upgradeStatus(server, { query: { user_id: 'three' } }), 503,
		'the third upgrade is refused with 503');

	/* HTTP is still served at capacity */
	assert.equal((await httpRequest(server, 'GET', '/healthz')).status, 200);
	const s = await getStats(server);
	assert.equal(s.connections.rejected_total, 1);
	assert.equal(s.total_connections, 2);
	assert.equal(s.connections.accepted_total, 2);

	/* the two admitted connections are unharmed */
	c1.send({ type: 'ping', timestamp: 1 });
	assert.equal((await c1.next({ type: 'pong' })).timestamp, 1);

	/* a slot frees when one leaves */
	await c2.close();
	await waitFor(async () => (await getStats(server)).total_connections === 1,
		{ what: 'the closed connection to be gone' });
	const c3 = await connect(server, { query: { user_id: 'three' } });
	assert.equal(c3.session.user_id, 'three');
	assert.equal(await upgradeStatus(server, { query: { user_id: 'four' } }), 503);
	assert.equal((await getStats(server)).connections.rejected_total, 2);
	await c1.close();
	await c3.close();
	await stopServer(server);
});

test('idle timeout: a silent connection is closed; one that answers pings stays', async () => {
	const IDLE_S = 2;
	const server = await start({ label: 'idle',
		env: { QUOTECAST_LIMITS_IDLE_TIMEOUT_S: String(IDLE_S) } });
	const alive = await connect(server, { query: { user_id: 'responsive' } });

	const t0 = Date.now();
	const { socket, status, rest } = await rawHandshake(server);
	assert.equal(status, 101);
	const seen = [];
	let buf = rest;
	const closedAt = await new Promise((resolve, reject) => {
		const timer = setTimeout(() => {
			socket.destroy();
			reject(new Error(`silent connection still open after ${3 * IDLE_S} s; frames seen: ` +
				JSON.stringify(seen)));
		}, 3 * IDLE_S * 1000);
		const done = () => {
			clearTimeout(timer);
			resolve(Date.now());
		};
		const eat = () => {
			const { frames, rest: r } = parseServerFrames(buf);
			buf = r;
			for (const f of frames) {
				seen.push({ opcode: f.opcode, at: Date.now() - t0,
					text: f.opcode === 1 ? f.payload.toString('utf8').slice(0, 80) : undefined });
				if (f.opcode === 8)
					done();
			}
		};
		socket.on('data', (d) => {
			buf = Buffer.concat([buf, d]);
			eat();
		});
		socket.on('end', done);
		socket.on('close', done);
		socket.on('error', done);
		eat();
		socket.resume();
	});
	socket.destroy();
	const elapsed = closedAt - t0;
	assert.ok(elapsed >= (IDLE_S * 1000) / 2, `closed too early: after ${elapsed} ms`);
	assert.ok(seen.some((f) => f.opcode === 1 && /"session"/.test(f.text)),
		`the session event was sent: ${JSON.stringify(seen)}`);
	assert.ok(seen.some((f) => f.opcode === 9), `a ping was sent first: ${JSON.stringify(seen)}`);

	/* the responsive client has been silent too, except for pongs: still open after 2 timeouts */
	const wait = 2 * IDLE_S * 1000 + 500 - (Date.now() - t0);
	if (wait > 0)
		await sleep(wait);
	assert.equal(alive.isOpen, true, `responsive client closed: ${alive.describe()}`);
	alive.send({ type: 'ping', timestamp: 9 });
	assert.equal((await alive.next({ type: 'pong' })).timestamp, 9);
	await alive.close();
	await stopServer(server);
});

test('slow consumer: a client that stops reading is closed, a reading one gets everything',
	async (t) => {
		const server = await start({ label: 'slow',
			env: {
				QUOTECAST_LIMITS_CONFLATE_BYTES: String(128 * 1024),
				QUOTECAST_LIMITS_MAX_SEND_QUEUE_BYTES: String(256 * 1024),
			} });
		const room = 'firehose';
		const fast = await connect(server, { query: { user_id: 'fast' } });
		const slow = await connect(server, { query: { user_id: 'slow' } });
		await fast.subscribe(room);
		await slow.subscribe(room);
		/* stop reading: the kernel buffers fill, then the server's queue for it */
		slow.ws.pause();

		const content = 'q'.repeat(160 * 1024);
		let posts = 0;
		let gone = false;
		/* one message at a time, so a reading client never has much queued */
		while (posts < 3000 && !gone) {
			const r = await httpRequest(server, 'POST', '/api/broadcast',
				{ body: { room, content } });
			assert.equal(r.status, 200, r.text);
			posts++;
			if (posts % 20 === 0)
				gone = (await getStats(server)).total_connections === 1;
		}
		assert.ok(gone, `the paused client was not closed after ${posts} messages of 160 KiB`);
		for (let i = 0; i < posts; i++) {
			const ev = await fast.next({ event: 'room_message' }, 5000);
			assert.equal(ev.data.content.length, content.length);
		}
		assert.equal(fast.isOpen, true);
		slow.ws.resume();
		const { code } = await slow.closed(10000);
		t.diagnostic(`paused client closed after ${posts} messages, close code ${code}`);
		assert.ok([4008, 1006].includes(code), `slow consumer closed with ${code}`);
		await fast.close();
		await stopServer(server);
	});
