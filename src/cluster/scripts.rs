//! The Lua scripts that are the only writers of the cluster's shared state, and the one way to
//! run them. Each script is `lua/lib.lua` (shared functions, the key layout) followed by its own
//! body; Redis runs each atomically, so the transition it reports (occupied, vacated,
//! member_added, member_removed, online, offline) is seen by exactly one caller in the cluster.
//!
//! Scripts run with `EVALSHA`, loaded again after `NOSCRIPT` (a restarted Redis forgets them).
//! They build key names from the prefix in `ARGV[1]` instead of receiving them as `KEYS`
//! (a dead node's records name keys only known inside the script), so the engine needs one Redis
//! (standalone, or a primary behind Sentinel), not Redis Cluster. Contracts: the comment at the
//! top of each `lua/*.lua`.

use std::sync::LazyLock;

use fred::clients::Client;
use fred::types::scripts::Script;
pub(super) use fred::types::Value;

use super::{redis_error, ClusterError};

macro_rules! script {
    ($name:literal) => {
        Script::from_lua(concat!(
            include_str!("lua/lib.lua"),
            "\n",
            include_str!(concat!("lua/", $name, ".lua"))
        ))
    };
}

/// Every script, hashed once.
pub(super) struct Scripts {
    pub join: Script,
    pub leave: Script,
    pub member_join: Script,
    pub member_leave: Script,
    pub user_online: Script,
    pub user_offline: Script,
    pub register: Script,
    pub beat: Script,
    pub retire: Script,
    pub restore: Script,
    pub reap_claim: Script,
    pub reap_batch: Script,
    pub channel_info: Script,
    pub channels: Script,
    pub members: Script,
    pub departure_hold: Script,
    pub departure_claim: Script,
    pub connection_open: Script,
    pub connection_close: Script,
    pub connections_restore: Script,
    pub webhook_push: Script,
    pub webhook_claim: Script,
    pub webhook_renew: Script,
}

pub(super) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    join: script!("join"),
    leave: script!("leave"),
    member_join: script!("member_join"),
    member_leave: script!("member_leave"),
    user_online: script!("user_online"),
    user_offline: script!("user_offline"),
    register: script!("register"),
    beat: script!("beat"),
    retire: script!("retire"),
    restore: script!("restore"),
    reap_claim: script!("reap_claim"),
    reap_batch: script!("reap_batch"),
    channel_info: script!("channel_info"),
    channels: script!("channels"),
    members: script!("members"),
    departure_hold: script!("departure_hold"),
    departure_claim: script!("departure_claim"),
    connection_open: script!("connection_open"),
    connection_close: script!("connection_close"),
    connections_restore: script!("connections_restore"),
    webhook_push: script!("webhook_push"),
    webhook_claim: script!("webhook_claim"),
    webhook_renew: script!("webhook_renew"),
});

impl Scripts {
    fn all(&self) -> [&Script; 23] {
        [
            &self.join,
            &self.leave,
            &self.member_join,
            &self.member_leave,
            &self.user_online,
            &self.user_offline,
            &self.register,
            &self.beat,
            &self.retire,
            &self.restore,
            &self.reap_claim,
            &self.reap_batch,
            &self.channel_info,
            &self.channels,
            &self.members,
            &self.departure_hold,
            &self.departure_claim,
            &self.connection_open,
            &self.connection_close,
            &self.connections_restore,
            &self.webhook_push,
            &self.webhook_claim,
            &self.webhook_renew,
        ]
    }
}

/// Loads every script, so that even the first call of each is one round trip. (A Redis that
/// restarted has forgotten them: the first call of each after that loads it again.)
pub(super) async fn load_all(client: &Client) -> Result<(), ClusterError> {
    for script in SCRIPTS.all() {
        script.load(client).await.map_err(redis_error)?;
    }
    Ok(())
}

/// Runs `script` with `args` (the prefix first, as every script expects).
pub(super) async fn run(
    client: &Client,
    script: &Script,
    args: Vec<Value>,
) -> Result<Value, ClusterError> {
    script
        .evalsha_with_reload::<Value, _, _>(client, (), args)
        .await
        .map_err(redis_error)
}

/// The elements of an array reply.
pub(super) fn array(value: Value) -> Result<Vec<Value>, ClusterError> {
    match value {
        Value::Array(items) => Ok(items),
        Value::Null => Ok(Vec::new()),
        other => Err(unexpected("an array", &other)),
    }
}

/// An integer element (Lua numbers arrive as integers).
pub(super) fn int(value: &Value) -> Result<i64, ClusterError> {
    match value {
        Value::Integer(n) => Ok(*n),
        Value::String(s) => s.parse().map_err(|_| unexpected("an integer", value)),
        Value::Bytes(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| unexpected("an integer", value)),
        other => Err(unexpected("an integer", other)),
    }
}

/// A count element (never negative).
pub(super) fn count(value: &Value) -> Result<u64, ClusterError> {
    let n = int(value)?;
    u64::try_from(n).map_err(|_| unexpected("a count", value))
}

/// A text element.
pub(super) fn text(value: &Value) -> Result<String, ClusterError> {
    match value {
        Value::String(s) => Ok(s.to_string()),
        Value::Bytes(b) => {
            String::from_utf8(b.to_vec()).map_err(|_| unexpected("UTF-8 text", value))
        }
        Value::Integer(n) => Ok(n.to_string()),
        other => Err(unexpected("text", other)),
    }
}

/// `N` integers, the reply of the transition scripts.
pub(super) fn ints<const N: usize>(value: Value) -> Result<[i64; N], ClusterError> {
    let values = array(value)?;
    let wrong = || ClusterError::Reply(format!("expected {N} integers, got {values:?}"));
    if values.len() != N {
        return Err(wrong());
    }
    let mut out = [0; N];
    for (slot, v) in out.iter_mut().zip(&values) {
        *slot = int(v)?;
    }
    Ok(out)
}

fn unexpected(what: &str, got: &Value) -> ClusterError {
    ClusterError::Reply(format!("expected {what}, got {got:?}"))
}

/// A script argument.
pub(super) fn arg(s: &str) -> Value {
    Value::String(s.into())
}
