//! `channels`: S connections, each on its own channel, fed with `batch_events` requests of
//! up to 10 events for distinct channels. Measures deliveries/s, latency, loss and order.

use super::{delivery_outcome, drain, Ctx};
use crate::group::{ChannelPlan, GroupSpec, Transport};
use crate::publish::{self, Plan, RequestBuilder, Window};
use crate::report::Outcome;
use crate::wire;
use crate::worker::Subscribers;
use anyhow::Result;
use clap::Args;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Arguments of `channels`.
#[derive(Args, Debug, Clone)]
pub struct ChannelsArgs {
    /// Connections, one channel each.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Events per `batch_events` request (at most 10 on Pusher).
    #[arg(long, default_value_t = 10)]
    pub batch: u64,
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
    /// Flat out only: most events published but not yet delivered (closed loop);
    /// 0 publishes open loop.
    #[arg(long, default_value_t = 2000)]
    pub window: u64,
    /// Longest wait for late deliveries, seconds.
    #[arg(long, default_value_t = 10)]
    pub drain: u64,
}

const PREFIX: &str = "bench-ch-";

/// Batches that walk over all channels: publisher p's k-th event goes to channel
/// `(p * 7919 + k) % connections`, so each channel sees each publisher's events in order.
fn batch_builder(connections: usize, batch: u64) -> RequestBuilder {
    Arc::new(move |publisher, seq| {
        let sent_us = wire::now_us();
        let items: Vec<(String, String)> = (0..batch)
            .map(|_| {
                let channel = (publisher as u64 * 7919 + *seq) % connections.max(1) as u64;
                let stamp = wire::Stamp {
                    publisher,
                    seq: *seq,
                    sent_us,
                };
                *seq += 1;
                (format!("{PREFIX}{channel}"), stamp.encode())
            })
            .collect();
        ("batch_events", wire::batch_body("bench", &items), batch)
    })
}

/// Runs the scenario.
pub async fn run(ctx: &Ctx, args: ChannelsArgs) -> Result<Outcome> {
    let spec = GroupSpec {
        transport: Transport::Ws,
        count: args.connections,
        offset: 0,
        channels: ChannelPlan::PerConnection(PREFIX.to_owned()),
        connect_concurrency: args.connect_concurrency,
        publishers: args.publishers,
        track_events: 0,
    };
    let subscribers =
        Subscribers::start(ctx.target.clone(), spec, ctx.workers, ctx.per_process).await?;
    subscribers.ensure_connected()?;
    let plan = Plan {
        publishers: args.publishers,
        rate: args.rate,
        duration: Duration::from_secs(args.duration),
        build: batch_builder(args.connections, args.batch.clamp(1, 100)),
        window: (args.rate <= 0.0 && args.window > 0).then(|| Window {
            per_event: 1,
            max_events: args.window,
            delivered: subscribers.probe(),
        }),
    };
    let publish_start_us = wire::now_us();
    let published = publish::run(ctx.target.clone(), plan).await;
    let expected = published.events_ok;
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
    out.params = json!({
        "connections": args.connections, "batch": args.batch, "rate": args.rate,
        "publishers": args.publishers, "duration_s": args.duration, "workers": ctx.workers,
        "window": args.window,
        "drained_s": drained_s,
    });
    Ok(out)
}
