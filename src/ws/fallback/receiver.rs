//! [`Receiver`]: the body of a receiving request (`xhr_streaming` or `xhr`), read from the
//! session's relay as the connection's frames gather there. A streaming body is a line per
//! frame for as long as the request lasts; a poll's body is one line (messages, a heartbeat, the
//! opening `o`) and then its end. Either way the last line is the `c` frame once the session has
//! closed with a code. While it lives it is the session's reader; a newer receiving request
//! replaces it, and it ends.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::time::{sleep, Instant, Sleep};

use super::session::Session;
use crate::connection::{Frame, Read};
use crate::protocol::sockjs;

/// How a receiving request answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// `xhr_streaming`: frames as they come, for as long as the request lasts.
    Streaming,
    /// `xhr` (long polling): the first frame, then the end.
    Polling,
}

/// A receiving request's response body.
pub(super) struct Receiver {
    session: Arc<Session>,
    /// Its number as the relay's reader.
    reader: u64,
    mode: Mode,
    /// This request opened the session: `o` goes first.
    opening: bool,
    /// A heartbeat goes out after this long without a frame.
    every: Duration,
    heartbeat: Pin<Box<Sleep>>,
    done: bool,
}

impl Receiver {
    /// Becomes `session`'s reader.
    pub(super) fn new(session: Arc<Session>, mode: Mode, opening: bool, every: Duration) -> Self {
        let reader = session.relay.attach();
        Receiver {
            session,
            reader,
            mode,
            opening,
            every,
            heartbeat: Box::pin(sleep(every)),
            done: false,
        }
    }

    /// The next line: frames, the end, a heartbeat; pending while there is none.
    fn poll_line(&mut self, cx: &mut Context<'_>) -> Poll<Option<String>> {
        if self.opening {
            self.opening = false;
            return Poll::Ready(Some(sockjs::OPEN.into()));
        }
        match self.session.relay.poll_read(cx, self.reader) {
            Poll::Ready(Read::Frames(frames)) => Poll::Ready(Some(messages(&frames))),
            Poll::Ready(Read::End(frames)) => {
                self.done = true;
                let mut lines = if frames.is_empty() {
                    String::new()
                } else {
                    messages(&frames)
                };
                lines.push_str(self.session.take_close_frame().unwrap_or_default());
                Poll::Ready((!lines.is_empty()).then_some(lines))
            }
            Poll::Ready(Read::Replaced) => Poll::Ready(None),
            Poll::Pending => match self.heartbeat.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(sockjs::HEARTBEAT.into())),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

fn messages(frames: &[Frame]) -> String {
    sockjs::messages(frames.iter().map(Frame::payload))
}

impl Stream for Receiver {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let line = std::task::ready!(this.poll_line(cx));
        let every = this.every;
        this.heartbeat.as_mut().reset(Instant::now() + every);
        if line.is_none() || this.mode == Mode::Polling {
            this.done = true;
        }
        Poll::Ready(line.map(|line| Ok(Bytes::from(line))))
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.session.relay.detach(self.reader);
    }
}
