// bench/pwguess.mjs: what room-password guessing does to everyone else's latency (issue 11).
// This process measures application ping round trips on one connection (a ping every 10 ms)
// for a quiet phase, then for a guessing phase in which a child process (so that its work does
// not delay this one's) runs G connections that send `subscribe` with a wrong password to a
// protected room, each sending its next guess as soon as the last one is answered. A guesser
// that is told RATE_LIMITED closes and comes back as a new made-up user (auth mode none), as an
// attacker would (MODE rotate, the default); with MODE stay each guesser keeps its connection
// and sends at most 80 guesses a second (under the per-connection rate limit), so the phase
// measures the guesses alone, without the reconnections. Prints median / p99 / max ping for
// both phases and how the guesses were answered. Uses the `ws` package of tests/integration
// (run `npm ci` there first). Start the server first (the defaults are what an attacker meets).
//
//   node bench/pwguess.mjs [GUESSERS] [SECONDS] [ws://127.0.0.1:8080/ws] [rotate|stay]
import { fork } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../tests/integration/package.json', import.meta.url));
const WebSocket = require('ws');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function open(url, user) {
	const ws = new WebSocket(`${url}?user_id=${encodeURIComponent(user)}`);
	const waiters = new Map();
	ws.on('message', (m) => {
		const j = JSON.parse(m);
		const key = j.request_id ?? (j.type === 'pong' ? `pong:${j.timestamp}` : null);
		const w = key !== null && waiters.get(key);
		if (w) {
			waiters.delete(key);
			w(j);
		}
	});
	ws.on('close', () => {
		for (const w of waiters.values())
			w({ success: false, error: { code: 'CLOSED' } });
		waiters.clear();
	});
	const ask = (msg, key) => new Promise((resolve) => {
		waiters.set(key, resolve);
		ws.send(JSON.stringify(msg));
	});
	return new Promise((resolve, reject) => {
		ws.on('open', () => resolve({ ws, ask }));
		ws.on('error', reject);
	});
}

/* ---- the child: G guessers until told to stop; reports the answers by code */
if (process.argv[2] === '--guess') {
	const [, , , url, room, tag, g, mode] = process.argv;
	const answers = {};
	let stop = false;
	let users = 0;
	process.on('message', () => { stop = true; });
	const guess = async (k) => {
		let c = await open(url, `pwguess-${tag}-${k}-${users++}`);
		for (let i = 0; !stop; i++) {
			const r = await c.ask({ type: 'subscribe', request_id: `g${i}`, room,
				password: `guess ${i}` }, `g${i}`);
			const code = r.success ? 'OK' : r.error.code;
			answers[code] = (answers[code] || 0) + 1;
			if (mode === 'stay' && code !== 'CLOSED') {
				await sleep(12);
			} else if (code === 'RATE_LIMITED' || code === 'CLOSED') {
				c.ws.close();
				c = await open(url, `pwguess-${tag}-${k}-${users++}`);
			}
		}
		c.ws.close();
	};
	await Promise.all(Array.from({ length: Number(g) }, (_, k) => guess(k)));
	process.send({ answers, users });
	process.exit(0);
}

/* ---- the parent: the room, the pings, the report */
const guessers = Number(process.argv[2] || 4);
const seconds = Number(process.argv[3] || 5);
const url = process.argv[4] || 'ws://127.0.0.1:8080/ws';
const mode = process.argv[5] || 'rotate';
const tag = `${process.pid}-${Date.now().toString(36)}`;
const room = `pwguess-${tag}`;

const pct = (xs, p) => {
	const s = [...xs].sort((a, b) => a - b);
	return s[Math.min(s.length - 1, Math.floor(p * s.length))];
};
const summary = (xs) => `n=${xs.length} median ${pct(xs, 0.5).toFixed(2)} ms, ` +
	`p99 ${pct(xs, 0.99).toFixed(2)} ms, max ${Math.max(...xs).toFixed(2)} ms`;

async function pings(c, ms) {
	const rtts = [];
	const end = performance.now() + ms;
	for (let i = 0; performance.now() < end; i++) {
		const t = `${tag}-${i}`;
		const t0 = performance.now();
		await c.ask({ type: 'ping', timestamp: t }, `pong:${t}`);
		rtts.push(performance.now() - t0);
		await sleep(10);
	}
	return rtts;
}

const owner = await open(url, `pwguess-owner-${tag}`);
let made;
for (let i = 0; !made?.success; i++) {
	made = await owner.ask({ type: 'request', request_id: `mk${i}`, action: 'create_room',
		payload: { room, type: 'protected', password: 'the right one' } }, `mk${i}`);
	if (made.error?.code !== 'RATE_LIMITED')
		break;
	await sleep(200); /* the server's budget of password hashes is spent: try again */
}
if (!made.success)
	throw new Error(`create_room: ${JSON.stringify(made)}`);
const pinger = await open(url, `pwguess-pinger-${tag}`);
await pings(pinger, 500); /* warm up */
const quiet = await pings(pinger, seconds * 1000);

const child = fork(new URL(import.meta.url).pathname,
	['--guess', url, room, tag, String(guessers), mode]);
const report = new Promise((resolve) => child.on('message', resolve));
await sleep(300);
const during = await pings(pinger, seconds * 1000);
child.send('stop');
const { answers, users } = await report;

console.log(`quiet:    ${summary(quiet)}`);
console.log(`guessing: ${summary(during)} (${guessers} guessers, ${users} users, ${mode})`);
console.log(`answers:  ${JSON.stringify(answers)}, ` +
	`${((answers.WRONG_PASSWORD || 0) / (seconds + 0.3)).toFixed(0)} wrong passwords checked/s`);
owner.ws.close();
pinger.ws.close();
