// Integration test harness: runs the real quotecast binary on a free port and talks to it over
// real sockets (ws/wss, http/https, raw TCP).
//
// Everything that waits has a timeout, so a broken server makes a test fail, never hang.
// The server's stderr is captured; when a test fails, the tail of the stderr of every server
// started by this test file is printed with the failure.

import nodeTest, { before, after, beforeEach, afterEach, describe } from 'node:test';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, readdir, readlink } from 'node:fs/promises';
import net from 'node:net';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';

export { before, after, beforeEach, afterEach, describe, sleep, WebSocket };

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(here, '..', '..', '..');
export const BIN = process.env.QUOTECAST_BIN || path.join(REPO_ROOT, 'build', 'quotecast');

const STDERR_KEEP = 512 * 1024; /* bytes of server output kept in memory */
const STDERR_SHOW = 32 * 1024;  /* bytes shown with a failure */
const DEFAULT_TEST_TIMEOUT_MS = 30000;

/* Every server started by this process, so failures can show their output and exit can kill them. */
const servers = new Set();
/* Every client opened by this process, closed by closeAllClients(). */
const clients = new Set();

process.on('exit', () => {
	for (const s of servers) {
		if (s.exitStatus === null) {
			try {
				s.child.kill('SIGKILL');
			} catch {
				/* already gone */
			}
		}
	}
});

/* ---------------------------------------------------------------- timeouts */

/** withTimeout() - race @promise against a timer; on expiry reject with @what() as message. */
export function withTimeout(promise, ms, what) {
	let timer;
	const t = new Promise((_, reject) => {
		timer = setTimeout(() => {
			reject(new Error(typeof what === 'function' ? what() : `timed out after ${ms} ms: ${what}`));
		}, ms);
	});
	return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

/** waitFor() - poll @fn (sync or async) every @intervalMs until it returns a truthy value. */
export async function waitFor(fn, { timeoutMs = 3000, intervalMs = 50, what = 'condition' } = {}) {
	const deadline = Date.now() + timeoutMs;
	let last;
	let lastErr;
	for (;;) {
		try {
			last = await fn();
			lastErr = undefined;
			if (last)
				return last;
		} catch (e) {
			lastErr = e;
		}
		if (Date.now() >= deadline) {
			const detail = lastErr ? `last error: ${lastErr.message}` : `last value: ${fmt(last)}`;
			throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (${detail})`);
		}
		await sleep(intervalMs);
	}
}

function fmt(v) {
	try {
		const s = JSON.stringify(v);
		return s === undefined ? String(v) : s.length > 2000 ? s.slice(0, 2000) + '...' : s;
	} catch {
		return String(v);
	}
}

/* ---------------------------------------------------------------- test wrapper */

/**
 * test() - node:test's test(), with a default timeout and the servers' stderr attached to
 * failures. Same signatures: test(name, fn), test(name, options, fn).
 */
export function test(name, options, fn) {
	if (typeof options === 'function') {
		fn = options;
		options = {};
	}
	const opts = { timeout: DEFAULT_TEST_TIMEOUT_MS, ...options };
	return nodeTest(name, opts, async (t) => {
		const startedAt = Date.now();
		try {
			return await fn(t);
		} catch (e) {
			reportServers(name, startedAt);
			throw e;
		}
	});
}
test.skip = nodeTest.skip;
test.todo = nodeTest.todo;

/* Print the output of the servers that were running during the failed test. */
function reportServers(name, since) {
	for (const s of servers) {
		if (s.exitedAt !== null && s.exitedAt < since)
			continue;
		const out = s.output();
		const tail = out.length > STDERR_SHOW ? '...\n' + out.slice(-STDERR_SHOW) : out;
		const status = s.exitStatus
			? `exited code=${s.exitStatus.code} signal=${s.exitStatus.signal}` +
				  (s.stopping ? '' : ' (UNEXPECTEDLY)')
			: 'running';
		const text = `--- quotecast ${s.label} (port ${s.port}, ${status}) output, ` +
			`for failed test "${name}" ---\n${tail}\n--- end of quotecast output ---\n`;
		process.stderr.write(text);
	}
}

/* ---------------------------------------------------------------- ports */

/** freePort() - a TCP port that was free a moment ago (bind port 0, read it, close). */
export function freePort() {
	return new Promise((resolve, reject) => {
		const srv = net.createServer();
		srv.unref();
		srv.on('error', reject);
		srv.listen(0, '127.0.0.1', () => {
			const { port } = srv.address();
			srv.close(() => resolve(port));
		});
	});
}

/* ---------------------------------------------------------------- server */

/** Environment of the parent without QUOTECAST_* settings, so only the test's own apply. */
function baseEnv() {
	const env = {};
	for (const [k, v] of Object.entries(process.env)) {
		if (k.startsWith('QUOTECAST_') && k !== 'QUOTECAST_BIN')
			continue;
		env[k] = v;
	}
	delete env.QUOTECAST_BIN;
	/*
	 * Most tests check what a closed connection leaves behind (nothing): they run without
	 * session suspension. The session tests set QUOTECAST_SESSIONS_TTL_S themselves.
	 */
	env.QUOTECAST_SESSIONS_TTL_S = '0';
	return env;
}

export class Server {
	constructor({ bin, port, env, args, tls, label }) {
		this.bin = bin;
		this.port = port;
		this.tls = !!tls;
		this.label = label;
		this.host = '127.0.0.1';
		this.chunks = [];
		this.outLen = 0;
		this.exitStatus = null;
		this.exitedAt = null;
		this.stopping = false;
		this.child = spawn(bin, ['--port', String(port), ...args], {
			env: { ...baseEnv(), ...env },
			stdio: ['ignore', 'pipe', 'pipe'],
		});
		this.exited = new Promise((resolve) => {
			this.child.on('exit', (code, signal) => {
				this.exitStatus = { code, signal };
				this.exitedAt = Date.now();
				resolve(this.exitStatus);
			});
			this.child.on('error', (err) => {
				this.append(`[harness] spawn error: ${err.message}\n`);
				this.exitStatus = { code: null, signal: null, error: err };
				this.exitedAt = Date.now();
				resolve(this.exitStatus);
			});
		});
		this.child.stdout.on('data', (b) => this.append(b.toString('utf8')));
		this.child.stderr.on('data', (b) => this.append(b.toString('utf8')));
		servers.add(this);
	}

	append(s) {
		this.chunks.push(s);
		this.outLen += s.length;
		while (this.outLen > STDERR_KEEP && this.chunks.length > 1)
			this.outLen -= this.chunks.shift().length;
	}

	/** output() - everything the server wrote (stderr and stdout) that is still kept. */
	output() {
		return this.chunks.join('');
	}

	get httpBase() {
		return `${this.tls ? 'https' : 'http'}://${this.host}:${this.port}`;
	}

	/** wsUrl() - ws(s)://host:port/<path>?<query>. */
	wsUrl(p = '/ws', query = {}) {
		const u = new URL(`${this.tls ? 'wss' : 'ws'}://${this.host}:${this.port}${p}`);
		for (const [k, v] of Object.entries(query))
			u.searchParams.set(k, String(v));
		return u.toString();
	}

	async waitReady(timeoutMs = 10000) {
		const deadline = Date.now() + timeoutMs;
		let lastErr = 'no answer yet';
		while (Date.now() < deadline) {
			if (this.exitStatus)
				throw new Error(`quotecast exited before it was ready ` +
					`(code=${this.exitStatus.code} signal=${this.exitStatus.signal}); ` +
					`output:\n${this.output()}`);
			try {
				const r = await httpRequest(this, 'GET', '/healthz', { timeoutMs: 1000 });
				if (r.status === 200)
					return;
				lastErr = `status ${r.status}`;
			} catch (e) {
				lastErr = e.message;
			}
			await sleep(50);
		}
		throw new Error(`quotecast did not answer GET /healthz with 200 within ${timeoutMs} ms ` +
			`(last: ${lastErr}); output:\n${this.output()}`);
	}

	/** signal() - send @sig to the server without waiting. */
	signal(sig) {
		if (!this.exitStatus)
			this.child.kill(sig);
	}

	/**
	 * stop() - SIGTERM (or @signal), wait for the exit, SIGKILL after @timeoutMs.
	 * Resolves with {code, signal, killed}. Idempotent.
	 */
	async stop({ signal = 'SIGTERM', timeoutMs = 10000 } = {}) {
		this.stopping = true;
		if (!this.exitStatus) {
			this.child.kill(signal);
			let timer;
			const killed = await Promise.race([
				this.exited.then(() => false),
				new Promise((resolve) => {
					timer = setTimeout(() => resolve(true), timeoutMs);
				}),
			]);
			clearTimeout(timer);
			if (killed) {
				this.child.kill('SIGKILL');
				await this.exited;
				return { ...this.exitStatus, killed: true };
			}
		}
		await this.exited;
		return { ...this.exitStatus, killed: false };
	}
}

/*
 * freePort() closes its probe socket before quotecast binds, so when test files run in
 * parallel two of them can be handed the same port: the loser exits with a bind error, but its
 * /healthz poll may already have been answered by the winner. So a server counts as started
 * only once its own process is seen holding the listening socket (Linux /proc; elsewhere: it
 * is still alive a moment after it was ready).
 */
/* inodes of the sockets listening on @port (any address, IPv4 or IPv6); null without /proc */
async function listenInodes(port) {
	const out = new Set();
	let seen = false;
	for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
		let text;
		try {
			text = await readFile(f, 'utf8');
		} catch {
			continue;
		}
		seen = true;
		for (const line of text.split('\n').slice(1)) {
			const cols = line.trim().split(/\s+/);
			if (cols.length < 10 || cols[3] !== '0A') /* 0A: LISTEN */
				continue;
			if (parseInt(cols[1].split(':')[1], 16) === port)
				out.add(cols[9]);
		}
	}
	return seen ? out : null;
}

/* whether process @pid holds one of the socket @inodes */
async function holdsOne(pid, inodes) {
	let fds;
	try {
		fds = await readdir(`/proc/${pid}/fd`);
	} catch {
		return false;
	}
	for (const fd of fds) {
		try {
			const link = await readlink(`/proc/${pid}/fd/${fd}`);
			const m = /^socket:\[(\d+)\]$/.exec(link);
			if (m && inodes.has(m[1]))
				return true;
		} catch {
			/* closed meanwhile */
		}
	}
	return false;
}

/** ownsPort() - whether @server's own child process is the one listening on its port. */
export async function ownsPort(server, timeoutMs = 2000) {
	const deadline = Date.now() + timeoutMs;
	for (;;) {
		if (server.exitStatus)
			return false;
		const inodes = await listenInodes(server.port);
		if (inodes === null) {
			await sleep(200);
			return !server.exitStatus;
		}
		if (await holdsOne(server.child.pid, inodes))
			return true;
		if (Date.now() >= deadline)
			return false;
		await sleep(50);
	}
}

/**
 * startServer() - run quotecast on a free port and wait until GET /healthz answers 200.
 * @env: extra environment (QUOTECAST_* settings); @args: extra command-line arguments;
 * @tls: true when the env configures a certificate (health checks then use https).
 */
export async function startServer({ env = {}, args = [], tls = false, label = 'server',
	readyTimeoutMs = 10000 } = {}) {
	if (!existsSync(BIN))
		throw new Error(`quotecast binary not found at ${BIN}: build it (cmake) or set QUOTECAST_BIN`);
	let lastErr;
	for (let attempt = 0; attempt < 5; attempt++) {
		const port = await freePort();
		const s = new Server({ bin: BIN, port, env, args, tls, label });
		try {
			await s.waitReady(readyTimeoutMs);
			if (await ownsPort(s))
				return s;
			throw new Error(`quotecast ${label}: port ${port} was answered by another ` +
				`process (bind race); output:\n${s.output()}`);
		} catch (e) {
			lastErr = e;
			await s.stop({ signal: 'SIGKILL' });
			servers.delete(s);
			/* Another process may have taken the port between freePort() and bind. */
			if (!/in use|EADDRINUSE|bind/i.test(s.output() + String(e)))
				break;
		}
	}
	throw lastErr;
}

/* ---------------------------------------------------------------- HTTP */

/**
 * httpRequest() - one HTTP(S) request on a fresh connection.
 * Resolves {status, headers, text, json} (json undefined when the body is not JSON).
 */
export function httpRequest(server, method, p, { headers = {}, body, timeoutMs = 5000 } = {}) {
	return new Promise((resolve, reject) => {
		const mod = server.tls ? https : http;
		let payload;
		if (body !== undefined)
			payload = Buffer.isBuffer(body) ? body :
				typeof body === 'string' ? Buffer.from(body) : Buffer.from(JSON.stringify(body));
		const h = { ...headers };
		if (payload) {
			h['content-length'] = String(payload.length);
			if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type'))
				h['content-type'] = 'application/json';
		}
		const req = mod.request({
			host: server.host,
			port: server.port,
			method,
			path: p,
			headers: h,
			agent: false,
			rejectUnauthorized: false,
		}, (res) => {
			const chunks = [];
			res.on('data', (c) => chunks.push(c));
			res.on('end', () => {
				clearTimeout(timer);
				const text = Buffer.concat(chunks).toString('utf8');
				let json;
				try {
					json = JSON.parse(text);
				} catch {
					json = undefined;
				}
				resolve({ status: res.statusCode, headers: res.headers, text, json });
			});
			res.on('error', (e) => {
				clearTimeout(timer);
				reject(e);
			});
		});
		const timer = setTimeout(() => {
			req.destroy(new Error(`${method} ${p}: no complete answer within ${timeoutMs} ms`));
		}, timeoutMs);
		req.on('error', (e) => {
			clearTimeout(timer);
			reject(e);
		});
		req.end(payload);
	});
}

/** getStats() - GET /api/stats, asserting 200; returns the document. */
export async function getStats(server, token) {
	const headers = token ? { authorization: `Bearer ${token}` } : {};
	const r = await httpRequest(server, 'GET', '/api/stats', { headers });
	if (r.status !== 200 || !r.json)
		throw new Error(`GET /api/stats: status ${r.status}, body ${r.text}`);
	return r.json;
}

/* ---------------------------------------------------------------- WebSocket client */

/** matches() - @pred is a function, or an object every key of which must match (recursively). */
export function matches(msg, pred) {
	if (typeof pred === 'function')
		return !!pred(msg);
	return subset(msg, pred);
}

function subset(v, pat) {
	if (pat !== null && typeof pat === 'object' && !Array.isArray(pat)) {
		if (v === null || typeof v !== 'object' || Array.isArray(v))
			return false;
		return Object.entries(pat).every(([k, p]) => subset(v[k], p));
	}
	if (Array.isArray(pat))
		return Array.isArray(v) && v.length === pat.length && pat.every((p, i) => subset(v[i], p));
	return v === pat;
}

function describePred(pred) {
	return typeof pred === 'function' ? pred.toString() : JSON.stringify(pred);
}

let requestSeq = 0;

/**
 * takeQueued() - the first item of @queue() that @test accepts, removed from it, as soon as
 * one is there. @owner keeps `waiters` (checks it runs on every arrival and on close) and
 * `describe()`. Rejects when @ended() turns true with nothing matching, or after @timeoutMs;
 * the error says @endedWhat / @timeoutWhat and what did arrive.
 */
export function takeQueued(owner, { queue, test, ended, timeoutMs, endedWhat, timeoutWhat }) {
	return new Promise((resolve, reject) => {
		let timer;
		const finish = () => {
			clearTimeout(timer);
			const i = owner.waiters.indexOf(check);
			if (i >= 0)
				owner.waiters.splice(i, 1);
		};
		const check = () => {
			const q = queue();
			const idx = q.findIndex(test);
			if (idx >= 0) {
				const [item] = q.splice(idx, 1);
				finish();
				resolve(item);
				return true;
			}
			if (ended()) {
				finish();
				reject(new Error(`${endedWhat}; ${owner.describe()}`));
				return true;
			}
			return false;
		};
		if (check())
			return;
		owner.waiters.push(check);
		timer = setTimeout(() => {
			finish();
			reject(new Error(`${timeoutWhat}; ${owner.describe()}`));
		}, timeoutMs);
	});
}

export class Client {
	constructor(ws, label) {
		this.ws = ws;
		this.label = label;
		this.queue = [];     /* received, not yet consumed */
		this.consumed = [];  /* the last consumed messages, for error reports */
		this.waiters = [];
		this.closeInfo = null;
		this.session = null;
		this._closed = new Promise((resolve) => {
			this._resolveClosed = resolve;
		});
		ws.on('message', (data, isBinary) => this._onMessage(data, isBinary));
		ws.on('close', (code, reason) => {
			this.closeInfo = { code, reason: reason.toString('utf8') };
			this._resolveClosed(this.closeInfo);
			this._wake();
		});
		/* Errors after open (e.g. ECONNRESET) end in 'close'; keep them from being unhandled. */
		ws.on('error', (e) => {
			this.lastError = e;
		});
		clients.add(this);
	}

	_onMessage(data, isBinary) {
		const text = Buffer.isBuffer(data) ? data.toString('utf8') :
			Buffer.concat(Array.isArray(data) ? data : [Buffer.from(data)]).toString('utf8');
		let msg;
		try {
			msg = JSON.parse(text);
		} catch {
			msg = { __unparsed: text, __binary: isBinary };
		}
		this.queue.push(msg);
		this._wake();
	}

	_wake() {
		for (const w of [...this.waiters])
			w();
	}

	/** describe() - what arrived so far, for error messages. */
	describe() {
		const pending = this.queue.map(fmt).join('\n    ');
		const seen = this.consumed.slice(-10).map(fmt).join('\n    ');
		const state = this.closeInfo ?
			`closed (code ${this.closeInfo.code}, reason "${this.closeInfo.reason}")` : 'open';
		return `client ${this.label} is ${state}\n  unconsumed messages (${this.queue.length}):\n    ` +
			`${pending || '(none)'}\n  last consumed:\n    ${seen || '(none)'}`;
	}

	/**
	 * next() - the first received message matching @pred (function or object pattern),
	 * removed from the queue. Rejects after @timeoutMs, or as soon as the connection is closed
	 * with no matching message queued, with a list of what did arrive.
	 */
	async next(pred = () => true, timeoutMs = 3000) {
		const what = `no message matching ${describePred(pred)}`;
		const m = await takeQueued(this, {
			queue: () => this.queue, test: (x) => matches(x, pred), ended: () => this.closeInfo,
			timeoutMs, endedWhat: `${what} before the connection closed`,
			timeoutWhat: `${what} within ${timeoutMs} ms`,
		});
		this.consumed.push(m);
		if (this.consumed.length > 50)
			this.consumed.shift();
		return m;
	}


	/**
	 * nothing() - wait @ms, then fail if a message matching @pred (default: any) was received
	 * and not consumed. Does not consume anything.
	 */
	async nothing(pred = () => true, ms = 300) {
		await sleep(ms);
		const hit = this.queue.find((m) => matches(m, pred));
		if (hit !== undefined)
			throw new Error(`client ${this.label} received an unexpected message ${fmt(hit)} ` +
				`(pattern ${describePred(pred)}); ${this.describe()}`);
	}

	/** send() - one JSON text frame. */
	send(obj) {
		this.ws.send(JSON.stringify(obj));
	}

	/** sendRaw() - a string (text frame) or Buffer (binary frame unless opts.binary false). */
	sendRaw(data, opts = {}) {
		this.ws.send(data, opts);
	}

	/**
	 * ask() - send @obj with a fresh request_id (unless it has one) and wait for the response
	 * carrying it.
	 */
	async ask(obj, timeoutMs = 3000) {
		const request_id = obj.request_id ?? `req-${process.pid}-${++requestSeq}`;
		this.send({ ...obj, request_id });
		return this.next({ type: 'response', request_id }, timeoutMs);
	}

	/** request() - {"type":"request","action":@action,"payload":@payload} and its response. */
	request(action, payload, extra = {}, timeoutMs = 3000) {
		const obj = { type: 'request', action, ...extra };
		if (payload !== undefined)
			obj.payload = payload;
		return this.ask(obj, timeoutMs);
	}

	/** subscribe() - subscribe to @room; throws unless it succeeded. */
	async subscribe(room) {
		const r = await this.ask({ type: 'subscribe', room });
		if (r.success !== true)
			throw new Error(`subscribe ${room} failed: ${fmt(r)}`);
		return r;
	}

	async unsubscribe(room) {
		const r = await this.ask({ type: 'unsubscribe', room });
		if (r.success !== true)
			throw new Error(`unsubscribe ${room} failed: ${fmt(r)}`);
		return r;
	}

	/** closed() - resolves {code, reason} when the connection is closed (rejects on timeout). */
	closed(timeoutMs = 5000) {
		return withTimeout(this._closed, timeoutMs,
			() => `connection not closed within ${timeoutMs} ms; ${this.describe()}`);
	}

	get isOpen() {
		return this.ws.readyState === WebSocket.OPEN;
	}

	/** close() - a normal close, waiting (bounded) until the server has answered it. */
	async close(code = 1000) {
		if (this.closeInfo)
			return this.closeInfo;
		try {
			this.ws.close(code);
			return await this.closed(3000);
		} catch {
			this.ws.terminate();
			return this.closeInfo;
		} finally {
			clients.delete(this);
		}
	}

	terminate() {
		this.ws.terminate();
		clients.delete(this);
	}
}

/**
 * openWs() - start a WebSocket handshake. Resolves {ws} when open, or {status, body} when the
 * server answered the upgrade with an HTTP response; rejects on other errors or timeout.
 */
export function openWs(server, { path: p = '/ws', query = {}, headers = {}, timeoutMs = 5000,
	wsOptions = {} } = {}) {
	const url = server.wsUrl(p, query);
	return new Promise((resolve, reject) => {
		const ws = new WebSocket(url, {
			headers,
			rejectUnauthorized: false,
			handshakeTimeout: timeoutMs,
			...wsOptions,
		});
		/* Frames can follow the 101 in the same segment: collect from the start. */
		const early = new Client(ws, `${query.user_id ?? 'anon'}@${url}`);
		let done = false;
		const timer = setTimeout(() => {
			if (done)
				return;
			done = true;
			ws.terminate();
			clients.delete(early);
			reject(new Error(`WebSocket handshake to ${url} not done within ${timeoutMs} ms`));
		}, timeoutMs + 500);
		ws.once('open', () => {
			if (done)
				return;
			done = true;
			clearTimeout(timer);
			resolve({ client: early });
		});
		ws.once('unexpected-response', (req, res) => {
			const chunks = [];
			res.on('data', (c) => chunks.push(c));
			const fin = () => {
				if (done)
					return;
				done = true;
				clearTimeout(timer);
				clients.delete(early);
				req.destroy();
				resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') });
			};
			res.on('end', fin);
			res.on('error', fin);
			res.on('close', fin);
		});
		ws.once('error', (e) => {
			if (done)
				return;
			done = true;
			clearTimeout(timer);
			clients.delete(early);
			reject(new Error(`WebSocket handshake to ${url} failed: ${e.message}`));
		});
	});
}

/**
 * upgradeStatus() - try a WebSocket upgrade and report the HTTP status: 101 when it was
 * accepted (the connection is then terminated at once), else the refusal's status.
 */
export async function upgradeStatus(server, opts = {}) {
	const r = await openWs(server, opts);
	if (r.client) {
		r.client.terminate();
		return 101;
	}
	return r.status;
}

/**
 * connect() - open /ws (or @path) with @query, wait for the session event (unless
 * @session is false) and return the Client, its session data in client.session.
 */
export async function connect(server, { path: p = '/ws', query = {}, headers = {},
	session = true, timeoutMs = 5000, wsOptions = {} } = {}) {
	const r = await openWs(server, { path: p, query, headers, timeoutMs, wsOptions });
	if (!r.client)
		throw new Error(`WebSocket upgrade to ${p} refused: HTTP ${r.status} ${r.body}`);
	const c = r.client;
	if (session) {
		const ev = await c.next({ type: 'event', event: 'session' }, timeoutMs);
		c.session = ev.data;
	}
	return c;
}

/** closeAllClients() - close every client still open (for after hooks). */
export async function closeAllClients() {
	const all = [...clients];
	await Promise.all(all.map((c) => c.close().catch(() => c.terminate())));
	clients.clear();
}

/**
 * stopServer() - for after hooks: close the clients, stop @server with SIGTERM and return its
 * exit status; throws when it did not exit with code 0 (this catches sanitizer reports at exit).
 */
export async function stopServer(server) {
	if (!server)
		return null;
	await closeAllClients();
	const st = await server.stop();
	if (st.code !== 0) {
		const out = server.output();
		throw new Error(`quotecast ${server.label} did not exit cleanly after SIGTERM ` +
			`(code=${st.code} signal=${st.signal} killed=${st.killed}); output:\n` +
			(out.length > STDERR_SHOW ? '...' + out.slice(-STDERR_SHOW) : out));
	}
	return st;
}

/**
 * stoppedAfterEach() - the array a test file puts the servers it starts in: after each test,
 * every client is closed and every server in it stopped (and taken out).
 */
export function stoppedAfterEach() {
	const servers = [];
	afterEach(async () => {
		await closeAllClients();
		for (const s of servers.splice(0))
			await stopServer(s);
	});
	return servers;
}

/* ---------------------------------------------------------------- raw WebSocket over TCP */

/**
 * rawHandshake() - open a TCP connection and do the WebSocket upgrade by hand. Returns
 * {socket, status, headers, rest} where rest holds bytes received after the HTTP head.
 * The caller owns the socket (destroy it). Nothing is ever sent after the handshake.
 */
export function rawHandshake(server, { path: p = '/ws', timeoutMs = 5000 } = {}) {
	return new Promise((resolve, reject) => {
		const socket = net.connect({ host: server.host, port: server.port });
		let buf = Buffer.alloc(0);
		const timer = setTimeout(() => {
			socket.destroy();
			reject(new Error(`raw handshake: no HTTP answer within ${timeoutMs} ms`));
		}, timeoutMs);
		const onData = (d) => {
			buf = Buffer.concat([buf, d]);
			const end = buf.indexOf('\r\n\r\n');
			if (end < 0)
				return;
			clearTimeout(timer);
			socket.off('data', onData);
			socket.pause();
			const head = buf.subarray(0, end).toString('latin1').split('\r\n');
			const status = Number(head[0].split(' ')[1]);
			const headers = {};
			for (const line of head.slice(1)) {
				const i = line.indexOf(':');
				if (i > 0)
					headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
			}
			resolve({ socket, status, headers, rest: buf.subarray(end + 4) });
		};
		socket.on('data', onData);
		socket.once('error', (e) => {
			clearTimeout(timer);
			reject(e);
		});
		socket.once('connect', () => {
			const key = Buffer.from(Array.from({ length: 16 }, () => Math.floor(Math.random() * 256)))
				.toString('base64');
			socket.write(`GET ${p} HTTP/1.1\r\nHost: ${server.host}:${server.port}\r\n` +
				`Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\n` +
				`Sec-WebSocket-Version: 13\r\n\r\n`);
		});
	});
}

/**
 * parseServerFrames() - split unmasked server frames off the front of @buf.
 * Returns {frames: [{fin, opcode, payload}], rest}.
 */
export function parseServerFrames(buf) {
	const frames = [];
	let off = 0;
	for (;;) {
		if (buf.length - off < 2)
			break;
		const b0 = buf[off];
		const b1 = buf[off + 1];
		let len = b1 & 0x7f;
		let hdr = 2;
		if (len === 126) {
			if (buf.length - off < 4)
				break;
			len = buf.readUInt16BE(off + 2);
			hdr = 4;
		} else if (len === 127) {
			if (buf.length - off < 10)
				break;
			len = Number(buf.readBigUInt64BE(off + 2));
			hdr = 10;
		}
		if (b1 & 0x80)
			hdr += 4; /* a masked server frame is a protocol error; skip the key anyway */
		if (buf.length - off < hdr + len)
			break;
		frames.push({ fin: !!(b0 & 0x80), opcode: b0 & 0x0f,
			payload: buf.subarray(off + hdr, off + hdr + len) });
		off += hdr + len;
	}
	return { frames, rest: buf.subarray(off) };
}
