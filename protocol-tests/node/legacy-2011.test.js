'use strict';
// The 2011 todo demo's client (pusher.js 1.8.3) and Ruby gem (pusher 0.6.0), emulated on the
// wire (todo-demo.md §4, §6, §8.A): no `protocol` query parameter, object `data` on subscribe,
// never a pusher:pong; the legacy POST /apps/{id}/channels/{channel}/events endpoint (202 {}).
const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const h = require('./helpers');

const T = { timeout: 25000 };
const LEGACY_QUERY = '?client=js&version=1.8.3';

/** Connect like pusher.js 1.8.3 and subscribe to `channel` with object data and no auth key. */
async function legacyClient(t, channel) {
  const c = new h.RawClient(h.wsUrl(h.APPS.main, LEGACY_QUERY));
  t.after(() => c.close());
  c.pings = 0;
  c.ws.on('ping', () => { c.pings += 1; });
  await c.opened;
  const est = await c.next(() => true); // must be the very first frame
  assert.equal(est.event, 'pusher:connection_established');
  c.socketId = est.data.socket_id;
  if (channel) c.send({ event: 'pusher:subscribe', data: { channel } });
  return { c, est };
}

const md5 = (s) => crypto.createHash('md5').update(s).digest('hex');

/** The 2011 Ruby gem's request: legacy path, data as the raw body, everything signed in the query. */
function legacyTrigger(channel, name, body, { socketId, app = h.APPS.main, bodyMd5, ts } = {}) {
  const server = h.heraldFromEnv();
  const path = `/apps/${app.id}/channels/${channel}/events`;
  const params = {
    auth_key: app.key,
    auth_timestamp: String(ts ?? Math.floor(Date.now() / 1000)),
    auth_version: '1.0',
    body_md5: bodyMd5 ?? md5(body),
    name,
  };
  if (socketId !== undefined) params.socket_id = socketId;
  const canonical = Object.keys(params).sort().map((k) => `${k}=${params[k]}`).join('&');
  const signature = crypto.createHmac('sha256', app.secret).update(`POST\n${path}\n${canonical}`).digest('hex');
  const query = Object.keys(params).map((k) => `${k}=${encodeURIComponent(params[k])}`).join('&');
  return h.httpRequest(`${server.url}${path}?${query}&auth_signature=${signature}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });
}

test('2011 client: handshake without protocol parameter', T, async (t) => {
  const { est } = await legacyClient(t);
  assert.equal(typeof est.rawData, 'string', 'connection_established data is a JSON string');
  assert.match(est.data.socket_id, /^\d+\.\d+$/);
  assert.equal(est.socket_id, undefined);
});

test('2011 client: subscribe with object data and no auth, receive an SDK event', T, async (t) => {
  const name = h.uid('list-production');
  const { c } = await legacyClient(t, name);
  await h.sleep(300); // 1.8.3 does not wait for a confirmation
  await h.sdk().trigger(name, 'created', { id: 1, title: 'buy milk', done: false });
  const ev = await c.next('created');
  assert.equal(ev.channel, name);
  assert.equal(typeof ev.rawData, 'string');
  assert.deepEqual(ev.data, { id: 1, title: 'buy milk', done: false });
  assert.equal(ev.socket_id, undefined, '1.8.3 drops frames whose socket_id equals its own');
});

test('2011 client: subscribe with string-encoded data is accepted too', T, async (t) => {
  const name = h.uid('list-strdata');
  const { c } = await legacyClient(t);
  c.send({ event: 'pusher:subscribe', data: JSON.stringify({ channel: name }) });
  await c.next((f) => f.event === 'pusher_internal:subscription_succeeded' && f.channel === name);
});

test('2011 client: never pongs, stays connected through several activity timeouts, still receives', T, async (t) => {
  const name = h.uid('list-idle');
  const { c } = await legacyClient(t, name);
  let closed = null;
  c.closed.then((x) => { closed = x; });
  // activity_timeout is 2 s and pong_timeout 1 s in the test config: 7.5 s is 3 full cycles.
  await h.sleep(7500);
  assert.equal(closed, null, `connection closed: ${JSON.stringify(closed)}; frames ${JSON.stringify(c.frames)}`);
  const res = await legacyTrigger(name, 'updated', JSON.stringify({ id: 3 }));
  assert.equal(res.status, 202);
  const ev = await c.next('updated');
  assert.deepEqual(ev.data, { id: 3 });
  // Liveness is checked with WebSocket Ping frames, which browsers answer (ARCHITECTURE decision 2).
  assert.ok(c.pings >= 1, 'herald sent WebSocket pings while idle');
  const serverPings = c.frames.filter((f) => f.event === 'pusher:ping').length;
  assert.ok(serverPings <= 4, `pusher:ping frames are harmless but should not flood (${serverPings})`);
});

test('2011 client: unknown key gets a pusher:error frame with 4001 before the close', T, async (t) => {
  const c = new h.RawClient(h.wsUrl({ key: 'no-such-2011-key' }, LEGACY_QUERY));
  t.after(() => c.close());
  const first = await c.next(() => true);
  assert.equal(first.event, 'pusher:error');
  assert.equal(first.data.code, 4001);
  assert.equal(typeof first.data.message, 'string');
  const closed = await c.closed;
  assert.equal(closed.code, 4001);
});

for (const [version, protocol] of [['1.11.2', 5], ['2.0.0', 6], ['1.10.1', 4]]) {
  test(`pusher.js ${version} (protocol ${protocol}) connects, subscribes and receives`, T, async (t) => {
    const q = `?protocol=${protocol}&client=js&version=${version}${protocol >= 6 ? '&flash=false' : ''}`;
    const c = new h.RawClient(h.wsUrl(h.APPS.main, q));
    t.after(() => c.close());
    const est = await c.next(() => true);
    assert.equal(est.event, 'pusher:connection_established');
    const name = h.uid(`proto${protocol}`);
    c.send({ event: 'pusher:subscribe', data: { channel: name } });
    await c.next((f) => f.event === 'pusher_internal:subscription_succeeded' && f.channel === name);
    await h.sdk().trigger(name, 'ev', { p: protocol });
    assert.deepEqual((await c.next('ev')).data, { p: protocol });
  });
}

test('protocol 3 (no longer supported) is refused with 4007', T, async (t) => {
  const c = new h.RawClient(h.wsUrl(h.APPS.main, '?protocol=3&client=js&version=1.9.0'));
  t.after(() => c.close());
  const closed = await c.closed;
  assert.equal(closed.code, 4007);
  const err = c.frames.find((f) => f.event === 'pusher:error');
  assert.ok(err && err.data.code === 4007, `pusher:error 4007 before the close; frames ${JSON.stringify(c.frames)}`);
});

test('2011 client: pusher:ping is answered with pusher:pong', T, async (t) => {
  const { c } = await legacyClient(t);
  c.send({ event: 'pusher:ping', data: {} });
  await c.next('pusher:pong');
});

test('legacy REST endpoint: 202 {} and the body delivered verbatim as the data string', T, async (t) => {
  const name = h.uid('list-legacy');
  const { c } = await legacyClient(t, name);
  await h.sleep(300);
  const body = '{"id":7,"title":"walk the dog","done":true}';
  const res = await legacyTrigger(name, 'item-update', body);
  assert.equal(res.status, 202, res.body);
  assert.deepEqual(JSON.parse(res.body), {});
  const ev = await c.next('item-update');
  assert.equal(ev.rawData, body);
  assert.equal(ev.channel, name);
});

test('legacy REST endpoint: a body that is not JSON is still delivered verbatim', T, async (t) => {
  const name = h.uid('list-text');
  const { c } = await legacyClient(t, name);
  await h.sleep(300);
  const res = await legacyTrigger(name, 'note', 'plain text, not JSON: é');
  assert.equal(res.status, 202, res.body);
  const ev = await c.next('note');
  assert.equal(ev.rawData, 'plain text, not JSON: é');
});

test('legacy REST endpoint: invalid UTF-8 body is 400', T, async () => {
  const res = await legacyTrigger(h.uid('list-utf8'), 'x', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]));
  assert.equal(res.status, 400);
});

test('legacy REST endpoint: socket_id excludes the originating client', T, async (t) => {
  const name = h.uid('list-exclude');
  const { c: origin } = await legacyClient(t, name);
  const { c: other } = await legacyClient(t, name);
  await h.sleep(300);
  const res = await legacyTrigger(name, 'destroyed', '{"id":9}', { socketId: origin.socketId });
  assert.equal(res.status, 202, res.body);
  await other.next('destroyed');
  await h.sleep(300);
  assert.equal(origin.frames.filter((f) => f.event === 'destroyed').length, 0);
});

test('legacy REST endpoint: malformed socket_id (the 2011 front-end sends "undefined") is 400', T, async () => {
  const res = await legacyTrigger(h.uid('list-bad'), 'x', '{}', { socketId: 'undefined' });
  assert.equal(res.status, 400);
});

test('legacy REST endpoint: wrong body_md5 is 401', T, async () => {
  const res = await legacyTrigger(h.uid('list-md5'), 'x', '{"a":1}', { bodyMd5: md5('{"a":2}') });
  assert.equal(res.status, 401);
});

test('legacy REST endpoint: expired timestamp is 401', T, async () => {
  const res = await legacyTrigger(h.uid('list-ts'), 'x', '{}', { ts: Math.floor(Date.now() / 1000) - 601 });
  assert.equal(res.status, 401);
  assert.match(res.body, /^Timestamp expired/);
});

test('health check: GET / answers 200 OK', T, async () => {
  const res = await h.httpRequest(`${h.heraldFromEnv().url}/`);
  assert.equal(res.status, 200);
  assert.equal(res.body.trim(), 'OK');
});
