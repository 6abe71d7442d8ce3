//! `pusher:signin`: the signature over `socket_id::user::user_data`, one user per connection,
//! registration with the user registry (server-to-user, watchlist) and the watchlist limit (4302).

use super::{Connection, SignedInUser};
use crate::adapter::SigningIn;
use crate::auth;
use crate::protocol::member::{parse_user_data, UserData};
use crate::protocol::{codes, ServerMessage};

impl Connection {
    pub(super) async fn on_signin(&mut self, auth_value: &str, user_data: &str) {
        if let Err(message) = self.signin(auth_value, user_data).await {
            self.error(None, &message);
        }
    }

    async fn signin(&mut self, auth_value: &str, user_data: &str) -> Result<(), String> {
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
        let UserData {
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
        let success = ServerMessage::SigninSuccess { user_data }.encode().into();
        let signing_in = SigningIn {
            user: &user,
            handle: &self.handle,
            watchlist: &watchlist,
            success: &success,
        };
        self.adapter.sign_in(&self.app, signing_in).await;
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
