//! The metrics listener's `/metrics`: soketi's metrics (under `herald_`) move as connections
//! come and go and events are published; herald's own (outboxes, backlog waits, slow
//! consumers, close codes, webhooks) move when those things happen.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Client, Receiver, Server, Setup, APP_ID, KEY, WAIT};
use tokio::time::{sleep, Instant};

/// One scrape: every sample by its series (`name{labels}`, as written).
struct Scrape {
    text: String,
    samples: HashMap<String, f64>,
}

impl Scrape {
    async fn of(server: &Server) -> Scrape {
        let response = reqwest::get(server.metrics_url("/metrics"))
            .await
            .expect("scrape");
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert_eq!(content_type, "text/plain; version=0.0.4");
        let text = response.text().await.expect("body");
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').expect("a sample line");
                (series.to_owned(), value.parse().expect("a number"))
            })
            .collect();
        Scrape { text, samples }
    }

    fn get(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("no {series} in\n{}", self.text))
    }
}

/// The series of a soketi metric of the test app: labels `app_id` and `port`.
fn soketi(server: &Server, name: &str) -> String {
    format!(
        "herald_{name}{{app_id=\"{APP_ID}\",port=\"{}\"}}",
        server.addr.port()
    )
}

/// The series of a herald metric of the test app, with more labels if any.
fn per_app(name: &str, more: &str) -> String {
    format!("herald_{name}{{app_id=\"{APP_ID}\"{more}}}")
}

/// Scrapes until `series` satisfies `ok`, failing after [`WAIT`].
async fn eventually(server: &Server, series: &str, ok: impl Fn(f64) -> bool) -> Scrape {
    let deadline = Instant::now() + WAIT;
    loop {
        let scrape = Scrape::of(server).await;
        if ok(scrape.get(series)) {
            return scrape;
        }
        assert!(
            Instant::now() < deadline,
            "{series} is {} after {WAIT:?}",
            scrape.get(series)
        );
        sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_coming_and_going_move_the_connection_metrics() {
    let server = Setup::new().start().await;
    let connected = soketi(&server, "connected");
    let new = soketi(&server, "new_connections_total");
    let gone = soketi(&server, "new_disconnections_total");
    let start = Scrape::of(&server).await;
    assert_eq!(
        (start.get(&connected), start.get(&new), start.get(&gone)),
        (0.0, 0.0, 0.0)
    );

    let a = server.client().await;
    let b = server.client().await;
    let both = Scrape::of(&server).await;
    assert_eq!((both.get(&connected), both.get(&new)), (2.0, 2.0));

    a.close().await;
    let after = eventually(&server, &connected, |n| n == 1.0).await;
    assert_eq!((after.get(&new), after.get(&gone)), (2.0, 1.0));
    drop(b);
    let after = eventually(&server, &connected, |n| n == 0.0).await;
    assert_eq!((after.get(&new), after.get(&gone)), (2.0, 2.0));
    // Two connection_established went out and stay counted after the connections ended.
    assert!(after.get(&soketi(&server, "ws_messages_sent_total")) >= 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_moves_the_message_byte_and_http_metrics() {
    let server = Setup::new().start().await;
    let mut a = server.client().await;
    a.join("news").await;
    let mut b = server.client().await;
    b.join("news").await;
    let sent = soketi(&server, "ws_messages_sent_total");
    let sent_bytes = soketi(&server, "socket_transmitted_bytes");
    let received = soketi(&server, "ws_messages_received_total");
    let received_bytes = soketi(&server, "socket_received_bytes");
    let calls = soketi(&server, "http_calls_received_total");
    let before = Scrape::of(&server).await;
    // Each client sent pusher:subscribe (masked, so more bytes than its text).
    assert_eq!(before.get(&received), 2.0);
    assert!(before.get(&received_bytes) > 2.0 * r#"{"event":"pusher:subscribe"}"#.len() as f64);
    assert_eq!(before.get(&calls), 0.0);

    let body = serde_json::json!({"name": "flash", "channels": ["news"], "data": "hello"});
    let response = server.api().trigger(body.clone()).await;
    assert_eq!(response.status, 200);
    let event = a.recv_text().await;
    assert_eq!(b.recv_text().await, event);

    let after = Scrape::of(&server).await;
    assert_eq!(after.get(&sent) - before.get(&sent), 2.0, "one frame each");
    // An unmasked server frame: a 2-byte header for a payload under 126 bytes.
    let frame_bytes = (event.len() + 2) as f64;
    assert_eq!(
        after.get(&sent_bytes) - before.get(&sent_bytes),
        2.0 * frame_bytes
    );
    assert_eq!(after.get(&calls), 1.0);
    assert_eq!(
        after.get(&soketi(&server, "http_received_bytes")),
        body.to_string().len() as f64
    );
    assert_eq!(
        after.get(&soketi(&server, "http_transmitted_bytes")),
        response.body.len() as f64
    );
    assert_eq!(after.get(&received), 2.0, "nothing more came in");

    // A request for no app is not counted; a badly signed one for the app is.
    let stranger = server.api().for_app("nobody", KEY, common::SECRET);
    assert_eq!(stranger.trigger(body.clone()).await.status, 404);
    let forged = server.api().for_app(APP_ID, KEY, "wrong-secret");
    assert_eq!(forged.trigger(body).await.status, 401);
    let last = Scrape::of(&server).await;
    assert_eq!(last.get(&calls), 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_shows_in_the_outbox_and_makes_triggers_wait() {
    let server = Setup::new()
        .server("fanout_backlog", "1")
        .server("slow_consumer_timeout", "\"30s\"")
        .app("max_event_data_bytes", "200000")
        .start()
        .await;
    let mut stuck = server.client().await;
    stuck.join("firehose").await;
    // 20 events of 64 KiB are far more than the socket buffers hold: the rest waits in the
    // outbox, counts in the backlog, and the next trigger waits (until the reader is excused,
    // after 250 ms without taking a frame).
    server.api().publish_large("firehose", 20).await;
    let scrape = Scrape::of(&server).await;
    assert!(scrape.get(&per_app("outbox_frames", "")) >= 1.0);
    assert!(scrape.get("herald_api_trigger_waits_total") >= 1.0);
    assert_eq!(scrape.get("herald_api_triggers_waiting"), 0.0);
    assert_eq!(scrape.get("herald_api_trigger_wait_timeouts_total"), 0.0);
    assert_eq!(scrape.get("herald_fanout_backlog_limit"), 1.0);
    assert_eq!(scrape.get("herald_fanout_pending_broadcasts"), 0.0);
    let slow = per_app("slow_consumers_closed_total", ",reason=\"stalled\"");
    assert_eq!(scrape.get(&slow), 0.0, "not closed yet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumers_and_close_codes_are_counted() {
    let server = Setup::new()
        .server("outbound_queue", "4")
        .app("max_event_data_bytes", "200000")
        .start()
        .await;
    let mut slow = server.client().await;
    slow.join("firehose").await;
    server.api().publish_large("firehose", 20).await;
    let full = per_app("slow_consumers_closed_total", ",reason=\"queue_full\"");
    let scrape = eventually(&server, &full, |n| n == 1.0).await;
    assert_eq!(
        scrape.get(&per_app(
            "slow_consumers_closed_total",
            ",reason=\"stalled\""
        )),
        0.0
    );
    let closed_4100 = "herald_close_codes_total{code=\"4100\"}";
    eventually(&server, closed_4100, |n| n == 1.0).await;

    // Refused at the handshake: counted by code too.
    let mut unknown = Client::connect(&server, "no-such-key", "protocol=7").await;
    unknown.expect_error_and_close(4001, None).await;
    let scrape = Scrape::of(&server).await;
    assert_eq!(scrape.get("herald_close_codes_total{code=\"4001\"}"), 1.0);
    assert_eq!(scrape.get("herald_close_codes_total{code=\"4200\"}"), 0.0);
    // Refused connections are not accepted ones.
    assert_eq!(scrape.get(&soketi(&server, "new_connections_total")), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_deliveries_and_retries_are_counted() {
    let mut receiver = Receiver::start(1).await;
    let server = Setup::new()
        .hook(&receiver.url, &["channel_occupied"], false)
        .start()
        .await;
    let mut c = server.client().await;
    c.join("watched").await;
    // Answered 500 first, then delivered again after a second.
    assert_eq!(receiver.next().await.answered, 500);
    assert_eq!(receiver.next().await.answered, 200);
    let delivered = per_app("webhook_deliveries_total", "");
    let scrape = eventually(&server, &delivered, |n| n == 1.0).await;
    assert_eq!(scrape.get(&per_app("webhook_retries_total", "")), 1.0);
    assert_eq!(scrape.get(&per_app("webhook_failures_total", "")), 0.0);
    let dropped = per_app("webhook_dropped_total", ",reason=\"queue_full\"");
    assert_eq!(scrape.get(&dropped), 0.0);
    assert_eq!(scrape.get("herald_webhook_queue_length"), 0.0);
    eventually(&server, &per_app("webhook_pending_deliveries", ""), |n| {
        n == 0.0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_given_up_is_a_failure() {
    // Nothing listens on port 1; with retry_for 1s the first failure is the last.
    let server = Setup::new()
        .webhooks("retry_for", "\"1s\"")
        .hook("http://127.0.0.1:1/hook", &["channel_occupied"], false)
        .start()
        .await;
    let mut c = server.client().await;
    c.join("nobody-listens").await;
    let failed = per_app("webhook_failures_total", "");
    let scrape = eventually(&server, &failed, |n| n == 1.0).await;
    assert_eq!(scrape.get(&per_app("webhook_deliveries_total", "")), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_app_has_its_own_series() {
    let server = Setup::new()
        .extra_app("id = \"2\"\nkey = \"other-key\"\nsecret = \"other-secret\"")
        .start()
        .await;
    let _ours = server.client().await;
    let mut theirs = Client::connect(&server, "other-key", "protocol=7").await;
    theirs.established().await;
    let scrape = Scrape::of(&server).await;
    let port = server.addr.port();
    assert_eq!(scrape.get(&soketi(&server, "connected")), 1.0);
    let other = format!("herald_connected{{app_id=\"2\",port=\"{port}\"}}");
    assert_eq!(scrape.get(&other), 1.0);
    // HELP and TYPE lines, once per metric.
    assert_eq!(
        scrape
            .text
            .matches("# TYPE herald_connected gauge\n")
            .count(),
        1
    );
    assert!(scrape
        .text
        .contains("# TYPE herald_ws_messages_sent_total counter\n"));
}
