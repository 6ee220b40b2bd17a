// Alerts of persisted subscriptions (issue 6; SPEC 2.7): a filter that turns true (an edge)
// on a subscription with an alert makes one alert row and one `alert` event {alert_id,
// subscription_id, symbol, priority, data, timestamp}; crossings need the previous value on
// the other side; a user without a connection gets the alert through the offline queue, also
// after a restart, once; list_alerts shows delivery and acknowledged, ack_alert sets it (and
// it survives a restart), NOT_FOUND for unknown or foreign ids; malformed filters are
// BAD_REQUEST naming the path; changed filters survive restarts. A database per test.

import assert from 'node:assert/strict';
import { test, afterEach } from './lib/harness.mjs';
import { sharedDb } from './lib/pg.mjs';
import {
	unique, ev, open, ok, fails, publish, take, waitStats, rows, one, serverSet,
} from './lib/persist.mjs';

const GRACE_MS = 300;
const show = (v) => JSON.stringify(v);

const servers = serverSet({ label: 'alerts' });
const { up, down, bounce } = servers;

afterEach(() => servers.cleanup());

const crossing = { op: 'and', conditions: [{ field: 'price', cmp: 'crosses_above', value: 100 }] };
const isAlert = (m) => m.type === 'event' && m.event === 'alert';

/** check the documented keys of an alert event's data */
function assertAlert(a, { sub, symbol, priority, data }) {
	assert.equal(typeof a.alert_id, 'string', show(a));
	assert.ok(a.alert_id.length > 0, show(a));
	assert.equal(a.subscription_id, sub, show(a));
	assert.equal(a.symbol, symbol, show(a));
	assert.equal(a.priority, priority, show(a));
	assert.deepEqual(a.data, data, show(a));
	assert.equal(typeof a.timestamp, 'number', show(a));
	assert.ok(Math.abs(a.timestamp - Date.now()) < 60000, `a time in ms: ${show(a)}`);
}

/** the alert rows of @sub: [id, delivery, acknowledged] ordered by time */
const alertRows = (url, sub) => rows(url, `SELECT id, delivery, acknowledged FROM alerts ` +
	`WHERE subscription_id = '${sub}' ORDER BY created_at, id`);

test('crosses_above 100: ticks 90, 110 (an alert), 120 (none), 90, 130 (a second alert); ' +
	'each alert is a row, delivered live', async () => {
	const url = await sharedDb('alerts_cross');
	const s = await up(url);
	const u = unique('ada');
	const sym = unique('X');
	const c = await open(s, u);
	const sub = await ok(c, 'create_subscription', { symbol: sym, fields: ['price'],
		filter: crossing, alert: { priority: 'high' } });
	const p = await open(s, unique('pub'), 'publisher');
	const other = await open(s, unique('otto'));

	await publish(p, sym, { price: 90, volume: 1 });
	await publish(p, sym, { price: 110, volume: 2 });
	const a1 = await c.next(isAlert);
	assertAlert(a1.data, { sub: sub.subscription_id, symbol: sym, priority: 'high',
		data: { price: 110 } });
	assert.notEqual(a1.data.offline, true);
	await publish(p, sym, { price: 120 });
	await c.nothing(isAlert, GRACE_MS);
	await publish(p, sym, { price: 90 });
	await c.nothing(isAlert, GRACE_MS);
	await publish(p, sym, { price: 130 });
	const a2 = await c.next(isAlert);
	assertAlert(a2.data, { sub: sub.subscription_id, symbol: sym, priority: 'high',
		data: { price: 130 } });
	assert.notEqual(a2.data.alert_id, a1.data.alert_id);
	/* a tick without the field does not cross anything */
	await publish(p, sym, { volume: 5 });
	await c.nothing(isAlert, GRACE_MS);
	await other.nothing(isAlert, 0);

	await waitStats(s, (x) => x.store?.pending === 0, 'the store has written everything');
	assert.deepEqual(await alertRows(url, sub.subscription_id),
		[[a1.data.alert_id, 'delivered', 'f'], [a2.data.alert_id, 'delivered', 'f']]);
	const listed = (await ok(c, 'list_alerts', {})).alerts;
	assert.deepEqual(listed.map((a) => [a.alert_id, a.delivery, a.acknowledged]),
		[[a2.data.alert_id, 'delivered', false], [a1.data.alert_id, 'delivered', false]],
		'newest first');
	assertAlert(listed[1], { sub: sub.subscription_id, symbol: sym, priority: 'high',
		data: { price: 110 } });
	assert.equal(listed[1].timestamp, a1.data.timestamp);
	assert.deepEqual((await ok(other, 'list_alerts', {})).alerts, [], 'not another user\'s');
	const one1 = (await ok(c, 'list_alerts', { limit: 1 })).alerts;
	assert.deepEqual(one1.map((a) => a.alert_id), [a2.data.alert_id]);
	const since = (await ok(c, 'list_alerts', { since: a1.data.timestamp })).alerts;
	assert.ok(since.every((a) => a.timestamp > a1.data.timestamp), show(since));
	await down(s);
});

test('a gt filter alerts once while it stays true, again after it was false; without an ' +
	'alert a filter raises nothing', async () => {
	const url = await sharedDb('alerts_gt');
	const s = await up(url);
	const c = await open(s, unique('gus'));
	const sym = unique('G');
	const sub = await ok(c, 'create_subscription', { symbol: sym,
		filter: { op: 'and', conditions: [{ field: 'price', cmp: 'gt', value: 100 }] },
		alert: { priority: 'normal' } });
	await ok(c, 'create_subscription', { symbol: sym,
		filter: { op: 'and', conditions: [{ field: 'price', cmp: 'gt', value: 0 }] } });
	const p = await open(s, unique('pub'), 'publisher');
	await publish(p, sym, { price: 50 });
	await publish(p, sym, { price: 150 });
	const a1 = await c.next(isAlert);
	assertAlert(a1.data, { sub: sub.subscription_id, symbol: sym, priority: 'normal',
		data: { price: 150 } });
	await publish(p, sym, { price: 160 });
	await publish(p, sym, { price: 170, volume: 3 });
	await c.nothing(isAlert, GRACE_MS);
	await publish(p, sym, { price: 50 });
	await publish(p, sym, { price: 180 });
	const a2 = await c.next(isAlert);
	assert.deepEqual(a2.data.data, { price: 180, volume: 3 }, 'all fields: the merged snapshot');
	await c.nothing(isAlert, GRACE_MS);
	await waitStats(s, (x) => x.store?.pending === 0, 'the store has written everything');
	assert.equal(await one(url, 'SELECT count(*) FROM alerts'), '2');
	await down(s);
});

test('an alert for a user with no connection waits in the offline queue: delivered once with ' +
	'offline:true; list_alerts and ack_alert; unknown or foreign ids are NOT_FOUND', async () => {
	const url = await sharedDb('alerts_offline');
	const s = await up(url);
	const u = unique('olive');
	const sym = unique('O');
	const c0 = await open(s, u);
	const sub = await ok(c0, 'create_subscription', { symbol: sym, filter: crossing,
		alert: { priority: 'critical' }, fields: ['price'] });
	await c0.close();
	await waitStats(s, (x) => x.total_users === 0, 'the user has no connection');

	const p = await open(s, unique('pub'), 'publisher');
	await publish(p, sym, { price: 99 });
	await publish(p, sym, { price: 101 });
	await waitStats(s, (x) => x.offline?.queued === 1, 'the alert is queued offline');
	const [[id, delivery]] = await alertRows(url, sub.subscription_id);
	assert.equal(delivery, 'pending');

	const c = await open(s, u);
	const [a] = await take(c, 1);
	assert.equal(a.event, 'alert', `the first after the session: ${show(a)}`);
	assert.equal(a.data.offline, true, show(a));
	assert.equal(a.data.alert_id, id);
	assertAlert(a.data, { sub: sub.subscription_id, symbol: sym, priority: 'critical',
		data: { price: 101 } });
	await c.nothing(isAlert, GRACE_MS);
	const c2 = await open(s, u);
	await c2.nothing(isAlert, GRACE_MS);

	let [listed] = (await ok(c, 'list_alerts', {})).alerts;
	assert.equal(listed.alert_id, id);
	assert.equal(listed.delivery, 'delivered');
	assert.equal(listed.acknowledged, false);
	const ack = await ok(c, 'ack_alert', { alert_id: id });
	assert.equal(ack.alert_id, id);
	assert.equal(ack.acknowledged, true);
	[listed] = (await ok(c, 'list_alerts', {})).alerts;
	assert.equal(listed.acknowledged, true, show(listed));
	assert.deepEqual(await alertRows(url, sub.subscription_id), [[id, 'delivered', 't']]);

	await fails(c, 'ack_alert', { alert_id: 'al-no-such-alert' }, 'NOT_FOUND');
	await fails(c, 'ack_alert', {}, 'BAD_REQUEST');
	const thief = await open(s, unique('tom'));
	await fails(thief, 'ack_alert', { alert_id: id }, 'NOT_FOUND');
	await down(s);
});

test('an undelivered alert survives a restart: delivered once with offline:true on the next ' +
	'connection; the acknowledgement survives the next restart', async () => {
	const url = await sharedDb('alerts_restart');
	let s = await up(url);
	const u = unique('rex');
	const sym = unique('R');
	const c0 = await open(s, u);
	const sub = await ok(c0, 'create_subscription', { symbol: sym, filter: crossing,
		alert: { priority: 'low' } });
	await c0.close();
	await waitStats(s, (x) => x.total_users === 0, 'the user has no connection');
	const p = await open(s, unique('pub'), 'publisher');
	await publish(p, sym, { price: 100, side: 'buy' });
	await publish(p, sym, { price: 100.5 });
	await waitStats(s, (x) => x.offline?.queued === 1, 'the alert is queued offline');
	const [[id, delivery]] = await alertRows(url, sub.subscription_id);
	assert.equal(delivery, 'pending');

	s = await bounce(s, url);
	await waitStats(s, (x) => x.offline?.queued === 1 && x.offline?.users === 1,
		'the pending alert is queued again after the restart');
	const c = await open(s, u);
	const [a] = await take(c, 1);
	assert.equal(a.event, 'alert', `the first after the session: ${show(a)}`);
	assert.equal(a.data.offline, true);
	assert.equal(a.data.alert_id, id);
	assertAlert(a.data, { sub: sub.subscription_id, symbol: sym, priority: 'low',
		data: { price: 100.5, side: 'buy' } });
	await c.nothing(isAlert, GRACE_MS);
	const c2 = await open(s, u);
	await c2.nothing(isAlert, GRACE_MS);
	await ok(c, 'ack_alert', { alert_id: id });

	s = await bounce(s, url);
	const c3 = await open(s, u);
	await c3.nothing(isAlert, GRACE_MS);
	const listed = (await ok(c3, 'list_alerts', {})).alerts;
	assert.deepEqual(listed.map((x) => [x.alert_id, x.delivery, x.acknowledged]),
		[[id, 'delivered', true]]);
	assert.equal(listed[0].timestamp, a.data.timestamp);
	await fails(c3, 'ack_alert', { alert_id: `${id}x` }, 'NOT_FOUND');
	await down(s);
});

test('malformed filters are BAD_REQUEST with the path of the fault; an alert needs a filter; ' +
	'nothing is stored', async () => {
	const url = await sharedDb('alerts_bad');
	const s = await up(url);
	const c = await open(s, unique('bea'));
	const sym = unique('B');
	const cond = { field: 'price', cmp: 'gt', value: 1 };
	const bad = [
		[{ op: 'and', conditions: [{ field: 'price', cmp: 'gtx', value: 1 }] },
			'filter.conditions[0].cmp'],
		[{ op: 'and', conditions: [cond, { field: 'price', cmp: 'between', value: 1 }] },
			'filter.conditions[1].cmp'],
		[{ op: 'xor', conditions: [cond] }, 'filter.op'],
		[{ op: 'and', conditions: [] }, 'filter.conditions'],
		[{ op: 'and' }, 'filter.conditions'],
		[{ op: 'and', conditions: [{ field: 'price', cmp: 'gt', value: 'abc' }] },
			'filter.conditions[0].value'],
		[{ op: 'and', conditions: [{ field: 'price', cmp: 'crosses_above' }] },
			'filter.conditions[0].value'],
		[{ op: 'and', conditions: [{ field: 'price', cmp: 'eq', value: { x: 1 } }] },
			'filter.conditions[0].value'],
		[{ op: 'and', conditions: [{ cmp: 'gt', value: 1 }] }, 'filter.conditions[0].field'],
		[{ op: 'and', conditions: [cond, { op: 'or', conditions: [{ cmp: 'gt', value: 1 }] }] },
			'filter.conditions[1].conditions[0].field'],
		[{ op: 'or', conditions: [cond, { op: 'and', conditions: [cond,
			{ field: 'price', cmp: 'lt', value: null }] }] },
		'filter.conditions[1].conditions[1].value'],
		['price > 1', 'filter'],
	];
	for (const [filter, where] of bad) {
		const e = await fails(c, 'create_subscription', { symbol: sym, filter,
			alert: { priority: 'high' } }, 'BAD_REQUEST');
		assert.ok(e.message.startsWith(`${where}:`) || e.message.startsWith(`${where} `),
			`the message names ${where}: ${show(e)} for ${show(filter)}`);
	}
	const noFilter = await fails(c, 'create_subscription', { symbol: sym,
		alert: { priority: 'high' } }, 'BAD_REQUEST');
	assert.match(noFilter.message, /filter/, show(noFilter));
	const badPrio = await fails(c, 'create_subscription', { symbol: sym,
		filter: { op: 'and', conditions: [cond] }, alert: { priority: 'urgent' } }, 'BAD_REQUEST');
	assert.match(badPrio.message, /alert\.priority/, show(badPrio));
	assert.deepEqual((await ok(c, 'list_subscriptions', {})).subscriptions, []);
	assert.equal(await one(url, 'SELECT count(*) FROM subscriptions'), '0');

	/* the same checks on update; the subscription stays as it was */
	const sub = await ok(c, 'create_subscription', { symbol: sym,
		filter: { op: 'and', conditions: [cond] }, alert: { priority: 'low' } });
	const e = await fails(c, 'update_subscription', { subscription_id: sub.subscription_id,
		version: 1, filter: bad[0][0] }, 'BAD_REQUEST');
	assert.ok(e.message.startsWith('filter.conditions[0].cmp'), show(e));
	await fails(c, 'update_subscription', { subscription_id: sub.subscription_id, version: 1,
		filter: null }, 'BAD_REQUEST');
	const [same] = (await ok(c, 'list_subscriptions', {})).subscriptions;
	assert.equal(same.version, 1);
	assert.deepEqual(same.filter, { op: 'and', conditions: [cond] });
	assert.equal(await one(url, 'SELECT version FROM subscriptions'), '1');
	await down(s);
});

test('a changed filter and alert survive restarts: the new filter decides, the old one is ' +
	'gone from the tables', async () => {
	const url = await sharedDb('alerts_update');
	let s = await up(url);
	const u = unique('uwe');
	const sym = unique('U');
	let c = await open(s, u);
	const sub = await ok(c, 'create_subscription', { symbol: sym,
		filter: { op: 'and', conditions: [{ field: 'price', cmp: 'gt', value: 100 }] },
		alert: { priority: 'low' } });
	const id = sub.subscription_id;
	const filter2 = { op: 'or', conditions: [
		{ field: 'price', cmp: 'lt', value: 50 },
		{ op: 'and', conditions: [{ field: 'volume', cmp: 'gte', value: 10 },
			{ field: 'side', cmp: 'eq', value: 'sell' }] },
	] };
	const v2 = await ok(c, 'update_subscription', { subscription_id: id, version: 1,
		filter: filter2, alert: { priority: 'critical' } });
	assert.equal(v2.version, 2);
	const v3 = await ok(c, 'update_subscription', { subscription_id: id, version: 2,
		name: 'renamed' });
	assert.equal(v3.version, 3);
	assert.deepEqual(v3.filter, filter2);

	s = await bounce(s, url);
	c = await open(s, u);
	const [got] = (await ok(c, 'list_subscriptions', {})).subscriptions;
	assert.deepEqual([got.version, got.name, got.filter, got.alert],
		[3, 'renamed', filter2, { priority: 'critical' }]);
	assert.equal(await one(url, `SELECT count(DISTINCT gen) FROM filter_expressions WHERE ` +
		`subscription_id = '${id}'`), '1', 'one generation of filter rows');
	const p = await open(s, unique('pub'), 'publisher');
	await publish(p, sym, { price: 150, volume: 1, side: 'buy' });
	await c.nothing(isAlert, GRACE_MS);
	await publish(p, sym, { price: 40 });
	const a1 = await c.next(isAlert);
	assert.equal(a1.data.priority, 'critical');
	assert.deepEqual(a1.data.data, { price: 40, volume: 1, side: 'buy' });
	await publish(p, sym, { price: 45 });
	await publish(p, sym, { price: 60 });
	await c.nothing(isAlert, GRACE_MS);
	await publish(p, sym, { volume: 10, side: 'sell' });
	const a2 = await c.next(isAlert);
	assert.deepEqual(a2.data.data, { price: 60, volume: 10, side: 'sell' });

	/* no filter, no alert: the rows go too */
	const v4 = await ok(c, 'update_subscription', { subscription_id: id, version: 3,
		filter: null, alert: null });
	assert.deepEqual([v4.version, v4.filter, v4.alert], [4, null, null]);
	s = await bounce(s, url);
	c = await open(s, u);
	const [last] = (await ok(c, 'list_subscriptions', {})).subscriptions;
	assert.deepEqual([last.version, last.filter, last.alert], [4, null, null]);
	assert.equal(await one(url, `SELECT count(*) FROM filter_expressions WHERE ` +
		`subscription_id = '${id}'`), '0');
	assert.equal(await one(url, `SELECT count(*) FROM filter_conditions WHERE ` +
		`subscription_id = '${id}'`), '0');
	const p2 = await open(s, unique('pub'), 'publisher');
	await publish(p2, sym, { price: 1 });
	const t = await c.next(ev('stream_data', { symbol: sym }));
	assert.deepEqual(t.data.data, { price: 1 });
	await c.nothing(isAlert, GRACE_MS);
	await down(s);
});

test('an alert evicted from a full offline queue (offline.max_per_user) stays evicted after a ' +
	'restart', async () => {
	const url = await sharedDb('alerts_evicted');
	const env = { QUOTECAST_OFFLINE_MAX_PER_USER: '2' };
	let s = await up(url, { env });
	const u = unique('eva');
	const sym = unique('EV');
	const c0 = await open(s, u);
	await ok(c0, 'create_subscription', { symbol: sym, alert: { priority: 'high' },
		filter: { op: 'and', conditions: [{ field: 'price', cmp: 'gt', value: 1 }] } });
	await c0.close();
	await waitStats(s, (x) => x.total_users === 0, 'the user has no connection');
	const admin = await open(s, unique('root'), 'admin,publisher');
	await publish(admin, sym, { price: 5 });
	await waitStats(s, (x) => x.offline?.queued === 1, 'the alert is queued offline');
	await ok(admin, 'send_to_user', { user_id: u, content: 'd1' });
	await ok(admin, 'send_to_user', { user_id: u, content: 'd2' });
	await waitStats(s, (x) => x.offline?.queued === 2 && x.offline?.evicted === 1,
		'the alert, the oldest, is evicted');
	const c1 = await open(s, u);
	const got = await take(c1, 2, (m) => m.event !== 'stream_data');
	assert.deepEqual(got.filter((m) => m.event !== 'stream_data').map((m) => m.data.content),
		['d1', 'd2']);
	await c1.nothing(isAlert, GRACE_MS);
	await c1.close();

	s = await bounce(s, url, { env });
	const c2 = await open(s, u);
	await c2.nothing(isAlert, GRACE_MS);
	await down(s);
});
