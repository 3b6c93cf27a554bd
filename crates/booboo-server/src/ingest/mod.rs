//! Receiving events: `POST /` of the booboo protocol here, Sentry's
//! endpoints in `sentry.rs`. Authenticate, read the body within its limit,
//! parse and normalise through the core, then hand the event to the
//! group-commit writer and answer once it is committed.

mod body;
pub mod rejection;
pub mod sentry;
mod sentry_auth;

use crate::clock;
use crate::group_commit::SubmitError;
use crate::memory_budget::Reservation;
use crate::secrets;
use crate::state::AppState;
use crate::store::stored_payload::PayloadCodec;
use crate::store::{NewEvent, StoreError, StoreOutcome};
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use booboo_core::booboo_payload::{self, Payload};
use booboo_core::{timestamp, Event};
use rejection::Rejection;
use std::sync::Arc;

pub use body::read_limited;

pub async fn receive(
    State(state): State<AppState>,
    reservation: Option<Extension<Arc<Reservation>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let reservation = body::reservation_of(reservation.map(|Extension(r)| r), &state.config);
    match accept(&state, &headers, body, reservation).await {
        Ok(response) => response,
        Err(rejection) => rejection.respond(&state.metrics),
    }
}

async fn accept(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    reservation: Arc<Reservation>,
) -> Result<Response, Rejection> {
    let token = headers
        .get("x-booboo-dsn")
        .and_then(|v| v.to_str().ok())
        .map(token_from_header)
        .filter(|t| !t.is_empty())
        .ok_or(Rejection::MissingToken { header: "X-Booboo-DSN" })?;
    let project_id = key_project(state, token).await?;
    let bytes = read_limited(headers, body, state.config.max_body_bytes, reservation.clone()).await?;
    let received = clock::now();
    let payload = booboo_payload::parse(&bytes, received, &secrets::new_event_id()).map_err(Rejection::Payload)?;
    keep_for_parsed(&reservation, bytes.len());
    drop(bytes);
    match payload {
        Payload::Handshake { sdk } => {
            // Stores nothing through the writer, so the key is checked here.
            require_live_key(state, token).await?;
            state
                .store
                .record_handshake(project_id, &sdk, timestamp::unix_millis(received))
                .await
                .map_err(Rejection::from_store)?;
            state.metrics.handshake_accepted();
            Ok(Json(serde_json::json!({ "ok": true })).into_response())
        }
        Payload::Event(event) => {
            let id = store_event(state, project_id, token, *event, received, &reservation).await?;
            Ok(Json(serde_json::json!({ "id": id })).into_response())
        }
    }
}

/// The project an ingestion key sends to (remembered by the writer, which
/// checks the key again before storing anything), or 401.
pub(crate) async fn key_project(state: &AppState, key: &str) -> Result<i64, Rejection> {
    state.writer.ingest_project(&*state.store, key).await.map_err(Rejection::from_store)?.ok_or(Rejection::UnknownToken)
}

/// 401 unless the key is live now, asked of the database: for answers that
/// store nothing, and so never pass the writer's check.
pub(crate) async fn require_live_key(state: &AppState, key: &str) -> Result<(), Rejection> {
    match state.writer.confirm_key(&*state.store, key).await.map_err(Rejection::from_store)? {
        true => Ok(()),
        false => Err(Rejection::UnknownToken),
    }
}

/// The header carries the bare token; a client that sends the whole URL
/// form by mistake is understood rather than refused.
fn token_from_header(value: &str) -> &str {
    let value = value.trim();
    match value.split_once("://") {
        Some((_, rest)) => rest.split_once('@').map(|(user, _)| user).unwrap_or(""),
        None => value,
    }
}

/// An event held in memory is counted as twice its JSON: the text it will be
/// stored as and the parsed form it was made from. An estimate, on the side
/// of more.
fn in_memory_size(json_len: usize) -> usize {
    json_len.saturating_mul(2)
}

/// Once the body is parsed and dropped, the request's share shrinks to what
/// its parsed events hold.
fn keep_for_parsed(reservation: &Reservation, json_len: usize) {
    reservation.shrink_to(in_memory_size(json_len));
}

/// Processes a normalised event (from any wire format) and waits until it is
/// stored. Returns the event id the client should see. The event carries its
/// share of the request's reservation into the writer's queue and holds it
/// until stored.
pub async fn store_event(
    state: &AppState,
    project_id: i64,
    key: &str,
    event: Event,
    received: time::OffsetDateTime,
    reservation: &Reservation,
) -> Result<String, Rejection> {
    let mut ids = store_events(state, project_id, key, vec![event], received, reservation).await?;
    Ok(ids.pop().unwrap_or_default())
}

/// Processes the events of one request and waits until all of them are
/// stored, in one transaction: a request is stored whole or refused whole.
/// Returns their ids in the order given. The events carry their share of
/// the request's reservation into the writer's queue and hold it until
/// stored.
pub async fn store_events(
    state: &AppState,
    project_id: i64,
    key: &str,
    events: Vec<Event>,
    received: time::OffsetDateTime,
    reservation: &Reservation,
) -> Result<Vec<String>, Rejection> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    if let Some((free, min)) = state.metrics.shedding().low_disk() {
        return Err(Rejection::LowDisk { free, min });
    }
    let codec = state.store.payload_codec();
    let new_events: Vec<NewEvent> = events.into_iter().map(|e| prepare(codec, project_id, e, received)).collect();
    let ids = new_events.iter().map(|e| e.processed.event.event_id.clone()).collect();
    let json_len = new_events.iter().map(|e| e.payload.len()).sum();
    let held =
        reservation.split(in_memory_size(json_len)).map_err(|over| Rejection::OverBudget { limit: over.limit })?;
    match state.writer.submit_keyed(new_events, key, Some(held)).await {
        Ok(outcomes) => {
            for outcome in outcomes {
                match outcome {
                    StoreOutcome::Stored { .. } => state.metrics.event_accepted(),
                    StoreOutcome::Duplicate => state.metrics.duplicate_accepted(),
                    StoreOutcome::NotStored { reason, .. } => state.metrics.event_not_stored(reason.as_str()),
                }
            }
        }
        Err(SubmitError::QueueFull) => return Err(Rejection::QueueFull),
        Err(SubmitError::Closed) => return Err(Rejection::ShuttingDown),
        Err(SubmitError::KeyRevoked) => return Err(Rejection::UnknownToken),
        Err(SubmitError::Store(StoreError::DiskFull(_))) => return Err(Rejection::DiskFull),
        Err(SubmitError::Store(e)) => {
            tracing::error!("storing events failed: {e}");
            return Err(Rejection::StoreUnavailable);
        }
    }
    Ok(ids)
}

fn prepare(codec: &PayloadCodec, project_id: i64, event: Event, received: time::OffsetDateTime) -> NewEvent {
    let received_at = timestamp::unix_millis(received);
    let occurred_at = timestamp::parse(&event.timestamp).map(timestamp::unix_millis).unwrap_or(received_at);
    NewEvent::new(codec, project_id, received_at, occurred_at, booboo_core::process(event))
}

#[cfg(test)]
mod tests {
    #[test]
    fn token_is_taken_from_a_url_form_dsn_too() {
        assert_eq!(super::token_from_header(" abc "), "abc");
        assert_eq!(super::token_from_header("http://abc@host:8000/o/p"), "abc");
        assert_eq!(super::token_from_header("http://host/o/p"), "");
    }
}
