//! The server side of the WebSocket opening handshake (RFC 6455 §4.2) for `GET /app/{key}`:
//! checks the request, and writes either the `101 Switching Protocols` answer or a plain HTTP
//! error. Pure: it reads the request and returns text.

use actix_http::header::{self, HeaderMap};
use actix_http::{HttpMessage, Method, Request};
use percent_encoding::percent_decode_str;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// The answer to an upgrade in a WebSocket version other than 13.
const VERSION_REFUSED: &str = "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n\
    Content-Type: text/plain\r\nContent-Length: 36\r\nConnection: close\r\n\r\n\
    Only WebSocket version 13 is spoken\n";

/// An accepted upgrade.
#[derive(Debug)]
pub struct Accepted {
    /// The app key from the path.
    pub key: String,
    /// The raw query string.
    pub query: String,
    /// The `101` response to write.
    pub response: String,
}

/// Checks an upgrade request; `Err` holds the HTTP response that refuses it.
pub fn accept(req: &Request) -> Result<Accepted, String> {
    let key = req
        .path()
        .strip_prefix("/app/")
        .filter(|k| !k.is_empty() && !k.contains('/'))
        .map(|k| percent_decode_str(k).decode_utf8_lossy().into_owned());
    let Some(key) = key else {
        return Err(plain(404, "Not Found", "404 NOT FOUND\n"));
    };
    if req.method() != Method::GET {
        return Err(plain(
            405,
            "Method Not Allowed",
            "WebSocket upgrades use GET\n",
        ));
    }
    let headers = req.headers();
    let websocket = has_token(headers, header::UPGRADE, "websocket");
    let version = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .and_then(|v| v.to_str().ok());
    let client_key = headers.get(header::SEC_WEBSOCKET_KEY);
    if websocket && version.is_some_and(|v| v != "13") {
        // RFC 6455 §4.4: refuse, naming the version understood.
        return Err(VERSION_REFUSED.to_owned());
    }
    let (true, Some("13"), Some(client_key)) = (websocket, version, client_key) else {
        return Err(plain(
            400,
            "Bad Request",
            "A WebSocket upgrade needs Upgrade: websocket, Sec-WebSocket-Version: 13 and Sec-WebSocket-Key\n",
        ));
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(client_key.as_bytes())
    );
    Ok(Accepted {
        key,
        query: req.uri().query().unwrap_or("").to_owned(),
        response,
    })
}

/// Whether a comma-separated header holds `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// A complete HTTP/1.1 response that closes the connection.
fn plain(status: u16, reason: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_http::test::TestRequest;

    fn request(path: &str, headers: &[(&str, &str)]) -> Request {
        let mut req = TestRequest::with_uri(path);
        for (k, v) in headers {
            req.insert_header((*k, *v));
        }
        req.finish()
    }

    const GOOD: [(&str, &str); 4] = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    #[test]
    fn rfc_6455_sample_key() {
        let ok = accept(&request("/app/app-key?protocol=7", &GOOD)).unwrap();
        assert_eq!(ok.key, "app-key");
        assert_eq!(ok.query, "protocol=7");
        assert!(ok
            .response
            .starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(ok
            .response
            .contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    }

    #[test]
    fn refusals() {
        assert!(accept(&request("/other", &GOOD))
            .unwrap_err()
            .starts_with("HTTP/1.1 404"));
        assert!(accept(&request("/app/", &GOOD))
            .unwrap_err()
            .starts_with("HTTP/1.1 404"));
        let no_key = &GOOD[..3];
        assert!(accept(&request("/app/k", no_key))
            .unwrap_err()
            .starts_with("HTTP/1.1 400"));
        let old = [GOOD[0], GOOD[1], ("Sec-WebSocket-Version", "8"), GOOD[3]];
        let refused = accept(&request("/app/k", &old)).unwrap_err();
        assert!(
            refused.starts_with("HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n")
        );
        let body = refused.split("\r\n\r\n").nth(1).unwrap();
        assert!(refused.contains(&format!("Content-Length: {}\r\n", body.len())));
    }
}
