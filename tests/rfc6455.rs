//! RFC 6455 framing (§5) over raw TCP with hand-made frames: what herald accepts, how it fails
//! a connection that breaks the rules (a close frame with 1002, 1007 or 1009, then the end of the
//! TCP connection, §7.1.7), how it answers a client's close (§5.5.1), and that another
//! connection on the same server keeps getting its events after each.

mod common;

use common::raw::{
    close_payload, header, masked, unmasked, RawSocket, BINARY, CLOSE, CONTINUATION, FIN, PING,
    PONG, TEXT,
};
use common::{Client, Server, Setup};

const PUSHER_PING: &[u8] = br#"{"event":"pusher:ping","data":{}}"#;
const PUSHER_PONG: &str = r#"{"event":"pusher:pong","data":"{}"}"#;

/// A subscriber on the same server, checked after every broken connection.
struct Bystander {
    client: Client,
    round: usize,
}

impl Bystander {
    async fn join(server: &Server) -> Bystander {
        let mut client = server.client().await;
        client.join("room").await;
        Bystander { client, round: 0 }
    }

    /// A published event still reaches it.
    async fn still_served(&mut self, server: &Server) {
        self.round += 1;
        let data = self.round.to_string();
        server.api().publish("room", "still", &data).await;
        assert_eq!(
            self.client.recv_text().await,
            format!(r#"{{"event":"still","channel":"room","data":"{data}"}}"#)
        );
    }
}

/// Sends `bytes` on a new connection and expects it failed with `code`, a close frame alone
/// (no `pusher:error` for broken framing); then checks the bystander.
async fn fails_with(
    server: &Server,
    bystander: &mut Bystander,
    case: &str,
    bytes: &[u8],
    code: u16,
) {
    println!("case: {case}");
    let mut socket = RawSocket::open(server).await;
    socket.send(bytes).await;
    let closed = socket.expect_close(code).await;
    assert!(!closed.pusher_error, "{case}: only a close frame");
    assert!(
        !closed.reason.is_empty(),
        "{case}: the reason says what was wrong"
    );
    bystander.still_served(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragmented_text_with_control_frames_between_the_fragments_is_accepted() {
    // §5.4: control frames may be injected in the middle of a fragmented message.
    let server = Setup::new().start().await;
    let mut bystander = Bystander::join(&server).await;
    let mut socket = RawSocket::open(&server).await;
    let mut bytes = masked(TEXT, br#"{"event":"pus"#);
    bytes.extend(masked(FIN | PING, b"between"));
    bytes.extend(masked(CONTINUATION, br#"her:ping","da"#));
    bytes.extend(masked(FIN | PONG, b"unasked"));
    bytes.extend(masked(FIN | CONTINUATION, br#"ta":{}}"#));
    socket.send(&bytes).await;
    let pong = socket.frame().await.expect("the pong");
    assert_eq!(
        (pong.first, pong.payload.as_slice()),
        (FIN | PONG, &b"between"[..])
    );
    let answer = socket.frame().await.expect("pusher:pong");
    assert_eq!(
        (answer.first, answer.text()),
        (FIN | TEXT, PUSHER_PONG.into())
    );
    // Whole again: the next message is read on its own.
    socket.send(&masked(FIN | TEXT, PUSHER_PING)).await;
    assert_eq!(
        socket.frame().await.expect("pusher:pong").text(),
        PUSHER_PONG
    );
    bystander.still_served(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_closes_1007() {
    // §8.1: text that is not UTF-8 fails the connection with 1007 (§7.4.1), also when it is
    // split over fragments or in a close frame's reason.
    let server = Setup::new().start().await;
    let mut bystander = Bystander::join(&server).await;
    let mut split = masked(TEXT, br#"{"event":"pusher:ping","data":""#);
    split.extend(masked(FIN | CONTINUATION, b"\xed\xa0\x80\"}"));
    let mut reason = close_payload(1000, "");
    reason.extend_from_slice(b"\xff");
    let cases: [(&str, Vec<u8>); 4] = [
        (
            "bytes that are never UTF-8",
            masked(FIN | TEXT, b"\xff\xfe"),
        ),
        (
            "an overlong encoding inside JSON",
            masked(
                FIN | TEXT,
                b"{\"event\":\"pusher:ping\",\"data\":\"\xc0\xaf\"}",
            ),
        ),
        ("a surrogate in the last fragment", split),
        ("a close reason", masked(FIN | CLOSE, &reason)),
    ];
    for (case, bytes) in cases {
        fails_with(&server, &mut bystander, case, &bytes, 1007).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmasked_client_frames_close_1002() {
    // §5.1: a server must fail the connection on an unmasked frame.
    let server = Setup::new().start().await;
    let mut bystander = Bystander::join(&server).await;
    let cases: [(&str, Vec<u8>); 3] = [
        ("text", unmasked(FIN | TEXT, PUSHER_PING)),
        ("ping", unmasked(FIN | PING, b"p")),
        ("close", unmasked(FIN | CLOSE, &close_payload(1000, ""))),
    ];
    for (case, bytes) in cases {
        fails_with(&server, &mut bystander, case, &bytes, 1002).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_bits_and_opcodes_close_1002() {
    // §5.2: RSV1–3 must be 0 without a negotiated extension; opcodes 3–7 and 0xB–0xF are
    // reserved.
    let server = Setup::new().start().await;
    let mut bystander = Bystander::join(&server).await;
    for (bit, name) in [(0x40, "RSV1"), (0x20, "RSV2"), (0x10, "RSV3")] {
        let bytes = masked(FIN | bit | TEXT, PUSHER_PING);
        fails_with(&server, &mut bystander, name, &bytes, 1002).await;
    }
    for opcode in (0x3..=0x7).chain(0xB..=0xF) {
        let bytes = masked(FIN | opcode, b"x");
        let case = format!("opcode {opcode:#x}");
        fails_with(&server, &mut bystander, &case, &bytes, 1002).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_or_fragmented_control_frames_close_1002() {
    // §5.5: control frames carry at most 125 bytes and are never fragmented.
    let server = Setup::new().start().await;
    let mut bystander = Bystander::join(&server).await;
    let long_close = close_payload(1000, &"r".repeat(124));
    let cases: [(&str, Vec<u8>); 6] = [
        ("a ping of 126 bytes", masked(FIN | PING, &[b'p'; 126])),
        ("a pong of 126 bytes", masked(FIN | PONG, &[b'p'; 126])),
        ("a close of 126 bytes", masked(FIN | CLOSE, &long_close)),
        ("a ping without FIN", masked(PING, b"p")),
        ("a pong without FIN", masked(PONG, b"p")),
        (
            "a close without FIN",
            masked(CLOSE, &close_payload(1000, "")),
        ),
    ];
    for (case, bytes) in cases {
        fails_with(&server, &mut bystander, case, &bytes, 1002).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_close_frames_are_answered_1002() {
    // §5.5.1: a close body is empty or a code of 2 bytes first; §7.4: codes under 1000, the
    // unassigned 1004 and 1016–2999, those never sent (1005, 1006, 1015) and 5000 and above are
    // not valid on the wire.
    let server = Setup::new().start().await;
    let mut bystander = Bystander::join(&server).await;
    for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
        let bytes = masked(FIN | CLOSE, &close_payload(code, "bye"));
        let case = format!("close code {code}");
        fails_with(&server, &mut bystander, &case, &bytes, 1002).await;
    }
    let one_byte = masked(FIN | CLOSE, &[0x03]);
    fails_with(
        &server,
        &mut bystander,
        "a 1-byte close body",
        &one_byte,
        1002,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuation_without_a_start_or_a_start_inside_a_message_closes_1002() {
    // §5.4: fragments of one message are not interleaved with another message's.
    let server = Setup::new().start().await;
    let mut bystander = Bystander::join(&server).await;
    let open_then = |first: u8, second: u8| {
        let mut bytes = masked(first, b"{");
        bytes.extend(masked(second, b"{}"));
        bytes
    };
    let cases: [(&str, Vec<u8>); 5] = [
        (
            "a final continuation first",
            masked(FIN | CONTINUATION, b"x"),
        ),
        ("a continuation first", masked(CONTINUATION, b"x")),
        ("text, then a new final text", open_then(TEXT, FIN | TEXT)),
        ("text, then a new binary start", open_then(TEXT, BINARY)),
        ("binary, then a new text start", open_then(BINARY, TEXT)),
    ];
    for (case, bytes) in cases {
        fails_with(&server, &mut bystander, case, &bytes, 1002).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_announcing_16_mib_is_refused_at_once() {
    // Only the header is sent: the answer comes without waiting for (or buffering) the payload.
    let server = Setup::new().start().await;
    let mut bystander = Bystander::join(&server).await;
    let mut socket = RawSocket::open(&server).await;
    socket
        .send(&header(FIN | TEXT, 16 * 1024 * 1024, true))
        .await;
    let closed = socket.expect_close(1009).await;
    assert!(closed.pusher_error, "herald says why in pusher:error too");
    bystander.still_served(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_close_is_echoed_and_the_connection_closed() {
    // §5.5.1: the answer to a close frame is a close frame, typically echoing the code; then the
    // server closes the TCP connection (§7.1.1).
    let server = Setup::new().start().await;
    let mut bystander = Bystander::join(&server).await;
    for code in [1000, 1001, 1003, 3000, 4000, 4999] {
        println!("case: close code {code}");
        let mut socket = RawSocket::open(&server).await;
        socket
            .send(&masked(FIN | CLOSE, &close_payload(code, "bye")))
            .await;
        let closed = socket.expect_close(code).await;
        assert!(!closed.pusher_error);
        bystander.still_served(&server).await;
    }
    // An empty close frame is answered with an empty one.
    let mut socket = RawSocket::open(&server).await;
    socket.send(&masked(FIN | CLOSE, b"")).await;
    let answer = socket.frame().await.expect("a close frame");
    assert_eq!((answer.first, answer.payload.len()), (FIN | CLOSE, 0));
    socket.expect_end().await;
    bystander.still_served(&server).await;
}
