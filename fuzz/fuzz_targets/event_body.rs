//! The REST trigger bodies: `/events`, `/batch_events` and the 2011 per-channel endpoint, through
//! the checks their handlers run before publishing (`check_event`, `check_batch`,
//! `check_legacy`), for an app with small limits so that every limit is reachable.
//!
//! Input: one byte choosing the endpoint, then the body (for the 2011 endpoint:
//! `raw query\nchannel\nbody`). Beyond not panicking: a body is refused with 400 or 413 only,
//! and every event accepted keeps every rule (name, data size, channel count, names and
//! duplicates, encrypted channels alone, socket id).
#![no_main]

use std::sync::OnceLock;

use herald::app::App;
use herald::auth::api::parse_query;
use herald::config::AppConfig;
use herald::fuzzing::{app, check_batch, check_event, check_legacy, Valid};
use herald::http_api::ApiError;
use herald::protocol::{ChannelKind, ChannelName, SocketId};
use libfuzzer_sys::fuzz_target;

const CHANNEL_NAME_MAX: usize = 24;

fn the_app() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| {
        let config = AppConfig {
            max_event_data_bytes: 64,
            max_channels_per_trigger: 4,
            max_batch_events: 3,
            subscription_count: true,
            ..AppConfig::development()
        };
        app(config, CHANNEL_NAME_MAX)
    })
}

fuzz_target!(|bytes: &[u8]| {
    let Some((&which, body)) = bytes.split_first() else {
        return;
    };
    let app = the_app();
    let outcome = match which % 3 {
        0 => check_event(app, body).map(|v| vec![v]),
        1 => check_batch(app, body).inspect(|events| {
            assert!(events.len() <= app.config.max_batch_events);
            for event in events {
                assert_eq!(event.channels.len(), 1, "a batch event takes one channel");
            }
        }),
        _ => {
            let mut parts = body.splitn(3, |&b| b == b'\n');
            let (Ok(query), Ok(channel)) = (
                std::str::from_utf8(parts.next().unwrap_or_default()),
                std::str::from_utf8(parts.next().unwrap_or_default()),
            ) else {
                return;
            };
            let query = parse_query(query);
            let data = parts.next().unwrap_or_default();
            check_legacy(app, &query, channel.to_owned(), data).map(|v| vec![v])
        }
    };
    match outcome {
        Ok(events) => events.iter().for_each(|event| keeps_the_rules(app, event)),
        Err(ApiError::BadRequest(m) | ApiError::PayloadTooLarge(m)) => assert!(!m.is_empty()),
        Err(other) => panic!("a body check answered {other:?}"),
    }
});

fn keeps_the_rules(app: &App, event: &Valid) {
    let name = event.name.as_str();
    assert!((1..=200).contains(&name.chars().count()), "{name:?}");
    assert!(!event.name.is_reserved(), "{name:?}");
    assert!(event.data.len() <= app.config.max_event_data_bytes);
    let channels = &event.channels;
    assert!((1..=app.config.max_channels_per_trigger).contains(&channels.len()));
    for (i, channel) in channels.iter().enumerate() {
        assert_eq!(
            ChannelName::parse(channel.as_str(), CHANNEL_NAME_MAX).as_ref(),
            Ok(channel)
        );
        assert!(!channels[..i].contains(channel), "duplicate {channel}");
    }
    if channels.len() > 1 {
        assert!(channels
            .iter()
            .all(|c| c.kind() != ChannelKind::PrivateEncrypted));
    }
    if let Some(socket_id) = &event.socket_id {
        assert_eq!(SocketId::parse(socket_id.as_str()).as_ref(), Ok(socket_id));
    }
    if let Some(info) = event.info {
        // The app has subscription counts on; user_count is asked for or not.
        let _ = (info.user_count, info.subscription_count);
    }
}
