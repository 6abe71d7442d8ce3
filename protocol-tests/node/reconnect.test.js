'use strict';
// Server restart: herald closes with 4200 on shutdown, pusher-js reconnects by itself and
// re-subscribes its channels (public and private), and events flow again.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const h = require('./helpers');

const APP = { id: '3001', key: 'rs-key', secret: 'rs-secret' };

const config = (port) => `
[server]
host = "127.0.0.1"
port = ${port}
activity_timeout = "2s"
pong_timeout = "1s"
shutdown_timeout = "1s"

[[apps]]
id = "${APP.id}"
key = "${APP.key}"
secret = "${APP.secret}"
`;

const SKIP = h.singleNodeOnly('restarts a herald of its own on a fixed port');

test('server restart: 4200, automatic reconnection and re-subscription', { timeout: 45000, skip: SKIP }, async (t) => {
  const port = await h.freePort();
  let herald = await h.spawnHerald(config(port));
  const track = h.tracker(t);
  track.onClose(() => herald.stop());
  const auth = await h.startAuthServer(APP, { server: herald.server });
  track.onClose(auth.close);

  const p = track(h.client(APP, { server: herald.server, auth, params: { user_id: 'restart-user' } }));
  const firstSocket = await h.connected(p);
  const pub = await h.subscribe(p, h.uid('restart-public'));
  const priv = await h.subscribe(p, h.uid('restart-private'));
  const pres = await h.subscribe(p, h.uid('presence-restart'));
  const errors = h.record(p.connection, 'error');
  const states = h.record(p.connection, 'state_change');
  const resubscribed = h.record(pub, 'pusher:subscription_succeeded');
  const privResubscribed = h.record(priv, 'pusher:subscription_succeeded');
  const presResubscribed = h.record(pres, 'pusher:subscription_succeeded');

  const exit = await herald.stop();
  assert.equal(exit.code, 0, `herald exit ${JSON.stringify(exit)}\n${herald.logs().slice(-2000)}`);
  await h.eventually(() => p.connection.state !== 'connected', { what: 'pusher-js to notice the shutdown' });
  const codes = errors.map((e) => e?.error?.data?.code ?? e?.data?.code);
  assert.ok(codes.includes(4200), `expected close 4200 on shutdown; errors: ${JSON.stringify(errors)}`);

  herald = await h.spawnHerald(config(port));
  const secondSocket = await h.connected(p, { timeout: 20000 });
  assert.notEqual(secondSocket, firstSocket);
  await h.eventually(() => resubscribed.length >= 1 && privResubscribed.length >= 1 && presResubscribed.length >= 1,
    { what: 're-subscription', timeout: 5000 });
  assert.equal(pres.members.count, 1);
  assert.equal(pres.members.me.id, 'restart-user');
  assert.ok(!states.some((s) => s.current === 'failed'), JSON.stringify(states));

  const api = h.sdk(APP, { server: herald.server });
  const g1 = h.waitEvent(pub, 'after-restart');
  const g2 = h.waitEvent(priv, 'after-restart');
  await api.trigger([pub.name, priv.name], 'after-restart', { ok: true });
  assert.deepEqual(await g1, { ok: true });
  assert.deepEqual(await g2, { ok: true });
});
