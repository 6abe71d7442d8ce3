//! A cluster node's view of a presence channel's members on every node (the *mirror*), kept
//! while the node has subscribers of the channel, so that what those subscribers are told is
//! one consistent story: `subscription_succeeded` lists the mirror, and each member event
//! changes it and is sent only if it did (so none is missed or sent twice).
//!
//! A mirror starts from the cluster's list (read from Redis). Member events that arrive while
//! that list is being read are recorded and applied to it once it came: an event already
//! reflected in the list changes nothing when applied again, and a later one is applied, so the
//! mirror ends as the cluster is, whichever came first. (Events for one member arrive in the
//! order the cluster saw them; a node's own change is applied right after Redis answered it.)

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::value::RawValue;

use crate::protocol::UserId;

/// A change of a presence channel's members, as the cluster decided it.
#[derive(Debug, Clone)]
pub enum MemberEvent {
    /// A member's first connection in the cluster joined.
    Added(UserId, Option<Arc<RawValue>>),
    /// A member's last connection in the cluster left.
    Removed(UserId),
}

/// The mirror of one channel.
#[derive(Debug, Default)]
pub(super) struct Mirror {
    /// The members, with their `user_info`.
    pub(super) members: HashMap<UserId, Option<Arc<RawValue>>>,
    /// While the cluster's list is being read: the events that arrived meanwhile.
    recorded: Option<Vec<MemberEvent>>,
    /// Subscriptions reading the cluster's list for it.
    pub(super) starting: usize,
}

impl Mirror {
    /// A mirror waiting for the cluster's list.
    pub(super) fn starting() -> Mirror {
        Mirror {
            members: HashMap::new(),
            recorded: Some(Vec::new()),
            starting: 1,
        }
    }

    /// Whether it follows the cluster (its list came).
    pub(super) fn is_live(&self) -> bool {
        self.recorded.is_none()
    }

    /// Applies `event`; true if it changed the members (subscribers must hear of it). While
    /// the list is being read, records it and answers false.
    pub(super) fn apply(&mut self, event: &MemberEvent) -> bool {
        if let Some(recorded) = &mut self.recorded {
            recorded.push(event.clone());
            return false;
        }
        match event {
            MemberEvent::Added(id, info) => {
                if self.members.contains_key(id) {
                    return false;
                }
                self.members.insert(id.clone(), info.clone());
                true
            }
            MemberEvent::Removed(id) => self.members.remove(id).is_some(),
        }
    }

    /// The cluster's list came: the mirror is the list with what was recorded applied (if
    /// another subscription's list came first, this one is not needed).
    pub(super) fn start(&mut self, list: Vec<(UserId, Option<Arc<RawValue>>)>) {
        self.starting = self.starting.saturating_sub(1);
        let Some(recorded) = self.recorded.take() else {
            return;
        };
        self.members = list.into_iter().collect();
        for event in &recorded {
            self.apply(event);
        }
    }

    /// A subscription gave up reading the list; true if the mirror is no longer needed.
    pub(super) fn abandon(&mut self) -> bool {
        self.starting = self.starting.saturating_sub(1);
        self.starting == 0 && !self.is_live()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> UserId {
        UserId::parse(s, 100).unwrap()
    }

    #[test]
    fn events_recorded_while_the_list_is_read_are_applied_to_it() {
        // The list was read after a left (so it lacks a) and before b joined.
        let mut m = Mirror::starting();
        assert!(!m.apply(&MemberEvent::Removed(id("a"))));
        assert!(!m.apply(&MemberEvent::Added(id("b"), None)));
        m.start(vec![(id("c"), None)]);
        assert!(m.is_live());
        let mut members: Vec<&str> = m.members.keys().map(UserId::as_str).collect();
        members.sort_unstable();
        assert_eq!(members, ["b", "c"]);
        // Live: only changes count.
        assert!(!m.apply(&MemberEvent::Added(id("b"), None)));
        assert!(m.apply(&MemberEvent::Removed(id("b"))));
        assert!(!m.apply(&MemberEvent::Removed(id("b"))));
    }

    #[test]
    fn a_second_list_is_not_needed_once_live() {
        let mut m = Mirror::starting();
        m.starting += 1;
        m.start(vec![(id("a"), None)]);
        m.start(vec![]);
        assert_eq!(m.members.len(), 1);
        assert_eq!(m.starting, 0);
    }
}
