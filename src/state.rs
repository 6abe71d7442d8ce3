//! [`State`]: what every HTTP handler and WebSocket session shares — the apps, the adapter, the
//! server settings and the shutdown signal. Built once in `server::run`, before the HTTP workers
//! start, and handed to them as `web::Data`.

use std::sync::Arc;

use crate::adapter::Adapter;
use crate::app::Apps;
use crate::config::ServerConfig;
use crate::connection::Backlog;
use crate::shutdown::Shutdown;

/// Shared, read-only after start-up (interior state lives in the apps' registries).
#[derive(Debug)]
pub struct State {
    /// Every app, by id and key.
    pub apps: Apps,
    /// Delivers events.
    pub adapter: Arc<dyn Adapter>,
    /// Listener and connection settings.
    pub server: ServerConfig,
    /// Frames queued on all connections; the HTTP API waits on it before publishing.
    pub backlog: Arc<Backlog>,
    /// The shutdown signal, the tracker of connection tasks and the live connections.
    pub shutdown: Shutdown,
}
