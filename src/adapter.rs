//! The domain front: [`Adapter`] is everything the edges (`ws`, `http_api`) ask of the domain —
//! subscribe and unsubscribe, sign in and out, publish to a channel or a user, terminate a
//! user's connections, and the channel queries of the HTTP API. [`LocalAdapter`] answers all of
//! it in this process from the app's registries. A clustered adapter (Redis) will wrap the local
//! one: local delivery stays, shared state and transitions move to Redis, and no edge changes.
//!
//! Each event is encoded here exactly once per channel; delivery is a refcount bump per
//! subscriber, never an await. Webhook transitions are decided and reported by the registries,
//! under the lock of the channel they concern. This module never touches the transport (`ws`).

use std::sync::Arc;

use tokio::time::Instant;

use crate::app::App;
use crate::channel::{CachedEvent, ChannelInfo, Joining, SubscribeError};
use crate::connection::{ConnectionHandle, Frame};
use crate::protocol::{ChannelKind, ChannelName, ServerMessage, SocketId, UserId};

/// One event on one channel.
#[derive(Debug, Clone, Copy)]
pub struct Publication<'a> {
    /// The channel (or `#server-to-user-<id>`).
    pub channel: &'a ChannelName,
    /// The event name.
    pub event: &'a str,
    /// The data string, delivered verbatim.
    pub data: &'a str,
    /// The sender's member id (client events on presence channels).
    pub user_id: Option<&'a str>,
    /// The connection that must not receive it.
    pub except: Option<&'a SocketId>,
    /// Whether a cache channel should keep it (API events yes, client events no).
    pub cacheable: bool,
}

/// A connection signing in, with the users it watches.
#[derive(Debug, Clone, Copy)]
pub struct SigningIn<'a> {
    /// The user.
    pub user: &'a UserId,
    /// The connection.
    pub handle: &'a ConnectionHandle,
    /// Whose online status it follows (already cut to the app's limit).
    pub watchlist: &'a [UserId],
}

/// What the edges ask of the domain.
pub trait Adapter: Send + Sync + std::fmt::Debug {
    /// Adds a connection to a channel; the registry queues `subscription_succeeded` (and the
    /// cached event or `cache_miss`) and tells the other members of a new member.
    fn subscribe(
        &self,
        app: &App,
        channel: &ChannelName,
        joining: Joining<'_>,
    ) -> Result<(), SubscribeError>;
    /// Removes a connection from a channel (nothing if it was not subscribed).
    fn unsubscribe(&self, app: &App, channel: &ChannelName, socket_id: &SocketId);
    /// Registers a signed-in connection; watchlist events as the app is configured.
    fn sign_in(&self, app: &App, signing_in: SigningIn<'_>);
    /// Removes a signed-in connection.
    fn sign_out(&self, app: &App, user: &UserId, socket_id: &SocketId, watchlist: &[UserId]);
    /// Delivers `publication` to the channel's subscribers; returns how many it was queued for.
    fn publish(&self, app: &App, publication: Publication<'_>) -> usize;
    /// Closes every connection signed in as `user` (4009); returns how many.
    fn terminate_user(&self, app: &App, user: &UserId) -> usize;
    /// Counts (and the cache) of one channel.
    fn channel(&self, app: &App, channel: &ChannelName) -> ChannelInfo;
    /// Occupied channels whose name starts with `prefix`, with their counts.
    fn channels(&self, app: &App, prefix: &str) -> Vec<(ChannelName, ChannelInfo)>;
    /// The user ids of a presence channel's members.
    fn members(&self, app: &App, channel: &ChannelName) -> Vec<UserId>;
}

/// The single-process adapter.
#[derive(Debug, Default, Clone)]
pub struct LocalAdapter;

impl LocalAdapter {
    /// A shareable local adapter.
    pub fn shared() -> Arc<dyn Adapter> {
        Arc::new(LocalAdapter)
    }
}

impl Adapter for LocalAdapter {
    fn subscribe(
        &self,
        app: &App,
        channel: &ChannelName,
        joining: Joining<'_>,
    ) -> Result<(), SubscribeError> {
        app.channels.subscribe(channel, joining).map(drop)
    }

    fn unsubscribe(&self, app: &App, channel: &ChannelName, socket_id: &SocketId) {
        app.channels.unsubscribe(channel, socket_id);
    }

    fn sign_in(&self, app: &App, s: SigningIn<'_>) {
        let events = app.config.watchlist_events;
        app.users.sign_in(s.user, s.handle, s.watchlist, events);
    }

    fn sign_out(&self, app: &App, user: &UserId, socket_id: &SocketId, watchlist: &[UserId]) {
        let events = app.config.watchlist_events;
        app.users.sign_out(user, socket_id, watchlist, events);
    }

    fn publish(&self, app: &App, p: Publication<'_>) -> usize {
        let msg = ServerMessage::ChannelEvent {
            event: p.event,
            channel: p.channel.as_str(),
            data: p.data,
            user_id: p.user_id,
        };
        let frame: Frame = msg.encode().into();
        if p.channel.kind() == ChannelKind::ServerToUser {
            let user = p.channel.server_to_user_id().unwrap_or_default();
            return app.users.send_to_user(user, &frame, p.except);
        }
        let cache = (p.cacheable && p.channel.is_cache()).then(|| CachedEvent {
            event: p.event.into(),
            data: p.data.into(),
            frame: frame.clone(),
            stored: Instant::now(),
        });
        app.channels.publish(p.channel, &frame, p.except, cache)
    }

    fn terminate_user(&self, app: &App, user: &UserId) -> usize {
        app.users.terminate(user)
    }

    fn channel(&self, app: &App, channel: &ChannelName) -> ChannelInfo {
        app.channels.info(channel)
    }

    fn channels(&self, app: &App, prefix: &str) -> Vec<(ChannelName, ChannelInfo)> {
        app.channels.occupied(prefix)
    }

    fn members(&self, app: &App, channel: &ChannelName) -> Vec<UserId> {
        app.channels.members(channel)
    }
}
