// Small DOM and formatting helpers shared by the console's panels.

export const $ = (id) => document.getElementById(id);

/** el() - an element with attributes / properties and children (strings become text). */
export function el(tag, attrs = {}, ...children) {
	const e = document.createElement(tag);
	for (const [k, v] of Object.entries(attrs)) {
		if (v === undefined || v === null || v === false)
			continue;
		if (k === 'class')
			e.className = v;
		else if (k === 'text')
			e.textContent = v;
		else if (k.startsWith('on') && typeof v === 'function')
			e.addEventListener(k.slice(2), v);
		else
			e.setAttribute(k, v === true ? '' : String(v));
	}
	for (const c of children.flat())
		if (c !== null && c !== undefined && c !== false)
			e.append(c instanceof Node ? c : document.createTextNode(String(c)));
	return e;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

export function svg(tag, attrs = {}) {
	const e = document.createElementNS(SVG_NS, tag);
	for (const [k, v] of Object.entries(attrs))
		e.setAttribute(k, String(v));
	return e;
}

/** Points for a polyline of @values scaled into a @w x @h box (with a little headroom). */
export function linePoints(values, w, h, { min, max, pad = 2 } = {}) {
	if (!values.length)
		return '';
	let lo = min ?? Math.min(...values);
	let hi = max ?? Math.max(...values);
	if (hi === lo) {
		hi += 1;
		lo -= 1;
	}
	const n = values.length;
	const dx = n > 1 ? w / (n - 1) : 0;
	return values.map((v, i) => {
		const x = n > 1 ? i * dx : w / 2;
		const y = pad + (h - 2 * pad) * (1 - (v - lo) / (hi - lo));
		return `${x.toFixed(1)},${y.toFixed(1)}`;
	}).join(' ');
}

const intFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

export function fmtInt(n) {
	return Number.isFinite(n) ? intFmt.format(n) : '–';
}

/** A price with the decimals it deserves (at least 2, more for small prices). */
export function fmtPrice(p) {
	if (!Number.isFinite(p))
		return '–';
	const d = Math.abs(p) >= 1 ? 2 : 4;
	return p.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

export function fmtSigned(n, digits = 2, suffix = '') {
	if (!Number.isFinite(n))
		return '–';
	const s = Math.abs(n).toLocaleString('en-US', {
		minimumFractionDigits: digits, maximumFractionDigits: digits });
	return `${n > 0 ? '+' : n < 0 ? '−' : ''}${s}${suffix}`;
}

export function fmtRate(n) {
	if (!Number.isFinite(n))
		return '–';
	if (n >= 100)
		return intFmt.format(Math.round(n));
	return n.toFixed(1);
}

export function fmtBytes(b) {
	if (!Number.isFinite(b))
		return '–';
	const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
	let i = 0;
	while (b >= 1024 && i < u.length - 1) {
		b /= 1024;
		i++;
	}
	return `${b.toFixed(i ? 1 : 0)} ${u[i]}`;
}

export function fmtDuration(s) {
	if (!Number.isFinite(s))
		return '–';
	const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
	const m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
	if (d)
		return `${d}d ${h}h`;
	if (h)
		return `${h}h ${m}m`;
	if (m)
		return `${m}m ${sec}s`;
	return `${sec}s`;
}

export function fmtTime(ms) {
	const t = new Date(ms);
	return t.toLocaleTimeString('en-GB', { hour12: false });
}

/* What an error code means, in words a person reads. */
const WORDS = {
	UNAUTHORIZED: 'not signed in, or the token is not valid',
	FORBIDDEN: 'you are not allowed to do that',
	NOT_FOUND: 'no such thing',
	ROOM_FULL: 'the room is full',
	WRONG_PASSWORD: 'wrong password',
	ROOM_CLOSED: 'the room is closed',
	LIMIT_EXCEEDED: 'a server limit was reached',
	RATE_LIMITED: 'too many requests: slow down',
	UNAVAILABLE: 'the store is unavailable: try again shortly',
	DISCONNECTED: 'not connected',
	TIMEOUT: 'the server did not answer in time',
	ALREADY_EXISTS: 'it already exists',
	BAD_REQUEST: 'the request was not accepted',
};

/** explain() - "Words (CODE: server message)" for a QuotecastError or any Error. */
export function explain(e) {
	const code = e?.code;
	const words = WORDS[code];
	if (!code)
		return e?.message || String(e);
	const msg = e.message && e.message !== code ? `: ${e.message}` : '';
	return words ? `${words[0].toUpperCase()}${words.slice(1)} (${code}${msg})` : `${code}${msg}`;
}
