//! A signed HTTP API client that keeps its connection alive when the server lets it, and
//! counts how often it had to open a new one (so reports can say whether the server honours
//! keep-alive). One [`Publisher`] is one sequential HTTP/1.1 connection.

use crate::target::Target;
use crate::wire;
use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::timeout;

/// How long one API request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What a request came back with.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body text (for error reports).
    pub body: String,
}

/// One keep-alive HTTP connection to the API.
pub struct Publisher {
    target: Arc<Target>,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// TCP connections opened so far.
    pub connections_opened: u64,
    /// Responses that carried `Connection: close`.
    pub close_responses: u64,
}

impl Publisher {
    /// A publisher that connects on first use.
    pub fn new(target: Arc<Target>) -> Self {
        Self {
            target,
            sender: None,
            connections_opened: 0,
            close_responses: 0,
        }
    }

    /// `POST /apps/{id}/{endpoint}` with a JSON body, signed.
    pub async fn post(&mut self, endpoint: &str, body: String) -> Result<Reply> {
        let path = format!("/apps/{}/{}", self.target.app.id, endpoint);
        let query = self
            .target
            .app
            .signed_query("POST", &path, body.as_bytes(), wire::now_s());
        let request = Request::post(format!("{path}?{query}"))
            .header(HOST, self.target.api_authority.as_str())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))?;
        timeout(REQUEST_TIMEOUT, self.send(request))
            .await
            .context("API request timed out")?
    }

    async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<Reply> {
        let sender = self.ready_sender().await?;
        let response = match sender.try_send_request(request).await {
            Ok(response) => response,
            Err(mut error) => {
                self.sender = None;
                // The server closed an idle connection before the request went out: the
                // request was never sent, so sending it on a fresh connection is safe.
                let Some(request) = error.take_message() else {
                    return Err(error.into_error().into());
                };
                self.ready_sender().await?.send_request(request).await?
            }
        };
        let closing = response
            .headers()
            .get(CONNECTION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        if closing {
            self.close_responses += 1;
            self.sender = None;
        }
        Ok(Reply {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// The live connection, opening a new one when there is none or the server closed it.
    async fn ready_sender(&mut self) -> Result<&mut SendRequest<Full<Bytes>>> {
        if let Some(sender) = self.sender.as_mut() {
            if sender.ready().await.is_err() {
                self.sender = None;
            }
        }
        if self.sender.is_none() {
            let tcp = TcpStream::connect(self.target.api_addr)
                .await
                .context("API connect")?;
            tcp.set_nodelay(true)?;
            let (mut sender, connection) = http1::handshake(TokioIo::new(tcp)).await?;
            tokio::spawn(async move {
                // The connection ends when either side closes it; that is not an error here.
                let _ = connection.await;
            });
            self.connections_opened += 1;
            sender.ready().await?;
            self.sender = Some(sender);
        }
        self.sender.as_mut().context("no API connection")
    }
}
