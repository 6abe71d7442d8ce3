//! The `subscription_count` throttle: counts go out on every change while a channel has at most
//! 100 subscribers, and at most every 5 seconds above that, the last value always delivered.

use std::time::Duration;

use tokio::time::Instant;

/// Above this many subscribers, counts are throttled.
const THROTTLE_ABOVE: usize = 100;
/// The minimum gap between two counts of a busy channel.
const MIN_GAP: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub(super) struct CountState {
    /// When the last count went out.
    last_sent: Option<Instant>,
    /// A throttled count waiting for [`CountState::due`].
    pending: Option<usize>,
    /// Whether the pending count should be reported (a cluster node reports only the counts
    /// its own subscriptions changed).
    pending_reported: bool,
    /// The number of the newest count the cluster told this node of (a cluster's counts may
    /// arrive in any order; the newest wins).
    newest: u64,
}

impl CountState {
    /// Whether the cluster's count numbered `seq` is newer than every one before (and
    /// remembers it); 0 (unnumbered) always is.
    pub(super) fn is_newest(&mut self, seq: u64) -> bool {
        if seq == 0 {
            return true;
        }
        if seq <= self.newest {
            return false;
        }
        self.newest = seq;
        true
    }

    /// Records a new count; true if it should be sent now.
    pub(super) fn changed(&mut self, n: usize) -> bool {
        self.changed_reported(n, true)
    }

    /// [`CountState::changed`], remembering whether a throttled count is to be reported.
    pub(super) fn changed_reported(&mut self, n: usize, reported: bool) -> bool {
        let now = Instant::now();
        let recent = self
            .last_sent
            .is_some_and(|t| now.duration_since(t) < MIN_GAP);
        if n > THROTTLE_ABOVE && recent {
            self.pending = Some(n);
            self.pending_reported |= reported;
            return false;
        }
        self.pending_reported = false;
        self.pending = None;
        self.last_sent = Some(now);
        true
    }

    /// A pending count whose gap has passed, marked as sent, and whether to report it.
    pub(super) fn due_reported(&mut self) -> Option<(usize, bool)> {
        let reported = self.pending_reported;
        let n = self.due()?;
        self.pending_reported = false;
        Some((n, reported))
    }

    /// A pending count whose gap has passed, marked as sent.
    pub(super) fn due(&mut self) -> Option<usize> {
        let n = self.pending?;
        let now = Instant::now();
        if self
            .last_sent
            .is_some_and(|t| now.duration_since(t) < MIN_GAP)
        {
            return None;
        }
        self.pending = None;
        self.last_sent = Some(now);
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn busy_channels_are_throttled_and_the_last_value_arrives() {
        let mut s = CountState::default();
        assert!(s.changed(5));
        assert!(s.changed(6));
        assert!(
            !s.changed(101),
            "a busy channel waits 5 s after the last count"
        );
        assert!(!s.changed(102));
        assert!(!s.changed(103));
        assert_eq!(s.due(), None);
        tokio::time::advance(MIN_GAP).await;
        assert_eq!(s.due(), Some(103));
        assert_eq!(s.due(), None);
    }
}
