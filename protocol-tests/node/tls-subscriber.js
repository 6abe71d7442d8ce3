'use strict';
// A pusher-js client (the Node build, unmodified) in a process of its own, for tls.test.js: the
// certificate authority it trusts comes from NODE_EXTRA_CA_CERTS, which Node reads only at start,
// so the test runs it here with that variable set. Not a test file itself.
//
//   node tls-subscriber.js HOST PORT KEY CHANNEL
//
// Connects with forceTLS (wss://HOST:PORT), subscribes to CHANNEL and writes one JSON line to
// stdout per thing that happens: {"state": ...} on each connection state, {"subscribed": CHANNEL},
// {"event": NAME, "data": DATA} for each event on the channel, {"error": ...} on a connection or
// subscription error. Exits when its stdin closes.

const Pusher = require('pusher-js');

const [host, port, key, channelName] = process.argv.slice(2);
const say = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

const pusher = new Pusher(key, {
  cluster: 'mt1',
  wsHost: host,
  wssPort: Number(port),
  forceTLS: true,
  enabledTransports: ['ws'],
  disableStats: true,
});
pusher.connection.bind('state_change', ({ current }) => {
  say({ state: current, socket_id: pusher.connection.socket_id || null });
});
// A WebSocket error carries a circular object: only its type and message are written.
pusher.connection.bind('error', (e) => say({
  error: e && e.type,
  detail: e && (e.data || (e.error && (e.error.message || e.error.type))),
}));
const channel = pusher.subscribe(channelName);
channel.bind('pusher:subscription_succeeded', () => say({ subscribed: channelName }));
channel.bind('pusher:subscription_error', (e) => say({ error: e }));
channel.bind_global((event, data) => {
  if (!event.startsWith('pusher:')) say({ event, data });
});

process.stdin.resume();
process.stdin.on('end', () => {
  pusher.disconnect();
  process.exit(0);
});
