// GET /metrics as dashboards read it: the strict exposition reader (lib/prom.mjs) and, when
// there is one, Prometheus' own `promtool check metrics` (scripts/test provides it from
// Debian's prometheus package: $QUOTECAST_PROMTOOL); the two latency histograms fill up:
// publish-to-write with a subscriber, store statements on a real PostgreSQL.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, test, after, httpRequest, stopServer, waitFor } from './lib/harness.mjs';
import { sharedDb } from './lib/pg.mjs';
import { startOnDb, open, ok, publish, unique } from './lib/persist.mjs';
import { parseExposition, sample } from './lib/prom.mjs';

function promtool() {
	const env = process.env.QUOTECAST_PROMTOOL;
	if (env) {
		assert.ok(existsSync(env), `QUOTECAST_PROMTOOL=${env} does not exist`);
		return env;
	}
	for (const p of ['/usr/bin/promtool', '/usr/local/bin/promtool'])
		if (existsSync(p))
			return p;
	return null;
}

const servers = [];
after(async () => {
	for (const s of servers)
		await stopServer(s);
});

async function scrape(server) {
	const r = await httpRequest(server, 'GET', '/metrics');
	assert.equal(r.status, 200, r.text);
	return { text: r.text, fams: parseExposition(r.text) };
}

test('the strict reader refuses what a scraper could misread', () => {
	const good = '# HELP a_total A.\n# TYPE a_total counter\na_total 1\n';
	assert.ok(parseExposition(good).has('a_total'));
	for (const [bad, why] of [
		['# TYPE a_total counter\na_total 1\n', /HELP/],
		['# HELP a A.\n# TYPE a counter\na 1\n', /_total/],
		['# HELP a_s A.\n# TYPE a_s gauge\na_s 1\n', /units/],
		['# HELP a A.\n# TYPE a gauge\na x\n', /not a number/],
		['# HELP a A.\n# TYPE a gauge\na{l="x} 1\n', /unterminated|not a sample/],
		['# HELP a A.\n# TYPE a gauge\na 1', /newline/],
		['# HELP h A.\n# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\n' +
			'h_sum 1\nh_count 1\n', /cumulative/],
		['# HELP h A.\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n', /\+Inf/],
	])
		assert.throws(() => parseExposition(bad), why, bad);
});

test('publish-to-write and store statement histograms fill up; promtool finds nothing wrong',
	{ timeout: 60000 }, async () => {
		const s = await startOnDb(await sharedDb('metrics'), { label: 'metrics' });
		servers.push(s);
		const m0 = (await scrape(s)).fams;
		assert.equal(sample(m0, 'quotecast_store_state', { state: 'connected' }), 1);
		assert.equal(sample(m0, 'quotecast_store_up'), 1);

		/* a subscriber and ticks: each write that carries one is a sample */
		const sym = unique('MET');
		const pub = await open(s, 'feed', 'publisher');
		const sub = await open(s, 'watcher');
		await ok(sub, 'subscribe_market_stream', { symbol: sym });
		for (let i = 1; i <= 5; i++) {
			await publish(pub, sym, { price: i });
			await sub.next((m) => m.event === 'stream_data' && m.data.data.price === i);
		}
		/* a created room: statements to PostgreSQL, each answered */
		const owner = await open(s, 'owner');
		await ok(owner, 'create_room', { room: unique('metroom'), type: 'public' });

		let m1;
		await waitFor(async () => {
			m1 = (await scrape(s)).fams;
			return sample(m1, 'quotecast_publish_to_write_seconds_count') >= 5 &&
				sample(m1, 'quotecast_store_statement_seconds_count') >
					sample(m0, 'quotecast_store_statement_seconds_count');
		}, { timeoutMs: 10000, what: 'both histograms counting' });
		assert.ok(sample(m1, 'quotecast_publish_to_write_seconds_sum') > 0);
		assert.ok(sample(m1, 'quotecast_store_statement_seconds_sum') > 0);
		/* everything was well under 10 s: nothing only in +Inf */
		for (const h of ['quotecast_publish_to_write_seconds', 'quotecast_store_statement_seconds'])
			assert.equal(sample(m1, `${h}_bucket`, { le: '10' }), sample(m1, `${h}_count`), h);
		assert.ok(sample(m1, 'quotecast_ticks_accepted_total') >= 5);
		assert.ok(sample(m1, 'quotecast_tick_deliveries_total') >= 5);
		assert.equal(sample(m1, 'quotecast_connections'), 3);

		/* the Grafana dashboard asks only for what is exported */
		const dash = JSON.parse(readFileSync(path.join(REPO_ROOT, 'config', 'grafana',
			'quotecast.json'), 'utf8'));
		const exprs = JSON.stringify(dash.panels.map((p) => p.targets?.map((t) => t.expr)));
		const used = new Set(exprs.match(/quotecast_[a-z_]+/g));
		assert.ok(used.size >= 15, [...used].join(' '));
		for (const name of used)
			assert.ok(m1.has(name.replace(/_bucket$/, '')), `the dashboard's ${name} is exported`);

		const tool = promtool();
		if (!tool) {
			/* only where scripts/test did not provide one: say so in the output */
			console.log('# promtool not found: only the strict reader checked /metrics');
			return;
		}
		const { text } = await scrape(s);
		const r = spawnSync(tool, ['check', 'metrics'], { input: text, encoding: 'utf8' });
		assert.equal(r.status, 0, `promtool check metrics: ${r.stdout}${r.stderr}`);
		assert.equal(`${r.stdout}${r.stderr}`.trim(), '', 'promtool has nothing to say');
		for (const c of [pub, sub, owner])
			await c.close();
	});
