// The web console (GET /, web/) in a real browser: Debian's chromium driven by puppeteer-core
// against the real binary with the demo feed. No script errors and no CSP violations, it
// connects, demo prices move, chat goes from one page to another, the server panel counts
// connections, and refusals are said in words. Screenshots go to build-test/artifacts/ (or
// $QUOTECAST_ARTIFACTS); QUOTECAST_DOCS_SCREENSHOT=path also writes the one for docs/.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import puppeteer from 'puppeteer-core';
import {
	REPO_ROOT, startServer, stopServer, test, before, after, getStats, waitFor,
} from './lib/harness.mjs';
import { signJwt, TEST_SECRET, OTHER_SECRET } from './lib/jwt.mjs';

const CHROMIUM = process.env.QUOTECAST_CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = process.env.QUOTECAST_ARTIFACTS || path.join(REPO_ROOT, 'build-test', 'artifacts');
const ADMIN = 'console-admin-token-0123456789';
const WAIT = 20000; /* ms for any one condition: generous on a loaded machine */

let browser;
let demo; /* auth mode none, an admin token, the demo feed */
const pages = []; /* every page opened, with its console record */

before(async () => {
	assert.ok(existsSync(CHROMIUM), `no browser at ${CHROMIUM}: scripts/test installs Debian's chromium`);
	mkdirSync(ARTIFACTS, { recursive: true });
	browser = await puppeteer.launch({
		executablePath: CHROMIUM,
		headless: true,
		/* root in a container: no sandbox; a small /dev/shm: use /tmp */
		args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--no-first-run',
			'--disable-extensions', '--disable-background-networking'],
	});
	demo = await startServer({
		label: 'console',
		args: ['--demo-feed'],
		env: { QUOTECAST_AUTH_ADMIN_TOKEN: ADMIN, QUOTECAST_DEMO_FEED_RATE_PER_S: '20' },
	});
});

after(async () => {
	await browser?.close();
	if (demo)
		await stopServer(demo);
});

/*
 * A page in a browser context of its own (its own storage, like another person), recording
 * console errors and warnings, uncaught exceptions and CSP violations.
 */
async function openPage(server, { width = 1280, height = 800, mobile = false } = {}) {
	const ctx = await browser.createBrowserContext();
	const page = await ctx.newPage();
	const rec = { page, ctx, problems: [] };
	page.on('console', (m) => {
		if (m.type() === 'error' || m.type() === 'warn' || m.type() === 'warning')
			rec.problems.push(`console.${m.type()}: ${m.text()}`);
	});
	page.on('pageerror', (e) => rec.problems.push(`pageerror: ${e.message}`));
	await page.exposeFunction('__cspViolation', (d) => rec.problems.push(`CSP: ${d}`));
	await page.evaluateOnNewDocument(() => {
		document.addEventListener('securitypolicyviolation', (e) => {
			window.__cspViolation(`${e.violatedDirective} blocked ${e.blockedURI}`);
		});
	});
	await page.setViewport({ width, height, isMobile: mobile, hasTouch: mobile,
		deviceScaleFactor: 1 });
	pages.push(rec);
	const r = await page.goto(`http://127.0.0.1:${server.port}/`, { waitUntil: 'load' });
	assert.equal(r.status(), 200);
	return rec;
}

/* Sign in through the form, as a person would. */
async function signIn(page, { user = '', token = '', admin = '' }) {
	for (const [id, v] of [['#signin-user', user], ['#signin-token', token], ['#signin-admin', admin]]) {
		await page.$eval(id, (e) => { e.value = ''; });
		if (v)
			await page.type(id, v);
	}
	await page.click('#signin-go');
}

async function waitText(page, sel, re, what) {
	await page.waitForFunction((s, src, flags) => {
		const e = document.querySelector(s);
		return e && new RegExp(src, flags).test(e.textContent);
	}, { timeout: WAIT }, sel, re.source, re.flags).catch((e) => {
		throw new Error(`${what}: ${e.message}`);
	});
}

const figure = (page, id) => page.$eval(id, (e) => Number(e.textContent.replace(/[^0-9.]/g, '')));

const lastPrice = (page, sym) => page.$eval(`tr[data-symbol="${sym}"] .last`, (e) => e.textContent);

async function shot(page, name) {
	await page.evaluate(() => {
		document.activeElement?.blur();
		window.scrollTo(0, 0);
	});
	await page.screenshot({ path: path.join(ARTIFACTS, name) });
}

function assertClean(rec, allowed = []) {
	const bad = rec.problems.filter((p) => !allowed.some((re) => re.test(p)));
	assert.deepEqual(bad, [], 'console errors, page errors or CSP violations');
}

test('the console: connects, demo prices move, chat between two pages, live connection counts',
	{ timeout: 90000 }, async () => {
		const a = await openPage(demo);
		await signIn(a.page, { user: 'alice', admin: ADMIN });
		await waitText(a.page, '#conn-state', /Connected as alice/, 'page A connects');
		await waitText(a.page, '#st-connections', /\d/, 'the server panel with the admin token');
		/* before the admin token was given, the panel's /api/stats was a 401 (logged) */
		assertClean({ problems: a.problems.splice(0) }, [/status of 401/]);

		/* the demo feed fills the market watch, and prices move */
		await waitText(a.page, 'tr[data-symbol="AAPL"] .last', /\d/, 'a first AAPL price');
		const syms = ['AAPL', 'MSFT', 'GOOG', '600519', 'BTCUSD'];
		const first = {};
		for (const s of syms)
			first[s] = await lastPrice(a.page, s).catch(() => '');
		await a.page.waitForFunction((list, was) => list.some((s) => {
			const e = document.querySelector(`tr[data-symbol="${s}"] .last`);
			return e && /\d/.test(e.textContent) && e.textContent !== was[s];
		}), { timeout: WAIT }, syms, first);
		await a.page.waitForSelector('.last.flash-up, .last.flash-down', { timeout: WAIT });
		await a.page.waitForFunction(() =>
			[...document.querySelectorAll('svg.spark polyline')]
				.some((p) => p.getAttribute('points').split(' ').length >= 3), { timeout: WAIT });

		/* the server panel: figures with the admin token, then a second client joins */
		await a.page.waitForFunction(() => /^\d/.test(document.querySelector('#st-deliveries').textContent),
			{ timeout: WAIT });
		assert.equal(await a.page.$eval('#server-locked', (e) => e.hidden), true);
		assert.equal(await a.page.$eval('#st-cluster', (e) => e.textContent), 'single node');
		const before1 = await figure(a.page, '#st-connections');
		assert.ok(before1 >= 1, `connections ${before1}`);

		const b = await openPage(demo, { width: 390, height: 844, mobile: true });
		await signIn(b.page, { user: 'bob' });
		await waitText(b.page, '#conn-state', /Connected as bob/, 'page B connects');
		await a.page.waitForFunction((n) =>
			Number(document.querySelector('#st-connections').textContent.replace(/\D/g, '')) > n,
		{ timeout: WAIT }, before1);
		/* the slowest connections (GET /api/connections?sort=lag): both pages' users listed */
		await a.page.waitForFunction(() => {
			const users = [...document.querySelectorAll('#lag-rows tr td.user')].map((e) => e.textContent);
			return users.includes('alice') && users.includes('bob');
		}, { timeout: WAIT });
		const row = await a.page.$eval('#lag-rows tr', (tr) =>
			[...tr.querySelectorAll('td')].map((td) => td.textContent));
		assert.equal(row.length, 6, JSON.stringify(row));
		assert.ok(['ws', 'socket.io', 'publisher'].includes(row[1]), JSON.stringify(row));
		assert.match(row[2], /^\d+(\.\d)? (B|KiB|MiB|GiB)$/, JSON.stringify(row));
		assert.match(row[3], /^\d/, JSON.stringify(row));
		assert.match(row[5], /^\d+(s|m|h|d)/, JSON.stringify(row));

		/* chat: alice creates a room, bob joins it and types; alice reads it */
		await a.page.type('#room-name', 'desk');
		await a.page.click('#room-create');
		await waitText(a.page, '#chat-log', /you created desk/, 'alice created desk');
		await waitText(a.page, '#member-list', /alice.*owner/i, 'alice listed as owner');
		await b.page.type('#room-name', 'desk');
		await b.page.keyboard.press('Enter');
		await waitText(b.page, '#chat-log', /you joined desk/, 'bob joined desk');
		await waitText(a.page, '#chat-log', /bob joined/, 'alice sees bob join');
		await waitText(a.page, '#member-list', /bob/, 'bob in the member list');
		await b.page.focus('#chat-input');
		await b.page.keyboard.type('hello from bob');
		await b.page.keyboard.press('Enter');
		await waitText(a.page, '#chat-log', /bob\s*hello from bob/, 'alice reads bob');
		await a.page.type('#chat-input', 'hi bob\n');
		await waitText(b.page, '#chat-log', /alice\s*hi bob/, 'bob reads alice');

		await shot(a.page, 'console-1280x800.png');
		await shot(b.page, 'console-390.png');
		if (process.env.QUOTECAST_DOCS_SCREENSHOT) {
			/* for docs/console.png only: an alert, and a chart with half a minute in it */
			await a.page.type('#alert-symbol', 'MSFT');
			await a.page.select('#alert-cmp', 'gt');
			await a.page.type('#alert-value', '1');
			await a.page.click('#alert-form button[type="submit"]');
			await a.page.waitForSelector('#alert-list li', { timeout: WAIT });
			await a.page.waitForFunction(() => document.querySelector('#chart-line')
				.getAttribute('points').split(' ').length >= 30, { timeout: 60000 });
			await shot(a.page, 'console-docs.png');
			await a.page.screenshot({ path: process.env.QUOTECAST_DOCS_SCREENSHOT });
		}

		/* bob leaves: the count goes down again */
		const withB = await figure(a.page, '#st-connections');
		await b.ctx.close();
		await a.page.waitForFunction((n) =>
			Number(document.querySelector('#st-connections').textContent.replace(/\D/g, '')) < n,
		{ timeout: WAIT }, withB);

		assertClean(a);
		/* bob has no admin token: the browser logs the 401 of /api/stats itself */
		assertClean(b, [/status of 401/]);
		await a.ctx.close();
	});

test('the server panel without the admin token says so, in words', { timeout: 60000 }, async () => {
	const c = await openPage(demo);
	await signIn(c.page, { user: 'carol' });
	await waitText(c.page, '#conn-state', /Connected as carol/, 'carol connects');
	await c.page.waitForSelector('#server-locked:not([hidden])', { timeout: WAIT });
	const text = await c.page.$eval('#server-locked', (e) => e.textContent);
	assert.match(text, /needs the admin token/);
	assert.match(text, /401 UNAUTHORIZED/);
	await shot(c.page, 'console-no-admin-token.png');
	/* the browser logs the 401 of /api/stats itself: that one is expected */
	assertClean(c, [/status of 401/]);
	await c.ctx.close();
});

test('auth mode jwt: no token and a bad token are refused in words, a good one connects',
	{ timeout: 60000 }, async () => {
		const s = await startServer({
			label: 'console-jwt',
			args: ['--demo-feed'],
			env: { QUOTECAST_AUTH_MODE: 'jwt', QUOTECAST_AUTH_JWT_SECRET: TEST_SECRET },
		});
		try {
			const d = await openPage(s);
			/* on load it tries a user id: jwt mode refuses that */
			await waitText(d.page, '#notice', /UNAUTHORIZED/, 'refusal without a token');
			assert.match(await d.page.$eval('#notice', (e) => e.textContent), /enter a token/);

			const now = Math.floor(Date.now() / 1000);
			await signIn(d.page, { token: signJwt({ sub: 'mallory', exp: now + 600 }, OTHER_SECRET) });
			await waitText(d.page, '#notice', /refused this token \(UNAUTHORIZED\)/, 'bad token');
			assert.match(await d.page.$eval('#conn-state', (e) => e.textContent), /Not connected/);
			await shot(d.page, 'console-bad-token.png');

			await signIn(d.page, { token: signJwt({ sub: 'dave', exp: now + 600 }) });
			await waitText(d.page, '#conn-state', /Connected as dave/, 'a good token');
			assert.equal(await d.page.$eval('#notice', (e) => e.hidden), true);
			/* the browser logs refused upgrades and the 401s of /api/stats itself */
			assertClean(d, [/WebSocket connection to .* failed/, /status of 401/]);
			await d.ctx.close();
		} finally {
			await stopServer(s);
		}
	});

test('signing in again while the first socket is still opening: no browser error, one connection',
	{ timeout: 60000 }, async () => {
		const e = await openPage(demo);
		await waitText(e.page, '#conn-state', /Connected as/, 'the first connection');
		assertClean({ problems: e.problems.splice(0) }, [/status of 401/]);
		/* slow handshakes, then two sign-ins in a row: the first socket is retired while it
		 * is still connecting (closing it then is a console error in Chromium) */
		const cdp = await e.page.createCDPSession();
		await cdp.send('Network.enable');
		await cdp.send('Network.emulateNetworkConditions',
			{ offline: false, latency: 300, downloadThroughput: -1, uploadThroughput: -1 });
		await e.page.$eval('#signin-user', (i) => { i.value = 'erin'; });
		await e.page.evaluate(() => {
			window.quotecast.signIn();
			window.quotecast.signIn();
		});
		await waitText(e.page, '#conn-state', /Connected as erin/, 'erin connects');
		await cdp.send('Network.emulateNetworkConditions',
			{ offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
		/* the retired socket opened and was closed: erin holds one connection */
		await waitFor(async () => (await getStats(demo, ADMIN)).total_users ===
			(await getStats(demo, ADMIN)).total_connections, { timeoutMs: WAIT, what: 'one each' });
		assertClean(e, [/status of 401/]);
		await e.ctx.close();
	});
