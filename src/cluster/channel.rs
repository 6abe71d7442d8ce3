//! Channels across the cluster: occupancy (how many subscriptions each node holds, and the
//! cluster's total) and presence members (a user's connections on all nodes, its `user_info`,
//! the member limit), plus the queries of the HTTP API, each in one round trip.
//!
//! Each change is one script (see `lua/lib.lua`); what it returns is the transition it caused,
//! seen by exactly one caller in the cluster: [`Joined::occupied`], [`Left::vacated`],
//! [`MemberJoin::Added`], [`MemberLeft::removed`]. A leave that this node has no join for
//! changes nothing (it cannot drive a count below zero or undo another node's join).
//!
//! A presence subscription is two scripts: [`Engine::member_join`] first (it may refuse: the
//! member limit), then [`Engine::join`]; leaving, [`Engine::member_leave`] then
//! [`Engine::leave`], so a channel's `member_removed` comes before its `vacated`, as on a single
//! node and in a reap. The two member scripts announce the member transition they decide on the
//! bus themselves ([`BusMessage::MemberAdded`], [`BusMessage::MemberRemoved`]), in the same
//! step: a member leaving on one node and joining again on another at once reaches every node
//! in that order, never the other way round.
//!
//! Channel names, app ids and user ids are taken as text: the caller validated them.

use super::bus::{self, BusMessage};
use super::keys::escape_app;
use super::scripts::{self, arg, array, count, ints, text, Value, SCRIPTS};
use super::{ClusterError, Engine};

/// What a subscription changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Joined {
    /// The channel went from no subscription in the cluster to one (`channel_occupied`).
    pub occupied: bool,
    /// Subscriptions in the cluster now.
    pub subscription_count: u64,
    /// The number the cluster gave this count (one sequence for all channels, increasing in
    /// the order the counts were made): announcements of counts may arrive in any order, and
    /// a node keeps the newest.
    pub seq: u64,
}

/// What an unsubscription changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Left {
    /// The channel's last subscription in the cluster ended (`channel_vacated`).
    pub vacated: bool,
    /// Subscriptions in the cluster now.
    pub subscription_count: u64,
    /// The count's number, as [`Joined::seq`].
    pub seq: u64,
}

/// What a presence join changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberJoin {
    /// The user's first connection in the cluster: a new member (`member_added`).
    Added {
        /// Members now.
        user_count: u64,
    },
    /// Another connection of a member (on this node or another).
    Again {
        /// Members now.
        user_count: u64,
    },
    /// Refused: the channel already has its maximum of members. Nothing changed.
    Full {
        /// Members now.
        user_count: u64,
    },
}

/// What a presence leave changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberLeft {
    /// The user's last connection in the cluster left (`member_removed`).
    pub removed: bool,
    /// Members now.
    pub user_count: u64,
}

/// The cluster-wide counts of a channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelCounts {
    /// Subscriptions on all nodes.
    pub subscription_count: u64,
    /// Distinct presence members on all nodes.
    pub user_count: u64,
}

/// A presence member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The user id.
    pub user_id: String,
    /// Its `user_info` as JSON text, if it has one.
    pub info: Option<String>,
}

impl Engine {
    /// The arguments prefix, node, app, channel.
    fn channel_args(&self, app: &str, channel: &str) -> Vec<Value> {
        let mut args = self.node_args();
        args.push(arg(&escape_app(app)));
        args.push(arg(channel));
        args
    }

    /// The arguments prefix, app, channel (queries: no node).
    fn query_args(&self, app: &str, channel: &str) -> Vec<Value> {
        vec![
            arg(self.keys.prefix().as_str()),
            arg(&escape_app(app)),
            arg(channel),
        ]
    }

    /// One more subscription to `channel` on this node.
    pub async fn join(&self, app: &str, channel: &str) -> Result<Joined, ClusterError> {
        let args = self.channel_args(app, channel);
        let reply = scripts::run(&self.client, &SCRIPTS.join, args).await?;
        let [occupied, total, seq] = ints(reply)?;
        Ok(Joined {
            occupied: occupied == 1,
            subscription_count: non_negative(total),
            seq: non_negative(seq),
        })
    }

    /// One subscription to `channel` on this node ends.
    pub async fn leave(&self, app: &str, channel: &str) -> Result<Left, ClusterError> {
        let args = self.channel_args(app, channel);
        let reply = scripts::run(&self.client, &SCRIPTS.leave, args).await?;
        let [vacated, total, seq] = ints(reply)?;
        Ok(Left {
            vacated: vacated == 1,
            subscription_count: non_negative(total),
            seq: non_negative(seq),
        })
    }

    /// A connection of `user` on this node joins the presence channel, unless it already has
    /// `max_members` other members. `info` is the member's `user_info` JSON (the latest join's
    /// wins, as on a single node). A member added is announced on the bus by the script.
    pub async fn member_join(
        &self,
        app: &str,
        channel: &str,
        user: &str,
        info: Option<&str>,
        max_members: usize,
    ) -> Result<MemberJoin, ClusterError> {
        let added = BusMessage::MemberAdded {
            app: app.to_owned(),
            channel: channel.to_owned(),
            user: user.to_owned(),
            info: info.map(str::to_owned),
        };
        let mut args = self.channel_args(app, channel);
        args.push(arg(user));
        args.push(arg(info.unwrap_or("")));
        args.push(arg(&max_members.to_string()));
        args.push(arg(&bus::encode(&self.node, [&added])));
        let reply = scripts::run(&self.client, &SCRIPTS.member_join, args).await?;
        let [outcome, members] = ints(reply)?;
        let user_count = non_negative(members);
        match outcome {
            1 => Ok(MemberJoin::Added { user_count }),
            0 => Ok(MemberJoin::Again { user_count }),
            -1 => Ok(MemberJoin::Full { user_count }),
            other => Err(ClusterError::Reply(format!("member_join answered {other}"))),
        }
    }

    /// A connection of `user` on this node leaves the presence channel; a member removed (its
    /// last connection in the cluster) is announced on the bus by the script.
    pub async fn member_leave(
        &self,
        app: &str,
        channel: &str,
        user: &str,
    ) -> Result<MemberLeft, ClusterError> {
        let removed = BusMessage::MemberRemoved {
            app: app.to_owned(),
            channel: channel.to_owned(),
            user: user.to_owned(),
        };
        let mut args = self.channel_args(app, channel);
        args.push(arg(user));
        args.push(arg(&bus::encode(&self.node, [&removed])));
        let reply = scripts::run(&self.client, &SCRIPTS.member_leave, args).await?;
        let [removed, members] = ints(reply)?;
        Ok(MemberLeft {
            removed: removed == 1,
            user_count: non_negative(members),
        })
    }

    /// The counts of one channel (zeros for a channel nobody is subscribed to).
    pub async fn channel_info(
        &self,
        app: &str,
        channel: &str,
    ) -> Result<ChannelCounts, ClusterError> {
        let args = self.query_args(app, channel);
        let reply = array(scripts::run(&self.client, &SCRIPTS.channel_info, args).await?)?;
        match reply.as_slice() {
            [subscriptions, members] => Ok(ChannelCounts {
                subscription_count: count(subscriptions)?,
                user_count: count(members)?,
            }),
            other => Err(ClusterError::Reply(format!("channel_info: {other:?}"))),
        }
    }

    /// The occupied channels whose name starts with `prefix`, in name order, with their counts.
    pub async fn channels(
        &self,
        app: &str,
        prefix: &str,
    ) -> Result<Vec<(String, ChannelCounts)>, ClusterError> {
        let args = self.query_args(app, prefix);
        let reply = array(scripts::run(&self.client, &SCRIPTS.channels, args).await?)?;
        reply
            .chunks(3)
            .map(|c| match c {
                [name, subscriptions, members] => Ok((
                    text(name)?,
                    ChannelCounts {
                        subscription_count: count(subscriptions)?,
                        user_count: count(members)?,
                    },
                )),
                other => Err(ClusterError::Reply(format!("channels: {other:?}"))),
            })
            .collect()
    }

    /// The members of a presence channel on all nodes, with their `user_info`.
    pub async fn members(&self, app: &str, channel: &str) -> Result<Vec<Member>, ClusterError> {
        let args = self.query_args(app, channel);
        let reply = array(scripts::run(&self.client, &SCRIPTS.members, args).await?)?;
        reply
            .chunks(2)
            .map(|c| match c {
                [user, info] => {
                    let info = text(info)?;
                    Ok(Member {
                        user_id: text(user)?,
                        info: (!info.is_empty()).then_some(info),
                    })
                }
                other => Err(ClusterError::Reply(format!("members: {other:?}"))),
            })
            .collect()
    }
}

/// Counts come from scripts that never store a negative one.
fn non_negative(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
