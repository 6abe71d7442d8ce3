'use strict';
// The Node server SDK (npm `pusher`) against herald's HTTP API: what the application gets back,
// and what pusher-js clients receive.
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

async function expectRequestError(promise) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof h.PusherSDK.RequestError, `expected a RequestError, got ${e}`);
    return e;
  }
  assert.fail('expected the SDK call to reject');
}

test('trigger to several channels reaches each of them', T, async (t) => {
  const { track, api } = await setup(t);
  const names = [h.uid('multi-a'), h.uid('multi-b'), h.uid('multi-c')];
  const waits = [];
  for (const name of names) {
    const p = track(h.client());
    await h.connected(p);
    const ch = await h.subscribe(p, name);
    waits.push(h.waitEvent(ch, 'fanout'));
  }
  const res = await api.trigger(names, 'fanout', { all: true });
  assert.equal(res.status, 200);
  for (const d of await Promise.all(waits)) assert.deepEqual(d, { all: true });
});

test('trigger with socket_id excludes that connection only', T, async (t) => {
  const { track, api } = await setup(t);
  const name = h.uid('exclude');
  const a = track(h.client());
  const b = track(h.client());
  const [sa] = await Promise.all([h.connected(a), h.connected(b)]);
  const ach = await h.subscribe(a, name);
  const bch = await h.subscribe(b, name);
  const aSeen = h.record(ach, 'ev');
  const bGot = h.waitEvent(bch, 'ev');
  await api.trigger(name, 'ev', { x: 1 }, { socket_id: sa });
  assert.deepEqual(await bGot, { x: 1 });
  await h.sleep(300);
  assert.deepEqual(aSeen, []);
});

test('trigger with info returns user_count and subscription_count per channel', T, async (t) => {
  const { track, auth, api } = await setup(t);
  const presence = h.uid('presence-info');
  const pub = h.uid('public-info');
  for (const u of ['i1', 'i2']) {
    const p = track(h.client(h.APPS.main, { auth, params: { user_id: u } }));
    await h.connected(p);
    await h.subscribe(p, presence);
    await h.subscribe(p, pub);
  }
  const res = await api.trigger([presence, pub], 'ev', {}, { info: 'user_count,subscription_count' });
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(body.channels[presence].user_count, 2);
  assert.equal(body.channels[presence].subscription_count, 2);
  assert.equal(body.channels[pub].subscription_count, 2);
  assert.equal(body.channels[pub].user_count, undefined);
});

test('triggerBatch delivers every event; with info returns per-event attributes', T, async (t) => {
  const { track, api } = await setup(t);
  const c1 = h.uid('batch-1');
  const c2 = h.uid('batch-2');
  const p = track(h.client());
  await h.connected(p);
  const ch1 = await h.subscribe(p, c1);
  const ch2 = await h.subscribe(p, c2);
  const g1 = h.waitEvent(ch1, 'b1');
  const g2 = h.waitEvent(ch2, 'b2');
  const res = await api.triggerBatch([
    { channel: c1, name: 'b1', data: { n: 1 } },
    { channel: c2, name: 'b2', data: 'two', info: 'subscription_count' },
  ]);
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.deepEqual(await g1, { n: 1 });
  assert.equal(await g2, 'two');
  assert.ok(Array.isArray(body.batch), `body ${JSON.stringify(body)}`);
  assert.equal(body.batch.length, 2);
  assert.equal(body.batch[1].subscription_count, 1);
});

test('triggerBatch with socket_id excludes that connection', T, async (t) => {
  const { track, api } = await setup(t);
  const name = h.uid('batch-ex');
  const a = track(h.client());
  const b = track(h.client());
  const [sa] = await Promise.all([h.connected(a), h.connected(b)]);
  const ach = await h.subscribe(a, name);
  const bch = await h.subscribe(b, name);
  const aSeen = h.record(ach, 'ev');
  const bGot = h.waitEvent(bch, 'ev');
  await api.triggerBatch([{ channel: name, name: 'ev', data: { y: 2 }, socket_id: sa }]);
  assert.deepEqual(await bGot, { y: 2 });
  await h.sleep(300);
  assert.deepEqual(aSeen, []);
});

test('get /channels lists occupied channels, with filter_by_prefix and user_count', T, async (t) => {
  const { track, auth, api } = await setup(t);
  const pub = h.uid('listed');
  const pres = h.uid('presence-listed');
  const lister = h.uid('lister');
  const p = track(h.client(h.APPS.main, { auth, params: { user_id: lister } }));
  await h.connected(p);
  p.signin(); // pusher-js then subscribes to #server-to-user-<id>, which must not be listed
  await h.eventually(() => p.user.serverToUserChannel && p.user.serverToUserChannel.subscribed, { what: 'signed in' });
  await h.subscribe(p, pub);
  await h.subscribe(p, pres);

  const all = await (await api.get({ path: '/channels' })).json();
  assert.deepEqual(all.channels[pub], {});
  assert.deepEqual(all.channels[pres], {});
  assert.ok(!Object.keys(all.channels).some((c) => c.startsWith('#')), `no #server-to-user channels listed: ${Object.keys(all.channels)}`);

  const res = await api.get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } });
  assert.equal(res.status, 200);
  const filtered = await res.json();
  assert.deepEqual(filtered.channels[pres], { user_count: 1 });
  assert.equal(filtered.channels[pub], undefined);
  assert.ok(Object.keys(filtered.channels).every((c) => c.startsWith('presence-')));

  p.unsubscribe(pub);
  await h.eventually(async () => {
    const again = await (await api.get({ path: '/channels' })).json();
    return again.channels[pub] === undefined;
  }, { what: 'unsubscribed channel to disappear from /channels' });
});

test('get /channels with no occupied channel matching returns an empty object', T, async (t) => {
  const { api } = await setup(t);
  const res = await api.get({ path: '/channels', params: { filter_by_prefix: h.uid('nothing-here') } });
  assert.deepEqual(await res.json(), { channels: {} });
});

test('get /channels/{name} with every info attribute', T, async (t) => {
  const { track, auth, api } = await setup(t);
  const pres = h.uid('presence-cache-info');
  const pub = h.uid('info-public');
  const cache = h.uid('cache-info');
  const users = ['c1', 'c2', 'c1'];
  for (const u of users) {
    const p = track(h.client(h.APPS.main, { auth, params: { user_id: u } }));
    await h.connected(p);
    await h.subscribe(p, pres);
    await h.subscribe(p, pub);
    await h.subscribe(p, cache);
  }
  let body = await (await api.get({ path: `/channels/${pres}`, params: { info: 'user_count,subscription_count' } })).json();
  assert.equal(body.occupied, true);
  assert.equal(body.user_count, 2);
  assert.equal(body.subscription_count, 3);

  body = await (await api.get({ path: `/channels/${pub}`, params: { info: 'subscription_count' } })).json();
  assert.deepEqual(body, { occupied: true, subscription_count: 3 });

  body = await (await api.get({ path: `/channels/${pub}` })).json();
  assert.deepEqual(body, { occupied: true });

  await api.trigger(cache, 'cached-ev', { c: 1 });
  body = await (await api.get({ path: `/channels/${cache}`, params: { info: 'cache,subscription_count' } })).json();
  assert.equal(body.occupied, true);
  assert.equal(body.subscription_count, 3);
  assert.ok(body.cache, `cache attribute missing: ${JSON.stringify(body)}`);
  assert.equal(body.cache.data, JSON.stringify({ c: 1 }));
  assert.equal(typeof body.cache.ttl, 'number');
  assert.ok(body.cache.ttl > 0 && body.cache.ttl <= 1800);

  body = await (await api.get({ path: `/channels/${h.uid('unoccupied')}` })).json();
  assert.equal(body.occupied, false);
});

test('get /channels/{name}/users lists presence user ids as strings', T, async (t) => {
  const { track, auth, api } = await setup(t);
  const pres = h.uid('presence-users');
  for (const u of ['ua', 'ub']) {
    const p = track(h.client(h.APPS.main, { auth, params: { user_id: u } }));
    await h.connected(p);
    await h.subscribe(p, pres);
  }
  const res = await api.get({ path: `/channels/${pres}/users` });
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.deepEqual(body.users.map((u) => u.id).sort(), ['ua', 'ub']);
  for (const u of body.users) assert.deepEqual(Object.keys(u), ['id']);
});

// --- bad input the SDK can produce: each gives the error the SDK surfaces against hosted Pusher ---

test('wrong secret: trigger rejects with a 401 RequestError naming the signature', T, async () => {
  const bad = h.sdk(h.APPS.main, { secret: 'wrong-secret' });
  const e = await expectRequestError(bad.trigger(h.uid('x'), 'ev', {}));
  assert.equal(e.status, 401);
  assert.match(e.body, /^Invalid signature/);
});

test('wrong secret: get rejects with 401 too', T, async () => {
  const bad = h.sdk(h.APPS.main, { secret: 'wrong-secret' });
  const e = await expectRequestError(bad.get({ path: '/channels' }));
  assert.equal(e.status, 401);
});

test('unknown key: 401', T, async () => {
  const bad = h.sdk({ id: h.APPS.main.id, key: 'unknown-key', secret: h.APPS.main.secret });
  const e = await expectRequestError(bad.trigger(h.uid('x'), 'ev', {}));
  assert.equal(e.status, 401);
});

test('expired timestamp (client clock 10 minutes behind): 401 Timestamp expired', T, async () => {
  const api = h.sdk();
  const realNow = Date.now;
  Date.now = () => realNow() - 601 * 1000;
  let p;
  try {
    p = api.trigger(h.uid('x'), 'ev', {});
  } finally {
    Date.now = realNow;
  }
  const e = await expectRequestError(p);
  assert.equal(e.status, 401);
  assert.match(e.body, /^Timestamp expired/);
});

test('timestamp 9 minutes off is still accepted', T, async () => {
  const api = h.sdk();
  const realNow = Date.now;
  Date.now = () => realNow() + 540 * 1000;
  let p;
  try {
    p = api.trigger(h.uid('x'), 'ev', {});
  } finally {
    Date.now = realNow;
  }
  assert.equal((await p).status, 200);
});

test('oversize data: 413', T, async () => {
  const api = h.sdk();
  const e = await expectRequestError(api.trigger(h.uid('x'), 'ev', 'x'.repeat(10241)));
  assert.equal(e.status, 413);
  // exactly at the limit is fine
  assert.equal((await api.trigger(h.uid('x'), 'ev', 'x'.repeat(10240))).status, 200);
});

test('oversize data in a batch: 413', T, async () => {
  const api = h.sdk();
  const e = await expectRequestError(api.triggerBatch([
    { channel: h.uid('x'), name: 'ok', data: 'small' },
    { channel: h.uid('x'), name: 'big', data: 'x'.repeat(10241) },
  ]));
  assert.equal(e.status, 413);
});

test('configured data limit applies (max_event_data_bytes = 1024)', T, async () => {
  const api = h.sdk(h.APPS.limits);
  const e = await expectRequestError(api.trigger(h.uid('x'), 'ev', 'x'.repeat(1025)));
  assert.equal(e.status, 413);
});

test('too many channels for the app limit: 400', T, async () => {
  const api = h.sdk(h.APPS.limits); // max_channels_per_trigger = 2
  const e = await expectRequestError(api.trigger([h.uid('a'), h.uid('b'), h.uid('c')], 'ev', {}));
  assert.equal(e.status, 400);
  assert.equal((await api.trigger([h.uid('a'), h.uid('b')], 'ev', {})).status, 200);
});

test('too many events in a batch: 400, and nothing is delivered', T, async (t) => {
  const { track, api } = await setup(t);
  const name = h.uid('batch-limit');
  const p = track(h.client());
  await h.connected(p);
  const ch = await h.subscribe(p, name);
  const seen = h.record(ch, 'ev');
  const batch = Array.from({ length: 11 }, (_, i) => ({ channel: name, name: 'ev', data: String(i) }));
  const e = await expectRequestError(api.triggerBatch(batch));
  assert.equal(e.status, 400);
  await h.sleep(300);
  assert.deepEqual(seen, []);
});

test('user_count requested for non-presence channels: 400', T, async () => {
  const api = h.sdk();
  const e = await expectRequestError(api.get({ path: '/channels', params: { info: 'user_count' } }));
  assert.equal(e.status, 400);
  const e2 = await expectRequestError(api.get({ path: `/channels/${h.uid('public')}`, params: { info: 'user_count' } }));
  assert.equal(e2.status, 400);
});

test('users of a non-presence channel: 400', T, async () => {
  const api = h.sdk();
  const e = await expectRequestError(api.get({ path: `/channels/${h.uid('public')}/users` }));
  assert.equal(e.status, 400);
});

test('event names reserved for pusher: are refused with 400', T, async () => {
  const api = h.sdk();
  const e = await expectRequestError(api.trigger(h.uid('x'), 'pusher:fake', {}));
  assert.equal(e.status, 400);
});

test('invalid socket_id passed straight to the API: 400', T, async () => {
  const api = h.sdk();
  // The SDK validates socket ids in trigger(); batch events pass through unchecked.
  const e = await expectRequestError(api.triggerBatch([{ channel: h.uid('x'), name: 'ev', data: '1', socket_id: 'undefined' }]));
  assert.equal(e.status, 400);
});

test('wrong app id in the path for a valid key: refused', T, async () => {
  const api = h.sdk({ id: h.APPS.noclient.id, key: h.APPS.main.key, secret: h.APPS.main.secret });
  const e = await expectRequestError(api.trigger(h.uid('x'), 'ev', {}));
  assert.ok([401, 403, 404].includes(e.status), `status ${e.status}`);
});

// --- edge values the SDK accepts, so herald must too ---

test('data limit counts bytes: 10240 bytes of multi-byte text pass, 10242 fail', T, async () => {
  const api = h.sdk();
  assert.equal((await api.trigger(h.uid('x'), 'ev', 'é'.repeat(5120))).status, 200);
  const e = await expectRequestError(api.trigger(h.uid('x'), 'ev', 'é'.repeat(5121)));
  assert.equal(e.status, 413);
});

test('trigger to 100 channels (the SDK maximum) reaches a client on all of them', { timeout: 30000 }, async (t) => {
  const { track, api } = await setup(t);
  const p = track(h.client());
  await h.connected(p);
  const names = Array.from({ length: 100 }, (_, i) => h.uid(`hundred-${i}`));
  const chans = names.map((n) => p.subscribe(n));
  await h.eventually(() => chans.every((c) => c.subscribed), { what: '100 subscriptions', timeout: 10000 });
  const seen = new Set();
  for (const c of chans) c.bind('wide', () => seen.add(c.name));
  assert.equal((await api.trigger(names, 'wide', { n: 1 })).status, 200);
  await h.eventually(() => seen.size === 100, { what: `100 deliveries, got ${seen.size}` });
});

test('event name of 200 characters is accepted and delivered', T, async (t) => {
  const { track, api } = await setup(t);
  const p = track(h.client());
  await h.connected(p);
  const name = h.uid('long-event');
  const ch = await h.subscribe(p, name);
  const ev = 'e'.repeat(200);
  const got = h.waitEvent(ch, ev);
  await api.trigger(name, ev, { long: true });
  assert.deepEqual(await got, { long: true });
});

test('channel names with every allowed punctuation work through trigger and get', T, async (t) => {
  const { track, auth, api } = await setup(t);
  const name = `${h.uid('punct')}-_=@,.;end`;
  const pres = `presence-${h.uid('punct')}=@,.;`;
  const p = track(h.client(h.APPS.main, { auth, params: { user_id: 'punct-user' } }));
  await h.connected(p);
  const ch = await h.subscribe(p, name);
  await h.subscribe(p, pres);
  const got = h.waitEvent(ch, 'ev');
  await api.trigger(name, 'ev', { ok: 1 });
  assert.deepEqual(await got, { ok: 1 });
  const info = await (await api.get({ path: `/channels/${name}`, params: { info: 'subscription_count' } })).json();
  assert.deepEqual(info, { occupied: true, subscription_count: 1 });
  const users = await (await api.get({ path: `/channels/${pres}/users` })).json();
  assert.deepEqual(users, { users: [{ id: 'punct-user' }] });
});

test('user ids with punctuation: sendToUser and terminateUserConnections', T, async (t) => {
  const { track, auth, api } = await setup(t);
  const id = `${h.uid('mail')}@example.com`;
  const p = track(h.client(h.APPS.main, { auth, params: { user_id: id } }));
  await h.connected(p);
  p.signin();
  await h.eventually(() => p.user.serverToUserChannel && p.user.serverToUserChannel.subscribed, { what: 'signed in' });
  const got = h.waitEvent(p.user, 'hello');
  await api.sendToUser(id, 'hello', { to: id });
  assert.deepEqual(await got, { to: id });
  const res = await api.terminateUserConnections(id);
  assert.equal(res.status, 200);
  await h.waitState(p, 'disconnected');
});

test('subscribe then unsubscribe at once leaves nothing behind', T, async (t) => {
  const { track, api } = await setup(t);
  const p = track(h.client());
  await h.connected(p);
  const name = h.uid('fleeting');
  const ch = p.subscribe(name);
  p.unsubscribe(name);
  const seen = h.record(ch, 'ev');
  await h.sleep(500);
  await api.trigger(name, 'ev', {});
  await h.sleep(300);
  assert.deepEqual(seen, []);
  const info = await (await api.get({ path: `/channels/${name}` })).json();
  assert.equal(info.occupied, false);
});
