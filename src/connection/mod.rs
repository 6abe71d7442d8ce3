//! [`ConnectionHandle`]: the shared front of one connection — its socket id, its outbox (a
//! bounded queue of encoded frames and the sink they are written to: a WebSocket's socket, or
//! the [`Relay`] an HTTP fallback session reads from) and a way to ask it to close.
//!
//! Made by `ws`, held by the channel and user registries and the fan-out threads, so delivery
//! reaches connections without knowing anything about their sessions or transports. Sending never awaits:
//! a frame queued on an empty outbox is written at once with one non-blocking write, under the
//! outbox lock, so frames from different threads never interleave and each connection's frames
//! go out in the order they were queued. What the socket does not take stays queued, and the
//! connection's session finishes it when the socket is writable again. A full queue — or one
//! more than half full that has not drained for the stall timeout — marks the connection a slow
//! consumer, and it is closed with 4100 instead of slowing everyone down. [`Backlog`] counts
//! what is queued on all connections and which readers are near full ([`Pressure`]), for
//! publishers' backpressure; [`Traffic`] adds up an app's connections' traffic when the metrics
//! ask, from counts each connection keeps itself. [`Socket`] is a WebSocket's transport under
//! the outbox: plain TCP, or TLS written the same way; [`Relay`] is an HTTP fallback session's.
//!
//! The close request is a flag and one waker, not a cancellation token: the session checks it
//! on every turn of its loop, so it must cost an atomic load, not a lock.

mod backlog;
mod frame;
mod outbox;
mod pressure;
mod relay;
mod socket;
mod traffic;

use std::future::poll_fn;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

use backlog::Share;
pub use backlog::{Backlog, Waits};
pub use frame::Frame;
pub use outbox::Wire;
use outbox::{Outbox, Sink};
pub use pressure::Pressure;
pub use relay::{Read, Relay};
pub use socket::Socket;
pub use traffic::{CloseCounts, SlowConsumer, Snapshot, Totals, Traffic};

use crate::protocol::{CloseCode, SocketId};

/// Hands out fan-out lanes round robin, so connections spread evenly over the fan-out threads.
static NEXT_LANE: AtomicUsize = AtomicUsize::new(0);

/// The cloneable front of one connection.
#[derive(Clone, Debug)]
pub struct ConnectionHandle {
    inner: Arc<Inner>,
}

/// What a connection's handles and its [`Outbound`] share.
#[derive(Debug)]
struct Inner {
    /// The queue and the socket; every write happens under this lock.
    outbox: Mutex<Outbox>,
    /// This queue's part in the process-wide backlog.
    share: Share,
    /// Set when someone asks the connection to close; `reason` is written first.
    closing: AtomicBool,
    /// The session: woken for a close request and when a write is left for it to finish.
    waker: AtomicWaker,
    /// Most frames queued before the connection counts as a slow consumer.
    capacity: usize,
    /// Which fan-out thread writes this connection's share of a broadcast.
    lane: usize,
    /// Which connection this is; the key in every registry.
    socket_id: SocketId,
    /// Why it should close; the first request wins.
    reason: Mutex<Option<(CloseCode, String)>>,
    /// The app's traffic, which counts this connection, and its key there.
    traffic: Arc<Traffic>,
    traffic_key: u64,
    /// Data messages received; only the session adds to it.
    messages_in: AtomicU64,
}

/// Whether [`ConnectionHandle::queue`] took a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// Not taken: the connection is closed or over capacity.
    Refused,
    /// Taken; someone else writes it (the open batch, or the session waiting for the socket).
    Queued,
    /// Taken, and the outbox needs a [`flush`](ConnectionHandle::flush) now.
    FlushNeeded,
}

impl ConnectionHandle {
    /// A handle without a socket (tests): frames stay queued until taken with
    /// [`Outbound::try_recv`]. The queue holds at most `capacity` frames, counted in a backlog of
    /// its own.
    pub fn new(socket_id: SocketId, capacity: usize) -> (Self, Outbound) {
        Self::with_backlog(
            socket_id,
            capacity,
            Backlog::new(usize::MAX, std::time::Duration::MAX),
        )
    }

    /// A handle without a socket whose queued frames count in the shared `backlog`.
    pub fn with_backlog(
        socket_id: SocketId,
        capacity: usize,
        backlog: Arc<Backlog>,
    ) -> (Self, Outbound) {
        Self::build(socket_id, capacity, backlog, &Traffic::new(), None)
    }

    /// A handle without a socket counted in `traffic` (tests).
    pub fn counted(
        socket_id: SocketId,
        capacity: usize,
        backlog: Arc<Backlog>,
        traffic: &Arc<Traffic>,
    ) -> (Self, Outbound) {
        Self::build(socket_id, capacity, backlog, traffic, None)
    }

    /// A handle that writes to `socket` (plain TCP or TLS), counted in its app's `traffic`.
    pub fn with_socket(
        socket_id: SocketId,
        capacity: usize,
        backlog: Arc<Backlog>,
        traffic: &Arc<Traffic>,
        socket: Socket,
    ) -> (Self, Outbound) {
        Self::build(
            socket_id,
            capacity,
            backlog,
            traffic,
            Some(Sink::Socket(socket)),
        )
    }

    /// A handle whose frames go to `relay`, for a transport that reads them from there,
    /// counted in its app's `traffic`.
    pub fn with_relay(
        socket_id: SocketId,
        capacity: usize,
        backlog: Arc<Backlog>,
        traffic: &Arc<Traffic>,
        relay: Arc<Relay>,
    ) -> (Self, Outbound) {
        Self::build(
            socket_id,
            capacity,
            backlog,
            traffic,
            Some(Sink::Relay(relay)),
        )
    }

    fn build(
        socket_id: SocketId,
        capacity: usize,
        backlog: Arc<Backlog>,
        traffic: &Arc<Traffic>,
        sink: Option<Sink>,
    ) -> (Self, Outbound) {
        let inner = Arc::new_cyclic(|weak| Inner {
            outbox: Mutex::new(Outbox::new(sink)),
            share: Share::new(backlog, capacity.max(1)),
            closing: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            capacity: capacity.max(1),
            lane: NEXT_LANE.fetch_add(1, Ordering::Relaxed),
            socket_id,
            reason: Mutex::new(None),
            traffic: traffic.clone(),
            traffic_key: traffic.join(weak.clone()),
            messages_in: AtomicU64::new(0),
        });
        let outbound = Outbound {
            inner: inner.clone(),
        };
        (ConnectionHandle { inner }, outbound)
    }

    /// The connection's socket id.
    pub fn socket_id(&self) -> &SocketId {
        &self.inner.socket_id
    }

    /// The connection's fan-out lane (any number; take it modulo the number of lanes).
    pub fn lane(&self) -> usize {
        self.inner.lane
    }

    /// Counts a data message received from the client (the session's, for the metrics).
    pub fn received_message(&self) {
        self.inner.messages_in.fetch_add(1, Ordering::Relaxed);
    }

    /// Queues a frame and, if nothing was waiting before it, writes it now, without waiting. A
    /// full queue closes the connection with 4100; returns whether the frame was queued.
    pub fn send(&self, frame: Frame) -> bool {
        self.send_if(frame, None)
    }

    /// [`send`](Self::send), unless `live` (checked under the outbox lock) is false.
    fn send_if(&self, frame: Frame, live: Option<&AtomicBool>) -> bool {
        let inner = &self.inner;
        let mut outbox = inner.lock();
        if live.is_some_and(|live| !live.load(Ordering::Relaxed)) {
            return false;
        }
        if outbox.is_idle() {
            // Nothing waiting: write it now, and count it in the backlog only if it stays.
            outbox.push(frame, &inner.share);
            if outbox.counting() {
                inner.share.reached();
            }
            inner.write(&mut outbox);
            if outbox.len() > 0 && outbox.counting() {
                inner.share.counted();
            }
            return true;
        }
        // Frames already waiting are someone else's to write: a fan-out batch about to flush,
        // or the session waiting for the socket to drain.
        self.push(&mut outbox, frame).is_some()
    }

    /// Queues a frame without writing it (fan-out batches); the caller must
    /// [`flush`](Self::flush) when told [`Queued::FlushNeeded`].
    pub fn queue(&self, frame: Frame) -> Queued {
        self.queue_if(frame, None)
    }

    /// [`queue`](Self::queue), unless `live` (checked under the outbox lock) is false.
    fn queue_if(&self, frame: Frame, live: Option<&AtomicBool>) -> Queued {
        let mut outbox = self.inner.lock();
        if live.is_some_and(|live| !live.load(Ordering::Relaxed)) {
            return Queued::Refused;
        }
        let Some(len) = self.push(&mut outbox, frame) else {
            return Queued::Refused;
        };
        // An open batch flushes it; so does the session, if it waits for the socket to drain.
        if outbox.dirty || len > 1 {
            return Queued::Queued;
        }
        outbox.dirty = true;
        Queued::FlushNeeded
    }

    /// Writes what [`queue`](Self::queue) left, without waiting.
    pub fn flush(&self) {
        let mut outbox = self.inner.lock();
        outbox.dirty = false;
        self.inner.write(&mut outbox);
    }

    /// Appends under the lock; the queue's new length, or `None` if it was refused.
    fn push(&self, outbox: &mut Outbox, frame: Frame) -> Option<usize> {
        if !outbox.taking() {
            return None;
        }
        let inner = &self.inner;
        if outbox.len() >= inner.capacity {
            inner.slow_consumer(SlowConsumer::QueueFull);
            return None;
        }
        let len = outbox.push(frame, &inner.share);
        if outbox.counting() {
            inner.share.reached();
            if len <= inner.capacity / 2 {
                inner.share.counted();
            }
        }
        Some(len)
    }

    /// Asks the connection to send `pusher:error` with `code` and `message`, then close.
    pub fn close(&self, code: CloseCode, message: &str) {
        self.inner.close(code, message);
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

/// One connection's subscription to one channel: what broadcasts of that channel are delivered
/// to. Once [`end`](Self::end)ed, nothing more goes through it, including broadcasts handed to
/// the fan-out lanes before (their `subscription_count`, member events, cached events): the
/// check is made under the connection's outbox lock, so once `end` returns no frame of the
/// channel is queued for the connection any more.
#[derive(Clone, Debug)]
pub struct Subscription {
    handle: ConnectionHandle,
    live: Arc<AtomicBool>,
}

impl Subscription {
    /// A live subscription of `handle`.
    pub fn new(handle: ConnectionHandle) -> Self {
        Subscription {
            handle,
            live: Arc::new(AtomicBool::new(true)),
        }
    }

    /// The subscribed connection.
    pub fn handle(&self) -> &ConnectionHandle {
        &self.handle
    }

    /// [`ConnectionHandle::send`] while the subscription lasts.
    pub fn send(&self, frame: Frame) -> bool {
        self.handle.send_if(frame, Some(&self.live))
    }

    /// [`ConnectionHandle::queue`] while the subscription lasts.
    pub fn queue(&self, frame: Frame) -> Queued {
        self.handle.queue_if(frame, Some(&self.live))
    }

    /// Ends the subscription: from when this returns, nothing more is queued through it.
    pub fn end(&self) {
        let _outbox = self.handle.inner.lock();
        self.live.store(false, Ordering::Relaxed);
    }
}

impl Inner {
    /// Asks the session to close; returns whether this was the first request (the one that
    /// wins).
    fn close(&self, code: CloseCode, message: &str) -> bool {
        let mut first = false;
        if let Ok(mut reason) = self.reason.lock() {
            if reason.is_none() {
                *reason = Some((code, message.to_owned()));
                first = true;
            }
        }
        self.closing.store(true, Ordering::Release);
        self.waker.wake();
        first
    }

    fn slow_consumer(&self, why: SlowConsumer) {
        let closing = self.close(
            CloseCode::OverCapacity,
            "Over capacity: the connection is not reading fast enough",
        );
        if closing {
            let reason = why.label();
            tracing::debug!(socket_id = %self.socket_id, reason, "slow consumer: closing with 4100");
            self.traffic.slow_consumer(why);
        }
    }

    /// Queues one of the session's own frames (tungstenite's control frames, a transport's
    /// last `pusher:error`): taken even once the outbox is sealed, after what is queued, and
    /// over capacity, though a queue past it marks a slow consumer all the same.
    fn push_own(self: &Arc<Self>, frame: Frame) -> io::Result<()> {
        let mut outbox = self.lock();
        if let Some(e) = outbox.failure() {
            return Err(e);
        }
        let len = outbox.push(frame, &self.share);
        if len > self.capacity {
            self.slow_consumer(SlowConsumer::QueueFull);
        }
        if len == 1 && !outbox.dirty {
            self.write(&mut outbox);
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Outbox> {
        // Nothing panics while holding it; if something did, the queue is still consistent.
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes what is queued without waiting; what the socket does not take is left for the
    /// session, which is woken to wait for the socket to drain, and the connection has fallen
    /// behind.
    fn write(self: &Arc<Self>, outbox: &mut Outbox) {
        match outbox.write(&self.share) {
            Ok(true) => {}
            Ok(false) => {
                self.fell_behind(outbox);
                self.waker.wake();
            }
            Err(e) => {
                tracing::debug!(socket_id = %self.socket_id, error = %e, "write failed");
                outbox.fail(e.kind(), &self.share);
                self.waker.wake();
            }
        }
    }

    /// The session's side of writing: writes what is queued, and while the socket does not
    /// take it, registers for the socket to drain. Ready when everything is written (`Ok`) or
    /// the socket failed; with `park`, an empty queue is `Pending` instead (the session loop
    /// waits on this for as long as the connection lives).
    fn poll_write(self: &Arc<Self>, cx: &mut Context<'_>, park: bool) -> Poll<io::Result<()>> {
        if park {
            self.waker.register(cx.waker());
        }
        let mut outbox = self.lock();
        loop {
            if let Some(e) = outbox.failure() {
                return Poll::Ready(Err(e));
            }
            let written = match outbox.write(&self.share) {
                Ok(written) => written,
                Err(e) => {
                    outbox.fail(e.kind(), &self.share);
                    return Poll::Ready(Err(e));
                }
            };
            if written {
                return if park {
                    Poll::Pending
                } else {
                    Poll::Ready(Ok(()))
                };
            }
            match outbox.poll_write_ready(cx) {
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(e)) => {
                    outbox.fail(e.kind(), &self.share);
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => {
                    self.fell_behind(&mut outbox);
                    return Poll::Pending;
                }
            }
        }
    }

    /// Frames are left in the queue for a socket that takes no more now: from here on the
    /// backlog's stall watch looks after the connection, until it catches up.
    fn fell_behind(self: &Arc<Self>, outbox: &mut Outbox) {
        if !outbox.behind {
            outbox.behind = true;
            self.share
                .backlog()
                .fell_behind(Arc::downgrade(self), outbox.taken());
        }
    }
}

/// The session's end of a connection: the socket as tungstenite sees it ([`Wire`]), the writes
/// left for the session, and the end of the outbox. Dropping it closes the outbox, lets go of
/// what is queued (and its share of the backlog) and closes the socket.
#[derive(Debug)]
pub struct Outbound {
    inner: Arc<Inner>,
}

impl Outbound {
    /// The socket for tungstenite: reads come from it, writes (pongs, close frames) are queued
    /// in order with everything else.
    pub fn wire(&self) -> Wire {
        Wire::new(self.inner.clone())
    }

    /// Writes what others left queued once the socket drains; pending for as long as all is
    /// well, ready with the error once the socket fails.
    pub fn poll_write_left(&self, cx: &mut Context<'_>) -> Poll<io::Error> {
        match self.inner.poll_write(cx, true) {
            Poll::Ready(Err(e)) => Poll::Ready(e),
            _ => Poll::Pending,
        }
    }

    /// Refuses frames from now on, except the session's own (tungstenite's close frame and
    /// close reply, [`send_last`](Self::send_last)), so nothing is written after the close.
    pub fn seal(&self) {
        self.inner.lock().seal(&self.inner.share);
    }

    /// Queues the session's last frame (the `pusher:error` before a transport's own close
    /// signal), sealed or not, after what is queued.
    pub fn send_last(&self, frame: Frame) -> io::Result<()> {
        self.inner.push_own(frame)
    }

    /// Waits until everything queued is written (closing; the caller bounds the wait).
    pub async fn drained(&self) -> io::Result<()> {
        poll_fn(|cx| self.inner.poll_write(cx, false)).await
    }

    /// Drops what is queued but not started (a slow consumer's queue is what it could not
    /// read); a frame partly written is finished, so the stream stays well formed.
    pub fn discard_queued(&self) {
        self.inner.lock().discard(&self.inner.share);
    }

    /// Takes the oldest queued frame (tests: a handle without a socket).
    #[cfg(test)]
    pub fn try_recv(&mut self) -> Option<Frame> {
        self.inner.lock().pop(&self.inner.share)
    }
}

impl Drop for Outbound {
    fn drop(&mut self) {
        let inner = &self.inner;
        let totals = {
            let mut outbox = inner.lock();
            outbox.close(&inner.share);
            inner.totals(&outbox)
        };
        // Closed: nothing is written or read any more, so the counts are final. Not under the
        // outbox lock: the traffic's lock is always taken first.
        inner.traffic.leave(inner.traffic_key, totals);
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
        assert_eq!(rx.try_recv().map(|f| f.to_string()).as_deref(), Some("a"));
        assert_eq!(rx.try_recv().map(|f| f.to_string()).as_deref(), Some("b"));
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

    #[test]
    fn a_closed_outbox_takes_nothing() {
        let (handle, rx) = ConnectionHandle::new(SocketId::generate(), 4);
        drop(rx);
        assert!(!handle.send("late".into()));
        assert_eq!(handle.queue("late".into()), Queued::Refused);
    }

    #[tokio::test]
    async fn a_sealed_outbox_takes_only_the_sessions_own_frames() {
        use tokio::io::AsyncWriteExt;
        let (handle, mut rx) = ConnectionHandle::new(SocketId::generate(), 8);
        assert!(handle.send("before".into()));
        rx.seal();
        assert!(!handle.send("after".into()));
        assert_eq!(handle.queue("after".into()), Queued::Refused);
        // tungstenite's close frame still goes in, behind what was queued before the seal.
        rx.wire().write_all(b"\x88\x00").await.unwrap();
        assert_eq!(
            rx.try_recv().map(|f| f.to_string()).as_deref(),
            Some("before")
        );
        assert_eq!(
            rx.try_recv().map(|f| f.wire().to_vec()),
            Some(vec![0x88, 0x00])
        );
        assert!(rx.try_recv().is_none());
    }

    #[test]
    fn a_batch_asks_for_one_flush() {
        let (handle, mut rx) = ConnectionHandle::new(SocketId::generate(), 8);
        assert_eq!(handle.queue("1".into()), Queued::FlushNeeded);
        assert_eq!(handle.queue("2".into()), Queued::Queued);
        // A direct send while a batch is open leaves the write to the batch's flush.
        assert!(handle.send("3".into()));
        handle.flush();
        let got: Vec<String> =
            std::iter::from_fn(|| rx.try_recv().map(|f| f.to_string())).collect();
        assert_eq!(got, ["1", "2", "3"]);
    }
}
