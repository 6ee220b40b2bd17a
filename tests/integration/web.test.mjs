// Static files (GET /, /client/quotecast.js: webfiles.c) and the JavaScript client module
// (client/quotecast.js) driven from Node against the real binary: requests as promises, events,
// and reconnecting by itself after an abrupt drop with its rooms and streams.

import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
	REPO_ROOT, WebSocket, httpRequest, startServer, stopServer, test, waitFor, after,
} from './lib/harness.mjs';
import { QuotecastClient, QuotecastError } from '../../client/quotecast.js';

let shared;
const server = async () => (shared ??= await startServer({ label: 'web' }));
after(async () => {
	if (shared)
		await stopServer(shared);
});

test('GET /client/quotecast.js: the module, with its type, a strong ETag, no-cache and a strict CSP',
	async () => {
		const s = await server();
		const r = await httpRequest(s, 'GET', '/client/quotecast.js');
		assert.equal(r.status, 200, r.text);
		assert.equal(r.headers['content-type'], 'text/javascript; charset=utf-8');
		assert.match(r.text, /export class QuotecastClient/);
		assert.match(r.headers.etag, /^"[0-9a-f]{16}"$/);
		assert.equal(r.headers['cache-control'], 'no-cache');
		assert.equal(r.headers['x-content-type-options'], 'nosniff');
		const csp = r.headers['content-security-policy'];
		assert.match(csp, /default-src 'none'/);
		assert.match(csp, /script-src 'self'/);
		assert.match(csp, /connect-src 'self'/);
		assert.match(csp, /frame-ancestors 'none'/);
		assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);

		/* revalidation: the same ETag gives 304 and no body */
		const again = await httpRequest(s, 'GET', '/client/quotecast.js',
			{ headers: { 'if-none-match': r.headers.etag } });
		assert.equal(again.status, 304);
		assert.equal(again.text, '');
		const head = await httpRequest(s, 'HEAD', '/client/quotecast.js');
		assert.equal(head.status, 200);
		assert.equal(head.headers['content-length'], String(Buffer.byteLength(r.text)));
		assert.equal(head.text, '');
	});

test('static files: nothing outside the roots, POST refused, unknown paths 404 JSON', async () => {
	const s = await server();
	for (const p of ['/client/../src/hub.c', '/client/%2e%2e/CMakeLists.txt', '/src/hub.c',
		'/client/', '/client/quotecast.js.map']) {
		const r = await httpRequest(s, 'GET', p);
		assert.equal(r.status, 404, `${p}: ${r.status} ${r.text.slice(0, 80)}`);
		assert.equal(r.json?.error?.code, 'NOT_FOUND', p);
	}
	const post = await httpRequest(s, 'POST', '/client/quotecast.js', { body: {} });
	assert.equal(post.status, 404);
});

test('web.root: a directory of its own is served at / (index.html), web.enabled=false serves none',
	async () => {
		const root = mkdtempSync(path.join(tmpdir(), 'qc-web-'));
		try {
			mkdirSync(path.join(root, 'web', 'css'), { recursive: true });
			writeFileSync(path.join(root, 'web', 'index.html'), '<!doctype html><title>t</title>');
			writeFileSync(path.join(root, 'web', 'css', 'app.css'), 'body{margin:0}');
			const s = await startServer({ label: 'web-root', env: { QUOTECAST_WEB_ROOT: root } });
			try {
				const r = await httpRequest(s, 'GET', '/');
				assert.equal(r.status, 200);
				assert.equal(r.headers['content-type'], 'text/html; charset=utf-8');
				assert.equal(r.text, '<!doctype html><title>t</title>');
				const css = await httpRequest(s, 'GET', '/css/app.css');
				assert.equal(css.headers['content-type'], 'text/css; charset=utf-8');
				/* this root has no client/: not served */
				assert.equal((await httpRequest(s, 'GET', '/client/quotecast.js')).status, 404);
			} finally {
				await stopServer(s);
			}
			const off = await startServer({ label: 'web-off',
				env: { QUOTECAST_WEB_ROOT: root, QUOTECAST_WEB_ENABLED: 'false' } });
			try {
				assert.equal((await httpRequest(off, 'GET', '/')).status, 404);
			} finally {
				await stopServer(off);
			}
		} finally {
			rmSync(root, { recursive: true, force: true });
		}
	});

function client(s, opts = {}) {
	return new QuotecastClient({ url: `ws://127.0.0.1:${s.port}/ws`, WebSocket, minDelayMs: 50,
		maxDelayMs: 200, ...opts });
}

test('the JavaScript client: session, requests as promises, errors with codes, events', async () => {
	const s = await server();
	const a = client(s, { userId: 'jsc-a' });
	const b = client(s, { userId: 'jsc-b' });
	const states = [];
	a.on('state', (st) => states.push(st));
	const sess = await a.connect();
	assert.equal(sess.user_id, 'jsc-a');
	assert.equal(a.state, 'open');
	assert.deepEqual(states, ['connecting', 'open']);
	await b.connect();

	const got = [];
	a.on('room_message', (d) => got.push(d.content));
	await a.subscribe('jsc-room');
	await b.subscribe('jsc-room');
	await b.request('send_message', { room: 'jsc-room', content: 'hello' });
	await waitFor(() => got.includes('hello'), { what: 'the room message at a' });

	await assert.rejects(a.request('get_room', { room: 'jsc-no-such-room' }),
		(e) => e instanceof QuotecastError && e.code === 'NOT_FOUND');
	await assert.rejects(a.request('no_such_action', {}),
		(e) => e.code === 'UNKNOWN_ACTION');
	assert.equal(typeof await a.ping(), 'number');
	a.close();
	b.close();
	assert.equal(a.state, 'closed');
	await assert.rejects(a.request('list_rooms', {}), (e) => e.code === 'DISCONNECTED');
});

test('the JavaScript client reconnects by itself after an abrupt drop, with its room and stream',
	async () => {
		const s = await server();
		const a = client(s, { userId: 'jsc-re' });
		const pub = client(s, { userId: 'jsc-pub', roles: 'publisher,admin' });
		await a.connect();
		await pub.connect();
		const rooms = [];
		const ticks = [];
		a.on('room_message', (d) => rooms.push(d.content));
		a.on('stream_data', (d) => ticks.push(d.data.price));
		await a.subscribe('jsc-re-room');
		await a.subscribeStream('JSCRE');
		await pub.request('publish_market_data', { symbol: 'JSCRE', data: { price: 1 } });
		await waitFor(() => ticks.includes(1), { what: 'tick 1' });

		const recoveries = [];
		const states = [];
		a.on('recovery', (r) => recoveries.push(r));
		a.on('state', (st) => states.push(st));
		a.ws._socket.destroy(); /* no close frame: the network went away */
		await waitFor(() => states.at(-1) === 'open', { timeoutMs: 5000, what: 'open again' });
		assert.deepEqual(states, ['reconnecting', 'open']);
		assert.equal(recoveries.length, 1, JSON.stringify(recoveries));

		await pub.request('send_message', { room: 'jsc-re-room', content: 'after' });
		await pub.request('publish_market_data', { symbol: 'JSCRE', data: { price: 2 } });
		await waitFor(() => rooms.includes('after') && ticks.includes(2),
			{ what: 'room message and tick after the reconnect' });
		a.close();
		pub.close();
	});
