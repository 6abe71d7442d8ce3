//! A minimal client of pusher-js's `xhr_streaming` fallback transport, as herald serves it: open a
//! session's stream (`POST /pusher/app/{key}/{server}/{session}/xhr_streaming`, a chunked
//! response of SockJS lines), wait for `o` and `pusher:connection_established`, subscribe with an
//! `xhr_send` request of its own and wait for `pusher_internal:subscription_succeeded` on the
//! stream. Reading deliveries afterwards is the reader threads' (see `reader`).
//!
//! Against several nodes (a cluster), session number `i` is opened on node `i mod n`
//! ([`Target::ws_node`], as a WebSocket connection would be) and its `xhr_send` requests go to
//! that same node: a session lives on the node that opened it.

use crate::sockjs::{self, Frame, Lines};
use crate::target::{Target, WsNode};
use crate::wire;
use crate::ws::STEP_TIMEOUT;
use anyhow::{bail, Context, Result};
use std::collections::VecDeque;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Longest response head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// An open session's stream.
pub struct Stream {
    /// The stream's connection, past its response head.
    pub socket: TcpStream,
    /// The body decoder, in whatever state the last read left it.
    pub lines: Lines,
    /// The node the session lives on.
    node: WsNode,
    /// `/pusher/app/{key}/{server}/{session}`.
    path: String,
    /// Lines decoded and not yet looked at.
    pending: VecDeque<Vec<u8>>,
    /// Messages of an `a` line not yet looked at.
    messages: VecDeque<String>,
}

impl Stream {
    /// Opens session number `index`'s stream (on node `index mod n` of the target) and waits
    /// for `connection_established`.
    pub async fn open(target: &Target, index: usize) -> Result<Self> {
        let node = target.ws_node(index).clone();
        let session: String = (0..8)
            .map(|_| char::from_digit(fastrand::u32(0..32), 32).unwrap_or('0'))
            .collect();
        let path = format!("/pusher/app/{}/{}/{session}", target.app.key, index % 1000);
        let mut socket = timeout(STEP_TIMEOUT, TcpStream::connect(node.addr))
            .await
            .context("TCP connect timed out")??;
        socket.set_nodelay(true)?;
        let request = format!(
            "POST {path}/xhr_streaming?protocol=7&client=herald-bench&version=0.1.0 HTTP/1.1\r\n\
             Host: {}\r\nContent-Length: 0\r\n\r\n",
            node.authority
        );
        socket.write_all(request.as_bytes()).await?;
        let (head, rest) = timeout(STEP_TIMEOUT, read_head(&mut socket))
            .await
            .context("no answer to xhr_streaming")??;
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        if !head.starts_with("http/1.1 200") || !head.contains("transfer-encoding: chunked") {
            bail!(
                "xhr_streaming answered {:?}",
                head.lines().next().unwrap_or_default()
            );
        }
        let mut stream = Stream {
            socket,
            lines: Lines::default(),
            node,
            path,
            pending: VecDeque::new(),
            messages: VecDeque::new(),
        };
        stream.take(&rest)?;
        if stream.next_frame().await? != Frame::Open {
            bail!("the stream did not start with o");
        }
        let established = stream.next_message().await?;
        if established.event != "pusher:connection_established" {
            bail!(
                "first message was {} (data {})",
                established.event,
                established.data
            );
        }
        Ok(stream)
    }

    /// Subscribes with `xhr_send` (to the session's node) and waits for success on the stream.
    pub async fn subscribe(&mut self, channel: &str) -> Result<()> {
        let body = serde_json::to_string(&[wire::subscribe_frame(channel, None, None)])?;
        send(&self.node, &self.path, &body).await?;
        loop {
            let frame = self.next_message().await?;
            match frame.event.as_str() {
                "pusher_internal:subscription_succeeded"
                    if frame.channel.as_deref() == Some(channel) =>
                {
                    return Ok(())
                }
                "pusher:error" => bail!("subscribe {channel}: {}", frame.data),
                _ => {}
            }
        }
    }

    fn take(&mut self, bytes: &[u8]) -> Result<()> {
        let pending = &mut self.pending;
        self.lines
            .feed(bytes, |line| pending.push_back(line.to_vec()))
            .map_err(anyhow::Error::msg)
    }

    async fn next_frame(&mut self) -> Result<Frame> {
        loop {
            if let Some(line) = self.pending.pop_front() {
                return sockjs::frame(&line).map_err(anyhow::Error::msg);
            }
            let mut buf = [0u8; 4096];
            let n = timeout(STEP_TIMEOUT, self.socket.read(&mut buf))
                .await
                .context("nothing on the stream")??;
            if n == 0 {
                bail!("the stream ended");
            }
            self.take(&buf[..n])?;
        }
    }

    /// The next Pusher message on the stream, past heartbeats.
    async fn next_message(&mut self) -> Result<wire::Frame> {
        loop {
            if let Some(message) = self.messages.pop_front() {
                return wire::parse_frame(&message)
                    .with_context(|| format!("unreadable message: {message}"));
            }
            match self.next_frame().await? {
                Frame::Messages(messages) => self.messages.extend(messages),
                Frame::Heartbeat | Frame::Open => {}
                Frame::Close(close) => bail!("the session closed: {close}"),
            }
        }
    }
}

/// Reads a response head; returns it and what followed it.
async fn read_head(socket: &mut TcpStream) -> Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed before the response head");
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            bail!("response head over {MAX_HEAD} bytes");
        }
    }
}

/// One `xhr_send` request to `node` on a connection of its own; expects 204.
async fn send(node: &WsNode, path: &str, body: &str) -> Result<()> {
    let mut socket = timeout(STEP_TIMEOUT, TcpStream::connect(node.addr))
        .await
        .context("TCP connect timed out")??;
    let request = format!(
        "POST {path}/xhr_send HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        node.authority,
        body.len()
    );
    socket.write_all(request.as_bytes()).await?;
    let (head, _) = timeout(STEP_TIMEOUT, read_head(&mut socket))
        .await
        .context("no answer to xhr_send")??;
    if !head.starts_with(b"HTTP/1.1 204") {
        bail!(
            "xhr_send answered {:?}",
            String::from_utf8_lossy(&head)
                .lines()
                .next()
                .unwrap_or_default()
        );
    }
    Ok(())
}
