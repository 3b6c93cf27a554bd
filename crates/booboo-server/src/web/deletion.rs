//! Deleting an issue or a project from the dashboard: a confirmation page,
//! then the deletion (organisation admins only; the store checks the role).
//! A project's confirmation asks for its name typed out, since everything
//! stored for it goes.

use super::form::FormData;
use super::page_error::PageError;
use super::session::SignedIn;
use super::templates::page;
use crate::state::AppState;
use crate::{access, clock};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;

fn issue_id(text: &str) -> Result<i64, PageError> {
    text.parse().map_err(|_| PageError::NotFound("issue"))
}

pub async fn confirm_issue(
    State(state): State<AppState>,
    me: SignedIn,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = issue_id(&id)?;
    let detail = access::issue(&*state.store, me.viewer(), id).await?;
    let issue = &detail.issue;
    let body = page(
        "confirm_delete.html",
        context! {
            me => me.me(), what => "issue", name => format!("{} ({})", issue.id, issue.title),
            consequence => format!("Its {} stored events and its counts go; a later event of the same error starts a new issue.", issue.count),
            action => format!("/issues/{id}/delete"), cancel => format!("/issues/{id}"),
        },
    )?;
    Ok(body.into_response())
}

pub async fn delete_issue(
    State(state): State<AppState>,
    me: SignedIn,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, PageError> {
    me.check_csrf(&form)?;
    let id = issue_id(&id)?;
    let detail = access::issue(&*state.store, me.viewer(), id).await?;
    let project_id = detail.issue.project_id;
    if !state.store.delete_issue(me.viewer(), id).await? {
        return Err(PageError::NotFound("issue"));
    }
    let back = state
        .store
        .projects_for(me.viewer())
        .await?
        .into_iter()
        .find(|p| p.id == project_id)
        .map(|p| format!("/projects/{}/{}", p.org_slug, p.slug))
        .unwrap_or_else(|| "/projects".into());
    Ok(Redirect::to(&back).into_response())
}

pub async fn confirm_project(
    State(state): State<AppState>,
    me: SignedIn,
    Path((org, slug)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let project = access::project(&*state.store, me.viewer(), &org, &slug).await?;
    project_page(&me, &project.org_slug, &project.slug, None)
}

fn project_page(me: &SignedIn, org: &str, slug: &str, error: Option<String>) -> Result<Response, PageError> {
    let body = page(
        "confirm_delete.html",
        context! {
            me => me.me(), what => "project", name => format!("{org}/{slug}"), error,
            consequence => "Its keys stop working at once, and all its issues and events go.",
            export_path => format!("{org}/{slug}"), confirm_name => slug,
            action => format!("/projects/{org}/{slug}/delete"), cancel => format!("/projects/{org}/{slug}/setup"),
        },
    )?;
    Ok(body.into_response())
}

pub async fn delete_project(
    State(state): State<AppState>,
    me: SignedIn,
    Path((org, slug)): Path<(String, String)>,
    form: FormData,
) -> Result<Response, PageError> {
    me.check_csrf(&form)?;
    let project = access::project(&*state.store, me.viewer(), &org, &slug).await?;
    if form.get("confirm") != project.slug {
        let error = format!("Type the project's name, {}, to confirm.", project.slug);
        let mut response = project_page(&me, &project.org_slug, &project.slug, Some(error))?;
        *response.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
        return Ok(response);
    }
    if !state.store.delete_project(me.viewer(), project.id, clock::now_millis()).await? {
        return Err(PageError::NotFound("project"));
    }
    Ok(Redirect::to("/projects").into_response())
}
