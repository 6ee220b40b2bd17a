// Rooms: the list, the rooms this page joined (tabs), members with roles, a chat pane.

import { $, el, fmtTime } from './util.js';

const MAX_LINES = 500;
const ROOM_RE = /^[A-Za-z0-9._:\-]{1,64}$/;

export class RoomsPanel {
	constructor(app) {
		this.app = app;
		this.joined = new Map(); /* room -> {lines: [], unread: 0, tab} */
		this.current = null;
		this.refreshTimer = null;
		$('room-join').addEventListener('submit', (ev) => {
			ev.preventDefault();
			this.join($('room-name').value.trim(), $('room-password').value, false);
		});
		$('room-create').addEventListener('click', () => {
			this.join($('room-name').value.trim(), $('room-password').value, true);
		});
		$('rooms-refresh').addEventListener('click', () => this.refresh());
		$('chat-form').addEventListener('submit', (ev) => {
			ev.preventDefault();
			this.send();
		});
	}

	get qc() {
		return this.app.client?.state === 'open' ? this.app.client : null;
	}

	attach(qc) {
		qc.on('room_message', (d) => this.line(d.room, {
			time: d.timestamp, from: d.from, text: d.content, type: d.message_type }));
		const ev = (name, text) => qc.on(name, (d) => {
			this.line(d.room, { time: Date.now(), event: text(d) });
			if (d.room === this.current)
				this.loadMembers();
			this.scheduleRefresh();
		});
		ev('member_joined', (d) => `${d.user_id} joined${d.role && d.role !== 'member' ? ` as ${d.role}` : ''}${d.by ? ` (added by ${d.by})` : ''}`);
		ev('member_left', (d) => `${d.user_id} left`);
		qc.on('kicked', (d) => {
			this.line(d.room, { time: Date.now(), event: 'you were removed from this room' });
			this.left(d.room);
		});
		qc.on('room_closed', (d) => {
			this.line(d.room, { time: Date.now(), event: 'the room was closed' });
			this.left(d.room);
		});
		/* a new session (not a resume) lost the rooms: the client subscribes them again */
		for (const room of this.joined.keys())
			if (!qc.rooms.has(room))
				qc.subscribe(room).catch((e) => this.line(room, { time: Date.now(), event: `cannot rejoin: ${this.app.words(e)}` }));
		this.refresh();
		this.enableChat();
	}

	detach() {
		this.enableChat();
	}

	scheduleRefresh() {
		clearTimeout(this.refreshTimer);
		this.refreshTimer = setTimeout(() => this.refresh(), 300);
	}

	async refresh() {
		const qc = this.qc;
		if (!qc)
			return;
		let rooms;
		try {
			rooms = (await qc.request('list_rooms', { limit: 100 })).rooms ?? [];
		} catch (e) {
			this.app.notify('Cannot list rooms', e);
			return;
		}
		const ul = $('room-list');
		ul.replaceChildren();
		if (!rooms.length)
			ul.append(el('li', { class: 'empty', text: 'No rooms yet: join or create one.' }));
		for (const r of rooms) {
			const count = r.implicit ? r.subscribers : r.members;
			const b = el('button', { type: 'button', 'data-room': r.room,
				'aria-current': r.room === this.current ? 'true' : 'false',
				title: r.implicit ? 'an implicit room (no owner, no roles)' : `${r.type} room of ${r.owner}` },
			el('span', {}, r.room, r.implicit ? null : el('span', { class: 'badge', text: r.type })),
			el('span', { class: 'count', text: `${count ?? 0} ${r.implicit ? 'online' : 'members'}` }));
			b.addEventListener('click', () => (this.joined.has(r.room) ? this.select(r.room) : this.join(r.room, '', false)));
			ul.append(el('li', {}, b));
		}
	}

	async join(room, password, create) {
		const qc = this.qc;
		if (!qc) {
			this.app.notify('Sign in first: joining a room needs a connection.');
			return;
		}
		if (!ROOM_RE.test(room)) {
			this.app.notify('A room name is 1 to 64 letters, digits or . _ : -');
			return;
		}
		try {
			if (create) {
				const p = { room, type: password ? 'protected' : 'public' };
				if (password)
					p.password = password;
				await qc.request('create_room', p);
			}
			await qc.subscribe(room, password ? { password } : {});
		} catch (e) {
			this.app.notify(`Cannot ${create ? 'create' : 'join'} ${room}`, e);
			return;
		}
		$('room-name').value = '';
		$('room-password').value = '';
		if (!this.joined.has(room))
			this.joined.set(room, { lines: [], unread: 0, tab: null });
		this.line(room, { time: Date.now(), event: create ? `you created ${room}` : `you joined ${room}` });
		this.select(room);
		this.refresh();
	}

	left(room) {
		const j = this.joined.get(room);
		if (!j)
			return;
		j.tab?.remove();
		this.joined.delete(room);
		if (this.current === room) {
			this.current = null;
			const next = this.joined.keys().next();
			if (!next.done)
				this.select(next.value);
			else
				this.renderLog();
		}
		this.enableChat();
		this.scheduleRefresh();
	}

	select(room) {
		this.current = room;
		const j = this.joined.get(room);
		if (j)
			j.unread = 0;
		this.renderTabs();
		this.renderLog();
		this.enableChat();
		this.loadMembers();
		for (const b of $('room-list').querySelectorAll('button[data-room]'))
			b.setAttribute('aria-current', b.dataset.room === room ? 'true' : 'false');
	}

	renderTabs() {
		const tabs = $('room-tabs');
		tabs.replaceChildren();
		for (const [room, j] of this.joined) {
			const sel = room === this.current;
			const t = el('button', { type: 'button', role: 'tab', 'aria-selected': sel ? 'true' : 'false',
				tabindex: sel ? '0' : '-1', 'data-room': room },
			`#${room}`, j.unread ? el('span', { class: 'unread', text: `${j.unread}` }) : null);
			t.addEventListener('click', () => this.select(room));
			t.addEventListener('keydown', (ev) => {
				if (ev.key !== 'ArrowRight' && ev.key !== 'ArrowLeft')
					return;
				const keys = [...this.joined.keys()];
				const i = keys.indexOf(room) + (ev.key === 'ArrowRight' ? 1 : -1);
				const next = keys[(i + keys.length) % keys.length];
				this.select(next);
				tabs.querySelector(`[data-room="${CSS.escape(next)}"]`)?.focus();
			});
			j.tab = t;
			tabs.append(t);
		}
	}

	renderLine(l) {
		const me = l.from && l.from === this.app.userId;
		if (l.event)
			return el('li', { class: 'event' }, el('span', { class: 'time', text: fmtTime(l.time) }), l.event);
		return el('li', { class: me ? 'me' : '' },
			el('span', { class: 'time', text: fmtTime(l.time) }),
			el('span', { class: 'from', text: l.from ?? '?' }),
			el('span', { class: 'text', text: typeof l.text === 'string' ? l.text : JSON.stringify(l.text) }));
	}

	renderLog() {
		const log = $('chat-log');
		const j = this.joined.get(this.current);
		log.replaceChildren(...(j ? j.lines.map((l) => this.renderLine(l)) : []));
		log.scrollTop = log.scrollHeight;
	}

	line(room, l) {
		if (!room)
			return;
		let j = this.joined.get(room);
		if (!j) {
			j = { lines: [], unread: 0, tab: null };
			this.joined.set(room, j);
			if (!this.current)
				this.current = room;
			this.renderTabs();
		}
		j.lines.push(l);
		if (j.lines.length > MAX_LINES)
			j.lines.shift();
		if (room === this.current) {
			const log = $('chat-log');
			const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
			log.append(this.renderLine(l));
			while (log.childElementCount > MAX_LINES)
				log.firstElementChild.remove();
			if (atEnd)
				log.scrollTop = log.scrollHeight;
		} else {
			j.unread++;
			this.renderTabs();
		}
	}

	async loadMembers() {
		const ul = $('member-list');
		const room = this.current;
		$('members-room').textContent = room ? `of #${room}` : '';
		ul.replaceChildren();
		const qc = this.qc;
		if (!room || !qc)
			return;
		try {
			const d = await qc.request('get_room_members', { room });
			if (room !== this.current)
				return;
			ul.replaceChildren(...(d.members ?? []).map((m) => el('li', {},
				el('span', { class: m.online ? 'online' : 'offline', text: m.user_id }),
				m.role !== 'member' ? el('span', { class: `badge ${m.role}`, text: m.role }) : null)));
		} catch (e) {
			if (room !== this.current)
				return;
			ul.replaceChildren(el('li', { class: 'muted', text: e.code === 'BAD_REQUEST'
				? 'An implicit room: members are its connections, without roles.'
				: this.app.words(e) }));
		}
	}

	enableChat() {
		const on = !!(this.qc && this.current && this.joined.has(this.current));
		const input = $('chat-input');
		input.disabled = !on;
		$('chat-send').disabled = !on;
		input.placeholder = on ? `Message #${this.current} (Enter sends)` : 'Join a room to chat';
	}

	async send() {
		const input = $('chat-input');
		const text = input.value.trim();
		const qc = this.qc;
		if (!text || !qc || !this.current)
			return;
		const room = this.current;
		input.value = '';
		try {
			await qc.request('send_message', { room, content: text });
		} catch (e) {
			input.value = text;
			this.line(room, { time: Date.now(), event: `not sent: ${this.app.words(e)}` });
		}
	}
}
