//! Spec §10 (cache channels) and §6.1 (subscription_count).

mod common;

use std::time::Duration;

use common::Setup;
use serde_json::json;

const QUIET: Duration = Duration::from_millis(300);

fn miss(channel: &str) -> String {
    format!(r#"{{"event":"pusher:cache_miss","channel":"{channel}","data":"{{}}"}}"#)
}

fn count(channel: &str, n: usize) -> String {
    format!(
        r#"{{"event":"pusher_internal:subscription_count","channel":"{channel}","data":"{{\"subscription_count\":{n}}}"}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_event_follows_subscription_succeeded() {
    let server = Setup::new().start().await;
    server.api().publish("cache-x", "first", "1").await;
    server.api().publish("cache-x", "last", "{\"n\":2}").await;
    let mut c = server.client().await;
    c.join("cache-x").await;
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"last","channel":"cache-x","data":"{\"n\":2}"}"#
    );
    c.expect_no_frame(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_miss_when_nothing_cached() {
    let server = Setup::new().start().await;
    let mut c = server.client().await;
    c.join("cache-empty").await;
    assert_eq!(c.recv_text().await, miss("cache-empty"));
    c.expect_no_frame(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_and_presence_cache_variants() {
    let server = Setup::new().start().await;
    server.api().publish("private-cache-a", "e", "p").await;
    server.api().publish("presence-cache-b", "e", "q").await;
    server
        .api()
        .publish("private-encrypted-cache-c", "e", "r")
        .await;
    let mut c = server.client().await;
    c.join_private("private-cache-a").await;
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"e","channel":"private-cache-a","data":"p"}"#
    );
    c.join_presence("presence-cache-b", r#"{"user_id":"1"}"#)
        .await;
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"e","channel":"presence-cache-b","data":"q"}"#
    );
    c.join_private("private-encrypted-cache-c").await;
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"e","channel":"private-encrypted-cache-c","data":"r"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_is_anchored() {
    let server = Setup::new().start().await;
    server.api().publish("my-cache-x", "e", "x").await;
    let mut c = server.client().await;
    c.join("my-cache-x").await;
    c.expect_no_frame(QUIET).await;
    let api = server.api();
    let response = api
        .get(&api.path("/channels/my-cache-x"), &[("info", "cache")])
        .await;
    assert_eq!(
        response.status, 400,
        "cache info on a non-cache channel: {}",
        response.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_events_are_not_cached() {
    let server = Setup::new().start().await;
    let mut a = server.client().await;
    a.join_private("private-cache-chat").await;
    assert_eq!(a.recv_text().await, miss("private-cache-chat"));
    a.trigger("private-cache-chat", "client-x", json!({"a": 1}))
        .await;
    let mut b = server.client().await;
    b.join_private("private-cache-chat").await;
    assert_eq!(b.recv_text().await, miss("private-cache-chat"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_info_cache_attribute() {
    let server = Setup::new().start().await;
    let api = server.api();
    let empty = api
        .get(&api.path("/channels/cache-i"), &[("info", "cache")])
        .await;
    assert_eq!(empty.ok(), json!({"occupied": false, "cache": null}));
    api.publish("cache-i", "e", "d").await;
    let shown = api
        .get(&api.path("/channels/cache-i"), &[("info", "cache")])
        .await
        .ok();
    let ttl = shown["cache"]["ttl"].as_u64().expect("ttl in seconds");
    assert!((1790..=1800).contains(&ttl), "ttl {ttl} of a 30 min cache");
    assert_eq!(
        shown,
        json!({"occupied": false, "cache": {"event": "e", "data": "d", "ttl": ttl}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_expires_after_ttl() {
    let server = Setup::new().app("cache_ttl", "\"1s\"").start().await;
    server.api().publish("cache-t", "e", "d").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut c = server.client().await;
    c.join("cache-t").await;
    assert_eq!(c.recv_text().await, miss("cache-t"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_count_on_subscribe_and_unsubscribe() {
    let server = Setup::new().app("subscription_count", "true").start().await;
    let mut a = server.client().await;
    a.join("counted").await;
    assert_eq!(a.recv_text().await, count("counted", 1));
    let mut b = server.client().await;
    b.join("counted").await;
    assert_eq!(a.recv_text().await, count("counted", 2));
    assert_eq!(b.recv_text().await, count("counted", 2));
    b.unsubscribe("counted").await;
    assert_eq!(a.recv_text().await, count("counted", 1));
    b.expect_no_frame(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_count_never_for_presence() {
    let server = Setup::new().app("subscription_count", "true").start().await;
    let mut a = server.client().await;
    a.join_presence("presence-c", r#"{"user_id":"1"}"#).await;
    a.expect_no_frame(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_count_is_opt_in() {
    let server = Setup::new().start().await;
    let mut a = server.client().await;
    a.join("counted").await;
    let mut b = server.client().await;
    b.join("counted").await;
    a.expect_no_frame(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excluded_and_batched_events_are_cached() {
    let server = Setup::new().start().await;
    let mut a = server.client().await;
    a.join("cache-ex").await;
    assert_eq!(a.recv_text().await, miss("cache-ex"));
    let body =
        json!({"name": "e", "channels": ["cache-ex"], "data": "kept", "socket_id": a.socket_id});
    assert_eq!(server.api().trigger(body).await.status, 200);
    a.expect_no_frame(QUIET).await;
    let mut b = server.client().await;
    b.join("cache-ex").await;
    assert_eq!(
        b.recv_text().await,
        r#"{"event":"e","channel":"cache-ex","data":"kept"}"#
    );
    let batch = json!({"batch": [{"channel": "cache-bt", "name": "b", "data": "batched"}]});
    assert_eq!(server.api().batch(batch).await.status, 200);
    b.join("cache-bt").await;
    assert_eq!(
        b.recv_text().await,
        r#"{"event":"b","channel":"cache-bt","data":"batched"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_count_is_throttled_above_100_subscribers() {
    let server = Setup::new().app("subscription_count", "true").start().await;
    let mut observer = server.client().await;
    observer.join("busy").await;
    assert_eq!(observer.recv_text().await, count("busy", 1));
    let mut others = Vec::new();
    for _ in 0..101 {
        let mut c = server.client().await;
        c.join("busy").await;
        others.push(c);
    }
    for n in 2..=100 {
        assert_eq!(observer.recv_text().await, count("busy", n));
    }
    // 101 and 102 come within 5 s of the last count: held back, then the latest one arrives.
    observer.expect_no_frame(Duration::from_secs(4)).await;
    let last = observer.recv_json_within(Duration::from_secs(3)).await;
    assert_eq!(
        last.to_string(),
        common::json(&count("busy", 102)).to_string()
    );
}
