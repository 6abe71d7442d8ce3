//! A minimal Pusher WebSocket client: connect, wait for `pusher:connection_established`,
//! subscribe and wait for `pusher_internal:subscription_succeeded`. Reading deliveries is
//! left to the scenarios, which need different things from them.

use crate::target::Target;
use crate::wire::{self, Frame};
use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A WebSocket over plain TCP.
pub type Socket = WebSocketStream<TcpStream>;

/// How long one handshake step may take before the connection counts as failed.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// Bytes tungstenite reads per `read` call. Its default (128 KiB) is zero-filled before every
/// read: with one small frame per read that `memset` was 44 % of the generator's CPU at a
/// fixed rate (perf, `fanout --rate 50`). Benchmark frames are far below this size.
const READ_BUFFER: usize = 4096;

/// An established Pusher connection.
pub struct Connection {
    /// The WebSocket.
    pub socket: Socket,
    /// The `socket_id` the server assigned.
    pub socket_id: String,
}

impl Connection {
    /// Opens the scenario's connection number `index` (on node `index mod n` of the target)
    /// and waits for `pusher:connection_established`.
    pub async fn open(target: &Target, index: usize) -> Result<Self> {
        let node = target.ws_node(index);
        let tcp = timeout(STEP_TIMEOUT, TcpStream::connect(node.addr))
            .await
            .context("TCP connect timed out")??;
        tcp.set_nodelay(true)?;
        let (mut socket, _) = timeout(
            STEP_TIMEOUT,
            tokio_tungstenite::client_async_with_config(
                target.ws_url(node),
                tcp,
                Some(WebSocketConfig::default().read_buffer_size(READ_BUFFER)),
            ),
        )
        .await
        .context("WebSocket upgrade timed out")??;
        let frame = next_frame(&mut socket).await?;
        if frame.event != "pusher:connection_established" {
            bail!("first frame was {} (data {})", frame.event, frame.data);
        }
        let socket_id = frame.data["socket_id"]
            .as_str()
            .context("connection_established without socket_id")?
            .to_owned();
        Ok(Self { socket, socket_id })
    }

    /// Sends a text frame.
    pub async fn send(&mut self, text: String) -> Result<()> {
        self.socket.send(Message::text(text)).await?;
        Ok(())
    }

    /// Subscribes and waits for success. Frames that arrive meanwhile are dropped.
    pub async fn subscribe(
        &mut self,
        channel: &str,
        auth: Option<&str>,
        channel_data: Option<&str>,
    ) -> Result<()> {
        self.send(wire::subscribe_frame(channel, auth, channel_data))
            .await?;
        loop {
            let frame = next_frame(&mut self.socket).await?;
            match frame.event.as_str() {
                "pusher_internal:subscription_succeeded"
                    if frame.channel.as_deref() == Some(channel) =>
                {
                    return Ok(())
                }
                "pusher:error" | "pusher:subscription_error" => {
                    bail!("subscribe {channel}: {} {}", frame.event, frame.data)
                }
                _ => {}
            }
        }
    }

    /// Subscribes to a private or presence channel, signing the authorization locally.
    pub async fn subscribe_signed(
        &mut self,
        target: &Target,
        channel: &str,
        channel_data: Option<&str>,
    ) -> Result<()> {
        let auth = target
            .app
            .channel_auth(&self.socket_id, channel, channel_data);
        self.subscribe(channel, Some(&auth), channel_data).await
    }
}

/// Reads the next Pusher frame, skipping control frames; fails on close or timeout.
pub async fn next_frame(socket: &mut Socket) -> Result<Frame> {
    loop {
        let message = timeout(STEP_TIMEOUT, socket.next())
            .await
            .context("no frame from server")?
            .ok_or_else(|| anyhow!("connection closed by server"))??;
        match message {
            Message::Text(text) => {
                return wire::parse_frame(text.as_str())
                    .with_context(|| format!("unreadable frame: {}", text.as_str()))
            }
            Message::Close(close) => bail!("server closed the connection: {close:?}"),
            _ => {}
        }
    }
}
