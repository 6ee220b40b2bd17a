// Market watch: the watched symbols, one row each, fed by stream_data events.

import { $, el, svg, linePoints, fmtPrice, fmtSigned, fmtInt } from './util.js';

const KEY = 'quotecast.watch';
const DEFAULT = ['AAPL', 'MSFT', 'GOOG', '600519', 'BTCUSD'];
const SPARK_POINTS = 60;
const SYMBOL_RE = /^[A-Za-z0-9._:\-]{1,32}$/;

export class MarketWatch {
	constructor(app) {
		this.app = app;
		this.rows = new Map(); /* symbol -> row state */
		this.dirty = new Set();
		this.frame = 0;
		let saved = null;
		try {
			saved = JSON.parse(localStorage.getItem(KEY));
		} catch {
			saved = null;
		}
		for (const s of Array.isArray(saved) ? saved : DEFAULT)
			if (typeof s === 'string' && SYMBOL_RE.test(s))
				this.addRow(s);
		this.showEmpty();
		$('watch-add').addEventListener('submit', (ev) => {
			ev.preventDefault();
			const input = $('watch-symbol');
			const sym = input.value.trim().toUpperCase();
			if (!sym)
				return;
			if (!SYMBOL_RE.test(sym)) {
				app.notify(`"${sym}" is not a symbol (letters, digits, . _ : - up to 32)`);
				return;
			}
			input.value = '';
			this.watch(sym);
		});
	}

	save() {
		try {
			localStorage.setItem(KEY, JSON.stringify([...this.rows.keys()]));
		} catch {
			/* private mode: the list lives as long as the page */
		}
	}

	showEmpty() {
		$('market-empty').hidden = this.rows.size > 0;
	}

	addRow(symbol) {
		if (this.rows.has(symbol))
			return this.rows.get(symbol);
		const cell = (cls) => el('td', { class: cls });
		const last = el('span', { class: 'last', text: '–' });
		const spark = svg('svg', { class: 'spark flat', viewBox: '0 0 120 28',
			preserveAspectRatio: 'none', 'aria-hidden': 'true' });
		const line = svg('polyline', { points: '' });
		spark.append(line);
		const remove = el('button', { class: 'icon', type: 'button', title: `Stop watching ${symbol}`,
			'aria-label': `Stop watching ${symbol}`, text: '✕' });
		const r = {
			symbol,
			tr: el('tr', { 'data-symbol': symbol }),
			last,
			chg: cell('num hide-narrow chg'),
			pct: cell('num pct'),
			bid: cell('num hide-narrow bid'),
			ask: cell('num hide-narrow ask'),
			vol: cell('num hide-narrow vol'),
			spark, line,
			first: null, price: null, prev: null, data: {}, history: [], flash: 0,
		};
		r.tr.append(el('th', { scope: 'row', class: 'sym', text: symbol }),
			el('td', { class: 'num' }, last), r.chg, r.pct, r.bid, r.ask, r.vol,
			el('td', {}, spark), el('td', {}, remove));
		remove.addEventListener('click', () => this.unwatch(symbol));
		for (const c of [r.chg, r.pct, r.bid, r.ask, r.vol])
			c.textContent = '–';
		$('quotes-body').append(r.tr);
		this.rows.set(symbol, r);
		return r;
	}

	async watch(symbol) {
		if (this.rows.has(symbol))
			return;
		this.addRow(symbol);
		this.save();
		this.showEmpty();
		const qc = this.app.client;
		if (qc?.state === 'open') {
			try {
				await qc.subscribeStream([symbol]);
			} catch (e) {
				this.app.notify(`Cannot watch ${symbol}`, e);
			}
		}
	}

	async unwatch(symbol) {
		const r = this.rows.get(symbol);
		if (!r)
			return;
		r.tr.remove();
		this.rows.delete(symbol);
		this.save();
		this.showEmpty();
		const qc = this.app.client;
		if (qc?.state === 'open')
			qc.unsubscribeStream([symbol]).catch(() => {});
	}

	/* A new connection: subscribe every watched symbol (the client keeps them across drops). */
	async attach(qc) {
		qc.on('stream_data', (d) => this.onTick(d));
		const list = [...this.rows.keys()];
		if (!list.length)
			return;
		try {
			await qc.subscribeStream(list);
		} catch (e) {
			this.app.notify('Cannot subscribe the market watch', e);
		}
	}

	onTick(d) {
		const r = this.rows.get(d.symbol);
		if (!r || !d.data)
			return;
		Object.assign(r.data, d.data);
		const p = d.data.price;
		if (typeof p === 'number') {
			if (r.first === null)
				r.first = p;
			if (r.price !== null && p !== r.price)
				r.flash = p > r.price ? 1 : -1;
			r.prev = r.price;
			r.price = p;
			r.history.push(p);
			if (r.history.length > SPARK_POINTS)
				r.history.shift();
		}
		this.dirty.add(r);
		if (!this.frame)
			this.frame = requestAnimationFrame(() => this.render());
	}

	render() {
		this.frame = 0;
		for (const r of this.dirty) {
			const d = r.data;
			if (r.price !== null) {
				r.last.textContent = fmtPrice(r.price);
				const chg = r.price - r.first;
				const dir = chg > 0 ? 'up' : chg < 0 ? 'down' : '';
				r.chg.textContent = fmtSigned(chg);
				r.pct.textContent = fmtSigned(r.first ? (chg / r.first) * 100 : 0, 2, '%');
				r.chg.className = `num hide-narrow chg ${dir}`;
				r.pct.className = `num pct ${dir}`;
				r.spark.setAttribute('class', `spark ${dir || 'flat'}`);
				r.line.setAttribute('points', linePoints(r.history, 120, 28));
			}
			if (typeof d.bid === 'number')
				r.bid.textContent = fmtPrice(d.bid);
			if (typeof d.ask === 'number')
				r.ask.textContent = fmtPrice(d.ask);
			if (typeof d.volume === 'number')
				r.vol.textContent = fmtInt(d.volume);
			if (r.flash) {
				const cls = r.flash > 0 ? 'flash-up' : 'flash-down';
				r.last.classList.remove('flash-up', 'flash-down');
				void r.last.offsetWidth; /* restart the animation */
				r.last.classList.add(cls);
				r.flash = 0;
			}
		}
		this.dirty.clear();
	}
}
