'use strict';
// The client side of docker/test.sh, with the libraries the interop suite pins
// (protocol-tests/node_modules): WebSocket clients (`ws`) speaking Pusher's protocol, and the
// Node server SDK (`pusher`) for the REST API. Each mode prints what it saw, one line a step,
// and exits non-zero on the first thing that is not as it should be.
//
//   node docker/check.js event HERALD_URL APP_ID KEY SECRET
//       One client subscribes; an event triggered through the REST API reaches it ("event ok").
//       Then it waits for herald to close the connection (the container is stopped meanwhile)
//       and prints the close code and the pusher:error before it ("closed 4200 after
//       pusher:error 4200").
//   node docker/check.js cluster HERALD_URL APP_ID KEY SECRET METRICS_URL...
//       Through the balancer: six clients join one presence channel; every node (its metrics)
//       holds some of them; every API call, whichever node takes it, sees all six members, and
//       each of three events reaches all six clients.
//   node docker/check.js todo TODO_URL HERALD_URL KEY
//       The todo demo: a new list, its page, an item added through the todo API, and the
//       `created` event a client subscribed to the list's channel receives through herald.

const path = require('node:path');
const { createRequire } = require('node:module');

const fromSuite = createRequire(path.join(__dirname, '..', 'protocol-tests', 'package.json'));
const WebSocket = fromSuite('ws');
const PusherSDK = fromSuite('pusher');

const WAIT = 10000;

function fail(message) {
  console.error(`check: ${message}`);
  process.exit(1);
}

function say(message) {
  console.log(message);
}

/** A raw Pusher client: JSON frames in, `next(pred)` waits for one. */
class Client {
  constructor(wsUrl) {
    this.frames = [];
    this.waiters = new Set();
    this.ws = new WebSocket(wsUrl);
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
    this.ws.on('error', () => {});
    this.ws.on('message', (buf) => {
      const frame = JSON.parse(buf.toString());
      if (typeof frame.data === 'string') {
        try { frame.data = JSON.parse(frame.data); } catch { /* a plain string */ }
      }
      this.frames.push(frame);
      for (const waiter of [...this.waiters]) waiter();
    });
  }

  send(event, data) {
    this.ws.send(JSON.stringify({ event, data }));
  }

  next(pred, what) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const frame = this.frames.find(pred);
        if (!frame) return;
        this.waiters.delete(check);
        clearTimeout(timer);
        resolve(frame);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`no ${what} within ${WAIT} ms; frames: ${JSON.stringify(this.frames).slice(0, 500)}`));
      }, WAIT);
      this.waiters.add(check);
      check();
    });
  }

  async established() {
    const frame = await this.next((f) => f.event === 'pusher:connection_established', 'connection_established');
    this.socketId = frame.data.socket_id;
    return this.socketId;
  }

  async subscribe(channel, extra = {}) {
    this.send('pusher:subscribe', { channel, ...extra });
    return this.next(
      (f) => f.channel === channel && f.event === 'pusher_internal:subscription_succeeded',
      `subscription_succeeded on ${channel}`,
    );
  }

  close() {
    this.ws.close();
  }
}

function sdk(heraldUrl, appId, key, secret) {
  const u = new URL(heraldUrl);
  return new PusherSDK({
    appId, key, secret, host: u.hostname, port: u.port, useTLS: u.protocol === 'https:', timeout: WAIT,
  });
}

function wsUrl(heraldUrl, key) {
  const u = new URL(heraldUrl);
  return `ws://${u.host}/app/${key}?protocol=7&client=js&version=8.6.0`;
}

const unique = (prefix) => `${prefix}-${process.pid}-${Date.now().toString(36)}`;

async function event([heraldUrl, appId, key, secret]) {
  const client = new Client(wsUrl(heraldUrl, key));
  await client.established();
  const channel = unique('docker');
  await client.subscribe(channel);
  const res = await sdk(heraldUrl, appId, key, secret).trigger(channel, 'hello', { from: 'the REST API' });
  if (res.status !== 200) fail(`trigger answered ${res.status}`);
  const got = await client.next((f) => f.event === 'hello', 'the event');
  if (got.data.from !== 'the REST API') fail(`unexpected event ${JSON.stringify(got)}`);
  say('event ok');
  // Now the container is stopped: herald says why, then closes.
  const { code } = await client.closed;
  const error = client.frames.find((f) => f.event === 'pusher:error');
  say(`closed ${code} after pusher:error ${error ? error.data.code : 'none'}`);
}

/** herald_connected of `appId` on one node's /metrics. */
async function connectedOn(metricsUrl, appId) {
  const text = await (await fetch(metricsUrl)).text();
  const line = text.split('\n').find((l) => l.startsWith('herald_connected{') && l.includes(`app_id="${appId}"`));
  return line ? Number(line.split(' ').pop()) : 0;
}

async function cluster([heraldUrl, appId, key, secret, ...metricsUrls]) {
  const api = sdk(heraldUrl, appId, key, secret);
  const channel = unique('presence-docker');
  const clients = [];
  for (let i = 1; i <= 6; i += 1) {
    const client = new Client(wsUrl(heraldUrl, key));
    const socketId = await client.established();
    const member = { user_id: `user-${i}`, user_info: { n: i } };
    const auth = api.authorizeChannel(socketId, channel, member);
    await client.subscribe(channel, auth);
    clients.push(client);
  }
  say('six clients joined through the balancer');
  const perNode = await Promise.all(metricsUrls.map((u) => connectedOn(u, appId)));
  say(`connections per node: ${perNode.join(', ')}`);
  if (perNode.some((n) => n < 1)) fail('a node holds none of the connections: not balanced');
  for (let round = 1; round <= 3; round += 1) {
    const res = await api.get({ path: `/channels/${channel}/users` });
    const users = (await res.json()).users.map((u) => u.id).sort();
    if (users.length !== 6) fail(`API call ${round} saw ${users.length} members: ${users}`);
    const sent = await api.trigger(channel, 'round', { round });
    if (sent.status !== 200) fail(`trigger ${round} answered ${sent.status}`);
    await Promise.all(clients.map((c) => c.next((f) => f.event === 'round' && f.data.round === round, `event ${round}`)));
  }
  say('every API call saw all six members; every event reached all six clients');
  for (const client of clients) client.close();
}

async function todo([todoUrl, heraldUrl, key]) {
  const created = await fetch(`${todoUrl}/`, { redirect: 'manual' });
  const location = created.headers.get('location');
  if (created.status !== 302 || !location) fail(`GET / answered ${created.status}, not a redirect to a list`);
  const token = location.replace(/^.*\//, '');
  const page = await fetch(`${todoUrl}/${token}`);
  const html = await page.text();
  if (page.status !== 200 || !html.includes(key)) fail(`the list page answered ${page.status}`);
  say(`list ${token}: page served`);
  const client = new Client(wsUrl(heraldUrl, key));
  await client.established();
  await client.subscribe(`list-production-${token}`);
  const added = await fetch(`${todoUrl}/${token}/items`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ shortdesc: 'try herald in docker', isdone: false }),
  });
  const item = await added.json();
  if (!added.ok) fail(`adding an item answered ${added.status}: ${JSON.stringify(item)}`);
  const event = await client.next((f) => f.event === 'created', 'the created event');
  if (event.data.id !== item.id || event.data.shortdesc !== item.shortdesc) {
    fail(`created event ${JSON.stringify(event.data)} is not the item ${JSON.stringify(item)}`);
  }
  say('item added: its created event arrived through herald');
  client.close();
}

const modes = { event, cluster, todo };
const [mode, ...args] = process.argv.slice(2);
if (!modes[mode]) fail(`usage: check.js ${Object.keys(modes).join('|')} ARGS...`);
modes[mode](args).then(
  () => process.exit(0),
  (e) => fail(e && e.stack ? e.stack : String(e)),
);
