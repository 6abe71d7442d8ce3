//! Splitting subscriber connections over several processes, because one process may hold
//! only as many sockets as its open-files limit allows (20,000 hard on the bench machines).
//!
//! The parent runs `herald-bench worker --spec JSON ...` per share. A worker connects its
//! share, prints `ready CONNECTED`, then `progress N` every 20 ms, and on `stop` (or end of stdin)
//! prints `report JSON` and exits. [`Subscribers`] hides whether the group is local or not.

use crate::group::{Group, GroupReport, GroupSpec};
use crate::metrics;
use crate::publish::{DeliveredProbe, Window};
use crate::target::Target;
use anyhow::{bail, Context, Result};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// How often a worker reports its delivery count (publishers pace on it).
const PROGRESS_EVERY_MS: u64 = 20;

/// File descriptors kept free in each process for everything that is not a subscriber.
const FD_RESERVE: u64 = 200;

/// Raises the soft open-files limit to the hard one and returns how many subscriber
/// connections one process may hold.
pub fn raise_fd_limit() -> u64 {
    let hard = rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map(|(_, hard)| hard)
        .unwrap_or(1024);
    let soft = rlimit::increase_nofile_limit(hard).unwrap_or(1024);
    soft.saturating_sub(FD_RESERVE)
}

/// Subscriber connections, here or in worker processes.
pub enum Subscribers {
    /// All in this process.
    Local(Group),
    /// One child per share.
    Remote(Vec<Worker>),
}

/// A worker process and what it last said.
pub struct Worker {
    child: Child,
    stdin: ChildStdin,
    progress: Arc<AtomicU64>,
    connected: Arc<AtomicU64>,
    report: mpsc::Receiver<GroupReport>,
}

impl Subscribers {
    /// Starts `spec.count` connections over `workers` processes (1 = this process) and
    /// returns once all have connected or failed.
    pub async fn start(
        target: Arc<Target>,
        spec: GroupSpec,
        workers: usize,
        per_process: u64,
    ) -> Result<Self> {
        let workers = workers.max(1);
        let share = spec.count.div_ceil(workers);
        if share as u64 > per_process {
            bail!(
                "{} connections in {workers} process(es) is {share} per process, above the {per_process} \
                 this machine's open-files limit allows; use --workers {}",
                spec.count,
                (spec.count as u64).div_ceil(per_process.max(1))
            );
        }
        if workers == 1 {
            return Ok(Subscribers::Local(Group::start(target, spec).await));
        }
        let mut children = Vec::new();
        for w in 0..workers {
            let count = share.min(spec.count.saturating_sub(w * share));
            if count == 0 {
                break;
            }
            let part = GroupSpec {
                count,
                offset: spec.offset + w * share,
                ..spec.clone()
            };
            children.push(Worker::spawn(&target, &part)?);
        }
        for child in &mut children {
            child.wait_ready().await?;
        }
        Ok(Subscribers::Remote(children))
    }

    /// Connections that subscribed.
    pub fn connected(&self) -> u64 {
        match self {
            Subscribers::Local(group) => group.connected(),
            Subscribers::Remote(workers) => workers
                .iter()
                .map(|w| w.connected.load(Ordering::Relaxed))
                .sum(),
        }
    }

    /// Closed-loop pacing for flat-out publishing (`rate` 0) with at most `max_events` not yet
    /// delivered to every subscriber; `None` (open loop) at a fixed rate or with `max_events` 0.
    pub fn window(&self, rate: f64, max_events: u64) -> Option<Window> {
        (rate <= 0.0 && max_events > 0).then(|| Window {
            per_event: self.connected(),
            max_events,
            delivered: self.probe(),
        })
    }

    /// A probe of the delivery count that publishers can hold on to.
    pub fn probe(&self) -> DeliveredProbe {
        match self {
            Subscribers::Local(group) => group.probe(),
            Subscribers::Remote(workers) => {
                let counters: Vec<Arc<AtomicU64>> =
                    workers.iter().map(|w| w.progress.clone()).collect();
                Arc::new(move || counters.iter().map(|c| c.load(Ordering::Relaxed)).sum())
            }
        }
    }

    /// Fails when not a single connection subscribed (nothing to measure).
    pub fn ensure_connected(&self) -> Result<()> {
        if self.connected() == 0 {
            bail!("no subscriber connection succeeded; is the server running?");
        }
        Ok(())
    }

    /// Deliveries received so far (workers report every 250 ms).
    pub fn received(&self) -> u64 {
        match self {
            Subscribers::Local(group) => group.received(),
            Subscribers::Remote(workers) => workers
                .iter()
                .map(|w| w.progress.load(Ordering::Relaxed))
                .sum(),
        }
    }

    /// Stops all connections and merges the reports.
    pub async fn finish(self) -> Result<GroupReport> {
        match self {
            Subscribers::Local(group) => Ok(group.finish().await),
            Subscribers::Remote(workers) => {
                let mut merged = GroupReport::default();
                for worker in workers {
                    merged.merge(worker.finish().await?);
                }
                Ok(merged)
            }
        }
    }
}

impl Worker {
    fn spawn(target: &Target, spec: &GroupSpec) -> Result<Self> {
        let exe = std::env::current_exe().context("own executable")?;
        let mut child = Command::new(exe)
            .arg("worker")
            .arg("--spec")
            .arg(serde_json::to_string(spec)?)
            .args(["--ws-url", &target.ws_urls()])
            .args(["--api-url", &format!("http://{}", target.api_authority)])
            .args([
                "--app-id",
                &target.app.id,
                "--key",
                &target.app.key,
                "--secret",
                &target.app.secret,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("spawn worker")?;
        let stdin = child.stdin.take().context("worker stdin")?;
        let stdout = child.stdout.take().context("worker stdout")?;
        let progress = Arc::new(AtomicU64::new(0));
        let connected = Arc::new(AtomicU64::new(0));
        let (report_tx, report) = mpsc::channel(2);
        let seen = progress.clone();
        let subscribed = connected.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(n) = line.strip_prefix("ready ") {
                    subscribed.store(n.trim().parse().unwrap_or(0), Ordering::Relaxed);
                    let _ = report_tx.send(GroupReport::default()).await;
                } else if let Some(n) = line.strip_prefix("progress ") {
                    seen.store(n.trim().parse().unwrap_or(0), Ordering::Relaxed);
                } else if let Some(json) = line.strip_prefix("report ") {
                    if let Ok(report) = serde_json::from_str(json) {
                        let _ = report_tx.send(report).await;
                    }
                }
            }
        });
        Ok(Self {
            child,
            stdin,
            progress,
            connected,
            report,
        })
    }

    async fn wait_ready(&mut self) -> Result<()> {
        self.report
            .recv()
            .await
            .context("worker exited before it was ready")?;
        Ok(())
    }

    async fn finish(mut self) -> Result<GroupReport> {
        self.stdin.write_all(b"stop\n").await?;
        let report = tokio::time::timeout(Duration::from_secs(60), self.report.recv())
            .await
            .context("worker did not report")?
            .context("worker exited without a report")?;
        let _ = self.child.wait().await;
        Ok(report)
    }
}

/// The `worker` subcommand: run one share and talk to the parent over stdio.
pub async fn run_worker(target: Arc<Target>, spec: GroupSpec) -> Result<()> {
    let group = Group::start(target, spec).await;
    let mut out = tokio::io::stdout();
    out.write_all(format!("ready {}\n", group.connected()).as_bytes())
        .await?;
    out.flush().await?;
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let mut tick = tokio::time::interval(Duration::from_millis(PROGRESS_EVERY_MS));
    loop {
        tokio::select! {
            line = stdin.next_line() => match line {
                Ok(Some(line)) if line.trim() != "stop" => {}
                _ => break,
            },
            _ = tick.tick() => {
                out.write_all(format!("progress {}\n", group.received()).as_bytes()).await?;
                out.flush().await?;
            }
        }
    }
    let mut report = group.finish().await;
    report.cpu_s = metrics::cpu_seconds(None).unwrap_or(0.0);
    out.write_all(format!("report {}\n", serde_json::to_string(&report)?).as_bytes())
        .await?;
    out.flush().await?;
    Ok(())
}
