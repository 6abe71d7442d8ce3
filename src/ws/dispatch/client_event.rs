//! Client events: the hosted rules (prefix, app switch, channel type, subscription, size), the
//! per-connection rate limit (4301, connection kept), relay to the other subscribers, the
//! console feed and the `client_event` webhook.

use std::time::Duration;

use tokio::time::Instant;

use super::Connection;
use crate::adapter::Publication;
use crate::console::{Activity, Data};
use crate::protocol::{codes, ChannelKind, ChannelName, EventName, UserId};
use crate::webhook::WebhookEvent;

impl Connection {
    pub(super) async fn on_client_event(&mut self, event: &str, channel: &str, data: String) {
        match self.check_client_event(event, channel, &data) {
            Ok((name, user_id)) => {
                let publication = Publication {
                    channel: &name,
                    event,
                    data: &data,
                    user_id: user_id.as_ref().map(|u| u.as_str()),
                    except: Some(self.handle.socket_id()),
                    cacheable: false,
                };
                // On a cluster node during an outage, it reached this node's subscribers only.
                let _ = self.adapter.publish(&self.app, publication).await;
                self.app.console.report(Activity::ClientEvent {
                    channel: name.as_str(),
                    event,
                    data: Data::of(&data),
                    socket_id: self.handle.socket_id().as_str(),
                    user_id: user_id.as_ref().map(UserId::as_str),
                });
                self.app.hooks.emit(WebhookEvent::ClientEvent {
                    channel: name.to_string(),
                    event: event.to_owned(),
                    data,
                    socket_id: self.handle.socket_id().to_string(),
                    user_id: user_id.map(|u| u.to_string()),
                });
            }
            Err((code, message)) => self.error(code, &message),
        }
    }

    /// The client-event rules, in the order hosted Pusher applies them.
    fn check_client_event(
        &mut self,
        event: &str,
        channel: &str,
        data: &str,
    ) -> Result<(ChannelName, Option<UserId>), (Option<u16>, String)> {
        let reject = |m: String| (None, m);
        let name = EventName::parse(event).map_err(|e| reject(e.to_string()))?;
        if !name.is_client_event() {
            return Err(reject(format!(
                "Unsupported event received on socket: {event}"
            )));
        }
        if !self.app.config.client_events {
            return Err(reject(
                "To send client events, you must enable this feature in the Settings page of your dashboard.".into(),
            ));
        }
        let channel = ChannelName::parse(channel, self.app.channel_name_max_length)
            .map_err(|e| reject(e.to_string()))?;
        if !matches!(
            channel.kind(),
            ChannelKind::Private | ChannelKind::PrivateEncrypted | ChannelKind::Presence
        ) {
            return Err(reject(
                "Client event rejected - only supported on private and presence channels".into(),
            ));
        }
        let Some(user_id) = self.subscriptions.get(&channel) else {
            return Err(reject(format!(
                "Cannot broadcast client event (connection not subscribed to channel {channel})"
            )));
        };
        let max = self.app.config.max_event_data_bytes;
        if data.len() > max {
            return Err(reject(format!(
                "Client event rejected - data is {} bytes, the maximum is {max} bytes",
                data.len()
            )));
        }
        let user_id = user_id.clone();
        if !self.take_rate_token() {
            return Err((
                Some(codes::CLIENT_EVENT_RATE_LIMIT),
                "Client event rejected due to rate limit".into(),
            ));
        }
        Ok((channel, user_id))
    }

    /// A fixed one-second window of `max_client_events_per_second` events.
    fn take_rate_token(&mut self) -> bool {
        let now = Instant::now();
        if now.duration_since(self.rate.0) >= Duration::from_secs(1) {
            self.rate = (now, 0);
        }
        if self.rate.1 >= self.app.config.max_client_events_per_second {
            return false;
        }
        self.rate.1 += 1;
        true
    }
}
