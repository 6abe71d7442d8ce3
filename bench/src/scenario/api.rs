//! `api`: signed triggers per second from K keep-alive publishers, flat out, to a channel
//! without subscribers. Also reports whether the server kept the HTTP connections alive.

use super::Ctx;
use crate::publish::{self, Plan};
use crate::report::{latency_json, Better, Outcome};
use anyhow::Result;
use clap::Args;
use serde_json::json;
use std::time::Duration;

/// Arguments of `api`.
#[derive(Args, Debug, Clone)]
pub struct ApiArgs {
    /// Concurrent keep-alive publisher connections.
    #[arg(long, default_value_t = 4)]
    pub publishers: u32,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Total triggers per second; 0 = flat out.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Channel to trigger on.
    #[arg(long, default_value = "bench-api")]
    pub channel: String,
}

/// Runs the scenario.
pub async fn run(ctx: &Ctx, args: ApiArgs) -> Result<Outcome> {
    let plan = Plan {
        publishers: args.publishers,
        rate: args.rate,
        duration: Duration::from_secs(args.duration),
        build: publish::trigger_builder(args.channel.clone(), "bench".to_owned()),
        window: None,
    };
    let published = publish::run(ctx.target.clone(), plan).await;
    let latency = published.request_latency.summary();
    let mut out = Outcome::default();
    out.metric(
        "triggers_per_s",
        published.requests_ok as f64 / published.elapsed_s.max(1e-9),
        Better::Higher,
    );
    out.metric("request_p50_ms", latency.p50_ms, Better::Lower);
    out.metric("request_p99_ms", latency.p99_ms, Better::Lower);
    out.metric(
        "connections_opened",
        published.connections_opened as f64,
        Better::Lower,
    );
    let keep_alive = published.connections_opened <= args.publishers as u64;
    if !keep_alive {
        out.warnings.push(format!(
            "server did not keep HTTP connections alive: {} connections for {} requests ({} `Connection: close` replies)",
            published.connections_opened,
            published.requests_ok + published.requests_failed,
            published.close_responses
        ));
    }
    if published.requests_failed > 0 {
        out.warnings.push(format!(
            "{} requests failed (first: {})",
            published.requests_failed,
            published.first_error.clone().unwrap_or_default()
        ));
    }
    out.params =
        json!({ "publishers": args.publishers, "duration_s": args.duration, "rate": args.rate });
    out.details = json!({
        "requests_ok": published.requests_ok, "requests_failed": published.requests_failed,
        "first_error": published.first_error, "keep_alive": keep_alive,
        "connections_opened": published.connections_opened, "close_responses": published.close_responses,
        "request_latency": latency_json(&latency),
    });
    Ok(out)
}
