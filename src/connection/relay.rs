//! [`Relay`]: the sink of a connection whose transport is read rather than written to — the HTTP
//! fallback, where each request takes what has gathered for it. To the outbox it is a socket
//! with a send buffer: it takes whole frames while it holds fewer than its limit in bytes, and
//! says when it has room again, so the outbox's rules (writes under the lock, the queue bound,
//! falling behind, the stall watch, 4100) apply unchanged. To the transport it is one reader
//! slot: the newest reader replaces the one before (which is told so), takes everything that
//! has gathered at once, and learns when nothing more will come.
//!
//! Lock order: the outbox's lock, then the relay's; readers take only the relay's.

use std::io;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::time::Instant;

use super::Frame;

/// What a reader finds.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// Frames, oldest first.
    Frames(Vec<Frame>),
    /// The last frames (possibly none): the connection has ended.
    End(Vec<Frame>),
    /// A newer reader has taken this one's place.
    Replaced,
}

/// Frames waiting for the transport's next reader.
#[derive(Debug)]
pub struct Relay {
    state: Mutex<State>,
    /// Bytes of payload held before it takes no more (it always takes one frame when empty).
    limit: usize,
}

#[derive(Debug)]
struct State {
    frames: Vec<Frame>,
    /// Payload bytes in `frames`.
    bytes: usize,
    /// Nothing more will be offered.
    ended: bool,
    /// The current reader: its number, whether it is there, its waker.
    reader: u64,
    attached: bool,
    reader_waker: Option<Waker>,
    /// When the last reader left (or the relay was made, before the first).
    left_at: Instant,
    /// The connection's writer, waiting for room.
    writer_waker: Option<Waker>,
}

impl Relay {
    /// An empty relay holding at most about `limit` bytes of payload.
    pub fn new(limit: usize) -> Self {
        Relay {
            state: Mutex::new(State {
                frames: Vec::new(),
                bytes: 0,
                ended: false,
                reader: 0,
                attached: false,
                reader_waker: None,
                left_at: Instant::now(),
                writer_waker: None,
            }),
            limit: limit.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it; if something did, the state is still whole.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes a new reader the current one; its number, for [`poll_read`](Self::poll_read) and
    /// [`detach`](Self::detach). The reader it replaces is woken to find it was
    /// [`Read::Replaced`].
    pub fn attach(&self) -> u64 {
        let mut state = self.lock();
        state.reader += 1;
        state.attached = true;
        let replaced = state.reader_waker.take();
        let reader = state.reader;
        drop(state);
        if let Some(waker) = replaced {
            waker.wake();
        }
        reader
    }

    /// Reader `reader` has gone; if it was the current one, from now on nobody reads.
    pub fn detach(&self, reader: u64) {
        let mut state = self.lock();
        if state.reader == reader && state.attached {
            state.attached = false;
            state.reader_waker = None;
            state.left_at = Instant::now();
        }
    }

    /// `None` while a reader is there; otherwise since when nobody has been reading.
    pub fn unread_since(&self) -> Option<Instant> {
        let state = self.lock();
        (!state.attached).then_some(state.left_at)
    }

    /// For reader `reader`: everything gathered, or the end; pending (woken later) while there is
    /// nothing yet.
    pub fn poll_read(&self, cx: &mut Context<'_>, reader: u64) -> Poll<Read> {
        let mut state = self.lock();
        if state.reader != reader || !state.attached {
            return Poll::Ready(Read::Replaced);
        }
        if state.frames.is_empty() && !state.ended {
            state.reader_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let frames = std::mem::take(&mut state.frames);
        state.bytes = 0;
        let ended = state.ended;
        let writer = state.writer_waker.take();
        drop(state);
        if let Some(waker) = writer {
            waker.wake();
        }
        Poll::Ready(if ended {
            Read::End(frames)
        } else {
            Read::Frames(frames)
        })
    }

    /// Nothing more will be offered: the reader takes what is left and then the end.
    pub fn end(&self) {
        let mut state = self.lock();
        state.ended = true;
        let reader = state.reader_waker.take();
        drop(state);
        if let Some(waker) = reader {
            waker.wake();
        }
    }

    /// Takes whole frames from the front of `frames` while there is room (the first always,
    /// when empty); how many it took.
    pub(super) fn offer<'a>(&self, frames: impl Iterator<Item = &'a Frame>) -> io::Result<usize> {
        let mut state = self.lock();
        if state.ended {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let mut took = 0;
        for frame in frames {
            if state.bytes >= self.limit && !state.frames.is_empty() {
                break;
            }
            state.bytes += frame.payload().len();
            state.frames.push(frame.clone());
            took += 1;
        }
        let reader = if took > 0 {
            state.reader_waker.take()
        } else {
            None
        };
        drop(state);
        if let Some(waker) = reader {
            waker.wake();
        }
        Ok(took)
    }

    /// Ready once the relay has room for more (or has ended, an error: nobody will read).
    pub(super) fn poll_room(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.lock();
        if state.ended {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if state.bytes < self.limit {
            return Poll::Ready(Ok(()));
        }
        state.writer_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::task::noop_waker;

    fn read(relay: &Relay, reader: u64) -> Poll<Read> {
        let waker = noop_waker();
        relay.poll_read(&mut Context::from_waker(&waker), reader)
    }

    fn frames(texts: &[&str]) -> Vec<Frame> {
        texts.iter().map(|t| Frame::text(t)).collect()
    }

    #[test]
    fn takes_whole_frames_up_to_its_limit_and_always_one() {
        let relay = Relay::new(4);
        let queued = frames(&["abc", "de", "f"]);
        assert_eq!(
            relay.offer(queued.iter()).unwrap(),
            2,
            "3 + 2 bytes: over after two"
        );
        assert_eq!(relay.offer(queued.iter()).unwrap(), 0, "full");
        let reader = relay.attach();
        assert_eq!(
            read(&relay, reader),
            Poll::Ready(Read::Frames(frames(&["abc", "de"])))
        );
        let large = frames(&["a large frame"]);
        assert_eq!(
            relay.offer(large.iter()).unwrap(),
            1,
            "an empty relay takes any frame"
        );
        let waker = noop_waker();
        assert!(relay
            .poll_room(&mut Context::from_waker(&waker))
            .is_pending());
    }

    #[test]
    fn a_new_reader_replaces_the_old_one() {
        let relay = Relay::new(1024);
        assert!(relay.unread_since().is_some(), "nobody reads yet");
        let first = relay.attach();
        assert!(read(&relay, first).is_pending());
        let second = relay.attach();
        assert_eq!(read(&relay, first), Poll::Ready(Read::Replaced));
        relay.detach(first);
        assert!(
            relay.unread_since().is_none(),
            "the old reader leaving changes nothing"
        );
        relay.offer(frames(&["x"]).iter()).unwrap();
        assert_eq!(
            read(&relay, second),
            Poll::Ready(Read::Frames(frames(&["x"])))
        );
        relay.detach(second);
        assert!(relay.unread_since().is_some());
    }

    #[test]
    fn the_end_comes_after_the_last_frames() {
        let relay = Relay::new(1024);
        let reader = relay.attach();
        relay.offer(frames(&["last"]).iter()).unwrap();
        relay.end();
        assert_eq!(
            read(&relay, reader),
            Poll::Ready(Read::End(frames(&["last"])))
        );
        assert_eq!(read(&relay, reader), Poll::Ready(Read::End(Vec::new())));
        assert!(relay.offer(frames(&["late"]).iter()).is_err());
    }
}
