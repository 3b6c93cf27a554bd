//! A project's Alerts page: its rules with their channels (and each
//! channel's last failure), adding, editing, testing and deleting rules,
//! and the latest deliveries. Rules are validated exactly as the API and the
//! CLI validate them.

use super::form::FormData;
use super::page_error::PageError;
use super::session::SignedIn;
use super::templates::page;
use crate::alerts::rules::{input_of, ChannelInput, RuleInput};
use crate::alerts::{prepare_rule, send_test};
use crate::api::alerts::rule_json;
use crate::state::AppState;
use crate::store::alert_rules::LEVELS;
use crate::store::Project;
use crate::{access, clock};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde_json::Value;

/// Deliveries shown on the page.
const RECENT_DELIVERIES: i64 = 25;

/// What the page says after an action: an error, a success, a secret to
/// show once, and the add form's values to keep after a refusal.
#[derive(Default)]
struct Notice {
    error: Option<String>,
    success: Option<String>,
    secret: Option<String>,
    form: Vec<(String, String)>,
}

async fn alerts_page(
    state: &AppState,
    me: &SignedIn,
    project: &Project,
    status: StatusCode,
    notice: Notice,
) -> Result<Response, PageError> {
    let rules = state.store.alert_rules(project.id).await?;
    let rules: Vec<Value> = rules
        .iter()
        .map(|r| {
            let mut value = rule_json(r, &[]);
            value["environments_text"] = Value::String(r.filters.environments.join(", "));
            value
        })
        .collect();
    let deliveries = state.store.project_deliveries(project.id, RECENT_DELIVERIES).await?;
    let form: std::collections::BTreeMap<String, String> = notice.form.into_iter().collect();
    let body = page(
        "alerts.html",
        context! {
            me => me.me(), project, rules, deliveries, form, levels => LEVELS, nav => "alerts",
            error => notice.error, success => notice.success, secret => notice.secret,
        },
    )?;
    Ok((status, body).into_response())
}

pub async fn show(
    State(state): State<AppState>,
    me: SignedIn,
    Path((org, slug)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let project = access::project(&*state.store, me.viewer(), &org, &slug).await?;
    alerts_page(&state, &me, &project, StatusCode::OK, Notice::default()).await
}

/// The rule fields of a form, over `base` (the stored rule when editing).
fn input_from(form: &FormData, mut input: RuleInput, with_channel: bool) -> RuleInput {
    let optional = |name: &str| Some(form.get(name).to_string()).filter(|v| !v.is_empty());
    input.name = optional("name");
    input.trigger = form.get("trigger").to_string();
    input.count = None;
    input.window = None;
    if matches!(input.trigger.as_str(), "frequency" | "users") {
        // Text that is not a number fails validation as out of range (-1).
        input.count = optional("count").map(|c| c.parse().unwrap_or(-1));
        input.window = optional("window");
    }
    input.environments =
        form.get("environments").split(',').map(str::trim).filter(|e| !e.is_empty()).map(String::from).collect();
    input.level = optional("level");
    input.release = optional("release");
    input.tag = optional("tag");
    input.throttle = optional("throttle");
    if with_channel {
        input.channels = vec![ChannelInput {
            kind: form.get("channel_kind").to_string(),
            target: form.get("channel_url").to_string(),
            secret: optional("channel_secret"),
        }];
    }
    input
}

pub async fn create(
    State(state): State<AppState>,
    me: SignedIn,
    Path((org, slug)): Path<(String, String)>,
    form: FormData,
) -> Result<Response, PageError> {
    me.check_csrf(&form)?;
    let project = access::project(&*state.store, me.viewer(), &org, &slug).await?;
    let input = input_from(&form, RuleInput::default(), true);
    let (rule, generated) = match prepare_rule(&input, &state.config.outbound_allow, state.mailer.is_some()).await {
        Ok(prepared) => prepared,
        Err(e) => {
            let kept = form.0.iter().filter(|(k, _)| k != "csrf" && k != "channel_secret").cloned().collect();
            let notice = Notice { error: Some(e.to_string()), form: kept, ..Notice::default() };
            return alerts_page(&state, &me, &project, StatusCode::UNPROCESSABLE_ENTITY, notice).await;
        }
    };
    let created = state.store.create_alert_rule(project.id, &rule, clock::now_millis()).await?;
    let notice = Notice {
        success: Some(format!("Added the rule “{}”.", created.name)),
        secret: generated.into_iter().next().map(|(_, secret)| secret),
        ..Notice::default()
    };
    alerts_page(&state, &me, &project, StatusCode::CREATED, notice).await
}

async fn rule_of(
    state: &AppState,
    me: &SignedIn,
    org: &str,
    slug: &str,
    id: &str,
) -> Result<(Project, crate::store::AlertRule), PageError> {
    let project = access::project(&*state.store, me.viewer(), org, slug).await?;
    let id: i64 = id.parse().map_err(|_| PageError::NotFound("alert rule"))?;
    let rule = state
        .store
        .alert_rule(me.viewer(), id)
        .await?
        .filter(|r| r.project_id == project.id)
        .ok_or(PageError::NotFound("alert rule"))?;
    Ok((project, rule))
}

pub async fn edit(
    State(state): State<AppState>,
    me: SignedIn,
    Path((org, slug, id)): Path<(String, String, String)>,
    form: FormData,
) -> Result<Response, PageError> {
    me.check_csrf(&form)?;
    let (project, rule) = rule_of(&state, &me, &org, &slug, &id).await?;
    let input = input_from(&form, input_of(&rule), false);
    match prepare_rule(&input, &state.config.outbound_allow, state.mailer.is_some()).await {
        Ok((changed, _)) => {
            state.store.update_alert_rule(me.viewer(), rule.id, &changed, false).await?;
            Ok(Redirect::to(&format!("/projects/{org}/{slug}/alerts#rule-{}", rule.id)).into_response())
        }
        Err(e) => {
            let notice =
                Notice { error: Some(format!("Rule “{}” was not changed: {e}", rule.name)), ..Notice::default() };
            alerts_page(&state, &me, &project, StatusCode::UNPROCESSABLE_ENTITY, notice).await
        }
    }
}

pub async fn test(
    State(state): State<AppState>,
    me: SignedIn,
    Path((org, slug, id)): Path<(String, String, String)>,
    form: FormData,
) -> Result<Response, PageError> {
    me.check_csrf(&form)?;
    let (project, rule) = rule_of(&state, &me, &org, &slug, &id).await?;
    let results = send_test(
        &*state.store,
        &state.email_sender(),
        &state.config.outbound_allow,
        &state.config.public_url,
        project.clone(),
        &rule,
    )
    .await?;
    let failed: Vec<String> =
        results.iter().filter_map(|r| r.detail.as_ref().map(|d| format!("{} channel: {d}", r.kind))).collect();
    let notice = if failed.is_empty() {
        Notice {
            success: Some(format!("Sent a test message to every channel of “{}”.", rule.name)),
            ..Notice::default()
        }
    } else {
        Notice {
            error: Some(format!("The test of “{}” failed: {}", rule.name, failed.join("; "))),
            ..Notice::default()
        }
    };
    alerts_page(&state, &me, &project, StatusCode::OK, notice).await
}

pub async fn delete(
    State(state): State<AppState>,
    me: SignedIn,
    Path((org, slug, id)): Path<(String, String, String)>,
    form: FormData,
) -> Result<Response, PageError> {
    me.check_csrf(&form)?;
    let (_, rule) = rule_of(&state, &me, &org, &slug, &id).await?;
    state.store.delete_alert_rule(me.viewer(), rule.id).await?;
    Ok(Redirect::to(&format!("/projects/{org}/{slug}/alerts")).into_response())
}
