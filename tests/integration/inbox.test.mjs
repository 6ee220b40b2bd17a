// Durable inbox logs (issue 12, SPEC 2.9): with a store, a user's inbox (direct messages, alerts,
// offline deliveries) is kept in PostgreSQL (inbox_logs: epoch and last seq; inbox_history: the
// entries), so a client that presents its inbox position on the upgrade
// (?inbox_seq=&inbox_epoch=) after a restart gets exactly what followed it, with the same epoch,
// before what waited offline (which joins the same log as it is delivered: never twice); a
// foreign epoch says recovered:false and replays nothing. The reference client
// (client/quotecast.js) does it by itself when its session is gone.

import assert from 'node:assert/strict';
import { test, afterEach, connect, waitFor, WebSocket } from './lib/harness.mjs';
import { sharedDb } from './lib/pg.mjs';
import { unique, open, ok, take, serverSet, one, publish, waitStats } from './lib/persist.mjs';
import { QuotecastClient } from '../../client/quotecast.js';

const servers = serverSet({ label: 'inbox' });
const { up, bounce, down } = servers;
afterEach(() => servers.cleanup());

const isInbox = (m) => m.type === 'event' &&
	(m.event === 'direct_message' || m.event === 'alert');
const show = (v) => JSON.stringify(v);

/* a connection of @user that presents inbox position @seq/@epoch */
async function openAt(s, user, seq, epoch) {
	const c = await connect(s, { query: { user_id: user, inbox_seq: String(seq),
		inbox_epoch: epoch } });
	c.label = user;
	return c;
}

const what = (m) => (m.event === 'alert' ? `alert:${m.data.data.price}` : m.data.content);

test('a user\'s inbox survives a restart: read back from the client\'s position with the same ' +
	'epoch, exactly the rest, then what waited offline, then live; a foreign epoch says ' +
	'recovered:false', async () => {
	const url = await sharedDb('inbox');
	let s = await up(url);
	const alice = unique('alice');
	const sym = unique('IB').slice(0, 32);
	let admin = await open(s, unique('admin'), 'admin,publisher');
	let a = await open(s, alice);
	await ok(a, 'create_subscription', { symbol: sym, filter: { op: 'and',
		conditions: [{ field: 'price', cmp: 'gt', value: 100 }] }, alert: { priority: 'high' } });
	await ok(admin, 'send_to_user', { user_id: alice, content: 'd1' });
	await ok(admin, 'send_to_user', { user_id: alice, content: 'd2' });
	await publish(admin, sym, { price: 150 }); /* an alert, once its row is written */
	const got = (await take(a, 3, isInbox)).filter(isInbox);
	await ok(admin, 'send_to_user', { user_id: alice, content: 'd3' });
	await ok(admin, 'send_to_user', { user_id: alice, content: 'd4' });
	got.push(...(await take(a, 2, isInbox)).filter(isInbox));
	assert.deepEqual(got.map(what), ['d1', 'd2', 'alert:150', 'd3', 'd4'], show(got));
	const epoch = got[0].data.epoch;
	assert.match(epoch, /^[0-9a-f]{12}$/);
	assert.ok(got.every((m) => m.data.epoch === epoch), show(got));
	assert.deepEqual(got.map((m) => m.data.seq), [1, 2, 3, 4, 5]);
	assert.equal(got[2].data.stream_seq, 1, 'the alert keeps its tick\'s seq');
	const pos = got[1].data.seq; /* alice processed d1 and d2 */
	await waitStats(s, (st) => st.store?.pending === 0 && st.store?.backlog === 0,
		'the store has written everything');
	assert.equal(await one(url, `SELECT count(*) FROM inbox_history WHERE user_id = '${alice}'`),
		'5');
	assert.equal(await one(url, `SELECT epoch || ':' || last_seq FROM inbox_logs ` +
		`WHERE user_id = '${alice}'`), `${epoch}:5`);
	await a.close();
	/* while she is away: a direct message waits in the offline queue */
	await ok(admin, 'send_to_user', { user_id: alice, content: 'away' });
	await waitStats(s, (st) => st.offline?.queued === 1 && st.store?.pending === 0,
		'queued offline');
	await admin.close();

	s = await bounce(s, url);
	a = await openAt(s, alice, pos, epoch);
	assert.deepEqual(a.session.inbox, { recovered: true, seq: 5, epoch, replayed: 3 },
		show(a.session));
	const back = (await take(a, 4, isInbox)).filter(isInbox);
	assert.deepEqual(back.map(what), ['alert:150', 'd3', 'd4', 'away'], show(back));
	assert.deepEqual(back.map((m) => m.data.seq), [3, 4, 5, 6]);
	assert.ok(back.every((m) => m.data.epoch === epoch), show(back));
	assert.equal(back[3].data.offline, true);
	assert.equal(back.slice(0, 3).some((m) => m.data.offline), false);
	await a.nothing(isInbox, 300);
	admin = await open(s, unique('admin'), 'admin');
	await ok(admin, 'send_to_user', { user_id: alice, content: 'live' });
	const live = (await take(a, 1, isInbox)).filter(isInbox);
	assert.equal(live[0].data.content, 'live');
	assert.equal(live[0].data.seq, 7, 'seqs go on after the restart');
	assert.equal(live[0].data.epoch, epoch);
	await a.close();

	/* the offline message was delivered once: a read-back has it in its place, not again */
	a = await openAt(s, alice, 5, epoch);
	const again = (await take(a, 2, isInbox)).filter(isInbox);
	assert.deepEqual(again.map(what), ['away', 'live']);
	await a.nothing(isInbox, 300);
	await a.close();
	assert.equal(await one(url, `SELECT count(*) FROM offline_messages WHERE user_id = ` +
		`'${alice}'`), '0');

	/* a foreign epoch: recovered:false, nothing replayed, live goes on */
	a = await openAt(s, alice, 2, '0123456789ab');
	assert.deepEqual(a.session.inbox, { recovered: false, seq: 7, epoch, replayed: 0 },
		show(a.session));
	await a.nothing(isInbox, 300);
	await ok(admin, 'send_to_user', { user_id: alice, content: 'after' });
	const after = (await take(a, 1, isInbox)).filter(isInbox);
	assert.equal(after[0].data.seq, 8);
	await a.close();
	await admin.close();
	await down(s);
});

test('the reference client reads its inbox back after a restart: every direct message once, ' +
	'in order, recovery says inbox recovered', async () => {
	const url = await sharedDb('inbox_client');
	let s = await up(url);
	const bob = unique('bob');
	const admin0 = await open(s, unique('admin'), 'admin');
	const qc = new QuotecastClient({ url: `ws://127.0.0.1:${s.port}/ws`, userId: bob, WebSocket,
		minDelayMs: 50, maxDelayMs: 300 });
	const seen = [];
	const recoveries = [];
	qc.on('direct_message', (d) => seen.push([d.content, d.seq]));
	qc.on('recovery', (r) => recoveries.push(r));
	try {
		await qc.connect();
		for (let n = 1; n <= 3; n++)
			await ok(admin0, 'send_to_user', { user_id: bob, content: `b${n}` });
		await waitFor(() => seen.length === 3, { what: 'three direct messages' });
		await waitStats(s, (st) => st.store?.pending === 0 && st.store?.backlog === 0,
			'the store has written everything');
		await admin0.close();
		const old = s;
		s = await bounce(old, url);
		qc.opts.url = `ws://127.0.0.1:${s.port}/ws`; /* the restarted server's port */
		/* sent while bob's client is still reconnecting: it waits offline */
		const admin = await open(s, unique('admin'), 'admin');
		await ok(admin, 'send_to_user', { user_id: bob, content: 'b4' });
		await waitFor(() => recoveries.length === 1, { timeoutMs: 10000, what: 'a recovery' });
		assert.equal(recoveries[0].resumed, false, show(recoveries[0]));
		assert.deepEqual(recoveries[0].inbox, { recovered: true }, show(recoveries[0]));
		await ok(admin, 'send_to_user', { user_id: bob, content: 'b5' });
		await waitFor(() => seen.length >= 5, { what: 'five direct messages' });
		await new Promise((r) => setTimeout(r, 300));
		assert.deepEqual(seen, [['b1', 1], ['b2', 2], ['b3', 3], ['b4', 4], ['b5', 5]]);
		await admin.close();
	} finally {
		qc.close();
	}
	await down(s);
});
