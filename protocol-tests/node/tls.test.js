'use strict';
// TLS on herald's main listener with the official libraries: a private herald serves wss:// and
// https:// with a self-signed certificate made here (openssl, for localhost and 127.0.0.1).
// pusher-js (forceTLS: true) runs in a child process that trusts the certificate through
// NODE_EXTRA_CA_CERTS; the Node SDK (useTLS: true) trusts it through its `agent` option.
// Certificate checks stay on: without the certificate authority the SDK's request is refused.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const https = require('node:https');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');
const { execFileSync, spawn } = require('node:child_process');
const h = require('./helpers');

const APP = { id: '5001', key: 'pt-tls-key', secret: 'pt-tls-secret' };

let dir;
let caPem;
let herald;

before(async () => {
  dir = fs.mkdtempSync(path.join(process.env.PT_RUN_DIR || os.tmpdir(), 'tls-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-days', '1', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout', key, '-out', cert,
  ], { stdio: 'pipe' });
  caPem = fs.readFileSync(cert, 'utf8');
  herald = await h.spawnHerald([
    '[server]',
    'host = "127.0.0.1"',
    'port = 0',
    `tls_cert = ${JSON.stringify(cert)}`,
    `tls_key = ${JSON.stringify(key)}`,
    '[[apps]]',
    `id = "${APP.id}"`,
    `key = "${APP.key}"`,
    `secret = "${APP.secret}"`,
    '',
  ].join('\n'));
});

after(async () => {
  if (herald) await herald.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** The Node SDK over https://, trusting our certificate (or not, with `trust: false`). */
function tlsSdk({ trust = true } = {}) {
  return h.sdk(APP, {
    server: herald.server,
    useTLS: true,
    ...(trust ? { agent: new https.Agent({ ca: caPem, keepAlive: false }) } : {}),
  });
}

/**
 * tls-subscriber.js in a child process trusting our certificate: `next(pred)` resolves with the
 * first line (parsed) matching `pred`; `stop()` ends it.
 */
function subscriber(channel) {
  const child = spawn(process.execPath, [
    path.join(__dirname, 'tls-subscriber.js'), herald.host, String(herald.port), APP.key, channel,
  ], {
    env: { ...process.env, NODE_EXTRA_CA_CERTS: path.join(dir, 'cert.pem') },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const lines = [];
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  readline.createInterface({ input: child.stdout }).on('line', (l) => lines.push(JSON.parse(l)));
  return {
    lines,
    next: (pred, what) => h.eventually(() => lines.find(pred), {
      what: `${what} (pusher-js said ${JSON.stringify(lines)}; stderr ${stderr.slice(-500)})`,
    }),
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', resolve);
      child.stdin.end();
      setTimeout(() => child.kill('SIGKILL'), 3000).unref();
    }),
  };
}

test('pusher-js with forceTLS gets an event the Node SDK triggered with useTLS', { timeout: 30000 }, async (t) => {
  assert.match(herald.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  const channel = h.uid('tls');
  const sub = subscriber(channel);
  t.after(sub.stop);
  const connected = await sub.next((l) => l.state === 'connected', 'pusher-js connected over wss://');
  assert.match(connected.socket_id, /^\d+\.\d+$/);
  await sub.next((l) => l.subscribed === channel, 'subscription_succeeded');

  const sdk = tlsSdk();
  const res = await sdk.trigger(channel, 'secure-event', { over: 'tls', n: 1 });
  assert.equal(res.status, 200);
  const got = await sub.next((l) => l.event === 'secure-event', 'the event');
  assert.deepEqual(got.data, { over: 'tls', n: 1 });

  // The SDK's GET over https:// sees the subscription.
  const info = await sdk.get({ path: `/channels/${channel}` });
  assert.equal(info.status, 200);
  const body = await info.json();
  assert.equal(body.occupied, true);
  assert.ok(!sub.lines.some((l) => l.error), `no errors: ${JSON.stringify(sub.lines)}`);
});

test('the certificate is checked: without its authority the SDK is refused', { timeout: 15000 }, async () => {
  await assert.rejects(
    tlsSdk({ trust: false }).trigger(h.uid('untrusted'), 'e', {}),
    // The SDK wraps node-fetch's error: the TLS verdict is in `error.code`.
    (e) => e && e.error && e.error.code === 'DEPTH_ZERO_SELF_SIGNED_CERT',
  );
});
