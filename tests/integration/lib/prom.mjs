// A strict reader of the Prometheus text exposition format (version 0.0.4), for /metrics:
// it throws on anything a scraper could misread, and checks the naming rules we keep (units
// as suffixes, counters ending in _total, histograms cumulative and complete).

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const NUMBER = /^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Inf|NaN)$/;

function parseValue(s, where) {
	if (!NUMBER.test(s))
		throw new Error(`${where}: "${s}" is not a number`);
	return s === '+Inf' || s === 'Inf' ? Infinity : s === '-Inf' ? -Infinity : Number(s);
}

/* {a="x",b="y"} -> {a: 'x', b: 'y'}, with \\, \" and \n unescaped; strict about the rest. */
function parseLabels(s, where) {
	const out = {};
	let i = 0;
	while (i < s.length) {
		const eq = s.indexOf('=', i);
		if (eq < 0)
			throw new Error(`${where}: label without "="`);
		const name = s.slice(i, eq);
		if (!LABEL.test(name) || name.startsWith('__'))
			throw new Error(`${where}: bad label name "${name}"`);
		if (s[eq + 1] !== '"')
			throw new Error(`${where}: label value not quoted`);
		let v = '';
		let j = eq + 2;
		for (; j < s.length && s[j] !== '"'; j++) {
			if (s[j] === '\\') {
				const c = s[++j];
				if (c === 'n')
					v += '\n';
				else if (c === '\\' || c === '"')
					v += c;
				else
					throw new Error(`${where}: bad escape \\${c}`);
			} else if (s[j] === '\n') {
				throw new Error(`${where}: newline in a label value`);
			} else {
				v += s[j];
			}
		}
		if (j >= s.length)
			throw new Error(`${where}: unterminated label value`);
		if (name in out)
			throw new Error(`${where}: label ${name} twice`);
		out[name] = v;
		i = j + 1;
		if (i < s.length) {
			if (s[i] !== ',')
				throw new Error(`${where}: "," expected between labels`);
			i++;
		}
	}
	return out;
}

/**
 * parseExposition() - the families of @text: Map name -> {help, type, samples: [{name, labels,
 * value}]}. Throws with the line number on any deviation.
 */
export function parseExposition(text) {
	if (!text.endsWith('\n'))
		throw new Error('the exposition must end with a newline');
	const families = new Map();
	let cur = null;
	const done = new Set();
	const lines = text.slice(0, -1).split('\n');
	const familyOf = (sample) => {
		for (const f of [sample, sample.replace(/_(bucket|sum|count)$/, '')]) {
			const fam = families.get(f);
			if (fam && (f === sample || fam.type === 'histogram' || fam.type === 'summary'))
				return fam;
		}
		return null;
	};
	lines.forEach((line, n) => {
		const where = `line ${n + 1} "${line.slice(0, 80)}"`;
		if (line === '')
			throw new Error(`${where}: empty line`);
		if (line.startsWith('#')) {
			const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
			if (!m)
				throw new Error(`${where}: a comment that is neither HELP nor TYPE`);
			const [, what, name, rest] = m;
			if (!NAME.test(name))
				throw new Error(`${where}: bad metric name`);
			if (done.has(name))
				throw new Error(`${where}: ${name} again after its samples`);
			let fam = families.get(name);
			if (!fam) {
				if (cur)
					done.add(cur.name);
				fam = { name, help: null, type: null, samples: [] };
				families.set(name, fam);
				cur = fam;
			} else if (fam !== cur || fam.samples.length) {
				throw new Error(`${where}: ${what} for ${name} out of place`);
			}
			if (what === 'HELP') {
				if (fam.help !== null)
					throw new Error(`${where}: second HELP`);
				if (!rest.trim())
					throw new Error(`${where}: empty HELP`);
				fam.help = rest;
			} else {
				if (fam.type !== null)
					throw new Error(`${where}: second TYPE`);
				if (!TYPES.has(rest))
					throw new Error(`${where}: unknown type`);
				fam.type = rest;
			}
			return;
		}
		const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$/.exec(line);
		if (!m)
			throw new Error(`${where}: not a sample line`);
		const [, name, labels, value] = m;
		const fam = familyOf(name);
		if (!fam)
			throw new Error(`${where}: sample of ${name} without HELP/TYPE before it`);
		if (fam !== cur)
			throw new Error(`${where}: samples of ${fam.name} are not together`);
		fam.samples.push({ name, labels: labels ? parseLabels(labels, where) : {},
			value: parseValue(value, where) });
	});
	for (const fam of families.values())
		checkFamily(fam);
	return families;
}

function checkFamily(fam) {
	const w = `metric ${fam.name}`;
	if (fam.help === null || fam.type === null)
		throw new Error(`${w}: needs both # HELP and # TYPE`);
	if (!fam.samples.length)
		throw new Error(`${w}: no samples`);
	if (fam.type === 'counter' && !fam.name.endsWith('_total'))
		throw new Error(`${w}: a counter's name ends in _total`);
	if (fam.type !== 'counter' && fam.name.endsWith('_total'))
		throw new Error(`${w}: only counters end in _total`);
	if (/_(s|ms|us|msec|secs|kb|mb|kib|mib)(_total)?$/.test(fam.name))
		throw new Error(`${w}: units are base units spelled out (_seconds, _bytes)`);
	const seen = new Set();
	for (const s of fam.samples) {
		const key = `${s.name}${JSON.stringify(Object.entries(s.labels).sort())}`;
		if (seen.has(key))
			throw new Error(`${w}: the series ${key} twice`);
		seen.add(key);
		if (fam.type === 'counter' && !(s.value >= 0))
			throw new Error(`${w}: a counter below 0`);
	}
	if (fam.type === 'histogram') {
		const buckets = fam.samples.filter((s) => s.name === `${fam.name}_bucket`);
		const count = fam.samples.find((s) => s.name === `${fam.name}_count`);
		const sum = fam.samples.find((s) => s.name === `${fam.name}_sum`);
		if (!buckets.length || !count || !sum)
			throw new Error(`${w}: a histogram has _bucket, _sum and _count`);
		let le = -Infinity;
		let prev = 0;
		for (const b of buckets) {
			const v = parseValue(b.labels.le ?? '', `${w} le`);
			if (!(v > le))
				throw new Error(`${w}: le not increasing`);
			if (b.value < prev)
				throw new Error(`${w}: buckets not cumulative`);
			le = v;
			prev = b.value;
		}
		if (le !== Infinity)
			throw new Error(`${w}: the last bucket is le="+Inf"`);
		if (prev !== count.value)
			throw new Error(`${w}: +Inf bucket ${prev} != _count ${count.value}`);
	}
}

/** sample() - the value of the series @name with @labels (default: none) in @families. */
export function sample(families, name, labels = {}) {
	for (const fam of families.values())
		for (const s of fam.samples)
			if (s.name === name && JSON.stringify(Object.entries(s.labels).sort()) ===
				JSON.stringify(Object.entries(labels).sort()))
				return s.value;
	return undefined;
}
