//! [`ConnectionHandle`]: the shared front of one WebSocket connection — its socket id, its
//! bounded queue of encoded frames, and a way to ask it to close.
//!
//! Made by `ws`, held by the channel and user registries, so fan-out reaches connections without
//! knowing anything about the transport. Sending never awaits: a full queue marks the connection
//! a slow consumer, and it is closed with 4100 instead of slowing everyone down.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytestring::ByteString;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use crate::protocol::{CloseCode, SocketId};

/// An encoded frame; clones share the bytes.
pub type Frame = ByteString;

/// Frames dropped because a connection's queue was full, since start (for logs and tests).
static SLOW_CONSUMERS: AtomicU64 = AtomicU64::new(0);

/// The cloneable front of one connection.
#[derive(Clone, Debug)]
pub struct ConnectionHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Which connection this is; the key in every registry.
    socket_id: SocketId,
    /// The connection's outbound queue, drained by its session loop only.
    outbound: mpsc::Sender<Frame>,
    /// The process-wide count of queued frames this queue contributes to.
    backlog: Arc<Backlog>,
    /// Cancelled when someone asks the connection to close.
    close: CancellationToken,
    /// Why it should close; the first request wins.
    reason: Mutex<Option<(CloseCode, String)>>,
}

/// The receiving half, owned by the connection's session loop. Frames leave the backlog as
/// they are received; dropping it closes the queue and releases what is left.
#[derive(Debug)]
pub struct Outbound {
    rx: mpsc::Receiver<Frame>,
    backlog: Arc<Backlog>,
}

impl Outbound {
    /// The next frame; `None` once every handle is gone.
    pub async fn recv(&mut self) -> Option<Frame> {
        let frame = self.rx.recv().await;
        if frame.is_some() {
            self.backlog.release(1);
        }
        frame
    }

    /// The next frame if one is queued.
    pub fn try_recv(&mut self) -> Result<Frame, mpsc::error::TryRecvError> {
        let frame = self.rx.try_recv();
        if frame.is_ok() {
            self.backlog.release(1);
        }
        frame
    }
}

impl Drop for Outbound {
    fn drop(&mut self) {
        self.rx.close();
        let mut left = 0;
        while self.rx.try_recv().is_ok() {
            left += 1;
        }
        self.backlog.release(left);
    }
}

/// How many frames are queued on all connections, so publishers can wait while fan-out catches
/// up instead of overflowing healthy connections' queues.
#[derive(Debug)]
pub struct Backlog {
    queued: AtomicUsize,
    /// Publishers wait while `queued` is at or above this.
    high: usize,
    /// Woken when `queued` falls below `high`.
    room: Notify,
}

impl Backlog {
    /// A backlog that makes publishers wait at `high` queued frames.
    pub fn new(high: usize) -> Arc<Self> {
        Arc::new(Backlog {
            queued: AtomicUsize::new(0),
            high: high.max(1),
            room: Notify::new(),
        })
    }

    /// Frames queued now, on all connections.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    fn add(&self) {
        self.queued.fetch_add(1, Ordering::Relaxed);
    }

    fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        let before = self.queued.fetch_sub(n, Ordering::AcqRel);
        if before >= self.high && before.saturating_sub(n) < self.high {
            self.room.notify_waiters();
        }
    }

    /// Waits until fewer than `high` frames are queued, at most `max_wait`; returns whether
    /// there is room (false: waited out, the caller goes ahead anyway).
    pub async fn wait_for_room(&self, max_wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + max_wait;
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.queued() < self.high {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            // A short tick as well as the notification, so no wake-up can be missed for long.
            let tick = tokio::time::Instant::now() + Duration::from_millis(5);
            let _ = tokio::time::timeout_at(tick.min(deadline), notified).await;
        }
    }
}

impl ConnectionHandle {
    /// A handle and the receiver of its queue, which holds at most `capacity` frames, counted
    /// in a backlog of its own.
    pub fn new(socket_id: SocketId, capacity: usize) -> (Self, Outbound) {
        Self::with_backlog(socket_id, capacity, Backlog::new(usize::MAX))
    }

    /// A handle whose queued frames count in the shared `backlog`.
    pub fn with_backlog(
        socket_id: SocketId,
        capacity: usize,
        backlog: Arc<Backlog>,
    ) -> (Self, Outbound) {
        let (tx, rx) = mpsc::channel(capacity);
        let inner = Inner {
            socket_id,
            outbound: tx,
            backlog: backlog.clone(),
            close: CancellationToken::new(),
            reason: Mutex::new(None),
        };
        (
            ConnectionHandle {
                inner: Arc::new(inner),
            },
            Outbound { rx, backlog },
        )
    }

    /// The connection's socket id.
    pub fn socket_id(&self) -> &SocketId {
        &self.inner.socket_id
    }

    /// Queues a frame without waiting. A full queue closes the connection with 4100; returns
    /// whether the frame was queued.
    pub fn send(&self, frame: Frame) -> bool {
        // Counted before it is queued, so the receiver can never release it first.
        self.inner.backlog.add();
        match self.inner.outbound.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.inner.backlog.release(1);
                SLOW_CONSUMERS.fetch_add(1, Ordering::Relaxed);
                self.close(
                    CloseCode::OverCapacity,
                    "Over capacity: the connection is not reading fast enough",
                );
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.inner.backlog.release(1);
                false
            }
        }
    }

    /// Asks the connection to send `pusher:error` with `code` and `message`, then close.
    pub fn close(&self, code: CloseCode, message: &str) {
        if let Ok(mut reason) = self.inner.reason.lock() {
            if reason.is_none() {
                *reason = Some((code, message.to_owned()));
            }
        }
        self.inner.close.cancel();
    }

    /// Resolves when [`close`](Self::close) was called, with the code and message.
    pub async fn closed(&self) -> (CloseCode, String) {
        self.inner.close.cancelled().await;
        self.inner
            .reason
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .unwrap_or((CloseCode::Reconnect, String::new()))
    }

    /// Whether two handles are the same connection.
    pub fn same(&self, other: &ConnectionHandle) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

/// How many times a full queue closed a connection, since start.
pub fn slow_consumer_count() -> u64 {
    SLOW_CONSUMERS.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn full_queue_closes_with_4100() {
        let (handle, mut rx) = ConnectionHandle::new(SocketId::generate(), 2);
        assert!(handle.send("a".into()));
        assert!(handle.send("b".into()));
        assert!(!handle.send("c".into()));
        let (code, _) = handle.closed().await;
        assert_eq!(code, CloseCode::OverCapacity);
        assert_eq!(rx.recv().await.as_deref(), Some("a"));
        assert_eq!(rx.recv().await.as_deref(), Some("b"));
    }

    #[tokio::test]
    async fn backlog_counts_queued_frames_until_received_or_dropped() {
        let backlog = Backlog::new(2);
        let (a, mut arx) = ConnectionHandle::with_backlog(SocketId::generate(), 8, backlog.clone());
        let (b, brx) = ConnectionHandle::with_backlog(SocketId::generate(), 8, backlog.clone());
        assert!(a.send("1".into()) && b.send("2".into()) && b.send("3".into()));
        assert_eq!(backlog.queued(), 3);
        assert!(!backlog.wait_for_room(Duration::from_millis(20)).await);
        arx.recv().await;
        assert_eq!(backlog.queued(), 2);
        drop(brx);
        assert_eq!(backlog.queued(), 0);
        assert!(backlog.wait_for_room(Duration::from_millis(20)).await);
        assert!(!b.send("4".into()), "a closed queue takes nothing");
        assert_eq!(backlog.queued(), 0);
    }

    #[tokio::test]
    async fn first_close_reason_wins() {
        let (handle, _rx) = ConnectionHandle::new(SocketId::generate(), 1);
        handle.close(CloseCode::Unauthorized, "bye");
        handle.close(CloseCode::Reconnect, "later");
        assert_eq!(
            handle.closed().await,
            (CloseCode::Unauthorized, "bye".to_owned())
        );
    }
}
