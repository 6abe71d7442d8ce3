//! The webhook worker: one task that takes [`Queued`] events off the bounded queue, holds
//! `channel_vacated` / `member_removed` for the grace period (dropping them, and the
//! `channel_occupied` / `member_added` that cancels them, when the channel or member comes back),
//! batches for endpoints that want it, and hands each request to a delivery task that signs,
//! POSTs with a timeout and retries with exponential backoff.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::{sleep, sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{now_ms, AppTarget, Dropped, Queued, Receipt, Stats, WebhookEvent};
use crate::config::WebhookConfig;
use crate::console::Activity;

/// Most webhook requests in flight at once, all apps together.
const MAX_IN_FLIGHT: usize = 64;
/// Most events in one batched request.
const MAX_BATCH: usize = 100;
/// Most deliveries one app may have waiting or in flight (retries included).
const MAX_PENDING_PER_APP: usize = 1024;
/// The first retry delay; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

type GraceKey = (String, String, Option<String>);

/// Holds vacated/removed events for the grace period.
#[derive(Debug, Default)]
struct Grace {
    held: HashMap<GraceKey, (Queued, Instant)>,
}

impl Grace {
    /// Takes an event; returns it if it should go out now.
    fn accept(&mut self, q: Queued, delay: Duration) -> Option<Queued> {
        if q.graced {
            return Some(q);
        }
        let app = q.app.app_id.clone();
        match &q.event {
            WebhookEvent::ChannelVacated { channel } => {
                let key = (app, channel.clone(), None);
                self.held.insert(key, (q, Instant::now() + delay));
                None
            }
            WebhookEvent::MemberRemoved { channel, user_id } => {
                let key = (app, channel.clone(), Some(user_id.clone()));
                self.held.insert(key, (q, Instant::now() + delay));
                None
            }
            WebhookEvent::ChannelOccupied { channel } => {
                let key = (app, channel.clone(), None);
                self.held.remove(&key).is_none().then_some(q)
            }
            WebhookEvent::MemberAdded { channel, user_id } => {
                let key = (app, channel.clone(), Some(user_id.clone()));
                self.held.remove(&key).is_none().then_some(q)
            }
            _ => Some(q),
        }
    }

    /// Held events whose grace period is over.
    fn due(&mut self) -> Vec<Queued> {
        let now = Instant::now();
        let keys: Vec<GraceKey> = self
            .held
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        keys.into_iter()
            .filter_map(|k| self.held.remove(&k))
            .map(|(q, _)| q)
            .collect()
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.held.values().map(|(_, at)| *at).min()
    }

    fn drain(&mut self) -> Vec<Queued> {
        self.held.drain().map(|(_, (q, _))| q).collect()
    }
}

/// Events waiting to go out together to one batching endpoint.
#[derive(Debug)]
struct Batch {
    app: Arc<AppTarget>,
    url: String,
    /// The events, each with its receipt when it is durable (a cluster's).
    events: Vec<(WebhookEvent, Option<Arc<Receipt>>)>,
    flush_at: Instant,
}

/// Runs until `shutdown`, then flushes what it holds and waits for deliveries (bounded by
/// `drain_for`).
pub async fn run(
    mut queue: mpsc::Receiver<Queued>,
    config: WebhookConfig,
    shutdown: CancellationToken,
    drain_for: Duration,
) {
    // Hosted Pusher sends `X-Pusher-Key` / `X-Pusher-Signature` in this casing, and receivers
    // that look headers up by exact name (PHP's `getallheaders()` with the official library's
    // `webhook()`) depend on it: HTTP/1.1 title case, not the lower case `http` normalises to.
    let client = match reqwest::Client::builder()
        .timeout(config.timeout)
        .http1_title_case_headers()
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhooks disabled: cannot build an HTTP client");
            return;
        }
    };
    let mut worker = Worker {
        client,
        config,
        grace: Grace::default(),
        batches: HashMap::new(),
        tracker: TaskTracker::new(),
        permits: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        shutdown: shutdown.clone(),
    };
    loop {
        let next = [
            worker.grace.next_deadline(),
            worker.batches.values().map(|b| b.flush_at).min(),
        ]
        .into_iter()
        .flatten()
        .min();
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            q = queue.recv() => match q {
                Some(q) => worker.accept(q),
                None => break,
            },
            _ = sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {}
        }
        for q in worker.grace.due() {
            worker.dispatch(q);
        }
        worker.flush_batches(false);
    }
    while let Ok(q) = queue.try_recv() {
        worker.accept(q);
    }
    for q in worker.grace.drain() {
        worker.dispatch(q);
    }
    worker.flush_batches(true);
    worker.tracker.close();
    let _ = tokio::time::timeout(drain_for, worker.tracker.wait()).await;
}

struct Worker {
    client: reqwest::Client,
    config: WebhookConfig,
    grace: Grace,
    batches: HashMap<(String, String), Batch>,
    tracker: TaskTracker,
    permits: Arc<Semaphore>,
    shutdown: CancellationToken,
}

impl Worker {
    fn accept(&mut self, q: Queued) {
        if let Some(q) = self.grace.accept(q, self.config.vacated_delay) {
            self.dispatch(q);
        }
    }

    /// Sends an event to every target that wants it, now or into its batch.
    fn dispatch(&mut self, q: Queued) {
        let name = q.event.name();
        for target in q
            .app
            .targets
            .iter()
            .filter(|t| t.events.iter().any(|e| e == name))
        {
            if let Some(receipt) = &q.receipt {
                receipt.hand_out();
            }
            if target.batch {
                let key = (q.app.app_id.clone(), target.url.clone());
                let window = self.config.batch_window;
                let batch = self.batches.entry(key).or_insert_with(|| Batch {
                    app: q.app.clone(),
                    url: target.url.clone(),
                    events: Vec::new(),
                    flush_at: Instant::now() + window,
                });
                batch.events.push((q.event.clone(), q.receipt.clone()));
            } else {
                self.deliver(
                    q.app.clone(),
                    target.url.clone(),
                    vec![q.event.clone()],
                    q.time_ms,
                    q.receipt.iter().cloned().collect(),
                );
            }
        }
    }

    fn flush_batches(&mut self, all: bool) {
        let now = Instant::now();
        let due: Vec<(String, String)> = self
            .batches
            .iter()
            .filter(|(_, b)| all || b.flush_at <= now || b.events.len() >= MAX_BATCH)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            if let Some(batch) = self.batches.remove(&key) {
                for chunk in batch.events.chunks(MAX_BATCH) {
                    let events = chunk.iter().map(|(e, _)| e.clone()).collect();
                    let receipts = chunk.iter().filter_map(|(_, r)| r.clone()).collect();
                    self.deliver(
                        batch.app.clone(),
                        batch.url.clone(),
                        events,
                        now_ms(),
                        receipts,
                    );
                }
            }
        }
    }

    /// Hands one request to a delivery task; never waits. An app with too many deliveries
    /// waiting or in flight (a failing endpoint) has new ones dropped and counted, so it cannot
    /// hold back the others.
    fn deliver(
        &mut self,
        app: Arc<AppTarget>,
        url: String,
        events: Vec<WebhookEvent>,
        time_ms: u64,
        receipts: Vec<Arc<Receipt>>,
    ) {
        if app.pending.fetch_add(1, Ordering::AcqRel) >= MAX_PENDING_PER_APP {
            app.pending.fetch_sub(1, Ordering::AcqRel);
            super::count_dropped(&app, Dropped::TooManyPending);
            // Dropped by policy: settled, never to be sent again.
            receipts.iter().for_each(|r| r.settle());
            return;
        }
        let body = serde_json::to_string(&Body {
            time_ms,
            events: &events,
        })
        .unwrap_or_default();
        let delivery = Delivery {
            client: self.client.clone(),
            url,
            signature: crate::auth::webhook_signature(&app.secret, body.as_bytes()),
            events: events.iter().map(WebhookEvent::name).collect(),
            app,
            body,
            retry_for: self.config.retry_for,
            permits: self.permits.clone(),
            shutdown: self.shutdown.clone(),
        };
        self.tracker.spawn(async move {
            if delivery.run().await {
                receipts.iter().for_each(|r| r.settle());
            }
            delivery.app.pending.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

/// A webhook request body, keys in the documented order.
#[derive(Serialize)]
struct Body<'a> {
    time_ms: u64,
    events: &'a [WebhookEvent],
}

/// One signed request and its retries.
struct Delivery {
    client: reqwest::Client,
    app: Arc<AppTarget>,
    url: String,
    body: String,
    signature: String,
    /// The names of the events in `body`, for the console.
    events: Vec<&'static str>,
    retry_for: Duration,
    /// Bounds the requests in flight across all apps; held for one attempt only.
    permits: Arc<Semaphore>,
    shutdown: CancellationToken,
}

impl Delivery {
    /// Sends and retries; true once settled (delivered, or given up after `retry_for`), false
    /// when shutdown cut it short.
    async fn run(&self) -> bool {
        let started = Instant::now();
        let mut backoff = FIRST_BACKOFF;
        let stats = &self.app.stats;
        let mut retries = 0;
        loop {
            let problem = match self.attempt().await {
                Ok(status) => {
                    Stats::count(&stats.delivered);
                    self.report(Some(status), None, retries, "delivered");
                    return true;
                }
                Err(problem) => problem,
            };
            if started.elapsed() + backoff > self.retry_for || self.shutdown.is_cancelled() {
                Stats::count(&stats.failed);
                self.report(problem.0, Some(&problem.1), retries, "given_up");
                tracing::warn!(app_id = %self.app.app_id, url = %self.url, problem = %problem.1, "webhook given up");
                return !self.shutdown.is_cancelled();
            }
            self.report(problem.0, Some(&problem.1), retries, "retrying");
            tracing::debug!(app_id = %self.app.app_id, url = %self.url, problem = %problem.1, ?backoff, "webhook will be retried");
            tokio::select! {
                _ = sleep(backoff) => {}
                _ = self.shutdown.cancelled() => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
            Stats::count(&stats.retried);
            retries += 1;
        }
    }

    /// One attempt: the 2xx status answered, or the status (if any) and what went wrong.
    async fn attempt(&self) -> Result<u16, (Option<u16>, String)> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| (None, e.to_string()))?;
        let response = self
            .client
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("X-Pusher-Key", &self.app.key)
            .header("X-Pusher-Signature", &self.signature)
            .body(self.body.clone())
            .send()
            .await
            .map_err(|e| (None, e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            Err((Some(status.as_u16()), format!("status {status}")))
        }
    }

    /// Tells the app's console of an attempt.
    fn report(&self, status: Option<u16>, error: Option<&str>, retries: u32, outcome: &str) {
        self.app.console.report(Activity::Webhook {
            events: &self.events,
            url: &self.url,
            status,
            error,
            retries,
            outcome,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(event: WebhookEvent) -> Queued {
        let app = Arc::new(AppTarget {
            app_id: "1".into(),
            key: "k".into(),
            secret: "s".into(),
            targets: vec![],
            pending: Default::default(),
            stats: Default::default(),
            console: Arc::new(crate::console::Feed::new("1")),
        });
        Queued {
            app,
            event,
            time_ms: 0,
            graced: false,
            receipt: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn vacated_is_held_and_cancelled_by_a_quick_return() {
        let mut g = Grace::default();
        let d = Duration::from_secs(3);
        assert!(g
            .accept(
                queued(WebhookEvent::ChannelOccupied {
                    channel: "c".into()
                }),
                d
            )
            .is_some());
        assert!(g
            .accept(
                queued(WebhookEvent::ChannelVacated {
                    channel: "c".into()
                }),
                d
            )
            .is_none());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(g.due().is_empty());
        assert!(
            g.accept(
                queued(WebhookEvent::ChannelOccupied {
                    channel: "c".into()
                }),
                d
            )
            .is_none(),
            "no second occupied"
        );
        assert!(g.next_deadline().is_none());

        assert!(g
            .accept(
                queued(WebhookEvent::MemberRemoved {
                    channel: "p".into(),
                    user_id: "u".into()
                }),
                d
            )
            .is_none());
        tokio::time::advance(Duration::from_secs(3)).await;
        let due = g.due();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].event.name(), "member_removed");
        assert!(g
            .accept(
                queued(WebhookEvent::MemberAdded {
                    channel: "p".into(),
                    user_id: "u".into()
                }),
                d
            )
            .is_some());
    }
}
