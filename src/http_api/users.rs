//! `POST /apps/{id}/users/{user_id}/terminate_connections`, and the Python SDK's short form
//! without `/apps/{id}` (the app is then found by `auth_key`).

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::body::Body;
use super::error::bad_request;
use super::signed::authenticate;
use super::{ok_json, ApiError};
use crate::protocol::UserId;
use crate::state::State;

pub(super) async fn terminate(
    req: HttpRequest,
    body: Body,
    path: web::Path<(String, String)>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let (app_id, user_id) = path.into_inner();
    let signed = authenticate(&req, &body, &state, Some(&app_id))?;
    close_user(&state, &signed.app, &user_id).await
}

pub(super) async fn terminate_short(
    req: HttpRequest,
    body: Body,
    path: web::Path<String>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let signed = authenticate(&req, &body, &state, None)?;
    close_user(&state, &signed.app, &path).await
}

async fn close_user(
    state: &State,
    app: &crate::app::App,
    user_id: &str,
) -> Result<HttpResponse, ApiError> {
    let user = UserId::parse(user_id, usize::MAX).map_err(|e| bad_request(e.to_string()))?;
    let closed = state.adapter.terminate_user(app, &user).await?;
    tracing::debug!(app_id = %app.config.id, user_id = %user, closed, "terminated user connections");
    Ok(ok_json(json!({})))
}
