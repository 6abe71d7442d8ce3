//! A signed HTTP API client, built the way the official SDKs sign (`auth_key`, `auth_timestamp`,
//! `auth_version`, `body_md5`, `auth_signature` over the decoded, sorted query).

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use herald::auth::api::{body_md5, string_to_sign};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::Value;

use super::WAIT;

/// How a request is signed and put on the wire; the default is what the Node SDK does.
#[derive(Debug, Clone, Default)]
pub struct Signing {
    /// Seconds added to the current time for `auth_timestamp`.
    pub timestamp_offset: i64,
    /// Send `body_md5` even without a body (the Python SDK does, on GET).
    pub md5_on_get: bool,
    /// Percent-encode every query value on the wire (PHP, Ruby).
    pub percent_encode: bool,
    /// Leave `auth_key` out.
    pub omit_key: bool,
    /// Use this key instead of the app's.
    pub key: Option<String>,
    /// Sign with this secret instead of the app's.
    pub secret: Option<String>,
    /// Send this `body_md5` instead of the right one (still signed).
    pub body_md5: Option<String>,
    /// Send `Content-Type: application/json` even without a body (PHP does, on GET).
    pub content_type_always: bool,
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: String,
    pub content_type: String,
}

impl Response {
    pub fn json(&self) -> Value {
        super::json(&self.body)
    }

    /// Asserts status 200 and returns the JSON body.
    pub fn ok(&self) -> Value {
        assert_eq!(self.status, 200, "body: {}", self.body);
        self.json()
    }
}

#[derive(Debug, Clone)]
pub struct Api {
    client: reqwest::Client,
    /// `http://addr`, or `https://addr` for a server with TLS.
    base: String,
    pub app_id: String,
    pub key: String,
    pub secret: String,
}

impl Api {
    pub fn new(addr: SocketAddr, app_id: &str, key: &str, secret: &str) -> Api {
        let client = reqwest::Client::builder()
            .timeout(WAIT)
            .build()
            .expect("reqwest client");
        Api {
            client,
            base: format!("http://{addr}"),
            app_id: app_id.into(),
            key: key.into(),
            secret: secret.into(),
        }
    }

    /// The same calls over `https://`, trusting the certificate `ca_pem` (PEM) as the CA.
    pub fn over_tls(self, ca_pem: &str) -> Api {
        let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("CA certificate");
        let client = reqwest::Client::builder()
            .timeout(WAIT)
            .add_root_certificate(ca)
            .build()
            .expect("reqwest client");
        Api {
            client,
            base: self.base.replacen("http://", "https://", 1),
            ..self
        }
    }

    pub fn for_app(&self, app_id: &str, key: &str, secret: &str) -> Api {
        Api {
            app_id: app_id.into(),
            key: key.into(),
            secret: secret.into(),
            ..self.clone()
        }
    }

    /// `/apps/{app_id}{rest}`.
    pub fn path(&self, rest: &str) -> String {
        format!("/apps/{}{rest}", self.app_id)
    }

    pub async fn get(&self, path: &str, params: &[(&str, &str)]) -> Response {
        self.request("GET", path, params, "", &Signing::default())
            .await
    }

    pub async fn post(&self, path: &str, body: &str) -> Response {
        self.request("POST", path, &[], body, &Signing::default())
            .await
    }

    /// `POST /apps/{id}/events` with this JSON body.
    pub async fn trigger(&self, body: Value) -> Response {
        self.post(&self.path("/events"), &body.to_string()).await
    }

    /// Triggers `event` with `data` on one channel and asserts `200 {}`.
    pub async fn publish(&self, channel: &str, event: &str, data: &str) {
        let body = serde_json::json!({"name": event, "channels": [channel], "data": data});
        let response = self.trigger(body).await;
        assert_eq!(
            (response.status, response.body.as_str()),
            (200, "{}"),
            "trigger to {channel}"
        );
    }

    /// Publishes `count` events `e` to `channel`, the i-th with data `"<i> "` followed by 64 KiB
    /// of filler: enough of them fill a reader's socket buffers (the app needs
    /// `max_event_data_bytes` above 65,536).
    pub async fn publish_large(&self, channel: &str, count: usize) {
        let filler = "x".repeat(64 * 1024);
        for i in 0..count {
            self.publish(channel, "e", &format!("{i} {filler}")).await;
        }
    }

    pub async fn batch(&self, body: Value) -> Response {
        self.post(&self.path("/batch_events"), &body.to_string())
            .await
    }

    /// The signed query string (already encoded for the wire).
    pub fn signed_query(
        &self,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
        body: &str,
        s: &Signing,
    ) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64;
        let mut query: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if !s.omit_key {
            query.push((
                "auth_key".into(),
                s.key.clone().unwrap_or_else(|| self.key.clone()),
            ));
        }
        query.push((
            "auth_timestamp".into(),
            (now + s.timestamp_offset).to_string(),
        ));
        query.push(("auth_version".into(), "1.0".into()));
        if !body.is_empty() || s.md5_on_get || s.body_md5.is_some() {
            let md5 = s
                .body_md5
                .clone()
                .unwrap_or_else(|| body_md5(body.as_bytes()));
            query.push(("body_md5".into(), md5));
        }
        let secret = s.secret.as_deref().unwrap_or(&self.secret);
        let signature = herald::auth::sign(secret, string_to_sign(method, path, &query).as_bytes());
        query.push(("auth_signature".into(), signature));
        let encode = |v: &str| {
            if s.percent_encode {
                utf8_percent_encode(v, NON_ALPHANUMERIC).to_string()
            } else {
                v.to_owned()
            }
        };
        let pairs: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        pairs.join("&")
    }

    /// A signed request.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
        body: &str,
        s: &Signing,
    ) -> Response {
        let query = self.signed_query(method, path, params, body, s);
        self.send(
            method,
            &format!("{path}?{query}"),
            body,
            s.content_type_always,
        )
        .await
    }

    /// An unsigned request to `path_and_query` exactly as given.
    pub async fn raw(&self, method: &str, path_and_query: &str, body: &str) -> Response {
        self.send(method, path_and_query, body, false).await
    }

    async fn send(
        &self,
        method: &str,
        path_and_query: &str,
        body: &str,
        content_type: bool,
    ) -> Response {
        let url = format!("{}{path_and_query}", self.base);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.client.request(method, &url);
        if !body.is_empty() || content_type {
            request = request.header("Content-Type", "application/json");
        }
        if !body.is_empty() {
            request = request.body(body.to_owned());
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.text().await.expect("response body");
        Response {
            status,
            body,
            content_type,
        }
    }
}
