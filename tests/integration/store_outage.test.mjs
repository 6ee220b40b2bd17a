// The store going away (issue 6; SPEC 1 /readyz, 2.1 UNAVAILABLE, 4 store stats): with the
// database frozen (SIGSTOP) pings and ticks keep flowing, the durable request in flight waits
// (it never times out), the ones queued behind it fail with UNAVAILABLE after
// store.timeout_ms, and /readyz says 503 while the statement in flight is overdue; SIGCONT
// completes it. With the database killed every durable request is UNAVAILABLE and changes
// nothing, /readyz is 503 and store.connected false, the rest keeps working, and the server
// reconnects by itself once the database is back. A server whose database is unreachable, or
// newer than the binary, does not start. Each outage test has a cluster of its own.

import assert from 'node:assert/strict';
import {
	test, afterEach, sleep, waitFor, withTimeout, Server, BIN, freePort, connect,
} from './lib/harness.mjs';
import { privateCluster, sharedDb, psql } from './lib/pg.mjs';
import {
	unique, ev, open, ok, fails, subscribeRoom, publish, readyz, store, rows, one, median,
	pingRtt, tickRtt, serverSet, waitStats, take,
} from './lib/persist.mjs';

const STORE_TIMEOUT_MS = 1000;
/* what migration 3 added, taken away again: a database as schema 2 left it */
/* and what migration 4 added (the rooms' logs, SPEC 2.9): a database as schema 3 left it */
/* and what migration 5 added (the inboxes' logs, SPEC 2.9): a database as schema 4 left it */
/* and what migration 6 added (subscriptions' max_hz, SPEC 2.11): a database as schema 5 left it */
const SCHEMA_6_UNDONE = 'ALTER TABLE subscriptions DROP COLUMN max_hz;\n' +
	'DELETE FROM schema_migrations WHERE version = 6;\n';
const SCHEMA_5_UNDONE = SCHEMA_6_UNDONE +
	'DROP TABLE inbox_history;\nDROP TABLE inbox_logs;\n' +
	'DELETE FROM schema_migrations WHERE version = 5;\n';
const SCHEMA_4_UNDONE = SCHEMA_5_UNDONE +
	'DROP TABLE room_history;\nALTER TABLE rooms DROP COLUMN log_epoch;\n' +
	'DELETE FROM schema_migrations WHERE version = 4;\n';
const SCHEMA_3_UNDONE = SCHEMA_4_UNDONE + 'DROP TABLE room_log;\nDROP TABLE offline_cursors;\n' +
	'ALTER TABLE offline_messages DROP COLUMN gseq;\n' +
	'DELETE FROM schema_migrations WHERE version = 3;\n';
const SAMPLES = 50;
const MEDIAN_BOUND_MS = 200;
const show = (v) => JSON.stringify(v);

const servers = serverSet({ label: 'outage',
	env: { QUOTECAST_STORE_TIMEOUT_MS: String(STORE_TIMEOUT_MS) } });
const { up, down } = servers;

afterEach(() => servers.cleanup());

/** run @fn with a private cluster that is deleted afterwards (thawed first if frozen) */
async function withCluster(fn) {
	const cluster = await privateCluster();
	try {
		return await fn(cluster);
	} finally {
		try {
			if (cluster.pid() !== null)
				cluster.sigcont();
		} catch {
			/* not running */
		}
		await servers.cleanup();
		await cluster.stop();
	}
}

/** @n pings and @n ticks (publisher @pub to subscriber @sub on @sym): their round trips */
async function roundTrips(n, c, pub, sub, sym, base) {
	const pings = [];
	const ticks = [];
	for (let i = 0; i < n; i++) {
		pings.push(await pingRtt(c));
		ticks.push(await tickRtt(pub, sub, sym, base + i));
	}
	return { pings, ticks };
}

const fmtMs = (x) => `${x.toFixed(2)} ms`;

/** the response to @request_id, if it has arrived (not consumed) */
const answered = (c, id) => c.queue.find((m) => m.type === 'response' && m.request_id === id);

test('database frozen (SIGSTOP): pings and ticks keep flowing; the durable request in flight ' +
	'waits, the one behind it fails with UNAVAILABLE after store.timeout_ms; /readyz 503 while ' +
	'overdue; SIGCONT completes it', { timeout: 90000 }, async (t) => {
	await withCluster(async (cluster) => {
		const s = await up(cluster.url);
		const owner = await open(s, unique('owen'));
		const watcher = await open(s, unique('wes'));
		const pub = await open(s, unique('pub'), 'publisher');
		const sym = unique('LIVE');
		await ok(watcher, 'subscribe_market_stream', { symbol: sym, snapshot: false });
		assert.equal((await readyz(s)).status, 200);

		const before = await roundTrips(SAMPLES, owner, pub, watcher, sym, 1000);

		cluster.sigstop();
		const roomA = unique('frozenA');
		const roomB = unique('frozenB');
		const idA = `${roomA}-req`;
		const idB = `${roomB}-req`;
		const sentA = Date.now();
		owner.send({ type: 'request', request_id: idA, action: 'create_room',
			payload: { room: roomA } });
		await sleep(100);
		const sentB = Date.now();
		owner.send({ type: 'request', request_id: idB, action: 'create_room',
			payload: { room: roomB } });

		const during = await roundTrips(SAMPLES, owner, pub, watcher, sym, 2000);
		const med = {
			pingsBefore: median(before.pings), pingsDuring: median(during.pings),
			ticksBefore: median(before.ticks), ticksDuring: median(during.ticks),
		};
		t.diagnostic(`SIGSTOP latency medians over ${SAMPLES} round trips each: ping ` +
			`${fmtMs(med.pingsBefore)} before, ${fmtMs(med.pingsDuring)} during; tick ` +
			`(publish to subscriber) ${fmtMs(med.ticksBefore)} before, ` +
			`${fmtMs(med.ticksDuring)} during`);
		assert.ok(med.pingsDuring < MEDIAN_BOUND_MS, show(med));
		assert.ok(med.ticksDuring < MEDIAN_BOUND_MS, show(med));

		/* B waited in the queue: UNAVAILABLE once it is older than store.timeout_ms */
		const rB = await owner.next({ type: 'response', request_id: idB }, 5000);
		const waitedB = Date.now() - sentB;
		assert.equal(rB.success, false, show(rB));
		assert.equal(rB.error.code, 'UNAVAILABLE', show(rB));
		assert.ok(waitedB >= STORE_TIMEOUT_MS - 100, `B failed after ${waitedB} ms`);
		t.diagnostic(`the queued create_room failed after ${waitedB} ms: ${show(rB.error)}`);

		/* A is in flight: overdue makes /readyz 503 (stalled), and A is still not answered */
		const r = await waitFor(async () => {
			const x = await readyz(s);
			return x.status === 503 ? x : null;
		}, { timeoutMs: 5000, what: '/readyz 503 while the statement in flight is overdue' });
		assert.match(r.json?.reason ?? '', /store/i, r.text);
		const st = await store(s);
		assert.equal(st.state, 'stalled', show(st));
		assert.equal(st.connected, true, show(st));
		assert.equal(st.pending, 1, `A in flight: ${show(st)}`);
		await fails(owner, 'get_room', { room: roomB }, 'NOT_FOUND');
		await fails(owner, 'get_room', { room: roomA }, 'NOT_FOUND');
		while (Date.now() - sentA < 3 * STORE_TIMEOUT_MS)
			await sleep(100);
		assert.equal(answered(owner, idA), undefined,
			`the statement in flight never times out: ${owner.describe()}`);

		cluster.sigcont();
		const rA = await owner.next({ type: 'response', request_id: idA }, 10000);
		assert.equal(rA.success, true, show(rA));
		assert.equal(rA.data.room, roomA);
		t.diagnostic(`the create_room in flight was answered ${Date.now() - sentA} ms after ` +
			'it was sent (the database was frozen for most of it)');
		await waitFor(async () => (await readyz(s)).status === 200,
			{ timeoutMs: 5000, what: '/readyz 200 after SIGCONT' });
		assert.equal((await store(s)).state, 'connected');
		await ok(owner, 'get_room', { room: roomA });
		await fails(owner, 'get_room', { room: roomB }, 'NOT_FOUND');
		assert.equal(await one(cluster.url, `SELECT count(*) FROM rooms WHERE name IN ` +
			`('${roomA}', '${roomB}')`), '1');
		await ok(owner, 'create_room', { room: roomB });
		await down(s);
	});
});

test('database killed: durable requests (in flight and new) get UNAVAILABLE and change ' +
	'nothing; /readyz 503, store.connected false; pings, ticks and room messages go on; once ' +
	'it is back the server reconnects by itself', { timeout: 90000 }, async (t) => {
	await withCluster(async (cluster) => {
		const s = await up(cluster.url);
		const owner = await open(s, unique('kim'));
		const [x, y, z, m] = ['xan', 'yul', 'zed', 'max'].map(unique);
		const room = unique('before');
		const desk = unique('desk');
		await ok(owner, 'create_room', { room, type: 'public' });
		await ok(owner, 'create_room', { room: desk, type: 'private' });
		await ok(owner, 'add_member', { room: desk, user_id: x });
		const member = await open(s, m);
		assert.equal((await subscribeRoom(member, room)).success, true);
		assert.equal((await subscribeRoom(owner, room)).success, true);
		const sym = unique('K');
		const sub = await ok(owner, 'create_subscription', { symbol: sym, fields: ['price'],
			filter: { op: 'and', conditions: [{ field: 'price', cmp: 'gt', value: 10 }] },
			alert: { priority: 'high' } });
		const pub = await open(s, unique('pub'), 'publisher');
		await publish(pub, sym, { price: 20 });
		const alert = await owner.next(ev('alert'));
		const watcher = await open(s, unique('wes'));
		await ok(watcher, 'subscribe_market_stream', { symbol: sym, snapshot: false });
		const deskBefore = await ok(owner, 'get_room', { room: desk });
		const membersBefore = (await ok(owner, 'get_room_members', { room: desk })).members
			.map((e) => [e.user_id, e.role]).sort();
		const subsBefore = (await ok(owner, 'list_subscriptions', {})).subscriptions;

		/* a statement in flight when the database dies */
		cluster.sigstop();
		const lost = unique('lost');
		owner.send({ type: 'request', request_id: 'in-flight', action: 'create_room',
			payload: { room: lost } });
		await sleep(200);
		await cluster.kill();
		const killedAt = Date.now();
		const rLost = await owner.next({ type: 'response', request_id: 'in-flight' }, 5000);
		assert.equal(rLost.error?.code, 'UNAVAILABLE', show(rLost));
		t.diagnostic(`in flight at the kill: answered ${Date.now() - killedAt} ms after it ` +
			`with ${show(rLost.error)}`);

		const r = await waitFor(async () => {
			const q = await readyz(s);
			return q.status === 503 ? q : null;
		}, { timeoutMs: 5000, what: '/readyz 503 after the kill' });
		assert.equal(r.json?.status, 'unavailable', r.text);
		assert.match(r.json?.reason ?? '', /store.*not connected/i, r.text);
		const st = await store(s);
		assert.equal(st.connected, false, show(st));
		assert.equal(st.configured, true, show(st));

		/* every durable request: UNAVAILABLE, and memory unchanged */
		const U = 'UNAVAILABLE';
		await fails(owner, 'create_room', { room: lost }, U);
		await fails(owner, 'get_room', { room: lost }, 'NOT_FOUND');
		await fails(owner, 'delete_room', { room: desk }, U);
		await fails(owner, 'set_room_status', { room: desk, status: 'archived' }, U);
		await fails(owner, 'add_member', { room: desk, user_id: y }, U);
		await fails(owner, 'remove_member', { room: desk, user_id: x }, U);
		await fails(owner, 'set_member_role', { room: desk, user_id: x, role: 'admin' }, U);
		assert.deepEqual(await ok(owner, 'get_room', { room: desk }), deskBefore);
		assert.deepEqual((await ok(owner, 'get_room_members', { room: desk })).members
			.map((e) => [e.user_id, e.role]).sort(), membersBefore);
		const zc = await open(s, z);
		const zj = await subscribeRoom(zc, room);
		assert.equal(zj.error?.code, U, `joining a created room is durable: ${show(zj)}`);
		await fails(zc, 'send_message', { room, content: 'not a member' }, 'FORBIDDEN');
		assert.ok(!(await ok(owner, 'get_room_members', { room })).members
			.some((e) => e.user_id === z), 'z did not become a member');
		await fails(owner, 'create_subscription', { symbol: unique('NEW') }, U);
		await fails(owner, 'update_subscription', { subscription_id: sub.subscription_id,
			version: 1, name: 'x' }, U);
		await fails(owner, 'delete_subscription', { subscription_id: sub.subscription_id }, U);
		assert.deepEqual((await ok(owner, 'list_subscriptions', {})).subscriptions, subsBefore);
		await fails(owner, 'ack_alert', { alert_id: alert.data.alert_id }, U);

		/* what needs no store goes on */
		for (let i = 0; i < 5; i++) {
			await pingRtt(owner);
			await tickRtt(pub, watcher, sym, 100 + i);
		}
		const sent = await ok(owner, 'send_message', { room, content: 'still here' });
		assert.equal(sent.delivered, 2, show(sent));
		const got = await member.next(ev('room_message', { room }));
		assert.equal(got.data.content, 'still here');

		/* down for a while: the server keeps trying (with back-off) and keeps serving */
		await sleep(2000);
		assert.equal((await readyz(s)).status, 503);
		await pingRtt(owner);
		await tickRtt(pub, watcher, sym, 200);
		const restartedAt = Date.now();
		await cluster.start();
		await waitFor(async () => (await readyz(s)).status === 200,
			{ timeoutMs: 15000, what: '/readyz 200 after the database is back' });
		const back = Date.now() - restartedAt;
		t.diagnostic(`reconnected ${back} ms after the database was started again ` +
			`(${restartedAt - killedAt} ms after the kill)`);
		const st2 = await store(s);
		assert.equal(st2.connected, true, show(st2));
		assert.equal(st2.state, 'connected', show(st2));

		/* durable requests work again, and the database had none of the refused ones */
		assert.equal(await one(cluster.url, `SELECT count(*) FROM rooms WHERE name = '${lost}'`),
			'0');
		await ok(owner, 'create_room', { room: lost });
		assert.equal(await one(cluster.url, `SELECT count(*) FROM rooms WHERE name = '${lost}'`),
			'1');
		await ok(owner, 'add_member', { room: desk, user_id: y });
		await ok(owner, 'ack_alert', { alert_id: alert.data.alert_id });
		const z2 = await subscribeRoom(zc, room);
		assert.equal(z2.success, true, show(z2));
		assert.deepEqual(await rows(cluster.url, `SELECT user_id, role FROM room_members WHERE ` +
			`room = '${desk}' ORDER BY user_id`),
		[...membersBefore, [y, 'member']].sort());
		await down(s);
	});
});

test('database frozen while an offline message is written, and its user connects meanwhile: ' +
	'the message arrives once after SIGCONT, and the server still exits cleanly',
{ timeout: 60000 }, async () => {
	await withCluster(async (cluster) => {
		const s = await up(cluster.url);
		const admin = await open(s, unique('root'), 'admin');
		const u = unique('lou');
		cluster.sigstop();
		const r = await ok(admin, 'send_to_user', { user_id: u, content: 'while frozen' });
		assert.deepEqual(r.offline, [u], show(r));
		const c = await open(s, u);
		await c.nothing((m) => m.event === 'direct_message', 300);
		cluster.sigcont();
		const got = await c.next(ev('direct_message'), 5000);
		assert.equal(got.data.content, 'while frozen');
		await c.nothing((m) => m.event === 'direct_message', 300);
		const c2 = await open(s, u);
		await c2.nothing((m) => m.event === 'direct_message', 300);
		await waitFor(async () => (await store(s)).pending === 0,
			{ timeoutMs: 5000, what: 'the store has written everything' });
		assert.equal(await one(cluster.url, 'SELECT count(*) FROM offline_messages'), '0',
			'delivered: its row is deleted');
		/* the server must exit 0: a leak report from the sanitizers fails this */
		await down(s);
	});
});

/* spawn quotecast expecting it to refuse to start; resolves {code, signal, output} */
async function refusedStart(args, env = {}) {
	const srv = new Server({ bin: BIN, port: await freePort(), env, args, label: 'refused' });
	srv.stopping = true;
	const st = await withTimeout(srv.exited, 30000,
		() => `quotecast did not exit; output:\n${srv.output()}`);
	return { ...st, output: srv.output() };
}

test('a server whose --db points to a dead port exits non-zero, naming the store', async () => {
	const port = await freePort();
	const r = await refusedStart(['--db', `postgresql://postgres@127.0.0.1:${port}/postgres`],
		{ QUOTECAST_STORE_CONNECT_TIMEOUT_S: '3' });
	assert.notEqual(r.code, 0, `exit status; output:\n${r.output}`);
	assert.equal(r.signal, null, `no crash; output:\n${r.output}`);
	assert.match(r.output, /store/i, r.output);
	assert.match(r.output, /connect/i, r.output);
	assert.match(r.output, new RegExp(String(port)), 'the message names the address');
});

test('a database whose schema is newer than the binary is refused with a message saying so',
	async () => {
		const url = await sharedDb('outage_schema');
		const s = await up(url);
		await down(s);
		assert.equal(await one(url, 'SELECT max(version) FROM schema_migrations'), '6');
		await psql(url, 'INSERT INTO schema_migrations (version, name, applied_at) ' +
			'VALUES (999, \'from the future\', 0);\n');
		const r = await refusedStart(['--db', url]);
		assert.notEqual(r.code, 0, `exit status; output:\n${r.output}`);
		assert.equal(r.signal, null, `no crash; output:\n${r.output}`);
		assert.match(r.output, /newer/, r.output);
		assert.match(r.output, /999/, r.output);
		assert.deepEqual(await rows(url, 'SELECT version FROM schema_migrations ORDER BY 1'),
			[['1'], ['2'], ['3'], ['4'], ['5'], ['6'], ['999']], 'nothing changed');
	});

test('a database at an older schema version gets only the migrations it lacks, once',
	async () => {
		const url = await sharedDb('outage_migrate');
		let s = await up(url);
		await down(s);
		/* what a database made by the first release (schema 1) looks like */
		await psql(url, SCHEMA_3_UNDONE + 'DELETE FROM schema_migrations WHERE version = 2;\n' +
			'ALTER TABLE offline_messages DROP COLUMN key;\n');
		s = await up(url);
		assert.match(s.output(), /schema at version 6 \(applied: 2 offline message keys, 3 room offline logs, 4 room history, 5 inbox logs, 6 subscription max_hz\)/,
			s.output());
		assert.equal(await one(url, "SELECT count(*) FROM information_schema.columns " +
			"WHERE table_name = 'offline_messages' AND column_name = 'key'"), '1');
		await down(s);
		s = await up(url);
		assert.match(s.output(), /schema at version 6 \(applied: none\)/, s.output());
		await down(s);
	});

test('a database at schema 2 (a row per offline member) migrates to 3 (one row per room message ' +
	'in the room\'s log): what waited in the old rows is delivered, in order, before what comes ' +
	'after, once', async () => {
	const url = await sharedDb('outage_migrate3');
	let s = await up(url);
	const owner = unique('owner');
	const carol = unique('carol');
	const room = unique('desk');
	let o = await open(s, owner);
	await ok(o, 'create_room', { room });
	await ok(o, 'add_member', { room, user_id: carol });
	await o.close();
	await down(s);
	/* schema 2: the room message waits as carol's own row, written by the previous release */
	const t0 = Date.now() - 60000;
	await psql(url, SCHEMA_3_UNDONE +
		`INSERT INTO offline_messages (user_id, event, data, created_at, key) VALUES ('${carol}', ` +
		`'room_message', '{"room":"${room}","message_id":"m-old-1","message_type":"text",` +
		`"from":"${owner}","content":"from schema 2","timestamp":${t0}}', ${t0}, 'o-old-1');\n`);
	assert.equal(await one(url, 'SELECT max(version) FROM schema_migrations'), '2');

	s = await up(url);
	assert.match(s.output(), /schema at version 6 \(applied: 3 room offline logs, 4 room history, 5 inbox logs, 6 subscription max_hz\)/, s.output());
	await waitStats(s, (st) => st.offline?.queued === 1, 'the old row is queued');
	o = await open(s, owner);
	await ok(o, 'send_message', { room, content: 'from schema 3' });
	await waitStats(s, (st) => st.offline?.queued === 2 && st.store?.pending === 0,
		'and the new message, written');
	assert.equal(await one(url, 'SELECT count(*) FROM room_log'), '1');
	const c = await open(s, carol);
	const got = await take(c, 2);
	assert.deepEqual(got.map((m) => [m.event, m.data.content, m.data.offline]),
		[['room_message', 'from schema 2', true], ['room_message', 'from schema 3', true]]);
	await c.nothing(undefined, 250);
	await waitStats(s, (st) => st.offline?.queued === 0 && st.store?.pending === 0,
		'delivered and forgotten');
	assert.equal(await one(url, 'SELECT count(*) FROM offline_messages'), '0');
	assert.equal(await one(url, 'SELECT count(*) FROM room_log'), '0');
	assert.equal(await one(url, `SELECT count(*) FROM offline_cursors WHERE user_id = '${carol}'`),
		'1', 'carol\'s position');
	await c.close();
	await o.close();
	s = await servers.bounce(s, url);
	const c2 = await open(s, carol);
	await c2.nothing(undefined, 250);
	await down(s);
});

test('a database at schema 4 migrates to 5 (inbox logs): what waited offline is delivered ' +
	'with inbox positions, and they survive a restart', async () => {
	const url = await sharedDb('outage_migrate5');
	let s = await up(url);
	const dora = unique('dora');
	let admin = await open(s, unique('admin'), 'admin');
	await ok(admin, 'send_to_user', { user_id: dora, content: 'from schema 4' });
	await waitStats(s, (st) => st.offline?.queued === 1 && st.store?.pending === 0,
		'queued offline');
	await admin.close();
	await down(s);
	await psql(url, SCHEMA_5_UNDONE);
	assert.equal(await one(url, 'SELECT max(version) FROM schema_migrations'), '4');

	s = await up(url);
	assert.match(s.output(), /schema at version 6 \(applied: 5 inbox logs, 6 subscription max_hz\)/, s.output());
	let d = await open(s, dora);
	const [m] = (await take(d, 1, (x) => x.event === 'direct_message'))
		.filter((x) => x.event === 'direct_message');
	assert.equal(m.data.content, 'from schema 4');
	assert.equal(m.data.offline, true);
	assert.equal(m.data.seq, 1);
	await waitStats(s, (st) => st.offline?.queued === 0 && st.store?.pending === 0 &&
		st.store?.backlog === 0, 'delivered and written');
	await d.close();
	assert.equal(await one(url, 'SELECT count(*) FROM offline_messages'), '0');
	assert.equal(await one(url, `SELECT count(*) FROM inbox_history WHERE user_id = '${dora}'`),
		'1');

	s = await servers.bounce(s, url);
	d = await connect(s, { query: { user_id: dora, inbox_seq: '0', inbox_epoch: m.data.epoch } });
	assert.deepEqual(d.session.inbox, { recovered: true, seq: 1, epoch: m.data.epoch,
		replayed: 1 }, show(d.session));
	const [again] = await take(d, 1, (x) => x.event === 'direct_message');
	assert.equal(again.data.content, 'from schema 4');
	await d.nothing((x) => x.event === 'direct_message', 250);
	await d.close();
	await down(s);
});

test('while the database is down, offline messages and alerts wait in the backlog, in order, ' +
	'and reach their users once it is back', async () => {
	await withCluster(async (cluster) => {
		const s = await up(cluster.url);
		const away = unique('away');
		const sym = unique('AL').slice(0, 32);
		const admin = await open(s, unique('admin'), 'admin,publisher');
		const owner = await open(s, away);
		await ok(owner, 'create_subscription', { symbol: sym, filter: { op: 'and',
			conditions: [{ field: 'price', cmp: 'gt', value: 100 }] },
		alert: { priority: 'critical' } });
		await owner.close();
		await waitStats(s, (st) => st.total_connections === 1, 'the owner gone');

		await cluster.kill();
		await waitStats(s, (st) => st.store.connected === false, 'store.connected false');
		await ok(admin, 'send_to_user', { user_id: away, content: 'one' });
		await publish(admin, sym, { price: 150 }); /* raises the alert */
		await ok(admin, 'send_to_user', { user_id: away, content: 'two' });
		const held = await waitStats(s, (st) => st.store.backlog === 3, 'three writes held');
		assert.equal(held.store.dropped, 0, show(held.store));
		assert.equal(held.offline.queued, 0, 'nothing counts as queued before its row exists');

		await cluster.start();
		const after = await waitStats(s, (st) => st.store.connected && st.store.backlog === 0 &&
			st.offline.queued === 3, 'the backlog written', 15000);
		assert.equal(after.store.dropped, 0, show(after.store));
		const back = await open(s, away);
		const got = await take(back, 3, (m) => m.type === 'event' && m.data?.offline);
		const offline = got.filter((m) => m.data?.offline);
		assert.deepEqual(offline.map((m) => m.event),
			['direct_message', 'alert', 'direct_message'], show(offline));
		assert.equal(offline[0].data.content, 'one');
		assert.equal(offline[1].data.priority, 'critical');
		assert.equal(offline[2].data.content, 'two');
		assert.equal(await one(cluster.url,
			`SELECT count(*) FROM alerts WHERE user_id = '${away}'`), '1');
		await back.close();
		await admin.close();
		await down(s);
	});
});
