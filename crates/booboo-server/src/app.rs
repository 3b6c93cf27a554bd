//! The router: every HTTP entry point, built without a socket so that tests
//! can call it directly.

use crate::api;
use crate::config::Config;
use crate::ingest;
use crate::ingest::writer::Writer;
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::web;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub writer: Writer,
    pub metrics: Arc<Metrics>,
    pub config: Arc<Config>,
    /// Present when `--smtp-url` is set; without it nothing sends e-mail.
    pub mailer: Option<Arc<Mailer>>,
}

impl AppState {
    /// What e-mail alert channels send through.
    pub fn email_sender(&self) -> crate::alerts::deliver::EmailSender {
        crate::alerts::deliver::EmailSender {
            mailer: self.mailer.clone(),
            store: self.store.clone(),
            cap: self.config.alert_email_cap as i64,
            period_ms: self.config.alert_email_period.as_millis() as i64,
        }
    }
}

pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", post(ingest::receive))
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .merge(ingest::sentry::routes())
        .nest("/api/v1", api::routes())
        .merge(web::routes())
        .with_state(state)
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

async fn health(State(state): State<AppState>) -> Response {
    if state.writer.disk_full() {
        // Ingest is refusing events for want of disk; find out whether
        // space came back rather than wait for the next event to say so.
        match state.store.check_writable().await {
            Ok(()) => state.writer.disk_space_back(),
            Err(e) => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(serde_json::json!({ "status": "disk full", "detail": e.to_string() })),
                )
                    .into_response()
            }
        }
    }
    match state.store.ping().await {
        Ok(()) => Json(serde_json::json!({ "status": "ok", "store": state.store.backend().as_str() })).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "unavailable", "detail": e.to_string() })),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = state.metrics.render(state.writer.depth(), state.writer.capacity());
    match state.store.pending_deliveries().await {
        Ok(pending) => text.push_str(&state.metrics.render_alerts(&pending)),
        Err(e) => tracing::warn!("/metrics could not count pending alerts: {e}"),
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
