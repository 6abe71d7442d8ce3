//! The cluster bus: what one node publishes for every node to deliver locally — an event on a
//! channel (or to a user, `#server-to-user-<id>`), a presence member event or subscription
//! count, terminate a user's connections, a watchlist change, an entry of a watched app's debug
//! console feed.
//!
//! # One Redis channel per cluster
//!
//! Every message of every app goes over the one pub/sub channel `P:bus`. Every node serves
//! every app (apps are the cluster's shared configuration), so per-app channels would carry the
//! same messages to the same subscribers while multiplying subscriptions to restore after a
//! reconnect; one channel also gives each node a single stream in publication order. (A
//! per-Pusher-channel layout, where a node only hears channels it has subscribers on, would
//! cut traffic for unevenly spread subscribers, but a node could miss events published between
//! a local subscribe and its Redis `SUBSCRIBE`; that is a later optimisation to measure.)
//!
//! # Payload
//!
//! `<origin node id, 16 hex digits> <JSON>[\n<JSON>…]`: the origin comes first so a node knows
//! its own echo before parsing anything. Each JSON line is one [`BusMessage`] in serde's
//! external tagging, compact (JSON text never holds a raw newline, so a newline separates
//! messages):
//!
//! ```text
//! 3f2a9c0d1b4e5f60 {"event":{"app":"1","channel":"chat","event":"msg","data":"{\"a\":1}","except":"123.456"}}
//! 3f2a9c0d1b4e5f60 {"terminate_user":{"app":"1","user":"u1"}}
//! 3f2a9c0d1b4e5f60 {"watchlist":{"app":"1","user":"u1","online":true}}
//! 3f2a9c0d1b4e5f60 {"console":{"app":"1","entry":"{\"time_ms\":1,\"node\":\"3f2a9c0d1b4e5f60\",\"kind\":\"cache_miss\",\"channel\":\"cache-a\"}"}}
//! ```
//!
//! `except`, `user_id` and `info` are left out when absent, `cache` when false.
//!
//! # Batches
//!
//! One task per node sends every `PUBLISH` but the member events' (those are published by the
//! scripts that decide them, see `cluster::channel`), one at a time: what was handed over while
//! a `PUBLISH` was on its way goes out in the next one, as one payload of several lines (up to
//! [`BATCH_BYTES`]). A lone message goes out at once; under load the node sends one `PUBLISH`,
//! and every node reads one message (the echo included), per batch instead of per event.
//! [`Bus::publish`] waits for Redis's reply to its batch (the API's events: a publisher's next
//! event, sent through another node once this one is answered, must come after it everywhere);
//! [`Bus::post`] (the console's relayed entries) only for room in the queue ([`QUEUE`]
//! messages). A posted batch that fails is not
//! retried (pub/sub keeps nothing either): the failure waits in the bus until the heartbeat
//! takes it ([`Bus::take_failure`]) and logs it, and until then posted messages are dropped rather than sent late, after the outage, to nodes
//! whose clients have moved on. Order is kept: the task takes messages in the order they were
//! handed over and sends batches in that order.
//!
//! # Order
//!
//! Redis delivers a channel's messages to a subscriber in the order it received the
//! `PUBLISH`es, and the [`Listener`] hands them to one handler, in that order, on one task —
//! never a task per message. A node's own events come back to it too ([`EVENT_LINE`]): it
//! delivers them from the echo, like every other node, so every node delivers all events in
//! Redis's one order (a node delivering its own at once could put one before an earlier event
//! that another node published and whose message is still on its way here). Its other
//! messages are dropped from the echo: it acted on them when it sent them.
//!
//! Messages that arrive while the handler is busy wait in a bounded
//! queue ([`super::Settings::bus_capacity`]); if it overflows, the oldest are lost and the
//! handler is told how many ([`Received::Lost`]). After a reconnect the subscription is restored
//! by fred and the handler is told ([`Received::Reconnected`]): messages published while the
//! connection was down are lost, as with any pub/sub. Measured on the 2-core test machine
//! (test `the_bus_delivers_again_after_redis_restarts`, reconnect delay 100 ms): messages
//! reach the listener again 120–200 ms after a restarted Redis answers.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use fred::clients::{Client, SubscriberClient};
use fred::interfaces::{ClientLike, EventInterface, PubsubInterface};
use fred::types::Message;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::node::{NodeId, NODE_ID_LEN};
use super::{redis_error, ClusterError, Engine};

/// What one node asks every other node to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BusMessage {
    /// Deliver an event to the channel's local subscribers (to the user's connections on
    /// `#server-to-user-<id>`).
    Event {
        /// The app id.
        app: String,
        /// The channel.
        channel: String,
        /// The event name.
        event: String,
        /// The data string, delivered verbatim.
        data: String,
        /// The socket that must not receive it (it may be on any node).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        except: Option<String>,
        /// The sender's member id (client events on presence channels).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_id: Option<String>,
        /// A cache channel keeps it (API events; not client events).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        cache: bool,
    },
    /// Tell the channel's local subscribers of a new presence member (published by the
    /// `member_join` script).
    MemberAdded {
        /// The app id.
        app: String,
        /// The presence channel.
        channel: String,
        /// The member.
        user: String,
        /// Its `user_info` as JSON text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        info: Option<String>,
    },
    /// Tell the channel's local subscribers its subscription count in the cluster.
    Count {
        /// The app id.
        app: String,
        /// The channel.
        channel: String,
        /// Subscriptions on all nodes.
        subscription_count: u64,
        /// The count's number in the cluster (newer counts have higher numbers; 0: unknown).
        #[serde(default, skip_serializing_if = "is_zero")]
        seq: u64,
    },
    /// Tell the channel's local subscribers that a presence member left (published by the
    /// `member_leave` script, or by the node replaying a dead node's departures).
    MemberRemoved {
        /// The app id.
        app: String,
        /// The presence channel.
        channel: String,
        /// The member.
        user: String,
    },
    /// Close the user's local connections (4009).
    TerminateUser {
        /// The app id.
        app: String,
        /// The user id.
        user: String,
    },
    /// Tell the user's local watchers that it came online or went offline.
    Watchlist {
        /// The app id.
        app: String,
        /// The user id.
        user: String,
        /// Online (true) or offline.
        online: bool,
    },
    /// Show an entry of the app's debug console feed to this node's consoles (sent only while
    /// a console on another node watches the app, see `cluster::console`).
    Console {
        /// The app id.
        app: String,
        /// The entry, as JSON.
        entry: String,
    },
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What the listener hands its handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A message from another node, or an event from this one (from its echo).
    Message(BusMessage),
    /// This many payloads (each one message or a batch of them) were lost: the handler fell
    /// behind by more than the bus capacity.
    Lost(u64),
    /// The subscriber connection came back after a loss of connection; messages published in
    /// between are lost.
    Reconnected,
}

/// A payload stops taking more messages once it is this long (one message may be longer).
pub const BATCH_BYTES: usize = 64 * 1024;

/// Messages handed over and not yet sent, at most; beyond it, handing over waits for room.
pub const QUEUE: usize = 4096;

/// How a [`BusMessage::Event`]'s line starts (serde's external tagging): the one kind of
/// message a node takes from its own echo.
pub const EVENT_LINE: &str = r#"{"event":"#;

/// A message as one line of a payload: compact JSON.
fn line(message: &BusMessage) -> String {
    serde_json::to_string(message).unwrap_or_default()
}

/// A payload being put together: the origin, then lines.
struct Payload(String);

impl Payload {
    fn new(origin: &NodeId, first: &str) -> Self {
        let mut text = String::with_capacity(NODE_ID_LEN + 1 + first.len());
        text.push_str(origin.as_str());
        text.push(' ');
        text.push_str(first);
        Payload(text)
    }

    fn push(&mut self, line: &str) {
        self.0.push('\n');
        self.0.push_str(line);
    }

    fn is_full(&self) -> bool {
        self.0.len() >= BATCH_BYTES
    }
}

/// Encodes messages as they travel: origin, a space, one JSON line per message (at least one).
pub fn encode<'a>(origin: &NodeId, messages: impl IntoIterator<Item = &'a BusMessage>) -> String {
    let mut lines = messages.into_iter().map(line);
    let mut payload = Payload::new(origin, &lines.next().unwrap_or_default());
    lines.for_each(|l| payload.push(&l));
    payload.0
}

/// Decodes a payload: its origin and its messages in order, each `Err` if its line is not a
/// message (a newer node's, say); `None` if the payload is not one of ours.
pub fn decode(
    payload: &str,
) -> Option<(
    &str,
    impl Iterator<Item = Result<BusMessage, serde_json::Error>> + '_,
)> {
    let (origin, lines) = split(payload)?;
    Some((origin, lines.map(serde_json::from_str)))
}

/// A payload's origin and its lines, unparsed; `None` if the payload is not one of ours.
fn split(payload: &str) -> Option<(&str, std::str::Split<'_, char>)> {
    let (origin, lines) = payload.split_at_checked(NODE_ID_LEN)?;
    let lines = lines.strip_prefix(' ')?;
    Some((origin, lines.split('\n')))
}

/// The publishing side of the bus. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Bus {
    /// The node's publishing task (see "Batches" above).
    publisher: mpsc::Sender<Outgoing>,
    /// The last failure of a posted batch, not yet taken.
    failure: Arc<Failure>,
}

/// A message handed to the publishing task, and where its `PUBLISH`'s outcome goes (nowhere
/// for a posted one).
#[derive(Debug)]
struct Outgoing {
    line: String,
    sent: Option<oneshot::Sender<Result<u64, ClusterError>>>,
}

/// The last failure of a posted batch: a flag read on every post, the error behind it and when
/// that batch was sent.
#[derive(Debug, Default)]
struct Failure {
    any: AtomicBool,
    error: Mutex<Option<Failed>>,
}

/// A posted batch's `PUBLISH` failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// Why.
    pub error: ClusterError,
    /// Posted messages lost: the batch's, and those dropped until the failure was taken.
    pub lost: u64,
}

impl Bus {
    /// Publishes `message` to every node; returns how many subscribers Redis delivered it to
    /// (this node's own listener included).
    /// The caller encodes its message (work spread over the callers' threads); the task
    /// sends it, in a batch with whatever else waits.
    pub async fn publish(&self, message: &BusMessage) -> Result<u64, ClusterError> {
        let (sent, outcome) = oneshot::channel();
        let outgoing = Outgoing {
            line: line(message),
            sent: Some(sent),
        };
        self.publisher.send(outgoing).await.map_err(|_| closed())?;
        outcome.await.unwrap_or_else(|_| Err(closed()))
    }

    /// Hands `message` to the publishing task without waiting for Redis: it goes out after
    /// everything handed over before it. Waits only while [`QUEUE`] messages wait.
    pub async fn post(&self, message: &BusMessage) -> Result<(), ClusterError> {
        let outgoing = Outgoing {
            line: line(message),
            sent: None,
        };
        self.publisher.send(outgoing).await.map_err(|_| closed())
    }

    /// Whether a posted batch failed and no one took the failure yet.
    #[cfg(test)]
    pub fn failure_pending(&self) -> bool {
        self.failure.any.load(Ordering::Acquire)
    }

    /// The failure of a posted batch since the last call, if any (each is reported once);
    /// posted messages go out again from then on.
    pub fn take_failure(&self) -> Option<Failed> {
        if !self.failure.any.load(Ordering::Acquire) {
            return None;
        }
        let mut failed = self
            .failure
            .error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.failure.any.store(false, Ordering::Release);
        failed.take()
    }
}

fn closed() -> ClusterError {
    ClusterError::Unavailable("the cluster bus is closed".to_owned())
}

/// The publishing task: sends what the [`Bus`] hands it, one `PUBLISH` at a time, each
/// carrying everything that waited (up to [`BATCH_BYTES`]); while a posted batch's failure is
/// not taken, drops posted messages. Ends when every [`Bus`] is gone.
async fn send_batches(
    client: Client,
    channel: String,
    node: NodeId,
    mut queue: mpsc::Receiver<Outgoing>,
    failure: Arc<Failure>,
) {
    let mut waiting = Vec::new();
    let mut payload: Option<Payload> = None;
    let mut posted = 0u64;
    while let Some(first) = queue.recv().await {
        let mut dropped = 0u64;
        let mut next = Some(first);
        while let Some(outgoing) = next.take() {
            if outgoing.sent.is_none() && failure.any.load(Ordering::Acquire) {
                dropped += 1;
            } else {
                posted += u64::from(outgoing.sent.is_none());
                match &mut payload {
                    Some(payload) => payload.push(&outgoing.line),
                    None => payload = Some(Payload::new(&node, &outgoing.line)),
                }
                waiting.extend(outgoing.sent);
            }
            if payload.as_ref().is_some_and(Payload::is_full) {
                break;
            }
            next = queue.try_recv().ok();
        }
        if dropped > 0 {
            failure.count_dropped(dropped);
        }
        let Some(batch) = payload.take() else {
            continue;
        };
        let outcome = client
            .publish::<u64, _, _>(channel.as_str(), batch.0)
            .await
            .map_err(redis_error);
        if let (Err(error), true) = (&outcome, posted > 0) {
            failure.record(Failed {
                error: error.clone(),
                lost: posted,
            });
        }
        posted = 0;
        for sent in waiting.drain(..) {
            let _ = sent.send(outcome.clone());
        }
    }
}

impl Failure {
    fn record(&self, failed: Failed) {
        let mut slot = self.error.lock().unwrap_or_else(PoisonError::into_inner);
        let lost = slot.as_ref().map_or(0, |f| f.lost);
        *slot = Some(Failed {
            lost: lost + failed.lost,
            ..failed
        });
        self.any.store(true, Ordering::Release);
    }

    fn count_dropped(&self, dropped: u64) {
        let mut slot = self.error.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(failed) = slot.as_mut() {
            failed.lost += dropped;
        }
    }
}

/// The receiving side of the bus: one subscriber connection, read by [`Listener::run`].
pub struct Listener {
    /// The subscriber connection (its own: a subscribed connection runs no other command).
    subscriber: SubscriberClient,
    /// Messages, in arrival order.
    messages: tokio::sync::broadcast::Receiver<Message>,
    /// One item per reconnect of the subscriber.
    reconnects: tokio::sync::broadcast::Receiver<fred::types::config::Server>,
    /// Restores the subscription after each reconnect.
    resubscriber: JoinHandle<()>,
    /// This node: of its echoes, only the events are handed over.
    node: NodeId,
    /// Messages received and not yet handed to the handler, as of the last one handed.
    waiting: Arc<AtomicU64>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// Opens the bus of `engine`'s cluster: subscribes (Redis has the subscription when it
/// returns, so whatever is published after it reaches the listener) and returns both sides.
pub async fn connect(engine: &Engine) -> Result<(Bus, Listener), ClusterError> {
    let channel = engine.keys.bus();
    let capacity = engine.settings.bus_capacity;
    let subscriber = engine
        .settings
        .builder(&engine.url)?
        .with_performance_config(|c| c.broadcast_channel_capacity = capacity)
        .build_subscriber_client()
        .map_err(|e| ClusterError::BadUrl(e.to_string()))?;
    let messages = subscriber.message_rx();
    subscriber.init().await.map_err(redis_error)?;
    let reconnects = subscriber.reconnect_rx();
    let resubscriber = subscriber.manage_subscriptions();
    subscriber
        .subscribe(channel.as_str())
        .await
        .map_err(redis_error)?;
    // fred answers SUBSCRIBE as soon as it queues it, before it is even written: a PUBLISH
    // sent on another connection right after could reach Redis first and miss this listener.
    // Redis answers a connection's commands in order, so once this PING is answered, the
    // subscription is in place.
    subscriber
        .ping::<fred::types::Value>(None)
        .await
        .map_err(redis_error)?;
    let (publisher, queue) = mpsc::channel(QUEUE);
    let failure = Arc::<Failure>::default();
    tokio::spawn(send_batches(
        engine.client.clone(),
        channel,
        engine.node.clone(),
        queue,
        failure.clone(),
    ));
    let bus = Bus { publisher, failure };
    let listener = Listener {
        subscriber,
        messages,
        reconnects,
        resubscriber,
        node: engine.node.clone(),
        waiting: Arc::default(),
    };
    Ok((bus, listener))
}

impl Listener {
    /// How many received messages wait for the handler (read by the metrics; updated as each
    /// message is handed over).
    pub fn waiting(&self) -> Arc<AtomicU64> {
        self.waiting.clone()
    }

    /// Another receiver of the subscriber's payloads, from now on: a test sees what reached the
    /// listener's queue while the listener is not reading.
    #[cfg(test)]
    pub fn probe(&self) -> tokio::sync::broadcast::Receiver<Message> {
        self.messages.resubscribe()
    }

    /// Hands every message from another node, and this node's events, to `handle`, in the
    /// order received, until `shutdown` completes; then closes the subscriber connection.
    pub async fn run(
        mut self,
        mut handle: impl FnMut(Received),
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                message = self.messages.recv() => match message {
                    Ok(message) => {
                        self.waiting.store(self.messages.len() as u64, Ordering::Relaxed);
                        self.deliver(&message, &mut handle);
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(lost = n, "cluster bus: the listener fell behind");
                        handle(Received::Lost(n));
                    }
                    Err(RecvError::Closed) => break,
                },
                reconnect = self.reconnects.recv() => match reconnect {
                    Ok(_) | Err(RecvError::Lagged(_)) => handle(Received::Reconnected),
                    Err(RecvError::Closed) => break,
                },
            }
        }
        self.resubscriber.abort();
        let _ = self.subscriber.quit().await;
    }

    fn deliver(&self, message: &Message, handle: &mut impl FnMut(Received)) {
        let Some(payload) = message.value.as_str() else {
            tracing::warn!("cluster bus: a payload that is not text");
            return;
        };
        let Some((origin, lines)) = split(&payload) else {
            tracing::warn!("cluster bus: a payload that is not a herald message");
            return;
        };
        let own = origin == self.node.as_str();
        for line in lines.filter(|line| !own || line.starts_with(EVENT_LINE)) {
            match serde_json::from_str(line) {
                Ok(message) => handle(Received::Message(message)),
                Err(e) => tracing::warn!("cluster bus: a line that is not a message: {e}"),
            }
        }
    }
}
