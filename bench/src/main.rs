//! `herald-bench`: a load generator for any Pusher Channels compatible server.
//!
//! Layout: `sign` (API and channel signatures) and `wire` (frames, payload stamps) are pure;
//! `ws` and `api` are the two clients (`xhr` and `sockjs`: pusher-js's HTTP streaming fallback); `group` + `worker` hold subscriber connections in
//! this or in child processes; `publish` drives the HTTP API; `scenario::*` combine them;
//! `report` and `compare` turn measurements into JSON and tables; `floor` is a yardstick server.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod api;
mod compare;
mod floor;
mod group;
mod metrics;
mod publish;
mod reader;
mod report;
mod scenario;
mod sign;
mod sockjs;
mod target;
mod wire;
mod worker;
mod ws;
mod xhr;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use report::{Meter, Outcome, RunRecord};
use scenario::Ctx;
use sign::AppCredentials;
use std::path::PathBuf;
use std::sync::Arc;
use target::Target;

/// Load generator for Pusher Channels compatible servers (loopback targets only).
#[derive(Parser, Debug)]
#[command(name = "herald-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// S subscribers on one channel; events through the HTTP API.
    Fanout(Run<scenario::fanout::FanoutArgs>),
    /// Subscribers that stop reading beside healthy ones: what they cost the others.
    Stalled(Run<scenario::stalled::StalledArgs>),
    /// A long run with churn, triggers and slow readers: does anything accumulate?
    Soak(Run<scenario::soak::SoakArgs>),
    /// S connections each on its own channel; events through `batch_events`.
    Channels(Run<scenario::channels::ChannelsArgs>),
    /// C connections held idle: connect rate, handshake latency, server memory.
    Idle(Run<scenario::idle::IdleArgs>),
    /// Signed triggers per second from K keep-alive publishers.
    Api(Run<scenario::api::ApiArgs>),
    /// Presence join/leave churn: member_added / member_removed latency.
    Presence(Run<scenario::presence::PresenceArgs>),
    /// Client events between pairs of clients.
    ClientEvents(Run<scenario::client_events::ClientEventsArgs>),
    /// Median and ratio tables from run records.
    Compare {
        /// Directories with run records (searched recursively).
        dirs: Vec<PathBuf>,
        /// The server whose ratio to the best other server is printed.
        #[arg(long, default_value = "herald")]
        reference: String,
    },
    /// A yardstick server doing the least work per delivery (see BENCHMARKS.md): serves the
    /// `fanout` scenario on 127.0.0.1:PORT until killed.
    FloorServer(floor::FloorArgs),
    /// Internal: one share of subscriber connections (started by `--workers`).
    #[command(hide = true)]
    Worker {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long)]
        spec: String,
    },
}

/// Where the server is.
#[derive(Args, Debug, Clone)]
struct TargetArgs {
    /// WebSocket base URL, e.g. ws://127.0.0.1:6001; for a cluster, each node's,
    /// comma-separated (connection i of a scenario goes to node i mod n).
    #[arg(long, default_value = "ws://127.0.0.1:6001")]
    ws_url: String,
    /// HTTP API base URL, e.g. http://127.0.0.1:6001 (one node of a cluster).
    #[arg(long, default_value = "http://127.0.0.1:6001")]
    api_url: String,
    /// App id.
    #[arg(long, default_value = "app-id")]
    app_id: String,
    /// App key.
    #[arg(long, default_value = "app-key")]
    key: String,
    /// App secret.
    #[arg(long, default_value = "app-secret")]
    secret: String,
}

impl TargetArgs {
    fn resolve(&self) -> Result<Arc<Target>> {
        let app = AppCredentials {
            id: self.app_id.clone(),
            key: self.key.clone(),
            secret: self.secret.clone(),
        };
        Ok(Arc::new(Target::new(&self.ws_url, &self.api_url, app)?))
    }
}

/// Options shared by all scenarios.
#[derive(Args, Debug, Clone)]
struct Run<A: Args> {
    #[command(flatten)]
    target: TargetArgs,
    /// Server process id, for its CPU and memory (RSS from /proc); for a cluster, each
    /// node's, comma-separated (CPU and memory are summed; `stalled` and `soak` watch the
    /// first).
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// Label of the server in reports.
    #[arg(long, default_value = "server")]
    server_name: String,
    /// Label of the case in reports (groups runs in `compare`).
    #[arg(long)]
    case: Option<String>,
    /// Write the JSON run record here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Processes holding subscriber connections (fanout, channels, idle).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    #[command(flatten)]
    args: A,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let per_process = worker::raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(dispatch(cli.command, per_process))
}

/// Runs one scenario subcommand: set up, measure, then record.
macro_rules! scenario {
    ($name:literal, $run:expr, $per_process:expr, |$ctx:ident, $args:ident, $pid:ident| $body:expr) => {{
        let run = $run;
        let $ctx = Ctx {
            target: run.target.resolve()?,
            per_process: $per_process,
            workers: run.workers.max(1),
        };
        let started_unix_s = wire::now_s();
        let meter = Meter::start(&run.server_pid);
        let $args = run.args.clone();
        let $pid = run.server_pid.clone();
        let outcome = $body.await?;
        record($name, &run.common(), started_unix_s, &meter, outcome)
    }};
}

async fn dispatch(command: Command, per_process: u64) -> Result<()> {
    match command {
        Command::Fanout(run) => {
            scenario!(
                "fanout",
                run,
                per_process,
                |c, a, _p| scenario::fanout::run(&c, a)
            )
        }
        Command::Stalled(run) => scenario!("stalled", run, per_process, |c, a, p| {
            scenario::stalled::run(&c, a, p.first().copied())
        }),
        Command::Soak(run) => scenario!("soak", run, per_process, |c, a, p| {
            scenario::soak::run(&c, a, p.first().copied())
        }),
        Command::Channels(run) => scenario!("channels", run, per_process, |c, a, _p| {
            scenario::channels::run(&c, a)
        }),
        Command::Idle(run) => scenario!("idle", run, per_process, |c, a, p| scenario::idle::run(
            &c, a, p
        )),
        Command::Api(run) => scenario!("api", run, per_process, |c, a, _p| scenario::api::run(
            &c, a
        )),
        Command::Presence(run) => scenario!("presence", run, per_process, |c, a, _p| {
            scenario::presence::run(&c, a)
        }),
        Command::ClientEvents(run) => {
            scenario!("client-events", run, per_process, |c, a, _p| {
                scenario::client_events::run(&c, a)
            })
        }
        Command::Compare { dirs, reference } => {
            print!("{}", compare::compare(&dirs, &reference)?);
            Ok(())
        }
        Command::FloorServer(args) => tokio::task::spawn_blocking(move || floor::run(args)).await?,
        Command::Worker { target, spec } => {
            let spec = serde_json::from_str(&spec).context("worker spec")?;
            worker::run_worker(target.resolve()?, spec).await
        }
    }
}

/// The labels and output path of a run.
struct Common {
    server_name: String,
    case: Option<String>,
    out: Option<PathBuf>,
}

impl<A: Args> Run<A> {
    fn common(&self) -> Common {
        Common {
            server_name: self.server_name.clone(),
            case: self.case.clone(),
            out: self.out.clone(),
        }
    }
}

/// Takes the final readings, prints the summary and writes the JSON record.
fn record(
    scenario: &str,
    common: &Common,
    started_unix_s: u64,
    meter: &Meter,
    outcome: Outcome,
) -> Result<()> {
    let resources = meter.finish(outcome.worker_cpu_s);
    let mut warnings = outcome.warnings;
    warnings.extend(report::bottleneck_warnings(&resources));
    let record = RunRecord {
        scenario: scenario.to_owned(),
        case: common.case.clone().unwrap_or_else(|| scenario.to_owned()),
        server: common.server_name.clone(),
        started_unix_s,
        command: portable_command(),
        params: outcome.params,
        metrics: outcome.metrics,
        details: outcome.details,
        resources,
        warnings,
    };
    print!("{}", record.summary());
    if let Some(path) = &common.out {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&record)?)
            .with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}

/// The command line with the program called by its name and paths made relative to the
/// working directory (also inside an argument, e.g. a hook's command), so that records do not
/// carry this machine's layout.
fn portable_command() -> String {
    let cwd = std::env::current_dir()
        .map(|d| format!("{}/", d.display()))
        .unwrap_or_default();
    std::env::args()
        .enumerate()
        .map(|(i, arg)| {
            if i == 0 {
                "herald-bench".to_owned()
            } else if cwd.is_empty() {
                arg
            } else {
                arg.replace(&cwd, "")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
