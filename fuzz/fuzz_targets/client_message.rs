//! The client frame decoder, `ClientMessage::decode`, on any text frame.
//!
//! Beyond not panicking: a decoded message, written again as a frame (its `data` as an object
//! and as a JSON-encoded string), decodes to the same message; a client event's `data` is the
//! sender's string verbatim or the same JSON value in compact form.
#![no_main]

use herald::protocol::client::Subscribe;
use herald::protocol::ClientMessage;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let msg = match ClientMessage::decode(text) {
        Ok(msg) => msg,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    for frame in encode(&msg) {
        assert_eq!(ClientMessage::decode(&frame), Ok(msg.clone()), "{frame}");
    }
    if let ClientMessage::ClientEvent { data, .. } = &msg {
        check_relayed_data(text, data);
    }
});

/// The frames a client could have sent for `msg`.
fn encode(msg: &ClientMessage) -> Vec<String> {
    let with_data = |event: &str, data: Map<String, Value>| {
        let data = Value::Object(data);
        vec![
            json!({ "event": event, "data": data }).to_string(),
            json!({ "event": event, "data": data.to_string() }).to_string(),
        ]
    };
    match msg {
        ClientMessage::Ping => vec![json!({ "event": "pusher:ping" }).to_string()],
        ClientMessage::Pong => vec![json!({ "event": "pusher:pong" }).to_string()],
        ClientMessage::Subscribe(Subscribe {
            channel,
            auth,
            channel_data,
        }) => {
            let mut data = Map::new();
            data.insert("channel".into(), channel.clone().into());
            if let Some(auth) = auth {
                data.insert("auth".into(), auth.clone().into());
            }
            if let Some(channel_data) = channel_data {
                data.insert("channel_data".into(), channel_data.clone().into());
            }
            with_data("pusher:subscribe", data)
        }
        ClientMessage::Unsubscribe { channel } => {
            let mut data = Map::new();
            data.insert("channel".into(), channel.clone().into());
            with_data("pusher:unsubscribe", data)
        }
        ClientMessage::Signin { auth, user_data } => {
            let mut data = Map::new();
            data.insert("auth".into(), auth.clone().into());
            data.insert("user_data".into(), user_data.clone().into());
            with_data("pusher:signin", data)
        }
        ClientMessage::ClientEvent {
            event,
            channel,
            data,
        } => vec![json!({ "event": event, "channel": channel, "data": data }).to_string()],
        ClientMessage::Unknown { event } => vec![json!({ "event": event }).to_string()],
    }
}

/// A string `data` is relayed verbatim, any other value as the same JSON value.
fn check_relayed_data(frame: &str, relayed: &str) {
    // Frames serde_json's `Value` cannot hold (numbers beyond f64) are left out.
    let Ok(Value::Object(sent)) = serde_json::from_str::<Value>(frame) else {
        return;
    };
    match sent.get("data") {
        None => assert_eq!(relayed, ""),
        Some(Value::String(s)) => assert_eq!(relayed, s),
        Some(value) => {
            let again: Value = serde_json::from_str(relayed)
                .unwrap_or_else(|e| panic!("relayed data {relayed:?} is not JSON: {e}"));
            assert_eq!(&again, value);
        }
    }
}
