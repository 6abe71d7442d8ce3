//! `fanout`: S subscribers on one channel, events published through the signed HTTP API at
//! a set rate or flat out. Measures deliveries/s, publish→delivery latency, loss and
//! per-publisher order.

use super::{delivery_outcome, drain, Ctx};
use crate::group::{ChannelPlan, GroupSpec, Transport};
use crate::metrics::Latency;
use crate::publish::{self, Plan};
use crate::report::{Better, Outcome};
use crate::wire;
use crate::worker::Subscribers;
use anyhow::Result;
use clap::Args;
use serde_json::json;
use std::time::Duration;

/// Arguments of `fanout`.
#[derive(Args, Debug, Clone)]
pub struct FanoutArgs {
    /// Subscriber connections.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Total events per second; 0 publishes flat out.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Concurrent publisher connections (each sends one request at a time).
    #[arg(long, default_value_t = 8)]
    pub publishers: u32,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Subscriptions opened at the same time.
    #[arg(long, default_value_t = 100)]
    pub connect_concurrency: usize,
    /// Longest wait for late deliveries after publishing stops, seconds.
    #[arg(long, default_value_t = 10)]
    pub drain: u64,
    /// Flat out only: most events published but not yet delivered to every subscriber
    /// (closed loop); 0 publishes open loop, as fast as the API answers.
    #[arg(long, default_value_t = 50)]
    pub window: u64,
    /// Channel name.
    #[arg(long, default_value = "bench-fanout")]
    pub channel: String,
    /// How subscribers connect: `ws`, or `xhr-streaming` (pusher-js's HTTP fallback, herald only).
    #[arg(long, value_enum, default_value_t = Transport::Ws)]
    pub transport: Transport,
}

/// Runs the scenario.
pub async fn run(ctx: &Ctx, args: FanoutArgs) -> Result<Outcome> {
    let spec = GroupSpec {
        transport: args.transport,
        count: args.subscribers,
        offset: 0,
        channels: ChannelPlan::Shared(args.channel.clone()),
        connect_concurrency: args.connect_concurrency,
        publishers: args.publishers,
        // At a fixed rate in one process, time each event's first and last delivery.
        track_events: if args.rate > 0.0 && ctx.workers == 1 {
            (args.rate * args.duration as f64 / args.publishers.max(1) as f64 * 1.2) as u64 + 100
        } else {
            0
        },
    };
    let subscribers =
        Subscribers::start(ctx.target.clone(), spec, ctx.workers, ctx.per_process).await?;
    subscribers.ensure_connected()?;
    let plan = Plan {
        publishers: args.publishers,
        rate: args.rate,
        duration: Duration::from_secs(args.duration),
        build: publish::trigger_builder(args.channel.clone(), "bench".to_owned()),
        window: subscribers.window(args.rate, args.window),
    };
    let publish_start_us = wire::now_us();
    let published = publish::run(ctx.target.clone(), plan).await;
    let connected = subscribers.connected();
    let expected = published.events_ok * connected;
    let drained_s = drain(
        &subscribers,
        expected,
        Duration::from_secs(3),
        Duration::from_secs(args.drain),
    )
    .await;
    let group = subscribers.finish().await?;
    let mut out = Outcome::default();
    delivery_outcome(&mut out, &published, &group, expected, publish_start_us);
    if !group.event_first.0.is_empty() {
        let first = Latency::from_buckets(&group.event_first).summary();
        let last = Latency::from_buckets(&group.event_last).summary();
        out.metric("event_first_delivery_p50_ms", first.p50_ms, Better::Lower);
        out.metric("event_first_delivery_p99_ms", first.p99_ms, Better::Lower);
        out.metric("event_last_delivery_p50_ms", last.p50_ms, Better::Lower);
        out.metric("event_last_delivery_p99_ms", last.p99_ms, Better::Lower);
    }
    out.params = json!({
        "subscribers": args.subscribers, "rate": args.rate, "publishers": args.publishers,
        "transport": args.transport,
        "duration_s": args.duration, "workers": ctx.workers, "drained_s": drained_s,
        "window": args.window,
    });
    Ok(out)
}
