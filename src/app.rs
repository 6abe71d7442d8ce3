//! Apps: each [`App`] is its configuration (credentials, switches, limits) plus the state it
//! owns (channels, signed-in users, webhook front, console feed, connection count, and the
//! counts the metrics report per app); [`Apps`] finds them by id and by key. Apps are fixed at
//! start-up, so the lookup maps need no lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::channel::{Change, Reporter};
use crate::config::{AppConfig, Config};
use crate::connection::Traffic;
use crate::fanout::FanOut;
use crate::protocol::ChannelName;
use crate::webhook::{AppTarget, Hooks, Queued};
use crate::{channel, console, user};

/// One app and its state.
#[derive(Debug)]
pub struct App {
    /// Credentials, switches and limits.
    pub config: AppConfig,
    /// Longest channel name accepted (a server-wide setting).
    pub channel_name_max_length: usize,
    /// The app's channels.
    pub channels: channel::Registry,
    /// The app's signed-in users.
    pub users: user::Registry,
    /// The app's webhook front.
    pub hooks: Hooks,
    /// The app's WebSocket traffic (each connection counts its own; read by the metrics).
    pub traffic: Arc<Traffic>,
    /// The app's REST API calls (counted by `http_api`, read by the metrics).
    pub api: ApiCalls,
    /// What the debug console shows of the app (a no-op unless a console watches it).
    pub console: Arc<console::Feed>,
    /// Open connections, for `max_connections`.
    connections: AtomicUsize,
    /// Connections admitted since start.
    opened: AtomicU64,
    /// Connections ended since start.
    closed: AtomicU64,
}

/// An app's connections, for the metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Connections {
    /// Open now.
    pub open: usize,
    /// Admitted since start.
    pub opened: u64,
    /// Ended since start.
    pub closed: u64,
}

/// An app's REST API calls: requests for the app (signed or not) and their body bytes.
#[derive(Debug, Default)]
pub struct ApiCalls {
    calls: AtomicU64,
    received_bytes: AtomicU64,
    transmitted_bytes: AtomicU64,
}

/// What [`ApiCalls`] counted so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ApiTotals {
    /// Requests.
    pub calls: u64,
    /// Request body bytes.
    pub received_bytes: u64,
    /// Response body bytes.
    pub transmitted_bytes: u64,
}

impl ApiCalls {
    /// Counts one request with a body of `received` bytes, answered with `transmitted`.
    pub fn record(&self, received: u64, transmitted: u64) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.received_bytes.fetch_add(received, Ordering::Relaxed);
        self.transmitted_bytes
            .fetch_add(transmitted, Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn totals(&self) -> ApiTotals {
        ApiTotals {
            calls: self.calls.load(Ordering::Relaxed),
            received_bytes: self.received_bytes.load(Ordering::Relaxed),
            transmitted_bytes: self.transmitted_bytes.load(Ordering::Relaxed),
        }
    }
}

/// A counted connection; the count drops with it.
#[derive(Debug)]
pub struct ConnectionSlot {
    app: Arc<App>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.app.connections.fetch_sub(1, Ordering::Relaxed);
        self.app.closed.fetch_add(1, Ordering::Relaxed);
    }
}

impl App {
    /// Builds an app whose webhooks go into `webhooks` and whose broadcasts go through
    /// `fan_out`.
    pub fn new(
        config: AppConfig,
        channel_name_max_length: usize,
        webhooks: mpsc::Sender<Queued>,
        fan_out: FanOut,
        clustered: bool,
    ) -> Self {
        let settings = channel::Settings {
            max_presence_members: config.max_presence_members,
            subscription_count: config.subscription_count,
            cache_ttl: config.cache_ttl,
            clustered,
        };
        let console = Arc::new(console::Feed::new(&config.id));
        let target = AppTarget {
            app_id: config.id.clone(),
            key: config.key.clone(),
            secret: config.secret.clone(),
            targets: config.webhooks.clone(),
            pending: Default::default(),
            stats: Default::default(),
            console: console.clone(),
        };
        let hooks = Hooks::new(target, webhooks);
        let reports = Arc::new(Reports {
            hooks: hooks.clone(),
            console: console.clone(),
        });
        App {
            channels: channel::Registry::new(settings, fan_out, reports),
            console,
            users: user::Registry::new(clustered),
            hooks,
            traffic: Traffic::new(),
            api: ApiCalls::default(),
            connections: AtomicUsize::new(0),
            opened: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            channel_name_max_length,
            config,
        }
    }

    /// Takes a connection slot, or `None` when the app is at `max_connections`.
    pub fn connect(self: &Arc<Self>) -> Option<ConnectionSlot> {
        let max = self.config.max_connections;
        let taken = self
            .connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (max == 0 || n < max).then_some(n + 1)
            });
        taken.ok()?;
        self.opened.fetch_add(1, Ordering::Relaxed);
        Some(ConnectionSlot { app: self.clone() })
    }

    /// Open connections now, and those admitted and ended since start.
    pub fn connections(&self) -> Connections {
        Connections {
            open: self.connections.load(Ordering::Relaxed),
            opened: self.opened.load(Ordering::Relaxed),
            closed: self.closed.load(Ordering::Relaxed),
        }
    }
}

/// Where an app's channels report their changes: its console feed, then its webhooks.
#[derive(Debug)]
struct Reports {
    hooks: Hooks,
    console: Arc<console::Feed>,
}

impl Reporter for Reports {
    fn report(&self, channel: &ChannelName, change: Change<'_>) {
        self.console.report_change(channel.as_str(), change);
        self.hooks.report(channel, change);
    }
}

/// All apps, by id and by key.
#[derive(Debug, Default)]
pub struct Apps {
    by_id: HashMap<String, Arc<App>>,
    by_key: HashMap<String, Arc<App>>,
}

impl Apps {
    /// Builds every configured app.
    pub fn new(config: &Config, webhooks: mpsc::Sender<Queued>, fan_out: &FanOut) -> Self {
        let mut apps = Apps::default();
        for app_config in &config.apps {
            let app = Arc::new(App::new(
                app_config.clone(),
                config.server.channel_name_max_length,
                webhooks.clone(),
                fan_out.clone(),
                config.cluster.redis_url.is_some(),
            ));
            apps.by_id.insert(app.config.id.clone(), app.clone());
            apps.by_key.insert(app.config.key.clone(), app);
        }
        apps
    }

    /// The app with this id.
    pub fn by_id(&self, id: &str) -> Option<&Arc<App>> {
        self.by_id.get(id)
    }

    /// The app with this key.
    pub fn by_key(&self, key: &str) -> Option<&Arc<App>> {
        self.by_key.get(key)
    }

    /// Every app.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<App>> {
        self.by_id.values()
    }
}
