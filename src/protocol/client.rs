//! Decoding of client → server frames into [`ClientMessage`].
//!
//! Clients send `data` as an object (pusher-js, the 2011 client) or as a JSON-encoded string
//! (some third-party clients); both are accepted here, so nothing downstream sees the difference.
//! Strings that are signed (`channel_data`, `user_data`) are kept byte for byte.

use serde::Deserialize;
use serde_json::value::RawValue;

/// A frame from a client, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    /// `pusher:subscribe`.
    Subscribe(Subscribe),
    /// `pusher:unsubscribe`.
    Unsubscribe {
        /// The channel to leave.
        channel: String,
    },
    /// `pusher:ping`.
    Ping,
    /// `pusher:pong`.
    Pong,
    /// `pusher:signin`.
    Signin {
        /// `key:signature`.
        auth: String,
        /// The exact JSON string the app server signed.
        user_data: String,
    },
    /// A `client-*` event (or any other non-`pusher:` event; the domain decides).
    ClientEvent {
        /// The event name as sent.
        event: String,
        /// The target channel.
        channel: String,
        /// The data to relay: strings verbatim, other JSON values in compact form.
        data: String,
    },
    /// An event herald does not handle: an unknown `pusher:` event, or a name without the
    /// `client-` prefix (hosted Pusher answers both "Unsupported event received on socket").
    Unknown {
        /// The event name as sent.
        event: String,
    },
}

/// The fields of `pusher:subscribe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// The channel name as sent (validated later).
    pub channel: String,
    /// `key:signature`, absent or empty for public channels.
    pub auth: Option<String>,
    /// The exact `channel_data` string of a presence subscription.
    pub channel_data: Option<String>,
}

/// Why a frame could not be decoded. The text is sent back as `pusher:error` (code null).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not a JSON object.
    #[error("Invalid JSON: {0}")]
    Json(String),
    /// No `event` string.
    #[error("Invalid message: missing 'event'")]
    MissingEvent,
    /// A required field is missing or of the wrong type.
    #[error("Invalid {event} message: missing or invalid '{field}'")]
    Field {
        /// The event being decoded.
        event: String,
        /// The field that was wrong.
        field: &'static str,
    },
}

#[derive(Deserialize)]
struct Envelope<'a> {
    event: Option<String>,
    channel: Option<String>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct SubscribeData {
    channel: Option<String>,
    auth: Option<String>,
    channel_data: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct SigninData {
    auth: Option<String>,
    user_data: Option<String>,
}

impl ClientMessage {
    /// Decodes one text frame.
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        let env: Envelope<'_> =
            serde_json::from_str(text).map_err(|e| DecodeError::Json(e.to_string()))?;
        let event = env.event.ok_or(DecodeError::MissingEvent)?;
        let field = |field| DecodeError::Field {
            event: event.clone(),
            field,
        };
        match event.as_str() {
            "pusher:ping" => Ok(ClientMessage::Ping),
            "pusher:pong" => Ok(ClientMessage::Pong),
            "pusher:subscribe" => {
                let data: SubscribeData = object_data(env.data).ok_or_else(|| field("data"))?;
                let channel = data.channel.ok_or_else(|| field("channel"))?;
                let channel_data = data.channel_data.as_deref().map(raw_to_string);
                Ok(ClientMessage::Subscribe(Subscribe {
                    channel,
                    auth: data.auth,
                    channel_data,
                }))
            }
            "pusher:unsubscribe" => {
                let data: SubscribeData = object_data(env.data).ok_or_else(|| field("data"))?;
                let channel = data.channel.ok_or_else(|| field("channel"))?;
                Ok(ClientMessage::Unsubscribe { channel })
            }
            "pusher:signin" => {
                let data: SigninData = object_data(env.data).ok_or_else(|| field("data"))?;
                let auth = data.auth.ok_or_else(|| field("auth"))?;
                let user_data = data.user_data.ok_or_else(|| field("user_data"))?;
                Ok(ClientMessage::Signin { auth, user_data })
            }
            e if !e.starts_with("client-") => Ok(ClientMessage::Unknown { event }),
            _ => {
                let channel = env.channel.ok_or_else(|| field("channel"))?;
                let data = env.data.map(raw_to_string).unwrap_or_default();
                Ok(ClientMessage::ClientEvent {
                    event,
                    channel,
                    data,
                })
            }
        }
    }
}

/// `data` as an object, or as a string holding an object.
fn object_data<T: for<'de> Deserialize<'de>>(raw: Option<&RawValue>) -> Option<T> {
    let raw = raw?;
    match serde_json::from_str::<T>(raw.get()) {
        Ok(v) => Some(v),
        Err(_) => {
            let inner: String = serde_json::from_str(raw.get()).ok()?;
            serde_json::from_str(&inner).ok()
        }
    }
}

/// A JSON string's content verbatim; any other value in compact form, keys and numbers exactly
/// as the client wrote them (what `JSON.stringify` of the sender's object gives).
fn raw_to_string(raw: &RawValue) -> String {
    let text = raw.get();
    if text.starts_with('"') {
        if let Ok(s) = serde_json::from_str::<String>(text) {
            return s;
        }
    }
    compact(text)
}

/// Removes the whitespace outside strings from valid JSON text.
fn compact(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_with_object_or_string_data() {
        let want = ClientMessage::Subscribe(Subscribe {
            channel: "presence-room".into(),
            auth: Some("k:s".into()),
            channel_data: Some("{\"user_id\": \"1\"}".into()),
        });
        let object = r#"{"event":"pusher:subscribe","data":{"channel":"presence-room","auth":"k:s","channel_data":"{\"user_id\": \"1\"}"}}"#;
        assert_eq!(ClientMessage::decode(object).unwrap(), want);
        let string = r#"{"event":"pusher:subscribe","data":"{\"channel\":\"presence-room\",\"auth\":\"k:s\",\"channel_data\":\"{\\\"user_id\\\": \\\"1\\\"}\"}"}"#;
        assert_eq!(ClientMessage::decode(string).unwrap(), want);
    }

    #[test]
    fn legacy_subscribe_without_auth() {
        let msg = r#"{"event":"pusher:subscribe","data":{"channel":"list-production-x"}}"#;
        assert_eq!(
            ClientMessage::decode(msg).unwrap(),
            ClientMessage::Subscribe(Subscribe {
                channel: "list-production-x".into(),
                auth: None,
                channel_data: None
            })
        );
    }

    #[test]
    fn pings_with_any_data() {
        for msg in [
            r#"{"event":"pusher:ping","data":{}}"#,
            r#"{"event":"pusher:ping","data":""}"#,
            r#"{"event":"pusher:ping"}"#,
        ] {
            assert_eq!(ClientMessage::decode(msg).unwrap(), ClientMessage::Ping);
        }
    }

    #[test]
    fn client_event_data_strings_verbatim_objects_compact() {
        let obj = r#"{"event":"client-typing","data":{ "t" : 1 },"channel":"private-chan"}"#;
        let ClientMessage::ClientEvent { data, .. } = ClientMessage::decode(obj).unwrap() else {
            panic!()
        };
        assert_eq!(data, r#"{"t":1}"#);
        let s = r#"{"event":"client-typing","data":"{ \"t\" : 1 }","channel":"private-chan"}"#;
        let ClientMessage::ClientEvent { data, .. } = ClientMessage::decode(s).unwrap() else {
            panic!()
        };
        assert_eq!(data, r#"{ "t" : 1 }"#);
    }

    #[test]
    fn compact_keeps_order_numbers_and_string_content() {
        let raw = r#"{ "z" : 1, "a" : [1, 2.50, 123456789012345678901234567890], "s" : "a \" b\\" , "m":{"y":true} }"#;
        assert_eq!(
            compact(raw),
            r#"{"z":1,"a":[1,2.50,123456789012345678901234567890],"s":"a \" b\\","m":{"y":true}}"#
        );
    }

    #[test]
    fn signin() {
        let msg = r#"{"event":"pusher:signin","data":{"auth":"k:s","user_data":"{\"id\":\"1\"}"}}"#;
        assert_eq!(
            ClientMessage::decode(msg).unwrap(),
            ClientMessage::Signin {
                auth: "k:s".into(),
                user_data: r#"{"id":"1"}"#.into()
            }
        );
    }

    #[test]
    fn errors() {
        assert!(matches!(
            ClientMessage::decode("{nope"),
            Err(DecodeError::Json(_))
        ));
        assert!(matches!(
            ClientMessage::decode("[1]"),
            Err(DecodeError::Json(_))
        ));
        assert_eq!(
            ClientMessage::decode(r#"{"data":1}"#),
            Err(DecodeError::MissingEvent)
        );
        assert!(matches!(
            ClientMessage::decode(r#"{"event":"pusher:subscribe","data":{}}"#),
            Err(DecodeError::Field {
                field: "channel",
                ..
            })
        ));
        assert!(matches!(
            ClientMessage::decode(r#"{"event":"client-x","data":{}}"#),
            Err(DecodeError::Field {
                field: "channel",
                ..
            })
        ));
        assert_eq!(
            ClientMessage::decode(r#"{"event":"pusher:foo"}"#).unwrap(),
            ClientMessage::Unknown {
                event: "pusher:foo".into()
            }
        );
        assert_eq!(
            ClientMessage::decode(r#"{"event":"subscribe"}"#).unwrap(),
            ClientMessage::Unknown {
                event: "subscribe".into()
            }
        );
    }
}
