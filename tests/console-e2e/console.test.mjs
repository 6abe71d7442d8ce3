// Browser test of herald's debug console: log in (a wrong token first), connect a pusher-js
// client in a second page and see its connection and subscription in the live log within a
// second, send an event from the Event Creator and see the client page receive it, trigger
// from the Node SDK and see it in the log, see the channel in the channels view, and keep the
// page responsive through a burst (the log says what it did not show). Run by run.sh, which
// starts herald.
//
// Environment: CONSOLE_URL, HERALD_URL, APP_ID, APP_KEY, APP_SECRET, CONSOLE_TOKEN, ARTIFACTS
// (screenshots and the results file), CHROMIUM (browser binary).

import { createRequire } from 'node:module';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';
import Pusher from 'pusher';
import { assert, checks, within as poll, withBrowser } from '../../scripts/e2e/harness.mjs';

const require = createRequire(import.meta.url);
const CONSOLE_URL = process.env.CONSOLE_URL;
const HERALD = new URL(process.env.HERALD_URL);
const APP_ID = process.env.APP_ID;
const APP_KEY = process.env.APP_KEY;
const APP_SECRET = process.env.APP_SECRET;
const TOKEN = process.env.CONSOLE_TOKEN;
const ARTIFACTS = process.env.ARTIFACTS || 'artifacts';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const LIVE_WITHIN_MS = 1000;
const CHANNEL = 'e2e-news';

const { check, failed, finish } = checks();
const within = (timeout, probe, describe) => poll(timeout, probe, describe, 10);

/** The console's log rows as {kind, channel, details}. */
function logRows(page) {
  return page.$$eval('#rows tr', (trs) => trs.map((tr) => ({
    kind: tr.dataset.kind,
    channel: tr.dataset.channel,
    details: tr.cells[3]?.textContent || '',
  })));
}

async function hasRow(page, kind, text) {
  const rows = await logRows(page);
  return rows.some((r) => r.kind === kind && (r.channel.includes(text) || r.details.includes(text)));
}

const sdk = new Pusher({
  appId: APP_ID, key: APP_KEY, secret: APP_SECRET,
  host: HERALD.hostname, port: HERALD.port, useTLS: false,
});

async function main() {
  const options = {
    executablePath: CHROMIUM, artifacts: ARTIFACTS, profile: 'herald-console-chromium',
    viewport: { width: 1280, height: 760 },
  };
  await withBrowser(chromium, options, run);
}

async function run(context) {
  const consolePage = context.pages()[0] || (await context.newPage());
  const errors = [];
  consolePage.on('pageerror', (e) => errors.push(String(e)));
  await consolePage.goto(CONSOLE_URL);

  await check('a wrong token is refused on the page', async () => {
    await consolePage.fill('#token', 'not-the-right-token');
    await consolePage.click('#login button[type=submit]');
    await within(2000, async () => (await consolePage.textContent('#login-error')).includes('wrong token'),
      () => 'no "wrong token" message');
    assert(await consolePage.isHidden('#console'), 'the console shows without a login');
  });
  await consolePage.screenshot({ path: join(ARTIFACTS, 'console-login.png') });

  await check('logging in with the token shows the live log', async () => {
    await consolePage.fill('#token', TOKEN);
    await consolePage.click('#login button[type=submit]');
    await within(3000, async () => (await consolePage.textContent('#status')) === 'live',
      () => 'the status never said live');
  });

  const client = await context.newPage();
  client.on('pageerror', (e) => errors.push(String(e)));
  await client.setContent('<!doctype html><title>pusher-js client</title><h1>pusher-js client</h1><pre id="got"></pre>');
  await client.addScriptTag({ path: require.resolve('pusher-js/dist/web/pusher.min.js') });
  let socketId;
  let subscribedAt;
  await check('a pusher-js client connects and subscribes', async () => {
    socketId = await client.evaluate(({ key, host, port, channel }) => new Promise((resolve, reject) => {
      window.received = [];
      const pusher = new Pusher(key, {
        wsHost: host, wsPort: Number(port), forceTLS: false, enabledTransports: ['ws'], cluster: 'mt1',
      });
      const ch = pusher.subscribe(channel);
      ch.bind_global((event, data) => {
        if (event.startsWith('pusher')) return;
        window.received.push({ event, data });
        document.getElementById('got').textContent += event + ' ' + JSON.stringify(data) + '\n';
      });
      ch.bind('pusher:subscription_succeeded', () => resolve(pusher.connection.socket_id));
      setTimeout(() => reject(new Error('no subscription_succeeded in 5 s')), 5000);
    }), { key: APP_KEY, host: HERALD.hostname, port: HERALD.port, channel: CHANNEL });
    subscribedAt = Date.now();
    return `socket ${socketId}`;
  });

  // The operator looks at the console; the client page works in the background.
  await consolePage.bringToFront();
  await check('its connection and subscription are in the log within 1 s', async () => {
    const waited = await within(LIVE_WITHIN_MS, async () =>
      (await hasRow(consolePage, 'connection_opened', socketId)) &&
      (await hasRow(consolePage, 'subscribed', CHANNEL)) &&
      (await hasRow(consolePage, 'channel_occupied', CHANNEL)),
    () => `rows: ${JSON.stringify(logRows)}`);
    return `${Date.now() - subscribedAt} ms after subscription_succeeded (waited ${waited} ms)`;
  });

  await check('the Event Creator sends an event the client page receives within 1 s', async () => {
    await consolePage.fill('#ev-channel', CHANNEL);
    await consolePage.fill('#ev-name', 'from-console');
    await consolePage.fill('#ev-data', '{"hello": "from the console"}');
    const sent = Date.now();
    await consolePage.click('#creator button[type=submit]');
    await within(LIVE_WITHIN_MS, async () => (await client.evaluate(() => window.received.length)) > 0,
      () => 'the client got nothing');
    const got = await client.evaluate(() => window.received[0]);
    assert(got.event === 'from-console', `got ${JSON.stringify(got)}`);
    assert(got.data.hello === 'from the console', `got ${JSON.stringify(got)}`);
    await within(1000, async () => (await consolePage.textContent('#ev-result')).startsWith('Sent'),
      () => 'no result shown');
    await within(LIVE_WITHIN_MS, () => hasRow(consolePage, 'api_event', 'from-console'),
      () => 'the event is not in the log');
    return `received ${Date.now() - sent} ms after the click`;
  });

  await check('an event triggered with the Node SDK is in the log within 1 s', async () => {
    const sent = Date.now();
    await sdk.trigger(CHANNEL, 'from-sdk', { n: 42 });
    await within(LIVE_WITHIN_MS, () => hasRow(consolePage, 'api_event', 'from-sdk'),
      () => 'no api_event row for from-sdk');
    const rows = await logRows(consolePage);
    const row = rows.find((r) => r.details.includes('from-sdk'));
    assert(row.details.includes('{"n":42}'), row.details);
    return `${Date.now() - sent} ms after the trigger`;
  });

  await check('the channels view lists the channel with its subscriber', async () => {
    await within(3000, async () => (await consolePage.textContent('#channels')).includes(`${CHANNEL} — 1 subscriber`),
      async () => `channels: ${await consolePage.textContent('#channels')}`);
  });

  await check('the kind filter hides other rows', async () => {
    await consolePage.selectOption('#kind', 'api_event');
    const visible = await consolePage.$$eval('#rows tr:not([hidden])', (trs) => trs.map((tr) => tr.dataset.kind));
    assert(visible.length >= 2 && visible.every((k) => k === 'api_event'), visible.join(','));
    await consolePage.selectOption('#kind', '');
  });
  await consolePage.screenshot({ path: join(ARTIFACTS, 'console-live.png') });
  await client.screenshot({ path: join(ARTIFACTS, 'console-client.png') });

  await check('the Event Creator shows a refusal', async () => {
    await consolePage.fill('#ev-name', 'pusher:reserved');
    await consolePage.click('#creator button[type=submit]');
    await within(2000, async () => (await consolePage.textContent('#ev-result')).includes('Refused (400)'),
      () => `result: ${'#ev-result'}`);
  });

  await check('a burst of 3,000 events leaves the page responsive and says what it skipped', async () => {
    const batches = [];
    for (let i = 0; i < 300; i++) {
      batches.push(Array.from({ length: 10 }, (_, j) => ({ channel: 'burst', name: 'tick', data: { i, j } })));
    }
    const started = Date.now();
    for (let i = 0; i < batches.length; i += 30) {
      await Promise.all(batches.slice(i, i + 30).map((b) => sdk.triggerBatch(b)));
    }
    const triggeredIn = Date.now() - started;
    // The page still runs its frames and answers.
    const frame = await consolePage.evaluate(() => new Promise((r) => requestAnimationFrame(() => r(true))));
    assert(frame === true, 'no animation frame');
    await within(5000, async () => (await consolePage.textContent('#skipped')).startsWith('Not shown:'),
      () => 'no "Not shown" note');
    const rows = await consolePage.$$eval('#rows tr', (trs) => trs.length);
    assert(rows <= 1000, `${rows} rows kept`);
    return `3,000 events triggered in ${triggeredIn} ms; ${rows} rows kept; ` +
      (await consolePage.textContent('#skipped'));
  });

  await check('the app secret is nowhere in the page or its answers', async () => {
    assert(!(await consolePage.content()).includes(APP_SECRET), 'the page holds the secret');
    const answers = await consolePage.evaluate(async () => {
      const paths = ['/', '/console.js', '/console.css', '/api/session', '/api/apps/e2e/channels'];
      return Promise.all(paths.map(async (p) => (await fetch(p)).text()));
    });
    answers.forEach((body, i) => assert(!body.includes(APP_SECRET), `answer ${i} holds the secret`));
  });

  await check('no JavaScript errors on either page', async () => {
    assert(errors.length === 0, errors.join('; '));
  });
}

try {
  await main();
} catch (err) {
  failed('browser session', err);
}
finish(join(ARTIFACTS, 'console-results.json'));
