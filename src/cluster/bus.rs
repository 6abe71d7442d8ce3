//! The cluster bus: what one node publishes for every node to deliver locally — an event on a
//! channel, an event to a user, terminate a user's connections, a watchlist change, an entry of
//! a watched app's debug console feed.
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
//! `<origin node id, 16 hex digits> <JSON>`: the origin comes first so a node drops its own echo
//! without parsing anything. The JSON is [`BusMessage`] in serde's external tagging, compact:
//!
//! ```text
//! 3f2a9c0d1b4e5f60 {"event":{"app":"1","channel":"chat","event":"msg","data":"{\"a\":1}","except":"123.456"}}
//! 3f2a9c0d1b4e5f60 {"user_event":{"app":"1","user":"u1","event":"e","data":"x"}}
//! 3f2a9c0d1b4e5f60 {"terminate_user":{"app":"1","user":"u1"}}
//! 3f2a9c0d1b4e5f60 {"watchlist":{"app":"1","user":"u1","online":true}}
//! 3f2a9c0d1b4e5f60 {"console":{"app":"1","entry":"{\"time_ms\":1,\"node\":\"3f2a9c0d1b4e5f60\",\"kind\":\"cache_miss\",\"channel\":\"cache-a\"}"}}
//! ```
//!
//! `except`, `user_id` and `info` are left out when absent, `cache` when false.
//!
//! # Order
//!
//! Redis delivers a channel's messages to a subscriber in the order it received the
//! `PUBLISH`es, and the [`Listener`] hands them to one handler, in that order, on one task —
//! never a task per message. Messages that arrive while the handler is busy wait in a bounded
//! queue ([`super::Settings::bus_capacity`]); if it overflows, the oldest are lost and the
//! handler is told how many ([`Received::Lost`]). After a reconnect the subscription is restored
//! by fred and the handler is told ([`Received::Reconnected`]): messages published while the
//! connection was down are lost, as with any pub/sub. Measured on the 2-core test machine
//! (test `the_bus_delivers_again_after_redis_restarts`, reconnect delay 100 ms): messages
//! reach the listener again 120–200 ms after a restarted Redis answers.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use fred::clients::{Client, SubscriberClient};
use fred::interfaces::{ClientLike, EventInterface, PubsubInterface};
use fred::types::Message;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use super::node::{NodeId, NODE_ID_LEN};
use super::{redis_error, ClusterError, Engine};

/// What one node asks every other node to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BusMessage {
    /// Deliver an event to the channel's local subscribers.
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
    /// Tell the channel's local subscribers of a new presence member.
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
    },
    /// Tell the channel's local subscribers that a presence member left.
    MemberRemoved {
        /// The app id.
        app: String,
        /// The presence channel.
        channel: String,
        /// The member.
        user: String,
    },
    /// Deliver an event to the user's local connections (`#server-to-user-<id>`).
    UserEvent {
        /// The app id.
        app: String,
        /// The user id.
        user: String,
        /// The event name.
        event: String,
        /// The data string, delivered verbatim.
        data: String,
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

/// What the listener hands its handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A message from another node.
    Message(BusMessage),
    /// This many messages were lost: the handler fell behind by more than the bus capacity.
    Lost(u64),
    /// The subscriber connection came back after a loss of connection; messages published in
    /// between are lost.
    Reconnected,
}

/// Encodes a message as it travels: origin, a space, JSON.
pub fn encode(origin: &NodeId, message: &BusMessage) -> String {
    let json = serde_json::to_string(message).unwrap_or_default();
    format!("{origin} {json}")
}

/// Decodes a payload: its origin and message, `None` if it is not one of ours.
pub fn decode(payload: &str) -> Option<(&str, BusMessage)> {
    let (origin, json) = payload.split_at_checked(NODE_ID_LEN)?;
    let json = json.strip_prefix(' ')?;
    Some((origin, serde_json::from_str(json).ok()?))
}

/// The publishing side of the bus. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Bus {
    /// The engine's command connection (publishing is a command).
    client: Client,
    /// `P:bus`.
    channel: String,
    /// This node, the origin of what it publishes.
    node: NodeId,
}

impl Bus {
    /// Publishes `message` to every node; returns how many subscribers Redis delivered it to
    /// (this node's own listener included).
    pub async fn publish(&self, message: &BusMessage) -> Result<u64, ClusterError> {
        let payload = encode(&self.node, message);
        self.client
            .publish::<u64, _, _>(self.channel.as_str(), payload)
            .await
            .map_err(redis_error)
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
    /// This node, whose echoes are dropped.
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

/// Opens the bus of `engine`'s cluster: subscribes (this has completed when it returns, so
/// whatever is published after it reaches the listener) and returns both sides.
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
    let bus = Bus {
        client: engine.client.clone(),
        channel,
        node: engine.node.clone(),
    };
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

    /// Hands every message from another node to `handle`, in the order received, until
    /// `shutdown` completes; then closes the subscriber connection.
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
        if payload.as_bytes().get(..NODE_ID_LEN) == Some(self.node.as_str().as_bytes()) {
            return;
        }
        match decode(&payload) {
            Some((_, message)) => handle(Received::Message(message)),
            None => tracing::warn!("cluster bus: a payload that is not a herald message"),
        }
    }
}
