//! Receiving from Sentry SDKs: `POST /api/{project_id}/envelope/` (current
//! SDKs) and `POST /api/{project_id}/store/` (one JSON event, older SDKs),
//! with CORS so that browser SDKs may send too.
//!
//! Authenticate first (a key outside the body is checked before the body is
//! read; a key inside an envelope before the rest is decompressed), then read
//! within the limits, parse every event of the request through the core, and
//! only then store, so a request is either refused whole or stored whole.
//! Items booboo does not keep (sessions, transactions, attachments…) are
//! accepted and counted: Sentry SDKs count any refusal as lost data.

use super::body::{read_limited, reservation_of, BodyReader};
use super::rejection::Rejection;
use super::sentry_auth::{key_outside_body, parse_dsn};
use super::{keep_for_parsed, key_project, require_live_key, store_event, store_events};
use crate::clock;
use crate::memory_budget::Reservation;
use crate::secrets;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use booboo_core::booboo_payload;
use booboo_core::sentry_envelope::{self, MAX_HEADER_BYTES};
use booboo_core::sentry_event::{self, Arrival};
use booboo_core::Event;
use std::sync::Arc;
use tower_http::set_header::SetResponseHeaderLayer;

pub fn routes() -> Router<AppState> {
    let envelope = post(receive_envelope).options(preflight);
    let store = post(receive_store).options(preflight);
    Router::new()
        .route("/api/{project_id}/envelope/", envelope.clone())
        .route("/api/{project_id}/envelope", envelope)
        .route("/api/{project_id}/store/", store.clone())
        .route("/api/{project_id}/store", store)
        // Every answer, refusals included, so a browser SDK can read them.
        .layer(SetResponseHeaderLayer::overriding(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*")))
        .layer(SetResponseHeaderLayer::overriding(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("x-sentry-error, x-sentry-rate-limits, retry-after"),
        ))
}

/// The CORS preflight: any origin may send, with whatever headers it asks
/// for (the key, not the origin, is what authorises a request).
async fn preflight(headers: HeaderMap) -> Response {
    let asked = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned().unwrap_or(HeaderValue::from_static(
        "content-type, content-encoding, x-sentry-auth, authorization, sentry-trace, baggage",
    ));
    (
        StatusCode::OK,
        [
            (header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, OPTIONS")),
            (header::ACCESS_CONTROL_ALLOW_HEADERS, asked),
            (header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400")),
        ],
    )
        .into_response()
}

async fn receive_envelope(
    State(state): State<AppState>,
    Path(project_id): Path<String>,
    RawQuery(query): RawQuery,
    reservation: Option<Extension<Arc<Reservation>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let reservation = reservation_of(reservation.map(|Extension(r)| r), &state.config);
    match accept_envelope(&state, &project_id, query.as_deref(), &headers, body, reservation).await {
        Ok(response) => response,
        Err(rejection) => rejection.respond_to_sentry(&state.metrics),
    }
}

async fn receive_store(
    State(state): State<AppState>,
    Path(project_id): Path<String>,
    RawQuery(query): RawQuery,
    reservation: Option<Extension<Arc<Reservation>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let reservation = reservation_of(reservation.map(|Extension(r)| r), &state.config);
    match accept_store(&state, &project_id, query.as_deref(), &headers, body, reservation).await {
        Ok(response) => response,
        Err(rejection) => rejection.respond_to_sentry(&state.metrics),
    }
}

fn url_project(raw: &str) -> Result<i64, Rejection> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| Rejection::InvalidProjectId(raw.to_string()))
}

/// The key's project, which must be the one the URL names.
async fn authorize(state: &AppState, key: &str, url_project: i64) -> Result<i64, Rejection> {
    let project_id = key_project(state, key).await?;
    if project_id != url_project {
        return Err(Rejection::WrongProject { url_project });
    }
    Ok(project_id)
}

/// A DSN from an envelope header must name the same key as the request
/// (when the request named one) and the project in the URL.
fn check_dsn(dsn: &str, url_project: i64, key: Option<&str>) -> Result<String, Rejection> {
    let (dsn_key, dsn_project) = parse_dsn(dsn).ok_or_else(|| {
        Rejection::ConflictingAuth(
            "the envelope header's `dsn` is not a DSN of the form SCHEME://KEY@HOST/PROJECT_ID".into(),
        )
    })?;
    if key.is_some_and(|k| k != dsn_key) {
        return Err(Rejection::ConflictingAuth(
            "the envelope header's `dsn` and the request name different keys".into(),
        ));
    }
    if let Some(p) = dsn_project.filter(|p| *p != url_project) {
        return Err(Rejection::ConflictingAuth(format!(
            "the envelope header's `dsn` names project {p} but the URL names project {url_project}"
        )));
    }
    Ok(dsn_key)
}

async fn accept_envelope(
    state: &AppState,
    raw_project: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
    reservation: Arc<Reservation>,
) -> Result<Response, Rejection> {
    let url_project = url_project(raw_project)?;
    let limit = state.config.max_envelope_bytes;
    let mut reader = BodyReader::open(headers, body, limit, reservation.clone())?;
    let (key, project_id) = match key_outside_body(headers, query)? {
        Some(key) => {
            let project_id = authorize(state, &key, url_project).await?;
            (key, project_id)
        }
        None => {
            // Only the first line is read before the key in it is checked:
            // an unknown key never makes the server hold the rest.
            let header = sentry_envelope::read_header(&reader.first_line(MAX_HEADER_BYTES).await?)
                .map_err(Rejection::Envelope)?;
            let dsn = sentry_envelope::dsn_of(&header).ok_or(Rejection::MissingSentryKey)?;
            let key = check_dsn(dsn, url_project, None)?;
            let project_id = authorize(state, &key, url_project).await?;
            (key, project_id)
        }
    };
    reader.reserve_declared().await?;
    let bytes = reader.finish().await?.decode(limit)?;
    let received = clock::now();
    let (events, ignored, envelope_event_id, events_len) = parse_envelope(state, &bytes, url_project, &key, received)?;
    // Attachments and the like are not kept: the request's share shrinks to its events.
    drop(bytes);
    keep_for_parsed(&reservation, events_len);

    // Every event of the envelope in one transaction; the answer names an
    // id only when an event was stored under it.
    // An envelope without events stores nothing through the writer, so
    // its key is checked here.
    if events.is_empty() {
        require_live_key(state, &key).await?;
    }
    let ids = store_events(state, project_id, &key, events, received, &reservation).await?;
    for item_type in ignored {
        state.metrics.envelope_item_ignored(&item_type);
    }
    let id = match envelope_event_id {
        Some(header_id) if ids.contains(&header_id) => Some(header_id),
        _ => ids.into_iter().next(),
    };
    Ok(answer(id))
}

/// Every event of an envelope parsed, the types of the items not kept, the
/// envelope's event id, and the bytes of event JSON.
type ParsedEnvelope = (Vec<Event>, Vec<String>, Option<String>, usize);

fn parse_envelope(
    state: &AppState,
    bytes: &[u8],
    url_project: i64,
    key: &str,
    received: time::OffsetDateTime,
) -> Result<ParsedEnvelope, Rejection> {
    let envelope = sentry_envelope::parse(bytes).map_err(Rejection::Envelope)?;
    if let Some(dsn) = envelope.dsn() {
        check_dsn(dsn, url_project, Some(key))?;
    }

    let envelope_event_id = envelope.event_id();
    let mut objects = Vec::new();
    let mut ignored = Vec::new();
    let mut events_len = 0;
    for (index, item) in envelope.items.iter().enumerate() {
        if item.item_type != "event" {
            ignored.push(item.item_type.clone());
            continue;
        }
        let limit = state.config.max_body_bytes;
        if item.payload.len() > limit {
            return Err(Rejection::ItemTooLarge { index, size: item.payload.len(), limit });
        }
        let obj =
            booboo_payload::parse_object(item.payload).map_err(|error| Rejection::EnvelopeItem { index, error })?;
        events_len += item.payload.len();
        objects.push((index, obj));
    }

    // The header's event id names the envelope's event: the one that says
    // so, else the first without an id of its own. Any other event without
    // one gets an id of its own, derived from the header's so that a retried
    // envelope is recognised, rather than sharing one and being dropped as
    // a duplicate.
    let claimed = |id: &str| {
        objects.iter().any(|(_, obj)| {
            obj.get("event_id").and_then(|v| v.as_str()).and_then(booboo_payload::normalise_event_id).as_deref()
                == Some(id)
        })
    };
    let mut header_id_free = envelope_event_id.as_deref().is_some_and(|id| !claimed(id));
    let mut events = Vec::with_capacity(objects.len());
    for (index, obj) in objects {
        let own_id = obj.get("event_id").is_some_and(|v| !v.is_null());
        let fallback = match envelope_event_id.as_deref() {
            Some(header_id) if !own_id && header_id_free => {
                header_id_free = false;
                header_id.to_string()
            }
            Some(header_id) => sentry_envelope::item_event_id(header_id, index),
            None => secrets::new_event_id(),
        };
        let arrival = Arrival { received_at: received, envelope_event_id: None, fallback_event_id: &fallback };
        let event = sentry_event::read(obj, arrival).map_err(|error| Rejection::EnvelopeItem { index, error })?;
        events.push(event);
    }
    Ok((events, ignored, envelope_event_id, events_len))
}

async fn accept_store(
    state: &AppState,
    raw_project: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
    reservation: Arc<Reservation>,
) -> Result<Response, Rejection> {
    let url_project = url_project(raw_project)?;
    let key = key_outside_body(headers, query)?.ok_or(Rejection::MissingSentryKey)?;
    let project_id = authorize(state, &key, url_project).await?;
    let bytes = read_limited(headers, body, state.config.max_body_bytes, reservation.clone()).await?;
    let received = clock::now();
    let obj = booboo_payload::parse_object(&bytes).map_err(Rejection::Payload)?;
    keep_for_parsed(&reservation, bytes.len());
    drop(bytes);
    if sentry_event::is_transaction(&obj) {
        // Stores nothing through the writer, so the key is checked here.
        require_live_key(state, &key).await?;
        state.metrics.envelope_item_ignored("transaction");
        let id = obj.get("event_id").and_then(|v| v.as_str()).and_then(booboo_payload::normalise_event_id);
        return Ok(answer(id));
    }
    let arrival =
        Arrival { received_at: received, envelope_event_id: None, fallback_event_id: &secrets::new_event_id() };
    let event = sentry_event::read(obj, arrival).map_err(Rejection::Payload)?;
    let id = store_event(state, project_id, &key, event, received, &reservation).await?;
    Ok(answer(Some(id)))
}

/// Sentry's answer: the event id, or an empty object for an envelope that
/// stored no event (sessions, client reports, a header alone).
fn answer(id: Option<String>) -> Response {
    match id {
        Some(id) => Json(serde_json::json!({ "id": id })).into_response(),
        None => Json(serde_json::json!({})).into_response(),
    }
}
