//! Raw TCP for tests that need exact bytes: an HTTP/1.1 request and its response head, and
//! hand-made WebSocket frames (any header bits, masked or not) with a reader of the server's
//! frames as they arrive on the wire.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Server, KEY, WAIT};

/// The sample `Sec-WebSocket-Key` of RFC 6455 §1.3.
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The masking key of every frame built here.
pub const MASK: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

/// First header byte: FIN.
pub const FIN: u8 = 0x80;
/// Opcodes (RFC 6455 §5.2).
pub const CONTINUATION: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// A response head (status code, lower-cased headers) and whatever bytes followed it.
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub rest: Vec<u8>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `request` bytes as one write and reads the response head.
pub async fn exchange(server: &Server, request: &[u8]) -> (TcpStream, Head) {
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let head = read_head(&mut stream, WAIT).await;
    (stream, head)
}

/// Reads a response head, failing the test if none arrives within `within`.
pub async fn read_head(stream: &mut (impl AsyncRead + Unpin), within: Duration) -> Head {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = Vec::new();
    let end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("no response within {within:?}"))
            .expect("read");
        assert!(
            n > 0,
            "connection closed before a response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line: {head}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Head {
        status,
        headers,
        rest: buf[end + 4..].to_vec(),
    }
}

/// Everything the peer sends until it closes the connection (a reset counts as closing), or
/// `Err` with what it sent if it is still open after `within`.
pub async fn read_to_end_within(
    stream: &mut (impl AsyncRead + Unpin),
    within: Duration,
) -> Result<Vec<u8>, Vec<u8>> {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => return Err(seen),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(seen),
            Ok(Ok(n)) => seen.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Whether the peer closed the connection within `within` with nothing more sent; what it sent
/// otherwise.
pub async fn closed_within(
    stream: &mut (impl AsyncRead + Unpin),
    within: Duration,
) -> Result<(), Vec<u8>> {
    match read_to_end_within(stream, within).await {
        Ok(seen) if seen.is_empty() => Ok(()),
        Ok(seen) | Err(seen) => Err(seen),
    }
}

/// `GET {path}` with `Host` and these header lines.
pub fn upgrade_request(path: &str, extra: &[&str]) -> String {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for line in extra {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request
}

/// A complete WebSocket opening handshake for the test app.
pub fn websocket_request() -> String {
    upgrade_request(
        &format!("/app/{KEY}?protocol=7&client=js&version=8.4.0&flash=false"),
        &[
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Version: 13",
            &format!("Sec-WebSocket-Key: {SAMPLE_KEY}"),
        ],
    )
}

/// A frame header: `first` is the first byte as sent (FIN, RSV1–3, opcode); the length in the
/// shortest form; masked with [`MASK`] if `masked`.
pub fn header(first: u8, len: u64, masked: bool) -> Vec<u8> {
    let bit = if masked { 0x80 } else { 0 };
    let mut header = vec![first];
    match len {
        0..=125 => header.push(bit | len as u8),
        126..=0xFFFF => {
            header.push(bit | 126);
            header.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            header.push(bit | 127);
            header.extend_from_slice(&len.to_be_bytes());
        }
    }
    if masked {
        header.extend_from_slice(&MASK);
    }
    header
}

/// A whole client frame, masked as clients must.
pub fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = header(first, payload.len() as u64, true);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    frame
}

/// A whole frame sent in the clear, as only servers may.
pub fn unmasked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = header(first, payload.len() as u64, false);
    frame.extend_from_slice(payload);
    frame
}

/// A masked final text frame.
pub fn masked_text(payload: &[u8]) -> Vec<u8> {
    masked(FIN | TEXT, payload)
}

/// A close frame's payload: the code, then the reason.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    payload
}

/// One server frame as it came: the first header byte and the payload.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerFrame {
    pub first: u8,
    pub payload: Vec<u8>,
}

impl ServerFrame {
    pub fn opcode(&self) -> u8 {
        self.first & 0x0F
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.payload.clone()).expect("a text frame is UTF-8")
    }
}

/// How the server closed: see [`RawSocket::expect_close`].
#[derive(Debug)]
pub struct Closed {
    /// The close frame's reason.
    pub reason: String,
    /// A `pusher:error` with the same code came first.
    pub pusher_error: bool,
}

/// A WebSocket connection driven byte by byte: what the test writes goes out as is, and what
/// the server sends is parsed frame by frame, without answering anything.
pub struct RawSocket {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawSocket {
    /// Opens a WebSocket to the test app and reads `pusher:connection_established`.
    pub async fn open(server: &Server) -> RawSocket {
        let (stream, head) = exchange(server, websocket_request().as_bytes()).await;
        assert_eq!(head.status, 101, "{:?}", head.headers);
        let mut socket = RawSocket {
            stream,
            buf: head.rest,
        };
        let first = socket.frame().await.expect("connection_established");
        assert_eq!(first.first, FIN | TEXT, "{first:?}");
        assert!(
            first
                .text()
                .starts_with(r#"{"event":"pusher:connection_established""#),
            "{first:?}"
        );
        socket
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// The next whole frame, or `None` once the server has closed the connection; fails the
    /// test after [`WAIT`].
    pub async fn frame(&mut self) -> Option<ServerFrame> {
        loop {
            if let Some(frame) = self.parse() {
                return Some(frame);
            }
            let mut chunk = [0u8; 4096];
            let read = tokio::time::timeout(WAIT, self.stream.read(&mut chunk))
                .await
                .unwrap_or_else(|_| panic!("no frame within {WAIT:?}; have {:?}", self.buf));
            match read {
                Ok(0) | Err(_) => {
                    assert!(self.buf.is_empty(), "a partial frame: {:?}", self.buf);
                    return None;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Takes a whole frame off the buffer, if there is one.
    fn parse(&mut self) -> Option<ServerFrame> {
        let buf = &self.buf;
        if buf.len() < 2 {
            return None;
        }
        assert_eq!(buf[1] & 0x80, 0, "server frames are not masked: {buf:?}");
        let (len, at) = match buf[1] & 0x7F {
            126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
            127 if buf.len() >= 10 => {
                let mut len = [0u8; 8];
                len.copy_from_slice(&buf[2..10]);
                (u64::from_be_bytes(len) as usize, 10)
            }
            126 | 127 => return None,
            len => (len as usize, 2),
        };
        if buf.len() < at + len {
            return None;
        }
        let frame = ServerFrame {
            first: buf[0],
            payload: buf[at..at + len].to_vec(),
        };
        self.buf.drain(..at + len);
        Some(frame)
    }

    /// Expects the server to close with `code`: at most a `pusher:error` with the same code,
    /// then a close frame with `code` and a UTF-8 reason of at most 123 bytes, then the end of
    /// the TCP connection.
    pub async fn expect_close(&mut self, code: u16) -> Closed {
        let mut frame = self
            .frame()
            .await
            .unwrap_or_else(|| panic!("the connection ended without a close frame ({code})"));
        let pusher_error = frame.first == FIN | TEXT;
        if pusher_error {
            let error = super::json(&frame.text());
            assert_eq!(error["event"], "pusher:error", "{error}");
            assert_eq!(error["data"]["code"], code, "{error}");
            frame = self
                .frame()
                .await
                .unwrap_or_else(|| panic!("the connection ended after {error}, no close frame"));
        }
        assert_eq!(
            frame.first,
            FIN | CLOSE,
            "expected a close frame: {frame:?}"
        );
        assert!(
            frame.payload.len() >= 2,
            "a close frame with a code: {frame:?}"
        );
        let got = u16::from_be_bytes([frame.payload[0], frame.payload[1]]);
        let reason = String::from_utf8(frame.payload[2..].to_vec()).expect("a UTF-8 reason");
        assert_eq!(got, code, "close code (reason {reason:?})");
        assert!(reason.len() <= 123, "{reason:?}");
        self.expect_end().await;
        Closed {
            reason,
            pusher_error,
        }
    }

    /// Expects the server to close the TCP connection with nothing more sent.
    pub async fn expect_end(&mut self) {
        assert!(self.buf.is_empty(), "bytes after the close: {:?}", self.buf);
        if let Err(seen) = closed_within(&mut self.stream, WAIT).await {
            panic!("the connection stayed open or sent more: {seen:?}");
        }
    }
}
