'use strict';
// pusher-js channel types against herald, with events triggered by the Node server SDK and
// authorization through a real HTTP endpoint built with the SDK's authorizeChannel.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const h = require('./helpers');

const T = { timeout: 20000 };

async function setup(t, app = h.APPS.main) {
  const track = h.tracker(t);
  const auth = await h.startAuthServer(app);
  track.onClose(auth.close);
  return { track, auth, api: h.sdk(app) };
}

test('public channel: subscribe and receive an SDK-triggered event', T, async (t) => {
  const { track, api } = await setup(t);
  const p = track(h.client());
  await h.connected(p);
  const name = h.uid('public');
  const ch = await h.subscribe(p, name);
  assert.equal(ch.subscribed, true);
  const got = h.waitEvent(ch, 'greeting');
  const res = await api.trigger(name, 'greeting', { text: 'hello', n: 1, nested: { ok: true } });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {});
  assert.deepEqual(await got, { text: 'hello', n: 1, nested: { ok: true } });
});

test('public channel: string data arrives verbatim, unicode intact', T, async (t) => {
  const { track, api } = await setup(t);
  const p = track(h.client());
  await h.connected(p);
  const name = h.uid('public-str');
  const ch = await h.subscribe(p, name);
  const got = h.waitEvent(ch, 'plain');
  await api.trigger(name, 'plain', 'just a string: é ✓ "quoted"');
  assert.equal(await got, 'just a string: é ✓ "quoted"');
});

test('events are delivered in trigger order', T, async (t) => {
  const { track, api } = await setup(t);
  const p = track(h.client());
  await h.connected(p);
  const name = h.uid('public-order');
  const ch = await h.subscribe(p, name);
  const seen = h.record(ch, 'seq');
  for (let i = 0; i < 10; i += 1) await api.trigger(name, 'seq', { i });
  await h.eventually(() => seen.length === 10, { what: '10 events' });
  assert.deepEqual(seen.map((d) => d.i), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

test('unsubscribe: no more events reach the channel', T, async (t) => {
  const { track, api } = await setup(t);
  const p = track(h.client());
  const watcher = track(h.client());
  await Promise.all([h.connected(p), h.connected(watcher)]);
  const name = h.uid('public-unsub');
  const ch = await h.subscribe(p, name);
  const wch = await h.subscribe(watcher, name);
  const seen = h.record(ch, 'ev');
  p.unsubscribe(name);
  await h.sleep(200);
  const watcherGot = h.waitEvent(wch, 'ev');
  await api.trigger(name, 'ev', { after: 'unsubscribe' });
  await watcherGot;
  await h.sleep(300);
  assert.deepEqual(seen, []);
});

test('private channel: authorized through the SDK endpoint, receives events', T, async (t) => {
  const { track, auth, api } = await setup(t);
  const p = track(h.client(h.APPS.main, { auth }));
  await h.connected(p);
  const name = h.uid('private-chan');
  const ch = await h.subscribe(p, name);
  assert.equal(auth.calls.filter((c) => c.form.channel_name === name).length, 1);
  const got = h.waitEvent(ch, 'secret-news');
  await api.trigger(name, 'secret-news', { v: 42 });
  assert.deepEqual(await got, { v: 42 });
});

test('private channel: a signature made with the wrong secret is refused, the connection stays', T, async (t) => {
  const { track, auth } = await setup(t);
  const p = track(h.client(h.APPS.main, { auth, params: { bad_secret: '1' } }));
  const socketId = await h.connected(p);
  const name = h.uid('private-badsig');
  const ch = p.subscribe(name);
  const err = await h.waitPusherError(p);
  assert.equal(err.code, null);
  assert.match(err.message, /^Invalid signature/);
  assert.equal(ch.subscribed, false);
  await h.sleep(300);
  assert.equal(p.connection.state, 'connected');
  assert.equal(p.connection.socket_id, socketId);
});

test('private channel: auth signed for another app key gives the hosted error text', T, async (t) => {
  const { track, auth } = await setup(t);
  const p = track(h.client(h.APPS.main, { auth, params: { other_key: 'some-other-key' } }));
  await h.connected(p);
  const ch = p.subscribe(h.uid('private-otherkey'));
  const err = await h.waitPusherError(p);
  assert.equal(err.code, null);
  assert.equal(err.message, "Invalid key in subscription auth data: 'some-other-key'");
  assert.equal(ch.subscribed, false);
});

test('private channel: an empty auth from the endpoint gives the hosted error text', T, async (t) => {
  const { track, auth } = await setup(t);
  const p = track(h.client(h.APPS.main, { auth, params: { empty_auth: '1' } }));
  await h.connected(p);
  const name = h.uid('private-emptyauth');
  const ch = p.subscribe(name);
  const err = await h.waitPusherError(p);
  assert.equal(err.code, null);
  assert.equal(err.message, `Auth info required to subscribe to ${name}`);
  assert.equal(ch.subscribed, false);
});

test('presence channel: members, me, member_added and member_removed', T, async (t) => {
  const { track, auth } = await setup(t);
  const name = h.uid('presence-room');
  const alice = track(h.client(h.APPS.main, { auth, params: { user_id: 'alice', user_name: 'Alice' } }));
  await h.connected(alice);
  const ach = await h.subscribe(alice, name);
  assert.equal(ach.members.count, 1);
  assert.deepEqual(ach.members.me, { id: 'alice', info: { name: 'Alice' } });

  const added = h.waitEvent(ach, 'pusher:member_added');
  const bob = track(h.client(h.APPS.main, { auth, params: { user_id: 'bob', user_name: 'Bob' } }));
  await h.connected(bob);
  const bch = await h.subscribe(bob, name);
  assert.deepEqual(await added, { id: 'bob', info: { name: 'Bob' } });
  assert.equal(ach.members.count, 2);
  assert.equal(bch.members.count, 2);
  const ids = [];
  bch.members.each((m) => ids.push(m.id));
  assert.deepEqual(ids.sort(), ['alice', 'bob']);
  assert.deepEqual(bch.members.get('alice').info, { name: 'Alice' });

  const removed = h.waitEvent(ach, 'pusher:member_removed');
  bob.unsubscribe(name);
  assert.deepEqual(await removed, { id: 'bob', info: { name: 'Bob' } });
  assert.equal(ach.members.count, 1);
});

test('presence channel: one user on two connections is one member', T, async (t) => {
  const { track, auth } = await setup(t);
  const name = h.uid('presence-multi');
  const watcher = track(h.client(h.APPS.main, { auth, params: { user_id: 'watcher' } }));
  await h.connected(watcher);
  const wch = await h.subscribe(watcher, name);
  const added = h.record(wch, 'pusher:member_added');
  const removed = h.record(wch, 'pusher:member_removed');
  const c1 = track(h.client(h.APPS.main, { auth, params: { user_id: 'carol' } }));
  const c2 = track(h.client(h.APPS.main, { auth, params: { user_id: 'carol' } }));
  await Promise.all([h.connected(c1), h.connected(c2)]);
  await h.subscribe(c1, name);
  const ch2 = await h.subscribe(c2, name);
  assert.equal(ch2.members.count, 2);
  await h.eventually(() => added.length >= 1, { what: 'member_added' });
  c1.disconnect();
  await h.sleep(500);
  assert.equal(removed.length, 0, 'member still connected through the second connection');
  c2.disconnect();
  await h.eventually(() => removed.length === 1, { what: 'member_removed', timeout: 4000 });
  assert.equal(added.length, 1);
  assert.equal(wch.members.count, 1);
});

test('presence channel: member_removed when a member disconnects', T, async (t) => {
  const { track, auth } = await setup(t);
  const name = h.uid('presence-drop');
  const a = track(h.client(h.APPS.main, { auth, params: { user_id: 'stay' } }));
  const b = track(h.client(h.APPS.main, { auth, params: { user_id: 'leave' } }));
  await Promise.all([h.connected(a), h.connected(b)]);
  const ach = await h.subscribe(a, name);
  await h.subscribe(b, name);
  await h.eventually(() => ach.members.count === 2, { what: 'two members' });
  const removed = h.waitEvent(ach, 'pusher:member_removed', { timeout: 4000 });
  b.disconnect();
  assert.equal((await removed).id, 'leave');
});

test('private-encrypted channel: the SDK encrypts, pusher-js decrypts', T, async (t) => {
  const { track, auth, api } = await setup(t);
  const p = track(h.client(h.APPS.main, { auth }));
  await h.connected(p);
  const name = h.uid('private-encrypted-vault');
  const ch = await h.subscribe(p, name);
  const got = h.waitEvent(ch, 'sealed');
  const res = await api.trigger(name, 'sealed', { secret: 'the eagle has landed', n: 7 });
  assert.equal(res.status, 200);
  assert.deepEqual(await got, { secret: 'the eagle has landed', n: 7 });
});

test('private-encrypted channel: what herald relays is ciphertext, not the plaintext', T, async (t) => {
  const { api } = await setup(t);
  const name = h.uid('private-encrypted-raw');
  const raw = new h.RawClient(h.wsUrl());
  t.after(() => raw.close());
  const est = await raw.next('pusher:connection_established');
  const socketId = est.data.socket_id;
  const { auth } = api.authorizeChannel(socketId, name);
  raw.send({ event: 'pusher:subscribe', data: { auth, channel: name } });
  await raw.next('pusher_internal:subscription_succeeded');
  await api.trigger(name, 'sealed', { secret: 'plaintext-marker' });
  const ev = await raw.next('sealed');
  assert.equal(typeof ev.rawData, 'string');
  assert.ok(!ev.rawData.includes('plaintext-marker'));
  assert.ok(ev.data.nonce && ev.data.ciphertext, `got ${ev.rawData}`);
});

test('cache channel: a late subscriber first receives the last event', T, async (t) => {
  const { track, api } = await setup(t);
  const name = h.uid('cache-scores');
  const first = track(h.client());
  await h.connected(first);
  await h.subscribe(first, name);
  await api.trigger(name, 'score', { home: 1, away: 0 });
  await api.trigger(name, 'score', { home: 2, away: 0 });
  await h.sleep(200);
  const late = track(h.client());
  await h.connected(late);
  const ch = late.subscribe(name);
  const seen = h.record(ch, 'score');
  const misses = h.record(ch, 'pusher:cache_miss');
  await h.waitEvent(ch, 'pusher:subscription_succeeded');
  await h.eventually(() => seen.length >= 1, { what: 'cached event' });
  await h.sleep(200);
  assert.deepEqual(seen, [{ home: 2, away: 0 }]);
  assert.deepEqual(misses, []);
});

test('cache channel: subscribing with nothing cached gives pusher:cache_miss', T, async (t) => {
  const { track } = await setup(t);
  const p = track(h.client());
  await h.connected(p);
  const name = h.uid('cache-empty');
  const ch = p.subscribe(name);
  const miss = h.waitEvent(ch, 'pusher:cache_miss');
  await h.waitEvent(ch, 'pusher:subscription_succeeded');
  await miss;
});

test('private-cache channel: cached event delivered after authorization', T, async (t) => {
  const { track, auth, api } = await setup(t);
  const name = h.uid('private-cache-state');
  await api.trigger(name, 'state', { on: true });
  const p = track(h.client(h.APPS.main, { auth }));
  await h.connected(p);
  const ch = p.subscribe(name);
  const got = h.waitEvent(ch, 'state');
  await h.waitEvent(ch, 'pusher:subscription_succeeded');
  assert.deepEqual(await got, { on: true });
});

test('subscription_count: pusher-js sees the count and channel.subscriptionCount', T, async (t) => {
  const { track } = await setup(t);
  const name = h.uid('counted');
  const a = track(h.client());
  await h.connected(a);
  const ach = a.subscribe(name);
  const counts = h.record(ach, 'pusher:subscription_count');
  await h.waitEvent(ach, 'pusher:subscription_succeeded');
  const b = track(h.client());
  await h.connected(b);
  await h.subscribe(b, name);
  await h.eventually(() => counts.some((c) => c.subscription_count === 2), { what: `subscription_count 2, got ${JSON.stringify(counts)}` });
  assert.equal(ach.subscriptionCount, 2);
  b.unsubscribe(name);
  await h.eventually(() => ach.subscriptionCount === 1, { what: 'subscription_count back to 1' });
});

test('invalid channel name from pusher-js: pusher:error, connection stays', T, async (t) => {
  const { track } = await setup(t);
  const p = track(h.client());
  const socketId = await h.connected(p);
  const ch = p.subscribe('bad channel name!');
  const err = await h.waitPusherError(p);
  assert.equal(err.code, null);
  assert.equal(typeof err.message, 'string');
  assert.ok(err.message.length > 0);
  assert.equal(ch.subscribed, false);
  await h.sleep(200);
  assert.equal(p.connection.socket_id, socketId);
  // The same connection still works for a valid channel.
  await h.subscribe(p, h.uid('after-bad-name'));
});

test('channel name longer than 200 characters: refused with pusher:error', T, async (t) => {
  const { track } = await setup(t);
  const p = track(h.client());
  await h.connected(p);
  const ch = p.subscribe(`long-${'x'.repeat(200)}`);
  const err = await h.waitPusherError(p);
  assert.equal(err.code, null);
  assert.equal(ch.subscribed, false);
  // 200 is accepted (ARCHITECTURE decision 1: nothing an SDK accepts is rejected).
  await h.subscribe(p, `ok-${'y'.repeat(197)}`);
});

test('presence channel over max_presence_members: pusher:error for the extra member', T, async (t) => {
  const { track, auth } = await setup(t, h.APPS.limits);
  const name = h.uid('presence-full');
  const ps = [];
  for (const u of ['m1', 'm2']) {
    const p = track(h.client(h.APPS.limits, { auth, params: { user_id: u } }));
    await h.connected(p);
    await h.subscribe(p, name);
    ps.push(p);
  }
  const extra = track(h.client(h.APPS.limits, { auth, params: { user_id: 'm3' } }));
  await h.connected(extra);
  const ch = extra.subscribe(name);
  const err = await h.waitPusherError(extra);
  assert.equal(err.code, null);
  assert.equal(ch.subscribed, false);
});

test('presence user_info over 1 KB is refused with pusher:error', T, async (t) => {
  const { track, auth } = await setup(t);
  const p = track(h.client(h.APPS.main, { auth, params: { user_id: 'big-info', user_name: 'x'.repeat(1100) } }));
  await h.connected(p);
  const ch = p.subscribe(h.uid('presence-biginfo'));
  const err = await h.waitPusherError(p);
  assert.equal(err.code, null);
  assert.equal(ch.subscribed, false);
  assert.equal(p.connection.state, 'connected');
});

test('presence user_id over 128 characters is refused with pusher:error', T, async (t) => {
  const { track, auth } = await setup(t);
  const p = track(h.client(h.APPS.main, { auth, params: { user_id: 'u'.repeat(129) } }));
  await h.connected(p);
  const ch = p.subscribe(h.uid('presence-longid'));
  const err = await h.waitPusherError(p);
  assert.equal(err.code, null);
  assert.equal(ch.subscribed, false);
  // 128 is fine
  const ok = track(h.client(h.APPS.main, { auth, params: { user_id: 'v'.repeat(128) } }));
  await h.connected(ok);
  const och = await h.subscribe(ok, h.uid('presence-longid-ok'));
  assert.equal(och.members.me.id, 'v'.repeat(128));
});

test('cache channel: the cached event expires after cache_ttl', T, async (t) => {
  const { track, api } = await setup(t, h.APPS.limits); // cache_ttl = 2s
  const name = h.uid('cache-ttl');
  await api.trigger(name, 'state', { v: 1 });
  const early = track(h.client(h.APPS.limits));
  await h.connected(early);
  const ech = early.subscribe(name);
  assert.deepEqual(await h.waitEvent(ech, 'state'), { v: 1 });
  await h.sleep(2600);
  const late = track(h.client(h.APPS.limits));
  await h.connected(late);
  const lch = late.subscribe(name);
  const seen = h.record(lch, 'state');
  await h.waitEvent(lch, 'pusher:cache_miss');
  assert.deepEqual(seen, []);
});

test('private-encrypted channel: triggerBatch events are encrypted per event and decrypted', T, async (t) => {
  const { track, auth, api } = await setup(t);
  const p = track(h.client(h.APPS.main, { auth }));
  await h.connected(p);
  const enc = h.uid('private-encrypted-batch');
  const pub = h.uid('public-beside-encrypted');
  const ech = await h.subscribe(p, enc);
  const pch = await h.subscribe(p, pub);
  const g1 = h.waitEvent(ech, 'sealed');
  const g2 = h.waitEvent(pch, 'open');
  await api.triggerBatch([
    { channel: enc, name: 'sealed', data: { s: 1 } },
    { channel: pub, name: 'open', data: { o: 2 } },
  ]);
  assert.deepEqual(await g1, { s: 1 });
  assert.deepEqual(await g2, { o: 2 });
});

test('subscription_count is not sent on presence channels', T, async (t) => {
  const { track, auth } = await setup(t);
  const name = h.uid('presence-nocount');
  const a = track(h.client(h.APPS.main, { auth, params: { user_id: 'nc1' } }));
  await h.connected(a);
  const ach = a.subscribe(name);
  const counts = h.record(ach, 'pusher:subscription_count');
  await h.waitEvent(ach, 'pusher:subscription_succeeded');
  const b = track(h.client(h.APPS.main, { auth, params: { user_id: 'nc2' } }));
  await h.connected(b);
  const added = h.waitEvent(ach, 'pusher:member_added');
  await h.subscribe(b, name);
  await added;
  await h.sleep(300);
  assert.deepEqual(counts, []);
});

test('private-encrypted-cache channel: the cached ciphertext is decrypted by a late subscriber', T, async (t) => {
  const { track, auth, api } = await setup(t);
  const name = h.uid('private-encrypted-cache-safe');
  await api.trigger(name, 'sealed', { combo: '12-34-56' });
  const p = track(h.client(h.APPS.main, { auth }));
  await h.connected(p);
  const ch = p.subscribe(name);
  const got = h.waitEvent(ch, 'sealed');
  await h.waitEvent(ch, 'pusher:subscription_succeeded');
  assert.deepEqual(await got, { combo: '12-34-56' });
});
