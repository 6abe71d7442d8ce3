//! One run's result: the JSON document written with `--out`, the readable summary printed
//! on stdout, and the resource accounting (generator and server CPU, server memory) that
//! decides whether to warn that the generator, not the server, was the bottleneck.

use crate::metrics::{self, LatencySummary};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

/// Which direction of a metric is an improvement.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Larger is better (throughput).
    Higher,
    /// Smaller is better (latency, memory, loss).
    Lower,
}

/// A named figure of a run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Metric {
    /// Name, e.g. `deliveries_per_s`.
    pub name: String,
    /// Value.
    pub value: f64,
    /// Direction of improvement.
    pub better: Better,
}

/// What a scenario produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The scenario's parameters as given.
    pub params: Value,
    /// Headline figures, compared across servers by `compare`.
    pub metrics: Vec<Metric>,
    /// Everything else worth keeping (latency summaries, error texts, counts).
    pub details: Value,
    /// Things the reader must know (loss, dropped connections, ...).
    pub warnings: Vec<String>,
    /// CPU seconds used by worker processes, added to the generator's own.
    pub worker_cpu_s: f64,
}

impl Outcome {
    /// Adds a headline metric.
    pub fn metric(&mut self, name: &str, value: f64, better: Better) {
        self.metrics.push(Metric {
            name: name.to_owned(),
            value,
            better,
        });
    }
}

/// CPU and memory of both sides over a run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Resources {
    /// Wall-clock seconds of the run.
    pub wall_s: f64,
    /// Generator CPU (this process and its workers), % of one core.
    pub generator_cpu_pct: f64,
    /// Server CPU, % of one core (when `--server-pid` was given); with several processes
    /// (a cluster's nodes), their sum.
    pub server_cpu_pct: Option<f64>,
    /// With several server processes, each one's CPU, % of one core, in `--server-pid` order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_cpu_pct_each: Vec<f64>,
    /// Server RSS at the start, KiB (summed over several processes).
    pub server_rss_start_kib: Option<u64>,
    /// Server RSS at the end, KiB.
    pub server_rss_end_kib: Option<u64>,
    /// Cores on this machine.
    pub cores: usize,
    /// 1-minute load average when the run started (other work on the machine).
    pub loadavg_start: Option<f64>,
}

/// The 1-minute load average.
fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Takes the starting readings; [`Meter::finish`] takes the final ones.
pub struct Meter {
    started: Instant,
    own_cpu: f64,
    /// The server's processes (one, or a cluster's nodes), each with its CPU seconds at the
    /// start (`None` if unreadable).
    servers: Vec<(u32, Option<f64>)>,
    server_rss: Option<u64>,
    loadavg: Option<f64>,
}

impl Meter {
    /// Starts measuring this process and, if given, the server's processes.
    pub fn start(server_pids: &[u32]) -> Self {
        Self {
            started: Instant::now(),
            own_cpu: metrics::cpu_seconds(None).unwrap_or(0.0),
            servers: server_pids
                .iter()
                .map(|&pid| (pid, metrics::cpu_seconds(Some(pid))))
                .collect(),
            server_rss: metrics::rss_kib_total(server_pids),
            loadavg: loadavg(),
        }
    }

    /// Final readings; `worker_cpu_s` is what worker processes reported.
    pub fn finish(&self, worker_cpu_s: f64) -> Resources {
        let wall_s = self.started.elapsed().as_secs_f64();
        let own = metrics::cpu_seconds(None).unwrap_or(0.0) - self.own_cpu;
        // Each process's share; the sum only if every one was readable.
        let each: Option<Vec<f64>> = self
            .servers
            .iter()
            .map(|&(pid, start)| {
                let used = metrics::cpu_seconds(Some(pid))? - start?;
                Some(metrics::cpu_percent(used, wall_s))
            })
            .collect();
        let each = each.filter(|each| !each.is_empty());
        let pids: Vec<u32> = self.servers.iter().map(|&(pid, _)| pid).collect();
        Resources {
            wall_s,
            generator_cpu_pct: metrics::cpu_percent(own + worker_cpu_s, wall_s),
            server_cpu_pct: each.as_ref().map(|each| each.iter().sum()),
            server_cpu_pct_each: each.filter(|each| each.len() > 1).unwrap_or_default(),
            server_rss_start_kib: self.server_rss,
            server_rss_end_kib: metrics::rss_kib_total(&pids),
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            loadavg_start: self.loadavg,
        }
    }
}

/// Warnings about who limited the measurement.
pub fn bottleneck_warnings(resources: &Resources) -> Vec<String> {
    let mut warnings = Vec::new();
    let cores = resources.cores as f64 * 100.0;
    let generator = resources.generator_cpu_pct;
    if let Some(server) = resources.server_cpu_pct {
        if generator > server && generator >= 50.0 {
            warnings.push(format!(
                "generator used more CPU ({generator:.0}%) than the server ({server:.0}%): the figures are \
                 likely limited by the generator, not the server"
            ));
        }
        if generator + server > 0.9 * cores {
            warnings.push(format!(
                "generator + server used {:.0}% of {:.0}% available: the machine's CPU was saturated",
                generator + server,
                cores
            ));
        }
    } else if generator > 0.9 * cores / 2.0 {
        warnings.push(format!(
            "generator used {generator:.0}% CPU; pass --server-pid to compare with the server"
        ));
    }
    warnings
}

/// The JSON document of one run.
#[derive(Debug, Serialize, Deserialize)]
pub struct RunRecord {
    /// Scenario name.
    pub scenario: String,
    /// Free-form case label (e.g. `fanout-1000-flat`), used by `compare` to group runs.
    pub case: String,
    /// Server label (e.g. `herald`).
    pub server: String,
    /// Start of the run, seconds since the epoch.
    pub started_unix_s: u64,
    /// The command line that produced it.
    pub command: String,
    /// Scenario parameters.
    pub params: Value,
    /// Headline figures.
    pub metrics: Vec<Metric>,
    /// Further details.
    pub details: Value,
    /// CPU and memory.
    pub resources: Resources,
    /// Warnings.
    pub warnings: Vec<String>,
}

impl RunRecord {
    /// The readable summary.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "== {} [{}] against {} ==\n",
            self.scenario, self.case, self.server
        );
        for metric in &self.metrics {
            text.push_str(&format!("  {:<28} {:>14.3}\n", metric.name, metric.value));
        }
        let r = &self.resources;
        text.push_str(&format!(
            "  wall {:.1}s, generator CPU {:.0}%",
            r.wall_s, r.generator_cpu_pct
        ));
        if let Some(server) = r.server_cpu_pct {
            text.push_str(&format!(", server CPU {server:.0}%"));
        }
        if !r.server_cpu_pct_each.is_empty() {
            let each: Vec<String> = r
                .server_cpu_pct_each
                .iter()
                .map(|pct| format!("{pct:.0}%"))
                .collect();
            text.push_str(&format!(" ({})", each.join(" + ")));
        }
        if let (Some(a), Some(b)) = (r.server_rss_start_kib, r.server_rss_end_kib) {
            text.push_str(&format!(", server RSS {a} -> {b} KiB"));
        }
        text.push('\n');
        for warning in &self.warnings {
            text.push_str(&format!("  WARNING: {warning}\n"));
        }
        text
    }
}

/// A latency summary as JSON.
pub fn latency_json(summary: &LatencySummary) -> Value {
    serde_json::to_value(summary).unwrap_or(Value::Null)
}
