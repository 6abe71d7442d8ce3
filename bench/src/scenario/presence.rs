//! `presence`: join/leave churn on one presence channel. Observers stay subscribed while
//! churners subscribe (as a fresh user each time) and unsubscribe in a loop; the observers
//! time `pusher_internal:member_added` / `member_removed` from the churner's request.

use super::Ctx;
use crate::metrics::Latency;
use crate::report::{latency_json, Better, Outcome};
use crate::target::Target;
use crate::wire;
use crate::ws::Connection;
use anyhow::{Context, Result};
use clap::Args;
use futures_util::StreamExt;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// Arguments of `presence`.
#[derive(Args, Debug, Clone)]
pub struct PresenceArgs {
    /// Members that stay and watch (they count towards the 100-member limit).
    #[arg(long, default_value_t = 10)]
    pub observers: usize,
    /// Connections that join and leave in a loop.
    #[arg(long, default_value_t = 20)]
    pub churners: usize,
    /// Pause between a join and the leave, and between a leave and the next join, ms.
    #[arg(long, default_value_t = 50)]
    pub pause_ms: u64,
    /// Seconds of churn.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Channel name.
    #[arg(long, default_value = "presence-bench")]
    pub channel: String,
}

/// When each user's join and leave were requested (µs since epoch), keyed by user id.
#[derive(Default)]
struct Requests {
    joins: Mutex<HashMap<String, u64>>,
    leaves: Mutex<HashMap<String, u64>>,
}

/// What observers measured.
#[derive(Default)]
struct Seen {
    added: Latency,
    removed: Latency,
    unmatched: u64,
}

fn member_data(user_id: &str) -> String {
    json!({ "user_id": user_id, "user_info": { "name": user_id } }).to_string()
}

/// Runs the scenario.
pub async fn run(ctx: &Ctx, args: PresenceArgs) -> Result<Outcome> {
    let target = ctx.target.clone();
    let requests = Arc::new(Requests::default());
    let (stop, stop_rx) = watch::channel(false);
    let mut observers = Vec::new();
    for i in 0..args.observers {
        let mut connection = Connection::open(&target, i)
            .await
            .context("observer connect")?;
        let data = member_data(&format!("observer-{i}"));
        connection
            .subscribe_signed(&target, &args.channel, Some(&data))
            .await?;
        observers.push(tokio::spawn(observe(
            connection,
            requests.clone(),
            stop_rx.clone(),
        )));
    }
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let churners: Vec<_> = (0..args.churners)
        .map(|j| {
            tokio::spawn(churn(
                target.clone(),
                args.clone(),
                j,
                deadline,
                requests.clone(),
            ))
        })
        .collect();
    let mut cycles = 0u64;
    let mut errors = Vec::new();
    for churner in churners {
        match churner.await {
            Ok(Ok(n)) => cycles += n,
            Ok(Err(error)) => errors.push(format!("{error:#}")),
            Err(error) => errors.push(error.to_string()),
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop.send(true);
    let mut seen = Seen::default();
    for observer in observers {
        if let Ok(part) = observer.await {
            seen.added.merge(&part.added);
            seen.removed.merge(&part.removed);
            seen.unmatched += part.unmatched;
        }
    }
    let mut out = Outcome::default();
    let added = seen.added.summary();
    let removed = seen.removed.summary();
    let expected = cycles * args.observers as u64;
    out.metric(
        "churn_cycles_per_s",
        cycles as f64 / args.duration as f64,
        Better::Higher,
    );
    out.metric("member_added_p50_ms", added.p50_ms, Better::Lower);
    out.metric("member_added_p99_ms", added.p99_ms, Better::Lower);
    out.metric("member_removed_p50_ms", removed.p50_ms, Better::Lower);
    out.metric("member_removed_p99_ms", removed.p99_ms, Better::Lower);
    out.metric(
        "member_added_missing",
        expected.saturating_sub(added.count) as f64,
        Better::Lower,
    );
    out.metric(
        "member_removed_missing",
        expected.saturating_sub(removed.count) as f64,
        Better::Lower,
    );
    if added.count < expected || removed.count < expected {
        out.warnings.push(format!(
            "expected {expected} member_added and member_removed events; got {} and {}",
            added.count, removed.count
        ));
    }
    if !errors.is_empty() {
        out.warnings.push(format!(
            "{} churners failed (first: {})",
            errors.len(),
            errors[0]
        ));
    }
    out.params = json!({
        "observers": args.observers, "churners": args.churners, "pause_ms": args.pause_ms,
        "duration_s": args.duration,
    });
    out.details = json!({
        "cycles": cycles, "member_added": latency_json(&added), "member_removed": latency_json(&removed),
        "unmatched_member_events": seen.unmatched, "errors": errors,
    });
    Ok(out)
}

/// One churner: join as a fresh user, pause, leave, pause, until the deadline.
async fn churn(
    target: Arc<Target>,
    args: PresenceArgs,
    j: usize,
    deadline: Instant,
    requests: Arc<Requests>,
) -> Result<u64> {
    // Churner j is connection observers + j of the scenario.
    let mut connection = Connection::open(&target, args.observers + j).await?;
    let pause = Duration::from_millis(args.pause_ms);
    let mut cycles = 0u64;
    while Instant::now() < deadline {
        let user = format!("churn-{j}-{cycles}");
        let data = member_data(&user);
        if let Ok(mut joins) = requests.joins.lock() {
            joins.insert(user.clone(), wire::now_us());
        }
        connection
            .subscribe_signed(&target, &args.channel, Some(&data))
            .await?;
        tokio::time::sleep(pause).await;
        if let Ok(mut leaves) = requests.leaves.lock() {
            leaves.insert(user, wire::now_us());
        }
        connection
            .send(wire::unsubscribe_frame(&args.channel))
            .await?;
        cycles += 1;
        tokio::time::sleep(pause).await;
    }
    Ok(cycles)
}

/// One observer: time every member event against the matching request.
async fn observe(
    mut connection: Connection,
    requests: Arc<Requests>,
    mut stop: watch::Receiver<bool>,
) -> Seen {
    let mut seen = Seen::default();
    loop {
        let message = tokio::select! {
            _ = stop.changed() => break,
            message = connection.socket.next() => message,
        };
        let Some(Ok(message)) = message else { break };
        let Message::Text(text) = message else {
            continue;
        };
        let now = wire::now_us();
        let Some(frame) = wire::parse_frame(text.as_str()) else {
            continue;
        };
        let (book, histogram) = match frame.event.as_str() {
            "pusher_internal:member_added" => (&requests.joins, &mut seen.added),
            "pusher_internal:member_removed" => (&requests.leaves, &mut seen.removed),
            _ => continue,
        };
        let user = match &frame.data["user_id"] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match book.lock().ok().and_then(|book| book.get(&user).copied()) {
            Some(sent) => histogram.record(now.saturating_sub(sent)),
            None => seen.unmatched += 1,
        }
    }
    seen
}
