//! A project's settings page: its limits (stored events, age, rate limit,
//! spike guard), the effective values and the installation's defaults.
//! Everyone in the organisation can read them; admins change them (the
//! store checks the role). Fields are read by the same functions as the
//! CLI's and the API's, so the page refuses exactly what they refuse.

use super::form::FormData;
use super::page_error::PageError;
use super::session::SignedIn;
use super::templates::page;
use crate::access;
use crate::state::AppState;
use crate::store::project_limits::{read_max_events, read_rate_limit, read_retention_days};
use crate::store::{LimitChange, Project, ProjectLimitsPatch};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
pub struct Shown {
    #[serde(default)]
    saved: Option<String>,
}

pub async fn show(
    State(state): State<AppState>,
    me: SignedIn,
    Path((org, slug)): Path<(String, String)>,
    Query(shown): Query<Shown>,
) -> Result<Response, PageError> {
    let project = access::project(&*state.store, me.viewer(), &org, &slug).await?;
    let success = shown.saved.map(|_| "Settings saved. Running servers apply them within seconds.");
    render(&state, &me, &project, None, BTreeMap::new(), success).await
}

pub async fn save(
    State(state): State<AppState>,
    me: SignedIn,
    Path((org, slug)): Path<(String, String)>,
    form: FormData,
) -> Result<Response, PageError> {
    me.check_csrf(&form)?;
    let project = access::project(&*state.store, me.viewer(), &org, &slug).await?;
    let (patch, errors) = patch_from_form(&form);
    if !errors.is_empty() {
        let typed: BTreeMap<&str, &str> =
            ["max_events", "retention_days", "rate_limit"].into_iter().map(|f| (f, form.get(f))).collect();
        let mut response = render(&state, &me, &project, Some(errors), typed, None).await?;
        *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
        return Ok(response);
    }
    state.store.set_project_limits(me.viewer(), project.id, &patch).await?.ok_or(PageError::NotFound("project"))?;
    Ok(Redirect::to(&format!("/projects/{}/{}/settings?saved=1", project.org_slug, project.slug)).into_response())
}

/// Reads the form: an empty field means the installation's default (or off
/// for the rate); the spike guard is a checkbox. Errors are by field.
fn patch_from_form(form: &FormData) -> (ProjectLimitsPatch, BTreeMap<&'static str, String>) {
    let mut errors = BTreeMap::new();
    let mut patch = ProjectLimitsPatch::default();
    let blank_or = |text: &str, read: fn(&str) -> Result<LimitChange<i64>, String>| {
        if text.trim().is_empty() {
            Ok(LimitChange::Reset)
        } else {
            read(text)
        }
    };
    match blank_or(form.get("max_events"), read_max_events) {
        Ok(change) => patch.max_events = change,
        Err(e) => drop(errors.insert("max_events", e)),
    }
    match blank_or(form.get("retention_days"), read_retention_days) {
        Ok(change) => patch.retention_days = change,
        Err(e) => drop(errors.insert("retention_days", e)),
    }
    let rate = form.get("rate_limit").trim();
    if rate.is_empty() {
        patch.rate_limit = LimitChange::Reset;
    } else {
        match read_rate_limit(rate) {
            Ok(change) => patch.rate_limit = change,
            Err(e) => drop(errors.insert("rate_limit", e)),
        }
    }
    patch.spike_guard = Some(!form.get("spike_guard").is_empty());
    (patch, errors)
}

async fn render(
    state: &AppState,
    me: &SignedIn,
    project: &Project,
    errors: Option<BTreeMap<&'static str, String>>,
    typed: BTreeMap<&str, &str>,
    success: Option<&str>,
) -> Result<Response, PageError> {
    let is_admin = access::is_admin(&*state.store, me.viewer(), &project.org_slug).await?;
    let own = project.limits;
    let defaults = state.config.limit_defaults();
    let effective = own.effective(defaults);
    // What the fields show: what was typed (after an error), else the saved value.
    let value =
        |field: &str, saved: Option<String>| typed.get(field).map(|t| t.to_string()).or(saved).unwrap_or_default();
    let error = errors.as_ref().map(|_| "Nothing was saved: correct the fields marked below.");
    let body = page(
        "project_settings.html",
        context! {
            me => me.me(), project, is_admin, nav => "settings", error, success,
            field_errors => errors.unwrap_or_default(),
            max_events => value("max_events", own.max_events.map(|n| n.to_string())),
            retention_days => value("retention_days", own.retention_days.map(|n| n.to_string())),
            rate_limit => value("rate_limit", own.rate_limit.map(|r| r.to_string())),
            spike_guard => own.spike_guard,
            effective,
            default_max_events => defaults.max_events,
            default_retention_days => defaults.retention_days,
            installation_rate_limit => state.config.rate_limit.map(|r| r.to_string()),
            max_disk_bytes => state.config.max_disk_bytes,
            full_payload_days => state.config.full_payload_days,
        },
    )?;
    Ok(body.into_response())
}
