//! Entry points for the fuzz targets in `fuzz/`; not an API (hidden from the docs, and it
//! changes whenever the parsers do).
//!
//! The pure checks that live in edge modules — the WebSocket handshake and the REST event
//! bodies — are re-exported here unchanged, so the fuzzers call the very functions the server
//! calls. Everything else they fuzz is public already: [`crate::protocol::ClientMessage::decode`],
//! [`crate::protocol::member`], [`crate::auth::api`] and [`crate::config::Config::load`].
//! Nothing in the server uses this module.

use tokio::sync::mpsc;

use crate::app::App;
use crate::config::AppConfig;
use crate::fanout::FanOut;

pub use crate::http_api::events::{check_batch, check_event, check_legacy, Info, Valid};
pub use crate::ws::handshake::{accept, Accepted};

/// An app for the event-body checks: its webhooks go nowhere and it broadcasts inline (the
/// checks do neither).
pub fn app(config: AppConfig, channel_name_max_length: usize) -> App {
    let (webhooks, _) = mpsc::channel(1);
    App::new(
        config,
        channel_name_max_length,
        webhooks,
        FanOut::inline(),
        false,
    )
}
