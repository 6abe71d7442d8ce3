//! The one place where request failures become HTTP statuses and bodies.
//!
//! Client faults (unknown list or item, bad body) get a clear 4xx with a JSON
//! `{"error": "..."}`; our faults (storage) are logged once and answered with a bare 500.
//! Trigger failures never come here: they do not fail requests.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::model::BodyError;
use crate::store::StoreError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No list has this token.
    #[error("no list with this token")]
    ListNotFound,
    /// No item with this id in this list (or the id is not an integer).
    #[error("no item with this id in this list")]
    ItemNotFound,
    /// The request body could not be read as an item.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// Storage failed: our fault.
    #[error("internal error")]
    Store(#[from] StoreError),
    /// A blocking task could not run, or no randomness for a token: our fault.
    #[error("internal error")]
    Internal,
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::ListNotFound | AppError::ItemNotFound => StatusCode::NOT_FOUND,
            AppError::Body(_) => StatusCode::BAD_REQUEST,
            AppError::Store(_) | AppError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let AppError::Store(e) = self {
            tracing::error!(error = %e, "storage failure");
        }
        HttpResponse::build(self.status_code()).json(json!({ "error": self.to_string() }))
    }
}
