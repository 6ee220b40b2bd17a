// Server panel: GET /api/stats once a second (with the admin token when one is given);
// deliveries/s and publishes/s are the counters' differences over the measured interval. Then
// the ten connections with the most queued output (GET /api/connections?sort=lag&limit=10).

import { $, el, fmtInt, fmtRate, fmtBytes, fmtDuration } from './util.js';

const LAG_ROWS = 10;

const HISTORY = 300; /* seconds on the chart */

export class ServerPanel {
	constructor(app) {
		this.app = app;
		this.timer = null;
		this.prev = null;
		this.series = [];
		this.busy = false;
		this.gen = 0; /* a sign-in starts a new generation: older answers are ignored */
	}

	start() {
		this.stop();
		this.gen++;
		this.busy = false;
		this.prev = null;
		this.poll();
		this.timer = setInterval(() => this.poll(), 1000);
	}

	stop() {
		clearInterval(this.timer);
		this.timer = null;
	}

	lock(text) {
		const p = $('server-locked');
		p.textContent = text;
		p.hidden = false;
		$('server-body').classList.add('dim');
	}

	unlock() {
		$('server-locked').hidden = true;
		$('server-body').classList.remove('dim');
	}

	async poll() {
		const gen = this.gen;
		if (this.busy)
			return;
		this.busy = true;
		try {
			const headers = {};
			/* the admin token, or in jwt mode a JWT with role admin */
			const tok = this.app.adminToken || this.app.token;
			if (tok)
				headers.authorization = `Bearer ${tok}`;
			let r;
			try {
				r = await fetch('/api/stats', { headers, cache: 'no-store' });
			} catch {
				this.lock('The server does not answer (network error). Retrying every second.');
				return;
			}
			if (gen !== this.gen)
				return;
			if (r.status === 401 || r.status === 403) {
				this.stop();
				const body = await r.json().catch(() => null);
				const code = body?.error?.code || (r.status === 401 ? 'UNAUTHORIZED' : 'FORBIDDEN');
				this.lock(this.app.adminToken
					? `The admin token was not accepted (${r.status} ${code}). Check it and sign in again.`
					: `The server panel needs the admin token (${r.status} ${code}): enter it above and sign in, or sign in with a JWT that has role admin.`);
				$('server-version').textContent = 'locked';
				return;
			}
			if (!r.ok) {
				this.lock(`The stats could not be read (HTTP ${r.status}).`);
				return;
			}
			const st = await r.json();
			if (gen !== this.gen)
				return;
			this.unlock();
			this.render(st, performance.now());
			await this.pollLag(headers, gen);
		} finally {
			if (gen === this.gen)
				this.busy = false;
		}
	}

	/* The lag view; a failure only leaves the table as it was (the stats above still show). */
	async pollLag(headers, gen) {
		let doc;
		try {
			const r = await fetch(`/api/connections?sort=lag&limit=${LAG_ROWS}`,
				{ headers, cache: 'no-store' });
			if (!r.ok)
				return;
			doc = await r.json();
		} catch {
			return;
		}
		if (gen !== this.gen || !Array.isArray(doc?.connections))
			return;
		const now = Date.now();
		$('lag-rows').replaceChildren(...doc.connections.map((c) => el('tr', {
			'data-connection-id': c.connection_id,
			class: c.queued_bytes > 0 || c.conflated > 0 || c.dropped > 0 ? 'behind' : undefined,
		},
		el('td', { class: 'user', title: `${c.user_id} (connection ${c.connection_id})`, text: c.user_id }),
		el('td', { class: 'hide-narrow', text: c.transport }),
		el('td', { class: 'num', text: fmtBytes(c.queued_bytes) }),
		el('td', { class: 'num', text: fmtInt(c.conflated) }),
		el('td', { class: 'num', text: fmtInt(c.dropped) }),
		el('td', { class: 'num hide-narrow', text: fmtDuration(Math.max(0, now - c.connected_at) / 1000) }))));
	}

	render(st, now) {
		const s = st.streaming || {};
		let dps = null, pps = null;
		if (this.prev) {
			const dt = (now - this.prev.at) / 1000;
			if (dt > 0) {
				dps = Math.max(0, ((s.total_deliveries ?? 0) - this.prev.deliveries) / dt);
				pps = Math.max(0, ((s.total_published ?? 0) - this.prev.published) / dt);
			}
		}
		this.prev = { at: now, deliveries: s.total_deliveries ?? 0, published: s.total_published ?? 0 };
		$('server-version').textContent =
			`v${st.server?.version ?? '?'} · ${st.server?.event_loop ?? ''}`;
		$('st-connections').textContent = fmtInt(st.total_connections);
		$('st-users').textContent = fmtInt(st.total_users);
		$('st-deliveries').textContent = dps === null ? '…' : fmtRate(dps);
		$('st-publishes').textContent = pps === null ? '…' : fmtRate(pps);
		$('st-streams').textContent = fmtInt(s.active_streams);
		$('st-rooms').textContent = fmtInt(st.total_rooms);
		$('st-rss').textContent = fmtBytes(st.server?.rss_bytes);
		$('st-uptime').textContent = fmtDuration(st.server?.uptime_s);

		const store = st.store || {};
		const sd = $('st-store');
		let state = store.state || (store.configured ? (store.connected ? 'connected' : 'down') : 'memory-only');
		sd.textContent = state;
		sd.className = `small ${store.configured ? (store.connected ? 'state-ok' : 'state-bad') : 'state-warn'}`;
		sd.title = store.configured
			? `pending ${store.pending ?? 0}, failed ${store.failed ?? 0}`
			: 'no store.url: nothing survives a restart';

		const cl = $('st-cluster');
		if (st.cluster) {
			const n = Array.isArray(st.cluster.nodes) ? st.cluster.nodes.length : 0;
			state = st.cluster.enabled ? (st.cluster.connected ? `${n} nodes` : 'disconnected') : 'single node';
			cl.className = `small ${st.cluster.enabled && !st.cluster.connected ? 'state-bad' : 'state-ok'}`;
		} else {
			state = 'single node';
			cl.className = 'small';
		}
		cl.textContent = state;

		if (dps !== null) {
			this.series.push(dps);
			if (this.series.length > HISTORY)
				this.series.shift();
			this.drawChart();
		}
	}

	drawChart() {
		const W = 300, H = 80;
		const max = Math.max(1, ...this.series);
		/* the newest second at the right edge; the first minute already spans the width */
		const span = Math.max(60, this.series.length) - 1;
		const dx = W / span;
		const x0 = W - (this.series.length - 1) * dx;
		const pts = this.series.map((v, i) =>
			`${(x0 + i * dx).toFixed(1)},${(2 + (H - 4) * (1 - v / (max * 1.1))).toFixed(1)}`);
		$('chart-line').setAttribute('points', pts.join(' '));
		if (pts.length > 1)
			$('chart-area').setAttribute('d', `M${x0.toFixed(1)},${H} L${pts.join(' L')} L${W},${H} Z`);
		const mins = Math.round((span + 1) / 60);
		$('chart-span').textContent = mins <= 1 ? 'last minute' : `last ${mins} minutes`;
		$('chart-max').textContent = `(peak ${fmtRate(max)}/s)`;
	}
}
