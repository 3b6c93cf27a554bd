//! `GET` and `PATCH /api/v1/projects/{org}/{project}`: a project with its
//! limits, its own and the effective ones (its own or the installation's
//! defaults). Values are read by the same functions as the CLI's and the
//! dashboard's, so all three refuse the same input.

use super::{project_json, ApiResult};
use crate::access;
use crate::error::AppError;
use crate::state::AppState;
use crate::store::project_limits::{
    check_max_events, check_retention_days, read_max_events, read_rate_limit, read_retention_days,
};
use crate::store::{LimitChange, Project, ProjectLimitsPatch};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

use super::auth::ApiUser;

/// The project's JSON plus its own limits and the effective ones.
pub fn project_with_limits_json(state: &AppState, project: &Project) -> Value {
    let mut value = project_json(project);
    let own = project.limits;
    let effective = own.effective(state.config.limit_defaults());
    if let Value::Object(map) = &mut value {
        map.insert("max_events".into(), json!(own.max_events));
        map.insert("retention_days".into(), json!(own.retention_days));
        map.insert("rate_limit".into(), json!(own.rate_limit.map(|r| r.to_string())));
        map.insert("spike_guard".into(), json!(own.spike_guard));
        map.insert(
            "effective".into(),
            json!({
                "max_events": effective.max_events,
                "retention_days": effective.retention_days,
                "rate_limit": effective.rate_limit.map(|r| r.to_string()),
                "spike_guard": effective.spike_guard,
                "installation_rate_limit": state.config.rate_limit.map(|r| r.to_string()),
            }),
        );
    }
    value
}

pub async fn get_project(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path((org, slug)): Path<(String, String)>,
) -> ApiResult {
    let project = access::project(&*state.store, user.viewer(), &org, &slug).await?;
    Ok(Json(project_with_limits_json(&state, &project)))
}

pub async fn patch_project(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path((org, slug)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let project = access::project(&*state.store, user.viewer(), &org, &slug).await?;
    let value: Value = serde_json::from_slice(&body).map_err(|e| {
        AppError::bad_request(format!("body must be a JSON object such as {{\"max_events\": 1000}}: {e}"))
    })?;
    let patch =
        patch_from_json(&value).map_err(|(field, message)| AppError::bad_request(format!("{field}: {message}")))?;
    let limits = state
        .store
        .set_project_limits(user.viewer(), project.id, &patch)
        .await?
        .ok_or_else(|| AppError::not_found("project"))?;
    Ok(Json(project_with_limits_json(&state, &Project { limits, ..project })))
}

/// Reads a patch: an absent field is left, `null` goes back to the default
/// (or off), a value is checked; unknown fields are refused by name.
fn patch_from_json(value: &Value) -> Result<ProjectLimitsPatch, (String, String)> {
    let Value::Object(map) = value else {
        return Err(("body".into(), "must be a JSON object such as {\"max_events\": 1000}".into()));
    };
    let mut patch = ProjectLimitsPatch::default();
    for (field, v) in map {
        let bad = |m: String| (field.clone(), m);
        match field.as_str() {
            "max_events" => patch.max_events = count(v, check_max_events, read_max_events).map_err(bad)?,
            "retention_days" => {
                patch.retention_days = count(v, check_retention_days, read_retention_days).map_err(bad)?
            }
            "rate_limit" => {
                patch.rate_limit = match v {
                    Value::Null => LimitChange::Reset,
                    Value::String(s) => read_rate_limit(s).map_err(bad)?,
                    _ => return Err(bad("must be a rate such as \"100/min\", or null for off".into())),
                }
            }
            "spike_guard" => {
                patch.spike_guard = match v {
                    Value::Null => Some(false),
                    Value::Bool(b) => Some(*b),
                    _ => return Err(bad("must be true or false".into())),
                }
            }
            _ => {
                return Err((
                    field.clone(),
                    "is not a setting; use max_events, retention_days, rate_limit or spike_guard".into(),
                ))
            }
        }
    }
    Ok(patch)
}

fn count(
    v: &Value,
    check: fn(i64) -> Result<i64, String>,
    read: fn(&str) -> Result<LimitChange<i64>, String>,
) -> Result<LimitChange<i64>, String> {
    match v {
        Value::Null => Ok(LimitChange::Reset),
        Value::Number(n) => match n.as_i64() {
            Some(n) => check(n).map(LimitChange::Set),
            None => Err(format!("{n} is not a whole number")),
        },
        Value::String(s) => read(s),
        _ => Err("must be a whole number, or null for the installation's default".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RateLimit;

    #[test]
    fn a_patch_reads_values_nulls_and_names_the_bad_field() {
        let patch =
            patch_from_json(&json!({"max_events": 1000, "retention_days": null, "rate_limit": "100/min"})).unwrap();
        assert_eq!(patch.max_events, LimitChange::Set(1000));
        assert_eq!(patch.retention_days, LimitChange::Reset);
        assert_eq!(patch.rate_limit, LimitChange::Set(RateLimit { count: 100, seconds: 60 }));
        assert_eq!(patch.spike_guard, None);
        for (body, field) in [
            (json!({"max_events": -1}), "max_events"),
            (json!({"max_events": 1.5}), "max_events"),
            (json!({"retention_days": 40000}), "retention_days"),
            (json!({"rate_limit": 100}), "rate_limit"),
            (json!({"rate_limit": "100/fortnight"}), "rate_limit"),
            (json!({"spike_guard": "yes"}), "spike_guard"),
            (json!({"max_event": 5}), "max_event"),
            (json!([1]), "body"),
        ] {
            assert_eq!(patch_from_json(&body).unwrap_err().0, field, "{body}");
        }
    }
}
