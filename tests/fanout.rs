//! ARCHITECTURE "Concurrency": per-connection order, and slow consumers closed with 4100 while
//! healthy subscribers of the same channel get every event.

mod common;

use std::time::Duration;

use common::{Frame, Setup, WAIT};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_in_trigger_order() {
    let server = Setup::new().start().await;
    let mut a = server.client().await;
    a.join("ordered").await;
    let mut b = server.client().await;
    b.join("ordered").await;
    let api = server.api();
    for i in 0..50 {
        api.publish("ordered", "n", &i.to_string()).await;
    }
    for c in [&mut a, &mut b] {
        for i in 0..50 {
            assert_eq!(
                c.recv_text().await,
                format!(r#"{{"event":"n","channel":"ordered","data":"{i}"}}"#)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_to_several_channels_keeps_channel_order() {
    let server = Setup::new().start().await;
    let mut c = server.client().await;
    for channel in ["c1", "c2", "c3"] {
        c.join(channel).await;
    }
    let response = server
        .api()
        .trigger(json!({"name": "e", "channels": ["c3", "c1", "c2"], "data": "x"}))
        .await;
    assert_eq!(response.status, 200);
    for channel in ["c3", "c1", "c2"] {
        assert_eq!(c.recv_json().await["channel"], channel);
    }
}

/// Hardening #6, made deterministic: the slow consumer starts reading once its queue must have
/// overflowed (its socket buffers are bounded), well within the 2 s the server gives a closing
/// connection to take its close frame; before, it read only after all 150 events and the
/// healthy reader, which could take longer than that under load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_closed_4100_healthy_one_gets_everything() {
    const EVENTS: usize = 150;
    /// By this event the slow consumer's queue (16 events of 100 KB) and socket buffers (the
    /// server's 128 KiB, the client's initial 128 KiB) overflowed twice over.
    const OVERFLOWED: usize = 40;
    let server = Setup::new()
        .server("outbound_queue", "16")
        .app("max_event_data_bytes", "200000")
        .start()
        .await;
    let mut slow = server.client().await;
    slow.join("firehose").await;
    let mut healthy = server.client().await;
    healthy.join("firehose").await;
    let (overflowed, wait) = tokio::sync::oneshot::channel();
    let reader = tokio::spawn(async move {
        let mut overflowed = Some(overflowed);
        for i in 0..EVENTS {
            let frame = healthy.recv_json_within(Duration::from_secs(20)).await;
            assert_eq!(
                frame["event"],
                format!("e{i}"),
                "healthy subscriber gets every event in order"
            );
            if i == OVERFLOWED {
                let _ = overflowed.take().map(|tx| tx.send(()));
            }
        }
        healthy
    });
    // The slow one reads once it is sure to be cut off: some events, then pusher:error 4100
    // and close 4100.
    let slow_reader = tokio::spawn(async move {
        wait.await.expect("the healthy reader got far enough");
        let mut events = 0;
        loop {
            match slow.next_frame(Duration::from_secs(10)).await {
                Some(Frame::Text(text)) => {
                    let frame = common::json(&text);
                    if frame["event"] == "pusher:error" {
                        assert_eq!(frame["data"]["code"], 4100, "{text:.200}");
                        let (code, _) = slow.expect_close().await;
                        return (code, events);
                    }
                    events += 1;
                }
                Some(Frame::Ping(_) | Frame::Pong(_)) => {}
                other => panic!(
                    "slow consumer: expected events then 4100, got {other:?} after {events} events"
                ),
            }
        }
    });
    let payload = "x".repeat(100_000);
    let api = server.api();
    // One event per request: actix's default request-body limit (256 KiB) caps a batch.
    for i in 0..EVENTS {
        let body = json!({"channels": ["firehose"], "name": format!("e{i}"), "data": payload});
        let response = api.trigger(body).await;
        assert_eq!(response.status, 200, "{}", response.body);
    }
    let mut healthy = reader.await.expect("healthy reader");
    let (code, events) = slow_reader.await.expect("slow reader");
    assert_eq!(code, Some(4100));
    assert!(
        events < OVERFLOWED,
        "the slow consumer was cut off ({events} events)"
    );
    healthy.ping_pong().await;
}

/// Publishes `e` with an increasing number as data to `channel` until the flag is set.
fn storm(
    api: common::Api,
    channel: &'static str,
) -> (
    tokio::task::JoinHandle<()>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let task = tokio::spawn(async move {
        let mut n = 1u64;
        while !flag.load(Ordering::Relaxed) {
            api.publish(channel, "e", &n.to_string()).await;
            n += 1;
        }
    });
    (task, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_succeeded_precedes_events_under_load() {
    let server = Setup::new().start().await;
    let (task, stop) = storm(server.api(), "storm");
    for _ in 0..15 {
        let mut c = server.client().await;
        c.subscribe("storm").await;
        let first = c.recv_json().await;
        assert_eq!(
            first["event"], "pusher_internal:subscription_succeeded",
            "{first}"
        );
        let next = c.recv_json().await;
        assert_eq!(next["event"], "e", "{next}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    task.await.expect("publisher");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_event_comes_first_and_numbers_only_grow_under_load() {
    let server = Setup::new().start().await;
    server.api().publish("cache-storm", "e", "0").await;
    let (task, stop) = storm(server.api(), "cache-storm");
    for _ in 0..15 {
        let mut c = server.client().await;
        c.subscribe("cache-storm").await;
        let first = c.recv_json().await;
        assert_eq!(
            first["event"], "pusher_internal:subscription_succeeded",
            "{first}"
        );
        let mut last: Option<u64> = None;
        for _ in 0..5 {
            let frame = c.recv_json().await;
            assert_eq!(
                frame["event"], "e",
                "the cached event, then live ones: {frame}"
            );
            let n: u64 = frame["data"]
                .as_str()
                .and_then(|d| d.parse().ok())
                .expect("number");
            assert!(
                last.is_none_or(|l| n > l),
                "event {n} after {last:?}: order broken"
            );
            last = Some(n);
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    task.await.expect("publisher");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_consumers_do_not_slow_publishers() {
    const EVENTS: usize = 100;
    let server = Setup::new()
        .server("outbound_queue", "32")
        .server("fanout_backlog", "64")
        .app("max_event_data_bytes", "200000")
        .start()
        .await;
    // Enough of them that their first halves of queue (16 each) fill the backlog many times.
    let mut stuck = Vec::new();
    for _ in 0..20 {
        let mut c = server.client().await;
        c.join("jam").await;
        stuck.push(c);
    }
    let mut healthy = server.client().await;
    healthy.join("jam").await;
    let reader = tokio::spawn(async move {
        for i in 0..EVENTS {
            let frame = healthy.recv_json_within(Duration::from_secs(30)).await;
            assert_eq!(frame["event"], format!("e{i}"));
        }
    });
    let payload = "x".repeat(100_000);
    let mut worst = Duration::ZERO;
    for i in 0..EVENTS {
        let started = tokio::time::Instant::now();
        let body = json!({"channels": ["jam"], "name": format!("e{i}"), "data": payload});
        assert_eq!(server.api().trigger(body).await.status, 200);
        worst = worst.max(started.elapsed());
    }
    reader.await.expect("healthy subscriber got every event");
    assert!(
        worst < Duration::from_millis(1000),
        "a trigger took {worst:?}: slow consumers slowed a publisher"
    );
}

/// Hardening #1: a subscriber that stops reading is closed with 4100 within
/// `slow_consumer_timeout` of falling behind, with nothing more published and although it keeps
/// sending `pusher:ping` (which it used to be kept alive by) and its queue is far from full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_is_closed_4100_whatever_it_sends() {
    const EVENTS: usize = 40;
    let server = Setup::new()
        .server("outbound_queue", "1024")
        .server("slow_consumer_timeout", "\"500ms\"")
        .server("socket_send_buffer", "16384")
        .app("max_event_data_bytes", "200000")
        .start()
        .await;
    let mut stuck = server.client().await;
    stuck.join("drip").await;
    // 4 MB: more than the socket buffers hold, far less than the queue.
    server.api().publish_large("drip", EVENTS).await;
    // It goes on talking, never reading, for three times the stall timeout.
    for _ in 0..15 {
        stuck
            .send_json(json!({"event": "pusher:ping", "data": {}}))
            .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut events = 0;
    let code = loop {
        match stuck.next_frame(Duration::from_secs(10)).await {
            Some(Frame::Text(text)) => {
                let frame = common::json(&text);
                match frame["event"].as_str() {
                    Some("pusher:error") => {
                        assert_eq!(frame["data"]["code"], 4100, "{text:.200}");
                        break stuck.expect_close().await.0;
                    }
                    Some("pusher:pong") => {}
                    _ => events += 1,
                }
            }
            Some(Frame::Ping(_) | Frame::Pong(_)) => {}
            other => panic!("expected events then 4100, got {other:?} after {events} events"),
        }
    };
    assert_eq!(code, Some(4100));
    assert!(
        events < EVENTS,
        "closed before everything was delivered ({events} events)"
    );
}

/// Review finding 3: a reading connection that was idle longer than `slow_consumer_timeout`
/// is not a slow consumer when a burst over half its queue arrives at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_reader_survives_a_burst() {
    let server = Setup::new()
        .server("outbound_queue", "8")
        .server("slow_consumer_timeout", "\"1s\"")
        .start()
        .await;
    let mut reader = server.client().await;
    let channels: Vec<String> = (0..6).map(|i| format!("burst-{i}")).collect();
    for channel in &channels {
        reader.join(channel).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let response = server
        .api()
        .trigger(json!({"name": "e", "channels": channels, "data": "x"}))
        .await;
    assert_eq!(response.status, 200);
    for channel in &channels {
        let frame = reader.recv_json().await;
        assert_eq!(
            frame,
            json!({"event": "e", "channel": channel, "data": "x"})
        );
    }
    reader.ping_pong().await;
}

/// A reader that stops reading long enough for the kernel's socket buffers to fill gets every
/// event, in order, once it reads again: what the socket would not take waited in the
/// connection's queue and its session wrote it as the socket drained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_reader_gets_everything_in_order_when_it_resumes() {
    const EVENTS: usize = 400;
    let server = Setup::new()
        .server("outbound_queue", "4096")
        .server("slow_consumer_timeout", "\"60s\"")
        .app("max_event_data_bytes", "200000")
        .start()
        .await;
    let mut reader = server.client().await;
    reader.join("paused").await;
    // 400 events of 64 KiB, 25 MiB in all: far more than loopback socket buffers hold.
    server.api().publish_large("paused", EVENTS).await;
    reader.expect_large_events(EVENTS, WAIT).await;
    reader.ping_pong().await;
}
