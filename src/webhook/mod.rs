//! Webhooks: the events apps can receive ([`WebhookEvent`]), the per-app [`Hooks`] front that
//! queues them without ever blocking, and the background [`worker`] that holds back
//! `channel_vacated` / `member_removed`, batches, signs, sends and retries.
//!
//! The domain only calls [`Hooks::emit`] (a `try_send` into a bounded queue); what the queue
//! cannot take is counted and logged, never waited for. Each app's outcomes (deliveries,
//! retries, failures, drops) are counted in its [`Stats`], which the metrics read.

pub mod worker;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::channel::{Change, Reporter};
use crate::config::WebhookTarget;
use crate::protocol::ChannelName;

/// One webhook event, serialized as an element of the body's `events` array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum WebhookEvent {
    /// A channel got its first subscriber.
    ChannelOccupied {
        /// The channel.
        channel: String,
    },
    /// A channel lost its last subscriber.
    ChannelVacated {
        /// The channel.
        channel: String,
    },
    /// A user's first connection joined a presence channel.
    MemberAdded {
        /// The channel.
        channel: String,
        /// The member.
        user_id: String,
    },
    /// A user's last connection left a presence channel.
    MemberRemoved {
        /// The channel.
        channel: String,
        /// The member.
        user_id: String,
    },
    /// A client event was relayed.
    ClientEvent {
        /// The channel.
        channel: String,
        /// The event name.
        event: String,
        /// The data string.
        data: String,
        /// The sender.
        socket_id: String,
        /// The sender's member id, on presence channels.
        #[serde(skip_serializing_if = "Option::is_none")]
        user_id: Option<String>,
    },
    /// Someone subscribed to a cache channel with nothing cached.
    CacheMiss {
        /// The channel.
        channel: String,
    },
    /// A channel's subscription count changed.
    SubscriptionCount {
        /// The channel.
        channel: String,
        /// The new count.
        subscription_count: usize,
    },
}

impl WebhookEvent {
    /// The event's `name`.
    pub fn name(&self) -> &'static str {
        match self {
            WebhookEvent::ChannelOccupied { .. } => "channel_occupied",
            WebhookEvent::ChannelVacated { .. } => "channel_vacated",
            WebhookEvent::MemberAdded { .. } => "member_added",
            WebhookEvent::MemberRemoved { .. } => "member_removed",
            WebhookEvent::ClientEvent { .. } => "client_event",
            WebhookEvent::CacheMiss { .. } => "cache_miss",
            WebhookEvent::SubscriptionCount { .. } => "subscription_count",
        }
    }
}

/// What the worker needs to know about an app to deliver its webhooks.
#[derive(Debug)]
pub struct AppTarget {
    /// The app id (for logs and the grace-period keys).
    pub app_id: String,
    /// Sent as `X-Pusher-Key`.
    pub key: String,
    /// Signs the body.
    pub secret: String,
    /// Where to send what.
    pub targets: Vec<WebhookTarget>,
    /// Deliveries of this app waiting or in flight, bounded so that one app's failing endpoint
    /// cannot take every other app's share.
    pub pending: std::sync::atomic::AtomicUsize,
    /// What became of this app's webhooks.
    pub stats: Stats,
    /// The app's console feed: each attempt is reported there.
    pub console: Arc<crate::console::Feed>,
}

/// A durable event's receipt: the event stays in the cluster's queue (Redis) until every
/// delivery of it has *settled* — delivered, given up after `retry_for`, or dropped by policy —
/// and the last holder lets go; then its id goes to `settled`, and the cluster removes it. A
/// delivery cut short (the node shutting down, or dying) does not settle, so the event is
/// claimed again by another node when its lease ends.
#[derive(Debug)]
pub struct Receipt {
    /// The event's id in the queue.
    id: String,
    /// Deliveries handed out and not settled yet.
    unsettled: AtomicUsize,
    /// Where settled ids go.
    settled: mpsc::UnboundedSender<String>,
}

impl Receipt {
    /// A receipt for the queued event `id`.
    pub fn new(id: String, settled: mpsc::UnboundedSender<String>) -> Arc<Receipt> {
        Arc::new(Receipt {
            id,
            unsettled: AtomicUsize::new(0),
            settled,
        })
    }

    /// The event's id in the queue.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// One more delivery of the event.
    fn hand_out(&self) {
        self.unsettled.fetch_add(1, Ordering::AcqRel);
    }

    /// One delivery of the event settled.
    fn settle(&self) {
        self.unsettled.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Receipt {
    fn drop(&mut self) {
        if self.unsettled.load(Ordering::Acquire) == 0 {
            let _ = self.settled.send(std::mem::take(&mut self.id));
        }
    }
}

/// Why a webhook was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// The queue to the worker was full: the event was dropped.
    QueueFull,
    /// The app had too many deliveries waiting or in flight: the request was dropped.
    TooManyPending,
}

impl Dropped {
    /// Both reasons, in the order of [`StatsTotals::dropped`].
    pub const ALL: [Dropped; 2] = [Dropped::QueueFull, Dropped::TooManyPending];

    /// The reason as a metric label.
    pub fn label(self) -> &'static str {
        match self {
            Dropped::QueueFull => "queue_full",
            Dropped::TooManyPending => "too_many_pending",
        }
    }

    fn why(self) -> &'static str {
        match self {
            Dropped::QueueFull => "webhook queue full",
            Dropped::TooManyPending => "too many deliveries pending for this app",
        }
    }
}

/// One app's webhook outcomes since start: counted by the front and the worker as they happen
/// (a few per webhook, never per WebSocket message), read by the metrics.
#[derive(Debug, Default)]
pub struct Stats {
    delivered: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    /// By [`Dropped::ALL`].
    dropped: [AtomicU64; 2],
}

/// What [`Stats`] counted so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StatsTotals {
    /// Requests the endpoint accepted (2xx).
    pub delivered: u64,
    /// Attempts after a failed one.
    pub retried: u64,
    /// Requests given up after retrying for `retry_for` (or at shutdown).
    pub failed: u64,
    /// Dropped, by [`Dropped::ALL`].
    pub dropped: [u64; 2],
}

impl Stats {
    /// The counts so far.
    pub fn totals(&self) -> StatsTotals {
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        StatsTotals {
            delivered: load(&self.delivered),
            retried: load(&self.retried),
            failed: load(&self.failed),
            dropped: [load(&self.dropped[0]), load(&self.dropped[1])],
        }
    }

    fn count(counter: &AtomicU64) -> u64 {
        counter.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// An event on its way to the worker.
#[derive(Debug)]
pub struct Queued {
    /// Whose event it is.
    pub app: Arc<AppTarget>,
    /// The event.
    pub event: WebhookEvent,
    /// When it happened, Unix milliseconds (becomes `time_ms`).
    pub time_ms: u64,
    /// Its grace period was served already (a cluster holds departures in Redis): the worker
    /// sends it without holding it again.
    pub graced: bool,
    /// On a cluster, the event is kept in Redis until every delivery of it has settled; this
    /// tells Redis when (see [`Receipt`]).
    pub receipt: Option<Arc<Receipt>>,
}

/// Counts a dropped webhook and logs it (at the app's 1st, 2nd, 4th, 8th… drop of that kind, so
/// floods stay quiet).
fn count_dropped(app: &AppTarget, why: Dropped) {
    let slot = Dropped::ALL.iter().position(|d| *d == why).unwrap_or(0);
    let n = Stats::count(&app.stats.dropped[slot]);
    if n.is_power_of_two() {
        tracing::warn!(app_id = %app.app_id, dropped = n, why = why.why(), "webhook dropped");
    }
}

/// One app's webhook front: cheap to call, a no-op for event kinds no target wants.
#[derive(Debug, Clone)]
pub struct Hooks {
    app: Arc<AppTarget>,
    queue: Option<mpsc::Sender<Queued>>,
}

impl Hooks {
    /// Hooks for `app` that queue into `queue`.
    pub fn new(app: AppTarget, queue: mpsc::Sender<Queued>) -> Self {
        let queue = (!app.targets.is_empty()).then_some(queue);
        Hooks {
            app: Arc::new(app),
            queue,
        }
    }

    /// What became of this app's webhooks so far.
    pub fn stats(&self) -> StatsTotals {
        self.app.stats.totals()
    }

    /// This app's deliveries waiting or in flight now.
    pub fn pending(&self) -> usize {
        self.app.pending.load(Ordering::Relaxed)
    }

    /// Whether some target wants events named `name`.
    pub fn wants(&self, name: &str) -> bool {
        self.queue.is_some()
            && self
                .app
                .targets
                .iter()
                .any(|t| t.events.iter().any(|e| e == name))
    }

    /// Queues an event without waiting; drops (and counts) it when the queue is full.
    /// An event is queued when some target wants it or the other half of its grace-period pair
    /// (`channel_occupied`/`channel_vacated`, `member_added`/`member_removed`): the worker needs
    /// both halves to cancel a held vacated/removed, and filters per target when it sends.
    pub fn emit(&self, event: WebhookEvent) {
        self.queue(event, false);
    }

    /// Whether the app wants this transition's webhook, or the one it cancels within the grace
    /// period (`channel_occupied` cancels a held `channel_vacated`, and so on).
    pub fn wants_transition(&self, name: &str) -> bool {
        self.wants(name) || grace_partner(name).is_some_and(|p| self.wants(p))
    }

    /// An event claimed from the cluster's queue, ready for the worker: its grace period (if
    /// it had one) is served, and `receipt` tells the cluster when it settled.
    pub fn claimed(&self, event: WebhookEvent, time_ms: u64, receipt: Arc<Receipt>) -> Queued {
        Queued {
            app: self.app.clone(),
            event,
            time_ms,
            graced: true,
            receipt: Some(receipt),
        }
    }

    /// Queues a `channel_vacated` / `member_removed` whose grace period is over (held by the
    /// cluster, and not cancelled).
    pub fn report_after_grace(&self, channel: &ChannelName, change: Change<'_>) {
        self.queue(event_of(channel, change), true);
    }

    fn queue(&self, event: WebhookEvent, graced: bool) {
        let Some(queue) = &self.queue else { return };
        if !self.wants_transition(event.name()) {
            return;
        }
        let queued = Queued {
            app: self.app.clone(),
            event,
            time_ms: now_ms(),
            graced,
            receipt: None,
        };
        if queue.try_send(queued).is_err() {
            count_dropped(&self.app, Dropped::QueueFull);
        }
    }
}

/// The other event of a grace-period pair.
fn grace_partner(name: &str) -> Option<&'static str> {
    match name {
        "channel_occupied" => Some("channel_vacated"),
        "channel_vacated" => Some("channel_occupied"),
        "member_added" => Some("member_removed"),
        "member_removed" => Some("member_added"),
        _ => None,
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Reporter for Hooks {
    fn report(&self, channel: &ChannelName, change: Change<'_>) {
        self.emit(event_of(channel, change));
    }
}

/// The webhook event of a channel's change.
fn event_of(channel: &ChannelName, change: Change<'_>) -> WebhookEvent {
    let channel = channel.to_string();
    {
        match change {
            Change::Occupied => WebhookEvent::ChannelOccupied { channel },
            Change::Vacated => WebhookEvent::ChannelVacated { channel },
            Change::MemberAdded(user) => WebhookEvent::MemberAdded {
                channel,
                user_id: user.to_string(),
            },
            Change::MemberRemoved(user) => WebhookEvent::MemberRemoved {
                channel,
                user_id: user.to_string(),
            },
            Change::CacheMiss => WebhookEvent::CacheMiss { channel },
            Change::Count(subscription_count) => WebhookEvent::SubscriptionCount {
                channel,
                subscription_count,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_json_shapes() {
        let e = WebhookEvent::MemberAdded {
            channel: "presence-x".into(),
            user_id: "1".into(),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"name":"member_added","channel":"presence-x","user_id":"1"}"#
        );
        let e = WebhookEvent::ClientEvent {
            channel: "private-c".into(),
            event: "client-typing".into(),
            data: "{\"who\":\"me\"}".into(),
            socket_id: "123.456".into(),
            user_id: None,
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"name":"client_event","channel":"private-c","event":"client-typing","data":"{\"who\":\"me\"}","socket_id":"123.456"}"#
        );
        let e = WebhookEvent::SubscriptionCount {
            channel: "c".into(),
            subscription_count: 13,
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"name":"subscription_count","channel":"c","subscription_count":13}"#
        );
    }

    #[test]
    fn only_wanted_events_are_queued_and_full_queues_drop() {
        let (tx, mut rx) = mpsc::channel(1);
        let target = WebhookTarget {
            url: "http://127.0.0.1:1/".into(),
            events: vec!["channel_occupied".into()],
            batch: false,
        };
        let app = AppTarget {
            app_id: "1".into(),
            key: "k".into(),
            secret: "s".into(),
            targets: vec![target],
            pending: Default::default(),
            stats: Default::default(),
            console: Arc::new(crate::console::Feed::new("1")),
        };
        let hooks = Hooks::new(app, tx);
        hooks.emit(WebhookEvent::CacheMiss {
            channel: "cache-x".into(),
        });
        assert!(rx.try_recv().is_err());
        hooks.emit(WebhookEvent::ChannelOccupied {
            channel: "a".into(),
        });
        assert_eq!(hooks.stats().dropped, [0, 0]);
        hooks.emit(WebhookEvent::ChannelOccupied {
            channel: "b".into(),
        });
        assert_eq!(hooks.stats().dropped, [1, 0]);
        assert_eq!(
            rx.try_recv().unwrap().event,
            WebhookEvent::ChannelOccupied {
                channel: "a".into()
            }
        );
    }
}
