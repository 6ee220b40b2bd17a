// quotecast console: signs in, opens one QuotecastClient connection and hands it to the
// panels (market watch, rooms, alerts); the server panel reads /api/stats over HTTP.

import { QuotecastClient } from '/client/quotecast.js';
import { $, explain } from './util.js';
import { MarketWatch } from './market.js';
import { ServerPanel } from './server.js';
import { RoomsPanel } from './rooms.js';
import { AlertsPanel } from './alerts.js';

const STATE_TEXT = {
	idle: 'Not connected',
	connecting: 'Connecting…',
	open: 'Connected',
	reconnecting: 'Reconnecting…',
	closed: 'Disconnected',
};

function store(kind) {
	try {
		return kind === 'local' ? window.localStorage : window.sessionStorage;
	} catch {
		return null;
	}
}

class App {
	constructor() {
		this.client = null;
		this.userId = '';
		this.token = store('session')?.getItem('quotecast.token') || '';
		this.adminToken = store('session')?.getItem('quotecast.admin') || '';
		this.market = new MarketWatch(this);
		this.server = new ServerPanel(this);
		this.rooms = new RoomsPanel(this);
		this.alerts = new AlertsPanel(this);

		let user = store('local')?.getItem('quotecast.user');
		if (!user) {
			user = `guest-${Math.random().toString(36).slice(2, 6)}`;
			store('local')?.setItem('quotecast.user', user);
		}
		$('signin-user').value = user;
		$('signin-token').value = this.token;
		$('signin-admin').value = this.adminToken;
		$('signin').addEventListener('submit', (ev) => {
			ev.preventDefault();
			this.signIn();
		});
		$('signout').addEventListener('click', () => this.signOut());
		this.signIn();
	}

	words(e) {
		return explain(e);
	}

	/** notify() - a message in the banner: @e (an error) explained after @text. */
	notify(text, e, kind = 'error') {
		const n = $('notice');
		n.textContent = e ? `${text}: ${explain(e)}` : text;
		n.className = `notice ${kind === 'info' ? 'info' : ''}`;
		n.hidden = false;
		clearTimeout(this.noticeTimer);
		if (kind === 'info')
			this.noticeTimer = setTimeout(() => { n.hidden = true; }, 5000);
	}

	clearNotice() {
		$('notice').hidden = true;
	}

	setState(s, detail) {
		const p = $('conn-state');
		p.className = `pill pill-${s}`;
		p.textContent = detail || STATE_TEXT[s] || s;
	}

	signIn() {
		const user = $('signin-user').value.trim();
		const token = $('signin-token').value.trim();
		this.adminToken = $('signin-admin').value.trim();
		this.token = token;
		store('local')?.setItem('quotecast.user', user);
		const ss = store('session');
		if (ss) {
			if (token)
				ss.setItem('quotecast.token', token);
			else
				ss.removeItem('quotecast.token');
			if (this.adminToken)
				ss.setItem('quotecast.admin', this.adminToken);
			else
				ss.removeItem('quotecast.admin');
		}
		this.server.start();
		this.connect(user, token);
	}

	/*
	 * Close @qc for good. A socket still connecting is closed once it opens: closing it before
	 * makes the browser log "closed before the connection is established" as an error.
	 */
	retire(qc) {
		if (!qc)
			return;
		const ws = qc.ws;
		if (ws && ws.readyState === 0) {
			qc.closedByUser = true; /* no reconnect meanwhile */
			ws.addEventListener('open', () => qc.close());
			ws.addEventListener('error', () => qc.close());
			return;
		}
		qc.close();
	}

	signOut() {
		this.retire(this.client);
		this.client = null;
		this.setState('idle', 'Signed out');
		$('signout').hidden = true;
		this.rooms.detach();
	}

	async connect(user, token) {
		this.retire(this.client);
		this.clearNotice();
		const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
		const opts = { url: `${proto}//${location.host}/ws` };
		if (token)
			opts.token = token;
		else if (user)
			opts.userId = user;
		const qc = new QuotecastClient(opts);
		this.client = qc;
		qc.on('state', (s) => {
			if (this.client === qc)
				this.setState(s, s === 'open' ? `Connected as ${this.userId}` : undefined);
		});
		qc.on('close', ({ code }) => {
			if (this.client !== qc)
				return;
			$('signout').hidden = true;
			this.rooms.detach();
			if (code === 4001)
				this.notify('Signed out by the server: the token expired or is no longer valid (4001 UNAUTHORIZED). Sign in with a new token.');
			else
				this.notify(`The connection ended (close code ${code ?? 'none'}). Sign in to connect again.`);
		});
		qc.on('error', (e) => this.notify('The server said', e));
		let session;
		try {
			session = await qc.connect();
		} catch (e) {
			if (this.client !== qc)
				return;
			this.setState('closed', 'Not connected');
			await this.explainRefusal(token, user);
			return;
		}
		if (this.client !== qc)
			return;
		this.userId = session.user_id;
		this.setState('open', `Connected as ${this.userId}`);
		$('signout').hidden = false;
		this.market.attach(qc);
		this.rooms.attach(qc);
		this.alerts.attach(qc);
	}

	/*
	 * A WebSocket refused at the upgrade only tells the browser "closed (1006)". If the server
	 * answers HTTP, the refusal was the server's: in words, what it most likely was.
	 */
	async explainRefusal(token, user) {
		let up = false;
		try {
			up = (await fetch('/healthz', { cache: 'no-store' })).ok;
		} catch {
			up = false;
		}
		if (!up)
			this.notify('The server cannot be reached. Is quotecast running?');
		else if (token)
			this.notify('Not allowed: the server refused this token (UNAUTHORIZED). It is malformed, signed with another key, or expired. Check the token and sign in again.');
		else
			this.notify(`Not allowed: the server refused to connect${user ? ` as ${user}` : ''} (UNAUTHORIZED). It probably runs with auth mode jwt: enter a token and sign in. (It may also be at a connection limit.)`);
	}
}

window.quotecast = new App();
