//! The JSON API under `/api/v1`. It reads through the store only; it never
//! calls ingestion.

pub mod alerts;
mod auth;
pub mod export;
mod keys;
mod ownership;
mod project_settings;

use crate::access;
use crate::error::AppError;
use crate::state::AppState;
use crate::store::{
    IgnoreCondition, Issue, IssueDetail, IssueMerge, IssueSearch, IssueSort, IssueStatus, Page, PageOf, Project,
    Resolution, StoredEvent,
};
use auth::ApiUser;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use booboo_core::{search_query, timestamp};
use serde_json::{json, Value};
use std::collections::HashMap;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/projects", get(list_projects))
        .route("/projects/{org}/{project}/issues", get(list_issues))
        .route("/projects/{org}/{project}/export", get(export_project))
        .route(
            "/projects/{org}/{project}",
            get(project_settings::get_project).patch(project_settings::patch_project).delete(delete_project),
        )
        .route("/issues/{id}", get(get_issue).patch(patch_issue).delete(delete_issue))
        .route("/issues/{id}/events", get(issue_events))
        .route("/issues/{id}/merge", post(merge_issues))
        .route("/projects/{org}/{project}/keys", get(keys::list).post(keys::add))
        .route("/projects/{org}/{project}/keys/{key}", delete(keys::delete))
        .route("/projects/{org}/{project}/keys/{key}/revoke", post(keys::revoke))
        .route("/issues/{id}/comments", get(ownership::list_comments).post(ownership::add_comment))
        .route("/issues/{id}/activity", get(ownership::list_activity))
        .route("/events/{id}", get(get_event))
        .route("/projects/{org}/{project}/alert-rules", get(alerts::list_rules).post(alerts::create_rule))
        .route("/projects/{org}/{project}/alert-deliveries", get(alerts::list_deliveries))
        .route("/alert-rules/{id}", get(alerts::get_rule).patch(alerts::patch_rule).delete(alerts::delete_rule))
        .route("/alert-rules/{id}/test", post(alerts::test_rule))
        .fallback(|| async { AppError::not_found("API endpoint") })
}

type Params = Query<HashMap<String, String>>;
type ApiResult = Result<Json<Value>, AppError>;

fn time_text(ms: i64) -> String {
    timestamp::format(timestamp::from_unix_millis(ms))
}

fn page_from(params: &HashMap<String, String>) -> Result<Page, AppError> {
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                AppError::bad_request(format!("limit must be a whole number from 1 to {MAX_LIMIT}, got {text:?}"))
            })?
            .min(MAX_LIMIT),
    };
    let offset = match params.get("cursor").filter(|c| !c.is_empty()) {
        None => 0,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| AppError::bad_request("cursor is not one this API gave out; start again without it"))?,
    };
    Ok(Page { offset, limit })
}

fn list_json<T>(page: PageOf<T>, render: impl Fn(&T) -> Value) -> Value {
    json!({
        "items": page.items.iter().map(render).collect::<Vec<_>>(),
        "next_cursor": page.next_offset.map(|o| o.to_string()),
    })
}

fn parse_id(text: &str, what: &str) -> Result<i64, AppError> {
    text.parse().map_err(|_| AppError::not_found(what))
}

pub fn project_json(p: &Project) -> Value {
    json!({
        "id": p.id,
        "organization": p.org_slug,
        "slug": p.slug,
        "name": p.name,
        "created_at": time_text(p.created_at),
        "connected_at": p.connected_at.map(time_text),
        "connected_sdk": p.connected_sdk,
        "last_event_at": p.last_event_at.map(time_text),
    })
}

pub fn issue_json(i: &Issue) -> Value {
    json!({
        "id": i.id,
        "project_id": i.project_id,
        "title": i.title,
        "culprit": i.culprit,
        "level": i.level,
        "status": i.status,
        "is_regression": i.is_regression,
        "count": i.count,
        "stored": i.stored,
        "not_stored": { "rate_limit": i.not_stored.rate_limit, "retention": i.not_stored.retention },
        "users": i.users,
        "first_seen": time_text(i.first_seen),
        "last_seen": time_text(i.last_seen),
        "first_release": i.first_release,
        "environments": i.environments,
        "releases": i.releases,
        "fingerprint": i.fingerprint,
        "assignee": i.assignee,
        "ignore": (i.status == IssueStatus::Ignored).then(|| json!({
            "until": i.ignore_until.at.map(time_text),
            "until_count": i.ignore_until.count,
            "until_users": i.ignore_until.users,
        })),
        "resolved_in": i.resolved_in.as_ref().map(|r| json!({"kind": r.kind, "release": r.release})),
    })
}

fn issue_detail_json(d: &IssueDetail) -> Value {
    let mut value = issue_json(&d.issue);
    value["environment_counts"] = json!(d.environment_counts);
    value["release_counts"] = json!(d.release_counts);
    value["tags"] = json!(d.tags);
    value
}

/// The stored event with its id, issue and arrival time alongside the
/// normalised fields.
pub fn event_json(e: &StoredEvent) -> Value {
    let mut value: Value = serde_json::from_str(&e.payload).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut value {
        map.insert("id".into(), json!(e.event_id));
        map.insert("issue_id".into(), json!(e.issue_id));
        map.insert("project_id".into(), json!(e.project_id));
        map.insert("received_at".into(), json!(time_text(e.received_at)));
    }
    value
}

async fn list_projects(State(state): State<AppState>, ApiUser(user): ApiUser) -> ApiResult {
    let projects = state.store.projects_for(user.viewer()).await?;
    Ok(Json(json!({ "items": projects.iter().map(project_json).collect::<Vec<_>>(), "next_cursor": null })))
}

/// The list's search: `query` in the search language (`docs/search.md`),
/// plus the older separate parameters (`status`, `environment`, `release`,
/// `level`) as the terms they stand for. A bad query is a 400 that names
/// the term.
fn issue_search_from(params: &HashMap<String, String>) -> Result<IssueSearch, AppError> {
    let non_empty = |key: &str| params.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
    let status = match non_empty("status") {
        None => None,
        Some("all") => Some(None),
        Some(text) => Some(Some(IssueStatus::parse(text).ok_or_else(|| {
            AppError::bad_request(format!("status must be unresolved, resolved, ignored or all, got {text:?}"))
        })?)),
    };
    let sort = match non_empty("sort") {
        None => IssueSort::default(),
        Some("count") => IssueSort::Events,
        Some(text) => IssueSort::parse(text).ok_or_else(|| {
            AppError::bad_request(format!("sort must be last_seen, first_seen, count or users, got {text:?}"))
        })?,
    };
    if let Some(level) = non_empty("level") {
        if !search_query::LEVELS.contains(&level) {
            return Err(AppError::bad_request(format!(
                "level must be one of {}, got {level:?}",
                search_query::LEVELS.join(", ")
            )));
        }
    }
    let query = search_query::parse(params.get("query").map_or("", String::as_str), crate::clock::now_millis())
        .map_err(|e| AppError::bad_request(e.to_string()))?;
    Ok(IssueSearch { query, sort, any_status: false }.with_params(
        status,
        params.get("environment").map(String::as_str),
        non_empty("release"),
        non_empty("level"),
    ))
}

/// A searched list: each issue's `count` and `users` are over the events
/// that match (its all-time figures under `lifetime`), `total` is how many
/// issues match (more than that many when `total_exact` is false), and
/// `counts` says where the counts come from.
async fn list_issues(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path((org, project)): Path<(String, String)>,
    Query(params): Params,
) -> ApiResult {
    let project = access::project(&*state.store, user.viewer(), &org, &project).await?;
    let search = issue_search_from(&params)?;
    let since_hour = crate::clock::now_millis().div_euclid(3_600_000) - 23;
    let found = state.store.search_issues(user.viewer(), project.id, &search, page_from(&params)?, since_hour).await?;
    let (total, total_exact) = (found.total, found.total_exact);
    let counts = found.counts;
    let mut value = list_json(found.hits, |hit| {
        let mut issue = issue_json(&hit.issue);
        issue["count"] = json!(hit.count);
        issue["users"] = json!(hit.users);
        issue["lifetime"] = json!({ "count": hit.issue.count, "users": hit.issue.users });
        issue
    });
    value["total"] = json!(total);
    value["total_exact"] = json!(total_exact);
    value["counts"] = json!(counts);
    Ok(Json(value))
}

async fn get_issue(State(state): State<AppState>, ApiUser(user): ApiUser, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id, "issue")?;
    let detail = access::issue(&*state.store, user.viewer(), id).await?;
    Ok(Json(issue_detail_json(&detail)))
}

async fn patch_issue(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let id = parse_id(&id, "issue")?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| AppError::bad_request(format!("body must be JSON such as {{\"status\": \"resolved\"}}: {e}")))?;
    let assignee = value.get("assignee").map(ownership::assignee_from).transpose()?;
    if let (Some(assignee), None) = (&assignee, value.get("status")) {
        // Only the assignee changes.
        return Ok(Json(issue_json(&ownership::assign(&state, &user, id, assignee.as_deref()).await?)));
    }
    let status = match value.get("status") {
        Some(Value::String(s)) => IssueStatus::parse(s).ok_or_else(|| {
            AppError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("status must be unresolved, resolved or ignored, got {s:?}"),
            )
        })?,
        _ => {
            return Err(AppError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "field `status` (one of unresolved, resolved, ignored) or `assignee` (a member's e-mail or null) \
                 is required",
            ))
        }
    };
    let ignore = match value.get("ignore") {
        None | Some(Value::Null) => None,
        Some(_) if status != IssueStatus::Ignored => {
            return Err(AppError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "field `ignore` applies only with \"status\": \"ignored\"",
            ))
        }
        Some(given) => Some(ignore_condition(given)?),
    };
    let resolution = match value.get("resolved_in") {
        None | Some(Value::Null) => None,
        Some(_) if status != IssueStatus::Resolved => {
            return Err(AppError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "field `resolved_in` applies only with \"status\": \"resolved\"",
            ))
        }
        Some(Value::String(text)) => Some(Resolution::parse(text).map_err(|message| {
            AppError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("field `resolved_in`: {message}"))
        })?),
        Some(other) => {
            return Err(AppError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("field `resolved_in` must be \"next_release\", \"current_release\" or a release such as \"1.4.0\", got {other}"),
            ))
        }
    };
    if let Some(assignee) = &assignee {
        ownership::assign(&state, &user, id, assignee.as_deref()).await?;
    }
    let issue = match (ignore, resolution) {
        (Some(condition), _) => {
            state.store.ignore_issue(user.viewer(), id, condition, crate::clock::now_millis()).await?
        }
        (_, Some(resolution)) => state.store.resolve_issue(user.viewer(), id, &resolution).await?,
        // Every resolve goes through the one method that records resolutions.
        _ if status == IssueStatus::Resolved => state.store.resolve_issue(user.viewer(), id, &Resolution::Now).await?,
        _ => state.store.set_issue_status(user.viewer(), id, status).await?,
    }
    .ok_or_else(|| AppError::not_found("issue"))?;
    Ok(Json(issue_json(&issue)))
}

/// Reads `ignore`: `{"minutes": N}`, `{"count": N}` or `{"users": N}`
/// (nothing more), `{}` for forever.
fn ignore_condition(value: &Value) -> Result<IgnoreCondition, AppError> {
    let unprocessable = |message: String| AppError::new(StatusCode::UNPROCESSABLE_ENTITY, message);
    let Value::Object(fields) = value else {
        return Err(unprocessable(
            "field `ignore` must be an object such as {\"minutes\": 60}, {\"count\": 100} or {\"users\": 10}".into(),
        ));
    };
    if let Some(unknown) = fields.keys().find(|k| !["minutes", "count", "users"].contains(&k.as_str())) {
        return Err(unprocessable(format!("field `ignore.{unknown}` is unknown: use minutes, count or users")));
    }
    let number = |name: &str| -> Result<Option<i64>, AppError> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64()),
            Some(other) => Err(unprocessable(format!("field `ignore.{name}` must be a whole number, got {other}"))),
        }
    };
    IgnoreCondition::from_parts(number("minutes")?, number("count")?, number("users")?).map_err(|(field, message)| {
        let field = if field == "ignore" { "ignore".to_string() } else { format!("ignore.{field}") };
        unprocessable(format!("field `{field}`: {message}"))
    })
}

/// Deletes an issue with its events (organisation admins only): 204.
async fn delete_issue(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let id = parse_id(&id, "issue")?;
    if !state.store.delete_issue(user.viewer(), id).await? {
        return Err(AppError::not_found("issue"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Merges issues into this one: `{"from": [ids]}`, issues of the same
/// project. Later events of the merged issues' fingerprints count here.
/// 200 with the merged issue.
async fn merge_issues(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let target = parse_id(&id, "issue")?;
    let unprocessable = |message: String| AppError::new(StatusCode::UNPROCESSABLE_ENTITY, message);
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| AppError::bad_request(format!("body must be JSON such as {{\"from\": [12, 13]}}: {e}")))?;
    let from = match value.get("from") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_i64().ok_or_else(|| unprocessable(format!("field `from` must hold issue ids, got {item}")))
            })
            .collect::<Result<Vec<i64>, AppError>>()?,
        _ => {
            return Err(unprocessable("field `from` is required: the ids of the issues to merge into this one".into()))
        }
    };
    let merge = IssueMerge::new(target, &from).map_err(|m| unprocessable(format!("field `from`: {m}")))?;
    if !state.store.merge_issues(user.viewer(), &merge, crate::clock::now_millis()).await? {
        return Err(AppError::not_found("issue"));
    }
    let detail = access::issue(&*state.store, user.viewer(), target).await?;
    Ok(Json(issue_detail_json(&detail)))
}

/// Deletes a project with its keys, issues and events (organisation admins
/// only): 204.
async fn delete_project(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path((org, slug)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    let project = access::project(&*state.store, user.viewer(), &org, &slug).await?;
    if !state.store.delete_project(user.viewer(), project.id, crate::clock::now_millis()).await? {
        return Err(AppError::not_found("project"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The project as JSON Lines (see `export.rs`), streamed page by page.
async fn export_project(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path((org, slug)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let project = access::project(&*state.store, user.viewer(), &org, &slug).await?;
    let export = export::Export::start(state.store.clone(), project).await?;
    let chunks = futures_util::stream::unfold(Some(export), |export| async move {
        let mut export = export?;
        match export.next_chunk().await {
            Ok(Some(chunk)) => Some((Ok::<_, std::io::Error>(Bytes::from(chunk)), Some(export))),
            Ok(None) => None,
            Err(e) => {
                tracing::error!("exporting a project failed midway: {e}");
                Some((Ok(Bytes::from(export::error_line(&e))), None))
            }
        }
    });
    let disposition = format!("attachment; filename=\"{org}-{slug}.jsonl\"");
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson".to_string()), (header::CONTENT_DISPOSITION, disposition)],
        Body::from_stream(chunks),
    )
        .into_response())
}

async fn issue_events(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
    Query(params): Params,
) -> ApiResult {
    let id = parse_id(&id, "issue")?;
    let page = state
        .store
        .issue_events(user.viewer(), id, page_from(&params)?)
        .await?
        .ok_or_else(|| AppError::not_found("issue"))?;
    Ok(Json(list_json(page, event_json)))
}

async fn get_event(State(state): State<AppState>, ApiUser(user): ApiUser, Path(id): Path<String>) -> ApiResult {
    let event_id = booboo_core::booboo_payload::normalise_event_id(&id).ok_or_else(|| AppError::not_found("event"))?;
    let event = state.store.event(user.viewer(), &event_id).await?.ok_or_else(|| AppError::not_found("event"))?;
    Ok(Json(event_json(&event)))
}
