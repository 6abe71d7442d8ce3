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

/// Opens `count` connections subscribed to `channel` that never read again.
async fn stalled(server: &common::Server, channel: &str, count: usize) -> Vec<common::Client> {
    let mut stalled = Vec::with_capacity(count);
    for _ in 0..count {
        let mut c = server.client().await;
        c.join(channel).await;
        stalled.push(c);
    }
    stalled
}

/// A new subscriber of `channel` that reads one frame every `pace` until it has `events`
/// events, failing on anything else (a `pusher:error` 4100 first of all); the data of each.
async fn paced_reader(
    server: &common::Server,
    channel: &str,
    events: usize,
    pace: Duration,
) -> tokio::task::JoinHandle<Result<Vec<String>, String>> {
    let mut client = server.client().await;
    client.join(channel).await;
    tokio::spawn(async move {
        let mut got = Vec::with_capacity(events);
        while got.len() < events {
            let frame = match client.next_frame(Duration::from_secs(10)).await {
                Some(Frame::Text(text)) => common::json(&text),
                Some(Frame::Ping(_) | Frame::Pong(_)) => continue,
                other => return Err(format!("after {} events: {other:?}", got.len())),
            };
            if frame["event"] != "e" {
                return Err(format!("after {} events: {frame:.200}", got.len()));
            }
            got.push(frame["data"].as_str().unwrap_or_default().to_owned());
            if !pace.is_zero() {
                tokio::time::sleep(pace).await;
            }
        }
        Ok(got)
    })
}

/// `publishers` tasks each trigger `each` events `e` on `channel`, the data
/// `"<publisher>-<n> "` and padding, each waiting `pause` between its triggers (none: as fast
/// as the API answers, open loop).
async fn publish_from(
    api: &common::Api,
    channel: &str,
    publishers: usize,
    each: usize,
    pause: Duration,
) {
    let padding = "x".repeat(4000);
    let tasks: Vec<_> = (0..publishers)
        .map(|p| {
            let (api, channel, padding) = (api.clone(), channel.to_owned(), padding.clone());
            tokio::spawn(async move {
                for n in 0..each {
                    api.publish(&channel, "e", &format!("{p}-{n} {padding}"))
                        .await;
                    if !pause.is_zero() {
                        tokio::time::sleep(pause).await;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("publisher");
    }
}

/// Each publisher's events arrived, all of them and in order.
fn assert_complete(got: &[String], publishers: usize, each: usize, who: &str) {
    let mut next = vec![0usize; publishers];
    for data in got {
        let id = data.split(' ').next().unwrap_or_default();
        let (p, n) = id.split_once('-').expect("<publisher>-<n>");
        let (p, n): (usize, usize) = (p.parse().unwrap(), n.parse().unwrap());
        assert_eq!(
            n, next[p],
            "{who}: publisher {p}'s events out of order or lost"
        );
        next[p] += 1;
    }
    assert_eq!(next, vec![each; publishers], "{who}: every event");
}

/// Connections closed with 4100 so far, both reasons, from the metrics.
async fn slow_consumers_closed(server: &common::Server) -> u64 {
    let text = reqwest::get(server.metrics_url("/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    text.lines()
        .filter(|l| l.starts_with("herald_slow_consumers_closed_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Waits until `n` connections were closed with 4100 (at most `within`), then checks that it
/// is exactly `n`.
async fn expect_closed_4100(server: &common::Server, n: u64, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let closed = slow_consumers_closed(server).await;
        if closed >= n {
            assert_eq!(closed, n, "connections closed with 4100");
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{closed} of {n} connections closed with 4100 within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Hardening #1 at scale (10,000 stalled, `BENCHMARKS.md` Finding 6): a few readers that keep
/// reading, slower than publishers flat out can publish, beside many that never read. The
/// stalled ones are excused from the backlog, so before, nothing held the publishers back for
/// the few that read (half of each of their queues was far under `fanout_backlog`): their
/// queues filled and they were closed with 4100. Now readers more than half full hold the
/// publishers to their pace (they read briskly, and they are over a quarter of the connections
/// receiving): they get every event, and the stalled ones are still closed with 4100.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn few_readers_among_many_stalled_get_everything_from_publishers_flat_out() {
    const STALLED: usize = 100;
    const READERS: usize = 3;
    const PUBLISHERS: usize = 4;
    const EACH: usize = 300;
    let server = Setup::new()
        .server("outbound_queue", "64")
        .server("slow_consumer_timeout", "\"1s\"")
        .server("socket_send_buffer", "4096")
        .start()
        .await;
    let stalled = stalled(&server, "crowd", STALLED).await;
    let mut readers = Vec::new();
    for _ in 0..READERS {
        // About 500 events/s each at most: slower than the publishers below.
        let pace = Duration::from_millis(2);
        readers.push(paced_reader(&server, "crowd", PUBLISHERS * EACH, pace).await);
    }
    publish_from(&server.api(), "crowd", PUBLISHERS, EACH, Duration::ZERO).await;
    for (i, reader) in readers.into_iter().enumerate() {
        let got = reader.await.expect("reader task");
        let got = got.unwrap_or_else(|e| panic!("reader {i} did not get everything: {e}"));
        assert_complete(&got, PUBLISHERS, EACH, &format!("reader {i}"));
    }
    // The stalled ones, and only they, are closed within the stall timeout, nothing more being
    // published.
    expect_closed_4100(&server, STALLED as u64, Duration::from_secs(10)).await;
    drop(stalled);
}

/// Readers of different paces, all reading steadily, and publishers flat out: the slowest is
/// the only one behind, yet it holds the publishers to its pace (it is brisk: at its pace it
/// would empty its queue well within the stall timeout), so nobody is closed. A rule that waits
/// only when many readers are behind cuts the slowest, then the next slowest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_of_different_paces_all_get_everything_from_publishers_flat_out() {
    const PUBLISHERS: usize = 4;
    const EACH: usize = 150;
    let server = Setup::new()
        .server("outbound_queue", "256")
        .server("slow_consumer_timeout", "\"20s\"")
        .server("socket_send_buffer", "4096")
        .start()
        .await;
    let mut readers = Vec::new();
    // Unpaced, then at most 1,000, 500 and 250 events/s. Brisk is 12.8 frames/s or more (a
    // queue of 256 within the 20 s stall timeout), far below the slowest.
    for pace in [0, 1, 2, 4] {
        let pace = Duration::from_millis(pace);
        readers.push((
            pace,
            paced_reader(&server, "paces", PUBLISHERS * EACH, pace).await,
        ));
    }
    publish_from(&server.api(), "paces", PUBLISHERS, EACH, Duration::ZERO).await;
    for (pace, reader) in readers {
        let got = reader.await.expect("reader task");
        let got = got.unwrap_or_else(|e| panic!("reader pausing {pace:?}: {e}"));
        assert_complete(&got, PUBLISHERS, EACH, &format!("reader pausing {pace:?}"));
    }
    assert_eq!(slow_consumers_closed(&server).await, 0);
}

/// The other side of the rule above: a reader much slower than the others (a client could read
/// slowly on purpose) does not hold the publishers to its pace; it fills its queue and is
/// closed with 4100, and the others get everything. The publishers keep a pace the others
/// easily follow, so that only the slow one is ever behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_slow_reader_among_fast_ones_does_not_hold_publishers() {
    const READERS: usize = 4;
    const PUBLISHERS: usize = 4;
    const EACH: usize = 100;
    let server = Setup::new()
        .server("outbound_queue", "64")
        .server("socket_send_buffer", "4096")
        .start()
        .await;
    // 200 ms an event: 80 s for all of them, if the publishers waited for it. Not brisk: that
    // would take 12.8 frames/s (a queue of 64 within the 5 s stall timeout).
    let pace = Duration::from_millis(200);
    let slow = paced_reader(&server, "mixed", PUBLISHERS * EACH, pace).await;
    let mut readers = Vec::new();
    for _ in 0..READERS {
        readers.push(paced_reader(&server, "mixed", PUBLISHERS * EACH, Duration::ZERO).await);
    }
    let started = tokio::time::Instant::now();
    // About 200 events/s in all: 2 s.
    publish_from(
        &server.api(),
        "mixed",
        PUBLISHERS,
        EACH,
        Duration::from_millis(20),
    )
    .await;
    let took = started.elapsed();
    for (i, reader) in readers.into_iter().enumerate() {
        let got = reader.await.expect("reader task");
        let got = got.unwrap_or_else(|e| panic!("fast reader {i}: {e}"));
        assert_complete(&got, PUBLISHERS, EACH, &format!("fast reader {i}"));
    }
    // The fast ones got everything, so the one closed with 4100 is the slow one (the metrics
    // say it: at its pace it would take seconds to read down to the close frame).
    expect_closed_4100(&server, 1, Duration::from_secs(10)).await;
    slow.abort();
    assert!(
        took < Duration::from_secs(15),
        "publishing took {took:?}: held to the slow reader's pace"
    );
}
