//! The one typed configuration, loaded once at start-up: built-in defaults, then a TOML file,
//! then `HERALD_*` environment variables ([`env::VARIABLES`]: one for each key of `[server]`,
//! `[webhooks]` and `[metrics]`, plus one app), then [`Config::validate`].
//!
//! This is the only module that reads the environment; the loader takes the environment as a
//! function so tests pass a map. It must not start anything or touch the network.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod env;

/// Why the configuration was refused; the message names the key and the problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file does not parse or has unknown keys or wrong types.
    #[error("config file: {0}")]
    Toml(#[from] toml::de::Error),
    /// An environment variable has a value that does not parse.
    #[error("{name}: {problem}")]
    Env {
        /// The variable.
        name: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// A value is out of range or inconsistent.
    #[error("{key}: {problem}")]
    Invalid {
        /// The key, e.g. `apps[0].secret`.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// Everything herald is configured with.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listener and connection settings.
    pub server: ServerConfig,
    /// Webhook delivery settings shared by all apps.
    pub webhooks: WebhookConfig,
    /// The metrics listener (Prometheus `/metrics`, `/up`, `/ready`).
    pub metrics: MetricsConfig,
    /// Running as one node of a cluster on Redis (off unless `redis_url` is set).
    pub cluster: ClusterConfig,
    /// The debug console (off unless `enabled`).
    pub console: ConsoleConfig,
    /// The apps this server hosts.
    pub apps: Vec<AppConfig>,
    /// Set when no app was configured and the development app was created.
    #[serde(skip)]
    pub development_app: bool,
}

/// Listener and per-connection settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on. Default `127.0.0.1`; env `HERALD_HOST`.
    pub host: IpAddr,
    /// Port to listen on; 0 picks a free one. Default 6001; env `HERALD_PORT`.
    pub port: u16,
    /// Sent to clients in `connection_established`; the server pings after this much silence.
    /// Whole seconds, at least 1. Default 120 s.
    #[serde(with = "humantime_serde")]
    pub activity_timeout: Duration,
    /// How long to wait for any frame after a ping before closing with 4201. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub pong_timeout: Duration,
    /// How long shutdown waits for connections to close. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Largest WebSocket frame accepted, in bytes; larger ones close with 1009. Default 262144.
    pub max_frame_bytes: usize,
    /// Frames queued per connection before it counts as a slow consumer (4100). Default 1024.
    pub outbound_queue: usize,
    /// Frames queued on all connections together above which API triggers wait (up to 2 s)
    /// for fan-out to catch up, instead of overflowing healthy connections. Default 65536.
    pub fanout_backlog: usize,
    /// A connection with frames waiting that takes none of them for this long is closed with
    /// 4100, whatever it sends meanwhile. Also the measure of a brisk reader: one whose pace
    /// would empty a full `outbound_queue` within this time holds API triggers back while it is
    /// more than half full. Default 5 s.
    #[serde(with = "humantime_serde")]
    pub slow_consumer_timeout: Duration,
    /// The kernel send buffer of each WebSocket connection (`SO_SNDBUF`), in bytes; Linux
    /// doubles it for its bookkeeping and stops autotuning it. 0 leaves the kernel's autotuning
    /// (up to `net.ipv4.tcp_wmem`'s maximum, 4 MiB by default). Default 65536.
    pub socket_send_buffer: usize,
    /// How long an API request's body may take to arrive after its head, before the allowance
    /// `request_body_min_rate` earns; a body not complete by then is answered 408 and its
    /// connection closed. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub request_body_timeout: Duration,
    /// Bytes per second: each this many bytes of a body received move its deadline one second
    /// later, so a large body on a slow link needs only to keep this rate on average. 0 = no
    /// allowance (the body must be complete within `request_body_timeout`). Default 4096.
    pub request_body_min_rate: usize,
    /// An HTTP fallback session (pusher-js `xhr_streaming`, `xhr_polling`) with no request
    /// open to receive on for this long is closed: its client has gone. Default 5 s.
    #[serde(with = "humantime_serde")]
    pub http_session_timeout: Duration,
    /// Longest channel name accepted, in characters. Default 200.
    pub channel_name_max_length: usize,
    /// HTTP worker threads; 0 = one per core. Default 0.
    pub workers: usize,
    /// Threads that write broadcasts to subscribers; 0 = one per core. Default 0.
    pub fanout_threads: usize,
    /// Log filter (tracing `EnvFilter` syntax). Default `info`; env `HERALD_LOG`.
    pub log: String,
    /// How log lines are written: `text` (human-readable) or `json` (one object per line).
    /// Default `text`; env `HERALD_LOG_FORMAT`.
    pub log_format: LogFormat,
    /// PEM file with the certificate chain (the server's certificate first) for TLS on the main
    /// listener: `wss://` and `https://`. Set together with `tls_key`. Default none (plain
    /// `ws://` and `http://`); env `HERALD_TLS_CERT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM file with the private key of `tls_cert` (PKCS#8, PKCS#1 or SEC1). Default none;
    /// env `HERALD_TLS_KEY`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
}

/// How log lines are written (`server.log_format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines, coloured on a terminal.
    #[default]
    Text,
    /// One JSON object per line, with the fields of the event and of the span it is in.
    Json,
}

/// The metrics listener: Prometheus text exposition at `/metrics`, and the health checks `/up`
/// and `/ready` (which the main listener serves too), on an address of their own so that the
/// metrics need not be exposed where clients connect.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Whether to open the metrics listener; false opens none (the counting goes on, it is
    /// cheap, and `/up` and `/ready` stay on the main listener). Default true;
    /// env `HERALD_METRICS` (`true`/`false`).
    pub enabled: bool,
    /// Address to listen on. Default `127.0.0.1` (the metrics are not for the Internet);
    /// env `HERALD_METRICS_HOST`.
    pub host: IpAddr,
    /// Port to listen on; 0 picks a free one. Default 9601 (as soketi's and sockudo's);
    /// env `HERALD_METRICS_PORT`.
    pub port: u16,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            host: IpAddr::from([127, 0, 0, 1]),
            port: 9601,
        }
    }
}

/// The debug console: a page that shows an app's activity live and sends it test events, on a
/// listener of its own, behind a token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Whether to open the console listener. Default false; env `HERALD_CONSOLE`
    /// (`true`/`false`).
    pub enabled: bool,
    /// Address to listen on. Default `127.0.0.1` (reach it through an SSH tunnel or a TLS proxy
    /// rather than opening it); env `HERALD_CONSOLE_HOST`.
    pub host: IpAddr,
    /// Port to listen on; 0 picks a free one. Default 9602; env `HERALD_CONSOLE_PORT`.
    pub port: u16,
    /// What an operator types to log in: at least [`CONSOLE_TOKEN_MIN`] characters, required
    /// when the console is enabled. Default none; env `HERALD_CONSOLE_TOKEN`.
    pub token: Option<String>,
    /// How long a login lasts. Default 8 h; env `HERALD_CONSOLE_SESSION_TTL`.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
}

/// The shortest console token accepted.
pub const CONSOLE_TOKEN_MIN: usize = 16;

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            enabled: false,
            host: IpAddr::from([127, 0, 0, 1]),
            port: 9602,
            token: None,
            session_ttl: Duration::from_secs(8 * 3600),
        }
    }
}

impl ConsoleConfig {
    /// The token is set and long enough, when the console is on.
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, problem: String| ConfigError::Invalid {
            key: key.into(),
            problem,
        };
        if !self.enabled {
            return Ok(());
        }
        let length = self.token.as_deref().map_or(0, |t| t.chars().count());
        if length < CONSOLE_TOKEN_MIN {
            return Err(invalid(
                "console.token",
                format!(
                    "required when console.enabled is true: at least {CONSOLE_TOKEN_MIN} \
                     characters (env HERALD_CONSOLE_TOKEN)"
                ),
            ));
        }
        if self.session_ttl < Duration::from_secs(60) {
            return Err(invalid("console.session_ttl", "must be at least 1m".into()));
        }
        Ok(())
    }
}

/// The cluster: nodes that share one Redis behave as one server. With no `redis_url`, herald
/// is a single process and needs nothing else.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// `redis://[user:password@]host[:port][/db]`; set, the node joins the cluster of every node
    /// using this Redis and key prefix. Default none; env `HERALD_REDIS_URL`.
    pub redis_url: Option<String>,
    /// The prefix of every Redis key and of the bus channel, so several clusters can share one
    /// Redis: 1 to 64 characters of `A-Z a-z 0-9 _ - .`. Default `herald`;
    /// env `HERALD_CLUSTER_KEY_PREFIX`.
    pub key_prefix: String,
    /// How often a node renews its heartbeat and looks for dead nodes. Default 1 s;
    /// env `HERALD_CLUSTER_HEARTBEAT_INTERVAL`.
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// A node silent this long is dead: another node removes its connections' presence members,
    /// subscriptions and sign-ins (with their events and webhooks). At least two heartbeat
    /// intervals. Default 5 s; env `HERALD_CLUSTER_NODE_TIMEOUT`.
    #[serde(with = "humantime_serde")]
    pub node_timeout: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            redis_url: None,
            key_prefix: "herald".into(),
            heartbeat_interval: Duration::from_secs(1),
            node_timeout: Duration::from_secs(5),
        }
    }
}

/// Webhook delivery settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// How long `channel_vacated` / `member_removed` are held back. Default 3 s.
    #[serde(with = "humantime_serde")]
    pub vacated_delay: Duration,
    /// Per-request timeout. Default 4 s.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How long a failing delivery is retried, with exponential backoff. Default 5 min.
    #[serde(with = "humantime_serde")]
    pub retry_for: Duration,
    /// Webhook events queued before new ones are dropped (and counted). Default 10000.
    pub queue: usize,
    /// Longest time a batching endpoint's events wait to be sent together. Default 250 ms.
    #[serde(with = "humantime_serde")]
    pub batch_window: Duration,
}

/// One app: credentials, switches and limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppConfig {
    /// App id, used in API paths.
    pub id: String,
    /// App key, used in WebSocket paths and signatures.
    pub key: String,
    /// App secret.
    pub secret: String,
    /// Disabled apps refuse connections (4003) and API calls (403). Default true.
    pub enabled: bool,
    /// Whether clients may send `client-*` events. Default true.
    pub client_events: bool,
    /// Whether `pusher:signin` is accepted. Default true.
    pub user_authentication: bool,
    /// Close connections that neither sign in nor join a private/presence channel in time. Default false.
    pub authorized_connections: bool,
    /// The deadline for `authorized_connections`. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub authorization_timeout: Duration,
    /// Send `pusher_internal:subscription_count` to subscribers. Default false.
    pub subscription_count: bool,
    /// Send watchlist online/offline events to signed-in users. Default true.
    pub watchlist_events: bool,
    /// Most simultaneous connections; 0 = unlimited. Default 0.
    pub max_connections: usize,
    /// Largest event `data`, in bytes (API and client events). Default 10240.
    pub max_event_data_bytes: usize,
    /// Most channels one connection may be subscribed to. Default 1000.
    pub max_channels_per_connection: usize,
    /// Most channels in one trigger. Default 100.
    pub max_channels_per_trigger: usize,
    /// Most events in one batch. Default 10.
    pub max_batch_events: usize,
    /// Most members in one presence channel. Default 100.
    pub max_presence_members: usize,
    /// Largest presence `user_info`, in bytes. Default 1024.
    pub max_presence_user_info_bytes: usize,
    /// Longest presence user id, in characters. Default 128.
    pub max_presence_user_id_length: usize,
    /// Client events per second per connection. Default 10.
    pub max_client_events_per_second: u32,
    /// Most user ids in a watchlist. Default 100.
    pub max_watchlist_size: usize,
    /// How long a cache channel keeps its last event. Default 30 min.
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,
    /// Where this app's webhooks go.
    pub webhooks: Vec<WebhookTarget>,
}

/// One webhook endpoint and the event kinds it wants.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookTarget {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Event kinds: `channel_occupied`, `channel_vacated`, `member_added`, `member_removed`,
    /// `client_event`, `cache_miss`, `subscription_count`. Default: all.
    #[serde(default = "all_webhook_events")]
    pub events: Vec<String>,
    /// Send several events per request. Default false.
    #[serde(default)]
    pub batch: bool,
}

/// The webhook event kinds herald knows.
pub const WEBHOOK_EVENTS: [&str; 7] = [
    "channel_occupied",
    "channel_vacated",
    "member_added",
    "member_removed",
    "client_event",
    "cache_miss",
    "subscription_count",
];

fn all_webhook_events() -> Vec<String> {
    WEBHOOK_EVENTS.iter().map(|s| s.to_string()).collect()
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 6001,
            activity_timeout: Duration::from_secs(120),
            pong_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(10),
            max_frame_bytes: 256 * 1024,
            outbound_queue: 1024,
            fanout_backlog: 65_536,
            slow_consumer_timeout: Duration::from_secs(5),
            socket_send_buffer: 65_536,
            request_body_timeout: Duration::from_secs(10),
            request_body_min_rate: 4096,
            http_session_timeout: Duration::from_secs(5),
            channel_name_max_length: 200,
            workers: 0,
            fanout_threads: 0,
            log: "info".into(),
            log_format: LogFormat::Text,
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            vacated_delay: Duration::from_secs(3),
            timeout: Duration::from_secs(4),
            retry_for: Duration::from_secs(300),
            queue: 10_000,
            batch_window: Duration::from_millis(250),
        }
    }
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            id: String::new(),
            key: String::new(),
            secret: String::new(),
            enabled: true,
            client_events: true,
            user_authentication: true,
            authorized_connections: false,
            authorization_timeout: Duration::from_secs(30),
            subscription_count: false,
            watchlist_events: true,
            max_connections: 0,
            max_event_data_bytes: 10_240,
            max_channels_per_connection: 1000,
            max_channels_per_trigger: 100,
            max_batch_events: 10,
            max_presence_members: 100,
            max_presence_user_info_bytes: 1024,
            max_presence_user_id_length: 128,
            max_client_events_per_second: 10,
            max_watchlist_size: 100,
            cache_ttl: Duration::from_secs(30 * 60),
            webhooks: Vec::new(),
        }
    }
}

impl ClusterConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, problem: &str| ConfigError::Invalid {
            key: format!("cluster.{key}"),
            problem: problem.into(),
        };
        if let Some(url) = &self.redis_url {
            // The URL is not repeated: it may hold a password.
            if !url.starts_with("redis://") || url.len() <= "redis://".len() {
                return Err(invalid(
                    "redis_url",
                    "expected redis://[user:password@]host[:port][/db]",
                ));
            }
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        let p = &self.key_prefix;
        if p.is_empty() || p.len() > 64 || !p.chars().all(allowed) {
            return Err(invalid(
                "key_prefix",
                "must be 1 to 64 characters of A-Z, a-z, 0-9, _, - and .",
            ));
        }
        if self.heartbeat_interval < Duration::from_millis(10) {
            return Err(invalid("heartbeat_interval", "must be at least 10ms"));
        }
        if self.node_timeout < self.heartbeat_interval * 2 {
            return Err(invalid(
                "node_timeout",
                "must be at least two heartbeat intervals",
            ));
        }
        Ok(())
    }
}

impl AppConfig {
    /// The development app created when nothing is configured.
    pub fn development() -> Self {
        AppConfig {
            id: "1".into(),
            key: "app-key".into(),
            secret: "app-secret".into(),
            ..AppConfig::default()
        }
    }
}

impl Config {
    /// Defaults, then `file` (TOML text), then the environment, then validation.
    pub fn load(
        file: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut config = match file {
            Some(text) => toml::from_str(text)?,
            None => Config::default(),
        };
        env::apply(&mut config, env)?;
        if config.apps.is_empty() {
            config.apps.push(AppConfig::development());
            config.development_app = true;
            config.server.host = IpAddr::from([127, 0, 0, 1]);
        }
        config.validate()?;
        Ok(config)
    }

    /// Reads the process environment (the only place herald does).
    pub fn process_env(name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    /// Checks ranges and consistency; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: String, problem: &str| ConfigError::Invalid {
            key,
            problem: problem.into(),
        };
        let s = &self.server;
        if s.activity_timeout < Duration::from_secs(1) || s.activity_timeout.subsec_nanos() != 0 {
            return Err(invalid(
                "server.activity_timeout".into(),
                "must be a whole number of seconds, at least 1s",
            ));
        }
        if s.pong_timeout.is_zero() {
            return Err(invalid("server.pong_timeout".into(), "must be more than 0"));
        }
        if s.max_frame_bytes < 1024 {
            return Err(invalid(
                "server.max_frame_bytes".into(),
                "must be at least 1024",
            ));
        }
        if s.outbound_queue == 0 {
            return Err(invalid(
                "server.outbound_queue".into(),
                "must be at least 1",
            ));
        }
        if s.slow_consumer_timeout < Duration::from_millis(10) {
            return Err(invalid(
                "server.slow_consumer_timeout".into(),
                "must be at least 10ms",
            ));
        }
        if s.socket_send_buffer != 0 && s.socket_send_buffer < 4096 {
            return Err(invalid(
                "server.socket_send_buffer".into(),
                "must be 0 (the kernel's autotuning) or at least 4096",
            ));
        }
        if s.request_body_timeout < Duration::from_millis(100) {
            return Err(invalid(
                "server.request_body_timeout".into(),
                "must be at least 100ms",
            ));
        }
        if s.http_session_timeout < Duration::from_millis(100) {
            return Err(invalid(
                "server.http_session_timeout".into(),
                "must be at least 100ms",
            ));
        }
        if s.channel_name_max_length == 0 {
            return Err(invalid(
                "server.channel_name_max_length".into(),
                "must be at least 1",
            ));
        }
        match (&s.tls_cert, &s.tls_key) {
            (Some(_), None) => {
                return Err(invalid(
                    "server.tls_key".into(),
                    "must be set together with server.tls_cert",
                ))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "server.tls_cert".into(),
                    "must be set together with server.tls_key",
                ))
            }
            _ => {}
        }
        if self.webhooks.queue == 0 {
            return Err(invalid("webhooks.queue".into(), "must be at least 1"));
        }
        let m = &self.metrics;
        let same_host = m.host == s.host || m.host.is_unspecified() || s.host.is_unspecified();
        if m.enabled && m.port != 0 && m.port == s.port && same_host {
            return Err(invalid(
                "metrics.port".into(),
                "must differ from server.port (or set metrics.enabled = false)",
            ));
        }
        let c = &self.console;
        let clash = |port: u16, host: IpAddr| {
            c.port != 0
                && c.port == port
                && (c.host == host || c.host.is_unspecified() || host.is_unspecified())
        };
        if c.enabled && (clash(s.port, s.host) || (m.enabled && clash(m.port, m.host))) {
            return Err(invalid(
                "console.port".into(),
                "must differ from server.port and metrics.port",
            ));
        }
        c.validate()?;
        self.cluster.validate()?;
        let mut ids = HashSet::new();
        let mut keys = HashSet::new();
        for (i, app) in self.apps.iter().enumerate() {
            let key = |field: &str| format!("apps[{i}].{field}");
            for (field, value) in [("id", &app.id), ("key", &app.key), ("secret", &app.secret)] {
                if value.is_empty() {
                    return Err(invalid(key(field), "must not be empty"));
                }
                if value.contains(|c: char| c.is_whitespace() || c == '/' || c == ':') {
                    return Err(invalid(
                        key(field),
                        "must not contain whitespace, '/' or ':'",
                    ));
                }
            }
            if !ids.insert(&app.id) {
                return Err(invalid(key("id"), "is used by two apps"));
            }
            if !keys.insert(&app.key) {
                return Err(invalid(key("key"), "is used by two apps"));
            }
            let positive = [
                ("max_event_data_bytes", app.max_event_data_bytes),
                ("max_channels_per_trigger", app.max_channels_per_trigger),
                (
                    "max_channels_per_connection",
                    app.max_channels_per_connection,
                ),
                ("max_batch_events", app.max_batch_events),
                ("max_presence_members", app.max_presence_members),
                (
                    "max_presence_user_id_length",
                    app.max_presence_user_id_length,
                ),
                (
                    "max_client_events_per_second",
                    app.max_client_events_per_second as usize,
                ),
            ];
            for (field, value) in positive {
                if value == 0 {
                    return Err(invalid(key(field), "must be at least 1"));
                }
            }
            for (j, hook) in app.webhooks.iter().enumerate() {
                let hook_key = |field: &str| format!("apps[{i}].webhooks[{j}].{field}");
                let url = reqwest::Url::parse(&hook.url).map_err(|e| {
                    invalid(
                        hook_key("url"),
                        &format!("{:?} is not a URL ({e})", hook.url),
                    )
                })?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(invalid(
                        hook_key("url"),
                        "must be an http:// or https:// URL",
                    ));
                }
                if let Some(bad) = hook
                    .events
                    .iter()
                    .find(|e| !WEBHOOK_EVENTS.contains(&e.as_str()))
                {
                    return Err(invalid(
                        hook_key("events"),
                        &format!(
                            "unknown event {bad:?}; known: {}",
                            WEBHOOK_EVENTS.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The effective configuration as TOML (for `--print-config`).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The environment of `pairs` alone.
    pub(super) fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_create_the_development_app_on_loopback() {
        let c = Config::load(Some("[server]\nhost = \"0.0.0.0\"\n"), &env(&[])).unwrap();
        assert!(c.development_app);
        assert_eq!(c.apps[0].key, "app-key");
        assert_eq!(c.server.host, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(c.server.port, 6001);
        assert_eq!(c.server.activity_timeout, Duration::from_secs(120));
        assert_eq!(c.server.request_body_timeout, Duration::from_secs(10));
        assert_eq!(c.server.request_body_min_rate, 4096);
    }

    #[test]
    fn file_then_env() {
        let file = r#"
            [server]
            port = 7000
            activity_timeout = "2s"
            [[apps]]
            id = "1"
            key = "k"
            secret = "s"
            client_events = false
            [[apps.webhooks]]
            url = "http://127.0.0.1:9/hook"
            events = ["channel_occupied"]
        "#;
        let c = Config::load(Some(file), &env(&[("HERALD_PORT", "7001")])).unwrap();
        assert_eq!(c.server.port, 7001);
        assert_eq!(c.server.activity_timeout, Duration::from_secs(2));
        assert!(!c.apps[0].client_events);
        assert!(!c.development_app);
        assert_eq!(c.apps[0].webhooks[0].events, vec!["channel_occupied"]);
        let c = Config::load(
            None,
            &env(&[
                ("HERALD_APP_ID", "9"),
                ("HERALD_APP_KEY", "kk"),
                ("HERALD_APP_SECRET", "ss"),
            ]),
        )
        .unwrap();
        assert_eq!((c.apps.len(), c.apps[0].id.as_str()), (1, "9"));
    }

    #[test]
    fn errors_name_the_key() {
        let err = |file: &str, e: &[(&str, &str)]| {
            Config::load(Some(file), &env(e)).unwrap_err().to_string()
        };
        assert!(err("[server]\nprot = 1\n", &[]).contains("prot"));
        assert!(err("[server]\nport = \"x\"\n", &[]).contains("port"));
        assert!(err("", &[("HERALD_PORT", "99999")]).contains("HERALD_PORT"));
        assert!(err("", &[("HERALD_APP_ID", "1")]).contains("HERALD_APP_KEY"));
        assert!(err("[[apps]]\nid=\"1\"\nkey=\"k\"\n", &[]).contains("apps[0].secret"));
        assert!(err("[[apps]]\nid=\"1\"\nkey=\"k\"\nsecret=\"s\"\n[[apps]]\nid=\"1\"\nkey=\"k2\"\nsecret=\"s\"\n", &[])
            .contains("apps[1].id"));
        assert!(err("[server]\nactivity_timeout = \"500ms\"\n", &[])
            .contains("server.activity_timeout"));
        assert!(err("[server]\nlog_format = \"xml\"\n", &[]).contains("log_format"));
        assert!(err("[server]\nrequest_body_timeout = \"0s\"\n", &[])
            .contains("server.request_body_timeout"));
        assert!(err(
            "[[apps]]\nid=\"1\"\nkey=\"k\"\nsecret=\"s\"\n[[apps.webhooks]]\nurl=\"http://x/\"\nevents=[\"nope\"]\n",
            &[]
        )
        .contains("apps[0].webhooks[0].events"));
    }

    #[test]
    fn printed_config_loads_back() {
        let c = Config::load(None, &env(&[])).unwrap();
        let again = Config::load(Some(&c.to_toml()), &env(&[])).unwrap();
        assert_eq!(again.apps[0].key, "app-key");
        assert!(again.metrics.enabled);
        assert_eq!(again.metrics.port, 9601);

        let file = "[metrics]\nenabled = false\nhost = \"0.0.0.0\"\nport = 9700\n";
        let c = Config::load(Some(file), &env(&[])).unwrap();
        let again = Config::load(Some(&c.to_toml()), &env(&[])).unwrap();
        assert!(!again.metrics.enabled);
        assert_eq!(again.metrics.host, IpAddr::from([0, 0, 0, 0]));
        assert_eq!(again.metrics.port, 9700);
    }

    #[test]
    fn metrics_listener_settings() {
        let c = Config::load(None, &env(&[])).unwrap();
        assert!(c.metrics.enabled);
        assert_eq!(c.metrics.host, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(c.metrics.port, 9601);
        let c = Config::load(
            None,
            &env(&[
                ("HERALD_METRICS", "false"),
                ("HERALD_METRICS_HOST", "0.0.0.0"),
                ("HERALD_METRICS_PORT", "0"),
            ]),
        )
        .unwrap();
        assert!(!c.metrics.enabled);
        assert_eq!(c.metrics.host, IpAddr::from([0, 0, 0, 0]));
        assert_eq!(c.metrics.port, 0);

        let err = |file: &str, e: &[(&str, &str)]| {
            Config::load(Some(file), &env(e)).unwrap_err().to_string()
        };
        assert!(err("[metrics]\nport = 6001\n", &[]).contains("metrics.port"));
        assert!(err("[metrics]\nenabled = \"yes\"\n", &[]).contains("enabled"));
        assert!(err("[metrics]\nprot = 1\n", &[]).contains("prot"));
        assert!(err("", &[("HERALD_METRICS", "on")]).contains("HERALD_METRICS"));
        assert!(err("", &[("HERALD_METRICS_PORT", "x")]).contains("HERALD_METRICS_PORT"));
        // Both on port 0, or the metrics listener off: no clash.
        assert!(Config::load(Some("[server]\nport = 0\n[metrics]\nport = 0\n"), &env(&[])).is_ok());
        assert!(Config::load(Some("[metrics]\nenabled = false\nport = 6001\n"), &env(&[])).is_ok());
    }
}
