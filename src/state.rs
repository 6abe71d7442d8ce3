//! [`State`]: what every HTTP handler and WebSocket session shares — the apps, the adapter, the
//! server settings, the shutdown signal and the close codes sent — and whether the server is
//! ready for traffic ([`State::readiness`]). Built once in `server::run`, before the HTTP
//! workers start, and handed to them as `web::Data`.

use std::sync::Arc;

use crate::adapter::Adapter;
use crate::app::Apps;
use crate::config::ServerConfig;
use crate::connection::{Backlog, CloseCounts};
use crate::shutdown::Shutdown;

/// Shared, read-only after start-up (interior state lives in the apps' registries).
#[derive(Debug)]
pub struct State {
    /// Every app, by id and key.
    pub apps: Apps,
    /// Delivers events.
    pub adapter: Arc<Adapter>,
    /// Listener and connection settings.
    pub server: ServerConfig,
    /// Frames queued on all connections; the HTTP API waits on it before publishing.
    pub backlog: Arc<Backlog>,
    /// The shutdown signal, the tracker of connection tasks and the live connections.
    pub shutdown: Shutdown,
    /// The close codes connections were closed or refused with (counted by `ws`, read by the
    /// metrics).
    pub closes: CloseCounts,
}

/// Why the server does not take traffic now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// Shutdown has begun: connections are being closed with 4200.
    ShuttingDown,
    /// This node is one of a cluster and Redis does not answer.
    ClusterUnavailable,
}

impl NotReady {
    /// Said in the `/ready` answer.
    pub fn message(self) -> &'static str {
        match self {
            NotReady::ShuttingDown => "shutting down",
            NotReady::ClusterUnavailable => "the cluster engine (Redis) is unreachable",
        }
    }
}

impl State {
    /// Whether the server takes traffic: `/ready` answers 503 with the reason when it does not.
    pub fn readiness(&self) -> Result<(), NotReady> {
        if self.shutdown.is_triggered() {
            return Err(NotReady::ShuttingDown);
        }
        // What serving depends on beyond this process: on a cluster node, Redis.
        if !self.adapter.is_available() {
            return Err(NotReady::ClusterUnavailable);
        }
        Ok(())
    }
}
