// quotecast.js: the reference client for quotecast's native protocol (docs/protocol.md).
// One ES module, no dependencies; browsers and Node 18+ (pass `WebSocket` from the `ws`
// package where there is no global one). Served by the server at GET /client/quotecast.js.
//
//   import { QuotecastClient } from '/client/quotecast.js';
//   const qc = new QuotecastClient({ url: 'wss://example.com/ws', token });
//   qc.on('stream_data', (d) => console.log(d.symbol, d.data));
//   await qc.connect();
//   await qc.subscribeStream(['AAPL', 'MSFT'], { fields: ['price'] });
//   await qc.subscribe('chat');
//   await qc.request('send_message', { room: 'chat', content: 'hi' });
//
// What it does for you:
// - requests as promises (`request_id` matched to its `response`), rejected with an Error
//   whose `code` is the server's error code (or DISCONNECTED / TIMEOUT);
// - events by name (`on(name, fn)`; '*' gets every message), plus 'state' (connecting,
//   open, reconnecting, closed) and 'recovery' (what a reconnect recovered, per log);
// - automatic reconnect with exponential backoff and full jitter. It tracks the position
//   (seq + epoch) of everything it has handed to your handlers: each market stream, each room,
//   and the user's inbox (direct messages, alerts, offline deliveries). After a drop it opens a
//   new connection (its URL carries the inbox position) and sends `resume` with those
//   positions as its first request, so the server sends exactly what came after them (SPEC
//   2.9). If the session is gone (expired, server restarted) it keeps the new one, whose inbox
//   was read back from the position on the upgrade, and subscribes its rooms and streams
//   again, asking each log to read back from its position; what could not be recovered is
//   reported with `recovered:false` in the 'recovery' event (streams then get a snapshot).

const STATES = ['idle', 'connecting', 'open', 'reconnecting', 'closed'];

/* Events whose position is the user's inbox rather than a room's. */
const INBOX_EVENTS = new Set(['direct_message', 'alert']);
/* Room events: they carry the room's seq and epoch. */
const ROOM_EVENTS = new Set(['room_message', 'member_joined', 'member_left', 'kicked',
	'room_closed']);

export class QuotecastError extends Error {
	constructor(code, message, data) {
		super(message || code);
		this.name = 'QuotecastError';
		this.code = code;
		if (data !== undefined)
			this.data = data;
	}
}

export class QuotecastClient {
	/**
	 * @param {object} opts
	 * @param {string} opts.url            ws(s)://host:port/ws
	 * @param {string} [opts.token]        a JWT (auth mode jwt), sent as ?token=
	 * @param {string} [opts.userId]       auth mode none: ?user_id=
	 * @param {string|string[]} [opts.roles] auth mode none: ?roles=
	 * @param {Function} [opts.WebSocket]  a WebSocket constructor (default: the global one)
	 * @param {boolean} [opts.reconnect=true]
	 * @param {number} [opts.minDelayMs=250]  first reconnect delay (before jitter)
	 * @param {number} [opts.maxDelayMs=15000]
	 * @param {number} [opts.requestTimeoutMs=10000]
	 */
	constructor(opts = {}) {
		if (!opts.url)
			throw new TypeError('QuotecastClient: url is required');
		this.opts = { reconnect: true, minDelayMs: 250, maxDelayMs: 15000,
			requestTimeoutMs: 10000, ...opts };
		this.WS = opts.WebSocket || globalThis.WebSocket;
		if (!this.WS)
			throw new TypeError('QuotecastClient: no WebSocket: pass opts.WebSocket');
		this.state = 'idle';
		this.session = null;       /* the last session event's data */
		this.handlers = new Map(); /* name -> Set of fns */
		this.pending = new Map();  /* request_id -> {resolve, reject, timer} */
		this.nextId = 0;
		this.ws = null;
		this.attempt = 0;
		this.timer = null;
		/* what to restore on a new session: rooms (with passwords) and streams (with options) */
		this.rooms = new Map();   /* room -> {password} */
		this.streams = new Map(); /* symbol -> {fields, max_hz} */
		/* positions of what the handlers were given */
		this.positions = { streams: {}, rooms: {}, inbox: null };
		this.holding = null; /* events held while a resume is answered */
		this.resumeId = null;
	}

	/* ---------------------------------------------------------------- events */

	/** on() - call @fn for every event named @name; returns a function that removes it. */
	on(name, fn) {
		if (!this.handlers.has(name))
			this.handlers.set(name, new Set());
		this.handlers.get(name).add(fn);
		return () => this.off(name, fn);
	}

	off(name, fn) {
		this.handlers.get(name)?.delete(fn);
	}

	emit(name, ...args) {
		for (const fn of this.handlers.get(name) ?? []) {
			try {
				fn(...args);
			} catch (e) {
				setTimeout(() => {
					throw e;
				});
			}
		}
	}

	setState(s) {
		if (this.state === s)
			return;
		this.state = s;
		this.emit('state', s);
	}

	/* ---------------------------------------------------------------- connection */

	/** connect() - open the first connection; resolves with the session event's data. */
	connect() {
		if (this.state !== 'idle' && this.state !== 'closed')
			return Promise.reject(new QuotecastError('BAD_STATE', `already ${this.state}`));
		this.closedByUser = false;
		return this.open(false);
	}

	/** close() - close for good (no reconnect). */
	close(code = 1000) {
		this.closedByUser = true;
		clearTimeout(this.timer);
		this.timer = null;
		if (this.ws && this.ws.readyState <= 1)
			this.ws.close(code);
		this.failPending('DISCONNECTED', 'client closed');
		this.setState('closed');
	}

	/*
	 * The upgrade URL. On a reconnect (@again) it carries the inbox position: should the
	 * session be gone (expired, the server restarted), the fresh one reads the inbox back
	 * from it before anything else (SPEC 2.9); if the resume succeeds, that read-back is held
	 * and dropped like any event that reached the fresh session.
	 */
	url(again = false) {
		const u = new URL(this.opts.url);
		const inbox = again ? this.positions.inbox : null;
		if (inbox && inbox.epoch) {
			u.searchParams.set('inbox_seq', String(inbox.seq));
			u.searchParams.set('inbox_epoch', inbox.epoch);
		}
		if (this.opts.token)
			u.searchParams.set('token', this.opts.token);
		if (this.opts.userId)
			u.searchParams.set('user_id', this.opts.userId);
		if (this.opts.roles)
			u.searchParams.set('roles', [].concat(this.opts.roles).join(','));
		return u.toString();
	}

	/*
	 * One connection attempt. On a reconnect (@again) the first request is `resume` with the
	 * positions; if the server no longer has the session, the client's rooms and streams are
	 * subscribed again with their positions.
	 */
	open(again) {
		this.setState(again ? 'reconnecting' : 'connecting');
		return new Promise((resolve, reject) => {
			let settled = false;
			const ws = new this.WS(this.url(again));
			this.ws = ws;
			const fail = (e) => {
				if (settled)
					return;
				settled = true;
				reject(e);
			};
			ws.onmessage = (ev) => {
				const text = typeof ev.data === 'string' ? ev.data : String(ev.data);
				for (const line of text.split('\n')) {
					if (!line)
						continue;
					let m;
					try {
						m = JSON.parse(line);
					} catch {
						continue;
					}
					if (m.type === 'event' && m.event === 'session' && !settled) {
						settled = true;
						this.onFirstSession(m.data, again).then(resolve, (e) => {
							reject(e);
							this.dropped(ws);
						});
						continue;
					}
					this.dispatch(m);
				}
			};
			ws.onclose = (ev) => {
				fail(new QuotecastError('DISCONNECTED',
					`connection closed (${ev.code}${ev.reason ? ` ${ev.reason}` : ''})`));
				if (this.ws === ws)
					this.dropped(ws, ev.code);
			};
			ws.onerror = () => {};
		});
	}

	async onFirstSession(session, again) {
		this.session = session;
		if (!again) {
			this.resumeToken = session.resume_token;
			this.attempt = 0;
			this.setState('open');
			this.emit('session', session);
			return session;
		}
		/* a fresh session on a new socket: take the old one over with our positions */
		const token = this.resumeToken;
		let r;
		/*
		 * The fresh session is our user's until the resume takes over: a direct message, an
		 * alert or a snapshot can reach it meanwhile. Hold such events; dispatch() drops them
		 * when the resume succeeds (the read-back brings them again, in their place) and plays
		 * them when it fails, deciding as the answer arrives (the replay may follow in the same
		 * read).
		 */
		this.holding = [];
		try {
			r = await this.send({ type: 'resume', token, positions: this.positionsForResume() },
				true, (id) => {
					this.resumeId = id;
				});
		} catch (e) {
			this.holding = null;
			if (e.code === 'DISCONNECTED' || e.code === 'TIMEOUT')
				throw e;
			r = null; /* the session is gone: keep this new one and restore onto it */
		}
		if (r) {
			this.session = { ...session, ...r, resumed: true };
			this.resumeToken = r.resume_token;
			this.attempt = 0;
			this.setState('open');
			this.emit('session', this.session);
			this.emit('recovery', r);
			return this.session;
		}
		this.resumeToken = session.resume_token;
		const report = await this.restore(session);
		this.attempt = 0;
		this.setState('open');
		this.emit('session', session);
		this.emit('recovery', report);
		return session;
	}

	/*
	 * The rooms and streams this client had, subscribed again on a new session. The inbox was
	 * read back on the upgrade: @session.inbox says how that went.
	 */
	async restore(session) {
		const report = { resumed: false, recovered: true, streams: {}, rooms: {} };
		if (this.positions.inbox) {
			const ok = session?.inbox?.recovered === true;
			report.inbox = { recovered: ok };
			report.recovered &&= ok;
		}
		for (const [room, o] of this.rooms) {
			const pos = this.positions.rooms[room];
			const p = { room };
			if (o.password)
				p.password = o.password;
			if (pos) {
				p.since_seq = pos.seq;
				p.epoch = pos.epoch;
			}
			try {
				const d = await this.send({ type: 'subscribe', ...p }, true);
				const ok = !pos || d?.recovered === true;
				report.rooms[room] = { recovered: ok };
				report.recovered &&= ok;
			} catch (e) {
				report.rooms[room] = { recovered: false, error: e.code };
				report.recovered = false;
			}
		}
		for (const [symbol, o] of this.streams) {
			const pos = this.positions.streams[symbol];
			const p = { symbol, ...o };
			if (pos && pos.epoch !== undefined) {
				p.since_seq = pos.seq;
				p.epoch = pos.epoch;
			}
			try {
				const d = await this.request('subscribe_market_stream', p);
				const ok = !pos || d?.recovered === true;
				report.streams[symbol] = { recovered: ok };
				report.recovered &&= ok;
			} catch (e) {
				report.streams[symbol] = { recovered: false, error: e.code };
				report.recovered = false;
			}
		}
		return report;
	}

	positionsForResume() {
		const out = { streams: {}, rooms: {} };
		for (const [k, v] of Object.entries(this.positions.streams))
			out.streams[k] = { seq: v.seq, epoch: v.epoch };
		for (const [k, v] of Object.entries(this.positions.rooms))
			out.rooms[k] = { seq: v.seq, epoch: v.epoch };
		if (this.positions.inbox)
			out.inbox = { ...this.positions.inbox };
		return out;
	}

	dropped(ws, code) {
		if (ws !== this.ws)
			return;
		this.ws = null;
		this.holding = null;
		this.failPending('DISCONNECTED', `connection lost (${code ?? 'error'})`);
		if (this.closedByUser || !this.opts.reconnect || code === 4001 || !this.resumeToken) {
			this.setState('closed');
			this.emit('close', { code });
			return;
		}
		this.setState('reconnecting');
		this.schedule();
	}

	/* Exponential backoff with full jitter: uniform in [0, min(max, min * 2^attempt)]. */
	schedule() {
		const cap = Math.min(this.opts.maxDelayMs, this.opts.minDelayMs * 2 ** this.attempt);
		const delay = Math.random() * cap;
		this.attempt = Math.min(this.attempt + 1, 30);
		clearTimeout(this.timer);
		this.timer = setTimeout(() => {
			this.timer = null;
			this.open(true).catch(() => {
				/* dropped() has scheduled the next try */
			});
		}, delay);
	}

	failPending(code, message) {
		for (const [, p] of this.pending) {
			clearTimeout(p.timer);
			p.reject(new QuotecastError(code, message));
		}
		this.pending.clear();
	}

	/* ---------------------------------------------------------------- incoming */

	/* Remember the position of an event that is about to reach the handlers. */
	track(m) {
		const d = m.data;
		if (!d || typeof d !== 'object' || typeof d.seq !== 'number')
			return;
		if (m.event === 'stream_data') {
			const cur = this.positions.streams[d.symbol];
			if (!cur || d.epoch !== cur.epoch || d.seq > cur.seq)
				this.positions.streams[d.symbol] = { seq: d.seq, epoch: d.epoch };
		} else if (d.offline === true || INBOX_EVENTS.has(m.event)) {
			this.positions.inbox = { seq: d.seq, epoch: d.epoch };
		} else if (ROOM_EVENTS.has(m.event) && d.room) {
			this.positions.rooms[d.room] = { seq: d.seq, epoch: d.epoch };
		}
	}

	dispatch(m) {
		if (m.type === 'response' && this.holding && m.request_id === this.resumeId) {
			const held = this.holding;
			this.holding = null;
			this.resumeId = null;
			if (!m.success)
				for (const e of held)
					this.dispatch(e);
		}
		if (m.type === 'event' && this.holding) {
			this.holding.push(m);
			return;
		}
		if (m.type === 'response') {
			const p = this.pending.get(m.request_id);
			if (!p)
				return;
			this.pending.delete(m.request_id);
			clearTimeout(p.timer);
			if (m.success)
				p.resolve(m.data);
			else
				p.reject(new QuotecastError(m.error?.code ?? 'INTERNAL', m.error?.message,
					m.error));
			return;
		}
		if (m.type === 'event') {
			if (m.event === 'session')
				this.resumeToken = m.data.resume_token;
			this.track(m);
			if ((m.event === 'kicked' || m.event === 'room_closed') && m.data?.room)
				this.rooms.delete(m.data.room);
			this.emit(m.event, m.data, m);
		} else if (m.type === 'error') {
			this.emit('error', new QuotecastError(m.error?.code ?? 'INTERNAL', m.error?.message));
		}
		this.emit('*', m);
	}

	/* ---------------------------------------------------------------- requests */

	/*
	 * Send @msg with a fresh request_id and wait for its response. @early: allowed while the
	 * connection is not yet 'open' (the resume and restore steps).
	 */
	send(msg, early = false, onId = null) {
		const ws = this.ws;
		if (!ws || ws.readyState !== 1 || (!early && this.state !== 'open'))
			return Promise.reject(new QuotecastError('DISCONNECTED', 'not connected'));
		const request_id = `q${++this.nextId}`;
		onId?.(request_id);
		return new Promise((resolve, reject) => {
			const timer = setTimeout(() => {
				this.pending.delete(request_id);
				reject(new QuotecastError('TIMEOUT', `${msg.action ?? msg.type}: no answer`));
			}, this.opts.requestTimeoutMs);
			this.pending.set(request_id, { resolve, reject, timer });
			ws.send(JSON.stringify({ ...msg, request_id }));
		});
	}

	/** request() - an action (docs/protocol.md); resolves with the response's data. */
	request(action, payload = {}) {
		return this.send({ type: 'request', action, payload }, this.state === 'reconnecting');
	}

	/** subscribe() - join @room (and keep it across reconnects). */
	async subscribe(room, { password } = {}) {
		const msg = { type: 'subscribe', room };
		if (password)
			msg.password = password;
		const d = await this.send(msg);
		this.rooms.set(room, { password });
		return d;
	}

	async unsubscribe(room) {
		this.rooms.delete(room);
		delete this.positions.rooms[room];
		return this.send({ type: 'unsubscribe', room });
	}

	/** subscribeStream() - subscribe market streams, kept across reconnects. */
	async subscribeStream(symbols, { fields, max_hz: maxHz, snapshot } = {}) {
		const list = [].concat(symbols);
		const p = { symbols: list };
		if (fields)
			p.fields = fields;
		if (maxHz)
			p.max_hz = maxHz;
		if (snapshot === false)
			p.snapshot = false;
		const d = await this.request('subscribe_market_stream', p);
		for (const s of list) {
			const o = {};
			if (fields)
				o.fields = fields;
			if (maxHz)
				o.max_hz = maxHz;
			this.streams.set(s, o);
		}
		return d;
	}

	async unsubscribeStream(symbols) {
		const list = [].concat(symbols);
		for (const s of list) {
			this.streams.delete(s);
			delete this.positions.streams[s];
		}
		return this.request('unsubscribe_market_stream', { symbols: list });
	}

	/** ping() - a protocol-level heartbeat; resolves with the round trip in ms. */
	ping() {
		const t0 = Date.now();
		return new Promise((resolve, reject) => {
			if (!this.ws || this.ws.readyState !== 1) {
				reject(new QuotecastError('DISCONNECTED', 'not connected'));
				return;
			}
			const off = this.on('*', (m) => {
				if (m.type === 'pong' && m.timestamp === t0) {
					off();
					resolve(Date.now() - t0);
				}
			});
			this.ws.send(JSON.stringify({ type: 'ping', timestamp: t0 }));
		});
	}
}

export { STATES };
export default QuotecastClient;
