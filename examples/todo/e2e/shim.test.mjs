// Unit test of templates/pusher-shim.js (the snippet the original 2011 page gets between
// pusher.js and application.js), with stand-ins for pusher.js 1.8.x, pusher-js ≥ 3 and jQuery.
// Runs without a browser or the original files, so CI always covers the shim; the browser
// variants in run.sh cover it for real when the 2011 files are available.
// Writes $ARTIFACTS/shim-results.json ({passed, failed}) for run.sh.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';

const HERE = dirname(fileURLToPath(import.meta.url));
const SHIM = readFileSync(join(HERE, '..', 'templates', 'pusher-shim.js'), 'utf8');
const ARTIFACTS = process.env.ARTIFACTS || 'artifacts';
const SETTINGS = { wsHost: '127.0.0.1', wsPort: 6123, forceTLS: false };

const results = [];
function check(name, fn) {
  try {
    fn();
    results.push({ name, ok: true });
    console.log(`ok   - [shim] ${name}`);
  } catch (err) {
    results.push({ name, ok: false, error: String(err.message) });
    console.log(`FAIL - [shim] ${name}: ${err.message}`);
  }
}
function assert(cond, message) {
  if (!cond) throw new Error(message);
}

/** Runs the shim in a fresh global with the given Pusher; returns the global and a task queue. */
function load(Pusher) {
  const readyCallbacks = [];
  const timers = [];
  const global = {
    Pusher,
    heraldPusher: SETTINGS,
    jQuery: (fn) => readyCallbacks.push(fn),
    setTimeout: (fn) => timers.push(fn),
    Object,
    String,
  };
  global.window = global;
  vm.runInNewContext(SHIM, global);
  return { global, readyCallbacks, timers };
}

function legacyPusher() {
  function Pusher(key) {
    this.key = key;
  }
  Pusher.VERSION = '1.8.3';
  Pusher.host = 'ws.pusherapp.com';
  Pusher.ws_port = 80;
  Pusher.wss_port = 443;
  Pusher.isReady = false;
  Pusher.ready = function () {
    Pusher.isReady = true;
  };
  return Pusher;
}

check('pusher.js 1.8.x: host and ports point at herald', () => {
  const { global } = load(legacyPusher());
  const P = global.Pusher;
  assert(P.host === '127.0.0.1' && P.ws_port === 6123 && P.wss_port === 6123,
    `host ${P.host}, ports ${P.ws_port}/${P.wss_port}`);
});

check('pusher.js 1.8.x: Pusher.ready waits for DOM-ready and one more tick', () => {
  const { global, readyCallbacks, timers } = load(legacyPusher());
  const P = global.Pusher;
  P.ready();
  assert(!P.isReady, 'connected before DOM-ready');
  assert(readyCallbacks.length === 1, 'no DOM-ready callback registered');
  readyCallbacks[0]();
  assert(!P.isReady, 'connected inside the DOM-ready callback, before application.js');
  assert(timers.length === 1, 'no deferred call');
  timers[0]();
  assert(P.isReady, 'never became ready');
});

class ModernPusher {
  constructor(key, options) {
    if (!options || !options.cluster) throw new Error('You must pass an options object with cluster');
    this.key = key;
    this.options = options;
    ModernPusher.instances.push(this);
  }
  static ready() {
    ModernPusher.isReady = true;
  }
}
ModernPusher.instances = [];

check('pusher-js ≥ 3: new Pusher(key) gets herald settings (HTTP fallbacks included) and a cluster', () => {
  const { global } = load(ModernPusher);
  const pusher = new global.Pusher('511a5abb7486107ce643');
  assert(pusher instanceof ModernPusher, 'not an instance of the real class');
  const o = pusher.options;
  assert(o.wsHost === '127.0.0.1' && o.wsPort === 6123 && o.wssPort === 6123, JSON.stringify(o));
  assert(o.forceTLS === false && o.cluster === 'mt1', JSON.stringify(o));
  assert(o.httpHost === '127.0.0.1' && o.httpPort === 6123 && o.httpsPort === 6123, JSON.stringify(o));
  assert(JSON.stringify(o.enabledTransports) === '["ws","xhr_streaming","xhr_polling"]', JSON.stringify(o));
});

check("pusher-js ≥ 3: caller's options win; statics still reachable", () => {
  const { global } = load(ModernPusher);
  const pusher = new global.Pusher('k', { wsPort: 1, authEndpoint: '/auth' });
  assert(pusher.options.wsPort === 1 && pusher.options.authEndpoint === '/auth', JSON.stringify(pusher.options));
  assert(global.Pusher.instances === ModernPusher.instances, 'Pusher.instances is not the real one');
  global.Pusher.ready();
  assert(ModernPusher.isReady === true, 'Pusher.ready() did not reach the real class');
});

const passed = results.filter((r) => r.ok).length;
const failed = results.length - passed;
mkdirSync(ARTIFACTS, { recursive: true });
writeFileSync(join(ARTIFACTS, 'shim-results.json'), JSON.stringify({ passed, failed, results }, null, 2));
console.log(`[shim] ${passed} checks passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
