//! Logging: the subscriber the binary installs (an `EnvFilter`, formatted lines on stderr), and
//! failed accepts reported once per episode.
//!
//! When `accept()` fails (typically the open-files limit reached), actix-server logs
//! `Error accepting connection: …` at error level and tries again 500 ms later, for as long as it
//! keeps failing: two lines a second. [`AcceptErrors`] takes those lines out of the log and groups
//! the failures into episodes ([`Episodes`]): one warning when an episode starts, one line when no
//! accept has failed for [`EPISODE_QUIET`]. It must not change any other event; nothing here
//! knows about connections, apps or the server, and only `main` calls [`init`].

use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// The target of actix-server's accept loop, which logs a failed `accept()`…
const ACCEPT_TARGET: &str = "actix_server::accept";
/// …with this message, followed by the error.
const ACCEPT_MESSAGE: &str = "Error accepting connection: ";

/// An episode of failed accepts ends after this long without one. actix-server tries again
/// every 500 ms while a connection waits, so this is several retries in a row that did not fail.
pub const EPISODE_QUIET: Duration = Duration::from_secs(3);

/// Installs the global subscriber: `filter` (tracing `EnvFilter` syntax; `info` if it does not
/// parse), lines on stderr (stdout carries only the "listening" line scripts read), coloured only
/// on a terminal, and accept errors once per episode. Also routes `log` records into it.
pub fn init(filter: &str) -> io::Result<()> {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| "info".into());
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(io::stderr)
        .with_ansi(io::IsTerminal::is_terminal(&io::stderr()));
    tracing_subscriber::registry()
        .with(filter)
        .with(lines)
        .with(AcceptErrors::start(EPISODE_QUIET)?)
        .try_init()
        .map_err(io::Error::other)
}

/// What to log about failed accepts, as decided by [`Episodes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The first failed accept after a quiet spell; `error` as the OS reported it.
    Started { error: String },
    /// No accept has failed for the quiet period: `failures` failed accepts, the last one
    /// `lasted` after the first.
    Ended { failures: u64, lasted: Duration },
}

/// Failed accepts grouped into episodes. Pure: the caller passes the clock in.
#[derive(Debug)]
pub struct Episodes {
    /// How long without a failure ends an episode.
    quiet: Duration,
    /// The episode under way, if any.
    current: Option<Episode>,
}

#[derive(Debug, Clone, Copy)]
struct Episode {
    first: Instant,
    last: Instant,
    failures: u64,
}

impl Episodes {
    pub fn new(quiet: Duration) -> Self {
        Episodes {
            quiet,
            current: None,
        }
    }

    /// An accept failed at `now` with `error`. Returns what to log: the start of an episode
    /// (preceded by the end of the previous one if it had gone quiet unreported), or nothing
    /// while an episode lasts.
    pub fn failed(&mut self, now: Instant, error: &str) -> Vec<Notice> {
        let mut notices: Vec<Notice> = self.end_if_quiet(now).into_iter().collect();
        match &mut self.current {
            Some(episode) => {
                episode.last = now;
                episode.failures += 1;
            }
            None => {
                self.current = Some(Episode {
                    first: now,
                    last: now,
                    failures: 1,
                });
                notices.push(Notice::Started {
                    error: error.to_owned(),
                });
            }
        }
        notices
    }

    /// Ends the episode under way if no accept has failed for the quiet period by `now`.
    pub fn end_if_quiet(&mut self, now: Instant) -> Option<Notice> {
        let episode = self.current?;
        if now.saturating_duration_since(episode.last) < self.quiet {
            return None;
        }
        self.current = None;
        Some(Notice::Ended {
            failures: episode.failures,
            lasted: episode.last - episode.first,
        })
    }

    /// When the episode under way ends if no accept fails before.
    pub fn ends_at(&self) -> Option<Instant> {
        self.current.map(|episode| episode.last + self.quiet)
    }
}

/// The layer: disables actix-server's accept-error events (for every layer) and feeds them to
/// [`Episodes`]. A thread of its own logs the notices: the end of an episode is a moment with no
/// event to hang it on, and logging from there keeps events out of the subscriber's callbacks.
#[derive(Clone)]
pub struct AcceptErrors {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<Pending>,
    /// Signalled when notices are pending.
    changed: Condvar,
}

struct Pending {
    episodes: Episodes,
    /// Notices not logged yet.
    notices: Vec<Notice>,
}

impl AcceptErrors {
    /// The layer, without the thread that logs its notices.
    fn new(quiet: Duration) -> Self {
        AcceptErrors {
            shared: Arc::new(Shared {
                state: Mutex::new(Pending {
                    episodes: Episodes::new(quiet),
                    notices: Vec::new(),
                }),
                changed: Condvar::new(),
            }),
        }
    }

    /// The layer and its thread, which waits (no polling) for notices and episode ends.
    pub fn start(quiet: Duration) -> io::Result<Self> {
        let layer = AcceptErrors::new(quiet);
        let shared = layer.shared.clone();
        std::thread::Builder::new()
            .name("herald-accept-log".into())
            .spawn(move || report(&shared))?;
        Ok(layer)
    }

    fn failed(&self, now: Instant, error: &str) {
        let mut state = self.shared.lock();
        let notices = state.episodes.failed(now, error);
        if notices.is_empty() {
            return;
        }
        state.notices.extend(notices);
        drop(state);
        self.shared.changed.notify_one();
    }
}

impl Shared {
    /// The lock guards plain data that every update leaves consistent, so a poisoned lock is
    /// used as it is.
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<S: Subscriber> Layer<S> for AcceptErrors {
    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        match accept_error(event) {
            Some(error) => {
                self.failed(Instant::now(), &error);
                false
            }
            None => true,
        }
    }
}

/// The error of an actix-server accept-error event; `None` for any other event.
fn accept_error(event: &Event<'_>) -> Option<String> {
    let meta = event.metadata();
    if *meta.level() != Level::ERROR || meta.target() != ACCEPT_TARGET {
        return None;
    }
    let mut message = Message(None);
    event.record(&mut message);
    Some(message.0?.strip_prefix(ACCEPT_MESSAGE)?.to_owned())
}

/// Reads an event's `message` field.
struct Message(Option<String>);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

/// The thread of [`AcceptErrors::start`]: logs notices as they come and ends episodes on time.
fn report(shared: &Shared) {
    let mut state = shared.lock();
    loop {
        let now = Instant::now();
        let mut notices = std::mem::take(&mut state.notices);
        notices.extend(state.episodes.end_if_quiet(now));
        if !notices.is_empty() {
            drop(state);
            notices.iter().for_each(log);
            state = shared.lock();
            continue;
        }
        state = match state.episodes.ends_at() {
            None => shared
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner),
            Some(at) => {
                let wait = at.saturating_duration_since(now);
                let waited = shared.changed.wait_timeout(state, wait);
                waited.unwrap_or_else(PoisonError::into_inner).0
            }
        };
    }
}

fn log(notice: &Notice) {
    match notice {
        Notice::Started { error } => tracing::warn!(%error, "{}", started_message(error)),
        Notice::Ended { failures, lasted } => {
            let millis = u64::try_from(lasted.as_millis()).unwrap_or(u64::MAX);
            let lasted = humantime::format_duration(Duration::from_millis(millis));
            let accepts = if *failures == 1 { "accept" } else { "accepts" };
            tracing::info!(
                failed_accepts = failures,
                "accepting connections again: {failures} failed {accepts} over {lasted} (first \
                 to last)"
            );
        }
    }
}

/// The warning for an episode's first failure, naming the usual cause when the error is
/// EMFILE (24) or ENFILE (23), which is how `std::io::Error` displays them.
fn started_message(error: &str) -> &'static str {
    if error.ends_with("(os error 24)") || error.ends_with("(os error 23)") {
        "accepting connections failed: open-files limit reached; new connections wait until \
         descriptors free up (open connections are still served; retried every 500 ms, \
         repeats not logged)"
    } else {
        "accepting connections failed; new connections wait (open connections are still served; \
         retried every 500 ms, repeats not logged)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUIET: Duration = Duration::from_secs(3);
    const EMFILE: &str = "Too many open files (os error 24)";

    fn at(start: Instant, millis: u64) -> Instant {
        start + Duration::from_millis(millis)
    }

    fn started() -> Notice {
        Notice::Started {
            error: EMFILE.into(),
        }
    }

    #[test]
    fn an_episode_is_announced_once_and_ends_after_the_quiet_period() {
        let t0 = Instant::now();
        let mut episodes = Episodes::new(QUIET);
        assert_eq!(episodes.ends_at(), None);
        assert_eq!(episodes.failed(t0, EMFILE), vec![started()]);
        for i in 1..=10 {
            assert_eq!(episodes.failed(at(t0, i * 510), EMFILE), vec![]);
        }
        assert_eq!(episodes.ends_at(), Some(at(t0, 5_100 + 3_000)));
        assert_eq!(episodes.end_if_quiet(at(t0, 8_099)), None);
        assert_eq!(
            episodes.end_if_quiet(at(t0, 8_100)),
            Some(Notice::Ended {
                failures: 11,
                lasted: Duration::from_millis(5_100),
            })
        );
        assert_eq!(episodes.ends_at(), None);
        assert_eq!(episodes.end_if_quiet(at(t0, 20_000)), None);
    }

    #[test]
    fn a_failure_after_the_quiet_period_ends_the_old_episode_and_starts_a_new_one() {
        let t0 = Instant::now();
        let mut episodes = Episodes::new(QUIET);
        episodes.failed(t0, EMFILE);
        episodes.failed(at(t0, 500), EMFILE);
        // Just inside the quiet period: still the same episode.
        assert_eq!(episodes.failed(at(t0, 3_499), EMFILE), vec![]);
        let other = "Cannot allocate memory (os error 12)";
        assert_eq!(
            episodes.failed(at(t0, 6_499), other),
            vec![
                Notice::Ended {
                    failures: 3,
                    lasted: Duration::from_millis(3_499),
                },
                Notice::Started {
                    error: other.into()
                },
            ]
        );
        assert_eq!(episodes.ends_at(), Some(at(t0, 9_499)));
    }

    #[test]
    fn the_warning_names_the_open_files_limit_only_for_emfile_and_enfile() {
        assert!(started_message(EMFILE).contains("open-files limit reached"));
        assert!(
            started_message("Too many open files in system (os error 23)")
                .contains("open-files limit reached")
        );
        let other = started_message("Cannot allocate memory (os error 12)");
        assert!(!other.contains("open-files"), "{other}");
        assert!(other.starts_with("accepting connections failed"), "{other}");
    }

    /// Records the message of every event it is given.
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<String>>>);

    impl<S: Subscriber> Layer<S> for Seen {
        fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
            let mut message = Message(None);
            event.record(&mut message);
            self.0.lock().unwrap().push(message.0.unwrap_or_default());
        }
    }

    #[test]
    fn the_layer_takes_every_accept_error_out_of_the_log_and_leaves_other_events_alone() {
        let layer = AcceptErrors::new(QUIET);
        let seen = Seen::default();
        let subscriber = tracing_subscriber::registry()
            .with(seen.clone())
            .with(layer.clone());
        tracing::subscriber::with_default(subscriber, || {
            let error = io::Error::from_raw_os_error(24);
            for _ in 0..3 {
                // As actix-server 2 logs it (`accept.rs`).
                tracing::error!(target: "actix_server::accept", "Error accepting connection: {}", error);
            }
            tracing::error!(target: "actix_server::accept", "Can not register server socket {}", error);
            tracing::warn!(target: "actix_server::accept", "Error accepting connection: {}", error);
            tracing::error!("Error accepting connection: {}", error);
        });
        let seen = seen.0.lock().unwrap().clone();
        assert_eq!(
            seen,
            [
                format!("Can not register server socket {EMFILE}"),
                format!("Error accepting connection: {EMFILE}"),
                format!("Error accepting connection: {EMFILE}"),
            ]
        );
        let pending = layer.shared.lock();
        assert_eq!(pending.notices, vec![started()]);
        assert!(pending.episodes.ends_at().is_some());
    }
}
