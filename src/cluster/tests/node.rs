//! Heartbeats, reaping a dead node exactly once, being declared dead, Redis going away.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::{all_keys, engine, engine_with, hash, keep_beating, settings, RedisServer};
use crate::cluster::channel::MemberJoin;
use crate::cluster::node::{Beat, Departure, Held};
use crate::cluster::{ClusterError, Engine, KeyPrefix, Settings};

const APP: &str = "app";

/// Long enough for a heartbeat that is no longer renewed to expire.
async fn wait_for_timeout(engine: &Engine) {
    tokio::time::sleep(engine.settings().node_timeout + Duration::from_millis(200)).await;
}

/// The dead node's state: 30 channels (10 shared with a survivor), 20 members of a presence
/// channel (5 also connected on a survivor), 10 signed-in users (3 also on a survivor).
async fn populate(dead: &Engine, survivor: &Engine) {
    for i in 0..30 {
        dead.join(APP, &format!("ch{i}")).await.unwrap();
        if i < 10 {
            survivor.join(APP, &format!("ch{i}")).await.unwrap();
        }
    }
    for i in 0..20 {
        let user = format!("m{i}");
        dead.member_join(APP, "presence-room", &user, None, 100)
            .await
            .unwrap();
        dead.join(APP, "presence-room").await.unwrap();
        if i < 5 {
            survivor
                .member_join(APP, "presence-room", &user, None, 100)
                .await
                .unwrap();
            survivor.join(APP, "presence-room").await.unwrap();
        }
    }
    for i in 0..10 {
        dead.user_online(APP, &format!("s{i}")).await.unwrap();
        if i < 3 {
            survivor.user_online(APP, &format!("s{i}")).await.unwrap();
        }
    }
}

/// Counts each departure.
fn tally(departures: &[Departure]) -> BTreeMap<Departure, usize> {
    let mut seen = BTreeMap::new();
    for d in departures {
        *seen.entry(d.clone()).or_default() += 1;
    }
    seen
}

/// A node dies (its heartbeat stops, nothing is cleaned up). Two survivors reap at the same
/// moment, with batches of 7 records (so ~10 batches): between them they get each departure
/// exactly once — 15 `member_removed` (not the 5 users still on a survivor), 31 channel
/// departures of which 20 vacated, 7 `offline` — and nothing of the dead node is left in
/// Redis but its id among the reaped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_is_reaped_once_even_by_two_concurrent_reapers() {
    let redis = RedisServer::start();
    let small_batches = Settings {
        reap_batch: 7,
        ..settings()
    };
    let a = engine_with(&redis, small_batches.clone()).await;
    let b = engine_with(&redis, small_batches).await;
    let dead = engine(&redis).await;
    let beats = [keep_beating(&a), keep_beating(&b)];
    populate(&dead, &a).await;
    let mut early = Vec::new();
    a.reap(|d| early.push(d)).await.unwrap();
    assert!(early.is_empty(), "a live node is not reaped: {early:?}");

    wait_for_timeout(&dead).await;
    let (mut from_a, mut from_b) = (Vec::new(), Vec::new());
    let (reaped_a, reaped_b) = tokio::join!(a.reap(|d| from_a.push(d)), b.reap(|d| from_b.push(d)));
    assert_eq!(reaped_a.unwrap() + reaped_b.unwrap(), 1);
    let all: Vec<Departure> = from_a.iter().chain(&from_b).cloned().collect();
    let seen = tally(&all);
    assert!(
        seen.values().all(|&n| n == 1),
        "a departure twice: {seen:?}"
    );
    assert!(
        from_a.is_empty() || from_b.is_empty(),
        "one reaper claimed the node"
    );

    let removed: Vec<&str> = all
        .iter()
        .filter_map(|d| match d {
            Departure::MemberRemoved { app, channel, user } => {
                assert_eq!((app.as_str(), channel.as_str()), (APP, "presence-room"));
                Some(user.as_str())
            }
            _ => None,
        })
        .collect();
    let mut expected: Vec<String> = (5..20).map(|i| format!("m{i}")).collect();
    expected.sort();
    let mut removed_sorted = removed.clone();
    removed_sorted.sort();
    assert_eq!(removed_sorted, expected);

    let channels: BTreeMap<&str, u64> = all
        .iter()
        .filter_map(|d| match d {
            Departure::Unsubscribed {
                channel,
                subscription_count,
                ..
            } => Some((channel.as_str(), *subscription_count)),
            _ => None,
        })
        .collect();
    assert_eq!(channels.len(), 31);
    assert_eq!(all.iter().filter(|d| d.is_vacated()).count(), 20);
    assert_eq!(channels["ch3"], 1);
    assert_eq!(channels["ch29"], 0);
    assert_eq!(channels["presence-room"], 5);
    // Members leave before their channel's subscriptions.
    let first_channel = all
        .iter()
        .position(|d| matches!(d, Departure::Unsubscribed { .. }));
    let last_member = all
        .iter()
        .rposition(|d| matches!(d, Departure::MemberRemoved { .. }));
    assert!(last_member < first_channel);

    let mut offline: Vec<&str> = all
        .iter()
        .filter_map(|d| match d {
            Departure::Offline { user, .. } => Some(user.as_str()),
            _ => None,
        })
        .collect();
    offline.sort();
    assert_eq!(offline, ["s3", "s4", "s5", "s6", "s7", "s8", "s9"]);

    // Nothing of the dead node is left, but its tombstone.
    let id = dead.node().as_str();
    let keys = all_keys(&a).await;
    assert!(keys.iter().all(|k| !k.contains(id)), "{keys:?}");
    for i in 0..10 {
        let per_node = hash(&a, &a.keys().channel(APP, &format!("ch{i}"))).await;
        assert!(!per_node.contains_key(id), "{per_node:?}");
    }
    assert!(hash(&a, &a.keys().reaping()).await.is_empty());
    let tombstone: Option<f64> =
        fred::interfaces::SortedSetsInterface::zscore(&a.client, a.keys().reaped(), id)
            .await
            .unwrap();
    assert!(tombstone.is_some());

    // The survivor's share is intact, and a second reap finds nothing.
    let room = a.channel_info(APP, "presence-room").await.unwrap();
    assert_eq!((room.subscription_count, room.user_count), (5, 5));
    assert_eq!(
        a.online(APP, &["s0", "s3"]).await.unwrap(),
        vec![true, false]
    );
    let mut again = Vec::new();
    b.reap(|d| again.push(d)).await.unwrap();
    assert!(again.is_empty());
    beats.iter().for_each(|b| b.abort());
}

/// A partitioned node whose heartbeat expired and was reaped finds out: its beat says so, its
/// changes are refused, and it cannot register again under the same id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reaped_node_learns_it_was_declared_dead() {
    let redis = RedisServer::start();
    let (a, partitioned) = (engine(&redis).await, engine(&redis).await);
    let beat = keep_beating(&a);
    partitioned.join(APP, "c").await.unwrap();
    assert_eq!(partitioned.beat().await.unwrap(), Beat::Alive);
    wait_for_timeout(&partitioned).await;
    let mut departures = Vec::new();
    a.reap(|d| departures.push(d)).await.unwrap();
    assert_eq!(departures.len(), 1);
    assert!(departures[0].is_vacated());

    assert_eq!(partitioned.beat().await.unwrap(), Beat::DeclaredDead);
    assert_eq!(
        partitioned.join(APP, "c").await,
        Err(ClusterError::DeclaredDead)
    );
    assert_eq!(
        partitioned.register().await,
        Err(ClusterError::DeclaredDead)
    );
    assert!(all_keys(&a).await.iter().all(|k| !k.contains(":app:")));
    beat.abort();
}

/// A reaper that claimed a dead node and died before replaying it: the next reaper takes over
/// its claim, and replays both the first dead node and the dead reaper.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claims_of_a_reaper_that_died_pass_to_the_next() {
    let redis = RedisServer::start();
    let (reaper, survivor, dead) = (
        engine(&redis).await,
        engine(&redis).await,
        engine(&redis).await,
    );
    let beats = [keep_beating(&reaper), keep_beating(&survivor)];
    dead.member_join(APP, "presence-r", "d", None, 10)
        .await
        .unwrap();
    reaper
        .member_join(APP, "presence-r", "r", None, 10)
        .await
        .unwrap();
    wait_for_timeout(&dead).await;
    assert_eq!(
        reaper.claim_dead().await.unwrap(),
        vec![dead.node().to_string()]
    );
    beats[0].abort();
    wait_for_timeout(&reaper).await;

    let mut departures = Vec::new();
    assert_eq!(survivor.reap(|d| departures.push(d)).await.unwrap(), 2);
    let mut users: Vec<String> = departures
        .into_iter()
        .map(|d| match d {
            Departure::MemberRemoved { user, .. } => user,
            other => panic!("{other:?}"),
        })
        .collect();
    users.sort();
    assert_eq!(users, ["d", "r"]);
    assert!(hash(&survivor, &survivor.keys().reaping()).await.is_empty());
    beats[1].abort();
}

/// A node that retires with connections still recorded hands them to the next reaper.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retiring_node_leaves_its_remainder_to_the_next_reaper() {
    let redis = RedisServer::start();
    let (a, leaving) = (engine(&redis).await, engine(&redis).await);
    leaving.join(APP, "c1").await.unwrap();
    leaving.user_online(APP, "u").await.unwrap();
    assert_eq!(leaving.retire().await.unwrap(), 2);
    assert_eq!(leaving.beat().await.unwrap(), Beat::Forgotten);
    let mut departures = Vec::new();
    assert_eq!(a.reap(|d| departures.push(d)).await.unwrap(), 1);
    assert_eq!(departures.len(), 2);
    assert!(departures.iter().any(Departure::is_vacated));
    assert!(departures.contains(&Departure::Offline {
        app: APP.into(),
        user: "u".into()
    }));
    let id = leaving.node().as_str();
    assert!(all_keys(&a).await.iter().all(|k| !k.contains(id)));
}

/// Redis stopped: calls fail with `Unavailable` within the command timeout instead of hanging.
/// Redis back without its data: the node is `Forgotten`, registers again and is alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_is_unavailable_and_a_restarted_redis_forgets_the_node() {
    let mut redis = RedisServer::start();
    let a = engine(&redis).await;
    a.join(APP, "c").await.unwrap();
    redis.stop();
    let start = Instant::now();
    let failed = a.join(APP, "c").await;
    assert!(
        matches!(failed, Err(ClusterError::Unavailable(_))),
        "{failed:?}"
    );
    let waited = start.elapsed();
    assert!(
        waited < a.settings().command_timeout + Duration::from_secs(1),
        "{waited:?}"
    );

    redis.restart();
    let beat = beat_when_back(&a).await;
    assert_eq!(beat, Beat::Forgotten);
    assert_eq!(a.join(APP, "c").await, Err(ClusterError::Forgotten));
    a.register().await.unwrap();
    assert_eq!(a.beat().await.unwrap(), Beat::Alive);
    assert!(a.join(APP, "c").await.unwrap().occupied);
}

/// No Redis at the URL: connecting fails at once with `Unavailable`; a URL that is not a Redis
/// URL is `BadUrl`; settings that contradict each other are refused before connecting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_without_redis_fails_fast_and_names_the_problem() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let prefix = || KeyPrefix::parse("t").unwrap();
    let start = Instant::now();
    let nobody = Engine::connect(&format!("redis://127.0.0.1:{port}"), prefix(), settings()).await;
    assert!(
        matches!(nobody, Err(ClusterError::Unavailable(_))),
        "{nobody:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let bad = Engine::connect("http://127.0.0.1:1/", prefix(), settings()).await;
    assert!(matches!(bad, Err(ClusterError::BadUrl(_))), "{bad:?}");
    let contradictory = Settings {
        node_timeout: Duration::from_millis(150),
        heartbeat_interval: Duration::from_millis(100),
        ..settings()
    };
    let refused = Engine::connect("redis://127.0.0.1:1", prefix(), contradictory).await;
    assert!(
        matches!(refused, Err(ClusterError::BadSettings(_))),
        "{refused:?}"
    );
}

/// Waits until Redis answers `engine` again and returns its beat.
async fn beat_when_back(engine: &Engine) -> Beat {
    let start = Instant::now();
    loop {
        match engine.beat().await {
            Ok(beat) => return beat,
            Err(ClusterError::Unavailable(_)) if start.elapsed() < Duration::from_secs(5) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// Redis restarts without its data: the node registers again and restores what it holds. The
/// counts are back (restoring twice changes nothing; a lower count lowers them), another
/// node's join finds the channel occupied and the member present already, and the transitions
/// come out right when everything leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_node_restores_its_state_without_transitions() {
    let mut redis = RedisServer::start();
    let (a, b) = (engine(&redis).await, engine(&redis).await);
    let info = r#"{"name":"U"}"#;
    for _ in 0..3 {
        a.join(APP, "chat").await.unwrap();
    }
    for _ in 0..2 {
        a.member_join(APP, "presence-p", "u", Some(info), 10)
            .await
            .unwrap();
        a.join(APP, "presence-p").await.unwrap();
        a.user_online(APP, "u").await.unwrap();
    }
    redis.restart();
    assert_eq!(beat_when_back(&a).await, Beat::Forgotten);
    assert_eq!(
        a.channel_info(APP, "chat")
            .await
            .unwrap()
            .subscription_count,
        0
    );
    a.register().await.unwrap();
    b.register().await.unwrap();
    let held = [
        Held::Subscriptions {
            app: APP,
            channel: "chat",
            count: 3,
        },
        Held::Subscriptions {
            app: APP,
            channel: "presence-p",
            count: 2,
        },
        Held::Member {
            app: APP,
            channel: "presence-p",
            user: "u",
            info: Some(info),
            connections: 2,
        },
        Held::SignedIn {
            app: APP,
            user: "u",
            connections: 2,
        },
    ];
    a.restore(&held).await.unwrap();
    a.restore(&held).await.unwrap();
    let chat = a.channel_info(APP, "chat").await.unwrap();
    assert_eq!(chat.subscription_count, 3);
    let room = a.channel_info(APP, "presence-p").await.unwrap();
    assert_eq!((room.subscription_count, room.user_count), (2, 1));
    let members = b.members(APP, "presence-p").await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].info.as_deref(), Some(info));
    assert_eq!(b.online(APP, &["u"]).await.unwrap(), vec![true]);

    let joined = b.join(APP, "chat").await.unwrap();
    assert_eq!((joined.occupied, joined.subscription_count), (false, 4));
    let again = b.member_join(APP, "presence-p", "u", Some(info), 10).await;
    assert_eq!(again, Ok(MemberJoin::Again { user_count: 1 }));
    assert!(!b.user_online(APP, "u").await.unwrap().came_online);

    // A lower count lowers the totals.
    let fewer = [Held::Subscriptions {
        app: APP,
        channel: "chat",
        count: 1,
    }];
    a.restore(&fewer).await.unwrap();
    assert_eq!(
        a.channel_info(APP, "chat")
            .await
            .unwrap()
            .subscription_count,
        2
    );

    assert!(!a.leave(APP, "chat").await.unwrap().vacated);
    assert!(b.leave(APP, "chat").await.unwrap().vacated);
    for _ in 0..2 {
        assert!(
            !a.member_leave(APP, "presence-p", "u")
                .await
                .unwrap()
                .removed
        );
        assert!(!a.user_offline(APP, "u").await.unwrap().went_offline);
    }
    assert!(
        b.member_leave(APP, "presence-p", "u")
            .await
            .unwrap()
            .removed
    );
    assert!(b.user_offline(APP, "u").await.unwrap().went_offline);
}
