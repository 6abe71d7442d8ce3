//! `client-events`: pairs of clients on private channels; one side of each pair sends
//! `client-bench` events at a set rate, the other measures throughput, latency, loss and
//! order. Servers rate-limit client events per connection (10/s on Pusher), so the rate is
//! per sender and the server's limit must be raised to go beyond it.

use super::Ctx;
use crate::metrics::Latency;
use crate::report::{latency_json, Better, Outcome};
use crate::wire::{self, Stamp};
use crate::ws::Connection;
use anyhow::{Context, Result};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;

/// Arguments of `client-events`.
#[derive(Args, Debug, Clone)]
pub struct ClientEventsArgs {
    /// Sender/receiver pairs.
    #[arg(long, default_value_t = 100)]
    pub pairs: usize,
    /// Events per second per sender.
    #[arg(long, default_value_t = 8.0)]
    pub rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
}

/// One pair's figures.
#[derive(Default)]
struct PairStats {
    sent: u64,
    received: u64,
    out_of_order: u64,
    server_errors: u64,
    latency: Latency,
}

/// Runs the scenario.
pub async fn run(ctx: &Ctx, args: ClientEventsArgs) -> Result<Outcome> {
    let target = ctx.target.clone();
    let (stop, stop_rx) = watch::channel(false);
    let mut receivers = Vec::new();
    let mut senders = Vec::new();
    for i in 0..args.pairs {
        let channel = format!("private-bench-pair-{i}");
        // Receiver and sender are connections 2i and 2i + 1: on a cluster, on different nodes.
        let mut receiver = Connection::open(&target, 2 * i)
            .await
            .context("receiver connect")?;
        receiver.subscribe_signed(&target, &channel, None).await?;
        let mut sender = Connection::open(&target, 2 * i + 1)
            .await
            .context("sender connect")?;
        sender.subscribe_signed(&target, &channel, None).await?;
        receivers.push(tokio::spawn(receive(receiver, stop_rx.clone())));
        senders.push((sender, channel));
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration);
    let senders: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(i, (sender, channel))| {
            tokio::spawn(send(sender, channel, i as u32, args.rate, deadline))
        })
        .collect();
    let mut total = PairStats::default();
    for sender in senders {
        if let Ok(Ok((sent, errors))) = sender.await {
            total.sent += sent;
            total.server_errors += errors;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop.send(true);
    for receiver in receivers {
        if let Ok(part) = receiver.await {
            total.received += part.received;
            total.out_of_order += part.out_of_order;
            total.latency.merge(&part.latency);
        }
    }
    let latency = total.latency.summary();
    let lost = total.sent.saturating_sub(total.received);
    let mut out = Outcome::default();
    out.metric(
        "client_events_per_s",
        total.received as f64 / args.duration as f64,
        Better::Higher,
    );
    out.metric("latency_p50_ms", latency.p50_ms, Better::Lower);
    out.metric("latency_p99_ms", latency.p99_ms, Better::Lower);
    out.metric("lost", lost as f64, Better::Lower);
    out.metric("out_of_order", total.out_of_order as f64, Better::Lower);
    if lost > 0 {
        out.warnings.push(format!(
            "{lost} of {} client events did not arrive",
            total.sent
        ));
    }
    if total.server_errors > 0 {
        out.warnings.push(format!(
            "senders got {} pusher:error replies (rate limit?)",
            total.server_errors
        ));
    }
    out.params =
        json!({ "pairs": args.pairs, "rate_per_sender": args.rate, "duration_s": args.duration });
    out.details = json!({
        "sent": total.sent, "received": total.received, "server_errors": total.server_errors,
        "latency": latency_json(&latency),
    });
    Ok(out)
}

/// Sends stamped client events at `rate` until the deadline; counts `pusher:error` replies.
async fn send(
    connection: Connection,
    channel: String,
    pair: u32,
    rate: f64,
    deadline: Instant,
) -> Result<(u64, u64)> {
    let (mut sink, mut stream) = connection.socket.split();
    let errors = tokio::spawn(async move {
        let mut errors = 0u64;
        while let Some(Ok(message)) = stream.next().await {
            if let Message::Text(text) = message {
                if text.as_str().contains("pusher:error") {
                    errors += 1;
                }
            }
        }
        errors
    });
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.001)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut seq = 0u64;
    loop {
        let tick = ticker.tick().await;
        if tick >= deadline {
            break;
        }
        let stamp = Stamp {
            publisher: pair,
            seq,
            sent_us: wire::now_us(),
        };
        sink.send(Message::text(wire::client_event_frame(
            &channel,
            "client-bench",
            &stamp.encode(),
        )))
        .await?;
        seq += 1;
    }
    // Give in-flight error replies a moment, then close and collect.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = sink.close().await;
    let errors = tokio::time::timeout(Duration::from_secs(3), errors)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    Ok((seq, errors))
}

/// Receives one pair's events until stopped.
async fn receive(mut connection: Connection, mut stop: watch::Receiver<bool>) -> PairStats {
    let mut stats = PairStats::default();
    let mut last: Option<u64> = None;
    loop {
        let message = tokio::select! {
            _ = stop.changed() => break,
            message = connection.socket.next() => message,
        };
        let Some(Ok(message)) = message else { break };
        let Message::Text(text) = message else {
            continue;
        };
        let Some(stamp) = wire::find_stamp(text.as_str()) else {
            continue;
        };
        stats
            .latency
            .record(wire::now_us().saturating_sub(stamp.sent_us));
        stats.received += 1;
        match last {
            Some(seen) if stamp.seq <= seen => stats.out_of_order += 1,
            _ => last = Some(stamp.seq),
        }
    }
    stats
}
