//! Cluster engine tests, each against its own real `redis-server` (see `../testing.rs`): two or
//! three engines with different node ids on one Redis play the nodes of a cluster.

mod bus;
mod channel;
mod node;

use std::collections::HashMap;
use std::time::Duration;

use fred::interfaces::{ClientLike, HashesInterface};
use tokio::task::JoinHandle;

use super::testing::RedisServer;
use super::{Engine, KeyPrefix, Settings};

/// Short timings, so a dead node is noticed within a second; a live node's heartbeat has ten
/// beats of slack on a loaded machine.
fn settings() -> Settings {
    Settings {
        heartbeat_interval: Duration::from_millis(100),
        node_timeout: Duration::from_secs(1),
        command_timeout: Duration::from_secs(1),
        reconnect_delay: Duration::from_millis(100),
        ..Settings::default()
    }
}

async fn engine(redis: &RedisServer) -> Engine {
    engine_with(redis, settings()).await
}

async fn engine_with(redis: &RedisServer, settings: Settings) -> Engine {
    Engine::connect(&redis.url(), KeyPrefix::parse("t").unwrap(), settings)
        .await
        .expect("connect to the test Redis")
}

/// Beats for `engine` every heartbeat interval until aborted.
fn keep_beating(engine: &Engine) -> JoinHandle<()> {
    let engine = engine.clone();
    tokio::spawn(async move {
        loop {
            let _ = engine.beat().await;
            tokio::time::sleep(engine.settings().heartbeat_interval).await;
        }
    })
}

/// Every key in the test Redis.
async fn all_keys(engine: &Engine) -> Vec<String> {
    let mut keys: Vec<String> = engine
        .client
        .custom(fred::cmd!("KEYS"), vec!["*"])
        .await
        .unwrap();
    keys.sort();
    keys
}

async fn hash(engine: &Engine, key: &str) -> HashMap<String, String> {
    engine.client.hgetall(key).await.unwrap()
}
