//! The WebSocket transport of a session (plain or TLS): tungstenite over the connection's
//! [`Wire`], liveness by WebSocket Ping after `activity_timeout` of silence (4201 when nothing
//! answers within `pong_timeout`), and closing with `pusher:error` and a close frame — or with
//! the RFC 6455 code alone for a client that broke the WebSocket rules (1002, 1007, 1009;
//! [`failure`] maps tungstenite's read errors to them).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use super::close_frame;
use super::session::{last_words, Exit, Inbound, Transport, FINISH_TIMEOUT};
use crate::app::App;
use crate::connection::{ConnectionHandle, Outbound, Socket, Wire};
use crate::protocol::{CloseCode, SocketId};
use crate::state::State;

/// Sets up a WebSocket connection's session: its two ends, over `socket`, and its transport.
/// `leftover` is what was read past the handshake. Done before the session's task is spawned
/// ([`session::run`](super::session::run)), so that nothing of it (the socket, the
/// configuration, the future that builds the WebSocket) is kept in that task for the
/// connection's life.
pub(super) async fn open(
    state: &State,
    app: &App,
    socket: Socket,
    leftover: Vec<u8>,
    config: WebSocketConfig,
) -> ((ConnectionHandle, Outbound), WebSocket) {
    let (handle, outbound) = ConnectionHandle::with_socket(
        SocketId::generate(),
        state.server.outbound_queue,
        state.backlog.clone(),
        &app.traffic,
        socket,
    );
    let ws =
        WebSocketStream::from_partially_read(outbound.wire(), leftover, Role::Server, Some(config))
            .await;
    let transport = WebSocket {
        ws,
        activity_timeout: state.server.activity_timeout,
        pong_timeout: state.server.pong_timeout,
        last_seen: Instant::now(),
        ping_sent: None,
    };
    ((handle, outbound), transport)
}

/// A WebSocket and its liveness state.
pub(super) struct WebSocket {
    ws: WebSocketStream<Wire>,
    activity_timeout: Duration,
    pong_timeout: Duration,
    /// When the client last sent anything.
    last_seen: Instant,
    /// When the server pinged, if it is waiting for an answer.
    ping_sent: Option<Instant>,
}

impl Transport for WebSocket {
    type Text = Utf8Bytes;
    const NAME: &'static str = "websocket";

    fn first_check(&self, now: Instant) -> Instant {
        now + self.activity_timeout
    }

    async fn next(&mut self) -> Inbound<Utf8Bytes> {
        let inbound = self.ws.next().await;
        self.last_seen = Instant::now();
        self.ping_sent = None;
        // Read apart from the wait below, so that the message (136 bytes) is not kept across it in
        // the select! of every idle connection's task.
        if let Some(inbound) = read(inbound) {
            return inbound;
        }
        // A ping: tungstenite queued the pong; send it now.
        match self.ws.flush().await {
            Ok(()) => Inbound::Nothing,
            Err(_) => Inbound::End(Exit::Gone),
        }
    }

    async fn check(&mut self, now: Instant) -> Result<Instant, Exit> {
        if let Some(sent) = self.ping_sent {
            if now >= sent + self.pong_timeout {
                return Err(Exit::Close(
                    CloseCode::PongNotReceived,
                    "Pong reply not received".into(),
                ));
            }
            return Ok(sent + self.pong_timeout);
        }
        if now < self.last_seen + self.activity_timeout {
            return Ok(self.last_seen + self.activity_timeout);
        }
        if self
            .ws
            .send(Message::Ping(Default::default()))
            .await
            .is_err()
        {
            return Err(Exit::Gone);
        }
        self.ping_sent = Some(now);
        Ok(now + self.pong_timeout)
    }

    /// Flushes what is queued (not for slow consumers), sends `pusher:error` (not after broken
    /// framing), closes; bounded in time, since the peer may not be reading. The socket is
    /// closed when the session's `Outbound` is dropped, right after.
    async fn finish(mut self, exit: Exit, outbound: &Outbound) {
        match exit {
            Exit::Gone => {}
            Exit::PeerClosed => {
                // tungstenite has queued the close reply.
                let _ = tokio::time::timeout(FINISH_TIMEOUT, async {
                    let _ = self.ws.flush().await;
                    outbound.drained().await
                })
                .await;
            }
            Exit::Close(code, message) => {
                let _ =
                    tokio::time::timeout(FINISH_TIMEOUT, self.close(code, message, outbound)).await;
            }
        }
    }
}

impl WebSocket {
    async fn close(&mut self, code: CloseCode, message: String, outbound: &Outbound) {
        let announced = match last_words(code, &message, outbound) {
            Some(error) => self.ws.feed(Message::Text(error.into())).await.is_ok(),
            None => true,
        };
        if announced {
            let _ = self.ws.close(Some(close_frame(code, &message))).await;
        }
        // tungstenite's flush does not wait for the socket; this does.
        let _ = outbound.drained().await;
    }
}

/// What the session makes of what tungstenite read; `None` for a ping, whose pong is to be sent.
fn read(inbound: Option<Result<Message, WsError>>) -> Option<Inbound<Utf8Bytes>> {
    Some(match inbound {
        None => Inbound::End(Exit::Gone),
        // tungstenite has queued the answer: the same code, or 1002 for a code a close frame may
        // not carry (RFC 6455 §7.4).
        Some(Ok(Message::Close(_))) => Inbound::End(Exit::PeerClosed),
        Some(Err(e)) => Inbound::End(match failure(&e) {
            Some((code, message)) => {
                tracing::debug!(error = %e, code = code.code(), "client broke the protocol");
                Exit::Close(code, message)
            }
            None => {
                tracing::debug!(error = %e, "websocket error");
                Exit::Gone
            }
        }),
        Some(Ok(Message::Text(text))) => Inbound::Text(text),
        Some(Ok(Message::Binary(_))) => {
            Inbound::Unreadable("Binary frames are not supported; send JSON text frames")
        }
        Some(Ok(Message::Ping(_))) => return None,
        Some(Ok(Message::Pong(_) | Message::Frame(_))) => Inbound::Nothing,
    })
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
