//! The HTTP API: request bodies read within a size and a deadline ([`body`]), signed requests
//! (one check, [`signed::authenticate`], first in every handler), triggering events
//! (`/events`, `/batch_events`, the 2011 per-channel endpoint), channel queries, and
//! terminating users. [`ApiError`] is the one place that maps failures to statuses.
//!
//! Handlers follow one pattern: authenticate, validate, call the domain, map the result.
//! [`count_calls`] counts each request, its body and its answer's for the app it was for.

mod body;
mod channels;
mod error;
pub(crate) mod events;
mod signed;
mod users;

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpResponse};

pub use body::{hold_unread, BodyLimits};
pub use error::ApiError;

/// Registers the API routes, the health check and the 404 fallback.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(health))
        .route("/apps/{app_id}/events", web::post().to(events::trigger))
        .route("/apps/{app_id}/batch_events", web::post().to(events::batch))
        .route(
            "/apps/{app_id}/channels/{channel}/events",
            web::post().to(events::legacy),
        )
        .route("/apps/{app_id}/channels", web::get().to(channels::list))
        .route(
            "/apps/{app_id}/channels/{channel}",
            web::get().to(channels::show),
        )
        .route(
            "/apps/{app_id}/channels/{channel}/users",
            web::get().to(channels::users),
        )
        .route(
            "/apps/{app_id}/users/{user_id}/terminate_connections",
            web::post().to(users::terminate),
        )
        .route(
            "/users/{user_id}/terminate_connections",
            web::post().to(users::terminate_short),
        );
}

/// Middleware: counts a request in its app's [`ApiCalls`](crate::app::ApiCalls) — once
/// [`signed::authenticate`] has found the app, whatever the answer — with the bytes of its body
/// and of the answer's. Requests for no app (unknown ids and keys, 404s) are not counted, so no
/// label comes from what a client made up.
pub async fn count_calls<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let res = next.call(req).await?;
    let called = res.request().extensions().get::<signed::Called>().cloned();
    if let Some(called) = called {
        let sent = match res.response().body().size() {
            BodySize::Sized(n) => n,
            BodySize::None | BodySize::Stream => 0,
        };
        called.app.api.record(called.body_bytes, sent);
    }
    Ok(res)
}

/// The fallback for unknown routes, as hosted Pusher answers them.
pub async fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain")
        .body("404 NOT FOUND\n")
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("OK")
}

/// A JSON object response with status 200.
fn ok_json(value: serde_json::Value) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(value.to_string())
}
