//! Every way an ingestion request can be refused, each with its status, a
//! reason name for `/metrics` and a sentence for the client's log. All
//! refusals leave through [`Rejection::respond`], which counts them.

use crate::metrics::Metrics;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use booboo_core::booboo_payload::PayloadError;

#[derive(Debug)]
pub enum Rejection {
    MissingToken { header: &'static str },
    UnknownToken,
    TooLarge { limit: usize, compressed: bool },
    UnsupportedEncoding(String),
    UnreadableBody(String),
    Payload(PayloadError),
    QueueFull,
    StoreUnavailable,
    ShuttingDown,
}

impl Rejection {
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::MissingToken { .. } => "missing_token",
            Rejection::UnknownToken => "unknown_token",
            Rejection::TooLarge { .. } => "too_large",
            Rejection::UnsupportedEncoding(_) => "unsupported_encoding",
            Rejection::UnreadableBody(_) => "unreadable_body",
            Rejection::Payload(e) => e.reason(),
            Rejection::QueueFull => "queue_full",
            Rejection::StoreUnavailable => "store_unavailable",
            Rejection::ShuttingDown => "shutting_down",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::MissingToken { .. } | Rejection::UnknownToken => StatusCode::UNAUTHORIZED,
            Rejection::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Rejection::UnreadableBody(_) => StatusCode::BAD_REQUEST,
            Rejection::Payload(PayloadError::NotJson(_) | PayloadError::NotObject(_)) => StatusCode::BAD_REQUEST,
            Rejection::Payload(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Rejection::QueueFull | Rejection::StoreUnavailable | Rejection::ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    pub fn detail(&self) -> String {
        match self {
            Rejection::MissingToken { header } => {
                format!("missing {header} header: send the project's token (the part of the DSN before the @)")
            }
            Rejection::UnknownToken => {
                "unknown or revoked token: check the DSN on the project's setup page".to_string()
            }
            Rejection::TooLarge { limit, compressed: false } => {
                format!("body is larger than the limit of {limit} bytes")
            }
            Rejection::TooLarge { limit, compressed: true } => {
                format!("body is larger than the limit of {limit} bytes once decompressed")
            }
            Rejection::UnsupportedEncoding(enc) => {
                format!("Content-Encoding {enc:?} is not supported: send gzip, deflate or an uncompressed body")
            }
            Rejection::UnreadableBody(why) => format!("could not read the body: {why}"),
            Rejection::Payload(e) => e.to_string(),
            Rejection::QueueFull => "the server is busy storing other events: retry after a second".to_string(),
            Rejection::StoreUnavailable => "the database is unavailable: retry in a few seconds".to_string(),
            Rejection::ShuttingDown => "the server is shutting down: retry shortly".to_string(),
        }
    }

    /// Seconds a client should wait before retrying, for refusals that are
    /// about our load rather than its request.
    fn retry_after(&self) -> Option<u32> {
        match self {
            Rejection::QueueFull => Some(1),
            Rejection::StoreUnavailable | Rejection::ShuttingDown => Some(5),
            _ => None,
        }
    }

    /// Counts the refusal, logs it, and turns it into the answer.
    pub fn respond(self, metrics: &Metrics) -> Response {
        metrics.rejected(self.reason());
        let status = self.status();
        let detail = self.detail();
        if status.is_server_error() {
            tracing::warn!(reason = self.reason(), "ingestion refused: {detail}");
        } else {
            tracing::debug!(reason = self.reason(), "ingestion refused: {detail}");
        }
        let mut response = (status, Json(serde_json::json!({ "detail": detail }))).into_response();
        if let Some(secs) = self.retry_after() {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
