//! A project's ingestion keys: list, add, revoke, delete. Listing is open to
//! members; changing keys is for the organisation's admins, as on the
//! dashboard. A revoked or deleted key's token is refused from the next
//! request on.

use super::{time_text, ApiResult};
use crate::access::{self, AdminOnly};
use crate::error::AppError;
use crate::state::AppState;
use crate::store::{Project, ProjectKey};
use crate::{clock, secrets};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::auth::ApiUser;

/// The longest label a key can have (as on the dashboard).
const MAX_LABEL_CHARS: usize = 100;

fn key_json(state: &AppState, project: &Project, key: &ProjectKey) -> Value {
    json!({
        "id": key.id,
        "label": key.label,
        "created_at": time_text(key.created_at),
        "revoked_at": key.revoked_at.map(time_text),
        "dsn": state.config.dsn(&key.token, &project.org_slug, &project.slug),
        "sentry_dsn": state.config.sentry_dsn(&key.token, project.id),
    })
}

async fn keys_of(state: &AppState, user: &ApiUser, project: &Project) -> Result<Vec<ProjectKey>, AppError> {
    state.store.project_keys(user.0.viewer(), project.id).await?.ok_or_else(|| AppError::not_found("project"))
}

fn key_id(text: &str) -> Result<i64, AppError> {
    text.parse().map_err(|_| AppError::not_found("key"))
}

pub async fn list(
    State(state): State<AppState>,
    user: ApiUser,
    Path((org, slug)): Path<(String, String)>,
) -> ApiResult {
    let project = access::project(&*state.store, user.0.viewer(), &org, &slug).await?;
    let keys = keys_of(&state, &user, &project).await?;
    Ok(Json(json!({ "items": keys.iter().map(|k| key_json(&state, &project, k)).collect::<Vec<_>>() })))
}

/// Adds a key: `{"label": "…"}` (optional): 201 with the key and its DSNs.
pub async fn add(
    State(state): State<AppState>,
    user: ApiUser,
    Path((org, slug)): Path<(String, String)>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let project = access::project(&*state.store, user.0.viewer(), &org, &slug).await?;
    access::require_admin(&*state.store, user.0.viewer(), &org, AdminOnly::Keys).await?;
    let value: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| AppError::bad_request(format!("body must be JSON such as {{\"label\": \"web\"}}: {e}")))?
    };
    let label = match value.get("label") {
        None | Some(Value::Null) => "unnamed",
        Some(Value::String(label)) if label.chars().count() <= MAX_LABEL_CHARS => label.as_str(),
        Some(_) => {
            return Err(AppError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("field `label` must be text of at most {MAX_LABEL_CHARS} characters"),
            ))
        }
    };
    let key = state
        .store
        .add_project_key(user.0.viewer(), project.id, &secrets::new_ingest_token(), label, clock::now_millis())
        .await?
        .ok_or_else(|| AppError::not_found("project"))?;
    Ok((StatusCode::CREATED, Json(key_json(&state, &project, &key))))
}

/// Revokes a live key; it stays listed as revoked: 200 with the key.
pub async fn revoke(
    State(state): State<AppState>,
    user: ApiUser,
    Path((org, slug, id)): Path<(String, String, String)>,
) -> ApiResult {
    let project = access::project(&*state.store, user.0.viewer(), &org, &slug).await?;
    access::require_admin(&*state.store, user.0.viewer(), &org, AdminOnly::Keys).await?;
    let id = key_id(&id)?;
    if !state.store.revoke_project_key(user.0.viewer(), project.id, id, clock::now_millis()).await? {
        let known = keys_of(&state, &user, &project).await?.iter().any(|k| k.id == id);
        return Err(if known {
            AppError::new(
                StatusCode::CONFLICT,
                format!("key {id} is already revoked; delete it to remove it from the list"),
            )
        } else {
            AppError::not_found("key")
        });
    }
    let keys = keys_of(&state, &user, &project).await?;
    let key = keys.iter().find(|k| k.id == id).ok_or_else(|| AppError::not_found("key"))?;
    Ok(Json(key_json(&state, &project, key)))
}

/// Deletes a key, live or revoked: 204.
pub async fn delete(
    State(state): State<AppState>,
    user: ApiUser,
    Path((org, slug, id)): Path<(String, String, String)>,
) -> Result<StatusCode, AppError> {
    let project = access::project(&*state.store, user.0.viewer(), &org, &slug).await?;
    access::require_admin(&*state.store, user.0.viewer(), &org, AdminOnly::Keys).await?;
    if !state.store.delete_project_key(user.0.viewer(), project.id, key_id(&id)?).await? {
        return Err(AppError::not_found("key"));
    }
    Ok(StatusCode::NO_CONTENT)
}
