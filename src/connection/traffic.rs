//! [`Traffic`]: one app's WebSocket traffic — messages and bytes each way, frames waiting in
//! outboxes, slow consumers closed — and [`CloseCounts`], the close codes herald sent.
//!
//! Counting stays off the fan-out path: each connection keeps its own plain counts (bytes and
//! frames written are added under the outbox lock the writer already holds; frames written are
//! the stall watch's `taken`), and nothing is added up until someone asks. [`Traffic::snapshot`]
//! then walks the app's live connections and adds the totals of the ones that have ended, which
//! each folds in once, when its session lets go of the outbox. Reading is the metrics scrape's
//! cost, not the publishers'.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use super::outbox::Outbox;
use super::Inner;
use crate::protocol::CloseCode;

/// Why a connection was closed as a slow consumer (4100).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowConsumer {
    /// Its outbox was full.
    QueueFull,
    /// It took no frame off its outbox for the stall timeout.
    Stalled,
}

impl SlowConsumer {
    /// Both reasons, in the order of [`Snapshot::slow_consumers`].
    pub const ALL: [SlowConsumer; 2] = [SlowConsumer::QueueFull, SlowConsumer::Stalled];

    /// The reason as a metric label.
    pub fn label(self) -> &'static str {
        match self {
            SlowConsumer::QueueFull => "queue_full",
            SlowConsumer::Stalled => "stalled",
        }
    }
}

/// Messages and bytes of one or more connections, each way.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Data messages (text or binary) received from clients.
    pub messages_received: u64,
    /// Bytes read from the sockets (WebSocket framing included).
    pub bytes_received: u64,
    /// Frames written whole to the sockets (control frames included).
    pub messages_sent: u64,
    /// Bytes written to the sockets (WebSocket framing included).
    pub bytes_sent: u64,
}

impl Totals {
    fn add(&mut self, other: Totals) {
        self.messages_received += other.messages_received;
        self.bytes_received += other.bytes_received;
        self.messages_sent += other.messages_sent;
        self.bytes_sent += other.bytes_sent;
    }
}

/// One app's traffic at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// Since start, ended connections included.
    pub totals: Totals,
    /// Frames waiting in the outboxes of live connections now.
    pub queued: u64,
    /// Connections closed as slow consumers, by [`SlowConsumer::ALL`].
    pub slow_consumers: [u64; 2],
}

/// One app's WebSocket traffic: its live connections and what the ended ones added up to.
#[derive(Debug, Default)]
pub struct Traffic {
    book: Mutex<Book>,
    /// Slow consumers closed, by [`SlowConsumer::ALL`]; rare, counted as they happen.
    slow_consumers: [AtomicU64; 2],
}

/// The connections counted, under one lock so that a connection is always counted exactly
/// once: live, or in `ended`.
#[derive(Debug, Default)]
struct Book {
    /// The key the next connection gets.
    next: u64,
    /// Live connections; weak, so that counting never keeps one alive.
    live: HashMap<u64, Weak<Inner>>,
    /// What connections that have ended added up to.
    ended: Totals,
}

impl Traffic {
    /// No traffic yet.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Adds up the traffic now: the ended connections' totals, and each live connection's
    /// counts and queue (taking each connection's lock in turn, briefly).
    pub fn snapshot(&self) -> Snapshot {
        let book = self.book();
        let mut snapshot = Snapshot {
            totals: book.ended,
            ..Snapshot::default()
        };
        for conn in book.live.values().filter_map(Weak::upgrade) {
            let (totals, queued) = conn.meter();
            snapshot.totals.add(totals);
            snapshot.queued += queued as u64;
        }
        drop(book);
        for (count, slot) in snapshot.slow_consumers.iter_mut().zip(&self.slow_consumers) {
            *count = slot.load(Ordering::Relaxed);
        }
        snapshot
    }

    /// Counts a new connection; its key, for [`leave`](Self::leave).
    pub(super) fn join(&self, conn: Weak<Inner>) -> u64 {
        let mut book = self.book();
        let key = book.next;
        book.next += 1;
        book.live.insert(key, conn);
        key
    }

    /// The connection with `key` has ended with these `totals`, final.
    pub(super) fn leave(&self, key: u64, totals: Totals) {
        let mut book = self.book();
        if book.live.remove(&key).is_some() {
            book.ended.add(totals);
        }
    }

    /// A connection was closed as a slow consumer.
    pub(super) fn slow_consumer(&self, why: SlowConsumer) {
        let slot = SlowConsumer::ALL
            .iter()
            .position(|w| *w == why)
            .unwrap_or(0);
        self.slow_consumers[slot].fetch_add(1, Ordering::Relaxed);
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        // Nothing panics while holding it; if something did, the counts are still whole.
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    /// This connection's counts and queue length now (the metrics scrape; takes the lock).
    fn meter(&self) -> (Totals, usize) {
        let outbox = self.lock();
        (self.totals(&outbox), outbox.len())
    }

    /// This connection's counts, read under its outbox lock.
    pub(super) fn totals(&self, outbox: &Outbox) -> Totals {
        Totals {
            messages_received: self.messages_in.load(Ordering::Relaxed),
            bytes_received: outbox.bytes_in,
            messages_sent: outbox.taken(),
            bytes_sent: outbox.bytes_out,
        }
    }
}

/// How many connections herald closed with each code, since start: sessions it ended and
/// connections it refused at the handshake. A client's own close, which herald only answers,
/// is not counted.
#[derive(Debug, Default)]
pub struct CloseCounts {
    /// By [`CloseCode::ALL`].
    counts: [AtomicU64; CloseCode::ALL.len()],
}

impl CloseCounts {
    /// Counts one close with `code`.
    pub fn count(&self, code: CloseCode) {
        if let Some(slot) = CloseCode::ALL.iter().position(|c| *c == code) {
            self.counts[slot].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every code with its count, zeros included.
    pub fn counts(&self) -> impl Iterator<Item = (CloseCode, u64)> + '_ {
        CloseCode::ALL
            .into_iter()
            .zip(&self.counts)
            .map(|(code, count)| (code, count.load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::{Backlog, ConnectionHandle};
    use crate::protocol::SocketId;

    fn handle(traffic: &Arc<Traffic>) -> (ConnectionHandle, crate::connection::Outbound) {
        let backlog = Backlog::new(usize::MAX, std::time::Duration::MAX);
        ConnectionHandle::counted(SocketId::generate(), 8, backlog, traffic)
    }

    #[test]
    fn live_and_ended_connections_are_each_counted_once() {
        let traffic = Traffic::new();
        let (a, mut arx) = handle(&traffic);
        let (b, brx) = handle(&traffic);
        assert!(a.send("one".into()) && a.send("two".into()) && b.send("three".into()));
        a.received_message();
        assert_eq!(traffic.snapshot().queued, 3);
        assert_eq!(traffic.snapshot().totals.messages_received, 1);
        // Taking a frame off the queue is writing it, for the counts.
        arx.try_recv();
        let live = traffic.snapshot();
        assert_eq!((live.queued, live.totals.messages_sent), (2, 1));

        drop(brx);
        let after = traffic.snapshot();
        assert_eq!(after.queued, 1, "an ended connection's queue is gone");
        assert_eq!(after.totals, live.totals, "its counts stay, counted once");
        drop(arx);
        drop((a, b));
        assert_eq!(traffic.snapshot().totals, live.totals);
    }

    #[test]
    fn a_slow_consumer_is_counted_once_with_its_reason() {
        let traffic = Traffic::new();
        let (a, _arx) = handle(&traffic);
        for _ in 0..20 {
            a.send("x".into());
        }
        assert_eq!(traffic.snapshot().slow_consumers, [1, 0]);
    }

    #[test]
    fn close_counts_by_code() {
        let closes = CloseCounts::default();
        closes.count(CloseCode::OverCapacity);
        closes.count(CloseCode::OverCapacity);
        closes.count(CloseCode::Reconnect);
        let counts: HashMap<u16, u64> = closes.counts().map(|(c, n)| (c.code(), n)).collect();
        assert_eq!(counts[&4100], 2);
        assert_eq!(counts[&4200], 1);
        assert_eq!(counts[&4001], 0);
        assert_eq!(counts.len(), CloseCode::ALL.len());
    }
}
