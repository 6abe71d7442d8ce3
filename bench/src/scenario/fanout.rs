//! `fanout`: S subscribers on one channel, events published through the signed HTTP API at
//! a set rate or flat out. Measures deliveries/s, publish→delivery latency, loss and
//! per-publisher order; against several nodes (a cluster), also latency and loss of each
//! node's subscribers.

use super::{delivery_outcome, drain, Ctx};
use crate::group::{ChannelPlan, GroupReport, GroupSpec, Transport};
use crate::metrics::Latency;
use crate::publish::{self, Plan};
use crate::report::{latency_json, Better, Outcome};
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
    /// A shell command run (and waited for) once every subscriber has subscribed, just before
    /// the first publish: e.g. a snapshot of what a cluster's Redis has done so far.
    #[arg(long)]
    pub on_publish_start: Option<String>,
    /// A shell command run (and waited for) once publishing and the drain wait are over.
    #[arg(long)]
    pub on_publish_end: Option<String>,
    /// How subscribers connect: `ws`, or `xhr-streaming` (pusher-js's HTTP fallback, herald only).
    #[arg(long, value_enum, default_value_t = Transport::Ws)]
    pub transport: Transport,
}

/// Runs a hook command through `sh -c`; a hook that cannot run or fails is a warning.
async fn hook(command: Option<&str>, out: &mut Vec<String>) {
    let Some(command) = command else { return };
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .status()
        .await;
    match status {
        Ok(status) if status.success() => {}
        Ok(status) => out.push(format!("hook `{command}` failed: {status}")),
        Err(error) => out.push(format!("hook `{command}` did not run: {error}")),
    }
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
    let mut hook_warnings = Vec::new();
    hook(args.on_publish_start.as_deref(), &mut hook_warnings).await;
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
    hook(args.on_publish_end.as_deref(), &mut hook_warnings).await;
    let group = subscribers.finish().await?;
    let mut out = Outcome {
        warnings: hook_warnings,
        ..Outcome::default()
    };
    delivery_outcome(&mut out, &published, &group, expected, publish_start_us);
    if group.nodes.len() > 1 {
        node_outcome(&mut out, &group, published.events_ok);
    }
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
        "window": args.window, "nodes": ctx.target.nodes(),
    });
    Ok(out)
}

/// Per node (numbered from 1, in `--ws-url` order): its subscribers' p99 and loss as
/// headline figures, and the counts in `details.nodes`. Every subscriber is on the one channel,
/// so each should receive every published event.
fn node_outcome(out: &mut Outcome, group: &GroupReport, events: u64) {
    let mut nodes = Vec::new();
    for (n, node) in group.nodes.iter().enumerate() {
        let latency = Latency::from_buckets(&node.latency).summary();
        let expected = events * node.connected;
        let lost = expected.saturating_sub(node.received);
        out.metric(
            &format!("node{}_latency_p99_ms", n + 1),
            latency.p99_ms,
            Better::Lower,
        );
        out.metric(&format!("node{}_lost", n + 1), lost as f64, Better::Lower);
        nodes.push(json!({
            "node": n + 1, "subscribers_connected": node.connected,
            "expected_deliveries": expected, "received": node.received, "lost": lost,
            "out_of_order": node.out_of_order, "duplicates": node.duplicates,
            "latency": latency_json(&latency),
        }));
    }
    if let Some(details) = out.details.as_object_mut() {
        details.insert("nodes".to_owned(), json!(nodes));
    }
}
