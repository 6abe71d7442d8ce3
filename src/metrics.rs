//! The metrics: owns the Prometheus registry and every metric's name, type, help text and labels
//! ([`FAMILIES`]), and renders them in the Prometheus text format when scraped.
//!
//! Nothing here runs on the way of a message. The counts are kept by their owners as plain
//! numbers — an app its connections, API calls and WebSocket traffic (each connection counting
//! its own), the backlog its waiting publishers, the fan-out lanes their progress, the webhook
//! front and worker their outcomes, the WebSocket edge its close codes — and this module only
//! reads them, once per scrape. It must not be imported by what it reads.
//!
//! The first ten are soketi's metrics, with its labels (`app_id`, `port`), under a `herald_`
//! prefix instead of `soketi_`, so a soketi dashboard works after changing the prefix; the rest
//! are what only herald can tell. The README's table lists them all.

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, LabelPair, MetricFamily, MetricType};
use prometheus::{Registry, TextEncoder};
use tokio::sync::mpsc::WeakSender;

use crate::connection::SlowConsumer;
use crate::fanout;
use crate::state::State;
use crate::webhook::{self, Dropped};

/// What every metric's name starts with (then `_`).
pub const PREFIX: &str = "herald";

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// One metric: its name without [`PREFIX`], type, help text and label names.
#[derive(Debug, Clone, Copy)]
pub struct Def {
    /// The name, without the prefix.
    pub name: &'static str,
    /// Counter or gauge.
    pub kind: MetricType,
    /// What it counts.
    pub help: &'static str,
    /// Its labels, in this order.
    pub labels: &'static [&'static str],
}

const COUNTER: MetricType = MetricType::COUNTER;
const GAUGE: MetricType = MetricType::GAUGE;
/// soketi's labels.
const APP_PORT: &[&str] = &["app_id", "port"];
const APP: &[&str] = &["app_id"];

const fn def(
    name: &'static str,
    kind: MetricType,
    labels: &'static [&'static str],
    help: &'static str,
) -> Def {
    Def {
        name,
        kind,
        help,
        labels,
    }
}

/// Every metric herald exports.
#[rustfmt::skip]
pub const FAMILIES: &[Def] = &[
    // soketi's, with its labels.
    def("connected", GAUGE, APP_PORT, "The number of currently connected sockets."),
    def("new_connections_total", COUNTER, APP_PORT, "Total amount of WebSocket connections accepted."),
    def("new_disconnections_total", COUNTER, APP_PORT, "Total amount of WebSocket disconnections."),
    def("socket_received_bytes", COUNTER, APP_PORT, "Total amount of bytes received from WebSocket connections, framing included."),
    def("socket_transmitted_bytes", COUNTER, APP_PORT, "Total amount of bytes written to WebSocket connections, framing included."),
    def("ws_messages_received_total", COUNTER, APP_PORT, "Total amount of WebSocket data messages received."),
    def("ws_messages_sent_total", COUNTER, APP_PORT, "Total amount of WebSocket frames written, control frames included."),
    def("http_received_bytes", COUNTER, APP_PORT, "Total amount of request body bytes the REST API received."),
    def("http_transmitted_bytes", COUNTER, APP_PORT, "Total amount of response body bytes the REST API sent back."),
    def("http_calls_received_total", COUNTER, APP_PORT, "Total amount of REST API calls received."),
    // herald's own.
    def("outbox_frames", GAUGE, APP, "Frames waiting in connections' outboxes for their sockets to take them."),
    def("fanout_backlog_frames", GAUGE, &[], "Frames counted in the backlog API triggers wait on: fan-out lanes' queues and the first half of each reading connection's outbox."),
    def("fanout_backlog_limit", GAUGE, &[], "The backlog at which API triggers wait (server.fanout_backlog)."),
    def("fanout_pending_broadcasts", GAUGE, &[], "Broadcasts handed to the fan-out lanes and not yet written."),
    def("slow_consumers_closed_total", COUNTER, &["app_id", "reason"], "Connections closed with 4100 as slow consumers, by reason (queue_full, stalled)."),
    def("api_triggers_waiting", GAUGE, &[], "API triggers waiting now for the fan-out backlog to drain."),
    def("api_trigger_waits_total", COUNTER, &[], "API triggers that found the fan-out backlog full and waited."),
    def("api_trigger_wait_timeouts_total", COUNTER, &[], "API triggers that waited the longest allowed (2 s) and published anyway."),
    def("webhook_queue_length", GAUGE, &[], "Webhook events waiting for the webhook worker."),
    def("webhook_pending_deliveries", GAUGE, APP, "Webhook requests waiting, in flight or between retries."),
    def("webhook_deliveries_total", COUNTER, APP, "Webhook requests the endpoint accepted (2xx)."),
    def("webhook_retries_total", COUNTER, APP, "Webhook requests sent again after a failed attempt."),
    def("webhook_failures_total", COUNTER, APP, "Webhook requests given up after retrying for webhooks.retry_for."),
    def("webhook_dropped_total", COUNTER, &["app_id", "reason"], "Webhooks dropped, by reason (queue_full, too_many_pending)."),
    def("close_codes_total", COUNTER, &["code"], "Connections herald closed or refused, by close code."),
    // A cluster node's (nothing on a single process).
    def("cluster_redis_up", GAUGE, &[], "1 while the cluster engine (Redis) answers, 0 during an outage."),
    def("cluster_outages_total", COUNTER, &[], "Times Redis became unreachable."),
    def("cluster_bus_messages_received_total", COUNTER, &[], "Messages the cluster bus brought this node (other nodes' messages, and its own events)."),
    def("cluster_bus_messages_lost_total", COUNTER, &[], "Bus messages lost because this node's listener fell behind."),
    def("cluster_bus_reconnects_total", COUNTER, &[], "Times the bus subscription came back after a loss of connection."),
    def("cluster_bus_waiting_messages", GAUGE, &[], "Bus messages received and waiting for the listener (the bus lag, in messages)."),
    def("cluster_nodes_reaped_total", COUNTER, &[], "Dead nodes this node cleaned up."),
    def("cluster_departures_replayed_total", COUNTER, &[], "Departures of dead nodes (members, subscriptions, sign-ins) this node replayed."),
    def("cluster_resyncs_total", COUNTER, &[], "Times this node reasserted its state to Redis (after an outage or a Redis restart)."),
    def("cluster_rejoins_total", COUNTER, &[], "Times this node was declared dead and rejoined as a new node."),
];

/// What the metrics read: the shared state and what is not in it.
#[derive(Debug, Clone)]
pub struct Sources {
    /// Apps, backlog, close codes.
    pub state: Arc<State>,
    /// The fan-out lanes' progress.
    pub fan_out: fanout::Load,
    /// The webhook worker's queue; weak, so that the metrics do not keep it open.
    pub webhook_queue: WeakSender<webhook::Queued>,
    /// The main listener's port, soketi's `port` label.
    pub port: u16,
}

/// The registry, rendered on each scrape.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// A registry of [`FAMILIES`] that reads `sources`.
    pub fn new(sources: Sources) -> Self {
        let registry = Registry::new_custom(Some(PREFIX.into()), None)
            .expect("the prefix is a valid metric name");
        registry
            .register(Box::new(Reader::new(sources)))
            .expect("FAMILIES has valid, distinct names");
        Metrics { registry }
    }

    /// Every metric now, in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Err(e) = TextEncoder::new().encode_utf8(&self.registry.gather(), &mut text) {
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        text
    }
}

/// The registry's one collector: reads every count when gathered.
#[derive(Debug)]
struct Reader {
    descs: Vec<Desc>,
    sources: Sources,
}

impl Reader {
    fn new(sources: Sources) -> Self {
        let descs = FAMILIES
            .iter()
            .map(|d| {
                let labels = d.labels.iter().map(|l| l.to_string()).collect();
                Desc::new(d.name.into(), d.help.into(), labels, Default::default())
                    .expect("a valid metric definition")
            })
            .collect();
        Reader { descs, sources }
    }
}

impl Collector for Reader {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut out = Families::new();
        read_apps(&self.sources, &mut out);
        read_server(&self.sources, &mut out);
        out.into_families()
    }
}

/// Per-app metrics.
fn read_apps(sources: &Sources, out: &mut Families) {
    let port = sources.port.to_string();
    for app in sources.state.apps.iter() {
        let id = app.config.id.as_str();
        let soketi = [id, port.as_str()];
        let connections = app.connections();
        let traffic = app.traffic.snapshot();
        let api = app.api.totals();
        out.add("connected", &soketi, connections.open as u64);
        out.add("new_connections_total", &soketi, connections.opened);
        out.add("new_disconnections_total", &soketi, connections.closed);
        let ws = traffic.totals;
        out.add("socket_received_bytes", &soketi, ws.bytes_received);
        out.add("socket_transmitted_bytes", &soketi, ws.bytes_sent);
        out.add("ws_messages_received_total", &soketi, ws.messages_received);
        out.add("ws_messages_sent_total", &soketi, ws.messages_sent);
        out.add("http_received_bytes", &soketi, api.received_bytes);
        out.add("http_transmitted_bytes", &soketi, api.transmitted_bytes);
        out.add("http_calls_received_total", &soketi, api.calls);

        out.add("outbox_frames", &[id], traffic.queued);
        for (why, n) in SlowConsumer::ALL.iter().zip(traffic.slow_consumers) {
            out.add("slow_consumers_closed_total", &[id, why.label()], n);
        }
        let hooks = app.hooks.stats();
        out.add(
            "webhook_pending_deliveries",
            &[id],
            app.hooks.pending() as u64,
        );
        out.add("webhook_deliveries_total", &[id], hooks.delivered);
        out.add("webhook_retries_total", &[id], hooks.retried);
        out.add("webhook_failures_total", &[id], hooks.failed);
        for (why, n) in Dropped::ALL.iter().zip(hooks.dropped) {
            out.add("webhook_dropped_total", &[id, why.label()], n);
        }
    }
}

/// Server-wide metrics.
fn read_server(sources: &Sources, out: &mut Families) {
    let state = &sources.state;
    out.add("fanout_backlog_frames", &[], state.backlog.queued() as u64);
    out.add("fanout_backlog_limit", &[], state.backlog.limit() as u64);
    let pending = sources.fan_out.pending_broadcasts();
    out.add("fanout_pending_broadcasts", &[], pending);
    let waits = state.backlog.waits();
    out.add("api_triggers_waiting", &[], waits.waiting as u64);
    out.add("api_trigger_waits_total", &[], waits.waited);
    out.add("api_trigger_wait_timeouts_total", &[], waits.waited_out);
    let queued = sources
        .webhook_queue
        .upgrade()
        .map_or(0, |q| q.max_capacity() - q.capacity());
    out.add("webhook_queue_length", &[], queued as u64);
    for (code, n) in state.closes.counts() {
        out.add("close_codes_total", &[&code.code().to_string()], n);
    }
    #[cfg(feature = "redis")]
    if let Some(cluster) = state.adapter.cluster() {
        let c = cluster.stats();
        out.add("cluster_redis_up", &[], u64::from(c.redis_up));
        out.add("cluster_outages_total", &[], c.outages);
        out.add("cluster_bus_messages_received_total", &[], c.bus_received);
        out.add("cluster_bus_messages_lost_total", &[], c.bus_lost);
        out.add("cluster_bus_reconnects_total", &[], c.bus_reconnects);
        out.add("cluster_bus_waiting_messages", &[], c.bus_waiting);
        out.add("cluster_nodes_reaped_total", &[], c.nodes_reaped);
        out.add("cluster_departures_replayed_total", &[], c.departures);
        out.add("cluster_resyncs_total", &[], c.resyncs);
        out.add("cluster_rejoins_total", &[], c.rejoins);
    }
}

/// The families being filled, in the order of [`FAMILIES`].
struct Families(Vec<MetricFamily>);

impl Families {
    fn new() -> Self {
        let families = FAMILIES
            .iter()
            .map(|d| {
                let mut family = MetricFamily::default();
                family.set_name(d.name.into());
                family.set_help(d.help.into());
                family.set_field_type(d.kind);
                family
            })
            .collect();
        Families(families)
    }

    /// Adds a sample to the family `name`, with one value per label of its definition.
    fn add(&mut self, name: &str, label_values: &[&str], value: u64) {
        let Some(i) = FAMILIES.iter().position(|d| d.name == name) else {
            debug_assert!(false, "no metric named {name}");
            return;
        };
        let def = &FAMILIES[i];
        debug_assert_eq!(def.labels.len(), label_values.len(), "labels of {name}");
        let labels = def
            .labels
            .iter()
            .zip(label_values)
            .map(|(label, value)| {
                let mut pair = LabelPair::default();
                pair.set_name(label.to_string());
                pair.set_value(value.to_string());
                pair
            })
            .collect();
        let mut metric = proto::Metric::from_label(labels);
        match def.kind {
            MetricType::COUNTER => {
                let mut counter = proto::Counter::default();
                counter.set_value(value as f64);
                metric.set_counter(counter);
            }
            _ => {
                let mut gauge = proto::Gauge::default();
                gauge.set_value(value as f64);
                metric.set_gauge(gauge);
            }
        }
        self.0[i].mut_metric().push(metric);
    }

    /// The families with at least one sample.
    fn into_families(self) -> Vec<MetricFamily> {
        self.0
            .into_iter()
            .filter(|f| !f.get_metric().is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_and_counters_end_like_soketis() {
        let mut names: Vec<&str> = FAMILIES.iter().map(|d| d.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FAMILIES.len());
        // soketi's byte counters have no `_total`; every other counter has.
        for d in FAMILIES.iter().filter(|d| d.kind == COUNTER) {
            assert!(
                d.name.ends_with("_total") || d.name.ends_with("_bytes"),
                "{}",
                d.name
            );
        }
        // soketi's, under herald's prefix.
        for name in [
            "connected",
            "new_connections_total",
            "new_disconnections_total",
            "socket_received_bytes",
            "socket_transmitted_bytes",
            "ws_messages_received_total",
            "ws_messages_sent_total",
            "http_received_bytes",
            "http_transmitted_bytes",
            "http_calls_received_total",
        ] {
            let d = FAMILIES.iter().find(|d| d.name == name).unwrap();
            assert_eq!(d.labels, ["app_id", "port"], "{name}");
        }
    }

    #[test]
    fn the_readme_lists_every_metric() {
        let readme = include_str!("../README.md");
        for d in FAMILIES {
            let name = format!("`{PREFIX}_{}`", d.name);
            assert!(readme.contains(&name), "README lacks {name}");
        }
    }

    #[test]
    fn samples_render_as_prometheus_text() {
        let mut out = Families::new();
        out.add("connected", &["1", "6001"], 3);
        out.add("close_codes_total", &["4100"], 2);
        let mut text = String::new();
        let mut families = out.into_families();
        for f in &mut families {
            f.set_name(format!("{PREFIX}_{}", f.name()));
        }
        TextEncoder::new()
            .encode_utf8(&families, &mut text)
            .unwrap();
        assert!(text.contains("# TYPE herald_connected gauge\n"), "{text}");
        assert!(
            text.contains("herald_connected{app_id=\"1\",port=\"6001\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE herald_close_codes_total counter\n"));
        assert!(text.contains("herald_close_codes_total{code=\"4100\"} 2\n"));
        assert!(
            !text.contains("herald_outbox_frames"),
            "empty families left out"
        );
    }
}
