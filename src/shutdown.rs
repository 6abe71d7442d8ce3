//! One shutdown signal for every task, and a tracker of the tasks that must finish before the
//! process exits (WebSocket sessions). SIGTERM and SIGINT trigger it; `server::run` then waits for
//! the tracked tasks up to a deadline.
//!
//! Live connections are not told through the signal: each session would then poll a shared
//! token (a lock) on every turn of its loop. Instead they are registered here ([`watch`]), and
//! triggering asks each one to close with 4200 through its [`ConnectionHandle`].
//!
//! [`watch`]: Shutdown::watch

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::connection::ConnectionHandle;
use crate::protocol::CloseCode;

/// What connections are told when the server shuts down (with 4200, reconnect).
const RESTARTING: &str = "Server is restarting; reconnect";

/// A cloneable shutdown signal plus a task tracker and the live connections.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tracker: TaskTracker,
    live: Arc<Mutex<Live>>,
}

/// The connections to close on shutdown.
#[derive(Debug, Default)]
struct Live {
    /// Set by [`Shutdown::trigger`], under this lock, so no connection registers after the
    /// walk without being closed.
    triggered: bool,
    /// The key the next registration gets.
    next: u64,
    connections: HashMap<u64, ConnectionHandle>,
}

/// A connection's registration with [`Shutdown`]; dropping it unregisters.
#[derive(Debug)]
pub struct Watched {
    live: Arc<Mutex<Live>>,
    key: u64,
}

impl Drop for Watched {
    fn drop(&mut self) {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.connections.remove(&self.key);
    }
}

impl Shutdown {
    /// A signal that has not fired.
    pub fn new() -> Self {
        Shutdown::default()
    }

    /// Fires the signal and asks every registered connection to close with 4200.
    pub fn trigger(&self) {
        let connections = {
            let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
            live.triggered = true;
            std::mem::take(&mut live.connections)
        };
        for handle in connections.values() {
            handle.close(CloseCode::Reconnect, RESTARTING);
        }
        self.token.cancel();
    }

    /// Asks every live connection to close with `code` (a cluster node that must rejoin),
    /// without shutting down: new connections are taken as before.
    pub fn close_all(&self, code: CloseCode, message: &str) {
        let connections: Vec<ConnectionHandle> = {
            let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
            live.connections.values().cloned().collect()
        };
        for handle in &connections {
            handle.close(code, message);
        }
    }

    /// Registers a connection to close with 4200 on shutdown, until the returned guard is
    /// dropped; after shutdown, asks it to close at once.
    pub fn watch(&self, handle: &ConnectionHandle) -> Watched {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        let key = live.next;
        live.next += 1;
        if live.triggered {
            handle.close(CloseCode::Reconnect, RESTARTING);
        } else {
            live.connections.insert(key, handle.clone());
        }
        Watched {
            live: self.live.clone(),
            key,
        }
    }

    /// Whether the signal has fired.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves when the signal fires.
    pub async fn triggered(&self) {
        self.token.cancelled().await
    }

    /// Tracks a task that shutdown should wait for.
    pub fn track<F: std::future::Future>(
        &self,
        future: F,
    ) -> tokio_util::task::task_tracker::TrackedFuture<F> {
        self.tracker.track_future(future)
    }

    /// Waits for every tracked task, at most `deadline`; returns whether they all finished.
    pub async fn drain(&self, deadline: Duration) -> bool {
        self.tracker.close();
        tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_ok()
    }

    /// Fires the signal on SIGTERM or SIGINT.
    pub async fn on_signals(self) {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = ctrl_c => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = ctrl_c.await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown signal received");
        self.trigger();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::SocketId;

    #[tokio::test]
    async fn trigger_closes_watched_connections_with_4200() {
        let shutdown = Shutdown::new();
        let (open, _rx) = ConnectionHandle::new(SocketId::generate(), 1);
        let (gone, _gone_rx) = ConnectionHandle::new(SocketId::generate(), 1);
        let _watched = shutdown.watch(&open);
        drop(shutdown.watch(&gone));
        shutdown.trigger();
        assert_eq!(
            open.closed().await,
            (CloseCode::Reconnect, RESTARTING.into())
        );
        let not_closed = tokio::time::timeout(Duration::from_millis(10), gone.closed()).await;
        assert!(not_closed.is_err(), "an unwatched connection is left alone");
    }

    #[tokio::test]
    async fn a_connection_watched_after_shutdown_closes_at_once() {
        let shutdown = Shutdown::new();
        shutdown.trigger();
        let (late, _rx) = ConnectionHandle::new(SocketId::generate(), 1);
        let _watched = shutdown.watch(&late);
        assert_eq!(late.closed().await.0, CloseCode::Reconnect);
    }
}
