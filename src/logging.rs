//! Logging: the subscriber the binary installs (an `EnvFilter`, lines on stderr: human-readable
//! or one JSON object each), and failed accepts reported once per episode.
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
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The target of actix-server's accept loop, which logs a failed `accept()`…
const ACCEPT_TARGET: &str = "actix_server::accept";
/// …with this message, followed by the error.
const ACCEPT_MESSAGE: &str = "Error accepting connection: ";

/// An episode of failed accepts ends after this long without one. actix-server tries again
/// every 500 ms while a connection waits, so this is several retries in a row that did not fail.
pub const EPISODE_QUIET: Duration = Duration::from_secs(3);

/// Installs the global subscriber: `filter` (tracing `EnvFilter` syntax; `info` if it does not
/// parse), [`lines`] in `format` on stderr (stdout carries only the "listening" line scripts
/// read), coloured only on a terminal, and accept errors once per episode. Also routes `log`
/// records into it.
pub fn init(filter: &str, format: LogFormat) -> io::Result<()> {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| "info".into());
    let ansi = io::IsTerminal::is_terminal(&io::stderr());
    tracing_subscriber::registry()
        .with(filter)
        .with(lines(format, io::stderr, ansi))
        .with(AcceptErrors::start(EPISODE_QUIET)?)
        .try_init()
        .map_err(io::Error::other)
}

/// The layer that writes events to `writer`, one line each. `Text`: human-readable, with the
/// spans they happened in as `connection{app_id=1 socket_id=…}:`, coloured if `ansi`. `Json`:
/// one object per line, the event's fields at the top level (`flatten_event`) and the fields of
/// the innermost span it happened in under `span` (`with_current_span`); the list of all its
/// spans is left out (`with_span_list(false)`), herald nests none.
pub fn lines<S, W>(format: LogFormat, writer: W, ansi: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer().with_writer(writer);
    match format {
        LogFormat::Text => layer.with_ansi(ansi).boxed(),
        LogFormat::Json => layer
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    }
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

    /// A log destination the test can read back.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// What [`lines`] in `format` writes for the events `emit` makes, under [`AcceptErrors`] as
    /// [`init`] stacks them.
    fn captured(format: LogFormat, emit: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::registry()
            .with(lines(format, move || writer.clone(), false))
            .with(AcceptErrors::new(QUIET));
        tracing::subscriber::with_default(subscriber, emit);
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    /// A connection's events (in its span, as `ws::session` makes it), one outside any span,
    /// accept errors, and the episode notices.
    fn events() {
        let span = tracing::debug_span!("connection", app_id = "7", socket_id = "123.456");
        span.in_scope(|| {
            tracing::debug!(channel = "presence-room", "subscribed");
            tracing::info!(target: "actix_server::accept", "unrelated");
        });
        tracing::info!(app_id = "7", key = "k", "app ready");
        let error = io::Error::from_raw_os_error(24);
        tracing::error!(target: "actix_server::accept", "Error accepting connection: {}", error);
        log(&started());
        log(&Notice::Ended {
            failures: 2,
            lasted: Duration::from_millis(500),
        });
    }

    #[test]
    fn json_lines_carry_the_event_and_its_span_fields() {
        let output = captured(LogFormat::Json, events);
        let lines: Vec<serde_json::Value> = output
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
            .collect();
        let messages: Vec<&str> = lines
            .iter()
            .map(|l| l["message"].as_str().unwrap())
            .collect();
        assert_eq!(messages.len(), 5, "{output}");
        assert_eq!(messages[..3], ["subscribed", "unrelated", "app ready"]);
        assert!(messages[3].starts_with("accepting connections failed: open-files"));
        assert!(messages[4].starts_with("accepting connections again: 2 failed accepts"));

        let subscribed = &lines[0];
        assert_eq!(subscribed["level"], "DEBUG");
        assert_eq!(subscribed["channel"], "presence-room");
        assert_eq!(subscribed["span"]["name"], "connection");
        assert_eq!(subscribed["span"]["app_id"], "7");
        assert_eq!(subscribed["span"]["socket_id"], "123.456");
        assert!(subscribed.get("spans").is_none(), "{subscribed}");
        assert_eq!(lines[1]["span"]["socket_id"], "123.456");
        let ready = &lines[2];
        assert_eq!(
            (&ready["app_id"], &ready["key"]),
            (&"7".into(), &"k".into())
        );
        assert!(ready.get("span").is_none(), "{ready}");
        assert_eq!(lines[3]["error"], EMFILE);
        assert_eq!(lines[4]["failed_accepts"], 2);
    }

    #[test]
    fn text_lines_name_the_span_and_the_fields() {
        let output = captured(LogFormat::Text, events);
        let lines: Vec<&str> = output.lines().collect();
        assert_eq!(lines.len(), 5, "{output}");
        assert!(
            lines[0].contains("connection{app_id=\"7\" socket_id=\"123.456\"}"),
            "{output}"
        );
        assert!(
            lines[0].contains("subscribed channel=\"presence-room\""),
            "{output}"
        );
        assert!(!output.contains("Error accepting connection"), "{output}");
        assert!(!output.starts_with('{'), "{output}");
    }
}
