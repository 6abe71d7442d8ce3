//! A raw WebSocket client: exact frames in and out, close codes, WebSocket pings.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{Server, WAIT};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One thing read from the socket.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// A close frame: code (if any) and reason.
    Close(Option<u16>, String),
    /// The stream ended without a close frame (or with a transport error).
    Ended(String),
}

pub struct Client {
    ws: Ws,
    /// Set by [`Client::established`].
    pub socket_id: String,
    /// Every WebSocket Ping seen so far.
    pub pings: usize,
}

impl Client {
    /// Opens `/app/{key}?{query}`; reads nothing.
    pub async fn connect(server: &Server, key: &str, query: &str) -> Client {
        let url = server.ws_url(key, query);
        Client::connect_url(&url, WAIT)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Opens `url` (TCP and the WebSocket handshake) within `within`; reads nothing. The error
    /// says what failed.
    pub async fn connect_url(url: &str, within: Duration) -> Result<Client, String> {
        Client::opened(url, within, tokio_tungstenite::connect_async(url)).await
    }

    /// Opens a `wss://` URL trusting the certificate `ca_pem` (PEM) as the CA; reads nothing.
    pub async fn connect_tls(url: &str, ca_pem: &str) -> Result<Client, String> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.expect("CA PEM")).expect("CA certificate");
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_tungstenite::Connector::Rustls(std::sync::Arc::new(config));
        let connecting =
            tokio_tungstenite::connect_async_tls_with_config(url, None, true, Some(connector));
        Client::opened(url, WAIT, connecting).await
    }

    /// A client from `connecting` (TCP, TLS if any, the handshake), if it is done within
    /// `within`.
    async fn opened<R>(
        url: &str,
        within: Duration,
        connecting: impl std::future::Future<
            Output = Result<(Ws, R), tokio_tungstenite::tungstenite::Error>,
        >,
    ) -> Result<Client, String> {
        let Ok(connected) = tokio::time::timeout(within, connecting).await else {
            return Err(format!("connecting to {url} timed out"));
        };
        let (ws, _) = connected.map_err(|e| format!("connecting to {url}: {e}"))?;
        Ok(Client {
            ws,
            socket_id: String::new(),
            pings: 0,
        })
    }

    /// Reads `pusher:connection_established`, checks its shape and keeps the socket id.
    pub async fn established(&mut self) -> Value {
        let frame = self.recv_json().await;
        assert_eq!(
            frame["event"], "pusher:connection_established",
            "first frame: {frame}"
        );
        let data = frame["data"]
            .as_str()
            .unwrap_or_else(|| panic!("data must be a string: {frame}"));
        let data: Value = super::json(data);
        let socket_id = data["socket_id"]
            .as_str()
            .expect("socket_id string")
            .to_owned();
        assert!(
            is_socket_id(&socket_id),
            "socket id {socket_id:?} must match ^\\d+\\.\\d+$"
        );
        assert!(
            data["activity_timeout"].as_u64().is_some(),
            "activity_timeout: {data}"
        );
        self.socket_id = socket_id;
        data
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send text");
    }

    pub async fn send_json(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_message(&mut self, message: Message) {
        self.ws.send(message).await.expect("send message");
    }

    /// The next frame (pings are counted), or `None` after `within`.
    pub async fn next_frame(&mut self, within: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()?;
            let frame = match next {
                None => Frame::Ended("end of stream".into()),
                Some(Err(e)) => Frame::Ended(e.to_string()),
                Some(Ok(Message::Text(t))) => Frame::Text(t.to_string()),
                Some(Ok(Message::Binary(b))) => Frame::Binary(b.to_vec()),
                Some(Ok(Message::Ping(p))) => {
                    self.pings += 1;
                    Frame::Ping(p.to_vec())
                }
                Some(Ok(Message::Pong(p))) => Frame::Pong(p.to_vec()),
                Some(Ok(Message::Frame(_))) => continue,
                Some(Ok(Message::Close(c))) => match c {
                    Some(c) => Frame::Close(Some(c.code.into()), c.reason.to_string()),
                    None => Frame::Close(None, String::new()),
                },
            };
            return Some(frame);
        }
    }

    /// The next text frame as JSON, skipping WebSocket pings (which tungstenite answers).
    pub async fn recv_json(&mut self) -> Value {
        self.recv_json_within(WAIT).await
    }

    pub async fn recv_json_within(&mut self, within: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_frame(left).await {
                Some(Frame::Text(t)) => return super::json(&t),
                Some(Frame::Ping(_) | Frame::Pong(_)) => continue,
                Some(other) => panic!("expected a text frame, got {other:?}"),
                None => panic!("no frame within {within:?}"),
            }
        }
    }

    /// Reads the events `0..count` published by [`Api::publish_large`](super::Api),
    /// each within `within`, and asserts they come whole and in order.
    pub async fn expect_large_events(&mut self, count: usize, within: Duration) {
        for i in 0..count {
            let frame = self.recv_json_within(within).await;
            let data = frame["data"].as_str().unwrap_or_default();
            assert_eq!(
                data.split(' ').next(),
                Some(i.to_string().as_str()),
                "event {i}"
            );
        }
    }

    /// The next text frame, raw.
    pub async fn recv_text(&mut self) -> String {
        loop {
            match self.next_frame(WAIT).await {
                Some(Frame::Text(t)) => return t,
                Some(Frame::Ping(_) | Frame::Pong(_)) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Fails if a text, binary or close frame arrives within `within` (pings are answered).
    pub async fn expect_no_frame(&mut self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_frame(left).await {
                None => return,
                Some(Frame::Ping(_) | Frame::Pong(_)) => continue,
                Some(other) => panic!("expected no frame within {within:?}, got {other:?}"),
            }
        }
    }

    /// Reads until the close frame (failing on text frames) and returns its code and reason.
    pub async fn expect_close(&mut self) -> (Option<u16>, String) {
        loop {
            match self.next_frame(WAIT).await {
                Some(Frame::Close(code, reason)) => return (code, reason),
                Some(Frame::Ping(_) | Frame::Pong(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    /// Expects `pusher:error` with `code` (and `message` if given), then a close with `code`.
    pub async fn expect_error_and_close(&mut self, code: u16, message: Option<&str>) {
        let frame = self.recv_json().await;
        assert_eq!(frame["event"], "pusher:error", "{frame}");
        assert_eq!(frame["data"]["code"], code, "{frame}");
        assert!(frame["data"]["message"].is_string(), "{frame}");
        if let Some(message) = message {
            assert_eq!(frame["data"]["message"], message, "{frame}");
        }
        assert!(frame.get("channel").is_none(), "{frame}");
        let (close, _) = self.expect_close().await;
        assert_eq!(close, Some(code), "close code after {frame}");
    }

    /// Expects `pusher:error` with `code: null` and exactly this message.
    pub async fn expect_error(&mut self, code: Option<u16>, message: &str) {
        let frame = self.recv_json().await;
        let want = json!({"event": "pusher:error", "data": {"code": code, "message": message}});
        assert_eq!(frame, want);
    }

    /// Expects a `pusher:error` with `code` and returns its message.
    pub async fn expect_error_code(&mut self, code: Option<u16>) -> String {
        let frame = self.recv_json().await;
        assert_eq!(frame["event"], "pusher:error", "{frame}");
        assert_eq!(frame["data"]["code"], json!(code), "{frame}");
        assert_eq!(
            frame.as_object().map(|o| o.len()),
            Some(2),
            "only event and data: {frame}"
        );
        frame["data"]["message"]
            .as_str()
            .expect("message")
            .to_owned()
    }

    /// Sends `pusher:ping` and expects the exact `pusher:pong` (proves the connection is usable).
    pub async fn ping_pong(&mut self) {
        self.send_json(json!({"event": "pusher:ping", "data": {}}))
            .await;
        assert_eq!(
            self.recv_text().await,
            r#"{"event":"pusher:pong","data":"{}"}"#
        );
    }

    pub async fn subscribe(&mut self, channel: &str) {
        self.send_json(
            json!({"event": "pusher:subscribe", "data": {"auth": "", "channel": channel}}),
        )
        .await;
    }

    pub async fn subscribe_with(&mut self, data: Value) {
        self.send_json(json!({"event": "pusher:subscribe", "data": data}))
            .await;
    }

    pub async fn unsubscribe(&mut self, channel: &str) {
        self.send_json(json!({"event": "pusher:unsubscribe", "data": {"channel": channel}}))
            .await;
    }

    /// Subscribes to a public channel and expects the exact success frame.
    pub async fn join(&mut self, channel: &str) {
        self.subscribe(channel).await;
        self.expect_succeeded(channel).await;
    }

    /// Subscribes to a private (or encrypted) channel with a valid signature.
    pub async fn join_private(&mut self, channel: &str) {
        let auth = super::private_auth(&self.socket_id, channel);
        self.subscribe_with(json!({"channel": channel, "auth": auth}))
            .await;
        self.expect_succeeded(channel).await;
    }

    /// Subscribes to a presence channel; returns the decoded `presence` object.
    pub async fn join_presence(&mut self, channel: &str, channel_data: &str) -> Value {
        let auth = super::presence_auth(&self.socket_id, channel, channel_data);
        self.subscribe_with(
            json!({"channel": channel, "auth": auth, "channel_data": channel_data}),
        )
        .await;
        let frame = self.recv_json().await;
        assert_eq!(
            frame["event"], "pusher_internal:subscription_succeeded",
            "{frame}"
        );
        assert_eq!(frame["channel"], channel, "{frame}");
        let data = frame["data"]
            .as_str()
            .unwrap_or_else(|| panic!("data must be a string: {frame}"));
        super::json(data)["presence"].clone()
    }

    /// Expects the exact non-presence `subscription_succeeded` text.
    pub async fn expect_succeeded(&mut self, channel: &str) {
        let want = format!(
            r#"{{"event":"pusher_internal:subscription_succeeded","data":"{{}}","channel":"{channel}"}}"#
        );
        assert_eq!(self.recv_text().await, want);
    }

    /// Sends `pusher:signin` with this `auth` (valid or not) and `user_data`.
    pub async fn send_signin(&mut self, auth: &str, user_data: &str) {
        self.send_json(
            json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}}),
        )
        .await;
    }

    /// Sends `pusher:signin` for `user_data` with a valid signature and expects success.
    pub async fn signin(&mut self, user_data: &str) {
        let auth = super::signin_auth(&self.socket_id, user_data);
        self.send_json(
            json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}}),
        )
        .await;
        let frame = self.recv_json().await;
        assert_eq!(
            frame,
            json!({"event": "pusher:signin_success", "data": {"user_data": user_data}})
        );
    }

    /// Sends a client event.
    pub async fn trigger(&mut self, channel: &str, event: &str, data: Value) {
        self.send_json(json!({"event": event, "channel": channel, "data": data}))
            .await;
    }

    /// Sends a close frame with 1000 and waits for the server's answer (or the end).
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        let answered = async {
            while let Some(Ok(message)) = self.ws.next().await {
                if message.is_close() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(WAIT, answered).await;
    }
}

pub fn is_socket_id(s: &str) -> bool {
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    matches!(s.split_once('.'), Some((a, b)) if digits(a) && digits(b))
}
