//! [`Outbox`]: a connection's queued frames and its sink, behind the connection's lock, and
//! [`Wire`], a WebSocket's socket as tungstenite sees it. The sink is a [`Socket`] (a WebSocket)
//! or a [`Relay`] (an HTTP fallback session, whose requests read what gathers). Writes take as
//! many queued frames as the socket accepts in one vectored write; frames leave the queue only
//! once fully written (with TLS: taken by rustls, see [`Socket`]; a relay takes whole frames),
//! so a partly written frame is always finished before anything else goes out.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::backlog::Share;
use super::{Frame, Inner, Relay, Socket};

/// Most frames handed to one vectored write.
const MAX_SLICES: usize = 64;
/// A queue emptied with more room than this gives it back, so a burst does not pin memory on
/// an idle connection.
const KEEP_CAPACITY: usize = 16;

/// Where a connection's frames go.
#[derive(Debug)]
pub(super) enum Sink {
    /// A WebSocket's connection: frames are written as they are, already framed.
    Socket(Socket),
    /// A transport that reads whole frames from a relay (the HTTP fallback).
    Relay(Arc<Relay>),
}

/// The queue and the sink; lives behind [`Inner`]'s lock.
#[derive(Debug)]
pub(super) struct Outbox {
    frames: VecDeque<Frame>,
    /// Bytes of the first frame already written.
    written: usize,
    /// `None` once the session has ended, and for handles without a sink (tests).
    sink: Option<Sink>,
    /// The session is closing or has ended: frames from others are refused; tungstenite's (the
    /// close frame, the close reply) still go out after what is queued.
    sealed: bool,
    /// A fan-out batch queued here and will flush.
    pub(super) dirty: bool,
    /// The socket failed; nothing more is written.
    failed: Option<io::ErrorKind>,
    /// Frames taken off the queue (written whole): the stall watch's measure of progress.
    taken: u64,
    /// The stall watch looks after this connection (it fell behind and has not caught up).
    pub(super) behind: bool,
    /// Frames queued now count in the backlog, and the queue may be pressed; off while the
    /// stall watch excuses the connection.
    counting: bool,
    /// Bytes read from the socket (the metrics' count; added under the lock the reader holds).
    pub(super) bytes_in: u64,
    /// Bytes written to the socket (likewise, by whoever writes).
    pub(super) bytes_out: u64,
}

impl Outbox {
    pub(super) fn new(sink: Option<Sink>) -> Self {
        Outbox {
            frames: VecDeque::new(),
            written: 0,
            sink,
            sealed: false,
            dirty: false,
            failed: None,
            taken: 0,
            behind: false,
            counting: true,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    /// Open, with a socket and nothing queued or about to be flushed: a frame can be written
    /// at once.
    pub(super) fn is_idle(&self) -> bool {
        self.frames.is_empty() && !self.dirty && self.taking() && self.sink.is_some()
    }

    /// Whether frames are still taken: the session is not closing and the socket has not
    /// failed.
    pub(super) fn taking(&self) -> bool {
        !self.sealed && self.failed.is_none()
    }

    /// Takes no more frames but tungstenite's, so nothing follows the close frame.
    pub(super) fn seal(&mut self, share: &Share) {
        self.sealed = true;
        self.settle(share);
    }

    /// Whether frames queued now count in the backlog (the connection is not excused).
    pub(super) fn counting(&self) -> bool {
        self.counting
    }

    /// The stall watch excuses the connection (`false`: its frames stop counting in the
    /// backlog) or counts it again (`true`: it took a frame).
    pub(super) fn count(&mut self, counting: bool, share: &Share) {
        self.counting = counting;
        if !counting {
            share.release_all();
        }
        self.settle(share);
    }

    /// Tells `share` the queue's length and whether it counts: whether it is pressed. After
    /// every change to either.
    fn settle(&self, share: &Share) {
        share.settle(self.frames.len(), self.counting && self.taking());
    }

    pub(super) fn len(&self) -> usize {
        self.frames.len()
    }

    /// How many frames have been taken off the queue so far.
    pub(super) fn taken(&self) -> u64 {
        self.taken
    }

    /// Frames are waiting for a socket that is still open and taking them.
    pub(super) fn is_behind(&self) -> bool {
        !self.frames.is_empty() && self.taking() && self.sink.is_some()
    }

    /// The stall watch lets go of it: it caught up, or it is closing.
    pub(super) fn caught_up(&mut self, share: &Share) {
        self.behind = false;
        self.counting = true;
        self.settle(share);
    }

    /// Appends a frame; the queue's new length.
    pub(super) fn push(&mut self, frame: Frame, share: &Share) -> usize {
        self.frames.push_back(frame);
        self.settle(share);
        self.frames.len()
    }

    /// Writes queued frames, and what the transport holds of them, until nothing is left
    /// (`true`) or the sink would block (`false`). Without a sink there is nothing to write to:
    /// frames stay (`true`).
    pub(super) fn write(&mut self, share: &Share) -> io::Result<bool> {
        let written = self.write_frames(share);
        self.settle(share);
        written
    }

    fn write_frames(&mut self, share: &Share) -> io::Result<bool> {
        let Outbox {
            frames,
            written,
            sink,
            failed,
            taken,
            bytes_out,
            ..
        } = self;
        if let Some(kind) = failed {
            return Err((*kind).into());
        }
        let socket = match sink {
            None => return Ok(true),
            Some(Sink::Socket(socket)) => socket,
            Some(Sink::Relay(relay)) => {
                // Whole frames only: `written` stays 0.
                for _ in 0..relay.offer(frames.iter())? {
                    if let Some(frame) = frames.pop_front() {
                        *bytes_out += frame.payload().len() as u64;
                        *taken += 1;
                        share.received();
                    }
                }
                return Ok(frames.is_empty());
            }
        };
        while let Some(front) = frames.front() {
            let sent = if frames.len() == 1 {
                // The usual case (a fan-out delivery): one frame, one plain write.
                socket.try_write(&front.wire()[*written..])
            } else {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                for (i, (slot, frame)) in slices.iter_mut().zip(frames.iter()).enumerate() {
                    let bytes = frame.wire();
                    *slot = IoSlice::new(if i == 0 { &bytes[*written..] } else { bytes });
                }
                socket.try_write_vectored(&slices[..frames.len().min(MAX_SLICES)])
            };
            match sent {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(mut sent) => {
                    *bytes_out += sent as u64;
                    while let Some(front) = frames.front() {
                        let left = front.wire().len() - *written;
                        if sent < left {
                            *written += sent;
                            break;
                        }
                        sent -= left;
                        *written = 0;
                        frames.pop_front();
                        *taken += 1;
                        share.received();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if frames.capacity() > KEEP_CAPACITY {
            *frames = VecDeque::new();
        }
        socket.flush()
    }

    /// Ready once the sink may take more (or it failed).
    pub(super) fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.sink {
            Some(Sink::Socket(socket)) => socket.poll_write_ready(cx),
            Some(Sink::Relay(relay)) => relay.poll_room(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    /// The error the socket failed with, if it did.
    pub(super) fn failure(&self) -> Option<io::Error> {
        self.failed.map(io::Error::from)
    }

    /// The socket failed: drop what is queued, write nothing more.
    pub(super) fn fail(&mut self, kind: io::ErrorKind, share: &Share) {
        self.failed = Some(kind);
        self.drop_all(share);
    }

    /// Drops every frame not yet started.
    pub(super) fn discard(&mut self, share: &Share) {
        let keep = usize::from(self.written > 0);
        while self.frames.len() > keep {
            self.frames.pop_back();
            share.received();
        }
        self.settle(share);
    }

    /// The session has ended: take nothing more, let go of the queue and close the socket.
    pub(super) fn close(&mut self, share: &Share) {
        self.sealed = true;
        self.drop_all(share);
        if let Some(Sink::Socket(socket)) = self.sink.take() {
            socket.close();
        }
    }

    fn drop_all(&mut self, share: &Share) {
        self.frames = VecDeque::new();
        self.written = 0;
        share.release_all();
        self.settle(share);
    }

    /// The oldest frame (tests: a handle without a socket).
    #[cfg(test)]
    pub(super) fn pop(&mut self, share: &Share) -> Option<Frame> {
        let frame = self.frames.pop_front()?;
        self.taken += 1;
        share.received();
        self.settle(share);
        Some(frame)
    }
}

/// A connection's socket as tungstenite sees it: reads come straight from the socket; writes
/// (pongs, pings, close frames, already framed) join the outbox, in order with every other
/// frame, even after it is sealed. Flushing writes what the socket takes and never waits.
/// It lives in the session's WebSocket stream, which is dropped before the session's
/// [`Outbound`](super::Outbound), so it never writes to a closed outbox.
#[derive(Debug)]
pub struct Wire {
    inner: Arc<Inner>,
}

impl Wire {
    pub(super) fn new(inner: Arc<Inner>) -> Self {
        Wire { inner }
    }
}

impl AsyncRead for Wire {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let inner = &self.inner;
        let mut outbox = inner.lock();
        // No socket: the session has ended; read as end of stream.
        let Some(Sink::Socket(socket)) = outbox.sink.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let n = ready!(socket.poll_read(cx, buf.initialize_unfilled()))?;
        // Reading TLS records may have made some to send (an alert, a key update answered).
        let answer = socket.wants_write();
        buf.advance(n);
        outbox.bytes_in += n as u64;
        if answer && !outbox.dirty {
            inner.write(&mut outbox);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let inner = &self.inner;
        let mut outbox = inner.lock();
        if let Some(e) = outbox.failure() {
            return Poll::Ready(Err(e));
        }
        // Control frames are few and small; they are taken even over capacity, but a client
        // that floods pings without reading is a slow consumer all the same.
        let len = outbox.push(Frame::raw(Bytes::copy_from_slice(buf)), &inner.share);
        if len > inner.capacity {
            inner.slow_consumer(super::SlowConsumer::QueueFull);
        }
        if len == 1 && !outbox.dirty {
            inner.write(&mut outbox);
        }
        Poll::Ready(Ok(buf.len()))
    }

    /// Writes what the socket takes now and never waits: the rest is the session's to finish
    /// (it is woken for it), so a ping or a pong never holds the session loop while a client is
    /// not reading. Closing waits for the outbox with [`Outbound::drained`](super::Outbound).
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let inner = &self.inner;
        let mut outbox = inner.lock();
        // An open fan-out batch flushes what it queued, and what follows it.
        if !outbox.dirty {
            inner.write(&mut outbox);
        }
        Poll::Ready(outbox.failure().map_or(Ok(()), Err))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The socket closes when the session's end of the outbox is dropped.
        self.poll_flush(cx)
    }
}
