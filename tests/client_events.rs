//! Spec §5: client events — names, channel types, subscription, no echo, user_id on presence,
//! the app switch, the rate limit and the size limit.

mod common;

use std::time::Duration;

use common::{Client, Server, Setup};
use serde_json::json;

const QUIET: Duration = Duration::from_millis(300);
const CHAT: &str = "private-chat";

async fn pair(server: &Server, channel: &str) -> (Client, Client) {
    let mut a = server.client().await;
    let mut b = server.client().await;
    a.join_private(channel).await;
    b.join_private(channel).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_to_others_never_echoed() {
    let server = Setup::new().start().await;
    let (mut a, mut b) = pair(&server, CHAT).await;
    a.trigger(CHAT, "client-typing", json!({"who": "me"})).await;
    assert_eq!(
        b.recv_text().await,
        r#"{"event":"client-typing","channel":"private-chat","data":"{\"who\":\"me\"}"}"#
    );
    a.trigger(CHAT, "client-raw", json!("just a string")).await;
    assert_eq!(
        b.recv_text().await,
        r#"{"event":"client-raw","channel":"private-chat","data":"just a string"}"#
    );
    a.expect_no_frame(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_client_events_carry_sender_user_id() {
    let server = Setup::new().start().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    a.join_presence("presence-chat", r#"{"user_id":42}"#).await;
    b.join_presence("presence-chat", r#"{"user_id":"7"}"#).await;
    a.recv_json().await; // member_added for 7
    a.trigger("presence-chat", "client-hi", json!({"n": 1}))
        .await;
    assert_eq!(
        b.recv_text().await,
        r#"{"event":"client-hi","channel":"presence-chat","data":"{\"n\":1}","user_id":"42"}"#
    );
    a.expect_no_frame(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_client_prefixed_names() {
    let server = Setup::new().start().await;
    let (mut a, mut b) = pair(&server, CHAT).await;
    a.trigger(CHAT, "my-event", json!({})).await;
    a.expect_error_code(None).await;
    a.trigger(CHAT, "pusher_internal:member_added", json!({}))
        .await;
    a.expect_error_code(None).await;
    b.expect_no_frame(QUIET).await;
    a.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_private_and_presence_channels() {
    let server = Setup::new().start().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    a.join("public").await;
    b.join("public").await;
    a.trigger("public", "client-x", json!({})).await;
    a.expect_error(
        None,
        "Client event rejected - only supported on private and presence channels",
    )
    .await;
    b.expect_no_frame(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_must_be_subscribed() {
    let server = Setup::new().start().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    b.join_private("private-other").await;
    a.trigger("private-other", "client-x", json!({})).await;
    a.expect_error(
        None,
        "Cannot broadcast client event (connection not subscribed to channel private-other)",
    )
    .await;
    b.expect_no_frame(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_switch_off_has_hosted_text() {
    let server = Setup::new().app("client_events", "false").start().await;
    let (mut a, mut b) = pair(&server, CHAT).await;
    a.trigger(CHAT, "client-x", json!({})).await;
    a.expect_error(
        None,
        "To send client events, you must enable this feature in the Settings page of your dashboard.",
    )
    .await;
    b.expect_no_frame(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eleventh_event_in_a_second_gets_4301_and_stays_open() {
    let server = Setup::new().start().await;
    let (mut a, mut b) = pair(&server, CHAT).await;
    // One event, then a pause, so the burst below falls in one window whatever its shape
    // (fixed windows starting at an event, or sliding).
    a.trigger(CHAT, "client-n", json!("primer")).await;
    assert_eq!(b.recv_json().await["data"], "primer");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for i in 0..11 {
        a.trigger(CHAT, "client-n", json!(i.to_string())).await;
    }
    let message = a.expect_error_code(Some(4301)).await;
    assert_eq!(message, "Client event rejected due to rate limit");
    for i in 0..10 {
        let want = format!(r#"{{"event":"client-n","channel":"private-chat","data":"{i}"}}"#);
        assert_eq!(b.recv_text().await, want);
    }
    b.expect_no_frame(QUIET).await;
    a.ping_pong().await;
    // After the window the sender may send again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    a.trigger(CHAT, "client-n", json!("later")).await;
    assert_eq!(
        b.recv_text().await,
        r#"{"event":"client-n","channel":"private-chat","data":"later"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_over_10240_bytes_is_refused() {
    let server = Setup::new().start().await;
    let (mut a, mut b) = pair(&server, CHAT).await;
    a.trigger(CHAT, "client-big", json!("x".repeat(10241)))
        .await;
    let frame = a.recv_json().await;
    assert_eq!(frame["event"], "pusher:error", "{frame}");
    b.expect_no_frame(QUIET).await;
    a.trigger(CHAT, "client-big", json!("y".repeat(10240)))
        .await;
    let got = b.recv_json().await;
    assert_eq!(got["data"].as_str().map(str::len), Some(10240));
    a.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_data_is_relayed_in_compact_form_as_sent() {
    let server = Setup::new().start().await;
    let (mut a, mut b) = pair(&server, CHAT).await;
    a.send_text(r#"{"event":"client-o","channel":"private-chat","data":{ "z" : 1, "a" : [1, 2], "m" : {"y":true,"b":null} }}"#)
        .await;
    assert_eq!(
        b.recv_text().await,
        r#"{"event":"client-o","channel":"private-chat","data":"{\"z\":1,\"a\":[1,2],\"m\":{\"y\":true,\"b\":null}}"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_channels_relay_client_events() {
    let server = Setup::new().start().await;
    let (mut a, mut b) = pair(&server, "private-encrypted-e").await;
    let sealed = r#"{"nonce":"n","ciphertext":"c"}"#;
    a.trigger("private-encrypted-e", "client-s", json!(sealed))
        .await;
    let want = json!({"event": "client-s", "channel": "private-encrypted-e", "data": sealed});
    assert_eq!(b.recv_json().await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_frame_under_max_frame_bytes_is_not_a_protocol_error() {
    // The default max_frame_bytes is 256 KiB (actix-ws would default to 64 KiB).
    let server = Setup::new().start().await;
    let (mut a, mut b) = pair(&server, CHAT).await;
    a.trigger(CHAT, "client-big", json!("z".repeat(100_000)))
        .await;
    let frame = a.recv_json().await;
    assert_eq!(
        frame["event"], "pusher:error",
        "over the 10 KiB data limit: {frame}"
    );
    assert_eq!(frame["data"]["code"], json!(null), "{frame}");
    a.ping_pong().await;
    b.expect_no_frame(QUIET).await;
}
