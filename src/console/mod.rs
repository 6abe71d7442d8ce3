//! The debug console: a page, served by herald on a listener of its own (off by default,
//! `[console]`), that shows one app's activity live, its occupied channels, and sends it test
//! events.
//!
//! - [`activity`]: the kinds of things a console shows, with their fields.
//! - [`feed`]: what happened in an app, reported by the domain where it happens, sent to the
//!   consoles watching it (a no-op when none does). The domain depends on it; it depends on
//!   nothing of the edges.
//! - [`login`]: the token, sessions, the limit on failed logins.
//! - [`stream`]: a console's log as Server-Sent Events, sampled at a fixed rate.
//! - this module: the routes (the console is an edge, like `http_api`; it triggers through the
//!   REST API's own path, [`crate::http_api::events::trigger_body`]) and the page's files,
//!   embedded in the binary (`assets/`, hand-written HTML, JS and CSS).
//!
//! # Routes
//!
//! | route | what |
//! |---|---|
//! | `GET /`, `/console.js`, `/console.css` | the page |
//! | `POST /api/login` `{"token"}` | a session cookie (`HttpOnly`, `SameSite=Strict`) and the session's CSRF token; 401 on a wrong token, 429 with `Retry-After` after [`login::MAX_FAILURES`] in a minute from one address |
//! | `POST /api/logout` | ends the session |
//! | `GET /api/session` | the apps (id, key, enabled: never a secret) and the CSRF token |
//! | `GET /api/apps/{id}/feed` | the app's log (`text/event-stream`) |
//! | `GET /api/apps/{id}/channels` | occupied channels with counts and presence members (the cluster's, on a cluster) |
//! | `POST /api/apps/{id}/events` | the Event Creator: the body of the REST `/events`, triggered as the REST API does |
//!
//! Every `/api` route but login wants the session cookie; `POST`s also want the session's CSRF
//! token in `X-Console-Csrf` and, if the browser sends one, an `Origin` of this very host, so no
//! other site can make a logged-in browser trigger an event.

pub mod activity;
pub mod feed;
pub mod login;
pub mod stream;

use std::net::IpAddr;
use std::sync::Arc;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;
use serde_json::{json, Value};

pub use feed::{Activity, Data, Feed, Relayed};
use login::{Gate, Refused, Session};

use crate::app::App;
use crate::http_api::ApiError;
use crate::protocol::ChannelKind;
use crate::state::State;

/// The session cookie's name.
pub const COOKIE: &str = "herald_console";
/// The header state-changing requests carry the session's CSRF token in.
pub const CSRF_HEADER: &str = "x-console-csrf";
/// Most channels the channels view lists.
const MAX_CHANNELS: usize = 500;
/// Most members listed per presence channel.
const MAX_MEMBERS: usize = 100;
/// Largest Event Creator request body.
const MAX_BODY: usize = 1024 * 1024;

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/console.js");
const STYLE: &str = include_str!("assets/console.css");

/// A console request that failed; the one mapping to a status and a JSON body `{"error": …}`.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// 401: no session, or a wrong token.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 429: too many failed logins from this address.
    #[error("too many failed logins; try again later")]
    TooMany(std::time::Duration),
    /// 403: a state-changing request without the CSRF token or from another origin.
    #[error("{0}")]
    Forbidden(&'static str),
    /// 404: no such app.
    #[error("no app with this id")]
    UnknownApp,
    /// What the REST API would answer (the Event Creator, the channel queries).
    #[error("{0}")]
    Api(#[from] ApiError),
}

impl From<crate::adapter::Unavailable> for ConsoleError {
    fn from(e: crate::adapter::Unavailable) -> Self {
        ConsoleError::Api(e.into())
    }
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            ConsoleError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ConsoleError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            ConsoleError::Forbidden(_) => StatusCode::FORBIDDEN,
            ConsoleError::UnknownApp => StatusCode::NOT_FOUND,
            ConsoleError::Api(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let ConsoleError::TooMany(after) = self {
            response.insert_header((header::RETRY_AFTER, after.as_secs().max(1).to_string()));
        }
        response
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(json!({ "error": self.to_string().trim_end() }))
    }
}

/// Registers the console's routes; `gate` holds its token and sessions.
pub fn configure(cfg: &mut web::ServiceConfig, gate: Arc<Gate>) {
    cfg.app_data(web::Data::from(gate))
        .app_data(web::PayloadConfig::new(MAX_BODY))
        .route("/", web::get().to(index))
        .route("/console.js", web::get().to(script))
        .route("/console.css", web::get().to(style))
        .route("/api/login", web::post().to(log_in))
        .route("/api/logout", web::post().to(log_out))
        .route("/api/session", web::get().to(session))
        .route("/api/apps/{app_id}/feed", web::get().to(watch))
        .route("/api/apps/{app_id}/channels", web::get().to(channels))
        .route("/api/apps/{app_id}/events", web::post().to(trigger));
}

/// A response of the page's own files, with headers that keep it to itself.
fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX)
}

async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}

fn no_store(mut response: HttpResponse) -> HttpResponse {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Deserialize)]
struct Login {
    token: String,
}

async fn log_in(
    req: HttpRequest,
    body: web::Bytes,
    gate: web::Data<Gate>,
) -> Result<HttpResponse, ConsoleError> {
    same_origin(&req)?;
    let from = req
        .peer_addr()
        .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    let token = serde_json::from_slice::<Login>(&body)
        .map(|l| l.token)
        .unwrap_or_default();
    let (id, session) = gate.log_in(from, &token).map_err(|refused| match refused {
        Refused::WrongToken => ConsoleError::Unauthorized("wrong token"),
        Refused::TooMany(after) => ConsoleError::TooMany(after),
    })?;
    let cookie = format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        gate.ttl().as_secs()
    );
    Ok(no_store(
        HttpResponse::Ok()
            .insert_header((header::SET_COOKIE, cookie))
            .json(json!({ "csrf": session.csrf })),
    ))
}

async fn log_out(req: HttpRequest, gate: web::Data<Gate>) -> Result<HttpResponse, ConsoleError> {
    let (id, _) = changing(&req, &gate)?;
    gate.log_out(&id);
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    Ok(no_store(
        HttpResponse::Ok()
            .insert_header((header::SET_COOKIE, cookie))
            .json(json!({})),
    ))
}

/// The request's session, from its cookie.
fn logged_in(req: &HttpRequest, gate: &Gate) -> Result<(String, Session), ConsoleError> {
    let id = session_cookie(req).ok_or(ConsoleError::Unauthorized("log in first"))?;
    let session = gate.session(&id).ok_or(ConsoleError::Unauthorized(
        "the session is over; log in again",
    ))?;
    Ok((id, session))
}

/// The value of the session cookie, from the `Cookie` headers.
fn session_cookie(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// The session of a state-changing request: the cookie, the CSRF header, and this origin.
fn changing(req: &HttpRequest, gate: &Gate) -> Result<(String, Session), ConsoleError> {
    let (id, session) = logged_in(req, gate)?;
    let given = req
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !login::csrf_matches(&session, given) {
        return Err(ConsoleError::Forbidden("missing or wrong CSRF token"));
    }
    same_origin(req)?;
    Ok((id, session))
}

/// Refuses a request whose `Origin` (sent by browsers with every POST) is not this host.
fn same_origin(req: &HttpRequest) -> Result<(), ConsoleError> {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return Ok(());
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    let origin = origin.to_str().ok();
    let matches = match (origin, host) {
        (Some(origin), Some(host)) => {
            let bare = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            bare == Some(host)
        }
        _ => false,
    };
    match matches {
        true => Ok(()),
        false => Err(ConsoleError::Forbidden("cross-origin request refused")),
    }
}

fn the_app<'a>(state: &'a State, id: &str) -> Result<&'a Arc<App>, ConsoleError> {
    state.apps.by_id(id).ok_or(ConsoleError::UnknownApp)
}

async fn session(
    req: HttpRequest,
    gate: web::Data<Gate>,
    state: web::Data<State>,
) -> Result<HttpResponse, ConsoleError> {
    let (_, session) = logged_in(&req, &gate)?;
    let mut apps: Vec<Value> = state
        .apps
        .iter()
        .map(|app| {
            json!({
                "id": app.config.id,
                "key": app.config.key,
                "enabled": app.config.enabled,
            })
        })
        .collect();
    apps.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    #[cfg(feature = "redis")]
    let cluster = state.adapter.cluster().is_some();
    #[cfg(not(feature = "redis"))]
    let cluster = false;
    Ok(no_store(HttpResponse::Ok().json(json!({
        "apps": apps,
        "csrf": session.csrf,
        "cluster": cluster,
        "rate": stream::RATE,
    }))))
}

async fn watch(
    req: HttpRequest,
    path: web::Path<String>,
    gate: web::Data<Gate>,
    state: web::Data<State>,
) -> Result<HttpResponse, ConsoleError> {
    logged_in(&req, &gate)?;
    let app = the_app(&state, &path)?;
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream::events(app.console.watch())))
}

async fn channels(
    req: HttpRequest,
    path: web::Path<String>,
    gate: web::Data<Gate>,
    state: web::Data<State>,
) -> Result<HttpResponse, ConsoleError> {
    logged_in(&req, &gate)?;
    let app = the_app(&state, &path)?;
    let mut occupied = state.adapter.channels(app, "").await?;
    occupied.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    let total = occupied.len();
    let mut list = Vec::with_capacity(total.min(MAX_CHANNELS));
    for (name, info) in occupied.into_iter().take(MAX_CHANNELS) {
        let mut channel = json!({
            "name": name.as_str(),
            "subscription_count": info.subscription_count,
        });
        if name.kind() == ChannelKind::Presence {
            let members = state.adapter.members(app, &name).await?;
            let shown: Vec<&str> = members
                .iter()
                .take(MAX_MEMBERS)
                .map(|m| m.as_str())
                .collect();
            channel["user_count"] = members.len().into();
            channel["members"] = shown.into();
        }
        list.push(channel);
    }
    Ok(no_store(
        HttpResponse::Ok().json(json!({ "channels": list, "total": total })),
    ))
}

async fn trigger(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    gate: web::Data<Gate>,
    state: web::Data<State>,
) -> Result<HttpResponse, ConsoleError> {
    changing(&req, &gate)?;
    let app = the_app(&state, &path)?;
    if !app.config.enabled {
        return Err(ApiError::Forbidden("Application disabled".into()).into());
    }
    let answer = crate::http_api::events::trigger_body(&state, app, &body).await?;
    Ok(no_store(HttpResponse::Ok().json(answer)))
}
