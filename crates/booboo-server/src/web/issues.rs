//! A project's issues (filters in the URL, sorting, pages, bulk actions) and
//! the issue page with one of its events.

use super::chart::{self, HOUR_MS};
use super::event_view;
use super::form::FormData;
use super::local_path::same_origin_path;
use super::ownership;
use super::page_error::PageError;
use super::session::SignedIn;
use super::templates::page;
use crate::state::AppState;
use crate::store::{IgnoreCondition, Issue, IssueSearch, IssueSort, IssueStatus, Page, Project, Resolution, Viewer};
use crate::{access, clock};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use booboo_core::booboo_payload::normalise_event_id;
use booboo_core::search_query;
use minijinja::context;
use serde::Serialize;
use std::collections::HashMap;

pub const PAGE_SIZE: i64 = 25;
/// The newest activity entries the issue page shows; the API pages through
/// all of them.
const ACTIVITY_SHOWN: i64 = 100;
const LEVELS: &[&str] = &["fatal", "error", "warning", "info", "debug"];
const SORTS: &[(&str, &str)] =
    &[("last_seen", "Last seen"), ("first_seen", "First seen"), ("events", "Events"), ("users", "Users")];

/// The list's filters exactly as the URL gives them, so that links keep them.
#[derive(Debug, Default, Serialize)]
struct ListQuery {
    environment: String,
    release: String,
    status: String,
    level: String,
    query: String,
    sort: String,
    page: i64,
}

impl ListQuery {
    #[allow(clippy::type_complexity)]
    fn parse(
        params: &HashMap<String, String>,
    ) -> Result<(ListQuery, Option<Option<IssueStatus>>, IssueSort), PageError> {
        let get = |k: &str| params.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
        let q = ListQuery {
            environment: get("environment"),
            release: get("release"),
            status: get("status"),
            level: get("level"),
            query: get("query"),
            sort: get("sort"),
            page: match get("page").as_str() {
                "" => 1,
                text => text.parse().ok().filter(|n| *n >= 1 && *n <= 100_000).ok_or_else(|| {
                    PageError::BadRequest(format!("page must be a whole number from 1 up, got {text:?}"))
                })?,
            },
        };
        let status = match q.status.as_str() {
            "" => None,
            "all" => Some(None),
            text => Some(Some(IssueStatus::parse(text).ok_or_else(|| {
                PageError::BadRequest(format!("status must be unresolved, resolved, ignored or all, got {text:?}"))
            })?)),
        };
        let sort = match q.sort.as_str() {
            "" => IssueSort::default(),
            text => IssueSort::parse(text).ok_or_else(|| {
                PageError::BadRequest(format!("sort must be last_seen, first_seen, events or users, got {text:?}"))
            })?,
        };
        if !q.level.is_empty() && !LEVELS.contains(&q.level.as_str()) {
            return Err(PageError::BadRequest(format!(
                "level must be one of {}, got {:?}",
                LEVELS.join(", "),
                q.level
            )));
        }
        Ok((q, status, sort))
    }

    /// This list's URL with one page number, keeping every filter.
    fn url_for_page(&self, base: &str, page: i64) -> String {
        let mut pairs: Vec<(&str, String)> = [
            ("environment", &self.environment),
            ("release", &self.release),
            ("status", &self.status),
            ("level", &self.level),
            ("query", &self.query),
            ("sort", &self.sort),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k, v.clone()))
        .collect();
        if page > 1 {
            pairs.push(("page", page.to_string()));
        }
        let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        if query.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{query}")
        }
    }
}

pub async fn list(
    State(state): State<AppState>,
    me: SignedIn,
    Path((org, slug)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let viewer = me.viewer();
    let project = access::project(&*state.store, viewer, &org, &slug).await?;
    let (q, status, sort) = ListQuery::parse(&params)?;
    let now = clock::now_millis();
    // A query that does not parse shows the page with the reason next to the
    // search box, answered 400.
    let (search, query_error) = match search_query::parse(&q.query, now) {
        Ok(query) => {
            let search = IssueSearch { query, sort, any_status: false };
            (search.with_params(status, Some(&q.environment), Some(&q.release), Some(&q.level)), None)
        }
        Err(e) => (IssueSearch::default(), Some(e.to_string())),
    };
    let window = Page { offset: (q.page - 1) * PAGE_SIZE, limit: PAGE_SIZE };
    let since_hour = now.div_euclid(HOUR_MS) - 23;
    let (rows, next_offset, total, total_exact) = match &query_error {
        None => {
            let found = state.store.search_issues(viewer, project.id, &search, window, since_hour).await?;
            let rows: Vec<_> = found
                .hits
                .items
                .iter()
                .map(|hit| {
                    context! {
                        issue => hit.issue, count => hit.count, users => hit.users,
                        chart => chart::hourly(&found.hourly, hit.issue.id, now, 24, 4.0, 20.0),
                    }
                })
                .collect();
            (rows, found.hits.next_offset, found.total, found.total_exact)
        }
        Some(_) => (Vec::new(), None, 0, true),
    };
    let facets = state.store.project_facets(viewer, project.id).await?;
    let base = format!("/projects/{org}/{slug}");
    let previous = (q.page > 1).then(|| q.url_for_page(&base, q.page - 1));
    let next = next_offset.map(|_| q.url_for_page(&base, q.page + 1));
    let this_url = q.url_for_page(&base, q.page);
    let members = state.store.members_of(viewer, &org).await?.unwrap_or_default();
    let filtered = !(q.environment.is_empty() && q.release.is_empty() && q.level.is_empty() && q.query.is_empty());
    let body = page(
        "issues.html",
        context! {
            me => me.me(), project, rows, facets_environments => facets.environments,
            facets_releases => facets.releases, q, levels => LEVELS, sorts => SORTS, previous, next,
            this_url, filtered, nav => "issues", first_row => window.offset + 1, members, total, total_exact,
            query_error,
            shedding => state.metrics.shedding().current(now),
        },
    )?;
    let status = if query_error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    Ok((status, body).into_response())
}

/// Only paths on this server, to return to after a form.
fn back_to(form: &FormData, fallback: String) -> String {
    same_origin_path(form.get("back"), &fallback).to_string()
}

fn status_of_action(action: &str) -> Result<IssueStatus, PageError> {
    match action {
        "resolve" | "resolved" => Ok(IssueStatus::Resolved),
        "ignore" | "ignored" => Ok(IssueStatus::Ignored),
        "reopen" | "unresolved" => Ok(IssueStatus::Unresolved),
        other => Err(PageError::BadRequest(format!("unknown action {other:?}: use resolve, ignore or reopen"))),
    }
}

/// What a status form asks for, on the issue page or, once confirmed, for
/// several issues at once.
enum StatusChange {
    Resolve(Resolution),
    Ignore(IgnoreCondition),
    Reopen,
}

impl StatusChange {
    /// Reads the change from `field` (`resolve`, `ignore`, `reopen`) and
    /// its choices: `resolved_in` with `release`, or `ignore` with `n`.
    fn from_form(form: &FormData, field: &str) -> Result<StatusChange, PageError> {
        Ok(match status_of_action(form.get(field))? {
            IssueStatus::Resolved => StatusChange::Resolve(resolution(form.get("resolved_in"), form.get("release"))?),
            IssueStatus::Ignored => StatusChange::Ignore(ignore_condition(form.get("ignore"), form.get("n"))?),
            IssueStatus::Unresolved => StatusChange::Reopen,
        })
    }

    async fn apply(&self, state: &AppState, viewer: Viewer, id: i64) -> Result<Option<Issue>, PageError> {
        Ok(match self {
            StatusChange::Resolve(resolution) => state.store.resolve_issue(viewer, id, resolution).await?,
            StatusChange::Ignore(condition) => {
                state.store.ignore_issue(viewer, id, *condition, crate::clock::now_millis()).await?
            }
            StatusChange::Reopen => state.store.set_issue_status(viewer, id, IssueStatus::Unresolved).await?,
        })
    }
}

/// The resolve form: `resolved_in` is `now` (or empty), `next_release`,
/// `current_release`, or `release` with the release typed in `release`.
fn resolution(choice: &str, release: &str) -> Result<Resolution, PageError> {
    match choice {
        "" | "now" => Ok(Resolution::Now),
        "next_release" => Ok(Resolution::NextRelease),
        "current_release" => Ok(Resolution::CurrentRelease),
        "release" if release.is_empty() => {
            Err(PageError::BadRequest("type the release the fix is in, such as 1.4.0".into()))
        }
        "release" => booboo_core::release_order::check_release_name(release)
            .map(|()| Resolution::InRelease(release.to_string()))
            .map_err(PageError::BadRequest),
        other => Err(PageError::BadRequest(format!(
            "unknown choice {other:?}: resolve now, in the next release, in the current release or in a release"
        ))),
    }
}

/// The issue list's bulk actions: the first post shows the chosen issues
/// and the same choices as the issue page; the confirmed post applies them.
pub async fn bulk(
    State(state): State<AppState>,
    me: SignedIn,
    Path((org, slug)): Path<(String, String)>,
    form: FormData,
) -> Result<Response, PageError> {
    me.check_csrf(&form)?;
    let project = access::project(&*state.store, me.viewer(), &org, &slug).await?;
    if form.get("action") == "merge" {
        // Merging asks which issue to keep first (web/merge.rs).
        let mut query: Vec<(&str, &str)> = form.all("issue").map(|id| ("issue", id)).collect();
        query.push(("back", form.get("back")));
        let query = serde_urlencoded::to_string(&query).map_err(|e| PageError::Internal(e.to_string()))?;
        return Ok(Redirect::to(&format!("/projects/{org}/{slug}/merge?{query}")).into_response());
    }
    let action = form.get("action");
    let assigning = action == "assign";
    if !assigning {
        status_of_action(action)?;
    }
    let ids = form
        .all("issue")
        .map(|id| id.parse::<i64>().map_err(|_| PageError::BadRequest(format!("{id:?} is not an issue id"))))
        .collect::<Result<Vec<_>, _>>()?;
    if ids.is_empty() {
        return Err(PageError::BadRequest("tick at least one issue, then choose what to do with them".into()));
    }
    // Every issue must be one of this project's before any is changed.
    let mut issues = Vec::with_capacity(ids.len());
    for id in &ids {
        issues.push(access::issue_of_project(&*state.store, me.viewer(), project.id, *id).await?);
    }
    let back = back_to(&form, format!("/projects/{org}/{slug}"));
    if assigning {
        // Assigning changes nothing that cannot be changed back: no confirmation.
        for id in ids {
            ownership::assign_one(&state, me.viewer(), id, form.get("assignee")).await?;
        }
        return Ok(Redirect::to(&back).into_response());
    }
    if form.get("confirm") != "yes" {
        let verb = match status_of_action(action)? {
            IssueStatus::Resolved => "Resolve",
            IssueStatus::Ignored => "Ignore",
            IssueStatus::Unresolved => "Reopen",
        };
        let action = verb.to_lowercase();
        let releases = state.store.project_facets(me.viewer(), project.id).await?.releases;
        let body =
            page("confirm_bulk.html", context! { me => me.me(), project, issues, verb, action, releases, back })?;
        return Ok(body.into_response());
    }
    let change = StatusChange::from_form(&form, "action")?;
    for id in ids {
        change.apply(&state, me.viewer(), id).await?.ok_or(PageError::NotFound("issue"))?;
    }
    Ok(Redirect::to(&back).into_response())
}

async fn project_by_id(state: &AppState, viewer: Viewer, id: i64) -> Result<Project, PageError> {
    state.store.projects_for(viewer).await?.into_iter().find(|p| p.id == id).ok_or(PageError::NotFound("issue"))
}

fn parse_id(text: &str, what: &'static str) -> Result<i64, PageError> {
    text.parse().map_err(|_| PageError::NotFound(what))
}

pub async fn show(State(state): State<AppState>, me: SignedIn, Path(id): Path<String>) -> Result<Response, PageError> {
    let id = parse_id(&id, "issue")?;
    match issue_page(&state, &me, id, None).await {
        // A merged issue's old link leads to the issue it was merged into.
        Err(PageError::NotFound("issue")) => match super::merge::merged_issue_redirect(&state, &me, id).await? {
            Some(redirect) => Ok(redirect),
            None => Err(PageError::NotFound("issue")),
        },
        other => other,
    }
}

pub async fn show_event(
    State(state): State<AppState>,
    me: SignedIn,
    Path((id, event)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let event = normalise_event_id(&event).ok_or(PageError::NotFound("event"))?;
    issue_page(&state, &me, parse_id(&id, "issue")?, Some(&event)).await
}

async fn issue_page(state: &AppState, me: &SignedIn, id: i64, event_id: Option<&str>) -> Result<Response, PageError> {
    let viewer = me.viewer();
    let detail = access::issue(&*state.store, viewer, id).await?;
    let project = project_by_id(state, viewer, detail.issue.project_id).await?;
    // An issue may have no stored event at all (every one over a rate limit,
    // or removed by retention): its page still shows what was counted.
    let event = state.store.issue_event(viewer, id, event_id).await?;
    if event.is_none() && event_id.is_some() {
        return Err(PageError::NotFound("event"));
    }
    let now = clock::now_millis();
    let since = now.div_euclid(HOUR_MS) - 30 * 24;
    let hourly = state.store.issue_hourly(viewer, project.id, &[id], since).await?;
    let count = detail.issue.count.max(1);
    let share = |n: i64| ((n as f64 / count as f64) * 1000.0).round() / 10.0;
    let tags: Vec<_> = detail
        .tags
        .iter()
        .map(|t| {
            let values: Vec<_> = t
                .values
                .iter()
                .take(10)
                .map(|v| context! { value => v.value, count => v.count, share => share(v.count) })
                .collect();
            context! { key => t.key, values, more => t.values.len().saturating_sub(10) }
        })
        .collect();
    let view =
        event.as_ref().and_then(|event| match serde_json::from_str::<booboo_core::Event>(&event.event.payload) {
            Ok(parsed) => Some(event_view::view(&event.event.event_id, &parsed)),
            Err(e) => {
                tracing::warn!(event = %event.event.event_id, "stored event does not parse as an event: {e}");
                None
            }
        });
    let alerts = state.store.issue_deliveries(id, 20).await?;
    // Ownership and history: who may be assigned, and what happened.
    let members = state.store.members_of(viewer, &project.org_slug).await?.unwrap_or_default();
    let activity = state
        .store
        .issue_activity(viewer, id, None, Page { offset: 0, limit: ACTIVITY_SHOWN })
        .await?
        .ok_or(PageError::NotFound("issue"))?;
    let activity_more = activity.next_offset.is_some();
    let activity: Vec<_> = activity.items.iter().map(ownership::activity_line).collect();
    let body = page(
        "issue.html",
        context! {
            me => me.me(), project, detail, tags, view, alerts, nav => "issues",
            members, activity, activity_more, max_comment => crate::store::activity::MAX_COMMENT_CHARS,
            event => event.as_ref().map(|event| context! {
                id => event.event.event_id, received_at => event.event.received_at,
                older => event.older, newer => event.newer,
            }),
            day_chart => chart::hourly(&hourly, id, now, 24, 10.0, 60.0),
            month_chart => chart::daily(&hourly, id, now, 30, 8.0, 60.0),
        },
    )?;
    Ok(body.into_response())
}

pub async fn set_status(
    State(state): State<AppState>,
    me: SignedIn,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, PageError> {
    me.check_csrf(&form)?;
    let id = parse_id(&id, "issue")?;
    let changed = StatusChange::from_form(&form, "status")?.apply(&state, me.viewer(), id).await?;
    changed.ok_or(PageError::NotFound("issue"))?;
    Ok(Redirect::to(&back_to(&form, format!("/issues/{id}"))).into_response())
}

/// The issue page's ignore form: `ignore` is `forever` (or empty), a number
/// of minutes, or `count` / `users` with the number in `n`.
fn ignore_condition(choice: &str, n: &str) -> Result<IgnoreCondition, PageError> {
    let number = |text: &str, what: &str| {
        text.trim()
            .parse::<i64>()
            .map_err(|_| PageError::BadRequest(format!("{what} must be a whole number, got {:?}", text.trim())))
    };
    let (minutes, count, users) = match choice {
        "" | "forever" => (None, None, None),
        "count" => (None, Some(number(n, "the number of more events")?), None),
        "users" => (None, None, Some(number(n, "the number of more users")?)),
        minutes => (Some(number(minutes, "how long to ignore, in minutes,")?), None, None),
    };
    IgnoreCondition::from_parts(minutes, count, users).map_err(|(_, message)| PageError::BadRequest(message))
}

/// The stored event as JSON, exactly what the API's `GET /events/{id}` gives.
pub async fn event_json(
    State(state): State<AppState>,
    me: SignedIn,
    Path((id, event)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let id = parse_id(&id, "issue")?;
    let event = normalise_event_id(&event).ok_or(PageError::NotFound("event"))?;
    let found = state.store.issue_event(me.viewer(), id, Some(&event)).await?.ok_or(PageError::NotFound("event"))?;
    let text = serde_json::to_string_pretty(&crate::api::event_json(&found.event))
        .map_err(|e| PageError::Internal(format!("event JSON: {e}")))?;
    let mut response = text.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}
