//! Which readers are near full, for the publishers' wait: the process-wide [`Readers`] (how many
//! connections are pressed, how many of those are brisk, how many are receiving) and each
//! connection's [`Reader`], which keeps those counts as its queue changes. The rule that reads
//! them, and the stall watch that tells brisk readers from slow ones, are the backlog's
//! (`backlog.rs`); nothing here waits, wakes or closes anything.
//!
//! A connection not excused is *pressed* while more than half of its queue waits. It is *brisk*
//! unless the watch, which looks at it while it is behind, found that its pace would not empty a
//! full queue within the stall timeout. It is *receiving* if a frame was queued for it (while
//! not excused) in the last [`RECEIVER_PASSES`] passes of the watch; counting that costs a load
//! and a compare per frame, and an atomic add once per connection and pass.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

/// Whether taking `frames` in `span` is *brisk* for a queue of `capacity` frames: at that pace,
/// a full queue empties within `stall` (and it took a frame at least).
pub(super) fn is_brisk(frames: u64, span: Duration, capacity: usize, stall: Duration) -> bool {
    frames > 0 && u128::from(frames) * stall.as_millis() >= capacity as u128 * span.as_millis()
}

/// How many passes of the watch a connection that was queued a frame counts as receiving (8
/// passes: 400 ms at most); long enough that a pause of the publishers does not empty the count.
pub(super) const RECEIVER_PASSES: usize = 8;

/// The counts of the readers of all connections of a backlog.
#[derive(Debug)]
pub(super) struct Readers {
    /// Connections pressed now.
    pressed: AtomicUsize,
    /// Those of them that are brisk.
    brisk: AtomicUsize,
    /// Connections receiving, as the watch last counted them.
    receivers: AtomicUsize,
    /// The watch's current pass: a connection counts once per pass among the receivers.
    pass: AtomicU32,
    /// Receivers counted in the current pass and the one before, by the pass's parity.
    reached: [AtomicUsize; 2],
    /// Receivers counted in the last [`RECEIVER_PASSES`] passes that have since stopped
    /// receiving (excused, closing or closed), for the watch to take out of its counts.
    gone: AtomicUsize,
}

/// The readers at one moment, for the publishers' wait and its log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pressure {
    /// Connections pressed now: not excused, more than half of their queue waiting.
    pub pressed: usize,
    /// Those of them that are brisk.
    pub brisk: usize,
    /// Connections receiving, as the watch last counted them.
    pub receivers: usize,
}

impl Default for Readers {
    fn default() -> Self {
        Readers {
            pressed: AtomicUsize::new(0),
            brisk: AtomicUsize::new(0),
            receivers: AtomicUsize::new(0),
            // Not 0, the pass a new connection has not been counted in.
            pass: AtomicU32::new(1),
            reached: [AtomicUsize::new(0), AtomicUsize::new(0)],
            gone: AtomicUsize::new(0),
        }
    }
}

impl Readers {
    /// The counts now.
    pub(super) fn pressure(&self) -> Pressure {
        Pressure {
            pressed: self.pressed.load(Ordering::Relaxed),
            brisk: self.brisk.load(Ordering::Relaxed),
            receivers: self.receivers.load(Ordering::Relaxed),
        }
    }

    /// Ends the watch's current pass: its count of receivers joins `passes` (the last
    /// [`RECEIVER_PASSES`] counts, kept by the watch), the connections that stopped receiving
    /// meanwhile are taken out of every count, and the receivers are the most any counted (a
    /// connection gone is taken out of passes it may not have been counted in: the count errs
    /// low, towards holding publishers). Whether the count grew.
    pub(super) fn count(&self, passes: &mut [usize; RECEIVER_PASSES]) -> bool {
        let ended = self.pass.fetch_add(1, Ordering::AcqRel);
        // The next pass's slot was emptied when the pass before this one ended.
        let reached = self.reached[(ended % 2) as usize].swap(0, Ordering::AcqRel);
        passes.rotate_right(1);
        passes[0] = reached;
        let gone = self.gone.swap(0, Ordering::AcqRel);
        for count in passes.iter_mut() {
            *count = count.saturating_sub(gone);
        }
        let receivers = passes.iter().copied().max().unwrap_or(0);
        receivers > self.receivers.swap(receivers, Ordering::Relaxed)
    }
}

/// One connection as a reader: its part in [`Readers`]. Every change happens under the
/// connection's outbox lock; the atomics only let the struct live in the shared connection
/// (16 bytes of it).
#[derive(Debug)]
pub(super) struct Reader {
    /// A queue longer than this is pressed (half its capacity).
    press_at: usize,
    /// Counted among the pressed.
    pressed: AtomicBool,
    /// Found brisk by the watch (or not looked at since it was last behind); counted among the
    /// brisk while also pressed.
    brisk: AtomicBool,
    /// Not excused and still taking frames, when last settled.
    counts: AtomicBool,
    /// The last pass of the watch it was counted among the receivers in (0: none).
    pass: AtomicU32,
}

impl Reader {
    /// A reader with a queue of `capacity` frames.
    pub(super) fn new(capacity: usize) -> Self {
        Reader {
            press_at: capacity / 2,
            pressed: AtomicBool::new(false),
            brisk: AtomicBool::new(true),
            counts: AtomicBool::new(true),
            pass: AtomicU32::new(0),
        }
    }

    /// A frame was queued for it while it counts: it is among the receivers of the current
    /// pass.
    pub(super) fn reached(&self, readers: &Readers) {
        let pass = readers.pass.load(Ordering::Relaxed);
        if self.pass.load(Ordering::Relaxed) != pass {
            self.pass.store(pass, Ordering::Relaxed);
            readers.reached[(pass % 2) as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Its queue now holds `len` frames, and it `counts` (not excused, still taking frames):
    /// whether it is pressed, and whether it stopped receiving. Whether the pressure eased.
    pub(super) fn settle(&self, len: usize, counts: bool, readers: &Readers) -> bool {
        if self.counts.load(Ordering::Relaxed) != counts {
            self.counts.store(counts, Ordering::Relaxed);
            let last = self.pass.load(Ordering::Relaxed);
            let ago = readers.pass.load(Ordering::Relaxed).wrapping_sub(last);
            if !counts && last != 0 && (ago as usize) < RECEIVER_PASSES {
                readers.gone.fetch_add(1, Ordering::Relaxed);
                // Taken out once; counted again if it receives again.
                self.pass.store(0, Ordering::Relaxed);
            }
        }
        // Loads, not swaps: this runs for every frame queued or written.
        let pressed = counts && len > self.press_at;
        if self.pressed.load(Ordering::Relaxed) == pressed {
            return false;
        }
        self.pressed.store(pressed, Ordering::Relaxed);
        add(&readers.pressed, pressed);
        if self.brisk.load(Ordering::Relaxed) {
            add(&readers.brisk, pressed);
        }
        !pressed
    }

    /// The watch found it brisk, or not. Whether the pressure eased.
    pub(super) fn pace(&self, brisk: bool, readers: &Readers) -> bool {
        if self.brisk.load(Ordering::Relaxed) == brisk {
            return false;
        }
        self.brisk.store(brisk, Ordering::Relaxed);
        if self.pressed.load(Ordering::Relaxed) {
            add(&readers.brisk, brisk);
        }
        !brisk
    }
}

/// One more in `count`, or one fewer.
fn add(count: &AtomicUsize, up: bool) {
    if up {
        count.fetch_add(1, Ordering::Relaxed);
    } else {
        count.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` readers of 16 frames, each queued a frame and counted among the receivers.
    fn receiving(
        readers: &Readers,
        passes: &mut [usize; RECEIVER_PASSES],
        n: usize,
    ) -> Vec<Reader> {
        let all: Vec<_> = (0..n).map(|_| Reader::new(16)).collect();
        for reader in &all {
            reader.reached(readers);
            reader.settle(1, true, readers);
        }
        readers.count(passes);
        all
    }

    #[test]
    fn pressed_brisk_and_receiving_are_counted_as_queues_change() {
        let readers = Readers::default();
        let mut passes = [0; RECEIVER_PASSES];
        let all = receiving(&readers, &mut passes, 4);
        assert_eq!(readers.pressure().receivers, 4);
        assert!(
            !all[0].settle(8, true, &readers),
            "half full is not pressed"
        );
        assert!(!all[0].settle(9, true, &readers));
        assert_eq!(
            readers.pressure(),
            Pressure {
                pressed: 1,
                brisk: 1,
                receivers: 4
            }
        );
        assert!(all[0].pace(false, &readers), "slow: no longer brisk");
        assert_eq!(readers.pressure().brisk, 0);
        assert!(all[0].settle(3, true, &readers), "drained below half");
        assert!(!all[0].pace(true, &readers));
        assert_eq!(readers.pressure().pressed, 0);

        // Excused while pressed: neither pressed nor receiving from the next count.
        all[1].settle(9, true, &readers);
        assert_eq!(readers.pressure().pressed, 1);
        assert!(all[1].settle(9, false, &readers));
        assert_eq!(readers.pressure().pressed, 0);
        for reader in &all[2..] {
            reader.reached(&readers);
        }
        readers.count(&mut passes);
        assert_eq!(
            readers.pressure().receivers,
            3,
            "the one excused is taken out"
        );
        // Counted again, and excused again with nothing queued for it meanwhile: taken out once.
        all[1].settle(9, true, &readers);
        all[1].settle(9, false, &readers);
        readers.count(&mut passes);
        assert_eq!(readers.pressure().receivers, 3);
    }

    #[test]
    fn a_reader_counts_once_a_pass_and_for_a_few_passes() {
        let readers = Readers::default();
        let mut passes = [0; RECEIVER_PASSES];
        let reader = Reader::new(16);
        for _ in 0..100 {
            reader.reached(&readers);
        }
        readers.count(&mut passes);
        assert_eq!(readers.pressure().receivers, 1);
        // Nothing more is queued for it: it stays a receiver for the passes counted.
        for _ in 1..RECEIVER_PASSES {
            readers.count(&mut passes);
            assert_eq!(readers.pressure().receivers, 1);
        }
        readers.count(&mut passes);
        assert_eq!(readers.pressure().receivers, 0);
    }

    #[test]
    fn brisk_is_a_pace_that_empties_a_full_queue_within_the_stall_timeout() {
        // 256 frames within 5 s: 51.2 frames a second.
        let brisk = |frames, ms| {
            is_brisk(
                frames,
                Duration::from_millis(ms),
                256,
                Duration::from_secs(5),
            )
        };
        assert!(brisk(52, 1000));
        assert!(!brisk(51, 1000));
        assert!(brisk(13, 250));
        assert!(!brisk(12, 250));
        assert!(!brisk(0, 0), "a frame at least");
    }
}
