//! The WebSocket transport: the `/app/{key}` upgrade and its handshake checks (app, enabled,
//! quota, protocol version), then one [`session`] task per connection that owns the socket, and
//! [`dispatch`], which turns client messages into calls on the domain.
//!
//! This and `http_api` are the only modules that touch actix.

mod dispatch;
mod session;

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::app::{App, ConnectionSlot};
use crate::auth::api::{param, parse_query};
use crate::protocol::{codes, CloseCode, ServerMessage};
use crate::state::State;

/// Registers the WebSocket route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/app/{key}", web::get().to(upgrade));
}

/// A refused connection: the code and the message sent before closing.
type Refusal = (CloseCode, String);

async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    key: web::Path<String>,
    state: web::Data<State>,
) -> actix_web::Result<HttpResponse> {
    let (response, ws, stream) = actix_ws::handle(&req, body)?;
    let max = state.server.max_frame_bytes;
    let stream = stream
        .max_frame_size(max)
        .aggregate_continuations()
        .max_continuation_size(max);
    match admit(&state, &key, req.query_string()) {
        Ok((app, slot)) => {
            let task = session::run(state.clone().into_inner(), app, slot, ws, stream);
            actix_web::rt::spawn(state.shutdown.track(task));
        }
        Err((code, message)) => {
            tracing::debug!(key = %key.as_str(), code = code.code(), %message, "connection refused");
            actix_web::rt::spawn(refuse(ws, code, message));
        }
    }
    Ok(response)
}

/// The handshake checks, in the order pusher-js can act on them.
fn admit(state: &State, key: &str, query: &str) -> Result<(Arc<App>, ConnectionSlot), Refusal> {
    let query = parse_query(query);
    if let Some(protocol) = param(&query, "protocol") {
        if !matches!(protocol.parse::<u8>(), Ok(4..=7)) {
            return Err((
                CloseCode::UnsupportedProtocol,
                format!("Unsupported protocol version {protocol}; herald speaks 4 to 7"),
            ));
        }
    }
    if state.shutdown.is_triggered() {
        return Err((
            CloseCode::Reconnect,
            "Server is shutting down; reconnect".into(),
        ));
    }
    let app = state.apps.by_key(key).ok_or_else(|| {
        (
            CloseCode::AppNotFound,
            format!("App key {key} not in this cluster. Did you forget to specify the cluster?"),
        )
    })?;
    if !app.config.enabled {
        return Err((CloseCode::AppDisabled, "Application disabled".into()));
    }
    let slot = app
        .connect()
        .ok_or_else(|| (CloseCode::OverQuota, "Account over quota".into()))?;
    Ok((app.clone(), slot))
}

/// Sends `pusher:error` and closes with the same code.
async fn refuse(mut ws: actix_ws::Session, code: CloseCode, message: String) {
    let frame = ServerMessage::Error {
        code: Some(code.code()),
        message: &message,
    }
    .encode();
    if ws.text(frame).await.is_ok() {
        let _ = ws.close(Some(close_reason(code, &message))).await;
    }
}

fn close_reason(code: CloseCode, message: &str) -> actix_ws::CloseReason {
    actix_ws::CloseReason {
        code: actix_ws::CloseCode::Other(code.code()),
        description: Some(codes::close_reason(message).to_owned()),
    }
}
