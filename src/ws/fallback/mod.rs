//! pusher-js's HTTP fallback transports, `xhr_streaming` and `xhr_polling`, for clients whose
//! WebSocket cannot connect. Under pusher-js's `httpPath` (`/pusher`) and the app's key, each
//! client names its session, `{server}/{session}`, in the path of every request:
//!
//! - `POST …/xhr_streaming` receives: a chunked response of SockJS lines ([`sockjs`]) for as long
//!   as it lasts; `POST …/xhr` receives one line per request (long polling). The first receiving
//!   request of an unknown session opens it, with the checks of a WebSocket handshake.
//! - `POST …/xhr_send` sends: a JSON array of Pusher messages, handed to the session's task.
//! - `OPTIONS` on any of them: the CORS preflight browsers make for pages of another origin.
//!
//! A session is an ordinary connection ([`session`]) run by the same session loop as a
//! WebSocket. Requests for a session that does not exist (any more) are answered 404; a send
//! body that does not parse, 400, and the session goes on; one over `max_frame_bytes` closes
//! the session as an oversized WebSocket frame does (1009). Sessions live on the node that
//! opened them: a balancer must route `/pusher/app/{key}/{server}/{session}/…` by that path.

mod receiver;
mod session;

use std::time::Duration;

use actix_web::http::{header, Method};
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::time::{timeout_at, Instant};

use crate::protocol::{codes, sockjs, CloseCode, ServerMessage};
use crate::state::State;
use receiver::{Mode, Receiver};
pub use session::Sessions;

/// Where pusher-js sends its HTTP transports' requests (`httpPath`, default `/pusher`).
const PATH: &str = "/pusher/app/{key}/{server}/{session}";

/// The longest `{server}` or `{session}` part of a path accepted (pusher-js's are 1–3 and 8
/// characters).
const MAX_ID_PART: usize = 64;

/// The longest a receiving request waits without a frame before a heartbeat (SockJS's 25 s),
/// unless `activity_timeout` is shorter.
const MAX_HEARTBEAT: Duration = Duration::from_secs(25);

/// The path parameters: app key, server, session.
type SessionPath = web::Path<(String, String, String)>;

/// Registers the fallback routes, with `sessions` as app data.
pub fn configure(cfg: &mut web::ServiceConfig, sessions: &std::sync::Arc<Sessions>) {
    cfg.app_data(web::Data::from(sessions.clone()));
    let preflight = || web::method(Method::OPTIONS).to(preflight);
    for (kind, mode) in [("xhr_streaming", Mode::Streaming), ("xhr", Mode::Polling)] {
        let handler = move |req, path, state, sessions| receive(req, path, state, sessions, mode);
        cfg.service(
            web::resource(format!("{PATH}/{kind}"))
                .route(web::post().to(handler))
                .route(preflight()),
        );
    }
    cfg.service(
        web::resource(format!("{PATH}/xhr_send"))
            .route(web::post().to(send))
            .route(preflight()),
    );
}

/// A receiving request: the session's frames from now on, opening the session if it is new.
async fn receive(
    req: HttpRequest,
    path: SessionPath,
    state: web::Data<State>,
    sessions: web::Data<Sessions>,
    mode: Mode,
) -> HttpResponse {
    let (key, server, session) = path.into_inner();
    let Some(id) = session_id(&key, &server, &session) else {
        return not_found();
    };
    let sessions = sessions.into_inner();
    let state = state.into_inner();
    match sessions.open(&state, id, &key, req.query_string()).await {
        Ok((session, opened)) => {
            let every = MAX_HEARTBEAT.min(state.server.activity_timeout);
            let receiver = Receiver::new(session, mode, opened, every);
            answer(HttpResponse::Ok())
                .content_type("application/javascript; charset=UTF-8")
                .streaming(receiver)
        }
        Err((code, message)) => {
            tracing::debug!(%key, code = code.code(), %message, "connection refused");
            state.closes.count(code);
            refused(code, &message)
        }
    }
}

/// A refused session's one answer: open, the `pusher:error`, closed with the same code.
fn refused(code: CloseCode, message: &str) -> HttpResponse {
    let error = ServerMessage::Error {
        code: Some(code.code()),
        message,
    }
    .encode();
    let body = format!(
        "{}{}{}",
        sockjs::OPEN,
        sockjs::messages([error.as_str()]),
        sockjs::close(code.code(), codes::close_reason(message))
    );
    answer(HttpResponse::Ok())
        .content_type("application/javascript; charset=UTF-8")
        .body(body)
}

/// `xhr_send`: the body's messages go to the session's task, in order.
async fn send(
    path: SessionPath,
    state: web::Data<State>,
    sessions: web::Data<Sessions>,
    payload: web::Payload,
) -> HttpResponse {
    let (key, server, session) = path.into_inner();
    let Some(session) = session_id(&key, &server, &session).and_then(|id| sessions.get(&id)) else {
        return not_found();
    };
    let server = &state.server;
    let deadline = Instant::now() + server.request_body_timeout;
    let body = match read_body(payload, server.max_frame_bytes, deadline).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            // As a WebSocket frame over the limit.
            session.close(CloseCode::MessageTooBig, "Message too big");
            return plain(HttpResponse::PayloadTooLarge(), "Message too big");
        }
        Err(BodyError::Timeout) => {
            return plain(HttpResponse::RequestTimeout(), "Body not received in time")
        }
        Err(BodyError::Broken) => return plain(HttpResponse::BadRequest(), "Body not readable"),
    };
    let messages = match sockjs::decode_send(&body) {
        Ok(messages) => messages,
        Err(e) => return plain(HttpResponse::BadRequest(), &e.to_string()),
    };
    match session.deliver(messages).await {
        Ok(()) => answer(HttpResponse::NoContent()).finish(),
        Err(_) => not_found(),
    }
}

/// The CORS preflight: any origin may use the transports (pusher-js sends no credentials).
async fn preflight(req: HttpRequest) -> HttpResponse {
    let headers = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or(header::HeaderValue::from_static("Content-Type"));
    answer(HttpResponse::NoContent())
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "OPTIONS, POST"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, headers))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "31536000"))
        .finish()
}

/// Why a send body was not read.
enum BodyError {
    TooLarge,
    Timeout,
    Broken,
}

/// Reads a send body of at most `limit` bytes by `deadline`.
async fn read_body(
    mut payload: web::Payload,
    limit: usize,
    deadline: Instant,
) -> Result<Bytes, BodyError> {
    let mut body = BytesMut::new();
    loop {
        match timeout_at(deadline, payload.next()).await {
            Err(_) => return Err(BodyError::Timeout),
            Ok(None) => return Ok(body.freeze()),
            Ok(Some(Err(_))) => return Err(BodyError::Broken),
            Ok(Some(Ok(chunk))) if body.len() + chunk.len() > limit => {
                return Err(BodyError::TooLarge)
            }
            Ok(Some(Ok(chunk))) => body.extend_from_slice(&chunk),
        }
    }
}

/// The session's id, `{key}/{server}/{session}`, if the parts are ones a client may choose:
/// not empty, no dot (as SockJS), not overlong.
fn session_id(key: &str, server: &str, session: &str) -> Option<String> {
    let fits = |part: &str| !part.is_empty() && part.len() <= MAX_ID_PART && !part.contains('.');
    (fits(server) && fits(session)).then(|| format!("{key}/{server}/{session}"))
}

/// Every answer of the transports: readable by pages of any origin, never cached.
fn answer(mut builder: HttpResponseBuilder) -> HttpResponseBuilder {
    builder
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .insert_header((
            header::CACHE_CONTROL,
            "no-store, no-cache, no-transform, must-revalidate, max-age=0",
        ))
        // Proxies that buffer responses (nginx) pass a stream on as it comes.
        .insert_header(("X-Accel-Buffering", "no"));
    builder
}

fn plain(builder: HttpResponseBuilder, text: &str) -> HttpResponse {
    answer(builder)
        .content_type("text/plain; charset=UTF-8")
        .body(format!("{text}\n"))
}

/// An unknown session, or one that has ended.
fn not_found() -> HttpResponse {
    plain(HttpResponse::NotFound(), "404 NOT FOUND")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_as_pusher_js_makes_them() {
        assert_eq!(
            session_id("app-key", "417", "v3kq0a1b").as_deref(),
            Some("app-key/417/v3kq0a1b")
        );
        assert_eq!(session_id("k", "", "s"), None);
        assert_eq!(session_id("k", "1", "a.b"), None);
        assert_eq!(session_id("k", "1", &"s".repeat(MAX_ID_PART + 1)), None);
    }
}
