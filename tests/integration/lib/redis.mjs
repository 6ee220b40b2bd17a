// Redis for the integration tests: a private redis-server (Debian's redis-server package) on a
// free port in a temporary directory, nothing saved to disk. scripts/test starts one shared by
// the test files and exports its URL in QUOTECAST_TEST_REDIS_URL (and its directory in
// QUOTECAST_TEST_REDIS_DIR); tests that stop, freeze or restart Redis start their own with
// startRedis(). Every server this process starts is killed when it exits.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitFor, sleep, startServer } from './harness.mjs';

const started = new Set();

process.on('exit', () => {
	for (const r of started) {
		try {
			r.child.kill('SIGKILL');
		} catch {
			/* gone */
		}
		try {
			rmSync(r.dir, { recursive: true, force: true });
		} catch {
			/* best effort */
		}
	}
});

export const REDIS_SERVER = process.env.QUOTECAST_TEST_REDIS_SERVER || 'redis-server';

class Redis {
	constructor(port, dir) {
		this.port = port;
		this.dir = dir;
		this.url = `redis://127.0.0.1:${port}`;
		this.child = null;
		this.out = '';
	}

	/* Start (again, on the same port: a restarted Redis is empty). */
	async start() {
		this.out = '';
		this.child = spawn(REDIS_SERVER, ['--port', String(this.port), '--bind', '127.0.0.1',
			'--save', '', '--appendonly', 'no', '--dir', this.dir, '--daemonize', 'no'],
		{ stdio: ['ignore', 'pipe', 'pipe'] });
		this.exited = new Promise((resolve) => this.child.on('exit', resolve));
		this.child.stdout.on('data', (b) => { this.out += b.toString('utf8'); });
		this.child.stderr.on('data', (b) => { this.out += b.toString('utf8'); });
		await waitFor(() => /Ready to accept connections/.test(this.out) || this.child.exitCode !== null,
			{ timeoutMs: 10000, what: `redis-server on port ${this.port}` });
		if (this.child.exitCode !== null)
			throw new Error(`redis-server did not start:\n${this.out}`);
	}

	signal(sig) {
		this.child.kill(sig);
	}

	async stop() {
		if (!this.child || this.child.exitCode !== null)
			return;
		this.child.kill('SIGCONT');
		this.child.kill('SIGKILL');
		await this.exited;
	}

	async destroy() {
		await this.stop();
		started.delete(this);
		rmSync(this.dir, { recursive: true, force: true });
	}
}

/** startRedis() - a private redis-server; resolves the Redis object (url, port, signal, stop). */
export async function startRedis() {
	const base = process.env.QUOTECAST_TEST_REDIS_DIR ? path.dirname(process.env.QUOTECAST_TEST_REDIS_DIR) :
		os.tmpdir();
	for (let attempt = 0; attempt < 5; attempt++) {
		const dir = mkdtempSync(path.join(base, 'quotecast-redis-'));
		const r = new Redis(await freePort(), dir);
		started.add(r);
		try {
			await r.start();
			return r;
		} catch (e) {
			await r.destroy();
			if (!/in use/i.test(String(e)))
				throw e;
			await sleep(50);
		}
	}
	throw new Error('could not start redis-server');
}

/** sharedRedisUrl() - the one scripts/test started, else a private one of this process. */
let own = null;
export async function sharedRedisUrl() {
	if (process.env.QUOTECAST_TEST_REDIS_URL)
		return process.env.QUOTECAST_TEST_REDIS_URL;
	if (!own) {
		own = await startRedis();
		/* it lives as long as this process (killed on exit): it must not keep it alive */
		own.child.unref();
		own.child.stdout.unref();
		own.child.stderr.unref();
	}
	return own.url;
}

/**
 * startNode() - a quotecast node of the cluster on Redis @url, named @id (answers from Redis
 * bounded at 500 ms, so a frozen Redis is seen quickly), with @env added.
 */
export function startNode(url, id, env = {}) {
	return startServer({
		label: id,
		env: { QUOTECAST_CLUSTER_REDIS: url, QUOTECAST_CLUSTER_NODE_ID: id,
			QUOTECAST_CLUSTER_TIMEOUT_MS: '500', ...env },
	});
}

/* One Redis command over a raw RESP connection: the reply (strings, numbers, arrays, null). */
export function redisCmd(url, ...args) {
	const u = new URL(url);
	return new Promise((resolve, reject) => {
		const sock = net.connect(Number(u.port), u.hostname);
		let buf = Buffer.alloc(0);
		const parse = (pos) => {
			const eol = buf.indexOf('\r\n', pos);
			if (eol < 0)
				return null;
			const kind = String.fromCharCode(buf[pos]);
			const line = buf.toString('utf8', pos + 1, eol);
			if (kind === '+' || kind === '-' || kind === ':')
				return [kind === ':' ? Number(line) : kind === '-' ? new Error(line) : line, eol + 2];
			if (kind === '$') {
				const n = Number(line);
				if (n < 0)
					return [null, eol + 2];
				if (buf.length < eol + 2 + n + 2)
					return null;
				return [buf.toString('utf8', eol + 2, eol + 2 + n), eol + 2 + n + 2];
			}
			if (kind === '*') {
				const n = Number(line);
				const out = [];
				let at = eol + 2;
				for (let i = 0; i < n; i++) {
					const r = parse(at);
					if (!r)
						return null;
					out.push(r[0]);
					at = r[1];
				}
				return [n < 0 ? null : out, at];
			}
			throw new Error(`RESP: unexpected ${kind}`);
		};
		sock.on('data', (d) => {
			buf = Buffer.concat([buf, d]);
			const r = parse(0);
			if (r) {
				sock.end();
				if (r[0] instanceof Error)
					reject(r[0]);
				else
					resolve(r[0]);
			}
		});
		sock.on('error', reject);
		sock.write(`*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`).join(''));
	});
}

/**
 * killingSubLinks() - run @work (an async function) while every subscriber connection of the
 * Redis at @url is killed again and again (CLIENT KILL TYPE pubsub every 30 ms): the channel
 * messages published meanwhile are lost to the nodes. Returns how many links were killed.
 */
export async function killingSubLinks(url, work) {
	let busy = true;
	const done = work().finally(() => { busy = false; });
	let kills = 0;
	while (busy) {
		kills += Number(await redisCmd(url, 'CLIENT', 'KILL', 'TYPE', 'pubsub'));
		await sleep(30);
	}
	await done;
	return kills;
}
