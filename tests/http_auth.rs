//! Spec §8: request signing as each SDK does it, and the 401 texts.

mod common;

use common::{Setup, Signing, KEY};
use serde_json::json;

fn is_iso(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

fn assert_expired(body: &str) {
    let body = body.trim_end();
    let rest = body
        .strip_prefix("Timestamp expired: Given timestamp (")
        .unwrap_or_else(|| panic!("{body}"));
    let (given, rest) = rest
        .split_once(") not within 600s of server time (")
        .unwrap_or_else(|| panic!("{body}"));
    let now = rest.strip_suffix(')').unwrap_or_else(|| panic!("{body}"));
    assert!(is_iso(given) && is_iso(now), "ISO-8601 UTC times: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_style_raw_query_verifies() {
    let server = Setup::new().start().await;
    let api = server.api();
    let mut c = server.client().await;
    c.join("raw").await;
    let body = json!({"name": "e", "channels": ["raw"], "data": "x", "info": "user_count,subscription_count"});
    let response = api.trigger(body).await;
    // user_count is for presence channels, subscription_count opt-in (off here): an empty entry.
    assert_eq!(response.ok(), json!({"channels": {"raw": {}}}));
    let list = api
        .get(
            &api.path("/channels"),
            &[("filter_by_prefix", "presence-"), ("info", "user_count")],
        )
        .await;
    assert_eq!(
        (list.status, list.body.as_str()),
        (200, r#"{"channels":{}}"#)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_style_body_md5_on_get_and_spaced_json() {
    let server = Setup::new().start().await;
    let api = server.api();
    let mut c = server.client().await;
    c.join("py").await;
    let python = Signing {
        md5_on_get: true,
        ..Signing::default()
    };
    let response = api
        .request("GET", &api.path("/channels"), &[], "", &python)
        .await;
    assert_eq!(
        (response.status, response.body.as_str()),
        (200, r#"{"channels":{"py":{}}}"#)
    );
    let shown = api
        .request(
            "GET",
            &api.path("/channels/py"),
            &[("info", "subscription_count")],
            "",
            &python,
        )
        .await;
    // subscription_count is opt-in per app: left out here, where the app has it off.
    assert_eq!(shown.ok(), json!({"occupied": true}));
    let spaced = r#"{"name": "e", "channels": ["py"], "data": "{\"a\": 1}"}"#;
    let response = api.post(&api.path("/events"), spaced).await;
    assert_eq!((response.status, response.body.as_str()), (200, "{}"));
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"e","channel":"py","data":"{\"a\": 1}"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_style_percent_encoded_query_and_singular_channel() {
    let server = Setup::new().start().await;
    let api = server.api();
    let mut c = server.client().await;
    c.join("php-channel").await;
    let php = Signing {
        percent_encode: true,
        ..Signing::default()
    };
    let body = r#"{"name":"e","data":"{\"x\":\"\\/path\"}","channel":"php-channel"}"#;
    let response = api
        .request("POST", &api.path("/events"), &[], body, &php)
        .await;
    assert_eq!((response.status, response.body.as_str()), (200, "{}"));
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"e","channel":"php-channel","data":"{\"x\":\"\\/path\"}"}"#
    );
    let params = [("info", "subscription_count"), ("filter_by_prefix", "php-")];
    let list = api
        .request("GET", &api.path("/channels"), &params, "", &php)
        .await;
    assert_eq!(list.ok(), json!({"channels": {"php-channel": {}}}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signature_is_401_with_expected_string() {
    let server = Setup::new().start().await;
    let api = server.api();
    let body = r#"{"name":"e","channels":["c"],"data":"x"}"#;
    let wrong = Signing {
        secret: Some("not-the-secret".into()),
        ..Signing::default()
    };
    let query = api.signed_query("POST", &api.path("/events"), &[], body, &wrong);
    let response = api
        .raw("POST", &format!("{}?{query}", api.path("/events")), body)
        .await;
    assert_eq!(response.status, 401, "{}", response.body);
    assert!(
        response.content_type.starts_with("text/plain"),
        "{}",
        response.content_type
    );
    let sent = query.rsplit_once("auth_signature=").expect("signature").1;
    let signed = query.split("&auth_signature=").next().expect("query");
    let want = format!(
        "Invalid signature: you should have sent HmacSHA256Hex(\"POST\\n/apps/test-id/events\\n{signed}\", your_secret_key), but you sent \"{sent}\""
    );
    assert_eq!(response.body.trim_end(), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_window_is_600_seconds() {
    let server = Setup::new().start().await;
    let api = server.api();
    let path = api.path("/channels");
    for offset in [-595, 595] {
        let s = Signing {
            timestamp_offset: offset,
            ..Signing::default()
        };
        let response = api.request("GET", &path, &[], "", &s).await;
        assert_eq!(response.status, 200, "offset {offset}: {}", response.body);
    }
    for offset in [-600, -100_000, 605] {
        let s = Signing {
            timestamp_offset: offset,
            ..Signing::default()
        };
        let response = api.request("GET", &path, &[], "", &s).await;
        assert_eq!(response.status, 401, "offset {offset}: {}", response.body);
        assert_expired(&response.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_unknown_key_is_401() {
    let server = Setup::new().start().await;
    let api = server.api();
    let path = api.path("/channels");
    let missing = api
        .request(
            "GET",
            &path,
            &[],
            "",
            &Signing {
                omit_key: true,
                ..Signing::default()
            },
        )
        .await;
    assert_eq!(
        (missing.status, missing.body.trim_end()),
        (401, "Missing parameter: auth_key")
    );
    let unknown = Signing {
        key: Some("nope".into()),
        ..Signing::default()
    };
    let response = api.request("GET", &path, &[], "", &unknown).await;
    assert_eq!(
        (response.status, response.body.trim_end()),
        (401, "Unknown auth_key")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_md5_mismatch_or_missing_is_401() {
    let server = Setup::new().start().await;
    let api = server.api();
    let path = api.path("/events");
    let body = r#"{"name":"e","channels":["c"],"data":"x"}"#;
    let wrong = Signing {
        body_md5: Some("0123456789abcdef0123456789abcdef".into()),
        ..Signing::default()
    };
    let response = api.request("POST", &path, &[], body, &wrong).await;
    assert_eq!(response.status, 401, "{}", response.body);
    assert!(!response.body.trim().is_empty());
    // A signature made without body_md5 over a request that has a body.
    let query = api.signed_query("POST", &path, &[], "", &Signing::default());
    let response = api.raw("POST", &format!("{path}?{query}"), body).await;
    assert_eq!(response.status, 401, "{}", response.body);
    // A GET carrying a wrong body_md5 is refused as well.
    let response = api
        .request("GET", &api.path("/channels"), &[], "", &wrong)
        .await;
    assert_eq!(response.status, 401, "{}", response.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_and_timestamp_required() {
    let server = Setup::new().start().await;
    let api = server.api();
    let response = api
        .raw(
            "GET",
            &format!("{}?auth_key={KEY}", api.path("/channels")),
            "",
        )
        .await;
    assert_eq!(
        (response.status, response.body.trim_end()),
        (401, "Version required")
    );
    let response = api
        .raw(
            "GET",
            &format!("{}?auth_key={KEY}&auth_version=1.0", api.path("/channels")),
            "",
        )
        .await;
    assert_eq!(
        (response.status, response.body.trim_end()),
        (401, "Timestamp required")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_auth_version_is_refused() {
    let server = Setup::new().start().await;
    let api = server.api();
    let path = api.path("/channels");
    let response = api
        .raw(
            "GET",
            &format!("{path}?auth_key={KEY}&auth_version=2.0&auth_timestamp=1"),
            "",
        )
        .await;
    assert_eq!(
        (response.status, response.body.trim_end()),
        (401, "Version not supported")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameter_order_on_the_wire_does_not_matter() {
    let server = Setup::new().start().await;
    let api = server.api();
    let path = api.path("/channels");
    let params = [("filter_by_prefix", "presence-"), ("info", "user_count")];
    let query = api.signed_query("GET", &path, &params, "", &Signing::default());
    let mut pairs: Vec<&str> = query.split('&').collect();
    pairs.reverse();
    let response = api
        .raw("GET", &format!("{path}?{}", pairs.join("&")), "")
        .await;
    assert_eq!(
        (response.status, response.body.as_str()),
        (200, r#"{"channels":{}}"#)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upper_case_signature_is_refused() {
    let server = Setup::new().start().await;
    let api = server.api();
    let path = api.path("/channels");
    let query = api.signed_query("GET", &path, &[], "", &Signing::default());
    let (rest, signature) = query.rsplit_once("auth_signature=").expect("signature");
    let upper = format!("{path}?{rest}auth_signature={}", signature.to_uppercase());
    let response = api.raw("GET", &upper, "").await;
    assert_eq!(response.status, 401, "{}", response.body);
    let lower = api.raw("GET", &format!("{path}?{query}"), "").await;
    assert_eq!(lower.status, 200, "{}", lower.body);
}

/// Review finding 4: timestamps far in the future are refused with 401, not a crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_timestamps_are_401() {
    let server = Setup::new().start().await;
    let api = server.api();
    let path = api.path("/channels");
    for ts in [
        "99999999999",
        "253402300800",
        "18446744073709551615",
        "-5",
        "abc",
    ] {
        let query =
            format!("auth_key={KEY}&auth_timestamp={ts}&auth_version=1.0&auth_signature=00");
        let response = api.raw("GET", &format!("{path}?{query}"), "").await;
        assert_eq!(response.status, 401, "{ts}: {}", response.body);
        assert!(
            response
                .body
                .starts_with("Timestamp expired: Given timestamp ("),
            "{ts}: {}",
            response.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_get_with_json_content_type_and_no_body() {
    let server = Setup::new().start().await;
    let api = server.api();
    let php = Signing {
        percent_encode: true,
        content_type_always: true,
        ..Signing::default()
    };
    let response = api
        .request(
            "GET",
            &api.path("/channels"),
            &[("filter_by_prefix", "presence-")],
            "",
            &php,
        )
        .await;
    assert_eq!(
        (response.status, response.body.as_str()),
        (200, r#"{"channels":{}}"#)
    );
}

/// sdk-requests.md §1: PHP JSON-encodes string data again; it is relayed verbatim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_double_encoded_string_data_is_relayed_verbatim() {
    let server = Setup::new().start().await;
    let mut c = server.client().await;
    c.join("php").await;
    let php = Signing {
        percent_encode: true,
        ..Signing::default()
    };
    let body = r#"{"name":"e","data":"\"plain string\"","channel":"php"}"#;
    let response = server
        .api()
        .request("POST", &server.api().path("/events"), &[], body, &php)
        .await;
    assert_eq!((response.status, response.body.as_str()), (200, "{}"));
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"e","channel":"php","data":"\"plain string\""}"#
    );
}
