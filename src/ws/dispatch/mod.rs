//! What a connection does with each client message: one function per Pusher event
//! (`on_subscribe`, `on_unsubscribe`, `on_client_event`, `on_signin`, `on_ping`). Replies are
//! queued on the connection's own handle, so they keep their order with fan-out traffic; nothing
//! here awaits but the adapter (on a cluster node, for Redis). Failures are hosted-style `pusher:error` frames with `code: null` and the
//! connection stays open. Client events and sign-in live in [`client_event`] and [`signin`].

mod client_event;
mod signin;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;
use tokio::time::Instant;

use crate::adapter::Adapter;
use crate::app::App;
use crate::auth;
use crate::channel::Joining;
use crate::connection::ConnectionHandle;
use crate::protocol::client::Subscribe;
use crate::protocol::member::parse_channel_data;
use crate::protocol::{ChannelKind, ChannelName, ClientMessage, ServerMessage, UserId};

/// Who a connection signed in as.
struct SignedInUser {
    id: UserId,
    /// Whose online status it follows.
    watchlist: Vec<UserId>,
    /// Its `user_info`, used as its presence info when a subscription brings no `channel_data`.
    info: Option<Arc<RawValue>>,
}

/// A connection's protocol state.
pub(super) struct Connection {
    app: Arc<App>,
    adapter: Arc<Adapter>,
    handle: ConnectionHandle,
    /// Subscribed channels, with the member id on presence channels.
    subscriptions: HashMap<ChannelName, Option<UserId>>,
    /// The signed-in user.
    user: Option<SignedInUser>,
    /// Signed in, or subscribed to a private or presence channel (authorized connections).
    authorized: bool,
    /// Client-event rate window: its start and the events counted in it.
    rate: (Instant, u32),
}

impl Connection {
    pub(super) fn new(app: Arc<App>, adapter: Arc<Adapter>, handle: ConnectionHandle) -> Self {
        Connection {
            app,
            adapter,
            handle,
            subscriptions: HashMap::new(),
            user: None,
            authorized: false,
            rate: (Instant::now(), 0),
        }
    }

    pub(super) fn handle(&self) -> &ConnectionHandle {
        &self.handle
    }

    /// The authorized-connections deadline, when the app wants one.
    pub(super) fn authorization_timeout(&self) -> Option<Duration> {
        self.app
            .config
            .authorized_connections
            .then_some(self.app.config.authorization_timeout)
    }

    pub(super) fn is_authorized(&self) -> bool {
        self.authorized
    }

    /// Queues `pusher:error`.
    pub(super) fn error(&self, code: Option<u16>, message: &str) {
        self.handle
            .send(ServerMessage::Error { code, message }.encode().into());
    }

    /// Decodes and handles one text frame.
    pub(super) async fn on_text(&mut self, text: &str) {
        match ClientMessage::decode(text) {
            Ok(ClientMessage::Subscribe(sub)) => self.on_subscribe(sub).await,
            Ok(ClientMessage::Unsubscribe { channel }) => self.on_unsubscribe(&channel).await,
            Ok(ClientMessage::Ping) => self.on_ping(),
            Ok(ClientMessage::Pong) => {}
            Ok(ClientMessage::Signin { auth, user_data }) => {
                self.on_signin(&auth, &user_data).await
            }
            Ok(ClientMessage::ClientEvent {
                event,
                channel,
                data,
            }) => self.on_client_event(&event, &channel, data).await,
            Ok(ClientMessage::Unknown { event }) => self.error(
                None,
                &format!("Unsupported event received on socket: {event}"),
            ),
            Err(e) => self.error(None, &e.to_string()),
        }
    }

    fn on_ping(&self) {
        self.handle.send(ServerMessage::Pong.encode().into());
    }

    async fn on_subscribe(&mut self, sub: Subscribe) {
        match self.subscribe(&sub).await {
            Ok(()) => tracing::debug!(channel = %sub.channel, "subscribed"),
            Err(message) => {
                tracing::debug!(channel = %sub.channel, error = %message, "subscription refused");
                self.error(None, &message);
            }
        }
    }

    async fn subscribe(&mut self, sub: &Subscribe) -> Result<(), String> {
        let name = ChannelName::parse(&sub.channel, self.app.channel_name_max_length)
            .map_err(|e| e.to_string())?;
        if self.subscriptions.contains_key(&name) {
            return Err(format!("Existing subscription to channel {name}"));
        }
        let max = self.app.config.max_channels_per_connection;
        if self.subscriptions.len() >= max {
            return Err(format!(
                "Cannot subscribe to {name}: the connection is already subscribed to {max} channels"
            ));
        }
        if name.kind() == ChannelKind::ServerToUser {
            return self.subscribe_inbox(name);
        }
        let member = match name.kind() {
            ChannelKind::Presence => Some(self.presence_member(&name, sub)?),
            ChannelKind::Private | ChannelKind::PrivateEncrypted => {
                let config = &self.app.config;
                let socket_id = self.handle.socket_id().as_str();
                auth::verify_channel_auth(
                    &config.key,
                    &config.secret,
                    socket_id,
                    name.as_str(),
                    None,
                    sub.auth.as_deref(),
                )
                .map_err(|e| e.to_string())?;
                None
            }
            _ => None,
        };
        let user_id = member.as_ref().map(|(id, _)| id.clone());
        let joining = Joining {
            handle: &self.handle,
            member,
        };
        self.adapter
            .subscribe(&self.app, &name, joining)
            .await
            .map_err(|e| e.to_string())?;
        self.authorized |= name.needs_auth();
        self.subscriptions.insert(name, user_id);
        Ok(())
    }

    /// `#server-to-user-<id>`: only for the connection signed in as `<id>`. Deliveries go through
    /// the user registry, so this only confirms.
    fn subscribe_inbox(&mut self, name: ChannelName) -> Result<(), String> {
        let mine = self.user.as_ref().map(|u| u.id.as_str());
        if mine.is_none() || mine != name.server_to_user_id() {
            return Err(format!(
                "Cannot subscribe to {name}: the connection is not signed in as that user"
            ));
        }
        let msg = ServerMessage::SubscriptionSucceeded {
            channel: name.as_str(),
            presence: None,
        };
        self.handle.send(msg.encode().into());
        self.subscriptions.insert(name, None);
        Ok(())
    }

    /// Verifies a presence subscription and returns the member it joins as.
    fn presence_member(
        &self,
        name: &ChannelName,
        sub: &Subscribe,
    ) -> Result<(UserId, Option<Arc<RawValue>>), String> {
        let config = &self.app.config;
        let socket_id = self.handle.socket_id().as_str();
        let Some(channel_data) = sub.channel_data.as_deref() else {
            // pusher-js may leave channel_data out for signed-in users: the member is the user.
            let user = self.user.as_ref().ok_or_else(|| {
                format!(
                    "Presence subscription to {name} requires channel_data (or a signed-in user)"
                )
            })?;
            auth::verify_channel_auth(
                &config.key,
                &config.secret,
                socket_id,
                name.as_str(),
                None,
                sub.auth.as_deref(),
            )
            .map_err(|e| e.to_string())?;
            return Ok((user.id.clone(), user.info.clone()));
        };
        auth::verify_channel_auth(
            &config.key,
            &config.secret,
            socket_id,
            name.as_str(),
            Some(channel_data),
            sub.auth.as_deref(),
        )
        .map_err(|e| e.to_string())?;
        parse_channel_data(
            channel_data,
            config.max_presence_user_id_length,
            config.max_presence_user_info_bytes,
        )
    }

    async fn on_unsubscribe(&mut self, channel: &str) {
        let Ok(name) = ChannelName::parse(channel, usize::MAX) else {
            return;
        };
        if self.subscriptions.remove(&name).is_some() {
            tracing::debug!(channel = %name, "unsubscribed");
            self.leave(&name).await;
        }
    }

    async fn leave(&self, name: &ChannelName) {
        if name.kind() == ChannelKind::ServerToUser {
            return;
        }
        self.adapter
            .unsubscribe(&self.app, name, self.handle.socket_id())
            .await;
    }

    /// Leaves every channel and signs out; the session's one cleanup path.
    pub(super) async fn disconnect(&mut self) {
        for name in std::mem::take(&mut self.subscriptions).into_keys() {
            self.leave(&name).await;
        }
        if let Some(user) = self.user.take() {
            let socket_id = self.handle.socket_id();
            self.adapter
                .sign_out(&self.app, &user.id, socket_id, &user.watchlist)
                .await;
        }
    }
}
