//! Projects: the list, creating one, and each project's setup page (DSN,
//! snippets, live connection status, keys).

use super::form::FormData;
use super::page_error::PageError;
use super::session::SignedIn;
use super::templates::page;
use super::time_text;
use crate::access::{self, AdminOnly};
use crate::identifiers::check_slug;
use crate::state::AppState;
use crate::store::{Project, Role};
use crate::{clock, secrets};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use minijinja::context;
use serde::Serialize;

/// Where a project stands with its clients, in words.
#[derive(Serialize)]
pub struct Connection {
    /// `waiting`, `connected` or `receiving`.
    state: &'static str,
    headline: String,
    detail: String,
}

pub fn connection(project: &Project, now: i64) -> Connection {
    let connected = match (&project.connected_sdk, project.connected_at) {
        (Some(sdk), Some(at)) => {
            format!("Connected: SDK {sdk} at {} ({}).", time_text::exact(at), time_text::ago(at, now))
        }
        _ => String::new(),
    };
    match project.last_event_at {
        Some(at) => Connection {
            state: "receiving",
            headline: format!("Last event {} ({}).", time_text::ago(at, now), time_text::exact(at)),
            detail: connected,
        },
        None if !connected.is_empty() => Connection {
            state: "connected",
            headline: connected,
            detail: "No error has arrived yet; raise one to see it here.".into(),
        },
        None => Connection {
            state: "waiting",
            headline: "Waiting for the first event…".into(),
            detail: "Install the SDK and call booboo.init() with the DSN below; this page updates by itself.".into(),
        },
    }
}

async fn list_page(
    state: &AppState,
    me: &SignedIn,
    status: StatusCode,
    error: Option<String>,
    organisation: &str,
    project: &str,
) -> Result<Response, PageError> {
    let now = clock::now_millis();
    let projects = state.store.projects_for(me.viewer()).await?;
    let rows: Vec<_> = projects.iter().map(|p| context! { project => p, connection => connection(p, now) }).collect();
    let admin_orgs: Vec<String> = state
        .store
        .organisations_for(me.viewer())
        .await?
        .into_iter()
        .filter(|o| o.role == Role::Admin)
        .map(|o| o.org_slug)
        .collect();
    let body = page(
        "projects.html",
        context! {
            me => me.me(), rows, admin_orgs, error, organisation, project, nav => "projects",
            shedding => state.metrics.shedding().current(now),
        },
    )?;
    Ok((status, body).into_response())
}

pub async fn list(State(state): State<AppState>, me: SignedIn) -> Result<Response, PageError> {
    list_page(&state, &me, StatusCode::OK, None, "", "").await
}

pub async fn create(State(state): State<AppState>, me: SignedIn, form: FormData) -> Result<Response, PageError> {
    me.check_csrf(&form)?;
    let (org, slug) = (form.get("organisation"), form.get("project"));
    let checked = check_slug(org, "organisation").and_then(|_| check_slug(slug, "project"));
    let created = match checked {
        Err(message) => Err(message),
        Ok(()) => {
            let token = secrets::new_ingest_token();
            match state.store.create_project_for(me.viewer(), org, slug, &token, clock::now_millis()).await {
                Ok(created) => Ok(created),
                Err(crate::store::StoreError::Conflict(m) | crate::store::StoreError::Forbidden(m)) => Err(m),
                Err(other) => return Err(other.into()),
            }
        }
    };
    match created {
        Ok((project, _)) => {
            if state.mailer.is_some() {
                crate::alerts::add_default_email_rules(&*state.store, project.id, clock::now_millis()).await?;
            }
            Ok(Redirect::to(&format!("/projects/{}/{}/setup", project.org_slug, project.slug)).into_response())
        }
        Err(message) => {
            let mut letters = message.chars();
            let message = letters.next().map(|first| first.to_uppercase().chain(letters).collect()).unwrap_or(message);
            list_page(&state, &me, StatusCode::UNPROCESSABLE_ENTITY, Some(message), org, slug).await
        }
    }
}

pub async fn setup(
    State(state): State<AppState>,
    me: SignedIn,
    Path((org, slug)): Path<(String, String)>,
) -> Result<Response, PageError> {
    setup_page(&state, &me, &org, &slug).await
}

async fn setup_page(state: &AppState, me: &SignedIn, org: &str, slug: &str) -> Result<Response, PageError> {
    let project = access::project(&*state.store, me.viewer(), org, slug).await?;
    let keys = state.store.project_keys(me.viewer(), project.id).await?.ok_or(PageError::NotFound("project"))?;
    let dsn_of = |token: &str| state.config.dsn(token, &project.org_slug, &project.slug);
    let sentry_dsn_of = |token: &str| state.config.sentry_dsn(token, project.id);
    let live = keys.iter().find(|k| k.revoked_at.is_none());
    let dsn = live.map(|k| dsn_of(&k.token));
    let sentry_dsn = live.map(|k| sentry_dsn_of(&k.token));
    let keys: Vec<_> = keys
        .iter()
        .map(|k| {
            context! {
                id => k.id, label => k.label, created_at => k.created_at, revoked_at => k.revoked_at,
                dsn => dsn_of(&k.token), sentry_dsn => sentry_dsn_of(&k.token),
            }
        })
        .collect();
    let is_admin = access::is_admin(&*state.store, me.viewer(), org).await?;
    let body = page(
        "project_setup.html",
        context! {
            me => me.me(), project, keys, dsn, sentry_dsn, is_admin, nav => "setup",
            connection => connection(&project, clock::now_millis()),
            sdk_url => format!("{}/sdk/python/{}", state.config.public_url, super::sdk_download::file_name()),
        },
    )?;
    Ok(body.into_response())
}

/// The live status as JSON, polled by the setup page's script.
pub async fn status(
    State(state): State<AppState>,
    me: SignedIn,
    Path((org, slug)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let project = access::project(&*state.store, me.viewer(), &org, &slug).await?;
    Ok(Json(connection(&project, clock::now_millis())).into_response())
}

pub async fn add_key(
    State(state): State<AppState>,
    me: SignedIn,
    Path((org, slug)): Path<(String, String)>,
    form: FormData,
) -> Result<Response, PageError> {
    me.check_csrf(&form)?;
    let project = access::project(&*state.store, me.viewer(), &org, &slug).await?;
    access::require_admin(&*state.store, me.viewer(), &org, AdminOnly::Keys).await?;
    let label = form.get("label");
    if label.chars().count() > 100 {
        return Err(PageError::BadRequest("a key's label can be at most 100 characters".into()));
    }
    let label = if label.is_empty() { "unnamed" } else { label };
    state
        .store
        .add_project_key(me.viewer(), project.id, &secrets::new_ingest_token(), label, clock::now_millis())
        .await?
        .ok_or(PageError::NotFound("project"))?;
    Ok(Redirect::to(&format!("/projects/{org}/{slug}/setup#keys")).into_response())
}

pub async fn revoke_key(
    State(state): State<AppState>,
    me: SignedIn,
    Path((org, slug, key)): Path<(String, String, String)>,
    form: FormData,
) -> Result<Response, PageError> {
    me.check_csrf(&form)?;
    let project = access::project(&*state.store, me.viewer(), &org, &slug).await?;
    access::require_admin(&*state.store, me.viewer(), &org, AdminOnly::Keys).await?;
    let key: i64 = key.parse().map_err(|_| PageError::NotFound("key"))?;
    if !state.store.revoke_project_key(me.viewer(), project.id, key, clock::now_millis()).await? {
        return Err(PageError::NotFound("key"));
    }
    Ok(Redirect::to(&format!("/projects/{org}/{slug}/setup#keys")).into_response())
}

/// Deletes a key, live or revoked: refused from then on, gone from the list.
pub async fn delete_key(
    State(state): State<AppState>,
    me: SignedIn,
    Path((org, slug, key)): Path<(String, String, String)>,
    form: FormData,
) -> Result<Response, PageError> {
    me.check_csrf(&form)?;
    let project = access::project(&*state.store, me.viewer(), &org, &slug).await?;
    access::require_admin(&*state.store, me.viewer(), &org, AdminOnly::Keys).await?;
    let key: i64 = key.parse().map_err(|_| PageError::NotFound("key"))?;
    if !state.store.delete_project_key(me.viewer(), project.id, key).await? {
        return Err(PageError::NotFound("key"));
    }
    Ok(Redirect::to(&format!("/projects/{org}/{slug}/setup#keys")).into_response())
}
