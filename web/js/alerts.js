// Alerts of the signed-in user: list_alerts on connect, live `alert` events, acknowledge,
// and a form that makes an alert subscription (create_subscription with a price filter).

import { $, el, fmtTime, fmtPrice } from './util.js';

export class AlertsPanel {
	constructor(app) {
		this.app = app;
		this.items = new Map(); /* alert_id -> li */
		$('alert-form').addEventListener('submit', (ev) => {
			ev.preventDefault();
			this.create();
		});
	}

	attach(qc) {
		this.items.clear();
		$('alert-list').replaceChildren();
		$('alerts-user').textContent = this.app.userId ? `for ${this.app.userId}` : '';
		qc.on('alert', (a) => this.add(a, true));
		qc.request('list_alerts', { limit: 50 }).then((d) => {
			for (const a of (d.alerts ?? []).slice().reverse())
				this.add(a, false);
			this.showEmpty();
		}, (e) => {
			$('alerts-empty').hidden = false;
			$('alerts-empty').textContent = `Alerts cannot be listed: ${this.app.words(e)}`;
		});
	}

	showEmpty() {
		const p = $('alerts-empty');
		p.textContent = 'No alerts yet. Add one above: it fires when a tick makes the condition true.';
		p.hidden = this.items.size > 0;
	}

	describe(a) {
		const d = a.data || {};
		if (typeof d.price === 'number')
			return `${a.symbol} at ${fmtPrice(d.price)}`;
		return `${a.symbol} ${JSON.stringify(d)}`;
	}

	add(a, fresh) {
		if (!a?.alert_id || this.items.has(a.alert_id))
			return;
		const prio = a.priority || 'normal';
		const ack = el('button', { type: 'button', class: 'ghost small', text: 'Ack',
			'aria-label': `Acknowledge the alert on ${a.symbol}` });
		const li = el('li', { class: `${fresh ? 'new' : ''} ${a.acknowledged ? 'acked' : ''}` },
			el('span', { class: `prio prio-${prio}`, text: prio }),
			el('span', { class: 'what', text: this.describe(a) }),
			a.acknowledged ? el('span', { class: 'when', text: 'acked' }) : ack,
			el('span', { class: 'when', text: fmtTime(a.timestamp ?? Date.now()) }));
		ack.addEventListener('click', async () => {
			try {
				await this.app.client.request('ack_alert', { alert_id: a.alert_id });
				li.classList.add('acked');
				ack.replaceWith(el('span', { class: 'when', text: 'acked' }));
			} catch (e) {
				this.app.notify('Cannot acknowledge the alert', e);
			}
		});
		this.items.set(a.alert_id, li);
		$('alert-list').prepend(li);
		while (this.items.size > 100) {
			const [id, old] = this.items.entries().next().value;
			old.remove();
			this.items.delete(id);
		}
		this.showEmpty();
	}

	async create() {
		const qc = this.app.client;
		if (qc?.state !== 'open') {
			this.app.notify('Sign in first: alerts belong to a user.');
			return;
		}
		const symbol = $('alert-symbol').value.trim().toUpperCase();
		const value = Number($('alert-value').value);
		const cmp = $('alert-cmp').value;
		if (!symbol || !$('alert-value').value || !Number.isFinite(value)) {
			this.app.notify('An alert needs a symbol and a price.');
			return;
		}
		try {
			await qc.request('create_subscription', {
				name: `${symbol} ${cmp} ${value}`, symbol, fields: ['price'],
				filter: { op: 'and', conditions: [{ field: 'price', cmp, value }] },
				alert: { priority: 'normal' },
			});
			$('alert-value').value = '';
			this.app.notify(`Alert set: ${symbol} price ${cmp.replace('_', ' ')} ${value}`, null, 'info');
		} catch (e) {
			this.app.notify('Cannot set the alert', e);
		}
	}
}
