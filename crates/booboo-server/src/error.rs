//! The API's one error type: typed inside, turned into a status and a
//! `{"detail": …}` body once, here.

use crate::access::Refusal;
use crate::store::StoreError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    pub detail: String,
}

impl AppError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> AppError {
        AppError { status, detail: detail.into() }
    }

    pub fn not_found(what: &str) -> AppError {
        AppError::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }

    pub fn bad_request(detail: impl Into<String>) -> AppError {
        AppError::new(StatusCode::BAD_REQUEST, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> AppError {
        AppError::new(StatusCode::UNAUTHORIZED, detail)
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> AppError {
        match e {
            StoreError::NotFound(m) => AppError::new(StatusCode::NOT_FOUND, m),
            StoreError::Conflict(m) => AppError::new(StatusCode::CONFLICT, m),
            StoreError::Forbidden(m) => AppError::new(StatusCode::FORBIDDEN, m),
            e @ StoreError::DiskFull(_) => {
                tracing::error!("{e}");
                AppError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the server's disk is full, so nothing was changed: free space on the server, then retry",
                )
            }
            other => {
                tracing::error!("{other}");
                AppError::new(StatusCode::SERVICE_UNAVAILABLE, "the database is unavailable; retry shortly")
            }
        }
    }
}

impl From<Refusal> for AppError {
    fn from(refusal: Refusal) -> AppError {
        match refusal {
            Refusal::NotFound(what) => AppError::not_found(what),
            Refusal::NotAdmin { org, change } => AppError::new(StatusCode::FORBIDDEN, change.refusal(&org)),
            Refusal::Store(e) => e.into(),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(serde_json::json!({ "detail": self.detail }))).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(5));
        }
        response
    }
}
