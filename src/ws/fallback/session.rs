//! HTTP fallback sessions: [`Sessions`] finds them by id and opens new ones (the same checks as a
//! WebSocket handshake), and each [`Session`] is one ordinary connection whose frames go to a
//! [`Relay`] that its receiving requests read, and whose messages arrive in `xhr_send` bodies.
//! Its task is the shared session loop (`ws::session`) over the [`Fallback`] transport: what
//! `xhr_send` delivered, a liveness check that ends the session once no request has been
//! receiving for `http_session_timeout`, and a close that leaves the `c` frame for the next
//! receiving request before the session is forgotten.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use super::super::session::{self, last_words, Exit, Inbound, Transport, FINISH_TIMEOUT};
use super::super::{admit, over_quota, Refusal};
use crate::connection::{ConnectionHandle, Outbound, Relay};
use crate::protocol::{codes, sockjs, CloseCode, SocketId};
use crate::state::State;

/// Bytes of messages a session holds for its next receiving request before frames wait in the
/// connection's outbox (where the slow-consumer rules apply), as a socket's send buffer would.
const RELAY_BYTES: usize = 64 * 1024;

/// `xhr_send` bodies waiting for the session's task; a sender finding it full waits.
const INBOUND_BODIES: usize = 16;

/// The open sessions, by id (`{app key}/{server}/{session}`, as the path names them).
#[derive(Debug, Default)]
pub struct Sessions {
    /// Entries live from the request that opens a session to the end of its task.
    open: DashMap<String, Arc<Session>>,
}

/// One fallback connection, as its requests see it.
#[derive(Debug)]
pub(super) struct Session {
    /// The connection's frames, for the receiving requests.
    pub(super) relay: Arc<Relay>,
    /// `xhr_send` bodies for the session's task, in the order they arrived.
    inbound: mpsc::Sender<Vec<String>>,
    /// The connection (an `xhr_send` body over the frame limit closes it).
    handle: ConnectionHandle,
    /// The `c` frame, once the session has closed with a code.
    closed: OnceLock<String>,
    /// A receiving request has delivered the `c` frame.
    delivered: Notify,
}

/// The session has ended.
#[derive(Debug)]
pub(super) struct Gone;

impl Sessions {
    /// No sessions yet.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// The open session `id`.
    pub(super) fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.open.get(id).map(|s| s.clone())
    }

    /// The session `id` for a receiving request: the open one, or a new one of the app with
    /// `key` if the checks a WebSocket handshake makes (`query`'s protocol version, the app,
    /// its quota on this node and in the cluster, shutdown) let it in. `true` with a session
    /// this request opened.
    pub(super) async fn open(
        self: &Arc<Self>,
        state: &Arc<State>,
        id: String,
        key: &str,
        query: &str,
    ) -> Result<(Arc<Session>, bool), Refusal> {
        if let Some(open) = self.get(&id) {
            return Ok((open, false));
        }
        let (app, slot) = admit(state, key, query)?;
        if !state.adapter.open_connection(&app).await {
            return Err(over_quota());
        }
        let entry = match self.open.entry(id) {
            // Opened by a request of the same client meanwhile: that one it is.
            Entry::Occupied(entry) => {
                let open = entry.get().clone();
                drop(entry);
                drop(slot);
                state.adapter.close_connection(&app).await;
                return Ok((open, false));
            }
            Entry::Vacant(entry) => entry,
        };
        let relay = Arc::new(Relay::new(RELAY_BYTES));
        let (handle, outbound) = ConnectionHandle::with_relay(
            SocketId::generate(),
            state.server.outbound_queue,
            state.backlog.clone(),
            &app.traffic,
            relay.clone(),
        );
        let (inbound, messages) = mpsc::channel(INBOUND_BODIES);
        let session = Arc::new(Session {
            relay,
            inbound,
            handle: handle.clone(),
            closed: OnceLock::new(),
            delivered: Notify::new(),
        });
        let registered = Registered {
            sessions: self.clone(),
            id: entry.key().clone(),
            session: session.clone(),
        };
        entry.insert(session.clone());
        let transport = Fallback {
            session: session.clone(),
            messages,
            pending: Vec::new().into_iter(),
            timeout: state.server.http_session_timeout,
            _registered: registered,
        };
        let task = session::run(state.clone(), app, slot, (handle, outbound), transport);
        actix_web::rt::spawn(state.shutdown.track(task));
        Ok((session, true))
    }
}

impl Session {
    /// Hands an `xhr_send` body's messages to the session's task, waiting while it is behind.
    pub(super) async fn deliver(&self, messages: Vec<String>) -> Result<(), Gone> {
        if self.closed.get().is_some() {
            return Err(Gone);
        }
        self.inbound.send(messages).await.map_err(|_| Gone)
    }

    /// Asks the connection to close (`pusher:error`, then the `c` frame).
    pub(super) fn close(&self, code: CloseCode, message: &str) {
        self.handle.close(code, message);
    }

    /// The `c` frame, once the session has closed with a code; counts as delivered.
    pub(super) fn take_close_frame(&self) -> Option<&str> {
        let frame = self.closed.get()?;
        self.delivered.notify_one();
        Some(frame)
    }
}

/// The session's entry in [`Sessions`], removed when the session's task lets go of it.
#[derive(Debug)]
struct Registered {
    sessions: Arc<Sessions>,
    id: String,
    session: Arc<Session>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let ours = |_: &String, open: &Arc<Session>| Arc::ptr_eq(open, &self.session);
        self.sessions.open.remove_if(&self.id, ours);
    }
}

/// The fallback transport of a session's task.
struct Fallback {
    session: Arc<Session>,
    /// `xhr_send` bodies.
    messages: mpsc::Receiver<Vec<String>>,
    /// What is left of the body being handled.
    pending: std::vec::IntoIter<String>,
    /// How long the session lives with no request receiving.
    timeout: Duration,
    /// Unregisters the session when the task ends.
    _registered: Registered,
}

impl Transport for Fallback {
    type Text = String;
    const NAME: &'static str = "http";

    fn first_check(&self, now: Instant) -> Instant {
        now + self.timeout
    }

    async fn next(&mut self) -> Inbound<String> {
        loop {
            if let Some(message) = self.pending.next() {
                return Inbound::Text(message);
            }
            match self.messages.recv().await {
                // `[]`: the client's heartbeat.
                Some(body) if body.is_empty() => return Inbound::Nothing,
                Some(body) => self.pending = body.into_iter(),
                None => return Inbound::End(Exit::Gone),
            }
        }
    }

    async fn check(&mut self, now: Instant) -> Result<Instant, Exit> {
        match self.session.relay.unread_since() {
            None => Ok(now + self.timeout),
            Some(since) if now >= since + self.timeout => {
                tracing::debug!("no request received for the session's timeout");
                Err(Exit::Gone)
            }
            Some(since) => Ok(since + self.timeout),
        }
    }

    /// Flushes what is queued into the relay (not for slow consumers), then `pusher:error`, and
    /// leaves the `c` frame for a receiving request, waiting a little for one to take it.
    async fn finish(self, exit: Exit, outbound: &Outbound) {
        let session = &self.session;
        let Exit::Close(code, message) = exit else {
            session.relay.end();
            return;
        };
        let _ = tokio::time::timeout(FINISH_TIMEOUT, async {
            if let Some(error) = last_words(code, &message, outbound) {
                let _ = outbound.send_last(error.into());
            }
            outbound.drained().await
        })
        .await;
        let _ = session
            .closed
            .set(sockjs::close(code.code(), codes::close_reason(&message)));
        session.relay.end();
        let _ = tokio::time::timeout(FINISH_TIMEOUT, session.delivered.notified()).await;
    }
}
