//! The Pusher socket id of the browser that caused a change, so herald can leave it out.
//!
//! Owns the `\d+\.\d+` rule and where the id comes from: the `X-Pusher-Socket-ID` header
//! (backpusher 0.0.2 and our own front-end), else the `socket_id` query parameter
//! (backpusher 0.0.1, 2011). Anything else, including the literal `undefined` the 2011 client
//! sends before it connects, means "exclude nobody". Never rejects a request.

use std::fmt;

use actix_web::HttpRequest;

/// Name of the header backpusher 0.0.2 and our adapter send.
pub const HEADER: &str = "X-Pusher-Socket-ID";

/// A well-formed socket id (`digits.digits`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketId(String);

impl SocketId {
    /// Accepts exactly `^\d+\.\d+$`.
    pub fn parse(value: &str) -> Option<Self> {
        let (left, right) = value.split_once('.')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        (digits(left) && digits(right)).then(|| Self(value.to_owned()))
    }

    /// The id as sent to herald.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The originator of `req`: a well-formed header value wins, then the query parameter.
    pub fn from_request(req: &HttpRequest) -> Option<Self> {
        let header = req
            .headers()
            .get(HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Self::parse(v.trim()));
        header.or_else(|| {
            form_urlencoded::parse(req.query_string().as_bytes())
                .find(|(k, _)| k == "socket_id")
                .and_then(|(_, v)| Self::parse(&v))
        })
    }
}

impl fmt::Display for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn parses_only_digits_dot_digits() {
        assert!(SocketId::parse("123.456").is_some());
        for bad in ["undefined", "", "1.", ".1", "1.2.3", "a.1", "1 .2", "null"] {
            assert_eq!(SocketId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn header_wins_over_query() {
        let req = TestRequest::with_uri("/x/items.json?socket_id=1.1")
            .insert_header((HEADER, "2.2"))
            .to_http_request();
        assert_eq!(SocketId::from_request(&req), SocketId::parse("2.2"));
    }

    #[test]
    fn falls_back_to_query_and_ignores_undefined() {
        let req = TestRequest::with_uri("/x/items.json?socket_id=3.3").to_http_request();
        assert_eq!(SocketId::from_request(&req), SocketId::parse("3.3"));
        let req = TestRequest::with_uri("/x/items.json?socket_id=undefined")
            .insert_header((HEADER, "undefined"))
            .to_http_request();
        assert_eq!(SocketId::from_request(&req), None);
    }
}
