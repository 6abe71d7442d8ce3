//! The framing of pusher-js's HTTP fallback transports (`xhr_streaming`, `xhr_polling`), which
//! is SockJS's: the server's responses are lines, each one frame — `o` (the session is open),
//! `h` (heartbeat), `a[...]` (an array of messages, each a JSON string holding one Pusher
//! message as it would travel in a WebSocket text frame), `c[code,"reason"]` (closed) — and a
//! client's `xhr_send` body is a JSON array of such strings (`[]` is its heartbeat).
//!
//! Pure: encodes frames, decodes bodies. The Pusher messages inside are left to
//! [`client`](super::client) and [`server`](super::server).

use std::fmt::Write;

/// The session is open: the first line of the response that created it.
pub const OPEN: &str = "o\n";

/// A heartbeat: the session lives, nothing to deliver.
pub const HEARTBEAT: &str = "h\n";

/// Why an `xhr_send` body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The body was empty.
    #[error("Payload expected.")]
    Empty,
    /// The body is not a JSON array of strings.
    #[error("Broken JSON encoding.")]
    Malformed,
}

/// One `a` frame carrying `messages` (each a complete Pusher message), oldest first.
pub fn messages<'a>(messages: impl IntoIterator<Item = &'a str>) -> String {
    let mut line = String::from("a[");
    for (i, message) in messages.into_iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        push_json_string(&mut line, message);
    }
    line.push_str("]\n");
    line
}

/// The `c` frame: the session is closed with `code` and `reason`.
pub fn close(code: u16, reason: &str) -> String {
    let mut line = format!("c[{code},");
    push_json_string(&mut line, reason);
    line.push_str("]\n");
    line
}

/// The messages of an `xhr_send` body, oldest first (none for `[]`, the client's heartbeat).
pub fn decode_send(body: &[u8]) -> Result<Vec<String>, SendError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(SendError::Empty);
    }
    serde_json::from_slice(body).map_err(|_| SendError::Malformed)
}

/// Appends `text` as a JSON string.
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Other control characters, and the two line separators that some JavaScript
            // parsers took for line ends.
            c if c < ' ' || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_as_pusher_js_reads_them() {
        let established = r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"1.2\",\"activity_timeout\":120}"}"#;
        // Each message is the JSON string of the text a WebSocket frame would carry.
        let quoted = serde_json::to_string(established).unwrap();
        assert_eq!(messages([established, "x"]), format!("a[{quoted},\"x\"]\n"));
        assert_eq!(messages([]), "a[]\n");
        assert_eq!(
            close(4200, "Server is restarting"),
            "c[4200,\"Server is restarting\"]\n"
        );
        assert_eq!((OPEN, HEARTBEAT), ("o\n", "h\n"));
    }

    #[test]
    fn every_message_round_trips_through_a_json_parser() {
        let tricky = "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} \u{2028} é 😀";
        let line = messages([tricky, ""]);
        let array: Vec<String> = serde_json::from_str(&line[1..line.len() - 1]).unwrap();
        assert_eq!(array, [tricky, ""]);
        assert!(
            !line[..line.len() - 1].contains('\n'),
            "one frame, one line"
        );
        let closed = close(4100, tricky);
        let (code, reason): (u16, String) =
            serde_json::from_str(&closed[1..closed.len() - 1]).unwrap();
        assert_eq!((code, reason.as_str()), (4100, tricky));
    }

    #[test]
    fn send_bodies() {
        assert_eq!(decode_send(b"[]"), Ok(vec![]));
        assert_eq!(
            decode_send(br#"["{\"event\":\"pusher:ping\",\"data\":{}}","b"]"#),
            Ok(vec![
                r#"{"event":"pusher:ping","data":{}}"#.to_owned(),
                "b".to_owned()
            ])
        );
        assert_eq!(decode_send(b""), Err(SendError::Empty));
        assert_eq!(decode_send(b" \n"), Err(SendError::Empty));
        for bad in [
            &b"["[..],
            b"{}",
            b"[1]",
            b"[\"a\",{}]",
            b"\"a\"",
            b"[\"a\"] x",
        ] {
            assert_eq!(decode_send(bad), Err(SendError::Malformed), "{bad:?}");
        }
    }
}
