//! The REST API signature: `parse_query` of a raw query string and `verify` of a request.
//!
//! Input: `METHOD\npath\nraw query\nbody`. The request is verified as received (any outcome but
//! a panic is fine); then its parameters are signed the way the SDKs sign them, with the
//! library's own `sign`, written back as a percent-encoded query and parsed again. That request
//! must parse to the same pairs and verify, and must stop verifying with another signature,
//! another body or a timestamp outside the window.
#![no_main]

use herald::auth::api::{self, parse_query, string_to_sign, ApiAuthError, Request};
use herald::auth::sign;
use libfuzzer_sys::fuzz_target;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

const KEY: &str = "278d425bdf160c739803";
const SECRET: &str = "7ad3773142a6692b25b8";
const NOW: u64 = 1_353_088_179;
const AUTH_PARAMS: [&str; 5] = [
    "auth_key",
    "auth_timestamp",
    "auth_version",
    "body_md5",
    "auth_signature",
];

fuzz_target!(|bytes: &[u8]| {
    let mut parts = bytes.splitn(4, |&b| b == b'\n');
    let (Ok(method), Ok(path), Ok(raw_query)) = (
        std::str::from_utf8(parts.next().unwrap_or_default()),
        std::str::from_utf8(parts.next().unwrap_or_default()),
        std::str::from_utf8(parts.next().unwrap_or_default()),
    ) else {
        return;
    };
    let body = parts.next().unwrap_or_default();

    let query = parse_query(raw_query);
    let received = Request {
        method,
        path,
        query: &query,
        body,
    };
    if let Err(e) = api::verify(SECRET, received, NOW) {
        let _ = e.to_string();
    }

    // The same request, signed by an SDK that knows the secret.
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| !AUTH_PARAMS.contains(&k.as_str()))
        .cloned()
        .collect();
    pairs.push(("auth_key".into(), KEY.into()));
    pairs.push(("auth_timestamp".into(), NOW.to_string()));
    pairs.push(("auth_version".into(), "1.0".into()));
    if !body.is_empty() {
        pairs.push(("body_md5".into(), api::body_md5(body)));
    }
    let signature = sign(SECRET, string_to_sign(method, path, &pairs).as_bytes());
    pairs.push(("auth_signature".into(), signature.clone()));
    let wire: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    let reparsed = parse_query(&wire.join("&"));
    assert_eq!(reparsed, pairs, "the query parser loses or changes pairs");

    let signed = Request {
        query: &reparsed,
        ..received
    };
    assert_eq!(api::verify(SECRET, signed, NOW), Ok(()));
    assert_eq!(api::verify(SECRET, signed, NOW + 599), Ok(()));
    assert!(matches!(
        api::verify(SECRET, signed, NOW + 600),
        Err(ApiAuthError::TimestampExpired { .. })
    ));
    assert!(matches!(
        api::verify("another-secret", signed, NOW),
        Err(ApiAuthError::Signature { .. })
    ));

    let mut forged = reparsed.clone();
    let last = forged.len() - 1;
    forged[last].1 = flip_first_digit(&signature);
    let forged = Request {
        query: &forged,
        ..signed
    };
    assert!(matches!(
        api::verify(SECRET, forged, NOW),
        Err(ApiAuthError::Signature { .. })
    ));

    let other_body: &[u8] = if body.is_empty() { b"{}" } else { &body[1..] };
    assert!(matches!(
        api::verify(
            SECRET,
            Request {
                body: other_body,
                ..signed
            },
            NOW
        ),
        Err(ApiAuthError::BodyMd5Required | ApiAuthError::BodyMd5Mismatch { .. })
    ));
});

fn encode(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

fn flip_first_digit(hex: &str) -> String {
    let first = if hex.starts_with('0') { '1' } else { '0' };
    format!("{first}{}", &hex[1..])
}
