//! Backpressure bookkeeping: the process-wide [`Backlog`] of queued frames that API triggers
//! wait on, and each connection's [`Share`] of it, released as frames are written.
//!
//! Only the first half of a connection's queue counts towards the backlog, so connections that
//! stopped reading cannot hold publishers back: they fill the rest of their queue, or stay over
//! half full with nothing taken off for the stall timeout, and are closed with 4100.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// How many frames are queued on all connections.
#[derive(Debug)]
pub struct Backlog {
    queued: AtomicUsize,
    /// Publishers wait while `queued` is at or above this.
    high: usize,
    /// A connection with a queue over half full that has not been drained for this long is
    /// a slow consumer.
    stall: Duration,
    /// Woken when `queued` falls below `high`.
    room: Notify,
    /// The origin of the millisecond timestamps connections keep.
    base: Instant,
}

impl Backlog {
    /// A backlog that makes publishers wait at `high` queued frames, and whose connections count
    /// as stalled after `stall` without draining.
    pub fn new(high: usize, stall: Duration) -> Arc<Self> {
        Arc::new(Backlog {
            queued: AtomicUsize::new(0),
            high: high.max(1),
            stall,
            room: Notify::new(),
            base: Instant::now(),
        })
    }

    /// Milliseconds since the backlog was made, for cheap shared timestamps.
    fn now_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    /// Frames counted now, on all connections.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Counts `n` frames on their way to connections (the fan-out threads' queues).
    pub fn add(&self, n: usize) {
        self.queued.fetch_add(n, Ordering::Relaxed);
    }

    /// Stops counting `n` frames.
    pub fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        let before = self.queued.fetch_sub(n, Ordering::AcqRel);
        if before >= self.high && before.saturating_sub(n) < self.high {
            self.room.notify_waiters();
        }
    }

    /// Waits until fewer than `high` frames are counted, at most `max_wait`; returns whether
    /// there is room (false: waited out, the caller goes ahead anyway).
    pub async fn wait_for_room(&self, max_wait: Duration) -> bool {
        let deadline = Instant::now() + max_wait;
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.queued() < self.high {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            // A short tick as well as the notification, so no wake-up can be missed for long.
            let tick = Instant::now() + Duration::from_millis(5);
            let _ = tokio::time::timeout_at(tick.min(deadline), notified).await;
        }
    }
}

/// One connection's part in the backlog; it lives in the connection's shared state.
#[derive(Debug)]
pub(super) struct Share {
    backlog: Arc<Backlog>,
    /// Frames of this queue counted in the backlog.
    counted: AtomicUsize,
    /// Since when ([`Backlog::now_ms`] + 1) the queue has been over half full with no frame taken off
    /// it; 0 while it is not.
    over_half_since: AtomicU64,
}

impl Share {
    pub(super) fn new(backlog: Arc<Backlog>) -> Self {
        Share {
            backlog,
            counted: AtomicUsize::new(0),
            over_half_since: AtomicU64::new(0),
        }
    }

    /// A frame was queued while the queue was at most half full.
    pub(super) fn counted(&self) {
        self.counted.fetch_add(1, Ordering::Relaxed);
        self.backlog.add(1);
    }

    /// A frame was queued while the queue was over half full: whether it has been over half
    /// full, with nothing taken off it, for the stall timeout.
    pub(super) fn stalled(&self) -> bool {
        let now = self.backlog.now_ms() + 1;
        let first =
            self.over_half_since
                .compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire);
        match first {
            Ok(_) => false,
            Err(since) => Duration::from_millis(now.saturating_sub(since)) >= self.backlog.stall,
        }
    }

    pub(super) fn received(&self) {
        self.over_half_since.store(0, Ordering::Relaxed);
        let took = self
            .counted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if took.is_ok() {
            self.backlog.release(1);
        }
    }

    pub(super) fn release_all(&self) {
        self.backlog.release(self.counted.swap(0, Ordering::AcqRel));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::ConnectionHandle;
    use crate::protocol::{CloseCode, SocketId};

    #[tokio::test]
    async fn backlog_counts_queued_frames_until_received_or_dropped() {
        let backlog = Backlog::new(2, Duration::from_secs(60));
        let (a, mut arx) = ConnectionHandle::with_backlog(SocketId::generate(), 8, backlog.clone());
        let (b, brx) = ConnectionHandle::with_backlog(SocketId::generate(), 8, backlog.clone());
        assert!(a.send("1".into()) && b.send("2".into()) && b.send("3".into()));
        assert_eq!(backlog.queued(), 3);
        assert!(!backlog.wait_for_room(Duration::from_millis(20)).await);
        arx.try_recv();
        assert_eq!(backlog.queued(), 2);
        drop(brx);
        assert_eq!(backlog.queued(), 0);
        assert!(backlog.wait_for_room(Duration::from_millis(20)).await);
        assert!(!b.send("4".into()), "a closed queue takes nothing");
        assert_eq!(backlog.queued(), 0);
    }

    #[tokio::test]
    async fn only_the_first_half_of_a_queue_counts() {
        let backlog = Backlog::new(100, Duration::from_secs(60));
        let (stuck, _rx) = ConnectionHandle::with_backlog(SocketId::generate(), 8, backlog.clone());
        for i in 0..8 {
            assert!(stuck.send(i.to_string().into()));
        }
        assert_eq!(backlog.queued(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_after_a_quiet_spell_is_not_a_stall() {
        let backlog = Backlog::new(100, Duration::from_secs(5));
        let (conn, mut rx) = ConnectionHandle::with_backlog(SocketId::generate(), 8, backlog);
        assert!(conn.send("first".into()));
        rx.try_recv();
        tokio::time::advance(Duration::from_secs(60)).await;
        for i in 0..8 {
            assert!(conn.send(i.to_string().into()), "frame {i}");
        }
        let closed = tokio::time::timeout(Duration::from_millis(1), conn.closed()).await;
        assert!(
            closed.is_err(),
            "a healthy connection that was idle is not a slow consumer"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_queue_over_half_full_is_a_slow_consumer() {
        let backlog = Backlog::new(100, Duration::from_secs(5));
        let (stuck, _rx) = ConnectionHandle::with_backlog(SocketId::generate(), 8, backlog.clone());
        for i in 0..5 {
            assert!(stuck.send(i.to_string().into()));
        }
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(stuck.send("late".into()));
        assert_eq!(stuck.closed().await.0, CloseCode::OverCapacity);
    }
}
