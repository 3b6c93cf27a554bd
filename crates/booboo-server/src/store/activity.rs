//! An issue's history and ownership as the store hands them out: what
//! happened (`ActivityKind`), who did it, when, and the details of each
//! kind. The queries are in `activity_sql.rs`; both backends expand them.

use super::{IgnoreCondition, Issue, IssueStatus, Role};
use serde::Serialize;
use serde_json::{json, Value};

/// Who the activity list names for a change booboo made itself.
pub const BOOBOO_ACTOR: &str = "booboo";

/// The longest comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 10_000;

/// What an activity entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityKind {
    /// The status changed (detail: `status`, `release` when resolved in
    /// one, `ignore` with the condition when ignored; `reason` when booboo
    /// changed it, e.g. an ignore that ended).
    Status,
    /// The assignee changed (detail: `assignee`, an e-mail or null).
    Assignment,
    /// Someone commented (detail: `text`).
    Comment,
    /// A resolved issue received an event (detail: `event_id`, `release`).
    Regression,
    /// Another issue was merged into this one (detail: whatever the merge
    /// records, e.g. the merged issue ids).
    Merge,
    /// An alert about the issue was delivered (detail: `alert`, `channel`,
    /// `rule`).
    AlertSent,
}

impl ActivityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityKind::Status => "status",
            ActivityKind::Assignment => "assignment",
            ActivityKind::Comment => "comment",
            ActivityKind::Regression => "regression",
            ActivityKind::Merge => "merge",
            ActivityKind::AlertSent => "alert_sent",
        }
    }

    pub fn parse(text: &str) -> Option<ActivityKind> {
        [
            ActivityKind::Status,
            ActivityKind::Assignment,
            ActivityKind::Comment,
            ActivityKind::Regression,
            ActivityKind::Merge,
            ActivityKind::AlertSent,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// One entry of an issue's activity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Activity {
    pub id: i64,
    pub issue_id: i64,
    pub kind: ActivityKind,
    /// The e-mail of the user who made the change; `None` when booboo did.
    pub actor: Option<String>,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    pub detail: Value,
}

/// The detail of a status change. `release` is the release an issue was
/// resolved in, when it was resolved in one; `ignore` says until when an
/// ignored issue stays ignored.
pub fn status_detail(status: IssueStatus, release: Option<&str>, ignore: Option<Value>) -> Value {
    let mut detail = json!({ "status": status.as_str() });
    if let Some(release) = release {
        detail["release"] = json!(release);
    }
    if let Some(ignore) = ignore {
        detail["ignore"] = ignore;
    }
    detail
}

/// The `ignore` of a status change's detail: `until` (milliseconds),
/// `count` or `users` more, or nothing for forever.
pub fn ignore_detail(condition: IgnoreCondition, now: i64) -> Value {
    match condition {
        IgnoreCondition::Forever => json!({}),
        IgnoreCondition::For { .. } => json!({ "until": condition.targets(now).0 }),
        IgnoreCondition::Events(n) => json!({ "count": n }),
        IgnoreCondition::Users(n) => json!({ "users": n }),
    }
}

/// What assigning an issue came to.
#[derive(Debug, Clone)]
pub enum Assignment {
    /// The issue as it is now (assigned, or unassigned for `None`).
    Done(Box<Issue>),
    /// The viewer cannot see the issue, or it does not exist.
    IssueNotFound,
    /// The address is not a member of the issue's organisation.
    NotAMember,
}

/// An invitation not yet used and not expired, as the members page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingInvitation {
    pub email: String,
    pub role: Role,
    pub created_at: i64,
    pub expires_at: i64,
}

/// Why a comment's text is refused, for a person to act on; `None` when it
/// is fine.
pub fn comment_problem(text: &str) -> Option<String> {
    let chars = text.chars().count();
    if text.trim().is_empty() {
        Some("a comment needs some text".into())
    } else if chars > MAX_COMMENT_CHARS {
        Some(format!("a comment is at most {MAX_COMMENT_CHARS} characters; this one has {chars}"))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_back_what_they_write() {
        for kind in ["status", "assignment", "comment", "regression", "merge", "alert_sent"] {
            assert_eq!(ActivityKind::parse(kind).unwrap().as_str(), kind);
        }
        assert_eq!(ActivityKind::parse("other"), None);
    }

    #[test]
    fn comments_need_text_within_the_limit() {
        assert!(comment_problem("  \n").is_some());
        assert!(comment_problem("looking into it").is_none());
        assert!(comment_problem(&"é".repeat(MAX_COMMENT_CHARS)).is_none());
        let long = comment_problem(&"x".repeat(MAX_COMMENT_CHARS + 1)).unwrap();
        assert!(long.contains("10001"), "{long}");
    }

    #[test]
    fn a_status_detail_names_the_release_only_when_there_is_one() {
        assert_eq!(status_detail(IssueStatus::Resolved, None, None), json!({"status": "resolved"}));
        assert_eq!(
            status_detail(IssueStatus::Resolved, Some("1.4.0"), None),
            json!({"status": "resolved", "release": "1.4.0"})
        );
    }
}
