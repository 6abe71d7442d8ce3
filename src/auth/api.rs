//! The HTTP API request signature (`auth_key`, `auth_timestamp`, `auth_version`, `body_md5`,
//! `auth_signature`): the canonical string, the 600 s window, `body_md5`, with the 401 texts
//! hosted Pusher gives.
//!
//! Query values arrive percent-encoded from some SDKs (PHP, Ruby) and raw from others (Node,
//! Python, Go); they are decoded before signing, so every SDK's request verifies.

use std::time::{Duration, UNIX_EPOCH};

use md5::{Digest, Md5};
use percent_encoding::percent_decode_str;

/// Seconds a request's timestamp may differ from the server clock (exclusive).
pub const TIMESTAMP_WINDOW: u64 = 600;

/// Why a signed request was refused; every variant is a 401 with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiAuthError {
    /// No `auth_key`.
    #[error("Missing parameter: auth_key")]
    KeyRequired,
    /// `auth_key` matches no app.
    #[error("Unknown auth_key")]
    UnknownKey,
    /// The key's app is not the one in the path.
    #[error("auth_key does not match the app in the path")]
    AppMismatch,
    /// No `auth_version`.
    #[error("Version required")]
    VersionRequired,
    /// `auth_version` other than 1.0.
    #[error("Version not supported")]
    VersionNotSupported,
    /// No `auth_timestamp`.
    #[error("Timestamp required")]
    TimestampRequired,
    /// Outside the window.
    #[error("Timestamp expired: Given timestamp ({given}) not within 600s of server time ({now})")]
    TimestampExpired {
        /// The given time, ISO-8601 UTC.
        given: String,
        /// Server time, ISO-8601 UTC.
        now: String,
    },
    /// A body without `body_md5`.
    #[error("Missing parameter: body_md5")]
    BodyMd5Required,
    /// `body_md5` does not match the body received.
    #[error("Invalid body_md5: expected {expected}, but you sent {given}")]
    BodyMd5Mismatch {
        /// MD5 of the body herald received.
        expected: String,
        /// What the request claimed.
        given: String,
    },
    /// No `auth_signature`.
    #[error("Missing parameter: auth_signature")]
    SignatureRequired,
    /// The signature does not match.
    #[error("Invalid signature: you should have sent HmacSHA256Hex({signed:?}, your_secret_key), but you sent \"{given}\"")]
    Signature {
        /// The canonical string herald signed.
        signed: String,
        /// The signature the request carried.
        given: String,
    },
}

/// Splits a raw query string into percent-decoded `(key, value)` pairs, in wire order.
pub fn parse_query(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// The value of the first parameter named `key`.
pub fn param<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `METHOD\npath\nsorted query without auth_signature`.
pub fn string_to_sign(method: &str, path: &str, query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, &str)> = query
        .iter()
        .filter(|(k, _)| k != "auth_signature")
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()))
        .collect();
    pairs.sort();
    let canonical: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "{}\n{}\n{}",
        method.to_ascii_uppercase(),
        path,
        canonical.join("&")
    )
}

/// Lower-case hex MD5 of a body.
pub fn body_md5(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

/// A request as received, for verification.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// The path exactly as received (percent-encoded as on the wire).
    pub path: &'a str,
    /// Decoded query parameters.
    pub query: &'a [(String, String)],
    /// The raw body.
    pub body: &'a [u8],
}

/// Verifies version, timestamp, `body_md5` and signature, in that order (as hosted does).
/// `now` is seconds since the Unix epoch.
pub fn verify(secret: &str, req: Request<'_>, now: u64) -> Result<(), ApiAuthError> {
    match param(req.query, "auth_version") {
        None => return Err(ApiAuthError::VersionRequired),
        Some("1.0") => {}
        Some(_) => return Err(ApiAuthError::VersionNotSupported),
    }
    let ts = param(req.query, "auth_timestamp").ok_or(ApiAuthError::TimestampRequired)?;
    check_timestamp(ts, now)?;
    match param(req.query, "body_md5") {
        Some(given) => {
            let expected = body_md5(req.body);
            if !given.eq_ignore_ascii_case(&expected) {
                return Err(ApiAuthError::BodyMd5Mismatch {
                    expected,
                    given: given.to_owned(),
                });
            }
        }
        None if !req.body.is_empty() => return Err(ApiAuthError::BodyMd5Required),
        None => {}
    }
    let given = param(req.query, "auth_signature").ok_or(ApiAuthError::SignatureRequired)?;
    let signed = string_to_sign(req.method, req.path, req.query);
    if super::verify(secret, signed.as_bytes(), given) {
        return Ok(());
    }
    let decoded_path = decode(req.path);
    if decoded_path != req.path {
        let alt = string_to_sign(req.method, &decoded_path, req.query);
        if super::verify(secret, alt.as_bytes(), given) {
            return Ok(());
        }
    }
    Err(ApiAuthError::Signature {
        signed,
        given: given.to_owned(),
    })
}

fn check_timestamp(ts: &str, now: u64) -> Result<(), ApiAuthError> {
    let expired = |given: Option<u64>| ApiAuthError::TimestampExpired {
        given: given.and_then(iso8601).unwrap_or_else(|| ts.to_owned()),
        now: iso8601(now).unwrap_or_else(|| now.to_string()),
    };
    let given: u64 = ts.parse().map_err(|_| expired(None))?;
    if given.abs_diff(now) >= TIMESTAMP_WINDOW {
        return Err(expired(Some(given)));
    }
    Ok(())
}

/// ISO-8601 UTC, for the times RFC 3339 can write (up to 9999-12-31T23:59:59Z).
fn iso8601(secs: u64) -> Option<String> {
    const LAST: u64 = 253_402_300_799;
    if secs > LAST {
        return None;
    }
    let time = UNIX_EPOCH.checked_add(Duration::from_secs(secs))?;
    Some(humantime::format_rfc3339_seconds(time).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "7ad3773142a6692b25b8";
    const KEY: &str = "278d425bdf160c739803";
    const TS: u64 = 1353088179;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn documented_post_vector() {
        let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        assert_eq!(body_md5(body), "ec365a775a4cd0599faeb73354201b6f");
        let query = q(&[
            ("auth_key", KEY),
            ("auth_timestamp", "1353088179"),
            ("auth_version", "1.0"),
            ("body_md5", "ec365a775a4cd0599faeb73354201b6f"),
            (
                "auth_signature",
                "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c",
            ),
        ]);
        let req = Request {
            method: "POST",
            path: "/apps/3/events",
            query: &query,
            body,
        };
        assert_eq!(verify(SECRET, req, TS), Ok(()));
        assert_eq!(verify(SECRET, req, TS + 599), Ok(()));
        assert!(matches!(
            verify(SECRET, req, TS + 600),
            Err(ApiAuthError::TimestampExpired { .. })
        ));
        assert!(matches!(
            verify(SECRET, req, TS - 600),
            Err(ApiAuthError::TimestampExpired { .. })
        ));
        assert!(matches!(
            verify("wrong", req, TS),
            Err(ApiAuthError::Signature { .. })
        ));
        let tampered = Request { body: b"{}", ..req };
        assert!(matches!(
            verify(SECRET, tampered, TS),
            Err(ApiAuthError::BodyMd5Mismatch { .. })
        ));
    }

    #[test]
    fn get_vector_with_percent_encoded_query() {
        let query = parse_query(
            "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&filter_by_prefix=presence-&info=user%5Fcount&auth_signature=16819168891cb5dfd72b5c7a5d3d602605b26c6ba1930033b5e2eeeb65010291",
        );
        let req = Request {
            method: "GET",
            path: "/apps/3/channels",
            query: &query,
            body: b"",
        };
        assert_eq!(verify(SECRET, req, TS), Ok(()));
    }

    #[test]
    fn terminate_vector() {
        let query = q(&[
            ("auth_key", KEY),
            ("auth_timestamp", "1353088179"),
            ("auth_version", "1.0"),
            ("body_md5", "99914b932bd37a50b983c5e7c90ae93b"),
            (
                "auth_signature",
                "880052344e56f2b29dd6ae66856b69f1d496d6a262d22ccd4f50f94a6d98bf6a",
            ),
        ]);
        let req = Request {
            method: "POST",
            path: "/apps/3/users/user-1/terminate_connections",
            query: &query,
            body: b"{}",
        };
        assert_eq!(verify(SECRET, req, TS), Ok(()));
    }

    #[test]
    fn python_body_md5_on_get_vector() {
        let query = q(&[
            ("auth_key", "key"),
            ("auth_timestamp", "1000"),
            ("auth_version", "1.0"),
            ("body_md5", "d41d8cd98f00b204e9800998ecf8427e"),
            ("foo", "bar"),
            (
                "auth_signature",
                "5c49f04a95eedc9028b1e0e8de7c2c7ad63504a0e3b5c145d2accaef6c14dbac",
            ),
        ]);
        let req = Request {
            method: "GET",
            path: "/some/obscure/api",
            query: &query,
            body: b"",
        };
        assert_eq!(verify("secret", req, 1000), Ok(()));
    }

    #[test]
    fn hosted_texts_and_order() {
        let none = q(&[]);
        let req = Request {
            method: "GET",
            path: "/apps/3/channels",
            query: &none,
            body: b"",
        };
        assert_eq!(
            verify(SECRET, req, TS).unwrap_err().to_string(),
            "Version required"
        );
        let v2 = q(&[("auth_version", "2.0")]);
        assert_eq!(
            verify(SECRET, Request { query: &v2, ..req }, TS)
                .unwrap_err()
                .to_string(),
            "Version not supported"
        );
        let no_ts = q(&[("auth_version", "1.0")]);
        assert_eq!(
            verify(
                SECRET,
                Request {
                    query: &no_ts,
                    ..req
                },
                TS
            )
            .unwrap_err()
            .to_string(),
            "Timestamp required"
        );
        let old = q(&[("auth_version", "1.0"), ("auth_timestamp", "1749435123")]);
        assert_eq!(
            verify(SECRET, Request { query: &old, ..req }, 1749381114).unwrap_err().to_string(),
            "Timestamp expired: Given timestamp (2025-06-09T02:12:03Z) not within 600s of server time (2025-06-08T11:11:54Z)"
        );
        let no_md5 = q(&[("auth_version", "1.0"), ("auth_timestamp", "1353088179")]);
        assert_eq!(
            verify(
                SECRET,
                Request {
                    query: &no_md5,
                    body: b"{}",
                    ..req
                },
                TS
            ),
            Err(ApiAuthError::BodyMd5Required)
        );
    }

    #[test]
    fn absurd_timestamps_are_refused_not_panicked_on() {
        for ts in [
            "253402300800",
            "18446744073709551615",
            "99999999999999999999",
            "-1",
            "x",
        ] {
            let query = q(&[("auth_version", "1.0"), ("auth_timestamp", ts)]);
            let req = Request {
                method: "GET",
                path: "/apps/3/channels",
                query: &query,
                body: b"",
            };
            let err = verify(SECRET, req, TS).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("Timestamp expired: Given timestamp ({ts})")),
                "{err}"
            );
        }
    }

    #[test]
    fn canonical_string() {
        let query = q(&[
            ("b", "2"),
            ("A", "1"),
            ("auth_signature", "x"),
            ("info", "a,b"),
        ]);
        assert_eq!(
            string_to_sign("get", "/p", &query),
            "GET\n/p\na=1&b=2&info=a,b"
        );
    }
}
