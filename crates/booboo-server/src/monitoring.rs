//! What operators and their tools ask a node: `/healthz` (is it fit to
//! receive events, and if not, why) and `/metrics` (Prometheus' text).

use crate::state::AppState;
use crate::store::StoreError;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

pub async fn health(State(state): State<AppState>) -> Response {
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
    // Shedding load: low disk refuses every event, so the node is unhealthy
    // for ingest; a full queue or memory budget passes within seconds and is
    // only reported.
    let shedding = state.metrics.shedding().current(crate::clock::now_millis());
    if let Some(low) = shedding.as_ref().filter(|s| s.reason == "low_disk") {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({
                "status": "low disk",
                "detail": format!("refusing events: {}", low.detail),
                "since": booboo_core::timestamp::format(booboo_core::timestamp::from_unix_millis(low.since)),
            })),
        )
            .into_response();
    }
    match state.store.ping().await {
        Ok(()) => {
            let mut body = serde_json::json!({ "status": "ok", "store": state.store.backend().as_str() });
            if let Some(s) = shedding {
                body["shedding"] = serde_json::json!({
                    "reason": s.reason, "detail": s.detail, "since": booboo_core::timestamp::format(booboo_core::timestamp::from_unix_millis(s.since)),
                });
            }
            Json(body).into_response()
        }
        Err(e) => {
            // On a full disk even a read can fail (a fresh connection
            // writes its settings first): name the cause the operator must
            // fix, not its symptom.
            let disk_full = matches!(e, StoreError::DiskFull(_))
                || matches!(state.store.check_writable().await, Err(StoreError::DiskFull(_)));
            let status = if disk_full { "disk full" } else { "unavailable" };
            (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "status": status, "detail": e.to_string() })))
                .into_response()
        }
    }
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = state.metrics.render(state.writer.depth(), state.writer.capacity());
    match state.store.pending_deliveries().await {
        Ok(pending) => text.push_str(&state.metrics.render_alerts(&pending)),
        Err(e) => tracing::warn!("/metrics could not count pending alerts: {e}"),
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
