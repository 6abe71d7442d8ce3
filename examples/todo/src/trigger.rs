//! Publishing list changes to herald through Pusher's signed HTTP API.
//!
//! Owns the event names and payloads of the 2011 demo (`created`, `updated`, `destroyed`), the
//! choice between the modern `POST /apps/{id}/events` and the gem-era
//! `POST /apps/{id}/channels/{channel}/events`, and the HTTP call itself. Signing rules live in
//! `signing`; whether a failure matters is the caller's decision (it never fails a request).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::model::Item;
use crate::signing::{self, Credentials};
use crate::socket_id::SocketId;

/// How long one trigger call may take before it is given up (and logged).
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// Which herald endpoint carries the events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Api {
    /// `POST /apps/{id}/events` with a JSON body, as every current Pusher SDK does.
    Events,
    /// `POST /apps/{id}/channels/{channel}/events?name=…`, as the 2011 Ruby gem did.
    Legacy,
}

/// One change to a list, as the other browsers hear about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// An item was created; the payload is the item.
    Created(Item),
    /// An item was changed; the payload is the whole item (backpusher needs `id`).
    Updated(Item),
    /// An item was deleted; the payload is `{"id": id}`.
    Destroyed(i64),
}

impl Change {
    /// The Pusher event name backpusher binds.
    pub fn event_name(&self) -> &'static str {
        match self {
            Change::Created(_) => "created",
            Change::Updated(_) => "updated",
            Change::Destroyed(_) => "destroyed",
        }
    }

    /// The event data: a JSON object encoded as a string.
    pub fn data(&self) -> String {
        match self {
            Change::Created(item) | Change::Updated(item) => {
                serde_json::to_string(item).unwrap_or_else(|_| "{}".to_owned())
            }
            Change::Destroyed(id) => json!({ "id": id }).to_string(),
        }
    }
}

/// Why a trigger did not go through.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    /// Connection refused, timeout, TLS, ...
    #[error("herald unreachable: {0}")]
    Transport(#[from] reqwest::Error),
    /// herald answered, but not with success.
    #[error("herald answered {status}: {body}")]
    Rejected {
        /// HTTP status herald returned.
        status: u16,
        /// Its (plain-text or JSON) explanation.
        body: String,
    },
}

/// Where and as whom to publish.
#[derive(Clone, Debug)]
pub struct Target {
    /// herald's base URL, e.g. `http://127.0.0.1:6001`.
    pub base_url: String,
    /// The Pusher app id (path segment).
    pub app_id: String,
    /// Key and secret to sign with.
    pub credentials: Credentials,
    /// Which endpoint to use.
    pub api: Api,
}

/// Cloneable client that publishes changes to herald.
#[derive(Clone, Debug)]
pub struct Trigger {
    /// Pooled HTTP client (keep-alive to herald).
    http: reqwest::Client,
    /// Destination and credentials.
    target: Target,
}

impl Trigger {
    /// A client for `target` with the standard timeout.
    pub fn new(mut target: Target) -> Result<Self, reqwest::Error> {
        target.base_url = target.base_url.trim_end_matches('/').to_owned();
        let http = reqwest::Client::builder().timeout(TIMEOUT).build()?;
        Ok(Self { http, target })
    }

    /// Publishes `change` on `channel`, leaving out the connection `except`.
    pub async fn publish(
        &self,
        channel: &str,
        change: &Change,
        except: Option<&SocketId>,
    ) -> Result<(), TriggerError> {
        let (path, body, params) = self.request_parts(channel, change, except);
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let query = signing::sign(
            &self.target.credentials,
            "POST",
            &path,
            body.as_bytes(),
            timestamp,
            params,
        );
        let url = format!("{}{}", self.target.base_url, path);
        let response = self
            .http
            .post(url)
            .query(&query)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(TriggerError::Rejected {
            status: status.as_u16(),
            body: body.chars().take(300).collect(),
        })
    }

    /// Path, body and unsigned query parameters of the request for the configured API.
    fn request_parts(
        &self,
        channel: &str,
        change: &Change,
        except: Option<&SocketId>,
    ) -> (String, String, Vec<(String, String)>) {
        let app = &self.target.app_id;
        match self.target.api {
            Api::Events => {
                let mut body = json!({
                    "name": change.event_name(),
                    "channels": [channel],
                    "data": change.data(),
                });
                if let Some(id) = except {
                    body["socket_id"] = json!(id.as_str());
                }
                (format!("/apps/{app}/events"), body.to_string(), Vec::new())
            }
            Api::Legacy => {
                let mut params = vec![("name".to_owned(), change.event_name().to_owned())];
                if let Some(id) = except {
                    params.push(("socket_id".to_owned(), id.as_str().to_owned()));
                }
                let path = format!("/apps/{app}/channels/{channel}/events");
                (path, change.data(), params)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> Item {
        Item {
            id: 7,
            shortdesc: "x".into(),
            isdone: true,
            created_at: 1,
            updated_at: 2,
        }
    }

    #[test]
    fn payloads_match_backpusher_expectations() {
        assert_eq!(Change::Created(item()).event_name(), "created");
        assert_eq!(
            Change::Updated(item()).data(),
            r#"{"id":7,"shortdesc":"x","isdone":true,"created_at":1,"updated_at":2}"#
        );
        assert_eq!(Change::Destroyed(7).data(), r#"{"id":7}"#);
    }
}
