//! `stalled`: subscribers that stop reading beside healthy ones. N connections subscribe to the
//! channel and then never read their sockets; H healthy subscribers read; events of a realistic
//! size are published through the HTTP API, open loop by default. Measures what the stalled
//! connections cost everyone else (triggers/s, the healthy subscribers' latency and loss), how
//! long the server keeps them (its open descriptors over time), and the kernel memory of the
//! server's send queues meanwhile (`/proc/net/tcp`).

use super::{delivery_outcome, drain, Ctx};
use crate::group::{ChannelPlan, GroupSpec, Transport};
use crate::publish::{self, Plan};
use crate::report::{Better, Outcome};
use crate::wire;
use crate::worker::Subscribers;
use crate::ws::Connection;
use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// How often the server's descriptors and send queues are sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Arguments of `stalled`.
#[derive(Args, Debug, Clone)]
pub struct StalledArgs {
    /// Connections that subscribe and then never read.
    #[arg(long, default_value_t = 2000)]
    pub stalled: usize,
    /// Healthy subscriber connections.
    #[arg(long, default_value_t = 10)]
    pub subscribers: usize,
    /// Bytes of data per event (beyond the stamp).
    #[arg(long, default_value_t = 1000)]
    pub payload_bytes: usize,
    /// Total events per second; 0 publishes flat out.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Concurrent publisher connections.
    #[arg(long, default_value_t = 8)]
    pub publishers: u32,
    /// Flat out only: events published but not yet delivered to every healthy subscriber
    /// (closed loop); 0 (the default) publishes open loop, as fast as the API answers.
    #[arg(long, default_value_t = 0)]
    pub window: u64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Longest wait for late deliveries after publishing stops, seconds.
    #[arg(long, default_value_t = 10)]
    pub drain: u64,
    /// Channel name.
    #[arg(long, default_value = "bench-stalled")]
    pub channel: String,
}

/// One sample of the server's side.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Seconds since publishing started (negative before).
    t_s: f64,
    /// Open descriptors of the server process.
    fds: Option<usize>,
    /// Bytes waiting in the send queues of the server's sockets on the WebSocket port.
    send_queued: u64,
}

/// Runs the scenario. `server_pid` is needed for the descriptor counts.
pub async fn run(ctx: &Ctx, args: StalledArgs, server_pid: Option<u32>) -> Result<Outcome> {
    let spec = GroupSpec {
        transport: Transport::Ws,
        count: args.subscribers,
        offset: 0,
        channels: ChannelPlan::Shared(args.channel.clone()),
        connect_concurrency: 100,
        publishers: args.publishers,
        track_events: 0,
    };
    let subscribers =
        Subscribers::start(ctx.target.clone(), spec, ctx.workers, ctx.per_process).await?;
    subscribers.ensure_connected()?;
    let fds_before = server_pid.and_then(open_fds);
    let stalled = open_stalled(ctx, &args).await?;
    let fds_stalled = server_pid.and_then(open_fds);

    // The first node's sockets (with several nodes, only its share is sampled).
    let port = ctx.target.ws_node(0).addr.port();
    let stop = Arc::new(AtomicBool::new(false));
    let publish_started = Instant::now();
    let sampler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                samples.push(Sample {
                    t_s: publish_started.elapsed().as_secs_f64(),
                    fds: server_pid.and_then(open_fds),
                    send_queued: send_queued(port),
                });
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
            samples
        })
    };
    let plan = Plan {
        publishers: args.publishers,
        rate: args.rate,
        duration: Duration::from_secs(args.duration),
        build: publish::padded_trigger_builder(
            args.channel.clone(),
            "bench".to_owned(),
            args.payload_bytes,
        ),
        window: subscribers.window(args.rate, args.window),
    };
    let publish_start_us = wire::now_us();
    let published = publish::run(ctx.target.clone(), plan).await;
    let connected = subscribers.connected();
    let expected = published.events_ok * connected;
    drain(
        &subscribers,
        expected,
        Duration::from_secs(3),
        Duration::from_secs(args.drain),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.await.context("sampler")?;
    let group = subscribers.finish().await?;
    drop(stalled);

    let mut out = Outcome::default();
    delivery_outcome(&mut out, &published, &group, expected, publish_start_us);
    let peak_queued = samples.iter().map(|s| s.send_queued).max().unwrap_or(0);
    out.metric(
        "server_send_queued_peak_mib",
        peak_queued as f64 / (1024.0 * 1024.0),
        Better::Lower,
    );
    out.metric(
        "server_send_queued_peak_per_stalled_kib",
        peak_queued as f64 / 1024.0 / args.stalled.max(1) as f64,
        Better::Lower,
    );
    if let (Some(before), Some(with_stalled)) = (fds_before, fds_stalled) {
        // Closed once the server holds no more than 1 % of them (beyond its publishers).
        let left = |s: &Sample| s.fds.map(|f| f.saturating_sub(before));
        let threshold = (with_stalled.saturating_sub(before)) / 100 + args.publishers as usize;
        let closed_at = samples
            .iter()
            .find(|s| s.t_s >= 0.0 && left(s).is_some_and(|l| l <= threshold))
            .map(|s| s.t_s);
        // The publishers' keep-alive connections were opened after the baseline.
        let remaining = samples
            .last()
            .and_then(left)
            .unwrap_or(0)
            .saturating_sub(args.publishers as usize);
        out.metric(
            "stalled_closed",
            with_stalled
                .saturating_sub(before)
                .saturating_sub(remaining) as f64,
            Better::Higher,
        );
        match closed_at {
            Some(t) => out.metric("stalled_all_closed_s", t, Better::Lower),
            None => out.warnings.push(format!(
                "{remaining} stalled connections were still open when sampling ended"
            )),
        }
    } else {
        out.warnings
            .push("no --server-pid: the stalled connections' closing not measured".to_owned());
    }
    let timeline: Vec<_> = samples
        .iter()
        .step_by(5)
        .map(|s| json!([s.t_s, s.fds, s.send_queued]))
        .collect();
    out.details["stalled_timeline"] = json!({
        "columns": ["t_s", "server_fds", "server_send_queued_bytes"],
        "rows": timeline,
    });
    out.params = json!({
        "stalled": args.stalled, "subscribers": args.subscribers,
        "payload_bytes": args.payload_bytes, "rate": args.rate, "publishers": args.publishers,
        "window": args.window, "duration_s": args.duration, "workers": ctx.workers,
    });
    Ok(out)
}

/// Opens and subscribes the stalled connections, 100 at a time; from then on nothing reads them.
async fn open_stalled(ctx: &Ctx, args: &StalledArgs) -> Result<Vec<Connection>> {
    let permits = Arc::new(Semaphore::new(100));
    let mut tasks = Vec::with_capacity(args.stalled);
    for k in 0..args.stalled {
        let (target, channel, permits) =
            (ctx.target.clone(), args.channel.clone(), permits.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await?;
            let mut conn = Connection::open(&target, k).await?;
            conn.subscribe(&channel, None, None).await?;
            anyhow::Ok(conn)
        }));
    }
    let mut conns = Vec::with_capacity(tasks.len());
    for task in tasks {
        conns.push(task.await.context("stalled connection task")??);
    }
    Ok(conns)
}

/// The number of open descriptors of `pid`.
fn open_fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|dir| dir.count())
}

/// Bytes in the send queues of the sockets whose local port is `port` (the server's side of
/// every connection), from `/proc/net/tcp` and `/proc/net/tcp6`.
fn send_queued(port: u16) -> u64 {
    let local = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter_map(|line| {
                    let mut cols = line.split_whitespace();
                    let address = cols.nth(1)?;
                    let queues = cols.nth(2)?;
                    if !address.ends_with(&local) {
                        return None;
                    }
                    let tx = queues.split(':').next()?;
                    u64::from_str_radix(tx, 16).ok()
                })
                .collect::<Vec<_>>()
        })
        .sum()
}
