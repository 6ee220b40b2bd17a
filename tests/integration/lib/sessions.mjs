// Helpers for the session tests (suspend, resume, expiry, offline queue; sessions.md, SPEC 2.8):
// dropping a connection without a close frame, resuming with ?resume=, the stats reconnection
// and offline blocks, and reading what arrived in order. Built on harness.mjs, which it does not
// change.

import assert from 'node:assert/strict';
import { connect, getStats, httpRequest, matches, waitFor } from './harness.mjs';

let seq = 0;

/** unique() - a fresh name (user id, room) so tests sharing a server never collide. */
export const unique = (prefix) => `${prefix}-${process.pid}-${++seq}`;

/** ev() - pattern for an event @event with @data keys. */
export const ev = (event, data = {}) => ({ type: 'event', event, data });

/** isHex() - @s is a lower-case hex string of @len characters. */
export const isHex = (s, len) => typeof s === 'string' && /^[0-9a-f]+$/.test(s) && s.length === len;

/**
 * drop() - lose the connection abruptly: the TCP socket is destroyed, no close frame is sent.
 */
export function drop(client) {
	client.ws._socket.destroy();
}

/** reconnection() / offline() - the stats blocks of the same names. */
export async function reconnection(server) {
	const s = await getStats(server);
	assert.ok(s.reconnection && typeof s.reconnection === 'object', JSON.stringify(s));
	return s.reconnection;
}

export async function offline(server) {
	const s = await getStats(server);
	assert.ok(s.offline && typeof s.offline === 'object', JSON.stringify(s));
	return s.offline;
}

/**
 * waitStats() - poll /api/stats until @pred(stats) holds; returns those stats.
 * @what names the condition in the timeout error.
 */
export function waitStats(server, pred, what, timeoutMs = 4000) {
	return waitFor(async () => {
		const s = await getStats(server);
		return pred(s) ? s : null;
	}, { timeoutMs, intervalMs: 25, what });
}

/** waitSuspended() - poll until reconnection.suspended is @n. */
export const waitSuspended = (server, n, timeoutMs = 4000) =>
	waitStats(server, (s) => s.reconnection?.suspended === n,
		`stats reconnection.suspended == ${n}`, timeoutMs);

/**
 * open() - a connection of @user (auth mode none) with optional @roles; session event read.
 */
export async function open(server, user, roles) {
	const query = { user_id: user };
	if (roles)
		query.roles = roles;
	const c = await connect(server, { query });
	c.label = user;
	assert.equal(c.session.user_id, user);
	assert.equal(c.session.resumed, false);
	return c;
}

/**
 * resume() - connect with ?resume=@token&user_id=@user WITHOUT consuming anything: the first
 * message must be the session event, which is taken and stored in client.session; everything
 * after it stays queued in arrival order.
 */
export async function resume(server, token, user) {
	const c = await connect(server, { query: { resume: token, user_id: user }, session: false });
	c.label = `${user}(resume)`;
	const first = await c.next(() => true, 5000);
	assert.equal(first.type, 'event', `first frame after a resume: ${JSON.stringify(first)}`);
	assert.equal(first.event, 'session', `first frame after a resume: ${JSON.stringify(first)}`);
	c.session = first.data;
	return c;
}

/**
 * take() - wait until @client has @n queued messages matching @pred, then remove and return
 * ALL queued messages up to and including the @n-th match (so the caller sees everything that
 * arrived in between, in order).
 */
export async function take(client, n, pred = () => true, timeoutMs = 5000) {
	const count = () => client.queue.filter((m) => matches(m, pred)).length;
	if (count() < n) {
		await waitFor(() => count() >= n || client.closeInfo, { timeoutMs, intervalMs: 10,
			what: `${n} messages matching ${pred.toString?.() ?? pred} at ${client.label}` })
			.catch((e) => {
				throw new Error(`${e.message}; ${client.describe()}`);
			});
		assert.ok(count() >= n, `connection closed before ${n} messages; ${client.describe()}`);
	}
	let seen = 0;
	let end = 0;
	for (; end < client.queue.length; end++) {
		if (matches(client.queue[end], pred) && ++seen === n)
			break;
	}
	const out = client.queue.splice(0, end + 1);
	client.consumed.push(...out);
	if (client.consumed.length > 50)
		client.consumed.splice(0, client.consumed.length - 50);
	return out;
}

/**
 * queued() - wait until a message matching @pred has arrived at @client, consuming nothing.
 */
export async function queued(client, pred, timeoutMs = 5000) {
	await waitFor(() => client.queue.some((m) => matches(m, pred)) || client.closeInfo,
		{ timeoutMs, intervalMs: 10, what: `a message matching ${pred} at ${client.label}` })
		.catch((e) => {
			throw new Error(`${e.message}; ${client.describe()}`);
		});
	assert.ok(client.queue.some((m) => matches(m, pred)),
		`connection closed first; ${client.describe()}`);
}

/** ok() - a request that must succeed; returns its data. */
export async function ok(client, action, payload) {
	const r = await client.request(action, payload);
	assert.equal(r.success, true, `${client.label}: ${action} ${JSON.stringify(payload)} -> ` +
		JSON.stringify(r));
	return r.data;
}

/** broadcast() - POST /api/broadcast @body, asserting 200; returns the answer document. */
export async function broadcast(server, body) {
	const r = await httpRequest(server, 'POST', '/api/broadcast', { body });
	assert.equal(r.status, 200, `POST /api/broadcast ${JSON.stringify(body)}: ${r.status} ${r.text}`);
	return r.json;
}

/** summary() - compact form of a room_message / direct_message / stream_data for assertions. */
export function summary(m) {
	if (m.event === 'room_message')
		return `room:${JSON.stringify(m.data.content)}`;
	if (m.event === 'direct_message')
		return `direct:${JSON.stringify(m.data.content)}`;
	if (m.event === 'stream_data')
		return `tick:${m.data.seq}${m.data.replay ? 'r' : ''}${m.data.snapshot ? 's' : ''}`;
	return `${m.type}:${m.event ?? ''}`;
}
