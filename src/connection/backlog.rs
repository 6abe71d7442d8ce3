//! Backpressure bookkeeping: the process-wide [`Backlog`] that API triggers wait on, each
//! connection's [`Share`] of it, and the stall watch over the connections that have fallen
//! behind. It also counts the publishers that found it full and waited (the metrics'
//! [`Waits`]).
//!
//! A connection *falls behind* when its socket refuses bytes and frames stay in its outbox. From
//! then on the watch ([`Backlog::watch_stalls`]) looks at it every [`WATCH_EVERY`]: a connection
//! that takes no whole frame off its queue for [`EXCUSED_AFTER`] is *excused* (publishers never
//! wait for a reader that is not reading; one the watch last found brisk, below, is given a
//! second), and one that takes nothing for the stall timeout is closed with 4100, whatever it
//! sends meanwhile. A queue that fills is closed with 4100 at once.
//!
//! Publishers wait while any of these holds:
//!
//! - **the backlog is full**: `fanout_backlog` frames counted, which are the fan-out lanes'
//!   pending writes and the first half of the queues of connections not excused. This bounds
//!   the work and memory queued when many connections are a little behind.
//! - **a pressed reader drains briskly**: a connection not excused is *pressed* while more than
//!   half of its queue waits, and *brisk* unless, over the last second it has been behind
//!   ([`BRISK_WINDOWS`] windows of the watch), it took frames at a pace that would not empty a
//!   full queue within the stall timeout (205 frames a second at the defaults). Publishers are
//!   held to the pace of such a reader, however few of them there are, beside however many
//!   excused ones: a healthy reader a little slower than the others is not closed for it.
//! - **more than a quarter of the connections receiving are pressed** ([`PRESSED_SHARE`]),
//!   brisk or not: a connection is *receiving* if a frame was queued for it in the last
//!   [`RECEIVER_PASSES`] passes of the watch. The readers as a whole are not keeping up (the
//!   machine is saturated, say), so they set the pace however slowly they read.
//!
//! A reader that is not brisk and is among the slowest quarter, on purpose or not, holds
//! nobody: its queue fills and it is closed with 4100, as one that stops reading is closed by
//! the watch. So a reader that reads slowly on purpose holds publishers only by reading at least
//! at the brisk pace, or together with over a quarter of those receiving (or, as before, 128 of
//! them half full at defaults: the backlog's own limit).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::pressure::{is_brisk, Pressure, Reader, Readers, RECEIVER_PASSES};
use super::Inner;

/// How often the stall watch looks at the connections that are behind (at most; a short stall
/// timeout makes it look more often).
const WATCH_EVERY: Duration = Duration::from_millis(50);
/// A connection behind that has taken no frame for this long stops counting in the backlog
/// until it takes one (at most half the stall timeout; [`BRISK_WINDOWS`] times as long, up to
/// half the stall timeout, if the watch last found it brisk); also the watch's window for
/// telling whether a reader is brisk.
const EXCUSED_AFTER: Duration = Duration::from_millis(250);
/// Whether a reader is brisk is told at the end of each window from its pace over this many
/// (one second at the defaults), so that one window it was not given the CPU does not count
/// against it.
const BRISK_WINDOWS: usize = 4;
/// Publishers wait while more than one in this many of the connections receiving is pressed.
const PRESSED_SHARE: usize = 4;

/// How many frames are queued on all connections, and who is behind.
#[derive(Debug)]
pub struct Backlog {
    queued: AtomicUsize,
    /// Publishers waiting for room now, those that waited and those that gave up waiting.
    waits: WaitCounts,
    /// Publishers wait while `queued` is at or above this.
    high: usize,
    /// A connection behind that takes nothing off its queue for this long is a slow consumer.
    stall: Duration,
    /// Woken when `queued` falls below `high`.
    room: Notify,
    /// The origin of the millisecond timestamps of the stall watch.
    base: Instant,
    /// Connections that fell behind since the watch last looked.
    fell_behind: Mutex<Vec<Behind>>,
    /// The connections pressed, brisk and receiving, for the publishers' wait.
    readers: Readers,
}

/// Publishers that had to wait for room: counted only when the backlog is full, never on the
/// way through.
#[derive(Debug, Default)]
struct WaitCounts {
    waiting: AtomicUsize,
    waited: AtomicU64,
    waited_out: AtomicU64,
}

/// Publishers and the backlog, for the metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Waits {
    /// Waiting for room now.
    pub waiting: usize,
    /// Found the backlog full and waited, since start.
    pub waited: u64,
    /// Waited the longest allowed and went ahead anyway, since start.
    pub waited_out: u64,
}

/// One publisher waiting; counted out when dropped (a request given up stops waiting too).
struct Waiting<'a>(&'a WaitCounts);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection the stall watch looks after: when it last took a frame off its queue.
#[derive(Debug)]
pub(super) struct Behind {
    conn: Weak<Inner>,
    /// Its count of frames taken when last looked at.
    taken: u64,
    /// When ([`Backlog::now_ms`]) it fell behind or last took a frame.
    since_ms: u64,
    /// Its count of frames taken at the start of each of its last [`BRISK_WINDOWS`] windows,
    /// and when that was, the latest first (all the same when it fell behind).
    marks: [(u64, u64); BRISK_WINDOWS],
    /// The watch found it brisk at the end of its last window (not yet: false).
    brisk: bool,
}

impl Backlog {
    /// A backlog that makes publishers wait at `high` queued frames, and whose connections are
    /// slow consumers after `stall` without taking a frame while they are behind.
    pub fn new(high: usize, stall: Duration) -> Arc<Self> {
        Arc::new(Backlog {
            queued: AtomicUsize::new(0),
            waits: WaitCounts::default(),
            high: high.max(1),
            stall,
            room: Notify::new(),
            base: Instant::now(),
            fell_behind: Mutex::new(Vec::new()),
            readers: Readers::default(),
        })
    }

    /// The window of the watch (and how long a reader may take no frame before it is
    /// excused), in milliseconds: [`EXCUSED_AFTER`], at most half the stall timeout.
    fn window_ms(&self) -> u64 {
        (EXCUSED_AFTER.as_millis() as u64).min(self.stall.as_millis() as u64 / 2)
    }

    /// Milliseconds since the backlog was made, for cheap timestamps.
    fn now_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    /// Frames counted now, on all connections.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// The number of frames at which publishers wait.
    pub fn limit(&self) -> usize {
        self.high
    }

    /// The connections pressed now, the brisk ones among them, and those receiving.
    pub fn pressure(&self) -> Pressure {
        self.readers.pressure()
    }

    /// Whether publishers wait now (the module's three reasons).
    fn full(&self) -> bool {
        if self.queued() >= self.high {
            return true;
        }
        let Pressure {
            pressed,
            brisk,
            receivers,
        } = self.pressure();
        // The count of receivers lags by a pass: never fewer than those pressed.
        brisk > 0 || (pressed > 0 && PRESSED_SHARE * pressed > receivers.max(pressed))
    }

    /// Wakes the publishers waiting if there is room now (the pressure eased).
    fn eased(&self) {
        if !self.full() {
            self.room.notify_waiters();
        }
    }

    /// How many publishers wait for room now and have waited so far.
    pub fn waits(&self) -> Waits {
        let w = &self.waits;
        Waits {
            waiting: w.waiting.load(Ordering::Relaxed),
            waited: w.waited.load(Ordering::Relaxed),
            waited_out: w.waited_out.load(Ordering::Relaxed),
        }
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
        if before >= self.high && before.saturating_sub(n) < self.high && !self.full() {
            self.room.notify_waiters();
        }
    }

    /// Waits until the backlog is not [full](Self::full), at most `max_wait`; returns whether
    /// there is room (false: waited out, the caller goes ahead anyway).
    pub async fn wait_for_room(&self, max_wait: Duration) -> bool {
        if !self.full() {
            return true;
        }
        let waits = &self.waits;
        waits.waiting.fetch_add(1, Ordering::Relaxed);
        waits.waited.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(waits);
        let deadline = Instant::now() + max_wait;
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.full() {
                return true;
            }
            if Instant::now() >= deadline {
                waits.waited_out.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            // A short tick as well as the notification, so no wake-up can be missed for long.
            let tick = Instant::now() + Duration::from_millis(5);
            let _ = tokio::time::timeout_at(tick.min(deadline), notified).await;
        }
    }

    /// `conn`, whose count of frames taken is `taken`, has just fallen behind: the watch looks
    /// after it from now on. Called under the connection's outbox lock, once per episode.
    pub(super) fn fell_behind(&self, conn: Weak<Inner>, taken: u64) {
        let now = self.now_ms();
        let behind = Behind {
            conn,
            taken,
            since_ms: now,
            marks: [(taken, now); BRISK_WINDOWS],
            brisk: false,
        };
        self.fell_behind
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(behind);
    }

    /// The stall watch: runs until aborted (the server aborts it when it stops), looking at
    /// every connection that is behind each [`WATCH_EVERY`].
    pub async fn watch_stalls(self: Arc<Self>) {
        let every = WATCH_EVERY
            .min(self.stall / 4)
            .max(Duration::from_millis(1));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watched = Vec::new();
        let mut receivers = [0; RECEIVER_PASSES];
        loop {
            tick.tick().await;
            self.look(&mut watched);
            if self.readers.count(&mut receivers) {
                self.eased();
            }
        }
    }

    /// One pass of the stall watch over `watched`, which it keeps between passes.
    fn look(&self, watched: &mut Vec<Behind>) {
        watched.append(&mut self.fell_behind.lock().unwrap_or_else(|e| e.into_inner()));
        if watched.is_empty() {
            return;
        }
        let now = self.now_ms();
        let stall = self.stall.as_millis() as u64;
        let excused = self.window_ms();
        let brisk_excused = (excused * BRISK_WINDOWS as u64).min(stall / 2).max(excused);
        watched.retain_mut(|behind| {
            let Some(conn) = behind.conn.upgrade() else {
                return false;
            };
            let share = &conn.share;
            let stalled = {
                let mut outbox = conn.lock();
                if !outbox.is_behind() {
                    outbox.caught_up(share);
                    share.pace(true);
                    return false;
                }
                let taken = outbox.taken();
                if taken != behind.taken {
                    behind.taken = taken;
                    behind.since_ms = now;
                    outbox.count(true, share);
                }
                if now.saturating_sub(behind.marks[0].1) >= excused {
                    let (then_taken, then_ms) = behind.marks[BRISK_WINDOWS - 1];
                    let span = Duration::from_millis(now - then_ms);
                    behind.brisk = is_brisk(taken - then_taken, span, conn.capacity, self.stall);
                    share.pace(behind.brisk);
                    behind.marks.rotate_right(1);
                    behind.marks[0] = (taken, now);
                }
                let idle = now.saturating_sub(behind.since_ms);
                // A reader found brisk gets longer: one the CPU left behind for a moment is
                // not overflowed for it.
                let excuse = if behind.brisk { brisk_excused } else { excused };
                if idle >= excuse && outbox.counting() {
                    outbox.count(false, share);
                }
                idle >= stall
            };
            if stalled {
                conn.slow_consumer(super::SlowConsumer::Stalled);
            }
            !stalled
        });
        if watched.capacity() > 64 && watched.len() < watched.capacity() / 4 {
            watched.shrink_to_fit();
        }
    }
}

/// One connection's part in the backlog; it lives in the connection's shared state.
#[derive(Debug)]
pub(super) struct Share {
    backlog: Arc<Backlog>,
    /// Frames of this queue counted in the backlog.
    counted: AtomicUsize,
    /// This connection as a reader: pressed, brisk, receiving.
    reader: Reader,
}

impl Share {
    /// The share of a queue of `capacity` frames in `backlog`.
    pub(super) fn new(backlog: Arc<Backlog>, capacity: usize) -> Self {
        Share {
            backlog,
            counted: AtomicUsize::new(0),
            reader: Reader::new(capacity),
        }
    }

    /// The backlog this share counts in.
    pub(super) fn backlog(&self) -> &Backlog {
        &self.backlog
    }

    /// A frame was queued that counts.
    pub(super) fn counted(&self) {
        self.counted.fetch_add(1, Ordering::Relaxed);
        self.backlog.add(1);
    }

    /// A frame left the queue (written or dropped).
    pub(super) fn received(&self) {
        let took = self
            .counted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if took.is_ok() {
            self.backlog.release(1);
        }
    }

    /// Stops counting every frame of this queue.
    pub(super) fn release_all(&self) {
        self.backlog.release(self.counted.swap(0, Ordering::AcqRel));
    }

    /// A frame was queued for this connection while it counts: it is among the receivers.
    pub(super) fn reached(&self) {
        self.reader.reached(&self.backlog.readers);
    }

    /// The queue now holds `len` frames and `counts` (it is not excused and still takes frames).
    /// Called under the outbox lock after every such change.
    pub(super) fn settle(&self, len: usize, counts: bool) {
        if self.reader.settle(len, counts, &self.backlog.readers) {
            self.backlog.eased();
        }
    }

    /// The watch found it brisk, or not; under the outbox lock.
    fn pace(&self, brisk: bool) {
        if self.reader.pace(brisk, &self.backlog.readers) {
            self.backlog.eased();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::connection::{ConnectionHandle, Outbound};
    use crate::protocol::{CloseCode, SocketId};

    #[tokio::test]
    async fn backlog_counts_queued_frames_until_received_or_dropped() {
        let backlog = Backlog::new(2, Duration::from_secs(60));
        let (a, mut arx) = ConnectionHandle::with_backlog(SocketId::generate(), 8, backlog.clone());
        let (b, brx) = ConnectionHandle::with_backlog(SocketId::generate(), 8, backlog.clone());
        assert!(a.send("1".into()) && b.send("2".into()) && b.send("3".into()));
        assert_eq!(backlog.queued(), 3);
        assert!(!backlog.wait_for_room(Duration::from_millis(20)).await);
        let waits = backlog.waits();
        assert_eq!((waits.waiting, waits.waited, waits.waited_out), (0, 1, 1));
        arx.try_recv();
        assert_eq!(backlog.queued(), 2);
        drop(brx);
        assert_eq!(backlog.queued(), 0);
        assert!(backlog.wait_for_room(Duration::from_millis(20)).await);
        assert_eq!(backlog.waits().waited, 1, "with room, nothing waits");
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

    /// A connection on a real socket whose peer does not read, with buffers small enough to
    /// fill with a few frames: `(handle, outbound, peer)`.
    async fn unread(
        backlog: &Arc<Backlog>,
        capacity: usize,
    ) -> (ConnectionHandle, Outbound, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        socket2::SockRef::from(&peer)
            .set_recv_buffer_size(64 * 1024)
            .unwrap();
        let (server, _) = listener.accept().unwrap();
        socket2::SockRef::from(&server)
            .set_send_buffer_size(4096)
            .unwrap();
        server.set_nonblocking(true).unwrap();
        let socket = tokio::net::TcpStream::from_std(server).unwrap();
        // Until the reactor has seen the socket writable, tokio refuses writes without trying.
        socket.writable().await.unwrap();
        let traffic = crate::connection::Traffic::new();
        let (handle, outbound) = ConnectionHandle::with_socket(
            SocketId::generate(),
            capacity,
            backlog.clone(),
            &traffic,
            socket.into(),
        );
        (handle, outbound, peer)
    }

    /// Sends 1 KiB frames until one stays queued.
    fn fill(handle: &ConnectionHandle) {
        let frame: crate::connection::Frame = "x".repeat(1024).into();
        for _ in 0..200 {
            assert!(handle.send(frame.clone()));
            if handle.inner.lock().len() > 0 {
                return;
            }
        }
        panic!("the socket took 200 KiB without its peer reading");
    }

    /// The peer reads what has arrived, and the connection writes what its socket then takes,
    /// until at least one more frame is taken off the queue (at most 2 s of real time: the
    /// kernel frees the send buffer once the peer's window update is in).
    async fn read_and_take(conn: &ConnectionHandle, rx: &Outbound, peer: &mut std::net::TcpStream) {
        peer.set_nonblocking(true).unwrap();
        let taken = conn.inner.lock().taken();
        let mut buf = [0u8; 64 * 1024];
        for _ in 0..200 {
            while let Ok(1..) = peer.read(&mut buf) {}
            std::thread::sleep(Duration::from_millis(10));
            let _ = tokio::time::timeout(Duration::from_millis(1), rx.drained()).await;
            if conn.inner.lock().taken() > taken {
                return;
            }
        }
        panic!("no frame was taken off the queue while the peer read");
    }

    fn is_closed(handle: &ConnectionHandle) -> Option<CloseCode> {
        let waker = futures_util::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        match handle.poll_closed(&mut cx) {
            std::task::Poll::Ready((code, _)) => Some(code),
            std::task::Poll::Pending => None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_that_stops_is_excused_from_the_backlog_then_closed_4100() {
        let backlog = Backlog::new(1000, Duration::from_secs(5));
        let (stuck, _rx, _peer) = unread(&backlog, 256).await;
        fill(&stuck);
        let mut watched = Vec::new();
        backlog.look(&mut watched);
        assert_eq!(watched.len(), 1, "fell behind");
        assert_eq!(backlog.queued(), 1, "the frame left over counts");

        tokio::time::advance(EXCUSED_AFTER).await;
        backlog.look(&mut watched);
        assert_eq!(
            backlog.queued(),
            0,
            "publishers do not wait for a reader that stopped"
        );
        assert!(stuck.send("more".into()));
        assert_eq!(backlog.queued(), 0, "nor for what it is sent while excused");
        assert_eq!(is_closed(&stuck), None);

        // Nothing more is published, and it is closed all the same.
        tokio::time::advance(Duration::from_secs(5) - EXCUSED_AFTER).await;
        backlog.look(&mut watched);
        assert_eq!(is_closed(&stuck), Some(CloseCode::OverCapacity));
        assert!(watched.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_taking_frames_is_neither_excused_nor_closed() {
        let backlog = Backlog::new(1000, Duration::from_secs(5));
        let (slow, rx, mut peer) = unread(&backlog, 256).await;
        fill(&slow);
        let mut watched = Vec::new();
        backlog.look(&mut watched);
        for _ in 0..10 {
            // Reads a little every 200 ms (within the excuse): a frame is taken each time.
            tokio::time::advance(Duration::from_millis(200)).await;
            read_and_take(&slow, &rx, &mut peer).await;
            fill(&slow);
            backlog.look(&mut watched);
            assert_eq!(is_closed(&slow), None);
            assert!(backlog.queued() > 0, "its queue still counts");
        }
        assert_eq!(watched.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_that_catches_up_is_let_go_and_counts_again() {
        let backlog = Backlog::new(1000, Duration::from_secs(5));
        let (conn, rx, mut peer) = unread(&backlog, 256).await;
        fill(&conn);
        let mut watched = Vec::new();
        backlog.look(&mut watched);
        tokio::time::advance(EXCUSED_AFTER).await;
        backlog.look(&mut watched);
        assert_eq!(backlog.queued(), 0);
        // It reads everything.
        while conn.inner.lock().len() > 0 {
            read_and_take(&conn, &rx, &mut peer).await;
        }
        backlog.look(&mut watched);
        assert!(watched.is_empty(), "caught up");
        fill(&conn);
        assert_eq!(backlog.queued(), 1, "it counts again");
        backlog.look(&mut watched);
        assert_eq!(watched.len(), 1, "and is watched again");
    }

    /// Sends 64 KiB frames until more than half of its queue of `capacity` waits: pressed.
    fn press(handle: &ConnectionHandle, capacity: usize) {
        let frame: crate::connection::Frame = "x".repeat(64 * 1024).into();
        while handle.inner.lock().len() <= capacity / 2 {
            assert!(handle.send(frame.clone()));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_pressed_reader_holds_publishers_while_it_is_brisk() {
        let backlog = Backlog::new(usize::MAX, Duration::from_secs(5));
        // Brisk: 256 frames within 5 s, 51.2 a second.
        let (conn, rx, mut peer) = unread(&backlog, 256).await;
        // Three others receive and keep up.
        let others: Vec<_> = (0..3)
            .map(|_| ConnectionHandle::with_backlog(SocketId::generate(), 256, backlog.clone()))
            .collect();
        for (other, _) in &others {
            assert!(other.send("x".into()));
        }
        press(&conn, 256);
        let (mut watched, mut passes) = (Vec::new(), [0; RECEIVER_PASSES]);
        backlog.look(&mut watched);
        backlog.readers.count(&mut passes);
        let pressure = backlog.pressure();
        assert_eq!(
            (pressure.pressed, pressure.brisk, pressure.receivers),
            (1, 1, 4)
        );
        assert!(backlog.full(), "brisk until the watch has seen its pace");

        // A 64 KiB frame or so every 200 ms: far under 51.2 a second.
        for _ in 0..3 {
            tokio::time::advance(Duration::from_millis(200)).await;
            read_and_take(&conn, &rx, &mut peer).await;
            press(&conn, 256);
            backlog.look(&mut watched);
        }
        assert_eq!(backlog.pressure().brisk, 0);
        assert!(!backlog.full(), "one slow reader in four holds nobody");
        assert_eq!(
            is_closed(&conn),
            None,
            "it reads: neither excused nor closed"
        );

        // Then 20 frames or more every 200 ms, for a second: brisk again.
        for _ in 0..6 {
            tokio::time::advance(Duration::from_millis(200)).await;
            for _ in 0..20 {
                read_and_take(&conn, &rx, &mut peer).await;
            }
            press(&conn, 256);
            backlog.look(&mut watched);
        }
        assert_eq!(backlog.pressure().brisk, 1);
        assert!(
            backlog.full(),
            "a brisk reader holds publishers, however few"
        );

        // It takes nothing more (the CPU left it behind, say): found brisk, it is excused only
        // after a second, not after 250 ms.
        for _ in 0..6 {
            tokio::time::advance(Duration::from_millis(50)).await;
            backlog.look(&mut watched);
        }
        assert_eq!(backlog.pressure().pressed, 1, "300 ms without a frame");
        assert!(backlog.full());
        for _ in 0..18 {
            tokio::time::advance(Duration::from_millis(50)).await;
            backlog.look(&mut watched);
        }
        assert_eq!(backlog.pressure().pressed, 0, "excused after 1.2 s");
        assert!(!backlog.full());
    }

    #[tokio::test]
    async fn over_a_quarter_of_the_receivers_pressed_hold_publishers_brisk_or_not() {
        let backlog = Backlog::new(usize::MAX, Duration::from_secs(5));
        let mut conns: Vec<_> = (0..8)
            .map(|_| ConnectionHandle::with_backlog(SocketId::generate(), 4, backlog.clone()))
            .collect();
        for (conn, _) in &conns {
            assert!(conn.send("x".into()));
            // As if the watch had found each slow.
            conn.inner.share.pace(false);
        }
        backlog.readers.count(&mut [0; RECEIVER_PASSES]);
        for (i, (conn, _)) in conns.iter().enumerate().take(3) {
            // Three of four queued: pressed.
            assert!(conn.send("y".into()) && conn.send("z".into()));
            assert_eq!(backlog.full(), i == 2, "{} of 8 pressed", i + 1);
        }
        // One drains below half: the publishers waiting are let go.
        let rx = &mut conns[0].1;
        let (room, _) = tokio::join!(backlog.wait_for_room(Duration::from_secs(2)), async {
            tokio::task::yield_now().await;
            rx.try_recv();
        });
        assert!(room);
        assert_eq!(backlog.waits().waited_out, 0);
    }
}
