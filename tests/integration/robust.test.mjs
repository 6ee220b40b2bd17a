// Bad input over raw sockets never crashes or stalls the server: junk instead of a handshake,
// frames cut off mid-way, a header claiming an enormous length, an unmasked client frame.
// After each, a well-behaved client is still served and the stats count no leftover connection.
import assert from 'node:assert/strict';
import net from 'node:net';
import {
	test, before, after, startServer, stopServer, connect, getStats, waitFor,
	rawHandshake, parseServerFrames, sleep,
} from './lib/harness.mjs';

let server;

before(async () => {
	server = await startServer({ label: 'robust',
		env: { QUOTECAST_LIMITS_MAX_MESSAGE_BYTES: '4096' } });
});

after(async () => {
	await stopServer(server);
});

/* a masked client frame: FIN + @opcode, @payload (Buffer), masked with a fixed key */
function clientFrame(opcode, payload, { fin = true, lenOverride } = {}) {
	const key = Buffer.from([1, 2, 3, 4]);
	const len = lenOverride ?? payload.length;
	let head;
	if (len < 126) {
		head = Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | len]);
	} else if (len < 65536) {
		head = Buffer.alloc(4);
		head[0] = (fin ? 0x80 : 0) | opcode;
		head[1] = 0x80 | 126;
		head.writeUInt16BE(len, 2);
	} else {
		head = Buffer.alloc(10);
		head[0] = (fin ? 0x80 : 0) | opcode;
		head[1] = 0x80 | 127;
		head.writeBigUInt64BE(BigInt(len), 2);
	}
	const body = Buffer.from(payload.map((b, i) => b ^ key[i % 4]));
	return Buffer.concat([head, key, body]);
}

/* everything the server sends until it closes (or @ms pass): parsed frames and how it ended */
function collect(socket, rest, ms) {
	return new Promise((resolve) => {
		let buf = rest;
		const frames = [];
		const finish = (how) => {
			clearTimeout(timer);
			const { frames: f } = parseServerFrames(buf);
			frames.push(...f);
			socket.destroy();
			resolve({ frames, how });
		};
		const timer = setTimeout(() => finish('timeout'), ms);
		socket.on('data', (d) => {
			buf = Buffer.concat([buf, d]);
		});
		socket.on('end', () => finish('end'));
		socket.on('close', () => finish('close'));
		socket.on('error', () => finish('error'));
		socket.resume();
	});
}

function closeCode(frames) {
	const c = frames.find((f) => f.opcode === 8);
	return c && c.payload.length >= 2 ? c.payload.readUInt16BE(0) : null;
}

async function stillServes() {
	const c = await connect(server, { query: { user_id: 'probe' } });
	c.send({ type: 'ping', timestamp: 7 });
	const pong = await c.next((m) => m.type === 'pong', 2000);
	assert.equal(pong.timestamp, 7);
	await c.close();
	await waitFor(async () => (await getStats(server)).total_connections === 0,
		{ what: 'no connection left over', timeoutMs: 5000 });
}

test('junk instead of an HTTP request is dropped; the server goes on', async () => {
	for (const junk of ['\x00\x01\x02\xff\xfe garbage\r\n\r\n', 'GET\r\n\r\n',
		'NOT-A-METHOD / HTTP/1.1\r\n\r\n', 'x'.repeat(20000)]) {
		const s = net.connect({ host: server.host, port: server.port });
		await new Promise((r) => s.once('connect', r));
		s.write(junk);
		await collect(s, Buffer.alloc(0), 3000);
	}
	await stillServes();
});

test('a frame cut off mid-way, then the socket closes: no crash, nothing left', async () => {
	const { socket, status } = await rawHandshake(server);
	assert.equal(status, 101);
	const frame = clientFrame(1, Buffer.from(JSON.stringify({ type: 'ping', timestamp: 1 })));
	socket.write(frame.subarray(0, 5)); /* header and part of the key */
	await sleep(100);
	socket.destroy();
	const { socket: s2 } = await rawHandshake(server);
	/* claims 1000 bytes, sends 10 and waits */
	s2.write(clientFrame(1, Buffer.alloc(10, 0x20), { lenOverride: 1000 }).subarray(0, 16));
	await sleep(200);
	s2.destroy();
	await stillServes();
});

test('a header claiming 2^62 bytes is refused at once with 1009', async () => {
	const { socket, status, rest } = await rawHandshake(server);
	assert.equal(status, 101);
	const head = Buffer.alloc(14);
	head[0] = 0x81;
	head[1] = 0x80 | 127;
	head.writeBigUInt64BE(1n << 62n, 2);
	socket.write(Buffer.concat([head, Buffer.alloc(64, 0x41)]));
	const t0 = Date.now();
	const { frames } = await collect(socket, rest, 5000);
	assert.equal(closeCode(frames), 1009, 'close 1009');
	assert.ok(Date.now() - t0 < 4000, 'closed without waiting for the body');
	await stillServes();
});

test('an unmasked client frame is handled cleanly; other connections are unaffected', async () => {
	const other = await connect(server, { query: { user_id: 'bystander' } });
	const { socket, status, rest } = await rawHandshake(server);
	assert.equal(status, 101);
	const payload = Buffer.from(JSON.stringify({ type: 'ping', timestamp: 2 }));
	socket.write(Buffer.concat([Buffer.from([0x81, payload.length]), payload]));
	const { how, frames } = await collect(socket, rest, 1500);
	/*
	 * RFC 6455 says a server should close here; lws 4.1 accepts unmasked client frames. Either
	 * is clean: the connection is closed, or the frame is answered like any other.
	 */
	const answered = frames.some((f) => f.opcode === 1 && f.payload.includes('"pong"'));
	assert.ok(how !== 'timeout' || answered, `neither closed nor answered (${how})`);
	other.send({ type: 'ping', timestamp: 3 });
	assert.equal((await other.next((m) => m.type === 'pong', 2000)).timestamp, 3);
	await other.close();
	await stillServes();
});

test('a storm of tiny fragments within the size limit is reassembled and answered', async () => {
	const { socket, status, rest } = await rawHandshake(server);
	assert.equal(status, 101);
	const text = Buffer.from(JSON.stringify({ type: 'ping', timestamp: 42, pad: 'p'.repeat(900) }));
	const parts = [];
	for (let i = 0; i < text.length; i += 7) {
		const chunk = text.subarray(i, i + 7);
		const last = i + 7 >= text.length;
		parts.push(clientFrame(i === 0 ? 1 : 0, chunk, { fin: last }));
	}
	socket.write(Buffer.concat(parts));
	const got = await new Promise((resolve, reject) => {
		let buf = rest;
		const timer = setTimeout(() => reject(new Error('no pong to the fragmented ping')), 3000);
		socket.on('data', (d) => {
			buf = Buffer.concat([buf, d]);
			const { frames } = parseServerFrames(buf);
			const pong = frames.find((f) => f.opcode === 1 && f.payload.includes('"pong"'));
			if (pong) {
				clearTimeout(timer);
				resolve(JSON.parse(pong.payload.toString()));
			}
		});
		socket.resume();
	});
	assert.equal(got.timestamp, 42);
	socket.destroy();
	await stillServes();
});
