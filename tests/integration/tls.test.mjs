// wss:// and https:// with a configured certificate (SPEC 1, 6: tls.cert, tls.key).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { test, before, after, startServer, stopServer, connect, httpRequest, WebSocket } from
	'./lib/harness.mjs';

let server;
let dir;

before(async () => {
	dir = mkdtempSync(path.join(tmpdir(), 'quotecast-tls-'));
	const cert = path.join(dir, 'cert.pem');
	const key = path.join(dir, 'key.pem');
	execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256',
		'-days', '2', '-subj', '/CN=localhost',
		'-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
		'-keyout', key, '-out', cert], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 20000 });
	server = await startServer({
		label: 'tls',
		tls: true,
		env: { QUOTECAST_TLS_CERT: cert, QUOTECAST_TLS_KEY: key },
	});
});

after(async () => {
	try {
		await stopServer(server);
	} finally {
		if (dir)
			rmSync(dir, { recursive: true, force: true });
	}
});

test('wss:// connects and gets the session event', async () => {
	const c = await connect(server, { query: { user_id: 'secure' } });
	assert.ok(c.ws.url.startsWith('wss://'));
	assert.equal(c.session.user_id, 'secure');
	assert.match(c.session.session_id, /^[0-9a-f]{32}$/);
	c.send({ type: 'ping', timestamp: 5, request_id: 'tls-ping' });
	const pong = await c.next({ type: 'pong' });
	assert.equal(pong.timestamp, 5);
	assert.equal(pong.request_id, 'tls-ping');
	const r = await c.ask({ type: 'subscribe', room: 'tls-room' });
	assert.equal(r.success, true);
	await c.close();
});

test('GET https://.../healthz answers 200', async () => {
	const r = await httpRequest(server, 'GET', '/healthz');
	assert.equal(r.status, 200);
	assert.deepEqual(r.json, { status: 'ok' });
});

test('the server presents the configured certificate', async () => {
	const cn = await new Promise((resolve, reject) => {
		const s = tls.connect({ host: server.host, port: server.port, servername: 'localhost',
			rejectUnauthorized: false }, () => {
			const peer = s.getPeerCertificate();
			s.end();
			resolve(peer.subject && peer.subject.CN);
		});
		s.setTimeout(5000, () => s.destroy(new Error('TLS handshake timeout')));
		s.on('error', reject);
	});
	assert.equal(cn, 'localhost');
});

test('plain ws:// to the TLS port does not get a session', async () => {
	const ws = new WebSocket(`ws://${server.host}:${server.port}/ws`, { handshakeTimeout: 3000 });
	const outcome = await new Promise((resolve) => {
		const timer = setTimeout(() => resolve('timeout'), 4000);
		ws.on('open', () => {
			clearTimeout(timer);
			resolve('open');
		});
		ws.on('error', () => {
			clearTimeout(timer);
			resolve('error');
		});
		ws.on('unexpected-response', (req) => {
			clearTimeout(timer);
			req.destroy();
			resolve('refused');
		});
	});
	ws.terminate();
	assert.notEqual(outcome, 'open');
	/* and the server is fine afterwards */
	assert.equal((await httpRequest(server, 'GET', '/healthz')).status, 200);
});
