'use strict';
// Client events between two pusher-js clients through herald.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const h = require('./helpers');

const T = { timeout: 20000 };

async function pair(t, prefix, app = h.APPS.main, users = ['sender', 'receiver']) {
  const track = h.tracker(t);
  const auth = await h.startAuthServer(app);
  track.onClose(auth.close);
  const name = h.uid(prefix);
  const [a, b] = users.map((u) => track(h.client(app, { auth, params: { user_id: u } })));
  await Promise.all([h.connected(a), h.connected(b)]);
  const ach = await h.subscribe(a, name);
  const bch = await h.subscribe(b, name);
  return { track, auth, name, a, b, ach, bch };
}

test('private channel: a client event reaches the other client, not the sender', T, async (t) => {
  const { ach, bch } = await pair(t, 'private-chat');
  const own = h.record(ach, 'client-typing');
  const got = h.waitEvent(bch, 'client-typing', { withMeta: true });
  assert.equal(ach.trigger('client-typing', { who: 'sender', at: 1 }), true);
  const { data, meta } = await got;
  assert.deepEqual(data, { who: 'sender', at: 1 });
  assert.equal(meta.user_id, undefined, 'no user_id on private-channel client events');
  await h.sleep(300);
  assert.deepEqual(own, []);
});

test('presence channel: a client event carries the sender user_id as metadata', T, async (t) => {
  const { ach, bch } = await pair(t, 'presence-chat', h.APPS.main, ['u-sender', 'u-receiver']);
  const got = h.waitEvent(bch, 'client-wave', { withMeta: true });
  ach.trigger('client-wave', { hi: true });
  const { data, meta } = await got;
  assert.deepEqual(data, { hi: true });
  assert.equal(meta.user_id, 'u-sender');
});

test('client event with string data is relayed as the same string', T, async (t) => {
  const { ach, bch } = await pair(t, 'private-strings');
  const got = h.waitEvent(bch, 'client-note');
  ach.trigger('client-note', 'plain text');
  assert.equal(await got, 'plain text');
});

test('client events disabled for the app: hosted error text, connection stays', T, async (t) => {
  const { a, ach, bch } = await pair(t, 'private-noclient', h.APPS.noclient);
  const seen = h.record(bch, 'client-x');
  const socketId = a.connection.socket_id;
  ach.trigger('client-x', { n: 1 });
  const err = await h.waitPusherError(a);
  assert.equal(err.code, null);
  assert.equal(err.message, 'To send client events, you must enable this feature in the Settings page of your dashboard.');
  await h.sleep(300);
  assert.deepEqual(seen, []);
  assert.equal(a.connection.state, 'connected');
  assert.equal(a.connection.socket_id, socketId);
});

test('client event on a public channel is rejected with pusher:error', T, async (t) => {
  const { a, ach, bch } = await pair(t, 'public-chat');
  const seen = h.record(bch, 'client-x');
  ach.trigger('client-x', { n: 1 });
  const err = await h.waitPusherError(a);
  assert.equal(err.code, null);
  assert.equal(err.message, 'Client event rejected - only supported on private and presence channels');
  await h.sleep(300);
  assert.deepEqual(seen, []);
  assert.equal(a.connection.state, 'connected');
});

test('client event on a channel the sender is not subscribed to is rejected', T, async (t) => {
  const { a, b, name } = await pair(t, 'private-notsub');
  a.unsubscribe(name);
  await h.sleep(200);
  const bch = b.channel(name);
  const seen = h.record(bch, 'client-x');
  // pusher-js sends even when not subscribed (it only logs a warning).
  a.send_event('client-x', { n: 1 }, name);
  const err = await h.waitPusherError(a);
  assert.equal(err.code, null);
  assert.match(err.message, /not subscribed/);
  await h.sleep(300);
  assert.deepEqual(seen, []);
});

test('client event rate limit: 4301 as pusher:error, connection not closed', T, async (t) => {
  const { a, ach, bch } = await pair(t, 'private-burst');
  const seen = h.record(bch, 'client-burst');
  const errs = [];
  a.connection.bind('error', (e) => { if (e?.type === 'PusherError') errs.push(e.data); });
  const socketId = a.connection.socket_id;
  for (let i = 0; i < 20; i += 1) ach.trigger('client-burst', { i });
  await h.eventually(() => errs.some((e) => e.code === 4301), { what: '4301 error' });
  await h.sleep(500);
  assert.ok(seen.length >= 10 && seen.length < 20, `delivered ${seen.length} of 20`);
  assert.equal(a.connection.state, 'connected');
  assert.equal(a.connection.socket_id, socketId);
  // After a second the budget is back.
  await h.sleep(1100);
  const got = h.waitEvent(bch, 'client-after');
  ach.trigger('client-after', { ok: 1 });
  assert.deepEqual(await got, { ok: 1 });
});

test('client event data over 10 KB is refused with pusher:error, connection stays', T, async (t) => {
  const { a, ach, bch } = await pair(t, 'private-bigclient');
  const seen = h.record(bch, 'client-big');
  const socketId = a.connection.socket_id;
  ach.trigger('client-big', { blob: 'x'.repeat(11000) });
  const err = await h.waitPusherError(a);
  assert.equal(typeof err.message, 'string');
  await h.sleep(300);
  assert.deepEqual(seen, []);
  assert.equal(a.connection.state, 'connected');
  assert.equal(a.connection.socket_id, socketId);
  const got = h.waitEvent(bch, 'client-small');
  ach.trigger('client-small', { blob: 'x'.repeat(9000) });
  assert.equal((await got).blob.length, 9000);
});
