//! Spec §9.2: each webhook event kind and when it is (not) sent, including the vacated /
//! member_removed grace period.

mod common;

use std::time::Duration;

use common::{Receiver, Setup};
use serde_json::json;

const QUIET: Duration = Duration::from_millis(600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_return_drops_vacated_and_second_occupied() {
    let mut receiver = Receiver::start(0).await;
    let server = Setup::new()
        .webhooks("vacated_delay", "\"700ms\"")
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
    receiver.expect_none(Duration::from_millis(1100)).await;
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
    assert_eq!(receiver.next_checked().await, want);
    let mut c2 = server.client().await;
    c2.join_presence("presence-h", r#"{"user_id":7}"#).await;
    receiver.expect_none(QUIET).await;
    c1.unsubscribe("presence-h").await;
    receiver.expect_none(QUIET).await;
    c2.unsubscribe("presence-h").await;
    let want = json!({"name": "member_removed", "channel": "presence-h", "user_id": "7"});
    assert_eq!(receiver.next_checked().await, want);
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
    assert_eq!(receiver.next_checked().await, want);
    a.join_presence("presence-h", r#"{"user_id":"u1"}"#).await;
    a.trigger("presence-h", "client-hi", json!("text")).await;
    let want = json!({
        "name": "client_event", "channel": "presence-h", "event": "client-hi",
        "data": "text", "socket_id": a.socket_id, "user_id": "u1",
    });
    assert_eq!(receiver.next_checked().await, want);
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
        receiver.next_checked().await,
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
    assert_eq!(receiver.next_checked().await, want);
    let mut b = server.client().await;
    b.join("sc").await;
    let want = json!({"name": "subscription_count", "channel": "sc", "subscription_count": 2});
    assert_eq!(receiver.next_checked().await, want);
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
async fn member_returning_in_time_sends_nothing() {
    let mut receiver = Receiver::start(0).await;
    let server = Setup::new()
        .webhooks("vacated_delay", "\"700ms\"")
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
    receiver.expect_none(Duration::from_millis(1100)).await;
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
    // A primer and a pause put the burst below in one rate-limit window.
    a.trigger("private-rl", "client-n", json!("100")).await;
    assert_eq!(receiver.next_event().await["data"], "100");
    tokio::time::sleep(Duration::from_millis(1100)).await;
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
async fn publishing_to_an_empty_cache_channel_occupies_nothing() {
    let mut receiver = Receiver::start(0).await;
    let server = Setup::new()
        .hook(
            &receiver.url,
            &["channel_occupied", "channel_vacated"],
            false,
        )
        .start()
        .await;
    server.api().publish("cache-q", "e", "d").await;
    receiver.expect_none(QUIET).await;
    let mut c = server.client().await;
    c.join("cache-q").await;
    assert_eq!(
        receiver.next_checked().await,
        json!({"name": "channel_occupied", "channel": "cache-q"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_subscription_count_webhook_for_presence() {
    let mut receiver = Receiver::start(0).await;
    let server = Setup::new()
        .app("subscription_count", "true")
        .hook(&receiver.url, &["subscription_count"], false)
        .start()
        .await;
    let mut c = server.client().await;
    c.join_presence("presence-nc", r#"{"user_id":"1"}"#).await;
    c.unsubscribe("presence-nc").await;
    receiver.expect_none(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_subscribers_make_one_occupied_and_one_vacated() {
    let mut receiver = Receiver::start(0).await;
    let server = std::sync::Arc::new(
        Setup::new()
            .hook(
                &receiver.url,
                &["channel_occupied", "channel_vacated"],
                false,
            )
            .start()
            .await,
    );
    let joins: Vec<_> = (0..20)
        .map(|_| {
            let server = server.clone();
            tokio::spawn(async move {
                let mut c = server.client().await;
                c.join("crowd").await;
                c
            })
        })
        .collect();
    let mut clients = Vec::new();
    for join in joins {
        clients.push(join.await.expect("join"));
    }
    assert_eq!(
        receiver.next_event().await,
        json!({"name": "channel_occupied", "channel": "crowd"})
    );
    receiver.expect_none(QUIET).await;
    let closes: Vec<_> = clients
        .into_iter()
        .map(|c| tokio::spawn(c.close()))
        .collect();
    for close in closes {
        close.await.expect("close");
    }
    assert_eq!(
        receiver.next_event().await,
        json!({"name": "channel_vacated", "channel": "crowd"})
    );
    receiver.expect_none(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_miss_is_reported_again_after_the_cache_expired() {
    let mut receiver = Receiver::start(0).await;
    let server = Setup::new()
        .app("cache_ttl", "\"1s\"")
        .hook(&receiver.url, &["cache_miss"], false)
        .start()
        .await;
    let miss = json!({"name": "cache_miss", "channel": "cache-again"});
    let mut a = server.client().await;
    a.join("cache-again").await;
    assert_eq!(receiver.next_event().await, miss);
    server.api().publish("cache-again", "e", "d").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut b = server.client().await;
    b.join("cache-again").await;
    assert_eq!(b.recv_json().await["event"], "pusher:cache_miss");
    assert_eq!(receiver.next_event().await, miss);
}

/// Review finding 1 / spec §9.2: a quick return sends no webhooks, whatever event kinds an
/// endpoint asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_applies_to_endpoints_wanting_only_one_side_of_a_pair() {
    let mut vacated_only = Receiver::start(0).await;
    let mut added_only = Receiver::start(0).await;
    let server = Setup::new()
        .webhooks("vacated_delay", "\"700ms\"")
        .hook(&vacated_only.url, &["channel_vacated"], false)
        .hook(&added_only.url, &["member_added"], false)
        .start()
        .await;
    let mut c = server.client().await;
    c.join("room-1").await;
    c.join_presence("presence-r", r#"{"user_id":"u1"}"#).await;
    let added = json!({"name": "member_added", "channel": "presence-r", "user_id": "u1"});
    assert_eq!(added_only.next_event().await, added);
    c.close().await;
    let mut again = server.client().await;
    again.join("room-1").await;
    again
        .join_presence("presence-r", r#"{"user_id":"u1"}"#)
        .await;
    vacated_only.expect_none(Duration::from_millis(1200)).await;
    added_only.expect_none(Duration::ZERO).await;
}
