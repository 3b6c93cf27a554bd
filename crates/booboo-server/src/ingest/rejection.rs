//! Every way an ingestion request can be refused, each with its status, a
//! reason name for `/metrics` and a sentence for the client's log. All
//! refusals leave through [`Rejection::respond`], which counts them.

use crate::metrics::Metrics;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use booboo_core::booboo_payload::PayloadError;
use booboo_core::sentry_envelope::EnvelopeError;

#[derive(Debug)]
pub enum Rejection {
    MissingToken {
        header: &'static str,
    },
    /// A Sentry request with no key in any of the places SDKs put one.
    MissingSentryKey,
    UnknownToken,
    /// A live key, but of another project than the one in the URL.
    WrongProject {
        url_project: i64,
    },
    /// Two places in one request name different keys or projects.
    ConflictingAuth(String),
    /// The project id in a Sentry URL is not a number.
    InvalidProjectId(String),
    TooLarge {
        limit: usize,
        compressed: bool,
    },
    /// One event of an envelope is over the per-event limit.
    ItemTooLarge {
        index: usize,
        size: usize,
        limit: usize,
    },
    UnsupportedEncoding(String),
    UnreadableBody(String),
    Payload(PayloadError),
    Envelope(EnvelopeError),
    /// An event item of an envelope is not an event.
    EnvelopeItem {
        index: usize,
        error: PayloadError,
    },
    QueueFull,
    /// The database has no space left; nothing of the event was stored.
    DiskFull,
    /// Free space on the data directory is below `--min-free-disk`.
    LowDisk {
        free: u64,
        min: u64,
    },
    StoreUnavailable,
    ShuttingDown,
    /// Request bodies and queued events already fill the memory budget.
    OverBudget {
        limit: usize,
    },
    /// The body did not arrive whole within the body timeout.
    BodyTooSlow {
        seconds: u64,
    },
}

impl Rejection {
    /// A store error before the event reaches the writer (looking up the
    /// key, recording a handshake): a full disk is said as such.
    pub fn from_store(e: crate::store::StoreError) -> Rejection {
        match e {
            crate::store::StoreError::DiskFull(_) => Rejection::DiskFull,
            _ => Rejection::StoreUnavailable,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::MissingToken { .. } | Rejection::MissingSentryKey => "missing_token",
            Rejection::UnknownToken => "unknown_token",
            Rejection::WrongProject { .. } => "wrong_project",
            Rejection::ConflictingAuth(_) => "conflicting_auth",
            Rejection::InvalidProjectId(_) => "invalid_project_id",
            Rejection::TooLarge { .. } | Rejection::ItemTooLarge { .. } => "too_large",
            Rejection::UnsupportedEncoding(_) => "unsupported_encoding",
            Rejection::UnreadableBody(_) => "unreadable_body",
            Rejection::Payload(e) | Rejection::EnvelopeItem { error: e, .. } => e.reason(),
            Rejection::Envelope(e) => e.reason(),
            Rejection::QueueFull => "queue_full",
            Rejection::DiskFull => "disk_full",
            Rejection::LowDisk { .. } => "low_disk",
            Rejection::StoreUnavailable => "store_unavailable",
            Rejection::ShuttingDown => "shutting_down",
            Rejection::OverBudget { .. } => "over_memory_budget",
            Rejection::BodyTooSlow { .. } => "body_timeout",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::MissingToken { .. } | Rejection::MissingSentryKey | Rejection::UnknownToken => {
                StatusCode::UNAUTHORIZED
            }
            Rejection::WrongProject { .. } | Rejection::ConflictingAuth(_) => StatusCode::FORBIDDEN,
            Rejection::InvalidProjectId(_) => StatusCode::BAD_REQUEST,
            Rejection::TooLarge { .. } | Rejection::ItemTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Rejection::UnreadableBody(_) | Rejection::Envelope(_) => StatusCode::BAD_REQUEST,
            Rejection::Payload(PayloadError::NotJson(_) | PayloadError::NotObject(_))
            | Rejection::EnvelopeItem { error: PayloadError::NotJson(_) | PayloadError::NotObject(_), .. } => {
                StatusCode::BAD_REQUEST
            }
            Rejection::Payload(_) | Rejection::EnvelopeItem { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Rejection::QueueFull
            | Rejection::DiskFull
            | Rejection::LowDisk { .. }
            | Rejection::StoreUnavailable
            | Rejection::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::OverBudget { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::BodyTooSlow { .. } => StatusCode::REQUEST_TIMEOUT,
        }
    }

    pub fn detail(&self) -> String {
        match self {
            Rejection::MissingToken { header } => {
                format!("missing {header} header: send the project's token (the part of the DSN before the @)")
            }
            Rejection::MissingSentryKey => "missing Sentry key: send `X-Sentry-Auth: Sentry sentry_key=KEY, \
                 sentry_version=7`, a `sentry_key` query parameter, or the `dsn` in the envelope header \
                 (KEY is the part of the DSN before the @)"
                .to_string(),
            Rejection::UnknownToken => {
                "unknown or revoked token: check the DSN on the project's setup page".to_string()
            }
            Rejection::WrongProject { url_project } => format!(
                "this key belongs to another project than {url_project}: use the project's own DSN \
                 unchanged (its last part is the project id)"
            ),
            Rejection::ConflictingAuth(what) => format!("{what}: send one key, the project's own"),
            Rejection::InvalidProjectId(raw) => {
                format!("{raw:?} is not a project id: the URL must be /api/PROJECT_ID/envelope/ with the number from the DSN")
            }
            Rejection::ItemTooLarge { index, size, limit } => format!(
                "envelope item {index} (an event) is {size} bytes once decompressed, over the limit of {limit} bytes per event"
            ),
            Rejection::TooLarge { limit, compressed: false } => {
                format!("body is larger than the limit of {limit} bytes")
            }
            Rejection::TooLarge { limit, compressed: true } => {
                format!("body is larger than the limit of {limit} bytes once decompressed")
            }
            Rejection::UnsupportedEncoding(enc) => {
                format!("Content-Encoding {enc:?} is not supported: send gzip, deflate, br or an uncompressed body")
            }
            Rejection::UnreadableBody(why) => format!("could not read the body: {why}"),
            Rejection::Payload(e) => e.to_string(),
            Rejection::Envelope(e) => format!("not a Sentry envelope: {e}"),
            Rejection::EnvelopeItem { index, error } => format!("envelope item {index} (an event): {error}"),
            Rejection::QueueFull => "the server is busy storing other events: retry after a second".to_string(),
            Rejection::DiskFull => "the server's disk is full, so nothing of this event was stored: retry later \
                 (its operator must free space)"
                .to_string(),
            Rejection::LowDisk { free, min } => format!(
                "the server's disk has {free} bytes free, below its minimum of {min} (--min-free-disk), so it \
                 refuses events until space is freed: retry later"
            ),
            Rejection::StoreUnavailable => "the database is unavailable: retry in a few seconds".to_string(),
            Rejection::ShuttingDown => "the server is shutting down: retry shortly".to_string(),
            Rejection::OverBudget { limit } => format!(
                "the server is holding {limit} bytes of other requests and queued events (--max-inflight-bytes): \
                 retry after a second"
            ),
            Rejection::BodyTooSlow { seconds } => format!(
                "the body did not arrive within {seconds} seconds (--body-timeout): send it faster or in smaller requests"
            ),
        }
    }

    /// Seconds a client should wait before retrying, for refusals that are
    /// about our load rather than its request.
    fn retry_after(&self) -> Option<u32> {
        match self {
            Rejection::QueueFull | Rejection::OverBudget { .. } => Some(1),
            Rejection::StoreUnavailable | Rejection::ShuttingDown => Some(5),
            // Space comes back only when someone frees it; a minute keeps
            // every client from hammering a full disk.
            Rejection::DiskFull | Rejection::LowDisk { .. } => Some(60),
            _ => None,
        }
    }

    /// Counts the refusal, logs it, and turns it into the answer.
    pub fn respond(self, metrics: &Metrics) -> Response {
        let (status, detail) = self.record(metrics);
        let mut response = (status, Json(serde_json::json!({ "detail": detail }))).into_response();
        if let Some(secs) = self.retry_after() {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }

    /// The same, in the dialect Sentry SDKs understand. They drop whatever a
    /// refusal answered and pause sending only on a rate limit, so a full
    /// queue (the server shedding load) goes out as 429 with `Retry-After`
    /// and `X-Sentry-Rate-Limits`; as a 503 every client would keep sending
    /// into the same full queue. A full disk stays 503 but carries the same
    /// rate limit, so SDKs pause for its `Retry-After` rather than resend at
    /// once. The reason also goes in `X-Sentry-Error`, which older SDKs log.
    pub fn respond_to_sentry(self, metrics: &Metrics) -> Response {
        let (status, detail) = self.record(metrics);
        let shed = matches!(self, Rejection::QueueFull | Rejection::OverBudget { .. });
        let status = if shed { StatusCode::TOO_MANY_REQUESTS } else { status };
        let mut response = (status, Json(serde_json::json!({ "detail": detail }))).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            if shed || matches!(self, Rejection::DiskFull | Rejection::LowDisk { .. }) {
                // Empty categories: every kind of data; the whole server is busy.
                if let Ok(value) = HeaderValue::from_str(&format!("{secs}::organization")) {
                    headers.insert("x-sentry-rate-limits", value);
                }
            }
        }
        let printable: String =
            detail.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect();
        if let Ok(value) = HeaderValue::from_str(&printable) {
            headers.insert("x-sentry-error", value);
        }
        response
    }

    /// Counts and logs the refusal; returns its status and sentence.
    fn record(&self, metrics: &Metrics) -> (StatusCode, String) {
        metrics.rejected(self.reason());
        metrics.shedding().refused(self.reason(), crate::clock::now_millis());
        let status = self.status();
        let detail = self.detail();
        if status.is_server_error() {
            tracing::warn!(reason = self.reason(), "ingestion refused: {detail}");
        } else {
            tracing::debug!(reason = self.reason(), "ingestion refused: {detail}");
        }
        (status, detail)
    }
}
