//! `soak`: a long run with everything at once, to see that nothing accumulates. Healthy
//! subscribers read the whole time; publishers trigger at a steady rate; churners connect,
//! subscribe to a public, a private and a presence channel, unsubscribe and disconnect, over and
//! over; slow readers subscribe to the busy channel and read far slower than it is published
//! to, so the server closes them (4100) and they come back. The server's RSS, open descriptors
//! and threads are sampled throughout, and once more after every client has left.
//!
//! What it reports: the healthy subscribers' losses (must be 0), RSS after the warm-up and at
//! the end of the load, and descriptors/threads before the run and after the clients left.

use super::{delivery_outcome, drain, Ctx};
use crate::group::{ChannelPlan, GroupSpec, Transport};
use crate::metrics;
use crate::publish::{self, Plan};
use crate::report::{Better, Outcome};
use crate::target::Target;
use crate::wire;
use crate::worker::Subscribers;
use crate::ws::Connection;
use anyhow::Result;
use clap::Args;
use futures_util::StreamExt;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Arguments of `soak`.
#[derive(Args, Debug, Clone)]
pub struct SoakArgs {
    /// Seconds of load.
    #[arg(long, default_value_t = 1800)]
    pub duration: u64,
    /// Seconds of load after which RSS is taken as the reference.
    #[arg(long, default_value_t = 120)]
    pub warmup: u64,
    /// Healthy subscribers of the busy channel (they must lose nothing).
    #[arg(long, default_value_t = 200)]
    pub subscribers: usize,
    /// Events per second on the busy channel.
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// Bytes of data per event (beyond the stamp).
    #[arg(long, default_value_t = 500)]
    pub payload_bytes: usize,
    /// Connections that connect, subscribe, unsubscribe and disconnect in a loop.
    #[arg(long, default_value_t = 50)]
    pub churners: usize,
    /// Connections that read the busy channel far too slowly.
    #[arg(long, default_value_t = 5)]
    pub slow_readers: usize,
    /// Seconds between two samples of the server.
    #[arg(long, default_value_t = 10)]
    pub sample_every: u64,
}

/// One sample of the server process.
#[derive(Debug, Clone, Copy)]
struct Sample {
    t_s: u64,
    rss_kib: Option<u64>,
    fds: Option<usize>,
    threads: Option<u64>,
}

fn sample(pid: Option<u32>, t_s: u64) -> Sample {
    Sample {
        t_s,
        rss_kib: pid.and_then(metrics::rss_kib),
        fds: pid.and_then(|p| {
            std::fs::read_dir(format!("/proc/{p}/fd"))
                .ok()
                .map(|d| d.count())
        }),
        threads: pid.and_then(threads),
    }
}

fn threads(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Counts of what the churners and slow readers did.
#[derive(Default)]
struct Churn {
    cycles: AtomicU64,
    failures: AtomicU64,
    slow_closed: AtomicU64,
}

/// Runs the scenario. `server_pid` is needed for the memory and descriptor figures.
pub async fn run(ctx: &Ctx, args: SoakArgs, server_pid: Option<u32>) -> Result<Outcome> {
    let baseline = sample(server_pid, 0);
    let channel = "soak-busy".to_owned();
    let spec = GroupSpec {
        transport: Transport::Ws,
        count: args.subscribers,
        offset: 0,
        channels: ChannelPlan::Shared(channel.clone()),
        connect_concurrency: 100,
        publishers: 2,
        track_events: 0,
    };
    let subscribers =
        Subscribers::start(ctx.target.clone(), spec, ctx.workers, ctx.per_process).await?;
    subscribers.ensure_connected()?;
    let stop = Arc::new(AtomicBool::new(false));
    let churn = Arc::new(Churn::default());
    let mut tasks = Vec::new();
    for i in 0..args.churners {
        let (target, stop, churn) = (ctx.target.clone(), stop.clone(), churn.clone());
        tasks.push(tokio::spawn(churner(target, i, stop, churn)));
    }
    for k in 0..args.slow_readers {
        let (target, stop, churn, channel) = (
            ctx.target.clone(),
            stop.clone(),
            churn.clone(),
            channel.clone(),
        );
        tasks.push(tokio::spawn(slow_reader(target, k, channel, stop, churn)));
    }
    let sampler = {
        let (stop, every) = (stop.clone(), Duration::from_secs(args.sample_every.max(1)));
        tokio::spawn(async move {
            let started = Instant::now();
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                samples.push(sample(server_pid, started.elapsed().as_secs()));
                tokio::time::sleep(every).await;
            }
            samples
        })
    };
    let plan = Plan {
        publishers: 2,
        rate: args.rate,
        duration: Duration::from_secs(args.duration),
        build: publish::padded_trigger_builder(channel, "soak".to_owned(), args.payload_bytes),
        window: None,
    };
    let publish_start_us = wire::now_us();
    let published = publish::run(ctx.target.clone(), plan).await;
    stop.store(true, Ordering::Relaxed);
    let end_of_load = sample(server_pid, args.duration);
    let expected = published.events_ok * subscribers.connected();
    drain(
        &subscribers,
        expected,
        Duration::from_secs(3),
        Duration::from_secs(15),
    )
    .await;
    for task in tasks {
        let _ = task.await;
    }
    let samples = sampler.await?;
    let group = subscribers.finish().await?;
    // Every client has left; give the server a moment to finish closing.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = sample(server_pid, args.duration + 5);

    let mut out = Outcome::default();
    delivery_outcome(&mut out, &published, &group, expected, publish_start_us);
    let warm = samples
        .iter()
        .find(|s| s.t_s >= args.warmup)
        .copied()
        .unwrap_or(end_of_load);
    if let (Some(warm_rss), Some(end_rss)) = (warm.rss_kib, end_of_load.rss_kib) {
        out.metric("rss_after_warmup_kib", warm_rss as f64, Better::Lower);
        out.metric("rss_end_of_load_kib", end_rss as f64, Better::Lower);
        out.metric(
            "rss_growth_after_warmup_pct",
            (end_rss as f64 - warm_rss as f64) * 100.0 / warm_rss.max(1) as f64,
            Better::Lower,
        );
    }
    if let Some(rss) = after.rss_kib {
        out.metric("rss_after_clients_left_kib", rss as f64, Better::Lower);
    }
    let diff = |a: Option<usize>, b: Option<usize>| a.zip(b).map(|(a, b)| a as f64 - b as f64);
    if let Some(d) = diff(after.fds, baseline.fds) {
        out.metric("fds_after_minus_before", d, Better::Lower);
    }
    if let Some(d) = after
        .threads
        .zip(baseline.threads)
        .map(|(a, b)| a as f64 - b as f64)
    {
        out.metric("threads_after_minus_before", d, Better::Lower);
    }
    out.metric(
        "churn_cycles",
        churn.cycles.load(Ordering::Relaxed) as f64,
        Better::Higher,
    );
    out.metric(
        "churn_failures",
        churn.failures.load(Ordering::Relaxed) as f64,
        Better::Lower,
    );
    out.metric(
        "slow_readers_closed",
        churn.slow_closed.load(Ordering::Relaxed) as f64,
        Better::Higher,
    );
    out.details["samples"] = json!({
        "columns": ["t_s", "rss_kib", "fds", "threads"],
        "rows": samples.iter().map(|s| json!([s.t_s, s.rss_kib, s.fds, s.threads])).collect::<Vec<_>>(),
        "baseline": [baseline.t_s, baseline.rss_kib, baseline.fds, baseline.threads],
        "end_of_load": [end_of_load.t_s, end_of_load.rss_kib, end_of_load.fds, end_of_load.threads],
        "after_clients_left": [after.t_s, after.rss_kib, after.fds, after.threads],
    });
    out.params = json!({
        "duration_s": args.duration, "warmup_s": args.warmup, "subscribers": args.subscribers,
        "rate": args.rate, "payload_bytes": args.payload_bytes, "churners": args.churners,
        "slow_readers": args.slow_readers,
    });
    Ok(out)
}

/// Connects, subscribes to a public, a private and a presence channel, stays a moment,
/// unsubscribes, disconnects; again until `stop`.
async fn churner(target: Arc<Target>, index: usize, stop: Arc<AtomicBool>, churn: Arc<Churn>) {
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let result = async {
            let mut conn = Connection::open(&target, index).await?;
            let public = format!("soak-public-{}", index % 10);
            let private = format!("private-soak-{}", index % 10);
            let presence = format!("presence-soak-{}", index % 5);
            let user = format!("{{\"user_id\":\"u{index}-{round}\",\"user_info\":{{}}}}");
            conn.subscribe(&public, None, None).await?;
            conn.subscribe_signed(&target, &private, None).await?;
            conn.subscribe_signed(&target, &presence, Some(&user))
                .await?;
            tokio::time::sleep(Duration::from_millis(100 + fastrand::u64(0..400))).await;
            for channel in [&public, &private, &presence] {
                conn.send(wire::unsubscribe_frame(channel)).await?;
            }
            conn.socket.close(None).await?;
            anyhow::Ok(())
        }
        .await;
        match result {
            Ok(()) => churn.cycles.fetch_add(1, Ordering::Relaxed),
            Err(_) => churn.failures.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// Subscribes to the busy channel and reads one frame a second; when the server closes it
/// (4100), comes back.
async fn slow_reader(
    target: Arc<Target>,
    index: usize,
    channel: String,
    stop: Arc<AtomicBool>,
    churn: Arc<Churn>,
) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut conn) = Connection::open(&target, index).await else {
            churn.failures.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        if conn.subscribe(&channel, None, None).await.is_err() {
            churn.failures.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            match tokio::time::timeout(Duration::from_secs(5), conn.socket.next()).await {
                Ok(Some(Ok(_))) | Err(_) => {}
                Ok(_) => {
                    churn.slow_closed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
}
