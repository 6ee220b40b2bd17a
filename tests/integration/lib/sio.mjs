// Helpers for the Socket.IO tests: a real socket.io-client (websocket transport only) wrapped
// so that received events can be awaited like harness.mjs' Client messages, and a raw `ws`
// client on /socket.io/ that sees the Engine.IO / Socket.IO packets as text. Built on
// harness.mjs, which it does not change.

import { io } from 'socket.io-client';
import { WebSocket, withTimeout, matches, sleep, takeQueued } from './harness.mjs';

/* Every socket opened here, closed by closeAllSio(). */
const opened = new Set();

const fmt = (v) => {
	try {
		const s = JSON.stringify(v);
		return s === undefined ? String(v) : s.length > 1500 ? s.slice(0, 1500) + '...' : s;
	} catch {
		return String(v);
	}
};

/**
 * SioClient - a socket.io-client socket whose incoming events ({event, args}) are queued so
 * tests can wait for them in any order.
 */
export class SioClient {
	constructor(socket, label) {
		this.socket = socket;
		this.label = label;
		this.queue = [];
		this.waiters = [];
		this.disconnectReason = null;
		socket.onAny((event, ...args) => {
			this.queue.push({ event, args });
			this._wake();
		});
		socket.on('disconnect', (reason) => {
			this.disconnectReason = reason;
			this._wake();
		});
		opened.add(this);
	}

	_wake() {
		for (const w of [...this.waiters])
			w();
	}

	describe() {
		const state = this.socket.connected ? 'connected' :
			`not connected (disconnect reason: ${this.disconnectReason})`;
		return `socket.io client ${this.label} is ${state}; unconsumed events: ` +
			(this.queue.map(fmt).join(', ') || '(none)');
	}

	/**
	 * next() - the first received event named @event whose first argument matches @pred
	 * (function or object pattern, as harness.mjs' matches()); resolves that argument.
	 */
	async next(event, pred = () => true, timeoutMs = 3000) {
		const e = await takeQueued(this, {
			queue: () => this.queue,
			test: (x) => x.event === event && matches(x.args[0], pred),
			ended: () => this.disconnectReason, timeoutMs,
			endedWhat: `no "${event}" event before the disconnect`,
			timeoutWhat: `no "${event}" event matching ${typeof pred === 'function' ?
				pred.toString() : fmt(pred)} within ${timeoutMs} ms`,
		});
		return e.args[0];
	}


	/** nothing() - wait @ms, then fail if an event named @event (default: any) arrived. */
	async nothing(event, ms = 300) {
		await sleep(ms);
		const hit = this.queue.find((e) => event === undefined || e.event === event);
		if (hit)
			throw new Error(`unexpected event ${fmt(hit)}; ${this.describe()}`);
	}

	/** ack() - emit @event with @arg asking for an ack; resolves the ack's first argument. */
	ack(event, arg, timeoutMs = 3000) {
		return this.socket.timeout(timeoutMs).emitWithAck(event, arg);
	}

	emit(event, ...args) {
		this.socket.emit(event, ...args);
	}

	close() {
		this.socket.disconnect();
		opened.delete(this);
	}
}

function ioSocket(server, { nsp = '/', auth, transports = ['websocket'], opts = {} } = {}) {
	return io(`${server.httpBase}${nsp}`, {
		transports,
		reconnection: false,
		forceNew: true,
		timeout: 5000,
		...(auth !== undefined ? { auth } : {}),
		...opts,
	});
}

/**
 * sioConnect() - connect a socket.io-client to @server (websocket transport) with @auth;
 * resolves the SioClient once connected, rejects on connect_error or timeout.
 */
export function sioConnect(server, { auth, nsp, timeoutMs = 5000, label, opts } = {}) {
	const socket = ioSocket(server, { nsp, auth, opts });
	const c = new SioClient(socket, label ?? fmt(auth ?? 'anon'));
	return withTimeout(new Promise((resolve, reject) => {
		socket.once('connect', () => resolve(c));
		socket.once('connect_error', (e) => {
			c.close();
			reject(new Error(`socket.io connect_error: ${e.message}`));
		});
	}), timeoutMs, () => `socket.io client did not connect within ${timeoutMs} ms`)
		.catch((e) => {
			c.close();
			throw e;
		});
}

/**
 * sioConnectError() - connect with options that must fail; resolves the connect_error's
 * Error (rejects when the socket connects or nothing happens within @timeoutMs).
 */
export function sioConnectError(server, { auth, nsp, transports, timeoutMs = 5000, opts } = {}) {
	const socket = ioSocket(server, { nsp, auth, transports, opts });
	return withTimeout(new Promise((resolve, reject) => {
		socket.once('connect', () => reject(new Error('socket.io client connected')));
		socket.once('connect_error', (e) => resolve(e));
	}), timeoutMs, () => `no connect_error within ${timeoutMs} ms`).finally(() => {
		socket.disconnect();
	});
}

/**
 * RawSio - a plain WebSocket on /socket.io/ that keeps every text frame as a string, for
 * tests that speak Engine.IO / Socket.IO packets by hand.
 */
export class RawSio {
	constructor(ws) {
		this.ws = ws;
		this.frames = [];
		this.seen = [];
		this.waiters = [];
		this.closeInfo = null;
		this.closedAt = null;
		this._closed = new Promise((resolve) => {
			ws.on('close', (code, reason) => {
				this.closeInfo = { code, reason: reason.toString('utf8') };
				this.closedAt = Date.now();
				resolve(this.closeInfo);
				this._wake();
			});
		});
		ws.on('message', (data, isBinary) => {
			this.frames.push(isBinary ? data : data.toString('utf8'));
			this._wake();
		});
		ws.on('error', (e) => {
			this.lastError = e;
		});
		opened.add(this);
	}

	_wake() {
		for (const w of [...this.waiters])
			w();
	}

	describe() {
		const state = this.closeInfo ? `closed (${this.closeInfo.code} "${this.closeInfo.reason}")` :
			'open';
		return `raw /socket.io/ client is ${state}; unconsumed frames: ` +
			(this.frames.map(fmt).join(', ') || '(none)') + '; last consumed: ' +
			(this.seen.slice(-5).map(fmt).join(', ') || '(none)');
	}

	/**
	 * next() - the first frame matching @pred (a string: that exact frame; a RegExp; or a
	 * function), removed from the queue.
	 */
	async next(pred = () => true, timeoutMs = 3000) {
		const test = typeof pred === 'string' ? (f) => f === pred :
			pred instanceof RegExp ? (f) => typeof f === 'string' && pred.test(f) : pred;
		const f = await takeQueued(this, {
			queue: () => this.frames, test, ended: () => this.closeInfo, timeoutMs,
			endedWhat: `no frame matching ${String(pred)} before the close`,
			timeoutWhat: `no frame matching ${String(pred)} within ${timeoutMs} ms`,
		});
		this.seen.push(f);
		return f;
	}


	/** event() - the next `42["@name",arg]` frame's arg (parsed). */
	async event(name, timeoutMs = 3000) {
		const f = await this.next((x) => typeof x === 'string' && x.startsWith(`42["${name}"`),
			timeoutMs);
		return JSON.parse(f.slice(2))[1];
	}

	send(text, opts) {
		this.ws.send(text, opts);
	}

	get isOpen() {
		return this.ws.readyState === WebSocket.OPEN;
	}

	closed(timeoutMs = 5000) {
		return withTimeout(this._closed, timeoutMs,
			() => `connection not closed within ${timeoutMs} ms; ${this.describe()}`);
	}

	close() {
		if (!this.closeInfo)
			this.ws.terminate();
		opened.delete(this);
	}
}

/**
 * rawSio() - open a WebSocket to @server's /socket.io/ with @query; resolves the RawSio once
 * open (the Engine.IO open packet is then its first frame), rejects when refused.
 */
export function rawSio(server, { query = { EIO: 4, transport: 'websocket' }, timeoutMs = 5000 } =
	{}) {
	const ws = new WebSocket(server.wsUrl('/socket.io/', query), { handshakeTimeout: timeoutMs });
	const c = new RawSio(ws);
	return new Promise((resolve, reject) => {
		ws.once('open', () => resolve(c));
		ws.once('unexpected-response', (req, res) => {
			c.close();
			req.destroy();
			reject(new Error(`upgrade refused: HTTP ${res.statusCode}`));
		});
		ws.once('error', (e) => {
			c.close();
			reject(e);
		});
	});
}

/**
 * rawSioConnected() - rawSio(), then the handshake by hand: wait for the Engine.IO open
 * packet, send `40` + @auth, wait for `40{"sid":...}` and the session event. Resolves
 * {c, open, session}.
 */
export async function rawSioConnected(server, auth) {
	const c = await rawSio(server);
	const open = JSON.parse((await c.next(/^0\{/)).slice(1));
	c.send(auth === undefined ? '40' : `40${JSON.stringify(auth)}`);
	await c.next(/^40\{"sid":"[0-9a-f]{32}"\}$/);
	const session = await c.event('session');
	return { c, open, session };
}

/** closeAllSio() - close every socket.io and raw client still open (for after hooks). */
export async function closeAllSio() {
	for (const c of [...opened])
		c.close();
	opened.clear();
	await sleep(50);
}
