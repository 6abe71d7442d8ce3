//! A tiny webhook receiver on 127.0.0.1:0: minimal HTTP/1.1 (keep-alive, Content-Length
//! bodies) that records each request's headers and raw body and answers 200 — or 500 for the
//! first `fail_first` requests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::{KEY, SECRET, WAIT};

/// One received webhook request.
#[derive(Debug, Clone)]
pub struct Hook {
    pub method: String,
    pub path: String,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The request line and headers exactly as received (names in the sender's casing).
    pub head: String,
    pub body: Vec<u8>,
    /// The status we answered.
    pub answered: u16,
}

impl Hook {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        super::json(std::str::from_utf8(&self.body).expect("utf-8 body"))
    }

    /// Checks the envelope: POST, exact Content-Type, X-Pusher-Key, X-Pusher-Signature over
    /// the raw body, and a body of exactly `time_ms` (creation time) and `events`.
    pub fn check_envelope(&self) {
        assert_eq!(self.method, "POST");
        assert_eq!(self.path, "/pusher/webhooks");
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "exactly application/json"
        );
        assert_eq!(self.header("x-pusher-key"), Some(KEY));
        let signature = herald::auth::sign(SECRET, &self.body);
        assert_eq!(
            self.header("x-pusher-signature"),
            Some(signature.as_str()),
            "HMAC of the raw body"
        );
        let body = self.json();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64;
        let time_ms = body["time_ms"].as_i64().expect("time_ms integer");
        assert!(
            (now - time_ms).abs() < 10_000,
            "time_ms {time_ms} is the creation time (now {now})"
        );
        assert_eq!(
            body.as_object().map(|o| o.len()),
            Some(2),
            "only time_ms and events: {body}"
        );
    }

    /// The `events` array of the body.
    pub fn events(&self) -> Vec<Value> {
        self.json()["events"]
            .as_array()
            .expect("events array")
            .clone()
    }
}

pub struct Receiver {
    pub url: String,
    rx: mpsc::UnboundedReceiver<Hook>,
}

impl Receiver {
    /// Starts a receiver answering 500 to the first `fail_first` requests.
    pub async fn start(fail_first: usize) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let url = format!(
            "http://{}/pusher/webhooks",
            listener.local_addr().expect("addr")
        );
        let (tx, rx) = mpsc::unbounded_channel();
        let failures = Arc::new(AtomicUsize::new(fail_first));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, tx.clone(), failures.clone()));
            }
        });
        Receiver { url, rx }
    }

    /// The next request, within `within`.
    pub async fn next_within(&mut self, within: Duration) -> Option<Hook> {
        tokio::time::timeout(within, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next request; fails the test after [`WAIT`].
    pub async fn next(&mut self) -> Hook {
        self.next_within(WAIT)
            .await
            .expect("no webhook within the wait time")
    }

    /// The next successfully answered request's single event.
    pub async fn next_event(&mut self) -> Value {
        loop {
            let hook = self.next().await;
            if hook.answered == 200 {
                let events = hook.events();
                assert_eq!(
                    events.len(),
                    1,
                    "unbatched webhooks carry one event: {events:?}"
                );
                return events[0].clone();
            }
        }
    }

    /// The next request, answered 200, with a checked envelope and exactly one event.
    pub async fn next_checked(&mut self) -> Value {
        let hook = self.next().await;
        assert_eq!(hook.answered, 200);
        hook.check_envelope();
        let events = hook.events();
        assert_eq!(
            events.len(),
            1,
            "one event per unbatched webhook: {events:?}"
        );
        events[0].clone()
    }

    /// Fails if any request arrives within `within`.
    pub async fn expect_none(&mut self, within: Duration) {
        if let Some(hook) = self.next_within(within).await {
            panic!(
                "expected no webhook, got {}",
                String::from_utf8_lossy(&hook.body)
            );
        }
    }
}

async fn serve(mut stream: TcpStream, tx: mpsc::UnboundedSender<Hook>, failures: Arc<AtomicUsize>) {
    let mut buf = Vec::new();
    loop {
        let Some(head_end) = read_until_head(&mut stream, &mut buf).await else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut start = lines.next().unwrap_or_default().split(' ');
        let method = start.next().unwrap_or_default().to_owned();
        let path = start.next().unwrap_or_default().to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        buf.drain(..head_end + 4);
        while buf.len() < length {
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buf.drain(..length).collect();
        let fail = failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let answered = if fail { 500 } else { 200 };
        let reply = format!("HTTP/1.1 {answered} X\r\ncontent-length: 0\r\n\r\n");
        let _ = tx.send(Hook {
            method,
            path,
            headers,
            head,
            body,
            answered,
        });
        if stream.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Reads until `\r\n\r\n`; returns its offset, or `None` at EOF.
async fn read_until_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(at);
        }
        let mut chunk = [0u8; 8192];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
