//! The cluster's webhook queue: every webhook event a node emits is queued in Redis; any node
//! claims ready events for a lease, delivers them (with its retries, renewing the lease while
//! it is alive) and removes each once its deliveries settled. An event whose claimer dies
//! before that is claimed again when the lease ends, so a webhook survives the node that queued it and the one delivering it (delivered at
//! least once; twice only when a node died between sending and settling).
//!
//! Events are opaque text here (unique JSON written by the caller); times are Redis's clock.

use std::time::Duration;

use fred::interfaces::SortedSetsInterface;

use super::scripts::{self, arg, array, text, SCRIPTS};
use super::{redis_error, ClusterError, Engine};

impl Engine {
    /// Queues `event` (unique text), ready now.
    pub async fn push_webhook(&self, event: &str) -> Result<(), ClusterError> {
        let args = vec![arg(self.keys.prefix().as_str()), arg(event)];
        scripts::run(&self.client, &SCRIPTS.webhook_push, args).await?;
        Ok(())
    }

    /// Claims up to `limit` ready events for `lease`.
    pub async fn claim_webhooks(
        &self,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<String>, ClusterError> {
        let args = vec![
            arg(self.keys.prefix().as_str()),
            arg(&limit.to_string()),
            arg(&lease.as_millis().to_string()),
        ];
        let reply = array(scripts::run(&self.client, &SCRIPTS.webhook_claim, args).await?)?;
        reply.iter().map(text).collect()
    }

    /// Extends the lease of events this node is still delivering.
    pub async fn renew_webhooks(
        &self,
        events: &[String],
        lease: Duration,
    ) -> Result<(), ClusterError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut args = vec![
            arg(self.keys.prefix().as_str()),
            arg(&lease.as_millis().to_string()),
        ];
        args.extend(events.iter().map(|e| arg(e)));
        scripts::run(&self.client, &SCRIPTS.webhook_renew, args).await?;
        Ok(())
    }

    /// Removes settled events from the queue.
    pub async fn settle_webhooks(&self, events: Vec<String>) -> Result<(), ClusterError> {
        if events.is_empty() {
            return Ok(());
        }
        self.client
            .zrem::<i64, _, _>(self.keys.webhooks(), events)
            .await
            .map_err(redis_error)?;
        Ok(())
    }
}
