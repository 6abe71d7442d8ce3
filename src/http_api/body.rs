//! API request bodies. [`Body`] is one read whole before the handler runs, within two bounds
//! set once in [`BodyLimits`]: its size (413 as soon as a `Content-Length` or what arrived is
//! over it) and its time (408 past a deadline that starts at `request_body_timeout` after the
//! head and moves one second later for every `request_body_min_rate` bytes received).
//! [`hold_unread`] makes sure that a body left unread, whatever the answer, ends its connection.
//! Together they bound how long a client that trickles a body, or never sends it, holds a
//! connection. Nothing here looks at what a body says.

use std::cell::RefCell;
use std::ops::Deref;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_http::error::PayloadError;
use actix_http::HttpMessage;
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpRequest};
use bytes::{Bytes, BytesMut};
use futures_util::future::LocalBoxFuture;
use futures_util::{Stream, StreamExt};
use tokio::time::{timeout_at, Instant};

use super::error::{bad_request, ApiError};
use crate::config::Config;

/// Room reserved up front for a body, whatever its `Content-Length` says: more is allocated
/// only as bytes arrive.
const INITIAL_CAPACITY: usize = 16 * 1024;

/// How large and how slow a request body may be; app data, built once by `server`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BodyLimits {
    /// The largest body, in bytes.
    pub max_bytes: usize,
    /// The time allowed before the rate allowance (`request_body_timeout`).
    pub timeout: Duration,
    /// Bytes that earn one more second (`request_body_min_rate`); 0 = none.
    pub min_rate: usize,
}

impl BodyLimits {
    /// The limits for `config`: the largest body holds a full batch of maximum-size events,
    /// JSON-escaped, with room to spare, and is never below actix's default of 256 KiB.
    pub fn new(config: &Config) -> BodyLimits {
        let largest = config
            .apps
            .iter()
            .map(|a| a.max_event_data_bytes * a.max_batch_events.max(1))
            .max()
            .unwrap_or(0);
        BodyLimits {
            max_bytes: (largest * 2 + 64 * 1024).max(256 * 1024),
            timeout: config.server.request_body_timeout,
            min_rate: config.server.request_body_min_rate,
        }
    }

    /// When a body begun at `started`, of which `received` bytes have arrived, must be complete.
    fn deadline(&self, started: Instant, received: usize) -> Instant {
        let allowance = match self.min_rate {
            0 => Duration::ZERO,
            rate => Duration::from_secs_f64(received as f64 / rate as f64),
        };
        started + self.timeout + allowance
    }
}

/// A request body, read whole within its [`BodyLimits`].
#[derive(Debug)]
pub struct Body(Bytes);

impl Deref for Body {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl FromRequest for Body {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Body, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limits = req
            .app_data::<BodyLimits>()
            .copied()
            .unwrap_or_else(|| BodyLimits::new(&Config::default()));
        let length = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        Box::pin(read(payload.take(), length, limits))
    }
}

/// Reads `payload` to its end, or fails as soon as it is over the size or past the deadline.
async fn read(
    mut payload: Payload,
    length: Option<usize>,
    limits: BodyLimits,
) -> Result<Body, ApiError> {
    if length.is_some_and(|n| n > limits.max_bytes) {
        return Err(ApiError::BodyTooLarge(limits.max_bytes));
    }
    let started = Instant::now();
    let mut body = BytesMut::with_capacity(length.unwrap_or(0).min(INITIAL_CAPACITY));
    loop {
        let deadline = limits.deadline(started, body.len());
        let next = timeout_at(deadline, payload.next())
            .await
            .map_err(|_| ApiError::BodyTimeout)?;
        match next {
            None => return Ok(Body(body.freeze())),
            Some(Ok(chunk)) if body.len() + chunk.len() > limits.max_bytes => {
                return Err(ApiError::BodyTooLarge(limits.max_bytes))
            }
            Some(Ok(chunk)) => body.extend_from_slice(&chunk),
            Some(Err(e)) => {
                return Err(bad_request(format!("Could not read the request body: {e}")))
            }
        }
    }
}

/// Middleware: the request's payload lives as long as the response's body, so that actix-http
/// closes a connection whose request body was not read to its end once the response is out.
/// Without it, a chunked body that the handler dropped unread (a 404, a 408, a 413) is read
/// and discarded after the response for as long as the client keeps sending, with no deadline
/// (actix-http 3.20); a body with a `Content-Length` gets its connection closed either way.
pub async fn hold_unread(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let payload = Shared(Rc::new(RefCell::new(req.take_payload())));
    req.set_payload(Payload::from(
        Box::pin(payload.clone()) as Pin<Box<dyn Stream<Item = _>>>
    ));
    let response = next.call(req).await?;
    Ok(response.map_body(|_, body| Holding {
        body: BoxBody::new(body),
        _payload: payload,
    }))
}

/// The request's payload, read by the handler and held by the response.
#[derive(Clone)]
struct Shared(Rc<RefCell<Payload>>);

impl Stream for Shared {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.borrow_mut().poll_next_unpin(cx)
    }
}

/// A response body that holds the request's payload until the body has been sent.
struct Holding {
    body: BoxBody,
    _payload: Shared,
}

impl MessageBody for Holding {
    type Error = <BoxBody as MessageBody>::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.body).poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(timeout_ms: u64, min_rate: usize) -> BodyLimits {
        BodyLimits {
            max_bytes: 1024,
            timeout: Duration::from_millis(timeout_ms),
            min_rate,
        }
    }

    #[test]
    fn each_min_rate_bytes_received_earn_a_second() {
        let start = Instant::now();
        let l = limits(10_000, 4096);
        assert_eq!(l.deadline(start, 0), start + Duration::from_secs(10));
        assert_eq!(l.deadline(start, 4096), start + Duration::from_secs(11));
        assert_eq!(
            l.deadline(start, 2048),
            start + Duration::from_millis(10_500)
        );
        let fixed = limits(10_000, 0);
        assert_eq!(
            fixed.deadline(start, 1 << 20),
            start + Duration::from_secs(10)
        );
    }

    #[test]
    fn the_largest_body_holds_a_full_batch_and_never_less_than_256_kib() {
        let config = Config::load(None, &|_| None).unwrap();
        assert_eq!(BodyLimits::new(&config).max_bytes, 10_240 * 10 * 2 + 65_536);
        let big =
            "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\nmax_event_data_bytes = 300000\n";
        let config = Config::load(Some(big), &|_| None).unwrap();
        assert_eq!(
            BodyLimits::new(&config).max_bytes,
            300_000 * 10 * 2 + 65_536
        );
        let small =
            "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\nmax_event_data_bytes = 10\n";
        let config = Config::load(Some(small), &|_| None).unwrap();
        assert_eq!(BodyLimits::new(&config).max_bytes, 256 * 1024);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_is_cut_at_its_deadline() {
        let (mut sender, payload) = actix_http::h1::Payload::create(false);
        sender.feed_data(Bytes::from_static(b"12"));
        let started = Instant::now();
        let body = read(Payload::from(payload), Some(4), limits(1000, 1)).await;
        // Two bytes arrived: two seconds more than the first.
        assert!(matches!(body, Err(ApiError::BodyTimeout)));
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        drop(sender);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused() {
        let (_sender, payload) = actix_http::h1::Payload::create(false);
        let body = read(Payload::from(payload), Some(1025), limits(1000, 0)).await;
        assert!(matches!(body, Err(ApiError::BodyTooLarge(1024))));
        let (mut sender, payload) = actix_http::h1::Payload::create(false);
        sender.feed_data(Bytes::from(vec![b'x'; 1025]));
        let body = read(Payload::from(payload), None, limits(1000, 0)).await;
        assert!(matches!(body, Err(ApiError::BodyTooLarge(1024))));
        let (mut sender, payload) = actix_http::h1::Payload::create(false);
        sender.feed_data(Bytes::from_static(b"{}"));
        sender.feed_eof();
        let body = read(Payload::from(payload), Some(2), limits(1000, 0)).await;
        assert_eq!(body.map(|b| b.to_vec()).ok(), Some(b"{}".to_vec()));
    }
}
