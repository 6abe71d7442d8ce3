//! Spec §1: the handshake, protocol versions, refusals, bad frames, frame size, close.

mod common;

use std::time::Duration;

use common::{Client, Setup, KEY};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_established_is_first_with_string_data() {
    let server = Setup::new()
        .server("activity_timeout", "\"7s\"")
        .start()
        .await;
    let mut client = Client::connect(
        &server,
        KEY,
        "protocol=7&client=js&version=8.4.0&flash=false",
    )
    .await;
    let text = client.recv_text().await;
    let frame = common::json(&text);
    assert_eq!(
        frame.as_object().map(|o| o.len()),
        Some(2),
        "only event and data: {text}"
    );
    assert_eq!(frame["event"], "pusher:connection_established");
    let data = common::json(
        frame["data"]
            .as_str()
            .expect("data is a JSON-encoded string"),
    );
    let socket_id = data["socket_id"].as_str().expect("socket_id");
    assert!(common::ws::is_socket_id(socket_id), "{socket_id}");
    assert_eq!(data, json!({"socket_id": socket_id, "activity_timeout": 7}));
    let mut other = server.client().await;
    assert_ne!(other.socket_id, socket_id, "socket ids are unique");
    other.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_missing_or_4_to_7_is_accepted() {
    let server = Setup::new().start().await;
    for query in [
        "",
        "protocol=4",
        "protocol=5",
        "protocol=6",
        "protocol=7",
        "client=js&version=1.9.0",
    ] {
        let mut client = Client::connect(&server, KEY, query).await;
        client.established().await;
        client.ping_pong().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_1_to_3_is_refused_with_4007() {
    let server = Setup::new().start().await;
    for query in ["protocol=1", "protocol=2", "protocol=3", "protocol=abc"] {
        let mut client = Client::connect(&server, KEY, query).await;
        client.expect_error_and_close(4007, None).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_key_is_refused_with_4001() {
    let server = Setup::new().start().await;
    let mut client = Client::connect(&server, "no-such-key", "protocol=7").await;
    let hosted = "App key no-such-key not in this cluster. Did you forget to specify the cluster?";
    client.expect_error_and_close(4001, Some(hosted)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_app_is_refused_with_4003() {
    let server = Setup::new()
        .extra_app("id = \"off-id\"\nkey = \"off-key\"\nsecret = \"off-secret\"\nenabled = false")
        .start()
        .await;
    let mut client = Client::connect(&server, "off-key", "protocol=7").await;
    client.expect_error_and_close(4003, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_max_connections_is_refused_with_4004() {
    let server = Setup::new().app("max_connections", "2").start().await;
    let mut a = server.client().await;
    let _b = server.client().await;
    let mut c = Client::connect(&server, KEY, "protocol=7").await;
    c.expect_error_and_close(4004, None).await;
    a.ping_pong().await;
    a.close().await;
    // The freed slot can be used again.
    let mut d = None;
    for _ in 0..20 {
        let mut client = Client::connect(&server, KEY, "protocol=7").await;
        let first = client.recv_json().await;
        if first["event"] == "pusher:connection_established" {
            d = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    d.expect("a slot frees up when a connection closes")
        .ping_pong()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_error_code_null_and_connection_stays() {
    let server = Setup::new().start().await;
    let mut client = server.client().await;
    let bad = [
        Message::text("not json"),
        Message::text("{\"data\":{}}"),
        Message::text("[1,2]"),
        Message::text("{\"event\":\"pusher:nonsense\",\"data\":{}}"),
        Message::binary(b"\x01\x02".to_vec()),
    ];
    for frame in bad {
        client.send_message(frame.clone()).await;
        let message = client.expect_error_code(None).await;
        assert!(!message.is_empty(), "{frame:?}");
        client.ping_pong().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_pusher_event_has_hosted_text() {
    let server = Setup::new().start().await;
    let mut client = server.client().await;
    client
        .send_json(json!({"event": "pusher:nonsense", "data": {}}))
        .await;
    client
        .expect_error(
            None,
            "Unsupported event received on socket: pusher:nonsense",
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_closes_1009_others_unaffected() {
    let server = Setup::new().server("max_frame_bytes", "4096").start().await;
    let mut other = server.client().await;
    other.join("room").await;
    let mut big = server.client().await;
    let data = "x".repeat(8192);
    big.send_json(json!({"event": "client-x", "channel": "private-a", "data": data}))
        .await;
    big.expect_error_and_close(1009, None).await;
    other.ping_pong().await;
    server.api().publish("room", "still", "here").await;
    assert_eq!(
        other.recv_text().await,
        r#"{"event":"still","channel":"room","data":"here"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_answers_ok() {
    let server = Setup::new().start().await;
    let response = server.api().raw("GET", "/", "").await;
    assert_eq!((response.status, response.body.as_str()), (200, "OK"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_reason_fits_in_123_bytes() {
    let server = Setup::new().start().await;
    let key = "k".repeat(150);
    let mut client = Client::connect(&server, &key, "protocol=7").await;
    let frame = client.recv_json().await;
    assert_eq!(frame["data"]["code"], 4001, "{frame}");
    let (code, reason) = client.expect_close().await;
    assert_eq!(code, Some(4001));
    assert!(
        reason.len() <= 123,
        "close reason is {} bytes",
        reason.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_are_isolated() {
    let server = Setup::new()
        .extra_app("id = \"two-id\"\nkey = \"two-key\"\nsecret = \"two-secret\"")
        .start()
        .await;
    let mut one = server.client().await;
    one.join("shared").await;
    let mut two = Client::connect(&server, "two-key", "protocol=7").await;
    two.established().await;
    two.join("shared").await;
    let api_two = server.api().for_app("two-id", "two-key", "two-secret");
    api_two.publish("shared", "e", "for two").await;
    assert_eq!(
        two.recv_text().await,
        r#"{"event":"e","channel":"shared","data":"for two"}"#
    );
    one.expect_no_frame(Duration::from_millis(300)).await;
    // Another app's credentials do not open this app's API.
    let crossed = server.api().for_app("test-id", "two-key", "two-secret");
    let response = crossed
        .trigger(json!({"name": "e", "channels": ["shared"], "data": "x"}))
        .await;
    assert_eq!(response.status, 401, "{}", response.body);
    one.expect_no_frame(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragmented_text_message_is_reassembled() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
    let server = Setup::new().start().await;
    let mut client = server.client().await;
    let first = WsFrame::message(
        &b"{\"event\":\"pusher:"[..],
        OpCode::Data(Data::Text),
        false,
    );
    let last = WsFrame::message(
        &b"ping\",\"data\":{}}"[..],
        OpCode::Data(Data::Continue),
        true,
    );
    client.send_message(Message::Frame(first)).await;
    client.send_message(Message::Frame(last)).await;
    assert_eq!(
        client.recv_text().await,
        r#"{"event":"pusher:pong","data":"{}"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_pusher_messages_get_error_null() {
    let server = Setup::new().start().await;
    let mut client = server.client().await;
    for text in [
        r#"{"event":"pusher:subscribe"}"#,
        r#"{"event":"pusher:subscribe","data":{}}"#,
        r#"{"event":"pusher:subscribe","data":"not an object"}"#,
        r#"{"event":"pusher:signin","data":{"auth":"k:s"}}"#,
        r#"{"event":"client-x","data":{}}"#,
        r#"{"event":42,"data":{}}"#,
    ] {
        client.send_text(text).await;
        let message = client.expect_error_code(None).await;
        assert!(!message.is_empty(), "{text}");
    }
    client.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_close_is_answered_with_close() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    let server = Setup::new().start().await;
    let mut client = server.client().await;
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    };
    client.send_message(Message::Close(Some(frame))).await;
    let (code, _) = client.expect_close().await;
    assert_eq!(code, Some(1000), "the server echoes the client's close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defaults_development_app_and_120s_activity_timeout() {
    // No configuration at all: the development app and the documented defaults.
    let server = common::Server::start("").await;
    let mut client = Client::connect(&server, "app-key", "protocol=7").await;
    let data = client.established().await;
    assert_eq!(data["activity_timeout"], 120);
    client.ping_pong().await;
    let api = common::Api::new(server.addr, "1", "app-key", "app-secret");
    let response = api.get("/apps/1/channels", &[]).await;
    assert_eq!(
        (response.status, response.body.as_str()),
        (200, r#"{"channels":{}}"#)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragmented_message_over_max_frame_bytes_closes_1009() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
    let server = Setup::new().server("max_frame_bytes", "4096").start().await;
    let mut other = server.client().await;
    let mut client = server.client().await;
    let chunk = vec![b' '; 3000];
    client
        .send_message(Message::Frame(WsFrame::message(
            chunk.clone(),
            OpCode::Data(Data::Text),
            false,
        )))
        .await;
    client
        .send_message(Message::Frame(WsFrame::message(
            chunk,
            OpCode::Data(Data::Continue),
            true,
        )))
        .await;
    client.expect_error_and_close(1009, None).await;
    other.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_event_without_channel_has_hosted_text() {
    // Spec §1.4: hosted answers an event literally named `subscribe` this way.
    let server = Setup::new().start().await;
    let mut client = server.client().await;
    client
        .send_json(json!({"event": "subscribe", "data": {"channel": "x"}}))
        .await;
    client
        .expect_error(None, "Unsupported event received on socket: subscribe")
        .await;
    client
        .send_json(json!({"event": "subscribe", "channel": "x", "data": {}}))
        .await;
    client
        .expect_error(None, "Unsupported event received on socket: subscribe")
        .await;
    client.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_quota_has_hosted_text() {
    let server = Setup::new().app("max_connections", "1").start().await;
    let _a = server.client().await;
    let mut b = Client::connect(&server, KEY, "protocol=7").await;
    b.expect_error_and_close(4004, Some("Account over quota"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_style_handshake_headers_are_accepted() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let server = Setup::new().start().await;
    let mut request = server
        .ws_url(KEY, "protocol=7&client=js&version=8.4.0&flash=false")
        .into_client_request()
        .expect("request");
    let headers = request.headers_mut();
    headers.insert("Origin", "http://localhost:3000".parse().expect("header"));
    headers.insert(
        "Sec-WebSocket-Extensions",
        "permessage-deflate; client_max_window_bits"
            .parse()
            .expect("header"),
    );
    headers.insert("User-Agent", "Mozilla/5.0".parse().expect("header"));
    let (mut ws, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("handshake");
    assert_eq!(response.status().as_u16(), 101);
    use futures_util::StreamExt;
    let first = ws.next().await.expect("a frame").expect("no error");
    let text = first.into_text().expect("text").to_string();
    assert!(
        text.starts_with(r#"{"event":"pusher:connection_established","data":""#),
        "{text}"
    );
}
