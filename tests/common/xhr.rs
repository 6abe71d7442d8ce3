//! A client of the HTTP fallback transports as pusher-js 8 speaks them: a session named in the
//! path (`/pusher/app/{key}/{server}/{session}/…`), receiving requests (`xhr_streaming` read line
//! by line as it arrives, `xhr` one body per poll) and `xhr_send` bodies (a JSON array of
//! messages as strings).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use super::{Server, WAIT};

/// pusher-js's query on receiving requests.
const QUERY: &str = "protocol=7&client=js&version=8.6.0";

/// Makes each URL unique, as pusher-js's `t`/`n` do.
static N: AtomicU64 = AtomicU64::new(1);

/// One session's requests.
#[derive(Debug, Clone)]
pub struct Xhr {
    http: reqwest::Client,
    /// `http://…/pusher/app/{key}/{server}/{session}`.
    pub base: String,
}

/// A response's status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Xhr {
    /// A new session id of the test app, as pusher-js makes them (`0..999` / 8 base-32 digits).
    pub fn new(server: &Server) -> Xhr {
        Xhr::for_key(server, super::KEY)
    }

    pub fn for_key(server: &Server, key: &str) -> Xhr {
        let session: String = (0..8)
            .map(|_| std::char::from_digit(fastrand::u32(0..32), 32).unwrap())
            .collect();
        let base = server.http_url(&format!(
            "/pusher/app/{key}/{}/{session}",
            fastrand::u32(0..1000)
        ));
        Xhr {
            http: reqwest::Client::new(),
            base,
        }
    }

    /// The same session's requests sent to another server (another node of a cluster).
    pub fn on(&self, server: &Server) -> Xhr {
        let path = &self.base[self.base.find("/pusher/").expect("a session path")..];
        Xhr {
            http: self.http.clone(),
            base: server.http_url(path),
        }
    }

    fn url(&self, kind: &str, query: &str) -> String {
        let n = N.fetch_add(1, Ordering::Relaxed);
        let sep = if query.is_empty() { "" } else { "&" };
        format!("{}/{kind}?{query}{sep}t=1700000000000&n={n}", self.base)
    }

    /// Opens an `xhr_streaming` request (with pusher-js's query).
    pub async fn stream(&self) -> Stream {
        self.stream_with(QUERY).await
    }

    pub async fn stream_with(&self, query: &str) -> Stream {
        let response = tokio::time::timeout(
            WAIT,
            self.http.post(self.url("xhr_streaming", query)).send(),
        )
        .await
        .expect("xhr_streaming answered in time")
        .expect("xhr_streaming");
        Stream {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            response,
            buffer: Vec::new(),
            messages: VecDeque::new(),
        }
    }

    /// One `xhr` poll, its whole answer.
    pub async fn poll(&self) -> Answer {
        self.request("xhr", QUERY, None).await
    }

    /// `xhr_send` with these messages (each sent as its JSON text).
    pub async fn send(&self, messages: &[Value]) -> Answer {
        let texts: Vec<String> = messages.iter().map(Value::to_string).collect();
        let body = serde_json::to_string(&texts).unwrap();
        self.send_body(&body).await
    }

    /// `xhr_send` with this exact body.
    pub async fn send_body(&self, body: &str) -> Answer {
        self.request("xhr_send", "", Some(body.to_owned())).await
    }

    /// Any method on any of the session's endpoints.
    pub async fn raw(&self, method: reqwest::Method, kind: &str) -> Answer {
        let request = self.http.request(method, self.url(kind, QUERY));
        answer(request).await
    }

    async fn request(&self, kind: &str, query: &str, body: Option<String>) -> Answer {
        let mut request = self.http.post(self.url(kind, query));
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body);
        }
        answer(request).await
    }
}

async fn answer(request: reqwest::RequestBuilder) -> Answer {
    let read = async {
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.expect("body");
        Answer {
            status,
            body,
            headers,
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("answered in time")
}

/// An `xhr_streaming` response, read as it arrives.
#[derive(Debug)]
pub struct Stream {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    response: reqwest::Response,
    /// Bytes received and not yet split into lines.
    buffer: Vec<u8>,
    /// Messages of an `a` line not yet handed out.
    messages: VecDeque<String>,
}

/// One line of a receiving request.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    Open,
    Heartbeat,
    Messages(Vec<String>),
    Close(u16, String),
}

impl Line {
    pub fn parse(line: &str) -> Line {
        match line.split_at(1) {
            ("o", "") => Line::Open,
            ("h", "") => Line::Heartbeat,
            ("a", array) => Line::Messages(serde_json::from_str(array).expect("a[...]")),
            ("c", close) => {
                let (code, reason): (u16, String) =
                    serde_json::from_str(close).expect("c[code,reason]");
                Line::Close(code, reason)
            }
            _ => panic!("not a SockJS frame: {line:?}"),
        }
    }

    /// All the lines of a body.
    pub fn all(body: &str) -> Vec<Line> {
        assert!(body.ends_with('\n'), "every frame ends its line: {body:?}");
        body.lines().map(Line::parse).collect()
    }
}

impl Stream {
    /// The next line, within `WAIT`; `None` at the end of the response.
    pub async fn line(&mut self) -> Option<Line> {
        tokio::time::timeout(WAIT, self.raw_line())
            .await
            .expect("a line within the wait")
            .map(|line| Line::parse(&line))
    }

    /// The next line's text as sent; `None` at the end of the response.
    pub async fn raw_line(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                return Some(String::from_utf8(line[..end].to_vec()).expect("UTF-8"));
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => self.buffer.extend_from_slice(&chunk),
                Ok(None) => {
                    assert!(
                        self.buffer.is_empty(),
                        "unterminated line {:?}",
                        self.buffer
                    );
                    return None;
                }
                Err(e) => panic!("stream failed: {e}"),
            }
        }
    }

    /// The next Pusher message's text, past heartbeats.
    pub async fn recv_text(&mut self) -> String {
        loop {
            if let Some(message) = self.messages.pop_front() {
                return message;
            }
            match self.line().await {
                Some(Line::Messages(messages)) => self.messages.extend(messages),
                Some(Line::Heartbeat) => {}
                other => panic!("expected messages, got {other:?}"),
            }
        }
    }

    pub async fn recv_json(&mut self) -> Value {
        super::json(&self.recv_text().await)
    }

    /// Reads `o` and `connection_established`; the socket id.
    pub async fn established(&mut self) -> String {
        assert_eq!(self.status, 200);
        assert_eq!(self.line().await, Some(Line::Open));
        let frame = self.recv_json().await;
        assert_eq!(frame["event"], "pusher:connection_established", "{frame}");
        let data = super::json(frame["data"].as_str().expect("string data"));
        data["socket_id"].as_str().expect("socket_id").to_owned()
    }

    /// Reads to the `c` frame, past heartbeats: the messages before it and the close.
    pub async fn until_close(&mut self) -> (Vec<String>, u16, String) {
        let mut before: Vec<String> = self.messages.drain(..).collect();
        loop {
            match self.line().await {
                Some(Line::Messages(messages)) => before.extend(messages),
                Some(Line::Heartbeat) => {}
                Some(Line::Close(code, reason)) => return (before, code, reason),
                other => panic!("expected the close, got {other:?}"),
            }
        }
    }

    /// Expects no message within `within` (heartbeats allowed).
    pub async fn expect_no_message(&mut self, within: std::time::Duration) {
        let quiet = async {
            loop {
                match self.raw_line().await.map(|l| Line::parse(&l)) {
                    Some(Line::Heartbeat) => {}
                    other => return other,
                }
            }
        };
        if let Ok(line) = tokio::time::timeout(within, quiet).await {
            panic!("expected nothing, got {line:?}");
        }
        assert!(self.messages.is_empty(), "{:?}", self.messages);
    }
}
