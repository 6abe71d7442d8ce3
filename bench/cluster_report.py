#!/usr/bin/env python3
"""The two reporting steps of bench/cluster.sh (standard library only).

    cluster_report.py annotate S0 S1 S2 RECORD
        Adds Redis's share of one run to herald-bench's JSON record, from three snapshots
        written by the script's redis-snapshot (before the run; when every subscriber had
        subscribed and publishing began; after the drain). The headline metrics cover
        publishing (S1 to S2), per published event; subscribing (S0 to S1) goes to
        details.redis.subscribing.

    cluster_report.py summary DIR
        From the records under DIR (<case>/<config>-<rep>.json): the cluster issue's three
        targets with the medians they compare, then one row per configuration (the cost as
        nodes are added), as Markdown.
"""

import glob
import json
import os
import statistics
import sys

FLAT = "fanout-1000-flat"
RATE50 = "fanout-1000-rate50"
CONFIGS = ["herald-1node", "herald-1node-redis", "herald-2nodes", "herald-3nodes", "sockudo-3nodes"]


def load_snapshot(path):
    values = {}
    with open(path) as f:
        for line in f:
            key, value = line.split()
            values[key] = float(value)
    return values


def phase(a, b):
    d = {k: b.get(k, 0) - a.get(k, 0) for k in set(a) | set(b)}
    return {
        "cpu_s": round(d["cpu_s"], 6),
        "wall_s": round(d["time_s"], 3),
        "net_input_bytes": int(d["total_net_input_bytes"]),
        "net_output_bytes": int(d["total_net_output_bytes"]),
        "commands": int(d["total_commands_processed"]),
        "commands_by_name": {
            k[4:]: int(v) for k, v in sorted(d.items()) if k.startswith("cmd_") and v > 0
        },
    }


def annotate(s0, s1, s2, path):
    s0, s1, s2 = load_snapshot(s0), load_snapshot(s1), load_snapshot(s2)
    with open(path) as f:
        record = json.load(f)
    publishing, subscribing = phase(s1, s2), phase(s0, s1)
    events = record["details"].get("events_published", 0)
    subscribers = record["details"].get("subscribers_connected", 0)
    if subscribers:
        subscribing["commands_per_subscriber"] = subscribing["commands"] / subscribers
    record["details"]["redis"] = {
        "publishing": publishing,
        "subscribing": subscribing,
        "note": "publishing: from the first publish to the end of the drain wait, the nodes' "
        "heartbeats and one INFO call included; subscribing: from before the nodes' "
        "start-up checks to the last subscription",
    }

    def metric(name, value):
        record["metrics"].append({"name": name, "value": value, "better": "lower"})

    wall = publishing["wall_s"]
    metric("redis_cpu_pct", 100.0 * publishing["cpu_s"] / wall if wall > 0 else 0.0)
    if events > 0:
        metric("redis_cpu_us_per_event", 1e6 * publishing["cpu_s"] / events)
        metric("redis_net_in_bytes_per_event", publishing["net_input_bytes"] / events)
        metric("redis_net_out_bytes_per_event", publishing["net_output_bytes"] / events)
        metric("redis_commands_per_event", publishing["commands"] / events)
    with open(path, "w") as f:
        json.dump(record, f, indent=2)


def summary(out):
    runs = {}
    for path in sorted(glob.glob(os.path.join(out, "*", "*.json"))):
        with open(path) as f:
            record = json.load(f)
        figures = {m["name"]: m["value"] for m in record["metrics"]}
        resources = record.get("resources", {})
        figures["server_cpu_pct"] = resources.get("server_cpu_pct")
        figures["generator_cpu_pct"] = resources.get("generator_cpu_pct")
        figures["loadavg_start"] = resources.get("loadavg_start")
        runs.setdefault((record["case"], record["server"]), []).append(figures)

    def med(case, server, name):
        values = [r[name] for r in runs.get((case, server), []) if r.get(name) is not None]
        return (statistics.median(values), len(values)) if values else (None, 0)

    def fmt(v, unit=""):
        if v is None:
            return "–"
        return f"{v:,.0f}{unit}" if abs(v) >= 100 else f"{v:.2f}{unit}"

    rows = []
    c3, n1 = med(FLAT, "herald-3nodes", "deliveries_per_s")
    s3, n2 = med(FLAT, "sockudo-3nodes", "deliveries_per_s")
    if c3 is not None and s3:
        rows.append((
            "3 herald nodes deliver ≥ 1.5× what 3 sockudo nodes deliver (flat out, 1,000 subscribers)",
            f"{fmt(c3, '/s')} vs {fmt(s3, '/s')} (n={n1}/{n2})", f"{c3 / s3:.2f}×", c3 >= 1.5 * s3))
    p3, n1 = med(RATE50, "herald-3nodes", "latency_p99_ms")
    p1, n2 = med(RATE50, "herald-1node", "latency_p99_ms")
    if p3 is not None and p1 is not None:
        rows.append((
            "50 events/s to 1,000: 3-node p99 within 2 ms of the single node's",
            f"{fmt(p3, ' ms')} vs {fmt(p1, ' ms')} (n={n1}/{n2})", f"{p3 - p1:+.2f} ms", p3 - p1 <= 2.0))
    r1, n1 = med(FLAT, "herald-1node-redis", "deliveries_per_s")
    l1, n2 = med(FLAT, "herald-1node", "deliveries_per_s")
    if r1 is not None and l1:
        rows.append((
            "one node with Redis configured loses ≤ 10 % of its fan-out (flat out)",
            f"{fmt(r1, '/s')} vs {fmt(l1, '/s')} (n={n1}/{n2})", f"{100 * (r1 / l1 - 1):+.1f} %",
            r1 >= 0.9 * l1))
    print("| target | measured (medians) | | met? |\n|---|---|---:|---|")
    for target, measured, ratio, met in rows:
        print(f"| {target} | {measured} | {ratio} | {'yes' if met else 'no'} |")

    columns = [
        (FLAT, "deliveries_per_s", "flat: deliveries/s", ""),
        (FLAT, "latency_p99_ms", "flat: p99", " ms"),
        (FLAT, "server_cpu_pct", "flat: server CPU", " %"),
        (FLAT, "generator_cpu_pct", "flat: generator CPU", " %"),
        (FLAT, "redis_cpu_us_per_event", "flat: Redis CPU per event", " µs"),
        (FLAT, "redis_net_in_bytes_per_event", "flat: Redis in per event", " B"),
        (FLAT, "redis_net_out_bytes_per_event", "flat: Redis out per event", " B"),
        (RATE50, "latency_p99_ms", "50/s: p99", " ms"),
        (RATE50, "latency_p50_ms", "50/s: p50", " ms"),
        (RATE50, "server_cpu_pct", "50/s: server CPU", " %"),
        (RATE50, "redis_cpu_us_per_event", "50/s: Redis CPU per event", " µs"),
        (RATE50, "lost", "50/s: lost", ""),
    ]
    configs = [c for c in CONFIGS if any(server == c for _, server in runs)]
    print("\n| medians | " + " | ".join(configs) + " |")
    print("|---|" + "---:|" * len(configs))
    for case, name, label, unit in columns:
        cells = []
        for config in configs:
            value, n = med(case, config, name)
            cells.append(fmt(value, unit) + (f" (n={n})" if n else ""))
        print(f"| {label} | " + " | ".join(cells) + " |")
    loads = [r["loadavg_start"] for rs in runs.values() for r in rs if r.get("loadavg_start") is not None]
    if loads:
        print(f"\n1-minute load average at the start of the runs: {min(loads):.2f}–{max(loads):.2f}"
              f" (median {statistics.median(loads):.2f}).")


def main(argv):
    if len(argv) == 6 and argv[1] == "annotate":
        annotate(*argv[2:])
    elif len(argv) == 3 and argv[1] == "summary":
        summary(argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
