//! One connection's task, whatever its transport: a single `select!` over close requests on its
//! handle (shutdown, 4200, is one of them), writes left for it, what the client sends, the
//! transport's liveness check and the authorization deadline, with one exit path that
//! unsubscribes everything, signs the user out, then lets the transport flush and close with a
//! Pusher code. A [`Transport`] is what differs: a WebSocket ([`websocket`](super::websocket)) or an
//! HTTP fallback session ([`fallback`](super::fallback)). Frames are written by whoever queues
//! them (see `connection`); the session only finishes what the sink did not take at once.
//! Checking for a close request takes no lock.

use std::future::{poll_fn, Future};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{sleep, sleep_until, Instant};
use tracing::Instrument;

use super::dispatch::Connection;
use crate::app::{App, ConnectionSlot};
use crate::connection::{ConnectionHandle, Outbound};
use crate::console::Activity;
use crate::protocol::{CloseCode, ServerMessage};
use crate::state::State;

/// How long closing a connection may take (flush, error, close signal).
pub(super) const FINISH_TIMEOUT: Duration = Duration::from_secs(2);

/// How a session ended.
#[derive(Debug)]
pub(super) enum Exit {
    /// The transport is gone (EOF, error, an abandoned HTTP session): nothing more to send.
    Gone,
    /// The peer sent a WebSocket close frame: the answer is queued, flush it.
    PeerClosed,
    /// We close with this code and reason, after `pusher:error` with them unless the client
    /// broke the framing (see [`CloseCode::with_pusher_error`]).
    Close(CloseCode, String),
}

/// What the client sent, as the session loop needs it.
pub(super) enum Inbound<T> {
    /// A text message for dispatch.
    Text(T),
    /// A data message dispatch cannot read; answered with this `pusher:error`.
    Unreadable(&'static str),
    /// Transport traffic only (a ping answered, a pong, a heartbeat).
    Nothing,
    /// The session ends.
    End(Exit),
}

/// A connection's transport: where messages come from, how it checks the client is still
/// there, and how it closes. Its futures must be cancel-safe (they are `select!` arms).
pub(super) trait Transport {
    /// The text of a message (borrowed from the transport's buffers where it can be).
    type Text: AsRef<str>;
    /// For logs.
    const NAME: &'static str;
    /// When the first liveness check is due, for a session starting at `now`.
    fn first_check(&self, now: Instant) -> Instant;
    /// What the client sent next.
    async fn next(&mut self) -> Inbound<Self::Text>;
    /// The liveness check, due now: when the next one is due, or how the session ends.
    async fn check(&mut self, now: Instant) -> Result<Instant, Exit>;
    /// Flushes, says why the session ended and closes; bounded in time. The outbox is sealed
    /// and the connection has left its channels.
    async fn finish(self, exit: Exit, outbound: &Outbound);
}

/// What a transport sends before its close signal, given the outbox: a slow consumer's queue is
/// dropped first (it is what the client could not read; anything else queued goes out ahead of
/// the error), and the `pusher:error` to send, unless the client broke the framing.
pub(super) fn last_words(code: CloseCode, message: &str, outbound: &Outbound) -> Option<String> {
    if code == CloseCode::OverCapacity {
        outbound.discard_queued();
    }
    code.with_pusher_error().then(|| {
        ServerMessage::Error {
            code: Some(code.code()),
            message,
        }
        .encode()
    })
}

/// Runs a connection until it ends: `handle` and `outbound` are its two ends, `slot` its place
/// in the app's connection count.
///
/// Not an `async fn`, and the transport is used where the block captured it: this future is the
/// connection's task for its whole life, and an `async fn` keeps its arguments in its future
/// beside the body's copies of them (as `let x = x;` of a captured value does), which held the
/// WebSocket transport (344 bytes) three times in every idle connection.
pub(super) fn run<T: Transport>(
    state: Arc<State>,
    app: Arc<App>,
    slot: ConnectionSlot,
    (handle, outbound): (ConnectionHandle, Outbound),
    mut transport: T,
) -> impl Future<Output = ()> {
    let span = tracing::debug_span!("connection", app_id = %app.config.id, socket_id = %handle.socket_id());
    async move {
        // Encoded at once: the message itself would stay in the task beside the loop.
        let established = ServerMessage::ConnectionEstablished {
            socket_id: handle.socket_id().as_str(),
            activity_timeout: state.server.activity_timeout.as_secs(),
        }
        .encode();
        handle.send(established.into());
        app.console.report(Activity::ConnectionOpened {
            socket_id: handle.socket_id().as_str(),
            transport: T::NAME,
        });
        let watched = state.shutdown.watch(&handle);
        let mut conn = Connection::new(app.clone(), state.adapter.clone(), handle);
        tracing::debug!(transport = T::NAME, "connected");
        let exit = serve(&mut conn, &outbound, &mut transport).await;
        if let Exit::Close(code, _) = &exit {
            state.closes.count(*code);
        }
        // Whatever happens next, nothing is written after the close.
        outbound.seal();
        drop(watched);
        Box::pin(conn.disconnect()).await;
        // After its channels: the log reads unsubscribed, vacated, then closed.
        report_exit(&app, conn.handle().socket_id().as_str(), &exit);
        // Boxed: closing needs a larger future (a timeout around flushing and a close frame)
        // than the rest of the session, and it would otherwise sit inline in every idle
        // connection's task for its whole life (boxing it cut the task from 2,648 to 2,376 bytes).
        Box::pin(transport.finish(exit, &outbound)).await;
        // The transport (a WebSocket's `Wire` in it) goes before the outbox it writes to.
        drop(outbound);
        Box::pin(state.adapter.close_connection(&app)).await;
        drop(slot);
        tracing::debug!("disconnected");
    }
    .instrument(span)
}

/// Tells the app's console how the connection ended (and that it was a slow consumer, if it
/// was closed as one).
fn report_exit(app: &App, socket_id: &str, exit: &Exit) {
    if !app.console.is_watched() {
        return;
    }
    let (code, reason) = match exit {
        Exit::Gone => (None, "connection lost"),
        Exit::PeerClosed => (None, "closed by the client"),
        Exit::Close(code, reason) => (Some(*code), reason.as_str()),
    };
    if code == Some(CloseCode::OverCapacity) {
        app.console
            .report(Activity::SlowConsumer { socket_id, reason });
    }
    app.console.report(Activity::ConnectionClosed {
        socket_id,
        code: code.map(CloseCode::code),
        reason,
    });
}

/// The loop; returns how the session ended.
async fn serve<T: Transport>(
    conn: &mut Connection,
    outbound: &Outbound,
    transport: &mut T,
) -> Exit {
    let liveness = sleep_until(transport.first_check(Instant::now()));
    tokio::pin!(liveness);
    let authorization = conn.authorization_timeout();
    let auth_deadline = sleep(authorization.unwrap_or_default());
    tokio::pin!(auth_deadline);
    let mut auth_pending = authorization.is_some();
    // Close requests: 4100 from a full queue, 4200 on shutdown, 4009 from terminate.
    let handle = conn.handle().clone();
    loop {
        tokio::select! {
            biased;
            (code, message) = poll_fn(|cx| handle.poll_closed(cx)) => return Exit::Close(code, message),
            // Finishes what the sink did not take at once; ready only if the sink fails.
            error = poll_fn(|cx| outbound.poll_write_left(cx)) => {
                tracing::debug!(%error, "write failed");
                return Exit::Gone;
            }
            inbound = transport.next() => match inbound {
                Inbound::Text(text) => {
                    handle.received_message();
                    // Boxed: a message's handling awaits the adapter (Redis on a cluster node);
                    // inline, its state would sit in every idle connection's task.
                    Box::pin(conn.on_text(text.as_ref())).await;
                }
                Inbound::Unreadable(message) => {
                    handle.received_message();
                    conn.error(None, message);
                }
                Inbound::Nothing => {}
                Inbound::End(exit) => return exit,
            },
            _ = &mut liveness => match transport.check(Instant::now()).await {
                Ok(next) => liveness.as_mut().reset(next),
                Err(exit) => return exit,
            },
            _ = &mut auth_deadline, if auth_pending => {
                auth_pending = false;
                if !conn.is_authorized() {
                    return Exit::Close(CloseCode::Unauthorized, "Connection not authorized within timeout".into());
                }
            }
        }
    }
}
