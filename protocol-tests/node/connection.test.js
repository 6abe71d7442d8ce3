'use strict';
// pusher-js connection lifecycle against herald: handshake, keep-alive, connection-level refusals.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const h = require('./helpers');

const T = { timeout: 20000 };

test('pusher-js connects and gets a socket_id in the SDK format', T, async (t) => {
  const track = h.tracker(t);
  const p = track(h.client());
  const socketId = await h.connected(p);
  assert.match(socketId, /^\d+\.\d+$/);
  // The SDK accepts it (it rejects any other format before signing).
  const auth = h.sdk().authorizeChannel(socketId, 'private-x');
  assert.match(auth.auth, /^pt-main-key:[0-9a-f]{64}$/);
});

test('two connections get different socket ids', T, async (t) => {
  const track = h.tracker(t);
  const a = track(h.client());
  const b = track(h.client());
  const [sa, sb] = await Promise.all([h.connected(a), h.connected(b)]);
  assert.notEqual(sa, sb);
});

test('pusher-js stays connected across several activity timeouts (ping/pong)', T, async (t) => {
  // The test config sets activity_timeout = 2s; pusher-js adopts it and pings when idle.
  const track = h.tracker(t);
  const p = track(h.client());
  const socketId = await h.connected(p);
  const changes = h.record(p.connection, 'state_change');
  const messages = h.record(p.connection, 'message');
  await h.sleep(7000);
  assert.equal(p.connection.state, 'connected');
  assert.equal(p.connection.socket_id, socketId, 'no reconnect happened');
  assert.deepEqual(changes, []);
  const pongs = messages.filter((m) => m.event === 'pusher:pong');
  assert.ok(pongs.length >= 2, `expected pusher:pong replies to pusher-js pings, got ${JSON.stringify(messages)}`);
});

test('unknown app key: pusher-js reports 4001 and does not reconnect', T, async (t) => {
  const track = h.tracker(t);
  const p = track(h.client({ key: 'no-such-key', id: '0', secret: 'x' }));
  const errs = h.record(p.connection, 'error');
  await h.waitState(p, 'disconnected', { timeout: 5000 });
  const codes = errs.map((e) => e?.error?.data?.code ?? e?.data?.code);
  assert.ok(codes.includes(4001), `errors seen: ${JSON.stringify(errs)}`);
  const states = h.record(p.connection, 'state_change');
  await h.sleep(2500);
  assert.equal(p.connection.state, 'disconnected');
  assert.deepEqual(states, [], 'pusher-js must not retry after 4001');
});

test('disabled app: pusher-js reports 4003 and does not reconnect', T, async (t) => {
  const track = h.tracker(t);
  const p = track(h.client(h.APPS.disabled));
  const errs = h.record(p.connection, 'error');
  await h.waitState(p, 'disconnected', { timeout: 5000 });
  const codes = errs.map((e) => e?.error?.data?.code ?? e?.data?.code);
  assert.ok(codes.includes(4003), `errors seen: ${JSON.stringify(errs)}`);
});

test('connection quota: the connection over max_connections gets 4004', T, async (t) => {
  const track = h.tracker(t);
  const a = track(h.client(h.APPS.quota));
  const b = track(h.client(h.APPS.quota));
  await Promise.all([h.connected(a), h.connected(b)]);
  const c = track(h.client(h.APPS.quota));
  const errs = h.record(c.connection, 'error');
  await h.waitState(c, 'disconnected', { timeout: 5000 });
  const codes = errs.map((e) => e?.error?.data?.code ?? e?.data?.code);
  assert.ok(codes.includes(4004), `errors seen: ${JSON.stringify(errs)}`);
  assert.equal(a.connection.state, 'connected');
  assert.equal(b.connection.state, 'connected');
  // A slot frees up when one leaves.
  a.disconnect();
  await h.eventually(async () => {
    const d = track(h.client(h.APPS.quota));
    await Promise.race([h.connected(d, { timeout: 2000 }), h.waitState(d, 'disconnected', { timeout: 2000 })]);
    return d.connection.state === 'connected';
  }, { what: 'a connection after one left', timeout: 5000, interval: 200 });
});

test('authorized connections: an idle unauthorized pusher-js client is closed with 4009 and stays down', T, async (t) => {
  const track = h.tracker(t);
  const p = track(h.client(h.APPS.authconn));
  await h.connected(p);
  const errs = h.record(p.connection, 'error');
  await h.waitState(p, 'disconnected', { timeout: 4000 });
  const codes = errs.map((e) => e?.error?.data?.code ?? e?.data?.code);
  assert.ok(codes.includes(4009), `errors seen: ${JSON.stringify(errs)}`);
  const states = h.record(p.connection, 'state_change');
  await h.sleep(1500);
  assert.deepEqual(states, [], 'pusher-js must not retry after 4009');
});

test('authorized connections: subscribing to a private channel in time keeps the connection', T, async (t) => {
  const track = h.tracker(t);
  const auth = await h.startAuthServer(h.APPS.authconn);
  track.onClose(auth.close);
  const p = track(h.client(h.APPS.authconn, { auth }));
  const socketId = await h.connected(p);
  await h.subscribe(p, h.uid('private-authconn'));
  await h.sleep(2500);
  assert.equal(p.connection.state, 'connected');
  assert.equal(p.connection.socket_id, socketId);
});

test('authorized connections: signing in keeps the connection', T, async (t) => {
  const track = h.tracker(t);
  const auth = await h.startAuthServer(h.APPS.authconn);
  track.onClose(auth.close);
  const p = track(h.client(h.APPS.authconn, { auth, params: { user_id: h.uid('u') } }));
  const socketId = await h.connected(p);
  p.signin();
  await h.eventually(() => p.user.user_data, { what: 'signin_success' });
  await h.sleep(2500);
  assert.equal(p.connection.state, 'connected');
  assert.equal(p.connection.socket_id, socketId);
});

test('authorized connections: a public subscription alone does not authorize (4009)', T, async (t) => {
  const track = h.tracker(t);
  const p = track(h.client(h.APPS.authconn));
  await h.connected(p);
  const errs = h.record(p.connection, 'error');
  await h.subscribe(p, h.uid('public-authconn'));
  await h.waitState(p, 'disconnected', { timeout: 4000 });
  const codes = errs.map((e) => e?.error?.data?.code ?? e?.data?.code);
  assert.ok(codes.includes(4009), `errors seen: ${JSON.stringify(errs)}`);
});
