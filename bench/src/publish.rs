//! Publishing load through the HTTP API: `publishers` sequential keep-alive connections,
//! either flat out or sharing a fixed total event rate, for a fixed time. Each event carries
//! a [`Stamp`](crate::wire::Stamp) so subscribers can measure latency and order.

use crate::api::Publisher;
use crate::metrics::Latency;
use crate::target::Target;
use crate::wire;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior};

/// Builds one request: given the publisher index and its next sequence number, returns the
/// endpoint (`events` or `batch_events`), the body, and how many events it carries.
pub type RequestBuilder = Arc<dyn Fn(u32, &mut u64) -> (&'static str, String, u64) + Send + Sync>;

/// Reads how many deliveries the subscribers have received so far.
pub type DeliveredProbe = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Closed-loop pacing for "flat out" runs: publishers wait while more than `max_events`
/// events are published but not yet delivered to every subscriber, so that the server is
/// kept busy without building an unbounded backlog (which would measure queueing, and make
/// servers that bound their per-connection queues drop slow subscribers).
#[derive(Clone)]
pub struct Window {
    /// Deliveries each event makes (subscribers of its channel).
    pub per_event: u64,
    /// Most events outstanding.
    pub max_events: u64,
    /// Deliveries so far.
    pub delivered: DeliveredProbe,
}

/// How to publish.
pub struct Plan {
    /// Concurrent HTTP connections, each sending one request at a time.
    pub publishers: u32,
    /// Total events per second over all publishers; 0 = as fast as the server answers.
    pub rate: f64,
    /// How long to publish.
    pub duration: Duration,
    /// Request factory.
    pub build: RequestBuilder,
    /// Closed-loop pacing; `None` publishes open loop.
    pub window: Option<Window>,
}

/// Publisher-side state shared by all publishers of a run.
struct Pacing {
    window: Window,
    /// Events in requests sent (failed requests are taken back).
    sent: AtomicU64,
}

impl Pacing {
    /// Waits until the window has room (or the deadline passes).
    async fn room(&self, deadline: Instant) {
        let limit = self.window.max_events * self.window.per_event;
        while Instant::now() < deadline {
            let expected = self.sent.load(Ordering::Relaxed) * self.window.per_event;
            if expected.saturating_sub((self.window.delivered)()) <= limit {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// What the publishers saw.
#[derive(Default)]
pub struct Published {
    /// Requests answered 200.
    pub requests_ok: u64,
    /// Requests that failed (non-200 or transport error).
    pub requests_failed: u64,
    /// Events in the successful requests.
    pub events_ok: u64,
    /// Rate-mode slots skipped because the previous request was still running.
    pub slots_missed: u64,
    /// TCP connections opened by all publishers.
    pub connections_opened: u64,
    /// Responses carrying `Connection: close`.
    pub close_responses: u64,
    /// First failure text.
    pub first_error: Option<String>,
    /// Request round-trip time.
    pub request_latency: Latency,
    /// Seconds spent publishing.
    pub elapsed_s: f64,
}

/// Runs the plan to completion.
pub async fn run(target: Arc<Target>, plan: Plan) -> Published {
    let started = Instant::now();
    let deadline = started + plan.duration;
    let pacing = plan.window.map(|window| {
        Arc::new(Pacing {
            window,
            sent: AtomicU64::new(0),
        })
    });
    let tasks: Vec<_> = (0..plan.publishers)
        .map(|index| {
            let interval = (plan.rate > 0.0)
                .then(|| Duration::from_secs_f64(plan.publishers as f64 / plan.rate));
            tokio::spawn(one_publisher(
                target.clone(),
                index,
                plan.publishers,
                interval,
                deadline,
                plan.build.clone(),
                pacing.clone(),
            ))
        })
        .collect();
    let mut total = Published::default();
    for task in tasks {
        if let Ok(part) = task.await {
            total.requests_ok += part.requests_ok;
            total.requests_failed += part.requests_failed;
            total.events_ok += part.events_ok;
            total.slots_missed += part.slots_missed;
            total.connections_opened += part.connections_opened;
            total.close_responses += part.close_responses;
            total.first_error = total.first_error.or(part.first_error);
            total.request_latency.merge(&part.request_latency);
        }
    }
    total.elapsed_s = started.elapsed().as_secs_f64();
    total
}

async fn one_publisher(
    target: Arc<Target>,
    index: u32,
    publishers: u32,
    interval: Option<Duration>,
    deadline: Instant,
    build: RequestBuilder,
    pacing: Option<Arc<Pacing>>,
) -> Published {
    let mut publisher = Publisher::new(target);
    let mut out = Published::default();
    let mut seq = 0u64;
    // Rate mode: spread publishers evenly over the interval, so that the events of the run
    // are evenly spaced in time rather than bunched (with two publishers at 50/s, one event
    // every 20 ms, not two 5 ms apart every 40 ms).
    let mut ticker = interval.map(|every| {
        let offset = every.mul_f64(index as f64 / publishers as f64);
        let mut ticker = tokio::time::interval_at(Instant::now() + offset, every);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        ticker
    });
    let mut last_tick = Instant::now();
    while Instant::now() < deadline {
        if let (Some(ticker), Some(every)) = (ticker.as_mut(), interval) {
            let tick = ticker.tick().await;
            let skipped = tick.duration_since(last_tick).as_secs_f64() / every.as_secs_f64();
            if skipped > 1.5 && out.requests_ok + out.requests_failed > 0 {
                out.slots_missed += skipped as u64 - 1;
            }
            last_tick = tick;
            if tick >= deadline {
                break;
            }
        }
        if let Some(pacing) = &pacing {
            pacing.room(deadline).await;
            if Instant::now() >= deadline {
                break;
            }
        }
        let (endpoint, body, events) = build(index, &mut seq);
        if let Some(pacing) = &pacing {
            pacing.sent.fetch_add(events, Ordering::Relaxed);
        }
        let sent = wire::now_us();
        match publisher.post(endpoint, body).await {
            Ok(reply) if reply.status == 200 => {
                out.requests_ok += 1;
                out.events_ok += events;
            }
            Ok(reply) => {
                if let Some(pacing) = &pacing {
                    pacing.sent.fetch_sub(events, Ordering::Relaxed);
                }
                out.requests_failed += 1;
                out.first_error
                    .get_or_insert_with(|| format!("HTTP {}: {}", reply.status, reply.body));
            }
            Err(error) => {
                if let Some(pacing) = &pacing {
                    pacing.sent.fetch_sub(events, Ordering::Relaxed);
                }
                out.requests_failed += 1;
                out.first_error.get_or_insert_with(|| format!("{error:#}"));
                // A transport failure (refused, reset): do not spin on a dead server.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        out.request_latency
            .record(wire::now_us().saturating_sub(sent));
    }
    out.connections_opened = publisher.connections_opened;
    out.close_responses = publisher.close_responses;
    out
}

/// A builder for single-channel triggers of benchmark events.
pub fn trigger_builder(channel: String, event: String) -> RequestBuilder {
    padded_trigger_builder(channel, event, 0)
}

/// Like [`trigger_builder`], with `padding` more bytes of data after the stamp (events of a
/// realistic size).
pub fn padded_trigger_builder(channel: String, event: String, padding: usize) -> RequestBuilder {
    let pad = if padding > 0 {
        format!(":{}", "p".repeat(padding - 1))
    } else {
        String::new()
    };
    Arc::new(move |publisher, seq| {
        let stamp = wire::Stamp {
            publisher,
            seq: *seq,
            sent_us: wire::now_us(),
        };
        *seq += 1;
        let data = stamp.encode() + &pad;
        ("events", wire::trigger_body(&channel, &event, &data), 1)
    })
}
