// The transport edge under attack (issue 11, SPEC 7): what reaches the server before the hub
// does. Tokens of any exp and any length, the publisher subprotocol, idle timeouts, HTTP bodies
// without a Content-Length, connection bounds, UTF-8 in text frames. Each test starts the
// servers it needs with the settings it is about (under the sanitizer build, a crash or an
// undefined-behaviour report makes the server exit non-zero, which stopServer() reports).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import {
	test, after, startServer, stopServer, connect, openWs, getStats, closeAllClients, httpRequest,
	rawHandshake, parseServerFrames, sleep, withTimeout, WebSocket,
} from './lib/harness.mjs';
import { rawSio, closeAllSio } from './lib/sio.mjs';
import { TEST_SECRET, signJwt, nowS } from './lib/jwt.mjs';

const started = new Set();
async function start(opts) {
	const s = await startServer(opts);
	started.add(s);
	return s;
}
async function stop(s) {
	started.delete(s);
	await closeAllSio();
	await stopServer(s);
}

after(async () => {
	await closeAllClients();
	await closeAllSio();
	await Promise.all([...started].map((s) => s.stop()));
});

const jwtEnv = { QUOTECAST_AUTH_MODE: 'jwt', QUOTECAST_AUTH_JWT_SECRET: TEST_SECRET };

/* A masked client frame (FIN set) with @opcode and @payload (Buffer or string). */
function clientFrame(opcode, payload) {
	const data = Buffer.from(payload);
	const mask = randomBytes(4);
	const len = data.length;
	const head = len < 126 ? Buffer.from([0x80 | opcode, 0x80 | len]) :
		len < 65536 ? Buffer.from([0x80 | opcode, 0x80 | 126, len >> 8, len & 255]) :
			Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | 127]),
				(() => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(len)); return b; })()]);
	const body = Buffer.alloc(len);
	for (let i = 0; i < len; i++)
		body[i] = data[i] ^ mask[i & 3];
	return Buffer.concat([head, mask, body]);
}

/*
 * A raw /ws connection that never answers WebSocket pings: its frames in .frames, .closed set
 * (a promise) when the server ends it (close frame or end of the socket).
 */
async function rawWs(server, path = '/ws?user_id=raw') {
	const r = await rawHandshake(server, { path });
	assert.equal(r.status, 101);
	const c = { socket: r.socket, frames: [], closedAt: null };
	let buf = r.rest;
	c.closed = new Promise((resolve) => {
		const end = () => {
			if (c.closedAt === null)
				c.closedAt = Date.now();
			resolve(c.frames.find((f) => f.opcode === 8) ?? null);
		};
		const eat = () => {
			const { frames, rest } = parseServerFrames(buf);
			buf = rest;
			for (const f of frames) {
				c.frames.push(f);
				if (f.opcode === 8)
					end();
			}
		};
		r.socket.on('data', (d) => {
			buf = Buffer.concat([buf, d]);
			eat();
		});
		r.socket.on('end', end);
		r.socket.on('close', end);
		r.socket.on('error', end);
		eat();
		r.socket.resume();
	});
	c.send = (obj) => r.socket.write(clientFrame(1, JSON.stringify(obj)));
	return c;
}

/* A token whose claims are @json verbatim (JSON numbers beyond 2^53 survive). */
const rawToken = (json) => signJwt(json);

test('a JWT exp near 2^63 is taken without overflow, over /ws and /socket.io/', async () => {
	const server = await start({ label: 'exp-max', env: jwtEnv });
	for (const exp of ['9223372036854775807', '9223372036854776', '9223372036854774784.0']) {
		const tok = rawToken(`{"sub":"far-${exp.length}","exp":${exp},"iat":${nowS()}}`);
		const c = await connect(server, { query: { token: tok } });
		assert.equal(c.session.user_id, `far-${exp.length}`);
		c.send({ type: 'ping', timestamp: 1 });
		assert.equal((await c.next({ type: 'pong' })).timestamp, 1);

		const s = await rawSio(server);
		await s.next(/^0\{/);
		s.send(`40${JSON.stringify({ token: tok })}`);
		await s.next(/^40\{"sid"/);
		assert.equal((await s.event('session')).user_id, `far-${exp.length}`);
		s.close();
		await c.close();
	}
	/* the expiry check runs once a second: let it see these connections */
	const c = await connect(server, {
		query: { token: rawToken(`{"sub":"still","exp":9223372036854775807}`) } });
	await new Promise((r) => setTimeout(r, 1500));
	assert.equal(c.isOpen, true);
	assert.equal((await getStats(server, rawToken(
		`{"sub":"ops","roles":["admin"],"exp":${nowS() + 60}}`))).total_connections, 1);
	await c.close();
	await stop(server);
});

test('a text frame that is not UTF-8 closes with 1007 (native, Socket.IO before and after ' +
	'CONNECT); 4-byte UTF-8 passes', async () => {
	const server = await start({ label: 'utf8' });
	const bad = [
		Buffer.from('{"type":"ping","timestamp":1,"x":"\xc0\xaf"}', 'latin1'), /* overlong */
		Buffer.from('{"type":"ping","x":"\xed\xa0\x80"}', 'latin1'), /* a surrogate */
		Buffer.from('{"type":"ping","x":"\xf4\x90\x80\x80"}', 'latin1'), /* > U+10FFFF */
		Buffer.from('{"type":"ping","x":"\xe2\x82', 'latin1'), /* cut short */
	];
	for (const frame of bad) {
		const c = await connect(server, { query: { user_id: 'utf8' } });
		c.sendRaw(frame, { binary: false });
		const { code, reason } = await c.closed();
		assert.equal(code, 1007, `close ${code} ${reason} for ${frame.toString('hex')}`);
		assert.equal(reason, 'text frame is not valid UTF-8');
		await c.nothing((m) => m.type === 'error', 0);
	}
	/* valid 4-byte characters go through, in both directions */
	const a = await connect(server, { query: { user_id: 'emoji' } });
	const text = 'price \u{1F4C8} \u{10FFFF} \u00e9\u20ac';
	a.send({ type: 'ping', timestamp: text });
	assert.equal((await a.next({ type: 'pong' })).timestamp, text);
	await a.close();

	/* Socket.IO: before the CONNECT and after it */
	const s1 = await rawSio(server);
	await s1.next(/^0\{/);
	s1.send(Buffer.from('40{"user_id":"\xff"}', 'latin1'), { binary: false });
	assert.equal((await s1.closed()).code, 1007);
	const s2 = await rawSio(server);
	await s2.next(/^0\{/);
	s2.send('40{"user_id":"sio-utf8"}');
	await s2.next(/^40\{"sid"/);
	s2.send(Buffer.from('42["ping",{"timestamp":"\xc3"}]', 'latin1'), { binary: false });
	assert.equal((await s2.closed()).code, 1007);
	assert.equal((await getStats(server)).total_connections, 0);
	await stop(server);
});

test('a JWT of 2 KiB and of 4 KiB in ?token= is accepted like one in the header; the ' +
	'arguments after it are still read', async () => {
	const server = await start({ label: 'long-token',
		env: { ...jwtEnv, QUOTECAST_SESSIONS_TTL_S: '60' } });
	const sized = (sub, bytes) => {
		let pad = '';
		let tok = signJwt({ sub, exp: nowS() + 600, pad });
		for (let i = 0; i < 5; i++) {
			pad = 'p'.repeat(Math.max(0, pad.length + Math.floor((bytes - tok.length) * 3 / 4)));
			tok = signJwt({ sub, exp: nowS() + 600, pad });
		}
		assert.ok(Math.abs(tok.length - bytes) <= 4, `token of ${tok.length} bytes`);
		return tok;
	};
	const two = sized('two-k', 2048);
	const c = await connect(server, { query: { token: two } });
	assert.equal(c.session.user_id, 'two-k');
	/* ?resume= after the long token is found */
	const resume = c.session.resume_token;
	c.terminate();
	const again = await connect(server, { query: { token: two, resume } });
	assert.equal(again.session.resumed, true, JSON.stringify(again.session));
	await again.close();

	const four = sized('four-k', 4090);
	const q = await connect(server, { query: { token: four } });
	assert.equal(q.session.user_id, 'four-k');
	await q.close();
	const h = await connect(server, { headers: { authorization: `Bearer ${four}` } });
	assert.equal(h.session.user_id, 'four-k');
	await h.close();

	/* over 4096 bytes: refused, with the reason */
	const r = await openWs(server, { query: { token: sized('too-long', 4200) } });
	assert.equal(r.status, 400, r.body);
	assert.match(r.body, /query parameter too long/);
	/* other parameters stay bounded */
	const r2 = await openWs(server, { query: { token: two, x: 'y'.repeat(300) } });
	assert.equal(r2.status, 400, r2.body);
	await stop(server);
});

test('idle timeout: a client that never answers WebSocket pings but sends {"type":"ping"} ' +
	'frames stays; a silent one is closed', async () => {
	const IDLE_S = 3; /* a ping after 1 s of silence, the close after 3 s */
	const server = await start({ label: 'idle-data',
		env: { QUOTECAST_LIMITS_IDLE_TIMEOUT_S: String(IDLE_S) } });
	const talker = await rawWs(server, '/ws?user_id=talker');
	const silent = await rawWs(server, '/ws?user_id=silent');
	const t0 = Date.now();
	let n = 0;
	const timer = setInterval(() => talker.send({ type: 'ping', timestamp: ++n }), 300);
	try {
		await withTimeout(silent.closed, 3 * IDLE_S * 1000, 'the silent client to be closed');
		const wait = 2 * IDLE_S * 1000 + 500 - (Date.now() - t0);
		if (wait > 0)
			await sleep(wait);
		assert.equal(talker.closedAt, null,
			`the talking client was closed after ${talker.closedAt - t0} ms`);
		/* it never answered the WebSocket pings it got, and its pings were answered */
		const pongs = talker.frames.filter((f) => f.opcode === 1 &&
			/"type":"pong"/.test(f.payload.toString()));
		assert.ok(pongs.length >= 10, `${pongs.length} pongs`);
		assert.ok(silent.frames.some((f) => f.opcode === 9), 'the silent one got a ping first');
	} finally {
		clearInterval(timer);
		talker.socket.destroy();
		silent.socket.destroy();
	}
	await stop(server);
});

/*
 * rawHttp() - write @request (a string or Buffer, or an array of them written 50 ms apart) on
 * a fresh TCP connection; resolves {status, headers, body, closed} with the first answer, or
 * rejects when none arrives within @timeoutMs.
 */
function rawHttp(server, request, { timeoutMs = 3000 } = {}) {
	return new Promise((resolve, reject) => {
		const socket = net.connect({ host: server.host, port: server.port });
		let buf = Buffer.alloc(0);
		let answer = null;
		const timer = setTimeout(() => {
			socket.destroy();
			reject(new Error(`no HTTP answer within ${timeoutMs} ms; got ${JSON.stringify(
				buf.toString('latin1'))}`));
		}, timeoutMs);
		const finish = (closed) => {
			clearTimeout(timer);
			socket.destroy();
			resolve({ ...answer, closed });
		};
		const parse = () => {
			const end = buf.indexOf('\r\n\r\n');
			if (end < 0)
				return;
			const head = buf.subarray(0, end).toString('latin1').split('\r\n');
			const headers = {};
			for (const line of head.slice(1)) {
				const i = line.indexOf(':');
				headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
			}
			const len = Number(headers['content-length'] ?? 0);
			if (buf.length < end + 4 + len)
				return;
			const body = buf.subarray(end + 4, end + 4 + len).toString('utf8');
			let json;
			try {
				json = JSON.parse(body);
			} catch {
				json = undefined;
			}
			answer = { status: Number(head[0].split(' ')[1]), headers, body, json };
			/* does the server close the connection after it? (a keep-alive one stays open) */
			setTimeout(() => finish(false), 300);
		};
		socket.on('data', (d) => {
			buf = Buffer.concat([buf, d]);
			if (!answer)
				parse();
		});
		socket.on('close', () => {
			if (answer)
				finish(true);
		});
		socket.on('error', (e) => {
			if (!answer) {
				clearTimeout(timer);
				reject(e);
			}
		});
		socket.on('connect', async () => {
			for (const part of Array.isArray(request) ? request : [request]) {
				socket.write(part);
				await sleep(50);
			}
		});
	});
}

const chunk = (s) => `${Buffer.byteLength(s).toString(16)}\r\n${s}\r\n`;
const tickJson = (symbol, i) => JSON.stringify({ symbol, data: { price: 100 + i, volume: i },
	message_id: `m${i}`, version: i + 1, timestamp: 1699267202000 + i });

test('POST bodies without a Content-Length: chunked is read (in pieces, with extensions and ' +
	'trailers), none at all is 411 at once', async () => {
	const MAX_BODY = 4096;
	const server = await start({ label: 'chunked',
		env: { QUOTECAST_LIMITS_MAX_HTTP_BODY_BYTES: String(MAX_BODY) } });
	const head = (p, extra = '') => `POST ${p} HTTP/1.1\r\nHost: x\r\n` +
		`Content-Type: application/json\r\n${extra}`;
	const sym = `CHUNK${process.pid}`;

	/* one tick, in one write */
	let r = await rawHttp(server, head('/api/publish', 'Transfer-Encoding: chunked\r\n\r\n') +
		chunk(tickJson(sym, 1)) + '0\r\n\r\n');
	assert.equal(r.status, 200, r.body);
	assert.deepEqual(r.json, { accepted: 1, duplicates: 0, stale: 0 });

	/* a batch in many chunks over several writes, an extension, a trailer */
	const batch = `[${[2, 3, 4].map((i) => tickJson(sym, i)).join(',')}]`;
	const parts = [head('/api/publish', 'Transfer-Encoding: chunked\r\n\r\n')];
	for (let i = 0; i < batch.length; i += 37)
		parts.push(chunk(batch.slice(i, i + 37)).replace('\r\n', i === 0 ? ';ext=1\r\n' : '\r\n'));
	parts.push('0\r\nX-Trailer: yes\r\n\r\n');
	r = await rawHttp(server, parts);
	assert.equal(r.status, 200, r.body);
	assert.deepEqual(r.json, { accepted: 3, duplicates: 0, stale: 0 });

	/* chunked to the broadcast endpoint too */
	r = await rawHttp(server, head('/api/broadcast', 'Transfer-Encoding: chunked\r\n\r\n') +
		chunk('{"to_users":["nobody"],') + chunk('"content":"hi"}') + '0\r\n\r\n');
	assert.equal(r.status, 200, r.body);

	/* over the body limit (decoded bytes): 413 */
	r = await rawHttp(server, head('/api/broadcast', 'Transfer-Encoding: chunked\r\n\r\n') +
		chunk('x'.repeat(3000)) + chunk('y'.repeat(3000)) + '0\r\n\r\n');
	assert.equal(r.status, 413, r.body);
	/* malformed framing: 400 */
	r = await rawHttp(server, head('/api/publish', 'Transfer-Encoding: chunked\r\n\r\n') +
		'zz\r\n{}\r\n0\r\n\r\n');
	assert.equal(r.status, 400, r.body);
	assert.match(r.body, /malformed chunked body/);

	/* neither Content-Length nor Transfer-Encoding: 411 at once, on every POST */
	for (const p of ['/api/publish', '/api/broadcast', '/healthz', '/nowhere']) {
		r = await rawHttp(server, head(p, '\r\n'));
		assert.equal(r.status, 411, `${p}: ${r.body}`);
		assert.equal(r.json?.error?.code, 'BAD_REQUEST');
		assert.equal(r.closed, true);
	}
	/* both, or another coding: 400 */
	r = await rawHttp(server, head('/api/publish',
		'Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n') + '0\r\n\r\n');
	assert.equal(r.status, 400, r.body);
	r = await rawHttp(server, head('/api/publish', 'Transfer-Encoding: gzip\r\n\r\n'));
	assert.equal(r.status, 400, r.body);

	/* a Content-Length request still keeps its connection, and the server is well */
	r = await rawHttp(server, head('/api/publish', 'Content-Length: 2\r\n\r\n') + '[]');
	assert.equal(r.status, 400, r.body); /* an empty batch */
	assert.equal(r.closed, false);
	assert.equal((await getStats(server)).streaming.total_messages, 4);
	await stop(server);
});

test('limits.max_connections (5): 10 Socket.IO sockets that never CONNECT, 5 are accepted',
	async () => {
		const server = await start({ label: 'sio-handshakes',
			env: { QUOTECAST_LIMITS_MAX_CONNECTIONS: '5' } });
		const results = [];
		for (let i = 0; i < 10; i++) {
			const r = await openWs(server, { path: '/socket.io/',
				query: { EIO: 4, transport: 'websocket' } });
			results.push(r);
		}
		const open = results.filter((r) => r.client);
		const refused = results.filter((r) => !r.client);
		assert.equal(open.length, 5);
		assert.deepEqual(refused.map((r) => r.status), [503, 503, 503, 503, 503]);
		for (const r of refused)
			assert.equal(JSON.parse(r.body).error.message, 'limits.max_connections reached');
		/* a native connection does not fit either */
		assert.equal((await openWs(server, { query: { user_id: 'late' } })).status, 503);
		let st = await getStats(server);
		assert.equal(st.connections.rejected_total, 6);
		assert.equal(st.limits.refused['limits.max_connections'], 6);
		/* the handshakes are not connections of the hub yet */
		assert.equal(st.total_connections, 0);
		/* one leaves: one slot */
		open[0].client.terminate();
		await waitForUpgrade(server, { user_id: 'now' });
		st = await getStats(server);
		assert.equal(st.total_connections, 1);
		for (const r of open)
			r.client.terminate();
		await stop(server);
	});

/* Retry a native upgrade until it is accepted (a slot frees when the server sees a close). */
async function waitForUpgrade(server, query) {
	for (let i = 0; i < 50; i++) {
		const r = await openWs(server, { query });
		if (r.client)
			return r.client;
		await sleep(50);
	}
	throw new Error('no slot freed');
}

/*
 * openProto() - a WebSocket upgrade asking for the subprotocols @protocols. Resolves {ws,
 * protocol} when accepted (the caller closes ws), {status, body} when refused.
 */
function openProto(server, { path = '/ws', query = {}, protocols = [], headers = {} } = {}) {
	return new Promise((resolve, reject) => {
		const ws = new WebSocket(server.wsUrl(path, query), protocols, { headers,
			handshakeTimeout: 5000 });
		ws.once('open', () => resolve({ ws, protocol: ws.protocol }));
		ws.once('unexpected-response', (req, res) => {
			const parts = [];
			res.on('data', (d) => parts.push(d));
			res.on('end', () => {
				req.destroy();
				resolve({ status: res.statusCode, body: Buffer.concat(parts).toString() });
			});
		});
		ws.once('error', reject);
	});
}

test('the quotecast-publisher subprotocol is given to role publisher only, at most ' +
	'limits.max_publishers of them; refusals at the upgrade say why', async () => {
	const server = await start({ label: 'publisher-role',
		env: { QUOTECAST_LIMITS_MAX_PUBLISHERS: '2' } });
	const pub = (query) => openProto(server, { query, protocols: ['quotecast-publisher'] });
	/* anyone without the role: 403 with the reason, before a slot is taken */
	for (const query of [{ user_id: 'nobody' }, { user_id: 'nobody', roles: 'admin' },
		{ user_id: 'nobody', roles: 'publishers' }]) {
		const r = await pub(query);
		assert.equal(r.status, 403, JSON.stringify(query));
		assert.deepEqual(JSON.parse(r.body).error, { code: 'FORBIDDEN',
			message: 'the quotecast-publisher subprotocol needs role publisher' });
	}
	/* publishers get it, up to the limit */
	const a = await pub({ user_id: 'feed-a', roles: 'publisher' });
	assert.equal(a.protocol, 'quotecast-publisher');
	const b = await pub({ user_id: 'feed-b', roles: 'admin,publisher' });
	assert.equal(b.protocol, 'quotecast-publisher');
	const c = await pub({ user_id: 'feed-c', roles: 'publisher' });
	assert.equal(c.status, 503);
	assert.equal(JSON.parse(c.body).error.message, 'limits.max_publishers reached');
	/* other connections are not affected */
	const plain = await openProto(server, { query: { user_id: 'reader' } });
	assert.equal(plain.protocol, '');
	const named = await openProto(server, { query: { user_id: 'reader' },
		protocols: ['unknown-one', 'quotecast'] });
	assert.equal(named.protocol, 'quotecast');
	/* internal or unknown protocol names, and the publisher one on /socket.io/: 400 */
	for (const protocols of [['quotecast-pg'], ['http'], ['nothing-we-serve']]) {
		const r = await openProto(server, { query: { user_id: 'x', roles: 'publisher' },
			protocols });
		assert.equal(r.status, 400, `${protocols}: ${r.body}`);
	}
	const s = await openProto(server, { path: '/socket.io/',
		query: { EIO: 4, transport: 'websocket' }, protocols: ['quotecast-publisher'] });
	assert.equal(s.status, 400);
	const st = await getStats(server);
	assert.equal(st.limits.refused['limits.max_publishers'], 1);
	assert.equal(st.connections.rejected_total, 8);
	/* a slot frees when a publisher leaves */
	a.ws.terminate();
	for (let i = 0; ; i++) {
		const again = await pub({ user_id: 'feed-c', roles: 'publisher' });
		if (again.ws) {
			again.ws.close();
			break;
		}
		assert.ok(i < 50, 'the slot was not freed');
		await sleep(50);
	}
	for (const x of [b, plain, named])
		x.ws.close();
	await stop(server);
});

test('auth mode jwt: the publisher subprotocol needs the role in the token', async () => {
	const server = await start({ label: 'publisher-jwt', env: jwtEnv });
	const tok = (roles) => signJwt({ sub: 'feed', roles, exp: nowS() + 60 });
	let r = await openProto(server, { query: { token: tok([]), roles: 'publisher' },
		protocols: ['quotecast-publisher'] });
	assert.equal(r.status, 403, r.body);
	r = await openProto(server, { protocols: ['quotecast-publisher'],
		headers: { authorization: `Bearer ${tok(['publisher'])}` } });
	assert.equal(r.protocol, 'quotecast-publisher');
	r.ws.close();
	await stop(server);
});

test('default settings: a publisher on the publisher subprotocol sends 1,000 ticks/s for 2 s ' +
	'and a 10,000-tick batch, all accepted; 10,000 ticks over HTTP too', { timeout: 60000 },
async () => {
	const server = await start({ label: 'publisher-limits' });
	const r = await openProto(server, { query: { user_id: 'feed', roles: 'publisher' },
		protocols: ['quotecast-publisher'] });
	assert.equal(r.protocol, 'quotecast-publisher');
	const ws = r.ws;
	const answers = [];
	let closed = null;
	ws.on('message', (d) => {
		const m = JSON.parse(d.toString());
		if (m.type === 'response' || m.type === 'error')
			answers.push(m);
	});
	ws.on('close', (code) => {
		closed = code;
	});
	const sym = `FEED${process.pid}`;
	const s0 = (await getStats(server)).streaming.total_messages;

	/* 1,000 ticks a second: 10 every 10 ms, for 2 s */
	let n = 0;
	const t0 = Date.now();
	while (n < 2000) {
		for (let i = 0; i < 10; i++, n++)
			ws.send(JSON.stringify({ type: 'request', request_id: `t${n}`,
				action: 'publish_market_data', payload: JSON.parse(tickJson(sym, n)) }));
		const due = t0 + (n / 1000) * 1000;
		if (due > Date.now())
			await sleep(due - Date.now());
	}
	for (let i = 0; answers.length < 2000 && closed === null && i < 200; i++)
		await sleep(50);
	assert.equal(closed, null, `the publisher was closed (${closed})`);
	const failed = answers.filter((m) => m.success !== true);
	assert.equal(failed.length, 0, JSON.stringify(failed.slice(0, 3)));
	assert.equal(answers.length, 2000);
	assert.equal((await getStats(server)).streaming.total_messages - s0, 2000);

	/* one batch of 10,000 ticks (~700 KB) over the WebSocket */
	const batch = Array.from({ length: 10000 }, (_, i) => JSON.parse(tickJson(`${sym}B`, i)));
	const text = JSON.stringify({ type: 'request', request_id: 'big', action:
		'publish_market_data', payload: { ticks: batch } });
	assert.ok(text.length > 600000, `${text.length} bytes`);
	ws.send(text);
	for (let i = 0; !answers.some((m) => m.request_id === 'big') && closed === null &&
		i < 200; i++)
		await sleep(50);
	assert.equal(closed, null, `closed with ${closed} after the batch`);
	const big = answers.find((m) => m.request_id === 'big');
	assert.deepEqual(big?.data, { accepted: 10000, duplicates: 0, stale: 0 },
		JSON.stringify(big));
	ws.close();

	/* over HTTP: 10,000 ticks of the SPEC's own shape, over 1 MiB */
	const body = JSON.stringify(Array.from({ length: 10000 }, (_, i) => ({
		symbol: '600519', data: { price: 1850.5 + i, volume: 1000 + i },
		message_id: `m${i}`, version: i + 1, timestamp: 1699267202000 + i })));
	assert.ok(body.length > 1048576, `${body.length} bytes`);
	const h = await httpRequest(server, 'POST', '/api/publish', { body, timeoutMs: 20000 });
	assert.equal(h.status, 200, h.text);
	assert.deepEqual(h.json, { accepted: 10000, duplicates: 0, stale: 0 });
	assert.equal((await getStats(server)).streaming.total_messages - s0, 22000);
	await stop(server);
});

test('publishers have their own limits when set: limits.publisher_rate_per_s and ' +
	'limits.publisher_max_message_bytes', async () => {
	const server = await start({ label: 'publisher-limits-set', env: {
		QUOTECAST_LIMITS_PUBLISHER_RATE_PER_S: '5',
		QUOTECAST_LIMITS_RATE_BURST: '5',
		QUOTECAST_LIMITS_PUBLISHER_MAX_MESSAGE_BYTES: '100000',
	} });
	const feed = await connect(server, { query: { user_id: 'feed', roles: 'publisher' } });
	for (let i = 0; i < 8; i++)
		feed.send({ type: 'ping', timestamp: i });
	const got = [];
	for (let i = 0; i < 8; i++)
		got.push(await feed.next((m) => m.type === 'pong' || m.type === 'error'));
	/* a bucket of 5 (and a refill of 5 a second) */
	assert.ok(got.filter((m) => m.error?.code === 'RATE_LIMITED').length >= 2,
		JSON.stringify(got));
	assert.ok((await getStats(server)).limits.refused['limits.publisher_rate_per_s'] >= 1);
	await feed.close();
	/* over publisher_max_message_bytes: 1009; a subscriber keeps the 64 KiB bound */
	const big = await connect(server, { query: { user_id: 'feed2', roles: 'publisher' } });
	big.sendRaw(JSON.stringify({ type: 'ping', pad: 'x'.repeat(90000) }));
	assert.equal((await big.next({ type: 'pong' })).type, 'pong');
	big.sendRaw(JSON.stringify({ type: 'ping', pad: 'x'.repeat(110000) }));
	assert.equal((await big.closed()).code, 1009);
	const sub = await connect(server, { query: { user_id: 'reader' } });
	sub.sendRaw(JSON.stringify({ type: 'ping', pad: 'x'.repeat(70000) }));
	assert.equal((await sub.closed()).code, 1009);
	/* POST /api/publish: the publishers' bound too */
	const body = JSON.stringify({ symbol: 'X', data: { pad: 'y'.repeat(120000) } });
	const h = await httpRequest(server, 'POST', '/api/publish', { body });
	assert.equal(h.status, 413, h.text);
	assert.match(h.json.error.message, /limits\.publisher_max_message_bytes/);
	await stop(server);
});

test('limits.max_connections_per_user: the user named at the upgrade (or at the Socket.IO ' +
	'CONNECT) holds at most that many; anonymous ones are their own users', async () => {
	const server = await start({ label: 'per-user',
		env: { QUOTECAST_LIMITS_MAX_CONNECTIONS_PER_USER: '2' } });
	const a1 = await connect(server, { query: { user_id: 'alice' } });
	const a2 = await connect(server, { query: { user_id: 'alice' } });
	const r = await openWs(server, { query: { user_id: 'alice' } });
	assert.equal(r.status, 429, r.body);
	assert.deepEqual(JSON.parse(r.body).error, { code: 'LIMIT_EXCEEDED',
		message: 'limits.max_connections_per_user reached' });
	/* others are not affected; anonymous connections are each their own user */
	const b = await connect(server, { query: { user_id: 'bob' } });
	const anon = await Promise.all([1, 2, 3].map(() => connect(server)));
	/* a Socket.IO CONNECT naming alice is refused; its handshake did not count as alice */
	const s = await rawSio(server);
	await s.next(/^0\{/);
	s.send('40{"user_id":"alice"}');
	assert.equal(await s.next(/^44/),
		'44{"message":"unavailable: limits.max_connections_per_user reached"}');
	assert.deepEqual(await s.closed(), { code: 1008,
		reason: 'limits.max_connections_per_user reached' });
	const st = await getStats(server);
	assert.equal(st.limits.refused['limits.max_connections_per_user'], 2);
	/* Socket.IO connections count toward the user too */
	await a2.close();
	const s2 = await rawSio(server);
	await s2.next(/^0\{/);
	s2.send('40{"user_id":"alice"}');
	await s2.next(/^40\{"sid"/);
	assert.equal((await openWs(server, { query: { user_id: 'alice' } })).status, 429);
	s2.close();
	for (const c of [a1, b, ...anon])
		await c.close();
	await stop(server);
});

test('limits.max_connections_per_ip: every upgraded socket of an address counts (loopback ' +
	'too); HTTP is still served', async () => {
	const server = await start({ label: 'per-ip',
		env: { QUOTECAST_LIMITS_MAX_CONNECTIONS_PER_IP: '3' } });
	const c1 = await connect(server, { query: { user_id: 'one' } });
	const c2 = await connect(server);
	const s = await rawSio(server); /* a handshake counts from the upgrade */
	await s.next(/^0\{/);
	for (const query of [{ user_id: 'four' }, {}]) {
		const r = await openWs(server, { query });
		assert.equal(r.status, 429, r.body);
		assert.equal(JSON.parse(r.body).error.message, 'limits.max_connections_per_ip reached');
	}
	const r2 = await openWs(server, { path: '/socket.io/',
		query: { EIO: 4, transport: 'websocket' } });
	assert.equal(r2.status, 429);
	const st = await getStats(server);
	assert.equal(st.limits.refused['limits.max_connections_per_ip'], 3);
	assert.equal(st.connections.rejected_total, 3);
	/* a slot frees when one leaves */
	s.close();
	const c3 = await waitForUpgrade(server, { user_id: 'three' });
	c3.terminate();
	await c1.close();
	await c2.close();
	await stop(server);
});

/* Open a TCP connection that sends nothing; resolves once connected, with .gone (a promise). */
function idleSocket(server) {
	return new Promise((resolve, reject) => {
		const socket = net.connect({ host: server.host, port: server.port });
		socket.gone = new Promise((r) => {
			socket.on('close', () => r(true));
		});
		socket.on('error', () => {});
		socket.once('connect', () => resolve(socket));
		socket.once('error', reject);
	});
}

/* Whether @socket is closed by the server within @ms. */
async function closedWithin(socket, ms) {
	return Promise.race([socket.gone, sleep(ms).then(() => false)]);
}

test('HTTP connections are bounded: limits.max_http_connections, and per address; ' +
	'WebSocket connections do not count toward it', async () => {
	const server = await start({ label: 'http-conns', env: {
		QUOTECAST_LIMITS_MAX_HTTP_CONNECTIONS: '3',
		QUOTECAST_LIMITS_MAX_CONNECTIONS_PER_IP: '100',
	} });
	/* upgraded sockets are WebSocket connections, not HTTP ones (one at a time: an upgrade
	 * is an HTTP connection until it is done) */
	const ws = [];
	for (const i of [1, 2, 3, 4, 5])
		ws.push(await connect(server, { query: { user_id: `w${i}` } }));
	assert.equal((await getStats(server)).total_connections, 5);
	/* three idle sockets fill the bound; the fourth is closed as it is accepted */
	const idle = await Promise.all([1, 2, 3].map(() => idleSocket(server)));
	await sleep(200);
	const fourth = await idleSocket(server);
	assert.equal(await closedWithin(fourth, 2000), true, 'the fourth HTTP connection stays');
	for (const s of idle)
		assert.equal(await closedWithin(s, 0), false);
	/* one leaves: HTTP is served again */
	idle[0].destroy();
	let st;
	for (let i = 0; i < 50 && !st; i++) {
		try {
			st = await getStats(server);
		} catch {
			await sleep(50);
		}
	}
	assert.ok(st, 'no HTTP answer after a slot freed');
	assert.ok(st.limits.refused['limits.max_http_connections'] >= 1, JSON.stringify(st.limits));
	for (const s of idle)
		s.destroy();
	for (const c of ws)
		await c.close();
	await stop(server);

	/* per address: limits.max_connections_per_ip HTTP connections of one address */
	const per = await start({ label: 'http-per-ip',
		env: { QUOTECAST_LIMITS_MAX_CONNECTIONS_PER_IP: '2' } });
	const two = await Promise.all([1, 2].map(() => idleSocket(per)));
	await sleep(200);
	const third = await idleSocket(per);
	assert.equal(await closedWithin(third, 2000), true, 'a third HTTP connection of 127.0.0.1');
	for (const s of two)
		s.destroy();
	let st2;
	for (let i = 0; i < 50 && !st2; i++) {
		try {
			st2 = await getStats(per);
		} catch {
			await sleep(50);
		}
	}
	assert.ok(st2.limits.refused['limits.max_connections_per_ip'] >= 1);
	await stop(per);
});

test('an Upgrade: h2c is refused (it would have turned the connection into cleartext ' +
	'HTTP/2)', async () => {
	const server = await start({ label: 'h2c' });
	const r = await rawHttp(server, 'GET /ws HTTP/1.1\r\nHost: x\r\n' +
		'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n' +
		'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n');
	assert.equal(r.status, 400, JSON.stringify(r));
	assert.equal(r.json.error.message, 'only WebSocket upgrades are served');
	assert.equal((await getStats(server)).connections.rejected_total, 1);
	await stop(server);
});
