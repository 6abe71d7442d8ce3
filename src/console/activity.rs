//! What a debug console shows of an app: [`Activity`], one variant per kind of thing that
//! happens, with the fields the log shows, serialized with its `kind`. Pure: built from
//! borrowed names (nothing is allocated unless a console watches, see `console::feed`).

use serde::Serialize;

use crate::channel::Change;

/// Longest event data shown, in bytes; longer data is cut (at a character boundary) and
/// flagged, so one large event does not weigh on the page.
pub const DATA_SHOWN: usize = 1024;

/// One thing that happened in an app, as a console shows it. Serialized with its `kind`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Activity<'a> {
    /// A connection was established.
    ConnectionOpened {
        /// Its socket id.
        socket_id: &'a str,
        /// `websocket` or one of the HTTP fallback transports.
        transport: &'a str,
    },
    /// A connection ended.
    ConnectionClosed {
        /// Its socket id.
        socket_id: &'a str,
        /// The Pusher close code herald sent, if herald closed it.
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<u16>,
        /// Why.
        reason: &'a str,
    },
    /// A connection joined a channel.
    Subscribed {
        /// The channel.
        channel: &'a str,
        /// The connection.
        socket_id: &'a str,
        /// Its member id, on presence channels.
        #[serde(skip_serializing_if = "Option::is_none")]
        user_id: Option<&'a str>,
    },
    /// A connection left a channel.
    Unsubscribed {
        /// The channel.
        channel: &'a str,
        /// The connection.
        socket_id: &'a str,
        /// Its member id, on presence channels.
        #[serde(skip_serializing_if = "Option::is_none")]
        user_id: Option<&'a str>,
    },
    /// A channel got its first subscriber.
    ChannelOccupied {
        /// The channel.
        channel: &'a str,
    },
    /// A channel lost its last subscriber.
    ChannelVacated {
        /// The channel.
        channel: &'a str,
    },
    /// A user's first connection joined a presence channel.
    MemberAdded {
        /// The channel.
        channel: &'a str,
        /// The member.
        user_id: &'a str,
    },
    /// A user's last connection left a presence channel.
    MemberRemoved {
        /// The channel.
        channel: &'a str,
        /// The member.
        user_id: &'a str,
    },
    /// An event triggered through the HTTP API (or the console's Event Creator).
    ApiEvent {
        /// The channel.
        channel: &'a str,
        /// The event name.
        event: &'a str,
        /// The data string (cut to [`DATA_SHOWN`]).
        #[serde(flatten)]
        data: Data<'a>,
        /// The connection left out.
        #[serde(skip_serializing_if = "Option::is_none")]
        excluded_socket_id: Option<&'a str>,
    },
    /// A client event relayed.
    ClientEvent {
        /// The channel.
        channel: &'a str,
        /// The event name.
        event: &'a str,
        /// The data string (cut to [`DATA_SHOWN`]).
        #[serde(flatten)]
        data: Data<'a>,
        /// The sender.
        socket_id: &'a str,
        /// The sender's member id, on presence channels.
        #[serde(skip_serializing_if = "Option::is_none")]
        user_id: Option<&'a str>,
    },
    /// A subscriber of a cache channel found nothing cached.
    CacheMiss {
        /// The channel.
        channel: &'a str,
    },
    /// One attempt at sending a webhook request.
    Webhook {
        /// The events in the request, by name.
        events: &'a [&'a str],
        /// The endpoint.
        url: &'a str,
        /// The HTTP status answered, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        /// What went wrong, when no 2xx came.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<&'a str>,
        /// Attempts before this one.
        retries: u32,
        /// `delivered`, `retrying` or `given_up`.
        outcome: &'a str,
    },
    /// A connection closed because it did not read what it was sent (4100).
    SlowConsumer {
        /// The connection.
        socket_id: &'a str,
        /// Why (queue full, or stalled).
        reason: &'a str,
    },
}

/// Event data as shown: cut to [`DATA_SHOWN`] bytes, and whether it was.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Data<'a> {
    /// The data, or its first [`DATA_SHOWN`] bytes.
    pub data: &'a str,
    /// Set when `data` was cut.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub data_truncated: bool,
}

impl<'a> Data<'a> {
    /// `data`, cut if it is longer than [`DATA_SHOWN`].
    pub fn of(data: &'a str) -> Self {
        if data.len() <= DATA_SHOWN {
            return Data {
                data,
                data_truncated: false,
            };
        }
        let mut end = DATA_SHOWN;
        while !data.is_char_boundary(end) {
            end -= 1;
        }
        Data {
            data: &data[..end],
            data_truncated: true,
        }
    }
}

impl<'a> Activity<'a> {
    /// The activity of a channel's change, if a console shows it (counts it does not).
    pub fn of_change(channel: &'a str, change: Change<'a>) -> Option<Self> {
        Some(match change {
            Change::Occupied => Activity::ChannelOccupied { channel },
            Change::Vacated => Activity::ChannelVacated { channel },
            Change::MemberAdded(user) => Activity::MemberAdded {
                channel,
                user_id: user.as_str(),
            },
            Change::MemberRemoved(user) => Activity::MemberRemoved {
                channel,
                user_id: user.as_str(),
            },
            Change::CacheMiss => Activity::CacheMiss { channel },
            Change::Count(_) => return None,
        })
    }
}
