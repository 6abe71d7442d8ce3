//! The `herald` binary: parse the command line, load the configuration, set up logging, bind the
//! listeners and run the server until SIGTERM/SIGINT; or, with `--health`, ask the server
//! configured the same way whether it is ready.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use herald::config::Config;
use herald::server::Listeners;
use herald::shutdown::Shutdown;

/// A self-hosted Pusher Channels server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TOML configuration file (see the README for every key).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
    /// Ask the herald configured like this (same file, same HERALD_* variables) whether it is
    /// ready (GET /ready on its metrics listener, else its main one); exit 0 if it answers 200.
    /// For container health checks.
    #[arg(long, conflicts_with = "print_config")]
    health: bool,
}

/// Runs herald; an error that stops it is printed on one line, its causes joined by `: `
/// (e.g. `invalid configuration: HERALD_PORT: expected a whole number, got "x"`).
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let text = match &args.config {
        Some(path) => Some(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        ),
        None => None,
    };
    let config =
        Config::load(text.as_deref(), &Config::process_env).context("invalid configuration")?;
    if args.print_config {
        print!("{}", config.to_toml());
        return Ok(());
    }
    if args.health {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        return runtime
            .block_on(herald::probe::ready(&config))
            .context("not ready");
    }
    herald::logging::init(&config.server.log, config.server.log_format)
        .context("setting up logging")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listeners = Listeners::bind(&config)?;
    let bound = listeners.main.local_addr()?;
    if config.development_app {
        tracing::warn!(
            "no app configured: serving the DEVELOPMENT app (id 1, key app-key, secret app-secret) on loopback only"
        );
    }
    for app in &config.apps {
        tracing::info!(app_id = %app.id, key = %app.key, "app ready");
    }
    match &listeners.metrics {
        Some(metrics) => tracing::info!("metrics on http://{}/metrics", metrics.local_addr()?),
        None => tracing::info!("metrics listener off"),
    }
    let console = listeners
        .console
        .as_ref()
        .map(|l| l.local_addr())
        .transpose()?;
    if let Some(console) = console {
        tracing::warn!(
            "debug console on http://{console}/ (token login; keep it on loopback or behind TLS)"
        );
    }
    let scheme = listeners.scheme();
    let shutdown = Shutdown::new();
    tokio::spawn(shutdown.clone().on_signals());
    let serving = || {
        tracing::info!("herald listening on {scheme}://{bound}");
        println!("herald listening on {scheme}://{bound}");
        if let Some(console) = console {
            println!("herald console on http://{console}/");
        }
    };
    herald::server::run_announced(listeners, config, shutdown, serving).await?;
    tracing::info!("stopped");
    Ok(())
}
