//! Who a client says it is, in the two JSON strings an app server signs for it: a presence
//! subscription's `channel_data` (the member) and a sign-in's `user_data` (the user).
//!
//! Both are parsed only after their signature has been checked over the exact bytes sent; the
//! parsing here is pure, and its error texts are what the client reads in `pusher:error`.

use std::sync::Arc;

use serde_json::value::RawValue;

use super::names::MAX_USER_ID;
use super::UserId;

/// A signed-in user, from `user_data`.
#[derive(Debug, Clone)]
pub struct UserData {
    /// `id`: a non-empty string of channel-name characters.
    pub id: UserId,
    /// `watchlist`: the user ids (strings or numbers) whose online status the user follows;
    /// entries that are not user ids are left out.
    pub watchlist: Vec<UserId>,
    /// `user_info`, when it is an object.
    pub info: Option<Arc<RawValue>>,
}

/// `channel_data` → member id and `user_info`, with the presence limits: an id of at most
/// `max_id` characters, a `user_info` object of at most `max_info` bytes.
pub fn parse_channel_data(
    channel_data: &str,
    max_id: usize,
    max_info: usize,
) -> Result<(UserId, Option<Arc<RawValue>>), String> {
    #[derive(serde::Deserialize)]
    struct ChannelData {
        user_id: Option<serde_json::Value>,
        user_info: Option<Box<RawValue>>,
    }
    let data: ChannelData = serde_json::from_str(channel_data)
        .map_err(|e| format!("Invalid channel_data: it must be a JSON object ({e})"))?;
    let id = data
        .user_id
        .ok_or("Invalid channel_data: user_id is required")?;
    let user_id =
        UserId::from_json(&id, max_id).map_err(|e| format!("Invalid channel_data: {e}"))?;
    let info = match data.user_info {
        Some(raw) if raw.get() == "null" => None,
        Some(raw) if !raw.get().starts_with('{') => {
            return Err("user_info supplied to presence subscription is invalid - if supplied it must be a type of hash".into())
        }
        Some(raw) if raw.get().len() > max_info => {
            return Err(format!("user_info is {} bytes, the maximum is {max_info} bytes", raw.get().len()))
        }
        Some(raw) => Some(Arc::from(raw)),
        None => None,
    };
    Ok((user_id, info))
}

/// `user_data` → the user: id, watchlist and `user_info`.
pub fn parse_user_data(user_data: &str) -> Result<UserData, String> {
    #[derive(serde::Deserialize)]
    struct Fields {
        id: Option<serde_json::Value>,
        watchlist: Option<Vec<serde_json::Value>>,
        user_info: Option<Box<RawValue>>,
    }
    let data: Fields = serde_json::from_str(user_data)
        .map_err(|e| format!("Invalid user_data: it must be a JSON object ({e})"))?;
    let id = match data.id {
        Some(serde_json::Value::String(s)) if !s.is_empty() => s,
        _ => return Err("Invalid user_data: id must be a non-empty string".into()),
    };
    let id = UserId::parse(&id, MAX_USER_ID).map_err(|e| format!("Invalid user_data: {e}"))?;
    let watchlist = data
        .watchlist
        .unwrap_or_default()
        .iter()
        .filter_map(|v| UserId::from_json(v, MAX_USER_ID).ok())
        .collect();
    let info = data
        .user_info
        .filter(|raw| raw.get().starts_with('{'))
        .map(Arc::from);
    Ok(UserData {
        id,
        watchlist,
        info,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_from_channel_data() {
        let (id, info) =
            parse_channel_data(r#"{"user_id":10,"user_info":{"name":"A"}}"#, 128, 1024).unwrap();
        assert_eq!(id.as_str(), "10");
        assert_eq!(info.unwrap().get(), r#"{"name":"A"}"#);
        assert!(parse_channel_data(r#"{"user_info":{}}"#, 128, 1024).is_err());
        assert!(
            parse_channel_data(r#"{"user_id":"1","user_info":"x"}"#, 128, 1024)
                .unwrap_err()
                .contains("type of hash")
        );
        assert!(parse_channel_data(
            &format!(r#"{{"user_id":"{}"}}"#, "x".repeat(129)),
            128,
            1024
        )
        .is_err());
        let big = format!(
            r#"{{"user_id":"1","user_info":{{"a":"{}"}}}}"#,
            "x".repeat(1100)
        );
        assert!(parse_channel_data(&big, 128, 1024)
            .unwrap_err()
            .contains("maximum is 1024"));
        assert!(parse_channel_data("nope", 128, 1024).is_err());
    }

    #[test]
    fn users_from_user_data() {
        let UserData {
            id,
            watchlist,
            info,
        } = parse_user_data(r#"{"id":"12345","watchlist":["1",2],"user_info":{"n":1}}"#).unwrap();
        assert_eq!(id.as_str(), "12345");
        assert_eq!(watchlist.len(), 2);
        assert_eq!(info.unwrap().get(), r#"{"n":1}"#);
        assert!(parse_user_data(r#"{"id":""}"#).is_err());
        assert!(parse_user_data(r#"{"id":5}"#).is_err());
    }
}
