// PostgreSQL for the integration tests: a fresh database in the cluster that scripts/test shares
// between all test files (sharedDb), a whole cluster of one's own for the tests that stop,
// freeze or kill the database (privateCluster), and psql() to look into tables.
//
// The clusters are run by scripts/pg (QUOTECAST_TEST_PG_TOOL, else the repo's): 127.0.0.1 only,
// user postgres, no password. scripts/test starts the shared one and exports
// QUOTECAST_TEST_PG_URL, _DIR, _PORT and _TOOL; without them (a test file run directly with
// node --test) this process starts a cluster of its own for sharedDb() on first use.
// Every cluster this process starts is stopped and deleted when it exits (also on SIGINT,
// SIGTERM, SIGHUP); under scripts/test they live next to the shared one, so scripts/test
// deletes them even when this process is killed.

import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const PG_TOOL = process.env.QUOTECAST_TEST_PG_TOOL ||
	path.resolve(here, '..', '..', '..', 'scripts', 'pg');

const START_TRIES = 5;
const PSQL_TIMEOUT_MS = 30000;
const TOOL_TIMEOUT_MS = 120000;

/* ---------------------------------------------------------------- processes */

/*
 * Run @file with @args; resolve {stdout, stderr}, reject with an Error carrying .code (exit
 * status), .stdout and .stderr. @input is written to stdin; SIGKILL after @timeoutMs.
 */
function run(file, args, { input = '', env = process.env, timeoutMs = TOOL_TIMEOUT_MS } = {}) {
	return new Promise((resolve, reject) => {
		const child = spawn(file, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
		const out = [];
		const err = [];
		let timedOut = false;
		const timer = setTimeout(() => {
			timedOut = true;
			child.kill('SIGKILL');
		}, timeoutMs);
		child.stdout.on('data', (b) => out.push(b));
		child.stderr.on('data', (b) => err.push(b));
		child.on('error', (e) => {
			clearTimeout(timer);
			reject(new Error(`${file}: ${e.message}`));
		});
		child.on('close', (code, signal) => {
			clearTimeout(timer);
			const stdout = Buffer.concat(out).toString('utf8');
			const stderr = Buffer.concat(err).toString('utf8');
			if (code === 0) {
				resolve({ stdout, stderr });
				return;
			}
			const why = timedOut ? `timed out after ${timeoutMs} ms` :
				signal ? `killed by ${signal}` : `exit status ${code}`;
			const e = new Error(`${path.basename(file)} ${args.join(' ')}: ${why}\n${stderr}`);
			e.code = code;
			e.stdout = stdout;
			e.stderr = stderr;
			reject(e);
		});
		child.stdin.on('error', () => {}); /* exited before reading its input */
		child.stdin.end(input);
	});
}

function toolEnv(fast) {
	const env = { ...process.env };
	if (fast)
		env.QC_PG_FAST = fast === true ? '1' : fast;
	else
		delete env.QC_PG_FAST;
	return env;
}

/* the client binaries: the newest /usr/lib/postgresql/N/bin (as scripts/pg), else $PATH */
function psqlPath() {
	if (process.env.QC_PG_BIN)
		return path.join(process.env.QC_PG_BIN, 'psql');
	let best = null;
	let bestVer = -1;
	try {
		for (const v of readdirSync('/usr/lib/postgresql')) {
			const n = Number.parseFloat(v);
			if (Number.isFinite(n) && n > bestVer &&
			    existsSync(`/usr/lib/postgresql/${v}/bin/psql`)) {
				best = `/usr/lib/postgresql/${v}/bin/psql`;
				bestVer = n;
			}
		}
	} catch {
		/* no server packages: use the psql on $PATH */
	}
	return best ?? 'psql';
}

const PSQL = psqlPath();

/**
 * psql() - run @sql (one or more statements) on the database at @url with
 * `psql -X -q -A -t -v ON_ERROR_STOP=1`: rows only, one per line, columns separated by '|'.
 * Resolves with psql's stdout; rejects on the first SQL error or after @timeoutMs (a frozen
 * server never answers).
 */
export async function psql(url, sql, { timeoutMs = PSQL_TIMEOUT_MS } = {}) {
	const env = { ...process.env, PGCONNECT_TIMEOUT: String(Math.max(2, Math.ceil(timeoutMs / 1000))) };
	const { stdout } = await run(PSQL, ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', url],
		{ input: sql, env, timeoutMs });
	return stdout;
}

/* ---------------------------------------------------------------- cleanup at exit */

/* data directories of the clusters this process started and has not destroyed yet */
const owned = new Set();
let hooked = false;

function destroySync(dir) {
	try {
		execFileSync(PG_TOOL, ['destroy', dir], { stdio: 'ignore', timeout: 30000 });
	} catch {
		/* best effort: scripts/test removes what is left under its directory */
	}
	owned.delete(dir);
}

function destroyAll() {
	for (const dir of [...owned])
		destroySync(dir);
}

function onSignal(sig) {
	destroyAll();
	/* then die of it, as without this handler */
	process.removeListener(sig, onSignal);
	process.kill(process.pid, sig);
}

function hookExit() {
	if (hooked)
		return;
	hooked = true;
	process.on('exit', destroyAll);
	for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'])
		process.once(sig, onSignal);
}

/* ---------------------------------------------------------------- clusters */

/* a new empty directory for a cluster: next to the shared one under scripts/test */
function newClusterDir() {
	const shared = process.env.QUOTECAST_TEST_PG_DIR;
	if (shared) {
		try {
			return mkdtempSync(path.join(path.dirname(shared), 'private-'));
		} catch {
			/* not writable for us: the system's temporary directory then */
		}
	}
	return mkdtempSync(path.join(os.tmpdir(), 'quotecast-pg-'));
}

/* scripts/pg start on a free port; another process may take it first (exit status 2): retry */
async function startOnFreePort(dir, fast) {
	let lastErr;
	for (let i = 0; i < START_TRIES; i++) {
		const port = await freePort();
		try {
			const { stdout } = await run(PG_TOOL, ['start', dir, String(port)],
				{ env: toolEnv(fast) });
			return { port, url: stdout.trim() };
		} catch (e) {
			lastErr = e;
			if (e.code !== 2)
				break;
		}
	}
	throw lastErr;
}

/* the state letter of process @pid (R, S, T, Z...), null when there is none */
function procState(pid) {
	try {
		const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
		return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
	} catch {
		return null;
	}
}

function procAlive(pid) {
	const st = procState(pid);
	return st !== null && st !== 'Z' && st !== 'X';
}

/* the live children of @ppid, from /proc */
function childrenOf(ppid) {
	const kids = [];
	for (const name of readdirSync('/proc')) {
		if (!/^\d+$/.test(name))
			continue;
		try {
			const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
			const [state, parent] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
			if (Number(parent) === ppid && state !== 'Z')
				kids.push(Number(name));
		} catch {
			/* exited meanwhile */
		}
	}
	return kids;
}

function signalAll(pids, sig) {
	for (const pid of pids) {
		try {
			process.kill(pid, sig);
		} catch {
			/* exited meanwhile */
		}
	}
}

/**
 * privateCluster() - start a new cluster in a directory of its own on a free port, for a test
 * that stops, freezes or kills the database. Resolves with:
 *   url, dir, port;
 *   pid(): the postmaster's pid (DIR/postmaster.pid), null when it is not running;
 *   sigstop() / sigcont(): freeze / thaw the postmaster and all its children (connections then
 *     hang rather than fail);
 *   kill(): SIGKILL the postmaster and all its children, as a crash; resolves once they are gone;
 *   start(): start it again on the same port (after kill(): with crash recovery), resolves url;
 *   stop(): stop it and delete its directory (idempotent).
 * @fast: QC_PG_FAST for scripts/pg: 'crash-safe' (default: fsync off, but a kill loses no
 * committed transaction), true (also synchronous_commit off), or false (durable).
 */
export async function privateCluster({ fast = 'crash-safe' } = {}) {
	hookExit();
	const dir = newClusterDir();
	owned.add(dir);
	let started;
	try {
		started = await startOnFreePort(dir, fast);
	} catch (e) {
		destroySync(dir);
		throw e;
	}
	const { port, url } = started;
	const pid = () => {
		let text;
		try {
			text = readFileSync(path.join(dir, 'postmaster.pid'), 'utf8');
		} catch {
			return null;
		}
		const n = Number(text.split('\n')[0]);
		return Number.isInteger(n) && n > 0 && procAlive(n) ? n : null;
	};
	const mustPid = (what) => {
		const p = pid();
		if (p === null)
			throw new Error(`privateCluster ${what}: the cluster in ${dir} is not running`);
		return p;
	};
	return {
		url,
		dir,
		port,
		pid,
		sigstop() {
			const pm = mustPid('sigstop');
			/* the postmaster first: once stopped it cannot fork new children */
			signalAll([pm], 'SIGSTOP');
			signalAll(childrenOf(pm), 'SIGSTOP');
		},
		sigcont() {
			const pm = mustPid('sigcont');
			signalAll(childrenOf(pm), 'SIGCONT');
			signalAll([pm], 'SIGCONT');
		},
		async kill() {
			const pm = mustPid('kill');
			signalAll([pm], 'SIGSTOP');
			const all = [pm, ...childrenOf(pm)];
			signalAll(all, 'SIGKILL');
			const deadline = Date.now() + 10000;
			while (all.some(procAlive)) {
				if (Date.now() > deadline)
					throw new Error(`privateCluster kill: processes ${all.filter(procAlive)} ` +
						`of ${dir} survived SIGKILL`);
				await sleep(20);
			}
		},
		async start() {
			if (!owned.has(dir))
				throw new Error(`privateCluster start: ${dir} was stopped and deleted`);
			const { stdout } = await run(PG_TOOL, ['start', dir, String(port)],
				{ env: toolEnv(fast) });
			return stdout.trim();
		},
		async stop() {
			if (!owned.has(dir))
				return;
			try {
				await run(PG_TOOL, ['destroy', dir]);
			} finally {
				owned.delete(dir);
			}
		},
	};
}

/* the cluster sharedDb() uses when scripts/test did not start one */
let ownShared = null;

function sharedUrl() {
	if (process.env.QUOTECAST_TEST_PG_URL)
		return Promise.resolve(process.env.QUOTECAST_TEST_PG_URL);
	if (!ownShared) {
		ownShared = (async () => {
			hookExit();
			const dir = newClusterDir();
			owned.add(dir);
			try {
				return (await startOnFreePort(dir, true)).url;
			} catch (e) {
				destroySync(dir);
				ownShared = null;
				throw e;
			}
		})();
	}
	return ownShared;
}

/**
 * sharedDb() - create a new empty database named @name + '_' + random characters in the
 * shared cluster and resolve with its URL. @name: letters, digits and _ (others become _).
 */
export async function sharedDb(name = 'test') {
	const base = await sharedUrl();
	const prefix = String(name).toLowerCase().replace(/[^a-z0-9_]/g, '_').slice(0, 40) || 'test';
	const db = `${/^[a-z_]/.test(prefix) ? '' : 'db_'}${prefix}_${randomBytes(6).toString('hex')}`;
	await psql(base, `CREATE DATABASE "${db}";\n`);
	const u = new URL(base);
	u.pathname = `/${db}`;
	return u.toString();
}
