//! The signed member payloads: a presence subscription's `channel_data`
//! (`protocol::member::parse_channel_data`, with the default presence limits) and a sign-in's
//! `user_data` (`parse_user_data`), both on the same text.
//!
//! Beyond not panicking: what is accepted keeps the limits (id length, `user_info` an object
//! within its size); writing the parsed member or user back as JSON parses to the same member or
//! user; and a member's `user_info` reaches subscribers as it was signed, in `member_added` and
//! in the presence hash of `subscription_succeeded`.
#![no_main]

use herald::protocol::member::{parse_channel_data, parse_user_data, UserData};
use herald::protocol::names::MAX_USER_ID;
use herald::protocol::server::PresenceList;
use herald::protocol::{ServerMessage, UserId};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use std::collections::HashMap;

const MAX_ID: usize = 128;
const MAX_INFO: usize = 1024;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok((id, info)) = parse_channel_data(text, MAX_ID, MAX_INFO) {
        assert!((1..=MAX_ID).contains(&id.as_str().chars().count()));
        if let Some(info) = &info {
            assert!(info.get().len() <= MAX_INFO);
            is_object(info);
        }
        relayed_as_signed(id.as_str(), info.as_deref());
        let again = format!(
            r#"{{"user_id":{},"user_info":{}}}"#,
            json!(id.as_str()),
            info.as_ref().map_or("null", |i| i.get())
        );
        let (id2, info2) = parse_channel_data(&again, MAX_ID, MAX_INFO).unwrap();
        assert_eq!(id2, id);
        assert_eq!(
            info2.map(|i| i.get().to_owned()),
            info.map(|i| i.get().to_owned())
        );
    }
    if let Ok(user) = parse_user_data(text) {
        assert_eq!(
            UserId::parse(user.id.as_str(), MAX_USER_ID).as_ref(),
            Ok(&user.id)
        );
        for id in &user.watchlist {
            assert!((1..=MAX_USER_ID).contains(&id.as_str().chars().count()));
        }
        if let Some(info) = &user.info {
            is_object(info);
        }
        let watchlist: Vec<&str> = user.watchlist.iter().map(UserId::as_str).collect();
        let again = format!(
            r#"{{"id":{},"watchlist":{},"user_info":{}}}"#,
            json!(user.id.as_str()),
            json!(watchlist),
            user.info.as_ref().map_or("null", |i| i.get())
        );
        let UserData {
            id,
            watchlist: watchlist2,
            info,
        } = parse_user_data(&again).unwrap();
        assert_eq!(id, user.id);
        assert_eq!(watchlist2, user.watchlist);
        assert_eq!(
            info.map(|i| i.get().to_owned()),
            user.info.map(|i| i.get().to_owned())
        );
    }
});

/// `user_info` is a JSON object: valid JSON (a `RawValue`) that opens with a brace. (Not
/// through `serde_json::Value`, which reads an object keyed by its private raw-value token as
/// the value inside.)
fn is_object(raw: &RawValue) {
    assert!(raw.get().starts_with('{'), "{}", raw.get());
}

/// The member's `user_info` text in `member_added` and in `subscription_succeeded`'s hash.
fn relayed_as_signed(id: &str, info: Option<&RawValue>) {
    #[derive(Deserialize)]
    struct Frame {
        data: String,
    }
    #[derive(Deserialize)]
    struct Added {
        user_id: String,
        user_info: Option<Box<RawValue>>,
    }
    #[derive(Deserialize)]
    struct Succeeded {
        presence: Presence,
    }
    #[derive(Deserialize)]
    struct Presence {
        hash: HashMap<String, Option<Box<RawValue>>>,
    }
    let data = |frame: String| serde_json::from_str::<Frame>(&frame).unwrap().data;
    let want = info.map(RawValue::get);

    let added = ServerMessage::MemberAdded {
        channel: "presence-r",
        user_id: id,
        user_info: info,
    };
    let added: Added = serde_json::from_str(&data(added.encode())).unwrap();
    assert_eq!(added.user_id, id);
    assert_eq!(added.user_info.as_deref().map(RawValue::get), want);

    let members = [(id, info)];
    let succeeded = ServerMessage::SubscriptionSucceeded {
        channel: "presence-r",
        presence: Some(PresenceList { members: &members }),
    };
    let succeeded: Succeeded = serde_json::from_str(&data(succeeded.encode())).unwrap();
    let hash = &succeeded.presence.hash;
    assert_eq!(hash.len(), 1);
    assert_eq!(hash[id].as_deref().map(RawValue::get), want);
}
