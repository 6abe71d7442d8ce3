//! All signing logic, as pure functions of `(secret, inputs, now)`: HMAC-SHA256 hex, constant-time
//! verification, the channel and user-sign-in auth strings, the HTTP API request signature
//! ([`api`]) and the webhook signature.
//!
//! Nothing here knows about apps, sockets or HTTP frameworks; callers pass the exact bytes that
//! were signed and get back a hosted-style error text on failure.

pub mod api;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Lower-case hex HMAC-SHA256 of `message` under `secret`.
pub fn sign(secret: &str, message: &[u8]) -> String {
    hex::encode(mac(secret, message).finalize().into_bytes())
}

/// Whether `signature_hex` is the HMAC-SHA256 of `message`, compared in constant time.
pub fn verify(secret: &str, message: &[u8], signature_hex: &str) -> bool {
    let Ok(given) = hex::decode(signature_hex) else {
        return false;
    };
    // Signatures are lower-case hex as every SDK emits them; upper case is refused.
    if signature_hex.bytes().any(|b| b.is_ascii_uppercase()) {
        return false;
    }
    mac(secret, message).verify_slice(&given).is_ok()
}

fn mac(secret: &str, message: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(message);
    mac
}

/// Why a subscription or sign-in signature was refused. The texts are hosted Pusher's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `auth` at all, or an empty one.
    #[error("Auth info required to subscribe to {channel}")]
    Missing {
        /// The channel being subscribed.
        channel: String,
    },
    /// `auth` is not `key:signature`.
    #[error(
        "Auth value for subscription to {channel} is invalid: should be of format 'key:signature'"
    )]
    Format {
        /// The channel being subscribed.
        channel: String,
    },
    /// The key part is not the app's key.
    #[error("Invalid key in subscription auth data: '{key}'")]
    Key {
        /// The key the client sent.
        key: String,
    },
    /// The signature does not match.
    #[error("Invalid signature: Expected HMAC SHA256 hex digest of {signed}, but got {signature}")]
    Signature {
        /// The string that should have been signed.
        signed: String,
        /// The signature the client sent.
        signature: String,
    },
    /// Sign-in `auth` is not `key:signature`.
    #[error("Invalid format: auth must have the format key:signature")]
    SigninFormat,
    /// Sign-in with a key other than the app's.
    #[error("Invalid key in signin auth data: '{key}'")]
    SigninKey {
        /// The key the client sent.
        key: String,
    },
    /// Sign-in signature mismatch.
    #[error("Invalid signature: Expected HMAC SHA256 hex digest of {signed}, but got {signature}")]
    SigninSignature {
        /// The string that should have been signed.
        signed: String,
        /// The signature the client sent.
        signature: String,
    },
}

/// The string a channel subscription signs: `socket_id:channel[:channel_data]`.
pub fn channel_string_to_sign(
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
) -> String {
    match channel_data {
        Some(data) => format!("{socket_id}:{channel}:{data}"),
        None => format!("{socket_id}:{channel}"),
    }
}

/// Checks a private or presence subscription's `auth` (`key:signature`).
pub fn verify_channel_auth(
    key: &str,
    secret: &str,
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
    auth: Option<&str>,
) -> Result<(), AuthError> {
    let auth = auth
        .filter(|a| !a.is_empty())
        .ok_or_else(|| AuthError::Missing {
            channel: channel.to_owned(),
        })?;
    let (given_key, signature) = split_auth(auth).ok_or_else(|| AuthError::Format {
        channel: channel.to_owned(),
    })?;
    if given_key != key {
        return Err(AuthError::Key {
            key: given_key.to_owned(),
        });
    }
    let signed = channel_string_to_sign(socket_id, channel, channel_data);
    if verify(secret, signed.as_bytes(), signature) {
        Ok(())
    } else {
        Err(AuthError::Signature {
            signed,
            signature: signature.to_owned(),
        })
    }
}

/// Checks a `pusher:signin` `auth` over `socket_id::user::user_data`.
pub fn verify_signin(
    key: &str,
    secret: &str,
    socket_id: &str,
    user_data: &str,
    auth: &str,
) -> Result<(), AuthError> {
    let (given_key, signature) = split_auth(auth).ok_or(AuthError::SigninFormat)?;
    if given_key != key {
        return Err(AuthError::SigninKey {
            key: given_key.to_owned(),
        });
    }
    let signed = format!("{socket_id}::user::{user_data}");
    if verify(secret, signed.as_bytes(), signature) {
        Ok(())
    } else {
        Err(AuthError::SigninSignature {
            signed,
            signature: signature.to_owned(),
        })
    }
}

fn split_auth(auth: &str) -> Option<(&str, &str)> {
    let (key, signature) = auth.split_once(':')?;
    (!key.is_empty() && !signature.is_empty()).then_some((key, signature))
}

/// The `X-Pusher-Signature` of a webhook body.
pub fn webhook_signature(secret: &str, body: &[u8]) -> String {
    sign(secret, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "278d425bdf160c739803";
    const SECRET: &str = "7ad3773142a6692b25b8";

    #[test]
    fn private_channel_vector() {
        let sig = sign(SECRET, b"1234.1234:private-foobar");
        assert_eq!(
            sig,
            "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
        let auth = format!("{KEY}:{sig}");
        assert_eq!(
            verify_channel_auth(
                KEY,
                SECRET,
                "1234.1234",
                "private-foobar",
                None,
                Some(&auth)
            ),
            Ok(())
        );
    }

    #[test]
    fn presence_vector_corrected() {
        let data = r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#;
        let auth =
            format!("{KEY}:31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80");
        assert_eq!(
            verify_channel_auth(
                KEY,
                SECRET,
                "1234.1234",
                "presence-foobar",
                Some(data),
                Some(&auth)
            ),
            Ok(())
        );
    }

    #[test]
    fn encrypted_vector() {
        let auth =
            format!("{KEY}:e85caab4331194145d44feae15aea9539ea50631afacbc593a9555ceadc42357");
        assert!(verify_channel_auth(
            KEY,
            SECRET,
            "1234.1234",
            "private-encrypted-foo",
            None,
            Some(&auth)
        )
        .is_ok());
    }

    #[test]
    fn signin_vector() {
        let auth =
            format!("{KEY}:4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba");
        assert_eq!(
            verify_signin(KEY, SECRET, "1234.1234", r#"{"id":"12345"}"#, &auth),
            Ok(())
        );
        assert_eq!(
            verify_signin(KEY, SECRET, "1234.1234", r#"{"id":"12345"}"#, "nocolon"),
            Err(AuthError::SigninFormat)
        );
    }

    #[test]
    fn hosted_error_texts() {
        let ch = "private-foobar";
        let err = |auth: Option<&str>| {
            verify_channel_auth(KEY, SECRET, "1.1", ch, None, auth)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(None),
            "Auth info required to subscribe to private-foobar"
        );
        assert_eq!(
            err(Some("")),
            "Auth info required to subscribe to private-foobar"
        );
        assert_eq!(
            err(Some("nocolon")),
            "Auth value for subscription to private-foobar is invalid: should be of format 'key:signature'"
        );
        assert_eq!(
            err(Some("other:abc")),
            "Invalid key in subscription auth data: 'other'"
        );
        assert_eq!(
            err(Some(&format!("{KEY}:abc"))),
            "Invalid signature: Expected HMAC SHA256 hex digest of 1.1:private-foobar, but got abc"
        );
    }

    #[test]
    fn upper_case_and_bad_hex_are_refused() {
        let sig = sign(SECRET, b"x");
        assert!(verify(SECRET, b"x", &sig));
        assert!(!verify(SECRET, b"x", &sig.to_uppercase()));
        assert!(!verify(SECRET, b"x", "zz"));
        assert!(!verify(SECRET, b"y", &sig));
    }
}
