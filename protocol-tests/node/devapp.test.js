'use strict';
// The development app: herald started with no app configured serves app id "1", key "app-key",
// secret "app-secret" on loopback, says so in its log, and pusher-js receives events triggered
// through it by both the Node SDK and the Python SDK (whose app-id check wants digits).
const { test } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { execFile } = require('node:child_process');
const { promisify } = require('node:util');
const h = require('./helpers');

const DEV = { id: '1', key: 'app-key', secret: 'app-secret' };
const PYTHON = path.join(__dirname, '..', '.venv', 'bin', 'python');

const pythonTrigger = (server, channel, payload) => promisify(execFile)(PYTHON, ['-c', `
import json, sys, pusher
p = pusher.Pusher(app_id="1", key="app-key", secret="app-secret", host="${server.host}", port=${server.port}, ssl=False)
print(json.dumps(p.trigger(sys.argv[1], "hello", json.loads(sys.argv[2]))))
`, channel, JSON.stringify(payload)]);

const SKIP = h.singleNodeOnly('starts a herald of its own with no configuration');

test('development app: pusher-js gets events triggered by the Node and Python SDKs', { timeout: 30000, skip: SKIP }, async (t) => {
  const port = await h.freePort();
  const herald = await h.spawnHerald(`[server]\nhost = "127.0.0.1"\nport = ${port}\n`);
  const track = h.tracker(t);
  track.onClose(() => herald.stop());
  // The announcement goes to stderr, the listening line to stdout: wait for the log too.
  const announced = /DEVELOPMENT app \(id 1, key app-key, secret app-secret\) on loopback only/;
  await h.eventually(() => announced.test(herald.logs()), { what: 'the development-app warning' });

  const pusher = track(h.client(DEV, { server: herald.server }));
  const channel = h.uid('dev');
  const ch = await h.subscribe(pusher, channel);
  const got = h.record(ch, 'hello');

  const fromNode = await h.sdk(DEV, { server: herald.server }).trigger(channel, 'hello', { from: 'node' });
  assert.equal(fromNode.status, 200);
  const fromPython = await pythonTrigger(herald.server, channel, { from: 'python' });
  assert.deepEqual(JSON.parse(fromPython.stdout), {});

  await h.eventually(() => got.length === 2, { what: 'both events' });
  assert.deepEqual(got.map((d) => d.from).sort(), ['node', 'python']);
});
