//! Spec §3.5, §3.7: watchlist online/offline events and authorized connections.

mod common;

use std::time::Duration;

use common::{Client, Server, Setup};
use serde_json::{json, Value};

const QUIET: Duration = Duration::from_millis(300);

async fn signed_in(server: &Server, user_data: &str) -> Client {
    let mut c = server.client().await;
    c.signin(user_data).await;
    c
}

/// Reads one `pusher_internal:watchlist_events` frame and returns its decoded `events`.
async fn watchlist_events(c: &mut Client) -> Value {
    let frame = c.recv_json().await;
    assert_eq!(
        frame["event"], "pusher_internal:watchlist_events",
        "{frame}"
    );
    assert!(frame.get("channel").is_none(), "no channel: {frame}");
    let data = frame["data"]
        .as_str()
        .unwrap_or_else(|| panic!("data is a JSON string: {frame}"));
    common::json(data)["events"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_status_then_online_once_and_offline_after_last() {
    let server = Setup::new().start().await;
    let _a = signed_in(&server, r#"{"id":"a"}"#).await;
    let mut w = server.client().await;
    w.signin(r#"{"id":"w","watchlist":["a","b"]}"#).await;
    let initial = w.recv_text().await;
    assert_eq!(
        initial,
        r#"{"event":"pusher_internal:watchlist_events","data":"{\"events\":[{\"name\":\"online\",\"user_ids\":[\"a\"]},{\"name\":\"offline\",\"user_ids\":[\"b\"]}]}"}"#
    );
    let b1 = signed_in(&server, r#"{"id":"b"}"#).await;
    assert_eq!(
        watchlist_events(&mut w).await,
        json!([{"name": "online", "user_ids": ["b"]}])
    );
    let b2 = signed_in(&server, r#"{"id":"b"}"#).await;
    w.expect_no_frame(QUIET).await;
    b1.close().await;
    w.expect_no_frame(QUIET).await;
    b2.close().await;
    assert_eq!(
        watchlist_events(&mut w).await,
        json!([{"name": "offline", "user_ids": ["b"]}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchlist_over_100_keeps_first_100_and_sends_4302() {
    let server = Setup::new().start().await;
    let ids: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
    let user_data = json!({"id": "w", "watchlist": ids}).to_string();
    let mut w = server.client().await;
    w.signin(&user_data).await;
    let events = watchlist_events(&mut w).await;
    assert_eq!(
        events,
        json!([{"name": "offline", "user_ids": &ids[..100]}])
    );
    let message = w.expect_error_code(Some(4302)).await;
    assert!(!message.is_empty());
    w.ping_pong().await;
    // u100 was dropped from the watchlist: its coming online is not reported.
    let _late = signed_in(&server, r#"{"id":"u100"}"#).await;
    w.expect_no_frame(QUIET).await;
    let _u0 = signed_in(&server, r#"{"id":"u0"}"#).await;
    assert_eq!(
        watchlist_events(&mut w).await,
        json!([{"name": "online", "user_ids": ["u0"]}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchlist_events_switch_off() {
    let server = Setup::new().app("watchlist_events", "false").start().await;
    let mut w = server.client().await;
    w.signin(r#"{"id":"w","watchlist":["a"]}"#).await;
    let _a = signed_in(&server, r#"{"id":"a"}"#).await;
    w.expect_no_frame(QUIET).await;
}

fn authorized() -> Setup {
    Setup::new()
        .app("authorized_connections", "true")
        .app("authorization_timeout", "\"1s\"")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_connection_is_closed_4009() {
    let server = authorized().start().await;
    let mut idle = server.client().await;
    let mut public_only = server.client().await;
    public_only.join("news").await;
    idle.expect_error_and_close(4009, Some("Connection not authorized within timeout"))
        .await;
    public_only
        .expect_error_and_close(4009, Some("Connection not authorized within timeout"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_in_or_private_connections_stay() {
    let server = authorized().start().await;
    let mut signed = signed_in(&server, r#"{"id":"1"}"#).await;
    let mut private = server.client().await;
    private.join_private("private-x").await;
    let mut presence = server.client().await;
    presence
        .join_presence("presence-x", r#"{"user_id":"2"}"#)
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    signed.ping_pong().await;
    private.ping_pong().await;
    presence.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_signin_does_not_authorize() {
    let server = authorized().start().await;
    let mut c = server.client().await;
    let user_data = r#"{"id":"1"}"#;
    c.send_signin("test-key:00", user_data).await;
    c.expect_error_code(None).await;
    c.expect_error_and_close(4009, Some("Connection not authorized within timeout"))
        .await;
}
