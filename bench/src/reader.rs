//! Delivery readers: a few plain threads that read every subscriber socket of a group through
//! one level-triggered epoll set each, parse the server's WebSocket frames in place and record
//! each benchmark stamp.
//!
//! Why not one tokio task per socket: at a fixed rate every delivery arrives alone, so a task
//! per socket pays a wake-up, a `select!` and tungstenite's buffer handling for each frame.
//! Measured at 50 events/s to 1,000 subscribers that generator spent as much CPU per delivery
//! as the servers it measured, and on a 2-core machine that cost lands in every server's
//! latency. Here a ready socket costs one `read` (level-triggered: no extra read to see
//! `EAGAIN`), and frames are parsed from that read's bytes without copying. Only the
//! server-to-client half of RFC 6455 is needed: unmasked frames, pings answered with a masked
//! pong, close frames and EOF counted as drops. A subscriber on pusher-js's `xhr_streaming`
//! fallback is read the same way, its chunked body split into SockJS lines ([`sockjs`]).

use crate::metrics::Latency;
use crate::sockjs::{self, Lines};
use crate::wire;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Bytes read per `read` call; many queued frames fit in one read when a server bursts.
const SCRATCH: usize = 256 * 1024;
/// Ready sockets taken per `epoll_wait`.
const EVENTS: usize = 1024;
/// How often an idle reader looks at its stop flag, ms.
const STOP_POLL_MS: u16 = 20;
/// A frame larger than this ends the connection (benchmark frames are far smaller).
const MAX_FRAME: usize = 16 * 1024 * 1024;
/// The masking key of the pongs we send (clients must mask; the value is not checked).
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Where a reader reports what every reader of the group shares.
pub trait Sink: Send + Sync + 'static {
    /// Called once per delivered benchmark stamp with its latency.
    fn delivered(&self, stamp: &wire::Stamp, latency_us: u64);
    /// Called after each batch of ready sockets with the deliveries it held (publishers'
    /// windows and the drain wait read the running count).
    fn received(&self, count: u64);
    /// Called when a connection closed or broke while it should have stayed open.
    fn dropped(&self, error: String);
}

/// One subscriber socket handed to a reader.
pub struct Subscriber {
    /// The connection's index in the run (for error texts).
    pub index: usize,
    /// The node of the target it is connected to (see [`crate::target::Target::ws_node`]).
    pub node: usize,
    /// The socket, already past the WebSocket handshake and the subscription.
    pub stream: TcpStream,
    /// For an `xhr_streaming` subscriber: its response body's decoder, where it left off.
    pub http: Option<Lines>,
}

/// What one subscriber, one reader or a whole group saw.
#[derive(Default)]
pub struct Seen {
    /// Lower sequence number than one already seen from the same publisher.
    pub out_of_order: u64,
    /// Seen twice.
    pub duplicates: u64,
    /// First delivery, µs since the epoch (0 = none).
    pub first_us: u64,
    /// Last delivery, µs since the epoch.
    pub last_us: u64,
    /// Benchmark events received.
    pub received: u64,
}

impl Seen {
    /// Adds another's counts; keeps the earliest first and the latest last delivery.
    pub fn merge(&mut self, other: &Seen) {
        self.out_of_order += other.out_of_order;
        self.duplicates += other.duplicates;
        self.received += other.received;
        if other.first_us != 0 && (self.first_us == 0 || other.first_us < self.first_us) {
            self.first_us = other.first_us;
        }
        self.last_us = self.last_us.max(other.last_us);
    }
}

/// What a reader thread's subscribers on one node saw.
#[derive(Default)]
pub struct NodeTotals {
    /// Publish → delivery latency.
    pub latency: Latency,
    /// Counts over those subscribers.
    pub seen: Seen,
}

/// Totals of a reader thread.
pub struct ReaderTotals {
    /// Publish → delivery latency, all its subscribers.
    pub latency: Latency,
    /// Counts over all its subscribers.
    pub seen: Seen,
    /// The same per node (index = node), each subscriber counted on its own node.
    pub nodes: Vec<NodeTotals>,
}

/// Running reader threads.
pub struct Readers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<ReaderTotals>>,
}

impl Readers {
    /// Spreads `subscribers` over `threads` reader threads and starts them.
    pub fn start(
        subscribers: Vec<Subscriber>,
        threads: usize,
        publishers: u32,
        sink: Arc<dyn Sink>,
    ) -> std::io::Result<Readers> {
        let threads = threads.max(1);
        let mut parts: Vec<Vec<Subscriber>> = (0..threads).map(|_| Vec::new()).collect();
        for (i, subscriber) in subscribers.into_iter().enumerate() {
            parts[i % threads].push(subscriber);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::with_capacity(threads);
        for (n, part) in parts.into_iter().enumerate() {
            let reader = Reader::new(part, publishers, sink.clone())?;
            let stop = stop.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("reader-{n}"))
                    .spawn(move || reader.run(&stop))?,
            );
        }
        Ok(Readers {
            stop,
            threads: handles,
        })
    }

    /// Stops the threads (closing their sockets) and returns their totals.
    pub fn finish(self) -> Vec<ReaderTotals> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .filter_map(|thread| thread.join().ok())
            .collect()
    }
}

/// One socket's reading state.
struct Conn {
    index: usize,
    node: usize,
    stream: TcpStream,
    /// Bytes of a frame not complete at the end of the last read.
    partial: Vec<u8>,
    /// Fragments of a text message not finished yet.
    message: Vec<u8>,
    /// An `xhr_streaming` subscriber's body decoder (no WebSocket frames then).
    http: Option<Lines>,
    /// Highest sequence seen per publisher.
    last_seq: Vec<Option<u64>>,
    seen: Seen,
    open: bool,
}

/// One reader thread's state.
struct Reader {
    epoll: Epoll,
    conns: Vec<Conn>,
    sink: Arc<dyn Sink>,
    /// Per node (index = node), so that a cluster's nodes can be told apart.
    latency: Vec<Latency>,
}

impl Reader {
    fn new(
        subscribers: Vec<Subscriber>,
        publishers: u32,
        sink: Arc<dyn Sink>,
    ) -> std::io::Result<Reader> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let nodes = subscribers.iter().map(|s| s.node + 1).max().unwrap_or(1);
        let mut conns = Vec::with_capacity(subscribers.len());
        for (token, subscriber) in subscribers.into_iter().enumerate() {
            subscriber.stream.set_nonblocking(true)?;
            let interest =
                EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP, token as u64);
            epoll.add(&subscriber.stream, interest)?;
            conns.push(Conn {
                index: subscriber.index,
                node: subscriber.node,
                stream: subscriber.stream,
                partial: Vec::new(),
                message: Vec::new(),
                http: subscriber.http,
                last_seq: vec![None; publishers.max(1) as usize],
                seen: Seen::default(),
                open: true,
            });
        }
        Ok(Reader {
            epoll,
            conns,
            sink,
            latency: (0..nodes).map(|_| Latency::default()).collect(),
        })
    }

    fn run(mut self, stop: &AtomicBool) -> ReaderTotals {
        let mut events = vec![EpollEvent::empty(); EVENTS];
        let mut scratch = vec![0u8; SCRATCH];
        while !stop.load(Ordering::Relaxed) {
            let ready = match self.epoll.wait(&mut events, STOP_POLL_MS) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(error) => {
                    self.sink.dropped(format!("epoll_wait failed: {error}"));
                    break;
                }
            };
            let mut delivered = 0;
            for event in &events[..ready] {
                delivered += self.read_one(event.data() as usize, &mut scratch);
            }
            if delivered > 0 {
                self.sink.received(delivered);
            }
        }
        self.totals()
    }

    /// Reads once from a ready socket; returns the deliveries found.
    fn read_one(&mut self, token: usize, scratch: &mut [u8]) -> u64 {
        let Some(conn) = self.conns.get_mut(token) else {
            return 0;
        };
        if !conn.open {
            return 0;
        }
        let latency = &mut self.latency[conn.node];
        let (delivered, drop) = match conn.stream.read(scratch) {
            Ok(0) => (0, Some("connection closed by server (EOF)".to_owned())),
            Ok(n) => {
                let now = wire::now_us();
                let parsed = if conn.http.is_some() {
                    parse_http(conn, &scratch[..n], now, latency, &*self.sink)
                } else if conn.partial.is_empty() {
                    let parsed = parse(conn, &scratch[..n], now, latency, &*self.sink);
                    conn.partial.extend_from_slice(&scratch[parsed.used..n]);
                    parsed
                } else {
                    let mut bytes = std::mem::take(&mut conn.partial);
                    bytes.extend_from_slice(&scratch[..n]);
                    let parsed = parse(conn, &bytes, now, latency, &*self.sink);
                    bytes.drain(..parsed.used);
                    conn.partial = bytes;
                    parsed
                };
                (parsed.delivered, parsed.drop)
            }
            Err(error)
                if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) =>
            {
                (0, None)
            }
            Err(error) => (0, Some(format!("read failed: {error}"))),
        };
        if let Some(reason) = drop {
            conn.open = false;
            let _ = self.epoll.delete(&conn.stream);
            self.sink
                .dropped(format!("connection {} {reason}", conn.index));
        }
        delivered
    }

    fn totals(self) -> ReaderTotals {
        let mut nodes: Vec<NodeTotals> = self
            .latency
            .into_iter()
            .map(|latency| NodeTotals {
                latency,
                seen: Seen::default(),
            })
            .collect();
        for conn in &self.conns {
            nodes[conn.node].seen.merge(&conn.seen);
        }
        let mut latency = Latency::default();
        let mut seen = Seen::default();
        for node in &nodes {
            latency.merge(&node.latency);
            seen.merge(&node.seen);
        }
        ReaderTotals {
            latency,
            seen,
            nodes,
        }
    }
}

/// A frame header: opcode, FIN, where the payload is and where the frame ends.
#[derive(Debug, PartialEq, Eq)]
struct Header {
    fin: bool,
    opcode: u8,
    payload: std::ops::Range<usize>,
}

/// Reads the header of the frame at the start of `bytes`; `Ok(None)` if it is incomplete.
fn header(bytes: &[u8]) -> Result<Option<Header>, String> {
    let [b0, b1, ..] = *bytes else {
        return Ok(None);
    };
    if b1 & 0x80 != 0 {
        return Err("sent a masked frame (servers must not mask)".to_owned());
    }
    let (len, start) = match b1 & 0x7f {
        126 => match bytes.get(2..4) {
            Some(b) => (u16::from_be_bytes([b[0], b[1]]) as usize, 4),
            None => return Ok(None),
        },
        127 => match bytes.get(2..10) {
            Some(b) => {
                let mut eight = [0u8; 8];
                eight.copy_from_slice(b);
                (
                    usize::try_from(u64::from_be_bytes(eight)).unwrap_or(usize::MAX),
                    10,
                )
            }
            None => return Ok(None),
        },
        n => (n as usize, 2),
    };
    if len > MAX_FRAME {
        return Err(format!("sent a frame of {len} bytes"));
    }
    if bytes.len() < start + len {
        return Ok(None);
    }
    Ok(Some(Header {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0f,
        payload: start..start + len,
    }))
}

/// What one read held.
struct Parsed {
    /// Bytes used (complete frames).
    used: usize,
    /// Benchmark deliveries found.
    delivered: u64,
    /// Why the connection must be dropped, if it must (frames before it still count).
    drop: Option<String>,
}

/// Handles every complete frame in `bytes`.
fn parse(
    conn: &mut Conn,
    bytes: &[u8],
    now: u64,
    latency: &mut Latency,
    sink: &dyn Sink,
) -> Parsed {
    let mut used = 0;
    let mut delivered = 0;
    loop {
        let header = match header(&bytes[used..]) {
            Ok(Some(header)) => header,
            Ok(None) => {
                return Parsed {
                    used,
                    delivered,
                    drop: None,
                }
            }
            Err(reason) => {
                return Parsed {
                    used,
                    delivered,
                    drop: Some(reason),
                }
            }
        };
        let payload = &bytes[used + header.payload.start..used + header.payload.end];
        used += header.payload.end;
        match header.opcode {
            // Text, or a continuation of one: benchmark stamps are in text messages.
            0x1 | 0x0 => {
                if header.fin && conn.message.is_empty() {
                    delivered += on_text(conn, payload, now, latency, sink);
                } else {
                    conn.message.extend_from_slice(payload);
                    if header.fin {
                        let message = std::mem::take(&mut conn.message);
                        delivered += on_text(conn, &message, now, latency, sink);
                    }
                }
            }
            0x8 => {
                let code = payload
                    .get(..2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]).to_string())
                    .unwrap_or_else(|| "none".to_owned());
                let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or_default());
                return Parsed {
                    used,
                    delivered,
                    drop: Some(format!("closed by server: code {code} {reason}")),
                };
            }
            0x9 => {
                if let Err(error) = conn.stream.write_all(&pong(payload)) {
                    if error.kind() != ErrorKind::WouldBlock {
                        return Parsed {
                            used,
                            delivered,
                            drop: Some(format!("pong failed: {error}")),
                        };
                    }
                }
            }
            // Pong, binary: nothing to record.
            _ => {}
        }
    }
}

/// Handles the SockJS lines completed by `bytes` (an `xhr_streaming` body; the decoder keeps
/// what is incomplete).
fn parse_http(
    conn: &mut Conn,
    bytes: &[u8],
    now: u64,
    latency: &mut Latency,
    sink: &dyn Sink,
) -> Parsed {
    let Some(mut lines) = conn.http.take() else {
        return Parsed {
            used: bytes.len(),
            delivered: 0,
            drop: None,
        };
    };
    let mut delivered = 0;
    let mut drop = None;
    let fed = lines.feed(bytes, |line| match sockjs::frame(line) {
        _ if drop.is_some() => {}
        Ok(sockjs::Frame::Messages(messages)) => {
            for message in messages {
                delivered += on_text(conn, message.as_bytes(), now, latency, sink);
            }
        }
        Ok(sockjs::Frame::Close(close)) => drop = Some(format!("closed by server: {close}")),
        Ok(_) => {}
        Err(error) => drop = Some(error),
    });
    conn.http = Some(lines);
    if let Err(error) = fed {
        drop.get_or_insert(error);
    }
    Parsed {
        used: bytes.len(),
        delivered,
        drop,
    }
}

/// Records the stamp in one text message, if it carries one; returns 1 if it did.
fn on_text(
    conn: &mut Conn,
    payload: &[u8],
    now: u64,
    latency: &mut Latency,
    sink: &dyn Sink,
) -> u64 {
    let Some(stamp) = std::str::from_utf8(payload).ok().and_then(wire::find_stamp) else {
        return 0;
    };
    let latency_us = now.saturating_sub(stamp.sent_us);
    latency.record(latency_us);
    sink.delivered(&stamp, latency_us);
    let seen = &mut conn.seen;
    seen.received += 1;
    if seen.first_us == 0 {
        seen.first_us = now;
    }
    seen.last_us = now;
    if let Some(last) = conn.last_seq.get_mut(stamp.publisher as usize) {
        match *last {
            Some(s) if stamp.seq == s => seen.duplicates += 1,
            Some(s) if stamp.seq < s => seen.out_of_order += 1,
            _ => *last = Some(stamp.seq),
        }
    }
    1
}

/// A masked pong frame echoing a ping's payload (at most 125 bytes, RFC 6455 §5.5).
fn pong(payload: &[u8]) -> Vec<u8> {
    let payload = &payload[..payload.len().min(125)];
    let mut frame = Vec::with_capacity(6 + payload.len());
    frame.push(0x8a);
    frame.push(0x80 | payload.len() as u8);
    frame.extend_from_slice(&MASK);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_of_each_length_form() {
        assert_eq!(header(&[0x81]).unwrap(), None);
        let short = [0x81, 0x03, b'a', b'b', b'c'];
        assert_eq!(
            header(&short).unwrap(),
            Some(Header {
                fin: true,
                opcode: 1,
                payload: 2..5
            })
        );
        assert_eq!(header(&short[..4]).unwrap(), None);
        let mut medium = vec![0x01, 126, 0x01, 0x00];
        medium.extend(std::iter::repeat_n(b'x', 256));
        assert_eq!(
            header(&medium).unwrap(),
            Some(Header {
                fin: false,
                opcode: 1,
                payload: 4..260
            })
        );
        let mut long = vec![0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0];
        long.extend(std::iter::repeat_n(0u8, 65536));
        assert_eq!(header(&long).unwrap().unwrap().payload, 10..65546);
        assert!(header(&[0x81, 0x85, 0, 0, 0, 0]).is_err(), "masked");
        assert!(
            header(&[0x82, 127, 0xff, 0, 0, 0, 0, 0, 0, 0]).is_err(),
            "too large"
        );
    }

    #[derive(Default)]
    struct Recorded {
        stamps: std::sync::Mutex<Vec<wire::Stamp>>,
        received: std::sync::atomic::AtomicU64,
        drops: std::sync::Mutex<Vec<String>>,
    }

    impl Sink for Recorded {
        fn delivered(&self, stamp: &wire::Stamp, _latency_us: u64) {
            self.stamps.lock().unwrap().push(*stamp);
        }
        fn received(&self, count: u64) {
            self.received.fetch_add(count, Ordering::Relaxed);
        }
        fn dropped(&self, error: String) {
            self.drops.lock().unwrap().push(error);
        }
    }

    fn event(publisher: u32, seq: u64) -> Vec<u8> {
        let stamp = wire::Stamp {
            publisher,
            seq,
            sent_us: wire::now_us(),
        };
        format!(
            r#"{{"event":"bench","channel":"c","data":"{}"}}"#,
            stamp.encode()
        )
        .into_bytes()
    }

    /// One reader thread on subscriber `index` (on node `node` of the target) of a real socket:
    /// the readers, the server's end of the socket and what the reader reports.
    fn reading(
        index: usize,
        node: usize,
        http: Option<Lines>,
    ) -> (Readers, TcpStream, Arc<Recorded>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let sink = Arc::new(Recorded::default());
        let subscriber = Subscriber {
            index,
            node,
            stream: client,
            http,
        };
        let readers = Readers::start(vec![subscriber], 1, 1, sink.clone()).unwrap();
        (readers, server, sink)
    }

    /// Waits (at most 15 s) until the reader has reported a drop: everything before it was read.
    fn until_dropped(sink: &Recorded) {
        for _ in 0..500 {
            if !sink.drops.lock().unwrap().is_empty() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(30));
        }
    }

    /// Frames split across writes, a fragmented message, a ping, an out-of-order and a
    /// duplicate event, then a close frame, over a real socket.
    #[test]
    fn reads_frames_from_a_socket() {
        let (readers, mut server, sink) = reading(7, 1, None);
        let pause = || std::thread::sleep(std::time::Duration::from_millis(30));
        let first = wire::unmasked_frame(true, 1, &event(0, 0));
        server.write_all(&first[..5]).unwrap();
        pause();
        server.write_all(&first[5..]).unwrap();
        let second = event(0, 2);
        let (a, b) = second.split_at(10);
        let mut both = wire::unmasked_frame(false, 1, a);
        both.extend(wire::unmasked_frame(true, 0, b));
        both.extend([0x89, 0x02, b'p', b'q']);
        server.write_all(&both).unwrap();
        server
            .write_all(&wire::unmasked_frame(true, 1, &event(0, 1)))
            .unwrap();
        server
            .write_all(&wire::unmasked_frame(true, 1, &event(0, 2)))
            .unwrap();
        server
            .write_all(&wire::unmasked_frame(
                true,
                1,
                br#"{"event":"pusher:pong","data":{}}"#,
            ))
            .unwrap();
        let mut close = vec![0x88, 0x06];
        close.extend(4100u16.to_be_bytes());
        close.extend(b"slow");
        server.write_all(&close).unwrap();
        // The close frame comes last: once it is seen, everything before it was read (a fixed
        // pause here was too short on a loaded machine).
        until_dropped(&sink);
        let mut pong = [0u8; 8];
        server.read_exact(&mut pong).unwrap();
        assert_eq!(pong[0], 0x8a);
        assert_eq!([pong[6] ^ MASK[0], pong[7] ^ MASK[1]], *b"pq");
        let totals = readers.finish();
        let seqs: Vec<u64> = sink.stamps.lock().unwrap().iter().map(|s| s.seq).collect();
        assert_eq!(seqs, [0, 2, 1, 2]);
        assert_eq!(sink.received.load(Ordering::Relaxed), 4);
        assert_eq!(totals[0].seen.received, 4);
        assert_eq!(totals[0].seen.out_of_order, 1);
        assert_eq!(totals[0].seen.duplicates, 1);
        assert_eq!(totals[0].nodes.len(), 2);
        assert_eq!(totals[0].nodes[0].seen.received, 0);
        assert_eq!(totals[0].nodes[1].seen.received, 4);
        assert_eq!(totals[0].nodes[1].latency.summary().count, 4);
        let drops = sink.drops.lock().unwrap();
        assert_eq!(drops.len(), 1);
        assert!(
            drops[0].contains("connection 7") && drops[0].contains("4100 slow"),
            "{drops:?}"
        );
    }

    /// An `xhr_streaming` body: SockJS lines in HTTP chunks cut anywhere, two messages in one
    /// line, a heartbeat, then the `c` frame.
    #[test]
    fn reads_sockjs_lines_from_a_socket() {
        let (readers, mut server, sink) = reading(3, 2, Some(Lines::default()));
        let text = |seq| String::from_utf8(event(0, seq)).unwrap();
        let body = format!(
            "a{}\nh\na{}\nc[4100,\"slow\"]\n",
            serde_json::to_string(&[text(0), text(1)]).unwrap(),
            serde_json::to_string(&[text(2)]).unwrap()
        );
        let (a, b) = body.as_bytes().split_at(body.len() / 2);
        for part in [a, b] {
            server
                .write_all(format!("{:x}\r\n", part.len()).as_bytes())
                .unwrap();
            server.write_all(part).unwrap();
            server.write_all(b"\r\n").unwrap();
            std::thread::sleep(std::time::Duration::from_millis(30));
        }
        until_dropped(&sink);
        let totals = readers.finish();
        let seqs: Vec<u64> = sink.stamps.lock().unwrap().iter().map(|s| s.seq).collect();
        assert_eq!(seqs, [0, 1, 2]);
        assert_eq!(totals[0].seen.received, 3);
        // Counted on its own node, as a WebSocket subscriber is.
        assert_eq!(totals[0].nodes.len(), 3);
        assert_eq!(totals[0].nodes[2].seen.received, 3);
        assert_eq!(totals[0].nodes[2].latency.summary().count, 3);
        let drops = sink.drops.lock().unwrap();
        assert!(
            drops.len() == 1 && drops[0].contains("connection 3") && drops[0].contains("4100"),
            "{drops:?}"
        );
    }

    #[test]
    fn pong_is_masked_and_echoes() {
        let frame = pong(b"hi");
        assert_eq!(&frame[..2], &[0x8a, 0x82]);
        assert_eq!(frame[6] ^ MASK[0], b'h');
        assert_eq!(frame[7] ^ MASK[1], b'i');
    }
}
