//! Measurement primitives: latency histograms (µs), their mergeable wire form, and process
//! CPU time and resident memory read from `/proc`.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

/// Highest latency the histograms track (60 s, in µs); larger values are clamped.
const MAX_US: u64 = 60_000_000;

/// A latency histogram in microseconds.
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        // Three significant figures over 1 µs..60 s: valid bounds, so this cannot fail.
        Self(Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds"))
    }
}

impl Latency {
    /// Records one sample.
    pub fn record(&mut self, us: u64) {
        self.0.saturating_record(us.clamp(1, MAX_US));
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    /// Percentiles in milliseconds.
    pub fn summary(&self) -> LatencySummary {
        let ms = |us: u64| us as f64 / 1000.0;
        LatencySummary {
            count: self.0.len(),
            p50_ms: ms(self.0.value_at_quantile(0.50)),
            p90_ms: ms(self.0.value_at_quantile(0.90)),
            p99_ms: ms(self.0.value_at_quantile(0.99)),
            max_ms: ms(self.0.max()),
            mean_ms: self.0.mean() / 1000.0,
        }
    }

    /// The recorded values as `(value_us, count)` pairs, for sending to another process.
    pub fn to_buckets(&self) -> Buckets {
        Buckets(
            self.0
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
        )
    }

    /// Rebuilds a histogram from [`Latency::to_buckets`].
    pub fn from_buckets(buckets: &Buckets) -> Self {
        let mut latency = Latency::default();
        for &(value, count) in &buckets.0 {
            let _ = latency.0.record_n(value.clamp(1, MAX_US), count);
        }
        latency
    }
}

/// A histogram as `(value_us, count)` pairs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Buckets(pub Vec<(u64, u64)>);

/// Percentiles of a latency histogram, in milliseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Number of samples.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

/// A histogram shared by many tasks: samples go to one of a few shards so that tasks on
/// different threads rarely wait for the same lock.
pub struct SharedLatency {
    shards: Vec<Mutex<Latency>>,
}

impl SharedLatency {
    /// A histogram with `shards` locks.
    pub fn new(shards: usize) -> Self {
        Self {
            shards: (0..shards.max(1))
                .map(|_| Mutex::new(Latency::default()))
                .collect(),
        }
    }

    /// Records a sample in the shard chosen by `key` (e.g. a connection index).
    pub fn record(&self, key: usize, us: u64) {
        if let Ok(mut shard) = self.shards[key % self.shards.len()].lock() {
            shard.record(us);
        }
    }

    /// All shards merged.
    pub fn snapshot(&self) -> Latency {
        let mut all = Latency::default();
        for shard in &self.shards {
            if let Ok(shard) = shard.lock() {
                all.merge(&shard);
            }
        }
        all
    }
}

/// Clock ticks per second in `/proc/*/stat` (`USER_HZ`, 100 on every Linux ABI we run on).
const TICKS_PER_S: f64 = 100.0;

/// User + system CPU seconds used so far by `pid` (or this process when `None`).
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may contain spaces; fields after its closing ')' are plain.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_S)
}

/// Resident set size of `pid` in KiB (`VmRSS` in `/proc/{pid}/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resident set size of several processes together (the nodes of a cluster), KiB; `None`
/// when there are none or one cannot be read.
pub fn rss_kib_total(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&pid| rss_kib(pid)).sum()
}

/// CPU use over an interval, as a percentage of one core.
pub fn cpu_percent(cpu_s: f64, wall_s: f64) -> f64 {
    if wall_s > 0.0 {
        100.0 * cpu_s / wall_s
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_round_trip_keeps_percentiles() {
        let mut latency = Latency::default();
        for us in 1..=10_000 {
            latency.record(us);
        }
        let copy = Latency::from_buckets(&latency.to_buckets());
        assert_eq!(copy.summary().count, 10_000);
        assert_eq!(copy.summary().p99_ms, latency.summary().p99_ms);
    }

    #[test]
    fn own_cpu_and_memory_are_readable() {
        assert!(cpu_seconds(None).is_some());
        assert!(rss_kib(std::process::id()).unwrap_or(0) > 0);
        let me = std::process::id();
        assert!(rss_kib_total(&[me, me]).unwrap_or(0) > 0);
        assert_eq!(rss_kib_total(&[]), None);
    }
}
