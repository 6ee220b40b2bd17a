// Slow consumers (SPEC 2.5; streams.md "Slow consumers"): a subscriber that stops reading gets
// its pending ticks of a symbol conflated (newest value per field, newest seq) and stays
// connected, while a fast subscriber of the same symbol gets every tick; a member of a room
// that stops reading is closed with 4008 once its queue passes limits.max_send_queue_bytes,
// while the other members keep being served.
//
// The reader is made slow by pausing its socket (ws._socket.pause()): the kernel buffers on
// both sides fill (several MB on loopback) and only then does the server's queue grow.

import assert from 'node:assert/strict';
import {
	test, after, startServer, stopServer, connect, httpRequest, getStats,
} from './lib/harness.mjs';
import {
	uniqueSymbol, tick, publishOk, subscribeStream, isStreamData, streaming, anyStreamData,
} from './lib/streams.mjs';

const MIB = 1024 * 1024;
const servers = [];

after(async () => {
	const res = await Promise.allSettled(servers.map((s) => stopServer(s)));
	const failed = res.find((r) => r.status === 'rejected');
	if (failed)
		throw failed.reason;
});

/*
 * One publish fans out to every subscriber in one loop pass, so a subscriber's queue briefly
 * holds the whole batch: conflate_bytes must be above one batch's output (about 330 bytes a
 * tick here) or the fast subscriber would be conflated too.
 */
const CONFLATE_BYTES = 2 * MIB;
const BATCH = 2000;
const MAX_BATCHES = 60;
const PAD = 'x'.repeat(200);

test('a paused subscriber gets conflated ticks, stays connected; a fast one gets every tick',
	{ timeout: 60000 }, async (t) => {
		const server = await startServer({
			label: 'slow-stream',
			env: {
				QUOTECAST_LIMITS_CONFLATE_BYTES: String(CONFLATE_BYTES),
				QUOTECAST_LIMITS_MAX_SEND_QUEUE_BYTES: String(64 * MIB),
				QUOTECAST_LIMITS_MAX_HTTP_BODY_BYTES: String(16 * MIB),
			},
		});
		servers.push(server);
		const sym = uniqueSymbol('SLOW');
		const slow = await connect(server, { query: { user_id: 'slow' } });
		const fast = await connect(server, { query: { user_id: 'fast' } });
		await subscribeStream(slow, { symbol: sym, snapshot: false });
		await subscribeStream(fast, { symbol: sym, snapshot: false });
		const s0 = await streaming(server);

		slow.ws._socket.pause();
		let n = 0;
		const dataOf = (i) => {
			const d = { price: i, n: i, pad: `${i}:${PAD}` };
			if (i % 2)
				d.odd = i;
			return d;
		};
		const fastSeqs = [];
		let conflated = 0;
		let batches = 0;
		const startedAt = Date.now();
		while (batches < MAX_BATCHES && Date.now() - startedAt < 30000) {
			const ticks = [];
			for (let i = 0; i < BATCH; i++) {
				n++;
				ticks.push(tick(sym, dataOf(n), { message_id: `slow-${n}` }));
			}
			const r = await publishOk(server, ticks, { timeoutMs: 20000 });
			assert.equal(r.accepted, BATCH, JSON.stringify(r));
			batches++;
			/* let the fast subscriber drain the batch before the next one */
			for (let i = 0; i < BATCH; i++) {
				const ev = await fast.next(isStreamData(sym), 10000);
				fastSeqs.push(ev.data.seq);
				assert.notEqual(ev.data.conflated, true,
					`the fast subscriber got a conflated frame: seq ${ev.data.seq}`);
				if (ev.data.seq !== fastSeqs.length)
					assert.fail(`fast subscriber: seq ${ev.data.seq} at position ` +
						`${fastSeqs.length}`);
			}
			conflated = (await streaming(server)).total_conflated - s0.total_conflated;
			if (conflated > 0)
				break;
		}
		assert.ok(conflated > 0, `no conflation after ${batches} batches of ${BATCH} ticks ` +
			`(${n} ticks, ${Date.now() - startedAt} ms)`);
		/* a few more batches, all merged into the pending frame */
		for (let b = 0; b < 2; b++) {
			const ticks = [];
			for (let i = 0; i < BATCH; i++) {
				n++;
				ticks.push(tick(sym, dataOf(n), { message_id: `slow-${n}` }));
			}
			await publishOk(server, ticks, { timeoutMs: 20000 });
			for (let i = 0; i < BATCH; i++)
				fastSeqs.push((await fast.next(isStreamData(sym), 10000)).data.seq);
		}
		const last = n;
		assert.deepEqual(fastSeqs, Array.from({ length: last }, (_, i) => i + 1),
			'the fast subscriber received every tick in order');
		assert.equal(slow.isOpen, true, 'the slow connection is still open');

		/* read again: everything queued arrives, ending with the last tick */
		slow.ws._socket.resume();
		const got = [];
		for (;;) {
			const ev = await slow.next(isStreamData(sym), 15000);
			got.push(ev.data);
			if (ev.data.seq >= last)
				break;
		}
		await slow.nothing(anyStreamData, 300);
		const merged = got.filter((t) => t.conflated === true);
		assert.ok(merged.length > 0, `no stream_data with conflated:true among ${got.length}`);
		for (let i = 1; i < got.length; i++) {
			if (!(got[i].seq > got[i - 1].seq))
				assert.fail(`seq not increasing at ${i}: ${got[i - 1].seq} then ${got[i].seq}`);
		}
		for (const t of got) {
			/* price, n and pad are in every tick: the newest value is the seq's own */
			assert.equal(t.data.price, t.seq);
			assert.equal(t.data.n, t.seq);
			assert.equal(t.data.pad, `${t.seq}:${PAD}`);
			if (t.conflated !== true)
				assert.deepEqual(t.data, dataOf(t.seq));
			else if (t.seq % 2 === 0 && 'odd' in t.data)
				assert.equal(t.data.odd, t.seq - 1, 'odd keeps the newest odd value');
			assert.equal(t.message_id, `slow-${t.seq}`);
		}
		t.diagnostic(`${last} ticks in ${batches + 2} batches; the paused subscriber got ` +
			`${got.length} frames, ${merged.length} conflated`);
		const tail = got[got.length - 1];
		assert.equal(tail.seq, last);
		assert.equal(tail.data.price, last);
		assert.equal(tail.data.pad, `${last}:${PAD}`);
		assert.equal(slow.isOpen, true, 'the slow connection stayed open');

		/* every accepted tick is either a received frame or a frame merged away */
		const s1 = await streaming(server);
		assert.equal(s1.total_conflated - s0.total_conflated + got.length, last,
			`${got.length} frames received, ${s1.total_conflated - s0.total_conflated} merged, ` +
			`${last} ticks`);
		assert.equal(s1.total_messages - s0.total_messages, last);

		/* and the connection still works normally afterwards */
		await publishOk(server, tick(sym, { price: -1 }));
		const after1 = (await slow.next(isStreamData(sym))).data;
		assert.equal(after1.seq, last + 1);
		assert.notEqual(after1.conflated, true);
		assert.equal((await fast.next(isStreamData(sym))).data.seq, last + 1);
		await slow.close();
		await fast.close();
	});

const ROOM_QUEUE = 256 * 1024;
const ROOM_CONFLATE = 64 * 1024;
const CONTENT = 60 * 1024;
const MAX_BROADCASTS = 600;

test('a paused room member is closed with 4008 past max_send_queue_bytes; others are served',
	{ timeout: 60000 }, async (t) => {
		const server = await startServer({
			label: 'slow-room',
			env: {
				QUOTECAST_LIMITS_MAX_SEND_QUEUE_BYTES: String(ROOM_QUEUE),
				QUOTECAST_LIMITS_CONFLATE_BYTES: String(ROOM_CONFLATE),
			},
		});
		servers.push(server);
		const room = `flood-${process.pid}`;
		const slow = await connect(server, { query: { user_id: 'slow' } });
		const fast = await connect(server, { query: { user_id: 'fast' } });
		const bystander = await connect(server, { query: { user_id: 'bystander' } });
		await slow.subscribe(room);
		await fast.subscribe(room);
		const conns0 = (await getStats(server)).total_connections;

		slow.ws._socket.pause();
		const pad = 'y'.repeat(CONTENT);
		let sent = 0;
		let slowDropped = false;
		const startedAt = Date.now();
		while (sent < MAX_BROADCASTS && Date.now() - startedAt < 30000) {
			const r = await httpRequest(server, 'POST', '/api/broadcast',
				{ body: { room, content: { i: sent, pad } } });
			assert.equal(r.status, 200, r.text);
			const ev = await fast.next({ event: 'room_message', data: { room } }, 5000);
			assert.equal(ev.data.content.i, sent, 'the fast member gets every message in order');
			sent++;
			/* the slow member is no longer served once the server gave up on it */
			if (r.json.delivered < 2) {
				slowDropped = true;
				break;
			}
			if (sent % 20 === 0 &&
				(await getStats(server)).total_connections < conns0) {
				slowDropped = true;
				break;
			}
		}
		assert.ok(slowDropped, `the paused member was still served after ${sent} broadcasts of ` +
			`${CONTENT} bytes (${Date.now() - startedAt} ms)`);

		/* the others are still served while the slow one is paused */
		const r = await httpRequest(server, 'POST', '/api/broadcast',
			{ body: { room, content: { i: sent, pad: 'after' } } });
		assert.equal(r.status, 200, r.text);
		assert.equal(r.json.delivered, 1, 'only the fast member is left');
		assert.equal((await fast.next({ event: 'room_message', data: { room } })).data.content.i,
			sent);
		bystander.send({ type: 'ping', timestamp: 7 });
		assert.equal((await bystander.next({ type: 'pong' })).timestamp, 7);

		/* read again: what was already on its way, then the close frame with 4008 */
		slow.ws._socket.resume();
		const info = await slow.closed(15000);
		assert.equal(info.code, 4008, `close code ${info.code} reason "${info.reason}"`);
		/* room messages are never merged: a gap-free prefix of what was broadcast */
		const idx = [...slow.consumed, ...slow.queue]
			.filter((m) => m.event === 'room_message')
			.map((m) => m.data.content.i);
		assert.ok(idx.length > 0, 'the slow member read what was buffered before the close');
		assert.deepEqual(idx, Array.from({ length: idx.length }, (_, i) => i));
		t.diagnostic(`${sent} broadcasts of ${CONTENT} bytes; ${idx.length} reached the paused ` +
			`member before its close ${info.code}`);
		assert.ok(idx.length < sent, `${idx.length} of ${sent} reached the slow member`);

		/* the server goes on: the fast member, the bystander, a new connection */
		await fast.subscribe(`${room}-2`);
		const r2 = await fast.request('send_message', { room, content: 'still here' });
		assert.equal(r2.data.delivered, 1);
		await fast.next({ event: 'room_message', data: { room, content: 'still here' } });
		const late = await connect(server, { query: { user_id: 'late' } });
		await late.subscribe(room);
		const r3 = await httpRequest(server, 'POST', '/api/broadcast',
			{ body: { room, content: 'to both' } });
		assert.equal(r3.json.delivered, 2);
		await late.next({ event: 'room_message', data: { room, content: 'to both' } });
		for (const c of [fast, bystander, late])
			await c.close();
	});
