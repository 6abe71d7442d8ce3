//! The webhooks' grace period across the cluster: `channel_vacated` and `member_removed` are
//! held in Redis for the grace period and sent by whichever node claims them once it is over,
//! unless the channel (or member) came back meanwhile, on any node: then the arrival cancels the
//! held departure, and neither webhook is sent. Held in Redis, a departure outlives the node
//! that saw it: if that node dies, another one sends it.
//!
//! Times are Redis's clock (the scripts read `TIME`), so nodes' clocks need not agree.

use std::time::Duration;

use fred::interfaces::SortedSetsInterface;
use serde::{Deserialize, Serialize};

use super::keys::escape_app;
use super::scripts::{self, arg, array, text, SCRIPTS};
use super::{redis_error, ClusterError, Engine};

/// A departure held for the grace period: a channel vacated (`user` none) or a member removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Departing {
    /// The app id.
    pub app: String,
    /// The channel.
    pub channel: String,
    /// The member, for `member_removed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl Departing {
    /// The member of the sorted set: JSON with the app escaped, the same text for the same
    /// departure whichever node writes it.
    fn encode(&self) -> String {
        let escaped = Departing {
            app: escape_app(&self.app).into_owned(),
            ..self.clone()
        };
        serde_json::to_string(&escaped).unwrap_or_default()
    }

    fn decode(text: &str) -> Option<Departing> {
        let mut d: Departing = serde_json::from_str(text).ok()?;
        d.app = super::keys::unescape_app(&d.app);
        Some(d)
    }
}

impl Engine {
    /// Holds `departure` for `delay`.
    pub async fn hold_departure(
        &self,
        departure: &Departing,
        delay: Duration,
    ) -> Result<(), ClusterError> {
        let args = vec![
            arg(self.keys.prefix().as_str()),
            arg(&departure.encode()),
            arg(&delay.as_millis().to_string()),
        ];
        scripts::run(&self.client, &SCRIPTS.departure_hold, args).await?;
        Ok(())
    }

    /// An arrival: cancels the held departure it matches; true if there was one (then neither
    /// is reported).
    pub async fn cancel_departure(&self, departure: &Departing) -> Result<bool, ClusterError> {
        let removed: i64 = self
            .client
            .zrem(self.keys.departures(), departure.encode())
            .await
            .map_err(redis_error)?;
        Ok(removed > 0)
    }

    /// Claims up to `limit` departures whose grace period is over; each is returned to one
    /// caller only.
    pub async fn due_departures(&self, limit: usize) -> Result<Vec<Departing>, ClusterError> {
        let args = vec![arg(self.keys.prefix().as_str()), arg(&limit.to_string())];
        let reply = array(scripts::run(&self.client, &SCRIPTS.departure_claim, args).await?)?;
        let mut due = Vec::with_capacity(reply.len());
        for value in &reply {
            match Departing::decode(&text(value)?) {
                Some(d) => due.push(d),
                None => tracing::warn!("cluster: a held departure that does not parse"),
            }
        }
        Ok(due)
    }
}
