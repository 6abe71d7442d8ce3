//! Cache channels across the cluster: the last API event of each cache channel, with its
//! time to live, so that a subscriber on any node gets it (or `cache_miss`), whichever node
//! the event was published on. One Redis string per channel, expiring with the event.

use std::time::Duration;

use fred::interfaces::KeysInterface;
use fred::types::Expiration;
use serde::{Deserialize, Serialize};

use super::{redis_error, ClusterError, Engine};

/// A cache channel's last event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cached {
    /// The event name.
    pub event: String,
    /// The data string.
    pub data: String,
}

impl Engine {
    /// Keeps `cached` as the channel's last event for `ttl`.
    pub async fn store_cache(
        &self,
        app: &str,
        channel: &str,
        cached: &Cached,
        ttl: Duration,
    ) -> Result<(), ClusterError> {
        let value =
            serde_json::to_string(cached).map_err(|e| ClusterError::Reply(e.to_string()))?;
        let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
        self.client
            .set::<(), _, _>(
                self.keys.cache(app, channel),
                value,
                Some(Expiration::PX(ms)),
                None,
                false,
            )
            .await
            .map_err(redis_error)
    }

    /// The channel's last event and how long it has left, if it has one.
    pub async fn cached(
        &self,
        app: &str,
        channel: &str,
    ) -> Result<Option<(Cached, Duration)>, ClusterError> {
        let key = self.keys.cache(app, channel);
        let value: Option<String> = self.client.get(&key).await.map_err(redis_error)?;
        let Some(value) = value else {
            return Ok(None);
        };
        let left: i64 = self.client.pttl(&key).await.map_err(redis_error)?;
        let cached: Cached =
            serde_json::from_str(&value).map_err(|e| ClusterError::Reply(e.to_string()))?;
        // -2: gone in between; -1: no expiry (not written by us).
        Ok((left > 0).then(|| (cached, Duration::from_millis(left.unsigned_abs()))))
    }
}
