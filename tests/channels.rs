//! Spec §2, §3.1–3.3: subscribing to each channel type, hosted error texts, names, unsubscribe.

mod common;

use std::time::Duration;

use common::{Setup, KEY};
use serde_json::json;

const QUIET: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_subscribe_and_receive_exact_frames() {
    let server = Setup::new().start().await;
    let mut client = server.client().await;
    client
        .send_text(r#"{"event":"pusher:subscribe","data":{"auth":"","channel":"my-channel"}}"#)
        .await;
    assert_eq!(
        client.recv_text().await,
        r#"{"event":"pusher_internal:subscription_succeeded","data":"{}","channel":"my-channel"}"#
    );
    // No auth field at all is fine on public channels too.
    client
        .send_text(r#"{"event":"pusher:subscribe","data":{"channel":"other"}}"#)
        .await;
    client.expect_succeeded("other").await;
    server
        .api()
        .publish("my-channel", "my-event", "{\"message\":\"hello\"}")
        .await;
    assert_eq!(
        client.recv_text().await,
        r#"{"event":"my-event","channel":"my-channel","data":"{\"message\":\"hello\"}"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_and_encrypted_subscribe_with_valid_auth() {
    let server = Setup::new().start().await;
    let mut client = server.client().await;
    client.join_private("private-foobar").await;
    client.join_private("private-encrypted-foo").await;
    let ciphertext = r#"{"nonce":"AAAA","ciphertext":"BBBB"}"#;
    server
        .api()
        .publish("private-encrypted-foo", "secret", ciphertext)
        .await;
    let frame = client.recv_json().await;
    assert_eq!(
        frame,
        json!({"event": "secret", "channel": "private-encrypted-foo", "data": ciphertext})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_subscribe_success_frame() {
    let server = Setup::new().start().await;
    let mut client = server.client().await;
    let data = r#"{"user_id":"1","user_info":{"name":"A"}}"#;
    let auth = common::presence_auth(&client.socket_id, "presence-room", data);
    client
        .subscribe_with(json!({"channel": "presence-room", "auth": auth, "channel_data": data}))
        .await;
    let frame = client.recv_json().await;
    let want = json!({
        "event": "pusher_internal:subscription_succeeded",
        "channel": "presence-room",
        "data": r#"{"presence":{"ids":["1"],"hash":{"1":{"name":"A"}},"count":1}}"#,
    });
    assert_eq!(frame, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_auth_errors_have_hosted_texts() {
    let server = Setup::new().start().await;
    let mut c = server.client().await;
    let sid = c.socket_id.clone();
    let ch = "private-a";
    let cases = [
        (json!({"channel": ch}), "Auth info required to subscribe to private-a".to_owned()),
        (json!({"channel": ch, "auth": ""}), "Auth info required to subscribe to private-a".to_owned()),
        (
            json!({"channel": ch, "auth": "nocolon"}),
            "Auth value for subscription to private-a is invalid: should be of format 'key:signature'".to_owned(),
        ),
        (json!({"channel": ch, "auth": "other:abc"}), "Invalid key in subscription auth data: 'other'".to_owned()),
        (
            json!({"channel": ch, "auth": format!("{KEY}:deadbeef")}),
            format!("Invalid signature: Expected HMAC SHA256 hex digest of {sid}:private-a, but got deadbeef"),
        ),
    ];
    for (data, message) in cases {
        c.subscribe_with(data).await;
        c.expect_error(None, &message).await;
    }
    // A signature made for another socket is refused too.
    let stolen = common::private_auth("1234.1234", ch);
    c.subscribe_with(json!({"channel": ch, "auth": stolen}))
        .await;
    let message = c.expect_error_code(None).await;
    assert!(
        message.starts_with("Invalid signature: Expected HMAC SHA256 hex digest of "),
        "{message}"
    );
    // Nothing was subscribed; the connection is still usable.
    server.api().publish(ch, "e", "x").await;
    c.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_auth_errors_have_hosted_texts() {
    let server = Setup::new().start().await;
    let mut c = server.client().await;
    let sid = c.socket_id.clone();
    let ch = "presence-room";
    let data = r#"{"user_id":"1"}"#;
    c.subscribe_with(json!({"channel": ch, "channel_data": data}))
        .await;
    c.expect_error(None, "Auth info required to subscribe to presence-room")
        .await;
    c.subscribe_with(json!({"channel": ch, "auth": format!("{KEY}:00ff"), "channel_data": data}))
        .await;
    let want = format!("Invalid signature: Expected HMAC SHA256 hex digest of {sid}:presence-room:{data}, but got 00ff");
    c.expect_error(None, &want).await;
    let bad_info = r#"{"user_id":"1","user_info":"a string"}"#;
    let auth = common::presence_auth(&sid, ch, bad_info);
    c.subscribe_with(json!({"channel": ch, "auth": auth, "channel_data": bad_info}))
        .await;
    c.expect_error(
        None,
        "user_info supplied to presence subscription is invalid - if supplied it must be a type of hash",
    )
    .await;
    c.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_channel_names_are_refused_and_connection_stays() {
    let server = Setup::new().start().await;
    let mut c = server.client().await;
    for name in [
        "has space",
        "#secret",
        "",
        "caf\u{e9}",
        "a:b",
        "#server-to-user-",
    ] {
        c.subscribe(name).await;
        let message = c.expect_error_code(None).await;
        assert!(!message.is_empty(), "{name:?}");
    }
    c.join("a_b-c=d@e,f.g;h").await;
    c.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_names_up_to_200_chars_are_accepted() {
    let server = Setup::new().start().await;
    let mut c = server.client().await;
    c.join(&"a".repeat(200)).await;
    c.subscribe(&"b".repeat(201)).await;
    c.expect_error_code(None).await;
    let long_private = format!("private-{}", "c".repeat(200 - 8));
    c.join_private(&long_private).await;
    c.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_subscription_is_refused() {
    let server = Setup::new().start().await;
    let mut c = server.client().await;
    c.join("dup").await;
    c.subscribe("dup").await;
    c.expect_error(None, "Existing subscription to channel dup")
        .await;
    c.join_private("private-dup").await;
    let auth = common::private_auth(&c.socket_id, "private-dup");
    c.subscribe_with(json!({"channel": "private-dup", "auth": auth}))
        .await;
    c.expect_error(None, "Existing subscription to channel private-dup")
        .await;
    // Still subscribed once: one event arrives once.
    server.api().publish("dup", "e", "1").await;
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"e","channel":"dup","data":"1"}"#
    );
    c.expect_no_frame(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_stops_events_and_is_silent() {
    let server = Setup::new().start().await;
    let mut c = server.client().await;
    c.join("news").await;
    c.unsubscribe("news").await;
    // Unsubscribing from a channel we are not in is ignored silently.
    c.unsubscribe("never-joined").await;
    c.expect_no_frame(QUIET).await;
    server.api().publish("news", "e", "x").await;
    c.expect_no_frame(QUIET).await;
    // And we may subscribe again.
    c.join("news").await;
    server.api().publish("news", "e", "y").await;
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"e","channel":"news","data":"y"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_data_as_a_string_is_accepted() {
    let server = Setup::new().start().await;
    let mut c = server.client().await;
    c.send_text(r#"{"event":"pusher:subscribe","data":"{\"channel\":\"strdata\"}"}"#)
        .await;
    c.expect_succeeded("strdata").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upper_case_signature_is_refused() {
    let server = Setup::new().start().await;
    let mut c = server.client().await;
    let auth = common::private_auth(&c.socket_id, "private-u")
        .to_uppercase()
        .replacen(&KEY.to_uppercase(), KEY, 1);
    c.subscribe_with(json!({"channel": "private-u", "auth": auth}))
        .await;
    let message = c.expect_error_code(None).await;
    assert!(message.starts_with("Invalid signature"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_name_limit_is_configurable() {
    let server = Setup::new()
        .server("channel_name_max_length", "164")
        .start()
        .await;
    let mut c = server.client().await;
    c.join(&"a".repeat(164)).await;
    c.subscribe(&"b".repeat(165)).await;
    c.expect_error_code(None).await;
    let response = server
        .api()
        .trigger(json!({"name": "e", "channels": ["c".repeat(165)], "data": "x"}))
        .await;
    assert_eq!(response.status, 400, "{}", response.body);
}

/// Spec §11 "channels per connection: configurable" (review #5): `max_channels_per_connection`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_per_connection_are_limited() {
    let server = Setup::new()
        .app("max_channels_per_connection", "3")
        .start()
        .await;
    let mut c = server.client().await;
    for channel in ["a", "b", "c"] {
        c.join(channel).await;
    }
    c.subscribe("d").await;
    c.expect_error_code(None).await;
    server.api().publish("d", "e", "x").await;
    c.expect_no_frame(QUIET).await;
    c.unsubscribe("a").await;
    c.join("d").await;
    c.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_limit_is_1000_channels_per_connection() {
    let server = Setup::new().start().await;
    let mut c = server.client().await;
    for i in 0..1001 {
        c.subscribe(&format!("many-{i}")).await;
    }
    for i in 0..1000 {
        c.expect_succeeded(&format!("many-{i}")).await;
    }
    c.expect_error_code(None).await;
    c.ping_pong().await;
}
