//! Per-app channel state: which connections are subscribed to which channel, presence members,
//! the cached event of cache channels and the throttled `subscription_count`.
//!
//! The [`Registry`] owns that state behind methods. Mutations return what changed
//! ([`Subscribed`], [`Unsubscribed`]), and report each change to the app's [`Reporter`] (the
//! webhook front) while the channel's lock is held, so one channel's changes are reported in the
//! order they happened even when connections on several threads race; the frames that must be
//! ordered with a subscription (`subscription_succeeded`, the cached event or `cache_miss`,
//! `member_added`/`member_removed`, `subscription_count`) are queued here, under the channel's
//! lock, so no event can overtake them. Nothing here awaits, knows actix, sockets or HTTP.

mod count;
mod mirror;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use serde_json::value::RawValue;
use tokio::time::Instant;

use crate::connection::{ConnectionHandle, Frame, Subscription};
use crate::fanout::{FanOut, Targets};
use crate::protocol::server::PresenceList;
use crate::protocol::{ChannelKind, ChannelName, ServerMessage, SocketId, UserId};
use count::CountState;
pub use mirror::MemberEvent;
use mirror::Mirror;

/// How long a channel that is still not cached waits before a `cache_miss` is reported again: a
/// miss is reported once, then at most once per this period while the cache stays empty, so an
/// app whose first reaction to a miss failed hears of the channel again.
const MISS_REPORTED_AGAIN_AFTER: Duration = Duration::from_secs(60);

/// A change of a channel, as webhooks report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    /// The channel got its first subscriber.
    Occupied,
    /// The channel lost its last subscriber.
    Vacated,
    /// A user's first connection joined the presence channel.
    MemberAdded(&'a UserId),
    /// A user's last connection left the presence channel.
    MemberRemoved(&'a UserId),
    /// A subscriber found nothing cached.
    CacheMiss,
    /// The subscription count went out with this value.
    Count(usize),
}

/// Where a [`Registry`] reports its channels' changes. Called while the channel's lock is held:
/// it must not block (the webhook front only queues).
pub trait Reporter: Send + Sync + std::fmt::Debug {
    /// `channel` changed.
    fn report(&self, channel: &ChannelName, change: Change<'_>);
}

/// The settings of one app that shape channel behaviour.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Most members in a presence channel.
    pub max_presence_members: usize,
    /// Whether `pusher_internal:subscription_count` is sent.
    pub subscription_count: bool,
    /// How long a cache channel's event lives.
    pub cache_ttl: Duration,
    /// This node is one of a cluster: whether a channel is occupied or vacated, and whether a
    /// presence member is added or removed (with the member limit), is decided by the cluster.
    /// This registry reports none of those; it follows each presence channel's members on all
    /// nodes (a mirror, see [`Registry::mirror_begin`] and [`Registry::member_event`]) for what
    /// its subscribers are told, and keeps its own counts of local connections for restoring
    /// the cluster's state.
    pub clustered: bool,
}

/// All channels of one app.
#[derive(Debug)]
pub struct Registry {
    /// Channel name → its state. Entries exist while a channel has subscribers or a live cache.
    channels: DashMap<ChannelName, Channel>,
    /// The app's settings, fixed at start.
    settings: Settings,
    /// Writes broadcasts to subscribers.
    fan_out: FanOut,
    /// Told of every change, under the channel's lock.
    reporter: Arc<dyn Reporter>,
}

#[derive(Debug, Default)]
struct Channel {
    /// Subscribed connections.
    subscribers: HashMap<SocketId, Subscriber>,
    /// `subscribers` split into fan-out lanes; built by the first broadcast after a change.
    targets: Option<Arc<Targets>>,
    /// Presence members by user id (several connections of one user are one member).
    members: HashMap<UserId, Member>,
    /// The last API event, for cache channels.
    cache: Option<CachedEvent>,
    /// When a `cache_miss` was last reported while the cache has been empty.
    miss_reported: Option<Instant>,
    /// Throttle state of `subscription_count`.
    count: CountState,
    /// On a cluster node, a presence channel's members on every node.
    mirror: Option<Mirror>,
}

impl Channel {
    /// Whether the entry holds nothing worth keeping.
    fn is_idle(&self) -> bool {
        self.subscribers.is_empty()
            && self.cache.is_none()
            && self.mirror.as_ref().is_none_or(|m| m.starting == 0)
    }
}

#[derive(Debug)]
struct Subscriber {
    /// What the channel's broadcasts go through; ended when the connection leaves.
    subscription: Subscription,
    /// The member this connection joined as, on presence channels.
    user_id: Option<UserId>,
}

#[derive(Debug)]
struct Member {
    info: Option<Arc<RawValue>>,
    connections: usize,
}

/// An event kept by a cache channel.
#[derive(Debug, Clone)]
pub struct CachedEvent {
    /// The event name.
    pub event: Arc<str>,
    /// The data string.
    pub data: Arc<str>,
    /// The frame as delivered, re-sent to new subscribers.
    pub frame: Frame,
    /// When it was stored.
    pub stored: Instant,
}

/// A connection joining a channel.
#[derive(Debug, Clone)]
pub struct Joining<'a> {
    /// The connection.
    pub handle: &'a ConnectionHandle,
    /// For presence channels: the member's id and `user_info`.
    pub member: Option<(UserId, Option<Arc<RawValue>>)>,
}

/// Why a subscription was refused (hosted-style texts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    /// The connection is already subscribed.
    #[error("Existing subscription to channel {0}")]
    Existing(String),
    /// The presence channel has its maximum of members.
    #[error("Cannot subscribe to {channel}: presence channel is full ({max} members)")]
    PresenceFull {
        /// The channel.
        channel: String,
        /// The limit.
        max: usize,
    },
}

/// What a successful subscription changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Subscribed {
    /// The channel went from 0 to 1 subscriber.
    pub occupied: bool,
    /// A new presence member appeared.
    pub member_added: Option<UserId>,
    /// A cache channel had nothing cached and this miss should be reported.
    pub cache_miss: bool,
    /// A `subscription_count` went out with this value.
    pub count: Option<usize>,
}

/// What an unsubscription changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unsubscribed {
    /// The channel has no subscribers left.
    pub vacated: bool,
    /// The user's last connection left the presence channel.
    pub member_removed: Option<UserId>,
    /// A `subscription_count` went out with this value.
    pub count: Option<usize>,
    /// The member the connection was, on presence channels.
    pub member: Option<UserId>,
    /// That member has no connection left on this node (on a single node: `member_removed`).
    pub member_left_node: Option<UserId>,
}

/// One channel as a node holds it ([`Registry::held`]).
#[derive(Debug, Clone)]
pub struct Held {
    /// The channel.
    pub name: ChannelName,
    /// Its subscriptions on this node.
    pub subscriptions: usize,
    /// Presence members: id, `user_info`, connections on this node.
    pub members: Vec<(UserId, Option<Arc<RawValue>>, usize)>,
}

/// Counts for the HTTP API.
#[derive(Debug, Clone, Default)]
pub struct ChannelInfo {
    /// Subscribed connections.
    pub subscription_count: usize,
    /// Distinct presence members.
    pub user_count: usize,
    /// The cached event and its remaining lifetime.
    pub cache: Option<(CachedEvent, Duration)>,
}

impl Registry {
    /// An empty registry whose broadcasts go through `fan_out` and whose changes go to
    /// `reporter`.
    pub fn new(settings: Settings, fan_out: FanOut, reporter: Arc<dyn Reporter>) -> Self {
        Registry {
            channels: DashMap::new(),
            settings,
            fan_out,
            reporter,
        }
    }

    /// Adds a connection to a channel and queues, in order, `subscription_succeeded`, then the
    /// cached event or `cache_miss`; tells the other members about a new member.
    pub fn subscribe(
        &self,
        name: &ChannelName,
        joining: Joining<'_>,
    ) -> Result<Subscribed, SubscribeError> {
        self.subscribe_decided(name, joining)
    }

    /// A presence subscription on a cluster node is about to join: true if the channel's mirror
    /// must be started, with the cluster's member list given to [`Registry::mirror_start`] (or
    /// [`Registry::mirror_abandon`]) before [`Registry::subscribe`].
    pub fn mirror_begin(&self, name: &ChannelName) -> bool {
        let mut entry = self.channels.entry(name.clone()).or_default();
        match &mut entry.mirror {
            Some(m) if m.is_live() => false,
            Some(m) => {
                m.starting += 1;
                true
            }
            None => {
                entry.mirror = Some(Mirror::starting());
                true
            }
        }
    }

    /// The cluster's member list for a mirror begun with [`Registry::mirror_begin`].
    pub fn mirror_start(&self, name: &ChannelName, list: Vec<(UserId, Option<Arc<RawValue>>)>) {
        if let Some(m) = self
            .channels
            .get_mut(name)
            .as_mut()
            .and_then(|e| e.mirror.as_mut())
        {
            m.start(list);
        }
    }

    /// Whether this node follows the channel's members on every node (a live mirror).
    pub fn is_mirrored(&self, name: &ChannelName) -> bool {
        self.channels
            .get(name)
            .is_some_and(|e| e.mirror.as_ref().is_some_and(Mirror::is_live))
    }

    /// The cluster's member list could not be read: the subscription goes on without it.
    pub fn mirror_abandon(&self, name: &ChannelName) {
        if let Some(mut entry) = self.channels.get_mut(name) {
            if entry.mirror.as_mut().is_some_and(Mirror::abandon) {
                entry.mirror = None;
            }
        }
        self.channels.remove_if(name, |_, ch| ch.is_idle());
    }

    /// A member change the cluster decided (on this node, another one, or a dead one's
    /// replay): this node's subscribers of the channel hear of it (but `except`) if it changes
    /// the members they were told of. Returns whether it did.
    pub fn member_event(
        &self,
        name: &ChannelName,
        event: MemberEvent,
        except: Option<&SocketId>,
    ) -> bool {
        let Some(mut entry) = self.channels.get_mut(name) else {
            return false;
        };
        let channel = entry.value_mut();
        let Some(mirror) = &mut channel.mirror else {
            return false;
        };
        if !mirror.apply(&event) {
            return false;
        }
        let frame: Frame = match &event {
            MemberEvent::Added(id, info) => ServerMessage::MemberAdded {
                channel: name.as_str(),
                user_id: id.as_str(),
                user_info: info.as_deref(),
            },
            MemberEvent::Removed(id) => ServerMessage::MemberRemoved {
                channel: name.as_str(),
                user_id: id.as_str(),
            },
        }
        .encode()
        .into();
        self.broadcast(channel, &frame, except);
        true
    }

    /// [`Registry::subscribe`] with the single node's rules or, on a cluster node, the
    /// mirror's (the member limit was checked by the cluster).
    fn subscribe_decided(
        &self,
        name: &ChannelName,
        joining: Joining<'_>,
    ) -> Result<Subscribed, SubscribeError> {
        let clustered = self.settings.clustered;
        let mut entry = self.channels.entry(name.clone()).or_default();
        let channel = entry.value_mut();
        let socket_id = joining.handle.socket_id();
        if channel.subscribers.contains_key(socket_id) {
            return Err(SubscribeError::Existing(name.to_string()));
        }
        let mut out = Subscribed {
            occupied: channel.subscribers.is_empty(),
            ..Subscribed::default()
        };
        let user_id = joining.member.as_ref().map(|(id, _)| id.clone());
        let mirrored = clustered && channel.mirror.as_ref().is_some_and(Mirror::is_live);
        if let (Some((id, info)), true) = (&joining.member, mirrored) {
            let mirror = channel.mirror.as_mut().expect("mirrored");
            if mirror.apply(&MemberEvent::Added(id.clone(), info.clone())) {
                out.member_added = Some(id.clone());
            }
        }
        if let Some((id, info)) = joining.member {
            if let Some(member) = channel.members.get_mut(&id) {
                member.connections += 1;
                member.info = info;
            } else if !clustered && channel.members.len() >= self.settings.max_presence_members {
                return Err(SubscribeError::PresenceFull {
                    channel: name.to_string(),
                    max: self.settings.max_presence_members,
                });
            } else {
                channel.members.insert(
                    id.clone(),
                    Member {
                        info,
                        connections: 1,
                    },
                );
                // A single node decides; so does a cluster node that could not follow the
                // cluster's members (Redis unreachable): from its own connections.
                if !mirrored {
                    out.member_added = Some(id);
                }
            }
        }
        out.occupied &= !clustered;
        let subscription = Subscription::new(joining.handle.clone());
        let succeeded = match (&channel.mirror, &user_id, mirrored) {
            (Some(mirror), Some(_), true) => {
                let listed: Vec<(&str, Option<&RawValue>)> = mirror
                    .members
                    .iter()
                    .map(|(id, info)| (id.as_str(), info.as_deref()))
                    .collect();
                presence_succeeded(name, &listed)
            }
            _ => succeeded_frame(name, channel, user_id.is_some()),
        };
        self.fan_out.send_after_broadcasts(&subscription, succeeded);
        if name.is_cache() {
            out.cache_miss = self.send_cache(name, channel, &subscription);
        }
        channel.subscribers.insert(
            socket_id.clone(),
            Subscriber {
                subscription,
                user_id: user_id.clone(),
            },
        );
        channel.targets = None;
        if let Some(id) = &out.member_added {
            let info = channel.members.get(id).and_then(|m| m.info.as_deref());
            let msg = ServerMessage::MemberAdded {
                channel: name.as_str(),
                user_id: id.as_str(),
                user_info: info,
            };
            self.broadcast(channel, &msg.encode().into(), Some(socket_id));
        }
        out.count = self.count_changed(name, channel);
        let report = |change| self.reporter.report(name, change);
        if out.occupied {
            report(Change::Occupied);
        }
        if let (Some(id), false) = (&out.member_added, clustered) {
            report(Change::MemberAdded(id));
        }
        if out.cache_miss {
            report(Change::CacheMiss);
        }
        if let Some(n) = out.count {
            report(Change::Count(n));
        }
        Ok(out)
    }

    /// Queues the cached event (or `cache_miss`); returns whether a miss should be reported.
    fn send_cache(
        &self,
        name: &ChannelName,
        channel: &mut Channel,
        subscription: &Subscription,
    ) -> bool {
        match &channel.cache {
            Some(cached) if cached.stored.elapsed() < self.settings.cache_ttl => {
                self.fan_out
                    .send_after_broadcasts(subscription, cached.frame.clone());
                false
            }
            _ => {
                channel.cache = None;
                self.fan_out.send_after_broadcasts(
                    subscription,
                    ServerMessage::CacheMiss {
                        channel: name.as_str(),
                    }
                    .encode()
                    .into(),
                );
                let again = channel
                    .miss_reported
                    .is_none_or(|at| at.elapsed() >= MISS_REPORTED_AGAIN_AFTER);
                if again {
                    channel.miss_reported = Some(Instant::now());
                }
                again
            }
        }
    }

    /// Removes a connection from a channel; `None` if it was not subscribed.
    pub fn unsubscribe(&self, name: &ChannelName, socket_id: &SocketId) -> Option<Unsubscribed> {
        let mut entry = self.channels.get_mut(name)?;
        let channel = entry.value_mut();
        let subscriber = channel.subscribers.remove(socket_id)?;
        subscriber.subscription.end();
        channel.targets = None;
        let clustered = self.settings.clustered;
        let empty = channel.subscribers.is_empty();
        let mut out = Unsubscribed {
            vacated: empty && !clustered,
            member: subscriber.user_id.clone(),
            ..Unsubscribed::default()
        };
        if let Some(id) = subscriber.user_id {
            let last = channel.members.get_mut(&id).map(|m| {
                m.connections -= 1;
                m.connections == 0
            });
            if last == Some(true) {
                channel.members.remove(&id);
                out.member_left_node = Some(id.clone());
            }
            if last == Some(true) && !clustered {
                let msg = ServerMessage::MemberRemoved {
                    channel: name.as_str(),
                    user_id: id.as_str(),
                };
                self.broadcast(channel, &msg.encode().into(), None);
                out.member_removed = Some(id);
            }
        }
        if !empty {
            out.count = self.count_changed(name, channel);
        } else if channel.mirror.as_ref().is_some_and(|m| m.starting == 0) {
            // Nobody here to tell of the cluster's members any more.
            channel.mirror = None;
        }
        let report = |change| self.reporter.report(name, change);
        if let Some(id) = &out.member_removed {
            report(Change::MemberRemoved(id));
        }
        if out.vacated {
            report(Change::Vacated);
        }
        if let Some(n) = out.count {
            report(Change::Count(n));
        }
        drop(entry);
        if empty {
            self.channels.remove_if(name, |_, ch| ch.is_idle());
        }
        Some(out)
    }

    /// Broadcasts `frame` to every subscriber but `except`; stores it first on cache channels.
    /// Returns how many connections it is for.
    pub fn publish(
        &self,
        name: &ChannelName,
        frame: &Frame,
        except: Option<&SocketId>,
        cache: Option<CachedEvent>,
    ) -> usize {
        match cache {
            Some(cached) => {
                let mut entry = self.channels.entry(name.clone()).or_default();
                entry.cache = Some(cached);
                entry.miss_reported = None;
                self.broadcast(&mut entry, frame, except)
            }
            None => match self.channels.get_mut(name) {
                Some(mut channel) => self.broadcast(&mut channel, frame, except),
                None => 0,
            },
        }
    }

    /// Counts (and the cache) of one channel.
    pub fn info(&self, name: &ChannelName) -> ChannelInfo {
        let Some(channel) = self.channels.get(name) else {
            return ChannelInfo::default();
        };
        let cache = channel.cache.as_ref().and_then(|c| {
            let age = c.stored.elapsed();
            (age < self.settings.cache_ttl).then(|| (c.clone(), self.settings.cache_ttl - age))
        });
        ChannelInfo {
            subscription_count: channel.subscribers.len(),
            user_count: channel.members.len(),
            cache,
        }
    }

    /// Occupied channels whose name starts with `prefix`, with their counts.
    pub fn occupied(&self, prefix: &str) -> Vec<(ChannelName, ChannelInfo)> {
        self.channels
            .iter()
            .filter(|e| !e.subscribers.is_empty() && e.key().as_str().starts_with(prefix))
            .map(|e| {
                let info = ChannelInfo {
                    subscription_count: e.subscribers.len(),
                    user_count: e.members.len(),
                    cache: None,
                };
                (e.key().clone(), info)
            })
            .collect()
    }

    /// The user ids of a presence channel's members.
    pub fn members(&self, name: &ChannelName) -> Vec<UserId> {
        self.channels
            .get(name)
            .map(|c| c.members.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// What this node holds, for reasserting it to a cluster: every channel with local
    /// subscribers, with their number and, on presence channels, each member's `user_info` and
    /// local connections.
    pub fn held(&self) -> Vec<Held> {
        self.channels
            .iter()
            .filter(|e| !e.subscribers.is_empty())
            .map(|e| Held {
                name: e.key().clone(),
                subscriptions: e.subscribers.len(),
                members: e
                    .members
                    .iter()
                    .map(|(id, m)| (id.clone(), m.info.clone(), m.connections))
                    .collect(),
            })
            .collect()
    }

    /// Stores `cached` as the channel's event unless it has a fresher one (a clustered node
    /// filling its cache from the cluster's).
    pub fn store_cache(&self, name: &ChannelName, cached: CachedEvent) {
        let mut entry = self.channels.entry(name.clone()).or_default();
        let fresh = entry.cache.as_ref().is_some_and(|c| {
            c.stored >= cached.stored && c.stored.elapsed() < self.settings.cache_ttl
        });
        if !fresh {
            entry.cache = Some(cached);
            entry.miss_reported = None;
        }
    }

    /// Periodic upkeep: sends (and reports) throttled `subscription_count`s that are due, drops
    /// expired cache entries and channels left empty.
    pub fn sweep(&self) {
        let ttl = self.settings.cache_ttl;
        for mut entry in self.channels.iter_mut() {
            let (name, channel) = entry.pair_mut();
            if channel
                .cache
                .as_ref()
                .is_some_and(|c| c.stored.elapsed() >= ttl)
            {
                channel.cache = None;
            }
            if let Some((n, reported)) = channel.count.due_reported() {
                self.broadcast_count(name, channel, n);
                if reported {
                    self.reporter.report(name, Change::Count(n));
                }
            }
        }
        self.channels.retain(|_, ch| !ch.is_idle());
    }

    fn broadcast_count(&self, name: &ChannelName, channel: &mut Channel, n: usize) {
        let frame: Frame = ServerMessage::SubscriptionCount {
            channel: name.as_str(),
            count: n,
        }
        .encode()
        .into();
        self.broadcast(channel, &frame, None);
    }

    /// Hands `frame` to the fan-out lanes for every subscriber but `except`, under the
    /// channel's lock, so broadcasts of a channel reach each connection in order and never
    /// before its `subscription_succeeded`. Returns how many connections it is for.
    fn broadcast(&self, channel: &mut Channel, frame: &Frame, except: Option<&SocketId>) -> usize {
        let excepted = except.is_some_and(|id| channel.subscribers.contains_key(id));
        let n = channel.subscribers.len() - usize::from(excepted);
        if n == 0 {
            return 0;
        }
        let subscribers = &channel.subscribers;
        let targets = channel.targets.get_or_insert_with(|| {
            Arc::new(
                self.fan_out
                    .targets(subscribers.values().map(|s| &s.subscription)),
            )
        });
        self.fan_out.broadcast(targets, frame, except);
        n
    }

    /// A clustered node's count: the cluster has `n` subscriptions to the channel now, as of
    /// its count numbered `seq`. This node's subscribers get it (throttled as on a single
    /// node) unless it already had a newer one; returns whether it went out now, so the node
    /// that caused the change reports it (`reported`; a pending one is reported when it goes
    /// out). A node with no subscriber of the channel sends nothing and answers true.
    pub fn count_is(&self, name: &ChannelName, n: usize, seq: u64, reported: bool) -> bool {
        if !self.settings.subscription_count || name.kind() == ChannelKind::Presence {
            return false;
        }
        let Some(mut entry) = self.channels.get_mut(name) else {
            return true;
        };
        let channel = entry.value_mut();
        if channel.subscribers.is_empty() {
            return true;
        }
        if !channel.count.is_newest(seq) {
            return false;
        }
        let now = channel.count.changed_reported(n, reported);
        if now {
            self.broadcast_count(name, channel, n);
        }
        now
    }

    fn count_changed(&self, name: &ChannelName, channel: &mut Channel) -> Option<usize> {
        if self.settings.clustered {
            // The cluster's count comes with what Redis answers: see `count_is`.
            return None;
        }
        if !self.settings.subscription_count || name.kind() == ChannelKind::Presence {
            return None;
        }
        let n = channel.subscribers.len();
        if channel.count.changed(n) {
            self.broadcast_count(name, channel, n);
            Some(n)
        } else {
            None
        }
    }
}

fn succeeded_frame(name: &ChannelName, channel: &Channel, presence: bool) -> Frame {
    if !presence {
        return ServerMessage::SubscriptionSucceeded {
            channel: name.as_str(),
            presence: None,
        }
        .encode()
        .into();
    }
    let members: Vec<(&str, Option<&RawValue>)> = channel
        .members
        .iter()
        .map(|(id, m)| (id.as_str(), m.info.as_deref()))
        .collect();
    presence_succeeded(name, &members)
}

fn presence_succeeded(name: &ChannelName, members: &[(&str, Option<&RawValue>)]) -> Frame {
    ServerMessage::SubscriptionSucceeded {
        channel: name.as_str(),
        presence: Some(PresenceList { members }),
    }
    .encode()
    .into()
}

#[cfg(test)]
mod tests;
