//! herald: a self-hosted server that speaks the Pusher Channels protocol, so unmodified pusher-js
//! clients and the official Pusher server SDKs use it as a drop-in replacement.
//!
//! # Layout
//!
//! | module | owns |
//! |---|---|
//! | [`protocol`] | wire messages (decode/encode), close codes, validated names, the HTTP fallback's SockJS framing — pure |
//! | [`auth`] | every signature: channel auth, sign-in, HTTP API, webhooks — pure |
//! | [`config`] | the typed configuration: defaults → TOML → env, validated |
//! | [`connection`] | a connection's handle: socket id, outbox (bounded frame queue and the sink it is written to: a socket, or the relay an HTTP fallback session reads), close request; a channel subscription's delivery path; the backlog publishers wait on (queued frames, readers near full) and the stall watch over connections that fell behind |
//! | [`fanout`] | the fan-out threads: write broadcasts to a channel's subscribers, one lane per core |
//! | [`channel`] | per-app channels: subscribers, presence members (on a cluster node also the mirror of every node's members), cache, subscription counts |
//! | [`user`] | per-app signed-in users: server-to-user delivery, watchlists, terminate |
//! | [`app`] | apps (config + their registries) and the lookup by id and key |
//! | [`adapter`] | the domain front the edges call (subscribe, sign-in, publish, terminate, channel queries): a single process's registries, or a cluster node's (`adapter::clustered`: the shared state in Redis, delivery through the bus, the heartbeat, reaping and recovery) |
//! | `cluster` | (feature `redis`, on by default) the cluster engine on Redis: shared counts and transitions, node heartbeats and reaping, the bus, the shared cache |
//! | [`webhook`] | webhook events, the bounded queue, the delivery worker |
//! | [`ws`] | client connections: the WebSocket endpoint, pusher-js's HTTP fallback transports (`ws::fallback`), the per-connection session loop they share |
//! | [`http_api`] | the signed REST API |
//! | [`metrics`] | the Prometheus registry, every metric's name and labels, read at scrape time |
//! | [`ops`] | `/metrics`, `/up`, `/ready` |
//! | [`console`] | the debug console: each app's activity feed (`console::feed`, reported by the domain), its login and sessions, its page and routes on a listener of its own |
//! | [`state`], [`shutdown`], [`server`] | shared state and readiness, the shutdown signal, the wiring (listeners) |
//! | [`tls`] | TLS on the main listener: the certificate and key files, the handshake of each connection |
//! | [`probe`] | `herald --health`: asks the herald configured like this process for `/ready` (container health checks) |
//! | [`logging`] | the log subscriber the binary installs (text or JSON lines); failed accepts logged once per episode |
//!
//! # Dependency rule
//!
//! `protocol` and `auth` depend on nothing of ours. `channel`, `user`, `app`, `adapter` and
//! `fanout` know no actix, sockets or HTTP; `connection` holds a connection's socket only as a
//! byte sink (its write side, and reads for tungstenite), plain or through rustls, or as a relay
//! that a transport reads, and knows nothing of HTTP or actix. `tls` depends on nothing of ours
//! but `config`; only `server` uses it.
//! `cluster` knows the domain's vocabulary but none of its state, and nothing of the edges;
//! `adapter::clustered` is where it meets the registries.
//! `console::feed` depends on nothing of ours but `channel`'s vocabulary; the domain reports to
//! it. Only `ws`, `http_api`, `ops` and `console` handle requests with actix (and `server`,
//! which wires them); nothing imports them but `server` (and `console`, which triggers events
//! through `http_api`'s own path, so the Event Creator is the REST trigger), and the hidden
//! `fuzzing` module, which re-exports their pure parsers for the fuzz targets in `fuzz/`. Only `config` reads the environment. `logging`
//! depends on nothing of ours but `config` (for `LogFormat`) and only the binary uses it; so does
//! `probe`, a client of `/ready`. Counts are kept by what they count, as
//! plain numbers; `metrics` reads them and nothing imports it but `server` and `ops`.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod adapter;
pub mod app;
pub mod auth;
pub mod channel;
#[cfg(feature = "redis")]
pub mod cluster;
pub mod config;
pub mod connection;
pub mod console;
pub mod fanout;
#[doc(hidden)]
pub mod fuzzing;
pub mod http_api;
pub mod logging;
pub mod metrics;
pub mod ops;
pub mod probe;
pub mod protocol;
pub mod server;
pub mod shutdown;
pub mod state;
pub mod tls;
pub mod user;
pub mod webhook;
pub mod ws;
