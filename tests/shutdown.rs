//! STYLE §13 / spec §1.4: graceful shutdown closes every client with 4200 and `run` returns
//! within `shutdown_timeout`; held webhooks are flushed.

mod common;

use std::time::Duration;

use common::{Client, Receiver, Setup, KEY};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_gets_4200_and_run_returns_in_time() {
    let mut server = Setup::new()
        .server("shutdown_timeout", "\"2s\"")
        .start()
        .await;
    let mut public = server.client().await;
    public.join("news").await;
    let mut member = server.client().await;
    member
        .join_presence("presence-s", r#"{"user_id":"1"}"#)
        .await;
    let mut signed = server.client().await;
    signed.signin(r#"{"id":"9"}"#).await;
    let mut idle = server.client().await;
    let (result, took) = server.stop(Duration::from_secs(4)).await;
    assert!(result.is_ok(), "run returned {result:?}");
    assert!(
        took <= Duration::from_millis(2500),
        "run returned after {took:?} (shutdown_timeout 2s)"
    );
    for c in [&mut public, &mut member, &mut signed, &mut idle] {
        c.expect_error_and_close(4200, None).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_does_not_hold_shutdown() {
    let mut server = Setup::new()
        .server("shutdown_timeout", "\"2s\"")
        .start()
        .await;
    let _deaf = Client::connect(&server, KEY, "protocol=7").await;
    let mut normal = server.client().await;
    let (result, took) = server.stop(Duration::from_secs(4)).await;
    assert!(result.is_ok(), "{result:?}");
    assert!(took <= Duration::from_millis(2500), "{took:?}");
    normal.expect_error_and_close(4200, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_new_connections_after_shutdown() {
    let mut server = Setup::new().start().await;
    let addr = server.addr;
    let url = server.ws_url(KEY, "protocol=7");
    server.stop(Duration::from_secs(5)).await.0.expect("run ok");
    let refused = tokio_tungstenite::connect_async(url.as_str()).await;
    assert!(
        refused.is_err(),
        "connecting to {addr} after shutdown must fail"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_webhooks_are_flushed_on_shutdown() {
    let mut receiver = Receiver::start(0).await;
    let mut server = Setup::new()
        .webhooks("vacated_delay", "\"30s\"")
        .hook(
            &receiver.url,
            &["channel_occupied", "channel_vacated"],
            false,
        )
        .start()
        .await;
    let mut c = server.client().await;
    c.join("leaving").await;
    assert_eq!(
        receiver.next_event().await,
        json!({"name": "channel_occupied", "channel": "leaving"})
    );
    c.unsubscribe("leaving").await;
    c.ping_pong().await;
    server.stop(Duration::from_secs(5)).await.0.expect("run ok");
    assert_eq!(
        receiver.next_event().await,
        json!({"name": "channel_vacated", "channel": "leaving"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_webhook_endpoint_does_not_hold_shutdown() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let mut server = Setup::new()
        .server("shutdown_timeout", "\"1s\"")
        .webhooks("timeout", "\"10s\"")
        .webhooks("retry_for", "\"60s\"")
        .hook(&url, &["channel_occupied"], false)
        .start()
        .await;
    let mut c = server.client().await;
    c.join("stuck").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (result, took) = server.stop(Duration::from_secs(5)).await;
    assert!(result.is_ok(), "{result:?}");
    assert!(
        took <= Duration::from_millis(1500),
        "run returned after {took:?} (shutdown_timeout 1s)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_slow_consumer_does_not_hold_shutdown() {
    let mut server = Setup::new()
        .server("shutdown_timeout", "\"1s\"")
        .app("max_event_data_bytes", "200000")
        .start()
        .await;
    let mut stuck = server.client().await;
    stuck.join("flood").await;
    let payload = "x".repeat(100_000);
    for i in 0..40 {
        let body = json!({"name": format!("e{i}"), "channels": ["flood"], "data": payload});
        assert_eq!(server.api().trigger(body).await.status, 200);
    }
    let (result, took) = server.stop(Duration::from_secs(5)).await;
    assert!(result.is_ok(), "{result:?}");
    assert!(
        took <= Duration::from_millis(1500),
        "run returned after {took:?} (shutdown_timeout 1s)"
    );
}
