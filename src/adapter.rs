//! The fan-out contract. [`Adapter`] is what the edges (`ws`, `http_api`) call to deliver an
//! event to a channel or a user and to terminate a user's connections; [`LocalAdapter`] does it
//! in this process. A clustered adapter (Redis) would wrap the local one and forward to peers.
//!
//! Each event is encoded here exactly once per channel; delivery is a refcount bump per
//! subscriber, never an await. This module never touches the transport (`ws`).

use std::sync::Arc;

use tokio::time::Instant;

use crate::app::App;
use crate::channel::CachedEvent;
use crate::connection::Frame;
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

/// Delivers events and terminates users.
pub trait Adapter: Send + Sync + std::fmt::Debug {
    /// Delivers `publication` to the channel's subscribers; returns how many it was queued for.
    fn publish(&self, app: &App, publication: Publication<'_>) -> usize;
    /// Closes every connection signed in as `user` (4009); returns how many.
    fn terminate_user(&self, app: &App, user: &UserId) -> usize;
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
}
