//! The HTTP API: request bodies read within a size and a deadline ([`body`]), signed requests
//! (one check, [`signed::authenticate`], first in every handler), triggering events
//! (`/events`, `/batch_events`, the 2011 per-channel endpoint), channel queries, and
//! terminating users. [`ApiError`] is the one place that maps failures to statuses.
//!
//! Handlers follow one pattern: authenticate, validate, call the domain, map the result.

mod body;
mod channels;
mod error;
pub(crate) mod events;
mod signed;
mod users;

use actix_web::{web, HttpResponse};

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
