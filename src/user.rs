//! Per-app signed-in users: which connections are signed in as which user, and who watches whom.
//!
//! The [`Registry`] delivers server-to-user events to every connection of a user (once each),
//! terminates a user's connections, and sends watchlist `online`/`offline` transitions: `online`
//! when a user's first connection signs in, `offline` when the last one goes. It does no I/O
//! beyond queueing frames on [`ConnectionHandle`]s.
//!
//! Sign-ins and sign-outs of an app are serialised, each with the watchlist events it decides:
//! otherwise a last connection leaving on one thread and a new one arriving on another could
//! send `online` and `offline` in the wrong order (or an initial status older than an event).
//! Sign-ins are rare next to deliveries, and nothing under that lock waits.

use std::collections::HashMap;
use std::sync::Mutex;

use dashmap::DashMap;

use crate::connection::{ConnectionHandle, Frame};
use crate::protocol::server::WatchlistEvent;
use crate::protocol::{CloseCode, ServerMessage, SocketId, UserId};

/// All signed-in users of one app.
#[derive(Debug, Default)]
pub struct Registry {
    /// User → its signed-in connections.
    users: DashMap<UserId, HashMap<SocketId, ConnectionHandle>>,
    /// Watched user → the connections whose watchlist holds it.
    watchers: DashMap<UserId, HashMap<SocketId, ConnectionHandle>>,
    /// Held for a whole sign-in or sign-out, with the watchlist events it sends.
    signing: Mutex<()>,
    /// This node is one of a cluster: `online`/`offline` are decided by the cluster and sent
    /// with [`Registry::notify`]; a watchlist's initial statuses come from the cluster.
    clustered: bool,
}

/// What a sign-in changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedIn {
    /// It was the user's first connection.
    pub came_online: bool,
}

impl Registry {
    /// An empty registry.
    pub fn new(clustered: bool) -> Self {
        Registry {
            clustered,
            ..Registry::default()
        }
    }

    /// Registers a signed-in connection and its watchlist. When `watchlist_events` is on, tells
    /// the user's watchers it came online (first connection) and sends the connection the current
    /// status of its watchlist.
    pub fn sign_in(
        &self,
        user: &UserId,
        handle: &ConnectionHandle,
        watchlist: &[UserId],
        watchlist_events: bool,
    ) -> SignedIn {
        self.sign_in_decided(user, handle, watchlist, watchlist_events, None, None)
    }

    /// [`Registry::sign_in`] with the watchlist's statuses as the cluster knows them (in the
    /// watchlist's order; `None`: as this registry knows them), queueing `success` (the
    /// `pusher:signin_success` frame) once the connection is registered, before its watchlist
    /// events.
    pub fn sign_in_decided(
        &self,
        user: &UserId,
        handle: &ConnectionHandle,
        watchlist: &[UserId],
        watchlist_events: bool,
        statuses: Option<&[bool]>,
        success: Option<Frame>,
    ) -> SignedIn {
        let _signing = self.signing.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(success) = success {
            handle.send(success);
        }
        let came_online = {
            let mut sockets = self.users.entry(user.clone()).or_default();
            let first = sockets.is_empty();
            sockets.insert(handle.socket_id().clone(), handle.clone());
            first
        };
        if !watchlist_events {
            return SignedIn { came_online };
        }
        if came_online && !self.clustered {
            self.notify_watchers(user, "online");
        }
        for watched in watchlist {
            self.watchers
                .entry(watched.clone())
                .or_default()
                .insert(handle.socket_id().clone(), handle.clone());
        }
        if !watchlist.is_empty() {
            let is_online = |i: usize, id: &UserId| match statuses {
                Some(statuses) => statuses.get(i).copied().unwrap_or(false),
                None => self.users.get(id).is_some_and(|s| !s.is_empty()),
            };
            let (online, offline): (Vec<_>, Vec<_>) = watchlist
                .iter()
                .enumerate()
                .partition(|(i, id)| is_online(*i, id));
            let mut events = Vec::new();
            for (name, ids) in [("online", online), ("offline", offline)] {
                if !ids.is_empty() {
                    events.push(WatchlistEvent {
                        name,
                        user_ids: ids.iter().map(|(_, id)| id.as_str()).collect(),
                    });
                }
            }
            handle.send(
                ServerMessage::WatchlistEvents { events: &events }
                    .encode()
                    .into(),
            );
        }
        SignedIn { came_online }
    }

    /// Removes a signed-in connection; tells watchers the user went offline after its last one.
    pub fn sign_out(
        &self,
        user: &UserId,
        socket_id: &SocketId,
        watchlist: &[UserId],
        watchlist_events: bool,
    ) {
        let _signing = self.signing.lock().unwrap_or_else(|e| e.into_inner());
        let went_offline = match self.users.get_mut(user) {
            Some(mut sockets) => sockets.remove(socket_id).is_some() && sockets.is_empty(),
            None => false,
        };
        if went_offline {
            self.users.remove_if(user, |_, s| s.is_empty());
        }
        for watched in watchlist {
            if let Some(mut w) = self.watchers.get_mut(watched) {
                w.remove(socket_id);
            }
            self.watchers.remove_if(watched, |_, w| w.is_empty());
        }
        if went_offline && watchlist_events && !self.clustered {
            self.notify_watchers(user, "offline");
        }
    }

    /// Tells `user`'s watchers on this node that it came online or went offline (on a
    /// clustered node, as the cluster decided).
    pub fn notify(&self, user: &UserId, online: bool) {
        let _signing = self.signing.lock().unwrap_or_else(|e| e.into_inner());
        self.notify_watchers(user, if online { "online" } else { "offline" });
    }

    /// Each signed-in user with its connections on this node (for reasserting them to a
    /// cluster).
    pub fn held(&self) -> Vec<(UserId, usize)> {
        self.users
            .iter()
            .filter(|e| !e.is_empty())
            .map(|e| (e.key().clone(), e.len()))
            .collect()
    }

    fn notify_watchers(&self, user: &UserId, name: &'static str) {
        let Some(watchers) = self.watchers.get(user) else {
            return;
        };
        let events = [WatchlistEvent {
            name,
            user_ids: vec![user.as_str()],
        }];
        let frame: Frame = ServerMessage::WatchlistEvents { events: &events }
            .encode()
            .into();
        for handle in watchers.values() {
            handle.send(frame.clone());
        }
    }

    /// Queues `frame` on every connection signed in as `user` but `except`; returns how many.
    pub fn send_to_user(&self, user: &str, frame: &Frame, except: Option<&SocketId>) -> usize {
        let Ok(user) = UserId::parse(user, usize::MAX) else {
            return 0;
        };
        let Some(sockets) = self.users.get(&user) else {
            return 0;
        };
        sockets
            .iter()
            .filter(|(id, _)| Some(*id) != except)
            .filter(|(_, h)| h.send(frame.clone()))
            .count()
    }

    /// Closes every connection signed in as `user` with 4009; returns how many.
    pub fn terminate(&self, user: &UserId) -> usize {
        let handles: Vec<ConnectionHandle> = match self.users.get(user) {
            Some(sockets) => sockets.values().cloned().collect(),
            None => return 0,
        };
        for handle in &handles {
            handle.close(CloseCode::Unauthorized, "You got disconnected by the app.");
        }
        handles.len()
    }

    /// Whether a user has at least one signed-in connection.
    pub fn is_online(&self, user: &UserId) -> bool {
        self.users.get(user).is_some_and(|s| !s.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::Outbound;

    fn conn() -> (ConnectionHandle, Outbound) {
        ConnectionHandle::new(SocketId::generate(), 16)
    }

    fn id(s: &str) -> UserId {
        UserId::parse(s, 200).unwrap()
    }

    fn drain(rx: &mut Outbound) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(f) = rx.try_recv() {
            out.push(f.to_string());
        }
        out
    }

    #[test]
    fn watchlist_online_once_offline_after_last() {
        let reg = Registry::new(false);
        let (watcher, mut wrx) = conn();
        reg.sign_in(&id("w"), &watcher, &[id("a"), id("b")], true);
        let initial = drain(&mut wrx);
        assert_eq!(initial.len(), 1);
        assert!(
            initial[0].contains(r#"{\"name\":\"offline\",\"user_ids\":[\"a\",\"b\"]}"#),
            "{initial:?}"
        );

        let (a1, _r1) = conn();
        let (a2, _r2) = conn();
        assert!(reg.sign_in(&id("a"), &a1, &[], true).came_online);
        assert!(!reg.sign_in(&id("a"), &a2, &[], true).came_online);
        let got = drain(&mut wrx);
        assert_eq!(
            got.len(),
            1,
            "online only for the first connection: {got:?}"
        );
        assert!(got[0].contains(r#"\"name\":\"online\",\"user_ids\":[\"a\"]"#));

        reg.sign_out(&id("a"), a1.socket_id(), &[], true);
        assert!(drain(&mut wrx).is_empty());
        reg.sign_out(&id("a"), a2.socket_id(), &[], true);
        let got = drain(&mut wrx);
        assert!(
            got.len() == 1 && got[0].contains(r#"\"name\":\"offline\",\"user_ids\":[\"a\"]"#),
            "{got:?}"
        );
        assert!(!reg.is_online(&id("a")));
    }

    /// Review finding 11 / hardening #3: a user's connections signing in and out on several
    /// threads at once; the watcher's last word is always the user's real status, `online`
    /// comes once per time the user came online and `offline` once per time it went.
    #[test]
    fn watchlist_events_follow_the_real_status_under_concurrency() {
        use std::sync::{Arc, Barrier};
        let reg = Arc::new(Registry::new(false));
        let (watcher, mut wrx) = ConnectionHandle::new(SocketId::generate(), 1 << 20);
        reg.sign_in(&id("w"), &watcher, &[id("a")], true);
        drain(&mut wrx);
        for round in 0..300 {
            // Two connections sign in at the same moment; one leaves while the other stays.
            let conns: Vec<_> = (0..2).map(|_| conn()).collect();
            let barrier = Arc::new(Barrier::new(2));
            let threads: Vec<_> = conns
                .iter()
                .map(|(h, _)| {
                    let (reg, h, barrier) = (reg.clone(), h.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        reg.sign_in(&id("a"), &h, &[], true);
                    })
                })
                .collect();
            threads.into_iter().for_each(|t| t.join().unwrap());
            reg.sign_out(&id("a"), conns[0].0.socket_id(), &[], true);
            let got = drain(&mut wrx);
            assert_eq!(got.len(), 1, "round {round}: {got:?}");
            assert!(got[0].contains(r#"\"online\""#), "round {round}: {got:?}");
            // The last one leaves as a new one arrives on another thread.
            let (next, _next_rx) = conn();
            let leaving = conns[1].0.socket_id().clone();
            let (r1, r2) = (reg.clone(), reg.clone());
            let next_handle = next.clone();
            let a = std::thread::spawn(move || r1.sign_out(&id("a"), &leaving, &[], true));
            let b = std::thread::spawn(move || {
                r2.sign_in(&id("a"), &next_handle, &[], true);
            });
            a.join().unwrap();
            b.join().unwrap();
            let got = drain(&mut wrx);
            let last = got.last().map(String::as_str).unwrap_or_default();
            assert!(
                last.contains(r#"\"online\""#) || got.is_empty(),
                "round {round}: the user is online, the watcher last heard {got:?}"
            );
            reg.sign_out(&id("a"), next.socket_id(), &[], true);
            let got = drain(&mut wrx);
            assert!(
                got.len() == 1 && got[0].contains(r#"\"offline\""#),
                "round {round}: {got:?}"
            );
        }
    }

    #[test]
    fn send_to_user_reaches_each_connection_once() {
        let reg = Registry::new(false);
        let (a1, mut r1) = conn();
        let (a2, mut r2) = conn();
        reg.sign_in(&id("a"), &a1, &[], false);
        reg.sign_in(&id("a"), &a2, &[], false);
        assert_eq!(reg.send_to_user("a", &"x".into(), None), 2);
        assert_eq!((drain(&mut r1).len(), drain(&mut r2).len()), (1, 1));
        assert_eq!(reg.send_to_user("a", &"x".into(), Some(a1.socket_id())), 1);
        assert_eq!(reg.terminate(&id("a")), 2);
        assert_eq!(reg.terminate(&id("nobody")), 0);
    }
}
