//! A console's live log as Server-Sent Events: what one [`Watching`] yields, gathered into a
//! chunk for [`GATHER`] after each first entry, with at most [`RATE`] entries a second per
//! console. What it leaves out is never silent: a
//! `skipped` entry says how many were sampled out (over the rate) or missed (the console fell
//! behind the feed), so a page stays responsive at any event rate and says so.

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, Stream, StreamExt};
use tokio::time::{timeout_at, Instant};

use super::feed::{Next, Watching};

/// Entries sent per second to one console; the rest are counted, not sent. Each app's feed
/// builds no more than this on a node ([`super::feed::RATE`]); on a cluster, a console also gets
/// the other nodes' entries, and this bounds their sum.
pub const RATE: u32 = super::feed::RATE as u32;
/// Most entries in one chunk.
const BATCH: usize = 256;
/// How long entries are gathered into one chunk after the first: a few chunks a second rather
/// than one per entry, which is what a console costs the server while it watches a busy app.
const GATHER: Duration = Duration::from_millis(100);
/// A comment is sent when nothing else was for this long, so proxies keep the stream open and a
/// closed page is noticed.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// The SSE body of a console watching: a `retry` hint, then chunks of `data:` lines.
pub fn events(watching: Watching) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> {
    let sampler = Sampler {
        watching,
        window: Instant::now(),
        sent: 0,
        sampled: 0,
        written: Instant::now(),
    };
    let hello = Bytes::from_static(b"retry: 2000\n: watching\n\n");
    let first = stream::once(async move { Ok(hello) });
    first.chain(stream::unfold(sampler, |mut s| async move {
        let chunk = s.next_chunk().await;
        Some((Ok(chunk), s))
    }))
}

struct Sampler {
    watching: Watching,
    /// The start of the current one-second window.
    window: Instant,
    /// Entries sent in it.
    sent: u32,
    /// Entries left out in it.
    sampled: u64,
    /// When a chunk was last sent (for the keep-alive).
    written: Instant,
}

impl Sampler {
    /// The next chunk: what is waiting (at least one entry, or a `skipped` note, or a
    /// keep-alive comment). Wakes at least every second, so what the feed or this stream left
    /// out during a burst is reported even if the app goes quiet.
    async fn next_chunk(&mut self) -> Bytes {
        let mut out = String::new();
        loop {
            let wait_until = Instant::now() + Duration::from_secs(1);
            match timeout_at(wait_until, self.watching.next()).await {
                Ok(next) => {
                    self.take(next, &mut out);
                    tokio::time::sleep(GATHER).await;
                }
                Err(_) => {
                    self.watching.flush();
                    self.roll(Instant::now(), &mut out);
                    if out.is_empty() && self.written.elapsed() >= KEEPALIVE {
                        out.push_str(": keepalive\n\n");
                    }
                }
            }
            for _ in 0..BATCH {
                match self.watching.try_next() {
                    Next::Empty => break,
                    next => self.take(next, &mut out),
                }
            }
            if !out.is_empty() {
                self.written = Instant::now();
                return out.into();
            }
        }
    }

    fn take(&mut self, next: Next, out: &mut String) {
        self.roll(Instant::now(), out);
        match next {
            Next::Entry(entry) if self.sent < RATE => {
                self.sent += 1;
                data(out, &entry);
            }
            Next::Entry(_) => self.sampled += 1,
            Next::Missed(n) => skipped(out, n, "behind"),
            Next::Empty => {}
        }
    }

    /// Starts a new window if the current one is over, reporting what it left out.
    fn roll(&mut self, now: Instant, out: &mut String) {
        if now < self.window + Duration::from_secs(1) {
            return;
        }
        if self.sampled > 0 {
            skipped(out, self.sampled, "sampled");
        }
        self.window = now;
        self.sent = 0;
        self.sampled = 0;
    }
}

fn data(out: &mut String, json: &str) {
    out.push_str("data: ");
    out.push_str(json);
    out.push_str("\n\n");
}

/// A `skipped` entry: `why` is `sampled` (over [`RATE`]) or `behind` (the feed's backlog
/// overflowed).
fn skipped(out: &mut String, count: u64, why: &str) {
    data(out, &skipped_entry(count, why, None));
}

/// A `skipped` entry's JSON (with the node that left them out, on a cluster).
pub fn skipped_entry(count: u64, why: &str, node: Option<&str>) -> String {
    let mut entry = serde_json::json!({
        "kind": "skipped",
        "time_ms": crate::webhook::now_ms(),
        "count": count,
        "why": why,
    });
    if let Some(node) = node {
        entry["node"] = node.into();
    }
    entry.to_string()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures_util::StreamExt;

    use super::*;
    use crate::console::feed::Feed;

    #[tokio::test(start_paused = true)]
    async fn over_the_rate_entries_are_counted_and_reported() {
        let feed = Arc::new(Feed::new("1"));
        let stream = events(feed.watch());
        tokio::pin!(stream);
        let hello = stream.next().await.unwrap().unwrap();
        assert!(hello.starts_with(b"retry:"));
        // Entries relayed from other nodes: each node's feed keeps to the rate, not their sum.
        for _ in 0..RATE + 100 {
            feed.relayed(r#"{"kind":"cache_miss","channel":"c"}"#.into());
        }
        let mut text = String::new();
        while !text.contains("\"skipped\"") {
            let chunk = stream.next().await.unwrap().unwrap();
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        assert_eq!(text.matches("\"cache_miss\"").count(), RATE as usize);
        assert!(text.contains("\"count\":100") && text.contains("\"why\":\"sampled\""));
    }
}
