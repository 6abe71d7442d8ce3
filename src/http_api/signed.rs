//! The one signature check of the HTTP API: finds the app by `auth_key`, checks it against the
//! app in the path, verifies the request with [`crate::auth::api`], refuses disabled apps. The
//! app it finds is noted on the request ([`Called`]), so the call is counted for that app
//! whatever the answer.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{HttpMessage, HttpRequest};

use super::ApiError;
use crate::app::App;
use crate::auth::api::{self, param, parse_query, ApiAuthError};
use crate::state::State;

/// A verified request: its app and decoded query.
pub struct Signed {
    /// The app the request is for.
    pub app: Arc<App>,
    /// The decoded query parameters.
    pub query: Vec<(String, String)>,
}

/// The app a request was for and the size of its body, noted on the request for
/// [`count_calls`](super::count_calls).
#[derive(Debug, Clone)]
pub struct Called {
    /// The app found from the request's id and key.
    pub app: Arc<App>,
    /// Its body, in bytes.
    pub body_bytes: u64,
}

/// Verifies `req` with `body`; `path_app_id` is the `{app_id}` of the route, if it has one.
pub fn authenticate(
    req: &HttpRequest,
    body: &[u8],
    state: &State,
    path_app_id: Option<&str>,
) -> Result<Signed, ApiError> {
    let query = parse_query(req.query_string());
    let key = param(&query, "auth_key").ok_or(ApiAuthError::KeyRequired)?;
    let app = match path_app_id {
        Some(id) => {
            let app = state
                .apps
                .by_id(id)
                .ok_or_else(|| ApiError::NotFound(format!("Unknown app id {id}")))?;
            if app.config.key != key {
                return Err(match state.apps.by_key(key) {
                    Some(_) => ApiAuthError::AppMismatch,
                    None => ApiAuthError::UnknownKey,
                }
                .into());
            }
            app
        }
        None => state.apps.by_key(key).ok_or(ApiAuthError::UnknownKey)?,
    };
    req.extensions_mut().insert(Called {
        app: app.clone(),
        body_bytes: body.len() as u64,
    });
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let request = api::Request {
        method: req.method().as_str(),
        path: req.uri().path(),
        query: &query,
        body,
    };
    api::verify(&app.config.secret, request, now)?;
    if !app.config.enabled {
        return Err(ApiError::Forbidden("Application disabled".into()));
    }
    Ok(Signed {
        app: app.clone(),
        query,
    })
}
