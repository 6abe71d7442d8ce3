//! Spec §9.1: real webhook deliveries to a local receiver — body, headers, signature,
//! retries, batching, several endpoints and apps, per-endpoint event filters.

mod common;

use std::time::Duration;

use common::{Receiver, Setup};
use serde_json::json;
use tokio::time::Instant;

const QUIET: Duration = Duration::from_millis(600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn occupied_then_vacated_after_the_delay() {
    let mut receiver = Receiver::start(0).await;
    let server = Setup::new()
        .hook(
            &receiver.url,
            &["channel_occupied", "channel_vacated"],
            false,
        )
        .start()
        .await;
    let mut c = server.client().await;
    c.join("hooked").await;
    assert_eq!(
        receiver.next_checked().await,
        json!({"name": "channel_occupied", "channel": "hooked"})
    );
    let left = Instant::now();
    c.unsubscribe("hooked").await;
    assert_eq!(
        receiver.next_checked().await,
        json!({"name": "channel_vacated", "channel": "hooked"})
    );
    assert!(
        left.elapsed() >= Duration::from_millis(250),
        "held for vacated_delay: {:?}",
        left.elapsed()
    );
    receiver.expect_none(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_endpoint_is_retried_with_the_same_body() {
    let mut receiver = Receiver::start(1).await;
    let server = Setup::new()
        .hook(&receiver.url, &["channel_occupied"], false)
        .start()
        .await;
    let mut c = server.client().await;
    c.join("retry-me").await;
    let first = receiver.next().await;
    assert_eq!(first.answered, 500);
    let second = receiver
        .next_within(Duration::from_secs(5))
        .await
        .expect("retried within 5 s");
    assert_eq!(second.answered, 200);
    assert_eq!(
        second.body, first.body,
        "a retry resends the same signed body"
    );
    second.check_envelope();
    assert_eq!(
        second.events(),
        vec![json!({"name": "channel_occupied", "channel": "retry-me"})]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_configured_event_kinds_are_sent() {
    let mut receiver = Receiver::start(0).await;
    let server = Setup::new()
        .hook(&receiver.url, &["member_added"], false)
        .start()
        .await;
    let mut c = server.client().await;
    c.join("plain").await;
    c.join("cache-y").await;
    c.recv_json().await;
    c.join_private("private-z").await;
    c.trigger("private-z", "client-x", json!({})).await;
    receiver.expect_none(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_endpoint_gets_several_events_per_request() {
    let mut receiver = Receiver::start(0).await;
    let server = Setup::new()
        .hook(&receiver.url, &["channel_occupied"], true)
        .start()
        .await;
    let mut c = server.client().await;
    for name in ["b1", "b2", "b3"] {
        c.join(name).await;
    }
    let mut names = Vec::new();
    while names.len() < 3 {
        let hook = receiver.next().await;
        hook.check_envelope();
        for event in hook.events() {
            names.push(event["channel"].as_str().expect("channel").to_owned());
        }
    }
    names.sort();
    assert_eq!(names, ["b1", "b2", "b3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_app_signs_with_its_own_key_and_secret() {
    let mut receiver = Receiver::start(0).await;
    let other_app = format!(
        "id = \"two-id\"\nkey = \"two-key\"\nsecret = \"two-secret\"\n[[apps.webhooks]]\nurl = \"{}\"\nevents = [\"channel_occupied\"]",
        receiver.url
    );
    let server = Setup::new().extra_app(&other_app).start().await;
    let mut c = common::Client::connect(&server, "two-key", "protocol=7").await;
    c.established().await;
    c.join("two-channel").await;
    let hook = receiver.next().await;
    assert_eq!(hook.header("x-pusher-key"), Some("two-key"));
    let signature = herald::auth::sign("two-secret", &hook.body);
    assert_eq!(hook.header("x-pusher-signature"), Some(signature.as_str()));
    assert_eq!(
        hook.events(),
        vec![json!({"name": "channel_occupied", "channel": "two-channel"})]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_configured_endpoint_gets_its_events() {
    let mut first = Receiver::start(0).await;
    let mut second = Receiver::start(0).await;
    let server = Setup::new()
        .hook(&first.url, &["channel_occupied"], false)
        .hook(&second.url, &["channel_occupied", "channel_vacated"], false)
        .start()
        .await;
    let mut c = server.client().await;
    c.join("both").await;
    let occupied = json!({"name": "channel_occupied", "channel": "both"});
    assert_eq!(first.next_checked().await, occupied);
    assert_eq!(second.next_checked().await, occupied);
    c.unsubscribe("both").await;
    let vacated = json!({"name": "channel_vacated", "channel": "both"});
    assert_eq!(second.next_checked().await, vacated);
    first.expect_none(QUIET).await;
}

/// Review finding 2: one app's unreachable endpoint must not hold up another app's webhooks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_does_not_delay_other_apps() {
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}/gone", listener.local_addr().expect("addr"))
    };
    let mut receiver = Receiver::start(0).await;
    let other_app = format!(
        "id = \"two-id\"\nkey = \"two-key\"\nsecret = \"two-secret\"\n[[apps.webhooks]]\nurl = \"{}\"\nevents = [\"channel_occupied\"]",
        receiver.url
    );
    let server = Setup::new()
        .webhooks("retry_for", "\"60s\"")
        .hook(&dead, &["channel_occupied"], false)
        .extra_app(&other_app)
        .start()
        .await;
    let mut flood = server.client().await;
    for i in 0..70 {
        flood.join(&format!("room-{i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut c = common::Client::connect(&server, "two-key", "protocol=7").await;
    c.established().await;
    c.join("unaffected").await;
    let hook = receiver.next().await;
    assert_eq!(
        hook.events(),
        vec![json!({"name": "channel_occupied", "channel": "unaffected"})]
    );
}

/// Review finding 9 / spec §9.1: the body is `{"time_ms":…,"events":[{"name":…,"channel":…}]}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_has_the_documented_key_order() {
    let hook = first_occupied_hook("ordered").await;
    let time_ms = hook.json()["time_ms"].as_u64().expect("time_ms");
    let want = format!(
        r#"{{"time_ms":{time_ms},"events":[{{"name":"channel_occupied","channel":"ordered"}}]}}"#
    );
    assert_eq!(String::from_utf8_lossy(&hook.body), want);
}

/// Hardening #4: hosted Pusher's header casing, byte for byte. The official PHP library's
/// `webhook()` looks `X-Pusher-Key` and `X-Pusher-Signature` up by these exact names in what
/// PHP's `getallheaders()` returns, which keeps the casing that was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_sent_in_hosted_pushers_casing() {
    let hook = first_occupied_hook("cased").await;
    let signature = herald::auth::sign("test-secret", &hook.body);
    for line in [
        "Content-Type: application/json".to_owned(),
        "X-Pusher-Key: test-key".to_owned(),
        format!("X-Pusher-Signature: {signature}"),
    ] {
        assert!(
            hook.head.split("\r\n").any(|l| l == line),
            "no line {line:?} in\n{}",
            hook.head
        );
    }
}

/// The `channel_occupied` webhook request a server sends when a client joins `channel`.
async fn first_occupied_hook(channel: &str) -> common::Hook {
    let mut receiver = Receiver::start(0).await;
    let server = Setup::new()
        .hook(&receiver.url, &["channel_occupied"], false)
        .start()
        .await;
    let mut c = server.client().await;
    c.join(channel).await;
    receiver.next().await
}
