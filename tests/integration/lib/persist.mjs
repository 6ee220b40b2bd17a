// Helpers for the persistence tests (PostgreSQL store: persist, store_outage, alerts; SPEC 2.4,
// 2.7, 2.8, issue 6): a server on a database and its restart on the same database, requests
// that must succeed or fail with a given code, ticks, round trips, /readyz and the store stats,
// and byte-exact comparisons of what a table holds. Built on harness.mjs and pg.mjs, which it
// does not change.

import assert from 'node:assert/strict';
import { connect, getStats, httpRequest, startServer, stopServer, waitFor } from
	'./harness.mjs';
import { psql } from './pg.mjs';

let seq = 0;

/** unique() - a fresh name (user id, room, symbol) so tests sharing a server never collide. */
export const unique = (prefix) => `${prefix}${process.pid}x${++seq}`;

/** ev() - pattern for an event @event with @data keys. */
export const ev = (event, data = {}) => ({ type: 'event', event, data });

const show = (v) => JSON.stringify(v);

/* Generous limits: these tests send bursts and some bad requests on purpose. */
const BASE_ENV = {
	QUOTECAST_LIMITS_RATE_PER_S: '100000',
	QUOTECAST_LIMITS_RATE_BURST: '100000',
	QUOTECAST_LIMITS_MAX_BAD_MESSAGES: '1000',
	/* room passwords are checked back to back: no server-wide budget for them (issue 11) */
	QUOTECAST_ROOMS_PASSWORD_HASHES_PER_S: '100000',
};

/**
 * startOnDb() - quotecast with `--db @url` (it connects, migrates and loads before it
 * serves). @env is added to the generous rate limits above.
 */
export function startOnDb(url, { env = {}, label = 'persist', args = [] } = {}) {
	return startServer({ label, env: { ...BASE_ENV, ...env }, args: ['--db', url, ...args] });
}

/**
 * serverSet() - servers of one test file: up() starts one on a database (with @defaults
 * under the test's own options), down() stops it (it must exit 0), bounce() restarts it on
 * the same database, cleanup() (for afterEach) stops what a failed test left running.
 */
export function serverSet(defaults = {}) {
	let live = [];
	const set = {
		async up(url, opts = {}) {
			const s = await startOnDb(url, { ...defaults, ...opts,
				env: { ...defaults.env, ...opts.env } });
			live.push(s);
			return s;
		},
		async down(s) {
			live = live.filter((x) => x !== s);
			await stopServer(s);
		},
		async bounce(s, url, opts) {
			await set.down(s);
			return set.up(url, opts);
		},
		async cleanup() {
			for (const s of live)
				await s.stop();
			live = [];
		},
	};
	return set;
}

/**
 * open() - a connection of @user (auth mode none) with optional server @roles; the session
 * event is read (client.session), nothing after it is consumed.
 */
export async function open(server, user, roles) {
	const query = { user_id: user };
	if (roles)
		query.roles = roles;
	const c = await connect(server, { query });
	c.label = user;
	assert.equal(c.session.user_id, user);
	return c;
}

/** ok() - a request that must succeed; returns its data. */
export async function ok(client, action, payload, timeoutMs = 5000) {
	const r = await client.request(action, payload, {}, timeoutMs);
	assert.equal(r.success, true, `${client.label}: ${action} ${show(payload)} -> ${show(r)}`);
	return r.data;
}

/** fails() - a request that must fail with @code; returns the error object. */
export async function fails(client, action, payload, code, timeoutMs = 5000) {
	const r = await client.request(action, payload, {}, timeoutMs);
	assert.equal(r.success, false, `${client.label}: ${action} ${show(payload)} should fail ` +
		`with ${code}: ${show(r)}`);
	assert.equal(r.error?.code, code, `${client.label}: ${action} ${show(payload)}: ${show(r)}`);
	return r.error;
}

/** subscribe() - a room subscribe; returns the whole response. */
export function subscribeRoom(client, room, password) {
	const msg = { type: 'subscribe', room };
	if (password !== undefined)
		msg.password = password;
	return client.ask(msg, 5000);
}

/** publish() - one tick through publish_market_data (@client needs role publisher). */
export async function publish(client, symbol, data, extra = {}) {
	const r = await client.request('publish_market_data', { symbol, data, ...extra });
	assert.equal(r.success, true, `publish ${symbol} ${show(data)}: ${show(r)}`);
	return r.data;
}

/** readyz() - GET /readyz: {status, json, text}. */
export async function readyz(server, timeoutMs = 5000) {
	return httpRequest(server, 'GET', '/readyz', { timeoutMs });
}

/** store() - the "store" block of /api/stats. */
export async function store(server) {
	const s = await getStats(server);
	assert.ok(s.store && typeof s.store === 'object', show(s));
	return s.store;
}

/** waitStats() - poll /api/stats until @pred(stats) holds; returns those stats. */
export function waitStats(server, pred, what, timeoutMs = 5000) {
	return waitFor(async () => {
		const s = await getStats(server);
		return pred(s) ? s : null;
	}, { timeoutMs, intervalMs: 25, what });
}

/** take() - as in sessions.mjs (the same helper: wait for @n matches, return all up to them). */
export { take } from './sessions.mjs';

/** hex() - the UTF-8 bytes of @s in lower-case hex (what sqlHex() selects). */
export const hex = (s) => Buffer.from(s, 'utf8').toString('hex');

/** sqlHex() - SQL for the UTF-8 bytes of text expression @expr in hex, comparable with hex(). */
export const sqlHex = (expr) => `encode(convert_to((${expr})::text, 'UTF8'), 'hex')`;

/**
 * rows() - run @sql (one SELECT) on @url; its rows as arrays of column texts. Columns must
 * not hold '|' or newlines: select them through sqlHex() when they might.
 */
export async function rows(url, sql) {
	const out = await psql(url, sql.trim().replace(/;?$/, ';\n'));
	return out.split('\n').filter((l) => l.length).map((l) => l.split('|'));
}

/** one() - the single value that @sql selects. */
export async function one(url, sql) {
	const r = await rows(url, sql);
	assert.equal(r.length, 1, `${sql}: ${show(r)}`);
	assert.equal(r[0].length, 1, `${sql}: ${show(r)}`);
	return r[0][0];
}

/** tablesExist() - whether every table the schema makes is still there. */
export async function tablesExist(url) {
	const names = ['rooms', 'room_members', 'subscriptions', 'filter_expressions',
		'filter_conditions', 'alerts', 'offline_messages', 'room_log', 'offline_cursors',
		'schema_migrations'];
	const r = await rows(url, `SELECT ${names.map((n) => `to_regclass('public.${n}') IS NOT NULL`)
		.join(', ')}`);
	return r.length === 1 && r[0].every((v) => v === 't');
}

/** median() - of a non-empty array of numbers. */
export function median(xs) {
	const s = [...xs].sort((a, b) => a - b);
	const m = s.length >> 1;
	return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** pingRtt() - one application ping's round trip in ms (the pong must echo @timestamp). */
export async function pingRtt(client, timeoutMs = 3000) {
	const t = `${process.pid}-${++seq}`;
	const t0 = performance.now();
	client.send({ type: 'ping', timestamp: t });
	await client.next({ type: 'pong', timestamp: t }, timeoutMs);
	return performance.now() - t0;
}

/**
 * tickRtt() - publish one tick on @symbol through @pub and measure until @sub receives it
 * (matched by its message_id), in ms.
 */
export async function tickRtt(pub, sub, symbol, price, timeoutMs = 3000) {
	const id = `rtt-${process.pid}-${++seq}`;
	const t0 = performance.now();
	pub.send({ type: 'request', request_id: id, action: 'publish_market_data',
		payload: { symbol, message_id: id, data: { price } } });
	await sub.next((m) => m.event === 'stream_data' && m.data?.symbol === symbol &&
		m.data?.data?.price === price, timeoutMs);
	const dt = performance.now() - t0;
	const r = await pub.next({ type: 'response', request_id: id }, timeoutMs);
	assert.equal(r.success, true, show(r));
	return dt;
}

/**
 * sortMembers() - get_room_members' list in a fixed order, without the "online" flag (and
 * without "since" unless @since).
 */
export function sortMembers(list, since = false) {
	return list.map(({ online, since: t, ...m }) => (since ? { ...m, since: t } : m))
		.sort((a, b) => (a.user_id < b.user_id ? -1 : a.user_id > b.user_id ? 1 : 0));
}

/** durableRoom() - the parts of a room document that must survive a restart. */
export function durableRoom(doc) {
	const { room, type, status, owner, implicit, max_members, metadata, created_at,
		has_password } = doc;
	return { room, type, status, owner, implicit, max_members, metadata, created_at,
		has_password };
}
