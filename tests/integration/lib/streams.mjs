// Helpers for the market-stream tests (streams, publish, slow consumers, demo feed): publishing
// ticks over HTTP, stream actions over WebSocket, stream_data patterns, stats and /metrics.
// Built on harness.mjs, which it does not change.

import assert from 'node:assert/strict';
import http from 'node:http';
import { httpRequest, getStats } from './harness.mjs';

let symbolSeq = 0;

/**
 * uniqueSymbol() - a fresh valid symbol (1-32 chars of [A-Za-z0-9._:-]) so tests sharing a
 * server never see each other's ticks.
 */
export function uniqueSymbol(prefix = 'S') {
	const s = `${prefix}.${process.pid % 100000}.${++symbolSeq}`;
	assert.ok(s.length <= 32, `symbol ${s} too long`);
	return s;
}

/** tick() - a tick object: {symbol, data, ...extra} (message_id, version, timestamp). */
export const tick = (symbol, data, extra = {}) => ({ symbol, data, ...extra });

/** POST /api/publish with @body (object/array/string/Buffer); resolves the raw answer. */
export function publish(server, body, { token, headers = {}, timeoutMs = 10000 } = {}) {
	const h = { ...headers };
	if (token)
		h.authorization = `Bearer ${token}`;
	return httpRequest(server, 'POST', '/api/publish', { headers: h, body, timeoutMs });
}

/** publishOk() - publish and assert a 200 with the {accepted, duplicates, stale} document. */
export async function publishOk(server, body, opts = {}) {
	const r = await publish(server, body, opts);
	assert.equal(r.status, 200, `POST /api/publish: ${r.status} ${r.text.slice(0, 500)}`);
	assert.ok(r.json, r.text);
	for (const k of ['accepted', 'duplicates', 'stale'])
		assert.equal(typeof r.json[k], 'number', `${k} in ${r.text}`);
	return r.json;
}

/** assertHttpError() - status, JSON content type and error.code of an HTTP error answer. */
export function assertHttpError(r, status, code) {
	assert.equal(r.status, status, `status: ${r.status} ${r.text.slice(0, 500)}`);
	assert.match(String(r.headers['content-type']), /application\/json/);
	assert.ok(r.json && r.json.error, `JSON error body: ${r.text.slice(0, 500)}`);
	assert.equal(r.json.error.code, code, r.text.slice(0, 500));
	assert.equal(typeof r.json.error.message, 'string');
}

/**
 * postChunked() - POST @p with the body sent as chunked transfer encoding (no
 * content-length). Resolves {status, text, json}, or {error} when the server closed before
 * answering.
 */
export function postChunked(server, p, chunks, { headers = {}, timeoutMs = 5000 } = {}) {
	return new Promise((resolve) => {
		let settled = false;
		const done = (v) => {
			if (!settled) {
				settled = true;
				clearTimeout(timer);
				resolve(v);
			}
		};
		const req = http.request({
			host: server.host,
			port: server.port,
			method: 'POST',
			path: p,
			headers: { 'content-type': 'application/json', ...headers },
			agent: false,
		}, (res) => {
			const parts = [];
			res.on('data', (c) => parts.push(c));
			const fin = () => {
				const text = Buffer.concat(parts).toString('utf8');
				let json;
				try {
					json = JSON.parse(text);
				} catch {
					json = undefined;
				}
				done({ status: res.statusCode, headers: res.headers, text, json });
			};
			res.on('end', fin);
			res.on('error', fin);
		});
		const timer = setTimeout(() => {
			req.destroy();
			done({ error: new Error(`no answer within ${timeoutMs} ms`) });
		}, timeoutMs);
		req.on('error', (e) => done({ error: e }));
		for (const c of chunks)
			req.write(c);
		req.end();
	});
}

/* ---------------------------------------------------------------- WebSocket stream actions */

/** streamRequest() - one stream action and its response (success or not). */
export function streamRequest(client, action, payload, timeoutMs = 3000) {
	return client.request(action, payload, {}, timeoutMs);
}

/** subscribeStream() - subscribe_market_stream, asserting success; returns the response. */
export async function subscribeStream(client, payload) {
	const r = await client.request('subscribe_market_stream', payload);
	assert.equal(r.success, true, `subscribe_market_stream ${JSON.stringify(payload)}: ` +
		JSON.stringify(r));
	return r;
}

/** isStreamData() - pattern for a stream_data event of @symbol (with @extra data keys). */
export const isStreamData = (symbol, extra = {}) =>
	({ type: 'event', event: 'stream_data', data: { symbol, ...extra } });

/** anyStreamData - pattern for any stream_data event. */
export const anyStreamData = { type: 'event', event: 'stream_data' };

/** nextTick() - the next stream_data event of @symbol (its data part). */
export async function nextTick(client, symbol, timeoutMs = 3000) {
	const ev = await client.next(isStreamData(symbol), timeoutMs);
	return ev.data;
}

/** collectTicks() - the next @n stream_data of @symbol, in arrival order. */
export async function collectTicks(client, symbol, n, timeoutMs = 3000) {
	const out = [];
	for (let i = 0; i < n; i++)
		out.push(await nextTick(client, symbol, timeoutMs));
	return out;
}

/* ---------------------------------------------------------------- stats and metrics */

/** streaming() - the stats "streaming" block. */
export async function streaming(server, token) {
	const s = await getStats(server, token);
	assert.ok(s.streaming && typeof s.streaming === 'object', JSON.stringify(s));
	return s.streaming;
}

/**
 * metrics() - GET /metrics parsed: {values: Map name -> number, types: Map name -> kind,
 * text}.
 */
export async function metrics(server) {
	const r = await httpRequest(server, 'GET', '/metrics');
	assert.equal(r.status, 200, r.text);
	const values = new Map();
	const types = new Map();
	for (const l of r.text.split('\n')) {
		if (l.startsWith('# TYPE ')) {
			const [, , name, kind] = l.split(' ');
			types.set(name, kind);
			continue;
		}
		const m = /^(quotecast_[a-z0-9_]+) (\S+)$/.exec(l);
		if (m)
			values.set(m[1], Number(m[2]));
	}
	return { values, types, text: r.text };
}

export const STREAMING_KEYS = ['active_streams', 'total_subscribers', 'total_messages',
	'total_dropped', 'total_deduplicated', 'total_conflated', 'total_deliveries',
	'total_published'];

/** The /metrics name of each streaming key (http.c's list). */
export const STREAMING_METRIC = {
	active_streams: 'quotecast_streams',
	total_subscribers: 'quotecast_stream_subscriptions',
	total_messages: 'quotecast_ticks_accepted_total',
	total_dropped: 'quotecast_ticks_stale_total',
	total_deduplicated: 'quotecast_ticks_duplicate_total',
	total_conflated: 'quotecast_ticks_conflated_total',
	total_deliveries: 'quotecast_tick_deliveries_total',
	total_published: 'quotecast_ticks_published_total',
};

/** delta() - @after minus @before for every streaming key. */
export function delta(before, after) {
	const d = {};
	for (const k of STREAMING_KEYS)
		d[k] = after[k] - before[k];
	return d;
}
