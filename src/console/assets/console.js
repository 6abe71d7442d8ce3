// herald debug console: log in, pick an app, watch its live log (Server-Sent Events), its
// channels, and send test events. Plain DOM, no dependencies. Everything that came from the
// network is written with textContent, never as HTML.
'use strict';

const MAX_ROWS = 1000;      // rows kept in the table; older ones are removed
const PER_FRAME = 40;       // rows added per animation frame at most
const MAX_PENDING = 400;    // entries waiting to be drawn; past this the oldest are dropped
const CHANNELS_EVERY = 2000;

const $ = (id) => document.getElementById(id);
let csrf = '';
let source = null;
let pending = [];
let dropped = { page: 0, sampled: 0, behind: 0 };
let paused = false;
let channelTimer = null;

const groups = {
  connection_opened: 'connection', connection_closed: 'connection',
  subscribed: 'subscription', unsubscribed: 'subscription',
  channel_occupied: 'channel', channel_vacated: 'channel',
  member_added: 'member', member_removed: 'member',
};

async function api(path, options = {}) {
  const headers = Object.assign({ 'Accept': 'application/json' }, options.headers || {});
  if (options.method === 'POST') {
    headers['Content-Type'] = 'application/json';
    if (csrf) headers['X-Console-Csrf'] = csrf;
  }
  const res = await fetch(path, Object.assign({}, options, { headers, credentials: 'same-origin' }));
  let body = {};
  try { body = await res.json(); } catch (_) { /* empty body */ }
  return { status: res.status, ok: res.ok, body };
}

async function start() {
  const session = await api('/api/session');
  if (!session.ok) { showLogin(); return; }
  csrf = session.body.csrf;
  $('login').hidden = true;
  $('console').hidden = false;
  $('bar').hidden = false;
  const select = $('app');
  select.textContent = '';
  for (const app of session.body.apps) {
    const option = document.createElement('option');
    option.value = app.id;
    option.textContent = app.id + ' (key ' + app.key + ')' + (app.enabled ? '' : ' — disabled');
    select.append(option);
  }
  const wanted = new URLSearchParams(location.hash.slice(1)).get('app');
  if (wanted && session.body.apps.some((a) => a.id === wanted)) select.value = wanted;
  watch(select.value);
}

function showLogin() {
  $('login').hidden = false;
  $('console').hidden = true;
  $('bar').hidden = true;
  $('token').focus();
}

$('login').addEventListener('submit', async (e) => {
  e.preventDefault();
  const res = await api('/api/login', { method: 'POST', body: JSON.stringify({ token: $('token').value }) });
  if (!res.ok) {
    $('login-error').textContent = res.status === 429
      ? 'Too many failed logins; wait a minute.'
      : (res.body.error || 'Login failed (' + res.status + ')');
    return;
  }
  $('token').value = '';
  $('login-error').textContent = '';
  start();
});

$('logout').addEventListener('click', async () => {
  await api('/api/logout', { method: 'POST', body: '{}' });
  stop();
  showLogin();
});

$('app').addEventListener('change', () => watch($('app').value));

function stop() {
  if (source) source.close();
  source = null;
  clearInterval(channelTimer);
}

function watch(appId) {
  stop();
  if (!appId) return;
  location.hash = 'app=' + encodeURIComponent(appId);
  clearLog();
  const status = $('status');
  status.textContent = 'connecting…';
  status.className = 'status';
  source = new EventSource('/api/apps/' + encodeURIComponent(appId) + '/feed');
  source.onopen = () => { status.textContent = 'live'; status.className = 'status live'; };
  source.onerror = () => { status.textContent = 'reconnecting…'; status.className = 'status'; };
  source.onmessage = (m) => {
    let entry;
    try { entry = JSON.parse(m.data); } catch (_) { return; }
    if (entry.kind === 'skipped') {
      dropped[entry.why === 'behind' ? 'behind' : 'sampled'] += entry.count;
    }
    pending.push(entry);
    if (pending.length > MAX_PENDING) {
      dropped.page += pending.length - MAX_PENDING;
      pending.splice(0, pending.length - MAX_PENDING);
    }
  };
  loadChannels(appId);
  channelTimer = setInterval(() => { if (!document.hidden) loadChannels(appId); }, CHANNELS_EVERY);
}

// Drawing: a batch per animation frame, newest on top (and every 250 ms from a timer, for a
// tab the browser gives no frames, e.g. one in the background).
function frame() {
  draw();
  requestAnimationFrame(frame);
}
requestAnimationFrame(frame);
setInterval(draw, 250);

function draw() {
  if (!paused && pending.length) {
    const batch = pending.splice(0, PER_FRAME);
    const fragment = document.createDocumentFragment();
    for (let i = batch.length - 1; i >= 0; i--) fragment.append(row(batch[i]));
    const rows = $('rows');
    rows.prepend(fragment);
    while (rows.childElementCount > MAX_ROWS) rows.lastElementChild.remove();
  }
  const parts = [];
  if (dropped.sampled) parts.push(dropped.sampled + ' sampled out by the server (over its rate)');
  if (dropped.behind) parts.push(dropped.behind + ' missed (the feed ran ahead)');
  if (dropped.page) parts.push(dropped.page + ' coalesced by the page (arriving faster than drawn)');
  $('skipped').textContent = parts.length ? 'Not shown: ' + parts.join('; ') + '.' : '';
}

function row(entry) {
  const tr = document.createElement('tr');
  tr.dataset.kind = entry.kind;
  tr.dataset.group = groups[entry.kind] || entry.kind;
  tr.dataset.channel = entry.channel || '';
  const time = new Date(entry.time_ms || Date.now());
  const cells = [
    time.toLocaleTimeString(undefined, { hour12: false }) + '.' + String(time.getMilliseconds()).padStart(3, '0'),
    null,
    entry.channel || '',
    details(entry),
  ];
  cells.forEach((text, i) => {
    const td = document.createElement('td');
    if (i === 1) {
      const span = document.createElement('span');
      span.className = 'k k-' + entry.kind;
      span.textContent = entry.kind.replace(/_/g, ' ');
      td.append(span);
    } else {
      td.textContent = text;
    }
    tr.append(td);
  });
  tr.hidden = !visible(tr);
  return tr;
}

function details(e) {
  const parts = [];
  const add = (label, value) => { if (value !== undefined && value !== null && value !== '') parts.push(label + ' ' + value); };
  switch (e.kind) {
    case 'api_event':
    case 'client_event':
      add('event', e.event);
      add('data', e.data + (e.data_truncated ? '…' : ''));
      add('socket', e.socket_id);
      add('user', e.user_id);
      add('excluded', e.excluded_socket_id);
      break;
    case 'webhook':
      add('events', (e.events || []).join(','));
      add('to', e.url);
      add('status', e.status);
      add('retries', e.retries);
      add('', e.outcome);
      add('error', e.error);
      break;
    case 'skipped':
      add('', e.count + ' entries ' + (e.why === 'behind' ? 'missed (feed ran ahead)' : 'sampled out (over the rate)'));
      break;
    default:
      add('socket', e.socket_id);
      add('user', e.user_id);
      add('transport', e.transport);
      add('code', e.code);
      add('reason', e.reason);
  }
  add('node', e.node);
  return parts.join('  ');
}

function visible(tr) {
  const kind = $('kind').value;
  const channel = $('channel-filter').value.trim();
  if (kind && tr.dataset.group !== kind && tr.dataset.kind !== kind) return false;
  if (channel && !tr.dataset.channel.includes(channel)) return false;
  return true;
}

function refilter() {
  for (const tr of $('rows').children) tr.hidden = !visible(tr);
}
$('kind').addEventListener('change', refilter);
$('channel-filter').addEventListener('input', refilter);
$('pause').addEventListener('click', () => {
  paused = !paused;
  $('pause').textContent = paused ? 'Resume' : 'Pause';
});
$('clear').addEventListener('click', clearLog);

function clearLog() {
  $('rows').textContent = '';
  pending = [];
  dropped = { page: 0, sampled: 0, behind: 0 };
}

async function loadChannels(appId) {
  const res = await api('/api/apps/' + encodeURIComponent(appId) + '/channels');
  if (res.status === 401) { stop(); showLogin(); return; }
  const list = $('channels');
  list.textContent = '';
  if (!res.ok) { list.textContent = res.body.error || 'unavailable'; return; }
  $('channel-total').textContent = '(' + res.body.total + ' occupied)';
  for (const c of res.body.channels) {
    const li = document.createElement('li');
    li.dataset.channel = c.name;
    let text = c.name + ' — ' + c.subscription_count + ' subscriber' + (c.subscription_count === 1 ? '' : 's');
    if (c.user_count !== undefined) text += ', ' + c.user_count + ' member' + (c.user_count === 1 ? '' : 's');
    li.textContent = text;
    if (c.members && c.members.length) {
      const members = document.createElement('div');
      members.className = 'members';
      members.textContent = 'members: ' + c.members.join(', ');
      li.append(members);
    }
    list.append(li);
  }
}

$('creator').addEventListener('submit', async (e) => {
  e.preventDefault();
  const result = $('ev-result');
  const text = $('ev-data').value;
  try { JSON.parse(text); } catch (err) {
    result.className = 'result bad';
    result.textContent = 'Data is not valid JSON: ' + err.message;
    return;
  }
  const body = { name: $('ev-name').value.trim(), channels: [$('ev-channel').value.trim()], data: text };
  const res = await api('/api/apps/' + encodeURIComponent($('app').value) + '/events',
    { method: 'POST', body: JSON.stringify(body) });
  result.className = res.ok ? 'result good' : 'result bad';
  result.textContent = res.ok
    ? 'Sent ' + body.name + ' to ' + body.channels[0] + ' (' + JSON.stringify(res.body) + ')'
    : 'Refused (' + res.status + '): ' + (res.body.error || 'error');
});

start();
