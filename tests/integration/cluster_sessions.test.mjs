// Inboxes across nodes (issue 13, SPEC 2.9 and 2.10): in cluster mode a user's inbox entry
// (send_to_user, /api/broadcast to_users, offline deliveries) is numbered by one script on the
// user's Redis shard and reaches the user's sessions on every node once, with the same inbox
// seq and epoch everywhere; a user with no session anywhere in the cluster gets it through the
// offline queue (rows of the shared PostgreSQL), on the next connection on any node; Redis
// stalled: the request answers UNAVAILABLE.

import assert from 'node:assert/strict';
import {
	test, afterEach, connect, closeAllClients, httpRequest, stopServer, waitFor,
} from './lib/harness.mjs';
import { startRedis, sharedRedisUrl } from './lib/redis.mjs';
import { sharedDb } from './lib/pg.mjs';
import { unique, open, ok, startOnDb } from './lib/persist.mjs';

const servers = [];
afterEach(async () => {
	await closeAllClients();
	for (const s of servers.splice(0))
		await stopServer(s);
});

let n = 0;
/* a node on Redis @redis (and PostgreSQL @db, if given) */
async function node(redis, db, env = {}) {
	const id = `${unique('n')}-${++n}`;
	const s = await startOnDb(db ?? '', {
		label: id,
		env: { QUOTECAST_CLUSTER_REDIS: redis, QUOTECAST_CLUSTER_NODE_ID: id,
			QUOTECAST_CLUSTER_TIMEOUT_MS: '500', ...env },
	});
	servers.push(s);
	return s;
}

const isDm = (content) => (m) => m.type === 'event' && m.event === 'direct_message' &&
	m.data.content === content;

/* the nodes' channels are held: a session's node listens before the test sends */
async function settled(...servers_) {
	for (const s of servers_) {
		await waitFor(async () => {
			const r = await httpRequest(s, 'GET', '/api/stats');
			return r.json?.cluster?.connected === true;
		}, { timeoutMs: 15000, what: 'the node to be connected to Redis' });
	}
}

test('send_to_user from one node reaches the user on the other, once per connection, with ' +
	'one inbox seq and epoch everywhere', async () => {
	const redis = await sharedRedisUrl();
	const a = await node(redis);
	const b = await node(redis);
	await settled(a, b);
	const bob = unique('bob');
	const carol = unique('carol');
	const admin = await open(a, unique('admin'), 'admin');
	const bobB = await open(b, bob);
	const carolA = await open(a, carol);
	const carolB = await open(b, carol);

	let r = await ok(admin, 'send_to_user', { user_id: bob, content: 'hi bob' });
	assert.equal(r.delivered, 1);
	assert.deepEqual(r.offline, []);
	const m1 = await bobB.next(isDm('hi bob'), 5000);
	assert.equal(m1.data.seq, 1);
	assert.equal(typeof m1.data.epoch, 'string');

	r = await ok(admin, 'send_to_user', { user_ids: [carol], content: 'both' });
	assert.equal(r.delivered, 2);
	const onA = await carolA.next(isDm('both'), 5000);
	const onB = await carolB.next(isDm('both'), 5000);
	assert.equal(onA.data.seq, 1);
	assert.equal(onB.data.seq, 1);
	assert.equal(onA.data.epoch, onB.data.epoch);
	r = await ok(admin, 'send_to_user', { user_id: carol, content: 'again' });
	assert.equal((await carolA.next(isDm('again'), 5000)).data.seq, 2);
	assert.equal((await carolB.next(isDm('again'), 5000)).data.seq, 2);
	/* each connection once */
	await carolA.nothing(isDm('both'), 300);
	await carolB.nothing(isDm('both'), 300);
	await bobB.nothing(isDm('hi bob'), 100);
});

test('/api/broadcast to_users on one node reaches a user on the other', async () => {
	const redis = await sharedRedisUrl();
	const a = await node(redis);
	const b = await node(redis);
	await settled(a, b);
	const dave = unique('dave');
	const daveA = await open(a, dave);
	const r = await httpRequest(b, 'POST', '/api/broadcast',
		{ body: JSON.stringify({ to_users: [dave], content: 'news' }),
			headers: { 'content-type': 'application/json' } });
	assert.equal(r.status, 200, r.text);
	assert.equal(r.json.data?.delivered ?? r.json.delivered, 1, r.text);
	const m = await daveA.next(isDm('news'), 5000);
	assert.equal(m.data.from, 'system');
	assert.equal(m.data.seq, 1);
});

test('a user with no session anywhere gets it through the offline queue, on the next ' +
	'connection on either node, once', async () => {
	const redis = await sharedRedisUrl();
	const db = await sharedDb('csess');
	const a = await node(redis, db);
	const b = await node(redis, db);
	await settled(a, b);
	const erin = unique('erin');
	const admin = await open(a, unique('admin'), 'admin');
	let r = await ok(admin, 'send_to_user', { user_id: erin, content: 'while away 1' });
	assert.deepEqual(r.offline, [erin]);
	r = await ok(admin, 'send_to_user', { user_id: erin, content: 'while away 2' });
	assert.deepEqual(r.offline, [erin]);
	/* she comes back on the other node: both, in order, offline, numbered in her inbox */
	const e1 = await connect(b, { query: { user_id: erin } });
	const d1 = await e1.next(isDm('while away 1'), 8000);
	const d2 = await e1.next(isDm('while away 2'), 8000);
	assert.equal(d1.data.offline, true);
	assert.ok(d2.data.seq > d1.data.seq);
	/* a second connection, on the first node, gets nothing of it again */
	const e2 = await connect(a, { query: { user_id: erin } });
	await e2.nothing(isDm('while away 1'), 500);
	await e1.close();
	await e2.close();
	/* gone everywhere: offline again; back on the first node this time */
	await waitFor(async () => {
		const x = await ok(admin, 'send_to_user', { user_id: erin, content: 'probe' });
		return x.offline.length === 1;
	}, { timeoutMs: 10000, what: 'erin to have no session' });
	const e3 = await connect(a, { query: { user_id: erin } });
	await e3.next(isDm('probe'), 8000);
	const e4 = await connect(b, { query: { user_id: erin } });
	await e4.nothing(isDm('probe'), 500);
});

test('Redis stalled: send_to_user answers UNAVAILABLE, and works again after', async () => {
	const redis = await startRedis();
	try {
		const a = await node(redis.url);
		await settled(a);
		const fred = unique('fred');
		const admin = await open(a, unique('admin'), 'admin');
		const f = await open(a, fred);
		await ok(admin, 'send_to_user', { user_id: fred, content: 'before' });
		await f.next(isDm('before'), 5000);
		redis.signal('SIGSTOP');
		const r = await admin.request('send_to_user', { user_id: fred, content: 'stalled' },
			{}, 8000);
		assert.equal(r.success, false);
		assert.equal(r.error.code, 'UNAVAILABLE');
		redis.signal('SIGCONT');
		await waitFor(async () => {
			const x = await admin.request('send_to_user', { user_id: fred, content: 'after' },
				{}, 8000);
			return x.success === true;
		}, { timeoutMs: 20000, intervalMs: 500, what: 'send_to_user to work again' });
		await f.next(isDm('after'), 5000);
	} finally {
		await redis.destroy();
	}
});
