//! The HTTP fallback transports (pusher-js's `xhr_streaming` and `xhr_polling`) at the wire:
//! each SockJS frame (`o`, `h`, `a[...]`, `c[...]`), streaming and polling, a poll's next
//! request continuing the session, a stream replaced by a newer one, the session reaped when no
//! request receives for `http_session_timeout`, 404 for unknown sessions, a malformed or
//! oversized `xhr_send`, refusals, CORS. A fallback session is an ordinary connection: it
//! subscribes with auth, joins presence, sends client events, is excluded by socket id, counts
//! toward `max_connections`, shows in channel queries, and gets 4200 on shutdown.

mod common;

use std::time::Duration;

use common::xhr::{Line, Xhr};
use common::{presence_auth, private_auth, Server, Setup};
use serde_json::{json, Value};

const QUIET: Duration = Duration::from_millis(300);

/// One-second heartbeats, so tests see them.
fn setup() -> Setup {
    Setup::new().server("activity_timeout", "\"1s\"")
}

fn subscribe(channel: &str, auth: Option<String>, channel_data: Option<&str>) -> Value {
    let mut data = json!({"channel": channel});
    if let Some(auth) = auth {
        data["auth"] = json!(auth);
    }
    if let Some(channel_data) = channel_data {
        data["channel_data"] = json!(channel_data);
    }
    json!({"event": "pusher:subscribe", "data": data})
}

fn succeeded(channel: &str) -> String {
    format!(
        r#"{{"event":"pusher_internal:subscription_succeeded","data":"{{}}","channel":"{channel}"}}"#
    )
}

/// A streaming session that has read `connection_established`: its requests, its stream and
/// its socket id.
async fn streaming(server: &Server) -> (Xhr, common::xhr::Stream, String) {
    let xhr = Xhr::new(server);
    let mut stream = xhr.stream().await;
    let socket_id = stream.established().await;
    (xhr, stream, socket_id)
}

/// A server from `setup`, and a WebSocket client that is a member of `presence-room` there.
async fn watched(setup: Setup) -> (Server, common::Client) {
    let server = setup.start().await;
    let mut watcher = server.client().await;
    watcher
        .join_presence("presence-room", r#"{"user_id":"watcher"}"#)
        .await;
    (server, watcher)
}

/// Joins `presence-room` as `user` through `xhr_send`; `watcher`, a member, sees it added.
async fn join_room(xhr: &Xhr, socket_id: &str, user: &str, watcher: &mut common::Client) {
    let channel_data = format!(r#"{{"user_id":"{user}"}}"#);
    let auth = presence_auth(socket_id, "presence-room", &channel_data);
    let join = subscribe("presence-room", Some(auth), Some(&channel_data));
    sent(xhr, &[join]).await;
    let added = watcher.recv_json().await;
    assert_eq!(added["event"], "pusher_internal:member_added", "{added}");
    assert_eq!(
        common::json(added["data"].as_str().unwrap())["user_id"],
        user
    );
}

async fn sent(xhr: &Xhr, messages: &[Value]) {
    let answer = xhr.send(messages).await;
    assert_eq!(answer.status, 204, "{}", answer.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_frames_open_messages_heartbeat() {
    let server = setup().start().await;
    let (xhr, mut stream, socket_id) = streaming(&server).await;
    assert!(common::ws::is_socket_id(&socket_id), "{socket_id}");
    assert_eq!(
        stream.headers["content-type"],
        "application/javascript; charset=UTF-8"
    );
    assert_eq!(stream.headers["access-control-allow-origin"], "*");
    // pusher:ping is answered as over a WebSocket.
    sent(&xhr, &[json!({"event": "pusher:ping", "data": {}})]).await;
    assert_eq!(
        stream.recv_text().await,
        r#"{"event":"pusher:pong","data":"{}"}"#
    );
    // Several messages in one body; their answers, in order.
    sent(
        &xhr,
        &[subscribe("one", None, None), subscribe("two", None, None)],
    )
    .await;
    assert_eq!(stream.recv_text().await, succeeded("one"));
    assert_eq!(stream.recv_text().await, succeeded("two"));
    server.api().publish("two", "greeting", "hello").await;
    assert_eq!(
        stream.recv_text().await,
        r#"{"event":"greeting","channel":"two","data":"hello"}"#
    );
    // Nothing to say for the heartbeat interval (activity_timeout, 1 s here): `h`.
    let started = tokio::time::Instant::now();
    assert_eq!(stream.line().await, Some(Line::Heartbeat));
    assert!(started.elapsed() >= Duration::from_millis(800));
    // `[]`, the client's answer to it, is fine.
    sent(&xhr, &[]).await;
    stream.expect_no_message(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_one_frame_per_request_and_nothing_lost_between_polls() {
    let server = setup().start().await;
    let xhr = Xhr::new(&server);
    let first = xhr.poll().await;
    assert_eq!((first.status, first.body.as_str()), (200, "o\n"));
    let second = Line::all(&xhr.poll().await.body);
    let [Line::Messages(established)] = &second[..] else {
        panic!("{second:?}")
    };
    assert!(
        established[0].contains("pusher:connection_established"),
        "{established:?}"
    );
    sent(&xhr, &[subscribe("news", None, None)]).await;
    assert_eq!(
        Line::all(&xhr.poll().await.body),
        [Line::Messages(vec![succeeded("news")])]
    );
    // Published while no poll is waiting: the next poll gets both, in one frame.
    let api = server.api();
    api.publish("news", "e", "1").await;
    api.publish("news", "e", "2").await;
    assert_eq!(
        Line::all(&xhr.poll().await.body),
        [Line::Messages(vec![
            r#"{"event":"e","channel":"news","data":"1"}"#.into(),
            r#"{"event":"e","channel":"news","data":"2"}"#.into(),
        ])]
    );
    // A poll with nothing to deliver waits, then answers a heartbeat.
    let started = tokio::time::Instant::now();
    assert_eq!(Line::all(&xhr.poll().await.body), [Line::Heartbeat]);
    assert!(started.elapsed() >= Duration::from_millis(800));
    // A poll waiting when an event comes is answered at once.
    let waiting = tokio::spawn({
        let xhr = xhr.clone();
        async move { xhr.poll().await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    api.publish("news", "e", "3").await;
    let answered = waiting.await.unwrap();
    assert_eq!(
        Line::all(&answered.body),
        [Line::Messages(vec![
            r#"{"event":"e","channel":"news","data":"3"}"#.into()
        ])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_stream_takes_over_the_session() {
    let server = setup().start().await;
    let (xhr, mut old, _) = streaming(&server).await;
    sent(&xhr, &[subscribe("news", None, None)]).await;
    assert_eq!(old.recv_text().await, succeeded("news"));
    // pusher-js opens a new stream on the same session after 256 KiB: no second `o`.
    let mut new = xhr.stream().await;
    assert_eq!(old.line().await, None, "the old stream ends");
    server.api().publish("news", "e", "after").await;
    assert_eq!(
        new.recv_text().await,
        r#"{"event":"e","channel":"news","data":"after"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_session_is_reaped_and_leaves_its_channels() {
    let (server, mut watcher) = watched(setup().server("http_session_timeout", "\"1s\"")).await;
    let xhr = Xhr::new(&server);
    assert_eq!(xhr.poll().await.body, "o\n");
    let established = Line::all(&xhr.poll().await.body);
    let Line::Messages(messages) = &established[0] else {
        panic!("{established:?}")
    };
    let data = common::json(common::json(&messages[0])["data"].as_str().unwrap());
    let socket_id = data["socket_id"].as_str().unwrap().to_owned();
    join_room(&xhr, &socket_id, "poller", &mut watcher).await;
    // It stops polling: after the session timeout it is gone, as a dropped WebSocket.
    let removed = watcher.recv_json_within(Duration::from_secs(3)).await;
    assert_eq!(
        removed["event"], "pusher_internal:member_removed",
        "{removed}"
    );
    assert_eq!(xhr.send(&[]).await.status, 404);
    let users = server
        .api()
        .get(&server.api().path("/channels/presence-room/users"), &[])
        .await
        .ok();
    assert_eq!(users, json!({"users": [{"id": "watcher"}]}));
    // A poll for it now opens a new session.
    assert_eq!(xhr.poll().await.body, "o\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_sessions_are_404_and_bad_ids_too() {
    let server = setup().start().await;
    let xhr = Xhr::new(&server);
    let answer = xhr
        .send(&[json!({"event": "pusher:ping", "data": {}})])
        .await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (404, "404 NOT FOUND\n")
    );
    let client = reqwest::Client::new();
    for path in [
        "/pusher/app/test-key/1/a.b/xhr_streaming",
        "/pusher/app/test-key/1/a.b/xhr",
        "/pusher/app/test-key/1/a.b/xhr_send",
        "/pusher/app/test-key/1/s/other",
    ] {
        let response = client.post(server.http_url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_send_bodies_are_refused_and_the_session_goes_on() {
    let server = setup().start().await;
    let (xhr, mut stream, _) = streaming(&server).await;
    for (body, said) in [
        ("", "Payload expected.\n"),
        ("not json", "Broken JSON encoding.\n"),
        (r#"{"event":"pusher:ping"}"#, "Broken JSON encoding.\n"),
        (r#"[{"event":"pusher:ping"}]"#, "Broken JSON encoding.\n"),
    ] {
        let answer = xhr.send_body(body).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (400, said),
            "{body:?}"
        );
    }
    // A message that is not a Pusher message is answered as over a WebSocket.
    sent(&xhr, &[json!("not an object")]).await;
    let error = stream.recv_json().await;
    assert_eq!(error["event"], "pusher:error", "{error}");
    sent(&xhr, &[json!({"event": "pusher:ping", "data": {}})]).await;
    assert_eq!(
        stream.recv_text().await,
        r#"{"event":"pusher:pong","data":"{}"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_body_over_the_frame_limit_closes_with_1009() {
    let server = setup().server("max_frame_bytes", "1024").start().await;
    let (xhr, mut stream, _) = streaming(&server).await;
    let big = json!({"event": "client-x", "channel": "private-a", "data": "x".repeat(2000)});
    assert_eq!(xhr.send(&[big]).await.status, 413);
    let (before, code, reason) = stream.until_close().await;
    assert_eq!((code, reason.as_str()), (1009, "Message too big"));
    assert_eq!(
        before,
        [r#"{"event":"pusher:error","data":{"code":1009,"message":"Message too big"}}"#]
    );
    assert_eq!(stream.line().await, None);
    assert_eq!(xhr.send(&[]).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_open_error_close() {
    let server = setup()
        .app("max_connections", "1")
        .extra_app("id = \"off\"\nkey = \"off-key\"\nsecret = \"s\"\nenabled = false")
        .start()
        .await;
    let cases = [
        (Xhr::for_key(&server, "nope"), "protocol=7", 4001),
        (Xhr::for_key(&server, "off-key"), "protocol=7", 4003),
        (Xhr::new(&server), "protocol=3", 4007),
    ];
    for (xhr, query, code) in cases {
        let mut stream = xhr.stream_with(query).await;
        assert_eq!(stream.line().await, Some(Line::Open));
        let (before, closed, _) = stream.until_close().await;
        assert_eq!(closed, code);
        let error = common::json(&before[0]);
        assert_eq!(error["event"], "pusher:error");
        assert_eq!(error["data"]["code"], code);
        assert_eq!(stream.line().await, None);
    }
    // A fallback session counts toward max_connections, as a WebSocket does.
    let (_xhr, _stream, _) = streaming(&server).await;
    let mut refused = common::Client::connect(&server, common::KEY, "protocol=7").await;
    refused.expect_error_and_close(4004, None).await;
    let answer = Xhr::new(&server).poll().await;
    assert_eq!(
        Line::all(&answer.body)[2],
        Line::Close(4004, "Account over quota".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_events_exclusion_and_channel_queries() {
    let server = setup().start().await;
    let (xhr, mut stream, socket_id) = streaming(&server).await;
    let mut peer = server.client().await;
    peer.join_private("private-room").await;
    let auth = private_auth(&socket_id, "private-room");
    sent(&xhr, &[subscribe("private-room", Some(auth), None)]).await;
    assert_eq!(stream.recv_text().await, succeeded("private-room"));
    // Its client event reaches the other subscriber, not itself.
    let event = json!({"event": "client-hi", "channel": "private-room", "data": {"n": 1}});
    sent(&xhr, &[event]).await;
    assert_eq!(
        peer.recv_text().await,
        r#"{"event":"client-hi","channel":"private-room","data":"{\"n\":1}"}"#
    );
    stream.expect_no_message(QUIET).await;
    // And the other way round.
    peer.trigger("private-room", "client-back", json!("x"))
        .await;
    assert_eq!(
        stream.recv_text().await,
        r#"{"event":"client-back","channel":"private-room","data":"x"}"#
    );
    // Excluded by its socket id.
    let api = server.api();
    let body =
        json!({"name": "e", "channels": ["private-room"], "data": "d", "socket_id": socket_id});
    assert_eq!(api.trigger(body).await.status, 200);
    assert_eq!(
        peer.recv_text().await,
        r#"{"event":"e","channel":"private-room","data":"d"}"#
    );
    stream.expect_no_message(QUIET).await;
    // Channel queries count it.
    let info = api.get(&api.path("/channels/private-room"), &[]).await.ok();
    assert_eq!(info["occupied"], true);
    // The rate limit of client events applies (10/s by default).
    let burst: Vec<Value> = (0..11)
        .map(|i| json!({"event": "client-n", "channel": "private-room", "data": i}))
        .collect();
    sent(&xhr, &burst).await;
    let limited = stream.recv_json().await;
    assert_eq!(limited["data"]["code"], 4301, "{limited}");
    while let Ok(more) = tokio::time::timeout(QUIET, stream.recv_json()).await {
        assert_eq!(more["data"]["code"], 4301, "{more}");
    }
    // Unsubscribed: nothing more.
    sent(
        &xhr,
        &[json!({"event": "pusher:unsubscribe", "data": {"channel": "private-room"}})],
    )
    .await;
    tokio::time::sleep(QUIET).await;
    api.publish("private-room", "e", "gone").await;
    stream.expect_no_message(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_with_4200() {
    let mut server = setup().start().await;
    let (_xhr, mut stream, _) = streaming(&server).await;
    let stopping = tokio::spawn(async move {
        let (result, _) = server.stop(Duration::from_secs(10)).await;
        result
    });
    let (before, code, _) = stream.until_close().await;
    assert_eq!(code, 4200);
    assert_eq!(common::json(&before[0])["data"]["code"], 4200);
    assert_eq!(stream.line().await, None);
    stopping.await.unwrap().expect("run returned Ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poller_that_stops_polling_is_a_slow_consumer() {
    let server = setup()
        .server("slow_consumer_timeout", "\"500ms\"")
        .server("http_session_timeout", "\"30s\"")
        .start()
        .await;
    let xhr = Xhr::new(&server);
    assert_eq!(xhr.poll().await.body, "o\n");
    sent(&xhr, &[subscribe("news", None, None)]).await;
    // About 64 KiB wait for the next poll (a socket's send buffer would hold them); the rest
    // wait in the outbox, where the stall watch sees them not taken.
    let data = "x".repeat(8 * 1024);
    for _ in 0..12 {
        server.api().publish("news", "e", &data).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // What it polls now is what was waiting, then the error and the close.
    let mut lines = Vec::new();
    for _ in 0..5 {
        lines.extend(Line::all(&xhr.poll().await.body));
        if matches!(lines.last(), Some(Line::Close(..))) {
            break;
        }
    }
    let reason = "Over capacity: the connection is not reading fast enough";
    assert_eq!(lines.last(), Some(&Line::Close(4100, reason.into())));
    let Some(Line::Messages(last)) = lines.iter().rev().nth(1) else {
        panic!("{lines:?}")
    };
    let error = common::json(last.last().unwrap());
    assert_eq!(error["data"]["code"], 4100, "{error}");
    let events = lines
        .iter()
        .filter_map(|l| match l {
            Line::Messages(m) => Some(m.iter().filter(|m| m.contains("\"event\":\"e\"")).count()),
            _ => None,
        })
        .sum::<usize>();
    assert!(
        (7..12).contains(&events),
        "what the relay held, not the discarded rest: {events}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_preflight_is_answered() {
    let server = setup().start().await;
    let xhr = Xhr::new(&server);
    for kind in ["xhr_streaming", "xhr", "xhr_send"] {
        let answer = xhr.raw(reqwest::Method::OPTIONS, kind).await;
        assert_eq!(answer.status, 204, "{kind}");
        let h = &answer.headers;
        assert_eq!(h["access-control-allow-origin"], "*");
        assert_eq!(h["access-control-allow-methods"], "OPTIONS, POST");
        assert_eq!(h["access-control-allow-headers"], "Content-Type");
    }
    assert_eq!(xhr.raw(reqwest::Method::GET, "xhr").await.status, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_drops_its_stream_leaves_within_the_session_timeout() {
    // Heartbeats every 10 s: leaving must not wait for one to fail.
    let (server, mut watcher) =
        watched(Setup::new().server("http_session_timeout", "\"500ms\"")).await;
    let (xhr, stream, socket_id) = streaming(&server).await;
    join_room(&xhr, &socket_id, "streamer", &mut watcher).await;
    let started = tokio::time::Instant::now();
    drop(stream);
    let removed = watcher.recv_json_within(Duration::from_secs(5)).await;
    assert_eq!(
        removed["event"], "pusher_internal:member_removed",
        "{removed}"
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "left after {took:?}");
}
