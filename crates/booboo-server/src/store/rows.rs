//! What both SQL backends share: reading rows into domain types (a macro,
//! because sqlx's row types differ per backend while the columns do not),
//! error mapping, and small pieces of query text.

use super::StoreError;

pub(super) fn unavailable(doing: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |e| StoreError::Unavailable(format!("{doing}: {e}"))
}

pub(super) fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error().is_some_and(|d| d.is_unique_violation())
}

pub(super) const PROJECT_COLUMNS: &str =
    "p.id, o.slug AS org_slug, p.slug, p.name, p.created_at, p.connected_at, p.connected_sdk, p.last_event_at";

pub(super) const ISSUE_COLUMNS: &str = "i.id, i.project_id, i.title, i.culprit, i.level, i.status, i.is_regression, \
     i.event_count, i.user_count, i.first_seen, i.last_seen, i.first_release, i.fingerprint";

/// Tags counted per event for the issue's tag breakdown; the event keeps all.
pub(super) const MAX_TAGS_COUNTED: usize = 50;

/// A value to bind to a query assembled at run time.
pub(super) enum Bind {
    Int(i64),
    Text(String),
}

/// `%text%` for LIKE, with the wildcards in `text` taken literally.
pub(super) fn like_pattern(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

/// Defines `user_from_row`, `project_from_row`, `key_from_row`,
/// `issue_from_row` and `event_from_row` for one backend's row type.
macro_rules! row_readers {
    ($row:ty) => {
        fn user_from_row(row: &$row) -> Result<User, sqlx::Error> {
            Ok(User {
                id: row.try_get("id")?,
                email: row.try_get("email")?,
                is_admin: row.try_get("is_admin")?,
                password_hash: row.try_get("password_hash")?,
            })
        }

        fn project_from_row(row: &$row) -> Result<Project, sqlx::Error> {
            Ok(Project {
                id: row.try_get("id")?,
                org_slug: row.try_get("org_slug")?,
                slug: row.try_get("slug")?,
                name: row.try_get("name")?,
                created_at: row.try_get("created_at")?,
                connected_at: row.try_get("connected_at")?,
                connected_sdk: row.try_get("connected_sdk")?,
                last_event_at: row.try_get("last_event_at")?,
            })
        }

        fn key_from_row(row: &$row) -> Result<ProjectKey, sqlx::Error> {
            Ok(ProjectKey {
                id: row.try_get("id")?,
                project_id: row.try_get("project_id")?,
                token: row.try_get("token")?,
                label: row.try_get("label")?,
                created_at: row.try_get("created_at")?,
                revoked_at: row.try_get("revoked_at")?,
            })
        }

        fn issue_from_row(row: &$row) -> Result<Issue, sqlx::Error> {
            let status: String = row.try_get("status")?;
            Ok(Issue {
                id: row.try_get("id")?,
                project_id: row.try_get("project_id")?,
                title: row.try_get("title")?,
                culprit: row.try_get("culprit")?,
                level: row.try_get("level")?,
                status: IssueStatus::parse(&status).unwrap_or(IssueStatus::Unresolved),
                is_regression: row.try_get("is_regression")?,
                count: row.try_get("event_count")?,
                users: row.try_get("user_count")?,
                first_seen: row.try_get("first_seen")?,
                last_seen: row.try_get("last_seen")?,
                first_release: row.try_get("first_release")?,
                fingerprint: row.try_get("fingerprint")?,
                environments: Vec::new(),
                releases: Vec::new(),
            })
        }

        fn event_from_row(row: &$row) -> Result<StoredEvent, sqlx::Error> {
            Ok(StoredEvent {
                event_id: row.try_get("event_id")?,
                issue_id: row.try_get("issue_id")?,
                project_id: row.try_get("project_id")?,
                received_at: row.try_get("received_at")?,
                payload: row.try_get("payload")?,
            })
        }
    };
}
pub(super) use row_readers;
