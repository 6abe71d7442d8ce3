'use strict';
// pusher-js 8 over its HTTP fallback transports, each alone (enabledTransports), with httpHost and
// httpPort pointing at herald: xhr_streaming, then xhr_polling. Each runs what the WebSocket tests
// run: connect and stay connected, public, private (auth endpoint), presence, client events,
// socket-id exclusion, unsubscribe; the other party is a WebSocket client.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const h = require('./helpers');

const T = { timeout: 30000 };

/** pusher-js with only `transport`, its HTTP host and port set to herald's. */
function fallbackClient(transport, app, { auth, params } = {}) {
  const server = h.heraldFromEnv();
  return h.client(app, {
    auth,
    params,
    options: { enabledTransports: [transport], httpHost: server.host, httpPort: server.port },
  });
}

/** The transport pusher-js connected with. */
const transportOf = (p) => p.connection.connection.transport.name;

async function setup(t) {
  const track = h.tracker(t);
  const auth = await h.startAuthServer(h.APPS.main);
  track.onClose(auth.close);
  return { track, auth, api: h.sdk(h.APPS.main) };
}

for (const transport of ['xhr_streaming', 'xhr_polling']) {
  test(`${transport}: connects, and stays connected across activity timeouts`, T, async (t) => {
    const { track } = await setup(t);
    const p = track(fallbackClient(transport, h.APPS.main));
    const socketId = await h.connected(p);
    assert.match(socketId, /^\d+\.\d+$/);
    assert.equal(transportOf(p), transport);
    const changes = h.record(p.connection, 'state_change');
    // activity_timeout is 2 s in the test config: pusher-js pings over xhr_send, herald's
    // heartbeats keep the session alive.
    await h.sleep(5500);
    assert.deepEqual(changes, []);
    assert.equal(p.connection.state, 'connected');
    assert.equal(p.connection.socket_id, socketId);
  });

  test(`${transport}: public channel, events in order, unsubscribe`, T, async (t) => {
    const { track, api } = await setup(t);
    const p = track(fallbackClient(transport, h.APPS.main));
    await h.connected(p);
    const name = h.uid('fallback-public');
    const ch = await h.subscribe(p, name);
    const seen = h.record(ch, 'tick');
    for (let i = 0; i < 5; i += 1) {
      assert.equal((await api.trigger(name, 'tick', { i })).status, 200);
    }
    await h.eventually(() => seen.length === 5, { what: '5 events' });
    assert.deepEqual(seen.map((d) => d.i), [0, 1, 2, 3, 4]);
    p.unsubscribe(name);
    await h.sleep(500);
    await api.trigger(name, 'tick', { i: 5 });
    await h.sleep(500);
    assert.equal(seen.length, 5, 'nothing after unsubscribe');
  });

  test(`${transport}: private channel, and exclusion by socket id`, T, async (t) => {
    const { track, auth, api } = await setup(t);
    const p = track(fallbackClient(transport, h.APPS.main, { auth }));
    const other = track(h.client(h.APPS.main, { auth }));
    const socketId = await h.connected(p);
    await h.connected(other);
    const name = h.uid('private-fallback');
    const ch = await h.subscribe(p, name);
    const och = await h.subscribe(other, name);
    const got = h.waitEvent(ch, 'secret');
    await api.trigger(name, 'secret', { n: 1 });
    assert.deepEqual(await got, { n: 1 });
    const mine = h.record(ch, 'echo');
    const theirs = h.waitEvent(och, 'echo');
    await api.trigger(name, 'echo', { n: 2 }, { socket_id: socketId });
    assert.deepEqual(await theirs, { n: 2 });
    await h.sleep(500);
    assert.deepEqual(mine, [], 'the excluded socket got nothing');
  });

  test(`${transport}: presence members, and member_removed when it disconnects`, T, async (t) => {
    const { track, auth } = await setup(t);
    const name = h.uid('presence-fallback');
    const ws = track(h.client(h.APPS.main, { auth, params: { user_id: 'ws-user' } }));
    await h.connected(ws);
    const wch = await h.subscribe(ws, name);
    const added = h.waitEvent(wch, 'pusher:member_added');
    const p = track(fallbackClient(transport, h.APPS.main, { auth, params: { user_id: 'http-user', user_name: 'H' } }));
    await h.connected(p);
    const pch = await h.subscribe(p, name);
    assert.deepEqual(await added, { id: 'http-user', info: { name: 'H' } });
    assert.equal(pch.members.count, 2);
    assert.deepEqual(pch.members.me, { id: 'http-user', info: { name: 'H' } });
    assert.deepEqual(pch.members.get('ws-user').info, { name: 'ws-user' });
    // pusher-js tells the server nothing when it disconnects an HTTP transport: it drops its
    // requests, and herald ends the session once none is receiving (http_session_timeout, 1 s).
    // Through a balancer (PT_CLUSTER=1) the dropped request may be noticed only when the next
    // heartbeat (every 2 s here) finds the client gone: about 4 s in all.
    const removed = h.waitEvent(wch, 'pusher:member_removed', { timeout: 10000 });
    p.disconnect();
    assert.equal((await removed).id, 'http-user');
  });

  test(`${transport}: client events both ways, never echoed`, T, async (t) => {
    const { track, auth } = await setup(t);
    const name = h.uid('private-fallback-chat');
    const p = track(fallbackClient(transport, h.APPS.main, { auth }));
    const ws = track(h.client(h.APPS.main, { auth }));
    await Promise.all([h.connected(p), h.connected(ws)]);
    const pch = await h.subscribe(p, name);
    const wch = await h.subscribe(ws, name);
    const ownP = h.record(pch, 'client-from-http');
    const ownW = h.record(wch, 'client-from-ws');
    const atWs = h.waitEvent(wch, 'client-from-http');
    assert.equal(pch.trigger('client-from-http', { a: 1 }), true);
    assert.deepEqual(await atWs, { a: 1 });
    const atP = h.waitEvent(pch, 'client-from-ws');
    wch.trigger('client-from-ws', 'text');
    assert.equal(await atP, 'text');
    await h.sleep(400);
    assert.deepEqual([ownP, ownW], [[], []]);
  });
}
