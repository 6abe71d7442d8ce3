//! Pusher HTTP API request signing, `auth_version` 1.0.
//!
//! Owns the pure signing rules: `body_md5`, the canonical query string and the HMAC-SHA256
//! signature over `METHOD\npath\nquery`. Plain functions of `(secret, inputs, timestamp)`; no
//! I/O, no clock, no HTTP client (that is `trigger`'s job).

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

/// The credentials of one Pusher app, as the trigger client signs with them.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// Public app key, sent as `auth_key`.
    pub key: String,
    /// App secret, the HMAC key; never sent.
    pub secret: String,
}

/// Lower-case hex MD5 of a request body (`body_md5`).
pub fn body_md5(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

/// Lower-case hex HMAC-SHA256 of `message` keyed with `secret`.
pub fn hmac_sha256_hex(secret: &str, message: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The string to sign: method, path and the canonical query (keys lower-cased and sorted,
/// `key=value` joined with `&`, values not escaped, `auth_signature` left out).
pub fn string_to_sign(method: &str, path: &str, params: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, &str)> = params
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("auth_signature"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()))
        .collect();
    pairs.sort();
    let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "{}\n{}\n{}",
        method.to_ascii_uppercase(),
        path,
        query.join("&")
    )
}

/// Adds `auth_key`, `auth_timestamp`, `auth_version`, `body_md5` (when the body is not empty)
/// and finally `auth_signature` to `params`, and returns the full parameter list to send.
pub fn sign(
    credentials: &Credentials,
    method: &str,
    path: &str,
    body: &[u8],
    timestamp: u64,
    mut params: Vec<(String, String)>,
) -> Vec<(String, String)> {
    params.push(("auth_key".into(), credentials.key.clone()));
    params.push(("auth_timestamp".into(), timestamp.to_string()));
    params.push(("auth_version".into(), "1.0".into()));
    if !body.is_empty() {
        params.push(("body_md5".into(), body_md5(body)));
    }
    let signature = hmac_sha256_hex(&credentials.secret, &string_to_sign(method, path, &params));
    params.push(("auth_signature".into(), signature));
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs_credentials() -> Credentials {
        Credentials {
            key: "278d425bdf160c739803".into(),
            secret: "7ad3773142a6692b25b8".into(),
        }
    }

    /// The worked example of Pusher's REST API documentation.
    #[test]
    fn signs_the_documented_example() {
        let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        assert_eq!(body_md5(body), "ec365a775a4cd0599faeb73354201b6f");
        let params = sign(
            &docs_credentials(),
            "POST",
            "/apps/3/events",
            body,
            1353088179,
            Vec::new(),
        );
        let signature = params.iter().find(|(k, _)| k == "auth_signature");
        assert_eq!(
            signature.map(|(_, v)| v.as_str()),
            Some("da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c")
        );
    }

    #[test]
    fn canonical_query_sorts_lowercases_and_skips_the_signature() {
        let params = vec![
            ("Name".to_string(), "created".to_string()),
            ("auth_signature".to_string(), "x".to_string()),
            ("auth_key".to_string(), "k".to_string()),
        ];
        assert_eq!(
            string_to_sign("post", "/p", &params),
            "POST\n/p\nauth_key=k&name=created"
        );
    }

    #[test]
    fn get_without_body_has_no_body_md5() {
        let params = sign(
            &docs_credentials(),
            "GET",
            "/apps/3/channels",
            b"",
            1353088179,
            vec![
                ("filter_by_prefix".into(), "presence-".into()),
                ("info".into(), "user_count".into()),
            ],
        );
        assert!(params.iter().all(|(k, _)| k != "body_md5"));
        let signature = params.iter().find(|(k, _)| k == "auth_signature");
        assert_eq!(
            signature.map(|(_, v)| v.as_str()),
            Some("16819168891cb5dfd72b5c7a5d3d602605b26c6ba1930033b5e2eeeb65010291")
        );
    }
}
