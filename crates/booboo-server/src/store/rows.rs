//! What both SQL backends share: reading rows into domain types (a macro,
//! because sqlx's row types differ per backend while the columns do not),
//! error mapping, and small pieces of query text.

use super::{Issue, StoreError, TagCounts, ValueCount};

/// The error for a failed database call: [`StoreError::DiskFull`] when the
/// database says it is out of space, else [`StoreError::Unavailable`].
pub(super) fn unavailable(doing: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |e| {
        if is_disk_full(&e) {
            StoreError::DiskFull(format!("{doing}: {e}"))
        } else {
            StoreError::Unavailable(format!("{doing}: {e}"))
        }
    }
}

/// SQLite's SQLITE_FULL (primary result code 13, in any extended code),
/// PostgreSQL's SQLSTATE 53100 `disk_full`, or ENOSPC from the file system.
pub(super) fn is_disk_full(e: &sqlx::Error) -> bool {
    const SQLITE_FULL: i64 = 13;
    const ENOSPC: i32 = 28;
    match e {
        sqlx::Error::Database(d) => match d.code() {
            Some(code) if code == "53100" => true,
            Some(code) => code.parse::<i64>().is_ok_and(|c| c & 0xff == SQLITE_FULL),
            None => false,
        },
        sqlx::Error::Io(io) => io.raw_os_error() == Some(ENOSPC),
        _ => false,
    }
}

pub(super) fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error().is_some_and(|d| d.is_unique_violation())
}

/// Attempts at a transaction that lost a deadlock or serialisation race to a
/// concurrent one from another node; the loser simply runs again. Only
/// PostgreSQL's nodes race so: SQLite's one writer never loses one.
pub(super) const BATCH_ATTEMPTS: usize = 5;

/// Whether an error is a lost race that running the transaction again may
/// win: a deadlock (SQLSTATE 40P01) or a serialisation failure (40001). Read
/// from the SQLSTATE, never the message, which an event's own text can
/// appear in.
pub(crate) fn is_lost_race(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).is_some_and(|code| code == "40P01" || code == "40001")
}

/// The pool's check on a connection handed back, the same on both backends:
/// keep it if it is out of any transaction; otherwise let a queued rollback
/// run, and close it unless that ended the transaction (each backend says
/// why at its pool).
pub(super) fn release_if_clean<C: sqlx::Connection>(
    conn: &mut C,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, sqlx::Error>> + Send + '_>> {
    Box::pin(async move {
        if !conn.is_in_transaction() {
            return Ok(true);
        }
        conn.ping().await?;
        Ok(!conn.is_in_transaction())
    })
}

/// Rows deleted per statement (and so per transaction) when a deletion may
/// be large: short transactions keep the single writer responsive.
pub(super) const DELETE_PAGE: i64 = 1000;

/// The access rule every read shares: administrators see everything, other
/// users the organisations they are members of. Binds: is_admin, user_id.
pub(super) const VISIBLE_ORG: &str = "($1 OR p.org_id IN (SELECT org_id FROM memberships WHERE user_id = $2))";

pub(super) const PROJECT_COLUMNS: &str =
    "p.id, o.slug AS org_slug, p.slug, p.name, p.created_at, p.connected_at, p.connected_sdk, p.last_event_at, \
     p.max_events, p.retention_days, p.rate_limit_count, p.rate_limit_seconds, p.spike_guard";

pub(super) const ISSUE_COLUMNS: &str = "i.id, i.project_id, i.title, i.culprit, i.level, i.status, i.is_regression, \
     i.event_count, i.user_count, i.first_seen, i.last_seen, i.first_release, i.fingerprint, \
     i.ignore_until, i.ignore_until_count, i.ignore_until_users, i.not_stored_rate_limit, i.not_stored_retention, \
     i.resolved_kind, i.resolved_release, i.resolved_semver,
     (SELECT u.email FROM users u WHERE u.id = i.assignee_id) AS assignee";

/// What a used, expired or unknown password link answers.
pub(super) const PASSWORD_LINK_GONE: &str =
    "this password link is unknown, used or expired; ask an administrator for a new one";

/// Tags counted per event for the issue's tag breakdown; the event keeps all.
pub(super) const MAX_TAGS_COUNTED: usize = 50;

/// A value to bind to a query assembled at run time.
pub(super) enum Bind {
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

/// The ids of a page of issues as a SQL list; they are integers we read, so
/// formatting them into the query is safe.
pub(super) fn id_list(issues: &[Issue]) -> String {
    issues.iter().map(|i| i.id.to_string()).collect::<Vec<_>>().join(",")
}

/// Attaches `(issue_id, name)` rows to the issues' environment or release
/// names, keeping the rows' order.
pub(super) fn attach_names(issues: &mut [Issue], rows: Vec<(i64, String)>, environments: bool) {
    for (issue_id, name) in rows {
        if let Some(issue) = issues.iter_mut().find(|i| i.id == issue_id) {
            if environments {
                issue.environments.push(name);
            } else {
                issue.releases.push(name);
            }
        }
    }
}

/// Groups `(key, value, count)` rows, sorted by key, into one entry per key.
pub(super) fn group_tags(rows: Vec<(String, String, i64)>) -> Vec<TagCounts> {
    let mut tags: Vec<TagCounts> = Vec::new();
    for (key, value, count) in rows {
        let value = ValueCount { value, count };
        match tags.last_mut() {
            Some(last) if last.key == key => last.values.push(value),
            _ => tags.push(TagCounts { key, values: vec![value] }),
        }
    }
    tags
}

/// Defines `user_from_row`, `project_from_row`, `key_from_row`,
/// `issue_from_row` and `event_from_row` for one backend's row type.
macro_rules! row_readers {
    ($row:ty) => {
        fn counter_from_row(row: &$row) -> Result<super::sign_in_limits::Counter, sqlx::Error> {
            Ok(super::sign_in_limits::Counter {
                window_ends_at: row.try_get("window_ends_at")?,
                checks: row.try_get("checks")?,
                next_check_at: row.try_get("next_check_at")?,
            })
        }

        fn user_from_row(row: &$row) -> Result<User, sqlx::Error> {
            Ok(User {
                id: row.try_get("id")?,
                email: row.try_get("email")?,
                is_admin: row.try_get("is_admin")?,
                password_hash: row.try_get("password_hash")?,
            })
        }

        fn limits_from_row(row: &$row) -> Result<ProjectLimits, sqlx::Error> {
            Ok(ProjectLimits::from_columns(
                row.try_get("max_events")?,
                row.try_get("retention_days")?,
                row.try_get("rate_limit_count")?,
                row.try_get("rate_limit_seconds")?,
                row.try_get("spike_guard")?,
            ))
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
                limits: limits_from_row(row)?,
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
            let count: i64 = row.try_get("event_count")?;
            let not_stored = NotStoredCounts {
                rate_limit: row.try_get("not_stored_rate_limit")?,
                retention: row.try_get("not_stored_retention")?,
            };
            Ok(Issue {
                id: row.try_get("id")?,
                project_id: row.try_get("project_id")?,
                title: row.try_get("title")?,
                culprit: row.try_get("culprit")?,
                level: row.try_get("level")?,
                status: IssueStatus::parse(&status).unwrap_or(IssueStatus::Unresolved),
                is_regression: row.try_get("is_regression")?,
                count,
                stored: (count - not_stored.rate_limit - not_stored.retention).max(0),
                not_stored,
                users: row.try_get("user_count")?,
                first_seen: row.try_get("first_seen")?,
                last_seen: row.try_get("last_seen")?,
                first_release: row.try_get("first_release")?,
                fingerprint: row.try_get("fingerprint")?,
                ignore_until: IgnoreUntil {
                    at: row.try_get("ignore_until")?,
                    count: row.try_get("ignore_until_count")?,
                    users: row.try_get("ignore_until_users")?,
                },
                resolved_in: match row
                    .try_get::<Option<String>, _>("resolved_kind")?
                    .as_deref()
                    .and_then(ResolvedInKind::parse)
                {
                    Some(kind) if status == "resolved" => Some(ResolvedIn {
                        kind,
                        release: row.try_get("resolved_release")?,
                        semver: row.try_get("resolved_semver")?,
                    }),
                    _ => None,
                },
                assignee: row.try_get("assignee")?,
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
                payload: super::stored_payload::read(row.try_get("payload")?, row.try_get("body")?)?,
            })
        }
    };
}
pub(super) use row_readers;
