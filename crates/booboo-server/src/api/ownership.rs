//! Who owns an issue and what happened to it: the assignee (through
//! `PATCH /issues/{id}`), comments and the activity list.

use super::auth::ApiUser;
use super::{list_json, page_from, parse_id, time_text, ApiResult, Params};
use crate::error::AppError;
use crate::identifiers::check_email;
use crate::state::AppState;
use crate::store::activity::{comment_problem, BOOBOO_ACTOR};
use crate::store::{Activity, ActivityKind, Assignment, Issue, User};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

pub fn activity_json(a: &Activity) -> Value {
    json!({
        "id": a.id,
        "issue_id": a.issue_id,
        "kind": a.kind,
        "actor": a.actor.as_deref().unwrap_or(BOOBOO_ACTOR),
        "created_at": time_text(a.created_at),
        "detail": a.detail,
    })
}

/// Reads `assignee` from a PATCH body: a member's e-mail, or null to
/// unassign.
pub(super) fn assignee_from(value: &Value) -> Result<Option<String>, AppError> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => check_email(text)
            .map(Some)
            .map_err(|e| AppError::bad_request(format!("field `assignee`: {e}; give a member's e-mail or null"))),
        other => Err(AppError::bad_request(format!("field `assignee` must be a member's e-mail or null, got {other}"))),
    }
}

/// Assigns an issue; a 400 naming the address when it is not a member of
/// the issue's organisation.
pub(super) async fn assign(state: &AppState, user: &User, id: i64, email: Option<&str>) -> Result<Issue, AppError> {
    match state.store.assign_issue(user.viewer(), id, email, crate::clock::now_millis()).await? {
        Assignment::Done(issue) => Ok(*issue),
        Assignment::IssueNotFound => Err(AppError::not_found("issue")),
        Assignment::NotAMember => Err(AppError::bad_request(format!(
            "{} is not a member of this issue's organisation: add them to it first, or pick a member",
            email.unwrap_or_default()
        ))),
    }
}

/// `POST /issues/{id}/comments` with `{"text": "…"}`: 201 and the comment.
pub async fn add_comment(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let id = parse_id(&id, "issue")?;
    let value: Value = serde_json::from_slice(&body).map_err(|e| {
        AppError::bad_request(format!("body must be JSON such as {{\"text\": \"Looking into it\"}}: {e}"))
    })?;
    let text = match value.get("text") {
        Some(Value::String(text)) => text,
        Some(other) => return Err(AppError::bad_request(format!("field `text` must be a string, got {other}"))),
        None => return Err(AppError::bad_request("field `text` is required: the comment, up to 10,000 characters")),
    };
    if let Some(problem) = comment_problem(text) {
        return Err(AppError::bad_request(format!("field `text`: {problem}")));
    }
    let comment = state
        .store
        .add_issue_comment(user.viewer(), id, text, crate::clock::now_millis())
        .await?
        .ok_or_else(|| AppError::not_found("issue"))?;
    Ok((StatusCode::CREATED, Json(activity_json(&comment))))
}

/// `GET /issues/{id}/comments`: the comments, newest first.
pub async fn list_comments(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
    Query(params): Params,
) -> ApiResult {
    list(&state, &user, &id, Some(ActivityKind::Comment), &params).await
}

/// `GET /issues/{id}/activity`: every change, newest first.
pub async fn list_activity(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
    Query(params): Params,
) -> ApiResult {
    list(&state, &user, &id, None, &params).await
}

async fn list(
    state: &AppState,
    user: &User,
    id: &str,
    kind: Option<ActivityKind>,
    params: &std::collections::HashMap<String, String>,
) -> ApiResult {
    let id = parse_id(id, "issue")?;
    let page = state
        .store
        .issue_activity(user.viewer(), id, kind, page_from(params)?)
        .await?
        .ok_or_else(|| AppError::not_found("issue"))?;
    Ok(Json(list_json(page, activity_json)))
}
