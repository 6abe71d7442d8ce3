//! A debug console client: logs in with the token (keeping the session cookie and CSRF token as
//! a browser would), calls the console's routes, and reads an app's live log
//! ([`ConsoleFeed`]: Server-Sent Events, entry by entry).

use std::time::Duration;

use serde_json::Value;

use super::{Server, WAIT};

/// The token the console tests configure.
pub const TOKEN: &str = "console-test-token-0123";

/// A console response: status, headers of interest and body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        super::json(&self.body)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A logged-in (or not yet) console.
#[derive(Debug, Clone)]
pub struct Console {
    pub base: String,
    client: reqwest::Client,
    pub cookie: Option<String>,
    pub csrf: Option<String>,
}

impl Console {
    /// A console of `server` that has not logged in.
    pub fn of(server: &Server) -> Console {
        Console {
            base: server.console_url(""),
            client: reqwest::Client::new(),
            cookie: None,
            csrf: None,
        }
    }

    /// Logs in with [`TOKEN`]; panics if refused.
    pub async fn logged_in(server: &Server) -> Console {
        let mut console = Console::of(server);
        let answer = console.log_in(TOKEN).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        console
    }

    /// Posts `token` to the login route; keeps the cookie and CSRF token it gets.
    pub async fn log_in(&mut self, token: &str) -> Answer {
        let body = serde_json::json!({ "token": token }).to_string();
        let answer = self.send("POST", "/api/login", &body, &[]).await;
        if answer.status == 200 {
            let set = answer.header("set-cookie").expect("a session cookie");
            self.cookie = Some(set.split(';').next().unwrap().to_owned());
            self.csrf = answer.json()["csrf"].as_str().map(str::to_owned);
        }
        answer
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send("GET", path, "", &[]).await
    }

    /// A POST as the page sends it: the CSRF header and this origin.
    pub async fn post(&self, path: &str, body: &str) -> Answer {
        let csrf = self.csrf.clone().unwrap_or_default();
        let origin = self.base.clone();
        self.send(
            "POST",
            path,
            body,
            &[("x-console-csrf", &csrf), ("origin", &origin)],
        )
        .await
    }

    /// The Event Creator: `name` on `channel` with `data`, as the page sends it.
    pub async fn trigger(&self, app: &str, channel: &str, name: &str, data: &str) -> Answer {
        let body = serde_json::json!({ "name": name, "channels": [channel], "data": data });
        self.post(&format!("/api/apps/{app}/events"), &body.to_string())
            .await
    }

    /// Any request, with the session cookie (if any) and these headers.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Answer {
        let response = self.request(method, path, body, headers).await;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        let body = response.text().await.expect("body");
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .timeout(WAIT)
            .body(body.to_owned());
        if !body.is_empty() {
            request = request.header("content-type", "application/json");
        }
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("console request")
    }

    /// Starts reading `app`'s live log.
    pub async fn watch(&self, app: &str) -> ConsoleFeed {
        let mut request = self
            .client
            .get(format!("{}/api/apps/{app}/feed", self.base));
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.expect("feed request");
        assert_eq!(response.status().as_u16(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(content_type, "text/event-stream");
        let mut feed = ConsoleFeed {
            response,
            buffer: String::new(),
            raw: String::new(),
        };
        // The stream's first chunk: the console is counted as watching once it is sent.
        feed.fill(WAIT).await;
        feed
    }
}

/// An app's live log, read entry by entry.
pub struct ConsoleFeed {
    response: reqwest::Response,
    buffer: String,
    /// Everything read so far, as sent.
    pub raw: String,
}

impl ConsoleFeed {
    async fn fill(&mut self, within: Duration) -> bool {
        match tokio::time::timeout(within, self.response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                let text = String::from_utf8(chunk.to_vec()).expect("UTF-8");
                self.raw.push_str(&text);
                self.buffer.push_str(&text);
                true
            }
            Ok(Ok(None)) => panic!("the feed ended"),
            Ok(Err(e)) => panic!("the feed failed: {e}"),
            Err(_) => false,
        }
    }

    /// The next entry, within `within`.
    pub async fn next_within(&mut self, within: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                    return Some(super::json(data));
                }
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() || !self.fill(left).await {
                return None;
            }
        }
    }

    /// Reads entries until one of `kind` for which `matches` holds; fails after `within`.
    /// Returns it and every entry read before it.
    pub async fn until(
        &mut self,
        kind: &str,
        within: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> (Value, Vec<Value>) {
        let mut before = Vec::new();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(entry) = self.next_within(left).await else {
                panic!("no {kind} entry within {within:?}; read: {before:#?}");
            };
            if entry["kind"] == kind && matches(&entry) {
                return (entry, before);
            }
            before.push(entry);
        }
    }

    /// The next entry of `kind`, skipping others.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        self.until(kind, WAIT, |_| true).await.0
    }
}
