//! The WebSocket opening handshake (RFC 6455 §4) as browsers and other clients really send it,
//! over a raw TCP socket: herald answers it itself since 75a4ab6.

mod common;

use common::raw::{exchange, masked_text, upgrade_request, SAMPLE_KEY};
use common::{Setup, KEY};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

async fn websocket(stream: TcpStream, rest: Vec<u8>) -> WebSocketStream<TcpStream> {
    WebSocketStream::from_partially_read(stream, rest, Role::Client, None).await
}

async fn next_text(ws: &mut WebSocketStream<TcpStream>) -> String {
    use futures_util::StreamExt;
    loop {
        let message = tokio::time::timeout(common::WAIT, ws.next())
            .await
            .expect("a frame within the wait time")
            .expect("a frame")
            .expect("no error");
        if message.is_text() {
            return message.into_text().expect("text").to_string();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firefox_style_connection_header_and_mixed_case_upgrade() {
    let server = Setup::new().start().await;
    let request = upgrade_request(
        &format!("/app/{KEY}?protocol=7&client=js&version=8.4.0&flash=false"),
        &[
            "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            "Origin: http://localhost:8080",
            "Sec-WebSocket-Version: 13",
            &format!("Sec-WebSocket-Key: {SAMPLE_KEY}"),
            "Sec-WebSocket-Extensions: permessage-deflate",
            "Connection: keep-alive, Upgrade",
            "Upgrade: WebSocket",
        ],
    );
    let (stream, head) = exchange(&server, request.as_bytes()).await;
    assert_eq!(head.status, 101);
    assert_eq!(
        head.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    assert_eq!(
        head.header("upgrade")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("websocket")
    );
    assert_eq!(
        head.header("sec-websocket-extensions"),
        None,
        "no extension was negotiated"
    );
    let mut ws = websocket(stream, head.rest).await;
    let first = next_text(&mut ws).await;
    assert!(
        first.starts_with(r#"{"event":"pusher:connection_established","data":""#),
        "{first}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_frame_in_the_same_packet_as_the_handshake() {
    let server = Setup::new().start().await;
    let key = "x3JJHMbDL1EzLkh9GBhXDw==";
    let mut bytes = upgrade_request(
        &format!("/app/{KEY}?protocol=7"),
        &[
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Version: 13",
            &format!("Sec-WebSocket-Key: {key}"),
        ],
    )
    .into_bytes();
    bytes.extend(masked_text(br#"{"event":"pusher:ping","data":{}}"#));
    let (stream, head) = exchange(&server, &bytes).await;
    assert_eq!(head.status, 101);
    assert_eq!(
        head.header("sec-websocket-accept"),
        Some(derive_accept_key(key.as_bytes()).as_str())
    );
    let mut ws = websocket(stream, head.rest).await;
    let first = next_text(&mut ws).await;
    assert!(
        first.starts_with(r#"{"event":"pusher:connection_established""#),
        "{first}"
    );
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"event":"pusher:pong","data":"{}"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_websocket_version_names_the_supported_one() {
    // RFC 6455 §4.2.2/§4.4: answer 426 (or another 4xx) and say which version is understood.
    let server = Setup::new().start().await;
    let request = upgrade_request(
        &format!("/app/{KEY}?protocol=7"),
        &[
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Version: 8",
            &format!("Sec-WebSocket-Key: {SAMPLE_KEY}"),
        ],
    );
    let (_stream, head) = exchange(&server, request.as_bytes()).await;
    assert!((400..500).contains(&head.status), "status {}", head.status);
    assert_eq!(head.header("sec-websocket-version"), Some("13"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_request_offering_h2c_upgrade_is_served_over_http1() {
    // curl --http2 on http:// URLs offers `Upgrade: h2c`; a server without h2c ignores it.
    let server = Setup::new().start().await;
    let api = server.api();
    let path = api.path("/channels");
    let query = api.signed_query("GET", &path, &[], "", &common::Signing::default());
    let request = upgrade_request(
        &format!("{path}?{query}"),
        &[
            "Connection: Upgrade, HTTP2-Settings",
            "Upgrade: h2c",
            "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA",
        ],
    );
    let (mut stream, head) = exchange(&server, request.as_bytes()).await;
    assert_eq!(head.status, 200, "{:?}", head.headers);
    let length: usize = head
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .expect("content-length");
    let mut body = head.rest;
    while body.len() < length {
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(n > 0);
        body.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(String::from_utf8_lossy(&body), r#"{"channels":{}}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_get_of_the_websocket_path_is_a_client_error() {
    let server = Setup::new().start().await;
    let request = upgrade_request(&format!("/app/{KEY}?protocol=7"), &["Connection: close"]);
    let (_stream, head) = exchange(&server, request.as_bytes()).await;
    assert!((400..500).contains(&head.status), "status {}", head.status);
}
