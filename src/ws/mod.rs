//! Client connections. actix-http hands every HTTP/1 `Connection: Upgrade` request to
//! [`upgrade`] together with the raw connection; for `GET /app/{key}` it completes the
//! WebSocket handshake itself ([`handshake`]), runs the Pusher checks (protocol version, app,
//! enabled, quota), and then one [`session`] task per connection reads and writes frames on
//! that socket directly ([`websocket`]), so no HTTP/1 dispatcher or its buffers stay alive behind
//! a WebSocket. With TLS on the main listener the connection comes as a TLS stream, handshaken,
//! and becomes a TLS [`Socket`] (rustls's state and the TCP connection) in the same way.
//! pusher-js's HTTP fallback transports ([`fallback`]) make the same checks and run the same
//! session over a relay that their requests read. [`dispatch`] turns client messages into calls
//! on the domain, whatever the transport.
//!
//! This, `http_api` and `ops` are the only modules that handle requests with actix (`server`
//! wires them).

mod dispatch;
pub mod fallback;
pub(crate) mod handshake;
mod session;
mod websocket;

use std::sync::Arc;

use actix_codec::Framed;
use actix_http::{h1, Request};
use futures_util::SinkExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::app::{App, ConnectionSlot};
use crate::auth::api::{param, parse_query};
use crate::connection::Socket;
use crate::protocol::{codes, CloseCode, ServerMessage};
use crate::state::State;

/// Bytes read from the socket in one go; the buffer grows for a larger frame. Every idle
/// connection keeps this buffer, and what clients send (subscribe, ping, client events) is a
/// few hundred bytes at most, so it is small: 1 KiB here was 15 % of an idle connection.
const READ_BUFFER: usize = 256;

/// A refused connection: the code and the message sent before closing.
type Refusal = (CloseCode, String);

/// Serves one upgrade request: the handshake, the Pusher checks, then the session. `S` is the
/// connection as actix-http read the request from it: TCP, or TLS over TCP.
pub async fn upgrade<S>(state: Arc<State>, req: Request, framed: Framed<S, h1::Codec>)
where
    S: AsyncRead + AsyncWrite + Unpin + Into<Socket>,
{
    let parts = framed.into_parts();
    let mut io = parts.io;
    let accepted = handshake::accept(&req);
    // The request's head shares the HTTP read buffer: let both go before the session starts.
    drop(req);
    let accepted = match accepted {
        Ok(accepted) => accepted,
        Err(response) => {
            let _ = io.write_all(response.as_bytes()).await;
            let _ = io.shutdown().await;
            return;
        }
    };
    if io.write_all(accepted.response.as_bytes()).await.is_err() || io.flush().await.is_err() {
        return;
    }
    let max = state.server.max_frame_bytes;
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_frame_size(Some(max))
        .max_message_size(Some(max));
    let leftover = parts.read_buf.to_vec();
    drop(parts.read_buf);
    drop(parts.write_buf);
    let admitted = match admit(&state, &accepted.key, &accepted.query) {
        Ok((app, slot)) if state.adapter.open_connection(&app).await => Ok((app, slot)),
        Ok(_) => Err(over_quota()),
        Err(refusal) => Err(refusal),
    };
    match admitted {
        Ok((app, slot)) => {
            let io: Socket = io.into();
            limit_send_buffer(io.tcp(), state.server.socket_send_buffer);
            let (ends, transport) = websocket::open(&state, &app, io, leftover, config).await;
            // A task of its own, so nothing of the HTTP/1 dispatcher or of the handshake stays
            // allocated for the life of the connection.
            let session = session::run(state.clone(), app, slot, ends, transport);
            actix_web::rt::spawn(state.shutdown.track(session));
        }
        Err((code, message)) => {
            tracing::debug!(key = %accepted.key, code = code.code(), %message, "connection refused");
            state.closes.count(code);
            let ws = WebSocketStream::from_partially_read(io, leftover, Role::Server, Some(config))
                .await;
            refuse(ws, code, message).await;
        }
    }
}

/// Bounds the kernel's send buffer of a WebSocket connection to `bytes` (0: leave autotuning
/// on), so that what a client that stops reading can hold in the kernel has a known ceiling.
fn limit_send_buffer(socket: &tokio::net::TcpStream, bytes: usize) {
    if bytes == 0 {
        return;
    }
    if let Err(e) = socket2::SockRef::from(socket).set_send_buffer_size(bytes) {
        tracing::debug!(error = %e, "could not set SO_SNDBUF");
    }
}

/// The handshake checks, in the order pusher-js can act on them.
fn admit(state: &State, key: &str, query: &str) -> Result<(Arc<App>, ConnectionSlot), Refusal> {
    let query = parse_query(query);
    if let Some(protocol) = param(&query, "protocol") {
        if !matches!(protocol.parse::<u8>(), Ok(4..=7)) {
            return Err((
                CloseCode::UnsupportedProtocol,
                format!("Unsupported protocol version {protocol}; herald speaks 4 to 7"),
            ));
        }
    }
    if state.shutdown.is_triggered() {
        return Err((
            CloseCode::Reconnect,
            "Server is shutting down; reconnect".into(),
        ));
    }
    let app = state.apps.by_key(key).ok_or_else(|| {
        (
            CloseCode::AppNotFound,
            format!("App key {key} not in this cluster. Did you forget to specify the cluster?"),
        )
    })?;
    if !app.config.enabled {
        return Err((CloseCode::AppDisabled, "Application disabled".into()));
    }
    let slot = app.connect().ok_or_else(over_quota)?;
    Ok((app.clone(), slot))
}

/// 4004: the app has its `max_connections` (on this node, or in the cluster).
fn over_quota() -> Refusal {
    (CloseCode::OverQuota, "Account over quota".into())
}

/// Sends `pusher:error` and closes with the same code (a refused connection's WebSocket, straight
/// over its connection).
async fn refuse<S>(mut ws: WebSocketStream<S>, code: CloseCode, message: String)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let frame = ServerMessage::Error {
        code: Some(code.code()),
        message: &message,
    }
    .encode();
    if ws.send(Message::Text(frame.into())).await.is_ok() {
        let _ = ws.close(Some(close_frame(code, &message))).await;
    }
}

/// A close frame with a Pusher code and a reason cut to what a close frame holds.
fn close_frame(code: CloseCode, message: &str) -> CloseFrame {
    CloseFrame {
        code: WsCloseCode::from(code.code()),
        reason: codes::close_reason(message).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::net::TcpStream;

    #[tokio::test]
    async fn the_send_buffer_is_bounded_as_configured() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        limit_send_buffer(&server, 16 * 1024);
        // Linux doubles the value for its bookkeeping.
        let size = socket2::SockRef::from(&server).send_buffer_size().unwrap();
        assert_eq!(size, 32 * 1024);
        limit_send_buffer(&server, 0);
        let size = socket2::SockRef::from(&server).send_buffer_size().unwrap();
        assert_eq!(size, 32 * 1024, "0 leaves the socket as it is");
    }
}
