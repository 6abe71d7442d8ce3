//! The operations endpoints: `/up` (the process is alive) and `/ready` (it takes traffic: 200,
//! or 503 with the reason, e.g. while shutting down) on both listeners, and `/metrics`
//! (Prometheus text) on the metrics listener, which serves nothing else.
//!
//! Handlers only map: readiness is [`State::readiness`], the exposition
//! [`Metrics::render`]. Like `ws` and `http_api`, this is an edge: nothing imports it but
//! `server`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use crate::metrics::{self, Metrics};
use crate::state::State;

/// Registers `/up` and `/ready` (the main listener's share).
pub fn health(cfg: &mut web::ServiceConfig) {
    cfg.route("/up", web::get().to(up))
        .route("/ready", web::get().to(ready));
}

/// Registers everything the metrics listener serves: `/metrics`, `/up` and `/ready`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(scrape))
        .configure(health);
}

async fn up() -> HttpResponse {
    text(StatusCode::OK, "OK")
}

async fn ready(state: web::Data<State>) -> HttpResponse {
    match state.readiness() {
        Ok(()) => text(StatusCode::OK, "ready"),
        Err(reason) => text(StatusCode::SERVICE_UNAVAILABLE, reason.message()),
    }
}

async fn scrape(metrics: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(metrics::CONTENT_TYPE)
        .body(metrics.render())
}

fn text(status: StatusCode, body: &'static str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(format!("{body}\n"))
}
