//! Test harness shared by every integration test: the real server on 127.0.0.1:0
//! ([`Setup`] / [`Server`]), a raw WebSocket client ([`Client`]), exact bytes over TCP
//! ([`raw`]: HTTP heads, hand-made frames), a signed HTTP API client ([`Api`]) and a local
//! webhook receiver ([`Receiver`]).
//!
//! Each test binary uses a different subset of these helpers, so unused ones are expected.
#![allow(dead_code)]

mod api;
pub mod console;
mod hooks;
pub mod raw;
pub mod ws;
pub mod xhr;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use herald::config::Config;
use herald::server::Listeners;
use herald::shutdown::Shutdown;
use tokio::task::JoinHandle;

#[allow(unused_imports)]
pub use api::{Api, Response, Signing};
#[allow(unused_imports)]
pub use hooks::{Hook, Receiver};
#[allow(unused_imports)]
pub use ws::{Client, Frame};

pub const APP_ID: &str = "test-id";
pub const KEY: &str = "test-key";
pub const SECRET: &str = "test-secret";

/// How long a test waits for a frame, a response or a webhook before failing.
pub const WAIT: Duration = Duration::from_secs(3);

/// Builds the TOML of a test server: short timeouts, one app (`test-id`/`test-key`), overrides.
#[derive(Debug, Clone)]
pub struct Setup {
    server: BTreeMap<String, String>,
    webhooks: BTreeMap<String, String>,
    metrics: BTreeMap<String, String>,
    console: BTreeMap<String, String>,
    cluster: BTreeMap<String, String>,
    app: BTreeMap<String, String>,
    hooks: Vec<String>,
    extra_apps: Vec<String>,
}

impl Default for Setup {
    fn default() -> Self {
        Self::new()
    }
}

impl Setup {
    pub fn new() -> Self {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        Setup {
            server: map(&[
                ("host", "\"127.0.0.1\""),
                ("port", "0"),
                ("workers", "1"),
                ("activity_timeout", "\"10s\""),
                ("pong_timeout", "\"10s\""),
                ("shutdown_timeout", "\"3s\""),
                ("log", "\"warn\""),
            ]),
            webhooks: map(&[
                ("vacated_delay", "\"300ms\""),
                ("timeout", "\"1s\""),
                ("retry_for", "\"10s\""),
            ]),
            metrics: BTreeMap::new(),
            console: BTreeMap::new(),
            cluster: BTreeMap::new(),
            app: map(&[
                ("id", "\"test-id\""),
                ("key", "\"test-key\""),
                ("secret", "\"test-secret\""),
            ]),
            hooks: Vec::new(),
            extra_apps: Vec::new(),
        }
    }

    /// Sets `[server] key = value` (`value` is TOML: `"1s"` needs its quotes).
    pub fn server(mut self, key: &str, value: &str) -> Self {
        self.server.insert(key.into(), value.into());
        self
    }

    /// Sets `[webhooks] key = value`.
    pub fn webhooks(mut self, key: &str, value: &str) -> Self {
        self.webhooks.insert(key.into(), value.into());
        self
    }

    /// Sets `[metrics] key = value` (the listener itself is always bound on 127.0.0.1:0).
    pub fn metrics(mut self, key: &str, value: &str) -> Self {
        self.metrics.insert(key.into(), value.into());
        self
    }

    /// Sets `[console] key = value` (the listener itself is bound on 127.0.0.1:0 when
    /// `enabled = true`).
    pub fn console(mut self, key: &str, value: &str) -> Self {
        self.console.insert(key.into(), value.into());
        self
    }

    /// Sets `[cluster] key = value`.
    pub fn cluster(mut self, key: &str, value: &str) -> Self {
        self.cluster.insert(key.into(), value.into());
        self
    }

    /// Sets a key of the test app.
    pub fn app(mut self, key: &str, value: &str) -> Self {
        self.app.insert(key.into(), value.into());
        self
    }

    /// Adds a webhook endpoint to the test app; `events` empty = all.
    pub fn hook(mut self, url: &str, events: &[&str], batch: bool) -> Self {
        let mut table = format!("[[apps.webhooks]]\nurl = \"{url}\"\nbatch = {batch}\n");
        if !events.is_empty() {
            let list: Vec<String> = events.iter().map(|e| format!("\"{e}\"")).collect();
            table.push_str(&format!("events = [{}]\n", list.join(", ")));
        }
        self.hooks.push(table);
        self
    }

    /// Adds another app, given as the body of an `[[apps]]` table.
    pub fn extra_app(mut self, body: &str) -> Self {
        self.extra_apps.push(format!("[[apps]]\n{body}\n"));
        self
    }

    pub fn toml(&self) -> String {
        let table = |name: &str, map: &BTreeMap<String, String>| {
            let lines: Vec<String> = map.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            format!("{name}\n{}\n", lines.join("\n"))
        };
        let mut out = table("[server]", &self.server);
        out.push_str(&table("[webhooks]", &self.webhooks));
        if !self.metrics.is_empty() {
            out.push_str(&table("[metrics]", &self.metrics));
        }
        if !self.console.is_empty() {
            out.push_str(&table("[console]", &self.console));
        }
        if !self.cluster.is_empty() {
            out.push_str(&table("[cluster]", &self.cluster));
        }
        out.push_str(&table("[[apps]]", &self.app));
        for hook in &self.hooks {
            out.push_str(hook);
        }
        for app in &self.extra_apps {
            out.push_str(app);
        }
        out
    }

    pub async fn start(self) -> Server {
        Server::start(&self.toml()).await
    }
}

/// A running server: its addresses and its shutdown signal.
pub struct Server {
    pub addr: SocketAddr,
    /// The metrics listener's address; `None` when `[metrics] enabled = false`.
    pub metrics_addr: Option<SocketAddr>,
    /// The console listener's address; `None` unless `[console] enabled = true`.
    pub console_addr: Option<SocketAddr>,
    pub shutdown: Shutdown,
    pub config: Config,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Server {
    /// Starts `herald::server::run` on 127.0.0.1:0 with this TOML (and its metrics listener on
    /// another 127.0.0.1:0, unless the TOML turns it off).
    pub async fn start(toml: &str) -> Server {
        let config =
            Config::load(Some(toml), &|_| None).unwrap_or_else(|e| panic!("config: {e}\n{toml}"));
        let bind = || {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
            listener.set_nonblocking(true).expect("nonblocking");
            listener
        };
        let tls = herald::tls::load(&config.server).unwrap_or_else(|e| panic!("{e}"));
        let listeners = Listeners {
            main: bind(),
            tls,
            metrics: config.metrics.enabled.then(bind),
            console: config.console.enabled.then(bind),
        };
        let addr = listeners.main.local_addr().expect("local addr");
        let metrics_addr = listeners
            .metrics
            .as_ref()
            .map(|l| l.local_addr().expect("addr"));
        let shutdown = Shutdown::new();
        let console_addr = listeners
            .console
            .as_ref()
            .map(|l| l.local_addr().expect("addr"));
        let task = tokio::spawn(herald::server::run(
            listeners,
            config.clone(),
            shutdown.clone(),
        ));
        Server {
            addr,
            metrics_addr,
            console_addr,
            shutdown,
            config,
            task: Some(task),
        }
    }

    pub fn ws_url(&self, key: &str, query: &str) -> String {
        let sep = if query.is_empty() { "" } else { "?" };
        format!("ws://{}/app/{key}{sep}{query}", self.addr)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `path` on the metrics listener.
    pub fn metrics_url(&self, path: &str) -> String {
        let addr = self.metrics_addr.expect("the metrics listener is off");
        format!("http://{addr}{path}")
    }

    /// `path` on the console listener.
    pub fn console_url(&self, path: &str) -> String {
        let addr = self.console_addr.expect("the console is off");
        format!("http://{addr}{path}")
    }

    /// A connected client of the test app (protocol 7) that has read `connection_established`.
    pub async fn client(&self) -> Client {
        let mut client =
            Client::connect(self, KEY, "protocol=7&client=js&version=8.4.0&flash=false").await;
        client.established().await;
        client
    }

    pub fn api(&self) -> Api {
        Api::new(self.addr, APP_ID, KEY, SECRET)
    }

    /// Fires shutdown and returns the result of `run` and how long it took to return.
    pub async fn stop(&mut self, within: Duration) -> (std::io::Result<()>, Duration) {
        let started = tokio::time::Instant::now();
        self.shutdown.trigger();
        let task = self.task.take().expect("server already stopped");
        let result = tokio::time::timeout(within, task)
            .await
            .unwrap_or_else(|_| panic!("server::run did not return within {within:?}"))
            .expect("server task panicked");
        (result, started.elapsed())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// `key:signature` for a private channel.
pub fn private_auth(socket_id: &str, channel: &str) -> String {
    let sig = herald::auth::sign(SECRET, format!("{socket_id}:{channel}").as_bytes());
    format!("{KEY}:{sig}")
}

/// `key:signature` for a presence channel with this exact `channel_data`.
pub fn presence_auth(socket_id: &str, channel: &str, channel_data: &str) -> String {
    let sig = herald::auth::sign(
        SECRET,
        format!("{socket_id}:{channel}:{channel_data}").as_bytes(),
    );
    format!("{KEY}:{sig}")
}

/// `key:signature` for `pusher:signin` with this exact `user_data`.
pub fn signin_auth(socket_id: &str, user_data: &str) -> String {
    let sig = herald::auth::sign(SECRET, format!("{socket_id}::user::{user_data}").as_bytes());
    format!("{KEY}:{sig}")
}

/// Parses JSON text, failing the test with the text on error.
pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}
