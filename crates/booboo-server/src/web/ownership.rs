//! The issue page's ownership and history: the assignee picker, the comment
//! form, and the activity list in words.

use super::form::FormData;
use super::local_path::same_origin_path;
use super::page_error::PageError;
use super::session::SignedIn;
use super::time_text;
use crate::clock;
use crate::identifiers::check_email;
use crate::state::AppState;
use crate::store::activity::{comment_problem, BOOBOO_ACTOR};
use crate::store::{Activity, ActivityKind, Assignment, Viewer};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Serialize;
use serde_json::Value;

/// One activity entry as the issue page shows it.
#[derive(Debug, Serialize)]
pub struct ActivityLine {
    pub kind: &'static str,
    /// The user's e-mail, or "booboo".
    pub actor: String,
    pub at: i64,
    /// What happened, in words (after the actor).
    pub text: String,
    /// A comment's text, shown as written (escaped by the template).
    pub comment: Option<String>,
}

/// The words for one entry, from its kind and detail.
pub fn activity_line(a: &Activity) -> ActivityLine {
    let d = &a.detail;
    let s = |key: &str| d.get(key).and_then(Value::as_str).map(str::to_string);
    let text = match a.kind {
        ActivityKind::Status => match s("status").as_deref() {
            Some("resolved") => match s("release") {
                Some(release) => format!("resolved the issue in release {release}"),
                None => "resolved the issue".into(),
            },
            Some("unresolved") if s("reason").as_deref() == Some("ignore_ended") => {
                "ended the ignore: the issue is unresolved again".into()
            }
            Some("unresolved") => "reopened the issue".into(),
            Some("ignored") => {
                let ignore = d.get("ignore");
                let get = |key: &str| ignore.and_then(|i| i.get(key)).and_then(Value::as_i64);
                match (get("until"), get("count"), get("users")) {
                    (Some(until), _, _) => format!("ignored the issue until {}", time_text::exact(until)),
                    (_, Some(count), _) => format!("ignored the issue until {count} more events"),
                    (_, _, Some(users)) => format!("ignored the issue until {users} more users are affected"),
                    _ => "ignored the issue".into(),
                }
            }
            other => format!("set the status to {}", other.unwrap_or("?")),
        },
        ActivityKind::Assignment => match s("assignee") {
            Some(email) => format!("assigned the issue to {email}"),
            None => "unassigned the issue".into(),
        },
        ActivityKind::Comment => "commented".into(),
        ActivityKind::Regression => {
            let event = s("event_id").map(|id| format!(" (event {id})")).unwrap_or_default();
            match s("release") {
                Some(release) => format!("marked a regression: it happened again in release {release}{event}"),
                None => format!("marked a regression: it happened again{event}"),
            }
        }
        ActivityKind::Merge => match d.get("merged").and_then(Value::as_array) {
            Some(ids) if !ids.is_empty() => format!(
                "merged {} into this issue",
                ids.iter().map(|id| format!("issue {id}")).collect::<Vec<_>>().join(", ")
            ),
            _ => "merged another issue into this one".into(),
        },
        ActivityKind::AlertSent => {
            let alert = s("alert").unwrap_or_else(|| "an".into());
            let channel = s("channel").unwrap_or_else(|| "a channel".into());
            let to = s("recipient").map(|r| format!(" to {r}")).unwrap_or_default();
            let rule = s("rule").map(|r| format!(" (rule \u{201c}{r}\u{201d})")).unwrap_or_default();
            format!("sent a {alert} alert by {channel}{to}{rule}")
        }
    };
    ActivityLine {
        kind: a.kind.as_str(),
        actor: a.actor.clone().unwrap_or_else(|| BOOBOO_ACTOR.to_string()),
        at: a.created_at,
        text,
        comment: (a.kind == ActivityKind::Comment).then(|| s("text").unwrap_or_default()),
    }
}

fn parse_id(text: &str) -> Result<i64, PageError> {
    text.parse().map_err(|_| PageError::NotFound("issue"))
}

fn back(form: &FormData, id: i64) -> String {
    same_origin_path(form.get("back"), &format!("/issues/{id}")).to_string()
}

/// Assigns an issue from a form's `assignee` (an e-mail; empty unassigns).
pub async fn assign_one(state: &AppState, viewer: Viewer, id: i64, assignee: &str) -> Result<(), PageError> {
    let email = match assignee {
        "" => None,
        text => Some(check_email(text).map_err(PageError::BadRequest)?),
    };
    match state.store.assign_issue(viewer, id, email.as_deref(), clock::now_millis()).await? {
        Assignment::Done(_) => Ok(()),
        Assignment::IssueNotFound => Err(PageError::NotFound("issue")),
        Assignment::NotAMember => Err(PageError::BadRequest(format!(
            "{} is not a member of this issue's organisation: pick a member, or add them on the organisation's page",
            email.unwrap_or_default()
        ))),
    }
}

/// `POST /issues/{id}/assign`.
pub async fn assign(
    State(state): State<AppState>,
    me: SignedIn,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, PageError> {
    me.check_csrf(&form)?;
    let id = parse_id(&id)?;
    assign_one(&state, me.viewer(), id, form.get("assignee")).await?;
    Ok(Redirect::to(&back(&form, id)).into_response())
}

/// `POST /issues/{id}/comments`.
pub async fn comment(
    State(state): State<AppState>,
    me: SignedIn,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, PageError> {
    me.check_csrf(&form)?;
    let id = parse_id(&id)?;
    let text = form.get("text");
    if let Some(problem) = comment_problem(text) {
        return Err(PageError::BadRequest(format!("The comment was not added: {problem}.")));
    }
    state
        .store
        .add_issue_comment(me.viewer(), id, text, clock::now_millis())
        .await?
        .ok_or(PageError::NotFound("issue"))?;
    Ok(Redirect::to(&format!("/issues/{id}#activity")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(kind: ActivityKind, actor: Option<&str>, detail: Value) -> Activity {
        Activity { id: 1, issue_id: 1, kind, actor: actor.map(str::to_string), created_at: 0, detail }
    }

    #[test]
    fn entries_read_as_sentences() {
        let line = activity_line(&entry(
            ActivityKind::Status,
            Some("ann@x.io"),
            json!({"status": "resolved", "release": "1.4.0"}),
        ));
        assert_eq!((line.actor.as_str(), line.text.as_str()), ("ann@x.io", "resolved the issue in release 1.4.0"));
        let line = activity_line(&entry(ActivityKind::Regression, None, json!({"event_id": "ab", "release": null})));
        assert_eq!(
            (line.actor.as_str(), line.text.as_str()),
            ("booboo", "marked a regression: it happened again (event ab)")
        );
        let line = activity_line(&entry(ActivityKind::Assignment, Some("a@x.io"), json!({"assignee": null})));
        assert_eq!(line.text, "unassigned the issue");
        let line = activity_line(&entry(ActivityKind::Comment, Some("a@x.io"), json!({"text": "<b>hi</b>"})));
        assert_eq!(line.comment.as_deref(), Some("<b>hi</b>"));
        let line =
            activity_line(&entry(ActivityKind::Status, None, json!({"status": "ignored", "ignore": {"count": 5}})));
        assert_eq!(line.text, "ignored the issue until 5 more events");
    }
}
