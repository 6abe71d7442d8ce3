//! Validated identifiers: each is built once, through a constructor that enforces the rules of
//! the spec, and is trusted everywhere after that.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Why a name was refused. The texts are what clients and API callers read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("{what} must not be empty")]
    Empty {
        /// What kind of name it was.
        what: &'static str,
    },
    /// The name is longer than allowed.
    #[error("{what} is too long ({len} characters, the maximum is {max})")]
    TooLong {
        /// What kind of name it was.
        what: &'static str,
        /// Its length in characters.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The name holds a character outside the allowed set.
    #[error("Invalid {what} '{name}': only A-Z, a-z, 0-9 and _ - = @ , . ; are allowed")]
    BadCharacters {
        /// What kind of name it was.
        what: &'static str,
        /// The name as given.
        name: String,
    },
    /// A socket id not of the form `digits.digits`.
    #[error("Invalid socket id: '{0}'")]
    SocketId(String),
}

/// A connection's id, `digits.digits`, unique in this process.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId(Arc<str>);

/// The cluster node number in socket ids; 0 on a single process.
static NODE: AtomicU64 = AtomicU64::new(0);

static NEXT_SOCKET: AtomicU64 = AtomicU64::new(1);

impl SocketId {
    /// Makes a fresh id: a random part, so ids are not guessable, and a counter, so they are unique.
    pub fn generate() -> Self {
        let seq = NEXT_SOCKET.fetch_add(1, Ordering::Relaxed);
        let random = fastrand::u32(1..1_000_000_000);
        match NODE.load(Ordering::Relaxed) {
            0 => SocketId(format!("{random}.{seq}").into()),
            node => SocketId(format!("{random}.{node}{seq:012}").into()),
        }
    }

    /// Makes the ids this process generates from now on unique in a cluster: `node` (a number
    /// no other node got, from 1) leads the part after the dot, followed by this process's
    /// sequence in twelve digits.
    pub fn set_node(node: u64) {
        NODE.store(node, Ordering::Relaxed);
    }

    /// Parses an id given by a client or an API caller.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if is_socket_id(s) {
            Ok(SocketId(s.into()))
        } else {
            Err(NameError::SocketId(s.to_owned()))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_socket_id(s: &str) -> bool {
    let Some((left, right)) = s.split_once('.') else {
        return false;
    };
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    digits(left) && digits(right)
}

impl fmt::Display for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kind of a channel, from its prefix (anchored at the start of the name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// No prefix (or `cache-`): anyone may subscribe.
    Public,
    /// `private-` (or `private-cache-`): needs a signature over `socket_id:channel`.
    Private,
    /// `private-encrypted-` (or `private-encrypted-cache-`): private, payloads end-to-end encrypted.
    PrivateEncrypted,
    /// `presence-` (or `presence-cache-`): private plus a member list.
    Presence,
    /// `#server-to-user-<id>`: the inbox of a signed-in user.
    ServerToUser,
}

/// The prefix of a user's inbox channel.
pub const SERVER_TO_USER_PREFIX: &str = "#server-to-user-";

/// A channel name that passed the naming rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelName(Arc<str>);

impl ChannelName {
    /// Checks a name against the spec: allowed characters and a maximum length; `#` only in
    /// `#server-to-user-<id>`.
    /// A user's inbox `#server-to-user-<id>` is checked by its id's rules instead (up to
    /// [`MAX_USER_ID`] characters), so every user who can sign in can receive its events.
    pub fn parse(name: &str, max_len: usize) -> Result<Self, NameError> {
        match name.strip_prefix(SERVER_TO_USER_PREFIX) {
            Some(user) => check_name("user id", user, MAX_USER_ID)?,
            None => check_name("channel name", name, max_len)?,
        }
        Ok(ChannelName(name.into()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The channel's kind, from its prefix.
    pub fn kind(&self) -> ChannelKind {
        let n = self.as_str();
        if n.starts_with(SERVER_TO_USER_PREFIX) {
            ChannelKind::ServerToUser
        } else if n.starts_with("private-encrypted-") {
            ChannelKind::PrivateEncrypted
        } else if n.starts_with("private-") {
            ChannelKind::Private
        } else if n.starts_with("presence-") {
            ChannelKind::Presence
        } else {
            ChannelKind::Public
        }
    }

    /// Whether the channel keeps its last API event (`cache-`, `private-cache-`,
    /// `private-encrypted-cache-`, `presence-cache-`).
    pub fn is_cache(&self) -> bool {
        let n = self.as_str();
        [
            "cache-",
            "private-cache-",
            "private-encrypted-cache-",
            "presence-cache-",
        ]
        .iter()
        .any(|p| n.starts_with(p))
    }

    /// Whether subscribing needs a signature.
    pub fn needs_auth(&self) -> bool {
        matches!(
            self.kind(),
            ChannelKind::Private | ChannelKind::PrivateEncrypted | ChannelKind::Presence
        )
    }

    /// The user id of a `#server-to-user-<id>` channel.
    pub fn server_to_user_id(&self) -> Option<&str> {
        self.as_str().strip_prefix(SERVER_TO_USER_PREFIX)
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Non-empty and at most `max_len` characters.
fn check_length(what: &'static str, name: &str, max_len: usize) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty { what });
    }
    let len = name.chars().count();
    if len > max_len {
        return Err(NameError::TooLong {
            what,
            len,
            max: max_len,
        });
    }
    Ok(())
}

/// Channel-name characters, non-empty, at most `max_len` characters.
fn check_name(what: &'static str, name: &str, max_len: usize) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty { what });
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_-=@,.;".contains(c);
    if !name.chars().all(allowed) {
        return Err(NameError::BadCharacters {
            what,
            name: name.to_owned(),
        });
    }
    check_length(what, name, max_len)
}

/// An event name: any non-empty string of at most 200 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventName(Arc<str>);

/// The longest event name accepted (what the SDKs allow).
pub const MAX_EVENT_NAME: usize = 200;

impl EventName {
    /// Checks the length rules.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        check_length("event name", name, MAX_EVENT_NAME)?;
        Ok(EventName(name.into()))
    }

    /// Whether the name is reserved for the service (`pusher:` and `pusher_internal:`).
    pub fn is_reserved(&self) -> bool {
        self.0.starts_with("pusher:") || self.0.starts_with("pusher_internal:")
    }

    /// Whether it is a client event name (`client-` prefix).
    pub fn is_client_event(&self) -> bool {
        self.0.starts_with("client-")
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The longest user id accepted at sign-in (what the SDKs allow).
pub const MAX_USER_ID: usize = 200;

/// A user id (presence member or signed-in user), always a string on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(Arc<str>);

impl UserId {
    /// Turns a JSON `user_id` (string or number, as apps send both) into its string form.
    pub fn from_json(value: &serde_json::Value, max_len: usize) -> Result<Self, NameError> {
        let what = "user id";
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => return Err(NameError::Empty { what }),
        };
        check_length(what, &text, max_len)?;
        Ok(UserId(text.into()))
    }

    /// Checks a user id used for sign-in and in API paths (channel-name characters).
    pub fn parse(s: &str, max_len: usize) -> Result<Self, NameError> {
        check_name("user id", s, max_len)?;
        Ok(UserId(s.into()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_ids_are_digits_dot_digits_and_unique() {
        let a = SocketId::generate();
        let b = SocketId::generate();
        assert_ne!(a, b);
        for id in [&a, &b] {
            assert!(is_socket_id(id.as_str()), "{id}");
        }
        assert!(SocketId::parse("123.456").is_ok());
        for bad in [
            "",
            "123",
            "123.",
            ".456",
            "1.2.3",
            "a.1",
            "undefined",
            "1 .2",
        ] {
            assert!(SocketId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn channel_kinds_are_matched_at_the_start() {
        let kind = |n: &str| ChannelName::parse(n, 200).unwrap().kind();
        assert_eq!(kind("my-channel"), ChannelKind::Public);
        assert_eq!(kind("private-x"), ChannelKind::Private);
        assert_eq!(kind("private-cache-x"), ChannelKind::Private);
        assert_eq!(kind("private-encrypted-x"), ChannelKind::PrivateEncrypted);
        assert_eq!(kind("presence-x"), ChannelKind::Presence);
        assert_eq!(kind("#server-to-user-42"), ChannelKind::ServerToUser);
        assert_eq!(kind("my-private-x"), ChannelKind::Public);
        let cache = |n: &str| ChannelName::parse(n, 200).unwrap().is_cache();
        assert!(
            cache("cache-x") && cache("presence-cache-x") && cache("private-encrypted-cache-x")
        );
        assert!(!cache("my-cache-x") && !cache("private-x"));
    }

    #[test]
    fn channel_name_rules() {
        assert!(ChannelName::parse("a_b-c=d@e,f.g;h", 200).is_ok());
        assert!(ChannelName::parse("", 200).is_err());
        assert!(ChannelName::parse("has space", 200).is_err());
        assert!(ChannelName::parse("#other", 200).is_err());
        assert!(ChannelName::parse("#server-to-user-", 200).is_err());
        let inbox = format!("#server-to-user-{}", "u".repeat(200));
        assert!(
            ChannelName::parse(&inbox, 200).is_ok(),
            "any user that can sign in has an inbox"
        );
        assert!(ChannelName::parse(&format!("{inbox}u"), 200).is_err());
        assert!(ChannelName::parse(&"a".repeat(200), 200).is_ok());
        assert!(matches!(
            ChannelName::parse(&"a".repeat(201), 200),
            Err(NameError::TooLong {
                len: 201,
                max: 200,
                ..
            })
        ));
    }

    #[test]
    fn event_names() {
        assert!(EventName::parse("App\\Events\\OrderShipped").is_ok());
        assert!(EventName::parse("").is_err());
        assert!(EventName::parse(&"e".repeat(201)).is_err());
        assert!(EventName::parse("pusher:x").unwrap().is_reserved());
        assert!(EventName::parse("pusher_internal:x").unwrap().is_reserved());
        assert!(EventName::parse("client-x").unwrap().is_client_event());
    }

    #[test]
    fn user_ids_become_strings() {
        let id = UserId::from_json(&serde_json::json!(10), 128).unwrap();
        assert_eq!(id.as_str(), "10");
        assert!(UserId::from_json(&serde_json::json!("x".repeat(129)), 128).is_err());
        assert!(UserId::from_json(&serde_json::json!(null), 128).is_err());
        assert!(UserId::from_json(&serde_json::json!(""), 128).is_err());
    }
}
