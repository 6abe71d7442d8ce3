//! One app's console feed: what happened in the app ([`Activity`]), as JSON lines for the
//! consoles watching it.
//!
//! The domain reports to the app's [`Feed`] at the one place where each thing happens; the feed
//! drops it at once (two relaxed atomic loads, nothing built, nothing allocated) unless a console
//! watches the app, here ([`Feed::watch`]) or, on a cluster, on another node
//! ([`Feed::set_watched_elsewhere`], learnt at the heartbeat). Entries go to this node's consoles
//! through a bounded broadcast (a console that falls behind is told how many it missed) and to
//! the other nodes through a bounded queue the cluster drains ([`Feed::relay_to`]); neither is
//! ever waited for. At most [`RATE`] entries a second are built; the rest are only counted,
//! and a `skipped` entry says how many. Nothing here knows HTTP, actix or Redis.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

pub use super::activity::{Activity, Data};
use crate::channel::Change;

/// Entries a console may fall behind by before it is told it missed some.
const BACKLOG: usize = 1024;

/// An entry as sent: when, where (on a cluster) and what.
#[derive(Serialize)]
struct Entry<'a> {
    time_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<&'a str>,
    #[serde(flatten)]
    activity: &'a Activity<'a>,
}

/// An entry for another node's consoles: the app and the entry's JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relayed {
    /// The app id.
    pub app: Arc<str>,
    /// The entry, as JSON.
    pub entry: Arc<str>,
}

/// One app's console feed. See the module documentation.
#[derive(Debug)]
pub struct Feed {
    /// The app id (for relayed entries).
    app: Arc<str>,
    /// Consoles of this node watching the app now.
    watchers: AtomicUsize,
    /// On a cluster: a console on another node watches the app (as of the last heartbeat).
    watched_elsewhere: AtomicBool,
    /// Entries for this node's consoles.
    local: broadcast::Sender<Arc<str>>,
    /// On a cluster: where entries for the other nodes go (set once, at start-up).
    relay: OnceLock<Relay>,
    /// Entries the relay queue could not take.
    relay_dropped: AtomicU64,
    /// The current one-second window of the sampling (Unix ms of its start).
    window: AtomicU64,
    /// Entries built in it.
    built: AtomicU64,
    /// Entries left out in it (over [`RATE`]); reported when the next window starts.
    sampled: AtomicU64,
}

/// Entries an app's feed builds per second; the rest are counted, never built (a console is
/// not sent more, see `console::stream`), so that watching an app at a high event rate costs
/// the server little.
pub const RATE: u64 = 500;

#[derive(Debug)]
struct Relay {
    node: String,
    queue: mpsc::Sender<Relayed>,
}

impl Feed {
    /// The feed of app `app`, watched by nobody yet.
    pub fn new(app: &str) -> Self {
        Feed {
            app: app.into(),
            watchers: AtomicUsize::new(0),
            watched_elsewhere: AtomicBool::new(false),
            local: broadcast::channel(BACKLOG).0,
            relay: OnceLock::new(),
            relay_dropped: AtomicU64::new(0),
            window: AtomicU64::new(0),
            built: AtomicU64::new(0),
            sampled: AtomicU64::new(0),
        }
    }

    /// Whether any console (here or on another node) watches the app: the fast path every
    /// report takes first.
    #[inline]
    pub fn is_watched(&self) -> bool {
        self.watchers.load(Ordering::Relaxed) > 0 || self.watched_elsewhere.load(Ordering::Relaxed)
    }

    /// Whether a console of this node watches the app.
    pub fn is_watched_here(&self) -> bool {
        self.watchers.load(Ordering::Relaxed) > 0
    }

    /// Reports what happened; nothing is done unless a console watches the app.
    #[inline]
    pub fn report(&self, activity: Activity<'_>) {
        if self.is_watched() {
            self.send(&activity);
        }
    }

    /// Reports a channel's change (a no-op for the changes a console does not show).
    #[inline]
    pub fn report_change(&self, channel: &str, change: Change<'_>) {
        if self.is_watched() {
            if let Some(activity) = Activity::of_change(channel, change) {
                self.send(&activity);
            }
        }
    }

    #[cold]
    fn send(&self, activity: &Activity<'_>) {
        let now = crate::webhook::now_ms();
        let relay = self.relay.get();
        let node = relay.map(|r| r.node.as_str());
        if !self.admit(now, node) {
            return;
        }
        let entry = Entry {
            time_ms: now,
            node,
            activity,
        };
        let Ok(json) = serde_json::to_string(&entry) else {
            return;
        };
        self.deliver(json.into());
    }

    /// Whether one more entry fits in this second's [`RATE`]; at a new second, first sends a
    /// `skipped` entry for what the last one left out.
    fn admit(&self, now: u64, node: Option<&str>) -> bool {
        self.roll(now, node);
        if self.built.fetch_add(1, Ordering::Relaxed) < RATE {
            return true;
        }
        self.sampled.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// Starts a new second of the sampling if the current one is over, sending a `skipped`
    /// entry for what it left out.
    fn roll(&self, now: u64, node: Option<&str>) {
        let start = self.window.load(Ordering::Relaxed);
        if now.saturating_sub(start) >= 1000
            && self
                .window
                .compare_exchange(start, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.built.store(0, Ordering::Relaxed);
            let left_out = self.sampled.swap(0, Ordering::Relaxed);
            if left_out > 0 {
                let entry = super::stream::skipped_entry(left_out, "sampled", node);
                self.deliver(entry.into());
            }
        }
    }

    /// Reports what the last second left out, if it is over (called by watching consoles while
    /// the app is quiet, so a burst's count is not held until the next event).
    pub fn flush(&self) {
        if self.sampled.load(Ordering::Relaxed) > 0 {
            let node = self.relay.get().map(|r| r.node.as_str());
            self.roll(crate::webhook::now_ms(), node);
        }
    }

    /// Hands a built entry to this node's consoles and, if one watches elsewhere, the relay.
    fn deliver(&self, json: Arc<str>) {
        let relay = self.relay.get();
        if self.watchers.load(Ordering::Relaxed) > 0 {
            // No receiver left (the last console just went): nothing to do.
            let _ = self.local.send(json.clone());
        }
        if let (Some(relay), true) = (relay, self.watched_elsewhere.load(Ordering::Relaxed)) {
            let relayed = Relayed {
                app: self.app.clone(),
                entry: json,
            };
            if relay.queue.try_send(relayed).is_err() {
                self.relay_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// An entry another node reported, for this node's consoles.
    pub fn relayed(&self, entry: Arc<str>) {
        if self.is_watched_here() {
            let _ = self.local.send(entry);
        }
    }

    /// Starts watching: entries from now on, until the [`Watching`] is dropped.
    pub fn watch(self: &Arc<Self>) -> Watching {
        let entries = self.local.subscribe();
        self.watchers.fetch_add(1, Ordering::Relaxed);
        Watching {
            feed: self.clone(),
            entries,
        }
    }

    /// On a cluster node: entries go to `queue` (tagged with `node`) while a console on
    /// another node watches the app. Set once; later calls are ignored.
    pub fn relay_to(&self, node: &str, queue: mpsc::Sender<Relayed>) {
        let _ = self.relay.set(Relay {
            node: node.to_owned(),
            queue,
        });
    }

    /// What the last heartbeat learnt: whether a console on another node watches the app.
    pub fn set_watched_elsewhere(&self, watched: bool) {
        self.watched_elsewhere.store(watched, Ordering::Relaxed);
    }

    /// Entries dropped because the relay queue was full.
    pub fn relay_dropped(&self) -> u64 {
        self.relay_dropped.load(Ordering::Relaxed)
    }
}

/// One console watching an app: its entries, and its place in the watcher count.
#[derive(Debug)]
pub struct Watching {
    feed: Arc<Feed>,
    entries: broadcast::Receiver<Arc<str>>,
}

/// What a console gets next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// An entry, as JSON.
    Entry(Arc<str>),
    /// The console fell behind and missed this many.
    Missed(u64),
    /// Nothing waiting now (from [`Watching::try_next`]).
    Empty,
}

impl Watching {
    /// The next entry, waiting for it.
    pub async fn next(&mut self) -> Next {
        match self.entries.recv().await {
            Ok(entry) => Next::Entry(entry),
            Err(broadcast::error::RecvError::Lagged(n)) => Next::Missed(n),
            // The feed lives as long as its app, which outlives this (it holds the feed).
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }

    /// Has the feed report what its last second of sampling left out, if that is over.
    pub fn flush(&self) {
        self.feed.flush();
    }

    /// The next entry if one is waiting.
    pub fn try_next(&mut self) -> Next {
        match self.entries.try_recv() {
            Ok(entry) => Next::Entry(entry),
            Err(broadcast::error::TryRecvError::Lagged(n)) => Next::Missed(n),
            Err(_) => Next::Empty,
        }
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.feed.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn nothing_is_sent_unless_watched_and_entries_carry_their_fields() {
        let feed = Arc::new(Feed::new("1"));
        feed.report(Activity::CacheMiss { channel: "cache-a" });
        assert!(!feed.is_watched());
        let mut watching = feed.watch();
        assert!(feed.is_watched());
        assert_eq!(watching.try_next(), Next::Empty, "nothing from before");
        feed.report(Activity::ApiEvent {
            channel: "c",
            event: "e",
            data: Data::of("{\"a\":1}"),
            excluded_socket_id: Some("1.2"),
        });
        let Next::Entry(entry) = watching.next().await else {
            panic!("no entry");
        };
        let v: serde_json::Value = serde_json::from_str(&entry).unwrap();
        assert_eq!(v["kind"], "api_event");
        assert_eq!(v["channel"], "c");
        assert_eq!(v["data"], "{\"a\":1}");
        assert_eq!(v["excluded_socket_id"], "1.2");
        assert!(v["time_ms"].as_u64().unwrap() > 0);
        assert!(v.get("data_truncated").is_none() && v.get("node").is_none());
        drop(watching);
        assert!(!feed.is_watched());
    }

    #[tokio::test]
    async fn a_console_that_falls_behind_is_told_how_many_it_missed() {
        let feed = Arc::new(Feed::new("1"));
        let mut watching = feed.watch();
        for i in 0..BACKLOG + 10 {
            if i as u64 % RATE == 0 {
                // A new second each time, so the rate lets them all through.
                feed.window.store(0, Ordering::Relaxed);
            }
            feed.report(Activity::CacheMiss { channel: "c" });
        }
        assert_eq!(watching.next().await, Next::Missed(10));
        assert!(matches!(watching.try_next(), Next::Entry(_)));
    }

    #[tokio::test]
    async fn over_the_rate_entries_are_counted_not_built() {
        let feed = Arc::new(Feed::new("1"));
        let mut watching = feed.watch();
        for _ in 0..RATE + 7 {
            feed.report(Activity::CacheMiss { channel: "c" });
        }
        for _ in 0..RATE {
            assert!(matches!(watching.try_next(), Next::Entry(_)));
        }
        assert_eq!(watching.try_next(), Next::Empty);
        // A new second: the count first.
        feed.window.store(0, Ordering::Relaxed);
        feed.report(Activity::CacheMiss { channel: "c" });
        let Next::Entry(skipped) = watching.try_next() else {
            panic!("no skipped entry");
        };
        let v: serde_json::Value = serde_json::from_str(&skipped).unwrap();
        assert_eq!((&v["kind"], &v["count"]), (&"skipped".into(), &7.into()));
        assert!(matches!(watching.try_next(), Next::Entry(_)));
    }

    #[test]
    fn long_data_is_cut_at_a_character_boundary() {
        use super::super::activity::DATA_SHOWN;
        let long = "é".repeat(DATA_SHOWN);
        let cut = Data::of(&long);
        assert!(cut.data_truncated && cut.data.len() <= DATA_SHOWN && cut.data.len() > 1000);
        assert!(!Data::of("short").data_truncated);
    }

    #[tokio::test]
    async fn entries_go_to_the_relay_only_while_another_node_watches() {
        let feed = Feed::new("app");
        let (tx, mut rx) = mpsc::channel(4);
        feed.relay_to("node-a", tx);
        feed.report(Activity::CacheMiss { channel: "c" });
        assert!(rx.try_recv().is_err());
        feed.set_watched_elsewhere(true);
        feed.report(Activity::CacheMiss { channel: "c" });
        let relayed = rx.try_recv().unwrap();
        assert_eq!(&*relayed.app, "app");
        let v: serde_json::Value = serde_json::from_str(&relayed.entry).unwrap();
        assert_eq!(v["node"], "node-a");
        assert_eq!(v["kind"], "cache_miss");
    }
}
