// Cluster mode (SPEC 2.10), the foundation: nodes on one Redis know each other (stats,
// /metrics); a tick published on any node gets one seq and reaches subscribers on every node,
// deduplicated cluster-wide; a stalled Redis (SIGSTOP) never stalls a node (ping answers,
// publish answers UNAVAILABLE after cluster.timeout_ms, /readyz says 503) and the node comes
// back by itself (SIGCONT); a Redis restarted empty is rejoined; cluster.redis is checked at
// start-up. Streams, rooms and sessions across nodes have their own files (cluster_*.test.mjs).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
	test, after, startServer, stopServer, getStats, httpRequest, connect, waitFor, BIN,
	stoppedAfterEach,
} from './lib/harness.mjs';
import { startRedis, sharedRedisUrl, startNode } from './lib/redis.mjs';

const run = `${process.pid}-${Date.now()}`;

const node = startNode;

function ids(stats) {
	return (stats.cluster?.nodes ?? []).map((n) => n.node_id).sort();
}

async function seesAll(server, want) {
	await waitFor(async () => {
		const s = await getStats(server);
		return want.every((id) => ids(s).includes(id)) && s.cluster.connected;
	}, { timeoutMs: 15000, what: `${server.label} to list ${want.join(', ')}` });
}

const servers = stoppedAfterEach();

test('two nodes on one Redis list each other in stats and /metrics', async () => {
	const url = await sharedRedisUrl();
	const a = await node(url, `a-${run}`);
	const b = await node(url, `b-${run}`);
	servers.push(a, b);
	await seesAll(a, [`a-${run}`, `b-${run}`]);
	await seesAll(b, [`a-${run}`, `b-${run}`]);
	const c = await connect(b);
	await waitFor(async () => {
		const s = await getStats(a);
		return s.cluster.nodes.find((n) => n.node_id === `b-${run}`)?.connections === 1;
	}, { timeoutMs: 15000, what: "a to see b's connection" });
	await c.close();

	const s = await getStats(a);
	assert.equal(s.cluster.enabled, true);
	assert.equal(s.cluster.node_id, `a-${run}`);
	assert.equal(s.cluster.connected, true);
	assert.equal(s.cluster.shards.length, 1);
	assert.equal(s.cluster.shards[0].url, url);
	const m = await httpRequest(a, 'GET', '/metrics');
	assert.equal(m.status, 200);
	assert.match(m.text, /^quotecast_cluster_up 1$/m);
	assert.match(m.text, /^quotecast_cluster_nodes [2-9]\d*$/m);
	assert.equal((await httpRequest(a, 'GET', '/readyz')).status, 200);

	/* a node that stops leaves the others' list within the node TTL */
	await stopServer(b);
	servers.splice(servers.indexOf(b), 1);
	await waitFor(async () => !ids(await getStats(a)).includes(`b-${run}`),
		{ timeoutMs: 15000, what: 'b to leave the list' });
});

let symSeq = 0;
const uniqueSymbol = (p) => `${p}${process.pid % 10000}x${Date.now() % 100000}x${++symSeq}`;
const isTick = (sym) => (m) => m.type === 'event' && m.event === 'stream_data' && m.data.symbol === sym;

async function publishHttp(server, body) {
	return httpRequest(server, 'POST', '/api/publish', { body, timeoutMs: 15000 });
}

/* Subscribe @clients to @sym and publish probes until every one of them gets ticks: the nodes'
 * SUBSCRIBE to the symbol's channel has taken effect. Returns the last probe's seq. */
async function subscribeEverywhere(server, clients, sym) {
	for (const c of clients) {
		const r = await c.request('subscribe_market_stream', { symbols: [sym] });
		assert.equal(r.success, true, JSON.stringify(r));
	}
	let n = 0;
	let last = 0;
	await waitFor(async () => {
		const r = await publishHttp(server, { symbol: sym, data: { probe: ++n }, message_id: `probe-${sym}-${n}` });
		assert.equal(r.status, 200, r.text);
		/* any probe: the probe just published may still be on its way (checking for it at once
		 * raced the delivery, and failed under load with every node listening) */
		return clients.every((c) => c.queue.some(isTick(sym)));
	}, { timeoutMs: 15000, intervalMs: 200, what: 'every node to receive the probes' }).catch(async (e) => {
		/* what each node's cluster block says, for a failure that does not reproduce at will */
		const blocks = [];
		for (const s of servers)
			blocks.push(`${s.label}: ${JSON.stringify((await getStats(s).catch(() => ({}))).cluster)}`);
		throw new Error(`${e.message}\n${blocks.join('\n')}`);
	});
	/* no more probes: the last one reaches every client, then nothing of @sym is queued */
	for (const c of clients) {
		last = (await c.next((m) => isTick(sym)(m) && m.data.data.probe === n, 15000)).data.seq;
		c.queue = c.queue.filter((m) => !isTick(sym)(m));
	}
	return last;
}

test('a tick published on any node has one seq everywhere and is deduplicated cluster-wide', async () => {
	const url = await sharedRedisUrl();
	const a = await node(url, `ta-${run}`);
	const b = await node(url, `tb-${run}`);
	servers.push(a, b);
	const sym = uniqueSymbol('CL');
	const ca = await connect(a, { query: { user_id: 'sa' } });
	const cb = await connect(b, { query: { user_id: 'sb' } });
	const base = await subscribeEverywhere(a, [ca, cb], sym);

	/* one on A over HTTP, one on B over the WebSocket publish request, one more on A */
	const pb = await connect(b, { query: { user_id: 'pub', roles: 'publisher' } });
	let r = await publishHttp(a, { symbol: sym, data: { price: 1 }, message_id: `${sym}-1` });
	assert.deepEqual(r.json, { accepted: 1, duplicates: 0, stale: 0 });
	const w = await pb.request('publish_market_data', { symbol: sym, data: { price: 2 }, message_id: `${sym}-2` });
	assert.equal(w.success, true, JSON.stringify(w));
	assert.deepEqual(w.data, { accepted: 1, duplicates: 0, stale: 0 });
	r = await publishHttp(a, { symbol: sym, data: { price: 3 }, message_id: `${sym}-3` });
	assert.equal(r.json.accepted, 1);

	/* the same message id again, on the other node: a duplicate, delivered nowhere */
	r = await publishHttp(b, { symbol: sym, data: { price: 99 }, message_id: `${sym}-1` });
	assert.deepEqual(r.json, { accepted: 0, duplicates: 1, stale: 0 });
	/* a version not above the last one, on another node: stale */
	r = await publishHttp(b, { symbol: sym, data: { price: 4 }, message_id: `${sym}-4`, version: 10 });
	assert.equal(r.json.accepted, 1);
	r = await publishHttp(a, { symbol: sym, data: { price: 5 }, message_id: `${sym}-5`, version: 10 });
	assert.deepEqual(r.json, { accepted: 0, duplicates: 0, stale: 1 });

	const seen = [];
	for (const c of [ca, cb]) {
		const got = [];
		for (let i = 0; i < 4; i++)
			got.push((await c.next(isTick(sym), 10000)).data);
		await c.nothing(isTick(sym), 300);
		seen.push(got.map((t) => [t.seq, t.message_id, t.data.price]));
	}
	assert.deepEqual(seen[0], [[base + 1, `${sym}-1`, 1], [base + 2, `${sym}-2`, 2],
		[base + 3, `${sym}-3`, 3], [base + 4, `${sym}-4`, 4]]);
	assert.deepEqual(seen[1], seen[0]);

	/* a node whose last subscriber left stops listening to the symbol */
	await cb.request('unsubscribe_market_stream', { symbols: [sym] });
	await waitFor(async () => (await getStats(b)).cluster.watched_symbols === 0,
		{ timeoutMs: 15000, what: 'b to leave the channel' });
});

test('a tick reaches the other node as published: reals, escapes, nested values, message id, timestamp', async () => {
	const url = await sharedRedisUrl();
	const a = await node(url, `da-${run}`);
	const b = await node(url, `db-${run}`);
	servers.push(a, b);
	const sym = uniqueSymbol('CD');
	const cb = await connect(b, { query: { user_id: 'db' } });
	await subscribeEverywhere(a, [cb], sym);
	const pa = await connect(a, { query: { user_id: 'pub', roles: 'publisher' } });
	/* the plain form (the scanner) and one that needs jansson (escapes, nesting, exponents) */
	const plain = { price: 1234.56, bid: 0.1, ask: -0.000123, volume: 12345678901234, open: true,
		note: 'plain text', none: null };
	const rich = { s: 'q"b\\s/\n\t\u00e9\u2028\u0001', nested: { x: [1, 2.5, null, false] }, e: 1.5e-300 };
	let w = await pa.request('publish_market_data',
		{ ticks: [{ symbol: sym, data: plain, message_id: `${sym}-plain`, timestamp: 1700000000123 }] });
	assert.equal(w.success, true, JSON.stringify(w));
	w = await pa.request('publish_market_data', { ticks: [
		{ symbol: sym, data: rich, message_id: `${sym}-"\\é\t`, timestamp: 1700000000456 },
		{ symbol: sym, data: { price: 7 } },
	] });
	assert.equal(w.success, true, JSON.stringify(w));
	assert.equal(w.data.accepted, 2);
	const got = [];
	for (let i = 0; i < 3; i++)
		got.push((await cb.next(isTick(sym), 10000)).data);
	assert.deepEqual(got[0].data, plain);
	assert.equal(got[0].message_id, `${sym}-plain`);
	assert.equal(got[0].timestamp, 1700000000123);
	assert.deepEqual(got[1].data, rich);
	assert.equal(got[1].message_id, `${sym}-"\\é\t`);
	assert.equal(got[1].timestamp, 1700000000456);
	assert.deepEqual(got[2].data, { price: 7 });
	assert.equal(got[2].message_id, undefined);
	assert.equal(typeof got[2].timestamp, 'number');
});

test('a single node has no cluster block and no cluster metrics', async () => {
	const s1 = await startServer({ label: 'single' });
	servers.push(s1);
	const s = await getStats(s1);
	assert.equal(s.cluster, undefined);
	const m = await httpRequest(s1, 'GET', '/metrics');
	assert.doesNotMatch(m.text, /quotecast_cluster_/);
});

test('Redis stopped (SIGSTOP): the nodes keep answering, /readyz 503; SIGCONT: back by itself', async () => {
	const redis = await startRedis();
	after(() => redis.destroy());
	const a = await node(redis.url, `sa-${run}`);
	const b = await node(redis.url, `sb-${run}`);
	servers.push(a, b);
	await seesAll(a, [`sa-${run}`, `sb-${run}`]);
	const c = await connect(a);

	redis.signal('SIGSTOP');
	try {
		/* a publish sent to the frozen Redis answers UNAVAILABLE once cluster.timeout_ms is up */
		const frozen = await publishHttp(a, { symbol: 'FROZEN', data: { price: 0 } });
		assert.equal(frozen.status, 503, frozen.text);
		assert.equal(frozen.json.error.code, 'UNAVAILABLE');
		/* the loop never waits for Redis: pings and HTTP answer while it is frozen */
		for (let i = 0; i < 5; i++) {
			c.send({ type: 'ping', timestamp: i });
			assert.equal((await c.next({ type: 'pong' }, 5000)).timestamp, i);
		}
		for (const s of [a, b]) {
			const r = await waitFor(async () => {
				const x = await httpRequest(s, 'GET', '/readyz');
				return x.status === 503 && x;
			}, { timeoutMs: 15000, what: `${s.label} /readyz 503` });
			assert.match(r.json.reason, /Redis/);
			const st = await getStats(s);
			assert.equal(st.cluster.connected, false);
			assert.ok(st.cluster.timeouts >= 1);
		}
		c.send({ type: 'ping', timestamp: 99 });
		assert.equal((await c.next({ type: 'pong' }, 5000)).timestamp, 99);
		/* what needs Redis answers UNAVAILABLE, at once now that the shard is known down */
		const r = await publishHttp(a, { symbol: 'FROZEN', data: { price: 1 } });
		assert.equal(r.status, 503, r.text);
		assert.equal(r.json.error.code, 'UNAVAILABLE');
		const m = await httpRequest(a, 'GET', '/metrics');
		assert.match(m.text, /^quotecast_cluster_up 0$/m);
	} finally {
		redis.signal('SIGCONT');
	}
	for (const s of [a, b])
		await waitFor(async () => (await httpRequest(s, 'GET', '/readyz')).status === 200,
			{ timeoutMs: 20000, what: `${s.label} ready again` });
	await seesAll(a, [`sa-${run}`, `sb-${run}`]);
	await seesAll(b, [`sa-${run}`, `sb-${run}`]);
	assert.ok((await getStats(a)).cluster.reconnects >= 1);
	const r = await publishHttp(a, { symbol: 'FROZEN', data: { price: 2 } });
	assert.equal(r.status, 200, r.text);
	assert.equal(r.json.accepted, 1);
	/* the publish answered UNAVAILABLE did not happen later either: it waited in the frozen
	 * Redis and ran after SIGCONT, past its deadline (it took seq 1 before) */
	const buf = await c.request('get_buffered_data', { symbol: 'FROZEN' });
	assert.equal(buf.success, true, JSON.stringify(buf));
	assert.deepEqual(buf.data.messages.map((m) => [m.seq, m.data.price]), [[1, 2]]);
});

/*
 * A node whose loop is held up (here SIGSTOPped, as a long fan-out pass would) while Redis keeps
 * answering finds the answers waiting when it runs again: that is not a stalled Redis, and the
 * link stays up. Commands are in flight all the time (a pump of publish batches), so each stop
 * leaves answers unread past cluster.timeout_ms; before the fix every stop cost a reconnect.
 */
test('a node held up longer than cluster.timeout_ms keeps its Redis link when the answers are there', async () => {
	const url = await sharedRedisUrl();
	const id = `busy-${run}`;
	const a = await startServer({
		label: id,
		env: { QUOTECAST_CLUSTER_REDIS: url, QUOTECAST_CLUSTER_NODE_ID: id,
			QUOTECAST_CLUSTER_TIMEOUT_MS: '200' },
	});
	servers.push(a);
	await seesAll(a, [id]);
	const sym = uniqueSymbol('BUSY');
	let pumping = true, published = 0, late = 0;
	const pump = (async () => {
		for (let n = 0; pumping; n++) {
			const ticks = Array.from({ length: 200 }, (_, i) => ({ symbol: sym, data: { price: n * 200 + i } }));
			const r = await publishHttp(a, { ticks });
			if (r.status === 503) {
				/* ticks queued for Redis but written only after the hold-up (later than their
				 * deadline): not done, and said so; the others of the batch were */
				assert.equal(r.json.error.code, 'UNAVAILABLE', r.text);
				published += Number(/\((\d+) accepted/.exec(r.json.error.message)[1]);
				late++;
				continue;
			}
			assert.equal(r.status, 200, r.text);
			published += r.json.accepted;
		}
	})();
	await waitFor(() => published > 0, { timeoutMs: 15000, what: 'the pump to run' });
	const before = (await getStats(a)).cluster;
	for (let i = 0; i < 5; i++) {
		a.child.kill('SIGSTOP');
		await new Promise((r) => setTimeout(r, 600));
		a.child.kill('SIGCONT');
		await new Promise((r) => setTimeout(r, 300));
	}
	pumping = false;
	await pump;
	const st = (await getStats(a)).cluster;
	assert.equal(st.timeouts, before.timeouts, JSON.stringify(st));
	assert.equal(st.reconnects, before.reconnects, JSON.stringify(st));
	assert.equal(st.connected, true);
	/* ticks refused past their deadline are counted */
	if (late)
		assert.ok(st.late >= 1, JSON.stringify(st));
	/* exact: every tick said accepted has a seq, none said not done took one */
	const c = await connect(a);
	const buf = await c.request('get_buffered_data', { symbol: sym, limit: 1 });
	assert.equal(buf.data.last_seq, published, `${late} batch(es) partly late`);
});

test('a publish batch partly past cluster.max_inflight answers LIMIT_EXCEEDED with what was accepted', async () => {
	const url = await sharedRedisUrl();
	const id = `full-${run}`;
	const a = await startServer({
		label: id,
		env: { QUOTECAST_CLUSTER_REDIS: url, QUOTECAST_CLUSTER_NODE_ID: id,
			QUOTECAST_CLUSTER_MAX_INFLIGHT: '8' },
	});
	servers.push(a);
	await seesAll(a, [id]);
	const sym = uniqueSymbol('FULL');
	const ticks = Array.from({ length: 100 }, (_, i) => ({ symbol: sym, data: { price: i } }));
	const r = await publishHttp(a, { ticks });
	assert.equal(r.status, 429, r.text);
	assert.equal(r.json.error.code, 'LIMIT_EXCEEDED');
	assert.match(r.json.error.message, /^cluster\.max_inflight: /);
	const accepted = Number(/\((\d+) accepted/.exec(r.json.error.message)[1]);
	assert.ok(accepted >= 1 && accepted <= 8, r.json.error.message);
	/* exact: the accepted ones have seqs 1..accepted, nothing else was published */
	const c = await connect(a);
	await waitFor(async () => (await c.request('get_buffered_data', { symbol: sym, limit: 1 }))
		.data?.last_seq === accepted, { timeoutMs: 5000, what: 'the accepted ticks in the log' });
	const st = await getStats(a);
	assert.ok(st.limits.refused['cluster.max_inflight'] >= 100 - accepted - 8, JSON.stringify(st.limits));
});

test('Redis restarted empty: the nodes reconnect and announce themselves again', async () => {
	const redis = await startRedis();
	after(() => redis.destroy());
	const a = await node(redis.url, `ra-${run}`);
	const b = await node(redis.url, `rb-${run}`);
	servers.push(a, b);
	await seesAll(a, [`ra-${run}`, `rb-${run}`]);
	await redis.stop();
	await waitFor(async () => (await httpRequest(a, 'GET', '/readyz')).status === 503,
		{ timeoutMs: 15000, what: 'a not ready without Redis' });
	await redis.start();
	await seesAll(a, [`ra-${run}`, `rb-${run}`]);
	await seesAll(b, [`ra-${run}`, `rb-${run}`]);
	assert.equal((await httpRequest(b, 'GET', '/readyz')).status, 200);
});

/* the environment without the test runner's own QUOTECAST_* variables, which the binary refuses */
function cleanEnv(extra) {
	const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('QUOTECAST_')));
	return { ...env, ...extra };
}

test('cluster.redis is checked at start-up, naming the key', () => {
	for (const [value, why] of [['http://127.0.0.1:6379', /must start with redis:\/\//],
		['redis://127.0.0.1:0', /port/], ['redis://u:p@127.0.0.1', /no user, password/]]) {
		const r = spawnSync(BIN, ['--check-config'], {
			env: cleanEnv({ QUOTECAST_CLUSTER_REDIS: value }), encoding: 'utf8', timeout: 10000,
		});
		assert.notEqual(r.status, 0);
		assert.match(r.stderr + r.stdout, /cluster\.redis/);
		assert.match(r.stderr + r.stdout, why);
	}
	const bad = spawnSync(BIN, ['--check-config'], {
		env: cleanEnv({ QUOTECAST_CLUSTER_NODE_ID: 'two words' }), encoding: 'utf8', timeout: 10000,
	});
	assert.notEqual(bad.status, 0);
	assert.match(bad.stderr + bad.stdout, /cluster\.node_id/);
});
