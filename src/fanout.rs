//! The fan-out threads: they write broadcasts — events, `member_added`/`member_removed`,
//! `subscription_count` — to the subscribers of a channel.
//!
//! Every connection belongs to one lane ([`ConnectionHandle::lane`]), and each lane has one
//! thread, so a connection's broadcasts are written in the order they were handed over, and
//! the subscribers of a large channel are written by all threads at once, one non-blocking
//! write after another, with no task woken per delivery. A lane handed one broadcast writes
//! each subscriber as it goes; a lane that has fallen behind queues every waiting broadcast
//! first and then writes each connection once, several frames per write. Each lane's queue is
//! bounded, and what waits in it counts in the [`Backlog`] that API publishers wait on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use crate::connection::{Backlog, Frame, Queued, Subscription};
use crate::protocol::SocketId;

/// Broadcasts waiting per lane before handing over one more blocks the caller.
const LANE_QUEUE: usize = 1024;
/// Most waiting broadcasts a lane takes together.
const BATCH: usize = 256;

/// The fan-out lanes; clones share them. The threads end when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct FanOut {
    /// One entry per lane; empty: the caller writes broadcasts itself (tests).
    lanes: Arc<[Lane]>,
    backlog: Arc<Backlog>,
}

/// A lane: its thread's queue and how far the thread has got.
#[derive(Debug)]
struct Lane {
    jobs: SyncSender<Job>,
    progress: Arc<Progress>,
}

/// Broadcasts handed to a lane and finished by it; equal when the lane is idle.
#[derive(Debug, Default)]
struct Progress {
    handed: AtomicU64,
    done: AtomicU64,
}

/// How far behind the lanes are, for the metrics; it does not keep the lanes running.
#[derive(Debug, Clone)]
pub struct Load {
    lanes: Arc<[Arc<Progress>]>,
}

impl Load {
    /// Broadcasts handed to the lanes and not yet written, all lanes together.
    pub fn pending_broadcasts(&self) -> u64 {
        self.lanes
            .iter()
            .map(|p| {
                // `done` first: read the other way round, a broadcast finished in between
                // would make `done` pass `handed`.
                let done = p.done.load(Ordering::Acquire);
                p.handed.load(Ordering::Acquire).saturating_sub(done)
            })
            .sum()
    }
}

/// A channel's subscribers split by lane; kept by the channel until its membership changes, and
/// shared by the broadcasts in flight.
#[derive(Debug)]
pub struct Targets {
    lanes: Box<[Vec<Subscription>]>,
}

/// One broadcast for one lane.
#[derive(Debug)]
struct Job {
    frame: Frame,
    targets: Arc<Targets>,
    except: Option<SocketId>,
}

impl FanOut {
    /// Starts `threads` lanes (at least one), whose queued broadcasts count in `backlog`.
    pub fn start(threads: usize, backlog: Arc<Backlog>) -> std::io::Result<Self> {
        let mut lanes = Vec::with_capacity(threads.max(1));
        for lane in 0..threads.max(1) {
            let (jobs, rx) = mpsc::sync_channel(LANE_QUEUE);
            let progress = Arc::new(Progress::default());
            let (backlog, done) = (backlog.clone(), progress.clone());
            std::thread::Builder::new()
                .name(format!("herald-fanout-{lane}"))
                .spawn(move || run(lane, rx, &backlog, &done.done))?;
            lanes.push(Lane { jobs, progress });
        }
        Ok(FanOut {
            lanes: lanes.into(),
            backlog,
        })
    }

    /// No threads: every broadcast is written by the caller before it returns (unit tests).
    pub fn inline() -> Self {
        FanOut {
            lanes: Arc::new([]),
            backlog: Backlog::new(usize::MAX, std::time::Duration::MAX),
        }
    }

    /// A view of the lanes' progress.
    pub fn load(&self) -> Load {
        Load {
            lanes: self.lanes.iter().map(|l| l.progress.clone()).collect(),
        }
    }

    /// `subscriptions` split by lane.
    pub fn targets<'a>(&self, subscriptions: impl Iterator<Item = &'a Subscription>) -> Targets {
        let count = self.lanes.len().max(1);
        let mut lanes = vec![Vec::new(); count].into_boxed_slice();
        for subscription in subscriptions {
            lanes[subscription.handle().lane() % count].push(subscription.clone());
        }
        Targets { lanes }
    }

    /// Sends `frame` to one connection after every broadcast already handed to its lane: a
    /// new subscription's `subscription_succeeded` must not overtake an event (or a
    /// `member_removed`) of the same channel published before an unsubscribe. The caller holds
    /// the channel's lock, so no broadcast of that channel is handed over meanwhile. An idle
    /// lane (the usual case) means a direct send, in order with the session's other replies.
    pub fn send_after_broadcasts(&self, subscription: &Subscription, frame: Frame) {
        let idle = match self
            .lanes
            .get(subscription.handle().lane() % self.lanes.len().max(1))
        {
            None => true,
            Some(lane) => {
                let done = lane.progress.done.load(Ordering::Acquire);
                done == lane.progress.handed.load(Ordering::Acquire)
            }
        };
        if idle {
            subscription.send(frame);
        } else {
            let targets = Arc::new(self.targets(std::iter::once(subscription)));
            self.broadcast(&targets, &frame, None);
        }
    }

    /// Hands `frame` to every lane with subscribers in `targets`, for all of them but `except`.
    /// Never waits on a socket; waits for room only when a lane's queue is full.
    pub fn broadcast(&self, targets: &Arc<Targets>, frame: &Frame, except: Option<&SocketId>) {
        if self.lanes.is_empty() {
            for handles in targets.lanes.iter() {
                write_each(handles, frame, except);
            }
            return;
        }
        for (lane, handles) in self.lanes.iter().zip(targets.lanes.iter()) {
            if handles.is_empty() {
                continue;
            }
            let job = Job {
                frame: frame.clone(),
                targets: targets.clone(),
                except: except.cloned(),
            };
            self.backlog.add(handles.len());
            lane.progress.handed.fetch_add(1, Ordering::AcqRel);
            let refused = match lane.jobs.try_send(job) {
                Ok(()) => None,
                Err(TrySendError::Full(job)) => lane.jobs.send(job).err().map(|e| e.0),
                Err(TrySendError::Disconnected(job)) => Some(job),
            };
            // A lane whose thread is gone: write its share here rather than lose it.
            if let Some(job) = refused {
                write_each(handles, &job.frame, job.except.as_ref());
                self.backlog.release(handles.len());
                lane.progress.done.fetch_add(1, Ordering::AcqRel);
            }
        }
    }
}

/// A lane's thread: takes broadcasts until every [`FanOut`] is gone, counting in `done` the
/// ones it has finished.
fn run(lane: usize, jobs: Receiver<Job>, backlog: &Backlog, done: &AtomicU64) {
    let mut touched = Vec::new();
    while let Ok(job) = jobs.recv() {
        let Ok(next) = jobs.try_recv() else {
            let handles = &job.targets.lanes[lane];
            write_each(handles, &job.frame, job.except.as_ref());
            backlog.release(handles.len());
            done.fetch_add(1, Ordering::AcqRel);
            continue;
        };
        // Behind: queue every waiting broadcast, then write each connection once.
        let waiting = std::iter::from_fn(|| jobs.try_recv().ok()).take(BATCH);
        let (mut taken, mut finished) = (0, 0);
        for job in [job, next].into_iter().chain(waiting) {
            let handles = &job.targets.lanes[lane];
            for subscription in handles {
                let handle = subscription.handle();
                if Some(handle.socket_id()) != job.except.as_ref()
                    && subscription.queue(job.frame.clone()) == Queued::FlushNeeded
                {
                    touched.push(handle.clone());
                }
            }
            taken += handles.len();
            finished += 1;
        }
        for handle in touched.drain(..) {
            handle.flush();
        }
        backlog.release(taken);
        done.fetch_add(finished, Ordering::AcqRel);
    }
}

/// Writes `frame` to each of `subscriptions` but `except`, one after another.
fn write_each(subscriptions: &[Subscription], frame: &Frame, except: Option<&SocketId>) {
    for subscription in subscriptions {
        if Some(subscription.handle().socket_id()) != except {
            subscription.send(frame.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::{ConnectionHandle, Outbound};
    use std::time::Duration;

    fn drain(rx: &mut Outbound) -> Vec<String> {
        std::iter::from_fn(|| rx.try_recv().map(|f| f.to_string())).collect()
    }

    #[test]
    fn lanes_keep_each_connections_order_and_skip_the_sender() {
        let backlog = Backlog::new(usize::MAX, Duration::MAX);
        let fan_out = FanOut::start(2, backlog.clone()).unwrap();
        let conns: Vec<_> = (0..6)
            .map(|_| ConnectionHandle::new(SocketId::generate(), 4096))
            .collect();
        let subscriptions: Vec<_> = conns
            .iter()
            .map(|(h, _)| Subscription::new(h.clone()))
            .collect();
        let targets = Arc::new(fan_out.targets(subscriptions.iter()));
        let sender = conns[0].0.socket_id().clone();
        for i in 0..1000 {
            fan_out.broadcast(&targets, &i.to_string().into(), Some(&sender));
        }
        // The lanes are done once nothing they were handed is counted any more.
        for _ in 0..2000 {
            if backlog.queued() == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(backlog.queued(), 0, "lanes did not finish in 10 s");
        // Each lane counts a broadcast done just after releasing its frames.
        let load = fan_out.load();
        for _ in 0..200 {
            if load.pending_broadcasts() == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(load.pending_broadcasts(), 0);
        let expected: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
        for (i, (_, rx)) in conns.into_iter().enumerate() {
            let mut rx = rx;
            let got = drain(&mut rx);
            if i == 0 {
                assert!(got.is_empty(), "the sender got {} frames", got.len());
            } else {
                assert_eq!(got, expected, "connection {i}");
            }
        }
    }

    #[test]
    fn inline_fan_out_writes_before_returning() {
        let fan_out = FanOut::inline();
        let (a, mut arx) = ConnectionHandle::new(SocketId::generate(), 8);
        let targets = Arc::new(fan_out.targets([&Subscription::new(a)].into_iter()));
        fan_out.broadcast(&targets, &"x".into(), None);
        assert_eq!(drain(&mut arx), ["x"]);
    }

    /// Hardening #5: broadcasts handed to a lane before an unsubscribe are not delivered after
    /// it, however far behind the lane is.
    #[test]
    fn nothing_goes_through_an_ended_subscription() {
        let backlog = Backlog::new(usize::MAX, Duration::MAX);
        let fan_out = FanOut::start(1, backlog.clone()).unwrap();
        let (a, mut arx) = ConnectionHandle::new(SocketId::generate(), 1 << 20);
        let subscription = Subscription::new(a);
        let targets = Arc::new(fan_out.targets([&subscription].into_iter()));
        for i in 0..20_000 {
            fan_out.broadcast(&targets, &i.to_string().into(), None);
        }
        subscription.end();
        let delivered_at_end = drain(&mut arx).len();
        for _ in 0..2000 {
            if backlog.queued() == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(backlog.queued(), 0, "the lane did not finish in 10 s");
        assert_eq!(
            drain(&mut arx),
            Vec::<String>::new(),
            "after end ({delivered_at_end} before)"
        );
        assert!(!subscription.send("late".into()));
    }
}
