//! [`ConnectionHandle`]: the shared front of one WebSocket connection — its socket id, its
//! bounded queue of encoded frames, and a way to ask it to close.
//!
//! Made by `ws`, held by the channel and user registries, so fan-out reaches connections without
//! knowing anything about the transport. Sending never awaits: a full queue — or a queue more
//! than half full that its connection has not drained for the stall timeout — marks the
//! connection a slow consumer, and it is closed with 4100 instead of slowing everyone down.
//! [`Backlog`] counts what is queued on all connections, for publishers' backpressure.
//!
//! The close request is a flag and one waker, not a cancellation token: the session checks it
//! on every turn of its loop, so it must cost an atomic load, not a lock.

mod backlog;

#[cfg(test)]
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use tokio::sync::mpsc;

use backlog::Share;
pub use backlog::{Backlog, Outbound};

use crate::protocol::{CloseCode, SocketId};

/// An encoded text frame; clones share the bytes. It is tungstenite's UTF-8 byte string, so
/// the transport writes it as it is, with no copy and no second UTF-8 check per subscriber.
pub type Frame = tokio_tungstenite::tungstenite::Utf8Bytes;

/// The cloneable front of one connection.
#[derive(Clone, Debug)]
pub struct ConnectionHandle {
    /// The connection's outbound queue, drained by its session loop only. Here rather than in
    /// `inner`, so queuing a frame reads one cold allocation fewer per subscriber.
    outbound: mpsc::Sender<Frame>,
    inner: Arc<Inner>,
}

/// What a connection's handles and its [`Outbound`] share. What fan-out and the session touch
/// on every frame (`share`, `closing`, `waker`) sit together, so a delivery costs each side as
/// few cache misses as possible (`repr(C)` keeps them in this order, first).
#[derive(Debug)]
#[repr(C)]
struct Inner {
    /// This queue's part in the process-wide backlog, and when it was last drained.
    share: Share,
    /// Set when someone asks the connection to close; `reason` is written first.
    closing: AtomicBool,
    /// The session waiting for `closing`.
    waker: AtomicWaker,
    /// Which connection this is; the key in every registry.
    socket_id: SocketId,
    /// Why it should close; the first request wins.
    reason: Mutex<Option<(CloseCode, String)>>,
}

impl ConnectionHandle {
    /// A handle and the receiver of its queue, which holds at most `capacity` frames, counted
    /// in a backlog of its own.
    pub fn new(socket_id: SocketId, capacity: usize) -> (Self, Outbound) {
        Self::with_backlog(
            socket_id,
            capacity,
            Backlog::new(usize::MAX, std::time::Duration::MAX),
        )
    }

    /// A handle whose queued frames count in the shared `backlog`.
    pub fn with_backlog(
        socket_id: SocketId,
        capacity: usize,
        backlog: Arc<Backlog>,
    ) -> (Self, Outbound) {
        let (tx, rx) = mpsc::channel(capacity);
        let inner = Arc::new(Inner {
            share: Share::new(backlog),
            closing: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            socket_id,
            reason: Mutex::new(None),
        });
        let outbound = Outbound::new(rx, inner.clone());
        (
            ConnectionHandle {
                outbound: tx,
                inner,
            },
            outbound,
        )
    }

    /// The connection's socket id.
    pub fn socket_id(&self) -> &SocketId {
        &self.inner.socket_id
    }

    /// Queues a frame without waiting. A full queue closes the connection with 4100; returns
    /// whether the frame was queued.
    pub fn send(&self, frame: Frame) -> bool {
        let outbound = &self.outbound;
        match outbound.try_send(frame) {
            Ok(()) => {
                let capacity = outbound.max_capacity();
                let len = capacity - outbound.capacity();
                let share = &self.inner.share;
                if len <= capacity / 2 {
                    share.counted();
                } else if share.stalled() {
                    self.slow_consumer();
                }
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.slow_consumer();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn slow_consumer(&self) {
        tracing::debug!(socket_id = %self.inner.socket_id, "slow consumer: closing with 4100");
        self.close(
            CloseCode::OverCapacity,
            "Over capacity: the connection is not reading fast enough",
        );
    }

    /// Asks the connection to send `pusher:error` with `code` and `message`, then close.
    pub fn close(&self, code: CloseCode, message: &str) {
        if let Ok(mut reason) = self.inner.reason.lock() {
            if reason.is_none() {
                *reason = Some((code, message.to_owned()));
            }
        }
        self.inner.closing.store(true, Ordering::Release);
        self.inner.waker.wake();
    }

    /// Resolves when [`close`](Self::close) was called, with the code and message (tests; the
    /// session polls [`poll_closed`](Self::poll_closed) in its `select!`).
    #[cfg(test)]
    pub async fn closed(&self) -> (CloseCode, String) {
        poll_fn(|cx| self.poll_closed(cx)).await
    }

    /// Ready with the code and message once [`close`](Self::close) was called: an atomic
    /// load, and registering the waker while no close was requested. One task at a time may
    /// wait (the connection's session): a second waiter replaces the first.
    pub fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<(CloseCode, String)> {
        let inner = &self.inner;
        if !inner.closing.load(Ordering::Acquire) {
            inner.waker.register(cx.waker());
            if !inner.closing.load(Ordering::Acquire) {
                return Poll::Pending;
            }
        }
        let reason = inner.reason.lock().ok().and_then(|r| r.clone());
        Poll::Ready(reason.unwrap_or((CloseCode::Reconnect, String::new())))
    }
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
