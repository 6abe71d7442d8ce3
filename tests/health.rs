//! `/up` and `/ready` on the main and the metrics listener; `/ready` is 503 from the moment
//! shutdown begins and for as long as connections drain; `[metrics] enabled = false` opens no
//! metrics listener.

mod common;

use std::time::Duration;

use common::raw::read_head;
use common::{Server, Setup, WAIT};
use herald::config::Config;
use herald::server::Listeners;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// `GET url`: status and body.
async fn get(url: &str) -> (u16, String) {
    let client = reqwest::Client::builder().timeout(WAIT).build().unwrap();
    let response = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// Both listeners' URLs for `path`.
fn both(server: &Server, path: &str) -> [String; 2] {
    [server.http_url(path), server.metrics_url(path)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_and_ready_answer_on_both_listeners() {
    let server = Setup::new().start().await;
    for url in both(&server, "/up") {
        assert_eq!(get(&url).await, (200, "OK\n".into()), "{url}");
    }
    for url in both(&server, "/ready") {
        assert_eq!(get(&url).await, (200, "ready\n".into()), "{url}");
    }
    // The metrics stay on their own listener, which serves nothing else.
    assert_eq!(get(&server.http_url("/metrics")).await.0, 404);
    let events = server.metrics_url("/apps/test-id/channels");
    assert_eq!(get(&events).await.0, 404);
    assert_eq!(get(&server.metrics_url("/metrics")).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_is_503_while_shutting_down() {
    let mut server = Setup::new().start().await;
    // A keep-alive connection to the main listener, opened before shutdown: the listener stops
    // accepting then, but answers on connections it has.
    let mut kept = TcpStream::connect(server.addr).await.expect("connect");
    let ready = b"GET /ready HTTP/1.1\r\nHost: herald\r\n\r\n";
    kept.write_all(ready).await.unwrap();
    assert_eq!(read_head(&mut kept, WAIT).await.status, 200);

    // Something shutdown waits for (as it waits for connections to close), held until released.
    let (release, held) = tokio::sync::oneshot::channel::<()>();
    let draining = tokio::spawn(server.shutdown.track(async move {
        let _ = held.await;
    }));
    server.shutdown.trigger();
    assert_eq!(
        get(&server.metrics_url("/ready")).await,
        (503, "shutting down\n".into())
    );
    assert_eq!(get(&server.metrics_url("/up")).await.0, 200, "still alive");
    assert_eq!(get(&server.metrics_url("/metrics")).await.0, 200);
    kept.write_all(ready).await.unwrap();
    assert_eq!(read_head(&mut kept, WAIT).await.status, 503);

    // (An idle keep-alive connection would hold actix's graceful stop for its timeout.)
    drop(kept);
    let _ = release.send(());
    draining.await.unwrap();
    let metrics = server.metrics_addr.unwrap();
    let (result, _) = server.stop(Duration::from_secs(5)).await;
    result.expect("run returns Ok");
    assert!(
        TcpStream::connect(metrics).await.is_err(),
        "the metrics listener closes last, once drained"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_off_means_no_metrics_listener() {
    // The port it would take, free as far as anyone knows.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let file = format!("[server]\nport = 0\n[metrics]\nenabled = false\nport = {port}\n");
    let config = Config::load(Some(&file), &|_| None).unwrap();
    let listeners = Listeners::bind(&config).unwrap();
    assert!(listeners.metrics.is_none());
    assert!(
        TcpStream::connect(("127.0.0.1", port)).await.is_err(),
        "nothing listens on {port}"
    );

    let server = Setup::new().metrics("enabled", "false").start().await;
    assert_eq!(server.metrics_addr, None);
    assert_eq!(get(&server.http_url("/up")).await.0, 200);
    assert_eq!(get(&server.http_url("/ready")).await.0, 200);
    // The counting goes on: connections still work as ever.
    let _client = server.client().await;
}
