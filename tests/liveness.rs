//! Spec §1.3 and Decision 2: `pusher:ping`/`pusher:pong`, WebSocket pings both ways, the
//! activity timeout and 4201, and old clients that only answer WebSocket pings.

mod common;

use std::time::Duration;

use common::{Client, Frame, Setup, KEY};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pusher_ping_gets_exact_pong() {
    let server = Setup::new().start().await;
    let mut client = server.client().await;
    client
        .send_text(r#"{"event":"pusher:ping","data":{}}"#)
        .await;
    assert_eq!(
        client.recv_text().await,
        r#"{"event":"pusher:pong","data":"{}"}"#
    );
    // Some clients send string data.
    client
        .send_text(r#"{"event":"pusher:ping","data":"{}"}"#)
        .await;
    assert_eq!(
        client.recv_text().await,
        r#"{"event":"pusher:pong","data":"{}"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_ping_is_answered_with_pong() {
    let server = Setup::new().start().await;
    let mut client = server.client().await;
    client
        .send_message(Message::Ping(b"hello".to_vec().into()))
        .await;
    assert_eq!(
        client.next_frame(common::WAIT).await,
        Some(Frame::Pong(b"hello".to_vec()))
    );
    client.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_pings_after_silence_and_closes_4201_without_answer() {
    let server = Setup::new()
        .server("activity_timeout", "\"1s\"")
        .server("pong_timeout", "\"1s\"")
        .start()
        .await;
    let mut client = server.client().await;
    // Do not read (so tungstenite never answers the ping) for longer than both timeouts.
    tokio::time::sleep(Duration::from_millis(2800)).await;
    let mut saw_ping = false;
    loop {
        match client.next_frame(common::WAIT).await {
            Some(Frame::Ping(_)) => saw_ping = true,
            Some(Frame::Text(t)) => {
                let frame = common::json(&t);
                assert_eq!(frame["event"], "pusher:error", "{t}");
                assert_eq!(frame["data"]["code"], 4201, "{t}");
                assert_eq!(frame["data"]["message"], "Pong reply not received", "{t}");
                break;
            }
            other => panic!("expected ping then pusher:error 4201, got {other:?}"),
        }
    }
    assert!(saw_ping, "a WebSocket Ping precedes the 4201 close");
    let (code, _) = client.expect_close().await;
    assert_eq!(code, Some(4201));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sends_websocket_ping_after_activity_timeout() {
    let server = Setup::new()
        .server("activity_timeout", "\"1s\"")
        .server("pong_timeout", "\"5s\"")
        .start()
        .await;
    let mut client = server.client().await;
    match client.next_frame(Duration::from_millis(2500)).await {
        Some(Frame::Ping(_)) => {}
        other => panic!("expected a WebSocket Ping after 1 s of silence, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_client_answering_ws_pings_stays_connected() {
    let server = Setup::new()
        .server("activity_timeout", "\"1s\"")
        .server("pong_timeout", "\"1s\"")
        .start()
        .await;
    // A 2011-era client: no protocol parameter, object data, never sends pusher:pong.
    let mut client = Client::connect(&server, KEY, "client=js&version=1.9.0").await;
    client.established().await;
    client
        .send_text(r#"{"event":"pusher:subscribe","data":{"channel":"todos"}}"#)
        .await;
    client.expect_succeeded("todos").await;
    // Reading answers the server's WebSocket pings, as browsers do.
    client.expect_no_frame(Duration::from_millis(3200)).await;
    assert!(
        client.pings >= 2,
        "server pinged during the silence ({} pings)",
        client.pings
    );
    server.api().publish("todos", "created", "{\"id\":1}").await;
    assert_eq!(
        client.recv_text().await,
        r#"{"event":"created","channel":"todos","data":"{\"id\":1}"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pusher_pong_and_dataless_ping() {
    let server = Setup::new().start().await;
    let mut client = server.client().await;
    client
        .send_text(r#"{"event":"pusher:pong","data":{}}"#)
        .await;
    client.expect_no_frame(Duration::from_millis(300)).await;
    client.send_text(r#"{"event":"pusher:ping"}"#).await;
    assert_eq!(
        client.recv_text().await,
        r#"{"event":"pusher:pong","data":"{}"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_traffic_counts_as_activity() {
    let server = Setup::new()
        .server("activity_timeout", "\"1s\"")
        .server("pong_timeout", "\"1s\"")
        .start()
        .await;
    let mut client = server.client().await;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        client.ping_pong().await;
    }
    assert_eq!(
        client.pings, 0,
        "no WebSocket ping while the client keeps talking"
    );
}

/// sdk-requests.md §1: pysher connects with protocol 6 and pings with `"data":""`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pysher_style_ping_with_empty_string_data() {
    let server = Setup::new().start().await;
    let mut client = Client::connect(&server, KEY, "client=Pysher&version=1.0.7&protocol=6").await;
    client.established().await;
    client
        .send_text(r#"{"event":"pusher:ping","data":""}"#)
        .await;
    assert_eq!(
        client.recv_text().await,
        r#"{"event":"pusher:pong","data":"{}"}"#
    );
}

/// A client that stops reading, with its socket full of events, is still pinged and, without an
/// answer, closed (4201): the ping waits behind the events in the connection's queue, and the
/// session loop does not wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_reader_with_a_full_socket_is_still_closed_after_the_pong_timeout() {
    let server = Setup::new()
        .server("activity_timeout", "\"1s\"")
        .server("pong_timeout", "\"1s\"")
        .server("outbound_queue", "4096")
        .server("slow_consumer_timeout", "\"60s\"")
        .app("max_event_data_bytes", "200000")
        .start()
        .await;
    let mut client = server.client().await;
    client.join("stuck").await;
    // 300 events of 64 KiB: more than the loopback socket buffers hold, far less than the queue.
    let api = server.api();
    api.publish_large("stuck", 300).await;
    // Activity timeout 1 s + pong timeout 1 s; the session unsubscribes as soon as it closes.
    let mut vacated = false;
    for _ in 0..80 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let channel = api.get(&api.path("/channels/stuck"), &[]).await;
        if channel.json()["occupied"] == false {
            vacated = true;
            break;
        }
    }
    assert!(
        vacated,
        "the stuck connection was still subscribed after 8 s"
    );
    drop(client);
}
