//! Webhooks: the events apps can receive ([`WebhookEvent`]), the per-app [`Hooks`] front that
//! queues them without ever blocking, and the background [`worker`] that holds back
//! `channel_vacated` / `member_removed`, batches, signs, sends and retries.
//!
//! The domain only calls [`Hooks::emit`] (a `try_send` into a bounded queue); what the queue
//! cannot take is counted and logged, never waited for.

pub mod worker;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::channel::{Change, Reporter};
use crate::config::WebhookTarget;
use crate::protocol::ChannelName;

/// One webhook event, serialized as an element of the body's `events` array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
}

/// Events dropped because the queue was full, since start.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Counts a dropped webhook and logs it (at the 1st, 2nd, 4th, 8th… drop, so floods stay quiet).
fn count_dropped(app_id: &str, why: &'static str) {
    let n = DROPPED.fetch_add(1, Ordering::Relaxed) + 1;
    if n.is_power_of_two() {
        tracing::warn!(app_id, dropped = n, why, "webhook dropped");
    }
}

/// How many webhook events or deliveries were dropped (queue full, or an app with too many
/// deliveries pending).
pub fn dropped_count() -> u64 {
    DROPPED.load(Ordering::Relaxed)
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
        let Some(queue) = &self.queue else { return };
        let name = event.name();
        if !self.wants(name) && !grace_partner(name).is_some_and(|p| self.wants(p)) {
            return;
        }
        let queued = Queued {
            app: self.app.clone(),
            event,
            time_ms: now_ms(),
        };
        if queue.try_send(queued).is_err() {
            count_dropped(&self.app.app_id, "webhook queue full");
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
        let channel = channel.to_string();
        self.emit(match change {
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
        });
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
        };
        let hooks = Hooks::new(app, tx);
        hooks.emit(WebhookEvent::CacheMiss {
            channel: "cache-x".into(),
        });
        assert!(rx.try_recv().is_err());
        hooks.emit(WebhookEvent::ChannelOccupied {
            channel: "a".into(),
        });
        let before = dropped_count();
        hooks.emit(WebhookEvent::ChannelOccupied {
            channel: "b".into(),
        });
        assert_eq!(dropped_count(), before + 1);
        assert_eq!(
            rx.try_recv().unwrap().event,
            WebhookEvent::ChannelOccupied {
                channel: "a".into()
            }
        );
    }
}
