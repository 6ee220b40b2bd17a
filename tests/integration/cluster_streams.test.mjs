// Streams across nodes (SPEC 2.9, 2.10), the rest of issue 13: a symbol's log in Redis has one
// epoch on every node, and a Redis restarted empty starts a new one (old positions are told
// recovered:false); a node that did not hold a symbol answers buffered data, market data and
// subscribes with since_seq from the log read back from Redis; a subscriber sees consecutive
// seqs across lost channel messages (the sub links killed while ticks flow) and across a node
// starting to watch late; Redis down: what needs the log is UNAVAILABLE, plain subscribes work;
// several Redis shards hold the symbols' keys between them.

import assert from 'node:assert/strict';
import {
	test, after, getStats, httpRequest, connect, waitFor, sleep, stoppedAfterEach,
} from './lib/harness.mjs';
import {
	startRedis, sharedRedisUrl, startNode, redisCmd, killingSubLinks,
} from './lib/redis.mjs';
import { drop } from './lib/sessions.mjs';
import { sharedDb } from './lib/pg.mjs';
import { startOnDb, one } from './lib/persist.mjs';

const run = `${process.pid}-${Date.now()}`;
let symSeq = 0;
const uniqueSymbol = (p) => `${p}${process.pid % 10000}x${Date.now() % 100000}x${++symSeq}`;
const isTick = (sym) => (m) => m.type === 'event' && m.event === 'stream_data' && m.data.symbol === sym;

const node = startNode;

const servers = stoppedAfterEach();

/* A request with a generous bound: a node may read a log from Redis first. */
const req = (c, action, payload, ms = 10000) => c.request(action, payload, {}, ms);

async function publishHttp(server, body) {
	return httpRequest(server, 'POST', '/api/publish', { body, timeoutMs: 15000 });
}

/* Publish until it is accepted (the links may still be coming up). */
async function publishOk(server, body) {
	let last;
	await waitFor(async () => {
		last = await publishHttp(server, body);
		return last.status === 200;
	}, { timeoutMs: 20000, intervalMs: 100, what: `a publish on ${server.label}` });
	return last.json;
}

/* Subscribe @c to @sym; publish probes on @pub until one reaches it (its node listens), then
 * wait for the last one. Returns that tick; no tick of @sym is left queued. */
async function subscribeLive(pub, c, sym) {
	const r = await req(c, 'subscribe_market_stream', { symbols: [sym], snapshot: false });
	assert.equal(r.success, true, JSON.stringify(r));
	let n = 0;
	await waitFor(async () => {
		await publishOk(pub, { symbol: sym, data: { probe: ++n }, message_id: `probe-${sym}-${n}` });
		return c.queue.some(isTick(sym));
	}, { timeoutMs: 15000, intervalMs: 200, what: 'the probes to arrive' });
	const last = await c.next((m) => isTick(sym)(m) && m.data.data.probe === n, 15000);
	c.queue = c.queue.filter((m) => !isTick(sym)(m));
	return last.data;
}

test('one epoch per symbol on every node; Redis restarted empty: a new epoch, old positions recovered:false', async () => {
	const redis = await startRedis();
	after(() => redis.destroy());
	const a = await node(redis.url, `ea-${run}`);
	const b = await node(redis.url, `eb-${run}`, { QUOTECAST_SESSIONS_TTL_S: '30' });
	servers.push(a, b);
	const sym = uniqueSymbol('EP');
	const ca = await connect(a);
	const cb = await connect(b);
	const ta = await subscribeLive(a, ca, sym);
	const tb = await subscribeLive(a, cb, sym);
	/* cb's probes reached ca too */
	await ca.next((m) => isTick(sym)(m) && m.data.data.probe === tb.data.probe, 15000);
	ca.queue = ca.queue.filter((m) => !isTick(sym)(m));
	await publishOk(b, { symbol: sym, data: { price: 10 }, message_id: `${sym}-x` });
	const [xa, xb] = [await ca.next(isTick(sym), 10000), await cb.next(isTick(sym), 10000)];
	/* the same position on both nodes: seq and epoch */
	assert.equal(xa.data.epoch, xb.data.epoch);
	assert.equal(xa.data.seq, xb.data.seq);
	assert.match(xa.data.epoch, /^[0-9a-f]{12}$/);
	assert.ok(xa.data.seq > ta.seq);
	const old = { seq: xb.data.seq, epoch: xb.data.epoch };
	/* a subscriber on a third connection of b gets the same epoch in its response */
	const cc = await connect(b);
	let r = await req(cc, 'subscribe_market_stream', { symbol: sym, since_seq: old.seq, epoch: old.epoch });
	assert.equal(r.success, true, JSON.stringify(r));
	assert.equal(r.data.recovered, true);
	assert.equal(r.data.streams[0].epoch, old.epoch);
	await cc.close();

	/* Redis loses everything: the next tick starts a new life of the log */
	await redis.stop();
	await redis.start();
	await publishOk(a, { symbol: sym, data: { price: 11 }, message_id: `${sym}-y` });
	for (const c of [ca, cb]) {
		const t = await c.next((m) => isTick(sym)(m) && m.data.data.price === 11, 20000);
		assert.equal(t.data.seq, 1);
		assert.notEqual(t.data.epoch, old.epoch);
		assert.match(t.data.epoch, /^[0-9a-f]{12}$/);
	}
	/* a position of the old life: recovered:false and a snapshot, on either node */
	for (const s of [a, b]) {
		const c = await connect(s);
		r = await req(c, 'subscribe_market_stream', { symbol: sym, since_seq: old.seq, epoch: old.epoch });
		assert.equal(r.success, true, JSON.stringify(r));
		assert.equal(r.data.recovered, false);
		const snap = await c.next(isTick(sym), 10000);
		assert.equal(snap.data.snapshot, true);
		assert.equal(snap.data.data.price, 11);
		assert.equal(snap.data.seq, 1);
		await c.close();
	}
	/* a resume with the old position on the same node: recovered:false for that stream */
	const pos = await connect(b, { query: { user_id: `eu-${run}` } });
	r = await req(pos, 'subscribe_market_stream', { symbol: sym, snapshot: false });
	assert.equal(r.success, true, JSON.stringify(r));
	const token = pos.session?.resume_token;
	assert.ok(token, 'a resume token');
	drop(pos);
	let res;
	await waitFor(async () => {
		const again = await connect(b, { query: { user_id: `eu-${run}` } });
		res = await again.ask({ type: 'resume', token, positions: { streams: { [sym]: old } } },
			10000);
		return res.success;
	}, { timeoutMs: 15000, intervalMs: 200, what: 'the session to be suspended' });
	assert.equal(res.data.streams[sym].recovered, false);
	assert.notEqual(res.data.streams[sym].epoch, old.epoch);
});

test('a node that did not hold a symbol answers from the log read back from Redis', async () => {
	const url = await sharedRedisUrl();
	const a = await node(url, `la-${run}`);
	const b = await node(url, `lb-${run}`);
	servers.push(a, b);
	const sym = uniqueSymbol('LB');
	/* nobody subscribes anywhere: the ticks live only in the log */
	const sent = [{ price: 1, volume: 100 }, { price: 2 }, { bid: 1.5 }, { price: 3 }, { volume: 7 }];
	for (const [i, data] of sent.entries()) {
		const j = await publishOk(a, { symbol: sym, data, message_id: `${sym}-${i}` });
		assert.equal(j.accepted, 1);
	}
	const c = await connect(b);
	let r = await req(c, 'get_buffered_data', { symbol: sym, limit: 10 });
	assert.equal(r.success, true, JSON.stringify(r));
	assert.deepEqual(r.data.messages.map((m) => m.seq), [1, 2, 3, 4, 5]);
	assert.deepEqual(r.data.messages.map((m) => m.data), sent);
	assert.equal(r.data.last_seq, 5);
	const epoch = r.data.epoch;
	assert.deepEqual(r.data.messages.map((m) => m.epoch), Array(5).fill(epoch));
	r = await req(c, 'get_market_data', { symbol: sym });
	assert.equal(r.success, true, JSON.stringify(r));
	assert.deepEqual(r.data.data, { price: 3, volume: 7, bid: 1.5 });
	assert.equal(r.data.seq, 5);

	/* a subscribe with a position, on a node that did not listen: replay from the log */
	r = await req(c, 'subscribe_market_stream', { symbol: sym, since_seq: 2, epoch });
	assert.equal(r.success, true, JSON.stringify(r));
	assert.equal(r.data.recovered, true);
	const replay = [];
	for (let i = 0; i < 3; i++)
		replay.push((await c.next(isTick(sym), 10000)).data);
	assert.deepEqual(replay.map((t) => [t.seq, t.replay]), [[3, true], [4, true], [5, true]]);
	/* a plain subscriber on a third node-fresh connection: the merged snapshot */
	const d = await connect(b);
	r = await req(d, 'subscribe_market_stream', { symbol: sym });
	assert.equal(r.success, true, JSON.stringify(r));
	const snap = await d.next(isTick(sym), 10000);
	assert.equal(snap.data.snapshot, true);
	assert.deepEqual(snap.data.data, { price: 3, volume: 7, bid: 1.5 });
	assert.equal(snap.data.epoch, epoch);
	/* live from a: consecutive seqs on b */
	for (let i = 0; i < 5; i++)
		await publishOk(a, { symbol: sym, data: { price: 10 + i }, message_id: `${sym}-l${i}` });
	const live = [];
	for (let i = 0; i < 5; i++)
		live.push((await c.next(isTick(sym), 10000)).data.seq);
	assert.deepEqual(live, [6, 7, 8, 9, 10]);
	const st = await getStats(b);
	assert.ok(st.cluster.log_reads >= 1, JSON.stringify(st.cluster));
});

test('consecutive seqs across lost channel messages (sub links killed while ticks flow)', async () => {
	const redis = await startRedis();
	after(() => redis.destroy());
	const a = await node(redis.url, `ga-${run}`);
	const b = await node(redis.url, `gb-${run}`);
	servers.push(a, b);
	const sym = uniqueSymbol('GP');
	const c = await connect(b);
	let first;
	try {
		first = await subscribeLive(a, c, sym);
	} catch (e) {
		const [sa, sb] = [await getStats(a), await getStats(b)];
		throw new Error(`${e.message}\na: ${JSON.stringify(sa.cluster)} ${JSON.stringify(sa.streaming)}\nb: ${JSON.stringify(sb.cluster)} ${JSON.stringify(sb.streaming)}`);
	}
	const pub = await connect(a, { query: { user_id: 'pub', roles: 'publisher' } });
	/* ticks flow from a while b's (and a's) subscriber links are killed again and again */
	const N = 300;
	const kills = await killingSubLinks(redis.url, async () => {
		for (let i = 0; i < N; i++) {
			const r = await req(pub, 'publish_market_data', { symbol: sym, data: { n: i } });
			if (!r.success)
				i--; /* Redis busy with the kill: again */
		}
	});
	assert.ok(kills >= 1, 'the sub links were killed');
	const seqs = [];
	for (let i = 0; i < N; i++)
		seqs.push((await c.next(isTick(sym), 20000)).data.seq);
	const want = Array.from({ length: N }, (_, i) => first.seq + 1 + i);
	assert.deepEqual(seqs, want);
	const st = await getStats(b);
	assert.ok(st.cluster.log_reads >= 2, JSON.stringify(st.cluster));
});

test('Redis down: what needs the log is UNAVAILABLE, a plain subscribe works: a snapshot and live ticks when it is back', async () => {
	const redis = await startRedis();
	after(() => redis.destroy());
	const a = await node(redis.url, `da-${run}`);
	servers.push(a);
	const sym = uniqueSymbol('DN');
	await publishOk(a, { symbol: sym, data: { price: 1 } });
	const c = await connect(a);
	redis.signal('SIGSTOP');
	try {
		let r = await req(c, 'get_buffered_data', { symbol: sym });
		assert.equal(r.success, false, JSON.stringify(r));
		assert.equal(r.error.code, 'UNAVAILABLE');
		r = await req(c, 'subscribe_market_stream', { symbol: sym, since_seq: 0 });
		assert.equal(r.error?.code, 'UNAVAILABLE', JSON.stringify(r));
		r = await req(c, 'subscribe_market_stream', { symbol: sym });
		assert.equal(r.success, true, JSON.stringify(r));
	} finally {
		redis.signal('SIGCONT');
	}
	/* back: the node reads the log, the subscriber gets its snapshot, then live ticks */
	await waitFor(async () => (await httpRequest(a, 'GET', '/readyz')).status === 200,
		{ timeoutMs: 20000, what: 'ready again' });
	const snap = await c.next(isTick(sym), 15000);
	assert.equal(snap.data.snapshot, true, JSON.stringify(snap));
	assert.deepEqual([snap.data.seq, snap.data.data], [1, { price: 1 }]);
	await publishOk(a, { symbol: sym, data: { price: 2 } });
	const t = await c.next((m) => isTick(sym)(m) && m.data.data.price === 2, 15000);
	assert.equal(t.data.seq, 2);
});

test('two Redis shards: the symbols keys spread over both, one seq per symbol on both nodes, dedup', async () => {
	const r1 = await startRedis();
	const r2 = await startRedis();
	after(() => r1.destroy());
	after(() => r2.destroy());
	const urls = `${r1.url},${r2.url}`;
	const a = await node(urls, `sha-${run}`);
	const b = await node(urls, `shb-${run}`);
	servers.push(a, b);
	const syms = Array.from({ length: 24 }, () => uniqueSymbol('SH'));
	for (const [i, sym] of syms.entries()) {
		await publishOk(i % 2 ? a : b, { symbol: sym, data: { price: 1 }, message_id: `${sym}-1` });
		await publishOk(i % 2 ? b : a, { symbol: sym, data: { price: 2 }, message_id: `${sym}-2` });
		/* the same message id on the other node: a duplicate */
		const d = await publishOk(i % 2 ? b : a, { symbol: sym, data: { price: 9 }, message_id: `${sym}-1` });
		assert.deepEqual(d, { accepted: 0, duplicates: 1, stale: 0 });
	}
	const held = [];
	for (const r of [r1, r2]) {
		const keys = await redisCmd(r.url, 'KEYS', 'qc:{SH*}:seq');
		held.push(new Set(keys.map((k) => k.slice(4, k.indexOf('}')))));
		for (const k of keys)
			assert.equal(await redisCmd(r.url, 'GET', k), '2');
	}
	assert.ok(held[0].size > 0 && held[1].size > 0, `both shards hold symbols: ${held[0].size}/${held[1].size}`);
	for (const sym of syms)
		assert.ok(held[0].has(sym) !== held[1].has(sym), `${sym} on exactly one shard`);
	/* each symbol's log read back on both nodes gives the same seqs */
	const ca = await connect(a);
	const cb = await connect(b);
	for (const sym of syms.slice(0, 6)) {
		const x = await req(ca, 'get_buffered_data', { symbol: sym });
		const y = await req(cb, 'get_buffered_data', { symbol: sym });
		assert.deepEqual(x.data.messages.map((m) => [m.seq, m.data.price, m.epoch]),
			y.data.messages.map((m) => [m.seq, m.data.price, m.epoch]));
		assert.deepEqual(x.data.messages.map((m) => m.seq), [1, 2]);
	}
});

test('streams.max_symbols is counted cluster-wide on the publish path: refused, counted', async () => {
	const redis = await startRedis();
	after(() => redis.destroy());
	const env = { QUOTECAST_STREAMS_MAX_SYMBOLS: '3' };
	const a = await node(redis.url, `ma-${run}`, env);
	const b = await node(redis.url, `mb-${run}`, env);
	servers.push(a, b);
	const syms = Array.from({ length: 4 }, () => uniqueSymbol('MX'));
	for (const sym of syms.slice(0, 3))
		assert.equal((await publishOk(a, { symbol: sym, data: { price: 1 } })).accepted, 1);
	/* a fourth symbol, on the other node: refused */
	const r = await publishHttp(b, { symbol: syms[3], data: { price: 1 } });
	assert.equal(r.status, 429, r.text);
	assert.equal(r.json.error.code, 'LIMIT_EXCEEDED');
	assert.match(r.json.error.message, /^streams\.max_symbols: /);
	const st = await getStats(b);
	assert.equal(st.limits.refused['streams.max_symbols'], 1);
	/* the symbols that have ticks still take more, on any node */
	assert.equal((await publishOk(b, { symbol: syms[0], data: { price: 2 } })).accepted, 1);
});

/*
 * cluster.log_ttl_s: a symbol no longer published leaves Redis (its seq, window, version, epoch
 * and log), and its next tick starts a new life of the log; one still published stays.
 */
test('a symbol not published for cluster.log_ttl_s leaves Redis; its next tick starts a new life', async () => {
	const redis = await startRedis();
	after(() => redis.destroy());
	const a = await node(redis.url, `lt-${run}`, { QUOTECAST_CLUSTER_LOG_TTL_S: '2' });
	servers.push(a);
	const [quiet, busy] = [uniqueSymbol('LTQ'), uniqueSymbol('LTB')];
	const c = await connect(a, { query: { user_id: 'lt' } });
	assert.equal((await req(c, 'subscribe_market_stream', { symbols: [quiet] })).success, true);
	assert.equal((await publishOk(a, { symbol: quiet, data: { price: 1 }, message_id: 'q1', version: 5 })).accepted, 1);
	const first = (await c.next(isTick(quiet), 10000)).data;
	assert.equal(first.seq, 1);
	for (const k of ['seq', 'ids', 'ver', 'epoch', 'log']) {
		const ttl = await redisCmd(redis.url, 'PTTL', `qc:{${quiet}}:${k}`);
		assert.ok(ttl > 0 && ttl <= 2000, `${k}: PTTL ${ttl}`);
	}
	/* the busy one is published every 300 ms for 3 s: renewed, it stays in its life */
	for (let i = 1; i <= 10; i++) {
		assert.equal((await publishOk(a, { symbol: busy, data: { price: i } })).accepted, 1);
		await sleep(300);
	}
	assert.equal(await redisCmd(redis.url, 'EXISTS', `qc:{${quiet}}:seq`), 0);
	assert.equal(await redisCmd(redis.url, 'GET', `qc:{${busy}}:seq`), '10');
	/* the quiet one's next tick: seq 1 in a new epoch; its old message id and version are gone */
	assert.equal((await publishOk(a, { symbol: quiet, data: { price: 2 }, message_id: 'q1', version: 1 })).accepted, 1);
	const next = (await c.next(isTick(quiet), 10000)).data;
	assert.equal(next.seq, 1);
	assert.notEqual(next.epoch, first.epoch);
});

test('a persisted subscription created, changed and deleted on one node is followed by the others', async () => {
	const db = await sharedDb('cluster_psubs');
	const url = await sharedRedisUrl();
	const env = (id) => ({ QUOTECAST_CLUSTER_REDIS: url, QUOTECAST_CLUSTER_NODE_ID: id,
		QUOTECAST_CLUSTER_TIMEOUT_MS: '500' });
	/* both nodes start before the subscription exists */
	const a = await startOnDb(db, { label: `pa-${run}`, env: env(`pa-${run}`) });
	const b = await startOnDb(db, { label: `pb-${run}`, env: env(`pb-${run}`) });
	servers.push(a, b);
	const sym = uniqueSymbol('PS');
	const user = `psu-${run}`;
	const ua = await connect(a, { query: { user_id: user } });
	const ub = await connect(b, { query: { user_id: user } });
	const sub = await req(ua, 'create_subscription', { symbol: sym, fields: ['price'] });
	assert.equal(sub.success, true, JSON.stringify(sub));
	const id = sub.data.subscription_id;
	const listed = async () => (await req(ub, 'list_subscriptions', {})).data.subscriptions;
	await waitFor(async () => (await listed()).some((x) => x.subscription_id === id),
		{ timeoutMs: 5000, what: 'node b to know the subscription' });
	/* the user's connection on b has its stream, as on a */
	let n = 0;
	await waitFor(async () => {
		await publishOk(a, { symbol: sym, data: { price: ++n, size: 1 } });
		return ub.queue.some(isTick(sym));
	}, { timeoutMs: 15000, intervalMs: 200, what: 'ticks on node b' });
	const t = ub.queue.find(isTick(sym));
	assert.deepEqual(Object.keys(t.data.data), ['price']);
	/* paused on a: b's connection stops getting ticks */
	const up = await req(ua, 'update_subscription', { subscription_id: id, version: 1, active: false });
	assert.equal(up.success, true, JSON.stringify(up));
	await waitFor(async () => (await listed()).find((x) => x.subscription_id === id)?.active === false,
		{ timeoutMs: 5000, what: 'node b to see it paused' });
	await sleep(300);
	ub.queue = [];
	await publishOk(a, { symbol: sym, data: { price: 1000 } });
	await ub.nothing(isTick(sym), 500);
	/* deleted on a: gone on b */
	assert.equal((await req(ua, 'delete_subscription', { subscription_id: id })).success, true);
	await waitFor(async () => (await listed()).length === 0,
		{ timeoutMs: 5000, what: 'node b to drop it' });
});

test('an alert fires once per cluster: one row and one event with the symbol watched on two nodes', async () => {
	const db = await sharedDb('cluster_alerts');
	const url = await sharedRedisUrl();
	const env = (id) => ({ QUOTECAST_CLUSTER_REDIS: url, QUOTECAST_CLUSTER_NODE_ID: id,
		QUOTECAST_CLUSTER_TIMEOUT_MS: '500' });
	const a = await startOnDb(db, { label: `aa-${run}`, env: env(`aa-${run}`) });
	servers.push(a);
	const sym = uniqueSymbol('AL');
	const user = `alu-${run}`;
	const u = await connect(a, { query: { user_id: user } });
	const sub = await req(u, 'create_subscription', { symbol: sym,
		filter: { op: 'and', conditions: [{ field: 'price', cmp: 'gt', value: 100 }] },
		alert: { priority: 'high' } });
	assert.equal(sub.success, true, JSON.stringify(sub));
	/* b loads the subscription from the shared store and watches the symbol too */
	const b = await startOnDb(db, { label: `ab-${run}`, env: env(`ab-${run}`) });
	servers.push(b);
	const w = await connect(b);
	await subscribeLive(a, w, sym);
	await subscribeLive(b, u, sym);
	await publishOk(b, { symbol: sym, data: { price: 50 } });
	await publishOk(a, { symbol: sym, data: { price: 150 } });
	const isAlert = (m) => m.type === 'event' && m.event === 'alert';
	const al = await u.next(isAlert, 10000);
	assert.equal(al.data.subscription_id, sub.data.subscription_id);
	await u.nothing(isAlert, 1000);
	for (const s of [a, b])
		await waitFor(async () => (await getStats(s)).store?.pending === 0,
			{ timeoutMs: 10000, what: 'the store to have written everything' });
	assert.equal(await one(db, `SELECT count(*) FROM alerts WHERE subscription_id = '${sub.data.subscription_id}'`), '1',
		await one(db, `SELECT string_agg(id || ' ' || seq || ' ' || data, '; ') FROM alerts`));
	const [sa, sb] = [await getStats(a), await getStats(b)];
	assert.equal(sa.subscriptions.alerts_raised + sb.subscriptions.alerts_raised, 1);
	assert.equal(sa.subscriptions.alerts_claimed_elsewhere + sb.subscriptions.alerts_claimed_elsewhere, 1);
});
