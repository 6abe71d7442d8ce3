//! The cluster engine: the state that many herald nodes share through one Redis, so that behind
//! a load balancer they behave as one Pusher server. The server uses it through
//! `adapter::clustered`.
//!
//! | module | owns |
//! |---|---|
//! | [`keys`] | the key layout (one prefix per cluster, per app below it) |
//! | `scripts` | the Lua scripts, the only writers of shared state; each returns the transition it caused |
//! | [`channel`] | occupancy and presence: join/leave, member_join/member_leave, the channel queries |
//! | [`user`] | signed-in users across nodes: user_online/user_offline, who is online |
//! | [`node`] | node ids, heartbeats, reaping dead nodes exactly once, restoring a node Redis forgot |
//! | [`bus`] | publish/subscribe of what every node must deliver locally |
//! | [`cache`] | the last event of each cache channel |
//! | [`connections`] | the per-app connection limit across nodes |
//! | [`webhooks`] | the webhook queue: events kept until delivered, leased to the node delivering them |
//! | [`grace`] | `channel_vacated`/`member_removed` held for the grace period, cancelled by an arrival on any node |
//!
//! An [`Engine`] is one node's handle: a Redis connection, the key prefix and this node's id.
//! Every change goes through a script that runs atomically in Redis and answers with the
//! transition it caused (0 → 1, 1 → 0), so exactly one caller in the cluster learns of each
//! `channel_occupied`, `member_added`, `online` and their opposites; every count a node adds is
//! also recorded under its node id, so the share of a node that died is replayed as departures
//! by exactly one other node. Queries read the shared state in one round trip: no node ever
//! waits for other nodes' answers or counts them.
//!
//! # The Redis client: fred
//!
//! [`fred`] (10.x) rather than redis-rs (1.x). Both reconnect and both can resubscribe pub/sub
//! channels after a reconnect (redis-rs's `ConnectionManager` only over RESP3, with a push
//! channel). fred was chosen for what the cluster needs around that: a `SubscriberClient` that
//! tracks its channels and resubscribes through `manage_subscriptions`; an explicit reconnect
//! policy (here a constant delay, retried forever); a reconnect event stream (`reconnect_rx`),
//! which tells the bus listener when messages may have been missed; per-client command timeouts
//! and `max_command_attempts`, which let us refuse to replay a script whose connection dropped
//! (a replayed `HINCRBY` would count a join twice); and `Script::evalsha_with_reload`, which
//! reloads scripts after a restarted Redis forgot them. Its one sharp edge: pub/sub messages
//! reach us through a bounded broadcast channel that drops the oldest when a reader lags; the
//! bus listener reports such a loss ([`bus::Received::Lost`]) instead of hiding it, and its
//! capacity is a setting.
//!
//! # What this module must not do
//!
//! It knows no sockets, HTTP, actix or connections: it never imports `ws`, `http_api`,
//! `connection` or `fanout`. It stores names as text (the caller validated them) and never
//! delivers anything itself: the bus hands messages to a handler, and transitions are returned
//! to the caller, which decides about webhooks and presence events.

pub mod bus;
pub mod cache;
pub mod channel;
pub mod connections;
pub mod console;
pub mod grace;
pub mod keys;
pub mod node;
mod scripts;
pub mod user;
pub mod webhooks;

/// The Redis harness of the cluster tests (the engine's and the server's, in `tests/`).
#[doc(hidden)]
pub mod testing;
#[cfg(test)]
mod tests;

use std::time::Duration;

use fred::clients::Client;
use fred::error::{Error as RedisError, ErrorKind};
use fred::interfaces::ClientLike;
use fred::types::config::{Config, ReconnectPolicy};
use fred::types::Builder;

pub use keys::{KeyPrefix, Keys};
pub use node::NodeId;

/// What went wrong with the cluster engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// Redis cannot be reached, or did not answer within the command timeout. Nothing is
    /// known about the outcome; the server answers such calls with 503.
    #[error("the cluster engine (Redis) is unavailable: {0}")]
    Unavailable(String),
    /// The cluster declared this node dead (its heartbeat expired and another node reaped it):
    /// its connections must close (4200) and it must rejoin with a new id.
    #[error("this node was declared dead by the cluster")]
    DeclaredDead,
    /// Redis has no record of this node: it restarted without its data. The node registers
    /// again and reasserts its local state.
    #[error("Redis has no record of this node")]
    Forgotten,
    /// The Redis URL could not be used.
    #[error("invalid Redis URL: {0}")]
    BadUrl(String),
    /// The engine's settings contradict each other.
    #[error("invalid cluster settings: {0}")]
    BadSettings(&'static str),
    /// Redis answered something the scripts never return (a bug, or a foreign writer).
    #[error("unexpected answer from Redis: {0}")]
    Reply(String),
}

/// Timings and sizes of the engine. These are the engine's own knobs, not server configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// How often a node renews its heartbeat (and should reap). Default 1 s.
    pub heartbeat_interval: Duration,
    /// How long a heartbeat lives: a node silent this long is dead. Default 5 s.
    pub node_timeout: Duration,
    /// The longest a command may take, waiting for a reconnect included, before it fails with
    /// [`ClusterError::Unavailable`]. Default 1 s.
    pub command_timeout: Duration,
    /// The delay between reconnect attempts (retried forever). Default 100 ms.
    pub reconnect_delay: Duration,
    /// How many records of a dead node one reap script replays. Default 500.
    pub reap_batch: usize,
    /// How many bus messages may wait for the listener before the oldest are lost. The queue is
    /// allocated up front, about 160 bytes a slot (2.6 MB by default). Default 16,384.
    pub bus_capacity: usize,
    /// How long a reaped node's id is remembered, so a partitioned node learns it was declared
    /// dead when it comes back. Default 24 h.
    pub tombstone_ttl: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            heartbeat_interval: Duration::from_secs(1),
            node_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(1),
            reconnect_delay: Duration::from_millis(100),
            reap_batch: 500,
            bus_capacity: 16_384,
            tombstone_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

impl Settings {
    /// Checks that the settings fit together.
    pub fn validate(&self) -> Result<(), ClusterError> {
        let bad = |why| Err(ClusterError::BadSettings(why));
        if self.heartbeat_interval.is_zero() || self.command_timeout.is_zero() {
            return bad("the heartbeat interval and the command timeout must be more than 0");
        }
        if self.node_timeout < self.heartbeat_interval * 2 {
            return bad("the node timeout must be at least two heartbeat intervals");
        }
        if self.reap_batch == 0 || self.bus_capacity == 0 {
            return bad("the reap batch and the bus capacity must be at least 1");
        }
        if self.tombstone_ttl < self.node_timeout {
            return bad("dead nodes must be remembered at least as long as the node timeout");
        }
        Ok(())
    }

    /// A client builder for `url` with these timings.
    fn builder(&self, url: &str) -> Result<Builder, ClusterError> {
        // fred would take any scheme as plain TCP; TLS (`rediss://`) is not built in. The URL
        // is not repeated: it may hold a password.
        if !url.starts_with("redis://") {
            return Err(ClusterError::BadUrl(
                "expected redis://[user:password@]host[:port][/db]".into(),
            ));
        }
        let config = Config::from_url(url).map_err(|e| ClusterError::BadUrl(e.to_string()))?;
        let mut builder = Builder::from_config(config);
        let timeout = self.command_timeout;
        builder
            .with_connection_config(|c| {
                c.connection_timeout = timeout;
                c.internal_command_timeout = timeout;
                // A script whose connection dropped may have run: never send it again.
                c.max_command_attempts = 1;
            })
            .with_performance_config(|c| c.default_command_timeout = timeout)
            .set_policy(ReconnectPolicy::new_constant(
                0,
                millis(self.reconnect_delay),
            ));
        Ok(builder)
    }
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// One node's handle on the cluster's shared state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Engine {
    /// Commands and scripts (one multiplexed connection; fred pipelines concurrent callers).
    client: Client,
    /// Key names and the prefix the scripts get.
    keys: Keys,
    /// This node, for this boot.
    node: NodeId,
    /// Timings.
    settings: Settings,
    /// `url`, for the bus's own connection.
    url: String,
}

impl Engine {
    /// Connects to Redis at `url` and registers a new node (fresh id) under `prefix`.
    /// Fails with [`ClusterError::Unavailable`] if Redis does not answer.
    pub async fn connect(
        url: &str,
        prefix: KeyPrefix,
        settings: Settings,
    ) -> Result<Engine, ClusterError> {
        settings.validate()?;
        let client = settings
            .builder(url)?
            .build()
            .map_err(|e| ClusterError::BadUrl(e.to_string()))?;
        client.init().await.map_err(redis_error)?;
        scripts::load_all(&client).await?;
        let engine = Engine {
            client,
            keys: Keys::new(prefix),
            node: NodeId::generate(),
            settings,
            url: url.to_owned(),
        };
        engine.register().await?;
        Ok(engine)
    }

    /// This node's id.
    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// The key layout.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The prefix and this node, the first two arguments of the node's scripts.
    fn node_args(&self) -> Vec<scripts::Value> {
        vec![
            scripts::arg(self.keys.prefix().as_str()),
            scripts::arg(self.node.as_str()),
        ]
    }

    /// Closes the connection (nothing is cleaned up: see [`Engine::retire`]).
    pub async fn quit(&self) {
        let _ = self.client.quit().await;
    }
}

/// The engine's reading of a client error.
fn redis_error(e: RedisError) -> ClusterError {
    let details = e.details();
    if details.contains("HERALD_DEAD") {
        return ClusterError::DeclaredDead;
    }
    if details.contains("HERALD_UNKNOWN") {
        return ClusterError::Forgotten;
    }
    match e.kind() {
        ErrorKind::IO
        | ErrorKind::Timeout
        | ErrorKind::Canceled
        | ErrorKind::Backpressure
        | ErrorKind::Routing => ClusterError::Unavailable(e.to_string()),
        // fred's answer to a command sent while it has no connection (with one attempt per
        // command, it does not wait for the reconnect); LOADING and BUSY: Redis is starting or
        // stuck in a script.
        _ if ["Failed to route command", "LOADING", "BUSY"]
            .iter()
            .any(|s| details.contains(s)) =>
        {
            ClusterError::Unavailable(e.to_string())
        }
        _ => ClusterError::Reply(e.to_string()),
    }
}
