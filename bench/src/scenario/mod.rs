//! The load scenarios. Each takes the shared [`Ctx`] and its own arguments and returns an
//! [`Outcome`](crate::report::Outcome); none of them prints.

pub mod api;
pub mod channels;
pub mod client_events;
pub mod fanout;
pub mod idle;
pub mod presence;
pub mod soak;
pub mod stalled;

use crate::group::GroupReport;
use crate::metrics::Latency;
use crate::publish::Published;
use crate::report::{latency_json, Better, Outcome};
use crate::target::Target;
use crate::worker::Subscribers;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// What every scenario gets.
pub struct Ctx {
    /// The server under test.
    pub target: Arc<Target>,
    /// Subscriber connections one process may hold.
    pub per_process: u64,
    /// Worker processes for subscriber connections.
    pub workers: usize,
}

/// Waits after publishing until `expected` deliveries arrived, nothing arrived for
/// `quiet`, or `limit` passed. Returns the seconds waited.
pub async fn drain(
    subscribers: &Subscribers,
    expected: u64,
    quiet: Duration,
    limit: Duration,
) -> f64 {
    let started = Instant::now();
    let mut last = subscribers.received();
    let mut last_change = Instant::now();
    while subscribers.received() < expected
        && started.elapsed() < limit
        && last_change.elapsed() < quiet
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = subscribers.received();
        if now != last {
            last = now;
            last_change = Instant::now();
        }
    }
    started.elapsed().as_secs_f64()
}

/// Fills in the delivery figures shared by `fanout` and `channels`.
pub fn delivery_outcome(
    out: &mut Outcome,
    published: &Published,
    group: &GroupReport,
    expected: u64,
    publish_start_us: u64,
) {
    let latency = Latency::from_buckets(&group.latency).summary();
    let span_s = (group.last_delivery_us.saturating_sub(publish_start_us)) as f64 / 1e6;
    let deliveries_per_s = if span_s > 0.0 {
        group.received as f64 / span_s
    } else {
        0.0
    };
    let lost = expected.saturating_sub(group.received);
    out.metric("deliveries_per_s", deliveries_per_s, Better::Higher);
    out.metric(
        "events_published_per_s",
        published.events_ok as f64 / published.elapsed_s.max(1e-9),
        Better::Higher,
    );
    out.metric("latency_p50_ms", latency.p50_ms, Better::Lower);
    out.metric("latency_p90_ms", latency.p90_ms, Better::Lower);
    out.metric("latency_p99_ms", latency.p99_ms, Better::Lower);
    out.metric("latency_max_ms", latency.max_ms, Better::Lower);
    out.metric("lost", lost as f64, Better::Lower);
    out.metric("out_of_order", group.out_of_order as f64, Better::Lower);
    out.details = json!({
        "subscribers_connected": group.connected,
        "subscribers_failed": group.failed,
        "subscribers_dropped": group.dropped,
        "events_published": published.events_ok,
        "requests_ok": published.requests_ok,
        "requests_failed": published.requests_failed,
        "rate_slots_missed": published.slots_missed,
        "publish_error": published.first_error,
        "api_connections_opened": published.connections_opened,
        "api_close_responses": published.close_responses,
        "expected_deliveries": expected,
        "received": group.received,
        "duplicates": group.duplicates,
        "delivery_span_s": span_s,
        "latency": latency_json(&latency),
        "request_latency": latency_json(&published.request_latency.summary()),
        "errors": group.errors,
    });
    if lost > 0 {
        out.warnings
            .push(format!("{lost} of {expected} deliveries did not arrive"));
    }
    if group.dropped > 0 {
        out.warnings.push(format!(
            "{} subscriber connections were closed during the run",
            group.dropped
        ));
    }
    if group.failed > 0 {
        out.warnings.push(format!(
            "{} subscriber connections failed to connect",
            group.failed
        ));
    }
    if published.requests_failed > 0 {
        out.warnings.push(format!(
            "{} API requests failed (first: {})",
            published.requests_failed,
            published.first_error.clone().unwrap_or_default()
        ));
    }
    if published.slots_missed > 0 {
        out.warnings.push(format!(
            "{} publish slots missed: the set rate was not reached",
            published.slots_missed
        ));
    }
    out.worker_cpu_s += group.cpu_s;
}
