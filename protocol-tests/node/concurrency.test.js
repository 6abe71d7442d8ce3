'use strict';
// Many pusher-js clients at once: presence bookkeeping stays consistent under concurrent joins
// and leaves, and fan-out reaches everyone exactly once.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const h = require('./helpers');

test('30 clients join a presence channel at once, 15 leave: every view converges', { timeout: 45000 }, async (t) => {
  const track = h.tracker(t);
  const auth = await h.startAuthServer();
  track.onClose(auth.close);
  const api = h.sdk();
  const name = h.uid('presence-crowd');
  const users = Array.from({ length: 30 }, (_, i) => `crowd-${i}`);
  const clients = users.map((u) => track(h.client(h.APPS.main, { auth, params: { user_id: u } })));
  await Promise.all(clients.map((c) => h.connected(c, { timeout: 10000 })));
  const chans = await Promise.all(clients.map((c) => h.subscribe(c, name, { timeout: 10000 })));

  const ids = (ch) => { const out = []; ch.members.each((m) => out.push(m.id)); return out.sort(); };
  await h.eventually(() => chans.every((ch) => ch.members.count === 30),
    { what: `30 members everywhere; counts ${chans.map((c) => c.members.count)}`, timeout: 10000 });
  const expectedAll = [...users].sort();
  for (const ch of chans) assert.deepEqual(ids(ch), expectedAll);
  let info = await (await api.get({ path: `/channels/${name}`, params: { info: 'user_count' } })).json();
  assert.equal(info.user_count, 30);

  // half of them leave at the same moment, some by unsubscribe, some by disconnect
  for (let i = 0; i < 15; i += 1) {
    if (i % 2) clients[i].unsubscribe(name); else clients[i].disconnect();
  }
  const stay = chans.slice(15);
  const expectedStay = users.slice(15).sort();
  await h.eventually(() => stay.every((ch) => ch.members.count === 15),
    { what: `15 members everywhere; counts ${stay.map((c) => c.members.count)}`, timeout: 10000 });
  for (const ch of stay) assert.deepEqual(ids(ch), expectedStay);
  info = await (await api.get({ path: `/channels/${name}`, params: { info: 'user_count' } })).json();
  assert.equal(info.user_count, 15);
  const listed = await (await api.get({ path: `/channels/${name}/users` })).json();
  assert.deepEqual(listed.users.map((u) => u.id).sort(), expectedStay);
});

test('one trigger reaches 40 subscribers exactly once each', { timeout: 45000 }, async (t) => {
  const track = h.tracker(t);
  const api = h.sdk();
  const name = h.uid('crowd-public');
  const clients = Array.from({ length: 40 }, () => track(h.client()));
  await Promise.all(clients.map((c) => h.connected(c, { timeout: 10000 })));
  const chans = await Promise.all(clients.map((c) => h.subscribe(c, name, { timeout: 10000 })));
  const got = chans.map((ch) => h.record(ch, 'shout'));
  for (let i = 0; i < 5; i += 1) await api.trigger(name, 'shout', { i });
  await h.eventually(() => got.every((g) => g.length === 5), { what: `5 events each; got ${got.map((g) => g.length)}`, timeout: 10000 });
  await h.sleep(300);
  for (const g of got) assert.deepEqual(g.map((d) => d.i), [0, 1, 2, 3, 4]);
  const info = await (await api.get({ path: `/channels/${name}`, params: { info: 'subscription_count' } })).json();
  assert.equal(info.subscription_count, 40);
});
