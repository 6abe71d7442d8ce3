//! A group of subscriber connections in this process: connect them (bounded concurrency),
//! subscribe each to its channel, then read deliveries until told to stop. Used by the
//! `fanout`, `channels` and `idle` scenarios directly, and by worker processes (see
//! [`crate::worker`]) when one process cannot hold all the connections.

use crate::metrics::{Buckets, Latency, SharedLatency};
use crate::reader::{Readers, Seen, Sink, Subscriber};
use crate::target::Target;
use crate::wire;
use crate::ws::Connection;
use crate::xhr;
use serde::{Deserialize, Serialize};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// How many error texts a report keeps.
const MAX_ERRORS: usize = 5;
/// Reader threads per process (see [`crate::reader`]).
const READERS: usize = 2;

/// Which channel each connection subscribes to.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ChannelPlan {
    /// All connections on one channel.
    Shared(String),
    /// Connection `i` on `<prefix><i>`.
    PerConnection(String),
}

impl ChannelPlan {
    /// The channel of connection `index`.
    pub fn channel(&self, index: usize) -> String {
        match self {
            ChannelPlan::Shared(name) => name.clone(),
            ChannelPlan::PerConnection(prefix) => format!("{prefix}{index}"),
        }
    }
}

/// How subscribers connect.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Transport {
    /// A WebSocket, as pusher-js connects first.
    #[default]
    Ws,
    /// pusher-js's HTTP streaming fallback (herald's `/pusher/app/{key}/…/xhr_streaming`).
    XhrStreaming,
}

/// What a group should do.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GroupSpec {
    /// How the connections are made.
    #[serde(default)]
    pub transport: Transport,
    /// Connections in this group.
    pub count: usize,
    /// Index of the group's first connection (for per-connection channel names).
    pub offset: usize,
    /// Channel assignment.
    pub channels: ChannelPlan,
    /// Connections being opened at the same time.
    pub connect_concurrency: usize,
    /// Number of publishers whose sequence numbers are checked for order.
    pub publishers: u32,
    /// Per publisher, how many events to time individually (first and last delivery of
    /// each event over all connections of this group); 0 = off.
    #[serde(default)]
    pub track_events: u64,
}

/// First and last delivery latency of each event, over all connections of a group.
struct EventSpans {
    per_publisher: u64,
    first: Vec<AtomicU64>,
    last: Vec<AtomicU64>,
}

impl EventSpans {
    fn new(publishers: u32, per_publisher: u64) -> Self {
        let n = publishers as usize * per_publisher as usize;
        Self {
            per_publisher,
            first: (0..n).map(|_| AtomicU64::new(u64::MAX)).collect(),
            last: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn record(&self, stamp: &wire::Stamp, latency_us: u64) {
        if stamp.seq >= self.per_publisher {
            return;
        }
        let i = (stamp.publisher as u64 * self.per_publisher + stamp.seq) as usize;
        if let (Some(first), Some(last)) = (self.first.get(i), self.last.get(i)) {
            first.fetch_min(latency_us, Ordering::Relaxed);
            last.fetch_max(latency_us, Ordering::Relaxed);
        }
    }

    /// Histograms of the first and of the last delivery per event.
    fn histograms(&self) -> (Buckets, Buckets) {
        let mut first = Latency::default();
        let mut last = Latency::default();
        for (f, l) in self.first.iter().zip(&self.last) {
            let f = f.load(Ordering::Relaxed);
            if f != u64::MAX {
                first.record(f);
                last.record(l.load(Ordering::Relaxed));
            }
        }
        (first.to_buckets(), last.to_buckets())
    }
}

/// What the group's subscribers on one node of the target saw. Mergeable across processes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NodeReport {
    /// Connections to this node that subscribed.
    pub connected: u64,
    /// Benchmark events they received.
    pub received: u64,
    /// Of those, out of order (per subscriber and publisher, as in [`GroupReport`]).
    pub out_of_order: u64,
    /// Of those, seen twice by the same subscriber.
    pub duplicates: u64,
    /// Their publish → delivery latency.
    pub latency: Buckets,
}

impl NodeReport {
    fn merge(&mut self, other: NodeReport) {
        self.connected += other.connected;
        self.received += other.received;
        self.out_of_order += other.out_of_order;
        self.duplicates += other.duplicates;
        self.latency = merge_buckets(&self.latency, &other.latency);
    }
}

/// What a group measured. Mergeable across processes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct GroupReport {
    /// Connections that subscribed successfully.
    pub connected: u64,
    /// Connections that failed to connect or subscribe.
    pub failed: u64,
    /// First few failure texts.
    pub errors: Vec<String>,
    /// When the first connection attempt started (µs since epoch).
    pub connect_start_us: u64,
    /// When the last connection finished subscribing (µs since epoch).
    pub connect_end_us: u64,
    /// TCP connect + WebSocket upgrade + `connection_established`.
    pub handshake: Buckets,
    /// `pusher:subscribe` → `subscription_succeeded`.
    pub subscribe: Buckets,
    /// Benchmark events received.
    pub received: u64,
    /// Events that arrived with a lower sequence number than one already seen from the same publisher.
    pub out_of_order: u64,
    /// Events seen twice.
    pub duplicates: u64,
    /// Publish → delivery latency.
    pub latency: Buckets,
    /// First delivery (µs since epoch; 0 = none).
    pub first_delivery_us: u64,
    /// Last delivery (µs since epoch).
    pub last_delivery_us: u64,
    /// Connections the server closed (or that broke) while they should have stayed open.
    pub dropped: u64,
    /// Per tracked event: latency of its first delivery (how soon the server starts).
    #[serde(default)]
    pub event_first: Buckets,
    /// Per tracked event: latency of its last delivery (when the fan-out completed).
    #[serde(default)]
    pub event_last: Buckets,
    /// CPU seconds used by the process that ran the group (filled in by workers).
    pub cpu_s: f64,
    /// The same figures per node of the target (index = node; connection `i` is on node
    /// `i mod n`); one entry for a single server.
    #[serde(default)]
    pub nodes: Vec<NodeReport>,
}

impl GroupReport {
    /// Folds another group's report into this one.
    pub fn merge(&mut self, other: GroupReport) {
        let min_nonzero = |a: u64, b: u64| {
            if a == 0 {
                b
            } else if b == 0 {
                a
            } else {
                a.min(b)
            }
        };
        self.connected += other.connected;
        self.failed += other.failed;
        self.errors.extend(other.errors);
        self.errors.truncate(MAX_ERRORS);
        self.connect_start_us = min_nonzero(self.connect_start_us, other.connect_start_us);
        self.connect_end_us = self.connect_end_us.max(other.connect_end_us);
        self.handshake = merge_buckets(&self.handshake, &other.handshake);
        self.subscribe = merge_buckets(&self.subscribe, &other.subscribe);
        self.latency = merge_buckets(&self.latency, &other.latency);
        self.received += other.received;
        self.out_of_order += other.out_of_order;
        self.duplicates += other.duplicates;
        self.first_delivery_us = min_nonzero(self.first_delivery_us, other.first_delivery_us);
        self.last_delivery_us = self.last_delivery_us.max(other.last_delivery_us);
        self.dropped += other.dropped;
        self.cpu_s += other.cpu_s;
        if self.nodes.len() < other.nodes.len() {
            self.nodes
                .resize_with(other.nodes.len(), NodeReport::default);
        }
        for (mine, theirs) in self.nodes.iter_mut().zip(other.nodes) {
            mine.merge(theirs);
        }
        // Per-event spans cannot be merged across processes; keep the first group's.
        if self.event_first.0.is_empty() {
            self.event_first = other.event_first;
            self.event_last = other.event_last;
        }
    }
}

fn merge_buckets(a: &Buckets, b: &Buckets) -> Buckets {
    let mut merged = Latency::from_buckets(a);
    merged.merge(&Latency::from_buckets(b));
    merged.to_buckets()
}

/// State shared by the group's connection tasks.
struct Shared {
    /// Deliveries so far, for progress and drain detection.
    received: AtomicU64,
    connected: AtomicU64,
    /// Per node of the target.
    connected_by_node: Vec<AtomicU64>,
    failed: AtomicU64,
    dropped: AtomicU64,
    connect_end_us: AtomicU64,
    errors: Mutex<Vec<String>>,
    handshake: SharedLatency,
    subscribe: SharedLatency,
    spans: Option<EventSpans>,
}

impl Sink for Shared {
    fn delivered(&self, stamp: &wire::Stamp, latency_us: u64) {
        if let Some(spans) = &self.spans {
            spans.record(stamp, latency_us);
        }
    }

    fn received(&self, count: u64) {
        self.received.fetch_add(count, Ordering::Relaxed);
    }

    fn dropped(&self, error: String) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.error(error);
    }
}

impl Shared {
    fn error(&self, text: String) {
        if let Ok(mut errors) = self.errors.lock() {
            if errors.len() < MAX_ERRORS {
                errors.push(text);
            }
        }
    }
}

/// A running group.
pub struct Group {
    shared: Arc<Shared>,
    readers: Option<Readers>,
    connect_start_us: u64,
}

impl Group {
    /// Opens and subscribes all connections; returns once each has succeeded or failed, with
    /// the subscribed sockets handed to reader threads.
    pub async fn start(target: Arc<Target>, spec: GroupSpec) -> Group {
        let shared = Arc::new(Shared {
            received: AtomicU64::new(0),
            connected: AtomicU64::new(0),
            connected_by_node: (0..target.nodes()).map(|_| AtomicU64::new(0)).collect(),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            connect_end_us: AtomicU64::new(0),
            errors: Mutex::new(Vec::new()),
            handshake: SharedLatency::new(8),
            subscribe: SharedLatency::new(8),
            spans: (spec.track_events > 0)
                .then(|| EventSpans::new(spec.publishers.max(1), spec.track_events)),
        });
        let permits = Arc::new(Semaphore::new(spec.connect_concurrency.max(1)));
        let connect_start_us = wire::now_us();
        let tasks: Vec<_> = (0..spec.count)
            .map(|i| {
                let index = spec.offset + i;
                let channel = spec.channels.channel(index);
                let job = Job {
                    target: target.clone(),
                    shared: shared.clone(),
                    index,
                };
                let permits = permits.clone();
                match spec.transport {
                    Transport::Ws => tokio::spawn(job.run(channel, permits)),
                    Transport::XhrStreaming => tokio::spawn(job.run_streaming(channel, permits)),
                }
            })
            .collect();
        let mut subscribers = Vec::with_capacity(spec.count);
        for task in tasks {
            if let Ok(Some(subscriber)) = task.await {
                subscribers.push(subscriber);
            }
        }
        let sink: Arc<dyn Sink> = shared.clone();
        let readers = match Readers::start(subscribers, READERS, spec.publishers, sink) {
            Ok(readers) => Some(readers),
            Err(error) => {
                shared.error(format!("could not start the reader threads: {error}"));
                None
            }
        };
        Group {
            shared,
            readers,
            connect_start_us,
        }
    }

    /// Deliveries received so far.
    pub fn received(&self) -> u64 {
        self.shared.received.load(Ordering::Relaxed)
    }

    /// A cloneable reader of [`Group::received`].
    pub fn probe(&self) -> crate::publish::DeliveredProbe {
        let shared = self.shared.clone();
        Arc::new(move || shared.received.load(Ordering::Relaxed))
    }

    /// Connections that subscribed.
    pub fn connected(&self) -> u64 {
        self.shared.connected.load(Ordering::Relaxed)
    }

    /// Stops reading, closes the connections and returns the measurements.
    pub async fn finish(self) -> GroupReport {
        let totals = match self.readers {
            Some(readers) => tokio::task::spawn_blocking(move || readers.finish())
                .await
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let mut report = GroupReport {
            connect_start_us: self.connect_start_us,
            ..GroupReport::default()
        };
        let mut latency = Latency::default();
        let mut seen = Seen::default();
        let nodes = self.shared.connected_by_node.len();
        let mut node_latency: Vec<Latency> = (0..nodes).map(|_| Latency::default()).collect();
        let mut node_seen: Vec<Seen> = (0..nodes).map(|_| Seen::default()).collect();
        for total in &totals {
            latency.merge(&total.latency);
            seen.merge(&total.seen);
            for (n, node) in total.nodes.iter().enumerate().take(nodes) {
                node_latency[n].merge(&node.latency);
                node_seen[n].merge(&node.seen);
            }
        }
        report.nodes = node_seen
            .iter()
            .zip(&node_latency)
            .zip(&self.shared.connected_by_node)
            .map(|((seen, latency), connected)| NodeReport {
                connected: connected.load(Ordering::Relaxed),
                received: seen.received,
                out_of_order: seen.out_of_order,
                duplicates: seen.duplicates,
                latency: latency.to_buckets(),
            })
            .collect();
        report.received = seen.received;
        report.out_of_order = seen.out_of_order;
        report.duplicates = seen.duplicates;
        report.first_delivery_us = seen.first_us;
        report.last_delivery_us = seen.last_us;
        let shared = &self.shared;
        report.connected = shared.connected.load(Ordering::Relaxed);
        report.failed = shared.failed.load(Ordering::Relaxed);
        report.dropped = shared.dropped.load(Ordering::Relaxed);
        report.connect_end_us = shared.connect_end_us.load(Ordering::Relaxed);
        report.errors = shared.errors.lock().map(|e| e.clone()).unwrap_or_default();
        report.handshake = shared.handshake.snapshot().to_buckets();
        report.subscribe = shared.subscribe.snapshot().to_buckets();
        report.latency = latency.to_buckets();
        if let Some(spans) = &shared.spans {
            (report.event_first, report.event_last) = spans.histograms();
        }
        report
    }
}

/// One connection's set-up: connect and subscribe, then hand the socket over for reading.
struct Job {
    target: Arc<Target>,
    shared: Arc<Shared>,
    index: usize,
}

impl Job {
    async fn run(self, channel: String, permits: Arc<Semaphore>) -> Option<Subscriber> {
        let connection = {
            let _permit = permits.acquire().await;
            self.connect(&channel).await?
        };
        // The reader threads own a duplicate of the socket; the tokio side is dropped.
        // Nothing is left unread in tungstenite's buffer: the server sends nothing after
        // `subscription_succeeded` until the first publish, which starts after every
        // connection of the run has subscribed.
        match connection.socket.get_ref().as_fd().try_clone_to_owned() {
            Ok(fd) => Some(Subscriber {
                index: self.index,
                node: self.index % self.target.nodes(),
                stream: std::net::TcpStream::from(fd),
                http: None,
            }),
            Err(error) => {
                self.shared
                    .dropped(format!("connection {}: dup failed: {error}", self.index));
                None
            }
        }
    }

    /// [`run`](Self::run) over `xhr_streaming`: the stream's socket and its body decoder go to
    /// the readers (the `xhr_send` connection of the subscription is closed by then).
    async fn run_streaming(self, channel: String, permits: Arc<Semaphore>) -> Option<Subscriber> {
        let target = self.target.clone();
        let index = self.index;
        let stream = {
            let _permit = permits.acquire().await;
            let opened = async {
                let mut stream = xhr::Stream::open(&target, index).await?;
                let established = wire::now_us();
                stream.subscribe(&channel).await?;
                anyhow::Ok((stream, established))
            };
            self.connected(opened).await?
        };
        match stream.socket.into_std() {
            Ok(socket) => Some(Subscriber {
                index,
                node: index % self.target.nodes(),
                stream: socket,
                http: Some(stream.lines),
            }),
            Err(error) => {
                self.shared
                    .dropped(format!("connection {index}: into_std failed: {error}"));
                None
            }
        }
    }

    async fn connect(&self, channel: &str) -> Option<Connection> {
        self.connected(async {
            let mut connection = Connection::open(&self.target, self.index).await?;
            let established = wire::now_us();
            connection.subscribe(channel, None, None).await?;
            anyhow::Ok((connection, established))
        })
        .await
    }

    /// Awaits a connection's set-up (which returns it and when it was established) and
    /// records its timings, or its failure.
    async fn connected<C>(
        &self,
        setup: impl std::future::Future<Output = anyhow::Result<(C, u64)>>,
    ) -> Option<C> {
        let started = wire::now_us();
        match setup.await {
            Ok((connection, established)) => {
                let end = wire::now_us();
                self.shared
                    .handshake
                    .record(self.index, established.saturating_sub(started));
                self.shared
                    .subscribe
                    .record(self.index, end.saturating_sub(established));
                self.shared.connected.fetch_add(1, Ordering::Relaxed);
                let node = self.index % self.shared.connected_by_node.len();
                self.shared.connected_by_node[node].fetch_add(1, Ordering::Relaxed);
                self.shared.connect_end_us.fetch_max(end, Ordering::Relaxed);
                Some(connection)
            }
            Err(error) => {
                self.shared.failed.fetch_add(1, Ordering::Relaxed);
                self.shared
                    .error(format!("connection {}: {error:#}", self.index));
                None
            }
        }
    }
}
