//! `compare`: reads run records (JSON files written with `--out`), groups them by case and
//! server, and prints the median of each headline metric per server with the ratio of the
//! reference server (herald) to the best of the others, as a Markdown table. Runs of the
//! [`YARDSTICK`] server (`floor-server`) get a column but are not a peer: a second ratio
//! column shows how close the floor itself comes to the best peer.

use crate::report::{Better, RunRecord};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The server name under which `floor-server` runs are recorded.
pub const YARDSTICK: &str = "floor";

/// Median of a non-empty list.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "json") {
            files.push(path);
        }
    }
    Ok(())
}

/// Builds the comparison table for all records under `dirs`.
pub fn compare(dirs: &[PathBuf], reference: &str) -> Result<String> {
    let mut files = Vec::new();
    for dir in dirs {
        collect(dir, &mut files)?;
    }
    // case -> metric -> server -> values; plus each metric's direction.
    let mut table: BTreeMap<String, BTreeMap<String, BTreeMap<String, Vec<f64>>>> = BTreeMap::new();
    let mut direction: BTreeMap<String, Better> = BTreeMap::new();
    let mut servers: Vec<String> = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let Ok(record) = serde_json::from_str::<RunRecord>(&text) else {
            continue;
        };
        if !servers.contains(&record.server) {
            servers.push(record.server.clone());
        }
        for metric in record.metrics {
            direction.insert(metric.name.clone(), metric.better);
            table
                .entry(record.case.clone())
                .or_default()
                .entry(metric.name)
                .or_default()
                .entry(record.server.clone())
                .or_default()
                .push(metric.value);
        }
    }
    servers.sort_by_key(|s| (s != reference, s == YARDSTICK, s.clone()));
    // The servers with a ratio column: the reference, and the floor when it was measured.
    let mut ratio_of = vec![reference];
    if servers.iter().any(|s| s == YARDSTICK) {
        ratio_of.push(YARDSTICK);
    }
    let mut out = String::new();
    for (case, metrics) in &table {
        out.push_str(&format!("\n### {case}\n\n| metric |"));
        for server in &servers {
            out.push_str(&format!(" {server} |"));
        }
        for server in &ratio_of {
            out.push_str(&format!(" {server} / best peer |"));
        }
        out.push_str("\n|---|");
        out.push_str(&"---:|".repeat(servers.len() + ratio_of.len()));
        out.push('\n');
        for (name, by_server) in metrics {
            out.push_str(&format!("| {name} |"));
            let mut medians = BTreeMap::new();
            for server in &servers {
                match by_server.get(server) {
                    Some(values) => {
                        let mut values = values.clone();
                        let m = median(&mut values);
                        medians.insert(server.clone(), m);
                        out.push_str(&format!(" {} (n={}) |", fmt(m), values.len()));
                    }
                    None => out.push_str(" – |"),
                }
            }
            let better = direction.get(name).copied().unwrap_or(Better::Higher);
            let peers = medians
                .iter()
                .filter(|(s, _)| s.as_str() != reference && s.as_str() != YARDSTICK)
                .map(|(_, v)| *v);
            let best = match better {
                Better::Higher => peers.fold(f64::NAN, f64::max),
                Better::Lower => peers.fold(f64::NAN, f64::min),
            };
            for server in &ratio_of {
                match medians.get(*server) {
                    Some(&mine) if best.is_finite() && best != 0.0 => {
                        out.push_str(&format!(" {:.2}× |", mine / best))
                    }
                    _ => out.push_str(" – |"),
                }
            }
            out.push('\n');
        }
    }
    Ok(out)
}

fn fmt(value: f64) -> String {
    if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_record(dir: &Path, server: &str, p99: f64) {
        let record = serde_json::json!({
            "scenario": "fanout", "case": "rate50", "server": server, "started_unix_s": 0,
            "command": "", "params": {}, "details": {}, "warnings": [],
            "metrics": [{ "name": "latency_p99_ms", "value": p99, "better": "lower" }],
            "resources": { "wall_s": 1.0, "generator_cpu_pct": 1.0, "cores": 2 },
        });
        std::fs::write(dir.join(format!("{server}.json")), record.to_string()).unwrap();
    }

    #[test]
    fn the_yardstick_is_shown_but_never_the_best_peer() {
        let dir = std::env::temp_dir().join(format!("hb-compare-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write_record(&dir, "herald", 5.0);
        write_record(&dir, "sockudo", 10.0);
        write_record(&dir, YARDSTICK, 4.0);
        let table = compare(std::slice::from_ref(&dir), "herald").unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            table.contains("| herald | sockudo | floor | herald / best peer | floor / best peer |"),
            "{table}"
        );
        assert!(
            table.contains(
                "| latency_p99_ms | 5.00 (n=1) | 10.00 (n=1) | 4.00 (n=1) | 0.50× | 0.40× |"
            ),
            "{table}"
        );
    }

    #[test]
    fn median_of_odd_and_even_lists() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
