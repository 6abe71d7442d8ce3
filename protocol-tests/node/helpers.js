'use strict';
// Shared plumbing for the Node interop tests: the herald under test (HERALD_URL, started by
// run.sh), the official libraries pointed at it, a real HTTP auth endpoint built with the server
// SDK, raw WebSocket clients for wire-level emulation, and private herald instances for tests
// that need their own configuration (webhooks, restarts).

const http = require('node:http');
const net = require('node:net');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const PusherJS = require('pusher-js');
const PusherSDK = require('pusher');
const WebSocket = require('ws');

// Mirrors config/herald-test.toml.
const APPS = {
  main: { id: '1001', key: 'pt-main-key', secret: 'pt-main-secret' },
  noclient: { id: '1002', key: 'pt-noclient-key', secret: 'pt-noclient-secret' },
  authconn: { id: '1003', key: 'pt-authconn-key', secret: 'pt-authconn-secret' },
  disabled: { id: '1004', key: 'pt-disabled-key', secret: 'pt-disabled-secret' },
  limits: { id: '1005', key: 'pt-limits-key', secret: 'pt-limits-secret' },
  quota: { id: '1006', key: 'pt-quota-key', secret: 'pt-quota-secret' },
};

// 32 bytes, base64: the end-to-end encryption master key shared by the SDK and the auth endpoint.
const MASTER_KEY_BASE64 = Buffer.alloc(32, 7).toString('base64');

const DEFAULT_TIMEOUT = 5000;

/** PT_CLUSTER=1 (run.sh): HERALD_URL is a round-robin balancer in front of three cluster nodes. */
const CLUSTER = process.env.PT_CLUSTER === '1';

/**
 * The `skip` option of a test that cannot go through the cluster's balancer (it starts a herald
 * of its own): skipped with `reason` in cluster mode, run otherwise. README.md lists them.
 */
function singleNodeOnly(reason) {
  return CLUSTER ? `single node only: ${reason}` : false;
}

function heraldFromEnv() {
  const raw = process.env.HERALD_URL;
  if (!raw) {
    throw new Error('HERALD_URL is not set: run the suite through protocol-tests/run.sh');
  }
  const u = new URL(raw);
  return { host: u.hostname, port: Number(u.port), url: raw.replace(/\/$/, '') };
}

let counter = 0;
/** A channel/user name unique to this process and test run. */
function uid(prefix) {
  counter += 1;
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${counter}`;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolve with `fn()`'s first truthy value, polling; reject after `timeout` ms. */
async function eventually(fn, { timeout = DEFAULT_TIMEOUT, interval = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    }
    await sleep(interval);
  }
}

/** The Node server SDK (npm `pusher`) pointed at a herald. */
function sdk(app = APPS.main, { server = heraldFromEnv(), secret, ...extra } = {}) {
  return new PusherSDK({
    appId: app.id,
    key: app.key,
    secret: secret || app.secret,
    host: server.host,
    port: String(server.port),
    useTLS: false,
    encryptionMasterKeyBase64: MASTER_KEY_BASE64,
    timeout: 5000,
    ...extra,
  });
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

/**
 * A real channel-authorization / user-authentication endpoint, as an application writes it with
 * the Node SDK. pusher-js POSTs form fields; the custom params below choose the identity:
 *   user_id, user_name   presence member / signed-in user
 *   watchlist            comma-separated user ids (user authentication)
 *   bad_secret=1         sign with a wrong secret (the "misconfigured app" path)
 *   no_presence_data=1   authorize presence channels without channel_data (signed-in user)
 *   other_key=K          sign with the right secret but app key K (misconfigured key)
 *   empty_auth=1         answer {"auth": ""} (a broken endpoint)
 */
async function startAuthServer(app = APPS.main, { server = heraldFromEnv() } = {}) {
  const good = sdk(app, { server });
  const bad = sdk(app, { server, secret: 'not-the-secret' });
  const calls = [];
  const srv = http.createServer(async (req, res) => {
    const body = (await readBody(req)).toString('utf8');
    const form = Object.fromEntries(new URLSearchParams(body));
    calls.push({ path: req.url, form });
    let signer = form.bad_secret === '1' ? bad : good;
    if (form.other_key) signer = sdk({ ...app, key: form.other_key }, { server });
    try {
      let out;
      if (req.url === '/pusher/auth') {
        const ch = form.channel_name;
        if (ch.startsWith('presence-') && form.no_presence_data !== '1') {
          out = signer.authorizeChannel(form.socket_id, ch, {
            user_id: form.user_id,
            user_info: { name: form.user_name || form.user_id },
          });
        } else {
          out = signer.authorizeChannel(form.socket_id, ch);
        }
      } else if (req.url === '/pusher/user-auth') {
        const user = { id: form.user_id, user_info: { name: form.user_name || form.user_id } };
        if (form.watchlist) user.watchlist = form.watchlist.split(',');
        out = signer.authenticateUser(form.socket_id, user);
      } else {
        res.writeHead(404).end();
        return;
      }
      if (form.empty_auth === '1') out.auth = '';
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(out));
    } catch (e) {
      res.writeHead(403, { 'content-type': 'text/plain' });
      res.end(String(e && e.message));
    }
  });
  const port = await listen(srv);
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    close: () => new Promise((r) => { srv.closeAllConnections?.(); srv.close(() => r()); }),
  };
}

/**
 * pusher-js (the Node build, unmodified) connected to herald. `params` are sent to the auth
 * endpoint with every authorization request.
 */
function client(app = APPS.main, { server = heraldFromEnv(), auth, params = {}, options = {} } = {}) {
  const opts = {
    cluster: 'mt1',
    wsHost: server.host,
    wsPort: server.port,
    wssPort: server.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    ...options,
  };
  if (auth) {
    opts.channelAuthorization = { endpoint: `${auth.url}/pusher/auth`, transport: 'ajax', params };
    opts.userAuthentication = { endpoint: `${auth.url}/pusher/user-auth`, transport: 'ajax', params };
  }
  return new PusherJS(app.key, opts);
}

/**
 * Wait for one emission of `event` on a pusher-js bindable (channel, connection, user, ...).
 * Resolves with the data, or with {data, meta} when `withMeta` (channel events' metadata).
 */
function waitEvent(target, event, { timeout = DEFAULT_TIMEOUT, filter = () => true, withMeta = false } = {}) {
  return new Promise((resolve, reject) => {
    const handler = (data, meta) => {
      if (!filter(data, meta)) return;
      clearTimeout(timer);
      target.unbind(event, handler);
      resolve(withMeta ? { data, meta } : data);
    };
    const timer = setTimeout(() => {
      target.unbind(event, handler);
      reject(new Error(`timed out after ${timeout} ms waiting for '${event}'`));
    }, timeout);
    target.bind(event, handler);
  });
}

/** Record every emission of `event` on a pusher-js bindable. */
function record(target, event, { withMeta = false } = {}) {
  const seen = [];
  target.bind(event, (data, meta) => seen.push(withMeta ? { data, meta } : data));
  return seen;
}

/** Wait until a pusher-js client is in `state`; resolves with its socket_id. */
async function waitState(pusher, state, { timeout = DEFAULT_TIMEOUT } = {}) {
  if (pusher.connection.state === state) return pusher.connection.socket_id;
  await waitEvent(pusher.connection, 'state_change', { timeout, filter: (s) => s.current === state });
  return pusher.connection.socket_id;
}

const connected = (pusher, o) => waitState(pusher, 'connected', o);

/** Subscribe and wait for pusher:subscription_succeeded; resolves with the channel. */
async function subscribe(pusher, name, { timeout = DEFAULT_TIMEOUT } = {}) {
  const ch = pusher.subscribe(name);
  const ok = waitEvent(ch, 'pusher:subscription_succeeded', { timeout });
  const err = waitEvent(ch, 'pusher:subscription_error', { timeout: timeout + 1000 }).then(
    (e) => { throw new Error(`subscription_error on ${name}: ${JSON.stringify(e)}`); },
    () => new Promise(() => {}),
  );
  const connErr = new Promise((_, reject) => {
    const h = (e) => {
      if (e && e.type === 'PusherError') {
        pusher.connection.unbind('error', h);
        reject(new Error(`pusher:error while subscribing to ${name}: ${JSON.stringify(e.data)}`));
      }
    };
    pusher.connection.bind('error', h);
    ok.finally(() => pusher.connection.unbind('error', h)).catch(() => {});
  });
  await Promise.race([ok, err, connErr]);
  return ch;
}

/** Wait for a connection-level pusher:error seen by pusher-js (as the app's 'error' callback does). */
function waitPusherError(pusher, { timeout = DEFAULT_TIMEOUT, filter = () => true } = {}) {
  return waitEvent(pusher.connection, 'error', {
    timeout,
    filter: (e) => e && e.type === 'PusherError' && filter(e.data),
  }).then((e) => e.data);
}

/** Disconnect every client in the list (ignores already-closed ones). */
function closeAll(list) {
  for (const p of list) {
    try { p.disconnect(); } catch { /* already gone */ }
  }
}

/** A tracker for a test: `t.after(track.done)`; `track(p)` returns p. */
function tracker(t) {
  const clients = [];
  const closers = [];
  const track = (p) => { clients.push(p); return p; };
  track.onClose = (fn) => closers.push(fn);
  t.after(async () => {
    closeAll(clients);
    for (const fn of closers) await fn();
  });
  return track;
}

/**
 * A raw WebSocket client (npm `ws`) for wire-level emulation. Frames are parsed JSON; `data`
 * strings are parsed too when they hold JSON (as 2011 pusher.js did). `ws` answers protocol
 * Ping frames automatically, as every browser does.
 */
class RawClient {
  constructor(url, { autoPong = true } = {}) {
    this.frames = [];
    this.waiters = [];
    this.ws = new WebSocket(url, { autoPong });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('error', reject);
    });
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString('utf8') }));
    });
    this.ws.on('error', () => {});
    this.ws.on('message', (buf) => {
      let msg;
      try {
        msg = JSON.parse(buf.toString('utf8'));
      } catch {
        msg = { unparsable: buf.toString('utf8') };
      }
      msg.rawData = msg.data;
      if (typeof msg.data === 'string') {
        try { msg.data = JSON.parse(msg.data); } catch { /* plain string data */ }
      }
      this.frames.push(msg);
      for (const w of [...this.waiters]) w();
    });
  }

  send(obj) {
    this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
  }

  /** Wait for the first frame (after `from`) matching pred; resolves with it. */
  next(pred, { timeout = DEFAULT_TIMEOUT, from = 0 } = {}) {
    if (typeof pred === 'string') {
      const name = pred;
      pred = (f) => f.event === name;
    }
    return new Promise((resolve, reject) => {
      const check = () => {
        const f = this.frames.slice(from).find(pred);
        if (f) {
          this.waiters = this.waiters.filter((w) => w !== check);
          clearTimeout(timer);
          resolve(f);
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Error(`timed out after ${timeout} ms waiting for a frame; got: ${JSON.stringify(this.frames.map((f) => f.event))}`));
      }, timeout);
      if (!check()) this.waiters.push(check);
    });
  }

  close() {
    try { this.ws.close(); } catch { /* ignore */ }
  }
}

function wsUrl(app = APPS.main, query = '?protocol=7&client=js&version=8.6.0&flash=false', server = heraldFromEnv()) {
  return `ws://${server.host}:${server.port}/app/${app.key}${query}`;
}

/** A free TCP port on 127.0.0.1 (for configs that need a fixed port). */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Start a private herald (HERALD_BIN) with the given TOML. Resolves once it printed its
 * listening address (`url` is https:// when the TOML turns TLS on). `stop()` sends SIGTERM to
 * exactly that process and waits for it.
 */
async function spawnHerald(toml, { timeout = 10000 } = {}) {
  const bin = process.env.HERALD_BIN;
  if (!bin) throw new Error('HERALD_BIN is not set: run the suite through protocol-tests/run.sh');
  const base = process.env.PT_RUN_DIR || os.tmpdir();
  fs.mkdirSync(base, { recursive: true });
  const dir = fs.mkdtempSync(path.join(base, 'private-'));
  const cfg = path.join(dir, 'herald.toml');
  fs.writeFileSync(cfg, toml);
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('HERALD_') && k !== 'HERALD_BIN') delete env[k];
  // Its metrics listener on a free port: the default, 9601, would clash between heralds.
  env.HERALD_METRICS_PORT = '0';
  const proc = spawn(bin, ['--config', cfg], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const { scheme, port } = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`herald did not start within ${timeout} ms; stderr:\n${err.slice(-2000)}`)), timeout);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /herald listening on (https?):\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) { clearTimeout(timer); resolve({ scheme: m[1], port: Number(m[2]) }); }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`herald exited (code ${code}, signal ${signal}) before listening; stderr:\n${err.slice(-2000)}`));
    });
  });
  const server = { host: '127.0.0.1', port, url: `${scheme}://127.0.0.1:${port}` };
  let stopped = false;
  return {
    ...server,
    server,
    proc,
    exited,
    logs: () => err,
    async stop({ signal = 'SIGTERM', timeout: t = 8000 } = {}) {
      if (stopped) return exited;
      stopped = true;
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      const timer = setTimeout(() => { if (proc.exitCode === null) proc.kill('SIGKILL'); }, t);
      const r = await exited;
      clearTimeout(timer);
      fs.rmSync(dir, { recursive: true, force: true });
      return r;
    },
  };
}

/**
 * A webhook receiver on 127.0.0.1: records each POST (path, headers, raw body, status given).
 * Answers 200, except on paths starting with /flaky where the first attempt of each body gets 503.
 */
async function startWebhookReceiver() {
  const deliveries = [];
  const attempts = new Map();
  const srv = http.createServer(async (req, res) => {
    const rawBody = (await readBody(req)).toString('utf8');
    const n = (attempts.get(rawBody) || 0) + 1;
    attempts.set(rawBody, n);
    const status = req.url.startsWith('/flaky') && n === 1 ? 503 : 200;
    deliveries.push({ path: req.url, headers: req.headers, rawBody, status, at: Date.now() });
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end(status === 200 ? 'ok' : 'try again');
  });
  const port = await listen(srv);
  return {
    port,
    url: `http://127.0.0.1:${port}/webhooks`,
    deliveries,
    close: () => new Promise((r) => { srv.closeAllConnections?.(); srv.close(() => r()); }),
  };
}

/** Plain HTTP helper for the few raw requests (health, legacy endpoint). */
function httpRequest(url, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('HTTP request timed out')));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

module.exports = {
  APPS,
  MASTER_KEY_BASE64,
  DEFAULT_TIMEOUT,
  CLUSTER,
  singleNodeOnly,
  heraldFromEnv,
  uid,
  sleep,
  eventually,
  sdk,
  startAuthServer,
  client,
  waitEvent,
  record,
  waitState,
  connected,
  subscribe,
  waitPusherError,
  closeAll,
  tracker,
  RawClient,
  wsUrl,
  freePort,
  spawnHerald,
  startWebhookReceiver,
  httpRequest,
  PusherJS,
  PusherSDK,
};
