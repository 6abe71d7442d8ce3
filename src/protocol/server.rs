//! Encoding of server → client frames. [`ServerMessage::encode`] is the one place that turns
//! `data` into a JSON-encoded string where the protocol wants one.
//!
//! Key order follows hosted Pusher (`event, channel, data` for channel events; `event, data,
//! channel` for `subscription_succeeded`), because a few third-party clients match raw text.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::value::RawValue;

/// A presence channel's member list, as sent in `subscription_succeeded`.
#[derive(Debug, Clone, Copy)]
pub struct PresenceList<'a> {
    /// `(user_id, user_info)` for every member, the subscriber included.
    pub members: &'a [(&'a str, Option<&'a RawValue>)],
}

/// One `online`/`offline` entry of `pusher_internal:watchlist_events`.
#[derive(Debug, Clone, Serialize)]
pub struct WatchlistEvent<'a> {
    /// `online` or `offline`.
    pub name: &'static str,
    /// The users that changed.
    pub user_ids: Vec<&'a str>,
}

/// A frame the server sends.
#[derive(Debug, Clone)]
pub enum ServerMessage<'a> {
    /// The handshake; always the first frame.
    ConnectionEstablished {
        /// The connection's id.
        socket_id: &'a str,
        /// Seconds of silence after which the client should ping.
        activity_timeout: u64,
    },
    /// `pusher:error`; `code` is `None` for errors that keep the connection open.
    Error {
        /// The Pusher error code, or `None` (sent as `null`).
        code: Option<u16>,
        /// Human-readable text.
        message: &'a str,
    },
    /// `pusher:ping` (server-initiated).
    Ping,
    /// `pusher:pong`, the answer to `pusher:ping`.
    Pong,
    /// `pusher_internal:subscription_succeeded`.
    SubscriptionSucceeded {
        /// The channel.
        channel: &'a str,
        /// The member list, for presence channels.
        presence: Option<PresenceList<'a>>,
    },
    /// `pusher_internal:member_added`.
    MemberAdded {
        /// The presence channel.
        channel: &'a str,
        /// The new member.
        user_id: &'a str,
        /// Its `user_info`, if any.
        user_info: Option<&'a RawValue>,
    },
    /// `pusher_internal:member_removed`.
    MemberRemoved {
        /// The presence channel.
        channel: &'a str,
        /// The member that left.
        user_id: &'a str,
    },
    /// An event on a channel (API-triggered or a relayed client event).
    ChannelEvent {
        /// The event name.
        event: &'a str,
        /// The channel.
        channel: &'a str,
        /// The data string, sent verbatim.
        data: &'a str,
        /// The sender's user id, for client events on presence channels.
        user_id: Option<&'a str>,
    },
    /// `pusher_internal:subscription_count`.
    SubscriptionCount {
        /// The channel.
        channel: &'a str,
        /// Its number of subscribed connections.
        count: usize,
    },
    /// `pusher:signin_success`, echoing the signed `user_data` string.
    SigninSuccess {
        /// The exact string the client sent.
        user_data: &'a str,
    },
    /// `pusher_internal:watchlist_events`.
    WatchlistEvents {
        /// The transitions.
        events: &'a [WatchlistEvent<'a>],
    },
    /// `pusher:cache_miss`: a cache channel has nothing cached.
    CacheMiss {
        /// The channel.
        channel: &'a str,
    },
}

#[derive(Serialize)]
struct Frame<'a, D: Serialize> {
    event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    data: D,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
}

#[derive(Serialize)]
struct DataFirst<'a> {
    event: &'a str,
    data: &'a str,
    channel: &'a str,
}

#[derive(Serialize)]
struct ErrorData<'a> {
    code: Option<u16>,
    message: &'a str,
}

#[derive(Serialize)]
struct Established<'a> {
    socket_id: &'a str,
    activity_timeout: u64,
}

#[derive(Serialize)]
struct Presence<'a> {
    presence: PresenceBody<'a>,
}

#[derive(Serialize)]
struct PresenceBody<'a> {
    ids: Vec<&'a str>,
    /// Each member's `user_info` as it was signed (the text `member_added` relays too), by id.
    hash: BTreeMap<&'a str, Option<&'a RawValue>>,
    count: usize,
}

#[derive(Serialize)]
struct Member<'a> {
    user_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_info: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct Count {
    subscription_count: usize,
}

#[derive(Serialize)]
struct Signin<'a> {
    user_data: &'a str,
}

#[derive(Serialize)]
struct Watchlist<'a> {
    events: &'a [WatchlistEvent<'a>],
}

fn json<T: Serialize>(value: &T) -> String {
    // Serializing our own plain structs cannot fail: no maps with non-string keys, no I/O.
    serde_json::to_string(value).unwrap_or_default()
}

fn frame<D: Serialize>(event: &str, channel: Option<&str>, data: D) -> String {
    json(&Frame {
        event,
        channel,
        data,
        user_id: None,
    })
}

impl ServerMessage<'_> {
    /// The frame's JSON text.
    pub fn encode(&self) -> String {
        match *self {
            ServerMessage::ConnectionEstablished {
                socket_id,
                activity_timeout,
            } => frame(
                "pusher:connection_established",
                None,
                json(&Established {
                    socket_id,
                    activity_timeout,
                }),
            ),
            ServerMessage::Error { code, message } => {
                frame("pusher:error", None, ErrorData { code, message })
            }
            ServerMessage::Ping => frame("pusher:ping", None, "{}"),
            ServerMessage::Pong => frame("pusher:pong", None, "{}"),
            ServerMessage::SubscriptionSucceeded { channel, presence } => {
                let data = match presence {
                    None => "{}".to_owned(),
                    Some(list) => json(&presence_body(list)),
                };
                json(&DataFirst {
                    event: "pusher_internal:subscription_succeeded",
                    data: &data,
                    channel,
                })
            }
            ServerMessage::MemberAdded {
                channel,
                user_id,
                user_info,
            } => frame(
                "pusher_internal:member_added",
                Some(channel),
                json(&Member { user_id, user_info }),
            ),
            ServerMessage::MemberRemoved { channel, user_id } => frame(
                "pusher_internal:member_removed",
                Some(channel),
                json(&Member {
                    user_id,
                    user_info: None,
                }),
            ),
            ServerMessage::ChannelEvent {
                event,
                channel,
                data,
                user_id,
            } => json(&Frame {
                event,
                channel: Some(channel),
                data,
                user_id,
            }),
            ServerMessage::SubscriptionCount { channel, count } => frame(
                "pusher_internal:subscription_count",
                Some(channel),
                json(&Count {
                    subscription_count: count,
                }),
            ),
            ServerMessage::SigninSuccess { user_data } => {
                frame("pusher:signin_success", None, Signin { user_data })
            }
            ServerMessage::WatchlistEvents { events } => frame(
                "pusher_internal:watchlist_events",
                None,
                json(&Watchlist { events }),
            ),
            ServerMessage::CacheMiss { channel } => frame("pusher:cache_miss", Some(channel), "{}"),
        }
    }
}

fn presence_body<'a>(list: PresenceList<'a>) -> Presence<'a> {
    Presence {
        presence: PresenceBody {
            ids: list.members.iter().map(|(id, _)| *id).collect(),
            count: list.members.len(),
            hash: list.members.iter().copied().collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_frames() {
        let cases: Vec<(ServerMessage<'_>, &str)> = vec![
            (
                ServerMessage::ConnectionEstablished {
                    socket_id: "1.2",
                    activity_timeout: 120,
                },
                r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"1.2\",\"activity_timeout\":120}"}"#,
            ),
            (
                ServerMessage::Error {
                    code: Some(4001),
                    message: "nope",
                },
                r#"{"event":"pusher:error","data":{"code":4001,"message":"nope"}}"#,
            ),
            (
                ServerMessage::Error {
                    code: None,
                    message: "x",
                },
                r#"{"event":"pusher:error","data":{"code":null,"message":"x"}}"#,
            ),
            (
                ServerMessage::Pong,
                r#"{"event":"pusher:pong","data":"{}"}"#,
            ),
            (
                ServerMessage::SubscriptionSucceeded {
                    channel: "c",
                    presence: None,
                },
                r#"{"event":"pusher_internal:subscription_succeeded","data":"{}","channel":"c"}"#,
            ),
            (
                ServerMessage::ChannelEvent {
                    event: "e",
                    channel: "c",
                    data: "{\"a\":1}",
                    user_id: None,
                },
                r#"{"event":"e","channel":"c","data":"{\"a\":1}"}"#,
            ),
            (
                ServerMessage::ChannelEvent {
                    event: "client-e",
                    channel: "presence-c",
                    data: "x",
                    user_id: Some("7"),
                },
                r#"{"event":"client-e","channel":"presence-c","data":"x","user_id":"7"}"#,
            ),
            (
                ServerMessage::MemberRemoved {
                    channel: "presence-c",
                    user_id: "1",
                },
                r#"{"event":"pusher_internal:member_removed","channel":"presence-c","data":"{\"user_id\":\"1\"}"}"#,
            ),
            (
                ServerMessage::SubscriptionCount {
                    channel: "c",
                    count: 3,
                },
                r#"{"event":"pusher_internal:subscription_count","channel":"c","data":"{\"subscription_count\":3}"}"#,
            ),
            (
                ServerMessage::SigninSuccess {
                    user_data: "{\"id\":\"1\"}",
                },
                r#"{"event":"pusher:signin_success","data":{"user_data":"{\"id\":\"1\"}"}}"#,
            ),
            (
                ServerMessage::CacheMiss { channel: "cache-x" },
                r#"{"event":"pusher:cache_miss","channel":"cache-x","data":"{}"}"#,
            ),
        ];
        for (msg, want) in cases {
            assert_eq!(msg.encode(), want);
        }
    }

    #[test]
    fn presence_list_and_member_added() {
        let info = RawValue::from_string(r#"{"name":"A"}"#.into()).unwrap();
        let members = [("1", Some(&*info)), ("2", None)];
        let msg = ServerMessage::SubscriptionSucceeded {
            channel: "presence-r",
            presence: Some(PresenceList { members: &members }),
        };
        assert_eq!(
            msg.encode(),
            r#"{"event":"pusher_internal:subscription_succeeded","data":"{\"presence\":{\"ids\":[\"1\",\"2\"],\"hash\":{\"1\":{\"name\":\"A\"},\"2\":null},\"count\":2}}","channel":"presence-r"}"#
        );
        let added = ServerMessage::MemberAdded {
            channel: "presence-r",
            user_id: "1",
            user_info: Some(&info),
        };
        assert_eq!(
            added.encode(),
            r#"{"event":"pusher_internal:member_added","channel":"presence-r","data":"{\"user_id\":\"1\",\"user_info\":{\"name\":\"A\"}}"}"#
        );
    }

    /// Found by the `member_data` fuzz target: the presence hash went through
    /// `serde_json::Value`, which turned numbers beyond f64 into `null` for the whole
    /// `user_info`, rounded long ones, and read an object keyed by serde_json's private raw-value
    /// token as the value inside it. `member_added` relays the signed text, and so must the hash.
    #[test]
    fn presence_hash_carries_user_info_as_signed() {
        for text in [
            r#"{"n":1e400}"#,
            r#"{"n":123456789012345678901234567890,"f":2.50}"#,
            r#"{ "name" : "A" }"#,
            "{\"$serde_json::private::RawValue\" : \" [ ] \"}",
        ] {
            let info = RawValue::from_string(text.into()).unwrap();
            let members = [("1", Some(&*info))];
            let msg = ServerMessage::SubscriptionSucceeded {
                channel: "presence-r",
                presence: Some(PresenceList { members: &members }),
            };
            let frame: serde_json::Value = serde_json::from_str(&msg.encode()).unwrap();
            let data = frame["data"].as_str().unwrap();
            let want = format!(r#"{{"presence":{{"ids":["1"],"hash":{{"1":{text}}},"count":1}}}}"#);
            assert_eq!(data, want);
        }
    }

    #[test]
    fn watchlist() {
        let events = [
            WatchlistEvent {
                name: "online",
                user_ids: vec!["1"],
            },
            WatchlistEvent {
                name: "offline",
                user_ids: vec!["2", "3"],
            },
        ];
        assert_eq!(
            ServerMessage::WatchlistEvents { events: &events }.encode(),
            r#"{"event":"pusher_internal:watchlist_events","data":"{\"events\":[{\"name\":\"online\",\"user_ids\":[\"1\"]},{\"name\":\"offline\",\"user_ids\":[\"2\",\"3\"]}]}"}"#
        );
    }
}
