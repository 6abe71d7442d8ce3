//! Occupancy, presence, users and queries across nodes.

use std::collections::{BTreeMap, BTreeSet};

use fred::interfaces::ClientLike;
use fred::types::Value;
use tokio::task::JoinSet;

use super::{all_keys, engine, hash, RedisServer};
use crate::cluster::channel::{ChannelCounts, Member, MemberJoin};
use crate::cluster::keys::escape_app;
use crate::cluster::Engine;

const APP: &str = "app";

/// 100 joins on each of two nodes at once: one `occupied` among the 200, every total from 1 to
/// 200 seen exactly once (each join saw its own atomic step); then 200 leaves: one `vacated`,
/// and nothing of the channel left in Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_200_concurrent_joins_occupy_once_then_vacate_once() {
    let redis = RedisServer::start();
    let nodes = [engine(&redis).await, engine(&redis).await];
    let mut joins = JoinSet::new();
    for i in 0..200 {
        let node = nodes[i % 2].clone();
        joins.spawn(async move { node.join(APP, "chat").await.unwrap() });
    }
    let joined = joins.join_all().await;
    assert_eq!(joined.iter().filter(|j| j.occupied).count(), 1);
    let totals: BTreeSet<u64> = joined.iter().map(|j| j.subscription_count).collect();
    assert_eq!(totals, (1..=200).collect());

    let per_node = hash(&nodes[0], &nodes[0].keys().channel(APP, "chat")).await;
    assert_eq!(per_node[nodes[0].node().as_str()], "100");
    assert_eq!(per_node[nodes[1].node().as_str()], "100");
    assert_eq!(per_node["total"], "200");
    let counts = ChannelCounts {
        subscription_count: 200,
        user_count: 0,
    };
    assert_eq!(nodes[1].channel_info(APP, "chat").await.unwrap(), counts);
    assert_eq!(
        nodes[1].channels(APP, "").await.unwrap(),
        vec![("chat".to_owned(), counts)]
    );

    let mut leaves = JoinSet::new();
    for i in 0..200 {
        let node = nodes[i % 2].clone();
        leaves.spawn(async move { node.leave(APP, "chat").await.unwrap() });
    }
    let left = leaves.join_all().await;
    assert_eq!(left.iter().filter(|l| l.vacated).count(), 1);
    let totals: BTreeSet<u64> = left.iter().map(|l| l.subscription_count).collect();
    assert_eq!(totals, (0..200).collect());
    assert!(nodes[0].channels(APP, "").await.unwrap().is_empty());
    assert_only_node_registry(&nodes).await;
}

/// 50 users, each with two connections on each of two nodes, all 200 joining at once: exactly
/// one `member_added` per user and one `occupied`; the 200 leaves: exactly one `member_removed`
/// per user and one `vacated`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_200_concurrent_presence_joins_add_each_member_once() {
    let redis = RedisServer::start();
    let nodes = [engine(&redis).await, engine(&redis).await];
    let channel = "presence-room";
    let mut joins = JoinSet::new();
    for i in 0..200 {
        let node = nodes[i % 2].clone();
        let user = format!("user-{}", i % 50);
        joins.spawn(async move {
            let info = format!(r#"{{"name":"{user}"}}"#);
            let member = node
                .member_join(APP, channel, &user, Some(&info), 100)
                .await
                .unwrap();
            let joined = node.join(APP, channel).await.unwrap();
            (user, member, joined.occupied)
        });
    }
    let joined = joins.join_all().await;
    let mut added: BTreeMap<&str, usize> = BTreeMap::new();
    for (user, member, _) in &joined {
        if matches!(member, MemberJoin::Added { .. }) {
            *added.entry(user).or_default() += 1;
        }
    }
    assert_eq!(added.len(), 50, "every user was added");
    assert!(added.values().all(|&n| n == 1), "once each: {added:?}");
    assert_eq!(
        joined.iter().filter(|(_, _, occupied)| *occupied).count(),
        1
    );
    let counts = nodes[0].channel_info(APP, channel).await.unwrap();
    assert_eq!((counts.subscription_count, counts.user_count), (200, 50));
    let members = nodes[1].members(APP, channel).await.unwrap();
    assert_eq!(members.len(), 50);
    let user_7 = Member {
        user_id: "user-7".into(),
        info: Some(r#"{"name":"user-7"}"#.into()),
    };
    assert!(members.contains(&user_7), "{members:?}");

    let mut leaves = JoinSet::new();
    for i in 0..200 {
        let node = nodes[i % 2].clone();
        let user = format!("user-{}", i % 50);
        leaves.spawn(async move {
            let member = node.member_leave(APP, channel, &user).await.unwrap();
            let left = node.leave(APP, channel).await.unwrap();
            (user, member.removed, left.vacated)
        });
    }
    let left = leaves.join_all().await;
    let removed: BTreeMap<&str, usize> =
        left.iter()
            .filter(|(_, r, _)| *r)
            .fold(BTreeMap::new(), |mut m, (u, _, _)| {
                *m.entry(u.as_str()).or_default() += 1;
                m
            });
    assert_eq!(removed.len(), 50);
    assert!(removed.values().all(|&n| n == 1), "once each: {removed:?}");
    assert_eq!(left.iter().filter(|(_, _, vacated)| *vacated).count(), 1);
    assert!(nodes[0].members(APP, channel).await.unwrap().is_empty());
    assert_only_node_registry(&nodes).await;
}

/// A limit of 10 members, 30 users joining at once through two nodes: exactly 10 are admitted,
/// the 20 others are refused without a trace; a second connection of an admitted user is
/// still accepted (on the other node) when the channel is full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_member_limit_holds_across_nodes() {
    let redis = RedisServer::start();
    let nodes = [engine(&redis).await, engine(&redis).await];
    let channel = "presence-small";
    let mut joins = JoinSet::new();
    for i in 0..30 {
        let node = nodes[i % 2].clone();
        joins.spawn(async move {
            let user = format!("u{i}");
            let outcome = node
                .member_join(APP, channel, &user, None, 10)
                .await
                .unwrap();
            (i, user, outcome)
        });
    }
    let outcomes = joins.join_all().await;
    let admitted: Vec<_> = outcomes
        .iter()
        .filter(|(_, _, o)| matches!(o, MemberJoin::Added { .. }))
        .collect();
    let refused = outcomes
        .iter()
        .filter(|(_, _, o)| *o == MemberJoin::Full { user_count: 10 })
        .count();
    assert_eq!((admitted.len(), refused), (10, 20));
    let members = nodes[0].members(APP, channel).await.unwrap();
    assert_eq!(members.len(), 10);
    assert!(members.iter().all(|m| m.info.is_none()));

    let (i, user, _) = admitted[0];
    let other = &nodes[(i + 1) % 2];
    let again = other
        .member_join(APP, channel, user, None, 10)
        .await
        .unwrap();
    assert_eq!(again, MemberJoin::Again { user_count: 10 });
    let held: usize = hash(
        &nodes[0],
        &nodes[0].keys().node_members(nodes[0].node().as_str()),
    )
    .await
    .len()
        + hash(
            &nodes[1],
            &nodes[1].keys().node_members(nodes[1].node().as_str()),
        )
        .await
        .len();
    assert_eq!(
        held, 11,
        "10 admitted members, and the second connection on the other node"
    );
    let counts = nodes[0].channel_info(APP, channel).await.unwrap();
    assert_eq!(counts.user_count, 10);
}

/// A user signing in three times on each of two nodes at once comes online once (20 users, 120
/// sign-ins); signing out all of them, it goes offline once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_come_online_once_and_go_offline_once_across_nodes() {
    let redis = RedisServer::start();
    let nodes = [engine(&redis).await, engine(&redis).await];
    let mut sign_ins = JoinSet::new();
    for i in 0..120 {
        let node = nodes[i % 2].clone();
        let user = format!("user-{}", i % 20);
        sign_ins.spawn(async move { (node.user_online(APP, &user).await.unwrap(), user) });
    }
    let signed_in = sign_ins.join_all().await;
    let online: BTreeSet<&str> = signed_in
        .iter()
        .filter(|(s, _)| s.came_online)
        .map(|(_, u)| u.as_str())
        .collect();
    assert_eq!(online.len(), 20);
    assert_eq!(signed_in.iter().filter(|(s, _)| s.came_online).count(), 20);
    assert_eq!(
        nodes[1].online(APP, &["user-3", "nobody"]).await.unwrap(),
        vec![true, false]
    );

    let mut sign_outs = JoinSet::new();
    for i in 0..120 {
        let node = nodes[i % 2].clone();
        let user = format!("user-{}", i % 20);
        sign_outs.spawn(async move { (node.user_offline(APP, &user).await.unwrap(), user) });
    }
    let signed_out = sign_outs.join_all().await;
    let offline: BTreeSet<&str> = signed_out
        .iter()
        .filter(|(s, _)| s.went_offline)
        .map(|(_, u)| u.as_str())
        .collect();
    assert_eq!(offline.len(), 20);
    assert_eq!(
        signed_out.iter().filter(|(s, _)| s.went_offline).count(),
        20
    );
    assert_eq!(
        nodes[0].online(APP, &["user-3"]).await.unwrap(),
        vec![false]
    );
    assert_only_node_registry(&nodes).await;
}

/// A node cannot leave what it did not join: another node's subscription, member or sign-in
/// stays, and no count goes below zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cannot_undo_another_nodes_join() {
    let redis = RedisServer::start();
    let (a, b) = (engine(&redis).await, engine(&redis).await);
    assert!(a.join(APP, "presence-x").await.unwrap().occupied);
    a.member_join(APP, "presence-x", "u", None, 5)
        .await
        .unwrap();
    a.user_online(APP, "u").await.unwrap();

    let left = b.leave(APP, "presence-x").await.unwrap();
    assert!(!left.vacated);
    assert_eq!(left.subscription_count, 1);
    assert!(
        !b.member_leave(APP, "presence-x", "u")
            .await
            .unwrap()
            .removed
    );
    assert!(!b.user_offline(APP, "u").await.unwrap().went_offline);
    let never = b.leave(APP, "never-joined").await.unwrap();
    assert_eq!((never.vacated, never.subscription_count), (false, 0));

    let counts = a.channel_info(APP, "presence-x").await.unwrap();
    assert_eq!((counts.subscription_count, counts.user_count), (1, 1));
    assert_eq!(a.online(APP, &["u"]).await.unwrap(), vec![true]);
}

/// The queries: channels by prefix in name order with both counts, a channel nobody is on,
/// app ids with `:` and `%` kept apart from others; and each query is one command in Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_answer_for_the_cluster_in_one_command() {
    let redis = RedisServer::start();
    let (a, b) = (engine(&redis).await, engine(&redis).await);
    for (node, channel, user) in [
        (&a, "presence-b", "u1"),
        (&b, "presence-b", "u2"),
        (&b, "presence-b", "u2"),
        (&a, "presence-a", "u1"),
    ] {
        node.member_join(APP, channel, user, Some("{}"), 100)
            .await
            .unwrap();
        node.join(APP, channel).await.unwrap();
    }
    a.join(APP, "private-x").await.unwrap();
    b.join(APP, "public").await.unwrap();
    b.join(APP, "public").await.unwrap();
    let odd_app = "a:b%c";
    b.join(odd_app, "public").await.unwrap();

    let presence = a.channels(APP, "presence-").await.unwrap();
    let counts = |s, u| ChannelCounts {
        subscription_count: s,
        user_count: u,
    };
    assert_eq!(
        presence,
        vec![
            ("presence-a".to_owned(), counts(1, 1)),
            ("presence-b".to_owned(), counts(3, 2)),
        ]
    );
    let all: Vec<String> = b
        .channels(APP, "")
        .await
        .unwrap()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(all, ["presence-a", "presence-b", "private-x", "public"]);
    assert_eq!(
        b.channels(odd_app, "").await.unwrap(),
        vec![("public".to_owned(), counts(1, 0))]
    );
    assert_eq!(
        a.channel_info(APP, "nobody-here").await.unwrap(),
        ChannelCounts::default()
    );

    // Each query is one command from the client (the scripts were loaded at connect); MONITOR
    // shows what runs inside a script as `[0 lua]`.
    let monitor = redis.monitor();
    let marker = |text: &'static str| a.client.custom::<String, _>(fred::cmd!("ECHO"), vec![text]);
    for query in 0..4 {
        marker("query-start").await.unwrap();
        match query {
            0 => drop(a.channels(APP, "presence-").await.unwrap()),
            1 => drop(a.channel_info(APP, "presence-b").await.unwrap()),
            2 => drop(a.members(APP, "presence-b").await.unwrap()),
            _ => drop(a.online(APP, &["u1", "u2"]).await.unwrap()),
        }
        marker("query-end").await.unwrap();
    }
    let lines = monitor.finish("query-end", 4);
    let mut per_query = Vec::new();
    let mut current = None;
    for line in &lines {
        if line.contains("\"query-start\"") {
            current = Some(Vec::new());
        } else if line.contains("\"query-end\"") {
            per_query.extend(current.take());
        } else if let Some(commands) = current.as_mut() {
            if !line.contains(" lua] ") {
                commands.push(line.clone());
            }
        }
    }
    assert_eq!(per_query.len(), 4, "{lines:#?}");
    for (query, commands) in per_query.iter().enumerate() {
        assert_eq!(commands.len(), 1, "query {query}: {commands:#?}");
    }
}

/// The key names the Lua scripts build are the ones keys.rs documents, and the scripts create
/// no key outside that layout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scripts_use_the_documented_key_layout() {
    let redis = RedisServer::start();
    let a = engine(&redis).await;
    let (node, app, channel) = (a.node().as_str(), "a:b%c", "presence-k");
    let lua = concat!(
        include_str!("../lua/lib.lua"),
        "\nreturn { k_nodes(), k_reaping(), k_reaped(), k_alive(ARGV[2]),
          k_node_channels(ARGV[2]), k_node_members(ARGV[2]), k_node_users(ARGV[2]),
          k_channels(ARGV[3]), k_channel(ARGV[3], ARGV[4]), k_members(ARGV[3], ARGV[4]),
          k_info(ARGV[3], ARGV[4]), k_users(ARGV[3]), k_departures(),
          k_node_connections(ARGV[2]), k_webhooks(), k_bus(), k_count_seq() }"
    );
    let escaped = escape_app(app).into_owned();
    let from_lua: Vec<String> = a
        .client
        .custom(
            fred::cmd!("EVAL"),
            vec![lua, "0", "t", node, escaped.as_str(), channel],
        )
        .await
        .unwrap();
    let keys = a.keys();
    let from_rust = vec![
        keys.nodes(),
        keys.reaping(),
        keys.reaped(),
        keys.alive(node),
        keys.node_channels(node),
        keys.node_members(node),
        keys.node_users(node),
        keys.channels(app),
        keys.channel(app, channel),
        keys.members(app, channel),
        keys.member_info(app, channel),
        keys.users(app),
        keys.departures(),
        keys.node_connections(node),
        keys.webhooks(),
        keys.bus(),
        keys.count_seq(),
    ];
    assert_eq!(from_lua, from_rust);

    a.join(app, channel).await.unwrap();
    a.member_join(app, channel, "u:1", Some("{}"), 10)
        .await
        .unwrap();
    a.user_online(app, "u1").await.unwrap();
    let departing = crate::cluster::grace::Departing {
        app: app.into(),
        channel: channel.into(),
        user: None,
    };
    a.hold_departure(&departing, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert!(a.connection_open(app, 10).await.unwrap());
    a.push_webhook("{}").await.unwrap();
    let created: BTreeSet<String> = all_keys(&a).await.into_iter().collect();
    let documented: BTreeSet<String> = from_rust
        .into_iter()
        // Not created here: the reaping records, and the bus (a pub/sub channel, not a key).
        .filter(|k| !k.ends_with(":reaping") && !k.ends_with(":reaped") && !k.ends_with(":bus"))
        .collect();
    assert_eq!(created, documented);
}

/// After everything left, only the node registry, heartbeats and the count numbering remain
/// (a heartbeat may have expired: these tests do not beat).
async fn assert_only_node_registry(nodes: &[Engine]) {
    let keys = nodes[0].keys();
    // The count numbering stays, like the node numbering: it only ever grows.
    let mut allowed: Vec<String> = vec![keys.nodes(), keys.count_seq()];
    allowed.extend(nodes.iter().map(|n| keys.alive(n.node().as_str())));
    let left = all_keys(&nodes[0]).await;
    assert!(left.iter().all(|k| allowed.contains(k)), "{left:?}");
    let registered: Value = nodes[0]
        .client
        .custom(fred::cmd!("SCARD"), vec![keys.nodes()])
        .await
        .unwrap();
    assert_eq!(registered, Value::Integer(nodes.len() as i64));
}

/// Every count the cluster makes has a higher number than the ones before it, whichever node
/// made it and whichever channel it counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_numbered_in_the_order_they_are_made() {
    let redis = RedisServer::start();
    let (a, b) = (engine(&redis).await, engine(&redis).await);
    let seqs = [
        a.join(APP, "x").await.unwrap().seq,
        b.join(APP, "x").await.unwrap().seq,
        b.join(APP, "y").await.unwrap().seq,
        a.leave(APP, "x").await.unwrap().seq,
        b.leave(APP, "x").await.unwrap().seq,
    ];
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}
