//! Spec §3.4, §3.6, §3.8: `pusher:signin`, server-to-user events and terminate_connections.

mod common;

use std::time::Duration;

use common::{Client, Frame, Server, Setup, Signing, KEY};
use serde_json::json;

const QUIET: Duration = Duration::from_millis(300);

async fn signed_in(server: &Server, id: &str) -> Client {
    let mut c = server.client().await;
    c.signin(&format!(r#"{{"id":"{id}"}}"#)).await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signin_success_echoes_user_data() {
    let server = Setup::new().start().await;
    let mut c = server.client().await;
    let user_data = r#"{"id":"12345","user_info":{"name":"A"}}"#;
    let auth = common::signin_auth(&c.socket_id, user_data);
    c.send_signin(&auth, user_data).await;
    let want = json!({"event": "pusher:signin_success", "data": {"user_data": user_data}});
    assert_eq!(common::json(&c.recv_text().await), want);
    // Signing in again as the same user succeeds again.
    c.signin(user_data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signin_is_error_null_and_stays_open() {
    let server = Setup::new().start().await;
    let mut c = server.client().await;
    let user_data = r#"{"id":"1"}"#;
    c.send_signin(&format!("{KEY}:00"), user_data).await;
    let message = c.expect_error_code(None).await;
    assert!(message.starts_with("Invalid signature"), "{message}");
    c.send_signin("nocolon", user_data).await;
    c.expect_error(
        None,
        "Invalid format: auth must have the format key:signature",
    )
    .await;
    c.ping_pong().await;
    // Not signed in: server-to-user events do not reach it.
    server.api().publish("#server-to-user-1", "e", "x").await;
    c.expect_no_frame(QUIET).await;
    c.signin(user_data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signin_as_a_second_user_is_refused() {
    let server = Setup::new().start().await;
    let mut c = signed_in(&server, "1").await;
    let other = r#"{"id":"2"}"#;
    let auth = common::signin_auth(&c.socket_id, other);
    c.send_signin(&auth, other).await;
    c.expect_error_code(None).await;
    server
        .api()
        .publish("#server-to-user-2", "e", "for 2")
        .await;
    c.expect_no_frame(QUIET).await;
    server
        .api()
        .publish("#server-to-user-1", "e", "for 1")
        .await;
    assert_eq!(
        c.recv_text().await,
        r##"{"event":"e","channel":"#server-to-user-1","data":"for 1"}"##
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signin_refused_when_user_authentication_is_off() {
    let server = Setup::new()
        .app("user_authentication", "false")
        .start()
        .await;
    let mut c = server.client().await;
    let user_data = r#"{"id":"1"}"#;
    let auth = common::signin_auth(&c.socket_id, user_data);
    c.send_signin(&auth, user_data).await;
    c.expect_error_code(None).await;
    c.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_to_user_reaches_each_connection_once() {
    let server = Setup::new().start().await;
    let mut c1 = signed_in(&server, "1").await;
    let mut c2 = signed_in(&server, "1").await;
    let mut other = signed_in(&server, "2").await;
    let mut anonymous = server.client().await;
    // pusher-js subscribes to its inbox after signin; that must not double deliveries.
    c1.subscribe("#server-to-user-1").await;
    c1.expect_succeeded("#server-to-user-1").await;
    let response = server
        .api()
        .trigger(json!({"name": "hello", "channels": ["#server-to-user-1"], "data": "x"}))
        .await;
    assert_eq!((response.status, response.body.as_str()), (200, "{}"));
    let want = r##"{"event":"hello","channel":"#server-to-user-1","data":"x"}"##;
    assert_eq!(c1.recv_text().await, want);
    assert_eq!(c2.recv_text().await, want);
    c1.expect_no_frame(QUIET).await;
    c2.expect_no_frame(Duration::ZERO).await;
    other.expect_no_frame(Duration::ZERO).await;
    anonymous.expect_no_frame(Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_of_someone_else_is_refused() {
    let server = Setup::new().start().await;
    let mut anonymous = server.client().await;
    anonymous.subscribe("#server-to-user-1").await;
    anonymous.expect_error_code(None).await;
    let mut c = signed_in(&server, "2").await;
    c.subscribe("#server-to-user-1").await;
    c.expect_error_code(None).await;
    server.api().publish("#server-to-user-1", "e", "x").await;
    c.expect_no_frame(QUIET).await;
    anonymous.expect_no_frame(Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_connections_closes_signed_in_connections_only() {
    let server = Setup::new().start().await;
    let api = server.api();
    let mut c1 = signed_in(&server, "1").await;
    let mut c2 = signed_in(&server, "1").await;
    let mut member_only = server.client().await;
    member_only
        .join_presence("presence-r", r#"{"user_id":"1"}"#)
        .await;
    let mut other = signed_in(&server, "2").await;
    let response = api
        .post(&api.path("/users/1/terminate_connections"), "{}")
        .await;
    assert_eq!((response.status, response.body.as_str()), (200, "{}"));
    c1.expect_error_and_close(4009, None).await;
    c2.expect_error_and_close(4009, None).await;
    member_only.ping_pong().await;
    other.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_connections_short_python_path() {
    let server = Setup::new().start().await;
    let api = server.api();
    let mut c = signed_in(&server, "u-7").await;
    let mut bystander = signed_in(&server, "u-8").await;
    let response = api
        .request(
            "POST",
            "/users/u-7/terminate_connections",
            &[],
            "{}",
            &Signing::default(),
        )
        .await;
    assert_eq!((response.status, response.body.as_str()), (200, "{}"));
    c.expect_error_and_close(4009, None).await;
    bystander.ping_pong().await;
    // Unknown users are fine too.
    let response = api
        .post(&api.path("/users/nobody/terminate_connections"), "{}")
        .await;
    assert_eq!((response.status, response.body.as_str()), (200, "{}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_message_and_presence_cleanup() {
    let server = Setup::new().start().await;
    let api = server.api();
    let mut watcher = server.client().await;
    watcher.signin(r#"{"id":"w","watchlist":["t"]}"#).await;
    watcher.recv_json().await; // initial status: t offline
    let mut other = server.client().await;
    other
        .join_presence("presence-t", r#"{"user_id":"o"}"#)
        .await;
    let mut target = signed_in(&server, "t").await;
    target
        .join_presence("presence-t", r#"{"user_id":"t"}"#)
        .await;
    assert_eq!(
        other.recv_json().await["event"],
        "pusher_internal:member_added"
    );
    watcher.recv_json().await; // t online
    let response = api
        .post(&api.path("/users/t/terminate_connections"), "{}")
        .await;
    assert_eq!(response.status, 200);
    target
        .expect_error_and_close(4009, Some("You got disconnected by the app."))
        .await;
    assert_eq!(
        other.recv_text().await,
        r#"{"event":"pusher_internal:member_removed","channel":"presence-t","data":"{\"user_id\":\"t\"}"}"#
    );
    let offline = watcher.recv_json().await;
    assert_eq!(offline["event"], "pusher_internal:watchlist_events");
    assert_eq!(
        offline["data"],
        r#"{"events":[{"name":"offline","user_ids":["t"]}]}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_to_user_respects_socket_id_exclusion() {
    let server = Setup::new().start().await;
    let mut c1 = signed_in(&server, "1").await;
    let mut c2 = signed_in(&server, "1").await;
    let body = json!({"name": "e", "channels": ["#server-to-user-1"], "data": "x", "socket_id": c1.socket_id});
    let response = server.api().trigger(body).await;
    assert_eq!((response.status, response.body.as_str()), (200, "{}"));
    assert_eq!(
        c2.recv_text().await,
        r##"{"event":"e","channel":"#server-to-user-1","data":"x"}"##
    );
    c1.expect_no_frame(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_user_data_is_refused() {
    let server = Setup::new().start().await;
    let mut c = server.client().await;
    for user_data in [
        r#"{"user_info":{}}"#,
        r#"{"id":""}"#,
        r#"{"id":5}"#,
        "not json",
        r#"{"id":"a b"}"#,
    ] {
        let auth = common::signin_auth(&c.socket_id, user_data);
        c.send_signin(&auth, user_data).await;
        let message = c.expect_error_code(None).await;
        assert!(!message.is_empty(), "{user_data}");
    }
    c.ping_pong().await;
    c.signin(r#"{"id":"ok"}"#).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_events_do_not_depend_on_the_inbox_subscription() {
    let server = Setup::new().start().await;
    let mut c = signed_in(&server, "1").await;
    c.subscribe("#server-to-user-1").await;
    c.expect_succeeded("#server-to-user-1").await;
    c.unsubscribe("#server-to-user-1").await;
    server
        .api()
        .publish("#server-to-user-1", "e", "still")
        .await;
    assert_eq!(
        c.recv_text().await,
        r##"{"event":"e","channel":"#server-to-user-1","data":"still"}"##
    );
    c.expect_no_frame(QUIET).await;
}

/// Review finding 6: every user id sign-in accepts (up to 200 characters) can get user events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_user_ids_receive_server_to_user_events() {
    let server = Setup::new().start().await;
    let id = "u".repeat(200);
    let mut c = signed_in(&server, &id).await;
    let inbox = format!("#server-to-user-{id}");
    c.subscribe(&inbox).await;
    c.expect_succeeded(&inbox).await;
    server.api().publish(&inbox, "e", "x").await;
    assert_eq!(
        c.recv_json().await,
        json!({"event": "e", "channel": inbox, "data": "x"})
    );
}

/// Terminating a connection while events stream to it: the events written before it, then
/// `pusher:error` 4009 and the close frame, and nothing after the close frame (whether a
/// broadcast is in flight at that moment is up to timing; the seal that keeps it out is tested
/// deterministically in `connection`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_during_a_storm_ends_with_the_close_frame() {
    let server = Setup::new().start().await;
    let mut client = server.client().await;
    client.signin(r#"{"id":"storm-user"}"#).await;
    client.join("storm").await;
    let api = server.api();
    let publisher = api.clone();
    let storm = tokio::spawn(async move {
        for i in 0..2000 {
            publisher.publish("storm", "e", &i.to_string()).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let terminated = api
        .post(&api.path("/users/storm-user/terminate_connections"), "{}")
        .await;
    assert_eq!(terminated.status, 200);
    loop {
        match client.next_frame(Duration::from_secs(10)).await {
            Some(Frame::Text(text)) => {
                let frame = common::json(&text);
                if frame["event"] == "pusher:error" {
                    assert_eq!(frame["data"]["code"], 4009, "{text}");
                    break;
                }
                assert_eq!(frame["event"], "e", "{text}");
            }
            other => panic!("expected events then pusher:error 4009, got {other:?}"),
        }
    }
    let (code, _) = client.expect_close().await;
    assert_eq!(code, Some(4009));
    match client.next_frame(Duration::from_millis(500)).await {
        None => {}
        Some(Frame::Ended(reason)) => {
            assert!(!reason.contains("after having closed"), "{reason}")
        }
        Some(other) => panic!("a frame after the close frame: {other:?}"),
    }
    storm.abort();
}
