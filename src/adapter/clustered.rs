//! A cluster node's side of the [`Adapter`](super::Adapter): this node's registries deliver to
//! its own connections as on a single process, and the cluster engine (Redis) holds what the
//! nodes share and decides the transitions.
//!
//! - **Subscriptions** change Redis first (`member_join` may refuse a full presence channel;
//!   then `join`), then the local registry, which queues `subscription_succeeded` with the
//!   members of every node: the registry follows each presence channel's members on all nodes
//!   (its *mirror*, started from Redis's list) and sends a member event only if it changes
//!   them. The one node whose script saw a transition reports its webhook (`channel_occupied`,
//!   `member_added`, and on leaving `member_removed`, `channel_vacated`); the member scripts
//!   themselves announce the member event to the other nodes over the bus (so the nodes hear
//!   a channel's member events in the order the cluster decided them), and each happens once
//!   in the cluster.
//! - **Webhooks** go through the cluster's queue in Redis (leased to the node delivering them,
//!   removed once settled), and `channel_vacated`/`member_removed` wait out the grace period
//!   there, cancelled by a return on any node.
//! - **Publications** (API and client events) are published on the bus (in one `PUBLISH` with
//!   whatever else the node hands the bus meanwhile: `cluster::bus`), and every node, this one
//!   included, delivers them to its connections as the bus brings them (the excluded socket id
//!   travels with them): so every node delivers them in one order, Redis's, and a publisher
//!   that goes round the nodes keeps its order everywhere. During an outage they reach this
//!   node's connections only. Cache channels also keep their
//!   last event in Redis, where a subscriber on any node finds it.
//! - **Sign-ins** count a user's connections on all nodes: watchlist `online` for the first,
//!   `offline` for the last, to watchers on every node.
//! - **Queries** (`/channels`, `/channels/{name}`, `/users`) read Redis in one round trip.
//! - **Liveness** ([`Clustered::run`]): a heartbeat every interval, the reaping of dead nodes
//!   (their departures become presence events, webhooks and `offline` here, once), the bus
//!   listener, and recovery: after an outage the node reasserts what it holds (no transition is
//!   reported twice); if Redis forgot it, it registers again first; if the cluster declared it
//!   dead, it closes its connections with 4200 and rejoins as a new node.
//!
//! While Redis is unreachable, connections stay and local delivery goes on; changes are kept
//! locally and reasserted when Redis is back; what needs the cluster's answer fails with
//! [`Unavailable`] (the HTTP API's 503). The outage is logged once, and once when it ends.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Duration;

use serde_json::value::RawValue;
use tokio::time::Instant;

use super::{local, Publication, SigningIn, Unavailable};
use crate::app::{App, Apps};
use crate::channel::{
    CachedEvent, Change, ChannelInfo, Joining, MemberEvent, Reporter, SubscribeError, Unsubscribed,
};
use crate::cluster::bus::{self, Bus, BusMessage, Listener, Received};
use crate::cluster::cache::Cached;
use crate::cluster::channel::MemberJoin;
use crate::cluster::grace::Departing;
use crate::cluster::node::{Beat, Departure, Held};
use crate::cluster::{ClusterError, Engine, KeyPrefix, Settings};
use crate::config::{ClusterConfig, WebhookConfig};
use crate::connection::Frame;
use crate::protocol::{ChannelKind, ChannelName, CloseCode, ServerMessage, SocketId, UserId};
use crate::shutdown::Shutdown;
use crate::webhook::{Queued, Receipt, WebhookEvent};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// How often a node looks for held departures whose grace period is over, and for webhook
/// events to deliver.
const CLAIM_EVERY: Duration = Duration::from_millis(100);
/// Most departures claimed in one round trip.
const CLAIM_BATCH: usize = 100;
/// Console entries waiting to be relayed to the other nodes; past this they are dropped.
const CONSOLE_RELAY_QUEUE: usize = 4096;

/// The webhook plumbing of a cluster node: what the apps emit comes in, what is claimed from
/// the cluster's queue goes to the worker.
#[derive(Debug)]
pub struct Webhooks {
    /// The apps' webhook events (their `Hooks` send here on a cluster node).
    pub emitted: mpsc::Receiver<Queued>,
    /// The node's webhook worker.
    pub worker: mpsc::Sender<Queued>,
}

/// A webhook event as the cluster's queue keeps it.
#[derive(Debug, Serialize, Deserialize)]
struct QueuedEvent {
    /// Makes the text unique (two equal events are two entries).
    id: String,
    /// The app id.
    app: String,
    /// When it happened (the body's `time_ms`).
    time_ms: u64,
    /// The event.
    event: WebhookEvent,
}

/// Ticks every [`CLAIM_EVERY`]; a late tick is delayed, not bunched with the next.
fn claim_ticks() -> tokio::time::Interval {
    let mut tick = tokio::time::interval(CLAIM_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

/// What connections hear when their node rejoins the cluster.
const REJOINING: &str = "Server is rejoining its cluster; reconnect";

/// A cluster node: the engine, the bus and their health.
pub struct Clustered {
    /// Where and how to connect again (rejoining as a new node).
    url: String,
    prefix: KeyPrefix,
    settings: Settings,
    /// This node's engine and bus; replaced when the node rejoins with a new id.
    link: RwLock<Arc<Link>>,
    /// The bus listener of the current link, until the listening task takes it.
    listener: Mutex<Option<Listener>>,
    /// Bumped when the link is replaced, so the listening task takes the new listener.
    generation: tokio::sync::watch::Sender<u64>,
    health: Health,
    /// The webhooks' grace period (`webhooks.vacated_delay`), held in Redis.
    vacated_delay: Duration,
    /// The webhook events this node claimed and has not settled; their leases are renewed
    /// with each heartbeat (a lease lasts the node timeout: as long as a node may be silent
    /// before it counts as dead).
    leased: Mutex<Vec<Weak<Receipt>>>,
    counts: Counts,
    /// Changes to the shared state hold it shared; a resync holds it alone, so the local state
    /// it snapshots is what Redis ends up with.
    gate: tokio::sync::RwLock<()>,
}

impl std::fmt::Debug for Clustered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clustered")
            .field("node", &self.link().engine.node().as_str())
            .field("available", &self.is_available())
            .finish_non_exhaustive()
    }
}

struct Link {
    engine: Engine,
    bus: Bus,
}

/// Whether Redis answers, and whether this node has changes Redis has not heard of.
#[derive(Debug)]
struct Health {
    up: AtomicBool,
    dirty: AtomicBool,
    /// Times Redis became unreachable.
    outages: AtomicU64,
}

/// What a cluster node counts, for the metrics ([`Clustered::stats`]).
#[derive(Debug, Default)]
struct Counts {
    bus_received: AtomicU64,
    bus_lost: AtomicU64,
    bus_reconnects: AtomicU64,
    nodes_reaped: AtomicU64,
    departures: AtomicU64,
    resyncs: AtomicU64,
    rejoins: AtomicU64,
    /// Messages waiting for the current bus listener.
    bus_waiting: Mutex<Arc<AtomicU64>>,
}

/// A cluster node's counts at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ClusterStats {
    /// Redis answers (as of the last command or heartbeat).
    pub redis_up: bool,
    /// Times Redis became unreachable.
    pub outages: u64,
    /// Messages the bus brought (other nodes' messages, and this node's own events).
    pub bus_received: u64,
    /// Messages lost because this node's listener fell behind.
    pub bus_lost: u64,
    /// Times the bus connection came back after a loss.
    pub bus_reconnects: u64,
    /// Messages received and waiting for the listener.
    pub bus_waiting: u64,
    /// Dead nodes this node reaped.
    pub nodes_reaped: u64,
    /// Departures of dead nodes this node replayed.
    pub departures: u64,
    /// Times this node reasserted its state after an outage or a Redis restart.
    pub resyncs: u64,
    /// Times this node was declared dead and rejoined.
    pub rejoins: u64,
}

impl Health {
    fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// A change Redis did not hear of: reasserted once it answers.
    fn missed(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    /// A command failed. Logged once per outage.
    fn failed(&self, error: &ClusterError) {
        self.missed();
        match error {
            ClusterError::Unavailable(_) => {
                if self.up.swap(false, Ordering::AcqRel) {
                    self.outages.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        %error,
                        "cluster: Redis is unreachable; connections stay and local delivery goes \
                         on, API calls that need the cluster answer 503 until it is back"
                    );
                }
            }
            ClusterError::DeclaredDead | ClusterError::Forgotten => {
                tracing::debug!(%error, "cluster: a change was refused; the heartbeat recovers");
            }
            _ => tracing::warn!(%error, "cluster: a change failed"),
        }
    }

    /// Redis answered the heartbeat.
    fn answered(&self) {
        if !self.up.swap(true, Ordering::AcqRel) {
            tracing::info!("cluster: Redis is reachable again");
        }
    }
}

fn unavailable() -> Unavailable {
    Unavailable("Redis is unreachable".into())
}

fn refused(error: ClusterError) -> Unavailable {
    Unavailable(error.to_string())
}

impl Clustered {
    /// Connects to Redis, registers this node and subscribes to the bus. Fails with a message
    /// naming the setting when the settings are bad or Redis does not answer.
    pub async fn connect(
        config: &ClusterConfig,
        webhooks: &WebhookConfig,
    ) -> Result<Clustered, String> {
        let url = config
            .redis_url
            .clone()
            .ok_or("cluster.redis_url: not set")?;
        let prefix =
            KeyPrefix::parse(&config.key_prefix).map_err(|e| format!("cluster.key_prefix: {e}"))?;
        let settings = Settings {
            heartbeat_interval: config.heartbeat_interval,
            node_timeout: config.node_timeout,
            ..Settings::default()
        };
        let (link, listener) = Link::connect(&url, &prefix, &settings)
            .await
            .map_err(|e| format!("cluster.redis_url: {e}"))?;
        let number = link
            .engine
            .number()
            .await
            .map_err(|e| format!("cluster.redis_url: {e}"))?;
        SocketId::set_node(number);
        tracing::info!(
            node = %link.engine.node(),
            number,
            prefix = %prefix,
            "joined the cluster"
        );
        Ok(Clustered {
            url,
            prefix,
            settings,
            link: RwLock::new(Arc::new(link)),
            listener: Mutex::new(Some(listener)),
            generation: tokio::sync::watch::channel(0).0,
            health: Health {
                up: AtomicBool::new(true),
                dirty: AtomicBool::new(false),
                outages: AtomicU64::new(0),
            },
            counts: Counts::default(),
            vacated_delay: webhooks.vacated_delay,
            leased: Mutex::new(Vec::new()),
            gate: tokio::sync::RwLock::new(()),
        })
    }

    fn link(&self) -> Arc<Link> {
        self.link
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether Redis answers (as of the last command or heartbeat).
    pub fn is_available(&self) -> bool {
        self.health.is_up()
    }

    /// The node's counts now.
    pub fn stats(&self) -> ClusterStats {
        let c = &self.counts;
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let waiting = c
            .bus_waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .load(Ordering::Relaxed);
        ClusterStats {
            redis_up: self.health.is_up(),
            outages: load(&self.health.outages),
            bus_received: load(&c.bus_received),
            bus_lost: load(&c.bus_lost),
            bus_reconnects: load(&c.bus_reconnects),
            bus_waiting: waiting,
            nodes_reaped: load(&c.nodes_reaped),
            departures: load(&c.departures),
            resyncs: load(&c.resyncs),
            rejoins: load(&c.rejoins),
        }
    }

    pub(super) async fn open_connection(&self, app: &App) -> bool {
        let max = app.config.max_connections;
        if max == 0 {
            return true;
        }
        let _gate = self.gate.read().await;
        if !self.health.is_up() {
            // Admitted on this node's count alone; the cluster's is reasserted later.
            self.health.missed();
            return true;
        }
        match self
            .link()
            .engine
            .connection_open(&app.config.id, max)
            .await
        {
            Ok(admitted) => admitted,
            Err(e) => {
                self.health.failed(&e);
                true
            }
        }
    }

    pub(super) async fn close_connection(&self, app: &App) {
        if app.config.max_connections == 0 {
            return;
        }
        let _gate = self.gate.read().await;
        if !self.health.is_up() {
            self.health.missed();
            return;
        }
        if let Err(e) = self.link().engine.connection_close(&app.config.id).await {
            self.health.failed(&e);
        }
    }

    pub(super) async fn subscribe(
        &self,
        app: &App,
        name: &ChannelName,
        joining: Joining<'_>,
    ) -> Result<(), SubscribeError> {
        let _gate = self.gate.read().await;
        let link = self.link();
        let engine = &link.engine;
        let app_id = app.config.id.as_str();
        let member = joining.member.clone();
        let mut asked = self.health.is_up();
        let mut member_added = false;
        let mut member_joined = false;
        if let (Some((user, info)), true) = (&member, asked) {
            let max = app.config.max_presence_members;
            let info = info.as_deref().map(RawValue::get);
            match engine
                .member_join(app_id, name.as_str(), user.as_str(), info, max)
                .await
            {
                Ok(MemberJoin::Full { .. }) => {
                    return Err(SubscribeError::PresenceFull {
                        channel: name.to_string(),
                        max,
                    })
                }
                Ok(joined) => {
                    member_joined = true;
                    member_added = matches!(joined, MemberJoin::Added { .. });
                    // What this node's subscribers are told follows the channel's mirror of
                    // the cluster's members, started from the cluster's list if needed.
                    if app.channels.mirror_begin(name) {
                        match engine.members(app_id, name.as_str()).await {
                            Ok(members) => app.channels.mirror_start(name, members_of(members)),
                            Err(e) => {
                                self.health.failed(&e);
                                app.channels.mirror_abandon(name);
                            }
                        }
                    }
                }
                Err(e) => {
                    self.health.failed(&e);
                    asked = false;
                }
            }
        }
        let mut occupied = false;
        let mut joined = false;
        let mut count = None;
        if asked {
            match engine.join(app_id, name.as_str()).await {
                Ok(j) => {
                    occupied = j.occupied;
                    joined = true;
                    count = Some((j.subscription_count, j.seq));
                }
                Err(e) => self.health.failed(&e),
            }
            if name.is_cache() && app.channels.info(name).cache.is_none() {
                self.fill_cache(engine, app, name).await;
            }
        } else {
            self.health.missed();
        }
        if let Err(e) = app.channels.subscribe(name, joining) {
            // Undo what Redis was told: the connection is not subscribed after all (a member
            // removed again is announced to the other nodes by the script; the mirror here
            // may hold it from the cluster's list).
            if let (Some((user, _)), true) = (&member, member_joined) {
                let left = engine
                    .member_leave(app_id, name.as_str(), user.as_str())
                    .await;
                if left.is_ok_and(|l| l.removed) {
                    app.channels
                        .member_event(name, MemberEvent::Removed(user.clone()), None);
                }
            }
            if joined {
                let _ = engine.leave(app_id, name.as_str()).await;
            }
            return Err(e);
        }
        if occupied {
            self.transition(engine, app, name, Change::Occupied).await;
        }
        if let Some((n, seq)) = count {
            self.count(&link.bus, app, name, n, seq).await;
        }
        if let (Some((user, _)), true) = (&member, member_added) {
            // The registry told this node's subscribers (through the mirror); the other nodes
            // heard it over the bus, from the script that added the member.
            self.transition(engine, app, name, Change::MemberAdded(user))
                .await;
        }
        Ok(())
    }

    /// Reports a transition the cluster decided to the app's webhooks, with the grace period
    /// held in Redis: `channel_vacated` / `member_removed` wait there for it (sent by whichever
    /// node claims them, see [`Clustered::send_departures`]), and `channel_occupied` /
    /// `member_added` cancel a held departure of the same channel or member, in which case
    /// neither is sent. Without Redis, this node's worker holds them (its own grace period).
    /// The console hears of every transition at once (no grace period: it shows what happened).
    async fn transition(&self, engine: &Engine, app: &App, name: &ChannelName, change: Change<'_>) {
        app.console.report_change(name.as_str(), change);
        let (user, arriving) = match change {
            Change::Occupied => (None, true),
            Change::Vacated => (None, false),
            Change::MemberAdded(user) => (Some(user), true),
            Change::MemberRemoved(user) => (Some(user), false),
            _ => return app.hooks.report(name, change),
        };
        let kind = match (user, arriving) {
            (None, true) => "channel_occupied",
            (None, false) => "channel_vacated",
            (Some(_), true) => "member_added",
            (Some(_), false) => "member_removed",
        };
        if !app.hooks.wants_transition(kind) {
            return;
        }
        let departing = Departing {
            app: app.config.id.clone(),
            channel: name.to_string(),
            user: user.map(ToString::to_string),
        };
        let held = match arriving {
            true => engine
                .cancel_departure(&departing)
                .await
                .map(|cancelled| !cancelled),
            false => engine
                .hold_departure(&departing, self.vacated_delay)
                .await
                .map(|()| false),
        };
        match held {
            Ok(false) => {}
            Ok(true) => app.hooks.report(name, change),
            Err(e) => {
                self.health.failed(&e);
                app.hooks.report(name, change);
            }
        }
    }

    /// Sends the held departures whose grace period is over, every [`CLAIM_EVERY`], whichever
    /// node held them.
    async fn send_departures(&self, apps: &Apps) {
        let mut tick = claim_ticks();
        loop {
            let link = self.next_claim(&mut tick).await;
            loop {
                let due = match link.engine.due_departures(CLAIM_BATCH).await {
                    Ok(due) => due,
                    Err(e) => {
                        self.health.failed(&e);
                        break;
                    }
                };
                let more = due.len() == CLAIM_BATCH;
                for d in due {
                    let Some((app, name)) = app_channel(apps, &d.app, &d.channel) else {
                        continue;
                    };
                    match d.user.map(|u| UserId::parse(&u, usize::MAX)) {
                        None => app.hooks.report_after_grace(&name, Change::Vacated),
                        Some(Ok(user)) => app
                            .hooks
                            .report_after_grace(&name, Change::MemberRemoved(&user)),
                        Some(Err(_)) => {}
                    }
                }
                if !more {
                    break;
                }
            }
        }
    }

    /// Fills the local cache of a cache channel from the cluster's, if it has an event.
    async fn fill_cache(&self, engine: &Engine, app: &App, name: &ChannelName) {
        match engine.cached(&app.config.id, name.as_str()).await {
            Ok(Some((cached, left))) => {
                let age = app.config.cache_ttl.saturating_sub(left);
                let now = Instant::now();
                app.channels.store_cache(
                    name,
                    cached_event(name, cached, now.checked_sub(age).unwrap_or(now)),
                );
            }
            Ok(None) => {}
            Err(e) => self.health.failed(&e),
        }
    }

    /// Publishes on the bus; a failure is an outage (the message is lost for the other nodes).
    async fn announce(&self, bus: &Bus, message: &BusMessage) -> bool {
        match bus.publish(message).await {
            Ok(_) => true,
            Err(e) => {
                self.health.failed(&e);
                false
            }
        }
    }

    /// Removes the connection from the channel here and in the cluster; what it changed here,
    /// if it was subscribed.
    pub(super) async fn unsubscribe(
        &self,
        app: &App,
        name: &ChannelName,
        socket_id: &SocketId,
    ) -> Option<Unsubscribed> {
        // The gate first: a resync must not see the local change before Redis hears of it.
        let _gate = self.gate.read().await;
        let left = app.channels.unsubscribe(name, socket_id)?;
        let link = self.link();
        let engine = &link.engine;
        let app_id = app.config.id.as_str();
        if !self.health.is_up() {
            self.health.missed();
            self.member_left_locally(app, name, &left);
            return Some(left);
        }
        if let Some(user) = &left.member {
            match engine
                .member_leave(app_id, name.as_str(), user.as_str())
                .await
            {
                Ok(l) if l.removed => self.member_removed(engine, app, name, user).await,
                Ok(_) => {}
                Err(e) => {
                    self.health.failed(&e);
                    self.member_left_locally(app, name, &left);
                }
            }
        }
        match engine.leave(app_id, name.as_str()).await {
            Ok(l) if l.vacated => self.transition(engine, app, name, Change::Vacated).await,
            Ok(l) => {
                self.count(&link.bus, app, name, l.subscription_count, l.seq)
                    .await;
            }
            Err(e) => self.health.failed(&e),
        }
        Some(left)
    }

    /// The channel's subscription count changed (by this node, or by a dead one this node
    /// reaped): its subscribers here and on the other nodes get it
    /// (`pusher_internal:subscription_count`, throttled by each node as on a single one) unless
    /// they already had a newer count (`seq`, see `Joined::seq`), and this node reports the
    /// webhook.
    async fn count(&self, bus: &Bus, app: &App, name: &ChannelName, n: u64, seq: u64) {
        if !app.config.subscription_count || name.kind() == ChannelKind::Presence {
            return;
        }
        let n = usize_of(n);
        if app.channels.count_is(name, n, seq, true) {
            app.hooks.report(name, Change::Count(n));
        }
        let message = BusMessage::Count {
            app: app.config.id.clone(),
            channel: name.to_string(),
            subscription_count: n as u64,
            seq,
        };
        self.announce(bus, &message).await;
    }

    /// Without the cluster's answer, this node's subscribers hear of a member whose last
    /// connection here left (they cannot know of its connections elsewhere).
    fn member_left_locally(&self, app: &App, name: &ChannelName, left: &Unsubscribed) {
        let Some(user) = &left.member_left_node else {
            return;
        };
        if app.channels.is_mirrored(name) {
            app.channels
                .member_event(name, MemberEvent::Removed(user.clone()), None);
        } else {
            app.channels
                .publish(name, &member_removed_frame(name, user), None, None);
        }
    }

    /// A member's last connection in the cluster left: this node's subscribers and the
    /// webhook hear of it, once (the other nodes heard it from the script that removed it, or
    /// from a reaping node: [`Clustered::depart`]).
    async fn member_removed(&self, engine: &Engine, app: &App, name: &ChannelName, user: &UserId) {
        app.channels
            .member_event(name, MemberEvent::Removed(user.clone()), None);
        self.transition(engine, app, name, Change::MemberRemoved(user))
            .await;
    }

    pub(super) async fn sign_in(&self, app: &App, s: SigningIn<'_>) {
        let _gate = self.gate.read().await;
        let link = self.link();
        let engine = &link.engine;
        let app_id = app.config.id.as_str();
        let mut came_online = false;
        let mut statuses = None;
        if self.health.is_up() {
            match engine.user_online(app_id, s.user.as_str()).await {
                Ok(signed_in) => came_online = signed_in.came_online,
                Err(e) => self.health.failed(&e),
            }
            let watched: Vec<&str> = s.watchlist.iter().map(UserId::as_str).collect();
            if !watched.is_empty() && app.config.watchlist_events {
                match engine.online(app_id, &watched).await {
                    Ok(online) => statuses = Some(online),
                    Err(e) => self.health.failed(&e),
                }
            }
        } else {
            self.health.missed();
        }
        local::sign_in(app, s, statuses.as_deref());
        if came_online && app.config.watchlist_events {
            self.watchlist(&link.bus, app, s.user, true).await;
        }
    }

    pub(super) async fn sign_out(
        &self,
        app: &App,
        user: &UserId,
        socket_id: &SocketId,
        watchlist: &[UserId],
    ) {
        let _gate = self.gate.read().await;
        local::sign_out(app, user, socket_id, watchlist);
        let link = self.link();
        if !self.health.is_up() {
            self.health.missed();
            return;
        }
        match link
            .engine
            .user_offline(&app.config.id, user.as_str())
            .await
        {
            Ok(out) if out.went_offline && app.config.watchlist_events => {
                self.watchlist(&link.bus, app, user, false).await;
            }
            Ok(_) => {}
            Err(e) => self.health.failed(&e),
        }
    }

    /// Tells `user`'s watchers on every node that it came online or went offline.
    async fn watchlist(&self, bus: &Bus, app: &App, user: &UserId, online: bool) {
        app.users.notify(user, online);
        let message = BusMessage::Watchlist {
            app: app.config.id.clone(),
            user: user.to_string(),
            online,
        };
        self.announce(bus, &message).await;
    }

    /// Publishes on the bus; this node's subscribers get the event from its echo, in the order
    /// Redis received it, as every other node's do. During an outage (or if Redis refuses it)
    /// it reaches this node's subscribers only, and the caller is told [`Unavailable`].
    pub(super) async fn publish(&self, app: &App, p: Publication<'_>) -> Result<(), Unavailable> {
        if !self.health.is_up() {
            local::publish(app, p);
            return Err(unavailable());
        }
        let link = self.link();
        let cache = p.cacheable && p.channel.is_cache();
        let message = BusMessage::Event {
            app: app.config.id.clone(),
            channel: p.channel.to_string(),
            event: p.event.to_owned(),
            data: p.data.to_owned(),
            except: p.except.map(ToString::to_string),
            user_id: p.user_id.map(str::to_owned),
            cache,
        };
        // Answered only once Redis has it (in a batch with whatever else waits): a publisher's
        // next event, sent through any node after this answer, comes after it in Redis, hence
        // on every node, this one included.
        if let Err(e) = link.bus.publish(&message).await {
            local::publish(app, p);
            return Err(self.failed(e));
        }
        if cache {
            let cached = Cached {
                event: p.event.to_owned(),
                data: p.data.to_owned(),
            };
            let ttl = app.config.cache_ttl;
            if let Err(e) = link
                .engine
                .store_cache(&app.config.id, p.channel.as_str(), &cached, ttl)
                .await
            {
                self.health.failed(&e);
                return Err(refused(e));
            }
        }
        Ok(())
    }

    pub(super) async fn terminate_user(
        &self,
        app: &App,
        user: &UserId,
    ) -> Result<usize, Unavailable> {
        let closed = app.users.terminate(user);
        if !self.health.is_up() {
            return Err(unavailable());
        }
        let message = BusMessage::TerminateUser {
            app: app.config.id.clone(),
            user: user.to_string(),
        };
        self.link().bus.publish(&message).await.map_err(|e| {
            self.health.failed(&e);
            refused(e)
        })?;
        Ok(closed)
    }

    /// The link for a query, or `Unavailable` during an outage (without waiting on Redis).
    fn check(&self) -> Result<Arc<Link>, Unavailable> {
        match self.health.is_up() {
            true => Ok(self.link()),
            false => Err(unavailable()),
        }
    }

    fn failed(&self, e: ClusterError) -> Unavailable {
        self.health.failed(&e);
        refused(e)
    }

    pub(super) async fn channel(
        &self,
        app: &App,
        name: &ChannelName,
    ) -> Result<ChannelInfo, Unavailable> {
        let link = self.check()?;
        let app_id = app.config.id.as_str();
        let counts = link
            .engine
            .channel_info(app_id, name.as_str())
            .await
            .map_err(|e| self.failed(e))?;
        let cache = match name.is_cache() {
            true => link
                .engine
                .cached(app_id, name.as_str())
                .await
                .map_err(|e| self.failed(e))?
                .map(|(cached, left)| (cached_event(name, cached, Instant::now()), left)),
            false => None,
        };
        Ok(ChannelInfo {
            subscription_count: usize_of(counts.subscription_count),
            user_count: usize_of(counts.user_count),
            cache,
        })
    }

    pub(super) async fn channels(
        &self,
        app: &App,
        prefix: &str,
    ) -> Result<Vec<(ChannelName, ChannelInfo)>, Unavailable> {
        let link = self.check()?;
        let channels = link
            .engine
            .channels(&app.config.id, prefix)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(channels
            .into_iter()
            .filter_map(|(name, counts)| {
                let name = ChannelName::parse(&name, usize::MAX).ok()?;
                let info = ChannelInfo {
                    subscription_count: usize_of(counts.subscription_count),
                    user_count: usize_of(counts.user_count),
                    cache: None,
                };
                Some((name, info))
            })
            .collect())
    }

    pub(super) async fn members(
        &self,
        app: &App,
        name: &ChannelName,
    ) -> Result<Vec<UserId>, Unavailable> {
        let link = self.check()?;
        let members = link
            .engine
            .members(&app.config.id, name.as_str())
            .await
            .map_err(|e| self.failed(e))?;
        Ok(members_of(members).into_iter().map(|(id, _)| id).collect())
    }

    /// The node's background work, until the task is dropped (after the connections drained
    /// on shutdown, so the heartbeat goes on while they leave): the bus listener (restarted
    /// when the node rejoins with a new id) and the heartbeat, with reaping and recovery.
    pub async fn run(&self, apps: &Apps, live: &Shutdown, webhooks: Webhooks) {
        let (settled_tx, settled) = mpsc::unbounded_channel();
        tokio::join!(
            self.listen(apps),
            self.keep_alive(apps, live),
            self.send_departures(apps),
            self.relay_webhooks(webhooks.emitted, webhooks.worker.clone()),
            self.claim_webhooks(apps, webhooks.worker, settled_tx),
            self.settle_webhooks(settled),
            self.relay_console(apps),
        );
    }

    /// Publishes on the bus what this node's apps report for consoles on other nodes (the feed
    /// queues it only while one watches, see [`Clustered::console_beat`], and at most
    /// `console::feed::RATE` entries a second per app); what cannot be sent is dropped: a
    /// console is shown what the cluster can spare.
    async fn relay_console(&self, apps: &Apps) {
        let (tx, mut relayed) = mpsc::channel(CONSOLE_RELAY_QUEUE);
        let node = self.link().engine.node().to_string();
        for app in apps.iter() {
            app.console.relay_to(&node, tx.clone());
        }
        drop(tx);
        while let Some(r) = relayed.recv().await {
            self.relay_entry(&r.app, r.entry.to_string()).await;
        }
    }

    async fn relay_entry(&self, app: &str, entry: String) {
        let message = BusMessage::Console {
            app: app.to_owned(),
            entry,
        };
        // Posted, not awaited: entries go out in the bus's batches, without a round trip each
        // (a failed batch is reported by the next trigger or heartbeat).
        if let Err(e) = self.link().bus.post(&message).await {
            tracing::debug!(error = %e, "cluster: a console entry was not relayed");
        }
    }

    /// Tells the cluster which apps this node's consoles watch, and each app's feed whether a
    /// console on another node watches it (so it relays its entries), at every heartbeat.
    async fn console_beat(&self, engine: &Engine, apps: &Apps) {
        let lasting = self.settings.heartbeat_interval * 3;
        for app in apps.iter() {
            let here = app.console.is_watched_here();
            match engine.console_beat(&app.config.id, here, lasting).await {
                Ok(elsewhere) => app.console.set_watched_elsewhere(elsewhere),
                Err(e) => {
                    tracing::debug!(error = %e, app_id = %app.config.id, "cluster: console beat")
                }
            }
        }
    }

    /// Queues what this node's apps emit in the cluster's webhook queue (Redis). Without Redis,
    /// events go to this node's worker directly (they are then lost if the node dies).
    async fn relay_webhooks(
        &self,
        mut emitted: mpsc::Receiver<Queued>,
        worker: mpsc::Sender<Queued>,
    ) {
        while let Some(q) = emitted.recv().await {
            if self.health.is_up() {
                let queued = QueuedEvent {
                    id: format!("{:016x}", fastrand::u64(..)),
                    app: q.app.app_id.clone(),
                    time_ms: q.time_ms,
                    event: q.event.clone(),
                };
                let text = serde_json::to_string(&queued).unwrap_or_default();
                match self.link().engine.push_webhook(&text).await {
                    Ok(()) => continue,
                    Err(e) => self.health.failed(&e),
                }
            }
            if worker.send(q).await.is_err() {
                return;
            }
        }
    }

    /// Claims ready webhook events from the cluster's queue for this node's worker, every
    /// [`CLAIM_EVERY`], as many as the worker's queue has room for.
    async fn claim_webhooks(
        &self,
        apps: &Apps,
        worker: mpsc::Sender<Queued>,
        settled: mpsc::UnboundedSender<String>,
    ) {
        let mut tick = claim_ticks();
        loop {
            let link = self.next_claim(&mut tick).await;
            loop {
                let room = worker.capacity().min(CLAIM_BATCH);
                if room == 0 {
                    break;
                }
                let lease = self.settings.node_timeout;
                let claimed = match link.engine.claim_webhooks(room, lease).await {
                    Ok(claimed) => claimed,
                    Err(e) => {
                        self.health.failed(&e);
                        break;
                    }
                };
                let more = claimed.len() == room;
                for text in claimed {
                    let receipt = Receipt::new(text.clone(), settled.clone());
                    self.leased
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(Arc::downgrade(&receipt));
                    let Ok(queued) = serde_json::from_str::<QueuedEvent>(&text) else {
                        tracing::warn!("cluster: a queued webhook that does not parse; dropped");
                        continue; // the receipt settles it
                    };
                    let Some(app) = apps.by_id(&queued.app) else {
                        continue;
                    };
                    let q = app.hooks.claimed(queued.event, queued.time_ms, receipt);
                    if worker.send(q).await.is_err() {
                        return;
                    }
                }
                if !more {
                    break;
                }
            }
        }
    }

    /// Waits for the next claim tick at which Redis answers; the link to claim through.
    async fn next_claim(&self, tick: &mut tokio::time::Interval) -> Arc<Link> {
        loop {
            tick.tick().await;
            if self.health.is_up() {
                return self.link();
            }
        }
    }

    /// Renews the leases of the webhook events this node is still delivering.
    async fn renew_leases(&self, engine: &Engine) {
        let ids: Vec<String> = {
            let mut leased = self.leased.lock().unwrap_or_else(PoisonError::into_inner);
            leased.retain(|r| r.strong_count() > 0);
            leased
                .iter()
                .filter_map(Weak::upgrade)
                .map(|r| r.id().to_owned())
                .collect()
        };
        if let Err(e) = engine
            .renew_webhooks(&ids, self.settings.node_timeout)
            .await
        {
            self.health.failed(&e);
        }
    }

    /// Removes settled webhook events from the cluster's queue, in batches.
    async fn settle_webhooks(&self, mut settled: mpsc::UnboundedReceiver<String>) {
        let mut batch = Vec::new();
        while settled.recv_many(&mut batch, CLAIM_BATCH).await > 0 {
            let events = std::mem::take(&mut batch);
            if let Err(e) = self.link().engine.settle_webhooks(events).await {
                // Not removed: claimed again when the lease ends (delivered twice).
                self.health.failed(&e);
            }
        }
    }

    /// Hands what other nodes publish to this node's registries, in order.
    async fn listen(&self, apps: &Apps) {
        let mut generation = self.generation.subscribe();
        loop {
            generation.borrow_and_update();
            let listener = self
                .listener
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            match listener {
                Some(listener) => {
                    *self
                        .counts
                        .bus_waiting
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = listener.waiting();
                    let replaced = async {
                        let _ = generation.changed().await;
                    };
                    let counts = &self.counts;
                    let handle = |received: Received| {
                        match &received {
                            Received::Message(_) => {
                                counts.bus_received.fetch_add(1, Ordering::Relaxed);
                            }
                            Received::Lost(n) => {
                                counts.bus_lost.fetch_add(*n, Ordering::Relaxed);
                            }
                            Received::Reconnected => {
                                counts.bus_reconnects.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        deliver(apps, received);
                    };
                    listener.run(handle, replaced).await;
                }
                None => {
                    if generation.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Beats, reaps and recovers, every heartbeat interval.
    async fn keep_alive(&self, apps: &Apps, live: &Shutdown) {
        let mut tick = tokio::time::interval(self.settings.heartbeat_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let link = self.link();
            // A posted batch (console entries) that failed since the last beat: its messages
            // are lost (logged); the beat itself says whether Redis is down.
            if let Some(failed) = link.bus.take_failure() {
                tracing::warn!(
                    error = %failed.error,
                    lost = failed.lost,
                    "cluster: events were not published to the other nodes"
                );
            }
            match link.engine.beat().await {
                Ok(Beat::Alive) => {
                    self.health.answered();
                    if self.health.dirty.swap(false, Ordering::AcqRel) {
                        self.resync(apps).await;
                    }
                    self.renew_leases(&link.engine).await;
                    self.console_beat(&link.engine, apps).await;
                }
                Ok(Beat::Forgotten) => {
                    tracing::warn!(
                        "cluster: Redis has no record of this node (restarted without its data);                          registering again and reasserting this node's connections"
                    );
                    match link.engine.register().await {
                        Ok(()) => {
                            self.health.answered();
                            self.health.dirty.store(false, Ordering::Release);
                            self.resync(apps).await;
                        }
                        Err(e) => self.health.failed(&e),
                    }
                }
                Ok(Beat::DeclaredDead) => {
                    self.rejoin(live).await;
                    continue;
                }
                Err(e) => {
                    self.health.failed(&e);
                    continue;
                }
            }
            let mut departures = Vec::new();
            match link.engine.reap(|d| departures.push(d)).await {
                Ok(0) => {}
                Ok(n) => {
                    self.counts
                        .nodes_reaped
                        .fetch_add(n as u64, Ordering::Relaxed);
                    tracing::info!(nodes = n, "cluster: reaped dead nodes");
                }
                Err(e) => self.health.failed(&e),
            }
            self.counts
                .departures
                .fetch_add(departures.len() as u64, Ordering::Relaxed);
            for departure in departures {
                self.depart(&link, apps, departure).await;
            }
        }
    }

    /// One departure of a dead node, replayed by this one: presence events, webhooks and
    /// watchlist `offline` as if the connections had left.
    async fn depart(&self, link: &Link, apps: &Apps, departure: Departure) {
        match departure {
            Departure::MemberRemoved { app, channel, user } => {
                let Some((app, name)) = app_channel(apps, &app, &channel) else {
                    return;
                };
                let Ok(parsed) = UserId::parse(&user, usize::MAX) else {
                    return;
                };
                self.member_removed(&link.engine, app, &name, &parsed).await;
                let message = BusMessage::MemberRemoved {
                    app: app.config.id.clone(),
                    channel,
                    user,
                };
                self.announce(&link.bus, &message).await;
            }
            Departure::Unsubscribed {
                app,
                channel,
                subscription_count,
                seq,
            } => {
                // The dead node's subscriptions no longer count: as if they had left here.
                let Some((app, name)) = app_channel(apps, &app, &channel) else {
                    return;
                };
                match subscription_count {
                    0 => {
                        self.transition(&link.engine, app, &name, Change::Vacated)
                            .await;
                    }
                    n => self.count(&link.bus, app, &name, n, seq).await,
                }
            }
            Departure::Offline { app, user } => {
                let Some(app) = apps.by_id(&app) else {
                    return;
                };
                let Ok(user) = UserId::parse(&user, usize::MAX) else {
                    return;
                };
                if app.config.watchlist_events {
                    self.watchlist(&link.bus, app, &user, false).await;
                }
            }
        }
    }

    /// Makes Redis hold exactly what this node holds: its subscriptions, presence members and
    /// sign-ins, and zero for whatever Redis still records of it that it no longer holds.
    /// Reports no transition.
    async fn resync(&self, apps: &Apps) {
        let _gate = self.gate.write().await;
        let link = self.link();
        let result = async {
            let recorded = link.engine.records().await?;
            let snapshot = Snapshot::of(apps, &recorded);
            link.engine.restore(&snapshot.held()).await?;
            let connections: Vec<(&str, u64)> = apps
                .iter()
                .filter(|app| app.config.max_connections > 0)
                .map(|app| (app.config.id.as_str(), app.connections().open as u64))
                .collect();
            link.engine.restore_connections(&connections).await
        }
        .await;
        match result {
            Ok(()) => {
                self.counts.resyncs.fetch_add(1, Ordering::Relaxed);
                tracing::info!("cluster: this node's state is reasserted");
            }
            Err(e) => self.health.failed(&e),
        }
    }

    /// The cluster declared this node dead (its heartbeat lapsed, and another node replayed
    /// its departures): its connections close with 4200 (clients reconnect, to any node) and it
    /// joins again as a new node.
    async fn rejoin(&self, live: &Shutdown) {
        tracing::warn!(
            "cluster: this node was declared dead (its heartbeat lapsed); closing its              connections with 4200 and rejoining as a new node"
        );
        let _gate = self.gate.write().await;
        live.close_all(CloseCode::Reconnect, REJOINING);
        match Link::connect(&self.url, &self.prefix, &self.settings).await {
            Ok((link, listener)) => {
                tracing::info!(node = %link.engine.node(), "cluster: rejoined");
                self.counts.rejoins.fetch_add(1, Ordering::Relaxed);
                *self.link.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(link);
                *self.listener.lock().unwrap_or_else(PoisonError::into_inner) = Some(listener);
                self.generation.send_modify(|g| *g += 1);
                self.health.answered();
                self.health.dirty.store(false, Ordering::Release);
            }
            Err(e) => self.health.failed(&e),
        }
    }

    /// Leaves the cluster on shutdown, after the connections closed (what they held was
    /// removed as they left; anything left over is replayed by the next node that reaps).
    pub async fn retire(&self) {
        let link = self.link();
        match link.engine.retire().await {
            Ok(0) => {}
            Ok(left) => tracing::warn!(records = left, "cluster: left records for reaping"),
            Err(e) => tracing::warn!(error = %e, "cluster: could not retire this node"),
        }
        link.engine.quit().await;
    }
}

impl Link {
    async fn connect(
        url: &str,
        prefix: &KeyPrefix,
        settings: &Settings,
    ) -> Result<(Link, Listener), ClusterError> {
        let engine = Engine::connect(url, prefix.clone(), settings.clone()).await?;
        let (bus, listener) = bus::connect(&engine).await?;
        Ok((Link { engine, bus }, listener))
    }
}

/// What this node holds, as the restore script takes it (owned; [`Held`] borrows from it).
struct Snapshot {
    subscriptions: Vec<(String, String, u64)>,
    members: Vec<(String, String, String, Option<String>, u64)>,
    users: Vec<(String, String, u64)>,
}

impl Snapshot {
    fn of(apps: &Apps, recorded: &crate::cluster::node::Records) -> Snapshot {
        let mut snapshot = Snapshot {
            subscriptions: Vec::new(),
            members: Vec::new(),
            users: Vec::new(),
        };
        for app in apps.iter() {
            let id = &app.config.id;
            for channel in app.channels.held() {
                let name = channel.name.to_string();
                for (user, info, n) in channel.members {
                    let info = info.map(|i| i.get().to_owned());
                    snapshot.members.push((
                        id.clone(),
                        name.clone(),
                        user.to_string(),
                        info,
                        n as u64,
                    ));
                }
                snapshot
                    .subscriptions
                    .push((id.clone(), name, channel.subscriptions as u64));
            }
            for (user, n) in app.users.held() {
                snapshot
                    .users
                    .push((id.clone(), user.to_string(), n as u64));
            }
        }
        // Whatever Redis records of this node that it no longer holds goes to zero.
        for (app, channel) in &recorded.channels {
            if !snapshot
                .subscriptions
                .iter()
                .any(|(a, c, _)| a == app && c == channel)
            {
                snapshot
                    .subscriptions
                    .push((app.clone(), channel.clone(), 0));
            }
        }
        for (app, channel, user) in &recorded.members {
            let held = |(a, c, u, _, _): &(String, String, String, Option<String>, u64)| {
                a == app && c == channel && u == user
            };
            if !snapshot.members.iter().any(held) {
                let zero = (app.clone(), channel.clone(), user.clone(), None, 0);
                snapshot.members.push(zero);
            }
        }
        for (app, user) in &recorded.users {
            if !snapshot.users.iter().any(|(a, u, _)| a == app && u == user) {
                snapshot.users.push((app.clone(), user.clone(), 0));
            }
        }
        snapshot
    }

    /// Members before subscriptions, as a presence subscription joins.
    fn held(&self) -> Vec<Held<'_>> {
        let members = self
            .members
            .iter()
            .map(|(app, channel, user, info, n)| Held::Member {
                app,
                channel,
                user,
                info: info.as_deref(),
                connections: *n,
            });
        let subscriptions =
            self.subscriptions
                .iter()
                .map(|(app, channel, n)| Held::Subscriptions {
                    app,
                    channel,
                    count: *n,
                });
        let users = self.users.iter().map(|(app, user, n)| Held::SignedIn {
            app,
            user,
            connections: *n,
        });
        members.chain(subscriptions).chain(users).collect()
    }
}

/// Delivers what the bus brings to this node's connections: what other nodes published, and
/// this node's own events (from their echo).
fn deliver(apps: &Apps, received: Received) {
    let message = match received {
        Received::Message(message) => message,
        Received::Lost(n) => {
            tracing::warn!(
                lost = n,
                "cluster: bus messages were lost (this node fell behind)"
            );
            return;
        }
        Received::Reconnected => {
            tracing::info!(
                "cluster: the bus is connected again (messages sent meanwhile are lost)"
            );
            return;
        }
    };
    match message {
        BusMessage::Event {
            app,
            channel,
            event,
            data,
            except,
            user_id,
            cache,
        } => {
            let Some((app, name)) = app_channel(apps, &app, &channel) else {
                return;
            };
            let except = except.and_then(|s| SocketId::parse(&s).ok());
            local::publish(
                app,
                Publication {
                    channel: &name,
                    event: &event,
                    data: &data,
                    user_id: user_id.as_deref(),
                    except: except.as_ref(),
                    cacheable: cache,
                },
            );
        }
        BusMessage::MemberAdded {
            app,
            channel,
            user,
            info,
        } => {
            let Some((app, name)) = app_channel(apps, &app, &channel) else {
                return;
            };
            let Ok(user) = UserId::parse(&user, usize::MAX) else {
                return;
            };
            let info = info
                .and_then(|i| RawValue::from_string(i).ok())
                .map(Arc::from);
            app.channels
                .member_event(&name, MemberEvent::Added(user, info), None);
        }
        BusMessage::Count {
            app,
            channel,
            subscription_count,
            seq,
        } => {
            if let Some((app, name)) = app_channel(apps, &app, &channel) {
                app.channels
                    .count_is(&name, usize_of(subscription_count), seq, false);
            }
        }
        BusMessage::MemberRemoved { app, channel, user } => {
            let Some((app, name)) = app_channel(apps, &app, &channel) else {
                return;
            };
            let Ok(user) = UserId::parse(&user, usize::MAX) else {
                return;
            };
            app.channels
                .member_event(&name, MemberEvent::Removed(user), None);
        }
        BusMessage::TerminateUser { app, user } => {
            let (Some(app), Ok(user)) = (apps.by_id(&app), UserId::parse(&user, usize::MAX)) else {
                return;
            };
            app.users.terminate(&user);
        }
        BusMessage::Watchlist { app, user, online } => {
            let (Some(app), Ok(user)) = (apps.by_id(&app), UserId::parse(&user, usize::MAX)) else {
                return;
            };
            app.users.notify(&user, online);
        }
        BusMessage::Console { app, entry } => {
            if let Some(app) = apps.by_id(&app) {
                app.console.relayed(entry.into());
            }
        }
    }
}

fn app_channel<'a>(apps: &'a Apps, app: &str, channel: &str) -> Option<(&'a App, ChannelName)> {
    let app = apps.by_id(app)?;
    let name = ChannelName::parse(channel, usize::MAX).ok()?;
    Some((app, name))
}

fn member_removed_frame(name: &ChannelName, user: &UserId) -> Frame {
    ServerMessage::MemberRemoved {
        channel: name.as_str(),
        user_id: user.as_str(),
    }
    .encode()
    .into()
}

fn cached_event(name: &ChannelName, cached: Cached, stored: Instant) -> CachedEvent {
    let frame: Frame = ServerMessage::ChannelEvent {
        event: &cached.event,
        channel: name.as_str(),
        data: &cached.data,
        user_id: None,
    }
    .encode()
    .into();
    CachedEvent {
        event: cached.event.into(),
        data: cached.data.into(),
        frame,
        stored,
    }
}

fn usize_of(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn members_of(
    members: Vec<crate::cluster::channel::Member>,
) -> Vec<(UserId, Option<Arc<RawValue>>)> {
    members
        .into_iter()
        .filter_map(|m| {
            let id = UserId::parse(&m.user_id, usize::MAX).ok()?;
            let info = m
                .info
                .and_then(|i| RawValue::from_string(i).ok())
                .map(Arc::from);
            Some((id, info))
        })
        .collect()
}
