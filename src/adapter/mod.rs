//! The domain front: [`Adapter`] is everything the edges (`ws`, `http_api`) ask of the domain —
//! subscribe and unsubscribe, sign in and out, publish to a channel or a user, terminate a
//! user's connections, and the channel queries of the HTTP API.
//!
//! A single process answers all of it from the app's registries ([`local`]). A node of a
//! cluster ([`clustered`], when `cluster.redis_url` is set) wraps the same local calls: local
//! delivery stays, and the shared state (occupancy, presence members, signed-in users, the
//! cache), the transitions that decide webhooks and presence events, and the delivery to the
//! other nodes go through Redis. The edges do not know which one they talk to; on a cluster,
//! what needs Redis can fail with [`Unavailable`], which the HTTP API answers with 503.
//!
//! Subscriptions that succeed and connections that leave a channel are reported to the app's
//! console feed here, whichever adapter answered.
//!
//! The cluster's futures are boxed, so a single process's (and every idle connection's task)
//! stays as small as before.
//!
//! Each event is encoded here exactly once per channel on each node (a cluster node encodes
//! what the bus brings it); delivery is a refcount bump per subscriber, never an await. This module never touches the transport (`ws`).

#[cfg(feature = "redis")]
pub mod clustered;
mod local;

use crate::app::App;
use crate::channel::{ChannelInfo, Joining, SubscribeError};
use crate::connection::{ConnectionHandle, Frame};
use crate::console::Activity;
use crate::protocol::{ChannelName, SocketId, UserId};

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
    /// `pusher:signin_success`, queued once the connection is registered (so that whatever is
    /// sent to the user after the client heard of its success reaches it), before the
    /// watchlist's statuses.
    pub success: &'a Frame,
}

/// The cluster engine (Redis) cannot answer now: the request is refused rather than answered
/// from this node's part of the state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the cluster is unavailable: {0}")]
pub struct Unavailable(pub String);

/// What the edges ask of the domain: a single process's registries, or a cluster node's.
#[derive(Debug, Default)]
pub struct Adapter {
    /// Set on a cluster node.
    #[cfg(feature = "redis")]
    cluster: Option<clustered::Clustered>,
}

impl Adapter {
    /// The single-process adapter.
    pub fn local() -> Self {
        Adapter::default()
    }

    /// A cluster node's adapter.
    #[cfg(feature = "redis")]
    pub fn clustered(cluster: clustered::Clustered) -> Self {
        Adapter {
            cluster: Some(cluster),
        }
    }

    /// The cluster side, on a cluster node.
    #[cfg(feature = "redis")]
    pub fn cluster(&self) -> Option<&clustered::Clustered> {
        self.cluster.as_ref()
    }

    /// Whether what needs the cluster can be answered now (always, on a single process).
    pub fn is_available(&self) -> bool {
        #[cfg(feature = "redis")]
        if let Some(cluster) = &self.cluster {
            return cluster.is_available();
        }
        true
    }

    /// Admits one more connection of `app` (its slot on this node is taken already); false when
    /// the cluster has the app's `max_connections` (a single process counts only its slots).
    pub async fn open_connection(&self, app: &App) -> bool {
        #[cfg(feature = "redis")]
        if let Some(cluster) = &self.cluster {
            return Box::pin(cluster.open_connection(app)).await;
        }
        let _ = app;
        true
    }

    /// An admitted connection of `app` ended.
    pub async fn close_connection(&self, app: &App) {
        #[cfg(feature = "redis")]
        if let Some(cluster) = &self.cluster {
            return Box::pin(cluster.close_connection(app)).await;
        }
        let _ = app;
    }

    /// Adds a connection to a channel; the registry queues `subscription_succeeded` (and the
    /// cached event or `cache_miss`) and tells the other members of a new member.
    pub async fn subscribe(
        &self,
        app: &App,
        channel: &ChannelName,
        joining: Joining<'_>,
    ) -> Result<(), SubscribeError> {
        let socket_id = joining.handle.socket_id().clone();
        let user_id = joining.member.as_ref().map(|(user, _)| user.clone());
        #[cfg(feature = "redis")]
        let subscribed = match &self.cluster {
            Some(cluster) => Box::pin(cluster.subscribe(app, channel, joining)).await,
            None => app.channels.subscribe(channel, joining).map(drop),
        };
        #[cfg(not(feature = "redis"))]
        let subscribed = app.channels.subscribe(channel, joining).map(drop);
        if subscribed.is_ok() {
            app.console.report(Activity::Subscribed {
                channel: channel.as_str(),
                socket_id: socket_id.as_str(),
                user_id: user_id.as_ref().map(UserId::as_str),
            });
        }
        subscribed
    }

    /// Removes a connection from a channel (nothing if it was not subscribed).
    pub async fn unsubscribe(&self, app: &App, channel: &ChannelName, socket_id: &SocketId) {
        #[cfg(feature = "redis")]
        let left = match &self.cluster {
            Some(cluster) => Box::pin(cluster.unsubscribe(app, channel, socket_id)).await,
            None => app.channels.unsubscribe(channel, socket_id),
        };
        #[cfg(not(feature = "redis"))]
        let left = app.channels.unsubscribe(channel, socket_id);
        if let Some(left) = left {
            app.console.report(Activity::Unsubscribed {
                channel: channel.as_str(),
                socket_id: socket_id.as_str(),
                user_id: left.member.as_ref().map(UserId::as_str),
            });
        }
    }

    /// Registers a signed-in connection; watchlist events as the app is configured.
    pub async fn sign_in(&self, app: &App, signing_in: SigningIn<'_>) {
        #[cfg(feature = "redis")]
        if let Some(cluster) = &self.cluster {
            return Box::pin(cluster.sign_in(app, signing_in)).await;
        }
        local::sign_in(app, signing_in, None);
    }

    /// Removes a signed-in connection.
    pub async fn sign_out(
        &self,
        app: &App,
        user: &UserId,
        socket_id: &SocketId,
        watchlist: &[UserId],
    ) {
        #[cfg(feature = "redis")]
        if let Some(cluster) = &self.cluster {
            return Box::pin(cluster.sign_out(app, user, socket_id, watchlist)).await;
        }
        local::sign_out(app, user, socket_id, watchlist);
    }

    /// Delivers `publication` to the channel's subscribers (on every node).
    pub async fn publish(
        &self,
        app: &App,
        publication: Publication<'_>,
    ) -> Result<(), Unavailable> {
        #[cfg(feature = "redis")]
        if let Some(cluster) = &self.cluster {
            return Box::pin(cluster.publish(app, publication)).await;
        }
        local::publish(app, publication);
        Ok(())
    }

    /// Closes every connection signed in as `user` (4009), on every node; returns how many
    /// this node closed.
    pub async fn terminate_user(&self, app: &App, user: &UserId) -> Result<usize, Unavailable> {
        #[cfg(feature = "redis")]
        if let Some(cluster) = &self.cluster {
            return Box::pin(cluster.terminate_user(app, user)).await;
        }
        Ok(app.users.terminate(user))
    }

    /// Counts (and the cache) of one channel.
    pub async fn channel(
        &self,
        app: &App,
        channel: &ChannelName,
    ) -> Result<ChannelInfo, Unavailable> {
        #[cfg(feature = "redis")]
        if let Some(cluster) = &self.cluster {
            return Box::pin(cluster.channel(app, channel)).await;
        }
        Ok(app.channels.info(channel))
    }

    /// Occupied channels whose name starts with `prefix`, with their counts.
    pub async fn channels(
        &self,
        app: &App,
        prefix: &str,
    ) -> Result<Vec<(ChannelName, ChannelInfo)>, Unavailable> {
        #[cfg(feature = "redis")]
        if let Some(cluster) = &self.cluster {
            return Box::pin(cluster.channels(app, prefix)).await;
        }
        Ok(app.channels.occupied(prefix))
    }

    /// The user ids of a presence channel's members.
    pub async fn members(
        &self,
        app: &App,
        channel: &ChannelName,
    ) -> Result<Vec<UserId>, Unavailable> {
        #[cfg(feature = "redis")]
        if let Some(cluster) = &self.cluster {
            return Box::pin(cluster.members(app, channel)).await;
        }
        Ok(app.channels.members(channel))
    }
}
