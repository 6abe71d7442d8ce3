'use strict';
// User authentication (pusher.signin with the SDK's authenticateUser), server-to-user messages,
// watchlist events and terminateUserConnections, as application code sees them.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const h = require('./helpers');

const T = { timeout: 20000 };

async function setup(t) {
  const track = h.tracker(t);
  const auth = await h.startAuthServer(h.APPS.main);
  track.onClose(auth.close);
  return { track, auth, api: h.sdk() };
}

async function signedIn(track, auth, userId, extra = {}) {
  const p = track(h.client(h.APPS.main, { auth, params: { user_id: userId, ...extra } }));
  await h.connected(p);
  p.signin();
  await h.eventually(() => p.user.user_data, { what: `signin_success for ${userId}` });
  // pusher-js subscribes to #server-to-user-<id> right after signin_success.
  await h.eventually(() => p.user.serverToUserChannel && p.user.serverToUserChannel.subscribed,
    { what: 'server-to-user subscription' });
  return p;
}

test('signin: pusher-js signs in through the SDK endpoint and sees its user_data', T, async (t) => {
  const { track, auth } = await setup(t);
  const id = h.uid('user');
  const p = await signedIn(track, auth, id, { user_name: 'Signed In' });
  assert.deepEqual(p.user.user_data, { id, user_info: { name: 'Signed In' } });
  assert.equal(auth.calls.filter((c) => c.path === '/pusher/user-auth').length, 1);
});

test('signin with a wrong signature: pusher:error, connection stays, no user', T, async (t) => {
  const { track, auth } = await setup(t);
  const p = track(h.client(h.APPS.main, { auth, params: { user_id: h.uid('user'), bad_secret: '1' } }));
  const socketId = await h.connected(p);
  p.signin();
  const err = await h.waitPusherError(p);
  assert.equal(typeof err.message, 'string');
  await h.sleep(300);
  assert.equal(p.user.user_data, null);
  assert.equal(p.connection.state, 'connected');
  assert.equal(p.connection.socket_id, socketId);
});

test('sendToUser reaches every connection of that user, once each, and no one else', T, async (t) => {
  const { track, auth, api } = await setup(t);
  const id = h.uid('user');
  const other = h.uid('user');
  const p1 = await signedIn(track, auth, id);
  const p2 = await signedIn(track, auth, id);
  const p3 = await signedIn(track, auth, other);
  const s1 = h.record(p1.user, 'notice');
  const s2 = h.record(p2.user, 'notice');
  const s3 = h.record(p3.user, 'notice');
  const res = await api.sendToUser(id, 'notice', { text: 'for you' });
  assert.equal(res.status, 200);
  await h.eventually(() => s1.length && s2.length, { what: 'user events on both connections' });
  await h.sleep(300);
  assert.deepEqual(s1, [{ text: 'for you' }]);
  assert.deepEqual(s2, [{ text: 'for you' }]);
  assert.deepEqual(s3, []);
});

test('watchlist: online and offline events for a watched user', T, async (t) => {
  const { track, auth } = await setup(t);
  const watched = h.uid('friend');
  const watcher = await signedIn(track, auth, h.uid('watcher'), { watchlist: watched });
  const online = h.record(watcher.user.watchlist, 'online');
  const offline = h.record(watcher.user.watchlist, 'offline');
  const friend = await signedIn(track, auth, watched);
  await h.eventually(() => online.some((e) => e.user_ids.includes(watched)), { what: `online for ${watched}: ${JSON.stringify(online)}` });
  assert.equal(online.find((e) => e.user_ids.includes(watched)).name, 'online');
  friend.disconnect();
  await h.eventually(() => offline.some((e) => e.user_ids.includes(watched)), { what: 'offline', timeout: 5000 });
});

test('watchlist: a second connection of the watched user is not a new online, offline only after the last', T, async (t) => {
  const { track, auth } = await setup(t);
  const watched = h.uid('twice');
  const watcher = await signedIn(track, auth, h.uid('observer'), { watchlist: watched });
  const online = h.record(watcher.user.watchlist, 'online');
  const offline = h.record(watcher.user.watchlist, 'offline');
  const mine = (list) => list.filter((e) => e.user_ids.includes(watched));
  const c1 = await signedIn(track, auth, watched);
  await h.eventually(() => mine(online).length === 1, { what: 'online' });
  const c2 = await signedIn(track, auth, watched);
  c1.disconnect();
  await h.sleep(1200); // longer than vacated_delay
  assert.equal(mine(online).length, 1, 'no second online');
  assert.equal(mine(offline).length, 0, 'still online through the second connection');
  c2.disconnect();
  await h.eventually(() => mine(offline).length === 1, { what: 'offline after the last connection', timeout: 5000 });
});

test('watchlist: a user already online is reported right after signin', T, async (t) => {
  const { track, auth } = await setup(t);
  const watched = h.uid('early');
  await signedIn(track, auth, watched);
  const p = track(h.client(h.APPS.main, { auth, params: { user_id: h.uid('late-watcher'), watchlist: watched } }));
  const online = h.record(p.user.watchlist, 'online');
  await h.connected(p);
  p.signin();
  await h.eventually(() => online.some((e) => e.user_ids.includes(watched)), { what: 'initial online status' });
});

test('watchlist over 100 ids: signin succeeds, pusher:error 4302, connection stays', T, async (t) => {
  const { track, auth } = await setup(t);
  const ids = Array.from({ length: 101 }, (_, i) => `w${i}`);
  const p = track(h.client(h.APPS.main, { auth, params: { user_id: h.uid('greedy'), watchlist: ids.join(',') } }));
  const socketId = await h.connected(p);
  const errs = [];
  p.connection.bind('error', (e) => { if (e?.type === 'PusherError') errs.push(e.data); });
  p.signin();
  await h.eventually(() => p.user.user_data, { what: 'signin_success' });
  await h.eventually(() => errs.some((e) => e.code === 4302), { what: `4302, got ${JSON.stringify(errs)}` });
  await h.sleep(300);
  assert.equal(p.connection.state, 'connected');
  assert.equal(p.connection.socket_id, socketId);
});

test('terminateUserConnections closes every connection of the user; pusher-js does not reconnect', T, async (t) => {
  const { track, auth, api } = await setup(t);
  const id = h.uid('user');
  const p1 = await signedIn(track, auth, id);
  const p2 = await signedIn(track, auth, id);
  const bystander = await signedIn(track, auth, h.uid('bystander'));
  const bystanderSocket = bystander.connection.socket_id;
  const errs = h.record(p1.connection, 'error');
  const res = await api.terminateUserConnections(id);
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {});
  await Promise.all([h.waitState(p1, 'disconnected'), h.waitState(p2, 'disconnected')]);
  const codes = errs.map((e) => e?.error?.data?.code ?? e?.data?.code);
  assert.ok(codes.some((c) => c >= 4000 && c < 4100), `close code must stop pusher-js reconnecting; saw ${JSON.stringify(errs)}`);
  const states = h.record(p1.connection, 'state_change');
  await h.sleep(2000);
  assert.deepEqual(states, [], 'no reconnect after terminate');
  assert.equal(p2.connection.state, 'disconnected');
  assert.equal(bystander.connection.state, 'connected');
  assert.equal(bystander.connection.socket_id, bystanderSocket);
  // The user may come back (the app would refuse at its auth endpoint if it wanted to).
  await signedIn(track, auth, id);
});

test('terminateUserConnections leaves presence-only identities alone', T, async (t) => {
  const { track, auth, api } = await setup(t);
  const id = h.uid('presence-only');
  const p = track(h.client(h.APPS.main, { auth, params: { user_id: id } }));
  const socketId = await h.connected(p);
  await h.subscribe(p, h.uid('presence-term'));
  await api.terminateUserConnections(id);
  await h.sleep(700);
  assert.equal(p.connection.state, 'connected');
  assert.equal(p.connection.socket_id, socketId);
});

test('presence subscription without channel_data uses the signed-in user', T, async (t) => {
  const { track, auth } = await setup(t);
  const id = h.uid('signed');
  const p = await signedIn(track, auth, id, { user_name: 'From Signin', no_presence_data: '1' });
  const name = h.uid('presence-signed');
  const ch = await h.subscribe(p, name);
  assert.equal(ch.members.count, 1);
  assert.deepEqual(ch.members.me, { id, info: { name: 'From Signin' } });
});
