//! Clients that send slowly or never finish, over raw TCP: a trickled request body is cut at
//! its deadline (`request_body_timeout`, `request_body_min_rate`) with 408, a body left unread
//! ends its connection, request heads and WebSocket handshakes trickled or left unfinished are
//! cut by the 5 s head timeout, a thousand unfinished ones do not keep anyone else out, and a
//! huge `Content-Length` is refused before its body. Others are served meanwhile.

mod common;

use std::time::Duration;

use common::raw::{read_head, read_to_end_within, websocket_request};
use common::{Server, Setup, Signing, KEY};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Writes `bytes` one at a time, `every` apart, until all are sent or a write fails.
fn trickle(mut writer: OwnedWriteHalf, bytes: Vec<u8>, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        for byte in bytes {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(every).await;
        }
    })
}

/// A signed `POST /apps/{id}{rest}` head for `body`, with these framing headers.
fn post_head(server: &Server, rest: &str, body: &str, framing: &str) -> String {
    let api = server.api();
    let path = api.path(rest);
    let query = api.signed_query("POST", &path, &[], body, &Signing::default());
    format!(
        "POST {path}?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
    )
}

/// An event of exactly `len` bytes of JSON.
fn event_body(len: usize) -> String {
    let bare = json!({"name": "e", "channels": ["room"], "data": ""}).to_string();
    json!({"name": "e", "channels": ["room"], "data": "x".repeat(len - bare.len())}).to_string()
}

/// Reads until the server closes the connection, failing the test if that takes more than
/// `within` from `started`; the status of the response it sent first, if it sent one.
async fn cut(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    started: Instant,
    within: Duration,
) -> Option<u16> {
    let left = (started + within).saturating_duration_since(Instant::now());
    let seen = read_to_end_within(stream, left)
        .await
        .unwrap_or_else(|seen| {
            let seen = String::from_utf8_lossy(&seen);
            panic!("still open {within:?} after it started, having sent {seen:?}")
        });
    if seen.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&seen);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok());
    assert!(status.is_some(), "an HTTP response or nothing: {text:?}");
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_is_cut_with_408_at_its_deadline() {
    let server = Setup::new()
        .server("request_body_timeout", "\"1s\"")
        .start()
        .await;
    let mut bystander = server.client().await;
    bystander.join("room").await;
    let body = event_body(1000);
    let by_length = post_head(&server, "/events", &body, "Content-Length: 1000");
    let chunked = post_head(&server, "/events", &body, "Transfer-Encoding: chunked");
    let chunk = |b: &u8| format!("1\r\n{}\r\n", *b as char).into_bytes();
    let cases = [
        ("Content-Length", by_length, body.as_bytes().to_vec()),
        (
            "chunked",
            chunked,
            body.as_bytes().iter().flat_map(chunk).collect(),
        ),
    ];
    for (case, head, trickled) in cases {
        println!("case: {case}");
        let started = Instant::now();
        let stream = TcpStream::connect(server.addr).await.expect("connect");
        let (mut read, mut write) = stream.into_split();
        write.write_all(head.as_bytes()).await.expect("head");
        // One byte every 100 ms: a full second buys 1 s / 4 KiB (the default rate) more.
        let writer = trickle(write, trickled, Duration::from_millis(100));
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Others are served meanwhile.
        server.api().publish("room", "e", case).await;
        bystander.recv_text().await;
        let status = cut(&mut read, started, Duration::from_secs(3)).await;
        let took = started.elapsed();
        assert_eq!(status, Some(408), "{case}");
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_millis(2000),
            "{case}: cut after {took:?}, the deadline is 1 s"
        );
        writer.abort();
    }
    bystander.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_left_unread_ends_its_connection() {
    // Routes that answer without reading the body: the rest is not read, chunked or not.
    let server = Setup::new().start().await;
    let framings = ["Content-Length: 1000", "Transfer-Encoding: chunked"];
    for (path, status) in [("/nowhere", 404), ("/", 200)] {
        for framing in framings {
            let case = format!("{path} with {framing}");
            println!("case: {case}");
            let method = if path == "/" { "GET" } else { "POST" };
            let head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{framing}\r\n\r\n");
            let started = Instant::now();
            let stream = TcpStream::connect(server.addr).await.expect("connect");
            let (mut read, mut write) = stream.into_split();
            write.write_all(head.as_bytes()).await.expect("head");
            let trickled = if framing.starts_with("Transfer") {
                b"1\r\nx\r\n".repeat(100)
            } else {
                vec![b'x'; 1000]
            };
            let writer = trickle(write, trickled, Duration::from_millis(100));
            let answer = cut(&mut read, started, Duration::from_secs(1)).await;
            assert_eq!(answer, Some(status), "{case}");
            writer.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_above_the_minimum_rate_is_served() {
    // 100 kB in 10 pieces, 200 ms apart: 2 s in all, twice request_body_timeout, but above
    // request_body_min_rate on average (50 kB/s against 16 KiB/s).
    let server = Setup::new()
        .server("request_body_timeout", "\"1s\"")
        .server("request_body_min_rate", "16384")
        .start()
        .await;
    let mut subscriber = server.client().await;
    subscriber.join("room").await;
    let events: Vec<_> = (0..10)
        .map(|i| json!({"channel": "room", "name": format!("e{i}"), "data": "y".repeat(10_000)}))
        .collect();
    let body = json!({"batch": events}).to_string();
    let head = post_head(
        &server,
        "/batch_events",
        &body,
        &format!("Content-Length: {}", body.len()),
    );
    let started = Instant::now();
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("head");
    for piece in body.as_bytes().chunks(body.len().div_ceil(10)) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        stream.write_all(piece).await.expect("body");
    }
    let head = read_head(&mut stream, common::WAIT).await;
    assert_eq!(head.status, 200, "after {:?}", started.elapsed());
    assert!(started.elapsed() >= Duration::from_secs(2));
    for i in 0..10 {
        let event = subscriber.recv_json().await;
        assert_eq!(event["event"], format!("e{i}"));
    }
    // A body sent at once still works, as large as the default limits allow.
    let response = server.api().batch(json!({"batch": events})).await;
    assert_eq!((response.status, response.body.as_str()), (200, "{}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_or_unfinished_heads_are_cut_by_the_head_timeout() {
    let server = Setup::new().start().await;
    let api = server.api();
    let path = api.path("/channels");
    let query = api.signed_query("GET", &path, &[], "", &Signing::default());
    // Long enough that 100 ms a byte cannot finish them in 5 s.
    let padding = format!("X-Padding: {}\r\n", "p".repeat(60));
    let http = format!("GET {path}?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n{padding}\r\n");
    let handshake = websocket_request().replacen("\r\n", &format!("\r\n{padding}"), 1);
    let started = Instant::now();
    let mut cut_off = Vec::new();
    let mut writers = Vec::new();
    for head in [http, handshake] {
        let stream = TcpStream::connect(server.addr).await.expect("connect");
        let (read, write) = stream.into_split();
        writers.push(trickle(
            write,
            head.into_bytes(),
            Duration::from_millis(100),
        ));
        cut_off.push(read);
    }
    let mut unfinished = TcpStream::connect(server.addr).await.expect("connect");
    unfinished
        .write_all(format!("GET /app/{KEY}?proto").as_bytes())
        .await
        .expect("write");
    // Others connect and are served meanwhile.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut client = server.client().await;
    client.join("room").await;
    server.api().publish("room", "e", "served").await;
    client.recv_text().await;
    assert!(started.elapsed() < Duration::from_secs(2));
    for read in &mut cut_off {
        let status = cut(read, started, Duration::from_millis(6500)).await;
        assert!(matches!(status, None | Some(408)), "{status:?}");
    }
    let status = cut(&mut unfinished, started, Duration::from_millis(6500)).await;
    assert!(matches!(status, None | Some(408)), "{status:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(4500),
        "cut after {:?}, before the head timeout",
        started.elapsed()
    );
    for writer in writers {
        writer.abort();
    }
    client.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_unfinished_handshakes_do_not_keep_others_out() {
    let server = Setup::new().start().await;
    let mut idle = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        stream
            .write_all(format!("GET /app/{KEY}?proto").as_bytes())
            .await
            .expect("write");
        idle.push(stream);
    }
    let started = Instant::now();
    let mut client = server.client().await;
    client.join("room").await;
    let took = started.elapsed();
    println!("connected and subscribed in {took:?} beside 1,000 unfinished handshakes");
    assert!(
        took < Duration::from_secs(2),
        "connected and subscribed in {took:?}"
    );
    server.api().publish("room", "e", "served").await;
    client.recv_text().await;
    // They were all still waiting, open, while the client got in.
    let waiting = idle
        .iter()
        .filter(|s| {
            let mut buf = [0u8; 1];
            matches!(s.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        })
        .count();
    assert_eq!(waiting, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_content_length_is_refused_before_its_body() {
    let server = Setup::new().start().await;
    let head = post_head(&server, "/events", "", "Content-Length: 100000000");
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("head");
    // 16 KiB of it, then nothing more: the answer must not wait for the rest.
    stream.write_all(&[b' '; 16 * 1024]).await.expect("body");
    let status = cut(&mut stream, Instant::now(), common::WAIT).await;
    assert_eq!(status, Some(413), "answered, and the connection closed");
}
