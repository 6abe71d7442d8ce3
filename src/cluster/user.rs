//! Signed-in users across the cluster: how many connections each user has signed in on all
//! nodes, so that watchlist `online` goes out for a user's first connection anywhere and
//! `offline` for its last, once each ([`SignedIn::came_online`], [`SignedOut::went_offline`]),
//! and a watchlist's initial status reads the whole cluster ([`Engine::online`]).
//!
//! The delivery of those events (to watchers on every node) goes over the bus; this module only
//! keeps the counts.

use fred::interfaces::HashesInterface;

use super::keys::escape_app;
use super::scripts::{self, arg, ints, SCRIPTS};
use super::{redis_error, ClusterError, Engine};

/// What a sign-in changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedIn {
    /// It was the user's first connection in the cluster (`online`).
    pub came_online: bool,
    /// The user's signed-in connections in the cluster now.
    pub connections: u64,
}

/// What a sign-out changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedOut {
    /// It was the user's last connection in the cluster (`offline`).
    pub went_offline: bool,
    /// The user's signed-in connections in the cluster now.
    pub connections: u64,
}

impl Engine {
    /// A connection on this node signed in as `user`.
    pub async fn user_online(&self, app: &str, user: &str) -> Result<SignedIn, ClusterError> {
        let mut args = self.node_args();
        args.push(arg(&escape_app(app)));
        args.push(arg(user));
        let reply = scripts::run(&self.client, &SCRIPTS.user_online, args).await?;
        let [online, connections] = ints(reply)?;
        Ok(SignedIn {
            came_online: online == 1,
            connections: u64::try_from(connections).unwrap_or(0),
        })
    }

    /// A connection on this node that was signed in as `user` is gone.
    pub async fn user_offline(&self, app: &str, user: &str) -> Result<SignedOut, ClusterError> {
        let mut args = self.node_args();
        args.push(arg(&escape_app(app)));
        args.push(arg(user));
        let reply = scripts::run(&self.client, &SCRIPTS.user_offline, args).await?;
        let [offline, connections] = ints(reply)?;
        Ok(SignedOut {
            went_offline: offline == 1,
            connections: u64::try_from(connections).unwrap_or(0),
        })
    }

    /// Which of `users` are signed in on some node, in the order given (one `HMGET`).
    pub async fn online(&self, app: &str, users: &[&str]) -> Result<Vec<bool>, ClusterError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let fields: Vec<&str> = users.to_vec();
        let counts: Vec<Option<i64>> = self
            .client
            .hmget(self.keys.users(app), fields)
            .await
            .map_err(redis_error)?;
        Ok(counts.into_iter().map(|c| c.unwrap_or(0) > 0).collect())
    }
}
