//! `pusher:signin`: the signature over `socket_id::user::user_data`, one user per connection,
//! registration with the user registry (server-to-user, watchlist) and the watchlist limit (4302).

use std::sync::Arc;

use serde_json::value::RawValue;

use super::{Connection, SignedInUser};
use crate::auth;
use crate::protocol::names::MAX_USER_ID;
use crate::protocol::{codes, ServerMessage, UserId};

impl Connection {
    pub(super) fn on_signin(&mut self, auth_value: &str, user_data: &str) {
        if let Err(message) = self.signin(auth_value, user_data) {
            self.error(None, &message);
        }
    }

    fn signin(&mut self, auth_value: &str, user_data: &str) -> Result<(), String> {
        let config = &self.app.config;
        if !config.user_authentication {
            return Err("User authentication is not enabled for this app".into());
        }
        let socket_id = self.handle.socket_id().as_str();
        auth::verify_signin(
            &config.key,
            &config.secret,
            socket_id,
            user_data,
            auth_value,
        )
        .map_err(|e| e.to_string())?;
        let SignedInUser {
            id: user,
            mut watchlist,
            info,
        } = parse_user_data(user_data)?;
        if let Some(current) = &self.user {
            if current.id != user {
                return Err(format!(
                    "Connection is already signed in as user {}",
                    current.id
                ));
            }
            self.handle
                .send(ServerMessage::SigninSuccess { user_data }.encode().into());
            return Ok(());
        }
        let max = config.max_watchlist_size;
        let over = watchlist.len() > max;
        watchlist.truncate(max);
        self.handle
            .send(ServerMessage::SigninSuccess { user_data }.encode().into());
        self.app
            .users
            .sign_in(&user, &self.handle, &watchlist, config.watchlist_events);
        if over {
            let message =
                format!("Watchlist limit exceeded; only the first {max} user ids were accepted");
            self.error(Some(codes::WATCHLIST_LIMIT), &message);
        }
        self.user = Some(SignedInUser {
            id: user,
            watchlist,
            info,
        });
        self.authorized = true;
        Ok(())
    }
}

/// `user_data` → the user: id, watchlist and `user_info`.
fn parse_user_data(user_data: &str) -> Result<SignedInUser, String> {
    #[derive(serde::Deserialize)]
    struct UserData {
        id: Option<serde_json::Value>,
        watchlist: Option<Vec<serde_json::Value>>,
        user_info: Option<Box<RawValue>>,
    }
    let data: UserData = serde_json::from_str(user_data)
        .map_err(|e| format!("Invalid user_data: it must be a JSON object ({e})"))?;
    let id = match data.id {
        Some(serde_json::Value::String(s)) if !s.is_empty() => s,
        _ => return Err("Invalid user_data: id must be a non-empty string".into()),
    };
    let user = UserId::parse(&id, MAX_USER_ID).map_err(|e| format!("Invalid user_data: {e}"))?;
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
    Ok(SignedInUser {
        id: user,
        watchlist,
        info,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data() {
        let SignedInUser {
            id,
            watchlist: watch,
            info,
        } = parse_user_data(r#"{"id":"12345","watchlist":["1",2],"user_info":{"n":1}}"#).unwrap();
        assert_eq!(id.as_str(), "12345");
        assert_eq!(watch.len(), 2);
        assert_eq!(info.unwrap().get(), r#"{"n":1}"#);
        assert!(parse_user_data(r#"{"id":""}"#).is_err());
        assert!(parse_user_data(r#"{"id":5}"#).is_err());
    }
}
