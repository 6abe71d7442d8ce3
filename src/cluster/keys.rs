//! The Redis key layout of a cluster: every key name is built here (and, for the scripts, by
//! the mirror functions at the top of `lua/lib.lua`, which a test checks against these).
//!
//! Everything lives under one [`KeyPrefix`] `P`, so several clusters share one Redis. App ids
//! are escaped (`%` → `%25`, `:` → `%3A`, shown as `A`) so that `:` always separates parts;
//! channel names cannot hold `:` (protocol charset). `N` is a node id, `C` a channel, `U` a
//! user id.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:nodes` | set | the registered (live) node ids |
//! | `P:node:N:alive` | string, expires | the node's heartbeat; gone after the node timeout |
//! | `P:node:N:channels` | set | `A:C` of every channel the node has subscriptions to |
//! | `P:node:N:members` | hash | `A:C:U` → the node's connections of member `U` in `C` |
//! | `P:node:N:users` | hash | `A:U` → the node's signed-in connections of `U` |
//! | `P:node:N:connections` | hash | `A` → the node's connections of the app (apps with `max_connections` only) |
//! | `P:reaping` | hash | dead node → the node replaying its departures |
//! | `P:reaped` | zset | dead node → when it was claimed (ms); kept a day, so a node that was partitioned learns it was declared dead |
//! | `P:app:A:channels` | zset | occupied channels, all score 0 (ordered by name for prefix queries) |
//! | `P:app:A:channel:C` | hash | node → its subscriptions to `C`, and `total` → the cluster's |
//! | `P:app:A:members:C` | hash | presence member → its connections on all nodes |
//! | `P:app:A:info:C` | hash | presence member → its `user_info` (JSON text, empty for none) |
//! | `P:app:A:users` | hash | signed-in user → its connections on all nodes |
//! | `P:app:A:cache:C` | string, expires | a cache channel's last event (JSON: event, data) |
//! | `P:departures` | zset | held `channel_vacated`/`member_removed` (JSON: app, channel, user) → when their grace period ends (ms, Redis's clock) |
//! | `P:webhooks` | zset | webhook events (JSON, unique) → when they are ready: queued now, then leased to the node delivering them until they settle |
//! | `P:node_seq` | integer | the last node number given out (socket ids unique cluster-wide) |
//! | `P:count_seq` | integer | the number of the last subscription count made (nodes keep the newest count they hear of) |
//!
//! The bus is the pub/sub channel `P:bus` (one per cluster; see [`super::bus`]); the member
//! scripts publish on it too.
//!
//! This module only names keys; it never talks to Redis.

use std::borrow::Cow;
use std::fmt;

/// The longest key prefix accepted.
const MAX_PREFIX: usize = 64;

/// The field of `P:app:A:channel:C` that holds the cluster-wide subscription count.
pub const TOTAL_FIELD: &str = "total";

/// The prefix of every key of one cluster: 1 to 64 characters of `A-Z a-z 0-9 _ - .`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPrefix(String);

/// Why a key prefix was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid key prefix '{0}': 1 to 64 characters of A-Z, a-z, 0-9, _, - and .")]
pub struct BadPrefix(pub String);

impl KeyPrefix {
    /// Checks a prefix.
    pub fn parse(prefix: &str) -> Result<Self, BadPrefix> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if prefix.is_empty() || prefix.len() > MAX_PREFIX || !prefix.chars().all(allowed) {
            return Err(BadPrefix(prefix.to_owned()));
        }
        Ok(KeyPrefix(prefix.to_owned()))
    }

    /// The prefix as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An app id as it appears inside key names and script arguments.
pub fn escape_app(app: &str) -> Cow<'_, str> {
    if app.contains(['%', ':']) {
        Cow::Owned(app.replace('%', "%25").replace(':', "%3A"))
    } else {
        Cow::Borrowed(app)
    }
}

/// The app id of an escaped one (as the reap script returns them).
pub fn unescape_app(escaped: &str) -> String {
    escaped.replace("%3A", ":").replace("%25", "%")
}

/// Builds the key names of one cluster.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: KeyPrefix,
}

impl Keys {
    /// The keys under `prefix`.
    pub fn new(prefix: KeyPrefix) -> Self {
        Keys { prefix }
    }

    /// The prefix.
    pub fn prefix(&self) -> &KeyPrefix {
        &self.prefix
    }

    /// `P:nodes`.
    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// `P:reaping`.
    pub fn reaping(&self) -> String {
        format!("{}:reaping", self.prefix)
    }

    /// `P:reaped`.
    pub fn reaped(&self) -> String {
        format!("{}:reaped", self.prefix)
    }

    /// `P:node:N:alive`.
    pub fn alive(&self, node: &str) -> String {
        format!("{}:node:{node}:alive", self.prefix)
    }

    /// `P:node:N:channels`.
    pub fn node_channels(&self, node: &str) -> String {
        format!("{}:node:{node}:channels", self.prefix)
    }

    /// `P:node:N:members`.
    pub fn node_members(&self, node: &str) -> String {
        format!("{}:node:{node}:members", self.prefix)
    }

    /// `P:node:N:users`.
    pub fn node_users(&self, node: &str) -> String {
        format!("{}:node:{node}:users", self.prefix)
    }

    /// `P:node:N:connections`.
    pub fn node_connections(&self, node: &str) -> String {
        format!("{}:node:{node}:connections", self.prefix)
    }

    /// `P:app:A:channels`.
    pub fn channels(&self, app: &str) -> String {
        format!("{}:app:{}:channels", self.prefix, escape_app(app))
    }

    /// `P:app:A:channel:C`.
    pub fn channel(&self, app: &str, channel: &str) -> String {
        format!("{}:app:{}:channel:{channel}", self.prefix, escape_app(app))
    }

    /// `P:app:A:members:C`.
    pub fn members(&self, app: &str, channel: &str) -> String {
        format!("{}:app:{}:members:{channel}", self.prefix, escape_app(app))
    }

    /// `P:app:A:info:C`.
    pub fn member_info(&self, app: &str, channel: &str) -> String {
        format!("{}:app:{}:info:{channel}", self.prefix, escape_app(app))
    }

    /// `P:app:A:users`.
    pub fn users(&self, app: &str) -> String {
        format!("{}:app:{}:users", self.prefix, escape_app(app))
    }

    /// `P:app:A:cache:C`.
    pub fn cache(&self, app: &str, channel: &str) -> String {
        format!("{}:app:{}:cache:{channel}", self.prefix, escape_app(app))
    }

    /// `P:departures`.
    pub fn departures(&self) -> String {
        format!("{}:departures", self.prefix)
    }

    /// `P:app:A:consoles`: the nodes whose debug consoles watch app `A`.
    pub fn consoles(&self, app: &str) -> String {
        format!("{}:app:{}:consoles", self.prefix, escape_app(app))
    }

    /// `P:webhooks`.
    pub fn webhooks(&self) -> String {
        format!("{}:webhooks", self.prefix)
    }

    /// `P:node_seq`.
    pub fn node_seq(&self) -> String {
        format!("{}:node_seq", self.prefix)
    }

    /// `P:count_seq`.
    pub fn count_seq(&self) -> String {
        format!("{}:count_seq", self.prefix)
    }

    /// `P:bus`, the cluster's pub/sub channel.
    pub fn bus(&self) -> String {
        format!("{}:bus", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_checked() {
        assert!(KeyPrefix::parse("herald").is_ok());
        assert!(KeyPrefix::parse("eu-1.prod_a").is_ok());
        for bad in ["", "a:b", "a b", "{x}", &"x".repeat(65)] {
            assert!(KeyPrefix::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn app_ids_never_bring_a_colon_into_keys() {
        assert_eq!(escape_app("123"), "123");
        assert_eq!(escape_app("a:b%c"), "a%3Ab%25c");
        for app in ["a:b%c", "%3A", "plain", "::"] {
            assert_eq!(unescape_app(&escape_app(app)), app);
        }
        let keys = Keys::new(KeyPrefix::parse("h").unwrap());
        assert_eq!(keys.channel("a:b", "x"), "h:app:a%3Ab:channel:x");
        assert_eq!(keys.alive("n1"), "h:node:n1:alive");
    }
}
