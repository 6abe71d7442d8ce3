//! Spec §7.2: `POST /events` and `POST /batch_events` — limits, validation, exclusion, `info`.

mod common;

use std::time::Duration;

use common::{Client, Server, Setup};
use serde_json::json;

const QUIET: Duration = Duration::from_millis(300);

async fn listener(server: &Server, channel: &str) -> Client {
    let mut c = server.client().await;
    c.join(channel).await;
    c
}

fn event(channel: &str, data: &str) -> serde_json::Value {
    json!({"name": "e", "channels": [channel], "data": data})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_answers_empty_object_and_delivers_verbatim() {
    let server = Setup::new().start().await;
    let mut c = listener(&server, "a").await;
    let response = server
        .api()
        .trigger(json!({"name": "App\\Events\\Shipped", "channels": ["a"], "data": "not json"}))
        .await;
    assert_eq!((response.status, response.body.as_str()), (200, "{}"));
    assert!(
        response.content_type.starts_with("application/json"),
        "{}",
        response.content_type
    );
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"App\\Events\\Shipped","channel":"a","data":"not json"}"#
    );
    // Empty data is accepted too.
    server.api().publish("a", "e", "").await;
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"e","channel":"a","data":""}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_over_10240_bytes_is_413() {
    let server = Setup::new().start().await;
    let mut c = listener(&server, "a").await;
    let response = server.api().trigger(event("a", &"x".repeat(10241))).await;
    assert_eq!(response.status, 413, "{}", response.body);
    assert!(
        response.body.starts_with(
            "The data content of this event exceeds the allowed maximum (10240 bytes)"
        ),
        "{}",
        response.body
    );
    c.expect_no_frame(QUIET).await;
    let response = server.api().trigger(event("a", &"x".repeat(10240))).await;
    assert_eq!(response.status, 200, "{}", response.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_100_channels_is_400() {
    let server = Setup::new().start().await;
    let mut c = listener(&server, "ch-0").await;
    let names: Vec<String> = (0..101).map(|i| format!("ch-{i}")).collect();
    let response = server
        .api()
        .trigger(json!({"name": "e", "channels": names, "data": "x"}))
        .await;
    assert_eq!(response.status, 400, "{}", response.body);
    c.expect_no_frame(QUIET).await;
    let response = server
        .api()
        .trigger(json!({"name": "e", "channels": &names[..100], "data": "x"}))
        .await;
    assert_eq!((response.status, response.body.as_str()), (200, "{}"));
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"e","channel":"ch-0","data":"x"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_requests_are_400_and_publish_nothing() {
    let server = Setup::new().start().await;
    let mut c = listener(&server, "a").await;
    let cases = [
        json!({"name": "e".repeat(201), "channels": ["a"], "data": "x"}),
        json!({"name": "e", "channels": ["a", "b".repeat(201)], "data": "x"}),
        json!({"name": "pusher:fake", "channels": ["a"], "data": "x"}),
        json!({"name": "pusher_internal:member_added", "channels": ["a"], "data": "x"}),
        json!({"name": "e", "channels": ["a", "bad name"], "data": "x"}),
        json!({"name": "e", "channels": ["#other"], "data": "x"}),
        json!({"name": "e", "channels": ["a"], "data": "x", "socket_id": "undefined"}),
        json!({"name": "e", "channels": ["a"], "data": "x", "socket_id": "1.2.3"}),
        json!({"name": "e", "channels": ["a"], "data": "x", "socket_id": "123"}),
        json!({"name": "e", "channels": ["a", "private-encrypted-x"], "data": "x"}),
        json!({"channels": ["a"], "data": "x"}),
        json!({"name": "e", "data": "x"}),
        json!({"name": "e", "channels": ["a"]}),
        json!({"name": "e", "channels": [], "data": "x"}),
        json!({"name": "e", "channels": ["a"], "data": {"not": "a string"}}),
    ];
    for body in cases {
        let response = server.api().trigger(body.clone()).await;
        assert_eq!(response.status, 400, "{body}: {}", response.body);
        assert!(!response.body.trim().is_empty(), "{body}");
    }
    let response = server
        .api()
        .post(&server.api().path("/events"), "{not json")
        .await;
    assert_eq!(response.status, 400, "{}", response.body);
    c.expect_no_frame(QUIET).await;
    // An encrypted channel alone is fine.
    let response = server
        .api()
        .trigger(event("private-encrypted-x", "{}"))
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_id_is_excluded() {
    let server = Setup::new().start().await;
    let mut a = listener(&server, "room").await;
    let mut b = listener(&server, "room").await;
    let body = json!({"name": "e", "channels": ["room"], "data": "x", "socket_id": a.socket_id});
    let response = server.api().trigger(body).await;
    assert_eq!((response.status, response.body.as_str()), (200, "{}"));
    assert_eq!(
        b.recv_text().await,
        r#"{"event":"e","channel":"room","data":"x"}"#
    );
    a.expect_no_frame(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_on_events_reports_counts_per_channel() {
    let server = Setup::new().app("subscription_count", "true").start().await;
    let mut p = server.client().await;
    p.join_presence("presence-x", r#"{"user_id":"1"}"#).await;
    let mut p2 = server.client().await;
    p2.join_presence("presence-x", r#"{"user_id":"1"}"#).await;
    let _pub = listener(&server, "pub").await;
    let body = json!({
        "name": "e", "channels": ["presence-x", "pub", "empty"], "data": "x",
        "info": "user_count,subscription_count",
    });
    let response = server.api().trigger(body).await;
    let want = json!({"channels": {
        "presence-x": {"user_count": 1, "subscription_count": 2},
        "pub": {"subscription_count": 1},
        "empty": {"subscription_count": 0},
    }});
    assert_eq!(response.ok(), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_delivers_in_order_and_limits_to_10() {
    let server = Setup::new().start().await;
    let mut c = listener(&server, "b").await;
    let ten: Vec<_> = (0..10)
        .map(|i| json!({"channel": "b", "name": "e", "data": i.to_string()}))
        .collect();
    let response = server.api().batch(json!({"batch": ten})).await;
    assert_eq!((response.status, response.body.as_str()), (200, "{}"));
    for i in 0..10 {
        assert_eq!(
            c.recv_text().await,
            format!(r#"{{"event":"e","channel":"b","data":"{i}"}}"#)
        );
    }
    let eleven: Vec<_> = (0..11)
        .map(|i| json!({"channel": "b", "name": "e", "data": i.to_string()}))
        .collect();
    let response = server.api().batch(json!({"batch": eleven})).await;
    assert_eq!(response.status, 400, "{}", response.body);
    c.expect_no_frame(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_is_all_or_nothing() {
    let server = Setup::new().start().await;
    let mut c = listener(&server, "b").await;
    let good = json!({"channel": "b", "name": "e", "data": "ok"});
    let bad_name = json!({"channel": "b", "name": "pusher:x", "data": "no"});
    let response = server.api().batch(json!({"batch": [good, bad_name]})).await;
    assert_eq!(response.status, 400, "{}", response.body);
    let too_big = json!({"channel": "b", "name": "e", "data": "x".repeat(10241)});
    let response = server.api().batch(json!({"batch": [good, too_big]})).await;
    assert_eq!(response.status, 413, "{}", response.body);
    let many = json!({"channels": ["b", "c"], "name": "e", "data": "x"});
    let response = server.api().batch(json!({"batch": [good, many]})).await;
    assert_eq!(
        response.status, 400,
        "a batch event takes one channel: {}",
        response.body
    );
    let bad_channel = json!({"channel": "bad name", "name": "e", "data": "x"});
    let response = server
        .api()
        .batch(json!({"batch": [good, bad_channel]}))
        .await;
    assert_eq!(response.status, 400, "{}", response.body);
    c.expect_no_frame(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_info_is_index_aligned() {
    let server = Setup::new().app("subscription_count", "true").start().await;
    let mut p = server.client().await;
    p.join_presence("presence-b", r#"{"user_id":"1"}"#).await;
    let mut c = listener(&server, "b").await;
    let count = r#"{"event":"pusher_internal:subscription_count","channel":"b","data":"{\"subscription_count\":1}"}"#;
    assert_eq!(c.recv_text().await, count);
    let batch = json!({"batch": [
        {"channel": "presence-b", "name": "e", "data": "1", "info": "user_count,subscription_count"},
        {"channel": "b", "name": "e", "data": "2"},
        {"channel": "b", "name": "e", "data": "3", "info": "subscription_count"},
    ]});
    let response = server.api().batch(batch).await;
    let want = json!({"batch": [{"user_count": 1, "subscription_count": 1}, {}, {"subscription_count": 1}]});
    assert_eq!(response.ok(), want);
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"e","channel":"b","data":"2"}"#
    );
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"e","channel":"b","data":"3"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_socket_id_exclusion() {
    let server = Setup::new().start().await;
    let mut a = listener(&server, "b").await;
    let mut b = listener(&server, "b").await;
    let batch =
        json!({"batch": [{"channel": "b", "name": "e", "data": "x", "socket_id": a.socket_id}]});
    let response = server.api().batch(batch).await;
    assert_eq!((response.status, response.body.as_str()), (200, "{}"));
    assert_eq!(
        b.recv_text().await,
        r#"{"event":"e","channel":"b","data":"x"}"#
    );
    a.expect_no_frame(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_data_limit_above_actix_default_body_limit() {
    let server = Setup::new()
        .app("max_event_data_bytes", "300000")
        .start()
        .await;
    let mut c = listener(&server, "big").await;
    let response = server
        .api()
        .trigger(event("big", &"x".repeat(300_000)))
        .await;
    assert_eq!((response.status, response.body.as_str()), (200, "{}"));
    assert_eq!(
        c.recv_json().await["data"].as_str().map(str::len),
        Some(300_000)
    );
    let response = server
        .api()
        .trigger(event("big", &"x".repeat(300_001)))
        .await;
    assert_eq!(response.status, 413, "{}", response.body);
    let batch: Vec<_> = (0..3)
        .map(|_| json!({"channel": "big", "name": "e", "data": "y".repeat(250_000)}))
        .collect();
    let response = server.api().batch(json!({"batch": batch})).await;
    assert_eq!((response.status, response.body.as_str()), (200, "{}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_channel_in_one_trigger_is_delivered_once() {
    let server = Setup::new().start().await;
    let mut c = listener(&server, "twice").await;
    let body = json!({"name": "e", "channels": ["twice", "twice"], "data": "x", "info": "subscription_count"});
    let response = server.api().trigger(body).await;
    // One entry for the channel named twice (subscription_count is off for this app).
    assert_eq!(response.ok(), json!({"channels": {"twice": {}}}));
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"e","channel":"twice","data":"x"}"#
    );
    c.expect_no_frame(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusion_applies_to_every_channel_of_the_trigger() {
    let server = Setup::new().start().await;
    let mut a = listener(&server, "x1").await;
    a.join("x2").await;
    let mut b = listener(&server, "x1").await;
    b.join("x2").await;
    let body =
        json!({"name": "e", "channels": ["x1", "x2"], "data": "d", "socket_id": a.socket_id});
    assert_eq!(server.api().trigger(body).await.status, 200);
    assert_eq!(
        b.recv_text().await,
        r#"{"event":"e","channel":"x1","data":"d"}"#
    );
    assert_eq!(
        b.recv_text().await,
        r#"{"event":"e","channel":"x2","data":"d"}"#
    );
    a.expect_no_frame(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_of_exactly_200_chars_are_accepted() {
    let server = Setup::new().start().await;
    let channel = "c".repeat(200);
    let mut c = listener(&server, &channel).await;
    let name = "n".repeat(200);
    let response = server
        .api()
        .trigger(json!({"name": name, "channels": [channel], "data": "x"}))
        .await;
    assert_eq!((response.status, response.body.as_str()), (200, "{}"));
    assert_eq!(c.recv_json().await["event"], json!(name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_limit_counts_bytes_not_characters() {
    let server = Setup::new().start().await;
    // 5121 two-byte characters: 5121 characters, 10242 bytes.
    let response = server
        .api()
        .trigger(event("a", &"\u{e9}".repeat(5121)))
        .await;
    assert_eq!(response.status, 413, "{}", response.body);
    let response = server
        .api()
        .trigger(event("a", &"\u{e9}".repeat(5120)))
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
}
