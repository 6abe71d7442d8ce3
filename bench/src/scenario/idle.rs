//! `idle`: C connections, each subscribed to one shared channel, held open without traffic.
//! Measures the connect rate, handshake and subscribe latency, and the server's resident
//! memory per connection (RSS growth of `--server-pid` divided by C).

use super::Ctx;
use crate::group::{ChannelPlan, GroupSpec, Transport};
use crate::metrics::{self, Latency};
use crate::report::{latency_json, Better, Outcome};
use crate::worker::Subscribers;
use anyhow::Result;
use clap::Args;
use serde_json::json;
use std::time::Duration;

/// Arguments of `idle`.
#[derive(Args, Debug, Clone)]
pub struct IdleArgs {
    /// Connections to open and hold.
    #[arg(long, default_value_t = 5000)]
    pub connections: usize,
    /// Connections opened at the same time.
    #[arg(long, default_value_t = 100)]
    pub connect_concurrency: usize,
    /// Seconds to wait after connecting before reading the server's memory.
    #[arg(long, default_value_t = 3)]
    pub settle: u64,
    /// Seconds to hold the connections after the memory reading.
    #[arg(long, default_value_t = 2)]
    pub hold: u64,
    /// Channel all connections subscribe to.
    #[arg(long, default_value = "bench-idle")]
    pub channel: String,
    /// How connections are made: `ws`, or `xhr-streaming` (pusher-js's HTTP fallback, herald only).
    #[arg(long, value_enum, default_value_t = Transport::Ws)]
    pub transport: Transport,
}

/// Runs the scenario. `server_pids` (every node's, for a cluster) are needed for the memory
/// figure.
pub async fn run(ctx: &Ctx, args: IdleArgs, server_pids: Vec<u32>) -> Result<Outcome> {
    let rss_before = metrics::rss_kib_total(&server_pids);
    let spec = GroupSpec {
        transport: args.transport,
        count: args.connections,
        offset: 0,
        channels: ChannelPlan::Shared(args.channel.clone()),
        connect_concurrency: args.connect_concurrency,
        publishers: 1,
        track_events: 0,
    };
    let subscribers =
        Subscribers::start(ctx.target.clone(), spec, ctx.workers, ctx.per_process).await?;
    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    let rss_held = metrics::rss_kib_total(&server_pids);
    tokio::time::sleep(Duration::from_secs(args.hold)).await;
    let group = subscribers.finish().await?;

    let mut out = Outcome::default();
    let connect_s = group.connect_end_us.saturating_sub(group.connect_start_us) as f64 / 1e6;
    let rate = if connect_s > 0.0 {
        group.connected as f64 / connect_s
    } else {
        0.0
    };
    let handshake = Latency::from_buckets(&group.handshake).summary();
    let subscribe = Latency::from_buckets(&group.subscribe).summary();
    out.metric("connections_per_s", rate, Better::Higher);
    out.metric("handshake_p50_ms", handshake.p50_ms, Better::Lower);
    out.metric("handshake_p99_ms", handshake.p99_ms, Better::Lower);
    out.metric("subscribe_p99_ms", subscribe.p99_ms, Better::Lower);
    let per_connection = match (rss_before, rss_held) {
        (Some(before), Some(held)) if group.connected > 0 => {
            let kib = held.saturating_sub(before) as f64 / group.connected as f64;
            out.metric("rss_per_connection_kib", kib, Better::Lower);
            Some(kib)
        }
        _ => {
            out.warnings
                .push("no --server-pid: server memory not measured".to_owned());
            None
        }
    };
    out.metric("connected", group.connected as f64, Better::Higher);
    if group.failed > 0 {
        out.warnings.push(format!(
            "{} connections failed (first: {:?})",
            group.failed,
            group.errors.first()
        ));
    }
    if group.dropped > 0 {
        out.warnings.push(format!(
            "{} connections were closed while idle",
            group.dropped
        ));
    }
    out.worker_cpu_s = group.cpu_s;
    out.params = json!({
        "connections": args.connections, "connect_concurrency": args.connect_concurrency,
        "transport": args.transport,
        "settle_s": args.settle, "hold_s": args.hold, "workers": ctx.workers,
    });
    out.details = json!({
        "connected": group.connected, "failed": group.failed, "dropped": group.dropped,
        "connect_span_s": connect_s, "server_rss_before_kib": rss_before,
        "server_rss_held_kib": rss_held, "rss_per_connection_kib": per_connection,
        "handshake": latency_json(&handshake), "subscribe": latency_json(&subscribe),
        "errors": group.errors,
    });
    Ok(out)
}
