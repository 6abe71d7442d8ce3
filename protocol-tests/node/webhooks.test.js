'use strict';
// Webhooks herald really sends, checked with the Node SDK's webhook().isValid() / getEvents().
// This file runs its own herald so the webhook URL can point at a receiver started here.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const h = require('./helpers');

// In cluster mode this file is skipped: its herald is its own, not the cluster behind HERALD_URL.
const SKIP = h.singleNodeOnly('runs its own herald, configured with the webhook receiver\'s URL');
const T = { timeout: 20000, skip: SKIP };
const APP = { id: '2001', key: 'wh-key', secret: 'wh-secret' };
const BATCH_APP = { id: '2002', key: 'whb-key', secret: 'whb-secret' };
const FLAKY_APP = { id: '2003', key: 'whf-key', secret: 'whf-secret' };
let herald;
let receiver;
let auth;

before(async () => {
  if (SKIP) return;
  receiver = await h.startWebhookReceiver();
  herald = await h.spawnHerald(`
[server]
host = "127.0.0.1"
port = 0
activity_timeout = "2s"
pong_timeout = "1s"
shutdown_timeout = "1s"

[webhooks]
vacated_delay = "500ms"
timeout = "2s"
retry_for = "5s"

[[apps]]
id = "${APP.id}"
key = "${APP.key}"
secret = "${APP.secret}"
client_events = true
subscription_count = true

[[apps.webhooks]]
url = "${receiver.url}"
events = ["channel_occupied", "channel_vacated", "member_added", "member_removed",
          "client_event", "cache_miss", "subscription_count"]
batch = false

[[apps]]
id = "${BATCH_APP.id}"
key = "${BATCH_APP.key}"
secret = "${BATCH_APP.secret}"

[[apps.webhooks]]
url = "http://127.0.0.1:${receiver.port}/batched"
events = ["channel_occupied", "channel_vacated"]
batch = true

[[apps]]
id = "${FLAKY_APP.id}"
key = "${FLAKY_APP.key}"
secret = "${FLAKY_APP.secret}"

[[apps.webhooks]]
url = "http://127.0.0.1:${receiver.port}/flaky"
events = ["channel_occupied"]
`);
  auth = await h.startAuthServer(APP, { server: herald.server });
});

after(async () => {
  if (auth) await auth.close();
  if (herald) await herald.stop();
  if (receiver) await receiver.close();
});

const api = () => h.sdk(APP, { server: herald.server });

/** Every delivery so far to `path`, validated with the SDK, flattened to its events. */
function validatedEvents(path = '/webhooks', app = APP) {
  const out = [];
  for (const d of receiver.deliveries.filter((x) => x.path === path)) {
    const wh = h.sdk(app, { server: herald.server }).webhook({ headers: d.headers, rawBody: d.rawBody });
    out.push(...(wh.isValid() ? wh.getEvents() : [{ invalid: true, rawBody: d.rawBody, headers: d.headers }]));
  }
  return out;
}

function waitWebhook(pred, what, timeout = 5000) {
  return h.eventually(() => validatedEvents().find(pred), { what: `webhook ${what}; got ${JSON.stringify(validatedEvents())}`, timeout });
}

function client(params = {}) {
  return h.client(APP, { server: herald.server, auth, params });
}

test('every delivery is valid for the Node SDK (signature, key, content type)', T, async (t) => {
  const track = h.tracker(t);
  const p = track(client());
  await h.connected(p);
  const name = h.uid('wh-valid');
  await h.subscribe(p, name);
  await waitWebhook((e) => e.name === 'channel_occupied' && e.channel === name, 'channel_occupied');
  for (const d of receiver.deliveries.filter((x) => x.path === '/webhooks')) {
    const wh = api().webhook({ headers: d.headers, rawBody: d.rawBody });
    assert.equal(d.headers['content-type'], 'application/json');
    assert.equal(d.headers['x-pusher-key'], APP.key);
    assert.equal(wh.isValid(), true, `invalid webhook: ${JSON.stringify(d)}`);
    const body = wh.getData();
    assert.equal(typeof body.time_ms, 'number');
    assert.ok(Math.abs(Date.now() - body.time_ms) < 60000, 'time_ms is the creation time');
    assert.equal(body.events.length, 1, 'batch = false: one event per delivery');
  }
  // The SDK with another secret refuses the same delivery.
  const d = receiver.deliveries[0];
  const wrong = h.sdk({ ...APP, secret: 'other' }, { server: herald.server }).webhook({ headers: d.headers, rawBody: d.rawBody });
  assert.equal(wrong.isValid(), false);
});

test('channel_occupied on first subscriber, channel_vacated after the last leaves', T, async (t) => {
  const track = h.tracker(t);
  const p = track(client());
  await h.connected(p);
  const name = h.uid('wh-occ');
  await h.subscribe(p, name);
  await waitWebhook((e) => e.name === 'channel_occupied' && e.channel === name, 'channel_occupied');
  const left = Date.now();
  p.unsubscribe(name);
  await waitWebhook((e) => e.name === 'channel_vacated' && e.channel === name, 'channel_vacated');
  assert.ok(Date.now() - left >= 400, 'channel_vacated waits for vacated_delay');
  assert.equal(validatedEvents().filter((e) => e.channel === name && e.name === 'channel_occupied').length, 1);
});

test('leaving and coming back within vacated_delay sends no vacated/occupied pair', T, async (t) => {
  const track = h.tracker(t);
  const p = track(client());
  await h.connected(p);
  const name = h.uid('wh-blip');
  await h.subscribe(p, name);
  await waitWebhook((e) => e.name === 'channel_occupied' && e.channel === name, 'channel_occupied');
  p.unsubscribe(name);
  await h.sleep(50);
  await h.subscribe(p, name);
  await h.sleep(1200);
  const mine = validatedEvents().filter((e) => e.channel === name && e.name.startsWith('channel_'));
  assert.deepEqual(mine.map((e) => e.name), ['channel_occupied']);
});

test('member_added and member_removed carry the user id as a string', T, async (t) => {
  const track = h.tracker(t);
  const name = h.uid('presence-wh');
  const p = track(client({ user_id: 'wh-user-1' }));
  await h.connected(p);
  await h.subscribe(p, name);
  const added = await waitWebhook((e) => e.name === 'member_added' && e.channel === name, 'member_added');
  assert.equal(added.user_id, 'wh-user-1');
  p.disconnect();
  const removed = await waitWebhook((e) => e.name === 'member_removed' && e.channel === name, 'member_removed');
  assert.equal(removed.user_id, 'wh-user-1');
});

test('client_event webhook: channel, event, data string, socket_id, user_id', T, async (t) => {
  const track = h.tracker(t);
  const name = h.uid('presence-whce');
  const a = track(client({ user_id: 'ce-sender' }));
  const b = track(client({ user_id: 'ce-receiver' }));
  const [sa] = await Promise.all([h.connected(a), h.connected(b)]);
  const ach = await h.subscribe(a, name);
  const bch = await h.subscribe(b, name);
  const got = h.waitEvent(bch, 'client-ping');
  ach.trigger('client-ping', { n: 5 });
  await got;
  const ev = await waitWebhook((e) => e.name === 'client_event' && e.channel === name, 'client_event');
  assert.equal(ev.event, 'client-ping');
  assert.equal(typeof ev.data, 'string');
  assert.deepEqual(JSON.parse(ev.data), { n: 5 });
  assert.equal(ev.socket_id, sa);
  assert.equal(ev.user_id, 'ce-sender');
});

test('cache_miss webhook when subscribing to an empty cache channel', T, async (t) => {
  const track = h.tracker(t);
  const p = track(client());
  await h.connected(p);
  const name = h.uid('cache-wh');
  await h.subscribe(p, name);
  await waitWebhook((e) => e.name === 'cache_miss' && e.channel === name, 'cache_miss');
});

test('subscription_count webhook reports the count as a number', T, async (t) => {
  const track = h.tracker(t);
  const name = h.uid('wh-count');
  const a = track(client());
  const b = track(client());
  await Promise.all([h.connected(a), h.connected(b)]);
  await h.subscribe(a, name);
  await h.subscribe(b, name);
  const ev = await waitWebhook((e) => e.name === 'subscription_count' && e.channel === name && e.subscription_count === 2, 'subscription_count 2');
  assert.equal(typeof ev.subscription_count, 'number');
});

test('batch webhooks: several events in one valid delivery', T, async (t) => {
  const track = h.tracker(t);
  const p = track(h.client(BATCH_APP, { server: herald.server }));
  await h.connected(p);
  const names = [h.uid('whb'), h.uid('whb'), h.uid('whb')];
  for (const n of names) p.subscribe(n);
  await h.eventually(() => {
    const evs = validatedEvents('/batched', BATCH_APP);
    return names.every((n) => evs.some((e) => e.name === 'channel_occupied' && e.channel === n));
  }, { what: `batched channel_occupied; got ${JSON.stringify(receiver.deliveries.filter((d) => d.path === '/batched').map((d) => d.rawBody))}` });
  for (const d of receiver.deliveries.filter((x) => x.path === '/batched')) {
    assert.equal(h.sdk(BATCH_APP, { server: herald.server }).webhook({ headers: d.headers, rawBody: d.rawBody }).isValid(), true);
  }
  const sizes = receiver.deliveries.filter((x) => x.path === '/batched').map((d) => JSON.parse(d.rawBody).events.length);
  assert.ok(sizes.some((n) => n > 1), `expected at least one delivery with several events; sizes ${JSON.stringify(sizes)}`);
});

test('a failed delivery is retried and the retry is still valid', T, async (t) => {
  const track = h.tracker(t);
  const p = track(h.client(FLAKY_APP, { server: herald.server }));
  await h.connected(p);
  const name = h.uid('whf');
  await h.subscribe(p, name);
  const mine = () => receiver.deliveries.filter((d) => d.path === '/flaky' && d.rawBody.includes(name));
  await h.eventually(() => mine().some((d) => d.status === 200), { what: 'a retried delivery', timeout: 8000 });
  const [first, retry] = mine();
  assert.equal(first.status, 503);
  assert.equal(retry.rawBody, first.rawBody, 'the retry carries the same body');
  const wh = h.sdk(FLAKY_APP, { server: herald.server }).webhook({ headers: retry.headers, rawBody: retry.rawBody });
  assert.equal(wh.isValid(), true);
  assert.deepEqual(wh.getEvents(), [{ name: 'channel_occupied', channel: name }]);
});

test('signing in (and the #server-to-user subscription) produces no channel webhooks', T, async (t) => {
  const track = h.tracker(t);
  const id = h.uid('wh-signin');
  const p = track(client({ user_id: id }));
  await h.connected(p);
  p.signin();
  await h.eventually(() => p.user.serverToUserChannel && p.user.serverToUserChannel.subscribed, { what: 'signed in' });
  // a public subscription afterwards, so we know webhooks for this connection have been flushed
  const marker = h.uid('wh-marker');
  await h.subscribe(p, marker);
  await waitWebhook((e) => e.name === 'channel_occupied' && e.channel === marker, 'marker channel_occupied');
  p.disconnect();
  await waitWebhook((e) => e.name === 'channel_vacated' && e.channel === marker, 'marker channel_vacated');
  const internal = validatedEvents().filter((e) => (e.channel || '').includes(id));
  assert.deepEqual(internal, []);
});

test('client_event webhook on a private channel has no user_id', T, async (t) => {
  const track = h.tracker(t);
  const name = h.uid('private-whce');
  const a = track(client());
  const b = track(client());
  const [sa] = await Promise.all([h.connected(a), h.connected(b)]);
  const ach = await h.subscribe(a, name);
  const bch = await h.subscribe(b, name);
  const got = h.waitEvent(bch, 'client-note');
  ach.trigger('client-note', 'text data');
  await got;
  const ev = await waitWebhook((e) => e.name === 'client_event' && e.channel === name, 'client_event');
  assert.equal(ev.data, 'text data');
  assert.equal(ev.socket_id, sa);
  assert.equal(ev.user_id, undefined);
});
