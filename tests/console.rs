//! The debug console against the real server: off by default; its security rules (no session →
//! 401, a wrong token → 401 and then 429, the Event Creator only with the CSRF token and from
//! its own origin, the app secret in no answer); its live log, where every kind of activity
//! appears with its fields; its channels view; its Event Creator, which triggers as the REST API
//! does.

mod common;

use std::time::Duration;

use common::console::{Answer, Console, ConsoleFeed, TOKEN};
use common::{Receiver, Server, Setup, APP_ID, SECRET, WAIT};
use serde_json::{json, Value};

fn with_console() -> Setup {
    Setup::new()
        .console("enabled", "true")
        .console("token", &format!("\"{TOKEN}\""))
}

async fn console_server() -> Server {
    with_console().start().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_off_unless_enabled_and_needs_a_long_token() {
    let server = Setup::new().start().await;
    assert!(server.console_addr.is_none());
    assert!(!server.config.console.enabled);
    assert_eq!(server.config.console.host.to_string(), "127.0.0.1");

    let toml = Setup::new().console("enabled", "true").toml();
    let err = herald::config::Config::load(Some(&toml), &|_| None).unwrap_err();
    assert!(err.to_string().starts_with("console.token:"), "{err}");
    let toml = Setup::new()
        .console("enabled", "true")
        .console("token", "\"short\"")
        .toml();
    let err = herald::config::Config::load(Some(&toml), &|_| None).unwrap_err();
    assert!(err.to_string().contains("at least 16"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_session_every_api_route_is_401() {
    let server = console_server().await;
    let anonymous = Console::of(&server);
    for path in [
        "/api/session",
        &format!("/api/apps/{APP_ID}/feed"),
        &format!("/api/apps/{APP_ID}/channels"),
    ] {
        let answer = anonymous.get(path).await;
        assert_eq!(answer.status, 401, "GET {path}: {}", answer.body);
        assert!(answer.json()["error"].is_string());
    }
    let answer = anonymous.trigger(APP_ID, "c", "e", "{}").await;
    assert_eq!(answer.status, 401);
    // A made-up session id is no session.
    let mut forged = Console::of(&server);
    forged.cookie = Some("herald_console=00000000000000000000000000000000".into());
    assert_eq!(forged.get("/api/session").await.status, 401);
    // The page itself is public: it holds nothing but the login form and code.
    let page = anonymous.get("/").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Event Creator"));
    assert!(page
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'self'"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_401_then_429_with_retry_after() {
    let server = console_server().await;
    let mut console = Console::of(&server);
    for _ in 0..5 {
        let answer = console.log_in("not-the-token-at-all").await;
        assert_eq!(answer.status, 401, "{}", answer.body);
        assert_eq!(answer.json()["error"], "wrong token");
        assert!(answer.header("set-cookie").is_none());
    }
    let answer = console.log_in("not-the-token-at-all").await;
    assert_eq!(answer.status, 429);
    let after: u64 = answer.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&after), "{after}");
    // Even the right token waits out the window.
    assert_eq!(console.log_in(TOKEN).await.status, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cookie_is_http_only_and_same_site_strict_and_ends_at_logout() {
    let server = console_server().await;
    let mut console = Console::of(&server);
    let answer = console.log_in(TOKEN).await;
    let cookie = answer.header("set-cookie").unwrap();
    assert!(cookie.starts_with("herald_console="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = console.get("/api/session").await;
    assert_eq!(session.status, 200);
    let apps = session.json()["apps"].clone();
    assert_eq!(
        apps,
        json!([{"id": APP_ID, "key": common::KEY, "enabled": true}])
    );
    // Logging out wants the CSRF token too.
    let mut no_csrf = console.clone();
    no_csrf.csrf = Some("wrong".into());
    assert_eq!(no_csrf.post("/api/logout", "{}").await.status, 403);
    assert_eq!(console.post("/api/logout", "{}").await.status, 200);
    assert_eq!(console.get("/api/session").await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_creator_wants_the_csrf_token_and_this_origin() {
    let server = console_server().await;
    let console = Console::logged_in(&server).await;
    let mut client = server.client().await;
    client.join("news").await;
    let body = json!({"name": "e", "channels": ["news"], "data": "{}"}).to_string();
    let path = format!("/api/apps/{APP_ID}/events");
    let origin = console.base.clone();
    let csrf = console.csrf.clone().unwrap();

    let no_header = console
        .send("POST", &path, &body, &[("origin", &origin)])
        .await;
    assert_eq!(no_header.status, 403, "{}", no_header.body);
    let wrong = console
        .send(
            "POST",
            &path,
            &body,
            &[("origin", &origin), ("x-console-csrf", "0000")],
        )
        .await;
    assert_eq!(wrong.status, 403);
    let other_site = console
        .send(
            "POST",
            &path,
            &body,
            &[("origin", "http://evil.example"), ("x-console-csrf", &csrf)],
        )
        .await;
    assert_eq!(other_site.status, 403);
    assert_eq!(other_site.json()["error"], "cross-origin request refused");
    client.expect_no_frame(Duration::from_millis(300)).await;

    let sent = console
        .trigger(APP_ID, "news", "headline", r#"{"title":"hi"}"#)
        .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_eq!(sent.json(), json!({}));
    let frame = client.recv_json().await;
    assert_eq!(
        frame,
        json!({"event": "headline", "channel": "news", "data": "{\"title\":\"hi\"}"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_creator_answers_as_the_rest_api_does() {
    let server = with_console()
        .app("max_event_data_bytes", "100")
        .start()
        .await;
    let console = Console::logged_in(&server).await;
    let too_large = console.trigger(APP_ID, "c", "e", &"x".repeat(101)).await;
    assert_eq!(too_large.status, 413, "{}", too_large.body);
    assert!(too_large.json()["error"]
        .as_str()
        .unwrap()
        .contains("exceeds the allowed maximum"));
    let reserved = console.trigger(APP_ID, "c", "pusher:x", "{}").await;
    assert_eq!(reserved.status, 400);
    assert!(reserved.json()["error"]
        .as_str()
        .unwrap()
        .contains("reserved"));
    let bad_channel = console.trigger(APP_ID, "bad channel", "e", "{}").await;
    assert_eq!(bad_channel.status, 400);
    let unknown = console.trigger("no-such-app", "c", "e", "{}").await;
    assert_eq!(unknown.status, 404);
    let with_info = console
        .post(
            &format!("/api/apps/{APP_ID}/events"),
            &json!({"name": "e", "channels": ["presence-x"], "data": "1", "info": "user_count"})
                .to_string(),
        )
        .await;
    assert_eq!(
        with_info.json(),
        json!({"channels": {"presence-x": {"user_count": 0}}})
    );
}

/// Reads the feed until an entry of `kind` whose `field` is `value`.
async fn expect(feed: &mut ConsoleFeed, kind: &str, field: &str, value: &Value) -> Value {
    feed.until(kind, WAIT, |e| &e[field] == value).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_activity_appears_in_the_feed_with_its_fields() {
    let hooks = Receiver::start(1).await;
    let server = with_console()
        .hook(&hooks.url, &["channel_occupied"], false)
        .start()
        .await;
    let console = Console::logged_in(&server).await;
    let mut feed = console.watch(APP_ID).await;

    // A connection opens and joins a public channel: opened, occupied, subscribed.
    let mut alice = server.client().await;
    let alice_id = alice.socket_id.clone();
    let opened = expect(
        &mut feed,
        "connection_opened",
        "socket_id",
        &json!(alice_id),
    )
    .await;
    assert_eq!(opened["transport"], "websocket");
    assert!(opened["time_ms"].as_u64().unwrap() > 1_600_000_000_000);
    alice.join("news").await;
    let occupied = feed.next_of("channel_occupied").await;
    assert_eq!(occupied["channel"], "news");
    let (subscribed, skipped) = feed
        .until("subscribed", WAIT, |e| e["channel"] == "news")
        .await;
    assert_eq!(subscribed["socket_id"], json!(alice_id));
    assert!(subscribed.get("user_id").is_none());

    // The occupied webhook: answered 500 once, then delivered. The webhook worker runs on its
    // own, so on a loaded machine its first attempt can be reported before the subscription.
    let mut webhooks: Vec<Value> = skipped
        .into_iter()
        .filter(|e| e["kind"] == "webhook")
        .collect();
    while webhooks.len() < 2 {
        let next = feed
            .until("webhook", Duration::from_secs(5), |_| true)
            .await;
        webhooks.push(next.0);
    }
    let (retrying, delivered) = (&webhooks[0], &webhooks[1]);
    assert_eq!(retrying["events"], json!(["channel_occupied"]));
    assert_eq!(retrying["url"], json!(hooks.url));
    assert_eq!(retrying["status"], 500);
    assert_eq!(retrying["retries"], 0);
    assert_eq!(retrying["outcome"], "retrying");
    assert_eq!(delivered["status"], 200);
    assert_eq!(delivered["retries"], 1);
    assert_eq!(delivered["outcome"], "delivered");

    // Presence: subscribed with the user id, member added.
    let mut bob = server.client().await;
    let bob_id = bob.socket_id.clone();
    bob.join_presence("presence-room", r#"{"user_id":"bob"}"#)
        .await;
    // The channel's changes are reported as the registry makes them, before the adapter
    // reports the subscription.
    let added = feed.next_of("member_added").await;
    assert_eq!(
        (&added["channel"], &added["user_id"]),
        (&json!("presence-room"), &json!("bob"))
    );
    let joined = expect(&mut feed, "subscribed", "channel", &json!("presence-room")).await;
    assert_eq!(joined["user_id"], "bob");
    assert_eq!(joined["socket_id"], json!(bob_id));

    // A cache channel with nothing cached.
    alice.subscribe("cache-prices").await;
    let miss = feed.next_of("cache_miss").await;
    assert_eq!(miss["channel"], "cache-prices");

    // An API event, excluding a socket.
    let api = server.api();
    api.trigger(
        json!({"name": "flash", "channels": ["news"], "data": "{\"n\":1}", "socket_id": bob_id}),
    )
    .await
    .ok();
    let event = feed.next_of("api_event").await;
    assert_eq!(event["channel"], "news");
    assert_eq!(event["event"], "flash");
    assert_eq!(event["data"], "{\"n\":1}");
    assert_eq!(event["excluded_socket_id"], json!(bob_id));

    // A client event on the presence channel.
    bob.trigger("presence-room", "client-typing", json!({"who": "bob"}))
        .await;
    let client_event = feed.next_of("client_event").await;
    assert_eq!(client_event["channel"], "presence-room");
    assert_eq!(client_event["event"], "client-typing");
    assert_eq!(client_event["data"], "{\"who\":\"bob\"}");
    assert_eq!(client_event["socket_id"], json!(bob_id));
    assert_eq!(client_event["user_id"], "bob");

    // Leaving: member removed, vacated, unsubscribed (with the member); then closed.
    bob.unsubscribe("presence-room").await;
    let removed = feed.next_of("member_removed").await;
    assert_eq!(removed["user_id"], "bob");
    let vacated = expect(
        &mut feed,
        "channel_vacated",
        "channel",
        &json!("presence-room"),
    )
    .await;
    assert_eq!(vacated["channel"], "presence-room");
    let left = expect(
        &mut feed,
        "unsubscribed",
        "channel",
        &json!("presence-room"),
    )
    .await;
    assert_eq!(left["user_id"], "bob");
    bob.close().await;
    let closed = expect(&mut feed, "connection_closed", "socket_id", &json!(bob_id)).await;
    assert_eq!(closed["reason"], "closed by the client");

    // Nothing above carried the secret.
    assert!(!feed.raw.contains(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_close_appears_with_its_code() {
    let server = with_console()
        .server("outbound_queue", "16")
        .app("max_event_data_bytes", "200000")
        .start()
        .await;
    let console = Console::logged_in(&server).await;
    let mut feed = console.watch(APP_ID).await;
    let mut stalled = server.client().await;
    stalled.join("firehose").await;
    let stalled_id = stalled.socket_id.clone();
    let api = server.api();
    let publisher = tokio::spawn(async move { api.publish_large("firehose", 80).await });
    let slow = feed
        .until("slow_consumer", Duration::from_secs(20), |e| {
            e["socket_id"] == json!(stalled_id)
        })
        .await
        .0;
    assert!(slow["reason"].as_str().unwrap().len() > 3, "{slow}");
    let closed = feed.next_of("connection_closed").await;
    assert_eq!(closed["code"], 4100);
    assert_eq!(closed["socket_id"], slow["socket_id"]);
    publisher.await.unwrap();
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_channels_view_lists_counts_and_members() {
    let server = console_server().await;
    let console = Console::logged_in(&server).await;
    let mut a = server.client().await;
    a.join("news").await;
    let mut b = server.client().await;
    b.join("news").await;
    b.join_presence("presence-room", r#"{"user_id":"u1"}"#)
        .await;
    let answer = console.get(&format!("/api/apps/{APP_ID}/channels")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.json(),
        json!({"total": 2, "channels": [
            {"name": "news", "subscription_count": 2},
            {"name": "presence-room", "subscription_count": 1, "user_count": 1, "members": ["u1"]},
        ]})
    );
    assert_eq!(console.get("/api/apps/nope/channels").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_is_in_no_answer() {
    let server = console_server().await;
    let mut console = Console::of(&server);
    let mut answers: Vec<Answer> = vec![
        console.get("/").await,
        console.get("/console.js").await,
        console.get("/console.css").await,
        console.get("/api/session").await,
        console.log_in("wrong-token-wrong-token").await,
    ];
    answers.push(console.log_in(TOKEN).await);
    let mut feed = console.watch(APP_ID).await;
    let mut client = server.client().await;
    client
        .join_presence("presence-x", r#"{"user_id":"1"}"#)
        .await;
    answers.push(console.get("/api/session").await);
    answers.push(console.get(&format!("/api/apps/{APP_ID}/channels")).await);
    answers.push(console.trigger(APP_ID, "presence-x", "e", "{}").await);
    answers.push(
        console
            .trigger(APP_ID, "presence-x", "pusher:e", "{}")
            .await,
    );
    feed.next_of("api_event").await;
    for answer in &answers {
        assert!(!answer.body.contains(SECRET), "{}", answer.body);
        for (name, value) in &answer.headers {
            assert!(!value.contains(SECRET), "{name}: {value}");
        }
    }
    assert!(!feed.raw.contains(SECRET));
}
