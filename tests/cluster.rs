//! Several herald nodes on one real `redis-server` behave as one server: deliveries, exclusion,
//! presence, webhooks once per transition, cache, watchlists and terminate across nodes; a
//! node killed with SIGKILL is reaped; a Redis restart is survived. Each test starts its own
//! Redis (Debian's `redis-server`, installed by `scripts/test.sh`) on a free loopback port.

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{json, Client, Receiver, Server, Setup, APP_ID, KEY, SECRET, WAIT};
use herald::cluster::testing::RedisServer;
use serde_json::{json, Value};
use tokio::time::{sleep, Instant};

/// A node of the test cluster on `redis`: heartbeats every 100 ms, dead after 1 s.
fn node(redis: &RedisServer) -> Setup {
    Setup::new()
        .cluster("redis_url", &format!("\"{}\"", redis.url()))
        .cluster("key_prefix", "\"t\"")
        .cluster("heartbeat_interval", "\"100ms\"")
        .cluster("node_timeout", "\"1s\"")
}

async fn start_nodes(setup: Setup, n: usize) -> Vec<Server> {
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(setup.clone().start().await);
    }
    nodes
}

/// Polls `check` every 20 ms until it holds, failing after `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        sleep(Duration::from_millis(20)).await;
    }
}

/// The cluster's subscription count of a channel of the test app, as Redis holds it.
fn subscription_count(redis: &RedisServer, channel: &str) -> u64 {
    redis
        .hget(&format!("t:app:{APP_ID}:channel:{channel}"), "total")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The value of a metric without labels, as `server` reports it.
async fn metric(server: &Server, name: &str) -> u64 {
    let text = reqwest::get(server.metrics_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}")) as u64
}

/// The next frame's JSON, skipping nothing.
async fn next_event(client: &mut Client) -> Value {
    client.recv_json().await
}

/// Collects webhook events (name → list) for `quiet`: stops when none came for that long.
async fn collect_hooks(receiver: &mut Receiver, quiet: Duration) -> Vec<Value> {
    let mut events = Vec::new();
    while let Some(hook) = receiver.next_within(quiet).await {
        assert_eq!(hook.answered, 200);
        events.extend(hook.events());
    }
    events
}

/// How many of `events` are `name` on `channel`.
fn of_channel(events: &[Value], name: &str, channel: &str) -> usize {
    events
        .iter()
        .filter(|e| e["name"] == name && e["channel"] == channel)
        .count()
}

fn count_by_name(events: &[Value]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for e in events {
        *counts
            .entry(e["name"].as_str().unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_on_one_node_reach_every_node_once_and_in_order() {
    let redis = RedisServer::start();
    let nodes = start_nodes(node(&redis), 3).await;
    let mut clients = Vec::new();
    for i in 0..100 {
        let mut client = nodes[i % 3].client().await;
        client.join("chat").await;
        clients.push(client);
    }
    // Each client read its subscription_succeeded: its node delivers to it from now on.
    assert_eq!(subscription_count(&redis, "chat"), 100);

    let api = nodes[0].api();
    for n in 0..1000 {
        api.publish("chat", "e", &n.to_string()).await;
    }
    for (i, client) in clients.iter_mut().enumerate() {
        for n in 0..1000 {
            let frame = next_event(client).await;
            assert_eq!(frame["event"], "e", "client {i}: {frame}");
            assert_eq!(
                frame["data"],
                n.to_string(),
                "client {i} (node {}): out of order or lost",
                i % 3
            );
        }
    }
    for client in clients.iter_mut() {
        client.expect_no_frame(Duration::from_millis(20)).await;
    }
}

/// A publisher that sends each event through another node than the last (a round-robin
/// balancer), waiting for each answer: every subscriber, on every node, gets them in order.
/// (Each node delivers its own events from the bus, in Redis's order; delivering them at once
/// let an event overtake the previous one, still on its way from another node, about 1 run in
/// 4 of this test.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_going_round_the_nodes_keeps_its_order() {
    let redis = RedisServer::start();
    let nodes = start_nodes(node(&redis), 3).await;
    let mut clients = Vec::new();
    for i in 0..6 {
        let mut client = nodes[i % 3].client().await;
        client.join("chat").await;
        clients.push(client);
    }
    assert_eq!(subscription_count(&redis, "chat"), 6);
    let apis: Vec<_> = nodes.iter().map(|n| n.api()).collect();
    for n in 0..300 {
        apis[n % 3].publish("chat", "e", &n.to_string()).await;
    }
    for (i, client) in clients.iter_mut().enumerate() {
        for n in 0..300 {
            let frame = next_event(client).await;
            assert_eq!(
                frame["data"],
                n.to_string(),
                "client {i} (node {}): out of order or lost",
                i % 3
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_on_another_node_is_excluded() {
    let redis = RedisServer::start();
    let nodes = start_nodes(node(&redis), 3).await;
    let mut a = nodes[0].client().await;
    let mut b = nodes[1].client().await;
    a.join("x").await;
    b.join("x").await;
    assert_eq!(subscription_count(&redis, "x"), 2);
    let body = json!({"name": "e", "channel": "x", "data": "d", "socket_id": a.socket_id});
    assert_eq!(nodes[2].api().trigger(body).await.status, 200);
    assert_eq!(b.recv_json().await["data"], "d");
    a.expect_no_frame(Duration::from_millis(300)).await;
    assert_ne!(a.socket_id, b.socket_id);
}

/// An HTTP fallback session lives on the node that opened it (its requests to another node are
/// 404s) and is a connection of the cluster like any other: presence, events, exclusion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_fallback_session_is_a_connection_of_the_cluster_on_its_node() {
    let redis = RedisServer::start();
    let nodes = start_nodes(node(&redis), 2).await;
    let room = "presence-room";
    let mut alice = nodes[1].client().await;
    alice.join_presence(room, r#"{"user_id":"alice"}"#).await;
    let xhr = common::xhr::Xhr::new(&nodes[0]);
    let mut stream = xhr.stream().await;
    let socket_id = stream.established().await;
    let channel_data = r#"{"user_id":"streamer"}"#;
    let auth = common::presence_auth(&socket_id, room, channel_data);
    let join = json!({"event": "pusher:subscribe",
        "data": {"channel": room, "auth": auth, "channel_data": channel_data}});
    assert_eq!(xhr.send(&[join]).await.status, 204);
    let succeeded = stream.recv_json().await;
    let presence = json(succeeded["data"].as_str().unwrap())["presence"].clone();
    assert_eq!(presence["count"], 2, "{succeeded}");
    let added = alice.recv_json().await;
    assert_eq!(json(added["data"].as_str().unwrap())["user_id"], "streamer");
    // Published on the other node: delivered to the session, unless excluded.
    nodes[1].api().publish(room, "e", "1").await;
    assert_eq!(stream.recv_json().await["data"], "1");
    assert_eq!(alice.recv_json().await["data"], "1");
    let body = json!({"name": "e", "channel": room, "data": "2", "socket_id": socket_id});
    assert_eq!(nodes[1].api().trigger(body).await.status, 200);
    assert_eq!(alice.recv_json().await["data"], "2");
    stream.expect_no_message(Duration::from_millis(300)).await;
    // The other node does not know the session.
    assert_eq!(xhr.on(&nodes[1]).send(&[]).await.status, 404);
    assert_eq!(xhr.send(&[]).await.status, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_one_member_list_across_nodes_and_webhooks_fire_once() {
    let redis = RedisServer::start();
    let mut receiver = Receiver::start(0).await;
    let setup = node(&redis).hook(&receiver.url, &[], false);
    let nodes = start_nodes(setup, 3).await;
    let room = "presence-room";

    let mut alice = nodes[0].client().await;
    let presence = alice.join_presence(room, r#"{"user_id":"alice"}"#).await;
    assert_eq!(presence["count"], 1);
    let mut bob = nodes[1].client().await;
    let presence = bob
        .join_presence(room, r#"{"user_id":"bob","user_info":{"name":"Bob"}}"#)
        .await;
    assert_eq!(presence["count"], 2, "{presence}");
    assert_eq!(presence["hash"]["alice"], Value::Null);
    assert_eq!(presence["hash"]["bob"], json!({"name": "Bob"}));
    let added = alice.recv_json().await;
    assert_eq!(added["event"], "pusher_internal:member_added");
    assert_eq!(
        json(added["data"].as_str().unwrap()),
        json!({"user_id": "bob", "user_info": {"name": "Bob"}})
    );

    // Bob again, on a third node: the same member.
    let mut bob_again = nodes[2].client().await;
    let presence = bob_again
        .join_presence(room, r#"{"user_id":"bob","user_info":{"name":"Bob"}}"#)
        .await;
    assert_eq!(presence["count"], 2);
    alice.expect_no_frame(Duration::from_millis(300)).await;

    let api = nodes[2].api();
    let users = api
        .get(&api.path(&format!("/channels/{room}/users")), &[])
        .await;
    let mut ids: Vec<String> = users.json()["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, ["alice", "bob"]);
    let info = api
        .get(
            &api.path(&format!("/channels/{room}")),
            &[("info", "user_count")],
        )
        .await
        .json();
    assert_eq!(info, json!({"occupied": true, "user_count": 2}));
    let list = api
        .get(
            &api.path("/channels"),
            &[("filter_by_prefix", "presence-"), ("info", "user_count")],
        )
        .await
        .json();
    assert_eq!(list, json!({"channels": {room: {"user_count": 2}}}));

    bob_again.close().await;
    alice.expect_no_frame(Duration::from_millis(300)).await;
    bob.close().await;
    let removed = alice.recv_json().await;
    assert_eq!(removed["event"], "pusher_internal:member_removed");
    assert_eq!(
        json(removed["data"].as_str().unwrap()),
        json!({"user_id": "bob"})
    );
    alice.close().await;

    let events = collect_hooks(&mut receiver, Duration::from_secs(1)).await;
    let counts = count_by_name(&events);
    assert_eq!(counts.get("channel_occupied"), Some(&1), "{events:?}");
    assert_eq!(counts.get("member_added"), Some(&2), "{events:?}");
    assert_eq!(counts.get("member_removed"), Some(&2), "{events:?}");
    assert_eq!(counts.get("channel_vacated"), Some(&1), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_joining_on_three_nodes_at_once_each_see_every_member_once() {
    let redis = RedisServer::start();
    let nodes = start_nodes(node(&redis).app("max_presence_members", "100"), 3).await;
    const N: usize = 30;
    let mut joins = Vec::new();
    for i in 0..N {
        let addr = nodes[i % 3].addr;
        joins.push(tokio::spawn(async move {
            let url =
                format!("ws://{addr}/app/{KEY}?protocol=7&client=js&version=8.4.0&flash=false");
            let mut client = Client::connect_url(&url, WAIT).await.unwrap();
            client.established().await;
            let data = format!(r#"{{"user_id":"u{i}"}}"#);
            let presence = client.join_presence("presence-crowd", &data).await;
            let mut members: std::collections::BTreeSet<String> = presence["hash"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            // Each event must change this client's view: no member announced twice, none
            // removed that it did not know.
            while members.len() < N {
                let frame = client.recv_json_within(Duration::from_secs(5)).await;
                let user = json(frame["data"].as_str().unwrap())["user_id"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                match frame["event"].as_str() {
                    Some("pusher_internal:member_added") => {
                        assert!(members.insert(user.clone()), "u{i}: {user} added twice")
                    }
                    other => panic!("u{i}: unexpected {other:?}: {frame}"),
                }
            }
            client
        }));
    }
    let mut clients = Vec::new();
    for join in joins {
        clients.push(join.await.expect("every client sees all 30 members"));
    }
    for client in clients.iter_mut() {
        client.expect_no_frame(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_joins_on_two_nodes_fire_each_transition_once() {
    let redis = RedisServer::start();
    let mut receiver = Receiver::start(0).await;
    let setup = node(&redis).hook(&receiver.url, &[], false);
    let nodes = start_nodes(setup, 2).await;
    let channels = ["presence-a", "presence-b"];
    // 200 connections: 100 per channel, 50 per node, as 10 users (each user on both nodes).
    let mut joins = Vec::new();
    for i in 0..200 {
        let server_addr = nodes[i % 2].addr;
        let channel = channels[(i / 2) % 2];
        let user = format!("u{}", i % 10);
        joins.push(tokio::spawn(async move {
            let url = format!(
                "ws://{server_addr}/app/{KEY}?protocol=7&client=js&version=8.4.0&flash=false"
            );
            let mut client = Client::connect_url(&url, WAIT).await.unwrap();
            client.established().await;
            let data = format!(r#"{{"user_id":"{user}"}}"#);
            client.join_presence(channel, &data).await;
            client
        }));
    }
    let mut clients = Vec::new();
    for join in joins {
        clients.push(join.await.unwrap());
    }
    let events = collect_hooks(&mut receiver, Duration::from_secs(1)).await;
    for channel in channels {
        let of = |name: &str| of_channel(&events, name, channel);
        assert_eq!(of("channel_occupied"), 1, "{channel}: {events:?}");
        assert_eq!(of("member_added"), 10, "{channel}: {events:?}");
    }

    let leaves: Vec<_> = clients
        .into_iter()
        .map(|c| tokio::spawn(c.close()))
        .collect();
    for leave in leaves {
        leave.await.unwrap();
    }
    let events = collect_hooks(&mut receiver, Duration::from_secs(1)).await;
    for channel in channels {
        let of = |name: &str| of_channel(&events, name, channel);
        assert_eq!(of("member_removed"), 10, "{channel}: {events:?}");
        assert_eq!(of("channel_vacated"), 1, "{channel}: {events:?}");
        assert_eq!(of("channel_occupied") + of("member_added"), 0, "{events:?}");
    }
    assert!(
        redis.keys("t:app:*").is_empty(),
        "{:?}",
        redis.keys("t:app:*")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejoin_on_another_node_within_the_grace_period_cancels_both_webhooks() {
    let redis = RedisServer::start();
    let mut receiver = Receiver::start(0).await;
    // A grace period long enough for a reconnection on a loaded machine.
    let setup = node(&redis)
        .hook(&receiver.url, &[], false)
        .webhooks("vacated_delay", "\"2s\"");
    let nodes = start_nodes(setup, 2).await;
    let mut first = nodes[0].client().await;
    first
        .join_presence("presence-room", r#"{"user_id":"u1"}"#)
        .await;
    let joined = collect_hooks(&mut receiver, Duration::from_millis(500)).await;
    assert_eq!(joined.len(), 2, "{joined:?}");

    // The user's connection moves to the other node (a rolling deploy, a network change).
    first.close().await;
    let mut again = nodes[1].client().await;
    again
        .join_presence("presence-room", r#"{"user_id":"u1"}"#)
        .await;
    let during = collect_hooks(&mut receiver, Duration::from_millis(2500)).await;
    assert!(
        during.is_empty(),
        "the departure and the return cancel: {during:?}"
    );

    // Leaving for good: both departures go out once the grace period is over, once.
    again.close().await;
    let left = collect_hooks(&mut receiver, Duration::from_millis(2500)).await;
    let counts = count_by_name(&left);
    assert_eq!(counts.get("member_removed"), Some(&1), "{left:?}");
    assert_eq!(counts.get("channel_vacated"), Some(&1), "{left:?}");
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(redis.keys("t:departures").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_counts_are_the_clusters() {
    let redis = RedisServer::start();
    let mut receiver = Receiver::start(0).await;
    let setup = node(&redis).app("subscription_count", "true").hook(
        &receiver.url,
        &["subscription_count"],
        false,
    );
    let nodes = start_nodes(setup, 2).await;
    let count = |n: u64| {
        json!({"event": "pusher_internal:subscription_count", "channel": "room",
               "data": json!({"subscription_count": n}).to_string()})
    };
    let mut a = nodes[0].client().await;
    a.join("room").await;
    assert_eq!(a.recv_json().await, count(1));
    let mut b = nodes[1].client().await;
    b.join("room").await;
    assert_eq!(b.recv_json().await, count(2));
    assert_eq!(a.recv_json().await, count(2));
    b.close().await;
    assert_eq!(a.recv_json().await, count(1));
    let events = collect_hooks(&mut receiver, Duration::from_millis(500)).await;
    // One webhook per change; the nodes that claim them from the queue deliver them in any
    // order (each request's time_ms tells when it was sent).
    let mut counts: Vec<u64> = events
        .iter()
        .map(|e| e["subscription_count"].as_u64().unwrap())
        .collect();
    counts.sort_unstable();
    assert_eq!(counts, [1, 1, 2], "one webhook per change: {events:?}");
}

/// A node killed with subscriptions: once it is reaped, the subscribers on the other nodes get
/// the count without its subscriptions (announced by the node that reaped it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_subscriptions_leave_the_count() {
    let redis = RedisServer::start();
    let setup = node(&redis).app("subscription_count", "true");
    let survivor = setup.clone().start().await;
    let mut doomed = Process::start_with(setup);
    let count = |n: u64| {
        json!({"event": "pusher_internal:subscription_count", "channel": "room",
               "data": json!({"subscription_count": n}).to_string()})
    };
    let mut a = survivor.client().await;
    a.join("room").await;
    assert_eq!(a.recv_json().await, count(1));
    let mut ghosts = Vec::new();
    for n in 2..=3 {
        let mut ghost = doomed.client().await;
        ghost.join("room").await;
        assert_eq!(a.recv_json().await, count(n));
        ghosts.push(ghost);
    }
    doomed.kill();
    assert_eq!(a.recv_json_within(Duration::from_secs(10)).await, count(1));
    a.expect_no_frame(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_counts_the_whole_cluster() {
    let redis = RedisServer::start();
    let nodes = start_nodes(node(&redis).app("max_connections", "2"), 2).await;
    let a = nodes[0].client().await;
    let _b = nodes[1].client().await;
    let query = "protocol=7&client=js&version=8.4.0&flash=false";
    let mut refused = Client::connect(&nodes[0], KEY, query).await;
    refused
        .expect_error_and_close(4004, Some("Account over quota"))
        .await;
    a.close().await;
    eventually(WAIT, "the slot given back", || async {
        let url = nodes[1].ws_url(KEY, query);
        let mut c = Client::connect_url(&url, WAIT).await.unwrap();
        matches!(c.next_frame(WAIT).await, Some(common::Frame::Text(t)) if t.contains("connection_established"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_closes_the_users_connections_on_every_node() {
    let redis = RedisServer::start();
    let nodes = start_nodes(node(&redis), 3).await;
    let user_data = r#"{"id":"u1"}"#;
    let mut on_0 = nodes[0].client().await;
    on_0.signin(user_data).await;
    let mut on_1 = nodes[1].client().await;
    on_1.signin(user_data).await;
    let started = Instant::now();
    let api = nodes[2].api();
    let response = api
        .post(&api.path("/users/u1/terminate_connections"), "{}")
        .await;
    assert_eq!(response.status, 200);
    for client in [&mut on_0, &mut on_1] {
        client
            .expect_error_and_close(4009, Some("You got disconnected by the app."))
            .await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_to_user_events_and_watchlists_cross_nodes() {
    let redis = RedisServer::start();
    let nodes = start_nodes(node(&redis), 2).await;
    let mut watcher = nodes[0].client().await;
    watcher.signin(r#"{"id":"w","watchlist":["u1"]}"#).await;
    let initial = watcher.recv_json().await;
    assert_eq!(
        initial["event"], "pusher_internal:watchlist_events",
        "{initial}"
    );
    assert!(initial["data"].to_string().contains("offline"), "{initial}");

    let mut user = nodes[1].client().await;
    user.signin(r#"{"id":"u1"}"#).await;
    let online = watcher.recv_json().await;
    assert!(
        online["data"].to_string().contains(r#"\"online\""#),
        "{online}"
    );

    // A second watcher arriving now reads the cluster's status.
    let mut late = nodes[0].client().await;
    late.signin(r#"{"id":"w2","watchlist":["u1"]}"#).await;
    let initial = late.recv_json().await;
    assert!(
        initial["data"].to_string().contains(r#"\"online\""#),
        "{initial}"
    );

    nodes[0]
        .api()
        .publish("#server-to-user-u1", "hello", "hi")
        .await;
    let got = user.recv_json().await;
    assert_eq!(
        (got["event"].as_str(), got["data"].as_str()),
        (Some("hello"), Some("hi"))
    );

    user.close().await;
    let offline = watcher.recv_json().await;
    assert!(
        offline["data"].to_string().contains(r#"\"offline\""#),
        "{offline}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_channels_last_event_is_found_on_any_node() {
    let redis = RedisServer::start();
    let nodes = start_nodes(node(&redis), 2).await;
    nodes[0].api().publish("cache-news", "headline", "h1").await;
    let mut reader = nodes[1].client().await;
    reader.join("cache-news").await;
    let cached = reader.recv_json().await;
    assert_eq!(
        (cached["event"].as_str(), cached["data"].as_str()),
        (Some("headline"), Some("h1"))
    );
    reader.join("cache-empty").await;
    let miss = reader.recv_json().await;
    assert_eq!(miss["event"], "pusher:cache_miss");
    let api = nodes[1].api();
    let info = api
        .get(&api.path("/channels/cache-news"), &[("info", "cache")])
        .await
        .json();
    assert_eq!(info["cache"]["data"], "h1", "{info}");
}

/// A herald node in its own process (so it can be killed with SIGKILL), on a free port.
struct Process {
    child: Child,
    addr: std::net::SocketAddr,
    /// Its config file, removed with it.
    config: Option<std::path::PathBuf>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Process {
    /// A node of the test cluster, configured from the environment only.
    fn start(redis: &RedisServer) -> Process {
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
        command
            .env("HERALD_PORT", port.to_string())
            .env("HERALD_METRICS", "false")
            .env("HERALD_LOG", "warn")
            .env("HERALD_APP_ID", APP_ID)
            .env("HERALD_APP_KEY", KEY)
            .env("HERALD_APP_SECRET", SECRET)
            .env("HERALD_REDIS_URL", redis.url())
            .env("HERALD_CLUSTER_KEY_PREFIX", "t")
            .env("HERALD_CLUSTER_HEARTBEAT_INTERVAL", "100ms")
            .env("HERALD_CLUSTER_NODE_TIMEOUT", "1s");
        Process::spawn(command, port, None)
    }

    /// A node configured by `setup` (a file), on a free port, without its metrics listener.
    fn start_with(setup: Setup) -> Process {
        let port = free_port();
        let toml = setup
            .server("port", &port.to_string())
            .metrics("enabled", "false")
            .toml();
        let path = std::env::temp_dir().join(format!("herald-cluster-test-{port}.toml"));
        std::fs::write(&path, toml).expect("write the node's config");
        let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
        for (name, _) in std::env::vars().filter(|(k, _)| k.starts_with("HERALD_")) {
            command.env_remove(name);
        }
        command.arg("--config").arg(&path);
        Process::spawn(command, port, Some(path))
    }

    fn spawn(mut command: Command, port: u16, config: Option<std::path::PathBuf>) -> Process {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start the herald binary");
        Process {
            child,
            addr: ([127, 0, 0, 1], port).into(),
            config,
        }
    }

    async fn client(&self) -> Client {
        let url = format!(
            "ws://{}/app/{KEY}?protocol=7&client=js&version=8.4.0&flash=false",
            self.addr
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Client::connect_url(&url, WAIT).await {
                Ok(mut client) => {
                    client.established().await;
                    return client;
                }
                Err(e) => {
                    assert!(Instant::now() < deadline, "{e}");
                    sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Sends a signal by name (`STOP`, `CONT`) to the process, with the shell's `kill`
    /// (a builtin: no procps needed).
    fn signal(&self, name: &str) {
        let status = Command::new("sh")
            .args(["-c", &format!("kill -{name} {}", self.child.id())])
            .status()
            .expect("sh");
        assert!(status.success(), "kill -{name}");
    }

    fn kill(&mut self) {
        // SIGKILL: no shutdown, no goodbye to Redis.
        self.child.kill().expect("kill");
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(path) = &self.config {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_with_sigkill_is_reaped_within_ten_seconds() {
    let redis = RedisServer::start();
    let mut receiver = Receiver::start(0).await;
    let survivor = node(&redis).hook(&receiver.url, &[], false).start().await;
    let mut doomed = Process::start(&redis);

    let mut ghost = doomed.client().await;
    ghost.signin(r#"{"id":"g"}"#).await;
    ghost
        .join_presence("presence-room", r#"{"user_id":"g"}"#)
        .await;
    ghost.join("only-on-the-dead-node").await;
    let mut watcher = survivor.client().await;
    watcher.signin(r#"{"id":"w","watchlist":["g"]}"#).await;
    let initial = watcher.recv_json().await;
    assert!(
        initial["data"].to_string().contains(r#"\"online\""#),
        "{initial}"
    );
    let mut member = survivor.client().await;
    let presence = member
        .join_presence("presence-room", r#"{"user_id":"s"}"#)
        .await;
    assert_eq!(presence["count"], 2);
    // Webhooks so far: the channels occupied, the members added.
    collect_hooks(&mut receiver, Duration::from_millis(500)).await;

    let killed = Instant::now();
    doomed.kill();
    let removed = member.recv_json_within(Duration::from_secs(10)).await;
    assert_eq!(
        removed["event"], "pusher_internal:member_removed",
        "{removed}"
    );
    assert_eq!(
        json(removed["data"].as_str().unwrap()),
        json!({"user_id": "g"})
    );
    let offline = watcher.recv_json_within(Duration::from_secs(10)).await;
    assert!(
        offline["data"].to_string().contains(r#"\"offline\""#),
        "{offline}"
    );
    let reaped_in = killed.elapsed();
    assert!(reaped_in < Duration::from_secs(10), "{reaped_in:?}");
    member.expect_no_frame(Duration::from_millis(300)).await;

    let events = collect_hooks(&mut receiver, Duration::from_secs(1)).await;
    let counts = count_by_name(&events);
    assert_eq!(counts.get("member_removed"), Some(&1), "{events:?}");
    assert_eq!(counts.get("channel_vacated"), Some(&1), "{events:?}");
    assert_eq!(events.len(), 2, "{events:?}");
    let vacated = events
        .iter()
        .find(|e| e["name"] == "channel_vacated")
        .unwrap();
    assert_eq!(vacated["channel"], "only-on-the-dead-node");

    // Nothing of the dead node is left: every node key belongs to the survivor.
    let node_keys = redis.keys("t:node:*");
    let ids: std::collections::BTreeSet<&str> = node_keys
        .iter()
        .filter_map(|k| k.split(':').nth(2))
        .collect();
    assert_eq!(ids.len(), 1, "{node_keys:?}");
    assert_eq!(
        metric(&survivor, "herald_cluster_nodes_reaped_total").await,
        1
    );
    assert_eq!(
        metric(&survivor, "herald_cluster_departures_replayed_total").await,
        4,
        "the member, two channels' subscriptions, the sign-in"
    );
    eprintln!("reaped {reaped_in:?} after SIGKILL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_outlives_the_node_that_was_delivering_it() {
    let redis = RedisServer::start();
    // The endpoint fails at first: the node delivering keeps retrying (retry_for 60 s).
    let mut receiver = Receiver::start(2).await;
    let setup = node(&redis)
        .hook(&receiver.url, &["channel_occupied"], false)
        .webhooks("retry_for", "\"60s\"");
    let mut doomed = Process::start_with(setup.clone());
    let mut client = doomed.client().await;
    client.join("orders").await;
    for _ in 0..2 {
        let failed = receiver.next_within(Duration::from_secs(5)).await.unwrap();
        assert_eq!(failed.answered, 500);
    }
    doomed.kill();
    assert_eq!(
        redis.keys("t:webhooks").len(),
        1,
        "still queued, leased to the dead node"
    );

    // Another node claims it when the lease ends (the node timeout) and delivers it.
    let killed = Instant::now();
    let _survivor = setup.start().await;
    let hook = receiver.next_within(Duration::from_secs(10)).await.unwrap();
    assert_eq!(hook.answered, 200);
    assert_eq!(
        hook.events(),
        [json!({"name": "channel_occupied", "channel": "orders"})]
    );
    eventually(WAIT, "the delivered event leaves the queue", || async {
        redis.keys("t:webhooks").is_empty()
    })
    .await;
    eprintln!(
        "delivered {:?} after the node delivering it was killed",
        killed.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_declared_dead_closes_its_connections_with_4200_and_rejoins() {
    let redis = RedisServer::start();
    let survivor = node(&redis).start().await;
    let partitioned = Process::start(&redis);
    let mut stranded = partitioned.client().await;
    stranded
        .join_presence("presence-room", r#"{"user_id":"s"}"#)
        .await;
    let mut member = survivor.client().await;
    member
        .join_presence("presence-room", r#"{"user_id":"m"}"#)
        .await;
    let added = stranded.recv_json().await;
    assert_eq!(added["event"], "pusher_internal:member_added", "{added}");

    // Frozen past the node timeout: the survivor declares it dead and replays its departures.
    partitioned.signal("STOP");
    let removed = member.recv_json_within(Duration::from_secs(10)).await;
    assert_eq!(
        removed["event"], "pusher_internal:member_removed",
        "{removed}"
    );
    partitioned.signal("CONT");

    // Back, it learns it was declared dead: its clients are told to reconnect. (What the bus
    // brought while it was frozen may come first: the members the survivor removed, this
    // one included.)
    loop {
        let frame = stranded.recv_json().await;
        if frame["event"] == "pusher_internal:member_removed" {
            continue;
        }
        assert_eq!(
            frame,
            json!({"event": "pusher:error",
                   "data": {"code": 4200, "message": "Server is rejoining its cluster; reconnect"}})
        );
        break;
    }
    let (code, _) = stranded.expect_close().await;
    assert_eq!(code, Some(4200));
    // It serves again, as a new node: the member is back for the others, once.
    let mut back = partitioned.client().await;
    back.join_presence("presence-room", r#"{"user_id":"s"}"#)
        .await;
    let added = member.recv_json_within(Duration::from_secs(5)).await;
    assert_eq!(added["event"], "pusher_internal:member_added", "{added}");
    let node_keys = redis.keys("t:node:*:alive");
    assert_eq!(
        node_keys.len(),
        2,
        "the survivor and the new node: {node_keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_is_survived_without_spurious_webhooks() {
    let mut redis = RedisServer::start();
    let mut receiver = Receiver::start(0).await;
    let setup = node(&redis).hook(&receiver.url, &[], false);
    let nodes = start_nodes(setup, 2).await;
    let mut alice = nodes[0].client().await;
    alice
        .join_presence("presence-room", r#"{"user_id":"alice"}"#)
        .await;
    let mut reader = nodes[1].client().await;
    reader.join("chat").await;
    let before = collect_hooks(&mut receiver, Duration::from_millis(500)).await;
    assert_eq!(before.len(), 3, "{before:?}");

    redis.stop();
    // The outage is noticed (by a heartbeat or a command) and answered 503, never a hang.
    let api = nodes[0].api();
    eventually(
        Duration::from_secs(3),
        "503 while Redis is down",
        || async {
            let started = Instant::now();
            let response = api
                .trigger(json!({"name": "e", "channel": "chat", "data": "lost"}))
                .await;
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{:?}",
                started.elapsed()
            );
            response.status == 503
        },
    )
    .await;
    let refused = api
        .trigger(json!({"name": "e", "channel": "chat", "data": "lost"}))
        .await;
    assert_eq!(refused.status, 503);
    assert!(refused.json()["error"].is_string(), "{}", refused.body);
    let ready = reqwest::get(nodes[0].http_url("/ready")).await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(metric(&nodes[0], "herald_cluster_redis_up").await, 0);
    // Local delivery goes on.
    let mut local = nodes[1].client().await;
    local.join("chat").await;

    redis.restart();
    let back = Instant::now();
    // Until the other node's bus subscription is restored, what is published misses it.
    let mut recovered = None;
    while back.elapsed() < Duration::from_secs(3) {
        let response = api
            .trigger(json!({"name": "e", "channel": "chat", "data": "again"}))
            .await;
        if response.status == 200 {
            if let Some(common::Frame::Text(text)) =
                reader.next_frame(Duration::from_millis(100)).await
            {
                assert_eq!(json(&text)["data"], "again", "{text}");
                recovered = Some(back.elapsed());
                break;
            }
        } else {
            sleep(Duration::from_millis(20)).await;
        }
    }
    let recovered = recovered.expect("no delivery across nodes within 3 s of Redis coming back");
    assert!(recovered < Duration::from_secs(2), "{recovered:?}");
    // The state is reasserted: the member and both subscriptions to chat are counted again.
    let api1 = nodes[1].api();
    eventually(Duration::from_secs(2), "the member restored", || async {
        let users = api1
            .get(&api1.path("/channels/presence-room/users"), &[])
            .await;
        users.status == 200 && users.json() == json!({"users": [{"id": "alice"}]})
    })
    .await;
    eventually(
        Duration::from_secs(2),
        "the subscriptions restored",
        || async { subscription_count(&redis, "chat") == 2 },
    )
    .await;
    let after = collect_hooks(&mut receiver, Duration::from_secs(1)).await;
    assert!(
        after.is_empty(),
        "spurious webhooks after the restart: {after:?}"
    );
    for node in &nodes {
        assert_eq!(metric(node, "herald_cluster_redis_up").await, 1);
        assert_eq!(metric(node, "herald_cluster_outages_total").await, 1);
        assert!(metric(node, "herald_cluster_resyncs_total").await >= 1);
    }
    eprintln!("delivering across nodes {recovered:?} after Redis answered again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_stops_start_up_naming_the_setting() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let toml = format!(
        "[server]\nport = 0\n[metrics]\nenabled = false\n[cluster]\nredis_url = \"redis://127.0.0.1:{port}\"\n"
    );
    let config = herald::config::Config::load(Some(&toml), &|_| None).unwrap();
    let listeners = herald::server::Listeners::bind(&config).unwrap();
    let run = herald::server::run(listeners, config, herald::shutdown::Shutdown::new());
    let error = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("start-up gave up")
        .expect_err("start-up must fail");
    assert!(
        error.to_string().starts_with("cluster.redis_url: "),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_on_one_node_shows_what_happens_on_another_once() {
    use common::console::{Console, TOKEN};
    let redis = RedisServer::start();
    let setup = node(&redis)
        .console("enabled", "true")
        .console("token", &format!("\"{TOKEN}\""));
    let nodes = start_nodes(setup, 2).await;
    let console = Console::logged_in(&nodes[0]).await;
    let mut feed = console.watch(APP_ID).await;

    // Node A's own activity carries its node id.
    let mut here = nodes[0].client().await;
    here.join("news").await;
    let mine = feed.next_of("connection_opened").await;
    let node_a = mine["node"]
        .as_str()
        .expect("a node id on a cluster")
        .to_owned();

    // Node B learns at its heartbeat that a console on A watches the app.
    let api_b = nodes[1].api();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        assert!(
            Instant::now() < deadline,
            "node B never relayed to A's console"
        );
        api_b.publish("probe", "e", "1").await;
        if let Some(entry) = feed.next_within(Duration::from_millis(200)).await {
            if entry["kind"] == "api_event" && entry["channel"] == "probe" {
                assert_ne!(entry["node"], json!(node_a));
                break;
            }
        }
    }

    let mut there = nodes[1].client().await;
    let there_id = there.socket_id.clone();
    there.join("news").await;
    let opened = feed
        .until("connection_opened", WAIT, |e| {
            e["socket_id"] == json!(there_id)
        })
        .await
        .0;
    let node_b = opened["node"].as_str().unwrap().to_owned();
    assert_ne!(node_b, node_a);
    let subscribed = feed
        .until("subscribed", WAIT, |e| e["socket_id"] == json!(there_id))
        .await
        .0;
    assert_eq!(
        (&subscribed["channel"], &subscribed["node"]),
        (&json!("news"), &json!(node_b))
    );

    // An API event on B, delivered by both nodes, is reported once, by B.
    api_b.publish("news", "flash", "{\"n\":1}").await;
    assert_eq!(here.recv_json().await["event"], "flash");
    assert_eq!(there.recv_json().await["event"], "flash");
    let event = feed
        .until("api_event", WAIT, |e| e["event"] == "flash")
        .await
        .0;
    assert_eq!(event["node"], json!(node_b));
    while let Some(entry) = feed.next_within(Duration::from_millis(500)).await {
        assert!(
            !(entry["kind"] == "api_event" && entry["event"] == "flash"),
            "reported twice: {entry}"
        );
    }

    // Its channels view is the cluster's.
    let channels = console
        .get(&format!("/api/apps/{APP_ID}/channels"))
        .await
        .json();
    let news = channels["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "news")
        .cloned()
        .unwrap();
    assert_eq!(news["subscription_count"], 2);
}
