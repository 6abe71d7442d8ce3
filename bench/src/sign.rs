//! Pusher signatures, computed by the generator itself so that it can drive any server:
//! the HTTP API request signature (protocol spec §8) and private/presence channel
//! authorization strings (§3). Pure functions of their inputs; no I/O here.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

/// Lower-case hex HMAC-SHA256 of `message` keyed with `secret`.
pub fn hmac_hex(secret: &str, message: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Lower-case hex MD5 of a request body.
pub fn md5_hex(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

/// The credentials of one app on the target server.
#[derive(Clone, Debug)]
pub struct AppCredentials {
    /// App id, used in API paths (`/apps/{id}/...`).
    pub id: String,
    /// App key, used in the WebSocket path and as `auth_key`.
    pub key: String,
    /// App secret, never sent; only used to sign.
    pub secret: String,
}

impl AppCredentials {
    /// The signed query string (without `?`) for `method path` with `body` at `timestamp`.
    ///
    /// Only the `auth_*` and `body_md5` parameters are sent; their values need no escaping.
    pub fn signed_query(&self, method: &str, path: &str, body: &[u8], timestamp: u64) -> String {
        let mut query = format!(
            "auth_key={}&auth_timestamp={}&auth_version=1.0",
            self.key, timestamp
        );
        if !body.is_empty() {
            query.push_str("&body_md5=");
            query.push_str(&md5_hex(body));
        }
        // The parameters above are already in sorted key order, as the canonical form requires.
        let to_sign = format!("{}\n{}\n{}", method.to_ascii_uppercase(), path, query);
        let signature = hmac_hex(&self.secret, &to_sign);
        format!("{query}&auth_signature={signature}")
    }

    /// `key:signature` authorizing `socket_id` on a private or presence channel.
    pub fn channel_auth(
        &self,
        socket_id: &str,
        channel: &str,
        channel_data: Option<&str>,
    ) -> String {
        let to_sign = match channel_data {
            Some(data) => format!("{socket_id}:{channel}:{data}"),
            None => format!("{socket_id}:{channel}"),
        };
        format!("{}:{}", self.key, hmac_hex(&self.secret, &to_sign))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc_app() -> AppCredentials {
        AppCredentials {
            id: "3".into(),
            key: "278d425bdf160c739803".into(),
            secret: "7ad3773142a6692b25b8".into(),
        }
    }

    #[test]
    fn api_signature_matches_the_documented_example() {
        let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        assert_eq!(md5_hex(body), "ec365a775a4cd0599faeb73354201b6f");
        let query = doc_app().signed_query("POST", "/apps/3/events", body, 1353088179);
        assert_eq!(
            query,
            "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0\
             &body_md5=ec365a775a4cd0599faeb73354201b6f\
             &auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
        );
    }

    #[test]
    fn private_channel_auth_matches_the_documented_example() {
        let auth = doc_app().channel_auth("1234.1234", "private-foobar", None);
        assert_eq!(
            auth,
            "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
    }

    #[test]
    fn presence_channel_auth_matches_the_corrected_example() {
        let data = r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#;
        let auth = doc_app().channel_auth("1234.1234", "presence-foobar", Some(data));
        assert!(auth.ends_with("31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80"));
    }
}
