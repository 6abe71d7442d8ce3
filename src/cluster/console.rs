//! Which apps a debug console watches, cluster-wide: each node whose consoles watch an app
//! records itself in the app's sorted set `P:app:A:consoles` (member: the node, score: when the
//! record expires, Unix ms) at every heartbeat, and learns from the same set whether a console on
//! another node watches it. A node that stops watching removes itself; a node that dies is
//! forgotten when its score passes (the key itself expires too). The entries travel on the bus
//! ([`super::bus::BusMessage::Console`]).
//!
//! Scores are the nodes' clocks: nodes more than a record's lifetime apart would miss each
//! other's consoles (as they would the heartbeat's timing anyway).

use std::time::Duration;

use fred::interfaces::{KeysInterface, SortedSetsInterface};

use super::{redis_error, ClusterError, Engine};

impl Engine {
    /// Records whether a console of this node watches `app` (for `lasting`), and answers
    /// whether one on another node does.
    pub async fn console_beat(
        &self,
        app: &str,
        watching: bool,
        lasting: Duration,
    ) -> Result<bool, ClusterError> {
        let key = self.keys.consoles(app);
        let node = self.node.as_str();
        let now = crate::webhook::now_ms() as f64;
        let lasting_ms = lasting.as_millis() as f64;
        if watching {
            self.client
                .zadd::<i64, _, _>(&key, None, None, false, false, (now + lasting_ms, node))
                .await
                .map_err(redis_error)?;
            self.client
                .pexpire::<i64, _>(&key, lasting_ms as i64, None)
                .await
                .map_err(redis_error)?;
        } else {
            self.client
                .zrem::<i64, _, _>(&key, node)
                .await
                .map_err(redis_error)?;
        }
        let watchers: Vec<String> = self
            .client
            .zrangebyscore(&key, now, "+inf", false, None)
            .await
            .map_err(redis_error)?;
        Ok(watchers.iter().any(|n| n != node))
    }
}
