//! The benchmark's own payload and the few Pusher frames the generator needs to read.
//!
//! A benchmark event carries `data` = `"hb1:<publisher>:<seq>:<sent_unix_us>"`, a plain string
//! that Pusher servers forward verbatim (spec §6). Reading it back is on the hot path (one
//! parse per delivery), so [`find_stamp`] scans the raw frame instead of building a JSON tree;
//! everything else goes through `serde_json`.

use serde_json::Value;
use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch. A wall clock, so that several generator processes on
/// the same machine can compare timestamps.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A server-to-client WebSocket frame (unmasked) with the given FIN bit and opcode, in the
/// shortest length form: what the floor server sends, and what reader tests feed the reader.
pub fn unmasked_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 10);
    frame.push(if fin { 0x80 } else { 0 } | opcode);
    match payload.len() {
        n if n < 126 => frame.push(n as u8),
        n if n <= u16::MAX as usize => {
            frame.push(126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(payload);
    frame
}

/// Seconds since the Unix epoch, for `auth_timestamp`.
pub fn now_s() -> u64 {
    now_us() / 1_000_000
}

/// What a benchmark event says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Which publisher sent it (index).
    pub publisher: u32,
    /// That publisher's sequence number, starting at 0.
    pub seq: u64,
    /// When the publisher sent it, µs since the epoch.
    pub sent_us: u64,
}

impl Stamp {
    /// The `data` string for this stamp.
    pub fn encode(&self) -> String {
        format!("hb1:{}:{}:{}", self.publisher, self.seq, self.sent_us)
    }
}

/// Finds a benchmark stamp in a raw frame, if there is one.
pub fn find_stamp(frame: &str) -> Option<Stamp> {
    let start = frame.find("hb1:")? + 4;
    let rest = &frame[start..];
    let end = rest.find('"').unwrap_or(rest.len());
    let mut parts = rest[..end].split(':');
    let publisher = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    let sent_us = parts.next()?.parse().ok()?;
    Some(Stamp {
        publisher,
        seq,
        sent_us,
    })
}

/// A Pusher frame read the slow way: its event name, channel and `data` decoded from the
/// JSON-encoded string form when it is one.
#[derive(Debug)]
pub struct Frame {
    /// The `event` field.
    pub event: String,
    /// The `channel` field, when present.
    pub channel: Option<String>,
    /// `data`, parsed once more if it was a JSON-encoded string.
    pub data: Value,
}

/// Parses a frame; `None` if it is not a JSON object with an `event` string.
pub fn parse_frame(text: &str) -> Option<Frame> {
    let mut value: Value = serde_json::from_str(text).ok()?;
    let object = value.as_object_mut()?;
    let event = object.get("event")?.as_str()?.to_owned();
    let channel = object
        .get("channel")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let data = match object.remove("data") {
        Some(Value::String(s)) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        Some(other) => other,
        None => Value::Null,
    };
    Some(Frame {
        event,
        channel,
        data,
    })
}

/// A JSON string literal (quoted and escaped).
fn quoted(text: &str) -> String {
    Value::from(text).to_string()
}

/// Body of `POST /apps/{id}/events` for one event on one channel.
///
/// Built by hand rather than through a JSON tree: the generator builds thousands per second.
pub fn trigger_body(channel: &str, event: &str, data: &str) -> String {
    format!(
        r#"{{"name":{},"channels":[{}],"data":{}}}"#,
        quoted(event),
        quoted(channel),
        quoted(data)
    )
}

/// Body of `POST /apps/{id}/batch_events`: one event per `(channel, data)` pair.
pub fn batch_body(event: &str, items: &[(String, String)]) -> String {
    let name = quoted(event);
    let entries: Vec<String> = items
        .iter()
        .map(|(channel, data)| {
            format!(
                r#"{{"channel":{},"name":{},"data":{}}}"#,
                quoted(channel),
                name,
                quoted(data)
            )
        })
        .collect();
    format!(r#"{{"batch":[{}]}}"#, entries.join(","))
}

/// A `pusher:subscribe` frame.
pub fn subscribe_frame(channel: &str, auth: Option<&str>, channel_data: Option<&str>) -> String {
    let mut data = serde_json::json!({ "channel": channel });
    if let Some(auth) = auth {
        data["auth"] = Value::from(auth);
    }
    if let Some(channel_data) = channel_data {
        data["channel_data"] = Value::from(channel_data);
    }
    serde_json::json!({ "event": "pusher:subscribe", "data": data }).to_string()
}

/// A `pusher:unsubscribe` frame.
pub fn unsubscribe_frame(channel: &str) -> String {
    serde_json::json!({ "event": "pusher:unsubscribe", "data": { "channel": channel } }).to_string()
}

/// A client event frame (`client-*` on a private or presence channel).
pub fn client_event_frame(channel: &str, event: &str, data: &str) -> String {
    serde_json::json!({ "event": event, "channel": channel, "data": data }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips_through_a_delivered_frame() {
        let stamp = Stamp {
            publisher: 3,
            seq: 17,
            sent_us: 1_700_000_000_123_456,
        };
        let frame = serde_json::json!({"event": "bench", "channel": "c", "data": stamp.encode()});
        assert_eq!(find_stamp(&frame.to_string()), Some(stamp));
    }

    #[test]
    fn a_padded_stamp_is_found_too() {
        let stamp = Stamp {
            publisher: 1,
            seq: 2,
            sent_us: 3,
        };
        let data = stamp.encode() + ":pppp";
        let frame = serde_json::json!({"event": "bench", "channel": "c", "data": data});
        assert_eq!(find_stamp(&frame.to_string()), Some(stamp));
    }

    #[test]
    fn frames_without_a_stamp_are_not_mistaken_for_one() {
        assert_eq!(find_stamp(r#"{"event":"pusher:pong","data":"{}"}"#), None);
        assert_eq!(find_stamp(r#"{"event":"x","data":"hb1:1:x:3"}"#), None);
    }

    #[test]
    fn string_encoded_data_is_decoded_once() {
        let text = r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"1.2\",\"activity_timeout\":120}"}"#;
        let frame = parse_frame(text).expect("valid frame");
        assert_eq!(frame.event, "pusher:connection_established");
        assert_eq!(frame.data["socket_id"], "1.2");
    }

    #[test]
    fn trigger_body_is_valid_json_with_escaping() {
        let body = trigger_body("c", "e", "say \"hi\"");
        let value: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(value["data"], "say \"hi\"");
        assert_eq!(value["channels"][0], "c");
    }

    #[test]
    fn batch_body_has_one_entry_per_event() {
        let body = batch_body("e", &[("a".into(), "1".into()), ("b".into(), "2".into())]);
        let value: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(value["batch"][1]["channel"], "b");
        assert_eq!(value["batch"][0]["name"], "e");
    }
}
