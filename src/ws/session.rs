//! One connection's task: a single `select!` over close requests on its handle (shutdown, 4200,
//! is one of them), writes left for it, inbound frames and the liveness timers, with one exit
//! path that unsubscribes everything, signs the user out, then flushes the queue and closes with
//! a Pusher code, or with the RFC 6455 code for a client that broke the WebSocket rules (1002,
//! 1007, 1009; [`failure`] maps tungstenite's read errors to them). Frames are written by whoever queues them (see `connection`); the session only
//! finishes what the socket did not take at once, when it drains. Checking for a close request
//! takes no lock.

use std::future::poll_fn;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::time::{sleep, Instant};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use tracing::Instrument;

use super::close_frame;
use super::dispatch::Connection;
use crate::app::{App, ConnectionSlot};
use crate::connection::{ConnectionHandle, Outbound, Socket, Wire};
use crate::protocol::{CloseCode, ServerMessage, SocketId};
use crate::state::State;

/// How long closing a connection may take (flush, error, close frame).
const FINISH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// How a session ended.
enum Exit {
    /// The transport is gone (EOF, error): nothing more to send.
    Gone,
    /// The peer sent a close frame: the answer is queued, flush it.
    PeerClosed,
    /// We close with this code and reason, after `pusher:error` with them unless the client
    /// broke the framing (see [`CloseCode::with_pusher_error`]).
    Close(CloseCode, String),
}

/// Runs a connection until it ends. `leftover` is what was read past the handshake.
pub(super) async fn run(
    state: Arc<State>,
    app: Arc<App>,
    slot: ConnectionSlot,
    socket: Socket,
    leftover: Vec<u8>,
    config: WebSocketConfig,
) {
    let socket_id = SocketId::generate();
    let span = tracing::debug_span!("connection", app_id = %app.config.id, socket_id = %socket_id);
    async move {
        let (handle, outbound) = ConnectionHandle::with_socket(
            socket_id.clone(),
            state.server.outbound_queue,
            state.backlog.clone(),
            &app.traffic,
            socket,
        );
        let ws = WebSocketStream::from_partially_read(
            outbound.wire(),
            leftover,
            Role::Server,
            Some(config),
        )
        .await;
        let established = ServerMessage::ConnectionEstablished {
            socket_id: socket_id.as_str(),
            activity_timeout: state.server.activity_timeout.as_secs(),
        };
        handle.send(established.encode().into());
        let watched = state.shutdown.watch(&handle);
        let mut conn = Connection::new(app.clone(), state.adapter.clone(), handle);
        tracing::debug!("connected");
        let mut io = Io { ws, outbound };
        let exit = io.run(&state, &mut conn).await;
        if let Exit::Close(code, _) = &exit {
            state.closes.count(*code);
        }
        // Whatever happens next, nothing is written after the close frame.
        io.outbound.seal();
        drop(watched);
        conn.disconnect().await;
        // Boxed: closing needs a larger future (a timeout around flushing and a close frame)
        // than the rest of the session, and it would otherwise sit inline in every idle
        // connection's task for its whole life (boxing it cut the task from 2,648 to 2,376 bytes).
        Box::pin(io.finish(exit)).await;
        state.adapter.close_connection(&app).await;
        drop(slot);
        tracing::debug!("disconnected");
    }
    .instrument(span)
    .await
}

struct Io {
    ws: WebSocketStream<Wire>,
    outbound: Outbound,
}

impl Io {
    async fn run(&mut self, state: &State, conn: &mut Connection) -> Exit {
        let activity_timeout = state.server.activity_timeout;
        let pong_timeout = state.server.pong_timeout;
        let mut last_seen = Instant::now();
        let mut ping_sent: Option<Instant> = None;
        let liveness = sleep(activity_timeout);
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
                // Finishes what the socket did not take at once; ready only if the socket fails.
                error = poll_fn(|cx| self.outbound.poll_write_left(cx)) => {
                    tracing::debug!(%error, "write failed");
                    return Exit::Gone;
                }
                inbound = self.ws.next() => {
                    last_seen = Instant::now();
                    ping_sent = None;
                    if let Some(exit) = self.on_inbound(inbound, conn).await {
                        return exit;
                    }
                }
                _ = &mut liveness => {
                    let now = Instant::now();
                    if let Some(sent) = ping_sent {
                        if now >= sent + pong_timeout {
                            return Exit::Close(CloseCode::PongNotReceived, "Pong reply not received".into());
                        }
                        liveness.as_mut().reset(sent + pong_timeout);
                    } else if now >= last_seen + activity_timeout {
                        if self.ws.send(Message::Ping(Default::default())).await.is_err() {
                            return Exit::Gone;
                        }
                        ping_sent = Some(now);
                        liveness.as_mut().reset(now + pong_timeout);
                    } else {
                        liveness.as_mut().reset(last_seen + activity_timeout);
                    }
                }
                _ = &mut auth_deadline, if auth_pending => {
                    auth_pending = false;
                    if !conn.is_authorized() {
                        return Exit::Close(CloseCode::Unauthorized, "Connection not authorized within timeout".into());
                    }
                }
            }
        }
    }

    /// Handles one inbound item; `Some` ends the session.
    async fn on_inbound(
        &mut self,
        inbound: Option<Result<Message, WsError>>,
        conn: &mut Connection,
    ) -> Option<Exit> {
        match inbound {
            None => Some(Exit::Gone),
            // tungstenite has queued the answer: the same code, or 1002 for a code a close
            // frame may not carry (RFC 6455 §7.4).
            Some(Ok(Message::Close(_))) => Some(Exit::PeerClosed),
            Some(Err(e)) => Some(match failure(&e) {
                Some((code, message)) => {
                    tracing::debug!(error = %e, code = code.code(), "client broke the protocol");
                    Exit::Close(code, message)
                }
                None => {
                    tracing::debug!(error = %e, "websocket error");
                    Exit::Gone
                }
            }),
            Some(Ok(Message::Text(text))) => {
                conn.handle().received_message();
                conn.on_text(text.as_str()).await;
                None
            }
            Some(Ok(Message::Binary(_))) => {
                conn.handle().received_message();
                conn.error(
                    None,
                    "Binary frames are not supported; send JSON text frames",
                );
                None
            }
            // tungstenite queued the pong; send it now.
            Some(Ok(Message::Ping(_))) => self.ws.flush().await.err().map(|_| Exit::Gone),
            Some(Ok(Message::Pong(_) | Message::Frame(_))) => None,
        }
    }

    /// Flushes what is queued (not for slow consumers), sends `pusher:error` (not after broken
    /// framing), closes; bounded in time, since the peer may not be reading. The socket is
    /// closed when the session's `Outbound` is dropped, right after.
    async fn finish(mut self, exit: Exit) {
        match exit {
            Exit::Gone => {}
            Exit::PeerClosed => {
                // tungstenite has queued the close reply.
                let _ = tokio::time::timeout(FINISH_TIMEOUT, async {
                    let _ = self.ws.flush().await;
                    self.outbound.drained().await
                })
                .await;
            }
            Exit::Close(code, message) => {
                let _ = tokio::time::timeout(FINISH_TIMEOUT, self.close(code, message)).await;
            }
        }
    }

    async fn close(mut self, code: CloseCode, message: String) {
        // A slow consumer's queue is full of what it could not read: don't wait on it. Any
        // other close sends what is queued first: it is ahead of the error in the outbox.
        if code == CloseCode::OverCapacity {
            self.outbound.discard_queued();
        }
        let error = code.with_pusher_error().then(|| {
            ServerMessage::Error {
                code: Some(code.code()),
                message: &message,
            }
            .encode()
        });
        let announced = match error {
            Some(error) => self.ws.feed(Message::Text(error.into())).await.is_ok(),
            None => true,
        };
        if announced {
            let _ = self.ws.close(Some(close_frame(code, &message))).await;
        }
        // tungstenite's flush does not wait for the socket; this does.
        let _ = self.outbound.drained().await;
    }
}

/// What a read error means (RFC 6455 §7.1.7, "fail the WebSocket connection"): the close code and
/// reason for a client that broke the rules, `None` for a transport that is gone. The one place
/// tungstenite's read errors become close codes.
fn failure(error: &WsError) -> Option<(CloseCode, String)> {
    match error {
        // A frame announced (or a message grown, fragments together) over max_frame_bytes.
        WsError::Capacity(_) => Some((CloseCode::MessageTooBig, "Message too big".into())),
        // The TCP connection ended without a close frame: nobody is left to tell.
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        WsError::Protocol(violation) => Some((CloseCode::ProtocolError, violation.to_string())),
        WsError::Utf8 => Some((CloseCode::InvalidPayload, "Text is not valid UTF-8".into())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::error::CapacityError;

    fn code(error: WsError) -> Option<u16> {
        failure(&error).map(|(code, _)| code.code())
    }

    #[test]
    fn read_errors_map_to_rfc_6455_close_codes() {
        let too_long = CapacityError::MessageTooLong {
            size: 2,
            max_size: 1,
        };
        assert_eq!(code(WsError::Capacity(too_long)), Some(1009));
        assert_eq!(code(WsError::Utf8), Some(1007));
        for violation in [
            ProtocolError::UnmaskedFrameFromClient,
            ProtocolError::NonZeroReservedBits,
            ProtocolError::InvalidOpcode(3),
            ProtocolError::InvalidCloseSequence,
            ProtocolError::UnexpectedContinueFrame,
        ] {
            assert_eq!(code(WsError::Protocol(violation)), Some(1002));
        }
        // Nobody left to tell: the session just ends.
        let reset = ProtocolError::ResetWithoutClosingHandshake;
        assert_eq!(code(WsError::Protocol(reset)), None);
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(code(WsError::Io(io)), None);
    }
}
