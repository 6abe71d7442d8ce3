//! [`ApiError`]: every way an API request fails, and the one mapping to an HTTP status with a
//! plain-text body, as hosted Pusher answers.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::auth::api::ApiAuthError;

/// A failed API request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed or breaks a rule.
    #[error("{0}")]
    BadRequest(String),
    /// 401: the signature check failed.
    #[error("{0}")]
    Unauthorized(#[from] ApiAuthError),
    /// 403: the app is disabled.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such app.
    #[error("{0}")]
    NotFound(String),
    /// 413: event data over the limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 408: the request body was not complete by its deadline; the rest is not read (and the
    /// connection is closed, see `body::hold_unread`).
    #[error("Request body not received in time")]
    BodyTimeout,
    /// 413: the request body is over this many bytes; the rest is not read.
    #[error("Request body over {0} bytes")]
    BodyTooLarge(usize),
    /// 503: this node of a cluster cannot reach the cluster engine (Redis) now; answered with a
    /// JSON body, `{"error": …}`, and never after waiting longer than the engine's command
    /// timeout.
    #[error("{0}")]
    Unavailable(String),
}

impl From<crate::adapter::Unavailable> for ApiError {
    fn from(e: crate::adapter::Unavailable) -> Self {
        ApiError::Unavailable(e.to_string())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge(_) | ApiError::BodyTooLarge(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Unavailable(message) = self {
            return HttpResponse::ServiceUnavailable()
                .insert_header(("Retry-After", "1"))
                .json(serde_json::json!({ "error": message }));
        }
        HttpResponse::build(self.status_code())
            .content_type("text/plain; charset=utf-8")
            .body(format!("{self}\n"))
    }
}

/// Shorthand for a 400.
pub fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest(message.into())
}
