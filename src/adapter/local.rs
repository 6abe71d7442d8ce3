//! The calls a single process and a cluster node make alike on this node's registries: encode
//! and deliver a publication, sign a connection in or out.

use tokio::time::Instant;

use super::{Publication, SigningIn};
use crate::app::App;
use crate::channel::CachedEvent;
use crate::connection::Frame;
use crate::protocol::{ChannelKind, ServerMessage, SocketId, UserId};

/// Encodes the event once and hands it to this node's subscribers (or the user's connections);
/// stores it first on cache channels when it is cacheable.
pub(super) fn publish(app: &App, p: Publication<'_>) {
    let msg = ServerMessage::ChannelEvent {
        event: p.event,
        channel: p.channel.as_str(),
        data: p.data,
        user_id: p.user_id,
    };
    let frame: Frame = msg.encode().into();
    if p.channel.kind() == ChannelKind::ServerToUser {
        let user = p.channel.server_to_user_id().unwrap_or_default();
        app.users.send_to_user(user, &frame, p.except);
        return;
    }
    let cache = (p.cacheable && p.channel.is_cache()).then(|| CachedEvent {
        event: p.event.into(),
        data: p.data.into(),
        frame: frame.clone(),
        stored: Instant::now(),
    });
    app.channels.publish(p.channel, &frame, p.except, cache);
}

/// Registers the connection with the user registry; `statuses` are the watchlist's, as the
/// cluster knows them (`None`: as this node does).
pub(super) fn sign_in(app: &App, s: SigningIn<'_>, statuses: Option<&[bool]>) {
    let events = app.config.watchlist_events;
    let success = Some(s.success.clone());
    app.users
        .sign_in_decided(s.user, s.handle, s.watchlist, events, statuses, success);
}

/// Removes the connection from the user registry.
pub(super) fn sign_out(app: &App, user: &UserId, socket_id: &SocketId, watchlist: &[UserId]) {
    let events = app.config.watchlist_events;
    app.users.sign_out(user, socket_id, watchlist, events);
}
