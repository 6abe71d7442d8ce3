//! Spec §9: real webhook deliveries to a local receiver — body, headers, signature, each event
//! kind, the vacated grace period and retries.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Hook, Receiver, Setup, KEY, SECRET};
use serde_json::json;
use tokio::time::Instant;

const QUIET: Duration = Duration::from_millis(600);

fn check_envelope(hook: &Hook) {
    assert_eq!(hook.method, "POST");
    assert_eq!(hook.path, "/pusher/webhooks");
    assert_eq!(
        hook.header("content-type"),
        Some("application/json"),
        "exactly application/json"
    );
    assert_eq!(hook.header("x-pusher-key"), Some(KEY));
    let signature = herald::auth::sign(SECRET, &hook.body);
    assert_eq!(
        hook.header("x-pusher-signature"),
        Some(signature.as_str()),
        "HMAC of the raw body"
    );
    let body = hook.json();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let time_ms = body["time_ms"].as_i64().expect("time_ms integer");
    assert!(
        (now - time_ms).abs() < 10_000,
        "time_ms {time_ms} is the creation time (now {now})"
    );
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(2),
        "only time_ms and events: {body}"
    );
}

async fn next_checked(receiver: &mut Receiver) -> serde_json::Value {
    let hook = receiver.next().await;
    assert_eq!(hook.answered, 200);
    check_envelope(&hook);
    let events = hook.events();
    assert_eq!(
        events.len(),
        1,
        "one event per unbatched webhook: {events:?}"
    );
    events[0].clone()
}

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
        next_checked(&mut receiver).await,
        json!({"name": "channel_occupied", "channel": "hooked"})
    );
    let left = Instant::now();
    c.unsubscribe("hooked").await;
    assert_eq!(
        next_checked(&mut receiver).await,
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
async fn quick_return_drops_vacated_and_second_occupied() {
    let mut receiver = Receiver::start(0).await;
    let server = Setup::new()
        .webhooks("vacated_delay", "\"1s\"")
        .hook(
            &receiver.url,
            &["channel_occupied", "channel_vacated"],
            false,
        )
        .start()
        .await;
    let mut c = server.client().await;
    c.join("flappy").await;
    assert_eq!(
        receiver.next_event().await,
        json!({"name": "channel_occupied", "channel": "flappy"})
    );
    c.close().await;
    let mut again = server.client().await;
    again.join("flappy").await;
    receiver.expect_none(Duration::from_millis(1500)).await;
    again.unsubscribe("flappy").await;
    assert_eq!(
        receiver.next_event().await,
        json!({"name": "channel_vacated", "channel": "flappy"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_added_once_and_removed_after_last() {
    let mut receiver = Receiver::start(0).await;
    let server = Setup::new()
        .hook(&receiver.url, &["member_added", "member_removed"], false)
        .start()
        .await;
    let mut c1 = server.client().await;
    c1.join_presence("presence-h", r#"{"user_id":7}"#).await;
    let want = json!({"name": "member_added", "channel": "presence-h", "user_id": "7"});
    assert_eq!(next_checked(&mut receiver).await, want);
    let mut c2 = server.client().await;
    c2.join_presence("presence-h", r#"{"user_id":7}"#).await;
    receiver.expect_none(QUIET).await;
    c1.unsubscribe("presence-h").await;
    receiver.expect_none(QUIET).await;
    c2.unsubscribe("presence-h").await;
    let want = json!({"name": "member_removed", "channel": "presence-h", "user_id": "7"});
    assert_eq!(next_checked(&mut receiver).await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_event_webhooks() {
    let mut receiver = Receiver::start(0).await;
    let server = Setup::new()
        .hook(&receiver.url, &["client_event"], false)
        .start()
        .await;
    let mut a = server.client().await;
    a.join_private("private-h").await;
    a.trigger("private-h", "client-typing", json!({"who": "me"}))
        .await;
    let want = json!({
        "name": "client_event", "channel": "private-h", "event": "client-typing",
        "data": "{\"who\":\"me\"}", "socket_id": a.socket_id,
    });
    assert_eq!(next_checked(&mut receiver).await, want);
    a.join_presence("presence-h", r#"{"user_id":"u1"}"#).await;
    a.trigger("presence-h", "client-hi", json!("text")).await;
    let want = json!({
        "name": "client_event", "channel": "presence-h", "event": "client-hi",
        "data": "text", "socket_id": a.socket_id, "user_id": "u1",
    });
    assert_eq!(next_checked(&mut receiver).await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_miss_is_deduplicated() {
    let mut receiver = Receiver::start(0).await;
    let server = Setup::new()
        .hook(&receiver.url, &["cache_miss"], false)
        .start()
        .await;
    let mut a = server.client().await;
    a.join("cache-h").await;
    assert_eq!(
        next_checked(&mut receiver).await,
        json!({"name": "cache_miss", "channel": "cache-h"})
    );
    let mut b = server.client().await;
    b.join("cache-h").await;
    receiver.expect_none(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_count_webhook() {
    let mut receiver = Receiver::start(0).await;
    let server = Setup::new()
        .app("subscription_count", "true")
        .hook(&receiver.url, &["subscription_count"], false)
        .start()
        .await;
    let mut a = server.client().await;
    a.join("sc").await;
    let want = json!({"name": "subscription_count", "channel": "sc", "subscription_count": 1});
    assert_eq!(next_checked(&mut receiver).await, want);
    let mut b = server.client().await;
    b.join("sc").await;
    let want = json!({"name": "subscription_count", "channel": "sc", "subscription_count": 2});
    assert_eq!(next_checked(&mut receiver).await, want);
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
    check_envelope(&second);
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
        check_envelope(&hook);
        for event in hook.events() {
            names.push(event["channel"].as_str().expect("channel").to_owned());
        }
    }
    names.sort();
    assert_eq!(names, ["b1", "b2", "b3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_to_user_inbox_makes_no_occupied_webhook() {
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
    c.signin(r#"{"id":"1"}"#).await;
    c.subscribe("#server-to-user-1").await;
    c.expect_succeeded("#server-to-user-1").await;
    c.close().await;
    receiver.expect_none(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abrupt_disconnect_vacates_after_the_delay() {
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
    c.join("dropped").await;
    assert_eq!(
        receiver.next_event().await,
        json!({"name": "channel_occupied", "channel": "dropped"})
    );
    drop(c);
    assert_eq!(
        receiver.next_event().await,
        json!({"name": "channel_vacated", "channel": "dropped"})
    );
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
async fn member_returning_in_time_sends_nothing() {
    let mut receiver = Receiver::start(0).await;
    let server = Setup::new()
        .webhooks("vacated_delay", "\"1s\"")
        .hook(&receiver.url, &["member_added", "member_removed"], false)
        .start()
        .await;
    let mut c = server.client().await;
    c.join_presence("presence-back", r#"{"user_id":"r"}"#).await;
    let want = json!({"name": "member_added", "channel": "presence-back", "user_id": "r"});
    assert_eq!(receiver.next_event().await, want);
    c.close().await;
    let mut again = server.client().await;
    again
        .join_presence("presence-back", r#"{"user_id":"r"}"#)
        .await;
    receiver.expect_none(Duration::from_millis(1500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_client_events_make_no_webhook() {
    let mut receiver = Receiver::start(0).await;
    let server = Setup::new()
        .hook(&receiver.url, &["client_event"], false)
        .start()
        .await;
    let mut a = server.client().await;
    a.join_private("private-rl").await;
    a.join("public-rl").await;
    a.trigger("public-rl", "client-x", json!({})).await;
    for i in 0..11 {
        a.trigger("private-rl", "client-n", json!(i.to_string()))
            .await;
    }
    // Delivery order across webhooks is not guaranteed (§9.2): compare as a set.
    let mut got = Vec::new();
    for _ in 0..10 {
        got.push(
            receiver.next_event().await["data"]
                .as_str()
                .expect("data")
                .parse::<u32>()
                .expect("n"),
        );
    }
    got.sort();
    assert_eq!(got, (0..10).collect::<Vec<u32>>());
    receiver.expect_none(QUIET).await;
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
    assert_eq!(next_checked(&mut first).await, occupied);
    assert_eq!(next_checked(&mut second).await, occupied);
    c.unsubscribe("both").await;
    let vacated = json!({"name": "channel_vacated", "channel": "both"});
    assert_eq!(next_checked(&mut second).await, vacated);
    first.expect_none(QUIET).await;
}
