//! Merging issues from the dashboard: the issue list's "Merge…" bulk action
//! leads to a page that shows the ticked issues and asks which one to keep;
//! confirming merges the others into it (any member who can see them may).

use super::form::FormData;
use super::local_path::same_origin_path;
use super::page_error::PageError;
use super::session::SignedIn;
use super::templates::page;
use crate::state::AppState;
use crate::store::{Issue, IssueMerge, StoreError};
use crate::{access, clock};
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;

fn issue_ids<'a>(values: impl Iterator<Item = &'a str>) -> Result<Vec<i64>, PageError> {
    let mut ids = values
        .map(|id| id.parse::<i64>().map_err(|_| PageError::BadRequest(format!("{id:?} is not an issue id"))))
        .collect::<Result<Vec<_>, _>>()?;
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// The ticked issues, each visible and of this project, most events first.
async fn issues_of(state: &AppState, me: &SignedIn, project_id: i64, ids: &[i64]) -> Result<Vec<Issue>, PageError> {
    let mut issues = Vec::with_capacity(ids.len());
    for &id in ids {
        issues.push(access::issue_of_project(&*state.store, me.viewer(), project_id, id).await?);
    }
    issues.sort_by(|a, b| b.count.cmp(&a.count).then(a.id.cmp(&b.id)));
    Ok(issues)
}

pub async fn confirm(
    State(state): State<AppState>,
    me: SignedIn,
    Path((org, slug)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let project = access::project(&*state.store, me.viewer(), &org, &slug).await?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
        .map_err(|_| PageError::BadRequest("this merge link is malformed; tick the issues again".into()))?;
    let ids = issue_ids(pairs.iter().filter(|(k, _)| k == "issue").map(|(_, v)| v.as_str()))?;
    if ids.len() < 2 {
        return Err(PageError::BadRequest("tick at least two issues to merge, then choose Merge".into()));
    }
    let fallback = format!("/projects/{org}/{slug}");
    let back = pairs.iter().find(|(k, _)| k == "back").map(|(_, v)| v.as_str()).unwrap_or("");
    let back = same_origin_path(back, &fallback).to_string();
    let issues = issues_of(&state, &me, project.id, &ids).await?;
    let body = page(
        "merge_issues.html",
        context! { me => me.me(), project, issues, target => issues[0].id, back, nav => "issues" },
    )?;
    Ok(body.into_response())
}

pub async fn merge(
    State(state): State<AppState>,
    me: SignedIn,
    Path((org, slug)): Path<(String, String)>,
    form: FormData,
) -> Result<Response, PageError> {
    me.check_csrf(&form)?;
    let project = access::project(&*state.store, me.viewer(), &org, &slug).await?;
    let target: i64 = form
        .get("target")
        .parse()
        .map_err(|_| PageError::BadRequest("choose the issue to keep, then confirm".into()))?;
    let ids = issue_ids(form.all("issue"))?;
    let sources: Vec<i64> = ids.into_iter().filter(|id| *id != target).collect();
    let merge = IssueMerge::new(target, &sources).map_err(PageError::BadRequest)?;
    // The store checks access and that all are of one project; this page
    // only merges within the project it was opened for.
    issues_of(&state, &me, project.id, &[target]).await?;
    match state.store.merge_issues(me.viewer(), &merge, clock::now_millis()).await {
        Ok(true) => Ok(Redirect::to(&format!("/issues/{target}")).into_response()),
        Ok(false) | Err(StoreError::NotFound(_)) => Err(PageError::NotFound("issue")),
        Err(e) => Err(e.into()),
    }
}

/// Where a merged issue's old link leads: the issue it was merged into.
pub async fn merged_issue_redirect(state: &AppState, me: &SignedIn, id: i64) -> Result<Option<Response>, PageError> {
    Ok(state
        .store
        .merged_issue_target(me.viewer(), id)
        .await?
        .map(|target| Redirect::to(&format!("/issues/{target}")).into_response()))
}
