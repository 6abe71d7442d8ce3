//! Nodes: an id per boot, a heartbeat with a short expiry, the registry of live nodes, and the
//! reaping of dead ones.
//!
//! A node registers (`P:nodes`) and renews `P:node:N:alive` every heartbeat interval; the key
//! expires after the node timeout. Any node may [`Engine::reap`]: one script claims every
//! registered node whose heartbeat is gone, atomically, so each dead node is claimed by exactly
//! one reaper; the reaper then replays the dead node's records in batches, each batch one
//! atomic script running the same functions as a live node's leave, so every departure
//! (`member_removed`, a channel's subscriptions leaving or `vacated`, `offline`) is returned to
//! exactly one caller. When nothing of the dead node is left, its keys are deleted; only its id
//! stays in `P:reaped` (a day), so a node that was partitioned learns from its next
//! [`Engine::beat`] that it was declared dead. A reaper that dies mid-way loses its claims to
//! the next reaper, which carries on where it stopped.
//!
//! A reply lost in transit (Redis applied a batch, then the connection dropped) loses that
//! batch's departures: the engine never sends a script twice (see [`super::Settings`]), so the
//! failure mode is a missing webhook, never a duplicate.
//!
//! A node whose heartbeat lapsed but that nobody reaped yet simply renews it with its next beat
//! (the beat and the claim are both atomic: one of them comes first). A node that Redis forgot
//! (restarted without its data) registers again and reasserts its local state with
//! [`Engine::restore`], which reports no transitions.
//!
//! This module does not run loops: the caller beats and reaps on its own schedule.

use std::fmt;
use std::sync::Arc;

use super::keys::{escape_app, unescape_app};
use super::scripts::{self, arg, array, count, text, Value, SCRIPTS};
use fred::interfaces::{HashesInterface, KeysInterface, SetsInterface};

use super::{redis_error, ClusterError, Engine};

/// A node's id for one boot: 16 random hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeId(Arc<str>);

/// The length of a node id.
pub const NODE_ID_LEN: usize = 16;

impl NodeId {
    /// A fresh random id.
    pub fn generate() -> Self {
        NodeId(format!("{:016x}", fastrand::u64(..)).into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a heartbeat found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// Registered; the heartbeat is renewed.
    Alive,
    /// Another node reaped this one (its heartbeat had expired): its connections must close
    /// and it must rejoin as a new node.
    DeclaredDead,
    /// Redis has no record of this node (it restarted without its data): register again and
    /// reassert the local state.
    Forgotten,
}

/// One departure of a dead node, returned to the one node that replayed it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Departure {
    /// A presence member's last connection in the cluster was on the dead node.
    MemberRemoved {
        /// The app id.
        app: String,
        /// The presence channel.
        channel: String,
        /// The member's user id.
        user: String,
    },
    /// The dead node's subscriptions to a channel are gone; `subscription_count` is what is left
    /// in the cluster (0: the channel was vacated).
    Unsubscribed {
        /// The app id.
        app: String,
        /// The channel.
        channel: String,
        /// Subscriptions left on other nodes.
        subscription_count: u64,
        /// The number the cluster gave this count (see [`crate::cluster::channel::Joined::seq`]).
        seq: u64,
    },
    /// A user's last signed-in connection in the cluster was on the dead node.
    Offline {
        /// The app id.
        app: String,
        /// The user id.
        user: String,
    },
}

impl Departure {
    /// Whether this departure vacated a channel.
    pub fn is_vacated(&self) -> bool {
        matches!(
            self,
            Departure::Unsubscribed {
                subscription_count: 0,
                ..
            }
        )
    }
}

/// What Redis records a node as holding ([`Engine::records`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Records {
    /// (app, channel) of its subscriptions.
    pub channels: Vec<(String, String)>,
    /// (app, channel, user) of its presence members.
    pub members: Vec<(String, String, String)>,
    /// (app, user) of its signed-in users.
    pub users: Vec<(String, String)>,
}

/// Something this node holds locally, reasserted by [`Engine::restore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held<'a> {
    /// `count` subscriptions to a channel.
    Subscriptions {
        /// The app id.
        app: &'a str,
        /// The channel.
        channel: &'a str,
        /// Subscriptions on this node.
        count: u64,
    },
    /// `connections` of a presence member.
    Member {
        /// The app id.
        app: &'a str,
        /// The presence channel.
        channel: &'a str,
        /// The member's user id.
        user: &'a str,
        /// Its `user_info` JSON.
        info: Option<&'a str>,
        /// Its connections to the channel on this node.
        connections: u64,
    },
    /// `connections` signed in as a user.
    SignedIn {
        /// The app id.
        app: &'a str,
        /// The user id.
        user: &'a str,
        /// Its signed-in connections on this node.
        connections: u64,
    },
}

impl Held<'_> {
    /// The six script arguments of this record (see `lua/restore.lua`).
    fn args(&self, out: &mut Vec<Value>) {
        let (kind, app, channel, user, info, n) = match *self {
            Held::Subscriptions {
                app,
                channel,
                count,
            } => ("s", app, channel, "", None, count),
            Held::Member {
                app,
                channel,
                user,
                info,
                connections,
            } => ("m", app, channel, user, info, connections),
            Held::SignedIn {
                app,
                user,
                connections,
            } => ("u", app, "", user, None, connections),
        };
        let app = escape_app(app);
        for field in [kind, &app, channel, user, info.unwrap_or("")] {
            out.push(arg(field));
        }
        out.push(arg(&n.to_string()));
    }
}

impl Engine {
    /// Registers this node and starts its heartbeat. Refused with
    /// [`ClusterError::DeclaredDead`] once the node was reaped.
    pub async fn register(&self) -> Result<(), ClusterError> {
        let mut args = self.node_args();
        args.push(self.timeout_arg());
        scripts::run(&self.client, &SCRIPTS.register, args).await?;
        Ok(())
    }

    /// Renews the heartbeat, or tells that this node was declared dead or forgotten.
    pub async fn beat(&self) -> Result<Beat, ClusterError> {
        let mut args = self.node_args();
        args.push(self.timeout_arg());
        let reply = scripts::run(&self.client, &SCRIPTS.beat, args).await?;
        match text(&reply)?.as_str() {
            "alive" => Ok(Beat::Alive),
            "dead" => Ok(Beat::DeclaredDead),
            "forgotten" => Ok(Beat::Forgotten),
            other => Err(ClusterError::Reply(format!("beat answered {other}"))),
        }
    }

    /// Finds the nodes whose heartbeat expired, claims each atomically (each dead node is
    /// claimed by one reaper only) and replays its records as departures, handed to `departed`
    /// batch by batch (so an error later loses none already applied). Returns how many dead
    /// nodes were reaped completely.
    pub async fn reap(&self, mut departed: impl FnMut(Departure)) -> Result<usize, ClusterError> {
        let mut reaped = 0;
        for dead in self.claim_dead().await? {
            if self.replay(&dead, &mut departed).await? {
                reaped += 1;
            }
        }
        Ok(reaped)
    }

    /// Claims the dead nodes (and the claims of reapers that died); returns every node this one
    /// must replay.
    pub(super) async fn claim_dead(&self) -> Result<Vec<String>, ClusterError> {
        let mut args = self.node_args();
        args.push(arg(&self.settings.tombstone_ttl.as_millis().to_string()));
        let reply = scripts::run(&self.client, &SCRIPTS.reap_claim, args).await?;
        array(reply)?.iter().map(text).collect()
    }

    /// Replays the records of `dead` batch by batch; true when nothing of it is left, false if
    /// another reaper holds it now.
    async fn replay(
        &self,
        dead: &str,
        departed: &mut impl FnMut(Departure),
    ) -> Result<bool, ClusterError> {
        loop {
            let mut args = self.node_args();
            args.push(arg(dead));
            args.push(arg(&self.settings.reap_batch.to_string()));
            let reply = array(scripts::run(&self.client, &SCRIPTS.reap_batch, args).await?)?;
            let Some((state, rest)) = reply.split_first() else {
                return Err(ClusterError::Reply("empty reap batch".into()));
            };
            for departure in rest.chunks(5) {
                departed(decode_departure(departure)?);
            }
            match text(state)?.as_str() {
                "more" => continue,
                "done" => return Ok(true),
                "not_claimed" => return Ok(false),
                other => return Err(ClusterError::Reply(format!("reap answered {other}"))),
            }
        }
    }

    /// Leaves the cluster on purpose: this node is no longer registered, and whatever it still
    /// holds (connections that did not leave first) is replayed by the next node that reaps.
    /// Returns how many records were left.
    pub async fn retire(&self) -> Result<u64, ClusterError> {
        let reply = scripts::run(&self.client, &SCRIPTS.retire, self.node_args()).await?;
        count(&reply)
    }

    /// Reasserts what this node holds after Redis lost it (a [`Beat::Forgotten`] node calls
    /// [`Engine::register`], then this with its whole local state): sets this node's share of
    /// each record to exactly the given count, so calling it twice changes nothing. Reports no
    /// transition — clients and webhooks heard of these joins before Redis lost them — and does
    /// not check the member limit (those members were admitted). Sent in batches of
    /// [`super::Settings::reap_batch`] records, each batch atomic.
    pub async fn restore(&self, held: &[Held<'_>]) -> Result<(), ClusterError> {
        for batch in held.chunks(self.settings.reap_batch) {
            let mut args = self.node_args();
            for record in batch {
                record.args(&mut args);
            }
            scripts::run(&self.client, &SCRIPTS.restore, args).await?;
        }
        Ok(())
    }

    /// What Redis records this node as holding, to be compared with what it holds after an
    /// outage (a resync restores the difference, zeros included).
    pub async fn records(&self) -> Result<Records, ClusterError> {
        let node = self.node.as_str();
        let channels: Vec<String> = self
            .client
            .smembers(self.keys.node_channels(node))
            .await
            .map_err(redis_error)?;
        let members: Vec<String> = self
            .client
            .hkeys(self.keys.node_members(node))
            .await
            .map_err(redis_error)?;
        let users: Vec<String> = self
            .client
            .hkeys(self.keys.node_users(node))
            .await
            .map_err(redis_error)?;
        let app_and = |field: &str| {
            field
                .split_once(':')
                .map(|(app, rest)| (unescape_app(app), rest.to_owned()))
        };
        Ok(Records {
            channels: channels.iter().filter_map(|f| app_and(f)).collect(),
            members: members
                .iter()
                .filter_map(|f| {
                    let (app, rest) = app_and(f)?;
                    let (channel, user) = rest.split_once(':')?;
                    Some((app, channel.to_owned(), user.to_owned()))
                })
                .collect(),
            users: users.iter().filter_map(|f| app_and(f)).collect(),
        })
    }

    /// A number no other node of this cluster got (socket ids carry it, so they are unique
    /// cluster-wide).
    pub async fn number(&self) -> Result<u64, ClusterError> {
        self.client
            .incr(self.keys.node_seq())
            .await
            .map_err(redis_error)
    }

    fn timeout_arg(&self) -> Value {
        arg(&self.settings.node_timeout.as_millis().to_string())
    }
}

fn decode_departure(fields: &[Value]) -> Result<Departure, ClusterError> {
    let [kind, app, a, b, c] = fields else {
        return Err(ClusterError::Reply(format!("bad departure {fields:?}")));
    };
    let app = unescape_app(&text(app)?);
    match text(kind)?.as_str() {
        "member_removed" => Ok(Departure::MemberRemoved {
            app,
            channel: text(a)?,
            user: text(b)?,
        }),
        "unsubscribed" => Ok(Departure::Unsubscribed {
            app,
            channel: text(a)?,
            subscription_count: count(b)?,
            seq: count(c)?,
        }),
        "offline" => Ok(Departure::Offline {
            app,
            user: text(b)?,
        }),
        other => Err(ClusterError::Reply(format!("unknown departure {other}"))),
    }
}
